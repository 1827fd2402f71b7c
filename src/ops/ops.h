/* ops.h - differentiable operations, each a plain function pair
 * ge_<op>_forward / ge_<op>_backward (llm.c style).
 *
 * Rules for every op here:
 *  - Tensors are float32, NCHW, C-contiguous; shapes are written beside each
 *    pointer. int for dimensions, size_t for element counts.
 *  - Arguments: outputs first, then inputs, then the params struct.
 *  - Backward ADDS into dx / dw / db (+=); the caller zeroes once. A NULL
 *    gradient pointer skips that work entirely (latent optimisation never
 *    needs weight gradients).
 *  - Backward recomputes what it needs from the saved forward INPUT (x), so a
 *    model keeps the inputs of each layer, not extra state.
 *  - No malloc inside forward/backward except where a `scratch` size function
 *    is given: the caller provides scratch of at least that many floats.
 *  - Every op has a finite-difference gradient test and a PyTorch forward test
 *    (tests/test_ops_*.c, vectors from tools/gen_op_vectors*.py).
 */
#ifndef GE_OPS_H
#define GE_OPS_H

#include <stddef.h>

/* ---- conv2d ------------------------------------------------------------
 * y (n, c_out, oh, ow) = conv(x (n, c_in, h, w), w (c_out, c_in, kh, kw)) + b (c_out)
 * oh = (h + 2 pad - kh) / stride + 1. pad_mode GE_PAD_ZERO or GE_PAD_REFLECT
 * (reflection = nn.ReflectionPad2d(pad) then an unpadded conv).
 * w_sample_stride: 0 = one weight for the batch; else sample i uses
 * w + i * w_sample_stride (per-sample weights, as StyleGAN2's modulated conv),
 * and dw then gets the per-sample gradients at the same strides. */
typedef struct {
    int n, c_in, h, w;
    int c_out, kh, kw;
    int stride, pad, pad_mode;
    size_t w_sample_stride;
} ge_conv2d_params;

void ge_conv2d_out_size(const ge_conv2d_params *p, int *oh, int *ow);
size_t ge_conv2d_scratch(const ge_conv2d_params *p); /* floats */
void ge_conv2d_forward(float *y, const float *x, const float *w, const float *b,
                       const ge_conv2d_params *p, float *scratch);
void ge_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, const ge_conv2d_params *p, float *scratch);

/* ---- conv_transpose2d ---------------------------------------------------
 * y (n, c_out, oh, ow) = conv_transpose(x (n, c_in, h, w), w (c_in, c_out, kh, kw)) + b
 * oh = (h - 1) stride - 2 pad + kh (output_padding 0), PyTorch's layout and maths.
 * w_sample_stride as for conv2d. */
typedef struct {
    int n, c_in, h, w;
    int c_out, kh, kw;
    int stride, pad;
    size_t w_sample_stride;
} ge_convt2d_params;

void ge_convt2d_out_size(const ge_convt2d_params *p, int *oh, int *ow);
size_t ge_convt2d_scratch(const ge_convt2d_params *p);
void ge_convt2d_forward(float *y, const float *x, const float *w, const float *b,
                        const ge_convt2d_params *p, float *scratch);
void ge_convt2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, const ge_convt2d_params *p, float *scratch);

/* ---- linear --------------------------------------------------------------
 * y (n, out) = w_gain * x (n, in) W^T (out, in) + b_gain * b (out)   (b may be NULL)
 * The gains give StyleGAN2's equalised learning rate: w_gain = lr/sqrt(in), b_gain = lr. */
typedef struct {
    int n, in, out;
    float w_gain, b_gain;
} ge_linear_params;

void ge_linear_forward(float *y, const float *x, const float *w, const float *b,
                       const ge_linear_params *p);
void ge_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, const ge_linear_params *p);

/* ---- bias + activation (as StyleGAN2-ADA's bias_act) ----------------------
 * y = clamp(act(x + b_gain * b[c]) * gain, -clamp, clamp) on x (n, c, spatial);
 * b (c) may be NULL; clamp < 0 means none; act: linear, relu, lrelu (alpha),
 * tanh. The backward takes the forward's input x (not y). Clamp passes the
 * gradient where -clamp <= value <= clamp (torch.clamp semantics). */
typedef enum { GE_ACT_LINEAR = 0, GE_ACT_RELU, GE_ACT_LRELU, GE_ACT_TANH } ge_act;
typedef struct {
    int n, c;
    size_t spatial;  /* product of the dims after c (1 for (n, c)) */
    ge_act act;
    float alpha;     /* lrelu slope */
    float gain;      /* multiplied after the activation */
    float b_gain;    /* multiplies b (1 normally) */
    float clamp;     /* < 0: none */
} ge_bias_act_params;

void ge_bias_act_forward(float *y, const float *x, const float *b, const ge_bias_act_params *p);
void ge_bias_act_backward(float *dx, float *db, const float *dy, const float *x, const float *b,
                          const ge_bias_act_params *p);

/* ---- instance norm (no affine, biased variance, as nn.InstanceNorm2d) -------
 * y (n, c, hw) = (x - mean) / sqrt(var + eps) per (n, c). */
void ge_instance_norm_forward(float *y, const float *x, int n, int c, size_t hw, float eps);
void ge_instance_norm_backward(float *dx, const float *dy, const float *x, int n, int c, size_t hw,
                               float eps);

/* ---- max pool 2x2, stride 2 ----------------------------------------------
 * y (n, c, oh, ow) from x (n, c, h, w); ceil_mode: oh = ceil(h/2) (windows
 * past the edge use the elements that exist), else floor(h/2). Ties take the
 * first element in row-major window order, as PyTorch does. */
void ge_maxpool2_out_size(int h, int w, int ceil_mode, int *oh, int *ow);
void ge_maxpool2_forward(float *y, const float *x, int n, int c, int h, int w, int ceil_mode);
void ge_maxpool2_backward(float *dx, const float *dy, const float *x, int n, int c, int h, int w,
                          int ceil_mode);
/* 1: the scalar reference loops only (no AVX-512 windows), for tests; returns
 * the previous setting. */
int ge_maxpool2_scalar(int on);

/* ---- average pool 2x2, stride 2 (for pooling masks down to VGG sizes) --------
 * y (n, c, oh, ow) from x (n, c, h, w), oh/ow as ge_maxpool2_out_size. A
 * window cut by the edge (ceil_mode) averages only the elements inside the
 * input, which is what nn.AvgPool2d(2, ceil_mode=True) does with padding 0. */
void ge_avgpool2_forward(float *y, const float *x, int n, int c, int h, int w, int ceil_mode);
void ge_avgpool2_backward(float *dx, const float *dy, int n, int c, int h, int w, int ceil_mode);

/* ---- nearest upsample x2 ---------------------------------------------------
 * y (n, c, 2h, 2w) from x (n, c, h, w). */
void ge_upsample2_forward(float *y, const float *x, int n, int c, int h, int w);
void ge_upsample2_backward(float *dx, const float *dy, int n, int c, int h, int w);

/* ---- upfirdn2d (StyleGAN2-ADA torch_utils/ops/upfirdn2d.py, its 'ref' impl) ---
 * Per channel: upsample by inserting up-1 zeros after every pixel, pad by
 * (px0, px1, py0, py1) (negative crops), convolve with the 2-D FIR f (fh, fw)
 * (true convolution, i.e. the filter flipped for a correlation, unless
 * flip_filter), multiply by gain, keep every down-th pixel.
 * oh = (h*up + py0 + py1 - fh) / down + 1 (likewise ow).
 * For up=2 and a separable 4-tap filter StyleGAN2 uses f = outer(k, k)/sum,
 * gain = up^2 (upsample2d). */
typedef struct {
    int n, c, h, w;
    int up, down;
    int px0, px1, py0, py1;
    int fh, fw;
    int flip_filter;
    float gain;
} ge_upfirdn2d_params;

void ge_upfirdn2d_out_size(const ge_upfirdn2d_params *p, int *oh, int *ow);
void ge_upfirdn2d_forward(float *y, const float *x, const float *f, const ge_upfirdn2d_params *p);
void ge_upfirdn2d_backward(float *dx, const float *dy, const float *f,
                           const ge_upfirdn2d_params *p);

/* ---- weight modulation / demodulation (StyleGAN2) ---------------------------
 * wm (n, c_out, c_in, k, k) = w (c_out, c_in, k, k) * s (n, c_in)[ci]
 *   * (demod ? d (n, c_out) : 1),   d[o] = 1/sqrt(sum_{ci,k} (w s)^2 + 1e-8).
 * Backward: ds (n, c_in) += ..., dw (c_out, c_in, k, k) += ... (NULL to skip). */
typedef struct {
    int n, c_out, c_in, k;
    int demod;
} ge_modulate_params;

void ge_modulate_forward(float *wm, const float *w, const float *s, const ge_modulate_params *p);
void ge_modulate_backward(float *ds, float *dw, const float *dwm, const float *w, const float *s,
                          const ge_modulate_params *p);

/* ---- modulated convolution, unfused (StyleGAN2's fused_modconv=False) --------
 * The same maths as ge_modulate + a per-sample conv, without ever building
 * per-sample weights: the styles scale the input channels, the SHARED weight
 * convolves, the demodulation coefficients scale the output channels:
 *   y (n, c_out, oh, ow) = d (n, c_out) * conv(x (n, c_in, h, w) * s (n, c_in), w)
 *   d[i,o] = 1 / sqrt(sum_c s[i,c]^2 wsq[o,c] + 1e-8)  (demod; else d = 1),
 *   wsq (c_out, c_in) = sum over the k*k taps of w^2.
 * up 0: conv2d, w (c_out, c_in, k, k), stride 1, zero pad k/2: oh = h.
 * up 1: StyleGAN2's conv0 before its FIR: conv_transpose2d, stride 2, pad 0,
 *       of each sample's weight transposed to (c_in, c_out, k, k) and not
 *       flipped (the model's swap_oi + ge_convt2d): oh = 2 (h - 1) + k.
 * The backward gives dx and ds with one input-gradient convolution, where
 * the fused form costs two (input and per-sample weight gradients); dw (for
 * training; NULL when editing) adds one shared weight-gradient convolution.
 * It needs the forward's output y as well as its input x (the exception to
 * the rule of ops.h): dL/dd comes from y / d. wsq may be given
 * (ge_modconv_wsq, once per weight; recompute it when w changes) or NULL
 * (computed into scratch on every call). */
typedef struct {
    int n, c_in, h, w;
    int c_out, k;
    int up;
    int demod;
    const float *wsq; /* (c_out, c_in) or NULL */
    int w_const;      /* 1: w's values stay the same until ge_modconv_forget(w) (a frozen
                         model while editing): the fast path keeps its packed copy of w
                         between calls; 0: w is packed again on every call (training) */
} ge_modconv_params;

void ge_modconv_out_size(const ge_modconv_params *p, int *oh, int *ow);
/* Drops what w_const calls kept for w; call it before w changes or is freed. */
void ge_modconv_forget(const float *w);
size_t ge_modconv_scratch(const ge_modconv_params *p); /* floats */
/* wsq (c_out, c_in) = sum_taps w^2, for w (c_out, c_in, k, k). */
void ge_modconv_wsq(float *wsq, const float *w, int c_out, int c_in, int k);
void ge_modconv_forward(float *y, const float *x, const float *w, const float *s,
                        const ge_modconv_params *p, float *scratch);
/* dx (n, c_in, h, w) += ..., ds (n, c_in) += ..., dw (c_out, c_in, k, k)
 * += ... (each may be NULL), from dy and the forward's y, x, w, s. */
void ge_modconv_backward(float *dx, float *ds, float *dw, const float *dy, const float *y,
                         const float *x, const float *w, const float *s, const ge_modconv_params *p,
                         float *scratch);

/* ---- noise injection ---------------------------------------------------
 * y (n, c, hw) = x + strength * noise (n_noise, hw) broadcast over c, where
 * noise has one plane per sample (n_noise = n) or one for all (n_noise = 1).
 * dstrength (scalar) may be NULL. */
void ge_noise_forward(float *y, const float *x, const float *noise, float strength, int n, int c,
                      size_t hw, int n_noise);
void ge_noise_backward(float *dx, float *dstrength, const float *dy, const float *noise, int n,
                       int c, size_t hw, int n_noise);

/* ---- 2nd-moment normalisation (StyleGAN2 mapping input) ----------------------
 * y (n, d) = x * rsqrt(mean_j x_j^2 + eps) per row, eps = 1e-8 in StyleGAN2. */
void ge_norm2_forward(float *y, const float *x, int n, int d, float eps);
void ge_norm2_backward(float *dx, const float *dy, const float *x, int n, int d, float eps);

/* ---- losses ----------------------------------------------------------------
 * Each returns the scalar loss and, if da is not NULL, ADDS d loss / d a into da.
 * a, b (n, c, hw); mask (n, 1, hw) broadcast over channels, or NULL (all ones).
 * loss = scale * sum_i mask_i * (a_i - b_i)^2      (l2)
 * loss = scale * sum_i mask_i * |a_i - b_i|        (l1; gradient sign(a-b), 0 at 0)
 * The caller picks scale (1/count for a mean, 0.5 for the spec's 1/2 sum). */
double ge_loss_l2(float *da, const float *a, const float *b, const float *mask, int n, int c,
                  size_t hw, float scale);
double ge_loss_l1(float *da, const float *a, const float *b, const float *mask, int n, int c,
                  size_t hw, float scale);

/* Gram matrix: g (n, c, c) = scale * F F^T with F = x (n, c, hw) (masked by
 * mask (n, 1, hw) if not NULL: F = x * mask). Backward: dx += from dg. */
void ge_gram_forward(float *g, const float *x, const float *mask, int n, int c, size_t hw,
                     float scale);
void ge_gram_backward(float *dx, const float *dg, const float *x, const float *mask, int n, int c,
                      size_t hw, float scale);

/* Reductions: sum and mean of x (count), with their backward (dx += dy or dy/count). */
double ge_sum_forward(const float *x, size_t count);
void ge_sum_backward(float *dx, float dy, size_t count);
double ge_mean_forward(const float *x, size_t count);
void ge_mean_backward(float *dx, float dy, size_t count);

/* ---- minibatch standard deviation (StyleGAN2-ADA MinibatchStdLayer, 1 channel)
 * y (n, c+1, h, w) = x (n, c, h, w) with one extra last channel: the group
 * statistic mean_{c,h,w} sqrt(var_group + 1e-8) (biased variance over the
 * group's G members), the same for every member and pixel. G = min(group, n);
 * sample i is in group i % (n / G). ge_mbstd_group gives G, or 0 where n is
 * not a multiple of G (or n, group <= 0); forward and backward then return -1
 * and write nothing; else 0. Backward: dx (n, c, h, w) += ... (NULL: skipped). */
int ge_mbstd_group(int n, int group);
int ge_mbstd_forward(float *y, const float *x, int n, int c, int h, int w, int group);
int ge_mbstd_backward(float *dx, const float *dy, const float *x, int n, int c, int h, int w,
                      int group);

#endif /* GE_OPS_H */
