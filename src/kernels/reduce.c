/* reduce.c - per-channel sums, the bias gradient of every conv-like op.
 * One thread per channel with a double accumulator, so the order of the
 * additions is fixed and the result does not depend on the thread count. */
#include "kernels/kernels.h"

void ge_sum_channels(float *db, const float *x, int n, int c, size_t hw) {
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw > 65536)
    for (int o = 0; o < c; o++) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            const float *xr = x + ((size_t)i * c + o) * hw;
            for (size_t j = 0; j < hw; j++)
                s += xr[j];
        }
        db[o] += (float)s;
    }
}
