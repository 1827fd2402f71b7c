/* test_ops_upfirdn.c - upfirdn2d: forward and input gradient against a
 * torch re-implementation of StyleGAN2-ADA's _upfirdn2d_ref
 * (tests/vectors/ops_b.safetensors: upsample2d and downsample2d with the
 * [1,3,3,1] filter, a plain non-symmetric filter, flip_filter with crops, and
 * up 3 / down 2); against a literal C version that builds the zero-stuffed,
 * padded image; the backward as the exact adjoint of the forward
 * (<F x, r> = <x, F^T r>); and finite differences.
 *
 * Tolerances: forwards within 1e-5 and gradients within 1e-4 of max |ref|;
 * adjoint identity within 1e-5 relative; finite differences (the op is
 * linear, step 1e-2) within 1e-3 + 1e-2 * |g|. */
#include "ganedit.h"
#include "harness.h"
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

/* The configurations the generators use, and general ones. */
static const float f_sg[16] = {1 / 64.f, 3 / 64.f, 3 / 64.f, 1 / 64.f, 3 / 64.f, 9 / 64.f,
                               9 / 64.f, 3 / 64.f, 3 / 64.f, 9 / 64.f, 9 / 64.f, 3 / 64.f,
                               1 / 64.f, 3 / 64.f, 3 / 64.f, 1 / 64.f};
static const float f_asym[12] = {0.3f,  -0.2f, 1.1f,  0.5f, 0.9f,  0.1f,
                                 -0.7f, 0.4f,  0.25f, 0.6f, -0.1f, 0.8f}; /* (3, 4) */

typedef struct {
    const char *name;
    ge_upfirdn2d_params p; /* n, c, h, w, up, down, px0, px1, py0, py1, fh, fw, flip, gain */
    const float *f;
} ufd_case;

static const ufd_case cases[] = {
    {"upsample2d", {2, 2, 5, 4, 2, 1, 2, 1, 2, 1, 4, 4, 0, 4.0f}, f_sg},
    {"downsample2d", {2, 2, 6, 7, 1, 2, 1, 1, 1, 1, 4, 4, 0, 1.0f}, f_sg},
    {"filter2d asym", {1, 2, 5, 6, 1, 1, 1, 2, 0, 1, 3, 4, 0, 1.5f}, f_asym},
    {"flip + crop", {1, 2, 6, 7, 1, 1, -1, 2, 1, -1, 3, 4, 1, 0.8f}, f_asym},
    {"up3 down2 asym", {1, 2, 4, 5, 3, 2, 2, 0, 1, 2, 3, 4, 0, 2.0f}, f_asym},
    {"up2 down2 big crop", {1, 1, 7, 6, 2, 2, -3, -1, -2, 4, 3, 4, 1, 1.0f}, f_asym},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

/* Literal version: build the zero-stuffed, padded plane, then correlate with
 * the (flipped unless flip_filter) filter at stride down. */
static void upfirdn_naive(float *y, const float *x, const float *f, const ge_upfirdn2d_params *p) {
    int oh, ow;
    ge_upfirdn2d_out_size(p, &oh, &ow);
    int ph = p->h * p->up + p->py0 + p->py1, pw = p->w * p->up + p->px0 + p->px1;
    float *pad = calloc((size_t)ph * pw, sizeof *pad);
    for (int pl = 0; pl < p->n * p->c; pl++) {
        memset(pad, 0, (size_t)ph * pw * sizeof *pad);
        for (int i = 0; i < p->h; i++)
            for (int j = 0; j < p->w; j++) {
                int pi = i * p->up + p->py0, pj = j * p->up + p->px0;
                if (pi >= 0 && pi < ph && pj >= 0 && pj < pw)
                    pad[(size_t)pi * pw + pj] = x[(size_t)pl * p->h * p->w + (size_t)i * p->w + j];
            }
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double s = 0;
                for (int a = 0; a < p->fh; a++)
                    for (int b = 0; b < p->fw; b++) {
                        float fv = p->flip_filter ? f[a * p->fw + b]
                                                  : f[(p->fh - 1 - a) * p->fw + (p->fw - 1 - b)];
                        s += (double)fv * pad[(size_t)(oy * p->down + a) * pw + ox * p->down + b];
                    }
                y[(size_t)pl * oh * ow + (size_t)oy * ow + ox] = (float)(s * p->gain);
            }
    }
    free(pad);
}

TEST(ops_upfirdn_out_size) {
    int oh, ow;
    ge_upfirdn2d_params p = {1, 1, 8, 8, 2, 1, 2, 1, 2, 1, 4, 4, 0, 4.0f};
    ge_upfirdn2d_out_size(&p, &oh, &ow);
    CHECK(oh == 16 && ow == 16, "upsample2d 8 -> %dx%d", oh, ow);
    ge_upfirdn2d_params q = {1, 1, 16, 16, 1, 2, 1, 1, 1, 1, 4, 4, 0, 1.0f};
    ge_upfirdn2d_out_size(&q, &oh, &ow);
    CHECK(oh == 8 && ow == 8, "downsample2d 16 -> %dx%d", oh, ow);
    ge_upfirdn2d_params r = {1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 4, 4, 0, 1.0f};
    ge_upfirdn2d_out_size(&r, &oh, &ow);
    CHECK(oh == 0 && ow == 0, "filter larger than the input gives %dx%d", oh, ow);
}

TEST(ops_upfirdn_naive) {
    ge_rng g;
    ge_rng_seed(&g, 31);
    for (int k = 0; k < N_CASES; k++) {
        const ge_upfirdn2d_params *p = &cases[k].p;
        int oh, ow;
        ge_upfirdn2d_out_size(p, &oh, &ow);
        size_t cnt = (size_t)p->n * p->c * p->h * p->w, ocnt = (size_t)p->n * p->c * oh * ow;
        float *x = malloc(cnt * sizeof *x), *y = malloc(ocnt * sizeof *y);
        float *yn = malloc(ocnt * sizeof *yn);
        ge_rng_fill_normal(&g, x, cnt);
        ge_upfirdn2d_forward(y, x, cases[k].f, p);
        upfirdn_naive(yn, x, cases[k].f, p);
        double e = rel_err(y, yn, ocnt);
        free(x), free(y), free(yn);
        CHECK(ocnt > 0, "%s: empty output", cases[k].name);
        CHECK(e < 1e-6, "%s: relative error %g against the literal version", cases[k].name, e);
    }
}

/* <F x, r> = <x, F^T r> on a larger plane, every case. */
TEST(ops_upfirdn_adjoint) {
    ge_rng g;
    ge_rng_seed(&g, 32);
    for (int k = 0; k < N_CASES; k++) {
        ge_upfirdn2d_params p = cases[k].p;
        p.n = 2, p.c = 3, p.h = 17, p.w = 13;
        int oh, ow;
        ge_upfirdn2d_out_size(&p, &oh, &ow);
        size_t cnt = (size_t)p.n * p.c * p.h * p.w, ocnt = (size_t)p.n * p.c * oh * ow;
        float *x = malloc(cnt * sizeof *x), *dx = calloc(cnt, sizeof *dx);
        float *y = malloc(ocnt * sizeof *y), *r = malloc(ocnt * sizeof *r);
        ge_rng_fill_normal(&g, x, cnt);
        ge_rng_fill_normal(&g, r, ocnt);
        ge_upfirdn2d_forward(y, x, cases[k].f, &p);
        ge_upfirdn2d_backward(dx, r, cases[k].f, &p);
        double lhs = dot(y, r, ocnt), rhs = dot(x, dx, cnt),
               scale = sqrt(dot(y, y, ocnt) * dot(r, r, ocnt));
        free(x), free(dx), free(y), free(r);
        CHECK(fabs(lhs - rhs) <= 1e-5 * scale, "%s: <Fx,r> = %.9g but <x,F^T r> = %.9g",
              cases[k].name, lhs, rhs);
    }
}

typedef struct {
    const ge_upfirdn2d_params *p;
    const float *f, *r;
    float *y;
    size_t ocnt;
} ufd_ctx;

static double ufd_loss(void *vctx, const float *x) {
    ufd_ctx *k = vctx;
    ge_upfirdn2d_forward(k->y, x, k->f, k->p);
    return dot(k->y, k->r, k->ocnt);
}

TEST(ops_upfirdn_fd) {
    ge_rng g;
    ge_rng_seed(&g, 33);
    for (int k = 0; k < N_CASES; k++) {
        const ge_upfirdn2d_params *p = &cases[k].p;
        int oh, ow;
        ge_upfirdn2d_out_size(p, &oh, &ow);
        size_t cnt = (size_t)p->n * p->c * p->h * p->w, ocnt = (size_t)p->n * p->c * oh * ow;
        float *x = malloc(cnt * sizeof *x), *dx = malloc(cnt * sizeof *dx);
        float *y = malloc(ocnt * sizeof *y), *r = malloc(ocnt * sizeof *r);
        ge_rng_fill_normal(&g, x, cnt);
        ge_rng_fill_normal(&g, r, ocnt);
        for (size_t i = 0; i < cnt; i++)
            dx[i] = 1.0f; /* backward must add */
        ge_upfirdn2d_backward(dx, r, cases[k].f, p);
        for (size_t i = 0; i < cnt; i++)
            dx[i] -= 1.0f;
        ufd_ctx c = {p, cases[k].f, r, y, ocnt};
        int ok = fd_check(cases[k].name, ufd_loss, &c, x, dx, cnt, cnt, 1e-2f, 1e-3, 1e-2);
        free(x), free(dx), free(y), free(r);
        CHECK(ok, "%s: finite differences disagree", cases[k].name);
    }
}

TEST(ops_upfirdn_torch) {
    ge_tensors *V = NULL;
    CHECK(ge_safetensors_load(&V, vector_path("ops_b.safetensors")) == GE_OK, "%s", ge_errmsg());
    const char *names[] = {"up2", "down2", "plain", "flipcrop", "up3down2"};
    for (int k = 0; k < 5; k++) {
        char nm[64];
#define FIND(var, suffix)                                                                          \
    snprintf(nm, sizeof nm, "upfirdn_%s_" suffix, names[k]);                                       \
    const ge_tensor *var = ge_tensors_find(V, nm);                                                 \
    if (!var) ge_tensors_free(V);                                                                  \
    CHECK(var, "vector %s missing", nm)
        FIND(x, "x");
        FIND(f, "f");
        FIND(yr, "y");
        FIND(r, "r");
        FIND(dxr, "dx");
        FIND(pr, "params");
#undef FIND
        int ok = x->ndim == 4 && f->ndim == 2 && yr->ndim == 4 && pr->numel == 8 &&
                 r->numel == yr->numel && dxr->numel == x->numel;
        if (!ok) ge_tensors_free(V);
        CHECK(ok, "%s: vectors of the wrong shape", names[k]);
        const float *q = pr->data; /* up, down, px0, px1, py0, py1, flip, gain */
        ge_upfirdn2d_params p = {(int)x->shape[0], (int)x->shape[1],
                                 (int)x->shape[2], (int)x->shape[3],
                                 (int)q[0],        (int)q[1],
                                 (int)q[2],        (int)q[3],
                                 (int)q[4],        (int)q[5],
                                 (int)f->shape[0], (int)f->shape[1],
                                 (int)q[6],        q[7]};
        int oh, ow;
        ge_upfirdn2d_out_size(&p, &oh, &ow);
        int th = (int)yr->shape[2], tw = (int)yr->shape[3]; /* V may be freed below */
        ok = oh == th && ow == tw;
        if (!ok) ge_tensors_free(V);
        CHECK(ok, "%s: out size %dx%d, torch %dx%d", names[k], oh, ow, th, tw);
        float *y = malloc(yr->numel * sizeof *y), *dx = calloc(x->numel, sizeof *dx);
        ge_upfirdn2d_forward(y, x->data, f->data, &p);
        ge_upfirdn2d_backward(dx, r->data, f->data, &p);
        double ey = rel_err(y, yr->data, yr->numel), ed = rel_err(dx, dxr->data, x->numel);
        free(y), free(dx);
        if (ey > 1e-5 || ed > 1e-4) ge_tensors_free(V);
        CHECK(ey <= 1e-5, "%s: forward relative error %g", names[k], ey);
        CHECK(ed <= 1e-4, "%s: gradient relative error %g", names[k], ed);
    }
    ge_tensors_free(V);
}
