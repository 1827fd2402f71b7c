/* train.h - training GAN generators on a folder of images: the dataset, flat
 * parameter sets, DiffAugment, the FD-VGG quality number, and the training
 * loop with checkpoints (the files in src/train). Used by `ganedit train` and the
 * tests; internal to libganedit (the editing API in ganedit.h never trains).
 *
 * Parameter sets are ge_tensors whose tensors lie back to back in one owned
 * block ("flat"), in a fixed order, so Adam, the EMA and the checkpoint work
 * on one float vector while models find each tensor by its PyTorch name. */
#ifndef GE_TRAIN_H
#define GE_TRAIN_H

#include "models/models.h"
#include "optim/optim.h"

/* ---- flat parameter sets (nets.c) --------------------------------------- */

/* A new set with the given names and shapes (ndim <= 4), zero-filled, every
 * tensor inside one block. */
ge_status ge_flat_new(ge_tensors **out, int n, const char *const *names, const int *ndims,
                      const int64_t (*shapes)[4]);
/* A zero-filled flat set with the names and shapes of `like`. */
ge_status ge_flat_like(ge_tensors **out, const ge_tensors *like);
/* Copies a set (any layout, e.g. a memory-mapped file) into a new flat set;
 * with prefix, only the tensors whose names start with it, prefix removed. */
ge_status ge_flat_copy(ge_tensors **out, const ge_tensors *src, const char *prefix);
/* The block of a flat set and its length in floats (NULL, 0 if empty). */
float *ge_flat_data(const ge_tensors *t, size_t *total);

/* Weights of the course DCGAN generator (deluxe: upsample + conv layout) for
 * z_dim, base width conv_dim and output resolution R (a power of two >= 8),
 * with PyTorch's default initialisation drawn from rng. Layer l of L =
 * log2(R) - 1 has conv_dim * 2^(L-1-l) channels, the last 3. */
ge_status ge_train_dcgan_g_init(ge_tensors **out, int deluxe, int z_dim, int conv_dim, int res,
                                ge_rng *rng);
/* The course DCGAN discriminator (models.h): widths conv_dim * 2^(m-1). */
ge_status ge_train_dcgan_d_init(ge_tensors **out, int conv_dim, int res, ge_rng *rng);
/* Weights of a StyleGAN2-ADA generator ('skip' synthesis, no conditioning)
 * with StyleGAN2-ADA's initialisation (sg2_init.c): mapping of map_layers
 * FCs z_dim -> w_dim, synthesis 4..res with min(channel_base / r,
 * channel_max) channels at resolution r. */
ge_status ge_train_sg2_g_init(ge_tensors **out, int z_dim, int w_dim, int map_layers, int res,
                              int channel_base, int channel_max, ge_rng *rng);
/* A generator running on weights w (taken over; flat weights may then be
 * changed in place between calls). */
ge_status ge_train_generator_new(ge_generator **out, ge_tensors *w, const char *what);
/* The generator's weight-gradient backward (see ge_gen_vtable). */
ge_status ge_train_generator_backward(ge_generator *g, float *dlatent, const float *dimg,
                                      const ge_tensors *grads);

/* ---- image folder (dataset.c) -------------------------------------------- */

typedef struct {
    int n, res;
    float *img;     /* (n, 3, res, res) in [-1, 1] */
    char **names;   /* (n) file names, sorted */
} ge_dataset;

/* Every .png/.jpg/.jpeg in dir (not recursive), sorted by name, read as RGB
 * (alpha dropped, gray replicated), centre-cropped to a square and resized to
 * res x res; at most max_images (0: all). Fails if none. */
ge_status ge_dataset_load(ge_dataset *d, const char *dir, int res, int max_images);
void ge_dataset_free(ge_dataset *d);

/* ---- DiffAugment (augment.c) ---------------------------------------------
 * Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
 * Training", as its DiffAugment_pytorch.py: per sample, 'color' = brightness
 * + U(-0.5, 0.5), saturation x U(0, 2) around the per-pixel channel mean,
 * contrast x U(0.5, 1.5) around the image mean; 'translation' = an integer
 * shift in [-R/8, R/8] per axis with zero fill; 'cutout' = a zeroed square
 * of side R/2 centred anywhere (clipped at the border). Every transform is
 * linear in the image for fixed random draws, so the backward is the
 * transpose and needs no saved activations. */
enum { GE_AUG_COLOR = 1, GE_AUG_TRANSLATION = 2, GE_AUG_CUTOUT = 4 };

typedef struct {
    int policy, n, c, h, w;
    float *brightness, *saturation, *contrast; /* (n) */
    int *tx, *ty;                              /* (n) shifts along h and w */
    int *cx, *cy;                              /* (n) cutout centres (offsets) */
    float *tmp;                                /* (c, h, w) scratch */
} ge_diffaug;

/* Parses "color,translation,cutout" (any subset, "" or "none" for none). */
ge_status ge_diffaug_policy(int *policy, const char *s);
ge_status ge_diffaug_init(ge_diffaug *a, int policy, int n, int c, int h, int w);
void ge_diffaug_free(ge_diffaug *a);
/* Draws the random parameters of n samples (the official code's order). */
void ge_diffaug_draw(ge_diffaug *a, ge_rng *rng);
/* x (n, c, h, w) augmented in place. */
void ge_diffaug_forward(ge_diffaug *a, float *x);
/* g (n, c, h, w): the gradient at the output, turned in place into the
 * gradient at the input. */
void ge_diffaug_backward(ge_diffaug *a, float *g);

/* ---- R1 (step.c) ------------------------------------------------------------
 * r1 = mean_i |grad_{x_i} sum_j D(aug(x_j))|^2 over x (n, 3, R, R), the
 * gradient taken at the unaugmented x (aug may be NULL; its draws are used as
 * they are). Adds d(weight * r1)/dtheta into grads (NULL: only r1), as the
 * central difference of D's weight gradient along v = that input gradient
 * (step.c says why that is the second derivative). Scratch: v and xa (n * per
 * floats each), logits (2n). */
ge_status ge_r1_backward(ge_disc *D, ge_diffaug *aug, const float *x, int n, size_t per,
                         double weight, const ge_tensors *grads, float *v, float *xa,
                         float *logits, double *r1);

/* ---- FD-VGG (fdvgg.c) ----------------------------------------------------
 * Frechet distance between Gaussians fitted to VGG-19 relu3_1 features,
 * averaged over the image plane, of two image sets. NOT the FID (that uses
 * Inception-v3 pool3 features); numbers are comparable only with each other. */
#define GE_FD_LAYER "relu3_1"

/* feat (n, d) = spatial means of layer's channels (d = its channel count) for
 * img (n, 3, h, w) in [-1, 1], computed in chunks. *d gets the count. */
ge_status ge_fd_features(float *feat, int *d, ge_vgg *v, const float *img, int n, int h, int w);
/* mu (d), cov (d, d) (unbiased, n - 1) of feat (n, d); n >= 2. */
ge_status ge_fd_stats(double *mu, double *cov, const float *feat, int n, int d);
/* |mu1 - mu2|^2 + tr(c1 + c2 - 2 (c1 c2)^(1/2)); the root's trace from the
 * eigenvalues of c1^(1/2) c2 c1^(1/2) (symmetric, Jacobi). */
ge_status ge_fd_distance(double *fd, const double *mu1, const double *cov1, const double *mu2,
                         const double *cov2, int d);
/* Symmetric eigen-decomposition by cyclic Jacobi rotations: a (d, d) is
 * destroyed; evals (d), evecs (d, d) with eigenvector k in column k. */
ge_status ge_sym_eigen(double *evals, double *evecs, double *a, int d);

/* ---- the training loop (train.c) ----------------------------------------- */

enum {
    GE_TT_D_REAL = 0, /* mean softplus(-D(real)) */
    GE_TT_D_FAKE,     /* mean softplus(D(fake)) */
    GE_TT_G,          /* mean softplus(-D(G(z))) */
    GE_TT_LOGIT_REAL, /* mean D(real) */
    GE_TT_LOGIT_FAKE, /* mean D(fake), D step */
    GE_TT_R1,         /* StyleGAN2: mean |grad_x D(real)|^2 at the last R1 step */
    GE_TT_N
};

typedef struct {
    long step;            /* steps done (one D and one G update each) */
    long long images;     /* real images shown to D */
    double terms[GE_TT_N];
    double seconds;       /* this run's wall time */
    double images_per_s;  /* this run's average */
    double eta_s;         /* to the end of the run */
    double fd;            /* FD-VGG computed at this step, or < 0 */
} ge_train_status;

/* Settings that are <= 0 (or < 0 where 0 is meaningful) take the
 * architecture's default, given as dcgan / stylegan2. */
typedef struct {
    const char *arch;    /* "dcgan-vanilla", "dcgan-deluxe" or "stylegan2" */
    const char *data;    /* image folder */
    const char *out;     /* output folder (created) */
    const char *resume;  /* checkpoint to continue, or NULL: its settings win */
    /* A checkpoint that a new run (not a resumed one) starts from: G, G_ema
     * and D take its tensors wherever one has the same name (it must then
     * have the same shape), the others are initialised as usual; Adam, the
     * counters and the RNG start fresh, and G_ema's ramp-up is off (its
     * start is trained). Grows a 64x64 model to 128x128. */
    const char *init_from;
    int resolution;      /* default 64 */
    int batch;           /* default 16 */
    int z_dim, conv_dim; /* z: 100 / 64; conv_dim: the DCGANs' base width, 32 */
    int w_dim;           /* stylegan2: 64 */
    int map_layers;      /* stylegan2: mapping FCs, 2 (StyleGAN2-ADA's 'auto' config) */
    int channel_base;    /* stylegan2: channels min(channel_base / r, channel_max); 4096 */
    int channel_max;     /* stylegan2: 128 */
    float r1_gamma;      /* stylegan2: R1 weight; < 0: 0.0002 R^2 / batch (ADA's 'auto') */
    int r1_every;        /* stylegan2: lazy R1 interval in steps, 16; 0 = no R1 */
    double kimg;         /* stop when this many thousand real images were shown */
    float lr_g, lr_d;    /* 0.0002 / 0.0025 */
    float beta1, beta2;  /* 0.5, 0.999 / 0, 0.99 (beta1 < 0: default) */
    float ema_kimg;      /* EMA half-life in kimg; < 0: batch * 10 / 32 (StyleGAN2-ADA) */
    float ema_rampup;    /* half-life <= rampup * images seen; default 0.05, 0 = none */
    const char *augment; /* DiffAugment policy, default "color,translation,cutout" */
    int mirror;          /* random x-flips of the data (default 1) */
    uint64_t seed;
    int sample_every;    /* steps between sample grids (0: only at the end) */
    int ckpt_every;      /* steps between checkpoints (0: only at the end) */
    int fd_every;        /* steps between FD-VGG evaluations (0: none) */
    int fd_n;            /* generated images per FD-VGG (default 1000) */
    const char *vgg;     /* VGG weights for FD-VGG (ge_vgg_find) */
    int max_images;      /* load at most this many images (0: all) */
    int quiet_files;     /* tests: no sample grids (checkpoint and csv still written) */
    /* called after every step; nonzero stops (and saves) */
    int (*progress)(void *user, const ge_train_status *st);
    void *user;
    volatile int *stop; /* nonzero (e.g. set by SIGINT) stops after the step and saves */
} ge_train_params;

typedef struct {
    long first_step, steps_done; /* steps of this run: first_step+1 .. first_step+steps_done */
    long long images;
    double *history;             /* (steps_done, GE_TT_N) */
    int stopped;                 /* by stop or progress */
    double seconds;
    double last_fd;              /* < 0 if never computed */
    int init_copied, init_fresh; /* init_from: tensors of G and D taken over / initialised */
} ge_train_result;

void ge_train_params_init(ge_train_params *p);
/* Trains (or resumes) and writes into p->out: checkpoint.safetensors (G, D,
 * G_ema, both Adam states, step, images, RNG state and settings; atomic),
 * generator.safetensors (G_ema in F16, loadable by ge_generator_load),
 * samples_<step>.png grids of G_ema on fixed latents, loss.csv and fd.csv. */
ge_status ge_train_run(const ge_train_params *p, ge_train_result *r);
void ge_train_result_free(ge_train_result *r);

/* FD-VGG of a generator's images (n, fixed seed) against images real (m, 3,
 * R, R). *fd_floor (if not NULL) gets the FD-VGG between the two halves of
 * real (m/2 and m - m/2 images after a seeded shuffle), and *fd_matched (if
 * not NULL and n >= m - m/2) that of the first m - m/2 generated images
 * against the second half: the same sample sizes as the floor, so the two
 * share FD's small-sample bias and compare like for like. */
ge_status ge_train_fd_of(double *fd, double *fd_floor, double *fd_matched, ge_generator *g,
                         ge_vgg *v, const float *real, int m, int n, uint64_t seed);

#endif /* GE_TRAIN_H */
