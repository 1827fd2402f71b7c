/* cli.h - the ganedit command line: one file per subcommand, a table-driven
 * option parser shared by all of them (so --help text and error messages
 * look the same everywhere), and small helpers for messages.
 * Exit statuses: 0 success, 1 the work failed, 2 the command line was wrong. */
#ifndef GE_CLI_H
#define GE_CLI_H

#include "ganedit.h"

typedef enum { OPT_STR, OPT_INT, OPT_FLOAT, OPT_FLAG } cli_opt_type;

typedef struct {
    const char *name;    /* without the leading "--" */
    cli_opt_type type;
    void *dst;           /* const char **, int *, float *, int * (flag) */
    const char *metavar; /* shown in help, e.g. "N" */
    const char *help;
} cli_opt;

typedef struct {
    const char *name;    /* subcommand */
    const char *summary; /* one line */
    const char *usage;   /* positional part, e.g. "A.png B.png" */
    const cli_opt *opts;
    int n_opts;
    int min_pos, max_pos; /* positional arguments allowed */
} cli_command;

/* Parses argv (after the subcommand name). Returns 0 on success, 1 if help was
 * printed (exit 0), 2 on a usage error (message already printed). pos gets the
 * positional arguments. */
int cli_parse(const cli_command *cmd, int argc, char **argv, const char **pos, int *n_pos);
void cli_help(const cli_command *cmd);

/* Prints "ganedit <cmd>: <message>" to stderr and returns 1 (or 2 for usage). */
int cli_fail(const char *cmd, ge_status s);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The shipped generator used when --model is not given (cli/defaults.c), in
 * buf; NULL if none is found. */
const char *cli_default_model(char *buf, size_t cap);

/* Parses "z", "w" or "w+"; -1 if none. */
int cli_latent_space(const char *s);
/* Parses "const", "random" or "none"; -1 if none. */
int cli_noise_mode(const char *s);

int cmd_info(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_distance(int argc, char **argv);
int cmd_train(int argc, char **argv);

#endif /* GE_CLI_H */

/* ---- shared by the editing commands (cli/edit_common.c) ---------------- */

#include <stdio.h>

typedef struct {
    const char *model, *vgg, *latent, *optimizer, *layers, *style_layers, *init, *noise, *out;
    int steps, init_samples, restarts, seed, save_every, l1, quiet;
    float lr, pixel, perceptual, style, reg;
    int need_vgg; /* load the VGG even if perceptual and style are 0 (edit's projection) */
} edit_opts;

/* Defaults of the spec for `project` (Adam, lr 0.003, 1000 steps, pixel 0.3,
 * perceptual 0.7 on conv1_1..conv3_1, mean-of-10 start). */
void edit_opts_defaults(edit_opts *o);
/* Appends the shared options to opts[*n]; returns the new count. */
int edit_opts_table(edit_opts *o, cli_opt *opts, int n);

/* Everything a run needs, loaded and checked. */
typedef struct {
    const char *cmd;
    ge_generator *g;
    ge_vgg *vgg;
    ge_edit_params p;
    float *init_latent; /* from --init FILE.npy */
    int R;
    int quiet;          /* --quiet: no progress line */
} edit_setup;

/* Loads the model (and the VGG if a perceptual/style weight is set), checks
 * options, and fills s->p. Returns 0, or the exit status after printing. */
int edit_setup_load(edit_setup *s, const char *cmd, const edit_opts *o);
void edit_setup_free(edit_setup *s);

/* Reads an image as (3, R, R) RGB in [-1, 1] (centre-cropped and resized with
 * a note if needed); alpha (if any) as (R, R) in [0, 1] into *alpha. */
int edit_load_image(const char *cmd, const char *path, int R, float **rgb, float **alpha);
/* Reads a scribble (3, R, R) and its mask (R, R) in [0, 1]: the scribble's
 * alpha, or mask_path (white and opaque = constrained) when not NULL. Refuses
 * a scribble without alpha and no mask, and a mask whose size differs from
 * the scribble's (exit status 2). */
int edit_load_scribble(const char *cmd, const char *scribble, const char *mask_path, int R,
                       float **rgb, float **mask);
/* ge_edit_check for params p (NULL: s->p); 0, or the exit status after printing. */
int edit_check(const edit_setup *s, const ge_edit_params *p, const float *target, const float *mask);
/* Reads a latent .npy in space sp for g into *lat (latent_size floats). */
int edit_load_latent(const char *cmd, const char *path, const ge_generator *g, ge_latent_space sp,
                     float **lat);

/* Installs SIGINT/SIGTERM handlers that set the stop flag used by runs (to
 * the signal's number). */
volatile int *edit_stop_flag(void);
/* 128 + the number of the signal that stopped a run (130 for Ctrl-C), or 0. */
int edit_stop_status(void);
/* Runs ge_edit_run with a progress line on stderr; returns 0 or an exit status. */
int edit_run(edit_setup *s, const float *target, const float *mask, const char *what,
             ge_edit_result *r);

/* Before any work: the output folder exists and is writable, or can be
 * created (its parent is a writable folder). 0 or the exit status. */
int edit_check_out(const char *cmd, const char *dir);
/* Output folder: created if missing (only once there is something to write). */
int edit_make_dir(const char *cmd, const char *dir);
/* Writes latent.npy-style file for one latent of space sp. */
int edit_save_latent(const char *cmd, const char *path, const ge_generator *g, ge_latent_space sp,
                     const float *lat, int n);
/* Creates dir, then writes result.png, target.png (RGBA with the mask if
 * given), start.png, latent.npy, loss.csv, snapshots and report.html into it.
 * argv is the command line for the report. */
int edit_write_outputs(const edit_setup *s, const char *dir, const float *target,
                       const float *mask, const ge_edit_result *r, int argc, char **argv,
                       const char *title);
/* Writes len bytes of text to path atomically (temporary name, fsync,
 * rename); 0, or 1 after printing why. */
int edit_write_text(const char *cmd, const char *path, const char *text, size_t len);
/* Writes s to f with <, >, & and " escaped for HTML. */
void edit_html_escape(FILE *f, const char *s);
/* Path join into a static buffer slot. */
const char *edit_path(const char *dir, const char *name);

int cmd_project(int argc, char **argv);
/* cli/project_batch.c: project --targets DIR|LIST (batches, manifest, MPI). */
int project_batch(const edit_opts *o, const char *targets, int batch, int argc, char **argv);
/* The seed of the image whose result folder is `folder`, from --seed. */
uint64_t ge_batch_image_seed(uint64_t seed, const char *folder);
int cmd_draw(int argc, char **argv);
int cmd_edit(int argc, char **argv);
int cmd_interpolate(int argc, char **argv);
/* cli/cmd_serve.c: the local web editor */
int cmd_serve(int argc, char **argv);
