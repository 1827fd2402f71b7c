/* serve_img.c - bytes in and out for `ganedit serve`.
 *
 * Uploads are looked at before anything decodes them: the magic bytes must
 * say PNG or JPEG and the header's declared size must fit the limits, so a
 * small file that claims to be 60000x60000 pixels is refused without
 * allocating its pixels. Decoding itself is the library's ge_image_read
 * (through a private temporary file), so the server accepts exactly what the
 * command line accepts. Answers are encoded in memory: PNG with libpng's
 * simplified writer (same rounding as ge_image_write_png) and .npy with the
 * version 1.0 header, so downloads match what the CLI writes. */
#include "serve_common.h"

#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- growable byte buffer ---------------------------------------------- */

static int buf_reserve(srv_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)1 << 40)) return -1;
        cap *= 2;
    }
    unsigned char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int srv_buf_put(srv_buf *b, const void *data, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int srv_buf_printf(srv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void srv_buf_free(srv_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- sniffing ------------------------------------------------------------ */

static unsigned be32(const unsigned char *p) {
    return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3];
}

int srv_sniff_image(const unsigned char *d, size_t len, int *w, int *h) {
    *w = *h = 0;
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && !memcmp(d, png_magic, 8)) {
        /* the first chunk must be IHDR: length 13, then width and height */
        if (len >= 24 && be32(d + 8) == 13 && !memcmp(d + 12, "IHDR", 4)) {
            unsigned W = be32(d + 16), H = be32(d + 20);
            if (W <= 0x7fffffff && H <= 0x7fffffff) {
                *w = (int)W;
                *h = (int)H;
            }
        }
        return 1;
    }
    if (len >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
        /* walk the marker segments to the first start-of-frame */
        size_t i = 2;
        while (i + 4 <= len) {
            if (d[i] != 0xFF) break;
            unsigned m = d[i + 1];
            if (m == 0xFF) { /* fill byte */
                i++;
                continue;
            }
            if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* no length */
                i += 2;
                continue;
            }
            size_t seg = (size_t)d[i + 2] << 8 | d[i + 3];
            if (seg < 2) break;
            int sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
            if (sof) {
                if (i + 9 <= len) {
                    *h = d[i + 5] << 8 | d[i + 6];
                    *w = d[i + 7] << 8 | d[i + 8];
                }
                break;
            }
            if (m == 0xDA || m == 0xD9) break; /* scan data before any frame header */
            i += 2 + seg;
        }
        return 2;
    }
    return 0;
}

/* ---- decoding -------------------------------------------------------------- */

/* img (c, h, w) -> (c, R, R) by crop and resize; frees img. For c == 4 the
 * colour is premultiplied by alpha while resizing. */
static ge_status square_resize(float **out, float *img, int c, int h, int w, int R) {
    ge_status st = GE_OK;
    size_t hw = (size_t)h * w;
    if (c == 4) /* premultiply, in [0, 1] */
        for (size_t i = 0; i < hw; i++) {
            float a = (img[3 * hw + i] + 1.f) * 0.5f;
            for (int k = 0; k < 3; k++)
                img[k * hw + i] = (img[k * hw + i] + 1.f) * 0.5f * a;
            img[3 * hw + i] = a;
        }
    int side = h;
    if (h != w) {
        float *sq = NULL;
        st = ge_image_center_crop(&sq, img, c, h, w, &side);
        free(img);
        if (st != GE_OK) return st;
        img = sq;
    }
    if (side != R) {
        float *rs = NULL;
        st = ge_image_resize(&rs, img, c, side, side, R, R);
        free(img);
        if (st != GE_OK) return st;
        img = rs;
    }
    if (c == 4) { /* un-premultiply, back to [-1, 1] */
        size_t rr = (size_t)R * R;
        for (size_t i = 0; i < rr; i++) {
            float a = img[3 * rr + i];
            a = a < 0 ? 0 : a > 1 ? 1 : a;
            for (int k = 0; k < 3; k++) {
                float v = a > 1e-6f ? img[k * rr + i] / a : 0.f;
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                img[k * rr + i] = v * 2.f - 1.f;
            }
            img[3 * rr + i] = a; /* alpha stays in [0, 1] */
        }
    }
    *out = img;
    return GE_OK;
}

ge_status srv_decode_image(const char *tmpdir, const unsigned char *data, size_t len, int R,
                           float **rgb, float **alpha, int *w, int *h) {
    *rgb = NULL;
    *alpha = NULL;
    char path[600];
    snprintf(path, sizeof path, "%s/upload-XXXXXX", tmpdir);
    int fd = mkstemp(path);
    if (fd < 0) return ge_fail(GE_ERR_IO, "cannot create a temporary file for the upload");
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    close(fd);
    if (done != len) {
        unlink(path);
        return ge_fail(GE_ERR_IO, "cannot write the upload to a temporary file");
    }
    float *img = NULL;
    int c = 0;
    ge_status st = ge_image_read(path, &img, &c, h, w);
    unlink(path);
    if (st != GE_OK) {
        /* the temporary name means nothing to the client */
        char msg[512];
        const char *m = ge_errmsg(), *colon = strstr(m, ": ");
        snprintf(msg, sizeof msg, "%s", colon && !strncmp(m, path, strlen(path)) ? colon + 2 : m);
        return ge_fail(st, "upload: %s", msg);
    }
    size_t hw = (size_t)*h * *w;
    if (c == 1) { /* grey: replicate into RGB */
        float *g3 = ge_alloc_floats(3 * hw);
        if (!g3) {
            free(img);
            return GE_ERR_NOMEM;
        }
        for (int k = 0; k < 3; k++)
            memcpy(g3 + k * hw, img, hw * sizeof(float));
        free(img);
        img = g3;
        c = 3;
    }
    float *sq = NULL;
    if ((st = square_resize(&sq, img, c, *h, *w, R)) != GE_OK) return st;
    size_t rr = (size_t)R * R;
    if (c == 4) {
        float *a = ge_alloc_floats(rr), *col = ge_alloc_floats(3 * rr);
        if (!a || !col) {
            free(a);
            free(col);
            free(sq);
            return GE_ERR_NOMEM;
        }
        memcpy(col, sq, 3 * rr * sizeof(float));
        memcpy(a, sq + 3 * rr, rr * sizeof(float));
        free(sq);
        *rgb = col;
        *alpha = a;
    } else {
        *rgb = sq;
    }
    return GE_OK;
}

/* ---- encoding --------------------------------------------------------------- */

static unsigned char to_byte(float v) {
    if (!(v == v)) v = -1.f;
    float x = (v + 1.f) * 127.5f + 0.5f;
    return x <= 0.f ? 0 : x >= 255.f ? 255 : (unsigned char)x;
}

ge_status srv_png_encode(unsigned char **out, size_t *len, const float *img, int n, int c, int h,
                         int w) {
    *out = NULL;
    *len = 0;
    if (n < 1 || h < 1 || w < 1 || (c != 3 && c != 4))
        return ge_fail(GE_ERR_ARG, "cannot encode %d images of %dx%dx%d", n, c, h, w);
    size_t W = (size_t)n * w, plane = (size_t)h * w;
    unsigned char *pix = ge_malloc(W * h, (size_t)c);
    if (!pix) return GE_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++) {
                    float v = img[((size_t)i * c + k) * plane + (size_t)y * w + x];
                    if (k == 3) v = v * 2.f - 1.f; /* alpha arrives in [0, 1] */
                    pix[((size_t)y * W + (size_t)i * w + x) * c + k] = to_byte(v);
                }
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)W;
    pi.height = (png_uint_32)h;
    pi.format = c == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&pi, NULL, &size, 0, pix, 0, NULL)) {
        free(pix);
        return ge_fail(GE_ERR_FORMAT, "PNG encoding failed: %s", pi.message);
    }
    unsigned char *mem = malloc(size ? size : 1);
    if (!mem) {
        free(pix);
        return ge_fail(GE_ERR_NOMEM, "out of memory encoding a PNG");
    }
    if (!png_image_write_to_memory(&pi, mem, &size, 0, pix, 0, NULL)) {
        free(pix);
        free(mem);
        return ge_fail(GE_ERR_FORMAT, "PNG encoding failed: %s", pi.message);
    }
    free(pix);
    *out = mem;
    *len = size;
    return GE_OK;
}

int srv_npy_encode(srv_buf *b, const float *data, int ndim, const int64_t *shape) {
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(dict + n, sizeof dict - n, "%lld,%s", (long long)shape[i],
                      i + 1 < ndim ? " " : "");
        count *= (size_t)shape[i];
    }
    if (ndim > 1) n--; /* (a, b) rather than (a, b,) */
    n += snprintf(dict + n, sizeof dict - n, "), }");
    /* magic (6) + version (2) + header length (2) + dict + padding + '\n' = k * 64 */
    size_t total = 10 + (size_t)n + 1, pad = (64 - total % 64) % 64;
    unsigned hl = (unsigned)(n + pad + 1);
    unsigned char head[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 255), (unsigned char)(hl >> 8)};
    if (srv_buf_put(b, head, 10) || srv_buf_put(b, dict, (size_t)n)) return -1;
    for (size_t i = 0; i < pad; i++)
        if (srv_buf_put(b, " ", 1)) return -1;
    if (srv_buf_put(b, "\n", 1)) return -1;
    /* float32 little-endian: this code runs on little-endian hosts only */
    return srv_buf_put(b, data, count * sizeof(float));
}

int srv_base64(srv_buf *b, const unsigned char *d, size_t len) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (buf_reserve(b, (len + 2) / 3 * 4)) return -1;
    char *o = (char *)b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < len ? (unsigned)d[i + 1] << 8 : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - (char *)b->data);
    b->data[b->len] = 0;
    return 0;
}
