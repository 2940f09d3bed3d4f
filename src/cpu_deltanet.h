/* cpu_deltanet.h — the CPU Gated DeltaNet op (backend_ops.deltanet; contract in backend.h, math
 * in docs/qwen35.md). */
#ifndef REASON_CPU_DELTANET_H
#define REASON_CPU_DELTANET_H

#include "backend.h"

RS_INTERNAL void cpu_deltanet(backend *be, const deltanet_params *p, const float *qkv,
                              const float *z, const float *b, const float *a, float *const *conv,
                              float *const *ssm, float *y, int32_t n_tok);

#endif
