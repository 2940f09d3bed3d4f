// dequant.cuh — the weight-type decoders shared by the GEMV (matmul.cu), the tensor-core GEMM
// (matmul_gemm.cu) and the embedding lookup (embed.cu). GGML block layouts, dequantized to f32 in
// the CPU twin's order of operations (tensor_types.c), so the two agree to the last bit.
#ifndef REASON_DEQUANT_CUH
#define REASON_DEQUANT_CUH

#include "common.cuh"

namespace {

// Each weight type: UNIT elements per lane step, unit(row, u, w) dequantizes unit u of a row
// into w[0..UNIT), get(row, j) one element (tails of unaligned rows), and QUANT (no tail:
// cols is always a multiple of the block).
struct wt_f32 {
    static constexpr int UNIT = 4, BLOCK = 1;
    static constexpr bool QUANT = false;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        float4 v = ld_f4((const float *)row + 4 * u);
        w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
    }
    __device__ static float get(const uint8_t *row, int64_t j) { return ((const float *)row)[j]; }
};

struct wt_f16 {
    static constexpr int UNIT = 8, BLOCK = 1;
    static constexpr bool QUANT = false;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        uint4 v = ld_u4(row + 16 * u);
        float2 a = f16x2_to_f32(v.x), b = f16x2_to_f32(v.y), c = f16x2_to_f32(v.z),
               d = f16x2_to_f32(v.w);
        w[0] = a.x, w[1] = a.y, w[2] = b.x, w[3] = b.y, w[4] = c.x, w[5] = c.y, w[6] = d.x,
        w[7] = d.y;
    }
    __device__ static float get(const uint8_t *row, int64_t j) {
        return f16_to_f32(((const uint16_t *)row)[j]);
    }
};

struct wt_bf16 {
    static constexpr int UNIT = 8, BLOCK = 1;
    static constexpr bool QUANT = false;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        uint4 v = ld_u4(row + 16 * u);
        float2 a = bf16x2_to_f32(v.x), b = bf16x2_to_f32(v.y), c = bf16x2_to_f32(v.z),
               d = bf16x2_to_f32(v.w);
        w[0] = a.x, w[1] = a.y, w[2] = b.x, w[3] = b.y, w[4] = c.x, w[5] = c.y, w[6] = d.x,
        w[7] = d.y;
    }
    __device__ static float get(const uint8_t *row, int64_t j) {
        return bf16_to_f32(((const uint16_t *)row)[j]);
    }
};

struct wt_q8_0 {
    static constexpr int UNIT = 32, BLOCK = 32;
    static constexpr bool QUANT = true;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        const uint16_t *b = (const uint16_t *)(row + 34 * u);
        const float d = f16_to_f32(__ldg(b));
#pragma unroll
        for (int k = 0; k < 16; k++) {
            const uint16_t q = __ldg(b + 1 + k);
            w[2 * k] = d * (float)(int8_t)(q & 0xff);
            w[2 * k + 1] = d * (float)(int8_t)(q >> 8);
        }
    }
    __device__ static float get(const uint8_t *row, int64_t j) {
        const uint8_t *b = row + 34 * (j / 32);
        return f16_to_f32(*(const uint16_t *)b) * (float)(int8_t)b[2 + j % 32];
    }
};

// Q4_0 and Q4_1 share the nibble order: byte k holds element k (low) and k + 16 (high).
template <bool MIN> struct wt_q4 {
    static constexpr int UNIT = 32, BLOCK = 32;
    static constexpr bool QUANT = true;
    static constexpr int BYTES = MIN ? 20 : 18;
    // Q4_1: d*q + m; Q4_0: d*(q - 8), in the CPU twin's order of operations.
    __device__ static float val(float d, float m, int q) {
        return MIN ? d * (float)q + m : d * (float)(q - 8);
    }
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        const uint16_t *b = (const uint16_t *)(row + BYTES * u);
        const float d = f16_to_f32(__ldg(b));
        const float m = MIN ? f16_to_f32(__ldg(b + 1)) : 0.0f;
        const uint16_t *qs = b + (MIN ? 2 : 1);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const uint16_t q = __ldg(qs + k);
            w[2 * k] = val(d, m, q & 0xf);
            w[2 * k + 16] = val(d, m, (q >> 4) & 0xf);
            w[2 * k + 1] = val(d, m, (q >> 8) & 0xf);
            w[2 * k + 17] = val(d, m, q >> 12);
        }
    }
    __device__ static float get(const uint8_t *row, int64_t j) {
        const uint8_t *b = row + BYTES * (j / 32);
        const float d = f16_to_f32(*(const uint16_t *)b);
        const float m = MIN ? f16_to_f32(*(const uint16_t *)(b + 2)) : 0.0f;
        const int k = (int)(j % 32);
        const uint8_t q = b[(MIN ? 4 : 2) + (k & 15)];
        return val(d, m, k < 16 ? q & 0xf : q >> 4);
    }
};

// K-quants: a lane unit is one 32-element sub-block of a 256-element super-block, so the row
// loop and the registers are the same as for the 32-element formats.
// Q4_K (144 B / 256): f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) pairs, qs[128]; sub-block
// j uses byte qs[32(j/2) + l], low nibble for even j, high for odd; y = (d*sc)*q - dmin*mn.
struct wt_q4_K {
    static constexpr int UNIT = 32, BLOCK = 256;
    static constexpr bool QUANT = true;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        const uint8_t *b = row + 144 * (u >> 3);
        const int j = (int)(u & 7);
        const float d = f16_to_f32(__ldg((const uint16_t *)b));
        const float dmin = f16_to_f32(__ldg((const uint16_t *)b + 1));
        const uint8_t *s = b + 4;
        int sc, mn;
        if (j < 4) {
            sc = __ldg(s + j) & 63;
            mn = __ldg(s + j + 4) & 63;
        } else {
            sc = (__ldg(s + j + 4) & 0xf) | (__ldg(s + j - 4) >> 6) << 4;
            mn = (__ldg(s + j + 4) >> 4) | (__ldg(s + j) >> 6) << 4;
        }
        const float ds = d * (float)sc, dm = dmin * (float)mn;
        const uint16_t *qs = (const uint16_t *)(b + 16 + 32 * (j >> 1));
        const int shift = (j & 1) * 4;
#pragma unroll
        for (int k = 0; k < 16; k++) {
            const uint16_t q = __ldg(qs + k);
            w[2 * k] = ds * (float)((q >> shift) & 0xf) - dm;
            w[2 * k + 1] = ds * (float)((q >> (8 + shift)) & 0xf) - dm;
        }
    }
    __device__ static float get(const uint8_t *, int64_t) { return 0.0f; } // no tail (QUANT)
};

// Q6_K (210 B / 256): ql[128], qh[64], int8 scales[16], f16 d. Sub-block j: half h = j/4,
// group g = j%4; element l takes nibble (g < 2 ? low : high) of ql[64h + 32(g&1) + l] and bits
// 2g..2g+1 of qh[32h + l]; y = (d*sc[8h + 2g + l/16]) * (q - 32).
struct wt_q6_K {
    static constexpr int UNIT = 32, BLOCK = 256;
    static constexpr bool QUANT = true;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        const uint8_t *b = row + 210 * (u >> 3);
        const int j = (int)(u & 7), h = j >> 2, g = j & 3;
        const float d = f16_to_f32(__ldg((const uint16_t *)(b + 208)));
        const int8_t *sc = (const int8_t *)(b + 192) + 8 * h + 2 * g;
        const float d0 = d * (float)__ldg(sc), d1 = d * (float)__ldg(sc + 1);
        const uint16_t *ql = (const uint16_t *)(b + 64 * h + 32 * (g & 1));
        const uint16_t *qh = (const uint16_t *)(b + 128 + 32 * h);
        const int lshift = g < 2 ? 0 : 4, hshift = 2 * g;
#pragma unroll
        for (int k = 0; k < 16; k++) {
            const uint16_t lo = __ldg(ql + k), hi = __ldg(qh + k);
            const int q0 = (((lo >> lshift) & 0xf) | ((hi >> hshift) & 3) << 4) - 32;
            const int q1 = (((lo >> (8 + lshift)) & 0xf) | ((hi >> (8 + hshift)) & 3) << 4) - 32;
            const float dd = k < 8 ? d0 : d1;
            w[2 * k] = dd * (float)q0;
            w[2 * k + 1] = dd * (float)q1;
        }
    }
    __device__ static float get(const uint8_t *, int64_t) { return 0.0f; } // no tail (QUANT)
};

} // namespace

#endif
