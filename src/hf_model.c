/* hf_model.c — loading a Hugging Face model directory: config.json → hyper-parameters, the
 * safetensors checkpoint → weights under their GGUF names (bound and checked by model.c), the
 * tokenizer from tokenizer.json + tokenizer_config.json. */
#include "hf_model.h"

#include "rope_scaling.h"

#include "backend.h"

#include "safetensors.h"
#include "tensor_types.h"
#include "tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct hf_record {
    char key[64];  /* GGUF name */
    gguf_tensor t; /* name: the checkpoint's; data: in the mapping or in `owned` */
} hf_record;

struct hf_weights {
    char *dir;
    st_set *set;
    hf_record *recs; /* sorted by key */
    int64_t n_recs;
    void **owned; /* F32 copies and aligned copies, one per record at most */
    int64_t n_owned;
    float *rope_div; /* (rope_dim/2) llama3 frequency divisors, or NULL */
    int32_t rope_half;
    const model_hparams *hp;
    bool qwen35;   /* zero-centred norms, split q_proj, DeltaNet weights (docs/qwen35.md) */
    bool prefixed; /* Qwen3_5ForConditionalGeneration: text weights under model.language_model. */
    bool gptoss;   /* experts stored (E, in, out), gate/up interleaved (gptoss_fixup) */
    bool gemma4;   /* its own names (gemma4_layer_names) */
};

/* GGUF name ↔ checkpoint name; layer tensors are "blk.N." ↔ "model.layers.N.". */
static const struct {
    const char *gguf, *hf;
} global_names[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};
static const struct {
    const char *gguf, *hf;
} layer_names[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    /* qwen35: the gate half of q_proj (split by the loader), Gated DeltaNet */
    {"attn_q_gate.weight", "self_attn.q_proj.weight"},
    {"attn_qkv.weight", "linear_attn.in_proj_qkv.weight"},
    {"attn_gate.weight", "linear_attn.in_proj_z.weight"},
    {"ssm_beta.weight", "linear_attn.in_proj_b.weight"},
    {"ssm_alpha.weight", "linear_attn.in_proj_a.weight"},
    {"ssm_conv1d.weight", "linear_attn.conv1d.weight"},
    {"ssm_dt.bias", "linear_attn.dt_bias"},
    {"ssm_a", "linear_attn.A_log"},
    {"ssm_norm.weight", "linear_attn.norm.weight"},
    {"ssm_out.weight", "linear_attn.out_proj.weight"},
    /* mixture of experts (qwen35moe): router, fused experts (transformers 5), shared expert;
     * experts saved one by one are matched by expert_name_of */
    {"ffn_gate_inp.weight", "mlp.gate.weight"},
    {"ffn_gate_up_exps.weight", "mlp.experts.gate_up_proj"},
    {"ffn_down_exps.weight", "mlp.experts.down_proj"},
    {"ffn_gate_shexp.weight", "mlp.shared_expert.gate_proj.weight"},
    {"ffn_up_shexp.weight", "mlp.shared_expert.up_proj.weight"},
    {"ffn_down_shexp.weight", "mlp.shared_expert.down_proj.weight"},
    {"ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight"},
    /* gpt-oss: output bias, sinks, router with bias, experts (E, in, out) with biases; the
     * loader transposes them (gptoss_fixup) */
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_sinks.weight", "self_attn.sinks"},
    {"ffn_gate_inp.weight", "mlp.router.weight"},
    {"ffn_gate_inp.bias", "mlp.router.bias"},
    {"ffn_gate_up_exps.bias", "mlp.experts.gate_up_proj_bias"},
    {"ffn_down_exps.bias", "mlp.experts.down_proj_bias"},
};
/* gemma4's own layer names (its post_attention_layernorm is a norm on the attention output, not
 * the feed-forward's input norm as in the table above), looked up first for gemma4. */
static const struct {
    const char *gguf, *hf;
} gemma4_layer_names[] = {
    {"post_attention_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_norm.weight", "pre_feedforward_layernorm.weight"},
    {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"},
    {"post_ffw_norm_1.weight", "post_feedforward_layernorm_1.weight"},
    {"pre_ffw_norm_2.weight", "pre_feedforward_layernorm_2.weight"},
    {"post_ffw_norm_2.weight", "post_feedforward_layernorm_2.weight"},
    {"layer_output_scale.weight", "layer_scalar"},
    {"inp_gate.weight", "per_layer_input_gate.weight"},
    {"proj.weight", "per_layer_projection.weight"},
    {"post_norm.weight", "post_per_layer_input_norm.weight"},
    {"ffn_gate_inp.weight", "router.proj.weight"},
    {"ffn_gate_inp.scale", "router.scale"},
    {"ffn_down_exps.scale", "router.per_expert_scale"},
    {"ffn_gate_up_exps.weight", "experts.gate_up_proj"},
    {"ffn_down_exps.weight", "experts.down_proj"},
};
static const struct {
    const char *gguf, *hf;
} gemma4_global_names[] = {
    {"per_layer_token_embd.weight", "model.embed_tokens_per_layer.weight"},
    {"per_layer_model_proj.weight", "model.per_layer_model_projection.weight"},
    {"per_layer_proj_norm.weight", "model.per_layer_projection_norm.weight"},
};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Splits "<prefix><digits>.<rest>"; false when name does not have that form. */
static bool split_layer(const char *name, const char *prefix, long *layer, const char **rest) {
    const size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9') return false;
    if (name[n] == '0' && name[n + 1] != '.') return false; /* one spelling per layer */
    char *end;
    errno = 0;
    *layer = strtol(name + n, &end, 10);
    if (errno || *end != '.' || *layer > 1000000) return false;
    *rest = end + 1;
    return true;
}

void hf_tensor_name(const char *gguf_name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", gguf_name);
    for (size_t i = 0; i < N_OF(global_names); i++)
        if (strcmp(gguf_name, global_names[i].gguf) == 0)
            snprintf(buf, cap, "%s", global_names[i].hf);
    long il;
    const char *rest;
    if (split_layer(gguf_name, "blk.", &il, &rest))
        for (size_t i = 0; i < N_OF(layer_names); i++)
            if (strcmp(rest, layer_names[i].gguf) == 0)
                snprintf(buf, cap, "model.layers.%ld.%s", il, layer_names[i].hf);
}

/* "mlp.experts.E.{gate,up,down}_proj.weight" (one tensor per expert) as
 * "ffn_{gate,up,down}_exps.E.weight" of layer il; false for other names. */
static bool expert_name_of(const char *rest, long il, char *buf, size_t cap) {
    static const char prefix[] = "mlp.experts.";
    static const struct {
        const char *hf, *gguf;
    } parts[] = {{"gate_proj.weight", "ffn_gate"}, {"up_proj.weight", "ffn_up"},
                 {"down_proj.weight", "ffn_down"}};
    long e;
    const char *part;
    if (!split_layer(rest, prefix, &e, &part)) return false;
    for (size_t i = 0; i < N_OF(parts); i++)
        if (strcmp(part, parts[i].hf) == 0) {
            snprintf(buf, cap, "blk.%ld.%s_exps.%ld.weight", il, parts[i].gguf, e);
            return true;
        }
    return false;
}

/* The GGUF name of a checkpoint tensor; false when the model does not use it. */
static bool gguf_name_of(const char *hf_name, bool gemma4, char *buf, size_t cap) {
    long il;
    const char *rest;
    if (gemma4) {
        for (size_t i = 0; i < N_OF(gemma4_global_names); i++)
            if (strcmp(hf_name, gemma4_global_names[i].hf) == 0) {
                snprintf(buf, cap, "%s", gemma4_global_names[i].gguf);
                return true;
            }
        if (split_layer(hf_name, "model.layers.", &il, &rest))
            for (size_t i = 0; i < N_OF(gemma4_layer_names); i++)
                if (strcmp(rest, gemma4_layer_names[i].hf) == 0) {
                    snprintf(buf, cap, "blk.%ld.%s", il, gemma4_layer_names[i].gguf);
                    return true;
                }
    }
    for (size_t i = 0; i < N_OF(global_names); i++)
        if (strcmp(hf_name, global_names[i].hf) == 0) {
            snprintf(buf, cap, "%s", global_names[i].gguf);
            return true;
        }
    if (split_layer(hf_name, "model.layers.", &il, &rest)) {
        for (size_t i = 0; i < N_OF(layer_names); i++)
            if (strcmp(rest, layer_names[i].hf) == 0) {
                snprintf(buf, cap, "blk.%ld.%s", il, layer_names[i].gguf);
                return true;
            }
        return expert_name_of(rest, il, buf, cap);
    }
    return false;
}

/* Weights the forward pass has no place for, which would silently change the function
 * (gpt-oss's o_proj bias has one). */
static bool unsupported_extra(const char *hf_name, bool gptoss) {
    if (gptoss && strstr(hf_name, ".self_attn.o_proj.bias")) return false;
    static const char *const suffixes[] = {".self_attn.o_proj.bias", ".mlp.gate_proj.bias",
                                           ".mlp.up_proj.bias", ".mlp.down_proj.bias"};
    const size_t n = strlen(hf_name);
    for (size_t i = 0; i < N_OF(suffixes); i++) {
        const size_t k = strlen(suffixes[i]);
        if (n > k && strcmp(hf_name + n - k, suffixes[i]) == 0) return true;
    }
    return false;
}

static int rec_cmp(const void *a, const void *b) {
    return strcmp(((const hf_record *)a)->key, ((const hf_record *)b)->key);
}

const gguf_tensor *hf_find_tensor(const hf_weights *w, const char *gguf_name) {
    if (!w || strlen(gguf_name) >= sizeof w->recs[0].key) return NULL;
    hf_record key;
    snprintf(key.key, sizeof key.key, "%s", gguf_name);
    const hf_record *r = bsearch(&key, w->recs, (size_t)w->n_recs, sizeof *w->recs, rec_cmp);
    return r ? &r->t : NULL;
}

const char *hf_weights_path(const hf_weights *w) { return w ? w->dir : "?"; }

void hf_weights_free(hf_weights *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_owned; i++) free(w->owned[i]);
    free(w->owned);
    free(w->rope_div);
    free(w->recs);
    st_set_close(w->set);
    free(w->dir);
    free(w);
}

static void *own(hf_weights *w, size_t bytes, const char *what) {
    void *p = rs_aligned_alloc(bytes ? bytes : 1, what);
    if (p) w->owned[w->n_owned++] = p;
    return p;
}

/* ---- config.json -------------------------------------------------------------------------- */

typedef struct config {
    const char *path;
    json_t *root;
    const json_t *text; /* the text model's fields: root, or root.text_config */
} config;

/* obj[key] where absent and JSON null are the same. */
static const json_t *field(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static reason_status cfg_int(const config *c, const json_t *obj, const char *prefix,
                             const char *key, int64_t lo, int64_t hi, bool required, int64_t def,
                             int32_t *out) {
    const json_t *v = field(obj, key);
    int64_t x = def;
    if (!v) {
        if (required)
            return rs_error(REASON_ERR_FORMAT, "%s: required field \"%s%s\" is missing", c->path,
                            prefix, key);
    } else if (!json_is_integer(v)) {
        return rs_error(REASON_ERR_FORMAT, "%s: field \"%s%s\" is not an integer", c->path, prefix,
                        key);
    } else {
        x = (int64_t)json_integer_value(v);
    }
    if (x < lo || x > hi)
        return rs_error(REASON_ERR_FORMAT, "%s: field \"%s%s\" = %lld is outside [%lld, %lld]",
                        c->path, prefix, key, (long long)x, (long long)lo, (long long)hi);
    *out = (int32_t)x;
    return REASON_OK;
}

static reason_status cfg_num(const config *c, const json_t *obj, const char *prefix,
                             const char *key, double lo, double hi, bool required, double def,
                             double *out) {
    const json_t *v = field(obj, key);
    double x = def;
    if (!v) {
        if (required)
            return rs_error(REASON_ERR_FORMAT, "%s: required field \"%s%s\" is missing", c->path,
                            prefix, key);
    } else if (!json_is_number(v)) {
        return rs_error(REASON_ERR_FORMAT, "%s: field \"%s%s\" is not a number", c->path, prefix,
                        key);
    } else {
        x = json_number_value(v);
    }
    if (!(x >= lo && x <= hi))
        return rs_error(REASON_ERR_FORMAT, "%s: field \"%s%s\" = %g is outside [%g, %g]", c->path,
                        prefix, key, x, lo, hi);
    *out = x;
    return REASON_OK;
}

static const struct {
    const char *hf_class, *name;
    int32_t arch;
} known_classes[] = {
    {"LlamaForCausalLM", "llama", ARCH_LLAMA},
    {"Qwen2ForCausalLM", "qwen2", ARCH_QWEN2},
    {"Qwen3ForCausalLM", "qwen3", ARCH_QWEN3},
    {"Qwen3_5ForCausalLM", "qwen35", ARCH_QWEN35},
    {"Qwen3_5ForConditionalGeneration", "qwen35", ARCH_QWEN35},
    {"Qwen3_5MoeForCausalLM", "qwen35moe", ARCH_QWEN35MOE},
    {"Qwen3_5MoeForConditionalGeneration", "qwen35moe", ARCH_QWEN35MOE},
    {"GptOssForCausalLM", "gpt-oss", ARCH_GPTOSS},
    {"Gemma4ForCausalLM", "gemma4", ARCH_GEMMA4},
};

static reason_status read_arch(const config *c, reason_model *m) {
    const json_t *archs = field(c->root, "architectures");
    if (!archs)
        return rs_error(REASON_ERR_FORMAT, "%s: required field \"architectures\" is missing",
                        c->path);
    const char *cls = json_string_value(json_array_get(archs, 0));
    if (!cls)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: field \"architectures\" must be an array of class names", c->path);
    for (size_t i = 0; i < N_OF(known_classes); i++)
        if (strcmp(cls, known_classes[i].hf_class) == 0) {
            m->arch = known_classes[i].arch;
            snprintf(m->arch_name, sizeof m->arch_name, "%s", known_classes[i].name);
            return REASON_OK;
        }
    return rs_error(REASON_ERR_UNSUPPORTED,
                    "%s: architectures[0] '%s' is not supported (supported: LlamaForCausalLM, "
                    "Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3_5ForCausalLM, "
                    "Qwen3_5ForConditionalGeneration, Qwen3_5MoeForCausalLM, "
                    "Qwen3_5MoeForConditionalGeneration, GptOssForCausalLM, Gemma4ForCausalLM)",
                    c->path, cls);
}

/* Llama 3.1's rope scaling as transformers computes it (_compute_llama3_parameters): per
 * frequency, a divisor of 1 (short wavelengths), factor (long ones) or a blend between. */
static reason_status llama3_freqs(const config *c, const json_t *rope, const char *prefix,
                                  hf_weights *w, reason_model *m) {
    double factor, lo, hi;
    int32_t old_ctx;
    RS_TRY(cfg_num(c, rope, prefix, "factor", 1e-3, 1e6, true, 0, &factor));
    RS_TRY(cfg_num(c, rope, prefix, "low_freq_factor", 1e-6, 1e6, true, 0, &lo));
    RS_TRY(cfg_num(c, rope, prefix, "high_freq_factor", 1e-6, 1e6, true, 0, &hi));
    if (!(hi > lo))
        return rs_error(REASON_ERR_FORMAT,
                        "%s: field \"%shigh_freq_factor\" must exceed \"%slow_freq_factor\"",
                        c->path, prefix, prefix);
    RS_TRY(cfg_int(c, rope, prefix, "original_max_position_embeddings", 1, 1 << 30, true, 0,
                   &old_ctx));
    const model_hparams *hp = &m->hp;
    const int32_t half = hp->rope_dim / 2;
    float *div = w->rope_div = rs_aligned_alloc((size_t)half * sizeof(float), "rope frequencies");
    if (!div) return REASON_ERR_NOMEM;
    w->rope_half = half;
    const double lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
    for (int32_t i = 0; i < half; i++) {
        const double inv_freq = 1.0 / pow(hp->rope_theta, (double)(2 * i) / hp->rope_dim);
        const double wavelen = 2.0 * M_PI / inv_freq;
        double d = 1.0;
        if (wavelen > lo_wavelen) {
            d = factor;
        } else if (wavelen >= hi_wavelen) {
            const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
            d = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        div[i] = (float)d;
    }
    return REASON_OK;
}

/* YaRN (rope_type "yarn"): divisors from rope_yarn_divisors and the attention factor
 * 0.1 ln(factor) + 1 on cos/sin unless attention_factor is given. */
static reason_status yarn_freqs(const config *c, const json_t *rope, const char *prefix,
                                hf_weights *w, reason_model *m) {
    double factor, beta_fast, beta_slow, attn_factor;
    int32_t old_ctx;
    RS_TRY(cfg_num(c, rope, prefix, "factor", 1e-3, 1e6, true, 0, &factor));
    RS_TRY(cfg_num(c, rope, prefix, "beta_fast", 1e-6, 1e6, false, 32.0, &beta_fast));
    RS_TRY(cfg_num(c, rope, prefix, "beta_slow", 1e-6, 1e6, false, 1.0, &beta_slow));
    RS_TRY(cfg_int(c, rope, prefix, "original_max_position_embeddings", 1, 1 << 30, true, 0,
                   &old_ctx));
    if (field(rope, "mscale") || field(rope, "mscale_all_dim"))
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: field \"%smscale\" is not supported", c->path,
                        prefix);
    RS_TRY(cfg_num(c, rope, prefix, "attention_factor", 1e-6, 1e6, false,
                   rope_yarn_attn_factor(factor), &attn_factor));
    const json_t *trunc = field(rope, "truncate");
    model_hparams *hp = &m->hp;
    const int32_t half = hp->rope_dim / 2;
    w->rope_div = rs_aligned_alloc((size_t)half * sizeof(float), "rope frequencies");
    if (!w->rope_div) return REASON_ERR_NOMEM;
    w->rope_half = half;
    rope_yarn_divisors(hp->rope_dim, hp->rope_theta, factor, beta_fast, beta_slow, old_ctx,
                       trunc ? json_is_true(trunc) : true, w->rope_div);
    hp->rope_mscale = (float)attn_factor;
    return REASON_OK;
}

/* transformers 4 writes rope_theta and rope_scaling at the top level; transformers 5 writes
 * rope_parameters {rope_type, rope_theta, ...}. Both are read. */
static reason_status read_rope(const config *c, hf_weights *w, reason_model *m) {
    model_hparams *hp = &m->hp;
    const json_t *params = field(c->text, "rope_parameters");
    const json_t *scaling = params ? params : field(c->text, "rope_scaling");
    const char *prefix = params ? "rope_parameters." : "rope_scaling.";
    double theta;
    if (params)
        RS_TRY(cfg_num(c, params, prefix, "rope_theta", 1.0, 1e12, false, 10000.0, &theta));
    else
        RS_TRY(cfg_num(c, c->text, "", "rope_theta", 1.0, 1e12, false, 10000.0, &theta));
    hp->rope_theta = (float)theta;
    hp->rope_pos_scale = 1.0f;
    hp->rope_mscale = 1.0f;
    if (scaling && !json_is_object(scaling))
        return rs_error(REASON_ERR_FORMAT, "%s: field \"%.*s\" is not an object", c->path,
                        (int)strlen(prefix) - 1, prefix);
    const json_t *type = scaling ? field(scaling, "rope_type") : NULL;
    if (!type && scaling) type = field(scaling, "type");
    if (type && !json_is_string(type))
        return rs_error(REASON_ERR_FORMAT, "%s: field \"%srope_type\" is not a string", c->path,
                        prefix);
    const char *kind = type ? json_string_value(type) : "default";
    if (strcmp(kind, "default") == 0) return REASON_OK;
    if (strcmp(kind, "linear") == 0) {
        double factor;
        RS_TRY(cfg_num(c, scaling, prefix, "factor", 1e-3, 1e6, true, 0, &factor));
        hp->rope_pos_scale = (float)(1.0 / factor);
        return REASON_OK;
    }
    if (strcmp(kind, "llama3") == 0) return llama3_freqs(c, scaling, prefix, w, m);
    if (strcmp(kind, "yarn") == 0) return yarn_freqs(c, scaling, prefix, w, m);
    return rs_error(REASON_ERR_UNSUPPORTED,
                    "%s: field \"%srope_type\" = '%s' is not supported (default, linear, llama3, "
                    "yarn)",
                    c->path, prefix, kind);
}

static reason_status read_hparams(const config *c, hf_weights *w, reason_model *m,
                                  int32_t *vocab_size, int *tied) {
    model_hparams *hp = &m->hp;
    const json_t *r = c->text;
    const int32_t big = 1 << 24;
    RS_TRY(cfg_int(c, r, "", "num_hidden_layers", 1, 4096, true, 0, &hp->n_layer));
    RS_TRY(cfg_int(c, r, "", "hidden_size", 1, big, true, 0, &hp->n_embd));
    /* a mixture-of-experts model may have no dense feed-forward size */
    const bool moe = m->arch == ARCH_QWEN35MOE;
    RS_TRY(cfg_int(c, r, "", "intermediate_size", moe ? 0 : 1, big, !moe, 0, &hp->n_ff));
    RS_TRY(cfg_int(c, r, "", "num_attention_heads", 1, 4096, true, 0, &hp->n_head));
    RS_TRY(
        cfg_int(c, r, "", "num_key_value_heads", 1, hp->n_head, false, hp->n_head, &hp->n_head_kv));
    if (hp->n_head % hp->n_head_kv != 0)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        c->path, hp->n_head, hp->n_head_kv);
    if (!field(r, "head_dim") && hp->n_embd % hp->n_head != 0)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: hidden_size %d is not a multiple of num_attention_heads %d and "
                        "\"head_dim\" is missing",
                        c->path, hp->n_embd, hp->n_head);
    RS_TRY(cfg_int(c, r, "", "head_dim", 2, 4096, false, hp->n_embd / hp->n_head, &hp->head_dim));
    if (hp->head_dim % 2 != 0)
        return rs_error(REASON_ERR_FORMAT, "%s: head_dim %d is odd", c->path, hp->head_dim);
    RS_TRY(cfg_int(c, r, "", "max_position_embeddings", 1, 1 << 30, false, 4096, &hp->n_ctx_train));
    RS_TRY(cfg_int(c, r, "", "vocab_size", 1, big, true, 0, vocab_size));
    double eps;
    RS_TRY(cfg_num(c, r, "", "rms_norm_eps", 0.0, 1.0, false, 1e-6, &eps));
    hp->rms_eps = (float)eps;
    const json_t *act = field(r, "hidden_act");
    if (act && !(json_is_string(act) && strcmp(json_string_value(act), "silu") == 0))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: field \"hidden_act\" must be \"silu\" (SwiGLU feed-forward)", c->path);
    const json_t *sliding = field(r, "use_sliding_window");
    if (sliding && json_is_true(sliding))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: field \"use_sliding_window\" = true is not supported", c->path);
    const json_t *layer_types = field(r, "layer_types"), *lt;
    size_t i;
    if (arch_is_qwen35(m->arch) || m->arch == ARCH_GPTOSS || m->arch == ARCH_GEMMA4)
        layer_types = NULL; /* read by their own readers */
    json_array_foreach(layer_types, i, lt) {
        if (!json_is_string(lt) || strcmp(json_string_value(lt), "full_attention") != 0)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "%s: field \"layer_types[%zu]\" is not \"full_attention\" (only full "
                            "attention is supported for %s)",
                            c->path, i, m->arch_name);
    }
    const json_t *partial = field(r, "partial_rotary_factor");
    if (partial && !arch_is_qwen35(m->arch) && !(json_is_number(partial) && json_number_value(partial) == 1.0))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: field \"partial_rotary_factor\" other than 1 is not supported",
                        c->path);
    const json_t *tie = field(r, "tie_word_embeddings");
    if (!tie) tie = field(c->root, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie))
        return rs_error(REASON_ERR_FORMAT, "%s: field \"tie_word_embeddings\" is not a boolean",
                        c->path);
    *tied = tie ? json_is_true(tie) : -1; /* -1: decided by the presence of lm_head.weight */
    hp->rope_dim = hp->head_dim;
    /* HF llama's q/k rows are in the model's own order (GGUF's converter permutes them so that
     * adjacent pairs rotate): rotate_half, like qwen2/qwen3. */
    hp->rope_style = ROPE_NEOX;
    return read_rope(c, w, m);
}

/* qwen35's own fields (docs/qwen35.md): the layer pattern, partial rotary, DeltaNet sizes. */
static reason_status read_qwen35(const config *c, reason_model *m) {
    model_hparams *hp = &m->hp;
    const json_t *r = c->text;
    const json_t *bias = field(r, "attention_bias");
    if (bias && json_is_true(bias))
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: field \"attention_bias\" = true is not supported",
                        c->path);
    m->layer_kinds = rs_calloc((size_t)hp->n_layer, 1, "layer kinds");
    if (!m->layer_kinds) return REASON_ERR_NOMEM;
    const json_t *types = field(r, "layer_types");
    if (types) {
        if (!json_is_array(types) || json_array_size(types) != (size_t)hp->n_layer)
            return rs_error(REASON_ERR_FORMAT,
                            "%s: field \"layer_types\" must be an array of num_hidden_layers (%d) "
                            "strings", c->path, hp->n_layer);
        for (int32_t il = 0; il < hp->n_layer; il++) {
            const char *t = json_string_value(json_array_get(types, (size_t)il));
            if (t && strcmp(t, "linear_attention") == 0) m->layer_kinds[il] = LAYER_DELTANET;
            else if (t && strcmp(t, "full_attention") == 0) m->layer_kinds[il] = LAYER_ATTENTION;
            else
                return rs_error(REASON_ERR_UNSUPPORTED,
                                "%s: field \"layer_types[%d]\" is not \"linear_attention\" or "
                                "\"full_attention\"", c->path, il);
        }
    } else {
        int32_t interval;
        RS_TRY(cfg_int(c, r, "", "full_attention_interval", 1, 4096, false, 4, &interval));
        for (int32_t il = 0; il < hp->n_layer; il++)
            m->layer_kinds[il] = (il + 1) % interval == 0 ? LAYER_ATTENTION : LAYER_DELTANET;
    }
    const json_t *rope = field(r, "rope_parameters");
    double factor;
    if (json_is_object(rope) && field(rope, "partial_rotary_factor"))
        RS_TRY(cfg_num(c, rope, "rope_parameters.", "partial_rotary_factor", 1e-6, 1.0, false,
                       0.25, &factor));
    else
        RS_TRY(cfg_num(c, r, "", "partial_rotary_factor", 1e-6, 1.0, false, 0.25, &factor));
    hp->rope_dim = (int32_t)(hp->head_dim * factor);
    if (hp->rope_dim < 2 || hp->rope_dim % 2 != 0)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: head_dim %d * partial_rotary_factor %g = %d rotated dimensions (must "
                        "be even and at least 2)", c->path, hp->head_dim, factor, hp->rope_dim);
    RS_TRY(cfg_int(c, r, "", "linear_num_key_heads", 1, 4096, false, 16, &hp->ssm_n_k_head));
    RS_TRY(cfg_int(c, r, "", "linear_key_head_dim", 1, DELTANET_MAX_HEAD_DIM, false, 128,
                   &hp->ssm_d_k));
    RS_TRY(cfg_int(c, r, "", "linear_num_value_heads", 1, 4096, false, 32, &hp->ssm_n_v_head));
    RS_TRY(cfg_int(c, r, "", "linear_value_head_dim", 1, DELTANET_MAX_HEAD_DIM, false, 128,
                   &hp->ssm_d_v));
    RS_TRY(cfg_int(c, r, "", "linear_conv_kernel_dim", 1, 64, false, 4, &hp->ssm_conv_kernel));
    if (hp->ssm_n_v_head % hp->ssm_n_k_head != 0)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: linear_num_value_heads %d is not a multiple of linear_num_key_heads %d",
                        c->path, hp->ssm_n_v_head, hp->ssm_n_k_head);
    hp->attn_gated = true;
    return REASON_OK;
}

/* gpt-oss (GptOssConfig): experts of intermediate_size, clamped SwiGLU, sliding-window layers. */
static reason_status read_gptoss(const config *c, reason_model *m) {
    model_hparams *hp = &m->hp;
    const json_t *r = c->text;
    RS_TRY(cfg_int(c, r, "", "num_local_experts", 1, 4096, true, 0, &hp->n_expert));
    RS_TRY(cfg_int(c, r, "", "num_experts_per_tok", 1, hp->n_expert, true, 0,
                   &hp->n_expert_used));
    hp->n_ff_exp = hp->n_ff;
    hp->n_ff = 0;
    hp->expert_weights_norm = true; /* softmax over the selected logits */
    hp->expert_act = EXPERT_SWIGLU_CLAMPED;
    double alpha, limit;
    RS_TRY(cfg_num(c, r, "", "swiglu_alpha", 0.0, 1e3, false, 1.702, &alpha));
    RS_TRY(cfg_num(c, r, "", "swiglu_limit", 0.0, 1e6, false, 7.0, &limit));
    hp->swiglu_alpha = (float)alpha;
    hp->swiglu_limit = (float)limit;
    RS_TRY(cfg_int(c, r, "", "sliding_window", 0, 1 << 30, false, 0, &hp->n_swa));
    m->layer_swa = rs_calloc((size_t)hp->n_layer, 1, "sliding-window layers");
    if (!m->layer_swa) return REASON_ERR_NOMEM;
    const json_t *types = field(r, "layer_types");
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const char *t = types ? json_string_value(json_array_get(types, (size_t)il)) : NULL;
        if (!types) /* the published pattern: sliding, full, sliding, ... */
            m->layer_swa[il] = il % 2 == 0;
        else if (t && strcmp(t, "sliding_attention") == 0)
            m->layer_swa[il] = 1;
        else if (!t || strcmp(t, "full_attention") != 0)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "%s: field \"layer_types[%d]\" is not \"sliding_attention\" or "
                            "\"full_attention\"", c->path, il);
    }
    if (types && json_array_size(types) != (size_t)hp->n_layer)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: field \"layer_types\" must have num_hidden_layers (%d) entries",
                        c->path, hp->n_layer);
    return REASON_OK;
}

/* One layer type's RoPE in gemma4's rope_parameters: "default" over the whole head, or
 * "proportional": the first partial_rotary_factor of the head's frequencies (exponents over the
 * whole head_dim) rotate, the rest have frequency 0 (divisor +inf), all / factor. */
static reason_status gemma4_rope(const config *c, reason_model *m, const char *type,
                                 layer_config *lc) {
    const json_t *all = field(c->text, "rope_parameters");
    const json_t *rp = all ? field(all, type) : NULL;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "rope_parameters.%s.", type);
    double theta = 10000.0, factor = 1.0, partial = 1.0;
    const char *kind = "default";
    if (rp) {
        RS_TRY(cfg_num(c, rp, prefix, "rope_theta", 1.0, 1e12, false, 10000.0, &theta));
        RS_TRY(cfg_num(c, rp, prefix, "factor", 1e-6, 1e6, false, 1.0, &factor));
        RS_TRY(cfg_num(c, rp, prefix, "partial_rotary_factor", 0.0, 1.0, false, 1.0, &partial));
        const json_t *k = field(rp, "rope_type");
        if (k && json_is_string(k)) kind = json_string_value(k);
    }
    lc->rope_theta = (float)theta;
    lc->rope_dim = lc->head_dim;
    const bool proportional = strcmp(kind, "proportional") == 0;
    if (!proportional && strcmp(kind, "default") != 0)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: field \"%srope_type\" = '%s' is not supported",
                        c->path, prefix, kind);
    if (!proportional && factor == 1.0) return REASON_OK;
    const int32_t half = lc->head_dim / 2, angles = (int32_t)(partial * lc->head_dim / 2);
    float *div = model_own(m, rs_aligned_alloc((size_t)half * sizeof(float), "rope divisors"));
    if (!div) return REASON_ERR_NOMEM;
    for (int32_t i = 0; i < half; i++)
        div[i] = proportional && i >= angles ? INFINITY : (float)factor;
    lc->rope_div = div;
    return REASON_OK;
}

/* gemma4 (Gemma4TextConfig): per-layer geometry (global layers' head_dim and KV heads from
 * per_layer_config), sliding windows, KV sharing of the last num_kv_shared_layers, per-layer
 * embeddings, experts beside the MLP, logit soft-capping. */
static reason_status read_gemma4(const config *c, reason_model *m) {
    model_hparams *hp = &m->hp;
    const json_t *r = c->text;
    const int32_t n = hp->n_layer;
    const json_t *act = field(r, "hidden_activation");
    if (act && !(json_is_string(act) && strcmp(json_string_value(act), "gelu_pytorch_tanh") == 0))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: field \"hidden_activation\" must be \"gelu_pytorch_tanh\"", c->path);
    const json_t *bidir = field(r, "use_bidirectional_attention");
    if (bidir && !(json_is_false(bidir)))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: field \"use_bidirectional_attention\" is not supported", c->path);
    const json_t *wide = field(r, "use_double_wide_mlp");
    if (wide && json_is_true(wide))
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: field \"use_double_wide_mlp\" = true is not "
                        "supported", c->path);
    hp->ffn_act = EXPERT_GEGLU;
    hp->embd_scale = sqrtf((float)hp->n_embd);
    hp->attn_unscaled = true;
    double cap = 0.0;
    RS_TRY(cfg_num(c, r, "", "final_logit_softcapping", 0.0, 1e6, false, 0.0, &cap));
    hp->logit_softcap = (float)cap;
    RS_TRY(cfg_int(c, r, "", "sliding_window", 1, 1 << 30, false, 512, &hp->n_swa));
    RS_TRY(cfg_int(c, r, "", "hidden_size_per_layer_input", 0, 1 << 16, false, 0, &hp->n_ple));
    if (hp->n_ple) {
        int32_t ple_vocab;
        RS_TRY(cfg_int(c, r, "", "vocab_size_per_layer_input", 1, 1 << 24, true, 0, &ple_vocab));
        int32_t vocab;
        RS_TRY(cfg_int(c, r, "", "vocab_size", 1, 1 << 24, true, 0, &vocab));
        if (ple_vocab != vocab)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "%s: vocab_size_per_layer_input %d != vocab_size %d is not supported",
                            c->path, ple_vocab, vocab);
    }
    const json_t *moe = field(r, "enable_moe_block");
    if (moe && json_is_true(moe)) {
        RS_TRY(cfg_int(c, r, "", "num_experts", 1, 4096, true, 0, &hp->n_expert));
        RS_TRY(cfg_int(c, r, "", "top_k_experts", 1, hp->n_expert, true, 0, &hp->n_expert_used));
        RS_TRY(cfg_int(c, r, "", "moe_intermediate_size", 1, 1 << 24, true, 0, &hp->n_ff_exp));
        hp->expert_weights_norm = true;
        hp->expert_act = EXPERT_GEGLU;
    }
    int32_t n_shared;
    RS_TRY(cfg_int(c, r, "", "num_kv_shared_layers", 0, n - 1, false, 0, &n_shared));
    const json_t *kev = field(r, "attention_k_eq_v");
    const bool k_eq_v = kev && json_is_true(kev);
    m->layer_swa = rs_calloc((size_t)n, 1, "sliding-window layers");
    m->layer_cfg = rs_calloc((size_t)n, sizeof *m->layer_cfg, "layer geometry");
    if (!m->layer_swa || !m->layer_cfg) return REASON_ERR_NOMEM;
    const json_t *types = field(r, "layer_types"), *per_layer = field(r, "per_layer_config");
    if (!json_is_array(types) || json_array_size(types) != (size_t)n)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: field \"layer_types\" must be an array of num_hidden_layers (%d) "
                        "strings", c->path, n);
    for (int32_t il = 0; il < n; il++) {
        const char *t = json_string_value(json_array_get(types, (size_t)il));
        const bool sliding = t && strcmp(t, "sliding_attention") == 0;
        if (!sliding && !(t && strcmp(t, "full_attention") == 0))
            return rs_error(REASON_ERR_UNSUPPORTED, "%s: field \"layer_types[%d]\" is not "
                            "\"sliding_attention\" or \"full_attention\"", c->path, il);
        m->layer_swa[il] = sliding;
        layer_config *lc = &m->layer_cfg[il];
        lc->head_dim = hp->head_dim;
        lc->n_head_kv = hp->n_head_kv;
        lc->kv_source = -1;
        lc->k_eq_v = k_eq_v && !sliding;
        char key[16], prefix[48];
        snprintf(key, sizeof key, "%d", il);
        const json_t *o = per_layer ? field(per_layer, key) : NULL;
        if (o) {
            snprintf(prefix, sizeof prefix, "per_layer_config.%d.", il);
            RS_TRY(cfg_int(c, o, prefix, "head_dim", 2, 4096, false, lc->head_dim, &lc->head_dim));
            RS_TRY(cfg_int(c, o, prefix, "num_key_value_heads", 1, hp->n_head, false,
                           lc->n_head_kv, &lc->n_head_kv));
        }
        if (lc->head_dim % 2 != 0 || hp->n_head % lc->n_head_kv != 0)
            return rs_error(REASON_ERR_FORMAT, "%s: layer %d: head_dim %d / %d KV heads do not fit "
                            "%d heads", c->path, il, lc->head_dim, lc->n_head_kv, hp->n_head);
        RS_TRY(gemma4_rope(c, m, sliding ? "sliding_attention" : "full_attention", lc));
    }
    return model_gemma4_kv_sources(m, n_shared);
}

/* Expert counts and sizes (Qwen3_5MoeTextConfig). Its router always renormalises the selected
 * experts' weights; norm_topk_prob, where a config has it, says so explicitly. */
static reason_status read_moe(const config *c, reason_model *m) {
    model_hparams *hp = &m->hp;
    const json_t *r = c->text;
    RS_TRY(cfg_int(c, r, "", "num_experts", 1, 4096, true, 0, &hp->n_expert));
    RS_TRY(cfg_int(c, r, "", "num_experts_per_tok", 1, hp->n_expert, true, 0,
                   &hp->n_expert_used));
    RS_TRY(cfg_int(c, r, "", "moe_intermediate_size", 1, 1 << 24, true, 0, &hp->n_ff_exp));
    RS_TRY(cfg_int(c, r, "", "shared_expert_intermediate_size", 0, 1 << 24, false, 0,
                   &hp->n_ff_shexp));
    const json_t *norm = field(r, "norm_topk_prob");
    if (norm && !json_is_boolean(norm))
        return rs_error(REASON_ERR_FORMAT, "%s: field \"norm_topk_prob\" is not a boolean", c->path);
    hp->expert_weights_norm = norm ? json_is_true(norm) : true;
    const json_t *layers = field(r, "mlp_only_layers");
    if (layers && json_array_size(layers) > 0)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: field \"mlp_only_layers\" (dense layers in a MoE model) is not supported",
                        c->path);
    return REASON_OK;
}

/* ---- weights ------------------------------------------------------------------------------ */

static reason_status add_record(hf_weights *w, const st_tensor *t, const char *key) {
    static const uint32_t types[ST_DTYPE_COUNT] = {
        [ST_F32] = TENSOR_F32, [ST_F16] = TENSOR_F16, [ST_BF16] = TENSOR_BF16};
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", t->file,
                        t->name, st_dtype_name(t->dtype));
    if (t->n_dims > GGUF_MAX_DIMS)
        return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s' has %d dimensions", t->file, t->name,
                        t->n_dims);
    hf_record *r = &w->recs[w->n_recs];
    snprintf(r->key, sizeof r->key, "%s", key);
    gguf_tensor *g = &r->t;
    g->name = t->name;
    g->type = types[t->dtype];
    g->n_dims = t->n_dims ? t->n_dims : 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        g->ne[d] = d < t->n_dims ? t->shape[t->n_dims - 1 - d] : 1;
    g->offset = t->offset;
    g->nbytes = t->nbytes;
    g->data = t->data;
    const size_t esize = st_dtype_size(t->dtype);
    const int64_t n = st_numel(t);
    if (t->n_dims <= 1 && t->dtype != ST_F32) {
        /* norm gains and biases are read as floats by every backend */
        float *f = own(w, (size_t)n * sizeof(float), "F32 copy of a vector");
        if (!f) return REASON_ERR_NOMEM;
        const uint8_t *src = t->data;
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            f[i] = t->dtype == ST_BF16 ? rs_bf16_to_f32(h) : rs_f16_to_f32(h);
        }
        g->type = TENSOR_F32;
        g->nbytes = (size_t)n * sizeof(float);
        g->data = f;
    } else if (t->data && (uintptr_t)t->data % esize != 0) {
        /* the format does not align data; kernels load whole elements */
        void *copy = own(w, t->nbytes, "aligned copy of a tensor");
        if (!copy) return REASON_ERR_NOMEM;
        memcpy(copy, t->data, t->nbytes);
        g->data = copy;
    }
    w->n_recs++;
    return REASON_OK;
}

/* An owned F32 copy of any float tensor (the data may be unaligned). */
static float *f32_copy(hf_weights *w, const st_tensor *t) {
    const int64_t n = st_numel(t);
    float *f = own(w, (size_t)n * sizeof(float), "F32 copy of a tensor");
    if (!f) return NULL;
    const uint8_t *src = t->data;
    if (t->dtype == ST_F32) {
        memcpy(f, src, (size_t)n * sizeof(float));
        return f;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        f[i] = t->dtype == ST_BF16 ? rs_bf16_to_f32(h) : rs_f16_to_f32(h);
    }
    return f;
}

static bool ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* qwen35 weights in the form forward.c computes with (docs/qwen35.md): zero-centred RMSNorm gains
 * as 1 + w, A_log as -exp(A_log), the depthwise conv (C, 1, kernel) as F32 (kernel, C), and
 * q_proj's per-head [query | gate] rows split into attn_q and attn_q_gate (same dtype). r is the
 * record add_record just wrote for t. */
static reason_status qwen35_fixup(hf_weights *w, const st_tensor *t, hf_record *r) {
    gguf_tensor *g = &r->t;
    const bool zc_norm = strcmp(r->key, "output_norm.weight") == 0 ||
                         ends_with(r->key, ".attn_norm.weight") ||
                         ends_with(r->key, ".ffn_norm.weight") ||
                         ends_with(r->key, ".attn_q_norm.weight") ||
                         ends_with(r->key, ".attn_k_norm.weight");
    const bool a_log = ends_with(r->key, ".ssm_a"), conv = ends_with(r->key, ".ssm_conv1d.weight");
    if (zc_norm || a_log || conv) {
        const int64_t n = st_numel(t);
        float *f = f32_copy(w, t);
        if (!f) return REASON_ERR_NOMEM;
        for (int64_t i = 0; i < n && zc_norm; i++) f[i] += 1.0f;
        for (int64_t i = 0; i < n && a_log; i++) f[i] = -expf(f[i]);
        g->type = TENSOR_F32;
        g->nbytes = (size_t)n * sizeof(float);
        g->data = f;
        if (conv && t->n_dims == 3 && t->shape[1] == 1) {
            g->n_dims = 2;
            g->ne[0] = t->shape[2];
            g->ne[1] = t->shape[0];
            g->ne[2] = 1;
        }
        return REASON_OK;
    }
    if (!ends_with(r->key, ".attn_q.weight")) return REASON_OK;
    const model_hparams *hp = w->hp;
    const int64_t d = hp->head_dim, rows = 2 * (int64_t)hp->n_head * d;
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != hp->n_embd)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: tensor '%s' must have shape [%lld, %d] (query and gate of %d heads)",
                        t->file, t->name, (long long)rows, hp->n_embd, hp->n_head);
    const size_t row = (size_t)hp->n_embd * st_dtype_size(t->dtype), half = t->nbytes / 2;
    uint8_t *query = own(w, half, "query rows of q_proj"), *gate = own(w, half, "gate rows of q_proj");
    if (!query || !gate) return REASON_ERR_NOMEM;
    const uint8_t *src = t->data;
    for (int64_t h = 0; h < hp->n_head; h++) {
        memcpy(query + (size_t)(h * d) * row, src + (size_t)(2 * h * d) * row, (size_t)d * row);
        memcpy(gate + (size_t)(h * d) * row, src + (size_t)((2 * h + 1) * d) * row, (size_t)d * row);
    }
    g->ne[1] = rows / 2;
    g->nbytes = half;
    g->data = query;
    hf_record *gr = &w->recs[w->n_recs++];
    *gr = *r;
    snprintf(gr->key, sizeof gr->key, "%.*s_gate.weight", (int)(strlen(r->key) - 7), r->key);
    gr->t.data = gate;
    return REASON_OK;
}

/* Element (e, i, j) of a (E, I, J) tensor of esize-byte elements copied to (e, j, i) of dst
 * (E, J, I), taking only every `step`-th j from j0 (gpt-oss interleaves gate and up columns). */
static void transpose_experts(uint8_t *dst, const uint8_t *src, int64_t n_e, int64_t n_i,
                              int64_t n_j, int64_t j0, int64_t step, size_t esize) {
    const int64_t n_out = (n_j - j0 + step - 1) / step;
    for (int64_t e = 0; e < n_e; e++)
        for (int64_t i = 0; i < n_i; i++)
            for (int64_t jo = 0; jo < n_out; jo++)
                memcpy(dst + ((size_t)(e * n_out + jo) * n_i + i) * esize,
                       src + ((size_t)(e * n_i + i) * n_j + j0 + jo * step) * esize, esize);
}

/* gpt-oss experts as forward.c computes with them: gate_up_proj (E, D, 2F), gate and up in
 * alternate columns, becomes ffn_gate_exps and ffn_up_exps (E, F, D); down_proj (E, F, D) becomes
 * (E, D, F); the biases F32, gate_up's split the same way. r is the record add_record wrote. */
static reason_status gptoss_fixup(hf_weights *w, const st_tensor *t, hf_record *r) {
    const bool gate_up = strstr(r->key, ".ffn_gate_up_exps.") != NULL;
    const bool down = strstr(r->key, ".ffn_down_exps.") != NULL;
    if (!gate_up && !down) return REASON_OK;
    const bool bias = ends_with(r->key, ".bias");
    if (t->n_dims != (bias ? 2 : 3))
        return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s' has %d dimensions, expected %d",
                        t->file, t->name, t->n_dims, bias ? 2 : 3);
    const size_t esize = st_dtype_size(t->dtype);
    const int64_t n_e = t->shape[0], n_i = bias ? 1 : t->shape[1], n_j = t->shape[t->n_dims - 1];
    if (gate_up && n_j % 2 != 0)
        return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s' has an odd last dimension %lld",
                        t->file, t->name, (long long)n_j);
    const void *src = t->data;
    size_t src_esize = esize;
    if (bias) { /* biases are read as floats */
        if (!(src = f32_copy(w, t))) return REASON_ERR_NOMEM;
        src_esize = sizeof(float);
    }
    char orig[64]; /* r->key is renamed below */
    snprintf(orig, sizeof orig, "%s", r->key);
    const int64_t halves = gate_up ? 2 : 1, n_out = n_j / halves;
    const size_t part = (size_t)(n_e * n_i * n_out) * src_esize;
    for (int64_t h = 0; h < halves; h++) {
        uint8_t *dst = own(w, part, "transposed expert weights");
        if (!dst) return REASON_ERR_NOMEM;
        transpose_experts(dst, src, n_e, n_i, n_j, h, halves, src_esize);
        hf_record *o = r;
        if (h == 1) {
            o = &w->recs[w->n_recs++];
            *o = *r;
        }
        if (gate_up) { /* "blk.N.ffn_gate_up_exps.X" -> "blk.N.ffn_gate_exps.X" / "ffn_up_exps" */
            const char *at = strstr(orig, "ffn_gate_up_exps");
            snprintf(o->key, sizeof o->key, "%.*s%s%s", (int)(at - orig), orig,
                     h == 0 ? "ffn_gate_exps" : "ffn_up_exps", at + strlen("ffn_gate_up_exps"));
        }
        gguf_tensor *g = &o->t;
        g->data = dst;
        g->nbytes = part;
        if (bias) {
            g->type = TENSOR_F32;
            g->n_dims = 2;
            g->ne[0] = n_out, g->ne[1] = n_e, g->ne[2] = 1;
        } else {
            g->n_dims = 3;
            g->ne[0] = n_i, g->ne[1] = n_out, g->ne[2] = n_e;
        }
    }
    return REASON_OK;
}

/* gpt-oss's released experts: mlp.experts.{gate_up,down}_proj_blocks (E, R, G, 16) U8 and _scales
 * (E, R, G) U8, R output rows (gate_up: gate and up alternating) of G blocks of 32: per block, an
 * E8M0 scale (2^(s-127)) and 16 bytes whose low nibble is element 2i and high nibble element 2i+1
 * (transformers' convert_moe_packed_tensors). Repacked into MXFP4 rows as GGUF lays them out —
 * the scale byte, then low nibbles for elements 0-15 and high nibbles for 16-31 — as
 * ffn_gate_exps / ffn_up_exps (even / odd rows) or ffn_down_exps. t is the _blocks tensor. */
static reason_status gptoss_mxfp4(hf_weights *w, const st_tensor *t, long il, bool gate_up) {
    char scales_name[160];
    const size_t stem = strlen(t->name) - strlen("_blocks");
    snprintf(scales_name, sizeof scales_name, "%.*s_scales", (int)stem, t->name);
    const st_tensor *sc = st_set_find(w->set, scales_name);
    if (t->dtype != ST_U8 || t->n_dims != 4 || t->shape[3] != 16 || !sc || sc->dtype != ST_U8 ||
        sc->n_dims != 3 || sc->shape[0] != t->shape[0] || sc->shape[1] != t->shape[1] ||
        sc->shape[2] != t->shape[2] || (gate_up && t->shape[1] % 2 != 0))
        return rs_error(REASON_ERR_FORMAT,
                        "%s: tensor '%s' must be U8 (E, R, G, 16) with '%s' U8 (E, R, G)%s",
                        t->file, t->name, scales_name, gate_up ? " and R even" : "");
    const int64_t n_e = t->shape[0], rows = t->shape[1], groups = t->shape[2];
    const int64_t halves = gate_up ? 2 : 1, out_rows = rows / halves;
    const size_t row_bytes = (size_t)groups * 17, part = (size_t)(n_e * out_rows) * row_bytes;
    const uint8_t *blocks = t->data, *scales = sc->data;
    for (int64_t h = 0; h < halves; h++) {
        uint8_t *dst = own(w, part, "MXFP4 experts");
        if (!dst) return REASON_ERR_NOMEM;
        for (int64_t e = 0; e < n_e; e++)
            for (int64_t r = 0; r < out_rows; r++) {
                const int64_t src_row = e * rows + r * halves + h;
                uint8_t *o = dst + (size_t)(e * out_rows + r) * row_bytes;
                for (int64_t gi = 0; gi < groups; gi++, o += 17) {
                    const uint8_t *b = blocks + ((size_t)src_row * groups + gi) * 16;
                    uint8_t code[32];
                    for (int i = 0; i < 16; i++) {
                        code[2 * i] = b[i] & 0x0F;
                        code[2 * i + 1] = b[i] >> 4;
                    }
                    o[0] = scales[(size_t)src_row * groups + gi];
                    for (int j = 0; j < 16; j++) o[1 + j] = (uint8_t)(code[j] | code[j + 16] << 4);
                }
            }
        hf_record *rec = &w->recs[w->n_recs++];
        snprintf(rec->key, sizeof rec->key, "blk.%ld.%s.weight", il,
                 !gate_up ? "ffn_down_exps" : h == 0 ? "ffn_gate_exps" : "ffn_up_exps");
        rec->t = (gguf_tensor){.name = t->name, .type = TENSOR_MXFP4, .n_dims = 3,
                               .ne = {groups * 32, out_rows, n_e, 1}, .nbytes = part, .data = dst};
    }
    return REASON_OK;
}

static reason_status build_records(hf_weights *w, int *tied) {
    const int64_t n = st_set_n_tensors(w->set);
    bool has_lm_head = st_set_find(w->set, "lm_head.weight") != NULL;
    if (*tied < 0) *tied = !has_lm_head;
    if (!*tied && !has_lm_head)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: required tensor 'lm_head.weight' is missing (tie_word_embeddings is "
                        "false)",
                        w->dir);
    for (int64_t i = 0; i < n; i++) {
        const st_tensor *t = st_set_tensor_at(w->set, i);
        char key[64];
        const char *name = t->name;
        if (w->prefixed) {
            /* model.language_model.X is the text model's model.X; the vision tower
             * (model.visual.*) and the multi-token-prediction head (mtp.*) are not used for text */
            static const char lm[] = "model.language_model.";
            if (strncmp(name, lm, sizeof lm - 1) != 0) {
                if (strcmp(name, "lm_head.weight") != 0) continue;
            } else {
                snprintf(key, sizeof key, "model.%s", name + sizeof lm - 1);
                name = key;
            }
        }
        char mapped[128];
        snprintf(mapped, sizeof mapped, "%s", name);
        name = mapped;
        long il;
        const char *rest;
        if (w->gptoss && split_layer(name, "model.layers.", &il, &rest)) {
            if (strcmp(rest, "mlp.experts.gate_up_proj_blocks") == 0 ||
                strcmp(rest, "mlp.experts.down_proj_blocks") == 0) {
                RS_TRY(gptoss_mxfp4(w, t, il, rest[12] == 'g'));
                continue;
            }
            if (ends_with(rest, "_proj_scales")) continue; /* read with its _blocks */
        }
        if (unsupported_extra(t->name, w->gptoss))
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "%s: tensor '%s' (a bias the architecture does not have) is not "
                            "supported",
                            t->file, t->name);
        if (!gguf_name_of(name, w->gemma4, key, sizeof key)) continue; /* e.g. inv_freq */
        if (*tied && strcmp(key, "output.weight") == 0) continue;
        RS_TRY(add_record(w, t, key));
        if (w->qwen35) RS_TRY(qwen35_fixup(w, t, &w->recs[w->n_recs - 1]));
        if (w->gptoss) RS_TRY(gptoss_fixup(w, t, &w->recs[w->n_recs - 1]));
    }
    if (w->rope_div) {
        hf_record *r = &w->recs[w->n_recs++];
        snprintf(r->key, sizeof r->key, "rope_freqs.weight");
        r->t = (gguf_tensor){.name = "rope_freqs (config.json llama3 rope scaling)",
                             .type = TENSOR_F32,
                             .n_dims = 1,
                             .ne = {w->rope_half, 1, 1, 1},
                             .nbytes = (size_t)w->rope_half * sizeof(float),
                             .data = w->rope_div};
    }
    return REASON_OK;
}

/* ---- tokenizer ---------------------------------------------------------------------------- */

/* transformers 5 saves the chat template as chat_template.jinja beside tokenizer_config.json. */
static reason_status read_chat_template(const char *dir, reason_model *m) {
    const char *from_config = tokenizer_chat_template(m->tokenizer);
    if (from_config) {
        m->chat_template = strdup(from_config);
        return m->chat_template ? REASON_OK : rs_error(REASON_ERR_NOMEM, "out of memory");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    FILE *fp = fopen(path, "rb");
    if (!fp) return REASON_OK;
    reason_status st = REASON_OK;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, fp);
        if (len < cap - 1) break;
        if (cap >= (1u << 24)) {
            st = rs_error(REASON_ERR_FORMAT, "%s: larger than 16 MiB", path);
            break;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (!buf)
        st = rs_error(REASON_ERR_NOMEM, "out of memory reading %s", path);
    else if (ferror(fp))
        st = rs_error(REASON_ERR_IO, "%s: read error", path);
    fclose(fp);
    if (st != REASON_OK) {
        free(buf);
        return st;
    }
    buf[len] = '\0';
    m->chat_template = buf;
    return REASON_OK;
}

/* ---- loading ------------------------------------------------------------------------------ */

reason_status hf_model_load(const char *dir, reason_model **out_model) {
    RS_CHECK_ARG(dir && out_model);
    *out_model = NULL;
    reason_status st = REASON_ERR_NOMEM;
    config c = {0};
    char *cfg_path = NULL;
    reason_model *m = rs_calloc(1, sizeof *m, "model");
    if (!m) return REASON_ERR_NOMEM;
    hf_weights *w = m->hf = rs_calloc(1, sizeof *w, "HF weights");
    if (!w || !(w->dir = strdup(dir)) || !(cfg_path = malloc(strlen(dir) + 16))) {
        st = rs_error(REASON_ERR_NOMEM, "out of memory");
        goto fail;
    }
    snprintf(cfg_path, strlen(dir) + 16, "%s/config.json", dir);
    c.path = cfg_path;
    struct stat sb;
    if (stat(cfg_path, &sb) != 0) {
        st = rs_error(REASON_ERR_IO, "cannot open '%s': %s", cfg_path, strerror(errno));
        goto fail;
    }
    json_error_t err;
    c.root = json_load_file(cfg_path, JSON_REJECT_DUPLICATES, &err);
    if (!c.root) {
        st = rs_error(REASON_ERR_FORMAT, "%s: line %d, column %d: %s", cfg_path, err.line,
                      err.column, err.text);
        goto fail;
    }
    if (!json_is_object(c.root)) {
        st = rs_error(REASON_ERR_FORMAT, "%s: expected a JSON object", cfg_path);
        goto fail;
    }
    if ((st = read_arch(&c, m)) != REASON_OK) goto fail;
    int32_t vocab_size = 0;
    int tied = -1;
    c.text = c.root;
    if (arch_is_qwen35(m->arch) && field(c.root, "text_config")) {
        /* Qwen3_5ForConditionalGeneration: the text model's config is nested */
        c.text = field(c.root, "text_config");
        w->prefixed = true;
        if (!json_is_object(c.text)) {
            st = rs_error(REASON_ERR_FORMAT, "%s: field \"text_config\" is not an object", cfg_path);
            goto fail;
        }
    }
    if ((st = read_hparams(&c, w, m, &vocab_size, &tied)) != REASON_OK) goto fail;
    if (arch_is_qwen35(m->arch) && (st = read_qwen35(&c, m)) != REASON_OK) goto fail;
    if (m->arch == ARCH_QWEN35MOE && (st = read_moe(&c, m)) != REASON_OK) goto fail;
    if (m->arch == ARCH_GPTOSS && (st = read_gptoss(&c, m)) != REASON_OK) goto fail;
    if (m->arch == ARCH_GEMMA4 && (st = read_gemma4(&c, m)) != REASON_OK) goto fail;
    w->hp = &m->hp;
    w->qwen35 = arch_is_qwen35(m->arch);
    w->gptoss = m->arch == ARCH_GPTOSS;
    w->gemma4 = m->arch == ARCH_GEMMA4;
    /* the name: the directory's last component */
    snprintf(m->name, sizeof m->name, "%s", dir);
    for (size_t n = strlen(m->name); n > 1 && m->name[n - 1] == '/'; n--) m->name[n - 1] = '\0';
    const char *base = strrchr(m->name, '/');
    if (base && base[1]) memmove(m->name, base + 1, strlen(base + 1) + 1);

    if ((st = st_set_open_dir(dir, &w->set)) != REASON_OK) goto fail;
    /* records: one per checkpoint tensor (two for a split q_proj or gpt-oss gate_up) plus
     * rope_freqs; owned buffers: at most four per tensor (a conversion, then a qwen35 fix-up, the
     * two halves of q_proj, or an F32 copy and the two halves of gpt-oss gate_up) */
    const size_t cap = 2 * (size_t)st_set_n_tensors(w->set) + 1; /* + split q_proj gates */
    w->recs = rs_calloc(cap, sizeof *w->recs, "tensor records");
    w->owned = rs_calloc(4 * cap, sizeof *w->owned, "owned buffers");
    if (!w->recs || !w->owned) {
        st = REASON_ERR_NOMEM;
        goto fail;
    }
    if ((st = build_records(w, &tied)) != REASON_OK) goto fail;
    qsort(w->recs, (size_t)w->n_recs, sizeof *w->recs, rec_cmp);
    if ((st = model_bind_weights(m)) != REASON_OK) goto fail;
    if (m->hp.n_vocab != vocab_size) {
        st = rs_error(REASON_ERR_FORMAT,
                      "%s: vocab_size %d, but model.embed_tokens.weight has %d rows", cfg_path,
                      vocab_size, m->hp.n_vocab);
        goto fail;
    }
    if ((st = reason_tokenizer_load(dir, &m->tokenizer)) != REASON_OK) {
        st = rs_error_prefix(st, "%s: tokenizer", dir);
        goto fail;
    }
    if (reason_tokenizer_n_vocab(m->tokenizer) > m->hp.n_vocab) {
        st = rs_error(REASON_ERR_FORMAT, "%s: tokenizer has %d tokens but the model only %d rows",
                      dir, reason_tokenizer_n_vocab(m->tokenizer), m->hp.n_vocab);
        goto fail;
    }
    if ((st = read_chat_template(dir, m)) != REASON_OK) goto fail;
    json_decref(c.root);
    free(cfg_path);
    *out_model = m;
    return REASON_OK;
fail:
    json_decref(c.root);
    free(cfg_path);
    reason_model_free(m);
    return st;
}
