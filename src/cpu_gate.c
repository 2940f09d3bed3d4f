/* cpu_gate.c — x *= sigmoid(gate) (backend_ops.mul_sigmoid), y = gelu(gate) * up (geglu). */
#include "cpu_gate.h"

#include <math.h>

void cpu_mul_sigmoid(backend *be, float *x, const float *gate, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) x[i] *= 1.0f / (1.0f + expf(-gate[i]));
}

void cpu_geglu(backend *be, const float *gate, const float *up, float *y, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) y[i] = gelu_tanh(gate[i]) * up[i];
}
