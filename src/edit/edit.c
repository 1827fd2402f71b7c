/* edit.c - the optimisation loop behind project, draw and edit: choose the
 * K starting latents (random, mean of N samples, or given), run Adam or
 * L-BFGS on all K at once through the objective, record the loss history of
 * the best restart, honour a stop request between steps, and return the best
 * restart's latent and image. */
#include "edit/objective.h"
#include "optim/optim.h"

#include <math.h>
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
    free(r->snapshots);
    free(r->snapshot_steps);
    memset(r, 0, sizeof *r);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Fills start (K, L) with the starting latents in p->space. */
static ge_status make_starts(ge_generator *g, const ge_edit_params *p, int K, float *start) {
    const ge_gen_info *in = ge_generator_info(g);
    size_t L = ge_generator_latent_size(g, p->space);
    if (p->init == GE_INIT_GIVEN) {
        for (int k = 0; k < K; k++) memcpy(start + k * L, p->init_latent, L * sizeof(float));
        return GE_OK;
    }
    int N = p->init == GE_INIT_MEAN ? p->init_samples : 1;
    ge_rng rng;
    ge_rng_seed(&rng, p->seed);
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
            for (int j = 0; j < N; j++) acc += src[j * stride + i];
            dst[i] = (float)(acc / N);
        }
    }
    free(z);
    free(ws);
    return s;
}

ge_status ge_edit_run(ge_generator *g, ge_vgg *vgg, const float *target, const float *mask,
                      const ge_edit_params *p, ge_edit_result *out) {
    memset(out, 0, sizeof *out);
    const ge_gen_info *in = ge_generator_info(g);
    if (p->steps < 1 || p->steps > 1000000) return ge_fail(GE_ERR_ARG, "steps must be 1..1000000 (got %d)", p->steps);
    if (!(p->lr > 0) || !isfinite(p->lr)) return ge_fail(GE_ERR_ARG, "the learning rate must be > 0");
    if (p->restarts < 1 || p->restarts > 256) return ge_fail(GE_ERR_ARG, "restarts must be 1..256");
    if (p->init == GE_INIT_MEAN && (p->init_samples < 1 || p->init_samples > 100000))
        return ge_fail(GE_ERR_ARG, "init samples must be 1..100000");
    if (p->init == GE_INIT_GIVEN && !p->init_latent) return ge_fail(GE_ERR_ARG, "no initial latent given");
    if (p->space != GE_LATENT_Z && !in->w_dim)
        return ge_fail(GE_ERR_ARG, "%s has only a z latent space", in->arch);
    int K = p->restarts, R = in->resolution;
    size_t L = ge_generator_latent_size(g, p->space), KL = (size_t)K * L, img1 = (size_t)3 * R * R;
    float *x = ge_alloc_floats(KL), *grad = ge_alloc_floats(KL), *start = ge_alloc_floats(KL);
    float *start_imgs = ge_alloc_floats(K * img1);
    ge_objective obj;
    memset(&obj, 0, sizeof obj);
    ge_adam adam;
    memset(&adam, 0, sizeof adam);
    ge_lbfgs *lb = NULL;
    ge_status s = GE_OK;
    double t0 = now();
    int n_snap_max = p->history_every > 0 ? p->steps / p->history_every + 2 : 0;
    out->history = ge_calloc((size_t)p->steps + 1, GE_N_TERMS * sizeof(double));
    out->latent = ge_alloc_floats(L);
    out->image = ge_alloc_floats(img1);
    out->start_image = ge_alloc_floats(img1);
    if (n_snap_max) {
        out->snapshots = ge_alloc_floats((size_t)n_snap_max * img1);
        out->snapshot_steps = ge_calloc((size_t)n_snap_max, sizeof(int));
    }
    if (!x || !grad || !start || !start_imgs || !out->history || !out->latent || !out->image ||
        !out->start_image || (n_snap_max && (!out->snapshots || !out->snapshot_steps))) {
        s = GE_ERR_NOMEM;
        goto done;
    }
    out->latent_size = L;
    if (p->init == GE_INIT_GIVEN)
        for (size_t i = 0; i < L; i++)
            if (!isfinite(p->init_latent[i])) {
                s = ge_fail(GE_ERR_NUMERIC, "the initial latent holds NaN or Inf");
                goto done;
            }
    if ((s = make_starts(g, p, K, start)) != GE_OK) goto done;
    memcpy(x, start, KL * sizeof(float));
    if ((s = ge_objective_init(&obj, g, vgg, target, mask, p, K, start)) != GE_OK) goto done;
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
    int clamp_z = p->space == GE_LATENT_Z && in->z_dist == GE_ZDIST_UNIFORM &&
                  p->optimizer == GE_OPT_ADAM;
    double f = ge_objective_eval(&obj, x, grad);
    if (!isfinite(f)) {
        s = ge_fail(GE_ERR_NUMERIC, "the loss at the start is NaN or Inf: %s", ge_errmsg());
        goto done;
    }
    memcpy(start_imgs, obj.img, K * img1 * sizeof(float));
    int step = 0, finished = 0;
    for (;;) {
        /* record the state at `step` (terms of the best restart right now) */
        int b = 0;
        for (int k = 1; k < K; k++)
            if (obj.terms[k * GE_N_TERMS] < obj.terms[b * GE_N_TERMS]) b = k;
        memcpy(out->history + (size_t)step * GE_N_TERMS, obj.terms + b * GE_N_TERMS,
               GE_N_TERMS * sizeof(double));
        if (n_snap_max && (step % p->history_every == 0 || step == p->steps) &&
            out->n_snapshots < n_snap_max) {
            memcpy(out->snapshots + out->n_snapshots * img1, obj.img + b * img1, img1 * sizeof(float));
            out->snapshot_steps[out->n_snapshots++] = step;
        }
        if (step > 0 && p->progress &&
            p->progress(p->user, step, p->steps, obj.terms + b * GE_N_TERMS, now() - t0))
            out->stopped = 1;
        if (p->stop && *p->stop) out->stopped = 1;
        if (step == p->steps || out->stopped || finished) break;
        if (p->optimizer == GE_OPT_ADAM) {
            ge_adam_step(&adam, x, grad);
            if (clamp_z)
                for (size_t i = 0; i < KL; i++) x[i] = fminf(fmaxf(x[i], -1.f), 1.f);
            f = ge_objective_eval(&obj, x, grad);
            if (!isfinite(f)) {
                s = ge_fail(GE_ERR_NUMERIC, "the loss became NaN or Inf at step %d (try a smaller --lr)", step + 1);
                goto done;
            }
        } else {
            int conv = 0;
            s = ge_lbfgs_step(lb, x, &f, grad, ge_objective_eval, &obj, &obj.evals, &conv);
            if (s != GE_OK) goto done;
            /* after a successful step the last evaluation was at the accepted x, so
               obj.terms and obj.img describe it; after a failed one, evaluate x again */
            if (conv) f = ge_objective_eval(&obj, x, grad);
            if (!isfinite(f)) {
                s = ge_fail(GE_ERR_NUMERIC, "the loss became NaN or Inf at step %d", step + 1);
                goto done;
            }
            finished = conv;
        }
        step++;
    }
    out->steps_done = step;
    int b = 0;
    for (int k = 1; k < K; k++)
        if (obj.terms[k * GE_N_TERMS] < obj.terms[b * GE_N_TERMS]) b = k;
    out->best_restart = b;
    memcpy(out->latent, x + b * L, L * sizeof(float));
    memcpy(out->image, obj.img + b * img1, img1 * sizeof(float));
    memcpy(out->start_image, start_imgs + b * img1, img1 * sizeof(float));
    out->evals = obj.evals;
    out->seconds = now() - t0;
done:
    ge_objective_free(&obj);
    ge_adam_free(&adam);
    ge_lbfgs_free(lb);
    free(x);
    free(grad);
    free(start);
    free(start_imgs);
    if (s != GE_OK) ge_edit_result_free(out);
    return s;
}
