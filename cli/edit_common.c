/* edit_common.c - what project, draw, edit and interpolate share: their
 * options, loading and checking the model, VGG, images and latents, the
 * progress line, Ctrl-C handling, and the output folder (result.png,
 * target.png, latent.npy, loss.csv, snapshots, report.html). Every file is
 * written under a temporary name and renamed, so a failure leaves no
 * half-written output. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void edit_opts_defaults(edit_opts *o) {
    memset(o, 0, sizeof *o);
    o->optimizer = "adam";
    o->layers = "conv1_1,conv1_2,conv2_1,conv2_2,conv3_1";
    o->init = "mean";
    o->noise = "const";
    o->steps = 1000;
    o->init_samples = 10;
    o->restarts = 1;
    o->lr = 0.003f;
    o->pixel = 0.3f;
    o->perceptual = 0.7f;
}

int edit_opts_table(edit_opts *o, cli_opt *t, int n) {
    const cli_opt add[] = {
        {"model", OPT_STR, &o->model, "MODEL", "generator weights (default: the shipped model)"},
        {"vgg", OPT_STR, &o->vgg, "VGG",
         "VGG-19 weights (default: $GANEDIT_VGG, torch cache, ../shared/weights)"},
        {"latent", OPT_STR, &o->latent, "z|w|w+",
         "latent space (default: w+ for StyleGAN2, z for DCGAN)"},
        {"optimizer", OPT_STR, &o->optimizer, "adam|lbfgs", "optimiser (default adam)"},
        {"steps", OPT_INT, &o->steps, "N", "optimisation steps (default 1000)"},
        {"lr", OPT_FLOAT, &o->lr, "LR", "Adam learning rate (default 0.003)"},
        {"pixel", OPT_FLOAT, &o->pixel, "W", "pixel loss weight"},
        {"l1", OPT_FLAG, &o->l1, NULL, "L1 pixel loss instead of L2"},
        {"perceptual", OPT_FLOAT, &o->perceptual, "W", "VGG perceptual loss weight"},
        {"layers", OPT_STR, &o->layers, "L,..",
         "perceptual layers (default conv1_1,conv1_2,conv2_1,conv2_2,conv3_1)"},
        {"style", OPT_FLOAT, &o->style, "W", "Gram style loss weight (default 0)"},
        {"style-layers", OPT_STR, &o->style_layers, "L,..", "style layers (default: --layers)"},
        {"reg", OPT_FLOAT, &o->reg, "W", "L2 regulariser on the latent's change"},
        {"init", OPT_STR, &o->init, "mean|random|F.npy", "start latent (default mean)"},
        {"init-samples", OPT_INT, &o->init_samples, "N",
         "samples averaged by --init mean (default 10)"},
        {"restarts", OPT_INT, &o->restarts, "K",
         "run K starts as one batch, keep the best (default 1)"},
        {"seed", OPT_INT, &o->seed, "S", "random seed (default 0)"},
        {"noise", OPT_STR, &o->noise, "MODE",
         "StyleGAN2 noise: const, random, none (default const)"},
        {"save-every", OPT_INT, &o->save_every, "N", "snapshot the image every N steps"},
        {"quiet", OPT_FLAG, &o->quiet, NULL, "no progress line"},
        {"out", OPT_STR, &o->out, "DIR", "output folder (required)"},
    };
    for (size_t i = 0; i < sizeof add / sizeof add[0]; i++)
        t[n++] = add[i];
    return n;
}

/* The number of the signal that asked us to stop (0: none). A second signal
 * of the same kind is not caught (SA_RESETHAND): it ends the program at once,
 * for a user who does not want to wait for the outputs. SA_RESTART matters:
 * without it a SIGINT landing inside a oneDNN call made an interrupted system
 * call fail, and about one run in eight then died of heap corruption
 * ("corrupted size vs. prev_size") in the next allocation. */
static volatile int stop_flag;

static void on_signal(int sig) {
    stop_flag = sig;
}

volatile int *edit_stop_flag(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* over a file size limit, a write should fail with EFBIG (reported, the
       temporary file removed), not kill the program mid-file */
    signal(SIGXFSZ, SIG_IGN);
    return &stop_flag;
}

int edit_stop_status(void) {
    return stop_flag ? 128 + stop_flag : 0;
}

const char *edit_path(const char *dir, const char *name) {
    static char buf[8][4352];
    static int slot;
    char *b = buf[slot++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

int edit_check_out(const char *cmd, const char *dir) {
    struct stat st;
    if (!*dir) {
        fprintf(stderr, "ganedit %s: --out is empty\n", cmd);
        return 2;
    }
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "ganedit %s: %s: exists and is not a folder\n", cmd, dir);
            return 1;
        }
        if (access(dir, W_OK | X_OK) != 0) {
            fprintf(stderr, "ganedit %s: %s: cannot write into this folder: %s\n", cmd, dir,
                    strerror(errno));
            return 1;
        }
        return 0;
    }
    /* it will be created: its parent must be a writable folder */
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = 0;
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == parent)
        parent[1] = 0;
    else
        *slash = 0;
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "ganedit %s: %s: cannot create the folder: %s does not exist\n", cmd, dir,
                parent);
        return 1;
    }
    if (access(parent, W_OK | X_OK) != 0) {
        fprintf(stderr, "ganedit %s: %s: cannot create the folder in %s: %s\n", cmd, dir, parent,
                strerror(errno));
        return 1;
    }
    return 0;
}

int edit_make_dir(const char *cmd, const char *dir) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "ganedit %s: %s: cannot create folder: %s\n", cmd, dir, strerror(errno));
        return 1;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "ganedit %s: %s: not a folder\n", cmd, dir);
        return 1;
    }
    return 0;
}

int edit_setup_load(edit_setup *s, const char *cmd, const edit_opts *o) {
    memset(s, 0, sizeof *s);
    s->cmd = cmd;
    static char model_buf[4096];
    const char *model = o->model;
    if (!model && !(model = cli_default_model(model_buf, sizeof model_buf)))
        return cli_usage_error(cmd, "--model is required (no shipped model found, no $GANEDIT_MODEL)");
    if (!o->out) return cli_usage_error(cmd, "--out is required");
    if (!*o->out) return cli_usage_error(cmd, "--out is empty");
    if (o->steps < 1 || o->steps > 1000000)
        return cli_usage_error(cmd, "--steps must be 1..1000000 (got %d)", o->steps);
    if (!(o->lr > 0)) return cli_usage_error(cmd, "--lr must be > 0");
    if (o->restarts < 1 || o->restarts > 256)
        return cli_usage_error(cmd, "--restarts must be 1..256");
    if (o->init_samples < 1 || o->init_samples > 100000)
        return cli_usage_error(cmd, "--init-samples must be 1..100000");
    if (o->pixel < 0 || o->perceptual < 0 || o->style < 0 || o->reg < 0)
        return cli_usage_error(cmd, "loss weights must be >= 0");
    if (o->pixel + o->perceptual + o->style == 0)
        return cli_usage_error(cmd,
                               "--pixel, --perceptual and --style are all 0: nothing to optimise");
    if (o->save_every < 0) return cli_usage_error(cmd, "--save-every must be >= 0");
    int nm = cli_noise_mode(o->noise);
    if (nm < 0) return cli_usage_error(cmd, "--noise must be const, random or none");
    int opt = !strcmp(o->optimizer, "adam")    ? GE_OPT_ADAM
              : !strcmp(o->optimizer, "lbfgs") ? GE_OPT_LBFGS
                                               : -1;
    if (opt < 0)
        return cli_usage_error(cmd, "--optimizer must be adam or lbfgs, got '%s'", o->optimizer);
    int sp = -1;
    if (o->latent && (sp = cli_latent_space(o->latent)) < 0)
        return cli_usage_error(cmd, "--latent must be z, w or w+, got '%s'", o->latent);
    ge_status st = ge_generator_load(&s->g, model, NULL);
    if (st != GE_OK) return cli_fail(cmd, st);
    const ge_gen_info *in = ge_generator_info(s->g);
    s->R = in->resolution;
    ge_edit_params_init(&s->p, s->g);
    if (sp >= 0) {
        if (sp != GE_LATENT_Z && !in->w_dim) {
            int rc =
                cli_usage_error(cmd, "%s has only a z latent space (use --latent z)", in->arch);
            edit_setup_free(s); /* after the message: in belongs to the generator */
            return rc;
        }
        s->p.space = (ge_latent_space)sp;
    }
    s->p.optimizer = (ge_optimizer)opt;
    s->p.steps = o->steps;
    s->p.lr = o->lr;
    s->p.w_pixel = o->pixel;
    s->p.w_perceptual = o->perceptual;
    s->p.w_style = o->style;
    s->p.w_reg = o->reg;
    s->p.pixel_l1 = o->l1;
    s->p.layers = o->layers;
    s->p.style_layers = o->style_layers;
    s->p.init_samples = o->init_samples;
    s->p.restarts = o->restarts;
    s->p.seed = (uint64_t)o->seed;
    s->p.call.noise = (ge_noise_mode)nm;
    s->p.call.noise_seed = (uint64_t)o->seed;
    s->p.history_every = o->save_every;
    if (!strcmp(o->init, "mean")) {
        s->p.init = GE_INIT_MEAN;
    } else if (!strcmp(o->init, "random")) {
        s->p.init = GE_INIT_RANDOM;
    } else {
        int r = edit_load_latent(cmd, o->init, s->g, s->p.space, &s->init_latent);
        if (r) {
            edit_setup_free(s);
            return r;
        }
        s->p.init = GE_INIT_GIVEN;
        s->p.init_latent = s->init_latent;
    }
    if (o->perceptual > 0 || o->style > 0 || o->need_vgg) {
        char vpath[4096];
        if ((st = ge_vgg_find(vpath, sizeof vpath, o->vgg)) != GE_OK ||
            (st = ge_vgg_load(&s->vgg, vpath)) != GE_OK) {
            edit_setup_free(s);
            return cli_fail(cmd, st);
        }
    }
    s->quiet = o->quiet;
    s->p.stop = edit_stop_flag();
    return 0;
}

void edit_setup_free(edit_setup *s) {
    ge_generator_free(s->g);
    ge_vgg_free(s->vgg);
    free(s->init_latent);
    memset(s, 0, sizeof *s);
}

/* Reads path as (c, h, w), grey replicated to RGB (c is 3 or 4 after this). */
static int read_image(const char *cmd, const char *path, float **img, int *c, int *h, int *w) {
    ge_status st = ge_image_read(path, img, c, h, w);
    if (st != GE_OK) return cli_fail(cmd, st);
    if (*c == 1) {
        size_t hw = (size_t)*h * *w;
        float *g3 = malloc(sizeof(float) * 3 * hw);
        if (!g3) {
            free(*img);
            *img = NULL;
            fprintf(stderr, "ganedit %s: %s: out of memory\n", cmd, path);
            return 1;
        }
        for (int k = 0; k < 3; k++)
            memcpy(g3 + (size_t)k * hw, *img, sizeof(float) * hw);
        free(*img);
        *img = g3;
        *c = 3;
    }
    return 0;
}

/* Centre-crops *img (c, h, w) to a square and resizes it to (c, R, R), with a
 * note on stderr for each; *img is replaced. */
static int fit_square(const char *cmd, const char *path, float **img, int c, int h, int w, int R) {
    float *sq = NULL, *res = NULL;
    ge_status st;
    int side = h;
    if (h != w) {
        fprintf(stderr, "ganedit %s: note: %s is %dx%d; using its centre %dx%d square\n", cmd, path,
                w, h, h < w ? h : w, h < w ? h : w);
        if ((st = ge_image_center_crop(&sq, *img, c, h, w, &side)) != GE_OK)
            return cli_fail(cmd, st);
        free(*img);
        *img = sq;
    }
    if (side != R) {
        fprintf(stderr, "ganedit %s: note: resizing %s from %dx%d to %dx%d\n", cmd, path, side,
                side, R, R);
        if ((st = ge_image_resize(&res, *img, c, side, side, R, R)) != GE_OK)
            return cli_fail(cmd, st);
        free(*img);
        *img = res;
    }
    return 0;
}

/* (R, R) in [0, 1] from plane k of img (c, R, R) in [-1, 1]. */
static float *plane01(const float *img, int k, int R) {
    size_t RR = (size_t)R * R;
    float *m = malloc(sizeof(float) * RR);
    if (!m) return NULL;
    for (size_t i = 0; i < RR; i++) {
        float a = (img[(size_t)k * RR + i] + 1.f) * 0.5f;
        m[i] = a < 0 ? 0 : a > 1 ? 1 : a;
    }
    return m;
}

int edit_load_image(const char *cmd, const char *path, int R, float **rgb, float **alpha) {
    float *img = NULL;
    int c, h, w, r;
    *rgb = NULL;
    if (alpha) *alpha = NULL;
    if ((r = read_image(cmd, path, &img, &c, &h, &w))) return r;
    if ((r = fit_square(cmd, path, &img, c, h, w, R))) {
        free(img);
        return r;
    }
    if (alpha && c == 4 && !(*alpha = plane01(img, 3, R))) {
        free(img);
        fprintf(stderr, "ganedit %s: %s: out of memory\n", cmd, path);
        return 1;
    }
    *rgb = img; /* the first 3 planes are RGB; a 4th plane is ignored by users */
    return 0;
}

int edit_load_scribble(const char *cmd, const char *scribble, const char *mask_path, int R,
                       float **rgb, float **mask) {
    float *img = NULL, *mimg = NULL;
    int c, h, w, mc = 0, mh = 0, mw = 0, r;
    size_t RR = (size_t)R * R;
    *rgb = NULL;
    *mask = NULL;
    if ((r = read_image(cmd, scribble, &img, &c, &h, &w))) return r;
    if (mask_path) {
        if ((r = read_image(cmd, mask_path, &mimg, &mc, &mh, &mw))) goto fail;
        if (mh != h || mw != w) {
            fprintf(stderr,
                    "ganedit %s: %s is %dx%d but the scribble %s is %dx%d; the mask must have the "
                    "scribble's size\n",
                    cmd, mask_path, mw, mh, scribble, w, h);
            r = 2;
            goto fail;
        }
    } else if (c != 4) {
        fprintf(stderr, "ganedit %s: %s has no alpha channel; give the mask with --mask MASK.png\n",
                cmd, scribble);
        r = 2;
        goto fail;
    }
    if ((r = fit_square(cmd, scribble, &img, c, h, w, R))) goto fail;
    float *m;
    if (mask_path) {
        if ((r = fit_square(cmd, mask_path, &mimg, mc, mh, mw, R))) goto fail;
        /* white (and opaque, if it has alpha) = constrained */
        m = malloc(sizeof(float) * RR);
        if (m)
            for (size_t i = 0; i < RR; i++) {
                float v = (mimg[i] + mimg[RR + i] + mimg[2 * RR + i]) / 6.f + 0.5f;
                if (mc == 4) v *= (mimg[3 * RR + i] + 1.f) * 0.5f;
                m[i] = v < 0 ? 0 : v > 1 ? 1 : v;
            }
    } else {
        m = plane01(img, 3, R);
    }
    if (!m) {
        fprintf(stderr, "ganedit %s: out of memory\n", cmd);
        r = 1;
        goto fail;
    }
    free(mimg);
    *rgb = img;
    *mask = m;
    return 0;
fail:
    free(img);
    free(mimg);
    return r;
}

int edit_check(const edit_setup *s, const ge_edit_params *p, const float *target,
               const float *mask) {
    ge_status st = ge_edit_check(s->g, s->vgg, target, mask, p ? p : &s->p);
    return st == GE_OK ? 0 : cli_fail(s->cmd, st);
}

int edit_load_latent(const char *cmd, const char *path, const ge_generator *g, ge_latent_space sp,
                     float **lat) {
    int64_t shape[8];
    int nd;
    *lat = NULL;
    ge_status st = ge_npy_load(path, lat, &nd, shape);
    if (st != GE_OK) return cli_fail(cmd, st);
    const ge_gen_info *in = ge_generator_info(g);
    size_t L = ge_generator_latent_size(g, sp), numel = 1;
    for (int i = 0; i < nd; i++)
        numel *= (size_t)shape[i];
    int ok = numel == L && nd >= 1 && (nd == 1 || shape[0] == 1);
    if (sp == GE_LATENT_WPLUS) ok = ok && nd >= 2 && shape[nd - 2] == in->num_ws;
    if (!ok) {
        free(*lat);
        *lat = NULL;
        if (sp == GE_LATENT_WPLUS)
            fprintf(stderr, "ganedit %s: %s: expected one w+ latent of shape (1, %d, %d)\n", cmd,
                    path, in->num_ws, in->w_dim);
        else
            fprintf(stderr, "ganedit %s: %s: expected one %s latent of shape (1, %zu)\n", cmd, path,
                    sp == GE_LATENT_Z ? "z" : "w", L);
        return 1;
    }
    for (size_t i = 0; i < L; i++)
        if (!isfinite((*lat)[i])) {
            free(*lat);
            *lat = NULL;
            fprintf(stderr, "ganedit %s: %s: the latent holds NaN or Inf\n", cmd, path);
            return 1;
        }
    return 0;
}

int edit_save_latent(const char *cmd, const char *path, const ge_generator *g, ge_latent_space sp,
                     const float *lat, int n) {
    const ge_gen_info *in = ge_generator_info(g);
    int64_t shape[3] = {n, 0, 0};
    int nd = 2;
    if (sp == GE_LATENT_WPLUS) {
        shape[1] = in->num_ws;
        shape[2] = in->w_dim;
        nd = 3;
    } else {
        shape[1] = (int64_t)ge_generator_latent_size(g, sp);
    }
    ge_status st = ge_npy_save(path, lat, nd, shape);
    return st == GE_OK ? 0 : cli_fail(cmd, st);
}

/* ---- progress ------------------------------------------------------------ */

typedef struct {
    const char *cmd, *what;
    int tty;
    int open; /* a terminal line is being rewritten (no newline yet) */
    double last;
} progress_state;

static void fmt_time(char *b, size_t n, double s) {
    if (s < 60)
        snprintf(b, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(b, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(b, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static int on_progress(void *user, int step, int steps, const double *t, double secs) {
    progress_state *ps = user;
    int every = steps >= 10 ? steps / 10 : 1;
    /* a terminal gets a line rewritten 5 times a second; a log gets step 1 (so
       it shows that stepping began, and the speed), every 10%, and the last */
    if (ps->tty ? (secs - ps->last < 0.2 && step != steps)
                : (step != 1 && step % every != 0 && step != steps))
        return 0;
    ps->last = secs;
    double rate = step / (secs > 1e-9 ? secs : 1e-9);
    char eta[32];
    fmt_time(eta, sizeof eta, (steps - step) / rate);
    fprintf(stderr,
            "%sganedit %s %s: step %d/%d loss %.5g (pixel %.4g perceptual %.4g style %.4g reg "
            "%.4g) %.1f steps/s ETA %s%s",
            ps->tty ? "\r" : "", ps->cmd, ps->what, step, steps, t[GE_TERM_TOTAL], t[GE_TERM_PIXEL],
            t[GE_TERM_PERCEPTUAL], t[GE_TERM_STYLE], t[GE_TERM_REG], rate, eta,
            ps->tty ? "\033[K" : "\n");
    ps->open = ps->tty;
    if (ps->tty && step == steps) {
        fputc('\n', stderr);
        ps->open = 0;
    }
    return 0;
}

int edit_run(edit_setup *s, const float *target, const float *mask, const char *what,
             ge_edit_result *r) {
    progress_state ps = {s->cmd, what, !s->quiet && isatty(2), 0, -1};
    ge_edit_params p = s->p;
    if (!s->p.progress && !s->quiet) {
        p.progress = on_progress;
        p.user = &ps;
    }
    ge_status st = ge_edit_run(s->g, s->vgg, target, mask, &p, r);
    if (ps.open) fputc('\n', stderr);
    if (st != GE_OK) return cli_fail(s->cmd, st);
    if (r->stopped)
        fprintf(stderr,
                "ganedit %s: stopped at step %d; keeping the best result so far (step %d)\n",
                s->cmd, r->steps_done, r->best_step);
    return 0;
}

/* ---- outputs ------------------------------------------------------------- */

/* Writes text atomically: "<path>.tmp.<pid>" (created exclusively, so never
 * through a link), flushed and fsync'd, then renamed over path. On failure
 * the temporary file is removed and any previous file at path is untouched. */
int edit_write_text(const char *cmd, const char *path, const char *text, size_t len) {
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            remove(tmp);
        }
        fprintf(stderr, "ganedit %s: %s: cannot write: %s\n", cmd, path, strerror(e));
        return 1;
    }
    int err = 0;
    errno = 0;
    if (fwrite(text, 1, len, f) != len || fflush(f) != 0) err = errno ? errno : EIO;
    if (!err && fsync(fileno(f)) != 0) err = errno;
    if (fclose(f) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        remove(tmp);
        fprintf(stderr, "ganedit %s: %s: cannot write: %s\n", cmd, path, strerror(err));
        return 1;
    }
    return 0;
}

void edit_html_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

/* The loss curve as inline SVG: total (log scale) against step. */
static void svg_curve(FILE *f, const double *hist, int n) {
    const int W = 480, H = 200, pad = 36;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        double v = hist[i * GE_N_TERMS];
        if (v > 0 && isfinite(v)) {
            lo = fmin(lo, log10(v));
            hi = fmax(hi, log10(v));
        }
    }
    if (!(hi >= lo)) return;
    if (hi - lo < 1e-9) hi = lo + 1;
    fprintf(f,
            "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "xmlns=\"http://www.w3.org/2000/svg\">\n",
            W, H, W, H);
    fprintf(f,
            "<rect x=\"%d\" y=\"4\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n",
            pad, W - pad - 4, H - pad - 4);
    fprintf(f, "<polyline fill=\"none\" stroke=\"#c33\" stroke-width=\"1.5\" points=\"");
    for (int i = 0; i < n; i++) {
        double v = hist[i * GE_N_TERMS];
        if (!(v > 0 && isfinite(v))) continue;
        double x = pad + (W - pad - 4) * (n > 1 ? (double)i / (n - 1) : 0);
        double y = 4 + (H - pad - 4) * (1 - (log10(v) - lo) / (hi - lo));
        fprintf(f, "%.1f,%.1f ", x, y);
    }
    fprintf(f, "\"/>\n<text x=\"2\" y=\"14\" font-size=\"10\">%.3g</text>\n", pow(10, hi));
    fprintf(f, "<text x=\"2\" y=\"%d\" font-size=\"10\">%.3g</text>\n", H - pad, pow(10, lo));
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">step 0</text>\n", pad, H - pad + 16);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">%d</text>\n", W - 4,
            H - pad + 16, n - 1);
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">total loss (log "
            "scale)</text>\n</svg>\n",
            W / 2, H - 6);
}

int edit_write_outputs(const edit_setup *s, const char *dir, const float *target, const float *mask,
                       const ge_edit_result *r, int argc, char **argv, const char *title) {
    const char *cmd = s->cmd;
    int R = s->R;
    size_t RR = (size_t)R * R;
    ge_status st;
    if (edit_make_dir(cmd, dir)) return 1;
    if ((st = ge_image_write_png(edit_path(dir, "result.png"), r->image, 1, 3, R, R, 1)) != GE_OK)
        return cli_fail(cmd, st);
    if (mask) {
        float *rgba = malloc(sizeof(float) * 4 * RR);
        if (!rgba) return 1;
        memcpy(rgba, target, sizeof(float) * 3 * RR);
        for (size_t i = 0; i < RR; i++)
            rgba[3 * RR + i] = mask[i] * 2.f - 1.f;
        st = ge_image_write_png(edit_path(dir, "target.png"), rgba, 1, 4, R, R, 1);
        free(rgba);
    } else {
        st = ge_image_write_png(edit_path(dir, "target.png"), target, 1, 3, R, R, 1);
    }
    if (st != GE_OK) return cli_fail(cmd, st);
    if ((st = ge_image_write_png(edit_path(dir, "start.png"), r->start_image, 1, 3, R, R, 1)) !=
        GE_OK)
        return cli_fail(cmd, st);
    if (edit_save_latent(cmd, edit_path(dir, "latent.npy"), s->g, s->p.space, r->latent, 1))
        return 1;
    /* loss.csv */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return 1;
    fprintf(f, "step,total,pixel,perceptual,style,reg\n");
    for (int i = 0; i <= r->steps_done; i++) {
        const double *t = r->history + (size_t)i * GE_N_TERMS;
        fprintf(f, "%d,%.8g,%.8g,%.8g,%.8g,%.8g\n", i, t[0], t[1], t[2], t[3], t[4]);
    }
    fclose(f);
    int rc = edit_write_text(cmd, edit_path(dir, "loss.csv"), buf, len);
    free(buf);
    if (rc) return rc;
    for (int i = 0; i < r->n_snapshots; i++) {
        char name[64];
        snprintf(name, sizeof name, "step_%06d.png", r->snapshot_steps[i]);
        if ((st = ge_image_write_png(edit_path(dir, name), r->snapshots + (size_t)i * 3 * RR, 1, 3,
                                     R, R, 1)) != GE_OK)
            return cli_fail(cmd, st);
    }
    /* report.html */
    f = open_memstream(&buf, &len);
    if (!f) return 1;
    const double *last = r->history + (size_t)r->steps_done * GE_N_TERMS;
    fprintf(
        f,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>ganedit %s</title>\n"
        "<style>body{font-family:sans-serif;margin:2em}img{image-rendering:pixelated;width:192px;"
        "border:1px solid #ccc;background:repeating-conic-gradient(#eee 0 25%%,#fff 0 50%%) 0 "
        "0/16px 16px}"
        "figure{display:inline-block;margin:0 1em 1em 0}td,th{padding:2px 10px;text-align:left}"
        "code{background:#f4f4f4;padding:2px 4px}</style></head><body>\n",
        cmd);
    fprintf(f, "<h1>ganedit %s</h1>\n<p>", cmd);
    edit_html_escape(f, title);
    fprintf(f, "</p>\n<figure><img src=\"target.png\"><figcaption>target%s</figcaption></figure>\n",
            mask ? " (alpha = mask)" : "");
    fprintf(f, "<figure><img src=\"start.png\"><figcaption>start (step 0)</figcaption></figure>\n");
    fprintf(f,
            "<figure><img src=\"result.png\"><figcaption>result (step %d, the lowest "
            "loss)</figcaption></figure>\n",
            r->best_step);
    if (r->n_snapshots) {
        fprintf(f, "<h2>Snapshots</h2>\n");
        for (int i = 0; i < r->n_snapshots; i++)
            fprintf(f,
                    "<figure><img src=\"step_%06d.png\" "
                    "style=\"width:96px\"><figcaption>%d</figcaption></figure>\n",
                    r->snapshot_steps[i], r->snapshot_steps[i]);
    }
    fprintf(f, "<h2>Loss</h2>\n");
    svg_curve(f, r->history, r->steps_done + 1);
    fprintf(f,
            "<table><tr><th>term</th><th>start</th><th>result (step %d)</th><th>last step "
            "(%d)</th></tr>\n",
            r->best_step, r->steps_done);
    const char *names[GE_N_TERMS] = {"total", "pixel", "perceptual", "style", "reg"};
    const double *best = r->history + (size_t)r->best_step * GE_N_TERMS;
    for (int k = 0; k < GE_N_TERMS; k++)
        fprintf(f, "<tr><td>%s</td><td>%.6g</td><td>%.6g</td><td>%.6g</td></tr>\n", names[k],
                r->history[k], best[k], last[k]);
    fprintf(f, "</table>\n<h2>Run</h2>\n<p><code>ganedit %s", cmd);
    for (int i = 0; i < argc; i++) {
        fputc(' ', f);
        edit_html_escape(f, argv[i]);
    }
    const ge_gen_info *in = ge_generator_info(s->g);
    static const char *spaces[] = {"z", "w", "w+"};
    fprintf(f, "</code></p>\n<table>\n<tr><td>model</td><td>%s, %dx%d</td></tr>\n", in->arch, R, R);
    fprintf(f, "<tr><td>latent space</td><td>%s</td></tr>\n", spaces[s->p.space]);
    fprintf(f, "<tr><td>optimiser</td><td>%s, lr %g</td></tr>\n",
            s->p.optimizer == GE_OPT_ADAM ? "Adam" : "L-BFGS (strong Wolfe)", s->p.lr);
    fprintf(f, "<tr><td>weights</td><td>pixel %g%s, perceptual %g, style %g, reg %g</td></tr>\n",
            s->p.w_pixel, s->p.pixel_l1 ? " (L1)" : "", s->p.w_perceptual, s->p.w_style,
            s->p.w_reg);
    fprintf(f, "<tr><td>layers</td><td>");
    edit_html_escape(f, s->p.layers);
    fprintf(f, "</td></tr>\n<tr><td>steps</td><td>%d of %d%s</td></tr>\n", r->steps_done,
            s->p.steps, r->stopped ? " (stopped early)" : "");
    fprintf(f, "<tr><td>restarts</td><td>%d (best: %d)</td></tr>\n", s->p.restarts,
            r->best_restart);
    fprintf(f, "<tr><td>time</td><td>%.1f s, %d evaluations</td></tr>\n</table>\n", r->seconds,
            r->evals);
    fprintf(
        f,
        "<p>Files: result.png, target.png, start.png, latent.npy, loss.csv.</p>\n</body></html>\n");
    fclose(f);
    rc = edit_write_text(cmd, edit_path(dir, "report.html"), buf, len);
    free(buf);
    return rc;
}
