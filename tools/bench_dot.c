/* bench_dot.c — single-thread matrix-vector speed of the dot kernels: a 4096 x 4096 weight matrix
 * per type (random blocks with moderate scales), GB/s of weight bytes streamed, per ISA tier, for
 * the f32-activation kernels and the 8-bit-activation (q8) integer kernels; best of 5 runs each.
 *
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc tools/bench_dot.c src/tensor_types.c \
 *       src/cpu_qgemm_pack.c src/cpu_dot_avx2.c src/cpu_dot_avx512.c src/error.c -lpthread -lm \
 *       -o /tmp/bench_dot
 *   /tmp/bench_dot [rows cols]
 */
#include "bench_clock.h"
#include "tensor_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 88172645463325252ull;
static uint32_t rnd(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)state;
}

static void put_f16(uint8_t *p, float v) {
    uint16_t h = rs_f32_to_f16(v);
    memcpy(p, &h, 2);
}

int main(int argc, char **argv) {
    int64_t rows = argc > 2 ? atoll(argv[1]) : 4096, cols = argc > 2 ? atoll(argv[2]) : 4096;
    static const uint32_t types[] = {TENSOR_F32,  TENSOR_F16,  TENSOR_BF16, TENSOR_Q8_0,
                                     TENSOR_Q4_0, TENSOR_Q4_1, TENSOR_Q5_0, TENSOR_Q5_1,
                                     TENSOR_Q4_K, TENSOR_Q5_K, TENSOR_Q6_K, TENSOR_MXFP4};
    float *x = malloc((size_t)cols * sizeof *x), *y = malloc((size_t)rows * sizeof *y);
    for (int64_t i = 0; i < cols; i++) x[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
    printf("%lld x %lld, one thread, best ISA %s\n", (long long)rows, (long long)cols,
           tensor_isa_name(tensor_isa_best()));
    printf("%-6s %10s", "type", "MB");
    for (int isa = 0; isa <= TENSOR_ISA_AVX512; isa++) printf(" %12s", tensor_isa_name(isa));
    printf(" %12s %12s   (GB/s of weights)\n", "q8:avx2", "q8:avx512");
    int8_t *xq = malloc((size_t)cols);
    float *xd = malloc((size_t)cols / 32 * sizeof *xd);
    float *xs = malloc((size_t)cols / 32 * sizeof *xs);
    tensor_quantize_q8(x, xq, xd, xs, cols);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        uint32_t type = types[k];
        const tensor_type_info *t = tensor_type_get(type);
        size_t rb = tensor_row_bytes(type, cols), total = rb * (size_t)rows;
        uint8_t *w = aligned_alloc(64, (total + 63) / 64 * 64);
        for (size_t i = 0; i < total; i++) w[i] = (uint8_t)rnd();
        /* finite scales: overwrite every f16 scale field (or element for F16/BF16/F32) */
        for (size_t b = 0; b < total / (size_t)t->block_bytes; b++) {
            uint8_t *p = w + b * (size_t)t->block_bytes;
            float s = 0.01f + (float)(rnd() % 100) * 1e-4f;
            if (type == TENSOR_F32)
                memcpy(p, &s, 4);
            else if (type == TENSOR_BF16) {
                uint16_t h = rs_f32_to_bf16(s);
                memcpy(p, &h, 2);
            } else if (type == TENSOR_MXFP4)
                p[0] = (uint8_t)(120 + rnd() % 8); /* E8M0 scales 2^-7 .. 2^0 */
            else if (type == TENSOR_Q6_K)
                put_f16(p + 208, s);
            else {
                put_f16(p, s);
                if (type == TENSOR_Q4_1 || type == TENSOR_Q5_1 || type == TENSOR_Q4_K ||
                    type == TENSOR_Q5_K)
                    put_f16(p + 2, s);
            }
        }
        printf("%-6s %10.1f", t->name, (double)total / 1e6);
        for (int isa = 0; isa <= TENSOR_ISA_AVX512; isa++) {
            tensor_dot_fn fn = tensor_dot_kernel_isa(type, isa);
            if (!fn) {
                printf(" %12s", "-");
                continue;
            }
            double best = 1e30;
            const int reps = 5; /* best of 5, the scalar tier too */
            for (int r = 0; r < reps; r++) {
                double t0 = bench_now();
                for (int64_t i = 0; i < rows; i++) y[i] = fn(w + (size_t)i * rb, x, cols);
                double dt = bench_now() - t0;
                if (dt < best) best = dt;
            }
            printf(" %12.2f", (double)total / best / 1e9);
        }
        for (int isa = TENSOR_ISA_AVX2; isa <= TENSOR_ISA_AVX512; isa++) {
            tensor_qdot_fn fn = tensor_qdot_kernel_isa(type, isa);
            if (!fn) {
                printf(" %12s", "-");
                continue;
            }
            double best = 1e30;
            for (int r = 0; r < 5; r++) {
                double t0 = bench_now();
                for (int64_t i = 0; i < rows; i++) y[i] = fn(w + (size_t)i * rb, xq, xd, xs, cols);
                double dt = bench_now() - t0;
                if (dt < best) best = dt;
            }
            printf(" %12.2f", (double)total / best / 1e9);
        }
        printf("\n");
        free(w);
    }
    free(xq);
    free(xd);
    free(xs);
    free(y);
    free(x);
    return 0;
}
