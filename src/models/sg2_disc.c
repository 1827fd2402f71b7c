/* sg2_disc.c - the StyleGAN2-ADA discriminator (NVlabs stylegan2-ada-pytorch,
 * training/networks.py Discriminator with architecture 'resnet', no
 * conditioning (c_dim 0), mbstd group 4 with 1 channel, conv_clamp 256,
 * lrelu 0.2 with gain sqrt 2), image (n, 3, R, R) -> one logit per image,
 * with input and weight gradients (training only; ge_disc_* in
 * discriminator.c dispatch here when the set has "b{R}.fromrgb.weight").
 *
 * Tensors (ADA's state-dict names), C(r) = min(channel_base / r, channel_max):
 *   b{R}.fromrgb.weight (C(R), 3, 1, 1) + .bias: 1x1 conv, lrelu, clamp;
 *   per block r = R .. 8, tmp = C(r), out = C(r/2):
 *     b{r}.conv0.weight (tmp, tmp, 3, 3) + .bias: pad 1, lrelu, clamp;
 *     b{r}.conv1.weight (out, tmp, 3, 3) + .bias: FIR blur (pad 2), 3x3
 *         stride 2; lrelu with gain sqrt 2 * sqrt .5, clamp 256 sqrt .5;
 *     b{r}.skip.weight (out, tmp, 1, 1), no bias: FIR (pad 1, down 2), 1x1
 *         conv, linear, gain sqrt .5, no clamp (ADA gives skip no conv_clamp);
 *     x = skip(x) + conv1(conv0(x));
 *   b4: minibatch stddev (ge_mbstd, +1 channel), b4.conv.weight
 *     (C4, C4+1, 3, 3) + .bias pad 1 lrelu clamp; b4.fc.weight (C4, 16 C4)
 *     + .bias lrelu (no clamp); b4.out.weight (1, C4) + .bias linear.
 * Equalised learning rate: conv weights are used times 1/sqrt(c_in k k)
 * (scaled copies refreshed at every forward, since training changes the
 * weights in place), fc weights times 1/sqrt(in); biases times 1. The FIR is
 * [1,3,3,1] (outer product / 64), generated here: ADA's state dict also
 * stores it as "resample_filter" buffers, which this set leaves out (they
 * are not trainable; present ones are ignored) so a weight set holds the
 * trainable tensors only.
 *
 * Like discriminator.c, forward keeps every layer's input in an arena laid
 * out once per batch size; backward walks the blocks in reverse, ADDS the
 * image gradient into dx and each weight gradient into the tensor of grads
 * with the weight's name (absent names and NULLs skipped). */
#include "kernels/kernels.h"
#include "models/models.h"
#include "ops/ops.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_MAX_BLOCKS 8 /* 1024 .. 8 */
#define SD_SLOPE 0.2f
#define SD_CLAMP 256.f
#define SD_MBSTD_GROUP 4

typedef struct {
    int res, tmp, out, has_rgb;
    const float *rgb_w, *rgb_b, *w0, *b0, *w1, *b1, *ws; /* the set's tensors */
    float *rgb_wq, *w0q, *w1q, *wsq;                     /* scaled copies */
    float g_rgb, g0, g1, gs;                             /* their gains */
    /* forward (arena): img (n,3,r,r), pre_rgb (n,tmp,r,r), x block input
     * (n,tmp,r,r), blur_s (n,tmp,r/2,r/2), pre0/a0 (n,tmp,r,r),
     * blur1 (n,tmp,r+1,r+1), pre1/a1 (n,out,r/2,r/2) */
    float *img, *pre_rgb, *x, *blur_s, *pre0, *a0, *blur1, *pre1, *a1;
    /* gradients (arena), shaped like the buffers they are named after */
    float *gx, *g_pre_rgb, *g_blur_s, *g_pre0, *g_a0, *g_blur1, *g_pre1;
    /* frozen activation pattern (ge_sg2_disc_freeze): copies of pre_rgb,
     * pre0, pre1 of the frozen forward, or NULL */
    const float *ref_rgb, *ref0, *ref1;
} sd_block;

struct ge_sg2_disc {
    ge_tensors *w;
    int resolution, n_blocks, c4;
    sd_block blk[SD_MAX_BLOCKS];
    const float *wc, *bc, *wfc, *bfc, *wout, *bout;
    float *wcq, gc;
    float *wq_block; /* all scaled copies */
    float *dw_tmp;   /* the largest conv weight, for one weight gradient */
    float filter[16];
    int n; /* planned batch size, 0: none */
    float *arena, *scratch;
    size_t arena_len;
    /* epilogue (arena): x4 (n,C4,4,4), mb (n,C4+1,4,4), prec/ac (n,C4,4,4),
     * prefc/afc (n,C4), logits (n); their gradients */
    float *x4, *mb, *prec, *ac, *prefc, *afc;
    float *g_x4, *g_mb, *g_prec, *g_ac, *g_prefc, *g_afc;
    int have_forward;
    float *frozen;                  /* the frozen pre-activations, back to back */
    size_t frozen_len;
    const float *ref_c, *ref_fc;    /* frozen prec, prefc, or NULL */
};

/* ---- parameters of the ops ------------------------------------------------ */

static ge_conv2d_params sd_conv(int n, int c_in, int h, int c_out, int k, int stride, int pad) {
    ge_conv2d_params p = {0};
    p.n = n, p.c_in = c_in, p.h = h, p.w = h;
    p.c_out = c_out, p.kh = k, p.kw = k;
    p.stride = stride, p.pad = pad, p.pad_mode = GE_PAD_ZERO;
    return p;
}

static ge_bias_act_params sd_act(int n, int c, size_t spatial, ge_act act, float gain,
                                 float clamp) {
    ge_bias_act_params p = {0};
    p.n = n, p.c = c, p.spatial = spatial;
    p.act = act, p.alpha = SD_SLOPE;
    p.gain = gain, p.b_gain = 1.f, p.clamp = clamp;
    return p;
}

/* FIR with the [1,3,3,1] filter on (n, c, h, h): pad each side, keep every down-th. */
static ge_upfirdn2d_params sd_fir(int n, int c, int h, int pad, int down) {
    ge_upfirdn2d_params p = {0};
    p.n = n, p.c = c, p.h = h, p.w = h;
    p.up = 1, p.down = down;
    p.px0 = p.px1 = p.py0 = p.py1 = pad;
    p.fh = p.fw = 4;
    p.gain = 1.f;
    return p;
}

static const float SQRT2 = 1.41421356237f, SQRTH = 0.70710678118f;

/* The convolutions of block b, in a fixed order (for scratch sizing). */
static ge_conv2d_params blk_conv_rgb(const sd_block *B, int n) {
    return sd_conv(n, 3, B->res, B->tmp, 1, 1, 0);
}
static ge_conv2d_params blk_conv_skip(const sd_block *B, int n) {
    return sd_conv(n, B->tmp, B->res / 2, B->out, 1, 1, 0);
}
static ge_conv2d_params blk_conv0(const sd_block *B, int n) {
    return sd_conv(n, B->tmp, B->res, B->tmp, 3, 1, 1);
}
static ge_conv2d_params blk_conv1(const sd_block *B, int n) {
    return sd_conv(n, B->tmp, B->res + 1, B->out, 3, 2, 0);
}
static ge_conv2d_params epi_conv(const ge_sg2_disc *d, int n) {
    return sd_conv(n, d->c4 + 1, 4, d->c4, 3, 1, 1);
}

/* ---- arena ------------------------------------------------------------------ */

static size_t up16(size_t x) {
    return (x + 15) & ~(size_t)15;
}

/* Takes count floats from *at (a NULL base only counts). */
static float *take(float **at, size_t *total, size_t count, int assign) {
    float *p = assign ? *at : NULL;
    if (assign) *at += up16(count);
    *total += up16(count);
    return p;
}

/* Lays out (assign) or sizes (!assign) the arena for batch n; returns floats. */
static size_t sd_layout(ge_sg2_disc *d, int n, float *base, int assign) {
    size_t total = 0, scratch = 0;
    float *at = base;
    for (int b = 0; b < d->n_blocks; b++) {
        sd_block *B = &d->blk[b];
        size_t r = (size_t)B->res, h = r / 2, N = (size_t)n;
        size_t full = N * B->tmp * r * r, half_t = N * B->tmp * h * h, half_o = N * B->out * h * h;
        size_t blur = N * B->tmp * (r + 1) * (r + 1);
        float *p;
        if (B->has_rgb) {
            p = take(&at, &total, N * 3 * r * r, assign);
            if (assign) B->img = p;
            p = take(&at, &total, full, assign);
            if (assign) B->pre_rgb = p;
            p = take(&at, &total, full, assign);
            if (assign) B->g_pre_rgb = p;
        }
        /* block b's input is block b-1's output; block 0's is fromrgb's */
        float *x = take(&at, &total, full, assign), *gx = take(&at, &total, full, assign);
        if (assign) B->x = x, B->gx = gx;
        /* the layer buffers, then their gradients, in sd_block's order */
        float **ptrs[11] = {&B->blur_s,   &B->pre0,   &B->a0,   &B->blur1,   &B->pre1,  &B->a1,
                            &B->g_blur_s, &B->g_pre0, &B->g_a0, &B->g_blur1, &B->g_pre1};
        size_t sizes[11] = {half_t, full, full, blur, half_o, half_o,
                            half_t, full, full, blur, half_o};
        for (int i = 0; i < 11; i++) {
            float *p = take(&at, &total, sizes[i], assign);
            if (assign) *ptrs[i] = p;
        }
        ge_conv2d_params cs[4] = {blk_conv_rgb(B, n), blk_conv_skip(B, n), blk_conv0(B, n),
                                  blk_conv1(B, n)};
        for (int i = B->has_rgb ? 0 : 1; i < 4; i++) {
            size_t s = ge_conv2d_scratch(&cs[i]);
            if (s > scratch) scratch = s;
        }
    }
    size_t N = (size_t)n, c4 = (size_t)d->c4;
    size_t e_sizes[6] = {N * c4 * 16, N * (c4 + 1) * 16, N * c4 * 16, N * c4 * 16, N * c4, N * c4};
    float **e_ptrs[12] = {&d->x4,   &d->mb,   &d->prec,   &d->ac,   &d->prefc,   &d->afc,
                          &d->g_x4, &d->g_mb, &d->g_prec, &d->g_ac, &d->g_prefc, &d->g_afc};
    for (int i = 0; i < 12; i++) {
        float *p = take(&at, &total, e_sizes[i % 6], assign);
        if (assign) *e_ptrs[i] = p;
    }
    ge_conv2d_params ce = epi_conv(d, n);
    size_t s = ge_conv2d_scratch(&ce);
    if (s > scratch) scratch = s;
    float *p = take(&at, &total, scratch ? scratch : 1, assign);
    if (assign) d->scratch = p;
    return total;
}

/* Plans the arena for batch n (kept while n fits, grown when it does not). */
static ge_status sd_plan(ge_sg2_disc *d, int n) {
    if (d->n == n) return GE_OK;
    d->have_forward = 0;
    size_t all = sd_layout(d, n, NULL, 0);
    if (all > d->arena_len) {
        free(d->arena);
        d->arena = NULL;
        d->arena_len = 0;
        d->n = 0;
        d->arena = ge_alloc_floats(all);
        if (!d->arena)
            return ge_fail(GE_ERR_NOMEM, "out of memory for a discriminator batch of %d", n);
        d->arena_len = all;
    }
    sd_layout(d, n, d->arena, 1);
    d->n = n;
    return GE_OK;
}

/* ---- forward ---------------------------------------------------------------- */

static void scale_copy(float *dst, const float *src, size_t count, float gain) {
    for (size_t i = 0; i < count; i++)
        dst[i] = src[i] * gain;
}

/* The scaled weights from the set's current values. */
static void sd_refresh_weights(ge_sg2_disc *d) {
    for (int b = 0; b < d->n_blocks; b++) {
        sd_block *B = &d->blk[b];
        size_t tt9 = (size_t)B->tmp * B->tmp * 9, ot9 = (size_t)B->out * B->tmp * 9;
        if (B->has_rgb) scale_copy(B->rgb_wq, B->rgb_w, (size_t)B->tmp * 3, B->g_rgb);
        scale_copy(B->w0q, B->w0, tt9, B->g0);
        scale_copy(B->w1q, B->w1, ot9, B->g1);
        scale_copy(B->wsq, B->ws, (size_t)B->out * B->tmp, B->gs);
    }
    scale_copy(d->wcq, d->wc, (size_t)d->c4 * (d->c4 + 1) * 9, d->gc);
}

/* bias_act's forward, or with ref (frozen pre-activations of the same shape)
 * the leaky ReLU and clamp linearised at ref: y = (x + b) * slope(ref + b) *
 * gain, or the clamp value where the clamp cut ref's output. Its backward is
 * ge_bias_act_backward given ref as the input (the derivative taken at ref). */
static void act_fwd(float *y, const float *x, const float *b, const float *ref,
                    const ge_bias_act_params *p) {
    if (!ref) {
        ge_bias_act_forward(y, x, b, p);
        return;
    }
    size_t sp = p->spatial;
    float g = p->gain, c = p->clamp;
    for (int r = 0; r < p->n * p->c; r++) {
        float bias = b ? p->b_gain * b[r % p->c] : 0.f;
        size_t o = (size_t)r * sp;
        for (size_t j = 0; j < sp; j++) {
            float v0 = ref[o + j] + bias, k = v0 > 0.f ? 1.f : p->alpha, z0 = v0 * k * g;
            if (c >= 0.f && !(z0 >= -c && z0 <= c))
                y[o + j] = z0 < -c ? -c : c;
            else
                y[o + j] = (x[o + j] + bias) * k * g;
        }
    }
}

static void block_forward(ge_sg2_disc *d, sd_block *B, float *y, int n) {
    int r = B->res, h = r / 2;
    size_t plane = (size_t)r * r;
    if (B->has_rgb) {
        ge_conv2d_params p = blk_conv_rgb(B, n);
        ge_conv2d_forward(B->pre_rgb, B->img, B->rgb_wq, NULL, &p, d->scratch);
        ge_bias_act_params a = sd_act(n, B->tmp, plane, GE_ACT_LRELU, SQRT2, SD_CLAMP);
        act_fwd(B->x, B->pre_rgb, B->rgb_b, B->ref_rgb, &a);
    }
    /* skip: FIR down 2, then 1x1 (gain sqrt .5 inside wsq) straight into y */
    ge_upfirdn2d_params fs = sd_fir(n, B->tmp, r, 1, 2);
    ge_upfirdn2d_forward(B->blur_s, B->x, d->filter, &fs);
    ge_conv2d_params ps = blk_conv_skip(B, n);
    ge_conv2d_forward(y, B->blur_s, B->wsq, NULL, &ps, d->scratch);
    /* conv0 */
    ge_conv2d_params p0 = blk_conv0(B, n);
    ge_conv2d_forward(B->pre0, B->x, B->w0q, NULL, &p0, d->scratch);
    ge_bias_act_params a0 = sd_act(n, B->tmp, plane, GE_ACT_LRELU, SQRT2, SD_CLAMP);
    act_fwd(B->a0, B->pre0, B->b0, B->ref0, &a0);
    /* conv1: FIR pad 2, 3x3 stride 2 */
    ge_upfirdn2d_params f1 = sd_fir(n, B->tmp, r, 2, 1);
    ge_upfirdn2d_forward(B->blur1, B->a0, d->filter, &f1);
    ge_conv2d_params p1 = blk_conv1(B, n);
    ge_conv2d_forward(B->pre1, B->blur1, B->w1q, NULL, &p1, d->scratch);
    ge_bias_act_params a1 =
        sd_act(n, B->out, (size_t)h * h, GE_ACT_LRELU, SQRT2 * SQRTH, SD_CLAMP * SQRTH);
    act_fwd(B->a1, B->pre1, B->b1, B->ref1, &a1);
    size_t cnt = (size_t)n * B->out * h * h;
    for (size_t i = 0; i < cnt; i++)
        y[i] += B->a1[i];
}

static ge_linear_params fc_params(const ge_sg2_disc *d, int n) {
    ge_linear_params p = {n, d->c4 * 16, d->c4, (float)(1.0 / sqrt(d->c4 * 16.0)), 1.f};
    return p;
}
static ge_linear_params out_params(const ge_sg2_disc *d, int n) {
    ge_linear_params p = {n, d->c4, 1, (float)(1.0 / sqrt((double)d->c4)), 1.f};
    return p;
}

ge_status ge_sg2_disc_forward(ge_sg2_disc *d, float *logits, const float *x, int n) {
    if (n <= 0) return ge_fail(GE_ERR_ARG, "batch size must be positive (got %d)", n);
    if (!ge_mbstd_group(n, SD_MBSTD_GROUP))
        return ge_fail(GE_ERR_ARG,
                       "the StyleGAN2 discriminator's minibatch-stddev layer needs a batch "
                       "below %d or a multiple of %d (got %d)",
                       SD_MBSTD_GROUP, SD_MBSTD_GROUP, n);
    if (d->ref_fc && n != d->n)
        return ge_fail(GE_ERR_ARG, "a frozen discriminator keeps its batch size (%d, got %d)",
                       d->n, n);
    ge_status s = sd_plan(d, n);
    if (s != GE_OK) return s;
    sd_refresh_weights(d);
    int R = d->resolution;
    memcpy(d->blk[0].img, x, (size_t)n * 3 * R * R * sizeof(float));
    for (int b = 0; b < d->n_blocks; b++) {
        float *y = b + 1 < d->n_blocks ? d->blk[b + 1].x : d->x4;
        block_forward(d, &d->blk[b], y, n);
    }
    int c4 = d->c4;
    ge_mbstd_forward(d->mb, d->x4, n, c4, 4, 4, SD_MBSTD_GROUP);
    ge_conv2d_params pc = epi_conv(d, n);
    ge_conv2d_forward(d->prec, d->mb, d->wcq, NULL, &pc, d->scratch);
    ge_bias_act_params ac = sd_act(n, c4, 16, GE_ACT_LRELU, SQRT2, SD_CLAMP);
    act_fwd(d->ac, d->prec, d->bc, d->ref_c, &ac);
    ge_linear_params pf = fc_params(d, n);
    ge_linear_forward(d->prefc, d->ac, d->wfc, NULL, &pf);
    ge_bias_act_params af = sd_act(n, c4, 1, GE_ACT_LRELU, SQRT2, -1.f);
    act_fwd(d->afc, d->prefc, d->bfc, d->ref_fc, &af);
    ge_linear_params po = out_params(d, n);
    ge_linear_forward(logits, d->afc, d->wout, d->bout, &po);
    d->have_forward = 1;
    return GE_OK;
}

ge_status ge_sg2_disc_freeze(ge_sg2_disc *d, int on) {
    for (int b = 0; b < d->n_blocks; b++)
        d->blk[b].ref_rgb = d->blk[b].ref0 = d->blk[b].ref1 = NULL;
    d->ref_c = d->ref_fc = NULL;
    if (!on) return GE_OK;
    if (!d->have_forward) return ge_fail(GE_ERR_ARG, "discriminator freeze before a forward");
    /* what to keep: (source, count, where the reference pointer goes) */
    size_t N = (size_t)d->n, c4 = (size_t)d->c4, total = 0;
    const float *src[3 * SD_MAX_BLOCKS + 2];
    const float **dst[3 * SD_MAX_BLOCKS + 2];
    size_t cnt[3 * SD_MAX_BLOCKS + 2];
    int k = 0;
    for (int b = 0; b < d->n_blocks; b++) {
        sd_block *B = &d->blk[b];
        size_t r = (size_t)B->res, full = N * B->tmp * r * r,
               half_o = N * B->out * (r / 2) * (r / 2);
        if (B->has_rgb) src[k] = B->pre_rgb, dst[k] = &B->ref_rgb, cnt[k++] = full;
        src[k] = B->pre0, dst[k] = &B->ref0, cnt[k++] = full;
        src[k] = B->pre1, dst[k] = &B->ref1, cnt[k++] = half_o;
    }
    src[k] = d->prec, dst[k] = &d->ref_c, cnt[k++] = N * c4 * 16;
    src[k] = d->prefc, dst[k] = &d->ref_fc, cnt[k++] = N * c4;
    for (int i = 0; i < k; i++) total += cnt[i];
    if (total > d->frozen_len) {
        free(d->frozen);
        d->frozen_len = 0;
        if (!(d->frozen = ge_alloc_floats(total)))
            return ge_fail(GE_ERR_NOMEM, "out of memory for the frozen discriminator");
        d->frozen_len = total;
    }
    float *at = d->frozen;
    for (int i = 0; i < k; i++) {
        memcpy(at, src[i], cnt[i] * sizeof(float));
        *dst[i] = at;
        at += cnt[i];
    }
    return GE_OK;
}

/* ---- backward ----------------------------------------------------------------- */

/* A conv's backward: dx += ..., and the named weight gradient += gain * dW. */
static void conv_back(ge_sg2_disc *d, float *dx, const ge_tensors *grads, int res, const char *what,
                      float gain, const float *dy, const float *x, const float *wq,
                      const ge_conv2d_params *p) {
    float *gw = ge_tensors_data_of(grads, "b%d.%s", res, what);
    size_t wn = (size_t)p->c_out * p->c_in * p->kh * p->kw;
    if (gw) memset(d->dw_tmp, 0, wn * sizeof(float));
    ge_conv2d_backward(dx, gw ? d->dw_tmp : NULL, NULL, dy, x, wq, p, d->scratch);
    if (gw)
        for (size_t i = 0; i < wn; i++)
            gw[i] += gain * d->dw_tmp[i];
}

static void zero(float *p, size_t count) {
    memset(p, 0, count * sizeof(float));
}

/* gy (n, out, r/2, r/2): block output gradient; fills B->gx; the first block
 * also adds the image gradient into dx (may be NULL). */
static void block_backward(ge_sg2_disc *d, sd_block *B, float *dx, const ge_tensors *grads,
                           const float *gy, int n) {
    int r = B->res, h = r / 2;
    size_t N = (size_t)n, plane = (size_t)r * r;
    size_t full = N * B->tmp * plane, half_t = N * B->tmp * h * h;
    size_t half_o = N * B->out * h * h, blur = N * B->tmp * (r + 1) * (r + 1);
    zero(B->gx, full);
    /* skip */
    zero(B->g_blur_s, half_t);
    ge_conv2d_params ps = blk_conv_skip(B, n);
    conv_back(d, B->g_blur_s, grads, r, "skip.weight", B->gs, gy, B->blur_s, B->wsq, &ps);
    ge_upfirdn2d_params fs = sd_fir(n, B->tmp, r, 1, 2);
    ge_upfirdn2d_backward(B->gx, B->g_blur_s, d->filter, &fs);
    /* conv1 */
    zero(B->g_pre1, half_o);
    ge_bias_act_params a1 =
        sd_act(n, B->out, (size_t)h * h, GE_ACT_LRELU, SQRT2 * SQRTH, SD_CLAMP * SQRTH);
    ge_bias_act_backward(B->g_pre1, ge_tensors_data_of(grads, "b%d.conv1.bias", r), gy,
                         B->ref1 ? B->ref1 : B->pre1, B->b1, &a1);
    zero(B->g_blur1, blur);
    ge_conv2d_params p1 = blk_conv1(B, n);
    conv_back(d, B->g_blur1, grads, r, "conv1.weight", B->g1, B->g_pre1, B->blur1, B->w1q, &p1);
    zero(B->g_a0, full);
    ge_upfirdn2d_params f1 = sd_fir(n, B->tmp, r, 2, 1);
    ge_upfirdn2d_backward(B->g_a0, B->g_blur1, d->filter, &f1);
    /* conv0 */
    zero(B->g_pre0, full);
    ge_bias_act_params a0 = sd_act(n, B->tmp, plane, GE_ACT_LRELU, SQRT2, SD_CLAMP);
    ge_bias_act_backward(B->g_pre0, ge_tensors_data_of(grads, "b%d.conv0.bias", r), B->g_a0,
                         B->ref0 ? B->ref0 : B->pre0, B->b0, &a0);
    ge_conv2d_params p0 = blk_conv0(B, n);
    conv_back(d, B->gx, grads, r, "conv0.weight", B->g0, B->g_pre0, B->x, B->w0q, &p0);
    if (B->has_rgb) {
        zero(B->g_pre_rgb, full);
        ge_bias_act_params ar = sd_act(n, B->tmp, plane, GE_ACT_LRELU, SQRT2, SD_CLAMP);
        ge_bias_act_backward(B->g_pre_rgb, ge_tensors_data_of(grads, "b%d.fromrgb.bias", r), B->gx,
                             B->ref_rgb ? B->ref_rgb : B->pre_rgb, B->rgb_b, &ar);
        ge_conv2d_params pr = blk_conv_rgb(B, n);
        conv_back(d, dx, grads, r, "fromrgb.weight", B->g_rgb, B->g_pre_rgb, B->img, B->rgb_wq,
                  &pr);
    }
}

/* A gradient tensor with a weight's name must have its size (it is added into). */
static ge_status sd_check_grads(const ge_sg2_disc *d, const ge_tensors *grads) {
    if (!grads) return GE_OK;
    for (int i = 0; i < ge_tensors_count(d->w); i++) {
        const ge_tensor *t = ge_tensors_at(d->w, i);
        const ge_tensor *g = ge_tensors_find(grads, t->name);
        if (g && g->numel != t->numel)
            return ge_fail(GE_ERR_SHAPE, "gradient tensor '%s' has %zu elements, the weight %zu",
                           t->name, g->numel, t->numel);
    }
    return GE_OK;
}

ge_status ge_sg2_disc_backward(ge_sg2_disc *d, float *dx, const ge_tensors *grads,
                               const float *dlogits) {
    if (!d->have_forward) return ge_fail(GE_ERR_ARG, "discriminator backward before forward");
    ge_status s = sd_check_grads(d, grads);
    if (s != GE_OK) return s;
    int n = d->n, c4 = d->c4;
    size_t N = (size_t)n;
    /* out, fc */
    zero(d->g_afc, N * c4);
    ge_linear_params po = out_params(d, n);
    ge_linear_backward(d->g_afc, ge_tensors_data_of(grads, "b4.out.weight"),
                       ge_tensors_data_of(grads, "b4.out.bias"), dlogits, d->afc, d->wout, &po);
    zero(d->g_prefc, N * c4);
    ge_bias_act_params af = sd_act(n, c4, 1, GE_ACT_LRELU, SQRT2, -1.f);
    ge_bias_act_backward(d->g_prefc, ge_tensors_data_of(grads, "b4.fc.bias"), d->g_afc,
                         d->ref_fc ? d->ref_fc : d->prefc, d->bfc, &af);
    zero(d->g_ac, N * c4 * 16);
    ge_linear_params pf = fc_params(d, n);
    ge_linear_backward(d->g_ac, ge_tensors_data_of(grads, "b4.fc.weight"), NULL, d->g_prefc, d->ac,
                       d->wfc, &pf);
    /* conv, mbstd */
    zero(d->g_prec, N * c4 * 16);
    ge_bias_act_params ac = sd_act(n, c4, 16, GE_ACT_LRELU, SQRT2, SD_CLAMP);
    ge_bias_act_backward(d->g_prec, ge_tensors_data_of(grads, "b4.conv.bias"), d->g_ac,
                         d->ref_c ? d->ref_c : d->prec, d->bc, &ac);
    zero(d->g_mb, N * (c4 + 1) * 16);
    ge_conv2d_params pc = epi_conv(d, n);
    conv_back(d, d->g_mb, grads, 4, "conv.weight", d->gc, d->g_prec, d->mb, d->wcq, &pc);
    zero(d->g_x4, N * c4 * 16);
    ge_mbstd_backward(d->g_x4, d->g_mb, d->x4, n, c4, 4, 4, SD_MBSTD_GROUP);
    for (int b = d->n_blocks - 1; b >= 0; b--) {
        const float *gy = b + 1 < d->n_blocks ? d->blk[b + 1].gx : d->g_x4;
        block_backward(d, &d->blk[b], dx, grads, gy, n);
    }
    return GE_OK;
}

int ge_sg2_disc_resolution(const ge_sg2_disc *d) {
    return d->resolution;
}

void ge_sg2_disc_free(ge_sg2_disc *d) {
    if (!d) return;
    free(d->arena);
    free(d->wq_block);
    free(d->dw_tmp);
    free(d->frozen);
    ge_tensors_free(d->w);
    free(d);
}

/* ---- building from a weight set ------------------------------------------------ */

static int ilog2_exact(int r) {
    int l = 0;
    while (l < 31 && (1 << l) < r)
        l++;
    return (1 << l) == r ? l : -1;
}

int ge_sg2_disc_detect(const ge_tensors *w) {
    int best = 0;
    for (int i = 0; i < ge_tensors_count(w); i++) {
        const char *name = ge_tensors_at(w, i)->name;
        int r = 0, end = 0;
        if (sscanf(name, "b%d.fromrgb.weight%n", &r, &end) == 1 && end > 0 && name[end] == '\0' &&
            r > best)
            best = r;
    }
    return best;
}

/* Finds "b{res}.{what}" with the given shape (dims d0.., ndim of them). */
static ge_status want(const float **out, const ge_tensors *w, const char *path, int res,
                      const char *what, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    char key[64];
    snprintf(key, sizeof key, "b%d.%s", res, what);
    int64_t shape[4] = {d0, d1, d2, d3};
    const ge_tensor *t;
    ge_status s = ge_expect_tensor(&t, w, path, key, ndim, shape);
    if (s == GE_OK) *out = t->data;
    return s;
}

/* Output channels of a (c, ...) tensor "b{res}.{what}", or 0 (missing/odd). */
static int lead_dim(const ge_tensors *w, int res, const char *what) {
    char key[64];
    snprintf(key, sizeof key, "b%d.%s", res, what);
    const ge_tensor *t = ge_tensors_find(w, key);
    if (!t || t->ndim < 1 || t->shape[0] < 1 || t->shape[0] > 65536) return 0;
    return (int)t->shape[0];
}

static ge_status sd_build(ge_sg2_disc *d, const char *path) {
    int R = ge_sg2_disc_detect(d->w), lg = ilog2_exact(R);
    if (lg < 3 || lg > 10)
        return ge_fail(GE_ERR_FORMAT,
                       "%s: a StyleGAN2 discriminator's resolution is a power of two 8..1024 "
                       "(b%d.fromrgb.weight)",
                       path, R);
    for (int r = R / 2; r >= 4; r /= 2)
        if (lead_dim(d->w, r, "fromrgb.weight"))
            return ge_fail(GE_ERR_UNSUPPORTED,
                           "%s: b%d.fromrgb.weight: only the resnet architecture (one fromrgb, "
                           "in b%d) is supported",
                           path, r, R);
    d->resolution = R;
    d->n_blocks = lg - 2;
    int tmp = lead_dim(d->w, R, "fromrgb.weight");
    if (!tmp) return ge_fail(GE_ERR_SHAPE, "%s: b%d.fromrgb.weight has no channels", path, R);
    size_t wq = 0, wmax = 0;
    ge_status s;
    for (int b = 0; b < d->n_blocks; b++) {
        sd_block *B = &d->blk[b];
        int r = R >> b;
        B->res = r, B->tmp = tmp, B->has_rgb = b == 0;
        B->out = lead_dim(d->w, r, "conv1.weight");
        if (!B->out) B->out = 1; /* then the shape check names the tensor */
        int out = B->out;
        if (B->has_rgb) {
            if ((s = want(&B->rgb_w, d->w, path, r, "fromrgb.weight", 4, tmp, 3, 1, 1)) ||
                (s = want(&B->rgb_b, d->w, path, r, "fromrgb.bias", 1, tmp, 0, 0, 0)))
                return s;
            wq += up16((size_t)tmp * 3);
        }
        if ((s = want(&B->w0, d->w, path, r, "conv0.weight", 4, tmp, tmp, 3, 3)) ||
            (s = want(&B->b0, d->w, path, r, "conv0.bias", 1, tmp, 0, 0, 0)) ||
            (s = want(&B->w1, d->w, path, r, "conv1.weight", 4, out, tmp, 3, 3)) ||
            (s = want(&B->b1, d->w, path, r, "conv1.bias", 1, out, 0, 0, 0)) ||
            (s = want(&B->ws, d->w, path, r, "skip.weight", 4, out, tmp, 1, 1)))
            return s;
        B->g_rgb = (float)(1.0 / sqrt(3.0));
        B->g0 = (float)(1.0 / sqrt(tmp * 9.0));
        B->g1 = (float)(1.0 / sqrt(tmp * 9.0));
        B->gs = (float)(1.0 / sqrt((double)tmp) * sqrt(0.5));
        size_t tt9 = (size_t)tmp * tmp * 9, ot9 = (size_t)out * tmp * 9;
        wq += up16(tt9) + up16(ot9) + up16((size_t)out * tmp);
        if (tt9 > wmax) wmax = tt9;
        if (ot9 > wmax) wmax = ot9;
        tmp = out;
    }
    int c4 = d->c4 = tmp;
    if ((s = want(&d->wc, d->w, path, 4, "conv.weight", 4, c4, c4 + 1, 3, 3)) ||
        (s = want(&d->bc, d->w, path, 4, "conv.bias", 1, c4, 0, 0, 0)) ||
        (s = want(&d->wfc, d->w, path, 4, "fc.weight", 2, c4, (int64_t)c4 * 16, 0, 0)) ||
        (s = want(&d->bfc, d->w, path, 4, "fc.bias", 1, c4, 0, 0, 0)) ||
        (s = want(&d->wout, d->w, path, 4, "out.weight", 2, 1, c4, 0, 0)) ||
        (s = want(&d->bout, d->w, path, 4, "out.bias", 1, 1, 0, 0, 0)))
        return s;
    d->gc = (float)(1.0 / sqrt((c4 + 1) * 9.0));
    size_t wc = (size_t)c4 * (c4 + 1) * 9;
    wq += up16(wc);
    if (wc > wmax) wmax = wc;
    d->wq_block = ge_alloc_floats(wq);
    d->dw_tmp = ge_alloc_floats(wmax);
    if (!d->wq_block || !d->dw_tmp)
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory for the discriminator's weights", path);
    float *p = d->wq_block;
    for (int b = 0; b < d->n_blocks; b++) {
        sd_block *B = &d->blk[b];
        if (B->has_rgb) B->rgb_wq = p, p += up16((size_t)B->tmp * 3);
        B->w0q = p, p += up16((size_t)B->tmp * B->tmp * 9);
        B->w1q = p, p += up16((size_t)B->out * B->tmp * 9);
        B->wsq = p, p += up16((size_t)B->out * B->tmp);
    }
    d->wcq = p;
    static const float k1[4] = {1.f, 3.f, 3.f, 1.f};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            d->filter[i * 4 + j] = k1[i] * k1[j] / 64.f;
    return GE_OK;
}

ge_status ge_sg2_disc_create(ge_sg2_disc **out, ge_tensors *w, const char *path) {
    *out = NULL;
    ge_sg2_disc *d = ge_calloc(1, sizeof *d);
    if (!d) {
        ge_tensors_free(w);
        return GE_ERR_NOMEM;
    }
    d->w = w;
    ge_status s = sd_build(d, path);
    if (s != GE_OK) {
        ge_sg2_disc_free(d);
        return s;
    }
    *out = d;
    return GE_OK;
}

/* ---- initialisation ------------------------------------------------------------ */

#define SD_MAX_TENSORS (2 + 5 * SD_MAX_BLOCKS + 6)

ge_status ge_sg2_disc_init(ge_tensors **out, int res, int channel_base, int channel_max,
                           ge_rng *rng) {
    *out = NULL;
    int lg = ilog2_exact(res);
    if (lg < 3 || lg > 10)
        return ge_fail(GE_ERR_ARG,
                       "StyleGAN2 discriminator resolution must be 8..1024, a power of two "
                       "(got %d)",
                       res);
    if (channel_max < 1 || channel_max > 65536 || channel_base < res || channel_base > (1 << 26))
        return ge_fail(GE_ERR_ARG,
                       "StyleGAN2 discriminator channel_base must be %d..%d and channel_max "
                       "1..65536 (got %d, %d)",
                       res, 1 << 26, channel_base, channel_max);
    char names[SD_MAX_TENSORS][32];
    const char *np[SD_MAX_TENSORS];
    int nd[SD_MAX_TENSORS], n = 0;
    int64_t sh[SD_MAX_TENSORS][4];
#define SD_ADD(nm, ndim, a, b, c, e)                                                               \
    do {                                                                                           \
        snprintf(names[n], 32, "b%d.%s", r, nm);                                                   \
        np[n] = names[n], nd[n] = ndim;                                                            \
        sh[n][0] = a, sh[n][1] = b, sh[n][2] = c, sh[n][3] = e;                                    \
        n++;                                                                                       \
    } while (0)
    for (int r = res; r >= 8; r /= 2) {
        int tmp = channel_base / r < channel_max ? channel_base / r : channel_max;
        int o = channel_base / (r / 2) < channel_max ? channel_base / (r / 2) : channel_max;
        if (r == res) {
            SD_ADD("fromrgb.weight", 4, tmp, 3, 1, 1);
            SD_ADD("fromrgb.bias", 1, tmp, 1, 1, 1);
        }
        SD_ADD("conv0.weight", 4, tmp, tmp, 3, 3);
        SD_ADD("conv0.bias", 1, tmp, 1, 1, 1);
        SD_ADD("conv1.weight", 4, o, tmp, 3, 3);
        SD_ADD("conv1.bias", 1, o, 1, 1, 1);
        SD_ADD("skip.weight", 4, o, tmp, 1, 1);
    }
    {
        int r = 4, c4 = channel_base / 4 < channel_max ? channel_base / 4 : channel_max;
        SD_ADD("conv.weight", 4, c4, c4 + 1, 3, 3);
        SD_ADD("conv.bias", 1, c4, 1, 1, 1);
        SD_ADD("fc.weight", 2, c4, (int64_t)c4 * 16, 1, 1);
        SD_ADD("fc.bias", 1, c4, 1, 1, 1);
        SD_ADD("out.weight", 2, 1, c4, 1, 1);
        SD_ADD("out.bias", 1, 1, 1, 1, 1);
    }
#undef SD_ADD
    ge_status s = ge_flat_new(out, n, np, nd, (const int64_t(*)[4])sh);
    if (s != GE_OK) return s;
    for (int i = 0; i < n; i++) { /* weights N(0, 1), biases 0 (already) */
        ge_tensor *t = (ge_tensor *)ge_tensors_at(*out, i);
        if (t->ndim > 1) ge_rng_fill_normal(rng, t->data, t->numel);
    }
    return GE_OK;
}
