/* tensor_types.c — the GGML weight types: block table, half-precision conversions, scalar
 * dequantization and dot products (the reference every SIMD kernel is tested against), and the
 * run-time choice of kernels. Block layouts are described in docs/formats.md.
 *
 * Dequantization evaluates exactly the float expression of the format (scale products rounded
 * to f32 first, then one multiply and one add), so it is bit-identical to any implementation
 * that does the same; the scalar dot is that dequantization followed by an f32 dot. */
#include "tensor_types.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---- half precision ----------------------------------------------------------------------- */

float rs_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13; /* inf, or NaN with its payload */
    } else if (exp) {
        bits = sign | (exp + 112u) << 23 | man << 13; /* rebias 15 -> 127 */
    } else {
        /* zero or subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * 0x1p-24f;
        memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rs_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: stays a (quiet) NaN, keeping the payload's top bits */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* >= 65520 = 65504 + half an ulp: rounds to infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* >= 2^-14: normal in f16 */
        uint32_t r = ax - (112u << 23);
        r += 0xfffu + ((r >> 13) & 1u); /* round to nearest even; a carry bumps the exponent */
        return (uint16_t)(sign | (r >> 13));
    }
    uint32_t e = ax >> 23;
    if (e < 102) return sign; /* below 2^-25: rounds to zero (2^-25 itself ties to 0 too) */
    /* subnormal result: round(m * 2^(e - 126)) units of 2^-24 with shift 14..24 */
    uint32_t m = (ax & 0x7fffffu) | 0x800000u, s = 126u - e;
    uint32_t q = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1u))) q++; /* q == 0x400 is the smallest normal */
    return (uint16_t)(sign | q);
}

float rs_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rs_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u); /* nearest even; overflow carries into infinity */
    return (uint16_t)(x >> 16);
}

/* ---- scalar dequantization ------------------------------------------------------------------ */

static inline float ld_f16(const uint8_t *p) { return rs_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static inline float ld_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

typedef void (*dequant_block_fn)(const uint8_t *b, float *y);

/* Q4_0 (18 B / 32): f16 d, 16 bytes; byte j holds element j (low nibble) and j+16 (high). */
static void dq_q4_0(const uint8_t *b, float *y) {
    float d = ld_f16(b);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b[2 + j] & 0xf) - 8);
        y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
    }
}

/* Q4_1 (20 B / 32): f16 d, f16 m, nibbles as Q4_0; y = d*q + m. */
static void dq_q4_1(const uint8_t *b, float *y) {
    float d = ld_f16(b), m = ld_f16(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(b[4 + j] & 0xf) + m;
        y[j + 16] = d * (float)(b[4 + j] >> 4) + m;
    }
}

/* Q5_0 (22 B / 32): f16 d, u32 qh (bit i = 5th bit of element i), nibbles as Q4_0; q - 16. */
static void dq_q5_0(const uint8_t *b, float *y) {
    float d = ld_f16(b);
    uint32_t qh =
        (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
    for (int j = 0; j < 16; j++) {
        int q0 = (b[6 + j] & 0xf) | (int)((qh >> j) & 1u) << 4;
        int q1 = (b[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = d * (float)(q0 - 16);
        y[j + 16] = d * (float)(q1 - 16);
    }
}

/* Q5_1 (24 B / 32): f16 d, f16 m, u32 qh, nibbles; y = d*q + m. */
static void dq_q5_1(const uint8_t *b, float *y) {
    float d = ld_f16(b), m = ld_f16(b + 2);
    uint32_t qh =
        (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
    for (int j = 0; j < 16; j++) {
        int q0 = (b[8 + j] & 0xf) | (int)((qh >> j) & 1u) << 4;
        int q1 = (b[8 + j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = d * (float)q0 + m;
        y[j + 16] = d * (float)q1 + m;
    }
}

/* Q8_0 (34 B / 32): f16 d, 32 int8. */
static void dq_q8_0(const uint8_t *b, float *y) {
    float d = ld_f16(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q4_K (144 B / 256): f16 d, f16 dmin, 12 scale bytes, 128 bytes; 8 sub-blocks of 32. Sub-blocks
 * 2c and 2c+1 share the 32 bytes qs[32c..32c+31]: low nibbles, then high nibbles.
 * y = (d*sc) * q - (dmin*m). */
static void dq_q4_K(const uint8_t *b, float *y) {
    float d = ld_f16(b), dmin = ld_f16(b + 2);
    const uint8_t *sc = b + 4, *qs = b + 16;
    for (int c = 0; c < 4; c++) {
        int s0, m0, s1, m1;
        rs_k_scale_min(sc, 2 * c, &s0, &m0);
        rs_k_scale_min(sc, 2 * c + 1, &s1, &m1);
        float d0 = d * (float)s0, dm0 = dmin * (float)m0;
        float d1 = d * (float)s1, dm1 = dmin * (float)m1;
        for (int l = 0; l < 32; l++) {
            y[64 * c + l] = d0 * (float)(qs[32 * c + l] & 0xf) - dm0;
            y[64 * c + 32 + l] = d1 * (float)(qs[32 * c + l] >> 4) - dm1;
        }
    }
}

/* Q5_K (176 B / 256): Q4_K plus qh[32] after the scales: bit j of qh[l] is the 5th bit of
 * element 32j + l. */
static void dq_q5_K(const uint8_t *b, float *y) {
    float d = ld_f16(b), dmin = ld_f16(b + 2);
    const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + 48;
    for (int c = 0; c < 4; c++) {
        int s0, m0, s1, m1;
        rs_k_scale_min(sc, 2 * c, &s0, &m0);
        rs_k_scale_min(sc, 2 * c + 1, &s1, &m1);
        float d0 = d * (float)s0, dm0 = dmin * (float)m0;
        float d1 = d * (float)s1, dm1 = dmin * (float)m1;
        for (int l = 0; l < 32; l++) {
            int q0 = (qs[32 * c + l] & 0xf) | ((qh[l] >> (2 * c)) & 1) << 4;
            int q1 = (qs[32 * c + l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4;
            y[64 * c + l] = d0 * (float)q0 - dm0;
            y[64 * c + 32 + l] = d1 * (float)q1 - dm1;
        }
    }
}

/* Q6_K (210 B / 256): ql[128], qh[64], int8 scales[16], f16 d. Two halves of 128; in half h,
 * group g (32 elements) takes the low (g = 0, 1) or high (g = 2, 3) nibbles of
 * ql[64h + 32(g&1) + l] and bits 2g..2g+1 of qh[32h + l]; q - 32, scale per 16 elements. */
static void dq_q6_K(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = ld_f16(b + 208);
    for (int h = 0; h < 2; h++) {
        for (int g = 0; g < 4; g++) {
            for (int l = 0; l < 32; l++) {
                uint8_t lo = ql[64 * h + 32 * (g & 1) + l];
                int q =
                    ((g < 2 ? lo & 0xf : lo >> 4) | ((qh[32 * h + l] >> (2 * g)) & 3) << 4) - 32;
                int e = 128 * h + 32 * g + l;
                y[e] = (d * (float)sc[e / 16]) * (float)q;
            }
        }
    }
}

/* MXFP4 (17 B / 32): E8M0 e, 16 bytes of E2M1 codes ordered as Q4_0's nibbles; y = 2^(e-128) *
 * (doubled E2M1 value). The product is exact (a power of two times an integer <= 12), so any
 * evaluation order gives the same bits; code 8 (negative zero) gives +0, as in the gguf package. */
static void dq_mxfp4(const uint8_t *b, float *y) {
    static const float kv[16] = {RS_MXFP4_KVALUES};
    const float d = rs_e8m0_half(b[0]);
    for (int j = 0; j < 16; j++) {
        y[j] = d * kv[b[1 + j] & 0xf];
        y[j + 16] = d * kv[b[1 + j] >> 4];
    }
}

/* ---- the type table ---------------------------------------------------------------------------
 */

typedef struct type_entry {
    tensor_type_info info;
    dequant_block_fn dequant; /* quantized block types; NULL for F32/F16/BF16 and unsupported */
} type_entry;

#define T(num, nm, bs, bb, sup, dq) [num] = {{nm, bs, bb, sup}, dq}
static const type_entry types[TENSOR_TYPE_COUNT] = {
    T(0, "F32", 1, 4, true, NULL),
    T(1, "F16", 1, 2, true, NULL),
    T(2, "Q4_0", 32, 18, true, dq_q4_0),
    T(3, "Q4_1", 32, 20, true, dq_q4_1),
    /* 4 and 5 (Q4_2, Q4_3) were removed from the format long ago. */
    T(6, "Q5_0", 32, 22, true, dq_q5_0),
    T(7, "Q5_1", 32, 24, true, dq_q5_1),
    T(8, "Q8_0", 32, 34, true, dq_q8_0),
    T(9, "Q8_1", 32, 36, false, NULL),
    T(10, "Q2_K", 256, 84, false, NULL),
    T(11, "Q3_K", 256, 110, false, NULL),
    T(12, "Q4_K", 256, 144, true, dq_q4_K),
    T(13, "Q5_K", 256, 176, true, dq_q5_K),
    T(14, "Q6_K", 256, 210, true, dq_q6_K),
    T(15, "Q8_K", 256, 292, false, NULL),
    T(16, "IQ2_XXS", 256, 66, false, NULL),
    T(17, "IQ2_XS", 256, 74, false, NULL),
    T(18, "IQ3_XXS", 256, 98, false, NULL),
    T(19, "IQ1_S", 256, 50, false, NULL),
    T(20, "IQ4_NL", 32, 18, false, NULL),
    T(21, "IQ3_S", 256, 110, false, NULL),
    T(22, "IQ2_S", 256, 82, false, NULL),
    T(23, "IQ4_XS", 256, 136, false, NULL),
    T(24, "I8", 1, 1, false, NULL),
    T(25, "I16", 1, 2, false, NULL),
    T(26, "I32", 1, 4, false, NULL),
    T(27, "I64", 1, 8, false, NULL),
    T(28, "F64", 1, 8, false, NULL),
    T(29, "IQ1_M", 256, 56, false, NULL),
    T(30, "BF16", 1, 2, true, NULL),
    /* 31-33 (Q4_0_4_4 and friends) were removed; 34, 35 ternary. */
    T(34, "TQ1_0", 256, 54, false, NULL),
    T(35, "TQ2_0", 256, 66, false, NULL),
    T(39, "MXFP4", 32, 17, true, dq_mxfp4),
};
#undef T

const tensor_type_info *tensor_type_get(uint32_t type) {
    if (type >= TENSOR_TYPE_COUNT || !types[type].info.name) return NULL;
    return &types[type].info;
}

size_t tensor_row_bytes(uint32_t type, int64_t n) {
    const tensor_type_info *t = tensor_type_get(type);
    if (!t || n < 0 || n % t->block_size) return 0;
    size_t bytes;
    if (!rs_mul_size((size_t)(n / t->block_size), (size_t)t->block_bytes, &bytes)) return 0;
    return bytes;
}

/* Run-time kernel choice (see "dispatch" below). */
static pthread_once_t dispatch_once = PTHREAD_ONCE_INIT;
static void dispatch_init(void);
static tensor_dequant_fn dequant_simd[TENSOR_TYPE_COUNT]; /* NULL: the scalar blocks */

void tensor_dequantize_row(uint32_t type, const void *row, float *dst, int64_t n) {
    const tensor_type_info *t = tensor_type_get(type);
    const uint8_t *p = row;
    if (!t || !t->supported || n % t->block_size) {
        for (int64_t i = 0; i < n; i++) dst[i] = NAN; /* never silently plausible */
        return;
    }
    if (type == TENSOR_F32) {
        memcpy(dst, row, (size_t)n * 4);
        return;
    }
    pthread_once(&dispatch_once, dispatch_init);
    if (dequant_simd[type]) {
        dequant_simd[type](row, dst, n);
        return;
    }
    switch (type) {
    case TENSOR_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = ld_f16(p + 2 * i);
        return;
    case TENSOR_BF16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = rs_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return;
    default: break;
    }
    dequant_block_fn dq = types[type].dequant;
    for (int64_t i = 0; i < n / t->block_size; i++)
        dq(p + (size_t)i * (size_t)t->block_bytes, dst + i * t->block_size);
}

/* ---- scalar dots --------------------------------------------------------------------------------
 */

static float dot_f32_scalar(const void *row, const float *x, int64_t n) {
    const uint8_t *p = row;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += ld_f32(p + 4 * i) * x[i];
    return sum;
}

static float dot_f16_scalar(const void *row, const float *x, int64_t n) {
    const uint8_t *p = row;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += ld_f16(p + 2 * i) * x[i];
    return sum;
}

static float dot_bf16_scalar(const void *row, const float *x, int64_t n) {
    const uint8_t *p = row;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += rs_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)) * x[i];
    return sum;
}

/* Block types: dequantize one block, then an f32 dot of the block. */
static inline float dot_blocks(uint32_t type, const void *row, const float *x, int64_t n) {
    const type_entry *t = &types[type];
    const int bs = t->info.block_size;
    const uint8_t *p = row;
    float y[256], sum = 0.0f;
    for (int64_t i = 0; i < n / bs; i++, p += t->info.block_bytes, x += bs) {
        t->dequant(p, y);
        float s = 0.0f;
        for (int j = 0; j < bs; j++) s += y[j] * x[j];
        sum += s;
    }
    return sum;
}

#define SCALAR_DOT(name, type)                                                                     \
    static float dot_##name##_scalar(const void *row, const float *x, int64_t n) {                 \
        return dot_blocks(type, row, x, n);                                                        \
    }
SCALAR_DOT(q4_0, TENSOR_Q4_0)
SCALAR_DOT(q4_1, TENSOR_Q4_1)
SCALAR_DOT(q5_0, TENSOR_Q5_0)
SCALAR_DOT(q5_1, TENSOR_Q5_1)
SCALAR_DOT(q8_0, TENSOR_Q8_0)
SCALAR_DOT(q4_K, TENSOR_Q4_K)
SCALAR_DOT(q5_K, TENSOR_Q5_K)
SCALAR_DOT(q6_K, TENSOR_Q6_K)
SCALAR_DOT(mxfp4, TENSOR_MXFP4)
#undef SCALAR_DOT

/* ---- dispatch -----------------------------------------------------------------------------------
 */

static tensor_dot_fn dot_table[3][TENSOR_TYPE_COUNT];
static tensor_qdot_fn qdot_table[3][TENSOR_TYPE_COUNT]; /* no scalar tier: NULL there */
static bool have_vnni, have_bf16;
static int isa_best = TENSOR_ISA_SCALAR;

static void dispatch_init(void) {
    tensor_dot_fn *s = dot_table[TENSOR_ISA_SCALAR];
    s[TENSOR_F32] = dot_f32_scalar;
    s[TENSOR_F16] = dot_f16_scalar;
    s[TENSOR_BF16] = dot_bf16_scalar;
    s[TENSOR_Q4_0] = dot_q4_0_scalar;
    s[TENSOR_Q4_1] = dot_q4_1_scalar;
    s[TENSOR_Q5_0] = dot_q5_0_scalar;
    s[TENSOR_Q5_1] = dot_q5_1_scalar;
    s[TENSOR_Q8_0] = dot_q8_0_scalar;
    s[TENSOR_Q4_K] = dot_q4_K_scalar;
    s[TENSOR_Q5_K] = dot_q5_K_scalar;
    s[TENSOR_Q6_K] = dot_q6_K_scalar;
    s[TENSOR_MXFP4] = dot_mxfp4_scalar;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c")) {
        tensor_dot_fn *a = dot_table[TENSOR_ISA_AVX2];
        a[TENSOR_F32] = rs_dot_f32_avx2;
        a[TENSOR_F16] = rs_dot_f16_avx2;
        a[TENSOR_BF16] = rs_dot_bf16_avx2;
        a[TENSOR_Q8_0] = rs_dot_q8_0_avx2;
        a[TENSOR_Q4_0] = rs_dot_q4_0_avx2;
        a[TENSOR_Q4_1] = rs_dot_q4_1_avx2;
        a[TENSOR_Q5_0] = rs_dot_q5_0_avx2;
        a[TENSOR_Q5_1] = rs_dot_q5_1_avx2;
        a[TENSOR_Q4_K] = rs_dot_q4_K_avx2;
        a[TENSOR_Q5_K] = rs_dot_q5_K_avx2;
        a[TENSOR_Q6_K] = rs_dot_q6_K_avx2;
        a[TENSOR_MXFP4] = rs_dot_mxfp4_avx2;
        tensor_qdot_fn *qa = qdot_table[TENSOR_ISA_AVX2];
        qa[TENSOR_Q8_0] = rs_qdot_q8_0_avx2;
        qa[TENSOR_Q4_0] = rs_qdot_q4_0_avx2;
        qa[TENSOR_Q4_1] = rs_qdot_q4_1_avx2;
        qa[TENSOR_Q4_K] = rs_qdot_q4_K_avx2;
        qa[TENSOR_Q5_0] = rs_qdot_q5_0_avx2;
        qa[TENSOR_Q5_1] = rs_qdot_q5_1_avx2;
        qa[TENSOR_Q5_K] = rs_qdot_q5_K_avx2;
        qa[TENSOR_Q6_K] = rs_qdot_q6_K_avx2;
        qa[TENSOR_MXFP4] = rs_qdot_mxfp4_avx2;
        isa_best = TENSOR_ISA_AVX2;
        if (__builtin_cpu_supports("avx512f")) {
            tensor_dot_fn *z = dot_table[TENSOR_ISA_AVX512];
            z[TENSOR_F32] = rs_dot_f32_avx512;
            z[TENSOR_F16] = rs_dot_f16_avx512;
            z[TENSOR_BF16] = rs_dot_bf16_avx512;
            z[TENSOR_Q8_0] = rs_dot_q8_0_avx512;
            z[TENSOR_Q4_0] = rs_dot_q4_0_avx512;
            z[TENSOR_Q4_1] = rs_dot_q4_1_avx512;
            z[TENSOR_Q5_0] = rs_dot_q5_0_avx512;
            z[TENSOR_Q5_1] = rs_dot_q5_1_avx512;
            z[TENSOR_Q4_K] = rs_dot_q4_K_avx512;
            z[TENSOR_Q5_K] = rs_dot_q5_K_avx512;
            if (__builtin_cpu_supports("avx512bw")) /* byte operations; else AVX2 */
                z[TENSOR_Q6_K] = rs_dot_q6_K_avx512;
            z[TENSOR_MXFP4] = rs_dot_mxfp4_avx512;
            isa_best = TENSOR_ISA_AVX512;
            dequant_simd[TENSOR_Q4_0] = rs_dequant_q4_0_avx512;
            dequant_simd[TENSOR_Q4_1] = rs_dequant_q4_1_avx512;
            dequant_simd[TENSOR_Q8_0] = rs_dequant_q8_0_avx512;
            dequant_simd[TENSOR_Q4_K] = rs_dequant_q4_K_avx512;
            dequant_simd[TENSOR_MXFP4] = rs_dequant_mxfp4_avx512;
            dequant_simd[TENSOR_F16] = rs_dequant_f16_avx512;
            dequant_simd[TENSOR_BF16] = rs_dequant_bf16_avx512;
            have_bf16 = __builtin_cpu_supports("avx512bf16");
            have_vnni = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
            if (have_vnni) {
                dequant_simd[TENSOR_Q5_0] = rs_dequant_q5_0_codes;
                dequant_simd[TENSOR_Q5_1] = rs_dequant_q5_1_codes;
                dequant_simd[TENSOR_Q5_K] = rs_dequant_q5_K_codes;
                dequant_simd[TENSOR_Q6_K] = rs_dequant_q6_K_codes;
                tensor_qdot_fn *qz = qdot_table[TENSOR_ISA_AVX512];
                qz[TENSOR_Q8_0] = rs_qdot_q8_0_avx512;
                qz[TENSOR_Q4_0] = rs_qdot_q4_0_avx512;
                qz[TENSOR_Q4_1] = rs_qdot_q4_1_avx512;
                qz[TENSOR_Q4_K] = rs_qdot_q4_K_avx512;
                qz[TENSOR_Q5_0] = rs_qdot_q5_0_avx512;
                qz[TENSOR_Q5_1] = rs_qdot_q5_1_avx512;
                qz[TENSOR_Q5_K] = rs_qdot_q5_K_avx512;
                qz[TENSOR_Q6_K] = rs_qdot_q6_K_avx512;
                qz[TENSOR_MXFP4] = rs_qdot_mxfp4_avx512;
            }
        }
    }
#endif
}

tensor_dot_fn tensor_dot_kernel_isa(uint32_t type, int isa) {
    if (type >= TENSOR_TYPE_COUNT || isa < 0 || isa > TENSOR_ISA_AVX512) return NULL;
    pthread_once(&dispatch_once, dispatch_init);
    return dot_table[isa][type];
}

tensor_dot_fn tensor_dot_kernel(uint32_t type) {
    if (type >= TENSOR_TYPE_COUNT) return NULL;
    pthread_once(&dispatch_once, dispatch_init);
    for (int isa = isa_best; isa >= 0; isa--)
        if (dot_table[isa][type]) return dot_table[isa][type];
    return NULL;
}

tensor_qdot_fn tensor_qdot_kernel_isa(uint32_t type, int isa) {
    if (type >= TENSOR_TYPE_COUNT || isa < 0 || isa > TENSOR_ISA_AVX512) return NULL;
    pthread_once(&dispatch_once, dispatch_init);
    return qdot_table[isa][type];
}

tensor_qdot_fn tensor_qdot_kernel(uint32_t type) {
    if (type >= TENSOR_TYPE_COUNT) return NULL;
    pthread_once(&dispatch_once, dispatch_init);
    for (int isa = isa_best; isa >= 0; isa--)
        if (qdot_table[isa][type]) return qdot_table[isa][type];
    return NULL;
}

bool rs_cpu_has_avx512bf16(void) {
    pthread_once(&dispatch_once, dispatch_init);
    return have_bf16;
}

bool rs_cpu_has_vnni(void) {
    pthread_once(&dispatch_once, dispatch_init);
    return have_vnni;
}

void tensor_quantize_q8(const float *x, int8_t *xq, float *xd, float *xs, int64_t n) {
#if defined(__x86_64__) || defined(__i386__)
    if (rs_cpu_has_vnni()) {
        rs_quantize_q8_avx512(x, xq, xd, xs, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n / 32; i++, x += 32, xq += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            xq[j] = (int8_t)nearbyintf(x[j] * id); /* nearest even, as vcvtps2dq */
            sum += xq[j];
        }
        xd[i] = d;
        xs[i] = d * (float)sum;
    }
}

int tensor_isa_best(void) {
    pthread_once(&dispatch_once, dispatch_init);
    return isa_best;
}

const char *tensor_isa_name(int isa) {
    switch (isa) {
    case TENSOR_ISA_SCALAR: return "scalar";
    case TENSOR_ISA_AVX2: return "avx2";
    case TENSOR_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

float tensor_dot_row(uint32_t type, const void *row, const float *x, int64_t n) {
    tensor_dot_fn fn = tensor_dot_kernel(type);
    const tensor_type_info *t = tensor_type_get(type);
    if (!fn || n % t->block_size) return NAN;
    return fn(row, x, n);
}
