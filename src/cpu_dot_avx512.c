/* cpu_dot_avx512.c — AVX-512F dot products of one weight row with an f32 vector.
 *
 * Like cpu_dot_avx2.c, every function carries its own target attribute and is reached only
 * after the CPU has been checked. The 4-bit types use a lookup instead of integer-to-float
 * conversion: vpermps selects from a 16-entry table by the low 4 bits of each 32-bit lane, so a
 * table holding the block's 16 possible weights (built with the same f32 expression as the
 * scalar dequantization, hence bit-identical weights) turns bytes into weights in one
 * instruction, and the high nibble needs only a shift. */
#include "tensor_types.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f,fma,f16c")))

AVX512 static inline float f16_scalar(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* 16 bytes at p, zero-extended to 16 x i32. */
AVX512 static inline __m512i u8x16(const uint8_t *p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

AVX512 static inline __m512 iota16(void) {
    return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

AVX512 float rs_dot_f32_avx512(const void *row, const float *x, int64_t n) {
    const float *w = row;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16)
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    if (i < n) { /* masked tail: the loads touch only the n - i remaining elements */
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, w + i), _mm512_maskz_loadu_ps(k, x + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

AVX512 float rs_dot_f16_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *w = row;
#define H16(k) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + 2 * (k))))
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(H16(i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(H16(i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(H16(i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(H16(i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(H16(i), _mm512_loadu_ps(x + i), a0);
#undef H16
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) sum += f16_scalar(w + 2 * i) * x[i];
    return sum;
}

AVX512 float rs_dot_bf16_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *w = row;
#define B16(k)                                                                                     \
    _mm512_castsi512_ps(_mm512_slli_epi32(                                                         \
        _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + 2 * (k)))), 16))
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(B16(i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(B16(i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(B16(i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(B16(i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(B16(i), _mm512_loadu_ps(x + i), a0);
#undef B16
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) {
        uint32_t bits = (uint32_t)(w[2 * i] | w[2 * i + 1] << 8) << 16;
        float wi;
        memcpy(&wi, &bits, 4);
        sum += wi * x[i];
    }
    return sum;
}

/* ---- 32-element blocks with f32 activations ------------------------------------------------
 * Each block's body adds its 32 products into two accumulators; dot_blocks walks the blocks two
 * at a time into four, so that a block does not wait for the previous block's FMAs — with two
 * accumulators their latency, not the arithmetic, set the pace (Q4_0, one thread, 4096 x 4096:
 * 18.8 -> 22.3 GB/s of weights). */
typedef void (*block_fn)(const uint8_t *b, const float *x, __m512 acc[2]);

AVX512 static inline __attribute__((always_inline)) float dot_blocks(const uint8_t *b,
                                                                     const float *x, int64_t n,
                                                                     size_t bytes, block_fn f) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    const int64_t nb = n / 32;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2, b += 2 * bytes, x += 64) {
        f(b, x, acc);
        f(b + bytes, x + 32, acc + 2);
    }
    if (i < nb) f(b, x, acc);
    return _mm512_reduce_add_ps(
        _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

AVX512 static inline void q8_0_block(const uint8_t *b, const float *x, __m512 acc[2]) {
    const __m512 q0 =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2))));
    const __m512 q1 =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18))));
    const __m512 d = _mm512_set1_ps(f16_scalar(b));
    acc[0] = _mm512_fmadd_ps(_mm512_mul_ps(q0, d), _mm512_loadu_ps(x), acc[0]);
    acc[1] = _mm512_fmadd_ps(_mm512_mul_ps(q1, d), _mm512_loadu_ps(x + 16), acc[1]);
}

AVX512 float rs_dot_q8_0_avx512(const void *row, const float *x, int64_t n) {
    return dot_blocks(row, x, n, 34, q8_0_block);
}

/* A 4-bit block's products: table[low nibble] (elements 0-15) and table[high nibble] (16-31)
 * of the 16 code bytes v, times x, into acc. */
AVX512 static inline void nibbles_accumulate(__m512 table, __m512i v, const float *x,
                                             __m512 acc[2]) {
    acc[0] = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, table), _mm512_loadu_ps(x), acc[0]);
    acc[1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table),
                             _mm512_loadu_ps(x + 16), acc[1]);
}

/* Q4_0: table[q] = d * (q - 8); bytes 0-15: elements 0-15 (low nibble), 16-31 (high). */
AVX512 static inline void q4_0_block(const uint8_t *b, const float *x, __m512 acc[2]) {
    const __m512 centred = _mm512_sub_ps(iota16(), _mm512_set1_ps(8.0f));
    const __m512 table = _mm512_mul_ps(_mm512_set1_ps(f16_scalar(b)), centred);
    nibbles_accumulate(table, u8x16(b + 2), x, acc);
}

AVX512 float rs_dot_q4_0_avx512(const void *row, const float *x, int64_t n) {
    return dot_blocks(row, x, n, 18, q4_0_block);
}

/* Q4_1: table[q] = d * q + m. */
AVX512 static inline void q4_1_block(const uint8_t *b, const float *x, __m512 acc[2]) {
    const __m512 table = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(f16_scalar(b)), iota16()),
                                       _mm512_set1_ps(f16_scalar(b + 2)));
    nibbles_accumulate(table, u8x16(b + 4), x, acc);
}

AVX512 float rs_dot_q4_1_avx512(const void *row, const float *x, int64_t n) {
    return dot_blocks(row, x, n, 20, q4_1_block);
}

/* Q4_K: per sub-block, table[q] = (d * sc) * q - dmin * m. */
/* The 8 sub-blocks' d·sc and dmin·m of a Q4_K/Q5_K super-block as two vectors (lanes 0-7; the
 * same f32 products as the scalar dequantization), each then picked into a broadcast by one
 * permute instead of unpacking the 6-bit pairs one sub-block at a time. */
AVX512 static inline void k_scale_vectors(const uint8_t *b, __m512 *ds, __m512 *dm) {
    uint64_t sc8, mn8;
    rs_k_scales_min8(b + 4, &sc8, &mn8);
    *ds = _mm512_castps256_ps512(_mm256_mul_ps(
        _mm256_set1_ps(f16_scalar(b)),
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc8)))));
    *dm = _mm512_castps256_ps512(_mm256_mul_ps(
        _mm256_set1_ps(f16_scalar(b + 2)),
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn8)))));
}

/* The sub-block tables are built from d·sc and dmin·m stored once per super-block and broadcast
 * from memory by the multiply and the subtraction (two instructions per table; broadcasting
 * them by permutes took two more). */
AVX512 float rs_dot_q4_K_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m512 iota = iota16();
    _Alignas(32) float dsa[8], dma[8];
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 256; i++, b += 144) {
        __m512 ds, dm;
        k_scale_vectors(b, &ds, &dm);
        _mm256_store_ps(dsa, _mm512_castps512_ps256(ds));
        _mm256_store_ps(dma, _mm512_castps512_ps256(dm));
        __asm__ volatile("" ::: "memory"); /* reload them as broadcasts, not lane extractions */
        const uint8_t *qs = b + 16;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++, qs += 32, x += 64) {
            __m512 t0 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dsa[2 * c]), iota),
                                      _mm512_set1_ps(dma[2 * c]));
            __m512 t1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dsa[2 * c + 1]), iota),
                                      _mm512_set1_ps(dma[2 * c + 1]));
            __m512i v0 = u8x16(qs), v1 = u8x16(qs + 16);
            acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v0, t0), _mm512_loadu_ps(x), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v1, t0), _mm512_loadu_ps(x + 16), acc1);
            acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), t1),
                                   _mm512_loadu_ps(x + 32), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), t1),
                                   _mm512_loadu_ps(x + 48), acc1);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* ---- Q5_0, Q5_1, Q5_K with f32 activations ---------------------------------------------------
 * As the 4-bit types, with a 32-entry table: vpermt2ps picks from two 16-entry tables by the low
 * 5 bits of each lane (bit 4 chooses the table), so the table pair holds the block's 32 possible
 * weights (the scalar dequantization's f32 expression, bit-identical) and the index is the nibble
 * with the fifth bit in bit 4 (bits above 4 are ignored). */

/* The low-nibble lanes keep the high nibble in bits 4-7: bit 4 is replaced by the fifth bit
 * (one merge-masked OR over a copy with bit 4 cleared); the high-nibble lanes (v >> 4) have bit 4
 * clear and only get it ORed in. k: one bit per lane, straight from qh. */
AVX512 static inline __m512i q5_index_lo(__m512i v, __mmask16 k) {
    const __m512i s16 = _mm512_set1_epi32(0x10);
    return _mm512_mask_or_epi32(_mm512_andnot_si512(s16, v), k, v, s16);
}
AVX512 static inline __m512i q5_index_hi(__m512i v, __mmask16 k) {
    const __m512i hi = _mm512_srli_epi32(v, 4);
    return _mm512_mask_or_epi32(hi, k, hi, _mm512_set1_epi32(0x10));
}

/* A 5-bit block's products: its 32 weights picked from the table pair (t0: q 0-15, t1: 16-31)
 * by the nibbles v and the fifth bits qh, times x, into acc. */
AVX512 static inline void q5_accumulate(__m512 t0, __m512 t1, __m512i v, uint32_t qh,
                                        const float *x, __m512 acc[2]) {
    const __m512i i0 = q5_index_lo(v, (__mmask16)(qh & 0xffffu));
    const __m512i i1 = q5_index_hi(v, (__mmask16)(qh >> 16));
    acc[0] = _mm512_fmadd_ps(_mm512_permutex2var_ps(t0, i0, t1), _mm512_loadu_ps(x), acc[0]);
    acc[1] = _mm512_fmadd_ps(_mm512_permutex2var_ps(t0, i1, t1), _mm512_loadu_ps(x + 16), acc[1]);
}

/* Q5_0 (22 B): table[q] = d * (q - 16), q = 0..31; qh bits 0-15 and 16-31 are the masks of
 * elements 0-15 and 16-31. */
AVX512 static inline void q5_0_block(const uint8_t *b, const float *x, __m512 acc[2]) {
    const __m512 iota = iota16();
    const __m512 c0 = _mm512_sub_ps(iota, _mm512_set1_ps(16.0f)); /* q - 16 for q = 0..15 */
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const __m512 d = _mm512_set1_ps(f16_scalar(b));
    const __m512 t0 = _mm512_mul_ps(d, c0), t1 = _mm512_mul_ps(d, iota); /* q 16..31 */
    q5_accumulate(t0, t1, u8x16(b + 6), qh, x, acc);
}

AVX512 float rs_dot_q5_0_avx512(const void *row, const float *x, int64_t n) {
    return dot_blocks(row, x, n, 22, q5_0_block);
}

/* Q5_1 (24 B): table[q] = d * q + m. */
AVX512 static inline void q5_1_block(const uint8_t *b, const float *x, __m512 acc[2]) {
    const __m512 iota = iota16(), iota_hi = _mm512_add_ps(iota, _mm512_set1_ps(16.0f));
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const __m512 d = _mm512_set1_ps(f16_scalar(b)), m = _mm512_set1_ps(f16_scalar(b + 2));
    const __m512 t0 = _mm512_add_ps(_mm512_mul_ps(d, iota), m);
    const __m512 t1 = _mm512_add_ps(_mm512_mul_ps(d, iota_hi), m);
    q5_accumulate(t0, t1, u8x16(b + 8), qh, x, acc);
}

AVX512 float rs_dot_q5_1_avx512(const void *row, const float *x, int64_t n) {
    return dot_blocks(row, x, n, 24, q5_1_block);
}

/* Q5_K: per sub-block j, table[q] = (d * sc) * q - dmin * m for q = 0..31. The fifth bits: the
 * qh bytes widened to lanes (l = 0-15 and 16-31) and shifted left by 4, so bit 4 is sub-block 0's
 * bit; a bit-select (vpternlogd, 0xca: bit 4 from h, the rest from the nibbles) puts it in the
 * index, and h moves down by one per sub-block. */
AVX512 float rs_dot_q5_K_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m512 iota = iota16(), iota_hi = _mm512_add_ps(iota, _mm512_set1_ps(16.0f));
    const __m512i s16 = _mm512_set1_epi32(0x10);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 256; i++, b += 176) {
        __m512 ds, dm;
        k_scale_vectors(b, &ds, &dm);
        const uint8_t *qs = b + 48;
        __m512i h0 = _mm512_slli_epi32(u8x16(b + 16), 4), h1 = _mm512_slli_epi32(u8x16(b + 32), 4);
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++, qs += 32, x += 64) {
            const __m512i j0 = _mm512_set1_epi32(2 * c), j1 = _mm512_set1_epi32(2 * c + 1);
            const __m512 ds0 = _mm512_permutexvar_ps(j0, ds), dm0 = _mm512_permutexvar_ps(j0, dm);
            const __m512 ds1 = _mm512_permutexvar_ps(j1, ds), dm1 = _mm512_permutexvar_ps(j1, dm);
            const __m512 t00 = _mm512_sub_ps(_mm512_mul_ps(ds0, iota), dm0);
            const __m512 t01 = _mm512_sub_ps(_mm512_mul_ps(ds0, iota_hi), dm0);
            const __m512 t10 = _mm512_sub_ps(_mm512_mul_ps(ds1, iota), dm1);
            const __m512 t11 = _mm512_sub_ps(_mm512_mul_ps(ds1, iota_hi), dm1);
            const __m512i v0 = u8x16(qs), v1 = u8x16(qs + 16);
            const __m512i a0 = _mm512_ternarylogic_epi32(s16, h0, v0, 0xca);
            const __m512i a1 = _mm512_ternarylogic_epi32(s16, h1, v1, 0xca);
            h0 = _mm512_srli_epi32(h0, 1);
            h1 = _mm512_srli_epi32(h1, 1);
            const __m512i b0 = _mm512_ternarylogic_epi32(s16, h0, _mm512_srli_epi32(v0, 4), 0xca);
            const __m512i b1 = _mm512_ternarylogic_epi32(s16, h1, _mm512_srli_epi32(v1, 4), 0xca);
            h0 = _mm512_srli_epi32(h0, 1);
            h1 = _mm512_srli_epi32(h1, 1);
            acc0 = _mm512_fmadd_ps(_mm512_permutex2var_ps(t00, a0, t01), _mm512_loadu_ps(x), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_permutex2var_ps(t00, a1, t01), _mm512_loadu_ps(x + 16),
                                   acc1);
            acc0 = _mm512_fmadd_ps(_mm512_permutex2var_ps(t10, b0, t11), _mm512_loadu_ps(x + 32),
                                   acc0);
            acc1 = _mm512_fmadd_ps(_mm512_permutex2var_ps(t10, b1, t11), _mm512_loadu_ps(x + 48),
                                   acc1);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* Q6_K: each 16-lane vector is exactly one scale group; w = (d * sc) * (q - 32), the scalar
 * dequantization's f32 products. A 128-weight half's codes are assembled 64 bytes at a time with
 * byte operations (AVX-512BW): ql's low nibbles (groups 0 | 1) and high nibbles (2 | 3), qh's
 * 2-bit pairs moved to bits 4-5 by per-quadword shifts, 32 subtracted; then widened 16 at a
 * time. The 16 scales d·sc are one vector, stored once per super-block and broadcast from
 * memory by each multiply. Assembling in 32-bit lanes with one d·sc conversion per group took
 * ~46 vector instructions per 64 weights, this ~22. */
#define AVX512BW __attribute__((target("avx512f,avx512bw,fma,f16c")))

AVX512BW float rs_dot_q6_K_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m512i m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i c32 = _mm512_set1_epi8(32);
    /* qh bits 2g, 2g+1 to bits 4-5: groups 0 | 1 shift left by 4 | 2, groups 2 | 3 right by 0 | 2 */
    const __m512i left01 = _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2);
    const __m512i right23 = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    _Alignas(64) float ds[16];
    _Alignas(64) int8_t codes[128];
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 256; i++, b += 210) {
        const __m512 scales = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 192))));
        _mm512_store_ps(ds, _mm512_mul_ps(_mm512_set1_ps(f16_scalar(b + 208)), scales));
        __asm__ volatile("" ::: "memory"); /* reload them as broadcasts, not lane extractions */
        for (int h = 0; h < 2; h++, x += 128) {
            const __m512i ql = _mm512_loadu_si512(b + 64 * h);
            const __m512i qh =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h)));
            /* lo | (hi & 0x30): vpternlog 0xF8 = A | (B & C) */
            const __m512i g01 = _mm512_ternarylogic_epi32(
                _mm512_and_si512(ql, m0f), _mm512_sllv_epi64(qh, left01), m30, 0xF8);
            const __m512i g23 = _mm512_ternarylogic_epi32(
                _mm512_and_si512(_mm512_srli_epi16(ql, 4), m0f), _mm512_srlv_epi64(qh, right23),
                m30, 0xF8);
            _mm512_store_si512(codes, _mm512_sub_epi8(g01, c32));
            _mm512_store_si512(codes + 64, _mm512_sub_epi8(g23, c32));
#pragma GCC unroll 8
            for (int c = 0; c < 8; c += 2) {
                const __m512 q0 = _mm512_cvtepi32_ps(
                    _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(codes + 16 * c))));
                const __m512 q1 = _mm512_cvtepi32_ps(
                    _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(codes + 16 * c + 16))));
                acc0 = _mm512_fmadd_ps(_mm512_mul_ps(q0, _mm512_set1_ps(ds[8 * h + c])),
                                       _mm512_loadu_ps(x + 16 * c), acc0);
                acc1 = _mm512_fmadd_ps(_mm512_mul_ps(q1, _mm512_set1_ps(ds[8 * h + c + 1])),
                                       _mm512_loadu_ps(x + 16 * c + 16), acc1);
            }
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* ---- 8-bit activations: integer dot products with VNNI --------------------------------------
 * vpdpbusd multiplies 64 unsigned weight bytes by 64 signed activation bytes and adds groups of
 * four into 16 i32 lanes, so one instruction covers two blocks of 32 (lanes 0-7 and 8-15); the
 * lanes are converted to f32 and scaled by (weight scale * activation scale) of their block. The
 * weights' offsets (Q4_0's -8, Q4_1's min, Q8_0's +128 bias, Q4_K's min) multiply the block sums
 * of the activations, kept aside as xs = d * sum(q). */

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

/* Two blocks' scales as one vector: lanes 0-7 a, lanes 8-15 b. */
VNNI static inline __m512 scale2(float a, float b) {
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

/* 16 nibble bytes of block a and of block b -> 64 bytes: a's low nibbles (elements 0-15), a's
 * high nibbles (16-31), then the same for b. */
VNNI static inline __m512i nibbles2(const uint8_t *a, const uint8_t *b) {
    const __m512i shifts = _mm512_setr_epi64(0, 0, 0x0004000400040004ll, 0x0004000400040004ll, 0, 0,
                                             0x0004000400040004ll, 0x0004000400040004ll);
    __m256i raw =
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                _mm_loadu_si128((const __m128i *)b), 1);
    __m512i z = _mm512_castsi256_si512(raw);
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0));
    return _mm512_and_si512(_mm512_srlv_epi16(z, shifts), _mm512_set1_epi8(0x0f));
}

/* One block's 16 nibble bytes -> 32 bytes in element order. */
VNNI static inline __m256i nibbles1(const uint8_t *a) {
    __m128i r = _mm_loadu_si128((const __m128i *)a), m4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(r, 4), m4), _mm_and_si128(r, m4));
}

VNNI static inline float reduce2(__m512 a, __m256 b) {
    __m256 lo = _mm512_castps512_ps256(a), hi = _mm512_extractf32x8_ps(a, 1);
    __m256 s = _mm256_add_ps(_mm256_add_ps(lo, hi), b);
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

/* The f16 scales of 4 consecutive blocks of bb bytes (lanes 0-3) and, for Q4_1, their mins
 * (lanes 4-7), picked out of the bytes already being loaded with one word permute instead of
 * eight scalar loads and conversions (that scalar work per block was the bottleneck). The loads
 * stay inside the 4 blocks: 4 * bb >= 64, and Q8_0's second load ends at byte 132 of 136. */
VNNI static inline __m256 heads4(const uint8_t *b, int bb) {
    __m512i w;
    if (bb == 18) {
        w = _mm512_permutexvar_epi16(
            _mm512_zextsi128_si512(_mm_setr_epi16(0, 9, 18, 27, 0, 9, 18, 27)),
            _mm512_loadu_si512(b));
    } else if (bb == 20) {
        w = _mm512_permutexvar_epi16(
            _mm512_zextsi128_si512(_mm_setr_epi16(0, 10, 20, 30, 1, 11, 21, 31)),
            _mm512_loadu_si512(b));
    } else if (bb == 22) { /* second load b + 24: bytes 24-87 end exactly at the 4th block */
        w = _mm512_permutex2var_epi16(
            _mm512_loadu_si512(b),
            _mm512_zextsi128_si512(_mm_setr_epi16(0, 11, 22, 53, 0, 11, 22, 53)),
            _mm512_loadu_si512(b + 24));
    } else if (bb == 24) { /* scales at 0, 24, 48, 72 and mins 2 bytes later; bytes 32-95 */
        w = _mm512_permutex2var_epi16(
            _mm512_loadu_si512(b),
            _mm512_zextsi128_si512(_mm_setr_epi16(0, 12, 24, 52, 1, 13, 25, 53)),
            _mm512_loadu_si512(b + 32));
    } else { /* 34 */
        w = _mm512_permutex2var_epi16(
            _mm512_loadu_si512(b),
            _mm512_zextsi128_si512(_mm_setr_epi16(0, 17, 32, 49, 0, 17, 32, 49)),
            _mm512_loadu_si512(b + 68));
    }
    return _mm256_cvtph_ps(_mm512_castsi512_si128(w));
}

/* Blocks of bb bytes: f16 scale at 0, quants at off (4-bit nibbles, or 8-bit for Q8_0). The
 * offset term per block is min * s (Q4_1, kind 1) or bias * d * s (Q4_0: -8; Q8_0 after its
 * top-bit flip: -128). Four blocks per step: two vpdpbusd, one vector of their four scales. */
#define QDOT_BLOCKS(name, bb, off, kind, bias)                                                     \
    VNNI float name(const void *row, const int8_t *xq, const float *xd, const float *xs,           \
                    int64_t n) {                                                                   \
        const uint8_t *b = row;                                                                    \
        const int64_t nb = n / 32;                                                                 \
        const __m512i lo = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);      \
        const __m512i hi = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);      \
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;                                            \
        __m256 acc8 = _mm256_setzero_ps();                                                         \
        __m128 corr = _mm_setzero_ps();                                                            \
        float corr1 = 0.0f;                                                                        \
        int64_t i = 0;                                                                             \
        for (; i + 4 <= nb; i += 4, b += 4 * (bb)) {                                               \
            __m512i d0 =                                                                           \
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), QUANTS2(b + (off), b + (bb) + (off)),  \
                                    _mm512_loadu_si512(xq + 32 * i));                              \
            __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(),                               \
                                             QUANTS2(b + 2 * (bb) + (off), b + 3 * (bb) + (off)),  \
                                             _mm512_loadu_si512(xq + 32 * i + 64));                \
            const __m256 h = heads4(b, bb);                                                        \
            const __m128 d4 = _mm256_castps256_ps128(h);                                           \
            const __m512 s4 = _mm512_castps128_ps512(_mm_mul_ps(d4, _mm_loadu_ps(xd + i)));        \
            acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), _mm512_permutexvar_ps(lo, s4), acc0);   \
            acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), _mm512_permutexvar_ps(hi, s4), acc1);   \
            corr = _mm_fmadd_ps(kind == 1 ? _mm256_extractf128_ps(h, 1)                            \
                                          : _mm_mul_ps(d4, _mm_set1_ps(bias)),                     \
                                _mm_loadu_ps(xs + i), corr);                                       \
        }                                                                                          \
        for (; i < nb; i++, b += (bb)) {                                                           \
            __m256i d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), QUANTS1(b + (off)),            \
                                            _mm256_loadu_si256((const __m256i *)(xq + 32 * i)));   \
            const float w = f16_scalar(b);                                                         \
            acc8 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(w * xd[i]), acc8);        \
            corr1 += (kind == 1 ? f16_scalar(b + 2) : (bias)*w) * xs[i];                           \
        }                                                                                          \
        corr = _mm_add_ps(corr, _mm_movehl_ps(corr, corr));                                        \
        corr = _mm_add_ss(corr, _mm_movehdup_ps(corr));                                            \
        return reduce2(_mm512_add_ps(acc0, acc1), acc8) + _mm_cvtss_f32(corr) + corr1;             \
    }

#define QUANTS2(a, b) nibbles2(a, b)
#define QUANTS1(a) nibbles1(a)
QDOT_BLOCKS(rs_qdot_q4_0_avx512, 18, 2, 0, -8.0f)
QDOT_BLOCKS(rs_qdot_q4_1_avx512, 20, 4, 1, 0.0f)
#undef QUANTS2
#undef QUANTS1

/* Q8_0: the signed weights become unsigned by flipping the top bit (w + 128). */
VNNI static inline __m512i q8_pair(const uint8_t *a, const uint8_t *b) {
    return _mm512_xor_si512(
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                           _mm256_loadu_si256((const __m256i *)b), 1),
        _mm512_set1_epi8((char)0x80));
}
VNNI static inline __m256i q8_one(const uint8_t *a) {
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)a), _mm256_set1_epi8((char)0x80));
}
/* Q5_0/Q5_1: nibbles as Q4_0 plus the fifth bits, the u32 qh just before the nibbles: one mask
 * bit per byte, so vpmovm2b-style masked moves put 0x10 into the bytes whose bit is set. */
VNNI static inline __m512i q5_pair(const uint8_t *a, const uint8_t *b) {
    uint32_t ha, hb;
    memcpy(&ha, a - 4, 4);
    memcpy(&hb, b - 4, 4);
    const __mmask64 fifth = (__mmask64)ha | (__mmask64)hb << 32;
    return _mm512_or_si512(nibbles2(a, b), _mm512_maskz_mov_epi8(fifth, _mm512_set1_epi8(0x10)));
}
VNNI static inline __m256i q5_one(const uint8_t *a) {
    uint32_t ha;
    memcpy(&ha, a - 4, 4);
    return _mm256_or_si256(nibbles1(a), _mm256_maskz_mov_epi8(ha, _mm256_set1_epi8(0x10)));
}
#define QUANTS2(a, b) q5_pair(a, b)
#define QUANTS1(a) q5_one(a)
QDOT_BLOCKS(rs_qdot_q5_0_avx512, 22, 6, 0, -16.0f)
QDOT_BLOCKS(rs_qdot_q5_1_avx512, 24, 8, 1, 0.0f)
#undef QUANTS2
#undef QUANTS1

#define QUANTS2(a, b) q8_pair(a, b)
#define QUANTS1(a) q8_one(a)
QDOT_BLOCKS(rs_qdot_q8_0_avx512, 34, 2, 0, -128.0f)
#undef QUANTS2
#undef QUANTS1
#undef QDOT_BLOCKS

/* Q4_K: sub-blocks 2c and 2c+1 are the low and high nibbles of the same 32 bytes, so one 64-byte
 * vector holds two consecutive sub-blocks, in the activations' order. */
/* The 8 sub-block scales of a Q4_K/Q5_K super-block b times the activation scales, d·sc·xd, as
 * one vector; the mins' correction dmin·m·xs is added into corr. All eight at once: the scalar
 * unpacking of the 6-bit pairs per sub-block used to dominate these kernels. */
VNNI static inline __m256 k_scales(const uint8_t *b, const float *xd, const float *xs,
                                   __m256 *corr) {
    uint64_t sc, mn;
    rs_k_scales_min8(b + 4, &sc, &mn);
    const __m256 s = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
    const __m256 m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn)));
    *corr = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_scalar(b + 2)), m),
                            _mm256_loadu_ps(xs), *corr);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(f16_scalar(b)), s), _mm256_loadu_ps(xd));
}

/* Lanes 0-7 = ds[j], lanes 8-15 = ds[j + 1]: the scales of two sub-blocks in one vector. */
VNNI static inline __m512 two_scales(__m256 ds, int j) {
    const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(j), _mm256_set1_epi32(j + 1), 1);
    return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(ds));
}

/* Sub-blocks 2c, 2c + 1 of a K super-block: the low then the high nibbles of 32 bytes. */
VNNI static inline __m512i k_nibbles(const uint8_t *qs32) {
    const __m256i r = _mm256_loadu_si256((const __m256i *)qs32), m4 = _mm256_set1_epi8(0x0f);
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(r, m4)),
                              _mm256_and_si256(_mm256_srli_epi16(r, 4), m4), 1);
}

/* Q4_K: per super-block, four 64-byte vectors (two sub-blocks each) against the activations,
 * each scaled per half by its sub-block's d·sc·xd; the mins come off once at the end. */
VNNI float rs_qdot_q4_K_avx512(const void *row, const int8_t *xq, const float *xd, const float *xs,
                               int64_t n) {
    const uint8_t *b = row;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    __m256 corr = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, b += 144, xq += 256, xd += 8, xs += 8) {
        const __m256 ds = k_scales(b, xd, xs, &corr);
#pragma GCC unroll 4
        for (int c = 0; c < 4; c += 2) {
            const __m512i d0 =
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), k_nibbles(b + 16 + 32 * c),
                                    _mm512_loadu_si512(xq + 64 * c));
            const __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                   k_nibbles(b + 16 + 32 * c + 32),
                                                   _mm512_loadu_si512(xq + 64 * c + 64));
            acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), two_scales(ds, 2 * c), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), two_scales(ds, 2 * c + 2), acc1);
        }
    }
    const __m256 zero = _mm256_setzero_ps();
    return reduce2(_mm512_add_ps(acc0, acc1), _mm256_sub_ps(zero, corr));
}

/* Q5_K: Q4_K plus the fifth bits; sub-block j takes bit j of each of the 32 qh bytes, so the
 * 64-byte vector of sub-blocks 2c, 2c+1 shifts qh (both halves) right by 2c and 2c+1. */
VNNI float rs_qdot_q5_K_avx512(const void *row, const int8_t *xq, const float *xd, const float *xs,
                               int64_t n) {
    const uint8_t *b = row;
    const __m512i one = _mm512_set1_epi8(1);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    __m256 corr = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, b += 176, xq += 256, xd += 8, xs += 8) {
        const __m256 ds = k_scales(b, xd, xs, &corr);
        const __m512i qh =
            _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 16)));
#pragma GCC unroll 4
        for (int c = 0; c < 4; c += 2) {
            /* 16-bit shift counts per 256-bit half; after the shift only bit 0 of each byte is
             * kept, then moved to bit 4 (a 0/1 value: nothing crosses into the next byte) */
            const __m512i sh0 = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * c)),
                                                   _mm256_set1_epi16((short)(2 * c + 1)), 1);
            const __m512i sh1 = _mm512_add_epi16(sh0, _mm512_set1_epi16(2));
            const __m512i h0 =
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh0), one), 4);
            const __m512i h1 =
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh1), one), 4);
            const __m512i d0 = _mm512_dpbusd_epi32(
                _mm512_setzero_si512(), _mm512_or_si512(k_nibbles(b + 48 + 32 * c), h0),
                _mm512_loadu_si512(xq + 64 * c));
            const __m512i d1 = _mm512_dpbusd_epi32(
                _mm512_setzero_si512(), _mm512_or_si512(k_nibbles(b + 48 + 32 * c + 32), h1),
                _mm512_loadu_si512(xq + 64 * c + 64));
            acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), two_scales(ds, 2 * c), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), two_scales(ds, 2 * c + 2), acc1);
        }
    }
    const __m256 zero = _mm256_setzero_ps();
    return reduce2(_mm512_add_ps(acc0, acc1), _mm256_sub_ps(zero, corr));
}

/* Q6_K: a half (128 elements) is two 64-byte vectors of q in 0..63 in the activations' order:
 * the low nibbles of ql[0..63] with qh bits 0-1 / 2-3, then the high nibbles with bits 4-5 /
 * 6-7. vpmaddubsw gives 16-bit pair sums (the -32 as a second vpmaddubsw of 32, subtracted);
 * vpmaddwd applies the int8 scales (one per 16 elements = 8 pair lanes), leaving 16 i32 lanes:
 * lanes 0-7 the first activation block of 32, lanes 8-15 the second. */
VNNI float rs_qdot_q6_K_avx512(const void *row, const int8_t *xq, const float *xd, const float *xs,
                               int64_t n) {
    (void)xs;
    const uint8_t *b = row;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i k32 = _mm512_set1_epi8(32);
    /* shift counts for the qh bits of the 32-byte halves: <<4, <<2 (low nibbles), >>0, >>2 */
    const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    /* pair lane -> scale index within a 64-element vector: lane / 8 */
    const __m512i sidx =
        _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0,
                         0, 0, 0, 0, 0, 0, 0);
    const __m512i blk = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 256; i++, b += 210, xq += 256, xd += 8) {
        const float d = f16_scalar(b + 208);
        /* the 16 scales as i16 and d * xd of the 8 activation blocks */
        const __m512i sc16 = _mm512_castsi256_si512(
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192))));
        const __m512 dx =
            _mm512_castps256_ps512(_mm256_mul_ps(_mm256_set1_ps(d), _mm256_loadu_ps(xd)));
        for (int h = 0; h < 2; h++) {
            const __m512i l = _mm512_loadu_si512(b + 64 * h);
            const __m512i hb =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h)));
            const __m512i qa = _mm512_or_si512(_mm512_and_si512(l, m4),
                                               _mm512_and_si512(_mm512_sllv_epi16(hb, shl), m30));
            const __m512i qb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                               _mm512_and_si512(_mm512_srlv_epi16(hb, shr), m30));
            const __m512i xa = _mm512_loadu_si512(xq + 128 * h);
            const __m512i xb = _mm512_loadu_si512(xq + 128 * h + 64);
            const __m512i pa =
                _mm512_sub_epi16(_mm512_maddubs_epi16(qa, xa), _mm512_maddubs_epi16(k32, xa));
            const __m512i pb =
                _mm512_sub_epi16(_mm512_maddubs_epi16(qb, xb), _mm512_maddubs_epi16(k32, xb));
            /* scales 8h + 0..3 for qa, 8h + 4..7 for qb; activation blocks 4h + 0, 1 and 2, 3 */
            const __m512i ia = _mm512_add_epi16(sidx, _mm512_set1_epi16((short)(8 * h)));
            const __m512i ib = _mm512_add_epi16(sidx, _mm512_set1_epi16((short)(8 * h + 4)));
            const __m512i ra = _mm512_madd_epi16(pa, _mm512_permutexvar_epi16(ia, sc16));
            const __m512i rb = _mm512_madd_epi16(pb, _mm512_permutexvar_epi16(ib, sc16));
            const __m512i ja = _mm512_add_epi32(blk, _mm512_set1_epi32(4 * h));
            const __m512i jb = _mm512_add_epi32(blk, _mm512_set1_epi32(4 * h + 2));
            acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ra), _mm512_permutexvar_ps(ja, dx), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(rb), _mm512_permutexvar_ps(jb, dx), acc1);
        }
    }
    return reduce2(_mm512_add_ps(acc0, acc1), _mm256_setzero_ps());
}

/* d = max|x| / 127 per block of 32; q = x / d rounded to nearest even (vcvtps2dq). */
VNNI void rs_quantize_q8_avx512(const float *x, int8_t *xq, float *xd, float *xs, int64_t n) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / 32; i++, x += 32, xq += 32) {
        __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
        __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign, a), _mm512_andnot_ps(sign, b));
        const float amax = _mm512_reduce_max_ps(m);
        const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(id)));
        __m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, _mm512_set1_ps(id)));
        _mm_storeu_si128((__m128i *)xq, _mm512_cvtsepi32_epi8(qa));
        _mm_storeu_si128((__m128i *)(xq + 16), _mm512_cvtsepi32_epi8(qb));
        xd[i] = d;
        xs[i] = d * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
    }
}

/* ---- dequantization (prompt processing tiles) --------------------------------------------
 * Bit-identical to the scalar reference: the same f32 operations in the same order (a multiply
 * and a separate add or subtract, never a fused multiply-add). */

/* F16 and BF16 widen exactly (F16C; BF16 is the top half of an f32), 16 at a time. Rows may
 * sit at odd addresses (safetensors, tests): only unaligned loads. */
AVX512 static inline uint16_t ld_u16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

AVX512 void rs_dequant_f16_avx512(const void *row, float *y, int64_t n) {
    const uint8_t *h = row;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + 2 * i))));
    for (; i < n; i++) y[i] = _cvtsh_ss(ld_u16(h + 2 * i));
}

AVX512 void rs_dequant_bf16_avx512(const void *row, float *y, int64_t n) {
    const uint8_t *h = row;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i v =
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + 2 * i)));
        _mm512_storeu_ps(y + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    for (; i < n; i++) y[i] = rs_bf16_to_f32(ld_u16(h + 2 * i));
}

AVX512 void rs_dequant_q4_0_avx512(const void *row, float *y, int64_t n) {
    const uint8_t *b = row;
    const __m512i m4 = _mm512_set1_epi32(0xf), eight = _mm512_set1_epi32(8);
    for (int64_t i = 0; i < n / 32; i++, b += 18, y += 32) {
        const __m512 d = _mm512_set1_ps(f16_scalar(b));
        const __m512i v = u8x16(b + 2);
        _mm512_storeu_ps(
            y,
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, m4), eight))));
        _mm512_storeu_ps(
            y + 16,
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight))));
    }
}

AVX512 void rs_dequant_q4_1_avx512(const void *row, float *y, int64_t n) {
    const uint8_t *b = row;
    const __m512i m4 = _mm512_set1_epi32(0xf);
    for (int64_t i = 0; i < n / 32; i++, b += 20, y += 32) {
        const __m512 d = _mm512_set1_ps(f16_scalar(b)), m = _mm512_set1_ps(f16_scalar(b + 2));
        const __m512i v = u8x16(b + 4);
        _mm512_storeu_ps(
            y, _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(v, m4))), m));
        _mm512_storeu_ps(
            y + 16,
            _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4))), m));
    }
}

AVX512 void rs_dequant_q8_0_avx512(const void *row, float *y, int64_t n) {
    const uint8_t *b = row;
    for (int64_t i = 0; i < n / 32; i++, b += 34, y += 32) {
        const __m512 d = _mm512_set1_ps(f16_scalar(b));
        _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                              _mm_loadu_si128((const __m128i *)(b + 2)))),
                                          d));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                   _mm_loadu_si128((const __m128i *)(b + 18)))),
                                               d));
    }
}

AVX512 void rs_dequant_q4_K_avx512(const void *row, float *y, int64_t n) {
    const uint8_t *b = row;
    const __m512i m4 = _mm512_set1_epi32(0xf);
    for (int64_t i = 0; i < n / 256; i++, b += 144) {
        const float d = f16_scalar(b), dmin = f16_scalar(b + 2);
        for (int c = 0; c < 4; c++, y += 64) {
            int s0, m0, s1, m1;
            rs_k_scale_min(b + 4, 2 * c, &s0, &m0);
            rs_k_scale_min(b + 4, 2 * c + 1, &s1, &m1);
            const __m512 d0 = _mm512_set1_ps(d * (float)s0), dm0 = _mm512_set1_ps(dmin * (float)m0);
            const __m512 d1 = _mm512_set1_ps(d * (float)s1), dm1 = _mm512_set1_ps(dmin * (float)m1);
            for (int h = 0; h < 2; h++) {
                const __m512i v = u8x16(b + 16 + 32 * c + 16 * h);
                _mm512_storeu_ps(
                    y + 16 * h,
                    _mm512_sub_ps(_mm512_mul_ps(d0, _mm512_cvtepi32_ps(_mm512_and_si512(v, m4))),
                                  dm0));
                _mm512_storeu_ps(
                    y + 32 + 16 * h,
                    _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4))),
                                  dm1));
            }
        }
    }
}

/* ---- MXFP4 ------------------------------------------------------------------------------------
 * f32 activations: as Q4_0, a 16-entry table (half scale times the doubled E2M1 values, exact
 * products) looked up with vpermps. Integer path: a byte shuffle maps the codes to the doubled
 * values plus 12 (0..24, unsigned for vpdpbusd); the +12 comes back out through the activations'
 * block sums: sum(w q) = sum((w + 12) q) - 12 sum(q). */

AVX512 static inline __m512 mxfp4_table(uint8_t e) {
    static const float kv[16] = {RS_MXFP4_KVALUES};
    return _mm512_mul_ps(_mm512_set1_ps(rs_e8m0_half(e)), _mm512_loadu_ps(kv));
}

AVX512 static inline void mxfp4_block(const uint8_t *b, const float *x, __m512 acc[2]) {
    const __m512 table = mxfp4_table(b[0]);
    nibbles_accumulate(table, u8x16(b + 1), x, acc);
}

AVX512 float rs_dot_mxfp4_avx512(const void *row, const float *x, int64_t n) {
    return dot_blocks(row, x, n, 17, mxfp4_block);
}

AVX512 void rs_dequant_mxfp4_avx512(const void *row, float *y, int64_t n) {
    const uint8_t *b = row;
    for (int64_t i = 0; i < n / 32; i++, b += 17, y += 32) {
        const __m512 table = mxfp4_table(b[0]);
        const __m512i v = u8x16(b + 1);
        _mm512_storeu_ps(y, _mm512_permutexvar_ps(v, table));
        _mm512_storeu_ps(y + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table));
    }
}

/* rs_e8m0_half of four exponent bytes, one per 32-bit lane. */
VNNI static inline __m128 e8m0_half4(__m128i e) {
    const __m128i normal = _mm_slli_epi32(_mm_sub_epi32(e, _mm_set1_epi32(1)), 23);
    const __m128i sub = _mm_sllv_epi32(_mm_set1_epi32(0x00200000), e);
    return _mm_castsi128_ps(_mm_blendv_epi8(normal, sub, _mm_cmplt_epi32(e, _mm_set1_epi32(2))));
}

/* The exponent bytes of 4 consecutive blocks (bytes 0, 17, 34, 51: byte k of 128-bit lane k of
 * one 64-byte load, inside the 68 bytes of the blocks), one per 32-bit lane: a byte shuffle moves
 * each to the bottom of its lane (index bytes with the top bit set write zeros), a dword permute
 * gathers the four; instead of four byte loads and inserts. */
VNNI static inline __m128i exponents4(const uint8_t *b) {
    /* -256 + k: bytes k, 0xff, 0xff, 0xff */
    const __m512i pick = _mm512_setr_epi32(-256, -1, -1, -1, -255, -1, -1, -1, -254, -1, -1, -1,
                                           -253, -1, -1, -1);
    const __m512i e = _mm512_shuffle_epi8(_mm512_loadu_si512(b), pick);
    const __m512i gather = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castsi512_si128(_mm512_permutexvar_epi32(gather, e));
}

VNNI float rs_qdot_mxfp4_avx512(const void *row, const int8_t *xq, const float *xd,
                                const float *xs, int64_t n) {
    const uint8_t *b = row;
    const int64_t nb = n / 32;
    const __m512i table = _mm512_broadcast_i32x4(_mm_setr_epi8(RS_MXFP4_KVALUES_PLUS12));
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i lane4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m512 acc = _mm512_setzero_ps();
    __m256 acc8 = _mm256_setzero_ps();
    __m128 corr = _mm_setzero_ps();
    float corr1 = 0.0f;
    int64_t i = 0;
    /* Four blocks per step, block k in 128-bit lane k: its low-nibble elements (0-15) in one
     * vector, its high-nibble elements (16-31) in another, and the activations rearranged to
     * match (two 128-bit-lane shuffles), so both vpdpbusd land in the same block's lanes and
     * share one scale: fewer 512-bit operations than putting the weights in element order. */
    for (; i + 4 <= nb; i += 4, b += 68) {
        __m512i raw = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(b + 1)));
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)(b + 18)), 1);
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)(b + 35)), 2);
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)(b + 52)), 3);
        const __m512i lo = _mm512_shuffle_epi8(table, _mm512_and_si512(raw, m4));
        const __m512i hi =
            _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4));
        const __m512i x0 = _mm512_loadu_si512(xq + 32 * i);
        const __m512i x1 = _mm512_loadu_si512(xq + 32 * i + 64);
        const __m512i xl = _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(2, 0, 2, 0));
        const __m512i xh = _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(3, 1, 3, 1));
        const __m512i dot =
            _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xl), hi, xh);
        const __m128 d4 = e8m0_half4(exponents4(b));
        const __m512 s4 = _mm512_castps128_ps512(_mm_mul_ps(d4, _mm_loadu_ps(xd + i)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(lane4, s4), acc);
        corr = _mm_fmadd_ps(d4, _mm_loadu_ps(xs + i), corr);
    }
    for (; i < nb; i++, b += 17) {
        const __m256i w = _mm256_shuffle_epi8(_mm512_castsi512_si256(table), nibbles1(b + 1));
        const __m256i d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), w,
                                              _mm256_loadu_si256((const __m256i *)(xq + 32 * i)));
        const float h = rs_e8m0_half(b[0]);
        acc8 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(h * xd[i]), acc8);
        corr1 += h * xs[i];
    }
    corr = _mm_add_ps(corr, _mm_movehl_ps(corr, corr));
    corr = _mm_add_ss(corr, _mm_movehdup_ps(corr));
    return reduce2(acc, acc8) - 12.0f * (_mm_cvtss_f32(corr) + corr1);
}

#endif
