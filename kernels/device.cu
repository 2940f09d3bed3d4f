// device.cu — device discovery and the thin memory helpers C callers (tests, backend_cuda.c)
// use instead of including CUDA headers. No kernels.
#include "kernels.h"

#include <cuda_runtime.h>

extern "C" int reason_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess)
        return 0;
    return n;
}

extern "C" void *reason_cuda_malloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess)
        return NULL;
    return p;
}

extern "C" void reason_cuda_free(void *p) {
    if (p)
        cudaFree(p);
}

extern "C" int reason_cuda_upload(void *dst, const void *src, size_t bytes) {
    return (int)cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
}

extern "C" int reason_cuda_download(void *dst, const void *src, size_t bytes) {
    return (int)cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
}

extern "C" int reason_cuda_sync(void) { return (int)cudaDeviceSynchronize(); }

extern "C" const char *reason_cuda_error_string(int err) {
    if (err == REASON_CUDA_UNSUPPORTED)
        return "unsupported by the CUDA kernels";
    return cudaGetErrorString((cudaError_t)err);
}
