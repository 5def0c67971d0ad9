/* LoRA: the adapted tiny GPT-2 against a hand-written PyTorch LoRA
 * (tests/fixtures/gpt2-tiny-lora-ref.safetensors): loss, logits, adapter
 * gradients, and no gradient storage for anything else. Merging adds exactly
 * (alpha / r) B A for both stored layouts and keeps the loss; training
 * leaves every base weight bit-identical; the graph and its errors. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "executor.h"
#include "fixture_util.h"
#include "lora.h"
#include "rng.h"

#define RANK 3
#define ALPHA 5.0

static const char *const gpt2_targets = "attn_w,aproj_w,fc_w,mproj_w";

/* Reads every param with adapter == adapters from f, by its HF name under
 * the model's prefixes. Returns how many tensors it read. */
static int load_params(fixture *fx, const st_file *f, int adapters) {
  int loaded = 0;
  for (int p = 0; p < fx->ir.n_params; p++) {
    const ir_param *par = &fx->ir.params[p];
    if (par->adapter != adapters) continue;
    for (int l = 0; l < (par->section == IR_BLOCK ? fx->ir.n_layer : 1); l++) {
      char hf[200], name[300];
      const st_tensor *t = NULL;
      ir_param_hf_name(par, l, hf, sizeof hf);
      for (int i = 0; i < fx->ir.n_prefixes && !t; i++) {
        snprintf(name, sizeof name, "%s%s", fx->ir.prefixes[i], hf);
        t = st_find(f, name);
      }
      CHECK_MSG(t && st_numel(t) == ir_param_numel(par), "tensor '%s'", hf);
      lt_error err;
      if (t && st_read_f32(f, t, ms_param(&fx->s, p, l), &err) == 0) loaded++;
    }
  }
  return loaded;
}

static unsigned char *adapter_mask(const ir_model *m) {
  unsigned char *trains = malloc((size_t)m->n_params);
  lora_trains(m, trains);
  return trains;
}

/* gpt2-tiny with LoRA on the four Conv1D weights, base weights from the
 * fixture, adapters and batch from the LoRA reference. */
static int setup(fixture *fx) {
  lt_error err;
  memset(fx, 0, sizeof *fx);
  st_file base;
  int rc = yml_load_model(src_path("models/gpt2-tiny.yaml"), &fx->ir, &err) ||
           lora_apply(&fx->ir, RANK, ALPHA, gpt2_targets, &err) ||
           ad_build_backward(&fx->ir, &err) ||
           st_open(&fx->ref, src_path("tests/fixtures/gpt2-tiny-lora-ref.safetensors"), &err);
  if (rc == 0) {
    const st_tensor *in = st_find(&fx->ref, "inputs"), *tg = st_find(&fx->ref, "targets");
    unsigned char *trains = adapter_mask(&fx->ir);
    rc = ms_create_trains(&fx->s, &fx->ir, (int)in->shape[0], (int)in->shape[1],
                          fx->ir.n_layer, 0, trains, &err) ||
         st_read_i32(&fx->ref, in, fx->s.ids, &err) ||
         st_read_i32(&fx->ref, tg, fx->s.targets, &err) ||
         st_open(&base, src_path("tests/fixtures/gpt2-tiny.safetensors"), &err);
    free(trains);
  }
  if (rc) {
    fprintf(stderr, "setup: %s\n", err.msg);
    check_failures++;
    return -1;
  }
  CHECK(load_params(fx, &base, 0) == 4 + 12 * 2);
  CHECK(load_params(fx, &fx->ref, 1) == 8 * 2);
  st_close(&base);
  return 0;
}

/* Every adapter gradient against "grad.<hf name>"; returns how many. */
static int compare_adapter_grads(fixture *fx) {
  int compared = 0;
  for (int p = 0; p < fx->ir.n_params; p++) {
    const ir_param *par = &fx->ir.params[p];
    for (int l = 0; par->adapter && l < fx->ir.n_layer; l++) {
      char hf[200], name[300];
      ir_param_hf_name(par, l, hf, sizeof hf);
      snprintf(name, sizeof name, "grad.%s", hf);
      int64_t n;
      float *ref = fx_read_ref(fx, name, &n);
      if (!ref) continue;
      CHECK(n == ir_param_numel(par));
      double e = fx_max_rel_err(ms_grad(&fx->s, p, l), ref, n);
      CHECK_MSG(e < 1e-4, "%s: max rel err %.3g", name, e);
      compared++;
      free(ref);
    }
  }
  return compared;
}

static void test_matches_torch(void) {
  fixture fx;
  if (setup(&fx)) return;
  fx_check_forward(&fx, 1e-5);
  train_zero_grads(&fx.s);
  train_forward(&fx.s);
  train_backward(&fx.s, NULL, 1.0f);
  int64_t adapter_scalars = 0;
  for (int p = 0; p < fx.ir.n_params; p++) {
    const ir_param *par = &fx.ir.params[p];
    int frozen_has_grad = 0;
    for (int l = 0; l < (par->section == IR_BLOCK ? fx.ir.n_layer : 1); l++)
      frozen_has_grad |= !par->adapter && ms_grad(&fx.s, p, l) != NULL;
    CHECK_MSG(!frozen_has_grad, "frozen param '%s' has gradient storage", par->key);
    if (par->adapter) adapter_scalars += (ir_param_numel(par) + 15) / 16 * 16;
  }
  CHECK(fx.s.grad_slot_base == 0); /* no embed or head gradients */
  CHECK(fx.s.n_grad_scalars == adapter_scalars * fx.ir.n_layer);
  CHECK(compare_adapter_grads(&fx) == 16);
  fx_teardown(&fx);
}

/* The rewired block: y.base = linear(x, W); y = y.base + scale(linear(linear(x, A), B)). */
static void test_graph(void) {
  fixture fx;
  if (setup(&fx)) return;
  const ir_graph *g = &fx.ir.sections[IR_BLOCK];
  int y = ir_find_value(g, "qkv"), base = ir_find_value(g, "qkv.base");
  CHECK(y >= 0 && base >= 0);
  int n_scale = 0, adds_y = 0;
  for (int i = 0; i < g->n_fwd; i++) {
    const ir_op *op = &g->fwd[i];
    if (op->kind == IR_OP_SCALE) {
      n_scale++;
      CHECK(op->factor == ALPHA / RANK);
    }
    if (op->kind == IR_OP_ADD && op->out[0] == y) adds_y = op->in[0] == base;
  }
  CHECK(n_scale == 4 && adds_y);
  int a = ir_find_param(&fx.ir, "attn_w_lora_A"), b = ir_find_param(&fx.ir, "attn_w_lora_B");
  CHECK(a >= 0 && b >= 0);
  if (a >= 0 && b >= 0) {
    const ir_param *pa = &fx.ir.params[a], *pb = &fx.ir.params[b];
    CHECK(strcmp(pa->hf_name, "h.{i}.attn.c_attn.lora_A.weight") == 0);
    CHECK(pa->shape[0] == RANK && pa->shape[1] == 24 && pb->shape[0] == 72 && pb->shape[1] == RANK);
    CHECK(pa->init == IR_INIT_NORMAL && pa->init_std == 1.0 / RANK && pb->init == IR_INIT_ZEROS);
    CHECK(!pa->decay && !pb->decay && pa->layout == IR_LAYOUT_OUT_IN);
  }
  fx_teardown(&fx);
}

static void expect_apply_error(const char *targets, const char *want) {
  ir_model m;
  lt_error err;
  CHECK(yml_load_model(src_path("models/gpt2-tiny.yaml"), &m, &err) == 0);
  CHECK(lora_apply(&m, RANK, ALPHA, targets, &err) == -1);
  CHECK_MSG(strstr(err.msg, want) != NULL, "got \"%s\"", err.msg);
  ir_model_free(&m);
}

static void test_errors(void) {
  expect_apply_error("attn_w,nope", "LoRA target 'nope' is not a block linear weight (these are: "
                                    "attn_w, aproj_w, fc_w, mproj_w)");
  expect_apply_error("ln_1_w", "LoRA target 'ln_1_w' is not a block linear weight");
  expect_apply_error("wte", "LoRA target 'wte' is not a block linear weight");
  ir_model m;
  lt_error err;
  CHECK(yml_load_model(src_path("models/gpt2-tiny.yaml"), &m, &err) == 0);
  CHECK(lora_apply(&m, 0, ALPHA, NULL, &err) == -1);
  CHECK(strcmp(err.msg, "LoRA rank must be at least 1, got 0") == 0);
  CHECK(ad_build_backward(&m, &err) == 0);
  CHECK(lora_apply(&m, RANK, ALPHA, NULL, &err) == -1);
  CHECK(strstr(err.msg, "before the backward graphs are built") != NULL);
  ir_model_free(&m);
}

/* ---- the trainer: merging and training ----------------------------------- */

static char dir[] = "/tmp/lisa-lora-XXXXXX", tokens61[128];

/* llama-tiny has 61 tokens: a token file it accepts. */
static int write_tokens61(void) {
  if (!mkdtemp(dir)) return -1;
  snprintf(tokens61, sizeof tokens61, "%s/tokens-61.bin", dir);
  uint32_t ids[400];
  for (int i = 0; i < 400; i++) ids[i] = (uint32_t)((i * 7 + i / 13) % 61);
  lt_error err;
  return data_write(tokens61, ids, 400, &err);
}

static train_config lora_config(const char *model, const char *data, const char *weights) {
  train_config c = {0};
  c.model_path = src_path(model);
  c.data_path = data;
  c.weights_path = weights;
  c.method = TRAIN_LORA;
  c.steps = 5;
  c.batch = 2, c.seq = 8, c.seed = 11;
  c.opt = opt_defaults();
  c.opt.lr = 1e-2f;
  c.lora_rank = RANK, c.lora_alpha = ALPHA;
  return c;
}

static int create(trainer *t, const train_config *c) {
  lt_error err;
  if (trainer_create(t, c, &err) == 0) return 0;
  fprintf(stderr, "trainer_create: %s\n", err.msg);
  check_failures++;
  trainer_free(t);
  return -1;
}

static float *copy_of(const float *x, int64_t n) {
  float *c = malloc(sizeof(float) * (size_t)n);
  memcpy(c, x, sizeof(float) * (size_t)n);
  return c;
}

/* W' == W + scale * B A, each element computed in double here, in the
 * stored layout (in_out: W[i][o]). */
static int merged_exactly(const ir_param *w, const float *W0, const float *W1, const float *A,
                          const float *B) {
  int in_out = w->layout == IR_LAYOUT_IN_OUT, ok = 1;
  int n_in = (int)w->shape[in_out ? 0 : 1], n_out = (int)w->shape[in_out ? 1 : 0];
  for (int i = 0; i < n_in; i++)
    for (int o = 0; o < n_out; o++) {
      double ba = 0;
      for (int r = 0; r < RANK; r++) ba += (double)B[o * RANK + r] * A[r * n_in + i];
      int at = in_out ? i * n_out + o : o * n_in + i;
      ok &= W1[at] == (float)(W0[at] + ALPHA / RANK * ba);
    }
  return ok;
}

/* Random non-zero adapters, so the merge has something to add. */
static void randomize_adapters(trainer *t) {
  rng_state r;
  rng_seed(&r, 99);
  for (int p = 0; p < t->ir.n_params; p++) {
    if (!t->ir.params[p].adapter) continue;
    for (int l = 0; l < t->ir.n_layer; l++) {
      float *x = ms_param(&t->state, p, l);
      for (int64_t i = 0; i < ir_param_numel(&t->ir.params[p]); i++)
        x[i] = (float)(0.3 * rng_normal(&r));
    }
  }
}

static void merge_case(const char *model, const char *data, const char *weights, int layout) {
  trainer t;
  train_config c = lora_config(model, data, weights);
  if (create(&t, &c)) return;
  randomize_adapters(&t);
  lt_error err;
  CHECK(data_batch(&t.data, 1, 0, t.state.B, t.state.T, t.state.ids, t.state.targets, &err) == 0);
  float before = train_forward(&t.state);
  float *W0[64], *A[64], *B[64];
  int bases[64], layers[64], n = 0;
  for (int p = 0; p < t.ir.n_params; p++) {
    int a, b;
    if (t.ir.params[p].section != IR_BLOCK) continue;
    lora_adapters_of(&t.ir, p, &a, &b);
    for (int l = 0; a >= 0 && l < t.ir.n_layer && n < 64; l++, n++) {
      CHECK(t.ir.params[p].layout == layout);
      bases[n] = p, layers[n] = l;
      W0[n] = copy_of(ms_param(&t.state, p, l), ir_param_numel(&t.ir.params[p]));
      A[n] = copy_of(ms_param(&t.state, a, l), ir_param_numel(&t.ir.params[a]));
      B[n] = copy_of(ms_param(&t.state, b, l), ir_param_numel(&t.ir.params[b]));
    }
  }
  CHECK(n == 4 * t.ir.n_layer || n == 7 * t.ir.n_layer); /* GPT-2: 4 linears, LLaMA: 7 */
  lt_error merge_err;
  CHECK_MSG(trainer_merge_lora(&t, &merge_err) == 0, "%s", merge_err.msg);
  float after = train_forward(&t.state);
  CHECK_CLOSE(after, before, 0, 1e-5);
  for (int k = 0; k < n; k++) {
    const ir_param *w = &t.ir.params[bases[k]];
    CHECK_MSG(merged_exactly(w, W0[k], ms_param(&t.state, bases[k], layers[k]), A[k], B[k]),
              "%s layer %d", w->key, layers[k]);
    int a, b;
    lora_adapters_of(&t.ir, bases[k], &a, &b);
    const float *Bnow = ms_param(&t.state, b, layers[k]);
    int zero = 1;
    for (int64_t i = 0; i < ir_param_numel(&t.ir.params[b]); i++) zero &= Bnow[i] == 0.0f;
    CHECK(zero);
    free(W0[k]), free(A[k]), free(B[k]);
  }
  trainer_free(&t);
}

static void test_merge(void) {
  /* GPT-2's Conv1D stores [in, out]; LLaMA's nn.Linear [out, in] */
  merge_case("models/gpt2-tiny.yaml", src_path("tests/fixtures/tokens-67.bin"),
             src_path("tests/fixtures/gpt2-tiny.safetensors"), IR_LAYOUT_IN_OUT);
  merge_case("models/llama-tiny.yaml", tokens61, src_path("tests/fixtures/llama-tiny.safetensors"),
             IR_LAYOUT_OUT_IN);
}

/* Every non-adapter tensor keeps every bit; every adapter moves. */
static void test_training_freezes_base(void) {
  trainer t, lisa;
  train_config c = lora_config("models/gpt2-tiny.yaml", src_path("tests/fixtures/tokens-67.bin"),
                               src_path("tests/fixtures/gpt2-tiny.safetensors"));
  if (create(&t, &c)) return;
  float *before = copy_of(t.state.params, t.state.n_param_scalars);
  float first = 0, last = 0;
  for (int s = 0; s < 30; s++) {
    train_step_stats st;
    lt_error err;
    CHECK(trainer_step(&t, &st, &err) == 0);
    CHECK(t.sched.n_active == t.ir.n_layer && t.sched.path[0] == PATH_FORWARD);
    if (s == 0) first = st.loss;
    last = st.loss;
  }
  CHECK_MSG(last < first, "loss %g -> %g", first, last);
  for (int p = 0; p < t.ir.n_params; p++) {
    const ir_param *par = &t.ir.params[p];
    int64_t n = ir_param_numel(par);
    for (int l = 0; l < (par->section == IR_BLOCK ? t.ir.n_layer : 1); l++) {
      int64_t off = ms_param(&t.state, p, l) - t.state.params;
      int same = memcmp(before + off, t.state.params + off, sizeof(float) * (size_t)n) == 0;
      CHECK_MSG(same != par->adapter, "%s layer %d: %s", par->key, l,
                same ? "adapter did not train" : "frozen weight changed");
    }
  }
  free(before);
  /* LISA's embedding and head gradients alone outweigh all of LoRA's */
  train_config lc = c;
  lc.method = TRAIN_LISA;
  lc.train_embed = lc.train_head = 1;
  lc.lisa = (lisa_sampler_config){.mode = LISA_SAMPLE_UNIFORM, .gamma = 1, .interval = 5};
  if (create(&lisa, &lc) == 0) {
    CHECK(t.state.bytes_grads < (size_t)lisa.state.grad_slot_base * sizeof(float));
    CHECK(trainer_memory(&t).optimizer == 2 * (uint64_t)t.state.bytes_grads);
    trainer_free(&lisa);
  }
  trainer_free(&t);
}

int main(void) {
  if (write_tokens61()) {
    fprintf(stderr, "cannot write %s\n", tokens61);
    return 1;
  }
  RUN(test_matches_torch);
  RUN(test_graph);
  RUN(test_errors);
  RUN(test_merge);
  RUN(test_training_freezes_base);
  remove(tokens61);
  rmdir(dir);
  return check_exit();
}
