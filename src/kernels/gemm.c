/* gemm.c - matrix multiply. The fast path is oneDNN's dnnl_sgemm, which JITs
 * AVX-512 code for this CPU (Debian's OpenBLAS falls back to SSE3 here); the
 * triple loop is the reference the tests and benchmarks compare it against.
 * dnnl_sgemm threads itself with OpenMP at omp_get_max_threads(), which
 * ge_set_num_threads sets; for one thread count its result is the same on
 * every run, and 1 vs 2 threads agree to rounding (tests/test_ops_conv.c). */
#include "kernels/kernels.h"

#include <oneapi/dnnl/dnnl.h>

void ge_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = beta == 0.f ? 0.f : beta * c[(size_t)i * ldc + j];
        return;
    }
    dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c,
               ldc);
}

void ge_gemm_ref(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                float av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += (double)av * bv;
            }
            float *cij = &c[(size_t)i * ldc + j];
            *cij = (float)(alpha * s + (beta == 0.f ? 0.f : beta * *cij));
        }
}
