/* cpu_attention.c — attention over the paged KV pool (cpu_kv.c) on the CPU.
 *
 * out (n_tok, n_head * hd) = softmax(q · Kᵀ · scale) V over each token's visible positions.
 * One task = (token, KV head, split of the positions): the g = n_head / n_head_kv query heads
 * that share a KV head are done together, so each cached key and value row is read and
 * converted (cpu_kv_load_row; F16 fused into the score and accumulate kernels) once for all of
 * them. Positions are walked in chunks of ATTN_CHUNK with an
 * online softmax (running maximum m and sum l per head, the accumulator rescaled when m grows).
 * Decode has few (token, KV head) pairs — 3 for SmolLM2 — so long contexts are also split by
 * position (flash-decoding): each split leaves (m, l, acc) per head and the caller merges them,
 * which keeps every thread streaming K/V at depth 4K and beyond. Batches holding a run of prompt
 * tokens of one sequence go to cpu_attention_prefill.c instead (tiled matrix products). */
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
#define GROUP_MAX 16

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

/* F16 keys: scores sc[j][i] = (k_i · q_j) * scale for the nc rows at base + off[i], 16 keys per
 * cross-lane sum (sum16; at depth 16384 decode +13%). Head-outer so that the accumulators stay
 * in registers; the chunk's keys (nc * hd * 2 bytes) come from
 * memory for the first head and from L1 for the others, and F16C conversion is one instruction
 * per 16 elements. */
AVX512 static void scores_f16_avx512(const uint8_t *base, const uint8_t *vbase, const size_t *off,
                                     int32_t nc, const float *const *q, int32_t ng, int32_t hd,
                                     float scale, float (*sc)[ATTN_CHUNK]) {
    /* the chunk's keys and values are scattered 128-byte pieces (one KV head of each slot):
     * ask for all of them up front rather than rely on the stride prefetcher */
    for (int32_t i = 0; i < nc; i++)
        for (int32_t b = 0; b < hd * 2; b += 64) {
            _mm_prefetch((const char *)(base + off[i] + b), _MM_HINT_T0);
            _mm_prefetch((const char *)(vbase + off[i] + b), _MM_HINT_T1);
        }
    const __m512 vs = _mm512_set1_ps(scale);
    for (int32_t j = 0; j < ng; j++) {
        const float *qj = q[j];
        int32_t i0 = 0;
        for (; i0 + 16 <= nc; i0 += 16) { /* 16 keys, their 16 sums in one cross-lane tree */
            __m512 a[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                a[i] = _mm512_mul_ps(
                    _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(base + off[i0 + i]))),
                    _mm512_loadu_ps(qj));
            for (int32_t c = 16; c < hd; c += 16) {
                const __m512 qc = _mm512_loadu_ps(qj + c);
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++)
                    a[i] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(
                                               (const __m256i *)(base + off[i0 + i] + 2 * c))),
                                           qc, a[i]);
            }
            _mm512_storeu_ps(sc[j] + i0, _mm512_mul_ps(sum16(a), vs));
        }
        for (int32_t i = i0; i < nc; i++) {
            const uint16_t *k = (const uint16_t *)(base + off[i]);
            __m512 acc = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)k)),
                                       _mm512_loadu_ps(qj));
            for (int32_t c = 16; c < hd; c += 16)
                acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + c))),
                                      _mm512_loadu_ps(qj + c), acc);
            sc[j][i] = _mm512_reduce_add_ps(acc) * scale;
        }
    }
}

/* F16 values: acc[j] += Σ_i sc[j][i] · v_i. Each value row is converted once for hg heads (a
 * compile-time constant at every call, like nv, the row's 16-wide vectors): hg × nv accumulators
 * and nv converted values stay in registers, independent FMA chains. */
AVX512 static inline __attribute__((always_inline)) void accumulate_heads(
    const uint8_t *base, const size_t *off, int32_t nc, float (*sc)[ATTN_CHUNK],
    float *const *acc, int hg, int nv) {
    __m512 a[4][8];
#pragma GCC unroll 4
    for (int h = 0; h < hg; h++)
#pragma GCC unroll 8
        for (int k = 0; k < nv; k++) a[h][k] = _mm512_loadu_ps(acc[h] + 16 * k);
    for (int32_t i = 0; i < nc; i++) {
        const uint16_t *row = (const uint16_t *)(base + off[i]);
        __m512 v[8];
#pragma GCC unroll 8
        for (int k = 0; k < nv; k++)
            v[k] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 16 * k)));
#pragma GCC unroll 4
        for (int h = 0; h < hg; h++) {
            const __m512 w = _mm512_set1_ps(sc[h][i]);
#pragma GCC unroll 8
            for (int k = 0; k < nv; k++) a[h][k] = _mm512_fmadd_ps(w, v[k], a[h][k]);
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < hg; h++)
#pragma GCC unroll 8
        for (int k = 0; k < nv; k++) _mm512_storeu_ps(acc[h] + 16 * k, a[h][k]);
}

AVX512 static void accumulate_f16_64(const uint8_t *base, const size_t *off, int32_t nc,
                                     float (*sc)[ATTN_CHUNK], int32_t ng, float *const *acc) {
    int32_t j = 0;
    for (; j + 4 <= ng; j += 4) accumulate_heads(base, off, nc, sc + j, acc + j, 4, 4);
    for (; j < ng; j++) accumulate_heads(base, off, nc, sc + j, acc + j, 1, 4);
}

AVX512 static void accumulate_f16_128(const uint8_t *base, const size_t *off, int32_t nc,
                                      float (*sc)[ATTN_CHUNK], int32_t ng, float *const *acc) {
    int32_t j = 0;
    for (; j + 2 <= ng; j += 2) accumulate_heads(base, off, nc, sc + j, acc + j, 2, 8);
    for (; j < ng; j++) accumulate_heads(base, off, nc, sc + j, acc + j, 1, 8);
}

AVX512 static void accumulate_f16_avx512(const uint8_t *base, const size_t *off, int32_t nc,
                                         float (*sc)[ATTN_CHUNK], int32_t ng, int32_t hd,
                                         float *const *acc) {
    if (hd == 64) {
        accumulate_f16_64(base, off, nc, sc, ng, acc);
        return;
    }
    if (hd == 128) {
        accumulate_f16_128(base, off, nc, sc, ng, acc);
        return;
    }
    for (int32_t j = 0; j < ng; j++) {
        for (int32_t c = 0; c < hd; c += 16) {
            __m512 a = _mm512_loadu_ps(acc[j] + c);
            for (int32_t i = 0; i < nc; i++) {
                const __m512 vv = _mm512_cvtph_ps(
                    _mm256_loadu_si256((const __m256i *)((const uint16_t *)(base + off[i]) + c)));
                a = _mm512_fmadd_ps(_mm512_set1_ps(sc[j][i]), vv, a);
            }
            _mm512_storeu_ps(acc[j] + c, a);
        }
    }
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
    bool f16_avx512; /* the fused F16 score and accumulate kernels (head_dim % 16 == 0) */
} attn_kernels;

static attn_kernels kernels(void) {
    attn_kernels k = {tensor_dot_kernel(TENSOR_F32), axpy_scalar, exp_sum_scalar, false};
#if defined(__x86_64__)
    if (tensor_isa_best() >= TENSOR_ISA_AVX512) {
        k.axpy = axpy_avx512;
        k.exp_sum = exp_sum_avx512;
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
} attention_job;

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

static void attention_task(void *arg, int32_t task, int32_t thread) {
    const attention_job *job = arg;
    const kv_pool *pool = job->pool;
    const int32_t n_split = job->n_split, hd = job->head_dim;
    const int32_t sp = task % n_split, kvh = (task / n_split) % job->n_head_kv;
    const int32_t t = task / n_split / job->n_head_kv;
    const int32_t g = job->n_head / job->n_head_kv;
    const int32_t first = first_visible(job, t), n_pos = job->batch->pos[t] + 1 - first;
    const int32_t len = (n_pos + n_split - 1) / n_split;
    const int32_t p0 = first + sp * len, p1 = first + RS_MIN(n_pos, sp * len + len);
    const int32_t *table = job->batch->block_tables[t];
    const size_t head_off = (size_t)kvh * hd * pool->elem_bytes;
    float *rows = job->cb->attn_k + (size_t)thread * ATTN_CHUNK * 1024; /* (ATTN_CHUNK, hd) */
    const attn_kernels *kn = &job->kn;
    const bool fused = kn->f16_avx512 && pool->type == REASON_KV_F16 && hd % 16 == 0;

    for (int32_t h0 = 0; h0 < g; h0 += GROUP_MAX) {
        const int32_t ng = RS_MIN(GROUP_MAX, g - h0);
        float m[GROUP_MAX], l[GROUP_MAX], sc[GROUP_MAX][ATTN_CHUNK];
        float *acc[GROUP_MAX];
        const float *qh[GROUP_MAX];
        (void)fused;
        for (int32_t j = 0; j < ng; j++) {
            const int32_t h = kvh * g + h0 + j;
            qh[j] = job->q + ((size_t)t * job->n_head + h) * hd;
            acc[j] = n_split == 1
                         ? job->out + ((size_t)t * job->n_head + h) * hd
                         : job->cb->attn_part +
                               (((size_t)t * job->n_head + h) * n_split + sp) * job->part_stride +
                               2;
            memset(acc[j], 0, (size_t)hd * sizeof(float));
            m[j] = -INFINITY;
            l[j] = 0.0f;
        }
        for (int32_t c0 = p0; c0 < p1; c0 += ATTN_CHUNK) {
            const int32_t nc = RS_MIN(ATTN_CHUNK, p1 - c0);
            size_t off[ATTN_CHUNK];
            for (int32_t i = 0; i < nc; i++) {
                const int32_t p = c0 + i;
                const int64_t slot =
                    (int64_t)table[p / pool->block_size] * pool->block_size + p % pool->block_size;
                off[i] = cpu_kv_offset(pool, job->layer, slot) + head_off;
            }
#if defined(__x86_64__)
            if (fused)
                scores_f16_avx512((const uint8_t *)pool->k, (const uint8_t *)pool->v, off, nc, qh,
                                  ng, hd, job->scale, sc);
#endif
            if (!fused) {
                for (int32_t i = 0; i < nc; i++)
                    cpu_kv_load_row(pool, false, off[i], rows + (size_t)i * hd, hd);
                for (int32_t j = 0; j < ng; j++)
                    for (int32_t i = 0; i < nc; i++)
                        sc[j][i] = kn->dot(rows + (size_t)i * hd, qh[j], hd) * job->scale;
            }
            for (int32_t j = 0; j < ng; j++) {
                float cm = -INFINITY;
                for (int32_t i = 0; i < nc; i++) cm = sc[j][i] > cm ? sc[j][i] : cm;
                if (cm > m[j]) { /* rescale what was accumulated under the old maximum */
                    const float r = expf(m[j] - cm);
                    l[j] *= r;
                    for (int32_t i = 0; i < hd; i++) acc[j][i] *= r;
                    m[j] = cm;
                }
                l[j] += kn->exp_sum(sc[j], nc, m[j]);
            }
#if defined(__x86_64__)
            if (fused) accumulate_f16_avx512((const uint8_t *)pool->v, off, nc, sc, ng, hd, acc);
#endif
            if (!fused) {
                for (int32_t i = 0; i < nc; i++) {
                    cpu_kv_load_row(pool, true, off[i], rows, hd);
                    for (int32_t j = 0; j < ng; j++) kn->axpy(sc[j][i], rows, acc[j], hd);
                }
            }
        }
        for (int32_t j = 0; j < ng; j++) {
            if (n_split == 1) {
                const float inv = inv_denominator(job, kvh * g + h0 + j, m[j], l[j]);
                for (int32_t i = 0; i < hd; i++) acc[j][i] *= inv;
            } else {
                acc[j][-2] = m[j];
                acc[j][-1] = l[j];
            }
        }
    }
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
    if (cb->n_threads > 1 && pairs < 4 * cb->n_threads && longest >= 2 * SPLIT_MIN) {
        int32_t n_split = (8 * cb->n_threads + pairs - 1) / pairs;
        n_split = RS_MIN(n_split, RS_MIN(SPLIT_MAX, longest / SPLIT_MIN));
        job.part_stride = (size_t)(head_dim + 2 + 15) / 16 * 16;
        const size_t need = (size_t)batch->n_tok * n_head * n_split * job.part_stride;
        if (need > cb->attn_part_cap) {
            free(cb->attn_part);
            cb->attn_part = rs_aligned_alloc(need * sizeof(float), "attention partial results");
            cb->attn_part_cap = cb->attn_part ? need : 0;
        }
        if (cb->attn_part) job.n_split = n_split;
    }
    thread_pool_run(cb->pool, attention_task, &job, pairs * job.n_split);
    if (job.n_split > 1) merge_splits(&job);
}
