/* backend_cpu.c — the CPU backend, the reference every other backend is tested against:
 * creation and the small row-wise ops. Matrix products live in cpu_matmul.c, the KV pool and
 * attention in cpu_attention.c; all of them split work over the context's thread pool.
 *
 * Numerics: activations stay f32 by default. REASON_PRECISION_FAST (reason_context_params) or
 * REASON_CPU_MATMUL=q8 in the environment make decode products quantize activations to 8 bits
 * per 32 and use integer dot products (faster; ~1-3e-2 relative max-norm on logits, measured in
 * docs/performance.md). */
#include "backend_cpu.h"

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

/* --- position encoding and element-wise ops ------------------------------------------------ */

static void cpu_rope(backend *be, float *x, int32_t n_tok, int32_t n_head, const int32_t *pos,
                     const rope_params *rp) {
    (void)be;
    const int32_t half = rp->rot_dim / 2;
    const float mscale = rp->mscale != 0.0f ? rp->mscale : 1.0f;
    for (int32_t t = 0; t < n_tok; t++) {
        const float p = (float)pos[t] * rp->pos_scale;
        for (int32_t i = 0; i < half; i++) {
            /* float32 throughout, as the reference implementations compute it */
            float inv_freq = 1.0f / powf(rp->theta, (float)(2 * i) / (float)rp->rot_dim);
            if (rp->freq_div) inv_freq /= rp->freq_div[i];
            const float angle = p * inv_freq;
            const float c = cosf(angle) * mscale, s = sinf(angle) * mscale;
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

static void cpu_add(backend *be, float *x, const float *y, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
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
