// sample.cu — on-device helpers of sampling: log-softmax (log-probabilities and probabilities),
// top-k and the top-p (nucleus) threshold. CPU twin: the reference loops in
// tests/test_backend_ops.c (the sampler itself, src/sampler.c, runs on the host over the logits
// row). Checked on an H100 (2026-11-27): tests/test_backend_ops.c, every case vs the CPU backend, passes.
//
// log_softmax  z = x / T; logp[i] = z[i] - max(z) - log Σ_j e^(z[j] - max(z)); probs = e^logp.
//              Shapes: x, logp, probs (n_rows, n) f32. Launch: one 256-thread block per row,
//              three passes over the row (max, sum, write), all in f32 with expf/logf.
// top_k        the k largest of each row, descending, ties by lower index: k passes of a block
//              arg-max, each over the elements ordered strictly after the previous pick
//              (value descending, index ascending). Shapes: x (n_rows, n); idx, val (n_rows, k).
//              Launch: one 256-thread block per row; O(k · n) reads, fine for the k <= 40 of
//              sampling and the top log-probs of streaming (n = 150K, k = 20: ~3 M reads).
// top_p        nucleus cut of probabilities (e.g. log_softmax's probs): the largest threshold T
//              with Σ_{x >= T} x >= p, found by bisection on the bits of T (non-negative floats
//              order as their bit patterns): 31 block sums over the row; count = #(x >= T).
//              Shapes: probs (n_rows, n); thresh, count (n_rows). Launch: one 256-thread block per
//              row. Ties at T are all kept (count may exceed the minimal set by the tied ones).
// Next:        a radix-select top-k (one or two passes) and fusing temperature, top-p and the
//              draw into the same block, so that decode moves only the sampled token to the host.
// Last measured: H100, 2026-11-27 (gpu_bench, 151936 columns): log_softmax 297 µs for 1 row (one
//             block: far too slow), 709 µs for 64; top_k (k=40) 4.7 ms; top_p 3.0 ms. Unused
//             by the backend so far (the sampler runs on the host).
#include "common.cuh"
#include "kernels.h"

#include <math.h>

namespace {

constexpr int THREADS = 256;

__device__ float block_max(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? red[lane] : -INFINITY;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__global__ void log_softmax_kernel(const float *__restrict__ x, int32_t n, float inv_t,
                                   float *__restrict__ logp, float *__restrict__ probs) {
    __shared__ float red[32];
    const float *xr = x + (size_t)blockIdx.x * n;
    float mx = -INFINITY;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x)
        mx = fmaxf(mx, xr[i] * inv_t);
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x)
        sum += expf(xr[i] * inv_t - mx);
    sum = block_sum(sum, red);
    const float lse = mx + logf(sum);
    float *lr = logp + (size_t)blockIdx.x * n;
    float *pr = probs ? probs + (size_t)blockIdx.x * n : nullptr;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float lp = xr[i] * inv_t - lse;
        lr[i] = lp;
        if (pr)
            pr[i] = expf(lp);
    }
}

// (v, i) comes before (w, j) in the top-k order.
__device__ __forceinline__ bool before(float v, int32_t i, float w, int32_t j) {
    return v > w || (v == w && i < j);
}

__global__ void top_k_kernel(const float *__restrict__ x, int32_t n, int32_t k,
                             int32_t *__restrict__ idx, float *__restrict__ val) {
    __shared__ float s_v[32];
    __shared__ int32_t s_i[32];
    const float *xr = x + (size_t)blockIdx.x * n;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float pv = INFINITY; // the previous pick; +inf, -1 before the first
    int32_t pi = -1;
    for (int32_t r = 0; r < k; r++) {
        float bv = -INFINITY;
        int32_t bi = -1;
        for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
            const float v = xr[i];
            if (v != v)
                continue; // NaN never ranks
            if (pi >= 0 && !before(pv, pi, v, i))
                continue; // already picked
            if (bi < 0 || before(v, i, bv, bi)) {
                bv = v;
                bi = i;
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (oi >= 0 && (bi < 0 || before(ov, oi, bv, bi))) {
                bv = ov;
                bi = oi;
            }
        }
        __syncthreads(); // s_v, s_i of the previous round are read
        if (lane == 0) {
            s_v[warp] = bv;
            s_i[warp] = bi;
        }
        __syncthreads();
        bv = -INFINITY;
        bi = -1;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++)
            if (s_i[w] >= 0 && (bi < 0 || before(s_v[w], s_i[w], bv, bi))) {
                bv = s_v[w];
                bi = s_i[w];
            }
        if (threadIdx.x == 0) {
            idx[(size_t)blockIdx.x * k + r] = bi;
            val[(size_t)blockIdx.x * k + r] = bi >= 0 ? bv : -INFINITY;
        }
        if (bi < 0) { // nothing left (k > n): the remaining outputs are (-1, -inf)
            for (int32_t rr = r + 1 + (int32_t)threadIdx.x; rr < k; rr += blockDim.x) {
                idx[(size_t)blockIdx.x * k + rr] = -1;
                val[(size_t)blockIdx.x * k + rr] = -INFINITY;
            }
            return; // bi comes from shared memory: the whole block leaves together
        }
        pv = bv;
        pi = bi;
    }
}

__global__ void top_p_kernel(const float *__restrict__ probs, int32_t n, float p,
                             float *__restrict__ thresh, int32_t *__restrict__ count) {
    __shared__ float red[32];
    const float *xr = probs + (size_t)blockIdx.x * n;
    uint32_t lo = 0u, hi = 0x7f800000u; // mass(lo) >= p is the invariant (T = +0: everything)
    while (hi - lo > 1u) {
        const uint32_t mid = lo + (hi - lo) / 2;
        const float t = __uint_as_float(mid);
        float m = 0.0f;
        for (int32_t i = threadIdx.x; i < n; i += blockDim.x)
            m += xr[i] >= t ? xr[i] : 0.0f;
        m = block_sum(m, red);
        if (m >= p)
            lo = mid;
        else
            hi = mid;
    }
    const float t = __uint_as_float(lo);
    float c = 0.0f;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x)
        c += xr[i] >= t ? 1.0f : 0.0f;
    c = block_sum(c, red);
    if (threadIdx.x == 0) {
        thresh[blockIdx.x] = t;
        count[blockIdx.x] = (int32_t)c;
    }
}

} // namespace

extern "C" int reason_cuda_top_p(const float *probs, int32_t n_rows, int32_t n, float p,
                                 float *thresh, int32_t *count, void *stream) {
    if (n_rows <= 0 || n <= 0)
        return 0;
    if (!(p > 0.0f && p <= 1.0f) || n > (1 << 24))
        return (int)cudaErrorInvalidValue;
    top_p_kernel<<<(unsigned)n_rows, THREADS, 0, rs_stream(stream)>>>(probs, n, p, thresh, count);
    RS_CUDA_LAUNCHED();
    return 0;
}

extern "C" int reason_cuda_log_softmax(const float *x, int32_t n_rows, int32_t n, float temperature,
                                       float *logp, float *probs, void *stream) {
    if (n_rows <= 0 || n <= 0)
        return 0;
    if (!(temperature > 0.0f))
        return (int)cudaErrorInvalidValue;
    log_softmax_kernel<<<(unsigned)n_rows, THREADS, 0, rs_stream(stream)>>>(
        x, n, 1.0f / temperature, logp, probs);
    RS_CUDA_LAUNCHED();
    return 0;
}

extern "C" int reason_cuda_top_k(const float *x, int32_t n_rows, int32_t n, int32_t k, int32_t *idx,
                                 float *val, void *stream) {
    if (n_rows <= 0 || k <= 0)
        return 0;
    if (k > 1024 || n < 0)
        return REASON_CUDA_UNSUPPORTED;
    top_k_kernel<<<(unsigned)n_rows, THREADS, 0, rs_stream(stream)>>>(x, n, k, idx, val);
    RS_CUDA_LAUNCHED();
    return 0;
}
