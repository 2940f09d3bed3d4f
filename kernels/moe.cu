// moe.cu — mixture of experts: routing and the small kernels around the experts' products (CPU
// twins: cpu_moe_route, cpu_moe in src/cpu_moe.c). The products themselves are
// reason_cuda_matmul on each used expert's view, launched by backend_cuda.c.
//
// Math:   route    per token: the n_used largest logits (ties: lower id first), weights
//                  softmax(logits)_e (sums in double, as the CPU twin), renormalised over the
//                  selected when norm; with a shared expert, slot n_used = expert n_expert with
//                  weight sigmoid(shared[t])
//         gather   xe[i] = x[pairs[i] / n_slot]
//         act      g = silu(g)·u | clamped swiglu (gpt-oss) | gelu_tanh(g)·u
//         scatter  out[pairs[i] / n_slot] += weights[pairs[i]] · scale · ye[i]
// Launch: route — one warp per token (lane l holds experts l, l+32, …; n_expert <= 1024),
//         4 tokens per block; the picks are n_used warp arg-max reductions. gather/scatter — a
//         block per row, threads over columns; act — grid-stride.
// Last measured: H100, 2026-11-27 (gpu_bench): one decode token through a 35B-A3B MoE layer
//             (2048, 256x512 Q8_0, 8+1 used, routing sync) 270 µs — launch and sync bound.
#include "common.cuh"
#include "kernels.h"

namespace {

__global__ void moe_route_kernel(const float *__restrict__ logits, const float *__restrict__ shared,
                                 int32_t n_tok, int32_t n_expert, int32_t n_used, int32_t norm,
                                 int32_t *ids, float *weights) {
    const int32_t t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (t >= n_tok) // whole warps leave together
        return;
    const float *l = logits + (size_t)t * n_expert;
    const int32_t n_slot = n_used + (shared != nullptr);
    float mx = -INFINITY;
    for (int32_t e = lane; e < n_expert; e += 32)
        mx = fmaxf(mx, l[e]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    double total = 0.0;
    for (int32_t e = lane; e < n_expert; e += 32)
        total += exp((double)l[e] - mx);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        total += __shfl_xor_sync(0xffffffffu, total, o);
    uint32_t taken = 0; // bit m: expert lane + 32 m picked
    double picked = 0.0;
    float wsel = 0.0f; // lane j < n_used: the weight of pick j
    int32_t idsel = 0;
    for (int32_t j = 0; j < n_used; j++) {
        float bv = -INFINITY;
        int32_t bi = -1;
        for (int32_t e = lane, m = 0; e < n_expert; e += 32, m++)
            if (!(taken >> m & 1u) && (bi < 0 || l[e] > bv)) // ascending e: ties keep the lower
                bv = l[e], bi = e;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi)))
                bv = ov, bi = oi;
        }
        if (bi >= 0 && (bi & 31) == lane)
            taken |= 1u << (bi >> 5);
        const double p = exp((double)bv - mx) / total;
        picked += p;
        if (lane == j)
            wsel = (float)p, idsel = bi;
    }
    if (lane < n_used) {
        ids[(size_t)t * n_slot + lane] = idsel;
        weights[(size_t)t * n_slot + lane] = norm ? (float)(wsel / picked) : wsel;
    }
    if (shared && lane == 0) {
        ids[(size_t)t * n_slot + n_used] = n_expert;
        weights[(size_t)t * n_slot + n_used] = 1.0f / (1.0f + expf(-shared[t]));
    }
}

__global__ void moe_gather_kernel(const float *__restrict__ x, const int32_t *pairs,
                                  int32_t n_slot, int32_t dim, float *__restrict__ xe) {
    const int32_t i = blockIdx.x;
    const float *src = x + (size_t)(pairs[i] / n_slot) * dim;
    float *dst = xe + (size_t)i * dim;
    for (int32_t c = threadIdx.x; c < dim; c += blockDim.x)
        dst[c] = src[c];
}

__global__ void moe_act_kernel(float *g, const float *__restrict__ u, int64_t n, int32_t act,
                               float limit, float alpha) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float gv = g[i], uv = u[i];
        float r;
        if (act == 1) {
            const float gc = gv < limit ? gv : limit;
            const float uc = uv < -limit ? -limit : uv > limit ? limit : uv;
            r = gc / (1.0f + expf(-alpha * gc)) * (uc + 1.0f);
        } else if (act == 2) {
            const float c = 0.7978845608028654f;
            r = 0.5f * gv * (1.0f + tanhf(c * (gv + 0.044715f * gv * gv * gv))) * uv;
        } else {
            r = gv / (1.0f + expf(-gv)) * uv;
        }
        g[i] = r;
    }
}

__global__ void moe_scatter_kernel(const float *__restrict__ ye, const int32_t *pairs,
                                   const float *__restrict__ weights, float scale, int32_t n_slot,
                                   int32_t dim, float *out) {
    const int32_t i = blockIdx.x, pr = pairs[i];
    const float w = weights[pr] * scale;
    float *o = out + (size_t)(pr / n_slot) * dim;
    const float *y = ye + (size_t)i * dim;
    for (int32_t c = threadIdx.x; c < dim; c += blockDim.x)
        o[c] += w * y[c];
}

} // namespace

extern "C" int reason_cuda_moe_route(const float *logits, const float *shared, int32_t n_tok,
                                     int32_t n_expert, int32_t n_used, int32_t norm, int32_t *ids,
                                     float *weights, void *stream) {
    if (n_tok <= 0)
        return 0;
    if (n_expert <= 0 || n_expert > 1024 || n_used <= 0 || n_used > 32 || n_used > n_expert)
        return REASON_CUDA_UNSUPPORTED;
    const int per_block = 4;
    moe_route_kernel<<<(unsigned)((n_tok + per_block - 1) / per_block), 32 * per_block, 0,
                       rs_stream(stream)>>>(logits, shared, n_tok, n_expert, n_used, norm, ids,
                                            weights);
    RS_CUDA_LAUNCHED();
    return 0;
}

extern "C" int reason_cuda_moe_gather(const float *x, const int32_t *pairs, int32_t n,
                                      int32_t n_slot, int32_t dim, float *xe, void *stream) {
    if (n <= 0)
        return 0;
    if (n > 65535 * 16)
        return REASON_CUDA_UNSUPPORTED;
    moe_gather_kernel<<<(unsigned)n, 256, 0, rs_stream(stream)>>>(x, pairs, n_slot, dim, xe);
    RS_CUDA_LAUNCHED();
    return 0;
}

extern "C" int reason_cuda_moe_act(float *g, const float *u, int64_t n, int32_t act, float limit,
                                   float alpha, void *stream) {
    if (n <= 0)
        return 0;
    const int threads = 256;
    moe_act_kernel<<<rs_blocks(n, threads), threads, 0, rs_stream(stream)>>>(g, u, n, act, limit,
                                                                            alpha);
    RS_CUDA_LAUNCHED();
    return 0;
}

extern "C" int reason_cuda_moe_scatter(const float *ye, const int32_t *pairs,
                                       const float *weights, float scale, int32_t n,
                                       int32_t n_slot, int32_t dim, float *out, void *stream) {
    if (n <= 0)
        return 0;
    if (n > 65535 * 16)
        return REASON_CUDA_UNSUPPORTED;
    moe_scatter_kernel<<<(unsigned)n, 256, 0, rs_stream(stream)>>>(ye, pairs, weights, scale,
                                                                   n_slot, dim, out);
    RS_CUDA_LAUNCHED();
    return 0;
}
