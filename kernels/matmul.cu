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
// Launch: one 128-thread block per 4 output rows; thread k takes the 8-weight slices k, k+128, …
//         of all 4 rows (W::slice: adjacent threads read adjacent bytes), so each x value
//         loaded serves 4 rows; NT (1, 2, 4 or 8) running sums per row, one per token, so each
//         weight byte is read once per launch of up to 8 tokens; warp shuffles, then the 4
//         warps' partial sums through shared memory.
// Why slices: the first version gave each lane a whole 34/18-byte block read in 2-byte words
//         (lanes 34 bytes apart: every load instruction touched ~34 sectors) and one row per
//         warp (x loaded once per row and token): Q8_0 decode ran at 22-29% of the copy
//         bandwidth and 8 tokens took 8x one token (H100, 2026-11-27).
// Last measured: H100, 2026-11-27 (gpu_bench, 14336x4096, 1 / 8 tokens, % of the copy
//             bandwidth): F16 87% / 56%, Q8_0 68% / 30%, Q4_0 48% / 18%, Q4_K 34% / 14%, Q6_K
//             52% / 23% (before: Q8_0 27% / 4%, Q4_0 16% / 2%). ncu, Q4_0 4096x4096, one
//             token: DRAM 28% of peak, half the warp cycles stalled on memory scoreboards,
//             occupancy 50% (registers), one wave — latency-bound, not instruction-bound
//             (a dp4a version on 8-bit activations was no faster). docs/gpu-status.md.
#include "common.cuh"
#include "dequant.cuh"
#include "kernels.h"

namespace {

constexpr int THREADS = 128;
constexpr int MAX_NT = 8;
// rows per block: each x value loaded serves ROWS rows (2 and 8 measured: no better)
constexpr int ROWS = 4;

// slices: runs of 8 weights per row taken by the vector path (0 when rows are unaligned);
// elements from slices * 8 to cols go through the scalar tail (never for quantized types).
template <class W, int NT>
__global__ void __launch_bounds__(THREADS)
    gemv_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int64_t cols, int32_t rows,
                const float *__restrict__ bias, const float *__restrict__ x, float *__restrict__ y,
                int32_t nt, int64_t slices) {
    __shared__ float partial[THREADS / 32][ROWS * NT];
    const int32_t r0 = blockIdx.x * ROWS;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    // rows past the end repeat the last row (valid memory); their sums are never stored
    const uint8_t *row[ROWS];
#pragma unroll
    for (int i = 0; i < ROWS; i++)
        row[i] = w + (size_t)min(r0 + i, rows - 1) * row_bytes;
    float sum[ROWS][NT];
#pragma unroll
    for (int i = 0; i < ROWS; i++)
#pragma unroll
        for (int t = 0; t < NT; t++)
            sum[i][t] = 0.0f;

#pragma unroll 1 // unrolled 2 or 4: slower (registers; H100, 2026-11-27)
    for (int64_t sl = threadIdx.x; sl < slices; sl += THREADS) {
        float q[ROWS][8];
        slice_scale sc[ROWS];
        int64_t c0 = 0;
#pragma unroll
        for (int i = 0; i < ROWS; i++)
            c0 = W::slice(row[i], sl, q[i], sc[i]);
        constexpr bool MINS = W::SCALE == SCALE_ONE_MIN || W::SCALE == SCALE_TWO_MIN;
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t >= nt)
                break;
            const float4 a = ld_f4(x + t * cols + c0), b = ld_f4(x + t * cols + c0 + W::HI);
            const float xa = MINS ? a.x + a.y + a.z + a.w : 0.0f;
            const float xb = MINS ? b.x + b.y + b.z + b.w : 0.0f;
#pragma unroll
            for (int i = 0; i < ROWS; i++)
                sum[i][t] += slice_dot<W::SCALE>(q[i], sc[i], a, b, xa, xb);
        }
    }
    if (!W::QUANT) {
        for (int64_t j = slices * 8 + threadIdx.x; j < cols; j += THREADS) {
#pragma unroll
            for (int i = 0; i < ROWS; i++) {
                const float wj = W::get(row[i], j);
#pragma unroll
                for (int t = 0; t < NT; t++)
                    if (t < nt)
                        sum[i][t] += wj * x[t * cols + j];
            }
        }
    }
#pragma unroll
    for (int i = 0; i < ROWS; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float v = warp_sum(sum[i][t]);
            if (lane == 0)
                partial[warp][i * NT + t] = v;
        }
    __syncthreads();
    const int k = threadIdx.x, i = k / NT, t = k % NT;
    if (k < ROWS * NT && t < nt && r0 + i < rows) {
        float v = 0.0f;
#pragma unroll
        for (int wi = 0; wi < THREADS / 32; wi++)
            v += partial[wi][k];
        y[(size_t)t * rows + r0 + i] = v + (bias ? bias[r0 + i] : 0.0f);
    }
}

template <class W>
int launch_gemv(const void *w, int64_t cols, int64_t rows, size_t row_bytes, const float *bias,
                const float *x, float *y, int32_t n_tok, cudaStream_t s) {
    if (cols % W::BLOCK)
        return REASON_CUDA_UNSUPPORTED;
    // x rows take float4 loads; float weights take 16-byte loads where rows allow them
    const bool x_aligned = rs_aligned16(x) && cols % 4 == 0;
    const bool w_aligned = W::QUANT || (rs_aligned16(w) && row_bytes % 16 == 0);
    if (W::QUANT && !x_aligned)
        return REASON_CUDA_UNSUPPORTED;
    const int64_t slices = x_aligned && w_aligned ? cols / 8 : 0;
    const unsigned blocks = (unsigned)((rows + ROWS - 1) / ROWS);
    const uint8_t *wb = (const uint8_t *)w;
    for (int32_t t0 = 0; t0 < n_tok; t0 += MAX_NT) {
        const int32_t nt = n_tok - t0 < MAX_NT ? n_tok - t0 : MAX_NT;
        const float *xt = x + (size_t)t0 * cols;
        float *yt = y + (size_t)t0 * rows;
#define RS_GEMV(NT)                                                                                \
    gemv_kernel<W, NT><<<blocks, THREADS, 0, s>>>(wb, row_bytes, cols, (int32_t)rows, bias, xt,    \
                                                  yt, nt, slices)
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
