/* models.h - the internal side of ge_generator and ge_vgg: each generator
 * architecture fills a vtable; generator.c picks one from the tensor names
 * and forwards the public calls.
 *
 * Every model follows the same verbs: create (from a loaded ge_tensors, which
 * the model keeps and frees), forward (remembers the inputs of each layer for
 * backward, in buffers sized once per batch size), backward (to the input
 * only; weights are frozen during editing), free. */
#ifndef GE_MODELS_H
#define GE_MODELS_H

#include "core/core.h"

typedef struct {
    /* img (n, 3, R, R) from latent; sp is a space the model supports */
    ge_status (*forward)(void *impl, float *img, const float *latent, ge_latent_space sp, int n,
                         const ge_gen_call *call);
    /* dlatent += J^T dimg for the last forward */
    ge_status (*backward)(void *impl, float *dlatent, const float *dimg);
    /* StyleGAN2 only (NULL otherwise): ws (n, num_ws, w_dim) from z */
    ge_status (*mapping)(void *impl, float *ws, const float *z, int n, const ge_gen_call *call);
    void (*free)(void *impl);
    /* Training (NULL where unsupported): as backward, but dlatent may be NULL
     * (skipped), and the weight gradients are ADDED into the tensors of
     * `grads` that carry the weights' names (names absent there are skipped). */
    ge_status (*backward_params)(void *impl, float *dlatent, const float *dimg,
                                 const ge_tensors *grads);
} ge_gen_vtable;

struct ge_generator {
    const ge_gen_vtable *vt;
    void *impl;
    ge_gen_info info;
};

/* Each create takes ownership of `w` (freed by the model's free, also on failure)
 * and fills *vt, *impl and info. */
ge_status ge_dcgan_create(const ge_gen_vtable **vt, void **impl, ge_gen_info *info, ge_tensors *w,
                          const char *path);
ge_status ge_stylegan2_create(const ge_gen_vtable **vt, void **impl, ge_gen_info *info,
                              ge_tensors *w, const char *path, const ge_gen_options *opt);
/* StyleGAN2 debugging aid (tests): after a forward, the output x (n, *c, res, res)
 * of block synthesis.b<res> and the running skip image (n, 3, res, res). */
ge_status ge_stylegan2_debug_block(const void *impl, int res, const float **x, const float **img,
                                   int *c);

/* ---- discriminators (training only; src/models/discriminator.c) --------
 * The course's DCGAN discriminator: x (n, 3, R, R) in [-1, 1] -> logits (n).
 * create takes ownership of w (conv{1..M+1}.0.weight, conv{M+1}.0.bias);
 * R follows from the number of layers. backward ADDS dx (n, 3, R, R) (NULL:
 * skipped) and the weight gradients into the tensors of grads named like the
 * weights (grads NULL or a name absent: skipped), for the last forward. */
typedef struct ge_disc ge_disc;
ge_status ge_disc_create(ge_disc **out, ge_tensors *w, const char *path);
ge_status ge_disc_forward(ge_disc *d, float *logits, const float *x, int n);
ge_status ge_disc_backward(ge_disc *d, float *dx, const ge_tensors *grads, const float *dlogits);
int ge_disc_resolution(const ge_disc *d);
void ge_disc_free(ge_disc *d);
/* on: keeps the activation pattern of the last forward (which slope of each
 * leaky ReLU, which values the clamp cut), and until off, forward and
 * backward run the network with that pattern: the piecewise-linear network
 * linearised at the frozen point, what autograd's double backward
 * differentiates (R1's weight gradient, src/train/step.c). The batch size
 * must not change meanwhile. StyleGAN2 discriminator only. */
ge_status ge_disc_freeze(ge_disc *d, int on);

/* The StyleGAN2-ADA discriminator (src/models/sg2_disc.c; resnet, no
 * conditioning, mbstd group 4, conv_clamp 256): ge_disc_create picks it when
 * w holds "b{R}.fromrgb.weight" (ge_sg2_disc_detect gives that R, 0 if
 * none); the ge_disc_* calls then forward to these, with the same
 * semantics (backward ADDS). The batch must be below 4 or a multiple of 4
 * (minibatch stddev). ADA's "resample_filter" buffers are not needed. */
typedef struct ge_sg2_disc ge_sg2_disc;
int ge_sg2_disc_detect(const ge_tensors *w);
ge_status ge_sg2_disc_create(ge_sg2_disc **out, ge_tensors *w, const char *path);
ge_status ge_sg2_disc_forward(ge_sg2_disc *d, float *logits, const float *x, int n);
ge_status ge_sg2_disc_backward(ge_sg2_disc *d, float *dx, const ge_tensors *grads,
                               const float *dlogits);
int ge_sg2_disc_resolution(const ge_sg2_disc *d);
void ge_sg2_disc_free(ge_sg2_disc *d);
ge_status ge_sg2_disc_freeze(ge_sg2_disc *d, int on);
/* Trainable weights of that discriminator for resolution res (a power of
 * two 8..1024), C(r) = min(channel_base / r, channel_max), in one flat block
 * (train.h's ge_flat_new), initialised as ADA does: every weight N(0, 1)
 * drawn from rng (the equalised learning rate scales it at run time), every
 * bias 0. */
ge_status ge_sg2_disc_init(ge_tensors **out, int res, int channel_base, int channel_max,
                           ge_rng *rng);

/* Shape checking helper for model loaders: finds `name` in w with exactly the
 * given shape (ndim dims); on failure sets a message naming path and tensor. */
ge_status ge_expect_tensor(const ge_tensor **out, const ge_tensors *w, const char *path,
                           const char *name, int ndim, const int64_t *shape);

/* Load-time check (generator.c, used by the generator and VGG loaders):
 * GE_ERR_NUMERIC naming path and the first tensor that holds a NaN or Inf,
 * so corrupt weights are refused before they can reach an output. */
ge_status ge_check_finite_weights(const ge_tensors *w, const char *path);

#endif /* GE_MODELS_H */
