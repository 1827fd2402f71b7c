/* io.h - internal helpers shared by the file readers and writers: whole-file
 * reading with a size cap, atomic writes (temporary name + rename), and the
 * readers behind ge_tensors_load. */
#ifndef GE_IO_H
#define GE_IO_H

#include "core/core.h"
#include <stdio.h>

/* Reads a whole file (at most max_bytes) into a malloc'd buffer. */
ge_status ge_read_file(const char *path, unsigned char **data, size_t *len, size_t max_bytes);

/* Atomic output: open "<path>.tmp.<pid>.<n>" for writing; commit renames it
 * over path (fsync first; on failure the temporary is removed); abort removes
 * it and is harmless after a failed open or a commit. Errors name `path`. */
typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4200];
} ge_atomic_file;
ge_status ge_atomic_open(ge_atomic_file *af, const char *path);
ge_status ge_atomic_commit(ge_atomic_file *af);
void ge_atomic_abort(ge_atomic_file *af);

/* Read-only memory map of a whole regular file (len may be 0: then *data is
 * NULL). Unmap with ge_unmap_file. Errors name `path`. */
ge_status ge_map_file(const char *path, const unsigned char **data, size_t *len);
void ge_unmap_file(const unsigned char *data, size_t len);

/* Element types found in weight files; every one is converted to float32. */
typedef enum {
    GE_DT_F32,
    GE_DT_F64,
    GE_DT_F16,
    GE_DT_BF16,
    GE_DT_I64,
    GE_DT_I32,
    GE_DT_I16,
    GE_DT_I8,
    GE_DT_U8,
    GE_DT_BOOL,
} ge_dtype;
/* Bytes per element; the safetensors name ("F32", "BF16", "I64", ...). */
size_t ge_dtype_size(ge_dtype dt);
const char *ge_dtype_name(ge_dtype dt);
/* The dtype of a safetensors name; 0 if unknown (then *dt is untouched). */
int ge_dtype_from_name(ge_dtype *dt, const char *name);
/* dst (n) = src (n little-endian elements of dt, any alignment) as float32:
 * F16/BF16 exactly, F64 rounded to nearest, integers rounded to nearest. */
void ge_convert_to_f32(float *dst, const void *src, size_t n, ge_dtype dt);

/* As ge_safetensors_save, but every tensor stored as F16 (IEEE half, rounded
 * to nearest even): half the size, for shipped weights. */
ge_status ge_safetensors_save_f16(const char *path, const ge_tensor *tensors, int n,
                                  const char *metadata_json);

/* Format readers (all fill a new ge_tensors). */
ge_status ge_safetensors_read(ge_tensors **out, const char *path);
ge_status ge_npy_read_tensors(ge_tensors **out, const char *path);

#endif /* GE_IO_H */
