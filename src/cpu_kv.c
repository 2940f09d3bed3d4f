/* cpu_kv.c — the paged KV pool on the CPU: allocation, storing new keys and values, copying a
 * block (copy-on-write forks), and reading rows back as f32 for attention.
 *
 * Layout of k and v: (n_layer, n_blocks, block_size, kv_dim) values in the pool's type: F32, F16,
 * BF16, or Q8 — an int8 per value with one f32 scale per 32 values of a row, the scales in their
 * own arrays k_scale / v_scale, (n_layer, n_blocks, block_size, kv_dim / 32). Q8 halves the
 * bytes a long trace's attention streams (1.125 bytes per value against 2) at ~0.4% relative
 * rounding per value (d/2 with d = max|x| / 127 over the 32), and needs kv_dim % 32 == 0 (a
 * block may hold the ends of two heads when head_dim < 32). For every type a value's byte offset
 * is its index times elem_bytes (1 for Q8), so the attention code finds rows the same way for
 * all of them; the scale of the value at offset o is the (o / 32)th.
 *
 * F16 keys (the default cache) are stored in tiles of K_TILE = 16 slots when the block size is a
 * multiple of 16 and the CPU has AVX-512: per layer and tile, (kv_dim, 16) — value d of the
 * tile's 16 slots side by side. Decode then scores 16 positions per vector, one FMA per
 * dimension and query head, where row-major keys cost a cross-lane sum per position and head
 * (cpu_attention.c). A tile never crosses a block, so copying blocks is unchanged; V stays
 * row-major (accumulating a value row into the output is already one FMA per 16 values).
 *
 * The 8-bit cache has its own layout where the CPU has AVX-512 VNNI and blocks hold whole tiles
 * of 16 slots (cpu_kv_q8_tiled), made for the integer decode kernels (cpu_attention_q8.c): per
 * tile of 16 slots, K as (kv_dim / 4, 16, 4) bytes offset by 128 (unsigned) — 4 consecutive
 * values of 16 slots in 64 bytes, one vpdpbusd operand scoring 16 positions; V in groups of 4
 * slots as (kv_dim, 4) — a value of 4 slots per 32-bit lane, one vpdpbusd operand accumulating
 * 16 values over 4 positions; the scales of both per tile as (kv_dim / 32, 16), 16 slots' scales
 * of one 32 in one vector. Tiles and groups never cross a block either. */
#include "backend_cpu.h"

#include "tensor_types.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define Q8_BLOCK 32
#define K_TILE 16

static size_t kv_elem_bytes(int32_t type) {
    return type == REASON_KV_F32 ? 4 : type == REASON_KV_Q8 ? 1 : 2;
}

/* K or V of the pool: zeroed memory mapped lazily, so a large pool costs memory only as it fills.
 * Large ones are anonymous mappings asking for 2 MiB pages: decode reads one KV head's rows of
 * every position — pieces of 4 KiB pages otherwise, a TLB miss and a cold hardware prefetcher
 * every 16 positions per layer (tools/bench_attention.c, Qwen2.5-0.5B heads at depth 16384, 2
 * threads: 10.8 -> 7.0 ms per token for the 24 layers). */
#define KV_HUGE (2u << 20)
static void *kv_map(size_t n, const char *what) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (n >= KV_HUGE) {
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            rs_error(REASON_ERR_NOMEM, "out of memory mapping %zu bytes for %s", n, what);
            return NULL;
        }
        (void)madvise(p, n, MADV_HUGEPAGE); /* a hint: 4 KiB pages still work */
        return p;
    }
#endif
    return rs_calloc(1, n, what);
}

static void kv_unmap(void *p, size_t n) {
    if (!p) return;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (n >= KV_HUGE) {
        munmap(p, n);
        return;
    }
#endif
    free(p);
}

/* Bytes of K (or of V) without the Q8 scales. */
static size_t kv_bytes(const kv_pool *pool) {
    return (size_t)pool->n_layer * (size_t)pool->n_blocks * (size_t)pool->block_size *
           (size_t)pool->kv_dim * pool->elem_bytes;
}

reason_status cpu_kv_alloc(backend *be, kv_pool *pool) {
    (void)be;
    const bool q8 = pool->type == REASON_KV_Q8;
    if (q8 && pool->kv_dim % Q8_BLOCK)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "8-bit KV cache: K/V width %d is not a multiple of %d", pool->kv_dim,
                        Q8_BLOCK);
    size_t n = 0;
    pool->elem_bytes = kv_elem_bytes(pool->type);
    /* tiles only where the AVX-512 kernels that read them are (elsewhere rows convert faster) */
    const bool tiles = pool->block_size % K_TILE == 0 &&
                       (q8 ? rs_cpu_has_vnni()
                           : pool->type == REASON_KV_F16 && tensor_isa_best() >= TENSOR_ISA_AVX512);
    pool->k_tile = tiles ? K_TILE : 1;
    pool->slot_bytes = (size_t)pool->kv_dim * pool->elem_bytes +
                       (q8 ? (size_t)pool->kv_dim / Q8_BLOCK * sizeof(float) : 0);
    if (!rs_mul_size((size_t)pool->n_layer * (size_t)pool->n_blocks, (size_t)pool->block_size,
                     &n) ||
        !rs_mul_size(n, (size_t)pool->kv_dim * pool->elem_bytes, &n))
        return rs_error(REASON_ERR_NOMEM, "KV pool size overflows");
    pool->k = kv_map(n, "KV pool (K)");
    pool->v = pool->k ? kv_map(n, "KV pool (V)") : NULL;
    if (pool->v && q8) {
        pool->k_scale = kv_map(n / Q8_BLOCK * sizeof(float), "KV pool scales (K)");
        pool->v_scale = pool->k_scale ? kv_map(n / Q8_BLOCK * sizeof(float), "KV pool scales (V)")
                                      : NULL;
    }
    if (!pool->k || !pool->v || (q8 && !pool->v_scale)) {
        cpu_kv_free(be, pool);
        return REASON_ERR_NOMEM;
    }
    return REASON_OK;
}

void cpu_kv_free(backend *be, kv_pool *pool) {
    (void)be;
    const size_t n = kv_bytes(pool);
    kv_unmap(pool->k, n);
    kv_unmap(pool->v, n);
    kv_unmap(pool->k_scale, n / Q8_BLOCK * sizeof(float));
    kv_unmap(pool->v_scale, n / Q8_BLOCK * sizeof(float));
    pool->k = pool->v = NULL;
    pool->k_scale = pool->v_scale = NULL;
}

size_t cpu_kv_offset(const kv_pool *pool, int32_t layer, int64_t slot) {
    return (((size_t)layer * pool->n_blocks * pool->block_size) + (size_t)slot) * pool->kv_dim *
           pool->elem_bytes;
}

bool cpu_kv_q8_tiled(const kv_pool *pool) {
    return pool->type == REASON_KV_Q8 && pool->k_tile == K_TILE;
}

/* The layout of K (or V) as groups of t slots, each (kv_dim / e, t, e): e consecutive values of
 * a slot side by side, t slots apart. Rows: t = e = 1; tiled F16 keys: t = 16, e = 1; the 8-bit
 * tiles: K t = 16, e = 4, V t = 4, e = 1. */
static void kv_layout(const kv_pool *pool, bool v, int64_t *t, int64_t *e) {
    const bool q8 = cpu_kv_q8_tiled(pool);
    *t = v ? (q8 ? 4 : 1) : pool->k_tile;
    *e = !v && q8 ? 4 : 1;
}

size_t cpu_kv_at(const kv_pool *pool, bool v, int32_t layer, int64_t slot, int32_t dim) {
    int64_t t, e;
    kv_layout(pool, v, &t, &e);
    const int64_t lane = slot % t;
    return cpu_kv_offset(pool, layer, slot - lane) +
           (size_t)(((dim / e) * t + lane) * e + dim % e) * pool->elem_bytes;
}

/* Index in k_scale / v_scale of the scale of values [32 g, 32 g + 32) of a slot, the slot counted
 * from the pool's start (layer * n_blocks * block_size + slot): rows, or per tile of 16 slots. */
static size_t q8_scale_index(const kv_pool *pool, size_t slot, int32_t g) {
    const size_t per = (size_t)pool->kv_dim / Q8_BLOCK, st = cpu_kv_q8_tiled(pool) ? K_TILE : 1;
    return (slot - slot % st) * per + (size_t)g * st + slot % st;
}

/* Per 32 values: d = max|x| / 127 and x / d rounded, the 8-bit activations' quantizer
 * (tensor_quantize_q8), one block at a time so that its per-block sums need no buffer. */
static void q8_row(const float *src, int8_t *q, float *d, int32_t n) {
    for (int32_t b = 0; b < n / Q8_BLOCK; b++) {
        float sum;
        tensor_quantize_q8(src + b * Q8_BLOCK, q + b * Q8_BLOCK, d + b, &sum, Q8_BLOCK);
    }
}

#if defined(__x86_64__)
__attribute__((target("avx,f16c"))) static void f16_from_f32(const float *s, uint16_t *d,
                                                             int32_t n) {
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) d[i] = rs_f32_to_f16(s[i]);
}

__attribute__((target("avx,f16c"))) static void f16_to_f32(const uint16_t *s, float *d,
                                                           int32_t n) {
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++) d[i] = rs_f16_to_f32(s[i]);
}

/* n rows of a K tile (16 F16 values each) to f32 rows ld apart. */
__attribute__((target("avx512f"))) static void tile_to_f32(const uint16_t *src, int32_t n,
                                                            float *dst, size_t ld) {
    for (int32_t d = 0; d < n; d++)
        _mm512_storeu_ps(dst + (size_t)d * ld,
                         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + 16 * d))));
}

/* dst[0..k) = the BF16 values as f32, 16 at a time; returns k (n rounded down to 16). */
__attribute__((target("avx512f"))) static int32_t bf16_to_f32(const uint16_t *s, float *d,
                                                               int32_t n) {
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + i)));
        _mm512_storeu_ps(d + i, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
    }
    return i;
}

/* Q8 values times their scales, 16 at a time (n and q's offset in the row multiples of 16: each
 * 16 lies within one 32; d is the scale of q[0]'s block). */
__attribute__((target("avx512f"))) static void q8_to_f32(const int8_t *q, const float *d,
                                                          size_t first, float *dst, int32_t n) {
    for (int32_t i = 0; i < n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_set1_ps(d[(first + (size_t)i) / Q8_BLOCK]),
                                                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                    _mm_loadu_si128((const __m128i *)(q + i))))));
}
#endif

/* The AVX2 tier requires F16C. */
static bool have_f16c(void) { return tensor_isa_best() >= TENSOR_ISA_AVX2; }

static void store_row(const kv_pool *pool, const float *src, uint8_t *base, float *scales,
                      size_t off, int32_t n) {
    uint8_t *dst = base + off;
    switch (pool->type) {
    case REASON_KV_F32: memcpy(dst, src, (size_t)n * 4); return;
    case REASON_KV_Q8: q8_row(src, (int8_t *)dst, scales + off / Q8_BLOCK, n); return;
    case REASON_KV_BF16:
        for (int32_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = rs_f32_to_bf16(src[i]);
        return;
    default:
#if defined(__x86_64__)
        if (have_f16c()) { /* vcvtps2ph rounds to nearest even, as rs_f32_to_f16 */
            f16_from_f32(src, (uint16_t *)dst, n);
            return;
        }
#endif
        for (int32_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = rs_f32_to_f16(src[i]);
    }
}

/* One key row into its tile: converted in pieces on the stack, then one value per 16 slots. */
static void store_key_tiled(const kv_pool *pool, const float *src, size_t off) {
    uint16_t h[256];
    uint16_t *dst = (uint16_t *)((uint8_t *)pool->k + off);
    for (int32_t d0 = 0; d0 < pool->kv_dim; d0 += 256) {
        const int32_t n = RS_MIN(256, pool->kv_dim - d0);
        store_row(pool, src + d0, (uint8_t *)h, NULL, 0, n);
        for (int32_t i = 0; i < n; i++) dst[(size_t)(d0 + i) * pool->k_tile] = h[i];
    }
}

/* One row into the 8-bit tiles: rounded per 32 values, then each value to its place. */
static void store_q8_tiled(const kv_pool *pool, bool v, const float *src, int32_t layer,
                           int64_t slot) {
    uint8_t *base = (uint8_t *)(v ? pool->v : pool->k) + cpu_kv_at(pool, v, layer, slot, 0);
    float *scales = v ? pool->v_scale : pool->k_scale;
    const size_t at = cpu_kv_offset(pool, layer, slot) / (size_t)pool->kv_dim;
    for (int32_t g = 0; g < pool->kv_dim / Q8_BLOCK; g++) {
        int8_t q[Q8_BLOCK];
        float sum;
        tensor_quantize_q8(src + g * Q8_BLOCK, q, &scales[q8_scale_index(pool, at, g)], &sum,
                           Q8_BLOCK);
        for (int32_t i = 0; i < Q8_BLOCK; i++) {
            const int32_t d = g * Q8_BLOCK + i;
            if (v)
                base[(size_t)d * 4] = (uint8_t)q[i];
            else
                base[(size_t)d / 4 * 4 * K_TILE + (size_t)d % 4] = (uint8_t)(q[i] + 128);
        }
    }
}

void cpu_kv_store(backend *be, kv_pool *pool, int32_t layer, const float *k, const float *v,
                  const int32_t *slots, int32_t n_tok) {
    (void)be;
    for (int32_t t = 0; t < n_tok; t++) {
        if (cpu_kv_q8_tiled(pool)) {
            store_q8_tiled(pool, false, k + (size_t)t * pool->kv_dim, layer, slots[t]);
            store_q8_tiled(pool, true, v + (size_t)t * pool->kv_dim, layer, slots[t]);
            continue;
        }
        const size_t off = cpu_kv_offset(pool, layer, slots[t]);
        if (pool->k_tile > 1)
            store_key_tiled(pool, k + (size_t)t * pool->kv_dim, cpu_kv_at(pool, false, layer,
                                                                           slots[t], 0));
        else
            store_row(pool, k + (size_t)t * pool->kv_dim, pool->k, pool->k_scale, off,
                      pool->kv_dim);
        store_row(pool, v + (size_t)t * pool->kv_dim, pool->v, pool->v_scale, off, pool->kv_dim);
    }
}

void cpu_kv_copy_block(backend *be, kv_pool *pool, int32_t src, int32_t dst) {
    (void)be;
    const size_t bytes = (size_t)pool->block_size * pool->kv_dim * pool->elem_bytes;
    for (int32_t l = 0; l < pool->n_layer; l++) {
        const size_t s = cpu_kv_offset(pool, l, (int64_t)src * pool->block_size);
        const size_t d = cpu_kv_offset(pool, l, (int64_t)dst * pool->block_size);
        memcpy((uint8_t *)pool->k + d, (uint8_t *)pool->k + s, bytes);
        memcpy((uint8_t *)pool->v + d, (uint8_t *)pool->v + s, bytes);
        if (pool->type == REASON_KV_Q8) {
            const size_t n = bytes / Q8_BLOCK * sizeof(float);
            memcpy(pool->k_scale + d / Q8_BLOCK, pool->k_scale + s / Q8_BLOCK, n);
            memcpy(pool->v_scale + d / Q8_BLOCK, pool->v_scale + s / Q8_BLOCK, n);
        }
    }
}

#if defined(__x86_64__)
#define AVX512BW __attribute__((target("avx512f,avx512bw")))

static uint32_t load4(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    return x;
}

/* Values [d0, d0 + n) of one slot of the 8-bit tiles as f32 (d0 and n multiples of 32): src is
 * the slot's group of t slots, lane its place there, sc its scales (stride st per 32). K: 4
 * values per 32-bit word, words 64 bytes apart; V: a value every 4 bytes. */
AVX512BW static void q8_tiled_to_f32(const uint8_t *src, bool v, int32_t lane, const float *sc,
                                     size_t st, int32_t d0, int32_t n, float *dst) {
    for (int32_t d = d0; d < d0 + n; d += 16) {
        __m512i x;
        if (v) { /* 16 values of 4 slots: this slot's byte of each word, sign-extended */
            x = _mm512_loadu_si512(src + (size_t)d * 4);
            x = _mm512_srai_epi32(_mm512_sll_epi32(x, _mm_cvtsi32_si128(24 - 8 * lane)), 24);
        } else {
            const uint8_t *k = src + (size_t)d / 4 * 64 + (size_t)lane * 4;
            x = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_set_epi32(
                                     (int)load4(k + 192), (int)load4(k + 128), (int)load4(k + 64),
                                     (int)load4(k))),
                                 _mm512_set1_epi32(128));
        }
        _mm512_storeu_ps(dst + d - d0, _mm512_mul_ps(_mm512_set1_ps(sc[(size_t)d / 32 * st]),
                                                     _mm512_cvtepi32_ps(x)));
    }
}

/* A whole 8-bit K tile (16 slots) transposed: dst[d * ld + i] = value dim0 + d of slot i, for
 * n values (dim0 and n multiples of 32): each 64-byte word row holds 4 values of the 16 slots. */
AVX512BW static void q8_tile_to_f32(const uint8_t *tile, const float *sc, int32_t dim0, int32_t n,
                                    float *dst, size_t ld) {
    for (int32_t d = 0; d < n; d += 4) {
        const __m512i x = _mm512_loadu_si512(tile + (size_t)(dim0 + d) / 4 * 64);
        const __m512 s = _mm512_loadu_ps(sc + (size_t)(dim0 + d) / 32 * K_TILE);
        for (int32_t b = 0; b < 4; b++) {
            const __m512i q = _mm512_sub_epi32(
                _mm512_and_si512(_mm512_srli_epi32(x, 8 * b), _mm512_set1_epi32(0xff)),
                _mm512_set1_epi32(128));
            _mm512_storeu_ps(dst + (size_t)(d + b) * ld, _mm512_mul_ps(s, _mm512_cvtepi32_ps(q)));
        }
    }
}
#endif

/* n values of the 8-bit tiles from byte offset off (a cpu_kv_at offset) as f32: the slot and
 * first value decoded from off's place in its group of t slots. */
static void load_q8_tiled(const kv_pool *pool, bool v, size_t off, float *dst, int32_t n) {
    int64_t t, e;
    kv_layout(pool, v, &t, &e);
    const size_t group = (size_t)(t * pool->kv_dim), base = off - off % group, w = off - base;
    const size_t lane = w / (size_t)e % (size_t)t, d0 = w / (size_t)(e * t) * (size_t)e + w % (size_t)e;
    const size_t slot = base / (size_t)pool->kv_dim + lane;
    const uint8_t *src = (const uint8_t *)(v ? pool->v : pool->k) + base;
    const float *scales = v ? pool->v_scale : pool->k_scale;
#if defined(__x86_64__)
    if (d0 % 32 == 0 && n % 32 == 0) { /* the tiles exist only where AVX-512 VNNI does */
        q8_tiled_to_f32(src, v, (int32_t)lane, scales + q8_scale_index(pool, slot, 0), K_TILE,
                        (int32_t)d0, n, dst);
        return;
    }
#endif
    for (int32_t i = 0; i < n; i++) {
        const size_t d = d0 + (size_t)i;
        const uint8_t b = src[((d / (size_t)e) * (size_t)t + lane) * (size_t)e + d % (size_t)e];
        const int32_t x = v ? (int8_t)b : (int32_t)b - 128;
        dst[i] = scales[q8_scale_index(pool, slot, (int32_t)(d / Q8_BLOCK))] * (float)x;
    }
}

void cpu_kv_load_row(const kv_pool *pool, bool v, size_t off, float *dst, int32_t n) {
    if (cpu_kv_q8_tiled(pool)) {
        load_q8_tiled(pool, v, off, dst, n);
        return;
    }
    const uint8_t *src = (const uint8_t *)(v ? pool->v : pool->k) + off;
    if (!v && pool->k_tile > 1) { /* one value per tile row (F16) */
        const uint16_t *h = (const uint16_t *)src;
        for (int32_t i = 0; i < n; i++) dst[i] = rs_f16_to_f32(h[(size_t)i * pool->k_tile]);
        return;
    }
    switch (pool->type) {
    case REASON_KV_F32: memcpy(dst, src, (size_t)n * 4); return;
    case REASON_KV_Q8: {
        /* value i is element off + i of the pool; d[k] scales its k-th 32 after off's block */
        const float *d = (v ? pool->v_scale : pool->k_scale) + off / Q8_BLOCK;
        const size_t first = off % Q8_BLOCK;
#if defined(__x86_64__)
        if (tensor_isa_best() >= TENSOR_ISA_AVX512 && n % 16 == 0 && first % 16 == 0) {
            q8_to_f32((const int8_t *)src, d, first, dst, n);
            return;
        }
#endif
        for (int32_t i = 0; i < n; i++)
            dst[i] = d[(first + (size_t)i) / Q8_BLOCK] * (float)((const int8_t *)src)[i];
        return;
    }
    case REASON_KV_BF16: {
        int32_t i = 0;
#if defined(__x86_64__)
        if (tensor_isa_best() >= TENSOR_ISA_AVX512) i = bf16_to_f32((const uint16_t *)src, dst, n);
#endif
        for (; i < n; i++) {
            const uint32_t u = (uint32_t)((const uint16_t *)src)[i] << 16; /* the top half */
            memcpy(dst + i, &u, 4);
        }
        return;
    }
    default:
#if defined(__x86_64__)
        if (have_f16c()) {
            f16_to_f32((const uint16_t *)src, dst, n);
            return;
        }
#endif
        for (int32_t i = 0; i < n; i++) dst[i] = rs_f16_to_f32(((const uint16_t *)src)[i]);
    }
}

/* Keys of positions [c0, c0 + nc) of a sequence (block table `table`), values [dim0, dim0 + n)
 * of each, transposed: dst[d * ld + i] = value dim0 + d of position c0 + i. Whole tiles are
 * 16 converted values per dimension; other positions go one row at a time through `row` (n
 * floats of scratch). */
void cpu_kv_load_keys_t(const kv_pool *pool, int32_t layer, const int32_t *table, int32_t c0,
                        int32_t nc, int32_t dim0, int32_t n, float *dst, size_t ld, float *row) {
    const int32_t bs = pool->block_size, tile = pool->k_tile;
    for (int32_t i = 0; i < nc;) {
        const int32_t p = c0 + i;
        const int64_t slot = (int64_t)table[p / bs] * bs + p % bs;
        const size_t off = cpu_kv_at(pool, false, layer, slot, dim0);
#if defined(__x86_64__)
        if (tile == K_TILE && pool->type == REASON_KV_F16 && p % K_TILE == 0 && i + K_TILE <= nc &&
            tensor_isa_best() >= TENSOR_ISA_AVX512) {
            tile_to_f32((const uint16_t *)((const uint8_t *)pool->k + off), n, dst + i, ld);
            i += K_TILE;
            continue;
        }
        if (cpu_kv_q8_tiled(pool) && p % K_TILE == 0 && i + K_TILE <= nc && dim0 % 32 == 0 &&
            n % 32 == 0) {
            const size_t base = cpu_kv_offset(pool, layer, slot); /* the tile's first slot */
            q8_tile_to_f32((const uint8_t *)pool->k + base, pool->k_scale + base / 32, dim0, n,
                           dst + i, ld);
            i += K_TILE;
            continue;
        }
#endif
        cpu_kv_load_row(pool, false, off, row, n);
        for (int32_t d = 0; d < n; d++) dst[(size_t)d * ld + i] = row[d];
        i++;
    }
}
