/* cpu_moe.h — the CPU twins of backend_ops.moe_route and backend_ops.moe (mixture of experts). */
#ifndef REASON_CPU_MOE_H
#define REASON_CPU_MOE_H

#include "backend.h"

RS_INTERNAL void cpu_moe_route(backend *be, const float *logits, const float *shared,
                               int32_t n_tok, int32_t n_expert, int32_t n_used, int32_t norm,
                               int32_t *ids, float *weights);
RS_INTERNAL void cpu_moe(backend *be, const moe_params *p, const float *x, const int32_t *ids,
                         const float *weights, float *out, int32_t n_tok, void *work);

#endif
