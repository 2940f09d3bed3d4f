/* backend_cpu.c — the CPU backend, the reference every other backend is tested against:
 * creation and the small row-wise ops. Matrix products live in cpu_matmul.c, the KV pool and
 * attention in cpu_attention.c; all of them split work over the context's thread pool.
 *
 * Numerics: activations stay f32 by default. REASON_PRECISION_FAST (reason_context_params) or
 * REASON_CPU_MATMUL=q8 in the environment make decode products quantize activations to 8 bits
 * per 32 and use integer dot products (faster; ~1-3e-2 relative max-norm on logits, measured in
 * docs/performance.md). */
#include "backend_cpu.h"

#include "cpu_qgemm.h"
#include "tensor_types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef REASON_HAVE_BLAS
extern void openblas_set_num_threads(int num_threads);
#endif

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

/* ---- row-wise work split over the pool --------------------------------------------------------
 * Prompts run these ops on hundreds of rows: serial, they were ~10% of a prompt once the matrix
 * products got fast. A piece is at least min_piece items, so decode (one row) stays on the
 * calling thread with no pool round trip. Results are identical to the serial loop. */

typedef void (*range_fn)(void *ctx, int64_t i0, int64_t i1);

typedef struct range_job {
    range_fn fn;
    void *ctx;
    int64_t n, piece;
} range_job;

static void range_task(void *arg, int32_t task, int32_t thread) {
    (void)thread;
    const range_job *job = arg;
    const int64_t i0 = (int64_t)task * job->piece;
    job->fn(job->ctx, i0, RS_MIN(job->n, i0 + job->piece));
}

static void parallel_for(backend *be, int64_t n, int64_t min_piece, range_fn fn, void *ctx) {
    const cpu_backend *cb = cpu(be);
    if (cb->n_threads < 2 || n < 2 * min_piece) {
        fn(ctx, 0, n);
        return;
    }
    const int64_t pieces = RS_MIN((int64_t)cb->n_threads * 4, n / min_piece);
    range_job job = {fn, ctx, n, (n + pieces - 1) / pieces};
    thread_pool_run(cb->pool, range_task, &job, (int32_t)((n + job.piece - 1) / job.piece));
}

typedef struct rmsnorm_args {
    const float *x, *w;
    float *y;
    int32_t dim;
    float eps;
} rmsnorm_args;

static void rmsnorm_rows(void *ctx, int64_t r0, int64_t r1) {
    const rmsnorm_args *a = ctx;
    const int32_t dim = a->dim;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = a->x + (size_t)r * dim;
        float *yr = a->y + (size_t)r * dim;
        double ss = 0.0;
        for (int32_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / sqrt(ss / dim + a->eps));
        for (int32_t i = 0; i < dim; i++) yr[i] = xr[i] * scale * (a->w ? a->w[i] : 1.0f);
    }
}

static void cpu_rmsnorm(backend *be, const float *x, const float *w, float *y, int32_t n_rows,
                        int32_t dim, float eps) {
    rmsnorm_args a = {x, w, y, dim, eps};
    parallel_for(be, n_rows, RS_MAX(1, 16384 / RS_MAX(dim, 1)), rmsnorm_rows, &a);
}

/* --- position encoding and element-wise ops ------------------------------------------------ */

typedef struct rope_args {
    float *x;
    int32_t n_head;
    const int32_t *pos;
    const rope_params *rp;
} rope_args;

static void rope_tokens(void *ctx, int64_t t0, int64_t t1) {
    const rope_args *a = ctx;
    const rope_params *rp = a->rp;
    const int32_t half = rp->rot_dim / 2, n_head = a->n_head;
    const float mscale = rp->mscale != 0.0f ? rp->mscale : 1.0f;
    for (int64_t t = t0; t < t1; t++) {
        const float p = (float)a->pos[t] * rp->pos_scale;
        for (int32_t i = 0; i < half; i++) {
            /* float32 throughout, as the reference implementations compute it */
            float inv_freq = 1.0f / powf(rp->theta, (float)(2 * i) / (float)rp->rot_dim);
            if (rp->freq_div) inv_freq /= rp->freq_div[i];
            const float angle = p * inv_freq;
            const float c = cosf(angle) * mscale, s = sinf(angle) * mscale;
            for (int32_t h = 0; h < n_head; h++) {
                float *v = a->x + ((size_t)t * n_head + h) * rp->head_dim;
                const int32_t ia = rp->style == ROPE_NEOX ? i : 2 * i;
                const int32_t ib = rp->style == ROPE_NEOX ? i + half : 2 * i + 1;
                const float x0 = v[ia], x1 = v[ib];
                v[ia] = x0 * c - x1 * s;
                v[ib] = x0 * s + x1 * c;
            }
        }
    }
}

static void cpu_rope(backend *be, float *x, int32_t n_tok, int32_t n_head, const int32_t *pos,
                     const rope_params *rp) {
    rope_args a = {x, n_head, pos, rp};
    parallel_for(be, n_tok, 4, rope_tokens, &a);
}

typedef struct swiglu_args {
    const float *gate, *up;
    float *y;
} swiglu_args;

static void swiglu_range(void *ctx, int64_t i0, int64_t i1) {
    const swiglu_args *a = ctx;
    for (int64_t i = i0; i < i1; i++) a->y[i] = a->gate[i] / (1.0f + expf(-a->gate[i])) * a->up[i];
}

static void cpu_swiglu(backend *be, const float *gate, const float *up, float *y, int64_t n) {
    swiglu_args a = {gate, up, y};
    parallel_for(be, n, 16384, swiglu_range, &a);
}

static void cpu_scale(backend *be, float *x, float s, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

static void cpu_softcap(backend *be, float *x, float cap, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

static void cpu_gather_rows(backend *be, const float *src, const int32_t *idx, int32_t n,
                            int32_t dim, float *dst) {
    (void)be;
    for (int32_t i = 0; i < n; i++)
        memcpy(dst + (size_t)i * dim, src + (size_t)idx[i] * dim, (size_t)dim * sizeof(float));
}

typedef struct add_args {
    float *x;
    const float *y;
} add_args;

static void add_range(void *ctx, int64_t i0, int64_t i1) {
    const add_args *a = ctx;
    for (int64_t i = i0; i < i1; i++) a->x[i] += a->y[i];
}

static void cpu_add(backend *be, float *x, const float *y, int64_t n) {
    add_args a = {x, y};
    parallel_for(be, n, 65536, add_range, &a);
}

static reason_status cpu_sync(backend *be) {
    (void)be;
    return REASON_OK;
}

static void cpu_destroy(backend *be) {
    if (!be) return;
    cpu_backend *cb = cpu(be);
    thread_pool_free(cb->pool);
    cpu_matmul_free(cb);
    free(cb->attn_k);
    free(cb->attn_part);
    free(cb->attn_pf);
    cpu_deltanet_free(cb);
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
    .matmul_group = cpu_matmul_group,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .geglu = cpu_geglu,
    .scale = cpu_scale,
    .softcap = cpu_softcap,
    .gather_rows = cpu_gather_rows,
    .add = cpu_add,
    .kv_alloc = cpu_kv_alloc,
    .kv_free = cpu_kv_free,
    .kv_store = cpu_kv_store,
    .kv_copy_block = cpu_kv_copy_block,
    .attention = cpu_attention,
    .sync = cpu_sync,
    .deltanet = cpu_deltanet,
    .mul_sigmoid = cpu_mul_sigmoid,
    .moe_route = cpu_moe_route,
    .moe = cpu_moe,
};

void backend_cpu_set_fast_matmul(backend *be, bool on) {
    const char *mode = getenv("REASON_CPU_MATMUL");
    cpu(be)->q8_matmul = on || (mode && !strcmp(mode, "q8"));
}

void backend_cpu_keep_unpacked(backend *be, bool on) { cpu(be)->keep_unpacked = on; }

uint64_t backend_cpu_kept_bytes(const backend *be) {
    return be->ops == &cpu_ops ? (uint64_t)cpu_qgemm_kept_bytes((const cpu_backend *)be) : 0;
}

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
    const char *mode = getenv("REASON_CPU_MATMUL");
    cb->q8_matmul = mode && !strcmp(mode, "q8");
    const char *pf = getenv("REASON_CPU_ATTN_PREFILL"); /* for benchmarks against the old path */
    cb->attn_prefill_off = pf && !strcmp(pf, "0");
    cb->attn_prefill_generic = pf && !strcmp(pf, "generic");
    st = REASON_ERR_NOMEM;
    cb->attn_k = rs_aligned_alloc((size_t)cb->n_threads * ATTN_CHUNK * 1024 * sizeof(float),
                                  "attention scratch");
    if (!cb->attn_k) goto fail;
#ifdef REASON_HAVE_BLAS
    /* sgemm runs inside our pool's tasks, one call per thread: OpenBLAS threads would only
     * compete with the pool's workers for the same cores */
    openblas_set_num_threads(1);
#endif
    *out = &cb->base;
    return REASON_OK;
fail:
    cpu_destroy(&cb->base);
    return st;
}
