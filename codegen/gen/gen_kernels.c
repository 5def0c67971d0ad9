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

static int kb_fail(gen_kb *kb, const char *fmt, const char *name) {
  if (!kb->failed) lt_fail(kb->c->err, fmt, kb->st ? kb->st->kernel : "?", name);
  kb->failed = 1;
  return -1;
}

static int find_name(const gen_kb *kb, const char *name, size_t len) {
  for (int i = 0; i < kb->n; i++)
    if (strlen(kb->names[i].name) == len && !strncmp(kb->names[i].name, name, len)) return i;
  return -1;
}

/* name, or name_<n> where an earlier argument took it */
static void add_param(gen_kb *kb, const char *type, const char *name, int64_t ld, gen_arg arg) {
  if (kb->n >= GEN_MAX_ARGS) {
    kb_fail(kb, "gen: kernel %s: more than the most arguments (at %s)", name);
    return;
  }
  gen_kb_name *nm = &kb->names[kb->n];
  snprintf(nm->name, sizeof nm->name, "%s", name);
  if (find_name(kb, nm->name, strlen(nm->name)) >= 0)
    snprintf(nm->name, sizeof nm->name, "%.32s_%d", name, kb->n);
  nm->ld = ld;
  const char *sep = kb->n ? ", " : "";
  sb_printf(&kb->params, "%s%s %s", sep, type, nm->name);
  sb_printf(&kb->unpack, "%s*(%s *)p[%d]", sep, type, kb->n);
  if (kb->st) kb->st->args[kb->st->n_args++] = arg;
  kb->n++;
}

const char *gen_kb_buf(gen_kb *kb, const char *name, gen_ref r, int dtype, int writes) {
  char type[64];
  const char *t = "lisa_t";
  if (r.buf >= 0 || dtype >= 0) { /* r.buf < 0: an absent optional input, a null pointer */
    int dt = dtype < 0 ? gen_buf_dtype(kb->c, r.buf) : dtype;
    if (r.buf < 0 || dt != kb->c->cfg->dtype || dt == GEN_I32) t = gen_ctype(kb->c, dt);
  }
  snprintf(type, sizeof type, "%s%s *", writes ? "" : "const ", t);
  add_param(kb, type, name, r.ld, (gen_arg){GEN_ARG_BUF, r, writes});
  return kb->n ? kb->names[kb->n - 1].name : name;
}

void gen_kb_rows(gen_kb *kb) { add_param(kb, "int", "N", -1, (gen_arg){GEN_ARG_ROWS, {-1, 0, 0}, 0}); }
void gen_kb_batch(gen_kb *kb) { add_param(kb, "int", "B", -1, (gen_arg){GEN_ARG_BATCH, {-1, 0, 0}, 0}); }
void gen_kb_loss_scale(gen_kb *kb) {
  add_param(kb, "float", "loss_scale", -1, (gen_arg){GEN_ARG_LOSS_SCALE, {-1, 0, 0}, 0});
}

void gen_kb_scalar(gen_kb *kb, const char *type, const char *name, int kind) {
  add_param(kb, type, name, -1, (gen_arg){kind, {-1, 0, 0}, 0});
}

void gen_kb_launch(gen_kb *kb, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned smem) {
  if (!kb->st) return;
  kb->st->grid[0] = gx ? gx : 1, kb->st->grid[1] = gy ? gy : 1, kb->st->grid[2] = gz ? gz : 1;
  kb->st->block[0] = bx, kb->st->block[1] = by ? by : 1, kb->st->block[2] = 1;
  kb->st->smem = smem;
}

static int ident_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '_';
}

/* Copies body into out with every @name replaced by "name, ld" (a buffer
 * and its row stride); every argument must be named in the body. */
static void expand_names(gen_kb *kb, sbuf *out, const char *body) {
  unsigned char used[GEN_MAX_ARGS] = {0};
  for (const char *p = body; *p;) {
    int at = *p == '@';
    const char *id = p + at;
    size_t len = 0;
    while (ident_char(id[len]) && (len || !(id[0] >= '0' && id[0] <= '9'))) len++;
    if (!len || (p > body && ident_char(p[-1]))) { /* not the start of a name */
      char ch[2] = {*p, 0};
      sb_puts(out, ch);
      p++;
      continue;
    }
    int k = find_name(kb, id, len);
    if (k >= 0) used[k] = 1;
    if (at && (k < 0 || kb->names[k].ld < 0)) {
      char name[72];
      snprintf(name, sizeof name, "%.*s", (int)len, id);
      kb_fail(kb, "gen: kernel %s: @%s names no buffer argument", name);
    }
    sb_printf(out, "%.*s", (int)len, id);
    if (at && k >= 0) sb_printf(out, ", %lld", (long long)kb->names[k].ld);
    p = id + len;
  }
  for (int k = 0; k < kb->n; k++)
    if (!used[k]) kb_fail(kb, "gen: kernel %s: argument %s is not passed on", kb->names[k].name);
}

int gen_kb_end(gen_kb *kb, const char *body) {
  sbuf *k = &kb->c->p->kernels;
  if (kb->st) {
    unsigned threads = kb->st->block[0] * kb->st->block[1] * kb->st->block[2];
    sb_printf(k, "// %s\n", kb->st->label);
    sb_printf(k, "extern \"C\" __global__ void __launch_bounds__(%u) %s(%s) {\n  ", threads,
              kb->st->kernel, sb_str(&kb->params));
    expand_names(kb, k, body);
    sb_printf(k, "\n}\n#ifdef LISA_EMU\nextern \"C\" void %s_emu(void **p) { %s(%s); }\n#endif\n\n",
              kb->st->kernel, kb->st->kernel, sb_str(&kb->unpack));
  }
  sb_free(&kb->params);
  sb_free(&kb->unpack);
  if (kb->failed) kb->c->failed = 1;
  return kb->failed || !kb->st ? -1 : 0;
}
