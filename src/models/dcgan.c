/* dcgan.c - the two DCGAN generator layouts of the CMU 16-726 course, z -> image.
 *
 *   vanilla  deconv{1..L}.0.weight (c_in, c_out, 4, 4), ConvTranspose2d without
 *            bias: deconv1 stride 2 pad 0 (1x1 -> 4x4), the others stride 2
 *            pad 1 (x2 each); every layer but the last is followed by
 *            InstanceNorm2d (no affine, eps 1e-5) and ReLU, the last by tanh.
 *   deluxe   up_conv1.0.weight (c_out, z, 4, 4), Conv2d stride 1 pad 3 on the
 *            1x1 input (-> 4x4); up_conv{2..L}.1.weight (c_out, c_in, 3, 3):
 *            nearest x2 upsample then Conv2d pad 1; norm and activation as
 *            above. The last conv has a bias (up_conv5.1.bias in the course).
 *
 * The layout is recognised from the key names; z size, widths and depth come
 * from the tensor shapes (the course's nets have L = 5: 64x64 output). A bias
 * present for any layer is used. Batch-norm variants are refused: their
 * running statistics would be needed and no checkpoint of that kind exists.
 *
 * The network is a plain chain of ops (src/ops/ops.h), so it is kept as an
 * array of nodes: node 0 is z as (n, z_dim, 1, 1), node i = op_i(node i-1).
 * forward keeps every node (the inputs each op's backward needs); backward
 * walks the chain in reverse with two ping-pong gradient buffers. All buffers
 * live in one allocation sized for the batch size and reused until it
 * changes. Editing never needs weight gradients (the plain backward skips
 * them); the trainer (src/train) asks for them through backward_params, which
 * adds each layer's dW/db into a tensor set with the weights' own names.
 *
 * Speed: a weight inside the file's read-only mapping can never change, so
 * its convolutions go straight to the oneDNN path (kernels.h) with w_const:
 * the packed copy is kept between calls, not redone on every call;
 * ge_dconv_forget drops it in dc_free. They stay on the direct kernels (no
 * Winograd), so a file loaded without a mapping (.pkl) gives the same bytes.
 * Weight gradients (training) and any declined call take the ops' path. */
#include "kernels/kernels.h"
#include "models/models.h"
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DC_MAX_LAYERS 8
#define DC_MAX_NODES (1 + 4 * DC_MAX_LAYERS)
#define DC_IN_EPS 1e-5f

typedef enum { DC_INPUT, DC_CONV, DC_CONVT, DC_NORM, DC_RELU, DC_TANH, DC_UP } dc_op;

typedef struct {
    dc_op op;
    int c, h, w;         /* this node's activation: (n, c, h, w) */
    const float *weight; /* conv: (c_out, c_in, k, k); convt: (c_in, c_out, k, k) */
    const float *bias;   /* (c_out) or NULL */
    int k, stride, pad;
    int layer;   /* conv/convt: the 1-based layer number of its weight's key */
    int w_const; /* conv/convt: the weight lies in the file's read-only mapping */
    float *data; /* (n, c, h, w), into the arena */
} dc_node;

typedef struct {
    ge_tensors *w;
    int deluxe;
    int z_dim, n_layers;
    int n_nodes;
    dc_node nodes[DC_MAX_NODES];
    /* arena, planned for batch size `n` */
    int n; /* 0: not planned */
    float *arena;
    size_t scratch_len; /* floats */
    float *scratch;
    float *grad_a, *grad_b; /* each the largest node */
    int have_forward;
} dcgan;

static size_t node_numel(const dc_node *d, int n) {
    return (size_t)n * d->c * d->h * d->w;
}

static ge_conv2d_params conv_params(const dc_node *in, const dc_node *out, int n) {
    ge_conv2d_params p = {0};
    p.n = n;
    p.c_in = in->c, p.h = in->h, p.w = in->w;
    p.c_out = out->c, p.kh = out->k, p.kw = out->k;
    p.stride = out->stride, p.pad = out->pad, p.pad_mode = GE_PAD_ZERO;
    return p;
}

static ge_convt2d_params convt_params(const dc_node *in, const dc_node *out, int n) {
    ge_convt2d_params p = {0};
    p.n = n;
    p.c_in = in->c, p.h = in->h, p.w = in->w;
    p.c_out = out->c, p.kh = out->k, p.kw = out->k;
    p.stride = out->stride, p.pad = out->pad;
    return p;
}

/* The oneDNN problem of a conv node, or of the convolution whose input
 * gradient a convt node is (its stored weight read as that conv's). */
static ge_dconv_shape dc_dshape(const dc_node *in, const dc_node *out, int n) {
    ge_dconv_shape s = {.n = n,
                        .c_in = in->c,
                        .h = in->h,
                        .w = in->w,
                        .c_out = out->c,
                        .kh = out->k,
                        .kw = out->k,
                        .stride = out->stride,
                        .pad = out->pad,
                        .pad_mode = GE_PAD_ZERO,
                        .w_const = 1};
    if (out->op == DC_CONVT) {
        s.c_in = out->c, s.h = out->h, s.w = out->w;
        s.c_out = in->c;
    }
    return s;
}

/* y = op(x) through the kept-weight fast path; 0 when it declines. */
static int dc_fast_forward(const dc_node *x, const dc_node *y, int n) {
    if (!y->w_const) return 0;
    ge_dconv_shape s = dc_dshape(x, y, n);
    if (y->op == DC_CONV) return ge_dconv_forward(y->data, x->data, y->weight, y->bias, &s, 0);
    return ge_dconv_backward_data(y->data, x->data, y->weight, y->bias, &s, 0);
}

/* dx += op's input gradient of gy through the kept-weight fast path; 0 when
 * it declines (nothing written). */
static int dc_fast_backward(float *dx, const float *gy, const dc_node *x, const dc_node *y, int n) {
    if (!y->w_const || !dx) return 0;
    ge_dconv_shape s = dc_dshape(x, y, n);
    if (y->op == DC_CONV) return ge_dconv_backward_data(dx, gy, y->weight, NULL, &s, 1);
    return ge_dconv_forward(dx, gy, y->weight, NULL, &s, 1);
}

static ge_bias_act_params act_params(const dc_node *d, int n) {
    ge_bias_act_params p = {0};
    p.n = n, p.c = d->c, p.spatial = (size_t)d->h * d->w;
    p.act = d->op == DC_TANH ? GE_ACT_TANH : GE_ACT_RELU;
    p.gain = 1.f, p.b_gain = 1.f, p.clamp = -1.f;
    return p;
}

/* (Re)plans the arena for batch size n: node buffers, conv scratch and the
 * two gradient buffers, in one allocation. */
static ge_status dc_plan(dcgan *g, int n) {
    if (g->n == n) return GE_OK;
    size_t total = 0, biggest = 0, scratch = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        size_t e = node_numel(&g->nodes[i], n);
        if (e > biggest) biggest = e;
        if (total > SIZE_MAX / 2 - e) return ge_fail(GE_ERR_NOMEM, "DCGAN batch %d too large", n);
        total += e;
        if (i > 0 && g->nodes[i].op == DC_CONV) {
            ge_conv2d_params p = conv_params(&g->nodes[i - 1], &g->nodes[i], n);
            size_t s = ge_conv2d_scratch(&p);
            if (s > scratch) scratch = s;
        } else if (i > 0 && g->nodes[i].op == DC_CONVT) {
            ge_convt2d_params p = convt_params(&g->nodes[i - 1], &g->nodes[i], n);
            size_t s = ge_convt2d_scratch(&p);
            if (s > scratch) scratch = s;
        }
    }
    /* each part rounded up to 16 floats keeps every pointer 64-byte aligned */
    size_t all = 0;
    for (int i = 0; i < g->n_nodes; i++)
        all += (node_numel(&g->nodes[i], n) + 15) & ~(size_t)15;
    all += 2 * ((biggest + 15) & ~(size_t)15) + ((scratch + 15) & ~(size_t)15);
    free(g->arena);
    g->arena = NULL;
    g->n = 0;
    g->have_forward = 0;
    float *a = ge_alloc_floats(all);
    if (!a) return ge_fail(GE_ERR_NOMEM, "out of memory for a DCGAN batch of %d", n);
    g->arena = a;
    for (int i = 0; i < g->n_nodes; i++) {
        g->nodes[i].data = a;
        a += (node_numel(&g->nodes[i], n) + 15) & ~(size_t)15;
    }
    g->grad_a = a;
    a += (biggest + 15) & ~(size_t)15;
    g->grad_b = a;
    a += (biggest + 15) & ~(size_t)15;
    g->scratch = a;
    g->scratch_len = scratch;
    g->n = n;
    return GE_OK;
}

static ge_status dc_forward(void *impl, float *img, const float *latent, ge_latent_space sp, int n,
                            const ge_gen_call *call) {
    dcgan *g = impl;
    if (sp != GE_LATENT_Z) return ge_fail(GE_ERR_ARG, "DCGAN has only a z latent space");
    if (call && call->truncation_psi != 1.f)
        return ge_fail(GE_ERR_ARG, "truncation (psi %g) applies to StyleGAN2 only, not DCGAN",
                       (double)call->truncation_psi);
    ge_status s = dc_plan(g, n);
    if (s != GE_OK) return s;
    memcpy(g->nodes[0].data, latent, node_numel(&g->nodes[0], n) * sizeof(float));
    for (int i = 1; i < g->n_nodes; i++) {
        const dc_node *x = &g->nodes[i - 1];
        dc_node *y = &g->nodes[i];
        switch (y->op) {
        case DC_CONV: {
            if (dc_fast_forward(x, y, n)) break;
            ge_conv2d_params p = conv_params(x, y, n);
            ge_conv2d_forward(y->data, x->data, y->weight, y->bias, &p, g->scratch);
            break;
        }
        case DC_CONVT: {
            if (dc_fast_forward(x, y, n)) break;
            ge_convt2d_params p = convt_params(x, y, n);
            ge_convt2d_forward(y->data, x->data, y->weight, y->bias, &p, g->scratch);
            break;
        }
        case DC_NORM:
            ge_instance_norm_forward(y->data, x->data, n, x->c, (size_t)x->h * x->w, DC_IN_EPS);
            break;
        case DC_RELU:
        case DC_TANH: {
            ge_bias_act_params p = act_params(y, n);
            ge_bias_act_forward(y->data, x->data, NULL, &p);
            break;
        }
        case DC_UP:
            ge_upsample2_forward(y->data, x->data, n, x->c, x->h, x->w);
            break;
        case DC_INPUT:
            break;
        }
    }
    const dc_node *last = &g->nodes[g->n_nodes - 1];
    memcpy(img, last->data, node_numel(last, n) * sizeof(float));
    g->have_forward = 1;
    return GE_OK;
}

static void dc_key(char *buf, size_t cap, int deluxe, int l, const char *what);

/* The gradient tensor for layer l's `what` in grads, or NULL (skipped). */
static float *dc_grad(const dcgan *g, const ge_tensors *grads, int l, const char *what) {
    if (!grads) return NULL;
    char key[64];
    dc_key(key, sizeof key, g->deluxe, l, what);
    return ge_tensors_data_of(grads, "%s", key);
}

/* The backward of the last forward: dlatent (if not NULL) and, with grads,
 * the weight gradients. The input gradient of layer 1 is skipped when
 * dlatent is NULL. */
static ge_status dc_backward_all(dcgan *g, float *dlatent, const float *dimg,
                                 const ge_tensors *grads) {
    if (!g->have_forward) return ge_fail(GE_ERR_ARG, "DCGAN backward called before forward");
    int n = g->n;
    float *gy = g->grad_a, *gx = g->grad_b;
    memcpy(gy, dimg, node_numel(&g->nodes[g->n_nodes - 1], n) * sizeof(float));
    for (int i = g->n_nodes - 1; i >= 1; i--) {
        const dc_node *x = &g->nodes[i - 1];
        const dc_node *y = &g->nodes[i];
        memset(gx, 0, node_numel(x, n) * sizeof(float));
        float *dx = (i == 1 && !dlatent) ? NULL : gx;
        float *dw = NULL, *db = NULL;
        if (grads && (y->op == DC_CONV || y->op == DC_CONVT)) {
            dw = dc_grad(g, grads, y->layer, "weight");
            db = y->bias ? dc_grad(g, grads, y->layer, "bias") : NULL;
        }
        switch (y->op) {
        case DC_CONV: {
            if (!dw && !db && dc_fast_backward(dx, gy, x, y, n)) break;
            ge_conv2d_params p = conv_params(x, y, n);
            ge_conv2d_backward(dx, dw, db, gy, x->data, y->weight, &p, g->scratch);
            break;
        }
        case DC_CONVT: {
            if (!dw && !db && dc_fast_backward(dx, gy, x, y, n)) break;
            ge_convt2d_params p = convt_params(x, y, n);
            ge_convt2d_backward(dx, dw, db, gy, x->data, y->weight, &p, g->scratch);
            break;
        }
        case DC_NORM:
            ge_instance_norm_backward(gx, gy, x->data, n, x->c, (size_t)x->h * x->w, DC_IN_EPS);
            break;
        case DC_RELU:
        case DC_TANH: {
            ge_bias_act_params p = act_params(y, n);
            ge_bias_act_backward(gx, NULL, gy, x->data, NULL, &p);
            break;
        }
        case DC_UP:
            ge_upsample2_backward(gx, gy, n, x->c, x->h, x->w);
            break;
        case DC_INPUT:
            break;
        }
        float *t = gy;
        gy = gx;
        gx = t;
    }
    if (dlatent) {
        size_t nz = node_numel(&g->nodes[0], n);
        for (size_t i = 0; i < nz; i++)
            dlatent[i] += gy[i];
    }
    return GE_OK;
}

static ge_status dc_backward(void *impl, float *dlatent, const float *dimg) {
    return dc_backward_all(impl, dlatent, dimg, NULL);
}

static ge_status dc_backward_params(void *impl, float *dlatent, const float *dimg,
                                    const ge_tensors *grads) {
    return dc_backward_all(impl, dlatent, dimg, grads);
}

static void dc_free(void *impl) {
    dcgan *g = impl;
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].w_const) ge_dconv_forget(g->nodes[i].weight);
    free(g->arena);
    ge_tensors_free(g->w);
    free(g);
}

static const ge_gen_vtable dc_vtable = {dc_forward, dc_backward, NULL, dc_free,
                                         dc_backward_params};

static dc_node *dc_push(dcgan *g, dc_op op, int c, int h, int w) {
    dc_node *d = &g->nodes[g->n_nodes++];
    memset(d, 0, sizeof *d);
    d->op = op, d->c = c, d->h = h, d->w = w;
    return d;
}

/* Name of layer l's (1-based) conv tensor `what` ("weight" or "bias"). */
static void dc_key(char *buf, size_t cap, int deluxe, int l, const char *what) {
    if (!deluxe)
        snprintf(buf, cap, "deconv%d.0.%s", l, what);
    else
        snprintf(buf, cap, "up_conv%d.%d.%s", l, l == 1 ? 0 : 1, what);
}

/* Optional bias of layer l: absent is fine, present must be (c_out). */
static ge_status dc_bias(const float **out, size_t *count, const dcgan *g, const char *path, int l,
                         int c_out) {
    char key[64];
    dc_key(key, sizeof key, g->deluxe, l, "bias");
    *out = NULL;
    if (!ge_tensors_find(g->w, key)) return GE_OK;
    const ge_tensor *t;
    int64_t shape[1] = {c_out};
    ge_status s = ge_expect_tensor(&t, g->w, path, key, 1, shape);
    if (s != GE_OK) return s;
    *out = t->data;
    *count += t->numel;
    return GE_OK;
}

static ge_status dc_build(dcgan *g, ge_gen_info *info, const char *path) {
    ge_tensors *w = g->w;
    g->deluxe = ge_tensors_find(w, "up_conv1.0.weight") != NULL;
    const char *arch = g->deluxe ? "dcgan-deluxe" : "dcgan-vanilla";

    /* Batch-norm variants of the course code put parameters in the norm slot. */
    static const char *bn_keys[] = {"deconv1.1.weight",  "deconv1.1.running_mean",
                                    "up_conv1.1.weight", "up_conv1.1.running_mean",
                                    "up_conv2.2.weight", "up_conv2.2.running_mean"};
    for (size_t i = 0; i < sizeof bn_keys / sizeof *bn_keys; i++)
        if (ge_tensors_find(w, bn_keys[i]))
            return ge_fail(GE_ERR_UNSUPPORTED,
                           "%s: %s has a normalisation layer with parameters ('%s'): only the "
                           "instance-norm DCGAN (no affine) is supported",
                           path, arch, bn_keys[i]);

    char key[64];
    int L = 0;
    while (L < DC_MAX_LAYERS + 1) {
        dc_key(key, sizeof key, g->deluxe, L + 1, "weight");
        if (!ge_tensors_find(w, key)) break;
        L++;
    }
    if (L > DC_MAX_LAYERS)
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: %s with more than %d layers", path, arch,
                       DC_MAX_LAYERS);
    if (L < 2) {
        dc_key(key, sizeof key, g->deluxe, 2, "weight");
        return ge_fail(GE_ERR_FORMAT, "%s: %s without '%s' (a DCGAN has at least two layers)", path,
                       arch, key);
    }

    /* Layer 1: z (n, z_dim, 1, 1) -> (n, c1, 4, 4). */
    dc_key(key, sizeof key, g->deluxe, 1, "weight");
    const ge_tensor *t1 = ge_tensors_find(w, key);
    if (t1->ndim != 4 || t1->shape[2] != 4 || t1->shape[3] != 4 || t1->shape[0] < 1 ||
        t1->shape[1] < 1 || t1->shape[0] > 65536 || t1->shape[1] > 65536) {
        char got[96] = "";
        for (int i = 0; i < t1->ndim && i < 8; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t1->shape[i]);
        return ge_fail(GE_ERR_SHAPE, "%s: tensor '%s' has shape (%s), expected (%s, 4, 4)", path,
                       key, got, g->deluxe ? "c_out, z_dim" : "z_dim, c_out");
    }
    g->z_dim = (int)(g->deluxe ? t1->shape[1] : t1->shape[0]);
    int c_prev = (int)(g->deluxe ? t1->shape[0] : t1->shape[1]);
    size_t params = t1->numel;

    g->n_nodes = 0;
    dc_push(g, DC_INPUT, g->z_dim, 1, 1); /* node 0: z as (n, z_dim, 1, 1) */
    dc_node *d = dc_push(g, g->deluxe ? DC_CONV : DC_CONVT, c_prev, 4, 4);
    d->weight = t1->data, d->k = 4, d->layer = 1;
    d->stride = g->deluxe ? 1 : 2, d->pad = g->deluxe ? 3 : 0;
    ge_status s = dc_bias(&d->bias, &params, g, path, 1, c_prev);
    if (s != GE_OK) return s;
    int res = 4;
    char widths[256];
    snprintf(widths, sizeof widths, "%d", c_prev);
    for (int l = 2; l <= L; l++) {
        dc_push(g, DC_NORM, c_prev, res, res);
        dc_push(g, DC_RELU, c_prev, res, res);
        dc_key(key, sizeof key, g->deluxe, l, "weight");
        const ge_tensor *t = ge_tensors_find(w, key);
        if (t->ndim != 4 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > 65536 ||
            t->shape[1] > 65536)
            return ge_fail(GE_ERR_SHAPE, "%s: tensor '%s' has %d dimensions, expected 4", path, key,
                           t->ndim);
        int c_out = (int)(g->deluxe ? t->shape[0] : t->shape[1]);
        if (l == L && c_out != 3) c_out = 3; /* the image has 3 channels: let the check name it */
        int64_t shape[4];
        if (g->deluxe)
            shape[0] = c_out, shape[1] = c_prev, shape[2] = 3, shape[3] = 3;
        else
            shape[0] = c_prev, shape[1] = c_out, shape[2] = 4, shape[3] = 4;
        s = ge_expect_tensor(&t, w, path, key, 4, shape);
        if (s != GE_OK) return s;
        params += t->numel;
        if (g->deluxe) {
            dc_push(g, DC_UP, c_prev, 2 * res, 2 * res);
            d = dc_push(g, DC_CONV, c_out, 2 * res, 2 * res);
            d->k = 3, d->stride = 1, d->pad = 1;
        } else {
            d = dc_push(g, DC_CONVT, c_out, 2 * res, 2 * res);
            d->k = 4, d->stride = 2, d->pad = 1;
        }
        d->weight = t->data;
        d->layer = l;
        s = dc_bias(&d->bias, &params, g, path, l, c_out);
        if (s != GE_OK) return s;
        res *= 2;
        c_prev = c_out;
        snprintf(widths + strlen(widths), sizeof widths - strlen(widths), "-%d", c_out);
    }
    dc_push(g, DC_TANH, 3, res, res);
    g->n_layers = L;
    const char *m = g->w->map;
    for (int i = 0; i < g->n_nodes; i++) {
        dc_node *c = &g->nodes[i];
        if (c->op != DC_CONV && c->op != DC_CONVT) continue;
        size_t wn = (size_t)c->c * g->nodes[i - 1].c * c->k * c->k;
        const char *wp = (const char *)c->weight;
        c->w_const = m && wp >= m && wp + wn * sizeof(float) <= m + g->w->map_len;
    }

    memset(info, 0, sizeof *info);
    info->arch = arch;
    info->resolution = res;
    info->z_dim = g->z_dim;
    info->z_dist = g->deluxe ? GE_ZDIST_UNIFORM : GE_ZDIST_NORMAL;
    info->num_params = params;
    snprintf(info->description, sizeof info->description,
             "DCGAN %s (%s), %d layers, z %d ~ %s, channels %s, instance norm + ReLU, tanh "
             "output %dx%d, %zu parameters",
             g->deluxe ? "deluxe" : "vanilla",
             g->deluxe ? "nearest x2 upsample + 3x3 conv" : "4x4 transposed conv, stride 2", L,
             g->z_dim, g->deluxe ? "U(-1,1)" : "N(0,1)", widths, res, res, params);
    return GE_OK;
}

ge_status ge_dcgan_create(const ge_gen_vtable **vt, void **impl, ge_gen_info *info, ge_tensors *w,
                          const char *path) {
    *vt = NULL;
    *impl = NULL;
    dcgan *g = ge_calloc(1, sizeof *g);
    if (!g) {
        ge_tensors_free(w);
        return GE_ERR_NOMEM;
    }
    g->w = w;
    ge_status s = dc_build(g, info, path);
    if (s != GE_OK) {
        dc_free(g);
        return s;
    }
    *vt = &dc_vtable;
    *impl = g;
    return GE_OK;
}
