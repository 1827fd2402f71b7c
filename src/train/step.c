/* step.c - one training step: a discriminator update, a generator update and
 * the generator's moving average, for the DCGANs and for StyleGAN2.
 *
 * Losses (non-saturating logistic, both architectures):
 *   L_D = mean softplus(-D(aug(x))) + mean softplus(D(aug(G(z))))
 *   L_G = mean softplus(-D(aug(G(z))))
 *
 * DCGAN: the B reals and B fakes go through D as one batch of 2B (instance
 * norm is per sample, so that is exactly two batches).
 *
 * StyleGAN2 (StyleGAN2-ADA's loss.py, with DiffAugment as the augmentation):
 * D sees the fakes and the reals as two batches (minibatch-stddev must not
 * mix them); G runs with random noise; mapping.w_avg follows the batch's
 * mean w with beta 0.995. Every r1_every-th step adds the lazy R1 penalty
 *   r1_every * gamma/2 * mean_i |grad_{x_i} sum_j D(aug(x_j))|^2
 * on the reals (gradient taken at the unaugmented image, as ADA does with its
 * augmentation pipe) to that step's D gradient. Its weight gradient is a
 * second derivative; with v = grad_x sum D (held fixed) it equals the
 * derivative of grad_theta sum D along v, which we take as the central
 * difference  [grad_theta sum D(aug(x + h v)) - grad_theta sum D(aug(x - h v))] / 2h
 * with h rms(v) = 1e-3. Where D is smooth this matches a finite difference
 * of the penalty itself to 5e-5 (tests/test_train_sg2.c); a leaky-ReLU D is
 * piecewise linear, and a probe that crosses a kink adds that jump of the
 * weight gradient, which autograd's double backward leaves out (it takes the
 * activation's second derivative as 0). How large that extra term is on a
 * trained D has not been measured.
 * Adam's settings are not rescaled for the lazy interval: the penalty joins
 * the step instead of taking one of its own.
 * Path-length regularisation and style mixing are not implemented.
 *
 * Every random draw comes from T->rng in a fixed order, so a resumed run
 * repeats the same numbers (train.c). */
#include "train/trainer.h"

#include <math.h>
#include <string.h>

#define W_AVG_BETA 0.995f
#define R1_PROBE 1e-3

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static float sigmoidf_(double x) { return (float)(1.0 / (1.0 + exp(-x))); }

static void draw_z(trainer *T, float *z, int n) {
    if (T->zdist == GE_ZDIST_UNIFORM)
        ge_rng_fill_uniform(&T->rng, z, (size_t)n * T->z_dim, -1.f, 1.f);
    else
        ge_rng_fill_normal(&T->rng, z, (size_t)n * T->z_dim);
}

/* Index of the k-th image shown: epoch k / n in a permutation seeded by
 * (seed, epoch) (Fisher-Yates), so the order needs no saved state. */
static int data_index(trainer *T, long long k) {
    int n = T->data.n;
    long long epoch = k / n;
    if (epoch != T->perm_epoch) {
        ge_rng r;
        ge_rng_seed(&r, T->p.seed * 0x9e3779b97f4a7c15ULL + (uint64_t)epoch + 1);
        for (int i = 0; i < n; i++) T->perm[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(ge_rng_u64(&r) % (uint64_t)(i + 1));
            int t = T->perm[i];
            T->perm[i] = T->perm[j];
            T->perm[j] = t;
        }
        T->perm_epoch = epoch;
    }
    return T->perm[k % n];
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* The next B images of the data into dst, each x-flipped with p = 1/2 when
 * mirroring. */
static void load_reals(trainer *T, float *dst) {
    int R = T->R;
    size_t per = T->per;
    for (int i = 0; i < T->B; i++) {
        const float *src = T->data.img + per * data_index(T, T->images + i);
        float *d = dst + per * i;
        int flip = T->p.mirror ? ge_rng_uniform(&T->rng) < 0.5f : 0;
        if (!flip) {
            memcpy(d, src, per * sizeof(float));
            continue;
        }
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < R; y++)
                for (int x = 0; x < R; x++)
                    d[((size_t)c * R + y) * R + x] = src[((size_t)c * R + y) * R + (R - 1 - x)];
    }
}

/* The generator's call for this step: random noise (StyleGAN2) from T->rng. */
static ge_gen_call gen_call(trainer *T) {
    ge_gen_call c;
    ge_gen_call_init(&c);
    if (T->sg2) {
        c.noise = GE_NOISE_RANDOM;
        c.noise_seed = ge_rng_u64(&T->rng);
    }
    return c;
}

/* Logit gradients of the D loss: reals (sign -1) or fakes (+1), added to terms. */
static void d_loss(const float *logits, float *dlogits, int n, int real, double *terms) {
    for (int i = 0; i < n; i++) {
        double l = logits[i];
        if (real) {
            terms[GE_TT_D_REAL] += softplus(-l) / n;
            terms[GE_TT_LOGIT_REAL] += l / n;
            dlogits[i] = -sigmoidf_(-l) / n;
        } else {
            terms[GE_TT_D_FAKE] += softplus(l) / n;
            terms[GE_TT_LOGIT_FAKE] += l / n;
            dlogits[i] = sigmoidf_(l) / n;
        }
    }
}

/* mapping.w_avg <- lerp(mean w of z, w_avg, 0.995), as the mapping network
 * does in training mode. */
static ge_status track_w_avg(trainer *T, const float *z, const ge_gen_call *call) {
    if (!T->w_avg) return GE_OK;
    ge_status s = ge_generator_mapping(T->G, T->ws, z, T->B, call);
    if (s != GE_OK) return s;
    for (int k = 0; k < T->w_dim; k++) {
        double m = 0;
        for (int i = 0; i < T->B; i++) m += T->ws[(size_t)i * T->num_ws * T->w_dim + k];
        m /= T->B;
        T->w_avg[k] = (float)m + (T->w_avg[k] - (float)m) * W_AVG_BETA;
    }
    return GE_OK;
}

ge_status ge_r1_backward(ge_disc *D, ge_diffaug *aug, const float *x, int n, size_t per,
                         double weight, const ge_tensors *grads, float *v, float *xa,
                         float *logits, double *r1) {
    size_t len = (size_t)n * per;
    float *dlogits = logits + n;
    ge_status s;
    memcpy(xa, x, len * sizeof(float));
    if (aug) ge_diffaug_forward(aug, xa);
    if ((s = ge_disc_forward(D, logits, xa, n))) return s;
    for (int i = 0; i < n; i++) dlogits[i] = 1.f;
    memset(v, 0, len * sizeof(float));
    if ((s = ge_disc_backward(D, v, NULL, dlogits))) return s;
    if (aug) ge_diffaug_backward(aug, v);
    double sq = 0;
    for (size_t k = 0; k < len; k++) sq += (double)v[k] * v[k];
    *r1 = sq / n;
    double rms = sqrt(sq / len);
    if (!grads || !(rms > 0) || !isfinite(rms)) return GE_OK; /* flat D: nothing to add */
    double h = R1_PROBE / rms;
    /* d/dtheta weight * sum_i |v_i|^2 / n = (2 weight / n) (d/dx grad_theta sum D) v,
     * on D linearised at x (its activation pattern frozen) */
    float c = (float)(2 * weight / n / (2 * h));
    if ((s = ge_disc_freeze(D, 1))) return s;
    for (int side = 0; side < 2 && s == GE_OK; side++) {
        float sgn = side ? -1.f : 1.f;
        for (size_t k = 0; k < len; k++) xa[k] = x[k] + (float)(sgn * h) * v[k];
        if (aug) ge_diffaug_forward(aug, xa);
        if ((s = ge_disc_forward(D, logits, xa, n))) break;
        for (int i = 0; i < n; i++) dlogits[i] = sgn * c;
        s = ge_disc_backward(D, NULL, grads, dlogits);
    }
    ge_disc_freeze(D, 0);
    return s;
}

static ge_status d_step_dcgan(trainer *T, double *terms) {
    int B = T->B;
    ge_status s;
    draw_z(T, T->z, B);
    float *real = T->x, *fake = T->x + (size_t)B * T->per;
    if ((s = ge_generator_forward(T->G, fake, T->z, GE_LATENT_Z, B, NULL))) return s;
    load_reals(T, real);
    if (T->policy) {
        ge_diffaug_draw(&T->aug_d, &T->rng);
        ge_diffaug_forward(&T->aug_d, T->x);
    }
    if ((s = ge_disc_forward(T->D, T->logits, T->x, 2 * B))) return s;
    d_loss(T->logits, T->dlogits, B, 1, terms);
    d_loss(T->logits + B, T->dlogits + B, B, 0, terms);
    memset(T->dg, 0, T->nd * sizeof(float));
    return ge_disc_backward(T->D, NULL, T->dgrad, T->dlogits);
}

static ge_status d_step_sg2(trainer *T, double *terms) {
    int B = T->B;
    ge_status s;
    size_t n = (size_t)B * T->per;
    float *fake = T->x + n;
    draw_z(T, T->z, B);
    ge_gen_call call = gen_call(T);
    if ((s = track_w_avg(T, T->z, &call))) return s;
    if ((s = ge_generator_forward(T->G, fake, T->z, GE_LATENT_Z, B, &call))) return s;
    load_reals(T, T->xr);
    memcpy(T->x, T->xr, n * sizeof(float));
    if (T->policy) {
        ge_diffaug_draw(&T->aug_r, &T->rng);
        ge_diffaug_draw(&T->aug_f, &T->rng);
        ge_diffaug_forward(&T->aug_r, T->x);
        ge_diffaug_forward(&T->aug_f, fake);
    }
    memset(T->dg, 0, T->nd * sizeof(float));
    for (int real = 0; real < 2; real++) {
        if ((s = ge_disc_forward(T->D, T->logits, real ? T->x : fake, B))) return s;
        d_loss(T->logits, T->dlogits, B, real, terms);
        if ((s = ge_disc_backward(T->D, NULL, T->dgrad, T->dlogits))) return s;
    }
    if (T->p.r1_every > 0 && T->r1_gamma > 0 && (T->step + 1) % T->p.r1_every == 0)
        if ((s = ge_r1_backward(T->D, T->policy ? &T->aug_r : NULL, T->xr, B, T->per,
                                T->p.r1_every * (double)T->r1_gamma / 2, T->dgrad, T->r1v,
                                T->r1x, T->logits, &T->last_r1)))
            return s;
    terms[GE_TT_R1] = T->last_r1;
    return GE_OK;
}

static ge_status g_step(trainer *T, double *terms) {
    int B = T->B;
    size_t n = (size_t)B * T->per;
    float *fake = T->x + n;
    ge_status s;
    draw_z(T, T->z, B);
    ge_gen_call call = gen_call(T);
    if ((s = ge_generator_forward(T->G, fake, T->z, GE_LATENT_Z, B, &call))) return s;
    if (T->policy) {
        ge_diffaug_draw(&T->aug_g, &T->rng);
        ge_diffaug_forward(&T->aug_g, fake);
    }
    if ((s = ge_disc_forward(T->D, T->logits, fake, B))) return s;
    for (int i = 0; i < B; i++) {
        double l = T->logits[i];
        terms[GE_TT_G] += softplus(-l) / B;
        T->dlogits[i] = -sigmoidf_(-l) / B;
    }
    memset(T->dimg, 0, n * sizeof(float));
    if ((s = ge_disc_backward(T->D, T->dimg, NULL, T->dlogits))) return s;
    if (T->policy) ge_diffaug_backward(&T->aug_g, T->dimg);
    memset(T->gg, 0, T->ng * sizeof(float));
    return ge_train_generator_backward(T->G, NULL, T->dimg, T->ggrad);
}

ge_status ge_trainer_step(trainer *T, double *terms) {
    ge_status s;
    for (int k = 0; k < GE_TT_N; k++) terms[k] = 0;
    if ((s = T->sg2 ? d_step_sg2(T, terms) : d_step_dcgan(T, terms))) return s;
    if (!all_finite(T->dg, T->nd))
        return ge_fail(GE_ERR_NUMERIC, "discriminator gradient is not finite at step %ld",
                       T->step + 1);
    ge_adam_step(&T->opt_d, T->d, T->dg);

    if ((s = g_step(T, terms))) return s;
    if (!all_finite(T->gg, T->ng))
        return ge_fail(GE_ERR_NUMERIC, "generator gradient is not finite at step %ld", T->step + 1);
    ge_adam_step(&T->opt_g, T->g, T->gg);

    /* bookkeeping and the EMA (buffers such as w_avg are copied, as ADA does) */
    T->images += T->B;
    T->step++;
    double ema_images = T->p.ema_kimg * 1000.0;
    if (T->p.ema_rampup > 0 && ema_images > T->images * (double)T->p.ema_rampup)
        ema_images = T->images * (double)T->p.ema_rampup;
    float beta = (float)pow(0.5, T->B / (ema_images > 1e-8 ? ema_images : 1e-8));
    for (size_t i = 0; i < T->ng; i++) T->gema[i] = T->g[i] + (T->gema[i] - T->g[i]) * beta;
    if (T->w_avg) memcpy(T->w_avg_ema, T->w_avg, (size_t)T->w_dim * sizeof(float));
    for (int k = 0; k < GE_TT_N; k++)
        if (!isfinite(terms[k]))
            return ge_fail(GE_ERR_NUMERIC, "loss is not finite at step %ld", T->step);
    return GE_OK;
}
