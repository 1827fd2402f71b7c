/* objective.h - the editing loss as a value-and-gradient function of a batch
 * of latents (K restarts): pixel, perceptual (VGG-19), Gram style and latent
 * regulariser terms, with the pixel mask resized to every VGG layer. The
 * target's features, Gram matrices and resized masks are computed once, when
 * the objective is made; every buffer an evaluation needs is allocated then. */
#ifndef GE_OBJECTIVE_H
#define GE_OBJECTIVE_H

#include "core/core.h"

#define GE_MAX_LAYERS 16

typedef struct {
    char name[16];
    int perceptual, style;   /* which terms use this layer */
    int c, h, w;
    float *target;           /* (c, h, w) target features */
    float *mask;             /* (h, w) resized pixel mask, or NULL */
    double mask_sum;         /* sum of mask (h*w without one) */
    float *target_gram;      /* (c, c) if style */
    float *gram, *dgram;     /* (c, c) scratch */
    float *grad;             /* (K, c, h, w) d loss / d features */
} ge_obj_layer;

typedef struct {
    ge_generator *g;
    ge_vgg *vgg;
    ge_edit_params p;
    int K, R;
    size_t L;                /* latent size per restart */
    const float *target;     /* (3, R, R) */
    const float *mask;       /* (R, R) or NULL */
    double mask_sum;
    int n_layers;
    ge_obj_layer layers[GE_MAX_LAYERS];
    char deepest[16];
    const float *start;      /* (K, L) latents the regulariser pulls towards */
    float *img, *dimg;       /* (K, 3, R, R) */
    double *terms;           /* (K, GE_N_TERMS) of the last evaluation */
    int evals;
} ge_objective;

/* Validates the parameters and layer names, runs the VGG on the target once. */
ge_status ge_objective_init(ge_objective *o, ge_generator *g, ge_vgg *vgg, const float *target,
                            const float *mask, const ge_edit_params *p, int K, const float *start);
void ge_objective_free(ge_objective *o);
/* Sum over restarts of the total loss at x (K, L); grad (K, L) is overwritten.
 * Per-restart terms land in o->terms, images in o->img. NaN on failure (the
 * message is set). Matches ge_value_grad_fn. */
double ge_objective_eval(void *o, const float *x, float *grad);

/* Orders VGG layer names: conv1_1 < relu1_1 < conv1_2 < ...; -1 if malformed. */
int ge_vgg_layer_rank(const char *name);

#endif /* GE_OBJECTIVE_H */
