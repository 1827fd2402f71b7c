/* optim.h - optimisers on a flat float vector: Adam and L-BFGS with a
 * strong-Wolfe line search. The objective is a value-and-gradient callback,
 * so the same optimisers serve every latent space and every loss. */
#ifndef GE_OPTIM_H
#define GE_OPTIM_H

#include "core/core.h"

/* Returns f(x) and writes (overwrites) grad (n) = df/dx. A non-finite value
 * aborts the optimiser step with GE_ERR_NUMERIC. */
typedef double (*ge_value_grad_fn)(void *ctx, const float *x, float *grad);

/* ---- Adam (Kingma & Ba; as torch.optim.Adam, no weight decay) ---------- */
typedef struct {
    float lr, beta1, beta2, eps;
} ge_adam_params;

typedef struct {
    size_t n;
    int t;
    ge_adam_params p;
    float *m, *v; /* (n) first and second moments */
} ge_adam;

void ge_adam_params_init(ge_adam_params *p); /* lr 0.003, betas 0.9 / 0.999, eps 1e-8 */
ge_status ge_adam_init(ge_adam *a, size_t n, const ge_adam_params *p);
/* x (n) -= Adam update for gradient g (n). */
void ge_adam_step(ge_adam *a, float *x, const float *g);
void ge_adam_free(ge_adam *a);

/* ---- L-BFGS (Nocedal & Wright, algorithms 7.4, 3.5, 3.6) --------------- */
typedef struct {
    int history;      /* pairs kept (default 10) */
    double c1, c2;    /* Wolfe constants (1e-4, 0.9) */
    int max_ls_evals; /* function evaluations per line search (default 25) */
    double tol_grad;  /* stop when max |g| <= tol_grad (default 1e-7) */
    double tol_change;/* stop when the step changes f or x by less (default 1e-9) */
    float lr;         /* first trial step scale (default 1) */
} ge_lbfgs_params;

typedef struct ge_lbfgs ge_lbfgs;

void ge_lbfgs_params_init(ge_lbfgs_params *p);
ge_status ge_lbfgs_new(ge_lbfgs **out, size_t n, const ge_lbfgs_params *p);
void ge_lbfgs_free(ge_lbfgs *o);
/* One iteration: on entry *f, g are the value and gradient at x (call fn
 * once before the first step); on exit x, *f, g are at the new point.
 * *evals += function evaluations used. Returns GE_OK, or GE_ERR_NUMERIC if
 * the objective went non-finite (x is left at the last good point).
 * *converged is set when the gradient or the change fell below tolerance. */
ge_status ge_lbfgs_step(ge_lbfgs *o, float *x, double *f, float *g, ge_value_grad_fn fn, void *ctx,
                        int *evals, int *converged);

#endif /* GE_OPTIM_H */
