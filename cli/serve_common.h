/* serve_common.h - the parts of `ganedit serve` and how they meet.
 *
 *   cmd_serve.c   options, the listening socket, signals, start and stop
 *   serve_http.c  libmicrohttpd handlers: routing, static files, uploads,
 *                 the JSON API, server-sent events
 *   serve_jobs.c  the stores (uploaded images, results), the job table, the
 *                 bounded queue and the one worker thread that owns the model
 *   serve_img.c   bytes in and out: upload sniffing and decoding, PNG and
 *                 .npy encoding in memory, base64
 *
 * One mutex (srv->mu) guards every shared structure; the worker holds it only
 * to take a job and to publish progress, never while computing. Objects that
 * outlive a request (jobs, watched by event streams) are reference counted.
 * Everything is bounded: upload bytes, image sides, steps, frames, queue
 * length, jobs kept, bytes of stored images and results, connections. */
#ifndef GE_SERVE_COMMON_H
#define GE_SERVE_COMMON_H

#include "core/core.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_ID_LEN 32 /* ids are 128 random bits in hex */

typedef struct {
    size_t max_upload;  /* bytes of one uploaded image */
    size_t max_json;    /* bytes of one JSON request body */
    int max_side;       /* pixels per side of an uploaded image */
    int max_steps;      /* optimisation steps of one job */
    int max_frames;     /* frames of one interpolation */
    int max_queue;      /* jobs waiting (the running one not counted) */
    int max_jobs;       /* jobs remembered, finished ones dropped oldest first */
    size_t store_bytes; /* uploaded images + results kept, oldest dropped first */
    int max_conns;      /* simultaneous HTTP connections */
} srv_limits;

void srv_limits_defaults(srv_limits *l);

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED } srv_job_state;
typedef enum { KIND_SAMPLE, KIND_PROJECT, KIND_DRAW, KIND_EDIT, KIND_INTERPOLATE } srv_job_kind;

const char *srv_state_name(srv_job_state s);
const char *srv_kind_name(srv_job_kind k);

/* An uploaded image, already cropped to a centred square and resized to R. */
typedef struct {
    char id[SRV_ID_LEN + 1];
    float *rgb;        /* (3, R, R) in [-1, 1] */
    float *alpha;      /* (R, R) in [0, 1], or NULL if the file had none */
    int width, height; /* of the file as uploaded */
    size_t bytes;
    uint64_t order;
} srv_image;

/* A finished job's output: n images and their latents (n = frames for an
 * interpolation, 1 otherwise). */
typedef struct {
    char id[SRV_ID_LEN + 1]; /* the id of the job that made it */
    srv_job_kind kind;
    int n, steps_done;
    float *images;  /* (n, 3, R, R) */
    float *latents; /* (n, L) */
    double loss;    /* final total loss (0 for sample and interpolate) */
    size_t bytes;
    uint64_t order;
} srv_result;

typedef struct srv_job {
    char id[SRV_ID_LEN + 1];
    srv_job_kind kind;
    srv_job_state state;
    int refs; /* table + queue + event streams; freed at 0 */
    /* parameters, checked when submitted */
    int steps, frames, init; /* init: GE_INIT_MEAN / RANDOM / GIVEN */
    float lr, keep, reg;
    uint64_t seed;
    /* inputs, copies owned by the job (stores may drop theirs meanwhile) */
    float *target;  /* (3, R, R) */
    float *mask;    /* (R, R) pixel weights, or NULL */
    float *latent;  /* (L) start latent, or the interpolation's first end */
    float *latent2; /* (L) the interpolation's second end */
    /* progress, published by the worker under srv->mu */
    int step;
    double terms[GE_N_TERMS];
    double seconds;
    unsigned seq;           /* bumped on every published change */
    unsigned char *preview; /* PNG of the latest image, or NULL */
    size_t preview_len;
    int preview_step;
    unsigned preview_seq;
    char error[256];
    volatile int stop; /* set by cancel or shutdown; read by the engine */
    uint64_t order;
    struct srv_job *next; /* queue link */
} srv_job;

typedef struct {
    char name[64];
    const char *mime;
    unsigned char *data;
    size_t len;
} srv_file;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work;       /* the worker waits here for jobs */
    pthread_cond_t changed;    /* event streams wait here for progress */
    pthread_mutex_t decode_mu; /* one upload decodes at a time: bounds its memory */
    int shutdown;
    srv_limits lim;
    /* the model, touched only by the worker after start-up */
    ge_generator *g;
    ge_vgg *vgg;
    int R;
    ge_latent_space space;
    size_t L;
    char model_path[4096];
    /* stores */
    srv_image **images;
    int n_images, cap_images;
    srv_result **results;
    int n_results, cap_results;
    size_t store_used;
    /* jobs: the table (every known job) and the queue (waiting ones, FIFO) */
    srv_job **jobs;
    int n_jobs, cap_jobs;
    srv_job *q_head, *q_tail;
    int q_len;
    srv_job *running;
    uint64_t counter;
    long jobs_done, jobs_failed, jobs_cancelled;
    pthread_t worker;
    int worker_started;
    /* static files and examples, read once at start */
    srv_file *files;
    int n_files;
    srv_file *examples;
    int n_examples;
    char tmpdir[512]; /* private folder for decoding uploads */
    int loopback;     /* bound to a loopback address: check Host and Origin */
    int port;
} srv_t;

/* ---- serve_jobs.c ---- */

/* Fills srv (already holding the model) and starts the worker. */
int srv_start(srv_t *s);
/* Marks the server as stopping: the running job is told to stop, waiting
 * event streams wake up and end, new jobs are refused. */
void srv_request_stop(srv_t *s);
/* Then (once the HTTP side has stopped) joins the worker and frees everything. */
void srv_stop(srv_t *s);

/* Random hex id. */
void srv_new_id(char id[SRV_ID_LEN + 1]);
/* 1 if s is exactly SRV_ID_LEN lowercase hex digits. */
int srv_id_ok(const char *s);

/* The following expect srv->mu held. */
srv_image *srv_image_find(srv_t *s, const char *id);
srv_result *srv_result_find(srv_t *s, const char *id);
srv_job *srv_job_find(srv_t *s, const char *id);
/* Takes ownership of im; drops the oldest entries beyond the byte budget. */
void srv_image_add(srv_t *s, srv_image *im);
/* Queues j (takes ownership): 0, or -1 if the queue is full (j is not freed). */
int srv_job_submit(srv_t *s, srv_job *j);
/* Cancels a queued or running job: 0, or -1 if it had already finished. */
int srv_job_cancel(srv_t *s, srv_job *j);
/* Position in the queue (1 = next), 0 if not queued. */
int srv_job_position(srv_t *s, const srv_job *j);
void srv_job_ref(srv_job *j);
/* Drops a reference; frees at zero. Takes srv->mu itself if lock is set. */
void srv_job_unref(srv_t *s, srv_job *j, int lock);
srv_job *srv_job_new(void);
void srv_job_free(srv_job *j);
void srv_image_free(srv_image *im);

/* ---- serve_img.c ---- */

typedef struct {
    unsigned char *data;
    size_t len, cap;
} srv_buf;

int srv_buf_put(srv_buf *b, const void *data, size_t n);
int srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_free(srv_buf *b);

/* Looks at the first bytes of an upload: 1 PNG, 2 JPEG, 0 neither. Reads the
 * declared width and height from the header without decoding (0 if the
 * header is too short or malformed). */
int srv_sniff_image(const unsigned char *data, size_t len, int *w, int *h);
/* Decodes an upload (through a file in tmpdir, read by ge_image_read) into a
 * (3, R, R) square and its alpha (or NULL); grey becomes RGB, the centred
 * square is kept, and resizing uses premultiplied alpha so transparent
 * pixels do not bleed their colour. A ge_status with the message set. */
ge_status srv_decode_image(const char *tmpdir, const unsigned char *data, size_t len, int R,
                           float **rgb, float **alpha, int *w, int *h);
/* PNG bytes of n images (n, c, R, R) in a row (c = 3 or 4), in [-1, 1]. */
ge_status srv_png_encode(unsigned char **out, size_t *len, const float *img, int n, int c, int h,
                         int w);
/* .npy bytes (float32, little-endian, C order) of data with the given shape. */
int srv_npy_encode(srv_buf *b, const float *data, int ndim, const int64_t *shape);
/* Appends base64 of data. */
int srv_base64(srv_buf *b, const unsigned char *data, size_t len);

/* ---- serve_http.c ---- */

/* Starts libmicrohttpd on the listening socket fd. NULL on failure. */
struct MHD_Daemon *srv_http_start(srv_t *s, int fd);
/* Reads the static page files from dir (flat, only ordinary, safely named
 * files of known types). 0, or -1 with a message printed. */
int srv_load_files(srv_file **out, int *n, const char *dir, int examples);
void srv_files_free(srv_file *f, int n);

#endif /* GE_SERVE_COMMON_H */
