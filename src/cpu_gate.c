/* cpu_gate.c — x *= sigmoid(gate), element-wise (backend_ops.mul_sigmoid). */
#include "cpu_gate.h"

#include <math.h>

void cpu_mul_sigmoid(backend *be, float *x, const float *gate, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) x[i] *= 1.0f / (1.0f + expf(-gate[i]));
}
