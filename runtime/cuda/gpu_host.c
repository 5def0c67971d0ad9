/* gpu_host.c: device buffers around a plan_exec run, for tests. */
#include "gpu_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_paths.h"

struct gpu_host {
  gpu_api api;
  gpu_runtime rt;
  gpu_path *paths;
  int n_paths;
};

int gpu_host_open(gpu_host **out, char *name, size_t cap, lt_error *err) {
  gpu_host *h = calloc(1, sizeof *h);
  if (!h) return lt_fail(err, "out of memory");
  if (gpu_open(&h->api, err)) return free(h), -1;
  if (gpu_runtime_open(&h->rt, &h->api, err)) {
    gpu_close(&h->api);
    free(h);
    return -1;
  }
  snprintf(name, cap, "%s (%s)", h->api.name, h->rt.arch);
  *out = h;
  return 0;
}

static void unload(gpu_host *h) {
  for (int i = 0; i < h->n_paths; i++) gpu_path_free(&h->rt, &h->paths[i]);
  free(h->paths);
  h->paths = NULL;
  h->n_paths = 0;
}

int gpu_host_load(gpu_host *h, const gen_program *prog, lt_error *err) {
  unload(h);
  h->paths = calloc((size_t)prog->n_paths + 1, sizeof *h->paths);
  if (!h->paths) return lt_fail(err, "out of memory");
  if (gpu_compile_all(&h->rt, prog, err)) return -1;
  for (int i = 0; i < prog->n_paths; i++, h->n_paths++)
    if (gpu_path_load(&h->rt, &prog->paths[i], &h->paths[i], err)) return -1;
  return 0;
}

static int copy_back(gpu_host *h, CUdeviceptr *dev, void *const *host, const size_t *bytes, int n,
                     int ok) {
  for (int b = 0; b < n; b++) {
    if (!dev[b]) continue;
    if (ok && h->api.cuMemcpyDtoH(host[b], dev[b], bytes[b]) != CUDA_SUCCESS) ok = 0;
    h->api.cuMemFree(dev[b]);
  }
  return ok;
}

int gpu_host_run(gpu_host *h, const gen_path *p, int from, int to, void *const *host_bufs,
                 const size_t *bytes, const path_exec_scalars *sc, lt_error *err) {
  int n = p->n_bufs, ok = 1;
  CUdeviceptr *dev = calloc((size_t)n + 1, sizeof *dev);
  void **bufs = calloc((size_t)n + 1, sizeof *bufs);
  if (!dev || !bufs) return free(dev), free(bufs), lt_fail(err, "out of memory");
  for (int b = 0; b < n && ok; b++) {
    if (!host_bufs[b]) continue;
    /* on the paths' stream: a plain cuMemcpyHtoD goes on the legacy default
     * stream, which the non-blocking stream does not wait for, and from
     * pageable memory it may return before the data is on the device */
    ok = h->api.cuMemAlloc(&dev[b], bytes[b]) == CUDA_SUCCESS &&
         h->api.cuMemcpyHtoDAsync(dev[b], host_bufs[b], bytes[b], h->rt.stream) == CUDA_SUCCESS;
    bufs[b] = (void *)dev[b];
  }
  gpu_backend_ctx ctx = {&h->rt, h->paths, h->n_paths};
  path_exec_backend be = gpu_backend(&ctx);
  if (!ok) lt_fail(err, "%s: device buffers", p->name);
  else if (path_exec_run(p, from, to, bufs, sc, &be, err)) ok = 0;
  else if (h->api.cuStreamSynchronize(h->rt.stream) != CUDA_SUCCESS)
    ok = 0, lt_fail(err, "%s: the device failed in steps %d..%d", p->name, from, to);
  if (!ok) h->api.cuStreamSynchronize(h->rt.stream); /* nothing runs on what is freed */
  ok = copy_back(h, dev, host_bufs, bytes, n, ok);
  free(dev);
  free(bufs);
  return ok ? 0 : -1;
}

void gpu_host_close(gpu_host *h) {
  if (!h) return;
  unload(h);
  gpu_runtime_close(&h->rt);
  gpu_close(&h->api);
  free(h);
}
