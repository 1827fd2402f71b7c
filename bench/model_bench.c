/* model_bench.c - times whole optimisation steps of ganedit through its public
 * API: the generators alone (forward + backward to the latent) and the issue
 * #6 editing pipelines (generator -> VGG-19 to conv3_1 -> pixel + perceptual
 * loss against cached target features -> VGG backward -> generator backward
 * to the latent). bench/model_torch.py times the same steps in PyTorch and
 * writes the inputs both read (random StyleGAN2 weights, latents, targets),
 * so both sides compute the same numbers; bench/run_models.sh runs the two
 * alternately and prints the table.
 *
 * The step is composed here from ge_generator_forward/backward and
 * ge_vgg_forward/feature/backward (the loss and its gradient are a few
 * loops), so each part can be timed on its own; "engine" mode also runs
 * ge_edit_run (Adam, or L-BFGS) to time the library's own loop and to check
 * that its objective equals the one composed here.
 *
 * One pipeline per process, so that the peak RSS (getrusage) is that
 * pipeline's. Times are wall-clock, or process CPU time with
 * GE_BENCH_CLOCK=cpu (meaningful with 1 thread). Usage:
 *   model_bench DATA_DIR PIPELINE [threads (2)] [min_seconds (1)] [max_reps (50)] [engine|lbfgs]
 * Prints
 *   ganedit PIPELINE median_ms best_ms reps 0 peak_rss_mib loss0
 *   # parts PIPELINE gen_fwd vgg_fwd loss vgg_bwd gen_bwd   (medians, ms)
 * and with "engine": "# engine PIPELINE adam_step_ms loss0_engine loss0_restart0";
 * with "lbfgs" (ge_edit_run with L-BFGS for max_reps steps, instead of the above):
 *   ganedit-lbfgs PIPELINE mean_ms_per_step ms_per_eval evals_per_step steps peak_rss_mib */
#include "ganedit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define W_PIXEL 0.3f
#define W_PERCEPTUAL 0.7f
#define N_LAYERS 5
#define MAX_REPS 1000
static const char *const layer_names[N_LAYERS] = {"conv1_1", "conv1_2", "conv2_1", "conv2_2",
                                                  "conv3_1"};

typedef struct {
    const char *name;
    const char *gen;   /* generator file: under the shared folder, or DATA_DIR if in_data */
    int in_data;
    ge_latent_space sp;
    int n;             /* batch (restarts) */
    int vgg;           /* 0: generator alone, loss sum(img * r) */
} pipeline;

/* The same table is in model_torch.py. */
static const pipeline pipelines[] = {
    {"dcgan64_gen", "weights/dcgan_grumpy_deluxe.safetensors", 0, GE_LATENT_Z, 1, 0},
    {"sg2ref64_gen", "ref/stylegan2_g2.safetensors", 0, GE_LATENT_WPLUS, 1, 0},
    {"dcgan64_vgg_b1", "weights/dcgan_grumpy_deluxe.safetensors", 0, GE_LATENT_Z, 1, 1},
    {"dcgan64_vgg_b10", "weights/dcgan_grumpy_deluxe.safetensors", 0, GE_LATENT_Z, 10, 1},
    {"sg2_64_vgg_b1", "sg2_64.safetensors", 1, GE_LATENT_WPLUS, 1, 1},
    {"sg2_256_vgg_b1", "sg2_256.safetensors", 1, GE_LATENT_WPLUS, 1, 1},
};

/* GE_BENCH_CLOCK=cpu: process CPU time instead of wall time. With 1 thread
 * it is the work of the step, robust to other processes on a loaded machine. */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec t;
    clock_gettime(clock_id, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return t[n / 2];
}

static double peak_rss_mib(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / 1024.0; /* KiB on Linux */
}

static int die(const char *what) {
    fprintf(stderr, "model_bench: %s: %s\n", what, ge_errmsg());
    return 1;
}

/* ---- op profile (run_models.sh --profile builds this with -DGE_BENCH_PROFILE and
 * -Wl,--wrap=SYMBOL for each op below): every call of a wrapped library op is
 * timed and added to the current phase of the step. GEMM, im2col and col2im
 * are called from inside the convolution and linear ops, so their times are
 * also inside those ops' times ("of which"). Internal headers are used only
 * here, and only in that build. */
#ifdef GE_BENCH_PROFILE
#include "kernels/kernels.h"
#include "ops/ops.h"

enum { PH_GEN_FWD, PH_VGG_FWD, PH_LOSS, PH_VGG_BWD, PH_GEN_BWD, N_PH };
#define OPS(X)                                                                                   \
    X(conv2d_forward) X(conv2d_backward) X(convt2d_forward) X(convt2d_backward)                  \
    X(linear_forward) X(linear_backward) X(modulate_forward) X(modulate_backward)                \
    X(upfirdn2d_forward) X(upfirdn2d_backward) X(bias_act_forward) X(bias_act_backward)          \
    X(noise_forward) X(noise_backward) X(maxpool2_forward) X(maxpool2_backward)                  \
    X(instance_norm_forward) X(instance_norm_backward) X(upsample2_forward)                      \
    X(upsample2_backward) X(gemm) X(im2col_rows) X(col2im_rows)
#define OP_ENUM(name) OP_##name,
#define OP_NAME(name) #name,
enum { OPS(OP_ENUM) N_OPS, N_TOP = OP_gemm };
static const char *const op_names[] = {OPS(OP_NAME)};
static int cur_phase;
static double prof_s[N_PH][N_OPS], prof_gemm_flops[N_PH];
static long prof_calls[N_PH][N_OPS];

#define WRAP(ret_void_name, params, args)                                                         \
    void __real_ge_##ret_void_name params;                                                       \
    void __wrap_ge_##ret_void_name params;                                                       \
    void __wrap_ge_##ret_void_name params {                                                      \
        double t_ = now();                                                                       \
        __real_ge_##ret_void_name args;                                                          \
        prof_s[cur_phase][OP_##ret_void_name] += now() - t_;                                     \
        prof_calls[cur_phase][OP_##ret_void_name]++;                                             \
    }
WRAP(conv2d_forward, (float *y, const float *x, const float *w, const float *b,
                      const ge_conv2d_params *p, float *scratch), (y, x, w, b, p, scratch))
WRAP(conv2d_backward, (float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, const ge_conv2d_params *p, float *scratch),
     (dx, dw, db, dy, x, w, p, scratch))
WRAP(convt2d_forward, (float *y, const float *x, const float *w, const float *b,
                       const ge_convt2d_params *p, float *scratch), (y, x, w, b, p, scratch))
WRAP(convt2d_backward, (float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, const ge_convt2d_params *p, float *scratch),
     (dx, dw, db, dy, x, w, p, scratch))
WRAP(linear_forward, (float *y, const float *x, const float *w, const float *b,
                      const ge_linear_params *p), (y, x, w, b, p))
WRAP(linear_backward, (float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, const ge_linear_params *p), (dx, dw, db, dy, x, w, p))
WRAP(modulate_forward, (float *wm, const float *w, const float *s, const ge_modulate_params *p),
     (wm, w, s, p))
WRAP(modulate_backward, (float *ds, float *dw, const float *dwm, const float *w, const float *s,
                         const ge_modulate_params *p), (ds, dw, dwm, w, s, p))
WRAP(upfirdn2d_forward, (float *y, const float *x, const float *f, const ge_upfirdn2d_params *p),
     (y, x, f, p))
WRAP(upfirdn2d_backward, (float *dx, const float *dy, const float *f,
                          const ge_upfirdn2d_params *p), (dx, dy, f, p))
WRAP(bias_act_forward, (float *y, const float *x, const float *b, const ge_bias_act_params *p),
     (y, x, b, p))
WRAP(bias_act_backward, (float *dx, float *db, const float *dy, const float *x, const float *b,
                         const ge_bias_act_params *p), (dx, db, dy, x, b, p))
WRAP(noise_forward, (float *y, const float *x, const float *noise, float strength, int n, int c,
                     size_t hw, int n_noise), (y, x, noise, strength, n, c, hw, n_noise))
WRAP(noise_backward, (float *dx, float *dstrength, const float *dy, const float *noise, int n,
                      int c, size_t hw, int n_noise), (dx, dstrength, dy, noise, n, c, hw, n_noise))
WRAP(maxpool2_forward, (float *y, const float *x, int n, int c, int h, int w, int ceil_mode),
     (y, x, n, c, h, w, ceil_mode))
WRAP(maxpool2_backward, (float *dx, const float *dy, const float *x, int n, int c, int h, int w,
                         int ceil_mode), (dx, dy, x, n, c, h, w, ceil_mode))
WRAP(instance_norm_forward, (float *y, const float *x, int n, int c, size_t hw, float eps),
     (y, x, n, c, hw, eps))
WRAP(instance_norm_backward, (float *dx, const float *dy, const float *x, int n, int c,
                              size_t hw, float eps), (dx, dy, x, n, c, hw, eps))
WRAP(upsample2_forward, (float *y, const float *x, int n, int c, int h, int w), (y, x, n, c, h, w))
WRAP(upsample2_backward, (float *dx, const float *dy, int n, int c, int h, int w),
     (dx, dy, n, c, h, w))
WRAP(im2col_rows, (float *col, const float *x, int c, int h, int w, int kh, int kw, int stride,
                   int pad, int pad_mode, int oh, int ow, int oy0, int oy1),
     (col, x, c, h, w, kh, kw, stride, pad, pad_mode, oh, ow, oy0, oy1))
WRAP(col2im_rows, (float *x, const float *col, int c, int h, int w, int kh, int kw, int stride,
                   int pad, int pad_mode, int oh, int ow, int oy0, int oy1),
     (x, col, c, h, w, kh, kw, stride, pad, pad_mode, oh, ow, oy0, oy1))
void __real_ge_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc);
void __wrap_ge_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc);
void __wrap_ge_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    double t_ = now();
    __real_ge_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    prof_s[cur_phase][OP_gemm] += now() - t_;
    prof_calls[cur_phase][OP_gemm]++;
    prof_gemm_flops[cur_phase] += 2.0 * m * n * k;
}
#define SET_PHASE(ph) (cur_phase = (ph))

/* Prints ms per step of every op in each phase, and what no wrapped op covers. */
static void prof_print(const char *name, int reps, const double *phase_s) {
    static const char *const ph_names[N_PH] = {"gen_fwd", "vgg_fwd", "loss", "vgg_bwd", "gen_bwd"};
    printf("# profile %s, ms per step (mean of %d steps), %d threads\n", name, reps,
           ge_get_num_threads());
    printf("# %-22s", "op");
    for (int ph = 0; ph < N_PH; ph++) printf(" %9s", ph_names[ph]);
    printf(" %9s %6s\n", "total", "%");
    double all = 0, top[N_PH] = {0};
    for (int ph = 0; ph < N_PH; ph++) all += phase_s[ph];
    for (int op = 0; op < N_OPS; op++) {
        double tot = 0;
        for (int ph = 0; ph < N_PH; ph++) tot += prof_s[ph][op];
        if (tot == 0) continue;
        printf("# %s%-*s", op >= N_TOP ? "  of which " : "", op >= N_TOP ? 12 : 22, op_names[op]);
        for (int ph = 0; ph < N_PH; ph++) {
            printf(" %9.2f", prof_s[ph][op] / reps * 1e3);
            if (op < N_TOP) top[ph] += prof_s[ph][op];
        }
        printf(" %9.2f %5.1f%%\n", tot / reps * 1e3, 100 * tot / all);
    }
    double other = 0;
    printf("# %-22s", "other (outside ops)");
    for (int ph = 0; ph < N_PH; ph++) {
        printf(" %9.2f", (phase_s[ph] - top[ph]) / reps * 1e3);
        other += phase_s[ph] - top[ph];
    }
    printf(" %9.2f %5.1f%%\n", other / reps * 1e3, 100 * other / all);
    printf("# %-22s", "phase total");
    for (int ph = 0; ph < N_PH; ph++) printf(" %9.2f", phase_s[ph] / reps * 1e3);
    printf(" %9.2f\n# %-22s", all / reps * 1e3, "gemm GFLOP/s");
    for (int ph = 0; ph < N_PH; ph++)
        printf(" %9.1f", prof_s[ph][OP_gemm] > 0 ? prof_gemm_flops[ph] / prof_s[ph][OP_gemm] * 1e-9 : 0.0);
    printf("\n");
}
#else
#define SET_PHASE(ph) ((void)0)
#endif

/* Everything one step needs; the buffers are allocated once. */
typedef struct {
    const pipeline *p;
    ge_generator *g;
    ge_vgg *v;
    int n, R;
    size_t L, img1;           /* latent size per sample, 3*R*R */
    float *lat;               /* (n, L) */
    float *target;            /* (3, R, R): target image, or r for the generator rows */
    float *img, *dimg;        /* (n, 3, R, R) */
    float *dlat;              /* (n, L) */
    float *tfeat[N_LAYERS];   /* (c, h, w) cached target features */
    float *grad[N_LAYERS];    /* (n, c, h, w) */
    size_t fsize[N_LAYERS];   /* c*h*w */
    double loss_r0;           /* restart 0's loss at the last step */
    double part[5];           /* seconds of the last step: gen fwd, vgg fwd, loss, vgg bwd, gen bwd */
} bench;

static ge_status step(bench *b, double *loss) {
    double t0 = now(), t1, t2, t3, t4;
    SET_PHASE(PH_GEN_FWD);
    ge_status s = ge_generator_forward(b->g, b->img, b->lat, b->p->sp, b->n, NULL);
    if (s != GE_OK) return s;
    t1 = now();
    double total = 0;
    size_t img1 = b->img1, nimg = (size_t)b->n * img1;
    if (!b->v) {
        for (size_t i = 0; i < nimg; i++) {
            total += (double)b->img[i] * b->target[i % img1];
            b->dimg[i] = b->target[i % img1];
        }
        b->loss_r0 = total;
        t2 = t3 = t4 = now();
    } else {
        SET_PHASE(PH_VGG_FWD);
        if ((s = ge_vgg_forward(b->v, b->img, b->n, b->R, b->R, "conv3_1")) != GE_OK) return s;
        t2 = now();
        SET_PHASE(PH_LOSS);
        double r0 = 0;
        float kp = 2.f * W_PIXEL / (float)img1;
        for (int k = 0; k < b->n; k++) {
            double acc = 0;
            for (size_t i = 0; i < img1; i++) {
                float d = b->img[k * img1 + i] - b->target[i];
                acc += (double)d * d;
                b->dimg[k * img1 + i] = kp * d; /* overwritten; the VGG backward adds to it */
            }
            acc *= W_PIXEL / (double)img1;
            total += acc;
            if (k == 0) r0 += acc;
        }
        for (int l = 0; l < N_LAYERS; l++) {
            int c, h, w;
            const float *f = ge_vgg_feature(b->v, layer_names[l], &c, &h, &w);
            if (!f) return GE_ERR_ARG;
            size_t m = b->fsize[l];
            float kf = 2.f * W_PERCEPTUAL / (float)m;
            for (int k = 0; k < b->n; k++) {
                double acc = 0;
                for (size_t i = 0; i < m; i++) {
                    float d = f[k * m + i] - b->tfeat[l][i];
                    acc += (double)d * d;
                    b->grad[l][k * m + i] = kf * d;
                }
                acc *= W_PERCEPTUAL / (double)m;
                total += acc;
                if (k == 0) r0 += acc;
            }
        }
        b->loss_r0 = r0;
        t3 = now();
        SET_PHASE(PH_VGG_BWD);
        if ((s = ge_vgg_backward(b->v, b->dimg, N_LAYERS, layer_names,
                                 (const float *const *)b->grad)) != GE_OK)
            return s;
        t4 = now();
    }
    SET_PHASE(PH_GEN_BWD);
    memset(b->dlat, 0, (size_t)b->n * b->L * sizeof(float));
    if ((s = ge_generator_backward(b->g, b->dlat, b->dimg)) != GE_OK) return s;
    double t5 = now();
    b->part[0] = t1 - t0, b->part[1] = t2 - t1, b->part[2] = t3 - t2, b->part[3] = t4 - t3;
    b->part[4] = t5 - t4;
    *loss = total;
    return GE_OK;
}

static float *load_npy(const char *dir, const char *name, const char *suffix, size_t want) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s.npy", dir, name, suffix);
    float *d = NULL;
    int nd;
    int64_t shape[8];
    if (ge_npy_load(path, &d, &nd, shape) != GE_OK) return NULL;
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    if (n != want) {
        fprintf(stderr, "model_bench: %s has %zu values, expected %zu (run model_torch.py prep)\n",
                path, n, want);
        free(d);
        return NULL;
    }
    return d;
}

/* ---- engine mode: ge_edit_run's own loop, timed between progress calls */
typedef struct {
    double last;
    double t[MAX_REPS];
    int n;
} ticks;

static int on_step(void *user, int step, int steps, const double *terms, double seconds) {
    ticks *k = user;
    double t = now();
    if (k->n < MAX_REPS) k->t[k->n++] = t - k->last;
    k->last = t;
    return 0;
}

static int run_engine(bench *b, int lbfgs, int steps) {
    ge_edit_params ep;
    ge_edit_params_init(&ep, b->g);
    ep.space = b->p->sp;
    ep.steps = steps;
    ep.init = GE_INIT_GIVEN;
    ep.init_latent = b->lat; /* restart 0's latent, used by every restart */
    ep.restarts = b->n;
    ep.optimizer = lbfgs ? GE_OPT_LBFGS : GE_OPT_ADAM;
    if (lbfgs) ep.lr = 1.f;
    ticks *k = calloc(1, sizeof *k);
    if (!k) return 1;
    ep.progress = on_step;
    ep.user = k;
    ge_edit_result res;
    k->last = now();
    if (ge_edit_run(b->g, b->v, b->target, NULL, &ep, &res) != GE_OK) {
        free(k);
        return die("ge_edit_run");
    }
    /* the first interval also holds the objective's set-up and the start evaluation */
    int n = k->n - 1;
    double *t = k->t + 1;
    if (lbfgs) {
        /* evals counts every evaluation, the one at the start included */
        double sum = 0, per_step = res.steps_done > 0 ? (res.evals - 1.0) / res.steps_done : 0;
        for (int i = 0; i < n; i++) sum += t[i];
        double mean = n > 0 ? sum / n : 0;
        printf("ganedit-lbfgs %s %.2f %.2f %.2f %d %.0f\n", b->p->name, mean * 1e3,
               per_step > 0 ? mean / per_step * 1e3 : 0.0, per_step, res.steps_done, peak_rss_mib());
    } else {
        printf("# engine %s adam_step_ms %.2f loss0_engine %.8g loss0_restart0 %.8g\n", b->p->name,
               n > 0 ? median(t, n) * 1e3 : 0.0, res.history[0], b->loss_r0);
    }
    ge_edit_result_free(&res);
    free(k);
    return 0;
}

/* Times steps at the same latent: warm-up, then the repeats; prints the lines. */
static int run_steps(bench *b, int max_reps, double min_s) {
    /* warm-up: one step, a second if it was quick; at least 5 timed steps, 3 if slow */
    double loss0 = 0, loss = 0, tw = now();
    if (step(b, &loss0) != GE_OK) return die("step");
    tw = now() - tw;
    if (tw < 2 && step(b, &loss) != GE_OK) return die("step");
    int min_reps = tw < 2 ? 5 : 3;
    static double t[MAX_REPS], parts[5][MAX_REPS];
    double part_sum[5] = {0};
#ifdef GE_BENCH_PROFILE
    memset(prof_s, 0, sizeof prof_s);
    memset(prof_calls, 0, sizeof prof_calls);
    memset(prof_gemm_flops, 0, sizeof prof_gemm_flops);
#endif
    int n = 0;
    double start = now();
    while (n < max_reps && (n < min_reps || now() - start < min_s)) {
        double t0 = now();
        if (step(b, &loss) != GE_OK) return die("step");
        t[n] = now() - t0;
        for (int i = 0; i < 5; i++) parts[i][n] = b->part[i], part_sum[i] += b->part[i];
        n++;
    }
#ifdef GE_BENCH_PROFILE
    prof_print(b->p->name, n, part_sum);
#else
    (void)part_sum;
#endif
    double peak = peak_rss_mib();
    double med = median(t, n);
    printf("ganedit %s %.2f %.2f %d 0 %.0f %.8g\n", b->p->name, med * 1e3, t[0] * 1e3, n, peak, loss0);
    printf("# parts %s", b->p->name);
    for (int i = 0; i < 5; i++) printf(" %.2f", median(parts[i], n) * 1e3);
    printf("\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: model_bench DATA_DIR PIPELINE [threads] [min_seconds] [max_reps] "
                        "[engine|lbfgs]\n");
        return 2;
    }
    const char *data = argv[1];
    const pipeline *p = NULL;
    for (size_t i = 0; i < sizeof pipelines / sizeof pipelines[0]; i++)
        if (!strcmp(argv[2], pipelines[i].name)) p = &pipelines[i];
    if (!p) {
        fprintf(stderr, "model_bench: unknown pipeline %s\n", argv[2]);
        return 2;
    }
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    double min_s = argc > 4 ? atof(argv[4]) : 1.0;
    int max_reps = argc > 5 ? atoi(argv[5]) : 50;
    const char *mode = argc > 6 ? argv[6] : "";
    if (max_reps < 1 || max_reps > MAX_REPS) max_reps = MAX_REPS;
    ge_set_num_threads(threads);
    if (getenv("GE_BENCH_CLOCK") && !strcmp(getenv("GE_BENCH_CLOCK"), "cpu"))
        clock_id = CLOCK_PROCESS_CPUTIME_ID;

    const char *shared = getenv("GANEDIT_SHARED") ? getenv("GANEDIT_SHARED") : "../shared";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", p->in_data ? data : shared, p->gen);
    bench b;
    memset(&b, 0, sizeof b);
    b.p = p;
    b.n = p->n;
    if (ge_generator_load(&b.g, path, NULL) != GE_OK) return die(path);
    b.R = ge_generator_info(b.g)->resolution;
    b.L = ge_generator_latent_size(b.g, p->sp);
    b.img1 = (size_t)3 * b.R * b.R;
    size_t nimg = (size_t)b.n * b.img1;
    b.lat = load_npy(data, p->name, "latent", (size_t)b.n * b.L);
    b.target = load_npy(data, p->name, "target", b.img1);
    b.img = malloc(nimg * sizeof(float));
    b.dimg = malloc(nimg * sizeof(float));
    b.dlat = malloc((size_t)b.n * b.L * sizeof(float));
    if (!b.lat || !b.target || !b.img || !b.dimg || !b.dlat) return die("inputs");
    if (p->vgg) {
        snprintf(path, sizeof path, "%s/weights/vgg19_normalised_conv3_1.safetensors", shared);
        if (ge_vgg_load(&b.v, path) != GE_OK) return die(path);
        if (ge_vgg_forward(b.v, b.target, 1, b.R, b.R, "conv3_1") != GE_OK) return die("vgg");
        for (int l = 0; l < N_LAYERS; l++) {
            int c, h, w;
            const float *f = ge_vgg_feature(b.v, layer_names[l], &c, &h, &w);
            if (!f) return die(layer_names[l]);
            b.fsize[l] = (size_t)c * h * w;
            b.tfeat[l] = malloc(b.fsize[l] * sizeof(float));
            b.grad[l] = malloc(b.fsize[l] * b.n * sizeof(float));
            if (!b.tfeat[l] || !b.grad[l]) return die("features");
            memcpy(b.tfeat[l], f, b.fsize[l] * sizeof(float));
        }
    }

    int rc = !strcmp(mode, "lbfgs") ? run_engine(&b, 1, max_reps) : run_steps(&b, max_reps, min_s);
    if (rc == 0 && !strcmp(mode, "engine") && p->vgg) rc = run_engine(&b, 0, 3);

    ge_generator_free(b.g);
    ge_vgg_free(b.v);
    free(b.lat), free(b.target), free(b.img), free(b.dimg), free(b.dlat);
    for (int l = 0; l < N_LAYERS; l++) free(b.tfeat[l]), free(b.grad[l]);
    return rc;
}
