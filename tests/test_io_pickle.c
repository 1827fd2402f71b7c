/* test_io_pickle.c - the restricted unpickler: gadget pickles (made by
 * tools/gen_io_vectors.py with Python's pickle, never loaded, and built here
 * opcode by opcode) are refused with GE_ERR_UNSAFE naming the global; every
 * data opcode gives the value Python would; corrupt, truncated and
 * resource-bomb pickles fail with a message and no crash. Pickles are built
 * with a small byte writer rather than string literals, so that no C hex
 * escape can swallow the byte after it. */
#include "io/pickle.h"
#include "test_io_util.h"

#include <stdint.h>

/* ---- A pickle byte writer ------------------------------------------------ */

typedef struct {
    unsigned char *b;
    size_t n, cap;
} pb;

static void pb_raw(pb *p, const void *d, size_t n) {
    if (p->n + n > p->cap) {
        p->cap = (p->n + n) * 2 + 64;
        p->b = realloc(p->b, p->cap);
    }
    memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void pb_op(pb *p, int op) {
    unsigned char c = (unsigned char)op;
    pb_raw(p, &c, 1);
}
static void pb_le(pb *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        pb_op(p, (int)(v >> (8 * i)) & 255);
}
static void pb_s(pb *p, const char *s) {
    pb_raw(p, s, strlen(s));
}
/* BINUNICODE */
static void pb_str(pb *p, const char *s) {
    pb_op(p, 'X');
    pb_le(p, strlen(s), 4);
    pb_s(p, s);
}
static void pb_global(pb *p, const char *mod, const char *name) {
    pb_op(p, 'c');
    pb_s(p, mod);
    pb_op(p, '\n');
    pb_s(p, name);
    pb_op(p, '\n');
}
static void pb_int(pb *p, int v) {
    pb_op(p, 'K');
    pb_op(p, v);
}

static ge_status unpickle(const pb *p, ge_pickle **pk) {
    *pk = NULL;
    return ge_pickle_load(pk, p->b, p->n, NULL, "test.pkl");
}

/* Value of str key k in dict d, or NULL. */
static const ge_pk_value *dget(const ge_pk_value *d, const char *k) {
    if (!d || d->kind != GE_PK_DICT) return NULL;
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const ge_pk_value *key = d->u.seq.v[i];
        if (key->kind == GE_PK_STR && key->u.s.n == strlen(k) && !memcmp(key->u.s.p, k, key->u.s.n))
            return d->u.seq.v[i + 1];
    }
    return NULL;
}

static int is_int(const ge_pk_value *v, int64_t x) {
    return v && v->kind == GE_PK_INT && v->u.i == x;
}

/* ---- Data opcodes -------------------------------------------------------- */

TEST(io_pickle_data_opcodes) {
    pb p = {0};
    pb_op(&p, 0x80), pb_op(&p, 4);
    pb_op(&p, 0x95), pb_le(&p, 8, 8); /* FRAME */
    pb_op(&p, '}'), pb_op(&p, 0x94);  /* memo 0 = the dict */
    pb_op(&p, '(');
    pb_op(&p, 0x8c), pb_op(&p, 3), pb_s(&p, "int"), pb_op(&p, 'J'), pb_le(&p, 0xfffffffeu, 4);
    pb_op(&p, 0x8c), pb_op(&p, 3), pb_s(&p, "neg"), pb_op(&p, 0x8a), pb_op(&p, 2), pb_op(&p, 0),
        pb_op(&p, 0xff);
    pb_op(&p, 0x8c), pb_op(&p, 3), pb_s(&p, "big"), pb_op(&p, 0x8a), pb_op(&p, 9), pb_le(&p, 0, 8),
        pb_op(&p, 1);
    pb_str(&p, "i2"), pb_op(&p, 'M'), pb_le(&p, 0xbeef, 2);
    pb_str(&p, "float"), pb_op(&p, 'G'), pb_op(&p, 0x3f), pb_op(&p, 0xf8),
        pb_le(&p, 0, 6); /* 1.5 */
    pb_str(&p, "t"), pb_op(&p, 0x88);
    pb_str(&p, "f"), pb_op(&p, 0x89);
    pb_str(&p, "none"), pb_op(&p, 'N');
    pb_str(&p, "tup"), pb_int(&p, 1), pb_int(&p, 2), pb_int(&p, 3), pb_op(&p, 0x87);
    pb_str(&p, "lst"), pb_op(&p, ']'), pb_op(&p, '('), pb_int(&p, 7), pb_int(&p, 8), pb_op(&p, 'e'),
        pb_int(&p, 9), pb_op(&p, 'a');
    pb_str(&p, "set"), pb_op(&p, 0x8f), pb_op(&p, '('), pb_int(&p, 4), pb_op(&p, 0x90);
    pb_str(&p, "fro"), pb_op(&p, '('), pb_int(&p, 5), pb_op(&p, 0x91);
    pb_str(&p, "byt"), pb_op(&p, 'C'), pb_op(&p, 2), pb_op(&p, 0), pb_op(&p, 1);
    pb_str(&p, "dup"), pb_int(&p, 6), pb_op(&p, '2'), pb_op(&p, 0x86);
    pb_str(&p, "pop"), pb_int(&p, 10), pb_int(&p, 11), pb_op(&p, '0');
    pb_str(&p, "pmk"), pb_int(&p, 12), pb_op(&p, '('), pb_int(&p, 1), pb_int(&p, 2), pb_op(&p, '1');
    pb_str(&p, "mem"), pb_op(&p, 'U'), pb_op(&p, 2), pb_s(&p, "hi"), pb_op(&p, 'r'),
        pb_le(&p, 77, 4);
    pb_str(&p, "get"), pb_op(&p, 'j'), pb_le(&p, 77, 4);
    pb_str(&p, "self"), pb_op(&p, 'h'), pb_op(&p, 0);
    pb_str(&p, "od"), pb_global(&p, "collections", "OrderedDict"), pb_op(&p, ')'),
        pb_op(&p, 0x81); /* NEWOBJ */
    pb_str(&p, "lst2"), pb_op(&p, '('), pb_int(&p, 1), pb_op(&p, 'l');
    pb_str(&p, "d2"), pb_op(&p, '('), pb_str(&p, "k"), pb_int(&p, 2), pb_op(&p, 'd'),
        pb_op(&p, '}'), pb_op(&p, 'b');
    pb_int(&p, 3), pb_int(&p, 4); /* an int key */
    pb_op(&p, 'u');
    pb_str(&p, "x"), pb_str(&p, "y"), pb_op(&p, 's');
    pb_op(&p, '.');
    pb_s(&p, "trailing bytes after STOP are not read");
    ge_pickle *pk;
    size_t used = 0;
    ge_status s = ge_pickle_load(&pk, p.b, p.n, &used, "ops.pkl");
    size_t stop = p.n - strlen("trailing bytes after STOP are not read");
    if (s != GE_OK) free(p.b);
    CHECK(s == GE_OK, "%s", ge_errmsg());
    const ge_pk_value *d = pk->root, *v;
    int ok = d->kind == GE_PK_DICT && used == stop;
    ok = ok && is_int(dget(d, "int"), -2) && is_int(dget(d, "neg"), -256) &&
         is_int(dget(d, "i2"), 0xbeef);
    v = dget(d, "big");
    ok = ok && v && v->kind == GE_PK_BIGINT && v->u.s.n == 9 && v->u.s.p[8] == 1;
    v = dget(d, "float");
    ok = ok && v && v->kind == GE_PK_FLOAT && v->u.f == 1.5;
    v = dget(d, "t");
    ok = ok && v && v->kind == GE_PK_BOOL && v->u.i == 1 && dget(d, "f")->u.i == 0;
    ok = ok && dget(d, "none") && dget(d, "none")->kind == GE_PK_NONE;
    v = dget(d, "tup");
    ok = ok && v && v->kind == GE_PK_TUPLE && v->u.seq.n == 3 && is_int(v->u.seq.v[2], 3);
    v = dget(d, "lst");
    ok = ok && v && v->kind == GE_PK_LIST && v->u.seq.n == 3 && is_int(v->u.seq.v[0], 7) &&
         is_int(v->u.seq.v[2], 9);
    v = dget(d, "set");
    ok = ok && v && v->kind == GE_PK_LIST && v->u.seq.n == 1 && is_int(v->u.seq.v[0], 4);
    v = dget(d, "fro");
    ok = ok && v && v->kind == GE_PK_LIST && v->u.seq.n == 1 && is_int(v->u.seq.v[0], 5);
    v = dget(d, "byt");
    ok = ok && v && v->kind == GE_PK_BYTES && v->u.s.n == 2 && v->u.s.p[1] == 1;
    v = dget(d, "dup");
    ok = ok && v && v->kind == GE_PK_TUPLE && v->u.seq.n == 2 && v->u.seq.v[0] == v->u.seq.v[1];
    ok = ok && is_int(dget(d, "pop"), 10) && is_int(dget(d, "pmk"), 12);
    v = dget(d, "get");
    ok = ok && v && v->kind == GE_PK_STR && v->u.s.n == 2 && !memcmp(v->u.s.p, "hi", 2) &&
         v == dget(d, "mem");
    ok = ok && dget(d, "self") == d;
    v = dget(d, "od");
    ok = ok && v && v->kind == GE_PK_DICT && v->u.seq.n == 0;
    v = dget(d, "lst2");
    ok = ok && v && v->kind == GE_PK_LIST && v->u.seq.n == 1;
    ok = ok && is_int(dget(dget(d, "d2"), "k"), 2);
    ok = ok && d->u.seq.n == 2 * 24 && is_int(d->u.seq.v[2 * 22], 3);
    v = dget(d, "x");
    ok = ok && v && v->kind == GE_PK_STR && !memcmp(v->u.s.p, "y", 1);
    ge_pickle_free(pk);
    free(p.b); /* after the result: its strings point into these bytes */
    CHECK(ok, "a value differs from what Python's unpickler gives");
}

/* ---- Refused globals ----------------------------------------------------- */

TEST(io_pickle_evil_files) {
    struct {
        const char *file, *name;
    } cases[] = {
        {"io_evil_posix_system.pkl", "posix.system"}, {"io_evil_eval.pkl", "builtins.eval"},
        {"io_evil_popen.pkl", "subprocess.Popen"},    {"io_evil_nested_pickle.pkl", "pickle.loads"},
        {"io_evil_proto5.pkl", "posix.system"},       {"io_evil_zip.pt", "posix.system"},
        {"io_evil_legacy.pt", "posix.system"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = vector_path(cases[i].file);
        ge_tensors *t = NULL;
        ge_status s;
        if (strstr(cases[i].file, ".pkl")) { /* a bare pickle: straight into the unpickler */
            size_t n;
            unsigned char *b = io_slurp(path, &n);
            CHECK(b, "read %s", path);
            ge_pickle *pk = NULL;
            s = ge_pickle_load(&pk, b, n, NULL, path);
            free(b);
            CHECK(!pk, "result returned on failure");
        } else {
            s = ge_tensors_load(&t, path);
        }
        CHECK(s == GE_ERR_UNSAFE && !t, "%s: status %d (%s)", cases[i].file, s, ge_errmsg());
        CHECK(io_msg_names(path) && strstr(ge_errmsg(), cases[i].name),
              "%s: message '%s' should name %s", cases[i].file, ge_errmsg(), cases[i].name);
    }
}

/* The legacy container around a main pickle: magic, version, sys info, obj, keys. */
static pb legacy_file(const pb *main_pickle) {
    pb f = {0};
    static const unsigned char magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                            0x20, 0x6a, 0xa8, 0x50, 0x19};
    pb_op(&f, 0x80), pb_op(&f, 2), pb_op(&f, 0x8a), pb_op(&f, 10), pb_raw(&f, magic, 10),
        pb_op(&f, '.');
    pb_op(&f, 0x80), pb_op(&f, 2), pb_op(&f, 'M'), pb_le(&f, 1001, 2), pb_op(&f, '.');
    pb_op(&f, 0x80), pb_op(&f, 2), pb_op(&f, '}'), pb_str(&f, "little_endian"), pb_op(&f, 0x88),
        pb_op(&f, 's'), pb_op(&f, '.');
    pb_raw(&f, main_pickle->b, main_pickle->n);
    pb_op(&f, 0x80), pb_op(&f, 2), pb_op(&f, ']'), pb_op(&f, '.');
    return f;
}

TEST(io_pickle_refuses_globals) {
    const char *dir = tmpdir_new();
    struct {
        const char *mod, *name;
        int how; /* 0 GLOBAL+REDUCE, 1 STACK_GLOBAL+REDUCE, 2 INST */
    } cases[] = {
        {"os", "system", 0},
        {"posix", "system", 0},
        {"nt", "system", 0},
        {"builtins", "eval", 0},
        {"builtins", "exec", 1},
        {"__builtin__", "getattr", 0},
        {"builtins", "__import__", 1},
        {"subprocess", "Popen", 0},
        {"subprocess", "check_output", 1},
        {"pickle", "loads", 0},
        {"_pickle", "loads", 1},
        {"torch", "load", 0},
        {"torch.storage", "_load_from_bytes", 0},
        {"torch._utils", "_rebuild_tensor_v2x", 0}, /* lookalikes of allowed names */
        {"torch._utils ", "_rebuild_tensor_v2", 0},
        {"collections", "OrderedDict ", 1},
        {"Collections", "OrderedDict", 0},
        {"torch", "Tensor", 0},
        {"numpy.core.multiarray", "_reconstruct", 0},
        {"os", "system", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pb p = {0};
        pb_op(&p, 0x80), pb_op(&p, cases[i].how == 1 ? 4 : 2);
        pb_op(&p, '}'), pb_str(&p, "w");
        if (cases[i].how == 2) {
            pb_op(&p, '('), pb_str(&p, "echo ganedit-test");
            pb_op(&p, 'i'), pb_s(&p, cases[i].mod), pb_op(&p, '\n'), pb_s(&p, cases[i].name),
                pb_op(&p, '\n');
        } else {
            if (cases[i].how == 1) {
                pb_op(&p, 0x8c), pb_op(&p, (int)strlen(cases[i].mod)), pb_s(&p, cases[i].mod);
                pb_op(&p, 0x8c), pb_op(&p, (int)strlen(cases[i].name)), pb_s(&p, cases[i].name);
                pb_op(&p, 0x93);
            } else {
                pb_global(&p, cases[i].mod, cases[i].name);
            }
            pb_str(&p, "echo ganedit-test"), pb_op(&p, 0x85), pb_op(&p, 'R');
        }
        pb_op(&p, 's'), pb_op(&p, '.');
        char want[128];
        snprintf(want, sizeof want, "%s.%s", cases[i].mod, cases[i].name);
        ge_pickle *pk;
        ge_status s = unpickle(&p, &pk);
        int named = strstr(ge_errmsg(), want) != NULL;
        /* and the same inside a legacy checkpoint file */
        pb f = legacy_file(&p);
        const char *path = io_write(dir, "evil.pth", f.b, f.n);
        free(f.b);
        free(p.b);
        CHECK(s == GE_ERR_UNSAFE && !pk && named, "%s (how %d): status %d, '%s'", want,
              cases[i].how, s, ge_errmsg());
        ge_tensors *t = NULL;
        s = ge_tensors_load(&t, path);
        CHECK(s == GE_ERR_UNSAFE && !t && io_msg_names(path) && strstr(ge_errmsg(), want),
              "%s in a file: status %d, '%s'", want, s, ge_errmsg());
    }
}

TEST(io_pickle_refuses_calls) {
    /* opcodes that would build or call something, even with allowed names */
    pb p[6] = {{0}};
    pb_op(&p[0], 0x80), pb_op(&p[0], 2), pb_global(&p[0], "torch", "FloatStorage"),
        pb_op(&p[0], ')'), pb_op(&p[0], 'R'), pb_op(&p[0], '.');
    pb_op(&p[1], 0x80), pb_op(&p[1], 2), pb_global(&p[1], "torch", "FloatStorage"),
        pb_op(&p[1], ')'), pb_op(&p[1], 0x81), pb_op(&p[1], '.');
    pb_op(&p[2], 0x80), pb_op(&p[2], 2), pb_op(&p[2], '('),
        pb_global(&p[2], "collections", "OrderedDict"), pb_op(&p[2], 'o'), pb_op(&p[2], '.');
    pb_op(&p[3], 0x80), pb_op(&p[3], 2), pb_op(&p[3], 0x82), pb_op(&p[3], 1), pb_op(&p[3], '.');
    pb_op(&p[4], 0x80), pb_op(&p[4], 2), pb_op(&p[4], 0x83), pb_le(&p[4], 300, 2),
        pb_op(&p[4], '.');
    pb_op(&p[5], 0x80), pb_op(&p[5], 2), pb_global(&p[5], "torch", "float32"), pb_op(&p[5], ')'),
        pb_op(&p[5], 'R'), pb_op(&p[5], '.');
    for (int i = 0; i < 6; i++) {
        ge_pickle *pk;
        ge_status s = unpickle(&p[i], &pk);
        free(p[i].b);
        CHECK(s == GE_ERR_UNSAFE && !pk && io_msg_names("test.pkl"), "case %d: status %d, '%s'", i,
              s, ge_errmsg());
    }
}

/* ---- Corrupt input and bombs --------------------------------------------- */

TEST(io_pickle_corrupt) {
    static const struct {
        const char *bytes;
        int n;
    } cases[] = {
#define C(s) {s, (int)sizeof(s) - 1}
        C(""),
        C("\x80\x02"),
        C("\x80\x06N."),
        C("\x80\x02."),
        C("\x80\x02Ns."),
        C("\x80\x02]K\x01K\x02s."),
        C("\x80\x02}K\x01"
          "a."),
        C("\x80\x02u."),
        C("\x80\x02(K\x01u."),
        C("\x80\x02}(K\x01u."),
        C("\x80\x02(K\x01"
          "e."),
        C("\x80\x02h\x05."),
        C("\x80\x02Nr\xff\xff\xff\xff."),
        C("\x80\x02X\xff\xff\xff\x7f."),
        C("\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff."),
        C("\x80\x02\x8b\xff\xff\xff\x7f."),
        C("\x80\x02\x8b\xff\xff\xff\xff."),
        C("\x80\x02T\xff\xff\xff\xff."),
        C("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7fN."),
        C("\x80\x02I1\n."),
        C("\x80\x02S'a'\n."),
        C("\x80\x05\x97."),
        C("\x80\x02\xff."),
        C("\x80\x02N)R."),
        C("\x80\x02"
          "ccollections\nOrderedDict\nNR."),
        C("\x80\x02"
          "ccollections\nOrderedDict\n(K\x01tR."),
        C("\x80\x02Nb."),
        C("\x80\x02]}b."),
        C("\x80\x02NQ."),
        C("\x80\x02(X\x06\x00\x00\x00moduletQ."),
        C("\x80\x02"
          "0."),
        C("\x80\x02\x85."),
        C("\x80\x02\x93."),
        C("\x80\x02K\x01K\x02\x93."),
        C("\x80\x02"
          "ctorch\n"),
        C("\x80\x02"
          "ctorch"),
        C("\x80\x02(1."),
        C("\x80\x02"
          "1."),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ge_pickle *pk = (ge_pickle *)1;
        ge_status s = ge_pickle_load(&pk, (const unsigned char *)cases[i].bytes, (size_t)cases[i].n,
                                     NULL, "bad.pkl");
        CHECK(s != GE_OK && !pk && io_msg_names("bad.pkl"), "case %zu: status %d '%s'", i, s,
              ge_errmsg());
        CHECK(s == GE_ERR_FORMAT || s == GE_ERR_UNSUPPORTED, "case %zu: status %d '%s'", i, s,
              ge_errmsg());
    }
    /* overlong global name */
    pb p = {0};
    pb_op(&p, 0x80), pb_op(&p, 2), pb_op(&p, 'c');
    for (int i = 0; i < 400; i++)
        pb_op(&p, 'a');
    pb_s(&p, "\nb\n.");
    ge_pickle *pk;
    ge_status s = unpickle(&p, &pk);
    free(p.b);
    CHECK(s == GE_ERR_FORMAT, "overlong global: %d", s);
}

/* A storage persistent id and a _rebuild_tensor_v2 call with the given parts. */
static void tensor_call(pb *p, const char *key, int numel, int offset, const int *size,
                        const int *stride, int ndim, int nstride, int extra_args) {
    pb_global(p, "torch._utils", "_rebuild_tensor_v2");
    pb_op(p, '('), pb_op(p, '('), pb_str(p, "storage"), pb_global(p, "torch", "FloatStorage"),
        pb_str(p, key), pb_str(p, "cpu"), pb_op(p, 'J'), pb_le(p, (uint32_t)numel, 4),
        pb_op(p, 't'), pb_op(p, 'Q');
    pb_op(p, 'J'), pb_le(p, (uint32_t)offset, 4);
    pb_op(p, '(');
    for (int i = 0; i < ndim; i++)
        pb_op(p, 'J'), pb_le(p, (uint32_t)size[i], 4);
    pb_op(p, 't'), pb_op(p, '(');
    for (int i = 0; i < nstride; i++)
        pb_op(p, 'J'), pb_le(p, (uint32_t)stride[i], 4);
    pb_op(p, 't'), pb_op(p, 0x89), pb_op(p, 'N');
    for (int i = 0; i < extra_args; i++)
        pb_op(p, 'N');
    pb_op(p, 't'), pb_op(p, 'R');
}

TEST(io_pickle_tensor_records) {
    const char *dir = tmpdir_new();
    int size[9] = {2, 3, 1, 1, 1, 1, 1, 1, 1}, stride[9] = {3, 1, 1, 1, 1, 1, 1, 1, 1},
        neg[2] = {-1, 3};
    struct {
        const char *key;
        int numel, offset;
        const int *size, *stride;
        int ndim, nstride, extra;
        ge_status want_pickle, want_file;
    } cases[] = {
        {"0", 6, 0, size, stride, 2, 2, 0, GE_OK, GE_ERR_FORMAT},  /* storage data missing */
        {"0", 6, 0, size, stride, 2, 2, 1, GE_OK, GE_ERR_FORMAT},  /* 7 args (metadata): fine */
        {"0", 6, 0, size, stride, 2, 2, 2, GE_ERR_FORMAT, 0},      /* 8 args */
        {"0", 6, 0, size, stride, 2, 1, 0, GE_ERR_FORMAT, 0},      /* stride length */
        {"0", 6, -1, size, stride, 2, 2, 0, GE_ERR_FORMAT, 0},     /* negative offset */
        {"0", 6, 0, neg, stride, 2, 2, 0, GE_ERR_FORMAT, 0},       /* negative size */
        {"0", 6, 0, size, stride, 9, 9, 0, GE_ERR_UNSUPPORTED, 0}, /* 9 dimensions */
        {"../x", 6, 0, size, stride, 2, 2, 0, GE_ERR_FORMAT, 0},   /* odd storage key */
        {"0", -5, 0, size, stride, 2, 2, 0, GE_ERR_FORMAT, 0},     /* negative numel */
        {"0", 5, 0, size, stride, 2, 2, 0, GE_OK, GE_ERR_FORMAT},  /* outside the storage */
        {"0", 6, 1, size, stride, 2, 2, 0, GE_OK, GE_ERR_FORMAT},  /* offset pushes it out */
        {"0", 6, 0, size, (int[]){1, 2}, 2, 2, 0, GE_OK, GE_ERR_UNSUPPORTED}, /* not contiguous */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pb p = {0};
        pb_op(&p, 0x80), pb_op(&p, 2), pb_op(&p, '}'), pb_str(&p, "w");
        tensor_call(&p, cases[i].key, cases[i].numel, cases[i].offset, cases[i].size,
                    cases[i].stride, cases[i].ndim, cases[i].nstride, cases[i].extra);
        pb_op(&p, 's'), pb_op(&p, '.');
        ge_pickle *pk;
        ge_status s = unpickle(&p, &pk);
        int ok = s == cases[i].want_pickle &&
                 (s != GE_OK || (pk->root->kind == GE_PK_DICT && pk->n_storages == 1));
        ge_pickle_free(pk);
        if (!ok || s != GE_OK) {
            free(p.b);
            CHECK(ok, "case %zu: unpickle status %d '%s'", i, s, ge_errmsg());
            continue;
        }
        /* in a legacy file with no storage records: the walk and checks run */
        pb f = legacy_file(&p);
        free(p.b);
        const char *path = io_write(dir, "t.pth", f.b, f.n);
        free(f.b);
        ge_tensors *t = NULL;
        s = ge_tensors_load(&t, path);
        CHECK(s == cases[i].want_file && !t && io_msg_names(path), "case %zu: file status %d '%s'",
              i, s, ge_errmsg());
    }
}

TEST(io_pickle_bombs) {
    const char *dir = tmpdir_new();
    ge_pickle *pk;
    ge_status s;
    /* 1: MARK nesting */
    pb p = {0};
    pb_op(&p, 0x80), pb_op(&p, 2);
    for (int i = 0; i < 100000; i++)
        pb_op(&p, '(');
    pb_op(&p, '.');
    s = unpickle(&p, &pk);
    free(p.b);
    CHECK(s == GE_ERR_FORMAT && strstr(ge_errmsg(), "MARK"), "MARK bomb: %d '%s'", s, ge_errmsg());
    /* 2: 200000 nested lists: unpickles (no recursion), refused by the walk */
    p = (pb){0};
    pb_op(&p, 0x80), pb_op(&p, 2);
    for (int i = 0; i < 200000; i++)
        pb_op(&p, ']');
    for (int i = 0; i < 199999; i++)
        pb_op(&p, 'a');
    pb_op(&p, '.');
    s = unpickle(&p, &pk);
    ge_pickle_free(pk);
    CHECK(s == GE_OK, "nested lists should unpickle: %s", ge_errmsg());
    pb f = legacy_file(&p);
    free(p.b);
    const char *path = io_write(dir, "deep.pth", f.b, f.n);
    free(f.b);
    ge_tensors *t = NULL;
    s = ge_tensors_load(&t, path);
    CHECK(s == GE_ERR_FORMAT && io_msg_names(path) && strstr(ge_errmsg(), "nested"),
          "deep lists: %d '%s'", s, ge_errmsg());
    /* 3: a list that contains itself */
    p = (pb){0};
    pb_op(&p, 0x80), pb_op(&p, 2), pb_op(&p, ']'), pb_op(&p, 'q'), pb_op(&p, 0), pb_op(&p, 'h'),
        pb_op(&p, 0), pb_op(&p, 'a'), pb_op(&p, '.');
    f = legacy_file(&p);
    free(p.b);
    path = io_write(dir, "cycle.pth", f.b, f.n);
    free(f.b);
    s = ge_tensors_load(&t, path);
    CHECK(s == GE_ERR_FORMAT && io_msg_names(path), "cycle: %d '%s'", s, ge_errmsg());
    /* 4: d_i = {'a': d_(i-1), 'b': d_(i-1)}, 40 levels: 2^40 paths through a tiny pickle */
    p = (pb){0};
    pb_op(&p, 0x80), pb_op(&p, 2), pb_op(&p, '}'), pb_op(&p, 'q'), pb_op(&p, 0);
    for (int i = 1; i <= 40; i++) {
        pb_op(&p, '}'), pb_op(&p, '('), pb_str(&p, "a"), pb_op(&p, 'h'), pb_op(&p, i - 1),
            pb_str(&p, "b"), pb_op(&p, 'h'), pb_op(&p, i - 1), pb_op(&p, 'u'), pb_op(&p, 'q'),
            pb_op(&p, i);
    }
    pb_op(&p, '.');
    f = legacy_file(&p);
    free(p.b);
    path = io_write(dir, "dag.pth", f.b, f.n);
    free(f.b);
    s = ge_tensors_load(&t, path);
    CHECK(s == GE_ERR_FORMAT && io_msg_names(path), "exponential DAG: %d '%s'", s, ge_errmsg());
    /* 5: a stack that only grows */
    p = (pb){0};
    pb_op(&p, 0x80), pb_op(&p, 2);
    for (int i = 0; i < 1100000; i++)
        pb_op(&p, 'N');
    pb_op(&p, '.');
    s = unpickle(&p, &pk);
    free(p.b);
    CHECK(s == GE_ERR_FORMAT && !pk, "stack bomb: %d '%s'", s, ge_errmsg());
    /* 6: one object referenced 5 million times through the memo is fine for the
     * unpickler, but the item count is bounded */
    p = (pb){0};
    pb_op(&p, 0x80), pb_op(&p, 2), pb_op(&p, ']'), pb_op(&p, 'N'), pb_op(&p, 'q'), pb_op(&p, 1),
        pb_op(&p, '0');
    for (int k = 0; k < 5; k++) {
        pb_op(&p, '(');
        for (int i = 0; i < 1000000; i++)
            pb_op(&p, 'h'), pb_op(&p, 1);
        pb_op(&p, 'e');
    }
    pb_op(&p, '.');
    s = unpickle(&p, &pk);
    free(p.b);
    CHECK(s == GE_ERR_FORMAT && !pk && strstr(ge_errmsg(), "items"), "item bomb: %d '%s'", s,
          ge_errmsg());
}

/* Every prefix and many one-byte corruptions of a real data.pkl: never OK
 * for a prefix, never a crash (the ASan build checks the reads). */
TEST(io_pickle_truncation_and_flips) {
    pb p = {0};
    int size[2] = {2, 3}, stride[2] = {3, 1};
    pb_op(&p, 0x80), pb_op(&p, 2), pb_global(&p, "collections", "OrderedDict"), pb_op(&p, ')'),
        pb_op(&p, 'R');
    pb_op(&p, '('), pb_str(&p, "a.weight");
    tensor_call(&p, "0", 6, 0, size, stride, 2, 2, 0);
    pb_str(&p, "b.bias");
    tensor_call(&p, "1", 6, 0, size, stride, 2, 2, 0);
    pb_op(&p, 'u'), pb_op(&p, '.');
    ge_pickle *pk;
    CHECK(unpickle(&p, &pk) == GE_OK && pk->n_storages == 2, "%s", ge_errmsg());
    ge_pickle_free(pk);
    for (size_t cut = 0; cut < p.n; cut++) {
        ge_status s = ge_pickle_load(&pk, p.b, cut, NULL, "cut.pkl");
        if (s == GE_OK || pk || !io_msg_names("cut.pkl")) {
            free(p.b);
            CHECK(0, "cut at %zu: status %d", cut, s);
        }
    }
    unsigned char *b = malloc(p.n);
    int accepted = 0;
    static const unsigned char masks[] = {0x01, 0x80, 0xff, 0x2a};
    for (size_t i = 0; i < p.n; i++)
        for (int m = 0; m < 4; m++) {
            memcpy(b, p.b, p.n);
            b[i] ^= masks[m];
            ge_status s = ge_pickle_load(&pk, b, p.n, NULL, "flip.pkl");
            accepted += s == GE_OK;
            ge_pickle_free(pk);
        }
    free(b);
    free(p.b);
    CHECK(accepted < (int)(p.n * 4), "every corruption accepted");
}
