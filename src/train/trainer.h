/* trainer.h - the state of one training run, shared by the files of
 * src/train that make it up: train.c (set-up, checkpoints, the run, FD-VGG)
 * and step.c (one optimisation step of each architecture). Private to them. */
#ifndef GE_TRAINER_H
#define GE_TRAINER_H

#include "train/train.h"

#include <stdio.h>

typedef struct {
    ge_train_params p;     /* effective settings (a resumed checkpoint's win) */
    char arch[32], augment[64];
    char init_from[512];   /* init_from as "FILE (arch, RxR, K kimg)"; resumes keep it */
    int init_copied, init_fresh;
    int deluxe, sg2, policy, R, B;
    size_t per;            /* floats per image */
    ge_dataset data;
    /* G and G_ema own their weight sets; the pointers are kept for names */
    ge_generator *G, *Gema;
    ge_tensors *gw, *gew, *ggrad;
    float *g, *gema, *gg;  /* flat views (ng) */
    size_t ng;
    ge_disc *D;
    ge_tensors *dw, *dgrad;
    float *d, *dg;         /* (nd) */
    size_t nd;
    ge_adam opt_g, opt_d;
    ge_rng rng;
    long step;
    long long images;
    ge_diffaug aug_d, aug_g;   /* DCGAN: (2B) reals and fakes; both: (B) G step */
    ge_diffaug aug_r, aug_f;   /* StyleGAN2: (B) reals, (B) fakes of the D step */
    float *xr, *r1v, *r1x;     /* StyleGAN2: (B, 3, R, R) unaugmented reals, R1 direction, probe */
    float *ws;                 /* StyleGAN2: (B, num_ws, w_dim) for the w_avg update */
    float *w_avg, *w_avg_ema;  /* StyleGAN2: mapping.w_avg in G and G_ema (NULL: none) */
    int num_ws, w_dim;
    float r1_gamma;            /* effective R1 weight */
    double last_r1;            /* mean |grad|^2 at the last R1 step */
    float *x;              /* (2B, 3, R, R): reals then fakes */
    float *dimg;           /* (B, 3, R, R) */
    float *z;              /* (B, z_dim) */
    float *logits, *dlogits; /* (2B) */
    float *zs;             /* (n_samples, z_dim) fixed sample latents */
    int n_samples;
    int *perm;             /* (data.n) permutation of epoch perm_epoch */
    long long perm_epoch;
    ge_vgg *vgg;
    double *real_mu, *real_cov; /* FD statistics of the data, once */
    int fd_dim;
    FILE *loss_csv, *fd_csv;
    ge_zdist zdist;
    int z_dim;
    double seconds_before; /* training time of the runs before a resume */
    int seconds_unknown;   /* resumed from a checkpoint that did not record it */
    double t0;             /* when this run's steps began (now_s) */
} trainer;

/* One step (step.c): D update, G update, EMA; terms (GE_TT_N) get the
 * losses. The DCGAN and the StyleGAN2 steps are described there. */
ge_status ge_trainer_step(trainer *T, double *terms);

#endif /* GE_TRAINER_H */
