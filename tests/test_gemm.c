/* test_gemm.c — the GEMMs for batches of tokens against float64 references: the integer one
 * (cpu_qgemm.c, fast precision), the bf16 one (cpu_bgemm.c, BF16 weights, fast precision) and
 * the f32 one (cpu_fgemm.c, exact precision), and the few-token products (cpu_rows_tokens.c).
 *
 * Integer GEMM: for random weights of every type it serves and odd shapes (rows not a multiple
 * of the 16-row panel or the 8-row kernel, token counts not a multiple of the 16-token vectors,
 * 1–15 tokens for the narrow kernel, 8 at a time plus a remainder),
 * y = x·wᵀ with 8-bit activations is compared with (a) the exact product of the dequantized
 * weights and the quantized activations (the reference quantizer tensor_quantize_q8, float64
 * sums), within the f32 rounding of the magnitudes summed, and (b) the f32 product, within the
 * activation rounding (|x − x̂| ≤ s/2). It runs the GEMM directly, through the backend's matmul
 * and through a group of products with biases, on 1 and 3 threads. */
#include "backend.h"
#include "backend_cpu.h"
#include "cpu_bgemm.h"
#include "cpu_fgemm.h"
#include "cpu_qgemm.h"
#include "random_weights.h"
#include "tensor_types.h"
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

static const uint32_t types[] = {TENSOR_Q4_0, TENSOR_Q4_1, TENSOR_Q5_0, TENSOR_Q5_1, TENSOR_Q8_0,
                                 TENSOR_Q4_K, TENSOR_Q5_K, TENSOR_Q6_K, TENSOR_MXFP4};
#define N_TYPES ((int)(sizeof types / sizeof types[0]))

static const struct {
    int64_t cols, rows;
    int32_t n_tok;
} shapes[] = {{256, 16, 16}, {512, 37, 17},   {768, 100, 40}, {256, 1, 23},
              {1024, 130, 64}, {288, 9, 8},   {512, 37, 3},   {768, 100, 12},
              {256, 1, 1},   {1024, 130, 15}, {288, 70, 5}};

typedef struct expect {
    double *exact; /* (n_tok, rows) with the quantized activations */
    double *tol;   /* its rounding bound */
    double *f32;   /* (n_tok, rows) with the original activations */
    double *quant; /* the activation-rounding bound on the difference */
} expect;

static expect reference(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t cols,
                        int64_t rows, const float *x, int32_t n_tok) {
    expect e = {calloc((size_t)n_tok * rows, 8), calloc((size_t)n_tok * rows, 8),
                calloc((size_t)n_tok * rows, 8), calloc((size_t)n_tok * rows, 8)};
    float *wf = malloc((size_t)cols * 4), *xd = malloc((size_t)cols / 32 * 4),
          *xs = malloc((size_t)cols / 32 * 4);
    int8_t *xq = malloc((size_t)cols);
    for (int32_t t = 0; t < n_tok; t++) {
        const float *xt = x + (size_t)t * cols;
        tensor_quantize_q8(xt, xq, xd, xs, cols);
        for (int64_t r = 0; r < rows; r++) {
            tensor_dequantize_row(type, w + (size_t)r * row_bytes, wf, cols);
            double exact = 0, mag = 0, f32 = 0, quant = 0, abs_f32 = 0;
            for (int64_t b = 0; b < cols / 32; b++) {
                double wmax = 0, wlo = INFINITY, whi = -INFINITY, xabs = 0;
                for (int64_t j = 32 * b; j < 32 * b + 32; j++) {
                    const double xh = (double)xq[j] * xd[b];
                    exact += wf[j] * xh;
                    mag += fabs(wf[j] * xh);
                    xabs += fabs(xh);
                    wmax = fmax(wmax, fabs(wf[j]));
                    wlo = fmin(wlo, wf[j]);
                    whi = fmax(whi, wf[j]);
                    f32 += (double)wf[j] * xt[j];
                    abs_f32 += fabs((double)wf[j] * xt[j]);
                    quant += fabs(wf[j]) * 0.5 * xd[b];
                }
                mag += (wmax + (whi - wlo)) * xabs; /* the offsets the kernel adds and removes */
            }
            const size_t i = (size_t)t * rows + r;
            e.exact[i] = exact;
            e.tol[i] = (double)cols * FLT_EPSILON * mag;
            e.f32[i] = f32;
            e.quant[i] = quant + e.tol[i] + (double)cols * FLT_EPSILON * abs_f32;
        }
    }
    free(wf), free(xd), free(xs), free(xq);
    return e;
}

static void expect_free(expect *e) { free(e->exact), free(e->tol), free(e->f32), free(e->quant); }

/* Worst |got − exact| / tol so far, for the log. */
static double worst_ratio;

static void check(const char *how, uint32_t type, const expect *e, const float *y,
                  const float *bias, int64_t rows, int32_t n_tok) {
    for (int32_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < rows; r++) {
            const size_t i = (size_t)t * rows + r;
            const double b = bias ? bias[r] : 0.0, got = y[i] - b;
            ck_assert_msg(isfinite(y[i]), "%s %s token %d row %lld: not finite", how,
                          tensor_type_get(type)->name, t, (long long)r);
            ck_assert_msg(fabs(got - e->exact[i]) <= e->tol[i] + 1e-6 * fabs(b),
                          "%s %s token %d row %lld: %.9g, exact with 8-bit x %.9g (tol %.3g)", how,
                          tensor_type_get(type)->name, t, (long long)r, got, e->exact[i],
                          e->tol[i]);
            ck_assert_msg(fabs(got - e->f32[i]) <= e->quant[i] + 1e-6 * fabs(b),
                          "%s %s token %d row %lld: %.9g, f32 product %.9g (bound %.3g)", how,
                          tensor_type_get(type)->name, t, (long long)r, got, e->f32[i],
                          e->quant[i]);
            if (e->tol[i] > 0) worst_ratio = fmax(worst_ratio, fabs(got - e->exact[i]) / e->tol[i]);
        }
}

/* The narrow kernel on a backend that keeps the matrix unpacked (the types qg_kept_format_of
 * accepts): the first products (the matrix twice in one group) fill the kept panels, the next
 * one (other activations) reads them; all against the reference. */
static void check_kept(const rs_tensor *w, int threads, const float *x, int32_t n_tok,
                       const expect *e, float *y) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    backend *kb = NULL;
    ck_assert_int_eq(backend_cpu_create(threads, 4096, &kb), REASON_OK);
    backend_cpu_set_fast_matmul(kb, true);
    backend_cpu_keep_unpacked(kb, true);
    float *y2 = malloc((size_t)n_tok * rows * 4);
    const matmul_item twice[2] = {{w, NULL, y}, {w, NULL, y2}};
    ck_assert(cpu_qgemm_prepare(cpu(kb), x, cols, n_tok));
    ck_assert(cpu_qgemm_run_group(cpu(kb), twice, 2));
    check("keeping", w->type, e, y, NULL, rows, n_tok);
    check("keeping, twice", w->type, e, y2, NULL, rows, n_tok);
    free(y2);
    qg_format f;
    ck_assert_msg((cpu_qgemm_kept_bytes(cpu(kb)) > 0) == qg_kept_format_of(w->type, &f),
                  "%s: %zu bytes kept", tensor_type_get(w->type)->name,
                  cpu_qgemm_kept_bytes(cpu(kb)));
    float *x2 = malloc((size_t)n_tok * cols * 4);
    for (size_t i = 0; i < (size_t)n_tok * cols; i++) x2[i] = rndf();
    expect e2 = reference(w->type, w->data, w->row_bytes, cols, rows, x2, n_tok);
    ck_assert(cpu_qgemm_prepare(cpu(kb), x2, cols, n_tok));
    ck_assert(cpu_qgemm_run(cpu(kb), w, y));
    check("kept", w->type, &e2, y, NULL, rows, n_tok);
    expect_free(&e2);
    free(x2);
    kb->ops->destroy(kb);
}

START_TEST(test_qgemm_types) {
    const uint32_t type = types[_i];
    const char *name = tensor_type_get(type)->name;
    const bool direct = cpu_qgemm_supports(type);
    if (!direct)
        fprintf(stderr, "qgemm %s: no VNNI on this CPU, the backend path only\n", name);
    for (int threads = 1; threads <= 3; threads += 2) {
        backend *be = NULL;
        ck_assert_int_eq(backend_cpu_create(threads, 4096, &be), REASON_OK);
        backend_cpu_set_fast_matmul(be, true);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t cols = shapes[s].cols, rows = shapes[s].rows;
            const int32_t n_tok = shapes[s].n_tok;
            if (cols % tensor_type_get(type)->block_size) continue; /* 288: 32-blocks only */
            const size_t rb = tensor_row_bytes(type, cols);
            uint8_t *w = malloc(rb * (size_t)rows);
            float *x = malloc((size_t)n_tok * cols * 4), *y = malloc((size_t)n_tok * rows * 4),
                  *y2 = malloc((size_t)n_tok * rows * 4), *bias = malloc((size_t)rows * 4);
            for (int64_t r = 0; r < rows; r++) {
                random_row(type, w + (size_t)r * rb, cols);
                bias[r] = rndf();
            }
            for (size_t i = 0; i < (size_t)n_tok * cols; i++)
                x[i] = rndf() * (i % 7 == 0 ? 4.0f : 1.0f); /* some outliers per block */
            const rs_tensor wt = {.name = "w", .type = type, .ne = {cols, rows}, .row_bytes = rb,
                                  .data = w};
            expect e = reference(type, w, rb, cols, rows, x, n_tok);

            if (direct) {
                ck_assert(cpu_qgemm_prepare(cpu(be), x, cols, n_tok));
                ck_assert(cpu_qgemm_run(cpu(be), &wt, y));
                check("direct", type, &e, y, NULL, rows, n_tok);
            }
            if (direct && n_tok < 16) check_kept(&wt, threads, x, n_tok, &e, y);
            be->ops->matmul(be, &wt, bias, x, y, n_tok);
            check("matmul", type, &e, y, bias, rows, n_tok);
            const matmul_item items[2] = {{&wt, bias, y}, {&wt, NULL, y2}};
            be->ops->matmul_group(be, items, 2, x, n_tok);
            check("group+bias", type, &e, y, bias, rows, n_tok);
            check("group", type, &e, y2, NULL, rows, n_tok);

            expect_free(&e);
            free(w), free(x), free(y), free(y2), free(bias);
        }
        be->ops->destroy(be);
    }
    fprintf(stderr, "qgemm %-5s: worst |y - exact(8-bit x)| / tolerance %.3g\n", name,
            worst_ratio);
    worst_ratio = 0;
}
END_TEST

/* The packed panel itself, in both layouts: d·(code − 128) + m reproduces the dequantized row
 * for every type (up to the rounding of that last multiply-add), rows past the end are zero
 * weights. Columns: 17 super-blocks of the K types, 33 blocks of the others (blocks past the
 * last 8; scales gathered in several passes). */
START_TEST(test_qgemm_pack) {
    const uint32_t type = types[_i];
    qg_format f;
    ck_assert(qg_format_of(type, &f));
    const int64_t cols = tensor_type_get(type)->block_size == 256 ? 17 * 256 : 33 * 32;
    const size_t rb = tensor_row_bytes(type, cols);
    uint8_t *w = malloc(rb * QG_ROWS);
    for (int r = 0; r < QG_ROWS; r++) random_row(type, w + (size_t)r * rb, cols);
    void *buf = aligned_alloc(64, qg_panel_bytes(&f, cols));
    float *ref = malloc((size_t)cols * 4);
    for (int i = 0; i < 4; i++) {
        const int layout = i / 2, n_rows = i % 2 ? QG_ROWS - 3 : QG_ROWS;
        const qg_panel p = qg_pack_panel(type, &f, (qg_layout)layout, w, rb, n_rows, cols, buf);
        for (int r = 0; r < QG_ROWS; r++) {
            tensor_dequantize_row(type, w + (size_t)r * rb, ref, cols);
            for (int64_t e = 0; e < cols; e++) {
                const bool by_row = layout == QG_BY_ROW;
                const int c = (int)(e % 32);
                /* nibbles: element c of a block is word c % 16 / 4, byte c % 4, high from 16 on;
                 * q − 8 (Q4_0) or q (Q4_1) as a biased code */
                const int nib = (p.w[256 * (e / 32) + 64 * (c % 16 / 4) + 4 * r + c % 4] >>
                                 (c < 16 ? 0 : 4)) & 15;
                const int code = by_row       ? p.w[r * cols + e]
                                 : f.nibbles ? nib + 128 - (f.has_min ? 0 : 8)
                                              : p.w[512 * (e / 32) + 64 * (c / 4) + 4 * r + c % 4];
                const double d = by_row ? p.d[r * (cols / f.sub) + e / f.sub]
                                        : p.d[(e / f.sub) * QG_ROWS + r];
                const double m = !p.m    ? 0.0
                                 : by_row ? p.m[r * (cols / 32) + e / 32]
                                          : p.m[(e / 32) * QG_ROWS + r];
                const double v = d * (code - 128) + m, want = r < n_rows ? ref[e] : 0.0;
                ck_assert_msg(fabs(v - want) <= 4 * FLT_EPSILON * (fabs(want) + fabs(m)),
                              "%s %s, %d rows: row %d element %lld: packed %.9g, dequantized %.9g",
                              tensor_type_get(type)->name, layout ? "by group" : "by row", n_rows,
                              r, (long long)e, v, want);
            }
        }
    }
    free(ref), free(buf), free(w);
}
END_TEST

typedef struct gemm_shape {
    int64_t cols, rows;
    int32_t n_tok;
} gemm_shape;

/* The f32 GEMM (exact) or the bf16 one (fast, BF16 weights) on random weights of type: against
 * the float64 product of the dequantized weights and the activations as the path rounds them
 * (unchanged, or to bf16 nearest even), within the f32 rounding of the magnitudes summed; the bf16
 * path also within its rounding (|x − bf16(x)| ≤ 2^-9 |x|) of the f32 product. Directly and
 * through the backend's matmul (which must pick the path for these batches when the CPU has it),
 * on 1 and 3 threads. */
static void check_float_gemm(uint32_t type, bool bf16, const gemm_shape *shapes, size_t n_shapes,
                             bool matmul_only) {
    const bool direct = !matmul_only &&
                        (bf16 ? rs_cpu_has_avx512bf16() : tensor_isa_best() >= TENSOR_ISA_AVX512);
    for (int threads = 1; threads <= 3; threads += 2) {
        backend *be = NULL;
        ck_assert_int_eq(backend_cpu_create(threads, 4096, &be), REASON_OK);
        backend_cpu_set_fast_matmul(be, bf16);
        for (size_t s = 0; s < n_shapes; s++) {
            const int64_t cols = shapes[s].cols, rows = shapes[s].rows;
            const int32_t n_tok = shapes[s].n_tok;
            const size_t rb = tensor_row_bytes(type, cols);
            uint8_t *w = malloc(rb * (size_t)rows);
            float *x = malloc((size_t)n_tok * cols * 4), *y = malloc((size_t)n_tok * rows * 4),
                  *wf = malloc((size_t)cols * 4);
            for (int64_t r = 0; r < rows; r++) random_row(type, w + (size_t)r * rb, cols);
            for (size_t i = 0; i < (size_t)n_tok * cols; i++) x[i] = rndf() * 3.0f;
            const rs_tensor wt = {.name = "w", .type = type, .ne = {cols, rows}, .row_bytes = rb,
                                  .data = w};
            for (int via = direct ? 0 : 1; via < 2; via++) {
                if (via == 0)
                    ck_assert(bf16 ? cpu_bgemm(cpu(be), &wt, x, y, n_tok)
                                   : cpu_fgemm(cpu(be), &wt, x, y, n_tok));
                else
                    be->ops->matmul(be, &wt, NULL, x, y, n_tok);
                for (int64_t r = 0; r < rows; r++) {
                    tensor_dequantize_row(type, w + (size_t)r * rb, wf, cols);
                    for (int32_t t = 0; t < n_tok; t++) {
                        const float *xt = x + (size_t)t * cols;
                        double exact = 0, mag = 0, f32 = 0;
                        for (int64_t k = 0; k < cols; k++) {
                            const double xr = bf16 ? rs_bf16_to_f32(rs_f32_to_bf16(xt[k])) : xt[k];
                            exact += wf[k] * xr;
                            mag += fabs(wf[k] * xr);
                            f32 += (double)wf[k] * xt[k];
                        }
                        const double got = y[(size_t)t * rows + r];
                        const double tol = (double)cols * FLT_EPSILON * mag;
                        if (direct) /* (without the path, the matmul takes another one) */
                            ck_assert_msg(fabs(got - exact) <= tol,
                                          "%s %s %s token %d row %lld: %.9g, exact %.9g",
                                          tensor_type_get(type)->name, bf16 ? "bgemm" : "fgemm",
                                          via ? "matmul" : "direct", t, (long long)r, got, exact);
                        ck_assert_msg(fabs(got - f32) <= tol + (bf16 ? mag * 0x1p-9 : 0.0),
                                      "%s token %d row %lld: %.9g, f32 product %.9g",
                                      tensor_type_get(type)->name, t, (long long)r, got, f32);
                    }
                }
            }
            free(w), free(x), free(y), free(wf);
        }
        be->ops->destroy(be);
    }
}

/* The f32 GEMM for every weight type; token counts around the 16-token vectors and 64-token
 * tiles, rows around the 6-row kernel and 12-row panels. */
static const uint32_t f32_types[] = {TENSOR_F32,  TENSOR_F16,  TENSOR_BF16, TENSOR_Q8_0,
                                     TENSOR_Q4_K, TENSOR_Q6_K, TENSOR_MXFP4};

START_TEST(test_fgemm_types) {
    static const gemm_shape shapes_f[] = {
        {256, 12, 16}, {512, 37, 17}, {768, 100, 70}, {256, 5, 130}, {1024, 13, 64}};
    check_float_gemm(f32_types[_i], false, shapes_f, sizeof shapes_f / sizeof shapes_f[0], false);
}
END_TEST

/* Fewer tokens than the GEMMs take (parallel traces): the backend's matmul reads each weight
 * row once for all tokens (cpu_rows_tokens.c: 4 rows × 6, 4 or 2 tokens per pass, F16/BF16
 * converted on the fly, other types dequantized first); token counts around those passes, rows
 * around 4, columns that are not a multiple of 16 for the types that allow them. */
START_TEST(test_few_tokens) {
    static const gemm_shape shapes_few[] = {{256, 37, 2}, {512, 5, 3},  {768, 100, 8},
                                            {256, 9, 13}, {512, 3, 6}, {256, 64, 15}};
    static const gemm_shape shapes_odd[] = {{200, 37, 8}, {40, 5, 5}, {136, 11, 12}};
    const uint32_t type = f32_types[_i];
    check_float_gemm(type, false, shapes_few, sizeof shapes_few / sizeof shapes_few[0], true);
    if (type == TENSOR_F32 || type == TENSOR_F16 || type == TENSOR_BF16)
        check_float_gemm(type, false, shapes_odd, sizeof shapes_odd / sizeof shapes_odd[0], true);
}
END_TEST

/* The bf16 GEMM (BF16 weights, fast precision); an odd number of column pairs too. */
START_TEST(test_bgemm) {
    static const gemm_shape shapes_b[] = {
        {256, 12, 16}, {514, 37, 17}, {768, 100, 70}, {64, 5, 130}};
    check_float_gemm(TENSOR_BF16, true, shapes_b, sizeof shapes_b / sizeof shapes_b[0], false);
}
END_TEST

static Suite *gemm_suite(void) {
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_qgemm_pack, 0, N_TYPES);
    tcase_add_loop_test(tc, test_qgemm_types, 0, N_TYPES);
    tcase_add_test(tc, test_bgemm);
    tcase_add_loop_test(tc, test_fgemm_types, 0,
                        (int)(sizeof f32_types / sizeof f32_types[0]));
    tcase_add_loop_test(tc, test_few_tokens, 0, (int)(sizeof f32_types / sizeof f32_types[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(gemm_suite()); }
