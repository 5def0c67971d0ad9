/* nccl_emu.c: the emulator's NCCL (nccl_lib.h): the calls the device
 * trainer makes, over MPI on host memory. The emulator runs every launch
 * before it returns, so a collective can run at once and the stream
 * argument is unused. NCCL's functions take no context, so the world they
 * run over is the one nccl_lib_emulated was given: one per process, as
 * MPI's own. */
#include "nccl_lib.h"

#include <stdlib.h>
#include <string.h>

#include <time.h>
#include <unistd.h>

#include "bf16.h"

enum { EMU_INVALID_ARGUMENT = 4, EMU_SYSTEM_ERROR = 2, EMU_INVALID_USAGE = 5 };

typedef struct {
  int rank, nranks;
  float *stage; /* bf16 sums go through fp32; grown on first use only */
  size_t cap;
} emu_comm;

static dist_comm *emu_world;

static int emu_version(int *v) {
  *v = 0;
  return NCCL_LIB_SUCCESS;
}

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Bytes that differ from run to run, as NCCL's (rank 0's travel to the
 * others: dist_broadcast). */
static int emu_unique_id(nccl_lib_id *id) {
  uint64_t x = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)id;
  for (size_t i = 0; i < sizeof id->internal; i += 8) {
    uint64_t r = splitmix64(&x);
    memcpy(id->internal + i, &r, 8);
  }
  return NCCL_LIB_SUCCESS;
}

static uint64_t id_hash(const nccl_lib_id *id) { /* FNV-1a */
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < sizeof id->internal; i++) h = (h ^ (unsigned char)id->internal[i]) * 0x100000001b3ull;
  return h;
}

/* Every rank must come with the same id, its own rank and the world's
 * size, as NCCL requires: checked, so a wrong bootstrap fails here. */
static int emu_init_rank(nccl_lib_comm *out, int nranks, nccl_lib_id id, int rank) {
  lt_error err;
  *out = NULL;
  if (!emu_world || nranks != dist_size(emu_world) || rank != dist_rank(emu_world))
    return EMU_INVALID_ARGUMENT;
  if (dist_agree(emu_world, id_hash(&id), "NCCL unique id", &err))
    return EMU_INVALID_USAGE;
  emu_comm *c = calloc(1, sizeof *c);
  if (!c) return EMU_SYSTEM_ERROR;
  c->rank = rank, c->nranks = nranks;
  *out = c;
  return NCCL_LIB_SUCCESS;
}

static int emu_destroy(nccl_lib_comm comm) {
  emu_comm *c = comm;
  if (c) free(c->stage);
  free(c);
  return NCCL_LIB_SUCCESS;
}

static int sum_bf16(emu_comm *c, uint16_t *x, size_t n) {
  lt_error err;
  if (n > c->cap) {
    float *p = realloc(c->stage, n * sizeof *p);
    if (!p) return EMU_SYSTEM_ERROR;
    c->stage = p, c->cap = n;
  }
  for (size_t i = 0; i < n; i++) c->stage[i] = bf16_to_f32(x[i]);
  if (dist_sum_f32(emu_world, c->stage, (int64_t)n, NULL, &err)) return EMU_SYSTEM_ERROR;
  for (size_t i = 0; i < n; i++) x[i] = f32_to_bf16(c->stage[i]);
  return NCCL_LIB_SUCCESS;
}

static int emu_all_reduce(const void *send, void *recv, size_t count, int dtype, int op,
                          nccl_lib_comm comm, void *stream) {
  (void)stream;
  lt_error err;
  emu_comm *c = comm;
  if (!c || op != NCCL_LIB_SUM || (dtype != NCCL_LIB_FLOAT32 && dtype != NCCL_LIB_BFLOAT16))
    return EMU_INVALID_ARGUMENT;
  const size_t elem = dtype == NCCL_LIB_FLOAT32 ? 4 : 2;
  if (send != recv) memmove(recv, send, count * elem);
  if (dtype == NCCL_LIB_BFLOAT16) return sum_bf16(c, recv, count);
  return dist_sum_f32(emu_world, recv, (int64_t)count, NULL, &err) ? EMU_SYSTEM_ERROR
                                                                     : NCCL_LIB_SUCCESS;
}

/* In place from root: the emulator's calls run at once, in the order every
 * rank makes them, as MPI_Bcast needs. */
static int emu_broadcast(const void *send, void *recv, size_t count, int dtype, int root,
                         nccl_lib_comm comm, void *stream) {
  (void)stream;
  lt_error err;
  emu_comm *c = comm;
  if (!c || root < 0 || root >= c->nranks || (dtype != NCCL_LIB_FLOAT32 && dtype != NCCL_LIB_BFLOAT16))
    return EMU_INVALID_ARGUMENT;
  const size_t bytes = count * (dtype == NCCL_LIB_FLOAT32 ? 4 : 2);
  if (bytes >= (size_t)1 << 31) return EMU_INVALID_ARGUMENT;
  if (send != recv && c->rank == root) memmove(recv, send, bytes);
  return dist_broadcast(emu_world, recv, (int)bytes, root, &err) ? EMU_SYSTEM_ERROR : NCCL_LIB_SUCCESS;
}

static int emu_group(void) { return NCCL_LIB_SUCCESS; } /* each call ran when it was made */

static const char *emu_error_string(int rc) {
  switch (rc) {
  case NCCL_LIB_SUCCESS: return "no error";
  case EMU_SYSTEM_ERROR: return "the emulator's MPI call failed";
  case EMU_INVALID_ARGUMENT: return "invalid argument (rank, size or type)";
  case EMU_INVALID_USAGE: return "the ranks came with different unique ids";
  default: return "unknown";
  }
}

void nccl_lib_emulated(nccl_lib *lib, dist_comm *world) {
  emu_world = world;
  *lib = (nccl_lib){.name = "NCCL emulated over MPI", .GetVersion = emu_version,
                    .GetUniqueId = emu_unique_id, .CommInitRank = emu_init_rank,
                    .CommDestroy = emu_destroy, .CommAbort = emu_destroy,
                    .AllReduce = emu_all_reduce, .Broadcast = emu_broadcast,
                    .GroupStart = emu_group, .GroupEnd = emu_group,
                    .GetErrorString = emu_error_string};
}
