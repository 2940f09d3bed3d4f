/* kernels.h — extern "C" launchers of the CUDA kernels, called by backend_cuda.c and the tests.
 * C callers need no CUDA header: streams travel as void * (a cudaStream_t; NULL is the default
 * stream), every array argument is device memory. Launchers return 0 when the work was queued,
 * a cudaError_t value when the launch failed, or REASON_CUDA_UNSUPPORTED for a type or shape
 * the kernel lacks; faults inside kernels surface at reason_cuda_sync. Nothing here prints or
 * exits. */
#ifndef REASON_KERNELS_H
#define REASON_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REASON_CUDA_UNSUPPORTED (-1)

/* --- device.cu: discovery and the little memory management the tests and the backend need --- */
/* Number of CUDA devices visible, or 0 when the driver or a device is missing. */
int reason_cuda_device_count(void);
void *reason_cuda_malloc(size_t bytes); /* NULL on failure */
void reason_cuda_free(void *p);
int reason_cuda_upload(void *dst, const void *src, size_t bytes);   /* host -> device */
int reason_cuda_download(void *dst, const void *src, size_t bytes); /* device -> host */
int reason_cuda_sync(void);                                         /* the whole device */
const char *reason_cuda_error_string(int err);

/* --- elementwise.cu (flat f32 vectors; n any size) --- */
int reason_cuda_add(float *x, const float *y, int64_t n, void *stream);           /* x += y */
int reason_cuda_swiglu(const float *gate, const float *up, float *out, int64_t n, /* silu*up */
                       void *stream);
int reason_cuda_mul_sigmoid(float *x, const float *gate, int64_t n, void *stream);

/* --- norm_rope.cu --- */
/* y (n_rows, dim) = x / rms(x) * w (w NULL: no scale); y may equal x. */
int reason_cuda_rmsnorm(const float *x, const float *w, float *y, int32_t n_rows, int32_t dim,
                        float eps, void *stream);
/* x (n_tok, n_head, head_dim) rotated in place; pos (n_tok); freq_div (rot_dim/2) or NULL;
 * neox: 0 pairs (2i, 2i+1), 1 pairs (i, i + rot_dim/2). */
int reason_cuda_rope(float *x, int32_t n_tok, int32_t n_head, const int32_t *pos, int32_t head_dim,
                     int32_t rot_dim, int32_t neox, float theta, float pos_scale,
                     const float *freq_div, void *stream);

/* --- matmul.cu --- */
/* y (n_tok, rows) = x (n_tok, cols) · Wᵀ (+ bias (rows) when not NULL); W rows row_bytes apart
 * in `type` (GGML numbering, enum tensor_type). */
int reason_cuda_matmul(int32_t type, const void *w, int64_t cols, int64_t rows, size_t row_bytes,
                       const float *bias, const float *x, float *y, int32_t n_tok, void *stream);
/* Nonzero when reason_cuda_matmul has a kernel for type. */
int reason_cuda_matmul_supported(int32_t type);

#ifdef __cplusplus
}
#endif

#endif
