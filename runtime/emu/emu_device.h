/* emu_device.h: the CUDA emulator as a device (`--device emu`). The
 * generated program is compiled for the host by the system's C++ compiler
 * ($CXX, else c++) with the emulator's CUDA (templates/emu/, embedded in the
 * binary), kernels run with their threads as fibers, GEMMs with cpu_ops as
 * cuBLASLt computes them (the GELU aux at D's leading dimension, BGRADB
 * overwriting). Slow and exact; needs no GPU. Builds are cached by source
 * under $XDG_CACHE_HOME/lisa (else ~/.cache/lisa). */
#ifndef LT_EMU_DEVICE_H
#define LT_EMU_DEVICE_H

#include <stddef.h>

#include "dev_run.h"

/* Finds the compiler; name gets "CUDA emulator (c++)". -1 with the reason. */
int emu_provider_open(dev_provider *out, char *name, size_t cap, lt_error *err);
/* The emulator's tuning database key (dev_provider.tune_device), without
 * opening it: its times are the host compiler's code's. */
void emu_tune_key(char *out, size_t cap);

#endif
