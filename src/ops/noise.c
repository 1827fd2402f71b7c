/* noise.c - StyleGAN2's noise injection: y = x + strength * noise, with one
 * noise plane per sample (or one shared by the batch) broadcast over the
 * channels.
 *
 * The strength gradient is a sum over the whole batch; to be the same bytes
 * on any thread count it is cut into a fixed number of contiguous chunks of
 * planes, each summed in double, and the chunk sums are added in order. */
#include "ops/ops.h"

/* Below this much work a loop runs on one thread: waking the team costs more. */
enum { PAR_MIN = 1 << 15 };

enum { NOISE_CHUNKS = 64 };

void ge_noise_forward(float *y, const float *x, const float *noise, float strength, int n, int c,
                      size_t hw, int n_noise) {
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * hw >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * hw;                                /* (hw) */
        const float *np = noise + (n_noise == 1 ? 0 : (size_t)(pl / c) * hw); /* (hw) */
        float *yp = y + (size_t)pl * hw;                                      /* (hw) */
        for (size_t i = 0; i < hw; i++)
            yp[i] = xp[i] + strength * np[i];
    }
}

void ge_noise_backward(float *dx, float *dstrength, const float *dy, const float *noise, int n,
                       int c, size_t hw, int n_noise) {
    long planes = (long)n * c;
    if (dx) {
#pragma omp parallel for schedule(static) if ((size_t)planes * hw >= PAR_MIN)
        for (long pl = 0; pl < planes; pl++) {
            const float *gp = dy + (size_t)pl * hw;
            float *dp = dx + (size_t)pl * hw;
            for (size_t i = 0; i < hw; i++)
                dp[i] += gp[i];
        }
    }
    if (dstrength) {
        double part[NOISE_CHUNKS];
#pragma omp parallel for schedule(static) if ((size_t)planes * hw >= PAR_MIN)
        for (int k = 0; k < NOISE_CHUNKS; k++) {
            long p0 = planes * k / NOISE_CHUNKS, p1 = planes * (k + 1) / NOISE_CHUNKS;
            double s = 0;
            for (long pl = p0; pl < p1; pl++) {
                const float *gp = dy + (size_t)pl * hw;
                const float *np = noise + (n_noise == 1 ? 0 : (size_t)(pl / c) * hw);
                for (size_t i = 0; i < hw; i++)
                    s += (double)gp[i] * np[i];
            }
            part[k] = s;
        }
        double s = 0;
        for (int k = 0; k < NOISE_CHUNKS; k++)
            s += part[k];
        *dstrength += (float)s;
    }
}
