/* test_tokenizer: runtime/tok against Hugging Face's `tokenizers` on the
 * test tokenizers (tests/fixtures/tokenizers, scripts/make-tokenizers.py): a
 * byte-level BPE (GPT-2), a SentencePiece-style BPE with byte fallback
 * (LLaMA 2, Mistral) and a Qwen2-style one (NFC, a Split pattern). Every
 * line of the corpus in expected.json (Unicode, whitespace runs, digits,
 * contractions, byte fallback, special tokens inside text, empty lines)
 * must encode to the same ids, with and without special tokens, and those
 * ids decode to the same text, with and without the special tokens. Then
 * the errors: unsupported parts are named, not encoded differently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "tokenizer.h"

static int same_ids(const cJSON *want, const int32_t *got, int n) {
  if (cJSON_GetArraySize(want) != n) return 0;
  for (int i = 0; i < n; i++)
    if (cJSON_GetArrayItem(want, i)->valueint != got[i]) return 0;
  return 1;
}

static void check_kind(const char *kind) {
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s", src_path("tests/fixtures/tokenizers"));
  snprintf(path, sizeof path, "%s/%s", dir, kind);
  tokenizer *t;
  lt_error err = {{0}};
  CHECK_MSG(tok_load(&t, path, &err) == 0, "%s", err.msg);
  if (!t) return;
  snprintf(path, sizeof path, "%s/%s/expected.json", dir, kind);
  char *text = read_all(path);
  cJSON *cases = text ? cJSON_Parse(text) : NULL;
  CHECK_MSG(cJSON_GetArraySize(cases) >= 16, "%s: no cases", path);
  const cJSON *c;
  int line = 0;
  cJSON_ArrayForEach(c, cases) {
    const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
    for (int special = 1; special >= 0; special--) {
      int32_t *ids = NULL;
      int k = 0;
      CHECK_MSG(tok_encode(t, s, strlen(s), special, &ids, &k, &err) == 0, "%s", err.msg);
      const cJSON *want = cJSON_GetObjectItem(c, special ? "ids" : "ids_plain");
      CHECK_MSG(same_ids(want, ids, k), "%s line %d (special %d) \"%s\": %d ids differ", kind,
                line, special, s, k);
      if (special) {
        for (int skip = 1; skip >= 0; skip--) {
          char *dec = NULL;
          size_t dn = 0;
          CHECK_MSG(tok_decode(t, ids, k, skip, &dec, &dn, &err) == 0, "%s", err.msg);
          const char *w = cJSON_GetObjectItem(c, skip ? "decoded" : "decoded_all")->valuestring;
          CHECK_MSG(dec && dn == strlen(w) && !memcmp(dec, w, dn),
                    "%s line %d decode (skip %d): got \"%s\", want \"%s\"", kind, line, skip,
                    dec ? dec : "", w);
          free(dec);
        }
      }
      free(ids);
    }
    line++;
  }
  printf("     %s: %d lines\n", kind, line);
  cJSON_Delete(cases);
  free(text);
  tok_free(t);
}

static void test_bytelevel(void) { check_kind("bytelevel"); }
static void test_spbpe(void) { check_kind("spbpe"); }
static void test_qwen(void) { check_kind("qwen"); }

/* Bytes that are not UTF-8 in the input, and ids that decode to half a
 * character, do not crash and give U+FFFD as tokenizers does. */
static void test_invalid_utf8(void) {
  tokenizer *t;
  lt_error err = {{0}};
  CHECK(tok_load(&t, src_path("tests/fixtures/tokenizers/spbpe"), &err) == 0);
  if (!t) return;
  const int32_t half[] = {tok_id(t, "<0xE6>"), tok_id(t, "<0x97>"), tok_id(t, "a")};
  char *dec;
  size_t n;
  CHECK(half[0] >= 0 && half[2] >= 0);
  CHECK(tok_decode(t, half, 3, 1, &dec, &n, &err) == 0);
  CHECK_MSG(n == 7 && !memcmp(dec, "\xef\xbf\xbd\xef\xbf\xbd" "a", 7), "got \"%s\"", dec);
  free(dec);
  int32_t *ids;
  int k;
  CHECK(tok_encode(t, "a\xff" "b", 3, 0, &ids, &k, &err) == 0 && k > 0);
  free(ids);
  const int32_t bad = 1 << 20;
  CHECK(tok_decode(t, &bad, 1, 1, &dec, &n, &err) == -1);
  CHECK_MSG(strstr(err.msg, "id 1048576 is not a token"), "got '%s'", err.msg);
  CHECK(tok_eos(t) == tok_id(t, "</s>") && tok_bos(t) == tok_id(t, "<s>"));
  tok_free(t);
}

/* A copy of the byte-level tokenizer.json with one part replaced. */
static void expect_load_error(const char *key, const char *json, const char *want) {
  char *text = read_all(src_path("tests/fixtures/tokenizers/bytelevel/tokenizer.json"));
  cJSON *j = cJSON_Parse(text);
  cJSON_ReplaceItemInObject(j, key, cJSON_Parse(json));
  char dir[] = "/tmp/lisa-tok-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[64];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  FILE *fp = fopen(path, "w");
  char *out = cJSON_Print(j);
  fputs(out, fp);
  fclose(fp);
  tokenizer *t;
  lt_error err = {{0}};
  CHECK(tok_load(&t, dir, &err) == -1 && t == NULL);
  CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, want), "got '%s', want '%s'", err.msg, want);
  unlink(path);
  rmdir(dir);
  free(out), free(text);
  cJSON_Delete(j);
}

static void test_errors(void) {
  expect_load_error("normalizer", "{\"type\": \"BertNormalizer\"}",
                    "normalizer \"BertNormalizer\" is not supported");
  expect_load_error("model", "{\"type\": \"Unigram\"}", "model \"Unigram\" is not supported");
  expect_load_error("pre_tokenizer", "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
                    "\"behavior\": \"Isolated\", \"invert\": false}", "pattern /(/ at 1");
  expect_load_error("decoder", "{\"type\": \"WordPiece\"}", "decoder \"WordPiece\" is not supported");
  tokenizer *t;
  lt_error err = {{0}};
  CHECK(tok_load(&t, "/nonexistent/tokenizer.json", &err) == -1);
  CHECK_MSG(strstr(err.msg, "/nonexistent/tokenizer.json: cannot open"), "got '%s'", err.msg);
}

int main(void) {
  RUN(test_bytelevel);
  RUN(test_spbpe);
  RUN(test_qwen);
  RUN(test_invalid_utf8);
  RUN(test_errors);
  return check_exit();
}
