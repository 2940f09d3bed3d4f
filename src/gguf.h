/* gguf.h — the GGUF container (v2, v3): metadata key/values and the tensor table, validated
 * against the file size before anything is used. Tensor data is pointed to inside the mapping. */
#ifndef REASON_GGUF_H
#define REASON_GGUF_H

#include "core.h"
#include "mapped_file.h"

/* GGUF metadata value types (numbering of the format). */
enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor {
    const char *name;          /* NUL-terminated copy */
    uint32_t type;             /* enum tensor_type (tensor_types.h) */
    int32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint64_t offset;           /* absolute offset of the data in the file */
    size_t nbytes;
    const void *data;          /* inside the mapping */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and fully validates a GGUF file: magic, version, every count, string length, array
 * length, tensor dims, type, alignment and data range. Errors name the byte offset and the key or
 * tensor involved. Unknown tensor types are REASON_ERR_UNSUPPORTED naming the tensor. */
RS_INTERNAL reason_status gguf_open(const char *path, gguf_file **out);
/* The same over a buffer the caller keeps alive (used by tests and fuzzers). */
RS_INTERNAL reason_status gguf_open_memory(const void *data, size_t size, const char *label,
                                           gguf_file **out);
RS_INTERNAL void gguf_close(gguf_file *file);

RS_INTERNAL uint32_t gguf_version(const gguf_file *file);
RS_INTERNAL const char *gguf_path(const gguf_file *file);

/* Metadata. Index lookups return -1 when the key is absent. */
RS_INTERNAL int64_t gguf_n_keys(const gguf_file *file);
RS_INTERNAL int64_t gguf_find_key(const gguf_file *file, const char *key);
RS_INTERNAL const char *gguf_key_name(const gguf_file *file, int64_t index);
RS_INTERNAL uint32_t gguf_key_type(const gguf_file *file, int64_t index); /* enum gguf_type */

/* Typed getters: false when absent or of an incompatible type. Integer getters accept any
 * integer type whose value fits; gguf_get_f32 accepts float32/float64 and integers. */
RS_INTERNAL bool gguf_get_u32(const gguf_file *file, const char *key, uint32_t *out);
RS_INTERNAL bool gguf_get_i64(const gguf_file *file, const char *key, int64_t *out);
RS_INTERNAL bool gguf_get_f32(const gguf_file *file, const char *key, float *out);
RS_INTERNAL bool gguf_get_bool(const gguf_file *file, const char *key, bool *out);
/* Not NUL-terminated in the file: (pointer into the mapping, length). */
RS_INTERNAL bool gguf_get_str(const gguf_file *file, const char *key, const char **str, size_t *len);

/* Arrays: element type and count; numeric elements are contiguous little-endian at *data. */
RS_INTERNAL bool gguf_get_arr(const gguf_file *file, const char *key, uint32_t *elem_type,
                              uint64_t *n, const void **data);
/* The i-th string of a string array (O(1): offsets are indexed at open). */
RS_INTERNAL bool gguf_get_arr_str(const gguf_file *file, const char *key, uint64_t i,
                                  const char **str, size_t *len);

/* Tensors. */
RS_INTERNAL int64_t gguf_n_tensors(const gguf_file *file);
RS_INTERNAL const gguf_tensor *gguf_tensor_at(const gguf_file *file, int64_t index);
RS_INTERNAL const gguf_tensor *gguf_find_tensor(const gguf_file *file, const char *name);

#endif
