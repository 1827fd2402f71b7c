/* upfirdn2d.c - upsample, FIR-filter and downsample each plane, the same maths
 * as the reference implementation (_upfirdn2d_ref) of StyleGAN2-ADA's
 * torch_utils/ops/upfirdn2d.py:
 *
 *   1. upsample: insert up-1 zeros after every pixel (h -> h*up);
 *   2. pad by (px0, px1, py0, py1) zeros, negative values crop;
 *   3. correlate with the filter flipped (a true convolution with f), or with f
 *      itself when flip_filter; multiply by gain (the reference multiplies a
 *      2-D filter by gain^(ndim/2) = gain);
 *   4. keep every down-th pixel, starting at the first.
 *
 * Nothing of the zero-stuffed, padded image is built. For one output row and
 * one filter tap (a, b), the output pixels whose tap lands on a real input
 * pixel (position - pad divisible by up, inside the input) form an
 * arithmetic progression, and so do the input pixels they read; the forward
 * is one strided axpy per (row, tap), unit-stride and vectorised for the
 * plain filter (up = down = 1) StyleGAN2 applies after every transposed conv.
 * The backward is the exact adjoint: the same runs scatter dy into dx.
 * Planes (n*c) are the parallel loop, so each thread owns its dx plane and
 * every sum runs in a fixed order. */
#include "ops/ops.h"

/* Below this much work a loop runs on one thread: waking the team costs more. */
enum { PAR_MIN = 1 << 15 };

void ge_upfirdn2d_out_size(const ge_upfirdn2d_params *p, int *oh, int *ow) {
    long nh = (long)p->h * p->up + p->py0 + p->py1 - p->fh;
    long nw = (long)p->w * p->up + p->px0 + p->px1 - p->fw;
    *oh = nh < 0 ? 0 : (int)(nh / p->down + 1);
    *ow = nw < 0 ? 0 : (int)(nw / p->down + 1);
}

/* The first tap t >= 0 with (start + t) divisible by up and start + t >= 0. */
static int first_tap(long start, int up) {
    long r = start % up;
    if (r < 0) r += up;
    long t = r ? up - r : 0;
    if (start + t < 0) t += ((-(start + t) + up - 1) / up) * up;
    return (int)(t > 0x7fffffff ? 0x7fffffff : t);
}

static int gcd(int a, int b) {
    while (b) {
        int t = a % b;
        a = b, b = t;
    }
    return a;
}

/* Correlation weight of tap (a, b), gain included. */
static inline float tap(const float *f, const ge_upfirdn2d_params *p, int a, int b) {
    float v = p->flip_filter ? f[(size_t)a * p->fw + b]
                             : f[(size_t)(p->fh - 1 - a) * p->fw + (p->fw - 1 - b)];
    return v * p->gain;
}

/* The output columns that filter column b connects to an input pixel form
 * an arithmetic progression: ox = *ox0 + k * ostep reads input column
 * ix = *ix0 + k * istep (ostep = up / gcd(up, down), istep = down / gcd).
 * Returns 0 if there is none. */
static int column_run(const ge_upfirdn2d_params *p, int ow, int b, int ostep, int *ox0, int *ix0) {
    long shift = (long)b - p->px0; /* upsampled column = ox * down + shift */
    long lo = shift >= 0 ? 0 : (-shift + p->down - 1) / p->down;
    for (long ox = lo; ox < lo + ostep && ox < ow; ox++) {
        long j = ox * p->down + shift;
        if (j % p->up == 0) {
            if (j / p->up >= p->w) return 0;
            *ox0 = (int)ox;
            *ix0 = (int)(j / p->up);
            return 1;
        }
    }
    return 0;
}

/* Each output row is built tap by tap: for every filter row a that lands on
 * an input row and every filter column b, one strided axpy along the row.
 * Per output pixel the terms still arrive in (a, b) order. */
void ge_upfirdn2d_forward(float *y, const float *x, const float *f, const ge_upfirdn2d_params *p) {
    int oh, ow;
    ge_upfirdn2d_out_size(p, &oh, &ow);
    const int h = p->h, w = p->w, up = p->up, down = p->down;
    const int g = gcd(up, down), ostep = up / g, istep = down / g;
    const long uh = (long)h * up;
    long planes = (long)p->n * p->c;
#pragma omp parallel for schedule(static) if ((size_t)planes * oh * ow * p->fh * p->fw >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * h * w; /* (h, w) */
        float *yp = y + (size_t)pl * oh * ow;     /* (oh, ow) */
        for (int oy = 0; oy < oh; oy++) {
            float *yr = yp + (size_t)oy * ow; /* (ow) */
            for (int ox = 0; ox < ow; ox++)
                yr[ox] = 0.0f;
            long i0 = (long)oy * down - p->py0; /* upsampled row under tap a = 0 */
            for (int a = first_tap(i0, up); a < p->fh && i0 + a < uh; a += up) {
                const float *xr = xp + (size_t)((i0 + a) / up) * w; /* (w) */
                for (int b = 0; b < p->fw; b++) {
                    int ox0, ix0;
                    if (!column_run(p, ow, b, ostep, &ox0, &ix0)) continue;
                    float t = tap(f, p, a, b);
                    int cnt = (ow - ox0 + ostep - 1) / ostep, ci = (w - ix0 + istep - 1) / istep;
                    if (ci < cnt) cnt = ci;
                    float *yo = yr + ox0;
                    const float *xi = xr + ix0;
                    if (ostep == 1 && istep == 1) {
#pragma omp simd
                        for (int k = 0; k < cnt; k++)
                            yo[k] += t * xi[k];
                    } else {
                        for (int k = 0; k < cnt; k++)
                            yo[k * ostep] += t * xi[k * istep];
                    }
                }
            }
        }
    }
}

/* The adjoint: the same runs, scattering t * dy into dx. Within one run the
 * input columns are distinct, so the inner loop has no dependence. */
void ge_upfirdn2d_backward(float *dx, const float *dy, const float *f,
                           const ge_upfirdn2d_params *p) {
    if (!dx) return;
    int oh, ow;
    ge_upfirdn2d_out_size(p, &oh, &ow);
    const int h = p->h, w = p->w, up = p->up, down = p->down;
    const int g = gcd(up, down), ostep = up / g, istep = down / g;
    const long uh = (long)h * up;
    long planes = (long)p->n * p->c;
#pragma omp parallel for schedule(static) if ((size_t)planes * oh * ow * p->fh * p->fw >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *gp = dy + (size_t)pl * oh * ow; /* (oh, ow) */
        float *dp = dx + (size_t)pl * h * w;         /* (h, w) */
        for (int oy = 0; oy < oh; oy++) {
            const float *gr = gp + (size_t)oy * ow; /* (ow) */
            long i0 = (long)oy * down - p->py0;
            for (int a = first_tap(i0, up); a < p->fh && i0 + a < uh; a += up) {
                float *dr = dp + (size_t)((i0 + a) / up) * w; /* (w) */
                for (int b = 0; b < p->fw; b++) {
                    int ox0, ix0;
                    if (!column_run(p, ow, b, ostep, &ox0, &ix0)) continue;
                    float t = tap(f, p, a, b);
                    int cnt = (ow - ox0 + ostep - 1) / ostep, ci = (w - ix0 + istep - 1) / istep;
                    if (ci < cnt) cnt = ci;
                    const float *go = gr + ox0;
                    float *di = dr + ix0;
                    if (ostep == 1 && istep == 1) {
#pragma omp simd
                        for (int k = 0; k < cnt; k++)
                            di[k] += t * go[k];
                    } else {
                        for (int k = 0; k < cnt; k++)
                            di[k * istep] += t * go[k * ostep];
                    }
                }
            }
        }
    }
}
