/* test_io_util.h - helpers shared by the tests/test_io_*.c files: write and
 * read whole files in a temporary folder, and compare two tensor sets bit
 * for bit (names, order, shapes and every float's bits; test_train.c uses
 * that for checkpoints). */
#ifndef GE_TEST_IO_UTIL_H
#define GE_TEST_IO_UTIL_H

#include "ganedit.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes n bytes to dir/name; returns the path (static slot) or NULL. */
static inline const char *io_write(const char *dir, const char *name, const void *data, size_t n) {
    static char buf[8][4096];
    static int slot;
    char *p = buf[slot++ & 7];
    snprintf(p, 4096, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    if (n && fwrite(data, 1, n, f) != n) {
        fclose(f);
        return NULL;
    }
    return fclose(f) == 0 ? p : NULL;
}

/* Reads a whole file (malloc'd) or returns NULL. */
static inline unsigned char *io_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(len > 0 ? (size_t)len : 1);
    if (d && len > 0 && fread(d, 1, (size_t)len, f) != (size_t)len) {
        free(d);
        d = NULL;
    }
    fclose(f);
    *n = len > 0 ? (size_t)len : 0;
    return d;
}

/* 1 if a and b hold the same tensors: names, order, shapes, bits. On a
 * difference, says which in why[]. */
static inline int io_same_tensors(const ge_tensors *a, const ge_tensors *b, char *why, size_t cap) {
    if (ge_tensors_count(a) != ge_tensors_count(b)) {
        snprintf(why, cap, "%d tensors vs %d", ge_tensors_count(a), ge_tensors_count(b));
        return 0;
    }
    for (int i = 0; i < ge_tensors_count(a); i++) {
        const ge_tensor *x = ge_tensors_at(a, i), *y = ge_tensors_at(b, i);
        if (strcmp(x->name, y->name)) {
            snprintf(why, cap, "tensor %d is '%s' vs '%s'", i, x->name, y->name);
            return 0;
        }
        if (x->ndim != y->ndim || x->numel != y->numel ||
            memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim)) {
            snprintf(why, cap, "tensor '%s': shapes differ", x->name);
            return 0;
        }
        if (x->numel && memcmp(x->data, y->data, x->numel * sizeof(float))) {
            snprintf(why, cap, "tensor '%s': values differ", x->name);
            return 0;
        }
    }
    return 1;
}

/* 1 if the last error message names `path`. */
static inline int io_msg_names(const char *path) {
    return strstr(ge_errmsg(), path) != NULL;
}

#endif
