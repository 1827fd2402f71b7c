/* test_batch.c - projecting many images (ge_edit_run_many and `ganedit
 * project --targets`): an image projected inside a batch of several images
 * (each with 2 restarts) ends on the same latent bytes, history and best
 * restart as when projected alone with the same seed, on the real DCGAN + VGG
 * and on the 64x64 StyleGAN2 (random weights) in w+; the batch refuses what
 * it cannot do (L-BFGS, a non-finite target); and the command's manifest:
 * every image gets one row, an unreadable image fails alone, a re-run skips
 * finished images and redoes failed and incomplete ones, and --batch 3
 * gives the same latent files as --batch 1.
 *
 * The comparison is exact (memcmp), not within a tolerance: Adam updates each
 * coordinate on its own, each target's VGG features come from a batch-1
 * pass, and the networks' batched kernels compute each sample the same way
 * whatever the batch size. Should a kernel change make per-sample arithmetic
 * depend on the batch, this test says so rather than hiding it. */
#include "ganedit.h"
#include "harness.h"

#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DCGAN "weights/dcgan_grumpy_deluxe.safetensors"
#define VGG "weights/vgg19_normalised_conv3_1.safetensors"
#define SG2 "ref/stylegan2_g2.safetensors"

/* n grumpy photos (first, first+1, ...) as (n, 3, R, R), R = 64. */
static float *load_targets(int first, int n) {
    float *t = malloc(sizeof(float) * (size_t)n * 3 * 64 * 64);
    for (int i = 0; i < n; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "data/grumpy64/grumpy/%d.png", first + i);
        float *img = NULL;
        int c, h, w;
        if (ge_image_read(shared_path(rel), &img, &c, &h, &w) != GE_OK || c != 3 || h != 64 ||
            w != 64) {
            free(img);
            free(t);
            return NULL;
        }
        memcpy(t + (size_t)i * 3 * 64 * 64, img, sizeof(float) * 3 * 64 * 64);
        free(img);
    }
    return t;
}

/* Runs n targets in one batch and each alone; 1 if every result matches. */
static int batch_matches_single(ge_generator *g, ge_vgg *vgg, const ge_edit_params *p0,
                                const float *targets, int n) {
    uint64_t seeds[4] = {11, 977, 5, 123456789};
    ge_edit_result many[4], one;
    ge_edit_params p = *p0;
    if (ge_edit_run_many(g, vgg, n, targets, NULL, seeds, &p, many) != GE_OK) {
        fprintf(stderr, "  run_many: %s\n", ge_errmsg());
        return 0;
    }
    int ok = 1;
    size_t img1 = (size_t)3 * 64 * 64;
    for (int m = 0; m < n && ok; m++) {
        p.seed = seeds[m];
        if (ge_edit_run(g, vgg, targets + m * img1, NULL, &p, &one) != GE_OK) {
            fprintf(stderr, "  run %d: %s\n", m, ge_errmsg());
            ok = 0;
            break;
        }
        size_t L = one.latent_size;
        if (many[m].latent_size != L || memcmp(many[m].latent, one.latent, L * sizeof(float)) ||
            memcmp(many[m].image, one.image, img1 * sizeof(float)) ||
            memcmp(many[m].history, one.history,
                   (size_t)(one.steps_done + 1) * GE_N_TERMS * sizeof(double)) ||
            many[m].best_restart != one.best_restart || many[m].best_step != one.best_step ||
            memcmp(many[m].restart_loss, one.restart_loss, sizeof(double) * p.restarts)) {
            double d = 0;
            for (size_t i = 0; i < L && many[m].latent_size == L; i++)
                d = fmax(d, fabs((double)many[m].latent[i] - one.latent[i]));
            fprintf(stderr, "  image %d: batch differs from single (max latent diff %.3g)\n", m, d);
            ok = 0;
        }
        /* different seeds must give different starts: the comparison can fail */
        if (m > 0 && !memcmp(many[m].latent, many[0].latent, L * sizeof(float))) ok = 0;
        ge_edit_result_free(&one);
    }
    for (int m = 0; m < n; m++)
        ge_edit_result_free(&many[m]);
    return ok;
}

TEST(batch_dcgan_same_as_single) {
    ge_generator *g = NULL;
    ge_vgg *vgg = NULL;
    float *t = load_targets(0, 3);
    CHECK(ge_set_precision(GE_PRECISION_FP32) == GE_OK, "fp32");
    CHECK(t && ge_generator_load(&g, shared_path(DCGAN), NULL) == GE_OK &&
              ge_vgg_load(&vgg, shared_path(VGG)) == GE_OK,
          "load: %s", ge_errmsg());
    ge_edit_params p;
    ge_edit_params_init(&p, g);
    p.steps = 4;
    p.restarts = 2;
    p.init_samples = 3;
    p.history_every = 2;
    CHECK(batch_matches_single(g, vgg, &p, t, 3), "DCGAN batch of 3 x 2 restarts == single runs");
    ge_vgg_free(vgg);
    ge_generator_free(g);
    free(t);
}

TEST(batch_sg2_same_as_single) {
    ge_generator *g = NULL;
    ge_vgg *vgg = NULL;
    float *t = load_targets(5, 2);
    CHECK(ge_set_precision(GE_PRECISION_FP32) == GE_OK, "fp32");
    CHECK(t && ge_generator_load(&g, shared_path(SG2), NULL) == GE_OK &&
              ge_vgg_load(&vgg, shared_path(VGG)) == GE_OK,
          "load: %s", ge_errmsg());
    CHECK(ge_generator_info(g)->resolution == 64, "the 64x64 StyleGAN2");
    ge_edit_params p;
    ge_edit_params_init(&p, g);
    p.space = GE_LATENT_WPLUS;
    p.steps = 2;
    p.restarts = 2;
    p.init_samples = 2;
    p.layers = "conv1_1,conv2_1";
    CHECK(batch_matches_single(g, vgg, &p, t, 2), "StyleGAN2 w+ batch of 2 x 2 == single runs");
    ge_vgg_free(vgg);
    ge_generator_free(g);
    free(t);
}

TEST(batch_refusals) {
    ge_generator *g = NULL;
    float *t = load_targets(0, 2);
    CHECK(t && ge_generator_load(&g, shared_path(DCGAN), NULL) == GE_OK, "load: %s", ge_errmsg());
    ge_edit_params p;
    ge_edit_params_init(&p, g);
    p.steps = 1;
    p.w_perceptual = 0;
    uint64_t seeds[2] = {1, 2};
    ge_edit_result r[2];
    CHECK(ge_edit_run_many(g, NULL, 0, t, NULL, seeds, &p, r) == GE_ERR_ARG, "0 images");
    p.optimizer = GE_OPT_LBFGS;
    CHECK(ge_edit_run_many(g, NULL, 2, t, NULL, seeds, &p, r) == GE_ERR_ARG, "L-BFGS batch");
    CHECK(strstr(ge_errmsg(), "L-BFGS"), "message names L-BFGS: %s", ge_errmsg());
    p.optimizer = GE_OPT_ADAM;
    t[3 * 64 * 64 + 7] = NAN; /* image 1 */
    CHECK(ge_edit_run_many(g, NULL, 2, t, NULL, seeds, &p, r) == GE_ERR_NUMERIC, "NaN target");
    CHECK(strstr(ge_errmsg(), "target image 1"), "names the image: %s", ge_errmsg());
    CHECK(r[0].latent == NULL && r[1].latent == NULL, "no results after a refusal");
    ge_generator_free(g);
    free(t);
}

/* ---- the command ------------------------------------------------------------ */

/* Runs `ganedit project` with the batch options and extra; stderr into err. */
static int project(const char *targets, const char *out, const char *extra, char *err, size_t cap) {
    static char cmd[16384];
    char errfile[4200];
    snprintf(errfile, sizeof errfile, "%s/stderr", tmpdir_new());
    snprintf(cmd, sizeof cmd,
             "%s project --model %s --vgg %s --targets %s --out %s --steps 3 --init-samples 2 "
             "--quiet %s >/dev/null 2>%s",
             ganedit_bin(), shared_path(DCGAN), shared_path(VGG), targets, out, extra, errfile);
    int st = system(cmd);
    FILE *f = fopen(errfile, "r");
    size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    err[n] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *join(const char *dir, const char *name) {
    static char buf[4400];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 20);
    size_t n = fread(b, 1, (1 << 20) - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

static int copy_file(const char *from, const char *to) {
    char *b = NULL;
    FILE *f = fopen(from, "rb"), *o = fopen(to, "wb");
    int ok = f && o;
    if (ok) {
        b = malloc(1 << 20);
        size_t n;
        while ((n = fread(b, 1, 1 << 20, f)) > 0)
            ok &= fwrite(b, 1, n, o) == n;
    }
    free(b);
    if (f) fclose(f);
    if (o) fclose(o);
    return ok;
}

/* Rows of the manifest whose folder field is "name" with status st. */
static int rows_with(const char *manifest, const char *name, const char *st) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\",%s,", name, st);
    int n = 0;
    for (const char *p = manifest; (p = strstr(p, pat)); p++)
        n++;
    return n;
}

static int count_rows(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n - 1; /* the header */
}

static int same_file(const char *a, const char *b) {
    char *x = slurp(a), *y = slurp(b);
    struct stat sa, sb;
    int ok = x && y && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_size == sb.st_size &&
             !memcmp(x, y, (size_t)sa.st_size);
    free(x);
    free(y);
    return ok;
}

TEST(batch_cli_manifest_skip_redo) {
    const char *dir = tmpdir_new();
    char in[4200], out[4200], out1[4200], p[4400], q[4400], err[8192];
    snprintf(in, sizeof in, "%s/in", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(out1, sizeof out1, "%s/out1", dir);
    CHECK(mkdir(in, 0777) == 0, "mkdir");
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "data/grumpy64/grumpy/%d.png", 10 + i);
        snprintf(p, sizeof p, "%s/%s.png", in, names[i]);
        CHECK(copy_file(shared_path(rel), p), "copy %s", rel);
    }
    snprintf(p, sizeof p, "%s/bad.png", in);
    FILE *f = fopen(p, "wb");
    CHECK(f && fputs("not a png", f) >= 0 && fclose(f) == 0, "write bad.png");
    snprintf(p, sizeof p, "%s/notes.txt", in); /* not an image: ignored */
    f = fopen(p, "wb");
    CHECK(f && fclose(f) == 0, "write notes.txt");

    /* first run: the unreadable image fails alone */
    int rc = project(in, out, "--batch 3", err, sizeof err);
    CHECK(rc == 1, "exit 1 with a failed image (got %d): %s", rc, err);
    char *man = slurp(join(out, "manifest.csv"));
    CHECK(man, "manifest.csv written");
    CHECK(count_rows(man) == 4, "4 rows:\n%s", man);
    CHECK(rows_with(man, "a", "ok") == 1 && rows_with(man, "b", "ok") == 1 &&
              rows_with(man, "c", "ok") == 1 && rows_with(man, "bad", "failed") == 1,
          "a, b, c ok and bad failed:\n%s", man);
    free(man);
    snprintf(p, sizeof p, "%s/b/latent.npy", out);
    struct stat st0;
    CHECK(stat(p, &st0) == 0, "b/latent.npy");

    /* the same results one image per batch */
    rc = project(in, out1, "--batch 1", err, sizeof err);
    CHECK(rc == 1, "exit 1 again (got %d)", rc);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s/latent.npy", out, names[i]);
        snprintf(q, sizeof q, "%s/%s/latent.npy", out1, names[i]);
        CHECK(same_file(p, q), "%s: --batch 3 and --batch 1 give the same latent.npy", names[i]);
    }

    /* re-run after fixing bad.png and breaking c's folder: redo those two only */
    snprintf(p, sizeof p, "%s/bad.png", in);
    CHECK(copy_file(shared_path("data/grumpy64/grumpy/20.png"), p), "fix bad.png");
    snprintf(p, sizeof p, "%s/c/report.html", out);
    CHECK(unlink(p) == 0, "remove c/report.html (an interrupted write)");
    sleep(1); /* so a rewrite would show in the modification time */
    rc = project(in, out, "--batch 3", err, sizeof err);
    CHECK(rc == 0, "exit 0 (got %d): %s", rc, err);
    CHECK(strstr(err, "4 images, 2 done before, 2 to do"), "two skipped: %s", err);
    struct stat st1;
    snprintf(p, sizeof p, "%s/b/latent.npy", out);
    CHECK(stat(p, &st1) == 0 && st1.st_mtime == st0.st_mtime, "b was not redone");
    snprintf(p, sizeof p, "%s/c/report.html", out);
    CHECK(stat(p, &st1) == 0, "c redone");
    man = slurp(join(out, "manifest.csv"));
    CHECK(man && count_rows(man) == 4 && rows_with(man, "bad", "ok") == 1 &&
              rows_with(man, "c", "ok") == 1 && rows_with(man, "a", "ok") == 1,
          "all 4 ok, once each:\n%s", man ? man : "");
    free(man);

    /* a third run has nothing to do */
    rc = project(in, out, "--batch 3", err, sizeof err);
    CHECK(rc == 0 && strstr(err, "4 done before, 0 to do"), "nothing to do: %d %s", rc, err);
}
