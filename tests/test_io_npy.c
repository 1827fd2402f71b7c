/* test_io_npy.c - NumPy .npy: round trips at ranks 0..8, headers as NumPy
 * writes them (versions 1.0 and 2.0, float64 converted), and refusal of
 * Fortran order, other dtypes, truncation and shapes the file cannot hold. */
#include "io/io.h"
#include "test_io_util.h"

#include <stdint.h>

TEST(io_npy_roundtrip) {
    const char *dir = tmpdir_new();
    static float data[5040];
    for (int i = 0; i < 5040; i++)
        data[i] = (float)i * 0.5f - 7.25f;
    int64_t shapes[][8] = {{0},    {7},      {3, 5}, {2, 3, 4}, {1, 2, 1, 3, 1, 2, 1, 2},
                           {0, 4}, {4, 0, 3}};
    int ranks[] = {0, 1, 2, 3, 8, 2, 3};
    for (int k = 0; k < 7; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/a%d.npy", dir, k);
        CHECK(ge_npy_save(path, data, ranks[k], shapes[k]) == GE_OK, "%s", ge_errmsg());
        size_t n;
        unsigned char *raw = io_slurp(path, &n);
        CHECK(raw, "read back");
        size_t hl = raw[8] | (size_t)raw[9] << 8;
        int ok = n > 10 && !memcmp(raw, "\x93NUMPY\x01\x00", 8) && (10 + hl) % 64 == 0 &&
                 raw[10 + hl - 1] == '\n' && memmem(raw, n, "'descr': '<f4'", 14) &&
                 memmem(raw, n, "'fortran_order': False", 22);
        free(raw);
        CHECK(ok, "rank %d: header not as NumPy writes it", ranks[k]);
        float *got = NULL;
        int nd = -1;
        int64_t shp[8];
        CHECK(ge_npy_load(path, &got, &nd, shp) == GE_OK, "%s", ge_errmsg());
        size_t numel = 1;
        for (int i = 0; i < nd; i++)
            numel *= (size_t)shp[i];
        ok = nd == ranks[k] && !memcmp(shp, shapes[k], sizeof(int64_t) * (size_t)nd) &&
             !memcmp(got, data, numel * 4);
        free(got);
        CHECK(ok, "rank %d: round trip differs", ranks[k]);
        ge_tensors *ts = NULL;
        CHECK(ge_tensors_load(&ts, path) == GE_OK, "%s", ge_errmsg());
        const ge_tensor *t = ge_tensors_find(ts, "array");
        ok = ge_tensors_count(ts) == 1 && t && t->ndim == ranks[k] && t->numel == numel;
        ge_tensors_free(ts);
        CHECK(ok, "ge_tensors_load of a .npy");
    }
    /* the exact header text for a common case */
    char path[4200];
    snprintf(path, sizeof path, "%s/w.npy", dir);
    int64_t s2[2] = {2, 512};
    CHECK(ge_npy_save(path, data, 2, s2) == GE_OK, "%s", ge_errmsg());
    size_t n;
    unsigned char *raw = io_slurp(path, &n);
    int ok = raw && n == 128 + 2 * 512 * 4 &&
             !memcmp(raw + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 512), }", 61);
    free(raw);
    CHECK(ok, "header text differs from NumPy's");
    int64_t neg[1] = {-1};
    CHECK(ge_npy_save(path, data, 1, neg) == GE_ERR_ARG && io_msg_names(path), "negative shape");
    CHECK(ge_npy_save(path, data, 9, shapes[4]) == GE_ERR_ARG, "rank 9 accepted");
}

/* A .npy file with the given version, header dict and data bytes. */
static const char *npy_file(const char *dir, const char *name, int major, const char *dict,
                            const void *data, size_t data_bytes) {
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict), hl = dl + 1;
    while ((pre + hl) % 16)
        hl++;
    size_t n = pre + hl + data_bytes;
    unsigned char *b = malloc(n);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        b[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + pre, dict, dl);
    memset(b + pre + dl, ' ', hl - dl - 1);
    b[pre + hl - 1] = '\n';
    if (data_bytes) memcpy(b + pre + hl, data, data_bytes);
    const char *p = io_write(dir, name, b, n);
    free(b);
    return p;
}

TEST(io_npy_read_variants) {
    const char *dir = tmpdir_new();
    double d[6] = {0.1, -2.5, 1e10, 3.0, -0.0, 7.0};
    float f[6] = {1, 2, 3, 4, 5, 6};
    float *got;
    int nd;
    int64_t shp[8];
    /* version 2.0, float64 converted, Python 2 longs, odd spacing */
    const char *p = npy_file(
        dir, "v2.npy", 2, "{\"descr\":'<f8',  'shape' : (2L, 3L), 'fortran_order':False}", d, 48);
    CHECK(ge_npy_load(p, &got, &nd, shp) == GE_OK, "%s", ge_errmsg());
    int ok = nd == 2 && shp[0] == 2 && shp[1] == 3;
    for (int i = 0; ok && i < 6; i++)
        ok = got[i] == (float)d[i];
    free(got);
    CHECK(ok, "float64 .npy (v2.0) read wrong");
    p = npy_file(dir, "v3.npy", 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", f,
                 24);
    CHECK(ge_npy_load(p, &got, &nd, shp) == GE_OK && nd == 1 && shp[0] == 6 && got[5] == 6.f, "%s",
          ge_errmsg());
    free(got);
}

TEST(io_npy_rejects) {
    const char *dir = tmpdir_new();
    float f[8] = {0};
    struct {
        int major;
        const char *dict;
        size_t bytes;
        ge_status want; /* 0: any error */
    } cases[] = {
        {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, GE_ERR_UNSUPPORTED},
        {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", 24, GE_ERR_UNSUPPORTED},
        {1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 24, GE_ERR_UNSUPPORTED},
        {1, "{'descr': '|u1', 'fortran_order': False, 'shape': (24,), }", 24, GE_ERR_UNSUPPORTED},
        {1, "{'descr': '<f2', 'fortran_order': False, 'shape': (12,), }", 24, GE_ERR_UNSUPPORTED},
        {1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", 24,
         GE_ERR_UNSUPPORTED},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,6), }", 24,
         GE_ERR_UNSUPPORTED},
        {9, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 24, GE_ERR_UNSUPPORTED},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }", 24,
         GE_ERR_FORMAT}, /* short */
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", 24,
         GE_ERR_FORMAT}, /* extra */
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", 24,
         GE_ERR_FORMAT},
        {1,
         "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), "
         "}",
         24, GE_ERR_FORMAT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 24,
         GE_ERR_FORMAT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }", 24, GE_ERR_FORMAT},
        {1, "{'descr': '<f4', 'shape': (6,), }", 24, GE_ERR_FORMAT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1}", 24,
         GE_ERR_FORMAT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } junk", 24, GE_ERR_FORMAT},
        {1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,), }", 24, GE_ERR_FORMAT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': [6], }", 24, GE_ERR_FORMAT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)", 24, GE_ERR_FORMAT},
        {1, "['descr', '<f4']", 24, GE_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.npy", i);
        const char *p = npy_file(dir, name, cases[i].major, cases[i].dict, f, cases[i].bytes);
        float *got = (float *)1;
        int nd;
        int64_t shp[8];
        ge_status s = ge_npy_load(p, &got, &nd, shp);
        CHECK(s != GE_OK && !got, "case %zu accepted", i);
        CHECK(!cases[i].want || s == cases[i].want, "case %zu: status %d, message %s", i, s,
              ge_errmsg());
        CHECK(io_msg_names(p), "case %zu: message '%s' does not name the file", i, ge_errmsg());
        ge_tensors *ts = NULL;
        CHECK(ge_tensors_load(&ts, p) == s && !ts, "case %zu through ge_tensors_load", i);
    }
    /* a valid file cut at every length */
    char path[4200];
    snprintf(path, sizeof path, "%s/full.npy", dir);
    int64_t shp6[2] = {2, 3};
    float six[6] = {1, 2, 3, 4, 5, 6};
    CHECK(ge_npy_save(path, six, 2, shp6) == GE_OK, "%s", ge_errmsg());
    size_t n;
    unsigned char *b = io_slurp(path, &n);
    CHECK(b, "read");
    for (size_t cut = 0; cut < n; cut++) {
        const char *p = io_write(dir, "cut.npy", b, cut);
        float *got = NULL;
        int nd;
        int64_t shp[8];
        ge_status s = ge_npy_load(p, &got, &nd, shp);
        if (s == GE_OK || got || !io_msg_names(p)) {
            free(b);
            free(got);
            CHECK(0, "cut at %zu: status %d, message '%s'", cut, s, ge_errmsg());
        }
    }
    free(b);
}
