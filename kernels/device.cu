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

extern "C" void *reason_cuda_malloc_managed(size_t bytes) {
    void *p = nullptr;
    if (cudaMallocManaged(&p, bytes ? bytes : 1, cudaMemAttachGlobal) != cudaSuccess) {
        cudaGetLastError();
        return nullptr;
    }
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

extern "C" int reason_cuda_memset(void *dst, int value, size_t bytes) {
    return (int)cudaMemset(dst, value, bytes);
}

extern "C" void *reason_cuda_host_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess)
        return NULL;
    return p;
}

extern "C" void reason_cuda_host_free(void *p) {
    if (p)
        cudaFreeHost(p);
}

extern "C" int reason_cuda_upload_async(void *dst, const void *src, size_t bytes, void *stream) {
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, (cudaStream_t)stream);
}

extern "C" int reason_cuda_download_async(void *dst, const void *src, size_t bytes, void *stream) {
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, (cudaStream_t)stream);
}

extern "C" int reason_cuda_stream_sync(void *stream) {
    return (int)cudaStreamSynchronize((cudaStream_t)stream);
}

extern "C" int reason_cuda_last_error(void) { return (int)cudaGetLastError(); }

extern "C" int reason_cuda_sm_count(void) {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        return 0;
    return n;
}
