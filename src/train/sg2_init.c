/* sg2_init.c - a fresh StyleGAN2-ADA generator ('skip' synthesis, no
 * conditioning) as a flat parameter set, initialised as StyleGAN2-ADA's
 * training/networks.py does, under the names src/models/stylegan2.c reads.
 *
 * Equalised learning rate: every weight is drawn N(0, 1) and scaled at run
 * time (1/sqrt(fan_in), times lr_multiplier = 0.01 in the mapping network,
 * whose weights are therefore stored as N(0, 1) / 0.01). Biases start at 0,
 * except the style affines' (1, so styles start at 1); the noise strengths
 * at 0; const and the per-layer noise_const buffers N(0, 1); w_avg 0; the
 * resample_filter buffers the normalised [1, 3, 3, 1] outer product.
 * Channels: C(r) = min(channel_base / r, channel_max) at resolution r. */
#include "train/train.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SG2_MAX_TENSORS 256
#define SG2_LR_MUL 0.01f
#define LAYER_NAME "synthesis.b%d.%s.%s"

typedef struct {
    int n;
    char names[SG2_MAX_TENSORS][64];
    int ndims[SG2_MAX_TENSORS];
    int64_t shapes[SG2_MAX_TENSORS][4];
    char kind[SG2_MAX_TENSORS]; /* 'w' randn, 'm' randn/lr_mul, 'z' 0, 'o' 1, 'f' filter, 'r' randn */
} sg2_layout;

static void add(sg2_layout *L, char kind, int ndim, int64_t a, int64_t b, int64_t c, int64_t d,
                const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static void add(sg2_layout *L, char kind, int ndim, int64_t a, int64_t b, int64_t c, int64_t d,
                const char *fmt, ...) {
    int i = L->n++;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->names[i], sizeof L->names[i], fmt, ap);
    va_end(ap);
    L->ndims[i] = ndim;
    int64_t s[4] = {a, b, c, d};
    memcpy(L->shapes[i], s, sizeof s);
    L->kind[i] = kind;
}

/* One modulated conv layer (or ToRGB when k = 1 and no noise) at resolution r. */
static void add_layer(sg2_layout *L, int r, const char *layer, int c_out, int c_in, int k,
                      int w_dim, int noise) {
    add(L, 'w', 4, c_out, c_in, k, k, LAYER_NAME, r, layer, "weight");
    if (noise) add(L, 'z', 0, 1, 1, 1, 1, LAYER_NAME, r, layer, "noise_strength");
    add(L, 'z', 1, c_out, 1, 1, 1, LAYER_NAME, r, layer, "bias");
    if (noise) {
        add(L, 'f', 2, 4, 4, 1, 1, LAYER_NAME, r, layer, "resample_filter");
        add(L, 'r', 2, r, r, 1, 1, LAYER_NAME, r, layer, "noise_const");
    }
    add(L, 'w', 2, c_in, w_dim, 1, 1, LAYER_NAME, r, layer, "affine.weight");
    add(L, 'o', 1, c_in, 1, 1, 1, LAYER_NAME, r, layer, "affine.bias");
}

static int channels(int r, int base, int max) { return base / r < max ? base / r : max; }

ge_status ge_train_sg2_g_init(ge_tensors **out, int z_dim, int w_dim, int map_layers, int res,
                              int channel_base, int channel_max, ge_rng *rng) {
    *out = NULL;
    int lg = 0;
    while ((1 << lg) < res) lg++;
    if ((1 << lg) != res || res < 8 || res > 1024)
        return ge_fail(GE_ERR_ARG, "StyleGAN2 resolution must be 8..1024, a power of two (got %d)",
                       res);
    if (z_dim < 1 || z_dim > 4096 || w_dim < 1 || w_dim > 4096 || map_layers < 1 ||
        map_layers > 16 || channel_max < 1 || channel_max > 4096 || channel_base < res ||
        channel_base > (1 << 20))
        return ge_fail(GE_ERR_ARG,
                       "StyleGAN2 sizes out of range (z_dim %d, w_dim %d, mapping layers %d, "
                       "channel_base %d, channel_max %d)",
                       z_dim, w_dim, map_layers, channel_base, channel_max);
    sg2_layout L;
    memset(&L, 0, sizeof L);
    /* synthesis first, then mapping: StyleGAN2-ADA's state_dict order */
    for (int r = 4; r <= res; r *= 2) {
        int c = channels(r, channel_base, channel_max);
        if (r == 4) {
            add(&L, 'r', 3, c, 4, 4, 1, "synthesis.b%d.const", r);
            add(&L, 'f', 2, 4, 4, 1, 1, "synthesis.b%d.resample_filter", r);
            add_layer(&L, r, "conv1", c, c, 3, w_dim, 1);
        } else {
            int c_in = channels(r / 2, channel_base, channel_max);
            add(&L, 'f', 2, 4, 4, 1, 1, "synthesis.b%d.resample_filter", r);
            add_layer(&L, r, "conv0", c, c_in, 3, w_dim, 1);
            add_layer(&L, r, "conv1", c, c, 3, w_dim, 1);
        }
        add_layer(&L, r, "torgb", 3, c, 1, w_dim, 0);
    }
    add(&L, 'z', 1, w_dim, 1, 1, 1, "mapping.w_avg");
    for (int i = 0; i < map_layers; i++) {
        add(&L, 'm', 2, w_dim, i == 0 ? z_dim : w_dim, 1, 1, "mapping.fc%d.weight", i);
        add(&L, 'z', 1, w_dim, 1, 1, 1, "mapping.fc%d.bias", i);
    }
    const char *names[SG2_MAX_TENSORS];
    for (int i = 0; i < L.n; i++) names[i] = L.names[i];
    ge_tensors *t;
    ge_status s = ge_flat_new(&t, L.n, names, L.ndims, (const int64_t(*)[4])L.shapes);
    if (s != GE_OK) return s;
    static const float f1[4] = {1, 3, 3, 1};
    for (int i = 0; i < L.n; i++) {
        ge_tensor *e = (ge_tensor *)ge_tensors_at(t, i);
        switch (L.kind[i]) {
        case 'w':
        case 'r':
            ge_rng_fill_normal(rng, e->data, e->numel);
            break;
        case 'm':
            ge_rng_fill_normal(rng, e->data, e->numel);
            for (size_t k = 0; k < e->numel; k++) e->data[k] /= SG2_LR_MUL;
            break;
        case 'o':
            for (size_t k = 0; k < e->numel; k++) e->data[k] = 1.f;
            break;
        case 'f':
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++) e->data[y * 4 + x] = f1[y] * f1[x] / 64.f;
            break;
        default: /* 'z': already zero */
            break;
        }
    }
    *out = t;
    return GE_OK;
}
