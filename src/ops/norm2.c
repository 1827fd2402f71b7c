/* norm2.c - normalisation by the second moment, StyleGAN2's
 * normalize_2nd_moment on the mapping network's input:
 * y = x * rsqrt(mean_j x_j^2 + eps) for each row of x (n, d).
 *
 * With s = mean(x^2) + eps and r = s^-1/2 the backward is
 * dx_k = r dy_k - (r^3 / d) x_k sum_j dy_j x_j. Rows are few (one per latent)
 * and short, so this runs serially; sums are in double. */
#include "ops/ops.h"

#include <math.h>

static double row_rsqrt(const float *x, int d, float eps) {
    double s = 0;
    for (int j = 0; j < d; j++)
        s += (double)x[j] * x[j];
    return 1.0 / sqrt(s / d + (double)eps);
}

void ge_norm2_forward(float *y, const float *x, int n, int d, float eps) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d; /* (d) */
        float *yr = y + (size_t)i * d;       /* (d) */
        double r = row_rsqrt(xr, d, eps);
        for (int j = 0; j < d; j++)
            yr[j] = (float)(xr[j] * r);
    }
}

void ge_norm2_backward(float *dx, const float *dy, const float *x, int n, int d, float eps) {
    if (!dx) return;
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;  /* (d) */
        const float *gr = dy + (size_t)i * d; /* (d) */
        float *dr = dx + (size_t)i * d;       /* (d) */
        double r = row_rsqrt(xr, d, eps);
        double gx = 0;
        for (int j = 0; j < d; j++)
            gx += (double)gr[j] * xr[j];
        double k = r * r * r / d * gx;
        for (int j = 0; j < d; j++)
            dr[j] += (float)(r * gr[j] - k * xr[j]);
    }
}
