/* test_dcgan.c - the DCGAN generators (src/models/dcgan.c) against the course
 * PyTorch models: images and z-gradients of shared/ref's reference files for
 * both layouts, PyTorch checkpoints against their safetensors copies, a
 * finite-difference check of d_z on tiny random DCGANs of both layouts, and
 * the errors for files that are not a DCGAN ganedit can run. */
#include "ganedit.h"
#include "harness.h"
#include "st_write.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------- */

static const ge_tensor *need(const ge_tensors *t, const char *name) {
    const ge_tensor *x = ge_tensors_find(t, name);
    if (!x) fprintf(stderr, "  missing tensor '%s' in reference file\n", name);
    return x;
}

/* Runs a reference io file through generator `wpath`: img within 1e-5 of
 * max|img|, d_z within 1e-4 of max|d_z| and 1e-3 relative L2; backward adds. */
static void check_io(int *test_failed_, const char *wpath, const char *iopath, const char *arch,
                     int z_dim, ge_zdist dist, size_t params) {
    ge_generator *g = NULL;
    ge_tensors *io = NULL;
    float *img = NULL, *dz = NULL;
    ge_status s = ge_generator_load(&g, wpath, NULL);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    const ge_gen_info *info = ge_generator_info(g);
    int ok = strcmp(info->arch, arch) == 0 && info->resolution == 64 && info->z_dim == z_dim &&
             info->w_dim == 0 && info->num_ws == 0 && info->z_dist == dist &&
             info->num_params == params;
    if (!ok) {
        fprintf(stderr, "  info: %s res %d z %d dist %d params %zu\n", info->arch, info->resolution,
                info->z_dim, (int)info->z_dist, info->num_params);
        ge_generator_free(g);
    }
    CHECK(ok, "generator info");
    s = ge_safetensors_load(&io, iopath);
    if (s != GE_OK) ge_generator_free(g);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    const ge_tensor *z = need(io, "z"), *rimg = need(io, "img"), *r = need(io, "r"),
                    *rdz = need(io, "d_z");
    int n = z ? (int)z->shape[0] : 0;
    ok = z && rimg && r && rdz && z->numel == (size_t)n * z_dim &&
         rimg->numel == (size_t)n * 3 * 64 * 64;
    if (ok) {
        img = malloc(rimg->numel * sizeof *img);
        dz = calloc(z->numel, sizeof *dz);
        ok = img && dz;
    }
    double e_img = -1, m_img = 1, e_dz = -1, m_dz = 1, l2 = -1, e_twice = -1;
    if (ok) s = ge_generator_forward(g, img, z->data, GE_LATENT_Z, n, NULL);
    if (ok && s == GE_OK) {
        e_img = max_abs_diff(img, rimg->data, rimg->numel);
        m_img = max_abs(rimg->data, rimg->numel);
        s = ge_generator_backward(g, dz, r->data);
    }
    if (ok && s == GE_OK) {
        e_dz = max_abs_diff(dz, rdz->data, rdz->numel);
        m_dz = max_abs(rdz->data, rdz->numel);
        l2 = rel_l2(dz, rdz->data, rdz->numel);
        /* a second backward adds the same gradient again */
        s = ge_generator_backward(g, dz, r->data);
        if (s == GE_OK) {
            e_twice = 0;
            for (size_t i = 0; i < z->numel; i++) {
                double d = fabs(dz[i] - 2.0 * rdz->data[i]);
                if (!(d <= e_twice)) e_twice = d;
            }
        }
    }
    const char *msg = s == GE_OK ? "" : ge_errmsg();
    free(img);
    free(dz);
    ge_tensors_free(io);
    ge_generator_free(g);
    CHECK(ok, "reference tensors have unexpected shapes");
    CHECK(s == GE_OK, "%s", msg);
    CHECK(e_img <= 1e-5 * m_img, "img: max err %.3g, max |ref| %.3g", e_img, m_img);
    CHECK(e_dz <= 1e-4 * m_dz, "d_z: max err %.3g, max |ref| %.3g", e_dz, m_dz);
    CHECK(l2 <= 1e-3, "d_z: relative L2 error %.3g", l2);
    CHECK(e_twice <= 2e-4 * m_dz, "backward does not add: err %.3g", e_twice);
}

/* ---- reference models -------------------------------------------------------- */

TEST(dcgan_vanilla_io) {
    check_io(test_failed_, shared_path("ref/dcgan_vanilla.safetensors"),
             shared_path("ref/dcgan_vanilla_io.safetensors"), "dcgan-vanilla", 100, GE_ZDIST_NORMAL,
             1099264);
}

TEST(dcgan_deluxe_io) {
    check_io(test_failed_, shared_path("weights/dcgan_grumpy_deluxe.safetensors"),
             shared_path("ref/dcgan_deluxe_io.safetensors"), "dcgan-deluxe", 100, GE_ZDIST_UNIFORM,
             797539);
}

/* The PyTorch checkpoint gives exactly the safetensors copy's image and d_z. */
static void check_same(int *test_failed_, const char *a, const char *b) {
    ge_generator *ga = NULL, *gb = NULL;
    ge_status s = ge_generator_load(&ga, a, NULL);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    s = ge_generator_load(&gb, b, NULL);
    if (s != GE_OK) ge_generator_free(ga);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    int n = 3, zd = ge_generator_info(ga)->z_dim, res = ge_generator_info(ga)->resolution;
    int same_info = zd == ge_generator_info(gb)->z_dim &&
                    strcmp(ge_generator_info(ga)->arch, ge_generator_info(gb)->arch) == 0 &&
                    ge_generator_info(ga)->num_params == ge_generator_info(gb)->num_params;
    size_t ni = (size_t)n * 3 * res * res;
    float *z = malloc((size_t)n * zd * sizeof *z), *ia = malloc(ni * 4), *ib = malloc(ni * 4);
    float *da = calloc((size_t)n * zd, 4), *db = calloc((size_t)n * zd, 4);
    ge_rng rng;
    ge_rng_seed(&rng, 7);
    ge_rng_fill_normal(&rng, z, (size_t)n * zd);
    s = ge_generator_forward(ga, ia, z, GE_LATENT_Z, n, NULL);
    if (s == GE_OK) s = ge_generator_forward(gb, ib, z, GE_LATENT_Z, n, NULL);
    if (s == GE_OK) s = ge_generator_backward(ga, da, ia);
    if (s == GE_OK) s = ge_generator_backward(gb, db, ib);
    int same = s == GE_OK && memcmp(ia, ib, ni * 4) == 0 && memcmp(da, db, (size_t)n * zd * 4) == 0;
    free(z), free(ia), free(ib), free(da), free(db);
    ge_generator_free(ga);
    ge_generator_free(gb);
    CHECK(same_info, "%s and %s load as different models", a, b);
    CHECK(same, "%s and %s give different outputs", a, b);
}

TEST(dcgan_torch_formats) {
    check_same(test_failed_, shared_path("ref/dcgan_vanilla.pt"),
               shared_path("ref/dcgan_vanilla.safetensors"));
    check_same(test_failed_, shared_path("weights/dcgan_grumpy_deluxe.pkl"),
               shared_path("weights/dcgan_grumpy_deluxe.safetensors"));
}

/* ---- tiny random DCGANs: finite differences -------------------------------------- */

/* Writes a tiny DCGAN (z 5, widths 6-4-3 over 3 layers: 16x16 output) with
 * random weights; deluxe adds a bias on the last conv. */
static int write_tiny(const char *path, int deluxe, uint64_t seed) {
    static float w1[5 * 6 * 16], w2[6 * 4 * 16], w3[4 * 3 * 16], b3[3];
    ge_rng r;
    ge_rng_seed(&r, seed);
    ge_rng_fill_normal(&r, w1, sizeof w1 / 4);
    ge_rng_fill_normal(&r, w2, sizeof w2 / 4);
    ge_rng_fill_normal(&r, w3, sizeof w3 / 4);
    ge_rng_fill_normal(&r, b3, 3);
    for (size_t i = 0; i < sizeof w3 / 4; i++)
        w3[i] *= 0.15f; /* keep tanh away from saturation */
    if (!deluxe) {
        st_entry e[] = {{"deconv1.0.weight", 4, {5, 6, 4, 4}, w1},
                        {"deconv2.0.weight", 4, {6, 4, 4, 4}, w2},
                        {"deconv3.0.weight", 4, {4, 3, 4, 4}, w3}};
        return st_write(path, e, 3, NULL);
    }
    st_entry e[] = {{"up_conv1.0.weight", 4, {6, 5, 4, 4}, w1},
                    {"up_conv2.1.weight", 4, {4, 6, 3, 3}, w2},
                    {"up_conv3.1.weight", 4, {3, 4, 3, 3}, w3},
                    {"up_conv3.1.bias", 1, {3}, b3}};
    return st_write(path, e, 4, NULL);
}

typedef struct {
    ge_generator *g;
    const float *r;
    float *img;
    int n;
    size_t ni;
} fd_ctx;

static double fd_loss(void *vctx, const float *z) {
    fd_ctx *c = vctx;
    if (ge_generator_forward(c->g, c->img, z, GE_LATENT_Z, c->n, NULL) != GE_OK) return NAN;
    double s = 0;
    for (size_t i = 0; i < c->ni; i++)
        s += (double)c->img[i] * c->r[i];
    return s;
}

static void check_fd(int *test_failed_, int deluxe) {
    const char *path = deluxe ? "tiny_deluxe.safetensors" : "tiny_vanilla.safetensors";
    char file[4200];
    snprintf(file, sizeof file, "%s/%s", tmpdir_new(), path);
    CHECK(write_tiny(file, deluxe, deluxe ? 21 : 22), "cannot write %s", file);
    ge_generator *g = NULL;
    ge_status s = ge_generator_load(&g, file, NULL);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    const ge_gen_info *info = ge_generator_info(g);
    int info_ok = info->resolution == 16 && info->z_dim == 5 &&
                  info->num_params == (size_t)(5 * 6 * 16 + 6 * 4 * (deluxe ? 9 : 16) +
                                               4 * 3 * (deluxe ? 9 : 16) + (deluxe ? 3 : 0));
    int n = 2;
    size_t nz = (size_t)n * 5, ni = (size_t)n * 3 * 16 * 16;
    float z[10], dz[10] = {0};
    float *img = malloc(ni * 4), *r = malloc(ni * 4);
    ge_rng rng;
    ge_rng_seed(&rng, 99);
    ge_rng_fill_normal(&rng, z, nz);
    ge_rng_fill_normal(&rng, r, ni);
    fd_ctx c = {g, r, img, n, ni};
    s = ge_generator_forward(g, img, z, GE_LATENT_Z, n, NULL);
    if (s == GE_OK) s = ge_generator_backward(g, dz, r);
    int ok = s == GE_OK && fd_check(deluxe ? "deluxe d_z" : "vanilla d_z", fd_loss, &c, z, dz, nz,
                                    nz, 2e-3f, 3e-3, 1e-2);
    double mag = max_abs(dz, nz);
    free(img);
    free(r);
    ge_generator_free(g);
    CHECK(info_ok, "tiny DCGAN info: res %d z %d", info->resolution, info->z_dim);
    CHECK(ok, "finite-difference check failed");
    CHECK(mag > 1e-2, "gradient vanishes (max %.3g): the check would be vacuous", mag);
}

TEST(dcgan_fd_vanilla) {
    check_fd(test_failed_, 0);
}
TEST(dcgan_fd_deluxe) {
    check_fd(test_failed_, 1);
}

/* Batch of 3 equals three batches of 1 (instance norm is per sample), and
 * the buffers follow changes of batch size. */
TEST(dcgan_batch_independent) {
    ge_generator *g = NULL;
    ge_status s =
        ge_generator_load(&g, shared_path("weights/dcgan_grumpy_deluxe.safetensors"), NULL);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    enum { N = 3, NI = 3 * 64 * 64 };
    static float z[N * 100], img[N * NI], one[NI], r[N * NI], dz[N * 100], dz1[100];
    ge_rng rng;
    ge_rng_seed(&rng, 5);
    ge_rng_fill_uniform(&rng, z, N * 100, -1.f, 1.f);
    ge_rng_fill_normal(&rng, r, N * NI);
    memset(dz, 0, sizeof dz);
    s = ge_generator_forward(g, img, z, GE_LATENT_Z, N, NULL);
    if (s == GE_OK) s = ge_generator_backward(g, dz, r);
    double worst_img = 0, worst_dz = 0;
    for (int i = 0; s == GE_OK && i < N; i++) {
        memset(dz1, 0, sizeof dz1);
        s = ge_generator_forward(g, one, z + i * 100, GE_LATENT_Z, 1, NULL);
        if (s == GE_OK) s = ge_generator_backward(g, dz1, r + (size_t)i * NI);
        double e = max_abs_diff(one, img + (size_t)i * NI, NI);
        if (e > worst_img) worst_img = e;
        e = max_abs_diff(dz1, dz + i * 100, 100) / (max_abs(dz1, 100) + 1e-30);
        if (e > worst_dz) worst_dz = e;
    }
    ge_generator_free(g);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    CHECK(worst_img <= 1e-5, "batch vs single image differ by %.3g", worst_img);
    CHECK(worst_dz <= 1e-4, "batch vs single d_z differ by %.3g (relative)", worst_dz);
}

/* ---- errors --------------------------------------------------------------------- */

TEST(dcgan_bad_files) {
    const char *dir = tmpdir_new();
    char path[4200];
    static float buf[6 * 5 * 16];
    ge_generator *g = NULL;

    /* deconv2 with the wrong number of input channels */
    snprintf(path, sizeof path, "%s/bad_shape.safetensors", dir);
    st_entry e1[] = {{"deconv1.0.weight", 4, {5, 6, 4, 4}, buf},
                     {"deconv2.0.weight", 4, {5, 3, 4, 4}, buf}};
    CHECK(st_write(path, e1, 2, NULL), "write");
    ge_status s = ge_generator_load(&g, path, NULL);
    CHECK(s == GE_ERR_SHAPE && !g, "wrong shape: got %s: %s", ge_status_name(s), ge_errmsg());
    CHECK(strstr(ge_errmsg(), "deconv2.0.weight") && strstr(ge_errmsg(), path),
          "message does not name tensor and file: %s", ge_errmsg());

    /* deluxe whose last layer does not make 3 channels */
    snprintf(path, sizeof path, "%s/bad_rgb.safetensors", dir);
    st_entry e2[] = {{"up_conv1.0.weight", 4, {6, 5, 4, 4}, buf},
                     {"up_conv2.1.weight", 4, {4, 6, 3, 3}, buf}};
    CHECK(st_write(path, e2, 2, NULL), "write");
    s = ge_generator_load(&g, path, NULL);
    CHECK(s == GE_ERR_SHAPE && !g, "4-channel output: got %s: %s", ge_status_name(s), ge_errmsg());
    CHECK(strstr(ge_errmsg(), "up_conv2.1.weight"), "message: %s", ge_errmsg());

    /* wrong bias size */
    snprintf(path, sizeof path, "%s/bad_bias.safetensors", dir);
    st_entry e3[] = {{"up_conv1.0.weight", 4, {6, 5, 4, 4}, buf},
                     {"up_conv2.1.weight", 4, {3, 6, 3, 3}, buf},
                     {"up_conv2.1.bias", 1, {4}, buf}};
    CHECK(st_write(path, e3, 3, NULL), "write");
    s = ge_generator_load(&g, path, NULL);
    CHECK(s == GE_ERR_SHAPE && strstr(ge_errmsg(), "up_conv2.1.bias"), "bias: %s: %s",
          ge_status_name(s), ge_errmsg());

    /* one layer only */
    snprintf(path, sizeof path, "%s/one_layer.safetensors", dir);
    st_entry e4[] = {{"deconv1.0.weight", 4, {5, 3, 4, 4}, buf}};
    CHECK(st_write(path, e4, 1, NULL), "write");
    s = ge_generator_load(&g, path, NULL);
    CHECK(s == GE_ERR_FORMAT && strstr(ge_errmsg(), "deconv2.0.weight"), "one layer: %s: %s",
          ge_status_name(s), ge_errmsg());

    /* batch-norm variant */
    snprintf(path, sizeof path, "%s/bn.safetensors", dir);
    st_entry e5[] = {{"deconv1.0.weight", 4, {5, 6, 4, 4}, buf},
                     {"deconv1.1.weight", 1, {6}, buf},
                     {"deconv2.0.weight", 4, {6, 3, 4, 4}, buf}};
    CHECK(st_write(path, e5, 3, NULL), "write");
    s = ge_generator_load(&g, path, NULL);
    CHECK(s == GE_ERR_UNSUPPORTED && strstr(ge_errmsg(), "deconv1.1.weight"), "bn: %s: %s",
          ge_status_name(s), ge_errmsg());

    /* no key ganedit knows */
    snprintf(path, sizeof path, "%s/unknown.safetensors", dir);
    st_entry e6[] = {{"encoder.conv.weight", 4, {5, 6, 4, 4}, buf}};
    CHECK(st_write(path, e6, 1, NULL), "write");
    s = ge_generator_load(&g, path, NULL);
    CHECK(s == GE_ERR_UNSUPPORTED && !g && strstr(ge_errmsg(), path) &&
              strstr(ge_errmsg(), "deconv1.0.weight"),
          "unknown keys: %s: %s", ge_status_name(s), ge_errmsg());
}

TEST(dcgan_call_errors) {
    const char *dir = tmpdir_new();
    char path[4200];
    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    CHECK(write_tiny(path, 0, 3), "write");
    ge_generator *g = NULL;
    ge_status s = ge_generator_load(&g, path, NULL);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    float z[5] = {0}, dz[5] = {0}, img[3 * 16 * 16], w[8];
    ge_status before = ge_generator_backward(g, dz, img);
    ge_status wsp = ge_generator_forward(g, img, w, GE_LATENT_W, 1, NULL);
    ge_gen_call call;
    ge_gen_call_init(&call);
    call.truncation_psi = 0.5f;
    ge_status tr = ge_generator_forward(g, img, z, GE_LATENT_Z, 1, &call);
    ge_status map = ge_generator_mapping(g, w, z, 1, NULL);
    ge_generator_free(g);
    ge_generator_free(NULL);
    CHECK(before == GE_ERR_ARG, "backward before forward: %s", ge_status_name(before));
    CHECK(wsp == GE_ERR_ARG, "w latent: %s", ge_status_name(wsp));
    CHECK(tr == GE_ERR_ARG, "truncation: %s", ge_status_name(tr));
    CHECK(map == GE_ERR_ARG, "mapping: %s", ge_status_name(map));
}
