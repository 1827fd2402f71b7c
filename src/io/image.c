/* image.c - image files in and out: PNG (libpng) and JPEG (libjpeg) read into
 * float planes in [-1, 1]; PNG grids written through an atomic temporary
 * file; and a separable triangle-filter resize (antialiased when shrinking,
 * like PIL's bilinear) so targets of any size can meet the generator's. */
#include "io/io.h"

#include <errno.h>
#include <jpeglib.h>
#include <jerror.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIDE 16384

/* ---- PNG read ---------------------------------------------------------- */

static ge_status read_png(const char *path, FILE *f, float **data, int *c, int *h, int *w) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_stdio(&img, f))
        return ge_fail(GE_ERR_FORMAT, "%s: not a readable PNG: %s", path, img.message);
    if (img.width == 0 || img.height == 0 || img.width > MAX_SIDE || img.height > MAX_SIDE) {
        png_image_free(&img);
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: image size %ux%u outside 1..%d", path, img.width,
                       img.height, MAX_SIDE);
    }
    int has_alpha = (img.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    int gray = !(img.format & PNG_FORMAT_FLAG_COLOR);
    int ch = gray && !has_alpha ? 1 : (has_alpha ? 4 : 3);
    img.format = ch == 1 ? PNG_FORMAT_GRAY : (ch == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB);
    size_t W = img.width, H = img.height;
    unsigned char *buf = ge_malloc(W * H, (size_t)ch);
    if (!buf) {
        png_image_free(&img);
        return GE_ERR_NOMEM;
    }
    if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return ge_fail(GE_ERR_FORMAT, "%s: corrupt PNG: %s", path, img.message);
    }
    float *out = ge_alloc_floats(W * H * ch);
    if (!out) {
        free(buf);
        return GE_ERR_NOMEM;
    }
    for (int k = 0; k < ch; k++)
        for (size_t i = 0; i < W * H; i++) out[k * W * H + i] = buf[i * ch + k] / 127.5f - 1.f;
    free(buf);
    *data = out;
    *c = ch;
    *h = (int)H;
    *w = (int)W;
    return GE_OK;
}

/* ---- JPEG read --------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings are silent, except a premature end of the file or of a scan's
 * data (a marker reached early): libjpeg would pad the missing rows with
 * grey, and a half image must not pass as a whole one (nor a 1 KB file as a
 * 16000x16000 image). */
static void jpeg_silent(j_common_ptr cinfo, int level) {
    if (level < 0 &&
        (cinfo->err->msg_code == JWRN_JPEG_EOF || cinfo->err->msg_code == JWRN_HIT_MARKER))
        jpeg_on_error(cinfo);
}

static ge_status read_jpeg(const char *path, FILE *f, float **data, int *c, int *h, int *w) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    unsigned char *volatile buf = NULL;
    float *volatile out = NULL;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_on_error;
    err.mgr.emit_message = jpeg_silent;
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(buf);
        free(out);
        return ge_fail(GE_ERR_FORMAT, "%s: corrupt JPEG: %s", path, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t W = cinfo.output_width, H = cinfo.output_height;
    int ch = cinfo.output_components;
    if (W == 0 || H == 0 || W > MAX_SIDE || H > MAX_SIDE || (ch != 1 && ch != 3)) {
        jpeg_destroy_decompress(&cinfo);
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: JPEG size %zux%zu or %d channels not supported",
                       path, W, H, ch);
    }
    buf = ge_malloc(W * H, (size_t)ch);
    if (!buf) {
        jpeg_destroy_decompress(&cinfo);
        return GE_ERR_NOMEM;
    }
    while (cinfo.output_scanline < H) {
        JSAMPROW row = buf + (size_t)cinfo.output_scanline * W * ch;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    out = ge_alloc_floats(W * H * ch); /* after decoding: a truncated file never gets here */
    if (!out) {
        free(buf);
        return GE_ERR_NOMEM;
    }
    for (int k = 0; k < ch; k++)
        for (size_t i = 0; i < W * H; i++) out[k * W * H + i] = buf[i * ch + k] / 127.5f - 1.f;
    free(buf);
    *data = out;
    *c = ch;
    *h = (int)H;
    *w = (int)W;
    return GE_OK;
}

ge_status ge_image_read(const char *path, float **data, int *c, int *h, int *w) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ge_fail(GE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[8] = {0};
    size_t got = fread(magic, 1, 8, f);
    rewind(f);
    ge_status s;
    if (got == 8 && !png_sig_cmp(magic, 0, 8))
        s = read_png(path, f, data, c, h, w);
    else if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF)
        s = read_jpeg(path, f, data, c, h, w);
    else
        s = ge_fail(GE_ERR_FORMAT, "%s: not a PNG or JPEG file", path);
    fclose(f);
    return s;
}

/* ---- PNG write ---------------------------------------------------------- */

static unsigned char to_byte(float v) {
    if (!(v == v)) v = -1.f; /* NaN: black, callers check finiteness first */
    float x = (v + 1.f) * 127.5f + 0.5f;
    return x <= 0.f ? 0 : x >= 255.f ? 255 : (unsigned char)x;
}

ge_status ge_image_write_png(const char *path, const float *img, int n, int c, int h, int w,
                             int cols) {
    if (n <= 0 || h <= 0 || w <= 0 || (c != 1 && c != 3 && c != 4))
        return ge_fail(GE_ERR_ARG, "%s: cannot write %d images of %dx%dx%d", path, n, c, h, w);
    if (cols <= 0 || cols > n) cols = n;
    int rows = (n + cols - 1) / cols, pad = n > 1 ? 2 : 0;
    size_t W = (size_t)cols * w + (size_t)(cols - 1) * pad, H = (size_t)rows * h + (size_t)(rows - 1) * pad;
    unsigned char *buf = ge_calloc(W * H, (size_t)c);
    if (!buf) return GE_ERR_NOMEM;
    if (c == 4) /* transparent gaps, opaque images */
        ;
    else
        memset(buf, 255, W * H * c); /* white gaps between grid cells */
    size_t plane = (size_t)h * w;
    for (int i = 0; i < n; i++) {
        size_t ox = (size_t)(i % cols) * (w + pad), oy = (size_t)(i / cols) * (h + pad);
        const float *im = img + (size_t)i * c * plane;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++)
                    buf[((oy + y) * W + ox + x) * c + k] = to_byte(im[k * plane + (size_t)y * w + x]);
    }
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)W;
    pi.height = (png_uint_32)H;
    pi.format = c == 1 ? PNG_FORMAT_GRAY : c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    ge_atomic_file af;
    ge_status s = ge_atomic_open(&af, path);
    if (s != GE_OK) {
        free(buf);
        return s;
    }
    if (!png_image_write_to_stdio(&pi, af.f, 0, buf, 0, NULL)) {
        ge_atomic_abort(&af);
        free(buf);
        return ge_fail(GE_ERR_IO, "%s: cannot write PNG: %s", path, pi.message);
    }
    free(buf);
    return ge_atomic_commit(&af);
}

/* ---- resize -------------------------------------------------------------- */

/* Resamples one axis: out[o] over n_out from in[i] over n_in, triangle filter
 * whose support grows with the shrink factor (antialiasing). */
static void resample_axis(float *out, const float *in, int n_in, int n_out, size_t in_stride,
                          size_t out_stride, int count, size_t in_step, size_t out_step) {
    double scale = (double)n_in / n_out, support = scale > 1 ? scale : 1;
    for (int o = 0; o < n_out; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        if (lo < 0) lo = 0;
        if (hi > n_in) hi = n_in;
        double wsum = 0;
        for (int i = lo; i < hi; i++) {
            double d = fabs((i + 0.5 - center) / support);
            if (d < 1) wsum += 1 - d;
        }
        for (int k = 0; k < count; k++) {
            double acc = 0;
            for (int i = lo; i < hi; i++) {
                double d = fabs((i + 0.5 - center) / support);
                if (d < 1) acc += (1 - d) * in[k * in_step + (size_t)i * in_stride];
            }
            out[k * out_step + (size_t)o * out_stride] = wsum > 0 ? (float)(acc / wsum) : 0.f;
        }
    }
}

ge_status ge_image_resize(float **out, const float *img, int c, int h, int w, int oh, int ow) {
    *out = NULL;
    if (c <= 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0 || oh > MAX_SIDE || ow > MAX_SIDE)
        return ge_fail(GE_ERR_ARG, "cannot resize %dx%d to %dx%d", w, h, ow, oh);
    float *tmp = ge_alloc_floats((size_t)c * h * ow);
    float *res = ge_alloc_floats((size_t)c * oh * ow);
    if (!tmp || !res) {
        free(tmp);
        free(res);
        return GE_ERR_NOMEM;
    }
    /* rows: (c*h) lines of w -> ow */
    resample_axis(tmp, img, w, ow, 1, 1, c * h, (size_t)w, (size_t)ow);
    /* columns: per channel, ow columns of h -> oh */
    for (int k = 0; k < c; k++)
        resample_axis(res + (size_t)k * oh * ow, tmp + (size_t)k * h * ow, h, oh, (size_t)ow,
                      (size_t)ow, ow, 1, 1);
    free(tmp);
    *out = res;
    return GE_OK;
}

ge_status ge_image_center_crop(float **out, const float *img, int c, int h, int w, int *side) {
    int s = h < w ? h : w, y0 = (h - s) / 2, x0 = (w - s) / 2;
    float *r = ge_alloc_floats((size_t)c * s * s);
    if (!r) return GE_ERR_NOMEM;
    for (int k = 0; k < c; k++)
        for (int y = 0; y < s; y++)
            memcpy(r + ((size_t)k * s + y) * s, img + ((size_t)k * h + y0 + y) * w + x0,
                   (size_t)s * sizeof(float));
    *out = r;
    *side = s;
    return GE_OK;
}
