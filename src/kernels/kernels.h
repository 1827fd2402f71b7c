/* kernels.h - the compute kernels every op is built from: matrix multiply,
 * im2col/col2im, and the thread count. All threading in libganedit lives
 * here or in `#pragma omp parallel for` over the outermost independent loop
 * of an op; results for a given thread count are deterministic. */
#ifndef GE_KERNELS_H
#define GE_KERNELS_H

#include <stddef.h>

/* C (m, n) = alpha * op(A) op(B) + beta * C, row-major; op(X) = X or X^T.
 * A is (m, k) or, transposed, (k, m); lda/ldb/ldc are row strides.
 * Backed by oneDNN's dnnl_sgemm (AVX-512 / AMX aware JIT). */
void ge_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);
/* The simple triple loop ge_gemm is tested against. */
void ge_gemm_ref(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Padding modes for im2col. */
enum { GE_PAD_ZERO = 0, GE_PAD_REFLECT = 1 };

/* col (c*kh*kw, oh*ow) from one image x (c, h, w); stride s, padding p, dilation 1.
 * Reflection padding mirrors without repeating the edge (as ReflectionPad2d). */
void ge_im2col(float *col, const float *x, int c, int h, int w, int kh, int kw, int stride,
               int pad, int pad_mode, int oh, int ow);
/* The adjoint: x (c, h, w) += col2im(col). */
void ge_col2im(float *x, const float *col, int c, int h, int w, int kh, int kw, int stride,
               int pad, int pad_mode, int oh, int ow);

/* The same on output rows [oy0, oy1) only: col is (c*kh*kw, (oy1-oy0)*ow).
 * Convolutions walk the output in such row bands so the column buffer stays
 * small (see ge_col_rows) instead of growing with the image. */
void ge_im2col_rows(float *col, const float *x, int c, int h, int w, int kh, int kw, int stride,
                    int pad, int pad_mode, int oh, int ow, int oy0, int oy1);
void ge_col2im_rows(float *x, const float *col, int c, int h, int w, int kh, int kw, int stride,
                    int pad, int pad_mode, int oh, int ow, int oy0, int oy1);
/* Output rows per band for a column matrix of k rows and ow columns per
 * output row: as many as fit a fixed budget (GE_COL_BUDGET floats, about
 * 4 MB), at least 1, at most oh. */
#ifndef GE_COL_BUDGET
#define GE_COL_BUDGET ((size_t)1 << 20)
#endif
int ge_col_rows(int k, int oh, int ow);

/* db (c) += sum over i < n and j < hw of x (n, c, hw)[i][c][j] (a bias gradient);
 * the order of the additions is fixed whatever the thread count. */
void ge_sum_channels(float *db, const float *x, int n, int c, size_t hw);

/* Threads used by kernels (ge_set_num_threads in the public API). */
int ge_threads(void);

#endif /* GE_KERNELS_H */
