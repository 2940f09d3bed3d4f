/* cpu_deltanet.h — the CPU Gated DeltaNet op (backend_ops.deltanet; contract in backend.h, math
 * in docs/qwen35.md and at the top of cpu_deltanet.c). */
#ifndef REASON_CPU_DELTANET_H
#define REASON_CPU_DELTANET_H

#include "backend.h"

struct cpu_backend;

RS_INTERNAL void cpu_deltanet(backend *be, const deltanet_params *p, const float *qkv,
                              const float *z, const float *b, const float *a, float *const *conv,
                              float *const *ssm, float *y, int32_t n_tok);
/* Releases the op's scratch (cpu_backend.dn_*), grown by cpu_deltanet on first use. */
RS_INTERNAL void cpu_deltanet_free(struct cpu_backend *cb);

#endif
