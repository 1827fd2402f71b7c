/* test_ops_misc.c - nearest upsample x2 and noise injection: finite
 * differences (input, and the noise strength), forward and gradients against
 * PyTorch (F.interpolate nearest; x + strength * noise with per-sample and
 * shared noise planes) from tests/vectors/ops_b.safetensors, and the noise
 * strength gradient being the same bytes on 1 and 2 threads.
 *
 * Tolerances: forwards within 1e-5 and gradients within 1e-4 of max |ref|;
 * finite differences (both ops are linear in x, step 1e-2) within
 * 1e-3 + 1e-2 * |g|. */
#include "ganedit.h"
#include "harness.h"
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

#define VEC(var, name, count)                                                                      \
    const ge_tensor *var = ge_tensors_find(V, name);                                               \
    if (!var || var->numel != (size_t)(count)) ge_tensors_free(V);                                 \
    CHECK(var && var->numel == (size_t)(count), "vector %s missing or of the wrong size", name)

/* ---- nearest upsample ---------------------------------------------------- */

typedef struct {
    int n, c, h, w;
    const float *r;
    float *y;
} up_ctx;

static double up_loss(void *vctx, const float *x) {
    up_ctx *k = vctx;
    ge_upsample2_forward(k->y, x, k->n, k->c, k->h, k->w);
    return dot(k->y, k->r, (size_t)k->n * k->c * 4 * k->h * k->w);
}

TEST(ops_upsample_fd) {
    const int n = 2, c = 2, h = 3, w = 5;
    const size_t cnt = (size_t)n * c * h * w;
    float x[60], dx[60], r[240], y[240];
    ge_rng g;
    ge_rng_seed(&g, 41);
    ge_rng_fill_normal(&g, x, cnt);
    ge_rng_fill_normal(&g, r, 4 * cnt);
    for (size_t i = 0; i < cnt; i++)
        dx[i] = 1.0f;
    ge_upsample2_backward(dx, r, n, c, h, w);
    for (size_t i = 0; i < cnt; i++)
        dx[i] -= 1.0f;
    up_ctx k = {n, c, h, w, r, y};
    CHECK(fd_check("upsample2 dx", up_loss, &k, x, dx, cnt, cnt, 1e-2f, 1e-3, 1e-2),
          "finite differences disagree");
}

TEST(ops_upsample_torch) {
    ge_tensors *V = NULL;
    CHECK(ge_safetensors_load(&V, vector_path("ops_b.safetensors")) == GE_OK, "%s", ge_errmsg());
    const int n = 2, c = 3, h = 4, w = 5;
    const size_t cnt = (size_t)n * c * h * w;
    VEC(x, "upsample_x", cnt);
    VEC(yr, "upsample_y", 4 * cnt);
    VEC(r, "upsample_r", 4 * cnt);
    VEC(dxr, "upsample_dx", cnt);
    float y[480], dx[120] = {0};
    ge_upsample2_forward(y, x->data, n, c, h, w);
    ge_upsample2_backward(dx, r->data, n, c, h, w);
    double ey = rel_err(y, yr->data, 4 * cnt), ed = rel_err(dx, dxr->data, cnt);
    ge_tensors_free(V);
    CHECK(ey < 1e-5, "forward relative error %g", ey);
    CHECK(ed < 1e-4, "gradient relative error %g", ed);
}

/* ---- noise injection ------------------------------------------------------- */

typedef struct {
    int n, c, n_noise;
    size_t hw;
    const float *noise, *r, *x;
    float *y;
} noise_ctx;

static double noise_loss_x(void *vctx, const float *x) {
    noise_ctx *k = vctx;
    ge_noise_forward(k->y, x, k->noise, 0.7f, k->n, k->c, k->hw, k->n_noise);
    return dot(k->y, k->r, (size_t)k->n * k->c * k->hw);
}

static double noise_loss_s(void *vctx, const float *s) {
    noise_ctx *k = vctx;
    ge_noise_forward(k->y, k->x, k->noise, s[0], k->n, k->c, k->hw, k->n_noise);
    return dot(k->y, k->r, (size_t)k->n * k->c * k->hw);
}

TEST(ops_noise_fd) {
    const int n = 2, c = 3;
    const size_t hw = 12, cnt = (size_t)n * c * hw;
    float x[72], r[72], y[72], dx[72], noise[24];
    ge_rng g;
    ge_rng_seed(&g, 42);
    for (int n_noise = 1; n_noise <= 2; n_noise++) {
        ge_rng_fill_normal(&g, x, cnt);
        ge_rng_fill_normal(&g, r, cnt);
        ge_rng_fill_normal(&g, noise, (size_t)n_noise * hw);
        float ds = 0.5f; /* backward must add */
        for (size_t i = 0; i < cnt; i++)
            dx[i] = 1.0f;
        ge_noise_backward(dx, &ds, r, noise, n, c, hw, n_noise);
        for (size_t i = 0; i < cnt; i++)
            dx[i] -= 1.0f;
        ds -= 0.5f;
        noise_ctx k = {n, c, n_noise, hw, noise, r, x, y};
        CHECK(fd_check("noise dx", noise_loss_x, &k, x, dx, cnt, cnt, 1e-2f, 1e-3, 1e-2),
              "dx, n_noise %d", n_noise);
        float s = 0.7f;
        CHECK(fd_check("noise dstrength", noise_loss_s, &k, &s, &ds, 1, 1, 1e-2f, 1e-3, 1e-3),
              "dstrength, n_noise %d", n_noise);
    }
}

TEST(ops_noise_torch) {
    ge_tensors *V = NULL;
    CHECK(ge_safetensors_load(&V, vector_path("ops_b.safetensors")) == GE_OK, "%s", ge_errmsg());
    const int n = 2, c = 3;
    const size_t hw = 20, cnt = (size_t)n * c * hw;
    VEC(st, "noise_strength", 1);
    const char *tags[] = {"per", "shared"};
    for (int t = 0; t < 2; t++) {
        int n_noise = t == 0 ? 2 : 1;
        char nm[5][48];
        const char *sfx[] = {"x", "noise", "y", "r", "dx"};
        for (int i = 0; i < 5; i++)
            snprintf(nm[i], 48, "noise_%s_%s", tags[t], sfx[i]);
        VEC(x, nm[0], cnt);
        VEC(nz, nm[1], (size_t)n_noise * hw);
        VEC(yr, nm[2], cnt);
        VEC(r, nm[3], cnt);
        VEC(dxr, nm[4], cnt);
        char dsn[48];
        snprintf(dsn, sizeof dsn, "noise_%s_dstrength", tags[t]);
        VEC(dsr, dsn, 1);
        float y[120], dx[120] = {0}, ds = 0;
        ge_noise_forward(y, x->data, nz->data, st->data[0], n, c, hw, n_noise);
        ge_noise_backward(dx, &ds, r->data, nz->data, n, c, hw, n_noise);
        double ey = rel_err(y, yr->data, cnt), ed = rel_err(dx, dxr->data, cnt);
        float dsref = dsr->data[0]; /* V may be freed below */
        double es = fabs(ds - dsref) / fmax(fabs(dsref), 1e-30);
        if (ey > 1e-5 || ed > 1e-4 || es > 1e-5) ge_tensors_free(V);
        CHECK(ey <= 1e-5, "%s: forward relative error %g", tags[t], ey);
        CHECK(ed <= 1e-4, "%s: gradient relative error %g", tags[t], ed);
        CHECK(es <= 1e-5, "%s: dstrength %.8g, torch %.8g", tags[t], ds, dsref);
    }
    ge_tensors_free(V);
}

/* dstrength is a batch-wide sum: the same bytes for any thread count. */
TEST(ops_noise_deterministic) {
    const int n = 3, c = 37;
    const size_t hw = 999, cnt = (size_t)n * c * hw;
    float *dy = malloc(cnt * sizeof *dy), *noise = malloc((size_t)n * hw * sizeof *noise);
    ge_rng g;
    ge_rng_seed(&g, 43);
    ge_rng_fill_normal(&g, dy, cnt);
    ge_rng_fill_normal(&g, noise, (size_t)n * hw);
    int keep = ge_get_num_threads();
    float ds1 = 0, ds2 = 0;
    ge_set_num_threads(1);
    ge_noise_backward(NULL, &ds1, dy, noise, n, c, hw, n);
    ge_set_num_threads(2);
    ge_noise_backward(NULL, &ds2, dy, noise, n, c, hw, n);
    ge_set_num_threads(keep);
    free(dy), free(noise);
    CHECK(memcmp(&ds1, &ds2, sizeof ds1) == 0, "1 thread %.9g, 2 threads %.9g", ds1, ds2);
}
