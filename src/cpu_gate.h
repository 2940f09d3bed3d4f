/* cpu_gate.h — the CPU twins of the gating ops: mul_sigmoid (gated attention output,
 * docs/qwen35.md) and geglu (gemma). */
#ifndef REASON_CPU_GATE_H
#define REASON_CPU_GATE_H

#include "backend.h"

#include <math.h>

RS_INTERNAL void cpu_mul_sigmoid(backend *be, float *x, const float *gate, int64_t n);
RS_INTERNAL void cpu_geglu(backend *be, const float *gate, const float *up, float *y, int64_t n);

/* GELU, tanh approximation (gelu_pytorch_tanh). */
static inline float gelu_tanh(float x) {
    const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

#endif
