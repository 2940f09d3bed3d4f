/* kernels.h — extern "C" launchers of the CUDA kernels, called by backend_cuda.c. */
#ifndef REASON_KERNELS_H
#define REASON_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices visible, or 0 when the driver or a device is missing. */
int reason_cuda_device_count(void);

#ifdef __cplusplus
}
#endif

#endif
