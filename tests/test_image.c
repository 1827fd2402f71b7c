/* test_image.c - image files: PNG/JPEG reading of the shared data, PNG
 * round trips (exact at 8 bits), alpha kept, grids, resize and crop, and
 * corrupt or missing files refused with a message. */
#include "harness.h"
#include "ganedit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(image_png_rgba_sketch) {
    float *img;
    int c, h, w;
    ge_status s = ge_image_read(shared_path("data/sketches/sketch_0.png"), &img, &c, &h, &w);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(c == 4 && h == 64 && w == 64, "got %dx%dx%d", c, h, w);
    double lo = 1e9, hi = -1e9;
    for (size_t i = 0; i < (size_t)c * h * w; i++) {
        if (img[i] < lo) lo = img[i];
        if (img[i] > hi) hi = img[i];
    }
    free(img);
    CHECK(lo >= -1.0 && hi <= 1.0 && hi > lo, "range [%g, %g]", lo, hi);
}

TEST(image_jpeg_cat) {
    float *img;
    int c, h, w;
    ge_status s = ge_image_read(shared_path("data/cats256/00000001_000.jpg"), &img, &c, &h, &w);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(c == 3 && h == w && h >= 128 && h <= 256, "got %dx%dx%d", c, h, w);
    free(img);
}

TEST(image_png_roundtrip_exact) {
    float *img;
    int c, h, w;
    CHECK(ge_image_read(shared_path("data/sketches/target_0.png"),
                        &img, &c, &h, &w) == GE_OK, "%s", ge_errmsg());
    char path[4200];
    snprintf(path, sizeof path, "%s/rt.png", tmpdir_new());
    CHECK(ge_image_write_png(path, img, 1, c, h, w, 1) == GE_OK, "%s", ge_errmsg());
    float *back;
    int c2, h2, w2;
    CHECK(ge_image_read(path, &back, &c2, &h2, &w2) == GE_OK, "%s", ge_errmsg());
    CHECK(c2 == c && h2 == h && w2 == w, "shape changed");
    double d = max_abs_diff(img, back, (size_t)c * h * w);
    free(img);
    free(back);
    CHECK(d == 0.0, "8-bit round trip changed values by %g", d);
}

TEST(image_png_grid_size) {
    float img[2 * 3 * 4 * 5];
    for (int i = 0; i < 120; i++) img[i] = (i % 7) / 3.5f - 1.f;
    char path[4200];
    snprintf(path, sizeof path, "%s/grid.png", tmpdir_new());
    CHECK(ge_image_write_png(path, img, 2, 3, 4, 5, 2) == GE_OK, "%s", ge_errmsg());
    float *back;
    int c, h, w;
    CHECK(ge_image_read(path, &back, &c, &h, &w) == GE_OK, "%s", ge_errmsg());
    free(back);
    CHECK(c == 3 && h == 4 && w == 5 + 2 + 5, "grid %dx%dx%d", c, h, w);
}

TEST(image_resize_constant_and_crop) {
    int c = 3, h = 30, w = 50;
    float *img = malloc(sizeof(float) * c * h * w);
    for (int k = 0; k < c; k++)
        for (int i = 0; i < h * w; i++) img[k * h * w + i] = 0.25f * k - 0.3f;
    float *sq;
    int side;
    CHECK(ge_image_center_crop(&sq, img, c, h, w, &side) == GE_OK && side == 30, "crop");
    float *r;
    CHECK(ge_image_resize(&r, sq, c, side, side, 16, 16) == GE_OK, "%s", ge_errmsg());
    for (int k = 0; k < c; k++)
        for (int i = 0; i < 256; i++)
            CHECK(fabsf(r[k * 256 + i] - (0.25f * k - 0.3f)) < 1e-6f, "value changed");
    free(r);
    /* upsampling a ramp stays monotonic and inside its range */
    float ramp[8];
    for (int i = 0; i < 8; i++) ramp[i] = i / 7.f;
    CHECK(ge_image_resize(&r, ramp, 1, 1, 8, 1, 20) == GE_OK, "%s", ge_errmsg());
    for (int i = 1; i < 20; i++) CHECK(r[i] >= r[i - 1] && r[i] <= 1.f && r[i] >= 0.f, "ramp");
    free(r);
    free(sq);
    free(img);
}

TEST(image_bad_files) {
    const char *dir = tmpdir_new();
    char path[4200];
    float *img = NULL;
    int c, h, w;
    CHECK(ge_image_read("/nonexistent/x.png", &img, &c, &h, &w) == GE_ERR_IO, "missing file");
    CHECK(strstr(ge_errmsg(), "/nonexistent/x.png") != NULL, "message names file: %s", ge_errmsg());
    /* truncated PNG: the first 100 bytes of a real one */
    FILE *in = fopen(shared_path("data/sketches/sketch_1.png"), "rb");
    CHECK(in != NULL, "open sketch");
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    size_t cuts[] = {8, 20, 60, 100, n / 2};
    for (int k = 0; k < 5; k++) {
        snprintf(path, sizeof path, "%s/cut%d.png", dir, k);
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, cuts[k], f);
        fclose(f);
        ge_status s = ge_image_read(path, &img, &c, &h, &w);
        CHECK(s == GE_ERR_FORMAT && img == NULL, "truncated png at %zu: status %d", cuts[k], s);
    }
    snprintf(path, sizeof path, "%s/text.png", dir);
    FILE *f = fopen(path, "wb");
    fputs("this is not an image\n", f);
    fclose(f);
    CHECK(ge_image_read(path, &img, &c, &h, &w) == GE_ERR_FORMAT, "text file");
    /* truncated JPEG */
    in = fopen(shared_path("data/cats256/00000001_000.jpg"), "rb");
    CHECK(in != NULL, "open jpeg");
    n = fread(buf, 1, 600, in);
    fclose(in);
    snprintf(path, sizeof path, "%s/cut.jpg", dir);
    f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    ge_status s = ge_image_read(path, &img, &c, &h, &w);
    CHECK(s == GE_ERR_FORMAT, "truncated jpeg: status %d", s);
    /* writing into a missing directory fails cleanly */
    float px[3] = {0, 0, 0};
    CHECK(ge_image_write_png("/nonexistent/dir/out.png", px, 1, 3, 1, 1, 1) == GE_ERR_IO, "write");
}
