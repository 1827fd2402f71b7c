/* maxpool.c - 2x2 max pooling with stride 2 (VGG's pooling layers), with
 * PyTorch's ceil_mode: a window that runs past the bottom or right edge
 * uses only the elements inside the input.
 *
 * The winner of each window follows PyTorch's CPU kernel exactly: windows are
 * scanned in row-major order, a later element wins only if strictly larger
 * (so ties go to the first), and a NaN wins and propagates (the last NaN
 * of a window gets the gradient, as in PyTorch). The backward
 * finds the winner again from the saved input and routes dy to it; no index
 * buffer is kept. Planes are the parallel loop.
 *
 * Speed: on CPUs with AVX-512, full windows go 16 at a time (two input rows
 * of 32 columns, split into even and odd columns, the same comparisons in
 * the same order as the scalar code, so the same winner); the backward adds
 * dy to the winner only (masked adds), so dx is bit for bit the scalar
 * result. The scalar loops do the rest and are the reference
 * (ge_maxpool2_scalar, tests/test_speed_pool.c). */
#include "ops/ops.h"

#include <math.h>
#include <stddef.h>

/* Below this much work a loop runs on one thread: waking the team costs more. */
enum { PAR_MIN = 1 << 15 };

void ge_maxpool2_out_size(int h, int w, int ceil_mode, int *oh, int *ow) {
    *oh = ceil_mode ? (h + 1) / 2 : h / 2;
    *ow = ceil_mode ? (w + 1) / 2 : w / 2;
}

static inline int beats(float v, float m) {
    return v > m || isnan(v);
}

/* Offset (within the plane) of the winning element of window (oy, ox).
 * PyTorch starts from -inf at the first element's index and takes each
 * element that beats the running maximum; starting from the first element
 * itself picks the same index in every case (a later NaN replaces an
 * earlier one, as there). */
static inline size_t window_argmax(const float *xp, int h, int w, int oy, int ox) {
    int y0 = 2 * oy, x0 = 2 * ox;
    size_t k0 = (size_t)y0 * w + x0, best = k0;
    float m = xp[k0];
    if (y0 + 1 < h && x0 + 1 < w) { /* a full window: the common case */
        size_t k[3] = {k0 + 1, k0 + w, k0 + w + 1};
        for (int i = 0; i < 3; i++)
            if (beats(xp[k[i]], m)) m = xp[k[i]], best = k[i];
        return best;
    }
    int y1 = y0 + 2 < h ? y0 + 2 : h, x1 = x0 + 2 < w ? x0 + 2 : w;
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++) {
            size_t k = (size_t)iy * w + ix;
            if (k != k0 && beats(xp[k], m)) m = xp[k], best = k;
        }
    return best;
}

static int scalar_only; /* ge_maxpool2_scalar */

int ge_maxpool2_scalar(int on) {
    int was = scalar_only;
    scalar_only = on != 0;
    return was;
}

/* Full windows of output row oy that the vector code does: [0, vec_end). */
static int vec_windows(int h, int w, int oy) {
    if (2 * oy + 1 >= h) return 0;
    return w / 32 * 16;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GE_AVX512 __attribute__((target("avx512f")))
#define HAVE_VEC 1

/* beats(v, m) for 16 lanes: v > m, or v is NaN */
GE_AVX512 static inline __mmask16 beats16(__m512 v, __m512 m) {
    return _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}

/* The 16 windows at columns [2 ox, 2 ox + 32) of rows r0, r1: their maxima
 * and which element won (0: r0 even, 1: r0 odd, 2: r1 even, 3: r1 odd). */
GE_AVX512 static inline __m512 win16(const float *r0, const float *r1, __m512i *code) {
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    __m512 a0 = _mm512_loadu_ps(r0), a1 = _mm512_loadu_ps(r0 + 16);
    __m512 b0 = _mm512_loadu_ps(r1), b1 = _mm512_loadu_ps(r1 + 16);
    __m512 m = _mm512_permutex2var_ps(a0, ev, a1);
    __m512 e[3] = {_mm512_permutex2var_ps(a0, od, a1), _mm512_permutex2var_ps(b0, ev, b1),
                   _mm512_permutex2var_ps(b0, od, b1)};
    __m512i c = _mm512_setzero_si512();
    for (int k = 0; k < 3; k++) {
        __mmask16 b = beats16(e[k], m);
        m = _mm512_mask_mov_ps(m, b, e[k]);
        c = _mm512_mask_mov_epi32(c, b, _mm512_set1_epi32(k + 1));
    }
    if (code) *code = c;
    return m;
}

GE_AVX512 static void fwd_row_vec(float *yr, const float *xp, int w, int oy, int nwin) {
    const float *r0 = xp + (size_t)2 * oy * w, *r1 = r0 + w;
    for (int ox = 0; ox < nwin; ox += 16)
        _mm512_storeu_ps(yr + ox, win16(r0 + 2 * ox, r1 + 2 * ox, NULL));
}

/* d[2j] += g[j] where code[j] == lo, d[2j+1] += g[j] where code[j] == lo + 1,
 * j < 16 (32 columns of one dx row). */
GE_AVX512 static inline void add_row(float *d, __m512 g, __m512i c, int lo) {
    const __m512i dlo = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i dhi = _mm512_add_epi32(dlo, _mm512_set1_epi32(8));
    const __m512i pat = _mm512_set_epi32(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0);
    __m512i want = _mm512_add_epi32(pat, _mm512_set1_epi32(lo));
    __mmask16 mlo = _mm512_cmpeq_epi32_mask(_mm512_permutexvar_epi32(dlo, c), want);
    __mmask16 mhi = _mm512_cmpeq_epi32_mask(_mm512_permutexvar_epi32(dhi, c), want);
    __m512 d0 = _mm512_loadu_ps(d), d1 = _mm512_loadu_ps(d + 16);
    d0 = _mm512_mask_add_ps(d0, mlo, d0, _mm512_permutexvar_ps(dlo, g));
    d1 = _mm512_mask_add_ps(d1, mhi, d1, _mm512_permutexvar_ps(dhi, g));
    _mm512_storeu_ps(d, d0);
    _mm512_storeu_ps(d + 16, d1);
}

GE_AVX512 static void bwd_row_vec(float *dp, const float *gr, const float *xp, int w, int oy,
                                  int nwin) {
    size_t o0 = (size_t)2 * oy * w;
    for (int ox = 0; ox < nwin; ox += 16) {
        __m512i c;
        win16(xp + o0 + 2 * ox, xp + o0 + w + 2 * ox, &c);
        __m512 g = _mm512_loadu_ps(gr + ox);
        add_row(dp + o0 + 2 * ox, g, c, 0);
        add_row(dp + o0 + w + 2 * ox, g, c, 2);
    }
}
#else
#define HAVE_VEC 0
static void fwd_row_vec(float *yr, const float *xp, int w, int oy, int nwin) {}
static void bwd_row_vec(float *dp, const float *gr, const float *xp, int w, int oy, int nwin) {}
#endif

static int use_vec(void) {
    static int avx512 = -1;
    if (avx512 < 0) avx512 = HAVE_VEC && __builtin_cpu_supports("avx512f");
    return avx512 && !scalar_only;
}

void ge_maxpool2_forward(float *y, const float *x, int n, int c, int h, int w, int ceil_mode) {
    int oh, ow;
    ge_maxpool2_out_size(h, w, ceil_mode, &oh, &ow);
    long planes = (long)n * c;
    int vec = use_vec();
#pragma omp parallel for schedule(static) if ((size_t)planes * h * w >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * h * w; /* (h, w) */
        float *yp = y + (size_t)pl * oh * ow;     /* (oh, ow) */
        for (int oy = 0; oy < oh; oy++) {
            int ox = vec ? vec_windows(h, w, oy) : 0;
            if (ox) fwd_row_vec(yp + (size_t)oy * ow, xp, w, oy, ox);
            for (; ox < ow; ox++)
                yp[(size_t)oy * ow + ox] = xp[window_argmax(xp, h, w, oy, ox)];
        }
    }
}

void ge_maxpool2_backward(float *dx, const float *dy, const float *x, int n, int c, int h, int w,
                          int ceil_mode) {
    if (!dx) return;
    int oh, ow;
    ge_maxpool2_out_size(h, w, ceil_mode, &oh, &ow);
    long planes = (long)n * c;
    int vec = use_vec();
#pragma omp parallel for schedule(static) if ((size_t)planes * h * w >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * h * w;    /* (h, w) */
        const float *gp = dy + (size_t)pl * oh * ow; /* (oh, ow) */
        float *dp = dx + (size_t)pl * h * w;         /* (h, w) */
        /* Windows do not overlap (stride = size), so each dx element gets at
         * most one contribution. */
        for (int oy = 0; oy < oh; oy++) {
            int ox = vec ? vec_windows(h, w, oy) : 0;
            if (ox) bwd_row_vec(dp, gp + (size_t)oy * ow, xp, w, oy, ox);
            for (; ox < ow; ox++)
                dp[window_argmax(xp, h, w, oy, ox)] += gp[(size_t)oy * ow + ox];
        }
    }
}
