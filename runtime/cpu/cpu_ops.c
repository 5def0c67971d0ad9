/* cpu_ops.c: the CPU backend's kernels, fp32. One function per op and
 * direction, in the order of cpu_ops.h. GEMMs go through BLAS; loops over
 * rows are split across threads with OpenMP. Kernels that add into a shared
 * parameter gradient split the work over columns (or table rows) so no two
 * threads ever write the same element, and sum in a fixed order, so results
 * do not depend on the thread count. */
#include "cpu_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "ir.h"

/* Width of the column strips that accumulating kernels hand to one thread:
 * wide enough that each row read is a contiguous run. */
#define COL_STRIP 64

/* Reductions keep LANES partial results: GCC vectorises them (a single float
 * accumulator is a dependency chain it may not reorder), and the fixed order
 * keeps results independent of the thread count. */
#define LANES 8

/* Below this many elements (or multiply-adds) of work, starting and joining
 * threads costs more than it saves; on a busy machine far more, as waiting
 * threads spin while the one they wait for is not scheduled. */
static int worth_threads(int64_t work) { return work >= 32768; }

static float dot(const float *a, const float *b, int n) {
  float lane[LANES] = {0};
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int k = 0; k < LANES; k++) lane[k] += a[i + k] * b[i + k];
  float s = 0.0f;
  for (; i < n; i++) s += a[i] * b[i];
  for (int k = 0; k < LANES; k++) s += lane[k];
  return s;
}

/* ------------------------------------------------------------------------ */
/* embeddings */

void cpu_embedding_forward(float *y, const int32_t *ids, const float *table,
                           int N, int C) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int n = 0; n < N; n++) {
    memcpy(y + (int64_t)n * C, table + (int64_t)ids[n] * C,
           (size_t)C * sizeof(float));
  }
}

/* Several tokens may share an id, so rows of dtable collide: each thread owns
 * a strip of columns and walks all tokens, which is race-free. */
void cpu_embedding_backward(float *dtable, const int32_t *ids, const float *dy,
                            int N, int C) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int c0 = 0; c0 < C; c0 += COL_STRIP) {
    int c1 = c0 + COL_STRIP < C ? c0 + COL_STRIP : C;
    for (int n = 0; n < N; n++) {
      float *drow = dtable + (int64_t)ids[n] * C;
      const float *dyrow = dy + (int64_t)n * C;
      for (int c = c0; c < c1; c++) drow[c] += dyrow[c];
    }
  }
}

void cpu_pos_embedding_forward(float *y, const float *table, int N, int T,
                               int C) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int n = 0; n < N; n++) {
    memcpy(y + (int64_t)n * C, table + (int64_t)(n % T) * C,
           (size_t)C * sizeof(float));
  }
}

/* Table row t collects the rows n = b*T + t; one thread per t. */
void cpu_pos_embedding_backward(float *dtable, const float *dy, int N, int T,
                                int C) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int t = 0; t < T; t++) {
    float *drow = dtable + (int64_t)t * C;
    for (int n = t; n < N; n += T) {
      const float *dyrow = dy + (int64_t)n * C;
      for (int c = 0; c < C; c++) drow[c] += dyrow[c];
    }
  }
}

void cpu_add(float *y, const float *a, const float *b, int64_t n) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void cpu_mul(float *y, const float *a, const float *b, int64_t n) {
#pragma omp parallel for simd if (worth_threads(n))
  for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

void cpu_scale(float *y, const float *x, float factor, int64_t n) {
#pragma omp parallel for simd if (worth_threads(n))
  for (int64_t i = 0; i < n; i++) y[i] = factor * x[i];
}

/* ------------------------------------------------------------------------ */
/* layernorm */

void cpu_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                           const float *w, const float *b, int N, int C,
                           float eps) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int n = 0; n < N; n++) {
    const float *xr = x + (int64_t)n * C;
    float *yr = y + (int64_t)n * C;
    float m = 0.0f;
    for (int c = 0; c < C; c++) m += xr[c];
    m /= C;
    float var = 0.0f; /* two passes: no cancellation from E[x^2] - m^2 */
    for (int c = 0; c < C; c++) var += (xr[c] - m) * (xr[c] - m);
    var /= C;
    float s = 1.0f / sqrtf(var + eps);
    for (int c = 0; c < C; c++) yr[c] = (xr[c] - m) * s * w[c] + b[c];
    mean[n] = m;
    rstd[n] = s;
  }
}

/* dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)),
 * with norm = (x - mean) * rstd and dnorm = dy * w. */
void cpu_layernorm_backward_x(float *dx, const float *dy, const float *x,
                              const float *w, const float *mean,
                              const float *rstd, int N, int C) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int n = 0; n < N; n++) {
    const float *xr = x + (int64_t)n * C;
    const float *dyr = dy + (int64_t)n * C;
    float *dxr = dx + (int64_t)n * C;
    float m = mean[n], s = rstd[n];
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
    for (int c = 0; c < C; c++) {
      float norm = (xr[c] - m) * s;
      float dnorm = dyr[c] * w[c];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * norm;
    }
    dnorm_mean /= C;
    dnorm_norm_mean /= C;
    for (int c = 0; c < C; c++) {
      float norm = (xr[c] - m) * s;
      float dnorm = dyr[c] * w[c];
      dxr[c] = s * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
    }
  }
}

void cpu_layernorm_backward_wb(float *dw, float *db, const float *dy,
                               const float *x, const float *mean,
                               const float *rstd, int N, int C) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int c0 = 0; c0 < C; c0 += COL_STRIP) {
    int c1 = c0 + COL_STRIP < C ? c0 + COL_STRIP : C;
    for (int n = 0; n < N; n++) {
      const float *xr = x + (int64_t)n * C;
      const float *dyr = dy + (int64_t)n * C;
      for (int c = c0; c < c1; c++) {
        dw[c] += dyr[c] * (xr[c] - mean[n]) * rstd[n];
        db[c] += dyr[c];
      }
    }
  }
}

/* ------------------------------------------------------------------------ */
/* RMSNorm, in Hugging Face's order of operations: w * (x * rstd) */

void cpu_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w,
                         int N, int C, float eps, float w_offset) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int n = 0; n < N; n++) {
    const float *xr = x + (int64_t)n * C;
    float *yr = y + (int64_t)n * C;
    float s = 1.0f / sqrtf(dot(xr, xr, C) / C + eps);
    for (int c = 0; c < C; c++) yr[c] = (w_offset + w[c]) * (xr[c] * s);
    rstd[n] = s;
  }
}

/* dx = rstd * (dnorm - norm * mean(dnorm * norm)), with norm = x * rstd and
 * dnorm = dy * w: layernorm's without the mean terms. */
void cpu_rmsnorm_backward_x(float *dx, const float *dy, const float *x,
                            const float *w, const float *rstd, int N, int C,
                            float w_offset) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int n = 0; n < N; n++) {
    const float *xr = x + (int64_t)n * C;
    const float *dyr = dy + (int64_t)n * C;
    float *dxr = dx + (int64_t)n * C;
    float s = rstd[n], dnorm_norm = 0.0f;
    for (int c = 0; c < C; c++) dnorm_norm += dyr[c] * (w_offset + w[c]) * (xr[c] * s);
    dnorm_norm /= C;
    for (int c = 0; c < C; c++)
      dxr[c] = s * (dyr[c] * (w_offset + w[c]) - xr[c] * s * dnorm_norm);
  }
}

void cpu_rmsnorm_backward_w(float *dw, const float *dy, const float *x,
                            const float *rstd, int N, int C) {
#pragma omp parallel for if (worth_threads((int64_t)N * C))
  for (int c0 = 0; c0 < C; c0 += COL_STRIP) {
    int c1 = c0 + COL_STRIP < C ? c0 + COL_STRIP : C;
    for (int n = 0; n < N; n++) {
      const float *xr = x + (int64_t)n * C;
      const float *dyr = dy + (int64_t)n * C;
      for (int c = c0; c < c1; c++) dw[c] += dyr[c] * (xr[c] * rstd[n]);
    }
  }
}

/* ------------------------------------------------------------------------ */
/* linear: all products are row-major BLAS calls; the layout only decides
 * which operand is transposed. */

void cpu_linear_forward(float *y, const float *x, const float *W,
                        const float *bias, int N, int in, int out, int layout) {
  /* start from the bias (or zero) and let the GEMM add x W^T on top */
#pragma omp parallel for if (worth_threads((int64_t)N * out))
  for (int n = 0; n < N; n++) {
    float *yr = y + (int64_t)n * out;
    if (bias) memcpy(yr, bias, (size_t)out * sizeof(float));
    else memset(yr, 0, (size_t)out * sizeof(float));
  }
  if (layout == IR_LAYOUT_OUT_IN) /* W [out, in]: y += x W^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x,
                in, W, in, 1.0f, y, out);
  else /* W [in, out]: y += x W */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, out, in, 1.0f,
                x, in, W, out, 1.0f, y, out);
}

void cpu_linear_backward_x(float *dx, const float *dy, const float *W, int N,
                           int in, int out, int layout) {
  if (layout == IR_LAYOUT_OUT_IN) /* dx = dy W */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f,
                dy, out, W, in, 0.0f, dx, in);
  else /* dx = dy W^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, in, out, 1.0f, dy,
                out, W, out, 0.0f, dx, in);
}

void cpu_linear_backward_w(float *dW, const float *dy, const float *x, int N,
                           int in, int out, int layout) {
  if (layout == IR_LAYOUT_OUT_IN) /* dW[out, in] += dy^T x */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy,
                out, x, in, 1.0f, dW, in);
  else /* dW[in, out] += x^T dy */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, N, 1.0f, x,
                in, dy, out, 1.0f, dW, out);
}

void cpu_linear_backward_b(float *db, const float *dy, int N, int out) {
#pragma omp parallel for if (worth_threads((int64_t)N * out))
  for (int o0 = 0; o0 < out; o0 += COL_STRIP) {
    int o1 = o0 + COL_STRIP < out ? o0 + COL_STRIP : out;
    for (int n = 0; n < N; n++) {
      const float *dyr = dy + (int64_t)n * out;
      for (int o = o0; o < o1; o++) db[o] += dyr[o];
    }
  }
}

/* ------------------------------------------------------------------------ */
/* GELU, tanh approximation: 0.5 x (1 + tanh(k (x + 0.044715 x^3))) */

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

/* exp(x) written so that GCC vectorises loops calling it (expf calls are
 * not): Cephes' expf, x = n ln2 + r with |r| <= ln2/2, exp(r) by a minimax
 * polynomial, 2^n through the exponent bits. Within 1.4 ulp of exp over
 * [-87.3, 88.3]; larger inputs overflow to inf, smaller ones give 2^-126. */
static inline float vec_expf(float x) {
  x = x < 88.37f ? x : 88.37f; /* written so that a NaN becomes 88.37: */
  x = x > -87.3f ? x : -87.3f; /* the int conversion below must not see one */
  float n = floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union { int32_t i; float f; } scale = {((int32_t)n + 127) << 23};
  return p * scale.f;
}

/* 0.5 (1 + tanh(u)) = sigmoid(2u): the sigmoid form has no cancellation for
 * negative x, where 1 + tanh(u) loses most of its digits. */
static inline float gelu_sigmoid(float x, float *e_out) {
  float e = vec_expf(-2.0f * GELU_K * (x + GELU_A * x * x * x));
  *e_out = e;
  return 1.0f / (1.0f + e);
}

void cpu_gelu_forward(float *y, const float *x, int64_t n) {
#pragma omp parallel for simd if (worth_threads(n))
  for (int64_t i = 0; i < n; i++) {
    float e;
    y[i] = x[i] * gelu_sigmoid(x[i], &e);
  }
}

void cpu_gelu_backward(float *dx, const float *dy, const float *x, int64_t n) {
#pragma omp parallel for simd if (worth_threads(n))
  for (int64_t i = 0; i < n; i++) {
    /* d/dx x s(2u) = s + x s (1 - s) 2 u', and s (1 - s) = s^2 e exactly */
    float v = x[i], e;
    float s = gelu_sigmoid(v, &e);
    float du = 2.0f * GELU_K * (1.0f + 3.0f * GELU_A * v * v);
    dx[i] = (s + v * s * s * e * du) * dy[i];
  }
}

/* ------------------------------------------------------------------------ */
/* SiLU: x * sigmoid(x) = x / (1 + exp(-x)) */

void cpu_silu_forward(float *y, const float *x, int64_t n) {
#pragma omp parallel for simd if (worth_threads(n))
  for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + vec_expf(-x[i]));
}

void cpu_silu_backward(float *dx, const float *dy, const float *x, int64_t n) {
#pragma omp parallel for simd if (worth_threads(n))
  for (int64_t i = 0; i < n; i++) {
    /* d/dx x s = s + x s (1 - s), and 1 - s = s e with e = exp(-x) */
    float e = vec_expf(-x[i]);
    float s = 1.0f / (1.0f + e);
    dx[i] = (s + x[i] * s * s * e) * dy[i];
  }
}

/* ------------------------------------------------------------------------ */
/* custom activations: a scalar function per element, in double */

void cpu_activation_forward(float *y, const float *x, int64_t n, cpu_scalar_fn f,
                            const void *ctx) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; i++) y[i] = (float)f(ctx, x[i]);
}

void cpu_activation_backward(float *dx, const float *dy, const float *x, int64_t n,
                             cpu_scalar_fn df, const void *ctx) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; i++) dx[i] = (float)(df(ctx, x[i]) * dy[i]);
}

/* ------------------------------------------------------------------------ */
/* rotary position embedding */

/* Frequencies handled per pass: their cosines and sines live on the stack. */
#define ROPE_CHUNK 64

/* The angles' frequencies and cos/sin scale: a table (scaled RoPE, from
 * ir_rope_inv_freq) or, without one, Hugging Face's default expression. */
typedef struct {
  const float *inv_freq; /* [rot/2], or NULL: 1 / theta^(2i/rot) */
  double theta;
  float scale;
} rope_freqs;

static float rope_freq(const rope_freqs *f, int i, int rot) {
  if (f->inv_freq) return f->inv_freq[i];
  return 1.0f / powf((float)f->theta, (float)(2 * i) / (float)rot);
}

/* Turns every (i, i + rot/2) pair of every head by sign * angle. Rows of one
 * position share their angles, so one thread takes a position across the
 * batch and computes its cosines once. The angles are formed in float as
 * Hugging Face does (pos * inv_freq, then cos and sin times the scale):
 * pretrained models learned with exactly these rounded angles. */
/* Row b*T + t is at position pos0 + t. */
static void rope_rotate(float *y, const float *x, int N, int T, int pos0, int heads,
                        int hd, int rot, const rope_freqs *f, float sign) {
  int half = rot / 2, B = N / T;
  int64_t width = (int64_t)heads * hd;
#pragma omp parallel for if (worth_threads((int64_t)N * width))
  for (int t = 0; t < T; t++) {
    for (int i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
      int m = half - i0 < ROPE_CHUNK ? half - i0 : ROPE_CHUNK;
      float cs[ROPE_CHUNK], sn[ROPE_CHUNK];
      for (int i = 0; i < m; i++) {
        float angle = (float)(pos0 + t) * rope_freq(f, i0 + i, rot);
        cs[i] = cosf(angle) * f->scale;
        sn[i] = sign * (sinf(angle) * f->scale);
      }
      for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++) {
          int64_t off = ((int64_t)b * T + t) * width + (int64_t)h * hd + i0;
          const float *x1 = x + off, *x2 = x1 + half;
          float *y1 = y + off, *y2 = y1 + half;
          for (int i = 0; i < m; i++) {
            float a = x1[i], c = x2[i];
            y1[i] = a * cs[i] - c * sn[i];
            y2[i] = c * cs[i] + a * sn[i];
          }
        }
    }
    for (int b = 0; b < B && rot < hd; b++)
      for (int h = 0; h < heads; h++) {
        int64_t off = ((int64_t)b * T + t) * width + (int64_t)h * hd + rot;
        memcpy(y + off, x + off, (size_t)(hd - rot) * sizeof(float));
      }
  }
}

void cpu_rope_forward(float *y, const float *x, int N, int T, int heads,
                      int hd, int rot, double theta) {
  rope_freqs f = {NULL, theta, 1.0f};
  rope_rotate(y, x, N, T, 0, heads, hd, rot, &f, 1.0f);
}

void cpu_rope_forward_at(float *y, const float *x, int N, int T, int pos0, int heads, int hd,
                         int rot, double theta) {
  rope_freqs f = {NULL, theta, 1.0f};
  rope_rotate(y, x, N, T, pos0, heads, hd, rot, &f, 1.0f);
}

void cpu_rope_backward(float *dx, const float *dy, int N, int T, int heads,
                       int hd, int rot, double theta) {
  rope_freqs f = {NULL, theta, 1.0f};
  rope_rotate(dx, dy, N, T, 0, heads, hd, rot, &f, -1.0f);
}

void cpu_rope_table_forward(float *y, const float *x, int N, int T, int pos0, int heads,
                            int hd, int rot, const float *inv_freq, float scale) {
  rope_freqs f = {inv_freq, 0, scale};
  rope_rotate(y, x, N, T, pos0, heads, hd, rot, &f, 1.0f);
}

void cpu_rope_table_backward(float *dx, const float *dy, int N, int T, int heads, int hd,
                             int rot, const float *inv_freq, float scale) {
  rope_freqs f = {inv_freq, 0, scale};
  rope_rotate(dx, dy, N, T, 0, heads, hd, rot, &f, -1.0f);
}

/* ------------------------------------------------------------------------ */
/* split / concat */

void cpu_split(float *const *outs, const int64_t *widths, int k,
               const float *x, int N) {
  int64_t width = 0;
  for (int i = 0; i < k; i++) width += widths[i];
#pragma omp parallel for if (worth_threads(N * width))
  for (int n = 0; n < N; n++) {
    const float *xr = x + n * width;
    for (int i = 0; i < k; i++) {
      memcpy(outs[i] + n * widths[i], xr, (size_t)widths[i] * sizeof(float));
      xr += widths[i];
    }
  }
}

void cpu_concat(float *x, const float *const *pieces, const int64_t *widths,
                int k, int N) {
  int64_t width = 0;
  for (int i = 0; i < k; i++) width += widths[i];
#pragma omp parallel for if (worth_threads(N * width))
  for (int n = 0; n < N; n++) {
    float *xr = x + n * width;
    for (int i = 0; i < k; i++) {
      size_t bytes = (size_t)widths[i] * sizeof(float);
      if (pieces[i]) memcpy(xr, pieces[i] + n * widths[i], bytes);
      else memset(xr, 0, bytes);
      xr += widths[i];
    }
  }
}

/* ------------------------------------------------------------------------ */
/* attention. Row n = b*T + t; query head h sits in columns [h*hd, (h+1)*hd)
 * of q and y, and reads kv head h / group (group = heads / kv_heads). */

static int64_t attention_work(int B, int T, int heads, int hd) {
  return (int64_t)B * heads * T * T * hd;
}

/* Keys are scored ATT_CHUNK at a time into a stack row: bounded memory at any
 * T, no allocation, and the exponentials of a chunk form one vector loop. */
#define ATT_CHUNK 64

typedef struct {
  int T, heads, kv_heads, hd, causal;
  int64_t qstride, kstride; /* row strides of q (and y) and of k (and v) */
  float scale, softcap;     /* softcap 0: none */
  int window;               /* 0: none */
} att_shape;

static att_shape att_shape_of(int T, int heads, int kv_heads, int hd, int causal,
                              const cpu_att_opts *o) {
  const cpu_att_opts none = {0};
  if (!o) o = &none;
  return (att_shape){T, heads, kv_heads, hd, causal, (int64_t)heads * hd,
                     (int64_t)kv_heads * hd, o->scale > 0 ? o->scale : 1.0f / sqrtf((float)hd),
                     o->softcap, causal ? o->window : 0};
}

/* The keys query t sees: [*first, end). */
static int att_keys(const att_shape *a, int t, int *first) {
  *first = a->window > 0 && t - a->window + 1 > 0 ? t - a->window + 1 : 0;
  return a->causal ? t + 1 : a->T;
}

/* s[j] = score of key j + offset for the chunk's keys, the score soft-capped
 * when a->softcap > 0; dcap[j] (when not NULL) = d capped / d uncapped =
 * 1 - tanh^2. Returns the maximum. */
static float score_chunk(float *s, float *dcap, const float *qr, const float *k, int m,
                         float offset, const att_shape *a) {
  float mx = -INFINITY;
  for (int j = 0; j < m; j++) {
    float x = a->scale * dot(qr, k + j * a->kstride, a->hd);
    if (a->softcap > 0) {
      float t = tanhf(x / a->softcap);
      x = a->softcap * t;
      if (dcap) dcap[j] = 1.0f - t * t;
    } else if (dcap) {
      dcap[j] = 1.0f;
    }
    s[j] = x + offset;
    mx = s[j] > mx ? s[j] : mx;
  }
  return mx;
}

/* One query row in one pass (online softmax): a running maximum rescales the
 * partial sum and output whenever a chunk raises it. */
static void attention_forward_row(float *yr, float *lse, const float *qr,
                                  const float *k, const float *v, int nkeys,
                                  const att_shape *a) {
  float s[ATT_CHUNK], mx = -INFINITY, sum = 0.0f;
  memset(yr, 0, (size_t)a->hd * sizeof(float));
  for (int j0 = 0; j0 < nkeys; j0 += ATT_CHUNK) {
    int m = nkeys - j0 < ATT_CHUNK ? nkeys - j0 : ATT_CHUNK;
    float cmax = score_chunk(s, NULL, qr, k + j0 * a->kstride, m, 0.0f, a);
    if (cmax > mx) {
      float r = mx == -INFINITY ? 0.0f : vec_expf(mx - cmax);
      sum *= r;
      for (int d = 0; d < a->hd; d++) yr[d] *= r;
      mx = cmax;
    }
    for (int j = 0; j < m; j++) s[j] = vec_expf(s[j] - mx);
    for (int j = 0; j < m; j++) {
      const float *vr = v + (j0 + j) * a->kstride;
      sum += s[j];
      for (int d = 0; d < a->hd; d++) yr[d] += s[j] * vr[d];
    }
  }
  float inv = 1.0f / sum;
  for (int d = 0; d < a->hd; d++) yr[d] *= inv;
  *lse = mx + logf(sum);
}

void cpu_attention_forward(float *y, float *lse, const float *q,
                           const float *k, const float *v, int B, int T,
                           int heads, int kv_heads, int hd, int causal, const cpu_att_opts *o) {
  att_shape a = att_shape_of(T, heads, kv_heads, hd, causal, o);
  int group = heads / kv_heads;
  int threads = worth_threads(attention_work(B, T, heads, hd));
#pragma omp parallel for collapse(2) if (threads)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < heads; h++) {
      int64_t kv_off = (int64_t)b * T * a.kstride + (h / group) * hd;
      for (int t = 0; t < T; t++) {
        int64_t n = (int64_t)b * T + t, qoff = n * a.qstride + h * hd;
        int first, end = att_keys(&a, t, &first);
        int64_t kv = kv_off + first * a.kstride;
        attention_forward_row(y + qoff, lse + n * heads + h, q + qoff, k + kv, v + kv,
                              end - first, &a);
      }
    }
  }
}

/* Rows at positions pos0 .. pos0 + rows - 1 of one sequence, against the
 * cached keys and values of positions [0, pos0 + rows): row by row the
 * training forward's arithmetic (a decoded token's logits equal the full
 * forward's at its position). */
void cpu_attention_cached(float *y, const float *q, const float *kc, const float *vc, int rows,
                          int pos0, int heads, int kv_heads, int hd, const cpu_att_opts *o) {
  att_shape a = att_shape_of(pos0 + rows, heads, kv_heads, hd, 1, o);
  int group = heads / kv_heads;
#pragma omp parallel for collapse(2) if (worth_threads(attention_work(1, pos0 + rows, heads, hd)))
  for (int r = 0; r < rows; r++)
    for (int h = 0; h < heads; h++) {
      int first, end = att_keys(&a, pos0 + r, &first);
      int64_t kv = first * a.kstride + (h / group) * hd, qoff = r * a.qstride + h * hd;
      float lse;
      attention_forward_row(y + qoff, &lse, q + qoff, kc + kv, vc + kv, end - first, &a);
    }
}

/* Backward of one query row (flash-attention style): with p_j recomputed
 * from lse and D = dy.y,
 *   dv_j += p_j dy,  ds_j = p_j (dy.v_j - D) dcap_j,
 *   dq += scale ds_j k_j,  dk_j += scale ds_j q,
 * dcap_j = 1 - tanh^2 of a soft-capped score (else 1). */
static void attention_backward_row(float *dqr, float *dk, float *dv, const float *dyr,
                                   const float *qr, const float *k, const float *v,
                                   float D, float lse, int nkeys, const att_shape *a) {
  float p[ATT_CHUNK], dcap[ATT_CHUNK];
  for (int j0 = 0; j0 < nkeys; j0 += ATT_CHUNK) {
    int m = nkeys - j0 < ATT_CHUNK ? nkeys - j0 : ATT_CHUNK;
    score_chunk(p, dcap, qr, k + j0 * a->kstride, m, -lse, a);
    for (int j = 0; j < m; j++) p[j] = vec_expf(p[j]);
    for (int j = 0; j < m; j++) {
      int64_t off = (int64_t)(j0 + j) * a->kstride;
      const float *kr = k + off, *vr = v + off;
      float *dkr = dk + off, *dvr = dv + off;
      float ds = a->scale * p[j] * (dot(dyr, vr, a->hd) - D) * dcap[j];
      for (int d = 0; d < a->hd; d++) {
        dvr[d] += p[j] * dyr[d];
        dqr[d] += ds * kr[d];
        dkr[d] += ds * qr[d];
      }
    }
  }
}

static void attention_backward_head(float *dq, float *dk, float *dv,
                                    const float *dy, const float *q,
                                    const float *k, const float *v,
                                    const float *y, const float *lse, int b,
                                    int h, const att_shape *a) {
  int T = a->T, hd = a->hd;
  int64_t kv_off = (int64_t)b * T * a->kstride + (h / (a->heads / a->kv_heads)) * hd;
  for (int t = 0; t < T; t++) {
    int64_t n = (int64_t)b * T + t, qoff = n * a->qstride + h * hd;
    float D = dot(dy + qoff, y + qoff, hd);
    int first, end = att_keys(a, t, &first);
    int64_t kv = kv_off + first * a->kstride;
    attention_backward_row(dq + qoff, dk + kv, dv + kv, dy + qoff, q + qoff, k + kv, v + kv, D,
                           lse[n * a->heads + h], end - first, a);
  }
}

/* One thread per (batch, kv head): it owns that kv head's dk/dv rows and the
 * dq columns of every query head in its group, so no writes collide. */
void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dy,
                            const float *q, const float *k, const float *v,
                            const float *y, const float *lse, int B, int T,
                            int heads, int kv_heads, int hd, int causal,
                            const cpu_att_opts *o) {
  att_shape a = att_shape_of(T, heads, kv_heads, hd, causal, o);
  int group = heads / kv_heads;
  int64_t qstride = a.qstride, kstride = a.kstride;
  int threads = worth_threads(attention_work(B, T, heads, hd));
#pragma omp parallel for collapse(2) if (threads)
  for (int b = 0; b < B; b++) {
    for (int g = 0; g < kv_heads; g++) {
      for (int t = 0; t < T; t++) {
        int64_t n = (int64_t)b * T + t;
        size_t kbytes = (size_t)hd * sizeof(float);
        memset(dk + n * kstride + g * hd, 0, kbytes);
        memset(dv + n * kstride + g * hd, 0, kbytes);
        memset(dq + n * qstride + g * group * hd, 0, kbytes * group);
      }
      for (int h = g * group; h < (g + 1) * group; h++)
        attention_backward_head(dq, dk, dv, dy, q, k, v, y, lse, b, h, &a);
    }
  }
}

/* ------------------------------------------------------------------------ */
/* cross entropy */

/* Rows are summed in this many fixed chunks, then the chunks in order, so the
 * loss is bit-identical whatever the thread count. */
#define CE_CHUNKS 64

/* The maximum, NaN if any element is. */
static float row_max(const float *x, int n) {
  float lane[LANES];
  for (int k = 0; k < LANES; k++) lane[k] = -INFINITY;
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int k = 0; k < LANES; k++)
      lane[k] = x[i + k] > lane[k] || x[i + k] != x[i + k] ? x[i + k] : lane[k];
  float mx = -INFINITY;
  for (; i < n; i++) mx = x[i] > mx || x[i] != x[i] ? x[i] : mx;
  for (int k = 0; k < LANES; k++) mx = lane[k] > mx || lane[k] != lane[k] ? lane[k] : mx;
  return mx;
}

/* sum of x[0..n), float lanes within blocks of 512, the blocks in double:
 * close to a double sum at the speed of a vectorised float one. */
static double sum_floats(const float *x, int n) {
  double total = 0.0;
  for (int b = 0; b < n; b += 512) {
    int end = b + 512 < n ? b + 512 : n, i = b;
    float lane[LANES] = {0};
    for (; i + LANES <= end; i += LANES)
      for (int k = 0; k < LANES; k++) lane[k] += x[i + k];
    for (; i < end; i++) total += x[i];
    for (int k = 0; k < LANES; k++) total += lane[k];
  }
  return total;
}

/* sum_i exp(x_i - shift) without storing the terms, blocked as sum_floats. */
static double sum_exp(const float *x, int n, float shift) {
  double total = 0.0;
  for (int b = 0; b < n; b += 512) {
    int end = b + 512 < n ? b + 512 : n, i = b;
    float lane[LANES] = {0};
    for (; i + LANES <= end; i += LANES)
      for (int k = 0; k < LANES; k++) lane[k] += vec_expf(x[i + k] - shift);
    for (; i < end; i++) total += vec_expf(x[i] - shift);
    for (int k = 0; k < LANES; k++) total += lane[k];
  }
  return total;
}

/* A row whose maximum is NaN or +inf has a NaN loss and gradient (x - max
 * is NaN somewhere), as in torch; vec_expf would clamp the NaN away. */
static int row_undefined(float mx) { return isnan(mx) || mx == INFINITY; }

/* -log softmax(row)[target] = log sum_i exp(row_i - max) + max - row_target */
static double cross_entropy_row(const float *row, int target, int V) {
  float mx = row_max(row, V);
  if (row_undefined(mx)) return NAN;
  return log(sum_exp(row, V, mx)) + mx - row[target];
}

int cpu_counted_rows(const int32_t *targets, int N) {
  int c = 0;
  for (int n = 0; n < N; n++) c += targets[n] >= 0;
  return c;
}

float cpu_cross_entropy_forward(const float *logits, const int32_t *targets,
                                int N, int V) {
  const int counted = cpu_counted_rows(targets, N);
  double chunk_sum[CE_CHUNKS];
#pragma omp parallel for if (worth_threads((int64_t)N * V))
  for (int c = 0; c < CE_CHUNKS; c++) {
    double s = 0.0;
    for (int n = (int)((int64_t)N * c / CE_CHUNKS);
         n < (int)((int64_t)N * (c + 1) / CE_CHUNKS); n++)
      if (targets[n] >= 0) s += cross_entropy_row(logits + (int64_t)n * V, targets[n], V);
    chunk_sum[c] = s;
  }
  double total = 0.0;
  for (int c = 0; c < CE_CHUNKS; c++) total += chunk_sum[c];
  return counted ? (float)(total / counted) : 0.0f;
}

/* The row's max is read first; then each element is read just before it is
 * overwritten by its exponential, which is then scaled: safe in place. */
void cpu_cross_entropy_backward(float *dlogits, const float *logits,
                                const int32_t *targets, int N, int V,
                                float scale) {
  const int counted = cpu_counted_rows(targets, N);
  const float sn = counted ? scale / (float)counted : 0.0f;
#pragma omp parallel for if (worth_threads((int64_t)N * V))
  for (int n = 0; n < N; n++) {
    const float *row = logits + (int64_t)n * V;
    float *drow = dlogits + (int64_t)n * V;
    if (targets[n] < 0) {
      memset(drow, 0, sizeof *drow * (size_t)V);
      continue;
    }
    float mx = row_max(row, V);
    if (row_undefined(mx)) {
      for (int i = 0; i < V; i++) drow[i] = NAN;
      continue;
    }
    for (int i = 0; i < V; i++) drow[i] = vec_expf(row[i] - mx);
    float f = (float)(sn / sum_floats(drow, V));
    for (int i = 0; i < V; i++) drow[i] *= f;
    drow[targets[n]] -= sn;
  }
}
