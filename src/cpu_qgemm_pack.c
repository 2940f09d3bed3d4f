/* cpu_qgemm_pack.c — quantized weight rows unpacked into the integer GEMM's panel layout.
 *
 * Every supported type is an integer code q per weight with a float scale per block (and for
 * some an offset): value = d·(q − zero) [+ m]. The kernel wants one unsigned byte per weight for
 * vpdpbusd, so each code is stored as q − zero + 128 (all codes fit: |q − zero| ≤ 128) and the
 * kernel takes 128·(sum of the activations) back off. Scales are evaluated with the same f32
 * expressions as the dequantization in tensor_types.c (d·sc for the K types), so d·(code − 128)
 * + m is the dequantized weight up to the rounding of its final multiply.
 *
 * Codes: the 32 codes of each block are built in one 256-bit register (nibble masks, the
 * fifth/sixth bits merged, MXFP4 through a byte shuffle). By row (the wide kernel broadcasts 4
 * codes at a time) they are stored as they are; by group (the narrow kernel, under 16 tokens)
 * the blocks of 16 rows are transposed as 16 × 8 four-byte groups in 32 shuffles (Q4_0/Q4_1:
 * their 16 bytes of nibbles as 16 × 4 words, 20 shuffles, split by the kernel; Q5_0/Q5_1, Q4_K
 * and Q6_K: their raw nibbles and high bits transposed first, then split — fewer operations per
 * row than building each row's codes). Unpacking must cost little next to the products: with
 * few tokens per call (parallel traces) it is paid once per 1–16 tokens. Scales: by row, scalar,
 * one per 32 (or 16) values; by group, gathered (32-element types) or transposed (K types). x86
 * only, like the kernel (cpu_qgemm.c). */
#include "cpu_qgemm.h"

#include "tensor_types.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define PK_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c")))
#define PK_INLINE PK_TARGET static inline __attribute__((always_inline))

PK_TARGET static inline float ld_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h); /* F16C: exact, like rs_f16_to_f32 */
}

static inline uint32_t ld32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- codes: the 32 biased codes of block blk (of 32 columns) of one row -------------------- */

PK_INLINE __m256i load128x2(const uint8_t *p) {
    return _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p));
}

/* 16 nibble bytes (element j low, j + 16 high) -> 32 codes in element order. */
PK_INLINE __m256i nibbles(const uint8_t *qs) {
    const __m128i x = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0x0f);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(x, m4)),
                                   _mm_and_si128(_mm_srli_epi16(x, 4), m4), 1);
}

/* Bit 4 set in byte j where bit j of qh is set. */
PK_INLINE __m256i fifth_bits(uint32_t qh) {
    return _mm256_maskz_mov_epi8((__mmask32)qh, _mm256_set1_epi8(0x10));
}

/* Q4_K / Q5_K sub-block j of a super-block: low (even j) or high nibbles of 32 bytes. */
PK_INLINE __m256i k_nibbles(const uint8_t *qs32, int j) {
    const __m256i x = _mm256_loadu_si256((const __m256i *)qs32);
    return _mm256_and_si256(j & 1 ? _mm256_srli_epi16(x, 4) : x, _mm256_set1_epi8(0x0f));
}

/* Block blk = 8 sb + j (j a compile-time constant at every call after unrolling, so the K
 * types' shifts are immediates). */
PK_INLINE __m256i codes_of(uint32_t type, const uint8_t *row, int64_t sb, int j) {
    const int64_t blk = 8 * sb + j;
    const __m256i bias128 = _mm256_set1_epi8((char)128);
    switch (type) {
    case TENSOR_Q4_0:
        return _mm256_add_epi8(nibbles(row + blk * 18 + 2), _mm256_set1_epi8(128 - 8));
    case TENSOR_Q4_1: return _mm256_add_epi8(nibbles(row + blk * 20 + 4), bias128);
    case TENSOR_Q5_0: {
        const uint8_t *b = row + blk * 22;
        return _mm256_add_epi8(_mm256_or_si256(nibbles(b + 6), fifth_bits(ld32(b + 2))),
                               _mm256_set1_epi8(128 - 16));
    }
    case TENSOR_Q5_1: {
        const uint8_t *b = row + blk * 24;
        return _mm256_add_epi8(_mm256_or_si256(nibbles(b + 8), fifth_bits(ld32(b + 4))), bias128);
    }
    case TENSOR_Q8_0:
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(row + blk * 34 + 2)), bias128);
    case TENSOR_MXFP4: {
        const __m128i table = _mm_setr_epi8(RS_MXFP4_KVALUES);
        const __m256i t2 = _mm256_broadcastsi128_si256(table);
        return _mm256_add_epi8(_mm256_shuffle_epi8(t2, nibbles(row + blk * 17 + 1)), bias128);
    }
    case TENSOR_Q4_K: {
        const uint8_t *b = row + sb * 144;
        return _mm256_add_epi8(k_nibbles(b + 16 + 32 * (j / 2), j), bias128);
    }
    case TENSOR_Q5_K: {
        const uint8_t *b = row + sb * 176;
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
        const __m256i hi = _mm256_slli_epi16(
            _mm256_and_si256(_mm256_srli_epi16(qh, j), _mm256_set1_epi8(1)), 4);
        return _mm256_add_epi8(_mm256_or_si256(k_nibbles(b + 48 + 32 * (j / 2), j), hi), bias128);
    }
    case TENSOR_Q6_K: { /* 32-block blk = half h, group g of a super-block */
        const uint8_t *b = row + sb * 210;
        const int h = j / 4, g = j % 4;
        const __m256i lo = k_nibbles(b + 64 * h + 32 * (g & 1), g >= 2);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
        const __m256i hi = _mm256_slli_epi16(
            _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), _mm256_set1_epi8(3)), 4);
        return _mm256_add_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(128 - 32));
    }
    default: return bias128;
    }
}

/* The codes of one row (nb blocks) into w. */
PK_INLINE void pack_codes(uint32_t type, const uint8_t *row, int64_t nb, uint8_t *w) {
    int64_t sb = 0;
    for (; 8 * sb + 8 <= nb; sb++)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            _mm256_store_si256((__m256i *)(w + 32 * (8 * sb + j)), codes_of(type, row, sb, j));
    for (int j = 0; 8 * sb + j < nb; j++) /* 32-element types: blocks past the last 8 */
        _mm256_store_si256((__m256i *)(w + 32 * (8 * sb + j)), codes_of(type, row, sb, j));
}

/* One block of 16 rows (c[r]: its 8 four-byte groups) as 8 vectors (transpose_groups; stored
 * 64 bytes apart by store_groups), vector j holding group j of rows 0..15 in order: pairs of
 * rows in 512-bit registers, then the 8 × 8 transpose of each 256-bit half (32- and 64-bit
 * unpacks), then 128-bit lanes picked from two registers.
 * The pairs are (k, k + 4) and (k + 8, k + 12), so that the lanes come out in row order. */
PK_INLINE void transpose_groups(const __m256i c[QG_ROWS], __m512i out[8]) {
    __m512i z[8], t[8], u[8];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        z[k] = _mm512_inserti64x4(_mm512_castsi256_si512(c[k]), c[k + 4], 1);
        z[k + 4] = _mm512_inserti64x4(_mm512_castsi256_si512(c[k + 8]), c[k + 12], 1);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 8; h += 4) {
        t[h] = _mm512_unpacklo_epi32(z[h], z[h + 1]);
        t[h + 1] = _mm512_unpackhi_epi32(z[h], z[h + 1]);
        t[h + 2] = _mm512_unpacklo_epi32(z[h + 2], z[h + 3]);
        t[h + 3] = _mm512_unpackhi_epi32(z[h + 2], z[h + 3]);
        u[h] = _mm512_unpacklo_epi64(t[h], t[h + 2]);     /* groups 0, 4 */
        u[h + 1] = _mm512_unpackhi_epi64(t[h], t[h + 2]); /* groups 1, 5 */
        u[h + 2] = _mm512_unpacklo_epi64(t[h + 1], t[h + 3]);
        u[h + 3] = _mm512_unpackhi_epi64(t[h + 1], t[h + 3]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        out[j] = _mm512_shuffle_i32x4(u[j], u[j + 4], 0x88);
        out[j + 4] = _mm512_shuffle_i32x4(u[j], u[j + 4], 0xdd);
    }
}

PK_INLINE void store_groups(const __m256i c[QG_ROWS], uint8_t *dst) {
    __m512i out[8];
    transpose_groups(c, out);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) _mm512_store_si512((void *)(dst + 64 * j), out[j]);
}

/* The 16 bytes at offset o of 16 rows as 4 vectors of four-byte words: out[j] lane r = word j of
 * row r. Register a gets rows a, a + 4, a + 8, a + 12 in its 128-bit lanes, then a 4 × 4
 * transpose within the lanes puts the rows in order (20 shuffles). */
PK_INLINE void transpose_words(const uint8_t *const row[QG_ROWS], size_t o, __m512i out[4]) {
    __m512i z[4];
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(row[a] + o)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(row[a + 4] + o)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(row[a + 8] + o)), 2);
        z[a] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(row[a + 12] + o)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm512_unpacklo_epi64(t0, t2);
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* Q4_0 / Q4_1 by group, kept as nibbles: the 16 code bytes of each row's block (offset off in
 * the block of bytes) as 16 rows × 4 words — byte k holds elements k and k + 16, so word j holds
 * groups j and j + 4. */
PK_INLINE void pack_nibbles_groups(const uint8_t *const row[QG_ROWS], int64_t nb, size_t bytes,
                                   size_t off, uint8_t *w) {
    for (int64_t i = 0; i < nb; i++, w += 256) {
        __m512i words[4];
        transpose_words(row, (size_t)i * bytes + off, words);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) _mm512_store_si512((void *)(w + 64 * j), words[j]);
    }
}

/* Q5_0 / Q5_1 by group: the nibbles transposed as for Q4_0, the fifth bits of 16 rows gathered
 * (the u32 qh at offset qh_off, bit k for element k): group j's 4 bits of each row index a table
 * of the 16 four-byte patterns of 0x10s. Then the bias, to the usual biased codes. False when
 * the rows are too far apart for 32-bit gather offsets (the caller takes the generic path). */
PK_INLINE bool pack_q5_groups(const uint8_t *const row[QG_ROWS], int64_t nb, size_t bytes,
                              size_t qh_off, size_t qs_off, int bias, uint8_t *w) {
    int32_t offs[QG_ROWS];
    for (int r = 0; r < QG_ROWS; r++) {
        const ptrdiff_t d = row[r] - row[0];
        if (d < 0 || d > INT32_MAX) return false;
        offs[r] = (int32_t)d;
    }
    const __m512i vo = _mm512_loadu_si512(offs), m4 = _mm512_set1_epi8(0x0f);
    const __m512i b = _mm512_set1_epi8((char)bias);
    const __m512i fifth_of = _mm512_setr_epi32(
        0, 0x10, 0x1000, 0x1010, 0x100000, 0x100010, 0x101000, 0x101010, 0x10000000, 0x10000010,
        0x10001000, 0x10001010, 0x10100000, 0x10100010, 0x10101000, 0x10101010);
    for (int64_t i = 0; i < nb; i++, w += 512) {
        const size_t o = (size_t)i * bytes;
        __m512i words[4];
        transpose_words(row, o + qs_off, words);
        const __m512i qh = _mm512_i32gather_epi32(vo, row[0] + o + qh_off, 1);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m512i nib = j < 4 ? _mm512_and_si512(words[j], m4)
                                      : _mm512_and_si512(_mm512_srli_epi16(words[j - 4], 4), m4);
            const __m512i idx = _mm512_and_si512(_mm512_srli_epi32(qh, 4 * j),
                                                 _mm512_set1_epi32(15));
            const __m512i fifth = _mm512_permutexvar_epi32(idx, fifth_of);
            _mm512_store_si512((void *)(w + 64 * j),
                               _mm512_add_epi8(_mm512_or_si512(nib, fifth), b));
        }
    }
    return true;
}

/* Q4_K / Q5_K by group: each 32 bytes of nibbles (the low ones sub-block 2c, the high ones
 * 2c + 1) of 16 rows transposed once as 16 × 8 words for both sub-blocks, then split and biased;
 * Q5_K (five) also transposes its 32 bytes of fifth bits once per super-block (bit j of byte k:
 * element k of sub-block j). */
PK_INLINE void pack_qk_groups(const uint8_t *const row[QG_ROWS], int64_t nb, bool five,
                              uint8_t *w) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m10 = _mm512_set1_epi8(0x10);
    const __m512i bias = _mm512_set1_epi8((char)128);
    const size_t bytes = five ? 176 : 144, qs = five ? 48 : 16;
    for (int64_t sb = 0; 8 * sb < nb; sb++) {
        __m256i q[QG_ROWS];
        __m512i words[8], fifth[8];
        if (five) {
#pragma GCC unroll 16
            for (int r = 0; r < QG_ROWS; r++)
                q[r] = _mm256_loadu_si256((const __m256i *)(row[r] + sb * bytes + 16));
            transpose_groups(q, fifth);
        }
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
#pragma GCC unroll 16
            for (int r = 0; r < QG_ROWS; r++)
                q[r] = _mm256_loadu_si256((const __m256i *)(row[r] + sb * bytes + qs + 32 * c));
            transpose_groups(q, words);
#pragma GCC unroll 2
            for (int half = 0; half < 2; half++) {
                const int sub = 2 * c + half; /* sub-block: its fifth bits are bit sub */
                uint8_t *dst = w + 512 * (8 * sb + sub);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    __m512i v = _mm512_and_si512(half ? _mm512_srli_epi16(words[j], 4) : words[j],
                                                 m4);
                    if (five)
                        v = _mm512_or_si512(
                            v, _mm512_and_si512(sub <= 4 ? _mm512_slli_epi16(fifth[j], 4 - sub)
                                                         : _mm512_srli_epi16(fifth[j], sub - 4),
                                                m10));
                    _mm512_store_si512((void *)(dst + 64 * j), _mm512_add_epi8(v, bias));
                }
            }
        }
    }
}

/* Q6_K by group: per half of a super-block, its two 32-byte runs of low nibbles and its 32
 * bytes of high bit pairs are each transposed once (16 × 8 words) for the half's 4 blocks of
 * 32: block g takes the low (g < 2) or high nibbles of run g % 2 and bits 2g, 2g + 1. */
PK_INLINE void pack_q6_k_groups(const uint8_t *const row[QG_ROWS], int64_t nb, uint8_t *w) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i bias = _mm512_set1_epi8((char)(128 - 32));
    for (int64_t sb = 0; 8 * sb < nb; sb++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i q[QG_ROWS];
            __m512i run[2][8], bits[8];
#pragma GCC unroll 2
            for (int k = 0; k < 2; k++) {
#pragma GCC unroll 16
                for (int r = 0; r < QG_ROWS; r++)
                    q[r] = _mm256_loadu_si256(
                        (const __m256i *)(row[r] + sb * 210 + 64 * h + 32 * k));
                transpose_groups(q, run[k]);
            }
#pragma GCC unroll 16
            for (int r = 0; r < QG_ROWS; r++)
                q[r] = _mm256_loadu_si256((const __m256i *)(row[r] + sb * 210 + 128 + 32 * h));
            transpose_groups(q, bits);
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                uint8_t *dst = w + 512 * (8 * sb + 4 * h + g);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    const __m512i v = run[g % 2][j];
                    const __m512i lo = _mm512_and_si512(g < 2 ? v : _mm512_srli_epi16(v, 4), m4);
                    const __m512i b = bits[j];
                    const __m512i hi = _mm512_and_si512(
                        g < 2 ? _mm512_slli_epi16(b, 4 - 2 * g) : _mm512_srli_epi16(b, 2 * g - 4),
                        m30);
                    _mm512_store_si512((void *)(dst + 64 * j),
                                       _mm512_add_epi8(_mm512_or_si512(lo, hi), bias));
                }
            }
        }
}

/* The codes of 16 rows (row[r]) by group, nb blocks. */
PK_INLINE void pack_codes_groups(uint32_t type, const uint8_t *const row[QG_ROWS], int64_t nb,
                                 uint8_t *w) {
    __m256i c[QG_ROWS];
    for (int64_t sb = 0; 8 * sb < nb; sb++)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            if (8 * sb + j >= nb) break; /* 32-element types: blocks past the last 8 */
#pragma GCC unroll 16
            for (int r = 0; r < QG_ROWS; r++) c[r] = codes_of(type, row[r], sb, j);
            store_groups(c, w + 512 * (8 * sb + j));
        }
}

#define PACKER_ROW(name, type)                                                                     \
    PK_TARGET static void name(const uint8_t *row, int64_t nb, uint8_t *w) {                       \
        pack_codes(type, row, nb, w);                                                              \
    }
#define PACKER(name, type)                                                                         \
    PACKER_ROW(name, type)                                                                         \
    PK_TARGET static void name##_groups(const uint8_t *const row[QG_ROWS], int64_t nb,             \
                                        uint8_t *w) {                                              \
        pack_codes_groups(type, row, nb, w);                                                       \
    }
PACKER_ROW(codes_q4_0, TENSOR_Q4_0)
PACKER_ROW(codes_q4_1, TENSOR_Q4_1)
PK_TARGET static void codes_q4_0_groups(const uint8_t *const row[QG_ROWS], int64_t nb,
                                        uint8_t *w) {
    pack_nibbles_groups(row, nb, 18, 2, w);
}
PK_TARGET static void codes_q4_1_groups(const uint8_t *const row[QG_ROWS], int64_t nb,
                                        uint8_t *w) {
    pack_nibbles_groups(row, nb, 20, 4, w);
}
PACKER_ROW(codes_q5_0, TENSOR_Q5_0)
PACKER_ROW(codes_q5_1, TENSOR_Q5_1)
PK_TARGET static void codes_q5_0_groups(const uint8_t *const row[QG_ROWS], int64_t nb,
                                        uint8_t *w) {
    if (!pack_q5_groups(row, nb, 22, 2, 6, 128 - 16, w)) pack_codes_groups(TENSOR_Q5_0, row, nb, w);
}
PK_TARGET static void codes_q5_1_groups(const uint8_t *const row[QG_ROWS], int64_t nb,
                                        uint8_t *w) {
    if (!pack_q5_groups(row, nb, 24, 4, 8, 128, w)) pack_codes_groups(TENSOR_Q5_1, row, nb, w);
}
PACKER(codes_q8_0, TENSOR_Q8_0)
PACKER(codes_mxfp4, TENSOR_MXFP4)
PACKER_ROW(codes_q4_K, TENSOR_Q4_K)
PK_TARGET static void codes_q4_K_groups(const uint8_t *const row[QG_ROWS], int64_t nb,
                                        uint8_t *w) {
    pack_qk_groups(row, nb, false, w);
}
PACKER_ROW(codes_q5_K, TENSOR_Q5_K)
PK_TARGET static void codes_q5_K_groups(const uint8_t *const row[QG_ROWS], int64_t nb,
                                        uint8_t *w) {
    pack_qk_groups(row, nb, true, w);
}
PACKER_ROW(codes_q6_K, TENSOR_Q6_K)
PK_TARGET static void codes_q6_K_groups(const uint8_t *const row[QG_ROWS], int64_t nb,
                                        uint8_t *w) {
    pack_q6_k_groups(row, nb, w);
}

/* ---- scales: d (and m) of every sub-block of one row ---------------------------------------- */

typedef struct row_scales {
    float *d; /* the row's scales */
    float *m; /* the row's offsets, or NULL */
} row_scales;

/* The 32-element types: f16 d at offset 0 (E8M0 for MXFP4), f16 m at 2 for the min types. */
PK_TARGET static void scales_32(uint32_t type, const uint8_t *b, int64_t nb, const row_scales *s) {
    const size_t bytes = (size_t)tensor_type_get(type)->block_bytes;
    for (int64_t i = 0; i < nb; i++, b += bytes) {
        s->d[i] = type == TENSOR_MXFP4 ? rs_e8m0_half(b[0]) : ld_f16(b);
        if (s->m) s->m[i] = ld_f16(b + 2);
    }
}

/* Q4_K / Q5_K super-block b: d·sc (*d) and −dmin·m (*m) of its 8 sub-blocks
 * (rs_k_scales_min8). −(dmin·m): the product rounded, then negated (exact), as in the
 * dequantization. */
PK_INLINE void k_scales8(const uint8_t *b, __m256 *d, __m256 *m) {
    uint64_t sc, mn;
    rs_k_scales_min8(b + 4, &sc, &mn);
    const __m256 vs = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
    const __m256 vm = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn)));
    *d = _mm256_mul_ps(_mm256_set1_ps(ld_f16(b)), vs);
    *m = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(_mm256_set1_ps(ld_f16(b + 2)), vm));
}

/* Q6_K super-block b: d·sc of its 16 sub-blocks of 16. */
PK_INLINE __m512 q6_k_scales16(const uint8_t *b) {
    const __m512 sc =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 192))));
    return _mm512_mul_ps(_mm512_set1_ps(ld_f16(b + 208)), sc);
}

PK_TARGET static void scales_qk(const uint8_t *b, int64_t nb, size_t bytes, const row_scales *s) {
    for (int64_t i = 0; i < nb; i++, b += bytes) {
        __m256 d, m;
        k_scales8(b, &d, &m);
        _mm256_storeu_ps(s->d + 8 * i, d);
        _mm256_storeu_ps(s->m + 8 * i, m);
    }
}

PK_TARGET static void scales_q6_K(const uint8_t *b, int64_t nb, const row_scales *s) {
    for (int64_t i = 0; i < nb; i++, b += 210) _mm512_storeu_ps(s->d + 16 * i, q6_k_scales16(b));
}

/* The K types' scales of 16 rows by group, super-block by super-block: each row's 8 (or 16)
 * values computed in a register, then turned into one vector of 16 rows per sub-block by the
 * codes' 16 × 8 transposition (store_groups) — the by-group layout of d and m. */
PK_TARGET static void scales_k_by_group(uint32_t type, const uint8_t *const row[QG_ROWS],
                                        int64_t n_super, float *d, float *m) {
    const size_t bytes = (size_t)tensor_type_get(type)->block_bytes;
    __m256i vd[QG_ROWS], vm[QG_ROWS], vd_hi[QG_ROWS];
    for (int64_t i = 0; i < n_super; i++) {
        const size_t o = (size_t)i * bytes;
        if (type == TENSOR_Q6_K) {
#pragma GCC unroll 16
            for (int r = 0; r < QG_ROWS; r++) {
                const __m512i v = _mm512_castps_si512(q6_k_scales16(row[r] + o));
                vd[r] = _mm512_castsi512_si256(v);
                vd_hi[r] = _mm512_extracti64x4_epi64(v, 1);
            }
            store_groups(vd, (uint8_t *)(d + 256 * i));
            store_groups(vd_hi, (uint8_t *)(d + 256 * i + 128));
        } else {
#pragma GCC unroll 16
            for (int r = 0; r < QG_ROWS; r++) {
                __m256 a, b;
                k_scales8(row[r] + o, &a, &b);
                vd[r] = _mm256_castps_si256(a);
                vm[r] = _mm256_castps_si256(b);
            }
            store_groups(vd, (uint8_t *)(d + 128 * i));
            store_groups(vm, (uint8_t *)(m + 128 * i));
        }
    }
}

PK_TARGET static void row_scales_of(uint32_t type, const uint8_t *row, int64_t n_native,
                          const row_scales *s) {
    switch (type) {
    case TENSOR_Q4_K: scales_qk(row, n_native, 144, s); break;
    case TENSOR_Q5_K: scales_qk(row, n_native, 176, s); break;
    case TENSOR_Q6_K: scales_q6_K(row, n_native, s); break;
    default: scales_32(type, row, n_native, s); break;
    }
}

typedef void (*codes_fn)(const uint8_t *row, int64_t nb, uint8_t *w);
typedef void (*group_codes_fn)(const uint8_t *const row[QG_ROWS], int64_t nb, uint8_t *w);

/* One row's scales into the by-group layout: sub-block i at d[i · QG_ROWS], 32-block i at
 * m[i · QG_ROWS]; a few native blocks at a time through a buffer on the stack. */
PK_TARGET static void row_scales_by_group(uint32_t type, const uint8_t *row, int64_t n_native,
                                          const qg_format *f, float *d, float *m) {
    enum { CHUNK = 16 }; /* native blocks per pass: at most 16 × 16 scales */
    const tensor_type_info *ti = tensor_type_get(type);
    const int64_t d_per = ti->block_size / f->sub, m_per = ti->block_size / 32;
    float td[CHUNK * 16], tm[CHUNK * 8];
    for (int64_t i0 = 0; i0 < n_native; i0 += CHUNK) {
        const int64_t n = RS_MIN(CHUNK, n_native - i0);
        row_scales_of(type, row + (size_t)i0 * (size_t)ti->block_bytes, n,
                      &(row_scales){.d = td, .m = m ? tm : NULL});
        for (int64_t k = 0; k < n * d_per; k++) d[(i0 * d_per + k) * QG_ROWS] = td[k];
        if (m)
            for (int64_t k = 0; k < n * m_per; k++) m[(i0 * m_per + k) * QG_ROWS] = tm[k];
    }
}

/* value = d·(code − 128) [+ m], a multiply then an add as in the scalar dequantization, so the
 * result is bit-identical to it; 16 values at a time from the codes of one row. */
PK_TARGET static void widen_row(const uint8_t *codes, const float *d, const float *m, int sub,
                                int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i += 16) {
        const __m512i c = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(codes + i)));
        const __m512 q = _mm512_cvtepi32_ps(_mm512_sub_epi32(c, _mm512_set1_epi32(128)));
        __m512 v = _mm512_mul_ps(_mm512_set1_ps(d[i / sub]), q);
        if (m) v = _mm512_add_ps(v, _mm512_set1_ps(m[i / 32]));
        _mm512_storeu_ps(dst + i, v);
    }
}

/* The unpackers of type (by row, and by group into *groups when it is not NULL). */
static codes_fn unpacker(uint32_t type, qg_format *f, group_codes_fn *groups) {
    *f = (qg_format){.sub = 32};
    codes_fn by_row = NULL;
    group_codes_fn by_group = NULL;
#define UNPACKER(t, fn)                                                                            \
    case t: by_row = fn, by_group = fn##_groups; break
    switch (type) {
        UNPACKER(TENSOR_Q4_0, codes_q4_0);
        UNPACKER(TENSOR_Q5_0, codes_q5_0);
        UNPACKER(TENSOR_Q8_0, codes_q8_0);
        UNPACKER(TENSOR_MXFP4, codes_mxfp4);
        UNPACKER(TENSOR_Q4_1, codes_q4_1);
        UNPACKER(TENSOR_Q5_1, codes_q5_1);
        UNPACKER(TENSOR_Q4_K, codes_q4_K);
        UNPACKER(TENSOR_Q5_K, codes_q5_K);
        UNPACKER(TENSOR_Q6_K, codes_q6_K);
    default: return NULL;
    }
#undef UNPACKER
    f->has_min = type == TENSOR_Q4_1 || type == TENSOR_Q5_1 || type == TENSOR_Q4_K ||
                 type == TENSOR_Q5_K;
    f->nibbles = type == TENSOR_Q4_0 || type == TENSOR_Q4_1;
    if (type == TENSOR_Q6_K) f->sub = 16;
    if (groups) *groups = by_group;
    return by_row;
}

bool qg_dequantize_row(uint32_t type, const void *row, float *dst, int64_t n, void *scratch) {
    qg_format f;
    const codes_fn codes = unpacker(type, &f, NULL);
    if (!codes || n % 32 || !rs_cpu_has_vnni()) return false;
    uint8_t *c = scratch;
    float *d = (float *)(c + n), *m = f.has_min ? d + n / 16 : NULL;
    codes(row, n / 32, c);
    row_scales_of(type, row, n / tensor_type_get(type)->block_size,
                  &(row_scales){.d = d, .m = m});
    widen_row(c, d, m, f.sub, n, dst);
    return true;
}

/* Whole rows in chunks of 2048 values (a multiple of every block size): scratch on the stack. */
static void dequantize_chunks(uint32_t type, const void *row, float *dst, int64_t n) {
    enum { CHUNK = 2048 };
    _Alignas(64) uint8_t scratch[QG_DEQUANT_SCRATCH(CHUNK)];
    const size_t chunk_bytes = tensor_row_bytes(type, CHUNK);
    for (int64_t i = 0; i < n; i += CHUNK)
        qg_dequantize_row(type, (const uint8_t *)row + (size_t)(i / CHUNK) * chunk_bytes, dst + i,
                          RS_MIN(CHUNK, n - i), scratch);
}

void rs_dequant_q5_0_codes(const void *row, float *dst, int64_t n) {
    dequantize_chunks(TENSOR_Q5_0, row, dst, n);
}
void rs_dequant_q5_1_codes(const void *row, float *dst, int64_t n) {
    dequantize_chunks(TENSOR_Q5_1, row, dst, n);
}
void rs_dequant_q5_K_codes(const void *row, float *dst, int64_t n) {
    dequantize_chunks(TENSOR_Q5_K, row, dst, n);
}
void rs_dequant_q6_K_codes(const void *row, float *dst, int64_t n) {
    dequantize_chunks(TENSOR_Q6_K, row, dst, n);
}

#else /* no x86: no integer GEMM */

bool qg_dequantize_row(uint32_t type, const void *row, float *dst, int64_t n, void *scratch) {
    (void)type, (void)row, (void)dst, (void)n, (void)scratch;
    return false;
}


typedef void (*codes_fn)(void);
typedef void (*group_codes_fn)(void);
static codes_fn unpacker(uint32_t type, qg_format *f, group_codes_fn *groups) {
    (void)type, (void)f, (void)groups;
    return NULL;
}

#endif

bool qg_format_of(uint32_t type, qg_format *f) { return unpacker(type, f, NULL) != NULL; }

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

/* Bytes of the codes of one panel: 8 bits per weight (the strips unpacked per call reserve that
 * much for every type), or 4 for a kept panel of a nibbles format. */
static size_t code_bytes(const qg_format *f, int64_t cols, bool compact) {
    return (size_t)cols * QG_ROWS / (compact && f->nibbles ? 2 : 1);
}

static size_t panel_bytes(const qg_format *f, int64_t cols, bool compact) {
    const size_t nb = (size_t)cols / 32, rows = QG_ROWS, scale = compact && f->half ? 2 : 4;
    return align256(code_bytes(f, cols, compact)) +
           align256(nb * (32 / (size_t)f->sub) * rows * scale) +
           (f->has_min ? align256(nb * rows * scale) : 0);
}

/* The panel at base: codes, then scales, then offsets, each 256-byte aligned. */
static qg_panel panel_at(const qg_format *f, int64_t cols, bool compact, void *base) {
    const size_t n_sub = (size_t)cols / 32 * (32 / (size_t)f->sub);
    const bool half = compact && f->half;
    qg_panel p = {.w = base};
    uint8_t *d = p.w + align256(code_bytes(f, cols, compact));
    uint8_t *m = f->has_min ? d + align256(n_sub * QG_ROWS * (half ? 2 : 4)) : NULL;
    if (half)
        p.d16 = (uint16_t *)d, p.m16 = (uint16_t *)m;
    else
        p.d = (float *)d, p.m = (float *)m;
    return p;
}

size_t qg_panel_bytes(const qg_format *f, int64_t cols) { return panel_bytes(f, cols, false); }

/* By row: each row's codes and scales in turn; missing rows code 128 (zero) with zero scales. */
static void pack_by_row(uint32_t type, const uint8_t *rows, size_t row_bytes, int32_t n_rows,
                        int64_t cols, const qg_panel *p, size_t n_sub) {
    const size_t nb = (size_t)cols / 32;
#if defined(__x86_64__)
    qg_format fmt;
    const codes_fn codes = unpacker(type, &fmt, NULL);
    const int64_t n_native = cols / tensor_type_get(type)->block_size;
    for (int32_t r = 0; r < n_rows; r++) {
        const uint8_t *row = rows + (size_t)r * row_bytes;
        codes(row, (int64_t)nb, p->w + (size_t)r * cols);
        const row_scales s = {.d = p->d + r * n_sub, .m = p->m ? p->m + r * nb : NULL};
        row_scales_of(type, row, n_native, &s);
    }
#else
    (void)type, (void)rows, (void)row_bytes;
#endif
    if (n_rows < QG_ROWS) {
        const size_t gone = (size_t)(QG_ROWS - n_rows);
        memset(p->w + (size_t)n_rows * cols, 128, gone * (size_t)cols);
        memset(p->d + (size_t)n_rows * n_sub, 0, gone * n_sub * 4);
        if (p->m) memset(p->m + (size_t)n_rows * nb, 0, gone * nb * 4);
    }
}

#if defined(__x86_64__)
/* The scales (and offsets) of the 32-element types by group, 16 rows at a time: one gather per
 * block brings each row's first 4 bytes (f16 d, then f16 m for the min types; E8M0 for MXFP4),
 * row r at offs[r] from rows, into the panel's f32 or (half) f16 ones. Rows past n_rows get
 * zeros. */
PK_TARGET static void scales_32_by_group(uint32_t type, const uint8_t *rows,
                                         const int32_t row_offs[QG_ROWS], int32_t n_rows,
                                         int64_t nb, const qg_panel *p) {
    const size_t bytes = (size_t)tensor_type_get(type)->block_bytes;
    const __m512i offs = _mm512_loadu_si512(row_offs);
    const __mmask16 mask = (__mmask16)((1u << n_rows) - 1);
    float *d = p->d, *m = p->m;
    for (int64_t i = 0; i < nb; i++) {
        const __m512i g = _mm512_maskz_mov_epi32(
            mask, _mm512_i32gather_epi32(offs, rows + (size_t)i * bytes, 1));
        if (p->d16) {
            _mm256_store_si256((__m256i *)(p->d16 + i * QG_ROWS), _mm512_cvtepi32_epi16(g));
            if (p->m16)
                _mm256_store_si256((__m256i *)(p->m16 + i * QG_ROWS),
                                   _mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
            continue;
        }
        __m512 vd;
        if (type == TENSOR_MXFP4) { /* rs_e8m0_half: 2^(e − 128), subnormal below e = 2 */
            const __m512i e = _mm512_and_si512(g, _mm512_set1_epi32(0xff));
            const __mmask16 small = _mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2));
            const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
            vd = _mm512_castsi512_ps(_mm512_maskz_mov_epi32( /* e = 0 is not a zero scale */
                mask, _mm512_mask_sllv_epi32(normal, small, _mm512_set1_epi32(0x00200000), e)));
        } else {
            vd = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)); /* zero rows: g zero, f16 zero */
        }
        _mm512_store_ps(d + i * QG_ROWS, vd);
        if (m)
            _mm512_store_ps(m + i * QG_ROWS,
                            _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16))));
    }
}
#endif

/* By group: missing rows repeat the last row's codes (no branch in the transposition) and have
 * zero scales and offsets, so they are zero weights all the same. */
static void pack_by_group(uint32_t type, const qg_format *f, const uint8_t *rows,
                          size_t row_bytes, int32_t n_rows, int64_t cols, const qg_panel *p,
                          size_t n_sub) {
    const size_t nb = (size_t)cols / 32;
#if defined(__x86_64__)
    qg_format fmt;
    group_codes_fn codes = NULL;
    unpacker(type, &fmt, &codes);
    const uint8_t *row[QG_ROWS];
    for (int32_t r = 0; r < QG_ROWS; r++) row[r] = rows + (size_t)RS_MIN(r, n_rows - 1) * row_bytes;
    codes(row, (int64_t)nb, p->w);
    const int64_t n_native = cols / tensor_type_get(type)->block_size;
    if (tensor_type_get(type)->block_size == 32 && row_bytes <= INT32_MAX / QG_ROWS) {
        int32_t offs[QG_ROWS];
        for (int32_t r = 0; r < QG_ROWS; r++) offs[r] = (int32_t)(row[r] - rows);
        scales_32_by_group(type, rows, offs, n_rows, (int64_t)nb, p);
        return;
    }
    if (tensor_type_get(type)->block_size == 256)
        scales_k_by_group(type, row, n_native, p->d, p->m);
    else
        for (int32_t r = 0; r < n_rows; r++)
            row_scales_by_group(type, row[r], n_native, f, p->d + r, p->m ? p->m + r : NULL);
#else
    (void)type, (void)f, (void)rows, (void)row_bytes;
#endif
    for (int32_t r = n_rows; r < QG_ROWS; r++) {
        for (size_t i = 0; i < n_sub; i++) p->d[i * QG_ROWS + (size_t)r] = 0.0f;
        if (p->m)
            for (size_t i = 0; i < nb; i++) p->m[i * QG_ROWS + (size_t)r] = 0.0f;
    }
}

qg_panel qg_pack_panel(uint32_t type, const qg_format *f, qg_layout layout, const uint8_t *rows,
                       size_t row_bytes, int32_t n_rows, int64_t cols, void *base) {
    const size_t n_sub = (size_t)cols / 32 * (32 / (size_t)f->sub);
    const qg_panel p = panel_at(f, cols, false, base);
    if (layout == QG_BY_GROUP)
        pack_by_group(type, f, rows, row_bytes, n_rows, cols, &p, n_sub);
    else
        pack_by_row(type, rows, row_bytes, n_rows, cols, &p, n_sub);
    return p;
}

/* ---- kept panels: by group, compact, for the whole of a weight matrix ------------------------ */

/* The types kept: where the kept panels, streamed from memory, beat unpacking at every product.
 * tools/bench_narrow (65536 x 1536 times 8 tokens, 2 threads, matrices far larger than the
 * caches), kept against per-step: Q4_0 1.95x, Q4_1 1.9x, Q4_K 1.8x, Q8_0 1.45x, Q5_1 1.4x, Q5_0
 * 1.33x, at 1.0x the file's bytes (Q4_0, Q4_1, Q8_0: codes and f16 scales as in the file), 1.33x
 * (Q4_K: nibbles with f32 scales and offsets), 1.5-1.55x (Q5_0, Q5_1: 8-bit codes). Not kept:
 * Q6_K (1.05-1.13x for 1.52x the memory), Q5_K (1.0x for 1.82x), MXFP4 (1.4x for 2.1x). */
bool qg_kept_format_of(uint32_t type, qg_format *f) {
    switch (type) {
    case TENSOR_Q4_0:
    case TENSOR_Q4_1:
    case TENSOR_Q5_0:
    case TENSOR_Q5_1:
    case TENSOR_Q8_0:
        if (!qg_format_of(type, f)) return false;
        f->half = true; /* the f16 scales of the file */
        return true;
    case TENSOR_Q4_K:
        if (!qg_format_of(type, f)) return false;
        f->nibbles = true; /* codes 0-15 and an offset: Q4_1's form */
        return true;
    default: return false;
    }
}

size_t qg_kept_panel_bytes(const qg_format *f, int64_t cols) { return panel_bytes(f, cols, true); }

qg_panel qg_kept_panel(const qg_format *f, int64_t cols, void *base) {
    return panel_at(f, cols, true, base);
}

#if defined(__x86_64__)
/* Q4_K: its 8-bit codes by group (q + 128, q in 0-15) folded into the nibbles layout, group j in
 * the low and group j + 4 in the high nibbles of vector j. */
PK_TARGET static void fold_to_nibbles(const uint8_t *w8, int64_t nb, uint8_t *w4) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int64_t i = 0; i < nb; i++, w8 += 512, w4 += 256)
        for (int j = 0; j < 4; j++) {
            const __m512i lo = _mm512_and_si512(_mm512_load_si512((const void *)(w8 + 64 * j)), m4);
            const __m512i hi =
                _mm512_and_si512(_mm512_load_si512((const void *)(w8 + 64 * (j + 4))), m4);
            _mm512_store_si512((void *)(w4 + 64 * j), _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4)));
        }
}
#endif

qg_panel qg_pack_kept_panel(uint32_t type, const qg_format *kept, const uint8_t *rows,
                            size_t row_bytes, int32_t n_rows, int64_t cols, void *base,
                            void *scratch) {
    const size_t n_sub = (size_t)cols / 32 * (32 / (size_t)kept->sub);
    const qg_panel p = panel_at(kept, cols, true, base);
    qg_format f;
    qg_format_of(type, &f);
    if (f.nibbles == kept->nibbles) {
        pack_by_group(type, &f, rows, row_bytes, n_rows, cols, &p, n_sub);
        return p;
    }
    const qg_panel wide = {.w = scratch, .d = p.d, .m = p.m};
    pack_by_group(type, &f, rows, row_bytes, n_rows, cols, &wide, n_sub);
#if defined(__x86_64__)
    fold_to_nibbles(wide.w, cols / 32, p.w);
#endif
    return p;
}
