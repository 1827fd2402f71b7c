/* main.c - the ganedit program: picks the subcommand and hands it the rest of
 * the command line. Each subcommand lives in its own cli/cmd_*.c. */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"info", cmd_info, "describe a model or weight file"},
    {"sample", cmd_sample, "generate images from random or given latents"},
    {"project", cmd_project, "find the latent of a photo (GAN inversion)"},
    {"draw", cmd_draw, "turn a colour scribble into a natural image"},
    {"edit", cmd_edit, "edit a photo by drawing on it"},
    {"interpolate", cmd_interpolate, "morph between two photos or latents"},
    {"distance", cmd_distance, "VGG-19 perceptual distance between two images"},
    {"serve", cmd_serve, "serve the drawing and editing page on a local web server"},
    {"train", cmd_train, "train a generator on a folder of images"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: ganedit COMMAND [options]\n\n"
               "Edit images through the latent space of a GAN (DCGAN, StyleGAN2-ADA).\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'ganedit COMMAND --help' describes each command's options.\n");
}

int main(int argc, char **argv) {
    /* OpenMP threads that spin while waiting make every step several times slower
       whenever another program wants the cores (measured: 5x on a busy 2-core
       machine). libgomp reads the policy once, before main, so set it and start
       again; an explicit OMP_WAIT_POLICY in the environment is respected. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
        /* if that fails, carry on with the default policy */
    }
    /* a file-size limit makes a write fail with EFBIG (reported, previous file kept)
       instead of killing the program halfway */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("ganedit %s\n", GE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "ganedit: unknown command '%s' (see 'ganedit --help')\n", argv[1]);
    return 2;
}
