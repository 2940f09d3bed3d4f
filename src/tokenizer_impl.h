/* tokenizer_impl.h — the tokenizer's representation, shared by its loaders (tokenizer_json.c,
 * tokenizer_gguf.c) and its runtime (tokenizer.c). Not for other modules: use tokenizer.h. */
#ifndef REASON_TOKENIZER_IMPL_H
#define REASON_TOKENIZER_IMPL_H

#include "bpe.h"
#include "pretokenizer.h"
#include "tokenizer.h"

/* Token kinds, numbered as GGUF's tokenizer.ggml.token_type. */
enum token_kind {
    TOKEN_NORMAL = 1,
    TOKEN_UNKNOWN = 2,
    TOKEN_CONTROL = 3,      /* special: matched in text only with REASON_TOKENIZE_PARSE_SPECIAL */
    TOKEN_USER_DEFINED = 4, /* added, not special: always matched in text */
    TOKEN_UNUSED = 5,
    TOKEN_BYTE = 6,
};

enum normalizer_kind { NORMALIZER_NONE = 0, NORMALIZER_NFC, NORMALIZER_NFD, NORMALIZER_NFKC,
                       NORMALIZER_NFKD };

/* A token matched in the text before pre-tokenization (Hugging Face's added tokens). */
typedef struct added_token {
    int32_t id;
    bool special;     /* skipped unless REASON_TOKENIZE_PARSE_SPECIAL */
    bool lstrip;      /* absorbs whitespace on its left */
    bool rstrip;      /* absorbs whitespace on its right */
    bool single_word; /* only matches when not inside a word */
    bool normalized;  /* matched in the normalized text rather than the raw text */
} added_token;

/* Added tokens of one kind (raw or normalized) ordered by first byte, longest first, so the first
 * candidate that matches at a position is the leftmost-longest match. */
typedef struct added_index {
    int32_t *order;       /* indices into tokenizer->added */
    uint32_t start[257];  /* order[start[b] .. start[b + 1]) begin with byte b */
    int32_t n;
} added_index;

/* A literal replacement (Hugging Face's Replace normalizer and decoder with a String pattern). */
#define TEXT_REPLACE_MAX 16
typedef struct text_replace {
    char from[TEXT_REPLACE_MAX], to[TEXT_REPLACE_MAX];
    uint8_t from_len, to_len; /* from_len 0: no replacement */
} text_replace;

#define TOKENIZER_MAX_TEMPLATE 4
#define TOKENIZER_MAX_END 16

struct reason_tokenizer {
    int32_t n_vocab;
    char *text;        /* all token bytes (raw, not the byte-level alphabet) */
    size_t text_capacity;
    uint32_t *offset;  /* (n_vocab) */
    uint32_t *length;  /* (n_vocab) */
    uint8_t *kind;     /* (n_vocab) enum token_kind; TOKEN_UNUSED for ids that were never given */

    /* SentencePiece-style vocabularies: the piece each token is matched by (e.g. "\u2581Hello",
     * "<0x0A>") differs from the bytes it stands for (" Hello", "\n"). The BPE and the added
     * tokens work on pieces. NULL when the pieces are the token bytes. */
    char *piece_text;
    size_t piece_capacity;
    uint32_t *piece_offset; /* (n_vocab) */
    uint32_t *piece_length; /* (n_vocab) */

    bpe_model bpe;
    int32_t normalizer;  /* enum normalizer_kind */
    text_replace replace; /* applied after the Unicode normal form (SentencePiece: ' ' -> U+2581) */
    pretokenizer pre;

    added_token *added;
    int32_t n_added;
    added_index added_raw, added_normalized;

    /* What REASON_TOKENIZE_ADD_SPECIAL puts around the text (post-processor template). */
    int32_t prefix[TOKENIZER_MAX_TEMPLATE], n_prefix;
    int32_t suffix[TOKENIZER_MAX_TEMPLATE], n_suffix;

    int32_t special[6]; /* enum reason_special_token -> id or -1 */
    int32_t end[TOKENIZER_MAX_END], n_end;
    char *chat_template;
};

/* ---- building, shared by the loaders ---- */

/* Allocates an empty tokenizer with every id unused and every special id -1. */
RS_INTERNAL reason_status tokenizer_alloc(int32_t n_vocab, size_t text_capacity,
                                          reason_tokenizer **out);
/* Gives token id its raw bytes and kind; text_used tracks the blob (bounded by the capacity
 * given to tokenizer_alloc). */
RS_INTERNAL reason_status tokenizer_set_token(reason_tokenizer *tok, int32_t id, const char *bytes,
                                              size_t len, int32_t kind, size_t *text_used);
/* Gives the tokenizer separate pieces (see piece_text), capacity bytes of them; the BPE
 * vocabulary is then keyed by pieces. */
RS_INTERNAL reason_status tokenizer_alloc_pieces(reason_tokenizer *tok, size_t capacity);
/* Gives token id its piece; piece_used tracks the piece blob. */
RS_INTERNAL reason_status tokenizer_set_piece(reason_tokenizer *tok, int32_t id, const char *piece,
                                              size_t len, size_t *piece_used);
/* Builds the added-token indices, the end-of-generation set and the well-known special ids
 * not set yet (<think>, </think>, end-of-turn). */
RS_INTERNAL reason_status tokenizer_finish(reason_tokenizer *tok);

#endif
