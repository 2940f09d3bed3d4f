/* test_safetensors.c — the safetensors container: valid files (including the committed fixtures,
 * one of them sharded) read back, and every kind of hostile file (truncated at every byte, header
 * length past the end, bad JSON, bad or overlapping data_offsets, unknown dtype, shape/size
 * mismatch, overflowing shapes) and bad sharded sets (missing shard, index naming a tensor its
 * shard lacks) refused with a status and a message naming what and where. */
#include "test_util.h"

#include "safetensors.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file: 8-byte little-endian length, the header, then data_len bytes 0, 1, 2, ... */
static unsigned char *build(const char *header, size_t data_len, size_t *size) {
    const size_t h = strlen(header);
    *size = 8 + h + data_len;
    unsigned char *b = malloc(*size + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (unsigned char)i;
    return b;
}

static reason_status open_header(const char *header, size_t data_len) {
    size_t size;
    unsigned char *b = build(header, data_len, &size);
    st_file *f = (st_file *)0x1;
    const reason_status st = st_open_memory(b, size, "mem.safetensors", &f);
    if (st != REASON_OK) ck_assert_ptr_null(f);
    st_close(st == REASON_OK ? f : NULL);
    free(b);
    return st;
}

static void expect_message(const char *needle) {
    ck_assert_msg(strstr(reason_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                  reason_last_error(), needle);
}

#define VALID                                                                                      \
    "{\"__metadata__\":{\"format\":\"pt\"},"                                                       \
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"                           \
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"                           \
    "\"z\":{\"dtype\":\"I8\",\"shape\":[0,5],\"data_offsets\":[32,32]},"                           \
    "\"s\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[32,34]}}   "

START_TEST(test_valid_file) {
    size_t size;
    unsigned char *b = build(VALID, 34, &size);
    st_file *f;
    ck_assert_msg(st_open_memory(b, size, "mem", &f) == REASON_OK, "%s", reason_last_error());
    ck_assert_int_eq(st_n_tensors(f), 4);
    ck_assert_str_eq(st_tensor_at(f, 0)->name, "a"); /* sorted by name */
    const st_tensor *a = st_find_tensor(f, "a"), *bt = st_find_tensor(f, "b");
    const st_tensor *s = st_find_tensor(f, "s"), *z = st_find_tensor(f, "z");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(bt);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_null(st_find_tensor(f, "c"));
    ck_assert_ptr_null(st_find_tensor(f, "__metadata__"));
    ck_assert_int_eq(a->dtype, ST_F32);
    ck_assert_int_eq(a->n_dims, 2);
    ck_assert_int_eq(a->shape[0], 2);
    ck_assert_int_eq(a->shape[1], 3);
    ck_assert_int_eq(st_numel(a), 6);
    const size_t data_start = 8 + strlen(VALID);
    ck_assert_uint_eq(a->offset, data_start);
    ck_assert_uint_eq(a->nbytes, 24);
    ck_assert_ptr_eq(a->data, b + data_start);
    ck_assert_int_eq(bt->dtype, ST_BF16);
    ck_assert_ptr_eq(bt->data, b + data_start + 24);
    ck_assert_int_eq(s->n_dims, 0);
    ck_assert_int_eq(st_numel(s), 1);
    ck_assert_uint_eq(z->nbytes, 0);
    ck_assert_ptr_null(z->data);
    ck_assert_str_eq(st_metadata(f, "format"), "pt");
    ck_assert_ptr_null(st_metadata(f, "other"));
    ck_assert_str_eq(st_dtype_name(ST_BF16), "BF16");
    ck_assert_uint_eq(st_dtype_size(ST_F64), 8);
    st_close(f);
    free(b);
}
END_TEST

START_TEST(test_gaps_and_any_order_allowed) {
    ck_assert_int_eq(open_header("{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[10,12]},"
                                 "\"y\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}",
                                 16),
                     REASON_OK);
    ck_assert_int_eq(open_header("{}", 0), REASON_OK);
    ck_assert_int_eq(open_header("{\"__metadata__\":{}}", 5), REASON_OK);
}
END_TEST

START_TEST(test_truncated_at_every_byte) {
    size_t size;
    unsigned char *b = build(VALID, 34, &size);
    for (size_t cut = 0; cut < size; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
        memcpy(copy, b, cut);
        st_file *f;
        ck_assert_int_eq(st_open_memory(copy, cut, "cut", &f), REASON_ERR_FORMAT);
        ck_assert_ptr_null(f);
        expect_message("cut");
        free(copy);
    }
    free(b);
}
END_TEST

START_TEST(test_header_length_too_big) {
    size_t size;
    unsigned char *b = build("{}", 4, &size);
    for (int i = 0; i < 8; i++) b[i] = 0xff;
    st_file *f;
    ck_assert_int_eq(st_open_memory(b, size, "mem", &f), REASON_ERR_FORMAT);
    expect_message("header length 18446744073709551615 exceeds");
    memset(b, 0, 8);
    b[0] = (unsigned char)(size - 7); /* one byte more than there is */
    ck_assert_int_eq(st_open_memory(b, size, "mem", &f), REASON_ERR_FORMAT);
    expect_message("exceeds");
    free(b);
    /* a (sparse) file whose header claims more than the 100 MB limit */
    const size_t big = 8 + 100 * 1000 * 1000 + 2;
    unsigned char *h = calloc(big, 1);
    const uint64_t len = big - 8;
    for (int i = 0; i < 8; i++) h[i] = (unsigned char)(len >> (8 * i));
    ck_assert_int_eq(st_open_memory(h, big, "mem", &f), REASON_ERR_FORMAT);
    expect_message("limit");
    free(h);
}
END_TEST

START_TEST(test_bad_json_names_line_and_column) {
    ck_assert_int_eq(open_header("{\"a\":\n {\"dtype\": \"F32\",, }}", 0), REASON_ERR_FORMAT);
    expect_message("line 2");
    expect_message("column");
    ck_assert_int_eq(open_header("{\"a\": 1", 0), REASON_ERR_FORMAT);
    ck_assert_int_eq(open_header("[]", 0), REASON_ERR_FORMAT);
    expect_message("not a JSON object");
    ck_assert_int_eq(open_header("", 0), REASON_ERR_FORMAT);
    /* duplicate keys would make the table ambiguous */
    ck_assert_int_eq(open_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                                 "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                                 2),
                     REASON_ERR_FORMAT);
    expect_message("duplicate");
}
END_TEST

START_TEST(test_wrong_entries) {
    static const struct {
        const char *header, *needle;
    } cases[] = {
        {"{\"t\":[1]}", "'t': expected an object"},
        {"{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "\"dtype\""},
        {"{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "\"shape\""},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "shape[0]"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "shape[0]"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
         "9 dimensions"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", "data_offsets"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "data_offsets"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", "data_offsets"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", "data_offsets"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", "data_offsets"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", "not inside"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[4,16]}}", "not inside"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "needs 8"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,8]}}", "scalar needs 4"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}",
         "overflows"},
        {"{\"t\":{\"dtype\":\"F64\",\"shape\":[1152921504606846976,8],\"data_offsets\":[0,4]}}",
         "overflows"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807],\"data_offsets\":[0,4]}}",
         "overflows"},
        {"{\"__metadata__\":[1]}", "\"__metadata__\" is not an object"},
        {"{\"__metadata__\":{\"k\":1}}", "value 'k' is not a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(open_header(cases[i].header, 12) == REASON_ERR_FORMAT, "case %zu", i);
        expect_message(cases[i].needle);
        expect_message("mem.safetensors");
    }
}
END_TEST

START_TEST(test_overlapping_tensors) {
    ck_assert_int_eq(open_header("{\"p\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                 "\"q\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[6,10]}}",
                                 12),
                     REASON_ERR_FORMAT);
    expect_message("'p' and 'q' overlap");
    expect_message("[0, 8] and [6, 10]");
    /* the same range twice, and one tensor inside another */
    ck_assert_int_eq(open_header("{\"p\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                                 "\"q\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
                                 12),
                     REASON_ERR_FORMAT);
    ck_assert_int_eq(open_header("{\"p\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                                 "\"q\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
                                 "\"r\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]}}",
                                 12),
                     REASON_ERR_FORMAT);
    expect_message("overlap");
    /* zero-size tensors take no bytes, wherever they point */
    ck_assert_int_eq(open_header("{\"p\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                                 "\"q\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                                 12),
                     REASON_OK);
}
END_TEST

START_TEST(test_unknown_dtype) {
    ck_assert_int_eq(
        open_header("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 4),
        REASON_ERR_UNSUPPORTED);
    expect_message("'w' has dtype 'Q4'");
    ck_assert_int_eq(
        open_header("{\"w\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 4),
        REASON_ERR_UNSUPPORTED);
    /* known non-float types parse (they are refused by the model when used) */
    ck_assert_int_eq(
        open_header("{\"w\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"v\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[4,8]},"
                    "\"u\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[8,12]}}",
                    12),
        REASON_OK);
}
END_TEST

START_TEST(test_real_file) {
    char path[1024];
    st_file *f;
    test_data_path("hf/qwen3-BF16/model.safetensors", path, sizeof path);
    ck_assert_msg(st_open(path, &f) == REASON_OK, "%s", reason_last_error());
    const st_tensor *e = st_find_tensor(f, "model.embed_tokens.weight");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->dtype, ST_BF16);
    ck_assert_int_eq(e->n_dims, 2);
    ck_assert_int_eq(e->shape[1], 64);
    ck_assert_str_eq(e->file, path);
    ck_assert_str_eq(st_metadata(f, "format"), "pt");
    ck_assert_ptr_nonnull(st_find_tensor(f, "model.layers.0.self_attn.q_norm.weight"));
    for (int64_t i = 0; i < st_n_tensors(f); i++) {
        const st_tensor *t = st_tensor_at(f, i);
        ck_assert_ptr_eq(st_find_tensor(f, t->name), t);
        ck_assert_uint_eq(t->nbytes, (size_t)st_numel(t) * st_dtype_size(t->dtype));
    }
    st_close(f);
    ck_assert_int_eq(st_open("/nonexistent/model.safetensors", &f), REASON_ERR_IO);
    expect_message("/nonexistent/model.safetensors");
}
END_TEST

START_TEST(test_sharded_fixture) {
    char dir[1024];
    st_set *s;
    test_data_path("hf/llama-BF16-sharded", dir, sizeof dir);
    ck_assert_msg(st_set_open_dir(dir, &s) == REASON_OK, "%s", reason_last_error());
    /* 2 layers × 9 tensors + embedding + final norm (tied: no lm_head) */
    ck_assert_int_eq(st_set_n_tensors(s), 20);
    const st_tensor *e = st_set_find(s, "model.embed_tokens.weight");
    const st_tensor *n = st_set_find(s, "model.norm.weight");
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(n);
    ck_assert_str_ne(e->file, n->file); /* different shards */
    ck_assert_ptr_null(st_set_find(s, "lm_head.weight"));
    for (int64_t i = 1; i < st_set_n_tensors(s); i++)
        ck_assert_int_lt(strcmp(st_set_tensor_at(s, i - 1)->name, st_set_tensor_at(s, i)->name), 0);
    ck_assert_ptr_nonnull(strstr(st_set_path(s), "model.safetensors.index.json"));
    st_set_close(s);
    test_data_path("hf/qwen2-F16", dir, sizeof dir);
    ck_assert_msg(st_set_open_dir(dir, &s) == REASON_OK, "%s", reason_last_error());
    ck_assert_ptr_nonnull(st_set_find(s, "model.layers.1.self_attn.q_proj.bias"));
    st_set_close(s);
}
END_TEST

/* ---- hostile sharded sets, in a temporary directory ---------------------------------------- */

static char tmpdir[64];

static void write_file(const char *name, const void *data, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_shard(const char *name, const char *header, size_t data_len) {
    size_t size;
    unsigned char *b = build(header, data_len, &size);
    write_file(name, b, size);
    free(b);
}

static reason_status open_index(const char *json) {
    write_file("model.safetensors.index.json", json, strlen(json));
    st_set *s = (st_set *)0x1;
    const reason_status st = st_set_open_dir(tmpdir, &s);
    if (st != REASON_OK) ck_assert_ptr_null(s);
    st_set_close(st == REASON_OK ? s : NULL);
    return st;
}

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/reason-st-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    write_shard("one.safetensors",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    write_shard("two.safetensors",
                "{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
}

static void remove_tmpdir(void) {
    static const char *const names[] = {"one.safetensors", "two.safetensors", "bad.safetensors",
                                        "model.safetensors.index.json"};
    char path[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

START_TEST(test_index_good) {
    ck_assert_int_eq(open_index("{\"metadata\":{\"total_size\":8},\"weight_map\":"
                                "{\"a\":\"one.safetensors\",\"b\":\"two.safetensors\"}}"),
                     REASON_OK);
    /* tensors of a shard that the index does not name are not visible */
    st_set *s;
    ck_assert_int_eq(open_index("{\"weight_map\":{\"b\":\"two.safetensors\"}}"), REASON_OK);
    ck_assert_int_eq(st_set_open_dir(tmpdir, &s), REASON_OK);
    ck_assert_int_eq(st_set_n_tensors(s), 1);
    ck_assert_ptr_null(st_set_find(s, "a"));
    ck_assert_int_eq(st_set_find(s, "b")->dtype, ST_F16);
    st_set_close(s);
}
END_TEST

START_TEST(test_index_missing_shard) {
    ck_assert_int_eq(open_index("{\"weight_map\":{\"a\":\"one.safetensors\","
                                "\"b\":\"three.safetensors\"}}"),
                     REASON_ERR_IO);
    expect_message("three.safetensors");
    expect_message("tensor 'b'");
    expect_message("model.safetensors.index.json");
}
END_TEST

START_TEST(test_index_names_missing_tensor) {
    ck_assert_int_eq(open_index("{\"weight_map\":{\"a\":\"one.safetensors\","
                                "\"c\":\"two.safetensors\"}}"),
                     REASON_ERR_FORMAT);
    expect_message("tensor 'c' is mapped to 'two.safetensors', which lacks it");
}
END_TEST

START_TEST(test_index_hostile) {
    static const struct {
        const char *json, *needle;
        reason_status st;
    } cases[] = {
        {"{\"weight_map\":{\"a\":\"one.safetensors\",}}", "line 1", REASON_ERR_FORMAT},
        {"{\"weight_map\":\n[]}", "\"weight_map\"", REASON_ERR_FORMAT},
        {"{}", "\"weight_map\"", REASON_ERR_FORMAT},
        {"[1]", "\"weight_map\"", REASON_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":1}}", "weight_map[\"a\"]", REASON_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"../one.safetensors\"}}", "weight_map[\"a\"]", REASON_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"/etc/passwd\"}}", "file name", REASON_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"..\"}}", "file name", REASON_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"\"}}", "file name", REASON_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"bad.safetensors\"}}", "bad.safetensors", REASON_ERR_FORMAT},
    };
    write_shard("bad.safetensors",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(open_index(cases[i].json) == cases[i].st, "case %zu: %s", i,
                      reason_last_error());
        expect_message(cases[i].needle);
    }
}
END_TEST

START_TEST(test_dir_without_weights) {
    st_set *s;
    ck_assert_int_eq(st_set_open_dir(tmpdir, &s), REASON_ERR_IO);
    expect_message("neither model.safetensors nor model.safetensors.index.json");
    ck_assert_int_eq(st_set_open_index("/nonexistent/x.index.json", &s), REASON_ERR_IO);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("file");
    tcase_add_test(tc, test_valid_file);
    tcase_add_test(tc, test_gaps_and_any_order_allowed);
    tcase_add_test(tc, test_truncated_at_every_byte);
    tcase_add_test(tc, test_header_length_too_big);
    tcase_add_test(tc, test_bad_json_names_line_and_column);
    tcase_add_test(tc, test_wrong_entries);
    tcase_add_test(tc, test_overlapping_tensors);
    tcase_add_test(tc, test_unknown_dtype);
    tcase_add_test(tc, test_real_file);
    tcase_add_test(tc, test_sharded_fixture);
    suite_add_tcase(s, tc);
    TCase *sets = tcase_create("sets");
    tcase_add_checked_fixture(sets, make_tmpdir, remove_tmpdir);
    tcase_add_test(sets, test_index_good);
    tcase_add_test(sets, test_index_missing_shard);
    tcase_add_test(sets, test_index_names_missing_tensor);
    tcase_add_test(sets, test_index_hostile);
    tcase_add_test(sets, test_dir_without_weights);
    suite_add_tcase(s, sets);
    return s;
}

int main(void) { return run_suite(suite()); }
