/* test_ops_linear.c - the fully connected layer with equalised-learning-rate
 * gains: finite-difference checks of dx, dw, db, and forward + gradients
 * against PyTorch (tests/vectors/ops_a.safetensors) with and without bias and
 * with StyleGAN2's mapping-network gains (lr 0.01). The layer is linear in
 * each argument, so central differences are exact up to float32 rounding
 * (atol/rtol 1e-3 at step 0.05); PyTorch comparisons use 1e-5 * max |ref|. */
#include "harness.h"
#include "ops/ops.h"
#include "ops_a_util.h"

typedef struct {
    ge_linear_params p;
    float *x, *w, *b, *r, *y;
} lin_ctx;

static double lin_loss(void *vc, const float *unused) {
    (void)unused;
    lin_ctx *c = vc;
    ge_linear_forward(c->y, c->x, c->w, c->b, &c->p);
    return opsa_dot(c->y, c->r, (size_t)c->p.n * c->p.out);
}

TEST(ops_linear_grad_fd) {
    static const ge_linear_params cases[] = {
        {.n = 3, .in = 7, .out = 5, .w_gain = 0.378f, .b_gain = 1.f},
        {.n = 2, .in = 9, .out = 4, .w_gain = 0.0033f, .b_gain = 0.01f},
        {.n = 1, .in = 4, .out = 6, .w_gain = 1.f, .b_gain = 2.f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        ge_linear_params p = cases[ci];
        size_t nx = (size_t)p.n * p.in, nw = (size_t)p.out * p.in, ny = (size_t)p.n * p.out;
        lin_ctx c = {.p = p,
                     .x = opsa_randn(10 + ci, nx, 1.f),
                     .w = opsa_randn(20 + ci, nw, 1.f),
                     .b = opsa_randn(30 + ci, (size_t)p.out, 1.f),
                     .r = opsa_randn(40 + ci, ny, 1.f),
                     .y = opsa_zeros(ny)};
        float *dx = opsa_zeros(nx), *dw = opsa_zeros(nw), *db = opsa_zeros((size_t)p.out);
        int ok = c.x && c.w && c.b && c.r && c.y && dx && dw && db;
        if (ok) {
            ge_linear_backward(dx, dw, db, c.r, c.x, c.w, &p);
            ok = fd_check("linear dx", lin_loss, &c, c.x, dx, nx, 60, 0.05f, 1e-3, 1e-3) &&
                 fd_check("linear dw", lin_loss, &c, c.w, dw, nw, 60, 0.05f, 1e-3, 1e-3) &&
                 fd_check("linear db", lin_loss, &c, c.b, db, (size_t)p.out, 60, 0.05f, 1e-3, 1e-3);
        }
        free(c.x), free(c.w), free(c.b), free(c.r), free(c.y), free(dx), free(dw), free(db);
        CHECK(ok, "linear case %zu", ci);
    }
}

TEST(ops_linear_torch) {
    ge_tensors *ts = opsa_load_vectors();
    CHECK(ts, "vectors");
    int cases = 0;
    for (int ci = 0;; ci++) {
        size_t nx, nw, ny;
        const float *pr = opsa_vec(ts, NULL, "linear/%d/params", ci);
        if (!pr) break;
        ge_linear_params p = {
            .n = (int)pr[0], .in = (int)pr[1], .out = (int)pr[2], .w_gain = pr[3], .b_gain = pr[4]};
        const float *x = opsa_vec(ts, &nx, "linear/%d/x", ci);
        const float *w = opsa_vec(ts, &nw, "linear/%d/w", ci);
        const float *b = opsa_vec(ts, NULL, "linear/%d/b", ci);
        const float *r = opsa_vec(ts, NULL, "linear/%d/r", ci);
        const float *y_ref = opsa_vec(ts, &ny, "linear/%d/y", ci);
        const float *dx_ref = opsa_vec(ts, NULL, "linear/%d/d_x", ci);
        const float *dw_ref = opsa_vec(ts, NULL, "linear/%d/d_w", ci);
        const float *db_ref = opsa_vec(ts, NULL, "linear/%d/d_b", ci);
        int shapes_ok = x && w && r && y_ref && dx_ref && dw_ref &&
                        (pr[5] == 0.f || (b && db_ref)) && nx == (size_t)p.n * p.in &&
                        nw == (size_t)p.out * p.in && ny == (size_t)p.n * p.out;
        if (!shapes_ok) ge_tensors_free(ts);
        CHECK(shapes_ok, "case %d: tensors missing or shapes disagree", ci);
        float *y = opsa_zeros(ny), *dx = opsa_zeros(nx), *dw = opsa_zeros(nw);
        float *db = opsa_zeros((size_t)p.out), *dx2 = opsa_zeros(nx);
        for (size_t i = 0; i < nw; i++)
            dw[i] = 1.f; /* backward adds */
        ge_linear_forward(y, x, w, b, &p);
        ge_linear_backward(dx, dw, b ? db : NULL, r, x, w, &p);
        ge_linear_backward(dx2, NULL, NULL, r, x, w, &p);
        for (size_t i = 0; i < nw; i++)
            dw[i] -= 1.f;
        int ok = opsa_close("y", y, y_ref, ny, 1e-5) && opsa_close("dx", dx, dx_ref, nx, 1e-5) &&
                 opsa_close("dx alone", dx2, dx_ref, nx, 1e-5) &&
                 opsa_close("dw", dw, dw_ref, nw, 1e-5) &&
                 (!b || opsa_close("db", db, db_ref, (size_t)p.out, 1e-5));
        free(y), free(dx), free(dw), free(db), free(dx2);
        if (!ok) ge_tensors_free(ts);
        CHECK(ok, "linear case %d", ci);
        cases++;
    }
    ge_tensors_free(ts);
    CHECK(cases >= 3, "only %d linear cases in the vector file", cases);
}
