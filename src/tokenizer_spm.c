/* tokenizer_spm.c — SentencePiece-style vocabularies (Gemma; Llama 2 and Mistral would also need
 * the space put before the text, which is refused for now).
 *
 * Such a vocabulary is keyed by pieces: the text is normalized by writing every space as U+2581,
 * a word starts as one symbol per character, and a character without a piece of its own is
 * written as the pieces of its UTF-8 bytes, "<0xNN>" (byte fallback). Decoding maps U+2581 back to
 * a space and a byte piece to its byte, which is what each token's bytes hold here.
 *
 * SentencePiece's own BPE has no merge list: of all adjacent symbol pairs whose concatenation is
 * a piece, the one whose piece has the highest score merges first, the leftmost among equals.
 * That is the ordinary BPE loop (bpe.c) over a merge table listing, for every mergeable piece,
 * each split of it into two pieces, ranked by score. A split must fall on a character boundary:
 * symbols are whole characters or merges of them. */
#include "tokenizer_spm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool text_replace_bound(const text_replace *r, size_t len, size_t *bound) {
    if (r->from_len == 0 || r->to_len <= r->from_len) {
        *bound = len;
        return true;
    }
    size_t extra;
    if (!rs_mul_size(len / r->from_len, (size_t)(r->to_len - r->from_len), &extra)) return false;
    *bound = len + extra;
    return *bound >= len;
}

size_t text_replace_apply(const text_replace *r, const char *s, size_t len, char *out) {
    size_t o = 0, i = 0;
    if (r->from_len == 0) {
        memcpy(out, s, len);
        return len;
    }
    while (i < len) {
        const char *hit = memmem(s + i, len - i, r->from, r->from_len);
        size_t stop = hit ? (size_t)(hit - s) : len;
        memcpy(out + o, s + i, stop - i);
        o += stop - i;
        if (!hit) break;
        memcpy(out + o, r->to, r->to_len);
        o += r->to_len;
        i = stop + r->from_len;
    }
    return o;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool spm_byte_piece(const char *piece, size_t len, uint8_t *byte) {
    if (len != 6 || memcmp(piece, "<0x", 3) != 0 || piece[5] != '>') return false;
    int hi = hex_digit(piece[3]), lo = hex_digit(piece[4]);
    if (hi < 0 || lo < 0) return false;
    *byte = (uint8_t)(hi << 4 | lo);
    return true;
}

reason_status spm_find_byte_tokens(reason_tokenizer *tok, const char *label) {
    bpe_model *bpe = &tok->bpe;
    for (int b = 0; b < 256; b++) {
        char piece[8];
        snprintf(piece, sizeof piece, "<0x%02X>", b);
        bpe->fallback_token[b] = bpe_find(bpe, piece, 6);
        if (bpe->fallback_token[b] < 0 && bpe->byte_fallback && bpe->unk < 0)
            return rs_error(REASON_ERR_FORMAT,
                            "%s: byte fallback, but no token <0x%02X> and no unknown token", label,
                            b);
    }
    return REASON_OK;
}

/* ---- merges from scores ---------------------------------------------------------------------- */

static int compare_score_desc(const void *a, const void *b, void *ctx) {
    const float *scores = ctx;
    float sa = scores[*(const int32_t *)a], sb = scores[*(const int32_t *)b];
    return sa > sb ? -1 : sa < sb;
}

typedef struct spm_merge {
    int32_t left, right, result, rank;
} spm_merge;

typedef struct merge_list {
    spm_merge *items;
    size_t n, capacity;
} merge_list;

/* Appends the splits of token id into two pieces of the vocabulary, with rank. A byte token is
 * never a half: SentencePiece falls back to bytes only after merging. */
static reason_status add_splits(const reason_tokenizer *tok, int32_t id, int32_t rank,
                                merge_list *list) {
    const bpe_model *bpe = &tok->bpe;
    const char *piece = bpe->text + bpe->offset[id];
    size_t len = bpe->length[id];
    for (size_t cut = bpe_char_length((uint8_t)piece[0]); cut < len;
         cut += bpe_char_length((uint8_t)piece[cut])) {
        int32_t left = bpe_find(bpe, piece, cut);
        if (left < 0 || tok->kind[left] == TOKEN_BYTE) continue;
        int32_t right = bpe_find(bpe, piece + cut, len - cut);
        if (right < 0 || tok->kind[right] == TOKEN_BYTE) continue;
        if (list->n == list->capacity) {
            size_t capacity = list->capacity ? 2 * list->capacity : 4096;
            spm_merge *items = realloc(list->items, capacity * sizeof *items);
            if (!items) return rs_error(REASON_ERR_NOMEM, "out of memory building merges");
            list->items = items;
            list->capacity = capacity;
        }
        list->items[list->n++] = (spm_merge){left, right, id, rank};
    }
    return REASON_OK;
}

reason_status spm_merges_from_scores(reason_tokenizer *tok, const float *scores,
                                     const uint8_t *mergeable, const char *label) {
    bpe_model *bpe = &tok->bpe;
    int32_t n = tok->n_vocab;
    for (int32_t id = 0; id < n; id++)
        if (!isfinite(scores[id]))
            return rs_error(REASON_ERR_FORMAT, "%s: token %d has score %g", label, id,
                            (double)scores[id]);
    int32_t *order = rs_malloc((size_t)n * sizeof *order, "tokens by score");
    if (!order) return REASON_ERR_NOMEM;
    int32_t n_order = 0;
    for (int32_t id = 0; id < n; id++) {
        /* Only a piece the BPE vocabulary holds (the first of equal pieces) can be produced. */
        if (mergeable[id] && bpe->length[id] >= 2 &&
            bpe_find(bpe, bpe->text + bpe->offset[id], bpe->length[id]) == id)
            order[n_order++] = id;
    }
    qsort_r(order, (size_t)n_order, sizeof *order, compare_score_desc, (void *)scores);
    merge_list list = {0};
    reason_status status = REASON_OK;
    int32_t rank = 0;
    for (int32_t k = 0; k < n_order && status == REASON_OK; k++) {
        if (k > 0 && scores[order[k]] != scores[order[k - 1]]) rank++;
        status = add_splits(tok, order[k], rank, &list);
    }
    if (status == REASON_OK) status = bpe_reserve_merges(bpe, list.n);
    for (size_t i = 0; i < list.n && status == REASON_OK; i++)
        bpe_add_merge_ids(bpe, list.items[i].left, list.items[i].right, list.items[i].result,
                          list.items[i].rank);
    free(list.items);
    free(order);
    return status;
}
