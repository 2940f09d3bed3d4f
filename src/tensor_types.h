/* tensor_types.h — weight storage types (GGML numbering, as in GGUF files): block layout,
 * dequantization and dot products with f32 activations. */
#ifndef REASON_TENSOR_TYPES_H
#define REASON_TENSOR_TYPES_H

#include "core.h"

#include <string.h>

enum tensor_type {
    TENSOR_F32 = 0,
    TENSOR_F16 = 1,
    TENSOR_Q4_0 = 2,
    TENSOR_Q4_1 = 3,
    TENSOR_Q5_0 = 6,
    TENSOR_Q5_1 = 7,
    TENSOR_Q8_0 = 8,
    TENSOR_Q8_1 = 9,
    TENSOR_Q2_K = 10,
    TENSOR_Q3_K = 11,
    TENSOR_Q4_K = 12,
    TENSOR_Q5_K = 13,
    TENSOR_Q6_K = 14,
    TENSOR_Q8_K = 15,
    TENSOR_BF16 = 30,
    TENSOR_MXFP4 = 39,
    TENSOR_TYPE_COUNT = 40,
};

typedef struct tensor_type_info {
    const char *name;     /* "Q4_K" */
    int32_t block_size;   /* elements per block */
    int32_t block_bytes;  /* bytes per block */
    bool supported;       /* dequantize/dot implemented */
} tensor_type_info;

/* NULL when the number is not a known GGML type. */
RS_INTERNAL const tensor_type_info *tensor_type_get(uint32_t type);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size or type unknown. */
RS_INTERNAL size_t tensor_row_bytes(uint32_t type, int64_t n);

/* dst[0..n) = the n values of a row (n a multiple of the block size). */
RS_INTERNAL void tensor_dequantize_row(uint32_t type, const void *row, float *dst, int64_t n);
/* sum_i row[i] * x[i]. */
RS_INTERNAL float tensor_dot_row(uint32_t type, const void *row, const float *x, int64_t n);

/* Half-precision conversions (exact, round-to-nearest-even on the way down). */
RS_INTERNAL float rs_f16_to_f32(uint16_t h);
RS_INTERNAL uint16_t rs_f32_to_f16(float f);
RS_INTERNAL float rs_bf16_to_f32(uint16_t h);
RS_INTERNAL uint16_t rs_f32_to_bf16(float f);

/* Dot kernels, chosen once per type at run time from the CPU's features. Callers that loop over
 * rows can fetch the kernel once instead of dispatching per row. */
typedef float (*tensor_dot_fn)(const void *row, const float *x, int64_t n);

enum tensor_isa { TENSOR_ISA_SCALAR = 0, TENSOR_ISA_AVX2 = 1, TENSOR_ISA_AVX512 = 2 };

/* The fastest dot kernel for type on this CPU; NULL when the type is not supported. */
RS_INTERNAL tensor_dot_fn tensor_dot_kernel(uint32_t type);
/* The kernel of exactly that ISA tier; NULL when the CPU lacks the tier or the type has no
 * kernel there (tests compare tiers against TENSOR_ISA_SCALAR, the reference). */
RS_INTERNAL tensor_dot_fn tensor_dot_kernel_isa(uint32_t type, int isa);
/* The highest tier this CPU runs, and a tier's name ("scalar", "avx2", "avx512"). */
RS_INTERNAL int tensor_isa_best(void);
RS_INTERNAL const char *tensor_isa_name(int isa);

/* SIMD kernels (cpu_dot_avx2.c, cpu_dot_avx512.c), each compiled with per-function target
 * attributes; only reached through the dispatch above once the CPU has been checked. */
#define RS_DECLARE_DOT(isa)                                                                        \
    RS_INTERNAL float rs_dot_f32_##isa(const void *row, const float *x, int64_t n);                \
    RS_INTERNAL float rs_dot_f16_##isa(const void *row, const float *x, int64_t n);                \
    RS_INTERNAL float rs_dot_bf16_##isa(const void *row, const float *x, int64_t n);               \
    RS_INTERNAL float rs_dot_q8_0_##isa(const void *row, const float *x, int64_t n);               \
    RS_INTERNAL float rs_dot_q4_0_##isa(const void *row, const float *x, int64_t n);               \
    RS_INTERNAL float rs_dot_q4_1_##isa(const void *row, const float *x, int64_t n);               \
    RS_INTERNAL float rs_dot_q5_0_##isa(const void *row, const float *x, int64_t n);               \
    RS_INTERNAL float rs_dot_q5_1_##isa(const void *row, const float *x, int64_t n);               \
    RS_INTERNAL float rs_dot_q4_K_##isa(const void *row, const float *x, int64_t n);               \
    RS_INTERNAL float rs_dot_q5_K_##isa(const void *row, const float *x, int64_t n);               \
    RS_INTERNAL float rs_dot_q6_K_##isa(const void *row, const float *x, int64_t n);               \
    RS_INTERNAL float rs_dot_mxfp4_##isa(const void *row, const float *x, int64_t n);
RS_DECLARE_DOT(avx2)
RS_DECLARE_DOT(avx512)

/* ---- 8-bit activations (decode) ------------------------------------------------------------
 * The activation vector is quantized once per product into blocks of 32: q = round(x / d) in
 * [-127, 127] with d = max|x| / 127, and s = d * sum(q) per block (it carries the weights'
 * offsets: Q4_1's min, Q4_0's -8, ...). A row dot is then an integer dot product per block
 * (VNNI vpdpbusd or AVX2 vpmaddubsw) scaled once per block: faster than widening every weight to
 * f32, at the price of rounding the activations to 8 bits (relative error ~ 1e-3 of a logit). */
typedef float (*tensor_qdot_fn)(const void *row, const int8_t *xq, const float *xd,
                                const float *xs, int64_t n);
/* xq (n), xd and xs (n / 32); n a multiple of 32. */
RS_INTERNAL void tensor_quantize_q8(const float *x, int8_t *xq, float *xd, float *xs, int64_t n);
/* The fastest integer-dot kernel for type, or NULL (then use tensor_dot_kernel). */
RS_INTERNAL tensor_qdot_fn tensor_qdot_kernel(uint32_t type);
RS_INTERNAL tensor_qdot_fn tensor_qdot_kernel_isa(uint32_t type, int isa);

#define RS_DECLARE_QDOT(isa)                                                                       \
    RS_INTERNAL float rs_qdot_q8_0_##isa(const void *, const int8_t *, const float *,             \
                                         const float *, int64_t);                                 \
    RS_INTERNAL float rs_qdot_q4_0_##isa(const void *, const int8_t *, const float *,             \
                                         const float *, int64_t);                                 \
    RS_INTERNAL float rs_qdot_q4_1_##isa(const void *, const int8_t *, const float *,             \
                                         const float *, int64_t);                                 \
    RS_INTERNAL float rs_qdot_q4_K_##isa(const void *, const int8_t *, const float *,             \
                                         const float *, int64_t);                                 \
    RS_INTERNAL float rs_qdot_q5_0_##isa(const void *, const int8_t *, const float *,             \
                                         const float *, int64_t);                                 \
    RS_INTERNAL float rs_qdot_q5_1_##isa(const void *, const int8_t *, const float *,             \
                                         const float *, int64_t);                                 \
    RS_INTERNAL float rs_qdot_q5_K_##isa(const void *, const int8_t *, const float *,             \
                                         const float *, int64_t);                                 \
    RS_INTERNAL float rs_qdot_q6_K_##isa(const void *, const int8_t *, const float *,             \
                                         const float *, int64_t);                                 \
    RS_INTERNAL float rs_qdot_mxfp4_##isa(const void *, const int8_t *, const float *,            \
                                          const float *, int64_t);
RS_DECLARE_QDOT(avx2)
RS_DECLARE_QDOT(avx512)
RS_INTERNAL void rs_quantize_q8_avx512(const float *x, int8_t *xq, float *xd, float *xs, int64_t n);
/* Dequantization with AVX-512, bit-identical to the scalar one (tensor_dequantize_row uses
 * them). */
typedef void (*tensor_dequant_fn)(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_q4_0_avx512(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_q4_1_avx512(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_q8_0_avx512(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_q4_K_avx512(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_mxfp4_avx512(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_f16_avx512(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_bf16_avx512(const void *row, float *dst, int64_t n);
/* The same through the integer GEMM's unpacking (cpu_qgemm_pack.c; AVX-512 BW/VL, x86 only). */
RS_INTERNAL void rs_dequant_q5_0_codes(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_q5_1_codes(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_q5_K_codes(const void *row, float *dst, int64_t n);
RS_INTERNAL void rs_dequant_q6_K_codes(const void *row, float *dst, int64_t n);
/* ---- MXFP4 (OCP microscaling FP4, GGML type 39) --------------------------------------------
 * 17 bytes per 32 elements: an E8M0 exponent byte e, then 16 bytes of E2M1 codes; byte j holds
 * element j (low nibble) and element j + 16 (high nibble), as in Q4_0. A code is sign (bit 3)
 * and magnitude 0, 0.5, 1, 1.5, 2, 3, 4, 6 (bits 0-2). The kernels use the doubled magnitudes,
 * the integers 0, 1, 2, 3, 4, 6, 8, 12 (RS_MXFP4_KVALUES, indexed by the code), and so half the
 * block scale: rs_e8m0_half(e) = 2^(e - 128) = 2^(e - 127) / 2, exact for every e (subnormal
 * for e < 2; e = 255 is 2^127, not NaN, as in ggml and the gguf package). */
#define RS_MXFP4_KVALUES 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12
/* The same plus 12 (0..24): unsigned bytes for vpdpbusd / vpmaddubsw, the integer kernels take
 * 12 * (block sum of the activations) back off. */
#define RS_MXFP4_KVALUES_PLUS12 12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0
static inline float rs_e8m0_half(uint8_t e) {
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* The 8 six-bit (scale, min) pairs of a Q4_K/Q5_K super-block, packed in 12 bytes: bytes 0-3
 * hold scales 0-3 (low 6 bits) and the top 2 bits of scales 4-7; bytes 4-7 the same for mins;
 * bytes 8-11 the low 4 bits of scale (low nibble) and min (high nibble) 4-7. */
static inline void rs_k_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* All 8 (scale, min) pairs of the same 12 bytes at once, one byte each (SIMD kernels widen them):
 * as 32-bit words a, b, c = bytes 0-3, 4-7, 8-11, scales 0-3 are a's low 6 bits, 4-7 c's low
 * nibbles with a's top 2 bits above; mins 0-3 b's low 6 bits, 4-7 c's high nibbles with b's top
 * 2 bits. */
static inline void rs_k_scales_min8(const uint8_t *s, uint64_t *sc, uint64_t *mn) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    *sc = (uint64_t)(a & 0x3f3f3f3fu) |
          (uint64_t)((c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u)) << 32;
    *mn = (uint64_t)(b & 0x3f3f3f3fu) |
          (uint64_t)(((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u)) << 32;
}

/* The CPU has AVX-512 VNNI (and BW, VL, DQ): the avx512 integer kernels may run. */
RS_INTERNAL bool rs_cpu_has_vnni(void);
/* The CPU has AVX512-BF16 (vdpbf16ps). */
RS_INTERNAL bool rs_cpu_has_avx512bf16(void);

#endif
