// gpu_bench.cu — the kernel timing table of tools/gpu-check.sh: for each op and shape, the
// median over repeats (CUDA events) of one launch, its bandwidth (bytes the op must move / time),
// that as a percentage of a measured device-to-device copy (read + write bytes / time), and for
// the GEMV the same product through cuBLAS (F32: cublasSgemm; F16/BF16: cublasGemmEx with f16/
// bf16 inputs and f32 output; quantized types are compared with cuBLAS F16 of the same shape,
// the dense format they replace). Weights are filled with the byte 0x11 (a small normal number
// in every type); timings do not depend on values. Prints a markdown table; exit 1 on any error.
#include "kernels.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <vector>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define CB(x)                                                                                      \
    do {                                                                                           \
        cublasStatus_t s_ = (x);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "%s:%d: %s: cublas status %d\n", __FILE__, __LINE__, #x, (int)s_);     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static const int WARMUP = 3, REPEAT = 25;

// Median microseconds of one call of f (which must return 0).
template <class F> static double time_us(F f) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < WARMUP; i++)
        if (f()) {
            fprintf(stderr, "launch failed\n");
            exit(1);
        }
    std::vector<float> ms(REPEAT);
    for (int i = 0; i < REPEAT; i++) {
        CK(cudaEventRecord(a));
        f();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        CK(cudaEventElapsedTime(&ms[i], a, b));
    }
    CK(cudaGetLastError());
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    std::sort(ms.begin(), ms.end());
    return 1000.0 * ms[REPEAT / 2];
}

static double copy_gbs;

static void row(const char *op, const char *shape, double us, double bytes, double ref_us) {
    const double gbs = bytes / (us * 1e3);
    printf("| %s | %s | %.2f | %.0f | %.0f%% |", op, shape, us, gbs, 100.0 * gbs / copy_gbs);
    if (ref_us > 0)
        printf(" %.2f | %.0f%% |\n", ref_us, 100.0 * ref_us / us);
    else
        printf(" | |\n");
}

static void *dmalloc(size_t n) {
    void *p;
    CK(cudaMalloc(&p, n));
    CK(cudaMemset(p, 0x11, n));
    return p;
}

int main() {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));

    const size_t copy_bytes = (size_t)1 << 30;
    void *src = dmalloc(copy_bytes), *dst = dmalloc(copy_bytes);
    const double copy_us = time_us(
        [&] { return (int)cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice); });
    copy_gbs = 2.0 * copy_bytes / (copy_us * 1e3);
    CK(cudaFree(dst));
    CK(cudaFree(src));
    printf("device: %s; device-to-device copy of 1 GiB: %.0f GB/s (read + write)\n\n", prop.name,
           copy_gbs);
    printf("| op | shape | time (us, median of %d) | GB/s | %% of copy | cuBLAS (us) | %% of "
           "cuBLAS |\n",
           REPEAT);
    printf("|----|-------|------|------|-----------|-------------|-------------|\n");

    cublasHandle_t h;
    CB(cublasCreate(&h));

    // GEMV: (rows, cols) of typical 1.5B–8B decoder matrices and an lm_head.
    struct {
        int64_t rows, cols;
    } shapes[] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {151936, 1536}};
    struct {
        int32_t type;
        const char *name;
        int elem_bits;
        int block;
        int block_bytes;
    } types[] = {{0, "F32", 32, 1, 4},      {1, "F16", 16, 1, 2},     {30, "BF16", 16, 1, 2},
                 {8, "Q8_0", 0, 32, 34},    {2, "Q4_0", 0, 32, 18},   {3, "Q4_1", 0, 32, 20},
                 {12, "Q4_K", 0, 256, 144}, {14, "Q6_K", 0, 256, 210}};
    const int ntoks[] = {1, 4, 8};
    for (auto &sh : shapes) {
        const int64_t rows = sh.rows, cols = sh.cols;
        float *x = (float *)dmalloc((size_t)8 * cols * 4),
              *y = (float *)dmalloc((size_t)8 * rows * 4);
        void *x16 = dmalloc((size_t)8 * cols * 2);
        void *w16 = dmalloc((size_t)rows * cols * 2);
        for (auto &ty : types) {
            const size_t row_bytes = (size_t)(cols / ty.block) * ty.block_bytes;
            const size_t wbytes = row_bytes * rows;
            void *w = ty.type == 0 ? dmalloc(wbytes)
                                   : (ty.type == 1 || ty.type == 30 ? w16 : dmalloc(wbytes));
            for (int nt : ntoks) {
                double us = time_us([&] {
                    return reason_cuda_matmul(ty.type, w, cols, rows, row_bytes, NULL, x, y, nt,
                                              NULL);
                });
                const float one = 1.0f, zero = 0.0f;
                double ref = time_us([&] {
                    cublasStatus_t s;
                    if (ty.type == 0)
                        s = cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, nt, (int)cols, &one,
                                        (const float *)w, (int)cols, x, (int)cols, &zero, y,
                                        (int)rows);
                    else {
                        const cudaDataType dt = ty.type == 30 ? CUDA_R_16BF : CUDA_R_16F;
                        s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, nt, (int)cols,
                                         &one, w16, dt, (int)cols, x16, dt, (int)cols, &zero, y,
                                         CUDA_R_32F, (int)rows, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT);
                    }
                    return s == CUBLAS_STATUS_SUCCESS ? 0 : 1;
                });
                char op[64], shape[64];
                snprintf(op, sizeof op, "matmul %s%s", ty.name,
                         ty.block > 1 ? " (cuBLAS: F16)" : "");
                snprintf(shape, sizeof shape, "%lldx%lld ntok=%d", (long long)rows, (long long)cols,
                         nt);
                row(op, shape, us, (double)wbytes + 4.0 * nt * (cols + rows), ref);
            }
            if (w != w16)
                CK(cudaFree(w));
        }
        CK(cudaFree(w16));
        CK(cudaFree(x16));
        CK(cudaFree(y));
        CK(cudaFree(x));
    }

    const int64_t big = (int64_t)1 << 24;
    float *a = (float *)dmalloc(big * 4), *b = (float *)dmalloc(big * 4),
          *c = (float *)dmalloc(big * 4);
    CK(cudaMemset(a, 0, big * 4));
    CK(cudaMemset(b, 0, big * 4));
    for (int64_t n : {(int64_t)4096, (int64_t)14336 * 8, big}) {
        char shape[64];
        snprintf(shape, sizeof shape, "n=%lld", (long long)n);
        row("add", shape, time_us([&] { return reason_cuda_add(a, b, n, NULL); }), 12.0 * n, 0);
        row("swiglu", shape, time_us([&] { return reason_cuda_swiglu(a, b, c, n, NULL); }),
            12.0 * n, 0);
        row("mul_sigmoid", shape, time_us([&] { return reason_cuda_mul_sigmoid(a, b, n, NULL); }),
            12.0 * n, 0);
    }
    struct {
        int32_t rows, dim;
    } norms[] = {{1, 4096}, {64, 4096}, {1024, 4096}, {32, 128}, {4096, 128}};
    for (auto &nm : norms) {
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%d", nm.rows, nm.dim);
        row("rmsnorm", shape,
            time_us([&] { return reason_cuda_rmsnorm(a, b, c, nm.rows, nm.dim, 1e-6f, NULL); }),
            8.0 * nm.rows * nm.dim + 4.0 * nm.dim, 0);
    }
    int32_t *pos;
    CK(cudaMalloc(&pos, 4096 * 4));
    CK(cudaMemset(pos, 0, 4096 * 4));
    struct {
        int32_t n_tok, n_head, head_dim, neox;
    } ropes[] = {{1, 32, 128, 0}, {1, 32, 128, 1}, {512, 32, 128, 1}};
    for (auto &r : ropes) {
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%dx%d %s", r.n_tok, r.n_head, r.head_dim,
                 r.neox ? "neox" : "normal");
        row("rope", shape, time_us([&] {
                return reason_cuda_rope(a, r.n_tok, r.n_head, pos, r.head_dim, r.head_dim, r.neox,
                                        1e6f, 1.0f, NULL, NULL);
            }),
            8.0 * r.n_tok * r.n_head * r.head_dim, 0);
    }
    CK(cudaFree(pos));
    CK(cudaFree(c));
    CK(cudaFree(b));
    CK(cudaFree(a));
    CB(cublasDestroy(h));
    CK(cudaDeviceSynchronize());
    return 0;
}
