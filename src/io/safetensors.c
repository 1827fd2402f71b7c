/* safetensors.c - read (memory-mapped) and write safetensors files.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the data area; offsets are relative to its start. F32 tensors that are
 * 4-byte aligned are used in place from the read-only mapping; F16, BF16 and
 * F64 are converted to owned float32 copies. Every offset, size and shape is
 * checked against the file before use: the file may come from anyone. */
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u << 20)

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 1024));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 1023) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static int dtype_size(const char *dt) {
    if (!strcmp(dt, "F32")) return 4;
    if (!strcmp(dt, "F16") || !strcmp(dt, "BF16")) return 2;
    if (!strcmp(dt, "F64")) return 8;
    return 0;
}

static ge_status parse_entry(ge_tensors *ts, const char *path, const char *name,
                             json_object *ent, const unsigned char *data, size_t data_len) {
    json_object *jd, *js, *jo;
    if (!json_object_is_type(ent, json_type_object) ||
        !json_object_object_get_ex(ent, "dtype", &jd) ||
        !json_object_object_get_ex(ent, "shape", &js) ||
        !json_object_object_get_ex(ent, "data_offsets", &jo) ||
        !json_object_is_type(jd, json_type_string) || !json_object_is_type(js, json_type_array) ||
        !json_object_is_type(jo, json_type_array) || json_object_array_length(jo) != 2)
        return ge_fail(GE_ERR_FORMAT, "%s: tensor '%s' has a malformed header entry", path, name);
    const char *dt = json_object_get_string(jd);
    int esize = dtype_size(dt);
    if (!esize)
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16, BF16, F64 read)",
                       path, name, dt);
    int ndim = (int)json_object_array_length(js);
    if (ndim > 8)
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions", path, name, ndim);
    int64_t shape[8];
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        json_object *d = json_object_array_get_idx(js, i);
        if (!json_object_is_type(d, json_type_int))
            return ge_fail(GE_ERR_FORMAT, "%s: tensor '%s' has a non-integer dimension", path, name);
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
    if (!ge_mul_ok(numel, (size_t)esize, &bytes) || begin < 0 || end < begin ||
        (uint64_t)end > data_len || (uint64_t)(end - begin) != bytes)
        return ge_fail(GE_ERR_FORMAT,
                       "%s: tensor '%s': offsets [%lld, %lld] do not fit its shape or the file",
                       path, name, (long long)begin, (long long)end);
    const unsigned char *src = data + begin;
    float *f;
    if (esize == 4 && ((uintptr_t)src & 3) == 0) {
        f = (float *)src; /* in place, from the mapping */
    } else {
        f = ge_alloc_floats(numel);
        if (!f) return GE_ERR_NOMEM;
        if (ge_tensors_own(ts, f) != GE_OK) return GE_ERR_NOMEM;
        for (size_t i = 0; i < numel; i++) {
            if (esize == 4) {
                memcpy(&f[i], src + 4 * i, 4);
            } else if (esize == 8) {
                double d;
                memcpy(&d, src + 8 * i, 8);
                f[i] = (float)d;
            } else {
                uint16_t h;
                memcpy(&h, src + 2 * i, 2);
                f[i] = dt[0] == 'B' ? bf16_to_f32(h) : f16_to_f32(h);
            }
        }
    }
    return ge_tensors_add(ts, name, ndim, shape, f) ? GE_OK : GE_ERR_NOMEM;
}

/* Orders entries by their data offset, which is file order for every writer. */
typedef struct {
    const char *name;
    json_object *ent;
    int64_t begin;
} entry_ref;

static int by_offset(const void *a, const void *b) {
    const entry_ref *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

ge_status ge_safetensors_read(ge_tensors **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ge_fail(GE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ge_fail(GE_ERR_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    if (len < 8) {
        close(fd);
        return ge_fail(GE_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes)", path, len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return ge_fail(GE_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    const unsigned char *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > MAX_HEADER || hlen > len - 8) {
        munmap(map, len);
        return ge_fail(GE_ERR_FORMAT, "%s: safetensors header length %llu does not fit the file",
                       path, (unsigned long long)hlen);
    }
    ge_tensors *ts = ge_tensors_new();
    if (!ts) {
        munmap(map, len);
        return GE_ERR_NOMEM;
    }
    ts->map = map;
    ts->map_len = len;
    json_tokener *tok = json_tokener_new();
    json_object *root = tok ? json_tokener_parse_ex(tok, (const char *)p + 8, (int)hlen) : NULL;
    ge_status st_ = GE_OK;
    if (!root || json_tokener_get_error(tok) != json_tokener_success ||
        !json_object_is_type(root, json_type_object)) {
        st_ = ge_fail(GE_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
        goto done;
    }
    int count = json_object_object_length(root);
    entry_ref *refs = ge_calloc((size_t)count + 1, sizeof *refs);
    if (!refs) {
        st_ = GE_ERR_NOMEM;
        goto done;
    }
    int k = 0;
    json_object_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_object_is_type(val, json_type_object)) {
                st_ = ge_fail(GE_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                break;
            }
            const char *s = json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN);
            ts->metadata = strdup(s);
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
        k++;
    }
    if (st_ == GE_OK) {
        qsort(refs, (size_t)k, sizeof *refs, by_offset);
        for (int i = 0; i < k && st_ == GE_OK; i++)
            st_ = parse_entry(ts, path, refs[i].name, refs[i].ent, p + 8 + hlen, len - 8 - hlen);
    }
    free(refs);
done:
    if (root) json_object_put(root);
    if (tok) json_tokener_free(tok);
    if (st_ != GE_OK) {
        ge_tensors_free(ts);
        return st_;
    }
    *out = ts;
    return GE_OK;
}

ge_status ge_safetensors_load(ge_tensors **out, const char *path) {
    return ge_safetensors_read(out, path);
}
