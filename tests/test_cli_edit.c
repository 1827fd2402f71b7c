/* test_cli_edit.c - the editing commands as a user runs them: project,
 * draw, edit and interpolate on the real DCGAN + VGG-19 (and the reference
 * StyleGAN2 for the w / w+ latent files) with a few steps each, checking the
 * output folder file by file; the bad-input table of docs/bad-input.md for
 * every command (one-line message, exit status, no output); Ctrl-C and
 * SIGTERM during a run (prompt exit, best result so far, consistent
 * loss.csv); a write that fails for lack of space (RLIMIT_FSIZE) leaving the
 * previous file intact; and a generator whose output is NaN.
 *
 * The binary is the ganedit built beside this test runner. Runs go through
 * /bin/sh with stderr captured to a file; every output goes under a
 * tmpdir_new() folder. */
#include "ganedit.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gif_lib.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DCGAN "weights/dcgan_grumpy_deluxe.safetensors"
#define VGG "weights/vgg19_normalised_conv3_1.safetensors"
#define SG2 "ref/stylegan2_g1.safetensors"

/* ---- helpers ------------------------------------------------------------------ */

/* Entries in a folder other than . and ..; -1 if it cannot be opened. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Whether any entry's name in dir contains s. */
static int any_named(const char *dir, const char *s) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, s)) found = 1;
    closedir(d);
    return found;
}

/* dir/name in one of 8 rotating buffers (dir may itself be one of them). */
static const char *join(const char *dir, const char *name) {
    static char buf[8][4400];
    static int slot;
    char tmp[4400];
    size_t n = strlen(dir), m = strlen(name);
    if (n + m + 2 > sizeof tmp) n = m = 0;
    memcpy(tmp, dir, n);
    tmp[n] = '/';
    memcpy(tmp + n + 1, name, m + 1);
    char *b = buf[slot++ & 7];
    memcpy(b, tmp, n + m + 2);
    return b;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static int write_bytes(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fputs(s, f);
    return fclose(f) == 0;
}

/* loss.csv: the header, then rows 0..n-1 numbered in order with 6 fields;
 * returns the number of rows, or -1 if malformed. */
static int loss_rows(const char *path) {
    char *s = read_text(path);
    if (!s) return -1;
    int rows = -1;
    if (!strncmp(s, "step,total,pixel,perceptual,style,reg\n", 38)) {
        rows = 0;
        for (char *line = strchr(s, '\n') + 1; *line; rows++) {
            int step, used = 0;
            double v[5];
            if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf%n", &step, &v[0], &v[1], &v[2], &v[3], &v[4],
                       &used) != 6 ||
                step != rows || line[used] != '\n') {
                rows = -1;
                break;
            }
            line += used + 1;
        }
    }
    free(s);
    return rows;
}

/* The shape of a .npy file as "(a, b, ...)"; "" if unreadable. */
static const char *npy_shape(const char *path) {
    static char buf[128];
    float *d;
    int nd;
    int64_t sh[8];
    buf[0] = 0;
    if (ge_npy_load(path, &d, &nd, sh) != GE_OK) return buf;
    free(d);
    int n = snprintf(buf, sizeof buf, "(");
    for (int i = 0; i < nd; i++)
        n += snprintf(buf + n, sizeof buf - n, i ? ", %lld" : "%lld", (long long)sh[i]);
    snprintf(buf + n, sizeof buf - n, ")");
    return buf;
}

/* Largest difference between two PNGs in 1/255 steps; -1 if they do not load
 * or differ in shape. */
static int png_diff(const char *a, const char *b) {
    float *x = NULL, *y = NULL;
    int ca, ha, wa, cb, hb, wb, d = -1;
    if (ge_image_read(a, &x, &ca, &ha, &wa) == GE_OK &&
        ge_image_read(b, &y, &cb, &hb, &wb) == GE_OK && ca == cb && ha == hb && wa == wb)
        d = (int)(max_abs_diff(x, y, (size_t)ca * ha * wa) * 127.5 + 0.5);
    free(x);
    free(y);
    return d;
}

/* Files every project/draw/edit output folder has. */
static const char *const outputs[] = {"result.png", "target.png", "latent.npy", "loss.csv",
                                      "report.html"};

static int has_outputs(const char *dir, char *why, size_t cap) {
    for (int i = 0; i < 5; i++)
        if (!file_exists(join(dir, outputs[i]))) {
            snprintf(why, cap, "%s missing", outputs[i]);
            return 0;
        }
    return 1;
}

/* Small input files for the bad-input cases, made once per test. */
typedef struct {
    char dir[4096];
    char rgb32[4400];  /* 32x32 RGB PNG (a mask of the wrong size) */
    char rgba32[4400]; /* 32x32 RGBA scribble, left half opaque */
    char alpha0[4400]; /* 64x64 RGBA, alpha 0 everywhere (an empty scribble) */
    char grey[4400];   /* 64x64 greyscale PNG */
    char wrong[4400];  /* (1, 7) latent */
    char wplus[4400];  /* (1, 8, 64) latent: a w+ for StyleGAN2 g1, wrong for DCGAN */
    char wplus2[4400]; /* another */
    char nan[4400];    /* (1, 100) latent with a NaN */
    char z[4400];      /* (1, 100) good DCGAN latent */
    char z2[4400];     /* another */
    char file[4400];   /* a plain file (where a folder is expected) */
    char text[4400];   /* a text file named .png */
} inputs;

static int make_inputs(inputs *in) {
    snprintf(in->dir, sizeof in->dir, "%s", tmpdir_new());
    snprintf(in->rgb32, sizeof in->rgb32, "%s/rgb32.png", in->dir);
    snprintf(in->alpha0, sizeof in->alpha0, "%s/alpha0.png", in->dir);
    snprintf(in->rgba32, sizeof in->rgba32, "%s/rgba32.png", in->dir);
    snprintf(in->wplus2, sizeof in->wplus2, "%s/wplus2.npy", in->dir);
    snprintf(in->grey, sizeof in->grey, "%s/grey.png", in->dir);
    snprintf(in->wrong, sizeof in->wrong, "%s/wrong.npy", in->dir);
    snprintf(in->wplus, sizeof in->wplus, "%s/wplus.npy", in->dir);
    snprintf(in->nan, sizeof in->nan, "%s/nan.npy", in->dir);
    snprintf(in->z, sizeof in->z, "%s/z.npy", in->dir);
    snprintf(in->z2, sizeof in->z2, "%s/z2.npy", in->dir);
    snprintf(in->file, sizeof in->file, "%s/plain", in->dir);
    snprintf(in->text, sizeof in->text, "%s/text.png", in->dir);
    static float img[4 * 64 * 64], lat[9 * 64];
    for (int i = 0; i < 4 * 64 * 64; i++)
        img[i] = i < 3 * 64 * 64 ? 0.5f * ((i % 7) / 3.f - 1) : -1.f;
    static float rgba[4 * 32 * 32];
    for (int i = 0; i < 4 * 32 * 32; i++)
        rgba[i] = i < 3 * 32 * 32 ? 0.3f : ((i % 32) < 16 ? 1.f : -1.f);
    int ok = ge_image_write_png(in->rgb32, img, 1, 3, 32, 32, 1) == GE_OK &&
             ge_image_write_png(in->rgba32, rgba, 1, 4, 32, 32, 1) == GE_OK &&
             ge_image_write_png(in->alpha0, img, 1, 4, 64, 64, 1) == GE_OK &&
             ge_image_write_png(in->grey, img, 1, 1, 64, 64, 1) == GE_OK;
    ge_rng r;
    ge_rng_seed(&r, 1);
    ge_rng_fill_uniform(&r, lat, 9 * 64, -1, 1);
    int64_t s7[2] = {1, 7}, s100[2] = {1, 100}, s864[3] = {1, 8, 64};
    ok = ok && ge_npy_save(in->wrong, lat, 2, s7) == GE_OK &&
         ge_npy_save(in->wplus, lat, 3, s864) == GE_OK &&
         ge_npy_save(in->wplus2, lat + 8, 3, s864) == GE_OK &&
         ge_npy_save(in->z, lat, 2, s100) == GE_OK &&
         ge_npy_save(in->z2, lat + 200, 2, s100) == GE_OK;
    lat[50] = NAN;
    ok = ok && ge_npy_save(in->nan, lat, 2, s100) == GE_OK;
    ok = ok && write_bytes(in->file, "not a folder\n") && write_bytes(in->text, "hello\n");
    return ok;
}

/* ---- the four commands, working ---------------------------------------------- */

TEST(cliedit_project_outputs) {
    char err[8192], args[16384], why[128];
    char dir[4400]; /* not there yet: project creates it */
    snprintf(dir, sizeof dir, "%s", join(tmpdir_new(), "p"));
    snprintf(args, sizeof args, "project --model %s --vgg %s --target %s --steps 3 --out %s",
             shared_path(DCGAN), shared_path(VGG), shared_path("data/sketches/target_0.png"), dir);
    CHECK(ganedit_run(args, err, sizeof err) == 0, "project failed: %s", err);
    CHECK(has_outputs(dir, why, sizeof why), "%s", why);
    CHECK(!strcmp(npy_shape(join(dir, "latent.npy")), "(1, 100)"), "latent.npy %s",
          npy_shape(join(dir, "latent.npy")));
    CHECK(loss_rows(join(dir, "loss.csv")) == 4, "loss.csv has %d rows (want 4: steps 0..3)",
          loss_rows(join(dir, "loss.csv")));
    float *img;
    int c, h, w;
    CHECK(ge_image_read(join(dir, "result.png"), &img, &c, &h, &w) == GE_OK, "%s", ge_errmsg());
    free(img);
    CHECK(c == 3 && h == 64 && w == 64, "result.png is %dx%dx%d", c, h, w);
    CHECK(png_diff(join(dir, "target.png"), shared_path("data/sketches/target_0.png")) == 0,
          "target.png is not the photo");
    char *html = read_text(join(dir, "report.html"));
    int ok = html && strstr(html, "<svg") && strstr(html, "result.png") &&
             strstr(html, "target.png") && strstr(html, "--steps 3");
    free(html);
    CHECK(ok, "report.html lacks the curve, the images or the command");
    /* the latent reproduces the result through `sample` */
    char png[4400];
    snprintf(png, sizeof png, "%s/again.png", tmpdir_new());
    snprintf(args, sizeof args, "sample --model %s --latent-in %s --out %s", shared_path(DCGAN),
             join(dir, "latent.npy"), png);
    CHECK(ganedit_run(args, err, sizeof err) == 0, "sample failed: %s", err);
    CHECK(png_diff(png, join(dir, "result.png")) <= 1,
          "sample(latent.npy) differs from result.png by %d",
          png_diff(png, join(dir, "result.png")));
}

TEST(cliedit_project_stylegan2_latents) {
    char err[8192], args[16384];
    char base[4096];
    snprintf(base, sizeof base, "%s", tmpdir_new());
    const char *spaces[3] = {"z", "w", "w+"}, *shapes[3] = {"(1, 64)", "(1, 64)", "(1, 8, 64)"};
    for (int i = 0; i < 3; i++) {
        const char *dir = join(base, i == 0 ? "z" : i == 1 ? "w" : "wplus");
        snprintf(args, sizeof args,
                 "project --model %s --latent %s --target %s --steps 1 --pixel 1 --perceptual 0 "
                 "--quiet --out %s",
                 shared_path(SG2), spaces[i], shared_path("data/sketches/target_2.png"), dir);
        CHECK(ganedit_run(args, err, sizeof err) == 0, "project --latent %s failed: %s", spaces[i], err);
        CHECK(strstr(err, "resizing"), "no note about resizing 64 -> 32: %s", err);
        CHECK(!strcmp(npy_shape(join(dir, "latent.npy")), shapes[i]), "--latent %s: latent.npy %s",
              spaces[i], npy_shape(join(dir, "latent.npy")));
        CHECK(loss_rows(join(dir, "loss.csv")) == 2, "--latent %s: loss.csv rows", spaces[i]);
    }
    /* a w+ result is a valid --init for w+, not for w */
    snprintf(args, sizeof args,
             "project --model %s --latent w+ --init %s --target %s --steps 1 --pixel 1 "
             "--perceptual 0 --out %s",
             shared_path(SG2), join(base, "wplus/latent.npy"),
             shared_path("data/sketches/target_2.png"), join(base, "again"));
    CHECK(ganedit_run(args, err, sizeof err) == 0, "--init w+ latent: %s", err);
    snprintf(args, sizeof args,
             "project --model %s --latent w --init %s --target %s --steps 1 --pixel 1 --perceptual "
             "0 --out %s",
             shared_path(SG2), join(base, "wplus/latent.npy"),
             shared_path("data/sketches/target_2.png"), join(base, "bad"));
    CHECK(ganedit_run(args, err, sizeof err) == 1 && strstr(err, "(1, 64)") && count_lines(err) == 1,
          "w+ file as w: %s", err);
    CHECK(!file_exists(join(base, "bad")), "output folder made after a bad --init");
}

TEST(cliedit_draw_every_sketch) {
    char err[8192], args[16384], why[128];
    char base[4096];
    snprintf(base, sizeof base, "%s", tmpdir_new());
    for (int i = 0; i < 9; i++) {
        char name[64], out[4400];
        snprintf(name, sizeof name, "data/sketches/sketch_%d.png", i);
        snprintf(out, sizeof out, "%s/d%d", base, i);
        snprintf(args, sizeof args, "draw --model %s --scribble %s --steps 2 --quiet --out %s",
                 shared_path(DCGAN), shared_path(name), out);
        CHECK(ganedit_run(args, err, sizeof err) == 0, "draw on %s failed: %s", name, err);
        CHECK(has_outputs(out, why, sizeof why), "sketch %d: %s", i, why);
        CHECK(loss_rows(join(out, "loss.csv")) == 3, "sketch %d: loss.csv", i);
        /* target.png keeps the scribble's mask as its alpha */
        CHECK(png_diff(join(out, "target.png"), shared_path(name)) <= 1,
              "sketch %d: target.png differs from the scribble", i);
    }
    /* with --mask instead of the alpha (a mask file of the scribble's size) */
    char mask[4400];
    snprintf(mask, sizeof mask, "%s/mask.png", base);
    static float m[3 * 64 * 64];
    for (int i = 0; i < 3 * 64 * 64; i++)
        m[i] = (i % 64) < 32 ? 1.f : -1.f; /* left half white */
    CHECK(ge_image_write_png(mask, m, 1, 3, 64, 64, 1) == GE_OK, "%s", ge_errmsg());
    snprintf(
        args, sizeof args, "draw --model %s --scribble %s --mask %s --steps 1 --quiet --out %s",
        shared_path(DCGAN), shared_path("data/sketches/target_4.png"), mask, join(base, "masked"));
    CHECK(ganedit_run(args, err, sizeof err) == 0, "draw --mask failed: %s", err);
    CHECK(has_outputs(join(base, "masked"), why, sizeof why), "%s", why);
}

TEST(cliedit_edit_outputs) {
    char err[8192], args[16384], why[128];
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", join(tmpdir_new(), "e"));
    snprintf(
        args, sizeof args,
        "edit --model %s --vgg %s --target %s --scribble %s --project-steps 2 --steps 2 --out %s",
        shared_path(DCGAN), shared_path(VGG), shared_path("data/sketches/target_0.png"),
        shared_path("data/sketches/sketch_3.png"), dir);
    CHECK(ganedit_run(args, err, sizeof err) == 0, "edit failed: %s", err);
    CHECK(has_outputs(dir, why, sizeof why), "%s", why);
    CHECK(file_exists(join(dir, "projection.png")), "no projection.png");
    CHECK(!strcmp(npy_shape(join(dir, "projection.npy")), "(1, 100)"), "projection.npy");
    CHECK(!strcmp(npy_shape(join(dir, "latent.npy")), "(1, 100)"), "latent.npy");
    CHECK(loss_rows(join(dir, "loss.csv")) == 3, "loss.csv rows %d",
          loss_rows(join(dir, "loss.csv")));
    CHECK(strstr(err, "RMS error outside the mask"), "no error report: %s", err);
    /* --init skips the projection (and needs no VGG) */
    snprintf(
        args, sizeof args, "edit --model %s --target %s --scribble %s --init %s --steps 1 --out %s",
        shared_path(DCGAN), shared_path("data/sketches/target_0.png"),
        shared_path("data/sketches/sketch_3.png"), join(dir, "projection.npy"), join(dir, "again"));
    char cmd[16500];
    snprintf(cmd, sizeof cmd, "%s", args);
    setenv("GANEDIT_VGG", "/nonexistent/vgg.pth", 1);
    int rc = ganedit_run(cmd, err, sizeof err);
    unsetenv("GANEDIT_VGG");
    CHECK(rc == 0, "edit --init failed: %s", err);
    CHECK(has_outputs(join(dir, "again"), why, sizeof why), "%s", why);
    CHECK(!file_exists(join(join(dir, "again"), "projection.png")),
          "projected although --init was given");
}

/* Reads frame i of a GIF as (3, h, w) in [-1, 1]; NULL on failure. */
static float *gif_frame(const char *path, int i, int *n_frames, int *h, int *w) {
    int e = 0;
    GifFileType *g = DGifOpenFileName(path, &e);
    if (!g) return NULL;
    float *out = NULL;
    if (DGifSlurp(g) == GIF_OK && i < g->ImageCount) {
        SavedImage *si = &g->SavedImages[i];
        ColorMapObject *cm = si->ImageDesc.ColorMap ? si->ImageDesc.ColorMap : g->SColorMap;
        *n_frames = g->ImageCount;
        *h = si->ImageDesc.Height;
        *w = si->ImageDesc.Width;
        size_t hw = (size_t)*h * *w;
        out = cm ? malloc(sizeof(float) * 3 * hw) : NULL;
        for (size_t p = 0; out && p < hw; p++) {
            GifColorType c = cm->Colors[si->RasterBits[p] % cm->ColorCount];
            out[p] = c.Red / 127.5f - 1;
            out[hw + p] = c.Green / 127.5f - 1;
            out[2 * hw + p] = c.Blue / 127.5f - 1;
        }
    }
    DGifCloseFile(g, &e);
    return out;
}

/* Mean |a - b| in 1/255 steps. */
static double mean_diff255(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += fabs((double)a[i] - b[i]);
    return s / n * 127.5;
}

/* The GIF's first and last frames against frame_000.png and the last
 * frame PNG: within the palette's error (mean < 12/255), and (if
 * distinct) nearer to their own frame than to the other end's. */
static int gif_ends_match(const char *dir, int distinct, char *why, size_t cap) {
    int nf = 0, h = 0, w = 0, c, last;
    float *g0 = gif_frame(join(dir, "interpolation.gif"), 0, &nf, &h, &w);
    last = nf - 1;
    float *gl = nf > 1 ? gif_frame(join(dir, "interpolation.gif"), last, &nf, &h, &w) : NULL;
    char name[32];
    snprintf(name, sizeof name, "frame_%03d.png", last);
    float *p0 = NULL, *pl = NULL;
    ge_image_read(join(dir, "frame_000.png"), &p0, &c, &h, &w);
    ge_image_read(join(dir, name), &pl, &c, &h, &w);
    size_t n = (size_t)3 * h * w;
    int ok = g0 && gl && p0 && pl;
    if (!ok) snprintf(why, cap, "GIF or frames unreadable (%d GIF frames)", nf);
    double d00 = ok ? mean_diff255(g0, p0, n) : 0, dll = ok ? mean_diff255(gl, pl, n) : 0;
    double d0l = ok ? mean_diff255(g0, pl, n) : 0, dl0 = ok ? mean_diff255(gl, p0, n) : 0;
    if (ok && !(d00 < 12 && dll < 12))
        ok = 0,
        snprintf(why, cap, "GIF end frames differ from the PNGs by %.2f, %.2f /255", d00, dll);
    if (ok && distinct && !(d0l > 2 * d00 && dl0 > 2 * dll))
        ok = 0, snprintf(why, cap, "GIF end frames no nearer their own PNG: %.2f %.2f vs %.2f %.2f",
                         d00, dll, d0l, dl0);
    free(g0);
    free(gl);
    free(p0);
    free(pl);
    return ok;
}

TEST(cliedit_interpolate_photos) {
    char err[8192], args[16384];
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", join(tmpdir_new(), "i"));
    snprintf(args, sizeof args,
             "interpolate --model %s --vgg %s --from %s --to %s --steps 2 --lr 0.2 --frames 5 "
             "--quiet --out %s",
             shared_path(DCGAN), shared_path(VGG), shared_path("data/sketches/target_0.png"),
             shared_path("data/sketches/target_4.png"), dir);
    CHECK(ganedit_run(args, err, sizeof err) == 0, "interpolate failed: %s", err);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "frame_%03d.png", i);
        CHECK(file_exists(join(dir, name)), "%s missing", name);
    }
    CHECK(!file_exists(join(dir, "frame_005.png")), "too many frames");
    const char *need[] = {"interpolation.gif", "result.png",    "target.png",    "report.html",
                          "from/result.png",   "to/result.png", "from/loss.csv", "to/latent.npy"};
    for (int i = 0; i < 8; i++)
        CHECK(file_exists(join(dir, need[i])), "%s missing", need[i]);
    CHECK(!strcmp(npy_shape(join(dir, "latent.npy")), "(5, 100)"), "latent.npy %s",
          npy_shape(join(dir, "latent.npy")));
    /* the end frames are the two projections */
    CHECK(png_diff(join(dir, "frame_000.png"), join(dir, "from/result.png")) == 0,
          "first frame is not from/result.png (%d)",
          png_diff(join(dir, "frame_000.png"), join(dir, "from/result.png")));
    CHECK(png_diff(join(dir, "frame_004.png"), join(dir, "to/result.png")) == 0,
          "last frame is not to/result.png (%d)",
          png_diff(join(dir, "frame_004.png"), join(dir, "to/result.png")));
    /* and so are the GIF's first and last frames, up to the 256-colour palette */
    char why[256];
    CHECK(gif_ends_match(dir, 0, why, sizeof why), "%s", why);
}

TEST(cliedit_interpolate_latents) {
    char err[8192], args[16384];
    inputs in;
    CHECK(make_inputs(&in), "inputs: %s", ge_errmsg());
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", join(tmpdir_new(), "i"));
    snprintf(args, sizeof args, "interpolate --model %s --from %s --to %s --frames 3 --out %s",
             shared_path(DCGAN), in.z, in.z2, dir);
    setenv("GANEDIT_VGG", "/nonexistent/vgg.pth", 1); /* no projection, so no VGG needed */
    int rc = ganedit_run(args, err, sizeof err);
    unsetenv("GANEDIT_VGG");
    CHECK(rc == 0, "interpolate failed: %s", err);
    CHECK(!strcmp(npy_shape(join(dir, "latent.npy")), "(3, 100)"), "latent.npy %s",
          npy_shape(join(dir, "latent.npy")));
    CHECK(file_exists(join(dir, "frame_002.png")) && file_exists(join(dir, "interpolation.gif")) &&
              file_exists(join(dir, "report.html")),
          "frames, GIF or report missing");
    CHECK(!file_exists(join(dir, "from")), "no projection, so no from/ folder");
    /* frame 0 is G(z) */
    char png[4400];
    snprintf(png, sizeof png, "%s/g.png", tmpdir_new());
    snprintf(args, sizeof args, "sample --model %s --latent-in %s --out %s", shared_path(DCGAN),
             in.z, png);
    CHECK(ganedit_run(args, err, sizeof err) == 0, "sample: %s", err);
    CHECK(png_diff(png, join(dir, "frame_000.png")) == 0, "frame 0 is not G(from)");
    char why[256];
    CHECK(gif_ends_match(dir, 1, why, sizeof why), "%s", why);
}

/* ---- bad input: the table of docs/bad-input.md -------------------------------- */

typedef struct {
    const char *args; /* {M} model, {V} vgg, {O} out, {P} photo, {S} scribble, {D} inputs dir */
    int status;
    const char *says; /* a piece of the message */
} bad_case;

/* Runs each case; the message must be one line holding `says`, the status
 * as given, and the out folder must not exist afterwards. */
static int run_cases(const char *model, const bad_case *cs, int n, const inputs *in) {
    char err[8192], args[16384];
    static char m[4400], v[4400], o[4400], ph[4400],
        sc[4400]; /* copies: the path helpers reuse buffers */
    snprintf(m, sizeof m, "%s", model);
    snprintf(v, sizeof v, "%s", shared_path(VGG));
    snprintf(ph, sizeof ph, "%s", shared_path("data/sketches/target_0.png"));
    snprintf(sc, sizeof sc, "%s", shared_path("data/sketches/sketch_2.png"));
    int ok = 1;
    for (int i = 0; i < n; i++) {
        const char *out = o;
        snprintf(o, sizeof o, "%s", join(tmpdir_new(), "out"));
        const char *subst[6][2] = {{"{M}", m},  {"{V}", v},  {"{O}", o},
                                   {"{P}", ph}, {"{S}", sc}, {"{D}", in->dir}};
        size_t n_out = 0;
        for (const char *t = cs[i].args; *t && n_out + 1 < sizeof args;) {
            int k;
            for (k = 0; k < 6 && strncmp(t, subst[k][0], 3); k++) {
            }
            if (k < 6) {
                n_out += (size_t)snprintf(args + n_out, sizeof args - n_out, "%s", subst[k][1]);
                t += 3;
            } else {
                args[n_out++] = *t++;
            }
        }
        args[n_out < sizeof args ? n_out : sizeof args - 1] = 0;
        int st = ganedit_run(args, err, sizeof err);
        int good =
            st == cs[i].status && strstr(err, cs[i].says) && count_lines(err) == 1 && !file_exists(out);
        if (getenv(
                "GANEDIT_TEST_SHOW")) /* for docs/bad-input.md: the case, the status, the message */
            printf("%s\t%d\t%s", cs[i].args, st, err);
        if (!good) {
            fprintf(stderr, "  case '%s': status %d (want %d), %d lines, out %s, message: %s\n",
                    cs[i].args, st, cs[i].status, count_lines(err),
                    file_exists(out) ? "exists" : "absent", err);
            ok = 0;
        }
    }
    return ok;
}

#define P_ "project --model {M} --vgg {V} --out {O} --steps 2 --quiet "
#define D_ "draw --model {M} --out {O} --steps 2 --quiet "
#define E_ "edit --model {M} --vgg {V} --out {O} --steps 2 --project-steps 2 --quiet "
#define I_ "interpolate --model {M} --vgg {V} --out {O} --steps 2 --quiet "

TEST(cliedit_bad_input_project) {
    inputs in;
    CHECK(make_inputs(&in), "inputs");
    const bad_case cs[] = {
        {P_ "--target {D}/missing.png", 1, "missing.png: cannot open"},
        {P_ "--target {D}/text.png", 1, "text.png"},
        {P_ "--target {P} --steps 0", 2, "--steps must be 1..1000000"},
        {P_ "--target {P} --steps abc", 2, "--steps needs an integer"},
        {P_ "--target {P} --layers conv1_1,conv9_9", 2, "unknown layer name 'conv9_9'"},
        {P_ "--target {P} --layers conv2_1,conv4_1", 2,
         "'conv4_1' is not in this VGG (it has conv1_1 .. conv3_1)"},
        {P_ "--target {P} --layers ,", 2, "no perceptual layers"},
        {P_ "--target {P} --init {D}/wrong.npy", 1, "expected one z latent of shape (1, 100)"},
        {P_ "--target {P} --init {D}/nan.npy", 1, "NaN or Inf"},
        {P_ "--target {P} --init {D}/none.npy", 1, "none.npy: cannot open"},
        {P_ "--target {P} --latent w", 2, "has only a z latent space"},
        {P_ "--target {P} --optimizer sgd", 2, "--optimizer must be adam or lbfgs"},
        {P_ "--target {P} --lr -1", 2, "--lr must be > 0"},
        {P_ "--target {P} --pixel 0 --perceptual 0", 2, "nothing to optimise"},
        {P_ "--target {P} --restarts 0", 2, "--restarts must be 1..256"},
        {P_ "--target {P} --vgg {D}/novgg.pth", 1, "novgg.pth: VGG-19 weights not found"},
        {"project --model {D}/nomodel.pkl --out {O} --target {P}", 1, "nomodel.pkl: cannot open"},
        {"project --model {M} --vgg {V} --out {O}", 2, "--target is required"},
        {"project --model {M} --vgg {V} --target {P}", 2, "--out is required"},
        {P_ "--target {P} --out {D}/plain", 1, "exists and is not a folder"},
        {P_ "--target {P} --out {D}/no/such/dir", 1, "cannot create the folder"},
    };
    CHECK(run_cases(shared_path(DCGAN), cs, sizeof cs / sizeof cs[0], &in), "see above");
}

TEST(cliedit_bad_input_draw) {
    inputs in;
    CHECK(make_inputs(&in), "inputs");
    const bad_case cs[] = {
        {D_ "--scribble {P}", 2, "has no alpha channel; give the mask with --mask"},
        {D_ "--scribble {S} --mask {D}/rgb32.png", 2, "is 32x32 but the scribble"},
        {D_ "--scribble {D}/alpha0.png", 2, "the mask is empty"},
        {D_ "--scribble {D}/missing.png", 1, "missing.png: cannot open"},
        {D_ "--scribble {S} --mask {D}/missing.png", 1, "missing.png: cannot open"},
        {D_ "--scribble {S} --init {D}/wrong.npy", 1, "expected one z latent"},
        {D_ "--scribble {S} --steps 0", 2, "--steps must be"},
        {D_ "--scribble {S} --perceptual 1 --layers relu3_2", 2, "'relu3_2' is not in this VGG"},
        {D_ "--scribble {S} --style 1 --style-layers conv1_1,bogus", 2,
         "unknown layer name 'bogus'"},
        {"draw --model {M} --out {O}", 2, "--scribble is required"},
    };
    CHECK(run_cases(shared_path(DCGAN), cs, sizeof cs / sizeof cs[0], &in), "see above");
}

TEST(cliedit_bad_input_edit) {
    inputs in;
    CHECK(make_inputs(&in), "inputs");
    const bad_case cs[] = {
        {E_ "--target {P}", 2, "--scribble is required"},
        {E_ "--scribble {S}", 2, "--target is required"},
        {E_ "--target {P} --scribble {S} --keep 2", 2, "--keep must be in [0, 1]"},
        {E_ "--target {P} --scribble {S} --project-steps 0", 2, "--project-steps must be"},
        {E_ "--target {P} --scribble {S} --mask {D}/rgb32.png", 2,
         "the mask must have the scribble's size"},
        {E_ "--target {P} --scribble {P}", 2, "has no alpha channel"},
        {E_ "--target {D}/missing.jpg --scribble {S}", 1, "missing.jpg: cannot open"},
        {E_ "--target {P} --scribble {S} --layers conv5_1", 2, "'conv5_1' is not in this VGG"},
        {E_ "--target {P} --scribble {S} --init {D}/wplus.npy", 1, "expected one z latent"},
    };
    CHECK(run_cases(shared_path(DCGAN), cs, sizeof cs / sizeof cs[0], &in), "see above");
}

TEST(cliedit_bad_input_interpolate) {
    inputs in;
    CHECK(make_inputs(&in), "inputs");
    const bad_case cs[] = {
        {I_ "--from {D}/z.npy", 2, "--from and --to are required"},
        {I_ "--from {D}/z.npy --to {D}/z2.npy --frames 1", 2, "--frames must be 2..1000"},
        {I_ "--from {D}/none.npy --to {D}/z2.npy", 1, "none.npy: cannot open"},
        {I_ "--from {D}/z.npy --to {D}/wrong.npy", 1, "expected one z latent of shape (1, 100)"},
        {I_ "--from {D}/z.npy --to {D}/nan.npy", 1, "NaN or Inf"},
        {I_ "--from {P} --to {D}/missing.png", 1, "missing.png: cannot open"},
        {I_ "--from {P} --to {D}/z2.npy --layers conv1_1,convX", 2, "unknown layer name 'convX'"},
        {I_ "--from {D}/z.npy --to {D}/z2.npy --latent w+", 2, "has only a z latent space"},
    };
    CHECK(run_cases(shared_path(DCGAN), cs, sizeof cs / sizeof cs[0], &in), "see above");
}

TEST(cliedit_bad_input_info_sample_distance) {
    inputs in;
    CHECK(make_inputs(&in), "inputs");
    /* out ({O}) doubles as sample's output file */
    const bad_case cs[] = {
        {"info", 2, "expected MODEL"},
        {"info {D}/none.pkl", 1, "none.pkl: cannot open"},
        {"info {P}", 1, "unknown format"},
        {"sample --model {M} --n 0 --out {O}", 2, "--n must be 1..1024"},
        {"sample --model {M} --truncation 9 --out {O}", 2, "--truncation must be in [-4, 4]"},
        {"sample --model {M} --latent w --out {O}", 2, "has only a z space"},
        {"sample --model {M} --noise loud --out {O}", 2, "--noise must be const, random or none"},
        {"sample --model {M} --latent-in {D}/wrong.npy --out {O}", 1,
         "expected z latents of shape (N, 100)"},
        {"sample --model {M} --latent-in {D}/nan.npy --out {O}", 1, "NaN or Inf"},
        {"sample --model {V} --out {O}", 1, "vgg19"},
        {"distance --vgg {V} {P}", 2, "expected A.png B.png"},
        {"distance --vgg {V} {P} {D}/missing.png", 1, "missing.png: cannot open"},
        {"distance --vgg {V} {P} {D}/grey.png", 1, "both images must be colour"},
        {"distance --vgg {V} --layers conv4_1 {P} {S}", 2, "'conv4_1' is not in this network"},
        {"distance --vgg {D}/none.pth {P} {S}", 1, "none.pth: VGG-19 weights not found"},
    };
    CHECK(run_cases(shared_path(DCGAN), cs, sizeof cs / sizeof cs[0], &in), "see above");
}

TEST(cliedit_bad_input_train) {
    inputs in;
    CHECK(make_inputs(&in), "inputs");
    const bad_case cs[] = {
        {"train --out {O}", 2, "--data is required"},
        {"train --data {D}", 2, "--out is required"},
        {"train --data {D} --out {O} --kimg 0", 2, "--kimg must be in (0, 1e6]"},
        {"train --data {D} --out {O} --batch 0", 2, "--batch must be 1..1024"},
        {"train --data {D} --out {O} --arch stylegan3", 2, "--arch must be dcgan-vanilla"},
        {"train --data {D} --out {O} --resume {M} --init-from {M}", 2,
         "--resume and --init-from exclude each other"},
        {"train --data {D} --out {O} --resume {D}/none.safetensors", 1, "none.safetensors: cannot open"},
        {"train --data {D} --out {O} --resume {M}", 1, "not a ganedit training checkpoint"},
        {"train --arch stylegan2 --data {D} --out {O} --init-from {M}", 1,
         "not a ganedit training checkpoint"},
        {"train --data {D}/none --out {O}", 1, "none: cannot open the image folder"},
        {"train --data {D} --out {O}", 1, "text.png"},
        {"train --fd-of {M} --data {D}/none", 1, "none: cannot open the image folder"},
    };
    CHECK(run_cases(shared_path(DCGAN), cs, sizeof cs / sizeof cs[0], &in), "see above");
}

/* An existing, empty output folder stays empty after bad input. */
TEST(cliedit_bad_input_keeps_folder_empty) {
    char err[8192], args[16384];
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", tmpdir_new());
    snprintf(args, sizeof args,
             "project --model %s --vgg %s --target %s --layers conv3_1,conv3_2 --out %s",
             shared_path(DCGAN), shared_path(VGG), shared_path("data/sketches/target_0.png"), dir);
    CHECK(ganedit_run(args, err, sizeof err) == 2 && count_lines(err) == 1, "status or message: %s", err);
    CHECK(count_entries(dir) == 0, "%d files written", count_entries(dir));
}

/* ---- Ctrl-C and SIGTERM ---------------------------------------------------------- */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Starts `ganedit argv...` with stderr into errfile; returns the pid. */
static pid_t spawn(char *const argv[], const char *errfile) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_WRONLY);
        if (fd < 0 || nul < 0) _exit(127);
        dup2(fd, 2);
        dup2(nul, 1);
        execv(ganedit_bin(), argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to `secs` for pid; returns the wait status, or -1 on timeout (the
 * child is then killed). */
static int wait_for(pid_t pid, double secs) {
    double t0 = now();
    int st;
    while (now() - t0 < secs) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* Waits until the file holds `needle` (up to secs). */
static int wait_text(const char *path, const char *needle, double secs) {
    double t0 = now();
    while (now() - t0 < secs) {
        char *s = read_text(path);
        int found = s && strstr(s, needle);
        free(s);
        if (found) return 1;
        usleep(10000);
    }
    return 0;
}

/* Interrupts a long run with sig once it is stepping; checks the exit. */
static int interrupt_run(char *const argv[], const char *dir, int sig, char *why, size_t cap) {
    char errfile[4400];
    snprintf(errfile, sizeof errfile, "%s/stderr", tmpdir_new());
    pid_t pid = spawn(argv, errfile);
    if (pid < 0) return snprintf(why, cap, "fork failed"), 0;
    if (!wait_text(errfile, "step 1/", 30)) {
        wait_for(pid, 0);
        char *e = read_text(errfile);
        snprintf(why, cap, "never started stepping: %s", e ? e : "");
        free(e);
        return 0;
    }
    usleep(200000);
    double t0 = now();
    kill(pid, sig);
    int st = wait_for(pid, 10);
    double took = now() - t0;
    char *e = read_text(errfile);
    int steps = -1;
    const char *at = e ? strstr(e, "stopped at step ") : NULL;
    if (at) steps = atoi(at + strlen("stopped at step "));
    if (e && (!WIFEXITED(st) || WEXITSTATUS(st) != 128 + sig))
        fprintf(stderr, "  its stderr: %s\n", e);
    free(e);
    if (st == -1) return snprintf(why, cap, "did not exit within 10 s of the signal"), 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 128 + sig)
        return snprintf(why, cap, "exit status %d, signal %d (want status %d)",
                        WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0,
                        128 + sig),
               0;
    if (took > 1.0) return snprintf(why, cap, "took %.2f s to stop", took), 0;
    if (steps < 1) return snprintf(why, cap, "no 'stopped at step N' message"), 0;
    char whyo[128];
    if (!has_outputs(dir, whyo, sizeof whyo)) return snprintf(why, cap, "%s", whyo), 0;
    int rows = loss_rows(join(dir, "loss.csv"));
    if (rows != steps + 1)
        return snprintf(why, cap, "loss.csv has %d rows after %d steps", rows, steps), 0;
    if (any_named(dir, ".tmp.")) return snprintf(why, cap, "a temporary file was left"), 0;
    return 1;
}

TEST(cliedit_sigint_project) {
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", join(tmpdir_new(), "p"));
    char *argv[] = {(char *)ganedit_bin(), "project",
                    "--model",     (char *)shared_path(DCGAN),
                    "--vgg",       (char *)shared_path(VGG),
                    "--target",    (char *)shared_path("data/sketches/target_0.png"),
                    "--steps",     "100000",
                    "--out",       (char *)dir,
                    NULL};
    char why[512];
    CHECK(interrupt_run(argv, dir, SIGINT, why, sizeof why), "SIGINT: %s", why);
}

TEST(cliedit_sigterm_draw) {
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", join(tmpdir_new(), "d"));
    char *argv[] = {(char *)ganedit_bin(), "draw",
                    "--model",     (char *)shared_path(DCGAN),
                    "--scribble",  (char *)shared_path("data/sketches/sketch_5.png"),
                    "--steps",     "1000000",
                    "--out",       (char *)dir,
                    NULL};
    char why[512];
    CHECK(interrupt_run(argv, dir, SIGTERM, why, sizeof why), "SIGTERM: %s", why);
}

/* ---- a full disk ---------------------------------------------------------------- */

/* Runs argv with files limited to limit bytes; returns the exit status,
 * stderr in err. SIGXFSZ keeps its default action (ending the program): the
 * editing commands ignore it themselves, so that the write fails with EFBIG
 * and is reported. */
static int run_limited(char *const argv[], long limit, char *err, size_t cap) {
    char errfile[4400];
    snprintf(errfile, sizeof errfile, "%s/stderr", tmpdir_new());
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_WRONLY);
        if (fd < 0 || nul < 0) _exit(127);
        dup2(fd, 2);
        dup2(nul, 1);
        signal(SIGXFSZ, SIG_DFL);
        struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(126);
        execv(ganedit_bin(), argv);
        _exit(127);
    }
    int st = wait_for(pid, 60);
    char *e = read_text(errfile);
    snprintf(err, cap, "%s", e ? e : "");
    free(e);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(cliedit_disk_full_keeps_previous) {
    char err[8192];
    char dir[4400];
    snprintf(dir, sizeof dir, "%s", tmpdir_new());
    const char *old = "previous contents\n";
    CHECK(write_bytes(join(dir, "result.png"), old) && write_bytes(join(dir, "report.html"), old),
          "setup");
    /* 1: result.png (about 7.5 KB) is over a 6000-byte limit: the first write fails */
    char *argv[] = {(char *)ganedit_bin(),  "project",
                    "--model",      (char *)shared_path(DCGAN),
                    "--pixel",      "1",
                    "--perceptual", "0",
                    "--target",     (char *)shared_path("data/sketches/target_0.png"),
                    "--steps",      "1",
                    "--quiet",      "--out",
                    (char *)dir,    NULL,
                    NULL,           NULL};
    int st = run_limited(argv, 6000, err, sizeof err);
    CHECK(st == 1 && strstr(err, "result.png") && strstr(err, "File too large") &&
              count_lines(err) == 1,
          "status %d, message: %s", st, err);
    char *r = read_text(join(dir, "result.png"));
    int kept = r && !strcmp(r, old);
    free(r);
    CHECK(kept, "the previous result.png was damaged");
    CHECK(!any_named(dir, ".tmp."), "a temporary file was left");
    CHECK(!file_exists(join(dir, "loss.csv")), "went on writing after a failure");
    /* 2: a long command line makes report.html (written last, by the CLI's own
       text writer) the only file over the limit */
    static char big[16000];
    memset(big, 0, sizeof big);
    for (int i = 0; i < 1400; i++)
        strcat(big, "conv1_1,");
    strcat(big, "conv1_1");
    argv[15] = "--style-layers";
    argv[16] = big; /* echoed in the report; unused with --style 0 */
    st = run_limited(argv, 12000, err, sizeof err);
    CHECK(st == 1 && strstr(err, "report.html: cannot write: File too large") &&
              count_lines(err) == 1,
          "status %d, message: %s", st, err);
    r = read_text(join(dir, "report.html"));
    kept = r && !strcmp(r, old);
    free(r);
    CHECK(kept, "the previous report.html was damaged");
    CHECK(loss_rows(join(dir, "loss.csv")) == 2,
          "loss.csv (written before the report) is incomplete");
    CHECK(!any_named(dir, ".tmp."), "a temporary file was left");
}

/* ---- NaN ---------------------------------------------------------------------- */

/* The reference StyleGAN2 with one style bias set to 3e38: finite (the
 * loader refuses NaN and Inf in weights), but the modulated weights overflow
 * to Inf, the demodulation makes Inf / Inf = NaN, and every image is NaN.
 * (The DCGAN cannot be made to do this with finite weights: instance norm,
 * ReLU and tanh absorb any overflow.) */
static int make_nan_model(const char *path) {
    ge_tensors *t;
    if (ge_tensors_load(&t, shared_path(SG2)) != GE_OK) return 0;
    int n = ge_tensors_count(t);
    ge_tensor *copy = calloc((size_t)n, sizeof *copy);
    int ok = copy != NULL;
    for (int i = 0; i < n && ok; i++) {
        copy[i] = *ge_tensors_at(t, i);
        copy[i].data = malloc(sizeof(float) * copy[i].numel);
        ok = copy[i].data != NULL;
        if (ok) memcpy(copy[i].data, ge_tensors_at(t, i)->data, sizeof(float) * copy[i].numel);
        if (ok && !strcmp(copy[i].name, "synthesis.b4.conv1.affine.bias"))
            for (size_t j = 0; j < copy[i].numel; j++)
                copy[i].data[j] = 3e38f;
    }
    ok = ok && ge_safetensors_save(path, copy, n, ge_tensors_metadata(t)) == GE_OK;
    for (int i = 0; copy && i < n; i++)
        free(copy[i].data);
    free(copy);
    ge_tensors_free(t);
    return ok;
}

TEST(cliedit_nan_generator) {
    char err[8192], args[16384], model[4400];
    inputs in;
    CHECK(make_inputs(&in), "inputs");
    snprintf(model, sizeof model, "%s/nan_stylegan2.safetensors", in.dir);
    CHECK(make_nan_model(model), "writing the NaN model: %s", ge_errmsg());
    const bad_case cs[] = {
        {"project --model {M} --vgg {V} --target {D}/rgb32.png --steps 2 --quiet --out {O}", 1,
         "at the start: the generator's image holds NaN or Inf"},
        {"draw --model {M} --scribble {D}/rgba32.png --steps 2 --quiet --out {O}", 1, "NaN or Inf"},
        {"edit --model {M} --vgg {V} --target {D}/rgb32.png --scribble {D}/rgba32.png --steps 2 "
         "--project-steps 2 --quiet --out {O}",
         1, "NaN or Inf"},
        {"interpolate --model {M} --from {D}/wplus.npy --to {D}/wplus2.npy --out {O}", 1,
         "the generator produced NaN or Inf"},
        {"sample --model {M} --out {O}", 1, "the generator produced NaN or Inf"},
    };
    CHECK(run_cases(model, cs, sizeof cs / sizeof cs[0], &in), "see above");
    (void)args;
    (void)err;
}
