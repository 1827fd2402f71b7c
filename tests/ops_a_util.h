/* ops_a_util.h - helpers shared by the tests of conv2d, conv_transpose2d,
 * linear, bias_act, modulate and the kernels (tests/test_kernels.c,
 * tests/test_ops_{conv,linear,act,modulate}.c): the PyTorch vectors in
 * tests/vectors/ops_a.safetensors (made by tools/gen_op_vectors_a.py), the
 * weighted-sum loss L = sum(y * r) in double, and comparisons against a
 * reference. Static functions only, so each test file is self-contained. */
#ifndef GE_TESTS_OPS_A_UTIL_H
#define GE_TESTS_OPS_A_UTIL_H

#include "core/core.h"
#include "ganedit.h"
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The vector file, or NULL with a message on stderr. */
static inline ge_tensors *opsa_load_vectors(void) {
    ge_tensors *ts = NULL;
    if (ge_safetensors_load(&ts, vector_path("ops_a.safetensors")) != GE_OK) {
        fprintf(stderr, "  cannot load ops_a.safetensors: %s\n", ge_errmsg());
        return NULL;
    }
    return ts;
}

/* The tensor "<fmt...>" (printf-style name) or NULL; *numel set if not NULL. */
__attribute__((format(printf, 3, 4))) static inline const float *
opsa_vec(const ge_tensors *ts, size_t *numel, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const ge_tensor *t = ge_tensors_vfind(ts, fmt, ap);
    va_end(ap);
    if (numel) *numel = t ? t->numel : 0;
    return t ? t->data : NULL;
}

/* sum(y * r) with a double accumulator. */
static inline double opsa_dot(const float *y, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * r[i];
    return s;
}

/* n floats from N(0, scale^2), seeded; free() the result. */
static inline float *opsa_randn(uint64_t seed, size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) return NULL;
    ge_rng r;
    ge_rng_seed(&r, seed);
    ge_rng_fill_normal(&r, x, n);
    for (size_t i = 0; i < n; i++)
        x[i] *= scale;
    return x;
}

/* n zeroed floats; free() the result. */
static inline float *opsa_zeros(size_t n) {
    return calloc(n ? n : 1, sizeof(float));
}

/* 1 if max |got - ref| <= rtol * max |ref| (+ 1e-30); else prints and 0. */
static inline int opsa_close(const char *what, const float *got, const float *ref, size_t n,
                             double rtol) {
    double d = max_abs_diff(got, ref, n), m = max_abs(ref, n);
    if (d <= rtol * m + 1e-30) return 1;
    fprintf(stderr, "  %s: max |diff| %.3g > %.1g * max |ref| %.3g\n", what, d, rtol, m);
    return 0;
}

#endif
