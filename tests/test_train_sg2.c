/* test_train_sg2.c - StyleGAN2 training: the initialised generator's layout,
 * the lazy R1 penalty's weight gradient (the finite-difference trick of
 * step.c) against a finite difference of the penalty itself, with and
 * without DiffAugment, a tiny run that learns the toy set, and a resumed run
 * that reproduces an uninterrupted one bit for bit (random noise, w_avg and
 * the R1 interval included), and init_from growing a 16x16 run to 32x32.
 * The residual discriminator itself is checked in test_sg2_disc.c. */
#include "ganedit.h"
#include "harness.h"
#include "train/train.h"
#include "train_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(train_sg2_init_layout) {
    ge_rng rng;
    ge_rng_seed(&rng, 3);
    ge_tensors *w = NULL;
    CHECK(ge_train_sg2_g_init(&w, 16, 24, 2, 32, 512, 32, &rng) == GE_OK, "%s", ge_errmsg());
    const ge_tensor *c4 = ge_tensors_find(w, "synthesis.b4.const");
    const ge_tensor *c0 = ge_tensors_find(w, "synthesis.b32.conv0.weight");
    const ge_tensor *fc = ge_tensors_find(w, "mapping.fc0.weight");
    const ge_tensor *ab = ge_tensors_find(w, "synthesis.b8.conv1.affine.bias");
    const ge_tensor *f = ge_tensors_find(w, "synthesis.b16.resample_filter");
    int ok = c4 && c0 && fc && ab && f && !ge_tensors_find(w, "mapping.fc2.weight");
    if (!ok) ge_tensors_free(w);
    CHECK(ok, "missing or extra tensors");
    /* channels min(512 / r, 32): 32 up to 16x16, 16 at 32x32 */
    ok = c4->shape[0] == 32 && c0->shape[0] == 16 && c0->shape[1] == 32 && fc->shape[0] == 24 &&
         fc->shape[1] == 16 && ab->data[0] == 1.f && fabsf(f->data[0] - 1.f / 64) < 1e-7f;
    double fsum = 0, fcsq = 0;
    for (int i = 0; i < 16; i++) fsum += f->data[i];
    for (size_t i = 0; i < fc->numel; i++) fcsq += (double)fc->data[i] * fc->data[i];
    ok = ok && fabs(fsum - 1) < 1e-6 && fabs(sqrt(fcsq / fc->numel) - 100) < 10; /* N(0,1)/0.01 */
    ge_generator *g = NULL;
    ge_status s = ge_train_generator_new(&g, w, "init");
    CHECK(ok, "shapes or initial values");
    CHECK(s == GE_OK, "%s", ge_errmsg());
    const ge_gen_info *gi = ge_generator_info(g);
    ok = !strcmp(gi->arch, "stylegan2") && gi->resolution == 32 && gi->z_dim == 16 &&
         gi->w_dim == 24 && gi->num_ws == 8;
    float z[2 * 16], img[2 * 3 * 32 * 32];
    ge_rng_fill_normal(&rng, z, 32);
    s = ge_generator_forward(g, img, z, GE_LATENT_Z, 2, NULL);
    double sq = 0;
    int finite = 1;
    for (size_t i = 0; i < sizeof img / sizeof *img; i++) {
        finite = finite && isfinite(img[i]);
        sq += (double)img[i] * img[i];
    }
    ge_generator_free(g);
    CHECK(ok, "generator info");
    CHECK(s == GE_OK && finite && sq > 0, "a fresh generator's images must be finite, not all 0");
}

/* R1 penalty weight * r1 at the D's current weights (NAN on error). */
typedef struct {
    ge_disc *d;
    ge_diffaug *aug;
    const float *x;
    int n;
    size_t per;
    float *v, *xa, *logits;
} r1_ctx;

static double r1_value(r1_ctx *c, double weight) {
    double r1;
    if (ge_r1_backward(c->d, c->aug, c->x, c->n, c->per, weight, NULL, c->v, c->xa, c->logits,
                       &r1) != GE_OK)
        return NAN;
    return weight * r1;
}

static void r1_check(int *test_failed_, int with_aug) {
    const int R = 16, n = 4;
    const size_t per = 3 * R * R;
    ge_rng rng;
    ge_rng_seed(&rng, 11 + with_aug);
    ge_tensors *w = NULL, *grads = NULL;
    ge_disc *d = NULL;
    CHECK(ge_sg2_disc_init(&w, R, 256, 32, &rng) == GE_OK, "%s", ge_errmsg());
    size_t nw;
    float *flat = ge_flat_data(w, &nw);
    ge_status s = ge_flat_like(&grads, w);
    if (s == GE_OK) s = ge_disc_create(&d, w, "D");
    else ge_tensors_free(w);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    /* Every activation kept on the linear side of its leaky ReLU (and below
     * the clamp) for every input and weight the check visits: positive
     * weights, a large fromrgb bias. D is then smooth in x and theta (the
     * minibatch stddev is), so a finite difference of the penalty itself is
     * exact to rounding; with random weights both sides cross kinks (a
     * piecewise-linear D's input gradient jumps), which the probe of the
     * trick averages over while autograd would not, and neither side is a
     * usable reference. grads has w's layout. */
    float *gflat = ge_flat_data(grads, &nw);
    for (int i = 0; i < ge_tensors_count(grads); i++) {
        const ge_tensor *t = ge_tensors_at(grads, i);
        float *p = flat + (t->data - gflat);
        int rgb = strstr(t->name, "fromrgb") != NULL;
        for (size_t k = 0; k < t->numel; k++) {
            float r = ge_rng_normal(&rng);
            if (t->ndim == 1) p[k] = rgb ? 12.f + r : 0.05f + 0.01f * r;
            else p[k] = fabsf(r) * (rgb ? 1.f : 0.1f);
        }
    }
    float *x = malloc(n * per * sizeof *x), *v = malloc(n * per * sizeof *v),
          *xa = malloc(n * per * sizeof *xa), *logits = malloc(2 * n * sizeof *logits),
          *u = malloc(nw * sizeof *u), *keep = malloc(nw * sizeof *keep);
    ge_rng_fill_normal(&rng, x, n * per);
    for (size_t k = 0; k < n * per; k++) x[k] *= 0.5f;
    ge_diffaug aug;
    memset(&aug, 0, sizeof aug);
    if (with_aug) {
        ge_diffaug_init(&aug, GE_AUG_COLOR | GE_AUG_TRANSLATION | GE_AUG_CUTOUT, n, 3, R, R);
        ge_diffaug_draw(&aug, &rng);
    }
    r1_ctx c = {d, with_aug ? &aug : NULL, x, n, per, v, xa, logits};
    const double weight = 0.7;
    memset(gflat, 0, nw * sizeof(float));
    double r1 = 0;
    s = ge_r1_backward(d, c.aug, x, n, per, weight, grads, v, xa, logits, &r1);
    /* directional derivative along a random direction, scaled per tensor */
    memcpy(keep, flat, nw * sizeof *keep);
    ge_rng_fill_normal(&rng, u, nw);
    double an = 0, unorm = 0;
    for (size_t k = 0; k < nw; k++) {
        u[k] *= 0.01f * (fabsf(keep[k]) + 0.1f);
        an += (double)gflat[k] * u[k];
        unorm += (double)u[k] * u[k];
    }
    double best = 1e9, fd_at_best = 0;
    for (double eps = 1e-1; eps >= 1e-3; eps /= 3) { /* smallest error over a few steps */
        for (size_t k = 0; k < nw; k++) flat[k] = keep[k] + (float)eps * u[k];
        double fp = r1_value(&c, weight);
        for (size_t k = 0; k < nw; k++) flat[k] = keep[k] - (float)eps * u[k];
        double fm = r1_value(&c, weight);
        double fd = (fp - fm) / (2 * eps);
        double e = fabs(fd - an) / (fabs(an) > 1e-12 ? fabs(an) : 1e-12);
        if (e < best) best = e, fd_at_best = fd;
    }
    memcpy(flat, keep, nw * sizeof *keep);
    fprintf(stderr, "  R1 %s: r1 %.4g, <grad, u> %.6g vs finite difference %.6g (rel %.2e)\n",
            with_aug ? "with DiffAugment" : "plain", r1, an, fd_at_best, best);
    ge_diffaug_free(&aug);
    free(x), free(v), free(xa), free(logits), free(u), free(keep);
    ge_disc_free(d);
    ge_tensors_free(grads);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(r1 > 0 && isfinite(r1), "r1 = %g", r1);
    CHECK(unorm > 0 && best < 1e-3, "R1 weight gradient off by %.2e (relative)", best);
}

/* R1's weight gradient on a random discriminator whose activations do cross
 * leaky-ReLU kinks along the probe, against PyTorch's double backward
 * (tools/gen_sg2_disc_vectors.py, r1.*): with D's activation pattern frozen
 * during the probe, the central difference is the derivative autograd takes. */
TEST(train_sg2_r1_vs_autograd) {
    ge_tensors *V = NULL, *w = NULL, *grads = NULL;
    ge_disc *d = NULL;
    ge_status s = ge_safetensors_load(&V, vector_path("sg2_disc.safetensors"));
    if (s == GE_OK) s = ge_flat_copy(&w, V, "D.");
    if (s == GE_OK) s = ge_flat_like(&grads, w);
    if (s == GE_OK) s = ge_disc_create(&d, w, "sg2_disc.safetensors");
    else ge_tensors_free(w);
    const ge_tensor *x = s == GE_OK ? ge_tensors_find(V, "x") : NULL;
    const ge_tensor *rv = s == GE_OK ? ge_tensors_find(V, "r1.value") : NULL;
    if (!x || !rv) {
        ge_disc_free(d);
        ge_tensors_free(grads);
        ge_tensors_free(V);
    }
    CHECK(x && rv, "vectors: %s", s == GE_OK ? "no x or r1.value" : ge_errmsg());
    int n = (int)x->shape[0];
    size_t per = x->numel / n, nw;
    float *v = malloc(x->numel * sizeof *v), *xa = malloc(x->numel * sizeof *xa), logits[64];
    ge_flat_data(grads, &nw);
    double r1 = 0, err = 0, ref = 0, worst = 0;
    const char *worst_name = "";
    s = v && xa && n <= 32 ? ge_r1_backward(d, NULL, x->data, n, per, 1.0, grads, v, xa, logits,
                                            &r1)
                           : GE_ERR_NOMEM;
    int found = 1;
    for (int i = 0; s == GE_OK && i < ge_tensors_count(grads); i++) {
        const ge_tensor *t = ge_tensors_at(grads, i);
        char key[128];
        snprintf(key, sizeof key, "r1.grad.%s", t->name);
        const ge_tensor *r = ge_tensors_find(V, key);
        if (!r || r->numel != t->numel) {
            found = 0;
            break;
        }
        double e = 0, m = 0;
        for (size_t k = 0; k < t->numel; k++) {
            e += ((double)t->data[k] - r->data[k]) * ((double)t->data[k] - r->data[k]);
            m += (double)r->data[k] * r->data[k];
        }
        err += e, ref += m;
        /* per tensor, relative to the whole gradient's rms scale */
        if (sqrt(e / t->numel) > worst) worst = sqrt(e / t->numel), worst_name = t->name;
    }
    double rel = sqrt(err / (ref > 0 ? ref : 1)), rms = sqrt(ref / (double)nw);
    double r1_ref = rv->data[0];
    fprintf(stderr, "  R1 %.6g (autograd %.6g); weight gradient error %.2e of its norm, worst "
            "tensor %s rms error %.2e (gradient rms %.2e)\n",
            r1, r1_ref, rel, worst_name, worst, rms);
    free(v), free(xa);
    ge_disc_free(d);
    ge_tensors_free(grads);
    ge_tensors_free(V);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(found, "r1.grad.* missing from the vectors");
    CHECK(fabs(r1 - r1_ref) <= 1e-4 * r1_ref, "r1 %.8g vs %.8g", r1, r1_ref);
    CHECK(rel < 1e-3, "R1 weight gradient %.2e off autograd's (relative norm)", rel);
}

TEST(train_sg2_r1_gradcheck) { r1_check(test_failed_, 0); }
TEST(train_sg2_r1_gradcheck_diffaug) { r1_check(test_failed_, 1); }

/* tiny_params' run (16x16, batch 4, z 8) as a small StyleGAN2, R1 every 2 steps. */
static void sg2_params(ge_train_params *p, const char *data, const char *out, int steps) {
    tiny_params(p, data, out, steps);
    p->arch = "stylegan2";
    p->w_dim = 16;
    p->channel_base = 128;
    p->channel_max = 16;
    p->r1_every = 2;
    p->seed = 5;
}

TEST(train_sg2_tiny_run_learns) {
    const char *data = toy_folder(12);
    CHECK(data, "toy folder");
    ge_train_params p;
    ge_train_result r;
    sg2_params(&p, data, NULL, 1);
    p.augment = "none";
    p.ema_kimg = 0.02f;
    double e0 = NAN, e1 = NAN;
    ge_status s = learn_run(&p, 200, &r, &e0, &e1);
    int steps = (int)r.steps_done, r1_seen = 0;
    for (int i = 0; i < steps; i++) r1_seen += r.history[(size_t)i * GE_TT_N + GE_TT_R1] > 0;
    ge_train_result_free(&r);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    fprintf(stderr, "  palette error %.4f -> %.4f\n", e0, e1);
    CHECK(steps == 200 && r1_seen >= 198, "ran %d steps, R1 recorded on %d", steps, r1_seen);
    CHECK(e1 < 0.5 * e0, "G_ema's colours did not approach the toy set's: error %.4f -> %.4f", e0,
          e1);
}

static void wider(ge_train_params *p) { p->channel_max = 64; /* ignored: the checkpoint wins */ }

TEST(train_sg2_resume_same_losses) {
    const char *data = toy_folder(6);
    CHECK(data, "toy folder");
    /* the break after step 3 falls between R1 steps (2 and 4) */
    int r = resume_same_losses(sg2_params, wider, data, tmpdir_new(), tmpdir_new());
    CHECK(r >= 0, "%s", ge_errmsg());
    CHECK(r == 1, "a resumed StyleGAN2 run must give the same losses as an uninterrupted one");
}

TEST(train_sg2_bad_batch) {
    const char *data = toy_folder(4);
    CHECK(data, "toy folder");
    ge_train_params p;
    sg2_params(&p, data, tmpdir_new(), 2);
    p.batch = 6;
    ge_status s = train_only(&p);
    CHECK(s == GE_ERR_ARG && strstr(ge_errmsg(), "divisible by 4"), "got %d: %s", s, ge_errmsg());
}

/* init_from: a 16x16 run grown to 32x32. Every tensor of the new G, G_ema
 * and D that the 16x16 checkpoint has (same name) is taken over bit for bit;
 * the others are the fresh initialisation of the same seed. */
/* 1 if every tensor of `grown` equals the one of the same name in `small`
 * if that has it, else the one in `fresh`; *taken counts the former among
 * the G., G_ema. and D. weights. */
static int grown_as_expected(const ge_tensors *grown, const ge_tensors *small,
                             const ge_tensors *fresh, int *taken) {
    *taken = 0;
    for (int i = 0; i < ge_tensors_count(grown); i++) {
        const ge_tensor *t = ge_tensors_at(grown, i);
        if (strncmp(t->name, "G.", 2) && strncmp(t->name, "G_ema.", 6) && strncmp(t->name, "D.", 2))
            continue; /* Adam moments start at 0 in all three */
        const ge_tensor *s = ge_tensors_find(small, t->name), *f = ge_tensors_find(fresh, t->name);
        const ge_tensor *want = s ? s : f;
        if (!want || want->numel != t->numel ||
            memcmp(want->data, t->data, t->numel * sizeof(float))) {
            fprintf(stderr, "  %s: not the %s tensor\n", t->name, s ? "16x16" : "fresh");
            return 0;
        }
        *taken += s && strncmp(t->name, "G_ema.", 6);
    }
    return 1;
}

TEST(train_sg2_init_from_grows) {
    const char *data = toy_folder(6);
    CHECK(data, "toy folder");
    const char *small = tmpdir_new(), *grown = tmpdir_new(), *fresh = tmpdir_new();
    char ck[4200];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", small);
    ge_train_params p;
    ge_train_result r;
    sg2_params(&p, data, small, 3);
    CHECK(train_only(&p) == GE_OK, "%s", ge_errmsg());
    /* the same 32x32 run with and without init_from, 0 steps: the start */
    sg2_params(&p, data, fresh, 0);
    p.resolution = 32;
    CHECK(train_only(&p) == GE_OK, "%s", ge_errmsg());
    p.out = grown;
    p.init_from = ck;
    CHECK(ge_train_run(&p, &r) == GE_OK, "%s", ge_errmsg());
    int copied = r.init_copied, fresh_n = r.init_fresh;
    ge_train_result_free(&r);
    ge_tensors *ts = load_ckpt(small), *tg = load_ckpt(grown), *tf = load_ckpt(fresh);
    int taken = -1, ok = ts && tg && tf && grown_as_expected(tg, ts, tf, &taken);
    /* G: b32 is new; D: b32 (with fromrgb) is new, b16 loses its fromrgb */
    int new_g = 0, new_d = 0;
    for (int i = 0; tg && i < ge_tensors_count(tg); i++) {
        const char *n = ge_tensors_at(tg, i)->name;
        new_g += !strncmp(n, "G.synthesis.b32.", 16);
        new_d += !strncmp(n, "D.b32.", 6);
    }
    const char *meta = tg ? ge_tensors_metadata(tg) : NULL;
    int meta_ok = meta && strstr(meta, "\"init_from\"") && strstr(meta, "16x16, 0.012 kimg") &&
                  strstr(meta, "\"ema_rampup\":\"0\"") && strstr(meta, "\"images\":\"0\"");
    ge_tensors_free(ts);
    ge_tensors_free(tg);
    ge_tensors_free(tf);
    CHECK(ok, "grown tensors must be the 16x16 run's where it has them, else the fresh ones");
    CHECK(copied == taken && fresh_n == new_g + new_d && new_g > 0 && new_d > 0 && copied > 0,
          "counts: taken over %d (checked %d), new %d (G %d + D %d)", copied, taken, fresh_n, new_g,
          new_d);
    CHECK(meta_ok, "metadata: %s", meta ? meta : "(none)");
    /* and the grown run trains, and resumes with its origin kept */
    sg2_params(&p, data, grown, 2);
    p.resolution = 32;
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", grown);
    p.resume = ck;
    CHECK(ge_train_run(&p, &r) == GE_OK, "%s", ge_errmsg());
    int steps = (int)r.steps_done;
    ge_train_result_free(&r);
    tg = load_ckpt(grown);
    meta = tg ? ge_tensors_metadata(tg) : NULL;
    meta_ok = meta && strstr(meta, "16x16, 0.012 kimg") && strstr(meta, "\"step\":\"2\"");
    ge_tensors_free(tg);
    CHECK(steps == 2 && meta_ok, "resumed grown run: %d steps, metadata %s", steps,
          meta_ok ? "kept" : "lost its origin");
}

TEST(train_sg2_init_from_errors) {
    const char *data = toy_folder(4);
    CHECK(data, "toy folder");
    const char *small = tmpdir_new(), *dc = tmpdir_new();
    char ck[4200], dck[4200], gen[4200];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", small);
    snprintf(gen, sizeof gen, "%s/generator.safetensors", small);
    snprintf(dck, sizeof dck, "%s/checkpoint.safetensors", dc);
    ge_train_params p;
    sg2_params(&p, data, small, 1);
    CHECK(train_only(&p) == GE_OK, "%s", ge_errmsg());
    tiny_params(&p, data, dc, 1); /* a DCGAN */
    CHECK(train_only(&p) == GE_OK, "%s", ge_errmsg());
    struct {
        const char *from, *resume, *arch, *want;
        int w_dim;
    } cases[] = {
        {ck, ck, "stylegan2", "exclude each other", 16},
        {dck, NULL, "stylegan2", "holds a dcgan-vanilla", 16},
        {gen, NULL, "stylegan2", "not a ganedit training checkpoint", 16},
        {ck, NULL, "stylegan2", "has shape", 32}, /* wider w: shapes differ */
        {"/nonexistent/ck.safetensors", NULL, "stylegan2", "nonexistent", 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sg2_params(&p, data, tmpdir_new(), 1);
        p.init_from = cases[i].from;
        p.resume = cases[i].resume;
        p.arch = cases[i].arch;
        p.w_dim = cases[i].w_dim;
        ge_status s = train_only(&p);
        CHECK(s != GE_OK && strstr(ge_errmsg(), cases[i].want), "case %zu: status %d, '%s'", i, s,
              ge_errmsg());
    }
}

/* ---- the shipped StyleGAN2 models ------------------------------------------- */

/* Each shipped StyleGAN2 generator loads as the architecture it was trained
 * with, and its images are far closer to its training set (FD-VGG on 16
 * images each) than those of the same network untrained. */
typedef struct {
    const char *path, *data;
    int res, channel_base, channel_max;
} shipped_sg2;

static void check_shipped(int *test_failed_, const shipped_sg2 *m) {
    ge_generator *g = NULL, *g0 = NULL;
    CHECK(ge_generator_load(&g, m->path, NULL) == GE_OK, "%s", ge_errmsg());
    const ge_gen_info *gi = ge_generator_info(g);
    int ok = !strcmp(gi->arch, "stylegan2") && gi->resolution == m->res && gi->z_dim == 64 &&
             gi->w_dim == 64;
    ge_rng rng;
    ge_rng_seed(&rng, 1);
    ge_tensors *w0 = NULL;
    ge_status s = ge_train_sg2_g_init(&w0, 64, 64, 2, m->res, m->channel_base, m->channel_max, &rng);
    if (s == GE_OK) s = ge_train_generator_new(&g0, w0, "untrained");
    double fd = -1, fd0 = -1;
    if (s == GE_OK) s = fd_trained_untrained(g, g0, m->data, m->res, &fd, &fd0);
    ge_generator_free(g);
    ge_generator_free(g0);
    CHECK(ok, "%s: not a %dx%d StyleGAN2 with z, w 64", m->path, m->res, m->res);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    fprintf(stderr, "  %s: FD-VGG (16 vs 16) trained %.3g, untrained %.3g\n", m->path, fd, fd0);
    CHECK(fd < 0.5 * fd0, "%s: FD-VGG trained %.4g vs untrained %.4g", m->path, fd, fd0);
}

TEST(train_shipped_sg2_grumpy64) {
    shipped_sg2 m = {"models/stylegan2-grumpy64.safetensors", "data/grumpy64/grumpy", 64, 2048, 64};
    check_shipped(test_failed_, &m);
}
TEST(train_shipped_sg2_cats64) {
    shipped_sg2 m = {"models/stylegan2-cats64.safetensors", "data/cats64", 64, 2048, 64};
    check_shipped(test_failed_, &m);
}
TEST(train_shipped_sg2_cats128) {
    shipped_sg2 m = {"models/stylegan2-cats128.safetensors", "data/cats256", 128, 2048, 64};
    check_shipped(test_failed_, &m);
}
