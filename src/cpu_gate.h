/* cpu_gate.h — the CPU twin of backend_ops.mul_sigmoid (gated attention output, docs/qwen35.md). */
#ifndef REASON_CPU_GATE_H
#define REASON_CPU_GATE_H

#include "backend.h"

RS_INTERNAL void cpu_mul_sigmoid(backend *be, float *x, const float *gate, int64_t n);

#endif
