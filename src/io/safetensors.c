/* safetensors.c - read (memory-mapped) and write safetensors files.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the data area; offsets are relative to its start. F32 tensors that are
 * 4-byte aligned are used in place from the read-only mapping; F16, BF16,
 * F64 and the integer and bool types are converted to owned float32 copies.
 * The file may come from anyone, so the JSON is parsed strictly (nothing but
 * spaces may follow it), and every dtype, shape and offset is checked against
 * the file before use: offsets must lie in the data area, match the shape
 * exactly, and no two tensors may share bytes. Tensors come out in data
 * order, which is the order every writer (ours included) puts them in.
 *
 * Writing: F32 (or F16, rounded to nearest even, for compact shipped
 * weights: ge_safetensors_save_f16), header entries in the caller's order with
 * "__metadata__" first, the header padded with spaces to a multiple of 8 so
 * that the data (and so every float) is aligned for mapping, through an
 * atomic temporary file. */
#include "io/io.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER (100u << 20)

static ge_status parse_entry(ge_tensors *ts, const char *path, const char *name, json_object *ent,
                             const unsigned char *data, size_t data_len, int64_t *begin_out,
                             int64_t *end_out) {
    json_object *jd, *js, *jo;
    if (!json_object_is_type(ent, json_type_object) ||
        !json_object_object_get_ex(ent, "dtype", &jd) ||
        !json_object_object_get_ex(ent, "shape", &js) ||
        !json_object_object_get_ex(ent, "data_offsets", &jo) ||
        !json_object_is_type(jd, json_type_string) || !json_object_is_type(js, json_type_array) ||
        !json_object_is_type(jo, json_type_array) || json_object_array_length(jo) != 2)
        return ge_fail(GE_ERR_FORMAT, "%s: tensor '%s' has a malformed header entry", path, name);
    const char *dtname = json_object_get_string(jd);
    ge_dtype dt;
    if (!ge_dtype_from_name(&dt, dtname))
        return ge_fail(GE_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has dtype '%.32s' (F32, F16, BF16, F64, I64, I32, I16, I8, "
                       "U8 and BOOL are read)",
                       path, name, dtname);
    size_t esize = ge_dtype_size(dt);
    size_t ndim = json_object_array_length(js);
    if (ndim > 8)
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions (at most 8)", path,
                       name, ndim);
    int64_t shape[8];
    size_t numel = 1;
    for (size_t i = 0; i < ndim; i++) {
        json_object *d = json_object_array_get_idx(js, i);
        if (!json_object_is_type(d, json_type_int))
            return ge_fail(GE_ERR_FORMAT, "%s: tensor '%s' has a non-integer dimension", path,
                           name);
        int64_t v = json_object_get_int64(d);
        if (v < 0 || !ge_mul_ok(numel, (size_t)v, &numel))
            return ge_fail(GE_ERR_FORMAT, "%s: tensor '%s' has an invalid shape", path, name);
        shape[i] = v;
    }
    json_object *b0 = json_object_array_get_idx(jo, 0), *b1 = json_object_array_get_idx(jo, 1);
    if (!json_object_is_type(b0, json_type_int) || !json_object_is_type(b1, json_type_int))
        return ge_fail(GE_ERR_FORMAT, "%s: tensor '%s' has non-integer offsets", path, name);
    int64_t begin = json_object_get_int64(b0), end = json_object_get_int64(b1);
    size_t bytes;
    if (!ge_mul_ok(numel, esize, &bytes) || begin < 0 || end < begin || (uint64_t)end > data_len ||
        (uint64_t)(end - begin) != bytes)
        return ge_fail(
            GE_ERR_FORMAT,
            "%s: tensor '%s': offsets [%lld, %lld] do not fit its shape or the data area "
            "of %zu bytes",
            path, name, (long long)begin, (long long)end, data_len);
    const unsigned char *src = data + begin;
    float *f;
    if (dt == GE_DT_F32 && ((uintptr_t)src & 3) == 0) {
        f = (float *)src; /* in place, from the mapping */
    } else {
        f = ge_alloc_floats(numel);
        if (!f || ge_tensors_own(ts, f) != GE_OK)
            return ge_fail(GE_ERR_NOMEM, "%s: out of memory for tensor '%s'", path, name);
        ge_convert_to_f32(f, src, numel, dt);
    }
    if (!ge_tensors_add(ts, name, (int)ndim, shape, f))
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
    *begin_out = begin;
    *end_out = end;
    return GE_OK;
}

/* Entries sorted by data offset (then header position, so equal offsets of
 * empty tensors keep a fixed order). */
typedef struct {
    const char *name;
    json_object *ent;
    int64_t begin;
    int pos;
} entry_ref;

static int by_offset(const void *a, const void *b) {
    const entry_ref *x = a, *y = b;
    if (x->begin != y->begin) return (x->begin > y->begin) - (x->begin < y->begin);
    return (x->pos > y->pos) - (x->pos < y->pos);
}

ge_status ge_safetensors_read(ge_tensors **out, const char *path) {
    *out = NULL;
    const unsigned char *p;
    size_t len;
    ge_status st = ge_map_file(path, &p, &len);
    if (st) return st;
    if (len < 8) {
        ge_unmap_file(p, len);
        return ge_fail(GE_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes)", path, len);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > MAX_HEADER || hlen > len - 8 || hlen < 2) {
        ge_unmap_file(p, len);
        return ge_fail(GE_ERR_FORMAT,
                       "%s: safetensors header length %llu does not fit the file of %zu bytes "
                       "(truncated or not safetensors)",
                       path, (unsigned long long)hlen, len);
    }
    ge_tensors *ts = ge_tensors_new();
    if (!ts) {
        ge_unmap_file(p, len);
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
    }
    ts->map = (void *)p;
    ts->map_len = len;
    entry_ref *refs = NULL;
    json_tokener *tok = json_tokener_new();
    json_object *root = NULL;
    if (tok) {
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        root = json_tokener_parse_ex(tok, (const char *)p + 8, (int)hlen);
    }
    if (!root || json_tokener_get_error(tok) != json_tokener_success ||
        !json_object_is_type(root, json_type_object)) {
        st = ge_fail(GE_ERR_FORMAT, "%s: safetensors header is not a JSON object%s%s", path,
                     tok && json_tokener_get_error(tok) != json_tokener_success ? ": " : "",
                     tok && json_tokener_get_error(tok) != json_tokener_success
                         ? json_tokener_error_desc(json_tokener_get_error(tok))
                         : "");
        goto done;
    }
    for (size_t i = json_tokener_get_parse_end(tok); i < hlen; i++)
        if (p[8 + i] != ' ' && p[8 + i] != '\n' && p[8 + i] != '\r' && p[8 + i] != '\t') {
            st = ge_fail(GE_ERR_FORMAT, "%s: bytes after the JSON in the safetensors header", path);
            goto done;
        }
    int count = json_object_object_length(root);
    refs = ge_calloc((size_t)count + 1, sizeof *refs);
    if (!refs) {
        st = ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    int k = 0;
    json_object_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_object_is_type(val, json_type_object)) {
                st = ge_fail(GE_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                goto done;
            }
            const char *s = json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN |
                                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
            free(ts->metadata);
            ts->metadata = s ? strdup(s) : NULL;
            if (!ts->metadata) {
                st = ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            continue;
        }
        json_object *jo = NULL, *b0 = NULL;
        if (json_object_is_type(val, json_type_object) &&
            json_object_object_get_ex(val, "data_offsets", &jo) &&
            json_object_is_type(jo, json_type_array) && json_object_array_length(jo) > 0)
            b0 = json_object_array_get_idx(jo, 0);
        refs[k].name = key;
        refs[k].ent = val;
        refs[k].begin = b0 ? json_object_get_int64(b0) : 0;
        refs[k].pos = k;
        k++;
    }
    qsort(refs, (size_t)k, sizeof *refs, by_offset);
    const unsigned char *data = p + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    int64_t prev_end = 0;
    const char *prev = NULL;
    for (int i = 0; i < k; i++) {
        int64_t b = 0, e = 0;
        if ((st = parse_entry(ts, path, refs[i].name, refs[i].ent, data, data_len, &b, &e)))
            goto done;
        if (e > b) {
            if (b < prev_end) {
                st = ge_fail(GE_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data area",
                             path, prev, refs[i].name);
                goto done;
            }
            prev_end = e;
            prev = refs[i].name;
        }
    }
done:
    free(refs);
    if (root) json_object_put(root);
    if (tok) json_tokener_free(tok);
    if (st != GE_OK) {
        ge_tensors_free(ts);
        return st;
    }
    *out = ts;
    return GE_OK;
}

ge_status ge_safetensors_load(ge_tensors **out, const char *path) {
    return ge_safetensors_read(out, path);
}

/* ---- Write -------------------------------------------------------------- */

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks the tensors: names unique and non-empty, shapes consistent. */
static ge_status check_tensors(const char *path, const ge_tensor *t, int n) {
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0] || !strcmp(t[i].name, "__metadata__"))
            return ge_fail(GE_ERR_ARG, "%s: tensor %d has an empty or reserved name", path, i);
        if (t[i].ndim < 0 || t[i].ndim > 8)
            return ge_fail(GE_ERR_ARG, "%s: tensor '%s' has %d dimensions", path, t[i].name,
                           t[i].ndim);
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0 || !ge_mul_ok(numel, (size_t)t[i].shape[d], &numel))
                return ge_fail(GE_ERR_ARG, "%s: tensor '%s' has an invalid shape", path, t[i].name);
        if (numel != t[i].numel || numel > SIZE_MAX / 4 || (numel && !t[i].data))
            return ge_fail(GE_ERR_ARG, "%s: tensor '%s': numel or data does not match its shape",
                           path, t[i].name);
    }
    if (n < 2) return GE_OK;
    const char **names = ge_malloc((size_t)n, sizeof *names);
    if (!names) return ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++)
        names[i] = t[i].name;
    qsort(names, (size_t)n, sizeof *names, by_name);
    ge_status s = GE_OK;
    for (int i = 1; i < n && !s; i++)
        if (!strcmp(names[i - 1], names[i]))
            s = ge_fail(GE_ERR_ARG, "%s: tensor name '%s' is used twice", path, names[i]);
    free(names);
    return s;
}

/* The header JSON (malloc'd, padded with spaces to a multiple of 8). */
static ge_status build_header(const char *path, const ge_tensor *t, int n,
                              const char *metadata_json, int f16, char **out, size_t *out_len) {
    json_object *root = json_object_new_object(), *meta = NULL;
    ge_status s = GE_OK;
    if (!root) return ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
    if (metadata_json) {
        json_tokener *tok = json_tokener_new();
        if (tok) {
            json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
            size_t ml = strlen(metadata_json);
            meta = ml <= MAX_HEADER ? json_tokener_parse_ex(tok, metadata_json, (int)ml) : NULL;
            if (meta && json_tokener_get_parse_end(tok) != ml) {
                json_object_put(meta);
                meta = NULL;
            }
            json_tokener_free(tok);
        }
        int ok = meta && json_object_is_type(meta, json_type_object);
        if (ok) {
            json_object_object_foreach(meta, key, val) {
                (void)key;
                if (!json_object_is_type(val, json_type_string)) ok = 0;
            }
        }
        if (!ok) {
            s = ge_fail(GE_ERR_ARG, "%s: metadata is not a JSON object of string values", path);
            goto fail;
        }
        json_object_object_add(root, "__metadata__", meta);
        meta = NULL;
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        json_object *e = json_object_new_object(), *shape = json_object_new_array(),
                    *offs = json_object_new_array();
        if (!e || !shape || !offs) {
            json_object_put(e);
            json_object_put(shape);
            json_object_put(offs);
            s = ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        for (int d = 0; d < t[i].ndim; d++)
            json_object_array_add(shape, json_object_new_int64(t[i].shape[d]));
        size_t bytes = t[i].numel * (f16 ? 2 : 4);
        json_object_array_add(offs, json_object_new_int64((int64_t)offset));
        json_object_array_add(offs, json_object_new_int64((int64_t)(offset + bytes)));
        json_object_object_add(e, "dtype", json_object_new_string(f16 ? "F16" : "F32"));
        json_object_object_add(e, "shape", shape);
        json_object_object_add(e, "data_offsets", offs);
        json_object_object_add(root, t[i].name, e);
        offset += bytes;
    }
    const char *js = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!js) {
        s = ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7;
    char *h = malloc(padded);
    if (!h) {
        s = ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy(h, js, jl);
    memset(h + jl, ' ', padded - jl);
    *out = h;
    *out_len = padded;
fail:
    json_object_put(meta);
    json_object_put(root);
    return s;
}

/* IEEE single to half, rounded to nearest even; overflow gives +-inf,
 * NaN stays NaN, tiny values become subnormal halves or zero. */
static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
    if (ax < 0x38800000u) {                                    /* below 2^-14: subnormal */
        if (ax < 0x33000000u) return sign;                     /* below half of 2^-24 */
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(ax >> 23); /* 14..24 */
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((ax >> 13) - (112u << 10)), rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

static ge_status save_impl(const char *path, const ge_tensor *tensors, int n,
                           const char *metadata_json, int f16);

ge_status ge_safetensors_save(const char *path, const ge_tensor *tensors, int n,
                              const char *metadata_json) {
    return save_impl(path, tensors, n, metadata_json, 0);
}

ge_status ge_safetensors_save_f16(const char *path, const ge_tensor *tensors, int n,
                                  const char *metadata_json) {
    return save_impl(path, tensors, n, metadata_json, 1);
}

static ge_status save_impl(const char *path, const ge_tensor *tensors, int n,
                           const char *metadata_json, int f16) {
    if (!path) return ge_fail(GE_ERR_ARG, "no output file name given");
    if (n < 0 || (n > 0 && !tensors)) return ge_fail(GE_ERR_ARG, "%s: no tensors to write", path);
    ge_status s = check_tensors(path, tensors, n);
    if (s) return s;
    char *h = NULL;
    size_t hl = 0;
    if ((s = build_header(path, tensors, n, metadata_json, f16, &h, &hl))) return s;
    unsigned char pre[8];
    for (int i = 0; i < 8; i++)
        pre[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    ge_atomic_file af;
    if ((s = ge_atomic_open(&af, path))) {
        free(h);
        return s;
    }
    int ok = fwrite(pre, 1, 8, af.f) == 8 && fwrite(h, 1, hl, af.f) == hl;
    for (int i = 0; ok && i < n && !f16; i++)
        ok = !tensors[i].numel ||
             fwrite(tensors[i].data, 4, tensors[i].numel, af.f) == tensors[i].numel;
    for (int i = 0; ok && i < n && f16; i++) {
        unsigned char buf[4096];
        for (size_t j = 0; ok && j < tensors[i].numel; j += sizeof buf / 2) {
            size_t m = tensors[i].numel - j < sizeof buf / 2 ? tensors[i].numel - j : sizeof buf / 2;
            for (size_t k = 0; k < m; k++) {
                uint16_t v = f32_to_f16(tensors[i].data[j + k]);
                buf[2 * k] = (unsigned char)(v & 0xff);
                buf[2 * k + 1] = (unsigned char)(v >> 8);
            }
            ok = fwrite(buf, 2, m, af.f) == m;
        }
    }
    free(h);
    if (!ok) {
        ge_atomic_abort(&af);
        return ge_fail(GE_ERR_IO, "%s: write failed", path);
    }
    return ge_atomic_commit(&af);
}
