/* peft.c: a PEFT adapter folder of the LoRA adapters (peft.h). */
#include "peft.h"

#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "atomic_file.h"
#include "lora.h"
#include "safetensors.h"

/* The module path prefix: the longest of the model's name prefixes. */
static const char *module_prefix(const ir_model *m) {
  const char *best = "";
  for (int i = 0; i < m->n_prefixes; i++)
    if (strlen(m->prefixes[i]) > strlen(best)) best = m->prefixes[i];
  return best;
}

/* "x.y.q_proj.lora_A.weight" -> "q_proj" into out. */
static void leaf_module(const char *name, char *out, size_t cap) {
  const char *end = strstr(name, ".lora_");
  const char *start = end;
  while (start > name && start[-1] != '.') start--;
  snprintf(out, cap, "%.*s", (int)(end - start), start);
}

typedef struct {
  st_entry *e;
  char (*names)[320];
  wt_fill *fills;
  wt_staging staging;
  int n;
} adapters;

static int collect(const ir_model *m, const param_store *ps, adapters *a, cJSON *targets,
                   int *fan_in_fan_out, lt_error *err) {
  int count = 0;
  for (int p = 0; p < m->n_params; p++) count += m->params[p].adapter ? m->n_layer : 0;
  if (!count) return lt_fail(err, "%s: the model has no LoRA adapters to save", m->path);
  a->e = calloc((size_t)count, sizeof *a->e);
  a->names = calloc((size_t)count, sizeof *a->names);
  a->fills = calloc((size_t)count, sizeof *a->fills);
  if (!a->e || !a->names || !a->fills) return lt_fail(err, "out of memory");
  if (wt_staging_init(&a->staging, m, ps, err)) return -1;
  *fan_in_fan_out = 0;
  for (int p = 0; p < m->n_params; p++) {
    int A, B;
    lora_adapters_of(m, p, &A, &B);
    if (A < 0) continue;
    *fan_in_fan_out |= m->params[p].layout == IR_LAYOUT_IN_OUT;
    for (int which = 0; which < 2; which++)
      for (int l = 0; l < m->n_layer; l++) {
        const ir_param *par = &m->params[which ? B : A];
        char hf[200], leaf[128];
        ir_param_hf_name(par, l, hf, sizeof hf);
        snprintf(a->names[a->n], sizeof a->names[0], "base_model.model.%s%s", module_prefix(m), hf);
        a->fills[a->n] = (wt_fill){&a->staging, which ? B : A, l, ST_F32};
        a->e[a->n] = (st_entry){a->names[a->n], ST_F32, 2, {par->shape[0], par->shape[1]},
                                NULL, wt_fill_param, &a->fills[a->n]};
        a->n++;
        leaf_module(hf, leaf, sizeof leaf);
        int seen = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, targets) seen |= !strcmp(t->valuestring, leaf);
        if (!seen) cJSON_AddItemToArray(targets, cJSON_CreateString(leaf));
      }
  }
  return 0;
}

static cJSON *config_json(const peft_config *c, cJSON *targets, int fan_in_fan_out) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "peft_type", "LORA");
  cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
  if (c->base_model) cJSON_AddStringToObject(j, "base_model_name_or_path", c->base_model);
  else cJSON_AddNullToObject(j, "base_model_name_or_path");
  cJSON_AddNumberToObject(j, "r", c->rank);
  cJSON_AddNumberToObject(j, "lora_alpha", c->alpha);
  cJSON_AddNumberToObject(j, "lora_dropout", 0.0);
  cJSON_AddItemToObject(j, "target_modules", targets);
  cJSON_AddBoolToObject(j, "fan_in_fan_out", fan_in_fan_out);
  cJSON_AddStringToObject(j, "bias", "none");
  cJSON_AddStringToObject(j, "init_lora_weights", "gaussian");
  cJSON_AddBoolToObject(j, "inference_mode", 1);
  cJSON_AddBoolToObject(j, "use_rslora", 0);
  cJSON_AddBoolToObject(j, "use_dora", 0);
  cJSON_AddNullToObject(j, "modules_to_save");
  return j;
}

int peft_save(const ms_state *s, const char *dir, const peft_config *c, lt_error *err) {
  ps_host_arrays h = {(ms_state *)s, NULL, NULL}; /* read only, through get */
  param_store ps = ps_host(&h);
  return peft_save_from(s->ir, &ps, dir, c, err);
}

int peft_save_from(const ir_model *m, const param_store *ps, const char *dir, const peft_config *c,
                   lt_error *err) {
  adapters a = {0};
  cJSON *targets = cJSON_CreateArray(), *j = NULL;
  char path[1100];
  int fan_in_fan_out = 0, rc = targets ? 0 : lt_fail(err, "out of memory");
  if (rc == 0) rc = atomic_file_make_dir(dir, err) || collect(m, ps, &a, targets, &fan_in_fan_out, err);
  if (rc == 0) rc = atomic_file_join(path, sizeof path, dir, "adapter_model.safetensors", err);
  const char *meta[] = {"format", "pt"};
  if (rc == 0) rc = st_write(path, a.e, a.n, meta, 1, err);
  if (rc == 0) {
    j = config_json(c, targets, fan_in_fan_out), targets = NULL;
    char *text = cJSON_Print(j);
    rc = !text ? lt_fail(err, "out of memory")
               : atomic_file_join(path, sizeof path, dir, "adapter_config.json", err) ||
                     atomic_file_write_text(path, text, err);
    free(text);
  }
  if (rc == 0) rc = atomic_file_sync_dir(dir, err);
  cJSON_Delete(targets);
  cJSON_Delete(j);
  free(a.e);
  free(a.names);
  free(a.fills);
  wt_staging_free(&a.staging);
  return rc ? -1 : 0;
}
