/* train.h: the training loop's pieces. A trainer owns the model IR (with its
 * backward graphs), the buffers, the optimizer state, the data and, for
 * LISA, the layer sampler; one call runs one step: batch, forward, backward,
 * clip, AdamW. Everything is allocated by trainer_create; trainer_step
 * allocates nothing.
 *
 * Optimizer state is kept per region: 0 = embed, 1 = head, 2 + s = block
 * gradient slot s. Moments are laid out like ms_state.grads, so a block's
 * moments live in its slot: a block that stays active keeps them, one that
 * leaves gives the slot up, one that enters gets a zeroed slot and its
 * bias-correction count restarts (as PyTorch's AdamW does for a parameter it
 * has not seen). */
#ifndef LT_TRAIN_H
#define LT_TRAIN_H

#include <stdint.h>

#include "data.h"
#include "lisa_sampler.h"
#include "dist.h"
#include "model_state.h"
#include "param_store.h"
#include "optim.h"
#include "schedule.h"

/* LoRA trains only adapters (codegen/front/lora.h) in every block; the base
 * weights, the embedding and the head stay frozen and hold no gradients. */
enum train_method { TRAIN_FT, TRAIN_LISA, TRAIN_LORA };

typedef struct {
  const char *model_path;
  const char *data_path;
  const char *weights_path; /* NULL: random init from the seed */
  int from_scratch;         /* a folder MODEL: initialize, do not read its weights */
  int ignore_unused;        /* tensors in the weights the model does not use:
                               0 = an error (the checkpoint cannot mean what the
                               model says), 1 = load_note lists them */
  int method;               /* enum train_method */
  int64_t steps;
  int batch, seq;
  uint64_t seed;
  opt_config opt;
  int train_embed, train_head; /* LISA: E and H train (default on) */
  lisa_sampler_config lisa;    /* LISA: mode, gamma, interval, Lua policy */
  int lora_rank;               /* LoRA: adapter rank r */
  double lora_alpha;           /* LoRA: the adapter path is scaled by alpha / r */
  const char *lora_targets;    /* LoRA: block weight keys "attn_w,fc_w"; NULL = all */
  int params_only;             /* host side of a device trainer: the layout, the data and
                                  the schedule; parameters and moments live in the store
                                  the device puts in (trainer_use_store), and weights
                                  load into it (trainer_load_weights) */
  int grad_accum;              /* micro-batches per step (0 or 1: one) */
  const char *numerics;        /* the arithmetic the steps run in, as states record it
                                  ("fp32", "bf16-mixed/stochastic", ...); NULL: "fp32" */
  int zero;                    /* 1: the optimizer state of what trains is sharded over the
                                  ranks; each rank updates its shard of every region, then
                                  the weights are gathered (ZeRO stage 1) */
  dist_comm *comm;             /* data parallel (mpirun): this rank trains rows rank * batch
                                  .. + batch - 1 of a batch of ranks * batch rows, and the
                                  gradients of what trains are summed over ranks before
                                  AdamW; NULL or a world of one: alone */
} train_config;

typedef struct {
  int64_t step;
  float loss;           /* of this step's batch, before its update */
  float lr;
  double grad_norm;     /* global norm before clipping */
  double step_ms;
  double tokens_per_s;
  int switched;         /* the active set was (re)sampled this step */
  double mfu;           /* model FLOPs/s over the device's bf16 peak; < 0: not known */
  uint64_t peak_bytes;  /* device runs: the arena and workspace; 0: trainer_bytes */
  uint64_t device_used_bytes; /* device runs: all the process holds there */
  const uint64_t *device_memory; /* device runs: the arena by memory_plan.h's categories; else NULL */
  const int *active; int n_active; /* the step's active set where the trainer has moved on
                                      (a pipelined device step); NULL: the trainer's */
  int ranks;            /* data-parallel ranks (1: alone) */
  uint64_t comm_bytes;  /* gradient and loss bytes this rank summed with the others */
} train_step_stats;

/* The schedule's regions (schedule.h). */
enum {
  TRAIN_REGION_EMBED = SCHED_REGION_EMBED,
  TRAIN_REGION_HEAD = SCHED_REGION_HEAD,
  TRAIN_REGION_SLOTS = SCHED_REGION_SLOTS
};

typedef struct {
  float *m, *v;         /* AdamW moments, laid out as ms_state.grads (NULL: params_only) */
  int64_t *t;           /* [n_regions] AdamW step count (bias correction) */
  unsigned char *on;    /* [n_regions] region trains this step */
  double *sq;           /* [n_regions] last sum of squared gradients */
  int n_regions;        /* TRAIN_REGION_SLOTS + n_grad_slots */
  int shares, rank;     /* each region's squares are summed share by share (dist_share over
                           shares: the ranks, 1 alone), so a rank holding one share (--zero 1)
                           and one holding all get the same norm; rank: this one's share */
  double *sq_parts;     /* [n_regions][shares] the shares' sums of squares */
  int64_t *shard_lo, *shard_n, *shard_at; /* --zero 1: per region, the elements this rank
                           updates, [lo, lo + n) of the gradient array, their moments at
                           m + at; NULL: every element, m and v laid out as the gradients */
  uint64_t moment_bytes; /* of m and of v each */
} train_optim;

typedef struct {
  train_config cfg;
  ir_model ir;
  ms_state state;
  data_file data;
  train_optim opt;
  lisa_schedule sched;     /* active set, slots, regions on, paths */
  double *weight_norms;    /* [n_layer] for sampling policies */
  double *grad_norms;      /* [n_layer] from each block's last active step */
  int64_t step;            /* next step to run */
  char load_note[512];     /* tensors in --weights the model ignored */
  char folder_weights[1024]; /* MODEL as a Hugging Face folder: its weights; else "" */
  uint64_t data_hash;      /* hash64 of the token ids, taken once (checkpoints record it) */
  uint64_t policy_hash;    /* hash64 of the Lua policy file, or 0 */
  struct cpu_profile *profile; /* trainer_profile; NULL: nothing timed */
  ps_host_arrays host_arrays; /* the state's and moments' arrays, for the host store */
  param_store store;       /* where parameters and moments are read and written */
  int32_t *world_ids, *world_targets; /* data parallel: every rank's rows of a micro-batch */
  float *gather;                      /* --zero 1: a region's weights, packed in gradient order */
} trainer;

/* A trainer, its weights loaded (or drawn); params_only: the weights are
 * only checked against the model (headers), and load once the device's
 * store is in (trainer_use_store, trainer_load_weights). The trainer must
 * not move after creation (its host store points into it). */
int trainer_create(trainer *t, const train_config *cfg, lt_error *err);
/* Parameters and moments are read and written through ps from now on (a
 * device's; copied). */
void trainer_use_store(trainer *t, const param_store *ps);
const param_store *trainer_store(const trainer *t);
/* The run's initial weights into the store: --weights, else the model
 * folder's, else (or for LoRA's adapters) drawn from the seed. */
int trainer_load_weights(trainer *t, lt_error *err);
void trainer_free(trainer *t);
int trainer_step(trainer *t, train_step_stats *st, lt_error *err);

/* lisa train --profile on the CPU: time every op of the steps that follow,
 * the gradient zeroing and AdamW (cpu_profile.h); the table of sums, or
 * NULL when not profiling. */
int trainer_profile(trainer *t, lt_error *err);
struct prof_table *trainer_profile_table(trainer *t);

/* The first part of a step, shared with the device trainer: a LISA switch
 * where a period begins (*switched), the step's first micro-batch in
 * state.ids and state.targets, and its learning rate. */
int trainer_begin_step(trainer *t, int *switched, float *lr, lt_error *err);
/* Micro-batch i (0 .. grad_accum - 1) of the current step into state.ids
 * and state.targets. */
int trainer_micro_batch(trainer *t, int i, lt_error *err);
int trainer_grad_accum(const trainer *t);
/* The step's loss is the mean over every counted target of its
 * micro-batches (transformers' labels -100 with num_items_in_batch): the
 * counted targets of the current step, and micro-batch i's share. */
int64_t trainer_step_counted(const trainer *t);
float train_loss_share(int64_t counted, int64_t step_counted);
/* The step begun is done (a device trainer enqueued it). */
void trainer_end_step(trainer *t);

/* What a device trainer follows, without reaching into the struct. */
const lisa_schedule *trainer_schedule(const trainer *t);
ms_state *trainer_state(trainer *t);
train_optim *trainer_optim(trainer *t);
const train_config *trainer_config(const trainer *t);
int64_t trainer_next_step(const trainer *t);

/* Puts back a saved LISA period (checkpoint resume): sched_restore, and
 * the regions that train. The moments in the slots are the caller's to load. */
int trainer_restore_period(trainer *t, const int *grad_slot, const int *active, int n_active,
                           int sampled, lt_error *err);

/* LoRA: folds each adapter pair into its base weight, W += (alpha / r) B A,
 * and zeroes B, so the model computes the same function with the adapters
 * now inert (then wt_save_base writes a plain base-model checkpoint). */
int trainer_merge_lora(trainer *t, lt_error *err);

/* Bytes of every buffer the run holds, by category, and their sum. */
typedef struct {
  uint64_t weights, grads, optimizer, activations, data;
} train_memory;
train_memory trainer_memory(const trainer *t);
uint64_t trainer_bytes(const trainer *t);

/* The paper's per-layer statistics: weight norms of the embedding [0], each
 * block [1 + l] and the head [n_layer + 1], and the gradient norms of the
 * parts that trained in the last step (NaN for the others). Reads every
 * parameter (through the store: a device's are downloaded a tensor at a
 * time): call every few steps, not every step. */
int trainer_norms(const trainer *t, double *weight, double *grad, lt_error *err);

/* Model FLOPs per token for MFU, llm.c's convention (as
 * scripts/peer-torch.py): 6 N + 6 L C T, N = every parameter once less an
 * untied input embedding, C = the attention's query width. The same for
 * every method (LISA's is "full fine-tuning work per second"). */
double trainer_flops_per_token(const trainer *t);

/* The step's building blocks, also used by the tests. */
int train_optim_init(train_optim *o, const ms_state *s, lt_error *err);
/* moments 0: only the per-region counts (a device trainer keeps m and v). */
int train_optim_init_moments(train_optim *o, const ms_state *s, int moments, lt_error *err);
void train_optim_free(train_optim *o);
/* --zero 1: moments for rank's shard of every region only (of ranks equal
 * shards, by element), replacing o's. */
int train_optim_shard(train_optim *o, const ms_state *s, int rank, int ranks, lt_error *err);
/* --zero 1: rank's share of every region (dist_share of its extent), the
 * one split the CPU's and a device's shards use: [lo[r], lo[r] + n[r]) of
 * the gradient layout, packed at at[r] (all three NULL: not written).
 * Returns the share's scalars (each of m and v). */
/* What a run's layout gives gradients and moments, as ms_create_trains
 * takes it: *out NULL (every param), or a malloc'd set: LoRA's adapters, or
 * LISA's params but those only a frozen embedding or head reads
 * (train_embed / train_head 0: ir_trained_by_sections). The trainer and lisa
 * plan both lay out by it. */
int train_trains_set(const ir_model *m, int method, int train_embed, int train_head,
                     unsigned char **out, lt_error *err);

int64_t train_shard_layout(const ms_state *s, int rank, int ranks, int64_t *lo, int64_t *n,
                           int64_t *at);
/* Optimizer region r's gradients: [*begin, *begin + *len) of the gradient
 * array (each region is contiguous there). */
void train_region_extent(const ms_state *s, int r, int64_t *begin, int64_t *len);
/* --zero 1: whole moments in the trainer's store, for a state to be saved
 * (gather: from every rank's shard, a collective) or loaded (zeros);
 * trainer_moments_shard keeps this rank's shard of them and lets them go.
 * A device's store does both itself (param_store.moments_whole). Without
 * --zero both do nothing. */
int trainer_moments_full(trainer *t, int gather, lt_error *err);
int trainer_moments_shard(trainer *t, lt_error *err);
float train_forward(ms_state *s);
/* Evaluation (lisa eval, --val-data): batches 0 .. batches - 1 of d's
 * sequential sweep into s's ids and targets, each batch's mean loss from
 * forward(ctx), weighted by its counted targets: *loss is the mean over
 * every counted target (NaN when none counts), *tokens their number. */
typedef int (*train_loss_fn)(void *ctx, float *loss, lt_error *err);
int train_sweep_loss(ms_state *s, const data_file *d, int64_t batches, train_loss_fn forward,
                     void *ctx, double *loss, int64_t *tokens, lt_error *err);
void train_zero_grads(ms_state *s);
/* paths: path_kind per instance; NULL = every instance ACTIVE. loss_scale
 * is the micro-batch's share of the step's loss (1 for one micro-batch):
 * each counted target's gradient is loss_scale / its counted targets. */
void train_backward(ms_state *s, const int *paths, float loss_scale);
/* Clips by the global norm of the regions that train and applies one AdamW
 * step to them; returns the pre-clip global gradient norm. */
double train_adamw(ms_state *s, const opt_config *c, float lr, train_optim *o);
/* train_adamw in two halves, for data parallel: the squares of the
 * gradients that train into o->sq_parts (under --zero 1 this rank's share
 * only, the others 0 until summed over the ranks), then the norm from
 * them and AdamW at the clip it decides. */
void train_grad_squares(const ms_state *s, train_optim *o);
double train_adamw_squared(ms_state *s, const opt_config *c, float lr, train_optim *o);
/* Norm sums share by share over ranks (and this rank's share), from now. */
int train_optim_shares(train_optim *o, int rank, int ranks, lt_error *err);

#endif
