/* cpu_bgemm.c — y (n_tok, rows) = x · wᵀ for BF16 weights in fast precision (AVX512-BF16).
 *
 * vdpbf16ps multiplies pairs of bf16 values and adds both products into an f32 lane: twice the
 * multiply-adds of an f32 FMA per instruction. The weights are used as stored (no unpacking: a
 * pair of a row's bf16 values is one 32-bit word, broadcast to all lanes); the activations are
 * rounded to bf16 (nearest even, relative error ≤ 2^-9, less than the 8-bit activations of the
 * other fast products) and laid out per 16 tokens, one 64-byte vector per pair of columns. The
 * kernel keeps 6 rows × 64 tokens of f32 sums in registers, like cpu_fgemm.c. The exact
 * precision keeps f32 activations (cpu_fgemm.c). */
#include "cpu_bgemm.h"

#include "tensor_types.h"

#include <stdlib.h>
#include <string.h>

#define BG_TOK 16   /* tokens per vector */
#define BG_KROWS 6  /* rows per kernel call */
#define BG_GROUPS 4 /* token vectors per kernel call */
#define BG_STRIP 48 /* rows per task */

typedef struct bg_state {
    uint32_t *x; /* (n_grp, cols / 2, BG_TOK) bf16 pairs */
    size_t x_cap;
    int64_t cols;
    int32_t n_tok, n_grp;
} bg_state;

void cpu_bgemm_free(cpu_backend *cb) {
    bg_state *st = cb->bgemm;
    if (!st) return;
    free(st->x);
    free(st);
    cb->bgemm = NULL;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define BG_TARGET __attribute__((target("avx512f,avx512bf16")))
#define BG_INLINE BG_TARGET static inline __attribute__((always_inline))

typedef struct bg_job {
    bg_state *st;
    const float *x;
    const rs_tensor *w;
    float *y;
} bg_job;

/* Group g: token g·16 + l, columns 2k, 2k + 1 -> st->x[(g·cols/2 + k)·16 + l] (low half 2k). */
static void layout_task(void *arg, int32_t g, int32_t thread) {
    (void)thread;
    const bg_job *job = arg;
    const bg_state *st = job->st;
    const int64_t half = st->cols / 2;
    uint32_t *dst = st->x + (size_t)g * half * BG_TOK;
    const int32_t nt = RS_MIN(BG_TOK, st->n_tok - g * BG_TOK);
    if (nt < BG_TOK) memset(dst, 0, (size_t)half * BG_TOK * sizeof *dst);
    for (int32_t l = 0; l < nt; l++) {
        const float *src = job->x + (size_t)(g * BG_TOK + l) * st->cols;
        for (int64_t k = 0; k < half; k++)
            dst[k * BG_TOK + l] =
                rs_f32_to_bf16(src[2 * k]) | (uint32_t)rs_f32_to_bf16(src[2 * k + 1]) << 16;
    }
}

/* out[g][r][t] = row r · token t for BG_KROWS rows (row pointers w[r]) and ng groups. */
BG_INLINE void tile(const uint8_t *const w[BG_KROWS], const uint32_t *x, size_t group_stride,
                    int64_t half, int ng, float out[BG_GROUPS][BG_KROWS][BG_TOK]) {
    __m512 acc[BG_GROUPS][BG_KROWS];
#pragma GCC unroll 4
    for (int g = 0; g < ng; g++)
#pragma GCC unroll 6
        for (int r = 0; r < BG_KROWS; r++) acc[g][r] = _mm512_setzero_ps();
    for (int64_t k = 0; k < half; k++) {
        __m512i xk[BG_GROUPS];
#pragma GCC unroll 4
        for (int g = 0; g < ng; g++)
            xk[g] = _mm512_load_si512((const void *)(x + g * group_stride + k * BG_TOK));
#pragma GCC unroll 6
        for (int r = 0; r < BG_KROWS; r++) {
            uint32_t pair;
            memcpy(&pair, w[r] + 4 * k, 4);
            const __m512i wr = _mm512_set1_epi32((int)pair);
#pragma GCC unroll 4
            for (int g = 0; g < ng; g++)
                acc[g][r] = _mm512_dpbf16_ps(acc[g][r], (__m512bh)xk[g], (__m512bh)wr);
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < ng; g++)
#pragma GCC unroll 6
        for (int r = 0; r < BG_KROWS; r++) _mm512_storeu_ps(out[g][r], acc[g][r]);
}

BG_TARGET static void tile_wide(const uint8_t *const w[BG_KROWS], const uint32_t *x,
                                size_t group_stride, int64_t half,
                                float out[BG_GROUPS][BG_KROWS][BG_TOK]) {
    tile(w, x, group_stride, half, BG_GROUPS, out);
}

BG_TARGET static void tile_one(const uint8_t *const w[BG_KROWS], const uint32_t *x,
                               size_t group_stride, int64_t half,
                               float out[BG_GROUPS][BG_KROWS][BG_TOK]) {
    tile(w, x, group_stride, half, 1, out);
}

static void strip_task(void *arg, int32_t task, int32_t thread) {
    (void)thread;
    const bg_job *job = arg;
    const bg_state *st = job->st;
    const rs_tensor *w = job->w;
    const int64_t rows = w->ne[1], half = st->cols / 2;
    const int64_t s0 = (int64_t)task * BG_STRIP, s1 = RS_MIN(rows, s0 + BG_STRIP);
    const size_t stride = (size_t)half * BG_TOK;
    for (int32_t g0 = 0; g0 < st->n_grp;) {
        const int ng = st->n_grp - g0 >= BG_GROUPS ? BG_GROUPS : 1;
        for (int64_t r0 = s0; r0 < s1; r0 += BG_KROWS) {
            const int64_t nr = RS_MIN(BG_KROWS, s1 - r0);
            const uint8_t *wr[BG_KROWS];
            for (int r = 0; r < BG_KROWS; r++) /* past the end: repeat the last row, unused */
                wr[r] = (const uint8_t *)w->data + (size_t)(r0 + RS_MIN(r, nr - 1)) * w->row_bytes;
            float out[BG_GROUPS][BG_KROWS][BG_TOK];
            (ng == BG_GROUPS ? tile_wide : tile_one)(wr, st->x + (size_t)g0 * stride, stride,
                                                     half, out);
            for (int g = 0; g < ng; g++) {
                const int32_t nt = RS_MIN(BG_TOK, st->n_tok - (g0 + g) * BG_TOK);
                for (int32_t t = 0; t < nt; t++) {
                    float *yt = job->y + (size_t)((g0 + g) * BG_TOK + t) * rows + r0;
                    for (int64_t r = 0; r < nr; r++) yt[r] = out[g][r][t];
                }
            }
        }
        g0 += ng;
    }
}

bool cpu_bgemm(cpu_backend *cb, const rs_tensor *w, const float *x, float *y, int32_t n_tok) {
    if (w->type != TENSOR_BF16 || !rs_cpu_has_avx512bf16() || w->ne[0] % 2 || n_tok <= 0)
        return false;
    if (!cb->bgemm && !(cb->bgemm = rs_calloc(1, sizeof(bg_state), "BF16 GEMM state")))
        return false;
    bg_state *st = cb->bgemm;
    const int64_t cols = w->ne[0];
    const int32_t n_grp = (n_tok + BG_TOK - 1) / BG_TOK;
    const size_t need = (size_t)n_grp * (size_t)(cols / 2) * BG_TOK;
    if (need > st->x_cap) {
        free(st->x);
        st->x = rs_aligned_alloc(need * sizeof *st->x, "BF16 GEMM activations");
        st->x_cap = st->x ? need : 0;
        if (!st->x) return false;
    }
    st->cols = cols;
    st->n_tok = n_tok;
    st->n_grp = n_grp;
    bg_job job = {.st = st, .x = x, .w = w, .y = y};
    thread_pool_run(cb->pool, layout_task, &job, n_grp);
    thread_pool_run(cb->pool, strip_task, &job, (int32_t)((w->ne[1] + BG_STRIP - 1) / BG_STRIP));
    return true;
}

#else

bool cpu_bgemm(cpu_backend *cb, const rs_tensor *w, const float *x, float *y, int32_t n_tok) {
    (void)cb, (void)w, (void)x, (void)y, (void)n_tok;
    return false;
}

#endif
