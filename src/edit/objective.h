/* objective.h - the editing loss as a value-and-gradient function of a batch
 * of latents (K restarts): pixel, perceptual (VGG-19), Gram style and latent
 * regulariser terms, with the pixel mask resized to every VGG layer. The
 * target's features, Gram matrices and resized masks are computed once, when
 * the objective is made; every buffer an evaluation needs is allocated then.
 * A batch may hold several images (M targets, K/M restarts each, image-major:
 * sample k matches target k / (K/M)); each target's features come from its
 * own batch-1 VGG pass, so an image's numbers do not depend on its batch. */
#ifndef GE_OBJECTIVE_H
#define GE_OBJECTIVE_H

#include "core/core.h"

#define GE_MAX_LAYERS 16

typedef struct {
    char name[16];
    int perceptual, style; /* which terms use this layer */
    int c, h, w;
    float *target;       /* (M, c, h, w) target features */
    float *mask;         /* (M, h, w) resized pixel masks, or NULL */
    double *mask_sum;    /* (M) sum of each mask (h*w without one) */
    float *target_gram;  /* (M, c, c) if style */
    float *gram, *dgram; /* (c, c) scratch */
    float *grad;         /* (K, c, h, w) d loss / d features */
} ge_obj_layer;

typedef struct {
    ge_generator *g;
    ge_vgg *vgg;
    ge_edit_params p;
    int K, R;            /* K: the whole batch (M images x K/M restarts) */
    int M;               /* images (targets) in the batch, 1 for a single edit */
    size_t L;            /* latent size per restart */
    const float *target; /* (M, 3, R, R) */
    const float *mask;   /* (M, R, R) or NULL */
    double *mask_sum;    /* (M) */
    int n_layers;
    ge_obj_layer layers[GE_MAX_LAYERS];
    char deepest[16];
    const float *start; /* (K, L) latents the regulariser pulls towards */
    float *img, *dimg;  /* (K, 3, R, R) */
    double *terms;      /* (K, GE_N_TERMS) of the last evaluation */
    int evals;
    ge_status status; /* of the last evaluation: GE_OK, a network's error, or
                         GE_ERR_NUMERIC (non-finite loss) */
} ge_objective;

/* Checks the loss weights, the layer names (and that the VGG has them), the
 * target's finiteness and the mask's range, without allocating anything;
 * target and mask may be NULL to skip their checks. */
ge_status ge_objective_check(const ge_generator *g, const ge_vgg *vgg, const float *target,
                             const float *mask, const ge_edit_params *p);
/* Validates as ge_objective_check, then runs the VGG on the target once. */
ge_status ge_objective_init(ge_objective *o, ge_generator *g, ge_vgg *vgg, const float *target,
                            const float *mask, const ge_edit_params *p, int K, const float *start);
/* As ge_objective_init for M images: target (M, 3, R, R), mask (M, R, R) or
 * NULL, K (a multiple of M) samples, image-major. */
ge_status ge_objective_init_many(ge_objective *o, ge_generator *g, ge_vgg *vgg, int M,
                                 const float *target, const float *mask, const ge_edit_params *p,
                                 int K, const float *start);
void ge_objective_free(ge_objective *o);
/* Sum over restarts of the total loss at x (K, L); grad (K, L) is overwritten.
 * Per-restart terms land in o->terms, images in o->img. NaN on failure, with
 * o->status and the message set. Matches ge_value_grad_fn. */
double ge_objective_eval(void *o, const float *x, float *grad);

/* Orders VGG layer names: conv1_1 < relu1_1 < conv1_2 < ...; -1 if malformed. */
int ge_vgg_layer_rank(const char *name);

#endif /* GE_OBJECTIVE_H */
