/* conv_bench.c - times ge_conv2d (im2col + oneDNN sgemm) at VGG-19 shapes:
 * forward, backward-data and backward-weights, each on its own, batch 1,
 * median of repeats, reported in GFLOP/s (2 * c_out * c_in * k*k * oh*ow
 * multiply-adds counted as 2 flops). Layers: conv1_2 (64->64) and conv3_1
 * (128->256), 3x3, pad 1, for network inputs 64x64 and 256x256 (conv3_1 then
 * runs at 16x16 and 64x64, after two 2x2 poolings).
 *
 * Usage: conv_bench [threads (default 2)] [min_seconds per measurement]
 * Prints one line per measurement (median, then best of the repeats; the
 * best is steadier on a shared machine):
 *   layer input spatial pass ms gflops best_ms best_gflops
 * bench/run.sh joins these with bench/conv_torch.py's lines into a table. */
#include "ganedit.h"
#include "kernels/kernels.h"
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *layer;
    int input; /* network input size */
    int c_in, c_out, hw;
} bench_case;

enum { PASS_FWD, PASS_BWD_DATA, PASS_BWD_WEIGHT };
static const char *pass_name[] = {"forward", "backward_data", "backward_weights"};

static void run_pass(int pass, float *y, float *dx, float *dw, const float *x, const float *w,
                     const float *b, const float *dy, const ge_conv2d_params *p, float *scratch) {
    if (pass == PASS_FWD) ge_conv2d_forward(y, x, w, b, p, scratch);
    if (pass == PASS_BWD_DATA) ge_conv2d_backward(dx, NULL, NULL, dy, x, w, p, scratch);
    if (pass == PASS_BWD_WEIGHT) ge_conv2d_backward(NULL, dw, NULL, dy, x, w, p, scratch);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    double min_s = argc > 2 ? atof(argv[2]) : 1.0;
    ge_set_num_threads(threads);
    static const bench_case cases[] = {
        {"conv1_2", 64, 64, 64, 64},
        {"conv1_2", 256, 64, 64, 256},
        {"conv3_1", 64, 128, 256, 16},
        {"conv3_1", 256, 128, 256, 64},
    };
    printf("# ganedit conv2d (im2col + dnnl_sgemm), %d threads, batch 1, 3x3 pad 1\n", threads);
    printf("# layer input spatial pass ms gflops best_ms best_gflops\n");
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const bench_case *c = &cases[ci];
        ge_conv2d_params p = {.n = 1,
                              .c_in = c->c_in,
                              .h = c->hw,
                              .w = c->hw,
                              .c_out = c->c_out,
                              .kh = 3,
                              .kw = 3,
                              .stride = 1,
                              .pad = 1,
                              .pad_mode = GE_PAD_ZERO};
        size_t nx = (size_t)c->c_in * c->hw * c->hw, ny = (size_t)c->c_out * c->hw * c->hw;
        size_t nw = (size_t)c->c_out * c->c_in * 9;
        float *x = malloc(nx * 4), *dx = calloc(nx, 4), *y = malloc(ny * 4), *dy = malloc(ny * 4);
        float *w = malloc(nw * 4), *dw = calloc(nw, 4), *b = calloc((size_t)c->c_out, 4);
        float *scratch = malloc(ge_conv2d_scratch(&p) * 4);
        if (!x || !dx || !y || !dy || !w || !dw || !b || !scratch) {
            fprintf(stderr, "conv_bench: out of memory\n");
            return 1;
        }
        ge_rng r;
        ge_rng_seed(&r, 1);
        ge_rng_fill_normal(&r, x, nx);
        ge_rng_fill_normal(&r, dy, ny);
        ge_rng_fill_normal(&r, w, nw);
        double flops = 2.0 * c->c_out * c->c_in * 9 * c->hw * c->hw;
        for (int pass = 0; pass < 3; pass++) {
            run_pass(pass, y, dx, dw, x, w, b, dy, &p, scratch); /* warm-up */
            double t[201];
            int n = 0;
            double start = now();
            while (n < 201 && (n < 5 || now() - start < min_s)) {
                double t0 = now();
                run_pass(pass, y, dx, dw, x, w, b, dy, &p, scratch);
                t[n++] = now() - t0;
            }
            qsort(t, (size_t)n, sizeof t[0], cmp_double);
            double med = t[n / 2], best = t[0];
            printf("%s %dx%d %dx%d %s %.3f %.1f %.3f %.1f\n", c->layer, c->input, c->input, c->hw,
                   c->hw, pass_name[pass], med * 1e3, flops / med * 1e-9, best * 1e3,
                   flops / best * 1e-9);
            fflush(stdout);
        }
        free(x), free(dx), free(y), free(dy), free(w), free(dw), free(b), free(scratch);
    }
    return 0;
}
