/* upsample.c - nearest-neighbour upsampling by 2 (F.interpolate(x,
 * scale_factor=2, mode='nearest')), used by the "deluxe" DCGAN. Each input
 * pixel becomes a 2x2 block; the backward sums the block. Planes are the
 * parallel loop. */
#include "ops/ops.h"

/* Below this much work a loop runs on one thread: waking the team costs more. */
enum { PAR_MIN = 1 << 15 };

void ge_upsample2_forward(float *y, const float *x, int n, int c, int h, int w) {
    long planes = (long)n * c;
    int ow = 2 * w;
#pragma omp parallel for schedule(static) if ((size_t)planes * h * w >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * h * w; /* (h, w) */
        float *yp = y + (size_t)pl * 4 * h * w;   /* (2h, 2w) */
        for (int iy = 0; iy < h; iy++) {
            float *r0 = yp + (size_t)(2 * iy) * ow, *r1 = r0 + ow;
            const float *xr = xp + (size_t)iy * w;
            for (int ix = 0; ix < w; ix++) {
                float v = xr[ix];
                r0[2 * ix] = v;
                r0[2 * ix + 1] = v;
                r1[2 * ix] = v;
                r1[2 * ix + 1] = v;
            }
        }
    }
}

void ge_upsample2_backward(float *dx, const float *dy, int n, int c, int h, int w) {
    if (!dx) return;
    long planes = (long)n * c;
    int ow = 2 * w;
#pragma omp parallel for schedule(static) if ((size_t)planes * h * w >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *gp = dy + (size_t)pl * 4 * h * w; /* (2h, 2w) */
        float *dp = dx + (size_t)pl * h * w;           /* (h, w) */
        for (int iy = 0; iy < h; iy++) {
            const float *r0 = gp + (size_t)(2 * iy) * ow, *r1 = r0 + ow;
            float *dr = dp + (size_t)iy * w;
            for (int ix = 0; ix < w; ix++)
                dr[ix] += (r0[2 * ix] + r0[2 * ix + 1]) + (r1[2 * ix] + r1[2 * ix + 1]);
        }
    }
}
