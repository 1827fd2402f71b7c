/* serve_http.c - the HTTP side of `ganedit serve`, on libmicrohttpd.
 *
 * libmicrohttpd runs one thread per connection (capped), so a server-sent
 * event stream can simply wait on a condition variable for its job's next
 * step; everything else answers at once. Routes:
 *
 *   GET  /, /NAME                 the page's own files (a table read at start;
 *                                 no path from a URL ever reaches the disk)
 *   GET  /api/info                model, limits, queue
 *   GET  /api/examples[/NAME]     example photos (--examples DIR)
 *   POST /api/images              upload a PNG or JPEG (raw body)
 *   GET  /api/images/ID.png       the upload as the model sees it (R x R)
 *   POST /api/jobs                JSON {"kind": sample|project|draw|edit|interpolate, ...}
 *   GET  /api/jobs/ID             state and progress
 *   GET  /api/jobs/ID/events      the same, streamed (text/event-stream) with previews
 *   GET  /api/jobs/ID/preview.png the latest intermediate image
 *   DELETE /api/jobs/ID, POST /api/jobs/ID/cancel
 *   GET  /api/results/ID[.png|.npy][?frame=K]
 *
 * Every refusal is a JSON object {"error": "...", "status": N} with a 4xx
 * status. Bodies are capped while they arrive (by Content-Length at once,
 * by counting for chunked uploads). Any Origin header must match the Host
 * (no cross-site requests from a visitor's browser), and on a loopback
 * address the Host must be a loopback name (no DNS rebinding). */
#include "serve_common.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <malloc.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- static files ------------------------------------------------------------- */

static const char *mime_of(const char *name, int examples) {
    const char *dot = strrchr(name, '.');
    if (!dot) return NULL;
    static const char *const map[][2] = {
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(dot, map[i][0])) return examples && i >= 3 ? NULL : map[i][1];
    return NULL;
}

static int safe_name(const char *n) {
    size_t len = strlen(n);
    if (!len || len >= 64 || n[0] == '.') return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)n[i]) && n[i] != '.' && n[i] != '_' && n[i] != '-') return 0;
    return 1;
}

static int cmp_files(const void *a, const void *b) {
    return strcmp(((const srv_file *)a)->name, ((const srv_file *)b)->name);
}

void srv_files_free(srv_file *f, int n) {
    for (int i = 0; i < n; i++)
        free(f[i].data);
    free(f);
}

int srv_load_files(srv_file **out, int *n_out, const char *dir, int examples) {
    const int max_files = examples ? 48 : 64;
    const size_t max_one = examples ? (2u << 20) : (4u << 20), max_total = 32u << 20;
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "ganedit serve: %s: cannot open folder: %s\n", dir, strerror(errno));
        return -1;
    }
    /* names first, sorted, so that which files are kept does not depend on readdir order */
    srv_file *f = calloc((size_t)max_files * 4, sizeof *f);
    int n = 0;
    struct dirent *e;
    while (f && (e = readdir(d)) && n < max_files * 4)
        if (safe_name(e->d_name) && mime_of(e->d_name, examples)) {
            memcpy(f[n].name, e->d_name, strlen(e->d_name) + 1); /* safe_name: < 64 bytes */
            f[n].mime = mime_of(e->d_name, examples);
            n++;
        }
    closedir(d);
    if (!f) return -1;
    qsort(f, (size_t)n, sizeof *f, cmp_files);
    int kept = 0;
    size_t total = 0;
    for (int i = 0; i < n && kept < max_files; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, f[i].name);
        struct stat st;
        FILE *fp = NULL;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max_one ||
            total + (size_t)st.st_size > max_total || !(fp = fopen(path, "rb"))) {
            if (!examples && !strcmp(f[i].name, "index.html")) break;
            continue;
        }
        unsigned char *data = malloc((size_t)st.st_size + 1);
        size_t got = data ? fread(data, 1, (size_t)st.st_size, fp) : 0;
        fclose(fp);
        if (!data || got != (size_t)st.st_size) {
            free(data);
            continue;
        }
        srv_file keep = f[i];
        keep.data = data;
        keep.len = got;
        f[kept++] = keep;
        total += got;
    }
    int has_index = 0;
    for (int i = 0; i < kept; i++)
        has_index |= !strcmp(f[i].name, "index.html");
    if (!examples && !has_index) {
        fprintf(stderr,
                "ganedit serve: %s: no index.html (give the page's folder with --web DIR)\n", dir);
        srv_files_free(f, kept);
        return -1;
    }
    *out = f;
    *n_out = kept;
    return 0;
}

static const srv_file *file_find(const srv_file *f, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(f[i].name, name)) return &f[i];
    return NULL;
}

/* ---- responses ------------------------------------------------------------------ */

static void common_headers(struct MHD_Response *r, int api) {
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    if (api) MHD_add_response_header(r, "Cache-Control", "no-store");
}

/* Set by a handler just before answering 429: the answer says when to retry. */
static __thread int retry_after;

static enum MHD_Result send_bytes(struct MHD_Connection *c, unsigned status, const char *mime,
                                  void *data, size_t len, int take, int api) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, data, take ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!r) {
        if (take) free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", mime);
    common_headers(r, api);
    if (retry_after) MHD_add_response_header(r, "Retry-After", "1");
    retry_after = 0;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_object *o) {
    const char *txt =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    enum MHD_Result ret = send_bytes(c, status, "application/json", (void *)txt, strlen(txt), 0, 1);
    json_object_put(o);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(msg));
    json_object_object_add(o, "status", json_object_new_int((int)status));
    return send_json(c, status, o);
}

static json_object *jnum(double v) {
    return isfinite(v) ? json_object_new_double(v) : NULL;
}

/* ---- JSON views of jobs, results, the server (srv->mu held) ------------------------ */

static json_object *job_json(srv_t *s, srv_job *j) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(j->id));
    json_object_object_add(o, "kind", json_object_new_string(srv_kind_name(j->kind)));
    json_object_object_add(o, "state", json_object_new_string(srv_state_name(j->state)));
    int total = j->kind == KIND_INTERPOLATE ? j->frames : j->kind == KIND_SAMPLE ? 1 : j->steps;
    json_object_object_add(o, "step", json_object_new_int(j->step));
    json_object_object_add(o, "steps", json_object_new_int(total));
    json_object_object_add(o, "position", json_object_new_int(srv_job_position(s, j)));
    json_object_object_add(o, "seconds", jnum(j->seconds));
    if (j->kind != KIND_SAMPLE && j->kind != KIND_INTERPOLATE && j->step > 0) {
        static const char *names[GE_N_TERMS] = {"total", "pixel", "perceptual", "style", "reg"};
        json_object *l = json_object_new_object();
        for (int k = 0; k < GE_N_TERMS; k++)
            json_object_object_add(l, names[k], jnum(j->terms[k]));
        json_object_object_add(o, "loss", l);
    }
    if (j->preview) json_object_object_add(o, "preview_step", json_object_new_int(j->preview_step));
    if (j->state == JOB_FAILED)
        json_object_object_add(o, "error", json_object_new_string(j->error));
    if (j->state == JOB_DONE) json_object_object_add(o, "result", json_object_new_string(j->id));
    return o;
}

static json_object *latent_shape(srv_t *s, int n) {
    const ge_gen_info *in = ge_generator_info(s->g);
    json_object *a = json_object_new_array();
    json_object_array_add(a, json_object_new_int(n));
    if (s->space == GE_LATENT_WPLUS) {
        json_object_array_add(a, json_object_new_int(in->num_ws));
        json_object_array_add(a, json_object_new_int(in->w_dim));
    } else {
        json_object_array_add(a, json_object_new_int((int)s->L));
    }
    return a;
}

static json_object *result_json(srv_t *s, srv_result *r) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(r->id));
    json_object_object_add(o, "kind", json_object_new_string(srv_kind_name(r->kind)));
    json_object_object_add(o, "frames", json_object_new_int(r->n));
    json_object_object_add(o, "steps", json_object_new_int(r->steps_done));
    json_object_object_add(o, "loss", jnum(r->loss));
    json_object_object_add(o, "resolution", json_object_new_int(s->R));
    json_object_object_add(o, "latent_shape", latent_shape(s, r->n));
    return o;
}

static json_object *info_json(srv_t *s) {
    const ge_gen_info *in = ge_generator_info(s->g);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_string(GE_VERSION));
    json_object_object_add(o, "arch", json_object_new_string(in->arch));
    const char *base = strrchr(s->model_path, '/');
    json_object_object_add(o, "model", json_object_new_string(base ? base + 1 : s->model_path));
    json_object_object_add(o, "resolution", json_object_new_int(s->R));
    json_object_object_add(o, "space",
                           json_object_new_string(s->space == GE_LATENT_Z ? "z" : "w+"));
    json_object_object_add(o, "z_dim", json_object_new_int(in->z_dim));
    json_object_object_add(o, "vgg", json_object_new_boolean(s->vgg != NULL));
    json_object *l = json_object_new_object();
    json_object_object_add(l, "max_upload_bytes",
                           json_object_new_int64((int64_t)s->lim.max_upload));
    json_object_object_add(l, "max_side", json_object_new_int(s->lim.max_side));
    json_object_object_add(l, "max_steps", json_object_new_int(s->lim.max_steps));
    json_object_object_add(l, "max_frames", json_object_new_int(s->lim.max_frames));
    json_object_object_add(l, "max_queue", json_object_new_int(s->lim.max_queue));
    json_object_object_add(o, "limits", l);
    json_object_object_add(o, "queue", json_object_new_int(s->q_len));
    json_object_object_add(o, "running", json_object_new_boolean(s->running != NULL));
    json_object_object_add(o, "jobs_done", json_object_new_int64(s->jobs_done));
    json_object_object_add(o, "jobs_failed", json_object_new_int64(s->jobs_failed));
    json_object_object_add(o, "jobs_cancelled", json_object_new_int64(s->jobs_cancelled));
    json_object_object_add(o, "jobs_kept", json_object_new_int(s->n_jobs));
    json_object_object_add(o, "store_bytes", json_object_new_int64((int64_t)s->store_used));
    struct mallinfo2 mi = mallinfo2(); /* heap in use: what a leak would make grow */
    json_object_object_add(o, "heap_bytes",
                           json_object_new_int64((int64_t)(mi.uordblks + mi.hblkhd)));
    json_object *ex = json_object_new_array();
    for (int i = 0; i < s->n_examples; i++)
        json_object_array_add(ex, json_object_new_string(s->examples[i].name));
    json_object_object_add(o, "examples", ex);
    return o;
}

/* ---- job requests ------------------------------------------------------------------- */

typedef struct {
    char msg[300];
    unsigned status;
} req_err;

static int fail(req_err *e, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(req_err *e, unsigned status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = status;
    return -1;
}

static int get_int(json_object *o, const char *key, int64_t dflt, int64_t lo, int64_t hi,
                   int64_t *out, req_err *e) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) {
        *out = dflt;
        return 0;
    }
    if (!v || !json_object_is_type(v, json_type_int))
        return fail(e, 400, "'%s' must be an integer", key);
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno || x < lo || x > hi)
        return fail(e, 400, "'%s' must be in %lld..%lld", key, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

static int get_num(json_object *o, const char *key, double dflt, double lo, double hi, double *out,
                   req_err *e) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) {
        *out = dflt;
        return 0;
    }
    if (!v || !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return fail(e, 400, "'%s' must be a number", key);
    double x = json_object_get_double(v);
    if (!isfinite(x) || x < lo || x > hi)
        return fail(e, 400, "'%s' must be in [%g, %g]", key, lo, hi);
    *out = x;
    return 0;
}

/* A string field; NULL if absent (required: 400). */
static const char *get_str(json_object *o, const char *key, int required, req_err *e) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) {
        if (required) fail(e, 400, "'%s' is required", key);
        return NULL;
    }
    if (!v || !json_object_is_type(v, json_type_string)) {
        fail(e, 400, "'%s' must be a string", key);
        return NULL;
    }
    return json_object_get_string(v);
}

static srv_image *need_image(srv_t *s, const char *id, const char *key, req_err *e) {
    if (!srv_id_ok(id)) {
        fail(e, 400, "'%s' is not an image id", key);
        return NULL;
    }
    srv_image *im = srv_image_find(s, id);
    if (!im) fail(e, 404, "'%s': no such image (uploads are kept for a while only)", key);
    return im;
}

static srv_result *need_result(srv_t *s, const char *id, const char *key, req_err *e) {
    if (!srv_id_ok(id)) {
        fail(e, 400, "'%s' is not a result id", key);
        return NULL;
    }
    srv_result *r = srv_result_find(s, id);
    if (!r) {
        fail(e, 404, "'%s': no such result (results are kept for a while only)", key);
        return NULL;
    }
    if (r->n != 1) {
        fail(e, 400, "'%s' is an interpolation; pick one image", key);
        return NULL;
    }
    return r;
}

static float *copy_floats(const float *src, size_t n) {
    float *d = ge_alloc_floats(n);
    if (d) memcpy(d, src, n * sizeof(float));
    return d;
}

/* Builds a job from the request body (srv->mu held: ids are looked up and
 * their data copied into the job). */
static srv_job *job_from_json(srv_t *s, json_object *o, req_err *e) {
    static const char *known[] = {"kind", "steps",  "lr",       "seed", "reg",  "keep", "frames",
                                  "init", "target", "scribble", "base", "from", "to"};
    json_object_object_foreach(o, key, val) {
        (void)val;
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(known[k], key))
            k++;
        if (k == sizeof known / sizeof known[0]) {
            char shown[40];
            snprintf(shown, sizeof shown, "%s", key);
            fail(e, 400, "unknown field '%s'", shown);
            return NULL;
        }
    }
    const char *kind = get_str(o, "kind", 1, e);
    if (!kind) return NULL;
    srv_job_kind kd;
    if (!strcmp(kind, "sample"))
        kd = KIND_SAMPLE;
    else if (!strcmp(kind, "project"))
        kd = KIND_PROJECT;
    else if (!strcmp(kind, "draw"))
        kd = KIND_DRAW;
    else if (!strcmp(kind, "edit"))
        kd = KIND_EDIT;
    else if (!strcmp(kind, "interpolate"))
        kd = KIND_INTERPOLATE;
    else {
        fail(e, 400, "'kind' must be sample, project, draw, edit or interpolate");
        return NULL;
    }
    int64_t steps, seed, frames;
    double lr, reg, keep;
    int draws = kd == KIND_DRAW || kd == KIND_EDIT;
    if (get_int(o, "steps", 100 < s->lim.max_steps ? 100 : s->lim.max_steps, 1, s->lim.max_steps,
                &steps, e) ||
        get_int(o, "seed", 0, 0, ((int64_t)1 << 53), &seed, e) ||
        get_int(o, "frames", 16 < s->lim.max_frames ? 16 : s->lim.max_frames, 2, s->lim.max_frames,
                &frames, e) ||
        get_num(o, "lr", 0.01, 1e-6, 1.0, &lr, e) ||
        get_num(o, "reg", draws ? 0.05 : 0.0, 0.0, 100.0, &reg, e) ||
        get_num(o, "keep", 0.3, 0.0, 1.0, &keep, e))
        return NULL;
    size_t RR = (size_t)s->R * s->R;
    srv_job *j = srv_job_new();
    if (!j) {
        fail(e, 503, "out of memory");
        return NULL;
    }
    j->kind = kd;
    j->steps = (int)steps;
    j->seed = (uint64_t)seed;
    j->frames = (int)frames;
    j->lr = (float)lr;
    j->reg = (float)reg;
    j->keep = (float)keep;
    j->init = GE_INIT_MEAN;
    const char *init = get_str(o, "init", 0, e);
    if (e->status) goto bad;
    if (init && !strcmp(init, "random"))
        j->init = GE_INIT_RANDOM;
    else if (init && strcmp(init, "mean")) {
        if (kd == KIND_EDIT || kd == KIND_INTERPOLATE) {
            fail(e, 400, "'init' is not used by %s", kind);
            goto bad;
        }
        srv_result *r = need_result(s, init, "init", e);
        if (!r) goto bad;
        if (kd != KIND_SAMPLE) {
            if (!(j->latent = copy_floats(r->latents, s->L))) goto nomem;
            j->init = GE_INIT_GIVEN;
        } else {
            fail(e, 400, "'init' of a sample must be mean or random");
            goto bad;
        }
    }
    if (kd == KIND_PROJECT) {
        const char *t = get_str(o, "target", 1, e);
        srv_image *im = t ? need_image(s, t, "target", e) : NULL;
        if (!im) goto bad;
        if (!(j->target = copy_floats(im->rgb, 3 * RR))) goto nomem;
    }
    if (draws) {
        const char *sc = get_str(o, "scribble", 1, e);
        srv_image *im = sc ? need_image(s, sc, "scribble", e) : NULL;
        if (!im) goto bad;
        if (!im->alpha) {
            fail(e, 400, "the scribble has no alpha channel (its alpha says where it is drawn)");
            goto bad;
        }
        double sum = 0;
        for (size_t i = 0; i < RR; i++)
            sum += im->alpha[i];
        if (sum < 0.5) {
            fail(e, 400, "the scribble is empty: draw something first");
            goto bad;
        }
        if (!(j->target = copy_floats(im->rgb, 3 * RR)) || !(j->mask = copy_floats(im->alpha, RR)))
            goto nomem;
        if (kd == KIND_EDIT) {
            /* the scribble inside the mask, the base image outside, weighted by keep */
            const char *b = get_str(o, "base", 1, e);
            srv_result *r = b ? need_result(s, b, "base", e) : NULL;
            if (!r) goto bad;
            if (!(j->latent = copy_floats(r->latents, s->L))) goto nomem;
            j->init = GE_INIT_GIVEN;
            for (size_t i = 0; i < RR; i++) {
                float m = j->mask[i];
                for (int c = 0; c < 3; c++)
                    j->target[c * RR + i] =
                        m * j->target[c * RR + i] + (1 - m) * r->images[c * RR + i];
                j->mask[i] = m + j->keep * (1 - m);
            }
        }
    }
    if (kd == KIND_INTERPOLATE) {
        const char *a = get_str(o, "from", 1, e), *b = a ? get_str(o, "to", 1, e) : NULL;
        srv_result *ra = b ? need_result(s, a, "from", e) : NULL;
        srv_result *rb = ra ? need_result(s, b, "to", e) : NULL;
        if (!rb) goto bad;
        if (!(j->latent = copy_floats(ra->latents, s->L)) ||
            !(j->latent2 = copy_floats(rb->latents, s->L)))
            goto nomem;
    }
    return j;
nomem:
    fail(e, 503, "out of memory");
bad:
    srv_job_free(j);
    return NULL;
}

/* ---- server-sent events ------------------------------------------------------------ */

typedef struct {
    srv_t *s;
    srv_job *j;
    unsigned seen_seq, seen_preview;
    int first, ended;
    srv_buf out;
    size_t pos;
} sse_ctx;

static void sse_event(sse_ctx *x) {
    srv_t *s = x->s;
    srv_job *j = x->j;
    int fin = j->state >= JOB_DONE;
    json_object *o = job_json(s, j);
    const char *txt =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    srv_buf_printf(&x->out, "event: %s\ndata: %.*s", fin ? "done" : "progress",
                   (int)strlen(txt) - 1, txt);
    if (j->preview && j->preview_seq != x->seen_preview) {
        /* the preview rides in the event as a data URL: no second request, no race */
        srv_buf_printf(&x->out, ",\"preview\":\"data:image/png;base64,");
        srv_base64(&x->out, j->preview, j->preview_len);
        srv_buf_printf(&x->out, "\"");
        x->seen_preview = j->preview_seq;
    }
    srv_buf_printf(&x->out, "}\n\n");
    json_object_put(o);
    x->seen_seq = j->seq;
    if (fin) x->ended = 1;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse_ctx *x = cls;
    srv_t *s = x->s;
    if (x->pos >= x->out.len) {
        x->out.len = x->pos = 0;
        if (x->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&s->mu);
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += 10;
        int timed_out = 0;
        while (!x->first && x->j->seq == x->seen_seq && !s->shutdown && !timed_out)
            timed_out = pthread_cond_timedwait(&s->changed, &s->mu, &dl) == ETIMEDOUT;
        if (s->shutdown) {
            srv_buf_printf(&x->out, "event: end\ndata: {\"error\":\"server stopping\"}\n\n");
            x->ended = 1;
        } else if (x->first || x->j->seq != x->seen_seq) {
            x->first = 0;
            sse_event(x);
        } else {
            srv_buf_printf(&x->out, ": keep-alive\n\n");
        }
        pthread_mutex_unlock(&s->mu);
        if (!x->out.len) return MHD_CONTENT_READER_END_WITH_ERROR; /* out of memory */
    }
    size_t n = x->out.len - x->pos;
    if (n > max) n = max;
    memcpy(buf, x->out.data + x->pos, n);
    x->pos += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    sse_ctx *x = cls;
    srv_job_unref(x->s, x->j, 1);
    srv_buf_free(&x->out);
    free(x);
}

static enum MHD_Result send_events(struct MHD_Connection *c, srv_t *s, srv_job *j) {
    sse_ctx *x = calloc(1, sizeof *x);
    if (!x) return send_error(c, 503, "out of memory");
    x->s = s;
    x->j = j; /* the caller took a reference for us */
    x->first = 1;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, sse_read, x, sse_free);
    if (!r) {
        sse_free(x);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    common_headers(r, 1);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- routing ------------------------------------------------------------------------ */

typedef struct {
    srv_buf body;
    size_t received;
    int too_big, answered, upload;
} req_ctx;

/* "NAME" + suffix -> id (if suffix matches); returns 1 on match. */
static int split_id(const char *rest, const char *suffix, char id[SRV_ID_LEN + 1]) {
    size_t n = strlen(rest), sl = strlen(suffix);
    if (n != SRV_ID_LEN + sl || strcmp(rest + SRV_ID_LEN, suffix)) return 0;
    memcpy(id, rest, SRV_ID_LEN);
    id[SRV_ID_LEN] = 0;
    return 1;
}

static int frame_arg(struct MHD_Connection *c, int n, int *frame) {
    const char *f = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "frame");
    *frame = -1;
    if (!f) return 0;
    char *end;
    errno = 0;
    long v = strtol(f, &end, 10);
    if (!*f || *end || errno || v < 0 || v >= n) return -1;
    *frame = (int)v;
    return 0;
}

static enum MHD_Result api_results(struct MHD_Connection *c, srv_t *s, const char *rest) {
    char id[SRV_ID_LEN + 1];
    int kind = split_id(rest, "", id)       ? 0
               : split_id(rest, ".png", id) ? 1
               : split_id(rest, ".npy", id) ? 2
                                            : -1;
    if (kind < 0 || !srv_id_ok(id)) return send_error(c, 404, "no such result");
    pthread_mutex_lock(&s->mu);
    srv_result *r = srv_result_find(s, id);
    if (!r) {
        pthread_mutex_unlock(&s->mu);
        return send_error(c, 404, "no such result (results are kept for a while only)");
    }
    if (kind == 0) {
        json_object *o = result_json(s, r);
        pthread_mutex_unlock(&s->mu);
        return send_json(c, 200, o);
    }
    int frame;
    if (frame_arg(c, r->n, &frame)) {
        int n = r->n;
        pthread_mutex_unlock(&s->mu);
        return send_error(c, 400, "'frame' must be an integer in 0..%d", n - 1);
    }
    int n = frame >= 0 ? 1 : r->n, first = frame >= 0 ? frame : 0;
    size_t img = (size_t)3 * s->R * s->R;
    float *copy = kind == 1 ? copy_floats(r->images + first * img, n * img)
                            : copy_floats(r->latents + first * s->L, n * s->L);
    srv_job_kind rk = r->kind;
    pthread_mutex_unlock(&s->mu);
    if (!copy) return send_error(c, 503, "out of memory");
    if (kind == 1) {
        unsigned char *png;
        size_t len;
        ge_status st = srv_png_encode(&png, &len, copy, n, 3, s->R, s->R);
        free(copy);
        if (st != GE_OK) return send_error(c, 503, "%s", ge_errmsg());
        return send_bytes(c, 200, "image/png", png, len, 1, 1);
    }
    const ge_gen_info *in = ge_generator_info(s->g);
    int64_t shape[3] = {n, s->space == GE_LATENT_WPLUS ? in->num_ws : (int64_t)s->L, in->w_dim};
    srv_buf b = {0};
    int bad = srv_npy_encode(&b, copy, s->space == GE_LATENT_WPLUS ? 3 : 2, shape);
    free(copy);
    if (bad) {
        srv_buf_free(&b);
        return send_error(c, 503, "out of memory");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        srv_buf_free(&b);
        return MHD_NO;
    }
    char disp[128];
    snprintf(disp, sizeof disp, "attachment; filename=\"ganedit_%s_%.8s%s.npy\"", srv_kind_name(rk),
             id, frame >= 0 ? "_frame" : "");
    MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
    MHD_add_response_header(resp, "Content-Disposition", disp);
    common_headers(resp, 1);
    enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result api_upload(struct MHD_Connection *c, srv_t *s, req_ctx *rc) {
    if (rc->too_big) return send_error(c, 413, "upload larger than %zu bytes", s->lim.max_upload);
    if (!rc->body.len) return send_error(c, 400, "empty upload: send the image file as the body");
    int w, h, kind = srv_sniff_image(rc->body.data, rc->body.len, &w, &h);
    if (!kind) return send_error(c, 415, "not a PNG or JPEG image");
    if (w <= 0 || h <= 0)
        return send_error(c, 400, "malformed %s header", kind == 1 ? "PNG" : "JPEG");
    if (w > s->lim.max_side || h > s->lim.max_side)
        return send_error(c, 413, "image is %dx%d; the limit is %d pixels per side", w, h,
                          s->lim.max_side);
    srv_image *im = calloc(1, sizeof *im);
    if (!im) return send_error(c, 503, "out of memory");
    pthread_mutex_lock(&s->decode_mu);
    ge_status st = srv_decode_image(s->tmpdir, rc->body.data, rc->body.len, s->R, &im->rgb,
                                    &im->alpha, &im->width, &im->height);
    pthread_mutex_unlock(&s->decode_mu);
    if (st != GE_OK) {
        srv_image_free(im);
        return send_error(c, st == GE_ERR_NOMEM || st == GE_ERR_IO ? 503 : 400, "%s", ge_errmsg());
    }
    srv_new_id(im->id);
    im->bytes = sizeof *im + (size_t)s->R * s->R * (im->alpha ? 4 : 3) * sizeof(float);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(im->id));
    json_object_object_add(o, "width", json_object_new_int(im->width));
    json_object_object_add(o, "height", json_object_new_int(im->height));
    json_object_object_add(o, "alpha", json_object_new_boolean(im->alpha != NULL));
    json_object_object_add(o, "resolution", json_object_new_int(s->R));
    pthread_mutex_lock(&s->mu);
    srv_image_add(s, im);
    pthread_mutex_unlock(&s->mu);
    return send_json(c, 201, o);
}

static enum MHD_Result api_image_get(struct MHD_Connection *c, srv_t *s, const char *rest) {
    char id[SRV_ID_LEN + 1];
    if (!split_id(rest, ".png", id) || !srv_id_ok(id)) return send_error(c, 404, "no such image");
    size_t RR = (size_t)s->R * s->R;
    pthread_mutex_lock(&s->mu);
    srv_image *im = srv_image_find(s, id);
    float *copy = NULL;
    int ch = 3;
    if (im) {
        ch = im->alpha ? 4 : 3;
        if ((copy = ge_alloc_floats(ch * RR))) {
            memcpy(copy, im->rgb, 3 * RR * sizeof(float));
            if (im->alpha) memcpy(copy + 3 * RR, im->alpha, RR * sizeof(float));
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!im) return send_error(c, 404, "no such image (uploads are kept for a while only)");
    if (!copy) return send_error(c, 503, "out of memory");
    unsigned char *png;
    size_t len;
    ge_status st = srv_png_encode(&png, &len, copy, 1, ch, s->R, s->R);
    free(copy);
    if (st != GE_OK) return send_error(c, 503, "%s", ge_errmsg());
    return send_bytes(c, 200, "image/png", png, len, 1, 1);
}

static enum MHD_Result api_jobs_post(struct MHD_Connection *c, srv_t *s, req_ctx *rc) {
    if (rc->too_big)
        return send_error(c, 413, "request body larger than %zu bytes", s->lim.max_json);
    if (!rc->body.len) return send_error(c, 400, "empty body: send a JSON object");
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok) return send_error(c, 503, "out of memory");
    json_object *o = json_tokener_parse_ex(tok, (const char *)rc->body.data, (int)rc->body.len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int trailing = 0;
    for (size_t i = used; o && i < rc->body.len; i++)
        if (!isspace(rc->body.data[i])) trailing = 1;
    if (!o || jerr != json_tokener_success || trailing) {
        json_object_put(o);
        return send_error(c, 400, "malformed JSON%s%s", jerr != json_tokener_success ? ": " : "",
                          jerr != json_tokener_success ? json_tokener_error_desc(jerr)
                                                       : " (trailing data)");
    }
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return send_error(c, 400, "the body must be a JSON object");
    }
    req_err e = {"", 0};
    pthread_mutex_lock(&s->mu);
    srv_job *j = job_from_json(s, o, &e);
    json_object_put(o);
    if (!j) {
        pthread_mutex_unlock(&s->mu);
        return send_error(c, e.status ? e.status : 400, "%s", e.msg);
    }
    if (srv_job_submit(s, j)) {
        int stopping = s->shutdown, q = s->lim.max_queue;
        pthread_mutex_unlock(&s->mu);
        srv_job_free(j);
        if (stopping) return send_error(c, 503, "the server is stopping");
        retry_after = 1;
        return send_error(c, 429, "the queue is full (%d jobs waiting); try again shortly", q);
    }
    json_object *resp = job_json(s, j);
    pthread_mutex_unlock(&s->mu);
    return send_json(c, 202, resp);
}

static enum MHD_Result api_jobs(struct MHD_Connection *c, srv_t *s, const char *method,
                                const char *rest, req_ctx *rc) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
    if (!*rest) {
        if (post) return api_jobs_post(c, s, rc);
        return send_error(c, 405, "use POST to submit a job");
    }
    char id[SRV_ID_LEN + 1];
    const char *sub = "";
    size_t n = strlen(rest);
    if (n < SRV_ID_LEN) return send_error(c, 404, "no such job");
    memcpy(id, rest, SRV_ID_LEN);
    id[SRV_ID_LEN] = 0;
    sub = rest + SRV_ID_LEN;
    if (!srv_id_ok(id) || (*sub && *sub != '/')) return send_error(c, 404, "no such job");
    enum { J_STATUS, J_EVENTS, J_PREVIEW, J_CANCEL } what;
    if (!*sub && get)
        what = J_STATUS;
    else if (!*sub && del)
        what = J_CANCEL;
    else if (!strcmp(sub, "/cancel") && post)
        what = J_CANCEL;
    else if (!strcmp(sub, "/events") && get)
        what = J_EVENTS;
    else if (!strcmp(sub, "/preview.png") && get)
        what = J_PREVIEW;
    else if (!*sub || !strcmp(sub, "/cancel") || !strcmp(sub, "/events") ||
             !strcmp(sub, "/preview.png"))
        return send_error(c, 405, "method %s not allowed here", method);
    else
        return send_error(c, 404, "no such resource");
    pthread_mutex_lock(&s->mu);
    srv_job *j = srv_job_find(s, id);
    if (!j) {
        pthread_mutex_unlock(&s->mu);
        return send_error(c, 404, "no such job");
    }
    if (what == J_STATUS) {
        json_object *o = job_json(s, j);
        pthread_mutex_unlock(&s->mu);
        return send_json(c, 200, o);
    }
    if (what == J_CANCEL) {
        int r = srv_job_cancel(s, j);
        json_object *o = job_json(s, j);
        pthread_mutex_unlock(&s->mu);
        if (r) {
            json_object_put(o);
            return send_error(c, 409, "the job has already finished");
        }
        return send_json(c, 200, o);
    }
    if (what == J_PREVIEW) {
        unsigned char *png = NULL;
        size_t len = j->preview_len;
        if (j->preview && (png = malloc(len))) memcpy(png, j->preview, len);
        int had = j->preview != NULL;
        pthread_mutex_unlock(&s->mu);
        if (!had) return send_error(c, 404, "no preview yet");
        if (!png) return send_error(c, 503, "out of memory");
        return send_bytes(c, 200, "image/png", png, len, 1, 1);
    }
    srv_job_ref(j); /* for the stream */
    pthread_mutex_unlock(&s->mu);
    return send_events(c, s, j);
}

/* "127.0.0.1", "localhost", "[::1]" (optionally with ":port"). */
static int loopback_host(const char *h) {
    char host[256];
    snprintf(host, sizeof host, "%s", h);
    char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
    if (colon) {
        if (host[0] == '[') colon++;
        for (const char *p = colon + 1; *p; p++)
            if (!isdigit((unsigned char)*p)) return 0;
        *colon = 0;
    }
    if (!strcasecmp(host, "localhost") || !strcmp(host, "[::1]")) return 1;
    int a, b, cc, d;
    char extra;
    return sscanf(host, "%d.%d.%d.%d%c", &a, &b, &cc, &d, &extra) == 4 && a == 127 && b >= 0 &&
           b < 256 && cc >= 0 && cc < 256 && d >= 0 && d < 256;
}

static enum MHD_Result route(struct MHD_Connection *c, srv_t *s, const char *url,
                             const char *method, req_ctx *rc) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (s->loopback && host && !loopback_host(host))
        return send_error(c, 403, "this server answers only to localhost names");
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin && (!host || strncmp(origin, "http://", 7) || strcmp(origin + 7, host)))
        return send_error(c, 403, "cross-origin requests are not allowed");
    if (strncmp(url, "/api/", 5) != 0) {
        if (!get) return send_error(c, 405, "method %s not allowed here", method);
        const char *name = !strcmp(url, "/") ? "index.html" : url[0] == '/' ? url + 1 : "";
        const srv_file *f = file_find(s->files, s->n_files, name);
        if (!f) return send_error(c, 404, "not found");
        struct MHD_Response *r =
            MHD_create_response_from_buffer(f->len, f->data, MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Type", f->mime);
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data: blob:; "
                                "style-src 'self'; script-src 'self'; connect-src 'self'; "
                                "frame-ancestors 'none'");
        common_headers(r, 0);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    const char *api = url + 5;
    if (!strcmp(api, "info")) {
        if (!get) return send_error(c, 405, "method %s not allowed here", method);
        pthread_mutex_lock(&s->mu);
        json_object *o = info_json(s);
        pthread_mutex_unlock(&s->mu);
        return send_json(c, 200, o);
    }
    if (!strcmp(api, "images")) {
        if (strcmp(method, "POST")) return send_error(c, 405, "use POST to upload an image");
        return api_upload(c, s, rc);
    }
    if (!strncmp(api, "images/", 7)) {
        if (!get) return send_error(c, 405, "method %s not allowed here", method);
        return api_image_get(c, s, api + 7);
    }
    if (!strcmp(api, "jobs") || !strncmp(api, "jobs/", 5))
        return api_jobs(c, s, method, api[4] ? api + 5 : "", rc);
    if (!strncmp(api, "results/", 8)) {
        if (!get) return send_error(c, 405, "method %s not allowed here", method);
        return api_results(c, s, api + 8);
    }
    if (!strcmp(api, "examples") || !strncmp(api, "examples/", 9)) {
        if (!get) return send_error(c, 405, "method %s not allowed here", method);
        if (!api[8]) {
            json_object *a = json_object_new_array();
            for (int i = 0; i < s->n_examples; i++)
                json_object_array_add(a, json_object_new_string(s->examples[i].name));
            return send_json(c, 200, a);
        }
        const srv_file *f = file_find(s->examples, s->n_examples, api + 9);
        if (!f) return send_error(c, 404, "no such example");
        struct MHD_Response *r =
            MHD_create_response_from_buffer(f->len, f->data, MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Type", f->mime);
        common_headers(r, 0);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    return send_error(c, 404, "no such API endpoint");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    srv_t *s = cls;
    req_ctx *rc = *con_cls;
    if (!rc) {
        if (!(rc = calloc(1, sizeof *rc))) return MHD_NO;
        *con_cls = rc;
        rc->upload = !strcmp(url, "/api/images");
        size_t cap = rc->upload ? s->lim.max_upload : s->lim.max_json;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno || *end || v > cap) {
                rc->answered = 1;
                return send_error(c, 413, "request body larger than %zu bytes", cap);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        /* a body without Content-Length (chunked) is counted as it comes; past
           the cap it is read and dropped so the client still gets its 413, and
           past four times the cap the connection is simply closed */
        size_t cap = rc->upload ? s->lim.max_upload : s->lim.max_json;
        rc->received += *upload_size;
        if (rc->received > 4 * cap) return MHD_NO;
        if (!rc->too_big && !rc->answered) {
            if (rc->body.len + *upload_size > cap ||
                srv_buf_put(&rc->body, upload_data, *upload_size)) {
                rc->too_big = 1;
                srv_buf_free(&rc->body);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (rc->answered) return MHD_YES;
    rc->answered = 1;
    return route(c, s, url, method, rc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    req_ctx *rc = *con_cls;
    if (!rc) return;
    srv_buf_free(&rc->body);
    free(rc);
    *con_cls = NULL;
}

struct MHD_Daemon *srv_http_start(srv_t *s, int fd) {
    return MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request,
        s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->lim.max_conns,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_STRICT_FOR_CLIENT, 1, /* e.g. HTTP/1.1 needs a Host */
        MHD_OPTION_END);
}
