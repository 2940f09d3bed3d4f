// matmul_gemm.cu — prefill / batched GEMM on tensor cores: y = x · Wᵀ (+ bias) for many tokens
// (CPU twin: cpu_matmul in cpu_matmul.c, the same contract as the GEMV of matmul.cu).
// Checked on an H100 (2026-11-27): tests/test_backend_ops.c, every case vs the CPU backend, passes.
//
// Math:   y[t, r] = sum_k x[t, k] * W[r, k] + (bias ? bias[r] : 0). x is rounded to f16 on its
//         way into shared memory; F16 weights are copied, BF16 weights converted to f16 (exact in
//         f16's normal range), quantized weights dequantized to f32 by the GEMV's decoders
//         (dequant.cuh) and rounded to f16; products summed in f32 by mma.sync.m16n8k16 (f16
//         inputs, f32 accumulators). Expected error against the f32 CPU twin: ~2-3e-4 relative
//         (normalised). f16 overflows past 65504: activations that large would need a bf16 x
//         (mma16816<true> is there; not chosen automatically yet).
// Shapes: W (rows, cols) in its file type, rows row_bytes apart; x (n_tok, cols) f32 16-byte
//         aligned; y (n_tok, rows) f32; cols % 32 == 0 (% 256 for Q4_K/Q6_K).
// Launch: block tile 64 tokens × 128 weight rows × 32 k, 128 threads = 4 warps in a 2×2 grid,
//         each warp 32 tokens × 64 rows = 2 × 8 mma tiles of 16×8 (64 f32 accumulators per
//         thread). Per k step: every thread converts 4 float4 of x, and thread i dequantizes (or
//         copies, F16/BF16) the 32 weights of row i; shared rows padded to 40 halves (80 bytes)
//         so fragment loads (row g, word c of a quad) hit 32 distinct banks. Single-buffered.
//         Grid (ceil(rows/128), ceil(n_tok/64)).
// Next:   cp.async double buffering, ldmatrix, 128×128 tiles with 8 warps, then wgmma (sm_90a)
//         with TMA; split-K for small n_tok.
// Last measured: H100, 2026-11-27 (gpu_bench): 512x1536x8960 F16 88 / BF16 69 / Q8_0 67 TFLOP/s
//             (cuBLAS bf16 392: 17-23%); 4096^3 F16 120 / BF16 115 / Q8_0 44 (cuBLAS 715).
#include "common.cuh"
#include "dequant.cuh"
#include "kernels.h"
#include "mma.cuh"

namespace {

constexpr int BM = 64, BN = 128, BK = 32, LDS = BK + 8; // LDS: padded row, in halves

// Two floats packed into one 32-bit word of f16 or bf16, low half first.

// How a weight row reaches shared memory: RAW copies 16-bit values of the mma type (F16 into
// f16), BF2H converts BF16 to f16 (exact for |w| in f16's normal range, and f16 keeps 3 more
// mantissa bits of x than bf16 would), DEQ dequantizes 32 elements with the GEMV's decoder.
enum { RAW, BF2H, DEQ };

// The 32 weights W[r, k0 .. k0+32) as 16 packed words (4 × 16 bytes).
template <class W, bool BF, int MODE>
__device__ __forceinline__ void load_w32(const uint8_t *row, int64_t k0, uint4 *dst) {
    if (MODE == RAW || MODE == BF2H) {
        const uint4 *p = (const uint4 *)(row + 2 * k0);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint4 v = ld_u4(p + i);
            if (MODE == RAW) {
                dst[i] = v;
            } else {
                const float2 a = bf16x2_to_f32(v.x), b = bf16x2_to_f32(v.y), c = bf16x2_to_f32(v.z),
                             d = bf16x2_to_f32(v.w);
                dst[i] = make_uint4(pack2<BF>(a.x, a.y), pack2<BF>(b.x, b.y), pack2<BF>(c.x, c.y),
                                    pack2<BF>(d.x, d.y));
            }
        }
    } else {
        float w[32];
        W::unit(row, k0 / 32, w);
#pragma unroll
        for (int i = 0; i < 4; i++)
            dst[i] = make_uint4(
                pack2<BF>(w[8 * i], w[8 * i + 1]), pack2<BF>(w[8 * i + 2], w[8 * i + 3]),
                pack2<BF>(w[8 * i + 4], w[8 * i + 5]), pack2<BF>(w[8 * i + 6], w[8 * i + 7]));
    }
}

template <class W, bool BF, int MODE>
__global__ void __launch_bounds__(128)
    gemm_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int64_t cols, int32_t rows,
                const float *__restrict__ bias, const float *__restrict__ x, float *__restrict__ y,
                int32_t n_tok) {
    __shared__ __align__(16) uint16_t sx[BM * LDS];
    __shared__ __align__(16) uint16_t sw[BN * LDS];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, c = lane & 3;
    const int wm = warp & 1, wn = warp >> 1;
    const int32_t n0 = blockIdx.x * BN, m0 = blockIdx.y * BM;

    float acc[2][8][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[i][j][e] = 0.0f;

    const int32_t my_row = n0 + tid;
    const uint8_t *wrow = my_row < rows ? w + (size_t)my_row * row_bytes : nullptr;

    for (int64_t k0 = 0; k0 < cols; k0 += BK) {
        __syncthreads(); // the previous step's fragments are read
                         // x tile: 64 tokens × 32 floats = 512 float4, 4 per thread
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int i = tid + 128 * j, tok = i >> 3, c4 = i & 7;
            const int32_t t = m0 + tok;
            uint2 v = make_uint2(0u, 0u);
            if (t < n_tok) {
                const float4 f = ld_f4(x + (size_t)t * cols + k0 + 4 * c4);
                v = make_uint2(pack2<BF>(f.x, f.y), pack2<BF>(f.z, f.w));
            }
            *(uint2 *)&sx[tok * LDS + 4 * c4] = v;
        }
        // W tile: thread i takes row n0 + i
        uint4 wv[4];
        if (wrow) {
            load_w32<W, BF, MODE>(wrow, k0, wv);
        } else {
#pragma unroll
            for (int i = 0; i < 4; i++)
                wv[i] = make_uint4(0u, 0u, 0u, 0u);
        }
#pragma unroll
        for (int i = 0; i < 4; i++)
            *(uint4 *)&sw[tid * LDS + 8 * i] = wv[i];
        __syncthreads();

#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            uint32_t a[2][4];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const uint16_t *base = sx + (32 * wm + 16 * mi + g) * LDS + kk + 2 * c;
                a[mi][0] = *(const uint32_t *)base;
                a[mi][1] = *(const uint32_t *)(base + 8 * LDS);
                a[mi][2] = *(const uint32_t *)(base + 8);
                a[mi][3] = *(const uint32_t *)(base + 8 * LDS + 8);
            }
#pragma unroll
            for (int ni = 0; ni < 8; ni++) {
                const uint16_t *base = sw + (64 * wn + 8 * ni + g) * LDS + kk + 2 * c;
                const uint32_t b0 = *(const uint32_t *)base, b1 = *(const uint32_t *)(base + 8);
                mma16816<BF>(acc[0][ni], a[0], b0, b1);
                mma16816<BF>(acc[1][ni], a[1], b0, b1);
            }
        }
    }

#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
#pragma unroll
        for (int ni = 0; ni < 8; ni++) {
            const int32_t r = n0 + 64 * wn + 8 * ni + 2 * c;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int32_t t = m0 + 32 * wm + 16 * mi + g + 8 * half;
                if (t >= n_tok)
                    continue;
                float *yt = y + (size_t)t * rows;
                if (r < rows)
                    yt[r] = acc[mi][ni][2 * half] + (bias ? bias[r] : 0.0f);
                if (r + 1 < rows)
                    yt[r + 1] = acc[mi][ni][2 * half + 1] + (bias ? bias[r + 1] : 0.0f);
            }
        }
    }
}

template <class W, bool BF, int MODE>
int launch_gemm(const void *w, int64_t cols, int64_t rows, size_t row_bytes, const float *bias,
                const float *x, float *y, int32_t n_tok, cudaStream_t s) {
    if (cols % BK || cols % W::BLOCK || !rs_aligned16(x))
        return REASON_CUDA_UNSUPPORTED;
    if (MODE != DEQ && (!rs_aligned16(w) || row_bytes % 16))
        return REASON_CUDA_UNSUPPORTED;
    const int64_t gy = (n_tok + BM - 1) / BM;
    if (gy > 65535)
        return REASON_CUDA_UNSUPPORTED;
    dim3 grid((unsigned)((rows + BN - 1) / BN), (unsigned)gy);
    gemm_kernel<W, BF, MODE><<<grid, 128, 0, s>>>((const uint8_t *)w, row_bytes, cols,
                                                  (int32_t)rows, bias, x, y, n_tok);
    RS_CUDA_LAUNCHED();
    return 0;
}

} // namespace

// The instantiation table: GGML type number -> (decoder, mma type, raw copy).
extern "C" int reason_cuda_gemm(int32_t type, const void *w, int64_t cols, int64_t rows,
                                size_t row_bytes, const float *bias, const float *x, float *y,
                                int32_t n_tok, void *stream) {
    if (n_tok <= 0 || rows <= 0 || cols <= 0)
        return 0;
    if (rows > INT32_MAX)
        return REASON_CUDA_UNSUPPORTED;
    cudaStream_t s = rs_stream(stream);
    switch (type) {
    case 1:
        return launch_gemm<wt_f16, false, RAW>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 30:
        return launch_gemm<wt_bf16, false, BF2H>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 8:
        return launch_gemm<wt_q8_0, false, DEQ>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 2:
        return launch_gemm<wt_q4<false>, false, DEQ>(w, cols, rows, row_bytes, bias, x, y, n_tok,
                                                     s);
    case 3:
        return launch_gemm<wt_q4<true>, false, DEQ>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 12:
        return launch_gemm<wt_q4_K, false, DEQ>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    case 14:
        return launch_gemm<wt_q6_K, false, DEQ>(w, cols, rows, row_bytes, bias, x, y, n_tok, s);
    default:
        return REASON_CUDA_UNSUPPORTED;
    }
}

extern "C" int reason_cuda_gemm_supported(int32_t type, int64_t cols) {
    switch (type) {
    case 1:
    case 30:
    case 8:
    case 2:
    case 3:
        return cols > 0 && cols % 32 == 0;
    case 12:
    case 14:
        return cols > 0 && cols % 256 == 0;
    default:
        return 0;
    }
}
