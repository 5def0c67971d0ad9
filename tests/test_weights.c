/* Parameter init and checkpoints: GPT-2's init scheme from the YAML, a
 * save -> load round trip that is bit-exact, and a checkpoint with tensors
 * the model does not use (Hugging Face's attention-mask buffers). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autodiff.h"
#include "check.h"
#include "model_yaml.h"
#include "safetensors.h"
#include "weights.h"

static int load_tiny(ir_model *m, ms_state *s) {
  lt_error err;
  if (yml_load_model(src_path("models/gpt2-tiny.yaml"), m, &err) || ad_build_backward(m, &err) ||
      ms_create(s, m, 2, 5, m->n_layer, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    check_failures++;
    return -1;
  }
  return 0;
}

static double sample_std(const float *x, int64_t n) {
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; i++) sum += x[i], sq += (double)x[i] * x[i];
  double mean = sum / n;
  return sqrt(sq / n - mean * mean);
}

static void test_init_follows_yaml(void) {
  ir_model m;
  ms_state s;
  if (load_tiny(&m, &s)) return;
  wt_init_random(&s, 42);
  const float *ln = ms_param(&s, ir_find_param(&m, "ln_1_w"), 1);
  const float *bias = ms_param(&s, ir_find_param(&m, "fc_b"), 0);
  for (int i = 0; i < 24; i++) CHECK(ln[i] == 1.0f);
  for (int i = 0; i < 96; i++) CHECK(bias[i] == 0.0f);
  /* 24*72 = 1728 samples: the std is within ~10% of its target */
  int p = ir_find_param(&m, "attn_w");
  CHECK_CLOSE(sample_std(ms_param(&s, p, 0), 24 * 72), 0.02, 0, 0.1);
  p = ir_find_param(&m, "mproj_w"); /* GPT-2's residual projections: 0.02/sqrt(2 n_layer) */
  CHECK_CLOSE(sample_std(ms_param(&s, p, 1), 96 * 24), 0.01, 0, 0.1);
  /* layers differ, the same seed repeats, another seed differs */
  CHECK(memcmp(ms_param(&s, p, 0), ms_param(&s, p, 1), 96 * 24 * sizeof(float)) != 0);
  float first = ms_param(&s, p, 1)[7];
  wt_init_random(&s, 42);
  CHECK(ms_param(&s, p, 1)[7] == first);
  wt_init_random(&s, 43);
  CHECK(ms_param(&s, p, 1)[7] != first);
  ms_free(&s);
  ir_model_free(&m);
}

static void test_save_load_bit_exact(void) {
  ir_model m;
  ms_state a, b;
  if (load_tiny(&m, &a)) return;
  lt_error err;
  ms_create(&b, &m, 2, 5, m.n_layer, &err);
  wt_init_random(&a, 7);
  char dir[] = "/tmp/lisa-weights-XXXXXX", path[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/w.safetensors", dir);
  CHECK_MSG(wt_save(&a, path, &err) == 0, "%s", err.msg);
  char note[256] = "unset";
  CHECK_MSG(wt_load(&b, path, note, sizeof note, &err) == 0, "%s", err.msg);
  CHECK(note[0] == '\0');
  CHECK(memcmp(a.params, b.params, a.bytes_params) == 0);
  /* Hugging Face names, first prefix (""), as the hub's GPT-2 files */
  st_file f;
  CHECK(st_open(&f, path, &err) == 0);
  CHECK(st_find(&f, "h.1.mlp.c_fc.weight") != NULL && st_find(&f, "wte.weight") != NULL);
  CHECK(f.n == 2 + 12 * 2 + 2);
  st_close(&f);
  unlink(path);
  rmdir(dir);
  ms_free(&a);
  ms_free(&b);
  ir_model_free(&m);
}

/* A checkpoint with every model tensor plus two the model does not use. */
static void test_extra_tensors_are_noted(void) {
  ir_model m;
  ms_state s;
  if (load_tiny(&m, &s)) return;
  lt_error err;
  char dir[] = "/tmp/lisa-weights-XXXXXX", path[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/w.safetensors", dir);
  wt_init_random(&s, 3);
  CHECK(wt_save(&s, path, &err) == 0);
  st_file f;
  CHECK(st_open(&f, path, &err) == 0);
  st_entry *e = calloc((size_t)f.n + 2, sizeof *e);
  float *vals = malloc(sizeof(float) * (size_t)(f.data_len / 4));
  int64_t off = 0;
  for (int i = 0; i < f.n; i++) {
    int64_t n = st_numel(&f.tensors[i]);
    st_read_f32(&f, &f.tensors[i], vals + off, &err);
    e[i] = (st_entry){f.tensors[i].name, ST_F32, f.tensors[i].ndim,
                      {f.tensors[i].shape[0], f.tensors[i].shape[1]}, vals + off};
    off += n;
  }
  static const float mask[4] = {1, 0, 1, 1};
  e[f.n] = (st_entry){"h.0.attn.bias", ST_F32, 2, {2, 2}, mask};
  e[f.n + 1] = (st_entry){"h.1.attn.bias", ST_F32, 2, {2, 2}, mask};
  snprintf(path, sizeof path, "%s/extra.safetensors", dir);
  CHECK(st_write(path, e, f.n + 2, NULL, 0, &err) == 0);
  float before = ms_param(&s, 0, 0)[5];
  wt_init_random(&s, 4);
  char note[256];
  CHECK_MSG(wt_load(&s, path, note, sizeof note, &err) == 0, "%s", err.msg);
  CHECK(ms_param(&s, 0, 0)[5] == before);
  CHECK_MSG(strstr(note, "ignored 2 tensors the model does not use: h.0.attn.bias h.1.attn.bias"),
            "note: %s", note);
  st_close(&f);
  free(e);
  free(vals);
  unlink(path);
  snprintf(path, sizeof path, "%s/w.safetensors", dir);
  unlink(path);
  rmdir(dir);
  ms_free(&s);
  ir_model_free(&m);
}

int main(void) {
  RUN(test_init_follows_yaml);
  RUN(test_save_load_bit_exact);
  RUN(test_extra_tensors_are_noted);
  return check_exit();
}
