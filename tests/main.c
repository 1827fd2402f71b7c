/* main.c - the test runner: runs every registered test, or those whose name
 * contains one of the arguments, and prints "N passed, N failed". */
#include "harness.h"
#include "ganedit.h"

#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 2048
static struct {
    const char *name;
    test_fn fn;
} tests[MAX_TESTS];
static int n_tests;

void test_register(const char *name, test_fn fn) {
    if (n_tests < MAX_TESTS) {
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

static char shared_root[4096];

const char *shared_path(const char *rel) {
    static _Thread_local char buf[8][8400];
    static _Thread_local int slot;
    char *b = buf[slot++ & 7];
    snprintf(b, 8400, "%s/%s", shared_root, rel);
    return b;
}

static char vectors_root[4096] = "tests/vectors";

const char *vector_path(const char *rel) {
    static _Thread_local char buf[8][8400];
    static _Thread_local int slot;
    char *b = buf[slot++ & 7];
    snprintf(b, 8400, "%s/%s", vectors_root, rel);
    return b;
}

static char **tmpdirs;
static int n_tmpdirs, cap_tmpdirs;

const char *tmpdir_new(void) {
    char tmpl[] = "/tmp/ganedit-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d) {
        perror("run_tests: mkdtemp");
        exit(2); /* a test without its own folder could clobber another's files */
    }
    if (n_tmpdirs == cap_tmpdirs) {
        cap_tmpdirs = cap_tmpdirs ? 2 * cap_tmpdirs : 64;
        char **t = realloc(tmpdirs, (size_t)cap_tmpdirs * sizeof *t);
        if (!t) {
            perror("run_tests");
            exit(2);
        }
        tmpdirs = t;
    }
    tmpdirs[n_tmpdirs] = strdup(d);
    return tmpdirs[n_tmpdirs++];
}

const char *ganedit_bin(void) {
    static char path[PATH_MAX + 16];
    if (!path[0]) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        snprintf(path, sizeof path, "%s/ganedit", dirname(exe));
    }
    return path;
}

int ganedit_run(const char *args, char *err, size_t cap) {
    static char cmd[65536];
    char errfile[4200];
    snprintf(errfile, sizeof errfile, "%s/stderr", tmpdir_new());
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>%s", ganedit_bin(), args, errfile);
    int st = system(cmd);
    FILE *f = fopen(errfile, "r");
    size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    err[n] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as failure */
    }
    return m;
}

double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

double rel_err(const float *a, const float *ref, size_t n) {
    double m = max_abs(ref, n);
    return max_abs_diff(a, ref, n) / (m > 0 ? m : 1.0);
}

double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

int fd_check(const char *what, fd_fn f, void *ctx, float *x, const float *g, size_t n,
             size_t max_checks, float eps, double atol, double rtol) {
    size_t step = n > max_checks ? n / max_checks : 1;
    double worst = 0;
    size_t worst_i = 0;
    double worst_fd = 0, worst_g = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        double fp = f(ctx, x);
        x[i] = keep - eps;
        double fm = f(ctx, x);
        x[i] = keep;
        double fd = (fp - fm) / ((double)(keep + eps) - (double)(keep - eps));
        double err = fabs(fd - g[i]);
        double tol = atol + rtol * fmax(fabs(fd), fabs(g[i]));
        if (!(err <= tol)) ok = 0;
        if (!(err / tol <= worst)) {
            worst = err / tol;
            worst_i = i;
            worst_fd = fd;
            worst_g = g[i];
        }
    }
    if (!ok)
        fprintf(stderr, "  %s: gradient mismatch at %zu: finite difference %.6g, analytic %.6g\n",
                what, worst_i, worst_fd, worst_g);
    return ok;
}

int main(int argc, char **argv) {
    const char *s = getenv("GANEDIT_SHARED");
    snprintf(shared_root, sizeof shared_root, "%s", s ? s : "../shared");
    const char *v = getenv("GANEDIT_TEST_VECTORS");
    if (v) snprintf(vectors_root, sizeof vectors_root, "%s", v);
    struct stat st;
    if (stat(shared_root, &st) != 0) {
        fprintf(stderr, "run_tests: shared data folder '%s' not found (set GANEDIT_SHARED)\n",
                shared_root);
        return 2;
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        int selected = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strstr(tests[i].name, argv[a])) selected = 1;
        if (!selected) continue;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int f = 0;
        tests[i].fn(&f);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        printf("%s %s (%.0f ms)\n", f ? "FAIL" : "ok  ", tests[i].name, ms);
        fflush(stdout);
        if (f)
            failed++;
        else
            passed++;
    }
    for (int i = 0; i < n_tmpdirs; i++) {
        nftw(tmpdirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(tmpdirs[i]);
    }
    free(tmpdirs);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
