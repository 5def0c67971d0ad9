/* memory_kinds.h: the precisions a run trains in and the categories its
 * memory is counted in, shared by the device arena (dev_train) and the
 * memory plan (report/plan.h) that reports it. */
#ifndef LT_MEMORY_KINDS_H
#define LT_MEMORY_KINDS_H

enum plan_precision { PLAN_FP32, PLAN_BF16_MIXED, PLAN_BF16_TRUE };

enum plan_category {
  PLAN_WEIGHTS, PLAN_MASTER_WEIGHTS, PLAN_GRADS, PLAN_OPTIMIZER, PLAN_ACTIVATIONS,
  PLAN_WORKSPACE, PLAN_NCATEGORIES
};

#endif
