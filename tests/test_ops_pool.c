/* test_ops_pool.c - 2x2 stride-2 max and average pooling (ceil and floor
 * modes, odd sizes): finite-difference gradient checks, forward and input
 * gradient against PyTorch (F.max_pool2d, nn.AvgPool2d) from
 * tests/vectors/ops_b.safetensors, and PyTorch's rules at the edges: which
 * element wins a tie (the first in row-major window order), NaN propagation
 * (the last NaN wins, as in PyTorch 1.13),
 * and partial windows averaging only the elements inside the input.
 *
 * The max-pool finite differences use inputs spaced at least 0.05 apart, so a
 * step of 1e-3 never changes a window's winner. Tolerances: forwards within
 * 1e-5 and gradients within 1e-4 of max |ref|; finite differences within
 * 1e-3 + 1e-2 * |g| (both ops are piecewise linear). */
#include "ganedit.h"
#include "harness.h"
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

#define VEC(var, name, count)                                                                      \
    const ge_tensor *var = ge_tensors_find(V, name);                                               \
    CHECK(var && var->numel == (size_t)(count), "vector %s missing or of the wrong size", name)

typedef struct {
    int avg; /* 0 max, 1 avg */
    int n, c, h, w, ceil;
    const float *r;
    float *y;
} pool_ctx;

static double pool_loss(void *vctx, const float *x) {
    pool_ctx *k = vctx;
    int oh, ow;
    ge_maxpool2_out_size(k->h, k->w, k->ceil, &oh, &ow);
    if (k->avg)
        ge_avgpool2_forward(k->y, x, k->n, k->c, k->h, k->w, k->ceil);
    else
        ge_maxpool2_forward(k->y, x, k->n, k->c, k->h, k->w, k->ceil);
    return dot(k->y, k->r, (size_t)k->n * k->c * oh * ow);
}

/* Finite differences for one pool kind and mode; x is a shuffled ramp
 * (distinct values 0.05 apart, plus a constant offset). */
static int pool_fd(int avg, int ceil, int h, int w, uint64_t seed) {
    const int n = 2, c = 2;
    int oh, ow;
    ge_maxpool2_out_size(h, w, ceil, &oh, &ow);
    size_t cnt = (size_t)n * c * h * w, ocnt = (size_t)n * c * oh * ow;
    ge_rng g;
    ge_rng_seed(&g, seed);
    float *x = malloc(cnt * sizeof *x), *dx = malloc(cnt * sizeof *dx);
    float *r = malloc(ocnt * sizeof *r), *y = malloc(ocnt * sizeof *y);
    for (size_t i = 0; i < cnt; i++)
        x[i] = 0.05f * (float)i - 1.0f;
    for (size_t i = cnt - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = (size_t)(ge_rng_u64(&g) % (i + 1));
        float t = x[i];
        x[i] = x[j], x[j] = t;
    }
    ge_rng_fill_normal(&g, r, ocnt);
    for (size_t i = 0; i < cnt; i++)
        dx[i] = 1.0f;
    if (avg)
        ge_avgpool2_backward(dx, r, n, c, h, w, ceil);
    else
        ge_maxpool2_backward(dx, r, x, n, c, h, w, ceil);
    for (size_t i = 0; i < cnt; i++)
        dx[i] -= 1.0f;
    pool_ctx k = {avg, n, c, h, w, ceil, r, y};
    int ok = fd_check(avg ? "avgpool2 dx" : "maxpool2 dx", pool_loss, &k, x, dx, cnt, cnt, 1e-3f,
                      1e-3, 1e-2);
    free(x), free(dx), free(r), free(y);
    return ok;
}

TEST(ops_maxpool_out_size) {
    int oh, ow;
    ge_maxpool2_out_size(7, 8, 1, &oh, &ow);
    CHECK(oh == 4 && ow == 4, "ceil 7x8 -> %dx%d", oh, ow);
    ge_maxpool2_out_size(7, 8, 0, &oh, &ow);
    CHECK(oh == 3 && ow == 4, "floor 7x8 -> %dx%d", oh, ow);
    ge_maxpool2_out_size(1, 1, 1, &oh, &ow);
    CHECK(oh == 1 && ow == 1, "ceil 1x1 -> %dx%d", oh, ow);
}

TEST(ops_maxpool_fd) {
    CHECK(pool_fd(0, 1, 7, 9, 21), "ceil 7x9");
    CHECK(pool_fd(0, 0, 7, 9, 22), "floor 7x9");
    CHECK(pool_fd(0, 1, 6, 5, 23), "ceil 6x5");
}

TEST(ops_avgpool_fd) {
    CHECK(pool_fd(1, 1, 7, 9, 24), "ceil 7x9");
    CHECK(pool_fd(1, 0, 7, 9, 25), "floor 7x9");
    CHECK(pool_fd(1, 1, 6, 5, 26), "ceil 6x5");
}

/* Forward and dx of one vector case against PyTorch. */
static int pool_torch(const ge_tensors *V, int avg, const char *prefix, const char *mode, int n,
                      int c, int h, int w, double *ey, double *ed) {
    int ceil = strcmp(mode, "ceil") == 0, oh, ow;
    ge_maxpool2_out_size(h, w, ceil, &oh, &ow);
    size_t cnt = (size_t)n * c * h * w, ocnt = (size_t)n * c * oh * ow;
    char name[64];
    snprintf(name, sizeof name, "%s_x", prefix);
    const ge_tensor *x = ge_tensors_find(V, name);
    snprintf(name, sizeof name, "%s_%s_y", prefix, mode);
    const ge_tensor *yr = ge_tensors_find(V, name);
    snprintf(name, sizeof name, "%s_%s_r", prefix, mode);
    const ge_tensor *r = ge_tensors_find(V, name);
    snprintf(name, sizeof name, "%s_%s_dx", prefix, mode);
    const ge_tensor *dxr = ge_tensors_find(V, name);
    if (!x || !yr || !r || !dxr || x->numel != cnt || yr->numel != ocnt || r->numel != ocnt ||
        dxr->numel != cnt)
        return 0;
    float *y = malloc(ocnt * sizeof *y), *dx = calloc(cnt, sizeof *dx);
    if (avg) {
        ge_avgpool2_forward(y, x->data, n, c, h, w, ceil);
        ge_avgpool2_backward(dx, r->data, n, c, h, w, ceil);
    } else {
        ge_maxpool2_forward(y, x->data, n, c, h, w, ceil);
        ge_maxpool2_backward(dx, r->data, x->data, n, c, h, w, ceil);
    }
    *ey = rel_err(y, yr->data, ocnt);
    *ed = rel_err(dx, dxr->data, cnt);
    free(y), free(dx);
    return 1;
}

TEST(ops_maxpool_torch) {
    ge_tensors *V = NULL;
    CHECK(ge_safetensors_load(&V, vector_path("ops_b.safetensors")) == GE_OK, "%s", ge_errmsg());
    static const struct {
        const char *prefix, *mode;
        int n, c, h, w;
    } cases[] = {{"maxpool_a", "ceil", 2, 2, 7, 9},
                 {"maxpool_a", "floor", 2, 2, 7, 9},
                 {"maxpool_b", "ceil", 1, 3, 6, 5},
                 {"maxpool_b", "floor", 1, 3, 6, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double ey, ed;
        int found = pool_torch(V, 0, cases[i].prefix, cases[i].mode, cases[i].n, cases[i].c,
                               cases[i].h, cases[i].w, &ey, &ed);
        if (!found || ey > 1e-5 || ed > 1e-4) ge_tensors_free(V);
        CHECK(found, "vectors for %s %s missing or of the wrong size", cases[i].prefix,
              cases[i].mode);
        CHECK(ey <= 1e-5, "%s %s forward relative error %g", cases[i].prefix, cases[i].mode, ey);
        CHECK(ed <= 1e-4, "%s %s gradient relative error %g", cases[i].prefix, cases[i].mode, ed);
    }
    ge_tensors_free(V);
}

TEST(ops_avgpool_torch) {
    ge_tensors *V = NULL;
    CHECK(ge_safetensors_load(&V, vector_path("ops_b.safetensors")) == GE_OK, "%s", ge_errmsg());
    const char *modes[] = {"ceil", "floor"};
    for (int i = 0; i < 2; i++) {
        double ey, ed;
        int found = pool_torch(V, 1, "avgpool", modes[i], 2, 2, 7, 9, &ey, &ed);
        if (!found || ey > 1e-5 || ed > 1e-4) ge_tensors_free(V);
        CHECK(found, "vectors for avgpool %s missing or of the wrong size", modes[i]);
        CHECK(ey <= 1e-5, "%s forward relative error %g", modes[i], ey);
        CHECK(ed <= 1e-4, "%s gradient relative error %g", modes[i], ed);
    }
    ge_tensors_free(V);
}

/* Ties go to the first element in row-major window order, so the whole
 * gradient of a window lands there; a NaN wins its window. */
TEST(ops_maxpool_ties_and_nan) {
    /* One 3x3 plane, ceil mode: windows {0,1,3,4}, {2,5}, {6,7}, {8}. */
    float x[9] = {1, 5, 5, 5, 5, 5, 2, 2, 7};
    float y[4], dy[4] = {1, 2, 3, 4}, dx[9] = {0};
    ge_maxpool2_forward(y, x, 1, 1, 3, 3, 1);
    CHECK(y[0] == 5 && y[1] == 5 && y[2] == 2 && y[3] == 7, "y = %g %g %g %g", y[0], y[1], y[2],
          y[3]);
    ge_maxpool2_backward(dx, dy, x, 1, 1, 3, 3, 1);
    float want[9] = {0, 1, 2, 0, 0, 0, 3, 0, 4};
    for (int i = 0; i < 9; i++)
        CHECK(dx[i] == want[i], "dx[%d] = %g, want %g", i, dx[i], want[i]);
    float xn[4] = {NAN, 1, NAN, 2}, yn, gn = 1, dn[4] = {0};
    ge_maxpool2_forward(&yn, xn, 1, 1, 2, 2, 0);
    CHECK(isnan(yn), "a NaN in the window gives %g", yn);
    ge_maxpool2_backward(dn, &gn, xn, 1, 1, 2, 2, 0); /* PyTorch: the last NaN, index 2 */
    CHECK(dn[0] == 0 && dn[2] == 1, "NaN window gradient %g %g %g %g", dn[0], dn[1], dn[2], dn[3]);
}

/* A mask of ones pools to ones at every size, partial windows included, and a
 * known partial window averages only what is inside. */
TEST(ops_avgpool_partial_windows) {
    float ones[35], y[16];
    for (int i = 0; i < 35; i++)
        ones[i] = 1.0f;
    ge_avgpool2_forward(y, ones, 1, 1, 5, 7, 1);
    for (int i = 0; i < 12; i++)
        CHECK(y[i] == 1.0f, "y[%d] = %g", i, y[i]);
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, dy[4] = {4, 2, 2, 1}, dx[9] = {0};
    ge_avgpool2_forward(y, x, 1, 1, 3, 3, 1);
    CHECK(y[0] == 3.0f && y[1] == 4.5f && y[2] == 7.5f && y[3] == 9.0f, "y = %g %g %g %g", y[0],
          y[1], y[2], y[3]);
    ge_avgpool2_backward(dx, dy, 1, 1, 3, 3, 1);
    float want[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    for (int i = 0; i < 9; i++)
        CHECK(dx[i] == want[i], "dx[%d] = %g", i, dx[i]);
}
