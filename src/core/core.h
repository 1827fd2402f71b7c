/* core.h - internal helpers every part of libganedit uses: setting the error
 * message, overflow-checked allocation, and the tensor-set type behind
 * ge_tensors. Not installed; the public API is include/ganedit.h. */
#ifndef GE_CORE_H
#define GE_CORE_H

#include "ganedit.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Sets this thread's message (printf-style) and returns code, so that
 * `return ge_fail(GE_ERR_IO, "%s: cannot open", path);` reads naturally. */
ge_status ge_fail(ge_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clears the message. */
void ge_clear_error(void);

/* malloc/calloc of a*b bytes with overflow checks; NULL (and a message) on
 * failure. ge_alloc_floats(n) is 64-byte aligned and freed with free(). */
void *ge_malloc(size_t a, size_t b);
void *ge_calloc(size_t a, size_t b);
float *ge_alloc_floats(size_t n);
/* a*b into *out; 0 on overflow. */
int ge_mul_ok(size_t a, size_t b, size_t *out);

/* The definition behind the opaque ge_tensors. Tensors point either into
 * `map` (a read-only mmap of an F32 file, when aligned) or into owned
 * buffers listed in `owned`. */
struct ge_tensors {
    int n, cap;
    ge_tensor *t;
    char *metadata;  /* JSON text or NULL */
    void *map;       /* mmap'd file or NULL */
    size_t map_len;
    void **owned;    /* malloc'd blocks to free */
    int n_owned, cap_owned;
};

ge_tensors *ge_tensors_new(void);
/* Appends a tensor (name copied). data is not copied: it must be owned by the
 * set (ge_tensors_own) or point into its map. Returns the new entry or NULL. */
ge_tensor *ge_tensors_add(ge_tensors *ts, const char *name, int ndim, const int64_t *shape,
                          float *data);
/* Registers a malloc'd block to be freed with the set; frees it and fails on OOM. */
ge_status ge_tensors_own(ge_tensors *ts, void *block);
/* The data of the tensor named printf(fmt, ...) in ts, or NULL if ts is NULL
 * or has none (e.g. the gradient sets of the backwards, which hold only the
 * gradients wanted). */
float *ge_tensors_data_of(const ge_tensors *ts, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The tensor named vprintf(fmt, ap) in ts, or NULL. */
const ge_tensor *ge_tensors_vfind(const ge_tensors *ts, const char *fmt, va_list ap);

#endif /* GE_CORE_H */
