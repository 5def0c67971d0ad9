/* lisa_sampler.h: which middle blocks train in each LISA period.
 *
 * Steps are cut into periods of K (--interval) steps; the active set is
 * drawn at each period's first step (step % K == 0) and holds until the
 * next. Modes:
 *   uniform    exactly gamma distinct blocks, uniformly without replacement
 *              (as LMFlow's reference trainer does);
 *   bernoulli  each block independently with probability gamma / n_layers
 *              (the paper's formula: the set may be empty or exceed gamma);
 *   lua        a Lua 5.4 file defining sample_layers(ctx), see below.
 *
 * The draw for a period is a pure function of (seed, the period's first
 * step): its random numbers come from rng_seed_stream(seed,
 * LISA_SAMPLER_STREAM, first step). A resumed run therefore re-draws the
 * same set without replaying earlier periods (uniform and bernoulli need no
 * saved state; a Lua policy that reads the norms also needs the same norms).
 *
 * Lua policies. sample_layers(ctx) gets a fresh table:
 *   ctx.step        the period's first step
 *   ctx.n_layers    N_L;  ctx.gamma, ctx.interval: the settings
 *   ctx.random()    uniform float in [0, 1) from the period's stream
 *   ctx.randint(n)  integer in [0, n) from the same stream (rng_below)
 *   ctx.weight_norms, ctx.grad_norms   arrays 1..N_L (block i at [i+1]);
 *                   nil when the caller passed no such statistics. A block
 *                   never trained has grad norm 0.
 * It returns a sequence of distinct 0-based block indices (at most N_L;
 * order does not matter). The file runs in lua_sandbox.h's sandbox (text
 * only, no file access, memory, instruction and pattern budgets), and
 * math.random raises an error pointing to ctx.random (it is not seeded by
 * the run's seed). The file is read once, at create; each period's draw
 * runs it in a fresh Lua state, so nothing (a global, an upvalue) survives
 * from one draw to the next: a draw is a function of its ctx, and a resumed
 * run draws what a straight one did. State a policy needs must come from
 * ctx (the norms are saved with the run's state). */
#ifndef LT_LISA_SAMPLER_H
#define LT_LISA_SAMPLER_H

#include <stdint.h>

#include "err.h"

/* The rng stream tag of layer sampling (others must not use it). */
#define LISA_SAMPLER_STREAM 0x4c4953415f534d50ULL /* "LISA_SMP" */

enum lisa_sample_mode { LISA_SAMPLE_UNIFORM, LISA_SAMPLE_BERNOULLI, LISA_SAMPLE_LUA };

typedef struct {
  int mode;             /* enum lisa_sample_mode */
  int n_layers;         /* N_L >= 1 */
  int gamma;            /* in [0, N_L] */
  int64_t interval;     /* K >= 1 */
  uint64_t seed;
  const char *lua_path; /* the policy file; used only in LISA_SAMPLE_LUA */
} lisa_sampler_config;

/* Per-block statistics for Lua policies; either array may be NULL. */
typedef struct {
  const double *weight_norms; /* [n_layers] */
  const double *grad_norms;   /* [n_layers] */
} lisa_layer_stats;

typedef struct lisa_sampler lisa_sampler;

/* "uniform", "bernoulli" or "lua" -> the mode; -1 for anything else. */
int lisa_sample_mode_from_name(const char *name);

/* Checks the settings, and in lua mode loads and runs the policy file and
 * checks it defines sample_layers. */
int lisa_sampler_create(lisa_sampler **out, const lisa_sampler_config *cfg,
                        lt_error *err);
void lisa_sampler_free(lisa_sampler *s);

/* Whether a new set is drawn at this step (step % K == 0). */
int lisa_sampler_is_boundary(const lisa_sampler *s, int64_t step);

/* Fills active[0..*n_active) (capacity n_layers, ascending) with the set of
 * the period containing step (>= 0). The set is drawn when the period differs
 * from the previous call's and reused otherwise, so a Lua policy runs once
 * per period and sees the stats of that call. stats may be NULL. Allocates
 * nothing, apart from what the Lua interpreter allocates for ctx. */
int lisa_sampler_sample(lisa_sampler *s, int64_t step,
                        const lisa_layer_stats *stats, int *active,
                        int *n_active, lt_error *err);

#endif
