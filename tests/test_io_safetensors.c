/* test_io_safetensors.c - safetensors write/read round trips, dtype
 * conversion against numpy (tests/vectors/io_dtypes.safetensors), and the
 * reader's refusal of truncated or lying files. */
#include "core/core.h"
#include "io/io.h"
#include "test_io_util.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

TEST(io_safetensors_roundtrip) {
    const char *dir = tmpdir_new();
    float a[24], s0 = -0.f, e[1];
    for (int i = 0; i < 24; i++)
        a[i] = (float)i * 0.37f - 3.f;
    a[3] = bits_f(0x7fc12345u); /* a NaN payload must survive */
    a[4] = bits_f(0x00000001u); /* smallest subnormal */
    a[5] = -INFINITY;
    a[6] = -0.f;
    ge_tensor t[4] = {
        {.name = "layer.0.weight", .ndim = 4, .shape = {2, 3, 2, 2}, .numel = 24, .data = a},
        {.name = "scalar", .ndim = 0, .numel = 1, .data = &s0},
        {.name = "bias/with\"quote", .ndim = 1, .shape = {5}, .numel = 5, .data = a + 7},
        {.name = "empty", .ndim = 2, .shape = {0, 3}, .numel = 0, .data = e},
    };
    const char *meta = "{\"arch\":\"stylegan2\",\"z_dim\":\"512\",\"path\":\"a/b\"}";
    char path[4200];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    CHECK(ge_safetensors_save(path, t, 4, meta) == GE_OK, "%s", ge_errmsg());
    CHECK(count_files(dir) == 1, "temporary file left behind");
    size_t n;
    unsigned char *raw = io_slurp(path, &n);
    CHECK(raw && n >= 8, "cannot read back");
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | raw[i];
    int padded = (8 + hl) % 8 == 0, slash_ok = memmem(raw, n, "a/b", 3) != NULL;
    free(raw);
    CHECK(padded, "header length %llu not padded to 8", (unsigned long long)hl);
    CHECK(slash_ok, "'/' was escaped in the header");
    for (int pass = 0; pass < 2; pass++) {
        ge_tensors *ts = NULL;
        ge_status s = pass ? ge_tensors_load(&ts, path) : ge_safetensors_load(&ts, path);
        CHECK(s == GE_OK, "%s", ge_errmsg());
        int ok = ge_tensors_count(ts) == 4;
        for (int i = 0; ok && i < 4; i++) {
            const ge_tensor *g = ge_tensors_at(ts, i);
            ok = !strcmp(g->name, t[i].name) && g->ndim == t[i].ndim && g->numel == t[i].numel &&
                 !memcmp(g->shape, t[i].shape, sizeof(int64_t) * (size_t)g->ndim) &&
                 (!g->numel || !memcmp(g->data, t[i].data, 4 * g->numel)) &&
                 ((uintptr_t)g->data & 3) == 0;
        }
        const char *m = ge_tensors_metadata(ts);
        int meta_ok = m && strstr(m, "\"z_dim\":\"512\"") && strstr(m, "\"path\":\"a/b\"");
        int found =
            ge_tensors_find(ts, "scalar") == ge_tensors_at(ts, 1) && !ge_tensors_find(ts, "nope");
        ge_tensors_free(ts);
        CHECK(ok, "tensors differ after the round trip (pass %d)", pass);
        CHECK(meta_ok, "metadata lost: %s", m ? m : "(null)");
        CHECK(found, "ge_tensors_find");
    }
    /* no metadata, no tensors: still a valid file */
    CHECK(ge_safetensors_save(path, NULL, 0, NULL) == GE_OK, "%s", ge_errmsg());
    ge_tensors *ts = NULL;
    CHECK(ge_safetensors_load(&ts, path) == GE_OK && ge_tensors_count(ts) == 0 &&
              !ge_tensors_metadata(ts),
          "empty file: %s", ge_errmsg());
    ge_tensors_free(ts);
}

TEST(io_safetensors_save_rejects) {
    const char *dir = tmpdir_new();
    float a[4] = {1, 2, 3, 4};
    char path[4200];
    snprintf(path, sizeof path, "%s/keep.safetensors", dir);
    ge_tensor good = {.name = "a", .ndim = 1, .shape = {4}, .numel = 4, .data = a};
    CHECK(ge_safetensors_save(path, &good, 1, NULL) == GE_OK, "%s", ge_errmsg());
    size_t n0;
    unsigned char *before = io_slurp(path, &n0);
    CHECK(before, "read");
    ge_tensor dup[2] = {good, good};
    ge_tensor badshape = {.name = "b", .ndim = 2, .shape = {2, 3}, .numel = 4, .data = a};
    ge_tensor noname = {.name = "", .ndim = 1, .shape = {4}, .numel = 4, .data = a};
    ge_tensor reserved = {.name = "__metadata__", .ndim = 1, .shape = {4}, .numel = 4, .data = a};
    struct {
        const ge_tensor *t;
        int n;
        const char *meta;
    } cases[] = {
        {dup, 2, NULL},
        {&badshape, 1, NULL},
        {&noname, 1, NULL},
        {&reserved, 1, NULL},
        {&good, 1, "{\"a\": 1}"},      /* metadata values must be strings */
        {&good, 1, "[\"a\"]"},         /* not an object */
        {&good, 1, "{\"a\": \"b\""},   /* not JSON */
        {&good, 1, "{\"a\":\"b\"} x"}, /* junk after */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ge_status s = ge_safetensors_save(path, cases[i].t, cases[i].n, cases[i].meta);
        CHECK(s == GE_ERR_ARG, "case %zu: status %d", i, s);
        CHECK(io_msg_names(path), "case %zu: message '%s' does not name the file", i, ge_errmsg());
    }
    size_t n1;
    unsigned char *after = io_slurp(path, &n1);
    int same = after && n0 == n1 && !memcmp(before, after, n0);
    free(before);
    free(after);
    CHECK(same, "a refused save changed the existing file");
    CHECK(count_files(dir) == 1, "temporary file left behind");
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", dir);
    CHECK(ge_safetensors_save(bad, &good, 1, NULL) == GE_ERR_IO && io_msg_names(bad), "%s",
          ge_errmsg());
}

/* Each "<x>" tensor in io_dtypes.safetensors equals "<x>_expect" (numpy's
 * conversion to float32), bit for bit; NaN only needs to stay NaN. */
TEST(io_safetensors_dtypes) {
    ge_tensors *ts = NULL;
    CHECK(ge_tensors_load(&ts, vector_path("io_dtypes.safetensors")) == GE_OK, "%s", ge_errmsg());
    const char *names[] = {"f16", "bf16", "f64", "i64", "i32", "i16", "i8", "u8", "bool"};
    int checked = 0, nans = 0;
    char err[256] = "";
    for (size_t k = 0; k < sizeof names / sizeof names[0] && !err[0]; k++) {
        char en[64];
        snprintf(en, sizeof en, "%s_expect", names[k]);
        const ge_tensor *t = ge_tensors_find(ts, names[k]), *e = ge_tensors_find(ts, en);
        if (!t || !e || t->numel != e->numel || t->ndim != e->ndim || t->numel == 0) {
            snprintf(err, sizeof err, "%s: missing or shapes differ", names[k]);
            break;
        }
        for (size_t i = 0; i < t->numel; i++) {
            uint32_t a, b;
            memcpy(&a, &t->data[i], 4);
            memcpy(&b, &e->data[i], 4);
            if (isnan(e->data[i]) ? !isnan(t->data[i]) : a != b) {
                snprintf(err, sizeof err, "%s[%zu]: got %.9g (0x%08x), numpy %.9g (0x%08x)",
                         names[k], i, t->data[i], a, e->data[i], b);
                break;
            }
            nans += isnan(e->data[i]) != 0;
            checked++;
        }
    }
    ge_tensors_free(ts);
    CHECK(!err[0], "%s", err);
    CHECK(checked > 50 && nans == 2, "checked %d values, %d NaN", checked, nans);
}

/* A safetensors file made of a header string and a data area of n bytes. */
static const char *st_file(const char *dir, const char *name, const char *header, size_t hlen_claim,
                           size_t data_bytes) {
    size_t hl = strlen(header), n = 8 + hl + data_bytes;
    unsigned char *b = calloc(1, n);
    uint64_t claim = hlen_claim ? hlen_claim : hl;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(claim >> (8 * i));
    memcpy(b + 8, header, hl);
    const char *p = io_write(dir, name, b, n);
    free(b);
    return p;
}

TEST(io_safetensors_bad_headers) {
    const char *dir = tmpdir_new();
    char bomb[40000];
    memset(bomb, '[', 20000);
    memset(bomb + 20000, ']', 19999);
    bomb[0] = '{';
    bomb[39999] = 0;
    memcpy(bomb + 1, "\"a\":", 4);
    struct {
        const char *header;
        size_t claim, data;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 1000,
         8}, /* length > file */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", (size_t)1 << 62, 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 0, 8}, /* bad JSON */
        {"{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]}}", 0, 8}, /* not strict JSON */
        {"[1,2,3]", 0, 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}xx", 0, 8}, /* junk */
        {"{\"a\":{\"dtype\":\"C64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 0,
         16}, /* wrong dtype */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 0, 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 0, 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 0,
         8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 0,
         12}, /* size != shape */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 0,
         8}, /* out of range */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 0, 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 0,
         8}, /* end < begin */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         0, 16}, /* overlap */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         0, 8},                                              /* same bytes */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, 8}, /* no offsets */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 0, 8},
        {"{\"a\":[1,2]}", 0, 8},
        {"{\"__metadata__\":[1]}", 0, 0},
        {bomb, 0, 0}, /* nesting bomb */
        {"{}", 1, 0}, /* header length 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.safetensors", i);
        const char *p = st_file(dir, name, cases[i].header, cases[i].claim, cases[i].data);
        CHECK(p, "write");
        ge_tensors *ts = NULL;
        ge_status s = ge_tensors_load(&ts, p);
        CHECK(s != GE_OK && !ts, "case %zu was accepted", i);
        CHECK(io_msg_names(p), "case %zu: message '%s' does not name the file", i, ge_errmsg());
    }
    /* the same header with valid offsets is accepted (the cases fail for their reason) */
    const char *p = st_file(dir, "ok.safetensors",
                            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                            0, 16);
    ge_tensors *ts = NULL;
    CHECK(ge_tensors_load(&ts, p) == GE_OK && ge_tensors_count(ts) == 2, "%s", ge_errmsg());
    ge_tensors_free(ts);
}

TEST(io_safetensors_truncated) {
    const char *dir = tmpdir_new();
    float a[64];
    for (int i = 0; i < 64; i++)
        a[i] = (float)i;
    ge_tensor t[2] = {{.name = "a", .ndim = 2, .shape = {8, 4}, .numel = 32, .data = a},
                      {.name = "b", .ndim = 1, .shape = {32}, .numel = 32, .data = a + 32}};
    char path[4200];
    snprintf(path, sizeof path, "%s/full.safetensors", dir);
    CHECK(ge_safetensors_save(path, t, 2, "{\"k\":\"v\"}") == GE_OK, "%s", ge_errmsg());
    size_t n;
    unsigned char *b = io_slurp(path, &n);
    CHECK(b, "read");
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | b[i];
    size_t cuts[] = {0,
                     1,
                     7,
                     8,
                     9,
                     8 + (size_t)hl / 2,
                     8 + (size_t)hl - 1,
                     8 + (size_t)hl,
                     8 + (size_t)hl + 1,
                     8 + (size_t)hl + 128,
                     n - 4,
                     n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        const char *p = io_write(dir, "cut.safetensors", b, cuts[i]);
        ge_tensors *ts = NULL;
        ge_status s1 = ge_safetensors_load(&ts, p);
        int named1 = io_msg_names(p);
        ge_status s2 = ge_tensors_load(&ts, p);
        int named2 = io_msg_names(p);
        if (s1 == GE_OK || s2 == GE_OK || !named1 || !named2) {
            free(b);
            CHECK(0, "cut at %zu of %zu: statuses %d %d, message '%s'", cuts[i], n, s1, s2,
                  ge_errmsg());
        }
    }
    free(b);
}

TEST(io_tensors_load_detects) {
    const char *dir = tmpdir_new();
    ge_tensors *ts = NULL;
    const char *p = io_write(dir, "empty.bin", "", 0);
    CHECK(ge_tensors_load(&ts, p) == GE_ERR_FORMAT && io_msg_names(p), "%s", ge_errmsg());
    p = io_write(dir, "text.bin", "hello, world\n", 13);
    CHECK(ge_tensors_load(&ts, p) == GE_ERR_FORMAT && io_msg_names(p), "%s", ge_errmsg());
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", dir);
    CHECK(ge_tensors_load(&ts, missing) == GE_ERR_IO && io_msg_names(missing), "%s", ge_errmsg());
    CHECK(ge_tensors_load(&ts, dir) != GE_OK && !ts, "a directory was accepted");
    /* a safetensors file whose header length starts with 0x80 (like a pickle) */
    char h[200];
    int hl =
        snprintf(h, sizeof h, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
    while ((8 + hl) % 8 || hl < 128)
        h[hl++] = ' ';
    h[hl] = 0;
    CHECK(hl == 128, "test setup: header is %d bytes", hl);
    p = st_file(dir, "x80.st", h, 0, 4);
    CHECK(ge_tensors_load(&ts, p) == GE_OK && ge_tensors_count(ts) == 1, "%s", ge_errmsg());
    ge_tensors_free(ts);
    ge_tensors_free(NULL);
    CHECK(ge_tensors_count(NULL) == 0 && !ge_tensors_at(NULL, 0) && !ge_tensors_metadata(NULL),
          "NULL set");
}

TEST(io_read_file_and_atomic) {
    const char *dir = tmpdir_new();
    const char *p = io_write(dir, "f.txt", "0123456789", 10);
    unsigned char *d;
    size_t n;
    CHECK(ge_read_file(p, &d, &n, 10) == GE_OK && n == 10 && !memcmp(d, "0123456789", 10), "%s",
          ge_errmsg());
    free(d);
    CHECK(ge_read_file(p, &d, &n, 9) != GE_OK && !d && io_msg_names(p), "size cap ignored");
    char q[4200];
    snprintf(q, sizeof q, "%s/out.txt", dir);
    ge_atomic_file af;
    CHECK(ge_atomic_open(&af, q) == GE_OK, "%s", ge_errmsg());
    fputs("half", af.f);
    ge_atomic_abort(&af);
    ge_atomic_abort(&af); /* harmless twice */
    struct stat st;
    CHECK(stat(q, &st) != 0 && count_files(dir) == 1, "abort left a file");
    CHECK(ge_atomic_open(&af, q) == GE_OK, "%s", ge_errmsg());
    fputs("whole", af.f);
    CHECK(ge_atomic_commit(&af) == GE_OK, "%s", ge_errmsg());
    ge_atomic_abort(&af); /* after commit: no effect */
    CHECK(ge_read_file(q, &d, &n, 100) == GE_OK && n == 5 && !memcmp(d, "whole", 5),
          "commit lost data");
    free(d);
    CHECK(count_files(dir) == 2, "temporary file left behind");
}
