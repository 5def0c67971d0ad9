/* gen_kernels.c: the __global__ wrappers of a path. Each kernel step gets a
 * wrapper whose parameters are its buffers (and N, B where needed) and whose
 * body calls a template from templates/ with the sizes as constants; under
 * LISA_EMU a trampoline unpacks an argument array as cuLaunchKernel does,
 * so the tests' emulator can launch any kernel by name. */
#include <stdio.h>
#include <string.h>

#include "gen_internal.h"

const char *gen_ctype(const gen_ctx *c, int dtype) {
  (void)c;
  switch (dtype) {
  case GEN_F32: return "float";
  case GEN_I32: return "int";
  case GEN_BF16: return "__nv_bfloat16";
  }
  return "lisa_t";
}

void gen_kb_begin(gen_kb *kb, gen_ctx *c, const char *what, const char *label) {
  memset(kb, 0, sizeof *kb);
  kb->c = c;
  kb->st = gen_new_step(c, GEN_STEP_KERNEL);
  if (!kb->st) return;
  snprintf(kb->st->kernel, sizeof kb->st->kernel, "%s_%02d_%s", c->p->name, c->p->n_steps - 1,
           what);
  snprintf(kb->st->label, sizeof kb->st->label, "%s", label);
}

static void add_param(gen_kb *kb, const char *type, gen_arg arg) {
  const char *sep = kb->n ? ", " : "";
  sb_printf(&kb->params, "%s%s a%d", sep, type, kb->n);
  sb_printf(&kb->unpack, "%s*(%s *)p[%d]", sep, type, kb->n);
  sb_printf(&kb->args, "%sa%d", sep, kb->n);
  if (kb->st && kb->st->n_args < GEN_MAX_ARGS) kb->st->args[kb->st->n_args++] = arg;
  kb->n++;
}

void gen_kb_buf(gen_kb *kb, gen_ref r, int dtype, int writes) {
  char type[64];
  if (r.buf < 0) { /* an absent optional input: a null pointer */
    snprintf(type, sizeof type, "%s%s *", writes ? "" : "const ",
             dtype < 0 ? "lisa_t" : gen_ctype(kb->c, dtype));
    add_param(kb, type, (gen_arg){GEN_ARG_BUF, r, writes});
    return;
  }
  int dt = dtype < 0 ? gen_buf_dtype(kb->c, r.buf) : dtype;
  const char *t = dt == kb->c->cfg->dtype && dt != GEN_I32 ? "lisa_t" : gen_ctype(kb->c, dt);
  snprintf(type, sizeof type, "%s%s *", writes ? "" : "const ", t);
  add_param(kb, type, (gen_arg){GEN_ARG_BUF, r, writes});
}

void gen_kb_rows(gen_kb *kb) { add_param(kb, "int", (gen_arg){GEN_ARG_ROWS, {-1, 0, 0}, 0}); }
void gen_kb_batch(gen_kb *kb) { add_param(kb, "int", (gen_arg){GEN_ARG_BATCH, {-1, 0, 0}, 0}); }
void gen_kb_loss_scale(gen_kb *kb) {
  add_param(kb, "float", (gen_arg){GEN_ARG_LOSS_SCALE, {-1, 0, 0}, 0});
}

void gen_kb_scalar(gen_kb *kb, const char *type, int kind) {
  add_param(kb, type, (gen_arg){kind, {-1, 0, 0}, 0});
}

void gen_kb_launch(gen_kb *kb, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned smem) {
  if (!kb->st) return;
  kb->st->grid[0] = gx ? gx : 1, kb->st->grid[1] = gy ? gy : 1, kb->st->grid[2] = gz ? gz : 1;
  kb->st->block[0] = bx, kb->st->block[1] = by ? by : 1, kb->st->block[2] = 1;
  kb->st->smem = smem;
}

/* Copies body into out with every %A replaced by the argument list. */
static void expand_args(sbuf *out, const char *body, const char *args) {
  for (const char *p = body; *p; p++) {
    if (p[0] == '%' && p[1] == 'A') {
      sb_puts(out, args);
      p++;
    } else {
      char ch[2] = {*p, 0};
      sb_puts(out, ch);
    }
  }
}

void gen_kb_end(gen_kb *kb, const char *body) {
  sbuf *k = &kb->c->p->kernels;
  if (kb->st) {
    unsigned threads = kb->st->block[0] * kb->st->block[1] * kb->st->block[2];
    sb_printf(k, "// %s\n", kb->st->label);
    sb_printf(k, "extern \"C\" __global__ void __launch_bounds__(%u) %s(%s) {\n  ", threads,
              kb->st->kernel, sb_str(&kb->params));
    expand_args(k, body, sb_str(&kb->args));
    sb_printf(k, "\n}\n#ifdef LISA_EMU\nextern \"C\" void %s_emu(void **p) { %s(%s); }\n#endif\n\n",
              kb->st->kernel, kb->st->kernel, sb_str(&kb->unpack));
  }
  sb_free(&kb->params);
  sb_free(&kb->unpack);
  sb_free(&kb->args);
}
