/* fuzz_common.h - what every libFuzzer target in fuzz/ shares: the input
 * written to an in-memory file (the readers take a path, and a memfd's
 * /proc/self/fd/N path costs no disk), the promises every refusal must keep
 * (a known status, a one-line message that names the file), and a walk over
 * every float of a result so that AddressSanitizer sees a tensor pointer
 * that reaches past its buffer or its mapping.
 *
 * A broken promise calls abort(), which libFuzzer reports as a crash and
 * saves as an input, like any sanitizer report. Header-only: each target is
 * one .c file linked with the library's io and core objects.
 *
 * The checking code is built without coverage tracing (FZ_NOCOV): its
 * loops over every float or value would otherwise cost more than the reader
 * under test, and its branches are not paths worth exploring. */
#ifndef GE_FUZZ_COMMON_H
#define GE_FUZZ_COMMON_H

#include "core/core.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FZ_NOCOV __attribute__((no_sanitize("coverage"), noinline))

/* Writes data to this process's memfd and returns its path. */
static inline const char *fz_file(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("ganedit-fuzz", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    return path;
}

static inline void fz_die(const char *why, const char *msg) {
    fprintf(stderr, "fuzz invariant broken: %s\n  message: '%s'\n", why, msg ? msg : "(null)");
    abort();
}

/* A failed call must give a known status and a one-line message naming `what`.
 * GE_ERR_NOMEM is exempt from naming (the allocation helpers set their own). */
static inline void fz_check_refusal(ge_status s, const char *what) {
    if (s == GE_OK) return;
    const char *m = ge_errmsg();
    if ((int)s < 0 || s > GE_ERR_INTERRUPTED) fz_die("unknown status code", m);
    if (!m || !*m) fz_die("a refusal without a message", m);
    if (strchr(m, '\n') || strchr(m, '\r')) fz_die("a message of more than one line", m);
    if (s != GE_ERR_NOMEM && what && !strstr(m, what)) fz_die("the message does not name the input", m);
}

static volatile float fz_sink;

/* Reads x[0 .. n); returns how many lie outside [lo, hi] (NaN counts). */
FZ_NOCOV static inline size_t fz_read_floats(const float *x, size_t n, float lo, float hi) {
    size_t out = 0;
    float acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += x[i];
        out += !(x[i] >= lo && x[i] <= hi);
    }
    fz_sink = acc;
    return out;
}

/* Reads every float of every tensor and checks the bookkeeping. */
FZ_NOCOV static inline void fz_touch_tensors(const ge_tensors *t) {
    int n = ge_tensors_count(t);
    for (int i = 0; i < n; i++) {
        const ge_tensor *x = ge_tensors_at(t, i);
        if (!x || !x->name) fz_die("a tensor without a name", NULL);
        if (x->ndim < 0 || x->ndim > 8) fz_die("a tensor rank outside 0..8", x->name);
        size_t numel = 1;
        for (int d = 0; d < x->ndim; d++) {
            if (x->shape[d] < 0 || !ge_mul_ok(numel, (size_t)x->shape[d], &numel))
                fz_die("an impossible shape", x->name);
        }
        if (numel != x->numel) fz_die("numel differs from the shape", x->name);
        if (numel && !x->data) fz_die("a non-empty tensor without data", x->name);
        fz_read_floats(x->data, numel, 0.f, 0.f);
        if (ge_tensors_find(t, x->name) == NULL) fz_die("a tensor that find() cannot find", x->name);
    }
    const char *meta = ge_tensors_metadata(t);
    if (meta) fz_sink = (float)strlen(meta);
}

#endif /* GE_FUZZ_COMMON_H */
