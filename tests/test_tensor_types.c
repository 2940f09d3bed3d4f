/* test_tensor_types.c — the weight types against fixtures from the gguf Python package
 * (tools/gen_quant_fixtures.py), SIMD kernels against the scalar reference, and the f16/bf16
 * conversions against independent computations. */
#include "gguf.h"
#include "model_fixture.h"
#include "random_weights.h"
#include "reason.h"
#include "tensor_types.h"
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static uint8_t *slurp(const char *name, size_t *size) {
    char path[1024];
    test_data_path(name, path, sizeof path);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open fixture %s (run tools/gen_quant_fixtures.py)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- table ------------------------------------------------------------------------------------
 */

START_TEST(test_table) {
    static const struct {
        uint32_t type;
        const char *name;
        int bs, bb;
        bool supported;
    } want[] = {
        {TENSOR_F32, "F32", 1, 4, true},       {TENSOR_F16, "F16", 1, 2, true},
        {TENSOR_Q4_0, "Q4_0", 32, 18, true},   {TENSOR_Q4_1, "Q4_1", 32, 20, true},
        {TENSOR_Q5_0, "Q5_0", 32, 22, true},   {TENSOR_Q5_1, "Q5_1", 32, 24, true},
        {TENSOR_Q8_0, "Q8_0", 32, 34, true},   {TENSOR_Q8_1, "Q8_1", 32, 36, false},
        {TENSOR_Q2_K, "Q2_K", 256, 84, false}, {TENSOR_Q3_K, "Q3_K", 256, 110, false},
        {TENSOR_Q4_K, "Q4_K", 256, 144, true}, {TENSOR_Q5_K, "Q5_K", 256, 176, true},
        {TENSOR_Q6_K, "Q6_K", 256, 210, true}, {TENSOR_Q8_K, "Q8_K", 256, 292, false},
        {TENSOR_BF16, "BF16", 1, 2, true},     {TENSOR_MXFP4, "MXFP4", 32, 17, true},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const tensor_type_info *t = tensor_type_get(want[i].type);
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(t->name, want[i].name);
        ck_assert_int_eq(t->block_size, want[i].bs);
        ck_assert_int_eq(t->block_bytes, want[i].bb);
        ck_assert_int_eq(t->supported, want[i].supported);
        ck_assert_int_eq(tensor_dot_kernel(want[i].type) != NULL, want[i].supported);
        ck_assert_int_eq(tensor_dot_kernel_isa(want[i].type, TENSOR_ISA_SCALAR) != NULL,
                         want[i].supported);
    }
    ck_assert_ptr_null(tensor_type_get(4)); /* removed Q4_2 */
    ck_assert_ptr_null(tensor_type_get(TENSOR_TYPE_COUNT));
    ck_assert_ptr_null(tensor_type_get(UINT32_MAX));
    ck_assert_uint_eq(tensor_row_bytes(TENSOR_Q4_K, 4096), 16 * 144);
    ck_assert_uint_eq(tensor_row_bytes(TENSOR_Q4_K, 100), 0);
    ck_assert_uint_eq(tensor_row_bytes(TENSOR_F16, 3), 6);
    ck_assert_uint_eq(tensor_row_bytes(99, 32), 0);
    ck_assert_uint_eq(tensor_row_bytes(TENSOR_Q8_0, -32), 0);

    /* Unsupported types give NaN, never plausible numbers. */
    uint8_t block[292] = {0};
    float x[256] = {0}, y[256];
    ck_assert(isnan(tensor_dot_row(TENSOR_Q8_K, block, x, 256)));
    tensor_dequantize_row(TENSOR_Q2_K, block, y, 256);
    ck_assert(isnan(y[0]) && isnan(y[255]));
    ck_assert(isnan(tensor_dot_row(99, block, x, 32)));
}
END_TEST

/* ---- half precision ---------------------------------------------------------------------------
 */

/* The value of an f16 computed from its definition, independently of the bit tricks. */
static float f16_by_definition(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, -24);
    else
        v = ldexp(1024 + m, e - 25);
    return (float)(sign ? -v : v);
}

START_TEST(test_f16_exhaustive) {
    for (uint32_t h = 0; h < 65536; h++) {
        float got = rs_f16_to_f32((uint16_t)h), want = f16_by_definition((uint16_t)h);
        if (isnan(want)) {
            ck_assert_msg(isnan(got), "f16 %04x must be NaN", h);
            ck_assert_int_eq(signbit(got) != 0, (h >> 15) != 0);
            ck_assert_msg(isnan(rs_f16_to_f32(rs_f32_to_f16(got))), "NaN %04x round trip", h);
            continue;
        }
        ck_assert_msg(f2u(got) == f2u(want), "f16 %04x: got %a want %a", h, got, want);
        ck_assert_msg(rs_f32_to_f16(got) == h, "round trip of %04x gave %04x", h,
                      rs_f32_to_f16(got));
    }
    /* Every midpoint between consecutive finite f16 of one sign ties to the even neighbour, and
     * one f32 ulp off the midpoint goes to the nearer one. The last pair (65504, 65536 = inf)
     * follows the same rule: the midpoint 65520 ties to the even neighbour, infinity. */
    for (uint32_t h = 0; h < 0x7bff + 1; h++) {
        double a = f16_by_definition((uint16_t)h);
        double b = h == 0x7bff ? 65536.0 : f16_by_definition((uint16_t)(h + 1));
        float mid = (float)((a + b) / 2); /* exact: 12 significant bits */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        ck_assert_msg(rs_f32_to_f16(mid) == even, "tie %a between %04x and %04x gave %04x", mid, h,
                      h + 1, rs_f32_to_f16(mid));
        ck_assert_uint_eq(rs_f32_to_f16(-mid), even | 0x8000);
        ck_assert_uint_eq(rs_f32_to_f16(nextafterf(mid, 0.0f)), h);
        ck_assert_uint_eq(rs_f32_to_f16(nextafterf(mid, INFINITY)), h + 1);
    }
    ck_assert_uint_eq(rs_f32_to_f16(INFINITY), 0x7c00);
    ck_assert_uint_eq(rs_f32_to_f16(-INFINITY), 0xfc00);
    ck_assert_uint_eq(rs_f32_to_f16(FLT_MAX), 0x7c00);
    ck_assert_uint_eq(rs_f32_to_f16(FLT_TRUE_MIN), 0x0000);
    ck_assert_uint_eq(rs_f32_to_f16(-FLT_TRUE_MIN), 0x8000);
    ck_assert(isnan(rs_f16_to_f32(rs_f32_to_f16(NAN))));
}
END_TEST

START_TEST(test_bf16_basic) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rs_bf16_to_f32((uint16_t)h);
        ck_assert_uint_eq(f2u(f), h << 16);
        if (!isnan(f))
            ck_assert_uint_eq(rs_f32_to_bf16(f), h);
        else
            ck_assert(isnan(rs_bf16_to_f32(rs_f32_to_bf16(f))));
    }
    ck_assert_uint_eq(rs_f32_to_bf16(u2f(0x3f808000u)), 0x3f80); /* tie -> even */
    ck_assert_uint_eq(rs_f32_to_bf16(u2f(0x3f818000u)), 0x3f82); /* tie -> even (up) */
    ck_assert_uint_eq(rs_f32_to_bf16(u2f(0x3f808001u)), 0x3f81);
    ck_assert_uint_eq(rs_f32_to_bf16(FLT_MAX), 0x7f80);                 /* rounds to infinity */
    ck_assert(isnan(rs_bf16_to_f32(rs_f32_to_bf16(u2f(0x7f800001u))))); /* sNaN stays NaN */
}
END_TEST

/* f16 bits from numpy's astype(float16), bf16 bits from a nearest-neighbour search in Python. */
START_TEST(test_halfconv_fixture) {
    size_t size;
    uint8_t *buf = slurp("quant/halfconv.bin", &size);
    ck_assert(size >= 12 && memcmp(buf, "RSHC", 4) == 0 && rd32(buf + 4) == 1);
    uint32_t count = rd32(buf + 8);
    ck_assert_uint_eq(size, 12 + (size_t)count * 8);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *p = buf + 12 + (size_t)i * 8;
        float f = u2f(rd32(p));
        uint16_t want_h = (uint16_t)(p[4] | p[5] << 8), want_b = (uint16_t)(p[6] | p[7] << 8);
        uint16_t h = rs_f32_to_f16(f), b = rs_f32_to_bf16(f);
        if (isnan(f)) {
            ck_assert(isnan(rs_f16_to_f32(h)) && isnan(rs_bf16_to_f32(b)));
            continue;
        }
        ck_assert_msg(h == want_h, "f32 %08x (%a) -> f16 %04x, numpy %04x", rd32(p), f, h, want_h);
        ck_assert_msg(b == want_b, "f32 %08x (%a) -> bf16 %04x, want %04x", rd32(p), f, b, want_b);
    }
    free(buf);
}
END_TEST

/* ---- quantized fixtures -----------------------------------------------------------------------
 */

static const char *const fixture_types[] = {"F32",  "F16",  "BF16", "Q4_0", "Q4_1", "Q5_0",
                                            "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "MXFP4"};
#define N_FIXTURES (int)(sizeof fixture_types / sizeof fixture_types[0])

/* Error bound of an f32 dot of n terms against the exact (float64) sum: recursive or blocked
 * summation in f32 is within gamma_n * sum|w_i x_i| (Higham, Accuracy and Stability, 3.1), with
 * gamma_n = n u / (1 - n u) <= 1.01 n u for u = 2^-24; the products themselves add one u. Using
 * n * FLT_EPSILON = 2 n u leaves room for the kernels that apply block scales after summing (one
 * more rounding per block, each bounded by u times the same sum). The observed errors are far
 * smaller (about sqrt(n) u); the bound is what the contract promises. */
static double dot_tolerance(int64_t n, double abs_sum) { return (double)n * FLT_EPSILON * abs_sum; }

START_TEST(test_quant_fixture) {
    const char *name = fixture_types[_i];
    char file[64];
    snprintf(file, sizeof file, "quant/%s.bin", name);
    size_t size;
    uint8_t *buf = slurp(file, &size);
    ck_assert(size >= 24 && memcmp(buf, "RSQF", 4) == 0 && rd32(buf + 4) == 1);
    uint32_t type = rd32(buf + 8), rows = rd32(buf + 12), n = rd32(buf + 16), rb = rd32(buf + 20);
    const tensor_type_info *info = tensor_type_get(type);
    ck_assert_ptr_nonnull(info);
    ck_assert_str_eq(info->name, name);
    ck_assert_uint_eq(tensor_row_bytes(type, n), rb);
    size_t per_row = rb + (size_t)n * 8 + 16;
    ck_assert_uint_eq(size, 24 + rows * per_row);
    float *y = malloc(n * sizeof *y), *x = malloc(n * sizeof *x), *want = malloc(n * sizeof *want);
    /* Copy the row to an odd address too: kernels must not assume alignment. */
    uint8_t *odd = malloc(rb + 1);
    for (uint32_t r = 0; r < rows; r++) {
        const uint8_t *p = buf + 24 + r * per_row;
        memcpy(want, p + rb, n * 4);
        memcpy(x, p + rb + n * 4, n * 4);
        double dot, abs_dot;
        memcpy(&dot, p + rb + n * 8, 8);
        memcpy(&abs_dot, p + rb + n * 8 + 8, 8);
        memcpy(odd + 1, p, rb);

        /* Dequantization is bit-exact: both sides round the same f32 expression (scale products
         * first, then one multiply and one add) — see tensor_types.c. */
        tensor_dequantize_row(type, odd + 1, y, n);
        for (uint32_t i = 0; i < n; i++)
            ck_assert_msg(f2u(y[i]) == f2u(want[i]), "%s row %u element %u: %a, gguf says %a", name,
                          r, i, y[i], want[i]);

        double tol = dot_tolerance(n, abs_dot);
        float ref = 0;
        for (int isa = TENSOR_ISA_SCALAR; isa <= TENSOR_ISA_AVX512; isa++) {
            tensor_dot_fn fn = tensor_dot_kernel_isa(type, isa);
            if (!fn) continue;
            float got = fn(odd + 1, x, n);
            if (isa == TENSOR_ISA_SCALAR) ref = got;
            ck_assert_msg(fabs((double)got - dot) <= tol,
                          "%s %s row %u: dot %.9g, exact %.9g, error %.3g > %.3g", name,
                          tensor_isa_name(isa), r, got, dot, fabs(got - dot), tol);
            ck_assert_msg(fabs((double)got - ref) <= 2 * tol, "%s %s vs scalar: %.9g vs %.9g", name,
                          tensor_isa_name(isa), got, ref);
        }
        float best = tensor_dot_row(type, p, x, n);
        ck_assert(fabs((double)best - dot) <= tol);
    }
    free(odd);
    free(want);
    free(x);
    free(y);
    free(buf);
}
END_TEST

/* ---- SIMD vs scalar on random data
 * --------------------------------------------------------------- */

START_TEST(test_simd_vs_scalar) {
    static const uint32_t all[] = {TENSOR_F32,  TENSOR_F16,  TENSOR_BF16, TENSOR_Q4_0,
                                   TENSOR_Q4_1, TENSOR_Q5_0, TENSOR_Q5_1, TENSOR_Q8_0,
                                   TENSOR_Q4_K, TENSOR_Q5_K, TENSOR_Q6_K, TENSOR_MXFP4};
    const int64_t max_n = 4096;
    uint8_t *row = malloc(tensor_row_bytes(TENSOR_F32, max_n) + 1);
    float *xbuf = malloc((max_n + 1) * sizeof(float)), *w = malloc(max_n * sizeof(float));
    int compared = 0;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        uint32_t type = all[k];
        int bs = tensor_type_get(type)->block_size;
        /* Lengths around the unroll widths (tails of 1..31 for the unblocked types), odd row
         * and x addresses. */
        for (int64_t n = bs; n <= max_n;
             n += (bs == 1 ? (n < 80 ? 1 : 997) : (n < 8 * bs ? bs : 7 * bs))) {
            random_row(type, row + 1, n);
            float *x = xbuf + 1;
            for (int64_t i = 0; i < n; i++) x[i] = rndf();
            tensor_dequantize_row(type, row + 1, w, n);
            double exact = 0, abs_sum = 0;
            for (int64_t i = 0; i < n; i++) {
                exact += (double)w[i] * x[i];
                abs_sum += fabs((double)w[i] * x[i]);
            }
            double tol = dot_tolerance(n, abs_sum);
            float ref = tensor_dot_kernel_isa(type, TENSOR_ISA_SCALAR)(row + 1, x, n);
            ck_assert_msg(fabs(ref - exact) <= tol, "%s scalar n=%lld", tensor_type_get(type)->name,
                          (long long)n);
            for (int isa = TENSOR_ISA_AVX2; isa <= TENSOR_ISA_AVX512; isa++) {
                tensor_dot_fn fn = tensor_dot_kernel_isa(type, isa);
                /* every listed type has a kernel in every tier the CPU runs (Q5_0, Q5_1 and
                 * Q5_K were scalar only once: 20x slower decode, silently) */
                if (isa <= tensor_isa_best())
                    ck_assert_msg(fn != NULL, "%s has no %s kernel", tensor_type_get(type)->name,
                                  tensor_isa_name(isa));
                if (!fn) continue;
                ck_assert(tensor_dot_kernel(type) ==
                          tensor_dot_kernel_isa(type, tensor_isa_best()));
                float got = fn(row + 1, x, n);
                ck_assert_msg(fabs(got - exact) <= tol && fabs(got - ref) <= 2 * tol,
                              "%s %s n=%lld: %.9g, scalar %.9g, exact %.9g",
                              tensor_type_get(type)->name, tensor_isa_name(isa), (long long)n, got,
                              ref, exact);
                compared++;
            }
        }
    }
    if (tensor_isa_best() >= TENSOR_ISA_AVX2) ck_assert_int_gt(compared, 0);
    fprintf(stderr, "tensor_types: best ISA %s, %d SIMD comparisons\n",
            tensor_isa_name(tensor_isa_best()), compared);
    free(w);
    free(xbuf);
    free(row);
}
END_TEST

/* ---- 8-bit activations (REASON_CPU_MATMUL=q8) ---------------------------------------------------
 * Every integer kernel against (a) the exact dot of the dequantized row with the quantized
 * activations xq * xd, within the f32 rounding bound of dot_tolerance taken over the magnitudes
 * the kernel really sums (the weights and, for the offset types, the block offsets times the
 * activation sums: bounded by each block's max |w| plus its range), and (b) the f32 dot with the
 * original activations, within the activation rounding |x - xq * xd| <= xd / 2 per element. */

START_TEST(test_qdot_vs_f32) {
    const int64_t max_n = 4096 + 256;
    uint8_t *row = malloc(tensor_row_bytes(TENSOR_F32, max_n) + 1);
    float *xbuf = malloc((max_n + 1) * sizeof(float)), *w = malloc(max_n * sizeof(float));
    int8_t *xqbuf = malloc(max_n + 1);
    float *xd = malloc(max_n / 32 * sizeof(float)), *xs = malloc(max_n / 32 * sizeof(float));
    int compared = 0;
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
        if (!tensor_qdot_kernel_isa(type, TENSOR_ISA_AVX2) &&
            !tensor_qdot_kernel_isa(type, TENSOR_ISA_AVX512))
            continue;
        const char *name = tensor_type_get(type)->name;
        const int bs = tensor_type_get(type)->block_size;
        double worst_exact = 0, worst_f32 = 0;
        /* 1 to 17 blocks in odd steps (tails of the 2- and 4-block unrolls), then long rows */
        for (int64_t nb = 1; nb * bs <= max_n; nb += nb < 17 ? 2 : 7 * (4096 / bs / 16) + 1) {
            const int64_t n = nb * bs;
            random_row(type, row + 1, n);
            float *x = xbuf + 1;
            int8_t *xq = xqbuf + 1;
            for (int64_t i = 0; i < n; i++) x[i] = rndf() * (i % 7 == 0 ? 4.0f : 1.0f);
            tensor_quantize_q8(x, xq, xd, xs, n);
            tensor_dequantize_row(type, row + 1, w, n);
            double exact = 0, mag = 0, quant = 0, abs_f32 = 0, abs_q = 0;
            for (int64_t b = 0; b < n / 32; b++) {
                double wmax = 0, wlo = INFINITY, whi = -INFINITY, xabs = 0, sx = 0;
                for (int64_t j = 32 * b; j < 32 * b + 32; j++) {
                    const double xh = (double)xq[j] * xd[b];
                    exact += (double)w[j] * xh;
                    abs_q += fabs((double)w[j] * xh);
                    xabs += fabs(xh);
                    wmax = fmax(wmax, fabs(w[j]));
                    wlo = fmin(wlo, w[j]);
                    whi = fmax(whi, w[j]);
                    quant += fabs(w[j]) * 0.5 * xd[b];
                    abs_f32 += fabs((double)w[j] * x[j]);
                    sx += xq[j];
                }
                ck_assert_float_eq(xs[b], (float)(xd[b] * sx)); /* the contract of xs */
                mag += (wmax + (whi - wlo)) * xabs;
            }
            mag += abs_q;
            const double tol = dot_tolerance(n, mag);
            const float f32 = tensor_dot_kernel(type)(row + 1, x, n);
            for (int isa = TENSOR_ISA_AVX2; isa <= TENSOR_ISA_AVX512; isa++) {
                tensor_qdot_fn fn = tensor_qdot_kernel_isa(type, isa);
                if (!fn) continue;
                const float got = fn(row + 1, xq, xd, xs, n);
                ck_assert_msg(fabs(got - exact) <= tol,
                              "%s q8 %s n=%lld: %.9g, exact with 8-bit x %.9g, error %.3g > %.3g",
                              name, tensor_isa_name(isa), (long long)n, got, exact,
                              fabs(got - exact), tol);
                ck_assert_msg(fabs((double)got - f32) <= quant + tol + dot_tolerance(n, abs_f32),
                              "%s q8 %s n=%lld: %.9g, f32 path %.9g, bound %.3g", name,
                              tensor_isa_name(isa), (long long)n, got, f32, quant + tol);
                worst_exact = fmax(worst_exact, fabs(got - exact) / abs_q);
                worst_f32 = fmax(worst_f32, fabs((double)got - f32) / abs_f32);
                compared++;
            }
        }
        fprintf(stderr,
                "q8 %-5s: max |q8 - exact(8-bit x)| / sum|w xq xd| %.2g, max |q8 - f32| / "
                "sum|w x| %.2g\n",
                name, worst_exact, worst_f32);
    }
    if (tensor_isa_best() >= TENSOR_ISA_AVX2) ck_assert_int_gt(compared, 0);
    free(xs);
    free(xd);
    free(xqbuf);
    free(w);
    free(xbuf);
    free(row);
}
END_TEST

/* ---- MXFP4 --------------------------------------------------------------------------------------
 */

/* Every exponent byte and code against the definition (OCP MX: E2M1 magnitudes 0, 0.5, 1, 1.5, 2,
 * 3, 4, 6; scale 2^(e - 127)) evaluated in double: the dequantization, and the scalar and SIMD
 * dots against one-hot activations (e <= 252: larger scales overflow f32 for the big codes). */
START_TEST(test_mxfp4_exponents) {
    static const double mag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    uint8_t block[1 + 17];
    float y[32], x[32];
    for (int e = 0; e < 256; e++) {
        block[1] = (uint8_t)e;
        for (int j = 0; j < 16; j++) block[2 + j] = (uint8_t)(j | (15 - j) << 4);
        tensor_dequantize_row(TENSOR_MXFP4, block + 1, y, 32);
        for (int j = 0; j < 32; j++) {
            const int code = j < 16 ? j : 15 - (j - 16);
            double v = ldexp(mag[code & 7], e - 127);
            float want = v > FLT_MAX ? INFINITY : (float)v;
            if (code & 8) want = -want;
            if (code == 8) want = 0.0f; /* negative zero decodes as +0 (the gguf package) */
            ck_assert_msg(f2u(y[j]) == f2u(want), "e %d code %d: %a, want %a", e, code, y[j],
                          want);
            if (e > 252) continue;
            memset(x, 0, sizeof x);
            x[j] = 1.0f;
            for (int isa = TENSOR_ISA_SCALAR; isa <= TENSOR_ISA_AVX512; isa++) {
                tensor_dot_fn fn = tensor_dot_kernel_isa(TENSOR_MXFP4, isa);
                if (!fn) continue;
                const float got = fn(block + 1, x, 32);
                ck_assert_msg(got == want, "%s e %d code %d: %a, want %a", tensor_isa_name(isa), e,
                              code, got, want);
            }
        }
    }
}
END_TEST

static void put_u32(uint8_t **p, uint32_t v) {
    memcpy(*p, &v, 4);
    *p += 4;
}
static void put_u64(uint8_t **p, uint64_t v) {
    memcpy(*p, &v, 8);
    *p += 8;
}

/* A GGUF v3 file with one MXFP4 tensor of shape (rows, cols): the reader takes the type's block
 * size and bytes from tensor_types and checks the row length against them. */
static size_t mxfp4_gguf(uint8_t *buf, int64_t cols, int64_t rows, const uint8_t *data,
                         size_t nbytes) {
    uint8_t *p = buf;
    memcpy(p, "GGUF", 4);
    p += 4;
    put_u32(&p, 3);
    put_u64(&p, 1); /* tensors */
    put_u64(&p, 0); /* key/values */
    put_u64(&p, 1);
    *p++ = 'w';
    put_u32(&p, 2);
    put_u64(&p, (uint64_t)cols);
    put_u64(&p, (uint64_t)rows);
    put_u32(&p, TENSOR_MXFP4);
    put_u64(&p, 0);
    while ((p - buf) % 32) *p++ = 0; /* default alignment */
    memcpy(p, data, nbytes);
    return (size_t)(p - buf) + nbytes;
}

START_TEST(test_mxfp4_gguf) {
    enum { COLS = 96, ROWS = 3 };
    const size_t rb = tensor_row_bytes(TENSOR_MXFP4, COLS);
    ck_assert_uint_eq(rb, 3 * 17);
    uint8_t data[ROWS * 3 * 17], file[512];
    random_row(TENSOR_MXFP4, data, (int64_t)ROWS * COLS);
    const size_t size = mxfp4_gguf(file, COLS, ROWS, data, sizeof data);
    gguf_file *g = NULL;
    ck_assert_msg(gguf_open_memory(file, size, "mxfp4", &g) == REASON_OK, "%s",
                  reason_last_error());
    const gguf_tensor *t = gguf_find_tensor(g, "w");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->type, TENSOR_MXFP4);
    ck_assert_uint_eq(t->nbytes, sizeof data);
    ck_assert(memcmp(t->data, data, sizeof data) == 0);
    float y[COLS], want[COLS];
    for (int r = 0; r < ROWS; r++) {
        tensor_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, y, COLS);
        tensor_dequantize_row(TENSOR_MXFP4, data + r * rb, want, COLS);
        ck_assert(memcmp(y, want, sizeof y) == 0 && !isnan(y[0]));
    }
    gguf_close(g);
    /* a row of 48 is not a whole number of blocks */
    const size_t bad = mxfp4_gguf(file, 48, 1, data, 34);
    ck_assert_int_eq(gguf_open_memory(file, bad, "mxfp4", &g), REASON_ERR_FORMAT);
    ck_assert_msg(strstr(reason_last_error(), "MXFP4 block size 32") != NULL, "%s",
                  reason_last_error());
}
END_TEST

/* The qwen3 fixture with its Q8_0 matrices retyped (the GGUF data region of a Q8_0 tensor is
 * larger than any of these types needs; K types only where the row is a multiple of 256) and
 * filled with random blocks of moderate scale: the model loads, and decodes to finite logits with
 * f32 and with 8-bit activations, the two within the q8 path's usual distance (docs/performance.md:
 * 2-4e-2 against the reference on the Q8_0 and Q4_K fixtures). This runs the integer kernels
 * through the real products (grouped q/k/v and gate/up, the output matrix) and the f32 path
 * through dequantization (a 40-token batch) and dot products (single tokens). */
static const uint32_t model_types[] = {TENSOR_MXFP4, TENSOR_Q5_0, TENSOR_Q5_1, TENSOR_Q5_K,
                                       TENSOR_Q6_K};

/* Random blocks whose weights have a standard deviation of roughly 0.03 (see
 * tools/gen_quant_fixtures.py, random_blocks, for the factors). */
static void model_row(uint32_t type, uint8_t *row, int64_t n) {
    random_row(type, row, n);
    const tensor_type_info *t = tensor_type_get(type);
    for (int64_t b = 0; b < n / t->block_size; b++) {
        uint8_t *p = row + (size_t)b * (size_t)t->block_bytes;
        const float v = 0.5f + 0.5f * fabsf(rndf()); /* 0.5 .. 1 times the scale */
        switch (type) {
        case TENSOR_MXFP4: p[0] = (uint8_t)(121 + rnd() % 3); break;
        case TENSOR_Q5_0: put_f16(p, 3e-3f * v); break;
        case TENSOR_Q5_1:
            put_f16(p, 3e-3f * v);
            put_f16(p + 2, -15.5f * 3e-3f * v);
            break;
        case TENSOR_Q5_K:
            put_f16(p, 6e-5f * v);
            put_f16(p + 2, 15.5f * 6e-5f * v);
            break;
        case TENSOR_Q6_K: put_f16(p + 208, 2e-5f * v); break;
        default: break;
        }
    }
}

static void decode_logits(const char *path, const model_fixture *f, bool q8, float *out) {
    if (q8)
        setenv("REASON_CPU_MATMUL", "q8", 1);
    else
        unsetenv("REASON_CPU_MATMUL");
    reason_model *m;
    ck_assert_msg(reason_model_load(path, NULL, &m) == REASON_OK, "%s", reason_last_error());
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = 128;
    p.n_batch = 64;
    p.n_outputs_max = 64;
    p.n_seq_max = 1;
    p.n_threads = 2;
    reason_context *ctx;
    ck_assert_msg(reason_context_create(m, &p, &ctx) == REASON_OK, "%s", reason_last_error());
    unsetenv("REASON_CPU_MATMUL");
    /* a 40-token batch (dequantize + sgemm) then 3 single tokens (dot products) */
    int32_t toks[64], pos[64], seqs[64];
    int8_t want[64];
    for (int32_t i = 0; i < 43; i++) {
        toks[i] = f->tokens[i % f->n_tokens];
        pos[i] = i;
        seqs[i] = 0;
        want[i] = 1;
    }
    const reason_batch first = {40, toks, pos, seqs, want};
    ck_assert_msg(reason_decode(ctx, &first) == REASON_OK, "%s", reason_last_error());
    const float *logits;
    for (int32_t i = 40; i < 43; i++) {
        const reason_batch one = {1, toks + i, pos + i, seqs + i, want + i};
        ck_assert_msg(reason_decode(ctx, &one) == REASON_OK, "%s", reason_last_error());
    }
    ck_assert_int_eq(reason_get_logits(ctx, 0, &logits), REASON_OK);
    memcpy(out, logits, (size_t)f->n_vocab * sizeof *out);
    for (int32_t v = 0; v < f->n_vocab; v++) ck_assert(isfinite(out[v]));
    reason_context_free(ctx);
    reason_model_free(m);
}

START_TEST(test_retyped_model) {
    const uint32_t type = model_types[_i];
    const tensor_type_info *ti = tensor_type_get(type);
    model_fixture f;
    ck_assert_int_eq(model_fixture_load("qwen3-Q8_0", &f), 0);
    size_t size;
    uint8_t *buf = slurp("models/qwen3-Q8_0.gguf", &size);
    gguf_file *g;
    ck_assert_int_eq(gguf_open_memory(buf, size, "qwen3", &g), REASON_OK);
    int retyped = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (t->type != TENSOR_Q8_0 || t->ne[0] % ti->block_size) continue;
        /* the tensor's info record: u64 name length, name, u32 n_dims, u64 ne[n_dims], u32 type */
        const uint64_t len = strlen(t->name);
        uint8_t key[8 + 256];
        memcpy(key, &len, 8);
        memcpy(key + 8, t->name, len);
        uint8_t *info = memmem(buf, size, key, 8 + len);
        ck_assert_ptr_nonnull(info);
        uint8_t *type_at = info + 8 + len + 4 + 8 * (size_t)t->n_dims;
        ck_assert_uint_eq(rd32(type_at), TENSOR_Q8_0);
        memcpy(type_at, &type, 4);
        /* t->data points into buf: the new blocks go there, row after row */
        uint8_t *d = buf + ((const uint8_t *)t->data - buf);
        const size_t rb = tensor_row_bytes(type, t->ne[0]);
        ck_assert(rb * (size_t)(t->nbytes / tensor_row_bytes(TENSOR_Q8_0, t->ne[0])) <= t->nbytes);
        for (int64_t r = 0; r < t->ne[1]; r++) model_row(type, d + (size_t)r * rb, t->ne[0]);
        retyped++;
    }
    gguf_close(g);
    ck_assert_int_ge(retyped, 8);
    char path[] = "/tmp/reason-retyped-XXXXXX";
    const int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, size), (ssize_t)size);
    close(fd);
    free(buf);
    float *a = malloc((size_t)f.n_vocab * sizeof *a), *b = malloc((size_t)f.n_vocab * sizeof *b);
    decode_logits(path, &f, false, a);
    decode_logits(path, &f, true, b);
    const double err = rel_max_err(b, a, f.n_vocab);
    fprintf(stderr, "%s qwen3 (%d matrices): logits q8 vs f32 relative max-norm %.3g\n", ti->name,
            retyped, err);
    ck_assert_msg(err <= 0.1, "%s: q8 vs f32 logits differ by %.3g", ti->name, err);
    unlink(path);
    free(a);
    free(b);
    model_fixture_free(&f);
}
END_TEST

static Suite *tensor_types_suite(void) {
    Suite *s = suite_create("tensor_types");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_f16_exhaustive);
    tcase_add_test(tc, test_bf16_basic);
    tcase_add_test(tc, test_halfconv_fixture);
    tcase_add_loop_test(tc, test_quant_fixture, 0, N_FIXTURES);
    tcase_add_test(tc, test_simd_vs_scalar);
    tcase_add_test(tc, test_qdot_vs_f32);
    tcase_add_test(tc, test_mxfp4_exponents);
    tcase_add_test(tc, test_mxfp4_gguf);
    tcase_add_loop_test(tc, test_retyped_model, 0,
                        (int)(sizeof model_types / sizeof model_types[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(tensor_types_suite()); }
