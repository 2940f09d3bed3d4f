/* test_qwen35.c — architecture qwen35 (Qwen3.5 dense: Gated DeltaNet + gated full attention,
 * docs/qwen35.md) loaded from the tiny Hugging Face directory tests/data/hf/qwen35-tiny against
 * transformers' float64 logits: the whole sequence in one batch, prompt then one token at a time,
 * two forked sequences decoding together, and decoding after restoring a checkpoint taken at the
 * end of the prompt (the recurrent state must come back with it). Also the
 * Qwen3_5ForConditionalGeneration layout (text_config, model.language_model. prefix, vision and
 * MTP tensors ignored), written at run time from the same weights.
 *
 * The fixture directory has no tokenizer (tests/data is near its size cap): each test copies it
 * to a temporary directory with tests/data/models/qwen3-tokenizer.json as tokenizer.json.
 *
 * Tolerance: 1e-4 relative max-norm per row, KV cache in F32. */
#include "hf_fixture.h"
#include "test_util.h"

#include "model.h"
#include "reason.h"

#include <jansson.h>
#include <string.h>
#include <unistd.h>

#define TOL 1e-4

static char tmp[32];
static const char *fixture = "qwen35-tiny"; /* or qwen35moe-tiny (setup_moe) */
static model_fixture fx;
static fixture_check chk = {&fx, TOL, 0.0};

static void setup(void) { hf_fixture_setup(fixture, tmp, &fx); }

static void setup_dense(void) { fixture = "qwen35-tiny", setup(); }
static void setup_moe(void) { fixture = "qwen35moe-tiny", setup(); }

static void teardown(void) { fixture_teardown(&chk, &fx, tmp, fixture); }

static reason_model *load(void) { return fixture_load_model(tmp); }

static reason_context *make_context(const reason_model *model, int32_t n_seq) {
    return fixture_context(model, n_seq, 64);
}

/* Batch token i's logits against the reference row after token `row`. */
static void expect_row(reason_context *ctx, int32_t i, int32_t row, const char *label) {
    fixture_expect_row(&chk, ctx, i, row, label);
}

/* Decodes tokens [from, to) of the fixture into seq (positions from..to-1), every row checked
 * when check. */
static void decode_range(reason_context *ctx, int32_t seq, int32_t from, int32_t to, bool check,
                         const char *label) {
    fixture_decode(&chk, ctx, seq, from, to, check, label);
}

START_TEST(test_info) {
    reason_model *model = load();
    reason_model_info info;
    ck_assert_int_eq(reason_model_get_info(model, &info), REASON_OK);
    ck_assert_str_eq(info.architecture, "qwen35");
    ck_assert_int_eq(info.n_vocab, fx.n_vocab);
    ck_assert_int_eq(info.n_layer, 2);
    ck_assert_int_eq(model->layers[0].kind, LAYER_DELTANET);
    ck_assert_int_eq(model->layers[1].kind, LAYER_ATTENTION);
    ck_assert_int_eq(model->hp.rope_dim, 4); /* 16 * 0.25 */
    ck_assert_int_eq(model->hp.n_attn_layer, 1);
    ck_assert_int_eq(model->hp.n_rec_layer, 1);
    ck_assert_int_eq(model->layers[1].wq.ne[1], 32);
    ck_assert_int_eq(model->layers[1].wq_gate.ne[1], 32);
    ck_assert_int_eq(model->layers[0].ssm_conv1d.ne[0], 4);
    ck_assert_int_eq(model->layers[0].ssm_conv1d.ne[1], 64);
    for (int32_t h = 0; h < 4; h++) /* -exp(A_log) */
        ck_assert(((const float *)model->layers[0].ssm_a.data)[h] < 0);
    reason_model_free(model);
}
END_TEST

START_TEST(test_one_batch) {
    reason_model *model = load();
    fixture_check_one_batch(&chk, model, 64);
    reason_model_free(model);
}
END_TEST

START_TEST(test_token_by_token) {
    reason_model *model = load();
    fixture_check_token_by_token(&chk, model, 64);
    reason_model_free(model);
}
END_TEST

/* The prompt in sequence 0, forked to 1 and 2; then 1 and 2 decode the greedy tokens together
 * (one batch per step holding a token of each), interleaved in both orders. */
START_TEST(test_fork_two_sequences) {
    reason_model *model = load();
    reason_context *ctx = make_context(model, 3);
    decode_range(ctx, 0, 0, fx.n_prompt, true, "prompt");
    reason_context_stats st;
    ck_assert_int_eq(reason_context_get_stats(ctx, &st), REASON_OK);
    ck_assert_uint_gt(st.rec_bytes, 0);
    ck_assert_uint_gt(st.kv_bytes, 0);
    const uint64_t used_before = st.rec_slots_used;
    ck_assert_int_eq(reason_seq_fork(ctx, 0, 1), REASON_OK);
    ck_assert_int_eq(reason_seq_fork(ctx, 0, 2), REASON_OK);
    /* forks share the parent's recurrent slot until they write */
    ck_assert_int_eq(reason_context_get_stats(ctx, &st), REASON_OK);
    ck_assert_uint_eq(st.rec_slots_used, used_before);
    for (int32_t t = fx.n_prompt; t < fx.n_tokens; t++) {
        const int32_t first = t % 2 ? 1 : 2, second = 3 - first;
        const int32_t tok[2] = {fx.tokens[t], fx.tokens[t]}, pos[2] = {t, t},
                      sid[2] = {first, second};
        const int8_t want[2] = {1, 1};
        const reason_batch b = {2, tok, pos, sid, want};
        ck_assert_msg(reason_decode(ctx, &b) == REASON_OK, "%s", reason_last_error());
        expect_row(ctx, 0, t, "forked");
        expect_row(ctx, 1, t, "forked");
        if (t == fx.n_prompt) {
            /* both children wrote: each now has a private copy */
            ck_assert_int_eq(reason_context_get_stats(ctx, &st), REASON_OK);
            ck_assert_uint_eq(st.rec_slots_used, used_before + 2);
        }
    }
    /* the parent was left at the end of the prompt: it continues on its own */
    decode_range(ctx, 0, fx.n_prompt, fx.n_tokens, true, "parent after fork");
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

/* Two sequences' whole token lists in one batch, interleaved token by token: each token's
 * DeltaNet step must use its own sequence's slot. */
START_TEST(test_interleaved_sequences) {
    reason_model *model = load();
    reason_context *ctx = make_context(model, 2);
    int32_t tok[128], pos[128], sid[128];
    const int32_t n = fx.n_tokens;
    for (int32_t i = 0; i < 2 * n; i++) {
        tok[i] = fx.tokens[i / 2];
        pos[i] = i / 2;
        sid[i] = i % 2;
    }
    int8_t want[128];
    memset(want, 1, sizeof want);
    const reason_batch b = {2 * n, tok, pos, sid, want};
    ck_assert_msg(reason_decode(ctx, &b) == REASON_OK, "%s", reason_last_error());
    for (int32_t i = 0; i < 2 * n; i++) expect_row(ctx, i, i / 2, "interleaved");
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

/* A checkpoint at the end of the prompt; the sequence then decodes other tokens (changing its
 * recurrent state), is restored and decodes the greedy tokens one at a time. */
START_TEST(test_checkpoint_restore) {
    reason_model *model = load();
    reason_context *ctx = make_context(model, 2);
    decode_range(ctx, 0, 0, fx.n_prompt, true, "prompt");
    ck_assert_int_eq(reason_seq_checkpoint(ctx, 0, 1), REASON_OK);
    /* a detour: the prompt's own tokens again, at the following positions */
    int32_t pos[64], sid[64];
    for (int32_t i = 0; i < fx.n_prompt; i++) {
        pos[i] = fx.n_prompt + i;
        sid[i] = 0;
    }
    const reason_batch detour = {fx.n_prompt, fx.tokens, pos, sid, NULL};
    ck_assert_msg(reason_decode(ctx, &detour) == REASON_OK, "%s", reason_last_error());
    /* a recurrent sequence cannot be rewound to an arbitrary position */
    ck_assert_int_eq(reason_seq_truncate(ctx, 0, fx.n_prompt + 2), REASON_ERR_UNSUPPORTED);
    ck_assert_int_eq(reason_seq_restore(ctx, 1, 0), REASON_OK);
    int32_t len = -1;
    ck_assert_int_eq(reason_seq_length(ctx, 0, &len), REASON_OK);
    ck_assert_int_eq(len, fx.n_prompt);
    for (int32_t t = fx.n_prompt; t < fx.n_tokens; t++)
        decode_range(ctx, 0, t, t + 1, true, "after restore");
    /* and again: the checkpoint is unchanged by the restored sequence's decoding */
    ck_assert_int_eq(reason_seq_restore(ctx, 1, 0), REASON_OK);
    decode_range(ctx, 0, fx.n_prompt, fx.n_tokens, true, "second restore");
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

/* A safetensors file in memory: its header as JSON and its data. */
typedef struct st_image {
    uint8_t *bytes;
    json_t *header;
    const uint8_t *data;
    size_t data_len;
} st_image;

static st_image read_safetensors(const char *path) {
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    const long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    st_image im = {.bytes = malloc((size_t)size)};
    ck_assert_int_eq(fread(im.bytes, 1, (size_t)size, fp), (size_t)size);
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | im.bytes[i];
    im.header = json_loadb((const char *)im.bytes + 8, (size_t)hlen, 0, NULL);
    ck_assert_ptr_nonnull(im.header);
    im.data = im.bytes + 8 + hlen;
    im.data_len = (size_t)size - 8 - (size_t)hlen;
    return im;
}

static void st_image_free(st_image *im) {
    json_decref(im->header);
    free(im->bytes);
}

static void write_safetensors(const char *path, const json_t *header, const uint8_t *data,
                              size_t data_len) {
    char *h = json_dumps(header, JSON_COMPACT);
    size_t n = strlen(h), padded = (n + 7) / 8 * 8;
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(padded >> (8 * i));
    fwrite(len8, 1, 8, fp);
    fwrite(h, 1, n, fp);
    for (size_t i = n; i < padded; i++) fputc(' ', fp);
    ck_assert_uint_eq(fwrite(data, 1, data_len, fp), data_len);
    fclose(fp);
    free(h);
}

/* Rewrites tmp/ as a Qwen3_5ForConditionalGeneration checkpoint: config under text_config,
 * weights renamed model.language_model.*, plus a vision and an MTP tensor. */
static void write_conditional_generation(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", tmp);
    json_t *text = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(text);
    json_object_set_new(text, "model_type", json_string("qwen3_5_text"));
    json_object_del(text, "architectures");
    json_t *cfg = json_object();
    const bool moe = strstr(fixture, "moe") != NULL;
    json_object_set_new(cfg, "architectures",
                        json_pack("[s]", moe ? "Qwen3_5MoeForConditionalGeneration"
                                             : "Qwen3_5ForConditionalGeneration"));
    json_object_set_new(cfg, "model_type", json_string("qwen3_5"));
    json_object_set_new(cfg, "tie_word_embeddings", json_true());
    json_object_set_new(cfg, "vision_config", json_pack("{s:i}", "depth", 2));
    json_object_set_new(cfg, "text_config", text);
    ck_assert_int_eq(json_dump_file(cfg, path, JSON_INDENT(2)), 0);
    json_decref(cfg);

    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    st_image im = read_safetensors(path);
    json_t *header = im.header;
    const size_t data_len = im.data_len;
    json_t *out = json_object();
    const char *key;
    json_t *val;
    json_object_foreach(header, key, val) {
        char name[256];
        if (strncmp(key, "model.", 6) == 0)
            snprintf(name, sizeof name, "model.language_model.%s", key + 6);
        else
            snprintf(name, sizeof name, "%s", key);
        json_object_set(out, name, val);
    }
    /* two extra BF16 vectors of 8 after the original data */
    json_object_set_new(out, "model.visual.blocks.0.norm1.weight",
                        json_pack("{s:s,s:[i],s:[I,I]}", "dtype", "BF16", "shape", 8,
                                  "data_offsets", (json_int_t)data_len, (json_int_t)data_len + 16));
    json_object_set_new(out, "mtp.norm.weight",
                        json_pack("{s:s,s:[i],s:[I,I]}", "dtype", "BF16", "shape", 8,
                                  "data_offsets", (json_int_t)data_len + 16,
                                  (json_int_t)data_len + 32));
    uint8_t *data = calloc(data_len + 32, 1); /* the two extra vectors: zeros */
    ck_assert_ptr_nonnull(data);
    memcpy(data, im.data, data_len);
    write_safetensors(path, out, data, data_len + 32);
    free(data);
    json_decref(out);
    st_image_free(&im);
}

/* Rewrites tmp/ (the MoE fixture) with each layer's experts in transformers 5's fused form:
 * mlp.experts.gate_up_proj (E, 2F, D) — gate rows then up rows per expert — and
 * mlp.experts.down_proj (E, D, F), instead of one tensor per expert. */
static void write_fused_experts(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    st_image im = read_safetensors(path);
    json_t *out = json_object();
    uint8_t *data = malloc(im.data_len);
    ck_assert_ptr_nonnull(data);
    size_t at = 0;
    const char *key;
    json_t *val;
    /* the tensors that stay as they are */
    json_object_foreach(im.header, key, val) {
        if (strstr(key, ".mlp.experts.") || strcmp(key, "__metadata__") == 0) continue;
        const size_t b = (size_t)json_integer_value(json_array_get(json_object_get(val, "data_offsets"), 0));
        const size_t e = (size_t)json_integer_value(json_array_get(json_object_get(val, "data_offsets"), 1));
        memcpy(data + at, im.data + b, e - b);
        json_t *t = json_deep_copy(val);
        json_object_set_new(t, "data_offsets", json_pack("[I,I]", (json_int_t)at, (json_int_t)(at + e - b)));
        json_object_set_new(out, key, t);
        at += e - b;
    }
    for (int il = 0;; il++) {
        char name[160];
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.0.gate_proj.weight", il);
        if (!json_object_get(im.header, name)) break;
        static const char *const parts[3] = {"gate_proj", "up_proj", "down_proj"};
        const size_t first_gate_up = at;
        int64_t shape[3][2];
        int n_expert = 0;
        for (int p = 0; p < 3; p++) {
            if (p == 2) { /* down_proj follows the fused gate_up_proj */
                snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj", il);
                json_object_set_new(out, name,
                                    json_pack("{s:s,s:[i,I,I],s:[I,I]}", "dtype", "BF16", "shape",
                                              n_expert, 2 * shape[0][0], shape[0][1],
                                              "data_offsets", (json_int_t)first_gate_up,
                                              (json_int_t)at));
            }
            const size_t first = at;
            for (int e = 0;; e++) {
                for (int q = (p == 2 ? 2 : 0); q <= (p == 2 ? 2 : 1); q++) {
                    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.%s.weight", il, e,
                             parts[q]);
                    json_t *t = json_object_get(im.header, name);
                    if (!t) goto next_part;
                    json_t *off = json_object_get(t, "data_offsets"), *shp = json_object_get(t, "shape");
                    const size_t b = (size_t)json_integer_value(json_array_get(off, 0));
                    const size_t end = (size_t)json_integer_value(json_array_get(off, 1));
                    shape[q][0] = json_integer_value(json_array_get(shp, 0));
                    shape[q][1] = json_integer_value(json_array_get(shp, 1));
                    memcpy(data + at, im.data + b, end - b);
                    at += end - b;
                }
                if (p == 0) n_expert = e + 1;
            }
        next_part:
            if (p == 2) {
                snprintf(name, sizeof name, "model.layers.%d.mlp.experts.down_proj", il);
                json_object_set_new(out, name,
                                    json_pack("{s:s,s:[i,I,I],s:[I,I]}", "dtype", "BF16", "shape",
                                              n_expert, shape[2][0], shape[2][1], "data_offsets",
                                              (json_int_t)first, (json_int_t)at));
            }
            if (p == 0) p = 1; /* gate and up were copied together, expert by expert */
        }
    }
    ck_assert_uint_eq(at, im.data_len);
    write_safetensors(path, out, data, at);
    free(data);
    json_decref(out);
    st_image_free(&im);
}

START_TEST(test_conditional_generation) {
    write_conditional_generation();
    reason_model *model = load();
    reason_context *ctx = make_context(model, 1);
    decode_range(ctx, 0, 0, fx.n_tokens, true, "ConditionalGeneration");
    reason_context_free(ctx);
    reason_model_free(model);
}
END_TEST

/* Without layer_types the pattern follows full_attention_interval: with 2 layers and interval 2,
 * the same L F as the fixture (same logits); with interval 1 both layers are attention and the
 * DeltaNet weights of layer 0 are missing. */
START_TEST(test_full_attention_interval) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", tmp);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_object_del(cfg, "layer_types");
    json_object_set_new(cfg, "full_attention_interval", json_integer(2));
    ck_assert_int_eq(json_dump_file(cfg, path, JSON_INDENT(2)), 0);
    reason_model *model = load();
    reason_context *ctx = make_context(model, 1);
    decode_range(ctx, 0, 0, fx.n_tokens, true, "interval 2");
    reason_context_free(ctx);
    reason_model_free(model);
    json_object_set_new(cfg, "full_attention_interval", json_integer(1));
    ck_assert_int_eq(json_dump_file(cfg, path, JSON_INDENT(2)), 0);
    json_decref(cfg);
    ck_assert_int_eq(reason_model_load(tmp, NULL, &model), REASON_ERR_FORMAT);
    ck_assert_msg(strstr(reason_last_error(), "model.layers.0.self_attn.q_proj.weight") != NULL,
                  "%s", reason_last_error());
}
END_TEST

/* qwen35moe: experts and the shared expert bound, whether saved one tensor per expert or
 * fused, and the same logits either way. */
START_TEST(test_moe_info) {
    reason_model *model = load();
    reason_model_info info;
    ck_assert_int_eq(reason_model_get_info(model, &info), REASON_OK);
    ck_assert_str_eq(info.architecture, "qwen35moe");
    ck_assert_int_eq(model->hp.n_expert, 8);
    ck_assert_int_eq(model->hp.n_expert_used, 3);
    ck_assert_int_eq(model->hp.n_ff_exp, 8);
    ck_assert_int_eq(model->hp.n_ff_shexp, 12);
    ck_assert_int_eq(model->layers[0].exp_gate[8].ne[1], 12); /* the shared expert */
    reason_model_free(model);
}
END_TEST

START_TEST(test_moe_fused_experts) {
    write_fused_experts();
    reason_model *model = load();
    fixture_check_token_by_token(&chk, model, 64);
    reason_model_free(model);
}
END_TEST

START_TEST(test_runtime_budget_and_vote) {
    reason_model *model = load();
    fixture_check_runtime(model);
    reason_model_free(model);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("qwen35");
    TCase *tm = tcase_create("moe");
    tcase_add_checked_fixture(tm, setup_moe, teardown);
    tcase_add_test(tm, test_moe_info);
    tcase_add_test(tm, test_one_batch);
    tcase_add_test(tm, test_token_by_token);
    tcase_add_test(tm, test_fork_two_sequences);
    tcase_add_test(tm, test_interleaved_sequences);
    tcase_add_test(tm, test_checkpoint_restore);
    tcase_add_test(tm, test_conditional_generation);
    tcase_add_test(tm, test_moe_fused_experts);
    tcase_add_test(tm, test_runtime_budget_and_vote);
    suite_add_tcase(s, tm);
    TCase *tc = tcase_create("hf");
    tcase_add_checked_fixture(tc, setup_dense, teardown);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_one_batch);
    tcase_add_test(tc, test_token_by_token);
    tcase_add_test(tc, test_fork_two_sequences);
    tcase_add_test(tc, test_interleaved_sequences);
    tcase_add_test(tc, test_checkpoint_restore);
    tcase_add_test(tc, test_conditional_generation);
    tcase_add_test(tc, test_full_attention_interval);
    tcase_add_test(tc, test_runtime_budget_and_vote);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
