/* instance_norm.c - nn.InstanceNorm2d without affine parameters: every
 * (sample, channel) plane is shifted to zero mean and scaled to unit biased
 * variance, y = (x - mean) / sqrt(var + eps).
 *
 * The statistics of one plane are accumulated in double, so planes of a
 * million pixels keep float32 accuracy; planes are independent, which makes
 * them the one parallel loop. The backward recomputes mean and variance from
 * the saved input x rather than keeping them, as every op in ops.h does. */
#include "ops/ops.h"

#include <math.h>

/* Below this much work a loop runs on one thread: waking the team costs more. */
enum { PAR_MIN = 1 << 15 };

/* Mean and 1/sqrt(var + eps) of one plane p (hw). */
static void plane_stats(const float *p, size_t hw, float eps, double *mean, double *rstd) {
    double s = 0;
    for (size_t i = 0; i < hw; i++)
        s += p[i];
    double m = s / (double)hw;
    double v = 0;
    for (size_t i = 0; i < hw; i++) {
        double d = p[i] - m;
        v += d * d;
    }
    v /= (double)hw;
    *mean = m;
    *rstd = 1.0 / sqrt(v + (double)eps);
}

void ge_instance_norm_forward(float *y, const float *x, int n, int c, size_t hw, float eps) {
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * hw >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * hw; /* (hw) */
        float *yp = y + (size_t)pl * hw;       /* (hw) */
        double mean, rstd;
        plane_stats(xp, hw, eps, &mean, &rstd);
        for (size_t i = 0; i < hw; i++)
            yp[i] = (float)((xp[i] - mean) * rstd);
    }
}

/* With xh = (x - mean) rstd:  dx = rstd (dy - mean(dy) - xh mean(dy xh)). */
void ge_instance_norm_backward(float *dx, const float *dy, const float *x, int n, int c, size_t hw,
                               float eps) {
    if (!dx) return;
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * hw >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * hw;  /* (hw) */
        const float *gp = dy + (size_t)pl * hw; /* (hw) */
        float *dp = dx + (size_t)pl * hw;       /* (hw) */
        double mean, rstd;
        plane_stats(xp, hw, eps, &mean, &rstd);
        double sg = 0, sgx = 0;
        for (size_t i = 0; i < hw; i++) {
            sg += gp[i];
            sgx += gp[i] * ((xp[i] - mean) * rstd);
        }
        double mg = sg / (double)hw, mgx = sgx / (double)hw;
        for (size_t i = 0; i < hw; i++) {
            double xh = (xp[i] - mean) * rstd;
            dp[i] += (float)(rstd * (gp[i] - mg - xh * mgx));
        }
    }
}
