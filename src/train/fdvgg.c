/* fdvgg.c - FD-VGG, the quality number tracked while training: the Frechet
 * distance between Gaussians fitted to the VGG-19 relu3_1 features (averaged
 * over the image plane: one 256-d vector per image) of generated and real
 * images,
 *
 *     FD = |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)).
 *
 * It is the FID formula on different features: NOT the FID (which uses
 * Inception-v3 pool3 features), so its values are comparable only with each
 * other. The trace of the matrix root is taken as the sum of the square
 * roots of the eigenvalues of C1^(1/2) C2 C1^(1/2), a symmetric positive
 * semi-definite matrix with the same eigenvalues as C1 C2; both eigen-
 * decompositions use a cyclic Jacobi solver in double precision, small and
 * exact enough for 256 x 256 (no LAPACK needed). Negative eigenvalues from
 * rounding (rank-deficient covariances of a few hundred images) count as 0. */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FD_CHUNK 16

ge_status ge_fd_features(float *feat, int *d, ge_vgg *v, const float *img, int n, int h, int w) {
    size_t per = (size_t)3 * h * w;
    for (int i0 = 0; i0 < n; i0 += FD_CHUNK) {
        int m = n - i0 < FD_CHUNK ? n - i0 : FD_CHUNK;
        ge_status s = ge_vgg_forward(v, img + per * i0, m, h, w, GE_FD_LAYER);
        if (s != GE_OK) return s;
        int c, fh, fw;
        const float *f = ge_vgg_feature(v, GE_FD_LAYER, &c, &fh, &fw); /* (m, c, fh, fw) */
        if (!f) return GE_ERR_ARG;
        size_t hw = (size_t)fh * fw;
        for (int i = 0; i < m; i++)
            for (int k = 0; k < c; k++) {
                const float *p = f + ((size_t)i * c + k) * hw;
                double sum = 0;
                for (size_t j = 0; j < hw; j++) sum += p[j];
                feat[(size_t)(i0 + i) * c + k] = (float)(sum / (double)hw);
            }
        *d = c;
    }
    return GE_OK;
}

ge_status ge_fd_stats(double *mu, double *cov, const float *feat, int n, int d) {
    if (n < 2) return ge_fail(GE_ERR_ARG, "FD-VGG needs at least 2 images per set (got %d)", n);
    for (int k = 0; k < d; k++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += feat[(size_t)i * d + k];
        mu[k] = s / n;
    }
    double *c = ge_calloc((size_t)n * d, sizeof(double)); /* centred features */
    if (!c) return GE_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++) c[(size_t)i * d + k] = feat[(size_t)i * d + k] - mu[k];
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += c[(size_t)i * d + a] * c[(size_t)i * d + b];
            cov[(size_t)a * d + b] = cov[(size_t)b * d + a] = s / (n - 1);
        }
    free(c);
    return GE_OK;
}

/* Cyclic Jacobi: each rotation in the (p, q) plane zeroes a_pq. A stays
 * symmetric, so only rows p and q are rotated (contiguous) and mirrored into
 * columns p and q; the eigenvectors are accumulated as rows of vt (also
 * contiguous) and transposed at the end. */
ge_status ge_sym_eigen(double *evals, double *evecs, double *a, int d) {
    double *vt = ge_malloc((size_t)d * d, sizeof(double)); /* row k: eigenvector k */
    if (!vt) return GE_ERR_NOMEM;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) vt[(size_t)i * d + j] = i == j;
    double total = 0;
    for (size_t i = 0; i < (size_t)d * d; i++) total += a[i] * a[i];
    /* Stop when the off-diagonal part is 1e-12 of the whole (Frobenius);
     * elements below 1e-17 of it are set to zero rather than rotated away,
     * which keeps the many near-zero eigenvalues of a rank-deficient
     * covariance from costing sweeps at rounding level. */
    double tiny = 1e-17 * sqrt(total);
    int converged = total == 0;
    for (int sweep = 0; sweep < 100 && !converged; sweep++) {
        double off = 0;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) off += a[(size_t)p * d + q] * a[(size_t)p * d + q];
        if (off <= 1e-24 * total) {
            converged = 1;
            break;
        }
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) {
                double *ap = a + (size_t)p * d, *aq = a + (size_t)q * d;
                double apq = ap[q];
                if (fabs(apq) <= tiny) {
                    ap[q] = aq[p] = 0;
                    continue;
                }
                double app = ap[p], aqq = aq[q];
                double theta = (aqq - app) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), sn = t * c;
                for (int k = 0; k < d; k++) {
                    if (k == p || k == q) continue;
                    double akp = ap[k], akq = aq[k];
                    ap[k] = a[(size_t)k * d + p] = c * akp - sn * akq;
                    aq[k] = a[(size_t)k * d + q] = sn * akp + c * akq;
                }
                ap[p] = app - t * apq;
                aq[q] = aqq + t * apq;
                ap[q] = aq[p] = 0;
                double *vp = vt + (size_t)p * d, *vq = vt + (size_t)q * d;
                for (int k = 0; k < d; k++) {
                    double x = vp[k], y = vq[k];
                    vp[k] = c * x - sn * y;
                    vq[k] = sn * x + c * y;
                }
            }
    }
    for (int i = 0; i < d; i++) {
        evals[i] = a[(size_t)i * d + i];
        for (int j = 0; j < d; j++) evecs[(size_t)j * d + i] = vt[(size_t)i * d + j];
    }
    free(vt);
    if (!converged)
        return ge_fail(GE_ERR_NUMERIC, "Jacobi eigen-decomposition did not converge (%dx%d)", d, d);
    return GE_OK;
}

/* c (d, d) = a b, all row-major. */
static void matmul(double *c, const double *a, const double *b, int d) {
    memset(c, 0, (size_t)d * d * sizeof(double));
    for (int i = 0; i < d; i++)
        for (int k = 0; k < d; k++) {
            double aik = a[(size_t)i * d + k];
            if (aik == 0) continue;
            const double *bk = b + (size_t)k * d;
            double *ci = c + (size_t)i * d;
            for (int j = 0; j < d; j++) ci[j] += aik * bk[j];
        }
}

ge_status ge_fd_distance(double *fd, const double *mu1, const double *cov1, const double *mu2,
                         const double *cov2, int d) {
    size_t dd = (size_t)d * d;
    double *buf = ge_malloc(dd * 4 + (size_t)d, sizeof(double));
    if (!buf) return GE_ERR_NOMEM;
    double *a = buf, *v = buf + dd, *r = buf + 2 * dd, *t = buf + 3 * dd, *ev = buf + 4 * dd;
    /* r = cov1^(1/2) = V diag(sqrt(max(l, 0))) V^T */
    memcpy(a, cov1, dd * sizeof(double));
    ge_status s = ge_sym_eigen(ev, v, a, d);
    if (s != GE_OK) goto done;
    for (int i = 0; i < d; i++)
        for (int k = 0; k < d; k++)
            t[(size_t)i * d + k] = v[(size_t)i * d + k] * sqrt(ev[k] > 0 ? ev[k] : 0);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double sum = 0;
            for (int k = 0; k < d; k++) sum += t[(size_t)i * d + k] * v[(size_t)j * d + k];
            r[(size_t)i * d + j] = sum;
        }
    /* a = r cov2 r, symmetrised against rounding */
    matmul(t, r, cov2, d);
    matmul(a, t, r, d);
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j < d; j++) {
            double m = 0.5 * (a[(size_t)i * d + j] + a[(size_t)j * d + i]);
            a[(size_t)i * d + j] = a[(size_t)j * d + i] = m;
        }
    if ((s = ge_sym_eigen(ev, v, a, d)) != GE_OK) goto done;
    double tr_root = 0, tr1 = 0, tr2 = 0, dmu = 0;
    for (int i = 0; i < d; i++) {
        tr_root += sqrt(ev[i] > 0 ? ev[i] : 0);
        tr1 += cov1[(size_t)i * d + i];
        tr2 += cov2[(size_t)i * d + i];
        dmu += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    }
    *fd = dmu + tr1 + tr2 - 2 * tr_root;
    if (!isfinite(*fd)) s = ge_fail(GE_ERR_NUMERIC, "FD-VGG is not finite");
done:
    free(buf);
    return s;
}
