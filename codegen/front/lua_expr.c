/* lua_expr.c: an expression string out of a Lua file (see lua_expr.h). */
#include "lua_expr.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "lua_sandbox.h"

typedef struct {
  const char *path, *name;
  const ir_config_entry *config;
  int n_config;
  int missing; /* the table has no entry `name` */
} lua_job;

static void push_config(lua_State *L, const lua_job *j) {
  lua_createtable(L, 0, j->n_config);
  for (int i = 0; i < j->n_config; i++) {
    lua_pushnumber(L, j->config[i].value);
    lua_setfield(L, -2, j->config[i].name);
  }
}

/* Protected: leaves the expression string on the stack, or sets missing. */
static int run_job(lua_State *L) {
  lua_job *j = lua_touserdata(L, 1);
  if (lsb_load_file(L) != LUA_OK) return lua_error(L);
  lua_call(L, 0, 1);
  if (!lua_istable(L, -1))
    return luaL_error(L, "%s: returned a %s, not a table of activations", j->path,
                      luaL_typename(L, -1));
  int type = lua_getfield(L, -1, j->name);
  if (type == LUA_TNIL) {
    j->missing = 1;
    return 0;
  }
  if (type == LUA_TFUNCTION) {
    push_config(L, j);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "%s: '%s' returned a %s, not an expression string", j->path,
                        j->name, luaL_typename(L, -1));
  } else if (type != LUA_TSTRING) {
    return luaL_error(L, "%s: '%s' is a %s, not an expression string or a function "
                         "returning one", j->path, j->name, luaL_typename(L, -1));
  }
  return 1;
}

int lua_expr_load(const char *path, const char *name, const ir_config_entry *config,
                  int n_config, char **text, lt_error *err) {
  *text = NULL;
  lsb_box box = lsb_defaults(path);
  lua_State *L = lsb_new(&box, err);
  if (!L) return LUA_EXPR_FILE_ERROR;
  lua_job j = {.path = path, .name = name, .config = config, .n_config = n_config};
  lua_pushcfunction(L, run_job);
  lua_pushlightuserdata(L, &j);
  int rc = LUA_EXPR_FILE_ERROR;
  if (lsb_pcall(L, 1, 1) != LUA_OK) {
    lsb_fail(L, "", err);
  } else if (j.missing) {
    lt_fail(err, "%s has no activation '%s'", path, name);
    rc = LUA_EXPR_NO_NAME;
  } else if (!(*text = strdup(lua_tostring(L, -1)))) {
    lt_fail(err, "%s: out of memory", path);
  } else {
    rc = 0;
  }
  lua_close(L);
  return rc;
}
