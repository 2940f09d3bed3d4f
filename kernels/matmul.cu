// matmul.cu — decode GEMV: y = x · Wᵀ (+ bias) for a few tokens (CPU twin: cpu_matmul in
// cpu_matmul.c). Above REASON_CUDA_GEMV_MAX_TOK tokens reason_cuda_matmul hands the product to
// the tensor-core GEMM (matmul_gemm.cu) when it takes the type and shape; otherwise large batches
// run here as repeated 8-token launches, correct but bandwidth-bound on W once per 8 tokens.
//
// Math:   y[t, r] = sum_c x[t, c] * W[r, c] + (bias ? bias[r] : 0), W dequantized on the fly,
//         every product and sum in f32.
// Shapes: W (rows, cols) row-major in its file type, rows row_bytes apart (GGUF layout);
//         x (n_tok, cols) f32; y (n_tok, rows) f32; bias (rows) f32 or NULL; all device memory.
// Types:  F32, F16, BF16 (lane unit: one 16-byte load = 4 / 8 / 8 elements, scalar tail when a
//         row is not 16-byte aligned or cols is odd); Q8_0 (34 B / 32: f16 d, 32 int8),
//         Q4_0 (18 B / 32: f16 d, nibbles, q - 8), Q4_1 (20 B / 32: f16 d, f16 m, nibbles,
//         d*q + m) (lane unit: one block, read in 2-byte words because 34/18-byte blocks are only
//         2-byte aligned); Q4_K (144 B / 256), Q6_K (210 B / 256) (lane unit: one 32-element
//         sub-block). Other types: the launcher answers REASON_CUDA_UNSUPPORTED.
// Launch: one warp per output row, 4 rows per 128-thread block; lane l takes units l, l+32, …
//         of the row, keeps NT (1, 2, 4 or 8) running sums, one per token, so each weight byte
//         is read once per launch of up to 8 tokens; warp shuffle sum at the end.
// Last measured: none yet (no GPU run).
#include "common.cuh"
#include "dequant.cuh"
#include "kernels.h"

namespace {

constexpr int ROWS_PER_BLOCK = 4;
constexpr int MAX_NT = 8;

// units: 16-byte/block units per row taken by the vector path (0 when rows are unaligned);
// elements from units * UNIT to cols go through the scalar tail.
template <class W, int NT>
__global__ void __launch_bounds__(ROWS_PER_BLOCK * 32)
    gemv_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int64_t cols, int32_t rows,
                const float *__restrict__ bias, const float *__restrict__ x, float *__restrict__ y,
                int32_t nt, int64_t units) {
    const int32_t r = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows)
        return;
    const uint8_t *row = w + (size_t)r * row_bytes;
    float sum[NT];
#pragma unroll
    for (int t = 0; t < NT; t++)
        sum[t] = 0.0f;

#pragma unroll 2
    for (int64_t u = lane; u < units; u += 32) {
        float wv[W::UNIT];
        W::unit(row, u, wv);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t >= nt)
                break;
            const float *xt = x + t * cols + u * W::UNIT;
#pragma unroll
            for (int k = 0; k < W::UNIT; k += 4) {
                const float4 xv = ld_f4(xt + k);
                sum[t] += wv[k] * xv.x + wv[k + 1] * xv.y + wv[k + 2] * xv.z + wv[k + 3] * xv.w;
            }
        }
    }
    if (!W::QUANT) {
        for (int64_t j = units * W::UNIT + lane; j < cols; j += 32) {
            const float wj = W::get(row, j);
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (t < nt)
                    sum[t] += wj * x[t * cols + j];
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const float s = warp_sum(sum[t]);
        if (t < nt && lane == 0)
            y[(size_t)t * rows + r] = s + (bias ? bias[r] : 0.0f);
    }
}

template <class W>
int launch_gemv(const void *w, int64_t cols, int64_t rows, size_t row_bytes, const float *bias,
                const float *x, float *y, int32_t n_tok, cudaStream_t s) {
    if (cols % W::BLOCK)
        return REASON_CUDA_UNSUPPORTED;
    const bool aligned =
        rs_aligned16(x) && (W::QUANT || (rs_aligned16(w) && row_bytes % 16 == 0 && cols % 4 == 0));
    const int64_t units = W::QUANT ? cols / 32 : (aligned ? cols / W::UNIT : 0);
    if (W::QUANT && !aligned)
        return REASON_CUDA_UNSUPPORTED; // x rows must take float4 loads
    const unsigned blocks = (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
    const uint8_t *wb = (const uint8_t *)w;
    for (int32_t t0 = 0; t0 < n_tok; t0 += MAX_NT) {
        const int32_t nt = n_tok - t0 < MAX_NT ? n_tok - t0 : MAX_NT;
        const float *xt = x + (size_t)t0 * cols;
        float *yt = y + (size_t)t0 * rows;
#define RS_GEMV(NT)                                                                                \
    gemv_kernel<W, NT><<<blocks, ROWS_PER_BLOCK * 32, 0, s>>>(wb, row_bytes, cols, (int32_t)rows,  \
                                                              bias, xt, yt, nt, units)
        if (nt == 1)
            RS_GEMV(1);
        else if (nt <= 2)
            RS_GEMV(2);
        else if (nt <= 4)
            RS_GEMV(4);
        else
            RS_GEMV(8);
#undef RS_GEMV
        RS_CUDA_LAUNCHED();
    }
    return 0;
}

} // namespace

// The instantiation table: GGML type number -> weight-type template.
extern "C" int reason_cuda_matmul(int32_t type, const void *w, int64_t cols, int64_t rows,
                                  size_t row_bytes, const float *bias, const float *x, float *y,
                                  int32_t n_tok, void *stream) {
    if (n_tok <= 0 || rows <= 0 || cols <= 0)
        return 0;
    if (rows > INT32_MAX)
        return REASON_CUDA_UNSUPPORTED;
    if (n_tok > REASON_CUDA_GEMV_MAX_TOK && reason_cuda_gemm_supported(type, cols)) {
        const int rc = reason_cuda_gemm(type, w, cols, rows, row_bytes, bias, x, y, n_tok, stream);
        if (rc != REASON_CUDA_UNSUPPORTED)
            return rc;
    }
    cudaStream_t s = rs_stream(stream);
    switch (type) {
    case 0:
        return launch_gemv<wt_f32>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 1:
        return launch_gemv<wt_f16>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 30:
        return launch_gemv<wt_bf16>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 8:
        return launch_gemv<wt_q8_0>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 2:
        return launch_gemv<wt_q4<false>>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 3:
        return launch_gemv<wt_q4<true>>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 12:
        return launch_gemv<wt_q4_K>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 14:
        return launch_gemv<wt_q6_K>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    default:
        return REASON_CUDA_UNSUPPORTED;
    }
}

extern "C" int reason_cuda_matmul_supported(int32_t type) {
    return type == 0 || type == 1 || type == 30 || type == 8 || type == 2 || type == 3 ||
           type == 12 || type == 14;
}
