/* cpu_ops.h: the CPU backend's kernels, fp32, one function per op and
 * direction. These are the readable reference every generated GPU kernel is
 * tested against, so clarity beats cleverness; GEMMs go through BLAS and
 * loops over rows through OpenMP.
 *
 * Layout: every activation is row-major [N, width], N = B*T tokens, row
 * n = b*T + t. Attention's q is [N, heads*hd] with head h in columns
 * [h*hd, (h+1)*hd); k and v are [N, kv_heads*hd]. Functions documented as
 * "accumulates" ADD into their output (parameter gradients); all others
 * overwrite. */
#ifndef LT_CPU_OPS_H
#define LT_CPU_OPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* the emulator tests (C++) call these as the reference */
#endif

void cpu_embedding_forward(float *y, const int32_t *ids, const float *table,
                           int N, int C);
/* accumulates into dtable */
void cpu_embedding_backward(float *dtable, const int32_t *ids, const float *dy,
                            int N, int C);

/* y[n] = table[n % T] */
void cpu_pos_embedding_forward(float *y, const float *table, int N, int T,
                               int C);
/* accumulates into dtable */
void cpu_pos_embedding_backward(float *dtable, const float *dy, int N, int T,
                                int C);

void cpu_add(float *y, const float *a, const float *b, int64_t n);
/* element-wise product (mul's backward is two more of them) */
void cpu_mul(float *y, const float *a, const float *b, int64_t n);
/* y = factor * x (its backward is the same: dx = factor * dy); y may alias x */
void cpu_scale(float *y, const float *x, float factor, int64_t n);

/* y = (x - mean) * rstd * w + b; saves mean and rstd per row */
void cpu_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                           const float *w, const float *b, int N, int C,
                           float eps);
void cpu_layernorm_backward_x(float *dx, const float *dy, const float *x,
                              const float *w, const float *mean,
                              const float *rstd, int N, int C);
/* accumulates into dw and db */
void cpu_layernorm_backward_wb(float *dw, float *db, const float *dy,
                               const float *x, const float *mean,
                               const float *rstd, int N, int C);

/* RMSNorm as Hugging Face's LlamaRMSNorm: y = w * (x * rstd) with
 * rstd = 1 / sqrt(mean(x^2) + eps); saves rstd per row. The weight applied
 * is w_offset + w (0 for LLaMA, 1 for Gemma's (1 + w)). Per-head norms are
 * N * heads rows of C / heads. */
void cpu_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w,
                         int N, int C, float eps, float w_offset);
void cpu_rmsnorm_backward_x(float *dx, const float *dy, const float *x,
                            const float *w, const float *rstd, int N, int C,
                            float w_offset);
/* accumulates into dw */
void cpu_rmsnorm_backward_w(float *dw, const float *dy, const float *x,
                            const float *rstd, int N, int C);

/* layout: IR_LAYOUT_OUT_IN (W is [out, in], y = x W^T) or IR_LAYOUT_IN_OUT
 * (W is [in, out], y = x W). bias may be NULL. */
void cpu_linear_forward(float *y, const float *x, const float *W,
                        const float *bias, int N, int in, int out, int layout);
void cpu_linear_backward_x(float *dx, const float *dy, const float *W, int N,
                           int in, int out, int layout);
/* accumulates into dW, in W's stored layout */
void cpu_linear_backward_w(float *dW, const float *dy, const float *x, int N,
                           int in, int out, int layout);
/* accumulates into db */
void cpu_linear_backward_b(float *db, const float *dy, int N, int out);

/* GELU, tanh approximation (GPT-2's gelu_new) */
void cpu_gelu_forward(float *y, const float *x, int64_t n);
void cpu_gelu_backward(float *dx, const float *dy, const float *x, int64_t n);

/* SiLU (swish): x * sigmoid(x) */
void cpu_silu_forward(float *y, const float *x, int64_t n);
void cpu_silu_backward(float *dx, const float *dy, const float *x, int64_t n);

/* A custom element-wise activation y = f(x) (the op `activation`): f is
 * evaluated per element in double through a callback, so this library needs
 * nothing of the expression code; the executor passes expr_eval_x over the
 * model's trees (codegen/ir/expr.h). f must be thread-safe. */
typedef double (*cpu_scalar_fn)(const void *ctx, double x);
void cpu_activation_forward(float *y, const float *x, int64_t n, cpu_scalar_fn f,
                            const void *ctx);
/* dx = dy * df(x), df the derivative */
void cpu_activation_backward(float *dx, const float *dy, const float *x, int64_t n,
                             cpu_scalar_fn df, const void *ctx);

/* Rotary position embedding as Hugging Face's LLaMA applies it (rotate_half):
 * x is [N, heads*hd]; in every head, dims i and i + rot/2 (i < rot/2) turn by
 * the angle pos * theta^(-2i/rot), pos = n % T; dims rot..hd-1 pass through.
 * The backward turns dy back by the same angles. */
void cpu_rope_forward(float *y, const float *x, int N, int T, int heads,
                      int hd, int rot, double theta);
/* As cpu_rope_forward, row b*T + t at position pos0 + t (decoding). */
void cpu_rope_forward_at(float *y, const float *x, int N, int T, int pos0, int heads, int hd,
                         int rot, double theta);
void cpu_rope_backward(float *dx, const float *dy, int N, int T, int heads,
                       int hd, int rot, double theta);
/* Scaled RoPE: the angle pos * inv_freq[i] (inv_freq from ir_rope_inv_freq),
 * cos and sin multiplied by scale (YaRN's attention factor; 1 otherwise).
 * The backward is the transpose: the angles negated, the same scale. */
void cpu_rope_table_forward(float *y, const float *x, int N, int T, int pos0, int heads,
                            int hd, int rot, const float *inv_freq, float scale);
void cpu_rope_table_backward(float *dx, const float *dy, int N, int T, int heads, int hd,
                             int rot, const float *inv_freq, float scale);

/* outs[i] is [N, widths[i]]; x is [N, sum(widths)] */
void cpu_split(float *const *outs, const int64_t *widths, int k,
               const float *x, int N);
/* inverse of split; a NULL piece contributes zeros */
void cpu_concat(float *x, const float *const *pieces, const int64_t *widths,
                int k, int N);

/* Attention's variants; all zero (or a NULL pointer) is plain attention. */
typedef struct {
  float scale;   /* the score is s = scale q.k; 0: 1/sqrt(hd) */
  float softcap; /* > 0: s soft-capped to softcap * tanh(s / softcap) (Gemma 2) */
  int window;    /* > 0 (causal): query t sees keys j with t - j < window (Mistral) */
} cpu_att_opts;

/* Scaled dot-product attention, grouped-query when kv_heads < heads (query
 * head h reads kv head h / (heads / kv_heads)), with o's variants. Saves
 * only lse[N, heads] (log-sum-exp of the scores per query row); backward
 * recomputes the probabilities from it. */
void cpu_attention_forward(float *y, float *lse, const float *q,
                           const float *k, const float *v, int B, int T,
                           int heads, int kv_heads, int hd, int causal, const cpu_att_opts *o);
/* Causal attention of `rows` new query rows at positions pos0.. of one
 * sequence over cached keys and values kc, vc ([pos0 + rows, kv_heads*hd],
 * the new rows already in place): decoding with a KV cache. */
void cpu_attention_cached(float *y, const float *q, const float *kc, const float *vc, int rows,
                          int pos0, int heads, int kv_heads, int hd, const cpu_att_opts *o);
void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dy,
                            const float *q, const float *k, const float *v,
                            const float *y, const float *lse, int B, int T,
                            int heads, int kv_heads, int hd, int causal,
                            const cpu_att_opts *o);

/* Rows whose target counts: a negative target (DATA_IGNORE, transformers'
 * -100) is left out of the loss. */
int cpu_counted_rows(const int32_t *targets, int N);
/* Mean over the counted rows of -log softmax(logits)[target] (0 when none
 * counts); accumulates in double. */
float cpu_cross_entropy_forward(const float *logits, const int32_t *targets,
                                int N, int V);
/* dlogits = (softmax(logits) - onehot(target)) * scale / counted rows, and 0
 * on rows that do not count; dlogits may alias logits (the forward values
 * are then consumed). */
void cpu_cross_entropy_backward(float *dlogits, const float *logits,
                                const int32_t *targets, int N, int V,
                                float scale);

#ifdef __cplusplus
}
#endif

#endif
