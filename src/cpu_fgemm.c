/* cpu_fgemm.c — y (n_tok, rows) = x · wᵀ in f32 for batches of tokens (AVX-512), any weight type.
 *
 * The exact-precision twin of cpu_qgemm.c: each task dequantizes a panel of 16 weight rows to f32
 * (tensor_dequantize_row, bit-identical to the reference) and multiplies it with the tokens: the
 * activations of 16 tokens are laid out column by column (one 64-byte vector per column), and the
 * kernel keeps 6 rows × 64 tokens of sums in 24 registers — per column 6 weight broadcasts and
 * 4 activation loads feed 24 fused multiply-adds. Sums are f32 as in sgemm, in column order.
 *
 * Why not OpenBLAS: its kernel is chosen when the library loads, by CPU model or by
 * OPENBLAS_CORETYPE, and machines where old builds mis-detect the CPU pin it to an AVX2 kernel —
 * half the f32 rate of a core with full-width AVX-512 (sgemm 119 vs 222 GFLOP/s on one core of
 * the benchmark machine). This kernel is ours to choose: it runs whenever the CPU has AVX-512F. */
#include "cpu_fgemm.h"

#include "tensor_types.h"

#include <stdlib.h>
#include <string.h>

#define FG_ROWS 12  /* rows per panel */
#define FG_KROWS 6  /* rows per kernel call */
#define FG_TOK 16   /* tokens per vector */
#define FG_GROUPS 4 /* token vectors per kernel call: 24 sums in registers */

typedef struct fg_state {
    float *x; /* (n_grp, cols, FG_TOK) the activations, column by column per 16 tokens */
    size_t x_cap;
    float *panels; /* (n_threads, FG_ROWS, cols) */
    size_t panel_cap; /* floats, all threads */
    int64_t cols;
    int32_t n_tok, n_grp;
} fg_state;

void cpu_fgemm_free(cpu_backend *cb) {
    fg_state *st = cb->fgemm;
    if (!st) return;
    free(st->x);
    free(st->panels);
    free(st);
    cb->fgemm = NULL;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define FG_TARGET __attribute__((target("avx512f,fma")))
#define FG_INLINE FG_TARGET static inline __attribute__((always_inline))

typedef struct fg_job {
    fg_state *st;
    const float *x;
    const rs_tensor *w;
    float *y;
} fg_job;

/* Group g of the activations: token g·16 + l, column k -> st->x[(g·cols + k)·16 + l]. */
static void layout_task(void *arg, int32_t g, int32_t thread) {
    (void)thread;
    const fg_job *job = arg;
    const fg_state *st = job->st;
    const int64_t cols = st->cols;
    float *dst = st->x + (size_t)g * cols * FG_TOK;
    const int32_t nt = RS_MIN(FG_TOK, st->n_tok - g * FG_TOK);
    if (nt < FG_TOK) memset(dst, 0, (size_t)cols * FG_TOK * sizeof(float));
    for (int32_t l = 0; l < nt; l++) {
        const float *src = job->x + (size_t)(g * FG_TOK + l) * cols;
        for (int64_t k = 0; k < cols; k++) dst[k * FG_TOK + l] = src[k];
    }
}

/* out[g][r][t] = Σ_k w[r][k] · x_g[k][t] for FG_KROWS rows of a panel and ng (a compile-time
 * constant at each call) groups of 16 tokens, x_g = x + g · group_stride: each weight broadcast
 * serves ng vectors, each activation load FG_KROWS rows. */
FG_INLINE void tile(const float *w, const float *x, size_t group_stride, int64_t cols, int ng,
                    float out[FG_GROUPS][FG_KROWS][FG_TOK]) {
    __m512 acc[FG_GROUPS][FG_KROWS];
#pragma GCC unroll 4
    for (int g = 0; g < ng; g++)
#pragma GCC unroll 8
        for (int r = 0; r < FG_KROWS; r++) acc[g][r] = _mm512_setzero_ps();
    for (int64_t k = 0; k < cols; k++) {
        __m512 xk[FG_GROUPS];
#pragma GCC unroll 4
        for (int g = 0; g < ng; g++) xk[g] = _mm512_load_ps(x + g * group_stride + k * FG_TOK);
#pragma GCC unroll 8
        for (int r = 0; r < FG_KROWS; r++) {
            const __m512 wr = _mm512_set1_ps(w[(size_t)r * cols + k]);
#pragma GCC unroll 4
            for (int g = 0; g < ng; g++) acc[g][r] = _mm512_fmadd_ps(xk[g], wr, acc[g][r]);
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < ng; g++)
#pragma GCC unroll 8
        for (int r = 0; r < FG_KROWS; r++) _mm512_storeu_ps(out[g][r], acc[g][r]);
}

FG_TARGET static void tile_wide(const float *w, const float *x, size_t group_stride,
                                int64_t cols, float out[FG_GROUPS][FG_KROWS][FG_TOK]) {
    tile(w, x, group_stride, cols, FG_GROUPS, out);
}

FG_TARGET static void tile_one(const float *w, const float *x, size_t group_stride, int64_t cols,
                               float out[FG_GROUPS][FG_KROWS][FG_TOK]) {
    tile(w, x, group_stride, cols, 1, out);
}

static void panel_task(void *arg, int32_t task, int32_t thread) {
    const fg_job *job = arg;
    const fg_state *st = job->st;
    const rs_tensor *w = job->w;
    const int64_t rows = w->ne[1], cols = st->cols, r0 = (int64_t)task * FG_ROWS;
    const int64_t nr = RS_MIN(FG_ROWS, rows - r0);
    float *panel = st->panels + (size_t)thread * FG_ROWS * cols;
    for (int64_t r = 0; r < nr; r++)
        tensor_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes,
                              panel + (size_t)r * cols, cols);
    if (nr < FG_ROWS) memset(panel + (size_t)nr * cols, 0, (size_t)(FG_ROWS - nr) * cols * 4);
    const size_t stride = (size_t)cols * FG_TOK;
    for (int32_t g0 = 0; g0 < st->n_grp;) {
        const int ng = st->n_grp - g0 >= FG_GROUPS ? FG_GROUPS : 1;
        for (int64_t k0 = 0; k0 < nr; k0 += FG_KROWS) {
            float out[FG_GROUPS][FG_KROWS][FG_TOK];
            (ng == FG_GROUPS ? tile_wide : tile_one)(panel + (size_t)k0 * cols,
                                                     st->x + (size_t)g0 * stride, stride, cols,
                                                     out);
            const int64_t n = RS_MIN(FG_KROWS, nr - k0);
            for (int g = 0; g < ng; g++) {
                const int32_t nt = RS_MIN(FG_TOK, st->n_tok - (g0 + g) * FG_TOK);
                for (int32_t t = 0; t < nt; t++) {
                    float *yt = job->y + (size_t)((g0 + g) * FG_TOK + t) * rows + r0 + k0;
                    for (int64_t r = 0; r < n; r++) yt[r] = out[g][r][t];
                }
            }
        }
        g0 += ng;
    }
}

static bool reserve(float **buf, size_t *cap, size_t floats, const char *what) {
    if (floats <= *cap) return true;
    free(*buf);
    *buf = rs_aligned_alloc(floats * sizeof(float), what);
    *cap = *buf ? floats : 0;
    return *buf != NULL;
}

bool cpu_fgemm(cpu_backend *cb, const rs_tensor *w, const float *x, float *y, int32_t n_tok) {
    const tensor_type_info *t = tensor_type_get(w->type);
    if (tensor_isa_best() < TENSOR_ISA_AVX512 || !t || !t->supported || n_tok <= 0) return false;
    if (!cb->fgemm && !(cb->fgemm = rs_calloc(1, sizeof(fg_state), "f32 GEMM state")))
        return false;
    fg_state *st = cb->fgemm;
    const int64_t cols = w->ne[0];
    const int32_t n_grp = (n_tok + FG_TOK - 1) / FG_TOK;
    if (!reserve(&st->x, &st->x_cap, (size_t)n_grp * cols * FG_TOK, "f32 GEMM activations") ||
        !reserve(&st->panels, &st->panel_cap, (size_t)FG_ROWS * cols * cb->n_threads,
                 "f32 GEMM panels"))
        return false;
    st->cols = cols;
    st->n_tok = n_tok;
    st->n_grp = n_grp;
    fg_job job = {.st = st, .x = x, .w = w, .y = y};
    thread_pool_run(cb->pool, layout_task, &job, n_grp);
    thread_pool_run(cb->pool, panel_task, &job, (int32_t)((w->ne[1] + FG_ROWS - 1) / FG_ROWS));
    return true;
}

#else

bool cpu_fgemm(cpu_backend *cb, const rs_tensor *w, const float *x, float *y, int32_t n_tok) {
    (void)cb, (void)w, (void)x, (void)y, (void)n_tok;
    return false;
}

#endif
