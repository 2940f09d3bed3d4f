// common.cuh — what every kernel file shares: the launch-error check, warp and block sums,
// 16-byte vector loads, and f16/bf16 <-> f32 conversion. Device code only; no kernels here.
#ifndef REASON_COMMON_CUH
#define REASON_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

// Launchers return 0 on success and a nonzero cudaError_t otherwise; they never print or exit
// (DESIGN §3: library code reports, the caller decides). The launch-time error is read at once;
// asynchronous faults surface at the backend's sync.
#define RS_CUDA_TRY(expr)                                                                          \
    do {                                                                                           \
        cudaError_t rs_err_ = (expr);                                                              \
        if (rs_err_ != cudaSuccess)                                                                \
            return (int)rs_err_;                                                                   \
    } while (0)
#define RS_CUDA_LAUNCHED() RS_CUDA_TRY(cudaGetLastError())

static inline cudaStream_t rs_stream(void *s) { return (cudaStream_t)s; }

static inline unsigned rs_blocks(int64_t n, int threads, unsigned cap = 65535u * 16u) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1)
        b = 1;
    return b > (int64_t)cap ? cap : (unsigned)b;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
// `red` is caller-provided shared memory of 32 floats.
__device__ __forceinline__ float block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warp = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); // red may still be read by a previous call
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    v = lane < n_warp ? red[lane] : 0.0f;
    return warp_sum(v);
}

// 16-byte loads through the read-only path; the pointer must be 16-byte aligned.
__device__ __forceinline__ float4 ld_f4(const float *p) { return __ldg((const float4 *)p); }
__device__ __forceinline__ uint4 ld_u4(const void *p) { return __ldg((const uint4 *)p); }

__device__ __forceinline__ float f16_to_f32(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}
__device__ __forceinline__ float bf16_to_f32(uint16_t h) {
    return __uint_as_float((uint32_t)h << 16);
}
__device__ __forceinline__ uint16_t f32_to_f16(float f) {
    return __half_as_ushort(__float2half_rn(f));
}
__device__ __forceinline__ uint16_t f32_to_bf16(float f) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}
// The two halves of a 32-bit word holding two packed 16-bit values, low first.
__device__ __forceinline__ float2 f16x2_to_f32(uint32_t w) {
    return __half22float2(*(const __half2 *)&w);
}
__device__ __forceinline__ float2 bf16x2_to_f32(uint32_t w) {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline bool rs_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

#endif
