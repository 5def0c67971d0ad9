/* `lisa plan` against the runtime: the fp32 plan of the tiny GPT-2 equals
 * the bytes a trainer really allocates, for full fine-tuning, LISA and LoRA; and
 * for LLaMA-2-7B the paper's ordering holds (LISA E+H+2L below FT, less
 * with fewer blocks) and, in the paper's bf16-true precision, E+H+2L fits
 * in 24 GiB and needs no more than LoRA r128. */
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "lora.h"
#include "model_yaml.h"
#include "memory_plan.h"
#include "train.h"

/* embed, head: LISA's --train-embed / --train-head */
static uint64_t run_bytes_ends(int method, int gamma, int embed, int head) {
  train_config c = {0};
  c.model_path = src_path("models/gpt2-tiny.yaml");
  c.data_path = src_path("tests/fixtures/tokens-67.bin");
  c.method = method;
  c.batch = 3, c.seq = 11, c.seed = 1;
  c.opt = opt_defaults();
  c.train_embed = embed, c.train_head = head;
  c.lisa = (lisa_sampler_config){.mode = LISA_SAMPLE_UNIFORM, .gamma = gamma, .interval = 5};
  c.lora_rank = 4, c.lora_alpha = 8;
  trainer t;
  lt_error err;
  uint64_t bytes = 0;
  if (trainer_create(&t, &c, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    check_failures++;
  } else {
    /* the token file is input, not a planned buffer */
    bytes = trainer_bytes(&t) - (uint64_t)t.data.n_tokens * sizeof(uint32_t);
  }
  trainer_free(&t);
  return bytes;
}

static uint64_t run_bytes(int method, int gamma) { return run_bytes_ends(method, gamma, 1, 1); }

static int load(const char *rel, ir_model *m) {
  lt_error err;
  if (yml_load_model(src_path(rel), m, &err) || ad_build_backward(m, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    check_failures++;
    return -1;
  }
  return 0;
}

static void test_plan_equals_runtime(void) {
  ir_model m;
  if (load("models/gpt2-tiny.yaml", &m)) return;
  lt_error err;
  for (int method = TRAIN_FT; method <= TRAIN_LISA; method++) {
    memory_plan_settings ps = {.method = method, .gamma = 1, .batch = 3, .seq = 11};
    memory_breakdown pm;
    CHECK(memory_plan_compute(&m, &ps, &pm, &err) == 0);
    uint64_t measured = run_bytes(method, 1);
    CHECK_MSG(pm.total == measured, "method %d: plan %llu, runtime %llu", method,
              (unsigned long long)pm.total, (unsigned long long)measured);
  }
  /* LISA with E and/or H frozen: their params hold no gradient or moments
   * (gpt2-tiny's head is the embedding table: it trains while H does) */
  for (int ends = 1; ends < 4; ends++) {
    int embed = !(ends & 1), head = !(ends & 2);
    memory_plan_settings ps = {.method = TRAIN_LISA, .gamma = 1, .batch = 3, .seq = 11,
                               .frozen_embed = !embed, .frozen_head = !head};
    memory_breakdown pm, all;
    memory_plan_settings ps_all = ps;
    ps_all.frozen_embed = ps_all.frozen_head = 0;
    CHECK(memory_plan_compute(&m, &ps, &pm, &err) == 0 &&
          memory_plan_compute(&m, &ps_all, &all, &err) == 0);
    uint64_t measured = run_bytes_ends(TRAIN_LISA, 1, embed, head);
    CHECK_MSG(pm.total == measured, "lisa E %d H %d: plan %llu, runtime %llu", embed, head,
              (unsigned long long)pm.total, (unsigned long long)measured);
    CHECK_MSG(pm.bytes[MEMORY_GRADS] < all.bytes[MEMORY_GRADS] &&
                  pm.bytes[MEMORY_OPTIMIZER] < all.bytes[MEMORY_OPTIMIZER],
              "lisa E %d H %d: grads %llu of %llu", embed, head,
              (unsigned long long)pm.bytes[MEMORY_GRADS], (unsigned long long)all.bytes[MEMORY_GRADS]);
  }
  ir_model_free(&m);
  /* LoRA: the plan of the adapted model, with only the adapters training */
  if (yml_load_model(src_path("models/gpt2-tiny.yaml"), &m, &err) ||
      lora_apply(&m, 4, 8, NULL, &err) || ad_build_backward(&m, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    check_failures++;
    return;
  }
  memory_plan_settings ps = {.method = TRAIN_LORA, .lora_rank = 4, .batch = 3, .seq = 11};
  memory_breakdown pm;
  CHECK(memory_plan_compute(&m, &ps, &pm, &err) == 0);
  uint64_t measured = run_bytes(TRAIN_LORA, 0);
  CHECK_MSG(pm.total == measured, "lora: plan %llu, runtime %llu", (unsigned long long)pm.total,
            (unsigned long long)measured);
  ps.method = TRAIN_FT;
  memory_breakdown ft;
  CHECK(memory_plan_compute(&m, &ps, &ft, &err) == 0);
  CHECK(pm.bytes[MEMORY_GRADS] * 5 < ft.bytes[MEMORY_GRADS]);
  ir_model_free(&m);
}

static const double GIB = 1073741824.0;

static int plan_lora(const char *rel, int rank, const memory_plan_settings *base, memory_breakdown *pm) {
  ir_model m;
  lt_error err;
  int rc = yml_load_model(src_path(rel), &m, &err) || lora_apply(&m, rank, 2.0 * rank, NULL, &err) ||
           ad_build_backward(&m, &err);
  memory_plan_settings ps = *base;
  ps.method = TRAIN_LORA, ps.lora_rank = rank;
  if (!rc) rc = memory_plan_compute(&m, &ps, pm, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg), check_failures++;
  ir_model_free(&m);
  return rc;
}

static void test_llama7b_ordering(void) {
  ir_model m;
  if (load("models/llama2-7b.yaml", &m)) return;
  lt_error err;
  for (int precision = PRECISION_BF16_MIXED; precision <= PRECISION_BF16_TRUE; precision++) {
    memory_breakdown ft, eh, eh2, lora;
    memory_plan_settings ps = {.method = TRAIN_FT, .batch = 1, .seq = 1024, .precision = precision};
    CHECK(memory_plan_compute(&m, &ps, &ft, &err) == 0);
    ps.method = TRAIN_LISA, ps.gamma = 0;
    CHECK(memory_plan_compute(&m, &ps, &eh, &err) == 0);
    ps.gamma = 2;
    CHECK(memory_plan_compute(&m, &ps, &eh2, &err) == 0);
    if (plan_lora("models/llama2-7b.yaml", 128, &ps, &lora)) break;
    CHECK(eh.total < eh2.total && eh2.total < ft.total && lora.total < ft.total);
    /* weights are all there whatever trains; optimizer state only for E, H, 2L */
    CHECK(eh2.bytes[MEMORY_WEIGHTS] == ft.bytes[MEMORY_WEIGHTS]);
    CHECK(eh2.bytes[MEMORY_OPTIMIZER] * 4 < ft.bytes[MEMORY_OPTIMIZER]);
    /* the 30 frozen blocks keep only what dX reads (LLaMA: 0.78 of FT's) */
    CHECK(eh2.bytes[MEMORY_ACTIVATIONS] * 20 < ft.bytes[MEMORY_ACTIVATIONS] * 17);
    /* 6.74e9 parameters in bf16 */
    CHECK(ft.bytes[MEMORY_WEIGHTS] >= 2ull * 6738415616ull);
    printf("llama2-7b %s B=1 T=1024: ft %.2f GiB, lora r128 %.2f, E+H %.2f, E+H+2L %.2f\n",
           precision_name(precision), ft.total / GIB, lora.total / GIB, eh.total / GIB,
           eh2.total / GIB);
    if (precision == PRECISION_BF16_TRUE) {
      /* the paper's claims, in the paper's precision: 7B LISA on a 24 GB GPU,
       * and below LoRA r128 */
      CHECK(eh2.total <= 24 * GIB);
      CHECK_MSG(eh2.total <= lora.total, "E+H+2L %.2f GiB, LoRA r128 %.2f GiB", eh2.total / GIB,
                lora.total / GIB);
      CHECK(eh2.bytes[MEMORY_MASTER_WEIGHTS] == 0);
    } else {
      /* fp32 gradients, master weights and moments: 16 bytes per trained scalar */
      CHECK(eh2.bytes[MEMORY_MASTER_WEIGHTS] + eh2.bytes[MEMORY_GRADS] + eh2.bytes[MEMORY_OPTIMIZER] ==
            16 * (eh2.bytes[MEMORY_MASTER_WEIGHTS] / 4));
    }
  }
  memory_plan_settings bad = {.method = TRAIN_LISA, .gamma = 33, .batch = 1, .seq = 1024};
  memory_breakdown pm;
  CHECK(memory_plan_compute(&m, &bad, &pm, &err) != 0 && strstr(err.msg, "--gamma 33 exceeds"));
  ir_model_free(&m);
}

int main(void) {
  RUN(test_plan_equals_runtime);
  RUN(test_llama7b_ordering);
  return check_exit();
}
