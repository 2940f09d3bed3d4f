// mma.cuh — the tensor-core instruction the GEMM and the prefill attention use, and packing of
// two floats into one operand register. Fragment layout of mma.sync.m16n8k16 (PTX ISA, per lane
// l: g = l / 4, c = l % 4; each 32-bit register holds two consecutive-k 16-bit values, low first):
//   A (16×16, row-major): a[0] = A[g][2c..2c+1], a[1] = A[g+8][2c..], a[2] = A[g][2c+8..],
//                         a[3] = A[g+8][2c+8..]
//   B (16×8, "col"):      b0 = B[2c..2c+1][g], b1 = B[2c+8..2c+9][g]
//   C, D (16×8 f32):      c[0..1] = C[g][2c..2c+1], c[2..3] = C[g+8][2c..2c+1]
// kernels/emu/ defines RS_MMA_EMULATED and its own mma16816 to run the kernels on a CPU.
#ifndef REASON_MMA_CUH
#define REASON_MMA_CUH

#include "common.cuh"

namespace {

// Two floats as one 32-bit word of f16 (or bf16) values, a in the low half.
template <bool BF> __device__ __forceinline__ uint32_t pack2(float a, float b) {
    if (BF) {
        __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *(uint32_t *)&h;
    } else {
        __half2 h = __floats2half2_rn(a, b);
        return *(uint32_t *)&h;
    }
}

#ifndef RS_MMA_EMULATED
// c (16×8 f32) += a (16×16) · b (16×8), f16 or bf16 operands.
template <bool BF>
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    if (BF)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

} // namespace

#endif
