/* test_optim.c - the optimisers on functions with known minima: a convex
 * quadratic, the Rosenbrock valley (minimum at (1, 1)), and Adam's first
 * step against the closed form (lr * sign(g) after bias correction). */
#include "harness.h"
#include "optim/optim.h"

#include <stdlib.h>

/* f(x) = 0.5 sum_i a_i (x_i - i)^2 with a_i from 1 to 100 (condition number 100). */
static double quad(void *ctx, const float *x, float *g) {
    int n = *(int *)ctx;
    double f = 0;
    for (int i = 0; i < n; i++) {
        double a = 1 + 99.0 * i / (n - 1), d = x[i] - i;
        f += 0.5 * a * d * d;
        g[i] = (float)(a * d);
    }
    return f;
}

static double rosen(void *ctx, const float *x, float *g) {
    (void)ctx;
    double a = 1 - x[0], b = x[1] - (double)x[0] * x[0];
    g[0] = (float)(-2 * a - 400 * x[0] * b);
    g[1] = (float)(200 * b);
    return a * a + 100 * b * b;
}

TEST(optim_lbfgs_quadratic) {
    int n = 50, evals = 0, conv = 0;
    float x[50] = {0}, g[50];
    ge_lbfgs_params p;
    ge_lbfgs_params_init(&p);
    ge_lbfgs *o;
    CHECK(ge_lbfgs_new(&o, n, &p) == GE_OK, "new");
    double f = quad(&n, x, g), f_start = f;
    int it;
    for (it = 0; it < 200 && !conv; it++)
        CHECK(ge_lbfgs_step(o, x, &f, g, quad, &n, &evals, &conv) == GE_OK, "%s", ge_errmsg());
    ge_lbfgs_free(o);
    for (int i = 0; i < n; i++) CHECK(fabsf(x[i] - i) < 1e-3f, "x[%d] = %g", i, x[i]);
    CHECK(f < 1e-6 * f_start, "f %g", f);
    CHECK(it < 100, "took %d iterations", it);
}

TEST(optim_lbfgs_rosenbrock) {
    float x[2] = {-1.2f, 1.f}, g[2];
    int evals = 0, conv = 0, it;
    ge_lbfgs_params p;
    ge_lbfgs_params_init(&p);
    ge_lbfgs *o;
    CHECK(ge_lbfgs_new(&o, 2, &p) == GE_OK, "new");
    double f = rosen(NULL, x, g);
    for (it = 0; it < 500 && !conv; it++)
        CHECK(ge_lbfgs_step(o, x, &f, g, rosen, NULL, &evals, &conv) == GE_OK, "%s", ge_errmsg());
    ge_lbfgs_free(o);
    CHECK(fabsf(x[0] - 1) < 1e-3f && fabsf(x[1] - 1) < 2e-3f, "x = (%g, %g) after %d its", x[0],
          x[1], it);
    CHECK(f < 1e-6, "f = %g", f);
}

TEST(optim_adam_rosenbrock_and_first_step) {
    ge_adam_params p;
    ge_adam_params_init(&p);
    ge_adam a;
    float x[2] = {0.5f, -0.25f}, g[2];
    CHECK(ge_adam_init(&a, 2, &p) == GE_OK, "init");
    rosen(NULL, x, g);
    float x0 = x[0], x1 = x[1];
    ge_adam_step(&a, x, g);
    /* first Adam step is lr * g / (|g| + eps) = lr * sign(g) */
    CHECK(fabsf((x0 - x[0]) - p.lr * (g[0] > 0 ? 1 : -1)) < 1e-6f, "first step x0");
    CHECK(fabsf((x1 - x[1]) - p.lr * (g[1] > 0 ? 1 : -1)) < 1e-6f, "first step x1");
    ge_adam_free(&a);
    p.lr = 0.02f;
    CHECK(ge_adam_init(&a, 2, &p) == GE_OK, "init");
    x[0] = -1.2f, x[1] = 1.f;
    double f = 0;
    for (int i = 0; i < 20000; i++) {
        f = rosen(NULL, x, g);
        ge_adam_step(&a, x, g);
    }
    ge_adam_free(&a);
    CHECK(f < 1e-4 && fabsf(x[0] - 1) < 0.02f, "Adam ended at f %g x (%g, %g)", f, x[0], x[1]);
}

static double nan_after(void *ctx, const float *x, float *g) {
    g[0] = 2 * x[0];
    return x[0] < -0.5f ? NAN : (double)x[0] * x[0] + (x[0] > 2 ? NAN : 0);
}

TEST(optim_lbfgs_nonfinite_objective) {
    /* the objective is NaN beyond some point; L-BFGS must still move downhill
       without ever leaving x at a NaN point */
    float x[1] = {1.9f}, g[1];
    int evals = 0, conv = 0;
    ge_lbfgs_params p;
    ge_lbfgs_params_init(&p);
    ge_lbfgs *o;
    CHECK(ge_lbfgs_new(&o, 1, &p) == GE_OK, "new");
    double f = nan_after(NULL, x, g);
    for (int it = 0; it < 50 && !conv; it++) {
        ge_status s = ge_lbfgs_step(o, x, &f, g, nan_after, NULL, &evals, &conv);
        if (s != GE_OK) break;
    }
    ge_lbfgs_free(o);
    CHECK(isfinite(f) && f < 3.61 && x[0] >= -0.5f, "f %g x %g", f, x[0]);
}
