/* test_sg2_disc.c - the StyleGAN2-ADA discriminator (src/models/sg2_disc.c)
 * behind ge_disc_*, and its minibatch-stddev op (src/ops/mbstd.c):
 *  - mbstd: central finite differences of the input gradient, the forward
 *    against a direct formula, and the batch sizes it refuses;
 *  - the whole D against a float64 PyTorch re-implementation
 *    (tests/vectors/sg2_disc.safetensors from tools/gen_sg2_disc_vectors.py:
 *    R 16, channels 8/16/16, batch 8 = two mbstd groups, random non-zero
 *    biases; and the same input times 400, where conv_clamp cuts): logits,
 *    dx and every weight gradient within 1e-4 of max |ref|;
 *  - finite differences at float32 of the input gradient (80 coordinates,
 *    step 1e-2, within 2e-3 + 2e-2 |g|) and of every weight gradient along
 *    one random N(0,1) direction per tensor (step 1e-4, within 5e-3 +
 *    2e-2 |g|: the lrelu kinks that a whole-tensor step crosses bend the
 *    quotient at 1e-3 (probed: it converges to the analytic value as the
 *    step shrinks, 1e-1 .. 1e-4), and below 1e-4 float32 rounding of the
 *    loss takes over);
 *  - ge_sg2_disc_init: names, shapes, one flat block, N(0,1) weights and
 *    zero biases, accepted by ge_disc_create; backward adds;
 *  - errors: batches mbstd cannot group, wrong or missing tensors, a second
 *    fromrgb, a bad resolution, a wrong-sized gradient tensor, backward
 *    before forward: a GE error and a message, no crash. */
#include "ganedit.h"
#include "harness.h"
#include "models/models.h"
#include "ops/ops.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- mbstd ------------------------------------------------------------------- */

typedef struct {
    int n, c, h, w, group;
    const float *r;
    float *y;
} mb_ctx;

static double mb_loss(void *vctx, const float *x) {
    mb_ctx *k = vctx;
    if (ge_mbstd_forward(k->y, x, k->n, k->c, k->h, k->w, k->group) != 0) return NAN;
    return dot(k->y, k->r, (size_t)k->n * (k->c + 1) * k->h * k->w);
}

TEST(ops_mbstd_fd) {
    const int n = 8, c = 3, h = 2, w = 3, group = 4;
    size_t nx = (size_t)n * c * h * w, ny = (size_t)n * (c + 1) * h * w;
    ge_rng g;
    ge_rng_seed(&g, 21);
    float *x = malloc(nx * sizeof *x), *dx = calloc(nx, sizeof *dx);
    float *y = malloc(ny * sizeof *y), *r = malloc(ny * sizeof *r);
    ge_rng_fill_normal(&g, x, nx);
    ge_rng_fill_normal(&g, r, ny);
    mb_ctx k = {n, c, h, w, group, r, y};
    int ok = ge_mbstd_forward(y, x, n, c, h, w, group) == 0 &&
             ge_mbstd_backward(dx, r, x, n, c, h, w, group) == 0;
    /* the statistic of group m (members m, m + 2, m + 4, m + 6) directly */
    double worst = 0;
    for (int m = 0; ok && m < 2; m++) {
        double acc = 0;
        for (int j = 0; j < c * h * w; j++) {
            double mean = 0, var = 0;
            for (int gi = 0; gi < 4; gi++)
                mean += x[(size_t)(gi * 2 + m) * c * h * w + j] / 4.0;
            for (int gi = 0; gi < 4; gi++) {
                double d = x[(size_t)(gi * 2 + m) * c * h * w + j] - mean;
                var += d * d / 4.0;
            }
            acc += sqrt(var + 1e-8);
        }
        acc /= c * h * w;
        for (int gi = 0; gi < 4; gi++) {
            const float *yi = y + (size_t)(gi * 2 + m) * (c + 1) * h * w;
            worst = fmax(worst, fabs(yi[c * h * w + 1] - acc));
            worst = fmax(worst, fabs(yi[0] - x[(size_t)(gi * 2 + m) * c * h * w]));
        }
    }
    ok = ok && worst < 1e-5;
    int fd = ok && fd_check("mbstd dx", mb_loss, &k, x, dx, nx, nx, 3e-3f, 1e-3, 1e-2);
    /* backward adds */
    float before = dx[7];
    ge_mbstd_backward(dx, r, x, n, c, h, w, group);
    float after = dx[7];
    /* groups: n 6 with group 4 cannot be split; n 3 is one group of 3 */
    int bad = ge_mbstd_forward(y, x, 6, c, h, w, group) == -1 &&
              ge_mbstd_backward(dx, r, x, 6, c, h, w, group) == -1 && ge_mbstd_group(6, 4) == 0 &&
              ge_mbstd_group(3, 4) == 3 && ge_mbstd_group(8, 4) == 4 && ge_mbstd_group(0, 4) == 0;
    free(x), free(dx), free(y), free(r);
    CHECK(ok, "mbstd forward differs from the direct formula by %g", worst);
    CHECK(fd, "mbstd gradient disagrees with finite differences");
    CHECK(fabsf(after - 2 * before) <= 1e-5f * fabsf(before) + 1e-7f, "backward must add");
    CHECK(bad, "mbstd must refuse batches it cannot group");
}

/* ---- the discriminator against PyTorch --------------------------------------- */

typedef struct {
    ge_disc *d;
    const float *x, *r;
    float *logits;
    int n;
} sd_ctx;

static double sd_loss(void *vctx, const float *unused) {
    (void)unused;
    sd_ctx *c = vctx;
    if (ge_disc_forward(c->d, c->logits, c->x, c->n) != GE_OK) return NAN;
    double s = 0;
    for (int i = 0; i < c->n; i++)
        s += (double)c->logits[i] * c->r[i];
    return s;
}

/* The vectors' weights (a flat copy, names without "D.") and the set V. */
static ge_status load_vectors(ge_tensors **V, ge_tensors **w) {
    *w = NULL;
    ge_status s = ge_safetensors_load(V, vector_path("sg2_disc.safetensors"));
    if (s != GE_OK) return s;
    s = ge_flat_copy(w, *V, "D.");
    if (s != GE_OK) ge_tensors_free(*V), *V = NULL;
    return s;
}

/* One input of the vectors ("" or "big."): logits, dx and every weight
 * gradient within 1e-4 of max |ref|; prints the errors; 1 on pass. */
static int vs_torch(const ge_tensors *V, ge_disc *d, const ge_tensors *w, const char *pre) {
    char key[96];
    const ge_tensor *dl = ge_tensors_find(V, "dlogits");
#define REF(var, what)                                                                             \
    snprintf(key, sizeof key, "%s%s", pre, what);                                                  \
    const ge_tensor *var = ge_tensors_find(V, key);
    REF(x, "x")
    REF(lg, "logits")
    REF(rdx, "dx")
#undef REF
    size_t nx = (size_t)8 * 3 * 16 * 16;
    if (!dl || !x || !lg || !rdx || x->numel != nx || rdx->numel != nx || lg->numel != 8 ||
        dl->numel != 8) {
        fprintf(stderr, "  vectors %s missing\n", pre);
        return 0;
    }
    ge_tensors *gw = NULL;
    if (ge_flat_like(&gw, w) != GE_OK) return 0;
    float logits[8], *dx = calloc(nx, sizeof *dx);
    int ok = dx && ge_disc_forward(d, logits, x->data, 8) == GE_OK &&
             ge_disc_backward(d, dx, gw, dl->data) == GE_OK;
    double e_logits = ok ? rel_err(logits, lg->data, 8) : 1;
    double e_dx = ok ? rel_err(dx, rdx->data, nx) : 1, e_grad = 0;
    const char *worst = "";
    int n_grads = 0;
    for (int i = 0; ok && i < ge_tensors_count(w); i++) {
        const ge_tensor *t = ge_tensors_at(w, i);
        snprintf(key, sizeof key, "%sgrad.%s", pre, t->name);
        const ge_tensor *ref = ge_tensors_find(V, key);
        if (!ref || ref->numel != t->numel) {
            fprintf(stderr, "  vector %s missing\n", key);
            ok = 0;
            break;
        }
        double e = rel_err(ge_tensors_at(gw, i)->data, ref->data, t->numel);
        if (e > e_grad) e_grad = e, worst = t->name;
        n_grads++;
    }
    printf("  sg2_disc vs torch (%s): max err / max |ref|: logits %.2e, dx %.2e, weight grads "
           "%.2e (worst %s, %d tensors)\n",
           *pre ? pre : "x", e_logits, e_dx, e_grad, worst, n_grads);
    free(dx);
    ge_tensors_free(gw);
    return ok && n_grads == 18 && e_logits <= 1e-4 && e_dx <= 1e-4 && e_grad <= 1e-4;
}

TEST(sg2_disc_vs_torch) {
    ge_tensors *V = NULL, *w = NULL;
    CHECK(load_vectors(&V, &w) == GE_OK, "%s", ge_errmsg());
    ge_tensors *wkeep = w;
    ge_disc *d = NULL;
    ge_status s = ge_disc_create(&d, w, "sg2_disc.safetensors");
    if (s != GE_OK) ge_tensors_free(V);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    int res = ge_disc_resolution(d);
    int ok = vs_torch(V, d, wkeep, "");
    int ok_big = vs_torch(V, d, wkeep, "big."); /* conv_clamp active */
    ge_disc_free(d);
    ge_tensors_free(V);
    CHECK(res == 16, "resolution %d", res);
    CHECK(ok, "the discriminator differs from PyTorch");
    CHECK(ok_big, "the discriminator differs from PyTorch where conv_clamp cuts");
}

TEST(sg2_disc_fd) {
    ge_tensors *V = NULL, *w = NULL, *gw = NULL;
    CHECK(load_vectors(&V, &w) == GE_OK, "%s", ge_errmsg());
    const ge_tensor *xv = ge_tensors_find(V, "x");
    ge_status s = xv ? ge_flat_like(&gw, w) : GE_ERR_FORMAT;
    ge_disc *d = NULL;
    ge_tensors *wkeep = w;
    if (s == GE_OK) {
        s = ge_disc_create(&d, w, "test");
        w = NULL;
    }
    if (s != GE_OK) {
        ge_tensors_free(w), ge_tensors_free(gw), ge_tensors_free(V);
        CHECK(0, "setup: %s", ge_errmsg());
    }
    const int n = 4; /* one mbstd group */
    size_t nx = (size_t)n * 3 * 16 * 16;
    float *x = malloc(nx * sizeof *x), *dx = calloc(nx, sizeof *dx), logits[4];
    memcpy(x, xv->data, nx * sizeof *x);
    float r[4] = {0.9f, -1.1f, 0.6f, 1.4f};
    sd_ctx c = {d, x, r, logits, n};
    int ok = !isnan(sd_loss(&c, NULL)) && ge_disc_backward(d, dx, gw, r) == GE_OK;
    ok = ok && fd_check("sg2 disc dx", sd_loss, &c, x, dx, nx, 80, 1e-2f, 2e-3, 2e-2);
    /* weights: one random direction u per tensor, (L(w + e u) - L(w - e u)) / 2e vs <u, g> */
    ge_rng rng;
    ge_rng_seed(&rng, 5);
    const float eps = 1e-4f;
    for (int i = 0; ok && i < ge_tensors_count(wkeep); i++) {
        ge_tensor *t = (ge_tensor *)ge_tensors_at(wkeep, i);
        float *u = malloc(t->numel * sizeof *u), *keep = malloc(t->numel * sizeof *keep);
        ge_rng_fill_normal(&rng, u, t->numel);
        memcpy(keep, t->data, t->numel * sizeof *keep);
        for (size_t k = 0; k < t->numel; k++)
            t->data[k] = keep[k] + eps * u[k];
        double lp = sd_loss(&c, NULL);
        for (size_t k = 0; k < t->numel; k++)
            t->data[k] = keep[k] - eps * u[k];
        double lm = sd_loss(&c, NULL);
        memcpy(t->data, keep, t->numel * sizeof *keep);
        double fd = (lp - lm) / (2.0 * eps), an = dot(u, ge_tensors_at(gw, i)->data, t->numel);
        if (!(fabs(fd - an) <= 5e-3 + 2e-2 * fmax(fabs(fd), fabs(an)))) {
            fprintf(stderr, "  %s: directional derivative %.6g by differences, %.6g analytic\n",
                    t->name, fd, an);
            ok = 0;
        }
        free(u), free(keep);
    }
    free(x), free(dx);
    ge_tensors_free(gw);
    ge_disc_free(d);
    ge_tensors_free(V);
    CHECK(ok, "StyleGAN2 discriminator gradients disagree with finite differences");
}

/* ---- initialisation ------------------------------------------------------------ */

TEST(sg2_disc_init) {
    ge_rng rng;
    ge_rng_seed(&rng, 3);
    ge_tensors *w = NULL, *gw = NULL;
    /* R 32, base 512, max 64: C32 = 16, C16 = 32, C8 = 64, C4 = 64 */
    CHECK(ge_sg2_disc_init(&w, 32, 512, 64, &rng) == GE_OK, "%s", ge_errmsg());
    static const struct {
        const char *name;
        int ndim;
        int64_t shape[4];
    } want[] = {
        {"b32.fromrgb.weight", 4, {16, 3, 1, 1}},
        {"b32.fromrgb.bias", 1, {16}},
        {"b32.conv0.weight", 4, {16, 16, 3, 3}},
        {"b32.conv0.bias", 1, {16}},
        {"b32.conv1.weight", 4, {32, 16, 3, 3}},
        {"b32.conv1.bias", 1, {32}},
        {"b32.skip.weight", 4, {32, 16, 1, 1}},
        {"b16.conv0.weight", 4, {32, 32, 3, 3}},
        {"b16.conv0.bias", 1, {32}},
        {"b16.conv1.weight", 4, {64, 32, 3, 3}},
        {"b16.conv1.bias", 1, {64}},
        {"b16.skip.weight", 4, {64, 32, 1, 1}},
        {"b8.conv0.weight", 4, {64, 64, 3, 3}},
        {"b8.conv0.bias", 1, {64}},
        {"b8.conv1.weight", 4, {64, 64, 3, 3}},
        {"b8.conv1.bias", 1, {64}},
        {"b8.skip.weight", 4, {64, 64, 1, 1}},
        {"b4.conv.weight", 4, {64, 65, 3, 3}},
        {"b4.conv.bias", 1, {64}},
        {"b4.fc.weight", 2, {64, 1024}},
        {"b4.fc.bias", 1, {64}},
        {"b4.out.weight", 2, {1, 64}},
        {"b4.out.bias", 1, {1}},
    };
    int n_want = sizeof want / sizeof want[0];
    int ok = ge_tensors_count(w) == n_want;
    const char *bad = "count";
    size_t total = 0, flat_len = 0;
    double sum = 0, sq = 0, bias_abs = 0;
    size_t n_w = 0;
    for (int i = 0; ok && i < n_want; i++) {
        const ge_tensor *t = ge_tensors_find(w, want[i].name);
        ok = t && t->ndim == want[i].ndim;
        for (int k = 0; ok && k < t->ndim; k++)
            ok = t->shape[k] == want[i].shape[k];
        if (!ok) {
            bad = want[i].name;
            break;
        }
        total += t->numel;
        for (size_t k = 0; k < t->numel; k++) {
            if (t->ndim == 1) {
                bias_abs += fabsf(t->data[k]);
            } else {
                sum += t->data[k], sq += (double)t->data[k] * t->data[k], n_w++;
            }
        }
    }
    float *flat = ge_flat_data(w, &flat_len);
    int in_block = flat && flat_len == total;
    for (int i = 0; ok && in_block && i < ge_tensors_count(w); i++) {
        const ge_tensor *t = ge_tensors_at(w, i);
        in_block = t->data >= flat && t->data + t->numel <= flat + flat_len;
    }
    double mean = n_w ? sum / n_w : 0, sd = n_w ? sqrt(sq / n_w - mean * mean) : 0;
    int init_ok = fabs(mean) < 0.02 && fabs(sd - 1) < 0.02 && bias_abs == 0;
    if (!ok || !in_block || !init_ok) ge_tensors_free(w);
    CHECK(ok, "init: wrong name or shape (%s)", bad);
    CHECK(in_block, "init: tensors must lie in one flat block (%zu of %zu floats)", flat_len,
          total);
    CHECK(init_ok, "init: weights N(0,1), biases 0 (mean %g sd %g, sum |b| %g)", mean, sd,
          bias_abs);
    CHECK(ge_flat_like(&gw, w) == GE_OK, "%s", ge_errmsg());
    ge_tensors *wkeep = w;
    ge_disc *d = NULL;
    ge_status s = ge_disc_create(&d, w, "init");
    if (s != GE_OK) ge_tensors_free(gw);
    CHECK(s == GE_OK, "ge_disc_create refuses the initialised set: %s", ge_errmsg());
    const int n = 4;
    size_t nx = (size_t)n * 3 * 32 * 32;
    float *x = malloc(nx * sizeof *x), *dx = calloc(nx, sizeof *dx), logits[4],
          dl[4] = {1, -1, 0.5f, 2};
    ge_rng_fill_uniform(&rng, x, nx, -1, 1);
    ok = ge_disc_resolution(d) == 32 && ge_disc_forward(d, logits, x, n) == GE_OK &&
         ge_disc_backward(d, dx, gw, dl) == GE_OK;
    for (int i = 0; ok && i < n; i++)
        ok = isfinite(logits[i]);
    const ge_tensor *g0 = ge_tensors_find(gw, "b32.conv0.weight");
    float before = g0->data[3], dx_before = dx[100];
    ok = ok && ge_disc_backward(d, dx, gw, dl) == GE_OK;
    float after = g0->data[3], dx_after = dx[100];
    (void)wkeep;
    free(x), free(dx);
    ge_tensors_free(gw);
    ge_disc_free(d);
    CHECK(ok, "forward/backward on the initialised set failed: %s", ge_errmsg());
    CHECK(before != 0 && fabsf(after - 2 * before) <= 1e-5f * fabsf(before),
          "backward must add: %g %g", before, after);
    CHECK(dx_before != 0 && fabsf(dx_after - 2 * dx_before) <= 1e-5f * fabsf(dx_before),
          "backward must add into dx: %g %g", dx_before, dx_after);
    /* bad arguments */
    ge_tensors *t = NULL;
    CHECK(ge_sg2_disc_init(&t, 12, 512, 64, &rng) == GE_ERR_ARG && !t, "resolution 12");
    CHECK(ge_sg2_disc_init(&t, 4, 512, 64, &rng) == GE_ERR_ARG && !t, "resolution 4");
    CHECK(ge_sg2_disc_init(&t, 32, 16, 64, &rng) == GE_ERR_ARG && !t, "channel_base < R");
    CHECK(ge_sg2_disc_init(&t, 32, 512, 0, &rng) == GE_ERR_ARG && !t, "channel_max 0");
}

/* ---- errors -------------------------------------------------------------------- */

/* A set viewing V's "D." tensors (not owned), with tensor `change` given
 * dim 0 one smaller, `drop` left out, and `extra` (the first tensor's
 * data under that name) added; NULLs for none. */
static ge_tensors *variant(const ge_tensors *V, const char *change, const char *drop,
                           const char *extra) {
    ge_tensors *t = ge_tensors_new();
    for (int i = 0; t && i < ge_tensors_count(V); i++) {
        const ge_tensor *e = ge_tensors_at(V, i);
        if (strncmp(e->name, "D.", 2)) continue;
        const char *name = e->name + 2;
        if (extra) ge_tensors_add(t, extra, e->ndim, e->shape, e->data);
        extra = NULL;
        if (drop && !strcmp(name, drop)) continue;
        int64_t shape[4];
        memcpy(shape, e->shape, sizeof(int64_t) * e->ndim);
        if (change && !strcmp(name, change) && shape[0] > 1) shape[0] -= 1;
        ge_tensors_add(t, name, e->ndim, shape, e->data);
    }
    return t;
}

static int refused(const ge_tensors *V, const char *change, const char *drop, const char *extra,
                   ge_status want, const char *in_msg) {
    ge_disc *d = NULL;
    ge_status s = ge_disc_create(&d, variant(V, change, drop, extra), "bad");
    int ok = s == want && !d && strstr(ge_errmsg(), in_msg);
    if (!ok) fprintf(stderr, "  got %d '%s', wanted %d with '%s'\n", s, ge_errmsg(), want, in_msg);
    ge_disc_free(d);
    return ok;
}

TEST(sg2_disc_errors) {
    ge_tensors *V = NULL, *w = NULL, *gw = NULL;
    CHECK(load_vectors(&V, &w) == GE_OK, "%s", ge_errmsg());
    int ok =
        refused(V, "b8.conv0.weight", NULL, NULL, GE_ERR_SHAPE, "b8.conv0.weight") &&
        refused(V, "b4.fc.weight", NULL, NULL, GE_ERR_SHAPE, "b4.fc.weight") &&
        refused(V, "b16.skip.weight", NULL, NULL, GE_ERR_SHAPE, "b16.skip.weight") &&
        refused(V, NULL, "b4.out.bias", NULL, GE_ERR_FORMAT, "b4.out.bias") &&
        refused(V, NULL, NULL, "b8.fromrgb.weight", GE_ERR_UNSUPPORTED, "resnet") &&
        refused(V, NULL, "b16.fromrgb.weight", "b12.fromrgb.weight", GE_ERR_FORMAT, "power of two");
    ge_disc *d = NULL;
    ge_status s = ge_disc_create(&d, w, "ok");
    if (s != GE_OK) {
        ge_tensors_free(V);
        CHECK(0, "%s", ge_errmsg());
    }
    const ge_tensor *x = ge_tensors_find(V, "x");
    float logits[8], dl[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    /* backward before forward; batches the minibatch-stddev layer cannot group */
    int b0 = ge_disc_backward(d, NULL, NULL, dl) == GE_ERR_ARG;
    int b6 = ge_disc_forward(d, logits, x->data, 6) == GE_ERR_ARG &&
             strstr(ge_errmsg(), "multiple of 4") != NULL;
    int bz = ge_disc_forward(d, logits, x->data, 0) == GE_ERR_ARG;
    int b3 = ge_disc_forward(d, logits, x->data, 3) == GE_OK; /* one group of 3 */
    /* a gradient tensor named like a weight but of another size */
    ge_tensors *g = ge_tensors_new();
    float *buf = calloc(10, sizeof *buf);
    int64_t sh[1] = {10};
    ge_tensors_own(g, buf);
    ge_tensors_add(g, "b16.conv0.weight", 1, sh, buf);
    int bg = ge_disc_backward(d, NULL, g, dl) == GE_ERR_SHAPE && buf[0] == 0;
    ge_tensors_free(g);
    (void)gw;
    ge_disc_free(d);
    ge_tensors_free(V);
    CHECK(ok, "a wrong weight set must be refused with a clear message");
    CHECK(b0, "backward before forward must fail");
    CHECK(b6 && bz, "batch sizes 6 and 0 must be refused");
    CHECK(b3, "batch 3 is one minibatch-stddev group: %s", ge_errmsg());
    CHECK(bg, "a wrong-sized gradient tensor must be refused");
}
