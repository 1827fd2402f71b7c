/* convt2d.c - 2-D transposed convolution with PyTorch's maths and weight
 * layout (c_in, c_out, kh, kw), output_padding 0, optional per-sample weights
 * (the up-sampling modulated convolution of StyleGAN2 is one of these).
 *
 * A transposed convolution is the adjoint of a convolution, so it is built
 * from the same two kernels run the other way round. With K = c_out*kh*kw,
 * for each sample i and each band j of rows of x's h*w grid:
 *   forward        y_i  += col2im(W_i^T (K, c_in) x_i[:, j]),  y_i = b first
 *   backward data  dx_i[:, j] += W_i (c_in, K) col (K, j)
 *   backward w     dW_i (c_in, K) += x_i[:, j] col^T
 * where col = im2col(dy_i) on that band, and im2col/col2im see y as the
 * "image" (c_out, oh, ow) and x's grid as the "output positions". Bands
 * (ge_col_rows) bound the scratch buffer, as in conv2d.c.
 *
 * Fast path: the same adjoint view with oneDNN's direct convolutions
 * (kernels/dnnl_conv.c). The transposed convolution is the input gradient of
 * the convolution A: (c_out, oh, ow) -> (c_in, h, w) with the same stride and
 * padding, whose weight (c_in, c_out, kh, kw) is this op's weight as it is
 * stored. So forward = A's backward-data (bias added while unpacking),
 * backward-data = A's forward, backward-weights = A's backward-weights with
 * dy as A's input and x as A's output gradient. Shared weights go as one
 * batched call, per-sample weights one call per sample; the im2col path
 * above stays as the reference and the fallback. */
#include "kernels/kernels.h"
#include "ops/ops.h"

void ge_convt2d_out_size(const ge_convt2d_params *p, int *oh, int *ow) {
    *oh = (p->h - 1) * p->stride - 2 * p->pad + p->kh;
    *ow = (p->w - 1) * p->stride - 2 * p->pad + p->kw;
}

static int is_pointwise(const ge_convt2d_params *p) {
    return p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
}

/* The convolution whose input gradient this op is, for n samples. */
static ge_dconv_shape adjoint(const ge_convt2d_params *p, int n) {
    int oh, ow;
    ge_convt2d_out_size(p, &oh, &ow);
    ge_dconv_shape s = {.n = n,
                        .c_in = p->c_out,
                        .h = oh,
                        .w = ow,
                        .c_out = p->c_in,
                        .kh = p->kh,
                        .kw = p->kw,
                        .stride = p->stride,
                        .pad = p->pad,
                        .pad_mode = GE_PAD_ZERO};
    return s;
}

size_t ge_convt2d_scratch(const ge_convt2d_params *p) {
    if (is_pointwise(p)) return 0;
    int k = p->c_out * p->kh * p->kw;
    return (size_t)k * ge_col_rows(k, p->h, p->w) * p->w;
}

void ge_convt2d_forward(float *y, const float *x, const float *w, const float *b,
                        const ge_convt2d_params *p, float *scratch) {
    int oh, ow;
    ge_convt2d_out_size(p, &oh, &ow);
    int hw = p->h * p->w, k = p->c_out * p->kh * p->kw;
    size_t ohw = (size_t)oh * ow;
    int direct = is_pointwise(p);
    int band = direct ? p->h : ge_col_rows(k, p->h, p->w);
    int fast = !direct;
    if (fast && !p->w_sample_stride) {
        ge_dconv_shape s = adjoint(p, p->n);
        if (ge_dconv_backward_data(y, x, w, b, &s, 0)) return;
        fast = 0;
    }
    ge_dconv_shape s1 = adjoint(p, 1);
    for (int i = 0; i < p->n; i++) {
        const float *xi = x + (size_t)i * p->c_in * hw;       /* (c_in, h*w) */
        const float *wi = w + (size_t)i * p->w_sample_stride; /* (c_in, K) */
        float *yi = y + (size_t)i * p->c_out * ohw;           /* (c_out, oh, ow) */
        if (fast && ge_dconv_backward_data(yi, xi, wi, b, &s1, 0)) continue;
        for (int o = 0; o < p->c_out; o++) {
            float v = b ? b[o] : 0.f;
            for (size_t j = 0; j < ohw; j++)
                yi[o * ohw + j] = v;
        }
        if (direct) {
            ge_gemm(1, 0, k, hw, p->c_in, 1.f, wi, k, xi, hw, 1.f, yi, hw);
            continue;
        }
        for (int y0 = 0; y0 < p->h; y0 += band) {
            int y1 = y0 + band < p->h ? y0 + band : p->h, cols = (y1 - y0) * p->w;
            ge_gemm(1, 0, k, cols, p->c_in, 1.f, wi, k, xi + (size_t)y0 * p->w, hw, 0.f, scratch,
                    cols);
            ge_col2im_rows(yi, scratch, p->c_out, oh, ow, p->kh, p->kw, p->stride, p->pad,
                           GE_PAD_ZERO, p->h, p->w, y0, y1);
        }
    }
}

void ge_convt2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, const ge_convt2d_params *p, float *scratch) {
    int oh, ow;
    ge_convt2d_out_size(p, &oh, &ow);
    int hw = p->h * p->w, k = p->c_out * p->kh * p->kw;
    size_t ohw = (size_t)oh * ow;
    int direct = is_pointwise(p);
    int band = direct ? p->h : ge_col_rows(k, p->h, p->w);
    if (db) ge_sum_channels(db, dy, p->n, p->c_out, ohw);
    if (!dx && !dw) return;
    int fast = !direct;
    if (fast && !p->w_sample_stride) { /* one batched call each; what oneDNN declines is left */
        ge_dconv_shape s = adjoint(p, p->n);
        if (dx && ge_dconv_forward(dx, dy, w, NULL, &s, 1)) dx = NULL;
        if (dw && ge_dconv_backward_weights(dw, x, dy, &s)) dw = NULL;
        if (!dx && !dw) return;
        fast = 0;
    }
    ge_dconv_shape s1 = adjoint(p, 1);
    for (int i = 0; i < p->n; i++) {
        const float *dyi = dy + (size_t)i * p->c_out * ohw;           /* (c_out, oh, ow) */
        const float *wi = w + (size_t)i * p->w_sample_stride;         /* (c_in, K) */
        const float *xi = x + (size_t)i * p->c_in * hw;               /* (c_in, h*w) */
        float *dxi = dx ? dx + (size_t)i * p->c_in * hw : NULL;       /* (c_in, h*w) */
        float *dwi = dw ? dw + (size_t)i * p->w_sample_stride : NULL; /* (c_in, K) */
        if (fast) {
            if (dxi && ge_dconv_forward(dxi, dyi, wi, NULL, &s1, 1)) dxi = NULL;
            if (dwi && ge_dconv_backward_weights(dwi, xi, dyi, &s1)) dwi = NULL;
            if (!dxi && !dwi) continue;
        }
        for (int y0 = 0; y0 < p->h; y0 += band) {
            int y1 = y0 + band < p->h ? y0 + band : p->h, cols = (y1 - y0) * p->w;
            const float *col = dyi; /* (K, cols) */
            int ldcol = hw;
            if (!direct) {
                ge_im2col_rows(scratch, dyi, p->c_out, oh, ow, p->kh, p->kw, p->stride, p->pad,
                               GE_PAD_ZERO, p->h, p->w, y0, y1);
                col = scratch;
                ldcol = cols;
            }
            size_t off = (size_t)y0 * p->w;
            if (dxi) ge_gemm(0, 0, p->c_in, cols, k, 1.f, wi, k, col, ldcol, 1.f, dxi + off, hw);
            if (dwi) ge_gemm(0, 1, p->c_in, k, cols, 1.f, xi + off, hw, col, ldcol, 1.f, dwi, k);
        }
    }
}
