/* torch.c - PyTorch checkpoints (torch.save) read without Python.
 *
 * Two containers exist. The zip format (PyTorch >= 1.6): an archive with a
 * folder <stem>/ holding data.pkl (the pickled object) and one member
 * data/<key> per storage, the raw little-endian bytes. The legacy format
 * (before 1.6, or _use_new_zipfile_serialization=False): five pickles back
 * to back (magic number, protocol version 1001, system info, the object,
 * the sorted list of storage keys), then per key an 8-byte little-endian
 * element count and the raw bytes. In both, a tensor is pickled as
 * _rebuild_tensor_v2(storage, offset, size, stride, ...) and its storage as
 * a persistent id ('storage', torch.FloatStorage, key, location, numel).
 *
 * The pickles go through the restricted unpickler (pickle.c), which never
 * runs code. The object is then walked: dict keys become tensor names in
 * dict order, nested dicts and lists are flattened with '.' ("G_ema.x",
 * "layers.0"), values that are not tensors (ints, strings, None) are
 * skipped. Only the storages that a named tensor uses are read; each is
 * converted to float32 once (F64, F16, BF16 and integer/bool storages too,
 * so e.g. BatchNorm's int64 num_batches_tracked becomes a float), and
 * tensors that share a storage point into the same block. Only contiguous
 * tensors are accepted. Every count, offset and size from the file is
 * checked against the file before use. */
#include "io/pickle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#define MAX_PKL_BYTES ((size_t)64 << 20) /* data.pkl of a zip checkpoint */
#define MAX_DEPTH 64                     /* nesting of dicts and lists walked */
#define MAX_VISITS ((size_t)1 << 22)     /* objects visited by the walk */
#define MAX_TENSORS (1 << 20)
#define NAME_CAP 4096

/* ---- Walking the unpickled object into named tensors -------------------- */

typedef struct {
    char *name;
    const ge_pk_value *t; /* TENSOR */
} item;

typedef struct {
    const char *path;
    item *items;
    int n, cap;
    size_t visits;
    char name[NAME_CAP];
} walker;

static void items_free(item *items, int n) {
    for (int i = 0; i < n; i++)
        free(items[i].name);
    free(items);
}

static ge_status walk(walker *w, const ge_pk_value *v, size_t nl, int depth) {
    if (++w->visits > MAX_VISITS)
        return ge_fail(GE_ERR_FORMAT, "%s: the object holds more than %zu references", w->path,
                       MAX_VISITS);
    if (v->kind == GE_PK_TENSOR) {
        if (w->n == MAX_TENSORS)
            return ge_fail(GE_ERR_FORMAT, "%s: more than %d tensors", w->path, MAX_TENSORS);
        if (w->n == w->cap) {
            int cap = w->cap ? w->cap * 2 : 64;
            item *it = realloc(w->items, (size_t)cap * sizeof *it);
            if (!it) return ge_fail(GE_ERR_NOMEM, "%s: out of memory", w->path);
            w->items = it;
            w->cap = cap;
        }
        const char *nm = nl ? w->name : "tensor"; /* torch.save(tensor): one unnamed tensor */
        size_t len = nl ? nl : strlen(nm);
        char *s = malloc(len + 1);
        if (!s) return ge_fail(GE_ERR_NOMEM, "%s: out of memory", w->path);
        memcpy(s, nm, len);
        s[len] = 0;
        w->items[w->n].name = s;
        w->items[w->n].t = v;
        w->n++;
        return GE_OK;
    }
    int dict = v->kind == GE_PK_DICT;
    if (!dict && v->kind != GE_PK_LIST && v->kind != GE_PK_TUPLE) return GE_OK; /* a plain value */
    if (depth >= MAX_DEPTH)
        return ge_fail(GE_ERR_FORMAT, "%s: dicts and lists nested deeper than %d levels", w->path,
                       MAX_DEPTH);
    size_t step = dict ? 2 : 1;
    for (size_t i = 0; i < v->u.seq.n; i += step) {
        const ge_pk_value *val = v->u.seq.v[i + step - 1];
        if (val->kind != GE_PK_TENSOR && val->kind != GE_PK_DICT && val->kind != GE_PK_LIST &&
            val->kind != GE_PK_TUPLE)
            continue;
        char part[32];
        const unsigned char *k;
        size_t kl;
        if (dict && v->u.seq.v[i]->kind == GE_PK_STR) {
            k = v->u.seq.v[i]->u.s.p;
            kl = v->u.seq.v[i]->u.s.n;
            if (memchr(k, 0, kl))
                return ge_fail(GE_ERR_FORMAT, "%s: a key holds a NUL byte", w->path);
        } else {
            if (dict && v->u.seq.v[i]->kind != GE_PK_INT) continue; /* keys we cannot name */
            long long ix = dict ? (long long)v->u.seq.v[i]->u.i : (long long)i;
            kl = (size_t)snprintf(part, sizeof part, "%lld", ix);
            k = (const unsigned char *)part;
        }
        size_t nl2 = nl + (nl ? 1 : 0) + kl;
        if (nl2 >= NAME_CAP)
            return ge_fail(GE_ERR_FORMAT, "%s: a tensor name is longer than %d bytes", w->path,
                           NAME_CAP - 1);
        if (nl) w->name[nl] = '.';
        memcpy(w->name + nl2 - kl, k, kl);
        ge_status s = walk(w, val, nl2, depth + 1);
        if (s) return s;
    }
    return GE_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const item *const *)a)->name, (*(const item *const *)b)->name);
}

static ge_status check_unique(const char *path, item *items, int n) {
    if (n < 2) return GE_OK;
    item **order = ge_malloc((size_t)n, sizeof *order);
    if (!order) return GE_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        order[i] = &items[i];
    qsort(order, (size_t)n, sizeof *order, by_name);
    ge_status s = GE_OK;
    for (int i = 1; i < n && !s; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name))
            s = ge_fail(GE_ERR_FORMAT, "%s: tensor name '%.200s' occurs twice", path,
                        order[i]->name);
    free(order);
    return s;
}

/* numel of a tensor record, checking it is contiguous and inside its storage. */
static ge_status tensor_numel(const char *path, const item *it, size_t *numel) {
    const ge_pk_value *t = it->t, *st = t->u.tensor.storage;
    size_t n = 1, expect = 1;
    for (int i = t->u.tensor.ndim - 1; i >= 0; i--) {
        uint64_t d = (uint64_t)t->u.tensor.shape[i];
        if (d != 1 && (uint64_t)t->u.tensor.stride[i] != expect && d != 0)
            return ge_fail(GE_ERR_UNSUPPORTED,
                           "%s: tensor '%.200s' is not contiguous (dimension %d has stride %lld, "
                           "%zu expected); "
                           "save it after .contiguous()",
                           path, it->name, i, (long long)t->u.tensor.stride[i], expect);
        if (!ge_mul_ok(expect, (size_t)d, &expect) || !ge_mul_ok(n, (size_t)d, &n))
            return ge_fail(GE_ERR_FORMAT, "%s: tensor '%.200s' has an impossible shape", path,
                           it->name);
    }
    if (n > 0 && ((uint64_t)t->u.tensor.offset > (uint64_t)st->u.storage.numel ||
                  n > (uint64_t)st->u.storage.numel - (uint64_t)t->u.tensor.offset))
        return ge_fail(
            GE_ERR_FORMAT,
            "%s: tensor '%.200s' (offset %lld, %zu elements) lies outside its storage of %lld",
            path, it->name, (long long)t->u.tensor.offset, n, (long long)st->u.storage.numel);
    *numel = n;
    return GE_OK;
}

/* What both containers share: the object's tensors and the storages they need. */
typedef struct {
    const char *path;
    ge_pickle *pk;
    item *items;
    int n_items;
    unsigned char *needed; /* per storage */
    float **data;          /* per storage: float32 copy (owned by ts) or NULL */
    ge_tensors *ts;
} job;

static void job_free(job *j) {
    items_free(j->items, j->n_items);
    free(j->needed);
    free(j->data);
    ge_pickle_free(j->pk);
    ge_tensors_free(j->ts);
    memset(j, 0, sizeof *j);
}

/* After the main pickle: names, checks, which storages to read. */
static ge_status job_plan(job *j) {
    walker *w = calloc(1, sizeof *w);
    if (!w) return ge_fail(GE_ERR_NOMEM, "%s: out of memory", j->path);
    w->path = j->path;
    ge_status s = walk(w, j->pk->root, 0, 0);
    j->items = w->items;
    j->n_items = w->n;
    free(w);
    if (s) return s;
    if ((s = check_unique(j->path, j->items, j->n_items))) return s;
    int ns = j->pk->n_storages;
    j->needed = calloc((size_t)ns + 1, 1);
    j->data = calloc((size_t)ns + 1, sizeof *j->data);
    j->ts = ge_tensors_new();
    if (!j->needed || !j->data || !j->ts)
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory", j->path);
    for (int i = 0; i < j->n_items; i++) {
        size_t n;
        if ((s = tensor_numel(j->path, &j->items[i], &n))) return s;
        if (n) j->needed[j->items[i].t->u.tensor.storage->u.storage.index] = 1;
    }
    return GE_OK;
}

/* A float32 block for storage i, owned by the set; *bytes gets its size in the file. */
static ge_status job_alloc(job *j, int i, size_t *bytes) {
    const ge_pk_value *st = j->pk->storages[i];
    size_t numel = (size_t)st->u.storage.numel;
    if ((uint64_t)st->u.storage.numel > SIZE_MAX / 8 ||
        !ge_mul_ok(numel, ge_dtype_size(st->u.storage.dtype), bytes))
        return ge_fail(GE_ERR_FORMAT, "%s: storage of %lld elements is too large", j->path,
                       (long long)st->u.storage.numel);
    float *f = ge_alloc_floats(numel);
    if (!f || ge_tensors_own(j->ts, f) != GE_OK)
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory for a storage of %zu elements", j->path,
                       numel);
    j->data[i] = f;
    return GE_OK;
}

static ge_status job_finish(job *j, ge_tensors **out) {
    for (int i = 0; i < j->n_items; i++) {
        const item *it = &j->items[i];
        const ge_pk_value *t = it->t;
        int si = t->u.tensor.storage->u.storage.index;
        size_t n;
        tensor_numel(j->path, it, &n); /* checked in job_plan */
        float *d = j->data[si];
        if (n && !d)
            return ge_fail(GE_ERR_FORMAT, "%s: the data of tensor '%.200s' is missing", j->path,
                           it->name);
        if (!d) { /* an empty tensor: give it a valid pointer of its own */
            d = ge_alloc_floats(1);
            if (!d || ge_tensors_own(j->ts, d) != GE_OK)
                return ge_fail(GE_ERR_NOMEM, "%s: out of memory", j->path);
        } else if (n) {
            d += t->u.tensor.offset;
        }
        if (!ge_tensors_add(j->ts, it->name, t->u.tensor.ndim, t->u.tensor.shape, d))
            return ge_fail(GE_ERR_NOMEM, "%s: out of memory", j->path);
    }
    *out = j->ts;
    j->ts = NULL;
    return GE_OK;
}

/* ---- Zip format --------------------------------------------------------- */

static ge_status zip_err(const char *path, const char *what, zip_t *z) {
    return ge_fail(GE_ERR_FORMAT, "%s: %s: %s", path, what, z ? zip_strerror(z) : "?");
}

/* Reads member idx, exactly `size` bytes, into dst; reading to the end makes
 * libzip check the CRC. */
static ge_status zip_read(const char *path, zip_t *z, zip_uint64_t idx, const char *name, void *dst,
                          size_t size) {
    zip_file_t *f = zip_fopen_index(z, idx, 0);
    if (!f)
        return ge_fail(GE_ERR_FORMAT, "%s: cannot open archive member %s: %s", path, name,
                       zip_strerror(z));
    size_t got = 0;
    ge_status s = GE_OK;
    while (got < size) {
        zip_int64_t r = zip_fread(f, (char *)dst + got, size - got);
        if (r <= 0) {
            s = ge_fail(GE_ERR_FORMAT, "%s: archive member %s is truncated or corrupt: %s", path,
                        name, r < 0 ? zip_file_strerror(f) : "ends early");
            break;
        }
        got += (size_t)r;
    }
    char extra;
    if (!s) {
        zip_int64_t r = zip_fread(f, &extra, 1);
        if (r != 0)
            s = ge_fail(GE_ERR_FORMAT, "%s: archive member %s is corrupt: %s", path, name,
                        r < 0 ? zip_file_strerror(f) : "longer than its declared size");
    }
    zip_fclose(f);
    return s;
}

/* Size of member `name`, checking a compressed member cannot be a bomb. */
static ge_status zip_member(const char *path, zip_t *z, const char *name, zip_uint64_t *idx,
                            size_t *size) {
    zip_int64_t i = zip_name_locate(z, name, 0);
    if (i < 0) return ge_fail(GE_ERR_FORMAT, "%s: archive member %s is missing", path, name);
    zip_stat_t st;
    if (zip_stat_index(z, (zip_uint64_t)i, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) ||
        !(st.valid & ZIP_STAT_COMP_SIZE))
        return zip_err(path, "cannot read the archive directory", z);
    if (st.size > SIZE_MAX / 2 ||
        (st.comp_method != ZIP_CM_STORE && st.size / 1100 > st.comp_size + 64))
        return ge_fail(GE_ERR_FORMAT, "%s: archive member %s claims an impossible size", path,
                       name);
    *idx = (zip_uint64_t)i;
    *size = (size_t)st.size;
    return GE_OK;
}

static ge_status load_zip(ge_tensors **out, const char *path) {
    int zerr = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!z) {
        zip_error_t e;
        zip_error_init_with_code(&e, zerr);
        ge_status s =
            ge_fail(zerr == ZIP_ER_OPEN || zerr == ZIP_ER_READ ? GE_ERR_IO : GE_ERR_FORMAT,
                    "%s: not a readable zip archive (truncated or corrupt?): %s", path,
                    zip_error_strerror(&e));
        zip_error_fini(&e);
        return s;
    }
    job j = {.path = path};
    unsigned char *pkl = NULL;
    char *mname = NULL;
    ge_status s = GE_OK;
    /* The folder: the first "<stem>/data.pkl" at the top level. */
    zip_int64_t ne = zip_get_num_entries(z, 0);
    const char *stem_pkl = NULL;
    int torchscript = 0;
    for (zip_int64_t i = 0; i < ne && !stem_pkl; i++) {
        const char *n = zip_get_name(z, (zip_uint64_t)i, 0);
        if (!n) continue;
        const char *sl = strchr(n, '/');
        if (sl && sl > n && !strcmp(sl, "/data.pkl")) stem_pkl = n;
        if (sl && !strcmp(sl, "/constants.pkl")) torchscript = 1;
    }
    if (!stem_pkl) {
        s = ge_fail(torchscript ? GE_ERR_UNSUPPORTED : GE_ERR_FORMAT,
                    torchscript
                        ? "%s: a TorchScript archive, not a torch.save checkpoint"
                        : "%s: zip archive without <folder>/data.pkl: not a PyTorch checkpoint",
                    path);
        goto done;
    }
    size_t stem_len = strlen(stem_pkl) - strlen("/data.pkl");
    mname = malloc(stem_len + 32 + 256);
    if (!mname) {
        s = ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    memcpy(mname, stem_pkl, stem_len);
    zip_uint64_t idx;
    size_t size;
    /* byteorder (PyTorch >= 1.13 writes it): refuse big-endian data. */
    snprintf(mname + stem_len, 32, "/byteorder");
    if (zip_name_locate(z, mname, 0) >= 0) {
        char bo[17] = {0};
        if ((s = zip_member(path, z, mname, &idx, &size))) goto done;
        if (size > 16) {
            s = ge_fail(GE_ERR_FORMAT, "%s: archive member %s is too long", path, mname);
            goto done;
        }
        if ((s = zip_read(path, z, idx, mname, bo, size))) goto done;
        if (strcmp(bo, "little") != 0) {
            char shown[32];
            ge_pk_printable(shown, sizeof shown, (const unsigned char *)bo, strlen(bo));
            s = ge_fail(GE_ERR_UNSUPPORTED, "%s: byte order '%s' (only little-endian is read)",
                        path, shown);
            goto done;
        }
    }
    snprintf(mname + stem_len, 32, "/data.pkl");
    if ((s = zip_member(path, z, mname, &idx, &size))) goto done;
    if (size > MAX_PKL_BYTES) {
        s = ge_fail(GE_ERR_UNSUPPORTED, "%s: %s is larger than %zu bytes", path, mname,
                    MAX_PKL_BYTES);
        goto done;
    }
    pkl = malloc(size ? size : 1);
    if (!pkl) {
        s = ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((s = zip_read(path, z, idx, mname, pkl, size))) goto done;
    {
        char what[4200];
        snprintf(what, sizeof what, "%s (%s)", path, mname);
        if ((s = ge_pickle_load(&j.pk, pkl, size, NULL, what))) goto done;
    }
    if ((s = job_plan(&j))) goto done;
    for (int i = 0; i < j.pk->n_storages; i++) {
        if (!j.needed[i]) continue;
        const ge_pk_value *st = j.pk->storages[i];
        snprintf(mname + stem_len, 32 + 256, "/data/%.*s", (int)st->u.storage.key_len,
                 (const char *)st->u.storage.key);
        size_t bytes;
        if ((s = zip_member(path, z, mname, &idx, &size))) goto done;
        /* the member's size before allocating: a pickle may claim a terabyte */
        if (!ge_mul_ok((size_t)st->u.storage.numel, ge_dtype_size(st->u.storage.dtype), &bytes)) {
            s = ge_fail(GE_ERR_FORMAT, "%s: storage of %lld elements is too large", path,
                        (long long)st->u.storage.numel);
            goto done;
        }
        if (size != bytes) {
            s = ge_fail(GE_ERR_FORMAT,
                        "%s: archive member %s holds %zu bytes, its storage needs %zu", path, mname,
                        size, bytes);
            goto done;
        }
        if ((s = job_alloc(&j, i, &bytes))) goto done;
        if (st->u.storage.dtype == GE_DT_F32) {
            s = zip_read(path, z, idx, mname, j.data[i], bytes);
        } else {
            unsigned char *raw = malloc(bytes ? bytes : 1);
            if (!raw) {
                s = ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            s = zip_read(path, z, idx, mname, raw, bytes);
            if (!s)
                ge_convert_to_f32(j.data[i], raw, (size_t)st->u.storage.numel, st->u.storage.dtype);
            free(raw);
        }
        if (s) goto done;
    }
    s = job_finish(&j, out);
done:
    free(mname);
    job_free(&j); /* the pickle's strings point into pkl: free it after */
    free(pkl);
    zip_discard(z);
    return s;
}

/* ---- Legacy format ------------------------------------------------------ */

static const unsigned char MAGIC[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

static int str_is(const ge_pk_value *v, const char *lit) {
    return v->kind == GE_PK_STR && v->u.s.n == strlen(lit) && !memcmp(v->u.s.p, lit, v->u.s.n);
}

static int by_key(const void *a, const void *b) {
    const ge_pk_value *x = *(const ge_pk_value *const *)a, *y = *(const ge_pk_value *const *)b;
    size_t n =
        x->u.storage.key_len < y->u.storage.key_len ? x->u.storage.key_len : y->u.storage.key_len;
    int c = memcmp(x->u.storage.key, y->u.storage.key, n);
    return c ? c
             : (x->u.storage.key_len > y->u.storage.key_len) -
                   (x->u.storage.key_len < y->u.storage.key_len);
}

/* One small header pickle at *off. */
static ge_status header_pickle(ge_pickle **pk, const char *path, const unsigned char *d, size_t len,
                               size_t *off, const char *which) {
    char what[4200];
    snprintf(what, sizeof what, "%s (%s)", path, which);
    size_t used;
    ge_status s = ge_pickle_load(pk, d + *off, len - *off, &used, what);
    *off += used;
    return s;
}

static ge_status legacy_records(job *j, const unsigned char *d, size_t len, size_t off,
                                const ge_pk_value *keys) {
    const char *path = j->path;
    int ns = j->pk->n_storages;
    if (keys->kind != GE_PK_LIST)
        return ge_fail(GE_ERR_FORMAT, "%s: the storage key list is a %s", path,
                       keys->kind == GE_PK_DICT ? "dict" : "non-list");
    const ge_pk_value **sorted = ge_malloc((size_t)ns + 1, sizeof *sorted);
    unsigned char *seen = calloc((size_t)ns + 1, 1);
    ge_status s = GE_OK;
    if (!sorted || !seen) {
        s = ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < ns; i++)
        sorted[i] = j->pk->storages[i];
    qsort(sorted, (size_t)ns, sizeof *sorted, by_key);
    for (size_t k = 0; k < keys->u.seq.n && !s; k++) {
        const ge_pk_value *key = keys->u.seq.v[k];
        if (key->kind != GE_PK_STR) {
            s = ge_fail(GE_ERR_FORMAT, "%s: a storage key is not a string", path);
            break;
        }
        ge_pk_value probe = {.kind = GE_PK_STORAGE};
        probe.u.storage.key = key->u.s.p;
        probe.u.storage.key_len = key->u.s.n;
        const ge_pk_value *pp = &probe,
                          **hit =
                              ns ? bsearch(&pp, sorted, (size_t)ns, sizeof *sorted, by_key) : NULL;
        char kname[64];
        ge_pk_printable(kname, sizeof kname, key->u.s.p, key->u.s.n);
        if (!hit) {
            s = ge_fail(GE_ERR_FORMAT,
                        "%s: storage '%s' is listed but never used, so its size is unknown", path,
                        kname);
            break;
        }
        const ge_pk_value *st = *hit;
        int i = st->u.storage.index;
        if (seen[i]) {
            s = ge_fail(GE_ERR_FORMAT, "%s: storage '%s' is listed twice", path, kname);
            break;
        }
        seen[i] = 1;
        if (len - off < 8) {
            s = ge_fail(GE_ERR_FORMAT, "%s: truncated: storage '%s' is missing", path, kname);
            break;
        }
        uint64_t numel = 0;
        for (int b = 7; b >= 0; b--)
            numel = (numel << 8) | d[off + (size_t)b];
        off += 8;
        if (numel != (uint64_t)st->u.storage.numel) {
            s = ge_fail(GE_ERR_FORMAT, "%s: storage '%s' holds %llu elements, the pickle says %lld",
                        path, kname, (unsigned long long)numel, (long long)st->u.storage.numel);
            break;
        }
        size_t bytes;
        if (!ge_mul_ok((size_t)numel, ge_dtype_size(st->u.storage.dtype), &bytes) ||
            bytes > len - off) {
            s = ge_fail(GE_ERR_FORMAT,
                        "%s: truncated: storage '%s' needs %llu elements, the file ends first",
                        path, kname, (unsigned long long)numel);
            break;
        }
        if (j->needed[i]) {
            size_t b2;
            if ((s = job_alloc(j, i, &b2))) break;
            ge_convert_to_f32(j->data[i], d + off, (size_t)numel, st->u.storage.dtype);
        }
        off += bytes;
    }
    for (int i = 0; i < ns && !s; i++)
        if (j->needed[i] && !seen[i]) {
            char kname[64];
            ge_pk_printable(kname, sizeof kname, j->pk->storages[i]->u.storage.key,
                            j->pk->storages[i]->u.storage.key_len);
            s = ge_fail(GE_ERR_FORMAT, "%s: storage '%s' is used but not in the file", path, kname);
        }
done:
    free(sorted);
    free(seen);
    return s;
}

static ge_status load_legacy(ge_tensors **out, const char *path) {
    const unsigned char *d;
    size_t len, off = 0;
    ge_status s = ge_map_file(path, &d, &len);
    if (s) return s;
    job j = {.path = path};
    ge_pickle *h = NULL;
    /* 1: magic number */
    if ((s = header_pickle(&h, path, d, len, &off, "magic number"))) goto done;
    if (h->root->kind != GE_PK_BIGINT || h->root->u.s.n != sizeof MAGIC ||
        memcmp(h->root->u.s.p, MAGIC, sizeof MAGIC)) {
        s = ge_fail(GE_ERR_FORMAT, "%s: a pickle, but not a PyTorch file (no magic number)", path);
        goto done;
    }
    ge_pickle_free(h);
    h = NULL;
    /* 2: protocol version */
    if ((s = header_pickle(&h, path, d, len, &off, "protocol version"))) goto done;
    if (h->root->kind != GE_PK_INT || h->root->u.i != 1001) {
        s = ge_fail(GE_ERR_UNSUPPORTED, "%s: legacy PyTorch protocol version other than 1001",
                    path);
        goto done;
    }
    ge_pickle_free(h);
    h = NULL;
    /* 3: system info {'protocol_version', 'little_endian', 'type_sizes'} */
    if ((s = header_pickle(&h, path, d, len, &off, "system info"))) goto done;
    if (h->root->kind != GE_PK_DICT) {
        s = ge_fail(GE_ERR_FORMAT, "%s: legacy PyTorch system info is not a dict", path);
        goto done;
    }
    for (size_t i = 0; i + 1 < h->root->u.seq.n; i += 2)
        if (str_is(h->root->u.seq.v[i], "little_endian") &&
            (h->root->u.seq.v[i + 1]->kind != GE_PK_BOOL || !h->root->u.seq.v[i + 1]->u.i)) {
            s = ge_fail(GE_ERR_UNSUPPORTED, "%s: big-endian checkpoint", path);
            goto done;
        }
    ge_pickle_free(h);
    h = NULL;
    /* 4: the object */
    {
        char what[4200];
        snprintf(what, sizeof what, "%s (main pickle)", path);
        size_t used;
        if ((s = ge_pickle_load(&j.pk, d + off, len - off, &used, what))) goto done;
        off += used;
    }
    if ((s = job_plan(&j))) goto done;
    /* 5: storage keys, then the storages */
    if ((s = header_pickle(&h, path, d, len, &off, "storage keys"))) goto done;
    if ((s = legacy_records(&j, d, len, off, h->root))) goto done;
    s = job_finish(&j, out);
done:
    ge_pickle_free(h);
    job_free(&j);
    ge_unmap_file(d, len);
    return s;
}

/* ---- Entry point -------------------------------------------------------- */

ge_status ge_torch_load(ge_tensors **out, const char *path) {
    *out = NULL;
    unsigned char head[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ge_fail(GE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ssize_t n = read(fd, head, sizeof head);
    close(fd);
    if (n < 0) return ge_fail(GE_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    if (n == 4 && head[0] == 'P' && head[1] == 'K' &&
        ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6)))
        return load_zip(out, path);
    if (n >= 1 && head[0] == 0x80) return load_legacy(out, path);
    return ge_fail(GE_ERR_FORMAT,
                   "%s: not a PyTorch checkpoint (neither a zip archive nor a pickle)", path);
}
