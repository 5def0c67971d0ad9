/* test_gpu_nccl: the CUDA side of the device trainer's collectives on a
 * real GPU with the real NCCL: a communicator of one rank (ncomm_open's
 * bootstrap), sums and a group of broadcasts (--zero 1's sharing) on the
 * collectives' stream ordered after the compute stream and joined back
 * (events each way), fp32 and bf16, values read back. One rank's sum is its own values, so the data must come back
 * unchanged, and a missing order shows as a wrong value or an error.
 * Skipped (77) without a GPU or without libnccl.so.2: scripts/gpu-check.sh
 * runs it where there is one. */
#include <stdint.h>
#include <string.h>

#include "bf16.h"
#include "check.h"
#include "gpu_device.h"

enum { N = 1 << 20 };

static void test_sums(gpu_device *g, dist_comm *world) {
  nccl_lib lib;
  ncomm_streams streams;
  ncomm *c = NULL;
  lt_error err = {{0}};
  if (gpu_device_collectives(g, &lib, &streams, &err) || ncomm_open(&c, &lib, world, &streams, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    ncomm_close(c);
    return;
  }
  printf("     %s, a communicator of 1 rank\n", ncomm_library(c));
  dt_device dev = gpu_device_iface(g);
  dt_comm comm = ncomm_iface(c);
  static float in[N], out[N];
  static uint16_t hin[N], hout[N];
  for (int i = 0; i < N; i++) in[i] = (float)i * 0.25f - 7.0f, hin[i] = f32_to_bf16(in[i]);
  void *f = NULL, *h = NULL;
  int ok = dev.alloc(dev.ctx, sizeof in, &f, &err) == 0 && dev.alloc(dev.ctx, sizeof hin, &h, &err) == 0 &&
           dev.upload(dev.ctx, f, in, sizeof in, &err) == 0 && dev.upload(dev.ctx, h, hin, sizeof hin, &err) == 0 &&
           comm.sum(comm.ctx, f, N, 4, &err) == 0 && comm.sum(comm.ctx, h, N, 2, &err) == 0 &&
           comm.group(comm.ctx, 1, &err) == 0 && comm.share(comm.ctx, f, N / 2, 4, 0, &err) == 0 &&
           comm.share(comm.ctx, h, N, 2, 0, &err) == 0 && comm.group(comm.ctx, 0, &err) == 0 &&
           comm.join(comm.ctx, &err) == 0 && dev.zero(dev.ctx, f, 4, &err) == 0 && /* after the join */
           dev.download(dev.ctx, out, f, sizeof out, &err) == 0 &&
           dev.download(dev.ctx, hout, h, sizeof hout, &err) == 0;
  CHECK_MSG(ok, "%s", err.msg);
  if (ok) {
    CHECK(out[0] == 0.0f); /* the zeroing ran after the sum, not before */
    CHECK(memcmp(out + 1, in + 1, sizeof in - 4) == 0);
    CHECK(memcmp(hout, hin, sizeof hin) == 0);
  }
  if (f) dev.release(dev.ctx, f);
  if (h) dev.release(dev.ctx, h);
  ncomm_close(c);
}

int main(void) {
  char name[256];
  lt_error err = {{0}};
  gpu_device *g;
  nccl_lib probe;
  if (gpu_device_open(&g, 0, name, sizeof name, &err)) {
    printf("skip: %s\n", err.msg);
    return 77;
  }
  if (nccl_lib_load(&probe, &err)) {
    printf("skip: %s\n", err.msg);
    gpu_device_close(g);
    return 77;
  }
  nccl_lib_close(&probe);
  dist_comm *world;
  if (dist_open(&world, 60, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  printf("     %s\n", name);
  test_sums(g, world);
  printf("%s test_sums\n", check_failures ? "FAIL" : "ok  ");
  gpu_device_close(g);
  dist_close(world);
  return check_exit();
}
