/* test_hf_model.c — Hugging Face model directories (tests/data/hf, format in its README): the
 * logits of each tiny model against transformers', its tokenizer and chat template, variants
 * written here (every tensor converted to F32 — exact from BF16/F16, so the same reference holds —
 * with an untied lm_head), and bad directories (missing or wrong config fields, unknown
 * architecture, missing, misshapen or non-float tensors) refused with a message naming the file and
 * the field or tensor.
 *
 * Tolerance: 1e-4 relative max-norm per row, KV cache in F32. The reference ran in float64 on
 * exactly the stored values (bf16/f16 → f64 is exact), so only float32 rounding in our forward
 * pass differs. */
#include "model_fixture.h"
#include "test_util.h"

#include "model.h"
#include "reason.h"
#include "safetensors.h"
#include "tensor_types.h"

#include <dirent.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const fixtures[] = {"llama-BF16-sharded", "qwen2-F16", "qwen3-BF16"};
#define N_FIXTURES ((int)(sizeof fixtures / sizeof fixtures[0]))

typedef struct hf_fixture {
    model_fixture f; /* tokens, logits */
    char dir[1024];
    char prompt_text[256];
    char user_message[256];
    char *chat_text;
} hf_fixture;

static void fixture_load(const char *name, hf_fixture *h) {
    memset(h, 0, sizeof *h);
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "hf/%s", name);
    test_data_path(rel, h->dir, sizeof h->dir);
    snprintf(rel, sizeof rel, "hf/%s.json", name);
    json_error_t err;
    json_t *root = json_load_file(test_data_path(rel, path, sizeof path), 0, &err);
    ck_assert_msg(root != NULL, "%s: %s", path, err.text);
    model_fixture *f = &h->f;
    f->n_prompt = json_ids(json_object_get(root, "prompt_ids"), f->tokens, 512);
    f->n_tokens = f->n_prompt + json_ids(json_object_get(root, "greedy_ids"),
                                         f->tokens + f->n_prompt, 512 - f->n_prompt);
    f->n_vocab = (int32_t)json_integer_value(json_object_get(root, "n_vocab"));
    ck_assert_int_eq(json_integer_value(json_object_get(root, "n_rows")), f->n_tokens);
    snprintf(h->prompt_text, sizeof h->prompt_text, "%s",
             json_string_value(json_object_get(root, "prompt_text")));
    snprintf(h->user_message, sizeof h->user_message, "%s",
             json_string_value(json_object_get(root, "user_message")));
    h->chat_text = strdup(json_string_value(json_object_get(root, "chat_text")));
    snprintf(rel, sizeof rel, "hf/%s", json_string_value(json_object_get(root, "logits_file")));
    json_decref(root);
    FILE *fp = fopen(test_data_path(rel, path, sizeof path), "rb");
    ck_assert_ptr_nonnull(fp);
    const size_t n = (size_t)f->n_tokens * (size_t)f->n_vocab;
    f->logits = malloc(n * sizeof(float));
    ck_assert_uint_eq(fread(f->logits, sizeof(float), n, fp), n);
    fclose(fp);
}

static void fixture_free(hf_fixture *h) {
    model_fixture_free(&h->f);
    free(h->chat_text);
}

static reason_context *make_context(const reason_model *model) {
    reason_context_params p;
    reason_context_params_default(&p);
    p.n_ctx = 128;
    p.n_batch = 64;
    p.n_outputs_max = 64;
    p.n_seq_max = 1;
    p.kv_type = REASON_KV_F32;
    p.kv_block_size = 4;
    p.n_threads = 2;
    reason_context *ctx;
    ck_assert_msg(reason_context_create(model, &p, &ctx) == REASON_OK, "%s", reason_last_error());
    return ctx;
}

static double worst_err;

/* Runs the fixture's tokens through the model: the whole sequence in one batch, then again one
 * token at a time after the prompt; every row within tol of the reference. */
static void check_logits(const char *label, const reason_model *model, const model_fixture *f,
                         double tol) {
    reason_model_info info;
    ck_assert_int_eq(reason_model_get_info(model, &info), REASON_OK);
    ck_assert_int_eq(info.n_vocab, f->n_vocab);
    for (int pass = 0; pass < 2; pass++) {
        reason_context *ctx = make_context(model);
        int32_t pos[128], seq[128];
        int8_t want[128];
        for (int32_t i = 0; i < f->n_tokens; i++) {
            pos[i] = i;
            seq[i] = 0;
            want[i] = 1;
        }
        const int32_t first = pass == 0 ? f->n_tokens : f->n_prompt;
        for (int32_t from = 0; from < f->n_tokens;) {
            const int32_t to = from == 0 ? first : from + 1;
            const reason_batch b = {to - from, f->tokens + from, pos + from, seq + from,
                                    want + from};
            ck_assert_msg(reason_decode(ctx, &b) == REASON_OK, "%s", reason_last_error());
            for (int32_t r = from; r < to; r++) {
                const float *logits;
                ck_assert_int_eq(reason_get_logits(ctx, r - from, &logits), REASON_OK);
                const float *ref = f->logits + (size_t)r * f->n_vocab;
                const double err = rel_max_err(logits, ref, f->n_vocab);
                if (err > worst_err) worst_err = err;
                ck_assert_msg(err <= tol, "%s: logits after token %d differ by %.3g > %.1g", label,
                              r, err, tol);
                if (r >= f->n_prompt - 1 && r < f->n_tokens - 1) {
                    /* greedy agrees wherever the reference's top two are clearly apart */
                    const int32_t best = argmax(ref, f->n_vocab);
                    float second = -INFINITY, max_abs = 0;
                    for (int32_t v = 0; v < f->n_vocab; v++) {
                        if (v != best && ref[v] > second) second = ref[v];
                        max_abs = fmaxf(max_abs, fabsf(ref[v]));
                    }
                    if (ref[best] - second > 4 * tol * max_abs)
                        ck_assert_int_eq(argmax(logits, f->n_vocab), best);
                }
            }
            from = to;
        }
        reason_context_free(ctx);
    }
}

START_TEST(test_logits_match_transformers) {
    hf_fixture h;
    fixture_load(fixtures[_i], &h);
    reason_model *model;
    ck_assert_msg(reason_model_load(h.dir, NULL, &model) == REASON_OK, "%s: %s", fixtures[_i],
                  reason_last_error());
    worst_err = 0;
    check_logits(fixtures[_i], model, &h.f, 1e-4);
    fprintf(stderr, "%s: worst relative max-norm error %.3g\n", fixtures[_i], worst_err);
    reason_model_free(model);
    fixture_free(&h);
}
END_TEST

START_TEST(test_tokenizer_and_chat_template) {
    hf_fixture h;
    fixture_load(fixtures[_i], &h);
    reason_model *model;
    ck_assert_msg(reason_model_load(h.dir, NULL, &model) == REASON_OK, "%s", reason_last_error());
    const reason_tokenizer *tok;
    ck_assert_int_eq(reason_model_tokenizer(model, &tok), REASON_OK);
    reason_token ids[128];
    size_t n;
    ck_assert_int_eq(reason_tokenize(tok, h.prompt_text, strlen(h.prompt_text),
                                     REASON_TOKENIZE_PARSE_SPECIAL, ids, 128, &n),
                     REASON_OK);
    ck_assert_int_eq((int)n, h.f.n_prompt);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(ids[i], h.f.tokens[i]);
    const reason_chat_message msg = {"user", h.user_message};
    char buf[16384];
    size_t len;
    ck_assert_msg(reason_chat_apply(model, &msg, 1, NULL, buf, sizeof buf, &len) == REASON_OK, "%s",
                  reason_last_error());
    ck_assert_str_eq(buf, h.chat_text);
    ck_assert_int_eq(
        reason_model_meta_string(model, "tokenizer.chat_template", buf, sizeof buf, &len),
        REASON_OK);
    ck_assert_uint_gt(len, 100);
    reason_model_info info;
    ck_assert_int_eq(reason_model_get_info(model, &info), REASON_OK);
    ck_assert_str_eq(info.name, fixtures[_i]);
    ck_assert_int_eq(reason_model_meta_string(model, "general.architecture", buf, sizeof buf, &len),
                     REASON_OK);
    ck_assert_str_eq(buf, info.architecture);
    ck_assert_int_eq(reason_model_meta_string(model, "general.file_type", buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
    reason_model_free(model);
    fixture_free(&h);
}
END_TEST

START_TEST(test_bound_weights) {
    char dir[1024];
    reason_model *m;
    test_data_path("hf/llama-BF16-sharded", dir, sizeof dir);
    ck_assert_int_eq(reason_model_load(dir, NULL, &m), REASON_OK);
    ck_assert_str_eq(m->arch_name, "llama");
    ck_assert_int_eq(m->hp.rope_style, ROPE_NEOX); /* HF llama: q/k rows are not permuted */
    ck_assert_int_eq(m->hp.head_dim, 16);
    ck_assert_int_eq(m->hp.n_head_kv, 2);
    ck_assert_ptr_eq(m->output.data, m->tok_embd.data); /* tied */
    ck_assert_int_eq(m->tok_embd.type, TENSOR_BF16);
    ck_assert_int_eq(m->layers[1].wq.ne[0], 64);
    ck_assert_int_eq(m->layers[1].w_down.ne[0], 64);
    ck_assert_int_eq(m->layers[0].attn_norm.type, TENSOR_F32); /* converted from BF16 */
    ck_assert_str_eq(m->layers[1].wk.name, "model.layers.1.self_attn.k_proj.weight");
    /* llama3 rope scaling: theta 5e5, head_dim 16, factor 8, low 1, high 4, original context 64:
     * wavelength 2π < 16 keeps its frequency, 2π·5e5^(1/8) ≈ 32.6 is blended, the rest divided */
    ck_assert_int_eq(m->rope_freqs.ne[0], 8);
    const float *div = m->rope_freqs.data;
    ck_assert_float_eq(div[0], 1.0f);
    const double wl = 2 * M_PI * pow(5e5, 2.0 / 16), s = (64 / wl - 1) / 3;
    ck_assert_double_eq_tol(div[1], 1 / ((1 - s) / 8 + s), 1e-6);
    for (int i = 2; i < 8; i++) ck_assert_float_eq(div[i], 8.0f);
    ck_assert_uint_eq(m->n_params,
                      517 * 64 + 64 + 8 + 2 * (2 * 64 + 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 64));
    reason_model_free(m);

    test_data_path("hf/qwen3-BF16", dir, sizeof dir);
    ck_assert_int_eq(reason_model_load(dir, NULL, &m), REASON_OK);
    ck_assert_int_eq(m->hp.head_dim, 24);
    ck_assert_ptr_nonnull(m->layers[0].q_norm.data);
    ck_assert_int_eq(m->layers[0].wq.ne[1], 96);
    ck_assert_ptr_null(m->rope_freqs.data);
    reason_model_free(m);

    test_data_path("hf/qwen2-F16", dir, sizeof dir);
    ck_assert_int_eq(reason_model_load(dir, NULL, &m), REASON_OK);
    ck_assert_int_eq(m->layers[0].wq.type, TENSOR_F16);
    ck_assert_int_eq(m->layers[0].bq.type, TENSOR_F32);
    ck_assert_float_eq(m->hp.rope_theta, 1e6f);
    reason_model_free(m);
}
END_TEST

/* ---- variants written to a temporary directory ---------------------------------------------- */

static char tmp[64];

static void make_tmp(void) {
    snprintf(tmp, sizeof tmp, "/tmp/reason-hf-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void remove_tmp(void) {
    DIR *d = opendir(tmp);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmp);
}

static void copy_file(const char *src_dir, const char *name) {
    char src[1200], dst[512];
    snprintf(src, sizeof src, "%s/%s", src_dir, name);
    snprintf(dst, sizeof dst, "%s/%s", tmp, name);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

typedef struct variant {
    bool untie;        /* add lm_head.weight (a copy of the embedding), tie_word_embeddings false */
    const char *drop;  /* a tensor left out */
    const char *as_u8; /* a tensor stored as U8 bytes */
    const char *transpose;  /* a matrix stored with its dimensions swapped */
    bool misalign;          /* the data section starts 2 bytes past a multiple of 8 */
    const char *config_key; /* a config.json edit: key set to config_value (NULL: deleted) */
    json_t *config_value;   /* stolen */
} variant;

/* Writes tmp/ = the fixture's directory with every tensor as F32 in one model.safetensors, the
 * edits of v applied. */
static void write_variant(const char *fixture, const variant *v) {
    char src[1024], rel[256];
    snprintf(rel, sizeof rel, "hf/%s", fixture);
    test_data_path(rel, src, sizeof src);
    copy_file(src, "tokenizer.json");
    copy_file(src, "tokenizer_config.json");

    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", src);
    json_t *cfg = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(cfg);
    if (v->untie) json_object_set_new(cfg, "tie_word_embeddings", json_false());
    if (v->config_key) {
        if (v->config_value)
            json_object_set_new(cfg, v->config_key, v->config_value);
        else
            json_object_del(cfg, v->config_key);
    }
    snprintf(path, sizeof path, "%s/config.json", tmp);
    ck_assert_int_eq(json_dump_file(cfg, path, JSON_INDENT(2)), 0);
    json_decref(cfg);

    st_set *set;
    ck_assert_int_eq(st_set_open_dir(src, &set), REASON_OK);
    json_t *header = json_object();
    size_t total = 0;
    const int64_t n = st_set_n_tensors(set);
    float **vals = calloc((size_t)n + 1, sizeof *vals);
    size_t *counts = calloc((size_t)n + 1, sizeof *counts);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    int64_t k = 0;
    for (int64_t i = 0; i <= n; i++) {
        const st_tensor *t = st_set_tensor_at(set, i < n ? i : 0);
        const char *name = i < n ? t->name : "lm_head.weight";
        if (i == n) {
            t = st_set_find(set, "model.embed_tokens.weight");
            if (!v->untie) break;
        }
        if (v->drop && strcmp(name, v->drop) == 0) continue;
        const size_t cnt = (size_t)st_numel(t);
        float *f = malloc(cnt * sizeof(float) + 1);
        const uint8_t *p = t->data;
        for (size_t j = 0; j < cnt; j++) {
            const uint16_t h = (uint16_t)(p[2 * j] | p[2 * j + 1] << 8);
            f[j] = t->dtype == ST_F32    ? ((const float *)t->data)[j]
                   : t->dtype == ST_BF16 ? rs_bf16_to_f32(h)
                                         : rs_f16_to_f32(h);
        }
        const bool u8 = v->as_u8 && strcmp(name, v->as_u8) == 0;
        const size_t bytes = u8 ? cnt : cnt * sizeof(float);
        json_t *shape = json_array();
        for (int d = 0; d < t->n_dims; d++) {
            const int dd = v->transpose && strcmp(name, v->transpose) == 0 ? t->n_dims - 1 - d : d;
            json_array_append_new(shape, json_integer(t->shape[dd]));
        }
        json_object_set_new(header, name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", u8 ? "U8" : "F32", "shape",
                                      shape, "data_offsets", (json_int_t)total,
                                      (json_int_t)(total + bytes)));
        vals[k] = f;
        counts[k] = bytes;
        names[k++] = name;
        total += bytes;
    }
    char *text = json_dumps(header, JSON_COMPACT | JSON_SORT_KEYS);
    size_t hlen = strlen(text);
    /* aligned, as the Python writer pads it, or deliberately not */
    size_t pad = (8 - (8 + hlen) % 8) % 8 + (v->misalign ? 2 : 0);
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    FILE *out = fopen(path, "wb");
    const uint64_t hl = hlen + pad;
    for (int b = 0; b < 8; b++) fputc((int)(hl >> (8 * b)) & 0xff, out);
    fwrite(text, 1, hlen, out);
    for (size_t i = 0; i < pad; i++) fputc(' ', out);
    for (int64_t i = 0; i < k; i++) fwrite(vals[i], 1, counts[i], out);
    fclose(out);
    free(text);
    json_decref(header);
    for (int64_t i = 0; i < k; i++) free(vals[i]);
    free(vals);
    free(counts);
    free(names);
    st_set_close(set);
}

START_TEST(test_f32_untied_variant) {
    /* every fixture as F32 with lm_head = a copy of the embedding: the same function */
    hf_fixture h;
    fixture_load(fixtures[_i], &h);
    const variant v = {.untie = true, .misalign = _i == 2};
    write_variant(fixtures[_i], &v);
    reason_model *model;
    ck_assert_msg(reason_model_load(tmp, NULL, &model) == REASON_OK, "%s", reason_last_error());
    ck_assert_int_eq(model->tok_embd.type, TENSOR_F32);
    /* misaligned F32 data is copied: the kernels load whole floats */
    ck_assert_uint_eq((uintptr_t)model->tok_embd.data % 4, 0);
    ck_assert_uint_eq((uintptr_t)model->layers[0].wq.data % 4, 0);
    ck_assert_ptr_ne(model->output.data, model->tok_embd.data);
    ck_assert_str_eq(model->output.name, "lm_head.weight");
    worst_err = 0;
    check_logits(fixtures[_i], model, &h.f, 1e-4);
    fprintf(stderr, "%s as F32, untied: worst relative max-norm error %.3g\n", fixtures[_i],
            worst_err);
    reason_model_free(model);
    fixture_free(&h);
}
END_TEST

static void expect_failure(const variant *v, reason_status want, const char *needle1,
                           const char *needle2) {
    write_variant("qwen2-F16", v);
    reason_model *m = (reason_model *)0x1;
    const reason_status st = reason_model_load(tmp, NULL, &m);
    ck_assert_msg(st == want, "got %d (%s), wanted %d", st, reason_last_error(), want);
    ck_assert_ptr_null(m);
    const char *msg = reason_last_error();
    ck_assert_msg(strstr(msg, needle1) && strstr(msg, needle2), "message '%s' lacks '%s' or '%s'",
                  msg, needle1, needle2);
}

START_TEST(test_missing_config_fields) {
    static const char *const required[] = {"hidden_size",         "num_hidden_layers",
                                           "num_attention_heads", "intermediate_size",
                                           "vocab_size",          "architectures"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const variant v = {.config_key = required[i]};
        expect_failure(&v, REASON_ERR_FORMAT, "config.json", required[i]);
        expect_failure(&v, REASON_ERR_FORMAT, "required field", "missing");
    }
    /* optional ones take transformers' defaults */
    const variant opt = {.config_key = "num_key_value_heads"};
    write_variant("qwen2-F16", &opt);
    reason_model *m;
    /* 4 KV heads where the weights have 2: the k projection's shape is wrong */
    ck_assert_int_eq(reason_model_load(tmp, NULL, &m), REASON_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "model.layers.0.self_attn.k_proj.weight"));
}
END_TEST

START_TEST(test_bad_config_values) {
    const variant arch = {.config_key = "architectures",
                          .config_value = json_pack("[s]", "MistralForCausalLM")};
    expect_failure(&arch, REASON_ERR_UNSUPPORTED, "config.json", "'MistralForCausalLM'");
    const variant arch2 = {.config_key = "architectures", .config_value = json_string("x")};
    expect_failure(&arch2, REASON_ERR_FORMAT, "config.json", "\"architectures\"");
    const variant hidden = {.config_key = "hidden_size", .config_value = json_string("64")};
    expect_failure(&hidden, REASON_ERR_FORMAT, "config.json", "\"hidden_size\" is not an integer");
    const variant heads = {.config_key = "num_key_value_heads", .config_value = json_integer(3)};
    expect_failure(&heads, REASON_ERR_FORMAT, "config.json", "not a multiple");
    const variant layers = {.config_key = "num_hidden_layers", .config_value = json_integer(0)};
    expect_failure(&layers, REASON_ERR_FORMAT, "\"num_hidden_layers\" = 0", "outside");
    const variant eps = {.config_key = "rms_norm_eps", .config_value = json_string("tiny")};
    expect_failure(&eps, REASON_ERR_FORMAT, "config.json", "\"rms_norm_eps\" is not a number");
    const variant longrope = {.config_key = "rope_scaling",
                              .config_value =
                                  json_pack("{s:s, s:f}", "rope_type", "longrope", "factor", 4.0)};
    expect_failure(&longrope, REASON_ERR_UNSUPPORTED, "config.json", "'longrope'");
    const variant yarn = {.config_key = "rope_scaling",
                          .config_value =
                              json_pack("{s:s, s:f}", "rope_type", "yarn", "factor", 4.0)};
    expect_failure(&yarn, REASON_ERR_FORMAT, "config.json",
                   "\"rope_scaling.original_max_position_embeddings\" is missing");
    const variant l3 = {.config_key = "rope_scaling",
                        .config_value =
                            json_pack("{s:s, s:f}", "rope_type", "llama3", "factor", 8.0)};
    expect_failure(&l3, REASON_ERR_FORMAT, "config.json", "\"rope_scaling.low_freq_factor\"");
    const variant act = {.config_key = "hidden_act", .config_value = json_string("gelu")};
    expect_failure(&act, REASON_ERR_UNSUPPORTED, "config.json", "hidden_act");
    const variant swa = {.config_key = "use_sliding_window", .config_value = json_true()};
    expect_failure(&swa, REASON_ERR_UNSUPPORTED, "config.json", "use_sliding_window");
    const variant vocab = {.config_key = "vocab_size", .config_value = json_integer(600)};
    expect_failure(&vocab, REASON_ERR_FORMAT, "config.json", "vocab_size 600");
    const variant json = {.config_key = "tie_word_embeddings", .config_value = json_integer(1)};
    expect_failure(&json, REASON_ERR_FORMAT, "config.json", "tie_word_embeddings");
    /* linear scaling is read */
    const variant lin = {.config_key = "rope_scaling",
                         .config_value = json_pack("{s:s, s:f}", "type", "linear", "factor", 4.0)};
    write_variant("qwen2-F16", &lin);
    reason_model *m;
    ck_assert_msg(reason_model_load(tmp, NULL, &m) == REASON_OK, "%s", reason_last_error());
    ck_assert_float_eq(m->hp.rope_pos_scale, 0.25f);
    reason_model_free(m);
}
END_TEST

START_TEST(test_bad_tensors) {
    const variant drop = {.drop = "model.layers.1.self_attn.q_proj.bias"};
    expect_failure(&drop, REASON_ERR_FORMAT, "required tensor",
                   "'model.layers.1.self_attn.q_proj.bias' is missing");
    const variant emb = {.drop = "model.embed_tokens.weight"};
    expect_failure(&emb, REASON_ERR_FORMAT, "required tensor", "model.embed_tokens.weight");
    const variant u8 = {.as_u8 = "model.layers.0.mlp.up_proj.weight"};
    expect_failure(&u8, REASON_ERR_UNSUPPORTED, "'model.layers.0.mlp.up_proj.weight'", "dtype U8");
    const variant tr = {.transpose = "model.layers.0.self_attn.k_proj.weight"};
    expect_failure(&tr, REASON_ERR_FORMAT, "'model.layers.0.self_attn.k_proj.weight' has shape",
                   "expected");
    /* a tied model needs no lm_head, an untied one does */
    const variant untied = {.config_key = "tie_word_embeddings", .config_value = json_false()};
    expect_failure(&untied, REASON_ERR_FORMAT, "required tensor", "'lm_head.weight'");
}
END_TEST

START_TEST(test_missing_files) {
    reason_model *m;
    ck_assert_int_eq(reason_model_load(tmp, NULL, &m), REASON_ERR_IO);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "config.json"));
    const variant v = {0};
    write_variant("qwen2-F16", &v);
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", tmp);
    unlink(path);
    ck_assert_int_ne(reason_model_load(tmp, NULL, &m), REASON_OK);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "tokenizer"));
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    unlink(path);
    ck_assert_int_eq(reason_model_load(tmp, NULL, &m), REASON_ERR_IO);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "model.safetensors"));
    snprintf(path, sizeof path, "%s/config.json", tmp);
    FILE *f = fopen(path, "w");
    fputs("{\"architectures\": [\"Qwen2ForCausalLM\"],\n \"hidden_size\": 64,,}", f);
    fclose(f);
    ck_assert_int_eq(reason_model_load(tmp, NULL, &m), REASON_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "config.json: line 2"));
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("hf_model");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_logits_match_transformers, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_tokenizer_and_chat_template, 0, N_FIXTURES);
    tcase_add_test(tc, test_bound_weights);
    suite_add_tcase(s, tc);
    TCase *vt = tcase_create("variants");
    tcase_set_timeout(vt, 600);
    tcase_add_checked_fixture(vt, make_tmp, remove_tmp);
    tcase_add_loop_test(vt, test_f32_untied_variant, 0, N_FIXTURES);
    tcase_add_test(vt, test_missing_config_fields);
    tcase_add_test(vt, test_bad_config_values);
    tcase_add_test(vt, test_bad_tensors);
    tcase_add_test(vt, test_missing_files);
    suite_add_tcase(s, vt);
    return s;
}

int main(void) { return run_suite(suite()); }
