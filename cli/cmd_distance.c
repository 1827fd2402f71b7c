/* cmd_distance.c - `ganedit distance`: the VGG-19 perceptual distance between
 * two images: for each chosen layer the mean squared difference of the
 * (pre-ReLU) features, and their sum. B is resized to A's size if needed. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 16

int cmd_distance(int argc, char **argv) {
    const char *vgg = NULL, *layers = "conv1_1,conv1_2,conv2_1,conv2_2,conv3_1";
    const cli_opt opts[] = {
        {"vgg", OPT_STR, &vgg, "VGG", "VGG-19 weights (default: $GANEDIT_VGG, torch cache, ../shared)"},
        {"layers", OPT_STR, &layers, "L1,L2,..", "layers (default conv1_1,conv1_2,conv2_1,conv2_2,conv3_1)"},
    };
    const cli_command cmd = {"distance", "VGG-19 perceptual distance between two images.",
                             "A.png B.png", opts, 2, 2, 2};
    const char *pos[2];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;

    char names_buf[512];
    const char *names[MAX_LAYERS];
    int n_layers = 0;
    snprintf(names_buf, sizeof names_buf, "%s", layers);
    for (char *tok = strtok(names_buf, ","); tok; tok = strtok(NULL, ",")) {
        if (n_layers == MAX_LAYERS) return cli_usage_error("distance", "too many layers");
        names[n_layers++] = tok;
    }
    if (!n_layers) return cli_usage_error("distance", "--layers is empty");

    char vpath[4096];
    ge_status s = ge_vgg_find(vpath, sizeof vpath, vgg);
    if (s != GE_OK) return cli_fail("distance", s);
    float *a = NULL, *b = NULL, *fa = NULL;
    int ca, ha, wa, cb, hb, wb, rc = 1;
    ge_vgg *v = NULL;
    if ((s = ge_image_read(pos[0], &a, &ca, &ha, &wa)) != GE_OK) goto fail;
    if ((s = ge_image_read(pos[1], &b, &cb, &hb, &wb)) != GE_OK) goto fail;
    if (ca < 3 || cb < 3) {
        fprintf(stderr, "ganedit distance: both images must be colour (RGB or RGBA)\n");
        goto done;
    }
    if (hb != ha || wb != wa) {
        float *rb;
        fprintf(stderr, "ganedit distance: note: resizing %s from %dx%d to %dx%d\n", pos[1], wb, hb,
                wa, ha);
        if ((s = ge_image_resize(&rb, b, 3, hb, wb, ha, wa)) != GE_OK) goto fail;
        free(b);
        b = rb;
    }
    if ((s = ge_vgg_load(&v, vpath)) != GE_OK) goto fail;
    /* the deepest requested layer decides how far to run */
    const char *upto = names[n_layers - 1];
    for (int i = 0; i < n_layers; i++)
        if (strcmp(names[i] + 4, upto + 4) > 0) upto = names[i];
    if ((s = ge_vgg_forward(v, a, 1, ha, wa, upto)) != GE_OK) goto fail;
    size_t sizes[MAX_LAYERS], off = 0;
    for (int i = 0; i < n_layers; i++) {
        int c, h, w;
        if (!ge_vgg_feature(v, names[i], &c, &h, &w)) {
            fprintf(stderr, "ganedit distance: unknown or missing layer '%s' (this VGG has conv1_1 .. %s)\n",
                    names[i], ge_vgg_last_layer(v));
            goto done;
        }
        sizes[i] = (size_t)c * h * w;
        off += sizes[i];
    }
    fa = malloc(off * sizeof(float));
    if (!fa) goto done;
    off = 0;
    for (int i = 0; i < n_layers; i++) {
        int c, h, w;
        memcpy(fa + off, ge_vgg_feature(v, names[i], &c, &h, &w), sizes[i] * sizeof(float));
        off += sizes[i];
    }
    if ((s = ge_vgg_forward(v, b, 1, ha, wa, upto)) != GE_OK) goto fail;
    double total = 0;
    off = 0;
    for (int i = 0; i < n_layers; i++) {
        int c, h, w;
        const float *fb = ge_vgg_feature(v, names[i], &c, &h, &w);
        double acc = 0;
        for (size_t k = 0; k < sizes[i]; k++) {
            double d = (double)fa[off + k] - fb[k];
            acc += d * d;
        }
        acc /= (double)sizes[i];
        printf("%-8s %.6g\n", names[i], acc);
        total += acc;
        off += sizes[i];
    }
    printf("total    %.6g\n", total);
    rc = 0;
    goto done;
fail:
    rc = cli_fail("distance", s);
done:
    free(a);
    free(b);
    free(fa);
    ge_vgg_free(v);
    return rc;
}
