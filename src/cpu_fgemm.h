/* cpu_fgemm.h — f32 matrix products for batches of tokens with our own AVX-512 kernel
 * (cpu_fgemm.c): the exact-precision prompt path. */
#ifndef REASON_CPU_FGEMM_H
#define REASON_CPU_FGEMM_H

#include "backend_cpu.h"

/* y (n_tok, w rows) = x (n_tok, w cols) · wᵀ, f32; false (y untouched) when the CPU lacks
 * AVX-512, the type is unsupported or scratch cannot be had (then use another path). */
RS_INTERNAL bool cpu_fgemm(cpu_backend *cb, const rs_tensor *w, const float *x, float *y,
                           int32_t n_tok);
RS_INTERNAL void cpu_fgemm_free(cpu_backend *cb);

#endif
