/* test_backend_ops.c — every CUDA op × dtype × shape against its CPU twin (DESIGN §1: the CPU
 * backend is the reference). Each case fills random inputs, poisons both outputs with NaN, runs
 * the CPU backend's function pointer and the CUDA launcher on the same data and compares by
 * normalised error ||gpu - cpu||₂ / ||cpu||₂ against a per-op tolerance (NaN anywhere fails).
 *
 * Without a CUDA build or a device it prints "SKIP: no CUDA device" and exits 77 (ctest: skipped).
 * Plain main rather than a Check suite: Check's fork per test would re-initialise the CUDA
 * context in every child. */
#include "backend.h"
#include "tensor_types.h"

#include <stdio.h>

#ifndef REASON_HAVE_CUDA

int main(void) {
    printf("SKIP: no CUDA device (built without REASON_CUDA)\n");
    return 77;
}

#else

#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

enum { EW_ADD, EW_SWIGLU, EW_MUL_SIGMOID };

static void test_elementwise(backend *be, int op, int64_t n) {
    static const char *names[] = {"add", "swiglu", "mul_sigmoid"};
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
                      int style, int with_div, int32_t max_pos, float pos_scale, double tol) {
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
                      .freq_div = with_div ? div : NULL};
    memcpy(ref, x, bytes);
    be->ops->rope(be, ref, n_tok, n_head, pos, &rp);
    float *dx = dev_from(x, bytes), *ddiv = dev_from(div, (size_t)(rot_dim / 2) * sizeof(float));
    int32_t *dpos = dev_from(pos, (size_t)n_tok * sizeof(int32_t));
    int rc = reason_cuda_rope(dx, n_tok, n_head, dpos, head_dim, rot_dim, style == ROPE_NEOX,
                              rp.theta, pos_scale, with_div ? ddiv : NULL, NULL);
    if (finish(rc, got, dx, bytes))
        poison(got, n);
    char what[80];
    snprintf(what, sizeof what, "%dx%dx%d rot%d %s%s pos<%d", n_tok, n_head, head_dim, rot_dim,
             style == ROPE_NEOX ? "neox" : "norm", with_div ? " div" : "", max_pos);
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

static void test_matmul(backend *be, uint32_t type, int64_t cols, int64_t rows, int32_t n_tok,
                        int with_bias) {
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
    int rc = reason_cuda_matmul((int32_t)type, dw, cols, rows, row_bytes, with_bias ? db : NULL, dx,
                                dy, n_tok, NULL);
    if (finish(rc, got, dy, yn * 4))
        poison(got, yn);
    char what[80];
    snprintf(what, sizeof what, "%s %lldx%lld ntok=%d%s", tensor_type_get(type)->name,
             (long long)rows, (long long)cols, n_tok, with_bias ? " bias" : "");
    check("matmul", what, got, ref, yn, 1e-4);
    reason_cuda_free(dy), reason_cuda_free(db), reason_cuda_free(dx), reason_cuda_free(dw);
    free(got), free(ref), free(bias), free(x), free(w);
}

int main(void) {
    if (reason_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    backend *be = NULL;
    if (backend_cpu_create(2, 4096, &be) != REASON_OK) {
        fprintf(stderr, "cpu backend: %s\n", reason_last_error());
        return 1;
    }

    static const int64_t ew_sizes[] = {1, 3, 4, 31, 1000, 4097, 65536 + 5, 1 << 20};
    for (int op = EW_ADD; op <= EW_MUL_SIGMOID; op++)
        for (size_t i = 0; i < sizeof ew_sizes / sizeof *ew_sizes; i++)
            test_elementwise(be, op, ew_sizes[i]);

    test_rmsnorm(be, 1, 4096, 1, 0);
    test_rmsnorm(be, 7, 896, 1, 0);
    test_rmsnorm(be, 3, 5120, 1, 1); /* block-per-row path */
    test_rmsnorm(be, 64, 128, 1, 1); /* per-head: n_tok*n_head rows of head_dim */
    test_rmsnorm(be, 5, 33, 0, 0);   /* odd dim, no weight */
    test_rmsnorm(be, 2, 1025, 1, 0); /* just past the warp-per-row limit */

    for (int style = ROPE_NORMAL; style <= ROPE_NEOX; style++) {
        test_rope(be, 1, 32, 128, 128, style, 0, 4096, 1.0f, 1e-3);
        test_rope(be, 5, 8, 64, 32, style, 0, 4096, 1.0f, 1e-3);   /* partial rotation */
        test_rope(be, 3, 4, 256, 64, style, 1, 4096, 0.25f, 1e-3); /* divisors, scaling */
        test_rope(be, 9, 3, 80, 80, style, 1, 40000, 1.0f, 1e-2);  /* long positions */
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
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            if (shapes[s].cols % tensor_type_get(types[ti])->block_size == 0)
                test_matmul(be, types[ti], shapes[s].cols, shapes[s].rows, shapes[s].n_tok,
                            (int)(s & 1));
        if (types[ti] == TENSOR_F32 || types[ti] == TENSOR_F16 || types[ti] == TENSOR_BF16)
            for (size_t s = 0; s < sizeof odd / sizeof *odd; s++)
                test_matmul(be, types[ti], odd[s].cols, odd[s].rows, odd[s].n_tok, (int)(s & 1));
    }

    be->ops->destroy(be);
    printf("%d of %d cases failed\n", n_fail, n_case);
    return n_fail ? 1 : 0;
}

#endif
