/* nccl_lib.h: the part of NCCL the device trainer's collectives use, as a
 * table of functions: NCCL itself, loaded at run time (as the CUDA driver
 * is: the binary builds and runs without it), or the emulator's, which
 * does the same over MPI on host memory so that the device trainer's
 * collectives run, and are tested, on machines without a GPU.
 *
 * The types are NCCL's ABI (nccl.h 2.x), declared here so that building
 * needs no NCCL headers: a communicator is a pointer, the unique id 128
 * bytes, results, data types and operations small integers. */
#ifndef LT_NCCL_LIB_H
#define LT_NCCL_LIB_H

#include <stddef.h>

#include "dist.h"
#include "err.h"

#define NCCL_LIB_ID_BYTES 128
typedef struct { char internal[NCCL_LIB_ID_BYTES]; } nccl_lib_id;
typedef void *nccl_lib_comm;

enum { NCCL_LIB_SUCCESS = 0 };                       /* ncclResult_t */
enum { NCCL_LIB_FLOAT32 = 7, NCCL_LIB_BFLOAT16 = 9 }; /* ncclDataType_t */
enum { NCCL_LIB_SUM = 0 };                           /* ncclRedOp_t */

typedef struct {
  void *lib;          /* dlopen's handle; NULL for the emulator's */
  char name[48];      /* "NCCL 2.28.9", "NCCL emulated over MPI" */
  int version;        /* ncclGetVersion's: 22809 */
  int (*GetVersion)(int *version);
  int (*GetUniqueId)(nccl_lib_id *id);
  int (*CommInitRank)(nccl_lib_comm *comm, int nranks, nccl_lib_id id, int rank);
  int (*CommDestroy)(nccl_lib_comm comm);
  int (*CommAbort)(nccl_lib_comm comm);
  int (*AllReduce)(const void *send, void *recv, size_t count, int dtype, int op,
                   nccl_lib_comm comm, void *stream);
  int (*Broadcast)(const void *send, void *recv, size_t count, int dtype, int root,
                   nccl_lib_comm comm, void *stream);
  int (*GroupStart)(void);
  int (*GroupEnd)(void);
  const char *(*GetErrorString)(int result);
} nccl_lib;

/* NCCL (libnccl.so.2), 2.18 or later; -1 saying what is missing. */
int nccl_lib_load(nccl_lib *lib, lt_error *err);
/* The emulator's NCCL: communicators over world's MPI ranks, collectives
 * done at once on host memory (the emulator's streams run each launch
 * before it returns, so the data is there when the call comes). world must
 * outlive every communicator; one world per process, as MPI's. */
void nccl_lib_emulated(nccl_lib *lib, dist_comm *world);
void nccl_lib_close(nccl_lib *lib);

/* "what: NCCL error 3 (internal error ...)"; returns -1. */
int nccl_lib_fail(const nccl_lib *lib, int rc, const char *what, lt_error *err);

#endif
