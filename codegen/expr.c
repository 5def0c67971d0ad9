/* expr.c: recursive-descent parser and evaluator for config expressions.
 *
 * Parsing and evaluation report faults as (column, message) pairs so that
 * the public entry points can say either "column N: ..." or, for text that
 * sits in a YAML file, "file:line:col: ..." with the column inside the file. */
#include "expr.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum expr_kind {
  EXPR_NUM, EXPR_NAME, EXPR_NEG,
  EXPR_ADD, EXPR_SUB, EXPR_MUL, EXPR_DIV, EXPR_FLOORDIV, EXPR_MOD, EXPR_POW,
  EXPR_SQRT, EXPR_EXP, EXPR_LOG,
};

struct expr_node {
  int kind;         /* enum expr_kind */
  int col;          /* 1-based column of the token, for messages */
  double num;       /* EXPR_NUM */
  char name[64];    /* EXPR_NAME */
  expr_node *a, *b; /* operands; unary ops and calls use only a */
};

typedef struct {
  int col;
  char msg[256];
} expr_fault;

typedef struct {
  const char *text;
  const char *p;  /* next character to read */
  int depth;      /* nesting, bounded so hostile input cannot blow the stack */
  expr_fault *fault;
} expr_parser;

#define EXPR_MAX_DEPTH 64

static void set_fault(expr_fault *f, int col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_fault(expr_fault *f, int col, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->msg, sizeof f->msg, fmt, ap);
  va_end(ap);
  f->col = col;
}

static int column(const expr_parser *ps, const char *at) {
  return (int)(at - ps->text) + 1;
}

static void skip_space(expr_parser *ps) {
  while (*ps->p == ' ' || *ps->p == '\t') ps->p++;
}

static int is_name_start(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static expr_node *new_node(expr_parser *ps, int kind, int col, expr_node *a,
                           expr_node *b) {
  expr_node *e = calloc(1, sizeof *e);
  if (!e) {
    expr_free(a);
    expr_free(b);
    set_fault(ps->fault, col, "out of memory");
    return NULL;
  }
  e->kind = kind;
  e->col = col;
  e->a = a;
  e->b = b;
  return e;
}

void expr_free(expr_node *e) {
  if (!e) return;
  expr_free(e->a);
  expr_free(e->b);
  free(e);
}

static expr_node *parse_expr(expr_parser *ps);
static expr_node *parse_unary(expr_parser *ps);

/* Describes the character at p for a message ("end of expression" at NUL). */
static void describe_char(const char *p, char *out, size_t cap) {
  if (*p) snprintf(out, cap, "'%c'", *p);
  else snprintf(out, cap, "end of expression");
}

/* digits [. digits] [e [+-] digits], or . digits. Copied out before strtod
 * so that strtod's extras (hex, inf, nan) can never sneak in. */
static expr_node *parse_number(expr_parser *ps) {
  const char *start = ps->p, *q = ps->p;
  while (is_digit(*q)) q++;
  if (*q == '.') q++;
  while (is_digit(*q)) q++;
  if (*q == 'e' || *q == 'E') {
    const char *r = q + 1;
    if (*r == '+' || *r == '-') r++;
    if (is_digit(*r)) {
      while (is_digit(*r)) r++;
      q = r;
    }
  }
  char buf[64];
  if (q - start >= (long)sizeof buf) {
    set_fault(ps->fault, column(ps, start), "number too long");
    return NULL;
  }
  memcpy(buf, start, (size_t)(q - start));
  buf[q - start] = '\0';
  ps->p = q;
  expr_node *e = new_node(ps, EXPR_NUM, column(ps, start), NULL, NULL);
  if (e) e->num = strtod(buf, NULL);
  return e;
}

static int function_kind(const char *name) {
  if (strcmp(name, "sqrt") == 0) return EXPR_SQRT;
  if (strcmp(name, "exp") == 0) return EXPR_EXP;
  if (strcmp(name, "log") == 0) return EXPR_LOG;
  return -1;
}

/* Counts one level of nesting; fails past EXPR_MAX_DEPTH. */
static int enter(expr_parser *ps, int col) {
  if (++ps->depth <= EXPR_MAX_DEPTH) return 0;
  set_fault(ps->fault, col, "expression nested too deeply");
  return -1;
}

/* After '(' has been read: expr ')'. */
static expr_node *parse_group_rest(expr_parser *ps, const char *open) {
  if (enter(ps, column(ps, open))) return NULL;
  expr_node *e = parse_expr(ps);
  ps->depth--;
  if (!e) return NULL;
  skip_space(ps);
  if (*ps->p != ')') {
    char what[32];
    describe_char(ps->p, what, sizeof what);
    set_fault(ps->fault, column(ps, ps->p), "expected ')', found %s", what);
    expr_free(e);
    return NULL;
  }
  ps->p++;
  return e;
}

/* identifier, or identifier '(' expr ')' when it names a function. */
static expr_node *parse_name(expr_parser *ps) {
  const char *start = ps->p;
  while (is_name_start(*ps->p) || is_digit(*ps->p)) ps->p++;
  size_t len = (size_t)(ps->p - start);
  int col = column(ps, start);
  if (len >= sizeof ((expr_node *)0)->name) {
    set_fault(ps->fault, col, "identifier too long (max 63 characters)");
    return NULL;
  }
  char name[64];
  memcpy(name, start, len);
  name[len] = '\0';
  skip_space(ps);
  if (*ps->p == '(') {
    int fn = function_kind(name);
    if (fn < 0) {
      set_fault(ps->fault, col, "unknown function '%s' (known: sqrt, exp, log)",
                name);
      return NULL;
    }
    const char *open = ps->p++;
    expr_node *arg = parse_group_rest(ps, open);
    return arg ? new_node(ps, fn, col, arg, NULL) : NULL;
  }
  expr_node *e = new_node(ps, EXPR_NAME, col, NULL, NULL);
  if (e) memcpy(e->name, name, len + 1);
  return e;
}

static expr_node *parse_primary(expr_parser *ps) {
  skip_space(ps);
  char ch = *ps->p;
  if (is_digit(ch) || (ch == '.' && is_digit(ps->p[1]))) return parse_number(ps);
  if (is_name_start(ch)) return parse_name(ps);
  if (ch == '(') {
    const char *open = ps->p++;
    return parse_group_rest(ps, open);
  }
  char what[32];
  describe_char(ps->p, what, sizeof what);
  set_fault(ps->fault, column(ps, ps->p),
            "expected a number, identifier or '(', found %s", what);
  return NULL;
}

/* unary := '-' unary | primary ('^' unary)?  (so -2^2 = -(2^2), 2^3^2 = 2^9) */
static expr_node *parse_unary(expr_parser *ps) {
  skip_space(ps);
  if (*ps->p == '-') {
    int col = column(ps, ps->p++);
    if (enter(ps, col)) return NULL;
    expr_node *a = parse_unary(ps);
    ps->depth--;
    return a ? new_node(ps, EXPR_NEG, col, a, NULL) : NULL;
  }
  expr_node *base = parse_primary(ps);
  if (!base) return NULL;
  skip_space(ps);
  if (*ps->p != '^') return base;
  int col = column(ps, ps->p++);
  if (enter(ps, col)) {
    expr_free(base);
    return NULL;
  }
  expr_node *power = parse_unary(ps);
  ps->depth--;
  if (!power) {
    expr_free(base);
    return NULL;
  }
  return new_node(ps, EXPR_POW, col, base, power);
}

/* Binary operators by precedence level; "//" precedes "/" so it wins. */
static const struct {
  const char *token;
  int kind, level;
} binary_ops[] = {
    {"+", EXPR_ADD, 0},       {"-", EXPR_SUB, 0},
    {"//", EXPR_FLOORDIV, 1}, {"/", EXPR_DIV, 1},
    {"*", EXPR_MUL, 1},       {"%", EXPR_MOD, 1},
};

/* Consumes an operator of `level` at ps->p; -1 if there is none. */
static int read_op(expr_parser *ps, int level) {
  for (size_t i = 0; i < sizeof binary_ops / sizeof binary_ops[0]; i++) {
    size_t n = strlen(binary_ops[i].token);
    if (binary_ops[i].level == level && strncmp(ps->p, binary_ops[i].token, n) == 0) {
      ps->p += n;
      return binary_ops[i].kind;
    }
  }
  return -1;
}

/* One left-associative level: operand (op operand)*. */
static expr_node *parse_level(expr_parser *ps, expr_node *(*operand)(expr_parser *),
                              int level) {
  expr_node *left = operand(ps);
  while (left) {
    skip_space(ps);
    int col = column(ps, ps->p);
    int kind = read_op(ps, level);
    if (kind < 0) return left;
    expr_node *right = operand(ps);
    if (!right) {
      expr_free(left);
      return NULL;
    }
    left = new_node(ps, kind, col, left, right);
  }
  return NULL;
}

static expr_node *parse_term(expr_parser *ps) { return parse_level(ps, parse_unary, 1); }

static expr_node *parse_expr(expr_parser *ps) { return parse_level(ps, parse_term, 0); }

/* Long operator chains build deep trees that evaluation recurses over, so
 * length is bounded as well as nesting. */
#define EXPR_MAX_LEN 1024

static expr_node *parse_all(const char *text, expr_fault *f) {
  if (strlen(text) > EXPR_MAX_LEN) {
    set_fault(f, 1, "expression longer than %d characters", EXPR_MAX_LEN);
    return NULL;
  }
  expr_parser ps = {.text = text, .p = text, .fault = f};
  expr_node *e = parse_expr(&ps);
  if (!e) return NULL;
  skip_space(&ps);
  if (*ps.p) {
    set_fault(f, column(&ps, ps.p), "unexpected '%c' after the expression", *ps.p);
    expr_free(e);
    return NULL;
  }
  return e;
}

static int eval_node(const expr_node *e, expr_lookup_fn lookup, void *ctx,
                     double *out, expr_fault *f);

/* Applies a function or a unary minus to an evaluated operand. */
static int apply_unary(const expr_node *e, double a, double *out, expr_fault *f) {
  switch (e->kind) {
    case EXPR_NEG: *out = -a; return 0;
    case EXPR_EXP: *out = exp(a); return 0;
    case EXPR_SQRT:
      if (a < 0) return set_fault(f, e->col, "sqrt of a negative number (%g)", a), -1;
      *out = sqrt(a);
      return 0;
    case EXPR_LOG:
      if (a <= 0) return set_fault(f, e->col, "log of a non-positive number (%g)", a), -1;
      *out = log(a);
      return 0;
  }
  return set_fault(f, e->col, "internal: bad unary node %d", e->kind), -1;
}

static int apply_binary(const expr_node *e, double a, double b, double *out,
                        expr_fault *f) {
  int divides = e->kind == EXPR_DIV || e->kind == EXPR_FLOORDIV || e->kind == EXPR_MOD;
  if (divides && b == 0) return set_fault(f, e->col, "division by zero"), -1;
  switch (e->kind) {
    case EXPR_ADD: *out = a + b; return 0;
    case EXPR_SUB: *out = a - b; return 0;
    case EXPR_MUL: *out = a * b; return 0;
    case EXPR_DIV: *out = a / b; return 0;
    case EXPR_FLOORDIV: *out = floor(a / b); return 0;
    case EXPR_MOD: *out = a - b * floor(a / b); return 0;
    case EXPR_POW: *out = pow(a, b); return 0;
  }
  return set_fault(f, e->col, "internal: bad binary node %d", e->kind), -1;
}

static int eval_inner(const expr_node *e, expr_lookup_fn lookup, void *ctx,
                      double *out, expr_fault *f) {
  double a, b;
  switch (e->kind) {
    case EXPR_NUM: *out = e->num; return 0;
    case EXPR_NAME:
      if (!lookup || lookup(ctx, e->name, out) != 0)
        return set_fault(f, e->col, "unknown identifier '%s'", e->name), -1;
      return 0;
    case EXPR_NEG: case EXPR_SQRT: case EXPR_EXP: case EXPR_LOG:
      if (eval_node(e->a, lookup, ctx, &a, f)) return -1;
      return apply_unary(e, a, out, f);
  }
  if (eval_node(e->a, lookup, ctx, &a, f) || eval_node(e->b, lookup, ctx, &b, f))
    return -1;
  return apply_binary(e, a, b, out, f);
}

/* Every intermediate must stay finite: an inf or NaN would otherwise slip
 * through into a shape or an init scale. */
static int eval_node(const expr_node *e, expr_lookup_fn lookup, void *ctx,
                     double *out, expr_fault *f) {
  if (eval_inner(e, lookup, ctx, out, f)) return -1;
  if (!isfinite(*out)) return set_fault(f, e->col, "result is not a finite number"), -1;
  return 0;
}

expr_node *expr_parse(const char *text, lt_error *err) {
  expr_fault f;
  expr_node *e = parse_all(text, &f);
  if (!e) lt_fail(err, "column %d: %s", f.col, f.msg);
  return e;
}

int expr_eval(const expr_node *e, expr_lookup_fn lookup, void *ctx,
              double *out, lt_error *err) {
  expr_fault f;
  if (eval_node(e, lookup, ctx, out, &f) == 0) return 0;
  return lt_fail(err, "column %d: %s", f.col, f.msg);
}

/* Parse + eval, leaving any fault in f. */
static int eval_text(const char *text, expr_lookup_fn lookup, void *ctx,
                     double *out, expr_fault *f) {
  expr_node *e = parse_all(text, f);
  if (!e) return -1;
  int rc = eval_node(e, lookup, ctx, out, f);
  expr_free(e);
  return rc;
}

int expr_eval_text(const char *text, expr_lookup_fn lookup, void *ctx,
                   double *out, lt_error *err) {
  expr_fault f;
  if (eval_text(text, lookup, ctx, out, &f) == 0) return 0;
  return lt_fail(err, "column %d: %s", f.col, f.msg);
}

int expr_eval_text_at(const char *text, const char *file, int line, int col,
                      expr_lookup_fn lookup, void *ctx, double *out,
                      lt_error *err) {
  expr_fault f;
  if (eval_text(text, lookup, ctx, out, &f) == 0) return 0;
  return lt_fail(err, "%s:%d:%d: %s", file, line, col + f.col - 1, f.msg);
}
