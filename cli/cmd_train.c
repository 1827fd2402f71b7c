/* cmd_train.c - `ganedit train`: trains a generator on a folder of images
 * (src/train), or with --fd-of measures the FD-VGG of a trained generator
 * against a folder and the floor of the folder's two halves.
 *
 * Progress goes to stderr as one line every --log-every seconds (a log file
 * stays readable); Ctrl-C (SIGINT) or SIGTERM stops after the current step
 * and saves a checkpoint that --resume continues exactly. */
#include "cli.h"
#include "train/train.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int stop_flag;

static void on_signal(int sig) {
    stop_flag = 1;
    signal(sig, SIG_DFL); /* a second Ctrl-C ends the program at once */
}

typedef struct {
    float log_every;
    double last;
    long steps_total;
} progress_ctx;

static void fmt_duration(char *b, size_t cap, double s) {
    if (s < 0 || s > 1e8) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(b, cap, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(b, cap, "%ldm%02lds", t / 60, t % 60);
}

static int on_progress(void *user, const ge_train_status *st) {
    progress_ctx *c = user;
    if (st->seconds - c->last < c->log_every && st->fd < 0) return 0;
    c->last = st->seconds;
    char el[32], eta[32];
    fmt_duration(el, sizeof el, st->seconds);
    fmt_duration(eta, sizeof eta, st->eta_s);
    fprintf(stderr,
            "step %6ld  kimg %8.3f  D real %.4f fake %.4f  G %.4f  logits %+.2f/%+.2f  "
            "%.1f img/s  elapsed %s  ETA %s",
            st->step, st->images / 1000.0, st->terms[GE_TT_D_REAL], st->terms[GE_TT_D_FAKE],
            st->terms[GE_TT_G], st->terms[GE_TT_LOGIT_REAL], st->terms[GE_TT_LOGIT_FAKE],
            st->images_per_s, el, eta);
    if (st->terms[GE_TT_R1] > 0) fprintf(stderr, "  R1 %.3g", st->terms[GE_TT_R1]);
    if (st->fd >= 0) fprintf(stderr, "  FD-VGG %.4g", st->fd);
    fprintf(stderr, "\n");
    return 0;
}

static int fd_only(const char *model, const char *data, const char *vgg_path, int n, int seed,
                   int max_images) {
    ge_generator *g = NULL;
    ge_vgg *v = NULL;
    ge_dataset ds;
    memset(&ds, 0, sizeof ds);
    char path[4096];
    ge_status s = ge_generator_load(&g, model, NULL);
    if (s == GE_OK) s = ge_vgg_find(path, sizeof path, vgg_path);
    if (s == GE_OK) s = ge_vgg_load(&v, path);
    if (s == GE_OK)
        s = ge_dataset_load(&ds, data, ge_generator_info(g)->resolution, max_images);
    double fd = 0, floor_ = 0, matched = -1;
    if (s == GE_OK)
        s = ge_train_fd_of(&fd, &floor_, &matched, g, v, ds.img, ds.n, n, (uint64_t)seed);
    int rc = 0;
    int h = ds.n - ds.n / 2;
    if (s != GE_OK) {
        rc = cli_fail("train", s);
    } else {
        printf("FD-VGG (VGG-19 relu3_1, spatially averaged; not FID): %.4f  (%d generated vs %d "
               "real)\nfloor, two halves of the real images: %.4f  (%d vs %d)\n",
               fd, n, ds.n, floor_, ds.n / 2, h);
        if (matched >= 0)
            printf("matched to the floor: %.4f  (%d generated vs the second half, %d)\n", matched,
                   h, h);
    }
    ge_dataset_free(&ds);
    ge_vgg_free(v);
    ge_generator_free(g);
    return rc;
}

int cmd_train(int argc, char **argv) {
    ge_train_params p;
    ge_train_params_init(&p);
    const char *fd_of = NULL;
    int seed = 0, no_mirror = 0;
    float kimg = (float)p.kimg, lr = 0.f;
    progress_ctx pc = {10.f, -1e9, 0};
    const cli_opt opts[] = {
        {"arch", OPT_STR, &p.arch, "A", "dcgan-vanilla (default), dcgan-deluxe or stylegan2"},
        {"data", OPT_STR, &p.data, "DIR", "folder of training images (.png, .jpg)"},
        {"resolution", OPT_INT, &p.resolution, "R", "image size, a power of two (default 64)"},
        {"out", OPT_STR, &p.out, "DIR", "output folder: checkpoint, generator, samples, csv"},
        {"kimg", OPT_FLOAT, &kimg, "K", "train until K thousand real images were shown (default 10)"},
        {"batch", OPT_INT, &p.batch, "B", "batch size (default 16)"},
        {"lr", OPT_FLOAT, &lr, "LR",
         "learning rate of G and D (default 0.0002 DCGAN, 0.0025 StyleGAN2)"},
        {"lr-g", OPT_FLOAT, &p.lr_g, "LR", "generator learning rate"},
        {"lr-d", OPT_FLOAT, &p.lr_d, "LR", "discriminator learning rate"},
        {"beta1", OPT_FLOAT, &p.beta1, "B1", "Adam beta1 (default 0.5 DCGAN, 0 StyleGAN2)"},
        {"beta2", OPT_FLOAT, &p.beta2, "B2", "Adam beta2 (default 0.999 DCGAN, 0.99 StyleGAN2)"},
        {"z-dim", OPT_INT, &p.z_dim, "N", "latent size (default 100 DCGAN, 64 StyleGAN2)"},
        {"conv-dim", OPT_INT, &p.conv_dim, "N", "DCGAN: base width of G and D (default 32)"},
        {"w-dim", OPT_INT, &p.w_dim, "N", "StyleGAN2: size of w (default 64)"},
        {"map-layers", OPT_INT, &p.map_layers, "N", "StyleGAN2: mapping layers (default 2)"},
        {"channel-base", OPT_INT, &p.channel_base, "N",
         "StyleGAN2: channels min(N / resolution, --channel-max) per block (default 4096)"},
        {"channel-max", OPT_INT, &p.channel_max, "N", "StyleGAN2: widest block (default 128)"},
        {"r1-gamma", OPT_FLOAT, &p.r1_gamma, "G",
         "StyleGAN2: R1 weight (default 0.0002 * R^2 / batch)"},
        {"r1-every", OPT_INT, &p.r1_every, "N", "StyleGAN2: lazy R1 interval (default 16, 0 off)"},
        {"ema-kimg", OPT_FLOAT, &p.ema_kimg, "K", "G_ema half-life in kimg (default batch*10/32)"},
        {"augment", OPT_STR, &p.augment, "LIST",
         "DiffAugment: color,translation,cutout (default all) or none"},
        {"no-mirror", OPT_FLAG, &no_mirror, NULL, "no random x-flips of the data"},
        {"seed", OPT_INT, &seed, "S", "random seed (default 0)"},
        {"sample-every", OPT_INT, &p.sample_every, "N", "steps between sample grids (default 500)"},
        {"ckpt-every", OPT_INT, &p.ckpt_every, "N", "steps between checkpoints (default 500)"},
        {"fd-every", OPT_INT, &p.fd_every, "N", "steps between FD-VGG evaluations (default 0: none)"},
        {"fd-n", OPT_INT, &p.fd_n, "N", "generated images per FD-VGG (default 1000)"},
        {"vgg", OPT_STR, &p.vgg, "FILE", "VGG-19 weights for FD-VGG (default: found as usual)"},
        {"resume", OPT_STR, &p.resume, "CKPT", "continue from a checkpoint (its settings win)"},
        {"init-from", OPT_STR, &p.init_from, "CKPT",
         "new run starting from CKPT's G, G_ema and D where tensor names match, e.g. a 64x64 "
         "StyleGAN2 grown to 128x128 (new blocks initialised as usual; fresh Adam and counters)"},
        {"max-images", OPT_INT, &p.max_images, "N", "use at most N images of the folder"},
        {"log-every", OPT_FLOAT, &pc.log_every, "SEC", "seconds between progress lines (default 10)"},
        {"fd-of", OPT_STR, &fd_of, "MODEL",
         "only measure FD-VGG of MODEL against --data (and the halves' floor)"},
    };
    const cli_command cmd = {"train",
                             "Train a GAN generator (DCGAN or StyleGAN2) on a folder of images "
                             "(non-saturating logistic loss, Adam, DiffAugment, G_ema, lazy R1 "
                             "for StyleGAN2).",
                             "", opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    const char *pos[1];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;
    if (!p.data) return cli_usage_error("train", "--data is required");
    if (fd_of) return fd_only(fd_of, p.data, p.vgg, p.fd_n, seed, p.max_images);
    if (!p.out) return cli_usage_error("train", "--out is required");
    if (!(kimg > 0) || kimg > 1e6) return cli_usage_error("train", "--kimg must be in (0, 1e6]");
    if (p.batch < 1 || p.batch > 1024) return cli_usage_error("train", "--batch must be 1..1024");
    if (lr > 0) p.lr_g = p.lr_d = lr;
    if (strcmp(p.arch, "dcgan-vanilla") && strcmp(p.arch, "dcgan-deluxe") &&
        strcmp(p.arch, "stylegan2"))
        return cli_usage_error("train", "--arch must be dcgan-vanilla, dcgan-deluxe or stylegan2");
    if (p.resume && p.init_from)
        return cli_usage_error("train", "--resume and --init-from exclude each other");
    if (p.fd_n < 2 || p.fd_n > 100000) return cli_usage_error("train", "--fd-n must be 2..100000");
    if (p.sample_every < 0 || p.ckpt_every < 0 || p.fd_every < 0)
        return cli_usage_error("train", "intervals must be >= 0");
    p.kimg = kimg;
    p.seed = (uint64_t)(unsigned)seed;
    p.mirror = !no_mirror;
    p.progress = on_progress;
    p.user = &pc;
    p.stop = &stop_flag;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    ge_train_result res;
    ge_status s = ge_train_run(&p, &res);
    if (s != GE_OK) {
        ge_train_result_free(&res);
        return cli_fail("train", s);
    }
    if (p.init_from)
        fprintf(stderr, "ganedit train: started from %s: %d tensors taken over, %d new\n",
                p.init_from, res.init_copied, res.init_fresh);
    char el[32];
    fmt_duration(el, sizeof el, res.seconds);
    fprintf(stderr, "ganedit train: %s after %ld steps this run (%.3f kimg in all), %s; wrote %s/\n",
            res.stopped ? "stopped (checkpoint saved)" : "done", res.steps_done,
            res.images / 1000.0, el, p.out);
    ge_train_result_free(&res);
    return 0;
}
