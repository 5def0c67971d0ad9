/* lua_sandbox.h: the one Lua that user files run in (layer-sampling
 * policies, custom activations, tuning tables). A file may compute, not
 * reach out or run away:
 *   - text only: files and load() take source text, never bytecode (crafted
 *     bytecode can crash the interpreter); string.dump is gone;
 *   - no files: dofile, loadfile and require are gone; only the base, math,
 *     string and table libraries are open;
 *   - a memory cap, through the state's allocator;
 *   - an instruction budget per call into the file (lsb_call), through a
 *     count hook;
 *   - bounded pattern matching: string.find, match, gmatch and gsub are Lua's
 *     own with a step budget (lua_patterns.c), since hooks do not fire inside
 *     C functions.
 * Each limit gives an error that names the file. */
#ifndef LT_LUA_SANDBOX_H
#define LT_LUA_SANDBOX_H

#include <stddef.h>

#include <lua.h>

#include "err.h"

#define LSB_MAX_BYTES (64u << 20)        /* memory of one state */
#define LSB_MAX_INSTRUCTIONS 100000000L  /* per lsb_call */
#define LSB_MAX_MATCH_STEPS 10000000L    /* per call of a pattern function */

typedef struct {
  const char *file;      /* the user file, for messages */
  size_t max_bytes;
  long max_instructions;
  long max_match_steps;
  /* state */
  size_t used;           /* bytes the allocator holds */
  long instructions;     /* spent in the current call */
  int out_of_memory;     /* the cap refused an allocation */
} lsb_box;

/* A box for file with the default limits. */
lsb_box lsb_defaults(const char *file);

/* A new state in box (which must outlive it): the allocator, the libraries
 * and the limits. NULL with a message on failure. */
lua_State *lsb_new(lsb_box *box, lt_error *err);

/* Loads box->file (text only) as a function on the stack; LUA_OK or an error
 * message on the stack, as luaL_loadfilex. */
int lsb_load_file(lua_State *L);
/* The same for text held in memory, under the name box->file. */
int lsb_load_text(lua_State *L, const char *text, size_t len);

/* lua_pcall with the instruction budget reset, so each call into the file
 * gets LSB_MAX_INSTRUCTIONS. */
int lsb_pcall(lua_State *L, int nargs, int nresults);

/* The failed call's message in err, naming the file and what ran out;
 * `where` is added at the end (may be ""). Pops the error object. */
int lsb_fail(lua_State *L, const char *where, lt_error *err);

/* Sets each named global to nil (a caller's further removals). */
void lsb_remove(lua_State *L, const char *const *names, int n);

/* lua_patterns.c: the bounded find, match, gmatch and gsub into string. */
void lsb_install_patterns(lua_State *L);

#endif
