-- tuning_test.lua: tunables that exist only for the tests, added to
-- tuning.lua's when LISA_TEST_TUNABLES=1 is in the environment. They break
-- kernels on purpose, so that tests can show that lisa check catches a wrong
-- variant and lisa tune never stores one (tests/cli/test_cli_check.sh).
return {
  -- codegen/gen/gen_elementwise.c: 1 negates every value the kernel stores
  elementwise = {
    FLIP = {default = 0, space = {0, 1}},
  },
}
