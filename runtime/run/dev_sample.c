/* dev_sample.c: the decoding program on a device (dev_sample.h). */
#include "dev_sample.h"

#include <stdlib.h>

#include "dev_decode.h"
#include "gen.h"
#include "weights.h"

struct dev_sampler {
  dev_provider dev;
  gen_program prog;
  int have_prog;
  dev_decoder *dec;
};

int dev_sampler_open(dev_sampler **out, const dev_provider *p, lt_error *err) {
  dev_sampler *c = calloc(1, sizeof *c);
  if (!c) {
    if (p->close) p->close(p->ctx);
    return lt_fail(err, "out of memory");
  }
  c->dev = *p;
  *out = c;
  return 0;
}

int dev_sampler_prepare(dev_sampler *c, const ms_state *s, const char *weights, int ignore_unused,
                        int ctx, int bf16, lt_error *err) {
  gen_config cfg = {.B = 1, .T = ctx < DEV_SAMPLE_ROWS ? ctx : DEV_SAMPLE_ROWS,
                    .dtype = bf16 ? GEN_BF16 : GEN_F32, .grad_dtype = GEN_F32,
                    .sms = c->dev.sms, .no_mma = c->dev.no_mma, .decode = 1, .ctx = ctx};
  unsigned unfused;
  if (c->dev.build(c->dev.ctx, s->ir, &cfg, &c->prog, &unfused, err)) return -1;
  c->have_prog = 1;
  dt_device dev = c->dev.iface(c->dev.ctx);
  if (dd_create(&c->dec, s, &c->prog, &dev, err)) return -1;
  param_store ps = dd_store(c->dec); /* straight from the shards to the device */
  char note[512];
  return wt_load_strict_into(s->ir, &ps, weights, ignore_unused, note, sizeof note, err);
}

int dev_sampler_feed(dev_sampler *c, const int32_t *ids, int n, const float **logits,
                     lt_error *err) {
  return dd_feed(c->dec, ids, n, logits, err);
}

void dev_sampler_close(dev_sampler *c) {
  if (!c) return;
  dd_free(c->dec);
  if (c->dev.unload) c->dev.unload(c->dev.ctx); /* its paths point into the program */
  if (c->have_prog) gen_free(&c->prog);
  if (c->dev.close) c->dev.close(c->dev.ctx);
  free(c);
}
