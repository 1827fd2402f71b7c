/* r1_check.c - R1's weight gradient of ganedit's trainer (ge_r1_backward,
 * weight 1, no augmentation) on the discriminator of a training checkpoint,
 * against a PyTorch double backward of the same D on the same images made
 * by tools/r1_check.py. Prints, per tensor and in all, |ours - ref| / |ref|,
 * the cosine and the norm ratio. Build and run from the repository root:
 *
 *   make build/tools/r1_check
 *   /usr/bin/python3 tools/r1_check.py CKPT DATA_DIR RES /tmp/r1_ref.safetensors
 *   build/tools/r1_check CKPT /tmp/r1_ref.safetensors RES
 *
 * (docs/training.md, R1: 12x and cosine 0.08 before the activation pattern
 * was frozen during the probe, agreement after.) */
#include "core/core.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: r1_check CKPT REF.safetensors RES\n");
        return 2;
    }
    ge_tensors *ck = NULL, *dw = NULL, *g = NULL, *ref = NULL;
    ge_disc *D = NULL;
    int R = atoi(argv[3]);
    ge_status s = ge_tensors_load(&ck, argv[1]);
    if (s == GE_OK) s = ge_flat_copy(&dw, ck, "D.");
    if (s == GE_OK) s = ge_tensors_load(&ref, argv[2]);
    if (s == GE_OK) s = ge_flat_like(&g, dw);
    if (s == GE_OK) s = ge_disc_create(&D, dw, "D");
    const ge_tensor *x = s == GE_OK ? ge_tensors_find(ref, "x") : NULL;
    const ge_tensor *r1_ref = s == GE_OK ? ge_tensors_find(ref, "r1") : NULL;
    if (s != GE_OK || !x || !r1_ref || x->ndim != 4 || x->shape[2] != R || x->shape[0] > 64) {
        fprintf(stderr, "r1_check: %s\n", s != GE_OK ? ge_errmsg() : "bad reference file");
        return 1;
    }
    int n = (int)x->shape[0];
    size_t per = 3 * (size_t)R * R;
    float *v = malloc(n * per * sizeof *v), *xa = malloc(n * per * sizeof *xa), logits[128];
    double r1 = 0;
    if (!v || !xa || ge_r1_backward(D, NULL, x->data, n, per, 1.0, g, v, xa, logits, &r1)) {
        fprintf(stderr, "r1_check: %s\n", ge_errmsg());
        return 1;
    }
    printf("r1 ours %.7g, autograd %.7g\n", r1, r1_ref->data[0]);
    double err = 0, dot = 0, na = 0, nb = 0;
    for (int i = 0; i < ge_tensors_count(g); i++) {
        const ge_tensor *t = ge_tensors_at(g, i);
        char key[256];
        snprintf(key, sizeof key, "grad.%s", t->name);
        const ge_tensor *r = ge_tensors_find(ref, key);
        if (!r || r->numel != t->numel) {
            fprintf(stderr, "r1_check: %s missing from the reference\n", key);
            return 1;
        }
        double e = 0, d = 0, a2 = 0, b2 = 0;
        for (size_t k = 0; k < t->numel; k++) {
            double a = t->data[k], b = r->data[k];
            e += (a - b) * (a - b), d += a * b, a2 += a * a, b2 += b * b;
        }
        err += e, dot += d, na += a2, nb += b2;
        printf("%-24s |ours - ref| / |ref| %9.3g   cos %6.3f   |ours| / |ref| %9.3g\n", t->name,
               sqrt(e / (b2 + 1e-300)), d / sqrt(a2 * b2 + 1e-300), sqrt(a2 / (b2 + 1e-300)));
    }
    printf("all: |ours - ref| / |ref| %.3g, cos %.4f, |ours| / |ref| %.4f\n", sqrt(err / nb),
           dot / sqrt(na * nb), sqrt(na / nb));
    free(v), free(xa);
    ge_disc_free(D);
    ge_tensors_free(g);
    ge_tensors_free(ref);
    ge_tensors_free(ck);
    return 0;
}
