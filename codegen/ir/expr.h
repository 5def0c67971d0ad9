/* expr.h: arithmetic expressions over a model's config values, and scalar
 * functions of one variable (custom activations) with their derivatives.
 *
 * Shapes, init scales and op attributes in the YAML are expressions such as
 * `3*n_embd`, `n_embd/n_head` or `0.02/sqrt(2*n_layer)`. Grammar:
 *   expr := term (('+'|'-') term)*
 *   term := unary (('*'|'/'|'//'|'%') unary)*
 *   unary := '-' unary | primary ('^' unary)?
 *   primary := number | identifier | identifier '(' expr ')' | '(' expr ')'
 * Functions: sqrt, exp, log, sigmoid, tanh, erf. Identifiers resolve through
 * a lookup callback.
 * '/' divides exactly, '//' and '%' floor (as in Python), '^' is a power and
 * binds tighter than unary minus (-2^2 = -4).
 * The AST is kept (not just evaluated) so that an activation such as
 * `x * sigmoid(1.702 * x)` can be differentiated symbolically, evaluated per
 * element by the CPU backend and printed as C/CUDA by the code generator. */
#ifndef LT_EXPR_H
#define LT_EXPR_H

#include "err.h"

typedef struct expr_node expr_node;

/* Returns 0 and sets *out, or -1 if the name is unknown. */
typedef int (*expr_lookup_fn)(void *ctx, const char *name, double *out);

/* Parses `text`; on error fills err with "column N: ..." and returns NULL. */
expr_node *expr_parse(const char *text, lt_error *err);
void expr_free(expr_node *e);
/* Evaluates; an unknown identifier or a division by zero is an error. */
int expr_eval(const expr_node *e, expr_lookup_fn lookup, void *ctx,
              double *out, lt_error *err);
/* Convenience: parse + eval in one call. */
int expr_eval_text(const char *text, expr_lookup_fn lookup, void *ctx,
                   double *out, lt_error *err);
/* Same, for text that sits in a file at file:line:col (1-based): messages
 * read "file:line:C: ..." where C is the column of the fault in the file. */
int expr_eval_text_at(const char *text, const char *file, int line, int col,
                      expr_lookup_fn lookup, void *ctx, double *out,
                      lt_error *err);

/* --- functions of one variable: activations --- */

/* Builds y = f(var) from text: parses it, replaces every other identifier by
 * its value through lookup, evaluates the parts that do not depend on var
 * (so a division by zero there is an error now) and differentiates.
 * On success *fn and *dfn are new trees the caller frees; on error both are
 * NULL and err says "column N: ..." (columns inside text). Errors: syntax,
 * an unknown identifier, '//' or '%' over the variable, var^var, c^var
 * with c <= 0. */
int expr_function(const char *text, const char *var, expr_lookup_fn lookup, void *ctx,
                  expr_node **fn, expr_node **dfn, lt_error *err);
/* Same for text at file:line:col (1-based): "file:line:C: ...". */
int expr_function_at(const char *text, const char *var, const char *file, int line,
                     int col, expr_lookup_fn lookup, void *ctx, expr_node **fn,
                     expr_node **dfn, lt_error *err);

/* d e / d var, a new tree (NULL and "column N: ..." on error). Constructors
 * fold constants and drop neutral operands, so d(3*x)/dx is the number 3.
 * Identifiers other than var count as constants. */
expr_node *expr_diff(const expr_node *e, const char *var, lt_error *err);

/* e at var = x, in double, for a tree whose only identifier is the variable
 * (as expr_function builds them): every identifier reads x. A value outside a
 * function's domain (log(-1), sqrt(-1), x/0) gives NaN. Thread-safe. */
double expr_eval_x(const expr_node *e, double x);

/* e as a C/CUDA float expression in buf[cap], NUL-terminated. The tree's one
 * identifier prints as `var` (a tree with two different identifiers is an
 * error). Numbers print as the shortest float literal that reads back as the
 * same float, with an 'f' suffix; functions as expf, logf, sqrtf, tanhf,
 * erff; sigmoid(a) as (1.f / (1.f + expf(-(a)))); a^2..a^4 as products,
 * other powers as powf; '//' and '%' floor as in Python. Every operation is
 * parenthesised. Returns 0, or -1 with a message if buf is too small. */
int expr_to_c(const expr_node *e, const char *var, char *buf, size_t cap, lt_error *err);

/* Number of nodes (to check that derivatives stay small). */
int expr_size(const expr_node *e);
/* 1 and *value (may be NULL) if e is a number, else 0. */
int expr_is_number(const expr_node *e, double *value);

#endif
