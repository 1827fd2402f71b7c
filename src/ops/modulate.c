/* modulate.c - StyleGAN2's weight modulation and demodulation (the weight
 * half of modulated_conv2d in stylegan2-ada-pytorch), producing per-sample
 * weights that ge_conv2d / ge_convt2d consume through w_sample_stride:
 *   v[n,o,i,k]  = w[o,i,k] * s[n,i]
 *   d[n,o]      = 1 / sqrt(sum_{i,k} v^2 + 1e-8)          (demod only)
 *   wm[n,o,i,k] = v * d[n,o]
 * Backward, with S[n,o] = sum_{i,k} dwm * v:
 *   dv = d * dwm - d^3 * S * v     (dv = dwm without demodulation)
 *   ds[n,i] += sum_{o,k} dv * w,   dw[o,i,k] += sum_n dv * s[n,i].
 * d and S are recomputed where needed instead of stored, so the op needs no
 * scratch; ds is parallel over samples and dw over output channels, so each
 * thread owns what it writes and sums run in a fixed order. Sums of squares
 * use a double accumulator.
 *
 * ge_modconv (below) is the unfused alternative: the same layer without
 * per-sample weights, as PyTorch runs StyleGAN2 with fused_modconv=False. */
#include "kernels/kernels.h"
#include "ops/ops.h"

#include <math.h>
#include <string.h>

/* The element loops below run over a row (c_in, k, k) in chunks, with the
 * styles expanded to one value per element (sx[e] = s[i] for element e of
 * input channel i), so that each is a straight `omp simd` loop; sums keep
 * their double accumulators. MOD_CHUNK elements per chunk (a whole number of
 * channels); kernels larger than that (never in StyleGAN2) take the plain
 * loops. */
#define MOD_CHUNK 1152

/* sx[0 .. (i1-i0)*kk) = s[i] repeated kk times, for channels [i0, i1). */
static void expand(float *sx, const float *sn, int i0, int i1, int kk) {
    for (int i = i0; i < i1; i++)
        for (int t = 0; t < kk; t++)
            sx[(size_t)(i - i0) * kk + t] = sn[i];
}

/* d[n,o] and, if dwm is not NULL, S[n,o] for one (sample, output channel). */
GE_SIMD_CLONES
static void demod_coefs(float *d, double *S, const float *wo, const float *sn, const float *dwmo,
                        int c_in, int kk) {
    double ss = 0, dot = 0;
    int per = MOD_CHUNK / kk;
    if (!per) {
        for (int i = 0; i < c_in; i++)
            for (int t = 0; t < kk; t++) {
                double v = (double)(wo[(size_t)i * kk + t] * sn[i]);
                ss += v * v;
                if (dwmo) dot += dwmo[(size_t)i * kk + t] * v;
            }
    } else {
        float sx[MOD_CHUNK];
        for (int i0 = 0; i0 < c_in; i0 += per) {
            int i1 = i0 + per < c_in ? i0 + per : c_in, ne = (i1 - i0) * kk;
            const float *we = wo + (size_t)i0 * kk;
            expand(sx, sn, i0, i1, kk);
            if (dwmo) {
                const float *ge = dwmo + (size_t)i0 * kk;
#pragma omp simd reduction(+ : ss, dot)
                for (int e = 0; e < ne; e++) {
                    double v = (double)(we[e] * sx[e]);
                    ss += v * v;
                    dot += ge[e] * v;
                }
            } else {
#pragma omp simd reduction(+ : ss)
                for (int e = 0; e < ne; e++) {
                    double v = (double)(we[e] * sx[e]);
                    ss += v * v;
                }
            }
        }
    }
    *d = (float)(1.0 / sqrt(ss + 1e-8));
    if (S) *S = dot;
}

/* out = wo * s[i] * d over one row. */
GE_SIMD_CLONES
static void modulate_row(float *restrict out, const float *restrict wo, const float *sn, float d,
                         int c_in, int kk) {
    int per = MOD_CHUNK / kk;
    if (!per) {
        for (int i = 0; i < c_in; i++)
            for (int t = 0; t < kk; t++)
                out[(size_t)i * kk + t] = wo[(size_t)i * kk + t] * sn[i] * d;
        return;
    }
    float sx[MOD_CHUNK];
    for (int i0 = 0; i0 < c_in; i0 += per) {
        int i1 = i0 + per < c_in ? i0 + per : c_in, ne = (i1 - i0) * kk;
        const float *we = wo + (size_t)i0 * kk;
        float *oe = out + (size_t)i0 * kk;
        expand(sx, sn, i0, i1, kk);
#pragma omp simd
        for (int e = 0; e < ne; e++)
            oe[e] = we[e] * sx[e] * d;
    }
}

void ge_modulate_forward(float *wm, const float *w, const float *s, const ge_modulate_params *p) {
    int kk = p->k * p->k, rows = p->n * p->c_out;
    size_t row = (size_t)p->c_in * kk;
#pragma omp parallel for schedule(static) if ((size_t)rows * row > 65536)
    for (int r = 0; r < rows; r++) {
        int n = r / p->c_out, o = r % p->c_out;
        const float *wo = w + (size_t)o * row; /* (c_in, k, k) */
        const float *sn = s + (size_t)n * p->c_in;
        float d = 1.f;
        if (p->demod) demod_coefs(&d, NULL, wo, sn, NULL, p->c_in, kk);
        modulate_row(wm + (size_t)r * row, wo, sn, d, p->c_in, kk);
    }
}

/* dv for one element given the row's d and S. */
static inline float dv_of(float dwm, float v, float d, double S, int demod) {
    if (!demod) return dwm;
    return (float)(d * dwm - (double)d * d * d * S * v);
}

/* dsn[i] += sum_t dv * w over one (sample, output channel) row. */
GE_SIMD_CLONES
static void ds_row(float *dsn, const float *g, const float *wo, const float *sn, float d, double S,
                   int demod, int c_in, int kk) {
    int per = MOD_CHUNK / kk;
    if (!per) {
        for (int i = 0; i < c_in; i++) {
            double acc = 0;
            for (int t = 0; t < kk; t++) {
                float wv = wo[(size_t)i * kk + t];
                acc += (double)dv_of(g[(size_t)i * kk + t], wv * sn[i], d, S, demod) * wv;
            }
            dsn[i] += (float)acc;
        }
        return;
    }
    float sx[MOD_CHUNK];
    double pr[MOD_CHUNK];
    double d3S = (double)d * d * d * S;
    for (int i0 = 0; i0 < c_in; i0 += per) {
        int i1 = i0 + per < c_in ? i0 + per : c_in, ne = (i1 - i0) * kk;
        const float *we = wo + (size_t)i0 * kk, *ge = g + (size_t)i0 * kk;
        expand(sx, sn, i0, i1, kk);
        if (demod) {
#pragma omp simd
            for (int e = 0; e < ne; e++) {
                float dv = (float)(d * ge[e] - d3S * (we[e] * sx[e]));
                pr[e] = (double)dv * we[e];
            }
        } else {
#pragma omp simd
            for (int e = 0; e < ne; e++)
                pr[e] = (double)ge[e] * we[e];
        }
        for (int i = i0; i < i1; i++) {
            double acc = 0;
            for (int t = 0; t < kk; t++)
                acc += pr[(size_t)(i - i0) * kk + t];
            dsn[i] += (float)acc;
        }
    }
}

void ge_modulate_backward(float *ds, float *dw, const float *dwm, const float *w, const float *s,
                          const ge_modulate_params *p) {
    int kk = p->k * p->k;
    size_t row = (size_t)p->c_in * kk;
    size_t work = (size_t)p->n * p->c_out * row;
    if (ds) {
#pragma omp parallel for schedule(static) if (work > 65536)
        for (int n = 0; n < p->n; n++) {
            const float *sn = s + (size_t)n * p->c_in;
            float *dsn = ds + (size_t)n * p->c_in;
            for (int o = 0; o < p->c_out; o++) {
                const float *wo = w + (size_t)o * row;
                const float *g = dwm + ((size_t)n * p->c_out + o) * row;
                float d = 1.f;
                double S = 0;
                if (p->demod) demod_coefs(&d, &S, wo, sn, g, p->c_in, kk);
                ds_row(dsn, g, wo, sn, d, S, p->demod, p->c_in, kk);
            }
        }
    }
    if (dw) {
#pragma omp parallel for schedule(static) if (work > 65536)
        for (int o = 0; o < p->c_out; o++) {
            const float *wo = w + (size_t)o * row;
            float *dwo = dw + (size_t)o * row;
            for (int n = 0; n < p->n; n++) {
                const float *sn = s + (size_t)n * p->c_in;
                const float *g = dwm + ((size_t)n * p->c_out + o) * row;
                float d = 1.f;
                double S = 0;
                if (p->demod) demod_coefs(&d, &S, wo, sn, g, p->c_in, kk);
                for (int i = 0; i < p->c_in; i++)
                    for (int t = 0; t < kk; t++) {
                        float wv = wo[(size_t)i * kk + t];
                        dwo[(size_t)i * kk + t] +=
                            dv_of(g[(size_t)i * kk + t], wv * sn[i], d, S, p->demod) * sn[i];
                    }
            }
        }
    }
}

/* ---- unfused modulated convolution ------------------------------------------
 * x * s -> conv with the shared weight -> * d. The convolution is one batched
 * call (conv2d, or for up = 1 the transposed convolution's adjoint with the
 * weight read in place as (c_in, c_out, k, k) through ge_dconv's w_iohw), so
 * the fast path gets all samples at once and never sees per-sample weights.
 * Where oneDNN declines, the up path falls back to ge_convt2d on a
 * transposed copy of the weight in scratch. Every elementwise pass is
 * parallel over (sample, channel) planes with double sums in a fixed order. */

void ge_modconv_out_size(const ge_modconv_params *p, int *oh, int *ow) {
    *oh = p->up ? 2 * (p->h - 1) + p->k : p->h;
    *ow = p->up ? 2 * (p->w - 1) + p->k : p->w;
}

static ge_conv2d_params mc_conv(const ge_modconv_params *p) {
    ge_conv2d_params c = {p->n, p->c_in, p->h,     p->w,        p->c_out, p->k,
                          p->k, 1,       p->k / 2, GE_PAD_ZERO, 0};
    return c;
}

static ge_convt2d_params mc_convt(const ge_modconv_params *p) {
    ge_convt2d_params c = {p->n, p->c_in, p->h, p->w, p->c_out, p->k, p->k, 2, 0, 0};
    return c;
}

/* The convolution A whose input gradient the up path is, w read as iohw. */
static ge_dconv_shape mc_adjoint(const ge_modconv_params *p) {
    int oh, ow;
    ge_modconv_out_size(p, &oh, &ow);
    ge_dconv_shape s = {.n = p->n,
                        .c_in = p->c_out,
                        .h = oh,
                        .w = ow,
                        .c_out = p->c_in,
                        .kh = p->k,
                        .kw = p->k,
                        .stride = 2,
                        .pad = 0,
                        .pad_mode = GE_PAD_ZERO,
                        .w_iohw = 1,
                        .w_const = p->w_const != 0};
    return s;
}

/* The up = 0 convolution for the fast path (1x1 ones go through ge_conv2d's GEMM). */
static ge_dconv_shape mc_direct(const ge_modconv_params *p) {
    ge_dconv_shape s = {.n = p->n,
                        .c_in = p->c_in,
                        .h = p->h,
                        .w = p->w,
                        .c_out = p->c_out,
                        .kh = p->k,
                        .kw = p->k,
                        .stride = 1,
                        .pad = p->k / 2,
                        .pad_mode = GE_PAD_ZERO,
                        .w_const = p->w_const != 0};
    return s;
}

void ge_modconv_forget(const float *w) {
    ge_dconv_forget(w);
}

static size_t r16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

/* Scratch pieces, in floats: xs / dxs, du, d, dd, wsq, transposed w, conv. */
typedef struct {
    float *xs, *du, *d, *dd, *wsq, *wt, *conv;
} mc_scratch;

static size_t mc_carve(mc_scratch *m, const ge_modconv_params *p, float *base) {
    int oh, ow;
    ge_modconv_out_size(p, &oh, &ow);
    size_t nx = (size_t)p->n * p->c_in * p->h * p->w, ny = (size_t)p->n * p->c_out * oh * ow;
    size_t nd = (size_t)p->n * p->c_out, nw = (size_t)p->c_out * p->c_in;
    size_t conv_sc;
    if (p->up) {
        ge_convt2d_params c = mc_convt(p);
        conv_sc = ge_convt2d_scratch(&c);
    } else {
        ge_conv2d_params c = mc_conv(p);
        conv_sc = ge_conv2d_scratch(&c);
    }
    size_t sizes[7] = {nx, ny, nd, nd, p->wsq ? 0 : nw, p->up ? nw * p->k * p->k : 0, conv_sc};
    float *at[7];
    size_t off = 0;
    for (int i = 0; i < 7; i++) {
        at[i] = base && sizes[i] ? base + off : NULL;
        off += r16(sizes[i]);
    }
    if (m) *m = (mc_scratch){at[0], at[1], at[2], at[3], at[4], at[5], at[6]};
    return off;
}

size_t ge_modconv_scratch(const ge_modconv_params *p) {
    return mc_carve(NULL, p, NULL);
}

GE_SIMD_CLONES
static double sumsq(const float *v, size_t n) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t j = 0; j < n; j++)
        s += (double)v[j] * v[j];
    return s;
}

void ge_modconv_wsq(float *wsq, const float *w, int c_out, int c_in, int k) {
    size_t kk = (size_t)k * k;
#pragma omp parallel for schedule(static) if ((size_t)c_out * c_in * kk > 65536)
    for (int o = 0; o < c_out; o++)
        for (int c = 0; c < c_in; c++) {
            size_t r = (size_t)o * c_in + c;
            wsq[r] = (float)sumsq(w + r * kk, kk);
        }
}

/* d (n, c_out) from s and wsq; 1 without demodulation. */
static void mc_demod(float *d, const float *s, const float *wsq, const ge_modconv_params *p) {
    int rows = p->n * p->c_out;
#pragma omp parallel for schedule(static) if ((size_t)rows * p->c_in > 65536)
    for (int r = 0; r < rows; r++) {
        int i = r / p->c_out, o = r % p->c_out;
        if (!p->demod) {
            d[r] = 1.f;
            continue;
        }
        const float *si = s + (size_t)i * p->c_in, *q = wsq + (size_t)o * p->c_in;
        double ss = 0;
        for (int c = 0; c < p->c_in; c++)
            ss += (double)si[c] * si[c] * q[c];
        d[r] = (float)(1.0 / sqrt(ss + 1e-8));
    }
}

/* y (rows, plane) = x * a[row] (+= when acc). */
GE_SIMD_CLONES
static void scale_row(float *restrict y, const float *restrict x, float a, size_t plane, int acc) {
    if (acc) {
#pragma omp simd
        for (size_t j = 0; j < plane; j++)
            y[j] += x[j] * a;
    } else {
#pragma omp simd
        for (size_t j = 0; j < plane; j++)
            y[j] = x[j] * a;
    }
}

static void scale_planes(float *y, const float *x, const float *a, int rows, size_t plane,
                         int acc) {
#pragma omp parallel for schedule(static) if ((size_t)rows * plane > 65536)
    for (int r = 0; r < rows; r++)
        scale_row(y + (size_t)r * plane, x + (size_t)r * plane, a[r], plane, acc);
}

GE_SIMD_CLONES
static double dot_row(const float *a, const float *b, size_t n) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t j = 0; j < n; j++)
        s += (double)a[j] * b[j];
    return s;
}

/* w (c_out, c_in, k, k) -> wt (c_in, c_out, k, k). */
static void mc_transpose(float *wt, const float *w, const ge_modconv_params *p) {
    size_t kk = (size_t)p->k * p->k;
    for (int o = 0; o < p->c_out; o++)
        for (int c = 0; c < p->c_in; c++)
            memcpy(wt + ((size_t)c * p->c_out + o) * kk, w + ((size_t)o * p->c_in + c) * kk,
                   kk * sizeof(float));
}

void ge_modconv_forward(float *y, const float *x, const float *w, const float *s,
                        const ge_modconv_params *p, float *scratch) {
    mc_scratch m;
    mc_carve(&m, p, scratch);
    int oh, ow;
    ge_modconv_out_size(p, &oh, &ow);
    size_t hw = (size_t)p->h * p->w, ohw = (size_t)oh * ow;
    scale_planes(m.xs, x, s, p->n * p->c_in, hw, 0);
    if (p->up) {
        ge_dconv_shape a = mc_adjoint(p);
        if (!ge_dconv_backward_data(y, m.xs, w, NULL, &a, 0)) {
            ge_convt2d_params c = mc_convt(p);
            mc_transpose(m.wt, w, p);
            ge_convt2d_forward(y, m.xs, m.wt, NULL, &c, m.conv);
        }
    } else {
        ge_dconv_shape a = mc_direct(p);
        if (p->k == 1 || !ge_dconv_forward(y, m.xs, w, NULL, &a, 0)) {
            ge_conv2d_params c = mc_conv(p);
            ge_conv2d_forward(y, m.xs, w, NULL, &c, m.conv);
        }
    }
    if (!p->demod) return;
    const float *wsq = p->wsq;
    if (!wsq) {
        ge_modconv_wsq(m.wsq, w, p->c_out, p->c_in, p->k);
        wsq = m.wsq;
    }
    mc_demod(m.d, s, wsq, p);
    scale_planes(y, y, m.d, p->n * p->c_out, ohw, 0);
}

/* dw += the shared weight's gradient: the convolution's, sum over samples
 * of du (x) xs, and through the demodulation, d d[i,o] / d w[o,c,t] =
 * -d^3 s[i,c]^2 w[o,c,t]. Uses the xs piece of the scratch and m->dd. */
static void mc_weight_grad(float *dw, const float *du, const float *x, const float *w,
                           const float *s, mc_scratch *m, const ge_modconv_params *p) {
    size_t hw = (size_t)p->h * p->w, kk = (size_t)p->k * p->k;
    scale_planes(m->xs, x, s, p->n * p->c_in, hw, 0);
    if (p->up) {
        ge_dconv_shape a = mc_adjoint(p);
        if (!ge_dconv_backward_weights(dw, m->xs, du, &a)) { /* A: du is the input, xs dA */
            ge_convt2d_params c = mc_convt(p);
            memset(m->wt, 0, (size_t)p->c_in * p->c_out * kk * sizeof(float));
            ge_convt2d_backward(NULL, m->wt, NULL, du, m->xs, w, &c, m->conv);
            for (int o = 0; o < p->c_out; o++) /* (c_in, c_out, k, k) back to (c_out, c_in, ...) */
                for (int c = 0; c < p->c_in; c++) {
                    float *d = dw + ((size_t)o * p->c_in + c) * kk;
                    const float *g = m->wt + ((size_t)c * p->c_out + o) * kk;
                    for (size_t t = 0; t < kk; t++)
                        d[t] += g[t];
                }
        }
    } else {
        ge_conv2d_params c = mc_conv(p);
        ge_conv2d_backward(NULL, dw, NULL, du, m->xs, w, &c, m->conv);
    }
    if (!p->demod) return;
#pragma omp parallel for schedule(static) if ((size_t)p->c_out * p->c_in * kk > 65536)
    for (int o = 0; o < p->c_out; o++)
        for (int c = 0; c < p->c_in; c++) {
            double coef = 0;
            for (int i = 0; i < p->n; i++) {
                double d = m->d[(size_t)i * p->c_out + o], sc = s[(size_t)i * p->c_in + c];
                coef += (double)m->dd[(size_t)i * p->c_out + o] * d * d * d * sc * sc;
            }
            float *d = dw + ((size_t)o * p->c_in + c) * kk;
            const float *wr = w + ((size_t)o * p->c_in + c) * kk;
            for (size_t t = 0; t < kk; t++)
                d[t] -= (float)(coef * wr[t]);
        }
}

void ge_modconv_backward(float *dx, float *ds, float *dw, const float *dy, const float *y,
                         const float *x, const float *w, const float *s, const ge_modconv_params *p,
                         float *scratch) {
    if (!dx && !ds && !dw) return;
    mc_scratch m;
    mc_carve(&m, p, scratch);
    int oh, ow;
    ge_modconv_out_size(p, &oh, &ow);
    size_t hw = (size_t)p->h * p->w, ohw = (size_t)oh * ow;
    int rows_o = p->n * p->c_out, rows_i = p->n * p->c_in;
    const float *wsq = p->wsq;
    const float *du = dy; /* (n, c_out, oh, ow): dy * d */
    if (p->demod) {
        if (!wsq) {
            ge_modconv_wsq(m.wsq, w, p->c_out, p->c_in, p->k);
            wsq = m.wsq;
        }
        mc_demod(m.d, s, wsq, p);
        scale_planes(m.du, dy, m.d, rows_o, ohw, 0);
        du = m.du;
        if (ds || dw) { /* dd = dL/dd = sum dy * u, u = y / d */
#pragma omp parallel for schedule(static) if ((size_t)rows_o * ohw > 65536)
            for (int r = 0; r < rows_o; r++)
                m.dd[r] = (float)(dot_row(dy + (size_t)r * ohw, y + (size_t)r * ohw, ohw) / m.d[r]);
        }
    }
    if (dw) mc_weight_grad(dw, du, x, w, s, &m, p);
    if (!dx && !ds) return;
    /* dxs = conv^T(du), into the xs piece */
    float *dxs = m.xs;
    if (p->up) {
        ge_dconv_shape a = mc_adjoint(p);
        if (!ge_dconv_forward(dxs, du, w, NULL, &a, 0)) {
            ge_convt2d_params c = mc_convt(p);
            mc_transpose(m.wt, w, p);
            memset(dxs, 0, (size_t)rows_i * hw * sizeof(float));
            ge_convt2d_backward(dxs, NULL, NULL, du, x, m.wt, &c, m.conv);
        }
    } else {
        ge_dconv_shape a = mc_direct(p);
        if (p->k == 1 || !ge_dconv_backward_data(dxs, du, w, NULL, &a, 0)) {
            ge_conv2d_params c = mc_conv(p);
            memset(dxs, 0, (size_t)rows_i * hw * sizeof(float));
            ge_conv2d_backward(dxs, NULL, NULL, du, x, w, &c, m.conv);
        }
    }
    if (dx) scale_planes(dx, dxs, s, rows_i, hw, 1);
    if (!ds) return;
#pragma omp parallel for schedule(static) if ((size_t)rows_i * (hw + p->c_out) > 65536)
    for (int r = 0; r < rows_i; r++) {
        int i = r / p->c_in, c = r % p->c_in;
        double g = dot_row(dxs + (size_t)r * hw, x + (size_t)r * hw, hw);
        if (p->demod) { /* d d[i,o] / d s[i,c] = -d^3 s[i,c] wsq[o,c] */
            double t = 0;
            for (int o = 0; o < p->c_out; o++) {
                double d = m.d[(size_t)i * p->c_out + o];
                t += (double)m.dd[(size_t)i * p->c_out + o] * d * d * d *
                     wsq[(size_t)o * p->c_in + c];
            }
            g -= t * s[r];
        }
        ds[r] += (float)g;
    }
}
