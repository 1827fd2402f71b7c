/* harness.h - the test harness: TEST(name) { ... } registers a test at load
 * time; CHECK(cond, fmt, ...) records a failure and returns from the test.
 * tests/main.c runs every test (or those whose name contains argv[1]) and
 * ends with the line "N passed, N failed". Tests write only to temporary
 * directories (tmpdir_new) and read shared data through shared_path(). */
#ifndef GE_TEST_HARNESS_H
#define GE_TEST_HARNESS_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*test_fn)(int *failed);
void test_register(const char *name, test_fn fn);

#define TEST(name)                                                                                 \
    static void test_##name(int *test_failed_);                                                    \
    __attribute__((constructor)) static void reg_##name(void) { test_register(#name, test_##name); } \
    static void test_##name(int *test_failed_)

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, "" __VA_ARGS__);                                                       \
            fprintf(stderr, "\n");                                                                 \
            *test_failed_ = 1;                                                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Path of a file under ../shared (or $GANEDIT_SHARED); static buffer per call slot. */
const char *shared_path(const char *rel);
/* Path of a file under tests/vectors. */
const char *vector_path(const char *rel);
/* A fresh temporary directory (removed at exit). */
const char *tmpdir_new(void);

/* The ganedit binary built beside this test runner. */
const char *ganedit_bin(void);
/* Runs `ganedit ARGS` (a shell word list), stderr into err (cap bytes, NUL
 * terminated), stdout discarded; returns the exit status (-1 if killed). */
int ganedit_run(const char *args, char *err, size_t cap);
int file_exists(const char *path);
/* Number of '\n' in s. */
int count_lines(const char *s);

/* max |a - b| and max |b| over n elements. */
double max_abs_diff(const float *a, const float *b, size_t n);
double max_abs(const float *a, size_t n);
/* max |a - ref| / max |ref| (divided by 1 if ref is all zeros) */
double rel_err(const float *a, const float *ref, size_t n);
/* sum a_i b_i in double */
double dot(const float *a, const float *b, size_t n);
/* ||a - b|| / ||b|| */
double rel_l2(const float *a, const float *b, size_t n);

/* Central finite-difference check of a scalar function f(x) against an
 * analytic gradient g at x (n elements): checks up to max_checks evenly
 * spread coordinates with step eps (in double precision of f), passes if
 * |fd - g| <= atol + rtol * max(|fd|, |g|) for all. Returns 1 on pass and
 * prints the worst coordinate on failure. */
typedef double (*fd_fn)(void *ctx, const float *x);
int fd_check(const char *what, fd_fn f, void *ctx, float *x, const float *g, size_t n,
             size_t max_checks, float eps, double atol, double rtol);

#endif
