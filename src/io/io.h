/* io.h - internal helpers shared by the file readers and writers: whole-file
 * reading with a size cap, atomic writes (temporary name + rename), and the
 * readers behind ge_tensors_load. */
#ifndef GE_IO_H
#define GE_IO_H

#include "core/core.h"
#include <stdio.h>

/* Reads a whole file (at most max_bytes) into a malloc'd buffer. */
ge_status ge_read_file(const char *path, unsigned char **data, size_t *len, size_t max_bytes);

/* Atomic output: open "<path>.tmp.<pid>" for writing; commit renames it over
 * path (fsync first); abort removes it. Errors name `path`. */
typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4200];
} ge_atomic_file;
ge_status ge_atomic_open(ge_atomic_file *af, const char *path);
ge_status ge_atomic_commit(ge_atomic_file *af);
void ge_atomic_abort(ge_atomic_file *af);

/* Format readers (all fill a new ge_tensors). */
ge_status ge_safetensors_read(ge_tensors **out, const char *path);
ge_status ge_npy_read_tensors(ge_tensors **out, const char *path);

#endif /* GE_IO_H */
