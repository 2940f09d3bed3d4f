/* backend_cuda.h — the CUDA backend (backend_cuda.c, kernels in kernels/): opt-in through
 * REASON_BACKEND=cuda (context.c). */
#ifndef REASON_BACKEND_CUDA_H
#define REASON_BACKEND_CUDA_H

#include "backend.h"

/* Creates the CUDA backend on device 0 and uploads every weight of model into one device
 * allocation (model NULL: no weights, for the op tests, which then pass device pointers in
 * rs_tensor.data). REASON_ERR_UNSUPPORTED when the library was built without CUDA or the model
 * needs an op or a weight type the CUDA backend lacks; REASON_ERR_DEVICE when no device is
 * usable. Environment: REASON_CUDA_SYNC=1 synchronises after every op so that an asynchronous
 * fault is reported with the op that caused it; REASON_CUDA_ATTN=decode|prefill forces one
 * attention kernel (tests). */
RS_INTERNAL reason_status backend_cuda_create(const reason_model *model, int32_t max_positions,
                                              backend **out);

#endif
