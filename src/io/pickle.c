/* pickle.c - the restricted unpickler behind ge_torch_load (see pickle.h).
 *
 * Why not a general unpickler: a pickle is a program for a stack machine
 * whose GLOBAL + REDUCE opcodes call any Python function by name, so loading
 * an untrusted .pt file with Python's pickle runs whatever the file asks
 * for. This machine knows the data opcodes and an allow-list of globals whose
 * meaning it reproduces itself (a dict, a tensor record, a storage type);
 * a GLOBAL outside the list stops the load at once with GE_ERR_UNSAFE, before
 * anything could use it, and nothing in the file is ever executed.
 *
 * Robustness: every read is bounds-checked against the input; the stack,
 * MARK depth, memo, number of objects, container items, integer widths and
 * storages are capped (limits below), so a hostile file gets a FORMAT error,
 * not unbounded memory or time. Values come from an arena of fixed-size
 * chunks and are freed in one sweep, never by recursion, so deep or cyclic
 * structures cannot overflow the C stack or leak. */
#include "io/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUES ((size_t)1 << 22) /* objects created by one pickle */
#define MAX_ITEMS ((size_t)1 << 22)  /* container items, all containers together */
#define MAX_STACK ((size_t)1 << 20)  /* stack entries */
#define MAX_MARKS 512                /* MARK nesting */
#define MAX_MEMO ((size_t)1 << 20)   /* highest memo index + 1 */
#define MAX_STORAGES (1 << 20)       /* distinct storages */
#define MAX_GLOBAL_LINE 256          /* module or name of a GLOBAL */
#define MAX_BIGINT 64                /* bytes of a LONG1 / LONG4 integer */
#define MAX_KEY 128                  /* bytes of a storage key */
#define CHUNK 4096                   /* values per arena chunk (the first ones are smaller) */

struct ge_pk_arena {
    ge_pk_value **chunks;
    size_t n_chunks, cap_chunks, used; /* used: values taken from the last chunk */
    size_t n_values, n_items;
    int *hash; /* storage index by key, open addressing, -1 = empty */
    size_t hash_cap;
    int cap_storages;
};

typedef struct {
    ge_pickle *pk;
    struct ge_pk_arena *a;
    const unsigned char *d;
    size_t len, pos, op_pos;
    const char *what;
    ge_status err;
    ge_pk_value **stack;
    size_t sn, scap;
    size_t marks[MAX_MARKS];
    size_t mn;
    ge_pk_value **memo;
    size_t memo_cap, memo_count;
} P;

/* ---- Errors ------------------------------------------------------------ */

void ge_pk_printable(char *buf, size_t cap, const unsigned char *s, size_t n) {
    size_t j = 0;
    if (!cap) return;
    for (size_t i = 0; i < n && j + 4 < cap; i++)
        buf[j++] = (s[i] >= 32 && s[i] < 127) ? (char)s[i] : '?';
    if (j + 4 >= cap && j < n) {
        buf[j++] = '.';
        buf[j++] = '.';
        buf[j++] = '.';
    }
    buf[j] = 0;
}

static ge_status fail(P *p, ge_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ge_status fail(P *p, ge_status code, const char *fmt, ...) {
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    p->err = code;
    return ge_fail(code, "%s: %s (pickle byte %zu)", p->what, m, p->op_pos);
}

static const char *kind_name(ge_pk_kind k) {
    static const char *names[] = {"None",  "bool", "int",  "int",    "float",   "str",   "bytes",
                                  "tuple", "list", "dict", "global", "storage", "tensor"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* ---- Arena ------------------------------------------------------------- */

/* Values in chunk c: 64, 128, ... up to CHUNK, so that the many tiny pickles
 * (the legacy format's headers) do not each zero 640 KiB. */
static size_t chunk_size(size_t c) {
    return c >= 6 ? CHUNK : (size_t)64 << c;
}

static ge_pk_value *newv(P *p, ge_pk_kind kind) {
    struct ge_pk_arena *a = p->a;
    if (a->n_values >= MAX_VALUES) {
        fail(p, GE_ERR_FORMAT, "more than %zu objects", MAX_VALUES);
        return NULL;
    }
    if (a->n_chunks == 0 || a->used == chunk_size(a->n_chunks - 1)) {
        if (a->n_chunks == a->cap_chunks) {
            size_t cap = a->cap_chunks ? a->cap_chunks * 2 : 16;
            ge_pk_value **c = realloc(a->chunks, cap * sizeof *c);
            if (!c) {
                fail(p, GE_ERR_NOMEM, "out of memory");
                return NULL;
            }
            a->chunks = c;
            a->cap_chunks = cap;
        }
        ge_pk_value *chunk = malloc(chunk_size(a->n_chunks) * sizeof *chunk);
        if (!chunk) {
            fail(p, GE_ERR_NOMEM, "out of memory");
            return NULL;
        }
        a->chunks[a->n_chunks++] = chunk;
        a->used = 0;
    }
    ge_pk_value *v = &a->chunks[a->n_chunks - 1][a->used++];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    a->n_values++;
    return v;
}

static int is_seq(ge_pk_kind k) {
    return k == GE_PK_TUPLE || k == GE_PK_LIST || k == GE_PK_DICT;
}

static void arena_free(struct ge_pk_arena *a) {
    if (!a) return;
    for (size_t c = 0; c < a->n_chunks; c++) {
        size_t n = c + 1 == a->n_chunks ? a->used : chunk_size(c);
        for (size_t i = 0; i < n; i++)
            if (is_seq(a->chunks[c][i].kind)) free(a->chunks[c][i].u.seq.v);
        free(a->chunks[c]);
    }
    free(a->chunks);
    free(a->hash);
    free(a);
}

/* Reserves room for `extra` more items in a container. */
static ge_status seq_reserve(P *p, ge_pk_value *v, size_t extra) {
    if (extra > MAX_ITEMS - p->a->n_items)
        return fail(p, GE_ERR_FORMAT, "more than %zu container items", MAX_ITEMS);
    size_t need = v->u.seq.n + extra;
    if (need > v->u.seq.cap) {
        size_t cap = v->u.seq.cap ? v->u.seq.cap : 4;
        while (cap < need)
            cap *= 2;
        ge_pk_value **nv = realloc(v->u.seq.v, cap * sizeof *nv);
        if (!nv) return fail(p, GE_ERR_NOMEM, "out of memory");
        v->u.seq.v = nv;
        v->u.seq.cap = cap;
    }
    p->a->n_items += extra;
    return GE_OK;
}

/* ---- Stack ------------------------------------------------------------- */

static size_t fence(const P *p) {
    return p->mn ? p->marks[p->mn - 1] : 0;
}

static ge_status push(P *p, ge_pk_value *v) {
    if (!v) return p->err;
    if (p->sn == p->scap) {
        if (p->scap >= MAX_STACK)
            return fail(p, GE_ERR_FORMAT, "stack deeper than %zu entries", MAX_STACK);
        size_t cap = p->scap ? p->scap * 2 : 256;
        ge_pk_value **s = realloc(p->stack, cap * sizeof *s);
        if (!s) return fail(p, GE_ERR_NOMEM, "out of memory");
        p->stack = s;
        p->scap = cap;
    }
    p->stack[p->sn++] = v;
    return GE_OK;
}

static ge_status pop(P *p, ge_pk_value **v) {
    if (p->sn <= fence(p)) return fail(p, GE_ERR_FORMAT, "stack underflow");
    *v = p->stack[--p->sn];
    return GE_OK;
}

static ge_status top(P *p, ge_pk_value **v) {
    if (p->sn <= fence(p)) return fail(p, GE_ERR_FORMAT, "stack underflow");
    *v = p->stack[p->sn - 1];
    return GE_OK;
}

static ge_status pop_mark(P *p, size_t *b) {
    if (!p->mn) return fail(p, GE_ERR_FORMAT, "no MARK to pop to");
    *b = p->marks[--p->mn];
    return GE_OK;
}

/* A new container of `kind` holding stack[b .. sn), which is popped. */
static ge_status collect(P *p, ge_pk_kind kind, size_t b) {
    ge_pk_value *v = newv(p, kind);
    if (!v) return p->err;
    size_t n = p->sn - b;
    if (kind == GE_PK_DICT && n % 2)
        return fail(p, GE_ERR_FORMAT, "dict built from an odd number of items");
    if (n) {
        ge_status s = seq_reserve(p, v, n);
        if (s) return s;
        memcpy(v->u.seq.v, p->stack + b, n * sizeof *v->u.seq.v);
        v->u.seq.n = n;
    }
    p->sn = b;
    return push(p, v);
}

/* Appends stack[b .. sn) to the container just below the mark at b. */
static ge_status extend(P *p, ge_pk_kind kind, size_t b) {
    if (b == 0 || b <= fence(p)) return fail(p, GE_ERR_FORMAT, "stack underflow");
    ge_pk_value *c = p->stack[b - 1];
    size_t n = p->sn - b;
    if (c->kind != kind)
        return fail(p, GE_ERR_FORMAT, "adding items to a %s (a %s was expected)",
                    kind_name(c->kind), kind_name(kind));
    if (kind == GE_PK_DICT && n % 2)
        return fail(p, GE_ERR_FORMAT, "SETITEMS with an odd number of items");
    if (n) {
        ge_status s = seq_reserve(p, c, n);
        if (s) return s;
        memcpy(c->u.seq.v + c->u.seq.n, p->stack + b, n * sizeof *c->u.seq.v);
        c->u.seq.n += n;
    }
    p->sn = b;
    return GE_OK;
}

/* ---- Input ------------------------------------------------------------- */

static ge_status need(P *p, size_t n) {
    if (p->len - p->pos < n)
        return fail(p, GE_ERR_FORMAT, "truncated: %zu bytes missing", n - (p->len - p->pos));
    return GE_OK;
}

static uint64_t rd_le(P *p, size_t n) { /* caller checked need() */
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p->d[p->pos + i];
    p->pos += n;
    return v;
}

/* A length-prefixed string or bytes value; wbytes is the prefix width. */
static ge_status load_str(P *p, ge_pk_kind kind, size_t wbytes, int is_signed) {
    ge_status s = need(p, wbytes);
    if (s) return s;
    uint64_t n = rd_le(p, wbytes);
    if (is_signed && (int32_t)(uint32_t)n < 0)
        return fail(p, GE_ERR_FORMAT, "negative string length");
    if (n > p->len - p->pos)
        return fail(p, GE_ERR_FORMAT, "string of %llu bytes runs past the end",
                    (unsigned long long)n);
    ge_pk_value *v = newv(p, kind);
    if (!v) return p->err;
    v->u.s.p = p->d + p->pos;
    v->u.s.n = (size_t)n;
    p->pos += (size_t)n;
    return push(p, v);
}

static ge_status load_int(P *p, int64_t x) {
    ge_pk_value *v = newv(p, GE_PK_INT);
    if (!v) return p->err;
    v->u.i = x;
    return push(p, v);
}

static ge_status load_long(P *p, size_t wbytes) {
    ge_status s = need(p, wbytes);
    if (s) return s;
    uint64_t n = rd_le(p, wbytes);
    if (wbytes == 4 && (int32_t)(uint32_t)n < 0)
        return fail(p, GE_ERR_FORMAT, "negative LONG4 size");
    if (n > MAX_BIGINT)
        return fail(p, GE_ERR_FORMAT, "integer of %llu bytes is too large", (unsigned long long)n);
    if ((s = need(p, (size_t)n))) return s;
    if (n <= 8) {
        uint64_t u = 0;
        for (size_t i = (size_t)n; i-- > 0;)
            u = (u << 8) | p->d[p->pos + i];
        if (n && n < 8 && (p->d[p->pos + n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign */
        p->pos += (size_t)n;
        return load_int(p, (int64_t)u);
    }
    ge_pk_value *v = newv(p, GE_PK_BIGINT);
    if (!v) return p->err;
    v->u.s.p = p->d + p->pos;
    v->u.s.n = (size_t)n;
    p->pos += (size_t)n;
    return push(p, v);
}

/* ---- Globals ----------------------------------------------------------- */

static const struct {
    const char *module, *name, *full;
    ge_pk_global which;
    ge_dtype dtype;
} allowed[] = {
    {"collections", "OrderedDict", "collections.OrderedDict", GE_PKG_ORDERED_DICT, GE_DT_F32},
    {"torch._utils", "_rebuild_tensor", "torch._utils._rebuild_tensor", GE_PKG_REBUILD_TENSOR,
     GE_DT_F32},
    {"torch._utils", "_rebuild_tensor_v2", "torch._utils._rebuild_tensor_v2",
     GE_PKG_REBUILD_TENSOR_V2, GE_DT_F32},
    {"torch._utils", "_rebuild_parameter", "torch._utils._rebuild_parameter",
     GE_PKG_REBUILD_PARAMETER, GE_DT_F32},
    {"torch._utils", "_rebuild_parameter_with_state", "torch._utils._rebuild_parameter_with_state",
     GE_PKG_REBUILD_PARAMETER_STATE, GE_DT_F32},
    {"torch", "FloatStorage", "torch.FloatStorage", GE_PKG_STORAGE_TYPE, GE_DT_F32},
    {"torch", "DoubleStorage", "torch.DoubleStorage", GE_PKG_STORAGE_TYPE, GE_DT_F64},
    {"torch", "HalfStorage", "torch.HalfStorage", GE_PKG_STORAGE_TYPE, GE_DT_F16},
    {"torch", "BFloat16Storage", "torch.BFloat16Storage", GE_PKG_STORAGE_TYPE, GE_DT_BF16},
    {"torch", "LongStorage", "torch.LongStorage", GE_PKG_STORAGE_TYPE, GE_DT_I64},
    {"torch", "IntStorage", "torch.IntStorage", GE_PKG_STORAGE_TYPE, GE_DT_I32},
    {"torch", "ShortStorage", "torch.ShortStorage", GE_PKG_STORAGE_TYPE, GE_DT_I16},
    {"torch", "CharStorage", "torch.CharStorage", GE_PKG_STORAGE_TYPE, GE_DT_I8},
    {"torch", "ByteStorage", "torch.ByteStorage", GE_PKG_STORAGE_TYPE, GE_DT_U8},
    {"torch", "BoolStorage", "torch.BoolStorage", GE_PKG_STORAGE_TYPE, GE_DT_BOOL},
    {"torch", "float32", "torch.float32", GE_PKG_DTYPE, GE_DT_F32},
    {"torch", "float64", "torch.float64", GE_PKG_DTYPE, GE_DT_F64},
    {"torch", "float16", "torch.float16", GE_PKG_DTYPE, GE_DT_F16},
    {"torch", "bfloat16", "torch.bfloat16", GE_PKG_DTYPE, GE_DT_BF16},
    {"torch", "int64", "torch.int64", GE_PKG_DTYPE, GE_DT_I64},
    {"torch", "int32", "torch.int32", GE_PKG_DTYPE, GE_DT_I32},
    {"torch", "int16", "torch.int16", GE_PKG_DTYPE, GE_DT_I16},
    {"torch", "int8", "torch.int8", GE_PKG_DTYPE, GE_DT_I8},
    {"torch", "uint8", "torch.uint8", GE_PKG_DTYPE, GE_DT_U8},
    {"torch", "bool", "torch.bool", GE_PKG_DTYPE, GE_DT_BOOL},
};

static int same(const unsigned char *s, size_t n, const char *lit) {
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static ge_status refuse_global(P *p, const char *how, const unsigned char *mod, size_t ml,
                               const unsigned char *name, size_t nl) {
    char m[128], n[128];
    ge_pk_printable(m, sizeof m, mod, ml);
    ge_pk_printable(n, sizeof n, name, nl);
    return fail(p, GE_ERR_UNSAFE,
                "refused %s '%s.%s': only tensors, dicts, lists and plain values are read, and "
                "nothing in the file is ever run",
                how, m, n);
}

static ge_status load_global(P *p, const unsigned char *mod, size_t ml, const unsigned char *name,
                             size_t nl) {
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (same(mod, ml, allowed[i].module) && same(name, nl, allowed[i].name)) {
            ge_pk_value *v = newv(p, GE_PK_GLOBAL);
            if (!v) return p->err;
            v->u.g.which = allowed[i].which;
            v->u.g.dtype = allowed[i].dtype;
            v->u.g.name = allowed[i].full;
            return push(p, v);
        }
    return refuse_global(p, "global", mod, ml, name, nl);
}

/* One newline-terminated line of a GLOBAL or INST opcode. */
static ge_status read_line(P *p, const unsigned char **s, size_t *n) {
    size_t avail = p->len - p->pos, lim = avail < MAX_GLOBAL_LINE ? avail : MAX_GLOBAL_LINE;
    const unsigned char *nl = memchr(p->d + p->pos, '\n', lim);
    if (!nl) return fail(p, GE_ERR_FORMAT, "unterminated or overlong global name");
    *s = p->d + p->pos;
    *n = (size_t)(nl - *s);
    p->pos += *n + 1;
    return GE_OK;
}

/* ---- Calls to allowed globals ----------------------------------------- */

static ge_status int_arg(P *p, const ge_pk_value *v, const char *fn, const char *what, int64_t *x) {
    if (v->kind != GE_PK_INT && v->kind != GE_PK_BOOL)
        return fail(p, GE_ERR_FORMAT, "%s: %s is a %s, not an int", fn, what, kind_name(v->kind));
    if (v->u.i < 0) return fail(p, GE_ERR_FORMAT, "%s: negative %s", fn, what);
    *x = v->u.i;
    return GE_OK;
}

static ge_status rebuild_tensor(P *p, const ge_pk_value *g, const ge_pk_value *args) {
    const char *fn = g->u.g.name;
    size_t n = args->u.seq.n;
    int v2 = g->u.g.which == GE_PKG_REBUILD_TENSOR_V2;
    if (v2 ? (n != 6 && n != 7) : n != 4)
        return fail(p, GE_ERR_FORMAT, "%s called with %zu arguments", fn, n);
    ge_pk_value *const *a = args->u.seq.v;
    if (a[0]->kind != GE_PK_STORAGE)
        return fail(p, GE_ERR_FORMAT, "%s: first argument is a %s, not a storage", fn,
                    kind_name(a[0]->kind));
    if (a[2]->kind != GE_PK_TUPLE || a[3]->kind != GE_PK_TUPLE)
        return fail(p, GE_ERR_FORMAT, "%s: size and stride must be tuples", fn);
    if (a[2]->u.seq.n > 8)
        return fail(p, GE_ERR_UNSUPPORTED, "%s: tensor of %zu dimensions (at most 8)", fn,
                    a[2]->u.seq.n);
    if (a[3]->u.seq.n != a[2]->u.seq.n)
        return fail(p, GE_ERR_FORMAT, "%s: size and stride differ in length", fn);
    ge_pk_value *t = newv(p, GE_PK_TENSOR);
    if (!t) return p->err;
    t->u.tensor.storage = a[0];
    t->u.tensor.ndim = (int)a[2]->u.seq.n;
    ge_status s = int_arg(p, a[1], fn, "storage offset", &t->u.tensor.offset);
    for (int i = 0; !s && i < t->u.tensor.ndim; i++) {
        s = int_arg(p, a[2]->u.seq.v[i], fn, "size", &t->u.tensor.shape[i]);
        if (!s) s = int_arg(p, a[3]->u.seq.v[i], fn, "stride", &t->u.tensor.stride[i]);
    }
    return s ? s : push(p, t);
}

static ge_status call(P *p, ge_pk_value *g, ge_pk_value *args) {
    if (g->kind != GE_PK_GLOBAL)
        return fail(p, GE_ERR_FORMAT, "REDUCE calls a %s", kind_name(g->kind));
    if (args->kind != GE_PK_TUPLE)
        return fail(p, GE_ERR_FORMAT, "REDUCE arguments are a %s, not a tuple",
                    kind_name(args->kind));
    size_t n = args->u.seq.n;
    switch (g->u.g.which) {
    case GE_PKG_ORDERED_DICT:
        if (n) return fail(p, GE_ERR_UNSUPPORTED, "OrderedDict called with arguments");
        return push(p, newv(p, GE_PK_DICT));
    case GE_PKG_REBUILD_TENSOR:
    case GE_PKG_REBUILD_TENSOR_V2:
        return rebuild_tensor(p, g, args);
    case GE_PKG_REBUILD_PARAMETER:
    case GE_PKG_REBUILD_PARAMETER_STATE:
        if (n != (g->u.g.which == GE_PKG_REBUILD_PARAMETER ? 3u : 4u) ||
            args->u.seq.v[0]->kind != GE_PK_TENSOR)
            return fail(p, GE_ERR_FORMAT, "%s called with unexpected arguments", g->u.g.name);
        return push(p, args->u.seq.v[0]); /* a parameter is its tensor */
    case GE_PKG_STORAGE_TYPE:
    case GE_PKG_DTYPE:
        break;
    }
    return fail(p, GE_ERR_UNSAFE, "refused call of '%s': it is allowed only as a value",
                g->u.g.name);
}

/* ---- Storages (persistent ids) --------------------------------------- */

static uint64_t fnv1a(const unsigned char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static ge_status storage_get(P *p, ge_dtype dt, const unsigned char *key, size_t kl,
                             int64_t numel) {
    struct ge_pk_arena *a = p->a;
    ge_pickle *pk = p->pk;
    if (a->hash_cap == 0 || (size_t)pk->n_storages * 2 >= a->hash_cap) { /* grow and rehash */
        size_t cap = a->hash_cap ? a->hash_cap * 2 : 64;
        int *h = malloc(cap * sizeof *h);
        if (!h) return fail(p, GE_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < cap; i++)
            h[i] = -1;
        for (int i = 0; i < pk->n_storages; i++) {
            const ge_pk_value *s = pk->storages[i];
            size_t j = fnv1a(s->u.storage.key, s->u.storage.key_len) & (cap - 1);
            while (h[j] >= 0)
                j = (j + 1) & (cap - 1);
            h[j] = i;
        }
        free(a->hash);
        a->hash = h;
        a->hash_cap = cap;
    }
    size_t j = fnv1a(key, kl) & (a->hash_cap - 1);
    for (; a->hash[j] >= 0; j = (j + 1) & (a->hash_cap - 1)) {
        ge_pk_value *s = pk->storages[a->hash[j]];
        if (s->u.storage.key_len == kl && !memcmp(s->u.storage.key, key, kl)) {
            if (s->u.storage.dtype != dt || s->u.storage.numel != numel)
                return fail(p, GE_ERR_FORMAT,
                            "storage referenced twice with different types or sizes");
            return push(p, s);
        }
    }
    if (pk->n_storages >= MAX_STORAGES)
        return fail(p, GE_ERR_FORMAT, "more than %d storages", MAX_STORAGES);
    if (pk->n_storages == a->cap_storages) {
        int cap = a->cap_storages ? a->cap_storages * 2 : 64;
        ge_pk_value **s = realloc(pk->storages, (size_t)cap * sizeof *s);
        if (!s) return fail(p, GE_ERR_NOMEM, "out of memory");
        pk->storages = s;
        a->cap_storages = cap;
    }
    ge_pk_value *v = newv(p, GE_PK_STORAGE);
    if (!v) return p->err;
    v->u.storage.dtype = dt;
    v->u.storage.key = key;
    v->u.storage.key_len = kl;
    v->u.storage.numel = numel;
    v->u.storage.index = pk->n_storages;
    a->hash[j] = pk->n_storages;
    pk->storages[pk->n_storages++] = v;
    return push(p, v);
}

/* ('storage', storage_type, key, location, numel[, view_metadata]) */
static ge_status persistent_load(P *p, const ge_pk_value *pid) {
    if (pid->kind != GE_PK_TUPLE || pid->u.seq.n < 1 || pid->u.seq.v[0]->kind != GE_PK_STR)
        return fail(p, GE_ERR_FORMAT, "persistent id is not a ('storage', ...) tuple");
    ge_pk_value *const *a = pid->u.seq.v;
    if (!same(a[0]->u.s.p, a[0]->u.s.n, "storage")) {
        char t[64];
        ge_pk_printable(t, sizeof t, a[0]->u.s.p, a[0]->u.s.n);
        return fail(p, GE_ERR_UNSUPPORTED, "persistent id of type '%s' (only storages are read)",
                    t);
    }
    size_t n = pid->u.seq.n;
    if (n != 5 && n != 6) return fail(p, GE_ERR_FORMAT, "storage id with %zu fields", n);
    if (a[1]->kind != GE_PK_GLOBAL || a[1]->u.g.which != GE_PKG_STORAGE_TYPE)
        return fail(p, GE_ERR_FORMAT, "storage id without a storage type");
    if (a[2]->kind != GE_PK_STR || a[2]->u.s.n == 0 || a[2]->u.s.n > MAX_KEY)
        return fail(p, GE_ERR_FORMAT, "storage key is not a short string");
    for (size_t i = 0; i < a[2]->u.s.n; i++) {
        unsigned char c = a[2]->u.s.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_' || c == '-' || c == '.'))
            return fail(p, GE_ERR_FORMAT, "storage key holds an unexpected character");
    }
    if (a[4]->kind != GE_PK_INT || a[4]->u.i < 0)
        return fail(p, GE_ERR_FORMAT, "storage size is not a non-negative int");
    if (n == 6 && a[5]->kind != GE_PK_NONE)
        return fail(p, GE_ERR_UNSUPPORTED, "storage views (PyTorch before 0.4) are not read");
    return storage_get(p, a[1]->u.g.dtype, a[2]->u.s.p, a[2]->u.s.n, a[4]->u.i);
}

/* ---- Memo -------------------------------------------------------------- */

static ge_status memo_put(P *p, uint64_t idx) {
    ge_pk_value *v = NULL;
    ge_status s = top(p, &v);
    if (s) return s;
    if (idx >= MAX_MEMO)
        return fail(p, GE_ERR_FORMAT, "memo index %llu too large", (unsigned long long)idx);
    if (idx >= p->memo_cap) {
        size_t cap = p->memo_cap ? p->memo_cap : 64;
        while (cap <= idx)
            cap *= 2;
        if (cap > MAX_MEMO) cap = MAX_MEMO;
        ge_pk_value **m = realloc(p->memo, cap * sizeof *m);
        if (!m) return fail(p, GE_ERR_NOMEM, "out of memory");
        memset(m + p->memo_cap, 0, (cap - p->memo_cap) * sizeof *m);
        p->memo = m;
        p->memo_cap = cap;
    }
    if (!p->memo[idx]) p->memo_count++;
    p->memo[idx] = v;
    return GE_OK;
}

static ge_status memo_get(P *p, uint64_t idx) {
    if (idx >= p->memo_cap || !p->memo[idx])
        return fail(p, GE_ERR_FORMAT, "memo entry %llu was never stored", (unsigned long long)idx);
    return push(p, p->memo[idx]);
}

/* ---- The machine ------------------------------------------------------- */

static ge_status run(P *p, size_t *consumed) {
    ge_status s = GE_OK;
    ge_pk_value *v = NULL, *w = NULL, *x = NULL;
    size_t b = 0;
    while (s == GE_OK) {
        if (p->pos >= p->len) return fail(p, GE_ERR_FORMAT, "truncated: no STOP opcode");
        p->op_pos = p->pos;
        unsigned char op = p->d[p->pos++];
        switch (op) {
        case 0x80: /* PROTO */
            if ((s = need(p, 1))) break;
            if (p->d[p->pos] > 5)
                return fail(p, GE_ERR_UNSUPPORTED, "pickle protocol %d", p->d[p->pos]);
            p->pos++;
            break;
        case 0x95: /* FRAME: a length hint; frames are transparent here */
            if (!(s = need(p, 8)) && rd_le(p, 8) > p->len - p->pos)
                return fail(p, GE_ERR_FORMAT, "frame runs past the end");
            break;
        case '.': /* STOP */
            if ((s = pop(p, &v))) return s;
            p->pk->root = v;
            if (consumed) *consumed = p->pos;
            return GE_OK;
        case '(': /* MARK */
            if (p->mn == MAX_MARKS)
                return fail(p, GE_ERR_FORMAT, "nesting deeper than %d MARKs", MAX_MARKS);
            p->marks[p->mn++] = p->sn;
            break;
        case '0': /* POP */
            if (p->mn && p->marks[p->mn - 1] == p->sn)
                p->mn--;
            else
                s = pop(p, &v);
            break;
        case '1': /* POP_MARK */
            if (!(s = pop_mark(p, &b))) p->sn = b;
            break;
        case '2': /* DUP */
            if (!(s = top(p, &v))) s = push(p, v);
            break;
        case 'N':
            s = push(p, newv(p, GE_PK_NONE));
            break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            if ((v = newv(p, GE_PK_BOOL))) v->u.i = op == 0x88;
            s = push(p, v);
            break;
        case 'J': /* BININT */
            if (!(s = need(p, 4))) s = load_int(p, (int32_t)(uint32_t)rd_le(p, 4));
            break;
        case 'K': /* BININT1 */
            if (!(s = need(p, 1))) s = load_int(p, (int64_t)rd_le(p, 1));
            break;
        case 'M': /* BININT2 */
            if (!(s = need(p, 2))) s = load_int(p, (int64_t)rd_le(p, 2));
            break;
        case 0x8a:
            s = load_long(p, 1);
            break; /* LONG1 */
        case 0x8b:
            s = load_long(p, 4);
            break; /* LONG4 */
        case 'G':  /* BINFLOAT, big-endian */
            if (!(s = need(p, 8))) {
                uint64_t u = 0;
                for (int i = 0; i < 8; i++)
                    u = (u << 8) | p->d[p->pos + i];
                p->pos += 8;
                if ((v = newv(p, GE_PK_FLOAT))) memcpy(&v->u.f, &u, 8);
                s = push(p, v);
            }
            break;
        case 0x8c:
            s = load_str(p, GE_PK_STR, 1, 0);
            break; /* SHORT_BINUNICODE */
        case 'X':
            s = load_str(p, GE_PK_STR, 4, 0);
            break; /* BINUNICODE */
        case 0x8d:
            s = load_str(p, GE_PK_STR, 8, 0);
            break; /* BINUNICODE8 */
        case 'U':
            s = load_str(p, GE_PK_STR, 1, 0);
            break; /* SHORT_BINSTRING (Python 2 str) */
        case 'T':
            s = load_str(p, GE_PK_STR, 4, 1);
            break; /* BINSTRING */
        case 'C':
            s = load_str(p, GE_PK_BYTES, 1, 0);
            break; /* SHORT_BINBYTES */
        case 'B':
            s = load_str(p, GE_PK_BYTES, 4, 0);
            break; /* BINBYTES */
        case 0x8e:
            s = load_str(p, GE_PK_BYTES, 8, 0);
            break; /* BINBYTES8 */
        case 0x96:
            s = load_str(p, GE_PK_BYTES, 8, 0);
            break; /* BYTEARRAY8 */
        case ')':
            s = push(p, newv(p, GE_PK_TUPLE));
            break; /* EMPTY_TUPLE */
        case ']':
            s = push(p, newv(p, GE_PK_LIST));
            break; /* EMPTY_LIST */
        case '}':
            s = push(p, newv(p, GE_PK_DICT));
            break; /* EMPTY_DICT */
        case 0x8f:
            s = push(p, newv(p, GE_PK_LIST));
            break; /* EMPTY_SET */
        case 't':  /* TUPLE */
            if (!(s = pop_mark(p, &b))) s = collect(p, GE_PK_TUPLE, b);
            break;
        case 0x85: /* TUPLE1 */
        case 0x86: /* TUPLE2 */
        case 0x87: /* TUPLE3 */
            b = (size_t)(op - 0x84);
            if (p->sn < fence(p) + b) return fail(p, GE_ERR_FORMAT, "stack underflow");
            s = collect(p, GE_PK_TUPLE, p->sn - b);
            break;
        case 'l':  /* LIST */
        case 0x91: /* FROZENSET */
            if (!(s = pop_mark(p, &b))) s = collect(p, GE_PK_LIST, b);
            break;
        case 'd': /* DICT */
            if (!(s = pop_mark(p, &b))) s = collect(p, GE_PK_DICT, b);
            break;
        case 'a': /* APPEND */
            if (!(s = pop(p, &v)) && !(s = top(p, &w))) {
                if (w->kind != GE_PK_LIST)
                    return fail(p, GE_ERR_FORMAT, "APPEND to a %s", kind_name(w->kind));
                if (!(s = seq_reserve(p, w, 1))) w->u.seq.v[w->u.seq.n++] = v;
            }
            break;
        case 'e':  /* APPENDS */
        case 0x90: /* ADDITEMS */
            if (!(s = pop_mark(p, &b))) s = extend(p, GE_PK_LIST, b);
            break;
        case 's': /* SETITEM */
            if (!(s = pop(p, &v)) && !(s = pop(p, &x)) && !(s = top(p, &w))) {
                if (w->kind != GE_PK_DICT)
                    return fail(p, GE_ERR_FORMAT, "SETITEM on a %s", kind_name(w->kind));
                if (!(s = seq_reserve(p, w, 2))) {
                    w->u.seq.v[w->u.seq.n++] = x;
                    w->u.seq.v[w->u.seq.n++] = v;
                }
            }
            break;
        case 'u': /* SETITEMS */
            if (!(s = pop_mark(p, &b))) s = extend(p, GE_PK_DICT, b);
            break;
        case 'q': /* BINPUT */
            if (!(s = need(p, 1))) s = memo_put(p, rd_le(p, 1));
            break;
        case 'r': /* LONG_BINPUT */
            if (!(s = need(p, 4))) s = memo_put(p, rd_le(p, 4));
            break;
        case 0x94:
            s = memo_put(p, p->memo_count);
            break; /* MEMOIZE */
        case 'h':  /* BINGET */
            if (!(s = need(p, 1))) s = memo_get(p, rd_le(p, 1));
            break;
        case 'j': /* LONG_BINGET */
            if (!(s = need(p, 4))) s = memo_get(p, rd_le(p, 4));
            break;
        case 'c': { /* GLOBAL */
            const unsigned char *m, *n;
            size_t ml, nl;
            if (!(s = read_line(p, &m, &ml)) && !(s = read_line(p, &n, &nl)))
                s = load_global(p, m, ml, n, nl);
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            if (!(s = pop(p, &v)) && !(s = pop(p, &w))) {
                if (v->kind != GE_PK_STR || w->kind != GE_PK_STR)
                    return fail(p, GE_ERR_FORMAT, "STACK_GLOBAL needs two strings");
                s = load_global(p, w->u.s.p, w->u.s.n, v->u.s.p, v->u.s.n);
            }
            break;
        case 'R': /* REDUCE */
            if (!(s = pop(p, &v)) && !(s = pop(p, &w))) s = call(p, w, v);
            break;
        case 0x81: /* NEWOBJ: cls.__new__(cls, *args) */
        case 0x92: /* NEWOBJ_EX: cls.__new__(cls, *args, **kwargs) */
            if (op == 0x92 && (s = pop(p, &x))) return s;
            if (!(s = pop(p, &v)) && !(s = pop(p, &w))) {
                if (w->kind != GE_PK_GLOBAL)
                    return fail(p, GE_ERR_FORMAT, "NEWOBJ of a %s", kind_name(w->kind));
                if (w->u.g.which != GE_PKG_ORDERED_DICT)
                    return fail(p, GE_ERR_UNSAFE, "refused NEWOBJ of '%s'", w->u.g.name);
                s = push(p, newv(p, GE_PK_DICT));
            }
            break;
        case 'b': /* BUILD: only an OrderedDict's attributes (its _metadata) */
            if (!(s = pop(p, &v)) && !(s = top(p, &w)) && w->kind != GE_PK_DICT)
                return fail(p, GE_ERR_FORMAT, "BUILD on a %s", kind_name(w->kind));
            break;
        case 'Q': /* BINPERSID */
            if (!(s = pop(p, &v))) s = persistent_load(p, v);
            break;
        case 'i': { /* INST: calls a class named inline */
            const unsigned char *m = (const unsigned char *)"?", *n = m;
            size_t ml = 1, nl = 1;
            if (!read_line(p, &m, &ml)) read_line(p, &n, &nl);
            return refuse_global(p, "INST of", m, ml, n, nl);
        }
        case 'o':
            return fail(p, GE_ERR_UNSAFE, "refused OBJ opcode (builds an arbitrary object)");
        case 0x82:
        case 0x83:
        case 0x84:
            return fail(p, GE_ERR_UNSAFE,
                        "refused EXT opcode (a global from the extension registry)");
        case 0x97:
        case 0x98:
            return fail(p, GE_ERR_UNSUPPORTED, "out-of-band pickle buffers are not read");
        case 'I':
        case 'L':
        case 'F':
        case 'S':
        case 'V':
        case 'g':
        case 'p':
        case 'P':
            return fail(p, GE_ERR_UNSUPPORTED,
                        "text opcode '%c' of pickle protocol 0/1 (PyTorch writes protocol 2)", op);
        default:
            return fail(p, GE_ERR_FORMAT, "unknown pickle opcode 0x%02x", op);
        }
    }
    return s;
}

ge_status ge_pickle_load(ge_pickle **out, const unsigned char *data, size_t len, size_t *consumed,
                         const char *what) {
    *out = NULL;
    if (consumed) *consumed = 0;
    P p;
    memset(&p, 0, sizeof p);
    p.d = data;
    p.len = data ? len : 0;
    p.what = what ? what : "pickle";
    p.pk = calloc(1, sizeof *p.pk);
    p.a = calloc(1, sizeof *p.a);
    if (!p.pk || !p.a) {
        free(p.pk);
        free(p.a);
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory", p.what);
    }
    p.pk->arena = p.a;
    ge_status s = run(&p, consumed);
    free(p.stack);
    free(p.memo);
    if (s != GE_OK) {
        ge_pickle_free(p.pk);
        return s;
    }
    *out = p.pk;
    return GE_OK;
}

void ge_pickle_free(ge_pickle *pk) {
    if (!pk) return;
    arena_free(pk->arena);
    free(pk->storages);
    free(pk);
}
