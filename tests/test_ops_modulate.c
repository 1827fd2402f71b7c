/* test_ops_modulate.c - StyleGAN2 weight modulation / demodulation:
 * finite-difference checks of the style and weight gradients with and
 * without demodulation, forward + gradients against PyTorch (the maths of
 * stylegan2-ada-pytorch's modulated_conv2d, tests/vectors/ops_a.safetensors),
 * and 1 vs 2 threads. The op is smooth; central differences with step 2e-3
 * (truncation O(step^2)) and float32 rounding of the loss are covered by
 * atol 2e-3, rtol 5e-3. PyTorch comparisons: 1e-5 * max |ref|. */
#include "harness.h"
#include "ops/ops.h"
#include "ops_a_util.h"

typedef struct {
    ge_modulate_params p;
    float *w, *s, *r, *y;
    size_t ny;
} mod_ctx;

static double mod_loss(void *vc, const float *unused) {
    (void)unused;
    mod_ctx *c = vc;
    ge_modulate_forward(c->y, c->w, c->s, &c->p);
    return opsa_dot(c->y, c->r, c->ny);
}

TEST(ops_modulate_grad_fd) {
    static const ge_modulate_params cases[] = {
        {.n = 2, .c_out = 3, .c_in = 4, .k = 3, .demod = 1},
        {.n = 2, .c_out = 3, .c_in = 4, .k = 3, .demod = 0},
        {.n = 1, .c_out = 4, .c_in = 5, .k = 1, .demod = 1},
        {.n = 3, .c_out = 2, .c_in = 2, .k = 3, .demod = 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        ge_modulate_params p = cases[ci];
        size_t nw = (size_t)p.c_out * p.c_in * p.k * p.k, ns = (size_t)p.n * p.c_in;
        size_t ny = (size_t)p.n * nw;
        mod_ctx c = {.p = p,
                     .w = opsa_randn(80 + ci, nw, 1.f),
                     .s = opsa_randn(90 + ci, ns, 0.5f),
                     .r = opsa_randn(100 + ci, ny, 1.f),
                     .y = opsa_zeros(ny),
                     .ny = ny};
        float *ds = opsa_zeros(ns), *dw = opsa_zeros(nw);
        int ok = c.w && c.s && c.r && c.y && ds && dw;
        if (ok) {
            for (size_t i = 0; i < ns; i++)
                c.s[i] += 1.f; /* styles near 1, as StyleGAN's */
            ge_modulate_backward(ds, dw, c.r, c.w, c.s, &p);
            ok = fd_check("modulate ds", mod_loss, &c, c.s, ds, ns, 60, 2e-3f, 2e-3, 5e-3) &&
                 fd_check("modulate dw", mod_loss, &c, c.w, dw, nw, 60, 2e-3f, 2e-3, 5e-3);
        }
        free(c.w), free(c.s), free(c.r), free(c.y), free(ds), free(dw);
        CHECK(ok, "modulate case %zu", ci);
    }
}

TEST(ops_modulate_torch) {
    ge_tensors *ts = opsa_load_vectors();
    CHECK(ts, "vectors");
    int cases = 0;
    for (int ci = 0;; ci++) {
        size_t nw, ns, ny;
        const float *pr = opsa_vec(ts, NULL, "modulate/%d/params", ci);
        if (!pr) break;
        ge_modulate_params p = {.n = (int)pr[0],
                                .c_out = (int)pr[1],
                                .c_in = (int)pr[2],
                                .k = (int)pr[3],
                                .demod = (int)pr[4]};
        const float *w = opsa_vec(ts, &nw, "modulate/%d/w", ci);
        const float *s = opsa_vec(ts, &ns, "modulate/%d/s", ci);
        const float *r = opsa_vec(ts, NULL, "modulate/%d/r", ci);
        const float *y_ref = opsa_vec(ts, &ny, "modulate/%d/y", ci);
        const float *ds_ref = opsa_vec(ts, NULL, "modulate/%d/d_s", ci);
        const float *dw_ref = opsa_vec(ts, NULL, "modulate/%d/d_w", ci);
        int shapes_ok = w && s && r && y_ref && ds_ref && dw_ref &&
                        nw == (size_t)p.c_out * p.c_in * p.k * p.k && ns == (size_t)p.n * p.c_in &&
                        ny == (size_t)p.n * nw;
        if (!shapes_ok) ge_tensors_free(ts);
        CHECK(shapes_ok, "case %d: tensors missing or shapes disagree", ci);
        float *y = opsa_zeros(ny), *ds = opsa_zeros(ns), *dw = opsa_zeros(nw);
        float *ds2 = opsa_zeros(ns);
        for (size_t i = 0; i < nw; i++)
            dw[i] = 1.f; /* backward adds */
        ge_modulate_forward(y, w, s, &p);
        ge_modulate_backward(ds, dw, r, w, s, &p);
        ge_modulate_backward(ds2, NULL, r, w, s, &p);
        for (size_t i = 0; i < nw; i++)
            dw[i] -= 1.f;
        int ok = opsa_close("y", y, y_ref, ny, 1e-5) && opsa_close("ds", ds, ds_ref, ns, 1e-5) &&
                 opsa_close("ds alone", ds2, ds_ref, ns, 1e-5) &&
                 opsa_close("dw", dw, dw_ref, nw, 1e-5);
        free(y), free(ds), free(dw), free(ds2);
        if (!ok) ge_tensors_free(ts);
        CHECK(ok, "modulate case %d (demod %d)", ci, p.demod);
        cases++;
    }
    ge_tensors_free(ts);
    CHECK(cases >= 4, "only %d modulate cases in the vector file", cases);
}

TEST(ops_modulate_threads) {
    ge_modulate_params p = {.n = 2, .c_out = 64, .c_in = 48, .k = 3, .demod = 1};
    size_t nw = (size_t)p.c_out * p.c_in * 9, ns = (size_t)p.n * p.c_in, ny = (size_t)p.n * nw;
    float *w = opsa_randn(1, nw, 1.f), *s = opsa_randn(2, ns, 1.f), *r = opsa_randn(3, ny, 1.f);
    float *y[2] = {opsa_zeros(ny), opsa_zeros(ny)}, *ds[2] = {opsa_zeros(ns), opsa_zeros(ns)};
    float *dw[2] = {opsa_zeros(nw), opsa_zeros(nw)};
    int ok = w && s && r && y[0] && y[1] && ds[0] && ds[1] && dw[0] && dw[1];
    int keep = ge_get_num_threads();
    if (ok)
        for (int t = 0; t < 2; t++) {
            ge_set_num_threads(t + 1);
            ge_modulate_forward(y[t], w, s, &p);
            ge_modulate_backward(ds[t], dw[t], r, w, s, &p);
        }
    ge_set_num_threads(keep);
    /* every thread owns whole rows with fixed-order sums: bitwise equal */
    int same = ok && memcmp(y[0], y[1], ny * sizeof(float)) == 0 &&
               memcmp(ds[0], ds[1], ns * sizeof(float)) == 0 &&
               memcmp(dw[0], dw[1], nw * sizeof(float)) == 0;
    free(w), free(s), free(r);
    for (int t = 0; t < 2; t++)
        free(y[t]), free(ds[t]), free(dw[t]);
    CHECK(ok, "allocation");
    CHECK(same, "1 and 2 threads differ");
}
