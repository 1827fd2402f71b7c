/* im2col.c - unfold image patches into columns so a convolution becomes one
 * GEMM, and the adjoint (col2im) for the input gradient. Padding is handled
 * here, zero or reflection, so no padded copy of the input is ever made. */
#include "kernels/kernels.h"

/* Source index along one axis for output position o and tap t, or -1 (zero). */
static inline int src_index(int o, int t, int stride, int pad, int n, int mode) {
    int i = o * stride - pad + t;
    if (i >= 0 && i < n) return i;
    if (mode == GE_PAD_ZERO) return -1;
    if (n == 1) return 0;
    while (i < 0 || i >= n) { /* reflect, edge not repeated */
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    }
    return i;
}

void ge_im2col(float *col, const float *x, int c, int h, int w, int kh, int kw, int stride,
               int pad, int pad_mode, int oh, int ow) {
    int rows = c * kh * kw;
#pragma omp parallel for schedule(static) if (rows * oh * ow > 65536)
    for (int r = 0; r < rows; r++) {
        int ci = r / (kh * kw), ky = (r / kw) % kh, kx = r % kw;
        const float *xc = x + (size_t)ci * h * w;
        float *out = col + (size_t)r * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            int iy = src_index(oy, ky, stride, pad, h, pad_mode);
            float *o = out + (size_t)oy * ow;
            if (iy < 0) {
                for (int ox = 0; ox < ow; ox++) o[ox] = 0.f;
                continue;
            }
            const float *xr = xc + (size_t)iy * w;
            for (int ox = 0; ox < ow; ox++) {
                int ix = src_index(ox, kx, stride, pad, w, pad_mode);
                o[ox] = ix < 0 ? 0.f : xr[ix];
            }
        }
    }
}

void ge_col2im(float *x, const float *col, int c, int h, int w, int kh, int kw, int stride,
               int pad, int pad_mode, int oh, int ow) {
    /* parallel over channels: each channel's taps write only that channel */
#pragma omp parallel for schedule(static) if (c * kh * kw * oh * ow > 65536)
    for (int ci = 0; ci < c; ci++) {
        float *xc = x + (size_t)ci * h * w;
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++) {
                const float *in = col + ((size_t)(ci * kh + ky) * kw + kx) * oh * ow;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = src_index(oy, ky, stride, pad, h, pad_mode);
                    if (iy < 0) continue;
                    float *xr = xc + (size_t)iy * w;
                    const float *ir = in + (size_t)oy * ow;
                    for (int ox = 0; ox < ow; ox++) {
                        int ix = src_index(ox, kx, stride, pad, w, pad_mode);
                        if (ix >= 0) xr[ix] += ir[ox];
                    }
                }
            }
    }
}
