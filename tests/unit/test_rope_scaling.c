/* Scaled RoPE (codegen/ir/ir_rope.c) against transformers: the inv_freq
 * tables and cos/sin scales of released models' settings (longrope's short
 * and long factors picked by the run's length)
 * (tests/fixtures/rope-tables.safetensors, scripts/make-rope-fixtures.py),
 * the settings it refuses, and the CPU's rotation by a table (its backward
 * the transpose, the default table the same bits as the default rope). */
#include <cJSON.h>
#include <stdint.h>

#include "check.h"
#include "cpu_ops.h"
#include "ir_rope.h"
#include "safetensors.h"

/* Distance in units in the last place between two positive floats. */
static int64_t ulps(float a, float b) {
  int32_t ia, ib;
  memcpy(&ia, &a, 4);
  memcpy(&ib, &b, 4);
  return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

static int json_number(void *ctx, const char *key, double *value) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive((const cJSON *)ctx, key);
  if (cJSON_IsNumber(e)) *value = e->valuedouble;
  else if (cJSON_IsBool(e)) *value = cJSON_IsTrue(e);
  else return 0;
  return 1;
}

static int json_list(void *ctx, const char *key, float *out, int cap) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive((const cJSON *)ctx, key);
  if (!e) return -1;
  if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) > cap) return -2;
  int n = 0;
  for (const cJSON *x = e->child; x; x = x->next) {
    if (!cJSON_IsNumber(x)) return -2;
    out[n++] = (float)x->valuedouble;
  }
  return n;
}

static ir_rope_source json_source(const cJSON *obj, const char *where) {
  return (ir_rope_source){(void *)obj, where, json_number, json_list};
}

static const char *const cases[] = {"llama3.1-8b",    "llama3.2-1b",   "qwen2.5-yarn",
                                    "yarn-mscale",    "yarn-attention-factor",
                                    "linear-partial", "default-500k",  "longrope-short",
                                    "longrope-long",  "longrope-partial"};

static void check_case(const st_file *f, const char *name) {
  char key[96];
  cJSON *meta = cJSON_Parse(st_metadata(f, name) ? st_metadata(f, name) : "");
  CHECK_MSG(meta != NULL, "%s: no metadata", name);
  if (!meta) return;
  const cJSON *rope = cJSON_GetObjectItem(meta, "rope_parameters");
  int rot = (int)(cJSON_GetObjectItem(meta, "head_dim")->valuedouble *
                  cJSON_GetObjectItem(meta, "partial_rotary_factor")->valuedouble);
  double theta = cJSON_GetObjectItem(rope, "rope_theta")->valuedouble;
  int seq = (int)cJSON_GetObjectItem(meta, "seq")->valuedouble;
  /* longrope without a factor: max_position_embeddings / original (config.json's top level) */
  cJSON *params = cJSON_Duplicate(rope, 1);
  cJSON_AddNumberToObject(params, "max_position_embeddings",
                          cJSON_GetObjectItem(meta, "max_position_embeddings")->valuedouble);
  ir_rope_scaling s;
  lt_error err = {0};
  ir_rope_source src = json_source(params, name);
  int rc = ir_rope_scaling_from(cJSON_GetObjectItem(rope, "rope_type")->valuestring, &src, &s,
                                &err);
  cJSON_Delete(params);
  CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
  float want[IR_ROPE_MAX_HALF], got[IR_ROPE_MAX_HALF], scale[1];
  snprintf(key, sizeof key, "%s.inv_freq", name);
  const st_tensor *t = st_find(f, key);
  CHECK(t && st_numel(t) == rot / 2 && st_read_f32(f, t, want, &err) == 0);
  snprintf(key, sizeof key, "%s.scale", name);
  const st_tensor *ts = st_find(f, key);
  CHECK(ts && st_read_f32(f, ts, scale, &err) == 0);
  if (rc || !t || !ts) {
    cJSON_Delete(meta);
    return;
  }
  ir_rope_inv_freq(&s, theta, rot, seq, got);
  int64_t worst = 0;
  for (int i = 0; i < rot / 2; i++) {
    int64_t u = ulps(got[i], want[i]);
    CHECK_MSG(u <= 2, "%s: inv_freq[%d] = %.9g, transformers %.9g (%lld ulp)", name, i, got[i],
              want[i], (long long)u);
    if (u > worst) worst = u;
  }
  CHECK_MSG(ulps(ir_rope_cos_scale(&s), scale[0]) <= 1, "%s: scale %.9g, transformers %.9g",
            name, ir_rope_cos_scale(&s), scale[0]);
  printf("%-22s %-7s rot %3d: worst %lld ulp of inv_freq, scale %.7g\n", name,
         ir_rope_kind_name(s.kind), rot, (long long)worst, ir_rope_cos_scale(&s));
  cJSON_Delete(meta);
}

static void test_tables_match_transformers(void) {
  st_file f;
  lt_error err = {0};
  if (st_open(&f, src_path("tests/fixtures/rope-tables.safetensors"), &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&f, cases[i]);
  st_close(&f);
}

/* Each refusal names the source and what is wrong. */
static void refused(const char *type, const char *json, const char *want) {
  cJSON *obj = cJSON_Parse(json);
  ir_rope_scaling s;
  lt_error err = {0};
  ir_rope_source src = json_source(obj, "cfg.json: \"rope_scaling\"");
  int rc = ir_rope_scaling_from(type, &src, &s, &err);
  CHECK_MSG(rc != 0, "%s %s accepted", type, json);
  CHECK_MSG(strstr(err.msg, want) && strstr(err.msg, "cfg.json"), "%s %s: message '%s'", type,
            json, err.msg);
  cJSON_Delete(obj);
}

static void test_refusals(void) {
  refused("dynamic", "{\"factor\": 2}", "rope_type \"dynamic\" is not computed");
  refused("su", "{}", "\"su\" is not computed");
  refused("linear", "{}", "needs \"factor\"");
  refused("linear", "{\"factor\": -2}", "\"factor\" must be positive");
  refused("llama3", "{\"factor\": 8, \"low_freq_factor\": 1, \"high_freq_factor\": 4}",
          "needs \"original_max_position_embeddings\"");
  refused("llama3", "{\"factor\": 8, \"low_freq_factor\": 4, \"high_freq_factor\": 4, "
          "\"original_max_position_embeddings\": 8192}", "must exceed low_freq_factor");
  refused("yarn", "{\"factor\": 4}", "needs \"original_max_position_embeddings\"");
  refused("yarn", "{\"factor\": 4, \"original_max_position_embeddings\": 64, \"beta_fast\": 1, "
          "\"beta_slow\": 2}", "beta_fast (1) must exceed beta_slow (2)");
  refused("yarn", "{\"factor\": 4, \"original_max_position_embeddings\": 64, "
          "\"attention_factor\": 0}", "\"attention_factor\" must be positive");
  refused("longrope", "{\"original_max_position_embeddings\": 64, \"factor\": 4, "
          "\"long_factor\": [1, 2]}", "needs \"short_factor\"");
  refused("longrope", "{\"original_max_position_embeddings\": 64, \"factor\": 4, "
          "\"short_factor\": [1, 2], \"long_factor\": [1, 2, 3]}",
          "\"long_factor\" has 3 numbers, the other list 2");
  refused("longrope", "{\"original_max_position_embeddings\": 64, \"factor\": 4, "
          "\"short_factor\": [1, 0], \"long_factor\": [1, 2]}",
          "\"short_factor\"[1] must be positive");
  refused("longrope", "{\"original_max_position_embeddings\": 64, \"factor\": 4, "
          "\"short_factor\": \"1\", \"long_factor\": [1, 2]}",
          "\"short_factor\" must be a list of 1 to 128 numbers");
  refused("longrope", "{\"original_max_position_embeddings\": 64, "
          "\"short_factor\": [1, 2], \"long_factor\": [1, 2]}",
          "needs \"factor\" (or max_position_embeddings)");
}

static float dot(const float *a, const float *b, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
  return (float)s;
}

/* B=2, T=5, 3 heads of 10 dims, 6 rotating: the default table through the
 * table path is the default rope bit for bit; a scaled one's backward is its
 * transpose (<R x, dy> = <x, R^T dy>) and its output is scale times a
 * rotation (norms of the rotated pairs scale by it). */
static void test_cpu_rotation_by_table(void) {
  enum { B = 2, T = 5, H = 3, HD = 10, ROT = 6, N = B * T, W = H * HD };
  float x[N * W], dy[N * W], y0[N * W], y1[N * W], dx[N * W], table[ROT / 2];
  for (int i = 0; i < N * W; i++) {
    x[i] = sinf(0.37f * (float)i + 0.1f);
    dy[i] = cosf(0.53f * (float)i - 0.2f);
  }
  ir_rope_scaling def = {.kind = IR_ROPE_DEFAULT};
  ir_rope_inv_freq(&def, 500000.0, ROT, T, table);
  cpu_rope_forward(y0, x, N, T, H, HD, ROT, 500000.0);
  cpu_rope_table_forward(y1, x, N, T, 0, H, HD, ROT, table, 1.0f);
  CHECK(memcmp(y0, y1, sizeof y0) == 0);

  ir_rope_scaling yarn = {.kind = IR_ROPE_YARN, .factor = 4, .original_max = 4, .beta_fast = 32,
                          .beta_slow = 1, .attention_factor = 1.25, .truncate = 1};
  ir_rope_inv_freq(&yarn, 10.0, ROT, T, table);
  cpu_rope_table_forward(y1, x, N, T, 0, H, HD, ROT, table, 1.25f);
  cpu_rope_table_backward(dx, dy, N, T, H, HD, ROT, table, 1.25f);
  CHECK_CLOSE(dot(y1, dy, N * W), dot(x, dx, N * W), 1e-5, 1e-5);
  for (int n = 0; n < N; n++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < ROT / 2; i++) {
        const float *a = x + n * W + h * HD, *b = y1 + n * W + h * HD;
        float before = hypotf(a[i], a[i + ROT / 2]), after = hypotf(b[i], b[i + ROT / 2]);
        CHECK_CLOSE(after, 1.25f * before, 1e-6, 1e-5);
      }
}

int main(void) {
  RUN(test_tables_match_transformers);
  RUN(test_refusals);
  RUN(test_cpu_rotation_by_table);
  return check_exit();
}
