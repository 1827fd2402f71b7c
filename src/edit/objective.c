/* objective.c - the loss every editing job minimises (see ganedit.h for the
 * formula). Per-restart values are kept apart so the best restart can be
 * chosen; the gradient flows image -> VGG (all layers at once) -> generator
 * -> latent, with no weight gradients anywhere. */
#include "edit/objective.h"
#include "ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ge_vgg_layer_rank(const char *name) {
    int a, b, n = 0;
    int relu = !strncmp(name, "relu", 4);
    if (!relu && strncmp(name, "conv", 4)) return -1;
    /* VGG-19: blocks 1 and 2 have two convs, blocks 3 to 5 four */
    if (sscanf(name + 4, "%d_%d%n", &a, &b, &n) != 2 || name[4 + n] || a < 1 || a > 5 || b < 1 ||
        b > (a <= 2 ? 2 : 4))
        return -1;
    return (a * 8 + b) * 2 + relu;
}

/* Adds the comma-separated layer names of list to o->layers (merging
 * repeats), marking them for the style or the perceptual term. */
static ge_status add_layers(ge_objective *o, const char *list, int style) {
    char buf[512];
    if (!list) list = "";
    if (strlen(list) >= sizeof buf) return ge_fail(GE_ERR_ARG, "the layer list is too long");
    snprintf(buf, sizeof buf, "%s", list);
    int added = 0;
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (ge_vgg_layer_rank(t) < 0)
            return ge_fail(GE_ERR_ARG,
                           "unknown layer name '%s' (use conv1_1 .. conv5_4 or relu1_1 .. relu5_4)",
                           t);
        int i;
        for (i = 0; i < o->n_layers; i++)
            if (!strcmp(o->layers[i].name, t)) break;
        if (i == o->n_layers) {
            if (o->n_layers == GE_MAX_LAYERS)
                return ge_fail(GE_ERR_ARG, "too many layers (at most %d)", GE_MAX_LAYERS);
            snprintf(o->layers[i].name, sizeof o->layers[i].name, "%s", t);
            o->n_layers++;
        }
        if (style)
            o->layers[i].style = 1;
        else
            o->layers[i].perceptual = 1;
        added++;
    }
    if (!added)
        return ge_fail(GE_ERR_ARG, "no %s layers given (e.g. conv1_1,conv2_1)",
                       style ? "style" : "perceptual");
    return GE_OK;
}

static int bad_weight(float w) {
    return !isfinite(w) || w < 0;
}

/* The checks shared by ge_objective_check and ge_objective_init: weights,
 * layer names (into o->layers), the VGG's depth, the M targets and masks. */
static ge_status check(ge_objective *o, const ge_generator *g, const ge_vgg *vgg, int M,
                       const float *target, const float *mask, const ge_edit_params *p) {
    if (bad_weight(p->w_pixel) || bad_weight(p->w_perceptual) || bad_weight(p->w_style) ||
        bad_weight(p->w_reg))
        return ge_fail(GE_ERR_ARG, "loss weights must be finite and >= 0");
    if (p->w_pixel + p->w_perceptual + p->w_style == 0)
        return ge_fail(GE_ERR_ARG, "all image loss weights are 0: nothing to optimise");
    ge_status st;
    if (p->w_perceptual > 0 && (st = add_layers(o, p->layers, 0)) != GE_OK) return st;
    if (p->w_style > 0 &&
        (st = add_layers(o, p->style_layers ? p->style_layers : p->layers, 1)) != GE_OK)
        return st;
    if (o->n_layers > 0) {
        if (!vgg) return ge_fail(GE_ERR_ARG, "perceptual or style loss needs VGG-19 weights");
        int last = ge_vgg_layer_rank(ge_vgg_last_layer(vgg));
        for (int i = 0; i < o->n_layers; i++)
            if ((ge_vgg_layer_rank(o->layers[i].name) & ~1) > last)
                return ge_fail(GE_ERR_ARG, "layer '%s' is not in this VGG (it has conv1_1 .. %s)",
                               o->layers[i].name, ge_vgg_last_layer(vgg));
    }
    int R = ge_generator_info(g)->resolution;
    size_t RR = (size_t)R * R;
    if (target)
        for (size_t i = 0; i < (size_t)M * 3 * RR; i++)
            if (!isfinite(target[i]))
                return M > 1 ? ge_fail(GE_ERR_NUMERIC, "target image %zu holds NaN or Inf",
                                       i / (3 * RR))
                             : ge_fail(GE_ERR_NUMERIC, "the target image holds NaN or Inf");
    if (mask)
        for (int m = 0; m < M; m++) {
            double s = 0;
            for (size_t i = 0; i < RR; i++) {
                float v = mask[m * RR + i];
                if (!isfinite(v) || v < 0 || v > 1)
                    return ge_fail(GE_ERR_ARG, "mask values must be in [0, 1]");
                s += v;
            }
            if (s < 0.5) return ge_fail(GE_ERR_ARG, "the mask is empty: nothing to match");
        }
    return GE_OK;
}

ge_status ge_objective_check(const ge_generator *g, const ge_vgg *vgg, const float *target,
                             const float *mask, const ge_edit_params *p) {
    ge_objective o;
    memset(&o, 0, sizeof o);
    return check(&o, g, vgg, 1, target, mask, p);
}

ge_status ge_objective_init(ge_objective *o, ge_generator *g, ge_vgg *vgg, const float *target,
                            const float *mask, const ge_edit_params *p, int K, const float *start) {
    return ge_objective_init_many(o, g, vgg, 1, target, mask, p, K, start);
}

ge_status ge_objective_init_many(ge_objective *o, ge_generator *g, ge_vgg *vgg, int M,
                                 const float *target, const float *mask, const ge_edit_params *p,
                                 int K, const float *start) {
    memset(o, 0, sizeof *o);
    if (M < 1 || K < M || K % M)
        return ge_fail(GE_ERR_ARG, "a batch of %d samples cannot hold %d images evenly", K, M);
    o->g = g;
    o->vgg = vgg;
    o->p = *p;
    o->K = K;
    o->M = M;
    o->R = ge_generator_info(g)->resolution;
    o->L = ge_generator_latent_size(g, p->space);
    o->target = target;
    o->mask = mask;
    o->start = start;
    ge_status st = check(o, g, vgg, M, target, mask, p);
    if (st != GE_OK) return st;
    size_t RR = (size_t)o->R * o->R;
    size_t img_n = (size_t)K * 3 * RR;
    o->img = ge_alloc_floats(img_n);
    o->dimg = ge_alloc_floats(img_n);
    o->terms = ge_calloc((size_t)K * GE_N_TERMS, sizeof(double));
    o->mask_sum = ge_calloc((size_t)M, sizeof(double));
    if (!o->img || !o->dimg || !o->terms || !o->mask_sum) return GE_ERR_NOMEM;
    for (int m = 0; m < M; m++) {
        double s = 0;
        if (mask)
            for (size_t i = 0; i < RR; i++)
                s += mask[m * RR + i];
        o->mask_sum[m] = mask ? s : (double)RR;
    }
    if (o->n_layers == 0) return GE_OK;
    int best = -1;
    for (int i = 0; i < o->n_layers; i++)
        if (ge_vgg_layer_rank(o->layers[i].name) > best) {
            best = ge_vgg_layer_rank(o->layers[i].name);
            snprintf(o->deepest, sizeof o->deepest, "%s", o->layers[i].name);
        }
    /* one batch-1 pass per target, so its features match a single run's bit for bit */
    for (int m = 0; m < M; m++) {
        if ((st = ge_vgg_forward(vgg, target + m * 3 * RR, 1, o->R, o->R, o->deepest)) != GE_OK)
            return st;
        for (int i = 0; i < o->n_layers; i++) {
            ge_obj_layer *l = &o->layers[i];
            const float *f = ge_vgg_feature(vgg, l->name, &l->c, &l->h, &l->w);
            if (!f)
                return ge_fail(GE_ERR_ARG, "layer '%s' is not in this VGG (it has conv1_1 .. %s)",
                               l->name, ge_vgg_last_layer(vgg));
            size_t hw = (size_t)l->h * l->w, chw = (size_t)l->c * hw, cc = (size_t)l->c * l->c;
            if (m == 0) {
                l->target = ge_alloc_floats((size_t)M * chw);
                l->grad = ge_alloc_floats((size_t)K * chw);
                l->mask_sum = ge_calloc((size_t)M, sizeof(double));
                if (!l->target || !l->grad || !l->mask_sum) return GE_ERR_NOMEM;
                if (mask && !(l->mask = ge_alloc_floats((size_t)M * hw))) return GE_ERR_NOMEM;
                if (l->style) {
                    l->target_gram = ge_alloc_floats((size_t)M * cc);
                    l->gram = ge_alloc_floats(cc);
                    l->dgram = ge_alloc_floats(cc);
                    if (!l->target_gram || !l->gram || !l->dgram) return GE_ERR_NOMEM;
                }
            }
            float *lt = l->target + m * chw, *lm = l->mask ? l->mask + m * hw : NULL;
            memcpy(lt, f, chw * sizeof(float));
            l->mask_sum[m] = (double)hw;
            if (mask) {
                float *r = NULL;
                if ((st = ge_image_resize(&r, mask + m * RR, 1, o->R, o->R, l->h, l->w)) != GE_OK)
                    return st;
                double s = 0;
                for (size_t k = 0; k < hw; k++) {
                    lm[k] = fminf(fmaxf(r[k], 0.f), 1.f);
                    s += lm[k];
                }
                free(r);
                l->mask_sum[m] = s > 1e-6 ? s : 1e-6;
            }
            if (l->style)
                ge_gram_forward(l->target_gram + m * cc, lt, lm, 1, l->c, hw, 1.f / (float)chw);
        }
    }
    return GE_OK;
}

void ge_objective_free(ge_objective *o) {
    if (!o) return;
    for (int i = 0; i < o->n_layers; i++) {
        ge_obj_layer *l = &o->layers[i];
        free(l->target);
        free(l->mask);
        free(l->target_gram);
        free(l->gram);
        free(l->dgram);
        free(l->grad);
        free(l->mask_sum);
    }
    free(o->mask_sum);
    free(o->img);
    free(o->dimg);
    free(o->terms);
    memset(o, 0, sizeof *o);
}

double ge_objective_eval(void *ctx, const float *x, float *grad) {
    ge_objective *o = ctx;
    const ge_edit_params *p = &o->p;
    int K = o->K, per = o->K / o->M; /* sample k matches target k / per */
    size_t RR = (size_t)o->R * o->R, img1 = 3 * RR, L = o->L;
    o->evals++;
    o->status = GE_OK;
    ge_gen_call call = p->call;
    call.truncation_psi = 1.f;
    if ((o->status = ge_generator_forward(o->g, o->img, x, p->space, K, &call)) != GE_OK)
        return NAN;
    memset(o->dimg, 0, (size_t)K * img1 * sizeof(float));
    memset(o->terms, 0, (size_t)K * GE_N_TERMS * sizeof(double));
    /* pixel */
    if (p->w_pixel > 0) {
        for (int k = 0; k < K; k++) {
            int m = k / per;
            float scale = (float)(1.0 / (3.0 * o->mask_sum[m]));
            const float *a = o->img + k * img1, *t = o->target + m * img1;
            const float *mk = o->mask ? o->mask + m * RR : NULL;
            float ws = scale * p->w_pixel; /* one pass: value and gradient, weighted */
            double v = p->pixel_l1 ? ge_loss_l1(o->dimg + k * img1, a, t, mk, 1, 3, RR, ws)
                                   : ge_loss_l2(o->dimg + k * img1, a, t, mk, 1, 3, RR, ws);
            o->terms[k * GE_N_TERMS + GE_TERM_PIXEL] = v / p->w_pixel;
        }
    }
    /* perceptual and style, through one VGG forward and one backward */
    if (o->n_layers > 0) {
        if ((o->status = ge_vgg_forward(o->vgg, o->img, K, o->R, o->R, o->deepest)) != GE_OK)
            return NAN;
        const char *names[GE_MAX_LAYERS];
        const float *grads[GE_MAX_LAYERS];
        for (int i = 0; i < o->n_layers; i++) {
            ge_obj_layer *l = &o->layers[i];
            int c, h, w;
            const float *f = ge_vgg_feature(o->vgg, l->name, &c, &h, &w);
            size_t hw = (size_t)h * w, chw = (size_t)c * hw;
            memset(l->grad, 0, (size_t)K * chw * sizeof(float));
            for (int k = 0; k < K; k++) {
                int m = k / per;
                const float *fk = f + k * chw, *tk = l->target + m * chw;
                const float *mk = l->mask ? l->mask + m * hw : NULL;
                float *gk = l->grad + k * chw;
                if (l->perceptual) {
                    float scale = (float)(1.0 / ((double)c * l->mask_sum[m]));
                    double v = ge_loss_l2(gk, fk, tk, mk, 1, c, hw, scale * p->w_perceptual);
                    o->terms[k * GE_N_TERMS + GE_TERM_PERCEPTUAL] += v / p->w_perceptual;
                }
                if (l->style) {
                    size_t cc = (size_t)c * c;
                    const float *tg = l->target_gram + m * cc;
                    ge_gram_forward(l->gram, fk, mk, 1, c, hw, 1.f / (float)chw);
                    double v = 0;
                    for (size_t q = 0; q < cc; q++) {
                        double d = (double)l->gram[q] - tg[q];
                        v += d * d;
                        l->dgram[q] = (float)(2.0 * d / (double)cc * p->w_style);
                    }
                    o->terms[k * GE_N_TERMS + GE_TERM_STYLE] += v / (double)cc;
                    ge_gram_backward(gk, l->dgram, fk, mk, 1, c, hw, 1.f / (float)chw);
                }
            }
            names[i] = l->name;
            grads[i] = l->grad;
        }
        if ((o->status = ge_vgg_backward(o->vgg, o->dimg, o->n_layers, names, grads)) != GE_OK)
            return NAN;
    }
    /* generator backward to the latent, then the regulariser */
    memset(grad, 0, (size_t)K * L * sizeof(float));
    if ((o->status = ge_generator_backward(o->g, grad, o->dimg)) != GE_OK) return NAN;
    double total = 0;
    for (int k = 0; k < K; k++) {
        double *t = o->terms + k * GE_N_TERMS;
        if (p->w_reg > 0) {
            double s = 0;
            const float *xk = x + k * L, *sk = o->start + k * L;
            float *gk = grad + k * L;
            for (size_t i = 0; i < L; i++) {
                double d = (double)xk[i] - sk[i];
                s += d * d;
                gk[i] += (float)(2.0 * p->w_reg * d / (double)L);
            }
            t[GE_TERM_REG] = s / (double)L;
        }
        t[GE_TERM_TOTAL] = p->w_pixel * t[GE_TERM_PIXEL] + p->w_perceptual * t[GE_TERM_PERCEPTUAL] +
                           p->w_style * t[GE_TERM_STYLE] + p->w_reg * t[GE_TERM_REG];
        total += t[GE_TERM_TOTAL];
    }
    if (!isfinite(total)) {
        size_t n = (size_t)K * img1, i = 0;
        while (i < n && isfinite(o->img[i]))
            i++;
        o->status =
            i < n ? ge_fail(GE_ERR_NUMERIC,
                            "the generator's image holds NaN or Inf (restart %zu; bad weights?)",
                            i / img1)
                  : ge_fail(GE_ERR_NUMERIC, "the loss is NaN or Inf");
        return NAN;
    }
    return total;
}
