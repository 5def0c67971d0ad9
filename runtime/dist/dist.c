/* dist.c: a world of one, or Open MPI loaded at run time (dist.h). */
#include "dist.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The part of Open MPI's ABI used here: handles are pointers. */
typedef void *mpi_handle;
typedef struct {
  void *lib;
  int (*Init)(int *, char ***);
  int (*Finalize)(void);
  int (*Abort)(mpi_handle, int);
  int (*Comm_rank)(mpi_handle, int *);
  int (*Comm_size)(mpi_handle, int *);
  int (*Allreduce)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle);
  int (*Allgather)(const void *, int, mpi_handle, void *, int, mpi_handle, mpi_handle);
  int (*Allgatherv)(const void *, int, mpi_handle, void *, const int *, const int *, mpi_handle,
                    mpi_handle);
  int (*Reduce_scatter)(const void *, void *, const int *, mpi_handle, mpi_handle, mpi_handle);
  int (*Bcast)(void *, int, mpi_handle, int, mpi_handle);
  mpi_handle world, t_float, t_double, t_u64, t_byte, op_sum;
} mpi_api;

struct dist_comm {
  int rank, size;
  int local_rank;        /* this rank's index among the ranks on its machine */
  int *counts, *displs; /* dist_gather_f32's, [size]: no allocation per call */
  int timeout_s; /* dist_set_timeout's; 0: none */
  mpi_api mpi;   /* lib NULL: alone */
};

/* The timeout's message, written by the SIGALRM handler (which may only
 * call async-signal-safe functions: no formatting there). One world a
 * process, so one message. */
static char timeout_msg[160];
static size_t timeout_len;

static void on_timeout(int sig) {
  (void)sig;
  ssize_t ignored = write(2, timeout_msg, timeout_len);
  (void)ignored;
  _exit(1);
}

/* rank and size: mpirun's, before MPI_Init tells them */
static void set_timeout(dist_comm *c, int rank, int size, int seconds) {
  c->timeout_s = seconds;
  snprintf(timeout_msg, sizeof timeout_msg,
           "lisa: rank %d of %d: no answer from the other ranks in %d s (a rank stopped or "
           "hangs; --comm-timeout); ending\n", rank, size, seconds);
  timeout_len = strlen(timeout_msg);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_timeout;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
}

/* Around each collective. */
static void arm(const dist_comm *c) {
  if (c->timeout_s > 0) alarm((unsigned)c->timeout_s);
}
static void disarm(const dist_comm *c) {
  if (c->timeout_s > 0) alarm(0);
}

#define MPI_IN_PLACE_ ((void *)1) /* Open MPI's MPI_IN_PLACE */
#define MPI_CHUNK (1 << 28)       /* elements per call: MPI counts are int */

static int load_mpi(mpi_api *m, lt_error *err) {
  static const char *const names[] = {"libmpi.so.40", "libmpi.so"};
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !m->lib; i++)
    m->lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL); /* its plugins need its symbols */
  if (!m->lib)
    return lt_fail(err, "mpirun started this process, but Open MPI's libmpi.so.40 does not "
                        "load (%s); apt-get install openmpi-bin", dlerror());
  struct { const char *name; void **to; } syms[] = {
      {"MPI_Init", (void **)&m->Init}, {"MPI_Finalize", (void **)&m->Finalize},
      {"MPI_Abort", (void **)&m->Abort},
      {"MPI_Comm_rank", (void **)&m->Comm_rank}, {"MPI_Comm_size", (void **)&m->Comm_size},
      {"MPI_Allreduce", (void **)&m->Allreduce}, {"MPI_Allgather", (void **)&m->Allgather},
      {"MPI_Allgatherv", (void **)&m->Allgatherv},
      {"MPI_Reduce_scatter", (void **)&m->Reduce_scatter}, {"MPI_Bcast", (void **)&m->Bcast},
      {"ompi_mpi_comm_world", &m->world}, {"ompi_mpi_float", &m->t_float},
      {"ompi_mpi_double", &m->t_double}, {"ompi_mpi_uint64_t", &m->t_u64},
      {"ompi_mpi_byte", &m->t_byte},
      {"ompi_mpi_op_sum", &m->op_sum},
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
    if (!(*syms[i].to = dlsym(m->lib, syms[i].name)))
      return lt_fail(err, "libmpi has no %s: not Open MPI?", syms[i].name);
  return 0;
}

/* The size (and rank) mpirun gave this process; 1 when it did not start it. */
static int launched(const char *what) {
  const char *s = getenv(what);
  return s ? atoi(s) : -1;
}

int dist_open(dist_comm **out, int timeout_s, lt_error *err) {
  dist_comm *c = calloc(1, sizeof *c);
  if (!c) return lt_fail(err, "out of memory");
  c->size = 1;
  *out = c;
  const int size = launched("OMPI_COMM_WORLD_SIZE");
  if (size <= 1) return 0;
  if (load_mpi(&c->mpi, err)) return -1; /* c stays: dist_close */
  set_timeout(c, launched("OMPI_COMM_WORLD_RANK"), size, timeout_s);
  arm(c); /* MPI_Init waits for every rank */
  const int rc = c->mpi.Init(NULL, NULL);
  disarm(c);
  if (rc != 0 || c->mpi.Comm_rank(c->mpi.world, &c->rank) != 0 ||
      c->mpi.Comm_size(c->mpi.world, &c->size) != 0)
    return lt_fail(err, "MPI_Init failed");
  set_timeout(c, c->rank, c->size, timeout_s);
  const int local = launched("OMPI_COMM_WORLD_LOCAL_RANK");
  c->local_rank = local > 0 ? local : 0;
  c->counts = malloc(sizeof *c->counts * (size_t)c->size);
  c->displs = malloc(sizeof *c->displs * (size_t)c->size);
  return c->counts && c->displs ? 0 : lt_fail(err, "out of memory");
}

void dist_close(dist_comm *c) {
  if (!c) return;
  free(c->counts), free(c->displs);
  if (c->mpi.lib) c->mpi.Finalize(); /* the library stays loaded: its atexit handlers */
  free(c);
}

void dist_abort(dist_comm *c, int status) {
  if (c && c->mpi.lib && c->size > 1) c->mpi.Abort(c->mpi.world, status);
  exit(status);
}

int dist_rank(const dist_comm *c) { return c ? c->rank : 0; }
int dist_size(const dist_comm *c) { return c ? c->size : 1; }
int dist_local_rank(const dist_comm *c) { return c ? c->local_rank : 0; }

void dist_watch(const dist_comm *c, int on) {
  if (!c || c->size == 1) return;
  if (on) arm(c);
  else disarm(c);
}

int dist_sum_f32(dist_comm *c, float *x, int64_t n, uint64_t *bytes, lt_error *err) {
  if (!c || c->size == 1) return 0;
  for (int64_t at = 0; at < n; at += MPI_CHUNK) {
    const int k = (int)(n - at < MPI_CHUNK ? n - at : MPI_CHUNK);
    arm(c);
    const int rc = c->mpi.Allreduce(MPI_IN_PLACE_, x + at, k, c->mpi.t_float, c->mpi.op_sum,
                                    c->mpi.world);
    disarm(c);
    if (rc) return lt_fail(err, "rank %d: MPI_Allreduce of %d floats failed", c->rank, k);
  }
  if (bytes) *bytes += (uint64_t)n * sizeof *x;
  return 0;
}

/* The counts of dist_share(n) for every rank into c->counts (and displs). */
static int share_counts(dist_comm *c, int64_t n, const char *what, lt_error *err) {
  if (n >= (int64_t)1 << 31) return lt_fail(err, "%s: %lld floats in one call", what, (long long)n);
  for (int k = 0; k < c->size; k++) {
    int64_t lo, count;
    dist_share(n, k, c->size, &lo, &count);
    c->displs[k] = (int)lo, c->counts[k] = (int)count;
  }
  return 0;
}

int dist_gather_f32(dist_comm *c, float *x, int64_t n, uint64_t *bytes, lt_error *err) {
  if (!c || c->size == 1) return 0;
  if (share_counts(c, n, "dist_gather_f32", err)) return -1;
  arm(c);
  const int rc = c->mpi.Allgatherv(MPI_IN_PLACE_, 0, c->mpi.t_float, x, c->counts, c->displs,
                                   c->mpi.t_float, c->mpi.world);
  disarm(c);
  if (rc) return lt_fail(err, "rank %d: MPI_Allgatherv of %lld floats failed", c->rank, (long long)n);
  if (bytes) *bytes += (uint64_t)n * sizeof *x;
  return 0;
}

int dist_sum_share_f32(dist_comm *c, const float *x, float *mine, int64_t n, uint64_t *bytes,
                       lt_error *err) {
  if (!c || c->size == 1) {
    if (mine != x) memmove(mine, x, sizeof *x * (size_t)n);
    return 0;
  }
  if (share_counts(c, n, "dist_sum_share_f32", err)) return -1;
  arm(c);
  const int rc = c->mpi.Reduce_scatter(x, mine, c->counts, c->mpi.t_float, c->mpi.op_sum,
                                       c->mpi.world);
  disarm(c);
  if (rc) return lt_fail(err, "rank %d: MPI_Reduce_scatter of %lld floats failed", c->rank, (long long)n);
  if (bytes) *bytes += (uint64_t)n * sizeof *x;
  return 0;
}

int dist_broadcast(dist_comm *c, void *buf, int bytes, int root, lt_error *err) {
  if (!c || c->size == 1) return 0;
  arm(c);
  const int rc = c->mpi.Bcast(buf, bytes, c->mpi.t_byte, root, c->mpi.world);
  disarm(c);
  return rc ? lt_fail(err, "rank %d: MPI_Bcast of %d bytes failed", c->rank, bytes) : 0;
}

int dist_sum_f64(dist_comm *c, double *x, int n, lt_error *err) {
  if (!c || c->size == 1) return 0;
  arm(c);
  const int rc = c->mpi.Allreduce(MPI_IN_PLACE_, x, n, c->mpi.t_double, c->mpi.op_sum, c->mpi.world);
  disarm(c);
  return rc ? lt_fail(err, "rank %d: MPI_Allreduce of %d doubles failed", c->rank, n) : 0;
}

int dist_agree(dist_comm *c, uint64_t value, const char *what, lt_error *err) {
  if (!c || c->size == 1) return 0;
  uint64_t *all = malloc(sizeof *all * (size_t)c->size);
  if (!all) return lt_fail(err, "out of memory");
  arm(c);
  int rc = c->mpi.Allgather(&value, 1, c->mpi.t_u64, all, 1, c->mpi.t_u64, c->mpi.world)
               ? lt_fail(err, "rank %d: MPI_Allgather failed", c->rank) : 0;
  disarm(c);
  for (int r = 1; rc == 0 && r < c->size; r++)
    if (all[r] != all[0])
      rc = lt_fail(err, "rank %d's %s differ from rank 0's: every rank must run the same command",
                   r, what);
  free(all);
  return rc;
}
