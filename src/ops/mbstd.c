/* mbstd.c - StyleGAN2-ADA's minibatch standard deviation layer
 * (training/networks.py MinibatchStdLayer, num_channels 1), the first op of
 * the discriminator's 4x4 epilogue.
 *
 * G = min(group, n) samples form a group; sample i belongs to group
 * m = i % (n / G) (ADA's reshape(G, -1, ...)), so the members of group m are
 * i = g * M + m, g = 0..G-1, M = n / G. Per group, for every element j of
 * (c, h, w): sd_j = sqrt(mean_g (x_gj - mean_g x_gj)^2 + 1e-8); the group's
 * statistic s_m = mean_j sd_j is appended to every member as one extra last
 * channel: y (n, c+1, h, w).
 *
 * Backward: with D_m = sum over the members and pixels of dy's extra
 * channel, dx_ij += dy_ij + D_m (x_ij - mean_j) / (G sd_j c h w) (the mean's
 * own derivative cancels in the sum of deviations). Sums are in double. */
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>

#define MBSTD_EPS 1e-8

int ge_mbstd_group(int n, int group) {
    if (n <= 0 || group <= 0) return 0;
    int G = group < n ? group : n;
    return n % G == 0 ? G : 0;
}

/* mean_j and sd_j of element j over the G members of group m. */
static void mbstd_stats(const float *x, size_t chw, int G, int M, int m, size_t j, double *mean,
                        double *sd) {
    double s = 0, q = 0;
    for (int g = 0; g < G; g++)
        s += x[(size_t)(g * M + m) * chw + j];
    s /= G;
    for (int g = 0; g < G; g++) {
        double d = x[(size_t)(g * M + m) * chw + j] - s;
        q += d * d;
    }
    *mean = s;
    *sd = sqrt(q / G + MBSTD_EPS);
}

int ge_mbstd_forward(float *y, const float *x, int n, int c, int h, int w, int group) {
    int G = ge_mbstd_group(n, group);
    if (!G || c <= 0 || h <= 0 || w <= 0) return -1;
    int M = n / G;
    size_t hw = (size_t)h * w, chw = (size_t)c * hw;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * chw;  /* (c, h, w) */
        float *yi = y + (size_t)i * (chw + hw); /* (c+1, h, w) */
        for (size_t j = 0; j < chw; j++)
            yi[j] = xi[j];
    }
    for (int m = 0; m < M; m++) {
        double acc = 0, mean, sd;
        for (size_t j = 0; j < chw; j++) {
            mbstd_stats(x, chw, G, M, m, j, &mean, &sd);
            acc += sd;
        }
        float s = (float)(acc / (double)chw);
        for (int g = 0; g < G; g++) {
            float *extra = y + (size_t)(g * M + m) * (chw + hw) + chw; /* (h, w) */
            for (size_t k = 0; k < hw; k++)
                extra[k] = s;
        }
    }
    return 0;
}

int ge_mbstd_backward(float *dx, const float *dy, const float *x, int n, int c, int h, int w,
                      int group) {
    int G = ge_mbstd_group(n, group);
    if (!G || c <= 0 || h <= 0 || w <= 0) return -1;
    if (!dx) return 0;
    int M = n / G;
    size_t hw = (size_t)h * w, chw = (size_t)c * hw;
    for (int i = 0; i < n; i++) {
        const float *dyi = dy + (size_t)i * (chw + hw);
        float *dxi = dx + (size_t)i * chw;
        for (size_t j = 0; j < chw; j++)
            dxi[j] += dyi[j];
    }
    for (int m = 0; m < M; m++) {
        double D = 0;
        for (int g = 0; g < G; g++) {
            const float *extra = dy + (size_t)(g * M + m) * (chw + hw) + chw;
            for (size_t k = 0; k < hw; k++)
                D += extra[k];
        }
        double scale = D / ((double)G * (double)chw);
        for (size_t j = 0; j < chw; j++) {
            double mean, sd;
            mbstd_stats(x, chw, G, M, m, j, &mean, &sd);
            for (int g = 0; g < G; g++) {
                size_t at = (size_t)(g * M + m) * chw + j;
                dx[at] += (float)(scale * (x[at] - mean) / sd);
            }
        }
    }
    return 0;
}
