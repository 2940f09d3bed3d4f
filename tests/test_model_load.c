/* test_model_load.c — loading models: metadata and weights of the fixtures read back, and every
 * kind of bad file (truncated, unknown architecture, missing tensor, wrong shape, absurd
 * hyper-parameters) refused with a status and a message naming what and where. */
#include "test_util.h"

#include "reason.h"

#include <string.h>
#include <unistd.h>

static unsigned char *original;
static size_t original_size;

static void read_fixture(void) {
    char path[1024];
    FILE *f = fopen(test_data_path("models/qwen3-Q8_0.gguf", path, sizeof path), "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    original_size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    original = malloc(original_size);
    ck_assert_uint_eq(fread(original, 1, original_size, f), original_size);
    fclose(f);
}

static void free_fixture(void) { free(original); }

/* Writes bytes to a temporary file and loads it (weights: enum reason_weights); returns the
 * status (model freed). */
static reason_status load_bytes_as(const unsigned char *bytes, size_t n, int32_t weights) {
    char path[] = "/tmp/reason-test-XXXXXX";
    const int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, bytes, n), (ssize_t)n);
    close(fd);
    reason_model *m = (reason_model *)0x1;
    reason_model_params p;
    reason_model_params_default(&p);
    p.weights = weights;
    const reason_status st = reason_model_load(path, &p, &m);
    if (st != REASON_OK) ck_assert_ptr_null(m);
    reason_model_free(st == REASON_OK ? m : NULL);
    unlink(path);
    return st;
}

static reason_status load_bytes(const unsigned char *bytes, size_t n) {
    return load_bytes_as(bytes, n, REASON_WEIGHTS_AUTO);
}

/* A copy of the fixture with the first occurrence of `from` replaced by `to` (same length). */
static unsigned char *patched(const void *from, const void *to, size_t len) {
    unsigned char *copy = malloc(original_size);
    memcpy(copy, original, original_size);
    unsigned char *at = memmem(copy, original_size, from, len);
    ck_assert_ptr_nonnull(at);
    memcpy(at, to, len);
    return copy;
}

static void expect_message(const char *needle) {
    ck_assert_msg(strstr(reason_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                  reason_last_error(), needle);
}

START_TEST(test_fixture_metadata) {
    char path[1024];
    reason_model *m;
    ck_assert_int_eq(reason_model_load(test_data_path("models/qwen3-Q8_0.gguf", path, sizeof path),
                                       NULL, &m),
                     REASON_OK);
    reason_model_info info;
    ck_assert_int_eq(reason_model_get_info(m, &info), REASON_OK);
    /* values written by tools/gen_fixtures.py (tests/data/models/qwen3-Q8_0.json) */
    ck_assert_str_eq(info.architecture, "qwen3");
    ck_assert_int_eq(info.n_embd, 256);
    ck_assert_int_eq(info.n_layer, 2);
    ck_assert_int_eq(info.n_head, 4);
    ck_assert_int_eq(info.n_head_kv, 2);
    ck_assert_int_eq(info.head_dim, 96);
    ck_assert_int_eq(info.n_vocab, 576);
    char buf[16];
    size_t len;
    ck_assert_int_eq(reason_model_meta_string(m, "general.architecture", buf, 3, &len), REASON_ERR_BUFFER);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(reason_model_meta_string(m, "general.architecture", buf, sizeof buf, &len), REASON_OK);
    ck_assert_str_eq(buf, "qwen3");
    ck_assert_int_eq(reason_model_meta_string(m, "no.such.key", buf, sizeof buf, &len), REASON_ERR_INVALID_ARG);
    const reason_tokenizer *tok;
    ck_assert_int_eq(reason_model_tokenizer(m, &tok), REASON_OK);
    ck_assert_int_le(reason_tokenizer_n_vocab(tok), 576);
    reason_model_free(m);
}
END_TEST

START_TEST(test_missing_file) {
    reason_model *m = NULL;
    ck_assert_int_eq(reason_model_load("/nonexistent/model.gguf", NULL, &m), REASON_ERR_IO);
    expect_message("/nonexistent/model.gguf");
    ck_assert_int_eq(reason_model_load(NULL, NULL, &m), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_model_load("x", NULL, NULL), REASON_ERR_INVALID_ARG);
    reason_model_params p;
    reason_model_params_default(&p);
    p.weights = 3; /* not a reason_weights */
    ck_assert_int_eq(reason_model_load("x", &p, &m), REASON_ERR_INVALID_ARG);
    expect_message("weights 3");
    /* a missing file is reported the same way whether it would have been copied or mapped */
    p.weights = REASON_WEIGHTS_COPIED;
    ck_assert_int_eq(reason_model_load("/nonexistent/model.gguf", &p, &m), REASON_ERR_IO);
    ck_assert_ptr_null(m);
}
END_TEST

START_TEST(test_truncated) {
    const size_t cuts[] = {0, 3, 24, original_size / 3, original_size / 2, original_size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        for (int32_t w = REASON_WEIGHTS_MAPPED; w <= REASON_WEIGHTS_COPIED; w++) {
            ck_assert_int_eq(load_bytes_as(original, cuts[i], w), REASON_ERR_FORMAT);
            if (cuts[i] >= 24) expect_message("offset");
        }
    ck_assert_int_eq(load_bytes_as(original, original_size, REASON_WEIGHTS_COPIED), REASON_OK);
}
END_TEST

START_TEST(test_wrong_magic) {
    unsigned char *p = patched("GGUF", "GGUX", 4);
    ck_assert_int_eq(load_bytes(p, original_size), REASON_ERR_FORMAT);
    free(p);
}
END_TEST

START_TEST(test_unknown_architecture) {
    /* the value of general.architecture: a length-prefixed "qwen3" */
    unsigned char *p = patched("\x05\0\0\0\0\0\0\0qwen3", "\x05\0\0\0\0\0\0\0qwenX", 13);
    ck_assert_int_eq(load_bytes(p, original_size), REASON_ERR_UNSUPPORTED);
    expect_message("'qwenX'");
    free(p);
}
END_TEST

START_TEST(test_missing_tensor) {
    unsigned char *p = patched("output_norm.weight", "output_norX.weight", 18);
    ck_assert_int_eq(load_bytes(p, original_size), REASON_ERR_FORMAT);
    expect_message("'output_norm.weight' is missing");
    free(p);
}
END_TEST

/* Patches the u32 value of a metadata key (type 4 follows the key). */
static unsigned char *patched_u32(const char *key, uint32_t value) {
    unsigned char *copy = malloc(original_size);
    memcpy(copy, original, original_size);
    unsigned char *at = memmem(copy, original_size, key, strlen(key));
    ck_assert_ptr_nonnull(at);
    at += strlen(key);
    uint32_t type;
    memcpy(&type, at, 4);
    ck_assert_uint_eq(type, 4);
    memcpy(at + 4, &value, 4);
    return copy;
}

START_TEST(test_wrong_shape) {
    unsigned char *p = patched_u32("qwen3.embedding_length", 255);
    ck_assert_int_eq(load_bytes(p, original_size), REASON_ERR_FORMAT);
    expect_message("token_embd.weight");
    expect_message("expected [255");
    free(p);
}
END_TEST

START_TEST(test_absurd_hyperparameters) {
    unsigned char *p = patched_u32("qwen3.block_count", 100000);
    ck_assert_int_eq(load_bytes(p, original_size), REASON_ERR_FORMAT);
    expect_message("qwen3.block_count");
    free(p);
    p = patched_u32("qwen3.attention.head_count_kv", 3);
    ck_assert_int_eq(load_bytes(p, original_size), REASON_ERR_FORMAT);
    expect_message("head_count_kv");
    free(p);
    p = patched_u32("qwen3.attention.head_count", 0);
    ck_assert_int_eq(load_bytes(p, original_size), REASON_ERR_FORMAT);
    free(p);
    /* more layers than tensors: the first missing layer is named */
    p = patched_u32("qwen3.block_count", 3);
    ck_assert_int_eq(load_bytes(p, original_size), REASON_ERR_FORMAT);
    expect_message("blk.2.");
    free(p);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model_load");
    TCase *tc = tcase_create("load");
    tcase_add_unchecked_fixture(tc, read_fixture, free_fixture);
    tcase_add_test(tc, test_fixture_metadata);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_wrong_magic);
    tcase_add_test(tc, test_unknown_architecture);
    tcase_add_test(tc, test_missing_tensor);
    tcase_add_test(tc, test_wrong_shape);
    tcase_add_test(tc, test_absurd_hyperparameters);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
