/* dataset.c - a folder of training images, held in memory as one float
 * array (n, 3, R, R) in [-1, 1].
 *
 * The folder is read once, in sorted name order (so a seed means the same
 * thing on every machine), through ge_image_read: PNG and JPEG, alpha
 * dropped, gray replicated, the largest centred square kept and resized with
 * ge_image_resize. Even 7,000 64x64 images are only 344 MB as floats, and the
 * training loop then never touches the disk. */
#include "train/train.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    char ext[8];
    size_t i = 0;
    for (const char *p = dot + 1; *p && i < sizeof ext - 1; p++) ext[i++] = (char)tolower(*p);
    ext[i] = 0;
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ge_dataset_free(ge_dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) free(d->names[i]);
    free(d->names);
    free(d->img);
    memset(d, 0, sizeof *d);
}

/* One image file as (3, res, res). */
static ge_status load_one(float *dst, const char *path, int res) {
    float *x = NULL, *sq = NULL, *rs = NULL;
    int c, h, w;
    ge_status s = ge_image_read(path, &x, &c, &h, &w);
    if (s != GE_OK) return s;
    size_t hw = (size_t)h * w;
    /* to 3 planes: drop alpha, replicate gray */
    if (c == 1) {
        float *y = ge_alloc_floats(3 * hw);
        if (!y) {
            free(x);
            return GE_ERR_NOMEM;
        }
        for (int k = 0; k < 3; k++) memcpy(y + k * hw, x, hw * sizeof(float));
        free(x);
        x = y;
    }
    int side = h < w ? h : w;
    const float *cur = x;
    if (h != w) {
        if ((s = ge_image_center_crop(&sq, x, 3, h, w, &side)) != GE_OK) goto done;
        cur = sq;
    }
    if (side != res) {
        if ((s = ge_image_resize(&rs, cur, 3, side, side, res, res)) != GE_OK) goto done;
        cur = rs;
    }
    memcpy(dst, cur, (size_t)3 * res * res * sizeof(float));
done:
    free(x);
    free(sq);
    free(rs);
    return s;
}

ge_status ge_dataset_load(ge_dataset *d, const char *dir, int res, int max_images) {
    memset(d, 0, sizeof *d);
    if (res < 4 || res > 4096) return ge_fail(GE_ERR_ARG, "resolution %d outside 4..4096", res);
    DIR *dp = opendir(dir);
    if (!dp) return ge_fail(GE_ERR_IO, "%s: cannot open the image folder", dir);
    int cap = 0, n = 0;
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.' || !has_image_ext(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (!names[n]) break;
        n++;
    }
    closedir(dp);
    d->names = names;
    d->n = n;
    if (e) { /* the loop broke early: out of memory */
        ge_dataset_free(d);
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory listing the folder", dir);
    }
    if (n == 0) {
        ge_dataset_free(d);
        return ge_fail(GE_ERR_IO, "%s: no .png/.jpg/.jpeg images in the folder", dir);
    }
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    if (max_images > 0 && n > max_images) {
        for (int i = max_images; i < n; i++) free(names[i]);
        d->n = n = max_images;
    }
    d->res = res;
    size_t per = (size_t)3 * res * res;
    d->img = ge_alloc_floats(per * (size_t)n);
    if (!d->img) {
        ge_dataset_free(d);
        return ge_fail(GE_ERR_NOMEM, "%s: out of memory for %d images of %dx%d", dir, n, res, res);
    }
    char path[8192];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        ge_status s = load_one(d->img + per * i, path, res);
        if (s != GE_OK) {
            ge_dataset_free(d);
            return s;
        }
    }
    return GE_OK;
}
