/* cmd_sample.c - `ganedit sample`: images from random latents (seeded) or
 * from a .npy of z, w or w+ latents, written as one PNG grid, optionally the
 * raw float images (.npy, for exact comparison) and the latents used. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load_latents(const char *cmd, const char *path, const ge_generator *g,
                        ge_latent_space sp, float **lat, int *n) {
    int64_t shape[8];
    int ndim;
    ge_status s = ge_npy_load(path, lat, &ndim, shape);
    if (s != GE_OK) return cli_fail(cmd, s);
    const ge_gen_info *in = ge_generator_info(g);
    size_t per = ge_generator_latent_size(g, sp);
    int ok;
    if (sp == GE_LATENT_WPLUS)
        ok = ndim == 3 && shape[1] == in->num_ws && shape[2] == in->w_dim;
    else
        ok = (ndim == 2 && (size_t)shape[1] == per) ||
             (ndim == 4 && (size_t)shape[1] == per && shape[2] == 1 && shape[3] == 1);
    if (!ok || shape[0] < 1 || shape[0] > 4096) {
        free(*lat);
        *lat = NULL;
        if (sp == GE_LATENT_WPLUS)
            fprintf(stderr, "ganedit %s: %s: expected w+ latents of shape (N, %d, %d)\n", cmd, path,
                    in->num_ws, in->w_dim);
        else
            fprintf(stderr, "ganedit %s: %s: expected %s latents of shape (N, %zu)\n", cmd, path,
                    sp == GE_LATENT_Z ? "z" : "w", per);
        return 1;
    }
    for (size_t i = 0; i < (size_t)shape[0] * per; i++)
        if (!isfinite((*lat)[i])) {
            free(*lat);
            *lat = NULL;
            fprintf(stderr, "ganedit %s: %s: latent holds NaN or Inf\n", cmd, path);
            return 1;
        }
    *n = (int)shape[0];
    return 0;
}

int cmd_sample(int argc, char **argv) {
    const char *model = NULL, *latent = "z", *latent_in = NULL, *noise = "const", *out = NULL,
               *out_npy = NULL, *out_latent = NULL;
    int n = 16, seed = 0, cols = 0;
    float psi = 1.f;
    const cli_opt opts[] = {
        {"model", OPT_STR, &model, "MODEL", "generator weights (.safetensors, .pt, .pkl; default: the shipped model)"},
        {"latent", OPT_STR, &latent, "z|w|w+", "space of --latent-in / --out-latent (default z)"},
        {"n", OPT_INT, &n, "N", "number of images (default 16)"},
        {"seed", OPT_INT, &seed, "S", "random seed (default 0)"},
        {"latent-in", OPT_STR, &latent_in, "FILE.npy", "use these latents instead of random ones"},
        {"truncation", OPT_FLOAT, &psi, "PSI", "StyleGAN2 truncation psi (default 1 = none)"},
        {"noise", OPT_STR, &noise, "MODE", "StyleGAN2 noise: const, random or none (default const)"},
        {"cols", OPT_INT, &cols, "C", "grid columns (default: square-ish)"},
        {"out", OPT_STR, &out, "IMAGE.png", "output grid (required)"},
        {"out-npy", OPT_STR, &out_npy, "FILE.npy", "also write the raw images (N,3,R,R) float32"},
        {"out-latent", OPT_STR, &out_latent, "FILE.npy", "also write the latents used"},
    };
    const cli_command cmd = {"sample", "Generate images from a GAN generator.", "", opts,
                             (int)(sizeof opts / sizeof opts[0]), 0, 0};
    const char *pos[1];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;
    char model_buf[4096];
    if (!model && !(model = cli_default_model(model_buf, sizeof model_buf)))
        return cli_usage_error("sample", "--model is required (no shipped model found, no $GANEDIT_MODEL)");
    if (!out) return cli_usage_error("sample", "--out is required");
    int sp = cli_latent_space(latent), nm = cli_noise_mode(noise);
    if (sp < 0) return cli_usage_error("sample", "--latent must be z, w or w+, got '%s'", latent);
    if (nm < 0)
        return cli_usage_error("sample", "--noise must be const, random or none, got '%s'", noise);
    if (n < 1 || n > 1024) return cli_usage_error("sample", "--n must be 1..1024");
    if (psi < -4 || psi > 4) return cli_usage_error("sample", "--truncation must be in [-4, 4]");

    ge_generator *g = NULL;
    ge_status s = ge_generator_load(&g, model, NULL);
    if (s != GE_OK) return cli_fail("sample", s);
    const ge_gen_info *in = ge_generator_info(g);
    if (sp != GE_LATENT_Z && !in->w_dim) {
        int rc = cli_usage_error("sample", "%s has only a z space", in->arch); /* before the free: in is g's */
        ge_generator_free(g);
        return rc;
    }
    ge_gen_call call;
    ge_gen_call_init(&call);
    call.truncation_psi = psi;
    call.noise = (ge_noise_mode)nm;
    call.noise_seed = (uint64_t)seed;
    float *lat = NULL, *img = NULL;
    int rc = 1;
    if (latent_in) {
        if (load_latents("sample", latent_in, g, (ge_latent_space)sp, &lat, &n)) goto done;
    } else {
        /* random z from the model's own distribution, mapped if w / w+ asked */
        ge_rng rng;
        ge_rng_seed(&rng, (uint64_t)seed);
        float *z = malloc(((size_t)n * in->z_dim) * sizeof(float));
        if (!z) goto fail;
        if (in->z_dist == GE_ZDIST_UNIFORM)
            ge_rng_fill_uniform(&rng, z, (size_t)n * in->z_dim, -1.f, 1.f);
        else
            ge_rng_fill_normal(&rng, z, (size_t)n * in->z_dim);
        if (sp == GE_LATENT_Z) {
            lat = z;
        } else {
            float *ws = malloc(((size_t)n * in->num_ws * in->w_dim) * sizeof(float));
            if (!ws || (s = ge_generator_mapping(g, ws, z, n, &call)) != GE_OK) {
                free(z);
                free(ws);
                goto fail;
            }
            free(z);
            if (sp == GE_LATENT_W) /* every row of ws is the same w */
                for (int i = 0; i < n; i++)
                    memmove(ws + (size_t)i * in->w_dim, ws + (size_t)i * in->num_ws * in->w_dim,
                            (size_t)in->w_dim * sizeof(float));
            lat = ws;
            call.truncation_psi = 1.f; /* already applied by the mapping */
        }
    }
    size_t R = (size_t)in->resolution;
    img = malloc(((size_t)n * 3 * R * R) * sizeof(float));
    if (!img) goto fail;
    /* Run in chunks to bound memory for large n. */
    for (int i = 0; i < n; i += 16) {
        int m = n - i < 16 ? n - i : 16;
        s = ge_generator_forward(g, img + (size_t)i * 3 * R * R,
                                 lat + (size_t)i * ge_generator_latent_size(g, (ge_latent_space)sp),
                                 (ge_latent_space)sp, m, &call);
        if (s != GE_OK) goto fail;
    }
    for (size_t i = 0; i < (size_t)n * 3 * R * R; i++)
        if (!isfinite(img[i])) {
            fprintf(stderr, "ganedit sample: the generator produced NaN or Inf (bad weights?)\n");
            goto done;
        }
    if (!cols) cols = (int)ceil(sqrt((double)n));
    if ((s = ge_image_write_png(out, img, n, 3, (int)R, (int)R, cols)) != GE_OK) goto fail;
    if (out_npy) {
        int64_t shape[4] = {n, 3, (int64_t)R, (int64_t)R};
        if ((s = ge_npy_save(out_npy, img, 4, shape)) != GE_OK) goto fail;
    }
    if (out_latent) {
        int64_t shape[3] = {n, sp == GE_LATENT_WPLUS ? in->num_ws : 0, 0};
        int nd = 2;
        if (sp == GE_LATENT_WPLUS) {
            shape[2] = in->w_dim;
            nd = 3;
        } else {
            shape[1] = (int64_t)ge_generator_latent_size(g, (ge_latent_space)sp);
        }
        if ((s = ge_npy_save(out_latent, lat, nd, shape)) != GE_OK) goto fail;
    }
    fprintf(stderr, "ganedit sample: wrote %d images (%s, %zux%zu) to %s\n", n, in->arch, R, R, out);
    rc = 0;
    goto done;
fail:
    rc = cli_fail("sample", s);
done:
    free(lat);
    free(img);
    ge_generator_free(g);
    return rc;
}
