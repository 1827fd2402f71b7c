/* edit.c - the optimisation loop behind project, draw and edit: choose the
 * K starting latents (random, mean of N samples, or given), run Adam or
 * L-BFGS on all K at once through the objective, record the loss history of
 * every restart and remember each one's lowest-loss step, honour a stop
 * request between steps, and return the best restart's best latent and image
 * (so a run stopped early, or one whose Adam steps overshoot at the end,
 * still returns the best point it has seen). ge_edit_run_many packs several
 * images into the batch (M images x K restarts, image-major), each with its
 * own seed and target; Adam updates every coordinate on its own, so an
 * image's path depends on its batchmates only through the networks' batched
 * arithmetic (see docs/batch.md). */
#include "edit/objective.h"
#include "optim/optim.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ge_edit_params_init(ge_edit_params *p, const ge_generator *g) {
    memset(p, 0, sizeof *p);
    const ge_gen_info *in = g ? ge_generator_info(g) : NULL;
    p->space = in && in->w_dim ? GE_LATENT_WPLUS : GE_LATENT_Z;
    p->optimizer = GE_OPT_ADAM;
    p->steps = 1000;
    p->lr = 0.003f;
    p->w_pixel = 0.3f;
    p->w_perceptual = 0.7f;
    p->layers = "conv1_1,conv1_2,conv2_1,conv2_2,conv3_1";
    p->init = GE_INIT_MEAN;
    p->init_samples = 10;
    p->restarts = 1;
    ge_gen_call_init(&p->call);
}

void ge_edit_result_free(ge_edit_result *r) {
    if (!r) return;
    free(r->latent);
    free(r->image);
    free(r->start_image);
    free(r->history);
    free(r->restart_loss);
    free(r->snapshots);
    free(r->snapshot_steps);
    memset(r, 0, sizeof *r);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

ge_status ge_edit_start_latents(ge_generator *g, const ge_edit_params *p, uint64_t seed, int K,
                                float *start) {
    const ge_gen_info *in = ge_generator_info(g);
    size_t L = ge_generator_latent_size(g, p->space);
    if (p->init == GE_INIT_GIVEN) {
        for (int k = 0; k < K; k++)
            memcpy(start + k * L, p->init_latent, L * sizeof(float));
        return GE_OK;
    }
    int N = p->init == GE_INIT_MEAN ? p->init_samples : 1;
    ge_rng rng;
    ge_rng_seed(&rng, seed);
    size_t zn = (size_t)N * in->z_dim, wsn = (size_t)N * in->num_ws * in->w_dim;
    float *z = ge_alloc_floats(zn), *ws = p->space == GE_LATENT_Z ? NULL : ge_alloc_floats(wsn);
    if (!z || (p->space != GE_LATENT_Z && !ws)) {
        free(z);
        free(ws);
        return GE_ERR_NOMEM;
    }
    ge_status s = GE_OK;
    for (int k = 0; k < K && s == GE_OK; k++) {
        if (in->z_dist == GE_ZDIST_UNIFORM)
            ge_rng_fill_uniform(&rng, z, zn, -1.f, 1.f);
        else
            ge_rng_fill_normal(&rng, z, zn);
        const float *src = z;
        size_t stride = (size_t)in->z_dim;
        if (p->space != GE_LATENT_Z) {
            ge_gen_call call;
            ge_gen_call_init(&call);
            if ((s = ge_generator_mapping(g, ws, z, N, &call)) != GE_OK) break;
            src = ws;
            stride = (size_t)in->num_ws * in->w_dim;
        }
        /* mean over the N samples; for w the first row of ws (all rows equal) */
        float *dst = start + k * L;
        for (size_t i = 0; i < L; i++) {
            double acc = 0;
            for (int j = 0; j < N; j++)
                acc += src[j * stride + i];
            dst[i] = (float)(acc / N);
        }
    }
    free(z);
    free(ws);
    return s;
}

/* The checks of ge_edit_check but the objective's. */
static ge_status check_params(const ge_generator *g, const ge_edit_params *p) {
    const ge_gen_info *in = ge_generator_info(g);
    if (p->steps < 1 || p->steps > 1000000)
        return ge_fail(GE_ERR_ARG, "steps must be 1..1000000 (got %d)", p->steps);
    if (!(p->lr > 0) || !isfinite(p->lr))
        return ge_fail(GE_ERR_ARG, "the learning rate must be > 0");
    if (p->restarts < 1 || p->restarts > 256)
        return ge_fail(GE_ERR_ARG, "restarts must be 1..256 (got %d)", p->restarts);
    if (p->init == GE_INIT_MEAN && (p->init_samples < 1 || p->init_samples > 100000))
        return ge_fail(GE_ERR_ARG, "init samples must be 1..100000 (got %d)", p->init_samples);
    if (p->init != GE_INIT_MEAN && p->init != GE_INIT_RANDOM && p->init != GE_INIT_GIVEN)
        return ge_fail(GE_ERR_ARG, "unknown init mode %d", (int)p->init);
    if (p->optimizer != GE_OPT_ADAM && p->optimizer != GE_OPT_LBFGS)
        return ge_fail(GE_ERR_ARG, "unknown optimiser %d", (int)p->optimizer);
    if (p->space != GE_LATENT_Z && p->space != GE_LATENT_W && p->space != GE_LATENT_WPLUS)
        return ge_fail(GE_ERR_ARG, "unknown latent space %d", (int)p->space);
    if (p->space != GE_LATENT_Z && !in->w_dim)
        return ge_fail(GE_ERR_ARG, "%s has only a z latent space", in->arch);
    if (p->history_every < 0) return ge_fail(GE_ERR_ARG, "the snapshot interval must be >= 0");
    if (p->init == GE_INIT_GIVEN) {
        if (!p->init_latent) return ge_fail(GE_ERR_ARG, "no initial latent given");
        size_t L = ge_generator_latent_size(g, p->space);
        for (size_t i = 0; i < L; i++)
            if (!isfinite(p->init_latent[i]))
                return ge_fail(GE_ERR_NUMERIC, "the initial latent holds NaN or Inf");
    }
    return GE_OK;
}

ge_status ge_edit_check(const ge_generator *g, const ge_vgg *vgg, const float *target,
                        const float *mask, const ge_edit_params *p) {
    ge_status s = check_params(g, p);
    return s != GE_OK ? s : ge_objective_check(g, vgg, target, mask, p);
}

/* GE_ERR_NUMERIC with "<where>: <the objective's message>". */
static ge_status numeric_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static ge_status numeric_fail(const char *fmt, ...) {
    char why[512], where[128];
    snprintf(why, sizeof why, "%s", ge_errmsg()); /* a copy: ge_fail rewrites the message */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof where, fmt, ap);
    va_end(ap);
    return ge_fail(GE_ERR_NUMERIC, "%s: %s", where, why);
}

/* Index of the smallest of v (K); the first one on ties. */
static int argmin(const double *v, int K, size_t stride) {
    int b = 0;
    for (int k = 1; k < K; k++)
        if (v[k * stride] < v[b * stride]) b = k;
    return b;
}

/* M images x KK restarts in one batch of K = M * KK; out (M). With M = 1
 * this is exactly the single-image run. */
static ge_status run_batch(ge_generator *g, ge_vgg *vgg, int M, const float *target,
                           const float *mask, const uint64_t *seeds, const ge_edit_params *p,
                           ge_edit_result *out) {
    for (int m = 0; m < M; m++)
        memset(&out[m], 0, sizeof out[m]);
    const ge_gen_info *in = ge_generator_info(g);
    int KK = p->restarts, K = M * KK, R = in->resolution;
    size_t L = ge_generator_latent_size(g, p->space), KL = (size_t)K * L, img1 = (size_t)3 * R * R;
    float *x = ge_alloc_floats(KL), *grad = ge_alloc_floats(KL), *start = ge_alloc_floats(KL);
    float *start_imgs = ge_alloc_floats(K * img1);
    /* per sample: every step's terms, and the lowest-loss step's latent and image */
    double *hist =
        ge_calloc((size_t)(p->steps + 1) * K, GE_N_TERMS * sizeof(double)); /* (steps+1, K, T) */
    double *best_f = ge_calloc((size_t)K, sizeof(double));                  /* (K) */
    int *best_at = ge_calloc((size_t)K, sizeof(int));                       /* (K) */
    float *best_lat = ge_alloc_floats(KL),
          *best_img = ge_alloc_floats(K * img1); /* (K, L), (K, 3, R, R) */
    ge_objective obj;
    memset(&obj, 0, sizeof obj);
    ge_adam adam;
    memset(&adam, 0, sizeof adam);
    ge_lbfgs *lb = NULL;
    ge_status s = GE_OK;
    double t0 = now();
    int n_snap_max = p->history_every > 0 ? p->steps / p->history_every + 2 : 0;
    int oom = !x || !grad || !start || !start_imgs || !hist || !best_f || !best_at || !best_lat ||
              !best_img;
    for (int m = 0; m < M; m++) {
        ge_edit_result *o = &out[m];
        o->history = ge_calloc((size_t)p->steps + 1, GE_N_TERMS * sizeof(double));
        o->restart_loss = ge_calloc((size_t)KK, sizeof(double));
        o->latent = ge_alloc_floats(L);
        o->image = ge_alloc_floats(img1);
        o->start_image = ge_alloc_floats(img1);
        if (n_snap_max) {
            o->snapshots = ge_alloc_floats((size_t)n_snap_max * img1);
            o->snapshot_steps = ge_calloc((size_t)n_snap_max, sizeof(int));
        }
        oom |= !o->history || !o->restart_loss || !o->latent || !o->image || !o->start_image ||
               (n_snap_max && (!o->snapshots || !o->snapshot_steps));
        o->latent_size = L;
    }
    if (oom) {
        s = ge_fail(GE_ERR_NOMEM, "out of memory for %d restarts of %d steps", K, p->steps);
        goto done;
    }
    for (int k = 0; k < K; k++)
        best_f[k] = INFINITY;
    for (int m = 0; m < M; m++)
        if ((s = ge_edit_start_latents(g, p, seeds[m], KK, start + (size_t)m * KK * L)) != GE_OK)
            goto done;
    memcpy(x, start, KL * sizeof(float));
    if ((s = ge_objective_init_many(&obj, g, vgg, M, target, mask, p, K, start)) != GE_OK)
        goto done;
    if (p->optimizer == GE_OPT_ADAM) {
        ge_adam_params ap;
        ge_adam_params_init(&ap);
        ap.lr = p->lr;
        if ((s = ge_adam_init(&adam, KL, &ap)) != GE_OK) goto done;
    } else {
        ge_lbfgs_params lp;
        ge_lbfgs_params_init(&lp);
        if ((s = ge_lbfgs_new(&lb, KL, &lp)) != GE_OK) goto done;
    }
    int clamp_z =
        p->space == GE_LATENT_Z && in->z_dist == GE_ZDIST_UNIFORM && p->optimizer == GE_OPT_ADAM;
    double f = ge_objective_eval(&obj, x, grad);
    if (!isfinite(f)) {
        s = obj.status != GE_ERR_NUMERIC ? obj.status : numeric_fail("at the start");
        goto done;
    }
    memcpy(start_imgs, obj.img, K * img1 * sizeof(float));
    int step = 0, finished = 0, stopped = 0;
    for (;;) {
        /* record the state at `step`: x, obj.terms and obj.img all describe it */
        memcpy(hist + (size_t)step * K * GE_N_TERMS, obj.terms,
               (size_t)K * GE_N_TERMS * sizeof(double));
        for (int k = 0; k < K; k++)
            if (obj.terms[k * GE_N_TERMS + GE_TERM_TOTAL] < best_f[k]) {
                best_f[k] = obj.terms[k * GE_N_TERMS + GE_TERM_TOTAL];
                best_at[k] = step;
                memcpy(best_lat + k * L, x + k * L, L * sizeof(float));
                memcpy(best_img + k * img1, obj.img + k * img1, img1 * sizeof(float));
            }
        int b0 = argmin(obj.terms, KK, GE_N_TERMS); /* image 0's best restart now */
        if (n_snap_max && (step % p->history_every == 0 || step == p->steps))
            for (int m = 0; m < M; m++) {
                ge_edit_result *o = &out[m];
                int b = m * KK + argmin(obj.terms + (size_t)m * KK * GE_N_TERMS, KK, GE_N_TERMS);
                if (o->n_snapshots < n_snap_max) {
                    memcpy(o->snapshots + o->n_snapshots * img1, obj.img + b * img1,
                           img1 * sizeof(float));
                    o->snapshot_steps[o->n_snapshots++] = step;
                }
            }
        if (step > 0 && p->progress &&
            p->progress(p->user, step, p->steps, obj.terms + b0 * GE_N_TERMS, now() - t0))
            stopped = 1;
        if (p->stop && *p->stop) stopped = 1;
        if (step == p->steps || stopped || finished) break;
        if (p->optimizer == GE_OPT_ADAM) {
            ge_adam_step(&adam, x, grad);
            if (clamp_z)
                for (size_t i = 0; i < KL; i++)
                    x[i] = fminf(fmaxf(x[i], -1.f), 1.f);
            f = ge_objective_eval(&obj, x, grad);
            if (!isfinite(f)) {
                s = obj.status != GE_ERR_NUMERIC
                        ? obj.status
                        : numeric_fail("at step %d (try a smaller learning rate)", step + 1);
                goto done;
            }
        } else {
            int conv = 0;
            int ls_evals = 0; /* obj.evals already counts every evaluation */
            s = ge_lbfgs_step(lb, x, &f, grad, ge_objective_eval, &obj, &ls_evals, &conv);
            if (s != GE_OK) {
                if (obj.status != GE_OK && obj.status != GE_ERR_NUMERIC) s = obj.status;
                goto done;
            }
            /* after a successful step the last evaluation was at the accepted x, so
               obj.terms and obj.img describe it; after a failed one, evaluate x again */
            if (conv) f = ge_objective_eval(&obj, x, grad);
            if (!isfinite(f)) {
                s = obj.status != GE_ERR_NUMERIC ? obj.status
                                                 : numeric_fail("at step %d", step + 1);
                goto done;
            }
            finished = conv;
        }
        step++;
    }
    double secs = now() - t0;
    for (int m = 0; m < M; m++) {
        ge_edit_result *o = &out[m];
        size_t k0 = (size_t)m * KK;
        o->steps_done = step;
        o->stopped = stopped;
        int b = argmin(best_f + k0, KK, 1);
        o->best_restart = b;
        o->best_step = best_at[k0 + b];
        memcpy(o->restart_loss, best_f + k0, (size_t)KK * sizeof(double));
        for (int i = 0; i <= step; i++)
            memcpy(o->history + (size_t)i * GE_N_TERMS,
                   hist + ((size_t)i * K + k0 + b) * GE_N_TERMS, GE_N_TERMS * sizeof(double));
        memcpy(o->latent, best_lat + (k0 + b) * L, L * sizeof(float));
        memcpy(o->image, best_img + (k0 + b) * img1, img1 * sizeof(float));
        memcpy(o->start_image, start_imgs + (k0 + b) * img1, img1 * sizeof(float));
        o->evals = obj.evals;
        o->seconds = secs;
    }
done:
    ge_objective_free(&obj);
    ge_adam_free(&adam);
    ge_lbfgs_free(lb);
    free(x);
    free(grad);
    free(start);
    free(start_imgs);
    free(hist);
    free(best_f);
    free(best_at);
    free(best_lat);
    free(best_img);
    if (s != GE_OK)
        for (int m = 0; m < M; m++)
            ge_edit_result_free(&out[m]);
    return s;
}

ge_status ge_edit_run(ge_generator *g, ge_vgg *vgg, const float *target, const float *mask,
                      const ge_edit_params *p, ge_edit_result *out) {
    memset(out, 0, sizeof *out);
    ge_status s = ge_edit_check(g, vgg, target, mask, p);
    if (s != GE_OK) return s;
    return run_batch(g, vgg, 1, target, mask, &p->seed, p, out);
}

ge_status ge_edit_run_many(ge_generator *g, ge_vgg *vgg, int n, const float *targets,
                           const float *masks, const uint64_t *seeds, const ge_edit_params *p,
                           ge_edit_result *out) {
    if (n < 1 || n > 4096)
        return ge_fail(GE_ERR_ARG, "images per batch must be 1..4096 (got %d)", n);
    for (int m = 0; m < n; m++)
        memset(&out[m], 0, sizeof out[m]);
    if (!targets || !seeds) return ge_fail(GE_ERR_ARG, "no targets or seeds given");
    if (n > 1 && p->optimizer != GE_OPT_ADAM)
        return ge_fail(GE_ERR_ARG, "L-BFGS couples the batch through its line search: "
                                   "project one image at a time with it");
    if ((long)n * p->restarts > 4096)
        return ge_fail(GE_ERR_ARG, "%d images x %d restarts is too large a batch", n, p->restarts);
    ge_status s = check_params(g, p);
    if (s == GE_OK) s = ge_objective_check(g, vgg, NULL, NULL, p);
    if (s != GE_OK) return s;
    size_t RR = (size_t)ge_generator_info(g)->resolution * ge_generator_info(g)->resolution;
    for (int m = 0; m < n; m++)
        if ((s = ge_objective_check(g, vgg, targets + m * 3 * RR, masks ? masks + m * RR : NULL,
                                    p)) != GE_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", ge_errmsg()); /* ge_fail rewrites the message */
            return ge_fail(s, "target image %d: %s", m, why);
        }
    return run_batch(g, vgg, n, targets, masks, seeds, p, out);
}
