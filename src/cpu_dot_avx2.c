/* cpu_dot_avx2.c — AVX2 + FMA + F16C dot products of one weight row with an f32 vector.
 *
 * Compiled without -mavx2: each function carries a target attribute and is only called after
 * tensor_types.c has checked the CPU, so the library still runs on CPUs without AVX2.
 * Quantized blocks: the weights are widened from bytes straight to 8 x i32 (vpmovzx/sx from
 * memory), converted to f32 and multiplied into per-block accumulators; the block scale is
 * applied once per block (or sub-block) with an FMA. Loads are all unaligned: blocks of 18 or
 * 34 bytes have no alignment. Summation order differs from the scalar reference, so results
 * agree within f32 rounding, not bit for bit. */
#include "tensor_types.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float f16_scalar(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* 8 bytes at p, zero- or sign-extended to 8 x i32. */
AVX2 static inline __m256i u8x8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}
AVX2 static inline __m256i i8x8(const uint8_t *p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

AVX2 float rs_dot_f32_avx2(const void *row, const float *x, int64_t n) {
    const float *w = row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) {
        float wi;
        memcpy(&wi, (const uint8_t *)row + 4 * i, 4);
        sum += wi * x[i];
    }
    return sum;
}

AVX2 float rs_dot_f16_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *w = row;
#define H8(k) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * (k))))
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(H8(i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(H8(i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(H8(i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(H8(i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(H8(i), _mm256_loadu_ps(x + i), a0);
#undef H8
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += f16_scalar(w + 2 * i) * x[i];
    return sum;
}

AVX2 float rs_dot_bf16_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *w = row;
    /* bf16 is the top half of an f32: widen to 32 bits and shift into place. */
#define B8(k)                                                                                      \
    _mm256_castsi256_ps(_mm256_slli_epi32(                                                         \
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * (k)))), 16))
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(B8(i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(B8(i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(B8(i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(B8(i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(B8(i), _mm256_loadu_ps(x + i), a0);
#undef B8
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) {
        uint32_t bits = (uint32_t)(w[2 * i] | w[2 * i + 1] << 8) << 16;
        float wi;
        memcpy(&wi, &bits, 4);
        sum += wi * x[i];
    }
    return sum;
}

/* Q8_0: 34-byte blocks, f16 d + 32 x int8. */
AVX2 float rs_dot_q8_0_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 32; i++, b += 34, x += 32) {
        __m256 p0 = _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8(b + 2)), _mm256_loadu_ps(x));
        __m256 p1 = _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8(b + 10)), _mm256_loadu_ps(x + 8));
        p0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i8x8(b + 18)), _mm256_loadu_ps(x + 16), p0);
        p1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i8x8(b + 26)), _mm256_loadu_ps(x + 24), p1);
        __m256 d = _mm256_set1_ps(f16_scalar(b));
        acc0 = _mm256_fmadd_ps(d, p0, acc0);
        acc1 = _mm256_fmadd_ps(d, p1, acc1);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

/* Q4_0: 18-byte blocks, f16 d + 16 bytes; byte j = element j (low) | element j+16 (high). */
AVX2 float rs_dot_q4_0_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i mask = _mm256_set1_epi32(0xf), eight = _mm256_set1_epi32(8);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 32; i++, b += 18, x += 32) {
        __m256i v0 = u8x8(b + 2), v1 = u8x8(b + 10);
        __m256 q0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v0, mask), eight));
        __m256 q1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v1, mask), eight));
        __m256 q2 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v0, 4), eight));
        __m256 q3 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v1, 4), eight));
        __m256 p0 = _mm256_mul_ps(q0, _mm256_loadu_ps(x));
        __m256 p1 = _mm256_mul_ps(q1, _mm256_loadu_ps(x + 8));
        p0 = _mm256_fmadd_ps(q2, _mm256_loadu_ps(x + 16), p0);
        p1 = _mm256_fmadd_ps(q3, _mm256_loadu_ps(x + 24), p1);
        __m256 d = _mm256_set1_ps(f16_scalar(b));
        acc0 = _mm256_fmadd_ps(d, p0, acc0);
        acc1 = _mm256_fmadd_ps(d, p1, acc1);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

/* Q4_1: 20-byte blocks, f16 d, f16 m + nibbles as Q4_0: sum = d * sum(q x) + m * sum(x). */
AVX2 float rs_dot_q4_1_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i mask = _mm256_set1_epi32(0xf);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 32; i++, b += 20, x += 32) {
        __m256i v0 = u8x8(b + 4), v1 = u8x8(b + 12);
        __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
        __m256 x2 = _mm256_loadu_ps(x + 16), x3 = _mm256_loadu_ps(x + 24);
        __m256 p0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, mask)), x0);
        __m256 p1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, mask)), x1);
        p0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), x2, p0);
        p1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), x3, p1);
        __m256 xs = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
        __m256 d = _mm256_set1_ps(f16_scalar(b)), m = _mm256_set1_ps(f16_scalar(b + 2));
        acc0 = _mm256_fmadd_ps(d, _mm256_add_ps(p0, p1), acc0);
        acc1 = _mm256_fmadd_ps(m, xs, acc1);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

/* Q4_K: 144-byte super-blocks of 256; per sub-block of 32: sum = d*sc * sum(q x) - dmin*m *
 * sum(x). Sub-blocks 2c, 2c+1 share qs[32c..32c+31] (low, high nibbles). */
AVX2 float rs_dot_q4_K_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i mask = _mm256_set1_epi32(0xf);
    __m256 acc = _mm256_setzero_ps(), accm = acc;
    for (int64_t i = 0; i < n / 256; i++, b += 144) {
        const float d = f16_scalar(b), dmin = f16_scalar(b + 2);
        const uint8_t *qs = b + 16;
        for (int c = 0; c < 4; c++, qs += 32, x += 64) {
            int s0, m0, s1, m1;
            rs_k_scale_min(b + 4, 2 * c, &s0, &m0);
            rs_k_scale_min(b + 4, 2 * c + 1, &s1, &m1);
            __m256 plo = _mm256_setzero_ps(), phi = plo, xlo = plo, xhi = plo;
            for (int k = 0; k < 32; k += 8) {
                __m256i v = u8x8(qs + k);
                __m256 xl = _mm256_loadu_ps(x + k), xh = _mm256_loadu_ps(x + 32 + k);
                plo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, mask)), xl, plo);
                phi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), xh, phi);
                xlo = _mm256_add_ps(xlo, xl);
                xhi = _mm256_add_ps(xhi, xh);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)s0), plo, acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)s1), phi, acc);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * (float)m0), xlo, accm);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * (float)m1), xhi, accm);
        }
    }
    return hsum(_mm256_sub_ps(acc, accm));
}

/* Q5_K: 176-byte super-blocks: Q4_K's fields plus qh[32] at byte 16 (qs at 48); bit j of qh[l]
 * is the fifth bit of element 32j + l. The qh bytes, widened and shifted left by 4, sit in four
 * vectors (l = 0-7, ..., 24-31); sub-block 2c takes bit 4 of them, 2c+1 bit 5 (after >> 1), and
 * they move down by 2 per pair. */
AVX2 float rs_dot_q5_K_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i mask = _mm256_set1_epi32(0xf), m16 = _mm256_set1_epi32(0x10);
    __m256 acc = _mm256_setzero_ps(), accm = acc;
    for (int64_t i = 0; i < n / 256; i++, b += 176) {
        const float d = f16_scalar(b), dmin = f16_scalar(b + 2);
        const uint8_t *qs = b + 48;
        __m256i h[4];
        for (int k = 0; k < 4; k++) h[k] = _mm256_slli_epi32(u8x8(b + 16 + 8 * k), 4);
        for (int c = 0; c < 4; c++, qs += 32, x += 64) {
            int s0, m0, s1, m1;
            rs_k_scale_min(b + 4, 2 * c, &s0, &m0);
            rs_k_scale_min(b + 4, 2 * c + 1, &s1, &m1);
            __m256 plo = _mm256_setzero_ps(), phi = plo, xlo = plo, xhi = plo;
            for (int k = 0; k < 4; k++) {
                const __m256i v = u8x8(qs + 8 * k);
                const __m256i ql = _mm256_or_si256(_mm256_and_si256(v, mask),
                                                   _mm256_and_si256(h[k], m16));
                const __m256i qu = _mm256_or_si256(
                    _mm256_srli_epi32(v, 4), _mm256_and_si256(_mm256_srli_epi32(h[k], 1), m16));
                h[k] = _mm256_srli_epi32(h[k], 2);
                const __m256 xl = _mm256_loadu_ps(x + 8 * k), xh = _mm256_loadu_ps(x + 32 + 8 * k);
                plo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ql), xl, plo);
                phi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(qu), xh, phi);
                xlo = _mm256_add_ps(xlo, xl);
                xhi = _mm256_add_ps(xhi, xh);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)s0), plo, acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)s1), phi, acc);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * (float)m0), xlo, accm);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * (float)m1), xhi, accm);
        }
    }
    return hsum(_mm256_sub_ps(acc, accm));
}

/* Q6_K: 210-byte super-blocks: ql[128], qh[64], int8 scales[16], f16 d. In half h, group g of
 * 32: nibble of ql[64h + 32(g&1) + l] (low for g < 2), bits 2g, 2g+1 of qh[32h + l]; q - 32. */
AVX2 float rs_dot_q6_K_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i m4 = _mm256_set1_epi32(0xf), m30 = _mm256_set1_epi32(0x30);
    const __m256i off = _mm256_set1_epi32(32);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = f16_scalar(b + 208);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, x += 128) {
            /* p[g][s]: sum over the 16 elements of scale group (g, s) of q x */
            __m256 p[4][2];
            for (int s = 0; s < 2; s++) {
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int k = 16 * s; k < 16 * s + 16; k += 8) {
                    __m256i la = u8x8(ql + k), lb = u8x8(ql + 32 + k), hb = u8x8(qh + k);
                    __m256i q0 = _mm256_or_si256(_mm256_and_si256(la, m4),
                                                 _mm256_and_si256(_mm256_slli_epi32(hb, 4), m30));
                    __m256i q1 = _mm256_or_si256(_mm256_and_si256(lb, m4),
                                                 _mm256_and_si256(_mm256_slli_epi32(hb, 2), m30));
                    __m256i q2 =
                        _mm256_or_si256(_mm256_srli_epi32(la, 4), _mm256_and_si256(hb, m30));
                    __m256i q3 = _mm256_or_si256(_mm256_srli_epi32(lb, 4),
                                                 _mm256_and_si256(_mm256_srli_epi32(hb, 2), m30));
                    a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q0, off)),
                                         _mm256_loadu_ps(x + k), a0);
                    a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q1, off)),
                                         _mm256_loadu_ps(x + 32 + k), a1);
                    a2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q2, off)),
                                         _mm256_loadu_ps(x + 64 + k), a2);
                    a3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q3, off)),
                                         _mm256_loadu_ps(x + 96 + k), a3);
                }
                p[0][s] = a0;
                p[1][s] = a1;
                p[2][s] = a2;
                p[3][s] = a3;
            }
            /* scale index of group g, half s of it: 2g + s within this half's 8 scales */
            for (int g = 0; g < 4; g++)
                for (int s = 0; s < 2; s++)
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc[2 * g + s]), p[g][s], acc);
        }
    }
    return hsum(acc);
}


/* ---- Q5_0, Q5_1 with f32 activations -----------------------------------------------------------
 * The 32 weights of a block as bytes in element order, the fifth bit merged in (0..31, or q - 16
 * as a signed byte for Q5_0), then widened 8 at a time (vpmovsx/zxbd), converted and multiplied
 * into per-block sums; the block scale is applied once per block. */

/* qh (4 bytes at p) as 32 bytes: byte j = 0xff where bit j is set, else 0 (byte j of the
 * broadcast qh spread to 8 bytes, each tested against its own bit). */
AVX2 static inline __m256i qh_mask32(const uint8_t *p) {
    uint32_t qh;
    memcpy(&qh, p, 4);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i v =
        _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread), bit);
    return _mm256_cmpeq_epi8(v, bit);
}

/* Q5_0 (22 B): f16 d, u32 qh, nibbles; w = d * (q - 16). As a signed byte, q - 16 is the nibble
 * with bits 4-7 set when the fifth bit is clear (0xf0 | nib = nib - 16), the nibble when set. */
AVX2 float rs_dot_q5_0_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i f0 = _mm256_set1_epi8((char)0xf0);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 32; i++, b += 22, x += 32) {
        const __m256i clear = _mm256_andnot_si256(qh_mask32(b + 2), f0);
        const __m128i r = _mm_loadu_si128((const __m128i *)(b + 6));
        const __m128i lo = _mm_or_si128(_mm_and_si128(r, m4), _mm256_castsi256_si128(clear));
        const __m128i hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(r, 4), m4),
                                        _mm256_extracti128_si256(clear, 1));
#define F8(q) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))
        __m256 p0 = _mm256_mul_ps(F8(lo), _mm256_loadu_ps(x));
        __m256 p1 = _mm256_mul_ps(F8(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(x + 8));
        p0 = _mm256_fmadd_ps(F8(hi), _mm256_loadu_ps(x + 16), p0);
        p1 = _mm256_fmadd_ps(F8(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(x + 24), p1);
#undef F8
        const __m256 d = _mm256_set1_ps(f16_scalar(b));
        acc0 = _mm256_fmadd_ps(d, p0, acc0);
        acc1 = _mm256_fmadd_ps(d, p1, acc1);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

/* Q5_1 (24 B): f16 d, f16 m, u32 qh, nibbles; w = d*q + m: sum = d * sum(q x) + m * sum(x). */
AVX2 float rs_dot_q5_1_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i b4 = _mm256_set1_epi8(0x10);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 32; i++, b += 24, x += 32) {
        const __m256i set = _mm256_and_si256(qh_mask32(b + 4), b4);
        const __m128i r = _mm_loadu_si128((const __m128i *)(b + 8));
        const __m128i lo = _mm_or_si128(_mm_and_si128(r, m4), _mm256_castsi256_si128(set));
        const __m128i hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(r, 4), m4),
                                        _mm256_extracti128_si256(set, 1));
        const __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
        const __m256 x2 = _mm256_loadu_ps(x + 16), x3 = _mm256_loadu_ps(x + 24);
#define F8(q) _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q))
        __m256 p0 = _mm256_mul_ps(F8(lo), x0);
        __m256 p1 = _mm256_mul_ps(F8(_mm_srli_si128(lo, 8)), x1);
        p0 = _mm256_fmadd_ps(F8(hi), x2, p0);
        p1 = _mm256_fmadd_ps(F8(_mm_srli_si128(hi, 8)), x3, p1);
#undef F8
        const __m256 xs = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
        const __m256 d = _mm256_set1_ps(f16_scalar(b)), m = _mm256_set1_ps(f16_scalar(b + 2));
        acc0 = _mm256_fmadd_ps(d, _mm256_add_ps(p0, p1), acc0);
        acc1 = _mm256_fmadd_ps(m, xs, acc1);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

/* ---- 8-bit activations: integer dot products ------------------------------------------------
 * vpmaddubsw multiplies unsigned weight bytes by signed activation bytes into 16-bit pair sums
 * (no saturation: nibbles are <= 15, and Q8_0 goes through |w| and sign(x, w), <= 127 * 128 * 2),
 * vpmaddwd by ones widens to 8 x i32; one block of 32 per vector, scaled once. */

AVX2 static inline __m256 block_dot_u8(__m256i w, const int8_t *x) {
    __m256i p = _mm256_maddubs_epi16(w, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

AVX2 static inline __m256i nib32(const uint8_t *a) {
    __m128i r = _mm_loadu_si128((const __m128i *)a), m4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(r, 4), m4), _mm_and_si128(r, m4));
}

AVX2 float rs_qdot_q4_0_avx2(const void *row, const int8_t *xq, const float *xd, const float *xs,
                             int64_t n) {
    const uint8_t *b = row;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    float corr = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= n / 32; i += 2, b += 36) {
        const float w0 = f16_scalar(b), w1 = f16_scalar(b + 18);
        acc0 = _mm256_fmadd_ps(block_dot_u8(nib32(b + 2), xq + 32 * i),
                               _mm256_set1_ps(w0 * xd[i]), acc0);
        acc1 = _mm256_fmadd_ps(block_dot_u8(nib32(b + 20), xq + 32 * i + 32),
                               _mm256_set1_ps(w1 * xd[i + 1]), acc1);
        corr += w0 * xs[i] + w1 * xs[i + 1];
    }
    for (; i < n / 32; i++, b += 18) {
        const float w0 = f16_scalar(b);
        acc0 = _mm256_fmadd_ps(block_dot_u8(nib32(b + 2), xq + 32 * i),
                               _mm256_set1_ps(w0 * xd[i]), acc0);
        corr += w0 * xs[i];
    }
    return hsum(_mm256_add_ps(acc0, acc1)) - 8.0f * corr;
}

AVX2 float rs_qdot_q4_1_avx2(const void *row, const int8_t *xq, const float *xd, const float *xs,
                             int64_t n) {
    const uint8_t *b = row;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    float corr = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= n / 32; i += 2, b += 40) {
        acc0 = _mm256_fmadd_ps(block_dot_u8(nib32(b + 4), xq + 32 * i),
                               _mm256_set1_ps(f16_scalar(b) * xd[i]), acc0);
        acc1 = _mm256_fmadd_ps(block_dot_u8(nib32(b + 24), xq + 32 * i + 32),
                               _mm256_set1_ps(f16_scalar(b + 20) * xd[i + 1]), acc1);
        corr += f16_scalar(b + 2) * xs[i] + f16_scalar(b + 22) * xs[i + 1];
    }
    for (; i < n / 32; i++, b += 20) {
        acc0 = _mm256_fmadd_ps(block_dot_u8(nib32(b + 4), xq + 32 * i),
                               _mm256_set1_ps(f16_scalar(b) * xd[i]), acc0);
        corr += f16_scalar(b + 2) * xs[i];
    }
    return hsum(_mm256_add_ps(acc0, acc1)) + corr;
}

AVX2 float rs_qdot_q8_0_avx2(const void *row, const int8_t *xq, const float *xd, const float *xs,
                             int64_t n) {
    (void)xs;
    const uint8_t *b = row;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int64_t i = 0;
#define BLK(p, xp)                                                                                 \
    __extension__({                                                                                \
        __m256i w_ = _mm256_loadu_si256((const __m256i *)((p) + 2));                               \
        __m256i x_ = _mm256_loadu_si256((const __m256i *)(xp));                                    \
        __m256i s_ = _mm256_maddubs_epi16(_mm256_sign_epi8(w_, w_), _mm256_sign_epi8(x_, w_));     \
        _mm256_cvtepi32_ps(_mm256_madd_epi16(s_, _mm256_set1_epi16(1)));                           \
    })
    for (; i + 2 <= n / 32; i += 2, b += 68) {
        acc0 = _mm256_fmadd_ps(BLK(b, xq + 32 * i), _mm256_set1_ps(f16_scalar(b) * xd[i]), acc0);
        acc1 = _mm256_fmadd_ps(BLK(b + 34, xq + 32 * i + 32),
                               _mm256_set1_ps(f16_scalar(b + 34) * xd[i + 1]), acc1);
    }
    for (; i < n / 32; i++, b += 34)
        acc0 = _mm256_fmadd_ps(BLK(b, xq + 32 * i), _mm256_set1_ps(f16_scalar(b) * xd[i]), acc0);
#undef BLK
    return hsum(_mm256_add_ps(acc0, acc1));
}

AVX2 float rs_qdot_q4_K_avx2(const void *row, const int8_t *xq, const float *xd, const float *xs,
                             int64_t n) {
    const uint8_t *b = row;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    float corr = 0.0f;
    for (int64_t i = 0; i < n / 256; i++, b += 144, xq += 256, xd += 8, xs += 8) {
        const float d = f16_scalar(b), dmin = f16_scalar(b + 2);
        for (int c = 0; c < 4; c++) {
            int s0, m0, s1, m1;
            rs_k_scale_min(b + 4, 2 * c, &s0, &m0);
            rs_k_scale_min(b + 4, 2 * c + 1, &s1, &m1);
            __m256i r = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * c));
            acc0 = _mm256_fmadd_ps(block_dot_u8(_mm256_and_si256(r, m4), xq + 64 * c),
                                   _mm256_set1_ps(d * (float)s0 * xd[2 * c]), acc0);
            acc1 = _mm256_fmadd_ps(block_dot_u8(_mm256_and_si256(_mm256_srli_epi16(r, 4), m4),
                                                xq + 64 * c + 32),
                                   _mm256_set1_ps(d * (float)s1 * xd[2 * c + 1]), acc1);
            corr += dmin * ((float)m0 * xs[2 * c] + (float)m1 * xs[2 * c + 1]);
        }
    }
    return hsum(_mm256_add_ps(acc0, acc1)) - corr;
}

/* ---- 8-bit activations: Q5_0, Q5_1, Q5_K, Q6_K ------------------------------------------------
 * The 5-bit types are 4-bit nibbles plus a fifth bit per element, put into bit 4 of each byte
 * (0..31, unsigned for vpmaddubsw); Q5_0's -16 and Q5_1's min come back through the activation
 * block sums as for Q4_0/Q4_1. */

/* The 32 bits of qh as 32 bytes: byte j = 0x10 where bit j is set (the fifth bit, in place). */
AVX2 static inline __m256i qh_bytes(const uint8_t *p) {
    uint32_t qh;
    memcpy(&qh, p, 4);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

/* Q5_0 (22 B): f16 d, u32 qh, 16 nibble bytes; w = d * (q - 16). Q5_1 (24 B): f16 d, f16 m, qh,
 * nibbles; w = d * q + m. */
AVX2 float rs_qdot_q5_0_avx2(const void *row, const int8_t *xq, const float *xd, const float *xs,
                             int64_t n) {
    const uint8_t *b = row;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    float corr = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= n / 32; i += 2, b += 44) {
        const float w0 = f16_scalar(b), w1 = f16_scalar(b + 22);
        acc0 = _mm256_fmadd_ps(
            block_dot_u8(_mm256_or_si256(nib32(b + 6), qh_bytes(b + 2)), xq + 32 * i),
            _mm256_set1_ps(w0 * xd[i]), acc0);
        acc1 = _mm256_fmadd_ps(
            block_dot_u8(_mm256_or_si256(nib32(b + 28), qh_bytes(b + 24)), xq + 32 * i + 32),
            _mm256_set1_ps(w1 * xd[i + 1]), acc1);
        corr += w0 * xs[i] + w1 * xs[i + 1];
    }
    for (; i < n / 32; i++, b += 22) {
        const float w0 = f16_scalar(b);
        acc0 = _mm256_fmadd_ps(
            block_dot_u8(_mm256_or_si256(nib32(b + 6), qh_bytes(b + 2)), xq + 32 * i),
            _mm256_set1_ps(w0 * xd[i]), acc0);
        corr += w0 * xs[i];
    }
    return hsum(_mm256_add_ps(acc0, acc1)) - 16.0f * corr;
}

AVX2 float rs_qdot_q5_1_avx2(const void *row, const int8_t *xq, const float *xd, const float *xs,
                             int64_t n) {
    const uint8_t *b = row;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    float corr = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= n / 32; i += 2, b += 48) {
        acc0 = _mm256_fmadd_ps(
            block_dot_u8(_mm256_or_si256(nib32(b + 8), qh_bytes(b + 4)), xq + 32 * i),
            _mm256_set1_ps(f16_scalar(b) * xd[i]), acc0);
        acc1 = _mm256_fmadd_ps(
            block_dot_u8(_mm256_or_si256(nib32(b + 32), qh_bytes(b + 28)), xq + 32 * i + 32),
            _mm256_set1_ps(f16_scalar(b + 24) * xd[i + 1]), acc1);
        corr += f16_scalar(b + 2) * xs[i] + f16_scalar(b + 26) * xs[i + 1];
    }
    for (; i < n / 32; i++, b += 24) {
        acc0 = _mm256_fmadd_ps(
            block_dot_u8(_mm256_or_si256(nib32(b + 8), qh_bytes(b + 4)), xq + 32 * i),
            _mm256_set1_ps(f16_scalar(b) * xd[i]), acc0);
        corr += f16_scalar(b + 2) * xs[i];
    }
    return hsum(_mm256_add_ps(acc0, acc1)) + corr;
}

/* Q5_K: Q4_K plus qh[32]; bit j of qh[l] is the fifth bit of element 32j + l, so sub-block j
 * takes bit j of all 32 qh bytes. */
AVX2 float rs_qdot_q5_K_avx2(const void *row, const int8_t *xq, const float *xd, const float *xs,
                             int64_t n) {
    const uint8_t *b = row;
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    float corr = 0.0f;
    for (int64_t i = 0; i < n / 256; i++, b += 176, xq += 256, xd += 8, xs += 8) {
        const float d = f16_scalar(b), dmin = f16_scalar(b + 2);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
        for (int c = 0; c < 4; c++) {
            int s0, m0, s1, m1;
            rs_k_scale_min(b + 4, 2 * c, &s0, &m0);
            rs_k_scale_min(b + 4, 2 * c + 1, &s1, &m1);
            const __m256i r = _mm256_loadu_si256((const __m256i *)(b + 48 + 32 * c));
            /* the bit shifted down to bit 0 of its byte, then up to bit 4 (no carry across
             * bytes: the value is 0 or 1 before the left shift) */
            const __m256i h0 = _mm256_and_si256(
                _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c)), one);
            const __m256i h1 = _mm256_and_si256(
                _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c + 1)), one);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(r, m4), _mm256_slli_epi16(h0, 4));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(r, 4), m4),
                                               _mm256_slli_epi16(h1, 4));
            acc0 = _mm256_fmadd_ps(block_dot_u8(lo, xq + 64 * c),
                                   _mm256_set1_ps(d * (float)s0 * xd[2 * c]), acc0);
            acc1 = _mm256_fmadd_ps(block_dot_u8(hi, xq + 64 * c + 32),
                                   _mm256_set1_ps(d * (float)s1 * xd[2 * c + 1]), acc1);
            corr += dmin * ((float)m0 * xs[2 * c] + (float)m1 * xs[2 * c + 1]);
        }
    }
    return hsum(_mm256_add_ps(acc0, acc1)) - corr;
}

/* Q6_K: q in 0..63 is unsigned for vpmaddubsw; the -32 is a second vpmaddubsw of 32 against the
 * same activations, subtracted in the 16-bit pair sums (|pairs| <= 2 * 63 * 127, no saturation).
 * vpmaddwd then applies the int8 scales, one per 16 elements = 8 pair lanes. */
AVX2 static inline __m256 q6_block(__m256i q, const int8_t *x, int s0, int s1) {
    const __m256i xv = _mm256_loadu_si256((const __m256i *)x);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, xv),
                                       _mm256_maddubs_epi16(_mm256_set1_epi8(32), xv));
    const __m256i sc = _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, sc));
}

AVX2 float rs_qdot_q6_K_avx2(const void *row, const int8_t *xq, const float *xd, const float *xs,
                             int64_t n) {
    (void)xs;
    const uint8_t *b = row;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 256; i++, b += 210) {
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = f16_scalar(b + 208);
        for (int h = 0; h < 2; h++, xq += 128, xd += 4, sc += 8) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
            /* group g: nibble of l(g&1) (low for g < 2), bits 2g, 2g+1 of hb moved to bits 4, 5
             * (masking with 0x30 drops what the 16-bit shifts carry across bytes) */
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                               _mm256_and_si256(hb, m30));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                               _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
            acc0 = _mm256_fmadd_ps(q6_block(q0, xq, sc[0], sc[1]), _mm256_set1_ps(d * xd[0]), acc0);
            acc1 = _mm256_fmadd_ps(q6_block(q1, xq + 32, sc[2], sc[3]), _mm256_set1_ps(d * xd[1]),
                                   acc1);
            acc0 = _mm256_fmadd_ps(q6_block(q2, xq + 64, sc[4], sc[5]), _mm256_set1_ps(d * xd[2]),
                                   acc0);
            acc1 = _mm256_fmadd_ps(q6_block(q3, xq + 96, sc[6], sc[7]), _mm256_set1_ps(d * xd[3]),
                                   acc1);
        }
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

/* ---- MXFP4 ------------------------------------------------------------------------------------
 * One byte shuffle turns the 32 codes of a block into the signed doubled E2M1 values (-12..12,
 * tensor_types.h), so the block is 32 small integers times the half scale 2^(e - 128). */

AVX2 static inline __m256i mxfp4_values(const uint8_t *b) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_setr_epi8(RS_MXFP4_KVALUES));
    return _mm256_shuffle_epi8(table, nib32(b + 1));
}

AVX2 float rs_dot_mxfp4_avx2(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 32; i++, b += 17, x += 32) {
        const __m256i v = mxfp4_values(b);
        const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
#define F8(q) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))
        __m256 p0 = _mm256_mul_ps(F8(lo), _mm256_loadu_ps(x));
        __m256 p1 = _mm256_mul_ps(F8(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(x + 8));
        p0 = _mm256_fmadd_ps(F8(hi), _mm256_loadu_ps(x + 16), p0);
        p1 = _mm256_fmadd_ps(F8(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(x + 24), p1);
#undef F8
        const __m256 d = _mm256_set1_ps(rs_e8m0_half(b[0]));
        acc0 = _mm256_fmadd_ps(d, p0, acc0);
        acc1 = _mm256_fmadd_ps(d, p1, acc1);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

/* Integer path: the shuffle maps codes to the doubled values plus 12 (0..24, unsigned for
 * vpmaddubsw); the +12 comes back out through the activation block sums, as Q4_0's -8. */
AVX2 static inline __m256 mxfp4_block_q8(const uint8_t *b, const int8_t *x) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_setr_epi8(RS_MXFP4_KVALUES_PLUS12));
    return block_dot_u8(_mm256_shuffle_epi8(table, nib32(b + 1)), x);
}

AVX2 float rs_qdot_mxfp4_avx2(const void *row, const int8_t *xq, const float *xd, const float *xs,
                              int64_t n) {
    const uint8_t *b = row;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    float corr = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= n / 32; i += 2, b += 34) {
        const float h0 = rs_e8m0_half(b[0]), h1 = rs_e8m0_half(b[17]);
        acc0 = _mm256_fmadd_ps(mxfp4_block_q8(b, xq + 32 * i), _mm256_set1_ps(h0 * xd[i]), acc0);
        acc1 = _mm256_fmadd_ps(mxfp4_block_q8(b + 17, xq + 32 * i + 32),
                               _mm256_set1_ps(h1 * xd[i + 1]), acc1);
        corr += h0 * xs[i] + h1 * xs[i + 1];
    }
    for (; i < n / 32; i++, b += 17) {
        const float h0 = rs_e8m0_half(b[0]);
        acc0 = _mm256_fmadd_ps(mxfp4_block_q8(b, xq + 32 * i), _mm256_set1_ps(h0 * xd[i]), acc0);
        corr += h0 * xs[i];
    }
    return hsum(_mm256_add_ps(acc0, acc1)) - 12.0f * corr;
}

#endif
