/* test_tensor_types.c — the weight types against fixtures from the gguf Python package
 * (tools/gen_quant_fixtures.py), SIMD kernels against the scalar reference, and the f16/bf16
 * conversions against independent computations. */
#include "tensor_types.h"
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

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
        {TENSOR_BF16, "BF16", 1, 2, true},
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
                                            "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};
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

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rndf(void) { return (float)rnd() / 4294967296.0f * 2.0f - 1.0f; } /* [-1, 1) */

static void put_f16(uint8_t *p, float v) {
    uint16_t h = rs_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Random blocks of a type with finite, moderate scales (the f16 fields), as in the fixtures. */
static void random_row(uint32_t type, uint8_t *row, int64_t n) {
    const tensor_type_info *t = tensor_type_get(type);
    size_t rb = tensor_row_bytes(type, n);
    for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)rnd();
    int64_t nb = n / t->block_size;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *p = row + (size_t)b * (size_t)t->block_bytes;
        switch (type) {
        case TENSOR_F32: {
            float v = rndf();
            memcpy(p, &v, 4);
            break;
        }
        case TENSOR_F16: put_f16(p, rndf()); break;
        case TENSOR_BF16: {
            uint16_t h = rs_f32_to_bf16(rndf());
            memcpy(p, &h, 2);
            break;
        }
        case TENSOR_Q6_K: put_f16(p + 208, 0.05f * rndf()); break;
        case TENSOR_Q4_1:
        case TENSOR_Q5_1:
        case TENSOR_Q4_K:
        case TENSOR_Q5_K:
            put_f16(p, 0.05f * rndf());
            put_f16(p + 2, 0.05f * rndf());
            break;
        default: put_f16(p, 0.05f * rndf()); break;
        }
    }
}

START_TEST(test_simd_vs_scalar) {
    static const uint32_t all[] = {TENSOR_F32,  TENSOR_F16,  TENSOR_BF16, TENSOR_Q4_0,
                                   TENSOR_Q4_1, TENSOR_Q5_0, TENSOR_Q5_1, TENSOR_Q8_0,
                                   TENSOR_Q4_K, TENSOR_Q5_K, TENSOR_Q6_K};
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
                if (!fn) continue;
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

static Suite *tensor_types_suite(void) {
    Suite *s = suite_create("tensor_types");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_f16_exhaustive);
    tcase_add_test(tc, test_bf16_basic);
    tcase_add_test(tc, test_halfconv_fixture);
    tcase_add_loop_test(tc, test_quant_fixture, 0, N_FIXTURES);
    tcase_add_test(tc, test_simd_vs_scalar);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(tensor_types_suite()); }
