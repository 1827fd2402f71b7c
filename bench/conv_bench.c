/* conv_bench.c - times ganedit's convolutions at the shapes of the editing
 * pipelines, batch 1, median of repeats, in GFLOP/s (2 * c_out * c_in * k*k
 * * output positions per pass; a transposed convolution counts its input
 * positions).
 *
 * Two sets:
 *  vgg  VGG-19 conv1_2 (64->64) and conv3_1 (128->256), 3x3, pad 1, for
 *       network inputs 64x64 and 256x256 (conv3_1 then runs at 16x16 and
 *       64x64): forward, backward-data, backward-weights, each on its own.
 *  sg2  the modulated convolutions of StyleGAN2 at 64x64 (channel_base
 *       16384, channel_max 512): one editing step of a layer, forward plus
 *       the backward to the input and the styles, in the two forms:
 *       "fused_step" (ge_modulate per-sample weights + per-sample conv, whose
 *       backward needs the per-sample weight gradient) and "unfused_step"
 *       (ge_modconv: shared weight, input scaled by the styles). FLOPs are
 *       counted as two convolutions (forward + input gradient) for both.
 *
 * Usage: conv_bench [threads (2)] [min_seconds (1)] [fast|im2col] [fp32|bf16]
 *                   [wall|cpu] [all|vgg|sg2] [const|repack]
 * "im2col" turns the oneDNN fast path off (the reference path); "cpu" times
 * process CPU time instead of wall time (steadier on a loaded machine, for
 * one thread). The unfused step declares its weight constant (w_const, as
 * a model does while editing: the packed weight is kept between calls);
 * "repack" packs it again on every call, as training must. Prints one line
 * per measurement (median, then the best of
 * the repeats):
 *   layer input spatial pass ms gflops best_ms best_gflops
 * bench/run.sh joins these with bench/conv_torch.py's lines into a table. */
#include "ganedit.h"
#include "kernels/kernels.h"
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static clockid_t clock_id = CLOCK_MONOTONIC;
static double min_s = 1.0;
static int w_const = 1; /* the unfused step keeps its packed weights, as an editing model would */

static double now(void) {
    struct timespec t;
    clock_gettime(clock_id, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs fn(ctx) once to warm up, then repeatedly for min_s (>= 5 times);
 * prints the line. */
static void measure(const char *layer, int input, int spatial, const char *pass, double flops,
                    void (*fn)(void *), void *ctx) {
    fn(ctx);
    double t[201];
    int n = 0;
    double start = now();
    while (n < 201 && (n < 5 || now() - start < min_s)) {
        double t0 = now();
        fn(ctx);
        t[n++] = now() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    double med = t[n / 2], best = t[0];
    printf("%s %dx%d %dx%d %s %.3f %.1f %.3f %.1f\n", layer, input, input, spatial, spatial, pass,
           med * 1e3, flops / med * 1e-9, best * 1e3, flops / best * 1e-9);
    fflush(stdout);
}

static float *randn(size_t n, uint64_t seed, float scale) {
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "conv_bench: out of memory\n");
        exit(1);
    }
    ge_rng r;
    ge_rng_seed(&r, seed);
    ge_rng_fill_normal(&r, x, n);
    for (size_t i = 0; i < n; i++)
        x[i] *= scale;
    return x;
}

/* ---- VGG layers ---------------------------------------------------------- */

typedef struct {
    ge_conv2d_params p;
    int pass;
    float *x, *dx, *y, *dy, *w, *dw, *b, *scratch;
} vgg_ctx;

static void vgg_run(void *v) {
    vgg_ctx *c = v;
    if (c->pass == 0) ge_conv2d_forward(c->y, c->x, c->w, c->b, &c->p, c->scratch);
    if (c->pass == 1) ge_conv2d_backward(c->dx, NULL, NULL, c->dy, c->x, c->w, &c->p, c->scratch);
    if (c->pass == 2) ge_conv2d_backward(NULL, c->dw, NULL, c->dy, c->x, c->w, &c->p, c->scratch);
}

static void bench_vgg(void) {
    static const struct {
        const char *layer;
        int input, c_in, c_out, hw;
    } cases[] = {
        {"conv1_2", 64, 64, 64, 64},
        {"conv1_2", 256, 64, 64, 256},
        {"conv3_1", 64, 128, 256, 16},
        {"conv3_1", 256, 128, 256, 64},
    };
    static const char *pass_name[] = {"forward", "backward_data", "backward_weights"};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        vgg_ctx c;
        memset(&c, 0, sizeof c);
        int hw = cases[ci].hw;
        c.p = (ge_conv2d_params){1, cases[ci].c_in, hw, hw, cases[ci].c_out, 3, 3, 1,
                                 1, GE_PAD_ZERO,    0};
        size_t nx = (size_t)c.p.c_in * hw * hw, ny = (size_t)c.p.c_out * hw * hw;
        size_t nw = (size_t)c.p.c_out * c.p.c_in * 9;
        c.x = randn(nx, 1, 1.f), c.dx = randn(nx, 2, 0.f), c.y = randn(ny, 3, 0.f);
        c.dy = randn(ny, 4, 1.f), c.w = randn(nw, 5, 0.05f), c.dw = randn(nw, 6, 0.f);
        c.b = randn((size_t)c.p.c_out, 7, 0.f),
        c.scratch = randn(ge_conv2d_scratch(&c.p) + 1, 8, 0.f);
        double flops = 2.0 * c.p.c_out * c.p.c_in * 9 * hw * hw;
        for (c.pass = 0; c.pass < 3; c.pass++)
            measure(cases[ci].layer, cases[ci].input, hw, pass_name[c.pass], flops, vgg_run, &c);
        free(c.x), free(c.dx), free(c.y), free(c.dy), free(c.w), free(c.dw), free(c.b);
        free(c.scratch);
    }
}

/* ---- StyleGAN2 modulated layers ------------------------------------------- */

typedef struct {
    ge_modconv_params p;
    int fused;
    size_t nw;
    float *x, *y, *dy, *dx, *w, *s, *ds, *wsq, *scratch;
    float *wm, *wt, *dwm, *cscratch; /* fused form */
} sg_ctx;

static void swap_ab(float *dst, const float *src, int a, int b, int kk) {
    for (int x = 0; x < a; x++)
        for (int y = 0; y < b; y++)
            memcpy(dst + ((size_t)y * a + x) * kk, src + ((size_t)x * b + y) * kk,
                   (size_t)kk * sizeof(float));
}

/* One editing step of the layer: forward, then dx and ds. The fused form
 * follows src/models/stylegan2.c (weights modulated again in the backward). */
static void sg_run(void *v) {
    sg_ctx *c = v;
    const ge_modconv_params *p = &c->p;
    if (!c->fused) {
        ge_modconv_forward(c->y, c->x, c->w, c->s, p, c->scratch);
        ge_modconv_backward(c->dx, c->ds, NULL, c->dy, c->y, c->x, c->w, c->s, p, c->scratch);
        return;
    }
    int kk = p->k * p->k;
    ge_modulate_params mp = {1, p->c_out, p->c_in, p->k, p->demod};
    for (int step = 0; step < 2; step++) {
        ge_modulate_forward(c->wm, c->w, c->s, &mp);
        if (p->up) {
            ge_convt2d_params cp = {1, p->c_in, p->h, p->w, p->c_out, p->k, p->k, 2, 0, c->nw};
            swap_ab(c->wt, c->wm, p->c_out, p->c_in, kk);
            if (step == 0) {
                ge_convt2d_forward(c->y, c->x, c->wt, NULL, &cp, c->cscratch);
            } else {
                memset(c->dwm, 0, c->nw * sizeof(float));
                ge_convt2d_backward(c->dx, c->dwm, NULL, c->dy, c->x, c->wt, &cp, c->cscratch);
                swap_ab(c->wm, c->dwm, p->c_in, p->c_out, kk);
                ge_modulate_backward(c->ds, NULL, c->wm, c->w, c->s, &mp);
            }
        } else {
            ge_conv2d_params cp = {1,    p->c_in, p->h,     p->w,        p->c_out, p->k,
                                   p->k, 1,       p->k / 2, GE_PAD_ZERO, c->nw};
            if (step == 0) {
                ge_conv2d_forward(c->y, c->x, c->wm, NULL, &cp, c->cscratch);
            } else {
                memset(c->dwm, 0, c->nw * sizeof(float));
                ge_conv2d_backward(c->dx, c->dwm, NULL, c->dy, c->x, c->wm, &cp, c->cscratch);
                ge_modulate_backward(c->ds, NULL, c->dwm, c->w, c->s, &mp);
            }
        }
    }
}

static void bench_sg2(void) {
    /* name, input resolution of the layer, c_in, c_out, up */
    static const struct {
        const char *layer;
        int hw, c_in, c_out, up;
    } cases[] = {
        {"sg2_b4_conv1", 4, 512, 512, 0},   {"sg2_b8_conv0up", 4, 512, 512, 1},
        {"sg2_b8_conv1", 8, 512, 512, 0},   {"sg2_b16_conv0up", 8, 512, 512, 1},
        {"sg2_b16_conv1", 16, 512, 512, 0}, {"sg2_b32_conv0up", 16, 512, 512, 1},
        {"sg2_b32_conv1", 32, 512, 512, 0}, {"sg2_b64_conv0up", 32, 512, 256, 1},
        {"sg2_b64_conv1", 64, 256, 256, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        sg_ctx c;
        memset(&c, 0, sizeof c);
        int hw = cases[ci].hw;
        c.p = (ge_modconv_params){1, cases[ci].c_in, hw, hw,   cases[ci].c_out,
                                  3, cases[ci].up,   1,  NULL, w_const};
        int oh, ow;
        ge_modconv_out_size(&c.p, &oh, &ow);
        size_t nx = (size_t)c.p.c_in * hw * hw, ny = (size_t)c.p.c_out * oh * ow;
        c.nw = (size_t)c.p.c_out * c.p.c_in * 9;
        c.x = randn(nx, 1, 1.f), c.dx = randn(nx, 2, 0.f), c.y = randn(ny, 3, 0.f);
        c.dy = randn(ny, 4, 1.f), c.w = randn(c.nw, 5, 1.f), c.s = randn((size_t)c.p.c_in, 6, 0.3f);
        c.ds = randn((size_t)c.p.c_in, 7, 0.f), c.wsq = randn((size_t)c.p.c_out * c.p.c_in, 8, 0.f);
        ge_modconv_wsq(c.wsq, c.w, c.p.c_out, c.p.c_in, 3);
        c.p.wsq = c.wsq; /* a model computes it once per weight */
        c.scratch = randn(ge_modconv_scratch(&c.p) + 1, 9, 0.f);
        c.wm = randn(c.nw, 10, 0.f), c.wt = randn(c.nw, 11, 0.f), c.dwm = randn(c.nw, 12, 0.f);
        ge_conv2d_params cp = {1, c.p.c_in, hw, hw, c.p.c_out, 3, 3, 1, 1, GE_PAD_ZERO, c.nw};
        ge_convt2d_params tp = {1, c.p.c_in, hw, hw, c.p.c_out, 3, 3, 2, 0, c.nw};
        size_t cs = c.p.up ? ge_convt2d_scratch(&tp) : ge_conv2d_scratch(&cp);
        c.cscratch = randn(cs + 1, 13, 0.f);
        double flops = 2 * 2.0 * c.p.c_out * c.p.c_in * 9 * (c.p.up ? hw * hw : oh * ow);
        for (c.fused = 1; c.fused >= 0; c.fused--)
            measure(cases[ci].layer, 64, c.p.up ? oh : hw, c.fused ? "fused_step" : "unfused_step",
                    flops, sg_run, &c);
        free(c.x), free(c.dx), free(c.y), free(c.dy), free(c.w), free(c.s), free(c.ds);
        free(c.wsq), free(c.scratch), free(c.wm), free(c.wt), free(c.dwm), free(c.cscratch);
    }
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    min_s = argc > 2 ? atof(argv[2]) : 1.0;
    const char *impl = argc > 3 ? argv[3] : "fast";
    const char *prec = argc > 4 ? argv[4] : "fp32";
    if (argc > 5 && !strcmp(argv[5], "cpu")) clock_id = CLOCK_PROCESS_CPUTIME_ID;
    const char *set = argc > 6 ? argv[6] : "all";
    if (argc > 7 && !strcmp(argv[7], "repack")) w_const = 0;
    ge_set_num_threads(threads);
    ge_dconv_enable(strcmp(impl, "im2col") != 0);
    ge_set_precision(strcmp(prec, "bf16") ? GE_PRECISION_FP32 : GE_PRECISION_BF16);
    printf("# ganedit convolutions (%s path, %s in effect, bf16 support %d), %d threads, "
           "batch 1, %s time\n",
           strcmp(impl, "im2col") ? "oneDNN primitives" : "im2col + sgemm",
           ge_get_precision() == GE_PRECISION_BF16 ? "bf16" : "fp32", (int)ge_bf16_supported(),
           threads, clock_id == CLOCK_MONOTONIC ? "wall" : "cpu");
    printf("# layer input spatial pass ms gflops best_ms best_gflops\n");
    if (strcmp(set, "sg2")) bench_vgg();
    if (strcmp(set, "vgg")) bench_sg2();
    return 0;
}
