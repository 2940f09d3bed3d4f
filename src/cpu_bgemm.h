/* cpu_bgemm.h — matrix products with BF16 weights in fast precision (AVX512-BF16, cpu_bgemm.c). */
#ifndef REASON_CPU_BGEMM_H
#define REASON_CPU_BGEMM_H

#include "backend_cpu.h"

/* y (n_tok, w rows) = x · wᵀ with x rounded to bf16; false (y untouched) when w is not BF16, the
 * CPU lacks AVX512-BF16 or scratch cannot be had (then use another path). */
RS_INTERNAL bool cpu_bgemm(cpu_backend *cb, const rs_tensor *w, const float *x, float *y,
                           int32_t n_tok);
RS_INTERNAL void cpu_bgemm_free(cpu_backend *cb);

#endif
