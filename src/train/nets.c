/* nets.c - flat parameter sets and the trainable networks built on them: the
 * course DCGAN generators (both layouts) and discriminator, initialised as
 * PyTorch does by default, and a ge_generator made straight from a set.
 *
 * A flat set keeps every tensor inside one block, back to back in order, so
 * one float vector is the whole network for Adam, the EMA and checkpoints,
 * while the models (dcgan.c, discriminator.c) find their tensors by name. */
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ge_status ge_flat_new(ge_tensors **out, int n, const char *const *names, const int *ndims,
                      const int64_t (*shapes)[4]) {
    *out = NULL;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t e = 1;
        for (int k = 0; k < ndims[i]; k++)
            if (shapes[i][k] < 0 || !ge_mul_ok(e, (size_t)shapes[i][k], &e))
                return ge_fail(GE_ERR_SHAPE, "tensor '%s' has an invalid shape", names[i]);
        total += e;
    }
    ge_tensors *t = ge_tensors_new();
    if (!t) return GE_ERR_NOMEM;
    float *block = ge_alloc_floats(total ? total : 1);
    if (!block) {
        ge_tensors_free(t);
        return ge_fail(GE_ERR_NOMEM, "out of memory for %zu parameters", total);
    }
    memset(block, 0, (total ? total : 1) * sizeof(float));
    ge_status s = ge_tensors_own(t, block);
    if (s != GE_OK) {
        ge_tensors_free(t);
        return s;
    }
    float *p = block;
    for (int i = 0; i < n; i++) {
        ge_tensor *e = ge_tensors_add(t, names[i], ndims[i], shapes[i], p);
        if (!e) {
            ge_tensors_free(t);
            return GE_ERR_NOMEM;
        }
        p += e->numel;
    }
    *out = t;
    return GE_OK;
}

/* Names and shapes of a set, as arrays for ge_flat_new (n <= FLAT_MAX). */
#define FLAT_MAX 256
typedef struct {
    int n;
    const char *names[FLAT_MAX];
    int ndims[FLAT_MAX];
    int64_t shapes[FLAT_MAX][4];
} flat_layout;

static ge_status layout_of(flat_layout *L, const ge_tensors *src, const char *prefix) {
    L->n = 0;
    size_t pl = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < ge_tensors_count(src); i++) {
        const ge_tensor *t = ge_tensors_at(src, i);
        if (pl && strncmp(t->name, prefix, pl) != 0) continue;
        if (L->n == FLAT_MAX || t->ndim > 4)
            return ge_fail(GE_ERR_UNSUPPORTED, "parameter set too large for training ('%s')",
                           t->name);
        L->names[L->n] = t->name + pl;
        L->ndims[L->n] = t->ndim;
        for (int k = 0; k < 4; k++)
            L->shapes[L->n][k] = k < t->ndim ? t->shape[k] : 1;
        L->n++;
    }
    return GE_OK;
}

ge_status ge_flat_like(ge_tensors **out, const ge_tensors *like) {
    flat_layout L;
    ge_status s = layout_of(&L, like, NULL);
    if (s != GE_OK) return s;
    return ge_flat_new(out, L.n, L.names, L.ndims, (const int64_t(*)[4])L.shapes);
}

ge_status ge_flat_copy(ge_tensors **out, const ge_tensors *src, const char *prefix) {
    *out = NULL;
    flat_layout L;
    ge_status s = layout_of(&L, src, prefix);
    if (s != GE_OK) return s;
    if (L.n == 0)
        return ge_fail(GE_ERR_FORMAT, "no tensors named '%s...'", prefix ? prefix : "");
    if ((s = ge_flat_new(out, L.n, L.names, L.ndims, (const int64_t(*)[4])L.shapes)) != GE_OK)
        return s;
    size_t pl = prefix ? strlen(prefix) : 0;
    int k = 0;
    for (int i = 0; i < ge_tensors_count(src); i++) {
        const ge_tensor *t = ge_tensors_at(src, i);
        if (pl && strncmp(t->name, prefix, pl) != 0) continue;
        memcpy(ge_tensors_at(*out, k++)->data, t->data, t->numel * sizeof(float));
    }
    return GE_OK;
}

float *ge_flat_data(const ge_tensors *t, size_t *total) {
    *total = 0;
    if (ge_tensors_count(t) == 0) return NULL;
    const ge_tensor *a = ge_tensors_at(t, 0), *z = ge_tensors_at(t, ge_tensors_count(t) - 1);
    *total = (size_t)(z->data + z->numel - a->data);
    return a->data;
}

/* PyTorch's default for Conv2d / ConvTranspose2d (kaiming_uniform_ with
 * a = sqrt(5)): weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), where
 * fan_in = shape[1] * kh * kw (for ConvTranspose2d's (in, out, k, k) layout
 * that is out * k * k: torch's own convention, kept). */
static void torch_default_init(ge_tensor *w, ge_tensor *b, ge_rng *rng) {
    double fan_in = (double)w->shape[1] * w->shape[2] * w->shape[3];
    float bound = (float)(1.0 / sqrt(fan_in));
    ge_rng_fill_uniform(rng, w->data, w->numel, -bound, bound);
    if (b) ge_rng_fill_uniform(rng, b->data, b->numel, -bound, bound);
}

/* A flat set of n tensors, each 4-d weight (and the 1-d bias right after
 * it, if any) initialised with torch_default_init, in order. */
static ge_status flat_torch_init(ge_tensors **out, int n, const char *const *np, const int *nd,
                                 int64_t (*sh)[4], ge_rng *rng) {
    ge_status s = ge_flat_new(out, n, np, nd, (const int64_t(*)[4])sh);
    if (s != GE_OK) return s;
    for (int i = 0; i < n; i++) {
        ge_tensor *w = (ge_tensor *)ge_tensors_at(*out, i);
        if (w->ndim != 4) continue;
        ge_tensor *b = (i + 1 < n && ge_tensors_at(*out, i + 1)->ndim == 1)
                           ? (ge_tensor *)ge_tensors_at(*out, i + 1)
                           : NULL;
        torch_default_init(w, b, rng);
    }
    return GE_OK;
}

static int ilog2_exact(int r) {
    int l = 0;
    while ((1 << l) < r) l++;
    return (1 << l) == r ? l : -1;
}

ge_status ge_train_dcgan_g_init(ge_tensors **out, int deluxe, int z_dim, int conv_dim, int res,
                                ge_rng *rng) {
    *out = NULL;
    int lg = ilog2_exact(res);
    if (lg < 3 || lg > 10) return ge_fail(GE_ERR_ARG, "DCGAN resolution must be 8..1024, a power of two (got %d)", res);
    if (z_dim < 1 || z_dim > 4096 || conv_dim < 1 || conv_dim > 1024)
        return ge_fail(GE_ERR_ARG, "DCGAN z_dim 1..4096 and conv_dim 1..1024 (got %d, %d)", z_dim,
                       conv_dim);
    int L = lg - 1;
    char names[FLAT_MAX][32];
    const char *np[FLAT_MAX];
    int nd[FLAT_MAX], n = 0;
    int64_t sh[FLAT_MAX][4];
    int c_prev = z_dim;
    for (int l = 1; l <= L; l++) {
        int c = l == L ? 3 : conv_dim << (L - 1 - l);
        if (deluxe) {
            snprintf(names[n], 32, "up_conv%d.%d.weight", l, l == 1 ? 0 : 1);
            int k = l == 1 ? 4 : 3;
            sh[n][0] = c, sh[n][1] = c_prev, sh[n][2] = k, sh[n][3] = k;
        } else {
            snprintf(names[n], 32, "deconv%d.0.weight", l);
            sh[n][0] = c_prev, sh[n][1] = c, sh[n][2] = 4, sh[n][3] = 4;
        }
        nd[n] = 4;
        np[n] = names[n];
        n++;
        if (l == L && deluxe) { /* the course's last up_conv has no norm, so a bias */
            snprintf(names[n], 32, "up_conv%d.1.bias", l);
            sh[n][0] = 3, sh[n][1] = sh[n][2] = sh[n][3] = 1;
            nd[n] = 1;
            np[n] = names[n];
            n++;
        }
        c_prev = c;
    }
    return flat_torch_init(out, n, np, nd, sh, rng);
}

ge_status ge_train_dcgan_d_init(ge_tensors **out, int conv_dim, int res, ge_rng *rng) {
    *out = NULL;
    int lg = ilog2_exact(res);
    if (lg < 3 || lg > 10) return ge_fail(GE_ERR_ARG, "discriminator resolution must be 8..1024, a power of two (got %d)", res);
    if (conv_dim < 1 || conv_dim > 1024)
        return ge_fail(GE_ERR_ARG, "discriminator conv_dim must be 1..1024 (got %d)", conv_dim);
    int M = lg - 2;
    char names[FLAT_MAX][32];
    const char *np[FLAT_MAX];
    int nd[FLAT_MAX], n = 0;
    int64_t sh[FLAT_MAX][4];
    int c_prev = 3;
    for (int m = 1; m <= M + 1; m++) {
        int c = m == M + 1 ? 1 : conv_dim << (m - 1);
        snprintf(names[n], 32, "conv%d.0.weight", m);
        sh[n][0] = c, sh[n][1] = c_prev, sh[n][2] = 4, sh[n][3] = 4;
        nd[n] = 4;
        np[n] = names[n];
        n++;
        c_prev = c;
    }
    snprintf(names[n], 32, "conv%d.0.bias", M + 1);
    sh[n][0] = 1, sh[n][1] = sh[n][2] = sh[n][3] = 1;
    nd[n] = 1;
    np[n] = names[n];
    n++;
    return flat_torch_init(out, n, np, nd, sh, rng);
}

ge_status ge_train_generator_new(ge_generator **out, ge_tensors *w, const char *what) {
    *out = NULL;
    ge_generator *g = ge_calloc(1, sizeof *g);
    if (!g) {
        ge_tensors_free(w);
        return GE_ERR_NOMEM;
    }
    ge_status s;
    if (ge_tensors_find(w, "deconv1.0.weight") || ge_tensors_find(w, "up_conv1.0.weight"))
        s = ge_dcgan_create(&g->vt, &g->impl, &g->info, w, what);
    else if (ge_tensors_find(w, "mapping.fc0.weight"))
        s = ge_stylegan2_create(&g->vt, &g->impl, &g->info, w, what, NULL);
    else {
        ge_tensors_free(w);
        s = ge_fail(GE_ERR_UNSUPPORTED, "%s: not a generator ganedit can train", what);
    }
    if (s != GE_OK) {
        free(g);
        return s;
    }
    *out = g;
    return GE_OK;
}

ge_status ge_train_generator_backward(ge_generator *g, float *dlatent, const float *dimg,
                                      const ge_tensors *grads) {
    if (!g->vt->backward_params)
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: no weight gradients for this architecture yet",
                       g->info.arch);
    return g->vt->backward_params(g->impl, dlatent, dimg, grads);
}
