// emu.h — a CPU emulator of the little CUDA the kernels of kernels/ use, so that their index
// math, masking, tiling and reductions can be checked on a machine without a GPU (run.sh).
// Every CUDA thread of a block is a coroutine; blocks run one after the other; __syncthreads
// and warp shuffles are barriers; mma.sync m16n8k16 is computed from the fragment layout that
// mma.cuh documents. It proves the kernels' logic, not the hardware's behaviour: timing, memory
// ordering beyond barriers, and the real fragment layout of the tensor cores are not tested.
// Never part of the library build (kernels/CMakeLists.txt globs kernels/*.cu only).
#ifndef REASON_EMU_H
#define REASON_EMU_H

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <math.h>
#include <mutex>
#include <stdint.h>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static /* one block runs at a time */
#define __align__(n) __attribute__((aligned(n)))

using std::max;
using std::min;

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3 {
    unsigned x, y, z;
};
struct float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) uint2 {
    uint32_t x, y;
};
struct alignas(16) uint4 {
    uint32_t x, y, z, w;
};
static inline float2 make_float2(float a, float b) { return {a, b}; }
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
static inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }
static inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return {a, b, c, d};
}

template <class T> static inline T __ldg(const T *p) { return *p; }

// ---- 16-bit floats -------------------------------------------------------------------------
struct __half {
    uint16_t x;
};
struct alignas(4) __half2 {
    __half x, y;
};
struct __nv_bfloat16 {
    uint16_t x;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
static inline float __half2float(__half h) {
    _Float16 f;
    memcpy(&f, &h.x, 2);
    return (float)f;
}
static inline __half __float2half_rn(float v) {
    _Float16 f = (_Float16)v;
    __half h;
    memcpy(&h.x, &f, 2);
    return h;
}
static inline __half __ushort_as_half(uint16_t u) { return {u}; }
static inline uint16_t __half_as_ushort(__half h) { return h.x; }
static inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
static inline __half2 __floats2half2_rn(float a, float b) {
    return {__float2half_rn(a), __float2half_rn(b)};
}
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return {(uint16_t)((u >> 16) | 0x40)};
    u += 0x7fffu + ((u >> 16) & 1u);
    return {(uint16_t)(u >> 16)};
}
static inline uint16_t __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return {__float2bfloat16_rn(a), __float2bfloat16_rn(b)};
}
static inline float __uint_as_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float __int_as_float(int32_t i) { return __uint_as_float((uint32_t)i); }
static inline float __int_as_float(uint32_t u) { return __uint_as_float(u); }
// PTX prmt (default mode): result byte i = byte (nibble i of s) & 7 of the pair {y:x}
static inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s) {
    const uint64_t xy = (uint64_t)y << 32 | x;
    uint32_t r = 0;
    for (int i = 0; i < 4; i++)
        r |= (uint32_t)((xy >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
    return r;
}
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

// ---- runtime ---------------------------------------------------------------------------------
typedef struct emu_stream *cudaStream_t;
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
};
enum cudaMemcpyKind {
    cudaMemcpyHostToHost,
    cudaMemcpyHostToDevice,
    cudaMemcpyDeviceToHost,
    cudaMemcpyDeviceToDevice
};
static inline cudaError_t cudaGetLastError() { return cudaSuccess; }
static inline const char *cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess ? "no error" : "emulated CUDA error";
}
static inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind,
                                          cudaStream_t) {
    memmove(d, s, n);
    return cudaSuccess;
}

// ---- threads, barriers, warps ------------------------------------------------------------------
// The CUDA threads of a block are coroutines (ucontext) of one OS thread, switched only at
// barriers: a thread that must wait yields to the scheduler, which resumes the threads round-robin.
void emu_yield();

struct emu_barrier {
    int expected = 0, count = 0;
    unsigned long gen = 0;
    void reset(int n) {
        expected = n;
        count = 0;
    }
    void wait() {
        if (++count >= expected) {
            count = 0;
            gen++;
            return;
        }
        const unsigned long g = gen;
        while (gen == g)
            emu_yield();
    }
    void drop() { // an exited thread: later barriers no longer wait for it
        expected--;
        if (count > 0 && count >= expected) {
            count = 0;
            gen++;
        }
    }
};

struct emu_warp {
    emu_barrier bar;
    uint64_t buf[32];
    uint32_t a[32][4], b[32][2];
};

struct emu_block {
    emu_barrier bar;
    std::vector<emu_warp> warps;
};

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
extern emu_block *emu_cur;

static inline void __syncthreads() { emu_cur->bar.wait(); }
static inline void __syncwarp(unsigned = 0xffffffffu) {
    emu_cur->warps[threadIdx.x >> 5].bar.wait();
}

template <class T> static inline T __shfl_xor_sync(unsigned, T v, int o) {
    emu_warp &w = emu_cur->warps[threadIdx.x >> 5];
    const int lane = threadIdx.x & 31;
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    w.buf[lane] = u;
    w.bar.wait();
    T r;
    memcpy(&r, &w.buf[lane ^ o], sizeof r);
    w.bar.wait();
    return r;
}

static inline int atomicMin(int *p, int v) {
    const int old = *p;
    *p = std::min(old, v);
    return old;
}
static inline int atomicMax(int *p, int v) {
    const int old = *p;
    *p = std::max(old, v);
    return old;
}

// Runs body once per thread of every block of the grid (1-D blocks, 3-D grids).
void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body);

// ---- tensor cores ----------------------------------------------------------------------------
#define RS_MMA_EMULATED 1
static inline float emu_h2f(uint16_t h, bool bf) {
    if (bf)
        return __uint_as_float((uint32_t)h << 16);
    return __half2float(__ushort_as_half(h));
}
template <bool BF>
static inline void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    emu_warp &w = emu_cur->warps[threadIdx.x >> 5];
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    for (int i = 0; i < 4; i++)
        w.a[lane][i] = a[i];
    w.b[lane][0] = b0;
    w.b[lane][1] = b1;
    w.bar.wait();
    float d[4];
    for (int e = 0; e < 4; e++) {
        const int row = g + 8 * (e >> 1), col = 2 * q + (e & 1);
        double s = c[e];
        for (int k = 0; k < 16; k++) {
            const uint32_t ar = w.a[(row % 8) * 4 + (k % 8) / 2][(row / 8) + 2 * (k / 8)];
            const uint32_t br = w.b[col * 4 + (k % 8) / 2][k / 8];
            const float av = emu_h2f((uint16_t)(ar >> (16 * (k % 2))), BF);
            const float bv = emu_h2f((uint16_t)(br >> (16 * (k % 2))), BF);
            s += (double)av * bv;
        }
        d[e] = (float)s;
    }
    w.bar.wait();
    for (int e = 0; e < 4; e++)
        c[e] = d[e];
}

#endif
