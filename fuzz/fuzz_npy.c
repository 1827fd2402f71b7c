/* fuzz_npy.c - libFuzzer target: ge_npy_load on the input as a file. A
 * result's shape must account for exactly the floats returned (all read
 * back here); a refusal must name the file. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(data, size);
    float *f = NULL;
    int ndim = -1;
    int64_t shape[8];
    ge_clear_error();
    ge_status s = ge_npy_load(path, &f, &ndim, shape);
    fz_check_refusal(s, path);
    if (s == GE_OK) {
        if (ndim < 0 || ndim > 8) fz_die("rank outside 0..8", NULL);
        size_t numel = 1;
        for (int i = 0; i < ndim; i++)
            if (shape[i] < 0 || !ge_mul_ok(numel, (size_t)shape[i], &numel))
                fz_die("an impossible shape", NULL);
        if (numel > size) fz_die("more floats than input bytes", NULL);
        if (!f) fz_die("no data on success", NULL);
        fz_read_floats(f, numel, 0.f, 0.f);
    } else if (f) {
        fz_die("data returned on failure", ge_errmsg());
    }
    free(f);
    return 0;
}
