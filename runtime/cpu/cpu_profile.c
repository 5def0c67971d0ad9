/* cpu_profile.c: the CPU profile's rows and their labels. */
#include "cpu_profile.h"

#include <string.h>

#include "ir_ops.h"

/* "07 linear_bwd_x -> d_fc [256x3072x768]": index, op, first output, and
 * for an op the table labels by a weight (linear and its backwards) rows x
 * in x out. */
static void describe(const ir_model *m, const ir_graph *g, const ir_op *op, int i, int N,
                     char *out, size_t cap) {
  const ir_value *y = &g->values[op->out[0]];
  int n = snprintf(out, cap, "%02d %s -> %s", i, ir_op_name(op->kind), y->name);
  int w = ir_op_weight(op);
  if (w < 0 || n < 0 || (size_t)n >= cap) return;
  const ir_param *p = &m->params[g->values[w].param];
  int io = p->layout == IR_LAYOUT_IN_OUT;
  snprintf(out + n, cap - (size_t)n, " [%dx%lldx%lld]", N, (long long)p->shape[io ? 0 : 1],
           (long long)p->shape[io ? 1 : 0]);
}

static void label(prof_row *r, const char *path, const char *pass, int index) {
  snprintf(r->path, sizeof r->path, "%s", path);
  snprintf(r->pass, sizeof r->pass, "%s", pass);
  r->index = index;
}

int cpu_profile_create(cpu_profile *p, const ir_model *m, int N, lt_error *err) {
  memset(p, 0, sizeof *p);
  int n_rows = 2;
  for (int sec = 0; sec < IR_NSECTIONS; sec++)
    n_rows += m->sections[sec].n_fwd + 2 * m->sections[sec].n_bwd;
  if (prof_init(&p->table, n_rows, err)) return -1;
  p->exec.table = &p->table;
  int row = 0;
  for (int sec = 0; sec < IR_NSECTIONS; sec++) {
    const ir_graph *g = &m->sections[sec];
    const char *name = ir_section_name(sec);
    for (int pass = 0; pass < 3; pass++) {
      char path[32];
      snprintf(path, sizeof path, "%s%s", name, pass == 0 ? "" : pass == 1 ? "_active" : "_frozen");
      p->exec.row0[sec][pass] = row;
      int n_ops = pass == 0 ? g->n_fwd : g->n_bwd;
      for (int i = 0; i < n_ops; i++, row++) {
        label(&p->table.rows[row], path, pass == 0 ? "fwd" : "bwd", i);
        describe(m, g, pass == 0 ? &g->fwd[i] : &g->bwd[i], i, N, p->table.rows[row].what,
                 sizeof p->table.rows[row].what);
      }
    }
  }
  p->row_zero = row, p->row_adamw = row + 1;
  label(&p->table.rows[p->row_zero], "optimizer", "opt", 0);
  snprintf(p->table.rows[p->row_zero].what, sizeof p->table.rows[0].what, "zero gradients");
  label(&p->table.rows[p->row_adamw], "optimizer", "opt", 1);
  snprintf(p->table.rows[p->row_adamw].what, sizeof p->table.rows[0].what, "norm, clip, AdamW");
  return 0;
}

void cpu_profile_free(cpu_profile *p) {
  prof_free(&p->table);
  memset(p, 0, sizeof *p);
}
