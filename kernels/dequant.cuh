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
// For the GEMV, slice(row, s, q, sc) decodes the s-th run of 8 weights in storage order, adjacent
// lanes reading adjacent bytes (coalesced), and returns the column of q[0..4); q[4..8) start at
// that column + HI. Quantized types give the codes q as exact small integers in f32 and the
// slice's scales apart (SCALE says which: weight = d0*q (+ m0) for the first four, d1/m1 for the
// last four where they differ), so that the GEMV applies a scale once per 4 or 8 products and
// never converts an integer with I2F (quarter rate on sm_90): code_as_float places a byte in
// the mantissa of 2^23 instead. Not bit-identical to the CPU twin's dequantize-then-multiply
// (products are rounded in a different order); equal within f32 rounding.
enum { SCALE_NONE, SCALE_ONE, SCALE_ONE_MIN, SCALE_TWO, SCALE_TWO_MIN };
struct slice_scale {
    float d0, d1, m0, m1;
};
// byte k of v (0..255) minus off, as f32, exactly: 2^23 + byte read as a float, less 2^23 + off
__device__ __forceinline__ float code_as_float(uint32_t v, int k, float off) {
    return __int_as_float(__byte_perm(v, 0x4B000000u, 0x7440u | (unsigned)k)) - (8388608.0f + off);
}
// four code bytes from two 2-byte-aligned 16-bit words
__device__ __forceinline__ uint32_t ld_codes4(const uint16_t *p) {
    return (uint32_t)__ldg(p) | (uint32_t)__ldg(p + 1) << 16;
}
struct wt_f32 {
    static constexpr int UNIT = 4, BLOCK = 1;
    static constexpr bool QUANT = false;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        float4 v = ld_f4((const float *)row + 4 * u);
        w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
    }
    __device__ static float get(const uint8_t *row, int64_t j) { return ((const float *)row)[j]; }
    static constexpr int HI = 4, SCALE = SCALE_NONE;
    __device__ static int64_t slice(const uint8_t *row, int64_t s, float *w, slice_scale &) {
        unit(row, 2 * s, w);
        unit(row, 2 * s + 1, w + 4);
        return 8 * s;
    }
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
    static constexpr int HI = 4, SCALE = SCALE_NONE;
    __device__ static int64_t slice(const uint8_t *row, int64_t s, float *w, slice_scale &) {
        unit(row, s, w);
        return 8 * s;
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
    static constexpr int HI = 4, SCALE = SCALE_NONE;
    __device__ static int64_t slice(const uint8_t *row, int64_t s, float *w, slice_scale &) {
        unit(row, s, w);
        return 8 * s;
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
    // slice: a quarter block, 8 consecutive codes (blocks are only 2-byte aligned)
    static constexpr int HI = 4, SCALE = SCALE_ONE;
    __device__ static int64_t slice(const uint8_t *row, int64_t s, float *w, slice_scale &sc) {
        const uint16_t *b = (const uint16_t *)(row + 34 * (s >> 2));
        const int q = (int)(s & 3);
        sc.d0 = f16_to_f32(__ldg(b));
        // int8 codes + 128 as unsigned bytes, then 128 subtracted
        const uint32_t v0 = ld_codes4(b + 1 + 4 * q) ^ 0x80808080u;
        const uint32_t v1 = ld_codes4(b + 3 + 4 * q) ^ 0x80808080u;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            w[k] = code_as_float(v0, k, 128.0f);
            w[4 + k] = code_as_float(v1, k, 128.0f);
        }
        return 32 * (s >> 2) + 8 * q;
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
    // slice: code bytes 4q..4q+3 of a block: elements 4q.. (low nibbles) and 16 + 4q.. (high);
    // Q4_0's codes minus 8, Q4_1's d*q + m as d0 * q + m0
    static constexpr int HI = 16, SCALE = MIN ? SCALE_ONE_MIN : SCALE_ONE;
    __device__ static int64_t slice(const uint8_t *row, int64_t s, float *w, slice_scale &sc) {
        const uint16_t *b = (const uint16_t *)(row + BYTES * (s >> 2));
        const int q = (int)(s & 3);
        sc.d0 = f16_to_f32(__ldg(b));
        sc.m0 = MIN ? f16_to_f32(__ldg(b + 1)) : 0.0f;
        const uint32_t v = ld_codes4(b + (MIN ? 2 : 1) + 2 * q);
        const uint32_t lo = v & 0x0f0f0f0fu, hi = (v >> 4) & 0x0f0f0f0fu;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            w[k] = code_as_float(lo, k, MIN ? 0.0f : 8.0f);
            w[4 + k] = code_as_float(hi, k, MIN ? 0.0f : 8.0f);
        }
        return 32 * (s >> 2) + 4 * q;
    }
};

// K-quants: a lane unit is one 32-element sub-block of a 256-element super-block, so the row
// loop and the registers are the same as for the 32-element formats.
// Q4_K (144 B / 256): f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) pairs, qs[128]; sub-block
// j uses byte qs[32(j/2) + l], low nibble for even j, high for odd; y = (d*sc)*q - dmin*mn.
struct wt_q4_K {
    static constexpr int UNIT = 32, BLOCK = 256;
    static constexpr bool QUANT = true;
    // sub-block j's d*scale and dmin*min (6-bit pairs packed in 12 bytes)
    __device__ static void scale_min(const uint8_t *b, int j, float &ds, float &dm) {
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
        ds = d * (float)sc, dm = dmin * (float)mn;
    }
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        const uint8_t *b = row + 144 * (u >> 3);
        const int j = (int)(u & 7);
        float ds, dm;
        scale_min(b, j, ds, dm);
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
    // slice t of a super-block: code bytes qs[4t..4t+3] = 32-byte chunk p, offset o: elements
    // 64p + o.. (low nibbles, sub-block 2p) and 64p + 32 + o.. (high, sub-block 2p + 1). The two
    // sub-blocks' 6-bit scales and mins sit in byte pairs at even offsets of the 12 scale
    // bytes: pairs k = p & 1 of bytes 0-3 (A), 4-7 (B), 8-11 (C); sub-blocks 0-3 take A and B's
    // low 6 bits, 4-7 C's nibbles with A's / B's top 2 bits above them.
    static constexpr int HI = 32, SCALE = SCALE_TWO_MIN;
    __device__ static int64_t slice(const uint8_t *row, int64_t s, float *w, slice_scale &sc) {
        const uint8_t *b = row + 144 * (s >> 5);
        const int t = (int)(s & 31), p = t >> 3, o = 4 * (t & 7);
        const uint16_t *h = (const uint16_t *)b;
        const float d = f16_to_f32(__ldg(h)), dmin = f16_to_f32(__ldg(h + 1));
        const uint32_t A = __ldg(h + 2 + (p & 1)), B = __ldg(h + 4 + (p & 1)),
                       C = __ldg(h + 6 + (p & 1));
        const uint32_t scw = p < 2 ? A & 0x3f3fu : (C & 0x0f0fu) | ((A >> 2) & 0x3030u);
        const uint32_t mnw = p < 2 ? B & 0x3f3fu : ((C >> 4) & 0x0f0fu) | ((B >> 2) & 0x3030u);
        sc.d0 = d * code_as_float(scw, 0, 0.0f), sc.d1 = d * code_as_float(scw, 1, 0.0f);
        sc.m0 = -(dmin * code_as_float(mnw, 0, 0.0f));
        sc.m1 = -(dmin * code_as_float(mnw, 1, 0.0f));
        const uint32_t v = ld_codes4((const uint16_t *)(b + 16 + 32 * p + o));
        const uint32_t lo = v & 0x0f0f0f0fu, hi = (v >> 4) & 0x0f0f0f0fu;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            w[k] = code_as_float(lo, k, 0.0f);
            w[4 + k] = code_as_float(hi, k, 0.0f);
        }
        return 256 * (s >> 5) + 64 * p + o;
    }
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
    // slice t of a super-block: half h = t/16, ql bytes 64h + c.. (c = 4(t%16)): low nibbles
    // are group g = c/32 (elements 128h + c..), high nibbles group g + 2 (64 further on); the
    // 2-bit highs in qh[32h + c%32 ..] at bits 2g and 2g + 4; codes minus 32
    static constexpr int HI = 64, SCALE = SCALE_TWO;
    __device__ static int64_t slice(const uint8_t *row, int64_t s, float *w, slice_scale &sc) {
        const uint8_t *b = row + 210 * (s >> 5);
        const int t = (int)(s & 31), h = t >> 4, c = 4 * (t & 15), g = c >> 5, l = c & 31;
        const float d = f16_to_f32(__ldg((const uint16_t *)(b + 208)));
        const int8_t *scales = (const int8_t *)(b + 192) + 8 * h + 2 * g + (l >> 4);
        sc.d0 = d * (float)__ldg(scales), sc.d1 = d * (float)__ldg(scales + 4);
        const uint32_t ql = ld_codes4((const uint16_t *)(b + 64 * h + c));
        const uint32_t qh = ld_codes4((const uint16_t *)(b + 128 + 32 * h + l)) >> (2 * g);
        const uint32_t lo = (ql & 0x0f0f0f0fu) | (qh & 0x03030303u) << 4;
        const uint32_t hi = ((ql >> 4) & 0x0f0f0f0fu) | ((qh >> 4) & 0x03030303u) << 4;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            w[k] = code_as_float(lo, k, 32.0f);
            w[4 + k] = code_as_float(hi, k, 32.0f);
        }
        return 256 * (s >> 5) + 128 * h + c;
    }
};

// sum of one slice's 8 products with x (a: columns c.., b: c + HI..), its scales applied;
// xa, xb (the sums of a and b) are read only by the types with mins
template <int SCALE>
__device__ __forceinline__ float slice_dot(const float *q, const slice_scale &sc, float4 a,
                                           float4 b, float xa, float xb) {
    const float lo = q[0] * a.x + q[1] * a.y + q[2] * a.z + q[3] * a.w;
    const float hi = q[4] * b.x + q[5] * b.y + q[6] * b.z + q[7] * b.w;
    if (SCALE == SCALE_NONE)
        return lo + hi;
    if (SCALE == SCALE_ONE)
        return sc.d0 * (lo + hi);
    if (SCALE == SCALE_ONE_MIN)
        return sc.d0 * (lo + hi) + sc.m0 * (xa + xb);
    if (SCALE == SCALE_TWO)
        return sc.d0 * lo + sc.d1 * hi;
    return sc.d0 * lo + sc.d1 * hi + sc.m0 * xa + sc.m1 * xb;
}

} // namespace

#endif
