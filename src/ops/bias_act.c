/* bias_act.c - bias + activation + gain + clamp in one pass, the maths of
 * StyleGAN2-ADA's bias_act() 'ref' implementation:
 *   v = x + b_gain * b[c];  y = clamp(act(v) * gain, -clamp, clamp).
 * The backward recomputes v from the saved input and bias rather than keeping
 * y, and follows PyTorch's derivative conventions at the kinks: relu passes
 * where v > 0, lrelu has slope 1 where v > 0 else alpha, and the clamp passes
 * the gradient where -clamp <= act(v) * gain <= clamp (torch.clamp).
 * Threads split (sample, channel) rows in the forward and channels in the
 * backward, so the bias-gradient sum has one fixed order.
 *
 * Speed: these run on every activation of every network (VGG's ReLUs, every
 * StyleGAN2 layer), so the activation and the clamp are chosen once per row,
 * outside the element loop, and each element loop is a straight
 * `omp simd` loop (AVX-512 wide). act_fwd / act_grad below are the scalar
 * definitions the loops spell out; tests/test_ops_act.c checks both against
 * PyTorch and finite differences, and tests/test_speed_ops.c the loops
 * against them element by element. The bias gradient is only summed when
 * it is asked for. */
#include "kernels/kernels.h"
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

/* One row: yr = clamp(act(xr + bias) * gain); the expressions are act_fwd's. */
GE_SIMD_CLONES
static void fwd_row(float *restrict yr, const float *restrict xr, float bias, size_t sp,
                    const ge_bias_act_params *p) {
    float gain = p->gain, alpha = p->alpha;
    switch (p->act) {
    case GE_ACT_RELU:
#pragma omp simd
        for (size_t j = 0; j < sp; j++) {
            float v = xr[j] + bias;
            yr[j] = (v > 0.f ? v : 0.f) * gain;
        }
        break;
    case GE_ACT_LRELU:
#pragma omp simd
        for (size_t j = 0; j < sp; j++) {
            float v = xr[j] + bias;
            yr[j] = (v > 0.f ? v : v * alpha) * gain;
        }
        break;
    case GE_ACT_TANH:
        for (size_t j = 0; j < sp; j++)
            yr[j] = tanhf(xr[j] + bias) * gain;
        break;
    default:
#pragma omp simd
        for (size_t j = 0; j < sp; j++)
            yr[j] = (xr[j] + bias) * gain;
    }
    if (p->clamp >= 0.f) {
        float c = p->clamp;
#pragma omp simd
        for (size_t j = 0; j < sp; j++) {
            float z = yr[j];
            yr[j] = z < -c ? -c : (z > c ? c : z);
        }
    }
}

void ge_bias_act_forward(float *y, const float *x, const float *b, const ge_bias_act_params *p) {
    size_t sp = p->spatial;
    int rows = p->n * p->c;
#pragma omp parallel for schedule(static) if ((size_t)rows * sp > 65536)
    for (int r = 0; r < rows; r++) {
        float bias = b ? p->b_gain * b[r % p->c] : 0.f;
        fwd_row(y + (size_t)r * sp, x + (size_t)r * sp, bias, sp, p);
    }
}

/* One row of the backward: g = dy * gain * act'(v) (0 where the clamp cut),
 * dx += g if dx, and returns sum g if want_sum. The expressions are
 * act_fwd's and act_grad's: for relu, lrelu and linear (act_fwd's default),
 * act(v) = v * k with k = act'(v) = 1 where v > 0, else k_neg (0, alpha, 1),
 * and v * 1 is exact, so z = v * k * gain is act_fwd(v) * gain bit for bit. */
GE_SIMD_CLONES
static double bwd_row(float *restrict dx, const float *restrict dy, const float *restrict xr,
                      float bias, size_t sp, int want_sum, const ge_bias_act_params *p) {
    float gain = p->gain, c = p->clamp;
    int clamp = c >= 0.f;
    double s = 0;
    if (p->act == GE_ACT_TANH) {
        for (size_t j = 0; j < sp; j++) {
            float v = xr[j] + bias;
            float a = act_fwd(v, p);
            float g = dy[j] * gain * act_grad(v, a, p);
            if (clamp) {
                float z = a * gain;
                if (!(z >= -c && z <= c)) g = 0.f;
            }
            if (dx) dx[j] += g;
            s += g;
        }
        return s;
    }
    float k_neg = p->act == GE_ACT_RELU ? 0.f : (p->act == GE_ACT_LRELU ? p->alpha : 1.f);
#define BWD_G(CLAMP)                                                                               \
    float v = xr[j] + bias;                                                                        \
    float k = v > 0.f ? 1.f : k_neg;                                                               \
    float g = dy[j] * gain * k;                                                                    \
    if (CLAMP) {                                                                                   \
        float z = v * k * gain;                                                                    \
        g = z >= -c && z <= c ? g : 0.f;                                                           \
    }
#define BWD_LOOPS(CLAMP)                                                                           \
    if (dx && want_sum) {                                                                          \
        _Pragma("omp simd reduction(+ : s)") for (size_t j = 0; j < sp; j++) {                     \
            BWD_G(CLAMP)                                                                           \
            dx[j] += g;                                                                            \
            s += g;                                                                                \
        }                                                                                          \
    } else if (dx) {                                                                               \
        _Pragma("omp simd") for (size_t j = 0; j < sp; j++) {                                      \
            BWD_G(CLAMP)                                                                           \
            dx[j] += g;                                                                            \
        }                                                                                          \
    } else if (want_sum) {                                                                         \
        _Pragma("omp simd reduction(+ : s)") for (size_t j = 0; j < sp; j++) {                     \
            BWD_G(CLAMP)                                                                           \
            s += g;                                                                                \
        }                                                                                          \
    }
    if (clamp) {
        BWD_LOOPS(1)
    } else {
        BWD_LOOPS(0)
    }
#undef BWD_LOOPS
#undef BWD_G
    return s;
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
            s += bwd_row(dx ? dx + off : NULL, dy + off, x + off, bias, sp, db != NULL, p);
        }
        if (db) db[c] += p->b_gain * (float)s;
    }
}
