/* backend_cpu.h — internals shared by the CPU backend's files: backend_cpu.c (creation, small
 * element-wise ops), cpu_matmul.c (matrix products), cpu_kv.c (the KV pool), cpu_attention.c
 * (attention) and cpu_attention_prefill.c (attention for runs of prompt tokens). */
#ifndef REASON_BACKEND_CPU_H
#define REASON_BACKEND_CPU_H

#include "backend.h"
#include "thread_pool.h"

/* Positions one attention task handles at most before its partial result is merged with the
 * others' (flash-decoding split), and positions scored per inner chunk. */
#define ATTN_CHUNK 64

typedef struct cpu_backend {
    backend base;
    thread_pool *pool;
    int32_t n_threads;
    int32_t max_positions;
    bool q8_matmul; /* decode products quantize activations to 8 bits (integer dot products) */
    bool keep_unpacked; /* the integer kernel may keep weight matrices unpacked (backend.h) */
    /* matmul scratch, grown on first use (sizes depend on the model) */
    int8_t *xq;      /* (n_tok, cols) activations quantized per 32 */
    float *xd, *xs;  /* (n_tok, cols / 32) their scales and scale * sum */
    size_t xq_cap;   /* elements */
    float *tiles;    /* (n_threads, tile_cap) dequantized weight rows for sgemm */
    size_t tile_cap; /* f32 elements per thread */
    struct qg_state *qgemm; /* integer GEMM scratch (cpu_qgemm.c), created on first use */
    struct fg_state *fgemm; /* f32 GEMM scratch (cpu_fgemm.c), created on first use */
    struct bg_state *bgemm; /* BF16 GEMM scratch (cpu_bgemm.c), created on first use */
    /* attention scratch, (n_threads, ...) */
    float *attn_k;    /* (n_threads, ATTN_CHUNK, 1024) keys or values converted to f32 */
    float *attn_part; /* partial results of split attention, grown on first use */
    size_t attn_part_cap;
    void *attn_pf;         /* prompt attention: per-thread tiles and the tile list, grown */
    size_t attn_pf_cap;    /* bytes */
    bool attn_prefill_off; /* REASON_CPU_ATTN_PREFILL=0: prompts take the per-token path */
    bool attn_prefill_generic; /* =generic: the sgemm form even where AVX-512 is (tests) */
    /* DeltaNet scratch (cpu_deltanet.c), grown on first use, capacities in bytes */
    void *dn_tok;       /* per-token conv outputs, gates and sequence links */
    size_t dn_tok_cap;
    float *dn_work;     /* (n_threads, ...) chunked-form matrices, prompts only */
    size_t dn_work_cap;
} cpu_backend;

static inline cpu_backend *cpu(backend *be) { return (cpu_backend *)be; }

/* Several jobs as one pool run (a group of products): task t of the run is task t - first[i]
 * of job i, the i with first[i] <= t < first[i + 1] (first[0] = 0, ascending), run by `task`. */
#define POOL_GROUP_MAX 8
typedef struct pool_group {
    pool_task_fn task;
    void *jobs[POOL_GROUP_MAX];
    int32_t first[POOL_GROUP_MAX + 1];
    int32_t n;
} pool_group;

static inline void pool_group_task(void *arg, int32_t task, int32_t thread) {
    const pool_group *g = arg;
    int32_t i = 0;
    while (task >= g->first[i + 1]) i++;
    g->task(g->jobs[i], task - g->first[i], thread);
}

RS_INTERNAL void cpu_matmul(backend *be, const rs_tensor *w, const float *bias, const float *x,
                            float *y, int32_t n_tok);
RS_INTERNAL void cpu_matmul_group(backend *be, const matmul_item *items, int32_t n,
                                  const float *x, int32_t n_tok);
RS_INTERNAL void cpu_matmul_free(cpu_backend *cb);

/* cpu_rows_tokens.c: y[t * y_stride + r] = w_r · x_t for n_rows (at most 4) weight rows
 * (row_bytes apart, of type F32, F16 or BF16: cpu_rows_tokens_direct; others are dequantized to
 * f32 first) and n_tok token vectors of cols, each row read once for all tokens. next_bytes at
 * next (NULL: none) are prefetched meanwhile: the caller's next rows. The AVX-512 kernel where
 * cpu_rows_tokens_available, else one dot product per row and token. */
RS_INTERNAL bool cpu_rows_tokens_available(void);
RS_INTERNAL bool cpu_rows_tokens_direct(uint32_t type);
RS_INTERNAL void cpu_rows_tokens(const void *w, size_t row_bytes, uint32_t type, int64_t cols,
                                 int32_t n_rows, const float *x, int32_t n_tok, float *y,
                                 size_t y_stride, const void *next, size_t next_bytes);

/* cpu_kv.c: the pool itself. A value's byte offset is its index times elem_bytes for every
 * type; cpu_kv_load_row turns n values at byte offset off of K (or V) into f32. */
RS_INTERNAL reason_status cpu_kv_alloc(backend *be, kv_pool *pool);
RS_INTERNAL size_t cpu_kv_offset(const kv_pool *pool, int32_t layer, int64_t slot);
/* Byte offset of value dim of slot's K (or V) row; the row's next values follow every k_tile
 * values for K (tiled F16 keys), every value for V (rows), or as cpu_kv.c lays out the 8-bit
 * tiles. */
RS_INTERNAL size_t cpu_kv_at(const kv_pool *pool, bool v, int32_t layer, int64_t slot,
                             int32_t dim);
/* The 8-bit pool in the tiles of the integer decode kernels (cpu_kv.c, cpu_attention_q8.c). */
RS_INTERNAL bool cpu_kv_q8_tiled(const kv_pool *pool);
RS_INTERNAL void cpu_kv_load_row(const kv_pool *pool, bool v, size_t off, float *dst, int32_t n);
RS_INTERNAL void cpu_kv_load_keys_t(const kv_pool *pool, int32_t layer, const int32_t *table,
                                    int32_t c0, int32_t nc, int32_t dim0, int32_t n, float *dst,
                                    size_t ld, float *row);
RS_INTERNAL void cpu_kv_free(backend *be, kv_pool *pool);
RS_INTERNAL void cpu_kv_store(backend *be, kv_pool *pool, int32_t layer, const float *k,
                              const float *v, const int32_t *slots, int32_t n_tok);
RS_INTERNAL void cpu_kv_copy_block(backend *be, kv_pool *pool, int32_t src, int32_t dst);
RS_INTERNAL void cpu_attention(backend *be, const kv_pool *pool, int32_t layer, const float *q,
                               const attn_batch *batch, const attn_params *ap, float *out);
/* cpu_attention for a batch holding a run of prompt tokens (cpu_attention_prefill.c): false,
 * having written nothing, when the batch has no such run or scratch could not be had. exp_sum:
 * s[i] = e^(s[i] - m) for i < n, returning the sum. */
RS_INTERNAL bool cpu_attention_prefill(cpu_backend *cb, const kv_pool *pool, int32_t layer,
                                       const float *q, const attn_batch *batch,
                                       const attn_params *ap, float *out,
                                       float (*exp_sum)(float *s, int32_t n, float m));

/* cpu_attention_q8.c: a chunk of decode attention over the 8-bit tiles (cpu_kv_q8_tiled) for ng
 * (at most ATTN_GROUP_MAX) query heads of one KV head, its values [dim0, dim0 + hd) (hd a
 * multiple of 32, at most ATTN_HD_MAX), the chunk's nt tiles at offsets toff (cpu_kv_offset of
 * each tile's first slot). Queries are first rounded to 16 bits per 32 values (cpu_q8_queries,
 * scale folded into their scales); cpu_q8_scores writes sc[j][16 u + i] = q_j · k · scale for
 * every position of the tiles and prefetches the next chunk's tiles (next, or NULL);
 * cpu_q8_values adds Σ_i sc[j][i] · v_i over the positions [i0, i1) to acc[j]. Needs AVX-512
 * VNNI. */
#define ATTN_GROUP_MAX 16
#define ATTN_HD_MAX 512
typedef struct q8_queries { /* each query in 16 bits per 32 values: 256 hi + lo */
    int8_t hi[ATTN_GROUP_MAX][ATTN_HD_MAX], lo[ATTN_GROUP_MAX][ATTN_HD_MAX];
    float d[ATTN_GROUP_MAX][ATTN_HD_MAX / 32];       /* the scale of each 32, times `scale` */
    int32_t corr[ATTN_GROUP_MAX][ATTN_HD_MAX / 32]; /* -128 Σ q over each 32 (keys + 128) */
} q8_queries;
RS_INTERNAL void cpu_q8_queries(const float *const *q, int32_t ng, int32_t hd, float scale,
                                q8_queries *out);
RS_INTERNAL void cpu_q8_scores(const kv_pool *pool, const size_t *toff, const size_t *next,
                               int32_t nt, int32_t dim0, const q8_queries *qq, int32_t ng,
                               int32_t hd, float (*sc)[ATTN_CHUNK]);
RS_INTERNAL void cpu_q8_values(const kv_pool *pool, const size_t *toff, const size_t *next,
                               int32_t nt, int32_t dim0, int32_t i0, int32_t i1,
                               float (*sc)[ATTN_CHUNK], int32_t ng, int32_t hd, float *const *acc);

#include "cpu_deltanet.h" /* cpu_deltanet */
#include "cpu_gate.h"     /* cpu_mul_sigmoid */
#include "cpu_moe.h"      /* cpu_moe_route, cpu_moe */

#endif
