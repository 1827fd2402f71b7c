/* avgpool.c - 2x2 average pooling with stride 2, used to bring a pixel mask
 * down to the size of each VGG layer (the same windows as the max pools, so
 * the pooled mask lines up with the features).
 *
 * Sizes follow ge_maxpool2_out_size. A window cut by the edge in ceil_mode
 * averages only the elements that exist: this is what nn.AvgPool2d(2,
 * ceil_mode=True) computes with padding 0 (its divisor counts the window
 * clipped to input + padding, and the padding is 0), checked against PyTorch
 * in tests/test_ops_pool.c. A mask of ones therefore stays ones. */
#include "ops/ops.h"

/* Below this much work a loop runs on one thread: waking the team costs more. */
enum { PAR_MIN = 1 << 15 };

void ge_avgpool2_forward(float *y, const float *x, int n, int c, int h, int w, int ceil_mode) {
    int oh, ow;
    ge_maxpool2_out_size(h, w, ceil_mode, &oh, &ow);
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * h * w >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * h * w; /* (h, w) */
        float *yp = y + (size_t)pl * oh * ow;     /* (oh, ow) */
        for (int oy = 0; oy < oh; oy++) {
            int y0 = 2 * oy, y1 = y0 + 2 < h ? y0 + 2 : h;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = 2 * ox, x1 = x0 + 2 < w ? x0 + 2 : w;
                float s = 0;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++)
                        s += xp[(size_t)iy * w + ix];
                yp[(size_t)oy * ow + ox] = s / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

void ge_avgpool2_backward(float *dx, const float *dy, int n, int c, int h, int w, int ceil_mode) {
    if (!dx) return;
    int oh, ow;
    ge_maxpool2_out_size(h, w, ceil_mode, &oh, &ow);
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * h * w >= PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *gp = dy + (size_t)pl * oh * ow; /* (oh, ow) */
        float *dp = dx + (size_t)pl * h * w;         /* (h, w) */
        for (int oy = 0; oy < oh; oy++) {
            int y0 = 2 * oy, y1 = y0 + 2 < h ? y0 + 2 : h;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = 2 * ox, x1 = x0 + 2 < w ? x0 + 2 : w;
                float g = gp[(size_t)oy * ow + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++)
                        dp[(size_t)iy * w + ix] += g;
            }
        }
    }
}
