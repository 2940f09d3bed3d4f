/* cpu_qgemm.c — y (n_tok, rows) = x · wᵀ for batches of tokens with 8-bit activations (VNNI).
 *
 * Activations: quantized once per call like the fast decode path — per 32 values a scale s,
 * int8 codes x̂, s·Σx̂ (for the offsets of Q4_1/K types) and −128·Σx̂ per 32 and per 16 (for the
 * +128 bias of the unsigned weight codes, see cpu_qgemm_pack.c).
 *
 * Two kernels, by the number of tokens. Both keep one int32 vector per (rows, tokens) pair of
 * the tile, start it at −128·Σx̂, take 8 vpdpbusd per 32-column block (4 codes × 16 lanes each),
 * then fold it into the f32 sum: acc += d ⊙ (s ⊙ int) [+ m ⊙ s·Σx̂] — the same products in the
 * same order, so both give the same bits.
 *  - Wide (16 tokens or more, prompts): lanes are 16 tokens. The activations are laid out so that
 *    the 4 codes of one column group of 16 tokens make one 64-byte vector (tokens padded with
 *    zeros to a multiple of 16); a row's 4 codes are broadcast. 8 rows × 16 tokens per call.
 *  - Narrow (1–15 tokens, parallel traces): 16-token lanes would be half empty at 8 traces, so
 *    the lanes are 16 rows instead: the panel is stored by 4-column group (QG_BY_GROUP) and each
 *    token's 4 codes are broadcast from its row of codes. 16 rows × up to 8 tokens per call.
 * The per-block float work is 3–4 instructions per vector next to 8 multiply-adds of 512
 * products.
 *
 * Work split: a task is a strip of QG_STRIP_PANELS panels (64 rows; narrow, fewer for long
 * rows): the task unpacks them into its thread's buffer (they stay in L2) and sweeps all tokens
 * over them, so every activation is read once per strip and every weight once per call. */
#include "cpu_qgemm.h"

#include "cpu_qgemm_kept.h"
#include "tensor_types.h"

#include <stdlib.h>
#include <string.h>

#define QG_TOK 16 /* tokens per vector (wide) */
#define QG_KROWS 8 /* rows per wide kernel call */
#define QN_TOK 8   /* tokens per narrow kernel call */
#define QG_STRIP_PANELS 4
/* Narrow: fewer panels per strip where they would pass this size, so that the strip, the next
 * one's raw rows being prefetched and the activations stay in L2 (Qwen2.5-1.5B Q4_K_M shape, 8
 * traces, fast: 143-148 tokens/s with 4 panels of its 8960-column rows, 156-159 at 128 or 256
 * KiB, 155 at 512). */
#define QN_STRIP_BYTES (256u << 10)
/* Narrow: the activations are quantized in tasks of this many blocks of all a group's tokens,
 * which share cache lines (tasks by token had both threads writing the same lines: 17% of an
 * 8-trace SmolLM2 step). */
#define QN_PREP_BLOCKS 16

typedef struct qg_act {
    int32_t *x;   /* (n_grp, nb, 8, QG_TOK) four codes per token and column group */
    float *s;     /* (n_grp, nb, QG_TOK) scale per 32 */
    float *sx;    /* (n_grp, nb, QG_TOK) scale · Σ codes */
    int32_t *z32; /* (n_grp, nb, QG_TOK) −128 · Σ codes per 32 */
    int32_t *z16; /* (n_grp, nb, 2, QG_TOK) −128 · Σ codes per 16 */
} qg_act;

/* The narrow kernel's activations, by groups of QN_TOK tokens (one kernel call), the tokens of
 * a group side by side, so that a block's broadcasts all come from one base address. */
typedef struct qn_act {
    int32_t *x;   /* (n_grp, nb, 8, QN_TOK) four codes per column group and token */
    float *s;     /* (n_grp, nb, QN_TOK) scale per 32 */
    float *sx;    /* (n_grp, nb, QN_TOK) scale · Σ codes */
    int32_t *z32; /* (n_grp, nb, QN_TOK) −128 · Σ codes per 32 */
    int32_t *z16; /* (n_grp, nb, 2, QN_TOK) −128 · Σ codes per 16 */
    int32_t *z8;  /* (n_grp, nb, QN_TOK) −8 · Σ codes per 32 (Q4_0 as nibbles) */
} qn_act;

/* Backend scratch: the quantized activations of the last prepare and the unpacked strips. */
typedef struct qg_state {
    void *act;
    size_t act_cap;
    qg_act a;  /* wide */
    qn_act an; /* narrow */
    bool narrow;
    int64_t cols;
    int32_t n_tok, n_grp;
    uint8_t *strips; /* (n_threads, strip bytes) */
    size_t strip_cap;
    qg_kept_set kept; /* matrices kept unpacked for the narrow kernel (cb->keep_unpacked) */
} qg_state;

bool cpu_qgemm_supports(uint32_t type) {
    qg_format f;
    return qg_format_of(type, &f) && rs_cpu_has_vnni();
}

size_t cpu_qgemm_kept_bytes(const cpu_backend *cb) {
    return cb->qgemm ? cb->qgemm->kept.bytes : 0;
}

void cpu_qgemm_free(cpu_backend *cb) {
    qg_state *st = cb->qgemm;
    if (!st) return;
    free(st->act);
    free(st->strips);
    qg_kept_free(&st->kept);
    free(st);
    cb->qgemm = NULL;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define QG_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))
#define QG_INLINE QG_TARGET static inline __attribute__((always_inline))

/* One block of 32 values: codes (qa: values 0–15, qb: 16–31) and scale, rounded to nearest
 * even as the decode path's quantizer. */
QG_INLINE float quantize_block(const float *x, __m512i *qa, __m512i *qb) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512 va = _mm512_loadu_ps(x), vb = _mm512_loadu_ps(x + 16);
    const __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign, va), _mm512_andnot_ps(sign, vb));
    const float amax = _mm512_reduce_max_ps(m);
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    *qa = _mm512_cvtps_epi32(_mm512_mul_ps(va, _mm512_set1_ps(id)));
    *qb = _mm512_cvtps_epi32(_mm512_mul_ps(vb, _mm512_set1_ps(id)));
    return amax / 127.0f;
}

/* The 8 four-code groups of a block's codes (qa, qb as quantize_block left them) to dst[j ·
 * stride], straight from the registers: through a buffer, each 4-byte load waited for the
 * narrowing store before it (store forwarding fails there; 17% of an 8-trace SmolLM2 step). */
QG_INLINE void store_groups(__m512i qa, __m512i qb, int32_t *dst, size_t stride) {
    const __m128i ca = _mm512_cvtsepi32_epi8(qa), cb = _mm512_cvtsepi32_epi8(qb);
    dst[0 * stride] = _mm_cvtsi128_si32(ca);
    dst[1 * stride] = _mm_extract_epi32(ca, 1);
    dst[2 * stride] = _mm_extract_epi32(ca, 2);
    dst[3 * stride] = _mm_extract_epi32(ca, 3);
    dst[4 * stride] = _mm_cvtsi128_si32(cb);
    dst[5 * stride] = _mm_extract_epi32(cb, 1);
    dst[6 * stride] = _mm_extract_epi32(cb, 2);
    dst[7 * stride] = _mm_extract_epi32(cb, 3);
}

/* Token t (lane l of its group) of x, wide layout: codes into the group's column-group vectors,
 * and per 32 the scale, scale·sum and −128·sums. */
QG_TARGET static void quantize_token(const float *x, int64_t cols, const qg_act *a, int64_t grp,
                                     int l) {
    const int64_t nb = cols / 32;
    for (int64_t i = 0; i < nb; i++, x += 32) {
        __m512i qa, qb;
        const float d = quantize_block(x, &qa, &qb);
        const size_t blk = (size_t)(grp * nb + i);
        store_groups(qa, qb, a->x + blk * 8 * QG_TOK + l, QG_TOK);
        const int32_t sa = _mm512_reduce_add_epi32(qa), sb = _mm512_reduce_add_epi32(qb);
        a->s[blk * QG_TOK + l] = d;
        a->sx[blk * QG_TOK + l] = d * (float)(sa + sb);
        a->z32[blk * QG_TOK + l] = -128 * (sa + sb);
        a->z16[(blk * 2) * QG_TOK + l] = -128 * sa;
        a->z16[(blk * 2 + 1) * QG_TOK + l] = -128 * sb;
    }
}

/* Blocks [b0, b1) of token t of x, narrow layout. */
QG_TARGET static void quantize_token_blocks(const float *x, int64_t cols, const qn_act *a,
                                            int32_t t, int64_t b0, int64_t b1) {
    const int64_t nb = cols / 32;
    const size_t grp = (size_t)(t / QN_TOK) * (size_t)nb, l = (size_t)(t % QN_TOK);
    x += 32 * b0;
    for (int64_t i = b0; i < b1; i++, x += 32) {
        __m512i qa, qb;
        const float d = quantize_block(x, &qa, &qb);
        const size_t blk = grp + (size_t)i, k = blk * QN_TOK + l;
        store_groups(qa, qb, a->x + blk * 8 * QN_TOK + l, QN_TOK);
        const int32_t sa = _mm512_reduce_add_epi32(qa), sb = _mm512_reduce_add_epi32(qb);
        a->s[k] = d;
        a->sx[k] = d * (float)(sa + sb);
        a->z32[k] = -128 * (sa + sb);
        a->z16[(blk * 2) * QN_TOK + l] = -128 * sa;
        a->z16[(blk * 2 + 1) * QN_TOK + l] = -128 * sb;
        a->z8[k] = -8 * (sa + sb);
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
    const int64_t cols = st->cols;
    if (st->narrow) { /* a task: QN_PREP_BLOCKS blocks of a group's tokens */
        const int64_t nb = cols / 32, n_chunks = (nb + QN_PREP_BLOCKS - 1) / QN_PREP_BLOCKS;
        const int64_t b0 = task % n_chunks * QN_PREP_BLOCKS, b1 = RS_MIN(nb, b0 + QN_PREP_BLOCKS);
        const int32_t t0 = (int32_t)(task / n_chunks) * QN_TOK;
        for (int32_t t = t0; t < RS_MIN(t0 + QN_TOK, st->n_tok); t++)
            quantize_token_blocks(job->x + (size_t)t * cols, cols, &st->an, t, b0, b1);
        return;
    }
    for (int l = 0; l < QG_TOK && task * QG_TOK + l < st->n_tok; l++)
        quantize_token(job->x + (size_t)(task * QG_TOK + l) * cols, cols, &st->a, task, l);
}

/* ia[r] += the 4-column groups j0..j1-1 of block b: row r's 4 codes broadcast times the group's
 * activation vector. */
QG_INLINE void int_dots(__m512i ia[QG_KROWS], const uint8_t *w, int64_t cols, const int32_t *xb,
                        int64_t b, int j0, int j1) {
#pragma GCC unroll 8
    for (int j = j0; j < j1; j++) {
        const __m512i xj = _mm512_load_si512((const void *)(xb + j * QG_TOK));
#pragma GCC unroll 8
        for (int r = 0; r < QG_KROWS; r++) {
            int32_t w4;
            memcpy(&w4, w + (size_t)r * cols + 32 * b + 4 * j, 4);
            ia[r] = _mm512_dpbusd_epi32(ia[r], _mm512_set1_epi32(w4), xj);
        }
    }
}

/* acc[r] += d[r · stride] · (s ⊙ ia[r]). */
QG_INLINE void scale_add(__m512 acc[QG_KROWS], const __m512i ia[QG_KROWS], const float *d,
                         int64_t stride, __m512 s) {
#pragma GCC unroll 8
    for (int r = 0; r < QG_KROWS; r++)
        acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(ia[r]), s),
                                 _mm512_set1_ps(d[r * stride]), acc[r]);
}

QG_INLINE void int_init(__m512i ia[QG_KROWS], const int32_t *z) {
    const __m512i v = _mm512_load_si512((const void *)z);
#pragma GCC unroll 8
    for (int r = 0; r < QG_KROWS; r++) ia[r] = v;
}

/* Rows r0..r0+7 of the panel times the 16 tokens of group grp, over all blocks, into
 * out[r][token]. sub and has_min are compile-time constants at every call, so each
 * combination compiles to its own loop with everything in registers. */
QG_INLINE void tile(const qg_panel *p, int r0, const qg_act *a, int64_t cols, int64_t grp,
                    int sub, bool has_min, float out[QG_KROWS][QG_TOK]) {
    const int64_t nb = cols / 32, n_sub = nb * (32 / sub);
    const uint8_t *w = p->w + (size_t)r0 * cols;
    const float *d = p->d + (size_t)r0 * n_sub, *m = has_min ? p->m + (size_t)r0 * nb : NULL;
    __m512 acc[QG_KROWS];
#pragma GCC unroll 8
    for (int r = 0; r < QG_KROWS; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const size_t blk = (size_t)(grp * nb + b);
        const int32_t *xb = a->x + blk * 8 * QG_TOK;
        const __m512 s = _mm512_load_ps(a->s + blk * QG_TOK);
        __m512i ia[QG_KROWS];
        if (sub == 16) { /* two scales per block: halves of 16 columns */
            int_init(ia, a->z16 + blk * 2 * QG_TOK);
            int_dots(ia, w, cols, xb, b, 0, 4);
            scale_add(acc, ia, d + 2 * b, n_sub, s);
            int_init(ia, a->z16 + (blk * 2 + 1) * QG_TOK);
            int_dots(ia, w, cols, xb, b, 4, 8);
            scale_add(acc, ia, d + 2 * b + 1, n_sub, s);
        } else {
            int_init(ia, a->z32 + blk * QG_TOK);
            int_dots(ia, w, cols, xb, b, 0, 8);
            scale_add(acc, ia, d + b, n_sub, s);
        }
        if (has_min) {
            const __m512 sx = _mm512_load_ps(a->sx + blk * QG_TOK);
#pragma GCC unroll 8
            for (int r = 0; r < QG_KROWS; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(m[r * nb + b]), sx, acc[r]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < QG_KROWS; r++) _mm512_storeu_ps(out[r], acc[r]);
}

typedef void (*tile_fn)(const qg_panel *, int, const qg_act *, int64_t, int64_t,
                        float[QG_KROWS][QG_TOK]);

QG_TARGET static void tile_32(const qg_panel *p, int r0, const qg_act *a, int64_t cols,
                              int64_t grp, float out[QG_KROWS][QG_TOK]) {
    tile(p, r0, a, cols, grp, 32, false, out);
}
QG_TARGET static void tile_32_min(const qg_panel *p, int r0, const qg_act *a, int64_t cols,
                                  int64_t grp, float out[QG_KROWS][QG_TOK]) {
    tile(p, r0, a, cols, grp, 32, true, out);
}
QG_TARGET static void tile_16(const qg_panel *p, int r0, const qg_act *a, int64_t cols,
                              int64_t grp, float out[QG_KROWS][QG_TOK]) {
    tile(p, r0, a, cols, grp, 16, false, out);
}

/* ---- narrow: 16 rows per vector ------------------------------------------------------------ */

/* ia[t] += column groups j0..j1-1 of a block: the group's 16-row code vector (w: the block's;
 * nibbles: the low or high halves of its 4 vectors) times token t's 4 codes (xb: the block's)
 * broadcast. */
QG_INLINE void int_dots_rows(__m512i ia[QN_TOK], int nt, const uint8_t *w, bool nib,
                             const int32_t *xb, int j0, int j1) {
#pragma GCC unroll 8
    for (int j = j0; j < j1; j++) {
        const __m512i m4 = _mm512_set1_epi8(0x0f);
        const __m512i wj =
            !nib ? _mm512_load_si512((const void *)(w + 64 * j))
            : j < 4
                ? _mm512_and_si512(_mm512_load_si512((const void *)(w + 64 * j)), m4)
                : _mm512_and_si512(
                      _mm512_srli_epi16(_mm512_load_si512((const void *)(w + 64 * (j - 4))), 4),
                      m4);
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++)
            ia[t] = _mm512_dpbusd_epi32(ia[t], wj, _mm512_set1_epi32(xb[j * QN_TOK + t]));
    }
}

/* acc[t] += d ⊙ (s[t] ⊙ ia[t]). */
QG_INLINE void scale_add_rows(__m512 acc[QN_TOK], __m512i ia[QN_TOK], int nt, __m512 d,
                              const float *s) {
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(ia[t]), _mm512_set1_ps(s[t])), d,
                                 acc[t]);
}

/* ia[t] = z[t]; z NULL: zero. */
QG_INLINE void int_init_rows(__m512i ia[QN_TOK], int nt, const int32_t *z) {
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) ia[t] = z ? _mm512_set1_epi32(z[t]) : _mm512_setzero_si512();
}

/* Cache lines [pf, end) are fetched ahead, lines_per_block at each block of the kernel calls (a
 * few lines past end may be fetched too: prefetches never fault; addresses as integers, as they
 * may point past the object). */
typedef struct qn_prefetch {
    uintptr_t pf, end;
    int64_t lines_per_block;
} qn_prefetch;

/* The 16 f32 scales (or offsets) at index i of a panel's f32 or (half) f16 ones. */
QG_INLINE __m512 scales16(const float *f32, const uint16_t *f16, bool half, int64_t i) {
    return half ? _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(f16 + i * QG_ROWS)))
                : _mm512_load_ps(f32 + i * QG_ROWS);
}

/* The 16 rows of the panel (mask: those that exist) times tokens t0..t0+nt-1, over all blocks,
 * into y (row stride y_rows), prefetching pf on the way. nt, sub, has_min, nib and half are
 * compile-time constants at every call. The nibbles start their sums at −8·Σx̂ (Q4_0: q − 8)
 * or 0 (Q4_1: the offset m takes the place of the bias). */
QG_INLINE void tile_rows(const qg_panel *p, const qn_act *a, int64_t cols, int32_t t0, int nt,
                         int sub, bool has_min, bool nib, bool half, float *y, int64_t y_rows,
                         __mmask16 mask, qn_prefetch pf) {
    const int64_t nb = cols / 32;
    const size_t g = (size_t)(t0 / QN_TOK) * (size_t)nb; /* the group's first block */
    const int32_t *x = a->x + g * 8 * QN_TOK;
    const float *s = a->s + g * QN_TOK, *sx = a->sx + g * QN_TOK;
    const int32_t *z32 = !nib ? a->z32 + g * QN_TOK : has_min ? NULL : a->z8 + g * QN_TOK;
    const int32_t *z16 = a->z16 + g * 2 * QN_TOK;
    __m512 acc[QN_TOK];
    __m512i ia[QN_TOK];
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        if (pf.pf < pf.end) {
            for (int64_t i = 0; i < pf.lines_per_block; i++)
                _mm_prefetch((const char *)(pf.pf + 64 * (uintptr_t)i), _MM_HINT_T0);
            pf.pf += 64 * (uintptr_t)pf.lines_per_block;
        }
        const uint8_t *w = p->w + (nib ? 256 : 512) * b;
        const int32_t *xb = x + b * 8 * QN_TOK;
        const float *sb = s + b * QN_TOK;
        if (sub == 16) { /* two scales per block: halves of 16 columns */
            int_init_rows(ia, nt, z16 + 2 * b * QN_TOK);
            int_dots_rows(ia, nt, w, false, xb, 0, 4);
            scale_add_rows(acc, ia, nt, scales16(p->d, p->d16, half, 2 * b), sb);
            int_init_rows(ia, nt, z16 + (2 * b + 1) * QN_TOK);
            int_dots_rows(ia, nt, w, false, xb, 4, 8);
            scale_add_rows(acc, ia, nt, scales16(p->d, p->d16, half, 2 * b + 1), sb);
        } else {
            int_init_rows(ia, nt, z32 ? z32 + b * QN_TOK : NULL);
            int_dots_rows(ia, nt, w, nib, xb, 0, 8);
            scale_add_rows(acc, ia, nt, scales16(p->d, p->d16, half, b), sb);
        }
        if (has_min) {
            const __m512 m = scales16(p->m, p->m16, half, b);
#pragma GCC unroll 8
            for (int t = 0; t < nt; t++)
                acc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(sx[b * QN_TOK + t]), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) _mm512_mask_storeu_ps(y + (size_t)(t0 + t) * y_rows, mask, acc[t]);
}

typedef void (*tile_rows_fn)(const qg_panel *, const qn_act *, int64_t, int32_t, float *, int64_t,
                             __mmask16, qn_prefetch);

#define TILE_ROWS_FN(name, nt, sub, has_min, nib, half)                                            \
    QG_TARGET static void name(const qg_panel *p, const qn_act *a, int64_t cols, int32_t t0,       \
                               float *y, int64_t y_rows, __mmask16 m, qn_prefetch pf) {            \
        tile_rows(p, a, cols, t0, nt, sub, has_min, nib, half, y, y_rows, m, pf);                  \
    }
#define TILE_ROWS(nt)                                                                              \
    TILE_ROWS_FN(tile_rows_32_##nt, nt, 32, false, false, false)                                   \
    TILE_ROWS_FN(tile_rows_32_min_##nt, nt, 32, true, false, false)                                \
    TILE_ROWS_FN(tile_rows_16_##nt, nt, 16, false, false, false)                                   \
    TILE_ROWS_FN(tile_rows_nib_##nt, nt, 32, false, true, false)                                   \
    TILE_ROWS_FN(tile_rows_nib_min_##nt, nt, 32, true, true, false)                                \
    TILE_ROWS_FN(tile_rows_32_h_##nt, nt, 32, false, false, true)                                  \
    TILE_ROWS_FN(tile_rows_32_min_h_##nt, nt, 32, true, false, true)                               \
    TILE_ROWS_FN(tile_rows_nib_h_##nt, nt, 32, false, true, true)                                  \
    TILE_ROWS_FN(tile_rows_nib_min_h_##nt, nt, 32, true, true, true)
TILE_ROWS(1)
TILE_ROWS(2)
TILE_ROWS(3)
TILE_ROWS(4)
TILE_ROWS(5)
TILE_ROWS(6)
TILE_ROWS(7)
TILE_ROWS(8)

#define BY_TOKENS(f) {f##_1, f##_2, f##_3, f##_4, f##_5, f##_6, f##_7, f##_8}
/* [format][nt − 1], format as kernel_format numbers them */
static const tile_rows_fn tile_rows_kernels[9][QN_TOK] = {
    BY_TOKENS(tile_rows_32),     BY_TOKENS(tile_rows_32_min),   BY_TOKENS(tile_rows_16),
    BY_TOKENS(tile_rows_nib),    BY_TOKENS(tile_rows_nib_min),  BY_TOKENS(tile_rows_32_h),
    BY_TOKENS(tile_rows_32_min_h), BY_TOKENS(tile_rows_nib_h), BY_TOKENS(tile_rows_nib_min_h),
};
#undef BY_TOKENS

/* 0 = 32-value sub-blocks, 1 = with offsets, 2 = 16, 3 = nibbles (Q4_0), 4 = nibbles with offsets
 * (Q4_1, kept Q4_K); 5-8 = 0, 1, 3, 4 with f16 scales (half). */
static int kernel_format(const qg_format *f) {
    const int base = f->nibbles ? 3 + f->has_min : f->sub == 16 ? 2 : f->has_min;
    return f->half ? (base >= 3 ? base + 4 : base + 5) : base;
}

typedef struct run_job {
    qg_state *st;
    int32_t n_threads, strip_panels;
    const rs_tensor *w;
    qg_format f;       /* of the panels the kernel reads (the kept form for a kept matrix) */
    size_t panel_bytes;
    qg_kept *kept;     /* the matrix kept unpacked, or NULL: unpacked per task */
    float *y;
} run_job;

/* The narrow kernel over the task's panels (rows r0..): tokens 8 at a time. Few tokens: the
 * products take about as long as streaming the weights, so the strip this thread most likely
 * takes next (tasks are claimed in turn) is fetched meanwhile, spread over the kernel's blocks:
 * its kept panels, or its rows to unpack. */
static void run_narrow(const run_job *job, const qg_panel *panels, int32_t n_panels, int64_t r0) {
    const qg_state *st = job->st;
    const rs_tensor *w = job->w;
    const int64_t rows = w->ne[1], cols = st->cols, nb = cols / 32;
    const int64_t next = r0 + (int64_t)job->n_threads * job->strip_panels * QG_ROWS;
    const int64_t n_calls = (int64_t)((st->n_tok + QN_TOK - 1) / QN_TOK) * n_panels;
    qn_prefetch pf = {0};
    if (next < rows) {
        const int64_t next_rows = RS_MIN(job->strip_panels * QG_ROWS, rows - next);
        const bool kept = job->kept && job->kept->ready;
        pf.pf = (uintptr_t)(kept ? job->kept->panels + (size_t)(next / QG_ROWS) * job->panel_bytes
                                 : (const uint8_t *)w->data + (size_t)next * w->row_bytes);
        const int64_t bytes = kept ? (next_rows + QG_ROWS - 1) / QG_ROWS * (int64_t)job->panel_bytes
                                   : next_rows * (int64_t)w->row_bytes;
        pf.end = pf.pf + (uintptr_t)bytes;
        pf.lines_per_block = ((bytes + 63) / 64 + n_calls * nb - 1) / (n_calls * nb);
    }
    const int format = kernel_format(&job->f);
    for (int32_t t0 = 0; t0 < st->n_tok; t0 += QN_TOK) {
        const tile_rows_fn kernel = tile_rows_kernels[format][RS_MIN(QN_TOK, st->n_tok - t0) - 1];
        for (int32_t i = 0; i < n_panels; i++) {
            const int64_t row0 = r0 + i * QG_ROWS, nr = RS_MIN(QG_ROWS, rows - row0);
            kernel(&panels[i], &st->an, cols, t0, job->y + row0, rows, (__mmask16)((1u << nr) - 1),
                   pf);
            if (pf.pf < pf.end) pf.pf += 64 * (uintptr_t)(pf.lines_per_block * nb);
        }
    }
}

static void run_task(void *arg, int32_t task, int32_t thread) {
    const run_job *job = arg;
    const qg_state *st = job->st;
    const rs_tensor *w = job->w;
    const int64_t rows = w->ne[1], cols = st->cols;
    const int64_t r0 = (int64_t)task * job->strip_panels * QG_ROWS;
    uint8_t *buf = st->strips + (size_t)thread * st->strip_cap;
    qg_panel panels[QG_STRIP_PANELS];
    int32_t n_panels = 0;
    for (; n_panels < job->strip_panels && r0 + n_panels * QG_ROWS < rows; n_panels++) {
        const int64_t pr = r0 + n_panels * QG_ROWS;
        const uint8_t *src = (const uint8_t *)w->data + (size_t)pr * w->row_bytes;
        const int32_t n_rows = (int32_t)RS_MIN(QG_ROWS, rows - pr);
        if (job->kept) {
            uint8_t *at = job->kept->panels + (size_t)(pr / QG_ROWS) * job->panel_bytes;
            panels[n_panels] =
                job->kept->ready
                    ? qg_kept_panel(&job->f, cols, at)
                    : qg_pack_kept_panel(w->type, &job->f, src, w->row_bytes, n_rows, cols, at, buf);
        } else {
            panels[n_panels] = qg_pack_panel(w->type, &job->f, st->narrow ? QG_BY_GROUP : QG_BY_ROW,
                                             src, w->row_bytes, n_rows, cols,
                                             buf + (size_t)n_panels * job->panel_bytes);
        }
    }
    if (st->narrow) {
        run_narrow(job, panels, n_panels, r0);
        return;
    }
    const tile_fn kernel = job->f.sub == 16 ? tile_16 : job->f.has_min ? tile_32_min : tile_32;
    for (int32_t g = 0; g < st->n_grp; g++) {
        const int32_t nt = RS_MIN(QG_TOK, st->n_tok - g * QG_TOK);
        for (int32_t i = 0; i < n_panels; i++)
            for (int k = 0; k < QG_ROWS; k += QG_KROWS) {
                const int64_t row0 = r0 + i * QG_ROWS + k;
                if (row0 >= rows) break;
                float out[QG_KROWS][QG_TOK];
                kernel(&panels[i], k, &st->a, cols, g, out);
                const int64_t nr = RS_MIN(QG_KROWS, rows - row0);
                for (int32_t t = 0; t < nt; t++) {
                    float *yt = job->y + (size_t)(g * QG_TOK + t) * rows + row0;
                    for (int64_t r = 0; r < nr; r++) yt[r] = out[r][t];
                }
            }
    }
}

bool cpu_qgemm_prepare(cpu_backend *cb, const float *x, int64_t cols, int32_t n_tok) {
    if (!rs_cpu_has_vnni() || cols % 32 || n_tok <= 0) return false;
    if (!cb->qgemm && !(cb->qgemm = rs_calloc(1, sizeof(qg_state), "integer GEMM state")))
        return false;
    qg_state *st = cb->qgemm;
    const bool narrow = n_tok < QG_TOK;
    const size_t n_grp = ((size_t)n_tok + QG_TOK - 1) / QG_TOK, nb = (size_t)cols / 32;
    /* bytes of one value per (token, block), padded to whole groups of tokens (narrow: the
     * padding lanes are never read) */
    const size_t lanes = narrow ? ((size_t)n_tok + QN_TOK - 1) / QN_TOK * QN_TOK : n_grp * QG_TOK;
    const size_t blk = lanes * nb * 4;
    const size_t need = 8 * blk + 6 * blk; /* codes; s, sx, z32, z16 (twice as long), z8 */
    if (need > st->act_cap) {
        free(st->act);
        st->act = rs_aligned_alloc(need, "quantized activations");
        st->act_cap = st->act ? need : 0;
        if (!st->act) return false;
    }
    uint8_t *p = st->act;
    if (narrow)
        st->an = (qn_act){.x = (int32_t *)p,
                          .s = (float *)(p + 8 * blk),
                          .sx = (float *)(p + 9 * blk),
                          .z32 = (int32_t *)(p + 10 * blk),
                          .z16 = (int32_t *)(p + 11 * blk),
                          .z8 = (int32_t *)(p + 13 * blk)};
    else
        st->a = (qg_act){.x = (int32_t *)p,
                         .s = (float *)(p + 8 * blk),
                         .sx = (float *)(p + 9 * blk),
                         .z32 = (int32_t *)(p + 10 * blk),
                         .z16 = (int32_t *)(p + 11 * blk)};
    st->narrow = narrow;
    st->cols = cols;
    st->n_tok = n_tok;
    st->n_grp = (int32_t)n_grp;
    if (!narrow && n_tok % QG_TOK) /* padding lanes: zero codes and scales, so they add nothing */
        memset(p, 0, need);
    prep_job job = {.x = x, .st = st};
    const int32_t n_tasks = narrow ? (int32_t)(lanes / QN_TOK * ((nb + QN_PREP_BLOCKS - 1) /
                                                                  QN_PREP_BLOCKS))
                                   : (int32_t)n_grp;
    thread_pool_run(cb->pool, prep_task, &job, n_tasks);
    return true;
}

/* The job of w's product into y (from w's kept panels where may_keep allows); its number of
 * tasks, or 0 when the product cannot run (type, shape, or no memory for the strips). */
static int32_t setup_job(cpu_backend *cb, const rs_tensor *w, float *y, bool may_keep,
                         run_job *job) {
    qg_state *st = cb->qgemm;
    *job = (run_job){.st = st, .n_threads = cb->n_threads, .w = w, .y = y};
    if (!st || w->ne[0] != st->cols || !qg_format_of(w->type, &job->f)) return 0;
    const size_t strip = qg_panel_bytes(&job->f, st->cols) * QG_STRIP_PANELS; /* unpacking */
    qg_format kept;
    if (may_keep && st->narrow && cb->keep_unpacked && w->row_bytes <= INT32_MAX / QG_ROWS &&
        qg_kept_format_of(w->type, &kept)) { /* (the half scales are gathered at 32-bit offsets) */
        const size_t bytes = (size_t)((w->ne[1] + QG_ROWS - 1) / QG_ROWS) *
                             qg_kept_panel_bytes(&kept, st->cols);
        if ((job->kept = qg_kept_get(&st->kept, w, bytes))) job->f = kept;
    }
    job->panel_bytes =
        job->kept ? qg_kept_panel_bytes(&job->f, st->cols) : qg_panel_bytes(&job->f, st->cols);
    job->strip_panels = QG_STRIP_PANELS;
    while (st->narrow && job->strip_panels > 1 &&
           job->panel_bytes * (size_t)job->strip_panels > QN_STRIP_BYTES)
        job->strip_panels /= 2;
    if (strip > st->strip_cap) {
        free(st->strips);
        st->strips = rs_aligned_alloc((size_t)cb->n_threads * strip, "unpacked weight strips");
        st->strip_cap = st->strips ? strip : 0;
        if (!st->strips) return 0;
    }
    const int64_t strip_rows = (int64_t)job->strip_panels * QG_ROWS;
    return (int32_t)((w->ne[1] + strip_rows - 1) / strip_rows);
}

bool cpu_qgemm_run(cpu_backend *cb, const rs_tensor *w, float *y) {
    const matmul_item item = {.w = w, .y = y};
    return cpu_qgemm_run_group(cb, &item, 1);
}

bool cpu_qgemm_run_group(cpu_backend *cb, const matmul_item *items, int32_t n) {
    /* the products of a group as one pool run */
    _Static_assert(QG_GROUP_MAX <= POOL_GROUP_MAX, "a group fits one pool_group");
    run_job jobs[QG_GROUP_MAX];
    pool_group g = {.task = run_task, .n = n};
    if (n < 1 || n > QG_GROUP_MAX) return false;
    for (int32_t i = 0; i < n; i++) {
        int32_t tasks = setup_job(cb, items[i].w, items[i].y, true, &jobs[i]);
        /* a matrix twice in the group: only its first product fills its kept panels (the other
         * would write the same bytes while they are read) */
        for (int32_t j = 0; j < i && jobs[i].kept && !jobs[i].kept->ready; j++)
            if (jobs[j].kept == jobs[i].kept)
                tasks = setup_job(cb, items[i].w, items[i].y, false, &jobs[i]);
        if (!tasks) return false;
        g.jobs[i] = &jobs[i];
        g.first[i + 1] = g.first[i] + tasks;
    }
    thread_pool_run(cb->pool, pool_group_task, &g, g.first[n]);
    for (int32_t i = 0; i < n; i++)
        if (jobs[i].kept) jobs[i].kept->ready = true;
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

bool cpu_qgemm_run_group(cpu_backend *cb, const matmul_item *items, int32_t n) {
    (void)cb, (void)items, (void)n;
    return false;
}

#endif
