/* test_stylegan2.c - the StyleGAN2-ADA generator (src/models/stylegan2.c)
 * against the official NVlabs code's outputs in shared/ref (stylegan2_g1:
 * 32x32 without conv_clamp; stylegan2_g2: 64x64 with conv_clamp 256 and
 * clamping exercised): mapping (ws, ws_trunc), images in the three noise and
 * truncation settings, the per-block debugging tensors, d_ws and d_z; then
 * the latent spaces against each other, options, noise modes, workspace
 * reuse across batch sizes, a finite-difference check of every latent space
 * on tiny random generators (with and without clamping), and the errors for
 * files that are not a StyleGAN2 ganedit can run. */
#include "ganedit.h"
#include "harness.h"
#include "st_write.h"
#include "models/models.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------- */

/* Opens a StyleGAN2 weight file through ge_generator_load. */
static ge_generator *open_gen(const char *path, const ge_gen_options *opt, ge_status *st) {
    ge_generator *g = NULL;
    *st = ge_generator_load(&g, path, opt);
    return *st == GE_OK ? g : NULL;
}

static const ge_tensor *need(const ge_tensors *t, const char *name) {
    const ge_tensor *x = ge_tensors_find(t, name);
    if (!x) fprintf(stderr, "  missing tensor '%s' in reference file\n", name);
    return x;
}

/* max |a - b| / max(1, max |b|): the forward tolerance measure. */
static double rel_max(const float *a, const float *b, size_t n) {
    double m = max_abs(b, n);
    return max_abs_diff(a, b, n) / (m > 1 ? m : 1);
}

/* The reference models: weight file, io file, sizes. */
typedef struct {
    const char *weights, *weights_pt, *io;
    int res, z_dim, w_dim, num_ws, n, c_last;
    size_t params;
    double clamp;
} ref_model;

static const ref_model G1 = {"ref/stylegan2_g1.safetensors",
                             "ref/stylegan2_g1.pt",
                             "ref/stylegan2_g1_io.safetensors",
                             32,
                             64,
                             64,
                             8,
                             4,
                             64,
                             342291,
                             -1};
static const ref_model G2 = {"ref/stylegan2_g2.safetensors",
                             "ref/stylegan2_g2.pt",
                             "ref/stylegan2_g2_io.safetensors",
                             64,
                             128,
                             128,
                             10,
                             2,
                             32,
                             439720,
                             256};

/* Everything a reference check needs, opened together. */
typedef struct {
    ge_generator *g;
    ge_tensors *io;
    const ge_tensor *z, *ws, *ws_trunc, *img, *img_trunc, *img_none, *r, *d_ws, *d_z;
    float *out, *grad;
} ref_run;

static void ref_close(ref_run *rr) {
    ge_generator_free(rr->g);
    ge_tensors_free(rr->io);
    free(rr->out);
    free(rr->grad);
    memset(rr, 0, sizeof *rr);
}

/* 1 on success; on failure prints why and closes. */
static int ref_open(ref_run *rr, const ref_model *m) {
    memset(rr, 0, sizeof *rr);
    ge_status s;
    rr->g = open_gen(shared_path(m->weights), NULL, &s);
    if (!rr->g) {
        fprintf(stderr, "  load %s: %s\n", m->weights, ge_errmsg());
        return 0;
    }
    if (ge_safetensors_load(&rr->io, shared_path(m->io)) != GE_OK) {
        fprintf(stderr, "  load %s: %s\n", m->io, ge_errmsg());
        ref_close(rr);
        return 0;
    }
    rr->z = need(rr->io, "z");
    rr->ws = need(rr->io, "ws");
    rr->ws_trunc = need(rr->io, "ws_trunc");
    rr->img = need(rr->io, "img");
    rr->img_trunc = need(rr->io, "img_trunc");
    rr->img_none = need(rr->io, "img_noise_none");
    rr->r = need(rr->io, "r");
    rr->d_ws = need(rr->io, "d_ws");
    rr->d_z = need(rr->io, "d_z");
    size_t ni = (size_t)m->n * 3 * m->res * m->res, nw = (size_t)m->n * m->num_ws * m->w_dim;
    int ok = rr->z && rr->ws && rr->ws_trunc && rr->img && rr->img_trunc && rr->img_none && rr->r &&
             rr->d_ws && rr->d_z && rr->z->numel == (size_t)m->n * m->z_dim &&
             rr->ws->numel == nw && rr->ws_trunc->numel == nw && rr->img->numel == ni &&
             rr->img_trunc->numel == ni && rr->img_none->numel == ni && rr->r->numel == ni &&
             rr->d_ws->numel == nw && rr->d_z->numel == (size_t)m->n * m->z_dim;
    if (ok) {
        rr->out = malloc(ni * sizeof(float));
        rr->grad = calloc(nw, sizeof(float));
        ok = rr->out && rr->grad;
    }
    if (!ok) {
        fprintf(stderr, "  reference tensors missing or of unexpected shapes\n");
        ref_close(rr);
    }
    return ok;
}

/* ---- reference models: info and mapping ---------------------------------------- */

static void check_info(int *test_failed_, const ref_model *m, const char *chans) {
    ge_status s;
    ge_generator *g = open_gen(shared_path(m->weights), NULL, &s);
    CHECK(g, "%s", ge_errmsg());
    ge_gen_info info = *ge_generator_info(g);
    size_t lz = ge_generator_latent_size(g, GE_LATENT_Z),
           lw = ge_generator_latent_size(g, GE_LATENT_W),
           lp = ge_generator_latent_size(g, GE_LATENT_WPLUS);
    ge_generator_free(g);
    CHECK(!strcmp(info.arch, "stylegan2"), "arch %s", info.arch);
    CHECK(info.resolution == m->res && info.z_dim == m->z_dim && info.w_dim == m->w_dim &&
              info.num_ws == m->num_ws && info.z_dist == GE_ZDIST_NORMAL,
          "res %d z %d w %d num_ws %d dist %d", info.resolution, info.z_dim, info.w_dim,
          info.num_ws, (int)info.z_dist);
    CHECK(info.num_params == m->params, "num_params %zu, expected %zu", info.num_params, m->params);
    CHECK(lz == (size_t)m->z_dim && lw == (size_t)m->w_dim && lp == (size_t)m->num_ws * m->w_dim,
          "latent sizes %zu %zu %zu", lz, lw, lp);
    CHECK(strstr(info.description, chans), "description '%s' lacks '%s'", info.description, chans);
    CHECK(strstr(info.description, m->clamp > 0 ? "conv_clamp 256" : "conv_clamp none"),
          "description '%s'", info.description);
}

TEST(sg2_info_g1) {
    check_info(test_failed_, &G1, "channels 4:64 8:64 16:64 32:64");
}
TEST(sg2_info_g2) {
    check_info(test_failed_, &G2, "channels 4:64 8:64 16:64 32:64 64:32");
}

static void check_mapping(int *test_failed_, const ref_model *m) {
    ref_run rr;
    CHECK(ref_open(&rr, m), "cannot open the reference");
    ge_gen_call call;
    ge_gen_call_init(&call);
    ge_status s = ge_generator_mapping(rr.g, rr.grad, rr.z->data, m->n, &call);
    double e1 = s == GE_OK ? rel_max(rr.grad, rr.ws->data, rr.ws->numel) : 1;
    call.truncation_psi = 0.7f;
    if (s == GE_OK) s = ge_generator_mapping(rr.g, rr.grad, rr.z->data, m->n, &call);
    double e2 = s == GE_OK ? rel_max(rr.grad, rr.ws_trunc->data, rr.ws_trunc->numel) : 1;
    /* cutoff: only the first 3 rows truncated */
    call.truncation_cutoff = 3;
    if (s == GE_OK) s = ge_generator_mapping(rr.g, rr.grad, rr.z->data, m->n, &call);
    double e3 = 0;
    for (int i = 0; s == GE_OK && i < m->n; i++)
        for (int r = 0; r < m->num_ws; r++) {
            size_t o = ((size_t)i * m->num_ws + r) * m->w_dim;
            const float *ref = (r < 3 ? rr.ws_trunc : rr.ws)->data + o;
            double e = rel_max(rr.grad + o, ref, (size_t)m->w_dim);
            if (e > e3) e3 = e;
        }
    ref_close(&rr);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(e1 <= 1e-5, "ws: rel err %.3g", e1);
    CHECK(e2 <= 1e-5, "ws_trunc: rel err %.3g", e2);
    CHECK(e3 <= 1e-5, "truncation cutoff 3: rel err %.3g", e3);
}

TEST(sg2_mapping_g1) {
    check_mapping(test_failed_, &G1);
}
TEST(sg2_mapping_g2) {
    check_mapping(test_failed_, &G2);
}

/* ---- reference models: images and block tensors ---------------------------------- */

static void check_images(int *test_failed_, const ref_model *m) {
    ref_run rr;
    CHECK(ref_open(&rr, m), "cannot open the reference");
    ge_gen_call call;
    ge_gen_call_init(&call);
    double e_img = 1, e_trunc = 1, e_none = 1, e_blk = 0;
    char worst_blk[32] = "";
    ge_status s =
        ge_generator_forward(rr.g, rr.out, rr.ws_trunc->data, GE_LATENT_WPLUS, m->n, &call);
    if (s == GE_OK) e_trunc = rel_max(rr.out, rr.img_trunc->data, rr.img_trunc->numel);
    call.noise = GE_NOISE_NONE;
    if (s == GE_OK)
        s = ge_generator_forward(rr.g, rr.out, rr.ws->data, GE_LATENT_WPLUS, m->n, &call);
    if (s == GE_OK) e_none = rel_max(rr.out, rr.img_none->data, rr.img_none->numel);
    call.noise = GE_NOISE_CONST;
    if (s == GE_OK)
        s = ge_generator_forward(rr.g, rr.out, rr.ws->data, GE_LATENT_WPLUS, m->n, &call);
    if (s == GE_OK) e_img = rel_max(rr.out, rr.img->data, rr.img->numel);
    /* per-block tensors of sample 0 from the img run */
    for (int res = 4; s == GE_OK && res <= m->res; res *= 2) {
        char nx[32], ni[32];
        snprintf(nx, sizeof nx, "b%d_x", res);
        snprintf(ni, sizeof ni, "b%d_img", res);
        const ge_tensor *tx = need(rr.io, nx), *ti = need(rr.io, ni);
        const float *x, *im;
        int c = 0;
        s = ge_stylegan2_debug_block(rr.g->impl, res, &x, &im, &c);
        if (s != GE_OK) break;
        if (!tx || !ti || tx->numel != (size_t)c * res * res ||
            ti->numel != (size_t)3 * res * res) {
            e_blk = 1;
            snprintf(worst_blk, sizeof worst_blk, "b%d shapes", res);
            break;
        }
        double ex = rel_max(x, tx->data, tx->numel), ei = rel_max(im, ti->data, ti->numel);
        if (ex > e_blk) e_blk = ex, snprintf(worst_blk, sizeof worst_blk, "%s", nx);
        if (ei > e_blk) e_blk = ei, snprintf(worst_blk, sizeof worst_blk, "%s", ni);
    }
    ref_close(&rr);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    fprintf(stderr,
            "  max err / max(1, max|ref|): img %.2g, img_trunc %.2g, img_noise_none %.2g, "
            "blocks %.2g\n",
            e_img, e_trunc, e_none, e_blk);
    CHECK(e_blk <= 1e-5, "block tensor %s: rel err %.3g", worst_blk, e_blk);
    CHECK(e_img <= 1e-5, "img: rel err %.3g", e_img);
    CHECK(e_trunc <= 1e-5, "img_trunc: rel err %.3g", e_trunc);
    CHECK(e_none <= 1e-5, "img_noise_none: rel err %.3g", e_none);
}

TEST(sg2_images_g1) {
    check_images(test_failed_, &G1);
}
TEST(sg2_images_g2) {
    check_images(test_failed_, &G2);
}

/* ---- reference models: gradients ---------------------------------------------- */

static void check_grads(int *test_failed_, const ref_model *m) {
    ref_run rr;
    CHECK(ref_open(&rr, m), "cannot open the reference");
    double e_ws = 1, l2_ws = 1, e_z = 1, l2_z = 1, e_add = 1,
           m_ws = max_abs(rr.d_ws->data, rr.d_ws->numel),
           m_z = max_abs(rr.d_z->data, rr.d_z->numel);
    ge_status s = ge_generator_forward(rr.g, rr.out, rr.ws->data, GE_LATENT_WPLUS, m->n, NULL);
    if (s == GE_OK) s = ge_generator_backward(rr.g, rr.grad, rr.r->data);
    if (s == GE_OK) {
        e_ws = max_abs_diff(rr.grad, rr.d_ws->data, rr.d_ws->numel) / m_ws;
        l2_ws = rel_l2(rr.grad, rr.d_ws->data, rr.d_ws->numel);
        s = ge_generator_backward(rr.g, rr.grad, rr.r->data); /* adds: now twice */
    }
    if (s == GE_OK) {
        e_add = 0;
        for (size_t i = 0; i < rr.d_ws->numel; i++) {
            double d = fabs(rr.grad[i] - 2.0 * rr.d_ws->data[i]) / m_ws;
            if (!(d <= e_add)) e_add = d;
        }
        s = ge_generator_forward(rr.g, rr.out, rr.z->data, GE_LATENT_Z, m->n, NULL);
    }
    if (s == GE_OK) {
        memset(rr.grad, 0, rr.d_z->numel * sizeof(float));
        s = ge_generator_backward(rr.g, rr.grad, rr.r->data);
    }
    if (s == GE_OK) {
        e_z = max_abs_diff(rr.grad, rr.d_z->data, rr.d_z->numel) / m_z;
        l2_z = rel_l2(rr.grad, rr.d_z->data, rr.d_z->numel);
    }
    ref_close(&rr);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    fprintf(stderr, "  d_ws: max err/max %.2g, rel L2 %.2g; d_z: max err/max %.2g, rel L2 %.2g\n",
            e_ws, l2_ws, e_z, l2_z);
    CHECK(e_ws <= 1e-4 && l2_ws <= 1e-4, "d_ws: max err / max %.3g, rel L2 %.3g", e_ws, l2_ws);
    CHECK(e_add <= 2e-4, "backward does not add: %.3g", e_add);
    CHECK(e_z <= 1e-4 && l2_z <= 1e-4, "d_z: max err / max %.3g, rel L2 %.3g", e_z, l2_z);
}

TEST(sg2_grads_g1) {
    check_grads(test_failed_, &G1);
}
TEST(sg2_grads_g2) {
    check_grads(test_failed_, &G2);
}

/* ---- latent spaces against each other ------------------------------------------ */

/* z with psi 0.7 = img_trunc; w (row 0 of ws) = img, and its gradient is the
 * row sum of d_ws. */
TEST(sg2_latent_spaces) {
    const ref_model *m = &G1;
    ref_run rr;
    CHECK(ref_open(&rr, m), "cannot open the reference");
    ge_gen_call call;
    ge_gen_call_init(&call);
    call.truncation_psi = 0.7f;
    double e_z = 1, e_w = 1, e_dw = 1;
    ge_status s = ge_generator_forward(rr.g, rr.out, rr.z->data, GE_LATENT_Z, m->n, &call);
    if (s == GE_OK) e_z = rel_max(rr.out, rr.img_trunc->data, rr.img_trunc->numel);
    float w[4 * 64], dw[4 * 64] = {0}, ref_dw[4 * 64] = {0};
    for (int i = 0; i < m->n; i++)
        for (int j = 0; j < m->w_dim; j++) {
            w[i * m->w_dim + j] = rr.ws->data[(size_t)i * m->num_ws * m->w_dim + j];
            for (int r = 0; r < m->num_ws; r++)
                ref_dw[i * m->w_dim + j] +=
                    rr.d_ws->data[((size_t)i * m->num_ws + r) * m->w_dim + j];
        }
    if (s == GE_OK) s = ge_generator_forward(rr.g, rr.out, w, GE_LATENT_W, m->n, NULL);
    if (s == GE_OK) e_w = rel_max(rr.out, rr.img->data, rr.img->numel);
    if (s == GE_OK) s = ge_generator_backward(rr.g, dw, rr.r->data);
    if (s == GE_OK)
        e_dw = max_abs_diff(dw, ref_dw, (size_t)m->n * m->w_dim) /
               max_abs(ref_dw, (size_t)m->n * m->w_dim);
    ref_close(&rr);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(e_z <= 1e-5, "z with psi 0.7 vs img_trunc: %.3g", e_z);
    CHECK(e_w <= 1e-5, "w vs img: %.3g", e_w);
    CHECK(e_dw <= 1e-4, "d_w vs row sums of d_ws: %.3g", e_dw);
}

/* ---- options: conv_clamp --------------------------------------------------------- */

TEST(sg2_conv_clamp_options) {
    const ref_model *m = &G2;
    ref_run rr;
    CHECK(ref_open(&rr, m), "cannot open the reference");
    ge_gen_options opt;
    ge_gen_options_init(&opt);
    opt.force_no_conv_clamp = 1;
    ge_status s;
    ge_generator *g = open_gen(shared_path(m->weights), &opt, &s);
    double e_off = 0, e_explicit = 1;
    if (g) {
        s = ge_generator_forward(g, rr.out, rr.ws->data, GE_LATENT_WPLUS, m->n, NULL);
        if (s == GE_OK) e_off = max_abs_diff(rr.out, rr.img->data, rr.img->numel);
        ge_generator_free(g);
    }
    /* an explicit 256 gives what the metadata says */
    ge_gen_options_init(&opt);
    opt.conv_clamp = 256;
    g = s == GE_OK ? open_gen(shared_path(m->weights), &opt, &s) : NULL;
    if (g) {
        s = ge_generator_forward(g, rr.out, rr.ws->data, GE_LATENT_WPLUS, m->n, NULL);
        if (s == GE_OK) e_explicit = rel_max(rr.out, rr.img->data, rr.img->numel);
        ge_generator_free(g);
    }
    ref_close(&rr);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    /* the README: without clamping img changes by up to 0.186 */
    CHECK(e_off > 0.1 && e_off < 0.3, "no clamp: img changed by %.3g", e_off);
    CHECK(e_explicit <= 1e-5, "conv_clamp 256 option: %.3g", e_explicit);
}

/* .pt and .safetensors give the same bytes; a bare .pt has no conv_clamp, so
 * g2 needs conv_clamp 256 given as an option. */
TEST(sg2_pt_matches_safetensors) {
    const ref_model *ms[2] = {&G1, &G2};
    for (int k = 0; k < 2; k++) {
        const ref_model *m = ms[k];
        ref_run rr;
        CHECK(ref_open(&rr, m), "cannot open the reference");
        size_t ni = rr.img->numel;
        float *a = malloc(ni * sizeof(float));
        ge_gen_options opt;
        ge_gen_options_init(&opt);
        ge_status s = ge_generator_forward(rr.g, rr.out, rr.ws->data, GE_LATENT_WPLUS, m->n, NULL);
        ge_generator *g = NULL;
        double e_same = 1, e_noclamp = 0;
        if (s == GE_OK && a) g = open_gen(shared_path(m->weights_pt), &opt, &s);
        if (g) {
            const ge_gen_info *info = ge_generator_info(g);
            if (info->num_params != m->params) s = GE_ERR_FORMAT;
            if (s == GE_OK)
                s = ge_generator_forward(g, a, rr.ws->data, GE_LATENT_WPLUS, m->n, NULL);
            if (s == GE_OK) e_noclamp = max_abs_diff(a, rr.out, ni);
            ge_generator_free(g);
            opt.conv_clamp = 256;
            g = s == GE_OK ? open_gen(shared_path(m->weights_pt), &opt, &s) : NULL;
        }
        if (g) {
            s = ge_generator_forward(g, a, rr.ws->data, GE_LATENT_WPLUS, m->n, NULL);
            if (s == GE_OK) e_same = memcmp(a, rr.out, ni * sizeof(float)) ? 1 : 0;
            ge_generator_free(g);
        }
        free(a);
        ref_close(&rr);
        CHECK(s == GE_OK, "%s: %s", m->weights_pt, ge_errmsg());
        CHECK(e_same == 0, "%s with conv_clamp 256 differs from the safetensors", m->weights_pt);
        if (m->clamp > 0)
            CHECK(e_noclamp > 0.1, "%s without the option should not clamp (diff %.3g)",
                  m->weights_pt, e_noclamp);
        else
            CHECK(e_noclamp == 0, "%s: no clamping anywhere, yet differs by %.3g", m->weights_pt,
                  e_noclamp);
    }
}

/* ---- noise modes and batches ------------------------------------------------------- */

TEST(sg2_noise_random) {
    const ref_model *m = &G1;
    ref_run rr;
    CHECK(ref_open(&rr, m), "cannot open the reference");
    size_t ni = rr.img->numel, per = ni / m->n;
    float *a = malloc(ni * sizeof(float)), *b = malloc(ni * sizeof(float)),
          *c = malloc(per * sizeof(float));
    ge_gen_call call;
    ge_gen_call_init(&call);
    call.noise = GE_NOISE_RANDOM;
    call.noise_seed = 7;
    ge_status s = a && b && c ? GE_OK : GE_ERR_NOMEM;
    if (s == GE_OK) s = ge_generator_forward(rr.g, a, rr.ws->data, GE_LATENT_WPLUS, m->n, &call);
    if (s == GE_OK) s = ge_generator_forward(rr.g, b, rr.ws->data, GE_LATENT_WPLUS, m->n, &call);
    int same_seed = s == GE_OK && !memcmp(a, b, ni * sizeof(float));
    /* sample 0 alone gets the same noise as in the batch */
    if (s == GE_OK) s = ge_generator_forward(rr.g, c, rr.ws->data, GE_LATENT_WPLUS, 1, &call);
    int batch_indep = s == GE_OK && rel_max(c, a, per) <= 1e-6; /* same noise, batched maths */
    call.noise_seed = 8;
    if (s == GE_OK) s = ge_generator_forward(rr.g, b, rr.ws->data, GE_LATENT_WPLUS, m->n, &call);
    double d_seed = s == GE_OK ? max_abs_diff(a, b, ni) : 0;
    double d_const = s == GE_OK ? max_abs_diff(a, rr.img->data, ni) : 0;
    double d_none = s == GE_OK ? max_abs_diff(a, rr.img_none->data, ni) : 0;
    /* the two samples of a batch get different noise: sample 1's image with
     * sample 0's ws differs from sample 0's */
    float ws2[2 * 8 * 64];
    memcpy(ws2, rr.ws->data, sizeof(float) * 8 * 64);
    memcpy(ws2 + 8 * 64, rr.ws->data, sizeof(float) * 8 * 64);
    if (s == GE_OK) s = ge_generator_forward(rr.g, b, ws2, GE_LATENT_WPLUS, 2, &call);
    double d_samples = s == GE_OK ? max_abs_diff(b, b + per, per) : 0;
    free(a);
    free(b);
    free(c);
    ref_close(&rr);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(same_seed, "the same seed gave different images");
    CHECK(batch_indep, "sample 0's noise depends on the batch size");
    CHECK(d_seed > 1e-3, "another seed changed nothing (%.3g)", d_seed);
    CHECK(d_const > 1e-3 && d_none > 1e-3, "random noise equals const or none (%.3g, %.3g)",
          d_const, d_none);
    CHECK(d_samples > 1e-3, "two samples got the same noise (%.3g)", d_samples);
}

/* The workspace is sized for the largest batch; smaller and larger batches
 * after it give the same per-sample results. */
TEST(sg2_batch_sizes) {
    const ref_model *m = &G1;
    ref_run rr;
    CHECK(ref_open(&rr, m), "cannot open the reference");
    size_t per = rr.img->numel / m->n, wper = (size_t)m->num_ws * m->w_dim;
    double e = 0;
    ge_status s = GE_OK;
    int order[4] = {1, 4, 2, 3};
    for (int k = 0; k < 4 && s == GE_OK; k++) {
        int n = order[k], off = m->n - n; /* the last n samples */
        s = ge_generator_forward(rr.g, rr.out, rr.ws->data + off * wper, GE_LATENT_WPLUS, n, NULL);
        if (s == GE_OK) {
            double ek = rel_max(rr.out, rr.img->data + off * per, n * per);
            if (ek > e) e = ek;
        }
        if (s == GE_OK) {
            memset(rr.grad, 0, n * wper * sizeof(float));
            s = ge_generator_backward(rr.g, rr.grad, rr.r->data + off * per);
        }
        if (s == GE_OK) {
            double ek = max_abs_diff(rr.grad, rr.d_ws->data + off * wper, n * wper) /
                        max_abs(rr.d_ws->data, rr.d_ws->numel);
            if (ek > e) e = ek;
        }
    }
    ref_close(&rr);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(e <= 1e-4, "batch sizes 1,4,2,3: worst error %.3g", e);
}

/* ---- tiny random generators -------------------------------------------------------- */

/* A tiny StyleGAN2 state dict: z 6, mapping 2 layers (6 -> 7 -> 5), w 5,
 * blocks b4 (4 channels) and b8 (3 channels), random values. */
typedef struct {
    char name[64];
    int ndim;
    int64_t shape[4];
    float *data;
    size_t numel;
} tiny_t;

#define TINY_MAX 64
typedef struct {
    tiny_t t[TINY_MAX];
    int n;
} tiny_sd;

static void tiny_add(tiny_sd *sd, ge_rng *rng, const char *name, int ndim, int64_t a, int64_t b,
                     int64_t c, int64_t d, float mean, float sd_) {
    tiny_t *t = &sd->t[sd->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    int64_t sh[4] = {a, b, c, d};
    t->numel = 1;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = sh[i], t->numel *= (size_t)sh[i];
    t->data = malloc(t->numel * sizeof(float));
    for (size_t i = 0; i < t->numel; i++)
        t->data[i] = mean + sd_ * ge_rng_normal(rng);
}

static void tiny_layer(tiny_sd *sd, ge_rng *rng, const char *p, int cin, int cout, int k, int res,
                       int wdim, int noise) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s.affine.weight", p);
    tiny_add(sd, rng, nm, 2, cin, wdim, 0, 0, 0, 1);
    snprintf(nm, sizeof nm, "%s.affine.bias", p);
    tiny_add(sd, rng, nm, 1, cin, 0, 0, 0, 1, 0.1f);
    snprintf(nm, sizeof nm, "%s.weight", p);
    tiny_add(sd, rng, nm, 4, cout, cin, k, k, 0, 1);
    snprintf(nm, sizeof nm, "%s.bias", p);
    tiny_add(sd, rng, nm, 1, cout, 0, 0, 0, 0, 0.1f);
    if (noise) {
        snprintf(nm, sizeof nm, "%s.noise_const", p);
        tiny_add(sd, rng, nm, 2, res, res, 0, 0, 0, 1);
        snprintf(nm, sizeof nm, "%s.noise_strength", p);
        tiny_add(sd, rng, nm, 0, 0, 0, 0, 0, 0.2f, 0.05f);
    }
}

static void tiny_make(tiny_sd *sd, uint64_t seed) {
    ge_rng rng;
    ge_rng_seed(&rng, seed);
    sd->n = 0;
    tiny_add(sd, &rng, "mapping.fc0.weight", 2, 7, 6, 0, 0, 0, 100); /* lr 0.01: raw weights big */
    tiny_add(sd, &rng, "mapping.fc0.bias", 1, 7, 0, 0, 0, 0, 10);
    tiny_add(sd, &rng, "mapping.fc1.weight", 2, 5, 7, 0, 0, 0, 100);
    tiny_add(sd, &rng, "mapping.fc1.bias", 1, 5, 0, 0, 0, 0, 10);
    tiny_add(sd, &rng, "mapping.w_avg", 1, 5, 0, 0, 0, 0, 0.3f);
    tiny_add(sd, &rng, "synthesis.b4.const", 3, 4, 4, 4, 0, 0, 1);
    tiny_layer(sd, &rng, "synthesis.b4.conv1", 4, 4, 3, 4, 5, 1);
    tiny_layer(sd, &rng, "synthesis.b4.torgb", 4, 3, 1, 4, 5, 0);
    tiny_layer(sd, &rng, "synthesis.b8.conv0", 4, 3, 3, 8, 5, 1);
    tiny_layer(sd, &rng, "synthesis.b8.conv1", 3, 3, 3, 8, 5, 1);
    tiny_layer(sd, &rng, "synthesis.b8.torgb", 3, 3, 1, 8, 5, 0);
}

static void tiny_free(tiny_sd *sd) {
    for (int i = 0; i < sd->n; i++)
        free(sd->t[i].data);
    sd->n = 0;
}

static tiny_t *tiny_find(tiny_sd *sd, const char *name) {
    for (int i = 0; i < sd->n; i++)
        if (!strcmp(sd->t[i].name, name)) return &sd->t[i];
    return NULL;
}

/* A generator straight from the tiny state dict (copies the data). */
static ge_status tiny_generator(ge_generator **out, const tiny_sd *sd, const ge_gen_options *opt) {
    *out = NULL;
    ge_tensors *w = ge_tensors_new();
    if (!w) return GE_ERR_NOMEM;
    for (int i = 0; i < sd->n; i++) {
        const tiny_t *t = &sd->t[i];
        float *d = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (!d || ge_tensors_own(w, d) != GE_OK) {
            ge_tensors_free(w);
            return GE_ERR_NOMEM;
        }
        memcpy(d, t->data, t->numel * sizeof(float));
        if (!ge_tensors_add(w, t->name, t->ndim, t->shape, d)) {
            ge_tensors_free(w);
            return GE_ERR_NOMEM;
        }
    }
    ge_generator *g = calloc(1, sizeof *g);
    if (!g) {
        ge_tensors_free(w);
        return GE_ERR_NOMEM;
    }
    ge_status s = ge_stylegan2_create(&g->vt, &g->impl, &g->info, w, "tiny", opt);
    if (s != GE_OK) {
        free(g);
        return s;
    }
    *out = g;
    return GE_OK;
}

/* Writes the tiny state dict as safetensors with optional metadata JSON. */
static int tiny_write(const char *path, const tiny_sd *sd, const char *meta) {
    st_entry e[TINY_MAX];
    for (int i = 0; i < sd->n; i++) {
        const tiny_t *t = &sd->t[i];
        e[i] = (st_entry){t->name, t->ndim, {t->shape[0], t->shape[1], t->shape[2], t->shape[3]},
                          t->data};
    }
    return st_write(path, e, sd->n, meta);
}

/* f(latent) = sum(G(latent) * r) in double, for the finite differences. */
typedef struct {
    ge_generator *g;
    ge_latent_space sp;
    int n;
    const ge_gen_call *call;
    const float *r;
    float *img;
    size_t ni;
} fd_ctx;

static double fd_loss(void *ctx, const float *x) {
    fd_ctx *c = ctx;
    if (ge_generator_forward(c->g, c->img, x, c->sp, c->n, c->call) != GE_OK) return NAN;
    double s = 0;
    for (size_t i = 0; i < c->ni; i++)
        s += (double)c->img[i] * c->r[i];
    return s;
}

static int fd_space(ge_generator *g, ge_latent_space sp, const ge_gen_call *call, uint64_t seed,
                    const char *what) {
    int n = 2;
    size_t nl = (size_t)n * ge_generator_latent_size(g, sp), ni = (size_t)n * 3 * 8 * 8;
    float x[2 * 4 * 6], dx[2 * 4 * 6] = {0}, r[2 * 3 * 8 * 8], img[2 * 3 * 8 * 8];
    ge_rng rng;
    ge_rng_seed(&rng, seed);
    ge_rng_fill_normal(&rng, x, nl);
    ge_rng_fill_normal(&rng, r, ni);
    if (ge_generator_forward(g, img, x, sp, n, call) != GE_OK ||
        ge_generator_backward(g, dx, r) != GE_OK) {
        fprintf(stderr, "  %s: %s\n", what, ge_errmsg());
        return 0;
    }
    fd_ctx c = {g, sp, n, call, r, img, ni};
    /* the tiny net bends sharply (few pixels, raw N(0,1) weights): a small
     * step, and an absolute tolerance above float32's noise at that step */
    return fd_check(what, fd_loss, &c, x, dx, nl, nl, 1e-3f, 3e-3, 1e-2);
}

/* Finite differences of d latent in every space, with truncation (psi 0.6,
 * cutoff 3), noise const/none, with and without conv_clamp. */
TEST(sg2_fd_tiny) {
    tiny_sd sd;
    tiny_make(&sd, 2024);
    ge_generator *g = NULL;
    ge_status s = tiny_generator(&g, &sd, NULL);
    tiny_free(&sd);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    ge_gen_call call;
    ge_gen_call_init(&call);
    int ok = fd_space(g, GE_LATENT_WPLUS, &call, 1, "w+") &&
             fd_space(g, GE_LATENT_W, &call, 2, "w") && fd_space(g, GE_LATENT_Z, &call, 3, "z");
    call.truncation_psi = 0.6f;
    call.truncation_cutoff = 3;
    call.noise = GE_NOISE_NONE;
    ok = ok && fd_space(g, GE_LATENT_WPLUS, &call, 4, "w+ psi 0.6 cutoff 3") &&
         fd_space(g, GE_LATENT_Z, &call, 5, "z psi 0.6 cutoff 3");
    ge_generator_free(g);
    CHECK(ok, "finite differences disagree");
}

TEST(sg2_fd_tiny_clamp) {
    tiny_sd sd;
    tiny_make(&sd, 77);
    ge_gen_options opt;
    ge_gen_options_init(&opt);
    ge_generator *g = NULL, *g0 = NULL;
    opt.conv_clamp = 1.0;
    ge_status s = tiny_generator(&g, &sd, &opt);
    if (s == GE_OK) s = tiny_generator(&g0, &sd, NULL);
    tiny_free(&sd);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    /* the clamp must bite somewhere for this test to mean anything */
    float x[2 * 4 * 5], a[2 * 3 * 8 * 8], b[2 * 3 * 8 * 8];
    ge_rng rng;
    ge_rng_seed(&rng, 9);
    ge_rng_fill_normal(&rng, x, 40);
    s = ge_generator_forward(g, a, x, GE_LATENT_WPLUS, 2, NULL);
    if (s == GE_OK) s = ge_generator_forward(g0, b, x, GE_LATENT_WPLUS, 2, NULL);
    double d = max_abs_diff(a, b, sizeof a / sizeof *a), mx = max_abs(a, sizeof a / sizeof *a);
    /* every conv output and b4's image (= its torgb output) stay within the
     * clamp; without it they go past */
    const float *x4 = NULL, *img4 = NULL, *x8 = NULL, *img8 = NULL;
    int c4 = 0, c8 = 0;
    double m_clamped = 0, m_free = 0;
    if (s == GE_OK) s = ge_stylegan2_debug_block(g->impl, 4, &x4, &img4, &c4);
    if (s == GE_OK) s = ge_stylegan2_debug_block(g->impl, 8, &x8, &img8, &c8);
    if (s == GE_OK) {
        m_clamped = fmax(fmax(max_abs(x4, 2 * (size_t)c4 * 16), max_abs(img4, 2 * 3 * 16)),
                         max_abs(x8, 2 * (size_t)c8 * 64));
        s = ge_stylegan2_debug_block(g0->impl, 4, &x4, &img4, &c4);
    }
    if (s == GE_OK) m_free = max_abs(img4, 2 * 3 * 16);
    ge_gen_call call;
    ge_gen_call_init(&call);
    int ok = s == GE_OK && fd_space(g, GE_LATENT_WPLUS, &call, 11, "w+ clamp 1") &&
             fd_space(g, GE_LATENT_Z, &call, 12, "z clamp 1");
    ge_generator_free(g);
    ge_generator_free(g0);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(d > 1e-2, "clamp 1 did not change the image (%.3g, max %.3g)", d, mx);
    CHECK(m_clamped <= 1.0 && m_free > 1.0,
          "clamp 1: max |conv out, b4 torgb| %.3g (unclamped "
          "b4 torgb %.3g)",
          m_clamped, m_free);
    CHECK(ok, "finite differences disagree");
}

/* ---- bad files ------------------------------------------------------------------ */

static ge_status tiny_load_file(const char *path, ge_generator **g) {
    return ge_generator_load(g, path, NULL);
}

TEST(sg2_bad_shape) {
    const char *dir = tmpdir_new();
    char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    tiny_sd sd;
    tiny_make(&sd, 5);
    /* the tiny file loads as it is */
    int wrote = tiny_write(path, &sd, NULL);
    ge_generator *g = NULL;
    ge_status s0 = wrote ? tiny_load_file(path, &g) : GE_ERR_IO;
    int info_ok = g && g->info.resolution == 8 && g->info.z_dim == 6 && g->info.w_dim == 5 &&
                  g->info.num_ws == 4;
    ge_generator_free(g);
    g = NULL;
    /* one wrong-shaped tensor */
    tiny_t *t = tiny_find(&sd, "synthesis.b8.conv0.weight");
    t->shape[3] = 1;
    t->shape[2] = 9;
    wrote = wrote && tiny_write(path, &sd, NULL);
    ge_status s1 = wrote ? tiny_load_file(path, &g) : GE_ERR_IO;
    char msg1[1024];
    snprintf(msg1, sizeof msg1, "%s", ge_errmsg());
    ge_generator_free(g);
    g = NULL;
    t->shape[2] = t->shape[3] = 3;
    /* a wrong-sized 0-d noise strength */
    t = tiny_find(&sd, "synthesis.b4.conv1.noise_strength");
    t->ndim = 1;
    t->shape[0] = 1;
    wrote = wrote && tiny_write(path, &sd, NULL);
    ge_status s2 = wrote ? tiny_load_file(path, &g) : GE_ERR_IO;
    char msg2[1024];
    snprintf(msg2, sizeof msg2, "%s", ge_errmsg());
    ge_generator_free(g);
    g = NULL;
    t->ndim = 0;
    /* metadata that disagrees with the tensors */
    wrote = wrote &&
            tiny_write(path, &sd, "{\"generator_kwargs\":\"{\\\"z_dim\\\":8,\\\"w_dim\\\":5}\"}");
    ge_status s3 = wrote ? tiny_load_file(path, &g) : GE_ERR_IO;
    ge_generator_free(g);
    g = NULL;
    /* a class-conditional or resnet generator is refused */
    wrote = wrote && tiny_write(path, &sd, "{\"generator_kwargs\":\"{\\\"c_dim\\\":10}\"}");
    ge_status s4 = wrote ? tiny_load_file(path, &g) : GE_ERR_IO;
    ge_generator_free(g);
    g = NULL;
    wrote = wrote && tiny_write(path, &sd,
                                "{\"generator_kwargs\":\"{\\\"synthesis_kwargs\\\":{"
                                "\\\"architecture\\\":\\\"resnet\\\"}}\"}");
    ge_status s5 = wrote ? tiny_load_file(path, &g) : GE_ERR_IO;
    ge_generator_free(g);
    g = NULL;
    /* a missing tensor */
    t = tiny_find(&sd, "synthesis.b8.torgb.affine.bias");
    snprintf(t->name, sizeof t->name, "synthesis.b8.torgb.affine.bias_renamed");
    wrote = wrote && tiny_write(path, &sd, NULL);
    ge_status s6 = wrote ? tiny_load_file(path, &g) : GE_ERR_IO;
    char msg6[1024];
    snprintf(msg6, sizeof msg6, "%s", ge_errmsg());
    ge_generator_free(g);
    tiny_free(&sd);
    CHECK(wrote, "cannot write %s", path);
    CHECK(s0 == GE_OK && info_ok, "the good tiny file: %s", ge_status_name(s0));
    CHECK(s1 == GE_ERR_SHAPE && strstr(msg1, "synthesis.b8.conv0.weight") && strstr(msg1, path),
          "wrong shape: %s: %s", ge_status_name(s1), msg1);
    CHECK(s2 == GE_ERR_SHAPE && strstr(msg2, "synthesis.b4.conv1.noise_strength"),
          "0-d tensor with a shape: %s: %s", ge_status_name(s2), msg2);
    CHECK(s3 == GE_ERR_FORMAT, "metadata z_dim 8 vs tensors 6: %s", ge_status_name(s3));
    CHECK(s4 == GE_ERR_UNSUPPORTED, "c_dim 10: %s", ge_status_name(s4));
    CHECK(s5 == GE_ERR_UNSUPPORTED, "resnet: %s", ge_status_name(s5));
    CHECK(s6 == GE_ERR_FORMAT && strstr(msg6, "synthesis.b8.torgb.affine.bias"),
          "missing tensor: %s: %s", ge_status_name(s6), msg6);
}

/* Calls that make no sense fail cleanly. */
TEST(sg2_bad_calls) {
    tiny_sd sd;
    tiny_make(&sd, 3);
    tiny_t *t = tiny_find(&sd, "mapping.w_avg");
    snprintf(t->name, sizeof t->name, "mapping.w_avg_gone"); /* no w_avg: no truncation */
    ge_generator *g = NULL;
    ge_status s = tiny_generator(&g, &sd, NULL);
    tiny_free(&sd);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    float dx[4 * 5] = {0}, x[4 * 5] = {0}, img[3 * 64];
    ge_status sb = ge_generator_backward(g, dx, img); /* before any forward */
    ge_gen_call call;
    ge_gen_call_init(&call);
    call.truncation_psi = 0.5f;
    ge_status st = ge_generator_forward(g, img, x, GE_LATENT_WPLUS, 1, &call);
    ge_status sn = ge_generator_forward(g, img, x, GE_LATENT_WPLUS, 0, NULL);
    ge_status sm = ge_generator_mapping(g, x, x, 1, &call);
    ge_generator_free(g);
    CHECK(sb == GE_ERR_ARG, "backward before forward: %s", ge_status_name(sb));
    CHECK(st == GE_ERR_ARG && sm == GE_ERR_ARG, "truncation without w_avg: %s %s",
          ge_status_name(st), ge_status_name(sm));
    CHECK(sn == GE_ERR_ARG, "batch 0: %s", ge_status_name(sn));
}
