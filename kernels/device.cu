// device.cu — device discovery. No kernels yet: the CUDA backend (issue "CUDA backend I") adds
// matmul.cu, attention.cu, norm_rope.cu, elementwise.cu and sample.cu beside it.
#include "kernels.h"

#include <cuda_runtime.h>

extern "C" int reason_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
}
