/* im2col.c - unfold image patches into columns so a convolution becomes one
 * GEMM, and the adjoint (col2im) for the input gradient. Padding is handled
 * here, zero or reflection, so no padded copy of the input is ever made.
 *
 * The _rows variants fill or read one band of output rows, so a convolution
 * can walk the image in bands whose column matrix stays in cache (a whole
 * 256x256 image with 64 channels and a 3x3 kernel would need 151 MB).
 * Each column row (one channel and tap) is split along x into the output
 * positions whose tap lands inside the image (a plain strided copy, a memcpy
 * at stride 1) and the few at the edges, which go through src_index() for
 * zero or mirrored values. Threads split rows (im2col) or channels (col2im),
 * so every output element is written by one thread in a fixed order. */
#include "kernels/kernels.h"

#include <string.h>

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

/* [*lo, *hi): the output positions o < on whose source o*stride - pad + t
 * lies inside [0, n). */
static inline void inside_range(int t, int stride, int pad, int n, int on, int *lo, int *hi) {
    int a = pad - t, b = n - 1 + pad - t;
    int l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int h = b < 0 ? 0 : b / stride + 1;
    if (h > on) h = on;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

int ge_col_rows(int k, int oh, int ow) {
    size_t per_row = (size_t)(k > 0 ? k : 1) * (size_t)(ow > 0 ? ow : 1);
    size_t rows = GE_COL_BUDGET / per_row;
    if (rows < 1) rows = 1;
    return rows < (size_t)oh ? (int)rows : (oh > 0 ? oh : 1);
}

void ge_im2col(float *col, const float *x, int c, int h, int w, int kh, int kw, int stride, int pad,
               int pad_mode, int oh, int ow) {
    ge_im2col_rows(col, x, c, h, w, kh, kw, stride, pad, pad_mode, oh, ow, 0, oh);
}

void ge_col2im(float *x, const float *col, int c, int h, int w, int kh, int kw, int stride, int pad,
               int pad_mode, int oh, int ow) {
    ge_col2im_rows(x, col, c, h, w, kh, kw, stride, pad, pad_mode, oh, ow, 0, oh);
}

void ge_im2col_rows(float *col, const float *x, int c, int h, int w, int kh, int kw, int stride,
                    int pad, int pad_mode, int oh, int ow, int oy0, int oy1) {
    int rows = c * kh * kw;
    size_t band = (size_t)(oy1 - oy0) * ow;
#pragma omp parallel for schedule(static) if ((size_t)rows * band > 65536)
    for (int r = 0; r < rows; r++) {
        int ci = r / (kh * kw), ky = (r / kw) % kh, kx = r % kw;
        const float *xc = x + (size_t)ci * h * w;
        float *out = col + (size_t)r * band;
        int lo, hi;
        inside_range(kx, stride, pad, w, ow, &lo, &hi);
        for (int oy = oy0; oy < oy1; oy++) {
            int iy = src_index(oy, ky, stride, pad, h, pad_mode);
            float *o = out + (size_t)(oy - oy0) * ow;
            if (iy < 0) {
                memset(o, 0, (size_t)ow * sizeof *o);
                continue;
            }
            const float *xr = xc + (size_t)iy * w;
            for (int ox = 0; ox < lo; ox++) {
                int ix = src_index(ox, kx, stride, pad, w, pad_mode);
                o[ox] = ix < 0 ? 0.f : xr[ix];
            }
            if (stride == 1) {
                if (hi > lo) memcpy(o + lo, xr + (lo - pad + kx), (size_t)(hi - lo) * sizeof *o);
            } else {
                for (int ox = lo; ox < hi; ox++)
                    o[ox] = xr[ox * stride - pad + kx];
            }
            for (int ox = hi; ox < ow; ox++) {
                int ix = src_index(ox, kx, stride, pad, w, pad_mode);
                o[ox] = ix < 0 ? 0.f : xr[ix];
            }
        }
    }
}

void ge_col2im_rows(float *x, const float *col, int c, int h, int w, int kh, int kw, int stride,
                    int pad, int pad_mode, int oh, int ow, int oy0, int oy1) {
    size_t band = (size_t)(oy1 - oy0) * ow;
    /* parallel over channels: each channel's taps write only that channel */
#pragma omp parallel for schedule(static) if ((size_t)c * kh * kw * band > 65536)
    for (int ci = 0; ci < c; ci++) {
        float *xc = x + (size_t)ci * h * w;
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++) {
                const float *in = col + ((size_t)(ci * kh + ky) * kw + kx) * band;
                int lo, hi;
                inside_range(kx, stride, pad, w, ow, &lo, &hi);
                for (int oy = oy0; oy < oy1; oy++) {
                    int iy = src_index(oy, ky, stride, pad, h, pad_mode);
                    if (iy < 0) continue;
                    float *xr = xc + (size_t)iy * w;
                    const float *ir = in + (size_t)(oy - oy0) * ow;
                    for (int ox = 0; ox < lo; ox++) {
                        int ix = src_index(ox, kx, stride, pad, w, pad_mode);
                        if (ix >= 0) xr[ix] += ir[ox];
                    }
                    if (stride == 1) {
                        float *dst = xr + (lo - pad + kx);
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox - lo] += ir[ox];
                    } else {
                        for (int ox = lo; ox < hi; ox++)
                            xr[ox * stride - pad + kx] += ir[ox];
                    }
                    for (int ox = hi; ox < ow; ox++) {
                        int ix = src_index(ox, kx, stride, pad, w, pad_mode);
                        if (ix >= 0) xr[ix] += ir[ox];
                    }
                }
            }
    }
}
