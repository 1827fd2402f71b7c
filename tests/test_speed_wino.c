/* test_speed_wino.c - the fast paths added for the VGG editing step, each
 * against its reference:
 *  - oneDNN's Winograd convolutions (ge_dconv_shape.wino, dnnl_conv.c):
 *    forward with kept weights and the input gradient, against im2col +
 *    GEMM (ge_conv2d with the fast path off), on VGG-like shapes with zero
 *    and reflection padding and batches; the Winograd kernel really ran; a
 *    batch gives each sample the bytes of its own single call; and
 *    ge_dconv_winograd(0) goes back to the direct kernels;
 *  - the AVX-512 max-pool windows (maxpool.c) against the scalar loops
 *    (ge_maxpool2_scalar), bit for bit, with ties, NaNs, odd sizes and both
 *    ceil modes, the backward adding into a non-zero dx;
 *  - the VGG as editing runs it (vgg.c: kept weights, Winograd, one sample
 *    at a time): a batch gives each sample its single run's bytes, 2
 *    threads agree with 1, and the whole input gradient agrees with the
 *    im2col reference (1e-4; measured 3e-7).
 * Winograd tolerance: 2e-5 * max |ref|, as the direct path's (measured
 * 1e-6 or less: F(4x4,3x3)'s transforms add a few roundings per output). */
#include "harness.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "ops_a_util.h"

#include <string.h>

typedef struct {
    int n, c_in, h, w, c_out, pad_mode;
} wcase;

static const wcase wcases[] = {
    {1, 64, 32, 32, 64, GE_PAD_REFLECT}, /* VGG conv1_2-like (reflection, normalised VGG) */
    {3, 32, 36, 40, 48, GE_PAD_ZERO},    /* batch, widths not multiples of 16, odd channels */
    {2, 128, 16, 16, 256, GE_PAD_REFLECT}, /* conv3_1: Winograd forward only */
};
#define N_WCASES (int)(sizeof wcases / sizeof wcases[0])

static ge_dconv_shape wshape(const wcase *c) {
    ge_dconv_shape s = {.n = c->n,
                        .c_in = c->c_in,
                        .h = c->h,
                        .w = c->w,
                        .c_out = c->c_out,
                        .kh = 3,
                        .kw = 3,
                        .stride = 1,
                        .pad = 1,
                        .pad_mode = c->pad_mode,
                        .w_const = 1,
                        .wino = 1};
    return s;
}

static ge_conv2d_params wparams(const wcase *c) {
    ge_conv2d_params p = {0};
    p.n = c->n, p.c_in = c->c_in, p.h = c->h, p.w = c->w;
    p.c_out = c->c_out, p.kh = 3, p.kw = 3, p.stride = 1, p.pad = 1, p.pad_mode = c->pad_mode;
    return p;
}

static double wino_err(const float *a, const float *r, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - r[i]);
        if (e > d || e != e) d = e;
        if (fabs(r[i]) > m) m = fabs(r[i]);
    }
    return m > 0 ? d / m : d;
}

TEST(speed_wino_vs_im2col) {
    for (int i = 0; i < N_WCASES; i++) {
        const wcase *c = &wcases[i];
        ge_dconv_shape s = wshape(c);
        ge_conv2d_params p = wparams(c);
        size_t nx = (size_t)c->n * c->c_in * c->h * c->w, ny = (size_t)c->n * c->c_out * c->h * c->w;
        size_t nw = (size_t)c->c_out * c->c_in * 9;
        float *x = opsa_randn(10 + i, nx, 1.f), *w = opsa_randn(20 + i, nw, 0.05f);
        float *b = opsa_randn(30 + i, c->c_out, 0.1f), *dy = opsa_randn(40 + i, ny, 1.f);
        float *y = opsa_zeros(ny), *yr = opsa_zeros(ny);
        float *dx = opsa_randn(50 + i, nx, 1.f), *dxr = malloc(nx * sizeof(float));
        float *scratch = malloc(ge_conv2d_scratch(&p) * sizeof(float));
        int ok = x && w && b && dy && y && yr && dx && dxr && scratch;
        if (ok) {
            memcpy(dxr, dx, nx * sizeof(float));
            ok = ge_dconv_forward(y, x, w, b, &s, 0) && ge_dconv_backward_data(dx, dy, w, NULL, &s, 1);
            int was = ge_dconv_enable(0);
            ge_conv2d_forward(yr, x, w, b, &p, scratch);
            ge_conv2d_backward(dxr, NULL, NULL, dy, x, w, &p, scratch);
            ge_dconv_enable(was);
        }
        double ey = ok ? wino_err(y, yr, ny) : 1, ex = ok ? wino_err(dx, dxr, nx) : 1;
        const char *impl = ge_dconv_impl(&s, GE_DCONV_FWD);
        int wino_fwd = impl && strstr(impl, "wino");
        ge_dconv_forget(w);
        free(x), free(w), free(b), free(dy), free(y), free(yr), free(dx), free(dxr), free(scratch);
        CHECK(ok, "case %d: out of memory or declined", i);
        fprintf(stderr, "  case %d (%s): error vs im2col, forward %.2g, input gradient %.2g\n", i,
                impl ? impl : "-", ey, ex);
        CHECK(ey <= 2e-5, "case %d: Winograd forward differs from im2col by %.3g", i, ey);
        CHECK(ex <= 2e-5, "case %d: Winograd input gradient differs from im2col by %.3g", i, ex);
#if defined(__x86_64__)
        if (__builtin_cpu_supports("avx512f") && !getenv("GANEDIT_CONV"))
            CHECK(wino_fwd, "case %d: the forward ran %s, not Winograd", i, impl ? impl : "nothing");
#endif
    }
}

/* Sample i of a batch = the same sample alone, bit for bit. */
TEST(speed_wino_batch_invariant) {
    wcase c = wcases[1];
    ge_dconv_shape s = wshape(&c), s1 = s;
    s1.n = 1;
    size_t nx1 = (size_t)c.c_in * c.h * c.w, ny1 = (size_t)c.c_out * c.h * c.w;
    size_t nw = (size_t)c.c_out * c.c_in * 9;
    float *x = opsa_randn(1, nx1 * c.n, 1.f), *w = opsa_randn(2, nw, 0.05f);
    float *dy = opsa_randn(3, ny1 * c.n, 1.f);
    float *y = opsa_zeros(ny1 * c.n), *y1 = opsa_zeros(ny1);
    float *dx = opsa_zeros(nx1 * c.n), *dx1 = opsa_zeros(nx1);
    int ok = x && w && dy && y && y1 && dx && dx1 && ge_dconv_forward(y, x, w, NULL, &s, 0) &&
             ge_dconv_backward_data(dx, dy, w, NULL, &s, 0);
    int same = ok;
    for (int i = 0; ok && i < c.n; i++) {
        ok = ge_dconv_forward(y1, x + i * nx1, w, NULL, &s1, 0) &&
             ge_dconv_backward_data(dx1, dy + i * ny1, w, NULL, &s1, 0);
        same = same && ok && !memcmp(y1, y + i * ny1, ny1 * 4) && !memcmp(dx1, dx + i * nx1, nx1 * 4);
    }
    ge_dconv_forget(w);
    free(x), free(w), free(dy), free(y), free(y1), free(dx), free(dx1);
    CHECK(ok, "out of memory or declined");
    CHECK(same, "a sample of the batch differs from its single call");
}

TEST(speed_wino_switch) {
    ge_dconv_shape s = wshape(&wcases[0]);
    int was = ge_dconv_winograd(0);
    const char *off = ge_dconv_impl(&s, GE_DCONV_FWD);
    int off_direct = off && !strstr(off, "wino");
    int prev = ge_dconv_winograd(was);
    s.wino = 0; /* callers that do not ask never get it */
    const char *plain = ge_dconv_impl(&s, GE_DCONV_BWD_DATA);
    CHECK(prev == 0, "ge_dconv_winograd did not report the previous setting");
#if defined(__x86_64__)
    CHECK(off_direct, "with Winograd off the forward ran %s", off ? off : "nothing");
    CHECK(plain && !strstr(plain, "wino"), "a caller without .wino got %s", plain ? plain : "-");
#endif
}

/* ---- max pool: AVX-512 windows vs the scalar loops ---------------------------- */

static void pool_input(float *x, size_t n, uint64_t seed) {
    ge_rng r;
    ge_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        float u = ge_rng_uniform(&r);
        x[i] = (float)(int)(u * 7.f) - 3.f; /* few values: many ties, and zeros */
        if (u > 0.995f) x[i] = NAN;
        if (u < 0.003f) x[i] = -0.f;
    }
}

TEST(speed_maxpool_vs_scalar) {
    static const int sizes[][2] = {{64, 64}, {32, 32}, {33, 65}, {16, 48}, {7, 96}, {2, 130}};
    for (int t = 0; t < 6; t++)
        for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
            int n = 2, c = 3, h = sizes[t][0], w = sizes[t][1], oh, ow;
            ge_maxpool2_out_size(h, w, ceil_mode, &oh, &ow);
            size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * oh * ow;
            float *x = malloc(nx * 4), *y = malloc(ny * 4), *yr = malloc(ny * 4);
            float *dy = opsa_randn(7 + t, ny, 1.f), *dx = opsa_randn(8 + t, nx, 1.f);
            float *dxr = malloc(nx * 4);
            CHECK(x && y && yr && dy && dx && dxr, "out of memory");
            pool_input(x, nx, 100 + t);
            memcpy(dxr, dx, nx * 4);
            ge_maxpool2_forward(y, x, n, c, h, w, ceil_mode);
            ge_maxpool2_backward(dx, dy, x, n, c, h, w, ceil_mode);
            int was = ge_maxpool2_scalar(1);
            ge_maxpool2_forward(yr, x, n, c, h, w, ceil_mode);
            ge_maxpool2_backward(dxr, dy, x, n, c, h, w, ceil_mode);
            int prev = ge_maxpool2_scalar(was);
            int same_y = !memcmp(y, yr, ny * 4), same_dx = !memcmp(dx, dxr, nx * 4);
            free(x), free(y), free(yr), free(dy), free(dx), free(dxr);
            CHECK(prev == 1, "ge_maxpool2_scalar did not report the previous setting");
            CHECK(same_y, "%dx%d ceil %d: forward differs from the scalar loops", h, w, ceil_mode);
            CHECK(same_dx, "%dx%d ceil %d: backward differs from the scalar loops", h, w,
                  ceil_mode);
        }
}

/* ---- the VGG as the editing step runs it ---------------------------------------- */

#define VGG_W "weights/vgg19_normalised_conv3_1.safetensors"

/* Forward to conv3_1 of x (n, 3, 32, 32), gradients injected at conv1_1
 * (d1) and conv3_1 (d3); dx (n, 3, 32, 32) gets the input gradient. */
static int vgg_run(ge_vgg *v, float *dx, const float *x, const float *d1, const float *d3, int n) {
    static const char *const layers[2] = {"conv1_1", "conv3_1"};
    const float *grads[2] = {d1, d3};
    memset(dx, 0, (size_t)n * 3 * 32 * 32 * sizeof(float));
    return ge_vgg_forward(v, x, n, 32, 32, "conv3_1") == GE_OK &&
           ge_vgg_backward(v, dx, 2, layers, grads) == GE_OK;
}

/* Sample i of a batch gets its single run's bytes (one sample at a time
 * through the chain); 2 threads agree with 1 to rounding; the whole fast
 * VGG (Winograd, kept weights) agrees with the im2col reference. */
TEST(speed_vgg_batch_threads_ref) {
    ge_vgg *v = NULL;
    CHECK(ge_vgg_load(&v, shared_path(VGG_W)) == GE_OK, "%s", ge_errmsg());
    int n = 2;
    size_t nx1 = 3 * 32 * 32, n1 = 64 * 32 * 32, n3 = 256 * 8 * 8;
    float *x = opsa_randn(1, nx1 * n, 0.5f), *d1 = opsa_randn(2, n1 * n, 1e-3f);
    float *d3 = opsa_randn(3, n3 * n, 1e-2f), *dx = opsa_zeros(nx1 * n), *dx1 = opsa_zeros(nx1);
    float *dx2 = opsa_zeros(nx1 * n), *dxr = opsa_zeros(nx1 * n), *f3 = opsa_zeros(n3 * n);
    int ok = x && d1 && d3 && dx && dx1 && dx2 && dxr && f3 && vgg_run(v, dx, x, d1, d3, n);
    const float *f = ok ? ge_vgg_feature(v, "conv3_1", NULL, NULL, NULL) : NULL;
    if (f) memcpy(f3, f, n3 * n * sizeof(float));
    int same = ok && f;
    for (int i = 0; ok && i < n; i++) {
        ok = vgg_run(v, dx1, x + i * nx1, d1 + i * n1, d3 + i * n3, 1);
        f = ge_vgg_feature(v, "conv3_1", NULL, NULL, NULL);
        same = same && ok && f && !memcmp(f, f3 + i * n3, n3 * 4) &&
               !memcmp(dx1, dx + i * nx1, nx1 * 4);
    }
    int threads = ge_get_num_threads();
    ge_set_num_threads(2);
    int ok2 = ok && vgg_run(v, dx2, x, d1, d3, n);
    ge_set_num_threads(threads);
    int was = ge_dconv_enable(0);
    int okr = ok && vgg_run(v, dxr, x, d1, d3, n);
    ge_dconv_enable(was);
    double e2 = ok2 ? wino_err(dx2, dx, nx1 * n) : 1, er = okr ? wino_err(dx, dxr, nx1 * n) : 1;
    fprintf(stderr, "  input gradient: 2 vs 1 thread %.2g, fast vs im2col %.2g\n", e2, er);
    ge_vgg_free(v);
    free(x), free(d1), free(d3), free(dx), free(dx1), free(dx2), free(dxr), free(f3);
    CHECK(ok && ok2 && okr, "VGG run failed: %s", ge_errmsg());
    CHECK(same, "a sample of the batch differs from its single run");
    CHECK(e2 <= 1e-5, "2 threads differ from 1 by %.3g", e2);
    CHECK(er <= 1e-4, "the fast VGG differs from the im2col one by %.3g", er);
}
