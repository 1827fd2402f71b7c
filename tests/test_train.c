/* test_train.c - the trainer (src/train) and the networks it trains:
 * finite-difference checks of the discriminator's input and weight
 * gradients and of the DCGAN generators' weight gradients; DiffAugment's
 * backward as the exact transpose of its forward, and its transforms against
 * direct formulas; the Jacobi eigen-solver and FD-VGG against closed forms;
 * the image-folder loader; a tiny training run that learns a toy set; and a
 * resumed run that reproduces an uninterrupted one bit for bit. */
#include "ganedit.h"
#include "harness.h"
#include "io/io.h"
#include "test_io_util.h"
#include "train/train.h"
#include "train_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- gradient checks -------------------------------------------------------- */

typedef struct {
    ge_disc *d;
    const float *x; /* (n, 3, R, R) */
    const float *r; /* (n) */
    float *logits;
    int n;
} disc_ctx;

static double disc_loss(void *ctx, const float *unused) {
    (void)unused;
    disc_ctx *c = ctx;
    if (ge_disc_forward(c->d, c->logits, c->x, c->n) != GE_OK) return NAN;
    double s = 0;
    for (int i = 0; i < c->n; i++) s += (double)c->logits[i] * c->r[i];
    return s;
}

TEST(train_disc_gradcheck) {
    const int R = 16, n = 3;
    ge_rng rng;
    ge_rng_seed(&rng, 7);
    ge_tensors *w = NULL, *gw = NULL;
    ge_disc *d = NULL;
    ge_status s = ge_train_dcgan_d_init(&w, 4, R, &rng);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    s = ge_flat_like(&gw, w);
    if (s != GE_OK) ge_tensors_free(w);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    ge_tensors *wkeep = w; /* owned by d from here */
    s = ge_disc_create(&d, w, "test");
    if (s != GE_OK) ge_tensors_free(gw);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    size_t nx = (size_t)n * 3 * R * R;
    float *x = malloc(nx * sizeof *x), *dx = calloc(nx, sizeof *dx), r[3] = {0.7f, -1.3f, 0.4f},
          logits[3];
    ge_rng_fill_uniform(&rng, x, nx, -1.f, 1.f);
    /* the conv bias matters: make it non-zero */
    ge_tensors_at(wkeep, ge_tensors_count(wkeep) - 1)->data[0] = 0.3f;
    disc_ctx c = {d, x, r, logits, n};
    int ok = !isnan(disc_loss(&c, NULL)) &&
             ge_disc_backward(d, dx, gw, r) == GE_OK && ge_disc_resolution(d) == R;
    ok = ok && fd_check("disc dx", disc_loss, &c, x, dx, nx, 80, 1e-2f, 2e-3, 2e-2);
    for (int i = 0; ok && i < ge_tensors_count(wkeep); i++) {
        const ge_tensor *t = ge_tensors_at(wkeep, i);
        ok = fd_check(t->name, disc_loss, &c, t->data, ge_tensors_at(gw, i)->data, t->numel, 40,
                      1e-3f, 2e-3, 2e-2);
    }
    /* backward adds: a second call doubles the weight gradient */
    float before = ge_tensors_at(gw, 0)->data[5];
    if (ok) ok = disc_loss(&c, NULL) == disc_loss(&c, NULL) && ge_disc_backward(d, NULL, gw, r) == GE_OK;
    float after = ge_tensors_at(gw, 0)->data[5];
    free(x);
    free(dx);
    ge_tensors_free(gw);
    ge_disc_free(d);
    CHECK(ok, "discriminator gradients disagree with finite differences");
    CHECK(fabsf(after - 2 * before) <= 1e-5f * fabsf(before) + 1e-7f, "backward must add: %g %g",
          before, after);
}

typedef struct {
    ge_generator *g;
    const float *z, *r;
    float *img;
    int n;
    size_t nimg;
} gen_ctx;

static double gen_loss(void *ctx, const float *unused) {
    (void)unused;
    gen_ctx *c = ctx;
    if (ge_generator_forward(c->g, c->img, c->z, GE_LATENT_Z, c->n, NULL) != GE_OK) return NAN;
    double s = 0;
    for (size_t i = 0; i < c->nimg; i++) s += (double)c->img[i] * c->r[i];
    return s;
}

/* Weight gradients along random directions u: (L(w + e u) - L(w - e u)) / 2e
 * against <u, dL/dw>, per tensor. Directions and a small step (1e-4) keep
 * the ReLU kinks after instance norm out of the difference quotient: per
 * coordinate with larger steps they cross and spoil it (probed: the
 * quotient converges to the analytic value as the step shrinks, until
 * float32 rounding takes over). Layers before a ReLU get 5%, the last
 * layer, followed only by tanh, 0.2%. */
static void gen_gradcheck(int *test_failed_, int deluxe) {
    const int R = 16, n = 2, zd = 6;
    ge_rng rng;
    ge_rng_seed(&rng, 11 + deluxe);
    ge_tensors *w = NULL, *gw = NULL;
    ge_generator *g = NULL;
    ge_status s = ge_train_dcgan_g_init(&w, deluxe, zd, 4, R, &rng);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    s = ge_flat_like(&gw, w);
    if (s != GE_OK) ge_tensors_free(w);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    ge_tensors *wkeep = w;
    s = ge_train_generator_new(&g, w, "test");
    if (s != GE_OK) ge_tensors_free(gw);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    size_t nimg = (size_t)n * 3 * R * R, nw;
    float *flat = ge_flat_data(wkeep, &nw);
    float *z = malloc((size_t)n * zd * sizeof *z), *img = malloc(nimg * sizeof *img),
          *r = malloc(nimg * sizeof *r), *dz = calloc((size_t)n * zd, sizeof *dz),
          *dz2 = calloc((size_t)n * zd, sizeof *dz2), *keep = malloc(nw * sizeof *keep),
          *u = malloc(nw * sizeof *u);
    ge_rng_fill_normal(&rng, z, (size_t)n * zd);
    ge_rng_fill_normal(&rng, r, nimg);
    memcpy(keep, flat, nw * sizeof *keep);
    gen_ctx c = {g, z, r, img, n, nimg};
    const ge_gen_info *gi = ge_generator_info(g);
    int ok = gi->resolution == R && gi->z_dim == zd &&
             !strcmp(gi->arch, deluxe ? "dcgan-deluxe" : "dcgan-vanilla");
    ok = ok && !isnan(gen_loss(&c, NULL)) && ge_train_generator_backward(g, dz, r, gw) == GE_OK &&
         ge_generator_backward(g, dz2, r) == GE_OK;
    /* the weight-gradient path gives the same input gradient as the plain one */
    ok = ok && max_abs_diff(dz, dz2, (size_t)n * zd) <= 1e-6 * (max_abs(dz2, (size_t)n * zd) + 1e-6);
    const double eps = 1e-4;
    double worst = 0, worst_last = 0;
    char worst_name[64] = "";
    for (int i = 0; ok && i < ge_tensors_count(wkeep); i++) {
        const ge_tensor *t = ge_tensors_at(wkeep, i);
        const float *gt = ge_tensors_at(gw, i)->data;
        size_t off = (size_t)(t->data - flat);
        for (int trial = 0; trial < 3; trial++) {
            ge_rng_fill_normal(&rng, u, t->numel);
            double an = 0;
            for (size_t k = 0; k < t->numel; k++) an += (double)u[k] * gt[k];
            double f[2];
            for (int sg = 0; sg < 2; sg++) {
                for (size_t k = 0; k < t->numel; k++)
                    t->data[k] = keep[off + k] + (float)((sg ? -eps : eps) * u[k]);
                f[sg] = gen_loss(&c, NULL);
            }
            memcpy(t->data, keep + off, t->numel * sizeof(float));
            double fd = (f[0] - f[1]) / (2 * eps), e = fabs(fd - an) / (fabs(an) + 1e-3);
            /* the last layer is followed by tanh only: no kinks, a tight check */
            int last = i >= ge_tensors_count(wkeep) - (deluxe ? 2 : 1);
            if (last && !(e <= worst_last)) worst_last = e;
            if (!(e <= worst)) {
                worst = e;
                snprintf(worst_name, sizeof worst_name, "%s", t->name);
            }
        }
    }
    free(z);
    free(img);
    free(r);
    free(dz);
    free(dz2);
    free(keep);
    free(u);
    ge_tensors_free(gw);
    ge_generator_free(g);
    CHECK(ok, "%s generator: setup or input gradient", deluxe ? "deluxe" : "vanilla");
    CHECK(worst_last < 2e-3, "%s generator, last layer: relative error %.3g",
          deluxe ? "deluxe" : "vanilla", worst_last);
    CHECK(worst < 5e-2, "%s generator weight gradients: relative error %.3g at %s",
          deluxe ? "deluxe" : "vanilla", worst, worst_name);
}

TEST(train_gen_vanilla_weight_gradcheck) { gen_gradcheck(test_failed_, 0); }
TEST(train_gen_deluxe_weight_gradcheck) { gen_gradcheck(test_failed_, 1); }

/* ---- DiffAugment -------------------------------------------------------------- */

TEST(train_diffaug_transpose) {
    const int n = 5, c = 3, h = 16, w = 12;
    size_t N = (size_t)n * c * h * w;
    ge_diffaug a;
    int pol;
    CHECK(ge_diffaug_policy(&pol, "color,translation,cutout") == GE_OK && pol == 7, "policy");
    CHECK(ge_diffaug_policy(&pol, "none") == GE_OK && pol == 0, "none");
    CHECK(ge_diffaug_policy(&pol, "colour") == GE_ERR_ARG, "typo must fail");
    CHECK(ge_diffaug_init(&a, 7, n, c, h, w) == GE_OK, "init");
    ge_rng rng;
    ge_rng_seed(&rng, 3);
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *ax = malloc(N * sizeof *ax),
          *aty = malloc(N * sizeof *aty);
    double worst = 0;
    for (int trial = 0; trial < 20; trial++) {
        ge_diffaug_draw(&a, &rng);
        ge_rng_fill_normal(&rng, x, N);
        ge_rng_fill_normal(&rng, y, N);
        /* the brightness offset makes the forward affine: take it out by
         * comparing A(x) - A(0) (the linear part) with the transpose */
        memcpy(ax, x, N * sizeof *ax);
        ge_diffaug_forward(&a, ax);
        memset(aty, 0, N * sizeof *aty);
        ge_diffaug_forward(&a, aty); /* A(0) */
        for (size_t i = 0; i < N; i++) ax[i] -= aty[i];
        memcpy(aty, y, N * sizeof *aty);
        ge_diffaug_backward(&a, aty);
        double l = 0, r = 0, sc = 0;
        for (size_t i = 0; i < N; i++) {
            l += (double)ax[i] * y[i];
            r += (double)x[i] * aty[i];
            sc += fabs((double)ax[i] * y[i]);
        }
        double e = fabs(l - r) / sc;
        if (e > worst) worst = e;
    }
    /* one sample against the formulas, parameters set by hand */
    ge_diffaug b;
    CHECK(ge_diffaug_init(&b, 7, 1, 1, 8, 8) == GE_OK, "init");
    b.brightness[0] = 0.25f, b.saturation[0] = 1.f, b.contrast[0] = 1.f; /* 1 channel: sat = id */
    b.tx[0] = 2, b.ty[0] = -1, b.cx[0] = 0, b.cy[0] = 7;
    float img[64], out[64];
    for (int i = 0; i < 64; i++) img[i] = out[i] = (float)i / 64.f;
    ge_diffaug_forward(&b, out);
    int bad = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) {
            int si = i + 2, sj = j - 1;
            float want = (si < 8 && sj >= 0) ? img[si * 8 + sj] + 0.25f : 0.f;
            /* cutout: side 4, rows [0-2, 2) and cols [7-2, 9) clipped */
            if (i < 2 && j >= 5) want = 0.f;
            if (fabsf(out[i * 8 + j] - want) > 1e-6f) bad++;
        }
    ge_diffaug_free(&b);
    free(x);
    free(y);
    free(ax);
    free(aty);
    ge_diffaug_free(&a);
    CHECK(worst < 1e-5, "backward is not the transpose of forward: %.3g", worst);
    CHECK(bad == 0, "%d pixels differ from the translation/brightness/cutout formula", bad);
}

TEST(train_diffaug_color) {
    /* saturation and contrast of one 2-channel, 2-pixel image by hand */
    ge_diffaug a;
    CHECK(ge_diffaug_init(&a, GE_AUG_COLOR, 1, 2, 1, 2) == GE_OK, "init");
    a.brightness[0] = 0.f, a.saturation[0] = 2.f, a.contrast[0] = 0.5f;
    float x[4] = {1.f, 3.f, 3.f, 5.f}; /* channel 0: 1 3; channel 1: 3 5 */
    ge_diffaug_forward(&a, x);
    /* saturation 2 around per-pixel means 2, 4: (0, 2), (4, 6); contrast
     * 0.5 around their mean 3: (1.5, 2.5), (3.5, 4.5) */
    float want[4] = {1.5f, 2.5f, 3.5f, 4.5f};
    int ok = 1;
    for (int i = 0; i < 4; i++) ok = ok && fabsf(x[i] - want[i]) < 1e-6f;
    ge_diffaug_free(&a);
    CHECK(ok, "colour: got %g %g %g %g", x[0], x[1], x[2], x[3]);
}

/* ---- eigen-solver and FD-VGG --------------------------------------------------- */

TEST(train_sym_eigen) {
    const int d = 12;
    double a[144], keep[144], v[144], ev[12];
    ge_rng rng;
    ge_rng_seed(&rng, 5);
    for (int i = 0; i < d; i++)
        for (int j = 0; j <= i; j++) a[i * d + j] = a[j * d + i] = ge_rng_normal(&rng);
    memcpy(keep, a, sizeof a);
    CHECK(ge_sym_eigen(ev, v, a, d) == GE_OK, "%s", ge_errmsg());
    double err = 0, orth = 0;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0, o = 0;
            for (int k = 0; k < d; k++) {
                s += v[i * d + k] * ev[k] * v[j * d + k];
                o += v[k * d + i] * v[k * d + j];
            }
            err = fmax(err, fabs(s - keep[i * d + j]));
            orth = fmax(orth, fabs(o - (i == j)));
        }
    CHECK(err < 1e-10 && orth < 1e-10, "V diag V^T error %.3g, orthogonality %.3g", err, orth);
}

TEST(train_fd_closed_forms) {
    const int d = 6;
    double mu1[6], mu2[6], c1[36], c2[36], fd;
    ge_rng rng;
    ge_rng_seed(&rng, 9);
    /* c1 = B B^T (full), c2 = k c1: FD = |dmu|^2 + (1 + k - 2 sqrt k) tr c1 */
    double b[36];
    for (int i = 0; i < 36; i++) b[i] = ge_rng_normal(&rng);
    double tr = 0, dmu = 0;
    for (int i = 0; i < d; i++) {
        mu1[i] = ge_rng_normal(&rng);
        mu2[i] = ge_rng_normal(&rng);
        dmu += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += b[i * d + k] * b[j * d + k];
            c1[i * d + j] = s;
            c2[i * d + j] = 2.25 * s;
        }
        tr += c1[i * d + i];
    }
    CHECK(ge_fd_distance(&fd, mu1, c1, mu2, c2, d) == GE_OK, "%s", ge_errmsg());
    double want = dmu + (1 + 2.25 - 2 * 1.5) * tr;
    CHECK(fabs(fd - want) < 1e-8 * (want + 1), "scaled covariance: %.12g, want %.12g", fd, want);
    /* diagonal: sum (sqrt a - sqrt b)^2 */
    memset(c1, 0, sizeof c1);
    memset(c2, 0, sizeof c2);
    want = 0;
    for (int i = 0; i < d; i++) {
        c1[i * d + i] = 1 + i;
        c2[i * d + i] = 4 + 0.5 * i;
        want += pow(sqrt(1 + i) - sqrt(4 + 0.5 * i), 2);
    }
    CHECK(ge_fd_distance(&fd, mu1, c1, mu1, c2, d) == GE_OK, "%s", ge_errmsg());
    CHECK(fabs(fd - want) < 1e-9, "diagonal: %.12g, want %.12g", fd, want);
    /* identical statistics: 0; and from features: stats of 40 samples */
    float feat[40 * 6];
    for (int i = 0; i < 240; i++) feat[i] = ge_rng_normal(&rng);
    CHECK(ge_fd_stats(mu1, c1, feat, 40, d) == GE_OK, "stats");
    CHECK(ge_fd_distance(&fd, mu1, c1, mu1, c1, d) == GE_OK, "%s", ge_errmsg());
    CHECK(fabs(fd) < 1e-9, "identical sets: %.3g", fd);
    double m0 = 0;
    for (int i = 0; i < 40; i++) m0 += feat[i * 6];
    CHECK(fabs(m0 / 40 - mu1[0]) < 1e-6, "mean");
    CHECK(ge_fd_stats(mu1, c1, feat, 1, d) == GE_ERR_ARG, "one sample must fail");
}

/* FD-VGG on real images: a set against itself is 0; one half of a set
 * against a darkened copy of the other half is far from the same two halves
 * unchanged (equal sample sizes, so the small-sample bias is the same). */
TEST(train_fd_vgg_images) {
    char vp[4096];
    ge_vgg *v = NULL;
    ge_dataset ds;
    CHECK(ge_vgg_find(vp, sizeof vp, shared_path("weights/vgg19_normalised_conv3_1.safetensors")) ==
              GE_OK && ge_vgg_load(&v, vp) == GE_OK,
          "%s", ge_errmsg());
    ge_status s = ge_dataset_load(&ds, shared_path("data/grumpy64/grumpy"), 32, 16);
    if (s != GE_OK) ge_vgg_free(v);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    int n = ds.n, h = n / 2, d = 0;
    size_t per = (size_t)3 * 32 * 32;
    float *f = malloc((size_t)(n + h) * 256 * sizeof *f), *dark = malloc(h * per * sizeof *dark);
    double *mu = malloc(2 * 256 * sizeof *mu), *cov = malloc(2 * 256 * 256 * sizeof *cov);
    for (size_t i = 0; i < h * per; i++) dark[i] = ds.img[h * per + i] * 0.5f - 0.5f;
    double fd_self = -1, fd_dark = -1, fd_half = -1;
    s = ge_fd_features(f, &d, v, ds.img, n, 32, 32);
    if (s == GE_OK) s = ge_fd_features(f + (size_t)n * 256, &d, v, dark, h, 32, 32);
    if (s == GE_OK && d == 256) {
        ge_fd_stats(mu, cov, f, h, d); /* first half */
        ge_fd_distance(&fd_self, mu, cov, mu, cov, d);
        ge_fd_stats(mu + 256, cov + 65536, f + (size_t)h * 256, h, d);
        ge_fd_distance(&fd_half, mu, cov, mu + 256, cov + 65536, d);
        ge_fd_stats(mu + 256, cov + 65536, f + (size_t)n * 256, h, d);
        ge_fd_distance(&fd_dark, mu, cov, mu + 256, cov + 65536, d);
    }
    free(f);
    free(dark);
    free(mu);
    free(cov);
    ge_dataset_free(&ds);
    ge_vgg_free(v);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(d == 256, "relu3_1 has 256 channels, got %d", d);
    CHECK(fabs(fd_self) < 1e-6 * fd_dark, "self %.4g", fd_self);
    CHECK(fd_dark > 1.5 * fd_half && fd_half > 0, "darkened %.4g vs halves %.4g", fd_dark, fd_half);
}

/* ---- dataset ------------------------------------------------------------------- */

TEST(train_dataset_folder) {
    const char *dir = tmpdir_new();
    char p[4200];
    /* b.png 8x8 colour; a.png 6x12 (non-square: centre crop); c.png RGBA */
    float sq[3 * 64], wide[3 * 72], rgba[4 * 16];
    for (int i = 0; i < 3 * 64; i++) sq[i] = (i % 7) / 7.f - 0.4f;
    for (int k = 0; k < 3; k++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 12; x++)
                wide[(k * 6 + y) * 12 + x] = (x >= 3 && x < 9) ? 0.6f : -1.f;
    for (int i = 0; i < 64; i++) rgba[i] = i < 48 ? 0.2f : 1.f;
    snprintf(p, sizeof p, "%s/b.png", dir);
    CHECK(ge_image_write_png(p, sq, 1, 3, 8, 8, 1) == GE_OK, "write");
    snprintf(p, sizeof p, "%s/a.png", dir);
    CHECK(ge_image_write_png(p, wide, 1, 3, 6, 12, 1) == GE_OK, "write");
    snprintf(p, sizeof p, "%s/c.PNG", dir);
    CHECK(ge_image_write_png(p, rgba, 1, 4, 4, 4, 1) == GE_OK, "write");
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
    ge_dataset ds;
    CHECK(ge_dataset_load(&ds, dir, 8, 0) == GE_OK, "%s", ge_errmsg());
    int ok = ds.n == 3 && !strcmp(ds.names[0], "a.png") && !strcmp(ds.names[1], "b.png") &&
             !strcmp(ds.names[2], "c.PNG") && ds.res == 8;
    /* a: the centre 6x6 square is all 0.6 (up to 8-bit rounding) */
    double ea = 0, eb = 0, ec = 0;
    for (int i = 0; ok && i < 3 * 64; i++) {
        ea = fmax(ea, fabs(ds.img[i] - 0.6));
        eb = fmax(eb, fabs(ds.img[192 + i] - sq[i]));
        ec = fmax(ec, fabs(ds.img[384 + i] - 0.2));
    }
    ge_dataset_free(&ds);
    CHECK(ok, "names or count wrong");
    CHECK(ea < 0.01 && eb < 0.005 && ec < 0.005, "pixels: crop %.3g, copy %.3g, rgba %.3g", ea, eb,
          ec);
    CHECK(ge_dataset_load(&ds, dir, 8, 2) == GE_OK && ds.n == 2, "max_images");
    ge_dataset_free(&ds);
    const char *empty = tmpdir_new();
    CHECK(ge_dataset_load(&ds, empty, 8, 0) == GE_ERR_IO, "an empty folder must fail");
}

/* ---- training runs --------------------------------------------------------------- */

/* A folder of n toy 16x16 images: a red square on a blue background at a
 * few positions. */
const char *toy_folder(int n) {
    const char *dir = tmpdir_new();
    float img[3 * 256];
    for (int k = 0; k < n; k++) {
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++) {
                    int in = y >= 4 + (k % 3) && y < 10 + (k % 3) && x >= 3 + k % 4 && x < 9 + k % 4;
                    float v = in ? (c == 0 ? 0.9f : -0.8f) : (c == 2 ? 0.7f : -0.6f);
                    img[(c * 16 + y) * 16 + x] = v;
                }
        char p[4200];
        snprintf(p, sizeof p, "%s/toy_%02d.png", dir, k);
        if (ge_image_write_png(p, img, 1, 3, 16, 16, 1) != GE_OK) return NULL;
    }
    return dir;
}

void tiny_params(ge_train_params *p, const char *data, const char *out, int steps) {
    ge_train_params_init(p);
    p->data = data;
    p->out = out;
    p->resolution = 16;
    p->batch = 4;
    p->z_dim = 8;
    p->conv_dim = 4;
    p->kimg = steps * p->batch / 1000.0;
    p->seed = 42;
    p->sample_every = 0;
    p->ckpt_every = 0;
    p->quiet_files = 1;
}

/* Mean colour error of G_ema's images against the toy set's palette: every
 * pixel should be one of the two colours. */
double palette_error(const char *genpath) {
    ge_generator *g = NULL;
    if (ge_generator_load(&g, genpath, NULL) != GE_OK) return NAN;
    float z[16 * 8], img[16 * 3 * 256];
    ge_rng rng;
    ge_rng_seed(&rng, 99);
    ge_rng_fill_normal(&rng, z, 16 * 8);
    double err = NAN;
    if (ge_generator_forward(g, img, z, GE_LATENT_Z, 16, NULL) == GE_OK) {
        err = 0;
        static const float pal[2][3] = {{0.9f, -0.8f, -0.8f}, {-0.6f, -0.6f, 0.7f}};
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 256; j++) {
                double best = 1e9;
                for (int q = 0; q < 2; q++) {
                    double e = 0;
                    for (int c = 0; c < 3; c++) e += fabs(img[(i * 3 + c) * 256 + j] - pal[q][c]);
                    if (e < best) best = e;
                }
                err += best / (16 * 256 * 3);
            }
    }
    ge_generator_free(g);
    return err;
}

ge_tensors *load_ckpt(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    ge_tensors *t = NULL;
    return ge_tensors_load(&t, path) == GE_OK ? t : NULL;
}

ge_status train_only(const ge_train_params *p) {
    ge_train_result r;
    ge_status s = ge_train_run(p, &r);
    ge_train_result_free(&r);
    return s;
}

ge_status learn_run(ge_train_params *p, int steps, ge_train_result *r, double *e0, double *e1) {
    char gp0[4200], gp[4200];
    memset(r, 0, sizeof *r);
    p->out = tmpdir_new();
    p->kimg = p->batch / 1000.0; /* one step: the starting point */
    snprintf(gp0, sizeof gp0, "%s/generator.safetensors", p->out);
    ge_status s = train_only(p);
    if (s != GE_OK) return s;
    p->out = tmpdir_new();
    p->kimg = steps * p->batch / 1000.0;
    snprintf(gp, sizeof gp, "%s/generator.safetensors", p->out);
    if ((s = ge_train_run(p, r)) != GE_OK) return s;
    *e0 = palette_error(gp0);
    *e1 = palette_error(gp);
    return GE_OK;
}

TEST(train_tiny_run_learns) {
    const char *data = toy_folder(12);
    CHECK(data, "toy folder");
    ge_train_params p;
    ge_train_result r;
    tiny_params(&p, data, NULL, 1);
    p.augment = "none";
    p.lr_g = p.lr_d = 0.002f;
    p.ema_kimg = 0.02f;
    p.conv_dim = 8;
    double e0 = NAN, e1 = NAN;
    ge_status s = learn_run(&p, 300, &r, &e0, &e1);
    if (s != GE_OK) ge_train_result_free(&r);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    int steps = (int)r.steps_done;
    /* the discriminator's loss early vs late; the generator's pixels */
    double d_first = 0, d_last = 0;
    for (int i = 0; i < 20; i++) {
        const double *h0 = r.history + (size_t)i * GE_TT_N;
        const double *h1 = r.history + (size_t)(steps - 20 + i) * GE_TT_N;
        d_first += (h0[GE_TT_D_REAL] + h0[GE_TT_D_FAKE]) / 20;
        d_last += (h1[GE_TT_D_REAL] + h1[GE_TT_D_FAKE]) / 20;
    }
    ge_train_result_free(&r);
    fprintf(stderr, "  D loss %.3f -> %.3f, palette error %.4f -> %.4f\n", d_first, d_last, e0, e1);
    CHECK(steps == 300, "ran %d steps", steps);
    CHECK(e1 < 0.5 * e0, "G_ema's colours did not approach the toy set's: error %.4f -> %.4f", e0,
          e1);
}

int resume_same_losses(train_setup_fn setup, void (*tweak)(ge_train_params *), const char *data,
                       const char *a, const char *b) {
    ge_train_params p;
    ge_train_result ra, rb1, rb2;
    setup(&p, data, a, 6);
    if (ge_train_run(&p, &ra) != GE_OK) return -1;
    setup(&p, data, b, 3);
    if (ge_train_run(&p, &rb1) != GE_OK) {
        ge_train_result_free(&ra);
        return -1;
    }
    char ck[4200];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", b);
    setup(&p, data, b, 6);
    p.resume = ck;
    tweak(&p);
    ge_status s = ge_train_run(&p, &rb2);
    int ok = s == GE_OK && ra.steps_done == 6 && rb1.steps_done == 3 && rb2.first_step == 3 &&
             rb2.steps_done == 3;
    int same = ok;
    for (int i = 0; ok && i < 3 * GE_TT_N; i++) {
        same = same && rb1.history[i] == ra.history[i];
        same = same && rb2.history[i] == ra.history[3 * GE_TT_N + i];
    }
    ge_train_result_free(&ra);
    ge_train_result_free(&rb1);
    ge_train_result_free(&rb2);
    return s != GE_OK ? -1 : !ok ? 0 : same ? 1 : 0;
}

static void other_seed_and_batch(ge_train_params *p) {
    p->seed = 12345; /* ignored: the checkpoint's settings win */
    p->batch = 7;
}

TEST(train_resume_same_losses) {
    const char *data = toy_folder(6);
    CHECK(data, "toy folder");
    const char *a = tmpdir_new(), *b = tmpdir_new();
    int r = resume_same_losses(tiny_params, other_seed_and_batch, data, a, b);
    CHECK(r >= 0, "%s", ge_errmsg());
    CHECK(r == 1, "a resumed run must give the same losses as an uninterrupted one");
    /* and the same weights at the end */
    ge_tensors *ta = load_ckpt(a), *tb = load_ckpt(b);
    char why[256] = "a checkpoint does not load";
    int same = ta && tb && io_same_tensors(ta, tb, why, sizeof why);
    ge_tensors_free(ta);
    ge_tensors_free(tb);
    CHECK(same, "final checkpoints differ: %s", why);
}

TEST(train_bad_arguments) {
    const char *data = toy_folder(2);
    CHECK(data, "toy folder");
    ge_train_params p;
    tiny_params(&p, data, tmpdir_new(), 1);
    p.arch = "stylegan3";
    CHECK(train_only(&p) == GE_ERR_UNSUPPORTED, "unknown arch");
    tiny_params(&p, data, tmpdir_new(), 1);
    p.resolution = 24;
    CHECK(train_only(&p) == GE_ERR_ARG, "resolution not a power of two: %s", ge_errmsg());
    tiny_params(&p, data, tmpdir_new(), 1);
    p.augment = "color,flip";
    CHECK(train_only(&p) == GE_ERR_ARG, "bad policy");
    tiny_params(&p, data, tmpdir_new(), 1);
    p.resume = shared_path("ref/dcgan_vanilla.safetensors");
    CHECK(train_only(&p) == GE_ERR_FORMAT, "a generator is not a checkpoint");
}

/* ---- F16 writing (src/io/safetensors.c, for the shipped generators) ------------- */

TEST(train_safetensors_f16) {
    const float in[10] = {1.f, -2.5f, 65504.f, 1e-8f, 6e-5f, 0.1f, 70000.f,
                          1.f + 1.f / 2048, 1.f + 3.f / 2048, -3e-7f};
    /* expected halves: exact, exact, max, 0, subnormal 1007 * 2^-24, nearest to 0.1,
     * inf, tie to even (down), tie to even (up), subnormal -5 * 2^-24 */
    const float want[10] = {1.f, -2.5f, 65504.f, 0.f, 1007.f / 16777216.f, 0.0999755859375f,
                            INFINITY, 1.f, 1.f + 4.f / 2048, -5.f / 16777216.f};
    char path[4200];
    snprintf(path, sizeof path, "%s/h.safetensors", tmpdir_new());
    ge_tensor t = {"x", 1, {10}, 10, (float *)in};
    CHECK(ge_safetensors_save_f16(path, &t, 1, "{\"k\":\"v\"}") == GE_OK, "%s", ge_errmsg());
    ge_tensors *r = NULL;
    CHECK(ge_tensors_load(&r, path) == GE_OK, "%s", ge_errmsg());
    const ge_tensor *x = ge_tensors_find(r, "x");
    int ok = x && x->numel == 10 && ge_tensors_metadata(r) &&
             strstr(ge_tensors_metadata(r), "\"k\"");
    int bad = -1;
    for (int i = 0; ok && i < 10; i++)
        if (x->data[i] != want[i] && bad < 0) bad = i;
    FILE *f = fopen(path, "rb");
    long size = -1;
    if (f) {
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fclose(f);
    }
    float got = bad >= 0 ? x->data[bad] : 0;
    ge_tensors_free(r);
    CHECK(ok, "tensor or metadata missing");
    CHECK(bad < 0, "element %d: %.10g, want %.10g", bad, got, bad >= 0 ? want[bad] : 0);
    CHECK(size > 0 && size % 2 == 0 && size < 8 + 256 + 20, "file of %ld bytes", size);
}

/* Stopping (what Ctrl-C does through p.stop) saves a checkpoint at that step;
 * FD-VGG inside the loop writes fd.csv; a deluxe generator trains too. */
static int stop_at_2(void *user, const ge_train_status *st) {
    (void)user;
    return st->step >= 2;
}

TEST(train_stop_fd_deluxe) {
    const char *data = toy_folder(6);
    CHECK(data, "toy folder");
    const char *out = tmpdir_new();
    ge_train_params p;
    ge_train_result r;
    tiny_params(&p, data, out, 50);
    p.arch = "dcgan-deluxe";
    p.progress = stop_at_2;
    p.fd_every = 1;
    p.fd_n = 8;
    p.vgg = shared_path("weights/vgg19_normalised_conv3_1.safetensors");
    p.quiet_files = 0;
    ge_status s = ge_train_run(&p, &r);
    int stopped = r.stopped, done = (int)r.steps_done;
    double fd = r.last_fd;
    ge_train_result_free(&r);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(stopped && done == 2, "stopped %d after %d steps", stopped, done);
    CHECK(fd > 0 && isfinite(fd), "FD-VGG %g", fd);
    char path[4200];
    snprintf(path, sizeof path, "%s/fd.csv", out);
    FILE *f = fopen(path, "r");
    char line[256];
    int rows = 0;
    while (f && fgets(line, sizeof line, f)) rows++;
    if (f) fclose(f);
    CHECK(rows == 3, "fd.csv has %d lines, want a header and 2 rows", rows);
    snprintf(path, sizeof path, "%s/samples_000002.png", out);
    f = fopen(path, "rb");
    CHECK(f, "no sample grid at the stop");
    fclose(f);
    ge_tensors *ck = load_ckpt(out);
    CHECK(ck, "%s", ge_errmsg());
    const char *m = ge_tensors_metadata(ck);
    int ok = m && strstr(m, "\"step\":\"2\"") && strstr(m, "\"arch\":\"dcgan-deluxe\"") &&
             ge_tensors_find(ck, "G.up_conv3.1.bias") && ge_tensors_find(ck, "opt_D.v.conv3.0.weight");
    ge_tensors_free(ck);
    CHECK(ok, "checkpoint metadata or tensors");
    snprintf(path, sizeof path, "%s/generator.safetensors", out);
    ge_generator *g = NULL;
    CHECK(ge_generator_load(&g, path, NULL) == GE_OK, "%s", ge_errmsg());
    const ge_gen_info *gi = ge_generator_info(g);
    ok = !strcmp(gi->arch, "dcgan-deluxe") && gi->resolution == 16 && gi->z_dim == 8 &&
         gi->z_dist == GE_ZDIST_UNIFORM;
    ge_generator_free(g);
    CHECK(ok, "shipped generator info");
}

/* ---- StyleGAN2 generator weight gradients (src/models/stylegan2.c) -------------- */

typedef struct {
    ge_generator *g;
    const float *z, *r;
    float *img;
    int n;
    size_t nimg;
    const ge_gen_call *call;
} sg_ctx;

static double sg_loss(sg_ctx *c) {
    if (ge_generator_forward(c->g, c->img, c->z, GE_LATENT_Z, c->n, c->call) != GE_OK) return NAN;
    double s = 0;
    for (size_t i = 0; i < c->nimg; i++) s += (double)c->img[i] * c->r[i];
    return s;
}

static int is_buffer(const char *name) {
    size_t l = strlen(name);
    return (l >= 5 && !strcmp(name + l - 5, "w_avg")) ||
           (l >= 11 && !strcmp(name + l - 11, "noise_const")) ||
           (l >= 15 && !strcmp(name + l - 15, "resample_filter"));
}

/* Directional derivatives of sum(G(z) * r) for every trainable tensor of the
 * reference StyleGAN2 g1 (32x32, 8 mapping layers), against backward_params;
 * buffers get no gradient; noise strengths also with random noise. For a
 * random direction u ~ N(0, I) the derivative <u, g> is about |g| in size, so
 * the error is measured in units of |g|: a wrong gradient (sign, index,
 * missing term) is off by about 1; leaky-ReLU kinks crossed by the step
 * account for the few percent seen here. */
TEST(train_sg2_weight_gradcheck) {
    ge_tensors *file = NULL, *w = NULL, *gw = NULL;
    ge_generator *g = NULL;
    CHECK(ge_tensors_load(&file, shared_path("ref/stylegan2_g1.safetensors")) == GE_OK, "%s",
          ge_errmsg());
    ge_status s = ge_flat_copy(&w, file, NULL);
    ge_tensors_free(file);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    ge_tensors *wkeep = w;
    s = ge_flat_like(&gw, w);
    if (s == GE_OK) s = ge_train_generator_new(&g, w, "g1");
    else ge_tensors_free(w);
    if (s != GE_OK) ge_tensors_free(gw);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    const ge_gen_info *gi = ge_generator_info(g);
    const int n = 2, zd = gi->z_dim, R = gi->resolution;
    size_t nimg = (size_t)n * 3 * R * R, nw;
    float *flat = ge_flat_data(wkeep, &nw);
    float *z = malloc((size_t)n * zd * sizeof *z), *img = malloc(nimg * sizeof *img),
          *r = malloc(nimg * sizeof *r), *dz = calloc((size_t)n * zd, sizeof *dz),
          *dz2 = calloc((size_t)n * zd, sizeof *dz2), *u = malloc(nw * sizeof *u),
          *keep = malloc(nw * sizeof *keep);
    ge_rng rng;
    ge_rng_seed(&rng, 21);
    ge_rng_fill_normal(&rng, z, (size_t)n * zd);
    ge_rng_fill_normal(&rng, r, nimg);
    memcpy(keep, flat, nw * sizeof *keep);
    ge_gen_call calls[2];
    ge_gen_call_init(&calls[0]);
    ge_gen_call_init(&calls[1]);
    calls[1].noise = GE_NOISE_RANDOM;
    calls[1].noise_seed = 77;
    double worst = 0;
    char worst_name[96] = "";
    int ok = 1, buffers_touched = 0, checked = 0;
    for (int mode = 0; ok && mode < 2; mode++) {
        sg_ctx c = {g, z, r, img, n, nimg, &calls[mode]};
        size_t ng;
        float *gflat = ge_flat_data(gw, &ng);
        memset(gflat, 0, ng * sizeof(float));
        memset(dz, 0, (size_t)n * zd * sizeof *dz);
        memset(dz2, 0, (size_t)n * zd * sizeof *dz2);
        ok = !isnan(sg_loss(&c)) && ge_train_generator_backward(g, dz, r, gw) == GE_OK &&
             ge_generator_backward(g, dz2, r) == GE_OK;
        ok = ok && max_abs_diff(dz, dz2, (size_t)n * zd) <= 1e-5 * max_abs(dz2, (size_t)n * zd);
        for (int i = 0; ok && i < ge_tensors_count(wkeep); i++) {
            const ge_tensor *t = ge_tensors_at(wkeep, i);
            const float *gt = ge_tensors_at(gw, i)->data;
            if (is_buffer(t->name)) {
                buffers_touched += max_abs(gt, t->numel) != 0;
                continue;
            }
            if (mode == 1 || t->numel == 1) continue; /* the scalars: together, below */
            size_t off = (size_t)(t->data - flat);
            double rms = 0;
            for (size_t k = 0; k < t->numel; k++) rms += (double)t->data[k] * t->data[k];
            rms = sqrt(rms / t->numel);
            double eps = 1e-3 * (rms > 0.05 ? rms : 0.05);
            ge_rng_fill_normal(&rng, u, t->numel);
            double an = 0, gn = 0;
            for (size_t k = 0; k < t->numel; k++) {
                an += (double)u[k] * gt[k];
                gn += (double)gt[k] * gt[k];
            }
            double f[2];
            for (int sg = 0; sg < 2; sg++) {
                for (size_t k = 0; k < t->numel; k++)
                    t->data[k] = keep[off + k] + (float)((sg ? -eps : eps) * u[k]);
                f[sg] = sg_loss(&c);
            }
            memcpy(t->data, keep + off, t->numel * sizeof(float));
            double fd = (f[0] - f[1]) / (2 * eps);
            double e = fabs(fd - an) / (sqrt(gn) + 1e-6);
            checked++;
            if (!(e <= worst)) {
                worst = e;
                snprintf(worst_name, sizeof worst_name, "%s", t->name);
            }
        }
        /* The noise strengths (scalars): one direction over all of them at
         * once, a few times. Alone, a scalar's difference quotient is either
         * drowned in float32 rounding (small steps) or crosses leaky-ReLU
         * kinks over whole noise planes (large ones). */
        for (int trial = 0; ok && trial < 3; trial++) {
            double an = 0, gn = 0, f[2];
            float du[16];
            int ns = 0;
            for (int i = 0; i < ge_tensors_count(wkeep) && ns < 16; i++)
                if (strstr(ge_tensors_at(wkeep, i)->name, "noise_strength")) {
                    float gv = ge_tensors_at(gw, i)->data[0];
                    du[ns] = ge_rng_normal(&rng);
                    an += du[ns++] * gv;
                    gn += (double)gv * gv;
                }
            const double eps = 1e-3;
            for (int sg = 0; sg < 2; sg++) {
                int k = 0;
                for (int i = 0; i < ge_tensors_count(wkeep) && k < ns; i++) {
                    const ge_tensor *t = ge_tensors_at(wkeep, i);
                    if (strstr(t->name, "noise_strength"))
                        t->data[0] = keep[t->data - flat] + (float)((sg ? -eps : eps) * du[k++]);
                }
                f[sg] = sg_loss(&c);
            }
            for (int i = 0; i < ge_tensors_count(wkeep); i++) {
                const ge_tensor *t = ge_tensors_at(wkeep, i);
                if (strstr(t->name, "noise_strength")) t->data[0] = keep[t->data - flat];
            }
            double fd = (f[0] - f[1]) / (2 * eps), e = fabs(fd - an) / (sqrt(gn) + 1e-6);
            checked += ns > 0;
            if (!(e <= worst)) {
                worst = e;
                snprintf(worst_name, sizeof worst_name, "the noise strengths%s",
                         mode ? " (random noise)" : "");
            }
        }
    }
    free(z);
    free(img);
    free(r);
    free(dz);
    free(dz2);
    free(u);
    free(keep);
    ge_tensors_free(gw);
    ge_generator_free(g);
    CHECK(ok, "setup, or backward_params' dz differs from the plain backward's");
    CHECK(checked > 50, "only %d checks", checked);
    CHECK(buffers_touched == 0, "%d buffers got gradients", buffers_touched);
    CHECK(worst < 0.1, "StyleGAN2 weight gradients: error %.3g of |grad| at %s", worst, worst_name);
}

/* ---- the shipped model ------------------------------------------------------------ */

/* models/dcgan-vanilla-grumpy64.safetensors is a trained generator: the
 * course layout, and its images are far closer to Grumpy Cat (FD-VGG on 16
 * images each) than those of the same network untrained. */
/* FD-VGG (16 vs 16 images, seed 5) of g and of g0 against the first 16
 * images of the shared folder `data` at resolution res. */
ge_status fd_trained_untrained(ge_generator *g, ge_generator *g0, const char *data, int res,
                               double *fd, double *fd0) {
    char vp[4096];
    ge_vgg *v = NULL;
    ge_dataset ds;
    memset(&ds, 0, sizeof ds);
    ge_status s = ge_vgg_find(vp, sizeof vp,
                              shared_path("weights/vgg19_normalised_conv3_1.safetensors"));
    if (s == GE_OK) s = ge_vgg_load(&v, vp);
    if (s == GE_OK) s = ge_dataset_load(&ds, shared_path(data), res, 16);
    if (s == GE_OK) s = ge_train_fd_of(fd, NULL, NULL, g, v, ds.img, ds.n, 16, 5);
    if (s == GE_OK) s = ge_train_fd_of(fd0, NULL, NULL, g0, v, ds.img, ds.n, 16, 5);
    ge_dataset_free(&ds);
    ge_vgg_free(v);
    return s;
}

TEST(train_shipped_dcgan_grumpy) {
    ge_generator *g = NULL, *g0 = NULL;
    CHECK(ge_generator_load(&g, "models/dcgan-vanilla-grumpy64.safetensors", NULL) == GE_OK, "%s",
          ge_errmsg());
    const ge_gen_info *gi = ge_generator_info(g);
    int ok = !strcmp(gi->arch, "dcgan-vanilla") && gi->resolution == 64 && gi->z_dim == 100 &&
             gi->num_params == 1099264;
    ge_rng rng;
    ge_rng_seed(&rng, 1);
    ge_tensors *w0 = NULL;
    ge_status s = ge_train_dcgan_g_init(&w0, 0, 100, 32, 64, &rng);
    if (s == GE_OK) s = ge_train_generator_new(&g0, w0, "untrained");
    double fd = -1, fd0 = -1;
    if (s == GE_OK) s = fd_trained_untrained(g, g0, "data/grumpy64/grumpy", 64, &fd, &fd0);
    ge_generator_free(g);
    ge_generator_free(g0);
    CHECK(ok, "shipped model: not the course dcgan-vanilla 64x64 layout");
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(fd < 0.5 * fd0, "FD-VGG trained %.4g vs untrained %.4g", fd, fd0);
    fprintf(stderr, "  FD-VGG (16 vs 16) trained %.3g, untrained %.3g\n", fd, fd0);
}
