/* serve_jobs.c - the work side of `ganedit serve`: stores of uploaded images
 * and results, the job table, the bounded FIFO queue, and the single worker
 * thread that owns the generator and the VGG.
 *
 * One worker, because the model keeps its activations between forward and
 * backward (and CPU kernels already use every core): jobs from many browsers
 * run one after another, each with its own copies of its inputs, so nothing
 * one client does can reach another's job. Stores are budgeted in bytes and
 * drop their oldest entries, jobs are remembered up to a count, the queue has
 * a length cap: memory stays bounded however long the server runs.
 *
 * Live previews: ge_edit_run's progress callback reports losses but not the
 * image. Rather than change the engine, the worker hands it a thin generator
 * (a "tap") whose forward calls the real model and keeps a copy of the last
 * image; the progress callback, which runs right after the objective was
 * evaluated at the current latent, encodes that copy as the preview. */
#include "serve_common.h"

#include "models/models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void srv_limits_defaults(srv_limits *l) {
    l->max_upload = 8u << 20;
    l->max_json = 64u << 10;
    l->max_side = 2048;
    l->max_steps = 2000;
    l->max_frames = 32;
    l->max_queue = 16;
    l->max_jobs = 256;
    l->store_bytes = (size_t)256 << 20;
    l->max_conns = 64;
}

const char *srv_state_name(srv_job_state s) {
    static const char *n[] = {"queued", "running", "done", "failed", "cancelled"};
    return n[s];
}

const char *srv_kind_name(srv_job_kind k) {
    static const char *n[] = {"sample", "project", "draw", "edit", "interpolate"};
    return n[k];
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

void srv_new_id(char id[SRV_ID_LEN + 1]) {
    unsigned char r[SRV_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got < sizeof r) { /* no kernel randomness: still unique, just guessable */
        static uint64_t c;
        uint64_t v = (uint64_t)(now_s() * 1e9) ^ ++c * 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(v >> (8 * (i % 8)) ^ i);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(id + 2 * i, 3, "%02x", r[i]);
}

int srv_id_ok(const char *s) {
    for (int i = 0; i < SRV_ID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return s[SRV_ID_LEN] == 0;
}

/* ---- stores ---------------------------------------------------------------- */

void srv_image_free(srv_image *im) {
    if (!im) return;
    free(im->rgb);
    free(im->alpha);
    free(im);
}

static void result_free(srv_result *r) {
    if (!r) return;
    free(r->images);
    free(r->latents);
    free(r);
}

srv_image *srv_image_find(srv_t *s, const char *id) {
    for (int i = 0; i < s->n_images; i++)
        if (!strcmp(s->images[i]->id, id)) return s->images[i];
    return NULL;
}

srv_result *srv_result_find(srv_t *s, const char *id) {
    for (int i = 0; i < s->n_results; i++)
        if (!strcmp(s->results[i]->id, id)) return s->results[i];
    return NULL;
}

/* Drops the oldest images and results until the budget holds, keeping the
 * newest entry (keep_order) whatever its size. */
static void store_trim(srv_t *s, uint64_t keep_order) {
    while (s->store_used > s->lim.store_bytes) {
        int bi = -1, br = -1;
        uint64_t best = UINT64_MAX;
        for (int i = 0; i < s->n_images; i++)
            if (s->images[i]->order < best && s->images[i]->order != keep_order)
                best = s->images[i]->order, bi = i, br = -1;
        for (int i = 0; i < s->n_results; i++)
            if (s->results[i]->order < best && s->results[i]->order != keep_order)
                best = s->results[i]->order, br = i, bi = -1;
        if (bi >= 0) {
            s->store_used -= s->images[bi]->bytes;
            srv_image_free(s->images[bi]);
            s->images[bi] = s->images[--s->n_images];
        } else if (br >= 0) {
            s->store_used -= s->results[br]->bytes;
            result_free(s->results[br]);
            s->results[br] = s->results[--s->n_results];
        } else {
            break;
        }
    }
}

static int grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 32;
    while (nc < need)
        nc *= 2;
    void *a = realloc(*arr, (size_t)nc * elem);
    if (!a) return -1;
    *arr = a;
    *cap = nc;
    return 0;
}

void srv_image_add(srv_t *s, srv_image *im) {
    if (grow((void **)&s->images, &s->cap_images, s->n_images + 1, sizeof *s->images)) {
        srv_image_free(im);
        return;
    }
    im->order = ++s->counter;
    s->images[s->n_images++] = im;
    s->store_used += im->bytes;
    store_trim(s, im->order);
}

static void result_add(srv_t *s, srv_result *r) {
    if (grow((void **)&s->results, &s->cap_results, s->n_results + 1, sizeof *s->results)) {
        result_free(r);
        return;
    }
    r->order = ++s->counter;
    s->results[s->n_results++] = r;
    s->store_used += r->bytes;
    store_trim(s, r->order);
}

/* ---- jobs --------------------------------------------------------------------- */

srv_job *srv_job_new(void) {
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    srv_new_id(j->id);
    j->refs = 1;
    return j;
}

void srv_job_free(srv_job *j) {
    if (!j) return;
    free(j->target);
    free(j->mask);
    free(j->latent);
    free(j->latent2);
    free(j->preview);
    free(j);
}

void srv_job_ref(srv_job *j) {
    j->refs++;
}

void srv_job_unref(srv_t *s, srv_job *j, int lock) {
    if (lock) pthread_mutex_lock(&s->mu);
    int last = --j->refs == 0;
    if (lock) pthread_mutex_unlock(&s->mu);
    if (last) srv_job_free(j);
}

srv_job *srv_job_find(srv_t *s, const char *id) {
    for (int i = 0; i < s->n_jobs; i++)
        if (!strcmp(s->jobs[i]->id, id)) return s->jobs[i];
    return NULL;
}

static int finished(const srv_job *j) {
    return j->state >= JOB_DONE;
}

/* A finished job keeps only its status (a few hundred bytes): its inputs and
 * preview go (the result has the image). */
static void drop_inputs(srv_job *j) {
    free(j->target);
    free(j->mask);
    free(j->latent);
    free(j->latent2);
    free(j->preview);
    j->target = j->mask = j->latent = j->latent2 = NULL;
    j->preview = NULL;
    j->preview_len = 0;
}

/* Forgets the oldest finished jobs beyond the cap (streams keep their refs). */
static void jobs_trim(srv_t *s) {
    while (s->n_jobs > s->lim.max_jobs) {
        int b = -1;
        for (int i = 0; i < s->n_jobs; i++)
            if (finished(s->jobs[i]) && (b < 0 || s->jobs[i]->order < s->jobs[b]->order)) b = i;
        if (b < 0) return;
        srv_job *j = s->jobs[b];
        memmove(s->jobs + b, s->jobs + b + 1, (size_t)(s->n_jobs - b - 1) * sizeof *s->jobs);
        s->n_jobs--;
        srv_job_unref(s, j, 0);
    }
}

int srv_job_submit(srv_t *s, srv_job *j) {
    if (s->shutdown || s->q_len >= s->lim.max_queue) return -1;
    if (grow((void **)&s->jobs, &s->cap_jobs, s->n_jobs + 1, sizeof *s->jobs)) return -1;
    j->order = ++s->counter;
    j->state = JOB_QUEUED;
    j->next = NULL;
    s->jobs[s->n_jobs++] = j; /* the table owns the creator's reference */
    if (s->q_tail)
        s->q_tail->next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    s->q_len++;
    jobs_trim(s);
    pthread_cond_signal(&s->work);
    return 0;
}

int srv_job_position(srv_t *s, const srv_job *j) {
    int k = 1;
    for (const srv_job *q = s->q_head; q; q = q->next, k++)
        if (q == j) return k;
    return 0;
}

static void publish(srv_t *s, srv_job *j) {
    j->seq++;
    pthread_cond_broadcast(&s->changed);
}

int srv_job_cancel(srv_t *s, srv_job *j) {
    if (j->state == JOB_QUEUED) {
        srv_job **pp = &s->q_head, *prev = NULL;
        while (*pp && *pp != j)
            prev = *pp, pp = &(*pp)->next;
        if (*pp) {
            *pp = j->next;
            if (s->q_tail == j) s->q_tail = prev;
            s->q_len--;
        }
        j->next = NULL;
        j->state = JOB_CANCELLED;
        s->jobs_cancelled++;
        drop_inputs(j);
        publish(s, j);
        return 0;
    }
    if (j->state == JOB_RUNNING) {
        j->stop = 1; /* the engine checks it every step; the worker finishes it */
        return 0;
    }
    return -1;
}

/* ---- the tap: a generator that remembers its last image ------------------------ */

typedef struct {
    ge_generator *inner;
    float *last; /* (1, 3, R, R): the first image of the last forward */
    size_t n;    /* floats in last */
    int valid;
} tap_t;

static ge_status tap_forward(void *impl, float *img, const float *latent, ge_latent_space sp, int n,
                             const ge_gen_call *call) {
    tap_t *t = impl;
    ge_status st = t->inner->vt->forward(t->inner->impl, img, latent, sp, n, call);
    if (st == GE_OK && t->last) {
        memcpy(t->last, img, t->n * sizeof(float));
        t->valid = 1;
    }
    return st;
}

static ge_status tap_backward(void *impl, float *dlatent, const float *dimg) {
    tap_t *t = impl;
    return t->inner->vt->backward(t->inner->impl, dlatent, dimg);
}

static ge_status tap_mapping(void *impl, float *ws, const float *z, int n,
                             const ge_gen_call *call) {
    tap_t *t = impl;
    return t->inner->vt->mapping(t->inner->impl, ws, z, n, call);
}

static void tap_free(void *impl) {
    (void)impl;
}

/* ---- running one job ------------------------------------------------------------- */

typedef struct {
    srv_t *s;
    srv_job *j;
    tap_t *tap;
    double last_preview;
} run_ctx;

static void publish_preview(run_ctx *c, int step, const double *terms, double seconds, int force) {
    srv_t *s = c->s;
    srv_job *j = c->j;
    unsigned char *png = NULL;
    size_t len = 0;
    double t = now_s();
    /* previews at most ~8 a second: encoding is cheap, sending them is not */
    if (c->tap->valid && (force || t - c->last_preview >= 0.12)) {
        if (srv_png_encode(&png, &len, c->tap->last, 1, 3, s->R, s->R) == GE_OK)
            c->last_preview = t;
    }
    pthread_mutex_lock(&s->mu);
    j->step = step;
    if (terms) memcpy(j->terms, terms, sizeof j->terms);
    j->seconds = seconds;
    if (png) {
        free(j->preview);
        j->preview = png;
        j->preview_len = len;
        j->preview_step = step;
        j->preview_seq++;
    }
    publish(s, j);
    pthread_mutex_unlock(&s->mu);
}

static int on_progress(void *user, int step, int steps, const double *terms, double seconds) {
    run_ctx *c = user;
    publish_preview(c, step, terms, seconds, step == steps);
    return c->j->stop;
}

/* The mean-of-N or random start latent, as ge_edit_run makes it. */
static ge_status start_latent(srv_t *s, float *lat, int mean, uint64_t seed) {
    ge_edit_params p;
    ge_edit_params_init(&p, s->g);
    p.space = s->space;
    p.init = mean ? GE_INIT_MEAN : GE_INIT_RANDOM;
    return ge_edit_start_latents(s->g, &p, seed, 1, lat);
}

static srv_result *result_new(srv_t *s, const srv_job *j, int n) {
    srv_result *r = calloc(1, sizeof *r);
    size_t img = (size_t)3 * s->R * s->R;
    if (!r) return NULL;
    r->images = ge_alloc_floats(n * img);
    r->latents = ge_alloc_floats(n * s->L);
    if (!r->images || !r->latents) {
        result_free(r);
        return NULL;
    }
    memcpy(r->id, j->id, sizeof r->id);
    r->kind = j->kind;
    r->n = n;
    r->bytes = sizeof *r + n * (img + s->L) * sizeof(float);
    return r;
}

/* Runs j on the model; returns the result (NULL with j->error set on failure,
 * or on a stop). */
static srv_result *run_job(srv_t *s, srv_job *j, int *stopped) {
    *stopped = 0;
    srv_result *r = NULL;
    size_t img = (size_t)3 * s->R * s->R;
    ge_status st = GE_OK;
    if (j->kind == KIND_SAMPLE || j->kind == KIND_INTERPOLATE) {
        int n = j->kind == KIND_SAMPLE ? 1 : j->frames;
        if (!(r = result_new(s, j, n))) {
            st = GE_ERR_NOMEM;
            goto fail;
        }
        for (int f = 0; f < n && st == GE_OK; f++) {
            float *lat = r->latents + f * s->L;
            if (j->kind == KIND_SAMPLE) {
                st = start_latent(s, lat, j->init == GE_INIT_MEAN, j->seed);
            } else {
                float t = (float)f / (float)(n - 1);
                for (size_t i = 0; i < s->L; i++)
                    lat[i] = (1 - t) * j->latent[i] + t * j->latent2[i];
            }
            /* one image per forward keeps the model's buffers at batch 1 */
            if (st == GE_OK)
                st = ge_generator_forward(s->g, r->images + f * img, lat, s->space, 1, NULL);
            if (j->stop) {
                *stopped = 1;
                break;
            }
            pthread_mutex_lock(&s->mu);
            j->step = f + 1;
            publish(s, j);
            pthread_mutex_unlock(&s->mu);
        }
        if (st != GE_OK || *stopped) goto fail;
        r->steps_done = n;
        return r;
    }
    tap_t tap = {s->g, ge_alloc_floats(img), img, 0};
    const ge_gen_vtable tvt = {.forward = tap_forward,
                               .backward = tap_backward,
                               .mapping = s->g->vt->mapping ? tap_mapping : NULL,
                               .free = tap_free};
    ge_generator tg = {&tvt, &tap, s->g->info};
    run_ctx ctx = {s, j, &tap, 0};
    ge_edit_params p;
    ge_edit_params_init(&p, s->g);
    p.space = s->space;
    p.steps = j->steps;
    p.lr = j->lr;
    p.seed = j->seed;
    p.restarts = 1;
    p.init = (ge_init_mode)j->init;
    p.init_latent = j->init == GE_INIT_GIVEN ? j->latent : NULL;
    p.w_reg = j->reg;
    p.progress = on_progress;
    p.user = &ctx;
    p.stop = &j->stop;
    ge_vgg *vgg = NULL;
    if (j->kind == KIND_PROJECT && s->vgg) {
        p.w_pixel = 0.3f;
        p.w_perceptual = 0.7f;
        vgg = s->vgg;
    } else {
        p.w_pixel = 1.f;
        p.w_perceptual = 0.f;
    }
    ge_edit_result out;
    st = tap.last ? ge_edit_run(&tg, vgg, j->target, j->mask, &p, &out) : GE_ERR_NOMEM;
    if (st == GE_OK) {
        publish_preview(&ctx, out.steps_done, out.history + (size_t)out.steps_done * GE_N_TERMS,
                        out.seconds, 1);
        if (out.stopped) {
            *stopped = 1;
        } else if ((r = result_new(s, j, 1))) {
            memcpy(r->latents, out.latent, s->L * sizeof(float));
            memcpy(r->images, out.image, img * sizeof(float));
            r->steps_done = out.steps_done;
            r->loss = out.history[(size_t)out.best_step * GE_N_TERMS]; /* the returned image's */
        } else {
            st = GE_ERR_NOMEM;
        }
        ge_edit_result_free(&out);
    }
    free(tap.last);
    if (st == GE_OK && !*stopped) return r;
fail:
    result_free(r);
    if (st != GE_OK) {
        const char *m = ge_errmsg();
        pthread_mutex_lock(&s->mu);
        snprintf(j->error, sizeof j->error, "%s", m && *m ? m : ge_status_name(st));
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static void *worker_main(void *arg) {
    srv_t *s = arg;
    /* OpenMP's thread count is per thread: give this one what --threads set */
    ge_set_num_threads(ge_get_num_threads());
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->q_head && !s->shutdown)
            pthread_cond_wait(&s->work, &s->mu);
        if (s->shutdown) break;
        srv_job *j = s->q_head;
        s->q_head = j->next;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        j->next = NULL;
        j->state = JOB_RUNNING;
        srv_job_ref(j);
        s->running = j;
        publish(s, j);
        pthread_mutex_unlock(&s->mu);

        int stopped = 0;
        srv_result *r = run_job(s, j, &stopped);

        pthread_mutex_lock(&s->mu);
        s->running = NULL;
        if (r) {
            j->state = JOB_DONE;
            s->jobs_done++;
            result_add(s, r);
        } else if (stopped) {
            j->state = JOB_CANCELLED;
            s->jobs_cancelled++;
        } else {
            j->state = JOB_FAILED;
            s->jobs_failed++;
        }
        drop_inputs(j);
        publish(s, j);
        srv_job_unref(s, j, 0);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int srv_start(srv_t *s) {
    const ge_gen_info *in = ge_generator_info(s->g);
    s->R = in->resolution;
    s->space = in->w_dim ? GE_LATENT_WPLUS : GE_LATENT_Z;
    s->L = ge_generator_latent_size(s->g, s->space);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->decode_mu, NULL);
    pthread_cond_init(&s->work, NULL);
    /* event streams wait with timeouts on the monotonic clock */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0) return -1;
    s->worker_started = 1;
    return 0;
}

void srv_request_stop(srv_t *s) {
    pthread_mutex_lock(&s->mu);
    s->shutdown = 1;
    if (s->running) s->running->stop = 1;
    pthread_cond_broadcast(&s->work);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->mu);
}

void srv_stop(srv_t *s) {
    srv_request_stop(s);
    if (s->worker_started) pthread_join(s->worker, NULL);
    s->worker_started = 0;
    for (int i = 0; i < s->n_jobs; i++)
        srv_job_unref(s, s->jobs[i], 0);
    for (int i = 0; i < s->n_images; i++)
        srv_image_free(s->images[i]);
    for (int i = 0; i < s->n_results; i++)
        result_free(s->results[i]);
    free(s->jobs);
    free(s->images);
    free(s->results);
    s->jobs = NULL;
    s->images = NULL;
    s->results = NULL;
    s->n_jobs = s->n_images = s->n_results = 0;
    s->q_head = s->q_tail = NULL;
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->decode_mu);
    pthread_mutex_destroy(&s->mu);
}
