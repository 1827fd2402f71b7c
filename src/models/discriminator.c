/* discriminator.c - the DCGAN discriminator of the CMU 16-726 course, image
 * -> one logit per image, with input and weight gradients (training only).
 *
 *   conv{m}.0.weight (c_m, c_{m-1}, 4, 4), m = 1..M: Conv2d stride 2 pad 1,
 *       no bias, then InstanceNorm2d (no affine, eps 1e-5) and LeakyReLU(0.2);
 *       R -> R/2 each, M = log2(R) - 2, so the last map is 4x4;
 *   conv{M+1}.0.weight (1, c_M, 4, 4) + conv{M+1}.0.bias (1): Conv2d stride 1
 *       pad 0 on the 4x4 map -> the (n, 1, 1, 1) logit.
 *
 * This is the course's `DCDiscriminator(conv_dim, norm='instance')` built
 * from its `conv()` helper (a conv followed by a norm has no bias; the last
 * conv, with no norm, has one). The course skeleton leaves the activation to
 * the student; LeakyReLU with slope 0.2 is the DCGAN paper's choice for the
 * discriminator and is what we use (docs/training.md).
 *
 * As in dcgan.c the network is a chain of nodes: node 0 is the input image,
 * node i = op_i(node i-1); forward keeps every node (the inputs each op's
 * backward needs), backward walks the chain in reverse with two ping-pong
 * gradient buffers and adds weight gradients into a tensor set whose names
 * are the weights' names. One allocation per batch size.
 *
 * ge_disc_* also front the StyleGAN2-ADA discriminator (sg2_disc.c): a set
 * with "b{R}.fromrgb.weight" goes there, every call is forwarded. */
#include "kernels/kernels.h"
#include "models/models.h"
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DD_MAX_CONVS 10
#define DD_MAX_NODES (1 + 3 * DD_MAX_CONVS)
#define DD_IN_EPS 1e-5f
#define DD_SLOPE 0.2f

typedef enum { DD_INPUT, DD_CONV, DD_NORM, DD_LRELU } dd_op;

typedef struct {
    dd_op op;
    int c, h, w;         /* this node's activation: (n, c, h, w) */
    const float *weight; /* conv: (c_out, c_in, 4, 4) */
    const float *bias;   /* (c_out) or NULL */
    int stride, pad, layer;
    float *data; /* (n, c, h, w), into the arena */
} dd_node;

struct ge_disc {
    ge_sg2_disc *sg2; /* not NULL: a StyleGAN2 discriminator, every call goes there */
    ge_tensors *w;
    int resolution, n_convs, n_nodes;
    dd_node nodes[DD_MAX_NODES];
    int n; /* planned batch size, 0: none */
    float *arena, *scratch, *grad_a, *grad_b;
    size_t arena_len; /* floats allocated */
    int have_forward;
};

static size_t dd_numel(const dd_node *d, int n) { return (size_t)n * d->c * d->h * d->w; }

static ge_conv2d_params dd_conv_params(const dd_node *in, const dd_node *out, int n) {
    ge_conv2d_params p = {0};
    p.n = n;
    p.c_in = in->c, p.h = in->h, p.w = in->w;
    p.c_out = out->c, p.kh = 4, p.kw = 4;
    p.stride = out->stride, p.pad = out->pad, p.pad_mode = GE_PAD_ZERO;
    return p;
}

static ge_bias_act_params dd_act_params(const dd_node *d, int n) {
    ge_bias_act_params p = {0};
    p.n = n, p.c = d->c, p.spatial = (size_t)d->h * d->w;
    p.act = GE_ACT_LRELU, p.alpha = DD_SLOPE;
    p.gain = 1.f, p.b_gain = 1.f, p.clamp = -1.f;
    return p;
}

static size_t up16(size_t x) { return (x + 15) & ~(size_t)15; }

/* Lays the arena out for batch size n; the allocation is kept while n fits
 * (training alternates 2B and B images), and grows when it does not. */
static ge_status dd_plan(ge_disc *d, int n) {
    if (d->n == n) return GE_OK;
    size_t all = 0, biggest = 0, scratch = 0;
    for (int i = 0; i < d->n_nodes; i++) {
        size_t e = dd_numel(&d->nodes[i], n);
        if (e > biggest) biggest = e;
        all += up16(e);
        if (i > 0 && d->nodes[i].op == DD_CONV) {
            ge_conv2d_params p = dd_conv_params(&d->nodes[i - 1], &d->nodes[i], n);
            size_t s = ge_conv2d_scratch(&p);
            if (s > scratch) scratch = s;
        }
    }
    all += 2 * up16(biggest) + up16(scratch);
    d->have_forward = 0;
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
    float *a = d->arena;
    for (int i = 0; i < d->n_nodes; i++) {
        d->nodes[i].data = a;
        a += up16(dd_numel(&d->nodes[i], n));
    }
    d->grad_a = a;
    a += up16(biggest);
    d->grad_b = a;
    a += up16(biggest);
    d->scratch = a;
    d->n = n;
    return GE_OK;
}

ge_status ge_disc_forward(ge_disc *d, float *logits, const float *x, int n) {
    if (d->sg2) return ge_sg2_disc_forward(d->sg2, logits, x, n);
    if (n <= 0) return ge_fail(GE_ERR_ARG, "batch size must be positive (got %d)", n);
    ge_status s = dd_plan(d, n);
    if (s != GE_OK) return s;
    memcpy(d->nodes[0].data, x, dd_numel(&d->nodes[0], n) * sizeof(float));
    for (int i = 1; i < d->n_nodes; i++) {
        const dd_node *a = &d->nodes[i - 1];
        dd_node *b = &d->nodes[i];
        if (b->op == DD_CONV) {
            ge_conv2d_params p = dd_conv_params(a, b, n);
            ge_conv2d_forward(b->data, a->data, b->weight, b->bias, &p, d->scratch);
        } else if (b->op == DD_NORM) {
            ge_instance_norm_forward(b->data, a->data, n, a->c, (size_t)a->h * a->w, DD_IN_EPS);
        } else if (b->op == DD_LRELU) {
            ge_bias_act_params p = dd_act_params(b, n);
            ge_bias_act_forward(b->data, a->data, NULL, &p);
        }
    }
    memcpy(logits, d->nodes[d->n_nodes - 1].data, (size_t)n * sizeof(float));
    d->have_forward = 1;
    return GE_OK;
}

ge_status ge_disc_freeze(ge_disc *d, int on) {
    if (d->sg2) return ge_sg2_disc_freeze(d->sg2, on);
    return ge_fail(GE_ERR_UNSUPPORTED, "only the StyleGAN2 discriminator can be frozen");
}

ge_status ge_disc_backward(ge_disc *d, float *dx, const ge_tensors *grads, const float *dlogits) {
    if (d->sg2) return ge_sg2_disc_backward(d->sg2, dx, grads, dlogits);
    if (!d->have_forward) return ge_fail(GE_ERR_ARG, "discriminator backward before forward");
    int n = d->n;
    float *gy = d->grad_a, *gx = d->grad_b;
    memcpy(gy, dlogits, (size_t)n * sizeof(float));
    for (int i = d->n_nodes - 1; i >= 1; i--) {
        const dd_node *a = &d->nodes[i - 1];
        const dd_node *b = &d->nodes[i];
        float *g_in = (i == 1) ? dx : gx; /* the image gradient goes straight to dx */
        if (g_in == gx) memset(gx, 0, dd_numel(a, n) * sizeof(float));
        if (b->op == DD_CONV) {
            ge_conv2d_params p = dd_conv_params(a, b, n);
            float *dw = ge_tensors_data_of(grads, "conv%d.0.weight", b->layer);
            float *db = b->bias ? ge_tensors_data_of(grads, "conv%d.0.bias", b->layer) : NULL;
            ge_conv2d_backward(g_in, dw, db, gy, a->data, b->weight, &p, d->scratch);
        } else if (b->op == DD_NORM) {
            ge_instance_norm_backward(g_in, gy, a->data, n, a->c, (size_t)a->h * a->w, DD_IN_EPS);
        } else if (b->op == DD_LRELU && g_in) {
            ge_bias_act_params p = dd_act_params(b, n);
            ge_bias_act_backward(g_in, NULL, gy, a->data, NULL, &p);
        }
        float *t = gy;
        gy = gx;
        gx = t;
    }
    return GE_OK;
}

int ge_disc_resolution(const ge_disc *d) {
    return d->sg2 ? ge_sg2_disc_resolution(d->sg2) : d->resolution;
}

void ge_disc_free(ge_disc *d) {
    if (!d) return;
    ge_sg2_disc_free(d->sg2);
    free(d->arena);
    ge_tensors_free(d->w);
    free(d);
}

static dd_node *dd_push(ge_disc *d, dd_op op, int c, int h, int w) {
    dd_node *x = &d->nodes[d->n_nodes++];
    memset(x, 0, sizeof *x);
    x->op = op, x->c = c, x->h = h, x->w = w;
    return x;
}

static ge_status dd_build(ge_disc *d, const char *path) {
    char key[64];
    int L = 0;
    while (L <= DD_MAX_CONVS) {
        snprintf(key, sizeof key, "conv%d.0.weight", L + 1);
        if (!ge_tensors_find(d->w, key)) break;
        L++;
    }
    if (L < 2 || L > DD_MAX_CONVS)
        return ge_fail(GE_ERR_FORMAT, "%s: a DCGAN discriminator has 2..%d conv layers (found %d)",
                       path, DD_MAX_CONVS, L);
    int res = 4 << (L - 1); /* L-1 stride-2 convs down to 4x4 */
    d->resolution = res;
    d->n_convs = L;
    d->n_nodes = 0;
    dd_push(d, DD_INPUT, 3, res, res);
    int c_prev = 3;
    for (int l = 1; l <= L; l++) {
        snprintf(key, sizeof key, "conv%d.0.weight", l);
        const ge_tensor *t = ge_tensors_find(d->w, key);
        int last = l == L;
        int c_out = last ? 1 : (int)(t->ndim == 4 ? t->shape[0] : 0);
        if (c_out < 1 || c_out > 65536)
            return ge_fail(GE_ERR_SHAPE, "%s: tensor '%s' is not (c_out, c_in, 4, 4)", path, key);
        int64_t shape[4] = {c_out, c_prev, 4, 4};
        ge_status s = ge_expect_tensor(&t, d->w, path, key, 4, shape);
        if (s != GE_OK) return s;
        int out_res = last ? 1 : res / 2;
        dd_node *x = dd_push(d, DD_CONV, c_out, out_res, out_res);
        x->weight = t->data;
        x->stride = last ? 1 : 2;
        x->pad = last ? 0 : 1;
        x->layer = l;
        if (last) {
            snprintf(key, sizeof key, "conv%d.0.bias", l);
            int64_t bshape[1] = {1};
            const ge_tensor *b;
            if ((s = ge_expect_tensor(&b, d->w, path, key, 1, bshape)) != GE_OK) return s;
            x->bias = b->data;
        } else {
            dd_push(d, DD_NORM, c_out, out_res, out_res);
            dd_push(d, DD_LRELU, c_out, out_res, out_res);
        }
        res = out_res;
        c_prev = c_out;
    }
    return GE_OK;
}

ge_status ge_disc_create(ge_disc **out, ge_tensors *w, const char *path) {
    *out = NULL;
    ge_disc *d = ge_calloc(1, sizeof *d);
    if (!d) {
        ge_tensors_free(w);
        return GE_ERR_NOMEM;
    }
    if (ge_sg2_disc_detect(w)) { /* StyleGAN2-ADA (sg2_disc.c), which takes w over */
        ge_status s = ge_sg2_disc_create(&d->sg2, w, path);
        if (s != GE_OK) {
            ge_disc_free(d);
            return s;
        }
        *out = d;
        return GE_OK;
    }
    d->w = w;
    ge_status s = dd_build(d, path);
    if (s != GE_OK) {
        ge_disc_free(d);
        return s;
    }
    *out = d;
    return GE_OK;
}
