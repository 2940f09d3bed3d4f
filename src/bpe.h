/* bpe.h — BPE: the vocabulary keyed by token bytes, merge ranks keyed by id pairs, and the merge
 * loop for one pre-tokenized word. A word starts as one symbol per byte (byte-level BPE, GPT-2
 * style) or one per character (SentencePiece style: a character missing from the vocabulary
 * becomes its <0xNN> byte tokens with byte fallback, else the unknown token). */
#ifndef REASON_BPE_H
#define REASON_BPE_H

#include "core.h"

/* Token strings in tokenizer.json and GGUF are written in GPT-2's byte-to-unicode alphabet: each
 * byte is one code point (printable Latin-1 bytes stand for themselves, the other 68 bytes for
 * U+0100..U+0143). Decodes such a string into raw bytes at out (capacity >= len); false when a
 * code point outside the alphabet occurs (the string is then not byte-level, e.g. "<|im_start|>"
 * happens to decode, "a b" does not). */
RS_INTERNAL bool bytelevel_decode(const char *s, size_t len, char *out, size_t *out_len);

typedef struct bpe_merge_slot {
    uint64_t key;   /* (left id << 32 | right id) + 1; 0 marks an empty slot */
    int32_t rank;   /* position in the merge list: lower merges first */
    int32_t result; /* id of the merged token */
} bpe_merge_slot;

/* Read-only after building; shared by every thread that tokenizes. */
typedef struct bpe_model {
    /* Token bytes: token id i is text[offset[i] .. offset[i] + length[i]); not owned. */
    const char *text;
    const uint32_t *offset;
    const uint32_t *length;
    int32_t n_vocab;

    int32_t *vocab_slots; /* open addressing over token bytes; -1 empty */
    size_t vocab_mask;
    bpe_merge_slot *merge_slots;
    size_t merge_mask;
    int32_t byte_token[256]; /* the token of each single byte, -1 when absent */
    bool ignore_merges;      /* a word that is itself a token is emitted whole (Llama 3, o200k) */

    /* SentencePiece style (all false / -1 for byte-level BPE). */
    bool char_symbols;           /* a word starts as one symbol per character */
    bool byte_fallback;          /* a character not in the vocabulary becomes its byte tokens */
    int32_t fallback_token[256]; /* the <0xNN> token of each byte, -1 when absent */
    int32_t unk;                 /* the token of a character with no other way in, or -1 */
    bool fuse_unk;               /* consecutive unknown characters give one unk token */
} bpe_model;

/* Builds the byte-keyed vocabulary from the ids for which in_vocab[id] is set (the first id wins
 * when two have the same bytes). */
RS_INTERNAL reason_status bpe_build_vocab(bpe_model *bpe, const uint8_t *in_vocab);
/* Looks up a token by its raw bytes; -1 when absent. */
RS_INTERNAL int32_t bpe_find(const bpe_model *bpe, const char *bytes, size_t len);
/* Allocates the merge table for up to n merges. */
RS_INTERNAL reason_status bpe_reserve_merges(bpe_model *bpe, size_t n);
/* Adds merge number rank of the ids (left, right) into result; the first rank of a pair wins. The
 * table must have room (bpe_reserve_merges). */
RS_INTERNAL void bpe_add_merge_ids(bpe_model *bpe, int32_t left, int32_t right, int32_t result,
                                   int32_t rank);
/* Adds merge number rank of (left, right) given as raw bytes. Returns false (and adds nothing)
 * when left, right or their concatenation is not in the vocabulary; the first rank of a pair
 * wins. scratch holds at least left_len + right_len bytes. */
RS_INTERNAL bool bpe_add_merge(bpe_model *bpe, const char *left, size_t left_len, const char *right,
                               size_t right_len, int32_t rank, char *scratch);
RS_INTERNAL void bpe_free(bpe_model *bpe);

/* The length of the UTF-8 character that starts with byte lead (in valid UTF-8). */
static inline size_t bpe_char_length(uint8_t lead) {
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* Token ids going out of reason_tokenize: counted past capacity so the caller learns the size. */
typedef struct token_sink {
    reason_token *ids;
    size_t capacity;
    size_t n;
} token_sink;

static inline void token_sink_push(token_sink *sink, reason_token id) {
    if (sink->n < sink->capacity) sink->ids[sink->n] = id;
    sink->n++;
}

/* Per-call working memory of the merge loop, grown to the longest word seen. */
typedef struct bpe_scratch {
    struct bpe_symbol *symbols;
    struct bpe_candidate *heap;
    size_t capacity; /* symbols; the heap holds up to 2 * capacity entries */
} bpe_scratch;

/* Encodes one word (raw bytes) into sink. */
RS_INTERNAL reason_status bpe_encode_word(const bpe_model *bpe, const uint8_t *word, size_t len,
                                          bpe_scratch *scratch, token_sink *sink);
RS_INTERNAL void bpe_scratch_free(bpe_scratch *scratch);

#endif
