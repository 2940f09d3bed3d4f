/* tokenizer_spm.h — SentencePiece-style vocabularies, shared by the tokenizer.json and GGUF
 * loaders: pieces that write a space as U+2581, <0xNN> byte pieces, byte fallback, and the merge
 * table that SentencePiece's BPE implies by its piece scores. */
#ifndef REASON_TOKENIZER_SPM_H
#define REASON_TOKENIZER_SPM_H

#include "tokenizer_impl.h"

/* U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's space. */
#define SPM_SPACE "\xE2\x96\x81"

/* The room text_replace_apply needs for len bytes; false when it overflows. */
RS_INTERNAL bool text_replace_bound(const text_replace *r, size_t len, size_t *bound);
/* Writes s with every occurrence of r->from (left to right, not overlapping) replaced by r->to;
 * returns the length written. */
RS_INTERNAL size_t text_replace_apply(const text_replace *r, const char *s, size_t len, char *out);

/* The byte a "<0xNN>" piece stands for (two hexadecimal digits, either case, as the crate's
 * ByteFallback decoder reads them). */
RS_INTERNAL bool spm_byte_piece(const char *piece, size_t len, uint8_t *byte);

/* Fills tok->bpe.fallback_token with the <0xNN> token of each byte (looked up by piece). With byte
 * fallback on, a missing byte token needs an unknown token to fall back to, else it is an error
 * naming label. */
RS_INTERNAL reason_status spm_find_byte_tokens(reason_tokenizer *tok, const char *label);

/* Builds the merge table of SentencePiece BPE from piece scores (n_vocab floats): every split of a
 * mergeable token's piece, at a character boundary, into two pieces of the vocabulary is a merge
 * into that token, and a higher score merges first (equal scores: leftmost first, as the merge
 * loop breaks rank ties). mergeable[id] marks the tokens a merge may produce. */
RS_INTERNAL reason_status spm_merges_from_scores(reason_tokenizer *tok, const float *scores,
                                                 const uint8_t *mergeable, const char *label);

#endif
