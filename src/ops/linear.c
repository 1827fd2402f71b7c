/* linear.c - fully connected layer with StyleGAN2's equalised-learning-rate
 * gains: y = w_gain * x W^T + b_gain * b. The gains are applied as GEMM
 * alpha and a scale on b, so the stored weights are used as they are (no
 * scaled copy). Both directions are single GEMMs over the whole batch. */
#include "kernels/kernels.h"
#include "ops/ops.h"

void ge_linear_forward(float *y, const float *x, const float *w, const float *b,
                       const ge_linear_params *p) {
    /* y (n, out), x (n, in), w (out, in), b (out) */
    for (int i = 0; i < p->n; i++)
        for (int o = 0; o < p->out; o++)
            y[(size_t)i * p->out + o] = b ? p->b_gain * b[o] : 0.f;
    ge_gemm(0, 1, p->n, p->out, p->in, p->w_gain, x, p->in, w, p->in, b ? 1.f : 0.f, y, p->out);
}

void ge_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, const ge_linear_params *p) {
    /* dx (n, in) += w_gain dy (n, out) W (out, in) */
    if (dx) ge_gemm(0, 0, p->n, p->in, p->out, p->w_gain, dy, p->out, w, p->in, 1.f, dx, p->in);
    /* dW (out, in) += w_gain dy^T x */
    if (dw) ge_gemm(1, 0, p->out, p->in, p->n, p->w_gain, dy, p->out, x, p->in, 1.f, dw, p->in);
    if (db)
        for (int o = 0; o < p->out; o++) {
            double s = 0;
            for (int i = 0; i < p->n; i++)
                s += dy[(size_t)i * p->out + o];
            db[o] += p->b_gain * (float)s;
        }
}
