/* autodiff.h: reverse-mode differentiation of each section's op graph.
 *
 * For every section it appends the backward ops to graph.bwd in execution
 * order, creates gradient values (IR_V_GRAD for activations, one
 * IR_V_PARAM_GRAD per parameter used), sets value.grad, and marks
 * value.saved / value.saved_dx for the forward values backward reads.
 * Seeds: the head's loss has gradient 1 (cross_entropy_bwd uses it
 * implicitly); embed and block take the gradient of their output stream as
 * an IR_V_INPUT value named "d_<output>" (graph.values[output].grad points to
 * it). The embed section's input (token ids)
 * gets no gradient. */
#ifndef LT_AUTODIFF_H
#define LT_AUTODIFF_H

#include "ir.h"

int ad_build_backward(ir_model *m, lt_error *err);

#endif
