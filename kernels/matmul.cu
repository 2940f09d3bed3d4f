// matmul.cu — decode GEMV: y = x · Wᵀ (+ bias) for a few tokens (CPU twin: cpu_matmul in
// cpu_matmul.c). Prefill GEMM (large n_tok) is a later piece; until then large batches run as
// repeated 8-token launches, correct but bandwidth-bound on W once per 8 tokens.
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
#include "kernels.h"

namespace {

constexpr int ROWS_PER_BLOCK = 4;
constexpr int MAX_NT = 8;

// Each weight type: UNIT elements per lane step, unit(row, u, w) dequantizes unit u of a row
// into w[0..UNIT), get(row, j) one element (tails of unaligned rows), and QUANT (no tail:
// cols is always a multiple of the block).
struct wt_f32 {
    static constexpr int UNIT = 4, BLOCK = 1;
    static constexpr bool QUANT = false;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        float4 v = ld_f4((const float *)row + 4 * u);
        w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
    }
    __device__ static float get(const uint8_t *row, int64_t j) { return ((const float *)row)[j]; }
};

struct wt_f16 {
    static constexpr int UNIT = 8, BLOCK = 1;
    static constexpr bool QUANT = false;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        uint4 v = ld_u4(row + 16 * u);
        float2 a = f16x2_to_f32(v.x), b = f16x2_to_f32(v.y), c = f16x2_to_f32(v.z),
               d = f16x2_to_f32(v.w);
        w[0] = a.x, w[1] = a.y, w[2] = b.x, w[3] = b.y, w[4] = c.x, w[5] = c.y, w[6] = d.x,
        w[7] = d.y;
    }
    __device__ static float get(const uint8_t *row, int64_t j) {
        return f16_to_f32(((const uint16_t *)row)[j]);
    }
};

struct wt_bf16 {
    static constexpr int UNIT = 8, BLOCK = 1;
    static constexpr bool QUANT = false;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        uint4 v = ld_u4(row + 16 * u);
        float2 a = bf16x2_to_f32(v.x), b = bf16x2_to_f32(v.y), c = bf16x2_to_f32(v.z),
               d = bf16x2_to_f32(v.w);
        w[0] = a.x, w[1] = a.y, w[2] = b.x, w[3] = b.y, w[4] = c.x, w[5] = c.y, w[6] = d.x,
        w[7] = d.y;
    }
    __device__ static float get(const uint8_t *row, int64_t j) {
        return bf16_to_f32(((const uint16_t *)row)[j]);
    }
};

struct wt_q8_0 {
    static constexpr int UNIT = 32, BLOCK = 32;
    static constexpr bool QUANT = true;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        const uint16_t *b = (const uint16_t *)(row + 34 * u);
        const float d = f16_to_f32(__ldg(b));
#pragma unroll
        for (int k = 0; k < 16; k++) {
            const uint16_t q = __ldg(b + 1 + k);
            w[2 * k] = d * (float)(int8_t)(q & 0xff);
            w[2 * k + 1] = d * (float)(int8_t)(q >> 8);
        }
    }
    __device__ static float get(const uint8_t *row, int64_t j) {
        const uint8_t *b = row + 34 * (j / 32);
        return f16_to_f32(*(const uint16_t *)b) * (float)(int8_t)b[2 + j % 32];
    }
};

// Q4_0 and Q4_1 share the nibble order: byte k holds element k (low) and k + 16 (high).
template <bool MIN> struct wt_q4 {
    static constexpr int UNIT = 32, BLOCK = 32;
    static constexpr bool QUANT = true;
    static constexpr int BYTES = MIN ? 20 : 18;
    // Q4_1: d*q + m; Q4_0: d*(q - 8), in the CPU twin's order of operations.
    __device__ static float val(float d, float m, int q) {
        return MIN ? d * (float)q + m : d * (float)(q - 8);
    }
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        const uint16_t *b = (const uint16_t *)(row + BYTES * u);
        const float d = f16_to_f32(__ldg(b));
        const float m = MIN ? f16_to_f32(__ldg(b + 1)) : 0.0f;
        const uint16_t *qs = b + (MIN ? 2 : 1);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const uint16_t q = __ldg(qs + k);
            w[2 * k] = val(d, m, q & 0xf);
            w[2 * k + 16] = val(d, m, (q >> 4) & 0xf);
            w[2 * k + 1] = val(d, m, (q >> 8) & 0xf);
            w[2 * k + 17] = val(d, m, q >> 12);
        }
    }
    __device__ static float get(const uint8_t *row, int64_t j) {
        const uint8_t *b = row + BYTES * (j / 32);
        const float d = f16_to_f32(*(const uint16_t *)b);
        const float m = MIN ? f16_to_f32(*(const uint16_t *)(b + 2)) : 0.0f;
        const int k = (int)(j % 32);
        const uint8_t q = b[(MIN ? 4 : 2) + (k & 15)];
        return val(d, m, k < 16 ? q & 0xf : q >> 4);
    }
};

// K-quants: a lane unit is one 32-element sub-block of a 256-element super-block, so the row
// loop and the registers are the same as for the 32-element formats.
// Q4_K (144 B / 256): f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) pairs, qs[128]; sub-block
// j uses byte qs[32(j/2) + l], low nibble for even j, high for odd; y = (d*sc)*q - dmin*mn.
struct wt_q4_K {
    static constexpr int UNIT = 32, BLOCK = 256;
    static constexpr bool QUANT = true;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        const uint8_t *b = row + 144 * (u >> 3);
        const int j = (int)(u & 7);
        const float d = f16_to_f32(__ldg((const uint16_t *)b));
        const float dmin = f16_to_f32(__ldg((const uint16_t *)b + 1));
        const uint8_t *s = b + 4;
        int sc, mn;
        if (j < 4) {
            sc = __ldg(s + j) & 63;
            mn = __ldg(s + j + 4) & 63;
        } else {
            sc = (__ldg(s + j + 4) & 0xf) | (__ldg(s + j - 4) >> 6) << 4;
            mn = (__ldg(s + j + 4) >> 4) | (__ldg(s + j) >> 6) << 4;
        }
        const float ds = d * (float)sc, dm = dmin * (float)mn;
        const uint16_t *qs = (const uint16_t *)(b + 16 + 32 * (j >> 1));
        const int shift = (j & 1) * 4;
#pragma unroll
        for (int k = 0; k < 16; k++) {
            const uint16_t q = __ldg(qs + k);
            w[2 * k] = ds * (float)((q >> shift) & 0xf) - dm;
            w[2 * k + 1] = ds * (float)((q >> (8 + shift)) & 0xf) - dm;
        }
    }
    __device__ static float get(const uint8_t *, int64_t) { return 0.0f; } // no tail (QUANT)
};

// Q6_K (210 B / 256): ql[128], qh[64], int8 scales[16], f16 d. Sub-block j: half h = j/4,
// group g = j%4; element l takes nibble (g < 2 ? low : high) of ql[64h + 32(g&1) + l] and bits
// 2g..2g+1 of qh[32h + l]; y = (d*sc[8h + 2g + l/16]) * (q - 32).
struct wt_q6_K {
    static constexpr int UNIT = 32, BLOCK = 256;
    static constexpr bool QUANT = true;
    __device__ static void unit(const uint8_t *row, int64_t u, float *w) {
        const uint8_t *b = row + 210 * (u >> 3);
        const int j = (int)(u & 7), h = j >> 2, g = j & 3;
        const float d = f16_to_f32(__ldg((const uint16_t *)(b + 208)));
        const int8_t *sc = (const int8_t *)(b + 192) + 8 * h + 2 * g;
        const float d0 = d * (float)__ldg(sc), d1 = d * (float)__ldg(sc + 1);
        const uint16_t *ql = (const uint16_t *)(b + 64 * h + 32 * (g & 1));
        const uint16_t *qh = (const uint16_t *)(b + 128 + 32 * h);
        const int lshift = g < 2 ? 0 : 4, hshift = 2 * g;
#pragma unroll
        for (int k = 0; k < 16; k++) {
            const uint16_t lo = __ldg(ql + k), hi = __ldg(qh + k);
            const int q0 = (((lo >> lshift) & 0xf) | ((hi >> hshift) & 3) << 4) - 32;
            const int q1 = (((lo >> (8 + lshift)) & 0xf) | ((hi >> (8 + hshift)) & 3) << 4) - 32;
            const float dd = k < 8 ? d0 : d1;
            w[2 * k] = dd * (float)q0;
            w[2 * k + 1] = dd * (float)q1;
        }
    }
    __device__ static float get(const uint8_t *, int64_t) { return 0.0f; } // no tail (QUANT)
};

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
