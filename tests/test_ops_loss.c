/* test_ops_loss.c - the losses: masked L2 and L1 with a scale, Gram matrices
 * (with and without a mask), sum and mean. Finite-difference gradient checks;
 * values and gradients against PyTorch (tests/vectors/ops_b.safetensors,
 * float64 reference); the Gram matrix at sizes where the masked path works
 * in several pixel blocks, against a double-precision loop; and losses being
 * the same bytes on 1 and 2 threads.
 *
 * Tolerances: values within 1e-5 relative, gradients within 1e-4 of max |ref|;
 * finite differences within 1e-3 + 1e-2 * |g| (L2 and Gram are quadratic and
 * L1 is linear near the test points, so central differences are exact up to
 * float rounding). */
#include "ganedit.h"
#include "harness.h"
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

#define VEC(var, name, count)                                                                      \
    const ge_tensor *var = ge_tensors_find(V, name);                                               \
    if (!var || var->numel != (size_t)(count)) ge_tensors_free(V);                                 \
    CHECK(var && var->numel == (size_t)(count), "vector %s missing or of the wrong size", name)

/* ---- masked L2 / L1 ---------------------------------------------------- */

typedef struct {
    int l1, n, c;
    size_t hw;
    const float *b, *mask;
    float scale;
} dist_ctx;

static double dist_loss(void *vctx, const float *a) {
    dist_ctx *k = vctx;
    return (k->l1 ? ge_loss_l1 : ge_loss_l2)(NULL, a, k->b, k->mask, k->n, k->c, k->hw, k->scale);
}

TEST(ops_loss_l2_l1_fd) {
    const int n = 2, c = 3;
    const size_t hw = 10, cnt = (size_t)n * c * hw;
    float a[60], b[60], mask[20], da[60];
    ge_rng g;
    ge_rng_seed(&g, 51);
    ge_rng_fill_normal(&g, a, cnt);
    /* |a - b| >= 0.1 so that L1 stays linear within a step */
    for (size_t i = 0; i < cnt; i++)
        b[i] = a[i] + (ge_rng_uniform(&g) < 0.5f ? -1.0f : 1.0f) * (0.1f + ge_rng_uniform(&g));
    ge_rng_fill_uniform(&g, mask, (size_t)n * hw, 0.0f, 1.0f);
    for (int l1 = 0; l1 <= 1; l1++)
        for (int m = 0; m <= 1; m++) {
            const float *mk = m ? mask : NULL;
            for (size_t i = 0; i < cnt; i++)
                da[i] = 1.0f; /* must add */
            double v = (l1 ? ge_loss_l1 : ge_loss_l2)(da, a, b, mk, n, c, hw, 0.37f);
            for (size_t i = 0; i < cnt; i++)
                da[i] -= 1.0f;
            dist_ctx k = {l1, n, c, hw, b, mk, 0.37f};
            CHECK(v > 0 && fabs(v - dist_loss(&k, a)) == 0, "%s value %g differs without da",
                  l1 ? "l1" : "l2", v);
            CHECK(fd_check(l1 ? "loss_l1 da" : "loss_l2 da", dist_loss, &k, a, da, cnt, cnt, 1e-2f,
                           1e-3, 1e-2),
                  "%s mask %d: finite differences disagree", l1 ? "l1" : "l2", m);
        }
}

TEST(ops_loss_l2_l1_torch) {
    ge_tensors *V = NULL;
    CHECK(ge_safetensors_load(&V, vector_path("ops_b.safetensors")) == GE_OK, "%s", ge_errmsg());
    const int n = 2, c = 3;
    const size_t hw = 20, cnt = (size_t)n * c * hw;
    VEC(a, "loss_a", cnt);
    VEC(b, "loss_b", cnt);
    VEC(mask, "loss_mask", (size_t)n * hw);
    VEC(sc, "loss_scale", 1);
    for (int l1 = 0; l1 <= 1; l1++)
        for (int m = 0; m <= 1; m++) {
            char nv[32], nd[48];
            snprintf(nv, sizeof nv, "loss_%s_%s", l1 ? "l1" : "l2", m ? "m" : "nm");
            snprintf(nd, sizeof nd, "%s_da", nv);
            VEC(lr, nv, 1);
            VEC(dar, nd, cnt);
            float da[120] = {0};
            double v = (l1 ? ge_loss_l1 : ge_loss_l2)(da, a->data, b->data, m ? mask->data : NULL,
                                                      n, c, hw, sc->data[0]);
            float vref = lr->data[0]; /* V may be freed below */
            double ev = fabs(v - vref) / fabs(vref);
            double ed = rel_err(da, dar->data, cnt);
            if (ev > 1e-5 || ed > 1e-4) ge_tensors_free(V);
            CHECK(ev <= 1e-5, "%s: loss %.9g, torch %.9g", nv, v, vref);
            CHECK(ed <= 1e-4, "%s: gradient relative error %g", nv, ed);
        }
    ge_tensors_free(V);
}

/* L1's gradient is 0 where a == b; a zero mask removes an element entirely. */
TEST(ops_loss_edges) {
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 3, 0}, mask[2] = {1, 0}, da[4] = {0};
    double v = ge_loss_l1(da, a, b, NULL, 1, 1, 4, 1.0f);
    CHECK(v == 6.0 && da[0] == 0 && da[1] == 1 && da[2] == 0 && da[3] == 1, "l1 %g, da %g %g %g %g",
          v, da[0], da[1], da[2], da[3]);
    memset(da, 0, sizeof da);
    /* (1, 2, 2) with mask (1, 1, 2): only pixel 0 of each channel counts. */
    v = ge_loss_l2(da, a, b, mask, 1, 2, 2, 0.5f);
    CHECK(v == 0.0 && da[1] == 0 && da[3] == 0, "masked l2 %g, da %g %g", v, da[1], da[3]);
    v = ge_loss_l2(NULL, a, b, NULL, 1, 2, 2, 0.5f);
    CHECK(v == 10.0, "l2 %g, want 0.5 * (4 + 16)", v);
}

/* ---- Gram matrices ---------------------------------------------------------- */

typedef struct {
    int n, c;
    size_t hw;
    const float *mask, *r;
    float *g, scale;
} gram_ctx;

static double gram_loss(void *vctx, const float *x) {
    gram_ctx *k = vctx;
    ge_gram_forward(k->g, x, k->mask, k->n, k->c, k->hw, k->scale);
    return dot(k->g, k->r, (size_t)k->n * k->c * k->c);
}

TEST(ops_gram_fd) {
    const int n = 2, c = 3;
    const size_t hw = 7, cnt = (size_t)n * c * hw;
    float x[42], dx[42], mask[14], r[18], g[18];
    ge_rng rg;
    ge_rng_seed(&rg, 52);
    ge_rng_fill_normal(&rg, x, cnt);
    ge_rng_fill_normal(&rg, r, 18);
    ge_rng_fill_uniform(&rg, mask, 14, 0.0f, 1.0f);
    for (int m = 0; m <= 1; m++) {
        for (size_t i = 0; i < cnt; i++)
            dx[i] = 1.0f;
        ge_gram_backward(dx, r, x, m ? mask : NULL, n, c, hw, 0.25f);
        for (size_t i = 0; i < cnt; i++)
            dx[i] -= 1.0f;
        gram_ctx k = {n, c, hw, m ? mask : NULL, r, g, 0.25f};
        CHECK(fd_check("gram dx", gram_loss, &k, x, dx, cnt, cnt, 1e-2f, 1e-3, 1e-2),
              "mask %d: finite differences disagree", m);
    }
}

TEST(ops_gram_torch) {
    ge_tensors *V = NULL;
    CHECK(ge_safetensors_load(&V, vector_path("ops_b.safetensors")) == GE_OK, "%s", ge_errmsg());
    const int n = 2, c = 4;
    const size_t hw = 30, cnt = (size_t)n * c * hw, gcnt = (size_t)n * c * c;
    VEC(x, "gram_x", cnt);
    VEC(mask, "gram_mask", (size_t)n * hw);
    VEC(sc, "gram_scale", 1);
    for (int m = 0; m <= 1; m++) {
        char ng[32], nr[32], nd[32];
        snprintf(ng, sizeof ng, "gram_%s_g", m ? "m" : "nm");
        snprintf(nr, sizeof nr, "gram_%s_r", m ? "m" : "nm");
        snprintf(nd, sizeof nd, "gram_%s_dx", m ? "m" : "nm");
        VEC(gr, ng, gcnt);
        VEC(r, nr, gcnt);
        VEC(dxr, nd, cnt);
        float g[32], dx[240] = {0};
        const float *mk = m ? mask->data : NULL;
        ge_gram_forward(g, x->data, mk, n, c, hw, sc->data[0]);
        ge_gram_backward(dx, r->data, x->data, mk, n, c, hw, sc->data[0]);
        double eg = rel_err(g, gr->data, gcnt), ed = rel_err(dx, dxr->data, cnt);
        if (eg > 1e-5 || ed > 1e-4) ge_tensors_free(V);
        CHECK(eg <= 1e-5, "mask %d: forward relative error %g", m, eg);
        CHECK(ed <= 1e-4, "mask %d: gradient relative error %g", m, ed);
    }
    ge_tensors_free(V);
}

/* Sizes where the masked path runs over several pixel blocks (and a last
 * partial one), against double loops: g = s F F^T, dx = s (dg + dg^T) F * m. */
TEST(ops_gram_blocked) {
    const int n = 2, c = 40;
    const size_t hw = 1000, cnt = (size_t)n * c * hw, gcnt = (size_t)n * c * c;
    float *x = malloc(cnt * sizeof *x), *mask = malloc((size_t)n * hw * sizeof *mask);
    float *dg = malloc(gcnt * sizeof *dg), *g = malloc(gcnt * sizeof *g);
    float *gref = malloc(gcnt * sizeof *gref), *dx = calloc(cnt, sizeof *dx);
    float *dxref = malloc(cnt * sizeof *dxref);
    ge_rng rg;
    ge_rng_seed(&rg, 53);
    ge_rng_fill_normal(&rg, x, cnt);
    ge_rng_fill_normal(&rg, dg, gcnt);
    ge_rng_fill_uniform(&rg, mask, (size_t)n * hw, 0.0f, 1.0f);
    const float s = 1.0f / (c * hw);
    double eg = 0, ed = 0;
    for (int m = 0; m <= 1; m++) {
        const float *mk = m ? mask : NULL;
        for (int b = 0; b < n; b++) {
            const float *xb = x + (size_t)b * c * hw, *mb = mask + (size_t)b * hw;
            const float *dgb = dg + (size_t)b * c * c;
            for (int i = 0; i < c; i++)
                for (int j = 0; j < c; j++) {
                    double acc = 0;
                    for (size_t p = 0; p < hw; p++) {
                        double w = mk ? (double)mb[p] * mb[p] : 1.0;
                        acc += w * xb[i * hw + p] * xb[j * hw + p];
                    }
                    gref[(size_t)b * c * c + i * c + j] = (float)(s * acc);
                }
            for (int i = 0; i < c; i++)
                for (size_t p = 0; p < hw; p++) {
                    double acc = 0;
                    for (int j = 0; j < c; j++)
                        acc += ((double)dgb[i * c + j] + dgb[j * c + i]) * xb[j * hw + p];
                    double w = mk ? (double)mb[p] * mb[p] : 1.0;
                    dxref[(size_t)b * c * hw + i * hw + p] = (float)(s * acc * w);
                }
        }
        memset(dx, 0, cnt * sizeof *dx);
        ge_gram_forward(g, x, mk, n, c, hw, s);
        ge_gram_backward(dx, dg, x, mk, n, c, hw, s);
        eg = fmax(eg, rel_err(g, gref, gcnt));
        ed = fmax(ed, rel_err(dx, dxref, cnt));
    }
    free(x), free(mask), free(dg), free(g), free(gref), free(dx), free(dxref);
    CHECK(eg < 1e-5, "forward relative error %g", eg);
    CHECK(ed < 1e-5, "gradient relative error %g", ed);
}

/* ---- sum and mean --------------------------------------------------------- */

TEST(ops_sum_mean) {
    const size_t cnt = 1001;
    float x[1001], dx[1001];
    double s = 0;
    for (size_t i = 0; i < cnt; i++)
        x[i] = (float)i * 0.25f - 100.0f, s += x[i];
    CHECK(ge_sum_forward(x, cnt) == s, "sum %.9g, want %.9g", ge_sum_forward(x, cnt), s);
    CHECK(fabs(ge_mean_forward(x, cnt) - s / cnt) < 1e-12, "mean %.12g", ge_mean_forward(x, cnt));
    CHECK(ge_sum_forward(x, 0) == 0 && ge_mean_forward(x, 0) == 0, "empty reductions");
    for (size_t i = 0; i < cnt; i++)
        dx[i] = 1.0f;
    ge_sum_backward(dx, 2.0f, cnt);
    ge_mean_backward(dx, 1001.0f, cnt);
    for (size_t i = 0; i < cnt; i++)
        CHECK(dx[i] == 4.0f, "dx[%zu] = %g", i, dx[i]);
}

/* Same bytes on 1 and 2 threads, for every reduction here. */
TEST(ops_loss_deterministic) {
    const int n = 2, c = 64;
    const size_t hw = 777, cnt = (size_t)n * c * hw;
    float *a = malloc(cnt * sizeof *a), *b = malloc(cnt * sizeof *b);
    float *mask = malloc((size_t)n * hw * sizeof *mask);
    float *da1 = calloc(cnt, sizeof *da1), *da2 = calloc(cnt, sizeof *da2);
    ge_rng g;
    ge_rng_seed(&g, 54);
    ge_rng_fill_normal(&g, a, cnt);
    ge_rng_fill_normal(&g, b, cnt);
    ge_rng_fill_uniform(&g, mask, (size_t)n * hw, 0.0f, 1.0f);
    int keep = ge_get_num_threads();
    double v[2][4];
    for (int t = 0; t < 2; t++) {
        ge_set_num_threads(t + 1);
        float *da = t ? da2 : da1;
        v[t][0] = ge_loss_l2(da, a, b, mask, n, c, hw, 0.5f);
        v[t][1] = ge_loss_l1(da, a, b, NULL, n, c, hw, 1.0f / cnt);
        v[t][2] = ge_sum_forward(a, cnt);
        v[t][3] = ge_mean_forward(b, cnt);
    }
    ge_set_num_threads(keep);
    int same = memcmp(v[0], v[1], sizeof v[0]) == 0 && memcmp(da1, da2, cnt * sizeof *da1) == 0;
    free(a), free(b), free(mask), free(da1), free(da2);
    CHECK(same, "results differ between 1 and 2 threads: l2 %.17g / %.17g", v[0][0], v[1][0]);
}
