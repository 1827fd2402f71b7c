/* augment.c - DiffAugment (Zhao et al. 2020): the same random colour,
 * translation and cutout transforms applied to real and generated images
 * before the discriminator, differentiably, so that a discriminator trained
 * on a few hundred images does not memorise them.
 *
 * Follows mit-han-lab/data-efficient-gans DiffAugment_pytorch.py: brightness
 * x + U(-0.5, 0.5); saturation (x - m) U(0, 2) + m with m the per-pixel mean
 * over channels; contrast (x - m) U(0.5, 1.5) + m with m the mean of the
 * whole image; translation by integers in [-h/8, h/8] x [-w/8, w/8] with zero
 * fill; cutout of an (h/2, w/2) rectangle whose corner is offset - size/2,
 * offset uniform in [0, h + (1 - (h/2) % 2)) (likewise w), clipped.
 * For fixed draws every step is linear in x, so the backward applies the
 * transposes in reverse order, in place, with no saved activations. */
#include "train/train.h"

#include <stdlib.h>
#include <string.h>

ge_status ge_diffaug_policy(int *policy, const char *s) {
    *policy = 0;
    if (!s || !*s || !strcmp(s, "none")) return GE_OK;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 5 && !strncmp(p, "color", 5))
            *policy |= GE_AUG_COLOR;
        else if (len == 11 && !strncmp(p, "translation", 11))
            *policy |= GE_AUG_TRANSLATION;
        else if (len == 6 && !strncmp(p, "cutout", 6))
            *policy |= GE_AUG_CUTOUT;
        else
            return ge_fail(GE_ERR_ARG,
                           "unknown DiffAugment policy '%.*s' in '%s' (color, translation, cutout)",
                           (int)len, p, s);
        p += len;
        if (*p == ',') p++;
    }
    return GE_OK;
}

void ge_diffaug_free(ge_diffaug *a) {
    if (!a) return;
    free(a->brightness);
    free(a->tx);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

ge_status ge_diffaug_init(ge_diffaug *a, int policy, int n, int c, int h, int w) {
    memset(a, 0, sizeof *a);
    a->policy = policy, a->n = n, a->c = c, a->h = h, a->w = w;
    a->brightness = ge_calloc((size_t)n * 3, sizeof(float));
    a->tx = ge_calloc((size_t)n * 4, sizeof(int));
    a->tmp = ge_alloc_floats((size_t)c * h * w);
    if (!a->brightness || !a->tx || !a->tmp) {
        ge_diffaug_free(a);
        return ge_fail(GE_ERR_NOMEM, "out of memory for DiffAugment");
    }
    a->saturation = a->brightness + n;
    a->contrast = a->brightness + 2 * n;
    a->ty = a->tx + n;
    a->cx = a->tx + 2 * n;
    a->cy = a->tx + 3 * n;
    return GE_OK;
}

/* Uniform integer in [lo, hi) (hi > lo). */
static int rand_int(ge_rng *rng, int lo, int hi) {
    return lo + (int)(ge_rng_u64(rng) % (uint64_t)(hi - lo));
}

void ge_diffaug_draw(ge_diffaug *a, ge_rng *rng) {
    int n = a->n;
    if (a->policy & GE_AUG_COLOR) {
        for (int i = 0; i < n; i++) a->brightness[i] = ge_rng_uniform(rng) - 0.5f;
        for (int i = 0; i < n; i++) a->saturation[i] = ge_rng_uniform(rng) * 2.f;
        for (int i = 0; i < n; i++) a->contrast[i] = ge_rng_uniform(rng) + 0.5f;
    }
    if (a->policy & GE_AUG_TRANSLATION) {
        int sx = a->h / 8, sy = a->w / 8;
        for (int i = 0; i < n; i++) a->tx[i] = rand_int(rng, -sx, sx + 1);
        for (int i = 0; i < n; i++) a->ty[i] = rand_int(rng, -sy, sy + 1);
    }
    if (a->policy & GE_AUG_CUTOUT) {
        int cs_h = a->h / 2, cs_w = a->w / 2;
        for (int i = 0; i < n; i++) a->cx[i] = rand_int(rng, 0, a->h + (1 - cs_h % 2));
        for (int i = 0; i < n; i++) a->cy[i] = rand_int(rng, 0, a->w + (1 - cs_w % 2));
    }
}

/* y = s x + (1 - s) mean_c(x), per pixel (the saturation step), in place;
 * it is its own transpose (a symmetric matrix per pixel). */
static void mix_channels(float *x, int c, size_t hw, float s) {
    for (size_t j = 0; j < hw; j++) {
        double m = 0;
        for (int k = 0; k < c; k++) m += x[k * hw + j];
        float mf = (float)(m / c);
        for (int k = 0; k < c; k++) x[k * hw + j] = (x[k * hw + j] - mf) * s + mf;
    }
}

/* y = s x + (1 - s) mean(x) over the whole image (contrast), in place;
 * symmetric too. */
static void mix_all(float *x, size_t count, float s) {
    double m = 0;
    for (size_t j = 0; j < count; j++) m += x[j];
    float mf = (float)(m / (double)count);
    for (size_t j = 0; j < count; j++) x[j] = (x[j] - mf) * s + mf;
}

/* Translation of one image x (c, h, w) by (tx, ty): forward y[i][j] =
 * x[i+tx][j+ty] (0 outside); transpose dx[i+tx][j+ty] = dy[i][j]. */
static void shift(float *x, float *tmp, int c, int h, int w, int tx, int ty, int transpose) {
    size_t hw = (size_t)h * w;
    memcpy(tmp, x, (size_t)c * hw * sizeof(float));
    memset(x, 0, (size_t)c * hw * sizeof(float));
    if (transpose) tx = -tx, ty = -ty;
    for (int k = 0; k < c; k++)
        for (int i = 0; i < h; i++) {
            int si = i + tx;
            if (si < 0 || si >= h) continue;
            for (int j = 0; j < w; j++) {
                int sj = j + ty;
                if (sj >= 0 && sj < w) x[k * hw + (size_t)i * w + j] = tmp[k * hw + (size_t)si * w + sj];
            }
        }
}

/* Cutout: zero the (h/2, w/2) rectangle whose corner is (cx - (h/2)/2,
 * cy - (w/2)/2), clipped to the image; a mask is its own transpose. */
static void cutout(float *x, int c, int h, int w, int cx, int cy) {
    int sh = h / 2, sw = w / 2;
    int r0 = cx - sh / 2, c0 = cy - sw / 2;
    int r1 = r0 + sh, c1 = c0 + sw;
    if (r0 < 0) r0 = 0;
    if (c0 < 0) c0 = 0;
    if (r1 > h) r1 = h;
    if (c1 > w) c1 = w;
    size_t hw = (size_t)h * w;
    for (int k = 0; k < c; k++)
        for (int i = r0; i < r1; i++)
            for (int j = c0; j < c1; j++) x[k * hw + (size_t)i * w + j] = 0.f;
}

void ge_diffaug_forward(ge_diffaug *a, float *x) {
    size_t hw = (size_t)a->h * a->w, per = (size_t)a->c * hw;
    for (int i = 0; i < a->n; i++) {
        float *xi = x + per * i; /* (c, h, w) */
        if (a->policy & GE_AUG_COLOR) {
            for (size_t j = 0; j < per; j++) xi[j] += a->brightness[i];
            mix_channels(xi, a->c, hw, a->saturation[i]);
            mix_all(xi, per, a->contrast[i]);
        }
        if (a->policy & GE_AUG_TRANSLATION)
            shift(xi, a->tmp, a->c, a->h, a->w, a->tx[i], a->ty[i], 0);
        if (a->policy & GE_AUG_CUTOUT) cutout(xi, a->c, a->h, a->w, a->cx[i], a->cy[i]);
    }
}

void ge_diffaug_backward(ge_diffaug *a, float *g) {
    size_t hw = (size_t)a->h * a->w, per = (size_t)a->c * hw;
    for (int i = 0; i < a->n; i++) {
        float *gi = g + per * i; /* (c, h, w) */
        if (a->policy & GE_AUG_CUTOUT) cutout(gi, a->c, a->h, a->w, a->cx[i], a->cy[i]);
        if (a->policy & GE_AUG_TRANSLATION)
            shift(gi, a->tmp, a->c, a->h, a->w, a->tx[i], a->ty[i], 1);
        if (a->policy & GE_AUG_COLOR) {
            mix_all(gi, per, a->contrast[i]);
            mix_channels(gi, a->c, hw, a->saturation[i]);
            /* brightness adds a constant: the identity on gradients */
        }
    }
}
