/* test_edit.c - the editing engine (src/edit): the objective's gradient
 * against central finite differences for every term, on the real DCGAN
 * (z) with the real VGG-19 and on the reference StyleGAN2 (w and w+); the
 * independence of restarts inside one batch; the optimisation loop (Adam and
 * L-BFGS lower the loss, the best restart and the best step are kept, the
 * three ways to start, the stop flag); and the refusal of bad parameters
 * with the documented status codes.
 *
 * Finite differences: the networks run in float32, so the loss (summed in
 * double) carries a relative rounding error of about 1e-7; a step of 1e-3 in
 * the latent keeps that noise and the curvature error both below 1% of the
 * largest gradient entry, which is the tolerance used (plus 3% of the entry
 * itself). The coordinates checked are the ones with the largest gradients
 * (where a wrong factor shows most) plus a few spread over both restarts. */
#include "edit/objective.h"
#include "ganedit.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DCGAN_PATH "weights/dcgan_grumpy_deluxe.safetensors"
#define VGG_PATH "weights/vgg19_normalised_conv3_1.safetensors"
#define SG2_PATH "ref/stylegan2_g1.safetensors"

/* ---- fixtures -------------------------------------------------------------- */

typedef struct {
    ge_generator *g;
    ge_vgg *vgg;
    int R;
    float *target; /* (3, R, R) target_0.png, resized to R */
    float *mask;   /* (R, R) a soft disc, 0 in the corners, 1 in the middle */
} fixture;

static void fixture_free(fixture *f) {
    ge_generator_free(f->g);
    ge_vgg_free(f->vgg);
    free(f->target);
    free(f->mask);
    memset(f, 0, sizeof *f);
}

static int fixture_load(fixture *f, const char *gen, int with_vgg) {
    memset(f, 0, sizeof *f);
    /* the tolerances below are for fp32 convolutions (bf16 is opt-in and
       process-wide: make sure no earlier test left it on) */
    if (ge_set_precision(GE_PRECISION_FP32) != GE_OK) return 0;
    if (ge_generator_load(&f->g, shared_path(gen), NULL) != GE_OK) return 0;
    if (with_vgg && ge_vgg_load(&f->vgg, shared_path(VGG_PATH)) != GE_OK) return 0;
    f->R = ge_generator_info(f->g)->resolution;
    float *img;
    int c, h, w;
    if (ge_image_read(shared_path("data/sketches/target_0.png"), &img, &c, &h, &w) != GE_OK)
        return 0;
    if (c != 3 || h != 64 || w != 64) {
        free(img);
        return 0;
    }
    if (f->R != 64) {
        ge_status s = ge_image_resize(&f->target, img, 3, 64, 64, f->R, f->R);
        free(img);
        if (s != GE_OK) return 0;
    } else {
        f->target = img;
    }
    int R = f->R;
    f->mask = malloc(sizeof(float) * R * R);
    if (!f->mask) return 0;
    for (int i = 0; i < R; i++)
        for (int j = 0; j < R; j++) {
            double r = hypot(i - 0.4 * R, j - 0.55 * R) / R, m = 1.6 - 3 * r;
            f->mask[i * R + j] = (float)(m < 0 ? 0 : m > 1 ? 1 : m);
        }
    return 1;
}

/* K latents in space sp: z ~ the model's distribution; w / w+ mapped from
 * N(0,1) z, plus N(0, 0.3^2) so that w+ rows differ. */
static void make_latents(const fixture *f, ge_latent_space sp, int K, uint64_t seed, float *x) {
    const ge_gen_info *in = ge_generator_info(f->g);
    size_t L = ge_generator_latent_size(f->g, sp);
    ge_rng rng;
    ge_rng_seed(&rng, seed);
    if (sp == GE_LATENT_Z) {
        if (in->z_dist == GE_ZDIST_UNIFORM)
            ge_rng_fill_uniform(&rng, x, K * L, -0.9f, 0.9f);
        else
            ge_rng_fill_normal(&rng, x, K * L);
        return;
    }
    size_t row = (size_t)in->num_ws * in->w_dim;
    float *z = malloc(sizeof(float) * K * in->z_dim), *ws = malloc(sizeof(float) * K * row);
    ge_rng_fill_normal(&rng, z, (size_t)K * in->z_dim);
    ge_generator_mapping(f->g, ws, z, K, NULL);
    for (int k = 0; k < K; k++)
        for (size_t i = 0; i < L; i++)
            x[k * L + i] = ws[k * row + i] + 0.3f * ge_rng_normal(&rng);
    free(z);
    free(ws);
}

static void base_params(ge_edit_params *p, const fixture *f, ge_latent_space sp) {
    ge_edit_params_init(p, f->g);
    p->space = sp;
    p->w_pixel = p->w_perceptual = p->w_style = p->w_reg = 0;
}

/* ---- gradient checks --------------------------------------------------------- */

typedef struct {
    ge_objective *o;
    float *scratch;
} fd_ctx;

static double fd_value(void *c, const float *x) {
    fd_ctx *f = c;
    return ge_objective_eval(f->o, x, f->scratch);
}

/* Checks the gradient of the objective made from p at x (K, L): the n_top
 * coordinates with the largest |gradient| and n_spread spread ones, step eps,
 * tolerance 0.01 max|g| + 0.03 |g_i|. Returns 1 on pass. */
static int grad_check(const char *what, const fixture *f, const ge_edit_params *p,
                      const float *mask, const float *target, int K, float *x, const float *start,
                      int n_top, int n_spread) {
    ge_objective o;
    size_t L = ge_generator_latent_size(f->g, p->space), n = (size_t)K * L;
    if (ge_objective_init(&o, f->g, f->vgg, target, mask, p, K, start) != GE_OK) {
        fprintf(stderr, "  %s: init: %s\n", what, ge_errmsg());
        ge_objective_free(&o);
        return 0;
    }
    float *g = malloc(sizeof(float) * n), *scratch = malloc(sizeof(float) * n);
    double f0 = ge_objective_eval(&o, x, g);
    int ok = isfinite(f0);
    double gmax = max_abs(g, n);
    if (!(gmax > 0)) ok = 0;
    /* the coordinates: largest |g| first (one pass per pick), then spread */
    size_t idx[32];
    int m = 0;
    for (int t = 0; t < n_top && ok; t++) {
        size_t best = 0;
        double bv = -1;
        for (size_t i = 0; i < n; i++) {
            int used = 0;
            for (int j = 0; j < m; j++)
                used |= idx[j] == i;
            if (!used && fabs(g[i]) > bv) bv = fabs(g[i]), best = i;
        }
        idx[m++] = best;
    }
    for (int t = 0; t < n_spread && ok; t++)
        idx[m++] = (size_t)((t + 0.5) * n / n_spread);
    fd_ctx c = {&o, scratch};
    const float eps = 1e-3f;
    for (int j = 0; j < m && ok; j++) {
        size_t i = idx[j];
        float keep = x[i];
        x[i] = keep + eps;
        double fp = fd_value(&c, x);
        x[i] = keep - eps;
        double fm = fd_value(&c, x);
        x[i] = keep;
        double fd = (fp - fm) / ((double)(keep + eps) - (double)(keep - eps));
        double tol = 0.01 * gmax + 0.03 * fabs(g[i]);
        if (!(fabs(fd - g[i]) <= tol)) {
            fprintf(stderr,
                    "  %s: coordinate %zu (restart %zu): finite difference %.6g, analytic %.6g "
                    "(max |g| %.3g)\n",
                    what, i, i / L, fd, g[i], gmax);
            ok = 0;
        }
    }
    free(g);
    free(scratch);
    ge_objective_free(&o);
    return ok;
}

/* Every term of the objective on its own, for latents x (2, L) of space sp. */
static int check_all_terms(const char *name, const fixture *f, ge_latent_space sp, int n_top,
                           int n_spread) {
    const int K = 2;
    size_t L = ge_generator_latent_size(f->g, sp), n = K * L;
    size_t img = (size_t)3 * f->R * f->R;
    float *x = malloc(sizeof(float) * n), *start = malloc(sizeof(float) * n);
    float *away = malloc(sizeof(float) * img);
    make_latents(f, sp, K, 11, x);
    ge_rng rng;
    ge_rng_seed(&rng, 12);
    for (size_t i = 0; i < n; i++)
        start[i] = x[i] + 0.2f * ge_rng_normal(&rng);
    /* for L1: a target 0.1 away from G(x0) everywhere, so no pixel sits near its kink
       for either restart within the finite-difference step */
    float *gimg = malloc(sizeof(float) * K * img);
    ge_generator_forward(f->g, gimg, x, sp, K, NULL);
    for (size_t i = 0; i < img; i++) {
        float d = 0.5f * (gimg[i] + gimg[img + i]);
        away[i] = d + (gimg[i] > gimg[img + i] ? 0.1f : -0.1f) +
                  (gimg[i] > gimg[img + i] ? 0.5f : -0.5f) * fabsf(gimg[i] - gimg[img + i]);
    }
    free(gimg);
    char what[128];
    int ok = 1;
    ge_edit_params p;
    /* pixel L2, masked */
    base_params(&p, f, sp);
    p.w_pixel = 1;
    snprintf(what, sizeof what, "%s pixel L2 (mask)", name);
    ok = ok && grad_check(what, f, &p, f->mask, f->target, K, x, start, n_top, n_spread);
    /* pixel L1 away from kinks, no mask */
    base_params(&p, f, sp);
    p.w_pixel = 0.5f;
    p.pixel_l1 = 1;
    snprintf(what, sizeof what, "%s pixel L1", name);
    ok = ok && grad_check(what, f, &p, NULL, away, K, x, start, n_top, n_spread);
    /* perceptual, every default layer, masked */
    base_params(&p, f, sp);
    p.w_perceptual = 0.7f;
    snprintf(what, sizeof what, "%s perceptual (mask)", name);
    ok = ok && grad_check(what, f, &p, f->mask, f->target, K, x, start, n_top, n_spread);
    /* style on three layers, one of them a ReLU output, masked */
    base_params(&p, f, sp);
    p.w_style = 2.f;
    p.style_layers = "conv1_2,relu2_1,conv3_1";
    snprintf(what, sizeof what, "%s style (mask)", name);
    ok = ok && grad_check(what, f, &p, f->mask, f->target, K, x, start, n_top, n_spread);
    /* regulariser (with a tiny pixel term, since some image term is required) */
    base_params(&p, f, sp);
    p.w_pixel = 1e-4f;
    p.w_reg = 3.f;
    snprintf(what, sizeof what, "%s reg", name);
    ok = ok && grad_check(what, f, &p, NULL, f->target, K, x, start, n_top, n_spread);
    free(x);
    free(start);
    free(away);
    return ok;
}

TEST(edit_grad_dcgan_z) {
    fixture f;
    CHECK(fixture_load(&f, DCGAN_PATH, 1), "load: %s", ge_errmsg());
    int ok = check_all_terms("dcgan z", &f, GE_LATENT_Z, 2, 2);
    fixture_free(&f);
    CHECK(ok, "gradient mismatch (see above)");
}

TEST(edit_grad_sg2_w) {
    fixture f;
    CHECK(fixture_load(&f, SG2_PATH, 1), "load: %s", ge_errmsg());
    int ok = check_all_terms("stylegan2 w", &f, GE_LATENT_W, 2, 1);
    fixture_free(&f);
    CHECK(ok, "gradient mismatch (see above)");
}

TEST(edit_grad_sg2_wplus) {
    fixture f;
    CHECK(fixture_load(&f, SG2_PATH, 1), "load: %s", ge_errmsg());
    int ok = check_all_terms("stylegan2 w+", &f, GE_LATENT_WPLUS, 2, 1);
    fixture_free(&f);
    CHECK(ok, "gradient mismatch (see above)");
}

/* The terms' values against a direct computation from the images. */
TEST(edit_objective_values) {
    fixture f;
    CHECK(fixture_load(&f, DCGAN_PATH, 0), "load: %s", ge_errmsg());
    const int K = 2, R = f.R;
    size_t L = 100, RR = (size_t)R * R;
    float x[200], start[200], g[200];
    make_latents(&f, GE_LATENT_Z, K, 3, x);
    for (int i = 0; i < 200; i++)
        start[i] = x[i] * 0.5f;
    ge_edit_params p;
    base_params(&p, &f, GE_LATENT_Z);
    p.w_pixel = 0.3f;
    p.w_reg = 0.1f;
    ge_objective o;
    CHECK(ge_objective_init(&o, f.g, NULL, f.target, f.mask, &p, K, start) == GE_OK, "%s",
          ge_errmsg());
    double tot = ge_objective_eval(&o, x, g);
    double want_tot = 0;
    for (int k = 0; k < K; k++) {
        double s = 0, ms = 0, r = 0;
        for (size_t i = 0; i < RR; i++) {
            ms += f.mask[i];
            for (int c = 0; c < 3; c++) {
                double d = (double)o.img[k * 3 * RR + c * RR + i] - f.target[c * RR + i];
                s += f.mask[i] * d * d;
            }
        }
        for (size_t i = 0; i < L; i++)
            r += ((double)x[k * L + i] - start[k * L + i]) * (x[k * L + i] - start[k * L + i]);
        double pix = s / (3 * ms), reg = r / L, t = 0.3 * pix + 0.1 * reg;
        const double *got = o.terms + k * GE_N_TERMS;
        CHECK(fabs(got[GE_TERM_PIXEL] - pix) <= 1e-5 * pix, "restart %d pixel %.8g want %.8g", k,
              got[GE_TERM_PIXEL], pix);
        CHECK(fabs(got[GE_TERM_REG] - reg) <= 1e-6 * reg, "restart %d reg %.8g want %.8g", k,
              got[GE_TERM_REG], reg);
        CHECK(fabs(got[GE_TERM_TOTAL] - t) <= 1e-5 * t, "restart %d total %.8g want %.8g", k,
              got[GE_TERM_TOTAL], t);
        want_tot += t;
    }
    CHECK(fabs(tot - want_tot) <= 1e-5 * want_tot, "sum %.8g want %.8g", tot, want_tot);
    ge_objective_free(&o);
    fixture_free(&f);
}

/* Restart k's terms, image and gradient depend only on restart k's latent. */
TEST(edit_restarts_independent) {
    fixture f;
    CHECK(fixture_load(&f, DCGAN_PATH, 1), "load: %s", ge_errmsg());
    const int K = 2;
    size_t L = 100, img = (size_t)3 * f.R * f.R;
    float x[200], x2[200], start[200], g1[200], g2[200], g0[100];
    make_latents(&f, GE_LATENT_Z, K, 21, x);
    make_latents(&f, GE_LATENT_Z, K, 22, start);
    memcpy(x2, x, sizeof x);
    for (size_t i = L; i < 2 * L; i++)
        x2[i] = -x[i] * 0.7f; /* a different restart 1 */
    ge_edit_params p;
    base_params(&p, &f, GE_LATENT_Z);
    p.w_pixel = 0.3f;
    p.w_perceptual = 0.7f;
    p.w_style = 1.f;
    p.w_reg = 0.05f;
    ge_objective o, o1;
    CHECK(ge_objective_init(&o, f.g, f.vgg, f.target, f.mask, &p, K, start) == GE_OK, "%s",
          ge_errmsg());
    double a = ge_objective_eval(&o, x, g1);
    double ta[GE_N_TERMS], tb[GE_N_TERMS];
    memcpy(ta, o.terms, sizeof ta);
    float *img_a = malloc(sizeof(float) * img);
    memcpy(img_a, o.img, sizeof(float) * img);
    double b = ge_objective_eval(&o, x2, g2);
    memcpy(tb, o.terms, sizeof tb);
    int same_img = max_abs_diff(img_a, o.img, img) <= 1e-6;
    double restart1_change = fabs(o.terms[GE_N_TERMS] - (a - ta[0]));
    ge_objective_free(&o);
    CHECK(restart1_change > 1e-3, "restart 1 did not change (%g)", restart1_change);
    CHECK(fabs(a - b) > 1e-3, "the total did not change");
    for (int t = 0; t < GE_N_TERMS; t++)
        CHECK(fabs(ta[t] - tb[t]) <= 1e-6 * fabs(ta[t]) + 1e-12,
              "term %d of restart 0: %.9g then %.9g", t, ta[t], tb[t]);
    CHECK(same_img, "restart 0's image changed with restart 1's latent");
    CHECK(max_abs_diff(g1, g2, L) <= 1e-6 * max_abs(g1, L), "restart 0's gradient changed: %g",
          max_abs_diff(g1, g2, L));
    /* and restart 0 alone (K = 1) gives the same terms and gradient */
    CHECK(ge_objective_init(&o1, f.g, f.vgg, f.target, f.mask, &p, 1, start) == GE_OK, "%s",
          ge_errmsg());
    ge_objective_eval(&o1, x, g0);
    double t1[GE_N_TERMS];
    memcpy(t1, o1.terms, sizeof t1);
    ge_objective_free(&o1);
    free(img_a);
    fixture_free(&f);
    for (int t = 0; t < GE_N_TERMS; t++)
        CHECK(fabs(ta[t] - t1[t]) <= 1e-5 * fabs(ta[t]) + 1e-12, "term %d: batch %.9g alone %.9g",
              t, ta[t], t1[t]);
    CHECK(max_abs_diff(g1, g0, L) <= 1e-4 * max_abs(g0, L), "gradient batch vs alone: %g",
          max_abs_diff(g1, g0, L));
}

/* ---- the optimisation loop ----------------------------------------------------- */

TEST(edit_adam_and_lbfgs_lower_loss) {
    fixture f;
    CHECK(fixture_load(&f, DCGAN_PATH, 1), "load: %s", ge_errmsg());
    for (int opt = 0; opt < 2; opt++) {
        ge_edit_params p;
        ge_edit_params_init(&p, f.g); /* spec defaults: pixel 0.3 + perceptual 0.7, mean start */
        p.optimizer = opt ? GE_OPT_LBFGS : GE_OPT_ADAM;
        p.steps = opt ? 2 : 6;
        ge_edit_result r;
        ge_status s = ge_edit_run(f.g, f.vgg, f.target, NULL, &p, &r);
        CHECK(s == GE_OK, "%s: %s", opt ? "lbfgs" : "adam", ge_errmsg());
        double first = r.history[GE_TERM_TOTAL],
               last = r.history[(size_t)r.steps_done * GE_N_TERMS];
        int steps = r.steps_done, evals = r.evals;
        double best = r.history[(size_t)r.best_step * GE_N_TERMS];
        ge_edit_result_free(&r);
        CHECK(steps == p.steps, "%d steps of %d", steps, p.steps);
        CHECK(last < 0.99 * first, "%s: loss %g -> %g", opt ? "lbfgs" : "adam", first, last);
        CHECK(best <= last, "best %g > last %g", best, last);
        CHECK(evals >= steps + 1, "%d evaluations", evals);
    }
    fixture_free(&f);
}

/* The objective at one latent alone (K = 1), for re-checking a result. */
static double loss_at(const fixture *f, const ge_edit_params *p, const float *mask,
                      const float *lat, const float *start, float *img) {
    ge_objective o;
    size_t L = ge_generator_latent_size(f->g, p->space);
    float *g = malloc(sizeof(float) * L);
    double v = NAN;
    if (ge_objective_init(&o, f->g, f->vgg, f->target, mask, p, 1, start) == GE_OK) {
        v = ge_objective_eval(&o, lat, g);
        if (img) memcpy(img, o.img, sizeof(float) * 3 * f->R * f->R);
    }
    ge_objective_free(&o);
    free(g);
    return v;
}

TEST(edit_restarts_keep_best) {
    fixture f;
    CHECK(fixture_load(&f, DCGAN_PATH, 0), "load: %s", ge_errmsg());
    ge_edit_params p;
    base_params(&p, &f, GE_LATENT_Z);
    p.w_pixel = 1;
    p.init = GE_INIT_RANDOM;
    p.restarts = 4;
    p.steps = 3;
    p.lr = 0.02f;
    p.seed = 7;
    ge_edit_result r;
    CHECK(ge_edit_run(f.g, NULL, f.target, NULL, &p, &r) == GE_OK, "%s", ge_errmsg());
    int b = r.best_restart;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < 4; k++)
        lo = fmin(lo, r.restart_loss[k]), hi = fmax(hi, r.restart_loss[k]);
    double rl = r.restart_loss[b], hist = r.history[(size_t)r.best_step * GE_N_TERMS];
    /* the returned latent really has that loss, and the image is its image */
    size_t img1 = (size_t)3 * f.R * f.R;
    float *img = malloc(sizeof(float) * img1);
    ge_edit_params p1 = p;
    p1.restarts = 1;
    double again = loss_at(&f, &p1, NULL, r.latent, r.latent, img);
    double d_img = max_abs_diff(img, r.image, img1);
    free(img);
    ge_edit_result_free(&r);
    fixture_free(&f);
    CHECK(hi - lo > 1e-3 * lo, "random restarts gave the same loss (%g .. %g)", lo, hi);
    CHECK(rl == lo, "best restart %d has %g, the lowest is %g", b, rl, lo);
    CHECK(hist == rl, "history at the best step %g vs restart loss %g", hist, rl);
    CHECK(fabs(again - rl) <= 1e-5 * rl, "re-evaluated %g vs %g", again, rl);
    CHECK(d_img <= 1e-5, "image differs from G(latent) by %g", d_img);
}

/* Start images: mean of N draws, one draw, or the given latent. */
TEST(edit_init_modes) {
    fixture f;
    CHECK(fixture_load(&f, DCGAN_PATH, 0), "load: %s", ge_errmsg());
    size_t img1 = (size_t)3 * f.R * f.R;
    float *want = malloc(sizeof(float) * img1);
    float z[10 * 100], zm[100];
    ge_edit_params p;
    base_params(&p, &f, GE_LATENT_Z);
    p.w_pixel = 1;
    p.steps = 1;
    p.seed = 99;
    ge_edit_result r;
    /* mean of 10 draws of U(-1, 1), the seed's stream */
    ge_rng rng;
    ge_rng_seed(&rng, 99);
    ge_rng_fill_uniform(&rng, z, 1000, -1.f, 1.f);
    for (int i = 0; i < 100; i++) {
        double s = 0;
        for (int j = 0; j < 10; j++)
            s += z[j * 100 + i];
        zm[i] = (float)(s / 10);
    }
    ge_generator_forward(f.g, want, zm, GE_LATENT_Z, 1, NULL);
    p.init = GE_INIT_MEAN;
    p.init_samples = 10;
    CHECK(ge_edit_run(f.g, NULL, f.target, NULL, &p, &r) == GE_OK, "%s", ge_errmsg());
    double d_mean = max_abs_diff(r.start_image, want, img1);
    ge_edit_result_free(&r);
    CHECK(d_mean <= 1e-5, "mean start differs by %g", d_mean);
    /* random: the first draw alone */
    ge_generator_forward(f.g, want, z, GE_LATENT_Z, 1, NULL);
    p.init = GE_INIT_RANDOM;
    CHECK(ge_edit_run(f.g, NULL, f.target, NULL, &p, &r) == GE_OK, "%s", ge_errmsg());
    double d_rand = max_abs_diff(r.start_image, want, img1);
    double d_rand_mean = max_abs_diff(r.start_image, f.target, img1);
    ge_edit_result_free(&r);
    CHECK(d_rand <= 1e-5, "random start differs by %g", d_rand);
    CHECK(d_rand_mean > 0.05, "start image equals the target?");
    /* given */
    for (int i = 0; i < 100; i++)
        zm[i] = 0.5f * z[500 + i];
    ge_generator_forward(f.g, want, zm, GE_LATENT_Z, 1, NULL);
    p.init = GE_INIT_GIVEN;
    p.init_latent = zm;
    p.restarts = 2; /* every restart starts there */
    CHECK(ge_edit_run(f.g, NULL, f.target, NULL, &p, &r) == GE_OK, "%s", ge_errmsg());
    double d_given = max_abs_diff(r.start_image, want, img1);
    double moved = max_abs_diff(r.latent, zm, 100);
    double l0 = r.restart_loss[0], l1 = r.restart_loss[1];
    ge_edit_result_free(&r);
    CHECK(d_given <= 1e-5, "given start differs by %g", d_given);
    CHECK(moved > 1e-4 && moved < 0.01, "one Adam step moved the latent by %g", moved);
    CHECK(fabs(l0 - l1) <= 1e-6 * l0, "identical restarts ended apart: %g %g", l0, l1);
    free(want);
    fixture_free(&f);
}

/* StyleGAN2 w: the mean start is the mean of mapped samples. */
TEST(edit_init_mean_w) {
    fixture f;
    CHECK(fixture_load(&f, SG2_PATH, 0), "load: %s", ge_errmsg());
    const ge_gen_info *in = ge_generator_info(f.g);
    size_t img1 = (size_t)3 * f.R * f.R, row = (size_t)in->num_ws * in->w_dim;
    int N = 5;
    float *z = malloc(sizeof(float) * N * in->z_dim), *ws = malloc(sizeof(float) * N * row);
    float *wm = malloc(sizeof(float) * in->w_dim), *want = malloc(sizeof(float) * img1);
    ge_rng rng;
    ge_rng_seed(&rng, 5);
    ge_rng_fill_normal(&rng, z, (size_t)N * in->z_dim);
    CHECK(ge_generator_mapping(f.g, ws, z, N, NULL) == GE_OK, "%s", ge_errmsg());
    for (int i = 0; i < in->w_dim; i++) {
        double s = 0;
        for (int j = 0; j < N; j++)
            s += ws[j * row + i];
        wm[i] = (float)(s / N);
    }
    ge_generator_forward(f.g, want, wm, GE_LATENT_W, 1, NULL);
    ge_edit_params p;
    base_params(&p, &f, GE_LATENT_W);
    p.w_pixel = 1;
    p.steps = 1;
    p.seed = 5;
    p.init_samples = N;
    ge_edit_result r;
    CHECK(ge_edit_run(f.g, NULL, f.target, NULL, &p, &r) == GE_OK, "%s", ge_errmsg());
    double d = max_abs_diff(r.start_image, want, img1);
    size_t L = r.latent_size, w_dim = (size_t)in->w_dim;
    ge_edit_result_free(&r);
    /* ge_edit_start_latents gives the same start, and a second restart its own */
    float starts[2 * 512];
    ge_status st = L <= 512 ? ge_edit_start_latents(f.g, &p, 5, 2, starts) : GE_ERR_ARG;
    double d_start = st == GE_OK ? max_abs_diff(starts, wm, L) : 1;
    double d_second = st == GE_OK ? max_abs_diff(starts + L, wm, L) : 0;
    free(z);
    free(ws);
    free(wm);
    free(want);
    fixture_free(&f);
    CHECK(L == w_dim, "w latent size %zu", L);
    CHECK(d <= 1e-5, "mean-w start differs by %g", d);
    CHECK(st == GE_OK && d_start == 0, "ge_edit_start_latents: %s, differs by %g",
          st == GE_OK ? "ok" : ge_errmsg(), d_start);
    CHECK(d_second > 1e-3, "the second restart starts where the first does");
}

typedef struct {
    volatile int *stop;
    int at;
    int calls;
} stopper;

static int stop_at(void *user, int step, int steps, const double *terms, double secs) {
    stopper *s = user;
    s->calls++;
    if (step == s->at) *s->stop = 2; /* as a SIGINT handler would */
    return 0;
}

TEST(edit_stop_flag) {
    fixture f;
    CHECK(fixture_load(&f, DCGAN_PATH, 0), "load: %s", ge_errmsg());
    volatile int flag = 0;
    stopper st = {&flag, 4, 0};
    ge_edit_params p;
    base_params(&p, &f, GE_LATENT_Z);
    p.w_pixel = 1;
    p.steps = 1000;
    p.lr = 0.3f; /* large: Adam overshoots, so the best step is not always the last */
    p.stop = &flag;
    p.progress = stop_at;
    p.user = &st;
    ge_edit_result r;
    CHECK(ge_edit_run(f.g, NULL, f.target, NULL, &p, &r) == GE_OK, "%s", ge_errmsg());
    int done = r.steps_done, stopped = r.stopped, bs = r.best_step;
    double lo = INFINITY;
    for (int i = 0; i <= done; i++)
        lo = fmin(lo, r.history[(size_t)i * GE_N_TERMS]);
    double best = r.history[(size_t)bs * GE_N_TERMS];
    float lat[100];
    memcpy(lat, r.latent, sizeof lat);
    ge_edit_result_free(&r);
    CHECK(done == 4 && stopped && st.calls == 4, "stopped at %d (stopped %d, %d calls)", done,
          stopped, st.calls);
    CHECK(best == lo, "returned step %d with %g, the lowest is %g", bs, best, lo);
    ge_edit_params p1 = p;
    p1.restarts = 1;
    double again = loss_at(&f, &p1, NULL, lat, lat, NULL);
    CHECK(fabs(again - best) <= 1e-5 * best, "the latent's loss %g vs %g", again, best);
    /* a flag already set: no step at all, the start is returned */
    flag = 1;
    p.progress = NULL;
    CHECK(ge_edit_run(f.g, NULL, f.target, NULL, &p, &r) == GE_OK, "%s", ge_errmsg());
    done = r.steps_done, stopped = r.stopped;
    double dimg = max_abs_diff(r.image, r.start_image, (size_t)3 * f.R * f.R);
    ge_edit_result_free(&r);
    fixture_free(&f);
    CHECK(done == 0 && stopped && dimg == 0, "pre-set flag: %d steps, stopped %d, image moved %g",
          done, stopped, dimg);
}

/* ---- bad parameters ------------------------------------------------------------- */

/* Runs with one thing wrong; checks the status from ge_edit_check and
 * ge_edit_run, a message, and an empty result. */
static int refuses(const fixture *f, const ge_edit_params *p, const float *target,
                   const float *mask, ge_status want, const char *needle) {
    ge_edit_result r;
    memset(&r, 0x5a, sizeof r);
    ge_status c = ge_edit_check(f->g, f->vgg, target, mask, p);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ge_errmsg());
    ge_status s = ge_edit_run(f->g, f->vgg, target, mask, p, &r);
    int ok = c == want && s == want && !r.latent && !r.history && !r.image && !r.restart_loss &&
             strstr(msg, needle) && strstr(ge_errmsg(), needle);
    if (!ok)
        fprintf(stderr, "  wanted %s with '%s': check %s (%s), run %s (%s)\n", ge_status_name(want),
                needle, ge_status_name(c), msg, ge_status_name(s), ge_errmsg());
    ge_edit_result_free(&r);
    return ok;
}

TEST(edit_bad_params) {
    fixture f;
    CHECK(fixture_load(&f, DCGAN_PATH, 1), "load: %s", ge_errmsg());
    ge_edit_params p0, p;
    ge_edit_params_init(&p0, f.g);
    p0.steps = 2;
    p = p0, p.steps = 0;
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "steps"), "steps 0");
    p = p0, p.layers = "conv1_1,conv9_1";
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "conv9_1"), "unknown layer");
    p = p0, p.layers = "conv1_3"; /* block 1 has two convs */
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "conv1_3"), "conv1_3");
    p = p0, p.layers = "conv1_1,pixels";
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "pixels"), "unknown layer");
    p = p0, p.layers = "conv2_1,conv4_1";
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "conv3_1"), "layer deeper than the VGG");
    p = p0, p.layers = "";
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "no perceptual layers"), "empty layer list");
    p = p0, p.w_style = 1, p.style_layers = "relu5_4";
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "relu5_4"),
          "style layer deeper than the VGG");
    p = p0, p.w_pixel = -1;
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "weights"), "negative weight");
    p = p0, p.w_pixel = 0, p.w_perceptual = 0;
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "nothing to optimise"), "all weights 0");
    p = p0, p.restarts = 0;
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "restarts"), "restarts 0");
    p = p0, p.lr = 0;
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "learning rate"), "lr 0");
    p = p0, p.space = GE_LATENT_WPLUS;
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "only a z latent"), "w+ on a DCGAN");
    p = p0, p.init = GE_INIT_GIVEN, p.init_latent = NULL;
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_ARG, "initial latent"), "no given latent");
    float bad_lat[100] = {0};
    bad_lat[37] = INFINITY;
    p = p0, p.init = GE_INIT_GIVEN, p.init_latent = bad_lat;
    CHECK(refuses(&f, &p, f.target, NULL, GE_ERR_NUMERIC, "NaN or Inf"), "Inf in the given latent");
    size_t RR = (size_t)f.R * f.R;
    float *empty = calloc(RR, sizeof(float)), *tnan = malloc(sizeof(float) * 3 * RR);
    memcpy(tnan, f.target, sizeof(float) * 3 * RR);
    tnan[1234] = NAN;
    CHECK(refuses(&f, &p0, f.target, empty, GE_ERR_ARG, "mask is empty"), "empty mask");
    empty[5] = 1.5f;
    CHECK(refuses(&f, &p0, f.target, empty, GE_ERR_ARG, "[0, 1]"), "mask out of range");
    CHECK(refuses(&f, &p0, tnan, NULL, GE_ERR_NUMERIC, "NaN"), "NaN in the target");
    /* a perceptual loss without a VGG */
    ge_vgg *v = f.vgg;
    f.vgg = NULL;
    CHECK(refuses(&f, &p0, f.target, NULL, GE_ERR_ARG, "VGG"), "no VGG");
    f.vgg = v;
    free(empty);
    free(tnan);
    fixture_free(&f);
}
