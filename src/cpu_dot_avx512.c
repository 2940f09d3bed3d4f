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

AVX512 float rs_dot_q8_0_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 32; i++, b += 34, x += 32) {
        __m512 q0 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2))));
        __m512 q1 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18))));
        __m512 d = _mm512_set1_ps(f16_scalar(b));
        acc0 = _mm512_fmadd_ps(_mm512_mul_ps(q0, d), _mm512_loadu_ps(x), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_mul_ps(q1, d), _mm512_loadu_ps(x + 16), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* Q4_0: table[q] = d * (q - 8); bytes 0-15: elements 0-15 (low nibble), 16-31 (high). */
AVX512 float rs_dot_q4_0_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m512 centred = _mm512_sub_ps(iota16(), _mm512_set1_ps(8.0f));
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 32; i++, b += 18, x += 32) {
        __m512 table = _mm512_mul_ps(_mm512_set1_ps(f16_scalar(b)), centred);
        __m512i v = u8x16(b + 2);
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, table), _mm512_loadu_ps(x), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table),
                               _mm512_loadu_ps(x + 16), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* Q4_1: table[q] = d * q + m. */
AVX512 float rs_dot_q4_1_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m512 iota = iota16();
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 32; i++, b += 20, x += 32) {
        __m512 table = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(f16_scalar(b)), iota),
                                     _mm512_set1_ps(f16_scalar(b + 2)));
        __m512i v = u8x16(b + 4);
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, table), _mm512_loadu_ps(x), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table),
                               _mm512_loadu_ps(x + 16), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static inline void scale_min_k4(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q4_K: per sub-block, table[q] = (d * sc) * q - dmin * m. */
AVX512 float rs_dot_q4_K_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m512 iota = iota16();
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 256; i++, b += 144) {
        const float d = f16_scalar(b), dmin = f16_scalar(b + 2);
        const uint8_t *qs = b + 16;
        for (int c = 0; c < 4; c++, qs += 32, x += 64) {
            int s0, m0, s1, m1;
            scale_min_k4(b + 4, 2 * c, &s0, &m0);
            scale_min_k4(b + 4, 2 * c + 1, &s1, &m1);
            __m512 t0 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(d * (float)s0), iota),
                                      _mm512_set1_ps(dmin * (float)m0));
            __m512 t1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(d * (float)s1), iota),
                                      _mm512_set1_ps(dmin * (float)m1));
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

/* Q6_K: each 16-lane vector is exactly one scale group; w = (d * sc) * (q - 32). */
AVX512 float rs_dot_q6_K_avx512(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m512i m4 = _mm512_set1_epi32(0xf), m30 = _mm512_set1_epi32(0x30);
    const __m512i off = _mm512_set1_epi32(32);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / 256; i++, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = f16_scalar(b + 208);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, x += 128) {
            for (int s = 0; s < 2; s++) {
                const int k = 16 * s;
                __m512i la = u8x16(ql + k), lb = u8x16(ql + 32 + k), hb = u8x16(qh + k);
                __m512i q0 = _mm512_or_si512(_mm512_and_si512(la, m4),
                                             _mm512_and_si512(_mm512_slli_epi32(hb, 4), m30));
                __m512i q1 = _mm512_or_si512(_mm512_and_si512(lb, m4),
                                             _mm512_and_si512(_mm512_slli_epi32(hb, 2), m30));
                __m512i q2 = _mm512_or_si512(_mm512_srli_epi32(la, 4), _mm512_and_si512(hb, m30));
                __m512i q3 = _mm512_or_si512(_mm512_srli_epi32(lb, 4),
                                             _mm512_and_si512(_mm512_srli_epi32(hb, 2), m30));
#define W(q, g)                                                                                    \
    _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, off)),                                    \
                  _mm512_set1_ps(d *(float)sc[2 * (g) + s]))
                acc0 = _mm512_fmadd_ps(W(q0, 0), _mm512_loadu_ps(x + k), acc0);
                acc1 = _mm512_fmadd_ps(W(q1, 1), _mm512_loadu_ps(x + 32 + k), acc1);
                acc0 = _mm512_fmadd_ps(W(q2, 2), _mm512_loadu_ps(x + 64 + k), acc0);
                acc1 = _mm512_fmadd_ps(W(q3, 3), _mm512_loadu_ps(x + 96 + k), acc1);
#undef W
            }
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

#endif
