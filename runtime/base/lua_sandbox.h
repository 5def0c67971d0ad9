/* lua_sandbox.h: the Lua that user files (layer-sampling policies, custom
 * activations, tuning tables) run in: the base, math, string and table
 * libraries, without dofile and loadfile, so a file cannot read others.
 * Callers add what is theirs on top (instruction limits, more removals). */
#ifndef LT_LUA_SANDBOX_H
#define LT_LUA_SANDBOX_H

#include <lua.h>

/* Opens the libraries into L and removes the file loaders. May raise a Lua
 * error (out of memory): call it inside a protected call where that matters. */
void lsb_open(lua_State *L);

/* Sets each named global to nil. */
void lsb_remove(lua_State *L, const char *const *names, int n);

#endif
