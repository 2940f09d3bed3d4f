/* hf_fixture.h — the tiny Hugging Face fixtures of tests/data/hf (<name>/ with config.json and
 * model.safetensors, <name>.json, <name>.logits.f32 — tools/gen_qwen35_fixtures.py,
 * tools/gen_gptoss_fixtures.py): copied into a temporary directory with
 * tests/data/models/qwen3-tokenizer.json as tokenizer.json (the fixtures carry none: tests/data
 * is near its size cap; token ids are what is compared), and their token ids and reference
 * logits read into a model_fixture. */
#ifndef REASON_HF_FIXTURE_H
#define REASON_HF_FIXTURE_H

#include "model_fixture.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

static inline void hf_fixture_copy(const char *src, const char *dir, const char *dst_name) {
    char dst[512];
    snprintf(dst, sizeof dst, "%s/%s", dir, dst_name);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    ck_assert_msg(in != NULL, "%s", src);
    ck_assert_ptr_nonnull(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* dir (a buffer of at least 32 bytes) becomes a fresh directory holding the fixture `name`. */
static inline void hf_fixture_setup(const char *name, char *dir, model_fixture *fx) {
    snprintf(dir, 32, "/tmp/reason-hf-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char src[1024], rel[160];
    snprintf(rel, sizeof rel, "hf/%s/config.json", name);
    hf_fixture_copy(test_data_path(rel, src, sizeof src), dir, "config.json");
    snprintf(rel, sizeof rel, "hf/%s/model.safetensors", name);
    hf_fixture_copy(test_data_path(rel, src, sizeof src), dir, "model.safetensors");
    hf_fixture_copy(test_data_path("models/qwen3-tokenizer.json", src, sizeof src), dir,
                    "tokenizer.json");
    memset(fx, 0, sizeof *fx);
    json_error_t err;
    snprintf(rel, sizeof rel, "hf/%s.json", name);
    json_t *root = json_load_file(test_data_path(rel, src, sizeof src), 0, &err);
    ck_assert_msg(root != NULL, "%s: %s", src, err.text);
    fx->n_prompt = json_ids(json_object_get(root, "prompt_ids"), fx->tokens, 512);
    fx->n_tokens = fx->n_prompt + json_ids(json_object_get(root, "greedy_ids"),
                                           fx->tokens + fx->n_prompt, 512 - fx->n_prompt);
    fx->n_vocab = (int32_t)json_integer_value(json_object_get(root, "n_vocab"));
    ck_assert_int_eq(json_integer_value(json_object_get(root, "n_rows")), fx->n_tokens);
    json_decref(root);
    snprintf(rel, sizeof rel, "hf/%s.logits.f32", name);
    FILE *fp = fopen(test_data_path(rel, src, sizeof src), "rb");
    ck_assert_ptr_nonnull(fp);
    const size_t n = (size_t)fx->n_tokens * (size_t)fx->n_vocab;
    fx->logits = malloc(n * sizeof(float));
    ck_assert_uint_eq(fread(fx->logits, sizeof(float), n, fp), n);
    fclose(fp);
}

/* Removes the directory and what is in it. */
static inline void hf_fixture_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

#endif
