/* loss.c - the scalar losses of the objective and their gradients: masked
 * L2 and L1 pixel/feature distances, Gram matrices for the style loss, and
 * plain sum and mean.
 *
 * Every reduction runs in double over a fixed number of contiguous chunks of
 * the flat tensor (independent of the thread count) whose partial sums are
 * added in chunk order, so a loss is the same bytes with 1 or 16 threads.
 * The Gram matrix is a matrix product and goes through ge_gemm; with a mask
 * the masked features are built a block of pixels at a time in a fixed-size
 * stack buffer, so no allocation happens here either. */
#include "kernels/kernels.h"
#include "ops/ops.h"

#include <math.h>

/* Below this much work a loop runs on one thread: waking the team costs more. */
enum { PAR_MIN = 1 << 15 };

enum { LOSS_CHUNKS = 64 };
enum { LOSS_L2, LOSS_L1, LOSS_SUM };

/* The shared masked reduction: returns scale * sum_i m_i * phi(a_i - b_i) and
 * adds scale * m_i * phi'(a_i - b_i) into da when da is not NULL.
 * For LOSS_SUM, b, mask and da are unused and phi is the identity on a. */
static double reduce(int kind, float *da, const float *a, const float *b, const float *mask, int c,
                     size_t hw, size_t total, double scale) {
    double part[LOSS_CHUNKS];
#pragma omp parallel for schedule(static) if (total >= PAR_MIN)
    for (int k = 0; k < LOSS_CHUNKS; k++) {
        size_t i = (size_t)((double)total * k / LOSS_CHUNKS);
        size_t e = (size_t)((double)total * (k + 1) / LOSS_CHUNKS);
        if (k == LOSS_CHUNKS - 1) e = total;
        double s = 0;
        while (i < e) {
            /* One run inside a single (sample, channel) plane. */
            size_t pl = i / hw, off = i - pl * hw;
            size_t end = (pl + 1) * hw < e ? (pl + 1) * hw : e;
            size_t len = end - i;
            const float *mp = mask ? mask + (pl / (size_t)c) * hw + off : NULL; /* (len) */
            const float *ap = a + i;
            if (kind == LOSS_SUM) {
                for (size_t j = 0; j < len; j++)
                    s += ap[j];
            } else {
                const float *bp = b + i;
                float *dp = da ? da + i : NULL;
                for (size_t j = 0; j < len; j++) {
                    double m = mp ? mp[j] : 1.0;
                    double d = (double)ap[j] - bp[j];
                    if (kind == LOSS_L2) {
                        s += m * d * d;
                        if (dp) dp[j] += (float)(2.0 * scale * m * d);
                    } else {
                        s += m * fabs(d);
                        if (dp) dp[j] += (float)(d > 0 ? scale * m : d < 0 ? -scale * m : 0.0);
                    }
                }
            }
            i = end;
        }
        part[k] = s;
    }
    double s = 0;
    for (int k = 0; k < LOSS_CHUNKS; k++)
        s += part[k];
    return scale * s;
}

double ge_loss_l2(float *da, const float *a, const float *b, const float *mask, int n, int c,
                  size_t hw, float scale) {
    return reduce(LOSS_L2, da, a, b, mask, c, hw, (size_t)n * c * hw, scale);
}

double ge_loss_l1(float *da, const float *a, const float *b, const float *mask, int n, int c,
                  size_t hw, float scale) {
    return reduce(LOSS_L1, da, a, b, mask, c, hw, (size_t)n * c * hw, scale);
}

double ge_sum_forward(const float *x, size_t count) {
    return reduce(LOSS_SUM, NULL, x, NULL, NULL, 1, count ? count : 1, count, 1.0);
}

void ge_sum_backward(float *dx, float dy, size_t count) {
    if (!dx) return;
    for (size_t i = 0; i < count; i++)
        dx[i] += dy;
}

double ge_mean_forward(const float *x, size_t count) {
    return count ? ge_sum_forward(x, count) / (double)count : 0.0;
}

void ge_mean_backward(float *dx, float dy, size_t count) {
    if (!dx || !count) return;
    float g = (float)((double)dy / (double)count);
    for (size_t i = 0; i < count; i++)
        dx[i] += g;
}

/* ---- Gram matrices ---------------------------------------------------------
 * Masked features are formed GRAM_BUF floats at a time: a block of `blk`
 * pixels for all c channels (blk = GRAM_BUF / c). */
enum { GRAM_BUF = 8192 };

/* fb (c, blk) = x[:, p0:p0+blk] * mask[p0:p0+blk] */
static void masked_block(float *fb, const float *x, const float *m, int c, size_t hw, size_t p0,
                         int blk) {
    for (int i = 0; i < c; i++) {
        const float *xr = x + (size_t)i * hw + p0;
        float *fr = fb + (size_t)i * blk;
        for (int j = 0; j < blk; j++)
            fr[j] = xr[j] * m[p0 + j];
    }
}

void ge_gram_forward(float *g, const float *x, const float *mask, int n, int c, size_t hw,
                     float scale) {
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * c * hw; /* (c, hw) */
        float *gs = g + (size_t)s * c * c;        /* (c, c) */
        if (!mask) {
            ge_gemm(0, 1, c, c, (int)hw, scale, xs, (int)hw, xs, (int)hw, 0.f, gs, c);
            continue;
        }
        const float *ms = mask + (size_t)s * hw; /* (hw) */
        if (c > GRAM_BUF) { /* never for real networks; plain loops, no buffer */
            for (int i = 0; i < c; i++)
                for (int j = 0; j < c; j++) {
                    double acc = 0;
                    for (size_t p = 0; p < hw; p++)
                        acc +=
                            (double)xs[(size_t)i * hw + p] * xs[(size_t)j * hw + p] * ms[p] * ms[p];
                    gs[(size_t)i * c + j] = (float)(scale * acc);
                }
            continue;
        }
        float fb[GRAM_BUF]; /* (c, blk) */
        int blk = GRAM_BUF / c;
        if (hw == 0) ge_gemm(0, 1, c, c, 0, scale, fb, 1, fb, 1, 0.f, gs, c);
        for (size_t p0 = 0; p0 < hw; p0 += (size_t)blk) {
            int b = hw - p0 < (size_t)blk ? (int)(hw - p0) : blk;
            masked_block(fb, xs, ms, c, hw, p0, b);
            ge_gemm(0, 1, c, c, b, scale, fb, b, fb, b, p0 ? 1.f : 0.f, gs, c);
        }
    }
}

/* L = sum(dg * g), g = scale F F^T:  dF = scale (dg + dg^T) F, dx = dF * mask. */
void ge_gram_backward(float *dx, const float *dg, const float *x, const float *mask, int n, int c,
                      size_t hw, float scale) {
    if (!dx) return;
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * c * hw; /* (c, hw) */
        const float *gs = dg + (size_t)s * c * c; /* (c, c) */
        float *ds = dx + (size_t)s * c * hw;      /* (c, hw) */
        if (!mask) {
            ge_gemm(0, 0, c, (int)hw, c, scale, gs, c, xs, (int)hw, 1.f, ds, (int)hw);
            ge_gemm(1, 0, c, (int)hw, c, scale, gs, c, xs, (int)hw, 1.f, ds, (int)hw);
            continue;
        }
        const float *ms = mask + (size_t)s * hw; /* (hw) */
        if (c > GRAM_BUF) {
            for (int i = 0; i < c; i++)
                for (size_t p = 0; p < hw; p++) {
                    double acc = 0;
                    for (int j = 0; j < c; j++)
                        acc += ((double)gs[(size_t)i * c + j] + gs[(size_t)j * c + i]) *
                               xs[(size_t)j * hw + p];
                    ds[(size_t)i * hw + p] += (float)(scale * acc * ms[p] * ms[p]);
                }
            continue;
        }
        float fb[GRAM_BUF], ob[GRAM_BUF]; /* (c, blk) each */
        int blk = GRAM_BUF / c;
        for (size_t p0 = 0; p0 < hw; p0 += (size_t)blk) {
            int b = hw - p0 < (size_t)blk ? (int)(hw - p0) : blk;
            masked_block(fb, xs, ms, c, hw, p0, b);
            ge_gemm(0, 0, c, b, c, scale, gs, c, fb, b, 0.f, ob, b);
            ge_gemm(1, 0, c, b, c, scale, gs, c, fb, b, 1.f, ob, b);
            for (int i = 0; i < c; i++) {
                float *dr = ds + (size_t)i * hw + p0;
                const float *orow = ob + (size_t)i * b;
                for (int j = 0; j < b; j++)
                    dr[j] += orow[j] * ms[p0 + j];
            }
        }
    }
}
