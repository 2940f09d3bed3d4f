/* cpu_attention_q8.c — decode attention over the 8-bit KV cache with integer dot products
 * (AVX-512 VNNI), on the tiles cpu_kv.c lays out for it (cpu_kv_q8_tiled). cpu_attention.c's
 * attend() walks the positions in chunks and keeps the online softmax; these kernels do a chunk's
 * scores and its values. Half the bytes of the F16 cache are read, with f32-like accuracy.
 *
 * Scores: each query head is rounded to 16 bits per 32 values (cpu_q8_queries: 256 hi + lo, both
 * signed bytes), so q · k over 32 values is two integer sums; vpdpbusd takes 4 keys' values of 16
 * positions at a time against the query's 4 broadcast bytes, where F16 keys take an FMA per value.
 * The keys are stored offset by 128 (unsigned bytes, vpdpbusd's first operand); the low sum
 * starts at −128 Σ q to take it back out. Each 32's sum is scaled by the key scales of its 16
 * positions (one vector) times the query's scale.
 *
 * Values: per 32 values, the softmax weights times the value scales of the chunk's positions are
 * rounded to 16 bits against the largest scale (weights are at most 1), split into bytes, and
 * vpdpbusd accumulates 16 values of 4 positions per instruction for each byte; the integer sums
 * are scaled back once per chunk. Both roundings add ~2e-5 relative error (test_cpu_attention),
 * far below the cache's own 8-bit values; 8-bit queries and weights (one instruction each
 * instead of two) measured 1.6x the logit error of the float path against transformers.
 *
 * Both passes hold several heads (and several tiles or 32s) of independent accumulator chains;
 * the switches make their counts compile-time constants. The next chunk's lines are prefetched
 * as this chunk's are used: a bulk prefetch of the whole next chunk at its start did not help
 * (tools/bench_attention.c, 1 thread at depth 16384: 22 ms either way, 6.8 ms interleaved). */
#include "backend_cpu.h"

#include "tensor_types.h"

#include <math.h>
#include <string.h>

/* Largest |q| in 16 bits: q = 256 hi + lo with both bytes signed (hi = (q + 128) >> 8 stays in
 * -128..127 up to here). */
#define Q16_MAX 32639

void cpu_q8_queries(const float *const *q, int32_t ng, int32_t hd, float scale,
                    q8_queries *out) {
    for (int32_t j = 0; j < ng; j++)
        for (int32_t g = 0; g < hd / 32; g++) {
            const float *x = q[j] + 32 * g;
            float top = 0.0f;
            for (int32_t i = 0; i < 32; i++) top = fmaxf(top, fabsf(x[i]));
            const float inv = top > 0.0f ? (float)Q16_MAX / top : 0.0f;
            int32_t sum = 0;
            for (int32_t i = 0; i < 32; i++) {
                const int32_t v = (int32_t)lrintf(x[i] * inv), hi = (v + 128) >> 8;
                out->hi[j][32 * g + i] = (int8_t)hi;
                out->lo[j][32 * g + i] = (int8_t)(v - 256 * hi);
                sum += v;
            }
            out->d[j][g] = top / (float)Q16_MAX * scale;
            out->corr[j][g] = -128 * sum;
        }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define INLINE inline __attribute__((always_inline))

/* One tile of 16 positions of one KV head: K (kv_dim / 4, 16, 4) from the head's first value,
 * V's first group of 4 slots (the others 4 kv_dim bytes apart), and their scales. */
typedef struct q8_tile {
    const uint8_t *k, *v;
    const float *ks, *vs;
} q8_tile;

static q8_tile tile_at(const kv_pool *pool, size_t toff, int32_t dim0) {
    return (q8_tile){(const uint8_t *)pool->k + toff + (size_t)dim0 * 16,
                     (const uint8_t *)pool->v + toff + (size_t)dim0 * 4,
                     pool->k_scale + toff / 32 + (size_t)dim0 / 32 * 16,
                     pool->v_scale + toff / 32 + (size_t)dim0 / 32 * 16};
}

/* acc + the sums of 4 products u8 · s8 per 32-bit lane. As inline assembly: with the intrinsic
 * GCC 12 copies every long-lived accumulator in and out of a spare register around each
 * instruction, and spills (the value loop ran 2 moves per vpdpbusd). */
VNNI static INLINE __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
    return acc;
}

static int32_t broadcast4(const int8_t *p) {
    int32_t x;
    memcpy(&x, p, 4);
    return x;
}

/* Scores of hg heads (from j0) against nt tiles (from t0): sc[j][16 u + i] = q_j · k_i · scale. The
 * query's high and low bytes go to two accumulators, joined per 32 as 256 hi + lo. */
VNNI static INLINE void score_pass(const q8_tile *tl, const q8_tile *pf, int32_t t0, int nt,
                                   const q8_queries *qq, int32_t j0, int hg, int32_t hd,
                                   float (*sc)[ATTN_CHUNK]) {
    __m512 f[4][4];
#pragma GCC unroll 4
    for (int h = 0; h < hg; h++)
#pragma GCC unroll 4
        for (int u = 0; u < nt; u++) f[h][u] = _mm512_setzero_ps();
    for (int32_t g = 0; g < hd / 32; g++) {
        __m512i hi[4][4], lo[4][4];
#pragma GCC unroll 4
        for (int h = 0; h < hg; h++)
#pragma GCC unroll 4
            for (int u = 0; u < nt; u++) {
                hi[h][u] = _mm512_setzero_si512();
                lo[h][u] = _mm512_set1_epi32(qq->corr[j0 + h][g]);
            }
#pragma GCC unroll 8
        for (int32_t c = 0; c < 8; c++) { /* 4 values of the 32 at a time */
            __m512i k[4];
#pragma GCC unroll 4
            for (int u = 0; u < nt; u++) {
                if (pf) /* the same line of the next chunk's tile */
                    _mm_prefetch((const char *)pf[t0 + u].k + (size_t)(8 * g + c) * 64,
                                 _MM_HINT_T0);
                k[u] = _mm512_loadu_si512(tl[t0 + u].k + (size_t)(8 * g + c) * 64);
            }
#pragma GCC unroll 4
            for (int h = 0; h < hg; h++) {
                const int32_t at = 32 * g + 4 * c;
                const __m512i bh = _mm512_set1_epi32(broadcast4(qq->hi[j0 + h] + at));
                const __m512i bl = _mm512_set1_epi32(broadcast4(qq->lo[j0 + h] + at));
#pragma GCC unroll 4
                for (int u = 0; u < nt; u++) {
                    hi[h][u] = dpbusd(hi[h][u], k[u], bh);
                    lo[h][u] = dpbusd(lo[h][u], k[u], bl);
                }
            }
        }
#pragma GCC unroll 4
        for (int u = 0; u < nt; u++) {
            const __m512 ks = _mm512_loadu_ps(tl[t0 + u].ks + 16 * g);
#pragma GCC unroll 4
            for (int h = 0; h < hg; h++) {
                const __m512i dot = _mm512_add_epi32(_mm512_slli_epi32(hi[h][u], 8), lo[h][u]);
                f[h][u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                          _mm512_mul_ps(ks, _mm512_set1_ps(qq->d[j0 + h][g])),
                                          f[h][u]);
            }
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < hg; h++)
#pragma GCC unroll 4
        for (int u = 0; u < nt; u++) _mm512_storeu_ps(sc[j0 + h] + 16 * (t0 + u), f[h][u]);
}

VNNI void cpu_q8_scores(const kv_pool *pool, const size_t *toff, const size_t *next, int32_t nt,
                        int32_t dim0, const q8_queries *qq, int32_t ng, int32_t hd,
                        float (*sc)[ATTN_CHUNK]) {
    q8_tile tl[ATTN_CHUNK / 16], pf[ATTN_CHUNK / 16];
    for (int32_t u = 0; u < nt; u++) tl[u] = tile_at(pool, toff[u], dim0);
    for (int32_t u = 0; next && u < ATTN_CHUNK / 16; u++) pf[u] = tile_at(pool, next[u], dim0);
    for (int32_t j = 0; j < ng;) {
        const int hg = RS_MIN(4, ng - j);
        for (int32_t t = 0; t < nt;) {
            int n = hg > 2 ? 1 : hg > 1 ? 2 : 4; /* about 8 pairs of chains */
            while (n > nt - t) n /= 2;
#define S(H, N) score_pass(tl, next && j == 0 ? pf : NULL, t, N, qq, j, H, hd, sc)
            switch (hg * 8 + n) {
            case 4 * 8 + 1: S(4, 1); break;
            case 3 * 8 + 1: S(3, 1); break;
            case 2 * 8 + 2: S(2, 2); break;
            case 2 * 8 + 1: S(2, 1); break;
            case 1 * 8 + 4: S(1, 4); break;
            case 1 * 8 + 2: S(1, 2); break;
            default: S(1, 1); break;
            }
#undef S
            t += n;
        }
        j += hg;
    }
}

/* The value scales of 32 g's positions [i0, i1) (0 elsewhere) times 65535 / their largest, in
 * sv[0..nt); returns largest / 65535 (0 when all are 0). Softmax weights are at most 1 (each
 * chunk's are taken under a running maximum at least as large), so weight · sv lies in 0..65535:
 * 16 bits for every head from one reduction per 32. */
VNNI static INLINE float value_scales(const q8_tile *tl, int32_t nt, int32_t g, int32_t i0,
                                      int32_t i1, __m512 *sv) {
    __m512 mx = _mm512_setzero_ps();
    for (int32_t u = 0; u < nt; u++) {
        const int32_t lo = RS_MAX(0, i0 - 16 * u), hi = RS_MIN(16, i1 - 16 * u);
        const __mmask16 m = hi <= lo ? 0 : (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
        sv[u] = _mm512_maskz_loadu_ps(m, tl[u].vs + 16 * g);
        mx = _mm512_max_ps(mx, sv[u]);
    }
    const float top = _mm512_reduce_max_ps(mx);
    const __m512 inv = _mm512_set1_ps(top > 0.0f ? 65535.0f / top : 0.0f);
    for (int32_t u = 0; u < nt; u++) sv[u] = _mm512_mul_ps(sv[u], inv);
    return top / 65535.0f;
}

/* One head's weights for a 32: round(sc[i] · sv[i]) in 16 bits, split into bytes hi · 256 + lo. */
VNNI static INLINE void value_weights(const float *scj, const __m512 *sv, int32_t nt, uint8_t *hi,
                                      uint8_t *lo) {
    for (int32_t u = 0; u < nt; u++) {
        const __m512 w = _mm512_mul_ps(_mm512_loadu_ps(scj + 16 * u), sv[u]);
        const __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(w), _mm512_set1_epi32(65535));
        _mm_storeu_si128((__m128i *)(hi + 16 * u), _mm512_cvtepi32_epi8(_mm512_srli_epi32(q, 8)));
        _mm_storeu_si128((__m128i *)(lo + 16 * u), _mm512_cvtepi32_epi8(q));
    }
}

/* acc[j][32 g ..) += Σ_i sc[j][i] · v_i over the chunk's positions [i0, i1), for hg heads from j0
 * and gp 32s of values from g0: the weights rounded to 16 bits per head and 32, their high and
 * low bytes multiplied apart, 4 positions × 16 values per instruction; each group of 4 slots'
 * values loaded once for the hg heads; hg × gp × 4 independent accumulator chains. */
VNNI static INLINE void value_pass(const q8_tile *tl, const q8_tile *pf, int32_t nt,
                                   int32_t kv_dim, int32_t i0, int32_t i1,
                                   float (*sc)[ATTN_CHUNK], int32_t j0, int hg, int32_t g0,
                                   int gp, float *const *acc) {
    _Alignas(64) uint8_t w[4][4][2][ATTN_CHUNK];
    float step[4];
    for (int g = 0; g < gp; g++) {
        __m512 sv[ATTN_CHUNK / 16];
        step[g] = value_scales(tl, nt, g0 + g, i0, i1, sv);
#pragma GCC unroll 4
        for (int h = 0; h < hg; h++) value_weights(sc[j0 + h], sv, nt, w[h][g][0], w[h][g][1]);
    }
    __m512i a[4][4][2][2]; /* head, 32, high / low weight byte, 16 values */
#pragma GCC unroll 4
    for (int h = 0; h < hg; h++)
#pragma GCC unroll 4
        for (int g = 0; g < gp; g++)
            a[h][g][0][0] = a[h][g][0][1] = a[h][g][1][0] = a[h][g][1][1] =
                _mm512_setzero_si512();
    if (pf) /* the next chunk's scales and the values before i0 (the loop below fetches the rest) */
        for (int32_t u = 0; u < ATTN_CHUNK / 16; u++)
            for (int g = 0; g < gp; g++) {
                _mm_prefetch((const char *)(pf[u].ks + 16 * (g0 + g)), _MM_HINT_T0);
                _mm_prefetch((const char *)(pf[u].vs + 16 * (g0 + g)), _MM_HINT_T0);
                for (int32_t c = 0; c < 4 && 4 * (4 * u + c) < i0; c++) {
                    const char *v = (const char *)pf[u].v + (size_t)c * 4 * kv_dim + 128 * (g0 + g);
                    _mm_prefetch(v, _MM_HINT_T0);
                    _mm_prefetch(v + 64, _MM_HINT_T0);
                }
            }
    for (int32_t c = i0 / 4; c < (i1 + 3) / 4; c++) { /* 4 positions at a time */
        const size_t at = (size_t)(c % 4) * 4 * kv_dim + 128 * (size_t)g0;
        const uint8_t *v = tl[c / 4].v + at;
        __m512i x[4][2];
#pragma GCC unroll 4
        for (int g = 0; g < gp; g++) {
            if (pf) { /* the same lines of the next chunk */
                _mm_prefetch((const char *)pf[c / 4].v + at + 128 * g, _MM_HINT_T0);
                _mm_prefetch((const char *)pf[c / 4].v + at + 128 * g + 64, _MM_HINT_T0);
            }
            x[g][0] = _mm512_loadu_si512(v + 128 * g);
            x[g][1] = _mm512_loadu_si512(v + 128 * g + 64);
        }
#pragma GCC unroll 4
        for (int h = 0; h < hg; h++)
#pragma GCC unroll 4
            for (int g = 0; g < gp; g++)
#pragma GCC unroll 2
                for (int b = 0; b < 2; b++) {
                    const __m512i y = _mm512_set1_epi32(broadcast4((const int8_t *)w[h][g][b] + 4 * c));
                    a[h][g][b][0] = dpbusd(a[h][g][b][0], y, x[g][0]);
                    a[h][g][b][1] = dpbusd(a[h][g][b][1], y, x[g][1]);
                }
    }
#pragma GCC unroll 4
    for (int h = 0; h < hg; h++)
#pragma GCC unroll 4
        for (int g = 0; g < gp; g++) {
            float *o = acc[j0 + h] + 32 * (g0 + g);
            const __m512 s = _mm512_set1_ps(step[g]), s_hi = _mm512_set1_ps(256.0f * step[g]);
#pragma GCC unroll 2
            for (int k = 0; k < 2; k++)
                _mm512_storeu_ps(o + 16 * k,
                                 _mm512_fmadd_ps(s_hi, _mm512_cvtepi32_ps(a[h][g][0][k]),
                                                 _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(a[h][g][1][k]),
                                                                 _mm512_loadu_ps(o + 16 * k))));
        }
}

VNNI void cpu_q8_values(const kv_pool *pool, const size_t *toff, const size_t *next, int32_t nt,
                        int32_t dim0, int32_t i0, int32_t i1, float (*sc)[ATTN_CHUNK], int32_t ng,
                        int32_t hd, float *const *acc) {
    q8_tile tl[ATTN_CHUNK / 16], pf[ATTN_CHUNK / 16];
    for (int32_t u = 0; u < nt; u++) tl[u] = tile_at(pool, toff[u], dim0);
    for (int32_t u = 0; next && u < ATTN_CHUNK / 16; u++) pf[u] = tile_at(pool, next[u], dim0);
    for (int32_t j = 0; j < ng;) {
        const int hg = RS_MIN(4, ng - j);
        for (int32_t g = 0; g < hd / 32;) {
            int n = hg > 2 ? 1 : hg > 1 ? 2 : 4; /* about 16 chains */
            while (n > hd / 32 - g) n /= 2;
#define V(H, N) value_pass(tl, next && j == 0 ? pf : NULL, nt, pool->kv_dim, i0, i1, sc, j, H, g, N, acc)
            switch (hg * 8 + n) {
            case 4 * 8 + 1: V(4, 1); break;
            case 3 * 8 + 1: V(3, 1); break;
            case 2 * 8 + 2: V(2, 2); break;
            case 2 * 8 + 1: V(2, 1); break;
            case 1 * 8 + 4: V(1, 4); break;
            case 1 * 8 + 2: V(1, 2); break;
            default: V(1, 1); break;
            }
#undef V
            g += n;
        }
        j += hg;
    }
}
#else
/* Never called: the 8-bit tiles exist only where the CPU has AVX-512 VNNI (cpu_kv_alloc). */
void cpu_q8_scores(const kv_pool *pool, const size_t *toff, const size_t *next, int32_t nt,
                   int32_t dim0, const q8_queries *qq, int32_t ng, int32_t hd,
                   float (*sc)[ATTN_CHUNK]) {
    (void)pool, (void)toff, (void)next, (void)nt, (void)dim0, (void)qq, (void)ng, (void)hd, (void)sc;
}
void cpu_q8_values(const kv_pool *pool, const size_t *toff, const size_t *next, int32_t nt,
                   int32_t dim0, int32_t i0, int32_t i1, float (*sc)[ATTN_CHUNK], int32_t ng,
                   int32_t hd, float *const *acc) {
    (void)pool, (void)toff, (void)next, (void)nt, (void)dim0, (void)i0, (void)i1, (void)sc, (void)ng, (void)hd,
        (void)acc;
}
#endif
