/* safetensors.h — the Hugging Face safetensors container: one file's JSON header and tensor table,
 * validated against the file size before anything is used, and a model's set of files (one
 * model.safetensors, or shards listed by model.safetensors.index.json). Tensor data is pointed to
 * inside the mapping. */
#ifndef REASON_SAFETENSORS_H
#define REASON_SAFETENSORS_H

#include "core.h"

#define ST_MAX_DIMS 8

/* Element types of the format. Only F32, F16 and BF16 can be computed with; the others parse (so
 * that a file holding, say, an I32 quantization table still opens) and are refused when used. */
enum st_dtype {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E4M3,
    ST_F8_E5M2,
    ST_U16,
    ST_I16,
    ST_F16,
    ST_BF16,
    ST_U32,
    ST_I32,
    ST_F32,
    ST_U64,
    ST_I64,
    ST_F64,
    ST_DTYPE_COUNT
};

typedef struct st_tensor {
    const char *name;           /* NUL-terminated, owned by the file */
    const char *file;           /* path (or label) of the file that holds it, for messages */
    int32_t dtype;              /* enum st_dtype */
    int32_t n_dims;             /* 0 (a scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS]; /* row-major: shape[n_dims - 1] is contiguous */
    uint64_t offset;            /* absolute offset of the data in the file */
    size_t nbytes;
    const void *data; /* inside the mapping; NULL when nbytes == 0 */
} st_tensor;

typedef struct st_file st_file;

/* Opens and validates one .safetensors file: the 8-byte little-endian header length against the
 * file size, the header JSON (errors give its line and column), "__metadata__" (an object of
 * strings), and per tensor a known dtype (else REASON_ERR_UNSUPPORTED naming tensor and dtype), a
 * shape of non-negative integers and data_offsets [begin, end] inside the data section with
 * end - begin == elements × element size (overflow-checked); no two tensors may overlap (gaps
 * and any order are allowed). */
RS_INTERNAL reason_status st_open(const char *path, st_file **out);
/* The same over a buffer the caller keeps alive (tests, fuzzers). */
RS_INTERNAL reason_status st_open_memory(const void *data, size_t size, const char *label,
                                         st_file **out);
RS_INTERNAL void st_close(st_file *file);

RS_INTERNAL const char *st_path(const st_file *file);
RS_INTERNAL int64_t st_n_tensors(const st_file *file);
RS_INTERNAL const st_tensor *st_tensor_at(const st_file *file, int64_t index); /* sorted by name */
RS_INTERNAL const st_tensor *st_find_tensor(const st_file *file, const char *name);
/* A "__metadata__" string, or NULL. */
RS_INTERNAL const char *st_metadata(const st_file *file, const char *key);

/* "F32", "BF16", ...; elements' size in bytes. */
RS_INTERNAL const char *st_dtype_name(int32_t dtype);
RS_INTERNAL size_t st_dtype_size(int32_t dtype);
RS_INTERNAL int64_t st_numel(const st_tensor *t);

/* A model's weights: dir/model.safetensors, or the shards dir/model.safetensors.index.json names
 * in its "weight_map" (each shard opened once; a missing shard is REASON_ERR_IO, a shard that
 * lacks a tensor the index gives it REASON_ERR_FORMAT, a shard name with '/' or "." / ".." is
 * refused). Only the tensors the index names are visible in a sharded set. */
typedef struct st_set st_set;

RS_INTERNAL reason_status st_set_open_dir(const char *dir, st_set **out);
RS_INTERNAL reason_status st_set_open_index(const char *index_path, st_set **out);
RS_INTERNAL void st_set_close(st_set *set);

RS_INTERNAL int64_t st_set_n_tensors(const st_set *set);
RS_INTERNAL const st_tensor *st_set_tensor_at(const st_set *set, int64_t index); /* by name */
RS_INTERNAL const st_tensor *st_set_find(const st_set *set, const char *name);
/* The directory or index path the set was opened from, for messages. */
RS_INTERNAL const char *st_set_path(const st_set *set);

#endif
