/* test_io_torch.c - PyTorch checkpoints: every real .pt/.pth/.pkl in
 * ../shared loads as exactly the tensors of its .safetensors twin; the
 * generated checkpoints (zip, protocol 4, legacy) hold every dtype, views
 * into one storage, 0-d and empty tensors and a nested dict; and truncated,
 * corrupt or inconsistent archives fail cleanly with the file named. */
#include "io/io.h"
#include "test_io_util.h"

#include <zip.h>

static int load_pair(const char *a, const char *b, char *why, size_t cap) {
    ge_tensors *x = NULL, *y = NULL;
    if (ge_tensors_load(&x, a) != GE_OK || ge_tensors_load(&y, b) != GE_OK) {
        snprintf(why, cap, "%s", ge_errmsg());
        ge_tensors_free(x);
        return 0;
    }
    int ok = io_same_tensors(x, y, why, cap) && ge_tensors_count(x) > 0;
    if (ok && !ge_tensors_count(x)) snprintf(why, cap, "no tensors");
    ge_tensors_free(x);
    ge_tensors_free(y);
    return ok;
}

TEST(io_torch_matches_safetensors) {
    const char *pairs[][2] = {
        {"weights/dcgan_grumpy_deluxe.pkl", "weights/dcgan_grumpy_deluxe.safetensors"},
        {"weights/vgg19_normalised_conv3_1.pth", "weights/vgg19_normalised_conv3_1.safetensors"},
        {"ref/dcgan_vanilla.pt", "ref/dcgan_vanilla.safetensors"},
        {"ref/stylegan2_g1.pt", "ref/stylegan2_g1.safetensors"},
        {"ref/stylegan2_g2.pt", "ref/stylegan2_g2.safetensors"},
        {"ref/vgg19_tv_conv3_1.pth", "ref/vgg19_tv_conv3_1_legacy.pth"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char why[512] = "";
        int ok = load_pair(shared_path(pairs[i][0]), shared_path(pairs[i][1]), why, sizeof why);
        CHECK(ok, "%s vs %s: %s", pairs[i][0], pairs[i][1], why);
    }
    /* spot checks that the comparison sees real content */
    ge_tensors *t = NULL;
    CHECK(ge_torch_load(&t, shared_path("weights/dcgan_grumpy_deluxe.pkl")) == GE_OK, "%s",
          ge_errmsg());
    const ge_tensor *w = ge_tensors_find(t, "up_conv1.0.weight");
    int ok = w && w->ndim == 4 && w->shape[0] == 256 && w->shape[1] == 100 && w->shape[3] == 4 &&
             !strcmp(ge_tensors_at(t, 0)->name, "up_conv1.0.weight");
    size_t total = 0;
    for (int i = 0; i < ge_tensors_count(t); i++)
        total += ge_tensors_at(t, i)->numel;
    ge_tensors_free(t);
    CHECK(ok, "dcgan deluxe: first tensor wrong");
    CHECK(total == 797539, "dcgan deluxe has %zu parameters, 797539 expected", total);
    CHECK(ge_torch_load(&t, shared_path("ref/vgg19_tv_conv3_1_legacy.pth")) == GE_OK, "%s",
          ge_errmsg());
    ok = ge_tensors_count(t) == 10 && !strcmp(ge_tensors_at(t, 9)->name, "features.10.bias") &&
         ge_tensors_at(t, 8)->shape[0] == 256 && ge_tensors_at(t, 8)->shape[1] == 128;
    ge_tensors_free(t);
    CHECK(ok, "vgg19 legacy: names or shapes wrong");
}

/* The generated checkpoint, in three containers, equals io_sd_expect. */
TEST(io_torch_checkpoint_vectors) {
    const char *files[] = {"io_sd_zip.pt", "io_sd_proto4.pt", "io_sd_legacy.pt"};
    ge_tensors *e = NULL;
    CHECK(ge_tensors_load(&e, vector_path("io_sd_expect.safetensors")) == GE_OK, "%s", ge_errmsg());
    for (int k = 0; k < 3; k++) {
        ge_tensors *t = NULL;
        ge_status s = ge_tensors_load(&t, vector_path(files[k]));
        char why[256] = "";
        int ok = s == GE_OK && io_same_tensors(t, e, why, sizeof why);
        const ge_tensor *nb = ge_tensors_find(t, "G_ema.bn.num_batches_tracked"),
                        *em = ge_tensors_find(t, "G_ema.empty"),
                        *vb = ge_tensors_find(t, "G_ema.view_b");
        int detail = nb && nb->ndim == 0 && nb->data[0] == 12345.f && em && em->ndim == 2 &&
                     em->shape[0] == 0 && em->shape[1] == 4 && em->numel == 0 && vb &&
                     vb->shape[0] == 7 && ge_tensors_count(t) == 10 && !ge_tensors_find(t, "step");
        if (s != GE_OK) snprintf(why, sizeof why, "%s", ge_errmsg());
        ge_tensors_free(t);
        if (!ok || !detail) ge_tensors_free(e);
        CHECK(ok, "%s: %s", files[k], why);
        CHECK(detail, "%s: int64 / empty / view / nesting details wrong", files[k]);
    }
    ge_tensors_free(e);
}

TEST(io_torch_noncontiguous) {
    ge_tensors *t = NULL;
    const char *p = vector_path("io_noncontig.pt");
    ge_status s = ge_tensors_load(&t, p);
    CHECK(s == GE_ERR_UNSUPPORTED && !t, "status %d", s);
    CHECK(io_msg_names(p) && strstr(ge_errmsg(), "contiguous") && strstr(ge_errmsg(), "'w'"),
          "message: %s", ge_errmsg());
}

/* Loads every prefix of a file at the given cut points: all must fail, name the file. */
static int cuts_fail(const char *src, const char *dir, const char *name, const size_t *cuts,
                     size_t ncuts, char *why, size_t cap) {
    size_t n;
    unsigned char *b = io_slurp(src, &n);
    if (!b) {
        snprintf(why, cap, "cannot read %s", src);
        return 0;
    }
    for (size_t i = 0; i < ncuts; i++) {
        size_t cut = cuts[i] < n ? cuts[i] : n - 1;
        const char *p = io_write(dir, name, b, cut);
        ge_tensors *t = NULL;
        ge_status s = p ? ge_tensors_load(&t, p) : GE_OK;
        if (s == GE_OK || t || !io_msg_names(p)) {
            snprintf(why, cap, "%s cut at %zu of %zu: status %d, message '%s'", src, cut, n, s,
                     ge_errmsg());
            ge_tensors_free(t);
            free(b);
            return 0;
        }
    }
    free(b);
    return 1;
}

TEST(io_torch_truncated) {
    const char *dir = tmpdir_new();
    char why[1024] = "";
    /* the small generated files: every 7th length, so all regions are hit */
    const char *small[] = {"io_sd_zip.pt", "io_sd_legacy.pt", "io_sd_proto4.pt"};
    for (int k = 0; k < 3; k++) {
        size_t n;
        unsigned char *b = io_slurp(vector_path(small[k]), &n);
        CHECK(b, "read %s", small[k]);
        free(b);
        size_t *cuts = malloc(sizeof *cuts * (n / 7 + 2));
        size_t nc = 0;
        for (size_t c = 0; c < n; c += 7)
            cuts[nc++] = c;
        cuts[nc++] = n - 1;
        int ok = cuts_fail(vector_path(small[k]), dir, "cut.pt", cuts, nc, why, sizeof why);
        free(cuts);
        CHECK(ok, "%s", why);
    }
    /* the real files at a few points: header, first pickle, storages, last byte */
    const char *real[] = {"weights/dcgan_grumpy_deluxe.pkl",
                          "weights/vgg19_normalised_conv3_1.pth"};
    size_t cuts[] = {1, 3, 30, 200, 1200, 4000, 1000000, 2200000, 3193000, 0x7fffffff};
    for (int k = 0; k < 2; k++)
        CHECK(cuts_fail(shared_path(real[k]), dir, "cut.pkl", cuts, sizeof cuts / sizeof cuts[0],
                        why, sizeof why),
              "%s", why);
}

/* Flips one byte inside the named member of a (stored, uncompressed) zip. */
static int flip_in_member(unsigned char *b, size_t n, const char *member, size_t at) {
    size_t ml = strlen(member);
    for (size_t i = 0; i + 30 + ml < n; i++)
        if (!memcmp(b + i, "PK\x03\x04", 4) && (size_t)(b[i + 26] | b[i + 27] << 8) == ml &&
            !memcmp(b + i + 30, member, ml)) {
            size_t start = i + 30 + ml + (b[i + 28] | (size_t)b[i + 29] << 8);
            if (start + at >= n) return 0;
            b[start + at] ^= 0x5a;
            return 1;
        }
    return 0;
}

TEST(io_torch_corrupt_zip) {
    const char *dir = tmpdir_new();
    size_t n;
    unsigned char *orig = io_slurp(vector_path("io_sd_zip.pt"), &n);
    CHECK(orig, "read");
    unsigned char *b = malloc(n);
    struct {
        const char *member;
        size_t at;
    } flips[] = {{"io_sd_zip/data/0", 5}, {"io_sd_zip/data.pkl", 40}, {"io_sd_zip/data.pkl", 2}};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(b, orig, n);
        int found = flip_in_member(b, n, flips[i].member, flips[i].at);
        const char *p = io_write(dir, "flip.pt", b, n);
        ge_tensors *t = NULL;
        ge_status s = ge_tensors_load(&t, p);
        if (!found || s == GE_OK || !io_msg_names(p)) {
            free(b);
            free(orig);
            ge_tensors_free(t);
            CHECK(0, "flip %zu (member found %d): status %d, '%s'", i, found, s, ge_errmsg());
        }
    }
    free(b);
    free(orig);
}

/* Builds a zip with libzip from (name, bytes) members. */
static const char *make_zip(const char *dir, const char *name, const char *const *names,
                            const void *const *data, const size_t *sizes, int n) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    remove(path);
    int err;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!z) return NULL;
    for (int i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(z, data[i], sizes[i], 0);
        if (!s || zip_file_add(z, names[i], s, ZIP_FL_ENC_UTF_8) < 0) {
            zip_source_free(s);
            zip_discard(z);
            return NULL;
        }
        zip_set_file_compression(z, (zip_uint64_t)i, ZIP_CM_STORE, 0);
    }
    return zip_close(z) == 0 ? path : NULL;
}

/* data.pkl of {'w': FloatStorage key '0', numel 4, shape (4,)} */
static const unsigned char PKL_W[] = "\x80\x02"
                                     "}q\x00"
                                     "X\x01\x00\x00\x00"
                                     "w"
                                     "q\x01"
                                     "ctorch._utils\n_rebuild_tensor_v2\n"
                                     "q\x02"
                                     "(("
                                     "X\x07\x00\x00\x00"
                                     "storage"
                                     "q\x03"
                                     "ctorch\nFloatStorage\n"
                                     "q\x04"
                                     "X\x01\x00\x00\x00"
                                     "0"
                                     "q\x05"
                                     "X\x03\x00\x00\x00"
                                     "cpu"
                                     "q\x06"
                                     "K\x04"
                                     "t"
                                     "q\x07"
                                     "Q"
                                     "K\x00"
                                     "K\x04"
                                     "\x85"
                                     "K\x01"
                                     "\x85"
                                     "\x89"
                                     "ccollections\nOrderedDict\n"
                                     ")R"
                                     "t"
                                     "q\x08"
                                     "R"
                                     "q\x09"
                                     "s.";

TEST(io_torch_zip_members) {
    const char *dir = tmpdir_new();
    float four[4] = {1, 2, 3, 4}, three[3] = {1, 2, 3};
    size_t pl = sizeof PKL_W - 1;
    /* the valid archive first, so that the refusals below are for their reason */
    const char *names[] = {"arch/data.pkl", "arch/data/0", "arch/byteorder"};
    const void *data[] = {PKL_W, four, "little"};
    size_t sizes[] = {pl, 16, 6};
    const char *p = make_zip(dir, "ok.pt", names, data, sizes, 3);
    CHECK(p, "zip");
    ge_tensors *t = NULL;
    CHECK(ge_tensors_load(&t, p) == GE_OK && ge_tensors_count(t) == 1 &&
              ge_tensors_at(t, 0)->data[3] == 4.f,
          "%s", ge_errmsg());
    ge_tensors_free(t);
    struct {
        const char *names[3];
        const void *data[3];
        size_t sizes[3];
        int n;
        ge_status want;
    } cases[] = {
        {{"arch/data.pkl", "arch/data/0"},
         {PKL_W, three},
         {pl, 12},
         2,
         GE_ERR_FORMAT},                                      /* short storage */
        {{"arch/data.pkl"}, {PKL_W}, {pl}, 1, GE_ERR_FORMAT}, /* storage missing */
        {{"arch/data/0"}, {four}, {16}, 1, GE_ERR_FORMAT},    /* no data.pkl */
        {{"arch/data.pkl", "arch/data/0", "arch/byteorder"},
         {PKL_W, four, "big"},
         {pl, 16, 3},
         3,
         GE_ERR_UNSUPPORTED},
        {{"arch/constants.pkl"}, {PKL_W}, {pl}, 1, GE_ERR_UNSUPPORTED}, /* TorchScript */
        {{"arch/data.pkl", "arch/data/0"},
         {"\x80\x02}q\x00.", four},
         {6, 16},
         2,
         GE_OK}, /* empty dict: ok */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        p = make_zip(dir, "case.pt", cases[i].names, cases[i].data, cases[i].sizes, cases[i].n);
        CHECK(p, "zip %zu", i);
        ge_status s = ge_tensors_load(&t, p);
        int cnt = ge_tensors_count(t);
        ge_tensors_free(t);
        t = NULL;
        CHECK(s == cases[i].want, "case %zu: status %d, want %d: %s", i, s, cases[i].want,
              ge_errmsg());
        CHECK(s == GE_OK ? cnt == 0 : io_msg_names(p), "case %zu: '%s'", i, ge_errmsg());
    }
}
