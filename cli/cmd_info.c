/* cmd_info.c - `ganedit info MODEL`: what a weight file holds. A generator is
 * described by its architecture and latent sizes, a VGG-19 by its layout and
 * depth; any other tensor file by its tensor list. */
#include "cli.h"

#include <stdio.h>

static int describe_tensors(const char *path) {
    ge_tensors *t = NULL;
    ge_status s = ge_tensors_load(&t, path);
    if (s != GE_OK) return cli_fail("info", s);
    size_t total = 0;
    printf("%s: %d tensors (not a model ganedit recognises)\n", path, ge_tensors_count(t));
    for (int i = 0; i < ge_tensors_count(t); i++) {
        const ge_tensor *x = ge_tensors_at(t, i);
        printf("  %-48s (", x->name);
        for (int d = 0; d < x->ndim; d++) printf("%s%lld", d ? "," : "", (long long)x->shape[d]);
        printf(")\n");
        total += x->numel;
    }
    printf("  %zu values\n", total);
    ge_tensors_free(t);
    return 0;
}

int cmd_info(int argc, char **argv) {
    int tensors = 0;
    const cli_opt opts[] = {
        {"tensors", OPT_FLAG, &tensors, NULL, "list every tensor in the file"},
    };
    const cli_command cmd = {"info", "Describe a generator, a VGG-19 or any weight file.",
                             "MODEL", opts, 1, 1, 1};
    const char *pos[1];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;
    if (tensors) return describe_tensors(pos[0]);
    ge_generator *g = NULL;
    ge_status s = ge_generator_load(&g, pos[0], NULL);
    if (s == GE_OK) {
        const ge_gen_info *in = ge_generator_info(g);
        printf("file:         %s\n", pos[0]);
        printf("architecture: %s\n", in->arch);
        printf("resolution:   %dx%d RGB\n", in->resolution, in->resolution);
        printf("z:            %d (%s)\n", in->z_dim,
               in->z_dist == GE_ZDIST_UNIFORM ? "uniform in [-1, 1]" : "normal N(0, 1)");
        if (in->w_dim) {
            printf("w:            %d\n", in->w_dim);
            printf("w+:           %d x %d\n", in->num_ws, in->w_dim);
        }
        printf("parameters:   %zu\n", in->num_params);
        if (in->description[0]) printf("layers:       %s\n", in->description);
        ge_generator_free(g);
        return 0;
    }
    if (s != GE_ERR_UNSUPPORTED) return cli_fail("info", s);
    ge_vgg *v = NULL;
    if (ge_vgg_load(&v, pos[0]) == GE_OK) {
        printf("file:         %s\n", pos[0]);
        printf("architecture: vgg19 (%s layout)\n", ge_vgg_layout(v));
        printf("layers:       conv1_1 .. %s\n", ge_vgg_last_layer(v));
        ge_vgg_free(v);
        return 0;
    }
    return describe_tensors(pos[0]);
}
