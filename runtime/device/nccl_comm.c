/* nccl_comm.c: a device trainer's collectives over NCCL (nccl_comm.h). */
#include "nccl_comm.h"

#include <stdlib.h>
#include <string.h>

struct ncomm {
  nccl_lib lib;
  ncomm_streams st;
  dist_comm *world;
  nccl_lib_comm comm;
};

int ncomm_open(ncomm **out, nccl_lib *lib, dist_comm *world, const ncomm_streams *st,
               lt_error *err) {
  ncomm *c = calloc(1, sizeof *c);
  if (!c) return nccl_lib_close(lib), lt_fail(err, "out of memory");
  c->lib = *lib, c->st = *st, c->world = world;
  *out = c;
  nccl_lib_id id;
  memset(&id, 0, sizeof id);
  int rc = dist_rank(world) == 0 ? c->lib.GetUniqueId(&id) : NCCL_LIB_SUCCESS;
  if (rc != NCCL_LIB_SUCCESS) return nccl_lib_fail(&c->lib, rc, "ncclGetUniqueId", err);
  if (dist_broadcast(world, &id, sizeof id, 0, err)) return -1;
  dist_watch(world, 1); /* every rank's init waits for the others' */
  rc = c->lib.CommInitRank(&c->comm, dist_size(world), id, dist_rank(world));
  dist_watch(world, 0);
  if (rc != NCCL_LIB_SUCCESS) {
    c->comm = NULL;
    return nccl_lib_fail(&c->lib, rc, "ncclCommInitRank", err);
  }
  return 0;
}

static int sum(void *ctx, void *p, int64_t n, int elem_bytes, lt_error *err) {
  ncomm *c = ctx;
  if (c->st.after_compute && c->st.after_compute(c->st.ctx, err)) return -1;
  const int dtype = elem_bytes == 2 ? NCCL_LIB_BFLOAT16 : NCCL_LIB_FLOAT32;
  const int rc = c->lib.AllReduce(p, p, (size_t)n, dtype, NCCL_LIB_SUM, c->comm, c->st.stream);
  return rc == NCCL_LIB_SUCCESS ? 0 : nccl_lib_fail(&c->lib, rc, "ncclAllReduce", err);
}

static int group(void *ctx, int begin, lt_error *err) {
  ncomm *c = ctx;
  if (begin && c->st.after_compute && c->st.after_compute(c->st.ctx, err)) return -1;
  const int rc = begin ? c->lib.GroupStart() : c->lib.GroupEnd();
  return rc == NCCL_LIB_SUCCESS ? 0 : nccl_lib_fail(&c->lib, rc, begin ? "ncclGroupStart" : "ncclGroupEnd", err);
}

static int share(void *ctx, void *p, int64_t n, int elem_bytes, int root, lt_error *err) {
  ncomm *c = ctx;
  const int dtype = elem_bytes == 2 ? NCCL_LIB_BFLOAT16 : NCCL_LIB_FLOAT32;
  const int rc = c->lib.Broadcast(p, p, (size_t)n, dtype, root, c->comm, c->st.stream);
  return rc == NCCL_LIB_SUCCESS ? 0 : nccl_lib_fail(&c->lib, rc, "ncclBroadcast", err);
}

static int join(void *ctx, lt_error *err) {
  ncomm *c = ctx;
  return c->st.compute_waits ? c->st.compute_waits(c->st.ctx, err) : 0;
}

static int sum_host(void *ctx, double *x, int n, lt_error *err) {
  return dist_sum_f64(((ncomm *)ctx)->world, x, n, err);
}

static void watch(void *ctx, int on) { dist_watch(((ncomm *)ctx)->world, on); }

dt_comm ncomm_iface(ncomm *c) {
  return (dt_comm){c, dist_rank(c->world), dist_size(c->world), sum, group, share, join, sum_host,
                   watch};
}

const char *ncomm_library(const ncomm *c) { return c->lib.name; }

void ncomm_close(ncomm *c) {
  if (!c) return;
  if (c->comm) c->lib.CommDestroy(c->comm);
  nccl_lib_close(&c->lib);
  free(c);
}
