/* nvrtc_batch.c: many sources through NVRTC at once. One NVRTC program per
 * thread, up to the cores: the first build of every path of a model takes
 * the slowest thread's share, not the sum. */
#include <pthread.h>
#include <unistd.h>

#include "nvrtc_driver.h"

typedef struct {
  nv_job *jobs;
  int n, next;
  const nv_options *o;
  pthread_mutex_t lock;
} batch;

static void *worker(void *arg) {
  batch *b = arg;
  for (;;) {
    pthread_mutex_lock(&b->lock);
    int i = b->next++;
    pthread_mutex_unlock(&b->lock);
    if (i >= b->n) return NULL;
    nv_job *j = &b->jobs[i];
    j->rc = nv_compile(j->name, j->source, b->o, &j->result, &j->err);
  }
}

#define NV_MAX_THREADS 64

int nv_compile_batch(nv_job *jobs, int n, const nv_options *o, int *n_threads) {
  batch b = {jobs, n, 0, o, PTHREAD_MUTEX_INITIALIZER};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int want = cores < 1 ? 1 : cores > n ? n : (int)cores, started = 0;
  if (want > NV_MAX_THREADS) want = NV_MAX_THREADS;
  pthread_t threads[NV_MAX_THREADS];
  for (int t = 0; t < want; t++) started += pthread_create(&threads[started], NULL, worker, &b) == 0;
  if (started == 0) worker(&b); /* no threads to be had: compile here */
  for (int t = 0; t < started; t++) pthread_join(threads[t], NULL);
  if (n_threads) *n_threads = started ? started : 1;
  int failed = 0;
  for (int i = 0; i < n; i++) failed += jobs[i].rc != 0;
  return failed;
}
