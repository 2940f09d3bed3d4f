/* cpu_qgemm.c — y (n_tok, rows) = x · wᵀ for prompt batches with 8-bit activations (VNNI).
 *
 * Activations: quantized once per call like the fast decode path — per 32 values a scale s,
 * int8 codes x̂, s·Σx̂ (for the offsets of Q4_1/K types) and −128·Σx̂ per 32 and per 16 (for the
 * +128 bias of the unsigned weight codes, see cpu_qgemm_pack.c). Tokens are padded with zero
 * rows to a multiple of QG_TOK.
 *
 * Kernel: 16 rows × QG_TOK tokens. Per 32-column block, for each token an int32 vector (one lane
 * per row) starts at −128·Σx̂ and takes 8 vpdpbusd (4 columns each, the token's 4 activation
 * bytes broadcast); then acc += d_row ⊙ (s_token · int) [+ m_row · s·Σx̂]. So 8 multiply-add
 * instructions carry 512 products and the per-block float work is 3–4 instructions per token.
 *
 * Work split: a task is a strip of QG_STRIP_PANELS panels (64 rows): the task unpacks them into
 * its thread's buffer (they stay in L2) and sweeps all tokens over them, so every activation row
 * is read once per strip and every weight once per call. */
#include "cpu_qgemm.h"

#include "tensor_types.h"

#include <stdlib.h>
#include <string.h>

#define QG_TOK 8
#define QG_STRIP_PANELS 4

typedef struct qg_act {
    int8_t *q;    /* (n_pad, cols) */
    float *s;     /* (n_pad, nb) scale per 32 */
    float *sx;    /* (n_pad, nb) scale · Σ codes */
    int32_t *z32; /* (n_pad, nb) −128 · Σ codes per 32 */
    int32_t *z16; /* (n_pad, 2 nb) −128 · Σ codes per 16 */
} qg_act;

/* Backend scratch: the quantized activations of the last prepare and the unpacked strips. */
typedef struct qg_state {
    void *act;
    size_t act_cap;
    qg_act a;
    int64_t cols;
    int32_t n_tok, n_pad;
    uint8_t *strips; /* (n_threads, strip bytes) */
    size_t strip_cap;
} qg_state;

bool cpu_qgemm_supports(uint32_t type) {
    qg_format f;
    return qg_format_of(type, &f) && rs_cpu_has_vnni();
}

void cpu_qgemm_free(cpu_backend *cb) {
    qg_state *st = cb->qgemm;
    if (!st) return;
    free(st->act);
    free(st->strips);
    free(st);
    cb->qgemm = NULL;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define QG_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))
#define QG_INLINE QG_TARGET static inline __attribute__((always_inline))

/* One token row: codes, and per 32 the scale, scale·sum and −128·sums (round to nearest even,
 * as the decode path's quantizer). */
QG_TARGET static void quantize_row(const float *x, int64_t cols, int8_t *q, float *s, float *sx,
                                   int32_t *z32, int32_t *z16) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < cols / 32; i++, x += 32, q += 32) {
        const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
        const __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign, a), _mm512_andnot_ps(sign, b));
        const float amax = _mm512_reduce_max_ps(m);
        const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        const __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(id)));
        const __m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, _mm512_set1_ps(id)));
        _mm_storeu_si128((__m128i *)q, _mm512_cvtsepi32_epi8(qa));
        _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtsepi32_epi8(qb));
        const int32_t sa = _mm512_reduce_add_epi32(qa), sb = _mm512_reduce_add_epi32(qb);
        s[i] = d;
        sx[i] = d * (float)(sa + sb);
        z32[i] = -128 * (sa + sb);
        z16[2 * i] = -128 * sa;
        z16[2 * i + 1] = -128 * sb;
    }
}

typedef struct prep_job {
    const float *x;
    qg_state *st;
} prep_job;

static void prep_task(void *arg, int32_t task, int32_t thread) {
    (void)thread;
    const prep_job *job = arg;
    const qg_state *st = job->st;
    const int64_t cols = st->cols, nb = cols / 32;
    for (int32_t t = task * QG_TOK; t < RS_MIN(st->n_tok, task * QG_TOK + QG_TOK); t++)
        quantize_row(job->x + (size_t)t * cols, cols, st->a.q + (size_t)t * cols,
                     st->a.s + (size_t)t * nb, st->a.sx + (size_t)t * nb,
                     st->a.z32 + (size_t)t * nb, st->a.z16 + (size_t)t * 2 * nb);
}

static inline int32_t ld_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ia[t] += the 4-column groups j0..j1-1 of block b, weights w (one vector per group) times the
 * activation bytes of token t broadcast to every row's lane. */
QG_INLINE void int_dots(__m512i ia[QG_TOK], const uint8_t *w, const int8_t *const x[QG_TOK],
                        int64_t b, int j0, int j1) {
#pragma GCC unroll 8
    for (int j = j0; j < j1; j++) {
        const __m512i wj = _mm512_load_si512((const void *)(w + j * 4 * QG_ROWS));
#pragma GCC unroll 8
        for (int t = 0; t < QG_TOK; t++)
            ia[t] = _mm512_dpbusd_epi32(ia[t], wj, _mm512_set1_epi32(ld_i32(x[t] + 32 * b + 4 * j)));
    }
}

/* acc[t] += d ⊙ (s of token t · ia[t]). */
QG_INLINE void scale_add(__m512 acc[QG_TOK], const __m512i ia[QG_TOK], __m512 d, const float *s,
                         int64_t stride) {
#pragma GCC unroll 8
    for (int t = 0; t < QG_TOK; t++)
        acc[t] = _mm512_fmadd_ps(
            _mm512_mul_ps(_mm512_cvtepi32_ps(ia[t]), _mm512_set1_ps(s[t * stride])), d, acc[t]);
}

/* ia[t] = the int32 at z[t * stride] in every lane. */
QG_INLINE void int_init(__m512i ia[QG_TOK], const int32_t *z, int64_t stride) {
#pragma GCC unroll 8
    for (int t = 0; t < QG_TOK; t++) ia[t] = _mm512_set1_epi32(z[t * stride]);
}

/* The panel's 16 rows times tokens t0..t0+QG_TOK-1 over all blocks, stored for the first nt
 * tokens into y (row stride ldy, lanes of mask). sub and has_min are compile-time constants at
 * every call, so each combination compiles to its own loop with everything in registers. */
QG_INLINE void tile(const qg_panel *p, const qg_act *a, int64_t cols, int32_t t0, int sub,
                    bool has_min, float *y, int64_t ldy, int32_t nt, __mmask16 mask) {
    const int64_t nb = cols / 32;
    const int8_t *x[QG_TOK];
    __m512 acc[QG_TOK];
#pragma GCC unroll 8
    for (int t = 0; t < QG_TOK; t++) {
        x[t] = a->q + (size_t)(t0 + t) * cols;
        acc[t] = _mm512_setzero_ps();
    }
    const float *s = a->s + (size_t)t0 * nb, *sx = a->sx + (size_t)t0 * nb;
    const int32_t *z32 = a->z32 + (size_t)t0 * nb, *z16 = a->z16 + (size_t)t0 * 2 * nb;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *w = p->w + b * 8 * 4 * QG_ROWS;
        __m512i ia[QG_TOK];
        if (sub == 16) { /* two scales per block: halves of 16 columns */
            int_init(ia, z16 + 2 * b, 2 * nb);
            int_dots(ia, w, x, b, 0, 4);
            scale_add(acc, ia, _mm512_load_ps(p->d + 2 * b * QG_ROWS), s + b, nb);
            int_init(ia, z16 + 2 * b + 1, 2 * nb);
            int_dots(ia, w, x, b, 4, 8);
            scale_add(acc, ia, _mm512_load_ps(p->d + (2 * b + 1) * QG_ROWS), s + b, nb);
        } else {
            int_init(ia, z32 + b, nb);
            int_dots(ia, w, x, b, 0, 8);
            scale_add(acc, ia, _mm512_load_ps(p->d + b * QG_ROWS), s + b, nb);
        }
        if (has_min) {
            const __m512 m = _mm512_load_ps(p->m + b * QG_ROWS);
#pragma GCC unroll 8
            for (int t = 0; t < QG_TOK; t++)
                acc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(sx[(size_t)t * nb + b]), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < QG_TOK; t++)
        if (t < nt) _mm512_mask_storeu_ps(y + (size_t)(t0 + t) * ldy, mask, acc[t]);
}

typedef void (*tile_fn)(const qg_panel *, const qg_act *, int64_t, int32_t, float *, int64_t,
                        int32_t, __mmask16);

QG_TARGET static void tile_32(const qg_panel *p, const qg_act *a, int64_t cols, int32_t t0,
                              float *y, int64_t ldy, int32_t nt, __mmask16 mask) {
    tile(p, a, cols, t0, 32, false, y, ldy, nt, mask);
}
QG_TARGET static void tile_32_min(const qg_panel *p, const qg_act *a, int64_t cols, int32_t t0,
                                  float *y, int64_t ldy, int32_t nt, __mmask16 mask) {
    tile(p, a, cols, t0, 32, true, y, ldy, nt, mask);
}
QG_TARGET static void tile_16(const qg_panel *p, const qg_act *a, int64_t cols, int32_t t0,
                              float *y, int64_t ldy, int32_t nt, __mmask16 mask) {
    tile(p, a, cols, t0, 16, false, y, ldy, nt, mask);
}

typedef struct run_job {
    qg_state *st;
    const rs_tensor *w;
    qg_format f;
    size_t panel_bytes;
    float *y;
} run_job;

QG_TARGET static void run_task(void *arg, int32_t task, int32_t thread) {
    const run_job *job = arg;
    const qg_state *st = job->st;
    const rs_tensor *w = job->w;
    const int64_t rows = w->ne[1], cols = st->cols;
    const int64_t r0 = (int64_t)task * QG_STRIP_PANELS * QG_ROWS;
    uint8_t *buf = st->strips + (size_t)thread * st->strip_cap;
    qg_panel panels[QG_STRIP_PANELS];
    int32_t n_panels = 0;
    for (; n_panels < QG_STRIP_PANELS && r0 + n_panels * QG_ROWS < rows; n_panels++) {
        const int64_t pr = r0 + n_panels * QG_ROWS;
        panels[n_panels] = qg_pack_panel(w->type, &job->f,
                                         (const uint8_t *)w->data + (size_t)pr * w->row_bytes,
                                         w->row_bytes, (int32_t)RS_MIN(QG_ROWS, rows - pr), cols,
                                         buf + (size_t)n_panels * job->panel_bytes);
    }
    const tile_fn kernel = job->f.sub == 16 ? tile_16 : job->f.has_min ? tile_32_min : tile_32;
    for (int32_t t0 = 0; t0 < st->n_tok; t0 += QG_TOK) {
        const int32_t nt = RS_MIN(QG_TOK, st->n_tok - t0);
        for (int32_t i = 0; i < n_panels; i++) {
            const int64_t pr = r0 + i * QG_ROWS;
            const __mmask16 mask = (__mmask16)(rows - pr >= QG_ROWS ? 0xffff
                                                                    : (1u << (rows - pr)) - 1);
            kernel(&panels[i], &st->a, cols, t0, job->y + pr, rows, nt, mask);
        }
    }
}

bool cpu_qgemm_prepare(cpu_backend *cb, const float *x, int64_t cols, int32_t n_tok) {
    if (!rs_cpu_has_vnni() || cols % 32 || n_tok <= 0) return false;
    if (!cb->qgemm && !(cb->qgemm = rs_calloc(1, sizeof(qg_state), "integer GEMM state")))
        return false;
    qg_state *st = cb->qgemm;
    const size_t n_pad = ((size_t)n_tok + QG_TOK - 1) / QG_TOK * QG_TOK, nb = (size_t)cols / 32;
    const size_t q_bytes = (n_pad * (size_t)cols + 63) / 64 * 64, blk = n_pad * nb * 4;
    const size_t need = q_bytes + 5 * blk; /* s, sx, z32 and z16 (twice as long) */
    if (need > st->act_cap) {
        free(st->act);
        st->act = rs_aligned_alloc(need, "quantized prompt activations");
        st->act_cap = st->act ? need : 0;
        if (!st->act) return false;
    }
    uint8_t *p = st->act;
    st->a = (qg_act){.q = (int8_t *)p,
                     .s = (float *)(p + q_bytes),
                     .sx = (float *)(p + q_bytes + blk),
                     .z32 = (int32_t *)(p + q_bytes + 2 * blk),
                     .z16 = (int32_t *)(p + q_bytes + 3 * blk)};
    st->cols = cols;
    st->n_tok = n_tok;
    st->n_pad = (int32_t)n_pad;
    /* padding tokens: zero codes and scales, so they add nothing and stay finite */
    const size_t pad = n_pad - (size_t)n_tok;
    memset(st->a.q + (size_t)n_tok * cols, 0, pad * (size_t)cols);
    memset(st->a.s + (size_t)n_tok * nb, 0, pad * nb * 4);
    memset(st->a.sx + (size_t)n_tok * nb, 0, pad * nb * 4);
    memset(st->a.z32 + (size_t)n_tok * nb, 0, pad * nb * 4);
    memset(st->a.z16 + (size_t)n_tok * 2 * nb, 0, pad * 2 * nb * 4);
    prep_job job = {.x = x, .st = st};
    thread_pool_run(cb->pool, prep_task, &job, (int32_t)(n_pad / QG_TOK));
    return true;
}

bool cpu_qgemm_run(cpu_backend *cb, const rs_tensor *w, float *y) {
    qg_state *st = cb->qgemm;
    run_job job = {.st = st, .w = w, .y = y};
    if (!st || w->ne[0] != st->cols || !qg_format_of(w->type, &job.f)) return false;
    job.panel_bytes = qg_panel_bytes(&job.f, st->cols);
    const size_t strip = job.panel_bytes * QG_STRIP_PANELS;
    if (strip > st->strip_cap) {
        free(st->strips);
        st->strips = rs_aligned_alloc((size_t)cb->n_threads * strip, "unpacked weight strips");
        st->strip_cap = st->strips ? strip : 0;
        if (!st->strips) return false;
    }
    const int64_t strip_rows = (int64_t)QG_STRIP_PANELS * QG_ROWS;
    thread_pool_run(cb->pool, run_task, &job, (int32_t)((w->ne[1] + strip_rows - 1) / strip_rows));
    return true;
}

#else /* no x86: the other paths serve every product */

bool cpu_qgemm_prepare(cpu_backend *cb, const float *x, int64_t cols, int32_t n_tok) {
    (void)cb, (void)x, (void)cols, (void)n_tok;
    return false;
}

bool cpu_qgemm_run(cpu_backend *cb, const rs_tensor *w, float *y) {
    (void)cb, (void)w, (void)y;
    return false;
}

#endif
