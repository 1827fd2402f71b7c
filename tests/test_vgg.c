/* test_vgg.c - the VGG-19 feature network (src/models/vgg.c) against
 * PyTorch: every stored feature (convs, ReLUs, pools) and the input gradient
 * with gradients injected at five layers at once, for both weight layouts and
 * for even and odd image sizes; buffer reuse across sizes and batches; the
 * PyTorch files against their safetensors (or legacy) copies; bad files; and
 * where ge_vgg_find looks. The reference x is RGB in [0,1]; ganedit takes
 * [-1,1], so x is mapped to 2x-1 and our d_x is half the reference's. */
#include "ganedit.h"
#include "harness.h"
#include "st_write.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------------- */

static const char *const conv_layers[5] = {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"};

/* Runs reference file `iopath` through v: every feature the file stores that
 * the network names (within 1e-5 of its max), relus as max(conv, 0) where the
 * file has no relu, and d_x from the five r_conv* injected at once (within
 * 1e-4 of its max, 1e-3 relative L2). Returns 1 on pass. */
static int check_io(ge_vgg *v, const char *iopath) {
    static const char *feats[] = {"conv0", "conv1_1", "relu1_1", "conv1_2", "relu1_2",
                                  "pool1", "conv2_1", "relu2_1", "conv2_2", "relu2_2",
                                  "pool2", "conv3_1", "relu3_1"};
    ge_tensors *io = NULL;
    if (ge_safetensors_load(&io, iopath) != GE_OK) {
        fprintf(stderr, "  %s\n", ge_errmsg());
        return 0;
    }
    int ok = 1, compared = 0;
    const ge_tensor *x = ge_tensors_find(io, "x"), *rdx = ge_tensors_find(io, "d_x");
    float *xm = NULL, *dx = NULL;
    if (!x || !rdx || x->ndim != 4 || x->shape[1] != 3) {
        fprintf(stderr, "  %s: no x / d_x\n", iopath);
        ok = 0;
        goto done;
    }
    int n = (int)x->shape[0], h = (int)x->shape[2], w = (int)x->shape[3];
    xm = malloc(x->numel * sizeof *xm);
    dx = calloc(x->numel, sizeof *dx);
    for (size_t i = 0; i < x->numel; i++)
        xm[i] = 2.f * x->data[i] - 1.f;
    if (ge_vgg_forward(v, xm, n, h, w, NULL) != GE_OK) {
        fprintf(stderr, "  forward: %s\n", ge_errmsg());
        ok = 0;
        goto done;
    }
    for (size_t f = 0; f < sizeof feats / sizeof *feats; f++) {
        const ge_tensor *ref = ge_tensors_find(io, feats[f]);
        int is_relu = strncmp(feats[f], "relu", 4) == 0;
        char conv_name[16];
        snprintf(conv_name, sizeof conv_name, "conv%s", feats[f] + 4);
        if (!ref && is_relu) ref = ge_tensors_find(io, conv_name);
        if (!ref) continue;
        int c, fh, fw;
        const float *got = ge_vgg_feature(v, feats[f], &c, &fh, &fw);
        if (!got) {
            fprintf(stderr, "  %s: feature %s: %s\n", iopath, feats[f], ge_errmsg());
            ok = 0;
            continue;
        }
        if ((size_t)n * c * fh * fw != ref->numel || ref->shape[1] != c || ref->shape[2] != fh ||
            ref->shape[3] != fw) {
            fprintf(stderr, "  %s: %s has shape (%d,%d,%d)\n", iopath, feats[f], c, fh, fw);
            ok = 0;
            continue;
        }
        double err = 0, mx = 0;
        for (size_t i = 0; i < ref->numel; i++) {
            float r = ref->data[i];
            if (is_relu && !ge_tensors_find(io, feats[f])) r = r > 0 ? r : 0;
            double d = fabs((double)got[i] - r);
            if (!(d <= err)) err = d;
            if (fabs(r) > mx) mx = fabs(r);
        }
        compared++;
        if (!(err <= 1e-5 * mx)) {
            fprintf(stderr, "  %s: %s max err %.3g, max |ref| %.3g\n", iopath, feats[f], err, mx);
            ok = 0;
        }
    }
    if (compared < 7) {
        fprintf(stderr, "  %s: only %d features compared\n", iopath, compared);
        ok = 0;
    }
    const float *grads[5];
    for (int k = 0; k < 5; k++) {
        char rn[16];
        snprintf(rn, sizeof rn, "r_%s", conv_layers[k]);
        const ge_tensor *r = ge_tensors_find(io, rn);
        if (!r) {
            fprintf(stderr, "  %s: no %s\n", iopath, rn);
            ok = 0;
            goto done;
        }
        grads[k] = r->data;
    }
    if (ge_vgg_backward(v, dx, 5, conv_layers, grads) != GE_OK) {
        fprintf(stderr, "  backward: %s\n", ge_errmsg());
        ok = 0;
        goto done;
    }
    for (size_t i = 0; i < x->numel; i++)
        dx[i] *= 2.f; /* d/dx01 = 2 d/dx */
    double err = max_abs_diff(dx, rdx->data, rdx->numel), mx = max_abs(rdx->data, rdx->numel);
    double l2 = rel_l2(dx, rdx->data, rdx->numel);
    if (!(err <= 1e-4 * mx) || !(l2 <= 1e-3)) {
        fprintf(stderr, "  %s: d_x max err %.3g (max |ref| %.3g), rel L2 %.3g\n", iopath, err, mx,
                l2);
        ok = 0;
    }
done:
    free(xm);
    free(dx);
    ge_tensors_free(io);
    return ok;
}

static void run_io(int *test_failed_, const char *wpath, const char *iopath, const char *layout) {
    ge_vgg *v = NULL;
    ge_status s = ge_vgg_load(&v, wpath);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    int meta =
        strcmp(ge_vgg_layout(v), layout) == 0 && strcmp(ge_vgg_last_layer(v), "conv3_1") == 0;
    int ok = check_io(v, iopath);
    ge_vgg_free(v);
    CHECK(meta, "layout/last layer wrong");
    CHECK(ok, "%s does not match", iopath);
}

#define NORM_W "weights/vgg19_normalised_conv3_1.safetensors"
#define TV_W "ref/vgg19_tv_conv3_1.pth"

TEST(vgg19n_io) {
    run_io(test_failed_, shared_path(NORM_W), shared_path("ref/vgg19n_io.safetensors"),
           "normalised");
}
TEST(vgg19n_io_odd) {
    run_io(test_failed_, shared_path(NORM_W), shared_path("ref/vgg19n_io_odd.safetensors"),
           "normalised");
}
TEST(vgg19tv_io) {
    run_io(test_failed_, shared_path(TV_W), shared_path("ref/vgg19tv_io.safetensors"),
           "torchvision");
}
TEST(vgg19tv_io_odd) {
    run_io(test_failed_, shared_path(TV_W), shared_path("ref/vgg19tv_io_odd.safetensors"),
           "torchvision");
}

/* One network object through sizes that grow, shrink and grow again. */
TEST(vgg_buffer_reuse) {
    ge_vgg *v = NULL;
    ge_status s = ge_vgg_load(&v, shared_path(NORM_W));
    CHECK(s == GE_OK, "%s", ge_errmsg());
    int ok = check_io(v, shared_path("ref/vgg19n_io_odd.safetensors")) &&
             check_io(v, shared_path("ref/vgg19n_io.safetensors")) &&
             check_io(v, shared_path("ref/vgg19n_io_odd.safetensors"));
    ge_vgg_free(v);
    CHECK(ok, "results change when buffers are reused");
}

/* A batch of two images equals each image alone, features and gradients;
 * a shallower forward gives the same early features and hides deeper ones. */
TEST(vgg_batch_and_depth) {
    ge_vgg *v = NULL;
    ge_status s = ge_vgg_load(&v, shared_path(NORM_W));
    CHECK(s == GE_OK, "%s", ge_errmsg());
    enum { H = 24, W = 20, NX = 3 * H * W, C3 = 256 * 6 * 5, C1 = 64 * H * W };
    static float x[2 * NX], g3[2 * C3], g1[2 * C1], dx[2 * NX], dx1[NX], f3[2 * C3];
    ge_rng r;
    ge_rng_seed(&r, 11);
    ge_rng_fill_uniform(&r, x, 2 * NX, -0.9f, 0.9f);
    ge_rng_fill_normal(&r, g3, 2 * C3);
    ge_rng_fill_normal(&r, g1, 2 * C1);
    const char *names[2] = {"relu3_1", "conv1_2"};
    memset(dx, 0, sizeof dx);
    int c = 0, fh = 0, fw = 0;
    s = ge_vgg_forward(v, x, 2, H, W, "relu3_1,conv1_1");
    const float *f = s == GE_OK ? ge_vgg_feature(v, "relu3_1", &c, &fh, &fw) : NULL;
    int shape_ok = f && c == 256 && fh == 6 && fw == 5;
    if (shape_ok) {
        memcpy(f3, f, sizeof f3);
        const float *gr[2] = {g3, g1};
        s = ge_vgg_backward(v, dx, 2, names, gr);
    }
    double e_f = 0, e_dx = 0;
    for (int i = 0; shape_ok && s == GE_OK && i < 2; i++) {
        s = ge_vgg_forward(v, x + i * NX, 1, H, W, NULL);
        f = s == GE_OK ? ge_vgg_feature(v, "relu3_1", NULL, NULL, NULL) : NULL;
        if (!f) break;
        double e = max_abs_diff(f, f3 + i * C3, C3) / (max_abs(f, C3) + 1e-30);
        if (e > e_f) e_f = e;
        memset(dx1, 0, sizeof dx1);
        const float *gr[2] = {g3 + i * C3, g1 + i * C1};
        s = ge_vgg_backward(v, dx1, 2, names, gr);
        e = max_abs_diff(dx1, dx + i * NX, NX) / (max_abs(dx1, NX) + 1e-30);
        if (e > e_dx) e_dx = e;
    }
    const char *msg = s == GE_OK ? "" : ge_errmsg();
    /* shallow run: conv1_2 equals the deep run's, conv2_1 is not available */
    int shallow_ok = 0;
    if (s == GE_OK && f) {
        static float c12[C1];
        const float *deep = ge_vgg_feature(v, "conv1_2", NULL, NULL, NULL);
        if (deep) memcpy(c12, deep, sizeof c12);
        if (deep && ge_vgg_forward(v, x + NX, 1, H, W, "conv1_2") == GE_OK) {
            const float *sh = ge_vgg_feature(v, "conv1_2", NULL, NULL, NULL);
            shallow_ok = sh && memcmp(sh, c12, sizeof c12) == 0 &&
                         ge_vgg_feature(v, "conv2_1", NULL, NULL, NULL) == NULL;
            const float *gr[1] = {g3};
            const char *deepname[1] = {"conv3_1"};
            shallow_ok = shallow_ok && ge_vgg_backward(v, dx1, 1, deepname, gr) == GE_ERR_ARG;
        }
    }
    ge_vgg_free(v);
    CHECK(shape_ok, "relu3_1 of a 24x20 input: (%d,%d,%d)", c, fh, fw);
    CHECK(s == GE_OK && f, "%s", msg);
    CHECK(e_f <= 1e-5, "batch vs single features differ by %.3g", e_f);
    CHECK(e_dx <= 1e-4, "batch vs single d_x differ by %.3g", e_dx);
    CHECK(shallow_ok, "shallow forward");
}

/* PyTorch files give exactly what their copies give. */
static void check_same(int *test_failed_, const char *a, const char *b) {
    ge_vgg *va = NULL, *vb = NULL;
    ge_status s = ge_vgg_load(&va, a);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    s = ge_vgg_load(&vb, b);
    if (s != GE_OK) ge_vgg_free(va);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    enum { H = 16, W = 12, NX = 3 * H * W };
    float x[NX];
    ge_rng r;
    ge_rng_seed(&r, 3);
    ge_rng_fill_uniform(&r, x, NX, -1.f, 1.f);
    int same = ge_vgg_forward(va, x, 1, H, W, NULL) == GE_OK &&
               ge_vgg_forward(vb, x, 1, H, W, NULL) == GE_OK;
    const char *last = ge_vgg_last_layer(va);
    int c = 0, fh = 0, fw = 0;
    const float *fa = same ? ge_vgg_feature(va, last, &c, &fh, &fw) : NULL;
    const float *fb = same ? ge_vgg_feature(vb, last, NULL, NULL, NULL) : NULL;
    same = fa && fb && !strcmp(last, ge_vgg_last_layer(vb)) &&
           !strcmp(ge_vgg_layout(va), ge_vgg_layout(vb)) &&
           memcmp(fa, fb, (size_t)c * fh * fw * 4) == 0;
    ge_vgg_free(va);
    ge_vgg_free(vb);
    CHECK(same, "%s and %s differ", a, b);
}

TEST(vgg_torch_formats) {
    check_same(test_failed_, shared_path("weights/vgg19_normalised_conv3_1.pth"),
               shared_path(NORM_W));
    check_same(test_failed_, shared_path(TV_W), shared_path("ref/vgg19_tv_conv3_1_legacy.pth"));
}

/* ---- errors --------------------------------------------------------------------- */

TEST(vgg_bad_files) {
    const char *dir = tmpdir_new();
    char path[4200];
    static float buf[64 * 64 * 9];
    ge_vgg *v = NULL;

    snprintf(path, sizeof path, "%s/shape.safetensors", dir);
    st_entry e1[] = {{"0.weight", 4, {3, 3, 1, 1}, buf},   {"0.bias", 1, {3}, buf},
                     {"2.weight", 4, {64, 3, 3, 3}, buf},  {"2.bias", 1, {64}, buf},
                     {"5.weight", 4, {64, 32, 3, 3}, buf}, {"5.bias", 1, {64}, buf}};
    CHECK(st_write(path, e1, 6, NULL), "write");
    ge_status s = ge_vgg_load(&v, path);
    CHECK(s == GE_ERR_SHAPE && !v, "wrong shape: %s: %s", ge_status_name(s), ge_errmsg());
    CHECK(strstr(ge_errmsg(), "'5.weight'") && strstr(ge_errmsg(), path), "message: %s",
          ge_errmsg());

    snprintf(path, sizeof path, "%s/bias.safetensors", dir);
    st_entry e2[] = {{"features.0.weight", 4, {64, 3, 3, 3}, buf},
                     {"features.0.bias", 1, {32}, buf}};
    CHECK(st_write(path, e2, 2, NULL), "write");
    s = ge_vgg_load(&v, path);
    CHECK(s == GE_ERR_SHAPE && strstr(ge_errmsg(), "features.0.bias"), "bias: %s: %s",
          ge_status_name(s), ge_errmsg());

    snprintf(path, sizeof path, "%s/nokeys.safetensors", dir);
    st_entry e3[] = {{"encoder.weight", 4, {64, 3, 3, 3}, buf}};
    CHECK(st_write(path, e3, 1, NULL), "write");
    s = ge_vgg_load(&v, path);
    CHECK(s == GE_ERR_UNSUPPORTED && !v && strstr(ge_errmsg(), path) &&
              strstr(ge_errmsg(), "features.0.weight"),
          "no known keys: %s: %s", ge_status_name(s), ge_errmsg());

    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    s = ge_vgg_load(&v, path);
    CHECK(s == GE_ERR_IO && !v, "missing file: %s: %s", ge_status_name(s), ge_errmsg());
    ge_vgg_free(NULL);
}

TEST(vgg_call_errors) {
    ge_vgg *v = NULL;
    ge_status s = ge_vgg_load(&v, shared_path(NORM_W));
    CHECK(s == GE_OK, "%s", ge_errmsg());
    float x[3 * 4 * 4] = {0}, dx[3 * 4 * 4] = {0};
    const char *l[1] = {"conv1_1"};
    const float *g[1] = {x};
    ge_status before = ge_vgg_backward(v, dx, 1, l, g);
    ge_status unknown = ge_vgg_forward(v, x, 1, 4, 4, "conv4_1");
    int names_it = strstr(ge_errmsg(), "conv4_1") != NULL;
    /* 4x4 -> pool1 2x2 -> pool2 1x1: too small for conv3_1's reflection pad */
    ge_status small = ge_vgg_forward(v, x, 1, 4, 4, NULL);
    ge_status fine = ge_vgg_forward(v, x, 1, 4, 4, "conv2_2");
    ge_vgg_free(v);
    CHECK(before == GE_ERR_ARG, "backward before forward: %s", ge_status_name(before));
    CHECK(unknown == GE_ERR_ARG && names_it, "unknown layer: %s", ge_status_name(unknown));
    CHECK(small == GE_ERR_SHAPE, "too small: %s", ge_status_name(small));
    CHECK(fine == GE_OK, "4x4 to conv2_2: %s", ge_status_name(fine));
}

/* ---- ge_vgg_find ------------------------------------------------------------------ */

typedef struct {
    const char *name;
    char *value;
} saved_env;

static void env_save(saved_env *e, const char *name) {
    e->name = name;
    const char *v = getenv(name);
    e->value = v ? strdup(v) : NULL;
}

static void env_restore(saved_env *e) {
    if (e->value)
        setenv(e->name, e->value, 1);
    else
        unsetenv(e->name);
    free(e->value);
}

static int touch(const char *p) {
    FILE *f = fopen(p, "wb");
    return f && fclose(f) == 0;
}

TEST(vgg_find) {
    static const char *vars[] = {"GANEDIT_VGG", "TORCH_HOME", "XDG_CACHE_HOME", "HOME",
                                 "GANEDIT_SHARED"};
    saved_env saved[5];
    for (int i = 0; i < 5; i++)
        env_save(&saved[i], vars[i]);
    const char *dir = tmpdir_new();
    char missing[4200], present[4200], got[4096], cwd[4096] = "", home[4200], ckpt[4400];
    snprintf(missing, sizeof missing, "%s/none.pth", dir);
    snprintf(present, sizeof present, "%s/vgg.pth", dir);
    snprintf(home, sizeof home, "%s/home", dir);
    int ok_setup = touch(present) && getcwd(cwd, sizeof cwd) != NULL;
    for (int i = 1; i < 5; i++)
        unsetenv(vars[i]);
    setenv("HOME", home, 1);

    /* explicit path wins, and a missing one is an error, not a fallback */
    setenv("GANEDIT_VGG", missing, 1);
    ge_status s1 = ge_vgg_find(got, sizeof got, present);
    int r1 = s1 == GE_OK && !strcmp(got, present);
    ge_status s2 = ge_vgg_find(got, sizeof got, missing);
    int r2 = s2 == GE_ERR_IO && strstr(ge_errmsg(), missing);
    /* $GANEDIT_VGG set to a missing file: an error naming it and the variable */
    ge_status s3 = ge_vgg_find(got, sizeof got, NULL);
    int r3 = s3 == GE_ERR_IO && strstr(ge_errmsg(), missing) && strstr(ge_errmsg(), "GANEDIT_VGG");
    setenv("GANEDIT_VGG", present, 1);
    ge_status s4 = ge_vgg_find(got, sizeof got, NULL);
    int r4 = s4 == GE_OK && !strcmp(got, present);
    unsetenv("GANEDIT_VGG");
    /* the shared folder's weights/ has the normalised VGG */
    setenv("GANEDIT_SHARED", shared_path("."), 1);
    ge_status s5 = ge_vgg_find(got, sizeof got, NULL);
    int r5 = s5 == GE_OK && strstr(got, "vgg19_normalised_conv3_1");
    /* torchvision's cache comes before the shared folder */
    snprintf(ckpt, sizeof ckpt, "%s/.cache", home);
    int mk = mkdir(home, 0700) == 0 && mkdir(ckpt, 0700) == 0;
    snprintf(ckpt, sizeof ckpt, "%s/.cache/torch", home);
    mk = mk && mkdir(ckpt, 0700) == 0;
    snprintf(ckpt, sizeof ckpt, "%s/.cache/torch/hub", home);
    mk = mk && mkdir(ckpt, 0700) == 0;
    snprintf(ckpt, sizeof ckpt, "%s/.cache/torch/hub/checkpoints", home);
    mk = mk && mkdir(ckpt, 0700) == 0;
    snprintf(ckpt, sizeof ckpt, "%s/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth", home);
    mk = mk && touch(ckpt);
    ge_status s6 = ge_vgg_find(got, sizeof got, NULL);
    int r6 = s6 == GE_OK && !strcmp(got, ckpt);
    /* nothing anywhere: the message says where to get torchvision's file */
    remove(ckpt);
    unsetenv("GANEDIT_SHARED");
    int r7 = 0, r8 = 0;
    if (ok_setup && chdir(dir) == 0) {
        ge_status s7 = ge_vgg_find(got, sizeof got, NULL);
        r7 = s7 == GE_ERR_IO && strstr(ge_errmsg(), "vgg19-dcbb9e9d.pth");
        /* a buffer too small is an error, not a truncated path */
        setenv("GANEDIT_VGG", present, 1);
        char tiny[8];
        r8 = ge_vgg_find(tiny, sizeof tiny, NULL) != GE_OK;
        r7 = chdir(cwd) == 0 && r7;
    }
    for (int i = 0; i < 5; i++)
        env_restore(&saved[i]);
    CHECK(ok_setup && mk, "setup");
    CHECK(r1, "explicit path: %s", ge_status_name(s1));
    CHECK(r2, "explicit missing path: %s: %s", ge_status_name(s2), ge_errmsg());
    CHECK(r3, "$GANEDIT_VGG missing: %s", ge_status_name(s3));
    CHECK(r4, "$GANEDIT_VGG: %s", ge_status_name(s4));
    CHECK(r5, "shared weights: %s (%s)", ge_status_name(s5), got);
    CHECK(r6, "torch cache: %s (%s)", ge_status_name(s6), got);
    CHECK(r7, "nothing found");
    CHECK(r8, "small buffer");
}
