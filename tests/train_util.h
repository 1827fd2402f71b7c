/* train_util.h - toy data shared by the training tests (defined in
 * test_train.c). */
#ifndef GE_TEST_TRAIN_UTIL_H
#define GE_TEST_TRAIN_UTIL_H

#include "train/train.h"

/* A new temporary folder of n toy 16x16 PNGs: a red square on a blue
 * background at a few positions (NULL on failure). */
const char *toy_folder(int n);
/* Mean colour error of the generator's images (16 draws of an 8-dim z) against
 * the toy set's two colours (NAN if it cannot be loaded or run). */
double palette_error(const char *genpath);

/* Settings of a tiny DCGAN run on `data` for `steps` steps of batch 4 at
 * 16x16, z 8, seed 42, no grids or intermediate checkpoints. */
void tiny_params(ge_train_params *p, const char *data, const char *out, int steps);

/* DIR/checkpoint.safetensors loaded, or NULL (ge_errmsg says why). */
ge_tensors *load_ckpt(const char *dir);
/* ge_train_run without the result. */
ge_status train_only(const ge_train_params *p);
/* Trains p for one step into a new temporary folder (the starting point),
 * then for `steps` steps into another, whose result r gets (free it, also
 * on failure); *e0 and *e1 get palette_error of G_ema at the two points.
 * Changes p->out and p->kimg. */
ge_status learn_run(ge_train_params *p, int steps, ge_train_result *r, double *e0, double *e1);

/* FD-VGG (16 vs 16 images, seed 5) of g and of g0 (the same network
 * untrained) against the first 16 images of the shared folder `data`
 * (relative to ../shared) at resolution res. */
ge_status fd_trained_untrained(ge_generator *g, ge_generator *g0, const char *data, int res,
                               double *fd, double *fd0);

typedef void (*train_setup_fn)(ge_train_params *p, const char *data, const char *out, int steps);
/* Trains 6 steps in one go into folder a, and 3 steps, then a resume for 3
 * more, into b (tweak changes settings before the resume, which the
 * checkpoint must override). 1: the same losses bit for bit and the right
 * step counts; 0: not; -1: a run failed (ge_errmsg says why). */
int resume_same_losses(train_setup_fn setup, void (*tweak)(ge_train_params *), const char *data,
                       const char *a, const char *b);

#endif
