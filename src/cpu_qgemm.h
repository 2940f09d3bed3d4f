/* cpu_qgemm.h — integer matrix products for batches of tokens (8-bit activations, AVX-512 VNNI).
 *
 * y (n_tok, rows) = x (n_tok, cols) · wᵀ for quantized weights, with the numerics of the fast
 * decode path (activations rounded to 8 bits per 32; docs/performance.md): the weight rows are
 * unpacked once per panel of 16 rows into 8-bit codes with f32 scales (cpu_qgemm_pack.c), and a
 * register-blocked kernel multiplies each panel with 16 tokens at a time (cpu_qgemm.c). */
#ifndef REASON_CPU_QGEMM_H
#define REASON_CPU_QGEMM_H

#include "backend_cpu.h"

/* Rows of one panel: one AVX-512 register holds a 32-bit lane per row. */
#define QG_ROWS 16

/* How a type's weights look once unpacked: value = d[sub-block] * (code - 128) + m[32-block].
 * sub is 32, or 16 for Q6_K (a scale per 16 values); has_min for the types with an offset per
 * block (Q4_1, Q5_1, Q4_K, Q5_K). nibbles (Q4_0, Q4_1): by group, the codes stay the file's
 * 4-bit ones (see qg_layout). */
typedef struct qg_format {
    int32_t sub;
    bool has_min;
    bool nibbles;
    bool half; /* kept panels only: scales and offsets the file's f16 ones, as they are */
} qg_format;

/* How a panel's codes and scales are ordered. QG_BY_ROW, for the wide kernel (16 tokens per
 * vector, weights broadcast): row by row,
 *   w (QG_ROWS, cols): the codes;
 *   d (QG_ROWS, nb * 32 / sub): the scale of each sub-block;
 *   m (QG_ROWS, nb): the offset of each 32-block (has_min only).
 * QG_BY_GROUP, for the narrow kernel (16 rows per vector, activations broadcast): every 4-column
 * group's codes of the 16 rows in one 64-byte vector, and the scales row-minor,
 *   w (nb, 8, QG_ROWS, 4); d (nb * 32 / sub, QG_ROWS); m (nb, QG_ROWS).
 * For the nibbles formats w is (nb, 4, QG_ROWS, 4) bytes of the file's codes q (0–15, value
 * d·(q − 8) for Q4_0, d·q + m for Q4_1): vector j's low nibbles are group j, its high nibbles
 * group j + 4. */
typedef enum qg_layout { QG_BY_ROW, QG_BY_GROUP } qg_layout;

/* One panel of QG_ROWS rows of cols columns (nb = cols / 32 blocks), in one of the layouts; its
 * scales and offsets in f32 (d, m) or, for a half format, f16 (d16, m16; d and m NULL). */
typedef struct qg_panel {
    uint8_t *w;
    float *d;
    float *m;
    uint16_t *d16;
    uint16_t *m16;
} qg_panel;

/* False when the type has no unpacked form (the caller keeps the other paths). */
RS_INTERNAL bool qg_format_of(uint32_t type, qg_format *f);
/* Bytes of one panel of cols columns (a multiple of 256 bytes, so panels stay aligned). */
RS_INTERNAL size_t qg_panel_bytes(const qg_format *f, int64_t cols);
/* Lays the panel out at base (qg_panel_bytes of it) and fills it with rows [0, n_rows) of the
 * matrix (row_bytes apart); rows n_rows..QG_ROWS-1 are zero weights (zero scales and offsets;
 * their codes are 128 by row, any value by group). */
RS_INTERNAL qg_panel qg_pack_panel(uint32_t type, const qg_format *f, qg_layout layout,
                                   const uint8_t *rows, size_t row_bytes, int32_t n_rows,
                                   int64_t cols, void *base);

/* Kept panels (cpu_qgemm_kept.h): a whole matrix unpacked once, by group, with the codes of the
 * nibbles formats at 4 bits (Q4_K's too: its codes and offsets take Q4_1's form) and the f16
 * scales of the 32-element types as they are (half). False when the type is not kept: Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0 and Q4_K are (measured in cpu_qgemm_pack.c). */
RS_INTERNAL bool qg_kept_format_of(uint32_t type, qg_format *kept);
RS_INTERNAL size_t qg_kept_panel_bytes(const qg_format *kept, int64_t cols);
/* The kept panel at base, as qg_pack_kept_panel left it. */
RS_INTERNAL qg_panel qg_kept_panel(const qg_format *kept, int64_t cols, void *base);
/* Fills the kept panel at base (qg_kept_panel_bytes) with rows [0, n_rows) as qg_pack_panel by
 * group; scratch holds qg_panel_bytes of the type's own format, 64-byte aligned. */
RS_INTERNAL qg_panel qg_pack_kept_panel(uint32_t type, const qg_format *kept, const uint8_t *rows,
                                        size_t row_bytes, int32_t n_rows, int64_t cols,
                                        void *base, void *scratch);

/* dst[0..n) = the dequantized row, bit-identical to tensor_dequantize_row, through the codes (a
 * fast path for the types without a SIMD dequantization); scratch holds QG_DEQUANT_SCRATCH(n)
 * bytes, 64-byte aligned. False when the type or CPU has no unpacked form or n % 256 != 0. */
#define QG_DEQUANT_SCRATCH(n) ((size_t)(n) * 2 + 64)
RS_INTERNAL bool qg_dequantize_row(uint32_t type, const void *row, float *dst, int64_t n,
                                   void *scratch);
/* True when cpu_qgemm can run type on this CPU. */
RS_INTERNAL bool cpu_qgemm_supports(uint32_t type);
/* Quantizes the n_tok rows of x (cols each) into the backend's GEMM activation buffer; false when
 * memory is short or the CPU lacks VNNI (then use another path). Several products of the same
 * input may follow. */
RS_INTERNAL bool cpu_qgemm_prepare(cpu_backend *cb, const float *x, int64_t cols, int32_t n_tok);
/* y = x · wᵀ for the x of the last cpu_qgemm_prepare (w->ne[0] columns, as prepared); false when
 * its scratch cannot be allocated (y untouched). */
RS_INTERNAL bool cpu_qgemm_run(cpu_backend *cb, const rs_tensor *w, float *y);
/* The products items[i].y = x · items[i].wᵀ (biases not added) as one unit of work: one pool run
 * instead of n, each a synchronisation of all threads (q, k and v; gate and up). False, nothing
 * computed, when one of them cannot run or n > QG_GROUP_MAX. */
#define QG_GROUP_MAX 8
RS_INTERNAL bool cpu_qgemm_run_group(cpu_backend *cb, const matmul_item *items, int32_t n);
/* Bytes of the matrices kept unpacked so far (cb->keep_unpacked). */
RS_INTERNAL size_t cpu_qgemm_kept_bytes(const cpu_backend *cb);
RS_INTERNAL void cpu_qgemm_free(cpu_backend *cb);

#endif
