/* st_write.h - the tests' own tiny F32 safetensors writer, so that the model
 * tests that build weight files depend only on the library's reader. */
#ifndef GE_TEST_ST_WRITE_H
#define GE_TEST_ST_WRITE_H

#include <stdint.h>

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];
    const float *data;
} st_entry;

/* Writes n tensors (F32, little-endian) to path, with meta (a JSON object's
 * text, or NULL) as __metadata__. 1 on success. */
int st_write(const char *path, const st_entry *e, int n, const char *meta);

#endif
