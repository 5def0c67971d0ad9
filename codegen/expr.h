/* expr.h: arithmetic expressions over a model's config values.
 *
 * Shapes, init scales and op attributes in the YAML are expressions such as
 * `3*n_embd`, `n_embd/n_head` or `0.02/sqrt(2*n_layer)`. Grammar:
 *   expr := term (('+'|'-') term)*
 *   term := unary (('*'|'/'|'//'|'%') unary)*
 *   unary := '-' unary | primary ('^' unary)?
 *   primary := number | identifier | identifier '(' expr ')' | '(' expr ')'
 * Functions: sqrt, exp, log. Identifiers resolve through a lookup callback.
 * '/' divides exactly, '//' and '%' floor (as in Python), '^' is a power and
 * binds tighter than unary minus (-2^2 = -4).
 * The AST is kept (not just evaluated) so later stages can also differentiate
 * an expression symbolically. */
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

#endif
