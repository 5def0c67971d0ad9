/* dist.h: the processes of a data-parallel run (`mpirun -np N lisa train`)
 * and the collectives the trainer needs: sums of gradients and scalars in
 * a fixed order, so every rank ends a step with the same numbers.
 *
 * Under mpirun (OMPI_COMM_WORLD_SIZE > 1 in the environment) dist_open
 * loads Open MPI's libmpi at run time, as the CUDA driver is loaded, so the
 * lisa binary needs no MPI to build, to start or to run alone; otherwise it
 * is a world of one and every collective is a no-op. The symbols are Open
 * MPI's (Debian's openmpi): its handles are the addresses of globals
 * (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_op_sum). */
#ifndef LT_DIST_H
#define LT_DIST_H

#include <stdint.h>

#include "err.h"

typedef struct dist_comm dist_comm;

/* The world this process is in; *out is never NULL on success. A
 * collective (MPI_Init's too) that has not returned after timeout_s seconds
 * (0: never) ends this rank with a message naming it, and mpirun then ends
 * the others: a rank that stopped, hangs or never started does not leave
 * the rest waiting forever. */
int dist_open(dist_comm **out, int timeout_s, lt_error *err);
/* Ends the world (MPI_Finalize); NULL is fine. */
void dist_close(dist_comm *c);
/* Ends every rank now with status (MPI_Abort): a rank that fails must not
 * leave the others waiting in a collective. Alone: exit(status). */
void dist_abort(dist_comm *c, int status);

int dist_rank(const dist_comm *c); /* 0 when alone or c is NULL */
int dist_size(const dist_comm *c); /* 1 when alone or c is NULL */
/* This rank's index among those on its machine (mpirun's), 0 alone: which
 * GPU of the machine it takes. */
int dist_local_rank(const dist_comm *c);
/* Around a wait for the other ranks outside MPI (a GPU's collectives, seen
 * at a stream's fence): on = 1 arms the collectives' timeout, 0 disarms. */
void dist_watch(const dist_comm *c, int on);

/* In place, the sum over ranks of x[0, n). The payload bytes go into
 * *bytes (if not NULL): what the step moved, for the JSONL. */
int dist_sum_f32(dist_comm *c, float *x, int64_t n, uint64_t *bytes, lt_error *err);
int dist_sum_f64(dist_comm *c, double *x, int n, lt_error *err);
/* Rank `rank`'s part of n things shared by `ranks`: [*lo, *lo + *count),
 * [n rank / ranks, n (rank + 1) / ranks). The one split every sharded
 * thing uses (--zero 1's moments, dist_gather_f32, lisa plan). */
static inline void dist_share(int64_t n, int rank, int ranks, int64_t *lo, int64_t *count) {
  *lo = n * rank / ranks;
  *count = n * (rank + 1) / ranks - *lo;
}

/* In place: each rank's dist_share of x[0, n) to every rank
 * (MPI_Allgatherv); n < 2^31. Bytes as dist_sum_f32. */
int dist_gather_f32(dist_comm *c, float *x, int64_t n, uint64_t *bytes, lt_error *err);
/* The sum over ranks of x[0, n), this rank's dist_share of it only, into
 * mine (dist_share's count of floats; MPI_Reduce_scatter): half the traffic
 * of a whole sum where each rank needs only its part (--zero 1). mine may
 * not overlap x on several ranks. Bytes as dist_sum_f32. */
int dist_sum_share_f32(dist_comm *c, const float *x, float *mine, int64_t n, uint64_t *bytes,
                       lt_error *err);
/* Rank root's bytes to every rank (MPI_Bcast): NCCL's unique id. */
int dist_broadcast(dist_comm *c, void *buf, int bytes, int root, lt_error *err);
/* Whether every rank passed the same value (a hash of its settings): -1
 * with an error naming the first rank whose value differs otherwise. */
int dist_agree(dist_comm *c, uint64_t value, const char *what, lt_error *err);

#endif
