/* random_weights.h — random blocks of every weight type with finite, moderate scales (the f16
 * fields), for kernel tests: a deterministic xorshift generator shared by the suites. */
#ifndef REASON_RANDOM_WEIGHTS_H
#define REASON_RANDOM_WEIGHTS_H

#include "tensor_types.h"

#include <stdint.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static inline float rndf(void) { return (float)rnd() / 4294967296.0f * 2.0f - 1.0f; } /* [-1, 1) */

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = rs_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Random blocks of a type with finite, moderate scales (the f16 fields), as in the fixtures. */
static inline void random_row(uint32_t type, uint8_t *row, int64_t n) {
    const tensor_type_info *t = tensor_type_get(type);
    size_t rb = tensor_row_bytes(type, n);
    for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)rnd();
    int64_t nb = n / t->block_size;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *p = row + (size_t)b * (size_t)t->block_bytes;
        switch (type) {
        case TENSOR_F32: {
            float v = rndf();
            memcpy(p, &v, 4);
            break;
        }
        case TENSOR_F16: put_f16(p, rndf()); break;
        case TENSOR_BF16: {
            uint16_t h = rs_f32_to_bf16(rndf());
            memcpy(p, &h, 2);
            break;
        }
        case TENSOR_Q6_K: put_f16(p + 208, 0.05f * rndf()); break;
        case TENSOR_MXFP4: p[0] = (uint8_t)(118 + rnd() % 19); break; /* scales 2^-10..2^8 */
        case TENSOR_Q4_1:
        case TENSOR_Q5_1:
        case TENSOR_Q4_K:
        case TENSOR_Q5_K:
            put_f16(p, 0.05f * rndf());
            put_f16(p + 2, 0.05f * rndf());
            break;
        default: put_f16(p, 0.05f * rndf()); break;
        }
    }
}

#endif
