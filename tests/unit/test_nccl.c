/* The device trainer's collectives (nccl_lib.h, nccl_comm.h) without a GPU:
 * NCCL itself loads, reports its version and makes unique ids; the
 * emulator's NCCL sums fp32 and bf16 over the ranks, checks the bootstrap
 * (every rank the same id, its own rank, the world's size) and refuses
 * what NCCL refuses; ncomm carries rank 0's id to every rank. Alone under
 * meson, and under `mpirun -np 2` from tests/cli/test_cli_dist.sh. */
#include <stdint.h>
#include <string.h>

#include "bf16.h"
#include "check.h"
#include "dist.h"
#include "nccl_comm.h"
#include "nccl_lib.h"

static dist_comm *world;

static int all_zero(const nccl_lib_id *id) {
  for (size_t i = 0; i < sizeof id->internal; i++)
    if (id->internal[i]) return 0;
  return 1;
}

/* NCCL where it is installed (it is in CI's image): loaded at run time, its
 * version, unique ids, and rank 0's id reaching every rank through ncomm's
 * bootstrap (the communicator is the emulator's: NCCL's own needs a GPU). */
static void test_real_library(void) {
  nccl_lib lib;
  lt_error err = {{0}};
  if (nccl_lib_load(&lib, &err)) {
    CHECK_MSG(strstr(err.msg, "does not load") != NULL, "%s", err.msg);
    printf("     (no NCCL here: %s)\n", err.msg);
    return;
  }
  CHECK_MSG(lib.version >= 21800 && !strncmp(lib.name, "NCCL 2.", 7), "%d %s", lib.version, lib.name);
  nccl_lib_id a, b;
  memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
  CHECK(lib.GetUniqueId(&a) == NCCL_LIB_SUCCESS && lib.GetUniqueId(&b) == NCCL_LIB_SUCCESS);
  CHECK(!all_zero(&a) && memcmp(&a, &b, sizeof a) != 0);
  CHECK(lib.GetErrorString(NCCL_LIB_SUCCESS) != NULL);
  if (dist_rank(world) == 0) printf("     %s: ids made\n", lib.name);
  /* NCCL's id maker, the emulator's communicator (which checks the id) */
  nccl_lib mixed;
  nccl_lib_emulated(&mixed, world);
  mixed.GetUniqueId = lib.GetUniqueId;
  ncomm *c = NULL;
  ncomm_streams none = {0};
  CHECK_MSG(ncomm_open(&c, &mixed, world, &none, &err) == 0, "%s", err.msg);
  ncomm_close(c);
  nccl_lib_close(&lib);
}

/* fp32 and bf16 sums of every rank's values, pieces shared from their
 * owners, and the loss's host sum. */
static void test_emulated_sums(void) {
  nccl_lib lib;
  nccl_lib_emulated(&lib, world);
  ncomm *c = NULL;
  ncomm_streams none = {0};
  lt_error err = {{0}};
  if (ncomm_open(&c, &lib, world, &none, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    ncomm_close(c);
    return;
  }
  dt_comm comm = ncomm_iface(c);
  const int R = dist_size(world), r = dist_rank(world);
  CHECK(comm.rank == r && comm.ranks == R);
  const double S = R * (R + 1) / 2.0; /* sum over ranks of rank + 1 */
  enum { N = 1001 };
  static float f[N];
  static uint16_t h[N];
  for (int i = 0; i < N; i++) {
    f[i] = (float)(r + 1) * ((float)i + 0.5f);
    h[i] = f32_to_bf16((float)((r + 1) * (i % 64))); /* sums <= 189 * R/2: exact in bf16 */
  }
  CHECK_MSG(comm.sum(comm.ctx, f, N, 4, &err) == 0 && comm.sum(comm.ctx, h, N, 2, &err) == 0 &&
                comm.join(comm.ctx, &err) == 0, "%s", err.msg);
  int bad_f = 0, bad_h = 0;
  for (int i = 0; i < N; i++) {
    bad_f += f[i] != (float)(S * (i + 0.5));
    bad_h += bf16_to_f32(h[i]) != (float)(S * (i % 64));
  }
  CHECK_MSG(bad_f == 0 && bad_h == 0, "%d fp32 and %d bf16 sums wrong", bad_f, bad_h);
  /* --zero 1's sharing: pieces from their owners, in one group */
  static float g[N];
  for (int i = 0; i < N; i++) g[i] = (float)(r * N + i);
  CHECK_MSG(comm.group(comm.ctx, 1, &err) == 0, "%s", err.msg);
  for (int k = 0; k < R; k++) { /* piece k of g belongs to rank k */
    int64_t lo, n;
    dist_share(N, k, R, &lo, &n);
    CHECK_MSG(comm.share(comm.ctx, g + lo, n, 4, k, &err) == 0, "%s", err.msg);
  }
  CHECK_MSG(comm.group(comm.ctx, 0, &err) == 0 && comm.join(comm.ctx, &err) == 0, "%s", err.msg);
  int bad_g = 0;
  for (int k = 0; k < R; k++) {
    int64_t lo, n;
    dist_share(N, k, R, &lo, &n);
    for (int64_t i = lo; i < lo + n; i++) bad_g += g[i] != (float)(k * N + i);
  }
  CHECK_MSG(bad_g == 0, "%d shared values are not their owner's", bad_g);
  double loss[2] = {r + 1.0, 1.0};
  CHECK(comm.sum_host(comm.ctx, loss, 2, &err) == 0 && loss[0] == S && loss[1] == R);
  ncomm_close(c);
}

/* What NCCL refuses, refused: another size or rank, an unknown type, and
 * ranks that came with different ids (every rank fails, none hangs). */
static void test_emulated_refusals(void) {
  nccl_lib lib;
  nccl_lib_emulated(&lib, world);
  nccl_lib_id id;
  memset(&id, 7, sizeof id);
  nccl_lib_comm comm = NULL;
  lt_error err = {{0}};
  int rc = lib.CommInitRank(&comm, dist_size(world) + 1, id, dist_rank(world));
  CHECK(rc != NCCL_LIB_SUCCESS && comm == NULL);
  nccl_lib_fail(&lib, rc, "ncclCommInitRank", &err);
  CHECK_MSG(strstr(err.msg, "ncclCommInitRank: NCCL error 4 (invalid argument") != NULL, "%s", err.msg);
  CHECK(lib.CommInitRank(&comm, dist_size(world), id, dist_rank(world) + 1) != NCCL_LIB_SUCCESS);
  CHECK(lib.CommInitRank(&comm, dist_size(world), id, dist_rank(world)) == NCCL_LIB_SUCCESS);
  float x = 1.0f;
  CHECK(lib.AllReduce(&x, &x, 1, 0 /* ncclInt8 */, NCCL_LIB_SUM, comm, NULL) != NCCL_LIB_SUCCESS);
  CHECK(lib.AllReduce(&x, &x, 1, NCCL_LIB_FLOAT32, 1 /* ncclProd */, comm, NULL) != NCCL_LIB_SUCCESS);
  CHECK(lib.Broadcast(&x, &x, 1, NCCL_LIB_FLOAT32, dist_size(world), comm, NULL) != NCCL_LIB_SUCCESS);
  lib.CommDestroy(comm);
  if (dist_size(world) > 1) {
    id.internal[5] = (char)dist_rank(world); /* a broken bootstrap */
    rc = lib.CommInitRank(&comm, dist_size(world), id, dist_rank(world));
    nccl_lib_fail(&lib, rc, "ncclCommInitRank", &err);
    CHECK_MSG(rc != NCCL_LIB_SUCCESS && strstr(err.msg, "different unique ids"), "%s", err.msg);
  }
}

int main(void) {
  lt_error err = {{0}};
  if (dist_open(&world, 60, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  RUN(test_real_library);
  RUN(test_emulated_sums);
  RUN(test_emulated_refusals);
  int rc = check_exit();
  dist_close(world);
  return rc;
}
