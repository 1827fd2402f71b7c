/* error.c - one message per thread for the last failure, and the checked
 * allocation helpers. The library never prints; the caller asks ge_errmsg(). */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char msg[1024];

ge_status ge_fail(ge_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one line only: a file name or string from a file may hold newlines */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return code;
}

void ge_clear_error(void) { msg[0] = 0; }

const char *ge_errmsg(void) { return msg; }

const char *ge_status_name(ge_status s) {
    switch (s) {
    case GE_OK: return "ok";
    case GE_ERR_ARG: return "bad argument";
    case GE_ERR_IO: return "i/o error";
    case GE_ERR_FORMAT: return "format error";
    case GE_ERR_UNSUPPORTED: return "unsupported";
    case GE_ERR_SHAPE: return "shape mismatch";
    case GE_ERR_NOMEM: return "out of memory";
    case GE_ERR_UNSAFE: return "unsafe content refused";
    case GE_ERR_NUMERIC: return "non-finite number";
    case GE_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}

int ge_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

void *ge_malloc(size_t a, size_t b) {
    size_t n;
    if (!ge_mul_ok(a, b, &n)) {
        ge_fail(GE_ERR_NOMEM, "allocation size overflows (%zu x %zu)", a, b);
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (!p) ge_fail(GE_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *ge_calloc(size_t a, size_t b) {
    size_t n;
    if (!ge_mul_ok(a, b, &n)) {
        ge_fail(GE_ERR_NOMEM, "allocation size overflows (%zu x %zu)", a, b);
        return NULL;
    }
    void *p = calloc(n ? n : 1, 1);
    if (!p) ge_fail(GE_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

float *ge_alloc_floats(size_t n) {
    size_t bytes;
    if (!ge_mul_ok(n ? n : 1, sizeof(float), &bytes) || bytes > SIZE_MAX - 64) {
        ge_fail(GE_ERR_NOMEM, "allocation of %zu floats overflows", n);
        return NULL;
    }
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (!p) ge_fail(GE_ERR_NOMEM, "out of memory allocating %zu floats", n);
    return p;
}
