/* cmd_interpolate.c - `ganedit interpolate`: a morph between two photos (each
 * projected first) or two latents (.npy). Linear in w / w+, spherical (slerp)
 * in z, where samples live on a shell; frames as PNGs and one looping GIF.
 *
 * Both endpoints are read and checked before any projection starts, and
 * nothing is written until every frame has been made and found finite, so
 * bad input leaves no output. A photo endpoint's projection is written to
 * the sub-folder from/ or to/ with the usual project outputs; Ctrl-C during
 * a projection writes that projection so far and stops. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_npy(const char *p) {
    size_t n = strlen(p);
    return n > 4 && !strcmp(p + n - 4, ".npy");
}

/* One end of the morph: a latent read from a file, or a photo to project. */
typedef struct {
    const char *src, *sub; /* the argument; "from" or "to" */
    float *lat;            /* (L) */
    float *target;         /* (3, R, R) a photo, or NULL */
    ge_edit_result res;    /* its projection */
} endpoint;

static int endpoint_load(edit_setup *s, endpoint *e) {
    if (is_npy(e->src)) return edit_load_latent("interpolate", e->src, s->g, s->p.space, &e->lat);
    int r = edit_load_image("interpolate", e->src, s->R, &e->target, NULL);
    return r ? r : edit_check(s, NULL, e->target, NULL);
}

static int endpoint_write(edit_setup *s, endpoint *e, const char *out, int argc, char **argv) {
    if (!e->target) return 0;
    int r = edit_make_dir("interpolate", out);
    char dir[4400]; /* a copy: edit_path's buffers are reused by edit_write_outputs */
    snprintf(dir, sizeof dir, "%s", edit_path(out, e->sub));
    return r ? r : edit_write_outputs(s, dir, e->target, NULL, &e->res, argc, argv, e->src);
}

static int endpoint_project(edit_setup *s, endpoint *e, const char *out, int argc, char **argv) {
    if (!e->target) return 0;
    char what[64];
    snprintf(what, sizeof what, "projecting %s", e->sub);
    int r = edit_run(s, e->target, NULL, what, &e->res);
    if (r) return r;
    if (e->res.stopped) { /* keep the projection so far, then stop */
        r = endpoint_write(s, e, out, argc, argv);
        return r ? r : edit_stop_status() ? edit_stop_status() : 130;
    }
    e->lat = malloc(sizeof(float) * e->res.latent_size);
    if (!e->lat) {
        fprintf(stderr, "ganedit interpolate: out of memory\n");
        return 1;
    }
    memcpy(e->lat, e->res.latent, sizeof(float) * e->res.latent_size);
    return 0;
}

static void endpoint_free(endpoint *e) {
    free(e->lat);
    free(e->target);
    ge_edit_result_free(&e->res);
}

/* report.html: the GIF, the frames, and links to the projections. */
static int write_report(const char *out, const endpoint *a, const endpoint *b, int frames,
                        int slerp, int argc, char **argv) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return 1;
    fprintf(
        f,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>ganedit interpolate</title>\n"
        "<style>body{font-family:sans-serif;margin:2em}img{image-rendering:pixelated}"
        "code{background:#f4f4f4;padding:2px 4px}</style></head><body>\n"
        "<h1>ganedit interpolate</h1>\n<p>");
    edit_html_escape(f, a->src);
    fprintf(f, " &rarr; ");
    edit_html_escape(f, b->src);
    fprintf(
        f, ": %d frames, %s</p>\n<p><img src=\"interpolation.gif\" style=\"width:256px\"></p>\n<p>",
        frames, slerp ? "spherical in z" : "linear");
    for (int i = 0; i < frames; i++)
        fprintf(f, "<img src=\"frame_%03d.png\" style=\"width:64px\" title=\"frame %d\"> ", i, i);
    fprintf(f, "</p>\n");
    const endpoint *ends[2] = {a, b};
    for (int i = 0; i < 2; i++)
        if (ends[i]->target)
            fprintf(f,
                    "<p>Projection of the %s endpoint: <a "
                    "href=\"%s/report.html\">%s/report.html</a></p>\n",
                    ends[i]->sub, ends[i]->sub, ends[i]->sub);
    fprintf(f, "<h2>Run</h2>\n<p><code>ganedit interpolate");
    for (int i = 0; i < argc; i++) {
        fputc(' ', f);
        edit_html_escape(f, argv[i]);
    }
    fprintf(f,
            "</code></p>\n<p>Files: frame_NNN.png, interpolation.gif, result.png (all frames), "
            "latent.npy (one row per frame)%s.</p>\n</body></html>\n",
            a->target || b->target ? ", target.png (the two photos)" : "");
    fclose(f);
    int r = edit_write_text("interpolate", edit_path(out, "report.html"), buf, len);
    free(buf);
    return r;
}

int cmd_interpolate(int argc, char **argv) {
    edit_opts o;
    edit_opts_defaults(&o);
    const char *from = NULL, *to = NULL;
    int frames = 16, delay = 10;
    cli_opt opts[44];
    int n = 0;
    opts[n++] = (cli_opt){"from", OPT_STR, &from, "A",
                          "first endpoint: image (projected) or latent .npy (required)"};
    opts[n++] =
        (cli_opt){"to", OPT_STR, &to, "B", "last endpoint: image or latent .npy (required)"};
    opts[n++] =
        (cli_opt){"frames", OPT_INT, &frames, "N", "frames including both ends (default 16)"};
    opts[n++] =
        (cli_opt){"delay", OPT_INT, &delay, "CS", "GIF frame delay in 1/100 s (default 10)"};
    n = edit_opts_table(&o, opts, n);
    const cli_command cmd = {"interpolate",
                             "Morph between two photos or latents through the latent space.",
                             "",
                             opts,
                             n,
                             0,
                             0};
    const char *pos[1];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;
    if (!from || !to) return cli_usage_error("interpolate", "--from and --to are required");
    if (frames < 2 || frames > 1000)
        return cli_usage_error("interpolate", "--frames must be 2..1000");
    if (delay < 1 || delay > 10000)
        return cli_usage_error("interpolate", "--delay must be 1..10000");
    if (is_npy(from) && is_npy(to))
        o.perceptual = 0, o.style = 0, o.pixel = 1; /* no projection: no VGG */
    edit_setup s;
    if ((r = edit_setup_load(&s, "interpolate", &o))) return r;
    endpoint a = {.src = from, .sub = "from"}, b = {.src = to, .sub = "to"};
    float *lat = NULL, *img = NULL;
    size_t L = ge_generator_latent_size(s.g, s.p.space), RR = (size_t)s.R * s.R;
    /* every check before any work */
    if ((r = endpoint_load(&s, &a)) || (r = endpoint_load(&s, &b))) goto done;
    if ((r = edit_check_out("interpolate", o.out))) goto done;
    if ((r = endpoint_project(&s, &a, o.out, argc, argv))) goto done;
    if ((r = endpoint_project(&s, &b, o.out, argc, argv))) {
        if (b.res.stopped) endpoint_write(&s, &a, o.out, argc, argv); /* keep A's projection too */
        goto done;
    }
    lat = malloc(sizeof(float) * L * frames);
    img = malloc(sizeof(float) * 3 * RR * frames);
    if (!lat || !img) {
        fprintf(stderr, "ganedit interpolate: out of memory for %d frames\n", frames);
        r = 1;
        goto done;
    }
    double na = 0, nb = 0, dot = 0;
    for (size_t i = 0; i < L; i++) {
        na += (double)a.lat[i] * a.lat[i];
        nb += (double)b.lat[i] * b.lat[i];
        dot += (double)a.lat[i] * b.lat[i];
    }
    double omega = acos(fmax(-1.0, fmin(1.0, dot / (sqrt(na * nb) + 1e-30))));
    int slerp = s.p.space == GE_LATENT_Z && omega > 1e-4;
    for (int f = 0; f < frames; f++) {
        double t = (double)f / (frames - 1), wa = 1 - t, wb = t;
        if (slerp) {
            wa = sin((1 - t) * omega) / sin(omega);
            wb = sin(t * omega) / sin(omega);
        }
        for (size_t i = 0; i < L; i++)
            lat[f * L + i] = (float)(wa * a.lat[i] + wb * b.lat[i]);
    }
    /* one frame at a time: the same batch size as the projections, so the end
       frames are the projections' images */
    ge_gen_call call = s.p.call;
    for (int f = 0; f < frames; f++) {
        ge_status st =
            ge_generator_forward(s.g, img + f * 3 * RR, lat + f * L, s.p.space, 1, &call);
        if (st != GE_OK) {
            r = cli_fail("interpolate", st);
            goto done;
        }
    }
    for (size_t i = 0; i < 3 * RR * frames; i++)
        if (!isfinite(img[i])) {
            fprintf(stderr,
                    "ganedit interpolate: the generator produced NaN or Inf (frame %zu); nothing "
                    "written\n",
                    i / (3 * RR));
            r = 1;
            goto done;
        }
    if ((r = endpoint_write(&s, &a, o.out, argc, argv)) ||
        (r = endpoint_write(&s, &b, o.out, argc, argv)) ||
        (r = edit_make_dir("interpolate", o.out)))
        goto done;
    ge_status st = GE_OK;
    for (int f = 0; f < frames && st == GE_OK; f++) {
        char name[32];
        snprintf(name, sizeof name, "frame_%03d.png", f);
        st = ge_image_write_png(edit_path(o.out, name), img + f * 3 * RR, 1, 3, s.R, s.R, 1);
    }
    if (st == GE_OK)
        st = ge_gif_write(edit_path(o.out, "interpolation.gif"), img, frames, s.R, s.R, delay);
    if (st == GE_OK)
        st = ge_image_write_png(edit_path(o.out, "result.png"), img, frames, 3, s.R, s.R,
                                frames > 8 ? 8 : frames);
    if (st != GE_OK) {
        r = cli_fail("interpolate", st);
        goto done;
    }
    if ((r = edit_save_latent("interpolate", edit_path(o.out, "latent.npy"), s.g, s.p.space, lat,
                              frames)))
        goto done;
    if (a.target ||
        b.target) { /* the endpoints' targets side by side; a latent endpoint shows its image */
        float *both = malloc(sizeof(float) * 6 * RR);
        if (!both) {
            fprintf(stderr, "ganedit interpolate: out of memory\n");
            r = 1;
            goto done;
        }
        memcpy(both, a.target ? a.target : img, sizeof(float) * 3 * RR);
        memcpy(both + 3 * RR, b.target ? b.target : img + (size_t)(frames - 1) * 3 * RR,
               sizeof(float) * 3 * RR);
        st = ge_image_write_png(edit_path(o.out, "target.png"), both, 2, 3, s.R, s.R, 2);
        free(both);
        if (st != GE_OK) {
            r = cli_fail("interpolate", st);
            goto done;
        }
    }
    if ((r = write_report(o.out, &a, &b, frames, slerp, argc, argv))) goto done;
    fprintf(stderr, "ganedit interpolate: %d frames (%s) in %s/interpolation.gif\n", frames,
            slerp ? "spherical in z" : "linear", o.out);
done:
    endpoint_free(&a);
    endpoint_free(&b);
    free(lat);
    free(img);
    edit_setup_free(&s);
    return r;
}
