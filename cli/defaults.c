/* defaults.c - where the program finds its shipped generator when --model is
 * not given: $GANEDIT_MODEL, then the models/ folder next to the build
 * (build/ganedit -> models/), then an installed share/ganedit/models, then
 * ./models. The shipped default is the 64x64 StyleGAN2 ganedit trained itself
 * on the Grumpy Cat faces (docs/training.md). */
#include "cli.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MODEL "stylegan2-grumpy64.safetensors"

const char *cli_default_model(char *buf, size_t cap) {
    const char *env = getenv("GANEDIT_MODEL");
    if (env && *env) {
        snprintf(buf, cap, "%s", env);
        return buf;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        const char *dir = dirname(exe);
        const char *rel[] = {"../models/", "../share/ganedit/models/"};
        for (int i = 0; i < 2; i++) {
            snprintf(buf, cap, "%s/%s%s", dir, rel[i], DEFAULT_MODEL);
            if (access(buf, R_OK) == 0) return buf;
        }
    }
    snprintf(buf, cap, "models/%s", DEFAULT_MODEL);
    if (access(buf, R_OK) == 0) return buf;
    return NULL;
}
