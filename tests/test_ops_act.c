/* test_ops_act.c - bias + activation (StyleGAN2-ADA bias_act 'ref' maths):
 * finite-difference checks of dx and db for linear, relu, lrelu (with gain
 * sqrt 2 and a clamp that bites) and tanh; forward + gradients against
 * PyTorch (tests/vectors/ops_a.safetensors), including cases where elements
 * are clamped (their gradient must be 0) and b_gain != 1; 1 vs 2 threads.
 * Inputs for the difference checks are nudged at least 0.02 away from the
 * kinks (v = 0, |y| = clamp) so the step 1e-3 never crosses one; tolerances
 * atol 2e-3, rtol 2e-3 cover float32 rounding of the loss over the step and
 * the O(step^2) error for tanh. PyTorch comparisons: 1e-5 * max |ref|. */
#include "harness.h"
#include "ops/ops.h"
#include "ops_a_util.h"

typedef struct {
    ge_bias_act_params p;
    float *x, *b, *r, *y;
    size_t ny;
} act_ctx;

static double act_loss(void *vc, const float *unused) {
    (void)unused;
    act_ctx *c = vc;
    ge_bias_act_forward(c->y, c->x, c->b, &c->p);
    return opsa_dot(c->y, c->r, c->ny);
}

static float act_ref(float v, const ge_bias_act_params *p) {
    switch (p->act) {
    case GE_ACT_RELU:
        return v > 0 ? v : 0;
    case GE_ACT_LRELU:
        return v > 0 ? v : v * p->alpha;
    case GE_ACT_TANH:
        return tanhf(v);
    default:
        return v;
    }
}

/* Moves x away from the kinks of the piecewise ops. */
static void nudge(act_ctx *c) {
    const ge_bias_act_params *p = &c->p;
    for (int round = 0; round < 8; round++)
        for (size_t i = 0; i < c->ny; i++) {
            int ch = (int)((i / p->spatial) % p->c);
            float v = c->x[i] + (c->b ? p->b_gain * c->b[ch] : 0.f);
            if (fabsf(v) < 0.02f) c->x[i] += 0.05f;
            float z = act_ref(v, p) * p->gain;
            if (p->clamp >= 0 && fabsf(fabsf(z) - p->clamp) < 0.02f) c->x[i] += 0.05f;
        }
}

TEST(ops_bias_act_grad_fd) {
    static const ge_bias_act_params cases[] = {
        {.n = 2,
         .c = 3,
         .spatial = 5,
         .act = GE_ACT_LINEAR,
         .gain = 1.f,
         .b_gain = 1.f,
         .clamp = -1},
        {.n = 2,
         .c = 3,
         .spatial = 4,
         .act = GE_ACT_RELU,
         .gain = 1.41421356f,
         .b_gain = 1.f,
         .clamp = -1},
        {.n = 2,
         .c = 4,
         .spatial = 6,
         .act = GE_ACT_LRELU,
         .alpha = 0.2f,
         .gain = 1.41421356f,
         .b_gain = 1.f,
         .clamp = 0.9f},
        {.n = 3,
         .c = 2,
         .spatial = 1,
         .act = GE_ACT_LRELU,
         .alpha = 0.2f,
         .gain = 1.41421356f,
         .b_gain = 0.01f,
         .clamp = -1},
        {.n = 1,
         .c = 3,
         .spatial = 7,
         .act = GE_ACT_TANH,
         .gain = 2.f,
         .b_gain = 1.f,
         .clamp = 1.5f},
        {.n = 2,
         .c = 2,
         .spatial = 3,
         .act = GE_ACT_LINEAR,
         .gain = 0.5f,
         .b_gain = 1.f,
         .clamp = 0.4f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        ge_bias_act_params p = cases[ci];
        size_t nx = (size_t)p.n * p.c * p.spatial;
        act_ctx c = {.p = p,
                     .x = opsa_randn(50 + ci, nx, 1.f),
                     .b = opsa_randn(60 + ci, (size_t)p.c, 0.5f / p.b_gain),
                     .r = opsa_randn(70 + ci, nx, 1.f),
                     .y = opsa_zeros(nx),
                     .ny = nx};
        float *dx = opsa_zeros(nx), *db = opsa_zeros((size_t)p.c);
        int ok = c.x && c.b && c.r && c.y && dx && db;
        int clamped = p.clamp < 0;
        if (ok) {
            nudge(&c);
            ge_bias_act_forward(c.y, c.x, c.b, &p);
            for (size_t i = 0; i < nx; i++)
                clamped |= fabsf(c.y[i]) == p.clamp;
            ge_bias_act_backward(dx, db, c.r, c.x, c.b, &p);
            ok = fd_check("bias_act dx", act_loss, &c, c.x, dx, nx, 60, 1e-3f, 2e-3, 2e-3) &&
                 fd_check("bias_act db", act_loss, &c, c.b, db, (size_t)p.c, 60, 1e-3f, 2e-3, 2e-3);
        }
        free(c.x), free(c.b), free(c.r), free(c.y), free(dx), free(db);
        CHECK(ok, "bias_act case %zu", ci);
        CHECK(clamped, "bias_act case %zu: the clamp never bites, the test is too weak", ci);
    }
}

TEST(ops_bias_act_torch) {
    ge_tensors *ts = opsa_load_vectors();
    CHECK(ts, "vectors");
    int cases = 0, clamped = 0;
    for (int ci = 0;; ci++) {
        size_t nx, ny;
        const float *pr = opsa_vec(ts, NULL, "bias_act/%d/params", ci);
        if (!pr) break;
        ge_bias_act_params p = {.n = (int)pr[0],
                                .c = (int)pr[1],
                                .spatial = (size_t)pr[2],
                                .act = (ge_act)(int)pr[3],
                                .alpha = pr[4],
                                .gain = pr[5],
                                .b_gain = pr[6],
                                .clamp = pr[7]};
        const float *x = opsa_vec(ts, &nx, "bias_act/%d/x", ci);
        const float *b = opsa_vec(ts, NULL, "bias_act/%d/b", ci);
        const float *r = opsa_vec(ts, NULL, "bias_act/%d/r", ci);
        const float *y_ref = opsa_vec(ts, &ny, "bias_act/%d/y", ci);
        const float *dx_ref = opsa_vec(ts, NULL, "bias_act/%d/d_x", ci);
        const float *db_ref = opsa_vec(ts, NULL, "bias_act/%d/d_b", ci);
        int shapes_ok = x && r && y_ref && dx_ref && (pr[8] == 0.f || (b && db_ref)) &&
                        nx == (size_t)p.n * p.c * p.spatial && ny == nx;
        if (!shapes_ok) ge_tensors_free(ts);
        CHECK(shapes_ok, "case %d: tensors missing or shapes disagree", ci);
        float *y = opsa_zeros(ny), *dx = opsa_zeros(nx), *db = opsa_zeros((size_t)p.c);
        for (size_t i = 0; i < nx; i++)
            dx[i] = 1.f; /* backward adds */
        ge_bias_act_forward(y, x, b, &p);
        ge_bias_act_backward(dx, b ? db : NULL, r, x, b, &p);
        for (size_t i = 0; i < nx; i++)
            dx[i] -= 1.f;
        if (p.clamp >= 0)
            for (size_t i = 0; i < ny; i++)
                clamped += fabsf(y_ref[i]) == p.clamp;
        int ok = opsa_close("y", y, y_ref, ny, 1e-5) && opsa_close("dx", dx, dx_ref, nx, 1e-5) &&
                 (!b || opsa_close("db", db, db_ref, (size_t)p.c, 1e-5));
        free(y), free(dx), free(db);
        if (!ok) ge_tensors_free(ts);
        CHECK(ok, "bias_act case %d (act %d)", ci, (int)p.act);
        cases++;
    }
    ge_tensors_free(ts);
    CHECK(cases >= 6, "only %d bias_act cases in the vector file", cases);
    CHECK(clamped > 0, "no clamped element in the vectors");
}

TEST(ops_bias_act_threads) {
    ge_bias_act_params p = {.n = 2,
                            .c = 32,
                            .spatial = 33 * 33,
                            .act = GE_ACT_LRELU,
                            .alpha = 0.2f,
                            .gain = 1.41421356f,
                            .b_gain = 1.f,
                            .clamp = 2.f};
    size_t nx = (size_t)p.n * p.c * p.spatial;
    float *x = opsa_randn(5, nx, 1.f), *b = opsa_randn(6, (size_t)p.c, 1.f);
    float *r = opsa_randn(7, nx, 1.f);
    float *y[2] = {opsa_zeros(nx), opsa_zeros(nx)}, *dx[2] = {opsa_zeros(nx), opsa_zeros(nx)};
    float *db[2] = {opsa_zeros((size_t)p.c), opsa_zeros((size_t)p.c)};
    int ok = x && b && r && y[0] && y[1] && dx[0] && dx[1] && db[0] && db[1];
    int keep = ge_get_num_threads();
    if (ok)
        for (int t = 0; t < 2; t++) {
            ge_set_num_threads(t + 1);
            ge_bias_act_forward(y[t], x, b, &p);
            ge_bias_act_backward(dx[t], db[t], r, x, b, &p);
        }
    ge_set_num_threads(keep);
    /* elementwise and fixed-order sums: bitwise equal */
    int same = ok && memcmp(y[0], y[1], nx * sizeof(float)) == 0 &&
               memcmp(dx[0], dx[1], nx * sizeof(float)) == 0 &&
               memcmp(db[0], db[1], (size_t)p.c * sizeof(float)) == 0;
    free(x), free(b), free(r);
    for (int t = 0; t < 2; t++)
        free(y[t]), free(dx[t]), free(db[t]);
    CHECK(ok, "allocation");
    CHECK(same, "1 and 2 threads differ");
}
