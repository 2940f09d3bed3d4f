// norm_rope.cu — RMSNorm and rotary position encoding (CPU twins: cpu_rmsnorm, cpu_rope in
// backend_cpu.c).
//
// RMSNorm  y[r, i] = x[r, i] / sqrt(mean_i(x[r, :]^2) + eps) * (w ? w[i] : 1)
//   Shapes: x, y (n_rows, dim) f32, y may equal x; w (dim) or NULL. The per-head norms of
//   qwen3/qwen35 (q_norm, k_norm) are the same call with n_rows = n_tok * n_head, dim = head_dim.
//   Launch: dim <= 1024: one warp per row, 4 rows per 128-thread block (per-head norms are many
//   short rows); otherwise one 256-thread block per row. Sums in f32 (the CPU twin uses double).
// RoPE     for each token t, head h, pair i < rot_dim/2:
//            inv = theta^(-2i/rot_dim) / (freq_div ? freq_div[i] : 1),  a = pos[t]*pos_scale*inv
//            (x_a, x_b) <- m (x_a cos a - x_b sin a,  x_a sin a + x_b cos a),  m = mscale or 1
//          with (a, b) = (2i, 2i+1) for ROPE_NORMAL and (i, i + rot_dim/2) for ROPE_NEOX; the
//          dims at and past rot_dim are untouched.
//   Shapes: x (n_tok, n_head, head_dim) f32 in place; pos (n_tok) int32 and freq_div
//   (rot_dim/2) f32 or NULL, both in device memory.
//   Launch: one thread per (t, h, i), 256 per block; angles with full-precision sincosf
//   (positions reach 10^5, fast intrinsics lose the phase).
// Last measured: H100, 2026-11-27 (gpu_bench): rmsnorm 1024x4096 62% of the copy bandwidth,
//             one row 12 µs (launch-bound); rope 512x32x128 33%.
#include "common.cuh"
#include "kernels.h"

namespace {

__global__ void rmsnorm_warp_kernel(const float *x, const float *w, float *y, int32_t n_rows,
                                    int32_t dim, float eps) {
    const int32_t row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n_rows)
        return;
    const float *xr = x + (size_t)row * dim;
    float *yr = y + (size_t)row * dim;
    float ss = 0.0f;
    for (int32_t i = lane; i < dim; i += 32)
        ss += xr[i] * xr[i];
    ss = warp_sum(ss);
    const float scale = rsqrtf(ss / (float)dim + eps);
    for (int32_t i = lane; i < dim; i += 32)
        yr[i] = xr[i] * scale * (w ? w[i] : 1.0f);
}

__global__ void rmsnorm_block_kernel(const float *x, const float *w, float *y, int32_t dim,
                                     float eps) {
    __shared__ float red[32];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int32_t i = threadIdx.x; i < dim; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = block_sum(ss, red);
    const float scale = rsqrtf(ss / (float)dim + eps);
    for (int32_t i = threadIdx.x; i < dim; i += blockDim.x)
        yr[i] = xr[i] * scale * (w ? w[i] : 1.0f);
}

template <bool NEOX>
__global__ void rope_kernel(float *x, int32_t n_tok, int32_t n_head, const int32_t *pos,
                            int32_t head_dim, int32_t rot_dim, float theta, float pos_scale,
                            float mscale, const float *freq_div) {
    const int32_t half = rot_dim / 2;
    const int64_t n = (int64_t)n_tok * n_head * half;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int32_t i = (int32_t)(k % half);
        const int64_t th = k / half; // t * n_head + h
        const int32_t t = (int32_t)(th / n_head);
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)rot_dim);
        if (freq_div)
            inv /= freq_div[i];
        const float ang = (float)pos[t] * pos_scale * inv;
        float s, c;
        sincosf(ang, &s, &c);
        s *= mscale;
        c *= mscale;
        float *v = x + th * head_dim;
        const int32_t a = NEOX ? i : 2 * i, b = NEOX ? i + half : 2 * i + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
    }
}

} // namespace

extern "C" int reason_cuda_rmsnorm(const float *x, const float *w, float *y, int32_t n_rows,
                                   int32_t dim, float eps, void *stream) {
    if (n_rows <= 0 || dim <= 0)
        return 0;
    if (dim <= 1024) {
        rmsnorm_warp_kernel<<<(n_rows + 3) / 4, 128, 0, rs_stream(stream)>>>(x, w, y, n_rows, dim,
                                                                             eps);
    } else {
        rmsnorm_block_kernel<<<n_rows, 256, 0, rs_stream(stream)>>>(x, w, y, dim, eps);
    }
    RS_CUDA_LAUNCHED();
    return 0;
}

extern "C" int reason_cuda_rope(float *x, int32_t n_tok, int32_t n_head, const int32_t *pos,
                                int32_t head_dim, int32_t rot_dim, int32_t neox, float theta,
                                float pos_scale, float mscale, const float *freq_div,
                                void *stream) {
    const int64_t n = (int64_t)n_tok * n_head * (rot_dim / 2);
    if (n <= 0)
        return 0;
    if (rot_dim > head_dim || rot_dim % 2)
        return (int)cudaErrorInvalidValue;
    const unsigned blocks = rs_blocks(n, 256);
    if (mscale == 0.0f)
        mscale = 1.0f;
    if (neox)
        rope_kernel<true><<<blocks, 256, 0, rs_stream(stream)>>>(
            x, n_tok, n_head, pos, head_dim, rot_dim, theta, pos_scale, mscale, freq_div);
    else
        rope_kernel<false><<<blocks, 256, 0, rs_stream(stream)>>>(
            x, n_tok, n_head, pos, head_dim, rot_dim, theta, pos_scale, mscale, freq_div);
    RS_CUDA_LAUNCHED();
    return 0;
}
