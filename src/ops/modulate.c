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
 * use a double accumulator. */
#include "ops/ops.h"

#include <math.h>

/* d[n,o] and, if dwm is not NULL, S[n,o] for one (sample, output channel). */
static void demod_coefs(float *d, double *S, const float *wo, const float *sn, const float *dwmo,
                        int c_in, int kk) {
    double ss = 0, dot = 0;
    for (int i = 0; i < c_in; i++)
        for (int t = 0; t < kk; t++) {
            double v = (double)(wo[(size_t)i * kk + t] * sn[i]);
            ss += v * v;
            if (dwmo) dot += dwmo[(size_t)i * kk + t] * v;
        }
    *d = (float)(1.0 / sqrt(ss + 1e-8));
    if (S) *S = dot;
}

void ge_modulate_forward(float *wm, const float *w, const float *s, const ge_modulate_params *p) {
    int kk = p->k * p->k, rows = p->n * p->c_out;
    size_t row = (size_t)p->c_in * kk;
#pragma omp parallel for schedule(static) if ((size_t)rows * row > 65536)
    for (int r = 0; r < rows; r++) {
        int n = r / p->c_out, o = r % p->c_out;
        const float *wo = w + (size_t)o * row; /* (c_in, k, k) */
        const float *sn = s + (size_t)n * p->c_in;
        float *out = wm + (size_t)r * row; /* (c_in, k, k) */
        float d = 1.f;
        if (p->demod) demod_coefs(&d, NULL, wo, sn, NULL, p->c_in, kk);
        for (int i = 0; i < p->c_in; i++)
            for (int t = 0; t < kk; t++)
                out[(size_t)i * kk + t] = wo[(size_t)i * kk + t] * sn[i] * d;
    }
}

/* dv for one element given the row's d and S. */
static inline float dv_of(float dwm, float v, float d, double S, int demod) {
    if (!demod) return dwm;
    return (float)(d * dwm - (double)d * d * d * S * v);
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
                for (int i = 0; i < p->c_in; i++) {
                    double acc = 0;
                    for (int t = 0; t < kk; t++) {
                        float wv = wo[(size_t)i * kk + t];
                        acc +=
                            (double)dv_of(g[(size_t)i * kk + t], wv * sn[i], d, S, p->demod) * wv;
                    }
                    dsn[i] += (float)acc;
                }
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
