/* atomic.c - whole-file input and all-or-nothing output.
 *
 * Readers either map a file read-only (weights: no copy, pages shared with
 * the page cache) or read it whole under a size cap (small inputs). Writers
 * go through ge_atomic_*: the bytes land in "<path>.tmp.<pid>.<n>" next to
 * the target, are flushed and fsync'd, and only then renamed over the target,
 * so a crash or error never leaves a half-written output under its real name
 * (DESIGN.md: "no half-written output file"). The temporary name lives in the
 * same folder so that rename() stays within one file system. */
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

ge_status ge_read_file(const char *path, unsigned char **data, size_t *len, size_t max_bytes) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ge_fail(GE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return ge_fail(GE_ERR_IO, "%s: is a directory", path);
    }
    /* Grow as we go: also works for pipes and files whose size changes. */
    size_t cap = (S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size <= max_bytes)
                     ? (size_t)st.st_size + 1
                     : 4096;
    size_t n = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory reading the file", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap > max_bytes) break;
            size_t ncap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return ge_fail(GE_ERR_NOMEM, "%s: out of memory reading the file", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return ge_fail(GE_ERR_IO, "%s: read error", path);
    }
    if (n > max_bytes) {
        free(buf);
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: file larger than %zu bytes", path, max_bytes);
    }
    *data = buf;
    *len = n;
    return GE_OK;
}

ge_status ge_map_file(const char *path, const unsigned char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ge_fail(GE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ge_fail(GE_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return GE_OK;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return ge_fail(GE_ERR_UNSUPPORTED, "%s: file too large to map", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return ge_fail(GE_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    *data = map;
    *len = (size_t)st.st_size;
    return GE_OK;
}

void ge_unmap_file(const unsigned char *data, size_t len) {
    if (data && len) munmap((void *)data, len);
}

ge_status ge_atomic_open(ge_atomic_file *af, const char *path) {
    static atomic_uint counter;
    memset(af, 0, sizeof *af);
    if (!path || !*path) return ge_fail(GE_ERR_ARG, "empty output path");
    size_t n = strlen(path);
    if (n >= sizeof af->path) return ge_fail(GE_ERR_ARG, "%.200s...: output path too long", path);
    memcpy(af->path, path, n + 1);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    /* O_EXCL: never write through a link or over someone else's file. */
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        af->tmp[0] = 0;
        return ge_fail(GE_ERR_IO, "%s: cannot create a temporary file next to it: %s", path,
                       strerror(errno));
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        unlink(af->tmp);
        af->tmp[0] = 0;
        return ge_fail(GE_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    }
    return GE_OK;
}

ge_status ge_atomic_commit(ge_atomic_file *af) {
    if (!af->f) return ge_fail(GE_ERR_ARG, "%s: not open for writing", af->path);
    int bad = fflush(af->f) != 0 || ferror(af->f);
    int err = bad ? errno : 0;
    if (!bad && fsync(fileno(af->f)) != 0) {
        bad = 1;
        err = errno;
    }
    if (fclose(af->f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    af->f = NULL;
    if (!bad && rename(af->tmp, af->path) != 0) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        unlink(af->tmp);
        af->tmp[0] = 0;
        return ge_fail(GE_ERR_IO, "%s: write failed: %s", af->path,
                       err ? strerror(err) : "stream error");
    }
    af->tmp[0] = 0;
    return GE_OK;
}

void ge_atomic_abort(ge_atomic_file *af) {
    if (!af) return;
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
    }
    if (af->tmp[0]) {
        unlink(af->tmp);
        af->tmp[0] = 0;
    }
}
