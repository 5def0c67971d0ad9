/* test_gpu_peak: the MFU table (gpu_bf16_peak_of) matches a device by its
 * exact name and SM count; a variant (H100 NVL, A10G, an H100 with another
 * SM count) gets no peak rather than its namesake's; LISA_BF16_PEAK_TFLOPS
 * names one the table lacks. */
#include <stdlib.h>

#include "check.h"
#include "gpu_device.h"

static void test_table(void) {
  unsetenv("LISA_BF16_PEAK_TFLOPS");
  CHECK(gpu_bf16_peak_of("NVIDIA H200", 132) == 989.4e12);
  CHECK(gpu_bf16_peak_of("NVIDIA H100 80GB HBM3", 132) == 989.4e12);
  CHECK(gpu_bf16_peak_of("NVIDIA H100 PCIe", 114) == 756.5e12);
  CHECK(gpu_bf16_peak_of("NVIDIA A10", 72) == 125e12);
  CHECK(gpu_bf16_peak_of("NVIDIA H100 NVL", 132) == 0);  /* not the SXM part */
  CHECK(gpu_bf16_peak_of("NVIDIA A10G", 80) == 0);       /* not the A10 */
  CHECK(gpu_bf16_peak_of("NVIDIA H100 PCIe", 132) == 0); /* another SM count */
  CHECK(gpu_bf16_peak_of("", 0) == 0);
  setenv("LISA_BF16_PEAK_TFLOPS", "500", 1);
  CHECK(gpu_bf16_peak_of("NVIDIA A10G", 80) == 500e12);
  unsetenv("LISA_BF16_PEAK_TFLOPS");
}

int main(void) {
  RUN(test_table);
  return check_exit();
}
