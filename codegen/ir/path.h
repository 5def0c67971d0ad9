/* path.h: the three ways a section instance can run in a step (design
 * notes). One enum for the generator (a generated program per section and
 * path kind) and the trainers (which path each instance takes this step). */
#ifndef LT_PATH_H
#define LT_PATH_H

typedef enum path_kind {
  PATH_ACTIVE,  /* forward saving what backward needs; backward dX and dW */
  PATH_FROZEN,  /* backward dX only: param_grad ops are skipped */
  PATH_FORWARD, /* no backward: no gradient has to reach or pass this block */
  PATH_NKINDS
} path_kind;

#endif
