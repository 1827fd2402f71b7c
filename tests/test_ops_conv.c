/* test_ops_conv.c - conv2d and conv_transpose2d:
 *  - finite-difference checks of the input, weight and bias gradients
 *    (float32 forward, double loss L = sum(y * r), central differences);
 *  - forward and gradients against PyTorch (tests/vectors/ops_a.safetensors,
 *    tools/gen_op_vectors_a.py: strides 1/2, pads 0/1/2, reflection, odd
 *    sizes, 1x1, per-sample weights via the grouped-conv trick);
 *  - backward adds into its outputs and skips NULL ones;
 *  - 1 vs 2 threads agree to rounding, and a thread count is deterministic.
 * Tolerances: PyTorch comparisons 1e-5 * max |ref| (float32 sums of at most
 * a few hundred terms against float64 maths). The ops are linear in x, w and
 * b separately, so central differences have no truncation error; the
 * tolerance (atol 1e-3, rtol 1e-3 at step 0.05) only covers float32 rounding
 * of the forward, far below the O(1) gradients a bug would change. */
#include "harness.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "ops_a_util.h"

/* ---- conv2d ---------------------------------------------------------- */

typedef struct {
    ge_conv2d_params p;
    float *x, *w, *b, *r, *y, *scratch;
    size_t ny;
} conv_ctx;

static double conv_loss(void *vc, const float *unused) {
    (void)unused;
    conv_ctx *c = vc;
    ge_conv2d_forward(c->y, c->x, c->w, c->b, &c->p, c->scratch);
    return opsa_dot(c->y, c->r, c->ny);
}

static size_t conv_wsize(const ge_conv2d_params *p) {
    size_t one = (size_t)p->c_out * p->c_in * p->kh * p->kw;
    return p->w_sample_stride ? one * p->n : one;
}

/* Sets up a random case; returns 0 on allocation failure. */
static int conv_setup(conv_ctx *c, const ge_conv2d_params *p, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->p = *p;
    int oh, ow;
    ge_conv2d_out_size(p, &oh, &ow);
    c->ny = (size_t)p->n * p->c_out * oh * ow;
    c->x = opsa_randn(seed, (size_t)p->n * p->c_in * p->h * p->w, 1.f);
    c->w = opsa_randn(seed + 1, conv_wsize(p), 0.3f);
    c->b = opsa_randn(seed + 2, (size_t)p->c_out, 1.f);
    c->r = opsa_randn(seed + 3, c->ny, 1.f);
    c->y = opsa_zeros(c->ny);
    c->scratch = opsa_zeros(ge_conv2d_scratch(p));
    return c->x && c->w && c->b && c->r && c->y && c->scratch;
}

static void conv_free(conv_ctx *c) {
    free(c->x), free(c->w), free(c->b), free(c->r), free(c->y), free(c->scratch);
}

TEST(ops_conv2d_grad_fd) {
    /* n, c_in, h, w, c_out, k, stride, pad, mode, per-sample */
    static const int cases[][10] = {
        {2, 3, 6, 5, 4, 3, 1, 1, GE_PAD_ZERO, 0},    {1, 2, 7, 8, 3, 3, 2, 1, GE_PAD_ZERO, 0},
        {2, 2, 6, 7, 2, 3, 1, 1, GE_PAD_REFLECT, 0}, {1, 2, 7, 5, 2, 3, 2, 1, GE_PAD_REFLECT, 0},
        {2, 3, 5, 5, 2, 3, 1, 1, GE_PAD_ZERO, 1},    {2, 4, 4, 3, 3, 1, 1, 0, GE_PAD_ZERO, 1},
        {1, 2, 8, 8, 2, 4, 2, 1, GE_PAD_ZERO, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int *t = cases[ci];
        ge_conv2d_params p = {.n = t[0],
                              .c_in = t[1],
                              .h = t[2],
                              .w = t[3],
                              .c_out = t[4],
                              .kh = t[5],
                              .kw = t[5],
                              .stride = t[6],
                              .pad = t[7],
                              .pad_mode = t[8]};
        if (t[9]) p.w_sample_stride = (size_t)p.c_out * p.c_in * p.kh * p.kw;
        conv_ctx c;
        int ok = conv_setup(&c, &p, 1000 + 10 * ci);
        size_t nx = (size_t)p.n * p.c_in * p.h * p.w, nw = conv_wsize(&p);
        float *dx = opsa_zeros(nx), *dw = opsa_zeros(nw), *db = opsa_zeros((size_t)p.c_out);
        if (ok && dx && dw && db) {
            ge_conv2d_backward(dx, dw, db, c.r, c.x, c.w, &p, c.scratch);
            ok = fd_check("conv2d dx", conv_loss, &c, c.x, dx, nx, 60, 0.05f, 1e-3, 1e-3) &&
                 fd_check("conv2d dw", conv_loss, &c, c.w, dw, nw, 60, 0.05f, 1e-3, 1e-3) &&
                 fd_check("conv2d db", conv_loss, &c, c.b, db, (size_t)p.c_out, 60, 0.05f, 1e-3,
                          1e-3);
        } else {
            ok = 0;
        }
        conv_free(&c);
        free(dx), free(dw), free(db);
        CHECK(ok, "conv2d case %zu", ci);
    }
}

TEST(ops_conv2d_torch) {
    ge_tensors *ts = opsa_load_vectors();
    CHECK(ts, "vectors");
    int cases = 0;
    for (int ci = 0;; ci++) {
        size_t np, ny, nx, nw;
        const float *pr = opsa_vec(ts, &np, "conv2d/%d/params", ci);
        if (!pr) break;
        ge_conv2d_params p = {.n = (int)pr[0],
                              .c_in = (int)pr[1],
                              .h = (int)pr[2],
                              .w = (int)pr[3],
                              .c_out = (int)pr[4],
                              .kh = (int)pr[5],
                              .kw = (int)pr[6],
                              .stride = (int)pr[7],
                              .pad = (int)pr[8],
                              .pad_mode = (int)pr[9]};
        if (pr[10] != 0.f) p.w_sample_stride = (size_t)p.c_out * p.c_in * p.kh * p.kw;
        const float *x = opsa_vec(ts, &nx, "conv2d/%d/x", ci);
        const float *w = opsa_vec(ts, &nw, "conv2d/%d/w", ci);
        const float *b = opsa_vec(ts, NULL, "conv2d/%d/b", ci);
        const float *r = opsa_vec(ts, NULL, "conv2d/%d/r", ci);
        const float *y_ref = opsa_vec(ts, &ny, "conv2d/%d/y", ci);
        const float *dx_ref = opsa_vec(ts, NULL, "conv2d/%d/d_x", ci);
        const float *dw_ref = opsa_vec(ts, NULL, "conv2d/%d/d_w", ci);
        const float *db_ref = opsa_vec(ts, NULL, "conv2d/%d/d_b", ci);
        int oh, ow;
        ge_conv2d_out_size(&p, &oh, &ow);
        int shapes_ok = x && w && r && y_ref && dx_ref && dw_ref &&
                        (pr[11] == 0.f || (b && db_ref)) && ny == (size_t)p.n * p.c_out * oh * ow &&
                        nx == (size_t)p.n * p.c_in * p.h * p.w && nw == conv_wsize(&p);
        if (!shapes_ok) ge_tensors_free(ts);
        CHECK(shapes_ok, "case %d: tensors missing or shapes disagree", ci);
        float *y = opsa_zeros(ny), *scratch = opsa_zeros(ge_conv2d_scratch(&p));
        float *dx = opsa_zeros(nx), *dw = opsa_zeros(nw), *db = opsa_zeros((size_t)p.c_out);
        float *dx2 = opsa_zeros(nx);
        /* start the gradients at 1 to check that backward adds */
        for (size_t i = 0; i < nx; i++)
            dx[i] = 1.f;
        for (size_t i = 0; i < nw; i++)
            dw[i] = 1.f;
        for (int i = 0; i < p.c_out; i++)
            db[i] = 1.f;
        ge_conv2d_forward(y, x, w, b, &p, scratch);
        ge_conv2d_backward(dx, dw, b ? db : NULL, r, x, w, &p, scratch);
        ge_conv2d_backward(dx2, NULL, NULL, r, x, w, &p, scratch); /* dx alone */
        for (size_t i = 0; i < nx; i++)
            dx[i] -= 1.f;
        for (size_t i = 0; i < nw; i++)
            dw[i] -= 1.f;
        for (int i = 0; i < p.c_out; i++)
            db[i] -= 1.f;
        int ok = opsa_close("y", y, y_ref, ny, 1e-5) && opsa_close("dx", dx, dx_ref, nx, 1e-5) &&
                 opsa_close("dx alone", dx2, dx_ref, nx, 1e-5) &&
                 opsa_close("dw", dw, dw_ref, nw, 1e-5) &&
                 (!b || opsa_close("db", db, db_ref, (size_t)p.c_out, 1e-5));
        free(y), free(scratch), free(dx), free(dw), free(db), free(dx2);
        if (!ok) ge_tensors_free(ts);
        CHECK(ok, "conv2d case %d (n=%d c_in=%d %dx%d c_out=%d k=%d s=%d pad=%d mode=%d)", ci, p.n,
              p.c_in, p.h, p.w, p.c_out, p.kh, p.stride, p.pad, p.pad_mode);
        cases++;
    }
    ge_tensors_free(ts);
    CHECK(cases >= 9, "only %d conv2d cases in the vector file", cases);
}

/* Forward + full backward of a case big enough for every parallel loop. */
static void conv_run(float *y, float *dx, float *dw, float *db, conv_ctx *c) {
    size_t nx = (size_t)c->p.n * c->p.c_in * c->p.h * c->p.w;
    memset(dx, 0, nx * sizeof *dx);
    memset(dw, 0, conv_wsize(&c->p) * sizeof *dw);
    memset(db, 0, (size_t)c->p.c_out * sizeof *db);
    ge_conv2d_forward(y, c->x, c->w, c->b, &c->p, c->scratch);
    ge_conv2d_backward(dx, dw, db, c->r, c->x, c->w, &c->p, c->scratch);
}

TEST(ops_conv2d_threads) {
    ge_conv2d_params p = {.n = 2,
                          .c_in = 16,
                          .h = 33,
                          .w = 31,
                          .c_out = 24,
                          .kh = 3,
                          .kw = 3,
                          .stride = 1,
                          .pad = 1,
                          .pad_mode = GE_PAD_REFLECT};
    p.w_sample_stride = (size_t)p.c_out * p.c_in * 9;
    conv_ctx c;
    int ok = conv_setup(&c, &p, 77);
    size_t nx = (size_t)p.n * p.c_in * p.h * p.w, nw = conv_wsize(&p);
    float *out[2][4];
    for (int t = 0; t < 2; t++) {
        out[t][0] = opsa_zeros(c.ny), out[t][1] = opsa_zeros(nx);
        out[t][2] = opsa_zeros(nw), out[t][3] = opsa_zeros((size_t)p.c_out);
        ok = ok && out[t][0] && out[t][1] && out[t][2] && out[t][3];
    }
    float *again[4] = {opsa_zeros(c.ny), opsa_zeros(nx), opsa_zeros(nw), opsa_zeros(p.c_out)};
    int keep = ge_get_num_threads();
    int same = 0, det = 0;
    if (ok && again[0] && again[1] && again[2] && again[3]) {
        ge_set_num_threads(1);
        conv_run(out[0][0], out[0][1], out[0][2], out[0][3], &c);
        ge_set_num_threads(2);
        conv_run(out[1][0], out[1][1], out[1][2], out[1][3], &c);
        conv_run(again[0], again[1], again[2], again[3], &c);
        size_t sizes[4] = {c.ny, nx, nw, (size_t)p.c_out};
        same = det = 1;
        for (int k = 0; k < 4; k++) {
            same = same && opsa_close("1 vs 2 threads", out[1][k], out[0][k], sizes[k], 1e-5);
            det = det && memcmp(out[1][k], again[k], sizes[k] * sizeof(float)) == 0;
        }
    }
    ge_set_num_threads(keep);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 4; k++)
            free(out[t][k]);
    for (int k = 0; k < 4; k++)
        free(again[k]);
    conv_free(&c);
    CHECK(ok, "allocation");
    CHECK(same, "1 and 2 threads disagree beyond rounding");
    CHECK(det, "two runs with 2 threads differ");
}

/* ---- conv_transpose2d ------------------------------------------------- */

typedef struct {
    ge_convt2d_params p;
    float *x, *w, *b, *r, *y, *scratch;
    size_t ny;
} convt_ctx;

static double convt_loss(void *vc, const float *unused) {
    (void)unused;
    convt_ctx *c = vc;
    ge_convt2d_forward(c->y, c->x, c->w, c->b, &c->p, c->scratch);
    return opsa_dot(c->y, c->r, c->ny);
}

static size_t convt_wsize(const ge_convt2d_params *p) {
    size_t one = (size_t)p->c_in * p->c_out * p->kh * p->kw;
    return p->w_sample_stride ? one * p->n : one;
}

static int convt_setup(convt_ctx *c, const ge_convt2d_params *p, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->p = *p;
    int oh, ow;
    ge_convt2d_out_size(p, &oh, &ow);
    c->ny = (size_t)p->n * p->c_out * oh * ow;
    c->x = opsa_randn(seed, (size_t)p->n * p->c_in * p->h * p->w, 1.f);
    c->w = opsa_randn(seed + 1, convt_wsize(p), 0.3f);
    c->b = opsa_randn(seed + 2, (size_t)p->c_out, 1.f);
    c->r = opsa_randn(seed + 3, c->ny, 1.f);
    c->y = opsa_zeros(c->ny);
    c->scratch = opsa_zeros(ge_convt2d_scratch(p));
    return c->x && c->w && c->b && c->r && c->y && c->scratch;
}

static void convt_free(convt_ctx *c) {
    free(c->x), free(c->w), free(c->b), free(c->r), free(c->y), free(c->scratch);
}

TEST(ops_convt2d_grad_fd) {
    /* n, c_in, h, w, c_out, k, stride, pad, per-sample */
    static const int cases[][9] = {
        {2, 3, 4, 3, 2, 4, 2, 1, 0}, {1, 2, 3, 5, 3, 3, 1, 0, 0}, {2, 2, 3, 4, 2, 3, 2, 0, 1},
        {2, 4, 1, 1, 2, 4, 1, 0, 0}, {2, 3, 3, 2, 2, 1, 1, 0, 1}, {1, 2, 4, 3, 2, 3, 2, 1, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int *t = cases[ci];
        ge_convt2d_params p = {.n = t[0],
                               .c_in = t[1],
                               .h = t[2],
                               .w = t[3],
                               .c_out = t[4],
                               .kh = t[5],
                               .kw = t[5],
                               .stride = t[6],
                               .pad = t[7]};
        if (t[8]) p.w_sample_stride = (size_t)p.c_out * p.c_in * p.kh * p.kw;
        convt_ctx c;
        int ok = convt_setup(&c, &p, 2000 + 10 * ci);
        size_t nx = (size_t)p.n * p.c_in * p.h * p.w, nw = convt_wsize(&p);
        float *dx = opsa_zeros(nx), *dw = opsa_zeros(nw), *db = opsa_zeros((size_t)p.c_out);
        if (ok && dx && dw && db) {
            ge_convt2d_backward(dx, dw, db, c.r, c.x, c.w, &p, c.scratch);
            ok = fd_check("convt2d dx", convt_loss, &c, c.x, dx, nx, 60, 0.05f, 1e-3, 1e-3) &&
                 fd_check("convt2d dw", convt_loss, &c, c.w, dw, nw, 60, 0.05f, 1e-3, 1e-3) &&
                 fd_check("convt2d db", convt_loss, &c, c.b, db, (size_t)p.c_out, 60, 0.05f, 1e-3,
                          1e-3);
        } else {
            ok = 0;
        }
        convt_free(&c);
        free(dx), free(dw), free(db);
        CHECK(ok, "convt2d case %zu", ci);
    }
}

TEST(ops_convt2d_torch) {
    ge_tensors *ts = opsa_load_vectors();
    CHECK(ts, "vectors");
    int cases = 0;
    for (int ci = 0;; ci++) {
        size_t np, ny, nx, nw;
        const float *pr = opsa_vec(ts, &np, "convt2d/%d/params", ci);
        if (!pr) break;
        ge_convt2d_params p = {.n = (int)pr[0],
                               .c_in = (int)pr[1],
                               .h = (int)pr[2],
                               .w = (int)pr[3],
                               .c_out = (int)pr[4],
                               .kh = (int)pr[5],
                               .kw = (int)pr[6],
                               .stride = (int)pr[7],
                               .pad = (int)pr[8]};
        if (pr[9] != 0.f) p.w_sample_stride = (size_t)p.c_out * p.c_in * p.kh * p.kw;
        const float *x = opsa_vec(ts, &nx, "convt2d/%d/x", ci);
        const float *w = opsa_vec(ts, &nw, "convt2d/%d/w", ci);
        const float *b = opsa_vec(ts, NULL, "convt2d/%d/b", ci);
        const float *r = opsa_vec(ts, NULL, "convt2d/%d/r", ci);
        const float *y_ref = opsa_vec(ts, &ny, "convt2d/%d/y", ci);
        const float *dx_ref = opsa_vec(ts, NULL, "convt2d/%d/d_x", ci);
        const float *dw_ref = opsa_vec(ts, NULL, "convt2d/%d/d_w", ci);
        const float *db_ref = opsa_vec(ts, NULL, "convt2d/%d/d_b", ci);
        int oh, ow;
        ge_convt2d_out_size(&p, &oh, &ow);
        int shapes_ok = x && w && r && y_ref && dx_ref && dw_ref &&
                        (pr[10] == 0.f || (b && db_ref)) && ny == (size_t)p.n * p.c_out * oh * ow &&
                        nx == (size_t)p.n * p.c_in * p.h * p.w && nw == convt_wsize(&p);
        if (!shapes_ok) ge_tensors_free(ts);
        CHECK(shapes_ok, "case %d: tensors missing or shapes disagree", ci);
        float *y = opsa_zeros(ny), *scratch = opsa_zeros(ge_convt2d_scratch(&p));
        float *dx = opsa_zeros(nx), *dw = opsa_zeros(nw), *db = opsa_zeros((size_t)p.c_out);
        float *dw2 = opsa_zeros(nw);
        for (size_t i = 0; i < nx; i++)
            dx[i] = 1.f;
        for (size_t i = 0; i < nw; i++)
            dw[i] = 1.f;
        for (int i = 0; i < p.c_out; i++)
            db[i] = 1.f;
        ge_convt2d_forward(y, x, w, b, &p, scratch);
        ge_convt2d_backward(dx, dw, b ? db : NULL, r, x, w, &p, scratch);
        ge_convt2d_backward(NULL, dw2, NULL, r, x, w, &p, scratch); /* dw alone */
        for (size_t i = 0; i < nx; i++)
            dx[i] -= 1.f;
        for (size_t i = 0; i < nw; i++)
            dw[i] -= 1.f;
        for (int i = 0; i < p.c_out; i++)
            db[i] -= 1.f;
        int ok = opsa_close("y", y, y_ref, ny, 1e-5) && opsa_close("dx", dx, dx_ref, nx, 1e-5) &&
                 opsa_close("dw", dw, dw_ref, nw, 1e-5) &&
                 opsa_close("dw alone", dw2, dw_ref, nw, 1e-5) &&
                 (!b || opsa_close("db", db, db_ref, (size_t)p.c_out, 1e-5));
        free(y), free(scratch), free(dx), free(dw), free(db), free(dw2);
        if (!ok) ge_tensors_free(ts);
        CHECK(ok, "convt2d case %d (n=%d c_in=%d %dx%d c_out=%d k=%d s=%d pad=%d)", ci, p.n, p.c_in,
              p.h, p.w, p.c_out, p.kh, p.stride, p.pad);
        cases++;
    }
    ge_tensors_free(ts);
    CHECK(cases >= 6, "only %d convt2d cases in the vector file", cases);
}

static void convt_run(float *y, float *dx, float *dw, float *db, convt_ctx *c) {
    memset(dx, 0, (size_t)c->p.n * c->p.c_in * c->p.h * c->p.w * sizeof *dx);
    memset(dw, 0, convt_wsize(&c->p) * sizeof *dw);
    memset(db, 0, (size_t)c->p.c_out * sizeof *db);
    ge_convt2d_forward(y, c->x, c->w, c->b, &c->p, c->scratch);
    ge_convt2d_backward(dx, dw, db, c->r, c->x, c->w, &c->p, c->scratch);
}

TEST(ops_convt2d_threads) {
    ge_convt2d_params p = {
        .n = 2, .c_in = 24, .h = 17, .w = 15, .c_out = 16, .kh = 4, .kw = 4, .stride = 2, .pad = 1};
    convt_ctx c;
    int ok = convt_setup(&c, &p, 88);
    size_t nx = (size_t)p.n * p.c_in * p.h * p.w, nw = convt_wsize(&p);
    size_t sizes[4] = {c.ny, nx, nw, (size_t)p.c_out};
    float *out[3][4];
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 4; k++) {
            out[t][k] = opsa_zeros(sizes[k]);
            ok = ok && out[t][k];
        }
    int keep = ge_get_num_threads();
    int same = 0, det = 0;
    if (ok) {
        ge_set_num_threads(1);
        convt_run(out[0][0], out[0][1], out[0][2], out[0][3], &c);
        ge_set_num_threads(2);
        convt_run(out[1][0], out[1][1], out[1][2], out[1][3], &c);
        convt_run(out[2][0], out[2][1], out[2][2], out[2][3], &c);
        same = det = 1;
        for (int k = 0; k < 4; k++) {
            same = same && opsa_close("1 vs 2 threads", out[1][k], out[0][k], sizes[k], 1e-5);
            det = det && memcmp(out[1][k], out[2][k], sizes[k] * sizeof(float)) == 0;
        }
    }
    ge_set_num_threads(keep);
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 4; k++)
            free(out[t][k]);
    convt_free(&c);
    CHECK(ok, "allocation");
    CHECK(same, "1 and 2 threads disagree beyond rounding");
    CHECK(det, "two runs with 2 threads differ");
}

/* ---- band walking against a direct convolution --------------------------
 * Shapes whose column matrix exceeds GE_COL_BUDGET, so the ops walk several
 * bands of output rows (the last one partial); checked against plain loops
 * in double for y, dx, dw and db. */

static int reflect_or_zero(int i, int n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == GE_PAD_ZERO) return -1;
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return i;
}

/* y, dx, dw, db (double) of conv2d, by definition. */
static void naive_conv2d(double *y, double *dx, double *dw, double *db, const float *x,
                         const float *w, const float *b, const float *dy,
                         const ge_conv2d_params *p) {
    int oh, ow;
    ge_conv2d_out_size(p, &oh, &ow);
    for (int i = 0; i < p->n; i++)
        for (int o = 0; o < p->c_out; o++) {
            const float *wo = w + i * p->w_sample_stride + (size_t)o * p->c_in * p->kh * p->kw;
            double *dwo = dw + i * p->w_sample_stride + (size_t)o * p->c_in * p->kh * p->kw;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    size_t yi = (((size_t)i * p->c_out + o) * oh + oy) * ow + ox;
                    double acc = b ? b[o] : 0, g = dy[yi];
                    db[o] += g;
                    for (int ci = 0; ci < p->c_in; ci++)
                        for (int ky = 0; ky < p->kh; ky++) {
                            int iy =
                                reflect_or_zero(oy * p->stride - p->pad + ky, p->h, p->pad_mode);
                            if (iy < 0) continue;
                            for (int kx = 0; kx < p->kw; kx++) {
                                int ix = reflect_or_zero(ox * p->stride - p->pad + kx, p->w,
                                                         p->pad_mode);
                                if (ix < 0) continue;
                                size_t xi = (((size_t)i * p->c_in + ci) * p->h + iy) * p->w + ix;
                                size_t wi = ((size_t)ci * p->kh + ky) * p->kw + kx;
                                acc += (double)wo[wi] * x[xi];
                                dx[xi] += (double)wo[wi] * g;
                                dwo[wi] += g * x[xi];
                            }
                        }
                    y[yi] = acc;
                }
        }
}

/* 1 if float results match the double ones within rtol * max |ref|. */
static int close_d(const char *what, const float *got, const double *ref, size_t n, double rtol) {
    double m = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > m) m = fabs(ref[i]);
        double e = fabs(got[i] - ref[i]);
        if (!(e <= d)) d = e;
    }
    if (d <= rtol * m) return 1;
    fprintf(stderr, "  %s: max |diff| %.3g > %.1g * max |ref| %.3g\n", what, d, rtol, m);
    return 0;
}

TEST(ops_conv2d_bands) {
    /* n, c_in, h, w, c_out, k, stride, pad, mode, per-sample */
    static const int cases[][10] = {
        {1, 64, 67, 61, 3, 3, 1, 1, GE_PAD_REFLECT, 0},
        {2, 48, 121, 100, 2, 3, 2, 1, GE_PAD_ZERO, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int *t = cases[ci];
        ge_conv2d_params p = {.n = t[0],
                              .c_in = t[1],
                              .h = t[2],
                              .w = t[3],
                              .c_out = t[4],
                              .kh = t[5],
                              .kw = t[5],
                              .stride = t[6],
                              .pad = t[7],
                              .pad_mode = t[8]};
        if (t[9]) p.w_sample_stride = (size_t)p.c_out * p.c_in * p.kh * p.kw;
        int oh, ow, k = p.c_in * p.kh * p.kw;
        ge_conv2d_out_size(&p, &oh, &ow);
        int bands = (oh + ge_col_rows(k, oh, ow) - 1) / ge_col_rows(k, oh, ow);
        CHECK(bands >= 2, "case %zu walks %d band(s); the test needs several", ci, bands);
        conv_ctx c;
        int ok = conv_setup(&c, &p, 3000 + 10 * ci);
        size_t nx = (size_t)p.n * p.c_in * p.h * p.w, nw = conv_wsize(&p);
        float *dx = opsa_zeros(nx), *dw = opsa_zeros(nw), *db = opsa_zeros((size_t)p.c_out);
        double *ry = calloc(c.ny, sizeof(double)), *rdx = calloc(nx, sizeof(double));
        double *rdw = calloc(nw, sizeof(double)), *rdb = calloc((size_t)p.c_out, sizeof(double));
        ok = ok && dx && dw && db && ry && rdx && rdw && rdb;
        if (ok) {
            ge_conv2d_forward(c.y, c.x, c.w, c.b, &p, c.scratch);
            ge_conv2d_backward(dx, dw, db, c.r, c.x, c.w, &p, c.scratch);
            naive_conv2d(ry, rdx, rdw, rdb, c.x, c.w, c.b, c.r, &p);
            ok = close_d("y", c.y, ry, c.ny, 1e-5) && close_d("dx", dx, rdx, nx, 1e-5) &&
                 close_d("dw", dw, rdw, nw, 1e-5) && close_d("db", db, rdb, (size_t)p.c_out, 1e-5);
        }
        conv_free(&c);
        free(dx), free(dw), free(db), free(ry), free(rdx), free(rdw), free(rdb);
        CHECK(ok, "conv2d band case %zu (%d bands)", ci, bands);
    }
}

/* y, dx, dw, db (double) of conv_transpose2d, by definition. */
static void naive_convt2d(double *y, double *dx, double *dw, double *db, const float *x,
                          const float *w, const float *b, const float *dy,
                          const ge_convt2d_params *p) {
    int oh, ow;
    ge_convt2d_out_size(p, &oh, &ow);
    for (int i = 0; i < p->n; i++) {
        for (int o = 0; o < p->c_out; o++)
            for (int j = 0; j < oh * ow; j++) {
                y[((size_t)i * p->c_out + o) * oh * ow + j] = b ? b[o] : 0;
                db[o] += dy[((size_t)i * p->c_out + o) * oh * ow + j];
            }
        for (int ci = 0; ci < p->c_in; ci++)
            for (int iy = 0; iy < p->h; iy++)
                for (int ix = 0; ix < p->w; ix++) {
                    size_t xi = (((size_t)i * p->c_in + ci) * p->h + iy) * p->w + ix;
                    for (int o = 0; o < p->c_out; o++)
                        for (int ky = 0; ky < p->kh; ky++) {
                            int Y = iy * p->stride - p->pad + ky;
                            if (Y < 0 || Y >= oh) continue;
                            for (int kx = 0; kx < p->kw; kx++) {
                                int X = ix * p->stride - p->pad + kx;
                                if (X < 0 || X >= ow) continue;
                                size_t yi = (((size_t)i * p->c_out + o) * oh + Y) * ow + X;
                                size_t wi = i * p->w_sample_stride +
                                            (((size_t)ci * p->c_out + o) * p->kh + ky) * p->kw + kx;
                                y[yi] += (double)x[xi] * w[wi];
                                dx[xi] += (double)w[wi] * dy[yi];
                                dw[wi] += (double)x[xi] * dy[yi];
                            }
                        }
                }
    }
}

TEST(ops_convt2d_bands) {
    /* n, c_in, h, w, c_out, k, stride, pad, per-sample */
    static const int cases[][9] = {
        {1, 6, 37, 40, 64, 4, 2, 1, 0},
        {2, 4, 61, 33, 72, 3, 1, 1, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int *t = cases[ci];
        ge_convt2d_params p = {.n = t[0],
                               .c_in = t[1],
                               .h = t[2],
                               .w = t[3],
                               .c_out = t[4],
                               .kh = t[5],
                               .kw = t[5],
                               .stride = t[6],
                               .pad = t[7]};
        if (t[8]) p.w_sample_stride = (size_t)p.c_out * p.c_in * p.kh * p.kw;
        int k = p.c_out * p.kh * p.kw;
        int bands = (p.h + ge_col_rows(k, p.h, p.w) - 1) / ge_col_rows(k, p.h, p.w);
        CHECK(bands >= 2, "case %zu walks %d band(s); the test needs several", ci, bands);
        convt_ctx c;
        int ok = convt_setup(&c, &p, 4000 + 10 * ci);
        size_t nx = (size_t)p.n * p.c_in * p.h * p.w, nw = convt_wsize(&p);
        float *dx = opsa_zeros(nx), *dw = opsa_zeros(nw), *db = opsa_zeros((size_t)p.c_out);
        double *ry = calloc(c.ny, sizeof(double)), *rdx = calloc(nx, sizeof(double));
        double *rdw = calloc(nw, sizeof(double)), *rdb = calloc((size_t)p.c_out, sizeof(double));
        ok = ok && dx && dw && db && ry && rdx && rdw && rdb;
        if (ok) {
            ge_convt2d_forward(c.y, c.x, c.w, c.b, &p, c.scratch);
            ge_convt2d_backward(dx, dw, db, c.r, c.x, c.w, &p, c.scratch);
            naive_convt2d(ry, rdx, rdw, rdb, c.x, c.w, c.b, c.r, &p);
            ok = close_d("y", c.y, ry, c.ny, 1e-5) && close_d("dx", dx, rdx, nx, 1e-5) &&
                 close_d("dw", dw, rdw, nw, 1e-5) && close_d("db", db, rdb, (size_t)p.c_out, 1e-5);
        }
        convt_free(&c);
        free(dx), free(dw), free(db), free(ry), free(rdx), free(rdw), free(rdb);
        CHECK(ok, "convt2d band case %zu (%d bands)", ci, bands);
    }
}
