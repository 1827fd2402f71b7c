/* npy.c - NumPy .npy arrays: how latents travel in and out of ganedit.
 *
 * Format: "\x93NUMPY", major and minor version bytes, the header length
 * (2 bytes little-endian in version 1.0, 4 bytes in 2.0 and 3.0), then a
 * Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 512), }
 * padded with spaces and a newline, then the raw C-order data. We write
 * version 1.0 with float32 and the header padded to 64 bytes, as NumPy does.
 * We read float32 and float64 (converted) little-endian C-order arrays of
 * rank 0 to 8 and refuse everything else with a message saying what was
 * found; the header is parsed by a small scanner that accepts only that dict
 * literal (never evaluated), and the data size must match the shape exactly. */
#include "io/io.h"

#include <stdlib.h>
#include <string.h>

#define NPY_MAGIC "\x93NUMPY"

/* ---- Header scanner ----------------------------------------------------- */

typedef struct {
    const unsigned char *s;
    size_t n, i;
} scan;

static void ws(scan *c) {
    while (c->i < c->n &&
           (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
        c->i++;
}

static int eat(scan *c, char ch) {
    ws(c);
    if (c->i < c->n && c->s[c->i] == ch) {
        c->i++;
        return 1;
    }
    return 0;
}

/* A quoted string into buf (truncated to cap-1); 0 if there is none. */
static int quoted(scan *c, char *buf, size_t cap) {
    ws(c);
    if (c->i >= c->n || (c->s[c->i] != '\'' && c->s[c->i] != '"')) return 0;
    unsigned char q = c->s[c->i++];
    size_t j = 0;
    while (c->i < c->n && c->s[c->i] != q) {
        unsigned char ch = c->s[c->i++];
        if (ch == '\\' || ch < 32) return 0; /* no escapes in the keys and dtypes we read */
        if (j + 1 < cap) buf[j++] = (char)ch;
    }
    if (c->i >= c->n) return 0;
    c->i++;
    buf[j] = 0;
    return 1;
}

static int word(scan *c, const char *w) {
    ws(c);
    size_t n = strlen(w);
    if (c->n - c->i >= n && !memcmp(c->s + c->i, w, n)) {
        c->i += n;
        return 1;
    }
    return 0;
}

static int integer(scan *c, int64_t *v) {
    ws(c);
    size_t start = c->i;
    uint64_t x = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
        x = x * 10 + (uint64_t)(c->s[c->i++] - '0');
        if (x > (uint64_t)INT64_MAX) return 0;
    }
    if (c->i == start) return 0;
    if (c->i < c->n && c->s[c->i] == 'L') c->i++; /* Python 2 long */
    *v = (int64_t)x;
    return 1;
}

/* Parses the header dict: descr, fortran_order, shape. */
static ge_status parse_header(const char *path, const unsigned char *h, size_t n, char *descr,
                              size_t dcap, int *fortran, int *ndim, int64_t shape[8]) {
    scan c = {h, n, 0};
    int have = 0;
    if (!eat(&c, '{')) return ge_fail(GE_ERR_FORMAT, "%s: .npy header is not a dict", path);
    while (!eat(&c, '}')) {
        char key[32];
        if (!quoted(&c, key, sizeof key) || !eat(&c, ':'))
            return ge_fail(GE_ERR_FORMAT, "%s: malformed .npy header", path);
        if (!strcmp(key, "descr")) {
            if (!quoted(&c, descr, dcap))
                return ge_fail(GE_ERR_UNSUPPORTED,
                               "%s: structured .npy dtypes are not read (float32 only)", path);
            have |= 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (word(&c, "True"))
                *fortran = 1;
            else if (word(&c, "False"))
                *fortran = 0;
            else
                return ge_fail(GE_ERR_FORMAT, "%s: .npy fortran_order is not True or False", path);
            have |= 2;
        } else if (!strcmp(key, "shape")) {
            if (!eat(&c, '(')) return ge_fail(GE_ERR_FORMAT, "%s: .npy shape is not a tuple", path);
            *ndim = 0;
            while (!eat(&c, ')')) {
                int64_t v;
                if (*ndim == 8)
                    return ge_fail(GE_ERR_UNSUPPORTED, "%s: .npy array of more than 8 dimensions",
                                   path);
                if (!integer(&c, &v))
                    return ge_fail(GE_ERR_FORMAT, "%s: bad dimension in the .npy shape", path);
                shape[(*ndim)++] = v;
                if (!eat(&c, ',')) {
                    if (!eat(&c, ')'))
                        return ge_fail(GE_ERR_FORMAT, "%s: malformed .npy shape", path);
                    break;
                }
            }
            have |= 4;
        } else {
            return ge_fail(GE_ERR_FORMAT, "%s: unexpected key '%s' in the .npy header", path, key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) return ge_fail(GE_ERR_FORMAT, "%s: malformed .npy header", path);
            break;
        }
    }
    ws(&c);
    if (c.i != c.n) return ge_fail(GE_ERR_FORMAT, "%s: junk after the .npy header dict", path);
    if (have != 7)
        return ge_fail(GE_ERR_FORMAT, "%s: .npy header lacks descr, fortran_order or shape", path);
    return GE_OK;
}

/* ---- Read --------------------------------------------------------------- */

ge_status ge_npy_load(const char *path, float **data, int *ndim, int64_t shape[8]) {
    *data = NULL;
    *ndim = 0;
    const unsigned char *d;
    size_t len;
    ge_status s = ge_map_file(path, &d, &len);
    if (s) return s;
    char descr[32] = "";
    int fortran = 0, nd = 0;
    int64_t shp[8] = {0};
    size_t hstart, hlen;
    if (len < 10 || memcmp(d, NPY_MAGIC, 6) != 0) {
        s = ge_fail(GE_ERR_FORMAT, "%s: not a .npy file (magic missing or truncated)", path);
        goto done;
    }
    if (d[6] == 1) {
        hstart = 10;
        hlen = (size_t)d[8] | (size_t)d[9] << 8;
    } else if (d[6] == 2 || d[6] == 3) {
        hstart = 12;
        if (len < 12) {
            s = ge_fail(GE_ERR_FORMAT, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = (size_t)d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24;
    } else {
        s = ge_fail(GE_ERR_UNSUPPORTED, "%s: .npy format version %d.%d", path, d[6], d[7]);
        goto done;
    }
    if (hlen > len - hstart) {
        s = ge_fail(GE_ERR_FORMAT, "%s: truncated .npy header (%zu bytes announced)", path, hlen);
        goto done;
    }
    if ((s = parse_header(path, d + hstart, hlen, descr, sizeof descr, &fortran, &nd, shp)))
        goto done;
    ge_dtype dt;
    if (!strcmp(descr, "<f4")) {
        dt = GE_DT_F32;
    } else if (!strcmp(descr, "<f8")) {
        dt = GE_DT_F64;
    } else {
        s = ge_fail(GE_ERR_UNSUPPORTED,
                    "%s: .npy dtype '%s' (little-endian float32 '<f4' or float64 '<f8' read)", path,
                    descr);
        goto done;
    }
    if (fortran) {
        s = ge_fail(GE_ERR_UNSUPPORTED, "%s: .npy array in Fortran order (save it C-contiguous)",
                    path);
        goto done;
    }
    size_t numel = 1, bytes;
    for (int i = 0; i < nd; i++)
        if (!ge_mul_ok(numel, (size_t)shp[i], &numel)) {
            s = ge_fail(GE_ERR_FORMAT, "%s: .npy shape overflows", path);
            goto done;
        }
    size_t avail = len - hstart - hlen;
    if (!ge_mul_ok(numel, ge_dtype_size(dt), &bytes)) {
        s = ge_fail(GE_ERR_FORMAT, "%s: .npy shape is too large for any file", path);
        goto done;
    }
    if (bytes != avail) {
        s = ge_fail(GE_ERR_FORMAT, "%s: .npy data is %zu bytes, its shape needs %zu%s", path, avail,
                    bytes, bytes > avail ? " (truncated?)" : "");
        goto done;
    }
    float *f = ge_alloc_floats(numel);
    if (!f) {
        s = ge_fail(GE_ERR_NOMEM, "%s: out of memory for %zu floats", path, numel);
        goto done;
    }
    ge_convert_to_f32(f, d + hstart + hlen, numel, dt);
    *data = f;
    *ndim = nd;
    for (int i = 0; i < 8; i++)
        shape[i] = i < nd ? shp[i] : 0;
done:
    ge_unmap_file(d, len);
    return s;
}

ge_status ge_npy_read_tensors(ge_tensors **out, const char *path) {
    *out = NULL;
    float *data;
    int ndim;
    int64_t shape[8];
    ge_status s = ge_npy_load(path, &data, &ndim, shape);
    if (s) return s;
    ge_tensors *ts = ge_tensors_new();
    if (!ts || ge_tensors_own(ts, data) != GE_OK) {
        if (!ts) free(data); /* ge_tensors_own frees it on failure */
        ge_tensors_free(ts);
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!ge_tensors_add(ts, "array", ndim, shape, data)) {
        ge_tensors_free(ts);
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory", path);
    }
    *out = ts;
    return GE_OK;
}

/* ---- Write -------------------------------------------------------------- */

ge_status ge_npy_save(const char *path, const float *data, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > 8)
        return ge_fail(GE_ERR_ARG, "%s: cannot write an array of %d dimensions", path, ndim);
    size_t numel = 1;
    char h[512];
    int n = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !ge_mul_ok(numel, (size_t)shape[i], &numel) || numel > SIZE_MAX / 4)
            return ge_fail(GE_ERR_ARG, "%s: invalid shape for .npy", path);
        n += snprintf(h + n, sizeof h - (size_t)n, "%lld%s", (long long)shape[i],
                      ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    }
    n += snprintf(h + n, sizeof h - (size_t)n, "), }");
    if (numel && !data) return ge_fail(GE_ERR_ARG, "%s: no data to write", path);
    /* pad with spaces and a newline so the data starts at a multiple of 64 */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(h + n, ' ', pad);
    h[n + pad] = '\n';
    size_t hlen = (size_t)n + pad + 1;
    unsigned char pre[10] = {0x93,
                             'N',
                             'U',
                             'M',
                             'P',
                             'Y',
                             1,
                             0,
                             (unsigned char)(hlen & 255),
                             (unsigned char)(hlen >> 8)};
    ge_atomic_file af;
    ge_status s = ge_atomic_open(&af, path);
    if (s) return s;
    if (fwrite(pre, 1, 10, af.f) != 10 || fwrite(h, 1, hlen, af.f) != hlen ||
        (numel && fwrite(data, sizeof(float), numel, af.f) != numel)) {
        ge_atomic_abort(&af);
        return ge_fail(GE_ERR_IO, "%s: write failed", path);
    }
    return ge_atomic_commit(&af);
}
