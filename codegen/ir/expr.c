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
  EXPR_SQRT, EXPR_EXP, EXPR_LOG, EXPR_SIGMOID, EXPR_TANH, EXPR_ERF,
};

static int is_function(int kind) { return kind >= EXPR_SQRT; }

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
  if (strcmp(name, "sigmoid") == 0) return EXPR_SIGMOID;
  if (strcmp(name, "tanh") == 0) return EXPR_TANH;
  if (strcmp(name, "erf") == 0) return EXPR_ERF;
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
      set_fault(ps->fault, col,
                "unknown function '%s' (known: sqrt, exp, log, sigmoid, tanh, erf)",
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
    case EXPR_SIGMOID: *out = 1 / (1 + exp(-a)); return 0;
    case EXPR_TANH: *out = tanh(a); return 0;
    case EXPR_ERF: *out = erf(a); return 0;
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
  }
  if (e->kind == EXPR_NEG || is_function(e->kind)) {
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

/* --- building trees: constructors that fold constants and drop neutral
 * operands, so that derivatives stay small. Each takes ownership of its
 * operands; a NULL operand (out of memory upstream) gives NULL. --- */

static int is_binary(int kind) { return kind >= EXPR_ADD && kind <= EXPR_POW; }

static expr_node *num_node(double v) {
  expr_node *e = calloc(1, sizeof *e);
  if (e) e->num = v; /* kind EXPR_NUM is 0 */
  return e;
}

static int is_num(const expr_node *e, double v) {
  return e->kind == EXPR_NUM && e->num == v;
}

/* Frees both and says so when either is missing. */
static int lost(expr_node *a, expr_node *b) {
  if (a && b) return 0;
  expr_free(a);
  expr_free(b);
  return 1;
}

/* A node over number operands becomes its value, unless that value is out
 * of the domain or not finite (then the node stays, as written). */
static expr_node *fold(expr_node *e) {
  if (!e || e->a->kind != EXPR_NUM || (e->b && e->b->kind != EXPR_NUM)) return e;
  expr_fault f;
  double v;
  if (eval_node(e, NULL, NULL, &v, &f)) return e;
  expr_free(e);
  return num_node(v);
}

static expr_node *mk(int kind, expr_node *a, expr_node *b) {
  if (is_binary(kind) ? lost(a, b) : !a) return NULL;
  expr_node *e = calloc(1, sizeof *e);
  if (!e) {
    lost(a, NULL);
    expr_free(b);
    return NULL;
  }
  e->kind = kind;
  e->col = a->col;
  e->a = a;
  e->b = b;
  return fold(e);
}

/* Keeps `keep`, frees `drop`. */
static expr_node *pick(expr_node *keep, expr_node *drop) {
  expr_free(drop);
  return keep;
}

static expr_node *mk_neg(expr_node *a) {
  if (a && a->kind == EXPR_NEG) {
    expr_node *inner = a->a;
    free(a);
    return inner;
  }
  return mk(EXPR_NEG, a, NULL);
}

static expr_node *mk_add(expr_node *a, expr_node *b) {
  if (lost(a, b)) return NULL;
  if (is_num(a, 0)) return pick(b, a);
  if (is_num(b, 0)) return pick(a, b);
  return mk(EXPR_ADD, a, b);
}

static expr_node *mk_sub(expr_node *a, expr_node *b) {
  if (lost(a, b)) return NULL;
  if (is_num(b, 0)) return pick(a, b);
  if (is_num(a, 0)) return mk_neg(pick(b, a));
  return mk(EXPR_SUB, a, b);
}

static expr_node *mk_mul(expr_node *a, expr_node *b) {
  if (lost(a, b)) return NULL;
  if (is_num(a, 0)) return pick(a, b);
  if (is_num(b, 0)) return pick(b, a);
  if (is_num(a, 1)) return pick(b, a);
  if (is_num(b, 1)) return pick(a, b);
  return mk(EXPR_MUL, a, b);
}

static expr_node *mk_div(expr_node *a, expr_node *b) {
  if (lost(a, b)) return NULL;
  if (is_num(a, 0) || is_num(b, 1)) return pick(a, b);
  return mk(EXPR_DIV, a, b);
}

static expr_node *mk_pow(expr_node *a, expr_node *b) {
  if (lost(a, b)) return NULL;
  if (is_num(b, 1)) return pick(a, b);
  if (is_num(b, 0)) { /* a^0 = 1: both operands go */
    expr_free(a);
    return pick(num_node(1), b);
  }
  return mk(EXPR_POW, a, b);
}

static expr_node *copy(const expr_node *e) {
  if (!e) return NULL;
  expr_node *c = malloc(sizeof *c);
  if (!c) return NULL;
  *c = *e;
  c->a = copy(e->a);
  c->b = copy(e->b);
  if ((e->a && !c->a) || (e->b && !c->b)) {
    expr_free(c);
    return NULL;
  }
  return c;
}

/* --- symbolic derivatives --- */

static int has_var(const expr_node *e, const char *var) {
  if (!e) return 0;
  if (e->kind == EXPR_NAME) return strcmp(e->name, var) == 0;
  return has_var(e->a, var) || has_var(e->b, var);
}

/* f'(a) for a function node e = f(a). */
static expr_node *outer_derivative(const expr_node *e) {
  switch (e->kind) {
    case EXPR_SQRT: return mk_div(num_node(0.5), copy(e));
    case EXPR_EXP: return copy(e);
    case EXPR_LOG: return mk_div(num_node(1), copy(e->a));
    case EXPR_SIGMOID: return mk_mul(copy(e), mk_sub(num_node(1), copy(e)));
    case EXPR_TANH: return mk_sub(num_node(1), mk_pow(copy(e), num_node(2)));
  }
  /* erf: 2/sqrt(pi) exp(-a^2) */
  return mk_mul(num_node(1.1283791670955126),
                mk(EXPR_EXP, mk_neg(mk_pow(copy(e->a), num_node(2))), NULL));
}

/* (a^b)': a constant exponent gives b a^(b-1) a'; a constant base c^b log(c) b'. */
static expr_node *diff_power(const expr_node *e, const char *var, expr_node *da,
                             expr_node *db) {
  if (has_var(e->b, var))
    return mk_mul(mk_mul(copy(e), mk(EXPR_LOG, copy(e->a), NULL)), pick(db, da));
  expr_node *lower = mk_pow(copy(e->a), mk_sub(copy(e->b), num_node(1)));
  return mk_mul(mk_mul(copy(e->b), lower), pick(da, db));
}

static expr_node *diff_node(const expr_node *e, const char *var, expr_fault *f);

static expr_node *diff_binary(const expr_node *e, const char *var, expr_node *da,
                              expr_fault *f) {
  expr_node *db = diff_node(e->b, var, f);
  if (!db) return pick(NULL, da);
  switch (e->kind) {
    case EXPR_ADD: return mk_add(da, db);
    case EXPR_SUB: return mk_sub(da, db);
    case EXPR_MUL: return mk_add(mk_mul(da, copy(e->b)), mk_mul(copy(e->a), db));
    case EXPR_DIV: /* a'/b - a b'/b^2 */
      return mk_sub(mk_div(da, copy(e->b)),
                    mk_div(mk_mul(copy(e->a), db), mk_pow(copy(e->b), num_node(2))));
  }
  return diff_power(e, var, da, db);
}

/* Why e (which depends on var) cannot be differentiated, or NULL. */
static const char *not_differentiable(const expr_node *e, const char *var) {
  if (e->kind == EXPR_FLOORDIV) return "'//' is not differentiable";
  if (e->kind == EXPR_MOD) return "'%' is not differentiable";
  if (e->kind != EXPR_POW || !has_var(e->b, var)) return NULL;
  if (has_var(e->a, var))
    return "'^' with the variable in both base and exponent is not supported";
  if (e->a->kind == EXPR_NUM && e->a->num <= 0) /* c^x = exp(x log c) */
    return "'^' with the variable in the exponent needs a positive base";
  return NULL;
}

static expr_node *diff_inner(const expr_node *e, const char *var, expr_fault *f) {
  if (!has_var(e, var)) return num_node(0);
  if (e->kind == EXPR_NAME) return num_node(1);
  const char *why = not_differentiable(e, var);
  if (why) {
    set_fault(f, e->col, "%s (differentiating with respect to '%s')", why, var);
    return NULL;
  }
  expr_node *da = diff_node(e->a, var, f);
  if (!da) return NULL;
  if (e->kind == EXPR_NEG) return mk_neg(da);
  if (is_function(e->kind)) return mk_mul(outer_derivative(e), da); /* chain rule */
  return diff_binary(e, var, da, f);
}

/* NULL with f set; a NULL without a message can only be out of memory. */
static expr_node *diff_node(const expr_node *e, const char *var, expr_fault *f) {
  expr_node *d = diff_inner(e, var, f);
  if (!d && !f->msg[0]) set_fault(f, e->col, "out of memory");
  return d;
}

expr_node *expr_diff(const expr_node *e, const char *var, lt_error *err) {
  expr_fault f = {0};
  expr_node *d = diff_node(e, var, &f);
  if (!d) lt_fail(err, "column %d: %s", f.col, f.msg);
  return d;
}

/* --- per-element evaluation --- */

double expr_eval_x(const expr_node *e, double x) {
  expr_fault f; /* only written when a value is out of the domain */
  double a, b, out;
  switch (e->kind) {
    case EXPR_NUM: return e->num;
    case EXPR_NAME: return x;
  }
  a = expr_eval_x(e->a, x);
  if (e->kind == EXPR_NEG || is_function(e->kind))
    return apply_unary(e, a, &out, &f) ? NAN : out;
  b = expr_eval_x(e->b, x);
  return apply_binary(e, a, b, &out, &f) ? NAN : out;
}

/* Every identifier but var becomes its value through lookup. */
static int bind_names(expr_node *e, const char *var, expr_lookup_fn lookup, void *ctx,
                      expr_fault *f) {
  if (!e) return 0;
  if (e->kind == EXPR_NAME && strcmp(e->name, var) != 0) {
    if (!lookup || lookup(ctx, e->name, &e->num) != 0)
      return set_fault(f, e->col, "unknown identifier '%s' (the variable is '%s')",
                       e->name, var), -1;
    e->kind = EXPR_NUM;
    return 0;
  }
  return bind_names(e->a, var, lookup, ctx, f) || bind_names(e->b, var, lookup, ctx, f)
             ? -1 : 0;
}

/* Replaces every subtree without var by its value, so that a fault there
 * (division by zero, log(-1)) is reported now and printed code sees one
 * number per constant. */
static int fold_constants(expr_node *e, const char *var, expr_fault *f) {
  if (!e || e->kind == EXPR_NUM) return 0;
  if (has_var(e, var)) {
    if (fold_constants(e->a, var, f) || fold_constants(e->b, var, f)) return -1;
    int divides = e->kind == EXPR_DIV || e->kind == EXPR_FLOORDIV || e->kind == EXPR_MOD;
    if (divides && is_num(e->b, 0)) return set_fault(f, e->col, "division by zero"), -1;
    return 0;
  }
  double v;
  if (eval_node(e, NULL, NULL, &v, f)) return -1;
  expr_free(e->a);
  expr_free(e->b);
  e->a = e->b = NULL;
  e->kind = EXPR_NUM;
  e->num = v;
  return 0;
}

/* Parse, bind, fold, differentiate; on failure both trees are NULL and f
 * holds the fault. */
static int build_function(const char *text, const char *var, expr_lookup_fn lookup,
                          void *ctx, expr_node **fn, expr_node **dfn, expr_fault *f) {
  *fn = parse_all(text, f);
  *dfn = NULL;
  if (*fn && bind_names(*fn, var, lookup, ctx, f) == 0 &&
      fold_constants(*fn, var, f) == 0)
    *dfn = diff_node(*fn, var, f);
  if (*dfn) return 0;
  expr_free(*fn);
  *fn = NULL;
  return -1;
}

int expr_function(const char *text, const char *var, expr_lookup_fn lookup, void *ctx,
                  expr_node **fn, expr_node **dfn, lt_error *err) {
  expr_fault f = {0};
  if (build_function(text, var, lookup, ctx, fn, dfn, &f) == 0) return 0;
  return lt_fail(err, "column %d: %s", f.col, f.msg);
}

int expr_function_at(const char *text, const char *var, const char *file, int line,
                     int col, expr_lookup_fn lookup, void *ctx, expr_node **fn,
                     expr_node **dfn, lt_error *err) {
  expr_fault f = {0};
  if (build_function(text, var, lookup, ctx, fn, dfn, &f) == 0) return 0;
  return lt_fail(err, "%s:%d:%d: %s", file, line, col + f.col - 1, f.msg);
}

/* --- inspecting trees --- */

int expr_size(const expr_node *e) {
  return e ? 1 + expr_size(e->a) + expr_size(e->b) : 0;
}

int expr_is_number(const expr_node *e, double *value) {
  if (e->kind != EXPR_NUM) return 0;
  if (value) *value = e->num;
  return 1;
}

/* --- printing as C --- */

typedef struct {
  char *p;         /* next free byte */
  size_t left;     /* bytes left, the terminating NUL included */
  int full;        /* something did not fit */
  const char *var; /* what the variable prints as */
  const char *name; /* the tree's identifier, once seen */
  expr_fault *f;
} c_printer;

static void put(c_printer *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(c_printer *o, const char *fmt, ...) {
  if (o->full) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->p, o->left, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= o->left) {
    o->full = 1;
    return;
  }
  o->p += n;
  o->left -= (size_t)n;
}

/* The shortest decimal that reads back as the same float, with a '.' or an
 * exponent so that the 'f' suffix is valid C; negatives in parentheses. */
static int put_float(c_printer *o, const expr_node *e) {
  float v = (float)e->num;
  if (!isfinite(v))
    return set_fault(o->f, e->col, "constant %g does not fit in a float", e->num), -1;
  char buf[40];
  for (int digits = 1; digits <= 9; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
    if (strtof(buf, NULL) == v) break;
  }
  const char *dot = strpbrk(buf, ".e") ? "" : ".";
  put(o, signbit(v) ? "(%s%sf)" : "%s%sf", buf, dot);
  return 0;
}

static int print_c(c_printer *o, const expr_node *e);

/* a^k for k = 2, 3, 4 as a product; other exponents through powf. */
static int print_pow(c_printer *o, const expr_node *e) {
  double k = e->b->kind == EXPR_NUM ? e->b->num : 0;
  if (k != 2 && k != 3 && k != 4) {
    put(o, "powf(");
    if (print_c(o, e->a)) return -1;
    put(o, ", ");
    if (print_c(o, e->b)) return -1;
    put(o, ")");
    return 0;
  }
  put(o, "(");
  for (int i = 0; i < (int)k; i++) {
    if (i) put(o, " * ");
    if (print_c(o, e->a)) return -1;
  }
  put(o, ")");
  return 0;
}

/* Infix operators; "%s" marks where the operands go, in order. */
static const char *c_template(int kind) {
  switch (kind) {
    case EXPR_NEG: return "(-%s)";
    case EXPR_ADD: return "(%s + %s)";
    case EXPR_SUB: return "(%s - %s)";
    case EXPR_MUL: return "(%s * %s)";
    case EXPR_DIV: return "(%s / %s)";
    case EXPR_FLOORDIV: return "floorf(%s / %s)";
    case EXPR_SQRT: return "sqrtf(%s)";
    case EXPR_EXP: return "expf(%s)";
    case EXPR_LOG: return "logf(%s)";
    case EXPR_TANH: return "tanhf(%s)";
    case EXPR_ERF: return "erff(%s)";
    case EXPR_SIGMOID: return "(1.f / (1.f + expf(-(%s))))";
  }
  return NULL;
}

/* Writes tmpl with the operands printed where "%s" stands. */
static int print_template(c_printer *o, const char *tmpl, const expr_node *const *ops) {
  for (const char *t = tmpl; *t; t++) {
    if (t[0] == '%' && t[1] == 's') {
      if (print_c(o, *ops++)) return -1;
      t++;
    } else {
      put(o, "%c", *t);
    }
  }
  return 0;
}

static int print_name(c_printer *o, const expr_node *e) {
  if (o->name && strcmp(o->name, e->name) != 0)
    return set_fault(o->f, e->col, "two identifiers ('%s' and '%s'); bind all but the "
                     "variable first", o->name, e->name), -1;
  o->name = e->name;
  put(o, "%s", o->var);
  return 0;
}

static int print_c(c_printer *o, const expr_node *e) {
  if (o->full) return 0; /* reported once the walk ends */
  if (e->kind == EXPR_NUM) return put_float(o, e);
  if (e->kind == EXPR_NAME) return print_name(o, e);
  if (e->kind == EXPR_POW) return print_pow(o, e);
  const expr_node *ops[4] = {e->a, e->b};
  if (e->kind == EXPR_MOD) { /* a - b floor(a / b), as Python */
    const expr_node *mod_ops[4] = {e->a, e->b, e->a, e->b};
    return print_template(o, "(%s - %s * floorf(%s / %s))", mod_ops);
  }
  const char *tmpl = c_template(e->kind);
  if (!tmpl) return set_fault(o->f, e->col, "internal: bad node %d", e->kind), -1;
  return print_template(o, tmpl, ops);
}

int expr_to_c(const expr_node *e, const char *var, char *buf, size_t cap, lt_error *err) {
  expr_fault f = {0};
  c_printer o = {.p = buf, .left = cap, .var = var, .f = &f};
  if (cap == 0) return lt_fail(err, "expr_to_c: no room for the expression");
  buf[0] = '\0';
  if (print_c(&o, e)) return lt_fail(err, "column %d: %s", f.col, f.msg);
  if (o.full)
    return lt_fail(err, "expr_to_c: the expression does not fit in %zu bytes", cap);
  return 0;
}
