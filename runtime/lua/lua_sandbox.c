/* lua_sandbox.c: the limits of user Lua (see lua_sandbox.h). */
#include "lua_sandbox.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

/* The count hook fires every HOOK_EVERY instructions. */
#define HOOK_EVERY 1000

lsb_box lsb_defaults(const char *file) {
  return (lsb_box){.file = file, .max_bytes = LSB_MAX_BYTES,
                   .max_instructions = LSB_MAX_INSTRUCTIONS,
                   .max_match_steps = LSB_MAX_MATCH_STEPS};
}

/* lua_Alloc with a cap: Lua turns a NULL into its memory error. */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lsb_box *b = ud;
  size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
  if (nsize == 0) {
    free(ptr);
    b->used -= old;
    return NULL;
  }
  if (nsize > old && nsize - old > b->max_bytes - b->used) {
    b->out_of_memory = 1;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p) b->used = b->used - old + nsize;
  return p;
}

static lsb_box *box_of(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

static void count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lsb_box *b = box_of(L);
  b->instructions += HOOK_EVERY;
  if (b->instructions > b->max_instructions) {
    luaL_where(L, 0); /* in a hook, level 0 is the function running: "FILE:LINE: " */
    const char *where = lua_tostring(L, -1);
    if (where[0])
      luaL_error(L, "%sran for more than %I instructions (an endless loop?)", where,
                 (lua_Integer)b->max_instructions);
    luaL_error(L, "%s: ran for more than %I instructions (an endless loop?)", b->file,
               (lua_Integer)b->max_instructions);
  }
}

/* load(chunk [, name [, mode [, env]]]) for strings, text only. */
static int text_load(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *name = luaL_optstring(L, 2, s);
  int env = !lua_isnone(L, 4) ? 4 : 0;
  if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2; /* nil, message */
  }
  if (env) {
    lua_pushvalue(L, env);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
  }
  return 1;
}

/* Protected: the libraries and the limits. */
static int open_libs(lua_State *L) {
  static const char *const gone[] = {"dofile", "loadfile", "require"};
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  lua_pop(L, 4);
  lsb_remove(L, gone, 3);
  lua_pushcfunction(L, text_load);
  lua_setglobal(L, "load");
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump"); /* bytecode out is bytecode in, elsewhere */
  lua_pop(L, 1);
  lsb_install_patterns(L);
  return 0;
}

lua_State *lsb_new(lsb_box *box, lt_error *err) {
  box->used = 0, box->instructions = 0, box->out_of_memory = 0;
  lua_State *L = lua_newstate(capped_alloc, box);
  if (!L) return lt_fail(err, "%s: out of memory starting Lua", box->file), NULL;
  lua_pushcfunction(L, open_libs);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lt_fail(err, "%s: cannot start Lua: %s", box->file, lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
  return L;
}

int lsb_load_file(lua_State *L) {
  return luaL_loadfilex(L, box_of(L)->file, "t");
}

int lsb_load_text(lua_State *L, const char *text, size_t len) {
  const char *file = box_of(L)->file;
  lua_pushfstring(L, "@%s", file);
  int rc = luaL_loadbufferx(L, text, len, lua_tostring(L, -1), "t");
  lua_remove(L, -2);
  return rc;
}

int lsb_pcall(lua_State *L, int nargs, int nresults) {
  box_of(L)->instructions = 0;
  return lua_pcall(L, nargs, nresults, 0);
}

int lsb_fail(lua_State *L, const char *where, lt_error *err) {
  lsb_box *b = box_of(L);
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (b->out_of_memory)
    lt_fail(err, "%s: used more than %zu MiB of memory%s", b->file, b->max_bytes >> 20, where);
  else if (!msg)
    lt_fail(err, "%s: error object is a %s value%s", b->file, luaL_typename(L, -1), where);
  else if (strstr(msg, b->file)) /* Lua's "FILE:LINE: ...", "cannot open FILE" */
    lt_fail(err, "%s%s", msg, where);
  else
    lt_fail(err, "%s: %s%s", b->file, msg, where);
  lua_pop(L, 1);
  return -1;
}

void lsb_remove(lua_State *L, const char *const *names, int n) {
  for (int i = 0; i < n; i++) {
    lua_pushnil(L);
    lua_setglobal(L, names[i]);
  }
}
