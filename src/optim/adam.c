/* adam.c - Adam with bias correction, exactly torch.optim.Adam's update
 * (x -= lr * mhat / (sqrt(vhat) + eps)), on a flat vector. Per coordinate, so
 * a batch of restarts optimised together is K independent problems. */
#include "optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ge_adam_params_init(ge_adam_params *p) {
    p->lr = 0.003f;
    p->beta1 = 0.9f;
    p->beta2 = 0.999f;
    p->eps = 1e-8f;
}

ge_status ge_adam_init(ge_adam *a, size_t n, const ge_adam_params *p) {
    memset(a, 0, sizeof *a);
    a->n = n;
    a->p = *p;
    a->m = ge_calloc(n, sizeof(float));
    a->v = ge_calloc(n, sizeof(float));
    if (!a->m || !a->v) {
        ge_adam_free(a);
        return GE_ERR_NOMEM;
    }
    return GE_OK;
}

void ge_adam_step(ge_adam *a, float *x, const float *g) {
    a->t++;
    const float b1 = a->p.beta1, b2 = a->p.beta2;
    const double c1 = 1.0 - pow(b1, a->t), c2 = 1.0 - pow(b2, a->t);
    const float step = (float)(a->p.lr / c1), root_c2 = (float)sqrt(c2);
    for (size_t i = 0; i < a->n; i++) {
        a->m[i] = b1 * a->m[i] + (1.f - b1) * g[i];
        a->v[i] = b2 * a->v[i] + (1.f - b2) * g[i] * g[i];
        x[i] -= step * a->m[i] / (sqrtf(a->v[i]) / root_c2 + a->p.eps);
    }
}

void ge_adam_free(ge_adam *a) {
    if (!a) return;
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}
