/* cpu_attention.c — attention over the paged KV pool (cpu_kv.c) on the CPU.
 *
 * out (n_tok, n_head * hd) = softmax(q · Kᵀ · scale) V over each token's visible positions.
 * One task = (token, KV head, split of the positions): the g = n_head / n_head_kv query heads
 * that share a KV head are done together, so each cached key and value is read and converted
 * once for all of them. Positions are walked in chunks of ATTN_CHUNK with an online softmax
 * (running maximum m and sum l per head, the accumulator rescaled when m grows). With AVX-512
 * and the default F16 cache, keys come in tiles of 16 positions (cpu_kv.c) and are scored 16
 * positions per vector, an FMA per dimension and head, 2 or 4 tiles per pass; values are
 * accumulated in passes over slices of the chunk's rows, each slice converted once per 8 heads,
 * with at least 8 independent FMA chains where the head size allows; the next chunk's tiles and
 * rows are prefetched while this one is worked on. The 8-bit cache in its tiles (AVX-512 VNNI)
 * takes integer kernels instead (cpu_attention_q8.c). With AVX-512 the other caches (8-bit rows, BF16, F32, untiled F16) convert each
 * chunk's key and value rows to f32 once (cpu_kv_load_row, the next chunk's rows prefetched),
 * score 16 keys per cross-lane sum and accumulate values like F16 ones (Qwen2.5-0.5B heads at
 * depth 16384: 8-bit 44.9 -> 16.7 ms per token, BF16 47.8 -> 28.2); without AVX-512, plain dot
 * products and axpys on the converted rows. Decode has few (token, KV head) pairs — 3 for
 * SmolLM2 — so long contexts are also split by position (flash-decoding): each split leaves
 * (m, l, acc) per head and the caller merges them, which keeps every thread streaming K/V at
 * depth 4K and beyond. Forked traces decoding together hold their prompt in the same blocks: the
 * prefix their tables share is attended once for all of them (shared_task: every member's query
 * heads against each shared split, whose keys and values stay in L2 across the passes) as splits
 * of each member, and each token's own rest is its last split — the shared K/V is read from
 * memory once per step instead of once per trace (Qwen3-0.6B shape, 8 KV heads of 128: 8 traces
 * at depth 4096, fast, 96-99 -> 141-148 tokens/s; Qwen2.5-0.5B's 2 MB per layer were already
 * served from L3). Batches holding a run of prompt tokens of one sequence go to
 * cpu_attention_prefill.c instead (tiled matrix products). */
#include "backend_cpu.h"

#include "tensor_types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include "cpu_exp512.h"
#include <immintrin.h>
#endif

/* Positions of one split at least: below this the merge costs more than the parallelism. */
#define SPLIT_MIN 128
#define SPLIT_MAX 64
/* Query heads sharing a KV head handled per pass (scores stay on the stack). */
#define GROUP_MAX ATTN_GROUP_MAX

/* ---- small vector kernels: AVX-512 where present, else plain C ------------------------------ */

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f,fma,f16c")))

AVX512 static void axpy_avx512(float a, const float *x, float *y, int32_t n) {
    const __m512 va = _mm512_set1_ps(a);
    int32_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i,
                         _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* s[i] = e^(s[i] - m); returns the sum. */
AVX512 static float exp_sum_avx512(float *s, int32_t n, float m) {
    const __m512 vm = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + i), vm));
        _mm512_storeu_ps(s + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + i), vm));
        _mm512_mask_storeu_ps(s + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

/* Scores of hg query heads against nt tiles of F16 keys from tile t (cpu_kv.c: per dimension,
 * the values of 16 positions side by side; hg and nt compile-time constants at every call):
 * sc[h][16 u + i] = (q_h · key i of tile u) · scale. Per dimension one conversion per tile serves
 * every head and each head is one FMA with its query value broadcast — no cross-lane sums;
 * nt × hg independent accumulator chains keep both FMA pipes busy. The same tiles of the next
 * chunk are fetched meanwhile, a line per tile every other dimension: tiles of one KV head are
 * 2 KiB pieces of 4 KiB blocks (hd 64, 2 KV heads), a pattern the hardware prefetchers miss,
 * and this pass's arithmetic covers about one memory latency. */
AVX512 static inline __attribute__((always_inline)) void score_tiles(
    const uint16_t *const *tile, const uint16_t *const *next, int32_t t, int nt,
    const float *const *q, int hg, int32_t hd, float scale, float (*sc)[ATTN_CHUNK]) {
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 a[4][8];
#pragma GCC unroll 4
    for (int u = 0; u < nt; u++)
#pragma GCC unroll 8
        for (int h = 0; h < hg; h++) a[u][h] = _mm512_setzero_ps();
    for (int32_t d = 0; d < hd; d++) {
        if (d % 2 == 0)
#pragma GCC unroll 4
            for (int u = 0; u < nt; u++)
                _mm_prefetch((const char *)(next[t + u] + 16 * d), _MM_HINT_T0);
        __m512 x[4];
#pragma GCC unroll 4
        for (int u = 0; u < nt; u++)
            x[u] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(tile[t + u] + 16 * d)));
#pragma GCC unroll 8
        for (int h = 0; h < hg; h++) {
            const __m512 w = _mm512_set1_ps(q[h][d]);
#pragma GCC unroll 4
            for (int u = 0; u < nt; u++) a[u][h] = _mm512_fmadd_ps(w, x[u], a[u][h]);
        }
    }
#pragma GCC unroll 8
    for (int h = 0; h < hg; h++)
#pragma GCC unroll 4
        for (int u = 0; u < nt; u++)
            _mm512_storeu_ps(sc[h] + 16 * (t + u), _mm512_mul_ps(a[u][h], vs));
}

/* Tiles scored per pass for hg heads: at least 8 chains where the chunk allows. */
static int pass_tiles(int hg, int32_t left) {
    const int nt = hg <= 3 ? 4 : 2;
    return nt <= left ? nt : left >= 2 ? 2 : 1;
}

/* score_tiles for ng heads, up to 8 per pass, over the chunk's nt tiles (pass_tiles at a time;
 * the switch makes heads and tiles compile-time constants). */
AVX512 static void scores_tiled_f16(const uint16_t *const *tile, const uint16_t *const *next,
                                    int32_t nt, const float *const *q, int32_t ng, int32_t hd,
                                    float scale, float (*sc)[ATTN_CHUNK]) {
    for (int32_t j = 0; j < ng; j += 8) {
        const int hg = RS_MIN(8, ng - j);
        for (int32_t t = 0; t < nt;) {
            const int n = pass_tiles(hg, nt - t);
#define S(H, N) score_tiles(tile, next, t, N, q + j, H, hd, scale, sc + j)
            switch (hg * 4 + n) {
            case 8 * 4 + 2: S(8, 2); break;
            case 8 * 4 + 1: S(8, 1); break;
            case 7 * 4 + 2: S(7, 2); break;
            case 7 * 4 + 1: S(7, 1); break;
            case 6 * 4 + 2: S(6, 2); break;
            case 6 * 4 + 1: S(6, 1); break;
            case 5 * 4 + 2: S(5, 2); break;
            case 5 * 4 + 1: S(5, 1); break;
            case 4 * 4 + 2: S(4, 2); break;
            case 4 * 4 + 1: S(4, 1); break;
            case 3 * 4 + 4: S(3, 4); break;
            case 3 * 4 + 2: S(3, 2); break;
            case 3 * 4 + 1: S(3, 1); break;
            case 2 * 4 + 4: S(2, 4); break;
            case 2 * 4 + 2: S(2, 2); break;
            case 2 * 4 + 1: S(2, 1); break;
            case 1 * 4 + 4: S(1, 4); break;
            case 1 * 4 + 2: S(1, 2); break;
            default: S(1, 1); break;
            }
#undef S
            t += n;
        }
    }
}

/* The largest of s[0..n). */
AVX512 static float max_avx512(const float *s, int32_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(s + i));
    if (i < n)
        m = _mm512_mask_max_ps(m, (__mmask16)((1u << (n - i)) - 1), m,
                               _mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1), s + i));
    return _mm512_reduce_max_ps(m);
}

/* Sums of 16 vectors across their lanes, in one vector (lane i = the sum of a[i]): a tree of
 * interleaves and adds, 45 instructions for the 16 sums where 16 horizontal sums take ~130. */
AVX512 static inline __m512 sum16(const __m512 a[16]) {
    __m512 b[8], c[4], d[2];
    for (int k = 0; k < 8; k++) /* per 128-bit lane: (a0 + a2, b0 + b2, a1 + a3, b1 + b3) */
        b[k] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * k], a[2 * k + 1]),
                             _mm512_unpackhi_ps(a[2 * k], a[2 * k + 1]));
    for (int k = 0; k < 4; k++) { /* per 128-bit lane: the partial sums of 4 vectors, in order */
        const __m512d x = _mm512_castps_pd(b[2 * k]), y = _mm512_castps_pd(b[2 * k + 1]);
        c[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    for (int k = 0; k < 2; k++) /* the four 128-bit lanes of each vector added pairwise */
        d[k] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(d[0], d[1], 0x88),
                         _mm512_shuffle_f32x4(d[0], d[1], 0xdd));
}

/* Keys already converted to f32 rows (rows + i * hd, hd % 16 == 0; the BF16, F32 and 8-bit
 * caches and untiled F16): sc[j][i] = (k_i · q_j) · scale for i in [i0, i1), 16 keys per
 * cross-lane sum. */
AVX512 static void scores_rows_f32(const float *rows, int32_t i0, int32_t i1,
                                   const float *const *q, int32_t ng, int32_t hd, float scale,
                                   float (*sc)[ATTN_CHUNK]) {
    const __m512 vs = _mm512_set1_ps(scale);
    for (int32_t j = 0; j < ng; j++) {
        const float *qj = q[j];
        int32_t i = i0;
        for (; i + 16 <= i1; i += 16) {
            __m512 a[16];
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++)
                a[r] = _mm512_mul_ps(_mm512_loadu_ps(rows + (size_t)(i + r) * hd),
                                     _mm512_loadu_ps(qj));
            for (int32_t c = 16; c < hd; c += 16) {
                const __m512 qc = _mm512_loadu_ps(qj + c);
#pragma GCC unroll 16
                for (int r = 0; r < 16; r++)
                    a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(rows + (size_t)(i + r) * hd + c), qc,
                                           a[r]);
            }
            _mm512_storeu_ps(sc[j] + i, _mm512_mul_ps(sum16(a), vs));
        }
        for (; i < i1; i++) {
            __m512 acc = _mm512_setzero_ps();
            for (int32_t c = 0; c < hd; c += 16)
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(rows + (size_t)i * hd + c),
                                      _mm512_loadu_ps(qj + c), acc);
            sc[j][i] = _mm512_reduce_add_ps(acc) * scale;
        }
    }
}

/* Every line of the next chunk's key and value rows (koff, voff: ATTN_CHUNK rows of n values)
 * and, for the 8-bit cache, of their scales — all asked for at the start of this chunk. */
AVX512 static void prefetch_rows(const kv_pool *pool, const size_t *koff, const size_t *voff,
                                 int32_t n) {
    const size_t bytes = (size_t)n * pool->elem_bytes;
    for (int32_t i = 0; i < ATTN_CHUNK; i++)
        for (size_t b = 0; b < bytes; b += 64) {
            _mm_prefetch((const char *)pool->k + koff[i] + b, _MM_HINT_T0);
            _mm_prefetch((const char *)pool->v + voff[i] + b, _MM_HINT_T0);
        }
    if (pool->type != REASON_KV_Q8) return;
    for (int32_t i = 0; i < ATTN_CHUNK; i += 8) { /* a scale per 32 values: 8 rows per line */
        _mm_prefetch((const char *)(pool->k_scale + koff[i] / 32), _MM_HINT_T0);
        _mm_prefetch((const char *)(pool->v_scale + voff[i] / 32), _MM_HINT_T0);
    }
}

/* 16 values k of a value row: F16 in the pool, or f32 rows converted beforehand. */
AVX512 static inline __attribute__((always_inline)) __m512 value16(const uint8_t *row, int k,
                                                                   bool f32) {
    return f32 ? _mm512_loadu_ps((const float *)row + 16 * k)
               : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)row + k));
}

/* Value vectors (16 values each) per pass over a chunk's rows for hg heads: hg × nv independent
 * accumulator chains (at least 8 where the head size allows: both FMA pipes over the latency)
 * and nv converted vectors within the 32 registers; never more than the n vectors left. */
static int pass_vectors(int hg, int32_t n) {
    int nv = hg <= 2 ? 8 : hg <= 6 ? 4 : 2;
    while (nv > n) nv /= 2;
    return nv;
}

/* Values: acc[j][c ..) += Σ_i sc[j][i] · v_i[c ..) over i in [i0, i1), v_i the row at base +
 * off[i] (F16, or f32 with f32), nv 16-wide vectors from its value c. Each slice of a value row is
 * converted once for hg heads (compile-time constants at every call, like nv): hg × nv
 * accumulators and nv converted values stay in registers, independent FMA chains. pf: the next
 * chunk's rows, whose slice is prefetched meanwhile. */
AVX512 static inline __attribute__((always_inline)) void accumulate_heads(
    const uint8_t *base, const size_t *off, const size_t *pf, int32_t i0, int32_t i1,
    float (*sc)[ATTN_CHUNK], float *const *acc, int32_t c, int hg, int nv, bool f32) {
    __m512 a[8][8];
    const int bytes = nv * 16 * (f32 ? 4 : 2);
    base += (size_t)c * (f32 ? 4 : 2);
#pragma GCC unroll 8
    for (int h = 0; h < hg; h++)
#pragma GCC unroll 8
        for (int k = 0; k < nv; k++) a[h][k] = _mm512_loadu_ps(acc[h] + c + 16 * k);
    for (int32_t i = i0; i < i1; i++) {
        const uint8_t *row = base + off[i];
        if (pf)
#pragma GCC unroll 8
            for (int b = 0; b < bytes; b += 64)
                _mm_prefetch((const char *)base + pf[i] + b, _MM_HINT_T0);
        __m512 v[8];
#pragma GCC unroll 8
        for (int k = 0; k < nv; k++) v[k] = value16(row, k, f32);
#pragma GCC unroll 8
        for (int h = 0; h < hg; h++) {
            const __m512 w = _mm512_set1_ps(sc[h][i]);
#pragma GCC unroll 8
            for (int k = 0; k < nv; k++) a[h][k] = _mm512_fmadd_ps(w, v[k], a[h][k]);
        }
    }
#pragma GCC unroll 8
    for (int h = 0; h < hg; h++)
#pragma GCC unroll 8
        for (int k = 0; k < nv; k++) _mm512_storeu_ps(acc[h] + c + 16 * k, a[h][k]);
}

/* accumulate_heads for ng heads, 8 at a time, in passes of pass_vectors over the rows: each
 * slice of a row is converted once per 8 heads; the first group's passes prefetch the next
 * chunk's rows (pf). Head sizes that are not a multiple of 16: 16 values at a time, then one by
 * one. */
AVX512 static inline __attribute__((always_inline)) void accumulate_rows(
    const uint8_t *base, const size_t *off, const size_t *pf, int32_t i0, int32_t i1,
    float (*sc)[ATTN_CHUNK], int32_t ng, int32_t hd, float *const *acc, bool f32) {
    if (hd % 16 == 0) {
        for (int32_t j = 0; j < ng; j += 8) {
            const int hg = RS_MIN(8, ng - j);
            const size_t *p = j == 0 ? pf : NULL;
            for (int32_t v0 = 0; v0 < hd / 16;) {
                const int nv = pass_vectors(hg, hd / 16 - v0);
#define A(H, NV) accumulate_heads(base, off, p, i0, i1, sc + j, acc + j, 16 * v0, H, NV, f32)
                switch (hg * 16 + nv) { /* heads and vectors as compile-time constants */
                case 8 * 16 + 2: A(8, 2); break;
                case 8 * 16 + 1: A(8, 1); break;
                case 7 * 16 + 2: A(7, 2); break;
                case 7 * 16 + 1: A(7, 1); break;
                case 6 * 16 + 4: A(6, 4); break;
                case 6 * 16 + 2: A(6, 2); break;
                case 6 * 16 + 1: A(6, 1); break;
                case 5 * 16 + 4: A(5, 4); break;
                case 5 * 16 + 2: A(5, 2); break;
                case 5 * 16 + 1: A(5, 1); break;
                case 4 * 16 + 4: A(4, 4); break;
                case 4 * 16 + 2: A(4, 2); break;
                case 4 * 16 + 1: A(4, 1); break;
                case 3 * 16 + 4: A(3, 4); break;
                case 3 * 16 + 2: A(3, 2); break;
                case 3 * 16 + 1: A(3, 1); break;
                case 2 * 16 + 8: A(2, 8); break;
                case 2 * 16 + 4: A(2, 4); break;
                case 2 * 16 + 2: A(2, 2); break;
                case 2 * 16 + 1: A(2, 1); break;
                case 1 * 16 + 8: A(1, 8); break;
                case 1 * 16 + 4: A(1, 4); break;
                case 1 * 16 + 2: A(1, 2); break;
                default: A(1, 1); break;
                }
#undef A
                v0 += nv;
            }
        }
        return;
    }
    for (int32_t j = 0; j < ng; j++) {
        int32_t c = 0;
        for (; c + 16 <= hd; c += 16) {
            __m512 a = _mm512_loadu_ps(acc[j] + c);
            for (int32_t i = i0; i < i1; i++)
                a = _mm512_fmadd_ps(_mm512_set1_ps(sc[j][i]),
                                    value16(base + off[i] + (f32 ? 4 : 2) * (size_t)c, 0, f32), a);
            _mm512_storeu_ps(acc[j] + c, a);
        }
        for (; c < hd; c++) /* head sizes that are not a multiple of 16 */
            for (int32_t i = i0; i < i1; i++) {
                const uint8_t *row = base + off[i];
                acc[j][c] += sc[j][i] * (f32 ? ((const float *)row)[c]
                                             : rs_f16_to_f32(((const uint16_t *)row)[c]));
            }
    }
}

AVX512 static void accumulate_f16_avx512(const uint8_t *base, const size_t *off, const size_t *pf,
                                         int32_t i0, int32_t i1, float (*sc)[ATTN_CHUNK],
                                         int32_t ng, int32_t hd, float *const *acc) {
    accumulate_rows(base, off, pf, i0, i1, sc, ng, hd, acc, false);
}

AVX512 static void accumulate_f32_avx512(const uint8_t *base, const size_t *off, int32_t i0,
                                         int32_t i1, float (*sc)[ATTN_CHUNK], int32_t ng,
                                         int32_t hd, float *const *acc) {
    accumulate_rows(base, off, NULL, i0, i1, sc, ng, hd, acc, true);
}

#endif

static void axpy_scalar(float a, const float *x, float *y, int32_t n) {
    for (int32_t i = 0; i < n; i++) y[i] += a * x[i];
}

static float exp_sum_scalar(float *s, int32_t n, float m) {
    float sum = 0.0f;
    for (int32_t i = 0; i < n; i++) sum += s[i] = expf(s[i] - m);
    return sum;
}

typedef struct attn_kernels {
    tensor_dot_fn dot; /* f32 · f32 */
    void (*axpy)(float a, const float *x, float *y, int32_t n);
    float (*exp_sum)(float *s, int32_t n, float m);
    float (*max)(const float *s, int32_t n);
    bool f16_avx512; /* the fused kernels for tiled F16 keys and F16 values */
} attn_kernels;

static float max_scalar(const float *s, int32_t n) {
    float m = -INFINITY;
    for (int32_t i = 0; i < n; i++) m = s[i] > m ? s[i] : m;
    return m;
}

static attn_kernels kernels(void) {
    attn_kernels k = {tensor_dot_kernel(TENSOR_F32), axpy_scalar, exp_sum_scalar, max_scalar,
                      false};
#if defined(__x86_64__)
    if (tensor_isa_best() >= TENSOR_ISA_AVX512) {
        k.axpy = axpy_avx512;
        k.exp_sum = exp_sum_avx512;
        k.max = max_avx512;
        k.f16_avx512 = true;
    }
#endif
    return k;
}

typedef struct attention_job {
    cpu_backend *cb;
    const kv_pool *pool;
    int32_t layer;
    const float *q;
    const attn_batch *batch;
    int32_t n_head, n_head_kv, head_dim, n_split, window;
    size_t part_stride; /* floats per partial result: m, l, acc (head_dim) */
    float scale;
    const float *sinks;
    float *out;
    attn_kernels kn;
    /* forked traces: positions [0, shared) lie in blocks that the member tokens' sequences all
     * hold (the same block ids), attended by shared_task in splits of shared_len */
    int32_t shared, shared_len, n_member, n_shared_tasks;
    const int32_t *members; /* (n_member) their batch indices */
    const bool *member;     /* (n_tok) */
} attention_job;

/* Shared prefixes: at most this many tokens in a batch, at least this many shared positions,
 * and splits of this many (the split's keys and values stay in L2 across the passes over the
 * members' query heads). */
#define SHARED_MAX_TOK 64
#define SHARED_MIN 256
#define SHARED_SPLIT 256

/* Keys in tiles of 16 positions, read by the AVX-512 kernels (chunks and splits start on a
 * tile). */
static bool keys_tiled(const attention_job *job) {
    return job->kn.f16_avx512 && job->pool->k_tile == 16;
}

/* The first position token t sees: its window's start, or 0. */
static int32_t first_visible(const attention_job *job, int32_t t) {
    const int32_t pos = job->batch->pos[t];
    return job->window > 0 && pos >= job->window ? pos - job->window + 1 : 0;
}

/* 1 / the softmax denominator: l accumulated under maximum m, plus head h's sink logit. */
static float inv_denominator(const attention_job *job, int32_t h, float m, float l) {
    if (!job->sinks) return 1.0f / l;
    return 1.0f / (l + expf(job->sinks[h] - m));
}

/* Offsets of the KV-head rows at positions [lo, hi) of the chunk starting at c0: V's (and K's
 * when not tiled) at off[p - c0], the K tiles starting at c0, c0 + 16, ... in tile[] (F16) and
 * the offsets of those tiles' first slots in toff[]. Every entry is filled (the nearest visible
 * position's) so that prefetching any of them is safe. The 8-bit tiles' kernels need only toff
 * (rows: false); their rows, for head sizes the kernels do not take, are found one position at
 * a time. */
static void chunk_offsets(const attention_job *job, const int32_t *table, int32_t kvh, int32_t c0,
                          int32_t lo, int32_t hi, bool tiled, size_t *off, size_t *koff,
                          const uint16_t **tile, size_t *toff, bool rows) {
    const kv_pool *pool = job->pool;
    const int32_t bs = pool->block_size, dim0 = kvh * job->head_dim;
    const size_t row = (size_t)pool->kv_dim * pool->elem_bytes; /* slot to slot in a block */
    const bool q8 = cpu_kv_q8_tiled(pool);
    if (q8) tiled = false; /* as rows for off and koff */
    /* positions only repeat or step by one: a block's address (two divisions) once per block */
    int32_t p = -1, in = 0;
    size_t v_at = 0, k_at = 0;
    for (int32_t i = 0; rows && i < ATTN_CHUNK; i++) {
        const int32_t want = RS_MIN(hi - 1, RS_MAX(lo, c0 + i));
        if (want != p && p >= 0 && in + 1 < bs && !q8) { /* the next slot of the same block */
            in++;
            v_at += row;
            k_at += tiled ? 0 : row;
        } else if (want != p) {
            in = want % bs;
            const int64_t slot = (int64_t)table[want / bs] * bs + in;
            v_at = cpu_kv_at(pool, true, job->layer, slot, dim0);
            k_at = tiled ? 0 : cpu_kv_at(pool, false, job->layer, slot, dim0);
        }
        p = want;
        off[i] = v_at;
        koff[i] = k_at;
    }
    for (int32_t k = 0; pool->k_tile == 16 && k < ATTN_CHUNK / 16; k++) { /* c0: a tile's first */
        const int32_t first = c0 + 16 * RS_MIN(k, (hi - 1 - c0) / 16);
        const int64_t slot = (int64_t)table[first / bs] * bs + first % bs;
        toff[k] = cpu_kv_offset(pool, job->layer, slot);
        tile[k] = (const uint16_t *)((const uint8_t *)pool->k +
                                     cpu_kv_at(pool, false, job->layer, slot, dim0));
    }
}

/* The online softmax of ng (≤ GROUP_MAX) query vectors qh against positions [p0, p1) of KV head
 * kvh, addressed through block table `table`: per vector the running maximum m, the sum l and
 * the unnormalised accumulator acc (head_dim, zeroed here). */
static void attend(const attention_job *job, const int32_t *table, int32_t kvh, int32_t p0,
                   int32_t p1, const float *const *qh, float *const *acc, int32_t ng,
                   int32_t thread, float *m, float *l) {
    const kv_pool *pool = job->pool;
    const int32_t hd = job->head_dim;
    const attn_kernels *kn = &job->kn;
    /* tiled keys: chunks start on a tile (positions before p0 are scored, then skipped) */
    const bool tiled = keys_tiled(job);
    /* the 8-bit tiles: the integer kernels where the head size suits them, else rows */
    const bool q8 = tiled && cpu_kv_q8_tiled(pool);
    const bool q8_kernels = q8 && hd % 32 == 0 && hd <= ATTN_HD_MAX;
    q8_queries qq_store, *qq = q8_kernels ? &qq_store : NULL;
    if (q8_kernels) cpu_q8_queries(qh, ng, hd, job->scale, qq);
    float *rows = job->cb->attn_k + (size_t)thread * ATTN_CHUNK * 1024; /* (ATTN_CHUNK, hd) */
    const bool f16_values = kn->f16_avx512 && pool->type == REASON_KV_F16;
    /* other caches: rows converted to f32 once per chunk (keys and values in the two halves of
     * the thread's scratch), then scored 16 keys per cross-lane sum and accumulated like F16 */
    const bool rows_fused = kn->f16_avx512 && !tiled && hd % 16 == 0 && hd <= 512;
    float sc[GROUP_MAX][ATTN_CHUNK];
    for (int32_t j = 0; j < ng; j++) {
        memset(acc[j], 0, (size_t)hd * sizeof(float));
        m[j] = -INFINITY;
        l[j] = 0.0f;
    }
    /* chunk offsets double-buffered: the next chunk's are known (and prefetched) while this one
     * is worked on */
    size_t off[2][ATTN_CHUNK], koff[2][ATTN_CHUNK], toff[2][ATTN_CHUNK / 16];
    const uint16_t *tile[2][ATTN_CHUNK / 16];
    int32_t c0 = tiled ? p0 - p0 % 16 : p0, b = 0;
    if (c0 < p1)
        chunk_offsets(job, table, kvh, c0, RS_MAX(c0, p0), RS_MIN(p1, c0 + ATTN_CHUNK), tiled,
                      off[0], koff[0], tile[0], toff[0], !q8_kernels);
    for (; c0 < p1; c0 += ATTN_CHUNK, b ^= 1) {
        const int32_t lo = RS_MAX(c0, p0), hi = RS_MIN(p1, c0 + ATTN_CHUNK);
        const int32_t i0 = lo - c0, i1 = hi - c0; /* the chunk's visible positions */
        const int32_t cn = c0 + ATTN_CHUNK, nb = cn < p1 ? b ^ 1 : b;
        if (cn < p1)
            chunk_offsets(job, table, kvh, cn, cn, RS_MIN(p1, cn + ATTN_CHUNK), tiled, off[nb],
                          koff[nb], tile[nb], toff[nb], !q8_kernels);
        const int32_t nt = (hi - c0 + 15) / 16; /* tiles holding visible positions */
#if defined(__x86_64__)
        if (tiled && !q8)
            scores_tiled_f16(tile[b], tile[nb], nt, qh, ng, hd, job->scale, sc);
#endif
        if (q8_kernels)
            cpu_q8_scores(pool, toff[b], nb != b ? toff[nb] : NULL, nt, kvh * hd, qq, ng, hd, sc);
        if (!tiled || (q8 && !q8_kernels)) {
#if defined(__x86_64__)
            if (rows_fused && nb != b) /* the next chunk's rows, while these are worked on */
                prefetch_rows(pool, koff[nb], off[nb], hd);
#endif
            for (int32_t i = i0; i < i1; i++)
                cpu_kv_load_row(pool, false, koff[b][i], rows + (size_t)i * hd, hd);
#if defined(__x86_64__)
            if (rows_fused)
                scores_rows_f32(rows, i0, i1, qh, ng, hd, job->scale, sc);
#endif
            for (int32_t j = 0; j < ng && !rows_fused; j++)
                for (int32_t i = i0; i < i1; i++)
                    sc[j][i] = kn->dot(rows + (size_t)i * hd, qh[j], hd) * job->scale;
        }
        for (int32_t j = 0; j < ng; j++) {
            const float cm = kn->max(sc[j] + i0, i1 - i0);
            if (cm > m[j]) { /* rescale what was accumulated under the old maximum */
                const float r = expf(m[j] - cm);
                l[j] *= r;
                for (int32_t i = 0; i < hd; i++) acc[j][i] *= r;
                m[j] = cm;
            }
            l[j] += kn->exp_sum(sc[j] + i0, i1 - i0, m[j]);
        }
        if (q8_kernels)
            cpu_q8_values(pool, toff[b], nb != b ? toff[nb] : NULL, nt, kvh * hd, i0, i1, sc, ng,
                          hd, acc);
#if defined(__x86_64__)
        if (f16_values)
            accumulate_f16_avx512((const uint8_t *)pool->v, off[b], off[nb], i0, i1, sc, ng,
                                  hd, acc);
        if (!f16_values && rows_fused) { /* value rows converted once, then as F16 ones */
            float *vrows = rows + (size_t)ATTN_CHUNK * hd;
            size_t voff[ATTN_CHUNK];
            for (int32_t i = i0; i < i1; i++) {
                cpu_kv_load_row(pool, true, off[b][i], vrows + (size_t)i * hd, hd);
                voff[i] = (size_t)i * hd * sizeof(float);
            }
            accumulate_f32_avx512((const uint8_t *)vrows, voff, i0, i1, sc, ng, hd, acc);
        }
#endif
        if (!f16_values && !rows_fused && !q8_kernels) {
            for (int32_t i = i0; i < i1; i++) {
                cpu_kv_load_row(pool, true, off[b][i], rows, hd);
                for (int32_t j = 0; j < ng; j++) kn->axpy(sc[j][i], rows, acc[j], hd);
            }
        }
    }
}

/* The positions of token t that split sp of the per-token tasks covers: with a shared prefix
 * (job->shared > 0) its members' splits below n_shared belong to the shared tasks and the last
 * one is the rest [shared, pos]. */
static void task_range(const attention_job *job, int32_t t, int32_t sp, int32_t *p0, int32_t *p1) {
    const int32_t first = first_visible(job, t), last = job->batch->pos[t] + 1;
    if (job->shared > 0 && job->member[t]) {
        *p0 = sp == job->n_split - 1 ? job->shared : last;
        *p1 = last;
        return;
    }
    const int32_t n_pos = last - first;
    const int32_t per = (n_pos + job->n_split - 1) / job->n_split;
    const int32_t len = keys_tiled(job) ? (per + 15) / 16 * 16 : per; /* whole tiles */
    *p0 = first + RS_MIN(n_pos, sp * len);
    *p1 = first + RS_MIN(n_pos, sp * len + len);
}

/* acc pointer of (token t, head h): the output itself, or its partial result of split sp. */
static float *acc_of(const attention_job *job, int32_t t, int32_t h, int32_t sp) {
    if (job->n_split == 1) return job->out + ((size_t)t * job->n_head + h) * job->head_dim;
    return job->cb->attn_part +
           (((size_t)t * job->n_head + h) * job->n_split + sp) * job->part_stride + 2;
}

/* Stores the ng results: normalised into the output (one split) or m and l before the
 * partial accumulator. */
static void finish(const attention_job *job, float *const *acc, const int32_t *head,
                   int32_t ng, const float *m, const float *l) {
    for (int32_t j = 0; j < ng; j++) {
        if (job->n_split == 1) {
            const float inv = inv_denominator(job, head[j], m[j], l[j]);
            for (int32_t i = 0; i < job->head_dim; i++) acc[j][i] *= inv;
        } else {
            acc[j][-2] = m[j];
            acc[j][-1] = l[j];
        }
    }
}

/* The g query heads of KV head kvh of each of the n tokens (batch indices tok) against positions
 * [p0, p1) through `table`, GROUP_MAX query vectors per pass, into split sp of their results. */
static void attend_tokens(const attention_job *job, const int32_t *table, int32_t kvh,
                          int32_t p0, int32_t p1, const int32_t *tok, int32_t n, int32_t sp,
                          int32_t thread) {
    const int32_t g = job->n_head / job->n_head_kv, n_v = n * g;
    for (int32_t v0 = 0; v0 < n_v; v0 += GROUP_MAX) {
        const int32_t ng = RS_MIN(GROUP_MAX, n_v - v0);
        float m[GROUP_MAX], l[GROUP_MAX], *acc[GROUP_MAX];
        const float *qh[GROUP_MAX];
        int32_t head[GROUP_MAX];
        for (int32_t j = 0; j < ng; j++) {
            const int32_t t = tok[(v0 + j) / g];
            head[j] = kvh * g + (v0 + j) % g;
            qh[j] = job->q + ((size_t)t * job->n_head + head[j]) * job->head_dim;
            acc[j] = acc_of(job, t, head[j], sp);
        }
        attend(job, table, kvh, p0, p1, qh, acc, ng, thread, m, l);
        finish(job, acc, head, ng, m, l);
    }
}

static void shared_task(const attention_job *job, int32_t task, int32_t thread);

/* Task (token, KV head, split): the g query heads of the KV head together, so each cached key and
 * value is read and converted once for all of them. With a shared prefix the job's first tasks
 * are the shared ones. */
static void attention_task(void *arg, int32_t task, int32_t thread) {
    const attention_job *job = arg;
    if (task < job->n_shared_tasks) {
        shared_task(job, task, thread);
        return;
    }
    task -= job->n_shared_tasks;
    const int32_t n_split = job->n_split;
    const int32_t sp = task % n_split, kvh = (task / n_split) % job->n_head_kv;
    const int32_t t = task / n_split / job->n_head_kv;
    if (job->shared > 0 && job->member[t] && sp < n_split - 1) return; /* a shared task's */
    int32_t p0, p1;
    task_range(job, t, sp, &p0, &p1);
    attend_tokens(job, job->batch->block_tables[t], kvh, p0, p1, &t, 1, sp, thread);
}

/* Shared task (KV head, split i of the shared prefix [0, shared)): every member token's query
 * heads against the blocks the members share — the split's keys and values come from memory
 * once and stay in the cache for the other passes, instead of once per trace. Its results are
 * split i of each member. */
static void shared_task(const attention_job *job, int32_t task, int32_t thread) {
    const int32_t kvh = task % job->n_head_kv, i = task / job->n_head_kv;
    const int32_t p0 = i * job->shared_len, p1 = RS_MIN(job->shared, p0 + job->shared_len);
    attend_tokens(job, job->batch->block_tables[job->members[0]], kvh, p0, p1, job->members,
                  job->n_member, i, thread);
}

/* The prefix that the batch's tokens share with its first token: the leading blocks with the
 * same ids in their tables, whole, seen entirely by every token of the group (full attention);
 * tokens sharing fewer than SHARED_MIN positions are not members. Returns the positions shared
 * by all members (a multiple of the block size), 0 when fewer than two tokens share them. */
static int32_t shared_prefix(attention_job *job, int32_t *members, bool *member) {
    const attn_batch *b = job->batch;
    const int32_t bs = job->pool->block_size;
    job->n_member = 0;
    if (job->window > 0 || b->n_tok < 2 || b->n_tok > SHARED_MAX_TOK) return 0;
    const int32_t *lead = b->block_tables[0];
    int32_t shared = INT32_MAX;
    for (int32_t t = 0; t < b->n_tok; t++) {
        const int32_t *tab = b->block_tables[t];
        const int32_t whole = (RS_MIN(b->pos[0], b->pos[t]) + 1) / bs; /* seen by both */
        int32_t n = 0;
        while (n < whole && tab[n] == lead[n]) n++;
        member[t] = n * bs >= SHARED_MIN;
        if (member[t]) {
            members[job->n_member++] = t;
            shared = RS_MIN(shared, n * bs);
        }
    }
    if (job->n_member < 2) {
        for (int32_t t = 0; t < b->n_tok; t++) member[t] = false;
        job->n_member = 0;
        return 0;
    }
    return shared;
}

/* out of (token, head) = Σ_s e^(m_s - M) acc_s / Σ_s e^(m_s - M) l_s. */
static void merge_splits(const attention_job *job) {
    const int32_t hd = job->head_dim;
    for (int32_t t = 0; t < job->batch->n_tok; t++) {
        for (int32_t h = 0; h < job->n_head; h++) {
            const float *part = job->cb->attn_part +
                                ((size_t)t * job->n_head + h) * job->n_split * job->part_stride;
            float *out = job->out + ((size_t)t * job->n_head + h) * hd;
            float mx = -INFINITY, l = 0.0f;
            for (int32_t s = 0; s < job->n_split; s++)
                if (part[s * job->part_stride + 1] > 0.0f && part[s * job->part_stride] > mx)
                    mx = part[s * job->part_stride];
            memset(out, 0, (size_t)hd * sizeof *out);
            for (int32_t s = 0; s < job->n_split; s++) {
                const float *p = part + s * job->part_stride;
                if (!(p[1] > 0.0f)) continue; /* an empty split */
                const float w = expf(p[0] - mx);
                l += w * p[1];
                job->kn.axpy(w, p + 2, out, hd);
            }
            const float inv = inv_denominator(job, h, mx, l);
            for (int32_t i = 0; i < hd; i++) out[i] *= inv;
        }
    }
}

void cpu_attention(backend *be, const kv_pool *pool, int32_t layer, const float *q,
                   const attn_batch *batch, const attn_params *ap, float *out) {
    cpu_backend *cb = cpu(be);
    const int32_t n_head = ap->n_head, n_head_kv = ap->n_head_kv, head_dim = ap->head_dim;
    attention_job job = {.cb = cb, .pool = pool, .layer = layer, .q = q, .batch = batch,
                         .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = head_dim,
                         .n_split = 1, .window = ap->window, .scale = ap->scale,
                         .sinks = ap->sinks, .out = out, .kn = kernels()};
    if (cpu_attention_prefill(cb, pool, layer, q, batch, ap, out, job.kn.exp_sum)) return;
    const int32_t pairs = batch->n_tok * n_head_kv;
    int32_t longest = 0;
    for (int32_t t = 0; t < batch->n_tok; t++)
        longest = RS_MAX(longest, batch->pos[t] + 1 - first_visible(&job, t));
    int32_t members[SHARED_MAX_TOK];
    bool member[SHARED_MAX_TOK];
    const int32_t shared = shared_prefix(&job, members, member);
    int32_t n_split = 1;
    if (shared > 0) {
        job.shared_len = RS_MAX(SHARED_SPLIT, (shared / SPLIT_MAX + 15) / 16 * 16);
        n_split = (shared + job.shared_len - 1) / job.shared_len + 1; /* + the rest */
    } else if (cb->n_threads > 1 && pairs < 4 * cb->n_threads && longest >= 2 * SPLIT_MIN) {
        n_split = (8 * cb->n_threads + pairs - 1) / pairs;
        n_split = RS_MIN(n_split, RS_MIN(SPLIT_MAX, longest / SPLIT_MIN));
    }
    if (n_split > 1) {
        job.part_stride = (size_t)(head_dim + 2 + 15) / 16 * 16;
        const size_t need = (size_t)batch->n_tok * n_head * n_split * job.part_stride;
        if (need > cb->attn_part_cap) {
            free(cb->attn_part);
            cb->attn_part = rs_aligned_alloc(need * sizeof(float), "attention partial results");
            cb->attn_part_cap = cb->attn_part ? need : 0;
        }
        if (cb->attn_part) job.n_split = n_split;
    }
    if (job.n_split > 1 && shared > 0) { /* else the tokens go their own ways */
        job.shared = shared;
        job.members = members;
        job.member = member;
        job.n_shared_tasks = (n_split - 1) * n_head_kv;
    }
    thread_pool_run(cb->pool, attention_task, &job, job.n_shared_tasks + pairs * job.n_split);
    if (job.n_split > 1) merge_splits(&job);
}
