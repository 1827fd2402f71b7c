/* cmd_edit.c - `ganedit edit`: edit a real photo by drawing on it. First the
 * photo is projected (spec defaults: pixel 0.3 + perceptual 0.7), then the
 * scribble is applied starting from that latent: the target is the scribble
 * inside the mask and the projection outside it, with the outside weighted by
 * --keep, so unscribbled parts stay the photo's. Everything is checked before
 * the projection starts; the projection's own result is written beside the
 * edit as projection.png / projection.npy. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_edit(int argc, char **argv) {
    edit_opts o;
    edit_opts_defaults(&o);
    o.pixel = 1.f;
    o.perceptual = 0.f;
    o.reg = 0.05f;
    const char *photo = NULL, *scribble = NULL, *mask_path = NULL;
    int project_steps = 1000;
    float keep = 0.3f;
    cli_opt opts[44];
    int n = 0;
    opts[n++] = (cli_opt){"target", OPT_STR, &photo, "PHOTO", "photo to edit (required)"};
    opts[n++] = (cli_opt){"scribble", OPT_STR, &scribble, "SCRIBBLE.png",
                          "colour scribble; alpha is the mask (required)"};
    opts[n++] = (cli_opt){"mask", OPT_STR, &mask_path, "MASK.png",
                          "mask image (white = scribbled) instead of the alpha"};
    opts[n++] = (cli_opt){"project-steps", OPT_INT, &project_steps, "N",
                          "steps of the projection stage (default 1000)"};
    opts[n++] = (cli_opt){"keep", OPT_FLOAT, &keep, "W",
                          "pixel weight outside the mask, 0..1 (default 0.3)"};
    n = edit_opts_table(&o, opts, n);
    const cli_command cmd = {"edit",
                             "Edit a photo with a scribble: project it, then draw from its latent "
                             "(--init FILE.npy skips the projection).",
                             "",
                             opts,
                             n,
                             0,
                             0};
    const char *pos[1];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;
    if (!photo) return cli_usage_error("edit", "--target is required");
    if (!scribble) return cli_usage_error("edit", "--scribble is required");
    if (project_steps < 1 || project_steps > 1000000)
        return cli_usage_error("edit", "--project-steps must be 1..1000000");
    if (!(keep >= 0 && keep <= 1)) return cli_usage_error("edit", "--keep must be in [0, 1]");
    int given = strcmp(o.init, "mean") && strcmp(o.init, "random");
    o.need_vgg = !given; /* the projection stage uses the perceptual loss */
    edit_setup s;
    if ((r = edit_setup_load(&s, "edit", &o))) return r;
    float *img = NULL, *scr = NULL, *mask = NULL, *target = NULL, *weights = NULL;
    ge_edit_result proj = {0}, res = {0};
    size_t RR = (size_t)s.R * s.R;
    ge_edit_params edit_p = s.p, proj_p = s.p;
    proj_p.w_pixel = 0.3f;
    proj_p.w_perceptual = 0.7f;
    proj_p.w_style = 0;
    proj_p.w_reg = 0;
    proj_p.steps = project_steps;
    /* every check before any work, so bad input leaves no output folder */
    if ((r = edit_load_image("edit", photo, s.R, &img, NULL))) goto done;
    if ((r = edit_load_scribble("edit", scribble, mask_path, s.R, &scr, &mask))) goto done;
    if (!given && (r = edit_check(&s, &proj_p, img, NULL))) goto done;
    if ((r = edit_check(&s, &edit_p, scr, mask))) goto done;
    if ((r = edit_check_out("edit", o.out))) goto done;
    /* stage 1: projection (unless --init gave the latent) */
    if (!given) {
        s.p = proj_p;
        if ((r = edit_run(&s, img, NULL, "projecting", &proj))) goto done;
        if (proj.stopped) { /* keep what there is: the projection so far */
            fprintf(stderr,
                    "ganedit edit: interrupted during the projection; writing it as "
                    "%s/projection.png\n",
                    o.out);
            r = edit_stop_status() ? edit_stop_status() : 130;
        }
        edit_p.init = GE_INIT_GIVEN;
        edit_p.init_latent = proj.latent;
        if (proj.stopped) goto write_projection;
    }
    /* stage 2: scribble inside the mask, the projection (or photo) outside */
    const float *outside = given ? img : proj.image;
    target = malloc(sizeof(float) * 3 * RR);
    weights = malloc(sizeof(float) * RR);
    if (!target || !weights) {
        fprintf(stderr, "ganedit edit: out of memory\n");
        r = 1;
        goto done;
    }
    for (size_t i = 0; i < RR; i++) {
        float m = mask[i];
        for (int c = 0; c < 3; c++)
            target[c * RR + i] = m * scr[c * RR + i] + (1 - m) * outside[c * RR + i];
        weights[i] = m + keep * (1 - m);
    }
    s.p = edit_p;
    if ((r = edit_run(&s, target, weights, "editing", &res))) goto done;
    if ((r = edit_write_outputs(&s, o.out, target, mask, &res, argc, argv, photo))) goto done;
    {
        /* how far the result moved from the projection outside the mask, and from the scribble
         * inside */
        double out_err = 0, out_w = 0, in_err = 0, in_w = 0;
        for (size_t i = 0; i < RR; i++)
            for (int c = 0; c < 3; c++) {
                double d = res.image[c * RR + i] - outside[c * RR + i],
                       e = res.image[c * RR + i] - scr[c * RR + i];
                out_err += (1 - mask[i]) * d * d;
                out_w += 1 - mask[i];
                in_err += mask[i] * e * e;
                in_w += mask[i];
            }
        fprintf(stderr,
                "ganedit edit: RMS error outside the mask vs the %s %.4f, inside vs the scribble "
                "%.4f; wrote %s/result.png\n",
                given ? "photo" : "projection", sqrt(out_err / (out_w > 0 ? out_w : 1)),
                sqrt(in_err / (in_w > 0 ? in_w : 1)), o.out);
    }
    if (res.stopped) r = edit_stop_status() ? edit_stop_status() : 130;
write_projection:
    if (!given) {
        ge_status st;
        int w;
        if ((w = edit_make_dir("edit", o.out))) {
            r = w;
        } else if ((st = ge_image_write_png(edit_path(o.out, "projection.png"), proj.image, 1, 3,
                                            s.R, s.R, 1)) != GE_OK) {
            r = cli_fail("edit", st);
        } else if ((w = edit_save_latent("edit", edit_path(o.out, "projection.npy"), s.g, s.p.space,
                                         proj.latent, 1))) {
            r = w;
        }
    }
done:
    ge_edit_result_free(&proj);
    ge_edit_result_free(&res);
    free(img);
    free(scr);
    free(mask);
    free(target);
    free(weights);
    edit_setup_free(&s);
    return r;
}
