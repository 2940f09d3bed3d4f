/* gguf_writer.h — a minimal GGUF v3 writer for tests that build model files at run time from
 * the committed Hugging Face fixtures (the converters' transformations applied in C, no binary
 * data committed for them). Keys named in gguf_omit_key are left out (missing-metadata tests). */
#ifndef REASON_GGUF_WRITER_H
#define REASON_GGUF_WRITER_H

#include "test_util.h"

#include "safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STR = 8, GGUF_ARR = 9 };
enum { T_F32 = 0, T_BF16 = 30 };

static const char *gguf_omit_key; /* a metadata key the kv_* writers leave out, or NULL */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static inline void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static inline void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static inline void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static inline void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

typedef struct {
    buf kv;
    uint64_t n_kv;
    buf info;
    buf data;
    uint64_t n_tensors;
} gguf_out;


static inline void kv_u32(gguf_out *g, const char *key, uint32_t v) {
    if (gguf_omit_key && strcmp(key, gguf_omit_key) == 0) return;
    put_str(&g->kv, key);
    put_u32(&g->kv, GGUF_U32);
    put_u32(&g->kv, v);
    g->n_kv++;
}
static inline void kv_f32(gguf_out *g, const char *key, float v) {
    if (gguf_omit_key && strcmp(key, gguf_omit_key) == 0) return;
    put_str(&g->kv, key);
    put_u32(&g->kv, GGUF_F32);
    put(&g->kv, &v, 4);
    g->n_kv++;
}
static inline void kv_str(gguf_out *g, const char *key, const char *v) {
    if (gguf_omit_key && strcmp(key, gguf_omit_key) == 0) return;
    put_str(&g->kv, key);
    put_u32(&g->kv, GGUF_STR);
    put_str(&g->kv, v);
    g->n_kv++;
}

/* A tensor of n_mat (rows, cols) row-major matrices: GGUF ne = [cols, rows(, n_mat)]
 * (rows == 1: a vector). */
static inline void add_tensor3(gguf_out *g, const char *name, uint32_t type, int64_t n_mat, int64_t rows,
                        int64_t cols, const void *data, size_t nbytes) {
    while (g->data.n % 32) put(&g->data, "", 1);
    put_str(&g->info, name);
    put_u32(&g->info, n_mat > 1 ? 3 : rows > 1 ? 2 : 1);
    put_u64(&g->info, (uint64_t)cols);
    if (rows > 1 || n_mat > 1) put_u64(&g->info, (uint64_t)rows);
    if (n_mat > 1) put_u64(&g->info, (uint64_t)n_mat);
    put_u32(&g->info, type);
    put_u64(&g->info, g->data.n);
    put(&g->data, data, nbytes);
    g->n_tensors++;
}

static inline void add_tensor(gguf_out *g, const char *name, uint32_t type, int64_t rows, int64_t cols,
                       const void *data, size_t nbytes) {
    add_tensor3(g, name, type, 1, rows, cols, data, nbytes);
}

static inline void write_gguf(gguf_out *g, const char *path) {
    buf out = {0};
    put(&out, "GGUF", 4);
    put_u32(&out, 3);
    put_u64(&out, g->n_tensors);
    put_u64(&out, g->n_kv);
    put(&out, g->kv.p, g->kv.n);
    put(&out, g->info.p, g->info.n);
    while (out.n % 32) put(&out, "", 1);
    put(&out, g->data.p, g->data.n);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(out.p, 1, out.n, f), out.n);
    fclose(f);
    free(out.p);
    free(g->kv.p);
    free(g->info.p);
    free(g->data.p);
}

/* tokenizer.ggml.* of a stand-in vocabulary "t0" .. "t<n-1>" with no merges: enough to load a
 * model whose tests feed token ids. */
static inline void kv_standin_tokenizer(gguf_out *g, int32_t n_vocab) {
    kv_str(g, "tokenizer.ggml.model", "gpt2");
    kv_str(g, "tokenizer.ggml.pre", "qwen2");
    put_str(&g->kv, "tokenizer.ggml.tokens");
    put_u32(&g->kv, GGUF_ARR);
    put_u32(&g->kv, GGUF_STR);
    put_u64(&g->kv, (uint64_t)n_vocab);
    for (int32_t i = 0; i < n_vocab; i++) {
        char s[16];
        snprintf(s, sizeof s, "t%d", i);
        put_str(&g->kv, s);
    }
    g->n_kv++;
    put_str(&g->kv, "tokenizer.ggml.merges");
    put_u32(&g->kv, GGUF_ARR);
    put_u32(&g->kv, GGUF_STR);
    put_u64(&g->kv, 0);
    g->n_kv++;
}

/* ---- copying a BF16 Hugging Face fixture's tensors ------------------------------------------ */

/* A BF16 checkpoint tensor as it is, under a GGUF name (vectors: rows 1). */
static inline void gw_copy_bf16(gguf_out *g, const st_file *f, const char *hf_name, const char *name) {
    const st_tensor *t = st_find_tensor(f, hf_name);
    ck_assert_msg(t != NULL && t->dtype == ST_BF16, "%s", hf_name);
    const int64_t rows = t->n_dims == 2 ? t->shape[0] : 1, cols = t->shape[t->n_dims - 1];
    add_tensor(g, name, T_BF16, rows, cols, t->data, t->nbytes);
}

static inline float gw_bf16_value(const uint8_t *p) {
    const uint32_t bits = (uint32_t)(p[0] | p[1] << 8) << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* A vector (or (E, n) biases) as F32. */
static inline void gw_copy_f32(gguf_out *g, const st_file *f, const char *hf_name, const char *name,
                     int64_t j0, int64_t step) {
    const st_tensor *t = st_find_tensor(f, hf_name);
    ck_assert_msg(t != NULL && t->dtype == ST_BF16, "%s", hf_name);
    const int64_t rows = t->n_dims == 2 ? t->shape[0] : 1, n = t->shape[t->n_dims - 1];
    const int64_t cols = (n - j0 + step - 1) / step;
    float *v = malloc((size_t)(rows * cols) * 4);
    ck_assert_ptr_nonnull(v);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            v[r * cols + c] = gw_bf16_value((const uint8_t *)t->data + 2 * (r * n + j0 + c * step));
    add_tensor(g, name, T_F32, rows, cols, v, (size_t)(rows * cols) * 4);
    free(v);
}

#endif
