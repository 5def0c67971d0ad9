/* cuda_sample.c: the decoding program on the CUDA device (cuda_sample.h). */
#include "cuda_sample.h"

#include <stdlib.h>

#include "dev_decode.h"
#include "gen.h"
#include "gpu_device.h"
#include "weights.h"

struct cuda_sampler {
  gpu_device *gpu;
  gen_program prog;
  int have_prog;
  dev_decoder *dec;
};

int cuda_sampler_open(cuda_sampler **out, char *name, size_t cap, lt_error *err) {
  cuda_sampler *c = calloc(1, sizeof *c);
  if (!c) return lt_fail(err, "out of memory");
  if (gpu_device_open(&c->gpu, name, cap, err)) return free(c), -1;
  *out = c;
  return 0;
}

int cuda_sampler_prepare(cuda_sampler *c, const ms_state *s, const char *weights,
                         int ignore_unused, int ctx, int bf16, lt_error *err) {
  gen_config cfg = {.B = 1, .T = ctx < CUDA_SAMPLE_ROWS ? ctx : CUDA_SAMPLE_ROWS,
                    .dtype = bf16 ? GEN_BF16 : GEN_F32, .grad_dtype = GEN_F32,
                    .sms = gpu_device_sms(c->gpu), .no_mma = gpu_device_sm(c->gpu) < 80,
                    .decode = 1, .ctx = ctx};
  unsigned unfused;
  if (gpu_device_build(c->gpu, s->ir, &cfg, &c->prog, &unfused, err)) return -1;
  c->have_prog = 1;
  dt_device dev = gpu_device_iface(c->gpu);
  if (dd_create(&c->dec, s, &c->prog, &dev, err)) return -1;
  param_store ps = dd_store(c->dec); /* straight from the shards to the device */
  char note[512];
  return wt_load_strict_into(s->ir, &ps, weights, ignore_unused, note, sizeof note, err);
}

int cuda_sampler_feed(cuda_sampler *c, const int32_t *ids, int n, const float **logits,
                      lt_error *err) {
  return dd_feed(c->dec, ids, n, logits, err);
}

void cuda_sampler_close(cuda_sampler *c) {
  if (!c) return;
  dd_free(c->dec);
  if (c->gpu) gpu_device_close(c->gpu);
  if (c->have_prog) gen_free(&c->prog);
  free(c);
}
