/* memory_kinds.h: the precisions a run trains in and the categories its
 * memory is counted in, shared by the device arena (dev_train) and the
 * memory plan (report/memory_plan.h) that reports it. */
#ifndef LT_MEMORY_KINDS_H
#define LT_MEMORY_KINDS_H

enum precision { PRECISION_FP32, PRECISION_BF16_MIXED, PRECISION_BF16_TRUE };

enum memory_category {
  MEMORY_WEIGHTS, MEMORY_MASTER_WEIGHTS, MEMORY_GRADS, MEMORY_OPTIMIZER, MEMORY_ACTIVATIONS,
  MEMORY_WORKSPACE, MEMORY_NCATEGORIES
};

#endif
