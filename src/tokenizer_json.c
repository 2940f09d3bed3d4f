/* tokenizer_json.c — loading a Hugging Face tokenizer.json (and tokenizer_config.json beside it).
 *
 * Supported: model BPE (vocab, merges as "a b" strings or ["a", "b"] pairs, ignore_merges) either
 * over the GPT-2 byte alphabet (a ByteLevel pre-tokenizer or decoder) or SentencePiece style over
 * characters (byte_fallback, unk_token, fuse_unk; a decoder Sequence of Replace, ByteFallback and
 * Fuse, as Gemma's), added_tokens with their flags, normalizers NFC/NFD/NFKC/NFKD and Replace with
 * a String pattern (alone or in a Sequence), pre-tokenizers Split (Regex or String; Isolated,
 * Removed or MergedWithPrevious), ByteLevel, Digits and Sequences of them, post-processors
 * ByteLevel and TemplateProcessing (alone or in a Sequence). Anything else is
 * REASON_ERR_UNSUPPORTED naming it. */
#include "tokenizer_impl.h"
#include "tokenizer_spm.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct json_loader {
    const char *file; /* for messages */
    reason_tokenizer *tok;
    uint8_t *in_vocab; /* (n_vocab) ids of model.vocab: the BPE vocabulary */
    size_t text_used;
    char *scratch; /* one token's decoded bytes */
    size_t scratch_capacity;
    bool byte_level;             /* token strings are in the GPT-2 byte alphabet */
    text_replace decode_replace; /* SentencePiece style: the decoder's Replace (U+2581 -> ' ') */
    bool decode_byte_fallback;   /* the decoder turns "<0xNN>" into its byte */
} json_loader;

static reason_status load_json(const char *path, bool config, json_t **out) {
    struct stat st;
    if (stat(path, &st) != 0)
        return rs_error(REASON_ERR_IO, "%s: %s", path, strerror(errno));
    json_error_t error;
    /* JSON_DECODE_INT_AS_REAL: configs hold integers past 64 bits (model_max_length 1e30). */
    *out = json_load_file(path, JSON_ALLOW_NUL | (config ? JSON_DECODE_INT_AS_REAL : 0), &error);
    if (!*out)
        return rs_error(REASON_ERR_FORMAT, "%s:%d:%d: %s", path, error.line, error.column,
                        error.text);
    return REASON_OK;
}

static reason_status expect(const json_loader *ld, const json_t *value, json_type type,
                            const char *where) {
    static const char *const names[] = {"an object", "an array",  "a string", "an integer",
                                        "a number",  "a boolean", "a boolean", "null"};
    if (value && json_typeof(value) == type) return REASON_OK;
    if (type == JSON_TRUE && value && json_is_boolean(value)) return REASON_OK;
    return rs_error(REASON_ERR_FORMAT, "%s: %s: expected %s", ld->file, where,
                    names[type <= JSON_NULL ? type : JSON_NULL]);
}

static bool get_bool(const json_t *object, const char *key, bool fallback) {
    const json_t *v = json_object_get(object, key);
    return v && json_is_boolean(v) ? json_is_true(v) : fallback;
}

static const char *get_type(const json_t *object) {
    const json_t *v = json_object_get(object, "type");
    return json_is_string(v) ? json_string_value(v) : "";
}

/* Decodes a token string of the byte alphabet into ld->scratch; strings outside the alphabet
 * (added tokens such as "<tool call>") are kept as they are. */
static reason_status decode_token(json_loader *ld, const char *s, size_t len, const char **bytes,
                                  size_t *n) {
    if (ld->scratch_capacity < len + 1) {
        char *p = realloc(ld->scratch, 2 * len + 16);
        if (!p) return rs_error(REASON_ERR_NOMEM, "out of memory loading %s", ld->file);
        ld->scratch = p;
        ld->scratch_capacity = 2 * len + 16;
    }
    if (ld->byte_level && bytelevel_decode(s, len, ld->scratch, n)) {
        *bytes = ld->scratch;
    } else {
        *bytes = s;
        *n = len;
    }
    return REASON_OK;
}

/* SentencePiece style: the bytes a token stands for, through the decoder (its Replace, then
 * ByteFallback), into ld->scratch. */
static reason_status decode_piece(json_loader *ld, const char *s, size_t len, const char **bytes,
                                  size_t *n, bool *is_byte) {
    size_t need;
    if (!text_replace_bound(&ld->decode_replace, len, &need) || need > SIZE_MAX - 16)
        return rs_error(REASON_ERR_FORMAT, "%s: a token of %zu bytes", ld->file, len);
    if (ld->scratch_capacity < need + 16) {
        char *p = realloc(ld->scratch, need + 16);
        if (!p) return rs_error(REASON_ERR_NOMEM, "out of memory loading %s", ld->file);
        ld->scratch = p;
        ld->scratch_capacity = need + 16;
    }
    uint8_t byte;
    *is_byte = ld->decode_byte_fallback && spm_byte_piece(s, len, &byte);
    if (*is_byte) {
        ld->scratch[0] = (char)byte;
        *n = 1;
    } else {
        *n = text_replace_apply(&ld->decode_replace, s, len, ld->scratch);
    }
    *bytes = ld->scratch;
    return REASON_OK;
}

/* A Replace normalizer or decoder with a String pattern. */
static reason_status load_replace(json_loader *ld, const json_t *node, const char *where,
                                  text_replace *out) {
    const json_t *pattern = json_object_get(json_object_get(node, "pattern"), "String");
    const json_t *content = json_object_get(node, "content");
    if (!json_is_string(pattern) || !json_is_string(content))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: %s Replace: only a String pattern and content", ld->file, where);
    size_t from = json_string_length(pattern), to = json_string_length(content);
    if (from == 0 || from >= TEXT_REPLACE_MAX || to >= TEXT_REPLACE_MAX)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: %s Replace of %zu by %zu bytes", ld->file,
                        where, from, to);
    if (out->from_len)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: more than one %s Replace", ld->file, where);
    memcpy(out->from, json_string_value(pattern), from);
    memcpy(out->to, json_string_value(content), to);
    out->from_len = (uint8_t)from;
    out->to_len = (uint8_t)to;
    return REASON_OK;
}

/* Does node (a pre-tokenizer or decoder, possibly a Sequence) contain a step of type? */
static bool has_type(const json_t *node, const char *type) {
    if (!json_is_object(node)) return false;
    if (strcmp(get_type(node), type) == 0) return true;
    static const char *const lists[] = {"pretokenizers", "decoders"};
    for (int k = 0; k < 2; k++) {
        const json_t *list = json_object_get(node, lists[k]), *item;
        size_t i;
        json_array_foreach(list, i, item) if (has_type(item, type)) return true;
    }
    return false;
}

/* The decoder of a SentencePiece-style vocabulary: Replace, ByteFallback and Fuse, alone or in a
 * Sequence. Concatenating token bytes then decodes; anything else (Strip, Metaspace, no decoder,
 * which joins tokens with spaces) is refused. */
static reason_status load_spm_decoder(json_loader *ld, const json_t *dec) {
    if (!dec || json_is_null(dec))
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: a BPE that is not byte-level needs a decoder (Replace, ByteFallback, "
                        "Fuse)",
                        ld->file);
    const char *type = get_type(dec);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(dec, "decoders");
        RS_TRY(expect(ld, list, JSON_ARRAY, "decoder.decoders"));
        for (size_t i = 0; i < json_array_size(list); i++)
            RS_TRY(load_spm_decoder(ld, json_array_get(list, i)));
        return REASON_OK;
    }
    if (strcmp(type, "Fuse") == 0) return REASON_OK;
    if (strcmp(type, "ByteFallback") == 0) {
        ld->decode_byte_fallback = true;
        return REASON_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        /* Per token, before the bytes are fused: a Replace after ByteFallback would see them. */
        if (ld->decode_byte_fallback)
            return rs_error(REASON_ERR_UNSUPPORTED, "%s: decoder Replace after ByteFallback",
                            ld->file);
        return load_replace(ld, dec, "decoder", &ld->decode_replace);
    }
    return rs_error(REASON_ERR_UNSUPPORTED, "%s: unsupported decoder '%s'", ld->file, type);
}

static reason_status load_normalizer(json_loader *ld, const json_t *norm) {
    if (!norm || json_is_null(norm)) return REASON_OK;
    const char *type = get_type(norm);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(norm, "normalizers");
        RS_TRY(expect(ld, list, JSON_ARRAY, "normalizer.normalizers"));
        /* A normal form and a Replace, in this order (the only order applied). */
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *step = json_array_get(list, i);
            bool is_replace = strcmp(get_type(step), "Replace") == 0;
            if ((!is_replace && (ld->tok->normalizer || ld->tok->replace.from_len)) ||
                (is_replace && i + 1 < json_array_size(list)))
                return rs_error(REASON_ERR_UNSUPPORTED,
                                "%s: normalizer Sequence other than a normal form then a Replace",
                                ld->file);
            RS_TRY(load_normalizer(ld, step));
        }
        return REASON_OK;
    }
    if (strcmp(type, "Replace") == 0)
        return load_replace(ld, norm, "normalizer", &ld->tok->replace);
    static const struct {
        const char *name;
        int32_t kind;
    } forms[] = {{"NFC", NORMALIZER_NFC},
                 {"NFD", NORMALIZER_NFD},
                 {"NFKC", NORMALIZER_NFKC},
                 {"NFKD", NORMALIZER_NFKD}};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(type, forms[i].name) == 0) {
            ld->tok->normalizer = forms[i].kind;
            return REASON_OK;
        }
    }
    return rs_error(REASON_ERR_UNSUPPORTED, "%s: unsupported normalizer '%s'", ld->file, type);
}

static reason_status load_pre_tokenizer(json_loader *ld, const json_t *pre) {
    if (!pre || json_is_null(pre)) return REASON_OK;
    const char *type = get_type(pre);
    pretokenizer *p = &ld->tok->pre;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pre, "pretokenizers");
        RS_TRY(expect(ld, list, JSON_ARRAY, "pre_tokenizer.pretokenizers"));
        for (size_t i = 0; i < json_array_size(list); i++)
            RS_TRY(load_pre_tokenizer(ld, json_array_get(list, i)));
        return REASON_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        return pretok_add_bytelevel(p, get_bool(pre, "add_prefix_space", false),
                                    get_bool(pre, "use_regex", true));
    }
    if (strcmp(type, "Digits") == 0) {
        const char *re = get_bool(pre, "individual_digits", false) ? "\\p{N}" : "\\p{N}+";
        return pretok_add_regex(p, re, strlen(re), PRETOK_ISOLATED, false, ld->file);
    }
    if (strcmp(type, "Split") == 0) {
        const json_t *behavior = json_object_get(pre, "behavior");
        const char *b = json_is_string(behavior) ? json_string_value(behavior) : "";
        int32_t kind;
        if (strcmp(b, "Isolated") == 0)
            kind = PRETOK_ISOLATED;
        else if (strcmp(b, "Removed") == 0)
            kind = PRETOK_REMOVED;
        else if (strcmp(b, "MergedWithPrevious") == 0 && !get_bool(pre, "invert", false))
            kind = PRETOK_MERGED_WITH_PREVIOUS;
        else
            return rs_error(REASON_ERR_UNSUPPORTED, "%s: unsupported Split behavior '%s'%s",
                            ld->file, b, get_bool(pre, "invert", false) ? " (inverted)" : "");
        bool invert = get_bool(pre, "invert", false);
        const json_t *pattern = json_object_get(pre, "pattern");
        const json_t *regex = json_object_get(pattern, "Regex");
        const json_t *string = json_object_get(pattern, "String");
        if (json_is_string(regex))
            return pretok_add_regex(p, json_string_value(regex), json_string_length(regex), kind,
                                    invert, ld->file);
        if (json_is_string(string))
            return pretok_add_literal(p, json_string_value(string), json_string_length(string),
                                      kind, invert, ld->file);
        return rs_error(REASON_ERR_FORMAT, "%s: pre_tokenizer Split without a pattern", ld->file);
    }
    return rs_error(REASON_ERR_UNSUPPORTED, "%s: unsupported pre-tokenizer '%s'", ld->file, type);
}

static reason_status template_side(json_loader *ld, const json_t *tp, const json_t *piece,
                                   bool after_sequence) {
    reason_tokenizer *tok = ld->tok;
    const json_t *special = json_object_get(piece, "SpecialToken");
    const char *name = json_string_value(json_object_get(special, "id"));
    if (!name) return REASON_OK; /* a Sequence piece */
    const json_t *entry = json_object_get(json_object_get(tp, "special_tokens"), name);
    const json_t *ids = json_object_get(entry, "ids");
    RS_TRY(expect(ld, ids, JSON_ARRAY, "post_processor.special_tokens.ids"));
    for (size_t i = 0; i < json_array_size(ids); i++) {
        json_int_t id = json_integer_value(json_array_get(ids, i));
        if (id < 0 || id >= tok->n_vocab)
            return rs_error(REASON_ERR_FORMAT, "%s: post_processor token '%s' has id %lld",
                            ld->file, name, (long long)id);
        int32_t *list = after_sequence ? tok->suffix : tok->prefix;
        int32_t *n = after_sequence ? &tok->n_suffix : &tok->n_prefix;
        if (*n >= TOKENIZER_MAX_TEMPLATE)
            return rs_error(REASON_ERR_UNSUPPORTED, "%s: post_processor adds too many tokens",
                            ld->file);
        list[(*n)++] = (int32_t)id;
    }
    return REASON_OK;
}

static reason_status load_post_processor(json_loader *ld, const json_t *post) {
    if (!post || json_is_null(post)) return REASON_OK;
    const char *type = get_type(post);
    if (strcmp(type, "ByteLevel") == 0) return REASON_OK; /* offsets only */
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(post, "processors");
        RS_TRY(expect(ld, list, JSON_ARRAY, "post_processor.processors"));
        for (size_t i = 0; i < json_array_size(list); i++)
            RS_TRY(load_post_processor(ld, json_array_get(list, i)));
        return REASON_OK;
    }
    if (strcmp(type, "TemplateProcessing") == 0) {
        const json_t *single = json_object_get(post, "single");
        RS_TRY(expect(ld, single, JSON_ARRAY, "post_processor.single"));
        bool after = false;
        for (size_t i = 0; i < json_array_size(single); i++) {
            const json_t *piece = json_array_get(single, i);
            if (json_object_get(piece, "Sequence")) {
                after = true;
                continue;
            }
            RS_TRY(template_side(ld, post, piece, after));
        }
        return REASON_OK;
    }
    return rs_error(REASON_ERR_UNSUPPORTED, "%s: unsupported post_processor '%s'", ld->file, type);
}

static reason_status load_vocab(json_loader *ld, const json_t *root) {
    const json_t *model = json_object_get(root, "model");
    RS_TRY(expect(ld, model, JSON_OBJECT, "model"));
    const char *type = get_type(model);
    if (*type && strcmp(type, "BPE") != 0)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: unsupported model type '%s'", ld->file, type);
    bool byte_fallback = get_bool(model, "byte_fallback", false);
    if (byte_fallback && ld->byte_level)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: byte-level BPE with byte_fallback", ld->file);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *s = json_string_value(json_object_get(model, affixes[i]));
        if (s && *s)
            return rs_error(REASON_ERR_UNSUPPORTED, "%s: BPE %s '%s'", ld->file, affixes[i], s);
    }
    const json_t *vocab = json_object_get(model, "vocab");
    RS_TRY(expect(ld, vocab, JSON_OBJECT, "model.vocab"));
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added)) RS_TRY(expect(ld, added, JSON_ARRAY, "added_tokens"));

    /* Size everything first: the largest id and the bytes of all token strings. */
    json_int_t max_id = -1;
    size_t text_size = 0, piece_size = 0;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)vocab, key, value) {
        if (!json_is_integer(value) || json_integer_value(value) < 0 ||
            json_integer_value(value) >= INT32_MAX)
            return rs_error(REASON_ERR_FORMAT, "%s: model.vocab['%s']: expected a token id",
                            ld->file, key);
        max_id = RS_MAX(max_id, json_integer_value(value));
        piece_size += strlen(key);
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *t = json_array_get(added, i);
        const json_t *id = json_object_get(t, "id"), *content = json_object_get(t, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= INT32_MAX || !json_is_string(content))
            return rs_error(REASON_ERR_FORMAT, "%s: added_tokens[%zu]: expected id and content",
                            ld->file, i);
        max_id = RS_MAX(max_id, json_integer_value(id));
        piece_size += json_string_length(content);
    }
    if (max_id < 0) return rs_error(REASON_ERR_FORMAT, "%s: empty vocabulary", ld->file);
    /* Decoding never lengthens a byte-level token; the decoder's Replace may lengthen a piece. */
    if (!text_replace_bound(&ld->decode_replace, piece_size, &text_size))
        return rs_error(REASON_ERR_FORMAT, "%s: too much token text", ld->file);
    RS_TRY(tokenizer_alloc((int32_t)(max_id + 1), text_size, &ld->tok));
    reason_tokenizer *tok = ld->tok;
    ld->in_vocab = rs_calloc((size_t)tok->n_vocab, 1, "vocabulary flags");
    if (!ld->in_vocab) return REASON_ERR_NOMEM;
    size_t piece_used = 0;
    if (!ld->byte_level) RS_TRY(tokenizer_alloc_pieces(tok, piece_size));

    json_object_foreach((json_t *)vocab, key, value) {
        const char *bytes;
        size_t n, len = strlen(key);
        int32_t id = (int32_t)json_integer_value(value);
        bool is_byte = false;
        if (ld->byte_level) {
            RS_TRY(decode_token(ld, key, len, &bytes, &n));
        } else {
            RS_TRY(decode_piece(ld, key, len, &bytes, &n, &is_byte));
            RS_TRY(tokenizer_set_piece(tok, id, key, len, &piece_used));
        }
        RS_TRY(tokenizer_set_token(tok, id, bytes, n, is_byte ? TOKEN_BYTE : TOKEN_NORMAL,
                                   &ld->text_used));
        ld->in_vocab[id] = 1;
    }
    tok->added = rs_calloc(json_array_size(added) + 1, sizeof *tok->added, "added tokens");
    if (!tok->added) return REASON_ERR_NOMEM;
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *t = json_array_get(added, i);
        const json_t *content = json_object_get(t, "content");
        added_token a = {
            .id = (int32_t)json_integer_value(json_object_get(t, "id")),
            .special = get_bool(t, "special", false),
            .lstrip = get_bool(t, "lstrip", false),
            .rstrip = get_bool(t, "rstrip", false),
            .single_word = get_bool(t, "single_word", false),
            .normalized = get_bool(t, "normalized", false),
        };
        /* Added tokens are matched as their literal content, and decoded so too when byte-level;
         * the crate's SentencePiece-style decoders do apply to them (Gemma's "\u2581\u2581"). */
        const char *text = json_string_value(content), *bytes = text;
        size_t len = json_string_length(content), n = len;
        bool is_byte;
        if (!ld->byte_level) {
            RS_TRY(decode_piece(ld, text, len, &bytes, &n, &is_byte));
            RS_TRY(tokenizer_set_piece(tok, a.id, text, len, &piece_used));
        }
        RS_TRY(tokenizer_set_token(tok, a.id, bytes, n,
                                   a.special ? TOKEN_CONTROL : TOKEN_USER_DEFINED, &ld->text_used));
        tok->added[tok->n_added++] = a;
    }
    RS_TRY(bpe_build_vocab(&tok->bpe, ld->in_vocab));
    tok->bpe.ignore_merges = get_bool(model, "ignore_merges", false);
    if (!ld->byte_level) {
        tok->bpe.char_symbols = true;
        tok->bpe.byte_fallback = byte_fallback;
        tok->bpe.fuse_unk = get_bool(model, "fuse_unk", false);
        const json_t *unk = json_object_get(model, "unk_token");
        if (json_is_string(unk)) {
            tok->bpe.unk = bpe_find(&tok->bpe, json_string_value(unk), json_string_length(unk));
            if (tok->bpe.unk < 0)
                return rs_error(REASON_ERR_FORMAT,
                                "%s: model.unk_token '%s' is not in the vocabulary", ld->file,
                                json_string_value(unk));
        }
        RS_TRY(spm_find_byte_tokens(tok, ld->file));
    }

    const json_t *merges = json_object_get(model, "merges");
    RS_TRY(expect(ld, merges, JSON_ARRAY, "model.merges"));
    size_t n_merges = json_array_size(merges);
    if (n_merges > INT32_MAX) return rs_error(REASON_ERR_FORMAT, "%s: too many merges", ld->file);
    RS_TRY(bpe_reserve_merges(&tok->bpe, n_merges));
    char *left = NULL, *joined = NULL;
    size_t capacity = 0;
    reason_status status = REASON_OK;
    for (size_t i = 0; i < n_merges && status == REASON_OK; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t a_len, b_len;
        if (json_is_string(m)) { /* "a b": the alphabet has no raw space, so one space splits */
            a = json_string_value(m);
            const char *space = memchr(a, ' ', json_string_length(m));
            if (!space) {
                status = rs_error(REASON_ERR_FORMAT, "%s: model.merges[%zu] '%s' is not 'a b'",
                                  ld->file, i, a);
                break;
            }
            a_len = (size_t)(space - a);
            b = space + 1;
            b_len = json_string_length(m) - a_len - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            a_len = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            b_len = json_string_length(json_array_get(m, 1));
        } else {
            status = rs_error(REASON_ERR_FORMAT, "%s: model.merges[%zu]: expected \"a b\" or a pair",
                              ld->file, i);
            break;
        }
        if (capacity < a_len + b_len + 16) {
            capacity = 2 * (a_len + b_len + 16);
            free(left);
            free(joined);
            left = malloc(capacity);
            joined = malloc(capacity);
            if (!left || !joined) {
                status = rs_error(REASON_ERR_NOMEM, "out of memory loading merges");
                break;
            }
        }
        const char *ra, *rb;
        size_t ra_len, rb_len;
        status = decode_token(ld, a, a_len, &ra, &ra_len);
        if (status != REASON_OK) break;
        memcpy(left, ra, ra_len);
        status = decode_token(ld, b, b_len, &rb, &rb_len);
        if (status != REASON_OK) break;
        /* A merge naming tokens outside the vocabulary can never apply; it is skipped. */
        bpe_add_merge(&tok->bpe, left, ra_len, rb, rb_len, (int32_t)i, joined);
    }
    free(left);
    free(joined);
    return status;
}

/* A special token in tokenizer_config.json: a string or {"content": ...}. */
static int32_t config_token(reason_tokenizer *tok, const json_t *config, const char *key) {
    const json_t *v = json_object_get(config, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return -1;
    return reason_tokenizer_find(tok, json_string_value(v));
}

static reason_status load_config(json_loader *ld, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return REASON_OK; /* optional */
    json_t *config = NULL;
    RS_TRY(load_json(path, true, &config));
    reason_tokenizer *tok = ld->tok;
    reason_status status = REASON_OK;
    if (!json_is_object(config)) {
        status = rs_error(REASON_ERR_FORMAT, "%s: expected an object", path);
        goto done;
    }
    static const struct {
        const char *key;
        int32_t which;
    } named[] = {{"bos_token", REASON_SPECIAL_BOS},
                 {"eos_token", REASON_SPECIAL_EOS},
                 {"pad_token", REASON_SPECIAL_PAD}};
    for (size_t i = 0; i < 3; i++) {
        int32_t id = config_token(tok, config, named[i].key);
        if (id >= 0) tok->special[named[i].which] = id;
    }
    const json_t *chat = json_object_get(config, "chat_template");
    if (json_is_array(chat)) { /* named templates: take "default", else the first */
        const json_t *chosen = NULL, *item;
        size_t i;
        json_array_foreach(chat, i, item) {
            const char *name = json_string_value(json_object_get(item, "name"));
            if (!chosen || (name && strcmp(name, "default") == 0)) chosen = item;
        }
        chat = json_object_get(chosen, "template");
    }
    if (json_is_string(chat)) {
        tok->chat_template = strdup(json_string_value(chat));
        if (!tok->chat_template) {
            status = rs_error(REASON_ERR_NOMEM, "out of memory loading %s", path);
            goto done;
        }
    }
    /* Without a template in the post-processor, add_bos_token / add_eos_token decide. */
    if (tok->n_prefix == 0 && get_bool(config, "add_bos_token", false) &&
        tok->special[REASON_SPECIAL_BOS] >= 0)
        tok->prefix[tok->n_prefix++] = tok->special[REASON_SPECIAL_BOS];
    if (tok->n_suffix == 0 && get_bool(config, "add_eos_token", false) &&
        tok->special[REASON_SPECIAL_EOS] >= 0)
        tok->suffix[tok->n_suffix++] = tok->special[REASON_SPECIAL_EOS];
done:
    json_decref(config);
    return status;
}

static reason_status load(json_loader *ld, const char *json_path, const char *config_path) {
    json_t *root = NULL;
    RS_TRY(load_json(json_path, false, &root));
    reason_status status = REASON_OK;
    if (!json_is_object(root)) {
        status = rs_error(REASON_ERR_FORMAT, "%s: expected an object", json_path);
        goto done;
    }
    /* The vocabulary's alphabet follows from the pipeline: byte-level when a ByteLevel step is
     * there, else SentencePiece style, decoded by its decoder. */
    const json_t *decoder = json_object_get(root, "decoder");
    ld->byte_level = has_type(json_object_get(root, "pre_tokenizer"), "ByteLevel") ||
                     has_type(decoder, "ByteLevel");
    if ((status = expect(ld, json_object_get(root, "model"), JSON_OBJECT, "model")) != REASON_OK)
        goto done;
    if (!ld->byte_level && (status = load_spm_decoder(ld, decoder)) != REASON_OK) goto done;
    if ((status = load_vocab(ld, root)) != REASON_OK) goto done;
    if ((status = load_normalizer(ld, json_object_get(root, "normalizer"))) != REASON_OK) goto done;
    if ((status = load_pre_tokenizer(ld, json_object_get(root, "pre_tokenizer"))) != REASON_OK)
        goto done;
    if ((status = load_post_processor(ld, json_object_get(root, "post_processor"))) != REASON_OK)
        goto done;
    if (ld->tok->n_prefix > 0) ld->tok->special[REASON_SPECIAL_BOS] = ld->tok->prefix[0];
    if ((status = load_config(ld, config_path)) != REASON_OK) goto done;
    status = tokenizer_finish(ld->tok);
done:
    json_decref(root);
    return status;
}

reason_status reason_tokenizer_load(const char *path, reason_tokenizer **out_tokenizer) {
    RS_CHECK_ARG(out_tokenizer != NULL);
    *out_tokenizer = NULL;
    RS_CHECK_ARG(path != NULL);
    struct stat st;
    if (stat(path, &st) != 0) return rs_error(REASON_ERR_IO, "%s: %s", path, strerror(errno));
    size_t n = strlen(path);
    char *json_path = malloc(n + 32), *config_path = malloc(n + 32);
    if (!json_path || !config_path) {
        free(json_path);
        free(config_path);
        return rs_error(REASON_ERR_NOMEM, "out of memory");
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(json_path, n + 32, "%s/tokenizer.json", path);
        snprintf(config_path, n + 32, "%s/tokenizer_config.json", path);
    } else {
        snprintf(json_path, n + 32, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash)
            snprintf(config_path, n + 32, "%.*s/tokenizer_config.json", (int)(slash - path), path);
        else
            snprintf(config_path, n + 32, "tokenizer_config.json");
    }
    json_loader ld = {.file = json_path};
    reason_status status = load(&ld, json_path, config_path);
    free(ld.in_vocab);
    free(ld.scratch);
    if (status == REASON_OK)
        *out_tokenizer = ld.tok;
    else
        reason_tokenizer_free(ld.tok);
    free(json_path);
    free(config_path);
    return status;
}
