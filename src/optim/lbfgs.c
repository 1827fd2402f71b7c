/* lbfgs.c - limited-memory BFGS with a strong-Wolfe line search.
 *
 * Two-loop recursion for the direction (Nocedal & Wright alg. 7.4), initial
 * Hessian scaling gamma = s'y / y'y, and the bracketing + zoom line search of
 * algorithms 3.5 / 3.6 with cubic interpolation (the same scheme PyTorch's
 * LBFGS uses with line_search_fn="strong_wolfe"). Vectors are float; inner
 * products are accumulated in double. All memory is allocated in _new. */
#include "optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ge_lbfgs {
    size_t n;
    ge_lbfgs_params p;
    int count, head;   /* pairs stored, index of the oldest */
    float *s, *y;      /* (history, n) */
    double *rho, *alpha;
    float *d, *x0, *g0, *xt, *gt; /* (n) direction, start point/gradient, trial point/gradient */
    int iter;
};

void ge_lbfgs_params_init(ge_lbfgs_params *p) {
    p->history = 10;
    p->c1 = 1e-4;
    p->c2 = 0.9;
    p->max_ls_evals = 25;
    p->tol_grad = 1e-7;
    p->tol_change = 1e-9;
    p->lr = 1.f;
}

void ge_lbfgs_free(ge_lbfgs *o) {
    if (!o) return;
    free(o->s);
    free(o->y);
    free(o->rho);
    free(o->alpha);
    free(o->d);
    free(o->x0);
    free(o->g0);
    free(o->xt);
    free(o->gt);
    free(o);
}

ge_status ge_lbfgs_new(ge_lbfgs **out, size_t n, const ge_lbfgs_params *p) {
    *out = NULL;
    if (p->history < 1 || p->history > 1000 || p->max_ls_evals < 1)
        return ge_fail(GE_ERR_ARG, "L-BFGS: history must be 1..1000 and line-search evaluations >= 1");
    ge_lbfgs *o = ge_calloc(1, sizeof *o);
    if (!o) return GE_ERR_NOMEM;
    o->n = n;
    o->p = *p;
    size_t hn;
    if (!ge_mul_ok((size_t)p->history, n, &hn)) {
        free(o);
        return ge_fail(GE_ERR_NOMEM, "L-BFGS history too large");
    }
    o->s = ge_malloc(hn, sizeof(float));
    o->y = ge_malloc(hn, sizeof(float));
    o->rho = ge_malloc((size_t)p->history, sizeof(double));
    o->alpha = ge_malloc((size_t)p->history, sizeof(double));
    o->d = ge_malloc(n, sizeof(float));
    o->x0 = ge_malloc(n, sizeof(float));
    o->g0 = ge_malloc(n, sizeof(float));
    o->xt = ge_malloc(n, sizeof(float));
    o->gt = ge_malloc(n, sizeof(float));
    if (!o->s || !o->y || !o->rho || !o->alpha || !o->d || !o->x0 || !o->g0 || !o->xt || !o->gt) {
        ge_lbfgs_free(o);
        return GE_ERR_NOMEM;
    }
    *out = o;
    return GE_OK;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* d = -H g by the two-loop recursion. */
static void direction(ge_lbfgs *o, const float *g) {
    size_t n = o->n;
    int m = o->p.history;
    for (size_t i = 0; i < n; i++) o->d[i] = -g[i];
    for (int k = o->count - 1; k >= 0; k--) {
        int j = (o->head + k) % m;
        const float *s = o->s + (size_t)j * n, *y = o->y + (size_t)j * n;
        double a = o->rho[j] * dot(s, o->d, n);
        o->alpha[j] = a;
        for (size_t i = 0; i < n; i++) o->d[i] -= (float)(a * y[i]);
    }
    if (o->count > 0) {
        int j = (o->head + o->count - 1) % m;
        const float *s = o->s + (size_t)j * n, *y = o->y + (size_t)j * n;
        double gamma = dot(s, y, n) / dot(y, y, n);
        for (size_t i = 0; i < n; i++) o->d[i] *= (float)gamma;
    }
    for (int k = 0; k < o->count; k++) {
        int j = (o->head + k) % m;
        const float *s = o->s + (size_t)j * n, *y = o->y + (size_t)j * n;
        double b = o->rho[j] * dot(y, o->d, n);
        for (size_t i = 0; i < n; i++) o->d[i] += (float)((o->alpha[j] - b) * s[i]);
    }
}

/* Minimiser of the cubic through (x1, f1, g1), (x2, f2, g2), clipped to bounds. */
static double cubic_min(double x1, double f1, double g1, double x2, double f2, double g2,
                        double lo, double hi) {
    double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
    double d2sq = d1 * d1 - g1 * g2;
    if (d2sq >= 0 && isfinite(d2sq)) {
        double d2 = sqrt(d2sq);
        double t = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                            : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
        if (isfinite(t)) return fmin(fmax(t, lo), hi);
    }
    return (lo + hi) / 2;
}

typedef struct {
    ge_lbfgs *o;
    const float *x0, *d;
    ge_value_grad_fn fn;
    void *ctx;
    int *evals;
} ls_ctx;

/* f and directional derivative at x0 + t d; fills o->xt, o->gt. */
static double eval_at(ls_ctx *c, double t, double *gd) {
    ge_lbfgs *o = c->o;
    for (size_t i = 0; i < o->n; i++) o->xt[i] = c->x0[i] + (float)t * c->d[i];
    double f = c->fn(c->ctx, o->xt, o->gt);
    (*c->evals)++;
    *gd = dot(o->gt, c->d, o->n);
    return f;
}

ge_status ge_lbfgs_step(ge_lbfgs *o, float *x, double *f, float *g, ge_value_grad_fn fn, void *ctx,
                        int *evals, int *converged) {
    size_t n = o->n;
    *converged = 0;
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    if (gmax <= o->p.tol_grad) {
        *converged = 1;
        return GE_OK;
    }
    direction(o, g);
    double gd0 = dot(g, o->d, n);
    if (!(gd0 < 0)) { /* not a descent direction: forget the history, go downhill */
        o->count = 0;
        for (size_t i = 0; i < n; i++) o->d[i] = -g[i];
        gd0 = dot(g, o->d, n);
    }
    double t = o->p.lr;
    if (o->iter == 0) { /* first step: bounded by the gradient size, as PyTorch does */
        double gsum = 0;
        for (size_t i = 0; i < n; i++) gsum += fabs(g[i]);
        t = fmin(1.0, 1.0 / gsum) * o->p.lr;
    }
    memcpy(o->x0, x, n * sizeof(float));
    memcpy(o->g0, g, n * sizeof(float));
    ls_ctx c = {o, o->x0, o->d, fn, ctx, evals};
    double f0 = *f, c1 = o->p.c1, c2 = o->p.c2;
    double t_prev = 0, f_prev = f0, gd_prev = gd0, gd_new;
    double f_new = eval_at(&c, t, &gd_new);
    int ls_evals = 1, done = 0;
    double lo_t = 0, lo_f = f0, lo_gd = gd0, hi_t = 0, hi_f = 0, hi_gd = 0;
    int bracketed = 0;
    /* bracketing phase */
    while (ls_evals < o->p.max_ls_evals) {
        if (!isfinite(f_new) || f_new > f0 + c1 * t * gd0 || (ls_evals > 1 && f_new >= f_prev)) {
            lo_t = t_prev, lo_f = f_prev, lo_gd = gd_prev;
            hi_t = t, hi_f = f_new, hi_gd = gd_new;
            bracketed = 1;
            break;
        }
        if (fabs(gd_new) <= -c2 * gd0) {
            done = 1;
            break;
        }
        if (gd_new >= 0) {
            lo_t = t, lo_f = f_new, lo_gd = gd_new;
            hi_t = t_prev, hi_f = f_prev, hi_gd = gd_prev;
            bracketed = 1;
            break;
        }
        double t_next = cubic_min(t_prev, f_prev, gd_prev, t, f_new, gd_new, t + 0.01 * (t - t_prev),
                                  t * 10);
        t_prev = t, f_prev = f_new, gd_prev = gd_new;
        t = t_next;
        f_new = eval_at(&c, t, &gd_new);
        ls_evals++;
    }
    /* zoom phase */
    while (bracketed && !done && ls_evals < o->p.max_ls_evals) {
        if (fabs(hi_t - lo_t) * sqrt(dot(o->d, o->d, n)) < o->p.tol_change) break;
        double a = fmin(lo_t, hi_t), b = fmax(lo_t, hi_t);
        double tn = isfinite(hi_f) ? cubic_min(lo_t, lo_f, lo_gd, hi_t, hi_f, hi_gd, a, b)
                                   : (lo_t + hi_t) / 2;
        /* keep away from the ends, so the interval shrinks */
        double eps = 0.1 * (b - a);
        if (tn - a < eps || b - tn < eps) tn = (a + b) / 2;
        t = tn;
        f_new = eval_at(&c, t, &gd_new);
        ls_evals++;
        if (!isfinite(f_new) || f_new > f0 + c1 * t * gd0 || f_new >= lo_f) {
            hi_t = t, hi_f = f_new, hi_gd = gd_new;
        } else {
            if (fabs(gd_new) <= -c2 * gd0) {
                done = 1;
                break;
            }
            if (gd_new * (hi_t - lo_t) >= 0) hi_t = lo_t, hi_f = lo_f, hi_gd = lo_gd;
            lo_t = t, lo_f = f_new, lo_gd = gd_new;
        }
    }
    /* accept the best point found: the last trial if it satisfied Wolfe, else lo */
    if (!done) {
        if (lo_t == 0 || !(lo_f < f0)) {
            /* no decrease at all: leave x unchanged */
            o->count = 0;
            *converged = 1;
            if (!isfinite(f_new) && !isfinite(lo_f))
                return ge_fail(GE_ERR_NUMERIC, "L-BFGS: the loss became NaN or Inf");
            return GE_OK;
        }
        t = lo_t;
        f_new = eval_at(&c, t, &gd_new);
    }
    if (!isfinite(f_new)) return ge_fail(GE_ERR_NUMERIC, "L-BFGS: the loss became NaN or Inf");
    /* update the pair history with s = t d, y = g_new - g_old */
    int m = o->p.history;
    int j = o->count < m ? (o->head + o->count) % m : o->head;
    float *s = o->s + (size_t)j * n, *y = o->y + (size_t)j * n;
    for (size_t i = 0; i < n; i++) {
        s[i] = (float)t * o->d[i];
        y[i] = o->gt[i] - o->g0[i];
    }
    double sy = dot(s, y, n);
    if (sy > 1e-10) {
        o->rho[j] = 1.0 / sy;
        if (o->count < m)
            o->count++;
        else
            o->head = (o->head + 1) % m;
    }
    memcpy(x, o->xt, n * sizeof(float));
    memcpy(g, o->gt, n * sizeof(float));
    if (fabs(f_new - *f) < o->p.tol_change) *converged = 1;
    *f = f_new;
    o->iter++;
    return GE_OK;
}
