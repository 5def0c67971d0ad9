/* dev_train.h: training steps on the generated paths (codegen/gen/gen.h) over a
 * device: the CUDA backend (gpu_device.h), or the tests' emulator.
 *
 * The host trainer (train.h, created with params_only) keeps the config,
 * the IR, the data, the LISA sampler and the slot bookkeeping, and the
 * layout of parameters and gradients, but none of their values: those live
 * here, and the host reads and writes them through dt_store a tensor at a
 * time (loading, saving, checkpoints, norms). Each step it draws the batch
 * and, every K steps, the active set; this trainer runs everything else on
 * the device, in one arena sized at creation:
 *
 *   weights     every parameter in the storage dtype (ms_state's layout)
 *   grads       what trains, in the gradient dtype (ms_state's layout:
 *               embed, head, gradient slots)
 *   masters     bf16-mixed: fp32 copies of what trains, laid out as grads
 *   moments     AdamW m and v, laid out as grads (--zero 1 on several ranks:
 *               this rank's share of each region only, packed; AdamW then
 *               updates its pieces and shares them, dt_use_comm)
 *   activations per instance, what its path keeps for backward; what only
 *               the ACTIVE path keeps lives in slots bound with the
 *               gradient slots (as on the CPU, docs/memory.md)
 *   scratch     one region every path's scratch and workspaces share (one
 *               path runs at a time)
 *   optimizer   the AdamW table, norm, clip and their workspace
 *
 * A step is launches and GEMMs only: no allocation, no compilation, and
 * no wait for itself: its losses and gradient norm come back in stream
 * order and are read after the next step is enqueued (dt_step). A LISA
 * switch also writes the new AdamW table and widens the entering blocks'
 * masters. */
#ifndef LT_DEV_TRAIN_H
#define LT_DEV_TRAIN_H

#include <stddef.h>

#include "dev_comm.h"
#include "gen.h"
#include "memory_kinds.h"
#include "param_store.h"
#include "path_exec.h"
#include "path_profile.h"
#include "train.h"

/* Device memory and copies; exec runs the paths' kernels and GEMMs. */
typedef struct {
  void *ctx;
  path_exec_backend exec;
  int (*alloc)(void *ctx, size_t bytes, void **out, lt_error *err);
  void (*release)(void *ctx, void *mem);
  /* in stream order with exec; download returns when the bytes are here */
  int (*upload)(void *ctx, void *dst, const void *src, size_t bytes, lt_error *err);
  int (*download)(void *ctx, void *dst, const void *src, size_t bytes, lt_error *err);
  int (*zero)(void *ctx, void *dst, size_t bytes, lt_error *err);
  path_profile_timers timers; /* for path_profile; create is NULL where there are none */
  /* Pipelined steps; each may be NULL (then malloc, a waiting download, no
   * fences): page-locked host memory for async copies, a download in
   * stream order that returns at once, and fence i: a mark in the stream
   * and a wait until the stream gets there. */
  int (*host_alloc)(void *ctx, size_t bytes, void **out, lt_error *err);
  void (*host_free)(void *ctx, void *p);
  int (*download_async)(void *ctx, void *dst, const void *src, size_t bytes, lt_error *err);
  int (*fence)(void *ctx, int i, lt_error *err);
  int (*fence_wait)(void *ctx, int i, lt_error *err);
} dt_device;

typedef struct dev_trainer dev_trainer;

/* prog must be generated for the host trainer's model, method, batch and
 * sequence (gen_config.trains as the method trains). The weights arrive
 * through dt_store (trainer_use_store, then trainer_load_weights). Both
 * must outlive the device trainer. */
int dt_create(dev_trainer **out, trainer *host, const gen_program *prog, const dt_device *dev,
              lt_error *err);
void dt_free(dev_trainer *d);

/* One step (forward, backward, clip and AdamW on the device), pipelined:
 * dt_step enqueues step k and returns step k-1's stats (*ready = 1), which
 * the device finished while the host prepared step k; so the host never
 * waits for the step it has just enqueued. The first call returns none
 * (*ready = 0); dt_finish waits for the last step and returns its stats
 * (*ready = 0 if there is none pending). Call dt_finish before reading or
 * saving the device's state, so that the stats come in step order. */
int dt_step(dev_trainer *d, train_step_stats *st, int *ready, lt_error *err);
int dt_finish(dev_trainer *d, train_step_stats *st, int *ready, lt_error *err);

/* Data parallel: from the next step, this rank's gradients of each region
 * that trains are summed over comm's ranks as soon as the backward of the
 * step's last micro-batch has completed them (each block's while the device
 * goes on with the blocks below it), the optimizer waits for the sums, and
 * the stats are the whole batch's (the host trainer reads this rank's rows
 * of it: trainer_micro_batch). comm must outlive d. */
int dt_use_comm(dev_trainer *d, const dt_comm *comm, lt_error *err);

/* Launches and GEMMs one step makes at most, and the backend the next
 * steps run through (a path_profile's over dev.exec; NULL: dev.exec again). */
int dt_max_calls(const dev_trainer *d);
void dt_use_exec(dev_trainer *d, const path_exec_backend *exec);

/* Validation: the mean loss over the counted targets of the host state's
 * ids and targets, forward only on the device's weights. No step may be in
 * flight (dt_finish first); reads the loss back, so it syncs. */
int dt_eval_batch(dev_trainer *d, float *loss, lt_error *err);

/* The device's parameters and moments as a store (param_store.h): get and
 * put convert between fp32 and the device's dtypes through staging of the
 * largest tensor; put also writes a training tensor's fp32 masters
 * (bf16-mixed), and first binds the slots of an active set the host has
 * restored; restored takes a checkpoint's AdamW counts. No step may be in
 * flight (dt_finish first). */
param_store dt_store(dev_trainer *d);
/* The AdamW step count of each region into the host trainer, for ckpt_save. */
void dt_sync_counts(dev_trainer *d);
/* Host memory the device trainer holds for s's layout: conversion staging
 * of the largest tensor, and two pending steps' batches and stats. */
uint64_t dt_host_bytes(const ms_state *s, int grad_accum);

/* Bytes of the device arena, and by category (memory_plan.h's, without the
 * cuBLASLt workspace the device holds apart). */
size_t dt_arena_bytes(const dev_trainer *d);
void dt_arena_categories(const dev_trainer *d, uint64_t bytes[MEMORY_NCATEGORIES]);

/* The same arena, by category, for a layout (ms_layout's: offsets only) and a
 * program, without a device: what `lisa plan` reports for the GPU. */
int dt_arena_layout(const ms_state *s, const gen_program *prog, uint64_t bytes[MEMORY_NCATEGORIES],
                    lt_error *err);

#endif
