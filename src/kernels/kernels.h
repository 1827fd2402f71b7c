/* kernels.h - the compute kernels every op is built from: matrix multiply,
 * im2col/col2im, direct convolutions through oneDNN primitives (the fast
 * path, fp32 or bf16), the thread count and the precision. All threading in
 * libganedit lives here or in `#pragma omp parallel for` over the outermost
 * independent loop of an op; results for a given thread count are
 * deterministic. */
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

/* Hot elementwise loops are compiled twice, for AVX-512 (x86-64-v4) and for
 * the baseline the Makefile targets, and the copy the CPU can run is picked
 * at load time (GCC target_clones, an ifunc): the build stays portable and
 * this CPU gets 16-wide vectors. Elementwise results are the same bits in
 * both copies (no FMA contraction in ISO C mode); vectorised sums may round
 * differently between the copies, never between runs on one machine. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define GE_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define GE_SIMD_CLONES
#endif

/* ---- direct convolution through oneDNN primitives (dnnl_conv.c) ----------
 * The fast path of conv2d / convt2d; im2col + GEMM stays as the reference
 * and the fallback. One problem, shared weights:
 *   y (n, c_out, oh, ow) = conv(x (n, c_in, h, w), w (c_out, c_in, kh, kw)),
 *   oh = (h + 2 pad - kh) / stride + 1,
 * zero padding done by oneDNN, reflection padding while packing x.
 * Each call packs the NCHW fp32 operands into the layouts the primitive
 * chose (format_tag_any; bf16 when ge_use_bf16()), runs it, and unpacks the
 * fp32 result. Primitives are cached per (problem, pass, precision, thread
 * count); the packed buffers live in one arena grown to the largest problem.
 * Calls are serialised by a lock. Each returns 1 when done, 0 when oneDNN
 * cannot do this problem well here (no primitive, a "ref" implementation, a
 * layout it cannot pack, out of memory): the caller then falls back, and
 * nothing was written. */
typedef struct {
    int n, c_in, h, w;
    int c_out, kh, kw;
    int stride, pad, pad_mode;
    int w_iohw;  /* 1: w is stored (c_in, c_out, kh, kw) (a transposed conv's weight read
                    as the weight of its adjoint), 0: (c_out, c_in, kh, kw) */
    int w_const; /* 1: the values behind w do not change until ge_dconv_forget(w): the
                    packed copy is kept between calls; 0: packed on every call */
    int wino;    /* 1: oneDNN's Winograd kernels may run where they pay (w_const
                    forwards, large data gradients; see dnnl_conv.c). Their results
                    differ from the direct kernels' by rounding, so only callers that
                    ask get them; each sample is then its own call, so a sample's
                    result does not depend on the rest of the batch */
} ge_dconv_shape;

enum { GE_DCONV_FWD = 0, GE_DCONV_BWD_DATA = 1, GE_DCONV_BWD_WEIGHTS = 2 };

/* y = conv(x, w) + b (b (c_out) may be NULL), or y += conv(x, w) + b when
 * accumulate. */
int ge_dconv_forward(float *y, const float *x, const float *w, const float *b,
                     const ge_dconv_shape *s, int accumulate);
/* dx (n, c_in, h, w) += conv^T(dy (n, c_out, oh, ow)) (reflection folded
 * back); with accumulate = 0, dx = conv^T(dy) + b (b (c_in) may be NULL):
 * the forward of a transposed convolution. */
int ge_dconv_backward_data(float *dx, const float *dy, const float *w, const float *b,
                           const ge_dconv_shape *s, int accumulate);
/* dw (c_out, c_in, kh, kw), or (c_in, c_out, kh, kw) with w_iohw, += the
 * weight gradient summed over the batch. */
int ge_dconv_backward_weights(float *dw, const float *dy, const float *x, const ge_dconv_shape *s);
/* The oneDNN implementation a pass gets ("jit:avx512_core", ...), or NULL
 * when it would fall back; creates the primitive if needed. */
const char *ge_dconv_impl(const ge_dconv_shape *s, int pass);
/* 0 turns the fast path off (every ge_dconv_* call returns 0), 1 back on;
 * returns the previous setting. For tests and benchmarks; GANEDIT_CONV=im2col
 * in the environment starts a program with it off. */
int ge_dconv_enable(int on);
/* 0: direct kernels only; 1 (default): oneDNN's Winograd convolution for the
 * 3x3 stride-1 passes where it is faster here (see wino_wanted in
 * dnnl_conv.c; results differ from direct ones by rounding). Returns the
 * previous setting. GANEDIT_CONV=direct in the environment starts with 0. */
int ge_dconv_winograd(int on);
/* Frees every cached primitive and the arena (they come back on demand). */
void ge_dconv_release(void);
/* Drops the packed copies of w kept for w_const calls (call it before w's
 * values change or its memory is freed). */
void ge_dconv_forget(const float *w);

/* 1 when convolutions run in bf16 now (ge_set_precision and CPU support). */
int ge_use_bf16(void);
/* 1 lets a bf16 request run on AVX512-BF16 without AMX (slower than fp32
 * there, see precision.c): for tests of the bf16 numerics. Returns the
 * previous setting. */
int ge_bf16_allow_avx512(int on);

#endif /* GE_KERNELS_H */
