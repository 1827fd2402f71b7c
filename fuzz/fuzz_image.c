/* fuzz_image.c - libFuzzer target: ge_image_read (PNG through libpng, JPEG
 * through libjpeg) on the input as a file, then what the editing commands do
 * next with a photo: centre crop and resize. Pixels must come back in
 * [-1, 1] with a plausible channel count. libpng and libjpeg are the
 * system's uninstrumented builds, so coverage counts only ganedit's code;
 * crashes inside them are still caught. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(data, size);
    float *img = NULL;
    int c = 0, h = 0, w = 0;
    ge_clear_error();
    ge_status s = ge_image_read(path, &img, &c, &h, &w);
    fz_check_refusal(s, path);
    if (s != GE_OK) {
        if (img) fz_die("pixels returned on failure", ge_errmsg());
        return 0;
    }
    if (!img || (c != 1 && c != 3 && c != 4) || h < 1 || w < 1) fz_die("bad image result", NULL);
    if (fz_read_floats(img, (size_t)c * h * w, -1.f, 1.f)) fz_die("a pixel outside [-1, 1]", NULL);
    if ((size_t)h * w <= (1u << 16)) {
        float *sq = NULL, *small = NULL;
        int side = 0;
        if (ge_image_center_crop(&sq, img, c, h, w, &side) == GE_OK &&
            ge_image_resize(&small, sq, c, side, side, 16, 16) == GE_OK)
            fz_sink = small[0] + small[(size_t)c * 256 - 1];
        free(sq);
        free(small);
    }
    free(img);
    return 0;
}
