/* cpu_rows_tokens.c — a few tokens (parallel traces, short batches) times weight rows.
 *
 * The dot-product path of cpu_matmul.c reads each weight row once for all tokens; with one dot
 * kernel call per token it also converted the row once per token, so 8 traces paid 8
 * conversions of every weight (F16: a conversion and an FMA per weight and token). Here each
 * row is converted once: 4 rows times 6 (or 4, 2) tokens per pass, per 16 columns 4 row loads
 * (F16 and BF16 converted on the fly, f32 rows that the caller dequantized), one load per token
 * and 24 independent FMAs. While a pass runs, the caller's next rows are prefetched: the pass is
 * long enough for the hardware prefetcher's stream to stall, and without it the next rows'
 * first loads waited on memory (0.5B F16, 8 traces: 151 -> 204 tokens/s; converting F16 on the
 * fly instead of through an f32 row: 204 -> 290). */
#include "backend_cpu.h"

#include "tensor_types.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define RT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
enum { RT_F32, RT_F16, RT_BF16 };

/* y[t * ys + r] = w_r · x_t for r < nr, t < nt (compile-time constants, nr * nt <= 24): every
 * 16 columns nr row loads and nt token loads feed nr * nt independent FMAs. */
/* 16 weights of row r at column c: f32, or F16/BF16 converted on the fly (kind). */
RT_TARGET static inline __attribute__((always_inline)) __m512 load16(const void *w, size_t rs,
                                                                     int r, int64_t c, int kind,
                                                                     __mmask16 k) {
    const uint8_t *p = (const uint8_t *)w + (size_t)r * rs;
    if (kind == RT_F32) return _mm512_maskz_loadu_ps(k, (const float *)p + c);
    const __m256i h = _mm256_maskz_loadu_epi16(k, (const uint16_t *)p + c);
    if (kind == RT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

RT_TARGET static inline __attribute__((always_inline)) void rows_by_tokens(
    const void *w, size_t rs, int kind, int64_t cols, int nr, const float *x, int nt, float *y,
    size_t ys, const char *pf, int64_t pf_lines) {
    __m512 a[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) a[r][t] = _mm512_setzero_ps();
    int64_t c = 0;
    /* the caller's next rows, spread over the column steps (see cpu_rows_tokens) */
    const int64_t per_step = (pf_lines + cols / 16) / (cols / 16 + 1);
    for (int64_t step = 0; c + 16 <= cols; c += 16, step++) {
        for (int64_t i = 0; i < per_step; i++)
            _mm_prefetch(pf + 64 * RS_MIN(pf_lines - 1, step * per_step + i), _MM_HINT_T0);
        __m512 v[4];
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) v[r] = load16(w, rs, r, c, kind, 0xffff);
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const __m512 xt = _mm512_loadu_ps(x + (size_t)t * cols + c);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++) a[r][t] = _mm512_fmadd_ps(v[r], xt, a[r][t]);
        }
    }
    if (c < cols) {
        const __mmask16 k = (__mmask16)((1u << (cols - c)) - 1);
        __m512 v[4];
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) v[r] = load16(w, rs, r, c, kind, k);
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const __m512 xt = _mm512_maskz_loadu_ps(k, x + (size_t)t * cols + c);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++) a[r][t] = _mm512_fmadd_ps(v[r], xt, a[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) y[(size_t)t * ys + r] = _mm512_reduce_add_ps(a[r][t]);
}

/* Tokens in groups of RT_TOK, 4 rows at a time (fewer rows: one row and token per pass). */
#define RT_TOK 6
RT_TARGET static void rows_tokens_avx512(const void *w, size_t rs, int kind, int64_t cols,
                                         int32_t nr, const float *x, int32_t n_tok, float *y,
                                         size_t ys, const char *pf, int64_t pf_lines) {
    for (int32_t t0 = 0; t0 < n_tok; t0 += RT_TOK, pf_lines = 0) {
        const float *xt = x + (size_t)t0 * cols;
        float *yt = y + (size_t)t0 * ys;
        const int nt = RS_MIN(RT_TOK, n_tok - t0);
#define RT_CALL(k, t) rows_by_tokens(w, rs, k, cols, 4, xt, t, yt, ys, pf, pf_lines)
#define RT_KINDS(t)                                                                                \
    (kind == RT_F16    ? RT_CALL(RT_F16, t)                                                        \
     : kind == RT_BF16 ? RT_CALL(RT_BF16, t)                                                       \
                       : RT_CALL(RT_F32, t))
        if (nr == 4 && nt == 6) RT_KINDS(6);
        else if (nr == 4 && nt == 4) RT_KINDS(4);
        else if (nr == 4 && nt == 2) RT_KINDS(2);
        else
            for (int32_t r = 0; r < nr; r++)
                for (int t = 0; t < nt; t++)
                    rows_by_tokens((const uint8_t *)w + (size_t)r * rs, rs, kind, cols, 1,
                                   xt + (size_t)t * cols, 1, yt + (size_t)t * ys + r, ys, pf, 0);
#undef RT_KINDS
#undef RT_CALL
    }
}

static int kind_of(uint32_t type) {
    return type == TENSOR_F16 ? RT_F16 : type == TENSOR_BF16 ? RT_BF16 : RT_F32;
}
#endif

bool cpu_rows_tokens_available(void) {
#if defined(__x86_64__)
    return tensor_isa_best() >= TENSOR_ISA_AVX512;
#else
    return false;
#endif
}

bool cpu_rows_tokens_direct(uint32_t type) {
    return type == TENSOR_F32 || type == TENSOR_F16 || type == TENSOR_BF16;
}

void cpu_rows_tokens(const void *w, size_t row_bytes, uint32_t type, int64_t cols, int32_t n_rows,
                     const float *x, int32_t n_tok, float *y, size_t y_stride, const void *next,
                     size_t next_bytes) {
#if defined(__x86_64__)
    if (cpu_rows_tokens_available()) {
        rows_tokens_avx512(w, row_bytes, kind_of(type), cols, n_rows, x, n_tok, y, y_stride,
                           next, next ? (int64_t)(next_bytes + 63) / 64 : 0);
        return;
    }
#endif
    (void)next, (void)next_bytes;
    const tensor_dot_fn dot = tensor_dot_kernel(type);
    for (int32_t r = 0; r < n_rows; r++)
        for (int32_t t = 0; t < n_tok; t++)
            y[(size_t)t * y_stride + r] =
                dot((const uint8_t *)w + (size_t)r * row_bytes, x + (size_t)t * cols, cols);
}
