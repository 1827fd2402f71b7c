/* tensors.c - the named-tensor set that every weight-file reader fills.
 * Entries keep file order; names are copied; data either lives in an mmap of
 * the file or in blocks the set owns, so freeing the set frees everything. */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

ge_tensors *ge_tensors_new(void) {
    ge_tensors *ts = ge_calloc(1, sizeof *ts);
    return ts;
}

ge_status ge_tensors_own(ge_tensors *ts, void *block) {
    if (ts->n_owned == ts->cap_owned) {
        int cap = ts->cap_owned ? ts->cap_owned * 2 : 16;
        void **o = realloc(ts->owned, (size_t)cap * sizeof *o);
        if (!o) {
            free(block);
            return ge_fail(GE_ERR_NOMEM, "out of memory");
        }
        ts->owned = o;
        ts->cap_owned = cap;
    }
    ts->owned[ts->n_owned++] = block;
    return GE_OK;
}

ge_tensor *ge_tensors_add(ge_tensors *ts, const char *name, int ndim, const int64_t *shape,
                          float *data) {
    if (ndim < 0 || ndim > 8) {
        ge_fail(GE_ERR_UNSUPPORTED, "tensor '%s' has %d dimensions (at most 8)", name, ndim);
        return NULL;
    }
    if (ts->n == ts->cap) {
        int cap = ts->cap ? ts->cap * 2 : 32;
        ge_tensor *t = realloc(ts->t, (size_t)cap * sizeof *t);
        if (!t) {
            ge_fail(GE_ERR_NOMEM, "out of memory");
            return NULL;
        }
        ts->t = t;
        ts->cap = cap;
    }
    ge_tensor *t = &ts->t[ts->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        ge_fail(GE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    t->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        if (shape[i] < 0 || !ge_mul_ok(numel, (size_t)shape[i], &numel)) {
            free(t->name);
            ge_fail(GE_ERR_FORMAT, "tensor '%s' has an invalid shape", name);
            return NULL;
        }
    }
    t->numel = numel;
    t->data = data;
    ts->n++;
    return t;
}

void ge_tensors_free(ge_tensors *ts) {
    if (!ts) return;
    for (int i = 0; i < ts->n; i++) free(ts->t[i].name);
    free(ts->t);
    for (int i = 0; i < ts->n_owned; i++) free(ts->owned[i]);
    free(ts->owned);
    free(ts->metadata);
    if (ts->map) munmap(ts->map, ts->map_len);
    free(ts);
}

int ge_tensors_count(const ge_tensors *ts) { return ts ? ts->n : 0; }

const ge_tensor *ge_tensors_at(const ge_tensors *ts, int i) {
    return (ts && i >= 0 && i < ts->n) ? &ts->t[i] : NULL;
}

const ge_tensor *ge_tensors_find(const ge_tensors *ts, const char *name) {
    if (!ts) return NULL;
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].name, name) == 0) return &ts->t[i];
    return NULL;
}

const ge_tensor *ge_tensors_vfind(const ge_tensors *ts, const char *fmt, va_list ap) {
    if (!ts) return NULL;
    char name[256];
    vsnprintf(name, sizeof name, fmt, ap);
    return ge_tensors_find(ts, name);
}

float *ge_tensors_data_of(const ge_tensors *ts, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const ge_tensor *t = ge_tensors_vfind(ts, fmt, ap);
    va_end(ap);
    return t ? t->data : NULL;
}

const char *ge_tensors_metadata(const ge_tensors *ts) { return ts ? ts->metadata : NULL; }
