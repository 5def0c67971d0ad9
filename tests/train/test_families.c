/* The model families (models/<model_type>.yaml) on Hugging Face folders made
 * by transformers' own classes (tests/fixtures/families/<type>/, from
 * scripts/make-family-fixtures.py): the folder loads as `lisa train FOLDER`
 * loads it (config.json picks the family and its sizes, the folder's
 * safetensors are the weights), then one forward and backward on the
 * fixture's batch (loss, logits, every parameter gradient) and ten steps
 * of full fine-tuning with AdamW and clipping (losses, gradient norms,
 * final weights) must match PyTorch; and a LISA run through the whole
 * trainer (a Lua policy drawing the fixture's sets, blocks staying, leaving
 * and coming back fresh) must match PyTorch's replay of it. */
#include <unistd.h>

#include "check.h"
#include "data.h"
#include "fixture_util.h"

typedef struct {
  const char *type;
  int n_tensors; /* parameter tensors the checkpoint holds */
} family_case;

static const family_case cases[] = {
    {"qwen2", 1 + 12 * 2 + 2},  /* untied: embed, 12 per block, norm, lm_head */
    {"qwen3", 1 + 11 * 2 + 1},  /* tied: the head is the embedding table */
    {"gemma", 1 + 9 * 2 + 1},   /* tied */
    {"phi", 1 + 14 * 2 + 4},    /* final LayerNorm w, b; lm_head w, b */
    {"olmo2", 1 + 11 * 2 + 2},
    {"gpt_neox", 1 + 12 * 2 + 3}, /* interleaved query_key_value, untied embed_out */
    {"gemma2", 1 + 11 * 2 + 1},   /* tied */
    {"gemma3_text", 1 + 13 * 2 + 1}, /* tied; local and global layers: two rope bases */
    {"mistral", 1 + 9 * 2 + 2},   /* a sliding window of 5 keys at 9 positions */
    {"llama", 1 + 9 * 2 + 2},
    {"llama3", 1 + 9 * 2 + 1},     /* LLaMA 3's rope scaling; tied */
    {"phi3", 1 + 6 * 2 + 1},       /* fused qkv and gate_up; a window of 5; tied */
    {"phi3-longrope", 1 + 6 * 2 + 2}, /* longrope's long factors (seq > original 4) */
    {"granite", 1 + 9 * 2 + 1},    /* LLaMA with four multipliers; tied */
    {"starcoder2", 1 + 16 * 2 + 2}, /* LayerNorms, biases, a window of 5; tied */
    {"qwen2-yarn", 1 + 12 * 2 + 2}, /* YaRN: scaled frequencies, cos and sin x 1.14 */
    {"gpt2", 2 + 12 * 2 + 2},     /* wte, wpe; tied head */
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static int setup(fixture *fx, const family_case *c) {
  char model[128], ref[160];
  snprintf(model, sizeof model, "tests/fixtures/families/%s", c->type);
  snprintf(ref, sizeof ref, "%s/ref.safetensors", model);
  return fx_setup(fx, model, NULL, ref);
}

static void test_forward(void) {
  for (int i = 0; i < N_CASES; i++) {
    fixture fx;
    if (setup(&fx, &cases[i])) continue;
    printf("%s\n", cases[i].type);
    fx_check_forward(&fx, 1e-5);
    fx_teardown(&fx);
  }
}

static void test_gradients(void) {
  for (int i = 0; i < N_CASES; i++) {
    fixture fx;
    if (setup(&fx, &cases[i])) continue;
    train_zero_grads(&fx.s);
    train_forward(&fx.s);
    train_backward(&fx.s, NULL, 1.0f);
    int n = fx_compare_params(&fx, ms_grad, "grad.", 1e-4, NULL);
    CHECK_MSG(n == cases[i].n_tensors, "%s: %d gradients compared", cases[i].type, n);
    fx_teardown(&fx);
  }
}

/* A loss mask: targets -100 (DATA_IGNORE here) leave the loss, which is the
 * mean over the rest, and its gradients, as transformers computes them. */
static void test_masked_loss(void) {
  for (int i = 0; i < N_CASES; i++) {
    fixture fx;
    char model[128], ref[160];
    snprintf(model, sizeof model, "tests/fixtures/families/%s", cases[i].type);
    snprintf(ref, sizeof ref, "%s/masked.safetensors", model);
    if (fx_setup(&fx, model, NULL, ref)) continue;
    int ignored = 0;
    for (int n = 0; n < fx.s.N; n++)
      if (fx.s.targets[n] == -100) fx.s.targets[n] = DATA_IGNORE, ignored++;
    CHECK_MSG(ignored > fx.s.N / 3, "%s: %d ignored targets", cases[i].type, ignored);
    int64_t n;
    float *want = fx_read_ref(&fx, "loss", &n);
    train_zero_grads(&fx.s);
    const float loss = train_forward(&fx.s);
    if (want) CHECK_CLOSE(loss, want[0], 0, 1e-5);
    train_backward(&fx.s, NULL, 1.0f);
    const int compared = fx_compare_params(&fx, ms_grad, "grad.", 1e-4, NULL);
    CHECK_MSG(compared == cases[i].n_tensors, "%s: %d gradients compared", cases[i].type, compared);
    free(want);
    fx_teardown(&fx);
  }
}

static void test_full_finetune(void) {
  for (int i = 0; i < N_CASES; i++) {
    fixture fx;
    if (setup(&fx, &cases[i])) continue;
    printf("%s\n", cases[i].type);
    fx_check_adamw_trajectory(&fx, cases[i].n_tensors, 1);
    fx_teardown(&fx);
  }
}


/* The fixture's LISA data (one window) and a policy returning its sets. */
static int write_lisa_inputs(const fixture *fx, const char *data, const char *policy,
                             int interval, lt_error *err) {
  const st_tensor *t = st_find(&fx->ref, "lisa.tokens");
  int32_t tok[64];
  int64_t n = t ? st_numel(t) : 0;
  if (!t || n > 64) return lt_fail(err, "no lisa.tokens of at most 64 ids");
  if (st_read_i32(&fx->ref, t, tok, err)) return -1;
  uint32_t ids[64];
  for (int64_t i = 0; i < n; i++) ids[i] = (uint32_t)tok[i];
  if (data_write(data, ids, n, err)) return -1;
  FILE *f = fopen(policy, "w");
  if (!f) return lt_fail(err, "%s: cannot write", policy);
  char sets[128];
  snprintf(sets, sizeof sets, "%s", st_metadata(&fx->ref, "lisa_sets"));
  for (char *c = sets; *c; c++) *c = *c == '[' ? '{' : *c == ']' ? '}' : *c;
  fprintf(f, "local sets = %s\nfunction sample_layers(ctx)\n  return sets[ctx.step // %d + 1]\nend\n",
          sets, interval);
  return fclose(f) ? lt_fail(err, "%s: cannot write", policy) : 0;
}

/* Final weights after LISA, tensor by tensor; elements whose gradient is
 * noise (fx_mark_noise_only: the key biases' dims that RoPE leaves alone
 * get an exactly-zero gradient plus rounding) are left out. */
static void check_lisa_final(const trainer *t, fixture *fx, const char *type) {
  unsigned char *noise = calloc((size_t)fx->s.n_param_scalars, 1);
  fx_mark_noise_only(fx, noise);
  int compared = 0;
  double worst = 0;
  for (int p = 0; p < t->ir.n_params; p++) {
    const ir_param *par = &t->ir.params[p];
    for (int l = 0; l < (par->section == IR_BLOCK ? t->ir.n_layer : 1); l++) {
      char hf[200], name[256];
      ir_param_hf_name(par, l, hf, sizeof hf);
      snprintf(name, sizeof name, "lisa.final.%s", hf);
      int64_t n = ir_param_numel(par);
      float *lisa = fx_param_ref(fx, "lisa.final.", p, l, 1);
      if (!lisa) continue;
      float *ours = malloc(sizeof(float) * (size_t)n);
      memcpy(ours, ms_param(&t->state, p, l), sizeof(float) * (size_t)n);
      const unsigned char *skip = noise + (ms_param(&fx->s, p, l) - fx->s.params);
      for (int64_t i = 0; i < n; i++)
        if (skip[i]) ours[i] = lisa[i] = 0.0f;
      double e = fx_rel_l2(ours, lisa, n);
      CHECK_MSG(e < 1e-4, "%s %s: relative L2 error %.3g", type, name, e);
      worst = fmax(worst, e);
      compared++;
      free(ours), free(lisa);
    }
  }
  free(noise);
  printf("%s LISA: %d tensors, worst relative L2 error %.3g\n", type, compared, worst);
}

static void test_lisa(void) {
  char dir[] = "/tmp/lisa-families-XXXXXX";
  if (!mkdtemp(dir)) return;
  char data[64], policy[64];
  snprintf(data, sizeof data, "%s/tokens.bin", dir);
  snprintf(policy, sizeof policy, "%s/sets.lua", dir);
  for (int i = 0; i < N_CASES; i++) {
    fixture fx;
    if (setup(&fx, &cases[i])) continue;
    lt_error err;
    int interval = (int)fx_meta_float(&fx, "lisa_interval");
    char model[128];
    snprintf(model, sizeof model, "%s/tests/fixtures/families/%s", src_path("."), cases[i].type);
    if (write_lisa_inputs(&fx, data, policy, interval, &err)) {
      CHECK_MSG(0, "%s", err.msg);
      fx_teardown(&fx);
      continue;
    }
    train_config c = {0};
    c.model_path = model, c.data_path = data, c.method = TRAIN_LISA;
    c.batch = fx.s.B, c.seq = fx.s.T, c.seed = 7;
    c.opt = opt_defaults();
    c.opt.lr = fx_meta_float(&fx, "lr"), c.opt.weight_decay = fx_meta_float(&fx, "weight_decay");
    c.opt.beta1 = fx_meta_float(&fx, "beta1"), c.opt.beta2 = fx_meta_float(&fx, "beta2");
    c.opt.eps = fx_meta_float(&fx, "eps");
    c.opt.grad_clip = fx_meta_float(&fx, "lisa_grad_clip");
    c.train_embed = c.train_head = 1;
    c.lisa = (lisa_sampler_config){.mode = LISA_SAMPLE_LUA, .gamma = 1, .interval = interval,
                                   .lua_path = policy};
    int64_t n_losses = 0, n_norms;
    float *losses = fx_read_ref(&fx, "lisa.losses", &n_losses);
    float *norms = fx_read_ref(&fx, "lisa.grad_norms", &n_norms);
    trainer t;
    if (trainer_create(&t, &c, &err)) {
      CHECK_MSG(0, "%s: %s", cases[i].type, err.msg);
    } else {
      for (int s = 0; losses && norms && s < n_losses; s++) {
        train_step_stats st;
        if (trainer_step(&t, &st, &err)) {
          CHECK_MSG(0, "%s", err.msg);
          break;
        }
        CHECK_MSG(fabs(st.loss - losses[s]) <= 1e-5 * losses[s], "%s step %d: loss %.7f, torch %.7f",
                  cases[i].type, s, st.loss, losses[s]);
        CHECK_MSG(fabs(st.grad_norm - norms[s]) <= 1e-4 * norms[s],
                  "%s step %d: norm %.6f, torch %.6f", cases[i].type, s, st.grad_norm, norms[s]);
      }
      CHECK(n_losses == 12);
      check_lisa_final(&t, &fx, cases[i].type);
    }
    trainer_free(&t);
    free(losses);
    free(norms);
    fx_teardown(&fx);
  }
  unlink(data), unlink(policy), rmdir(dir);
}

int main(void) {
  RUN(test_forward);
  RUN(test_gradients);
  RUN(test_masked_loss);
  RUN(test_full_finetune);
  RUN(test_lisa);
  return check_exit();
}
