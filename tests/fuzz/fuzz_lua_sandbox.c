/* libFuzzer: any bytes as a user Lua file in the sandbox, run with small
 * budgets: it may fail, never crash, hang or grow without bound. */
#include <lua.h>

#include "lua_sandbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lsb_box box = lsb_defaults("fuzz.lua");
  box.max_bytes = 8u << 20, box.max_instructions = 200000, box.max_match_steps = 200000;
  lt_error err;
  lua_State *L = lsb_new(&box, &err);
  if (!L) return 0;
  if (lsb_load_text(L, (const char *)data, size) != LUA_OK || lsb_pcall(L, 0, 0) != LUA_OK)
    lsb_fail(L, "", &err);
  lua_close(L);
  return 0;
}
