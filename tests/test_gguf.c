/* test_gguf.c — the GGUF reader: fixtures written by the gguf Python package (every value read
 * back), then hostile input built here in memory: every truncation, bad magic and versions,
 * implausible counts and lengths, bad shapes, types, offsets, alignment and duplicates. */
#include "gguf.h"
#include "tensor_types.h"
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------------------------
 */

static uint8_t *slurp(const char *name, size_t *size) {
    char path[1024];
    test_data_path(name, path, sizeof path);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open fixture %s (run tools/gen_quant_fixtures.py)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* A growing byte buffer to build GGUF files. */
typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void put(bb *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u8(bb *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(bb *b, uint32_t v) { put(b, &v, 4); } /* little-endian host (x86, arm) */
static void put_u64(bb *b, uint64_t v) { put(b, &v, 8); }
static void put_str(bb *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void put_kv_u32(bb *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, GGUF_TYPE_UINT32);
    put_u32(b, v);
}
static void put_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                       uint64_t offset) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, offset);
}
static void pad_to(bb *b, size_t align) {
    while (b->n % align) put_u8(b, 0);
}
static void put_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) put_u8(b, 0);
}

/* Opens the bytes from an exact-size heap copy (so that ASan sees any read past the end). */
static reason_status open_copy(const uint8_t *data, size_t n, gguf_file **out) {
    uint8_t *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(copy);
    if (n) memcpy(copy, data, n);
    reason_status st = gguf_open_memory(n ? copy : NULL, n, "test.gguf", out);
    if (st == REASON_OK) {
        /* Keep the copy alive as long as the file: tests close right away, so leak-free by
         * closing here is not possible; instead re-open on the original, which lives longer. */
        gguf_close(*out);
        st = gguf_open_memory(data, n, "test.gguf", out);
        ck_assert_int_eq(st, REASON_OK);
    } else {
        ck_assert_ptr_null(*out);
    }
    free(copy);
    return st;
}

/* The bytes must fail with status, and the message mention every given fragment. */
static void expect_fail_(const bb *b, reason_status status, const char *const *frags, int line) {
    gguf_file *f = NULL;
    reason_status st = open_copy(b->p, b->n, &f);
    const char *msg = reason_last_error();
    ck_assert_msg(st == status, "line %d: status %s, want %s (%s)", line, reason_status_name(st),
                  reason_status_name(status), msg);
    for (; *frags; frags++)
        ck_assert_msg(strstr(msg, *frags) != NULL, "line %d: message \"%s\" lacks \"%s\"", line,
                      msg, *frags);
    gguf_close(f);
}
#define expect_fail(b, status, ...)                                                                \
    expect_fail_(b, status, (const char *const[]){__VA_ARGS__, NULL}, __LINE__)

static float tensor_f32(const gguf_tensor *t, int64_t i) {
    float v;
    memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
    return v;
}

/* ---- valid files ------------------------------------------------------------------------------
 */

static void check_str(const gguf_file *f, const char *key, const char *want) {
    const char *s;
    size_t len;
    ck_assert_msg(gguf_get_str(f, key, &s, &len), "key %s", key);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(s, want, len) == 0);
}

static void check_tensor(const gguf_file *f, const char *name, uint32_t type, int n_dims,
                         int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, size_t nbytes) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    ck_assert_msg(t != NULL, "tensor %s", name);
    ck_assert_str_eq(t->name, name);
    ck_assert_uint_eq(t->type, type);
    ck_assert_int_eq(t->n_dims, n_dims);
    ck_assert_int_eq(t->ne[0], ne0);
    ck_assert_int_eq(t->ne[1], ne1);
    ck_assert_int_eq(t->ne[2], ne2);
    ck_assert_int_eq(t->ne[3], ne3);
    ck_assert_uint_eq(t->nbytes, nbytes);
    ck_assert_uint_eq(tensor_row_bytes(type, ne0) * (size_t)(ne1 * ne2 * ne3), nbytes);
}

/* Everything tools/gen_quant_fixtures.py wrote into valid_v3.gguf. */
static void check_valid(const gguf_file *f, const uint8_t *base) {
    ck_assert_int_eq(gguf_n_keys(f), 23);
    ck_assert_int_eq(gguf_n_tensors(f), 8);
    check_str(f, "general.architecture", "testarch");
    check_str(f, "general.name", "t\xc3\xadny \xe2\x9c\x93 model");
    check_str(f, "test.str", "hello");
    check_str(f, "test.empty", "");

    uint32_t u32;
    int64_t i64;
    float f32;
    bool b;
    ck_assert(gguf_get_u32(f, "test.u8", &u32) && u32 == 200);
    ck_assert(gguf_get_i64(f, "test.i8", &i64) && i64 == -100);
    ck_assert(!gguf_get_u32(f, "test.i8", &u32)); /* negative does not fit */
    ck_assert(gguf_get_u32(f, "test.u16", &u32) && u32 == 60000);
    ck_assert(gguf_get_i64(f, "test.i16", &i64) && i64 == -30000);
    ck_assert(gguf_get_u32(f, "test.u32", &u32) && u32 == 4000000000u);
    ck_assert(gguf_get_i64(f, "test.i32", &i64) && i64 == -2000000000);
    ck_assert(gguf_get_f32(f, "test.f32", &f32) && f32 == 1.5f);
    ck_assert(gguf_get_bool(f, "test.bool_t", &b) && b);
    ck_assert(gguf_get_bool(f, "test.bool_f", &b) && !b);
    ck_assert(gguf_get_i64(f, "test.u64", &i64) && i64 == (1ll << 40) + 3);
    ck_assert(!gguf_get_u32(f, "test.u64", &u32)); /* too big */
    ck_assert(gguf_get_i64(f, "test.i64", &i64) && i64 == -(1ll << 40));
    ck_assert(gguf_get_f32(f, "test.f64", &f32) && f32 == (float)3.141592653589793);
    ck_assert(gguf_get_f32(f, "test.i32", &f32) && f32 == -2000000000.0f);
    ck_assert(!gguf_get_f32(f, "test.str", &f32));
    ck_assert(!gguf_get_bool(f, "test.u8", &b));
    ck_assert(!gguf_get_u32(f, "test.f32", &u32));
    ck_assert(!gguf_get_u32(f, "no.such.key", &u32));
    const char *s;
    size_t len;
    ck_assert(!gguf_get_str(f, "test.u8", &s, &len));

    int64_t k = gguf_find_key(f, "test.f64");
    ck_assert_int_ge(k, 0);
    ck_assert_str_eq(gguf_key_name(f, k), "test.f64");
    ck_assert_uint_eq(gguf_key_type(f, k), GGUF_TYPE_FLOAT64);
    ck_assert_int_eq(gguf_find_key(f, "test.f6"), -1);
    ck_assert_ptr_null(gguf_key_name(f, -1));
    ck_assert_ptr_null(gguf_key_name(f, 23));
    static const uint32_t types[] = {
        GGUF_TYPE_STRING, GGUF_TYPE_STRING, GGUF_TYPE_UINT8, GGUF_TYPE_INT8,    GGUF_TYPE_UINT16,
        GGUF_TYPE_INT16,  GGUF_TYPE_UINT32, GGUF_TYPE_INT32, GGUF_TYPE_FLOAT32, GGUF_TYPE_BOOL,
        GGUF_TYPE_BOOL,   GGUF_TYPE_UINT64, GGUF_TYPE_INT64, GGUF_TYPE_FLOAT64, GGUF_TYPE_STRING,
        GGUF_TYPE_STRING, GGUF_TYPE_ARRAY,  GGUF_TYPE_ARRAY, GGUF_TYPE_ARRAY,   GGUF_TYPE_ARRAY,
        GGUF_TYPE_ARRAY,  GGUF_TYPE_ARRAY,  GGUF_TYPE_ARRAY};
    for (int64_t i = 0; i < 23; i++) {
        ck_assert_uint_eq(gguf_key_type(f, i), types[i]);
        ck_assert_int_eq(gguf_find_key(f, gguf_key_name(f, i)), i);
    }

    uint32_t et;
    uint64_t n;
    const void *data;
    static const char *const strs[] = {"a", "", "h\xc3\xa9llo", "world"};
    ck_assert(gguf_get_arr(f, "test.arr_str", &et, &n, &data) && et == GGUF_TYPE_STRING && n == 4);
    for (uint64_t i = 0; i < 4; i++) {
        ck_assert(gguf_get_arr_str(f, "test.arr_str", i, &s, &len));
        ck_assert_uint_eq(len, strlen(strs[i]));
        ck_assert(memcmp(s, strs[i], len) == 0);
    }
    ck_assert(!gguf_get_arr_str(f, "test.arr_str", 4, &s, &len));
    ck_assert(!gguf_get_arr_str(f, "test.arr_i32", 0, &s, &len));
    ck_assert(!gguf_get_arr_str(f, "test.str", 0, &s, &len));

    int32_t i32s[3];
    ck_assert(gguf_get_arr(f, "test.arr_i32", &et, &n, &data) && et == GGUF_TYPE_INT32 && n == 3);
    memcpy(i32s, data, sizeof i32s);
    ck_assert(i32s[0] == 1 && i32s[1] == -2 && i32s[2] == 3);
    float fs[2];
    ck_assert(gguf_get_arr(f, "test.arr_f32", &et, &n, &data) && et == GGUF_TYPE_FLOAT32 && n == 2);
    memcpy(fs, data, sizeof fs);
    ck_assert(fs[0] == 0.5f && fs[1] == -1.25f);
    ck_assert(gguf_get_arr(f, "test.arr_u8", &et, &n, &data) && et == GGUF_TYPE_UINT8 && n == 3);
    ck_assert(memcmp(data, "\x01\x02\xff", 3) == 0);
    ck_assert(gguf_get_arr(f, "test.arr_bool", &et, &n, &data) && et == GGUF_TYPE_BOOL && n == 3);
    ck_assert(memcmp(data, "\x01\x00\x01", 3) == 0);
    uint64_t u64s[2];
    ck_assert(gguf_get_arr(f, "test.arr_u64", &et, &n, &data) && et == GGUF_TYPE_UINT64 && n == 2);
    memcpy(u64s, data, sizeof u64s);
    ck_assert(u64s[0] == 1 && u64s[1] == 1ull << 63);
    ck_assert(gguf_get_arr(f, "test.arr_nested", &et, &n, &data) && et == GGUF_TYPE_ARRAY &&
              n == 2);
    ck_assert(!gguf_get_arr(f, "test.u8", &et, &n, &data));

    check_tensor(f, "tok_embd.weight", TENSOR_F32, 2, 8, 4, 1, 1, 128);
    check_tensor(f, "blk.0.attn_q.weight", TENSOR_F16, 2, 16, 2, 1, 1, 64);
    check_tensor(f, "output_norm.weight", TENSOR_F32, 1, 8, 1, 1, 1, 32);
    check_tensor(f, "t3d", TENSOR_F32, 3, 4, 3, 2, 1, 96);
    check_tensor(f, "t4d", TENSOR_F32, 4, 3, 1, 2, 1, 24);
    check_tensor(f, "blk.0.ffn_down.weight", TENSOR_Q8_0, 2, 64, 2, 1, 1, 136);
    check_tensor(f, "bf", TENSOR_BF16, 2, 4, 1, 1, 1, 8);
    check_tensor(f, "blk.0.q4k.weight", TENSOR_Q4_K, 2, 256, 1, 1, 1, 144);
    ck_assert_ptr_null(gguf_find_tensor(f, "tok_embd"));
    ck_assert_ptr_null(gguf_tensor_at(f, 8));
    ck_assert_ptr_null(gguf_tensor_at(f, -1));
    ck_assert_str_eq(gguf_tensor_at(f, 0)->name, "tok_embd.weight");
    ck_assert_str_eq(gguf_tensor_at(f, 7)->name, "blk.0.q4k.weight");
    for (int64_t i = 0; i < 8; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        ck_assert_uint_eq(t->offset % 32, 0);
        ck_assert_ptr_eq(t->data, base + t->offset);
    }

    const gguf_tensor *t = gguf_find_tensor(f, "tok_embd.weight");
    for (int i = 0; i < 32; i++) ck_assert(tensor_f32(t, i) == 0.25f * (float)i);
    t = gguf_find_tensor(f, "t3d");
    for (int i = 0; i < 24; i++) ck_assert(tensor_f32(t, i) == (float)i);
    float y[256];
    t = gguf_find_tensor(f, "blk.0.attn_q.weight");
    tensor_dequantize_row(t->type, t->data, y, 32);
    for (int i = 0; i < 32; i++) ck_assert(y[i] == (float)(i - 16) / 8.0f);
    t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
    tensor_dequantize_row(t->type, t->data, y, 128);
    for (int i = 0; i < 128; i++) ck_assert(y[i] == (float)(i % 32 - 16) / 2.0f);
    t = gguf_find_tensor(f, "bf");
    tensor_dequantize_row(t->type, t->data, y, 4);
    ck_assert(y[0] == 1.0f && y[1] == -2.0f && y[2] == 0.5f && y[3] == 3.0f);
    t = gguf_find_tensor(f, "blk.0.q4k.weight");
    uint16_t h;
    memcpy(&h, t->data, 2);
    ck_assert_uint_eq(h, rs_f32_to_f16(0.01f));
}

START_TEST(test_valid_v3_file) {
    char path[1024];
    test_data_path("gguf/valid_v3.gguf", path, sizeof path);
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f) == REASON_OK, "%s", reason_last_error());
    ck_assert_uint_eq(gguf_version(f), 3);
    ck_assert_str_eq(gguf_path(f), path);
    size_t size;
    uint8_t *bytes = slurp("gguf/valid_v3.gguf", &size);
    /* Same data through the mapping: compare a tensor's bytes with the file's. */
    const gguf_tensor *t = gguf_find_tensor(f, "t3d");
    ck_assert(memcmp(t->data, bytes + t->offset, t->nbytes) == 0);
    gguf_close(f);

    ck_assert_int_eq(gguf_open_memory(bytes, size, "mem", &f), REASON_OK);
    check_valid(f, bytes);
    ck_assert_str_eq(gguf_path(f), "mem");
    gguf_close(f);
    free(bytes);
}
END_TEST

/* v2 has the v3 layout (v3 only added big-endian files), so patching the version makes one. */
START_TEST(test_valid_v2) {
    size_t size;
    uint8_t *bytes = slurp("gguf/valid_v3.gguf", &size);
    bytes[4] = 2;
    gguf_file *f = NULL;
    ck_assert_int_eq(gguf_open_memory(bytes, size, "v2", &f), REASON_OK);
    ck_assert_uint_eq(gguf_version(f), 2);
    check_valid(f, bytes);
    gguf_close(f);
    free(bytes);
}
END_TEST

START_TEST(test_align64) {
    size_t size;
    uint8_t *bytes = slurp("gguf/align64.gguf", &size);
    gguf_file *f = NULL;
    ck_assert_int_eq(gguf_open_memory(bytes, size, "a64", &f), REASON_OK);
    uint32_t a;
    ck_assert(gguf_get_u32(f, "general.alignment", &a) && a == 64);
    const gguf_tensor *ta = gguf_find_tensor(f, "a"), *tb = gguf_find_tensor(f, "b");
    ck_assert(ta && tb);
    ck_assert_uint_eq(ta->offset % 64, 0);
    ck_assert_uint_eq(tb->offset % 64, 0);
    ck_assert_uint_eq(tb->offset - ta->offset, 64);
    for (int i = 0; i < 3; i++) ck_assert(tensor_f32(ta, i) == (float)i);
    for (int i = 0; i < 5; i++) ck_assert(tensor_f32(tb, i) == 100.0f + (float)i);
    gguf_close(f);
    free(bytes);
}
END_TEST

/* Every prefix of the valid file fails cleanly, until all tensor data is present. */
START_TEST(test_truncation) {
    size_t size;
    uint8_t *bytes = slurp("gguf/valid_v3.gguf", &size);
    gguf_file *f = NULL;
    ck_assert_int_eq(gguf_open_memory(bytes, size, "full", &f), REASON_OK);
    size_t data_end = 0;
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        data_end = RS_MAX(data_end, (size_t)t->offset + t->nbytes);
    }
    gguf_close(f);
    ck_assert_uint_le(data_end, size);
    for (size_t n = 0; n < size; n++) {
        reason_status st = open_copy(bytes, n, &f);
        if (n >= data_end) {
            ck_assert_msg(st == REASON_OK, "prefix %zu: %s", n, reason_last_error());
            gguf_close(f);
            continue;
        }
        ck_assert_msg(st == REASON_ERR_FORMAT, "prefix %zu: %s: %s", n, reason_status_name(st),
                      reason_last_error());
        ck_assert_msg(strstr(reason_last_error(), "offset") != NULL, "prefix %zu: %s", n,
                      reason_last_error());
    }
    free(bytes);
}
END_TEST

/* Random byte flips of the valid file: anything may come back, but nothing may crash or leak. */
START_TEST(test_corruption) {
    size_t size;
    uint8_t *bytes = slurp("gguf/valid_v3.gguf", &size);
    uint64_t state = 12345;
    int ok = 0;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *copy = malloc(size);
        memcpy(copy, bytes, size);
        for (int k = 0; k < 1 + iter % 4; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(state >> 33) % 1280; /* the header and tables */
            copy[at] = (uint8_t)(state >> 17);
        }
        gguf_file *f = NULL;
        reason_status st = gguf_open_memory(copy, size, "flip", &f);
        if (st == REASON_OK) {
            ok++;
            for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
                const gguf_tensor *t = gguf_tensor_at(f, i);
                ck_assert_uint_le(t->offset + t->nbytes, size);
            }
            for (int64_t i = 0; i < gguf_n_keys(f); i++) {
                const char *s;
                size_t len;
                uint32_t et;
                uint64_t n;
                const void *d;
                const char *key = gguf_key_name(f, i);
                if (gguf_get_arr(f, key, &et, &n, &d) && et == GGUF_TYPE_STRING)
                    for (uint64_t j = 0; j < n; j++)
                        ck_assert(gguf_get_arr_str(f, key, j, &s, &len));
            }
            gguf_close(f);
        } else {
            ck_assert_ptr_null(f);
            ck_assert(strlen(reason_last_error()) > 0);
        }
        free(copy);
    }
    ck_assert_int_gt(ok, 0);
    free(bytes);
}
END_TEST

/* ---- hostile headers
 * ------------------------------------------------------------------------------ */

START_TEST(test_magic_version) {
    bb b = {0};
    put(&b, "GGUX", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 0);
    expect_fail(&b, REASON_ERR_FORMAT, "magic", "offset 0", "test.gguf");
    b.n = 0;
    put_header(&b, 1, 0, 0);
    expect_fail(&b, REASON_ERR_UNSUPPORTED, "version 1", "offset 4");
    b.n = 0;
    put_header(&b, 99, 0, 0);
    expect_fail(&b, REASON_ERR_UNSUPPORTED, "version 99", "offset 4");
    b.n = 0;
    put_header(&b, 0x03000000, 0, 0);
    expect_fail(&b, REASON_ERR_UNSUPPORTED, "big-endian");
    b.n = 0;
    put(&b, "GG", 2);
    expect_fail(&b, REASON_ERR_FORMAT, "magic");
    /* The smallest valid file: a header and nothing else. */
    b.n = 0;
    put_header(&b, 3, 0, 0);
    gguf_file *f = NULL;
    ck_assert_int_eq(open_copy(b.p, b.n, &f), REASON_OK);
    ck_assert_int_eq(gguf_n_keys(f), 0);
    ck_assert_int_eq(gguf_n_tensors(f), 0);
    ck_assert_int_eq(gguf_find_key(f, "x"), -1);
    ck_assert_ptr_null(gguf_find_tensor(f, "x"));
    gguf_close(f);
    free(b.p);
}
END_TEST

START_TEST(test_counts) {
    bb b = {0};
    put_header(&b, 3, 1ull << 60, 0);
    expect_fail(&b, REASON_ERR_FORMAT, "n_tensors", "offset 8");
    b.n = 0;
    put_header(&b, 3, 0, UINT64_MAX);
    expect_fail(&b, REASON_ERR_FORMAT, "n_kv", "offset 16");
    /* Plausible by size but more than are present. */
    b.n = 0;
    put_header(&b, 3, 0, 2);
    put_kv_u32(&b, "a", 1);
    put_zeros(&b, 9); /* room enough by count, but key #1 is cut short */
    expect_fail(&b, REASON_ERR_FORMAT, "key #1");
    free(b.p);
}
END_TEST

START_TEST(test_strings_arrays) {
    bb b = {0};
    /* Huge key length at offset 24. */
    put_header(&b, 3, 0, 1);
    put_u64(&b, 1ull << 62);
    put_zeros(&b, 16);
    expect_fail(&b, REASON_ERR_FORMAT, "offset 24", "key #0", "length");
    /* Huge string value length. */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "my.key");
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, UINT64_MAX);
    put_zeros(&b, 16);
    expect_fail(&b, REASON_ERR_FORMAT, "key 'my.key'", "offset 42");
    /* Array length whose byte count wraps around 2^64 (4 * (2^62 + 1) = 4 mod 2^64). */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_UINT32);
    put_u64(&b, (1ull << 62) + 1);
    put_zeros(&b, 16);
    expect_fail(&b, REASON_ERR_FORMAT, "key 'arr'", "array", "offset 39");
    /* Huge string array. */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "tokens");
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, 1ull << 40);
    put_zeros(&b, 64);
    expect_fail(&b, REASON_ERR_FORMAT, "key 'tokens'");
    /* A string inside a string array longer than the file. */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "tokens");
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, 2);
    put_str(&b, "ok");
    put_u64(&b, 1000);
    put_zeros(&b, 8);
    expect_fail(&b, REASON_ERR_FORMAT, "key 'tokens'", "string element");
    /* Unknown value type, unknown element type. */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "odd");
    put_u32(&b, 13);
    put_zeros(&b, 8);
    expect_fail(&b, REASON_ERR_FORMAT, "key 'odd'", "value type 13");
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "odd");
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, 77);
    put_u64(&b, 1);
    put_zeros(&b, 8);
    expect_fail(&b, REASON_ERR_FORMAT, "key 'odd'", "element type 77");
    /* Bool that is not 0/1. */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "flag");
    put_u32(&b, GGUF_TYPE_BOOL);
    put_u8(&b, 2);
    expect_fail(&b, REASON_ERR_FORMAT, "key 'flag'", "bool");
    /* Arrays nested deeper than the limit; a valid nested array of strings is fine. */
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "deep");
    put_u32(&b, GGUF_TYPE_ARRAY);
    for (int i = 0; i < 20; i++) {
        put_u32(&b, GGUF_TYPE_ARRAY);
        put_u64(&b, 1);
    }
    put_u32(&b, GGUF_TYPE_UINT8);
    put_u64(&b, 0);
    expect_fail(&b, REASON_ERR_FORMAT, "key 'deep'", "nested");
    b.n = 0;
    put_header(&b, 3, 0, 2);
    put_str(&b, "nested");
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u64(&b, 2);
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, 2);
    put_str(&b, "x");
    put_str(&b, "yz");
    put_u32(&b, GGUF_TYPE_INT16);
    put_u64(&b, 0);
    put_str(&b, "empty");
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, 0);
    gguf_file *f = NULL;
    ck_assert_msg(open_copy(b.p, b.n, &f) == REASON_OK, "%s", reason_last_error());
    uint32_t et;
    uint64_t n;
    const void *d;
    ck_assert(gguf_get_arr(f, "nested", &et, &n, &d) && et == GGUF_TYPE_ARRAY && n == 2);
    ck_assert(gguf_get_arr(f, "empty", &et, &n, &d) && et == GGUF_TYPE_STRING && n == 0);
    const char *s;
    size_t len;
    ck_assert(!gguf_get_arr_str(f, "empty", 0, &s, &len));
    gguf_close(f);
    /* Duplicate keys. */
    b.n = 0;
    put_header(&b, 3, 0, 2);
    put_kv_u32(&b, "same", 1);
    put_kv_u32(&b, "same", 2);
    expect_fail(&b, REASON_ERR_FORMAT, "key 'same'", "twice", "offset 44");
    free(b.p);
}
END_TEST

/* A file with one tensor: (name, dims, type, offset) and nbytes bytes of data. */
static void one_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                       uint64_t offset, size_t data_bytes) {
    b->n = 0;
    put_header(b, 3, 1, 0);
    put_tensor(b, name, n_dims, ne, type, offset);
    pad_to(b, 32);
    put_zeros(b, data_bytes);
}

START_TEST(test_tensor_infos) {
    bb b = {0};
    const uint64_t ne[5] = {32, 2, 1, 1, 1};
    one_tensor(&b, "w", 2, ne, TENSOR_F32, 0, 256);
    gguf_file *f = NULL;
    ck_assert_int_eq(open_copy(b.p, b.n, &f), REASON_OK);
    ck_assert_uint_eq(gguf_find_tensor(f, "w")->offset, 96); /* infos end at 65 */
    gguf_close(f);

    one_tensor(&b, "blk.0.w", 0, ne, TENSOR_F32, 0, 256);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'blk.0.w'", "n_dims 0", "offset 39");
    one_tensor(&b, "blk.0.w", 5, ne, TENSOR_F32, 0, 256);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'blk.0.w'", "n_dims 5");
    const uint64_t neg[2] = {32, UINT64_MAX};
    one_tensor(&b, "neg", 2, neg, TENSOR_F32, 0, 256);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'neg'", "negative", "offset 47");
    const uint64_t huge[4] = {1ull << 32, 1ull << 32, 1ull << 32, 1};
    one_tensor(&b, "huge", 4, huge, TENSOR_F32, 0, 256);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'huge'", "overflows");
    const uint64_t big_bytes[2] = {1ull << 62, 1}; /* elements fit int64, bytes do not */
    one_tensor(&b, "bytes", 2, big_bytes, TENSOR_F32, 0, 256);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'bytes'", "overflows");
    const uint64_t odd[2] = {33, 1};
    one_tensor(&b, "q", 2, odd, TENSOR_Q4_0, 0, 256);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'q'", "multiple", "Q4_0");
    one_tensor(&b, "strange", 2, ne, 77, 0, 256);
    expect_fail(&b, REASON_ERR_UNSUPPORTED, "tensor 'strange'", "77", "offset");
    one_tensor(&b, "gone", 2, ne, TENSOR_F32, 1ull << 40, 256);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'gone'", "past the end", "offset 24");
    one_tensor(&b, "short", 2, ne, TENSOR_F32, 32, 256); /* 256 bytes from 32: 32 too few */
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'short'", "past the end");
    one_tensor(&b, "wrap", 2, ne, TENSOR_F32, UINT64_MAX - 31, 256);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'wrap'");
    one_tensor(&b, "mis", 2, ne, TENSOR_F32, 4, 256);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'mis'", "alignment 32");
    /* Unsupported but known types load (their use fails later); zero-size tensors too. */
    const uint64_t k[2] = {256, 1}, zero[2] = {0, 4};
    one_tensor(&b, "q2k", 2, k, TENSOR_Q2_K, 0, 84);
    ck_assert_int_eq(open_copy(b.p, b.n, &f), REASON_OK);
    ck_assert_uint_eq(gguf_find_tensor(f, "q2k")->nbytes, 84);
    gguf_close(f);
    one_tensor(&b, "empty", 2, zero, TENSOR_F32, 0, 0);
    ck_assert_int_eq(open_copy(b.p, b.n, &f), REASON_OK);
    ck_assert_uint_eq(gguf_find_tensor(f, "empty")->nbytes, 0);
    gguf_close(f);

    /* Duplicate tensor names. */
    b.n = 0;
    put_header(&b, 3, 2, 0);
    put_tensor(&b, "twin", 2, ne, TENSOR_F32, 0);
    put_tensor(&b, "twin", 2, ne, TENSOR_F32, 256);
    pad_to(&b, 32);
    put_zeros(&b, 512);
    expect_fail(&b, REASON_ERR_FORMAT, "tensor 'twin'", "twice", "offset 68");
    free(b.p);
}
END_TEST

START_TEST(test_alignment_key) {
    bb b = {0};
    const uint64_t ne[1] = {8};
    static const uint32_t bad[] = {0, 3, 48, 0x80000001u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b.n = 0;
        put_header(&b, 3, 1, 1);
        put_kv_u32(&b, "general.alignment", bad[i]);
        put_tensor(&b, "t", 1, ne, TENSOR_F32, 0);
        put_zeros(&b, 64);
        expect_fail(&b, REASON_ERR_FORMAT, "general.alignment", "power of two", "offset 53");
    }
    b.n = 0;
    put_header(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, GGUF_TYPE_STRING);
    put_str(&b, "32");
    expect_fail(&b, REASON_ERR_FORMAT, "general.alignment");
    /* alignment 8: data starts at the next multiple of 8, offsets multiples of 8. */
    b.n = 0;
    put_header(&b, 3, 2, 1);
    put_kv_u32(&b, "general.alignment", 8);
    put_tensor(&b, "t", 1, ne, TENSOR_F32, 0);
    put_tensor(&b, "u", 1, ne, TENSOR_F32, 40);
    pad_to(&b, 8);
    size_t data_start = b.n;
    put_zeros(&b, 72);
    gguf_file *f = NULL;
    ck_assert_msg(open_copy(b.p, b.n, &f) == REASON_OK, "%s", reason_last_error());
    ck_assert_uint_eq(gguf_find_tensor(f, "u")->offset, data_start + 40);
    gguf_close(f);
    free(b.p);
}
END_TEST

/* A thousand tensors: every name found through the index, at its own position; the keys read
 * before them stay readable however much the tensor names grow the name storage. */
START_TEST(test_many_tensors) {
    bb b = {0};
    const int n = 1000;
    put_header(&b, 3, (uint64_t)n, 2);
    put_kv_u32(&b, "general.alignment", 32);
    put_kv_u32(&b, "llama.block_count", 1000);
    char name[32];
    const uint64_t ne[2] = {8, 1};
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "blk.%d.weight", i);
        put_tensor(&b, name, 2, ne, TENSOR_F32, (uint64_t)i * 32);
    }
    pad_to(&b, 32);
    put_zeros(&b, (size_t)n * 32);
    gguf_file *f = NULL;
    ck_assert_int_eq(gguf_open_memory(b.p, b.n, "many", &f), REASON_OK);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "blk.%d.weight", i);
        const gguf_tensor *t = gguf_find_tensor(f, name);
        ck_assert_ptr_eq(t, gguf_tensor_at(f, i));
    }
    ck_assert_ptr_null(gguf_find_tensor(f, "blk.1000.weight"));
    ck_assert_str_eq(gguf_key_name(f, 1), "llama.block_count");
    uint32_t blocks = 0;
    ck_assert(gguf_get_u32(f, "llama.block_count", &blocks));
    ck_assert_uint_eq(blocks, 1000);
    gguf_close(f);
    free(b.p);
}
END_TEST

START_TEST(test_io_errors) {
    gguf_file *f = (gguf_file *)1;
    const char *path = "/nonexistent/dir/model-xyz.gguf";
    ck_assert_int_eq(gguf_open(path, &f), REASON_ERR_IO);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), path));
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "No such file"));
    ck_assert_int_eq(gguf_open("/tmp", &f), REASON_ERR_IO);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "/tmp"));

    /* An empty file maps to nothing and fails as a format error. */
    char tmp[] = "/tmp/test_gguf_XXXXXX";
    int fd = mkstemp(tmp);
    ck_assert_int_ge(fd, 0);
    close(fd);
    mapped_file m;
    ck_assert_int_eq(mapped_file_open(tmp, &m), REASON_OK);
    ck_assert_uint_eq(m.size, 0);
    ck_assert_str_eq(m.path, tmp);
    mapped_file_close(&m);
    ck_assert_int_eq(gguf_open(tmp, &f), REASON_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), tmp));
    unlink(tmp);
    mapped_file_close(NULL);
    gguf_close(NULL);
    ck_assert_int_eq(gguf_open_memory(NULL, 5, "x", &f), REASON_ERR_INVALID_ARG);
}
END_TEST

static Suite *gguf_suite(void) {
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("valid");
    tcase_add_test(tc, test_valid_v3_file);
    tcase_add_test(tc, test_valid_v2);
    tcase_add_test(tc, test_align64);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_corruption);
    tcase_add_test(tc, test_magic_version);
    tcase_add_test(tc, test_counts);
    tcase_add_test(tc, test_strings_arrays);
    tcase_add_test(tc, test_tensor_infos);
    tcase_add_test(tc, test_alignment_key);
    tcase_add_test(tc, test_many_tensors);
    tcase_add_test(tc, test_io_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(gguf_suite()); }
