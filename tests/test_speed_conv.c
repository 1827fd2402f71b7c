/* test_speed_conv.c - the fast convolution path (oneDNN primitives,
 * src/kernels/dnnl_conv.c, used by conv2d and convt2d) against the im2col +
 * GEMM reference it replaces:
 *  - forward, input gradient, weight gradient and bias gradient of conv2d
 *    and conv_transpose2d agree with the reference (ge_dconv_enable(0)) at
 *    float32 rounding, on shapes that reach every corner of the packing
 *    code: odd channel counts (padded channel blocks), widths that are not
 *    a multiple of 16 (the AVX-512 tiles' scalar tails), zero and
 *    reflection padding (the fold of the reflected border), stride 2,
 *    batches, per-sample weights, and the gradients ADD into what is there;
 *  - the fast path really ran (an implementation name, never "ref");
 *  - the same inputs and thread count give the same bytes;
 *  - bf16 (where the CPU has it) stays within bf16 tolerance of fp32, and
 *    asking for it where the CPU lacks it falls back to fp32 bit for bit;
 *  - ge_dconv_enable(0) and the precision API behave as documented.
 * Tolerance fp32: 2e-5 * max |ref| (both sides sum the same few hundred
 * products in different orders). bf16: relative L2 error <= 1e-2 (inputs
 * and weights rounded to 8 significant bits, ~2^-9 relative each). */
#include "harness.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "ops_a_util.h"

#include <string.h>

/* Outputs of one run of forward + backward. */
typedef struct {
    float *y, *dx, *dw, *db;
} conv_out;

typedef struct {
    int transposed;
    ge_conv2d_params c;  /* when !transposed */
    ge_convt2d_params t; /* when transposed */
    size_t nx, ny, nw, nb;
    float *x, *w, *b, *dy, *scratch;
} conv_case;

static void case_free(conv_case *k) {
    free(k->x), free(k->w), free(k->b), free(k->dy), free(k->scratch);
}

static void out_free(conv_out *o) {
    free(o->y), free(o->dx), free(o->dw), free(o->db);
}

static int case_setup(conv_case *k, uint64_t seed) {
    int oh, ow, n, c_in, h, w, c_out, kk;
    size_t wss;
    if (k->transposed) {
        ge_convt2d_out_size(&k->t, &oh, &ow);
        n = k->t.n, c_in = k->t.c_in, h = k->t.h, w = k->t.w, c_out = k->t.c_out;
        kk = k->t.kh * k->t.kw, wss = k->t.w_sample_stride;
    } else {
        ge_conv2d_out_size(&k->c, &oh, &ow);
        n = k->c.n, c_in = k->c.c_in, h = k->c.h, w = k->c.w, c_out = k->c.c_out;
        kk = k->c.kh * k->c.kw, wss = k->c.w_sample_stride;
    }
    k->nx = (size_t)n * c_in * h * w;
    k->ny = (size_t)n * c_out * oh * ow;
    k->nw = (size_t)c_out * c_in * kk * (wss ? (size_t)n : 1);
    k->nb = (size_t)c_out;
    k->x = opsa_randn(seed, k->nx, 1.f);
    k->w = opsa_randn(seed + 1, k->nw, 0.2f);
    k->b = opsa_randn(seed + 2, k->nb, 1.f);
    k->dy = opsa_randn(seed + 3, k->ny, 1.f);
    size_t sc = k->transposed ? ge_convt2d_scratch(&k->t) : ge_conv2d_scratch(&k->c);
    k->scratch = opsa_zeros(sc ? sc : 1);
    return k->x && k->w && k->b && k->dy && k->scratch;
}

/* Forward and full backward with the fast path on or off; the gradients
 * start from a fixed non-zero pattern, so a backward that overwrote instead
 * of adding would show. */
static int run_case(conv_out *o, const conv_case *k, int fast) {
    memset(o, 0, sizeof *o);
    o->y = opsa_zeros(k->ny);
    o->dx = opsa_randn(77, k->nx, 1.f);
    o->dw = opsa_randn(78, k->nw, 1.f);
    o->db = opsa_randn(79, k->nb, 1.f);
    if (!o->y || !o->dx || !o->dw || !o->db) return 0;
    int was = ge_dconv_enable(fast);
    if (k->transposed) {
        ge_convt2d_forward(o->y, k->x, k->w, k->b, &k->t, k->scratch);
        ge_convt2d_backward(o->dx, o->dw, o->db, k->dy, k->x, k->w, &k->t, k->scratch);
    } else {
        ge_conv2d_forward(o->y, k->x, k->w, k->b, &k->c, k->scratch);
        ge_conv2d_backward(o->dx, o->dw, o->db, k->dy, k->x, k->w, &k->c, k->scratch);
    }
    ge_dconv_enable(was);
    return 1;
}

/* max |a - ref| / max(1, max |ref|) over the four outputs. */
static double worst_err(const conv_out *a, const conv_out *ref, const conv_case *k) {
    const float *pa[] = {a->y, a->dx, a->dw, a->db}, *pr[] = {ref->y, ref->dx, ref->dw, ref->db};
    size_t n[] = {k->ny, k->nx, k->nw, k->nb};
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        double m = max_abs(pr[i], n[i]);
        double e = max_abs_diff(pa[i], pr[i], n[i]) / (m > 1 ? m : 1);
        if (e > worst) worst = e;
    }
    return worst;
}

/* The oneDNN problem conv2d.c / convt2d.c pose for this case. */
static ge_dconv_shape case_shape(const conv_case *k) {
    ge_dconv_shape s;
    if (k->transposed) {
        int oh, ow;
        ge_convt2d_out_size(&k->t, &oh, &ow);
        s = (ge_dconv_shape){k->t.w_sample_stride ? 1 : k->t.n,
                             k->t.c_out,
                             oh,
                             ow,
                             k->t.c_in,
                             k->t.kh,
                             k->t.kw,
                             k->t.stride,
                             k->t.pad,
                             GE_PAD_ZERO,
                             0,
                             0,
                             0};
    } else {
        s = (ge_dconv_shape){k->c.w_sample_stride ? 1 : k->c.n,
                             k->c.c_in,
                             k->c.h,
                             k->c.w,
                             k->c.c_out,
                             k->c.kh,
                             k->c.kw,
                             k->c.stride,
                             k->c.pad,
                             k->c.pad_mode,
                             0,
                             0,
                             0};
    }
    return s;
}

static conv_case conv_c(int n, int c_in, int h, int w, int c_out, int k, int stride, int pad,
                        int mode, int per_sample) {
    conv_case c;
    memset(&c, 0, sizeof c);
    c.c = (ge_conv2d_params){n, c_in, h, w, c_out, k, k, stride, pad, mode, 0};
    if (per_sample) c.c.w_sample_stride = (size_t)c_out * c_in * k * k;
    return c;
}

static conv_case convt_c(int n, int c_in, int h, int w, int c_out, int k, int stride, int pad,
                         int per_sample) {
    conv_case c;
    memset(&c, 0, sizeof c);
    c.transposed = 1;
    c.t = (ge_convt2d_params){n, c_in, h, w, c_out, k, k, stride, pad, 0};
    if (per_sample) c.t.w_sample_stride = (size_t)c_out * c_in * k * k;
    return c;
}

#define N_CASES 10
static conv_case all_cases(int i) {
    switch (i) {
    case 0:
        return conv_c(2, 32, 19, 21, 48, 3, 1, 1, GE_PAD_ZERO, 0); /* tails */
    case 1:
        return conv_c(1, 3, 16, 16, 64, 3, 1, 1, GE_PAD_REFLECT, 0); /* VGG conv1_1 */
    case 2:
        return conv_c(2, 64, 17, 18, 35, 3, 1, 1, GE_PAD_REFLECT, 0); /* odd c_out */
    case 3:
        return conv_c(1, 16, 15, 15, 32, 3, 2, 1, GE_PAD_ZERO, 0); /* stride 2 */
    case 4:
        return conv_c(3, 32, 8, 8, 32, 3, 1, 1, GE_PAD_ZERO, 1); /* per-sample (StyleGAN2) */
    case 5:
        return conv_c(2, 20, 1, 1, 24, 4, 1, 3, GE_PAD_ZERO, 0); /* DCGAN deluxe's first */
    case 6:
        return conv_c(1, 48, 33, 40, 16, 3, 1, 2, GE_PAD_REFLECT, 0); /* pad 2 fold */
    case 7:
        return convt_c(2, 32, 5, 6, 16, 4, 2, 1, 0); /* DCGAN vanilla */
    case 8:
        return convt_c(1, 24, 4, 4, 40, 3, 2, 0, 0); /* StyleGAN2 up conv */
    default:
        return convt_c(3, 16, 4, 5, 32, 3, 2, 0, 1); /* per-sample up conv */
    }
}

TEST(speed_conv_vs_im2col) {
    for (int i = 0; i < N_CASES; i++) {
        conv_case k = all_cases(i);
        conv_out fast = {0}, ref = {0};
        int ok = case_setup(&k, 100 + (uint64_t)i * 10) && run_case(&fast, &k, 1) &&
                 run_case(&ref, &k, 0);
        double err = ok ? worst_err(&fast, &ref, &k) : 1;
        ge_dconv_shape s = case_shape(&k);
        const char *impl = ge_dconv_impl(&s, GE_DCONV_FWD);
        out_free(&fast), out_free(&ref), case_free(&k);
        CHECK(ok, "case %d: out of memory", i);
        CHECK(err <= 2e-5, "case %d: fast path differs from im2col by %.3g (relative)", i, err);
#if defined(__x86_64__)
        /* every case but the 1x1-input one must really take the fast path */
        CHECK(i == 5 || impl, "case %d: oneDNN declined", i);
#endif
        CHECK(!impl || !strstr(impl, "ref"), "case %d: got the reference kernel %s", i, impl);
    }
}

/* The weight-gradient-free backward the editing loops run: dx only, and
 * NULL gradients are skipped. */
TEST(speed_conv_dx_only) {
    conv_case k = all_cases(2);
    CHECK(case_setup(&k, 5), "out of memory");
    float *dx_f = opsa_randn(9, k.nx, 1.f), *dx_r = malloc(k.nx * sizeof(float));
    CHECK(dx_f && dx_r, "out of memory");
    memcpy(dx_r, dx_f, k.nx * sizeof(float));
    ge_conv2d_backward(dx_f, NULL, NULL, k.dy, k.x, k.w, &k.c, k.scratch);
    int was = ge_dconv_enable(0);
    ge_conv2d_backward(dx_r, NULL, NULL, k.dy, k.x, k.w, &k.c, k.scratch);
    ge_dconv_enable(was);
    double err = max_abs_diff(dx_f, dx_r, k.nx) / max_abs(dx_r, k.nx);
    free(dx_f), free(dx_r), case_free(&k);
    CHECK(err <= 2e-5, "dx differs by %.3g", err);
}

TEST(speed_conv_deterministic) {
    for (int i = 0; i < N_CASES; i += 3) {
        conv_case k = all_cases(i);
        conv_out a = {0}, b = {0};
        int ok = case_setup(&k, 7) && run_case(&a, &k, 1) && run_case(&b, &k, 1);
        int same = ok && !memcmp(a.y, b.y, k.ny * 4) && !memcmp(a.dx, b.dx, k.nx * 4) &&
                   !memcmp(a.dw, b.dw, k.nw * 4) && !memcmp(a.db, b.db, k.nb * 4);
        out_free(&a), out_free(&b), case_free(&k);
        CHECK(ok, "out of memory");
        CHECK(same, "case %d: two runs differ", i);
    }
}

TEST(speed_conv_disable) {
    ge_dconv_shape s = {1, 16, 8, 8, 16, 3, 3, 1, 1, GE_PAD_ZERO, 0, 0, 0};
    float x[16 * 64], w[16 * 16 * 9], y[16 * 64];
    for (size_t i = 0; i < 16 * 64; i++)
        x[i] = (float)(i % 7) - 3.f, y[i] = 42.f;
    for (size_t i = 0; i < 16 * 16 * 9; i++)
        w[i] = (float)(i % 5) * 0.1f;
    int was = ge_dconv_enable(0);
    int r = ge_dconv_forward(y, x, w, NULL, &s, 0);
    const char *impl = ge_dconv_impl(&s, GE_DCONV_FWD);
    int prev = ge_dconv_enable(was);
    CHECK(r == 0 && !impl, "the disabled fast path still ran");
    CHECK(prev == 0, "ge_dconv_enable did not report the previous setting");
    for (size_t i = 0; i < 16 * 64; i++)
        CHECK(y[i] == 42.f, "a declined call wrote y[%zu]", i);
    /* and a problem oneDNN cannot take (reflection wider than the image) is declined */
    ge_dconv_shape bad = {1, 16, 2, 2, 16, 3, 3, 1, 2, GE_PAD_REFLECT, 0, 0, 0};
    CHECK(!ge_dconv_forward(y, x, w, NULL, &bad, 0), "an invalid problem was accepted");
    CHECK(ge_set_precision((ge_precision)7) == GE_ERR_ARG, "unknown precision accepted");
}

/* bf16 where the CPU multiplies it natively, within bf16 tolerance of fp32;
 * elsewhere the request must fall back to fp32 exactly. */
TEST(speed_conv_bf16) {
    ge_precision before = ge_get_precision();
    CHECK(before == GE_PRECISION_FP32, "the default precision is not fp32");
    /* by default bf16 needs AMX; without it the request must fall back */
    CHECK(ge_set_precision(GE_PRECISION_BF16) == GE_OK, "bf16 refused");
    int amx = ge_bf16_supported() == GE_BF16_AMX;
    CHECK(ge_get_precision() == (amx ? GE_PRECISION_BF16 : GE_PRECISION_FP32),
          "bf16 in effect without AMX, or not with it");
    ge_set_precision(GE_PRECISION_FP32);
    /* AVX512-BF16 machines run the same bf16 code when allowed: test it there
     * too. Failures are collected and checked after the settings are restored. */
    int was_allowed = ge_bf16_allow_avx512(1);
    int native = ge_bf16_supported() != GE_BF16_NONE;
    char bad[256] = "";
    for (int i = 0; i < N_CASES && !bad[0]; i++) {
        if (i == 5) continue;
        conv_case k = all_cases(i);
        conv_out f32 = {0}, b16 = {0};
        int ok = case_setup(&k, 300 + (uint64_t)i) && run_case(&f32, &k, 1);
        ge_set_precision(GE_PRECISION_BF16);
        ge_precision in_effect = ge_get_precision();
        ok = ok && run_case(&b16, &k, 1);
        ge_set_precision(GE_PRECISION_FP32);
        if (!ok) {
            snprintf(bad, sizeof bad, "case %d: out of memory", i);
        } else if (in_effect != (native ? GE_PRECISION_BF16 : GE_PRECISION_FP32)) {
            snprintf(bad, sizeof bad, "case %d: precision in effect %d with bf16 support %d", i,
                     (int)in_effect, (int)ge_bf16_supported());
        } else {
            double e_y = rel_l2(b16.y, f32.y, k.ny), e_dx = rel_l2(b16.dx, f32.dx, k.nx);
            double e_dw = rel_l2(b16.dw, f32.dw, k.nw);
            int same = !memcmp(b16.y, f32.y, k.ny * 4);
            if (native && !(e_y <= 1e-2 && e_dx <= 1e-2 && e_dw <= 1e-2))
                snprintf(bad, sizeof bad, "case %d: bf16 vs fp32 rel L2 y %.3g dx %.3g dw %.3g", i,
                         e_y, e_dx, e_dw);
            else if (native && same)
                snprintf(bad, sizeof bad, "case %d: bf16 gave the fp32 bits: it did not run", i);
            else if (!native && !(same && e_dx == 0 && e_dw == 0))
                snprintf(bad, sizeof bad, "case %d: the fp32 fallback differs", i);
        }
        out_free(&f32), out_free(&b16), case_free(&k);
    }
    ge_bf16_allow_avx512(was_allowed);
    CHECK(!bad[0], "%s", bad);
    CHECK(ge_get_precision() == GE_PRECISION_FP32, "precision not restored");
}
