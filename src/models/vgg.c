/* vgg.c - VGG-19 feature network (conv1_1 .. conv5_4) for the perceptual and
 * style losses: forward to a chosen layer, and backward from gradients
 * injected at any number of layers at once, to the input image.
 *
 * Two weight layouts, told apart by their key names:
 *
 *   torchvision  features.{0,2,5,7,10,12,14,16,19,...,34}.{weight,bias}
 *                (also accepted without the "features." prefix). Input is
 *                RGB in [0,1] normalised by ImageNet mean/std; 3x3 convs with
 *                zero padding 1; 2x2 max-pool in floor mode.
 *   normalised   {0,2,5,9,12,16,19,...,51}.{weight,bias}: the style-transfer
 *                "vgg_normalised" net. Key 0 is a 1x1 conv (3->3) that turns
 *                RGB in [0,1] into Caffe's BGR*255 minus the mean; then
 *                ReflectionPad2d(1) before every 3x3 conv; max-pool in ceil mode.
 *
 * Any prefix of the 16 conv layers may be present (conv1_1 .. the first
 * missing one); shapes are checked against VGG-19's widths. Images come in as
 * [-1,1] and are mapped to [0,1] inside (x01 = (x+1)/2), so gradients are with
 * respect to the [-1,1] input.
 *
 * The network is a chain: node 0 is the network's input after the colour
 * mapping, then conv0 (normalised only), convX_Y, reluX_Y and poolB nodes,
 * each the op of the previous node. Every node is kept (each op's backward
 * reads its input), so any of them can be read as a feature and any of them
 * can receive a gradient. Buffers (nodes up to the requested depth, two
 * ping-pong gradient buffers, conv scratch) are one allocation, re-planned
 * only when the batch, size or depth grows beyond what it holds.
 *
 * Speed: the weights never change, so the convolutions go straight to the
 * oneDNN path (kernels.h) with w_const: their packed (for the forward,
 * Winograd-transformed) copies are kept between calls and dropped by
 * ge_vgg_free. The backward writes each gradient instead of adding it to a
 * zeroed buffer where the op allows (convolution, ReLU). */
#include "kernels/kernels.h"
#include "models/models.h"
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VGG_NCONV 16
#define VGG_MAX_NODES (2 + 2 * VGG_NCONV + 5)

static const struct {
    const char *name;
    int c_out;
    int block_end; /* a 2x2 max-pool follows this conv's ReLU */
} vgg_convs[VGG_NCONV] = {
    {"conv1_1", 64, 0},  {"conv1_2", 64, 1},  {"conv2_1", 128, 0}, {"conv2_2", 128, 1},
    {"conv3_1", 256, 0}, {"conv3_2", 256, 0}, {"conv3_3", 256, 0}, {"conv3_4", 256, 1},
    {"conv4_1", 512, 0}, {"conv4_2", 512, 0}, {"conv4_3", 512, 0}, {"conv4_4", 512, 1},
    {"conv5_1", 512, 0}, {"conv5_2", 512, 0}, {"conv5_3", 512, 0}, {"conv5_4", 512, 1},
};

typedef enum { VGG_INPUT, VGG_CONV, VGG_RELU, VGG_POOL } vgg_op;

typedef struct {
    vgg_op op;
    char name[16];
    int c;               /* channels of this node */
    const float *weight; /* conv: (c, c_in, k, k) */
    const float *bias;   /* conv: (c) */
    int k, pad, pad_mode;
    /* planned for the current input */
    int h, w;
    float *data; /* (n, c, h, w) */
} vgg_node;

struct ge_vgg {
    ge_tensors *t;
    int normalised; /* 1: normalised layout, 0: torchvision */
    int n_convs;
    int n_nodes;
    vgg_node nodes[VGG_MAX_NODES];
    /* plan */
    int n, h, w, depth; /* depth: index of the deepest planned node; -1 none */
    size_t cap;         /* floats in arena */
    float *arena;
    float *scratch;
    float *grad_a, *grad_b;
    int fwd_depth;                  /* deepest node of the last forward; -1 none */
    float in_scale[3], in_shift[3]; /* node0 = x * scale + shift, per channel */
};

static size_t node_numel(const vgg_node *d, int n) {
    return (size_t)n * d->c * d->h * d->w;
}
static size_t round16(size_t x) {
    return (x + 15) & ~(size_t)15;
}

static ge_conv2d_params conv_params(const vgg_node *in, const vgg_node *out, int n) {
    ge_conv2d_params p = {0};
    p.n = n;
    p.c_in = in->c, p.h = in->h, p.w = in->w;
    p.c_out = out->c, p.kh = out->k, p.kw = out->k;
    p.stride = 1, p.pad = out->pad, p.pad_mode = out->pad_mode;
    return p;
}

static ge_bias_act_params relu_params(const vgg_node *d, int n) {
    ge_bias_act_params p = {0};
    p.n = n, p.c = d->c, p.spatial = (size_t)d->h * d->w;
    p.act = GE_ACT_RELU;
    p.gain = 1.f, p.b_gain = 1.f, p.clamp = -1.f;
    return p;
}

/* ---- loading -------------------------------------------------------------- */

static vgg_node *push(ge_vgg *v, vgg_op op, const char *name, int c) {
    vgg_node *d = &v->nodes[v->n_nodes++];
    memset(d, 0, sizeof *d);
    d->op = op;
    d->c = c;
    snprintf(d->name, sizeof d->name, "%s", name);
    return d;
}

/* Adds conv node `name` from tensors <prefix><idx>.weight/.bias, checked to be
 * (c_out, c_in, k, k) and (c_out). */
static ge_status add_conv(ge_vgg *v, const char *path, const char *prefix, int idx,
                          const char *name, int c_out, int c_in, int k) {
    char key[64];
    const ge_tensor *tw, *tb;
    int64_t ws[4] = {c_out, c_in, k, k}, bs[1] = {c_out};
    snprintf(key, sizeof key, "%s%d.weight", prefix, idx);
    ge_status s = ge_expect_tensor(&tw, v->t, path, key, 4, ws);
    if (s != GE_OK) return s;
    snprintf(key, sizeof key, "%s%d.bias", prefix, idx);
    s = ge_expect_tensor(&tb, v->t, path, key, 1, bs);
    if (s != GE_OK) return s;
    vgg_node *d = push(v, VGG_CONV, name, c_out);
    d->weight = tw->data;
    d->bias = tb->data;
    d->k = k;
    d->pad = k / 2;
    d->pad_mode = v->normalised ? GE_PAD_REFLECT : GE_PAD_ZERO;
    return GE_OK;
}

static ge_status vgg_build(ge_vgg *v, const char *path) {
    const ge_tensor *t0 = ge_tensors_find(v->t, "0.weight");
    const char *prefix;
    if (ge_tensors_find(v->t, "features.0.weight")) {
        prefix = "features.";
        v->normalised = 0;
    } else if (t0 && t0->ndim == 4 && t0->shape[0] == 3 && t0->shape[2] == 1) {
        prefix = "";
        v->normalised = 1;
    } else if (t0) {
        prefix = ""; /* torchvision's features saved on their own */
        v->normalised = 0;
    } else {
        return ge_fail(GE_ERR_UNSUPPORTED,
                       "%s: not a VGG-19 file ganedit knows (no 'features.0.weight' of "
                       "torchvision's layout, no '0.weight' of the normalised layout)",
                       path);
    }
    v->n_nodes = 0;
    push(v, VGG_INPUT, "input", 3);
    ge_status s;
    int idx;
    if (v->normalised) {
        s = add_conv(v, path, prefix, 0, "conv0", 3, 3, 1);
        if (s != GE_OK) return s;
        idx = 1; /* the reflection pad of conv1_1 */
    } else {
        idx = 0;
    }
    int c_in = 3, pools = 0;
    char key[64];
    for (int i = 0; i < VGG_NCONV; i++) {
        int ci = v->normalised ? idx + 1 : idx; /* normalised: a pad layer first */
        snprintf(key, sizeof key, "%s%d.weight", prefix, ci);
        if (!ge_tensors_find(v->t, key)) break;
        s = add_conv(v, path, prefix, ci, vgg_convs[i].name, vgg_convs[i].c_out, c_in, 3);
        if (s != GE_OK) return s;
        char rname[16];
        snprintf(rname, sizeof rname, "relu%s", vgg_convs[i].name + 4);
        push(v, VGG_RELU, rname, vgg_convs[i].c_out);
        idx = ci + 2; /* conv, relu */
        c_in = vgg_convs[i].c_out;
        v->n_convs = i + 1;
        if (vgg_convs[i].block_end) {
            char pname[16];
            snprintf(pname, sizeof pname, "pool%d", ++pools);
            push(v, VGG_POOL, pname, c_in);
            idx++;
        }
    }
    if (v->n_convs == 0) {
        snprintf(key, sizeof key, "%s%d.weight", prefix, v->normalised ? 2 : 0);
        return ge_fail(GE_ERR_FORMAT, "%s: VGG-19 %s layout without conv1_1 ('%s')", path,
                       v->normalised ? "normalised" : "torchvision", key);
    }
    /* colour mapping: x in [-1,1] -> [0,1] (-> ImageNet-normalised for torchvision) */
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++) {
        v->in_scale[c] = v->normalised ? 0.5f : 0.5f / std[c];
        v->in_shift[c] = v->normalised ? 0.5f : (0.5f - mean[c]) / std[c];
    }
    v->depth = -1;
    v->fwd_depth = -1;
    return GE_OK;
}

ge_status ge_vgg_load(ge_vgg **out, const char *path) {
    *out = NULL;
    ge_vgg *v = ge_calloc(1, sizeof *v);
    if (!v) return GE_ERR_NOMEM;
    ge_status s = ge_tensors_load(&v->t, path);
    if (s == GE_OK) s = ge_check_finite_weights(v->t, path); /* issue 8: NaN/Inf refused */
    if (s == GE_OK) s = vgg_build(v, path);
    if (s != GE_OK) {
        ge_vgg_free(v);
        return s;
    }
    *out = v;
    return GE_OK;
}

void ge_vgg_free(ge_vgg *v) {
    if (!v) return;
    for (int i = 0; i < v->n_nodes; i++)
        if (v->nodes[i].op == VGG_CONV) ge_dconv_forget(v->nodes[i].weight);
    free(v->arena);
    ge_tensors_free(v->t);
    free(v);
}

const char *ge_vgg_last_layer(const ge_vgg *v) {
    return vgg_convs[v->n_convs - 1].name;
}
const char *ge_vgg_layout(const ge_vgg *v) {
    return v->normalised ? "normalised" : "torchvision";
}

/* ---- finding weights ---------------------------------------------------------- */

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static ge_status found(char *path, size_t cap, const char *p) {
    if (strlen(p) >= cap) return ge_fail(GE_ERR_ARG, "VGG path too long for the buffer: %s", p);
    memcpy(path, p, strlen(p) + 1);
    return GE_OK;
}

ge_status ge_vgg_find(char *path, size_t cap, const char *explicit_path) {
    if (cap) path[0] = 0;
    if (explicit_path && *explicit_path) {
        if (!is_file(explicit_path))
            return ge_fail(GE_ERR_IO, "%s: VGG-19 weights not found (no such file)", explicit_path);
        return found(path, cap, explicit_path);
    }
    const char *env = getenv("GANEDIT_VGG");
    if (env && *env) {
        if (!is_file(env))
            return ge_fail(GE_ERR_IO, "%s: VGG-19 weights named by $GANEDIT_VGG not found", env);
        return found(path, cap, env);
    }
    char cand[4096];
    const char *th = getenv("TORCH_HOME"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    const char *tv = "hub/checkpoints/vgg19-dcbb9e9d.pth";
    if (th && *th) {
        snprintf(cand, sizeof cand, "%s/%s", th, tv);
        if (is_file(cand)) return found(path, cap, cand);
    }
    if (xdg && *xdg) {
        snprintf(cand, sizeof cand, "%s/torch/%s", xdg, tv);
        if (is_file(cand)) return found(path, cap, cand);
    }
    if (home && *home) {
        snprintf(cand, sizeof cand, "%s/.cache/torch/%s", home, tv);
        if (is_file(cand)) return found(path, cap, cand);
    }
    static const char *shared[] = {"weights/vgg19_normalised_conv3_1.safetensors",
                                   "weights/vgg19_normalised_conv3_1.pth"};
    const char *sh = getenv("GANEDIT_SHARED");
    for (int r = 0; r < 2; r++) {
        const char *root = r == 0 ? sh : "../shared";
        if (!root || !*root) continue;
        for (int i = 0; i < 2; i++) {
            snprintf(cand, sizeof cand, "%s/%s", root, shared[i]);
            if (is_file(cand)) return found(path, cap, cand);
        }
    }
    return ge_fail(GE_ERR_IO,
                   "no VGG-19 weights found: pass a file (--vgg FILE) or set $GANEDIT_VGG; "
                   "torchvision's vgg19-dcbb9e9d.pth "
                   "(https://download.pytorch.org/models/vgg19-dcbb9e9d.pth) is looked for in "
                   "~/.cache/torch/hub/checkpoints/, and the normalised VGG-19 in "
                   "../shared/weights/");
}

/* ---- planning ----------------------------------------------------------------- */

static int find_node(const ge_vgg *v, const char *name, size_t len) {
    for (int i = 1; i < v->n_nodes; i++)
        if (strlen(v->nodes[i].name) == len && strncmp(v->nodes[i].name, name, len) == 0) return i;
    return -1;
}

/* Shapes of nodes 0..depth for an (n, 3, h, w) input; fails if a size
 * becomes too small for the padding or the pooling. */
static ge_status plan_shapes(ge_vgg *v, int h, int w, int depth) {
    v->nodes[0].h = h, v->nodes[0].w = w;
    for (int i = 1; i <= depth; i++) {
        vgg_node *x = &v->nodes[i - 1], *y = &v->nodes[i];
        switch (y->op) {
        case VGG_CONV:
            if (y->pad_mode == GE_PAD_REFLECT && y->pad > 0 && (x->h <= y->pad || x->w <= y->pad))
                return ge_fail(GE_ERR_SHAPE,
                               "image %dx%d too small for VGG-19 %s: it reaches %s at %dx%d, "
                               "too small for its reflection padding",
                               w, h, ge_vgg_layout(v), y->name, x->w, x->h);
            y->h = x->h, y->w = x->w;
            break;
        case VGG_RELU:
            y->h = x->h, y->w = x->w;
            break;
        case VGG_POOL:
            ge_maxpool2_out_size(x->h, x->w, v->normalised, &y->h, &y->w);
            if (y->h < 1 || y->w < 1)
                return ge_fail(GE_ERR_SHAPE,
                               "image %dx%d too small for VGG-19 %s: %s would be empty", w, h,
                               ge_vgg_layout(v), y->name);
            break;
        case VGG_INPUT:
            break;
        }
    }
    return GE_OK;
}

static ge_status plan(ge_vgg *v, int n, int h, int w, int depth) {
    if (v->arena && n == v->n && h == v->h && w == v->w && depth <= v->depth) return GE_OK;
    /* plan at least as deep as before, so alternating depths do not reallocate */
    if (v->arena && n == v->n && h == v->h && w == v->w && v->depth > depth) depth = v->depth;
    v->fwd_depth = -1;
    ge_status s = plan_shapes(v, h, w, depth);
    if (s != GE_OK) {
        v->depth = -1; /* node shapes no longer match the arena */
        return s;
    }
    size_t total = 0, biggest = 0, scratch = 0;
    for (int i = 0; i <= depth; i++) {
        size_t e = node_numel(&v->nodes[i], n);
        if (e > biggest) biggest = e;
        total += round16(e);
        if (v->nodes[i].op == VGG_CONV) {
            ge_conv2d_params p = conv_params(&v->nodes[i - 1], &v->nodes[i], n);
            size_t sc = ge_conv2d_scratch(&p);
            if (sc > scratch) scratch = sc;
        }
    }
    total += 2 * round16(biggest) + round16(scratch);
    if (total > v->cap) {
        free(v->arena);
        v->arena = NULL;
        v->cap = 0;
        v->depth = -1;
        v->arena = ge_alloc_floats(total);
        if (!v->arena)
            return ge_fail(GE_ERR_NOMEM, "out of memory for VGG-19 features of %d x %dx%d", n, w,
                           h);
        v->cap = total;
    }
    float *a = v->arena;
    for (int i = 0; i <= depth; i++) {
        v->nodes[i].data = a;
        a += round16(node_numel(&v->nodes[i], n));
    }
    for (int i = depth + 1; i < v->n_nodes; i++)
        v->nodes[i].data = NULL;
    v->grad_a = a;
    a += round16(biggest);
    v->grad_b = a;
    a += round16(biggest);
    v->scratch = a;
    v->n = n, v->h = h, v->w = w, v->depth = depth;
    return GE_OK;
}

/* Index of the deepest node named in the comma-separated list (NULL or "":
 * the last node). */
static ge_status parse_upto(const ge_vgg *v, const char *upto, int *depth) {
    if (!upto || !*upto) {
        *depth = v->n_nodes - 1;
        return GE_OK;
    }
    int best = 0;
    const char *p = upto;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0) {
            int i = find_node(v, p, len);
            if (i < 0)
                return ge_fail(GE_ERR_ARG,
                               "VGG-19 layer '%.*s' is not in this network (%s layout, conv1_1 "
                               "to %s; names convX_Y, reluX_Y, poolB%s)",
                               (int)len, p, ge_vgg_layout(v), ge_vgg_last_layer(v),
                               v->normalised ? ", conv0" : "");
            if (i > best) best = i;
        }
        p += len;
        if (*p == ',') p++;
    }
    if (best == 0) return ge_fail(GE_ERR_ARG, "no VGG-19 layer named in '%s'", upto);
    *depth = best;
    return GE_OK;
}

/* ---- forward and backward ------------------------------------------------------ */

static ge_dconv_shape dconv_shape(const ge_conv2d_params *p) {
    ge_dconv_shape s = {.n = p->n,
                        .c_in = p->c_in,
                        .h = p->h,
                        .w = p->w,
                        .c_out = p->c_out,
                        .kh = p->kh,
                        .kw = p->kw,
                        .stride = p->stride,
                        .pad = p->pad,
                        .pad_mode = p->pad_mode,
                        .w_const = 1,
                        .wino = 1};
    return s;
}

/* yd = conv(ad) + bias for n samples (node y after node a): the oneDNN path
 * with the weights kept packed, else ge_conv2d_forward (1x1 conv0, im2col
 * when the fast path is off). */
static void conv_forward(ge_vgg *v, float *yd, const float *ad, const vgg_node *y,
                         const vgg_node *a, int n) {
    ge_conv2d_params p = conv_params(a, y, n);
    ge_dconv_shape s = dconv_shape(&p);
    if (y->k > 1 && ge_dconv_forward(yd, ad, y->weight, y->bias, &s, 0)) return;
    ge_conv2d_forward(yd, ad, y->weight, y->bias, &p, v->scratch);
}

/* gx = conv^T(gy) (written, not added), with ad the conv's input. */
static void conv_backward(ge_vgg *v, float *gx, const float *gy, const float *ad,
                          const vgg_node *y, const vgg_node *a, int n) {
    ge_conv2d_params p = conv_params(a, y, n);
    ge_dconv_shape s = dconv_shape(&p);
    if (y->k > 1 && ge_dconv_backward_data(gx, gy, y->weight, NULL, &s, 0)) return;
    memset(gx, 0, node_numel(a, n) * sizeof(float));
    ge_conv2d_backward(gx, NULL, NULL, gy, ad, y->weight, &p, v->scratch);
}

/* gx = gy where x > 0, else 0 (written): ReLU's backward as bias_act's (and
 * PyTorch's: 0 where x <= 0 even for an infinite gy). */
GE_SIMD_CLONES static void relu_backward_run(float *restrict gx, const float *restrict gy,
                                             const float *restrict x, size_t m) {
#pragma omp simd
    for (size_t e = 0; e < m; e++)
        gx[e] = x[e] > 0.f ? gy[e] : 0.f;
}

/* gy[e] += g[e] */
GE_SIMD_CLONES static void add_run(float *restrict gy, const float *restrict g, size_t m) {
#pragma omp simd
    for (size_t e = 0; e < m; e++)
        gy[e] += g[e];
}

/* The two loops above over m elements, in chunks shared by the threads
 * (the chunk loop is the parallel one, so each chunk still runs the
 * AVX-512 clone). */
enum { CHUNK = 1 << 14 };

static void relu_backward(float *gx, const float *gy, const float *x, size_t m) {
    long chunks = (long)((m + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (chunks > 4)
    for (long c = 0; c < chunks; c++) {
        size_t e0 = (size_t)c * CHUNK, len = m - e0 < CHUNK ? m - e0 : CHUNK;
        relu_backward_run(gx + e0, gy + e0, x + e0, len);
    }
}

static void add_into(float *gy, const float *g, size_t m) {
    long chunks = (long)((m + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (chunks > 4)
    for (long c = 0; c < chunks; c++) {
        size_t e0 = (size_t)c * CHUNK, len = m - e0 < CHUNK ? m - e0 : CHUNK;
        add_run(gy + e0, g + e0, len);
    }
}

ge_status ge_vgg_forward(ge_vgg *v, const float *x, int n, int h, int w, const char *upto) {
    if (n <= 0 || h <= 0 || w <= 0)
        return ge_fail(GE_ERR_ARG, "VGG-19 input (%d, 3, %d, %d) is empty", n, h, w);
    int depth = 0;
    ge_status s = parse_upto(v, upto, &depth);
    if (s != GE_OK) return s;
    s = plan(v, n, h, w, depth);
    if (s != GE_OK) return s;
    /* One sample at a time through the whole chain: its activations stay in
     * the cache from one op to the next (a batch's do not), and a sample's
     * result does not depend on the batch. */
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        float *x0 = v->nodes[0].data + node_numel(&v->nodes[0], b);
        for (int c = 0; c < 3; c++) {
            const float *src = x + ((size_t)b * 3 + c) * hw;
            float *dst = x0 + (size_t)c * hw;
            float sc = v->in_scale[c], sh = v->in_shift[c];
            for (size_t j = 0; j < hw; j++)
                dst[j] = src[j] * sc + sh;
        }
        for (int i = 1; i <= depth; i++) {
            const vgg_node *a = &v->nodes[i - 1];
            vgg_node *y = &v->nodes[i];
            const float *ad = a->data + node_numel(a, b);
            float *yd = y->data + node_numel(y, b);
            switch (y->op) {
            case VGG_CONV:
                conv_forward(v, yd, ad, y, a, 1);
                break;
            case VGG_RELU: {
                ge_bias_act_params p = relu_params(y, 1);
                ge_bias_act_forward(yd, ad, NULL, &p);
                break;
            }
            case VGG_POOL:
                ge_maxpool2_forward(yd, ad, 1, a->c, a->h, a->w, v->normalised);
                break;
            case VGG_INPUT:
                break;
            }
        }
    }
    v->fwd_depth = depth;
    return GE_OK;
}

const float *ge_vgg_feature(const ge_vgg *v, const char *layer, int *c, int *h, int *w) {
    int i = layer ? find_node(v, layer, strlen(layer)) : -1;
    if (i < 0 || i > v->fwd_depth) {
        if (i < 0)
            ge_fail(GE_ERR_ARG, "VGG-19 layer '%s' is not in this network", layer ? layer : "");
        else
            ge_fail(GE_ERR_ARG, "VGG-19 layer '%s' was not computed by the last forward", layer);
        return NULL;
    }
    const vgg_node *d = &v->nodes[i];
    if (c) *c = d->c;
    if (h) *h = d->h;
    if (w) *w = d->w;
    return d->data;
}

ge_status ge_vgg_backward(ge_vgg *v, float *dx, int k, const char *const *layers,
                          const float *const *grads) {
    if (v->fwd_depth < 0) return ge_fail(GE_ERR_ARG, "VGG-19 backward called before forward");
    int idx[64];
    if (k < 0 || k > 64) return ge_fail(GE_ERR_ARG, "VGG-19 backward: %d layers (0..64)", k);
    int top = 0;
    for (int j = 0; j < k; j++) {
        idx[j] = find_node(v, layers[j], strlen(layers[j]));
        if (idx[j] < 0)
            return ge_fail(GE_ERR_ARG, "VGG-19 layer '%s' is not in this network", layers[j]);
        if (idx[j] > v->fwd_depth)
            return ge_fail(GE_ERR_ARG, "VGG-19 layer '%s' was not computed by the last forward",
                           layers[j]);
        if (idx[j] > top) top = idx[j];
    }
    if (top == 0) return GE_OK; /* nothing injected */
    int n = v->n;
    /* One sample at a time, as the forward; its gradients use the start of
     * the two buffers. */
    for (int b = 0; b < n; b++) {
        float *gy = v->grad_a, *gx = v->grad_b;
        memset(gy, 0, node_numel(&v->nodes[top], 1) * sizeof(float));
        for (int i = top; i >= 1; i--) {
            const vgg_node *a = &v->nodes[i - 1];
            const vgg_node *y = &v->nodes[i];
            const float *ad = a->data + node_numel(a, b);
            size_t ny = node_numel(y, 1);
            for (int j = 0; j < k; j++)
                if (idx[j] == i && grads[j]) add_into(gy, grads[j] + ny * b, ny);
            switch (y->op) {
            case VGG_CONV:
                conv_backward(v, gx, gy, ad, y, a, 1);
                break;
            case VGG_RELU:
                relu_backward(gx, gy, ad, ny);
                break;
            case VGG_POOL:
                memset(gx, 0, node_numel(a, 1) * sizeof(float));
                ge_maxpool2_backward(gx, gy, ad, 1, a->c, a->h, a->w, v->normalised);
                break;
            case VGG_INPUT:
                break;
            }
            float *t = gy;
            gy = gx;
            gx = t;
        }
        /* node 0 = x * scale + shift */
        size_t hw = (size_t)v->h * v->w;
        for (int c = 0; c < 3; c++) {
            const float *g = gy + (size_t)c * hw;
            float *d = dx + ((size_t)b * 3 + c) * hw;
            float sc = v->in_scale[c];
            for (size_t j = 0; j < hw; j++)
                d[j] += g[j] * sc;
        }
    }
    return GE_OK;
}
