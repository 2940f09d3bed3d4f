/* backend_cpu.c — the CPU backend, the reference every other backend is tested against.
 * Matrix products: one token (decode) uses the row dot products of tensor_types.c split over the
 * thread pool; several tokens (prompt, parallel traces) go to OpenBLAS sgemm over tiles of weight
 * rows dequantized to f32 by the pool. Attention reads the paged KV pool through block tables. */
#include "backend.h"

#include "tensor_types.h"
#include "thread_pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef REASON_HAVE_BLAS
#include <cblas.h>
extern void openblas_set_num_threads(int num_threads);
#endif

/* Fewer tokens than this use dot products: dequantizing a tile for sgemm only pays off when
 * each weight row is reused by several tokens. */
#define BLAS_MIN_TOKENS 8
/* Weight rows dequantized per sgemm call: a (rows x cols) f32 tile of at most this many bytes. */
#define TILE_BYTES (8u << 20)
/* Rows of a matrix one pool task computes in the dot-product path. */
#define ROWS_PER_TASK 16

typedef struct cpu_backend {
    backend base;
    thread_pool *pool;
    int32_t n_threads;
    int32_t max_positions;
    float *scores; /* (n_threads, max_positions) attention scratch */
    float *tile;   /* TILE_BYTES of dequantized weights */
} cpu_backend;

static cpu_backend *cpu(backend *be) { return (cpu_backend *)be; }

static void *cpu_alloc(backend *be, size_t bytes, const char *what) {
    (void)be;
    return rs_aligned_alloc(bytes, what);
}

static void cpu_release(backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

static void cpu_get_rows(backend *be, const rs_tensor *table, const int32_t *ids, int32_t n,
                         float *out) {
    (void)be;
    const int64_t dim = table->ne[0];
    for (int32_t i = 0; i < n; i++)
        tensor_dequantize_row(table->type, (const uint8_t *)table->data + (size_t)ids[i] * table->row_bytes,
                              out + (size_t)i * dim, dim);
}

static void cpu_rmsnorm(backend *be, const float *x, const float *w, float *y, int32_t n_rows,
                        int32_t dim, float eps) {
    (void)be;
    for (int32_t r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double ss = 0.0;
        for (int32_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / sqrt(ss / dim + eps));
        for (int32_t i = 0; i < dim; i++) yr[i] = xr[i] * scale * (w ? w[i] : 1.0f);
    }
}

/* --- matrix products ---------------------------------------------------------------------- */

typedef struct matmul_job {
    const rs_tensor *w;
    const float *x;
    float *y;
    int32_t n_tok;
    int64_t row0; /* tile path: first row of the tile */
    float *tile;
} matmul_job;

static void matmul_dot_task(void *arg, int32_t task, int32_t thread) {
    (void)thread;
    const matmul_job *job = arg;
    const rs_tensor *w = job->w;
    const int64_t cols = w->ne[0], rows = w->ne[1];
    const int64_t r0 = (int64_t)task * ROWS_PER_TASK, r1 = RS_MIN(rows, r0 + ROWS_PER_TASK);
    for (int64_t r = r0; r < r1; r++) {
        const void *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int32_t t = 0; t < job->n_tok; t++)
            job->y[(size_t)t * rows + r] = tensor_dot_row(w->type, row, job->x + (size_t)t * cols, cols);
    }
}

#ifdef REASON_HAVE_BLAS
static void dequantize_tile_task(void *arg, int32_t task, int32_t thread) {
    (void)thread;
    const matmul_job *job = arg;
    const rs_tensor *w = job->w;
    const int64_t cols = w->ne[0];
    const int64_t r = job->row0 + task;
    tensor_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes,
                          job->tile + (size_t)task * cols, cols);
}
#endif

static void cpu_matmul(backend *be, const rs_tensor *w, const float *bias, const float *x, float *y,
                       int32_t n_tok) {
    cpu_backend *cb = cpu(be);
    const int64_t cols = w->ne[0], rows = w->ne[1];
    matmul_job job = {.w = w, .x = x, .y = y, .n_tok = n_tok};
#ifdef REASON_HAVE_BLAS
    if (n_tok >= BLAS_MIN_TOKENS && (size_t)cols * sizeof(float) <= TILE_BYTES) {
        if (w->type == 0 /* F32: use in place */) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, (int)rows, (int)cols, 1.0f,
                        x, (int)cols, (const float *)w->data, (int)cols, 0.0f, y, (int)rows);
        } else {
            const int64_t tile_rows = RS_MAX(1, (int64_t)(TILE_BYTES / sizeof(float)) / cols);
            for (int64_t r0 = 0; r0 < rows; r0 += tile_rows) {
                const int64_t nr = RS_MIN(tile_rows, rows - r0);
                job.row0 = r0;
                job.tile = cb->tile;
                thread_pool_run(cb->pool, dequantize_tile_task, &job, (int32_t)nr);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, (int)nr, (int)cols, 1.0f,
                            x, (int)cols, cb->tile, (int)cols, 0.0f, y + r0, (int)rows);
            }
        }
    } else
#endif
    {
        thread_pool_run(cb->pool, matmul_dot_task, &job,
                        (int32_t)((rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK));
    }
    if (bias)
        for (int32_t t = 0; t < n_tok; t++)
            for (int64_t r = 0; r < rows; r++) y[(size_t)t * rows + r] += bias[r];
}

/* --- position encoding and element-wise ops ------------------------------------------------ */

static void cpu_rope(backend *be, float *x, int32_t n_tok, int32_t n_head, const int32_t *pos,
                     const rope_params *rp) {
    (void)be;
    const int32_t half = rp->rot_dim / 2;
    for (int32_t t = 0; t < n_tok; t++) {
        const float p = (float)pos[t] * rp->pos_scale;
        for (int32_t i = 0; i < half; i++) {
            /* float32 throughout, as the reference implementations compute it */
            float inv_freq = 1.0f / powf(rp->theta, (float)(2 * i) / (float)rp->rot_dim);
            if (rp->freq_div) inv_freq /= rp->freq_div[i];
            const float angle = p * inv_freq;
            const float c = cosf(angle), s = sinf(angle);
            for (int32_t h = 0; h < n_head; h++) {
                float *v = x + ((size_t)t * n_head + h) * rp->head_dim;
                const int32_t a = rp->style == ROPE_NEOX ? i : 2 * i;
                const int32_t b = rp->style == ROPE_NEOX ? i + half : 2 * i + 1;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

static void cpu_swiglu(backend *be, const float *gate, const float *up, float *y, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) y[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void cpu_gather_rows(backend *be, const float *src, const int32_t *idx, int32_t n,
                            int32_t dim, float *dst) {
    (void)be;
    for (int32_t i = 0; i < n; i++)
        memcpy(dst + (size_t)i * dim, src + (size_t)idx[i] * dim, (size_t)dim * sizeof(float));
}

static void cpu_add(backend *be, float *x, const float *y, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

/* --- KV pool and attention ----------------------------------------------------------------- */

static size_t kv_elem_bytes(int32_t type) { return type == REASON_KV_F32 ? 4 : 2; }

static reason_status cpu_kv_alloc(backend *be, kv_pool *pool) {
    (void)be;
    size_t n = 0;
    pool->elem_bytes = kv_elem_bytes(pool->type);
    if (!rs_mul_size((size_t)pool->n_layer * (size_t)pool->n_blocks, (size_t)pool->block_size, &n) ||
        !rs_mul_size(n, (size_t)pool->kv_dim * pool->elem_bytes, &n))
        return rs_error(REASON_ERR_NOMEM, "KV pool size overflows");
    /* calloc: zeroed pages are mapped lazily, so a large pool costs memory only as it fills */
    pool->k = rs_calloc(1, n, "KV pool (K)");
    pool->v = pool->k ? rs_calloc(1, n, "KV pool (V)") : NULL;
    if (!pool->k || !pool->v) {
        free(pool->k);
        pool->k = NULL;
        return REASON_ERR_NOMEM;
    }
    return REASON_OK;
}

static void cpu_kv_free(backend *be, kv_pool *pool) {
    (void)be;
    free(pool->k);
    free(pool->v);
    pool->k = pool->v = NULL;
}

static size_t kv_offset(const kv_pool *pool, int32_t layer, int64_t slot) {
    return (((size_t)layer * pool->n_blocks * pool->block_size) + (size_t)slot) * pool->kv_dim *
           pool->elem_bytes;
}

static void store_row(int32_t type, const float *src, uint8_t *dst, int32_t n) {
    if (type == REASON_KV_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return;
    }
    uint16_t *d = (uint16_t *)dst;
    if (type == REASON_KV_BF16)
        for (int32_t i = 0; i < n; i++) d[i] = rs_f32_to_bf16(src[i]);
    else
        for (int32_t i = 0; i < n; i++) d[i] = rs_f32_to_f16(src[i]);
}

#if defined(__x86_64__)
#include <immintrin.h>
/* F16 → F32 with the F16C instruction: attention converts every cached key and value it reads. */
__attribute__((target("avx,f16c"))) static void f16_row_f16c(const uint16_t *s, float *dst, int32_t n) {
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++) dst[i] = rs_f16_to_f32(s[i]);
}
static bool have_f16c(void) { /* reads flags libgcc filled in at start-up: cheap */
    return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
}
#endif

static void load_row(int32_t type, const uint8_t *src, float *dst, int32_t n) {
    if (type == REASON_KV_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return;
    }
    const uint16_t *s = (const uint16_t *)src;
#if defined(__x86_64__)
    if (type == REASON_KV_F16 && have_f16c()) {
        f16_row_f16c(s, dst, n);
        return;
    }
#endif
    if (type == REASON_KV_BF16)
        for (int32_t i = 0; i < n; i++) dst[i] = rs_bf16_to_f32(s[i]);
    else
        for (int32_t i = 0; i < n; i++) dst[i] = rs_f16_to_f32(s[i]);
}

static void cpu_kv_store(backend *be, kv_pool *pool, int32_t layer, const float *k, const float *v,
                         const int32_t *slots, int32_t n_tok) {
    (void)be;
    for (int32_t t = 0; t < n_tok; t++) {
        const size_t off = kv_offset(pool, layer, slots[t]);
        store_row(pool->type, k + (size_t)t * pool->kv_dim, (uint8_t *)pool->k + off, pool->kv_dim);
        store_row(pool->type, v + (size_t)t * pool->kv_dim, (uint8_t *)pool->v + off, pool->kv_dim);
    }
}

static void cpu_kv_copy_block(backend *be, kv_pool *pool, int32_t src, int32_t dst) {
    (void)be;
    const size_t bytes = (size_t)pool->block_size * pool->kv_dim * pool->elem_bytes;
    for (int32_t l = 0; l < pool->n_layer; l++) {
        const size_t s = kv_offset(pool, l, (int64_t)src * pool->block_size);
        const size_t d = kv_offset(pool, l, (int64_t)dst * pool->block_size);
        memcpy((uint8_t *)pool->k + d, (uint8_t *)pool->k + s, bytes);
        memcpy((uint8_t *)pool->v + d, (uint8_t *)pool->v + s, bytes);
    }
}

typedef struct attention_job {
    cpu_backend *cb;
    const kv_pool *pool;
    int32_t layer;
    const float *q;
    const attn_batch *batch;
    int32_t n_head, n_head_kv, head_dim;
    float scale;
    float *out;
} attention_job;

/* One task = one (token, query head): two passes over the visible positions (scores, then the
 * weighted sum of V), exact softmax with the maximum subtracted. */
static void attention_task(void *arg, int32_t task, int32_t thread) {
    const attention_job *job = arg;
    const kv_pool *pool = job->pool;
    const int32_t t = task / job->n_head, h = task % job->n_head;
    const int32_t hd = job->head_dim;
    const int32_t kvh = h / (job->n_head / job->n_head_kv);
    const float *q = job->q + ((size_t)t * job->n_head + h) * hd;
    float *out = job->out + ((size_t)t * job->n_head + h) * hd;
    float *scores = job->cb->scores + (size_t)thread * job->cb->max_positions;
    const int32_t n_pos = job->batch->pos[t] + 1;
    const int32_t *table = job->batch->block_tables[t];
    float row[1024]; /* head_dim <= 1024, checked when the context is created */

    float max_score = -INFINITY;
    for (int32_t p = 0; p < n_pos; p++) {
        const int64_t slot = (int64_t)table[p / pool->block_size] * pool->block_size + p % pool->block_size;
        load_row(pool->type, (const uint8_t *)pool->k + kv_offset(pool, job->layer, slot) +
                                 (size_t)kvh * hd * pool->elem_bytes, row, hd);
        float s = 0.0f;
        for (int32_t i = 0; i < hd; i++) s += q[i] * row[i];
        s *= job->scale;
        scores[p] = s;
        if (s > max_score) max_score = s;
    }
    double sum = 0.0;
    for (int32_t p = 0; p < n_pos; p++) {
        scores[p] = expf(scores[p] - max_score);
        sum += scores[p];
    }
    const float inv = (float)(1.0 / sum);
    memset(out, 0, (size_t)hd * sizeof *out);
    for (int32_t p = 0; p < n_pos; p++) {
        const int64_t slot = (int64_t)table[p / pool->block_size] * pool->block_size + p % pool->block_size;
        load_row(pool->type, (const uint8_t *)pool->v + kv_offset(pool, job->layer, slot) +
                                 (size_t)kvh * hd * pool->elem_bytes, row, hd);
        const float w = scores[p] * inv;
        for (int32_t i = 0; i < hd; i++) out[i] += w * row[i];
    }
}

static void cpu_attention(backend *be, const kv_pool *pool, int32_t layer, const float *q,
                          const attn_batch *batch, int32_t n_head, int32_t n_head_kv,
                          int32_t head_dim, float scale, float *out) {
    attention_job job = {cpu(be), pool, layer, q, batch, n_head, n_head_kv, head_dim, scale, out};
    thread_pool_run(cpu(be)->pool, attention_task, &job, batch->n_tok * n_head);
}

static reason_status cpu_sync(backend *be) {
    (void)be;
    return REASON_OK;
}

static void cpu_destroy(backend *be) {
    if (!be) return;
    cpu_backend *cb = cpu(be);
    thread_pool_free(cb->pool);
    free(cb->scores);
    free(cb->tile);
    free(cb);
}

static const backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .get_rows = cpu_get_rows,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .gather_rows = cpu_gather_rows,
    .add = cpu_add,
    .kv_alloc = cpu_kv_alloc,
    .kv_free = cpu_kv_free,
    .kv_store = cpu_kv_store,
    .kv_copy_block = cpu_kv_copy_block,
    .attention = cpu_attention,
    .sync = cpu_sync,
};

reason_status backend_cpu_create(int32_t n_threads, int32_t max_positions, backend **out) {
    RS_CHECK_ARG(out != NULL && max_positions > 0);
    *out = NULL;
    cpu_backend *cb = rs_calloc(1, sizeof *cb, "CPU backend");
    if (!cb) return REASON_ERR_NOMEM;
    cb->base.ops = &cpu_ops;
    reason_status st = thread_pool_create(n_threads, &cb->pool);
    if (st != REASON_OK) goto fail;
    cb->n_threads = thread_pool_size(cb->pool);
    cb->max_positions = max_positions;
    st = REASON_ERR_NOMEM;
    cb->scores = rs_aligned_alloc((size_t)cb->n_threads * (size_t)max_positions * sizeof(float),
                                  "attention scratch");
    if (!cb->scores) goto fail;
    cb->tile = rs_aligned_alloc(TILE_BYTES, "dequantization tile");
    if (!cb->tile) goto fail;
#ifdef REASON_HAVE_BLAS
    openblas_set_num_threads(cb->n_threads);
#endif
    *out = &cb->base;
    return REASON_OK;
fail:
    cpu_destroy(&cb->base);
    return st;
}
