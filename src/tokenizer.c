/* tokenizer.c — text to tokens and back (BPE, byte-level or SentencePiece style, Hugging Face
 * semantics).
 *
 * Encoding, as the `tokenizers` crate does it:
 *   1. added tokens are cut out of the raw text (leftmost-longest; special ones only with
 *      REASON_TOKENIZE_PARSE_SPECIAL — the crate's encode_special_tokens=False);
 *   2. each remaining span is normalized (NFC for Qwen; ' ' -> U+2581 for Gemma), then cut at
 *      "normalized" added tokens;
 *   3. the pre-tokenizer splits it into words (regexes, see pretokenizer.c);
 *   4. each word is BPE-merged over its raw bytes or its characters (bpe.c);
 *   5. with REASON_TOKENIZE_ADD_SPECIAL the post-processor template's tokens go around it.
 * Decoding concatenates token bytes and replaces invalid UTF-8 by U+FFFD (maximal subparts). */
#include "tokenizer_impl.h"
#include "tokenizer_spm.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- building ------------------------------------------------------------------------------- */

reason_status tokenizer_alloc(int32_t n_vocab, size_t text_capacity, reason_tokenizer **out) {
    *out = NULL;
    if (n_vocab <= 0 || text_capacity > UINT32_MAX)
        return rs_error(REASON_ERR_FORMAT, "tokenizer: %d tokens, %zu bytes of token text", n_vocab,
                        text_capacity);
    reason_tokenizer *tok = rs_calloc(1, sizeof *tok, "tokenizer");
    if (!tok) return REASON_ERR_NOMEM;
    tok->n_vocab = n_vocab;
    tok->text_capacity = text_capacity;
    tok->text = rs_malloc(text_capacity, "token text");
    tok->offset = rs_calloc((size_t)n_vocab, sizeof *tok->offset, "token offsets");
    tok->length = rs_calloc((size_t)n_vocab, sizeof *tok->length, "token lengths");
    tok->kind = rs_malloc((size_t)n_vocab, "token kinds");
    if (!tok->text || !tok->offset || !tok->length || !tok->kind) {
        reason_tokenizer_free(tok);
        return REASON_ERR_NOMEM;
    }
    memset(tok->kind, TOKEN_UNUSED, (size_t)n_vocab);
    for (int i = 0; i < 6; i++) tok->special[i] = -1;
    tok->bpe.text = tok->text;
    tok->bpe.offset = tok->offset;
    tok->bpe.length = tok->length;
    tok->bpe.n_vocab = n_vocab;
    *out = tok;
    return REASON_OK;
}

reason_status tokenizer_set_token(reason_tokenizer *tok, int32_t id, const char *bytes, size_t len,
                                  int32_t kind, size_t *text_used) {
    if (id < 0 || id >= tok->n_vocab)
        return rs_error(REASON_ERR_FORMAT, "token id %d outside the vocabulary of %d", id,
                        tok->n_vocab);
    if (len > tok->text_capacity - *text_used)
        return rs_error(REASON_ERR_INTERNAL, "token %d: token text overruns its %zu-byte blob", id,
                        tok->text_capacity);
    memcpy(tok->text + *text_used, bytes, len);
    tok->offset[id] = (uint32_t)*text_used;
    tok->length[id] = (uint32_t)len;
    tok->kind[id] = (uint8_t)kind;
    *text_used += len;
    return REASON_OK;
}

reason_status tokenizer_alloc_pieces(reason_tokenizer *tok, size_t capacity) {
    if (capacity > UINT32_MAX)
        return rs_error(REASON_ERR_FORMAT, "tokenizer: %zu bytes of pieces", capacity);
    tok->piece_capacity = capacity;
    tok->piece_text = rs_malloc(capacity ? capacity : 1, "token pieces");
    tok->piece_offset = rs_calloc((size_t)tok->n_vocab, sizeof *tok->piece_offset, "piece offsets");
    tok->piece_length = rs_calloc((size_t)tok->n_vocab, sizeof *tok->piece_length, "piece lengths");
    if (!tok->piece_text || !tok->piece_offset || !tok->piece_length) return REASON_ERR_NOMEM;
    tok->bpe.text = tok->piece_text;
    tok->bpe.offset = tok->piece_offset;
    tok->bpe.length = tok->piece_length;
    return REASON_OK;
}

reason_status tokenizer_set_piece(reason_tokenizer *tok, int32_t id, const char *piece, size_t len,
                                  size_t *piece_used) {
    if (id < 0 || id >= tok->n_vocab || !tok->piece_text)
        return rs_error(REASON_ERR_INTERNAL, "token %d: no room for its piece", id);
    if (len > tok->piece_capacity - *piece_used)
        return rs_error(REASON_ERR_INTERNAL, "token %d: piece overruns its %zu-byte blob", id,
                        tok->piece_capacity);
    memcpy(tok->piece_text + *piece_used, piece, len);
    tok->piece_offset[id] = (uint32_t)*piece_used;
    tok->piece_length[id] = (uint32_t)len;
    *piece_used += len;
    return REASON_OK;
}

static const char *token_text(const reason_tokenizer *tok, int32_t id) {
    return tok->text + tok->offset[id];
}

/* What an added token is matched by in text. */
static const char *piece_text(const reason_tokenizer *tok, int32_t id, size_t *len) {
    *len = tok->bpe.length[id];
    return tok->bpe.text + tok->bpe.offset[id];
}

static int compare_by_first_byte_longest(const void *a, const void *b, void *ctx) {
    const reason_tokenizer *tok = ctx;
    int32_t ia = tok->added[*(const int32_t *)a].id, ib = tok->added[*(const int32_t *)b].id;
    size_t la, lb;
    uint8_t fa = (uint8_t)piece_text(tok, ia, &la)[0], fb = (uint8_t)piece_text(tok, ib, &lb)[0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (la != lb) return la > lb ? -1 : 1;
    return ia < ib ? -1 : ia > ib;
}

static reason_status build_index(reason_tokenizer *tok, bool normalized, added_index *index) {
    index->order = rs_malloc((size_t)(tok->n_added ? tok->n_added : 1) * sizeof *index->order,
                             "added-token index");
    if (!index->order) return REASON_ERR_NOMEM;
    index->n = 0;
    size_t len;
    for (int32_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].normalized == normalized && tok->bpe.length[tok->added[i].id] > 0)
            index->order[index->n++] = i;
    qsort_r(index->order, (size_t)index->n, sizeof *index->order, compare_by_first_byte_longest,
            tok);
    uint32_t k = 0;
    for (int b = 0; b < 256; b++) {
        index->start[b] = k;
        while (k < (uint32_t)index->n &&
               (uint8_t)piece_text(tok, tok->added[index->order[k]].id, &len)[0] == b)
            k++;
    }
    index->start[256] = k;
    return REASON_OK;
}

/* Tokens that end generation in the models we know, when the vocabulary has them. */
static const char *const end_token_names[] = {
    "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>",
    "<end_of_turn>", "<|return|>", "<|call|>",   "<|end|>",         "<eos>",
    "<turn|>", /* Gemma 4 */
};

static void add_end(reason_tokenizer *tok, int32_t id) {
    if (id < 0 || tok->n_end >= TOKENIZER_MAX_END) return;
    for (int32_t i = 0; i < tok->n_end; i++)
        if (tok->end[i] == id) return;
    tok->end[tok->n_end++] = id;
}

reason_status tokenizer_finish(reason_tokenizer *tok) {
    RS_TRY(build_index(tok, false, &tok->added_raw));
    RS_TRY(build_index(tok, true, &tok->added_normalized));
    if (tok->special[REASON_SPECIAL_EOT] < 0) {
        static const char *const eot_names[] = {"<|im_end|>", "<|eot_id|>", "<end_of_turn>",
                                                "<|end|>", "<turn|>"};
        for (size_t i = 0; i < sizeof eot_names / sizeof eot_names[0]; i++) {
            reason_token id = reason_tokenizer_find(tok, eot_names[i]);
            if (id >= 0 && tok->kind[id] != TOKEN_NORMAL) {
                tok->special[REASON_SPECIAL_EOT] = id;
                break;
            }
        }
    }
    if (tok->special[REASON_SPECIAL_THINK_BEGIN] < 0)
        tok->special[REASON_SPECIAL_THINK_BEGIN] = reason_tokenizer_find(tok, "<think>");
    if (tok->special[REASON_SPECIAL_THINK_END] < 0)
        tok->special[REASON_SPECIAL_THINK_END] = reason_tokenizer_find(tok, "</think>");
    add_end(tok, tok->special[REASON_SPECIAL_EOS]);
    add_end(tok, tok->special[REASON_SPECIAL_EOT]);
    for (size_t i = 0; i < sizeof end_token_names / sizeof end_token_names[0]; i++) {
        reason_token id = reason_tokenizer_find(tok, end_token_names[i]);
        if (id >= 0 && tok->kind[id] != TOKEN_NORMAL) add_end(tok, id);
    }
    return REASON_OK;
}

void reason_tokenizer_free(reason_tokenizer *tok) {
    if (!tok) return;
    bpe_free(&tok->bpe);
    pretok_free(&tok->pre);
    free(tok->added_raw.order);
    free(tok->added_normalized.order);
    free(tok->added);
    free(tok->text);
    free(tok->offset);
    free(tok->length);
    free(tok->piece_text);
    free(tok->piece_offset);
    free(tok->piece_length);
    free(tok->kind);
    free(tok->chat_template);
    free(tok);
}

const char *tokenizer_chat_template(const reason_tokenizer *tok) {
    return tok ? tok->chat_template : NULL;
}

/* ---- encoding -------------------------------------------------------------------------------- */

typedef struct encoder {
    const reason_tokenizer *tok;
    int32_t flags;
    token_sink sink;
    bpe_scratch bpe;
    pretok_scratch pre;
} encoder;

static bool is_whitespace(uint32_t cp) { /* Unicode White_Space, as Rust's char::is_whitespace */
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85) return true;
    if (cp < 0xA0) return false;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static bool is_word_char(uint32_t cp) {
    if (cp == '_') return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/* The code point ending at s[end) (s valid UTF-8, end > 0) and its start. */
static uint32_t char_before(const uint8_t *s, size_t end, size_t *start) {
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xC0) == 0x80) i--;
    uint32_t cp = 0;
    utf8_next(s + i, end - i, &cp);
    *start = i;
    return cp;
}

static uint32_t char_at(const uint8_t *s, size_t len, size_t pos, size_t *next) {
    uint32_t cp = 0;
    int n = utf8_next(s + pos, len - pos, &cp);
    *next = pos + (size_t)(n > 0 ? n : 1);
    return cp;
}

static reason_status encode_word(void *ctx, const uint8_t *word, size_t len) {
    encoder *enc = ctx;
    return bpe_encode_word(&enc->tok->bpe, word, len, &enc->bpe, &enc->sink);
}

static reason_status encode_pretokenize(encoder *enc, const uint8_t *s, size_t len) {
    return pretok_run(&enc->tok->pre, s, len, &enc->pre, encode_word, enc);
}

typedef reason_status (*span_fn)(encoder *enc, const uint8_t *s, size_t len);

/* Cuts the added tokens of index out of s; the spans between them go to gap. */
static reason_status split_added(encoder *enc, const added_index *index, const uint8_t *s,
                                 size_t len, span_fn gap) {
    const reason_tokenizer *tok = enc->tok;
    bool parse_special = (enc->flags & REASON_TOKENIZE_PARSE_SPECIAL) != 0;
    size_t done = 0, pos = 0;
    while (index->n > 0 && pos < len) {
        uint8_t b = s[pos];
        const added_token *found = NULL;
        size_t found_len = 0;
        for (uint32_t k = index->start[b]; k < index->start[b + 1]; k++) {
            const added_token *t = &tok->added[index->order[k]];
            size_t n;
            const char *piece = piece_text(tok, t->id, &n);
            if (n <= len - pos && memcmp(piece, s + pos, n) == 0) {
                found = t;
                found_len = n;
                break;
            }
        }
        if (!found) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + found_len, unused;
        pos = stop; /* the search resumes after a match even when the match is refused */
        if (found->special && !parse_special) continue;
        if (found->single_word &&
            ((start > 0 && is_word_char(char_before(s, start, &unused))) ||
             (stop < len && is_word_char(char_at(s, len, stop, &unused)))))
            continue;
        if (found->lstrip) {
            size_t before;
            while (start > done && is_whitespace(char_before(s, start, &before))) start = before;
        }
        if (found->rstrip) {
            size_t next;
            while (stop < len && is_whitespace(char_at(s, len, stop, &next))) stop = next;
            pos = stop;
        }
        if (start > done) RS_TRY(gap(enc, s + done, start - done));
        token_sink_push(&enc->sink, found->id);
        done = stop;
    }
    return len > done ? gap(enc, s + done, len - done) : REASON_OK;
}

static reason_status encode_normalized(encoder *enc, const uint8_t *s, size_t len) {
    return split_added(enc, &enc->tok->added_normalized, s, len, encode_pretokenize);
}

/* The literal replacement of the normalizer, after the Unicode normal form. */
static reason_status encode_replaced(encoder *enc, const uint8_t *s, size_t len) {
    const text_replace *r = &enc->tok->replace;
    if (r->from_len == 0 || !memmem(s, len, r->from, r->from_len))
        return encode_normalized(enc, s, len);
    size_t bound;
    if (!text_replace_bound(r, len, &bound))
        return rs_error(REASON_ERR_INVALID_ARG, "tokenize: %zu bytes of text are too many", len);
    char *replaced = rs_malloc(bound ? bound : 1, "normalized text");
    if (!replaced) return REASON_ERR_NOMEM;
    size_t n = text_replace_apply(r, (const char *)s, len, replaced);
    reason_status status = encode_normalized(enc, (const uint8_t *)replaced, n);
    free(replaced);
    return status;
}

static reason_status encode_raw_span(encoder *enc, const uint8_t *s, size_t len) {
    int32_t normalizer = enc->tok->normalizer;
    if (normalizer == NORMALIZER_NONE) return encode_replaced(enc, s, len);
    /* Text below U+0300 is unchanged by NFC (nothing there composes); ASCII by every form. */
    uint8_t limit = normalizer == NORMALIZER_NFC ? 0xCC : 0x80;
    bool unchanged = true;
    for (size_t i = 0; i < len && unchanged; i++) unchanged = s[i] < limit;
    if (unchanged) return encode_replaced(enc, s, len);
    int options = UTF8PROC_STABLE;
    switch (normalizer) {
    case NORMALIZER_NFC: options |= UTF8PROC_COMPOSE; break;
    case NORMALIZER_NFD: options |= UTF8PROC_DECOMPOSE; break;
    case NORMALIZER_NFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    utf8proc_uint8_t *normal = NULL;
    utf8proc_ssize_t n = utf8proc_map(s, (utf8proc_ssize_t)len, &normal, (utf8proc_option_t)options);
    if (n < 0)
        return rs_error(REASON_ERR_INTERNAL, "tokenize: normalization failed: %s",
                        utf8proc_errmsg(n));
    reason_status status = encode_replaced(enc, normal, (size_t)n);
    free(normal);
    return status;
}

reason_status reason_tokenize(const reason_tokenizer *tok, const char *text, size_t len,
                              int32_t flags, reason_token *tokens, size_t capacity,
                              size_t *out_n_tokens) {
    RS_CHECK_ARG(tok != NULL);
    RS_CHECK_ARG(text != NULL || len == 0);
    RS_CHECK_ARG(tokens != NULL || capacity == 0);
    RS_CHECK_ARG(out_n_tokens != NULL);
    *out_n_tokens = 0;
    const uint8_t *s = (const uint8_t *)(text ? text : "");
    size_t bad = utf8_validate(s, len);
    if (bad < len)
        return rs_error(REASON_ERR_INVALID_ARG,
                        "reason_tokenize: invalid UTF-8 at byte offset %zu (byte 0x%02X)", bad,
                        s[bad]);
    encoder enc = {.tok = tok, .flags = flags, .sink = {.ids = tokens, .capacity = capacity}};
    bool add_special = (flags & REASON_TOKENIZE_ADD_SPECIAL) != 0;
    if (add_special)
        for (int32_t i = 0; i < tok->n_prefix; i++) token_sink_push(&enc.sink, tok->prefix[i]);
    reason_status status = split_added(&enc, &tok->added_raw, s, len, encode_raw_span);
    if (add_special)
        for (int32_t i = 0; i < tok->n_suffix; i++) token_sink_push(&enc.sink, tok->suffix[i]);
    bpe_scratch_free(&enc.bpe);
    pretok_scratch_free(&enc.pre);
    if (status != REASON_OK) return status;
    *out_n_tokens = enc.sink.n;
    if (enc.sink.n > capacity)
        return rs_error(REASON_ERR_BUFFER, "reason_tokenize: room for %zu tokens, %zu needed",
                        capacity, enc.sink.n);
    return REASON_OK;
}

/* ---- decoding -------------------------------------------------------------------------------- */

static reason_status check_token(const reason_tokenizer *tok, reason_token token, const char *fn) {
    if (token < 0 || token >= tok->n_vocab)
        return rs_error(REASON_ERR_INVALID_ARG, "%s: token %d outside the vocabulary of %d", fn,
                        token, tok->n_vocab);
    return REASON_OK;
}

reason_status reason_token_to_bytes(const reason_tokenizer *tok, reason_token token, char *buf,
                                    size_t capacity, size_t *out_len) {
    RS_CHECK_ARG(tok != NULL);
    RS_CHECK_ARG(out_len != NULL);
    RS_TRY(check_token(tok, token, __func__));
    return rs_copy_out(token_text(tok, token), tok->length[token], buf, capacity, out_len);
}

int32_t reason_token_is_control(const reason_tokenizer *tok, reason_token token) {
    if (!tok || token < 0 || token >= tok->n_vocab) return 0;
    const int kind = tok->kind[token];
    return kind == TOKEN_CONTROL || kind == TOKEN_UNKNOWN || kind == TOKEN_UNUSED;
}

reason_status reason_detokenize(const reason_tokenizer *tok, const reason_token *tokens,
                                size_t n_tokens, int32_t render_special, char *buf,
                                size_t capacity, size_t *out_len) {
    RS_CHECK_ARG(tok != NULL);
    RS_CHECK_ARG(tokens != NULL || n_tokens == 0);
    RS_CHECK_ARG(out_len != NULL);
    size_t total = 0;
    for (size_t i = 0; i < n_tokens; i++) {
        RS_TRY(check_token(tok, tokens[i], __func__));
        total += tok->length[tokens[i]];
    }
    size_t work_size;
    if (!rs_mul_size(total, 4, &work_size))
        return rs_error(REASON_ERR_INVALID_ARG, "reason_detokenize: too much text");
    uint8_t *bytes = rs_malloc(work_size, "detokenized text");
    if (!bytes) return REASON_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < n_tokens; i++) {
        reason_token t = tokens[i];
        if (!render_special && reason_token_is_control(tok, t)) continue;
        memcpy(bytes + n, token_text(tok, t), tok->length[t]);
        n += tok->length[t];
    }
    /* The lossy text goes after the raw bytes: it is at most three times as long. */
    size_t consumed;
    size_t m = utf8_lossy(bytes, n, true, bytes + total, &consumed);
    reason_status status = rs_copy_out((const char *)bytes + total, m, buf, capacity, out_len);
    free(bytes);
    return status;
}

int32_t reason_tokenizer_n_vocab(const reason_tokenizer *tok) { return tok ? tok->n_vocab : 0; }

reason_token reason_tokenizer_special(const reason_tokenizer *tok, int32_t which) {
    if (!tok || which < 0 || which >= 6) return -1;
    return tok->special[which];
}

int32_t reason_token_is_end(const reason_tokenizer *tok, reason_token token) {
    if (!tok) return 0;
    for (int32_t i = 0; i < tok->n_end; i++)
        if (tok->end[i] == token) return 1;
    return 0;
}

reason_token reason_tokenizer_find(const reason_tokenizer *tok, const char *text) {
    if (!tok || !text) return -1;
    size_t len = strlen(text);
    for (int32_t i = 0; i < tok->n_added; i++) {
        int32_t id = tok->added[i].id;
        if (tok->length[id] == len && memcmp(token_text(tok, id), text, len) == 0) return id;
    }
    if (!tok->bpe.vocab_slots) return -1;
    return bpe_find(&tok->bpe, text, len);
}

/* ---- streaming ------------------------------------------------------------------------------- */

struct reason_detokenizer {
    const reason_tokenizer *tok;
    uint8_t pending[4]; /* a character's first bytes waiting for the rest (at most 3) */
    size_t n_pending;
    uint8_t *work; /* pending + token bytes, then the text that comes out */
    size_t work_capacity;
};

reason_status reason_detokenizer_create(const reason_tokenizer *tok, reason_detokenizer **out) {
    RS_CHECK_ARG(out != NULL);
    *out = NULL;
    RS_CHECK_ARG(tok != NULL);
    reason_detokenizer *d = rs_calloc(1, sizeof *d, "detokenizer");
    if (!d) return REASON_ERR_NOMEM;
    d->tok = tok;
    *out = d;
    return REASON_OK;
}

static reason_status detok_emit(reason_detokenizer *d, const uint8_t *extra, size_t extra_len,
                                bool final, char *buf, size_t capacity, size_t *out_len) {
    size_t in_len = d->n_pending + extra_len, need;
    if (!rs_mul_size(in_len, 4, &need))
        return rs_error(REASON_ERR_INVALID_ARG, "detokenizer: too much text");
    if (d->work_capacity < need) {
        uint8_t *work = realloc(d->work, need);
        if (!work) return rs_error(REASON_ERR_NOMEM, "out of memory in detokenizer");
        d->work = work;
        d->work_capacity = need;
    }
    memcpy(d->work, d->pending, d->n_pending);
    if (extra_len) memcpy(d->work + d->n_pending, extra, extra_len);
    size_t consumed;
    size_t n = utf8_lossy(d->work, in_len, final, d->work + in_len, &consumed);
    RS_TRY(rs_copy_out((const char *)d->work + in_len, n, buf, capacity, out_len));
    /* Committed only once the text was delivered: a too-small buffer changes nothing. */
    d->n_pending = in_len - consumed;
    memcpy(d->pending, d->work + consumed, d->n_pending);
    return REASON_OK;
}

reason_status reason_detokenizer_push(reason_detokenizer *d, reason_token token, char *buf,
                                      size_t capacity, size_t *out_len) {
    RS_CHECK_ARG(d != NULL);
    RS_CHECK_ARG(out_len != NULL);
    RS_TRY(check_token(d->tok, token, __func__));
    /* control, unknown and unused tokens are not text: they contribute nothing to the stream */
    const size_t len = reason_token_is_control(d->tok, token) ? 0 : d->tok->length[token];
    return detok_emit(d, (const uint8_t *)token_text(d->tok, token), len, false, buf, capacity,
                      out_len);
}

reason_status reason_detokenizer_flush(reason_detokenizer *d, char *buf, size_t capacity,
                                       size_t *out_len) {
    RS_CHECK_ARG(d != NULL);
    RS_CHECK_ARG(out_len != NULL);
    return detok_emit(d, NULL, 0, true, buf, capacity, out_len);
}

void reason_detokenizer_free(reason_detokenizer *d) {
    if (!d) return;
    free(d->work);
    free(d);
}
