/* model_fixture.h — reading the reference fixtures of tests/data/models (format in its README):
 * a GGUF model, the token ids of a prompt and of 16 greedy steps, and the logits transformers
 * computed after every one of those tokens. */
#ifndef REASON_MODEL_FIXTURE_H
#define REASON_MODEL_FIXTURE_H

#include "test_util.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

typedef struct model_fixture {
    char gguf[1024];
    int32_t tokens[512]; /* prompt then greedy */
    int32_t n_prompt;
    int32_t n_tokens;
    int32_t n_vocab;
    float *logits; /* (n_tokens, n_vocab) */
} model_fixture;

static inline int32_t json_ids(json_t *arr, int32_t *out, int32_t cap) {
    int32_t n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (n < cap) out[n++] = (int32_t)json_integer_value(v);
    }
    return n;
}

/* Loads tests/data/models/<name>.{gguf,json} and the logits; 0 on success. */
static inline int model_fixture_load(const char *name, model_fixture *f) {
    memset(f, 0, sizeof *f);
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    test_data_path(rel, f->gguf, sizeof f->gguf);
    snprintf(rel, sizeof rel, "models/%s.json", name);
    json_error_t err;
    json_t *root = json_load_file(test_data_path(rel, path, sizeof path), 0, &err);
    if (!root) return -1;
    f->n_prompt = json_ids(json_object_get(root, "prompt_ids"), f->tokens, 512);
    f->n_tokens = f->n_prompt +
                  json_ids(json_object_get(root, "greedy_ids"), f->tokens + f->n_prompt, 512 - f->n_prompt);
    f->n_vocab = (int32_t)json_integer_value(json_object_get(root, "n_vocab"));
    const int32_t n_rows = (int32_t)json_integer_value(json_object_get(root, "n_rows"));
    snprintf(rel, sizeof rel, "models/%s", json_string_value(json_object_get(root, "logits_file")));
    json_decref(root);
    if (n_rows != f->n_tokens || f->n_vocab <= 0) return -1;
    FILE *fp = fopen(test_data_path(rel, path, sizeof path), "rb");
    if (!fp) return -1;
    f->logits = malloc(sizeof(float) * (size_t)n_rows * (size_t)f->n_vocab);
    const size_t got = f->logits ? fread(f->logits, sizeof(float), (size_t)n_rows * f->n_vocab, fp) : 0;
    fclose(fp);
    return got == (size_t)n_rows * (size_t)f->n_vocab ? 0 : -1;
}

static inline void model_fixture_free(model_fixture *f) { free(f->logits); }

/* max |a - b| / max |b|: the relative max-norm error of a row of logits. */
static inline double rel_max_err(const float *a, const float *b, int32_t n) {
    double num = 0, den = 0;
    for (int32_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / (den > 0 ? den : 1);
}

static inline int32_t argmax(const float *v, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

#endif
