/* rng.h: the one random generator (xoshiro256**, seeded by splitmix64).
 * Explicit state, no globals, so init, data order and layer sampling each
 * own a stream derived from the run's seed, and the state can be saved. */
#ifndef LT_RNG_H
#define LT_RNG_H

#include <stdint.h>

typedef struct {
  uint64_t s[4];
} rng_state;

void rng_seed(rng_state *r, uint64_t seed);
/* A stream for (seed, a, b): independent of how many numbers others drew. */
void rng_seed_stream(rng_state *r, uint64_t seed, uint64_t a, uint64_t b);
uint64_t rng_next(rng_state *r);
uint64_t rng_below(rng_state *r, uint64_t n);  /* uniform in [0, n), unbiased */
double rng_uniform(rng_state *r);               /* [0, 1) with 53 bits */
double rng_normal(rng_state *r);                /* standard normal */

#endif
