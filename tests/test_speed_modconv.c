/* test_speed_modconv.c - the unfused modulated convolution (ge_modconv in
 * src/ops/modulate.c) against the fused form it can replace in StyleGAN2:
 * ge_modulate_forward's per-sample weights through ge_conv2d (up 0) or, after
 * the model's (out, in) swap, ge_convt2d stride 2 (up 1); backward through
 * the per-sample weight gradient and ge_modulate_backward. Both sides are the
 * same maths, so y, dx and ds must agree to float32 rounding: 2e-5 relative
 * to the largest value. Cases: 3x3 with and without demodulation, the
 * up-sampling conv0, the 1x1 torgb layer, batches, wsq given or computed,
 * the fast path on and off (off: im2col, and for up 1 the transposed-copy
 * fallback). A finite-difference check of ds guards against both sides
 * sharing a mistake. */
#include "harness.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "ops_a_util.h"

#include <string.h>

typedef struct {
    ge_modconv_params p;
    size_t nx, ny, nw, ns;
    float *x, *w, *s, *dy, *wsq;
} mc_case;

static void mc_free(mc_case *c) {
    free(c->x), free(c->w), free(c->s), free(c->dy), free(c->wsq);
}

static int mc_setup(mc_case *c, int n, int c_in, int hw, int c_out, int k, int up, int demod,
                    uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->p = (ge_modconv_params){n, c_in, hw, hw, c_out, k, up, demod, NULL, 0};
    int oh, ow;
    ge_modconv_out_size(&c->p, &oh, &ow);
    c->nx = (size_t)n * c_in * hw * hw;
    c->ny = (size_t)n * c_out * oh * ow;
    c->nw = (size_t)c_out * c_in * k * k;
    c->ns = (size_t)n * c_in;
    c->x = opsa_randn(seed, c->nx, 1.f);
    c->w = opsa_randn(seed + 1, c->nw, 1.f);
    c->s = opsa_randn(seed + 2, c->ns, 0.5f);
    c->dy = opsa_randn(seed + 3, c->ny, 1.f);
    c->wsq = opsa_zeros((size_t)c_out * c_in);
    if (!c->x || !c->w || !c->s || !c->dy || !c->wsq) return 0;
    for (size_t i = 0; i < c->ns; i++)
        c->s[i] += 1.f; /* styles around 1, as StyleGAN2's */
    ge_modconv_wsq(c->wsq, c->w, c_out, c_in, k);
    return 1;
}

/* w (n, a, b, kk) -> (n, b, a, kk), as stylegan2.c's swap_oi. */
static void swap_ab(float *dst, const float *src, int n, int a, int b, int kk) {
    for (int i = 0; i < n; i++)
        for (int x = 0; x < a; x++)
            for (int y = 0; y < b; y++)
                memcpy(dst + (((size_t)i * b + y) * a + x) * kk,
                       src + (((size_t)i * a + x) * b + y) * kk, (size_t)kk * sizeof(float));
}

/* The fused reference: y, dx, ds, dw (gradients added to zeros). */
static int fused(float *y, float *dx, float *ds, float *dw, const mc_case *c) {
    const ge_modconv_params *p = &c->p;
    int kk = p->k * p->k;
    size_t wn = c->nw * p->n;
    float *wm = opsa_zeros(wn), *wt = opsa_zeros(wn), *dwm = opsa_zeros(wn), *sc = NULL;
    if (!wm || !wt || !dwm) goto fail;
    ge_modulate_params mp = {p->n, p->c_out, p->c_in, p->k, p->demod};
    ge_modulate_forward(wm, c->w, c->s, &mp);
    if (p->up) {
        ge_convt2d_params cp = {p->n, p->c_in, p->h, p->w, p->c_out, p->k, p->k, 2, 0, c->nw};
        if (!(sc = opsa_zeros(ge_convt2d_scratch(&cp) + 1))) goto fail;
        swap_ab(wt, wm, p->n, p->c_out, p->c_in, kk);
        ge_convt2d_forward(y, c->x, wt, NULL, &cp, sc);
        ge_convt2d_backward(dx, dwm, NULL, c->dy, c->x, wt, &cp, sc);
        swap_ab(wm, dwm, p->n, p->c_in, p->c_out, kk);
        memcpy(dwm, wm, wn * sizeof(float));
    } else {
        ge_conv2d_params cp = {p->n, p->c_in, p->h,     p->w,        p->c_out, p->k,
                               p->k, 1,       p->k / 2, GE_PAD_ZERO, c->nw};
        if (!(sc = opsa_zeros(ge_conv2d_scratch(&cp) + 1))) goto fail;
        ge_conv2d_forward(y, c->x, wm, NULL, &cp, sc);
        ge_conv2d_backward(dx, dwm, NULL, c->dy, c->x, wm, &cp, sc);
    }
    ge_modulate_backward(ds, dw, dwm, c->w, c->s, &mp);
    free(wm), free(wt), free(dwm), free(sc);
    return 1;
fail:
    free(wm), free(wt), free(dwm), free(sc);
    return 0;
}

static int unfused(float *y, float *dx, float *ds, float *dw, const mc_case *c, int give_wsq) {
    ge_modconv_params p = c->p;
    p.wsq = give_wsq ? c->wsq : NULL;
    float *sc = opsa_zeros(ge_modconv_scratch(&p) + 1);
    if (!sc) return 0;
    /* garbage in the scratch must not matter */
    for (size_t i = 0; i < ge_modconv_scratch(&p); i++)
        sc[i] = 1e30f;
    ge_modconv_forward(y, c->x, c->w, c->s, &p, sc);
    ge_modconv_backward(dx, ds, dw, c->dy, y, c->x, c->w, c->s, &p, sc);
    free(sc);
    return 1;
}

TEST(speed_modconv_vs_fused) {
    /* n, c_in, hw, c_out, k, up, demod */
    static const int cases[][7] = {
        {2, 24, 8, 40, 3, 0, 1}, {1, 32, 7, 16, 3, 0, 0}, {2, 16, 5, 24, 3, 1, 1},
        {1, 20, 4, 18, 3, 1, 0}, {2, 32, 8, 3, 1, 0, 0},  {3, 16, 6, 16, 3, 0, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int fast = 1; fast >= 0; fast--)
            for (int give = 0; give < 2; give++) {
                const int *k = cases[ci];
                mc_case c;
                int ok = mc_setup(&c, k[0], k[1], k[2], k[3], k[4], k[5], k[6], 40 + ci);
                float *y0 = opsa_zeros(c.ny), *y1 = opsa_zeros(c.ny);
                float *dx0 = opsa_zeros(c.nx), *dx1 = opsa_zeros(c.nx);
                float *ds0 = opsa_zeros(c.ns), *ds1 = opsa_zeros(c.ns);
                float *dw0 = opsa_zeros(c.nw), *dw1 = opsa_zeros(c.nw);
                int was = ge_dconv_enable(fast);
                ok = ok && y0 && y1 && dx0 && dx1 && ds0 && ds1 && dw0 && dw1 &&
                     fused(y0, dx0, ds0, dw0, &c) && unfused(y1, dx1, ds1, dw1, &c, give);
                ge_dconv_enable(was);
                double ey = ok ? rel_err(y1, y0, c.ny) : 1, ex = ok ? rel_err(dx1, dx0, c.nx) : 1;
                double es = ok ? rel_err(ds1, ds0, c.ns) : 1, ew = ok ? rel_err(dw1, dw0, c.nw) : 1;
                free(y0), free(y1), free(dx0), free(dx1), free(ds0), free(ds1), free(dw0),
                    free(dw1), mc_free(&c);
                CHECK(ok, "case %zu: out of memory", ci);
                CHECK(ey <= 2e-5 && ex <= 2e-5 && es <= 2e-5 && ew <= 2e-5,
                      "case %zu fast %d wsq %d: y %.3g dx %.3g ds %.3g dw %.3g", ci, fast, give, ey,
                      ex, es, ew);
            }
}

/* L = sum(y * r) as a function of the styles s. */
typedef struct {
    mc_case *c;
    float *y, *sc;
} fd_ctx;

static double mc_loss(void *v, const float *s) {
    fd_ctx *f = v;
    ge_modconv_forward(f->y, f->c->x, f->c->w, s, &f->c->p, f->sc);
    return opsa_dot(f->y, f->c->dy, f->c->ny);
}

TEST(speed_modconv_ds_fd) {
    for (int up = 0; up < 2; up++) {
        mc_case c;
        CHECK(mc_setup(&c, 2, 8, 5, 12, 3, up, 1, 90 + up), "out of memory");
        float *y = opsa_zeros(c.ny), *ds = opsa_zeros(c.ns),
              *sc = opsa_zeros(ge_modconv_scratch(&c.p) + 1);
        fd_ctx f = {&c, y, sc};
        int ok = y && ds && sc;
        if (ok) {
            ge_modconv_forward(y, c.x, c.w, c.s, &c.p, sc);
            ge_modconv_backward(NULL, ds, NULL, c.dy, y, c.x, c.w, c.s, &c.p, sc);
            ok = fd_check("modconv ds", mc_loss, &f, c.s, ds, c.ns, 16, 1e-2f, 1e-2, 1e-2);
        }
        free(y), free(ds), free(sc), mc_free(&c);
        CHECK(ok, "up %d: ds does not match finite differences", up);
    }
}

/* ge_modulate's vectorised loops walk rows in chunks of whole channels
 * (modulate.c, MOD_CHUNK): a row of 300 channels x 3x3 spans three chunks
 * and a partial one; 1x1 rows span one. Forward and ds against the formulas
 * written out plainly in double precision (the ops tests check the
 * formulas themselves against PyTorch). */
TEST(speed_modulate_chunks) {
    for (int k = 1; k <= 3; k += 2)
        for (int demod = 0; demod < 2; demod++) {
            const int n = 2, c_out = 5, c_in = 300, kk = k * k;
            size_t nw = (size_t)c_out * c_in * kk;
            float *w = opsa_randn(1, nw, 1.f), *s = opsa_randn(2, (size_t)n * c_in, 1.f);
            float *g = opsa_randn(3, nw * n, 1.f), *wm = opsa_zeros(nw * n);
            float *ds = opsa_zeros((size_t)n * c_in);
            double *ds_ref = calloc((size_t)n * c_in, sizeof(double));
            int ok = w && s && g && wm && ds && ds_ref;
            double e_w = 0, e_s = 0, m_s = 0;
            if (ok) {
                ge_modulate_params mp = {n, c_out, c_in, k, demod};
                ge_modulate_forward(wm, w, s, &mp);
                ge_modulate_backward(ds, NULL, g, w, s, &mp);
                for (int i = 0; i < n; i++)
                    for (int o = 0; o < c_out; o++) {
                        const float *wo = w + (size_t)o * c_in * kk;
                        const float *go = g + ((size_t)i * c_out + o) * c_in * kk;
                        double ss = 0, S = 0;
                        for (int c = 0; c < c_in; c++)
                            for (int t = 0; t < kk; t++) {
                                double v = (double)wo[c * kk + t] * s[i * c_in + c];
                                ss += v * v;
                                S += go[c * kk + t] * v;
                            }
                        double d = demod ? 1.0 / sqrt(ss + 1e-8) : 1.0;
                        for (int c = 0; c < c_in; c++)
                            for (int t = 0; t < kk; t++) {
                                double v = (double)wo[c * kk + t] * s[i * c_in + c];
                                double ref = v * d;
                                double got = wm[((size_t)i * c_out + o) * c_in * kk + c * kk + t];
                                if (fabs(got - ref) > e_w) e_w = fabs(got - ref);
                                double dv =
                                    demod ? d * go[c * kk + t] - d * d * d * S * v : go[c * kk + t];
                                ds_ref[i * c_in + c] += dv * wo[c * kk + t];
                            }
                    }
                for (int j = 0; j < n * c_in; j++) {
                    if (fabs(ds[j] - ds_ref[j]) > e_s) e_s = fabs(ds[j] - ds_ref[j]);
                    if (fabs(ds_ref[j]) > m_s) m_s = fabs(ds_ref[j]);
                }
            }
            free(w), free(s), free(g), free(wm), free(ds), free(ds_ref);
            CHECK(ok, "out of memory");
            CHECK(e_w <= 1e-5 && e_s <= 1e-5 * (m_s > 1 ? m_s : 1),
                  "k %d demod %d: wm err %.3g, ds err %.3g (max %.3g)", k, demod, e_w, e_s, m_s);
        }
}

/* w_const: the packed weight is kept between calls and dropped by
 * ge_modconv_forget. Same results as packing every call; after the values
 * change, forget makes the next call see them; without forget the fast path
 * (where it runs) still uses the old packing, which shows the copy is kept. */
TEST(speed_modconv_w_const) {
    for (int up = 0; up < 2; up++) {
        mc_case c;
        CHECK(mc_setup(&c, 2, 16, 6, 32, 3, up, 1, 70 + up), "out of memory");
        float *y0 = opsa_zeros(c.ny), *y1 = opsa_zeros(c.ny), *y2 = opsa_zeros(c.ny);
        float *sc = opsa_zeros(ge_modconv_scratch(&c.p) + 1);
        int ok = y0 && y1 && y2 && sc;
        double e_same = 1, e_new = 1, e_stale = 0;
        int fast = 0;
        if (ok) {
            ge_modconv_params p = c.p, pc = c.p;
            p.wsq = pc.wsq = c.wsq; /* d stays put while the stale packing is probed */
            pc.w_const = 1;
            ge_modconv_forward(y0, c.x, c.w, c.s, &p, sc);
            ge_modconv_forward(y1, c.x, c.w, c.s, &pc, sc); /* packs */
            ge_modconv_forward(y1, c.x, c.w, c.s, &pc, sc); /* reuses */
            e_same = rel_err(y1, y0, c.ny);
            for (size_t i = 0; i < c.nw; i++)
                c.w[i] *= -0.5f;                            /* new values, same pointer */
            ge_modconv_forward(y2, c.x, c.w, c.s, &pc, sc); /* stale where cached */
            e_stale = rel_err(y2, y1, c.ny);
            ge_modconv_wsq(c.wsq, c.w, 32, 16, 3); /* (c_out, c_in) as the model would */
            ge_modconv_forget(c.w);
            ge_modconv_forward(y1, c.x, c.w, c.s, &pc, sc);
            ge_modconv_forward(y0, c.x, c.w, c.s, &p, sc);
            e_new = rel_err(y1, y0, c.ny);
            ge_dconv_shape s = {.n = 2,
                                .c_in = up ? 32 : 16,
                                .h = up ? 13 : 6,
                                .w = up ? 13 : 6,
                                .c_out = up ? 16 : 32,
                                .kh = 3,
                                .kw = 3,
                                .stride = up ? 2 : 1,
                                .pad = up ? 0 : 1,
                                .w_iohw = up,
                                .w_const = 1};
            fast = ge_dconv_impl(&s, up ? GE_DCONV_BWD_DATA : GE_DCONV_FWD) != NULL;
        }
        free(y0), free(y1), free(y2), free(sc), mc_free(&c);
        CHECK(ok, "out of memory");
        CHECK(e_same <= 1e-6, "up %d: w_const changed the result by %.3g", up, e_same);
        CHECK(e_new <= 1e-6, "up %d: after forget, %.3g from a fresh packing", up, e_new);
        CHECK(!fast || e_stale == 0, "up %d: the packed copy was not kept (%.3g)", up, e_stale);
    }
}
