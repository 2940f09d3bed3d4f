/* cpu_qgemm_pack.c — quantized weight rows unpacked into the integer GEMM's panel layout.
 *
 * Every supported type is an integer code q per weight with a float scale per block (and for
 * some an offset): value = d·(q − zero) [+ m]. The kernel wants one unsigned byte per weight for
 * vpdpbusd, so each code is stored as q − zero + 128 (all codes fit: |q − zero| ≤ 128) and the
 * kernel takes 128·(sum of the activations) back off. Scales are evaluated with the same f32
 * expressions as the dequantization in tensor_types.c (d·sc for the K types), so d·(code − 128)
 * + m is the dequantized weight up to the rounding of its final multiply.
 *
 * Codes are produced 8 at a time in 64-bit words (SWAR: nibble masks, the fifth/sixth bits
 * spread into bytes) and written straight into the interleaved layout of qg_panel: 4 columns of
 * one row are one 32-bit lane, 16 rows one 64-byte vector. */
#include "cpu_qgemm.h"

#include "tensor_types.h"

#include <string.h>

#define LO4 0x0f0f0f0f0f0f0f0fULL
#define BYTES(v) (0x0101010101010101ULL * (uint64_t)(v))

static inline uint64_t ld64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t ld32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline float ld_f16(const uint8_t *p) { return rs_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* Byte i (0..7) = bit i of b, as 0 or 1. */
static inline uint64_t spread_bits(uint32_t b) {
    const uint64_t t = BYTES(b & 0xffu) & 0x8040201008040201ULL; /* byte i keeps bit i */
    return ((t + 0x7f7f7f7f7f7f7f7fULL) >> 7) & BYTES(1);          /* nonzero byte -> 1 */
}

/* Where one row's codes go: the row's lane in each column group. */
typedef struct row_sink {
    uint8_t *w; /* panel codes + 4 * row */
    float *d;   /* panel scales + row */
    float *m;   /* panel offsets + row, or NULL */
} row_sink;

/* Codes of elements e..e+7 (e a multiple of 8): two 4-column groups of block e / 32. */
static inline void put8(const row_sink *s, int64_t e, uint64_t v) {
    uint8_t *p = s->w + (e / 32) * (8 * 4 * QG_ROWS) + (e % 32) / 4 * (4 * QG_ROWS);
    const uint32_t lo = (uint32_t)v, hi = (uint32_t)(v >> 32);
    memcpy(p, &lo, 4);
    memcpy(p + 4 * QG_ROWS, &hi, 4);
}

/* 32 codes from 16 nibble bytes (element j low, j + 16 high) plus 8-byte words of high bits
 * (hb[k] for elements 8k..8k+7, already shifted to bit 4 and up) plus bias. */
static inline void put_nibbles32(const row_sink *s, int64_t e, const uint8_t *qs, const uint64_t hb[4],
                                 uint64_t bias) {
    const uint64_t a = ld64(qs), b = ld64(qs + 8);
    put8(s, e, ((a & LO4) | hb[0]) + bias);
    put8(s, e + 8, ((b & LO4) | hb[1]) + bias);
    put8(s, e + 16, (((a >> 4) & LO4) | hb[2]) + bias);
    put8(s, e + 24, (((b >> 4) & LO4) | hb[3]) + bias);
}

static const uint64_t no_high[4] = {0, 0, 0, 0};

/* Fifth bits of a 32-bit qh (bit j: element j) in bit 4 of each byte. */
static inline void high5(uint32_t qh, uint64_t hb[4]) {
    for (int k = 0; k < 4; k++) hb[k] = spread_bits(qh >> (8 * k)) << 4;
}

static void row_q4_0(const uint8_t *b, int64_t nb, const row_sink *s) {
    for (int64_t i = 0; i < nb; i++, b += 18) {
        s->d[i * QG_ROWS] = ld_f16(b);
        put_nibbles32(s, 32 * i, b + 2, no_high, BYTES(128 - 8));
    }
}

static void row_q4_1(const uint8_t *b, int64_t nb, const row_sink *s) {
    for (int64_t i = 0; i < nb; i++, b += 20) {
        s->d[i * QG_ROWS] = ld_f16(b);
        s->m[i * QG_ROWS] = ld_f16(b + 2);
        put_nibbles32(s, 32 * i, b + 4, no_high, BYTES(128));
    }
}

static void row_q5_0(const uint8_t *b, int64_t nb, const row_sink *s) {
    uint64_t hb[4];
    for (int64_t i = 0; i < nb; i++, b += 22) {
        s->d[i * QG_ROWS] = ld_f16(b);
        high5(ld32(b + 2), hb);
        put_nibbles32(s, 32 * i, b + 6, hb, BYTES(128 - 16));
    }
}

static void row_q5_1(const uint8_t *b, int64_t nb, const row_sink *s) {
    uint64_t hb[4];
    for (int64_t i = 0; i < nb; i++, b += 24) {
        s->d[i * QG_ROWS] = ld_f16(b);
        s->m[i * QG_ROWS] = ld_f16(b + 2);
        high5(ld32(b + 4), hb);
        put_nibbles32(s, 32 * i, b + 8, hb, BYTES(128));
    }
}

static void row_q8_0(const uint8_t *b, int64_t nb, const row_sink *s) {
    for (int64_t i = 0; i < nb; i++, b += 34) {
        s->d[i * QG_ROWS] = ld_f16(b);
        for (int k = 0; k < 4; k++) put8(s, 32 * i + 8 * k, ld64(b + 2 + 8 * k) ^ BYTES(0x80));
    }
}

static void row_mxfp4(const uint8_t *b, int64_t nb, const row_sink *s) {
    static const int8_t kv[16] = {RS_MXFP4_KVALUES};
    for (int64_t i = 0; i < nb; i++, b += 17) {
        s->d[i * QG_ROWS] = rs_e8m0_half(b[0]);
        uint8_t c[32];
        for (int j = 0; j < 16; j++) {
            c[j] = (uint8_t)(kv[b[1 + j] & 0xf] + 128);
            c[j + 16] = (uint8_t)(kv[b[1 + j] >> 4] + 128);
        }
        for (int k = 0; k < 4; k++) put8(s, 32 * i + 8 * k, ld64(c + 8 * k));
    }
}

/* Q4_K and Q5_K: sub-blocks 2c (low nibbles of qs[32c..]) and 2c + 1 (high), d·sc and −dmin·m;
 * Q5_K's fifth bit of element 32j + l is bit j of qh[l]. */
static void row_qk(const uint8_t *b, int64_t nb, const row_sink *s, bool five) {
    const size_t bytes = five ? 176 : 144;
    for (int64_t i = 0; i < nb; i++, b += bytes) {
        const float d = ld_f16(b), dmin = ld_f16(b + 2);
        const uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
        for (int j = 0; j < 8; j++) {
            int sc, mn;
            rs_k_scale_min(b + 4, j, &sc, &mn);
            const int64_t blk = 8 * i + j;
            s->d[blk * QG_ROWS] = d * (float)sc;
            s->m[blk * QG_ROWS] = -(dmin * (float)mn);
            for (int k = 0; k < 4; k++) {
                const uint64_t q = ld64(qs + 32 * (j / 2) + 8 * k);
                uint64_t v = (j & 1 ? q >> 4 : q) & LO4;
                if (five) v |= ((ld64(qh + 8 * k) >> j) & BYTES(1)) << 4;
                put8(s, 32 * blk + 8 * k, v + BYTES(128));
            }
        }
    }
}

static void row_q4_K(const uint8_t *b, int64_t nb, const row_sink *s) { row_qk(b, nb, s, false); }
static void row_q5_K(const uint8_t *b, int64_t nb, const row_sink *s) { row_qk(b, nb, s, true); }

/* Q6_K: element 128h + 32g + l is the low (g < 2) or high nibble of ql[64h + 32(g & 1) + l] with
 * bits 2g, 2g + 1 of qh[32h + l] above it, minus 32; a scale per 16 elements. */
static void row_q6_K(const uint8_t *b, int64_t nb, const row_sink *s) {
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = ld_f16(b + 208);
        for (int k = 0; k < 16; k++) s->d[(16 * i + k) * QG_ROWS] = d * (float)sc[k];
        for (int h = 0; h < 2; h++)
            for (int g = 0; g < 4; g++)
                for (int k = 0; k < 4; k++) {
                    const uint64_t lo = ld64(ql + 64 * h + 32 * (g & 1) + 8 * k);
                    const uint64_t hi = ld64(qh + 32 * h + 8 * k);
                    const uint64_t v =
                        ((g < 2 ? lo : lo >> 4) & LO4) | ((hi >> (2 * g)) & BYTES(3)) << 4;
                    put8(s, 256 * i + 128 * h + 32 * g + 8 * k, v + BYTES(128 - 32));
                }
    }
}

typedef void (*row_unpack_fn)(const uint8_t *b, int64_t nb, const row_sink *s);

static row_unpack_fn unpacker(uint32_t type, qg_format *f) {
    *f = (qg_format){.sub = 32, .has_min = false};
    switch (type) {
    case TENSOR_Q4_0: return row_q4_0;
    case TENSOR_Q5_0: return row_q5_0;
    case TENSOR_Q8_0: return row_q8_0;
    case TENSOR_MXFP4: return row_mxfp4;
    case TENSOR_Q4_1: f->has_min = true; return row_q4_1;
    case TENSOR_Q5_1: f->has_min = true; return row_q5_1;
    case TENSOR_Q4_K: f->has_min = true; return row_q4_K;
    case TENSOR_Q5_K: f->has_min = true; return row_q5_K;
    case TENSOR_Q6_K: f->sub = 16; return row_q6_K;
    default: return NULL;
    }
}

bool qg_format_of(uint32_t type, qg_format *f) { return unpacker(type, f) != NULL; }

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

size_t qg_panel_bytes(const qg_format *f, int64_t cols) {
    const size_t nb = (size_t)cols / 32, rows = QG_ROWS;
    return align256(nb * 32 * rows) + align256(nb * (32 / (size_t)f->sub) * rows * 4) +
           (f->has_min ? align256(nb * rows * 4) : 0);
}

qg_panel qg_pack_panel(uint32_t type, const qg_format *f, const uint8_t *rows, size_t row_bytes,
                       int32_t n_rows, int64_t cols, void *base) {
    qg_format fmt;
    const row_unpack_fn unpack = unpacker(type, &fmt);
    const size_t nb = (size_t)cols / 32, n_sub = nb * (32 / (size_t)f->sub);
    qg_panel p = {.w = base};
    p.d = (float *)(p.w + align256(nb * 32 * QG_ROWS));
    p.m = f->has_min ? (float *)((uint8_t *)p.d + align256(n_sub * QG_ROWS * 4)) : NULL;
    if (n_rows < QG_ROWS) { /* missing rows: code 128 (zero) with zero scales */
        memset(p.w, 128, nb * 32 * QG_ROWS);
        memset(p.d, 0, n_sub * QG_ROWS * 4);
        if (p.m) memset(p.m, 0, nb * QG_ROWS * 4);
    }
    const int64_t n_native = cols / tensor_type_get(type)->block_size;
    for (int32_t r = 0; r < n_rows; r++) {
        const row_sink s = {.w = p.w + 4 * r, .d = p.d + r, .m = p.m ? p.m + r : NULL};
        unpack(rows + (size_t)r * row_bytes, n_native, &s);
    }
    return p;
}
