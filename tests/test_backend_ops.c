/* test_backend_ops.c — every CUDA op × dtype × shape against its CPU twin (DESIGN §1: the CPU
 * backend is the reference). Each case fills random inputs, poisons both outputs with NaN, runs
 * the CPU backend's function pointer and the CUDA launcher on the same data and compares by
 * normalised error ||gpu - cpu||₂ / ||cpu||₂ against a per-op tolerance (NaN anywhere fails).
 *
 * Without a CUDA build or a device it prints "SKIP: no CUDA device" and exits 77 (ctest: skipped).
 * Plain main rather than a Check suite: Check's fork per test would re-initialise the CUDA
 * context in every child. */
#include "backend.h"
#include "backend_cpu.h"
#include "backend_cuda.h"
#include "tensor_types.h"

#include <stdio.h>

#ifndef REASON_HAVE_CUDA

int main(void) {
    /* the CUDA backend of a build without CUDA must refuse cleanly */
    backend *be = NULL;
    const reason_status st = backend_cuda_create(NULL, 16, &be);
    if (st != REASON_ERR_UNSUPPORTED || be) {
        printf("FAIL: backend_cuda_create without CUDA gave %d (%s)\n", (int)st,
               reason_last_error());
        return 1;
    }
    printf("ok: backend_cuda_create without CUDA: %s\n", reason_last_error());
    printf("SKIP: no CUDA device (built without REASON_CUDA)\n");
    return 77;
}

#else

#include "kernels.h"
#include "model_fixture.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rnd_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)(rnd_u32() & 0xffffff) / (float)0x1000000;
}

static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = rnd_uniform(lo, hi);
}

static void poison(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

static int n_fail, n_case;

/* Records and prints one comparison. */
static void check(const char *op, const char *what, const float *gpu, const float *cpu, size_t n,
                  double tol) {
    double num = 0.0, den = 0.0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(gpu[i]) || !isfinite(cpu[i]))
            bad = 1;
        const double d = (double)gpu[i] - cpu[i];
        num += d * d;
        den += (double)cpu[i] * cpu[i];
    }
    const double err = bad ? INFINITY : sqrt(num / (den > 1e-30 ? den : 1e-30));
    const int ok = !bad && err <= tol;
    n_case++;
    if (!ok)
        n_fail++;
    printf("%-4s %-12s %-34s err %.3e tol %.0e\n", ok ? "ok" : "FAIL", op, what, err, tol);
}

/* Device copies of host arrays, released at the end of each case. */
static void *dev_from(const void *h, size_t bytes) {
    void *d = reason_cuda_malloc(bytes);
    if (!d) {
        fprintf(stderr, "cudaMalloc of %zu bytes failed\n", bytes);
        exit(1);
    }
    if (h && reason_cuda_upload(d, h, bytes) != 0) {
        fprintf(stderr, "upload failed\n");
        exit(1);
    }
    return d;
}

static int finish(int launch_rc, void *host, const void *dev, size_t bytes) {
    int rc = launch_rc ? launch_rc : reason_cuda_sync();
    if (!rc)
        rc = reason_cuda_download(host, dev, bytes);
    if (rc)
        printf("     cuda: %s\n", reason_cuda_error_string(rc));
    return rc;
}

/* --- element-wise ------------------------------------------------------------------------- */

enum { EW_ADD, EW_SWIGLU, EW_MUL_SIGMOID, EW_GEGLU, EW_SCALE, EW_SOFTCAP };

static void test_elementwise(backend *be, int op, int64_t n) {
    static const char *names[] = {"add", "swiglu", "mul_sigmoid", "geglu", "scale", "softcap"};
    const size_t bytes = (size_t)n * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes), *ref = malloc(bytes), *got = malloc(bytes);
    fill(a, (size_t)n, -6.0f, 6.0f);
    fill(b, (size_t)n, -3.0f, 3.0f);
    float *da = dev_from(a, bytes), *db = dev_from(b, bytes);
    float *dout = NULL;
    int rc = 0;
    switch (op) {
    case EW_ADD:
        memcpy(ref, a, bytes);
        be->ops->add(be, ref, b, n);
        rc = reason_cuda_add(da, db, n, NULL);
        rc = finish(rc, got, da, bytes);
        break;
    case EW_SWIGLU:
        poison(ref, (size_t)n);
        poison(got, (size_t)n);
        be->ops->swiglu(be, a, b, ref, n);
        dout = dev_from(got, bytes);
        rc = reason_cuda_swiglu(da, db, dout, n, NULL);
        rc = finish(rc, got, dout, bytes);
        break;
    case EW_MUL_SIGMOID:
        memcpy(ref, a, bytes);
        be->ops->mul_sigmoid(be, ref, b, n);
        rc = reason_cuda_mul_sigmoid(da, db, n, NULL);
        rc = finish(rc, got, da, bytes);
        break;
    case EW_GEGLU:
        poison(ref, (size_t)n);
        poison(got, (size_t)n);
        be->ops->geglu(be, a, b, ref, n);
        dout = dev_from(got, bytes);
        rc = reason_cuda_geglu(da, db, dout, n, NULL);
        rc = finish(rc, got, dout, bytes);
        break;
    case EW_SCALE:
        memcpy(ref, a, bytes);
        be->ops->scale(be, ref, 0.37f, n);
        rc = reason_cuda_scale(da, 0.37f, n, NULL);
        rc = finish(rc, got, da, bytes);
        break;
    case EW_SOFTCAP:
        memcpy(ref, a, bytes);
        be->ops->softcap(be, ref, 2.5f, n);
        rc = reason_cuda_softcap(da, 2.5f, n, NULL);
        rc = finish(rc, got, da, bytes);
        break;
    }
    char what[64];
    snprintf(what, sizeof what, "n=%lld", (long long)n);
    if (rc)
        poison(got, (size_t)n);
    check(names[op], what, got, ref, (size_t)n, 1e-5);
    reason_cuda_free(dout);
    reason_cuda_free(db);
    reason_cuda_free(da);
    free(got), free(ref), free(b), free(a);
}

/* --- rmsnorm ------------------------------------------------------------------------------- */

static void test_rmsnorm(backend *be, int32_t n_rows, int32_t dim, int with_w, int in_place) {
    const size_t n = (size_t)n_rows * dim, bytes = n * sizeof(float);
    float *x = malloc(bytes), *w = malloc((size_t)dim * sizeof(float)), *ref = malloc(bytes),
          *got = malloc(bytes);
    fill(x, n, -2.0f, 2.0f);
    fill(w, (size_t)dim, 0.5f, 1.5f);
    const float eps = 1e-6f;
    float *dx = dev_from(x, bytes), *dw = dev_from(w, (size_t)dim * sizeof(float));
    float *dy = dx;
    if (in_place) {
        memcpy(ref, x, bytes);
        be->ops->rmsnorm(be, ref, with_w ? w : NULL, ref, n_rows, dim, eps);
    } else {
        poison(ref, n);
        poison(got, n);
        be->ops->rmsnorm(be, x, with_w ? w : NULL, ref, n_rows, dim, eps);
        dy = dev_from(got, bytes);
    }
    int rc = reason_cuda_rmsnorm(dx, with_w ? dw : NULL, dy, n_rows, dim, eps, NULL);
    if (finish(rc, got, dy, bytes))
        poison(got, n);
    char what[64];
    snprintf(what, sizeof what, "%dx%d%s%s", n_rows, dim, with_w ? " w" : "",
             in_place ? " in-place" : "");
    check("rmsnorm", what, got, ref, n, 1e-5);
    if (dy != dx)
        reason_cuda_free(dy);
    reason_cuda_free(dw);
    reason_cuda_free(dx);
    free(got), free(ref), free(w), free(x);
}

/* --- rope ---------------------------------------------------------------------------------- */

static void test_rope(backend *be, int32_t n_tok, int32_t n_head, int32_t head_dim, int32_t rot_dim,
                      int style, int with_div, int32_t max_pos, float pos_scale, float mscale,
                      double tol) {
    const size_t n = (size_t)n_tok * n_head * head_dim, bytes = n * sizeof(float);
    float *x = malloc(bytes), *ref = malloc(bytes), *got = malloc(bytes);
    float *div = malloc((size_t)(rot_dim / 2) * sizeof(float));
    int32_t *pos = malloc((size_t)n_tok * sizeof(int32_t));
    fill(x, n, -1.0f, 1.0f);
    fill(div, (size_t)(rot_dim / 2), 1.0f, 8.0f);
    for (int32_t t = 0; t < n_tok; t++)
        pos[t] = (int32_t)(rnd_u32() % (uint32_t)max_pos);
    rope_params rp = {.head_dim = head_dim,
                      .rot_dim = rot_dim,
                      .style = style,
                      .theta = 10000.0f,
                      .pos_scale = pos_scale,
                      .mscale = mscale,
                      .freq_div = with_div ? div : NULL};
    memcpy(ref, x, bytes);
    be->ops->rope(be, ref, n_tok, n_head, pos, &rp);
    float *dx = dev_from(x, bytes), *ddiv = dev_from(div, (size_t)(rot_dim / 2) * sizeof(float));
    int32_t *dpos = dev_from(pos, (size_t)n_tok * sizeof(int32_t));
    int rc = reason_cuda_rope(dx, n_tok, n_head, dpos, head_dim, rot_dim, style == ROPE_NEOX,
                              rp.theta, pos_scale, mscale, with_div ? ddiv : NULL, NULL);
    if (finish(rc, got, dx, bytes))
        poison(got, n);
    char what[80];
    snprintf(what, sizeof what, "%dx%dx%d rot%d %s%s pos<%d m%.2g", n_tok, n_head, head_dim,
             rot_dim, style == ROPE_NEOX ? "neox" : "norm", with_div ? " div" : "", max_pos, mscale);
    check("rope", what, got, ref, n, tol);
    reason_cuda_free(dpos);
    reason_cuda_free(ddiv);
    reason_cuda_free(dx);
    free(pos), free(div), free(got), free(ref), free(x);
}

/* --- matmul -------------------------------------------------------------------------------- */

static uint16_t rnd_f16(float lo, float hi) { return rs_f32_to_f16(rnd_uniform(lo, hi)); }

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* A random row of cols elements of type (quantized blocks with sane scales). */
static void fill_row(uint32_t type, uint8_t *row, int64_t cols) {
    switch (type) {
    case TENSOR_F32:
        for (int64_t j = 0; j < cols; j++) {
            float v = rnd_uniform(-1.0f, 1.0f);
            memcpy(row + 4 * j, &v, 4);
        }
        break;
    case TENSOR_F16:
        for (int64_t j = 0; j < cols; j++)
            put16(row + 2 * j, rnd_f16(-1.0f, 1.0f));
        break;
    case TENSOR_BF16:
        for (int64_t j = 0; j < cols; j++)
            put16(row + 2 * j, rs_f32_to_bf16(rnd_uniform(-1, 1)));
        break;
    case TENSOR_Q8_0:
        for (int64_t b = 0; b < cols / 32; b++, row += 34) {
            put16(row, rnd_f16(0.001f, 0.02f));
            for (int k = 0; k < 32; k++)
                row[2 + k] = (uint8_t)(int8_t)((int)(rnd_u32() % 255) - 127);
        }
        break;
    case TENSOR_Q4_0:
        for (int64_t b = 0; b < cols / 32; b++, row += 18) {
            put16(row, rnd_f16(0.01f, 0.2f));
            for (int k = 0; k < 16; k++)
                row[2 + k] = (uint8_t)rnd_u32();
        }
        break;
    case TENSOR_Q4_1:
        for (int64_t b = 0; b < cols / 32; b++, row += 20) {
            put16(row, rnd_f16(0.01f, 0.2f));
            put16(row + 2, rnd_f16(-1.0f, 0.0f));
            for (int k = 0; k < 16; k++)
                row[4 + k] = (uint8_t)rnd_u32();
        }
        break;
    case TENSOR_Q4_K:
        for (int64_t b = 0; b < cols / 256; b++, row += 144) {
            put16(row, rnd_f16(0.001f, 0.01f));
            put16(row + 2, rnd_f16(0.001f, 0.01f));
            for (int k = 4; k < 144; k++)
                row[k] = (uint8_t)rnd_u32();
        }
        break;
    case TENSOR_Q6_K:
        for (int64_t b = 0; b < cols / 256; b++, row += 210) {
            for (int k = 0; k < 192; k++)
                row[k] = (uint8_t)rnd_u32();
            for (int k = 192; k < 208; k++)
                row[k] = (uint8_t)(int8_t)((int)(rnd_u32() % 128) - 64);
            put16(row + 208, rnd_f16(0.0005f, 0.005f));
        }
        break;
    }
}

/* y = x·wᵀ (+ bias) through a device launcher (reason_cuda_matmul, which picks GEMV or GEMM, or
 * reason_cuda_gemm directly: any n_tok, odd shapes) against the CPU backend's matmul. */
typedef int (*product_launcher)(int32_t type, const void *w, int64_t cols, int64_t rows,
                                size_t row_bytes, const float *bias, const float *x, float *y,
                                int32_t n_tok, void *stream);

static void test_product(backend *be, const char *op, product_launcher launch, uint32_t type,
                         int64_t cols, int64_t rows, int32_t n_tok, int with_bias, double tol) {
    const size_t row_bytes = tensor_row_bytes(type, cols);
    const size_t wbytes = row_bytes * (size_t)rows;
    const size_t xn = (size_t)n_tok * cols, yn = (size_t)n_tok * rows;
    uint8_t *w = malloc(wbytes);
    float *x = malloc(xn * 4), *bias = malloc((size_t)rows * 4), *ref = malloc(yn * 4),
          *got = malloc(yn * 4);
    for (int64_t r = 0; r < rows; r++)
        fill_row(type, w + (size_t)r * row_bytes, cols);
    fill(x, xn, -1.0f, 1.0f);
    fill(bias, (size_t)rows, -0.5f, 0.5f);
    rs_tensor t = {
        .name = "w", .type = type, .ne = {cols, rows}, .row_bytes = row_bytes, .data = w};
    poison(ref, yn);
    poison(got, yn);
    be->ops->matmul(be, &t, with_bias ? bias : NULL, x, ref, n_tok);
    void *dw = dev_from(w, wbytes);
    float *dx = dev_from(x, xn * 4), *db = dev_from(bias, (size_t)rows * 4),
          *dy = dev_from(got, yn * 4);
    int rc = launch((int32_t)type, dw, cols, rows, row_bytes, with_bias ? db : NULL, dx, dy,
                    n_tok, NULL);
    if (finish(rc, got, dy, yn * 4))
        poison(got, yn);
    char what[80];
    snprintf(what, sizeof what, "%s %lldx%lld ntok=%d%s", tensor_type_get(type)->name,
             (long long)rows, (long long)cols, n_tok, with_bias ? " bias" : "");
    check(op, what, got, ref, yn, tol);
    reason_cuda_free(dy), reason_cuda_free(db), reason_cuda_free(dx), reason_cuda_free(dw);
    free(got), free(ref), free(bias), free(x), free(w);
}

static void test_matmul(backend *be, uint32_t type, int64_t cols, int64_t rows, int32_t n_tok,
                        int with_bias) {
    /* above REASON_CUDA_GEMV_MAX_TOK tokens the product runs on tensor cores: x in f16 */
    const double tol =
        n_tok > REASON_CUDA_GEMV_MAX_TOK && reason_cuda_gemm_supported((int32_t)type, cols) ? 3e-3
                                                                                            : 1e-4;
    test_product(be, "matmul", reason_cuda_matmul, type, cols, rows, n_tok, with_bias, tol);
}

/* --- tensor-core GEMM, called directly (any n_tok, odd shapes) ------------------------------ */

static void test_gemm(backend *be, uint32_t type, int64_t cols, int64_t rows, int32_t n_tok,
                      int with_bias) {
    test_product(be, "gemm", reason_cuda_gemm, type, cols, rows, n_tok, with_bias, 3e-3);
}

/* --- the CUDA backend's ops (host logic + kernels) vs the CPU backend ----------------------- */

static void test_get_rows(backend *be, backend *gb, uint32_t type, int64_t cols, int32_t n_rows,
                          int32_t n) {
    const size_t row_bytes = tensor_row_bytes(type, cols), tbytes = row_bytes * (size_t)n_rows;
    const size_t on = (size_t)n * cols;
    uint8_t *table = malloc(tbytes);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *ref = malloc(on * 4), *got = malloc(on * 4);
    for (int32_t r = 0; r < n_rows; r++)
        fill_row(type, table + (size_t)r * row_bytes, cols);
    for (int32_t i = 0; i < n; i++)
        ids[i] = (int32_t)(rnd_u32() % (uint32_t)n_rows);
    rs_tensor t = {
        .name = "embd", .type = type, .ne = {cols, n_rows}, .row_bytes = row_bytes, .data = table};
    poison(ref, on);
    poison(got, on);
    be->ops->get_rows(be, &t, ids, n, ref);
    rs_tensor dt = t;
    dt.data = dev_from(table, tbytes);
    float *dout = gb->ops->alloc(gb, on * 4, "rows");
    reason_cuda_upload(dout, got, on * 4);
    gb->ops->get_rows(gb, &dt, ids, n, dout);
    if (gb->ops->sync(gb) != REASON_OK || reason_cuda_download(got, dout, on * 4)) {
        printf("     cuda: %s\n", reason_last_error());
        poison(got, on);
    }
    char what[80];
    snprintf(what, sizeof what, "%s %lld cols, %d of %d rows", tensor_type_get(type)->name,
             (long long)cols, n, n_rows);
    check("get_rows", what, got, ref, on, 1e-7);
    gb->ops->release(gb, dout);
    reason_cuda_free((void *)dt.data);
    free(got), free(ref), free(ids), free(table);
}

static void test_gather_rows(backend *be, backend *gb, int32_t n_src, int32_t n, int32_t dim) {
    const size_t sn = (size_t)n_src * dim, on = (size_t)n * dim;
    float *src = malloc(sn * 4), *ref = malloc(on * 4), *got = malloc(on * 4);
    int32_t *idx = malloc((size_t)n * sizeof *idx);
    fill(src, sn, -3.0f, 3.0f);
    for (int32_t i = 0; i < n; i++)
        idx[i] = (int32_t)(rnd_u32() % (uint32_t)n_src);
    poison(ref, on);
    poison(got, on);
    be->ops->gather_rows(be, src, idx, n, dim, ref);
    float *dsrc = gb->ops->alloc(gb, sn * 4, "src"), *dout = gb->ops->alloc(gb, on * 4, "dst");
    reason_cuda_upload(dsrc, src, sn * 4);
    reason_cuda_upload(dout, got, on * 4);
    gb->ops->gather_rows(gb, dsrc, idx, n, dim, dout);
    if (gb->ops->sync(gb) != REASON_OK || reason_cuda_download(got, dout, on * 4)) {
        printf("     cuda: %s\n", reason_last_error());
        poison(got, on);
    }
    char what[64];
    snprintf(what, sizeof what, "%d of %d rows x %d", n, n_src, dim);
    check("gather_rows", what, got, ref, on, 0.0);
    gb->ops->release(gb, dout);
    gb->ops->release(gb, dsrc);
    free(idx), free(got), free(ref), free(src);
}

static const char *kv_name(int32_t type) {
    return type == REASON_KV_F32 ? "f32" : type == REASON_KV_BF16 ? "bf16" : "f16";
}

/* The pool's K and V as floats (n elements each) from raw bytes of its type. */
static void pool_to_f32(int32_t type, const void *raw, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) {
        if (type == REASON_KV_F32)
            memcpy(out + i, (const uint8_t *)raw + 4 * i, 4);
        else {
            uint16_t h;
            memcpy(&h, (const uint8_t *)raw + 2 * i, 2);
            out[i] = type == REASON_KV_BF16 ? rs_bf16_to_f32(h) : rs_f16_to_f32(h);
        }
    }
}

/* The CPU pool's K (or V) in the row-major layout of the device pool (the CPU's F16 keys are
 * stored in tiles of 16 slots, cpu_kv.c); free() it. */
static void *pool_rows(const kv_pool *p, bool v) {
    const size_t n_slots = (size_t)p->n_blocks * p->block_size, eb = p->elem_bytes;
    uint8_t *out = malloc((size_t)p->n_layer * n_slots * p->kv_dim * eb);
    const uint8_t *src = v ? p->v : p->k;
    for (int32_t l = 0; l < p->n_layer; l++)
        for (size_t s = 0; s < n_slots; s++)
            for (int32_t d = 0; d < p->kv_dim; d++)
                memcpy(out + (((size_t)l * n_slots + s) * p->kv_dim + d) * eb,
                       src + cpu_kv_at(p, v, l, (int64_t)s, d), eb);
    return out;
}

/* kv_store at random distinct slots of layer 1, then kv_copy_block, on both backends; the
 * pools must be identical element for element. */
static void test_kv_store_copy(backend *be, backend *gb, int32_t type, int32_t kv_dim,
                               int32_t n_tok) {
    kv_pool cp = {.n_layer = 3, .kv_dim = kv_dim, .block_size = 16, .n_blocks = 24, .type = type};
    kv_pool gp = cp;
    if (be->ops->kv_alloc(be, &cp) != REASON_OK || gb->ops->kv_alloc(gb, &gp) != REASON_OK) {
        printf("FAIL kv_alloc: %s\n", reason_last_error());
        n_fail++, n_case++;
        return;
    }
    const int32_t n_slots = cp.n_blocks * cp.block_size;
    int32_t *slots = malloc((size_t)n_tok * sizeof *slots);
    int32_t *perm = malloc((size_t)n_slots * sizeof *perm);
    for (int32_t i = 0; i < n_slots; i++)
        perm[i] = i;
    for (int32_t i = n_slots - 1; i > 0; i--) {
        const int32_t j = (int32_t)(rnd_u32() % (uint32_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int32_t i = 0; i < n_tok; i++)
        slots[i] = perm[i];
    const size_t xn = (size_t)n_tok * kv_dim;
    float *k = malloc(xn * 4), *v = malloc(xn * 4);
    fill(k, xn, -2.0f, 2.0f);
    fill(v, xn, -2.0f, 2.0f);
    be->ops->kv_store(be, &cp, 1, k, v, slots, n_tok);
    float *dk = gb->ops->alloc(gb, xn * 4, "k"), *dv = gb->ops->alloc(gb, xn * 4, "v");
    reason_cuda_upload(dk, k, xn * 4);
    reason_cuda_upload(dv, v, xn * 4);
    gb->ops->kv_store(gb, &gp, 1, dk, dv, slots, n_tok);
    be->ops->kv_copy_block(be, &cp, 3, 17);
    gb->ops->kv_copy_block(gb, &gp, 3, 17);
    const size_t n = (size_t)cp.n_layer * n_slots * kv_dim, bytes = n * cp.elem_bytes;
    void *raw = malloc(bytes);
    float *ref = malloc(n * 4), *got = malloc(n * 4);
    char what[80];
    for (int kvi = 0; kvi < 2; kvi++) {
        void *rows = pool_rows(&cp, kvi);
        pool_to_f32(type, rows, n, ref);
        free(rows);
        if (gb->ops->sync(gb) != REASON_OK || reason_cuda_download(raw, kvi ? gp.v : gp.k, bytes)) {
            printf("     cuda: %s\n", reason_last_error());
            memset(raw, 0xff, bytes);
        }
        pool_to_f32(type, raw, n, got);
        snprintf(what, sizeof what, "%s %s kv_dim=%d ntok=%d +copy", kvi ? "V" : "K", kv_name(type),
                 kv_dim, n_tok);
        check("kv_store", what, got, ref, n, 0.0);
    }
    free(got), free(ref), free(raw);
    gb->ops->release(gb, dv);
    gb->ops->release(gb, dk);
    free(v), free(k), free(perm), free(slots);
    gb->ops->kv_free(gb, &gp);
    be->ops->kv_free(be, &cp);
}

/* Attention over a paged pool: n_seq sequences of lengths len[s] (the last n_new[s] positions
 * are this batch's tokens, in order, sequences one after the other); block tables are random
 * permutations of the pool's blocks. The CPU pool is filled by kv_store and copied value for value
 * to the device pool. gb: a CUDA backend (its REASON_CUDA_ATTN fixes the kernel). */
static void test_attention(backend *be, backend *gb, const char *path, int32_t type, int32_t n_head,
                           int32_t n_head_kv, int32_t hd, int32_t window, int with_sinks,
                           int32_t n_seq, const int32_t *len, const int32_t *n_new, double tol) {
    const int32_t bs = 16, kv_dim = n_head_kv * hd;
    int32_t n_blocks = 0, n_tok = 0, max_len = 0;
    for (int32_t s = 0; s < n_seq; s++) {
        n_blocks += (len[s] + bs - 1) / bs;
        n_tok += n_new[s];
        max_len = len[s] > max_len ? len[s] : max_len;
    }
    n_blocks += 3;
    kv_pool cp = {
        .n_layer = 2, .kv_dim = kv_dim, .block_size = bs, .n_blocks = n_blocks, .type = type};
    kv_pool gp = cp;
    if (be->ops->kv_alloc(be, &cp) != REASON_OK || gb->ops->kv_alloc(gb, &gp) != REASON_OK) {
        printf("FAIL kv_alloc: %s\n", reason_last_error());
        n_fail++, n_case++;
        return;
    }
    int32_t *perm = malloc((size_t)n_blocks * sizeof *perm);
    for (int32_t i = 0; i < n_blocks; i++)
        perm[i] = i;
    for (int32_t i = n_blocks - 1; i > 0; i--) {
        const int32_t j = (int32_t)(rnd_u32() % (uint32_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int32_t **tables = malloc((size_t)n_seq * sizeof *tables);
    const int32_t **tok_tables = malloc((size_t)n_tok * sizeof *tok_tables);
    int32_t *pos = malloc((size_t)n_tok * sizeof *pos), *slots = malloc((size_t)n_tok * 4);
    int32_t *seq_id = malloc((size_t)n_tok * sizeof *seq_id);
    const int32_t layer = 1;
    float *kr = malloc((size_t)max_len * kv_dim * 4), *vr = malloc((size_t)max_len * kv_dim * 4);
    int32_t *all_slots = malloc((size_t)max_len * sizeof *all_slots);
    int32_t used = 0, t = 0;
    for (int32_t s = 0; s < n_seq; s++) {
        const int32_t nb = (len[s] + bs - 1) / bs;
        tables[s] = malloc((size_t)nb * sizeof **tables);
        for (int32_t b = 0; b < nb; b++)
            tables[s][b] = perm[used++];
        for (int32_t p = 0; p < len[s]; p++)
            all_slots[p] = tables[s][p / bs] * bs + p % bs;
        fill(kr, (size_t)len[s] * kv_dim, -1.0f, 1.0f);
        fill(vr, (size_t)len[s] * kv_dim, -1.0f, 1.0f);
        be->ops->kv_store(be, &cp, layer, kr, vr, all_slots, len[s]);
        for (int32_t i = 0; i < n_new[s]; i++, t++) {
            pos[t] = len[s] - n_new[s] + i;
            tok_tables[t] = tables[s];
            slots[t] = all_slots[pos[t]];
            seq_id[t] = s;
        }
    }
    const size_t pool_bytes = (size_t)cp.n_layer * n_blocks * bs * kv_dim * cp.elem_bytes;
    void *krows = pool_rows(&cp, false);
    reason_cuda_upload(gp.k, krows, pool_bytes);
    reason_cuda_upload(gp.v, cp.v, pool_bytes);
    free(krows);

    const size_t qn = (size_t)n_tok * n_head * hd;
    float *q = malloc(qn * 4), *ref = malloc(qn * 4), *got = malloc(qn * 4);
    float *sinks = malloc((size_t)n_head * 4);
    fill(q, qn, -2.0f, 2.0f);
    fill(sinks, (size_t)n_head, -1.0f, 3.0f);
    const attn_batch batch = {
        .n_tok = n_tok, .pos = pos, .block_tables = tok_tables, .slots = slots, .seq_id = seq_id};
    attn_params ap = {.n_head = n_head,
                      .n_head_kv = n_head_kv,
                      .head_dim = hd,
                      .scale = 1.0f / sqrtf((float)hd),
                      .window = window,
                      .sinks = with_sinks ? sinks : NULL};
    poison(ref, qn);
    poison(got, qn);
    be->ops->attention(be, &cp, layer, q, &batch, &ap, ref);
    float *dq = gb->ops->alloc(gb, qn * 4, "q"), *dout = gb->ops->alloc(gb, qn * 4, "out");
    float *dsinks = dev_from(sinks, (size_t)n_head * 4);
    reason_cuda_upload(dq, q, qn * 4);
    reason_cuda_upload(dout, got, qn * 4);
    ap.sinks = with_sinks ? dsinks : NULL;
    gb->ops->attention(gb, &gp, layer, dq, &batch, &ap, dout);
    if (gb->ops->sync(gb) != REASON_OK || reason_cuda_download(got, dout, qn * 4)) {
        printf("     cuda: %s\n", reason_last_error());
        poison(got, qn);
    }
    char what[128];
    int o = snprintf(what, sizeof what, "%s %s %d/%d hd%d%s%s len", path, kv_name(type), n_head,
                     n_head_kv, hd, window ? " win" : "", with_sinks ? " sinks" : "");
    for (int32_t s = 0; s < n_seq && o < (int)sizeof what - 16; s++)
        o += snprintf(what + o, sizeof what - (size_t)o, "%s%d+%d", s ? "," : " ",
                      len[s] - n_new[s], n_new[s]);
    if (window)
        snprintf(what + o, sizeof what - (size_t)o, " w%d", window);
    check("attention", what, got, ref, qn, tol);
    reason_cuda_free(dsinks);
    gb->ops->release(gb, dout);
    gb->ops->release(gb, dq);
    free(sinks), free(got), free(ref), free(q);
    for (int32_t s = 0; s < n_seq; s++)
        free(tables[s]);
    free(all_slots), free(vr), free(kr), free(seq_id), free(slots), free(pos), free(tok_tables);
    free(tables), free(perm);
    gb->ops->kv_free(gb, &gp);
    be->ops->kv_free(be, &cp);
}

/* --- sampling helpers vs plain C ------------------------------------------------------------ */

static void test_log_softmax(int32_t n_rows, int32_t n, float temp) {
    const size_t nn = (size_t)n_rows * n;
    float *x = malloc(nn * 4), *ref = malloc(nn * 4), *got = malloc(nn * 4), *pref = malloc(nn * 4),
          *pgot = malloc(nn * 4);
    fill(x, nn, -15.0f, 15.0f);
    for (int32_t r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * n;
        double mx = -INFINITY, sum = 0.0;
        for (int32_t i = 0; i < n; i++)
            mx = fmax(mx, xr[i] / (double)temp);
        for (int32_t i = 0; i < n; i++)
            sum += exp(xr[i] / (double)temp - mx);
        for (int32_t i = 0; i < n; i++) {
            ref[(size_t)r * n + i] = (float)(xr[i] / (double)temp - mx - log(sum));
            pref[(size_t)r * n + i] = (float)exp(ref[(size_t)r * n + i]);
        }
    }
    poison(got, nn);
    poison(pgot, nn);
    float *dx = dev_from(x, nn * 4), *dl = dev_from(got, nn * 4), *dp = dev_from(pgot, nn * 4);
    int rc = reason_cuda_log_softmax(dx, n_rows, n, temp, dl, dp, NULL);
    if (finish(rc, got, dl, nn * 4) || reason_cuda_download(pgot, dp, nn * 4))
        poison(got, nn), poison(pgot, nn);
    char what[64];
    snprintf(what, sizeof what, "%dx%d T=%.2f", n_rows, n, temp);
    check("log_softmax", what, got, ref, nn, 1e-5);
    check("softmax", what, pgot, pref, nn, 1e-5);
    reason_cuda_free(dp), reason_cuda_free(dl), reason_cuda_free(dx);
    free(pgot), free(pref), free(got), free(ref), free(x);
}

static void test_top_k(int32_t n_rows, int32_t n, int32_t k) {
    const size_t nn = (size_t)n_rows * n, kn = (size_t)n_rows * k;
    float *x = malloc(nn * 4), *val = malloc(kn * 4), *dval_h = malloc(kn * 4);
    int32_t *idx = malloc(kn * 4), *didx_h = malloc(kn * 4);
    char *taken = malloc((size_t)n + 1);
    fill(x, nn, -10.0f, 10.0f);
    for (int32_t r = 0; r < n_rows; r++) { /* reference: k selection passes, ties by index */
        const float *xr = x + (size_t)r * n;
        memset(taken, 0, (size_t)n + 1);
        for (int32_t j = 0; j < k; j++) {
            int32_t best = -1;
            for (int32_t i = 0; i < n; i++)
                if (!taken[i] && (best < 0 || xr[i] > xr[best]))
                    best = i;
            idx[(size_t)r * k + j] = best;
            val[(size_t)r * k + j] = best >= 0 ? xr[best] : -INFINITY;
            if (best >= 0)
                taken[best] = 1;
        }
    }
    memset(didx_h, 0x7f, kn * 4);
    poison(dval_h, kn);
    float *dx = dev_from(x, nn * 4), *dv = dev_from(dval_h, kn * 4);
    int32_t *di = dev_from(didx_h, kn * 4);
    int rc = reason_cuda_top_k(dx, n_rows, n, k, di, dv, NULL);
    if (finish(rc, dval_h, dv, kn * 4) || reason_cuda_download(didx_h, di, kn * 4))
        memset(didx_h, 0x7f, kn * 4);
    int same = 1;
    for (size_t i = 0; i < kn; i++)
        if (didx_h[i] != idx[i] || (idx[i] >= 0 && dval_h[i] != val[i]))
            same = 0;
    n_case++;
    if (!same)
        n_fail++;
    printf("%-4s %-12s %dx%d k=%d (exact indices and values)\n", same ? "ok" : "FAIL", "top_k",
           n_rows, n, k);
    reason_cuda_free(di), reason_cuda_free(dv), reason_cuda_free(dx);
    free(taken), free(didx_h), free(idx), free(dval_h), free(val), free(x);
}

static int cmp_desc(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* top-p over the softmax of random logits: the threshold and count of a sorted cumulative sum */
static void test_top_p(int32_t n_rows, int32_t n, float p) {
    const size_t nn = (size_t)n_rows * n;
    float *x = malloc(nn * 4), *probs = malloc(nn * 4), *sorted = malloc((size_t)n * 4);
    float *th = malloc((size_t)n_rows * 4), *gth = malloc((size_t)n_rows * 4);
    int32_t *cnt = malloc((size_t)n_rows * 4), *gcnt = malloc((size_t)n_rows * 4);
    fill(x, nn, -8.0f, 8.0f);
    for (int32_t r = 0; r < n_rows; r++) {
        double mx = -INFINITY, sum = 0.0;
        for (int32_t i = 0; i < n; i++)
            mx = fmax(mx, x[(size_t)r * n + i]);
        for (int32_t i = 0; i < n; i++)
            sum += exp(x[(size_t)r * n + i] - mx);
        for (int32_t i = 0; i < n; i++)
            probs[(size_t)r * n + i] = (float)(exp(x[(size_t)r * n + i] - mx) / sum);
        memcpy(sorted, probs + (size_t)r * n, (size_t)n * 4);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_desc);
        double cum = 0.0;
        int32_t k = 0;
        while (k < n && cum < p)
            cum += sorted[k++];
        th[r] = sorted[k - 1];
        cnt[r] = 0;
        for (int32_t i = 0; i < n; i++)
            cnt[r] += probs[(size_t)r * n + i] >= th[r];
    }
    poison(gth, (size_t)n_rows);
    memset(gcnt, 0xff, (size_t)n_rows * 4);
    float *dp = dev_from(probs, nn * 4), *dth = dev_from(gth, (size_t)n_rows * 4);
    int32_t *dcnt = dev_from(gcnt, (size_t)n_rows * 4);
    int rc = reason_cuda_top_p(dp, n_rows, n, p, dth, dcnt, NULL);
    if (finish(rc, gth, dth, (size_t)n_rows * 4) ||
        reason_cuda_download(gcnt, dcnt, (size_t)n_rows * 4))
        memset(gcnt, 0xff, (size_t)n_rows * 4);
    /* the sums differ in order: accept a count off by one at the boundary */
    int same = 1;
    for (int32_t r = 0; r < n_rows; r++)
        if (gcnt[r] < cnt[r] - 1 || gcnt[r] > cnt[r] + 1 || !isfinite(gth[r]))
            same = 0;
    n_case++;
    if (!same)
        n_fail++;
    printf("%-4s %-12s %dx%d p=%.2f count %d (cpu %d)\n", same ? "ok" : "FAIL", "top_p", n_rows, n,
           p, gcnt[0], cnt[0]);
    reason_cuda_free(dcnt), reason_cuda_free(dth), reason_cuda_free(dp);
    free(gcnt), free(cnt), free(gth), free(th), free(sorted), free(probs), free(x);
}

/* --- Gated DeltaNet ------------------------------------------------------------------------ */

/* n_seq sequences of lens[s] tokens, interleaved round-robin in the batch (each sequence's own
 * tokens in order), random states; y and the final conv windows and states vs the CPU twin
 * (which takes its chunked form for sequences of >= 64 tokens). */
static void test_deltanet(backend *be, backend *gb, int32_t hk, int32_t dk, int32_t hv, int32_t dv,
                          int32_t kw, int32_t tiled, int32_t n_seq, const int32_t *lens) {
    const int32_t conv_dim = 2 * hk * dk + hv * dv, vd = hv * dv;
    int32_t n_tok = 0, max_len = 0;
    for (int32_t s = 0; s < n_seq; s++) n_tok += lens[s], max_len = lens[s] > max_len ? lens[s] : max_len;
    int32_t *seq_of = malloc((size_t)n_tok * sizeof *seq_of);
    for (int32_t t = 0, k = 0; t < max_len; t++)
        for (int32_t s = 0; s < n_seq; s++)
            if (t < lens[s]) seq_of[k++] = s;
    const size_t nq = (size_t)n_tok * conv_dim, nz = (size_t)n_tok * vd, nb = (size_t)n_tok * hv;
    const size_t win = (size_t)(kw - 1) * conv_dim, st = (size_t)hv * dk * dv;
    float *qkv = malloc(nq * 4), *z = malloc(nz * 4), *b = malloc(nb * 4), *a = malloc(nb * 4);
    float *cw = malloc((size_t)conv_dim * kw * 4), *an = malloc((size_t)hv * 4),
          *dtb = malloc((size_t)hv * 4), *nw = malloc((size_t)dv * 4);
    float *conv0 = malloc((win ? win : 1) * n_seq * 4), *ssm0 = malloc(st * n_seq * 4);
    float *conv_r = malloc((win ? win : 1) * n_seq * 4), *ssm_r = malloc(st * n_seq * 4);
    float *conv_g = malloc((win ? win : 1) * n_seq * 4), *ssm_g = malloc(st * n_seq * 4);
    float *ref = malloc(nz * 4), *got = malloc(nz * 4);
    fill(qkv, nq, -1.0f, 1.0f);
    fill(z, nz, -2.0f, 2.0f);
    fill(b, nb, -3.0f, 3.0f);
    fill(a, nb, -3.0f, 3.0f);
    fill(cw, (size_t)conv_dim * kw, -0.6f, 0.6f);
    fill(an, (size_t)hv, -2.0f, -0.05f);
    fill(dtb, (size_t)hv, -1.0f, 1.0f);
    fill(nw, (size_t)dv, 0.5f, 1.5f);
    fill(conv0, win * n_seq, -1.0f, 1.0f);
    fill(ssm0, st * n_seq, -0.1f, 0.1f);
    memcpy(conv_r, conv0, win * n_seq * 4);
    memcpy(ssm_r, ssm0, st * n_seq * 4);
    float **cp = malloc((size_t)n_tok * sizeof *cp), **sp = malloc((size_t)n_tok * sizeof *sp);
    for (int32_t i = 0; i < n_tok; i++)
        cp[i] = conv_r + win * seq_of[i], sp[i] = ssm_r + st * seq_of[i];
    deltanet_params p = {.n_k_head = hk, .d_k = dk, .n_v_head = hv, .d_v = dv, .conv_kernel = kw,
                         .v_head_tiled = tiled, .eps = 1e-6f, .conv_w = cw, .a_neg = an,
                         .dt_bias = dtb, .norm_w = nw};
    poison(ref, nz);
    poison(got, nz);
    be->ops->deltanet(be, &p, qkv, z, b, a, cp, sp, ref, n_tok);

    float *dqkv = dev_from(qkv, nq * 4), *dz = dev_from(z, nz * 4), *db = dev_from(b, nb * 4),
          *da = dev_from(a, nb * 4), *dy = dev_from(got, nz * 4);
    float *dconv = dev_from(conv0, (win ? win : 1) * n_seq * 4), *dssm = dev_from(ssm0, st * n_seq * 4);
    deltanet_params dp = p;
    dp.conv_w = dev_from(cw, (size_t)conv_dim * kw * 4);
    dp.a_neg = dev_from(an, (size_t)hv * 4);
    dp.dt_bias = dev_from(dtb, (size_t)hv * 4);
    dp.norm_w = dev_from(nw, (size_t)dv * 4);
    for (int32_t i = 0; i < n_tok; i++)
        cp[i] = dconv + win * seq_of[i], sp[i] = dssm + st * seq_of[i];
    gb->ops->deltanet(gb, &dp, dqkv, dz, db, da, cp, sp, dy, n_tok);
    int rc = gb->ops->sync(gb) != REASON_OK;
    if (rc) printf("     cuda: %s\n", reason_last_error());
    if (rc || reason_cuda_download(got, dy, nz * 4) || reason_cuda_download(ssm_g, dssm, st * n_seq * 4) ||
        (win && reason_cuda_download(conv_g, dconv, win * n_seq * 4))) {
        poison(got, nz);
        poison(ssm_g, st * n_seq);
        poison(conv_g, win * n_seq);
    }
    char what[96];
    snprintf(what, sizeof what, "%dx%d/%dx%d kw%d%s %d seq %d tok", hk, dk, hv, dv, kw,
             tiled ? " tiled" : "", n_seq, n_tok);
    check("deltanet", what, got, ref, nz, 1e-4);
    check("deltanet", "  final states", ssm_g, ssm_r, st * n_seq, 1e-4);
    if (win) check("deltanet", "  final conv windows", conv_g, conv_r, win * n_seq, 1e-6);
    reason_cuda_free((void *)dp.conv_w), reason_cuda_free((void *)dp.a_neg);
    reason_cuda_free((void *)dp.dt_bias), reason_cuda_free((void *)dp.norm_w);
    reason_cuda_free(dconv), reason_cuda_free(dssm), reason_cuda_free(dy), reason_cuda_free(da);
    reason_cuda_free(db), reason_cuda_free(dz), reason_cuda_free(dqkv);
    free(cp), free(sp), free(ref), free(got), free(conv0), free(ssm0), free(conv_r), free(ssm_r);
    free(conv_g), free(ssm_g), free(cw), free(an), free(dtb), free(nw), free(qkv), free(z), free(b);
    free(a), free(seq_of);
}

/* --- mixture of experts --------------------------------------------------------------------- */

/* Routing of n_tok random logits (on a coarse grid: many ties) vs the CPU twin: ids exactly,
 * weights to 1e-6. */
static void test_moe_route(backend *be, backend *gb, int32_t n_tok, int32_t n_expert, int32_t n_used,
                           int32_t norm, int32_t shared) {
    const int32_t n_slot = n_used + shared;
    const size_t nl = (size_t)n_tok * n_expert, ns = (size_t)n_tok * n_slot;
    float *l = malloc(nl * 4), *sh = malloc((size_t)n_tok * 4), *wr = malloc(ns * 4),
          *wg = malloc(ns * 4);
    int32_t *ir = malloc(ns * 4), *ig = malloc(ns * 4);
    for (size_t i = 0; i < nl; i++) l[i] = (float)(int)rnd_uniform(-8.0f, 8.0f) * 0.25f;
    fill(sh, (size_t)n_tok, -3.0f, 3.0f);
    poison(wr, ns);
    poison(wg, ns);
    be->ops->moe_route(be, l, shared ? sh : NULL, n_tok, n_expert, n_used, norm, ir, wr);
    float *dl = dev_from(l, nl * 4), *dsh = dev_from(sh, (size_t)n_tok * 4), *dw = dev_from(wg, ns * 4);
    int32_t *di = dev_from(NULL, ns * 4);
    gb->ops->moe_route(gb, dl, shared ? dsh : NULL, n_tok, n_expert, n_used, norm, di, dw);
    int rc = gb->ops->sync(gb) != REASON_OK;
    if (rc || reason_cuda_download(wg, dw, ns * 4) || reason_cuda_download(ig, di, ns * 4)) {
        printf("     cuda: %s\n", reason_last_error());
        poison(wg, ns);
        memset(ig, 0xff, ns * 4);
    }
    int bad = 0;
    for (size_t i = 0; i < ns; i++) bad += ir[i] != ig[i];
    char what[96];
    snprintf(what, sizeof what, "%d tok %d of %d%s%s, %d ids differ", n_tok, n_used, n_expert,
             norm ? " norm" : "", shared ? " shared" : "", bad);
    if (bad) poison(wg, 1);
    check("moe_route", what, wg, wr, ns, 1e-6);
    reason_cuda_free(di), reason_cuda_free(dw), reason_cuda_free(dsh), reason_cuda_free(dl);
    free(ig), free(ir), free(wg), free(wr), free(sh), free(l);
}

/* The experts of n_tok random tokens (routing by the CPU twin, the same ids and weights on both
 * sides) with `type` weights in 3-D layout, a shared expert of rows_sh rows when rows_sh > 0,
 * gpt-oss's clamped SwiGLU with biases or GeGLU with per-expert scales. */
static void test_moe(backend *be, backend *gb, uint32_t type, int32_t n_tok, int32_t n_expert,
                     int32_t n_used, int32_t n_embd, int32_t rows, int32_t rows_sh, int32_t act,
                     double tol) {
    const int32_t shared = rows_sh > 0, n_slot = n_used + shared, n_views = n_expert + shared;
    const size_t rb_in = tensor_row_bytes(type, n_embd), rb_dn = tensor_row_bytes(type, rows),
                 rb_sh = tensor_row_bytes(type, rows_sh > 0 ? rows_sh : 32);
    const size_t gbytes = rb_in * (size_t)rows * n_expert, dbytes = rb_dn * (size_t)n_embd * n_expert;
    const size_t sgbytes = shared ? rb_in * (size_t)rows_sh : 1, sdbytes = shared ? rb_sh * (size_t)n_embd : 1;
    uint8_t *wg = malloc(gbytes), *wu = malloc(gbytes), *wd = malloc(dbytes), *sg = malloc(sgbytes),
            *su = malloc(sgbytes), *sd = malloc(sdbytes);
    for (int64_t r = 0; r < (int64_t)rows * n_expert; r++) {
        fill_row(type, wg + (size_t)r * rb_in, n_embd);
        fill_row(type, wu + (size_t)r * rb_in, n_embd);
    }
    for (int64_t r = 0; r < (int64_t)n_embd * n_expert; r++) fill_row(type, wd + (size_t)r * rb_dn, rows);
    for (int64_t r = 0; shared && r < rows_sh; r++) {
        fill_row(type, sg + (size_t)r * rb_in, n_embd);
        fill_row(type, su + (size_t)r * rb_in, n_embd);
    }
    for (int64_t r = 0; shared && r < n_embd; r++) fill_row(type, sd + (size_t)r * rb_sh, rows_sh);
    const int biases = act == EXPERT_SWIGLU_CLAMPED, scales = act == EXPERT_GEGLU;
    float *gb_ = malloc((size_t)n_expert * rows * 4), *ub = malloc((size_t)n_expert * rows * 4),
          *db_ = malloc((size_t)n_expert * n_embd * 4), *es = malloc((size_t)n_expert * 4);
    fill(gb_, (size_t)n_expert * rows, -0.5f, 0.5f);
    fill(ub, (size_t)n_expert * rows, -0.5f, 0.5f);
    fill(db_, (size_t)n_expert * n_embd, -0.5f, 0.5f);
    fill(es, (size_t)n_expert, 0.5f, 2.0f);
    uint8_t *dwg = dev_from(wg, gbytes), *dwu = dev_from(wu, gbytes), *dwd = dev_from(wd, dbytes),
            *dsg = dev_from(sg, sgbytes), *dsu = dev_from(su, sgbytes), *dsd = dev_from(sd, sdbytes);
    rs_tensor *hv = calloc((size_t)n_views * 6, sizeof *hv), *dv = hv + 3 * (size_t)n_views;
    for (int32_t e = 0; e < n_views; e++) {
        const int sh = e == n_expert;
        const int64_t r = sh ? rows_sh : rows;
        const size_t og = (size_t)e * rows * rb_in, od = (size_t)e * n_embd * rb_dn;
        const rs_tensor g = {.name = "gate", .type = type, .ne = {n_embd, r}, .row_bytes = rb_in};
        const rs_tensor d = {.name = "down", .type = type, .ne = {r, n_embd},
                             .row_bytes = sh ? rb_sh : rb_dn};
        hv[e] = g, hv[n_views + e] = g, hv[2 * n_views + e] = d;
        dv[e] = g, dv[n_views + e] = g, dv[2 * n_views + e] = d;
        hv[e].data = sh ? sg : wg + og, dv[e].data = sh ? dsg : dwg + og;
        hv[n_views + e].data = sh ? su : wu + og, dv[n_views + e].data = sh ? dsu : dwu + og;
        hv[2 * n_views + e].data = sh ? sd : wd + od, dv[2 * n_views + e].data = sh ? dsd : dwd + od;
    }
    moe_params hp = {.n_expert = n_expert, .n_slot = n_slot, .act = act, .gate = hv,
                     .up = hv + n_views, .down = hv + 2 * n_views,
                     .gate_bias = biases ? gb_ : NULL, .up_bias = biases ? ub : NULL,
                     .down_bias = biases ? db_ : NULL, .expert_scale = scales ? es : NULL,
                     .limit = 7.0f, .alpha = 1.702f};
    moe_params dp = hp;
    dp.gate = dv, dp.up = dv + n_views, dp.down = dv + 2 * n_views;
    float *dgb = dev_from(gb_, (size_t)n_expert * rows * 4), *dub = dev_from(ub, (size_t)n_expert * rows * 4),
          *ddb = dev_from(db_, (size_t)n_expert * n_embd * 4);
    if (biases) dp.gate_bias = dgb, dp.up_bias = dub, dp.down_bias = ddb;
    /* expert_scale stays a host array on both sides (model memory the host reads) */

    const size_t nx = (size_t)n_tok * n_embd, nl = (size_t)n_tok * n_expert, ns = (size_t)n_tok * n_slot;
    float *x = malloc(nx * 4), *l = malloc(nl * 4), *sh = malloc((size_t)n_tok * 4), *w = malloc(ns * 4),
          *ref = malloc(nx * 4), *got = malloc(nx * 4);
    int32_t *ids = malloc(ns * 4);
    fill(x, nx, -1.0f, 1.0f);
    fill(l, nl, -2.0f, 2.0f);
    fill(sh, (size_t)n_tok, -2.0f, 2.0f);
    be->ops->moe_route(be, l, shared ? sh : NULL, n_tok, n_expert, n_used, 1, ids, w);
    const int32_t rows_max = rows > rows_sh ? rows : rows_sh;
    const size_t wbytes = moe_work_bytes(n_tok, n_embd, rows_max, n_slot, n_expert + 1);
    void *work = malloc(wbytes);
    poison(ref, nx);
    poison(got, nx);
    be->ops->moe(be, &hp, x, ids, w, ref, n_tok, work);
    float *dx = dev_from(x, nx * 4), *dw = dev_from(w, ns * 4), *dout = dev_from(got, nx * 4);
    int32_t *dids = dev_from(ids, ns * 4);
    void *dwork = dev_from(NULL, wbytes);
    gb->ops->moe(gb, &dp, dx, dids, dw, dout, n_tok, dwork);
    int rc = gb->ops->sync(gb) != REASON_OK;
    if (rc) printf("     cuda: %s\n", reason_last_error());
    if (rc || reason_cuda_download(got, dout, nx * 4)) poison(got, nx);
    static const char *acts[] = {"swiglu", "swiglu-clamp+bias", "geglu+scale"};
    char what[96];
    snprintf(what, sizeof what, "%s %d tok %d/%d %dx%d%s %s", tensor_type_get(type)->name, n_tok,
             n_used, n_expert, n_embd, rows, shared ? " +shared" : "", acts[act]);
    check("moe", what, got, ref, nx, tol);
    reason_cuda_free(dwork), reason_cuda_free(dids), reason_cuda_free(dout), reason_cuda_free(dw);
    reason_cuda_free(dx), reason_cuda_free(dgb), reason_cuda_free(dub), reason_cuda_free(ddb);
    reason_cuda_free(dwg), reason_cuda_free(dwu), reason_cuda_free(dwd), reason_cuda_free(dsg);
    reason_cuda_free(dsu), reason_cuda_free(dsd);
    free(work), free(ids), free(got), free(ref), free(w), free(sh), free(l), free(x), free(hv);
    free(gb_), free(ub), free(db_), free(es), free(wg), free(wu), free(wd), free(sg), free(su), free(sd);
}

/* --- end to end: a tiny committed model decoded on both backends ------------------------------ */

/* The model at f->gguf (a GGUF file or a Hugging Face directory) decoded on both backends; with
 * refuse, a model the CUDA backend must refuse at creation (REASON_ERR_UNSUPPORTED, e.g. a
 * weight type without a CUDA kernel). */
static void run_model(const char *name, model_fixture *fx, double tol, int refuse) {
    model_fixture f = *fx;
    reason_model *model = NULL;
    reason_context *cctx = NULL, *gctx = NULL;
    char what[96];
    if (reason_model_load(f.gguf, NULL, &model) != REASON_OK) {
        printf("FAIL model %s: cannot load (%s)\n", name, reason_last_error());
        n_fail++, n_case++;
        return;
    }
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = 1024;
    p.n_seq_max = 3;
    p.n_batch = 512; /* the whole prompt in one batch, logits of every token */
    p.n_outputs_max = 512;
    unsetenv("REASON_BACKEND");
    reason_status cst = reason_context_create(model, &p, &cctx);
    setenv("REASON_BACKEND", "cuda", 1);
    reason_status gst = reason_context_create(model, &p, &gctx);
    unsetenv("REASON_BACKEND");
    if (refuse) {
        const int ok = cst == REASON_OK && gst == REASON_ERR_UNSUPPORTED && !gctx;
        n_case++, n_fail += !ok;
        printf("%-4s %-12s %-34s cuda creation %d: %s\n", ok ? "ok" : "FAIL", "model", name,
               (int)gst, reason_last_error());
        goto done;
    }
    if (cst != REASON_OK || gst != REASON_OK) {
        printf("FAIL model %s: context (cpu %d, cuda %d): %s\n", name, (int)cst, (int)gst,
               reason_last_error());
        n_fail++, n_case++;
        goto done;
    }
    /* the prompt in one batch (GEMM, prefill attention), logits of every token; then sequence 0
     * forked into 1 and 2 (shared KV blocks, copied recurrent slots) and the greedy tokens fed
     * to all three together, one batch of 3 per step in a rotating order (GEMV, split-KV
     * attention, several sequences in the deltanet and moe ops) */
    int32_t pos[512], seq[512], tok3[3], pos3[3], seq3[3];
    int8_t want[512];
    for (int32_t i = 0; i < f.n_tokens; i++)
        pos[i] = i, seq[i] = 0, want[i] = 1;
    double worst = 0.0;
    int32_t start = 0;
    while (start < f.n_tokens) {
        const int32_t n = start == 0 ? f.n_prompt : 3;
        if (start > 0)
            for (int32_t j = 0; j < 3; j++)
                tok3[j] = f.tokens[start], pos3[j] = start, seq3[j] = (start + j) % 3;
        const reason_batch b = {.n_tokens = n,
                                .tokens = start ? tok3 : f.tokens,
                                .pos = start ? pos3 : pos,
                                .seq_id = start ? seq3 : seq,
                                .want_logits = want};
        cst = reason_decode(cctx, &b);
        gst = reason_decode(gctx, &b);
        if (cst != REASON_OK || gst != REASON_OK) {
            printf("FAIL model %s: decode at %d (cpu %d, cuda %d): %s\n", name, start, (int)cst,
                   (int)gst, reason_last_error());
            worst = INFINITY;
            break;
        }
        for (int32_t i = 0; i < n; i++) {
            const float *lc = NULL, *lg = NULL;
            reason_get_logits(cctx, i, &lc);
            reason_get_logits(gctx, i, &lg);
            double e = lc && lg ? rel_max_err(lg, lc, f.n_vocab) : INFINITY;
            for (int32_t j = 0; lg && j < f.n_vocab; j++)
                if (!isfinite(lg[j]))
                    e = INFINITY;
            worst = fmax(worst, e);
        }
        if (start == 0)
            for (int32_t c = 1; c < 3; c++)
                if (reason_seq_fork(cctx, 0, c) != REASON_OK ||
                    reason_seq_fork(gctx, 0, c) != REASON_OK) {
                    printf("FAIL model %s: fork: %s\n", name, reason_last_error());
                    worst = INFINITY;
                }
        start += start == 0 ? f.n_prompt : 1;
        if (!isfinite(worst))
            break;
    }
    n_case++;
    const int ok = worst <= tol;
    if (!ok)
        n_fail++;
    snprintf(what, sizeof what, "%s, %d prompt + %d steps x 3 seq", name, f.n_prompt,
             f.n_tokens - f.n_prompt);
    printf("%-4s %-12s %-34s max rel err %.3e tol %.0e\n", ok ? "ok" : "FAIL", "model", what,
           worst, tol);
done:
    reason_context_free(gctx);
    reason_context_free(cctx);
    reason_model_free(model);
}

static void test_model(const char *name, double tol) {
    model_fixture f;
    if (model_fixture_load(name, &f) != 0) {
        printf("FAIL model %s: cannot load the fixture\n", name);
        n_fail++, n_case++;
    } else {
        run_model(name, &f, tol, 0);
    }
    model_fixture_free(&f);
}

static int copy_file(const char *src, const char *dir, const char *name) {
    char dst[512], buf[8192];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    int ok = in && out;
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out) fclose(out);
    return ok ? 0 : -1;
}

/* A tiny Hugging Face fixture of tests/data/hf (as tests/hf_fixture.h sets it up: copied into a
 * temporary directory with the qwen3 tokenizer; token ids from <name>.json). */
static void test_model_hf(const char *name, double tol, int refuse) {
    char dir[32] = "/tmp/reason-cuda-XXXXXX", src[1024], rel[160];
    model_fixture f;
    memset(&f, 0, sizeof f);
    int ok = mkdtemp(dir) != NULL;
    static const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; ok && i < 2; i++) {
        snprintf(rel, sizeof rel, "hf/%s/%s", name, files[i]);
        ok = copy_file(test_data_path(rel, src, sizeof src), dir, files[i]) == 0;
    }
    ok = ok && copy_file(test_data_path("models/qwen3-tokenizer.json", src, sizeof src), dir,
                         "tokenizer.json") == 0;
    json_t *root = NULL;
    if (ok) {
        json_error_t err;
        snprintf(rel, sizeof rel, "hf/%s.json", name);
        root = json_load_file(test_data_path(rel, src, sizeof src), 0, &err);
        ok = root != NULL;
    }
    if (ok) {
        f.n_prompt = json_ids(json_object_get(root, "prompt_ids"), f.tokens, 512);
        f.n_tokens = f.n_prompt + json_ids(json_object_get(root, "greedy_ids"),
                                           f.tokens + f.n_prompt, 512 - f.n_prompt);
        f.n_vocab = (int32_t)json_integer_value(json_object_get(root, "n_vocab"));
        snprintf(f.gguf, sizeof f.gguf, "%s", dir);
        run_model(name, &f, tol, refuse);
    } else {
        printf("FAIL model %s: cannot set up the fixture\n", name);
        n_fail++, n_case++;
    }
    json_decref(root);
    static const char *all[] = {"config.json", "model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/%s", dir, all[i]);
        unlink(src);
    }
    rmdir(dir);
}

/* Whether a section runs: REASON_OPS, a comma-separated list of sections (elementwise, rmsnorm,
 * rope, matmul, gemm, rows, kv, decode, prefill, sample, deltanet, moe, model), narrows a run, as
 * kernels/emu/run.sh does; unset: every section. */
static int want(const char *section) {
    const char *only = getenv("REASON_OPS");
    if (!only || !*only)
        return 1;
    const size_t n = strlen(section);
    for (const char *p = only; (p = strstr(p, section)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* A CUDA backend without a model whose attention op uses the given kernel (NULL: automatic). */
static backend *cuda_backend_with(const char *attn) {
    backend *gb = NULL;
    if (attn)
        setenv("REASON_CUDA_ATTN", attn, 1);
    else
        unsetenv("REASON_CUDA_ATTN");
    const reason_status st = backend_cuda_create(NULL, 1 << 16, &gb);
    unsetenv("REASON_CUDA_ATTN");
    if (st != REASON_OK) {
        fprintf(stderr, "cuda backend: %s\n", reason_last_error());
        exit(1);
    }
    return gb;
}

/* Without a device: the CUDA backend and a REASON_BACKEND=cuda context must fail cleanly with
 * REASON_ERR_DEVICE (CI builds with CUDA on machines without a GPU). 0 when they do. */
static int check_no_device(void) {
    backend *gb = NULL;
    reason_status st = backend_cuda_create(NULL, 16, &gb);
    if (st != REASON_ERR_DEVICE || gb) {
        printf("FAIL: backend_cuda_create without a device gave %d\n", (int)st);
        return 1;
    }
    printf("ok: backend_cuda_create without a device: %s\n", reason_last_error());
    model_fixture f;
    reason_model *model = NULL;
    if (model_fixture_load("qwen3-F16", &f) == 0 &&
        reason_model_load(f.gguf, NULL, &model) == REASON_OK) {
        reason_context *ctx = NULL;
        setenv("REASON_BACKEND", "cuda", 1);
        st = reason_context_create(model, NULL, &ctx);
        unsetenv("REASON_BACKEND");
        reason_context_free(ctx);
        reason_model_free(model);
        if (st != REASON_ERR_DEVICE || ctx) {
            printf("FAIL: REASON_BACKEND=cuda context without a device gave %d\n", (int)st);
            model_fixture_free(&f);
            return 1;
        }
        printf("ok: REASON_BACKEND=cuda context without a device: %s\n", reason_last_error());
    }
    model_fixture_free(&f);
    return 0;
}

int main(void) {
    if (reason_cuda_device_count() == 0) {
        if (check_no_device())
            return 1;
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    backend *be = NULL;
    if (backend_cpu_create(2, 4096, &be) != REASON_OK) {
        fprintf(stderr, "cpu backend: %s\n", reason_last_error());
        return 1;
    }
    backend *gb = cuda_backend_with(NULL), *gdec = cuda_backend_with("decode"),
            *gpre = cuda_backend_with("prefill");

    if (want("elementwise")) {
        static const int64_t ew_sizes[] = {1, 3, 4, 31, 1000, 4097, 65536 + 5, 1 << 20};
        for (int op = EW_ADD; op <= EW_SOFTCAP; op++)
            for (size_t i = 0; i < sizeof ew_sizes / sizeof *ew_sizes; i++)
                test_elementwise(be, op, ew_sizes[i]);
    }

    if (want("rmsnorm")) {
        test_rmsnorm(be, 1, 4096, 1, 0);
        test_rmsnorm(be, 7, 896, 1, 0);
        test_rmsnorm(be, 3, 5120, 1, 1); /* block-per-row path */
        test_rmsnorm(be, 64, 128, 1, 1); /* per-head: n_tok*n_head rows of head_dim */
        test_rmsnorm(be, 5, 33, 0, 0);   /* odd dim, no weight */
        test_rmsnorm(be, 2, 1025, 1, 0); /* just past the warp-per-row limit */
    }

    if (want("rope"))
        for (int style = ROPE_NORMAL; style <= ROPE_NEOX; style++) {
            test_rope(be, 1, 32, 128, 128, style, 0, 4096, 1.0f, 0.0f, 1e-3);
            test_rope(be, 5, 8, 64, 32, style, 0, 4096, 1.0f, 0.0f, 1e-3);   /* partial rotation */
            test_rope(be, 3, 4, 256, 64, style, 1, 4096, 0.25f, 0.0f, 1e-3); /* divisors, scaling */
            test_rope(be, 9, 3, 80, 80, style, 1, 40000, 1.0f, 1.0f, 1e-2);  /* long positions */
            test_rope(be, 4, 4, 64, 64, style, 0, 4096, 1.0f, 1.2f, 1e-3);   /* YaRN mscale */
        }

    static const uint32_t types[] = {TENSOR_F32,  TENSOR_F16,  TENSOR_BF16, TENSOR_Q8_0,
                                     TENSOR_Q4_0, TENSOR_Q4_1, TENSOR_Q4_K, TENSOR_Q6_K};
    static const struct {
        int64_t cols, rows;
        int32_t n_tok;
    } shapes[] = {
        {64, 33, 1}, {256, 100, 3}, {4096, 257, 1}, {1024, 512, 8}, {2048, 130, 13}, {896, 151, 2},
    };
    static const struct {
        int64_t cols, rows;
        int32_t n_tok;
    } odd[] = {
        {67, 19, 1},
        {1001, 7, 5},
        {130, 64, 4},
        {3, 5, 9},
    };
    for (size_t ti = 0; want("matmul") && ti < sizeof types / sizeof *types; ti++) {
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            if (shapes[s].cols % tensor_type_get(types[ti])->block_size == 0)
                test_matmul(be, types[ti], shapes[s].cols, shapes[s].rows, shapes[s].n_tok,
                            (int)(s & 1));
        if (types[ti] == TENSOR_F32 || types[ti] == TENSOR_F16 || types[ti] == TENSOR_BF16)
            for (size_t s = 0; s < sizeof odd / sizeof *odd; s++)
                test_matmul(be, types[ti], odd[s].cols, odd[s].rows, odd[s].n_tok, (int)(s & 1));
    }

    /* tensor-core GEMM at odd shapes (n_tok 1.. beyond a tile, rows off the 128 tile) */
    static const uint32_t gemm_types[] = {TENSOR_F16,  TENSOR_BF16, TENSOR_Q8_0, TENSOR_Q4_0,
                                          TENSOR_Q4_1, TENSOR_Q4_K, TENSOR_Q6_K};
    static const struct {
        int64_t cols, rows;
        int32_t n_tok;
    } gshapes[] = {{32, 7, 1},       {256, 300, 64}, {896, 151, 100}, {1024, 129, 9},
                   {2048, 257, 130}, {512, 1000, 3}, {1536, 64, 65},  {4096, 200, 17}};
    for (size_t ti = 0; want("gemm") && ti < sizeof gemm_types / sizeof *gemm_types; ti++)
        for (size_t s = 0; s < sizeof gshapes / sizeof *gshapes; s++)
            if (reason_cuda_gemm_supported((int32_t)gemm_types[ti], gshapes[s].cols))
                test_gemm(be, gemm_types[ti], gshapes[s].cols, gshapes[s].rows, gshapes[s].n_tok,
                          (int)(s & 1));

    for (size_t ti = 0; want("rows") && ti < sizeof types / sizeof *types; ti++) {
        test_get_rows(be, gb, types[ti], 256, 50, 7);
        test_get_rows(be, gb, types[ti], 1536, 1000, 33);
    }
    if (want("rows")) {
        test_get_rows(be, gb, TENSOR_F16, 37, 9, 5); /* odd width */
        test_gather_rows(be, gb, 64, 5, 896);
        test_gather_rows(be, gb, 300, 64, 33);
    }

    for (int32_t type = 0; want("kv") && type <= 2; type++) {
        test_kv_store_copy(be, gb, type, 256, 40);
        test_kv_store_copy(be, gb, type, 96, 3);
    }

    /* split-KV decode: one token per sequence (and a few tokens, all through split-KV) */
    const double dtol = 1e-4;
    if (want("decode")) {
        {
            const int32_t len[] = {8192}, nn[] = {1};
            test_attention(be, gdec, "decode", REASON_KV_F16, 32, 8, 128, 0, 0, 1, len, nn, dtol);
        }
        {
            const int32_t len[] = {32768}, nn[] = {1};
            test_attention(be, gdec, "decode", REASON_KV_F16, 8, 1, 128, 0, 0, 1, len, nn, dtol);
        }
        {
            const int32_t len[] = {1, 17, 300, 5000}, nn[] = {1, 1, 1, 1};
            test_attention(be, gdec, "decode", REASON_KV_BF16, 14, 2, 64, 0, 0, 4, len, nn, dtol);
            test_attention(be, gdec, "decode", REASON_KV_F32, 12, 4, 64, 0, 1, 4, len, nn, dtol);
        }
        {
            const int32_t len[] = {1000, 40, 257}, nn[] = {1, 1, 3};
            test_attention(be, gdec, "decode", REASON_KV_F32, 8, 8, 128, 256, 1, 3, len, nn, dtol);
            test_attention(be, gdec, "decode", REASON_KV_F16, 16, 2, 128, 100, 0, 3, len, nn, dtol);
        }
        {
            const int32_t len[] = {37, 100}, nn[] = {1, 2};
            test_attention(be, gdec, "decode", REASON_KV_F16, 4, 2, 96, 0, 0, 2, len, nn, dtol);
            test_attention(be, gdec, "decode", REASON_KV_BF16, 10, 2, 80, 0, 1, 2, len, nn, dtol);
            test_attention(be, gdec, "decode", REASON_KV_F16, 4, 1, 256, 0, 0, 2, len, nn, dtol);
        }
    }
    /* causal prefill on tensor cores (f16 / bf16 operands: looser) */
    if (want("prefill")) {
        {
            const int32_t len[] = {300}, nn[] = {300};
            test_attention(be, gpre, "prefill", REASON_KV_F16, 16, 4, 128, 0, 0, 1, len, nn, 5e-3);
            test_attention(be, gpre, "prefill", REASON_KV_BF16, 16, 4, 128, 0, 0, 1, len, nn, 2e-2);
        }
        {
            const int32_t len[] = {1100, 70}, nn[] = {100, 70};
            test_attention(be, gpre, "prefill", REASON_KV_BF16, 8, 2, 64, 128, 1, 2, len, nn, 2e-2);
            test_attention(be, gpre, "prefill", REASON_KV_F16, 8, 2, 64, 0, 1, 2, len, nn, 5e-3);
        }
        {
            const int32_t len[] = {37}, nn[] = {37};
            test_attention(be, gpre, "prefill", REASON_KV_F32, 4, 2, 96, 0, 0, 1, len, nn, 5e-3);
        }
        {
            const int32_t len[] = {4096}, nn[] = {256}; /* the end of a 4K causal prompt */
            test_attention(be, gpre, "prefill", REASON_KV_F16, 8, 2, 128, 0, 0, 1, len, nn, 5e-3);
        }
        {
            const int32_t len[] = {50, 3, 900}, nn[] = {1, 1, 1}; /* one-row tiles */
            test_attention(be, gpre, "prefill", REASON_KV_F16, 8, 4, 64, 0, 0, 3, len, nn, 5e-3);
        }
        {
            const int32_t len[] = {20, 200},
                          nn[] = {20, 200}; /* automatic choice, hd 80: split-KV */
            test_attention(be, gb, "auto", REASON_KV_F16, 8, 2, 80, 0, 0, 2, len, nn, 5e-3);
            test_attention(be, gb, "auto", REASON_KV_F16, 8, 2, 128, 0, 0, 2, len, nn, 5e-3);
        }
    }
    if (want("sample")) {
        test_log_softmax(3, 151936, 1.0f);
        test_log_softmax(2, 1000, 0.7f);
        test_top_k(3, 151936, 40);
        test_top_k(2, 1000, 1);
        test_top_k(4, 10, 16); /* k > n */
        test_top_p(3, 151936, 0.9f);
        test_top_p(2, 1000, 0.5f);
        test_top_p(1, 7, 1.0f);
    }

    if (want("deltanet")) {
        const int32_t one[] = {1}, three[] = {1, 5, 2}, two[] = {70, 3}, four[] = {2, 1, 3, 1};
        test_deltanet(be, gb, 2, 128, 4, 128, 4, 0, 1, one);     /* a decode step, Qwen3.5 heads */
        test_deltanet(be, gb, 2, 64, 6, 32, 4, 1, 3, three);     /* tiled, d_v < d_k */
        test_deltanet(be, gb, 1, 48, 3, 80, 3, 0, 2, two);       /* odd sizes, CPU chunked form */
        test_deltanet(be, gb, 2, 256, 2, 256, 4, 0, 4, four);    /* the largest heads */
        test_deltanet(be, gb, 3, 16, 3, 16, 1, 0, 2, three + 1); /* no conv window */
    }
    if (want("moe")) {
        test_moe_route(be, gb, 7, 256, 8, 1, 1);
        test_moe_route(be, gb, 5, 32, 4, 1, 0);
        test_moe_route(be, gb, 3, 33, 5, 0, 0);
        test_moe_route(be, gb, 2, 1024, 32, 1, 1);
        test_moe(be, gb, TENSOR_F32, 1, 16, 4, 64, 48, 40, EXPERT_SWIGLU, 1e-5);
        test_moe(be, gb, TENSOR_F16, 3, 8, 2, 96, 64, 0, EXPERT_SWIGLU_CLAMPED, 1e-4);
        test_moe(be, gb, TENSOR_Q8_0, 5, 8, 3, 128, 64, 32, EXPERT_GEGLU, 1e-4);
        test_moe(be, gb, TENSOR_BF16, 40, 4, 2, 256, 96, 64, EXPERT_SWIGLU, 3e-3); /* GEMM */
        test_moe(be, gb, TENSOR_F32, 6, 5, 2, 37, 19, 0, EXPERT_GEGLU, 1e-5);      /* odd */
    }

    if (want("model")) {
        test_model("qwen3-F16", 1e-2);
        test_model("llama-F16", 1e-2);
        test_model("llama3rope-F16", 1e-2); /* rope frequency divisors */
        test_model("qwen2-Q8_0", 1e-2);     /* biases, Q8_0 GEMV and GEMM */
        test_model("llama-Q4_K", 1e-2);
        test_model("qwen3-BF16", 1e-2);
        test_model_hf("qwen35-tiny", 1e-2, 0);
        test_model_hf("qwen35moe-tiny", 1e-2, 0);
        test_model_hf("gptoss-tiny", 1e-2, 0);
        test_model_hf("gemma4-tiny", 1e-2, 0);
        test_model_hf("gemma4moe-tiny", 1e-2, 0);
        test_model_hf("gptoss-mxfp4-tiny", 0, 1); /* MXFP4 experts: no CUDA kernel yet */
    }

    gpre->ops->destroy(gpre);
    gdec->ops->destroy(gdec);
    gb->ops->destroy(gb);
    be->ops->destroy(be);
    printf("%d of %d cases failed\n", n_fail, n_case);
    return n_fail ? 1 : 0;
}

#endif
