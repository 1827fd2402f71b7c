/* conv2d.c - 2-D convolution (PyTorch's conv2d: a correlation), forward and
 * backward, with stride, zero or reflection padding, and optional per-sample
 * weights (StyleGAN2's modulated convolution gives every sample its own).
 *
 * Built as im2col + GEMM, the textbook lowering: one code path handles every
 * stride, padding and per-sample weight, and the GEMM (oneDNN's dnnl_sgemm)
 * does the heavy lifting and the threading. With K = c_in*kh*kw, for each
 * sample i and each band of output rows (columns j of y_i (c_out, oh*ow)):
 *   forward        y_i[:, j]  = W_i (c_out, K) col (K, j) + b
 *   backward data  dx_i      += col2im(W_i^T dy_i[:, j])
 *   backward w     dW_i      += dy_i[:, j] col^T
 * where col = im2col(x_i) restricted to the band. Bands (ge_col_rows) keep
 * the column buffer at a few MB whatever the image size: the whole-image
 * matrix would be 151 MB for a 64-channel 256x256 layer, and memory traffic,
 * not arithmetic, would set the speed. A 1x1 convolution with stride 1 and
 * no padding needs no im2col at all: x_i is its own column matrix.
 *
 * Fast path: direct oneDNN convolutions (kernels/dnnl_conv.c), for every
 * convolution with a kernel larger than 1x1 that oneDNN does well; shared
 * weights go through as one batched primitive call, per-sample weights as
 * one call per sample. im2col + GEMM above is the reference the fast path is
 * tested against (tests/test_speed_conv.c) and the fallback when oneDNN
 * declines a problem. */
#include "kernels/kernels.h"
#include "ops/ops.h"

void ge_conv2d_out_size(const ge_conv2d_params *p, int *oh, int *ow) {
    *oh = (p->h + 2 * p->pad - p->kh) / p->stride + 1;
    *ow = (p->w + 2 * p->pad - p->kw) / p->stride + 1;
}

/* 1x1, stride 1, no padding: the input already is the column matrix. */
static int is_pointwise(const ge_conv2d_params *p) {
    return p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
}

size_t ge_conv2d_scratch(const ge_conv2d_params *p) {
    if (is_pointwise(p)) return 0;
    int oh, ow, k = p->c_in * p->kh * p->kw;
    ge_conv2d_out_size(p, &oh, &ow);
    return (size_t)k * ge_col_rows(k, oh, ow) * ow;
}

static ge_dconv_shape dshape(const ge_conv2d_params *p, int n) {
    ge_dconv_shape s = {.n = n,
                        .c_in = p->c_in,
                        .h = p->h,
                        .w = p->w,
                        .c_out = p->c_out,
                        .kh = p->kh,
                        .kw = p->kw,
                        .stride = p->stride,
                        .pad = p->pad,
                        .pad_mode = p->pad_mode};
    return s;
}

/* The fast path is used for convolutions with a spatial kernel (1x1 ones are
 * a plain GEMM already). */
static int use_fast(const ge_conv2d_params *p) {
    return !is_pointwise(p);
}

void ge_conv2d_forward(float *y, const float *x, const float *w, const float *b,
                       const ge_conv2d_params *p, float *scratch) {
    int oh, ow;
    ge_conv2d_out_size(p, &oh, &ow);
    int ohw = oh * ow, k = p->c_in * p->kh * p->kw;
    size_t hw = (size_t)p->h * p->w;
    int direct = is_pointwise(p);
    int band = direct ? oh : ge_col_rows(k, oh, ow);
    int fast = use_fast(p);
    if (fast && !p->w_sample_stride) {
        ge_dconv_shape s = dshape(p, p->n);
        if (ge_dconv_forward(y, x, w, b, &s, 0)) return;
        fast = 0;
    }
    ge_dconv_shape s1 = dshape(p, 1);
    for (int i = 0; i < p->n; i++) {
        const float *xi = x + (size_t)i * p->c_in * hw;       /* (c_in, h, w) */
        const float *wi = w + (size_t)i * p->w_sample_stride; /* (c_out, K) */
        float *yi = y + (size_t)i * p->c_out * ohw;           /* (c_out, oh*ow) */
        if (fast && ge_dconv_forward(yi, xi, wi, b, &s1, 0)) continue;
        if (b)
            for (int o = 0; o < p->c_out; o++)
                for (int j = 0; j < ohw; j++)
                    yi[(size_t)o * ohw + j] = b[o];
        for (int oy0 = 0; oy0 < oh; oy0 += band) {
            int oy1 = oy0 + band < oh ? oy0 + band : oh, cols = (oy1 - oy0) * ow;
            const float *col = xi; /* (K, cols) */
            if (!direct) {
                ge_im2col_rows(scratch, xi, p->c_in, p->h, p->w, p->kh, p->kw, p->stride, p->pad,
                               p->pad_mode, oh, ow, oy0, oy1);
                col = scratch;
            }
            ge_gemm(0, 0, p->c_out, cols, k, 1.f, wi, k, col, cols, b ? 1.f : 0.f,
                    yi + (size_t)oy0 * ow, ohw);
        }
    }
}

void ge_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, const ge_conv2d_params *p, float *scratch) {
    int oh, ow;
    ge_conv2d_out_size(p, &oh, &ow);
    int ohw = oh * ow, k = p->c_in * p->kh * p->kw;
    size_t hw = (size_t)p->h * p->w;
    int direct = is_pointwise(p);
    int band = direct ? oh : ge_col_rows(k, oh, ow);
    if (db) ge_sum_channels(db, dy, p->n, p->c_out, (size_t)ohw);
    if (!dx && !dw) return;
    int fast = use_fast(p);
    if (fast && !p->w_sample_stride) { /* one batched call each; what oneDNN declines is left */
        ge_dconv_shape s = dshape(p, p->n);
        if (dx && ge_dconv_backward_data(dx, dy, w, NULL, &s, 1)) dx = NULL;
        if (dw && ge_dconv_backward_weights(dw, dy, x, &s)) dw = NULL;
        if (!dx && !dw) return;
        fast = 0;
    }
    ge_dconv_shape s1 = dshape(p, 1);
    for (int i = 0; i < p->n; i++) {
        const float *dyi = dy + (size_t)i * p->c_out * ohw;           /* (c_out, oh*ow) */
        const float *wi = w + (size_t)i * p->w_sample_stride;         /* (c_out, K) */
        const float *xi = x + (size_t)i * p->c_in * hw;               /* (c_in, h, w) */
        float *dwi = dw ? dw + (size_t)i * p->w_sample_stride : NULL; /* (c_out, K) */
        float *dxi = dx ? dx + (size_t)i * p->c_in * hw : NULL;       /* (c_in, h, w) */
        if (fast) {
            if (dxi && ge_dconv_backward_data(dxi, dyi, wi, NULL, &s1, 1)) dxi = NULL;
            if (dwi && ge_dconv_backward_weights(dwi, dyi, xi, &s1)) dwi = NULL;
            if (!dxi && !dwi) continue;
        }
        if (direct) {
            if (dwi) ge_gemm(0, 1, p->c_out, k, ohw, 1.f, dyi, ohw, xi, ohw, 1.f, dwi, k);
            if (dxi) ge_gemm(1, 0, k, ohw, p->c_out, 1.f, wi, k, dyi, ohw, 1.f, dxi, ohw);
            continue;
        }
        for (int oy0 = 0; oy0 < oh; oy0 += band) {
            int oy1 = oy0 + band < oh ? oy0 + band : oh, cols = (oy1 - oy0) * ow;
            const float *dyb = dyi + (size_t)oy0 * ow; /* (c_out, cols), ld oh*ow */
            if (dwi) {
                ge_im2col_rows(scratch, xi, p->c_in, p->h, p->w, p->kh, p->kw, p->stride, p->pad,
                               p->pad_mode, oh, ow, oy0, oy1);
                ge_gemm(0, 1, p->c_out, k, cols, 1.f, dyb, ohw, scratch, cols, 1.f, dwi, k);
            }
            if (dxi) {
                ge_gemm(1, 0, k, cols, p->c_out, 1.f, wi, k, dyb, ohw, 0.f, scratch, cols);
                ge_col2im_rows(dxi, scratch, p->c_in, p->h, p->w, p->kh, p->kw, p->stride, p->pad,
                               p->pad_mode, oh, ow, oy0, oy1);
            }
        }
    }
}
