/* test_kernels.c - the compute kernels: ge_gemm (oneDNN) against the triple
 * loop ge_gemm_ref on odd sizes, every transpose, padded strides and
 * alpha/beta; im2col against a direct padded-image formula; col2im as the
 * exact adjoint of im2col (<col2im(c), x> = <c, im2col(x)>); and the channel
 * sum behind every bias gradient. */
#include "harness.h"
#include "kernels/kernels.h"
#include "ops_a_util.h"

TEST(kern_gemm_vs_ref) {
    static const int sizes[][3] = {{1, 1, 1},   {7, 5, 3},  {13, 17, 19}, {33, 1, 65},
                                   {64, 31, 9}, {1, 40, 7}, {5, 3, 0}};
    static const float betas[] = {0.f, 1.3f};
    uint64_t seed = 1;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bi = 0; bi < 2; bi++) {
                    int m = sizes[si][0], n = sizes[si][1], k = sizes[si][2];
                    float beta = betas[bi], alpha = 0.7f;
                    /* strides padded by 3 so lda != the minimal width is exercised */
                    int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
                    int lda = ac + 3, ldb = bc + 3, ldc = n + 3;
                    float *a = opsa_randn(seed++, (size_t)ar * lda, 1.f);
                    float *b = opsa_randn(seed++, (size_t)br * ldb, 1.f);
                    float *c = opsa_randn(seed++, (size_t)m * ldc, 1.f);
                    float *c_ref = opsa_randn(seed - 1, (size_t)m * ldc, 1.f);
                    if (beta == 0.f) /* BLAS: C is not read when beta is 0 */
                        for (size_t i = 0; i < (size_t)m * ldc; i++)
                            c[i] = NAN;
                    ge_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                    ge_gemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c_ref, ldc);
                    double worst = 0;
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            double d =
                                fabs((double)c[(size_t)i * ldc + j] - c_ref[(size_t)i * ldc + j]);
                            if (!(d <= worst)) worst = d;
                        }
                    free(a), free(b), free(c), free(c_ref);
                    /* entries are sums of k products of N(0,1) values */
                    double tol = 1e-5 * (sqrt((double)k) + 2.0);
                    CHECK(worst <= tol, "m=%d n=%d k=%d ta=%d tb=%d beta=%g: max diff %g > %g", m,
                          n, k, ta, tb, beta, worst, tol);
                }
}

/* x (c, h, w) at (ci, iy, ix) seen through padding `pad`, or 0. */
static float padded_at(const float *x, int h, int w, int ci, int iy, int ix, int mode) {
    if (mode == GE_PAD_ZERO && (iy < 0 || iy >= h || ix < 0 || ix >= w)) return 0.f;
    if (iy < 0) iy = -iy;
    if (iy >= h) iy = 2 * (h - 1) - iy;
    if (ix < 0) ix = -ix;
    if (ix >= w) ix = 2 * (w - 1) - ix;
    return x[((size_t)ci * h + iy) * w + ix];
}

/* c, h, w, k, stride, pad, mode: odd sizes, both paddings, strides 1 and 2,
 * a reflection as wide as the image allows (pad = h - 1), 1x1 and 5x5. */
static const int im2col_cases[][7] = {
    {3, 7, 6, 3, 1, 1, GE_PAD_ZERO},       {2, 9, 8, 3, 2, 1, GE_PAD_ZERO},
    {3, 8, 7, 3, 1, 1, GE_PAD_REFLECT},    {2, 9, 7, 3, 2, 1, GE_PAD_REFLECT},
    {1, 9, 9, 5, 1, 2, GE_PAD_REFLECT},    {2, 3, 2, 3, 1, 1, GE_PAD_REFLECT},
    {4, 5, 5, 1, 1, 0, GE_PAD_ZERO},       {3, 8, 8, 4, 2, 1, GE_PAD_ZERO},
    {2, 4, 5, 3, 2, 3, GE_PAD_ZERO},       {1, 3, 4, 3, 1, 2, GE_PAD_REFLECT},
    {16, 40, 40, 3, 1, 1, GE_PAD_REFLECT}, /* large enough to run threaded */
};

TEST(kern_im2col_vs_direct) {
    for (size_t ci = 0; ci < sizeof im2col_cases / sizeof im2col_cases[0]; ci++) {
        const int *t = im2col_cases[ci];
        int c = t[0], h = t[1], w = t[2], k = t[3], s = t[4], pad = t[5], mode = t[6];
        int oh = (h + 2 * pad - k) / s + 1, ow = (w + 2 * pad - k) / s + 1;
        size_t ncol = (size_t)c * k * k * oh * ow;
        float *x = opsa_randn(100 + ci, (size_t)c * h * w, 1.f);
        float *col = opsa_zeros(ncol);
        ge_im2col(col, x, c, h, w, k, k, s, pad, mode, oh, ow);
        size_t bad = ncol;
        for (int ch = 0; ch < c && bad == ncol; ch++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    for (int oy = 0; oy < oh; oy++)
                        for (int ox = 0; ox < ow; ox++) {
                            size_t at = (((size_t)(ch * k + ky) * k + kx) * oh + oy) * ow + ox;
                            float want =
                                padded_at(x, h, w, ch, oy * s - pad + ky, ox * s - pad + kx, mode);
                            if (col[at] != want && bad == ncol) bad = at;
                        }
        free(x), free(col);
        CHECK(bad == ncol, "case %zu: im2col differs from the direct formula at %zu", ci, bad);
    }
}

TEST(kern_col2im_adjoint) {
    for (size_t ci = 0; ci < sizeof im2col_cases / sizeof im2col_cases[0]; ci++) {
        const int *t = im2col_cases[ci];
        int c = t[0], h = t[1], w = t[2], k = t[3], s = t[4], pad = t[5], mode = t[6];
        int oh = (h + 2 * pad - k) / s + 1, ow = (w + 2 * pad - k) / s + 1;
        size_t ncol = (size_t)c * k * k * oh * ow, nx = (size_t)c * h * w;
        float *x = opsa_randn(200 + ci, nx, 1.f);
        float *cv = opsa_randn(300 + ci, ncol, 1.f);
        float *col = opsa_zeros(ncol);
        float *back = opsa_zeros(nx);
        ge_im2col(col, x, c, h, w, k, k, s, pad, mode, oh, ow);
        ge_col2im(back, cv, c, h, w, k, k, s, pad, mode, oh, ow);
        double lhs = opsa_dot(back, x, nx), rhs = opsa_dot(cv, col, ncol);
        double scale = sqrt((double)ncol) + 1.0;
        /* col2im adds: running it again on top must double the result */
        ge_col2im(back, cv, c, h, w, k, k, s, pad, mode, oh, ow);
        double twice = opsa_dot(back, x, nx);
        free(x), free(cv), free(col), free(back);
        CHECK(fabs(lhs - rhs) <= 1e-5 * scale,
              "case %zu: <col2im(c),x> = %.9g, <c,im2col(x)> = %.9g", ci, lhs, rhs);
        CHECK(fabs(twice - 2 * lhs) <= 1e-5 * scale, "case %zu: col2im does not accumulate", ci);
    }
}

TEST(kern_sum_channels) {
    int n = 3, c = 5;
    size_t hw = 7;
    float *x = opsa_randn(7, (size_t)n * c * hw, 1.f);
    float db[5] = {1, 2, 3, 4, 5};
    ge_sum_channels(db, x, n, c, hw);
    for (int o = 0; o < c; o++) {
        double s = o + 1;
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < hw; j++)
                s += x[((size_t)i * c + o) * hw + j];
        CHECK(fabs(db[o] - s) <= 1e-5, "channel %d: %g vs %g", o, db[o], s);
    }
    free(x);
}
