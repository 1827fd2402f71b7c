/* maxpool.c - 2x2 max pooling with stride 2 (VGG's pooling layers), with
 * PyTorch's ceil_mode: a window that runs past the bottom or right edge
 * uses only the elements inside the input.
 *
 * The winner of each window follows PyTorch's CPU kernel exactly: windows are
 * scanned in row-major order, a later element wins only if strictly larger
 * (so ties go to the first), and a NaN wins and propagates (the last NaN
 * of a window gets the gradient, as in PyTorch). The backward
 * finds the winner again from the saved input and routes dy to it; no index
 * buffer is kept. Planes are the parallel loop. */
#include "ops/ops.h"

#include <math.h>

/* Below this much work a loop runs on one thread: waking the team costs more. */
enum { PAR_MIN = 1 << 15 };

void ge_maxpool2_out_size(int h, int w, int ceil_mode, int *oh, int *ow) {
    *oh = ceil_mode ? (h + 1) / 2 : h / 2;
    *ow = ceil_mode ? (w + 1) / 2 : w / 2;
}

static inline int beats(float v, float m) {
    return v > m || isnan(v);
}

/* Offset (within the plane) of the winning element of window (oy, ox).
 * PyTorch starts from -inf at the first element's index and takes each
 * element that beats the running maximum; starting from the first element
 * itself picks the same index in every case (a later NaN replaces an
 * earlier one, as there). */
static inline size_t window_argmax(const float *xp, int h, int w, int oy, int ox) {
    int y0 = 2 * oy, x0 = 2 * ox;
    size_t k0 = (size_t)y0 * w + x0, best = k0;
    float m = xp[k0];
    if (y0 + 1 < h && x0 + 1 < w) { /* a full window: the common case */
        size_t k[3] = {k0 + 1, k0 + w, k0 + w + 1};
        for (int i = 0; i < 3; i++)
            if (beats(xp[k[i]], m)) m = xp[k[i]], best = k[i];
        return best;
    }
    int y1 = y0 + 2 < h ? y0 + 2 : h, x1 = x0 + 2 < w ? x0 + 2 : w;
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++) {
            size_t k = (size_t)iy * w + ix;
            if (k != k0 && beats(xp[k], m)) m = xp[k], best = k;
        }
    return best;
}

void ge_maxpool2_forward(float *y, const float *x, int n, int c, int h, int w, int ceil_mode) {
    int oh, ow;
    ge_maxpool2_out_size(h, w, ceil_mode, &oh, &ow);
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * h * w >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * h * w; /* (h, w) */
        float *yp = y + (size_t)pl * oh * ow;     /* (oh, ow) */
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                yp[(size_t)oy * ow + ox] = xp[window_argmax(xp, h, w, oy, ox)];
    }
}

void ge_maxpool2_backward(float *dx, const float *dy, const float *x, int n, int c, int h, int w,
                          int ceil_mode) {
    if (!dx) return;
    int oh, ow;
    ge_maxpool2_out_size(h, w, ceil_mode, &oh, &ow);
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * h * w >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * h * w;    /* (h, w) */
        const float *gp = dy + (size_t)pl * oh * ow; /* (oh, ow) */
        float *dp = dx + (size_t)pl * h * w;         /* (h, w) */
        /* Windows do not overlap (stride = size), so each dx element gets at
         * most one contribution. */
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                dp[window_argmax(xp, h, w, oy, ox)] += gp[(size_t)oy * ow + ox];
    }
}
