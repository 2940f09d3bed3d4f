/* tensor_types.h — weight storage types (GGML numbering, as in GGUF files): block layout,
 * dequantization and dot products with f32 activations. */
#ifndef REASON_TENSOR_TYPES_H
#define REASON_TENSOR_TYPES_H

#include "core.h"

enum tensor_type {
    TENSOR_F32 = 0,
    TENSOR_F16 = 1,
    TENSOR_Q4_0 = 2,
    TENSOR_Q4_1 = 3,
    TENSOR_Q5_0 = 6,
    TENSOR_Q5_1 = 7,
    TENSOR_Q8_0 = 8,
    TENSOR_Q8_1 = 9,
    TENSOR_Q2_K = 10,
    TENSOR_Q3_K = 11,
    TENSOR_Q4_K = 12,
    TENSOR_Q5_K = 13,
    TENSOR_Q6_K = 14,
    TENSOR_Q8_K = 15,
    TENSOR_BF16 = 30,
    TENSOR_TYPE_COUNT = 40,
};

typedef struct tensor_type_info {
    const char *name;     /* "Q4_K" */
    int32_t block_size;   /* elements per block */
    int32_t block_bytes;  /* bytes per block */
    bool supported;       /* dequantize/dot implemented */
} tensor_type_info;

/* NULL when the number is not a known GGML type. */
RS_INTERNAL const tensor_type_info *tensor_type_get(uint32_t type);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size or type unknown. */
RS_INTERNAL size_t tensor_row_bytes(uint32_t type, int64_t n);

/* dst[0..n) = the n values of a row (n a multiple of the block size). */
RS_INTERNAL void tensor_dequantize_row(uint32_t type, const void *row, float *dst, int64_t n);
/* sum_i row[i] * x[i]. */
RS_INTERNAL float tensor_dot_row(uint32_t type, const void *row, const float *x, int64_t n);

/* Half-precision conversions (exact, round-to-nearest-even on the way down). */
RS_INTERNAL float rs_f16_to_f32(uint16_t h);
RS_INTERNAL uint16_t rs_f32_to_f16(float f);
RS_INTERNAL float rs_bf16_to_f32(uint16_t h);
RS_INTERNAL uint16_t rs_f32_to_bf16(float f);

#endif
