// embed.cu — row lookups: the embedding (get_rows of a weight table in its file type) and
// gather_rows of f32 activations (CPU twins: cpu_get_rows, cpu_gather_rows in backend_cpu.c).
// Checked on an H100 (2026-11-27): tests/test_backend_ops.c, every case vs the CPU backend, passes.
//
// get_rows     out[i, :] = dequantize(table row ids[i]), every type of reason_cuda_matmul, with
//              the GEMV's decoders (dequant.cuh), so values match tensor_dequantize_row bit for
//              bit. Shapes: table (n_rows, cols) rows row_bytes apart; ids (n) int32; out (n,
//              cols) f32. Launch: grid (ceil(units / 128), n), 128 threads; a thread dequantizes
//              one 32-element unit (quantized types) or one element (F32/F16/BF16).
// gather_rows  dst[i, :] = src[idx[i], :], f32 rows of dim. Launch: grid (ceil(dim / 256), n).
// Memory bound and small (one row per token); no measurement planned beyond the table's row.
// Last measured: not timed (gpu_bench has no row).
#include "common.cuh"
#include "dequant.cuh"
#include "kernels.h"

namespace {

template <class W>
__global__ void get_rows_kernel(const uint8_t *__restrict__ table, int64_t cols, size_t row_bytes,
                                const int32_t *__restrict__ ids, float *__restrict__ out) {
    const int32_t i = blockIdx.y;
    const uint8_t *row = table + (size_t)ids[i] * row_bytes;
    float *o = out + (size_t)i * cols;
    const int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (W::QUANT) {
        if (u >= cols / 32)
            return;
        float w[32];
        W::unit(row, u, w);
#pragma unroll
        for (int k = 0; k < 32; k++)
            o[32 * u + k] = w[k];
    } else {
        if (u < cols)
            o[u] = W::get(row, u);
    }
}

template <class W>
int launch_get_rows(const void *table, int64_t cols, size_t row_bytes, const int32_t *ids,
                    int32_t n, float *out, cudaStream_t s) {
    if (cols % W::BLOCK || n > 65535)
        return REASON_CUDA_UNSUPPORTED;
    const int64_t units = W::QUANT ? cols / 32 : cols;
    dim3 grid((unsigned)((units + 127) / 128), (unsigned)n);
    get_rows_kernel<W><<<grid, 128, 0, s>>>((const uint8_t *)table, cols, row_bytes, ids, out);
    RS_CUDA_LAUNCHED();
    return 0;
}

__global__ void gather_rows_kernel(const float *__restrict__ src, const int32_t *__restrict__ idx,
                                   int32_t dim, float *__restrict__ dst) {
    const int32_t i = blockIdx.y;
    const int32_t j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < dim)
        dst[(size_t)i * dim + j] = src[(size_t)idx[i] * dim + j];
}

} // namespace

extern "C" int reason_cuda_get_rows(int32_t type, const void *table, int64_t cols, size_t row_bytes,
                                    const int32_t *ids, int32_t n, float *out, void *stream) {
    if (n <= 0 || cols <= 0)
        return 0;
    cudaStream_t s = rs_stream(stream);
    switch (type) {
    case 0:
        return launch_get_rows<wt_f32>(table, cols, row_bytes, ids, n, out, s);
    case 1:
        return launch_get_rows<wt_f16>(table, cols, row_bytes, ids, n, out, s);
    case 30:
        return launch_get_rows<wt_bf16>(table, cols, row_bytes, ids, n, out, s);
    case 8:
        return launch_get_rows<wt_q8_0>(table, cols, row_bytes, ids, n, out, s);
    case 2:
        return launch_get_rows<wt_q4<false>>(table, cols, row_bytes, ids, n, out, s);
    case 3:
        return launch_get_rows<wt_q4<true>>(table, cols, row_bytes, ids, n, out, s);
    case 12:
        return launch_get_rows<wt_q4_K>(table, cols, row_bytes, ids, n, out, s);
    case 14:
        return launch_get_rows<wt_q6_K>(table, cols, row_bytes, ids, n, out, s);
    default:
        return REASON_CUDA_UNSUPPORTED;
    }
}

extern "C" int reason_cuda_gather_rows(const float *src, const int32_t *idx, int32_t n, int32_t dim,
                                       float *dst, void *stream) {
    if (n <= 0 || dim <= 0)
        return 0;
    if (n > 65535)
        return REASON_CUDA_UNSUPPORTED;
    dim3 grid((unsigned)((dim + 255) / 256), (unsigned)n);
    gather_rows_kernel<<<grid, 256, 0, rs_stream(stream)>>>(src, idx, dim, dst);
    RS_CUDA_LAUNCHED();
    return 0;
}
