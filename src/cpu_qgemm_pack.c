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
 * fifth/sixth bits merged, MXFP4 through a byte shuffle) and stored row by row: the kernel
 * broadcasts 4 codes at a time, so no transposition is needed. Unpacking must cost little next
 * to the products: with few tokens per call (parallel traces) it is paid once per 8–16 tokens.
 * Scales: scalar, one per 32 (or 16) values. x86 only, like the kernel (cpu_qgemm.c). */
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

#define PACKER(name, type)                                                                         \
    PK_TARGET static void name(const uint8_t *row, int64_t nb, uint8_t *w) {                       \
        pack_codes(type, row, nb, w);                                                              \
    }
PACKER(codes_q4_0, TENSOR_Q4_0)
PACKER(codes_q4_1, TENSOR_Q4_1)
PACKER(codes_q5_0, TENSOR_Q5_0)
PACKER(codes_q5_1, TENSOR_Q5_1)
PACKER(codes_q8_0, TENSOR_Q8_0)
PACKER(codes_mxfp4, TENSOR_MXFP4)
PACKER(codes_q4_K, TENSOR_Q4_K)
PACKER(codes_q5_K, TENSOR_Q5_K)
PACKER(codes_q6_K, TENSOR_Q6_K)

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

/* Q4_K and Q5_K: per sub-block d·sc and −dmin·m, eight at a time (rs_k_scales_min8). */
PK_TARGET static void scales_qk(const uint8_t *b, int64_t nb, size_t bytes, const row_scales *s) {
    for (int64_t i = 0; i < nb; i++, b += bytes) {
        uint64_t sc, mn;
        rs_k_scales_min8(b + 4, &sc, &mn);
        const __m256 vs =
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
        const __m256 vm =
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn)));
        _mm256_storeu_ps(s->d + 8 * i, _mm256_mul_ps(_mm256_set1_ps(ld_f16(b)), vs));
        /* −(dmin·m): the product rounded, then negated (exact), as in the dequantization */
        _mm256_storeu_ps(s->m + 8 * i,
                         _mm256_sub_ps(_mm256_setzero_ps(),
                                       _mm256_mul_ps(_mm256_set1_ps(ld_f16(b + 2)), vm)));
    }
}

/* Q6_K: d·sc per 16 elements, sixteen at a time. */
PK_TARGET static void scales_q6_K(const uint8_t *b, int64_t nb, const row_scales *s) {
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const __m512 sc = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 192))));
        _mm512_storeu_ps(s->d + 16 * i, _mm512_mul_ps(_mm512_set1_ps(ld_f16(b + 208)), sc));
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

static codes_fn unpacker(uint32_t type, qg_format *f) {
    *f = (qg_format){.sub = 32, .has_min = false};
    switch (type) {
    case TENSOR_Q4_0: return codes_q4_0;
    case TENSOR_Q5_0: return codes_q5_0;
    case TENSOR_Q8_0: return codes_q8_0;
    case TENSOR_MXFP4: return codes_mxfp4;
    case TENSOR_Q4_1: f->has_min = true; return codes_q4_1;
    case TENSOR_Q5_1: f->has_min = true; return codes_q5_1;
    case TENSOR_Q4_K: f->has_min = true; return codes_q4_K;
    case TENSOR_Q5_K: f->has_min = true; return codes_q5_K;
    case TENSOR_Q6_K: f->sub = 16; return codes_q6_K;
    default: return NULL;
    }
}

bool qg_dequantize_row(uint32_t type, const void *row, float *dst, int64_t n, void *scratch) {
    qg_format f;
    const codes_fn codes = unpacker(type, &f);
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
static codes_fn unpacker(uint32_t type, qg_format *f) {
    (void)type, (void)f;
    return NULL;
}

#endif

bool qg_format_of(uint32_t type, qg_format *f) { return unpacker(type, f) != NULL; }

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

size_t qg_panel_bytes(const qg_format *f, int64_t cols) {
    const size_t nb = (size_t)cols / 32, rows = QG_ROWS;
    return align256(nb * 32 * rows) + align256(nb * (32 / (size_t)f->sub) * rows * 4) +
           (f->has_min ? align256(nb * rows * 4) : 0);
}

qg_panel qg_pack_panel(uint32_t type, const qg_format *f, const uint8_t *rows, size_t row_bytes,
                       int32_t n_rows, int64_t cols, void *base) {
    const size_t nb = (size_t)cols / 32, n_sub = nb * (32 / (size_t)f->sub);
    qg_panel p = {.w = base};
    p.d = (float *)(p.w + align256((size_t)cols * QG_ROWS));
    p.m = f->has_min ? (float *)((uint8_t *)p.d + align256(n_sub * QG_ROWS * 4)) : NULL;
#if defined(__x86_64__)
    qg_format fmt;
    const codes_fn codes = unpacker(type, &fmt);
    const int64_t n_native = cols / tensor_type_get(type)->block_size;
    for (int32_t r = 0; r < n_rows; r++) {
        const uint8_t *row = rows + (size_t)r * row_bytes;
        codes(row, (int64_t)nb, p.w + (size_t)r * cols);
        const row_scales s = {.d = p.d + r * n_sub, .m = p.m ? p.m + r * nb : NULL};
        row_scales_of(type, row, n_native, &s);
    }
#else
    (void)type, (void)rows, (void)row_bytes;
#endif
    if (n_rows < QG_ROWS) { /* missing rows: code 128 (zero) with zero scales */
        const size_t gone = (size_t)(QG_ROWS - n_rows);
        memset(p.w + (size_t)n_rows * cols, 128, gone * (size_t)cols);
        memset(p.d + (size_t)n_rows * n_sub, 0, gone * n_sub * 4);
        if (p.m) memset(p.m + (size_t)n_rows * nb, 0, gone * nb * 4);
    }
    return p;
}
