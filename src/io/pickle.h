/* pickle.h - a restricted unpickler for PyTorch state dicts.
 *
 * It understands the Python pickle opcodes (protocols 2 to 5) that
 * torch.save writes for a state dict or a checkpoint of state dicts: dicts,
 * lists, tuples, strings, bytes, ints, floats, bools, None, the memo, and
 * the globals on a short allow-list (collections.OrderedDict, the
 * torch._utils tensor and parameter rebuilders, torch.*Storage types and
 * torch dtypes). Every other global (os.system, builtins.eval, ...) and
 * every opcode that would build an arbitrary object is refused with
 * GE_ERR_UNSAFE and a message naming it. Nothing is ever called: a
 * "rebuild tensor" REDUCE just records (storage, offset, shape, stride).
 *
 * Strings point into the input bytes, which must outlive the result. All
 * values live in one arena freed by ge_pickle_free, so shared and cyclic
 * references (through the memo) cost nothing and cannot leak. */
#ifndef GE_IO_PICKLE_H
#define GE_IO_PICKLE_H

#include "io/io.h"

typedef enum {
    GE_PK_NONE,
    GE_PK_BOOL,
    GE_PK_INT,
    GE_PK_BIGINT, /* an int wider than 64 bits: two's-complement little-endian bytes in u.s */
    GE_PK_FLOAT,
    GE_PK_STR,
    GE_PK_BYTES,
    GE_PK_TUPLE,
    GE_PK_LIST, /* also sets and frozensets */
    GE_PK_DICT, /* dict and OrderedDict; items are key, value, key, value ... */
    GE_PK_GLOBAL,
    GE_PK_STORAGE,
    GE_PK_TENSOR,
} ge_pk_kind;

typedef enum {
    GE_PKG_ORDERED_DICT,
    GE_PKG_REBUILD_TENSOR,
    GE_PKG_REBUILD_TENSOR_V2,
    GE_PKG_REBUILD_PARAMETER,
    GE_PKG_REBUILD_PARAMETER_STATE,
    GE_PKG_STORAGE_TYPE, /* torch.FloatStorage ...: u.g.dtype */
    GE_PKG_DTYPE,        /* torch.float32 ...: an inert value */
} ge_pk_global;

typedef struct ge_pk_value ge_pk_value;
struct ge_pk_value {
    ge_pk_kind kind;
    union {
        int64_t i; /* BOOL, INT */
        double f;  /* FLOAT */
        struct {
            const unsigned char *p; /* into the input; not NUL-terminated */
            size_t n;
        } s; /* STR, BYTES, BIGINT */
        struct {
            ge_pk_value **v;
            size_t n, cap;
        } seq; /* TUPLE, LIST, DICT */
        struct {
            ge_pk_global which;
            ge_dtype dtype;   /* STORAGE_TYPE, DTYPE */
            const char *name; /* e.g. "torch.FloatStorage" (static) */
        } g;
        struct {
            ge_dtype dtype;
            const unsigned char *key; /* into the input */
            size_t key_len;
            int64_t numel; /* elements, as the persistent id says */
            int index;     /* position in ge_pickle.storages */
        } storage;
        struct {
            ge_pk_value *storage;
            int64_t offset; /* in elements */
            int ndim;
            int64_t shape[8], stride[8];
        } tensor;
    } u;
};

typedef struct ge_pickle ge_pickle;
struct ge_pickle {
    ge_pk_value *root;      /* the value STOP returned */
    ge_pk_value **storages; /* distinct storages, in order of first reference */
    int n_storages;
    struct ge_pk_arena *arena; /* private */
};

/* Unpickles data[0 .. len) up to its STOP opcode; *consumed (may be NULL)
 * gets the bytes used, so that several pickles can follow each other (the
 * legacy PyTorch format). `what` names the input in messages ("x.pth" or
 * "x.pt (archive/data.pkl)"). Refused globals give GE_ERR_UNSAFE, bad or
 * truncated bytes and exceeded limits GE_ERR_FORMAT. */
ge_status ge_pickle_load(ge_pickle **out, const unsigned char *data, size_t len, size_t *consumed,
                         const char *what);
void ge_pickle_free(ge_pickle *pk);

/* Writes a printable, truncated copy of n bytes into buf (for messages). */
void ge_pk_printable(char *buf, size_t cap, const unsigned char *s, size_t n);

#endif /* GE_IO_PICKLE_H */
