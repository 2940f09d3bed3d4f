/* bench_narrow.c — the integer kernel for parallel-trace steps (2–15 tokens, cpu_qgemm.c): one
 * weight matrix times n_tok token vectors, weights unpacked at every product or kept unpacked
 * (cpu_qgemm_kept.h), per type; median of 15 products after a warm-up, in ms, G multiply-adds/s
 * and 64-lane vpdpbusd instructions/s (n_tok · rows · cols / 64 per product).
 *
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -Itests tools/bench_narrow.c build/libreason_static.a \
 *       -lopenblas -lpthread -lm -o /tmp/bench_narrow
 *   /tmp/bench_narrow [rows cols n_tok threads]     (8960 1536 8 2: Qwen2.5-1.5B's ffn_gate)
 */
#include "backend.h"
#include "backend_cpu.h"
#include "bench_clock.h"
#include "cpu_qgemm.h"
#include "random_weights.h"
#include "tensor_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *random_matrix(uint32_t type, int64_t rows, int64_t cols) {
    const size_t rb = tensor_row_bytes(type, cols);
    uint8_t *w = aligned_alloc(64, (rb * (size_t)rows + 63) / 64 * 64);
    for (int64_t r = 0; r < rows; r++) random_row(type, w + (size_t)r * rb, cols);
    return w;
}

int main(int argc, char **argv) {
    const int64_t rows = argc > 4 ? atoll(argv[1]) : 8960, cols = argc > 4 ? atoll(argv[2]) : 1536;
    const int32_t n_tok = argc > 4 ? atoi(argv[3]) : 8, threads = argc > 4 ? atoi(argv[4]) : 2;
    static const uint32_t types[] = {TENSOR_Q4_0, TENSOR_Q4_1, TENSOR_Q5_0, TENSOR_Q5_1,
                                     TENSOR_Q8_0, TENSOR_Q4_K, TENSOR_Q5_K, TENSOR_Q6_K,
                                     TENSOR_MXFP4};
    float *x = malloc((size_t)n_tok * cols * sizeof *x), *y = malloc((size_t)n_tok * rows * 4);
    for (int64_t i = 0; i < n_tok * cols; i++) x[i] = rndf();
    printf("%lld x %lld times %d tokens, %d threads\n", (long long)rows, (long long)cols, n_tok,
           threads);
    printf("%-6s %-9s %9s %9s %12s\n", "type", "weights", "ms", "GMAC/s", "G vpdpbusd/s");
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const uint32_t type = types[k];
        if (!cpu_qgemm_supports(type)) continue;
        uint8_t *w = random_matrix(type, rows, cols);
        const rs_tensor wt = {.name = "w", .type = type, .ne = {cols, rows},
                              .row_bytes = tensor_row_bytes(type, cols), .data = w};
        for (int kept = 0; kept < 2; kept++) {
            backend *be = NULL;
            if (backend_cpu_create(threads, 64, &be) != REASON_OK) return 1;
            backend_cpu_set_fast_matmul(be, true);
            backend_cpu_keep_unpacked(be, kept);
            double t[15];
            for (int r = -2; r < 15; r++) {
                const double t0 = bench_now();
                if (!cpu_qgemm_prepare(cpu(be), x, cols, n_tok) || !cpu_qgemm_run(cpu(be), &wt, y))
                    return 1;
                if (r >= 0) t[r] = bench_now() - t0;
            }
            qsort(t, 15, sizeof t[0], bench_cmp_double);
            const double macs = (double)n_tok * (double)rows * (double)cols;
            const char *how = !kept ? "per-step" : cpu_qgemm_kept_bytes(cpu(be)) ? "kept" : "not kept";
            printf("%-6s %-9s %9.3f %9.1f %12.2f\n", tensor_type_get(type)->name, how, t[7] * 1e3,
                   macs / t[7] / 1e9, macs / 64 / t[7] / 1e9);
            be->ops->destroy(be);
        }
        free(w);
    }
    free(x), free(y);
    return 0;
}
