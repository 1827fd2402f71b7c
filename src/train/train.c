/* train.c - the GAN training loop: set-up of a DCGAN (the course's
 * generator and discriminator) or a StyleGAN2-ADA (generator and residual
 * discriminator) run, the steps (step.c: non-saturating logistic loss, Adam,
 * DiffAugment, lazy R1 for StyleGAN2), an exponential moving average of the
 * generator (G_ema = G + (G_ema - G) beta, beta = 0.5^(B / ema_images) with
 * the StyleGAN2-ADA half-life: batch * 10/32 kimg, ramped up over the first
 * 5%), sample grids, FD-VGG, and checkpoints that resume to the same numbers.
 *
 * Reproducibility: every random draw of training (z, x-flips, augmentation)
 * comes from one ge_rng in a fixed order, and the order of the data from a
 * per-epoch permutation seeded by (seed, epoch), so the state of a run is the
 * weights, both Adam states, the EMA, the step and image counters and the
 * four words of the generator; the checkpoint holds exactly these (one
 * safetensors file, written to a temporary name and renamed) and a resumed
 * run computes the same losses bit for bit (tests/test_train.c). Sample
 * grids and FD-VGG use their own fixed-seed latents and never touch it. */
#include "io/io.h"
#include "train/trainer.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CKPT_FORMAT "ganedit-train-checkpoint-1"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

void ge_train_params_init(ge_train_params *p) {
    memset(p, 0, sizeof *p);
    p->arch = "dcgan-vanilla";
    p->resolution = 64;
    p->batch = 16;
    p->conv_dim = 32;
    p->kimg = 10;
    p->beta1 = p->beta2 = -1.f; /* z_dim, lr, the StyleGAN2 sizes: 0 = the arch's default */
    p->r1_gamma = -1.f;
    p->r1_every = -1;
    p->ema_kimg = -1.f;
    p->ema_rampup = 0.05f;
    p->augment = "color,translation,cutout";
    p->mirror = 1;
    p->seed = 0;
    p->sample_every = 500;
    p->ckpt_every = 500;
    p->fd_every = 0;
    p->fd_n = 1000;
}

/* The architecture's defaults for the settings left at 0 / < 0. */
static void resolve_defaults(ge_train_params *p, int sg2) {
    if (p->z_dim <= 0) p->z_dim = sg2 ? 64 : 100;
    if (!(p->lr_g > 0)) p->lr_g = sg2 ? 0.0025f : 0.0002f;
    if (!(p->lr_d > 0)) p->lr_d = sg2 ? 0.0025f : 0.0002f;
    if (p->beta1 < 0) p->beta1 = sg2 ? 0.f : 0.5f;
    if (p->beta2 < 0) p->beta2 = sg2 ? 0.99f : 0.999f;
    if (!sg2) return;
    if (p->w_dim <= 0) p->w_dim = 64;
    if (p->map_layers <= 0) p->map_layers = 2;
    if (p->channel_base <= 0) p->channel_base = 4096;
    if (p->channel_max <= 0) p->channel_max = 128;
    if (p->r1_every < 0) p->r1_every = 16;
    if (p->r1_gamma < 0) p->r1_gamma = 0.0002f * p->resolution * p->resolution / p->batch;
}

void ge_train_result_free(ge_train_result *r) {
    if (!r) return;
    free(r->history);
    memset(r, 0, sizeof *r);
}

static void trainer_free(trainer *T) {
    ge_dataset_free(&T->data);
    ge_generator_free(T->G);
    ge_generator_free(T->Gema);
    ge_tensors_free(T->ggrad);
    ge_disc_free(T->D);
    ge_tensors_free(T->dgrad);
    ge_adam_free(&T->opt_g);
    ge_adam_free(&T->opt_d);
    ge_diffaug_free(&T->aug_d);
    ge_diffaug_free(&T->aug_g);
    ge_diffaug_free(&T->aug_r);
    ge_diffaug_free(&T->aug_f);
    free(T->xr);
    free(T->r1v);
    free(T->r1x);
    free(T->ws);
    free(T->x);
    free(T->dimg);
    free(T->z);
    free(T->logits);
    free(T->zs);
    free(T->perm);
    ge_vgg_free(T->vgg);
    free(T->real_mu);
    free(T->real_cov);
    if (T->loss_csv) fclose(T->loss_csv);
    if (T->fd_csv) fclose(T->fd_csv);
}

static const char *out_path(const trainer *T, const char *name) {
    static _Thread_local char buf[4][8192];
    static _Thread_local int slot;
    char *b = buf[slot++ & 3];
    snprintf(b, 8192, "%s/%s", T->p.out, name);
    return b;
}

/* ---- checkpoints ----------------------------------------------------------- */

/* Appends set `t` (names prefixed) with data taken from `flat` at the same
 * offsets as t's own data (so Adam moments get the weights' layout). */
static int add_entries(ge_tensor *e, int k, const ge_tensors *t, const float *flat,
                       const char *prefix) {
    size_t total;
    const float *base = ge_flat_data(t, &total);
    for (int i = 0; i < ge_tensors_count(t); i++) {
        const ge_tensor *s = ge_tensors_at(t, i);
        ge_tensor *o = &e[k++];
        *o = *s;
        size_t len = strlen(prefix) + strlen(s->name) + 1;
        o->name = malloc(len);
        if (o->name) snprintf(o->name, len, "%s%s", prefix, s->name);
        o->data = (float *)flat + (s->data - base);
    }
    return k;
}

static void meta_str(json_object *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void meta_str(json_object *m, const char *key, const char *fmt, ...) {
    char v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    json_object_object_add(m, key, json_object_new_string(v));
}

/* The settings that define the run, as metadata (shared by both files). */
static void meta_settings(json_object *m, const trainer *T) {
    meta_str(m, "arch", "%s", T->arch);
    meta_str(m, "resolution", "%d", T->R);
    meta_str(m, "z_dim", "%d", T->p.z_dim);
    meta_str(m, "conv_dim", "%d", T->p.conv_dim);
    if (T->sg2) {
        meta_str(m, "w_dim", "%d", T->p.w_dim);
        meta_str(m, "map_layers", "%d", T->p.map_layers);
        meta_str(m, "channel_base", "%d", T->p.channel_base);
        meta_str(m, "channel_max", "%d", T->p.channel_max);
        meta_str(m, "r1_gamma", "%.9g", (double)T->p.r1_gamma);
        meta_str(m, "r1_every", "%d", T->p.r1_every);
        meta_str(m, "r1_last", "%.17g", T->last_r1);
    }
    meta_str(m, "batch", "%d", T->B);
    meta_str(m, "lr_g", "%.9g", (double)T->p.lr_g);
    meta_str(m, "lr_d", "%.9g", (double)T->p.lr_d);
    meta_str(m, "beta1", "%.9g", (double)T->p.beta1);
    meta_str(m, "beta2", "%.9g", (double)T->p.beta2);
    meta_str(m, "ema_kimg", "%.9g", (double)T->p.ema_kimg);
    meta_str(m, "ema_rampup", "%.9g", (double)T->p.ema_rampup);
    meta_str(m, "augment", "%s", T->augment);
    meta_str(m, "mirror", "%d", T->p.mirror);
    meta_str(m, "seed", "%llu", (unsigned long long)T->p.seed);
    meta_str(m, "step", "%ld", T->step);
    meta_str(m, "images", "%lld", T->images);
    if (!T->seconds_unknown)
        meta_str(m, "train_seconds", "%.0f",
                 T->seconds_before + (T->t0 > 0 ? now_s() - T->t0 : 0));
    const char *slash = strrchr(T->p.data, '/');
    meta_str(m, "dataset", "%s", slash && slash[1] ? slash + 1 : T->p.data);
    meta_str(m, "dataset_images", "%d", T->data.n);
    if (T->init_from[0]) meta_str(m, "init_from", "%s", T->init_from);
}

static ge_status save_checkpoint(trainer *T) {
    int ng = ge_tensors_count(T->gw), nd = ge_tensors_count(T->dw);
    int n = 4 * ng + 3 * nd; /* G, G_ema, Adam m and v of G; D, Adam m and v of D */
    ge_tensor *e = ge_calloc((size_t)(n + ng), sizeof *e), *ship = e + n;
    if (!e) return GE_ERR_NOMEM;
    int k = 0;
    k = add_entries(e, k, T->gw, T->g, "G.");
    k = add_entries(e, k, T->gw, T->gema, "G_ema.");
    k = add_entries(e, k, T->dw, T->d, "D.");
    k = add_entries(e, k, T->gw, T->opt_g.m, "opt_G.m.");
    k = add_entries(e, k, T->gw, T->opt_g.v, "opt_G.v.");
    k = add_entries(e, k, T->dw, T->opt_d.m, "opt_D.m.");
    k = add_entries(e, k, T->dw, T->opt_d.v, "opt_D.v.");
    add_entries(ship, 0, T->gw, T->gema, ""); /* G_ema under the generator's own names */
    ge_status s = GE_OK;
    for (int i = 0; i < n + ng; i++)
        if (!e[i].name) {
            s = ge_fail(GE_ERR_NOMEM, "out of memory");
            goto done;
        }
    json_object *m = json_object_new_object();
    meta_str(m, "format", CKPT_FORMAT);
    meta_settings(m, T);
    meta_str(m, "rng", "%016llx %016llx %016llx %016llx", (unsigned long long)T->rng.s[0],
             (unsigned long long)T->rng.s[1], (unsigned long long)T->rng.s[2],
             (unsigned long long)T->rng.s[3]);
    meta_str(m, "opt_G.t", "%d", T->opt_g.t);
    meta_str(m, "opt_D.t", "%d", T->opt_d.t);
    s = ge_safetensors_save(out_path(T, "checkpoint.safetensors"), e, k,
                            json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
    json_object_put(m);
    if (s != GE_OK) goto done;
    /* the shipped form: G_ema alone in half precision (half the size; the
     * checkpoint keeps full precision) */
    m = json_object_new_object();
    meta_str(m, "format", "ganedit-generator");
    meta_str(m, "trained_by", "ganedit train (G_ema)");
    meta_settings(m, T);
    s = ge_safetensors_save_f16(out_path(T, "generator.safetensors"), ship, ng,
                                json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
    json_object_put(m);
done:
    for (int i = 0; i < n + ng; i++) free(e[i].name);
    free(e);
    return s;
}

static const char *meta_get(json_object *m, const char *key) {
    json_object *v;
    if (!json_object_object_get_ex(m, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Reads the settings of a checkpoint into T->p (the architecture and the
 * optimisation settings; not the stopping point, folders or intervals). */
static ge_status read_settings(trainer *T, json_object *m, const char *path) {
    static const char *keys[] = {"arch", "resolution", "z_dim", "conv_dim", "batch", "lr_g",
                                 "lr_d", "beta1", "beta2", "ema_kimg", "ema_rampup", "augment",
                                 "mirror", "seed", "step", "images", "rng", "opt_G.t", "opt_D.t"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!meta_get(m, keys[i]))
            return ge_fail(GE_ERR_FORMAT, "%s: checkpoint metadata lacks '%s'", path, keys[i]);
    snprintf(T->arch, sizeof T->arch, "%s", meta_get(m, "arch"));
    snprintf(T->augment, sizeof T->augment, "%s", meta_get(m, "augment"));
    T->p.resolution = atoi(meta_get(m, "resolution"));
    T->p.z_dim = atoi(meta_get(m, "z_dim"));
    T->p.conv_dim = atoi(meta_get(m, "conv_dim"));
    T->p.batch = atoi(meta_get(m, "batch"));
    T->p.lr_g = strtof(meta_get(m, "lr_g"), NULL);
    T->p.lr_d = strtof(meta_get(m, "lr_d"), NULL);
    T->p.beta1 = strtof(meta_get(m, "beta1"), NULL);
    T->p.beta2 = strtof(meta_get(m, "beta2"), NULL);
    T->p.ema_kimg = strtof(meta_get(m, "ema_kimg"), NULL);
    T->p.ema_rampup = strtof(meta_get(m, "ema_rampup"), NULL);
    T->p.mirror = atoi(meta_get(m, "mirror"));
    T->p.seed = strtoull(meta_get(m, "seed"), NULL, 10);
    T->step = atol(meta_get(m, "step"));
    T->images = atoll(meta_get(m, "images"));
    unsigned long long r[4];
    if (sscanf(meta_get(m, "rng"), "%llx %llx %llx %llx", &r[0], &r[1], &r[2], &r[3]) != 4)
        return ge_fail(GE_ERR_FORMAT, "%s: bad rng state in the checkpoint", path);
    for (int i = 0; i < 4; i++) T->rng.s[i] = r[i];
    T->opt_g.t = atoi(meta_get(m, "opt_G.t"));
    if (meta_get(m, "train_seconds"))
        T->seconds_before = atof(meta_get(m, "train_seconds"));
    else
        T->seconds_unknown = 1;
    T->opt_d.t = atoi(meta_get(m, "opt_D.t"));
    if (meta_get(m, "init_from"))
        snprintf(T->init_from, sizeof T->init_from, "%s", meta_get(m, "init_from"));
    if (!strcmp(T->arch, "stylegan2")) {
        static const char *sk[] = {"w_dim", "map_layers", "channel_base", "channel_max",
                                   "r1_gamma", "r1_every", "r1_last"};
        for (size_t i = 0; i < sizeof sk / sizeof *sk; i++)
            if (!meta_get(m, sk[i]))
                return ge_fail(GE_ERR_FORMAT, "%s: checkpoint metadata lacks '%s'", path, sk[i]);
        T->p.w_dim = atoi(meta_get(m, "w_dim"));
        T->p.map_layers = atoi(meta_get(m, "map_layers"));
        T->p.channel_base = atoi(meta_get(m, "channel_base"));
        T->p.channel_max = atoi(meta_get(m, "channel_max"));
        T->p.r1_gamma = strtof(meta_get(m, "r1_gamma"), NULL);
        T->p.r1_every = atoi(meta_get(m, "r1_every"));
        T->last_r1 = atof(meta_get(m, "r1_last"));
    }
    if (T->p.batch < 1 || T->p.resolution < 8 || T->step < 0 || T->images < 0)
        return ge_fail(GE_ERR_FORMAT, "%s: implausible settings in the checkpoint", path);
    return GE_OK;
}

/* Copies tensors prefix+name of ck into the flat block dst laid out as `like`:
 * every one (required), or (not required) those ck has, the others counted
 * in *fresh and left as they are. A tensor of another shape is an error
 * (incompatible widths). */
static ge_status copy_set(float *dst, const ge_tensors *like, const ge_tensors *ck,
                          const char *prefix, const char *path, int required, int *copied,
                          int *fresh) {
    size_t total;
    const float *base = ge_flat_data(like, &total);
    char name[256];
    for (int i = 0; i < ge_tensors_count(like); i++) {
        const ge_tensor *t = ge_tensors_at(like, i);
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        if (!required && !ge_tensors_find(ck, name)) {
            if (fresh) ++*fresh;
            continue;
        }
        const ge_tensor *s;
        ge_status st = ge_expect_tensor(&s, ck, path, name, t->ndim, t->shape);
        if (st != GE_OK) return st;
        memcpy(dst + (t->data - base), s->data, t->numel * sizeof(float));
        if (copied) ++*copied;
    }
    return GE_OK;
}

/* Loads a training checkpoint and parses its metadata. */
static ge_status load_checkpoint(ge_tensors **ck, json_object **meta, const char *path) {
    ge_status s = ge_tensors_load(ck, path);
    if (s != GE_OK) return s;
    const char *mt = ge_tensors_metadata(*ck);
    *meta = mt ? json_tokener_parse(mt) : NULL;
    const char *fmt = *meta ? meta_get(*meta, "format") : NULL;
    if (!fmt || strcmp(fmt, CKPT_FORMAT))
        return ge_fail(GE_ERR_FORMAT, "%s: not a ganedit training checkpoint", path);
    return GE_OK;
}

/* ---- setup ------------------------------------------------------------------ */

static ge_status make_dir(const char *dir) {
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return GE_OK;
    }
    return ge_fail(GE_ERR_IO, "%s: cannot create the output folder", dir);
}

/* Keeps loss.csv / fd.csv rows up to step `upto` (a resumed run rewrites
 * what came after its checkpoint), then opens it for appending. */
static ge_status open_csv(FILE **out, const char *path, const char *header, long upto) {
    char *keep = NULL;
    size_t kl = 0;
    FILE *f = upto > 0 ? fopen(path, "r") : NULL;
    if (f) {
        char line[4096];
        FILE *mem = open_memstream(&keep, &kl);
        if (!mem) {
            fclose(f);
            return GE_ERR_NOMEM;
        }
        int first = 1;
        while (fgets(line, sizeof line, f)) {
            if (first) {
                first = 0;
                continue; /* header, rewritten below */
            }
            if (atol(line) <= upto) fputs(line, mem);
        }
        fclose(f);
        fclose(mem);
    }
    f = fopen(path, "w");
    if (!f) {
        free(keep);
        return ge_fail(GE_ERR_IO, "%s: cannot write", path);
    }
    fprintf(f, "%s\n", header);
    if (keep) fwrite(keep, 1, kl, f);
    free(keep);
    fflush(f);
    *out = f;
    return GE_OK;
}

static ge_status setup(trainer *T, const ge_train_params *in) {
    T->p = *in;
    ge_status s;
    ge_tensors *ck = NULL;
    json_object *meta = NULL;
    snprintf(T->arch, sizeof T->arch, "%s", in->arch ? in->arch : "dcgan-vanilla");
    snprintf(T->augment, sizeof T->augment, "%s", in->augment ? in->augment : "");
    if (in->resume && in->init_from)
        return ge_fail(GE_ERR_ARG, "resume and init_from exclude each other (a resumed run "
                                   "keeps the weights its checkpoint has)");
    if (in->resume) {
        if ((s = load_checkpoint(&ck, &meta, in->resume)) != GE_OK) goto done;
        if ((s = read_settings(T, meta, in->resume)) != GE_OK) goto done;
    } else if (in->init_from) {
        if ((s = load_checkpoint(&ck, &meta, in->init_from)) != GE_OK) goto done;
        const char *a = meta_get(meta, "arch"), *r = meta_get(meta, "resolution");
        const char *im = meta_get(meta, "images"), *slash = strrchr(in->init_from, '/');
        if (!a || !r || !im) {
            s = ge_fail(GE_ERR_FORMAT, "%s: checkpoint metadata lacks arch/resolution/images",
                        in->init_from);
            goto done;
        }
        if (strcmp(a, T->arch)) {
            s = ge_fail(GE_ERR_ARG, "%s holds a %s, not a %s: --init-from needs the same --arch",
                        in->init_from, a, T->arch);
            goto done;
        }
        snprintf(T->init_from, sizeof T->init_from, "%s (%s, %sx%s, %.3f kimg)",
                 slash ? slash + 1 : in->init_from, a, r, r, atoll(im) / 1000.0);
        T->p.ema_rampup = 0; /* G_ema starts from a trained one, not from noise */
    }
    if (strcmp(T->arch, "dcgan-vanilla") && strcmp(T->arch, "dcgan-deluxe") &&
        strcmp(T->arch, "stylegan2")) {
        s = ge_fail(GE_ERR_UNSUPPORTED,
                    "--arch %s: this trainer knows dcgan-vanilla, dcgan-deluxe and stylegan2",
                    T->arch);
        goto done;
    }
    T->deluxe = !strcmp(T->arch, "dcgan-deluxe");
    T->sg2 = !strcmp(T->arch, "stylegan2");
    resolve_defaults(&T->p, T->sg2);
    if (T->sg2 && T->p.batch % (T->p.batch < 4 ? T->p.batch : 4)) {
        s = ge_fail(GE_ERR_ARG, "StyleGAN2 needs a batch size divisible by 4 (minibatch-stddev "
                                "groups of 4), or below 4 (got %d)", T->p.batch);
        goto done;
    }
    T->r1_gamma = T->p.r1_gamma;
    if ((s = ge_diffaug_policy(&T->policy, T->augment)) != GE_OK) goto done;
    T->R = T->p.resolution;
    T->B = T->p.batch;
    if (T->B < 1 || T->B > 4096) {
        s = ge_fail(GE_ERR_ARG, "batch size %d outside 1..4096", T->B);
        goto done;
    }
    if (!(T->p.lr_g > 0) || !(T->p.lr_d > 0) || !(T->p.beta1 >= 0 && T->p.beta1 < 1) ||
        !(T->p.beta2 >= 0 && T->p.beta2 < 1)) {
        s = ge_fail(GE_ERR_ARG, "learning rates must be > 0 and betas in [0, 1)");
        goto done;
    }
    if (T->p.ema_kimg < 0) T->p.ema_kimg = T->B * 10.f / 32.f;
    T->per = (size_t)3 * T->R * T->R;
    if (!T->p.data) {
        s = ge_fail(GE_ERR_ARG, "no training image folder given");
        goto done;
    }
    if ((s = ge_dataset_load(&T->data, T->p.data, T->R, T->p.max_images)) != GE_OK) goto done;

    /* networks: fresh from the seed, or the checkpoint's */
    if (!in->resume) ge_rng_seed(&T->rng, T->p.seed);
    ge_rng init_rng;
    ge_rng_seed(&init_rng, T->p.seed ^ 0x5eed1417ULL);
    ge_tensors *gw = NULL, *gew = NULL, *dw = NULL;
    if (T->sg2)
        s = ge_train_sg2_g_init(&gw, T->p.z_dim, T->p.w_dim, T->p.map_layers, T->R,
                                T->p.channel_base, T->p.channel_max, &init_rng);
    else
        s = ge_train_dcgan_g_init(&gw, T->deluxe, T->p.z_dim, T->p.conv_dim, T->R, &init_rng);
    if (s) goto done;
    if (T->sg2)
        s = ge_sg2_disc_init(&dw, T->R, T->p.channel_base, T->p.channel_max, &init_rng);
    else
        s = ge_train_dcgan_d_init(&dw, T->p.conv_dim, T->R, &init_rng);
    if (s) {
        ge_tensors_free(gw);
        goto done;
    }
    if ((s = ge_flat_copy(&gew, gw, NULL))) {
        ge_tensors_free(gw);
        ge_tensors_free(dw);
        goto done;
    }
    T->gw = gw, T->gew = gew, T->dw = dw;
    T->g = ge_flat_data(gw, &T->ng);
    T->gema = ge_flat_data(gew, &T->ng);
    T->d = ge_flat_data(dw, &T->nd);
    if ((s = ge_train_generator_new(&T->G, gw, "G"))) {
        ge_tensors_free(gew);
        ge_tensors_free(dw);
        goto done;
    }
    if ((s = ge_train_generator_new(&T->Gema, gew, "G_ema"))) {
        ge_tensors_free(dw);
        goto done;
    }
    if ((s = ge_disc_create(&T->D, dw, "D"))) goto done;
    if ((s = ge_flat_like(&T->ggrad, gw)) || (s = ge_flat_like(&T->dgrad, dw))) goto done;
    size_t n_;
    T->gg = ge_flat_data(T->ggrad, &n_);
    T->dg = ge_flat_data(T->dgrad, &n_);
    ge_adam_params ap;
    ge_adam_params_init(&ap);
    ap.beta1 = T->p.beta1, ap.beta2 = T->p.beta2;
    int tg = T->opt_g.t, td = T->opt_d.t; /* from the checkpoint, if any */
    ap.lr = T->p.lr_g;
    if ((s = ge_adam_init(&T->opt_g, T->ng, &ap))) goto done;
    ap.lr = T->p.lr_d;
    if ((s = ge_adam_init(&T->opt_d, T->nd, &ap))) goto done;
    if (in->init_from) {
        const char *ip = in->init_from;
        int dc = 0, df = 0;
        if ((s = copy_set(T->g, gw, ck, "G.", ip, 0, &T->init_copied, &T->init_fresh)) ||
            (s = copy_set(T->gema, gw, ck, "G_ema.", ip, 0, NULL, NULL)) ||
            (s = copy_set(T->d, dw, ck, "D.", ip, 0, &dc, &df)))
            goto done;
        if (!T->init_copied) {
            s = ge_fail(GE_ERR_ARG, "%s: no generator tensor has the name of one of this "
                                    "run's (not a StyleGAN2 / DCGAN of this kind?)", ip);
            goto done;
        }
        T->init_copied += dc, T->init_fresh += df;
    }
    if (in->resume) {
        T->opt_g.t = tg, T->opt_d.t = td;
        const char *rp = in->resume;
        if ((s = copy_set(T->g, gw, ck, "G.", rp, 1, NULL, NULL)) ||
            (s = copy_set(T->gema, gw, ck, "G_ema.", rp, 1, NULL, NULL)) ||
            (s = copy_set(T->d, dw, ck, "D.", rp, 1, NULL, NULL)) ||
            (s = copy_set(T->opt_g.m, gw, ck, "opt_G.m.", rp, 1, NULL, NULL)) ||
            (s = copy_set(T->opt_g.v, gw, ck, "opt_G.v.", rp, 1, NULL, NULL)) ||
            (s = copy_set(T->opt_d.m, dw, ck, "opt_D.m.", rp, 1, NULL, NULL)) ||
            (s = copy_set(T->opt_d.v, dw, ck, "opt_D.v.", rp, 1, NULL, NULL)))
            goto done;
    }
    const ge_gen_info *gi = ge_generator_info(T->G);
    T->zdist = gi->z_dist;
    T->z_dim = gi->z_dim;
    T->num_ws = gi->num_ws;
    T->w_dim = gi->w_dim;
    if (T->sg2) {
        const ge_tensor *wa = ge_tensors_find(gw, "mapping.w_avg");
        const ge_tensor *we = ge_tensors_find(gew, "mapping.w_avg");
        if (wa && we) T->w_avg = wa->data, T->w_avg_ema = we->data;
    }

    /* buffers */
    int B = T->B;
    T->x = ge_alloc_floats(2 * (size_t)B * T->per);
    T->dimg = ge_alloc_floats((size_t)B * T->per);
    T->z = ge_alloc_floats((size_t)B * T->z_dim);
    T->logits = ge_alloc_floats(4 * (size_t)B);
    T->perm = ge_calloc((size_t)T->data.n, sizeof(int));
    if (!T->x || !T->dimg || !T->z || !T->logits || !T->perm) {
        s = ge_fail(GE_ERR_NOMEM, "out of memory for the training buffers");
        goto done;
    }
    T->dlogits = T->logits + 2 * B;
    T->perm_epoch = -1;
    if ((s = ge_diffaug_init(&T->aug_d, T->policy, 2 * B, 3, T->R, T->R)) ||
        (s = ge_diffaug_init(&T->aug_g, T->policy, B, 3, T->R, T->R)))
        goto done;
    if (T->sg2) {
        size_t nb = (size_t)B * T->per;
        T->xr = ge_alloc_floats(nb);
        T->r1v = ge_alloc_floats(nb);
        T->r1x = ge_alloc_floats(nb);
        T->ws = ge_alloc_floats((size_t)B * T->num_ws * T->w_dim);
        if (!T->xr || !T->r1v || !T->r1x || !T->ws) {
            s = ge_fail(GE_ERR_NOMEM, "out of memory for the training buffers");
            goto done;
        }
        if ((s = ge_diffaug_init(&T->aug_r, T->policy, B, 3, T->R, T->R)) ||
            (s = ge_diffaug_init(&T->aug_f, T->policy, B, 3, T->R, T->R)))
            goto done;
    }
    /* fixed sample latents */
    T->n_samples = T->R <= 64 ? 64 : (T->R <= 128 ? 36 : 16);
    T->zs = ge_alloc_floats((size_t)T->n_samples * T->z_dim);
    if (!T->zs) {
        s = GE_ERR_NOMEM;
        goto done;
    }
    ge_rng srng;
    ge_rng_seed(&srng, T->p.seed + 0x5a3b1e5ULL);
    if (T->zdist == GE_ZDIST_UNIFORM)
        ge_rng_fill_uniform(&srng, T->zs, (size_t)T->n_samples * T->z_dim, -1.f, 1.f);
    else
        ge_rng_fill_normal(&srng, T->zs, (size_t)T->n_samples * T->z_dim);

    if ((s = make_dir(T->p.out))) goto done;
    if ((s = open_csv(&T->loss_csv, out_path(T, "loss.csv"),
                      T->sg2 ? "step,kimg,d_loss_real,d_loss_fake,g_loss,logit_real,logit_fake,"
                               "seconds,r1"
                             : "step,kimg,d_loss_real,d_loss_fake,g_loss,logit_real,logit_fake,"
                               "seconds",
                      in->resume ? T->step : 0)))
        goto done;
    if (T->p.fd_every > 0 &&
        (s = open_csv(&T->fd_csv, out_path(T, "fd.csv"), "step,kimg,fd_vgg",
                      in->resume ? T->step : 0)))
        goto done;
done:
    if (meta) json_object_put(meta);
    ge_tensors_free(ck);
    return s;
}

/* ---- samples and FD-VGG ------------------------------------------------------ */

static ge_status generate(ge_generator *g, float *img, const float *z, int n) {
    const ge_gen_info *gi = ge_generator_info(g);
    size_t per = (size_t)3 * gi->resolution * gi->resolution;
    for (int i = 0; i < n; i += 16) {
        int m = n - i < 16 ? n - i : 16;
        ge_status s = ge_generator_forward(g, img + per * i, z + (size_t)i * gi->z_dim,
                                           GE_LATENT_Z, m, NULL);
        if (s != GE_OK) return s;
    }
    return GE_OK;
}

static ge_status write_samples(trainer *T) {
    float *img = ge_alloc_floats((size_t)T->n_samples * T->per);
    if (!img) return GE_ERR_NOMEM;
    ge_status s = generate(T->Gema, img, T->zs, T->n_samples);
    char name[64];
    snprintf(name, sizeof name, "samples_%06ld.png", T->step);
    int cols = 1;
    while (cols * cols < T->n_samples) cols++;
    if (s == GE_OK) s = ge_image_write_png(out_path(T, name), img, T->n_samples, 3, T->R, T->R, cols);
    free(img);
    return s;
}

/* Features of n images from g on latents seeded by seed, into feat (n, d). */
static ge_status gen_features(float *feat, int *d, ge_generator *g, ge_vgg *v, int n,
                              uint64_t seed) {
    const ge_gen_info *gi = ge_generator_info(g);
    int R = gi->resolution, chunk = 64;
    size_t per = (size_t)3 * R * R;
    float *z = ge_alloc_floats((size_t)chunk * gi->z_dim), *img = ge_alloc_floats(chunk * per);
    ge_status s = GE_OK;
    if (!z || !img) s = GE_ERR_NOMEM;
    ge_rng r;
    ge_rng_seed(&r, seed);
    int dd = 0;
    for (int i = 0; s == GE_OK && i < n; i += chunk) {
        int m = n - i < chunk ? n - i : chunk;
        if (gi->z_dist == GE_ZDIST_UNIFORM)
            ge_rng_fill_uniform(&r, z, (size_t)m * gi->z_dim, -1.f, 1.f);
        else
            ge_rng_fill_normal(&r, z, (size_t)m * gi->z_dim);
        /* d is known after the first chunk (i == 0 needs no offset) */
        if ((s = generate(g, img, z, m)) == GE_OK)
            s = ge_fd_features(feat + (size_t)i * dd, &dd, v, img, m, R, R);
    }
    *d = dd;
    free(z);
    free(img);
    return s;
}

#define FD_MAX_DIM 512

ge_status ge_train_fd_of(double *fd, double *fd_floor, double *fd_matched, ge_generator *g,
                         ge_vgg *v, const float *real, int m, int n, uint64_t seed) {
    const ge_gen_info *gi = ge_generator_info(g);
    int R = gi->resolution;
    if (m < 4 || n < 2) return ge_fail(GE_ERR_ARG, "FD-VGG needs >= 4 real and >= 2 generated images");
    size_t cap = (size_t)(m > n ? m : n) * FD_MAX_DIM;
    float *fr = ge_alloc_floats((size_t)m * FD_MAX_DIM), *fg = ge_alloc_floats(cap);
    double *mu = ge_calloc(4 * FD_MAX_DIM, sizeof(double));
    double *cov = ge_calloc((size_t)2 * FD_MAX_DIM * FD_MAX_DIM, sizeof(double));
    ge_status s = GE_OK;
    int d = 0, d2 = 0;
    if (!fr || !fg || !mu || !cov) {
        s = GE_ERR_NOMEM;
        goto done;
    }
    if ((s = ge_fd_features(fr, &d, v, real, m, R, R))) goto done;
    if (d > FD_MAX_DIM) {
        s = ge_fail(GE_ERR_UNSUPPORTED, "FD-VGG layer with %d channels", d);
        goto done;
    }
    if ((s = gen_features(fg, &d2, g, v, n, seed))) goto done;
    double *cov2 = cov + (size_t)FD_MAX_DIM * FD_MAX_DIM;
    if ((s = ge_fd_stats(mu, cov, fr, m, d)) || (s = ge_fd_stats(mu + FD_MAX_DIM, cov2, fg, n, d)) ||
        (s = ge_fd_distance(fd, mu, cov, mu + FD_MAX_DIM, cov2, d)))
        goto done;
    if (fd_floor || fd_matched) {
        /* two halves of the real set after a seeded shuffle */
        int *idx = ge_calloc((size_t)m, sizeof(int));
        if (!idx) {
            s = GE_ERR_NOMEM;
            goto done;
        }
        for (int i = 0; i < m; i++) idx[i] = i;
        ge_rng r;
        ge_rng_seed(&r, seed ^ 0xf100dULL);
        for (int i = m - 1; i > 0; i--) {
            int j = (int)(ge_rng_u64(&r) % (uint64_t)(i + 1)), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        int h = m / 2;
        /* matched: the first m - h generated images against the second half */
        if (fd_matched && n >= m - h &&
            ((s = ge_fd_stats(mu, cov, fg, m - h, d)) == GE_OK)) {
            float *half = ge_alloc_floats((size_t)(m - h) * d);
            if (!half) s = GE_ERR_NOMEM;
            for (int i = 0; half && i < m - h; i++)
                memcpy(half + (size_t)i * d, fr + (size_t)idx[h + i] * d, (size_t)d * sizeof(float));
            if (s == GE_OK) s = ge_fd_stats(mu + FD_MAX_DIM, cov2, half, m - h, d);
            if (s == GE_OK) s = ge_fd_distance(fd_matched, mu, cov, mu + FD_MAX_DIM, cov2, d);
            free(half);
        }
        for (int i = 0; s == GE_OK && i < m; i++) /* rows into fg: first half then second */
            memcpy(fg + (size_t)i * d, fr + (size_t)idx[i] * d, (size_t)d * sizeof(float));
        free(idx);
        if (s != GE_OK) goto done;
        if (fd_floor && ((s = ge_fd_stats(mu, cov, fg, h, d)) ||
                         (s = ge_fd_stats(mu + FD_MAX_DIM, cov2, fg + (size_t)h * d, m - h, d)) ||
                         (s = ge_fd_distance(fd_floor, mu, cov, mu + FD_MAX_DIM, cov2, d))))
            goto done;
    }
done:
    free(fr);
    free(fg);
    free(mu);
    free(cov);
    return s;
}

/* FD-VGG of G_ema against the whole dataset (its statistics cached). */
static ge_status eval_fd(trainer *T, double *fd) {
    ge_status s;
    int n = T->p.fd_n > 1 ? T->p.fd_n : 1000;
    if (!T->vgg) {
        char path[4096];
        if ((s = ge_vgg_find(path, sizeof path, T->p.vgg)) || (s = ge_vgg_load(&T->vgg, path)))
            return s;
    }
    float *feat = ge_alloc_floats((size_t)(n > T->data.n ? n : T->data.n) * FD_MAX_DIM);
    if (!feat) return GE_ERR_NOMEM;
    int d = 0;
    if (!T->real_mu) {
        if ((s = ge_fd_features(feat, &d, T->vgg, T->data.img, T->data.n, T->R, T->R))) goto done;
        T->real_mu = ge_calloc((size_t)d, sizeof(double));
        T->real_cov = ge_calloc((size_t)d * d, sizeof(double));
        if (!T->real_mu || !T->real_cov) {
            s = GE_ERR_NOMEM;
            goto done;
        }
        if ((s = ge_fd_stats(T->real_mu, T->real_cov, feat, T->data.n, d))) goto done;
        T->fd_dim = d;
    }
    if ((s = gen_features(feat, &d, T->Gema, T->vgg, n, T->p.seed + 0xfdULL))) goto done;
    double *mu = ge_calloc((size_t)d, sizeof(double)), *cov = ge_calloc((size_t)d * d, sizeof(double));
    if (!mu || !cov)
        s = GE_ERR_NOMEM;
    else if ((s = ge_fd_stats(mu, cov, feat, n, d)) == GE_OK)
        s = ge_fd_distance(fd, mu, cov, T->real_mu, T->real_cov, d);
    free(mu);
    free(cov);
done:
    free(feat);
    return s;
}

/* ---- the run ---------------------------------------------------------------- */

ge_status ge_train_run(const ge_train_params *p, ge_train_result *r) {
    memset(r, 0, sizeof *r);
    r->last_fd = -1;
    if (!p->out) return ge_fail(GE_ERR_ARG, "no output folder given");
    trainer *T = ge_calloc(1, sizeof *T);
    if (!T) return GE_ERR_NOMEM;
    ge_status s = setup(T, p);
    if (s != GE_OK) goto done;
    long long target = (long long)llround(p->kimg * 1000.0);
    long steps_left = target > T->images ? (long)((target - T->images + T->B - 1) / T->B) : 0;
    r->first_step = T->step;
    r->init_copied = T->init_copied, r->init_fresh = T->init_fresh;
    r->history = ge_calloc((size_t)(steps_left ? steps_left : 1), GE_TT_N * sizeof(double));
    if (!r->history) {
        s = GE_ERR_NOMEM;
        goto done;
    }
    double t0 = now_s();
    T->t0 = t0;
    long long images0 = T->images;
    int saved_at_end = 0;
    for (long k = 0; k < steps_left; k++) {
        ge_train_status st;
        memset(&st, 0, sizeof st);
        if ((s = ge_trainer_step(T, st.terms))) break;
        memcpy(r->history + (size_t)k * GE_TT_N, st.terms, sizeof st.terms);
        r->steps_done = k + 1;
        st.step = T->step;
        st.images = T->images;
        st.seconds = now_s() - t0;
        st.images_per_s = (T->images - images0) / (st.seconds > 1e-9 ? st.seconds : 1e-9);
        st.eta_s = (target - T->images) / (st.images_per_s > 0 ? st.images_per_s : 1);
        st.fd = -1;
        fprintf(T->loss_csv, "%ld,%.3f,%.6g,%.6g,%.6g,%.6g,%.6g,%.2f", T->step,
                T->images / 1000.0, st.terms[GE_TT_D_REAL], st.terms[GE_TT_D_FAKE],
                st.terms[GE_TT_G], st.terms[GE_TT_LOGIT_REAL], st.terms[GE_TT_LOGIT_FAKE],
                st.seconds);
        if (T->sg2) fprintf(T->loss_csv, ",%.6g", st.terms[GE_TT_R1]);
        fputc('\n', T->loss_csv);
        fflush(T->loss_csv);
        int last = k == steps_left - 1;
        if (p->fd_every > 0 && (T->step % p->fd_every == 0 || last)) {
            if ((s = eval_fd(T, &st.fd))) break;
            r->last_fd = st.fd;
            fprintf(T->fd_csv, "%ld,%.3f,%.6g\n", T->step, T->images / 1000.0, st.fd);
            fflush(T->fd_csv);
        }
        int stop = (p->stop && *p->stop) || (p->progress && p->progress(p->user, &st));
        if (!p->quiet_files && ((p->sample_every > 0 && T->step % p->sample_every == 0) || last || stop))
            if ((s = write_samples(T))) break;
        if ((p->ckpt_every > 0 && T->step % p->ckpt_every == 0) || last || stop) {
            if ((s = save_checkpoint(T))) break;
            saved_at_end = last || stop;
        }
        if (stop) {
            r->stopped = 1;
            break;
        }
    }
    if (s == GE_OK && !saved_at_end) s = save_checkpoint(T); /* nothing to do, or resumed at end */
    r->seconds = now_s() - t0;
    r->images = T->images;
done:
    trainer_free(T);
    free(T);
    return s;
}
