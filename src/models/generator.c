/* generator.c - the public ge_generator: loads the weights, recognises the
 * architecture from the tensor names (deconv1.0.weight: DCGAN vanilla,
 * up_conv1.0.weight: DCGAN deluxe, mapping.fc0.weight: StyleGAN2-ADA) and
 * forwards calls to that model's vtable. Weights holding NaN or Inf are
 * refused at load (GE_ERR_NUMERIC), never propagated into images. */
#include "models/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ge_gen_call_init(ge_gen_call *c) {
    memset(c, 0, sizeof *c);
    c->truncation_psi = 1.f;
    c->truncation_cutoff = 0;
    c->noise = GE_NOISE_CONST;
}

void ge_gen_options_init(ge_gen_options *o) {
    memset(o, 0, sizeof *o);
    o->conv_clamp = -1;
}

ge_status ge_expect_tensor(const ge_tensor **out, const ge_tensors *w, const char *path,
                           const char *name, int ndim, const int64_t *shape) {
    const ge_tensor *t = ge_tensors_find(w, name);
    if (!t) return ge_fail(GE_ERR_FORMAT, "%s: missing tensor '%s'", path, name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[128] = "", want[128] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t->shape[i]);
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "",
                     (long long)shape[i]);
        return ge_fail(GE_ERR_SHAPE, "%s: tensor '%s' has shape (%s), expected (%s)", path, name,
                       got, want);
    }
    *out = t;
    return GE_OK;
}

/* Every tensor of the file is checked, used or not: a weight file holding a
 * NaN or Inf anywhere is corrupt. The test is on the exponent bits (all ones
 * = Inf or NaN), which also holds under -ffast-math. */
ge_status ge_check_finite_weights(const ge_tensors *w, const char *path) {
    for (int i = 0; i < ge_tensors_count(w); i++) {
        const ge_tensor *t = ge_tensors_at(w, i);
        for (size_t k = 0; k < t->numel; k++) {
            uint32_t bits;
            memcpy(&bits, &t->data[k], sizeof bits);
            if ((bits & 0x7f800000u) == 0x7f800000u)
                return ge_fail(GE_ERR_NUMERIC,
                               "%s: tensor '%s' holds %s at element %zu: the weights are corrupt",
                               path, t->name, (bits & 0x007fffffu) ? "NaN" : "Inf", k);
        }
    }
    return GE_OK;
}

ge_status ge_generator_load(ge_generator **out, const char *path, const ge_gen_options *opt) {
    *out = NULL;
    ge_gen_options defaults;
    if (!opt) {
        ge_gen_options_init(&defaults);
        opt = &defaults;
    }
    ge_tensors *w = NULL;
    ge_status s = ge_tensors_load(&w, path);
    if (s != GE_OK) return s;
    if ((s = ge_check_finite_weights(w, path)) != GE_OK) {
        ge_tensors_free(w);
        return s;
    }
    ge_generator *g = ge_calloc(1, sizeof *g);
    if (!g) {
        ge_tensors_free(w);
        return GE_ERR_NOMEM;
    }
    if (ge_tensors_find(w, "deconv1.0.weight") || ge_tensors_find(w, "up_conv1.0.weight"))
        s = ge_dcgan_create(&g->vt, &g->impl, &g->info, w, path);
    else if (ge_tensors_find(w, "mapping.fc0.weight"))
        s = ge_stylegan2_create(&g->vt, &g->impl, &g->info, w, path, opt);
    else {
        ge_tensors_free(w);
        s = ge_fail(GE_ERR_UNSUPPORTED,
                    "%s: not a generator ganedit knows (no deconv1.0.weight, up_conv1.0.weight or "
                    "mapping.fc0.weight)",
                    path);
    }
    if (s != GE_OK) {
        free(g);
        return s;
    }
    *out = g;
    return GE_OK;
}

void ge_generator_free(ge_generator *g) {
    if (!g) return;
    if (g->vt) g->vt->free(g->impl);
    free(g);
}

const ge_gen_info *ge_generator_info(const ge_generator *g) { return &g->info; }

size_t ge_generator_latent_size(const ge_generator *g, ge_latent_space sp) {
    switch (sp) {
    case GE_LATENT_Z: return (size_t)g->info.z_dim;
    case GE_LATENT_W: return (size_t)g->info.w_dim;
    case GE_LATENT_WPLUS: return (size_t)g->info.num_ws * g->info.w_dim;
    }
    return 0;
}

ge_status ge_generator_forward(ge_generator *g, float *img, const float *latent,
                               ge_latent_space sp, int n, const ge_gen_call *call) {
    if (n <= 0) return ge_fail(GE_ERR_ARG, "batch size must be positive (got %d)", n);
    if (sp != GE_LATENT_Z && g->info.w_dim == 0)
        return ge_fail(GE_ERR_ARG, "%s has only a z latent space", g->info.arch);
    ge_gen_call defaults;
    if (!call) {
        ge_gen_call_init(&defaults);
        call = &defaults;
    }
    return g->vt->forward(g->impl, img, latent, sp, n, call);
}

ge_status ge_generator_backward(ge_generator *g, float *dlatent, const float *dimg) {
    return g->vt->backward(g->impl, dlatent, dimg);
}

ge_status ge_generator_mapping(ge_generator *g, float *ws, const float *z, int n,
                               const ge_gen_call *call) {
    if (!g->vt->mapping) return ge_fail(GE_ERR_ARG, "%s has no mapping network", g->info.arch);
    ge_gen_call defaults;
    if (!call) {
        ge_gen_call_init(&defaults);
        call = &defaults;
    }
    return g->vt->mapping(g->impl, ws, z, n, call);
}
