/* cmd_project.c - `ganedit project`: find the latent whose image is closest
 * to a photo (GAN inversion), with the spec's defaults: Adam, lr 0.003, 1000
 * steps, pixel 0.3 + perceptual 0.7 on conv1_1..conv3_1, mean-of-10 start. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_project(int argc, char **argv) {
    edit_opts o;
    edit_opts_defaults(&o);
    const char *target = NULL, *targets = NULL;
    int batch = 4;
    cli_opt opts[40];
    int n = 0;
    opts[n++] = (cli_opt){"target", OPT_STR, &target, "IMAGE",
                          "photo to invert (PNG or JPEG; this or --targets is required)"};
    opts[n++] = (cli_opt){"targets", OPT_STR, &targets, "DIR|LIST",
                          "project every PNG/JPEG of a folder, or the paths listed one a line "
                          "in a file: one result folder each plus manifest.csv; re-running "
                          "skips finished images; shards over ranks under mpirun"};
    opts[n++] = (cli_opt){"batch", OPT_INT, &batch, "B",
                          "with --targets: images optimised together in one batch (default 4)"};
    n = edit_opts_table(&o, opts, n);
    const cli_command cmd = {
        "project", "Project (invert) a photo into the generator's latent space.", "", opts, n, 0,
        0};
    const char *pos[1];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;
    if (target && targets)
        return cli_usage_error("project", "give --target or --targets, not both");
    if (targets) return project_batch(&o, targets, batch, argc, argv);
    if (!target) return cli_usage_error("project", "--target is required (or --targets DIR|LIST)");
    edit_setup s;
    if ((r = edit_setup_load(&s, "project", &o))) return r;
    float *img = NULL;
    ge_edit_result res = {0};
    /* every check before any work, so bad input leaves no output folder */
    if ((r = edit_load_image("project", target, s.R, &img, NULL))) goto done;
    if ((r = edit_check(&s, NULL, img, NULL))) goto done;
    if ((r = edit_check_out("project", o.out))) goto done;
    if ((r = edit_run(&s, img, NULL, "projecting", &res))) goto done;
    r = edit_write_outputs(&s, o.out, img, NULL, &res, argc, argv, target);
    if (!r)
        fprintf(stderr, "ganedit project: loss %.5g (step %d of %d, %.1f s); wrote %s/result.png\n",
                res.history[(size_t)res.best_step * GE_N_TERMS], res.best_step, res.steps_done,
                res.seconds, o.out);
    if (!r && res.stopped) r = edit_stop_status() ? edit_stop_status() : 130;
done:
    ge_edit_result_free(&res);
    free(img);
    edit_setup_free(&s);
    return r;
}
