/* bpe.c — BPE, byte-level (GPT-2) or over characters with byte fallback (SentencePiece style).
 *
 * A word (one pre-token) starts as one symbol per byte, or per character: the character's token,
 * else its <0xNN> byte tokens, else the unknown token — as the `tokenizers` crate does it. The
 * adjacent pair whose merge has the lowest rank is merged, ties going to the leftmost pair, until
 * no adjacent pair has a merge. Candidates sit in a binary heap ordered by (rank, position); an
 * entry whose symbols have changed since it was pushed is skipped when popped. Symbols only grow,
 * so a pair at a position names the same merged token exactly while both of its symbols are
 * unchanged. O(n log n) per word, so long runs (a megabyte of spaces is one pre-token, and all of
 * a Gemma text between added tokens is one word) stay linear-ish. */
#include "bpe.h"

#include <stdlib.h>
#include <string.h>

/* ---- the GPT-2 byte alphabet ---------------------------------------------------------------- */

/* Code point -> byte for the 256 code points of the alphabet, -1 elsewhere. Printable Latin-1
 * bytes stand for themselves; the 68 others, in increasing order (0x00..0x20, 0x7F..0xA0, 0xAD),
 * take U+0100..U+0143. */
static int alphabet_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp < 0x100 || cp > 0x143) return -1;
    uint32_t k = cp - 0x100;
    if (k <= 0x20) return (int)k;
    if (k <= 0x42) return (int)(0x7F + (k - 0x21));
    return 0xAD;
}

bool bytelevel_decode(const char *s, size_t len, char *out, size_t *out_len) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        if (p[i] < 0x80) {
            cp = p[i++];
        } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
            cp = ((uint32_t)(p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
            i += 2;
        } else {
            return false;
        }
        int b = alphabet_byte(cp);
        if (b < 0) return false;
        out[o++] = (char)b;
    }
    *out_len = o;
    return true;
}

/* ---- hash tables ------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t table_size(size_t n) {
    size_t size = 16;
    while (size < 2 * n) size <<= 1; /* load factor <= 1/2 */
    return size;
}

reason_status bpe_build_vocab(bpe_model *bpe, const uint8_t *in_vocab) {
    size_t size = table_size((size_t)bpe->n_vocab);
    bpe->vocab_slots = rs_malloc(size * sizeof *bpe->vocab_slots, "tokenizer vocabulary index");
    if (!bpe->vocab_slots) return REASON_ERR_NOMEM;
    memset(bpe->vocab_slots, 0xFF, size * sizeof *bpe->vocab_slots);
    bpe->vocab_mask = size - 1;
    for (int i = 0; i < 256; i++) bpe->byte_token[i] = bpe->fallback_token[i] = -1;
    bpe->unk = -1;
    for (int32_t id = 0; id < bpe->n_vocab; id++) {
        if (!in_vocab[id]) continue;
        const char *s = bpe->text + bpe->offset[id];
        size_t len = bpe->length[id];
        size_t slot = hash_bytes(s, len) & bpe->vocab_mask;
        bool duplicate = false;
        while (bpe->vocab_slots[slot] >= 0) {
            int32_t other = bpe->vocab_slots[slot];
            if (bpe->length[other] == len && memcmp(bpe->text + bpe->offset[other], s, len) == 0) {
                duplicate = true;
                break;
            }
            slot = (slot + 1) & bpe->vocab_mask;
        }
        if (duplicate) continue;
        bpe->vocab_slots[slot] = id;
        if (len == 1 && bpe->byte_token[(uint8_t)s[0]] < 0) bpe->byte_token[(uint8_t)s[0]] = id;
    }
    return REASON_OK;
}

int32_t bpe_find(const bpe_model *bpe, const char *bytes, size_t len) {
    size_t slot = hash_bytes(bytes, len) & bpe->vocab_mask;
    for (;;) {
        int32_t id = bpe->vocab_slots[slot];
        if (id < 0) return -1;
        if (bpe->length[id] == len && memcmp(bpe->text + bpe->offset[id], bytes, len) == 0)
            return id;
        slot = (slot + 1) & bpe->vocab_mask;
    }
}

reason_status bpe_reserve_merges(bpe_model *bpe, size_t n) {
    size_t size = table_size(n);
    bpe->merge_slots = rs_calloc(size, sizeof *bpe->merge_slots, "tokenizer merge table");
    if (!bpe->merge_slots) return REASON_ERR_NOMEM;
    bpe->merge_mask = size - 1;
    return REASON_OK;
}

static const bpe_merge_slot *find_merge(const bpe_model *bpe, int32_t left, int32_t right) {
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    size_t slot = hash_u64(key) & bpe->merge_mask;
    for (;;) {
        const bpe_merge_slot *s = &bpe->merge_slots[slot];
        if (s->key == key) return s;
        if (s->key == 0) return NULL;
        slot = (slot + 1) & bpe->merge_mask;
    }
}

bool bpe_add_merge(bpe_model *bpe, const char *left, size_t left_len, const char *right,
                   size_t right_len, int32_t rank, char *scratch) {
    int32_t a = bpe_find(bpe, left, left_len);
    int32_t b = bpe_find(bpe, right, right_len);
    if (a < 0 || b < 0) return false;
    memcpy(scratch, left, left_len);
    memcpy(scratch + left_len, right, right_len);
    int32_t result = bpe_find(bpe, scratch, left_len + right_len);
    if (result < 0) return false;
    bpe_add_merge_ids(bpe, a, b, result, rank);
    return true;
}

void bpe_add_merge_ids(bpe_model *bpe, int32_t left, int32_t right, int32_t result, int32_t rank) {
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    size_t slot = hash_u64(key) & bpe->merge_mask;
    while (bpe->merge_slots[slot].key != 0) {
        if (bpe->merge_slots[slot].key == key) return;
        slot = (slot + 1) & bpe->merge_mask;
    }
    bpe->merge_slots[slot] = (bpe_merge_slot){.key = key, .rank = rank, .result = result};
}

void bpe_free(bpe_model *bpe) {
    free(bpe->vocab_slots);
    free(bpe->merge_slots);
    bpe->vocab_slots = NULL;
    bpe->merge_slots = NULL;
}

/* ---- the merge loop --------------------------------------------------------------------------- */

struct bpe_symbol {
    int32_t id;
    int32_t prev, next; /* neighbours in the word, -1 at the ends */
    bool alive;
};

struct bpe_candidate {
    int32_t rank, pos; /* pos: index of the left symbol (its original byte position) */
    int32_t left, right, result;
};

static bool candidate_less(const struct bpe_candidate *a, const struct bpe_candidate *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct bpe_candidate *heap, size_t *n, struct bpe_candidate c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!candidate_less(&c, &heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = c;
}

static struct bpe_candidate heap_pop(struct bpe_candidate *heap, size_t *n) {
    struct bpe_candidate top = heap[0], last = heap[--*n];
    size_t i = 0, count = *n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= count) break;
        if (child + 1 < count && candidate_less(&heap[child + 1], &heap[child])) child++;
        if (!candidate_less(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    if (count) heap[i] = last;
    return top;
}

static void push_pair(const bpe_model *bpe, const struct bpe_symbol *symbols, int32_t left,
                      struct bpe_candidate *heap, size_t *n) {
    if (left < 0) return;
    int32_t right = symbols[left].next;
    if (right < 0) return;
    const bpe_merge_slot *m = find_merge(bpe, symbols[left].id, symbols[right].id);
    if (!m) return;
    heap_push(heap, n,
              (struct bpe_candidate){.rank = m->rank, .pos = left, .left = symbols[left].id,
                                     .right = symbols[right].id, .result = m->result});
}

static void add_symbol(struct bpe_symbol *symbols, int32_t *n, int32_t id) {
    if (id < 0) return;
    symbols[*n] = (struct bpe_symbol){.id = id, .prev = *n - 1, .next = -1, .alive = true};
    if (*n > 0) symbols[*n - 1].next = *n;
    (*n)++;
}

/* One symbol per character of word (valid UTF-8); at most one per byte. The crate's order is kept
 * exactly: a pending unknown token is written out only before the next character found in the
 * vocabulary (or at the end), so byte-fallback tokens of a later character can come before it. */
static int32_t char_symbols(const bpe_model *bpe, const uint8_t *word, size_t len,
                            struct bpe_symbol *symbols) {
    int32_t n = 0;
    bool unk_pending = false;
    for (size_t i = 0; i < len;) {
        size_t char_len = RS_MIN(bpe_char_length(word[i]), len - i);
        int32_t id = bpe_find(bpe, (const char *)word + i, char_len);
        bool fallback = id < 0 && bpe->byte_fallback;
        for (size_t k = 0; fallback && k < char_len; k++)
            fallback = bpe->fallback_token[word[i + k]] >= 0;
        if (id >= 0) {
            if (unk_pending) add_symbol(symbols, &n, bpe->unk);
            unk_pending = false;
            add_symbol(symbols, &n, id);
        } else if (fallback) {
            for (size_t k = 0; k < char_len; k++)
                add_symbol(symbols, &n, bpe->fallback_token[word[i + k]]);
        } else if (bpe->unk >= 0) {
            if (unk_pending && !bpe->fuse_unk) add_symbol(symbols, &n, bpe->unk);
            unk_pending = true;
        }
        i += char_len;
    }
    if (unk_pending) add_symbol(symbols, &n, bpe->unk);
    return n;
}

reason_status bpe_encode_word(const bpe_model *bpe, const uint8_t *word, size_t len,
                              bpe_scratch *scratch, token_sink *sink) {
    if (len == 0) return REASON_OK;
    if (bpe->ignore_merges || len == 1) {
        int32_t id = bpe_find(bpe, (const char *)word, len);
        if (id >= 0) {
            token_sink_push(sink, id);
            return REASON_OK;
        }
    }
    if (len > INT32_MAX / 4)
        return rs_error(REASON_ERR_INVALID_ARG, "tokenize: a pre-token of %zu bytes is too long",
                        len);
    if (scratch->capacity < len) {
        size_t capacity = RS_MAX(len, 2 * scratch->capacity);
        struct bpe_symbol *symbols = realloc(scratch->symbols, capacity * sizeof *symbols);
        if (!symbols) return rs_error(REASON_ERR_NOMEM, "out of memory in BPE (%zu bytes)", len);
        scratch->symbols = symbols;
        struct bpe_candidate *heap = realloc(scratch->heap, 3 * capacity * sizeof *heap);
        if (!heap) return rs_error(REASON_ERR_NOMEM, "out of memory in BPE (%zu bytes)", len);
        scratch->heap = heap;
        scratch->capacity = capacity;
    }
    struct bpe_symbol *symbols = scratch->symbols;
    struct bpe_candidate *heap = scratch->heap;

    int32_t n = 0;
    if (bpe->char_symbols) {
        n = char_symbols(bpe, word, len, symbols);
    } else { /* a byte without a token is dropped (impossible with a byte-level vocabulary) */
        for (size_t i = 0; i < len; i++) add_symbol(symbols, &n, bpe->byte_token[word[i]]);
    }
    size_t n_heap = 0;
    for (int32_t i = 0; i + 1 < n; i++) push_pair(bpe, symbols, i, heap, &n_heap);
    while (n_heap > 0) {
        struct bpe_candidate c = heap_pop(heap, &n_heap);
        struct bpe_symbol *left = &symbols[c.pos];
        if (!left->alive || left->id != c.left || left->next < 0) continue;
        struct bpe_symbol *right = &symbols[left->next];
        if (right->id != c.right) continue;
        left->id = c.result;
        right->alive = false;
        left->next = right->next;
        if (right->next >= 0) symbols[right->next].prev = c.pos;
        push_pair(bpe, symbols, left->prev, heap, &n_heap);
        push_pair(bpe, symbols, c.pos, heap, &n_heap);
    }
    for (int32_t i = 0; i >= 0 && i < n; i = symbols[i].next) token_sink_push(sink, symbols[i].id);
    return REASON_OK;
}

void bpe_scratch_free(bpe_scratch *scratch) {
    free(scratch->symbols);
    free(scratch->heap);
    scratch->symbols = NULL;
    scratch->heap = NULL;
    scratch->capacity = 0;
}
