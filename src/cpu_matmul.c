/* cpu_matmul.c — y (n_tok, rows) = x (n_tok, cols) · wᵀ on the CPU, weights in their file type.
 *
 * Few tokens (decode, a handful of parallel traces): row dot products. The rows are cut into
 * contiguous chunks (a multiple of 16 rows, so no two threads write one cache line of y), about
 * eight per thread, claimed from the pool: each thread streams long runs of the matrix, and a
 * thread that is descheduled on a busy machine just leaves its chunks to the others. Each weight
 * row is read once for all tokens. With q8_matmul the activations are first quantized to 8 bits
 * per 32 and the integer kernels of tensor_types.h are used (types that have one); otherwise,
 * with 2 or more tokens, each row is also converted once for all of them (cpu_rows_tokens.c:
 * F16/BF16 on the fly, other types dequantized to f32 first) instead of once per token.
 *
 * Many tokens (prompt, many traces): with 8-bit activations (fast precision) the quantized types
 * take the integer GEMM of cpu_qgemm.c and BF16 weights the bf16 one (cpu_bgemm.c), everything
 * else our f32 GEMM (cpu_fgemm.c, AVX-512). On CPUs without AVX-512, each pool task dequantizes
 * a tile of weight rows into its thread's 512 KiB buffer (it stays in L2) and multiplies it with
 * single-threaded OpenBLAS sgemm: the pool owns the cores, OpenBLAS starts no threads of its own
 * to fight with our workers. */
#include "backend_cpu.h"

#include "cpu_bgemm.h"
#include "cpu_fgemm.h"
#include "cpu_qgemm.h"
#include "tensor_types.h"

#include <stdlib.h>
#include <string.h>

#ifdef REASON_HAVE_BLAS
#include <cblas.h>
#endif

/* Fewer tokens than this use dot products: dequantizing a tile for a GEMM only pays off when each
 * weight row is reused by many tokens. The integer kernels stay ahead of dequantize + sgemm up to
 * about 32 tokens (SmolLM2, 2 threads: 8 parallel traces 300 vs 148 tokens/s, 32 traces about
 * even); the f32 kernels up to about 16 (quiet machine, 8 parallel traces, alternated: SmolLM2
 * Q4_1 394-404 vs 317-318 tokens/s, Qwen3.5-2B Q8_0 31.0 vs 25.2 with the threshold at 16 rather
 * than 8; a 12-token prompt 5% slower). */
#define GEMM_MIN_TOKENS 16
#define GEMM_MIN_TOKENS_Q8 32
/* With 8-bit activations, at least this many tokens take the integer GEMM (types it has): its
 * unpacking of each weight panel pays off from 4 tokens on, from 3 for Q4_0/Q4_1, which it keeps
 * as nibbles (0.5B, fast, alternated, tokens/s: 4 traces Q8_0 185 -> 210, Q4_K_M 173 -> 211,
 * Q4_0 197 -> 312; 3 traces Q8_0/Q4_K_M even, Q4_0 198 -> 275; 2 traces Q8_0 148 -> 108). */
#define QGEMM_MIN_TOKENS 4
#define QGEMM_MIN_TOKENS_NIBBLES 3
/* f32 elements of one thread's dequantization tile (at least 16 rows are always allowed). */
#define TILE_FLOATS (128 * 1024)
/* Chunks of rows per thread: enough to even out a noisy machine, few enough to stream. */
#define CHUNKS_PER_THREAD 8

typedef struct mm_job {
    cpu_backend *cb;
    const rs_tensor *w;
    const float *x;
    float *y;
    int32_t n_tok;
    int64_t chunk; /* rows per task */
    tensor_dot_fn dot;
    tensor_qdot_fn qdot;
    bool rows_once;     /* rows dequantized once into cb->tiles for cpu_rows_tokens */
    size_t tile_floats; /* per thread */
} mm_job;

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* Bytes ahead of the row being multiplied that the dot path fetches (2048 and 4096 measured
 * alike, 8192 a little slower). */
#define DOT_AHEAD 4096

static void mm_dot_task(void *arg, int32_t task, int32_t thread) {
    const mm_job *job = arg;
    const rs_tensor *w = job->w;
    const int64_t cols = w->ne[0], rows = w->ne[1], nb = cols / 32;
    const int64_t r0 = (int64_t)task * job->chunk, r1 = RS_MIN(rows, r0 + job->chunk);
    const uint8_t *row = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
    const cpu_backend *cb = job->cb;
    if (job->rows_once) { /* 4 rows at a time, read (dequantized) once for all the tokens */
        const bool direct = cpu_rows_tokens_direct(w->type);
        float *buf = cb->tiles + (size_t)thread * cb->tile_cap;
        for (int64_t r = r0; r < r1; r += 4, row += 4 * w->row_bytes) {
            const int32_t nr = (int32_t)RS_MIN(4, r1 - r);
            if (!direct)
                for (int32_t i = 0; i < nr; i++)
                    tensor_dequantize_row(w->type, row + (size_t)i * w->row_bytes,
                                          buf + (size_t)i * cols, cols);
            const int64_t n_next = RS_MIN(4, r1 - r - nr); /* this task's next rows */
            cpu_rows_tokens(direct ? (const void *)row : buf,
                            direct ? w->row_bytes : (size_t)cols * sizeof(float),
                            direct ? w->type : TENSOR_F32, cols, nr, job->x, job->n_tok,
                            job->y + r, (size_t)rows,
                            n_next > 0 ? row + (size_t)nr * w->row_bytes : NULL,
                            (size_t)RS_MAX(0, n_next) * w->row_bytes);
        }
        return;
    }
    /* The row DOT_AHEAD bytes ahead (at least the next) is fetched whole while this one is
     * multiplied: with the hardware prefetchers alone the dot kernels waited on memory (decode,
     * 2 threads: 1.5B Q4_0 exact +27%, SmolLM2 Q4_1 fast +14%; docs/performance.md) */
    const int64_t row_bytes = (int64_t)w->row_bytes;
    const int64_t ahead = RS_MAX(1, (DOT_AHEAD + row_bytes - 1) / row_bytes);
    for (int64_t r = r0; r < r1; r++, row += w->row_bytes) {
        if (r + ahead < r1)
            for (size_t b = 0; b < w->row_bytes; b += 64)
                __builtin_prefetch(row + (size_t)ahead * w->row_bytes + b);
        if (job->qdot) {
            for (int32_t t = 0; t < job->n_tok; t++)
                job->y[(size_t)t * rows + r] =
                    job->qdot(row, cb->xq + (size_t)t * cols, cb->xd + (size_t)t * nb,
                              cb->xs + (size_t)t * nb, cols);
        } else {
            for (int32_t t = 0; t < job->n_tok; t++)
                job->y[(size_t)t * rows + r] = job->dot(row, job->x + (size_t)t * cols, cols);
        }
    }
}

/* Room for n_tok quantized activation vectors of cols; false when memory is short (the caller
 * then takes the f32 path). */
static bool q8_reserve(cpu_backend *cb, size_t n) {
    if (n <= cb->xq_cap) return true;
    free(cb->xq);
    free(cb->xd);
    free(cb->xs);
    cb->xq = rs_aligned_alloc(n, "quantized activations");
    cb->xd = rs_aligned_alloc(n / 32 * sizeof(float) + 64, "activation scales");
    cb->xs = rs_aligned_alloc(n / 32 * sizeof(float) + 64, "activation sums");
    cb->xq_cap = cb->xq && cb->xd && cb->xs ? n : 0;
    if (!cb->xq_cap) {
        free(cb->xq), free(cb->xd), free(cb->xs);
        cb->xq = NULL, cb->xd = cb->xs = NULL;
    }
    return cb->xq_cap != 0;
}

/* At least `floats` of dequantization scratch per thread in cb->tiles. */
static bool reserve_tiles(cpu_backend *cb, size_t floats) {
    if (floats <= cb->tile_cap) return true;
    free(cb->tiles);
    cb->tiles = rs_aligned_alloc((size_t)cb->n_threads * floats * sizeof(float),
                                 "dequantization tiles");
    cb->tile_cap = cb->tiles ? floats : 0;
    return cb->tiles != NULL;
}

/* Chooses the kernel and the chunking of one product on the dot-product path. With q8 set the
 * activations have been quantized into cb->xq/xd/xs already. */
static mm_job dot_job(cpu_backend *cb, const rs_tensor *w, const float *x, float *y, int32_t n_tok,
                      bool q8) {
    const int64_t rows = w->ne[1];
    mm_job job = {.cb = cb, .w = w, .x = x, .y = y, .n_tok = n_tok};
    job.qdot = q8 ? tensor_qdot_kernel(w->type) : NULL;
    if (!job.qdot) job.dot = tensor_dot_kernel(w->type);
    /* (scratch reserved here, read by the tasks: a later job's growth is seen by all) */
    job.rows_once = !job.qdot && n_tok > 1 && cpu_rows_tokens_available() &&
                    reserve_tiles(cb, 4 * (size_t)w->ne[0]);
    job.chunk = RS_MAX(16, round_up((rows + cb->n_threads * CHUNKS_PER_THREAD - 1) /
                                        (cb->n_threads * CHUNKS_PER_THREAD),
                                    16));
    return job;
}

/* Quantizes the n_tok activation vectors of x (cols each) for the integer kernels when they are
 * on and wanted; false when the f32 kernels must be used. */
static bool quantize_input(cpu_backend *cb, const float *x, int64_t cols, int32_t n_tok,
                           bool wanted) {
    if (!wanted || !cb->q8_matmul || cols % 32 != 0 || !q8_reserve(cb, (size_t)n_tok * cols))
        return false;
    for (int32_t t = 0; t < n_tok; t++)
        tensor_quantize_q8(x + (size_t)t * cols, cb->xq + (size_t)t * cols,
                           cb->xd + (size_t)t * (cols / 32), cb->xs + (size_t)t * (cols / 32), cols);
    return true;
}

static int32_t n_chunks(const mm_job *job) {
    return (int32_t)((job->w->ne[1] + job->chunk - 1) / job->chunk);
}

static void matmul_dots(cpu_backend *cb, const rs_tensor *w, const float *x, float *y,
                        int32_t n_tok) {
    const bool q8 = quantize_input(cb, x, w->ne[0], n_tok, tensor_qdot_kernel(w->type) != NULL);
    mm_job job = dot_job(cb, w, x, y, n_tok, q8);
    thread_pool_run(cb->pool, mm_dot_task, &job, n_chunks(&job));
}


#ifdef REASON_HAVE_BLAS
static void mm_tile_task(void *arg, int32_t task, int32_t thread) {
    const mm_job *job = arg;
    const rs_tensor *w = job->w;
    const int64_t cols = w->ne[0], rows = w->ne[1];
    const int64_t r0 = (int64_t)task * job->chunk, nr = RS_MIN(job->chunk, rows - r0);
    const float *tile;
    if (w->type == TENSOR_F32) {
        tile = (const float *)w->data + (size_t)r0 * cols;
    } else {
        float *t = job->cb->tiles + (size_t)thread * job->tile_floats;
        for (int64_t r = 0; r < nr; r++)
            tensor_dequantize_row(w->type,
                                  (const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes,
                                  t + (size_t)r * cols, cols);
        tile = t;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, job->n_tok, (int)nr, (int)cols, 1.0f,
                job->x, (int)cols, tile, (int)cols, 0.0f, job->y + r0, (int)rows);
}

static bool matmul_tiles(cpu_backend *cb, const rs_tensor *w, const float *x, float *y,
                         int32_t n_tok) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    if (!reserve_tiles(cb, RS_MAX((size_t)TILE_FLOATS, (size_t)16 * cols))) return false;
    mm_job job = {.cb = cb, .w = w, .x = x, .y = y, .n_tok = n_tok, .tile_floats = cb->tile_cap};
    const int64_t tile_rows = RS_MAX(16, (int64_t)cb->tile_cap / cols / 16 * 16);
    const int64_t share = round_up((rows + 2 * cb->n_threads - 1) / (2 * cb->n_threads), 16);
    job.chunk = RS_MAX(16, RS_MIN(tile_rows, share));
    thread_pool_run(cb->pool, mm_tile_task, &job, (int32_t)((rows + job.chunk - 1) / job.chunk));
    return true;
}
#endif

static void add_bias(const float *bias, float *y, int64_t rows, int32_t n_tok) {
    if (!bias) return;
    for (int32_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < rows; r++) y[(size_t)t * rows + r] += bias[r];
}

static bool use_qgemm(const cpu_backend *cb, const rs_tensor *w, int32_t n_tok) {
    const bool nibbles = w->type == TENSOR_Q4_0 || w->type == TENSOR_Q4_1;
    return cb->q8_matmul && n_tok >= (nibbles ? QGEMM_MIN_TOKENS_NIBBLES : QGEMM_MIN_TOKENS) &&
           cpu_qgemm_supports(w->type);
}

void cpu_matmul(backend *be, const rs_tensor *w, const float *bias, const float *x, float *y,
                int32_t n_tok) {
    cpu_backend *cb = cpu(be);
    const int64_t rows = w->ne[1];
    bool done = use_qgemm(cb, w, n_tok) && cpu_qgemm_prepare(cb, x, w->ne[0], n_tok) &&
                cpu_qgemm_run(cb, w, y);
    const int32_t min_tokens =
        cb->q8_matmul && tensor_qdot_kernel(w->type) ? GEMM_MIN_TOKENS_Q8 : GEMM_MIN_TOKENS;
    if (!done && n_tok >= min_tokens && cb->q8_matmul) done = cpu_bgemm(cb, w, x, y, n_tok);
    if (!done && n_tok >= min_tokens) done = cpu_fgemm(cb, w, x, y, n_tok);
#ifdef REASON_HAVE_BLAS
    if (!done && n_tok >= min_tokens) done = matmul_tiles(cb, w, x, y, n_tok);
#endif
    if (!done) matmul_dots(cb, w, x, y, n_tok);
    add_bias(bias, y, rows, n_tok);
}

void cpu_matmul_group(backend *be, const matmul_item *items, int32_t n, const float *x,
                      int32_t n_tok) {
    cpu_backend *cb = cpu(be);
    bool all_qgemm = true;
    for (int32_t i = 0; i < n; i++) all_qgemm &= use_qgemm(cb, items[i].w, n_tok);
    if (all_qgemm && cpu_qgemm_prepare(cb, x, items[0].w->ne[0], n_tok)) {
        /* one quantization of the shared input, and one pool run, for all the products */
        const bool together = cpu_qgemm_run_group(cb, items, n);
        for (int32_t i = 0; i < n; i++) {
            if (!together && !cpu_qgemm_run(cb, items[i].w, items[i].y))
                cpu_matmul(be, items[i].w, NULL, x, items[i].y, n_tok);
            add_bias(items[i].bias, items[i].y, items[i].w->ne[1], n_tok);
        }
        return;
    }
    bool any_q8 = false, separate = n > POOL_GROUP_MAX;
    for (int32_t i = 0; i < n && !separate; i++) {
        const rs_tensor *w = items[i].w;
        any_q8 |= tensor_qdot_kernel(w->type) != NULL;
        const int32_t min_tokens =
            cb->q8_matmul && tensor_qdot_kernel(w->type) ? GEMM_MIN_TOKENS_Q8 : GEMM_MIN_TOKENS;
        separate |= n_tok >= min_tokens; /* the GEMM paths: one product at a time */
    }
    if (separate) {
        for (int32_t i = 0; i < n; i++)
            cpu_matmul(be, items[i].w, items[i].bias, x, items[i].y, n_tok);
        return;
    }
    const bool q8 = quantize_input(cb, x, items[0].w->ne[0], n_tok, any_q8);
    /* a group on the dot-product path: the chunks of all its products in one pool run */
    mm_job jobs[POOL_GROUP_MAX];
    pool_group g = {.task = mm_dot_task, .n = n};
    for (int32_t i = 0; i < n; i++) {
        jobs[i] = dot_job(cb, items[i].w, x, items[i].y, n_tok, q8);
        g.jobs[i] = &jobs[i];
        g.first[i + 1] = g.first[i] + n_chunks(&jobs[i]);
    }
    thread_pool_run(cb->pool, pool_group_task, &g, g.first[n]);
    for (int32_t i = 0; i < n; i++) add_bias(items[i].bias, items[i].y, items[i].w->ne[1], n_tok);
}

void cpu_matmul_free(cpu_backend *cb) {
    free(cb->xq);
    free(cb->xd);
    free(cb->xs);
    free(cb->tiles);
    cpu_qgemm_free(cb);
    cpu_fgemm_free(cb);
    cpu_bgemm_free(cb);
    cb->xq = NULL, cb->xd = cb->xs = NULL, cb->tiles = NULL;
    cb->xq_cap = cb->tile_cap = 0;
}
