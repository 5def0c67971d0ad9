/* test_expr.c: config expressions: precedence, functions, errors. */
#include <string.h>

#include "check.h"
#include "expr.h"

/* A tiny config: n_embd = 768, n_head = 12, n_layer = 12. */
static int lookup(void *ctx, const char *name, double *out) {
  (void)ctx;
  static const struct {
    const char *name;
    double value;
  } vars[] = {{"n_embd", 768}, {"n_head", 12}, {"n_layer", 12}};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    if (strcmp(vars[i].name, name) == 0) {
      *out = vars[i].value;
      return 0;
    }
  }
  return -1;
}

static double eval_ok(const char *text) {
  lt_error err = {{0}};
  double v = NAN;
  int rc = expr_eval_text(text, lookup, NULL, &v, &err);
  CHECK_MSG(rc == 0, "'%s': %s", text, err.msg);
  return v;
}

/* Asserts that `text` fails with exactly `msg`. */
static void eval_fails(const char *text, const char *msg) {
  lt_error err = {{0}};
  double v = 0;
  int rc = expr_eval_text(text, lookup, NULL, &v, &err);
  CHECK_MSG(rc == -1, "'%s' evaluated to %g", text, v);
  CHECK_MSG(strcmp(err.msg, msg) == 0, "'%s': got \"%s\", expected \"%s\"",
            text, err.msg, msg);
}

static void test_numbers(void) {
  CHECK(eval_ok("42") == 42);
  CHECK(eval_ok("1.0e-5") == 1.0e-5);
  CHECK(eval_ok("2.5E+3") == 2500);
  CHECK(eval_ok(".5") == 0.5);
  CHECK(eval_ok("  7 ") == 7);
}

static void test_precedence(void) {
  CHECK(eval_ok("1 + 2*3") == 7);
  CHECK(eval_ok("(1 + 2)*3") == 9);
  CHECK(eval_ok("10 - 4 - 3") == 3);       /* left-associative */
  CHECK(eval_ok("64/4/2") == 8);
  CHECK(eval_ok("2^3^2") == 512);          /* right-associative */
  CHECK(eval_ok("-2^2") == -4);            /* ^ binds tighter than minus */
  CHECK(eval_ok("2^-1") == 0.5);
  CHECK(eval_ok("--3") == 3);
  CHECK(eval_ok("2*-3") == -6);
  CHECK(eval_ok("1 + 6 % 4 * 2") == 5);    /* % at the level of * */
  CHECK(eval_ok("3*n_embd") == 2304);
  CHECK(eval_ok("n_embd/n_head") == 64);
  CHECK(eval_ok("4*n_embd - n_embd//n_head") == 3008);
}

static void test_division(void) {
  CHECK(eval_ok("7/2") == 3.5);            /* exact division */
  CHECK(eval_ok("7//2") == 3);
  CHECK(eval_ok("-7//2") == -4);           /* floors, as in Python */
  CHECK(eval_ok("7 % 3") == 1);
  CHECK(eval_ok("-7 % 3") == 2);
  CHECK(eval_ok("7 % -3") == -2);
}

static void test_functions(void) {
  CHECK_CLOSE(eval_ok("0.02/sqrt(2*n_layer)"), 0.02 / sqrt(24.0), 0, 1e-15);
  CHECK_CLOSE(eval_ok("exp(1)"), 2.718281828459045, 0, 1e-15);
  CHECK_CLOSE(eval_ok("log(exp(3))"), 3, 0, 1e-15);
  CHECK(eval_ok("sqrt (16) + 1") == 5);
}

static void test_ast_reuse(void) {
  lt_error err = {{0}};
  expr_node *e = expr_parse("n_embd / n_head * 2", &err);
  CHECK_MSG(e != NULL, "%s", err.msg);
  if (!e) return;
  double v1 = 0, v2 = 0;
  CHECK(expr_eval(e, lookup, NULL, &v1, &err) == 0);
  CHECK(expr_eval(e, lookup, NULL, &v2, &err) == 0);
  CHECK(v1 == 128 && v2 == 128);
  /* Without a lookup every identifier is unknown. */
  CHECK(expr_eval(e, NULL, NULL, &v1, &err) == -1);
  CHECK(strcmp(err.msg, "column 1: unknown identifier 'n_embd'") == 0);
  expr_free(e);
}

static void test_syntax_errors(void) {
  eval_fails("", "column 1: expected a number, identifier or '(', "
                 "found end of expression");
  eval_fails("3*", "column 3: expected a number, identifier or '(', "
                   "found end of expression");
  eval_fails("(1+2", "column 5: expected ')', found end of expression");
  eval_fails("sqrt(4", "column 7: expected ')', found end of expression");
  eval_fails("3 n_embd", "column 3: unexpected 'n' after the expression");
  eval_fails("2 $ 3", "column 3: unexpected '$' after the expression");
  eval_fails("4 + * 2", "column 5: expected a number, identifier or '(', found '*'");
  eval_fails("0x10", "column 2: unexpected 'x' after the expression");
  eval_fails("cos(1)", "column 1: unknown function 'cos' (known: sqrt, exp, log, sigmoid, tanh, erf)");
  lt_error err = {{0}};
  CHECK(expr_parse(")", &err) == NULL);
  CHECK(strcmp(err.msg, "column 1: expected a number, identifier or '(', found ')'") == 0);
}

static void test_eval_errors(void) {
  eval_fails("3*n_embdd", "column 3: unknown identifier 'n_embdd'");
  eval_fails("n_embd / (n_head - 12)", "column 8: division by zero");
  eval_fails("5 // 0", "column 3: division by zero");
  eval_fails("5 % 0", "column 3: division by zero");
  eval_fails("1 + sqrt(-4)", "column 5: sqrt of a negative number (-4)");
  eval_fails("log(0)", "column 1: log of a non-positive number (0)");
  eval_fails("exp(1000)", "column 1: result is not a finite number");
}

static void test_nesting_limit(void) {
  char deep[200];
  memset(deep, '(', 100);
  deep[100] = '1';
  memset(deep + 101, ')', 98);
  deep[199] = '\0';
  eval_fails(deep, "column 65: expression nested too deeply");
}

static void test_located_errors(void) {
  lt_error err = {{0}};
  double v = 0;
  /* The expression starts at column 20 of line 7: the fault at its column 3
   * is column 22 of the file. */
  CHECK(expr_eval_text_at("3*n_embdd", "m.yaml", 7, 20, lookup, NULL, &v, &err) == -1);
  CHECK_MSG(strcmp(err.msg, "m.yaml:7:22: unknown identifier 'n_embdd'") == 0, "%s",
            err.msg);
  CHECK(expr_eval_text_at("(2", "m.yaml", 3, 10, lookup, NULL, &v, &err) == -1);
  CHECK_MSG(strcmp(err.msg, "m.yaml:3:12: expected ')', found end of expression") == 0,
            "%s", err.msg);
  CHECK(expr_eval_text_at("n_head*2", "m.yaml", 3, 10, lookup, NULL, &v, &err) == 0);
  CHECK(v == 24);
}

int main(void) {
  RUN(test_numbers);
  RUN(test_precedence);
  RUN(test_division);
  RUN(test_functions);
  RUN(test_ast_reuse);
  RUN(test_syntax_errors);
  RUN(test_eval_errors);
  RUN(test_nesting_limit);
  RUN(test_located_errors);
  return check_exit();
}
