/* gif.c - animated GIF output with giflib (interpolation videos). Each
 * frame gets its own 256-colour palette from giflib's median-cut quantiser,
 * a delay, and the file loops forever (NETSCAPE2.0). Written through an
 * atomic temporary file, like every other output. */
#include "io/io.h"

#include <gif_lib.h>
#include <stdlib.h>
#include <string.h>

static int write_fn(GifFileType *gif, const GifByteType *buf, int len) {
    FILE *f = gif->UserData;
    return (int)fwrite(buf, 1, (size_t)len, f);
}

static unsigned char to_byte(float v) {
    float x = (v + 1.f) * 127.5f + 0.5f;
    return !(x > 0.f) ? 0 : x >= 255.f ? 255 : (unsigned char)x;
}

ge_status ge_gif_write(const char *path, const float *frames, int n, int h, int w, int delay_cs) {
    if (n < 1 || h < 1 || w < 1 || h > 65535 || w > 65535)
        return ge_fail(GE_ERR_ARG, "%s: cannot write a GIF of %d frames of %dx%d", path, n, w, h);
    size_t plane = (size_t)h * w;
    unsigned char *rgb = ge_malloc(plane, 3), *idx = ge_malloc(plane, 1);
    ColorMapObject *cmap = GifMakeMapObject(256, NULL);
    ge_atomic_file af;
    ge_status s = GE_OK;
    int err = 0;
    GifFileType *gif = NULL;
    if (!rgb || !idx || !cmap) {
        s = ge_fail(GE_ERR_NOMEM, "out of memory writing %s", path);
        goto out;
    }
    if ((s = ge_atomic_open(&af, path)) != GE_OK) goto out;
    gif = EGifOpen(af.f, write_fn, &err);
    if (!gif) {
        ge_atomic_abort(&af);
        s = ge_fail(GE_ERR_IO, "%s: cannot start GIF: %s", path, GifErrorString(err));
        goto out;
    }
    EGifSetGifVersion(gif, true);
    int ok = EGifPutScreenDesc(gif, w, h, 8, 0, NULL) == GIF_OK;
    static const unsigned char loop[3] = {1, 0, 0};
    ok = ok && EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) == GIF_OK &&
         EGifPutExtensionBlock(gif, 11, "NETSCAPE2.0") == GIF_OK &&
         EGifPutExtensionBlock(gif, 3, loop) == GIF_OK && EGifPutExtensionTrailer(gif) == GIF_OK;
    for (int i = 0; ok && i < n; i++) {
        const float *fr = frames + (size_t)i * 3 * plane;
        for (size_t k = 0; k < plane; k++)
            for (int c = 0; c < 3; c++) rgb[c * plane + k] = to_byte(fr[c * plane + k]);
        int size = 256;
        ok = GifQuantizeBuffer((unsigned)w, (unsigned)h, &size, rgb, rgb + plane, rgb + 2 * plane,
                               idx, cmap->Colors) == GIF_OK;
        GraphicsControlBlock gcb = {DISPOSAL_UNSPECIFIED, false, delay_cs, NO_TRANSPARENT_COLOR};
        GifByteType ext[4];
        size_t len = EGifGCBToExtension(&gcb, ext);
        ok = ok && EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, (int)len, ext) == GIF_OK;
        ok = ok && EGifPutImageDesc(gif, 0, 0, w, h, false, cmap) == GIF_OK;
        for (int y = 0; ok && y < h; y++) ok = EGifPutLine(gif, idx + (size_t)y * w, w) == GIF_OK;
    }
    int close_ok = EGifCloseFile(gif, &err) == GIF_OK;
    if (!ok || !close_ok) {
        ge_atomic_abort(&af);
        s = ge_fail(GE_ERR_IO, "%s: cannot write GIF", path);
        goto out;
    }
    s = ge_atomic_commit(&af);
out:
    free(rgb);
    free(idx);
    if (cmap) GifFreeMapObject(cmap);
    return s;
}
