/* cmd_interpolate.c - `ganedit interpolate`: a morph between two photos (each
 * projected first) or two latents (.npy). Linear in w / w+, spherical (slerp)
 * in z, where samples live on a shell; frames as PNGs and one looping GIF. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_npy(const char *p) {
    size_t n = strlen(p);
    return n > 4 && !strcmp(p + n - 4, ".npy");
}

/* Latent of one endpoint: loaded, or projected (writing its outputs to a sub-folder). */
static int endpoint(edit_setup *s, const char *src, const char *out, const char *sub, float **lat,
                    float **target, int argc, char **argv) {
    if (is_npy(src)) return edit_load_latent("interpolate", src, s->g, s->p.space, lat);
    int r = edit_load_image("interpolate", src, s->R, target, NULL);
    if (r) return r;
    ge_edit_result res = {0};
    char what[64];
    snprintf(what, sizeof what, "projecting %s", sub);
    if ((r = edit_run(s, *target, NULL, what, &res))) return r;
    if (res.stopped) {
        ge_edit_result_free(&res);
        return 130;
    }
    const char *dir = edit_path(out, sub);
    if (!(r = edit_make_dir("interpolate", dir)))
        r = edit_write_outputs(s, dir, *target, NULL, &res, argc, argv, src);
    *lat = res.latent;
    res.latent = NULL;
    ge_edit_result_free(&res);
    return r;
}

int cmd_interpolate(int argc, char **argv) {
    edit_opts o;
    edit_opts_defaults(&o);
    const char *from = NULL, *to = NULL;
    int frames = 16, delay = 10;
    cli_opt opts[44];
    int n = 0;
    opts[n++] = (cli_opt){"from", OPT_STR, &from, "A", "first endpoint: image (projected) or latent .npy (required)"};
    opts[n++] = (cli_opt){"to", OPT_STR, &to, "B", "last endpoint: image or latent .npy (required)"};
    opts[n++] = (cli_opt){"frames", OPT_INT, &frames, "N", "frames including both ends (default 16)"};
    opts[n++] = (cli_opt){"delay", OPT_INT, &delay, "CS", "GIF frame delay in 1/100 s (default 10)"};
    n = edit_opts_table(&o, opts, n);
    const cli_command cmd = {"interpolate", "Morph between two photos or latents through the latent space.",
                             "", opts, n, 0, 0};
    const char *pos[1];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;
    if (!from || !to) return cli_usage_error("interpolate", "--from and --to are required");
    if (frames < 2 || frames > 1000) return cli_usage_error("interpolate", "--frames must be 2..1000");
    if (delay < 1 || delay > 10000) return cli_usage_error("interpolate", "--delay must be 1..10000");
    if (is_npy(from) && is_npy(to)) o.perceptual = 0, o.pixel = 1; /* no projection: no VGG needed */
    edit_setup s;
    if ((r = edit_setup_load(&s, "interpolate", &o))) return r;
    float *a = NULL, *b = NULL, *ta = NULL, *tb = NULL, *lat = NULL, *img = NULL;
    size_t L = ge_generator_latent_size(s.g, s.p.space), RR = (size_t)s.R * s.R;
    if ((r = edit_make_dir("interpolate", o.out))) goto done;
    if ((r = endpoint(&s, from, o.out, "from", &a, &ta, argc, argv))) goto done;
    if ((r = endpoint(&s, to, o.out, "to", &b, &tb, argc, argv))) goto done;
    lat = malloc(sizeof(float) * L * frames);
    img = malloc(sizeof(float) * 3 * RR * frames);
    if (!lat || !img) { r = 1; goto done; }
    double na = 0, nb = 0, dot = 0;
    for (size_t i = 0; i < L; i++) {
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
        dot += (double)a[i] * b[i];
    }
    double omega = acos(fmax(-1.0, fmin(1.0, dot / (sqrt(na * nb) + 1e-30))));
    int slerp = s.p.space == GE_LATENT_Z && omega > 1e-4;
    for (int f = 0; f < frames; f++) {
        double t = (double)f / (frames - 1), wa = 1 - t, wb = t;
        if (slerp) {
            wa = sin((1 - t) * omega) / sin(omega);
            wb = sin(t * omega) / sin(omega);
        }
        for (size_t i = 0; i < L; i++) lat[f * L + i] = (float)(wa * a[i] + wb * b[i]);
    }
    ge_gen_call call = s.p.call;
    for (int f = 0; f < frames; f++) {
        ge_status st = ge_generator_forward(s.g, img + f * 3 * RR, lat + f * L, s.p.space, 1, &call);
        if (st != GE_OK) { r = cli_fail("interpolate", st); goto done; }
        char name[32];
        snprintf(name, sizeof name, "frame_%03d.png", f);
        if ((st = ge_image_write_png(edit_path(o.out, name), img + f * 3 * RR, 1, 3, s.R, s.R, 1)) != GE_OK) {
            r = cli_fail("interpolate", st);
            goto done;
        }
    }
    ge_status st = ge_gif_write(edit_path(o.out, "interpolation.gif"), img, frames, s.R, s.R, delay);
    if (st == GE_OK) st = ge_image_write_png(edit_path(o.out, "result.png"), img, frames, 3, s.R, s.R, frames > 8 ? 8 : frames);
    if (st != GE_OK) { r = cli_fail("interpolate", st); goto done; }
    if ((r = edit_save_latent("interpolate", edit_path(o.out, "latent.npy"), s.g, s.p.space, lat, frames))) goto done;
    if (ta || tb) { /* the endpoints' targets side by side; a latent endpoint shows its image */
        float *both = malloc(sizeof(float) * 6 * RR);
        if (both) {
            memcpy(both, ta ? ta : img, sizeof(float) * 3 * RR);
            memcpy(both + 3 * RR, tb ? tb : img + (size_t)(frames - 1) * 3 * RR, sizeof(float) * 3 * RR);
            st = ge_image_write_png(edit_path(o.out, "target.png"), both, 2, 3, s.R, s.R, 2);
            free(both);
            if (st != GE_OK) { r = cli_fail("interpolate", st); goto done; }
        }
    }
    fprintf(stderr, "ganedit interpolate: %d frames (%s) in %s/interpolation.gif\n", frames,
            slerp ? "spherical in z" : "linear", o.out);
done:
    free(a);
    free(b);
    free(ta);
    free(tb);
    free(lat);
    free(img);
    edit_setup_free(&s);
    return r;
}
