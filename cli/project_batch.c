/* project_batch.c - `ganedit project --targets DIR|LIST.txt`: project many
 * photos, several per batch (ge_edit_run_many), one result folder per image
 * (the files of a single project run) and a manifest.csv of every image's
 * outcome. Built around three decisions:
 *
 * - Restartable: the manifest is rewritten atomically after every batch, and
 *   an image counts as done only if its row says ok and its folder holds
 *   latent.npy and result.png; anything else (failed, stopped, interrupted
 *   mid-write, never reached) is redone by running the same command again.
 * - Independent of batching: each image's seed comes from --seed and its
 *   folder name (not its position), so its result is the same whichever
 *   images share its batch, whichever rank runs it, and after a re-run.
 * - MPI only when launched by mpirun (OMPI_COMM_WORLD_SIZE or PMIX_RANK in
 *   the environment); a plain run never calls into MPI. The images still to
 *   do are split statically, round robin over ranks: every image costs the
 *   same (same steps, same resolution), so the split is even to one batch,
 *   needs no messages while working, and a killed rank loses only its own
 *   unfinished batch. Each rank writes its rows to manifest.rank<R>.csv;
 *   rank 0 merges them into manifest.csv at the end (and any run merges
 *   parts left behind by a killed run when it starts). */
#include "cli.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef GE_HAVE_MPI
#include <mpi.h>
#endif

/* ---- the parallel layer: MPI when launched by mpirun, else one process -- */

static int par_mpi;

static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK");
}

/* 0, or an exit status after printing why. */
static int par_init(int *rank, int *size) {
    *rank = 0;
    *size = 1;
    if (!launched_by_mpirun()) return 0;
#ifdef GE_HAVE_MPI
    int argc = 0;
    char **argv = NULL;
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "ganedit project: MPI_Init failed\n");
        return 1;
    }
    par_mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return 0;
#else
    fprintf(stderr, "ganedit project: launched by mpirun, but this ganedit was built without "
                    "MPI (install libopenmpi-dev and rebuild)\n");
    return 1;
#endif
}

static void par_barrier(void) {
#ifdef GE_HAVE_MPI
    if (par_mpi) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

/* Rank 0's v, on every rank. */
static int par_bcast(int v) {
#ifdef GE_HAVE_MPI
    if (par_mpi) MPI_Bcast(&v, 1, MPI_INT, 0, MPI_COMM_WORLD);
#endif
    return v;
}

static void par_finalize(void) {
#ifdef GE_HAVE_MPI
    if (par_mpi) MPI_Finalize();
    par_mpi = 0;
#endif
}

/* ---- the image list ------------------------------------------------------ */

typedef struct {
    char *path;   /* as given / DIR/name */
    char *folder; /* result folder name: the file name without its extension */
    uint64_t seed;
} item;

static int is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    return dot &&
           (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t ge_batch_image_seed(uint64_t seed, const char *folder) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the name */
    for (const unsigned char *c = (const unsigned char *)folder; *c; c++)
        h = (h ^ *c) * 0x100000001b3ull;
    return mix64(seed ^ mix64(h));
}

/* Reads the paths: the PNG/JPEG files of a folder, sorted by name, or the
 * lines of a list file (blank lines and # comments skipped). */
static int read_list(const char *targets, char ***paths, int *n) {
    struct stat st;
    *paths = NULL;
    *n = 0;
    if (stat(targets, &st) != 0) {
        fprintf(stderr, "ganedit project: %s: %s\n", targets, strerror(errno));
        return 1;
    }
    int cap = 0;
    char **v = NULL;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(targets);
        if (!d) {
            fprintf(stderr, "ganedit project: %s: %s\n", targets, strerror(errno));
            return 1;
        }
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
            if (*n == cap) v = realloc(v, sizeof *v * (cap = cap ? 2 * cap : 64));
            size_t len = strlen(targets) + strlen(e->d_name) + 2;
            v[*n] = malloc(len);
            snprintf(v[(*n)++], len, "%s/%s", targets, e->d_name);
        }
        closedir(d);
        if (*n) qsort(v, (size_t)*n, sizeof *v, cmp_str);
    } else {
        FILE *f = fopen(targets, "r");
        if (!f) {
            fprintf(stderr, "ganedit project: %s: %s\n", targets, strerror(errno));
            return 1;
        }
        char line[4096];
        while (fgets(line, sizeof line, f)) {
            char *s = line, *e = line + strlen(line);
            while (*s && isspace((unsigned char)*s))
                s++;
            while (e > s && isspace((unsigned char)e[-1]))
                *--e = 0;
            if (!*s || *s == '#') continue;
            if (*n == cap) v = realloc(v, sizeof *v * (cap = cap ? 2 * cap : 64));
            v[(*n)++] = strdup(s);
        }
        fclose(f);
    }
    *paths = v;
    if (!*n) {
        fprintf(stderr, "ganedit project: %s: no PNG or JPEG images to project\n", targets);
        return 1;
    }
    return 0;
}

/* ---- the manifest ---------------------------------------------------------- */

#define MANIFEST_HEADER                                                                            \
    "image,folder,status,loss,pixel,perceptual,style,reg,psnr_db,seconds,rank,message\n"

typedef struct {
    char *folder;
    char *line; /* the whole CSV row, with its newline */
    int ok;
    int src; /* -1: manifest.csv, else the rank whose part file holds it */
} row;

typedef struct {
    row *r;
    int n, cap;
} table;

/* Field `col` (0-based) of a CSV line (quotes honoured) into buf. */
static void csv_field(const char *line, int col, char *buf, size_t cap) {
    size_t o = 0;
    int c = 0, q = 0;
    for (const char *p = line; *p && *p != '\n'; p++) {
        if (q) {
            if (*p == '"' && p[1] == '"')
                p++;
            else if (*p == '"') {
                q = 0;
                continue;
            }
        } else if (*p == '"') {
            q = 1;
            continue;
        } else if (*p == ',') {
            if (c++ == col) break;
            continue;
        }
        if (c == col && o + 1 < cap) buf[o++] = *p;
    }
    buf[o] = 0;
}

/* Adds or replaces the row of its folder; an ok row is never replaced by a
 * row that is not ok (it is the newer state: ok images are not redone). */
static void table_put(table *t, const char *line, int src) {
    char folder[1024], status[32];
    csv_field(line, 1, folder, sizeof folder);
    csv_field(line, 2, status, sizeof status);
    if (!*folder) return;
    int ok = !strcmp(status, "ok");
    int i;
    for (i = 0; i < t->n; i++)
        if (!strcmp(t->r[i].folder, folder)) break;
    if (i < t->n) {
        if (t->r[i].ok && !ok) return;
        free(t->r[i].line);
    } else {
        if (t->n == t->cap)
            t->r = realloc(t->r, sizeof *t->r * (t->cap = t->cap ? 2 * t->cap : 64));
        t->r[i].folder = strdup(folder);
        t->n++;
    }
    size_t len = strlen(line);
    t->r[i].line = malloc(len + 2);
    memcpy(t->r[i].line, line, len + 1);
    if (!len || line[len - 1] != '\n') strcat(t->r[i].line, "\n");
    t->r[i].ok = ok;
    t->r[i].src = src;
}

static void table_load(table *t, const char *path, int src) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[8192];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (first && !strncmp(line, "image,", 6)) {
            first = 0;
            continue;
        }
        first = 0;
        table_put(t, line, src);
    }
    fclose(f);
}

/* manifest.csv, then every manifest.rank<R>.csv a run left behind. */
static void table_load_all(table *t, const char *out) {
    table_load(t, edit_path(out, "manifest.csv"), -1);
    DIR *d = opendir(out);
    if (!d) return;
    int rk;
    char tail[8];
    for (struct dirent *e; (e = readdir(d));)
        if (sscanf(e->d_name, "manifest.rank%d.cs%1[v]%1s", &rk, tail, tail + 2) == 2 && rk >= 0)
            table_load(t, edit_path(out, e->d_name), rk);
    closedir(d);
}

static void table_free(table *t) {
    for (int i = 0; i < t->n; i++) {
        free(t->r[i].folder);
        free(t->r[i].line);
    }
    free(t->r);
    memset(t, 0, sizeof *t);
}

/* Writes the rows (src == only, or all with only < -1) in the order of the
 * image list, then any others, to path atomically. */
static int table_write(const table *t, const item *items, int n_items, const char *path, int only) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return 1;
    fputs(MANIFEST_HEADER, f);
    char *used = calloc((size_t)t->n + 1, 1);
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < (pass ? 1 : n_items); j++)
            for (int i = 0; i < t->n; i++) {
                if (used[i] || (only >= -1 && t->r[i].src != only)) continue;
                if (!pass && strcmp(t->r[i].folder, items[j].folder)) continue;
                fputs(t->r[i].line, f);
                used[i] = 1;
            }
    free(used);
    fclose(f);
    int r = edit_write_text("project", path, buf, len);
    free(buf);
    return r;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The folder holds the files that edit_write_outputs writes first and last
 * (result.png .. report.html). */
static int folder_complete(const char *out, const char *folder) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", out, folder);
    return file_exists(edit_path(dir, "result.png")) && file_exists(edit_path(dir, "latent.npy")) &&
           file_exists(edit_path(dir, "report.html"));
}

static void csv_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('"', f);
}

static void put_row(table *t, const item *it, const char *status, const ge_edit_result *r,
                    double psnr, double secs, const char *msg, int src, int rank) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return;
    csv_quoted(f, it->path);
    fputc(',', f);
    csv_quoted(f, it->folder);
    fprintf(f, ",%s", status);
    if (r) {
        const double *h = r->history + (size_t)r->best_step * GE_N_TERMS;
        fprintf(f, ",%.9g,%.9g,%.9g,%.9g,%.9g,%.4f", h[GE_TERM_TOTAL], h[GE_TERM_PIXEL],
                h[GE_TERM_PERCEPTUAL], h[GE_TERM_STYLE], h[GE_TERM_REG], psnr);
    } else {
        fputs(",,,,,,", f);
    }
    fprintf(f, ",%.3f,%d,", secs, rank);
    csv_quoted(f, msg ? msg : "");
    fputc('\n', f);
    fclose(f);
    table_put(t, buf, src);
    free(buf);
}

/* PSNR in dB of a against b, both (n) in [-1, 1] (peak-to-peak 2). */
static double psnr(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    s /= (double)n;
    return s > 0 ? 10.0 * log10(4.0 / s) : INFINITY;
}

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* ---- the run --------------------------------------------------------------- */

int project_batch(const edit_opts *o, const char *targets, int batch, int argc, char **argv) {
    const char *cmd = "project";
    if (batch < 1 || batch > 256) return cli_usage_error(cmd, "--batch must be 1..256");
    if (!o->out) return cli_usage_error(cmd, "--out is required");
    int rank, size, r = 0, synced = 0;
    if ((r = par_init(&rank, &size))) return r;
    char **paths = NULL;
    int n = 0;
    item *items = NULL;
    table t = {0};
    edit_setup s;
    memset(&s, 0, sizeof s);
    float *imgs = NULL;
    ge_edit_result *res = NULL;
    int *idx = NULL, *ld = NULL;
    uint64_t *seeds = NULL;
    if ((r = read_list(targets, &paths, &n))) goto done;
    items = calloc((size_t)n, sizeof *items);
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        items[i].path = paths[i];
        items[i].folder = strdup(base);
        char *dot = strrchr(items[i].folder, '.');
        if (dot && dot != items[i].folder) *dot = 0;
        if (!*items[i].folder || !strcmp(items[i].folder, ".") || !strcmp(items[i].folder, "..")) {
            r = cli_usage_error(cmd, "%s: no usable file name", paths[i]);
            goto done;
        }
        items[i].seed = ge_batch_image_seed((uint64_t)o->seed, items[i].folder);
        for (int j = 0; j < i; j++)
            if (!strcmp(items[j].folder, items[i].folder)) {
                r = cli_usage_error(cmd, "%s and %s would share the result folder %s", paths[j],
                                    paths[i], items[i].folder);
                goto done;
            }
    }
    if ((r = edit_setup_load(&s, cmd, o))) goto done;
    if (s.p.optimizer != GE_OPT_ADAM) batch = 1; /* L-BFGS couples a batch: one at a time */
    if ((r = edit_check(&s, NULL, NULL, NULL))) goto done;
    if ((r = edit_check_out(cmd, o->out)) || (rank == 0 && (r = edit_make_dir(cmd, o->out))))
        goto done;
    par_barrier(); /* the folder exists for everyone */
    table_load_all(&t, o->out);
    int n_todo = 0, n_mine = 0;
    idx = malloc(sizeof *idx * (size_t)n);
    for (int i = 0; i < n; i++) {
        int done_ok = 0;
        for (int j = 0; j < t.n; j++)
            if (t.r[j].ok && !strcmp(t.r[j].folder, items[i].folder))
                done_ok = folder_complete(o->out, items[i].folder);
        if (done_ok) continue;
        if (n_todo++ % size == rank) idx[n_mine++] = i;
    }
    /* everyone has read the manifest before anyone rewrites it */
    par_barrier();
    if (rank == 0)
        fprintf(stderr, "ganedit project: %d images, %d done before, %d to do on %d process%s\n", n,
                n - n_todo, n_todo, size, size > 1 ? "es" : "");
    char part[64];
    snprintf(part, sizeof part, "manifest.rank%d.csv", rank);
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s", edit_path(o->out, size > 1 ? part : "manifest.csv"));
    int R = s.R;
    size_t img1 = (size_t)3 * R * R;
    imgs = malloc(sizeof(float) * (size_t)batch * img1);
    res = calloc((size_t)batch, sizeof *res);
    ld = malloc(sizeof *ld * (size_t)batch);
    seeds = malloc(sizeof *seeds * (size_t)batch);
    if (!imgs || !res || !ld || !seeds || (!idx && n)) {
        fprintf(stderr, "ganedit project: out of memory\n");
        r = 1;
        goto done;
    }
    int src = size > 1 ? rank : -1, stopped = 0;
    for (int b0 = 0; b0 < n_mine && !stopped; b0 += batch) {
        int nb = n_mine - b0 < batch ? n_mine - b0 : batch, m = 0;
        double t0 = wall();
        for (int j = 0; j < nb; j++) {
            const item *it = &items[idx[b0 + j]];
            float *img = NULL;
            if (edit_load_image(cmd, it->path, R, &img, NULL)) {
                put_row(&t, it, "failed", NULL, 0, 0, "cannot read the image", src, rank);
                continue;
            }
            memcpy(imgs + m * img1, img, img1 * sizeof(float));
            free(img);
            seeds[m] = it->seed;
            ld[m++] = idx[b0 + j];
        }
        ge_status st = m ? ge_edit_run_many(s.g, s.vgg, m, imgs, NULL, seeds, &s.p, res) : GE_OK;
        double secs = (wall() - t0) / (m ? m : 1);
        if (st != GE_OK) {
            fprintf(stderr, "ganedit project: %s\n", ge_errmsg());
            for (int j = 0; j < m; j++)
                put_row(&t, &items[ld[j]], "failed", NULL, 0, secs, ge_errmsg(), src, rank);
        }
        for (int j = 0; j < m && st == GE_OK; j++) {
            const item *it = &items[ld[j]];
            const float *target = imgs + j * img1;
            if (res[j].stopped) {
                stopped = 1;
                put_row(&t, it, "stopped", NULL, 0, secs, "stopped by a signal", src, rank);
                continue;
            }
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", o->out, it->folder);
            if (edit_write_outputs(&s, dir, target, NULL, &res[j], argc, argv, it->path))
                put_row(&t, it, "failed", NULL, 0, secs, "cannot write the results", src, rank);
            else
                put_row(&t, it, "ok", &res[j], psnr(res[j].image, target, img1), secs, NULL, src,
                        rank);
        }
        for (int j = 0; j < m && st == GE_OK; j++)
            ge_edit_result_free(&res[j]);
        if (s.p.stop && *s.p.stop) stopped = 1;
        if (table_write(&t, items, n, mpath, size > 1 ? rank : -2)) {
            r = 1;
            goto done;
        }
        if (!s.quiet)
            fprintf(stderr, "ganedit project: rank %d: %d of %d images done (%.1f s per image)\n",
                    rank, b0 + nb, n_mine, secs);
    }
    /* the merge: every part (this run's and any a killed run left) into manifest.csv */
    par_barrier();
    int failed = 0;
    if (rank == 0) {
        table_free(&t);
        table_load_all(&t, o->out);
        for (int i = 0; i < n; i++) {
            int ok = 0;
            for (int j = 0; j < t.n; j++)
                if (!strcmp(t.r[j].folder, items[i].folder)) ok = t.r[j].ok;
            failed += !ok;
        }
        if (table_write(&t, items, n, edit_path(o->out, "manifest.csv"), -2) == 0) {
            DIR *d = opendir(o->out);
            int rk;
            char v[4];
            for (struct dirent *e; d && (e = readdir(d));)
                if (sscanf(e->d_name, "manifest.rank%d.cs%1[v]%1s", &rk, v, v + 2) == 2)
                    unlink(edit_path(o->out, e->d_name));
            if (d) closedir(d);
        } else {
            failed = -1;
        }
        if (failed > 0)
            fprintf(stderr,
                    "ganedit project: %d of %d images not done (see %s); run the "
                    "same command again to redo them\n",
                    failed, n, edit_path(o->out, "manifest.csv"));
        else if (!failed)
            fprintf(stderr, "ganedit project: all %d images done; wrote %s\n", n,
                    edit_path(o->out, "manifest.csv"));
    }
    failed = par_bcast(failed);
    synced = 1;
    if (stopped && edit_stop_status())
        r = edit_stop_status();
    else
        r = failed ? 1 : 0;
done:
    if (res)
        for (int j = 0; j < batch; j++)
            ge_edit_result_free(&res[j]);
    free(res);
    free(imgs);
    free(ld);
    free(idx);
    free(seeds);
    table_free(&t);
    for (int i = 0; i < n; i++) {
        free(paths[i]);
        if (items) free(items[i].folder);
    }
    free(paths);
    free(items);
    edit_setup_free(&s);
#ifdef GE_HAVE_MPI
    /* an error before the end leaves the other ranks waiting: end them all
       (whatever they finished is in their part files already) */
    if (par_mpi && !synced) MPI_Abort(MPI_COMM_WORLD, r ? r : 1);
#endif
    (void)synced;
    par_finalize();
    return r;
}
