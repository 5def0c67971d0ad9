/* test_gen_passes: the generator's pass list (codegen/gen/gen_lower.c). Every
 * fusion rule of the fuse pass forms a group in one of the bundled models;
 * the dump names each pass of each path, and only the ones asked for; the
 * SM count of gen_config sizes the optimizer's grid and the norms' split; the
 * head's GEMMs run at the padded vocabulary where it is safe. */
#include "autodiff.h"
#include "check.h"
#include "gen.h"
#include "model_source.h"
#include "model_yaml.h"

static int load(const char *rel, ir_model *m) {
  lt_error err = {{0}};
  if (yml_load_model(src_path(rel), m, &err) || ad_build_backward(m, &err)) {
    CHECK_MSG(0, "%s: %s", rel, err.msg);
    return -1;
  }
  return 0;
}

/* The dump after `passes` of m's program, appended to out. */
static void dump(const char *rel, int dtype, const char *passes, sbuf *out) {
  ir_model m;
  if (load(rel, &m)) return;
  gen_config cfg = {.B = 2, .T = 8, .dtype = dtype, .grad_accum = 1, .dump_after = passes};
  gen_program prog;
  lt_error err = {{0}};
  CHECK_MSG(gen_build(&prog, &m, &cfg, &err) == 0, "%s: %s", rel, err.msg);
  sb_puts(out, sb_str(&prog.dump));
  gen_free(&prog);
  ir_model_free(&m);
}

static int count(const char *text, const char *what) {
  int n = 0;
  for (const char *p = strstr(text, what); p; p = strstr(p + 1, what)) n++;
  return n;
}

static void test_every_rule_fires(void) {
  sbuf out = {0};
  dump("models/gpt2-tiny.yaml", GEN_BF16, "fuse", &out);
  dump("models/llama-tiny.yaml", GEN_BF16, "fuse", &out);
  dump("tests/fixtures/yaml/gpt2-tiny-noproj.yaml", GEN_F32, "fuse", &out);
  const char *text = sb_str(&out);
  static const char *rules[] = {"view",        "gelu_epilogue", "dgelu_epilogue",
                                "bgrad_epilogue", "add_beta",   "add_norm",
                                "norm_dx_add", "embed_pos",     "ce_backward",
                                "elementwise"};
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    char member[64];
    snprintf(member, sizeof member, "'s %s", rules[r]);
    CHECK_MSG(count(text, member) > 0 || (!strcmp(rules[r], "view") &&
                                          count(text, "leads view") > 0),
              "no group of rule %s", rules[r]);
  }
  CHECK(count(text, "undecided") == 0);
  sb_free(&out);
}

static void test_dump_names_passes(void) {
  static const char *passes[] = {"select", "fuse", "buffers", "lower", "roles", "emit"};
  sbuf all = {0}, some = {0};
  dump("models/gpt2-tiny.yaml", GEN_F32, "all", &all);
  dump("models/gpt2-tiny.yaml", GEN_F32, "lower,select", &some);
  for (size_t k = 0; k < sizeof passes / sizeof passes[0]; k++) {
    char line[64];
    snprintf(line, sizeof line, "block_active after %s:", passes[k]);
    CHECK_MSG(count(sb_str(&all), line) == 1, "no '%s' in the dump", line);
    int asked = !strcmp(passes[k], "lower") || !strcmp(passes[k], "select");
    CHECK_MSG(count(sb_str(&some), line) == asked, "'%s' %s", line,
              asked ? "missing" : "not asked for");
  }
  CHECK(count(sb_str(&all), " after ") == 6 * 7); /* the seven section paths */
  sb_free(&all);
  sb_free(&some);
}

static const gen_step *find_step(const gen_program *prog, const char *path, const char *what) {
  const gen_path *p = gen_find_path(prog, path);
  for (int i = 0; p && i < p->n_steps; i++)
    if (p->steps[i].kind == GEN_STEP_KERNEL && strstr(p->steps[i].kernel, what))
      return &p->steps[i];
  return NULL;
}

/* N = 512 rows of 24 columns: 4 row blocks of partial sums, unless fewer
 * than two blocks a multiprocessor cap them. */
static void test_sms_size_launches(void) {
  ir_model m;
  if (load("models/gpt2-tiny.yaml", &m)) return;
  const int sms[] = {0, 66, 1};
  const unsigned opt_grid[] = {4 * GEN_DEFAULT_SMS, 4 * 66, 4}, parts[] = {4, 4, 2};
  for (int k = 0; k < 3; k++) {
    gen_config cfg = {.B = 16, .T = 32, .dtype = GEN_F32, .grad_accum = 1, .sms = sms[k]};
    gen_program prog;
    lt_error err = {{0}};
    if (gen_build(&prog, &m, &cfg, &err)) {
      CHECK_MSG(0, "%s", err.msg);
      continue;
    }
    const gen_step *norm = find_step(&prog, "optimizer", "global_norm"),
                   *part = find_step(&prog, "block_active", "layernorm_backward_wb_partial");
    CHECK(norm && norm->grid[0] == opt_grid[k]);
    CHECK_MSG(part && part->grid[1] == parts[k], "sms %d: %u parts", sms[k],
              part ? part->grid[1] : 0);
    gen_free(&prog);
  }
  ir_model_free(&m);
}

/* The head's GEMMs of path `path`: out extent of the forward, the input
 * gradient and the weight gradient (-1: none). */
static void head_gemm_outs(const gen_program *prog, const char *path, int out[3]) {
  out[0] = out[1] = out[2] = -1;
  const gen_path *p = gen_find_path(prog, path);
  for (int i = 0; p && i < p->n_steps; i++)
    if (p->steps[i].kind == GEN_STEP_GEMM) out[p->steps[i].gemm.op] = p->steps[i].gemm.out;
}

/* GPT-2's tied head (vocabulary 67, padded to 128): the logits GEMM's m and
 * the input gradient's k run at 128 (cross_entropy_fused zeroes the pad
 * columns it reads), the weight gradient at 67; the parameter buffers have
 * the stored 128 rows. Gemma 2 puts a soft cap between the logits and the
 * loss: its forward pads, its input gradient (dy from the cap's backward,
 * pads not zeroed) keeps k = 61. */
static void test_vocab_padded_gemms(void) {
  static const struct { const char *model; int vocab, fwd, dx; } cases[] = {
      {"models/gpt2-tiny.yaml", 67, 128, 128},
      {"tests/fixtures/families/gemma2", 61, 128, 61},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    ir_model m;
    lt_error err = {{0}};
    char folder[1024];
    if (model_open(src_path(cases[k].model), &m, folder, sizeof folder, &err) ||
        ad_build_backward(&m, &err)) {
      CHECK_MSG(0, "%s: %s", cases[k].model, err.msg);
      continue;
    }
    CHECK(m.vocab_size == cases[k].vocab && ir_vocab_padded(&m) == 128);
    gen_config cfg = {.B = 2, .T = 8, .dtype = GEN_BF16, .grad_accum = 1};
    gen_program prog;
    if (gen_build(&prog, &m, &cfg, &err)) {
      CHECK_MSG(0, "%s: %s", cases[k].model, err.msg);
      ir_model_free(&m);
      continue;
    }
    int train[3], frozen[3];
    head_gemm_outs(&prog, "head_train", train);
    head_gemm_outs(&prog, "head_frozen", frozen);
    CHECK_MSG(train[GEN_GEMM_FWD] == cases[k].fwd && train[GEN_GEMM_DX] == cases[k].dx &&
                  train[GEN_GEMM_DW] == cases[k].vocab,
              "%s head_train: m %d, k %d, n %d", cases[k].model, train[0], train[1], train[2]);
    CHECK(frozen[GEN_GEMM_FWD] == cases[k].fwd && frozen[GEN_GEMM_DX] == cases[k].dx &&
          frozen[GEN_GEMM_DW] == -1);
    const gen_path *head = gen_find_path(&prog, "head_train");
    const ir_graph *g = &m.sections[IR_HEAD];
    int vocab_params = 0;
    for (int v = 0; head && v < g->n_values; v++) {
      const ir_value *iv = &g->values[v];
      if (iv->kind != IR_V_PARAM || m.params[iv->param].shape[0] != m.vocab_size) continue;
      vocab_params++;
      CHECK_MSG(head->bufs[v].rows == 128, "%s: %s has %lld rows", cases[k].model,
                head->bufs[v].name, (long long)head->bufs[v].rows);
    }
    CHECK(vocab_params >= 1);
    gen_free(&prog);
    ir_model_free(&m);
  }
}

int main(void) {
  RUN(test_every_rule_fires);
  RUN(test_dump_names_passes);
  RUN(test_sms_size_launches);
  RUN(test_vocab_padded_gemms);
  return check_exit();
}
