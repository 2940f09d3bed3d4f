/* safetensors.c — the safetensors container.
 *
 * Layout: u64 little-endian N, then N bytes of UTF-8 JSON (possibly padded with spaces), then the
 * data section. The JSON is an object: "__metadata__" → {string: string}, and per tensor
 * name → {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [begin, end]} with offsets
 * relative to the data section. Tensors are row-major (the last dimension contiguous).
 *
 * The header is parsed with jansson (duplicate keys refused), so messages carry its line and
 * column. Every number from the file is checked before it sizes or locates anything: the header
 * length against the bytes that follow it, each shape product and byte count for overflow, each
 * range against the data section, and the ranges against each other (sorted by begin, a tensor
 * must start at or after the previous one's end; zero-size tensors take no bytes). */
#include "safetensors.h"

#include "mapped_file.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The reference implementation's own cap; a header is a few hundred bytes per tensor. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

struct st_file {
    mapped_file map; /* unused (size 0) for st_open_memory */
    const uint8_t *data;
    size_t size;
    char *label;
    json_t *root;           /* the header; tensor names point into it */
    const json_t *metadata; /* "__metadata__" or NULL */
    uint64_t data_start;    /* 8 + header length */
    st_tensor *tensors;     /* sorted by name */
    int64_t n_tensors;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},       [ST_U8] = {"U8", 1},           [ST_I8] = {"I8", 1},
    [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_U16] = {"U16", 2},
    [ST_I16] = {"I16", 2},         [ST_F16] = {"F16", 2},         [ST_BF16] = {"BF16", 2},
    [ST_U32] = {"U32", 4},         [ST_I32] = {"I32", 4},         [ST_F32] = {"F32", 4},
    [ST_U64] = {"U64", 8},         [ST_I64] = {"I64", 8},         [ST_F64] = {"F64", 8},
};

const char *st_dtype_name(int32_t dtype) {
    return dtype >= 0 && dtype < ST_DTYPE_COUNT ? dtypes[dtype].name : "?";
}

size_t st_dtype_size(int32_t dtype) {
    return dtype >= 0 && dtype < ST_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

int64_t st_numel(const st_tensor *t) {
    int64_t n = 1;
    for (int32_t d = 0; d < t->n_dims; d++) n *= t->shape[d]; /* checked at open */
    return n;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* A non-negative JSON integer; false otherwise. */
static bool get_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static reason_status parse_tensor(st_file *f, const char *name, const json_t *v, st_tensor *t,
                                  uint64_t data_size) {
    const char *L = f->label;
    if (!json_is_object(v))
        return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s': expected an object in the header", L,
                        name);
    const json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
                 *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dtype))
        return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is missing or not a string",
                        L, name);
    t->dtype = -1;
    for (int32_t i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(json_string_value(dtype), dtypes[i].name) == 0) t->dtype = i;
    if (t->dtype < 0)
        return rs_error(REASON_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype '%s', not supported", L,
                        name, json_string_value(dtype));
    if (!json_is_array(shape))
        return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s': \"shape\" is missing or not an array",
                        L, name);
    if (json_array_size(shape) > ST_MAX_DIMS)
        return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s' has %zu dimensions (at most %d)", L,
                        name, json_array_size(shape), ST_MAX_DIMS);
    t->n_dims = (int32_t)json_array_size(shape);
    uint64_t numel = 1;
    for (int32_t d = 0; d < t->n_dims; d++) {
        uint64_t n;
        if (!get_u64(json_array_get(shape, (size_t)d), &n) || n > (uint64_t)INT64_MAX)
            return rs_error(REASON_ERR_FORMAT,
                            "%s: tensor '%s': shape[%d] is not a non-negative integer", L, name, d);
        t->shape[d] = (int64_t)n;
        if (__builtin_mul_overflow(numel, n, &numel) || numel > (uint64_t)INT64_MAX)
            return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s': element count overflows", L, name);
    }
    uint64_t nbytes, begin, end;
    if (__builtin_mul_overflow(numel, (uint64_t)dtypes[t->dtype].size, &nbytes))
        return rs_error(REASON_ERR_FORMAT, "%s: tensor '%s': byte size overflows", L, name);
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !get_u64(json_array_get(offs, 0), &begin) || !get_u64(json_array_get(offs, 1), &end))
        return rs_error(REASON_ERR_FORMAT,
                        "%s: tensor '%s': \"data_offsets\" must be [begin, end], two "
                        "non-negative integers",
                        L, name);
    if (begin > end || end > data_size)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] are not inside the %llu-byte "
                        "data section",
                        L, name, (unsigned long long)begin, (unsigned long long)end,
                        (unsigned long long)data_size);
    if (end - begin != nbytes)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but %s %s "
                        "needs %llu",
                        L, name, (unsigned long long)begin, (unsigned long long)end,
                        (unsigned long long)(end - begin), dtypes[t->dtype].name,
                        t->n_dims ? "of that shape" : "scalar", (unsigned long long)nbytes);
    t->name = name;
    t->file = L;
    t->offset = f->data_start + begin;
    t->nbytes = (size_t)nbytes;
    t->data = nbytes ? f->data + t->offset : NULL;
    return REASON_OK;
}

static int by_offset(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static reason_status check_overlaps(st_file *f) {
    reason_status st = REASON_OK;
    const st_tensor **order = rs_calloc((size_t)f->n_tensors + 1, sizeof *order, "tensor order");
    if (!order) return REASON_ERR_NOMEM;
    for (int64_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof *order, by_offset);
    const st_tensor *prev = NULL;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = order[i];
        if (t->nbytes == 0) continue;
        if (prev && t->offset < prev->offset + prev->nbytes) {
            st = rs_error(REASON_ERR_FORMAT,
                          "%s: tensors '%s' and '%s' overlap (data_offsets [%llu, %llu] and "
                          "[%llu, %llu])",
                          f->label, prev->name, t->name,
                          (unsigned long long)(prev->offset - f->data_start),
                          (unsigned long long)(prev->offset - f->data_start + prev->nbytes),
                          (unsigned long long)(t->offset - f->data_start),
                          (unsigned long long)(t->offset - f->data_start + t->nbytes));
            break;
        }
        prev = t;
    }
    free(order);
    return st;
}

static reason_status parse(st_file *f) {
    const char *L = f->label;
    if (f->size < 8)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: %zu bytes is too short for a safetensors file (8-byte header length)",
                        L, f->size);
    const uint64_t hlen = le64(f->data);
    if (hlen > f->size - 8)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: header length %llu exceeds the %zu bytes after it (truncated file?)",
                        L, (unsigned long long)hlen, f->size - 8);
    if (hlen > ST_MAX_HEADER)
        return rs_error(REASON_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit", L,
                        (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    json_error_t err;
    f->root = json_loadb((const char *)f->data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!f->root)
        return rs_error(REASON_ERR_FORMAT,
                        "%s: header JSON line %d, column %d (file offset %d): %s", L, err.line,
                        err.column, err.position + 8, err.text);
    if (!json_is_object(f->root))
        return rs_error(REASON_ERR_FORMAT, "%s: the header is not a JSON object", L);
    const uint64_t data_size = (uint64_t)(f->size - 8) - hlen;
    f->data_start = 8 + hlen;
    f->tensors = rs_calloc(json_object_size(f->root) + 1, sizeof *f->tensors, "tensor table");
    if (!f->tensors) return REASON_ERR_NOMEM;
    const char *key;
    json_t *value;
    json_object_foreach(f->root, key, value) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(value))
                return rs_error(REASON_ERR_FORMAT, "%s: \"__metadata__\" is not an object", L);
            const char *mk;
            json_t *mv;
            json_object_foreach(value, mk, mv) {
                if (!json_is_string(mv))
                    return rs_error(REASON_ERR_FORMAT,
                                    "%s: \"__metadata__\" value '%s' is not a string", L, mk);
            }
            f->metadata = value;
            continue;
        }
        RS_TRY(parse_tensor(f, key, value, &f->tensors[f->n_tensors], data_size));
        f->n_tensors++;
    }
    RS_TRY(check_overlaps(f));
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, by_name);
    return REASON_OK;
}

static reason_status open_common(st_file *f, const char *label, st_file **out) {
    f->label = strdup(label);
    reason_status st = f->label ? parse(f) : rs_error(REASON_ERR_NOMEM, "out of memory");
    if (st != REASON_OK) {
        st_close(f);
        return st;
    }
    *out = f;
    return REASON_OK;
}

reason_status st_open(const char *path, st_file **out) {
    RS_CHECK_ARG(path && out);
    *out = NULL;
    st_file *f = rs_calloc(1, sizeof *f, "safetensors file");
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

reason_status st_open_memory(const void *data, size_t size, const char *label, st_file **out) {
    RS_CHECK_ARG(out && (data || size == 0));
    *out = NULL;
    st_file *f = rs_calloc(1, sizeof *f, "safetensors file");
    if (!f) return REASON_ERR_NOMEM;
    f->data = data;
    f->size = size;
    return open_common(f, label ? label : "<memory>", out);
}

void st_close(st_file *f) {
    if (!f) return;
    free(f->tensors);
    json_decref(f->root);
    free(f->label);
    mapped_file_close(&f->map);
    free(f);
}

const char *st_path(const st_file *f) { return f->label; }
int64_t st_n_tensors(const st_file *f) { return f->n_tensors; }

const st_tensor *st_tensor_at(const st_file *f, int64_t i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const st_tensor *st_find_tensor(const st_file *f, const char *name) {
    const st_tensor key = {.name = name};
    return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, by_name);
}

const char *st_metadata(const st_file *f, const char *key) {
    return f->metadata ? json_string_value(json_object_get(f->metadata, key)) : NULL;
}

/* ---- sets of files ------------------------------------------------------------------------ */

struct st_set {
    char *path;
    st_file **files;
    int32_t n_files;
    const st_tensor **index; /* sorted by name */
    int64_t n;
};

static int by_name_ptr(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

void st_set_close(st_set *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->n_files; i++) st_close(s->files[i]);
    free(s->files);
    free(s->index);
    free(s->path);
    free(s);
}

static st_set *set_new(const char *path) {
    st_set *s = rs_calloc(1, sizeof *s, "safetensors set");
    if (!s) return NULL;
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        rs_error(REASON_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return s;
}

static reason_status open_single(const char *dir, const char *path, st_set **out) {
    st_set *s = set_new(dir);
    if (!s) return REASON_ERR_NOMEM;
    reason_status st = REASON_ERR_NOMEM;
    s->files = rs_calloc(1, sizeof *s->files, "file table");
    if (!s->files) goto fail;
    if ((st = st_open(path, &s->files[0])) != REASON_OK) goto fail;
    s->n_files = 1;
    const st_file *f = s->files[0];
    s->index = rs_calloc((size_t)f->n_tensors + 1, sizeof *s->index, "tensor index");
    st = REASON_ERR_NOMEM;
    if (!s->index) goto fail;
    for (int64_t i = 0; i < f->n_tensors; i++) s->index[i] = &f->tensors[i];
    s->n = f->n_tensors; /* already sorted by name */
    *out = s;
    return REASON_OK;
fail:
    st_set_close(s);
    return st;
}

/* A shard named in the index: a plain file name beside it. */
static bool plain_name(const char *name) {
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

reason_status st_set_open_index(const char *index_path, st_set **out) {
    RS_CHECK_ARG(index_path && out);
    *out = NULL;
    struct stat sb;
    if (stat(index_path, &sb) != 0)
        return rs_error(REASON_ERR_IO, "cannot open '%s': %s", index_path, strerror(errno));
    json_error_t err;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return rs_error(REASON_ERR_FORMAT, "%s: line %d, column %d: %s", index_path, err.line,
                        err.column, err.text);
    reason_status st = REASON_OK;
    char *shard_path = NULL;
    st_set *s = set_new(index_path);
    if (!s) {
        st = REASON_ERR_NOMEM;
        goto done;
    }
    json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map)) {
        st = rs_error(REASON_ERR_FORMAT, "%s: field \"weight_map\" is missing or not an object",
                      index_path);
        goto done;
    }
    const size_t n_map = json_object_size(map);
    const char *slash = strrchr(index_path, '/');
    const int dir_len = slash ? (int)(slash - index_path) : 1;
    const char *dir = slash ? index_path : ".";
    s->files = rs_calloc(n_map + 1, sizeof *s->files, "file table");
    s->index = rs_calloc(n_map + 1, sizeof *s->index, "tensor index");
    shard_path = malloc(strlen(index_path) + 4096);
    if (!s->files || !s->index || !shard_path) {
        st = rs_error(REASON_ERR_NOMEM, "out of memory reading %s", index_path);
        goto done;
    }
    /* Shards are matched by name; sizes are bounded by the index's own size. */
    const char **shard_names = rs_calloc(n_map + 1, sizeof *shard_names, "shard names");
    if (!shard_names) {
        st = REASON_ERR_NOMEM;
        goto done;
    }
    const char *tensor;
    json_t *v;
    json_object_foreach(map, tensor, v) {
        const char *shard = json_string_value(v);
        if (!shard || !plain_name(shard) || strlen(shard) >= 4000) {
            st = rs_error(REASON_ERR_FORMAT,
                          "%s: weight_map[\"%s\"] must be a file name beside the index", index_path,
                          tensor);
            break;
        }
        int32_t fi = -1;
        for (int32_t i = 0; i < s->n_files; i++)
            if (strcmp(shard_names[i], shard) == 0) fi = i;
        if (fi < 0) {
            snprintf(shard_path, strlen(index_path) + 4096, "%.*s/%s", dir_len, dir, shard);
            st = st_open(shard_path, &s->files[s->n_files]);
            if (st != REASON_OK) {
                st = rs_error_prefix(st, "%s: shard of tensor '%s'", index_path, tensor);
                break;
            }
            shard_names[s->n_files] = shard;
            fi = s->n_files++;
        }
        const st_tensor *t = st_find_tensor(s->files[fi], tensor);
        if (!t) {
            st = rs_error(REASON_ERR_FORMAT, "%s: tensor '%s' is mapped to '%s', which lacks it",
                          index_path, tensor, shard);
            break;
        }
        s->index[s->n++] = t;
    }
    free(shard_names);
    if (st == REASON_OK) qsort(s->index, (size_t)s->n, sizeof *s->index, by_name_ptr);
done:
    free(shard_path);
    json_decref(root);
    if (st != REASON_OK) {
        st_set_close(s);
        return st;
    }
    *out = s;
    return REASON_OK;
}

reason_status st_set_open_dir(const char *dir, st_set **out) {
    RS_CHECK_ARG(dir && out);
    *out = NULL;
    const size_t n = strlen(dir) + 40;
    char *path = malloc(n);
    if (!path) return rs_error(REASON_ERR_NOMEM, "out of memory");
    struct stat sb;
    reason_status st;
    snprintf(path, n, "%s/model.safetensors", dir);
    if (stat(path, &sb) == 0) {
        st = open_single(dir, path, out);
    } else {
        snprintf(path, n, "%s/model.safetensors.index.json", dir);
        if (stat(path, &sb) == 0)
            st = st_set_open_index(path, out);
        else
            st = rs_error(REASON_ERR_IO,
                          "%s: neither model.safetensors nor model.safetensors.index.json is there",
                          dir);
    }
    free(path);
    return st;
}

int64_t st_set_n_tensors(const st_set *s) { return s->n; }

const st_tensor *st_set_tensor_at(const st_set *s, int64_t i) {
    return i >= 0 && i < s->n ? s->index[i] : NULL;
}

const st_tensor *st_set_find(const st_set *s, const char *name) {
    const st_tensor key = {.name = name}, *kp = &key;
    const st_tensor *const *hit =
        bsearch(&kp, s->index, (size_t)s->n, sizeof *s->index, by_name_ptr);
    return hit ? *hit : NULL;
}

const char *st_set_path(const st_set *s) { return s->path; }
