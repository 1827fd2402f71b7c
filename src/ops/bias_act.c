/* bias_act.c - bias + activation + gain + clamp in one pass, the maths of
 * StyleGAN2-ADA's bias_act() 'ref' implementation:
 *   v = x + b_gain * b[c];  y = clamp(act(v) * gain, -clamp, clamp).
 * The backward recomputes v from the saved input and bias rather than keeping
 * y, and follows PyTorch's derivative conventions at the kinks: relu passes
 * where v > 0, lrelu has slope 1 where v > 0 else alpha, and the clamp passes
 * the gradient where -clamp <= act(v) * gain <= clamp (torch.clamp).
 * Threads split (sample, channel) rows in the forward and channels in the
 * backward, so the bias-gradient sum has one fixed order. */
#include "ops/ops.h"

#include <math.h>

static inline float act_fwd(float v, const ge_bias_act_params *p) {
    switch (p->act) {
    case GE_ACT_RELU:
        return v > 0.f ? v : 0.f;
    case GE_ACT_LRELU:
        return v > 0.f ? v : v * p->alpha;
    case GE_ACT_TANH:
        return tanhf(v);
    default:
        return v;
    }
}

/* d act / d v at v, given a = act(v). */
static inline float act_grad(float v, float a, const ge_bias_act_params *p) {
    switch (p->act) {
    case GE_ACT_RELU:
        return v > 0.f ? 1.f : 0.f;
    case GE_ACT_LRELU:
        return v > 0.f ? 1.f : p->alpha;
    case GE_ACT_TANH:
        return 1.f - a * a;
    default:
        return 1.f;
    }
}

void ge_bias_act_forward(float *y, const float *x, const float *b, const ge_bias_act_params *p) {
    size_t sp = p->spatial;
    int rows = p->n * p->c;
#pragma omp parallel for schedule(static) if ((size_t)rows * sp > 65536)
    for (int r = 0; r < rows; r++) {
        float bias = b ? p->b_gain * b[r % p->c] : 0.f;
        const float *xr = x + (size_t)r * sp;
        float *yr = y + (size_t)r * sp;
        for (size_t j = 0; j < sp; j++) {
            float z = act_fwd(xr[j] + bias, p) * p->gain;
            if (p->clamp >= 0.f) z = z < -p->clamp ? -p->clamp : (z > p->clamp ? p->clamp : z);
            yr[j] = z;
        }
    }
}

void ge_bias_act_backward(float *dx, float *db, const float *dy, const float *x, const float *b,
                          const ge_bias_act_params *p) {
    if (!dx && !db) return;
    size_t sp = p->spatial;
#pragma omp parallel for schedule(static) if ((size_t)p->n * p->c * sp > 65536)
    for (int c = 0; c < p->c; c++) {
        float bias = b ? p->b_gain * b[c] : 0.f;
        double s = 0;
        for (int i = 0; i < p->n; i++) {
            size_t off = ((size_t)i * p->c + c) * sp;
            for (size_t j = 0; j < sp; j++) {
                float v = x[off + j] + bias;
                float a = act_fwd(v, p);
                float g = dy[off + j] * p->gain * act_grad(v, a, p);
                if (p->clamp >= 0.f) {
                    float z = a * p->gain;
                    if (!(z >= -p->clamp && z <= p->clamp)) g = 0.f;
                }
                if (dx) dx[off + j] += g;
                s += g;
            }
        }
        if (db) db[c] += p->b_gain * (float)s;
    }
}
