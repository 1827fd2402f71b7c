/* ganedit.h - the one public header of libganedit.
 *
 * ganedit edits images through the latent space of a trained GAN: it inverts a
 * generator onto a photo, interpolates between latents, and turns colour
 * scribbles into natural images. This header is the manual.
 *
 * Usage:
 *
 *     ge_generator *g = NULL;
 *     if (ge_generator_load(&g, "dcgan.pkl", NULL) != GE_OK) {
 *         fprintf(stderr, "ganedit: %s\n", ge_errmsg());
 *         return 1;
 *     }
 *     const ge_gen_info *info = ge_generator_info(g);
 *     float *z   = ...;                        // (n, info->z_dim)
 *     float *img = ...;                        // (n, 3, R, R), R = info->resolution
 *     ge_generator_forward(g, img, z, GE_LATENT_Z, n, NULL);
 *     ge_image_write_png("grid.png", img, n, 3, R, R, 4);
 *     ge_generator_free(g);
 *
 * Conventions: images are float32 NCHW in [-1, 1]; every call returns a
 * ge_status (GE_OK is 0) and leaves a one-line message for ge_errmsg();
 * every _free accepts NULL; the library never prints and never exits.
 * Backward calls ADD into the gradient buffers they are given.
 */
#ifndef GANEDIT_H
#define GANEDIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GE_VERSION "0.1.0"

/* ---- Status and errors ------------------------------------------------ */

typedef enum {
    GE_OK = 0,
    GE_ERR_ARG = 1,         /* a bad argument or option value */
    GE_ERR_IO = 2,          /* a file could not be opened, read or written */
    GE_ERR_FORMAT = 3,      /* a file is corrupt, truncated or not what it claims */
    GE_ERR_UNSUPPORTED = 4, /* a valid file or request that ganedit does not handle */
    GE_ERR_SHAPE = 5,       /* tensor shapes do not fit together */
    GE_ERR_NOMEM = 6,       /* out of memory, or a size too large to allocate */
    GE_ERR_UNSAFE = 7,      /* a file asked for something ganedit refuses to do (pickle globals) */
    GE_ERR_NUMERIC = 8,     /* NaN or Inf where a finite number is needed */
    GE_ERR_INTERRUPTED = 9, /* stopped by the caller's request */
} ge_status;

/* The message of the last failed call in this thread ("" if none). */
const char *ge_errmsg(void);
/* The name of a status code, e.g. "format error". */
const char *ge_status_name(ge_status s);

/* ---- Threads ---------------------------------------------------------- */

/* Number of threads used by kernels; 0 = all cores (default). */
void ge_set_num_threads(int n);
int ge_get_num_threads(void);

/* ---- Precision ---------------------------------------------------------- */

/* The arithmetic of the large convolutions. FP32 (default) everywhere;
 * BF16 multiplies bf16 activations and weights with fp32 accumulation and
 * fp32 results (about 3 significant digits per product; latents, losses and
 * optimiser state stay fp32). BF16 runs only where it is faster, on CPUs
 * with AMX-BF16 that the OS lets this process use (ge_bf16_supported() ==
 * GE_BF16_AMX); elsewhere a BF16 request is kept but fp32 runs, and
 * ge_get_precision() says FP32. Process-wide. */
typedef enum { GE_PRECISION_FP32 = 0, GE_PRECISION_BF16 = 1 } ge_precision;
typedef enum {
    GE_BF16_NONE = 0,   /* no native bf16: fp32 only */
    GE_BF16_AVX512 = 1, /* AVX512-BF16 dot products only (no faster than fp32: not used) */
    GE_BF16_AMX = 2,    /* AMX-BF16 tiles, granted by the OS to this process */
} ge_bf16_support;

ge_status ge_set_precision(ge_precision p); /* GE_ERR_ARG for an unknown value */
ge_precision ge_get_precision(void);        /* the precision in effect */
ge_bf16_support ge_bf16_supported(void);    /* detected once (CPUID, XCR0, arch_prctl) */

/* ---- Random numbers ---------------------------------------------------- */

/* One documented generator: xoshiro256** seeded through splitmix64. The same
 * seed gives the same stream on every machine and thread count. */
typedef struct {
    uint64_t s[4];
} ge_rng;

void ge_rng_seed(ge_rng *r, uint64_t seed);
uint64_t ge_rng_u64(ge_rng *r);
float ge_rng_uniform(ge_rng *r);            /* [0, 1) */
float ge_rng_normal(ge_rng *r);             /* N(0, 1), Box-Muller */
void ge_rng_fill_normal(ge_rng *r, float *x, size_t n);
void ge_rng_fill_uniform(ge_rng *r, float *x, size_t n, float lo, float hi);

/* ---- Tensors read from files ------------------------------------------ */

/* A named tensor; data is always float32 (other dtypes are converted on load). */
typedef struct {
    char *name;
    int ndim;
    int64_t shape[8];
    size_t numel;
    float *data;
} ge_tensor;

/* A set of named tensors in file order, plus optional JSON metadata (the
 * safetensors "__metadata__" object, serialised), or NULL. */
typedef struct ge_tensors ge_tensors;

/* Reads safetensors, PyTorch zip (torch.save >= 1.6), legacy PyTorch
 * (torch.save < 1.6) or NumPy .npy files; the format is found from the bytes.
 * PyTorch files are read by a restricted unpickler that never runs code. */
ge_status ge_tensors_load(ge_tensors **out, const char *path);
ge_status ge_safetensors_load(ge_tensors **out, const char *path);
ge_status ge_torch_load(ge_tensors **out, const char *path);
void ge_tensors_free(ge_tensors *t);
int ge_tensors_count(const ge_tensors *t);
const ge_tensor *ge_tensors_at(const ge_tensors *t, int i);
/* NULL if absent (no error is set). */
const ge_tensor *ge_tensors_find(const ge_tensors *t, const char *name);
const char *ge_tensors_metadata(const ge_tensors *t);

/* Writes tensors as F32 safetensors; metadata_json is a JSON object of
 * string values, or NULL. Written to a temporary name and renamed. */
ge_status ge_safetensors_save(const char *path, const ge_tensor *tensors, int n,
                              const char *metadata_json);

/* NumPy .npy (float32 little-endian, any rank, C order). *data is malloc'd. */
ge_status ge_npy_load(const char *path, float **data, int *ndim, int64_t shape[8]);
ge_status ge_npy_save(const char *path, const float *data, int ndim, const int64_t *shape);

/* ---- Images ------------------------------------------------------------ */

/* Reads PNG or JPEG into float (c, h, w) in [-1, 1]; c is 3 or 4 (alpha kept,
 * as the 4th plane in [-1,1]) or 1 for grayscale. *data is malloc'd. */
ge_status ge_image_read(const char *path, float **data, int *c, int *h, int *w);
/* Writes n images (n, c, h, w) in [-1, 1] as one PNG grid of `cols` columns
 * (c = 1, 3 or 4). Written to a temporary name and renamed. */
ge_status ge_image_write_png(const char *path, const float *img, int n, int c, int h, int w,
                             int cols);
/* Resizes (c, h, w) to (c, oh, ow) with a triangle (bilinear) filter that
 * widens when shrinking (antialiased, like PIL's bilinear). *out is malloc'd. */
ge_status ge_image_resize(float **out, const float *img, int c, int h, int w, int oh, int ow);
/* The largest centred square of (c, h, w): *out (c, side, side), malloc'd. */
ge_status ge_image_center_crop(float **out, const float *img, int c, int h, int w, int *side);

/* ---- Generators --------------------------------------------------------- */

typedef enum { GE_LATENT_Z = 0, GE_LATENT_W = 1, GE_LATENT_WPLUS = 2 } ge_latent_space;
typedef enum { GE_NOISE_CONST = 0, GE_NOISE_RANDOM = 1, GE_NOISE_NONE = 2 } ge_noise_mode;
typedef enum { GE_ZDIST_NORMAL = 0, GE_ZDIST_UNIFORM = 1 } ge_zdist;

typedef struct {
    const char *arch;    /* "dcgan-vanilla", "dcgan-deluxe", "stylegan2" */
    int resolution;      /* output is (3, resolution, resolution) */
    int z_dim;
    int w_dim;           /* 0 for DCGAN */
    int num_ws;          /* 0 for DCGAN */
    ge_zdist z_dist;     /* how z is drawn: DCGAN deluxe U(-1,1), others N(0,1) */
    size_t num_params;   /* parameters + buffers, in floats */
    char description[512];
} ge_gen_info;

typedef struct {
    double conv_clamp;          /* StyleGAN2: > 0 = clamp at this value; <= 0 = the file's
                                   metadata value, none for a bare state dict (default -1) */
    int force_no_conv_clamp;    /* StyleGAN2: no clamping, whatever the file or conv_clamp say */
} ge_gen_options;

typedef struct {
    float truncation_psi;  /* 1 = none (default) */
    int truncation_cutoff; /* layers to truncate; <= 0 = all (default) */
    ge_noise_mode noise;   /* default GE_NOISE_CONST */
    uint64_t noise_seed;   /* for GE_NOISE_RANDOM */
} ge_gen_call;

void ge_gen_call_init(ge_gen_call *c);
void ge_gen_options_init(ge_gen_options *o);

typedef struct ge_generator ge_generator;

/* Loads a DCGAN (vanilla or deluxe) or StyleGAN2-ADA generator from any file
 * ge_tensors_load reads; the architecture comes from the metadata or from the
 * tensor names and shapes. opt may be NULL. */
ge_status ge_generator_load(ge_generator **out, const char *path, const ge_gen_options *opt);
void ge_generator_free(ge_generator *g);
const ge_gen_info *ge_generator_info(const ge_generator *g);

/* Latent sizes per sample: z -> z_dim, w -> w_dim, w+ -> num_ws * w_dim. */
size_t ge_generator_latent_size(const ge_generator *g, ge_latent_space sp);

/* img (n, 3, R, R) = G(latent (n, latent_size)). Remembers what backward needs.
 * call may be NULL (defaults). */
ge_status ge_generator_forward(ge_generator *g, float *img, const float *latent,
                               ge_latent_space sp, int n, const ge_gen_call *call);
/* dlatent (n, latent_size) += d(sum(img * dimg))/dlatent for the last forward. */
ge_status ge_generator_backward(ge_generator *g, float *dlatent, const float *dimg);

/* StyleGAN2: ws (n, num_ws, w_dim) from z (n, z_dim), with truncation. */
ge_status ge_generator_mapping(ge_generator *g, float *ws, const float *z, int n,
                               const ge_gen_call *call);

/* ---- VGG-19 features ---------------------------------------------------- */

typedef struct ge_vgg ge_vgg;

/* Layer names: conv1_1 conv1_2 conv2_1 conv2_2 conv3_1 ... conv5_4 (pre-ReLU),
 * relu1_1 ... relu5_4, pool1 ... pool5, and conv0 (the normalised layout's
 * 1x1 colour layer). Layouts: torchvision (features.N keys) and the
 * style-transfer "normalised" VGG (keys 0, 2, 5, 9, ...), up to any conv. */
ge_status ge_vgg_load(ge_vgg **out, const char *path);
/* Finds VGG weights: explicit path, then $GANEDIT_VGG (either one missing is
 * an error, not a fallback), then torchvision's cache
 * ($TORCH_HOME, $XDG_CACHE_HOME/torch or ~/.cache/torch, each
 * hub/checkpoints/vgg19-dcbb9e9d.pth), then
 * weights/vgg19_normalised_conv3_1.{safetensors,pth} under $GANEDIT_SHARED
 * and ../shared. GE_ERR_IO if none; the message says where to get one. */
ge_status ge_vgg_find(char *path, size_t cap, const char *explicit_path);
void ge_vgg_free(ge_vgg *v);
/* The deepest conv layer present, e.g. "conv3_1"; layout "torchvision" or "normalised". */
const char *ge_vgg_last_layer(const ge_vgg *v);
const char *ge_vgg_layout(const ge_vgg *v);
/* Runs x (n, 3, h, w) in [-1, 1] up to the deepest of the comma-separated
 * layers in upto (NULL: the whole network). Buffers are kept between calls. */
ge_status ge_vgg_forward(ge_vgg *v, const float *x, int n, int h, int w, const char *upto);
/* The named activation of the last forward; shape in c, h, w (batch n). */
const float *ge_vgg_feature(const ge_vgg *v, const char *layer, int *c, int *h, int *w);
/* dx (n, 3, h, w) += gradient of sum_k sum(feature_k * grad_k) for the named
 * layers (grads shaped like the features; a NULL grad is skipped), with
 * respect to the [-1, 1] input of the last forward. */
ge_status ge_vgg_backward(ge_vgg *v, float *dx, int k, const char *const *layers,
                          const float *const *grads);


/* ---- Editing: inversion, scribbles, photo edits ------------------------
 *
 * One engine serves project, draw and edit: find latents L (K restarts at
 * once, as a batch) minimising, per restart,
 *
 *   w_pixel      * masked mean of (G(L) - target)^2   (|.| with pixel_l1)
 * + w_perceptual * sum over layers of the masked mean of (VGG_l(G(L)) - VGG_l(target))^2
 * + w_style      * sum over style layers of mean (Gram_l(G(L)) - Gram_l(target))^2
 * + w_reg        * mean (L - L_start)^2
 *
 * where masks are the pixel mask resized to each layer and Gram_l = F F^T /
 * (C h w) with F the features times the layer's mask. Masked means divide by
 * the mask's sum (times the channel count). The target's features are
 * computed once. Each restart's lowest-loss step is remembered, and the
 * restart whose remembered loss is lowest is returned (for a loss that only
 * goes down, the final step of the best restart). */

typedef enum { GE_OPT_ADAM = 0, GE_OPT_LBFGS = 1 } ge_optimizer;
typedef enum { GE_INIT_MEAN = 0, GE_INIT_RANDOM = 1, GE_INIT_GIVEN = 2 } ge_init_mode;

enum { GE_TERM_TOTAL = 0, GE_TERM_PIXEL, GE_TERM_PERCEPTUAL, GE_TERM_STYLE, GE_TERM_REG,
       GE_N_TERMS };

typedef struct {
    ge_latent_space space;  /* z for DCGAN, w+ for StyleGAN2 by default */
    ge_optimizer optimizer; /* default Adam */
    int steps;              /* default 1000 */
    float lr;               /* Adam learning rate, default 0.003 (L-BFGS: first step scale 1) */
    float w_pixel, w_perceptual, w_style, w_reg; /* defaults 0.3, 0.7, 0, 0 */
    int pixel_l1;           /* L1 instead of L2 pixel loss */
    const char *layers;     /* perceptual layers, default "conv1_1,conv1_2,conv2_1,conv2_2,conv3_1" */
    const char *style_layers; /* default: same as layers */
    ge_init_mode init;      /* default GE_INIT_MEAN */
    int init_samples;       /* samples averaged for GE_INIT_MEAN, default 10 */
    const float *init_latent; /* GE_INIT_GIVEN: one latent (latent_size), used by every restart */
    int restarts;           /* K, default 1 */
    uint64_t seed;
    ge_gen_call call;       /* noise mode etc.; truncation is not applied while editing */
    int history_every;      /* keep a snapshot image every N steps (0: none) */
    /* Progress: called after each step; return nonzero to stop early (best so far is kept). */
    int (*progress)(void *user, int step, int steps, const double *terms, double seconds);
    void *user;
    volatile int *stop;     /* checked every step: nonzero stops (e.g. set by SIGINT) */
} ge_edit_params;

typedef struct {
    int steps_done;
    int stopped;           /* stopped early by progress/stop */
    size_t latent_size;
    float *latent;         /* (latent_size) best restart's lowest-loss latent, in params.space */
    float *image;          /* (3, R, R) its image */
    float *start_image;    /* (3, R, R) the image at the start latent of that restart */
    int best_step;         /* the step latent/image come from (0..steps_done) */
    double *restart_loss;  /* (restarts) each restart's lowest total loss */
    double *history;       /* (steps_done + 1, GE_N_TERMS): row 0 at the start, of the
                              returned restart */
    int n_snapshots;
    float *snapshots;      /* (n_snapshots, 3, R, R) */
    int *snapshot_steps;   /* (n_snapshots) */
    int best_restart;
    double seconds;
    int evals;             /* objective evaluations */
} ge_edit_result;

void ge_edit_params_init(ge_edit_params *p, const ge_generator *g);
/* Checks p against g and vgg without running anything: steps, learning rate,
 * restarts, init, latent space, loss weights, layer names (and that vgg has
 * them), and, when not NULL, the target's finiteness and the mask's range and
 * emptiness. ge_edit_run makes the same checks; calling this first lets a
 * caller refuse bad input before creating any output. */
ge_status ge_edit_check(const ge_generator *g, const ge_vgg *vgg, const float *target,
                        const float *mask, const ge_edit_params *p);
/* The K starting latents (K, latent_size in p->space) that ge_edit_run's K
 * restarts begin from for this seed: p->init's mean of p->init_samples
 * mapped samples, one random sample, or p->init_latent. */
ge_status ge_edit_start_latents(ge_generator *g, const ge_edit_params *p, uint64_t seed, int K,
                                float *start);
/* target (3, R, R) in [-1, 1]; mask (R, R) in [0, 1] or NULL; vgg may be NULL
 * only if w_perceptual and w_style are 0. */
ge_status ge_edit_run(ge_generator *g, ge_vgg *vgg, const float *target, const float *mask,
                      const ge_edit_params *p, ge_edit_result *out);
/* n images in one batch (n x restarts samples): targets (n, 3, R, R), masks
 * (n, R, R) or NULL, seeds (n) replacing p->seed, out (n results). Each
 * image's result is the one ge_edit_run gives it with its seed, up to the
 * networks' batched float rounding (docs/batch.md); Adam only (L-BFGS's line
 * search would couple the images). progress sees image 0's terms; seconds is
 * the whole batch's time. */
ge_status ge_edit_run_many(ge_generator *g, ge_vgg *vgg, int n, const float *targets,
                           const float *masks, const uint64_t *seeds, const ge_edit_params *p,
                           ge_edit_result *out);
void ge_edit_result_free(ge_edit_result *r);

/* Writes an animated GIF of n frames (n, 3, h, w) in [-1, 1], delay in 1/100 s,
 * looping; one 256-colour palette per frame. Atomic. */
ge_status ge_gif_write(const char *path, const float *frames, int n, int h, int w, int delay_cs);

#ifdef __cplusplus
}
#endif
#endif /* GANEDIT_H */
