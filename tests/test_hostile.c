/* test_hostile.c - files from strangers (issue 8): what tests/test_io_*.c
 * does not already pin down.
 *
 *  - Pickle gadgets in every place a real checkpoint has room for one (a
 *    dict value or key, a tensor's hooks or metadata argument, a storage's
 *    persistent id, an OrderedDict's BUILD state, deep inside nested lists,
 *    after valid tensors, the legacy format's header pickles), reached by
 *    GLOBAL, by STACK_GLOBAL from memoised strings and by NEWOBJ_EX: each is
 *    refused with GE_ERR_UNSAFE naming the global, bare and inside zip and
 *    legacy checkpoints that load when the gadget is left out.
 *  - A pickle inside a pickle stays inert bytes unless something would call
 *    pickle.loads on it, which is refused.
 *  - Files that ask for terabytes (a storage's element count in a zip or a
 *    legacy file, a zip member's claimed size, a deflate "bomb" claim) and
 *    shape, stride and offset overflows are format errors, refused before
 *    any allocation of that size; a small PNG or JPEG whose header claims
 *    16000x16000 pixels is refused, not padded out to 3 GB of floats.
 *  - Weights holding NaN or Inf are refused at load (GE_ERR_NUMERIC naming
 *    the tensor) by the generator and VGG loaders.
 *  - Every input the fuzzers crashed on (tests/vectors/fuzz_regress/) runs
 *    clean through its reader.
 *
 * Pickles are written opcode by opcode with a small byte writer. */
#include "io/pickle.h"
#include "test_io_util.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <zip.h>
#include <zlib.h>

/* ---- A pickle byte writer ---------------------------------------------- */

typedef struct {
    unsigned char *b;
    size_t n, cap;
} hb;

static void hb_raw(hb *p, const void *d, size_t n) {
    if (p->n + n > p->cap) {
        p->cap = (p->n + n) * 2 + 64;
        p->b = realloc(p->b, p->cap);
    }
    memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void hb_op(hb *p, int op) {
    unsigned char c = (unsigned char)op;
    hb_raw(p, &c, 1);
}
static void hb_le(hb *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        hb_op(p, (int)(v >> (8 * i)) & 255);
}
static void hb_s(hb *p, const char *s) {
    hb_raw(p, s, strlen(s));
}
static void hb_str(hb *p, const char *s) { /* BINUNICODE */
    hb_op(p, 'X');
    hb_le(p, strlen(s), 4);
    hb_s(p, s);
}
static void hb_global(hb *p, const char *mod, const char *name) {
    hb_op(p, 'c');
    hb_s(p, mod);
    hb_op(p, '\n');
    hb_s(p, name);
    hb_op(p, '\n');
}
static void hb_long(hb *p, int64_t v) { /* LONG1, 8 bytes */
    hb_op(p, 0x8a);
    hb_op(p, 8);
    hb_le(p, (uint64_t)v, 8);
}

/* ---- Gadgets and where they hide ---------------------------------------- */

static const struct {
    const char *mod, *name;
} gadgets[] = {
    {"os", "system"},                   {"posix", "execv"},
    {"subprocess", "run"},              {"builtins", "exec"},
    {"builtins", "open"},               {"builtins", "compile"},
    {"builtins", "getattr"},            {"copyreg", "_reconstructor"},
    {"functools", "partial"},           {"operator", "attrgetter"},
    {"operator", "methodcaller"},       {"runpy", "_run_code"},
    {"code", "InteractiveInterpreter"}, {"ctypes", "CDLL"},
    {"shutil", "rmtree"},               {"webbrowser", "open"},
    {"types", "CodeType"},              {"types", "FunctionType"},
    {"marshal", "loads"},               {"pickle", "loads"},
    {"dill", "loads"},                  {"importlib", "import_module"},
    {"pty", "spawn"},                   {"socket", "socket"},
    {"torch", "load"},                  {"torch.serialization", "load"},
    {"torch._tensor", "_rebuild_from_type_v2"}, /* calls its first argument */
    {"torch.nn.modules.linear", "Linear"},      /* a whole pickled model */
    {"numpy", "load"},                  {"torch", "_utils._rebuild_tensor_v2"}, /* dotted name */
};
#define N_GADGETS (int)(sizeof gadgets / sizeof gadgets[0])

enum { HOW_GLOBAL, HOW_MEMO_STACK_GLOBAL, HOW_NEWOBJ_EX, N_HOW };

/* Pushes gadget g called on "echo ganedit-hostile": one value on the stack. */
static void gadget(hb *p, int g, int how) {
    const char *m = gadgets[g].mod, *n = gadgets[g].name;
    if (how == HOW_MEMO_STACK_GLOBAL) {
        /* the names are memoised early, popped, and fetched back for the call */
        hb_op(p, 0x8c), hb_op(p, (int)strlen(m)), hb_s(p, m), hb_op(p, 'r'), hb_le(p, 900, 4),
            hb_op(p, '0');
        hb_op(p, 0x8c), hb_op(p, (int)strlen(n)), hb_s(p, n), hb_op(p, 'r'), hb_le(p, 901, 4),
            hb_op(p, '0');
        hb_op(p, 'j'), hb_le(p, 900, 4), hb_op(p, 'j'), hb_le(p, 901, 4), hb_op(p, 0x93);
    } else {
        hb_global(p, m, n);
    }
    hb_str(p, "echo ganedit-hostile"), hb_op(p, 0x85);
    if (how == HOW_NEWOBJ_EX)
        hb_op(p, '}'), hb_op(p, 0x92);
    else
        hb_op(p, 'R');
}

enum {
    POS_NONE = -1, /* no gadget: the checkpoint must load */
    POS_VALUE,     /* {'evil': G} */
    POS_KEY,       /* {G: 1} */
    POS_HOOKS,     /* _rebuild_tensor_v2(..., backward_hooks=G) */
    POS_METADATA,  /* _rebuild_tensor_v2(..., metadata=G) */
    POS_LOCATION,  /* ('storage', FloatStorage, '0', G, 4) */
    POS_STYPE,     /* ('storage', G, '0', 'cpu', 4) */
    POS_BUILD,     /* OrderedDict BUILD state {'_metadata': G} */
    POS_DEEP,      /* [[[... G ...]]], 40 levels */
    POS_PARAM,     /* _rebuild_parameter(tensor, True, G) */
    N_POS
};

/* A tensor record (4 floats of storage '0'); the gadget goes in at `pos`
 * when it is one of the tensor's places. */
static void tensor(hb *p, int pos, int g, int how) {
    if (pos == POS_PARAM) hb_global(p, "torch._utils", "_rebuild_parameter"), hb_op(p, '(');
    hb_global(p, "torch._utils", "_rebuild_tensor_v2");
    hb_op(p, '('), hb_op(p, '('), hb_str(p, "storage");
    if (pos == POS_STYPE)
        gadget(p, g, how);
    else
        hb_global(p, "torch", "FloatStorage");
    hb_str(p, "0");
    if (pos == POS_LOCATION)
        gadget(p, g, how);
    else
        hb_str(p, "cpu");
    hb_op(p, 'K'), hb_op(p, 4), hb_op(p, 't'), hb_op(p, 'Q');
    hb_op(p, 'K'), hb_op(p, 0), hb_op(p, 'K'), hb_op(p, 4), hb_op(p, 0x85), hb_op(p, 'K'),
        hb_op(p, 1), hb_op(p, 0x85), hb_op(p, 0x89);
    if (pos == POS_HOOKS)
        gadget(p, g, how);
    else
        hb_global(p, "collections", "OrderedDict"), hb_op(p, ')'), hb_op(p, 'R');
    if (pos == POS_METADATA) gadget(p, g, how);
    hb_op(p, 't'), hb_op(p, 'R');
    if (pos == POS_PARAM) hb_op(p, 0x88), gadget(p, g, how), hb_op(p, 't'), hb_op(p, 'R');
}

/* The main pickle of a checkpoint {'w': tensor, ...} with gadget g at pos. */
static hb state_dict(int pos, int g, int how) {
    hb p = {0};
    hb_op(&p, 0x80), hb_op(&p, 2);
    hb_global(&p, "collections", "OrderedDict"), hb_op(&p, ')'), hb_op(&p, 'R');
    hb_op(&p, '('), hb_str(&p, "w");
    tensor(&p, pos, g, how);
    if (pos == POS_VALUE) hb_str(&p, "evil"), gadget(&p, g, how);
    if (pos == POS_KEY) gadget(&p, g, how), hb_op(&p, 'K'), hb_op(&p, 1);
    if (pos == POS_DEEP) {
        hb_str(&p, "deep");
        for (int i = 0; i < 40; i++)
            hb_op(&p, ']'), hb_op(&p, '(');
        gadget(&p, g, how);
        for (int i = 0; i < 40; i++)
            hb_op(&p, 'e');
    }
    hb_op(&p, 'u');
    if (pos == POS_BUILD) {
        hb_op(&p, '}'), hb_str(&p, "_metadata"), gadget(&p, g, how), hb_op(&p, 's'), hb_op(&p, 'b');
    }
    hb_op(&p, '.');
    return p;
}

/* A legacy checkpoint around main pickle m: storage '0' holds 1, 2, 3, 4.
 * bad_header (1..4) puts gadget g into that header pickle instead. */
static hb legacy(const hb *m, int bad_header, int g) {
    static const unsigned char magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                            0x20, 0x6a, 0xa8, 0x50, 0x19};
    hb f = {0};
    hb_op(&f, 0x80), hb_op(&f, 2);
    if (bad_header == 1) gadget(&f, g, HOW_GLOBAL), hb_op(&f, '0');
    hb_op(&f, 0x8a), hb_op(&f, 10), hb_raw(&f, magic, 10), hb_op(&f, '.');
    hb_op(&f, 0x80), hb_op(&f, 2);
    if (bad_header == 2) gadget(&f, g, HOW_GLOBAL), hb_op(&f, '0');
    hb_op(&f, 'M'), hb_le(&f, 1001, 2), hb_op(&f, '.');
    hb_op(&f, 0x80), hb_op(&f, 2), hb_op(&f, '}'), hb_str(&f, "little_endian"), hb_op(&f, 0x88),
        hb_op(&f, 's');
    if (bad_header == 3) hb_str(&f, "type_sizes"), gadget(&f, g, HOW_GLOBAL), hb_op(&f, 's');
    hb_op(&f, '.');
    hb_raw(&f, m->b, m->n);
    hb_op(&f, 0x80), hb_op(&f, 2), hb_op(&f, ']'), hb_op(&f, '('), hb_str(&f, "0");
    if (bad_header == 4) gadget(&f, g, HOW_GLOBAL);
    hb_op(&f, 'e'), hb_op(&f, '.');
    float data[4] = {1, 2, 3, 4};
    hb_le(&f, 4, 8);
    hb_raw(&f, data, sizeof data);
    return f;
}

/* Writes a zip checkpoint: archive/data.pkl = pkl, archive/data/<key> = data. */
static const char *zip_ckpt(const char *dir, const char *name, const hb *pkl, const char *key,
                            const void *data, size_t n, int deflate) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    remove(path);
    int err;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!z) return NULL;
    char member[256];
    snprintf(member, sizeof member, "archive/data/%s", key);
    const char *names[3] = {"archive/data.pkl", member, "archive/byteorder"};
    const void *bytes[3] = {pkl->b, data, "little"};
    size_t sizes[3] = {pkl->n, n, 6};
    for (int i = 0; i < 3; i++) {
        zip_source_t *s = zip_source_buffer(z, bytes[i], sizes[i], 0);
        if (!s || zip_file_add(z, names[i], s, 0) < 0) {
            zip_source_free(s);
            zip_discard(z);
            return NULL;
        }
        zip_set_file_compression(z, (zip_uint64_t)i,
                                 deflate && i == 1 ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
    }
    return zip_close(z) == 0 ? path : NULL;
}

static int names_global(int g) {
    char want[160];
    snprintf(want, sizeof want, "%s.%s", gadgets[g].mod, gadgets[g].name);
    return strstr(ge_errmsg(), want) != NULL;
}

/* ---- Gadgets ----------------------------------------------------------- */

TEST(hostile_gadgets_everywhere_bare) {
    for (int pos = 0; pos < N_POS; pos++)
        for (int g = 0; g < N_GADGETS; g++)
            for (int how = 0; how < N_HOW; how++) {
                hb p = state_dict(pos, g, how);
                ge_pickle *pk = (ge_pickle *)1;
                ge_status s = ge_pickle_load(&pk, p.b, p.n, NULL, "hostile.pkl");
                free(p.b);
                CHECK(s == GE_ERR_UNSAFE && !pk && names_global(g) && io_msg_names("hostile.pkl"),
                      "%s.%s at place %d (how %d): status %d '%s'", gadgets[g].mod,
                      gadgets[g].name, pos, how, s, ge_errmsg());
            }
}

TEST(hostile_gadgets_in_checkpoints) {
    const char *dir = tmpdir_new();
    float data[4] = {1, 2, 3, 4};
    /* without a gadget both containers load: the refusals below are the gadget's */
    hb p = state_dict(POS_NONE, 0, 0);
    hb f = legacy(&p, 0, 0);
    const char *lp = io_write(dir, "ok.pth", f.b, f.n);
    const char *zp = zip_ckpt(dir, "ok.pt", &p, "0", data, sizeof data, 0);
    free(f.b);
    free(p.b);
    CHECK(lp && zp, "write");
    for (int k = 0; k < 2; k++) {
        ge_tensors *t = NULL;
        ge_status s = ge_tensors_load(&t, k ? zp : lp);
        const ge_tensor *w = ge_tensors_find(t, "w");
        int ok = s == GE_OK && ge_tensors_count(t) == 1 && w && w->numel == 4 && w->data[3] == 4.f;
        ge_tensors_free(t);
        CHECK(ok, "clean %s: %s", k ? "zip" : "legacy", ge_errmsg());
    }
    /* every place, three gadgets, both containers */
    static const int some[3] = {0, 19, 26}; /* os.system, pickle.loads, _rebuild_from_type_v2 */
    for (int pos = 0; pos < N_POS; pos++)
        for (int i = 0; i < 3; i++) {
            int g = some[i], how = (pos + i) % N_HOW;
            p = state_dict(pos, g, how);
            f = legacy(&p, 0, 0);
            lp = io_write(dir, "evil.pth", f.b, f.n);
            free(f.b);
            ge_tensors *t = NULL;
            ge_status s = ge_tensors_load(&t, lp);
            int ok = s == GE_ERR_UNSAFE && !t && io_msg_names(lp) && names_global(g);
            if (!ok) free(p.b);
            CHECK(ok, "legacy, place %d, %s.%s: %d '%s'", pos, gadgets[g].mod, gadgets[g].name, s,
                  ge_errmsg());
            zp = zip_ckpt(dir, "evil.pt", &p, "0", data, sizeof data, 0);
            free(p.b);
            CHECK(zp, "zip");
            s = ge_tensors_load(&t, zp);
            CHECK(s == GE_ERR_UNSAFE && !t && io_msg_names(zp) && names_global(g),
                  "zip, place %d, %s.%s: %d '%s'", pos, gadgets[g].mod, gadgets[g].name, s,
                  ge_errmsg());
        }
    /* the legacy format's four header pickles */
    for (int h = 1; h <= 4; h++) {
        p = state_dict(POS_NONE, 0, 0);
        f = legacy(&p, h, 0);
        free(p.b);
        lp = io_write(dir, "evil_header.pth", f.b, f.n);
        free(f.b);
        ge_tensors *t = NULL;
        ge_status s = ge_tensors_load(&t, lp);
        CHECK(s == GE_ERR_UNSAFE && !t && io_msg_names(lp) && names_global(0),
              "header pickle %d: %d '%s'", h, s, ge_errmsg());
    }
}

/* BUILD (which would call __setstate__) is only accepted on a dict. */
TEST(hostile_build_on_objects) {
    static const char *const targets[] = {"tensor", "list", "str", "global"};
    for (int k = 0; k < 4; k++) {
        hb p = {0};
        hb_op(&p, 0x80), hb_op(&p, 2);
        if (k == 0) tensor(&p, POS_NONE, 0, 0);
        if (k == 1) hb_op(&p, ']');
        if (k == 2) hb_str(&p, "x");
        if (k == 3) hb_global(&p, "torch", "FloatStorage");
        hb_op(&p, '}'), hb_str(&p, "__class__"), hb_str(&p, "os.system"), hb_op(&p, 's');
        hb_op(&p, 'b'), hb_op(&p, '.');
        ge_pickle *pk = (ge_pickle *)1;
        ge_status s = ge_pickle_load(&pk, p.b, p.n, NULL, "build.pkl");
        free(p.b);
        CHECK(s == GE_ERR_FORMAT && !pk && strstr(ge_errmsg(), "BUILD"), "BUILD on a %s: %d '%s'",
              targets[k], s, ge_errmsg());
    }
}

/* A pickle inside a pickle is inert bytes; only asking to unpickle it is refused. */
TEST(hostile_nested_pickle) {
    const char *dir = tmpdir_new();
    hb inner = {0};
    hb_op(&inner, 0x80), hb_op(&inner, 2), gadget(&inner, 0, HOW_GLOBAL), hb_op(&inner, '.');
    hb p = {0};
    hb_op(&p, 0x80), hb_op(&p, 2), hb_op(&p, '}'), hb_str(&p, "payload"), hb_op(&p, 'B');
    hb_le(&p, inner.n, 4), hb_raw(&p, inner.b, inner.n), hb_op(&p, 's');
    hb_str(&p, "w"), tensor(&p, POS_NONE, 0, 0), hb_op(&p, 's'), hb_op(&p, '.');
    ge_pickle *pk = NULL;
    ge_status s = ge_pickle_load(&pk, p.b, p.n, NULL, "nested.pkl");
    int inert = s == GE_OK && pk->root->kind == GE_PK_DICT && pk->root->u.seq.n == 4 &&
                pk->root->u.seq.v[1]->kind == GE_PK_BYTES &&
                pk->root->u.seq.v[1]->u.s.n == inner.n;
    ge_pickle_free(pk);
    hb f = legacy(&p, 0, 0);
    const char *path = io_write(dir, "nested.pth", f.b, f.n);
    free(f.b);
    free(p.b);
    CHECK(inert, "embedded pickle bytes: %d '%s'", s, ge_errmsg());
    ge_tensors *t = NULL;
    s = ge_tensors_load(&t, path);
    int one = s == GE_OK && ge_tensors_count(t) == 1 && ge_tensors_find(t, "w");
    ge_tensors_free(t);
    CHECK(one, "checkpoint with embedded pickle bytes: %d '%s'", s, ge_errmsg());
    /* the same bytes handed to pickle.loads / _pickle.loads / torch.load */
    static const char *const loaders[][2] = {
        {"pickle", "loads"}, {"_pickle", "loads"}, {"torch", "load"}, {"io", "BytesIO"}};
    for (int k = 0; k < 4; k++) {
        p = (hb){0};
        hb_op(&p, 0x80), hb_op(&p, 2), hb_global(&p, loaders[k][0], loaders[k][1]);
        hb_op(&p, 'B'), hb_le(&p, inner.n, 4), hb_raw(&p, inner.b, inner.n), hb_op(&p, 0x85),
            hb_op(&p, 'R'), hb_op(&p, '.');
        s = ge_pickle_load(&pk, p.b, p.n, NULL, "nested.pkl");
        free(p.b);
        if (s != GE_ERR_UNSAFE) free(inner.b);
        CHECK(s == GE_ERR_UNSAFE && !pk && strstr(ge_errmsg(), loaders[k][0]), "%s.%s: %d '%s'",
              loaders[k][0], loaders[k][1], s, ge_errmsg());
    }
    free(inner.b);
}

/* ---- Resource claims --------------------------------------------------- */

/* {'w': tensor} with a FloatStorage of `numel` elements, shape `size`, stride
 * `stride` (nd dims), storage offset `offset`, all 8-byte ints. */
static hb big_tensor(int64_t numel, int64_t offset, const int64_t *size, const int64_t *stride,
                     int nd) {
    hb p = {0};
    hb_op(&p, 0x80), hb_op(&p, 2), hb_op(&p, '}'), hb_str(&p, "w");
    hb_global(&p, "torch._utils", "_rebuild_tensor_v2");
    hb_op(&p, '('), hb_op(&p, '('), hb_str(&p, "storage"), hb_global(&p, "torch", "FloatStorage"),
        hb_str(&p, "0"), hb_str(&p, "cpu"), hb_long(&p, numel), hb_op(&p, 't'), hb_op(&p, 'Q');
    hb_long(&p, offset);
    hb_op(&p, '(');
    for (int i = 0; i < nd; i++)
        hb_long(&p, size[i]);
    hb_op(&p, 't'), hb_op(&p, '(');
    for (int i = 0; i < nd; i++)
        hb_long(&p, stride[i]);
    hb_op(&p, 't'), hb_op(&p, 0x89), hb_op(&p, 'N'), hb_op(&p, 't'), hb_op(&p, 'R');
    hb_op(&p, 's'), hb_op(&p, '.');
    return p;
}

/* A storage that claims a terabyte (or more than memory can address) while
 * the file holds 16 bytes: a format error, found before any allocation (an
 * allocation of that size would be GE_ERR_NOMEM here, and abort under ASan). */
TEST(hostile_terabyte_storages) {
    const char *dir = tmpdir_new();
    float data[4] = {1, 2, 3, 4};
    int64_t one[1] = {4}, unit[1] = {1};
    static const int64_t claims[] = {(int64_t)1 << 38, (int64_t)1 << 42, (int64_t)1 << 61,
                                     INT64_MAX};
    for (int i = 0; i < 4; i++) {
        hb p = big_tensor(claims[i], 0, one, unit, 1);
        const char *zp = zip_ckpt(dir, "tb.pt", &p, "0", data, sizeof data, 0);
        hb f = legacy(&p, 0, 0); /* its record says 4 elements */
        free(p.b);
        const char *lp = io_write(dir, "tb.pth", f.b, f.n);
        /* and a legacy record that agrees with the pickle's claim */
        memcpy(f.b + f.n - 16 - 8, &claims[i], 8);
        const char *lp2 = io_write(dir, "tb2.pth", f.b, f.n);
        free(f.b);
        CHECK(zp && lp && lp2, "write");
        const char *paths[3] = {zp, lp, lp2};
        for (int k = 0; k < 3; k++) {
            ge_tensors *t = NULL;
            ge_status s = ge_tensors_load(&t, paths[k]);
            CHECK(s == GE_ERR_FORMAT && !t && io_msg_names(paths[k]),
                  "claim %lld, file %d: status %d '%s'", (long long)claims[i], k, s, ge_errmsg());
        }
    }
}

/* Shapes, strides and offsets whose products or sums overflow. */
TEST(hostile_shape_overflow) {
    const char *dir = tmpdir_new();
    const int64_t T32 = (int64_t)1 << 32, T62 = (int64_t)1 << 62;
    struct {
        int64_t numel, offset;
        int nd;
        int64_t size[3], stride[3];
        ge_status want;
        const char *why; /* in the message */
    } cases[] = {
        {4, 0, 3, {T32, T32, T32}, {0, T32, 1}, GE_ERR_FORMAT, "impossible shape"},
        {4, 0, 3, {T32, T32, T32}, {0, 0, 0}, GE_ERR_UNSUPPORTED, "not contiguous"},
        {T62, T62 - 1, 1, {4}, {1}, GE_ERR_FORMAT, "outside its storage"},    /* offset + n > numel */
        {INT64_MAX, INT64_MAX, 1, {2}, {1}, GE_ERR_FORMAT, "outside its storage"}, /* overflows */
        {T62, 0, 2, {4, T62}, {T62, 1}, GE_ERR_FORMAT, "impossible shape"},   /* 2^64 elements */
        {T62, 0, 2, {2, T62}, {T62, 1}, GE_ERR_FORMAT, "outside its storage"}, /* 2^63 */
        {4, 0, 2, {0, T62}, {T62, 1}, GE_OK, ""},                             /* empty: fine */
        {4, 0, 1, {4}, {1}, GE_OK, ""},                                       /* control */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hb p = big_tensor(cases[i].numel, cases[i].offset, cases[i].size, cases[i].stride,
                          cases[i].nd);
        hb f = legacy(&p, 0, 0);
        memcpy(f.b + f.n - 16 - 8, &cases[i].numel, 8);
        const char *lp = io_write(dir, "shape.pth", f.b, f.n);
        free(f.b);
        free(p.b);
        ge_tensors *t = NULL;
        ge_status s = ge_tensors_load(&t, lp);
        int ok = s == cases[i].want && (s != GE_OK) == !t &&
                 (s == GE_OK || (io_msg_names(lp) && strstr(ge_errmsg(), cases[i].why)));
        ge_tensors_free(t);
        CHECK(ok, "case %zu: status %d (want %d) '%s'", i, s, cases[i].want, ge_errmsg());
    }
}

/* Overwrites the 4-byte little-endian field at `off` of every zip header
 * (local "PK\3\4" and central "PK\1\2") of member `name` in file path. */
static int zip_patch(const char *path, const char *name, int local_off, int central_off,
                     uint32_t value) {
    size_t n;
    unsigned char *b = io_slurp(path, &n);
    if (!b) return 0;
    int hits = 0;
    size_t nl = strlen(name);
    for (size_t i = 0; i + 46 + nl <= n; i++) {
        int local = !memcmp(b + i, "PK\3\4", 4) && !memcmp(b + i + 30, name, nl);
        int central = !memcmp(b + i, "PK\1\2", 4) && !memcmp(b + i + 46, name, nl);
        if (!local && !central) continue;
        unsigned char *f = b + i + (local ? local_off : central_off);
        for (int k = 0; k < 4; k++)
            f[k] = (unsigned char)(value >> (8 * k));
        hits++;
    }
    FILE *o = fopen(path, "wb");
    int ok = o && fwrite(b, 1, n, o) == n;
    if (o) fclose(o);
    free(b);
    return ok && hits == 2;
}

/* Zip members whose directory entries claim gigabytes. */
TEST(hostile_zip_size_claims) {
    const char *dir = tmpdir_new();
    static float zeros[1024];
    int64_t size[1] = {1024}, unit[1] = {1};
    hb p = big_tensor(1024, 0, size, unit, 1);
    /* a deflated storage that claims 4 GiB from 20-odd compressed bytes */
    const char *zp = zip_ckpt(dir, "bomb.pt", &p, "0", zeros, sizeof zeros, 1);
    CHECK(zp, "zip");
    ge_tensors *t = NULL;
    CHECK(ge_tensors_load(&t, zp) == GE_OK, "the unpatched archive loads: %s", ge_errmsg());
    ge_tensors_free(t);
    t = NULL;
    int ok = zip_patch(zp, "archive/data/0", 22, 24, 0xfffffff0u);
    if (!ok) free(p.b);
    CHECK(ok, "patch");
    ge_status s = ge_tensors_load(&t, zp);
    if (s != GE_ERR_FORMAT) free(p.b);
    CHECK(s == GE_ERR_FORMAT && !t && io_msg_names(zp) && strstr(ge_errmsg(), "impossible size"),
          "deflate bomb claim: %d '%s'", s, ge_errmsg());
    /* stored members that claim 4 GiB (size and compressed size) */
    static const char *const members[] = {"archive/data/0", "archive/data.pkl"};
    for (int k = 0; k < 2; k++) {
        zp = zip_ckpt(dir, "claim.pt", &p, "0", zeros, sizeof zeros, 0);
        ok = zp && zip_patch(zp, members[k], 22, 24, 0xfffffff0u) &&
             zip_patch(zp, members[k], 18, 20, 0xfffffff0u);
        if (!ok) free(p.b);
        CHECK(ok, "patch %s", members[k]);
        s = ge_tensors_load(&t, zp);
        if (!(s != GE_OK && !t && io_msg_names(zp))) free(p.b);
        CHECK(s != GE_OK && !t && io_msg_names(zp), "%s claims 4 GiB: %d '%s'", members[k], s,
              ge_errmsg());
    }
    free(p.b);
}

/* Images whose headers claim 16000x16000 pixels over a few hundred bytes. */
TEST(hostile_image_size_claims) {
    static const char *const jpegs[] = {"fuzz_regress/image-jpeg_claims_16000_rgb.jpg",
                                        "fuzz_regress/image-jpeg_claims_16000_gray.jpg"};
    for (int i = 0; i < 2; i++) {
        const char *p = vector_path(jpegs[i]);
        float *img = (float *)1;
        int c, h, w;
        ge_status s = ge_image_read(p, &img, &c, &h, &w);
        CHECK(s == GE_ERR_FORMAT && !img && io_msg_names(p) && strstr(ge_errmsg(), "premature"),
              "%s: status %d '%s'", jpegs[i], s, ge_errmsg());
    }
    /* a PNG of 24x16 loads; with its IHDR saying 16000x16000 (CRC fixed) it is refused */
    const char *dir = tmpdir_new();
    static float px[3 * 16 * 24];
    for (int i = 0; i < 3 * 16 * 24; i++)
        px[i] = (float)(i % 7) / 7.f - 0.5f;
    char path[4200];
    snprintf(path, sizeof path, "%s/claim.png", dir);
    CHECK(ge_image_write_png(path, px, 1, 3, 16, 24, 1) == GE_OK, "%s", ge_errmsg());
    float *img = NULL;
    int c, h, w;
    CHECK(ge_image_read(path, &img, &c, &h, &w) == GE_OK && c == 3 && h == 16 && w == 24, "%s",
          ge_errmsg());
    free(img);
    size_t n;
    unsigned char *b = io_slurp(path, &n);
    CHECK(b && n > 33 && !memcmp(b + 12, "IHDR", 4), "not a PNG");
    for (int k = 0; k < 8; k++) /* width, height: big-endian 16000 */
        b[16 + k] = (unsigned char)(k % 4 == 2 ? 16000 >> 8 : k % 4 == 3 ? 16000 & 255 : 0);
    uint32_t crc = (uint32_t)crc32(0L, b + 12, 17);
    for (int k = 0; k < 4; k++)
        b[29 + k] = (unsigned char)(crc >> (24 - 8 * k));
    const char *p = io_write(dir, "claim16000.png", b, n);
    free(b);
    img = (float *)1;
    ge_status s = ge_image_read(p, &img, &c, &h, &w);
    CHECK(s == GE_ERR_FORMAT && !img && io_msg_names(p), "PNG claiming 16000x16000: %d '%s'", s,
          ge_errmsg());
}

/* ---- NaN and Inf in weights --------------------------------------------- */

/* Copies the tensors of src into dir/name as F32 safetensors (metadata
 * kept), with element idx of tensor `which` set to v (which == NULL: no
 * change; "extra": adds a tensor named extra.unused holding v). */
static const char *weights_with(const char *src, const char *dir, const char *name,
                                const char *which, size_t idx, float v) {
    static char path[4200];
    ge_tensors *w = NULL;
    if (ge_tensors_load(&w, src) != GE_OK) return NULL;
    int n = ge_tensors_count(w);
    ge_tensor *t = calloc((size_t)n + 1, sizeof *t);
    float *copy = NULL, extra[3] = {0, 0, 0};
    const char *res = path;
    for (int i = 0; i < n; i++) {
        t[i] = *ge_tensors_at(w, i);
        if (which && !strcmp(t[i].name, which) && idx < t[i].numel) {
            copy = malloc(t[i].numel * sizeof *copy);
            memcpy(copy, t[i].data, t[i].numel * sizeof *copy);
            copy[idx] = v;
            t[i].data = copy;
        }
    }
    if (which && !strcmp(which, "extra")) {
        extra[idx % 3] = v;
        t[n] = (ge_tensor){.name = "extra.unused", .ndim = 1, .shape = {3}, .numel = 3, .data = extra};
        n++;
    } else if (which && !copy) {
        res = NULL; /* no such tensor */
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (res && ge_safetensors_save(path, t, n, ge_tensors_metadata(w)) != GE_OK) res = NULL;
    free(copy);
    free(t);
    ge_tensors_free(w);
    return res;
}

typedef ge_status (*load_fn)(const char *path);
static ge_status load_gen(const char *path) {
    ge_generator *g = NULL;
    ge_status s = ge_generator_load(&g, path, NULL);
    ge_generator_free(g);
    return s;
}
static ge_status load_vgg(const char *path) {
    ge_vgg *v = NULL;
    ge_status s = ge_vgg_load(&v, path);
    ge_vgg_free(v);
    return s;
}

/* A clean copy loads; NaN, +Inf and -Inf in one weight, and a NaN in a
 * tensor the model never uses, are refused naming the tensor. */
static void nan_cases(int *test_failed_, const char *src, const char *tensor, load_fn load) {
    const char *dir = tmpdir_new();
    const char *p = weights_with(src, dir, "clean.safetensors", NULL, 0, 0);
    CHECK(p, "copy %s: %s", src, ge_errmsg());
    CHECK(load(p) == GE_OK, "clean copy of %s: %s", src, ge_errmsg());
    struct {
        const char *tensor, *word;
        size_t idx;
        float v;
    } cases[] = {
        {tensor, "NaN", 5, NAN},
        {tensor, "Inf", 0, INFINITY},
        {tensor, "Inf", 1, -INFINITY},
        {"extra", "NaN", 1, -NAN},
    };
    for (int i = 0; i < 4; i++) {
        p = weights_with(src, dir, "bad.safetensors", cases[i].tensor, cases[i].idx, cases[i].v);
        CHECK(p, "write case %d (%s in %s)", i, cases[i].word, cases[i].tensor);
        ge_status s = load(p);
        const char *name = strcmp(cases[i].tensor, "extra") ? cases[i].tensor : "extra.unused";
        char quoted[128];
        snprintf(quoted, sizeof quoted, "'%s'", name);
        CHECK(s == GE_ERR_NUMERIC && io_msg_names(p) && strstr(ge_errmsg(), quoted) &&
                  strstr(ge_errmsg(), cases[i].word),
              "%s in %s: status %d '%s'", cases[i].word, name, s, ge_errmsg());
    }
}

TEST(hostile_nan_weights_dcgan) {
    nan_cases(test_failed_, shared_path("weights/dcgan_grumpy_deluxe.safetensors"),
              "up_conv3.1.weight", load_gen);
}

TEST(hostile_nan_weights_stylegan2) {
    nan_cases(test_failed_, shared_path("ref/stylegan2_g1.safetensors"),
              "synthesis.b16.conv0.weight", load_gen);
}

TEST(hostile_nan_weights_vgg) {
    nan_cases(test_failed_, shared_path("weights/vgg19_normalised_conv3_1.safetensors"), "16.bias",
              load_vgg);
}

/* ---- Fuzzer finds --------------------------------------------------------- */

/* tests/vectors/fuzz_regress/<target>-<what>: each input a fuzz target once
 * crashed on, replayed through the same reader (torch_zip inputs are stored
 * as the archives the recipe built). Each must return; a refusal must name
 * the input; tensors and pixels must be readable to the last element. */
TEST(hostile_fuzz_regressions) {
    const char *dir = vector_path("fuzz_regress");
    DIR *d = opendir(dir);
    CHECK(d, "%s missing", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ge_status s = GE_OK;
        volatile float sink = 0;
        const char *what = path;
        if (!strncmp(e->d_name, "safetensors-", 12) || !strncmp(e->d_name, "torch_zip-", 10) ||
            !strncmp(e->d_name, "torch_legacy-", 13)) {
            ge_tensors *t = NULL;
            s = e->d_name[0] == 's' ? ge_safetensors_load(&t, path) : ge_torch_load(&t, path);
            for (int i = 0; i < ge_tensors_count(t); i++)
                for (size_t k = 0; k < ge_tensors_at(t, i)->numel; k++)
                    sink += ge_tensors_at(t, i)->data[k];
            ge_tensors_free(t);
        } else if (!strncmp(e->d_name, "npy-", 4)) {
            float *f = NULL;
            int nd;
            int64_t shp[8];
            s = ge_npy_load(path, &f, &nd, shp);
            free(f);
        } else if (!strncmp(e->d_name, "pickle-", 7)) {
            size_t len;
            unsigned char *b = io_slurp(path, &len);
            ge_pickle *pk = NULL;
            what = "regress.pkl";
            s = b ? ge_pickle_load(&pk, b, len, NULL, what) : GE_ERR_IO;
            ge_pickle_free(pk);
            free(b);
        } else if (!strncmp(e->d_name, "image-", 6)) {
            float *img = NULL;
            int c, h, w;
            s = ge_image_read(path, &img, &c, &h, &w);
            if (s == GE_OK) sink = img[(size_t)c * h * w - 1];
            free(img);
        } else {
            closedir(d);
            CHECK(0, "%s: no reader for this prefix", e->d_name);
        }
        (void)sink;
        n++;
        if (s != GE_OK && s != GE_ERR_NOMEM && !strstr(ge_errmsg(), what)) {
            closedir(d);
            CHECK(0, "%s: status %d, message '%s' does not name it", e->d_name, s, ge_errmsg());
        }
    }
    closedir(d);
    CHECK(n > 0, "no regression inputs in %s", dir);
}
