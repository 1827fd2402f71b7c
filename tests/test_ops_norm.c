/* test_ops_norm.c - instance norm and 2nd-moment normalisation: central
 * finite-difference gradient checks on small random shapes, and forward and
 * input-gradient checks against PyTorch (nn.InstanceNorm2d, StyleGAN2's
 * normalize_2nd_moment) from tests/vectors/ops_b.safetensors, made by
 * tools/gen_op_vectors_b.py in float64.
 *
 * Tolerances: forwards within 1e-5 and gradients within 1e-4 of max |ref|;
 * finite differences (step 3e-3, the ops are smooth) within
 * 1e-3 + 1e-2 * |g|. */
#include "ganedit.h"
#include "harness.h"
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

#define VEC(var, name, count)                                                                      \
    const ge_tensor *var = ge_tensors_find(V, name);                                               \
    CHECK(var && var->numel == (size_t)(count), "vector %s missing or of the wrong size", name)

/* ---- instance norm ---------------------------------------------------- */

typedef struct {
    int n, c;
    size_t hw;
    const float *r;
    float *y;
} inorm_ctx;

static double inorm_loss(void *vctx, const float *x) {
    inorm_ctx *k = vctx;
    ge_instance_norm_forward(k->y, x, k->n, k->c, k->hw, 1e-5f);
    return dot(k->y, k->r, (size_t)k->n * k->c * k->hw);
}

TEST(ops_instance_norm_fd) {
    const int n = 2, c = 3;
    const size_t hw = 4 * 5, cnt = (size_t)n * c * hw;
    ge_rng g;
    ge_rng_seed(&g, 11);
    float *x = malloc(cnt * sizeof *x), *r = malloc(cnt * sizeof *r);
    float *y = malloc(cnt * sizeof *y), *dx = malloc(cnt * sizeof *dx);
    ge_rng_fill_normal(&g, x, cnt);
    ge_rng_fill_normal(&g, r, cnt);
    for (size_t i = 0; i < cnt; i++)
        dx[i] = 1.0f; /* backward must add */
    ge_instance_norm_backward(dx, r, x, n, c, hw, 1e-5f);
    for (size_t i = 0; i < cnt; i++)
        dx[i] -= 1.0f;
    inorm_ctx k = {n, c, hw, r, y};
    int ok = fd_check("instance_norm dx", inorm_loss, &k, x, dx, cnt, cnt, 3e-3f, 1e-3, 1e-2);
    /* The output has zero mean and unit variance per plane. */
    ge_instance_norm_forward(y, x, n, c, hw, 1e-5f);
    double worst = 0;
    for (int p = 0; p < n * c; p++) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < hw; i++) {
            s += y[p * hw + i];
            s2 += (double)y[p * hw + i] * y[p * hw + i];
        }
        worst = fmax(worst, fmax(fabs(s / hw), fabs(s2 / hw - 1.0)));
    }
    free(x), free(r), free(y), free(dx);
    CHECK(ok, "finite differences disagree");
    CHECK(worst < 1e-4, "planes not normalised: %g", worst);
}

TEST(ops_instance_norm_torch) {
    ge_tensors *V = NULL;
    CHECK(ge_safetensors_load(&V, vector_path("ops_b.safetensors")) == GE_OK, "%s", ge_errmsg());
    const int n = 2, c = 3;
    const size_t hw = 5 * 7, cnt = (size_t)n * c * hw;
    VEC(x, "inorm_x", cnt);
    VEC(yr, "inorm_y", cnt);
    VEC(r, "inorm_r", cnt);
    VEC(dxr, "inorm_dx", cnt);
    float *y = malloc(cnt * sizeof *y), *dx = calloc(cnt, sizeof *dx);
    ge_instance_norm_forward(y, x->data, n, c, hw, 1e-5f);
    ge_instance_norm_backward(dx, r->data, x->data, n, c, hw, 1e-5f);
    double ey = rel_err(y, yr->data, cnt), ed = rel_err(dx, dxr->data, cnt);
    free(y), free(dx);
    ge_tensors_free(V);
    CHECK(ey < 1e-5, "forward relative error %g", ey);
    CHECK(ed < 1e-4, "gradient relative error %g", ed);
}

/* A constant plane has zero variance: the output is 0 (not NaN) thanks to eps,
 * and so is the gradient. */
TEST(ops_instance_norm_constant_plane) {
    float x[16], y[16], dy[16], dx[16] = {0};
    for (int i = 0; i < 16; i++)
        x[i] = 3.25f, dy[i] = (float)i;
    ge_instance_norm_forward(y, x, 1, 1, 16, 1e-5f);
    ge_instance_norm_backward(dx, dy, x, 1, 1, 16, 1e-5f);
    for (int i = 0; i < 16; i++) {
        CHECK(y[i] == 0.0f, "y[%d] = %g", i, y[i]);
        CHECK(isfinite(dx[i]), "dx[%d] = %g", i, dx[i]);
    }
}

/* ---- 2nd-moment normalisation --------------------------------------------- */

typedef struct {
    int n, d;
    const float *r;
    float *y;
} norm2_ctx;

static double norm2_loss(void *vctx, const float *x) {
    norm2_ctx *k = vctx;
    ge_norm2_forward(k->y, x, k->n, k->d, 1e-8f);
    return dot(k->y, k->r, (size_t)k->n * k->d);
}

TEST(ops_norm2_fd) {
    const int n = 3, d = 10;
    const size_t cnt = (size_t)n * d;
    ge_rng g;
    ge_rng_seed(&g, 12);
    float x[30], r[30], y[30], dx[30];
    ge_rng_fill_normal(&g, x, cnt);
    ge_rng_fill_normal(&g, r, cnt);
    for (size_t i = 0; i < cnt; i++)
        dx[i] = 1.0f;
    ge_norm2_backward(dx, r, x, n, d, 1e-8f);
    for (size_t i = 0; i < cnt; i++)
        dx[i] -= 1.0f;
    norm2_ctx k = {n, d, r, y};
    CHECK(fd_check("norm2 dx", norm2_loss, &k, x, dx, cnt, cnt, 3e-3f, 1e-3, 1e-2),
          "finite differences disagree");
    /* Each output row has mean square 1. */
    ge_norm2_forward(y, x, n, d, 1e-8f);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++)
            s += (double)y[i * d + j] * y[i * d + j];
        CHECK(fabs(s / d - 1.0) < 1e-5, "row %d mean square %g", i, s / d);
    }
}

TEST(ops_norm2_torch) {
    ge_tensors *V = NULL;
    CHECK(ge_safetensors_load(&V, vector_path("ops_b.safetensors")) == GE_OK, "%s", ge_errmsg());
    const int n = 3, d = 16;
    const size_t cnt = (size_t)n * d;
    VEC(x, "norm2_x", cnt);
    VEC(yr, "norm2_y", cnt);
    VEC(r, "norm2_r", cnt);
    VEC(dxr, "norm2_dx", cnt);
    float y[48], dx[48] = {0};
    ge_norm2_forward(y, x->data, n, d, 1e-8f);
    ge_norm2_backward(dx, r->data, x->data, n, d, 1e-8f);
    double ey = rel_err(y, yr->data, cnt), ed = rel_err(dx, dxr->data, cnt);
    ge_tensors_free(V);
    CHECK(ey < 1e-5, "forward relative error %g", ey);
    CHECK(ed < 1e-4, "gradient relative error %g", ed);
}
