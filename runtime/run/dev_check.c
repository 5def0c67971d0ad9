/* dev_check.c: a program's paths on a device against the CPU executor. */
#include "dev_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "cpu_ops.h"
#include "executor.h"

/* One path's buffers for one section instance: on the device, and a host
 * mirror each is converted through. */
typedef struct {
  const gen_path *p;
  void **mem;
  unsigned char **host;
} path_run;

typedef struct {
  const dt_device *dev;
  ms_state *s;
  int bf16;
  const dev_check_options *o;
  dev_check_report *out;
} checker;

static void free_run(const dt_device *dev, path_run *r) {
  for (int b = 0; r->p && b < r->p->n_bufs; b++) {
    if (r->mem && r->mem[b]) dev->release(dev->ctx, r->mem[b]);
    if (r->host) free(r->host[b]);
  }
  free(r->mem), free(r->host);
  memset(r, 0, sizeof *r);
}

static int alloc_run(const dt_device *dev, const gen_path *p, path_run *r, lt_error *err) {
  r->p = p;
  r->mem = calloc((size_t)p->n_bufs + 1, sizeof *r->mem);
  r->host = calloc((size_t)p->n_bufs + 1, sizeof *r->host);
  if (!r->mem || !r->host) return lt_fail(err, "out of memory");
  for (int b = 0; b < p->n_bufs; b++) {
    const gen_buffer *bf = &p->bufs[b];
    if (bf->role == GEN_BUF_UNUSED || bf->role == GEN_BUF_VIEW) continue;
    size_t bytes = (size_t)gen_buffer_bytes(bf);
    if (dev->alloc(dev->ctx, bytes, &r->mem[b], err)) return -1;
    if (!(r->host[b] = malloc(bytes ? bytes : 1))) return lt_fail(err, "out of memory");
  }
  return 0;
}

/* The buffer a ref lives in (a view's base) and the ref's start in it. */
static int home_of(const gen_path *p, gen_ref *ref) {
  if (p->bufs[ref->buf].role == GEN_BUF_VIEW) {
    ref->off += p->bufs[ref->buf].off;
    ref->buf = p->bufs[ref->buf].base;
  }
  return ref->buf;
}

/* rows x cols of src (dense floats) into the buffer at ref, uploaded. */
static int put(const checker *c, path_run *r, gen_ref ref, int64_t rows, int64_t cols,
               const float *src, lt_error *err) {
  int b = home_of(r->p, &ref);
  const gen_buffer *bf = &r->p->bufs[b];
  const size_t bytes = (size_t)gen_buffer_bytes(bf);
  if (c->dev->download(c->dev->ctx, r->host[b], r->mem[b], bytes, err)) return -1;
  unsigned char *at = r->host[b] + ref.off * gen_dtype_bytes(bf->dtype);
  if (bf->dtype != GEN_I32) path_write_floats(at, bf->dtype, ref.ld, rows, cols, src);
  else /* ids and targets: the bits as they are */
    for (int64_t i = 0; i < rows; i++) memcpy(at + i * ref.ld * 4, src + i * cols, (size_t)cols * 4);
  return c->dev->upload(c->dev->ctx, r->mem[b], r->host[b], bytes, err);
}

/* rows x cols at ref, downloaded, as dense floats into out. */
static int get(const checker *c, path_run *r, gen_ref ref, int64_t rows, int64_t cols, float *out,
               lt_error *err) {
  int b = home_of(r->p, &ref);
  const gen_buffer *bf = &r->p->bufs[b];
  if (c->dev->download(c->dev->ctx, r->host[b], r->mem[b], (size_t)gen_buffer_bytes(bf), err))
    return -1;
  path_read_floats(r->host[b] + ref.off * gen_dtype_bytes(bf->dtype), bf->dtype, ref.ld, rows, cols,
                   out);
  return 0;
}

static gen_ref whole(const gen_path *p, int b) {
  return (gen_ref){b, 0, gen_buffer_ld(&p->bufs[b])};
}

/* The instance's inputs (forward: inputs and parameters; backward: the
 * incoming gradients and the gradients to add into) from the CPU state,
 * rounded to bf16 on the CPU side too where the device stores bf16. */
static int load_inputs(const checker *c, path_run *r, int inst, int backward, lt_error *err) {
  ms_state *s = c->s;
  const ir_graph *g = &s->ir->sections[ms_inst_section(s, inst)];
  for (int v = 0; v < g->n_values; v++) {
    const gen_buffer *b = &r->p->bufs[v];
    const ir_value *iv = &g->values[v];
    int want = backward ? (b->role == GEN_BUF_INPUT && iv->kind == IR_V_INPUT && v != g->input &&
                           v != g->targets) || b->role == GEN_BUF_PARAM_GRAD
                        : b->role == GEN_BUF_INPUT || b->role == GEN_BUF_PARAM;
    if (!want || !r->mem[v] || !s->bufs[inst][v]) continue;
    float *src = s->bufs[inst][v];
    const int64_t n = b->rows * b->cols;
    if (b->dtype == GEN_BF16 || (c->bf16 && b->dtype != GEN_I32 && b->role != GEN_BUF_PARAM_GRAD))
      for (int64_t i = 0; i < n; i++) src[i] = bf16_to_f32(f32_to_bf16(src[i]));
    if (put(c, r, whole(r->p, v), b->rows, b->cols, src, err)) return -1;
  }
  return 0;
}

/* A value another buffer is an in-place alias of (logits, overwritten by
 * their gradient in the fused cross-entropy): its final contents differ. */
static int aliased(const gen_path *p, int v) {
  for (int b = 0; b < p->n_bufs; b++)
    if (b != v && p->bufs[b].role == GEN_BUF_VIEW && p->bufs[b].base == v && p->bufs[b].off == 0 &&
        p->bufs[b].cols == p->bufs[v].cols)
      return 1;
  return 0;
}

int dev_check_add(dev_check_report *out, const dev_check_row *row) {
  if (out->n == out->cap) {
    int cap = out->cap ? 2 * out->cap : 64;
    dev_check_row *rows = realloc(out->rows, sizeof *rows * (size_t)cap);
    if (!rows) return -1;
    out->rows = rows, out->cap = cap;
  }
  out->rows[out->n++] = *row;
  out->failed += !row->pass;
  return 0;
}

void dev_check_measure(const float *got, const float *want, int64_t n, dev_check_row *row) {
  double e = 0, norm = 0, worst = 0;
  int finite = 1;
  for (int64_t i = 0; i < n; i++) {
    const double d = (double)got[i] - (double)want[i];
    finite &= isfinite(got[i]) != 0;
    e += d * d, norm += (double)want[i] * want[i];
    if (fabs(d) > worst) worst = fabs(d);
  }
  row->max_abs = worst, row->nmse = norm > 0 ? e / norm : e;
  row->pass = finite && row->nmse <= row->limit;
}

/* Every value the path kept in this pass against the CPU's. */
static int compare(const checker *c, path_run *r, int inst, int backward, lt_error *err) {
  ms_state *s = c->s;
  const ir_graph *g = &s->ir->sections[ms_inst_section(s, inst)];
  for (int v = 0; v < g->n_values; v++) {
    const gen_buffer *b = &r->p->bufs[v];
    const int role = b->role == GEN_BUF_VIEW ? r->p->bufs[b->base].role : b->role;
    if (role != GEN_BUF_OUTPUT && role != GEN_BUF_SAVED && role != GEN_BUF_SCRATCH &&
        role != GEN_BUF_PARAM_GRAD)
      continue;
    const ir_value *iv = &g->values[v];
    const int is_bwd = iv->kind == IR_V_GRAD || iv->kind == IR_V_PARAM_GRAD;
    if (is_bwd != backward || !s->bufs[inst][v] || (!backward && aliased(r->p, v))) continue;
    int64_t rows = iv->scalar ? 1 : s->N, cols = iv->cols;
    if (iv->kind == IR_V_PARAM_GRAD) rows = 1, cols = b->rows * b->cols; /* read as one row */
    float *got = malloc(sizeof(float) * (size_t)(rows * cols));
    if (!got) return lt_fail(err, "out of memory");
    dev_check_row row = {.inst = inst, .backward = backward};
    snprintf(row.path, sizeof row.path, "%s", r->p->name);
    snprintf(row.value, sizeof row.value, "%s", iv->name);
    row.limit = c->o->slack * (!c->bf16 ? 1e-7 : backward ? 2e-3 : 3e-4);
    int rc = get(c, r, whole(r->p, v), rows, cols, got, err);
    if (rc == 0) dev_check_measure(got, s->bufs[inst][v], rows * cols, &row);
    free(got);
    if (rc || dev_check_add(c->out, &row)) return rc ? -1 : lt_fail(err, "out of memory");
  }
  return 0;
}

static const char *path_for(int section, int mode) {
  static const char *names[3][3] = {{"embed_train", "embed_train", "embed_forward"},
                                    {"block_active", "block_frozen", "block_forward"},
                                    {"head_train", "head_frozen", "head_train"}};
  return names[section][mode];
}

static path_exec_scalars scalars_of(const ms_state *s, int layer) {
  const int counted = cpu_counted_rows(s->targets, s->N);
  return (path_exec_scalars){s->N, s->B, counted ? 1.0f / (float)counted : 0.0f, {0}, layer, 0};
}

static int run_steps(const checker *c, path_run *r, int from, int to, int layer, lt_error *err) {
  path_exec_scalars sc = scalars_of(c->s, layer);
  return path_exec_run(r->p, from, to, r->mem, &sc, &c->dev->exec, err);
}

int dev_check_is_kernel(const char *step_kernel, const char *name) {
  const size_t n = strlen(name), len = strlen(step_kernel);
  return len > n && step_kernel[len - n - 1] == '_' && !strcmp(step_kernel + len - n, name);
}

static int by_value(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* The time_kernel's steps among [from, to): each launched once, then
 * `repeats` times between marks; the median launch added to kernel_ms. */
static int time_steps(const checker *c, path_run *r, int from, int to, int layer, lt_error *err) {
  const path_profile_timers *tm = &c->dev->timers;
  const int n = c->o->repeats;
  path_exec_scalars sc = scalars_of(c->s, layer);
  for (int k = from; k < to; k++) {
    if (r->p->steps[k].kind != GEN_STEP_KERNEL ||
        !dev_check_is_kernel(r->p->steps[k].kernel, c->o->time_kernel))
      continue;
    float ms[64];
    if (path_exec_run(r->p, k, k + 1, r->mem, &sc, &c->dev->exec, err) || tm->mark(tm->ctx, 0, err))
      return -1;
    for (int i = 0; i < n; i++)
      if (path_exec_run(r->p, k, k + 1, r->mem, &sc, &c->dev->exec, err) ||
          tm->mark(tm->ctx, i + 1, err))
        return -1;
    for (int i = 0; i < n; i++)
      if (tm->elapsed(tm->ctx, i, i + 1, &ms[i], err)) return -1;
    qsort(ms, (size_t)n, sizeof *ms, by_value);
    c->out->kernel_ms += ms[n / 2];
  }
  return 0;
}

/* One pass over every instance, the blocks on `mode`: forward in order,
 * then backward in reverse (not for forward-only blocks). */
static int run_pass(const checker *c, const gen_program *prog, int mode, path_run *runs,
                    lt_error *err) {
  ms_state *s = c->s;
  memset(s->grads, 0, (size_t)s->n_grad_scalars * sizeof(float));
  for (int inst = 0; inst < s->n_inst; inst++) {
    const int sec = ms_inst_section(s, inst);
    const int m = sec == IR_BLOCK ? mode : sec == IR_HEAD && mode == PATH_FORWARD ? PATH_ACTIVE : mode;
    const gen_path *p = gen_find_path(prog, path_for(sec, m));
    if (!p) return 0; /* a program without this mode's paths (decoding) */
    if (alloc_run(c->dev, p, &runs[inst], err) || load_inputs(c, &runs[inst], inst, 0, err))
      return -1;
    exec_forward(s, inst);
    /* an instance is timed once its last values are compared: a kernel run
     * again may overwrite its input (cross-entropy's gradient in place) */
    if (run_steps(c, &runs[inst], 0, p->n_fwd_steps, ms_inst_layer(s, inst), err) ||
        compare(c, &runs[inst], inst, 0, err) ||
        (c->o->time_kernel && p->mode == PATH_FORWARD &&
         time_steps(c, &runs[inst], 0, p->n_steps, ms_inst_layer(s, inst), err)))
      return -1;
  }
  for (int inst = s->n_inst - 1; inst >= 0; inst--) {
    path_run *r = &runs[inst];
    if (r->p->mode == PATH_FORWARD) continue;
    if (load_inputs(c, r, inst, 1, err)) return -1;
    exec_backward(s, inst, r->p->mode == PATH_FROZEN ? PATH_FROZEN : PATH_ACTIVE, 1.0f);
    if (run_steps(c, r, r->p->n_fwd_steps, r->p->n_steps, ms_inst_layer(s, inst), err) ||
        compare(c, r, inst, 1, err) ||
        (c->o->time_kernel && time_steps(c, r, 0, r->p->n_steps, ms_inst_layer(s, inst), err)))
      return -1;
  }
  return 0;
}

int dev_check_program(const gen_program *prog, ms_state *s, const dt_device *dev,
                      const dev_check_options *o, dev_check_report *out, lt_error *err) {
  memset(out, 0, sizeof *out);
  checker c = {dev, s, prog->cfg.dtype == GEN_BF16, o, out};
  if (o->time_kernel && (o->repeats < 1 || o->repeats > 63 || !dev->timers.create))
    return lt_fail(err, "timing %s: %s", o->time_kernel,
                   dev->timers.create ? "1 to 63 repeats" : "this device has no timers");
  if (o->time_kernel && dev->timers.create(dev->timers.ctx, o->repeats + 1, err)) return -1;
  path_run *runs = calloc((size_t)s->n_inst, sizeof *runs);
  if (!runs) return lt_fail(err, "out of memory");
  int rc = 0;
  for (int mode = PATH_ACTIVE; rc == 0 && mode <= PATH_FORWARD; mode++) {
    rc = run_pass(&c, prog, mode, runs, err);
    for (int i = 0; i < s->n_inst; i++) free_run(dev, &runs[i]);
  }
  free(runs);
  if (o->time_kernel && dev->timers.destroy) dev->timers.destroy(dev->timers.ctx);
  return rc;
}

void dev_check_report_free(dev_check_report *r) {
  free(r->rows);
  memset(r, 0, sizeof *r);
}
