/* model_state.h: every buffer a CPU training run needs, sized and allocated
 * once before step 0 (nothing is allocated inside the training loop).
 *
 * Gradients exist only for what trains: the embed and head parameters that
 * train and n_grad_slots slots, each holding the training params of one
 * block and bound to at most one block (full fine-tuning binds block l to
 * slot l; LISA rebinds at each switch). Which params train is a per-param
 * mask (LoRA: only the adapters); a frozen param has no gradient storage.
 *
 * A run has n_layer + 2 section instances: 0 = embed, 1..n_layer = the
 * blocks, n_layer + 1 = head. bufs[inst][value] points at the memory of each
 * IR value of that instance's graph:
 *  - parameters and their gradients point into two flat arenas (same layout);
 *  - activations a FROZEN block's backward reads (the dX ops) and section
 *    outputs get memory per instance; activations only the dW ops of
 *    training params read live in activation slots, one per gradient slot
 *    and bound with it (a frozen block keeps only what dX needs); other
 *    activations share one scratch per section;
 *  - activation gradients are shared by all instances of a section, in two
 *    sets alternating by layer so a block never overwrites the gradient its
 *    successor handed it;
 *  - inputs are wired to the previous instance's output, and each section's
 *    gradient seed to the next instance's input gradient. */
#ifndef LT_MODEL_STATE_H
#define LT_MODEL_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"

typedef struct {
  const ir_model *ir;
  int B, T, N;             /* N = B*T rows in every activation */
  int elem_bytes;          /* bytes per activation element (4: fp32) */
  int n_inst;              /* n_layer + 2 */
  int64_t n_param_scalars; /* total scalars in params */
  int64_t *param_off;      /* [n_params * n_layer_slots]: offset of (p, layer) */
  int n_layer_slots;       /* max(1, n_layer) */
  int64_t n_grad_scalars;  /* total scalars in grads */
  int64_t *grad_off;       /* [n_params]: embed/head: offset in grads;
                              block params: offset within a block slot;
                              -1: the param does not train */
  int64_t block_stride;    /* scalars of one block's params */
  int64_t slot_stride;     /* scalars of one gradient slot (what trains) */
  int64_t param_head_base; /* offset of the head's params in params */
  int64_t grad_head_base;  /* offset of the head's gradients in grads */
  int64_t grad_slot_base;  /* offset of slot 0 in grads */
  int n_grad_slots;
  int slotless;            /* a block may hold no slot (LISA): slot values have scratch */
  int *grad_slot;          /* [n_layer]: the block's gradient slot, or -1 */
  size_t act_slot_base;    /* offset of activation slot 0 in act_arena */
  size_t act_slot_bytes;   /* bytes of one activation slot */
  size_t *act_slot_off;    /* [block n_values]: offset in a slot; SIZE_MAX: none */
  size_t *slot_scratch_off;/* [block n_values]: where a block with no slot puts it */
  float *params, *grads;
  int32_t *ids, *targets;  /* [N] each: this step's batch */
  void ***bufs;            /* bufs[inst][value] */
  void *act_arena;         /* backing store of every activation buffer */
  size_t bytes_params, bytes_grads, bytes_acts;
  const struct exec_profile *profile; /* NULL: the executor times nothing (executor.h) */
} ms_state;

/* n_grad_slots: how many blocks can hold gradients at once (0..n_layer).
 * Every param trains; every block holds a slot unless there are fewer slots
 * than blocks. */
int ms_create(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots,
              lt_error *err);
/* The same with trains[p] (n_params flags) saying which params train
 * (NULL = all), and `slotless`: a block may be bound to no slot even when
 * there are as many slots as blocks (LISA's bernoulli draws and Lua
 * policies), so what such a block's forward writes for dW gets scratch of
 * its own (implied when n_grad_slots < n_layer). */
int ms_create_trains(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots,
                     int slotless, const unsigned char *trains, lt_error *err);

/* The layout and the batch alone: no parameters, gradients or activations
 * here (params and grads NULL): the host side of a device trainer, whose
 * store holds them (param_store.h). */
int ms_create_layout(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots,
                     int slotless, const unsigned char *trains, lt_error *err);

/* The same layout without the big arenas: fills every offset and bytes_*
 * field (activations at elem_bytes per element) for `lisa plan`. Release
 * with ms_free. */
int ms_layout(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots, int slotless,
              const unsigned char *trains, int elem_bytes, lt_error *err);
void ms_free(ms_state *s);

int ms_inst_section(const ms_state *s, int inst); /* enum ir_section */
int ms_inst_layer(const ms_state *s, int inst);   /* block index, or 0 */
int ms_head_inst(const ms_state *s);

/* Parameter values / gradients of param p at a layer (0 for embed, head).
 * ms_grad is NULL for a param that does not train and for a block bound to
 * no gradient slot. */
float *ms_param(const ms_state *s, int p, int layer);
/* Where they are in the layout: indices into params and grads (the grads
 * index -1 where ms_grad is NULL); valid without the arrays. */
int64_t ms_param_index(const ms_state *s, int p, int layer);
int64_t ms_grad_index(const ms_state *s, int p, int layer);
float *ms_grad(const ms_state *s, int p, int layer);
/* First scalar of block `layer`'s parameters (block_stride of them). */
float *ms_block_params(const ms_state *s, int layer);

/* Binds a block to a gradient slot and its activation slot (-1: none) and
 * rewires its graph. */
void ms_bind_grad_slot(ms_state *s, int layer, int slot);

/* The scalar loss the head's last forward computed. */
float ms_loss(const ms_state *s);

#endif
