/* gguf.c — the GGUF container, v2 and v3, little-endian.
 *
 * Layout (all integers little-endian):
 *   "GGUF" u32 version  u64 n_tensors  u64 n_kv
 *   n_kv × { string key, u32 value_type, value }
 *   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   padding to general.alignment (default 32), then the data section; tensor offsets are
 *   relative to its start and multiples of the alignment.
 * A string is u64 length + bytes (no NUL). An array is u32 element type + u64 count + elements.
 *
 * Every read goes through a cursor that checks the bytes left first, so nothing past the end of
 * the buffer is ever touched; all size arithmetic is overflow-checked. Counts read from the file
 * only bound loops, never allocations: tables grow as entries are actually parsed. */
#include "gguf.h"

#include "tensor_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_ARRAY_DEPTH 8

typedef struct gguf_kv {
    size_t name_pool; /* offset of the NUL-terminated name in the pool (fixed up to name) */
    const char *name;
    uint64_t name_offset;  /* file offset of the key string, for messages */
    uint32_t type;         /* enum gguf_type */
    uint32_t elem_type;    /* arrays only */
    uint64_t n;            /* array count, or string length */
    uint64_t value_offset; /* string bytes / first array element / scalar */
    uint64_t *str_offsets; /* string arrays: file offset of each element's u64 length prefix */
} gguf_kv;

struct gguf_file {
    mapped_file map; /* unused (size 0) for gguf_open_memory */
    const uint8_t *data;
    size_t size;
    char *label;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;

    gguf_kv *kvs;
    int64_t n_kv;
    gguf_tensor *tensors;
    uint64_t *tensor_name_offsets; /* file offset of each tensor's info, for messages */
    size_t *tensor_name_pool;
    int64_t n_tensors;

    char *pool; /* all key and tensor names, NUL-terminated */
    size_t pool_len, pool_cap;

    uint32_t *kv_hash; /* open addressing, index + 1, 0 = empty; capacity a power of two */
    size_t kv_hash_cap;
    uint32_t *tensor_hash;
    size_t tensor_hash_cap;
};

/* ---- cursor ------------------------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *data;
    size_t size;
    size_t pos;
    const char *label;
} cursor;

static size_t cur_left(const cursor *c) { return c->size - c->pos; }

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* what/whose name the value being read ("n_kv", "key 'general.name'"). */
static reason_status cur_need(cursor *c, size_t n, const char *what, const char *whose) {
    if (cur_left(c) < n)
        return rs_error(REASON_ERR_FORMAT,
                        "'%s': offset %llu: %s%s%s needs %zu bytes but only %zu are left "
                        "(file truncated?)",
                        c->label, (unsigned long long)c->pos, whose, *whose ? ": " : "", what, n,
                        cur_left(c));
    return REASON_OK;
}

static reason_status cur_u32(cursor *c, uint32_t *v, const char *what, const char *whose) {
    RS_TRY(cur_need(c, 4, what, whose));
    *v = le32(c->data + c->pos);
    c->pos += 4;
    return REASON_OK;
}

static reason_status cur_u64(cursor *c, uint64_t *v, const char *what, const char *whose) {
    RS_TRY(cur_need(c, 8, what, whose));
    *v = le64(c->data + c->pos);
    c->pos += 8;
    return REASON_OK;
}

/* A string: u64 length then that many bytes; *str points into the buffer. */
static reason_status cur_str(cursor *c, const char **str, uint64_t *len, const char *what,
                             const char *whose) {
    size_t at = c->pos;
    RS_TRY(cur_u64(c, len, what, whose));
    if (*len > cur_left(c))
        return rs_error(REASON_ERR_FORMAT,
                        "'%s': offset %llu: %s%s%s length %llu exceeds the %zu bytes left",
                        c->label, (unsigned long long)at, whose, *whose ? ": " : "", what,
                        (unsigned long long)*len, cur_left(c));
    *str = (const char *)(c->data + c->pos);
    c->pos += (size_t)*len;
    return REASON_OK;
}

/* ---- value types ---------------------------------------------------------------------------- */

/* Size of a scalar value type, 0 for string/array/unknown. */
static size_t scalar_size(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *type_name(uint32_t type) {
    static const char *const names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* ---- parsing -------------------------------------------------------------------------------- */

static reason_status pool_add(gguf_file *f, const char *s, size_t len, size_t *at) {
    size_t need;
    if (!rs_add_size(f->pool_len, len, &need) || !rs_add_size(need, 1, &need))
        return rs_error(REASON_ERR_FORMAT, "'%s': names too long", f->label);
    if (need > f->pool_cap) {
        size_t cap = f->pool_cap ? f->pool_cap : 4096;
        while (cap < need) {
            if (!rs_mul_size(cap, 2, &cap)) return rs_error(REASON_ERR_NOMEM, "name pool");
        }
        char *p = realloc(f->pool, cap);
        if (!p) return rs_error(REASON_ERR_NOMEM, "out of memory for the GGUF name pool");
        f->pool = p;
        f->pool_cap = cap;
    }
    memcpy(f->pool + f->pool_len, s, len);
    f->pool[f->pool_len + len] = '\0';
    *at = f->pool_len;
    f->pool_len = need;
    return REASON_OK;
}

/* Grows *arr (elements of elem bytes) to hold at least n + 1 elements. */
static reason_status grow(void **arr, size_t *cap, size_t n, size_t elem, const char *what) {
    if (n < *cap) return REASON_OK;
    size_t new_cap = *cap ? *cap * 2 : 64, bytes;
    if (!rs_mul_size(new_cap, elem, &bytes)) return rs_error(REASON_ERR_NOMEM, "too many %s", what);
    void *p = realloc(*arr, bytes);
    if (!p) return rs_error(REASON_ERR_NOMEM, "out of memory growing the table of %s", what);
    memset((char *)p + *cap * elem, 0, (new_cap - *cap) * elem);
    *arr = p;
    *cap = new_cap;
    return REASON_OK;
}

/* Skips (validating) one array body: elem_type, count and elements; records string offsets
 * into *str_offsets when it is non-NULL and the elements are strings. */
static reason_status skip_array(cursor *c, const char *whose, int depth, uint32_t *elem_type_out,
                                uint64_t *n_out, uint64_t *first_out, uint64_t **str_offsets) {
    size_t at = c->pos;
    uint32_t et;
    uint64_t n;
    RS_TRY(cur_u32(c, &et, "array element type", whose));
    RS_TRY(cur_u64(c, &n, "array length", whose));
    if (elem_type_out) *elem_type_out = et;
    if (n_out) *n_out = n;
    if (first_out) *first_out = c->pos;
    size_t esize = scalar_size(et);
    if (esize) {
        size_t bytes;
        if (n > SIZE_MAX || !rs_mul_size((size_t)n, esize, &bytes) || bytes > cur_left(c))
            return rs_error(REASON_ERR_FORMAT,
                            "'%s': offset %llu: %s: array of %llu %s elements exceeds the %zu "
                            "bytes left",
                            c->label, (unsigned long long)at, whose, (unsigned long long)n,
                            type_name(et), cur_left(c));
        if (et == GGUF_TYPE_BOOL) {
            for (size_t i = 0; i < bytes; i++)
                if (c->data[c->pos + i] > 1)
                    return rs_error(REASON_ERR_FORMAT,
                                    "'%s': offset %llu: %s: bool array element %zu is %u, not 0/1",
                                    c->label, (unsigned long long)(c->pos + i), whose, i,
                                    c->data[c->pos + i]);
        }
        c->pos += bytes;
        return REASON_OK;
    }
    /* Strings take at least 8 bytes each, nested arrays at least 12. */
    size_t min_elem;
    if (et == GGUF_TYPE_STRING) {
        min_elem = 8;
    } else if (et == GGUF_TYPE_ARRAY) {
        min_elem = 12;
        if (depth >= GGUF_MAX_ARRAY_DEPTH)
            return rs_error(REASON_ERR_FORMAT,
                            "'%s': offset %llu: %s: arrays nested deeper than %d levels", c->label,
                            (unsigned long long)at, whose, GGUF_MAX_ARRAY_DEPTH);
    } else {
        return rs_error(REASON_ERR_FORMAT, "'%s': offset %llu: %s: unknown array element type %u",
                        c->label, (unsigned long long)at, whose, et);
    }
    size_t bytes;
    if (n > SIZE_MAX || !rs_mul_size((size_t)n, min_elem, &bytes) || bytes > cur_left(c))
        return rs_error(REASON_ERR_FORMAT,
                        "'%s': offset %llu: %s: array of %llu %s elements cannot fit in the %zu "
                        "bytes left",
                        c->label, (unsigned long long)at, whose, (unsigned long long)n,
                        type_name(et), cur_left(c));
    uint64_t *offs = NULL;
    if (et == GGUF_TYPE_STRING && str_offsets) {
        /* n * 8 <= bytes left, so this allocation is bounded by the file size. */
        offs = rs_malloc((size_t)n * sizeof *offs, "string array offsets");
        if (!offs) return REASON_ERR_NOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        reason_status st;
        if (et == GGUF_TYPE_STRING) {
            const char *s;
            uint64_t len;
            if (offs) offs[i] = c->pos;
            st = cur_str(c, &s, &len, "string element", whose);
        } else {
            st = skip_array(c, whose, depth + 1, NULL, NULL, NULL, NULL);
        }
        if (st != REASON_OK) {
            free(offs);
            return st;
        }
    }
    if (str_offsets) *str_offsets = offs;
    return REASON_OK;
}

static reason_status parse_kv(gguf_file *f, cursor *c, gguf_kv *kv) {
    kv->name_offset = c->pos;
    const char *name;
    uint64_t name_len;
    char idx[48];
    snprintf(idx, sizeof idx, "key #%lld", (long long)f->n_kv);
    RS_TRY(cur_str(c, &name, &name_len, "key name", idx));
    RS_TRY(pool_add(f, name, (size_t)name_len, &kv->name_pool));
    /* The key name (cut to fit) as context for the messages below. */
    char whose[160];
    if (name_len)
        snprintf(whose, sizeof whose, "key '%.*s'", (int)RS_MIN(name_len, 120), name);
    else
        snprintf(whose, sizeof whose, "%s (empty name)", idx);

    size_t type_at = c->pos;
    RS_TRY(cur_u32(c, &kv->type, "value type", whose));
    size_t esize = scalar_size(kv->type);
    kv->value_offset = c->pos;
    if (esize) {
        RS_TRY(cur_need(c, esize, type_name(kv->type), whose));
        if (kv->type == GGUF_TYPE_BOOL && c->data[c->pos] > 1)
            return rs_error(REASON_ERR_FORMAT, "'%s': offset %llu: %s: bool value %u is not 0/1",
                            c->label, (unsigned long long)c->pos, whose, c->data[c->pos]);
        c->pos += esize;
        return REASON_OK;
    }
    if (kv->type == GGUF_TYPE_STRING) {
        const char *s;
        RS_TRY(cur_str(c, &s, &kv->n, "string value", whose));
        kv->value_offset = (uint64_t)(s - (const char *)c->data);
        return REASON_OK;
    }
    if (kv->type == GGUF_TYPE_ARRAY)
        return skip_array(c, whose, 1, &kv->elem_type, &kv->n, &kv->value_offset, &kv->str_offsets);
    return rs_error(REASON_ERR_FORMAT, "'%s': offset %llu: %s: unknown value type %u", c->label,
                    (unsigned long long)type_at, whose, kv->type);
}

static reason_status parse_tensor(gguf_file *f, cursor *c, int64_t index) {
    gguf_tensor *t = &f->tensors[index];
    size_t at = c->pos;
    f->tensor_name_offsets[index] = at;
    const char *name;
    uint64_t name_len;
    char idx[48];
    snprintf(idx, sizeof idx, "tensor #%lld", (long long)index);
    RS_TRY(cur_str(c, &name, &name_len, "tensor name", idx));
    RS_TRY(pool_add(f, name, (size_t)name_len, &f->tensor_name_pool[index]));
    char whose[160];
    snprintf(whose, sizeof whose, "tensor '%.*s'", (int)RS_MIN(name_len, 120), name);

    uint32_t n_dims;
    size_t dims_at = c->pos;
    RS_TRY(cur_u32(c, &n_dims, "n_dims", whose));
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return rs_error(REASON_ERR_FORMAT, "'%s': offset %llu: %s: n_dims %u is not in 1..%d",
                        c->label, (unsigned long long)dims_at, whose, n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int32_t)n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        size_t ne_at = c->pos;
        RS_TRY(cur_u64(c, &ne, "dimension", whose));
        if (ne > (uint64_t)INT64_MAX)
            return rs_error(REASON_ERR_FORMAT,
                            "'%s': offset %llu: %s: dimension %u is %lld (negative)", c->label,
                            (unsigned long long)ne_at, whose, d, (long long)ne);
        t->ne[d] = (int64_t)ne;
    }
    size_t type_at = c->pos;
    RS_TRY(cur_u32(c, &t->type, "type", whose));
    const tensor_type_info *info = tensor_type_get(t->type);
    if (!info)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "'%s': offset %llu: %s: unknown tensor type number %u", c->label,
                        (unsigned long long)type_at, whose, t->type);
    if (t->ne[0] % info->block_size != 0)
        return rs_error(REASON_ERR_FORMAT,
                        "'%s': offset %llu: %s: row length %lld is not a multiple of the %s "
                        "block size %d",
                        c->label, (unsigned long long)dims_at, whose, (long long)t->ne[0],
                        info->name, info->block_size);
    /* nbytes = ne0 / block * block_bytes * ne1 * ne2 * ne3, each step checked; the element
     * count must fit in int64 too, since callers index with it. */
    int64_t elems = t->ne[0];
    size_t nbytes = (size_t)(t->ne[0] / info->block_size);
    bool ok = rs_mul_size(nbytes, (size_t)info->block_bytes, &nbytes);
    for (int d = 1; d < GGUF_MAX_DIMS && ok; d++) {
        ok = !__builtin_mul_overflow(elems, t->ne[d], &elems) && (uint64_t)t->ne[d] <= SIZE_MAX &&
             rs_mul_size(nbytes, (size_t)t->ne[d], &nbytes);
    }
    if (!ok)
        return rs_error(REASON_ERR_FORMAT,
                        "'%s': offset %llu: %s: shape [%lld, %lld, %lld, %lld] overflows", c->label,
                        (unsigned long long)dims_at, whose, (long long)t->ne[0],
                        (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
    t->nbytes = nbytes;
    size_t off_at = c->pos;
    RS_TRY(cur_u64(c, &t->offset, "data offset", whose));
    if (t->offset % f->alignment != 0)
        return rs_error(REASON_ERR_FORMAT,
                        "'%s': offset %llu: %s: data offset %llu is not a multiple of the "
                        "alignment %u",
                        c->label, (unsigned long long)off_at, whose, (unsigned long long)t->offset,
                        f->alignment);
    return REASON_OK;
}

/* ---- hash index ------------------------------------------------------------------------------ */

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

typedef const char *(*name_of_fn)(const gguf_file *f, uint32_t index);
static const char *kv_name_of(const gguf_file *f, uint32_t i) { return f->kvs[i].name; }
static const char *tensor_name_of(const gguf_file *f, uint32_t i) { return f->tensors[i].name; }

static int64_t hash_find(const gguf_file *f, const uint32_t *table, size_t cap, name_of_fn name_of,
                         const char *name) {
    if (!cap || !name) return -1;
    for (size_t i = hash_str(name) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        uint32_t slot = table[i];
        if (!slot) return -1;
        if (strcmp(name_of(f, slot - 1), name) == 0) return (int64_t)slot - 1;
    }
}

/* Builds the index; *dup is the first index whose name was already present, or -1. */
static reason_status hash_build(const gguf_file *f, int64_t n, name_of_fn name_of,
                                uint32_t **table_out, size_t *cap_out, int64_t *dup) {
    *dup = -1;
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    uint32_t *table = rs_calloc(cap, sizeof *table, "GGUF name index");
    if (!table) return REASON_ERR_NOMEM;
    *table_out = table;
    *cap_out = cap;
    for (int64_t k = 0; k < n; k++) {
        const char *name = name_of(f, (uint32_t)k);
        size_t i = hash_str(name) & (cap - 1);
        for (; table[i]; i = (i + 1) & (cap - 1)) {
            if (strcmp(name_of(f, table[i] - 1), name) == 0) {
                *dup = k;
                return REASON_OK;
            }
        }
        table[i] = (uint32_t)k + 1;
    }
    return REASON_OK;
}

/* ---- open / close ---------------------------------------------------------------------------- */

static reason_status parse(gguf_file *f) {
    cursor c = {f->data, f->size, 0, f->label};
    if (f->size < 4 || memcmp(f->data, "GGUF", 4) != 0)
        return rs_error(REASON_ERR_FORMAT,
                        "'%s': offset 0: not a GGUF file (magic is not \"GGUF\"; %zu bytes)",
                        f->label, f->size);
    c.pos = 4;
    RS_TRY(cur_u32(&c, &f->version, "version", ""));
    if (f->version == 1)
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "'%s': offset 4: GGUF version 1 is not supported (it predates 64-bit "
                        "counts; re-convert the model to GGUF v3)",
                        f->label);
    if (f->version != 2 && f->version != 3) {
        uint32_t swapped = __builtin_bswap32(f->version);
        if (swapped == 2 || swapped == 3)
            return rs_error(REASON_ERR_UNSUPPORTED,
                            "'%s': offset 4: big-endian GGUF (version %u) is not supported",
                            f->label, swapped);
        return rs_error(REASON_ERR_UNSUPPORTED,
                        "'%s': offset 4: GGUF version %u is not supported (only 2 and 3)", f->label,
                        f->version);
    }
    uint64_t n_tensors, n_kv;
    RS_TRY(cur_u64(&c, &n_tensors, "n_tensors", ""));
    RS_TRY(cur_u64(&c, &n_kv, "n_kv", ""));
    /* A key/value takes at least 8 (name length) + 4 (type) + 1 bytes, a tensor info at least
     * 8 + 4 + 8 + 4 + 8; both counts must fit in what is left, and in the uint32 index. */
    size_t left = cur_left(&c);
    if (n_kv > left / 13 || n_kv >= UINT32_MAX)
        return rs_error(REASON_ERR_FORMAT,
                        "'%s': offset 16: n_kv %llu is implausible for the %zu bytes left",
                        f->label, (unsigned long long)n_kv, left);
    if (n_tensors > left / 32 || n_tensors >= UINT32_MAX)
        return rs_error(REASON_ERR_FORMAT,
                        "'%s': offset 8: n_tensors %llu is implausible for the %zu bytes left",
                        f->label, (unsigned long long)n_tensors, left);

    size_t kv_cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        RS_TRY(grow((void **)&f->kvs, &kv_cap, (size_t)f->n_kv, sizeof *f->kvs, "keys"));
        gguf_kv *kv = &f->kvs[f->n_kv];
        reason_status st = parse_kv(f, &c, kv);
        f->n_kv++; /* counted even on failure, so close frees its string offsets */
        RS_TRY(st);
    }
    for (int64_t i = 0; i < f->n_kv; i++) f->kvs[i].name = f->pool + f->kvs[i].name_pool;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t dup;
    RS_TRY(hash_build(f, f->n_kv, kv_name_of, &f->kv_hash, &f->kv_hash_cap, &dup));
    if (dup >= 0)
        return rs_error(REASON_ERR_FORMAT, "'%s': offset %llu: key '%s' appears twice", f->label,
                        (unsigned long long)f->kvs[dup].name_offset, f->kvs[dup].name);
    int64_t ai = gguf_find_key(f, "general.alignment");
    if (ai >= 0) {
        int64_t a;
        if (!gguf_get_i64(f, "general.alignment", &a) || a <= 0 || a > (int64_t)UINT32_MAX ||
            (a & (a - 1)) != 0)
            return rs_error(REASON_ERR_FORMAT,
                            "'%s': offset %llu: key 'general.alignment' (%s) must be a nonzero "
                            "power of two",
                            f->label, (unsigned long long)f->kvs[ai].value_offset,
                            type_name(f->kvs[ai].type));
        f->alignment = (uint32_t)a;
    }

    size_t t_cap = 0, off_cap = 0, pool_cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        size_t n = (size_t)f->n_tensors;
        RS_TRY(grow((void **)&f->tensors, &t_cap, n, sizeof *f->tensors, "tensors"));
        RS_TRY(grow((void **)&f->tensor_name_offsets, &off_cap, n, sizeof(uint64_t), "tensors"));
        RS_TRY(grow((void **)&f->tensor_name_pool, &pool_cap, n, sizeof(size_t), "tensors"));
        RS_TRY(parse_tensor(f, &c, f->n_tensors));
        f->n_tensors++;
    }
    /* The pool has stopped growing: names can point into it now (key names were fixed up
     * before the tensor names were added, and the pool may have moved since). */
    for (int64_t i = 0; i < f->n_kv; i++) f->kvs[i].name = f->pool + f->kvs[i].name_pool;
    for (int64_t i = 0; i < f->n_tensors; i++)
        f->tensors[i].name = f->pool + f->tensor_name_pool[i];

    RS_TRY(hash_build(f, f->n_tensors, tensor_name_of, &f->tensor_hash, &f->tensor_hash_cap, &dup));
    if (dup >= 0)
        return rs_error(REASON_ERR_FORMAT, "'%s': offset %llu: tensor '%s' appears twice", f->label,
                        (unsigned long long)f->tensor_name_offsets[dup], f->tensors[dup].name);

    /* The data section starts at the next multiple of the alignment. */
    uint64_t data_offset = c.pos;
    uint64_t rem = data_offset % f->alignment;
    if (rem) data_offset += f->alignment - rem; /* c.pos < 2^64 - 2^32: cannot overflow */
    f->data_offset = data_offset;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t begin, end;
        if (__builtin_add_overflow(data_offset, t->offset, &begin) ||
            __builtin_add_overflow(begin, (uint64_t)t->nbytes, &end) || end > f->size)
            return rs_error(REASON_ERR_FORMAT,
                            "'%s': offset %llu: tensor '%s': data (offset %llu + %zu bytes from "
                            "the data section at %llu) extends past the end of the file (%zu "
                            "bytes)",
                            f->label, (unsigned long long)f->tensor_name_offsets[i], t->name,
                            (unsigned long long)t->offset, t->nbytes,
                            (unsigned long long)data_offset, f->size);
        t->offset = begin;
        t->data = f->data + begin;
    }
    return REASON_OK;
}

static reason_status open_common(gguf_file *f, const char *label, gguf_file **out) {
    size_t len = strlen(label);
    f->label = rs_malloc(len + 1, "GGUF label");
    reason_status st = REASON_ERR_NOMEM;
    if (f->label) {
        memcpy(f->label, label, len + 1);
        st = parse(f);
    }
    if (st != REASON_OK) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return REASON_OK;
}

reason_status gguf_open_memory(const void *data, size_t size, const char *label, gguf_file **out) {
    RS_CHECK_ARG(out && (data || size == 0));
    *out = NULL;
    gguf_file *f = rs_calloc(1, sizeof *f, "GGUF file");
    if (!f) return REASON_ERR_NOMEM;
    f->data = data;
    f->size = size;
    return open_common(f, label ? label : "(memory)", out);
}

reason_status gguf_open(const char *path, gguf_file **out) {
    RS_CHECK_ARG(path && out);
    *out = NULL;
    gguf_file *f = rs_calloc(1, sizeof *f, "GGUF file");
    if (!f) return REASON_ERR_NOMEM;
    reason_status st = mapped_file_open(path, &f->map);
    if (st != REASON_OK) {
        free(f);
        return st;
    }
    f->data = f->map.data;
    f->size = f->map.size;
    return open_common(f, path, out);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    free(f->tensor_hash);
    free(f->kv_hash);
    free(f->pool);
    free(f->tensor_name_pool);
    free(f->tensor_name_offsets);
    free(f->tensors);
    for (int64_t i = 0; i < f->n_kv; i++) free(f->kvs[i].str_offsets);
    free(f->kvs);
    free(f->label);
    mapped_file_close(&f->map);
    free(f);
}

/* ---- accessors --------------------------------------------------------------------------------
 */

uint32_t gguf_version(const gguf_file *f) { return f ? f->version : 0; }
const char *gguf_path(const gguf_file *f) { return f ? f->label : ""; }
int64_t gguf_n_keys(const gguf_file *f) { return f ? f->n_kv : 0; }

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    return f ? hash_find(f, f->kv_hash, f->kv_hash_cap, kv_name_of, key) : -1;
}

const char *gguf_key_name(const gguf_file *f, int64_t i) {
    return f && i >= 0 && i < f->n_kv ? f->kvs[i].name : NULL;
}

uint32_t gguf_key_type(const gguf_file *f, int64_t i) {
    return f && i >= 0 && i < f->n_kv ? f->kvs[i].type : UINT32_MAX;
}

static const gguf_kv *find_kv(const gguf_file *f, const char *key) {
    int64_t i = gguf_find_key(f, key);
    return i >= 0 ? &f->kvs[i] : NULL;
}

/* An integer value widened: *neg says whether it is negative (then *mag is its int64). */
typedef struct int_value {
    bool is_signed_neg;
    int64_t s;  /* valid when is_signed_neg */
    uint64_t u; /* valid otherwise */
} int_value;

static bool read_int(const gguf_file *f, const gguf_kv *kv, int_value *v) {
    const uint8_t *p = f->data + kv->value_offset;
    int64_t s = 0;
    uint64_t u = 0;
    bool is_signed = false;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: u = p[0]; break;
    case GGUF_TYPE_INT8:
        s = (int8_t)p[0];
        is_signed = true;
        break;
    case GGUF_TYPE_UINT16: u = (uint16_t)(p[0] | p[1] << 8); break;
    case GGUF_TYPE_INT16:
        s = (int16_t)(uint16_t)(p[0] | p[1] << 8);
        is_signed = true;
        break;
    case GGUF_TYPE_UINT32: u = le32(p); break;
    case GGUF_TYPE_INT32:
        s = (int32_t)le32(p);
        is_signed = true;
        break;
    case GGUF_TYPE_UINT64: u = le64(p); break;
    case GGUF_TYPE_INT64:
        s = (int64_t)le64(p);
        is_signed = true;
        break;
    default: return false;
    }
    if (is_signed && s < 0) {
        v->is_signed_neg = true;
        v->s = s;
    } else {
        v->is_signed_neg = false;
        v->u = is_signed ? (uint64_t)s : u;
    }
    return true;
}

bool gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = find_kv(f, key);
    int_value v;
    if (!kv || !read_int(f, kv, &v) || v.is_signed_neg || v.u > UINT32_MAX) return false;
    *out = (uint32_t)v.u;
    return true;
}

bool gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = find_kv(f, key);
    int_value v;
    if (!kv || !read_int(f, kv, &v)) return false;
    if (v.is_signed_neg) {
        *out = v.s;
        return true;
    }
    if (v.u > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)v.u;
    return true;
}

bool gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = find_kv(f, key);
    if (!kv) return false;
    const uint8_t *p = f->data + kv->value_offset;
    if (kv->type == GGUF_TYPE_FLOAT32) {
        uint32_t bits = le32(p);
        memcpy(out, &bits, 4);
        return true;
    }
    if (kv->type == GGUF_TYPE_FLOAT64) {
        uint64_t bits = le64(p);
        double d;
        memcpy(&d, &bits, 8);
        *out = (float)d;
        return true;
    }
    int_value v;
    if (!read_int(f, kv, &v)) return false;
    *out = v.is_signed_neg ? (float)v.s : (float)v.u;
    return true;
}

bool gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_BOOL) return false;
    *out = f->data[kv->value_offset] != 0;
    return true;
}

bool gguf_get_str(const gguf_file *f, const char *key, const char **str, size_t *len) {
    const gguf_kv *kv = find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_STRING) return false;
    *str = (const char *)f->data + kv->value_offset;
    *len = (size_t)kv->n;
    return true;
}

bool gguf_get_arr(const gguf_file *f, const char *key, uint32_t *elem_type, uint64_t *n,
                  const void **data) {
    const gguf_kv *kv = find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_ARRAY) return false;
    if (elem_type) *elem_type = kv->elem_type;
    if (n) *n = kv->n;
    if (data) *data = f->data + kv->value_offset;
    return true;
}

bool gguf_get_arr_str(const gguf_file *f, const char *key, uint64_t i, const char **str,
                      size_t *len) {
    const gguf_kv *kv = find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->elem_type != GGUF_TYPE_STRING || i >= kv->n)
        return false;
    uint64_t at = kv->str_offsets[i];
    *len = (size_t)le64(f->data + at);
    *str = (const char *)f->data + at + 8;
    return true;
}

int64_t gguf_n_tensors(const gguf_file *f) { return f ? f->n_tensors : 0; }

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i) {
    return f && i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f) return NULL;
    int64_t i = hash_find(f, f->tensor_hash, f->tensor_hash_cap, tensor_name_of, name);
    return i >= 0 ? &f->tensors[i] : NULL;
}
