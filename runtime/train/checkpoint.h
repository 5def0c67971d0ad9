/* checkpoint.h: a training run's whole state in a folder, so a run stopped
 * anywhere continues where it left off; on the CPU, bit for bit.
 *
 *   DIR/latest                          one line "step-<N>": the state to resume
 *   DIR/step-<N>/lisa-state             a marker: the folder is ours (cleanup
 *                                       removes only marked real folders, and
 *                                       in them only the names below)
 *   DIR/step-<N>/model.safetensors      the parameters as wt_save writes them
 *                                       (F32, Hugging Face names: loads elsewhere)
 *   DIR/step-<N>/optimizer.safetensors  the rest:
 *     "adamw.m", "adamw.v"  F32 [n_grad_scalars]  moments, laid out as ms_state.grads
 *     "adamw.t"             I32 [n_regions]       AdamW step count of each region
 *     "grad_slot"           I32 [n_layer]         each block's gradient slot, or -1
 *     "active"              I32 [n_active]        blocks training this period, ascending
 *     __metadata__ (strings): "lisa_state" "1" (the format), "step" (the next
 *     step to run), "sampled" (0/1), the settings a resume must match (see
 *     ckpt_overrides: model, method, seed, batch, seq, grad_accum, numerics,
 *     lr, schedule, warmup, weight_decay, grad_clip, adamw, cosine, data (a
 *     hash64 of the token ids and their count), train_embed, train_head,
 *     grad_slots; LISA: gamma, interval, sampling, policy (hash64 of the Lua
 *     file); LoRA: lora_rank, lora_alpha, lora_targets), and "grad_norms", "weight_norms": one
 *     "%.17g" number per block, comma-separated (17 digits read back exactly).
 *
 * No random generator state is saved: data_batch draws each step's windows
 * from (seed, step) and the LISA sampler each period's set from (seed, the
 * period's first step), so both continue from the step alone. A Lua policy
 * runs each draw in a fresh state (lisa_sampler.h), so it too depends only
 * on its ctx.
 *
 * Crash safety: ckpt_save writes both files of step-<N> (each through a
 * temporary file and rename), syncs that folder, then replaces DIR/latest
 * (temporary file, fsync, rename, sync DIR), and only then removes the other
 * step-* folders. Until the rename of latest, DIR/latest names the previous
 * complete state; after it, the new one. */
#ifndef LT_CHECKPOINT_H
#define LT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "train.h"

/* Saves t's state at its next step t->step into DIR (created if missing). */
int ckpt_save(const trainer *t, const char *dir, lt_error *err);
/* Under mpirun: every rank calls it (--zero 1 gathers the moments), rank 0
 * writes the state. Alone: ckpt_save. */
int ckpt_save_ranks(trainer *t, const char *dir, lt_error *err);

/* What a resume may change. allow: settings that change only the trajectory
 * (lr, schedule, warmup, weight decay, clip, AdamW betas and eps, the cosine
 * horizon, seed, batch, seq, grad_accum, numerics, data, LISA gamma,
 * interval, sampling and policy file, LoRA alpha) may differ from the saved
 * ones; ckpt_resume lists each change in changes. Structural settings
 * (method, model, LoRA rank and targets, train_embed, train_head, gradient
 * slots) never may: the state's tensors follow from them. */
typedef struct {
  int allow;          /* --override */
  int n_changed;      /* out */
  char changes[1024]; /* out: "lr 0.001 -> 0.002; ..." (cut short if long) */
} ckpt_overrides;

/* Restores the state DIR/latest names into t, made by trainer_create with
 * the same settings: a mismatch is an error naming the setting and both
 * values, unless ov allows it (ov may be NULL: allow nothing). trainer_step
 * then runs the saved next step. On failure t may be partly restored: free it. */
int ckpt_resume(trainer *t, const char *dir, ckpt_overrides *ov, lt_error *err);

/* "DIR/step-<step>": the folder ckpt_save writes for that step. */
int ckpt_step_path(const char *dir, int64_t step, char *out, size_t cap, lt_error *err);

#endif
