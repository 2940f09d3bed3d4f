/* cpu_attention_prefill.c — attention for runs of prompt tokens as blocked matrix products (flash
 * attention on the CPU), used by cpu_attention when a batch holds a run of >= PREFILL_MIN tokens.
 *
 * A run is consecutive tokens of one sequence in the batch (same block table, positions p, p+1,
 * ...). It is cut into query tiles of up to tq tokens. With the g = n_head / n_head_kv query heads
 * that share a KV head, a tile is the matrix Q (R = n·g rows, row i·g + j = token i, head j; hd
 * columns), pre-multiplied by scale. One task = (tile, KV head): it walks the positions the tile
 * sees, [first visible position of its first token, position of its last token], in chunks of
 * PREFILL_KC, converts the chunk's keys and values to f32 once (K, V: nc × hd), and
 *   S = Q · Kᵀ                          (R × nc)
 *   row r keeps positions [first visible(pos_r), pos_r] (causal mask and window); only chunks
 *   that cross those bounds for some row need the mask
 *   online softmax per row: m = running maximum, l = running Σ e^(s - m); O and l are rescaled
 *   by e^(m_old - m) when m grows
 *   O += P · V                          (R × hd), P = e^(S - m), 0 where masked
 * and ends with out = O / (l + e^(sink_h - m)) (the sink only in the denominator).
 * Every cached key and value row is converted once per tile instead of once per token, and the
 * products run at matrix-product speed: with AVX-512 in a transposed form of the same steps
 * (queries as columns, prefill_task_avx512), elsewhere with sgemm (OpenBLAS when built with it,
 * else plain loops; REASON_CPU_ATTN_PREFILL=generic forces this form, for tests). Tiles are
 * independent, so the thread pool runs (tile, KV head) tasks, the longest (last) tiles first. */
#include "backend_cpu.h"

#include "tensor_types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef REASON_HAVE_BLAS
#include <cblas.h>
#endif
#if defined(__x86_64__)
#include "cpu_exp512.h"
#include <immintrin.h>
#endif

/* Shortest run of one sequence's tokens worth tiling. Measured at depth 4096 (2 threads): 8
 * tokens break even with the per-token path (which splits positions across threads and streams
 * K/V once per token instead of converting it per tile), 16 are 2x faster. */
#define PREFILL_MIN 16
/* Query rows (tokens × grouped heads) per tile: one 64-column register tile of the AVX-512
 * products, Qᵀ and Oᵀ in L1; 128 was 10-30% slower at head_dim 128 (measured, KC 64..256). */
#define TILE_ROWS 64
#define TILE_TOKENS_MAX 64
/* Positions per chunk: Sᵀ (KC × R) and the converted K and V (KC × hd) stay in L1/L2. */
#define PREFILL_KC 128

typedef struct pf_tile {
    int32_t t0, n; /* tokens [t0, t0 + n) of the batch, consecutive positions of one sequence */
} pf_tile;

typedef struct prefill_job {
    const kv_pool *pool;
    int32_t layer;
    const float *q;
    const attn_batch *batch;
    const attn_params *ap;
    float *out;
    const pf_tile *tiles;
    int32_t n_tiles, g, tq;
    int32_t rp_max;    /* query rows of the largest tile, padded (padded_rows) */
    float *scratch;    /* (n_threads, per_thread) */
    size_t per_thread; /* floats */
    float (*exp_sum)(float *s, int32_t n, float m);
} prefill_job;

/* One thread's scratch: Q, O (rows × hd), K, V (KC × hd), S (rows × KC), m, l and the visible
 * ranges lo, hi (rows each; rows = the largest tile's, padded). */
typedef struct pf_scratch {
    float *Q, *O, *K, *V, *S, *m, *l;
    int32_t *lo, *hi;
} pf_scratch;

static pf_scratch carve(const prefill_job *job, int32_t thread) {
    const size_t rows = (size_t)job->rp_max, hd = (size_t)job->ap->head_dim;
    pf_scratch sc;
    sc.Q = job->scratch + (size_t)thread * job->per_thread;
    sc.O = sc.Q + rows * hd;
    sc.K = sc.O + rows * hd;
    sc.V = sc.K + (size_t)PREFILL_KC * hd;
    sc.S = sc.V + (size_t)PREFILL_KC * hd;
    sc.m = sc.S + rows * PREFILL_KC;
    sc.l = sc.m + rows;
    sc.lo = (int32_t *)(sc.l + rows);
    sc.hi = sc.lo + rows;
    return sc;
}

/* ---- key and value rows to f32 -------------------------------------------------------------- */

/* dst (nc, hd) = the rows of KV head kvh at positions [c0, c0 + nc) of one sequence. */
static void load_rows(const prefill_job *job, bool v, const int32_t *table, int32_t c0,
                      int32_t nc, int32_t kvh, float *dst) {
    const kv_pool *pool = job->pool;
    const int32_t hd = job->ap->head_dim, bs = pool->block_size;
    for (int32_t i = 0; i < nc; i++) {
        const int32_t p = c0 + i;
        const int64_t slot = (int64_t)table[p / bs] * bs + p % bs;
        cpu_kv_load_row(pool, v, cpu_kv_at(pool, v, job->layer, slot, kvh * hd),
                        dst + (size_t)i * hd, hd);
    }
}

/* ---- the two products (row-major) ------------------------------------------------------------ */

#if !defined(REASON_HAVE_BLAS) && defined(__GNUC__) && !defined(__clang__)
#define PF_VECTORIZE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define PF_VECTORIZE
#endif

/* C (m, n) = A (m, k) · Bᵀ, B (n, k). */
PF_VECTORIZE static void gemm_abt(int32_t m, int32_t n, int32_t k, const float *A, const float *B,
                                  float *C) {
#ifdef REASON_HAVE_BLAS
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, A, k, B, k, 0.0f, C, n);
#else
    for (int32_t i = 0; i < m; i++)
        for (int32_t j = 0; j < n; j++) {
            const float *a = A + (size_t)i * k, *b = B + (size_t)j * k;
            float acc = 0.0f;
            for (int32_t c = 0; c < k; c++) acc += a[c] * b[c];
            C[(size_t)i * n + j] = acc;
        }
#endif
}

/* C (m, n) += A (m, k) · B (k, n). */
PF_VECTORIZE static void gemm_ab_acc(int32_t m, int32_t n, int32_t k, const float *A,
                                     const float *B, float *C) {
#ifdef REASON_HAVE_BLAS
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, k, B, n, 1.0f, C, n);
#else
    for (int32_t i = 0; i < m; i++) {
        float *c = C + (size_t)i * n;
        for (int32_t l = 0; l < k; l++) {
            const float a = A[(size_t)i * k + l];
            if (a == 0.0f) continue; /* masked positions */
            const float *b = B + (size_t)l * n;
            for (int32_t j = 0; j < n; j++) c[j] += a * b[j];
        }
    }
#endif
}

/* ---- one (tile, KV head) --------------------------------------------------------------------- */

/* Query rows as the AVX-512 form lays them out: 16 at a time, or 64 (the products' wide
 * register tile) once padding costs at most half. */
static int32_t padded_rows(int32_t rows) {
    return rows > 32 ? (rows + 63) / 64 * 64 : (rows + 15) / 16 * 16;
}

static int32_t first_visible(int32_t window, int32_t pos) {
    return window > 0 && pos >= window ? pos - window + 1 : 0;
}

static void prefill_task(void *arg, int32_t task, int32_t thread) {
    const prefill_job *job = arg;
    const attn_params *ap = job->ap;
    const int32_t n_kv = ap->n_head_kv, hd = ap->head_dim, g = job->g, n_head = ap->n_head;
    /* the last tiles see the most positions: hand them out first so that the short ones fill
     * the gaps at the end */
    const pf_tile tile = job->tiles[job->n_tiles - 1 - task / n_kv];
    const int32_t kvh = task % n_kv, rows = tile.n * g;
    const pf_scratch sc = carve(job, thread);
    float *Q = sc.Q, *O = sc.O, *K = sc.K, *V = sc.V, *S = sc.S, *m = sc.m, *l = sc.l;

    for (int32_t i = 0; i < tile.n; i++)
        for (int32_t j = 0; j < g; j++) {
            const float *src = job->q + ((size_t)(tile.t0 + i) * n_head + kvh * g + j) * hd;
            float *dst = Q + ((size_t)i * g + j) * hd;
            for (int32_t c = 0; c < hd; c++) dst[c] = src[c] * ap->scale;
        }
    memset(O, 0, (size_t)rows * hd * sizeof *O);
    for (int32_t r = 0; r < rows; r++) m[r] = -INFINITY, l[r] = 0.0f;

    const int32_t *pos = job->batch->pos + tile.t0, *table = job->batch->block_tables[tile.t0];
    const int32_t p_first = pos[0], p_last = pos[tile.n - 1];
    const int32_t lo = first_visible(ap->window, p_first), hi = p_last + 1;
    /* every row sees [all_see, p_first]: chunks inside it need no mask */
    const int32_t all_see = first_visible(ap->window, p_last);
    /* every chunk of [lo, hi) is seen by some row: the position's own token, or the first token */
    for (int32_t c0 = lo; c0 < hi; c0 += PREFILL_KC) {
        const int32_t nc = RS_MIN(PREFILL_KC, hi - c0);
        load_rows(job, false, table, c0, nc, kvh, K);
        load_rows(job, true, table, c0, nc, kvh, V);
        gemm_abt(rows, nc, hd, Q, K, S);
        const bool masked = c0 + nc - 1 > p_first || c0 < all_see;
        for (int32_t r = 0; r < rows; r++) {
            float *s = S + (size_t)r * nc;
            int32_t a = 0, b = nc;
            if (masked) {
                const int32_t p = pos[r / g];
                a = RS_MAX(0, first_visible(ap->window, p) - c0);
                b = RS_MIN(nc, p + 1 - c0);
                if (a >= b) {
                    memset(s, 0, (size_t)nc * sizeof *s);
                    continue;
                }
            }
            float cm = s[a];
            for (int32_t i = a + 1; i < b; i++) cm = s[i] > cm ? s[i] : cm;
            if (cm > m[r]) { /* rescale what was accumulated under the old maximum */
                if (l[r] > 0.0f) {
                    const float rr = expf(m[r] - cm);
                    l[r] *= rr;
                    float *o = O + (size_t)r * hd;
                    for (int32_t c = 0; c < hd; c++) o[c] *= rr;
                }
                m[r] = cm;
            }
            l[r] += job->exp_sum(s + a, b - a, m[r]);
            if (a > 0) memset(s, 0, (size_t)a * sizeof *s);
            if (b < nc) memset(s + b, 0, (size_t)(nc - b) * sizeof *s);
        }
        gemm_ab_acc(rows, hd, nc, S, V, O);
    }

    for (int32_t r = 0; r < rows; r++) {
        const int32_t h = kvh * g + r % g;
        const float den = l[r] + (ap->sinks ? expf(ap->sinks[h] - m[r]) : 0.0f);
        const float inv = 1.0f / den;
        const float *o = O + (size_t)r * hd;
        float *dst = job->out + ((size_t)(tile.t0 + r / g) * n_head + h) * hd;
        for (int32_t c = 0; c < hd; c++) dst[c] = o[c] * inv;
    }
}

/* ---- the same with AVX-512, transposed -------------------------------------------------------
 *
 * Queries as columns: Qᵀ (hd × rp), Sᵀ = K · Qᵀ (nc × rp), Oᵀ += Vᵀ · Pᵀ (hd × rp), rp = R padded
 * (padded_rows) with zero queries that see no position. Both products are then "C += A · B, A's
 * elements broadcast, B's rows as vectors", which needs no packing (OpenBLAS repacks Q on every
 * call, and its AVX2 kernel is what it picks on Zen), and the online softmax runs down the columns
 * of Sᵀ: 16 query rows per vector, their maxima, sums and masks (position compares) without
 * horizontal reductions. */
#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f,fma")))

#define LOAD4(p, x0, x1, x2, x3)                                                                  \
    x0 = acc ? _mm512_loadu_ps(p) : _mm512_setzero_ps();                                          \
    x1 = acc ? _mm512_loadu_ps((p) + 16) : _mm512_setzero_ps();                                   \
    x2 = acc ? _mm512_loadu_ps((p) + 32) : _mm512_setzero_ps();                                   \
    x3 = acc ? _mm512_loadu_ps((p) + 48) : _mm512_setzero_ps()
#define STORE4(p, x0, x1, x2, x3)                                                                 \
    _mm512_storeu_ps(p, x0);                                                                      \
    _mm512_storeu_ps((p) + 16, x1);                                                               \
    _mm512_storeu_ps((p) + 32, x2);                                                               \
    _mm512_storeu_ps((p) + 48, x3)
#define FMA4(w, x0, x1, x2, x3)                                                                   \
    x0 = _mm512_fmadd_ps(w, b0, x0);                                                              \
    x1 = _mm512_fmadd_ps(w, b1, x1);                                                              \
    x2 = _mm512_fmadd_ps(w, b2, x2);                                                              \
    x3 = _mm512_fmadd_ps(w, b3, x3)

/* C (M × rp) = A · B, or C += A · B with acc: A(i, k) = a[i·sai + k·sak], B (K × rp) row-major,
 * rp % 16 == 0. Register tile: 4 rows × 64 columns of C, 16 accumulators fed per k by 4 vector
 * loads of B (its 64-column slice stays in L1 across the rows) and 4 broadcasts of A. */
AVX512 static void gemm_bcast(int32_t M, int32_t K, int32_t rp, const float *a, size_t sai,
                              size_t sak, const float *B, float *C, bool acc) {
    int32_t r0 = 0;
    for (; r0 + 64 <= rp; r0 += 64) {
        int32_t i = 0;
        for (; i + 4 <= M; i += 4) {
            float *c = C + (size_t)i * rp + r0;
            __m512 c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
            LOAD4(c, c00, c01, c02, c03);
            LOAD4(c + rp, c10, c11, c12, c13);
            LOAD4(c + 2 * rp, c20, c21, c22, c23);
            LOAD4(c + 3 * rp, c30, c31, c32, c33);
            const float *a0 = a + (size_t)i * sai, *b = B + r0;
            for (int32_t k = 0; k < K; k++, b += rp) {
                const float *ak = a0 + (size_t)k * sak;
                const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
                const __m512 b2 = _mm512_loadu_ps(b + 32), b3 = _mm512_loadu_ps(b + 48);
                __m512 w = _mm512_set1_ps(ak[0]);
                FMA4(w, c00, c01, c02, c03);
                w = _mm512_set1_ps(ak[sai]);
                FMA4(w, c10, c11, c12, c13);
                w = _mm512_set1_ps(ak[2 * sai]);
                FMA4(w, c20, c21, c22, c23);
                w = _mm512_set1_ps(ak[3 * sai]);
                FMA4(w, c30, c31, c32, c33);
            }
            STORE4(c, c00, c01, c02, c03);
            STORE4(c + rp, c10, c11, c12, c13);
            STORE4(c + 2 * rp, c20, c21, c22, c23);
            STORE4(c + 3 * rp, c30, c31, c32, c33);
        }
        for (; i < M; i++) {
            float *c = C + (size_t)i * rp + r0;
            __m512 c00, c01, c02, c03;
            LOAD4(c, c00, c01, c02, c03);
            const float *b = B + r0;
            for (int32_t k = 0; k < K; k++, b += rp) {
                const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
                const __m512 b2 = _mm512_loadu_ps(b + 32), b3 = _mm512_loadu_ps(b + 48);
                const __m512 w = _mm512_set1_ps(a[(size_t)i * sai + (size_t)k * sak]);
                FMA4(w, c00, c01, c02, c03);
            }
            STORE4(c, c00, c01, c02, c03);
        }
    }
    for (; r0 < rp; r0 += 16) { /* a small tile's columns, 16 at a time: 4 chains of FMAs */
        int32_t i = 0;
        for (; i + 4 <= M; i += 4) {
            float *c = C + (size_t)i * rp + r0;
            __m512 x0 = acc ? _mm512_loadu_ps(c) : _mm512_setzero_ps();
            __m512 x1 = acc ? _mm512_loadu_ps(c + rp) : _mm512_setzero_ps();
            __m512 x2 = acc ? _mm512_loadu_ps(c + 2 * rp) : _mm512_setzero_ps();
            __m512 x3 = acc ? _mm512_loadu_ps(c + 3 * rp) : _mm512_setzero_ps();
            const float *a0 = a + (size_t)i * sai, *b = B + r0;
            for (int32_t k = 0; k < K; k++, b += rp) {
                const float *ak = a0 + (size_t)k * sak;
                const __m512 b0 = _mm512_loadu_ps(b);
                x0 = _mm512_fmadd_ps(_mm512_set1_ps(ak[0]), b0, x0);
                x1 = _mm512_fmadd_ps(_mm512_set1_ps(ak[sai]), b0, x1);
                x2 = _mm512_fmadd_ps(_mm512_set1_ps(ak[2 * sai]), b0, x2);
                x3 = _mm512_fmadd_ps(_mm512_set1_ps(ak[3 * sai]), b0, x3);
            }
            _mm512_storeu_ps(c, x0);
            _mm512_storeu_ps(c + rp, x1);
            _mm512_storeu_ps(c + 2 * rp, x2);
            _mm512_storeu_ps(c + 3 * rp, x3);
        }
        for (; i < M; i++) {
            float *c = C + (size_t)i * rp + r0;
            __m512 x = acc ? _mm512_loadu_ps(c) : _mm512_setzero_ps();
            const float *b = B + r0;
            for (int32_t k = 0; k < K; k++, b += rp)
                x = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)i * sai + (size_t)k * sak]),
                                    _mm512_loadu_ps(b), x);
            _mm512_storeu_ps(c, x);
        }
    }
}
#undef LOAD4
#undef STORE4
#undef FMA4

/* The chunk's scores Sᵀ (nc × rp) become P = e^(S - m) in place, 0 where column r does not see
 * position c0 + p (outside [lo[r], hi[r]]); m, l and Oᵀ (hd × rp) move to the new maxima. A
 * column that has seen nothing yet keeps m = -inf: its exponents are then taken against 0. */
AVX512 static void softmax_cols(float *St, int32_t nc, int32_t rp, int32_t c0, const int32_t *lo,
                                const int32_t *hi, float *m, float *l, float *Ot, int32_t hd) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int32_t r = 0; r < rp; r += 16) {
        const __m512i vlo = _mm512_loadu_si512(lo + r), vhi = _mm512_loadu_si512(hi + r);
        __m512 mx = ninf;
        for (int32_t p = 0; p < nc; p++) {
            const __m512i vp = _mm512_set1_epi32(c0 + p);
            const __mmask16 k = _mm512_cmpge_epi32_mask(vp, vlo) & _mm512_cmple_epi32_mask(vp, vhi);
            mx = _mm512_mask_max_ps(mx, k, mx, _mm512_loadu_ps(St + (size_t)p * rp + r));
        }
        const __m512 m_old = _mm512_loadu_ps(m + r), m_new = _mm512_max_ps(m_old, mx);
        const __m512 ms = _mm512_mask_mov_ps(
            m_new, _mm512_cmp_ps_mask(m_new, ninf, _CMP_EQ_OQ), _mm512_setzero_ps());
        const __m512 alpha = exp512(_mm512_sub_ps(m_old, ms)); /* 0 while m_old is -inf */
        __m512 sum = _mm512_setzero_ps();
        for (int32_t p = 0; p < nc; p++) {
            const __m512i vp = _mm512_set1_epi32(c0 + p);
            const __mmask16 k = _mm512_cmpge_epi32_mask(vp, vlo) & _mm512_cmple_epi32_mask(vp, vhi);
            float *s = St + (size_t)p * rp + r;
            const __m512 e = _mm512_maskz_mov_ps(k, exp512(_mm512_sub_ps(_mm512_loadu_ps(s), ms)));
            _mm512_storeu_ps(s, e);
            sum = _mm512_add_ps(sum, e);
        }
        _mm512_storeu_ps(m + r, m_new);
        _mm512_storeu_ps(l + r, _mm512_fmadd_ps(_mm512_loadu_ps(l + r), alpha, sum));
        if (_mm512_cmp_ps_mask(alpha, _mm512_set1_ps(1.0f), _CMP_NEQ_UQ))
            for (int32_t d = 0; d < hd; d++) {
                float *o = Ot + (size_t)d * rp + r;
                _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), alpha));
            }
    }
}

AVX512 static void prefill_task_avx512(void *arg, int32_t task, int32_t thread) {
    const prefill_job *job = arg;
    const attn_params *ap = job->ap;
    const int32_t n_kv = ap->n_head_kv, hd = ap->head_dim, g = job->g, n_head = ap->n_head;
    const pf_tile tile = job->tiles[job->n_tiles - 1 - task / n_kv]; /* longest first */
    const int32_t kvh = task % n_kv, rows = tile.n * g, rp = padded_rows(rows);
    const pf_scratch sc = carve(job, thread);
    float *Qt = sc.Q, *Ot = sc.O, *K = sc.K, *V = sc.V, *St = sc.S, *m = sc.m, *l = sc.l;
    int32_t *lo = sc.lo, *hi = sc.hi;

    const int32_t *pos = job->batch->pos + tile.t0, *table = job->batch->block_tables[tile.t0];
    memset(Qt, 0, (size_t)rp * hd * sizeof *Qt); /* padding columns: zero queries, never seen */
    memset(Ot, 0, (size_t)rp * hd * sizeof *Ot);
    for (int32_t r = 0; r < rp; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
        lo[r] = r < rows ? first_visible(ap->window, pos[r / g]) : INT32_MAX;
        hi[r] = r < rows ? pos[r / g] : INT32_MIN;
        if (r >= rows) continue;
        const float *src = job->q + ((size_t)(tile.t0 + r / g) * n_head + kvh * g + r % g) * hd;
        for (int32_t c = 0; c < hd; c++) Qt[(size_t)c * rp + r] = src[c] * ap->scale;
    }
    const int32_t p_lo = first_visible(ap->window, pos[0]), p_hi = pos[tile.n - 1] + 1;
    for (int32_t c0 = p_lo; c0 < p_hi; c0 += PREFILL_KC) {
        const int32_t nc = RS_MIN(PREFILL_KC, p_hi - c0);
        /* Kᵀ (hd, nc), straight from the tiles of F16 keys; V is its row scratch */
        cpu_kv_load_keys_t(job->pool, job->layer, table, c0, nc, kvh * hd, hd, K, (size_t)nc, V);
        load_rows(job, true, table, c0, nc, kvh, V);
        gemm_bcast(nc, hd, rp, K, 1, (size_t)nc, Qt, St, false);
        softmax_cols(St, nc, rp, c0, lo, hi, m, l, Ot, hd);
        gemm_bcast(hd, nc, rp, V, 1, (size_t)hd, St, Ot, true);
    }
    for (int32_t r = 0; r < rows; r++) {
        const int32_t h = kvh * g + r % g;
        const float inv = 1.0f / (l[r] + (ap->sinks ? expf(ap->sinks[h] - m[r]) : 0.0f));
        float *dst = job->out + ((size_t)(tile.t0 + r / g) * n_head + h) * hd;
        for (int32_t c = 0; c < hd; c++) dst[c] = Ot[(size_t)c * rp + r] * inv;
    }
}
#endif

/* Token t continues token t - 1's run: the same sequence, the next position. */
static bool continues(const attn_batch *b, int32_t t) {
    return t > 0 && b->block_tables[t] == b->block_tables[t - 1] && b->pos[t] == b->pos[t - 1] + 1;
}

bool cpu_attention_prefill(cpu_backend *cb, const kv_pool *pool, int32_t layer, const float *q,
                           const attn_batch *batch, const attn_params *ap, float *out,
                           float (*exp_sum)(float *s, int32_t n, float m)) {
    if (cb->attn_prefill_off) return false;
    const int32_t n_tok = batch->n_tok;
    int32_t longest = 0;
    for (int32_t t = 0, run = 0; t < n_tok; t++) {
        run = continues(batch, t) ? run + 1 : 1;
        longest = RS_MAX(longest, run);
    }
    if (longest < PREFILL_MIN) return false;

    const int32_t g = ap->n_head / ap->n_head_kv, hd = ap->head_dim;
    const int32_t tq = RS_MAX(1, RS_MIN(TILE_TOKENS_MAX, TILE_ROWS / g));
    int32_t n_tiles = 0;
    for (int32_t t = 0; t < n_tok;) {
        int32_t len = 1;
        while (t + len < n_tok && continues(batch, t + len)) len++;
        n_tiles += (len + tq - 1) / tq;
        t += len;
    }
    const size_t rows = (size_t)padded_rows(tq * g); /* rp_max */
    /* Q, O (rows × hd), K, V (KC × hd), S (rows × KC), m, l and the visible ranges (rows) */
    size_t per_thread = 2 * rows * hd + 2 * (size_t)PREFILL_KC * hd + rows * PREFILL_KC + 4 * rows;
    per_thread = (per_thread + 15) / 16 * 16; /* each thread's scratch on its own cache lines */
    const size_t need = (size_t)cb->n_threads * per_thread * sizeof(float) +
                        (size_t)n_tiles * sizeof(pf_tile);
    if (need > cb->attn_pf_cap) {
        free(cb->attn_pf);
        cb->attn_pf = rs_aligned_alloc(need, "prefill attention scratch");
        cb->attn_pf_cap = cb->attn_pf ? need : 0;
        if (!cb->attn_pf) return false; /* the per-token path needs no more memory */
    }
    float *scratch = cb->attn_pf;
    pf_tile *tiles = (pf_tile *)(scratch + (size_t)cb->n_threads * per_thread);
    int32_t k = 0;
    for (int32_t t = 0; t < n_tok;) {
        int32_t len = 1;
        while (t + len < n_tok && continues(batch, t + len)) len++;
        const int32_t nt = (len + tq - 1) / tq, base = len / nt, extra = len % nt;
        for (int32_t i = 0, t0 = t; i < nt; i++) { /* equal tiles, the first `extra` one longer */
            const int32_t n = base + (i < extra);
            tiles[k++] = (pf_tile){t0, n};
            t0 += n;
        }
        t += len;
    }
    prefill_job job = {.pool = pool, .layer = layer, .q = q, .batch = batch, .ap = ap,
                       .out = out, .tiles = tiles, .n_tiles = n_tiles, .g = g, .tq = tq,
                       .rp_max = (int32_t)rows,
                       .scratch = scratch, .per_thread = per_thread, .exp_sum = exp_sum};
#if defined(__x86_64__)
    if (tensor_isa_best() >= TENSOR_ISA_AVX512 && !cb->attn_prefill_generic) {
        thread_pool_run(cb->pool, prefill_task_avx512, &job, n_tiles * ap->n_head_kv);
        return true;
    }
#endif
    thread_pool_run(cb->pool, prefill_task, &job, n_tiles * ap->n_head_kv);
    return true;
}
