/* tokenizer_gguf.c — the tokenizer stored in a GGUF file's tokenizer.ggml.* metadata, as
 * llama.cpp's converter writes it: model "gpt2" (byte-level BPE), tokens in the byte alphabet
 * (control and user-defined tokens as literal text), token_type, merges as "a b" strings, special
 * ids, add_bos_token / add_eos_token, and tokenizer.ggml.pre naming the pre-tokenizer (the regexes
 * and flags behind each name are in pretokenizer.c); or model "llama" (SentencePiece BPE, Gemma):
 * pieces with U+2581 for a space, <0xNN> byte tokens (type 6), and tokenizer.ggml.scores from
 * which the merges follow (tokenizer_spm.c). Everything kept is copied. */
#include "tokenizer_impl.h"
#include "tokenizer_spm.h"

#include <stdlib.h>
#include <string.h>

static reason_status gguf_string(const gguf_file *file, const char *key, char *buf, size_t cap,
                                 bool *found) {
    const char *s;
    size_t len;
    *found = gguf_get_str(file, key, &s, &len);
    if (!*found) return REASON_OK;
    if (len >= cap)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: %s of %zu bytes is not a known value",
                        gguf_path(file), key, len);
    memcpy(buf, s, len);
    buf[len] = '\0';
    return REASON_OK;
}

static reason_status special_id(const gguf_file *file, reason_tokenizer *tok, const char *key,
                                int32_t *out) {
    uint32_t id;
    if (!gguf_get_u32(file, key, &id)) return REASON_OK;
    if (id >= (uint32_t)tok->n_vocab)
        return rs_error(REASON_ERR_FORMAT, "%s: %s = %u outside the vocabulary of %d",
                        gguf_path(file), key, id, tok->n_vocab);
    *out = (int32_t)id;
    return REASON_OK;
}

/* Byte-level BPE: the merges, "a b" strings in the byte alphabet. */
static reason_status load_merges(const gguf_file *file, reason_tokenizer *tok) {
    const char *path = gguf_path(file);
    uint32_t elem_type;
    const void *data;
    uint64_t n_merges = 0;
    if (!gguf_get_arr(file, "tokenizer.ggml.merges", &elem_type, &n_merges, &data) ||
        elem_type != GGUF_TYPE_STRING)
        return rs_error(REASON_ERR_FORMAT, "%s: tokenizer.ggml.merges: expected a string array",
                        path);
    if (n_merges > INT32_MAX)
        return rs_error(REASON_ERR_FORMAT, "%s: too many merges", path);
    RS_TRY(bpe_reserve_merges(&tok->bpe, n_merges));
    char *merge_buf = NULL;
    size_t merge_cap = 0;
    for (uint64_t i = 0; i < n_merges; i++) {
        const char *s;
        size_t len;
        gguf_get_arr_str(file, "tokenizer.ggml.merges", i, &s, &len);
        /* The separator is the first space after the first character. */
        const char *space = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!space) {
            free(merge_buf);
            return rs_error(REASON_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] is not 'a b'",
                            path, (unsigned long long)i);
        }
        if (merge_cap < 3 * len + 16) {
            merge_cap = 3 * len + 16;
            char *p = realloc(merge_buf, merge_cap);
            if (!p) {
                free(merge_buf);
                return rs_error(REASON_ERR_NOMEM, "out of memory loading merges");
            }
            merge_buf = p;
        }
        size_t a_len = (size_t)(space - s), b_len = len - a_len - 1, ra, rb;
        char *left = merge_buf, *right = merge_buf + len, *joined = merge_buf + 2 * len;
        if (!bytelevel_decode(s, a_len, left, &ra)) {
            memcpy(left, s, a_len);
            ra = a_len;
        }
        if (!bytelevel_decode(space + 1, b_len, right, &rb)) {
            memcpy(right, space + 1, b_len);
            rb = b_len;
        }
        bpe_add_merge(&tok->bpe, left, ra, right, rb, (int32_t)i, joined);
    }
    free(merge_buf);
    return REASON_OK;
}

/* SentencePiece BPE: byte fallback, ' ' written as U+2581, merges from the scores. */
static reason_status build_spm(const gguf_file *file, reason_tokenizer *tok) {
    const char *path = gguf_path(file);
    uint32_t elem_type;
    uint64_t n_scores;
    const void *data;
    if (!gguf_get_arr(file, "tokenizer.ggml.scores", &elem_type, &n_scores, &data) ||
        elem_type != GGUF_TYPE_FLOAT32 || n_scores != (uint64_t)tok->n_vocab)
        return rs_error(REASON_ERR_FORMAT, "%s: tokenizer.ggml.scores: expected %d float32 values",
                        path, tok->n_vocab);
    float *scores = rs_malloc((size_t)tok->n_vocab * sizeof *scores, "token scores");
    uint8_t *mergeable = rs_malloc((size_t)tok->n_vocab, "mergeable tokens");
    reason_status status = REASON_ERR_NOMEM;
    if (scores && mergeable) {
        memcpy(scores, data, (size_t)tok->n_vocab * sizeof *scores); /* maybe unaligned */
        for (int32_t id = 0; id < tok->n_vocab; id++)
            mergeable[id] = tok->kind[id] == TOKEN_NORMAL || tok->kind[id] == TOKEN_USER_DEFINED;
        status = spm_merges_from_scores(tok, scores, mergeable, path);
    }
    free(scores);
    free(mergeable);
    RS_TRY(status);
    tok->bpe.char_symbols = true;
    tok->bpe.byte_fallback = true;
    uint32_t unk;
    if (gguf_get_u32(file, "tokenizer.ggml.unknown_token_id", &unk) &&
        unk < (uint32_t)tok->n_vocab)
        tok->bpe.unk = (int32_t)unk;
    for (int32_t id = 0; id < tok->n_vocab && tok->bpe.unk < 0; id++)
        if (tok->kind[id] == TOKEN_UNKNOWN) tok->bpe.unk = id;
    RS_TRY(spm_find_byte_tokens(tok, path));
    memcpy(tok->replace.from, " ", 1);
    memcpy(tok->replace.to, SPM_SPACE, 3);
    tok->replace.from_len = 1;
    tok->replace.to_len = 3;
    return REASON_OK;
}

static reason_status build(const gguf_file *file, reason_tokenizer **out, uint8_t **in_vocab,
                           char **scratch) {
    const char *path = gguf_path(file);
    char model[64], pre_name[64];
    bool found;
    RS_TRY(gguf_string(file, "tokenizer.ggml.model", model, sizeof model, &found));
    if (!found) return rs_error(REASON_ERR_FORMAT, "%s: no tokenizer.ggml.model", path);
    /* "gemma4" (llama.cpp's converter for Gemma 4) is Gemma's SentencePiece-style vocabulary
     * with scores, read like "llama"; not yet checked against a real Gemma 4 file */
    bool spm = strcmp(model, "llama") == 0 || strcmp(model, "gemma4") == 0;
    if (!spm && strcmp(model, "gpt2") != 0)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: unsupported tokenizer model '%s'", path,
                        model);
    RS_TRY(gguf_string(file, "tokenizer.ggml.pre", pre_name, sizeof pre_name, &found));
    if (!found) strcpy(pre_name, "default");
    /* llama.cpp puts a space before the text unless told otherwise (Llama 2); Gemma says not. */
    bool space_prefix = true;
    gguf_get_bool(file, "tokenizer.ggml.add_space_prefix", &space_prefix);
    if (spm && space_prefix)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "%s: SentencePiece tokenizer with add_space_prefix (Llama 2 style)", path);

    uint32_t elem_type;
    uint64_t n_tokens;
    const void *data;
    if (!gguf_get_arr(file, "tokenizer.ggml.tokens", &elem_type, &n_tokens, &data) ||
        elem_type != GGUF_TYPE_STRING)
        return rs_error(REASON_ERR_FORMAT, "%s: tokenizer.ggml.tokens: expected a string array",
                        path);
    if (n_tokens == 0 || n_tokens > INT32_MAX)
        return rs_error(REASON_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path,
                        (unsigned long long)n_tokens);
    const uint8_t *types = NULL; /* int32 values, not necessarily aligned in the file */
    uint64_t n_types;
    if (gguf_get_arr(file, "tokenizer.ggml.token_type", &elem_type, &n_types, &data)) {
        if (elem_type != GGUF_TYPE_INT32 || n_types != n_tokens)
            return rs_error(REASON_ERR_FORMAT,
                            "%s: tokenizer.ggml.token_type: expected %llu int32 values", path,
                            (unsigned long long)n_tokens);
        types = data;
    }
    size_t text_size = 0, longest = 0;
    for (uint64_t i = 0; i < n_tokens; i++) {
        const char *s;
        size_t len;
        if (!gguf_get_arr_str(file, "tokenizer.ggml.tokens", i, &s, &len))
            return rs_error(REASON_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%llu] unreadable", path,
                            (unsigned long long)i);
        text_size += len;
        longest = RS_MAX(longest, len);
    }
    RS_TRY(tokenizer_alloc((int32_t)n_tokens, text_size, out));
    reason_tokenizer *tok = *out;
    *in_vocab = rs_calloc(n_tokens, 1, "vocabulary flags");
    *scratch = rs_malloc(2 * longest + 16, "token scratch");
    tok->added = rs_calloc(n_tokens, sizeof *tok->added, "added tokens");
    if (!*in_vocab || !*scratch || !tok->added) return REASON_ERR_NOMEM;
    if (spm) RS_TRY(tokenizer_alloc_pieces(tok, text_size));
    /* A SentencePiece token's bytes: its piece with U+2581 as ' ' (never longer), or its byte. */
    static const text_replace unescape = {.from = SPM_SPACE, .to = " ", .from_len = 3, .to_len = 1};

    size_t used = 0, piece_used = 0;
    for (int32_t id = 0; id < (int32_t)n_tokens; id++) {
        const char *s;
        size_t len;
        gguf_get_arr_str(file, "tokenizer.ggml.tokens", (uint64_t)id, &s, &len);
        int32_t kind = TOKEN_NORMAL;
        if (types) memcpy(&kind, types + 4 * (size_t)id, sizeof kind);
        if (kind < TOKEN_NORMAL || kind > TOKEN_BYTE)
            return rs_error(REASON_ERR_FORMAT, "%s: tokenizer.ggml.token_type[%d] = %d", path, id,
                            kind);
        const char *bytes = s;
        size_t n = len;
        if (spm) {
            uint8_t byte;
            if (kind == TOKEN_BYTE && !spm_byte_piece(s, len, &byte))
                return rs_error(REASON_ERR_FORMAT,
                                "%s: tokenizer.ggml.tokens[%d] '%.*s' has the byte type but is "
                                "not <0xNN>",
                                path, id, (int)RS_MIN(len, 64), s);
            if (kind == TOKEN_BYTE) {
                (*scratch)[0] = (char)byte;
                n = 1;
            } else {
                n = text_replace_apply(&unescape, s, len, *scratch);
            }
            bytes = *scratch;
            RS_TRY(tokenizer_set_piece(tok, id, s, len, &piece_used));
            if (kind == TOKEN_USER_DEFINED || kind == TOKEN_BYTE) (*in_vocab)[id] = 1;
        } else if (kind == TOKEN_NORMAL && bytelevel_decode(s, len, *scratch, &n)) {
            /* Normal tokens are in the byte alphabet; control and user-defined ones are text. */
            bytes = *scratch;
        }
        RS_TRY(tokenizer_set_token(tok, id, bytes, n, kind, &used));
        if (kind == TOKEN_NORMAL) (*in_vocab)[id] = 1;
        if (kind == TOKEN_CONTROL || kind == TOKEN_USER_DEFINED || kind == TOKEN_UNKNOWN)
            tok->added[tok->n_added++] = (added_token){.id = id, .special = kind != TOKEN_USER_DEFINED};
    }

    pretok_preset preset = {.add_bos = true}; /* SentencePiece: no pre-tokenizer, BOS */
    if (!spm) RS_TRY(pretok_from_name(&tok->pre, pre_name, &preset));
    tok->normalizer = preset.nfc ? NORMALIZER_NFC : NORMALIZER_NONE;
    RS_TRY(bpe_build_vocab(&tok->bpe, *in_vocab));
    tok->bpe.ignore_merges = preset.ignore_merges;
    if (spm) {
        RS_TRY(build_spm(file, tok));
    } else {
        RS_TRY(load_merges(file, tok));
    }

    RS_TRY(special_id(file, tok, "tokenizer.ggml.bos_token_id", &tok->special[REASON_SPECIAL_BOS]));
    RS_TRY(special_id(file, tok, "tokenizer.ggml.eos_token_id", &tok->special[REASON_SPECIAL_EOS]));
    RS_TRY(special_id(file, tok, "tokenizer.ggml.eot_token_id", &tok->special[REASON_SPECIAL_EOT]));
    RS_TRY(special_id(file, tok, "tokenizer.ggml.padding_token_id",
                      &tok->special[REASON_SPECIAL_PAD]));
    int32_t eom = -1;
    RS_TRY(special_id(file, tok, "tokenizer.ggml.eom_token_id", &eom));
    bool add_bos = preset.add_bos, add_eos = false;
    gguf_get_bool(file, "tokenizer.ggml.add_bos_token", &add_bos);
    gguf_get_bool(file, "tokenizer.ggml.add_eos_token", &add_eos);
    if (add_bos && tok->special[REASON_SPECIAL_BOS] >= 0)
        tok->prefix[tok->n_prefix++] = tok->special[REASON_SPECIAL_BOS];
    if (add_eos && tok->special[REASON_SPECIAL_EOS] >= 0)
        tok->suffix[tok->n_suffix++] = tok->special[REASON_SPECIAL_EOS];

    const char *chat;
    size_t chat_len;
    if (gguf_get_str(file, "tokenizer.chat_template", &chat, &chat_len)) {
        tok->chat_template = strndup(chat, chat_len);
        if (!tok->chat_template) return rs_error(REASON_ERR_NOMEM, "out of memory");
    }
    RS_TRY(tokenizer_finish(tok));
    if (eom >= 0 && tok->n_end < TOKENIZER_MAX_END) {
        bool known = false;
        for (int32_t i = 0; i < tok->n_end; i++) known |= tok->end[i] == eom;
        if (!known) tok->end[tok->n_end++] = eom;
    }
    return REASON_OK;
}

reason_status tokenizer_from_gguf(const gguf_file *file, reason_tokenizer **out) {
    RS_CHECK_ARG(out != NULL);
    *out = NULL;
    RS_CHECK_ARG(file != NULL);
    reason_tokenizer *tok = NULL;
    uint8_t *in_vocab = NULL;
    char *scratch = NULL;
    reason_status status = build(file, &tok, &in_vocab, &scratch);
    free(in_vocab);
    free(scratch);
    if (status != REASON_OK) {
        reason_tokenizer_free(tok);
        return status;
    }
    *out = tok;
    return REASON_OK;
}
