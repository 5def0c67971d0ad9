#include "lua_sandbox.h"

#include <lauxlib.h>
#include <lualib.h>

void lsb_remove(lua_State *L, const char *const *names, int n) {
  for (int i = 0; i < n; i++) {
    lua_pushnil(L);
    lua_setglobal(L, names[i]);
  }
}

void lsb_open(lua_State *L) {
  static const char *const loaders[] = {"dofile", "loadfile"};
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  lua_pop(L, 4);
  lsb_remove(L, loaders, 2);
}
