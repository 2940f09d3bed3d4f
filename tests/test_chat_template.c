/* test_chat_template.c — our renderers against the real Jinja templates rendered by jinja2
 * (tests/data/chat/cases.json from tools/gen_chat_fixtures.py) and against OpenAI's Harmony
 * renderer, openai-harmony (tests/data/chat/harmony.json from tools/gen_harmony_fixtures.py: texts
 * and o200k_harmony token ids), Gemma 4's two templates (tests/data/chat/gemma4.json from
 * tools/gen_gemma4_chat_fixtures.py), detection, and errors. */
#include "chat_template.h"
#include "model.h"
#include "test_util.h"

#include <jansson.h>
#include <string.h>
#include <time.h>

static char *read_text(const char *name) {
    char path[1024];
    test_data_path(name, path, sizeof path);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static json_t *load_json(const char *name) {
    char path[1024];
    test_data_path(name, path, sizeof path);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    ck_assert_msg(root != NULL, "%s:%d: %s", path, err.line, err.text);
    return root;
}

static json_t *load_cases(void) { return load_json("chat/cases.json"); }

/* Renders into an exactly sized buffer (after asking for the size) and returns it. */
static char *render_alloc(int32_t kind, const reason_chat_message *m, size_t n,
                          const reason_chat_params *p, reason_status *status) {
    size_t need = 0;
    reason_status st = chat_render(kind, m, n, p, NULL, 0, &need);
    if (st != REASON_ERR_BUFFER) {
        *status = st;
        return NULL;
    }
    char *buf = malloc(need + 1);
    size_t len = 0;
    *status = chat_render(kind, m, n, p, buf, need + 1, &len);
    if (*status == REASON_OK) ck_assert_uint_eq(len, need);
    return buf;
}

/* Every case of a jinja2 fixture file: detection of its template, then the rendering. */
static void check_fixture_file(const char *file_name, size_t min_cases) {
    json_t *root = load_json(file_name);
    json_t *templates = json_object_get(root, "templates");
    json_t *cases = json_object_get(root, "cases");
    ck_assert(json_is_object(templates) && json_is_array(cases));
    ck_assert_uint_gt(json_array_size(cases), min_cases);

    size_t i;
    json_t *c;
    int n_checked = 0;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *tname = json_string_value(json_object_get(c, "template"));
        json_t *t = json_object_get(templates, tname);
        char file[256];
        snprintf(file, sizeof file, "chat/%s", json_string_value(json_object_get(t, "file")));
        char *src = read_text(file);

        int32_t variant = -1, kind = -1;
        ck_assert_int_eq(chat_detect_variant(src, &variant), REASON_OK);
        ck_assert_msg(variant == json_integer_value(json_object_get(t, "variant")),
                      "%s: detected variant %d", tname, variant);
        ck_assert_int_eq(reason_chat_detect(src, &kind), REASON_OK);
        ck_assert_int_eq(kind, (int32_t)json_integer_value(json_object_get(t, "kind")));
        free(src);

        json_t *jm = json_object_get(c, "messages");
        size_t n = json_array_size(jm);
        reason_chat_message *msgs = calloc(n ? n : 1, sizeof *msgs);
        for (size_t k = 0; k < n; k++) {
            msgs[k].role = json_string_value(json_object_get(json_array_get(jm, k), "role"));
            msgs[k].content = json_string_value(json_object_get(json_array_get(jm, k), "content"));
        }
        reason_chat_params p;
        reason_chat_params_default(&p);
        p.add_generation_prompt =
            (int32_t)json_integer_value(json_object_get(c, "add_generation_prompt"));
        p.enable_thinking = (int32_t)json_integer_value(json_object_get(c, "enable_thinking"));
        p.reasoning_effort = (int32_t)json_integer_value(json_object_get(c, "reasoning_effort"));
        p.preserve_thinking = (int32_t)json_integer_value(json_object_get(c, "preserve_thinking"));

        reason_status st;
        const char *refused = json_string_value(json_object_get(c, "error"));
        if (refused) { /* the template raises: so do we, with its message */
            char *got = render_alloc(variant, msgs, n, &p, &st);
            ck_assert_msg(st == REASON_ERR_TEMPLATE, "%s: status %d", name, st);
            ck_assert_msg(strstr(reason_last_error(), refused) != NULL, "%s: %s", name,
                          reason_last_error());
            free(got);
            free(msgs);
            n_checked++;
            continue;
        }
        char *got = render_alloc(variant, msgs, n, &p, &st);
        ck_assert_msg(st == REASON_OK, "%s: %s", name, reason_last_error());
        const char *want = json_string_value(json_object_get(c, "expected"));
        if (strcmp(got, want) != 0) {
            size_t at = 0;
            while (got[at] && got[at] == want[at]) at++;
            ck_abort_msg("%s: differs at byte %zu\n got: %s\nwant: %s", name, at, got + at,
                         want + at);
        }
        /* Where the variant is a public kind, the public call with an explicit kind agrees. */
        if (variant <= REASON_TEMPLATE_QWEN35 || variant == REASON_TEMPLATE_GEMMA4) {
            p.template_kind = variant;
            size_t len = 0;
            char *buf = malloc(strlen(want) + 1);
            ck_assert_int_eq(reason_chat_apply(NULL, msgs, n, &p, buf, strlen(want) + 1, &len),
                             REASON_OK);
            ck_assert_str_eq(buf, want);
            ck_assert_uint_eq(len, strlen(want));
            free(buf);
        }
        free(got);
        free(msgs);
        n_checked++;
    }
    ck_assert_int_eq(n_checked, (int)json_array_size(cases));
    json_decref(root);
}

START_TEST(test_fixtures) { check_fixture_file("chat/cases.json", 100); }
END_TEST

/* Gemma 4's two templates as jinja2 renders them (tools/gen_gemma4_chat_fixtures.py). */
START_TEST(test_gemma4_fixtures) { check_fixture_file("chat/gemma4.json", 100); }
END_TEST

/* The templates as shipped (tokenizer_config.json in the shared data), where present. */
START_TEST(test_detect_shared_sources) {
    static const struct {
        const char *dir;
        int32_t kind;
    } expect[] = {
        {"qwen3", REASON_TEMPLATE_QWEN3},       {"qwen2_5", REASON_TEMPLATE_CHATML},
        {"llama3", REASON_TEMPLATE_LLAMA3},     {"llama3_2", REASON_TEMPLATE_LLAMA3},
    };
    int found = 0;
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        char name[256], path[1024];
        snprintf(name, sizeof name, "tokenizers/%s/tokenizer_config.json", expect[i].dir);
        shared_data_path(name, path, sizeof path);
        json_error_t err;
        json_t *cfg = json_load_file(path, 0, &err);
        if (!cfg) continue;
        found++;
        const char *src = json_string_value(json_object_get(cfg, "chat_template"));
        ck_assert_ptr_nonnull(src);
        int32_t kind = -1;
        ck_assert_int_eq(reason_chat_detect(src, &kind), REASON_OK);
        ck_assert_int_eq(kind, expect[i].kind);
        json_decref(cfg);
    }
    if (!found) fprintf(stderr, "test_detect_shared_sources: no shared tokenizers, skipped\n");
}
END_TEST

START_TEST(test_detect_fragments) {
    int32_t kind = -1, v = -1;
    ck_assert_int_eq(reason_chat_detect("{{'<|im_start|>' + m}}", &kind), REASON_OK);
    ck_assert_int_eq(kind, REASON_TEMPLATE_CHATML);
    ck_assert_int_eq(reason_chat_detect("<|im_start|>{% if enable_thinking %}", &kind), REASON_OK);
    ck_assert_int_eq(kind, REASON_TEMPLATE_QWEN3);
    ck_assert_int_eq(reason_chat_detect("<|im_start|> SmolLM", &kind), REASON_OK);
    ck_assert_int_eq(kind, REASON_TEMPLATE_SMOLLM2);
    ck_assert_int_eq(reason_chat_detect("x<|start_header_id|>y", &kind), REASON_OK);
    ck_assert_int_eq(kind, REASON_TEMPLATE_LLAMA3);
    ck_assert_int_eq(reason_chat_detect("{{'<｜Assistant｜>'}}", &kind), REASON_OK);
    ck_assert_int_eq(kind, REASON_TEMPLATE_DEEPSEEK_R1);
    ck_assert_int_eq(chat_detect_variant("{{'<｜Assistant｜><think>\\n'}}", &v), REASON_OK);
    ck_assert_int_eq(v, CHAT_DEEPSEEK_R1);
    ck_assert_int_eq(chat_detect_variant("{{'<｜Assistant｜>'}}", &v), REASON_OK);
    ck_assert_int_eq(v, CHAT_DEEPSEEK_R1_V1);
    ck_assert_int_eq(reason_chat_detect("<|im_start|>{% macro render_content(c) %}{% endmacro %}"
                                        "{% if enable_thinking %}", &kind), REASON_OK);
    ck_assert_int_eq(kind, REASON_TEMPLATE_QWEN35);
    /* later Qwen templates (preserve_thinking, reasoning_effort) render differently: unknown */
    ck_assert_int_eq(reason_chat_detect("<|im_start|>render_content(x) enable_thinking "
                                        "preserve_thinking", &kind), REASON_ERR_UNSUPPORTED);
    ck_assert_int_eq(reason_chat_detect("<|im_start|>render_content(x) enable_thinking "
                                        "reasoning_effort", &kind), REASON_ERR_UNSUPPORTED);
    ck_assert_int_eq(chat_detect_variant("<|im_start|>render_content(x) enable_thinking "
                                         "reasoning_effort|default('xhigh') preserve_thinking is "
                                         "undefined or preserve_thinking is true", &v), REASON_OK);
    ck_assert_int_eq(v, CHAT_QWEN38);

    kind = 77;
    ck_assert_int_eq(reason_chat_detect("{{ '[INST] ' + content + ' [/INST]' }}", &kind),
                     REASON_ERR_UNSUPPORTED);
    ck_assert_int_eq(kind, 77);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "raw text"));
    ck_assert_int_eq(reason_chat_detect("", &kind), REASON_ERR_UNSUPPORTED);
    ck_assert_int_eq(reason_chat_detect(NULL, &kind), REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_chat_detect("<|im_start|>", NULL), REASON_ERR_INVALID_ARG);
}
END_TEST

static const reason_chat_message two[] = {{"system", "sys"}, {"user", "hello"}};

START_TEST(test_buffer) {
    reason_chat_params p;
    reason_chat_params_default(&p);
    p.template_kind = REASON_TEMPLATE_CHATML;
    const char *want = "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
                       "<|im_start|>assistant\n";
    size_t n = strlen(want), len = 0;
    char buf[256];

    memset(buf, 'x', sizeof buf);
    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, buf, n, &len), REASON_ERR_BUFFER);
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(buf[0], 'x'); /* untouched on failure */
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "too small"));

    len = 0;
    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, NULL, 0, &len), REASON_ERR_BUFFER);
    ck_assert_uint_eq(len, n);

    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, buf, n + 1, &len), REASON_OK);
    ck_assert_uint_eq(len, n);
    ck_assert_str_eq(buf, want);

    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, buf, sizeof buf, NULL), REASON_OK);
    ck_assert_str_eq(buf, want);
}
END_TEST

START_TEST(test_errors) {
    reason_chat_params p;
    reason_chat_params_default(&p);
    ck_assert_int_eq(p.template_kind, REASON_TEMPLATE_AUTO);
    ck_assert_int_eq(p.add_generation_prompt, 1);
    ck_assert_int_eq(p.enable_thinking, 1);
    char buf[512];
    size_t len;

    /* AUTO needs a model. */
    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, NULL, buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
    /* Unknown kinds, including internal variants, are not public kinds. */
    p.template_kind = REASON_TEMPLATE_GEMMA4 + 1;
    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
    /* Qwen3.5 refuses what its template raises on: a system message after the first, and a
     * conversation without a user query. */
    p.template_kind = REASON_TEMPLATE_QWEN35;
    const reason_chat_message late_system[] = {{"user", "hi"}, {"system", "sys"}};
    ck_assert_int_eq(reason_chat_apply(NULL, late_system, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_TEMPLATE);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "System message must be at the beginning."));
    const reason_chat_message no_query[] = {{"system", "sys"},
                                            {"user", " <tool_response>1</tool_response>\n"}};
    ck_assert_int_eq(reason_chat_apply(NULL, no_query, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_TEMPLATE);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "No user query found in messages."));
    /* Out-of-range Qwen3.8 settings. */
    p.preserve_thinking = 3;
    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
    p.preserve_thinking = REASON_CHAT_PRESERVE_DEFAULT;
    p.reasoning_effort = -1;
    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
    p.reasoning_effort = REASON_CHAT_EFFORT_DEFAULT;
    p.template_kind = CHAT_QWEN2_5;
    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
    p.template_kind = -1;
    ck_assert_int_eq(reason_chat_apply(NULL, two, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
    ck_assert_int_eq(chat_render(0, two, 2, NULL, buf, sizeof buf, &len), REASON_ERR_INVALID_ARG);

    for (int32_t kind = REASON_TEMPLATE_CHATML; kind <= REASON_TEMPLATE_SMOLLM2; kind++) {
        p.template_kind = kind;
        ck_assert_int_eq(reason_chat_apply(NULL, NULL, 1, &p, buf, sizeof buf, &len),
                         REASON_ERR_INVALID_ARG);
        ck_assert_int_eq(reason_chat_apply(NULL, two, 0, &p, buf, sizeof buf, &len),
                         REASON_ERR_INVALID_ARG);
        const reason_chat_message bad_role[] = {{"user", "a"}, {"tool", "b"}};
        ck_assert_int_eq(reason_chat_apply(NULL, bad_role, 2, &p, buf, sizeof buf, &len),
                         REASON_ERR_TEMPLATE);
        ck_assert_ptr_nonnull(strstr(reason_last_error(), "messages[1]"));
        ck_assert_ptr_nonnull(strstr(reason_last_error(), "tool"));
        const reason_chat_message null_role[] = {{"user", "a"}, {NULL, "b"}};
        ck_assert_int_eq(reason_chat_apply(NULL, null_role, 2, &p, buf, sizeof buf, &len),
                         REASON_ERR_INVALID_ARG);
        ck_assert_ptr_nonnull(strstr(reason_last_error(), "messages[1].role"));
        const reason_chat_message null_content[] = {{"user", NULL}};
        ck_assert_int_eq(reason_chat_apply(NULL, null_content, 1, &p, buf, sizeof buf, &len),
                         REASON_ERR_INVALID_ARG);
        ck_assert_ptr_nonnull(strstr(reason_last_error(), "messages[0].content"));
        const reason_chat_message upper[] = {{"User", "a"}};
        ck_assert_int_eq(reason_chat_apply(NULL, upper, 1, &p, buf, sizeof buf, &len),
                         REASON_ERR_TEMPLATE);
    }
}
END_TEST

/* AUTO with a model whose only content is its template source: every fixture case renders the
 * same as with the detected variant. */
START_TEST(test_apply_auto_fake_model) {
    json_t *root = load_cases();
    json_t *templates = json_object_get(root, "templates");
    size_t i;
    json_t *c;
    int n_checked = 0;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        json_t *t = json_object_get(templates, json_string_value(json_object_get(c, "template")));
        char file[256];
        snprintf(file, sizeof file, "chat/%s", json_string_value(json_object_get(t, "file")));
        struct reason_model model;
        memset(&model, 0, sizeof model);
        model.chat_template = read_text(file);

        json_t *jm = json_object_get(c, "messages");
        size_t n = json_array_size(jm);
        reason_chat_message msgs[16];
        ck_assert_uint_le(n, 16);
        for (size_t k = 0; k < n; k++) {
            msgs[k].role = json_string_value(json_object_get(json_array_get(jm, k), "role"));
            msgs[k].content = json_string_value(json_object_get(json_array_get(jm, k), "content"));
        }
        reason_chat_params p;
        reason_chat_params_default(&p);
        p.add_generation_prompt =
            (int32_t)json_integer_value(json_object_get(c, "add_generation_prompt"));
        p.enable_thinking = (int32_t)json_integer_value(json_object_get(c, "enable_thinking"));
        p.reasoning_effort = (int32_t)json_integer_value(json_object_get(c, "reasoning_effort"));
        p.preserve_thinking = (int32_t)json_integer_value(json_object_get(c, "preserve_thinking"));
        const char *want = json_string_value(json_object_get(c, "expected"));
        char buf[4096];
        size_t len = 0;
        const reason_status st = reason_chat_apply(&model, msgs, n, &p, buf, sizeof buf, &len);
        if (json_object_get(c, "error")) {
            ck_assert_int_eq(st, REASON_ERR_TEMPLATE);
        } else {
            ck_assert_msg(st == REASON_OK, "%s", reason_last_error());
            ck_assert_str_eq(buf, want);
        }
        free(model.chat_template);
        n_checked++;
    }
    ck_assert_int_eq(n_checked, (int)json_array_size(json_object_get(root, "cases")));
    json_decref(root);

    /* No template, or one we do not know: unsupported, with the way out in the message. */
    struct reason_model model;
    memset(&model, 0, sizeof model);
    char buf[256];
    size_t len;
    ck_assert_int_eq(reason_chat_apply(&model, two, 2, NULL, buf, sizeof buf, &len),
                     REASON_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "raw text"));
    char mistral[] = "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]"
                     "{% endfor %}";
    model.chat_template = mistral;
    ck_assert_int_eq(reason_chat_apply(&model, two, 2, NULL, buf, sizeof buf, &len),
                     REASON_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "raw text"));
}
END_TEST

/* AUTO: the template comes from the model (SmolLM2's GGUF in models/, when present). */
START_TEST(test_apply_auto_model) {
    const char *dir = getenv("REASON_MODELS");
    char path[1024];
    snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir ? dir : "models");
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "test_apply_auto_model: %s absent, skipped\n", path);
        return;
    }
    fclose(f);
    reason_model *model = NULL;
    if (reason_model_load(path, NULL, &model) != REASON_OK) {
        /* The loader has its own tests; this one is about the template. */
        fprintf(stderr, "test_apply_auto_model: loading %s failed (%s), skipped\n", path,
                reason_last_error());
        return;
    }

    json_t *root = load_cases();
    size_t i;
    json_t *c;
    int n_checked = 0;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        if (strcmp(json_string_value(json_object_get(c, "template")), "smollm2") != 0) continue;
        json_t *jm = json_object_get(c, "messages");
        size_t n = json_array_size(jm);
        reason_chat_message msgs[16];
        ck_assert_uint_le(n, 16);
        for (size_t k = 0; k < n; k++) {
            msgs[k].role = json_string_value(json_object_get(json_array_get(jm, k), "role"));
            msgs[k].content = json_string_value(json_object_get(json_array_get(jm, k), "content"));
        }
        reason_chat_params p;
        reason_chat_params_default(&p);
        p.add_generation_prompt =
            (int32_t)json_integer_value(json_object_get(c, "add_generation_prompt"));
        const char *want = json_string_value(json_object_get(c, "expected"));
        char buf[4096];
        size_t len = 0;
        ck_assert_msg(reason_chat_apply(model, msgs, n, &p, buf, sizeof buf, &len) == REASON_OK,
                      "%s", reason_last_error());
        ck_assert_str_eq(buf, want);
        ck_assert_uint_eq(len, strlen(want));
        n_checked++;
    }
    ck_assert_int_gt(n_checked, 10);
    json_decref(root);
    reason_model_free(model);
}
END_TEST

START_TEST(test_prompt_end) {
    reason_chat_params p;
    reason_chat_params_default(&p);
    ck_assert_int_eq(chat_prompt_end(CHAT_DEEPSEEK_R1, &p), CHAT_END_IN_THINKING);
    ck_assert_int_eq(chat_prompt_end(CHAT_DEEPSEEK_R1_V1, &p), CHAT_END_PLAIN);
    ck_assert_int_eq(chat_prompt_end(CHAT_QWEN3, &p), CHAT_END_PLAIN);
    ck_assert_int_eq(chat_prompt_end(CHAT_LLAMA3, NULL), CHAT_END_PLAIN);
    p.enable_thinking = 0;
    ck_assert_int_eq(chat_prompt_end(CHAT_QWEN3, &p), CHAT_END_THINKING_CLOSED);
    p.add_generation_prompt = 0;
    ck_assert_int_eq(chat_prompt_end(CHAT_QWEN3, &p), CHAT_END_PLAIN);
    ck_assert_int_eq(chat_prompt_end(CHAT_DEEPSEEK_R1, &p), CHAT_END_PLAIN);
    ck_assert_int_eq(chat_variant_family(CHAT_QWEN2_5), REASON_TEMPLATE_CHATML);
    ck_assert_int_eq(chat_variant_family(CHAT_LLAMA3_0), REASON_TEMPLATE_LLAMA3);
    ck_assert_int_eq(chat_variant_family(CHAT_DEEPSEEK_R1_V1), REASON_TEMPLATE_DEEPSEEK_R1);
    ck_assert_int_eq(chat_variant_family(99), 0);
    ck_assert_int_eq(chat_variant_family(CHAT_QWEN35), REASON_TEMPLATE_QWEN35);
    reason_chat_params_default(&p);
    ck_assert_int_eq(chat_prompt_end(CHAT_QWEN35, &p), CHAT_END_IN_THINKING); /* "<think>\n" */
    p.enable_thinking = 0;
    ck_assert_int_eq(chat_prompt_end(CHAT_QWEN35, &p), CHAT_END_THINKING_CLOSED);
    p.add_generation_prompt = 0;
    ck_assert_int_eq(chat_prompt_end(CHAT_QWEN35, &p), CHAT_END_PLAIN);
    ck_assert_int_eq(chat_variant_family(CHAT_QWEN38), REASON_TEMPLATE_QWEN35);
}
END_TEST

/* Gemma 4: AUTO from the real template texts renders every fixture case; detection from
 * fragments; the roles, the prompt's end and the family. */
START_TEST(test_gemma4) {
    json_t *root = load_json("chat/gemma4.json");
    json_t *templates = json_object_get(root, "templates");
    size_t i;
    json_t *c;
    int n_checked = 0;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        json_t *t = json_object_get(templates, json_string_value(json_object_get(c, "template")));
        char file[256];
        snprintf(file, sizeof file, "chat/%s", json_string_value(json_object_get(t, "file")));
        struct reason_model model;
        memset(&model, 0, sizeof model);
        model.chat_template = read_text(file);
        json_t *jm = json_object_get(c, "messages");
        size_t n = json_array_size(jm);
        reason_chat_message msgs[16];
        ck_assert_uint_le(n, 16);
        for (size_t k = 0; k < n; k++) {
            msgs[k].role = json_string_value(json_object_get(json_array_get(jm, k), "role"));
            msgs[k].content = json_string_value(json_object_get(json_array_get(jm, k), "content"));
        }
        reason_chat_params p;
        reason_chat_params_default(&p);
        p.add_generation_prompt =
            (int32_t)json_integer_value(json_object_get(c, "add_generation_prompt"));
        p.enable_thinking = (int32_t)json_integer_value(json_object_get(c, "enable_thinking"));
        /* the templates have neither: whatever is asked changes nothing */
        p.preserve_thinking = REASON_CHAT_PRESERVE_ON;
        p.reasoning_effort = REASON_CHAT_EFFORT_HIGH;
        char buf[4096];
        size_t len = 0;
        ck_assert_msg(reason_chat_apply(&model, msgs, n, &p, buf, sizeof buf, &len) == REASON_OK,
                      "%s", reason_last_error());
        ck_assert_str_eq(buf, json_string_value(json_object_get(c, "expected")));
        free(model.chat_template);
        n_checked++;
    }
    ck_assert_int_gt(n_checked, 100);
    json_decref(root);

    int32_t v = -1, kind = -1;
    ck_assert_int_eq(chat_detect_variant("{{ '<|turn>model\\n' }}{{ '<turn|>\\n' }}"
                                         "{%- set continue_same_model_turn = x -%}", &v),
                     REASON_OK);
    ck_assert_int_eq(v, CHAT_GEMMA4);
    ck_assert_int_eq(chat_detect_variant("{{ '<|turn>model\\n' }}{{ '<turn|>\\n' }}", &v),
                     REASON_OK);
    ck_assert_int_eq(v, CHAT_GEMMA4_INTERLEAVED);
    ck_assert_int_eq(reason_chat_detect("<|turn>user <turn|>", &kind), REASON_OK);
    ck_assert_int_eq(kind, REASON_TEMPLATE_GEMMA4);
    /* Gemma 2 / 3 turns are another format */
    ck_assert_int_eq(reason_chat_detect("{{ '<start_of_turn>' + role + '\\n' }}<end_of_turn>",
                                        &kind),
                     REASON_ERR_UNSUPPORTED);

    reason_chat_params p;
    reason_chat_params_default(&p);
    p.template_kind = REASON_TEMPLATE_GEMMA4;
    char buf[512];
    size_t len = 0;
    /* tool messages (and so tool calls) are not supported: refused, naming the role */
    const reason_chat_message tool[] = {{"user", "a"}, {"tool", "42"}};
    ck_assert_int_eq(reason_chat_apply(NULL, tool, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_TEMPLATE);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "Gemma 4"));
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "'tool'"));
    const reason_chat_message dev[] = {{"developer", "Be brief."}, {"user", "hi"}};
    ck_assert_int_eq(reason_chat_apply(NULL, dev, 2, &p, buf, sizeof buf, &len), REASON_OK);
    ck_assert_str_eq(buf, "<bos><|turn>system\n<|think|>\nBe brief.<turn|>\n<|turn>user\nhi"
                          "<turn|>\n<|turn>model\n");
    p.enable_thinking = 0;
    ck_assert_int_eq(reason_chat_apply(NULL, dev + 1, 1, &p, buf, sizeof buf, &len), REASON_OK);
    ck_assert_str_eq(buf, "<bos><|turn>user\nhi<turn|>\n<|turn>model\n<|channel>thought\n"
                          "<channel|>");
    ck_assert_int_eq(chat_prompt_end(CHAT_GEMMA4, &p), CHAT_END_THINKING_CLOSED);
    ck_assert_int_eq(chat_prompt_end(CHAT_GEMMA4_INTERLEAVED, &p), CHAT_END_THINKING_CLOSED);
    p.enable_thinking = 1;
    ck_assert_int_eq(chat_prompt_end(CHAT_GEMMA4, &p), CHAT_END_PLAIN);
    ck_assert_int_eq(chat_variant_family(CHAT_GEMMA4), REASON_TEMPLATE_GEMMA4);
    ck_assert_int_eq(chat_variant_family(CHAT_GEMMA4_INTERLEAVED), REASON_TEMPLATE_GEMMA4);
    /* the interleaved variant is no public kind */
    p.template_kind = CHAT_GEMMA4_INTERLEAVED;
    ck_assert_int_eq(reason_chat_apply(NULL, dev, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
}
END_TEST

/* gpt-oss: every case as openai-harmony renders it, byte for byte, and the same token ids through
 * our o200k_harmony tokenizer (shared data) as the reference's. */
START_TEST(test_harmony_fixtures) {
    json_t *root = load_json("chat/harmony.json");
    json_t *cases = json_object_get(root, "cases");
    ck_assert_uint_ge(json_array_size(cases), 20);
    char path[1024];
    reason_tokenizer *tok = NULL;
    if (reason_tokenizer_load(shared_data_path("tokenizers/gptoss", path, sizeof path), &tok) !=
        REASON_OK)
        fprintf(stderr, "test_harmony_fixtures: no gptoss tokenizer (%s), ids not checked\n",
                reason_last_error());
    size_t i;
    json_t *c;
    int n_text = 0, n_ids = 0, n_refused = 0;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *jm = json_object_get(c, "messages");
        size_t n = json_array_size(jm);
        reason_chat_message msgs[16];
        ck_assert_uint_le(n, 16);
        for (size_t k = 0; k < n; k++) {
            msgs[k].role = json_string_value(json_object_get(json_array_get(jm, k), "role"));
            msgs[k].content = json_string_value(json_object_get(json_array_get(jm, k), "content"));
        }
        reason_chat_params p;
        reason_chat_params_default(&p);
        p.template_kind = REASON_TEMPLATE_HARMONY;
        p.add_generation_prompt =
            (int32_t)json_integer_value(json_object_get(c, "add_generation_prompt"));
        p.reasoning_effort = (int32_t)json_integer_value(json_object_get(c, "reasoning_effort"));
        p.preserve_thinking = (int32_t)json_integer_value(json_object_get(c, "preserve_thinking"));
        p.current_date = (int32_t)json_integer_value(json_object_get(c, "current_date"));
        reason_status st;
        const char *refused = json_string_value(json_object_get(c, "error"));
        char *got = render_alloc(CHAT_HARMONY, msgs, n, &p, &st);
        if (refused) {
            ck_assert_msg(st == REASON_ERR_TEMPLATE, "%s: status %d", name, st);
            ck_assert_msg(strstr(reason_last_error(), refused) != NULL, "%s: %s", name,
                          reason_last_error());
            free(got);
            n_refused++;
            continue;
        }
        ck_assert_msg(st == REASON_OK, "%s: %s", name, reason_last_error());
        const char *want = json_string_value(json_object_get(c, "expected"));
        if (strcmp(got, want) != 0) {
            size_t at = 0;
            while (got[at] && got[at] == want[at]) at++;
            ck_abort_msg("%s: differs at byte %zu\n got: %s\nwant: %s", name, at, got + at,
                         want + at);
        }
        char buf[4096];
        size_t len = 0;
        ck_assert_int_eq(reason_chat_apply(NULL, msgs, n, &p, buf, sizeof buf, &len), REASON_OK);
        ck_assert_str_eq(buf, want);
        n_text++;
        if (tok) {
            json_t *ids = json_object_get(c, "ids");
            reason_token t[2048];
            size_t nt = 0;
            ck_assert_int_eq(reason_tokenize(tok, got, strlen(got), REASON_TOKENIZE_PARSE_SPECIAL,
                                             t, 2048, &nt),
                             REASON_OK);
            ck_assert_msg(nt == json_array_size(ids), "%s: %zu tokens, want %zu", name, nt,
                          json_array_size(ids));
            for (size_t k = 0; k < nt; k++)
                ck_assert_msg(t[k] == json_integer_value(json_array_get(ids, k)),
                              "%s: token %zu is %d, want %lld", name, k, t[k],
                              (long long)json_integer_value(json_array_get(ids, k)));
            n_ids++;
        }
        free(got);
    }
    ck_assert_int_eq(n_text + n_refused, (int)json_array_size(cases));
    ck_assert_int_ge(n_refused, 2);
    if (tok) ck_assert_int_eq(n_ids, n_text);
    reason_tokenizer_free(tok);
    json_decref(root);
}
END_TEST

/* Harmony's settings: today's date by default, dates checked, efforts a template lacks refused,
 * developer messages only where Harmony has them, detection, AUTO through a model's template. */
START_TEST(test_harmony_settings) {
    const reason_chat_message one[] = {{"user", "hi"}};
    reason_chat_params p;
    reason_chat_params_default(&p);
    ck_assert_int_eq(p.current_date, 0);
    p.template_kind = REASON_TEMPLATE_HARMONY;
    char buf[2048], want[64];
    size_t len;
    ck_assert_int_eq(reason_chat_apply(NULL, one, 1, &p, buf, sizeof buf, &len), REASON_OK);
    const time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(want, sizeof want, "\nCurrent date: %Y-%m-%d\n\nReasoning: medium\n", &tm);
    ck_assert_msg(strstr(buf, want) != NULL, "%s", buf);
    ck_assert_str_eq(buf + len - strlen("<|start|>assistant"), "<|start|>assistant");
    p.current_date = -1;
    ck_assert_int_eq(reason_chat_apply(NULL, one, 1, &p, buf, sizeof buf, &len), REASON_OK);
    ck_assert_ptr_null(strstr(buf, "Current date"));
    static const int32_t bad_dates[] = {20251301, 20250600, 101, 100000000};
    for (size_t i = 0; i < sizeof bad_dates / sizeof bad_dates[0]; i++) {
        p.current_date = bad_dates[i];
        ck_assert_int_eq(reason_chat_apply(NULL, one, 1, &p, buf, sizeof buf, &len),
                         REASON_ERR_INVALID_ARG);
        ck_assert_ptr_nonnull(strstr(reason_last_error(), "YYYYMMDD"));
    }
    p.current_date = 20250628;
    p.reasoning_effort = 5;
    ck_assert_int_eq(reason_chat_apply(NULL, one, 1, &p, buf, sizeof buf, &len),
                     REASON_ERR_INVALID_ARG);
    /* Qwen3.8 has no "high" (its template raises), when thinking */
    p.reasoning_effort = REASON_CHAT_EFFORT_HIGH;
    ck_assert_int_eq(chat_render(CHAT_QWEN38, one, 1, &p, buf, sizeof buf, &len),
                     REASON_ERR_TEMPLATE);
    ck_assert_ptr_nonnull(strstr(reason_last_error(), "Unexpected reasoning effort high"));
    p.enable_thinking = 0;
    ck_assert_int_eq(chat_render(CHAT_QWEN38, one, 1, &p, buf, sizeof buf, &len), REASON_OK);
    /* developer: Harmony only */
    const reason_chat_message dev[] = {{"developer", "Be brief."}, {"user", "hi"}};
    p.template_kind = REASON_TEMPLATE_HARMONY;
    ck_assert_int_eq(reason_chat_apply(NULL, dev, 2, &p, buf, sizeof buf, &len), REASON_OK);
    ck_assert_ptr_nonnull(strstr(buf, "<|start|>developer<|message|># Instructions\n\nBe brief."
                                      "<|end|><|start|>user<|message|>hi<|end|>"));
    p.template_kind = REASON_TEMPLATE_CHATML;
    ck_assert_int_eq(reason_chat_apply(NULL, dev, 2, &p, buf, sizeof buf, &len),
                     REASON_ERR_TEMPLATE);

    int32_t kind = -1;
    const char *src = "{{- \"<|start|>system<|message|>\" }}{%- if add_generation_prompt -%}"
                      "<|start|>assistant{%- endif -%}{{ \"<|channel|>final<|message|>\" }}";
    ck_assert_int_eq(reason_chat_detect(src, &kind), REASON_OK);
    ck_assert_int_eq(kind, REASON_TEMPLATE_HARMONY);
    ck_assert_int_eq(chat_variant_family(CHAT_HARMONY), REASON_TEMPLATE_HARMONY);
    reason_chat_params_default(&p);
    ck_assert_int_eq(chat_prompt_end(CHAT_HARMONY, &p), CHAT_END_PLAIN);
    struct reason_model model;
    memset(&model, 0, sizeof model);
    char copy[256];
    snprintf(copy, sizeof copy, "%s", src);
    model.chat_template = copy;
    p.current_date = 20250628;
    ck_assert_int_eq(reason_chat_apply(&model, one, 1, &p, buf, sizeof buf, &len), REASON_OK);
    ck_assert_ptr_nonnull(strstr(buf, "Current date: 2025-06-28\n"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("chat_template");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fixtures);
    tcase_add_test(tc, test_gemma4_fixtures);
    tcase_add_test(tc, test_gemma4);
    tcase_add_test(tc, test_detect_shared_sources);
    tcase_add_test(tc, test_detect_fragments);
    tcase_add_test(tc, test_buffer);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_apply_auto_fake_model);
    tcase_add_test(tc, test_apply_auto_model);
    tcase_add_test(tc, test_prompt_end);
    tcase_add_test(tc, test_harmony_fixtures);
    tcase_add_test(tc, test_harmony_settings);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
