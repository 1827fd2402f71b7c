/* cmd_draw.c - `ganedit draw`: a natural image that follows a colour
 * scribble. The scribble's alpha (or --mask) says where the colours are
 * constraints; elsewhere the generator fills in. The spec's objective is the
 * masked pixel loss plus a small latent regulariser, from the mean latent. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_draw(int argc, char **argv) {
    edit_opts o;
    edit_opts_defaults(&o);
    o.pixel = 1.f;
    o.perceptual = 0.f;
    o.reg = 0.05f;
    const char *scribble = NULL, *mask_path = NULL;
    cli_opt opts[40];
    int n = 0;
    opts[n++] = (cli_opt){"scribble", OPT_STR, &scribble, "SCRIBBLE.png",
                          "colour scribble; alpha is the mask (required)"};
    opts[n++] = (cli_opt){"mask", OPT_STR, &mask_path, "MASK.png",
                          "mask image (white = constrained) instead of the alpha"};
    n = edit_opts_table(&o, opts, n);
    const cli_command cmd = {"draw",
                             "Turn a colour scribble into a natural image (defaults: --pixel 1 "
                             "--perceptual 0 --reg 0.05).",
                             "",
                             opts,
                             n,
                             0,
                             0};
    const char *pos[1];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;
    if (!scribble) return cli_usage_error("draw", "--scribble is required");
    edit_setup s;
    if ((r = edit_setup_load(&s, "draw", &o))) return r;
    float *img = NULL, *mask = NULL;
    ge_edit_result res = {0};
    if ((r = edit_load_scribble("draw", scribble, mask_path, s.R, &img, &mask))) goto done;
    if ((r = edit_check(&s, NULL, img, mask))) goto done;
    if ((r = edit_check_out("draw", o.out))) goto done;
    if ((r = edit_run(&s, img, mask, "drawing", &res))) goto done;
    r = edit_write_outputs(&s, o.out, img, mask, &res, argc, argv, scribble);
    if (!r) fprintf(stderr, "ganedit draw: wrote %s/result.png\n", o.out);
    if (!r && res.stopped) r = edit_stop_status() ? edit_stop_status() : 130;
done:
    ge_edit_result_free(&res);
    free(img);
    free(mask);
    edit_setup_free(&s);
    return r;
}
