/* stylegan2.c - the StyleGAN2-ADA generator (NVlabs stylegan2-ada-pytorch,
 * training/networks.py Generator with the 'skip' synthesis architecture):
 * mapping network, synthesis network, and the backward pass from the image to
 * each latent space (z, w, w+). Editing never trains the weights, so the
 * plain backward computes no weight gradient; the styles' gradients come from
 * the per-sample (modulated) weight gradients that ge_conv2d / ge_convt2d
 * give. For training (src/train), backward_params also adds every trainable
 * tensor's gradient into a tensor set keyed by the state-dict names: conv
 * and torgb weights, biases, affine layers, noise strengths, the b4 const
 * and, for z inputs, the mapping layers (buffers such as w_avg, noise_const
 * and resample_filter get none).
 *
 * How it maps to the official code (docs/stylegan2.md has the long version):
 *  - MappingNetwork: normalize_2nd_moment (ge_norm2), then per fc layer
 *    x W^T * lr/sqrt(in) (ge_linear) and bias_act(b * lr, lrelu 0.2, gain
 *    sqrt 2) (ge_bias_act); broadcast to num_ws; truncation = torch.lerp.
 *  - SynthesisLayer (fused modconv, as in eval mode): styles = affine(w)
 *    (ge_linear, gain 1/sqrt(w_dim)); per-sample weights modulated and
 *    demodulated (ge_modulate); conv1 is conv2d pad 1 with per-sample weights;
 *    conv0 (up=2) is what conv2d_resample does for up=2 on a 3x3 kernel:
 *    conv_transpose2d stride 2, pad 0, with each sample's weight transposed
 *    to (in, out) and NOT flipped (SynthesisLayer passes flip_weight=False and
 *    the up path flips it back), giving 2r+1 pixels, then upfirdn2d with the
 *    layer's resample_filter, padding 1 on every side (from conv2d_resample's
 *    px0 = 1 + (fw+up-1)//2 - (kw-1), px1 = 1 + (fw-up)//2 - (kw-up)) and gain
 *    up^2 = 4; then noise (noise_const or N(0,1) times noise_strength), then
 *    bias_act (lrelu 0.2, gain sqrt 2, clamp +-conv_clamp).
 *  - ToRGBLayer: styles * 1/sqrt(c_in), no demodulation, 1x1 conv, bias,
 *    clamp; the skip image is upfirdn2d.upsample2d (pad 2,1, gain 4) of the
 *    previous image plus the block's torgb output.
 *
 * Memory: everything a forward remembers for the backward, and all scratch,
 * lives in one workspace allocated for the largest batch seen so far; a
 * forward with a smaller batch reuses it, a larger one reallocates it once.
 * The per-sample modulated weights are recomputed in the backward rather than
 * stored (they would dominate memory at 1024x1024). */
#include "models/models.h"

#include "kernels/kernels.h"
#include "ops/ops.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SG_MAX_FC 32    /* mapping layers */
#define SG_MAX_BLOCKS 9 /* 4x4 .. 1024x1024 */
#define SG_K 3          /* synthesis kernel size (the official default; the only one read) */

typedef struct {
    int c_in, c_out, k, up, res, row, torgb;
    const float *aff_w;       /* (c_in, w_dim) affine.weight */
    const float *aff_b;       /* (c_in) affine.bias */
    const float *weight;      /* (c_out, c_in, k, k) */
    const float *bias;        /* (c_out) */
    const float *noise_const; /* (res, res), NULL when the layer has no noise input */
    const float *filter;      /* (4, 4) resample_filter, conv0 only */
    float noise_strength;     /* *ns, read at every forward */
    const float *ns;          /* the noise_strength tensor (scalar), or NULL */
    char name[48];            /* key prefix, e.g. "synthesis.b8.conv0" */
    int idx;                  /* layer number of the last forward (random noise seed) */
    float style_gain; /* 1, or 1/sqrt(c_in k^2) for torgb */
    float clamp;      /* < 0: none */
    /* workspace */
    float *styles;   /* (n, c_in) */
    float *pre;      /* (n, c_out, res, res): conv (+ noise), the input of bias_act */
    float *out;      /* (n, c_out, res, res); NULL for torgb */
    float *convout;  /* (n, c_out, res(+1 up), ...): the modulated conv's output, kept for
                        ge_modconv_backward */
    int w_const;     /* the weight lies in the read-only map of the file: it cannot change */
    float *wsq;      /* (c_out, c_in) sum of the weight's squared taps, kept when w_const */
    const float *in; /* (n, c_in, res/up, res/up): the input the last forward read */
} sg_layer;

typedef struct {
    int res, c;                   /* output resolution and channels */
    const float *const_w;         /* b4 only: (c, 4, 4) */
    const float *filter;          /* (4, 4) the block's resample_filter, for the skip image */
    sg_layer conv0, conv1, torgb; /* conv0 unused in b4 */
    float *img;                   /* (n, 3, res, res) running skip image after this block */
} sg_block;

typedef struct {
    int in, out;
    const float *w; /* (out, in) */
    const float *b; /* (out) */
} sg_fc;

/* Mapping activations: what the mapping backward needs. */
typedef struct {
    float *x0;             /* (n, z_dim) normalised z */
    float *lin[SG_MAX_FC]; /* (n, out) fc output before bias_act */
    float *act[SG_MAX_FC]; /* (n, out) fc output; act[n_fc - 1] is w */
} sg_mapbufs;

typedef struct {
    ge_tensors *w;
    char path[256];
    int z_dim, w_dim, res, num_ws, n_fc, nb, img_c;
    float lr_mul;
    float conv_clamp;   /* < 0: none */
    const float *w_avg; /* (w_dim) or NULL */
    sg_fc fc[SG_MAX_FC];
    sg_block blk[SG_MAX_BLOCKS];
    float default_filter[16];

    /* workspace, sized for n_cap samples */
    float *mem;
    int n_cap;
    sg_mapbufs map;
    float *z;       /* (n, z_dim) copy of the last z input */
    float *ws;      /* (n, num_ws, w_dim) after truncation: what synthesis read */
    float *d_ws;    /* (n, num_ws, w_dim) */
    float *const_x; /* (n, c4, 4, 4) */
    float *tmp_a;   /* (n, c, res, res) max over layers: conv out / d pre */
    float *tmp_b;   /* (n, c, res+1, res+1) max: transposed-conv out / its gradient */
    float *wm;      /* (n, c_out, c_in, k, k) max: modulated weights */
    float *wt;      /* same size: transposed for conv0, or their gradient */
    float *dwm;     /* same size */
    float *ds;      /* (n, c_in) max */
    float *wrow;    /* (n, w_dim) one ws row gathered */
    float *dwrow;   /* (n, w_dim) */
    float *dx_a;    /* (n, c, res, res) max: gradient of a block output */
    float *dx_b;    /* same */
    float *dimg_a;  /* (n, 3, R, R) */
    float *dimg_b;  /* (n, 3, R, R) */
    float *rgb;     /* (n, 3, R, R) torgb output */
    float *noise;   /* (n, R, R) random noise planes */
    float *dmap_a;  /* (n, max features) mapping gradients */
    float *dmap_b;
    float *dmap_c;
    float *op_scratch;

    /* the last forward */
    const ge_tensors *grads; /* during backward_params: where weight gradients go */
    ge_noise_mode last_noise;
    uint64_t last_noise_seed;
    int valid, last_n;
    ge_latent_space last_sp;
    float last_psi;
    int last_cutoff;
} sg_model;

/* ---- workspace ------------------------------------------------------------ */

static float *carve(float *base, size_t *off, size_t count) {
    float *p = base ? base + *off : NULL;
    *off += (count + 15) & ~(size_t)15; /* 64-byte aligned pieces */
    return p;
}



/* The FIR after conv0's transposed convolution: (res+1)^2 -> res^2. */
static void fir_params(ge_upfirdn2d_params *p, const sg_layer *L, int n) {
    memset(p, 0, sizeof *p);
    p->n = n;
    p->c = L->c_out;
    p->h = p->w = L->res + 1;
    p->up = p->down = 1;
    p->px0 = p->px1 = p->py0 = p->py1 = 1;
    p->fh = p->fw = 4;
    p->gain = 4.f;
}

/* upfirdn2d.upsample2d(img, f): (res/2)^2 -> res^2. */
static void skip_up_params(ge_upfirdn2d_params *p, int n, int res) {
    memset(p, 0, sizeof *p);
    p->n = n;
    p->c = 3;
    p->h = p->w = res / 2;
    p->up = 2;
    p->down = 1;
    p->px0 = p->py0 = 2;
    p->px1 = p->py1 = 1;
    p->fh = p->fw = 4;
    p->gain = 4.f;
}

static void layer_carve(sg_layer *L, float *base, size_t *off, int n) {
    size_t plane = (size_t)L->res * L->res;
    L->styles = carve(base, off, (size_t)n * L->c_in);
    L->pre = carve(base, off, (size_t)n * L->c_out * plane);
    L->out = L->torgb ? NULL : carve(base, off, (size_t)n * L->c_out * plane);
    size_t cplane = L->up ? (size_t)(L->res + 1) * (L->res + 1) : plane;
    L->convout = carve(base, off, (size_t)n * L->c_out * cplane);
}

static ge_modconv_params modconv_params(const sg_layer *L, int n) {
    ge_modconv_params p;
    memset(&p, 0, sizeof p);
    p.n = n;
    p.c_in = L->c_in;
    p.h = p.w = L->up ? L->res / 2 : L->res;
    p.c_out = L->c_out;
    p.k = L->k;
    p.up = L->up;
    p.demod = !L->torgb;
    p.w_const = L->w_const;
    p.wsq = L->w_const ? L->wsq : NULL; /* else computed in scratch on every call */
    return p;
}

static size_t maxz(size_t a, size_t b) {
    return a > b ? a : b;
}

/* Lays the workspace out for n samples at base (NULL: only sizes it). */
static size_t layout(sg_model *g, float *base, int n) {
    size_t off = 0, act = 0, actt = 0, wsz = 0, cin = 0, scratch = 0, feat = (size_t)g->z_dim;
    g->map.x0 = carve(base, &off, (size_t)n * g->z_dim);
    for (int l = 0; l < g->n_fc; l++) {
        g->map.lin[l] = carve(base, &off, (size_t)n * g->fc[l].out);
        g->map.act[l] = carve(base, &off, (size_t)n * g->fc[l].out);
        feat = maxz(feat, (size_t)g->fc[l].out);
    }
    size_t R2 = (size_t)g->res * g->res, wsn = (size_t)n * g->num_ws * g->w_dim;
    g->z = carve(base, &off, (size_t)n * g->z_dim);
    g->ws = carve(base, &off, wsn);
    g->d_ws = carve(base, &off, wsn);
    g->const_x = carve(base, &off, (size_t)n * g->blk[0].c * 16);
    for (int b = 0; b < g->nb; b++) {
        sg_block *B = &g->blk[b];
        sg_layer *ls[3] = {b ? &B->conv0 : NULL, &B->conv1, &B->torgb};
        for (int i = 0; i < 3; i++) {
            sg_layer *L = ls[i];
            if (!L) continue;
            layer_carve(L, base, &off, n);
            size_t plane = (size_t)L->res * L->res;
            act = maxz(act, (size_t)n * L->c_out * plane);
            act = maxz(act, (size_t)n * L->c_in * plane); /* input gradients (up: smaller) */
            wsz = maxz(wsz, (size_t)n * L->c_out * L->c_in * L->k * L->k);
            cin = maxz(cin, (size_t)n * L->c_in);
            if (L->up) actt = maxz(actt, (size_t)n * L->c_out * (L->res + 1) * (L->res + 1));
            ge_modconv_params mp = modconv_params(L, n);
            scratch = maxz(scratch, ge_modconv_scratch(&mp));
        }
        B->img = carve(base, &off, (size_t)n * 3 * B->res * B->res);
    }
    g->tmp_a = carve(base, &off, act);
    g->tmp_b = carve(base, &off, actt ? actt : 1);
    g->ds = carve(base, &off, cin);
    g->wrow = carve(base, &off, (size_t)n * g->w_dim);
    g->dwrow = carve(base, &off, (size_t)n * g->w_dim);
    g->dx_a = carve(base, &off, act);
    g->dx_b = carve(base, &off, act);
    g->dimg_a = carve(base, &off, (size_t)n * 3 * R2);
    g->dimg_b = carve(base, &off, (size_t)n * 3 * R2);
    g->rgb = carve(base, &off, (size_t)n * 3 * R2);
    g->noise = carve(base, &off, (size_t)n * R2);
    g->dmap_a = carve(base, &off, (size_t)n * feat);
    g->dmap_b = carve(base, &off, (size_t)n * feat);
    g->dmap_c = carve(base, &off, (size_t)n * feat);
    g->op_scratch = carve(base, &off, scratch ? scratch : 1);
    return off;
}

static ge_status ensure_workspace(sg_model *g, int n) {
    if (g->mem && n <= g->n_cap) return GE_OK;
    free(g->mem);
    g->mem = NULL;
    g->n_cap = 0;
    g->valid = 0;
    size_t total = layout(g, NULL, n);
    float *mem = ge_alloc_floats(total);
    if (!mem)
        return ge_fail(GE_ERR_NOMEM,
                       "%s: cannot allocate the StyleGAN2 workspace for batch %d "
                       "(%zu MiB)",
                       g->path, n, total * sizeof(float) >> 20);
    g->mem = mem;
    g->n_cap = n;
    layout(g, mem, n);
    return GE_OK;
}

/* ---- small helpers ---------------------------------------------------------- */

/* dst (n, w_dim) = ws[:, row, :] of ws (n, num_ws, w_dim). */
static void gather_row(float *dst, const float *ws, int row, int n, int num_ws, int w_dim) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * w_dim, ws + ((size_t)i * num_ws + row) * w_dim,
               (size_t)w_dim * sizeof(float));
}

/* ws[:, row, :] += src (n, w_dim). */
static void scatter_add_row(float *ws, const float *src, int row, int n, int num_ws, int w_dim) {
    for (int i = 0; i < n; i++) {
        float *d = ws + ((size_t)i * num_ws + row) * w_dim;
        const float *s = src + (size_t)i * w_dim;
        for (int j = 0; j < w_dim; j++)
            d[j] += s[j];
    }
}


/* torch.lerp(start, end, weight) for scalars, the same formula as ATen's. */
static float lerp_torch(float start, float end, float weight) {
    float diff = end - start;
    return weight < 0.5f ? start + weight * diff : end - diff * (1.f - weight);
}


static ge_bias_act_params layer_act(const sg_layer *L, int n) {
    ge_bias_act_params p;
    memset(&p, 0, sizeof p);
    p.n = n;
    p.c = L->c_out;
    p.spatial = (size_t)L->res * L->res;
    p.act = L->torgb ? GE_ACT_LINEAR : GE_ACT_LRELU;
    p.alpha = 0.2f;
    p.gain = L->torgb ? 1.f : (float)sqrt(2.0);
    p.b_gain = 1.f;
    p.clamp = L->clamp;
    return p;
}

static ge_linear_params affine_params(const sg_model *g, const sg_layer *L, int n) {
    ge_linear_params p = {n, g->w_dim, L->c_in, (float)(1.0 / sqrt((double)g->w_dim)), 1.f};
    return p;
}

/* ---- mapping ---------------------------------------------------------------- */

/* The gradient tensor "<prefix>.<what>" of the running backward_params, or
 * NULL (plain backward, or a name the caller did not ask for). */
static float *sg_grad(const sg_model *g, const char *prefix, const char *what) {
    return ge_tensors_data_of(g->grads, "%s.%s", prefix, what);
}

static ge_bias_act_params fc_act(const sg_model *g, int l, int n) {
    ge_bias_act_params p;
    memset(&p, 0, sizeof p);
    p.n = n;
    p.c = g->fc[l].out;
    p.spatial = 1;
    p.act = GE_ACT_LRELU;
    p.alpha = 0.2f;
    p.gain = (float)sqrt(2.0);
    p.b_gain = g->lr_mul;
    p.clamp = -1.f;
    return p;
}

static ge_linear_params fc_lin(const sg_model *g, int l, int n) {
    ge_linear_params p = {n, g->fc[l].in, g->fc[l].out,
                          (float)(g->lr_mul / sqrt((double)g->fc[l].in)), 1.f};
    return p;
}

/* w (n, w_dim) = mapping(z (n, z_dim)), activations kept in mb; returns w. */
static const float *mapping_forward(const sg_model *g, const sg_mapbufs *mb, const float *z,
                                    int n) {
    ge_norm2_forward(mb->x0, z, n, g->z_dim, 1e-8f);
    const float *x = mb->x0;
    for (int l = 0; l < g->n_fc; l++) {
        ge_linear_params lp = fc_lin(g, l, n);
        ge_linear_forward(mb->lin[l], x, g->fc[l].w, NULL, &lp);
        ge_bias_act_params ap = fc_act(g, l, n);
        ge_bias_act_forward(mb->act[l], mb->lin[l], g->fc[l].b, &ap);
        x = mb->act[l];
    }
    return x;
}

/* dz (n, z_dim) += J^T dw for the mapping run kept in mb (z its input); dz
 * may be NULL (only weight gradients, during backward_params). */
static void mapping_backward(sg_model *g, float *dz, const float *dw, const float *z, int n) {
    const sg_mapbufs *mb = &g->map;
    float *cur = g->dmap_a, *nxt = g->dmap_b;
    memcpy(cur, dw, (size_t)n * g->w_dim * sizeof(float));
    for (int l = g->n_fc - 1; l >= 0; l--) {
        /* cur = d act[l]; dlin = d lin[l] */
        float *dlin = g->dmap_c;
        memset(dlin, 0, (size_t)n * g->fc[l].out * sizeof(float));
        ge_bias_act_params ap = fc_act(g, l, n);
        char fc[32];
        snprintf(fc, sizeof fc, "mapping.fc%d", l);
        ge_bias_act_backward(dlin, sg_grad(g, fc, "bias"), cur, mb->lin[l], g->fc[l].b, &ap);
        memset(nxt, 0, (size_t)n * g->fc[l].in * sizeof(float));
        ge_linear_params lp = fc_lin(g, l, n);
        ge_linear_backward(nxt, sg_grad(g, fc, "weight"), NULL, dlin, l ? mb->act[l - 1] : mb->x0,
                           g->fc[l].w, &lp);
        float *t = cur;
        cur = nxt;
        nxt = t;
    }
    if (dz) ge_norm2_backward(dz, cur, z, n, g->z_dim, 1e-8f);
}

/* ws (n, num_ws, w_dim) = w (n, w_dim) broadcast, rows < cutoff truncated. */
static void broadcast_truncate(const sg_model *g, float *ws, const float *w, int n, float psi,
                               int cutoff) {
    int rows = cutoff <= 0 || cutoff > g->num_ws ? g->num_ws : cutoff;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < g->num_ws; r++) {
            float *d = ws + ((size_t)i * g->num_ws + r) * g->w_dim;
            const float *s = w + (size_t)i * g->w_dim;
            if (psi != 1.f && r < rows)
                for (int j = 0; j < g->w_dim; j++)
                    d[j] = lerp_torch(g->w_avg[j], s[j], psi);
            else
                memcpy(d, s, (size_t)g->w_dim * sizeof(float));
        }
}

/* In-place truncation of ws (n, num_ws, w_dim), rows < cutoff. */
static void truncate_rows(const sg_model *g, float *ws, int n, float psi, int cutoff) {
    if (psi == 1.f) return;
    int rows = cutoff <= 0 || cutoff > g->num_ws ? g->num_ws : cutoff;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < rows; r++) {
            float *d = ws + ((size_t)i * g->num_ws + r) * g->w_dim;
            for (int j = 0; j < g->w_dim; j++)
                d[j] = lerp_torch(g->w_avg[j], d[j], psi);
        }
}

/* ---- synthesis ---------------------------------------------------------------- */

/* One SynthesisLayer or ToRGBLayer: L->out (or `rgb` for torgb) from x.
 * layer_idx and call pick the noise. */
static void layer_forward(sg_model *g, sg_layer *L, float *rgb, const float *x, int n,
                          const ge_gen_call *call, int layer_idx) {
    size_t plane = (size_t)L->res * L->res;
    L->in = x;
    L->idx = layer_idx;
    if (L->ns) L->noise_strength = L->ns[0]; /* the weights may change between calls */
    gather_row(g->wrow, g->ws, L->row, n, g->num_ws, g->w_dim);
    ge_linear_params lp = affine_params(g, L, n);
    ge_linear_forward(L->styles, g->wrow, L->aff_w, L->aff_b, &lp);
    if (L->style_gain != 1.f)
        for (size_t i = 0; i < (size_t)n * L->c_in; i++)
            L->styles[i] *= L->style_gain;
    ge_modconv_params mp = modconv_params(L, n);
    ge_modconv_forward(L->convout, x, L->weight, L->styles, &mp, g->op_scratch);

    float *conv = L->noise_const && call->noise != GE_NOISE_NONE ? g->tmp_a : L->pre;
    if (L->up) {
        ge_upfirdn2d_params fp;
        fir_params(&fp, L, n);
        ge_upfirdn2d_forward(conv, L->convout, L->filter, &fp);
    } else {
        memcpy(conv, L->convout, (size_t)n * L->c_out * plane * sizeof(float));
    }
    if (conv != L->pre) {
        if (call->noise == GE_NOISE_CONST) {
            ge_noise_forward(L->pre, conv, L->noise_const, L->noise_strength, n, L->c_out, plane,
                             1);
        } else { /* random: one plane per sample, its own stream per (sample, layer) */
            for (int i = 0; i < n; i++) {
                ge_rng r;
                ge_rng_seed(&r, call->noise_seed + ((uint64_t)i << 8) + (uint64_t)layer_idx);
                ge_rng_fill_normal(&r, g->noise + (size_t)i * plane, plane);
            }
            ge_noise_forward(L->pre, conv, g->noise, L->noise_strength, n, L->c_out, plane, n);
        }
    }
    ge_bias_act_params ap = layer_act(L, n);
    ge_bias_act_forward(L->torgb ? rgb : L->out, L->pre, L->bias, &ap);
}

/* dx (n, c_in, ...) += J^T dy for one layer (dx may be NULL); adds the ws
 * gradient into g->d_ws at the layer's row. */
static void layer_backward(sg_model *g, sg_layer *L, float *dx, const float *dy, int n) {
    size_t plane = (size_t)L->res * L->res;
    float *dpre = g->tmp_a;
    memset(dpre, 0, (size_t)n * L->c_out * plane * sizeof(float));
    ge_bias_act_params ap = layer_act(L, n);
    ge_bias_act_backward(dpre, sg_grad(g, L->name, "bias"), dy, L->pre, L->bias, &ap);
    float *dns = L->noise_const ? sg_grad(g, L->name, "noise_strength") : NULL;
    if (dns && g->last_noise == GE_NOISE_CONST) {
        ge_noise_backward(NULL, dns, dpre, L->noise_const, n, L->c_out, plane, 1);
    } else if (dns && g->last_noise == GE_NOISE_RANDOM) { /* the forward's planes again */
        for (int i = 0; i < n; i++) {
            ge_rng r;
            ge_rng_seed(&r, g->last_noise_seed + ((uint64_t)i << 8) + (uint64_t)L->idx);
            ge_rng_fill_normal(&r, g->noise + (size_t)i * plane, plane);
        }
        ge_noise_backward(NULL, dns, dpre, g->noise, n, L->c_out, plane, n);
    }

    ge_modconv_params mp = modconv_params(L, n);
    const float *dconv = dpre; /* (n, c_out, ...) gradient of the modulated conv's output */
    if (L->up) {
        ge_upfirdn2d_params fp;
        fir_params(&fp, L, n);
        memset(g->tmp_b, 0, (size_t)n * L->c_out * (L->res + 1) * (L->res + 1) * sizeof(float));
        ge_upfirdn2d_backward(g->tmp_b, dpre, L->filter, &fp);
        dconv = g->tmp_b;
    }
    memset(g->ds, 0, (size_t)n * L->c_in * sizeof(float));
    ge_modconv_backward(dx, g->ds, sg_grad(g, L->name, "weight"), dconv, L->convout, L->in,
                        L->weight, L->styles, &mp, g->op_scratch);
    if (L->style_gain != 1.f)
        for (size_t i = 0; i < (size_t)n * L->c_in; i++)
            g->ds[i] *= L->style_gain;
    gather_row(g->wrow, g->ws, L->row, n, g->num_ws, g->w_dim);
    memset(g->dwrow, 0, (size_t)n * g->w_dim * sizeof(float));
    ge_linear_params lp = affine_params(g, L, n);
    ge_linear_backward(g->dwrow, sg_grad(g, L->name, "affine.weight"),
                       sg_grad(g, L->name, "affine.bias"), g->ds, g->wrow, L->aff_w, &lp);
    scatter_add_row(g->d_ws, g->dwrow, L->row, n, g->num_ws, g->w_dim);
}

/* img (n, 3, R, R) = synthesis(g->ws). */
static void synthesis_forward(sg_model *g, float *img, int n, const ge_gen_call *call) {
    sg_block *B0 = &g->blk[0];
    size_t cplane = (size_t)B0->c * 16;
    for (int i = 0; i < n; i++)
        memcpy(g->const_x + (size_t)i * cplane, B0->const_w, cplane * sizeof(float));
    const float *x = g->const_x;
    int li = 0;
    for (int b = 0; b < g->nb; b++) {
        sg_block *B = &g->blk[b];
        size_t iplane = (size_t)3 * B->res * B->res;
        if (b) {
            layer_forward(g, &B->conv0, NULL, x, n, call, li++);
            x = B->conv0.out;
        }
        layer_forward(g, &B->conv1, NULL, x, n, call, li++);
        x = B->conv1.out;
        layer_forward(g, &B->torgb, g->rgb, x, n, call, li++);
        if (b) {
            ge_upfirdn2d_params up;
            skip_up_params(&up, n, B->res);
            ge_upfirdn2d_forward(B->img, g->blk[b - 1].img, B->filter, &up);
            for (size_t i = 0; i < (size_t)n * iplane; i++)
                B->img[i] += g->rgb[i];
        } else {
            memcpy(B->img, g->rgb, (size_t)n * iplane * sizeof(float));
        }
    }
    memcpy(img, g->blk[g->nb - 1].img, (size_t)n * 3 * g->res * g->res * sizeof(float));
}

/* g->d_ws = J^T dimg for the last synthesis run. */
static void synthesis_backward(sg_model *g, const float *dimg, int n) {
    memset(g->d_ws, 0, (size_t)n * g->num_ws * g->w_dim * sizeof(float));
    const float *dimg_b = dimg;
    float *dx_out = g->dx_a, *dx_mid = g->dx_b;
    sg_block *L = &g->blk[g->nb - 1];
    memset(dx_out, 0, (size_t)n * L->c * L->res * L->res * sizeof(float));
    for (int b = g->nb - 1; b >= 0; b--) {
        sg_block *B = &g->blk[b];
        /* dx_out holds d(block output) from the next block's conv0 */
        layer_backward(g, &B->torgb, dx_out, dimg_b, n);
        if (b) {
            float *dprev = (b & 1) ? g->dimg_a : g->dimg_b;
            size_t pn = (size_t)n * 3 * (B->res / 2) * (B->res / 2);
            memset(dprev, 0, pn * sizeof(float));
            ge_upfirdn2d_params up;
            skip_up_params(&up, n, B->res);
            ge_upfirdn2d_backward(dprev, dimg_b, B->filter, &up);
            dimg_b = dprev;
        }
        if (!b) {
            float *dconst = sg_grad(g, "synthesis.b4", "const"); /* (c, 4, 4) */
            size_t cn = (size_t)B->c * 16;
            if (dconst) memset(dx_mid, 0, (size_t)n * cn * sizeof(float));
            layer_backward(g, &B->conv1, dconst ? dx_mid : NULL, dx_out, n);
            for (int i = 0; dconst && i < n; i++) /* the const is shared by the batch */
                for (size_t j = 0; j < cn; j++) dconst[j] += dx_mid[(size_t)i * cn + j];
            break;
        }
        memset(dx_mid, 0, (size_t)n * B->c * B->res * B->res * sizeof(float));
        layer_backward(g, &B->conv1, dx_mid, dx_out, n);
        size_t pn = (size_t)n * B->conv0.c_in * (B->res / 2) * (B->res / 2);
        memset(dx_out, 0, pn * sizeof(float));
        layer_backward(g, &B->conv0, dx_out, dx_mid, n);
    }
}

/* ---- vtable ----------------------------------------------------------------- */

static ge_status sg_forward(void *impl, float *img, const float *latent, ge_latent_space sp, int n,
                            const ge_gen_call *call) {
    sg_model *g = impl;
    if (call->truncation_psi != 1.f && !g->w_avg)
        return ge_fail(GE_ERR_ARG, "%s: truncation needs mapping.w_avg, which this file lacks",
                       g->path);
    if (!(call->truncation_psi == call->truncation_psi))
        return ge_fail(GE_ERR_ARG, "truncation psi is NaN");
    ge_status s = ensure_workspace(g, n);
    if (s != GE_OK) return s;
    g->valid = 0;
    switch (sp) {
    case GE_LATENT_Z: {
        memcpy(g->z, latent, (size_t)n * g->z_dim * sizeof(float));
        const float *w = mapping_forward(g, &g->map, g->z, n);
        broadcast_truncate(g, g->ws, w, n, call->truncation_psi, call->truncation_cutoff);
        break;
    }
    case GE_LATENT_W:
        broadcast_truncate(g, g->ws, latent, n, call->truncation_psi, call->truncation_cutoff);
        break;
    case GE_LATENT_WPLUS:
        memcpy(g->ws, latent, (size_t)n * g->num_ws * g->w_dim * sizeof(float));
        truncate_rows(g, g->ws, n, call->truncation_psi, call->truncation_cutoff);
        break;
    default:
        return ge_fail(GE_ERR_ARG, "unknown latent space %d", (int)sp);
    }
    g->last_noise = call->noise;
    g->last_noise_seed = call->noise_seed;
    synthesis_forward(g, img, n, call);
    g->valid = 1;
    g->last_n = n;
    g->last_sp = sp;
    g->last_psi = call->truncation_psi;
    g->last_cutoff = call->truncation_cutoff;
    return GE_OK;
}

/* The backward of the last forward; dlatent may be NULL when grads is not
 * (weight gradients only). */
static ge_status sg_backward_all(sg_model *g, float *dlatent, const float *dimg) {
    if (!g->valid) return ge_fail(GE_ERR_ARG, "%s: backward without a forward", g->path);
    int n = g->last_n, nw = g->num_ws, wd = g->w_dim;
    synthesis_backward(g, dimg, n);
    /* truncation: ws = w_avg + psi (x - w_avg) on the first rows */
    if (g->last_psi != 1.f) {
        int rows = g->last_cutoff <= 0 || g->last_cutoff > nw ? nw : g->last_cutoff;
        for (int i = 0; i < n; i++)
            for (int r = 0; r < rows; r++) {
                float *d = g->d_ws + ((size_t)i * nw + r) * wd;
                for (int j = 0; j < wd; j++)
                    d[j] *= g->last_psi;
            }
    }
    if (g->last_sp == GE_LATENT_WPLUS) {
        for (size_t i = 0; dlatent && i < (size_t)n * nw * wd; i++)
            dlatent[i] += g->d_ws[i];
        return GE_OK;
    }
    /* w and z: the broadcast's backward sums the rows */
    float *dw = g->wrow; /* (n, w_dim) */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < wd; j++) {
            float acc = 0;
            for (int r = 0; r < nw; r++)
                acc += g->d_ws[((size_t)i * nw + r) * wd + j];
            dw[(size_t)i * wd + j] = acc;
        }
    if (g->last_sp == GE_LATENT_W) {
        for (size_t i = 0; dlatent && i < (size_t)n * wd; i++)
            dlatent[i] += dw[i];
        return GE_OK;
    }
    mapping_backward(g, dlatent, dw, g->z, n);
    return GE_OK;
}

static ge_status sg_backward(void *impl, float *dlatent, const float *dimg) {
    sg_model *g = impl;
    g->grads = NULL;
    return sg_backward_all(g, dlatent, dimg);
}

static ge_status sg_backward_params(void *impl, float *dlatent, const float *dimg,
                                    const ge_tensors *grads) {
    sg_model *g = impl;
    g->grads = grads;
    ge_status s = sg_backward_all(g, dlatent, dimg);
    g->grads = NULL;
    return s;
}

static ge_status sg_mapping(void *impl, float *ws, const float *z, int n, const ge_gen_call *call) {
    sg_model *g = impl;
    if (n <= 0) return ge_fail(GE_ERR_ARG, "batch size must be positive (got %d)", n);
    if (call->truncation_psi != 1.f && !g->w_avg)
        return ge_fail(GE_ERR_ARG, "%s: truncation needs mapping.w_avg, which this file lacks",
                       g->path);
    /* its own buffers, so that a forward's saved state survives */
    size_t total = (size_t)n * g->z_dim;
    for (int l = 0; l < g->n_fc; l++)
        total += (size_t)2 * n * g->fc[l].out;
    float *mem = ge_alloc_floats(total);
    if (!mem) return ge_fail(GE_ERR_NOMEM, "%s: out of memory in the mapping network", g->path);
    sg_mapbufs mb;
    float *p = mem;
    mb.x0 = p;
    p += (size_t)n * g->z_dim;
    for (int l = 0; l < g->n_fc; l++) {
        mb.lin[l] = p;
        p += (size_t)n * g->fc[l].out;
        mb.act[l] = p;
        p += (size_t)n * g->fc[l].out;
    }
    const float *w = mapping_forward(g, &mb, z, n);
    broadcast_truncate(g, ws, w, n, call->truncation_psi, call->truncation_cutoff);
    free(mem);
    return GE_OK;
}

static void sg_free(void *impl) {
    sg_model *g = impl;
    if (!g) return;
    for (int b = 0; b < g->nb; b++) { /* drop what the fast path kept for the weights */
        sg_layer *ls[3] = {&g->blk[b].conv0, &g->blk[b].conv1, &g->blk[b].torgb};
        for (int i = 0; i < 3; i++) {
            if (ls[i]->weight) ge_modconv_forget(ls[i]->weight);
            free(ls[i]->wsq);
        }
    }
    free(g->mem);
    ge_tensors_free(g->w);
    free(g);
}

static const ge_gen_vtable sg_vtable = {sg_forward, sg_backward, sg_mapping, sg_free,
                                         sg_backward_params};

/* ---- loading ------------------------------------------------------------------ */

/* What the weight file's metadata says (all optional). */
typedef struct {
    int have_kwargs;
    int z_dim, c_dim, w_dim, res, img_c, n_fc; /* -1 = not given */
    double lr_mul;                             /* < 0 = not given */
    int clamp_given;                           /* 0 no, 1 number, 2 null */
    double clamp;
    char arch[32];
    char map_act[32];
} sg_meta;

static int json_int(json_object *o, const char *key, int dflt) {
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v) return dflt;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return dflt;
    return json_object_get_int(v);
}

static double json_num(json_object *o, const char *key, double dflt) {
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v) return dflt;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return dflt;
    return json_object_get_double(v);
}

static void json_str(json_object *o, const char *key, char *out, size_t cap) {
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && v && json_object_is_type(v, json_type_string))
        snprintf(out, cap, "%s", json_object_get_string(v));
}

/* conv_clamp: 1 number, 2 null, 0 absent. */
static int json_clamp(json_object *o, const char *key, double *out) {
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v)) return 0;
    if (!v) return 2;
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
        *out = json_object_get_double(v);
        return 1;
    }
    return 0;
}

/* Parses the metadata: generator_kwargs (a JSON text holding the constructor
 * call), else the flat keys; every value is itself a JSON text. */
static void read_meta(sg_meta *m, const char *text) {
    memset(m, 0, sizeof *m);
    m->z_dim = m->c_dim = m->w_dim = m->res = m->img_c = m->n_fc = -1;
    m->lr_mul = -1;
    if (!text) return;
    json_object *root = json_tokener_parse(text);
    if (!root || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return;
    }
    json_object *v, *kw = NULL;
    if (json_object_object_get_ex(root, "generator_kwargs", &v) && v &&
        json_object_is_type(v, json_type_string))
        kw = json_tokener_parse(json_object_get_string(v));
    if (kw && json_object_is_type(kw, json_type_object)) {
        m->have_kwargs = 1;
        m->z_dim = json_int(kw, "z_dim", -1);
        m->c_dim = json_int(kw, "c_dim", -1);
        m->w_dim = json_int(kw, "w_dim", -1);
        m->res = json_int(kw, "img_resolution", -1);
        m->img_c = json_int(kw, "img_channels", -1);
        json_object *mk = NULL, *sk = NULL;
        if (json_object_object_get_ex(kw, "mapping_kwargs", &mk) && mk &&
            json_object_is_type(mk, json_type_object)) {
            m->n_fc = json_int(mk, "num_layers", -1);
            m->lr_mul = json_num(mk, "lr_multiplier", -1);
            json_str(mk, "activation", m->map_act, sizeof m->map_act);
        }
        if (json_object_object_get_ex(kw, "synthesis_kwargs", &sk) && sk &&
            json_object_is_type(sk, json_type_object)) {
            m->clamp_given = json_clamp(sk, "conv_clamp", &m->clamp);
            json_str(sk, "architecture", m->arch, sizeof m->arch);
        }
    }
    json_object_put(kw);
    /* flat keys (each a JSON text) fill what the kwargs did not say */
    json_object_object_foreach(root, key, val) {
        if (!val || !json_object_is_type(val, json_type_string)) continue;
        json_object *x = json_tokener_parse(json_object_get_string(val));
        json_object *wrap = json_object_new_object();
        json_object_object_add(wrap, "v", x);
        if (!strcmp(key, "conv_clamp") && !m->clamp_given)
            m->clamp_given = json_clamp(wrap, "v", &m->clamp);
        else if (!strcmp(key, "mapping_lr_multiplier") && m->lr_mul < 0)
            m->lr_mul = json_num(wrap, "v", -1);
        else if (!strcmp(key, "architecture") && !m->arch[0])
            json_str(wrap, "v", m->arch, sizeof m->arch);
        else if (!strcmp(key, "mapping_activation") && !m->map_act[0])
            json_str(wrap, "v", m->map_act, sizeof m->map_act);
        else if (!strcmp(key, "c_dim") && m->c_dim < 0)
            m->c_dim = json_int(wrap, "v", -1);
        json_object_put(wrap);
    }
    json_object_put(root);
}

static int64_t dim_of(const ge_tensor *t, int i) {
    return t && i < t->ndim ? t->shape[i] : -1;
}

/* Finds name with the given shape into *out; shape errors name the tensor. */
static ge_status want(const float **out, const sg_model *g, const char *name, int ndim, int64_t a,
                      int64_t b, int64_t c, int64_t d) {
    int64_t shape[4] = {a, b, c, d};
    const ge_tensor *t;
    ge_status s = ge_expect_tensor(&t, g->w, g->path, name, ndim, shape);
    if (s == GE_OK) *out = t->data;
    return s;
}

/* Reads one SynthesisLayer (torgb = 0) or ToRGBLayer under prefix. */
static ge_status load_layer(sg_model *g, sg_layer *L, const char *prefix, int c_in, int c_out,
                            int res, int up, int torgb, int row) {
    char name[160];
    ge_status s;
    memset(L, 0, sizeof *L);
    L->c_in = c_in;
    L->c_out = c_out;
    L->res = res;
    L->up = up;
    L->torgb = torgb;
    L->row = row;
    L->k = torgb ? 1 : SG_K;
    L->style_gain = torgb ? (float)(1.0 / sqrt((double)c_in * L->k * L->k)) : 1.f;
    L->clamp = g->conv_clamp;
    snprintf(L->name, sizeof L->name, "%s", prefix);
    snprintf(name, sizeof name, "%s.affine.weight", prefix);
    if ((s = want(&L->aff_w, g, name, 2, c_in, g->w_dim, 0, 0))) return s;
    snprintf(name, sizeof name, "%s.affine.bias", prefix);
    if ((s = want(&L->aff_b, g, name, 1, c_in, 0, 0, 0))) return s;
    snprintf(name, sizeof name, "%s.weight", prefix);
    if ((s = want(&L->weight, g, name, 4, c_out, c_in, L->k, L->k))) return s;
    /* A weight inside the file's read-only mapping can never change, so the
     * modulated conv may keep its packed copy and its squared tap sums. */
    size_t wn = (size_t)c_out * c_in * L->k * L->k;
    const char *m = g->w->map, *wp = (const char *)L->weight;
    L->w_const = m && wp >= m && wp + wn * sizeof(float) <= m + g->w->map_len;
    if (L->w_const) {
        L->wsq = malloc((size_t)c_out * c_in * sizeof(float));
        if (!L->wsq) return ge_fail(GE_ERR_NOMEM, "%s: out of memory", g->path);
        ge_modconv_wsq(L->wsq, L->weight, c_out, c_in, L->k);
    }
    snprintf(name, sizeof name, "%s.bias", prefix);
    if ((s = want(&L->bias, g, name, 1, c_out, 0, 0, 0))) return s;
    if (torgb) return GE_OK;
    snprintf(name, sizeof name, "%s.noise_const", prefix);
    if (ge_tensors_find(g->w, name)) { /* use_noise */
        if ((s = want(&L->noise_const, g, name, 2, res, res, 0, 0))) return s;
        const float *ns;
        snprintf(name, sizeof name, "%s.noise_strength", prefix);
        if ((s = want(&ns, g, name, 0, 0, 0, 0, 0))) return s;
        L->noise_strength = ns[0];
        L->ns = ns;
    }
    if (up) {
        snprintf(name, sizeof name, "%s.resample_filter", prefix);
        L->filter = g->default_filter;
        if (ge_tensors_find(g->w, name) && (s = want(&L->filter, g, name, 2, 4, 4, 0, 0))) return s;
    }
    return GE_OK;
}

static ge_status build(sg_model *g, const ge_gen_options *opt) {
    ge_tensors *w = g->w;
    const char *path = g->path;
    ge_status s;
    sg_meta m;
    read_meta(&m, ge_tensors_metadata(w));

    if (ge_tensors_find(w, "mapping.embed.weight") || m.c_dim > 0)
        return ge_fail(GE_ERR_UNSUPPORTED,
                       "%s: a class-conditional StyleGAN2 (c_dim > 0) is not supported", path);
    if (m.arch[0] && strcmp(m.arch, "skip"))
        return ge_fail(GE_ERR_UNSUPPORTED,
                       "%s: synthesis architecture '%s' is not supported (only 'skip')", path,
                       m.arch);
    if (m.map_act[0] && strcmp(m.map_act, "lrelu"))
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: mapping activation '%s' is not supported", path,
                       m.map_act);
    if (ge_tensors_find(w, "synthesis.b8.skip.weight"))
        return ge_fail(GE_ERR_UNSUPPORTED,
                       "%s: the 'resnet' synthesis architecture is not supported (only 'skip')",
                       path);

    /* mapping: fc0 .. fc{L-1}; z_dim from fc0, w_dim from the last */
    char name[160];
    int n_fc = 0;
    for (;; n_fc++) {
        snprintf(name, sizeof name, "mapping.fc%d.weight", n_fc);
        if (!ge_tensors_find(w, name)) break;
        if (n_fc == SG_MAX_FC)
            return ge_fail(GE_ERR_UNSUPPORTED, "%s: more than %d mapping layers", path, SG_MAX_FC);
    }
    if (n_fc == 0) return ge_fail(GE_ERR_FORMAT, "%s: missing tensor 'mapping.fc0.weight'", path);
    g->n_fc = n_fc;
    const ge_tensor *t0 = ge_tensors_find(w, "mapping.fc0.weight");
    snprintf(name, sizeof name, "mapping.fc%d.weight", n_fc - 1);
    const ge_tensor *tl = ge_tensors_find(w, name);
    if (t0->ndim != 2 || tl->ndim != 2 || t0->shape[1] <= 0 || tl->shape[0] <= 0 ||
        t0->shape[1] > (1 << 16) || tl->shape[0] > (1 << 16))
        return ge_fail(GE_ERR_SHAPE, "%s: tensor '%s' is not a (out, in) matrix", path,
                       t0->ndim != 2 ? "mapping.fc0.weight" : name);
    g->z_dim = (int)t0->shape[1];
    g->w_dim = (int)tl->shape[0];
    g->lr_mul = m.lr_mul > 0 ? (float)m.lr_mul : 0.01f;
    int in = g->z_dim;
    for (int l = 0; l < n_fc; l++) {
        snprintf(name, sizeof name, "mapping.fc%d.weight", l);
        const ge_tensor *t = ge_tensors_find(w, name);
        int out = (int)dim_of(t, 0);
        if (l == n_fc - 1) out = g->w_dim;
        if (out <= 0 || out > (1 << 16)) out = g->w_dim;
        g->fc[l].in = in;
        g->fc[l].out = out;
        if ((s = want(&g->fc[l].w, g, name, 2, out, in, 0, 0))) return s;
        snprintf(name, sizeof name, "mapping.fc%d.bias", l);
        if ((s = want(&g->fc[l].b, g, name, 1, out, 0, 0, 0))) return s;
        in = out;
    }
    g->w_avg = NULL;
    if (ge_tensors_find(w, "mapping.w_avg") &&
        (s = want(&g->w_avg, g, "mapping.w_avg", 1, g->w_dim, 0, 0, 0)))
        return s;

    /* synthesis blocks b4, b8, ... while synthesis.b<res>.conv1.weight exists */
    int nb = 0;
    for (int res = 4; nb < SG_MAX_BLOCKS; res *= 2, nb++) {
        snprintf(name, sizeof name, "synthesis.b%d.conv1.weight", res);
        if (!ge_tensors_find(w, name)) break;
    }
    if (nb == 0)
        return ge_fail(GE_ERR_FORMAT, "%s: missing tensor 'synthesis.b4.conv1.weight'", path);
    snprintf(name, sizeof name, "synthesis.b%d.conv1.weight", 4 << nb);
    if (ge_tensors_find(w, name))
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: resolutions above %d are not supported", path,
                       2 << nb);
    g->nb = nb;
    g->res = 2 << nb;
    g->num_ws = 2 * nb;
    snprintf(name, sizeof name, "synthesis.b%d.torgb.weight", g->res);
    const ge_tensor *trgb = ge_tensors_find(w, name);
    if (!trgb) return ge_fail(GE_ERR_FORMAT, "%s: missing tensor '%s'", path, name);
    g->img_c = (int)dim_of(trgb, 0);
    if (g->img_c != 3)
        return ge_fail(g->img_c > 0 ? GE_ERR_UNSUPPORTED : GE_ERR_SHAPE,
                       "%s: tensor '%s' gives %d image channels (ganedit handles RGB only)", path,
                       name, g->img_c);
    if (nb > 1) {
        snprintf(name, sizeof name, "synthesis.b4.torgb.weight");
        if (!ge_tensors_find(w, name))
            return ge_fail(GE_ERR_UNSUPPORTED,
                           "%s: no synthesis.b4.torgb (the 'orig' architecture?); only 'skip' is "
                           "supported",
                           path);
    }

    /* metadata, where given, must agree with the shapes */
    if ((m.z_dim >= 0 && m.z_dim != g->z_dim) || (m.w_dim >= 0 && m.w_dim != g->w_dim) ||
        (m.res >= 0 && m.res != g->res) || (m.img_c >= 0 && m.img_c != g->img_c) ||
        (m.n_fc >= 0 && m.n_fc != g->n_fc))
        return ge_fail(GE_ERR_FORMAT,
                       "%s: generator_kwargs (z_dim %d, w_dim %d, img_resolution %d, "
                       "img_channels %d, mapping num_layers %d) disagree with the tensors (%d, %d, "
                       "%d, %d, %d)",
                       path, m.z_dim, m.w_dim, m.res, m.img_c, m.n_fc, g->z_dim, g->w_dim, g->res,
                       g->img_c, g->n_fc);

    /* conv_clamp: option > 0 overrides; else the metadata; else none */
    g->conv_clamp = -1.f;
    if (opt->force_no_conv_clamp)
        g->conv_clamp = -1.f;
    else if (opt->conv_clamp > 0)
        g->conv_clamp = (float)opt->conv_clamp;
    else if (m.clamp_given == 1 && m.clamp >= 0)
        g->conv_clamp = (float)m.clamp;

    /* the normalised outer product of [1,3,3,1], for files without the buffer */
    const float k1[4] = {1, 3, 3, 1};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            g->default_filter[i * 4 + j] = k1[i] * k1[j] / 64.f;

    int c_prev = 0;
    for (int b = 0; b < nb; b++) {
        sg_block *B = &g->blk[b];
        int res = 4 << b;
        char pre[64];
        B->res = res;
        snprintf(name, sizeof name, "synthesis.b%d.conv1.weight", res);
        B->c = (int)dim_of(ge_tensors_find(w, name), 0);
        if (B->c <= 0 || B->c > (1 << 16)) B->c = 1;
        if (b == 0) {
            if ((s = want(&B->const_w, g, "synthesis.b4.const", 3, B->c, 4, 4, 0))) return s;
        } else {
            snprintf(pre, sizeof pre, "synthesis.b%d.conv0", res);
            if ((s = load_layer(g, &B->conv0, pre, c_prev, B->c, res, 1, 0, 2 * b - 1))) return s;
        }
        snprintf(pre, sizeof pre, "synthesis.b%d.conv1", res);
        if ((s = load_layer(g, &B->conv1, pre, B->c, B->c, res, 0, 0, 2 * b))) return s;
        snprintf(pre, sizeof pre, "synthesis.b%d.torgb", res);
        if ((s = load_layer(g, &B->torgb, pre, B->c, 3, res, 0, 1, 2 * b + 1))) return s;
        snprintf(name, sizeof name, "synthesis.b%d.resample_filter", res);
        B->filter = g->default_filter;
        if (ge_tensors_find(w, name) && (s = want(&B->filter, g, name, 2, 4, 4, 0, 0))) return s;
        c_prev = B->c;
    }
    return GE_OK;
}

ge_status ge_stylegan2_create(const ge_gen_vtable **vt, void **impl, ge_gen_info *info,
                              ge_tensors *w, const char *path, const ge_gen_options *opt) {
    ge_gen_options defaults;
    if (!opt) {
        ge_gen_options_init(&defaults);
        opt = &defaults;
    }
    sg_model *g = ge_calloc(1, sizeof *g);
    if (!g) {
        ge_tensors_free(w);
        return GE_ERR_NOMEM;
    }
    g->w = w;
    snprintf(g->path, sizeof g->path, "%s", path ? path : "(memory)");
    ge_status s = build(g, opt);
    if (s != GE_OK) {
        sg_free(g);
        return s;
    }
    memset(info, 0, sizeof *info);
    info->arch = "stylegan2";
    info->resolution = g->res;
    info->z_dim = g->z_dim;
    info->w_dim = g->w_dim;
    info->num_ws = g->num_ws;
    info->z_dist = GE_ZDIST_NORMAL;
    size_t np = 0;
    for (int i = 0; i < ge_tensors_count(w); i++) {
        const ge_tensor *t = ge_tensors_at(w, i);
        if (!strncmp(t->name, "mapping.", 8) || !strncmp(t->name, "synthesis.", 10)) np += t->numel;
    }
    info->num_params = np;
    char *d = info->description;
    size_t cap = sizeof info->description;
    int k = snprintf(d, cap,
                     "StyleGAN2-ADA %dx%d (skip), z %d, w %d, %d ws, mapping %d layers, "
                     "conv_clamp ",
                     g->res, g->res, g->z_dim, g->w_dim, g->num_ws, g->n_fc);
    if (g->conv_clamp >= 0)
        k += snprintf(d + k, cap - (size_t)k, "%g", g->conv_clamp);
    else
        k += snprintf(d + k, cap - (size_t)k, "none");
    k += snprintf(d + k, cap - (size_t)k, ", channels");
    for (int b = 0; b < g->nb && (size_t)k < cap; b++)
        k += snprintf(d + k, cap - (size_t)k, " %d:%d", g->blk[b].res, g->blk[b].c);
    *vt = &sg_vtable;
    *impl = g;
    return GE_OK;
}

ge_status ge_stylegan2_debug_block(const void *impl, int res, const float **x, const float **img,
                                   int *c) {
    const sg_model *g = impl;
    for (int b = 0; b < g->nb; b++)
        if (g->blk[b].res == res) {
            if (!g->valid) return ge_fail(GE_ERR_ARG, "no forward has run");
            *x = g->blk[b].conv1.out;
            *img = g->blk[b].img;
            *c = g->blk[b].c;
            return GE_OK;
        }
    return ge_fail(GE_ERR_ARG, "%s: no block b%d", g->path, res);
}
