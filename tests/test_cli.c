/* test_cli.c - the ganedit program as a user runs it: help for every command,
 * usage errors with exit status 2, runtime errors with status 1 and a
 * one-line message, no output file left behind on failure, and sampling
 * from the real DCGAN writing a PNG of the right size. */
#include "harness.h"
#include "ganedit.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TEST(cli_help_every_command) {
    char err[4096];
    const char *cmds[] = {"--help", "info --help", "sample --help", "distance --help"};
    for (int i = 0; i < 4; i++) CHECK(ganedit_run(cmds[i], err, sizeof err) == 0, "%s", cmds[i]);
    CHECK(ganedit_run("", err, sizeof err) == 2, "no command");
    CHECK(ganedit_run("frobnicate", err, sizeof err) == 2, "unknown command");
}

TEST(cli_usage_errors) {
    char err[4096], args[16384];
    const char *dir = tmpdir_new();
    snprintf(args, sizeof args, "sample --model %s --out %s/x.png --n abc",
             shared_path("weights/dcgan_grumpy_deluxe.safetensors"), dir);
    CHECK(ganedit_run(args, err, sizeof err) == 2, "bad integer");
    CHECK(strstr(err, "--n") && count_lines(err) == 1, "message: %s", err);
    snprintf(args, sizeof args, "sample --model %s --out %s/x.png --bogus 1",
             shared_path("weights/dcgan_grumpy_deluxe.safetensors"), dir);
    CHECK(ganedit_run(args, err, sizeof err) == 2, "unknown option");
    /* without --model, $GANEDIT_MODEL names the generator */
    snprintf(args, sizeof args, "sample --out %s/x.png", dir);
    char env_args[16500];
    snprintf(env_args, sizeof env_args, "%s", args);
    CHECK(setenv("GANEDIT_MODEL", "/nonexistent/default.safetensors", 1) == 0, "setenv");
    int st = ganedit_run(env_args, err, sizeof err);
    unsetenv("GANEDIT_MODEL");
    CHECK(st == 1 && strstr(err, "/nonexistent/default.safetensors"), "bad $GANEDIT_MODEL: %s", err);
    snprintf(args, sizeof args, "sample --model %s --out %s/x.png --latent q",
             shared_path("weights/dcgan_grumpy_deluxe.safetensors"), dir);
    CHECK(ganedit_run(args, err, sizeof err) == 2, "bad latent");
    snprintf(args, sizeof args, "%s/x.png", dir);
    CHECK(!file_exists(args), "no output after usage errors");
}

TEST(cli_runtime_errors_leave_nothing) {
    char err[4096], args[16384], out[4096];
    const char *dir = tmpdir_new();
    snprintf(out, sizeof out, "%s/x.png", dir);
    snprintf(args, sizeof args, "sample --model /nonexistent/model.pkl --out %s", out);
    CHECK(ganedit_run(args, err, sizeof err) == 1, "missing model");
    CHECK(strstr(err, "/nonexistent/model.pkl") && count_lines(err) == 1, "message: %s", err);
    /* a VGG file is not a generator */
    snprintf(args, sizeof args, "sample --model %s --out %s",
             shared_path("weights/vgg19_normalised_conv3_1.safetensors"), out);
    CHECK(ganedit_run(args, err, sizeof err) == 1 && count_lines(err) == 1, "not a generator: %s", err);
    /* latents of the wrong shape */
    char npy[4096];
    snprintf(npy, sizeof npy, "%s/z.npy", dir);
    float z[7] = {0};
    int64_t shape[2] = {1, 7};
    CHECK(ge_npy_save(npy, z, 2, shape) == GE_OK, "%s", ge_errmsg());
    snprintf(args, sizeof args, "sample --model %s --latent-in %s --out %s",
             shared_path("weights/dcgan_grumpy_deluxe.safetensors"), npy, out);
    CHECK(ganedit_run(args, err, sizeof err) == 1 && strstr(err, "(N, 100)"), "wrong shape: %s", err);
    CHECK(!file_exists(out), "no partial output");
}

TEST(cli_sample_dcgan) {
    char err[4096], args[16384], out[4096], npy[4096];
    const char *dir = tmpdir_new();
    snprintf(out, sizeof out, "%s/s.png", dir);
    snprintf(npy, sizeof npy, "%s/s.npy", dir);
    snprintf(args, sizeof args, "sample --model %s --n 4 --seed 3 --out %s --out-npy %s",
             shared_path("weights/dcgan_grumpy_deluxe.pkl"), out, npy);
    CHECK(ganedit_run(args, err, sizeof err) == 0, "sample failed: %s", err);
    float *img;
    int c, h, w;
    CHECK(ge_image_read(out, &img, &c, &h, &w) == GE_OK, "%s", ge_errmsg());
    free(img);
    CHECK(c == 3 && h == 64 + 2 + 64 && w == 64 + 2 + 64, "grid %dx%dx%d", c, h, w);
    float *raw;
    int nd;
    int64_t shape[8];
    CHECK(ge_npy_load(npy, &raw, &nd, shape) == GE_OK, "%s", ge_errmsg());
    CHECK(nd == 4 && shape[0] == 4 && shape[1] == 3 && shape[2] == 64, "npy shape");
    double m = max_abs(raw, 4 * 3 * 64 * 64);
    free(raw);
    CHECK(m > 0.1 && m <= 1.0, "tanh output range, max %g", m);
    /* the same seed gives the same bytes */
    char out2[4096];
    snprintf(out2, sizeof out2, "%s/s2.png", dir);
    snprintf(args, sizeof args, "sample --model %s --n 4 --seed 3 --out %s",
             shared_path("weights/dcgan_grumpy_deluxe.safetensors"), out2);
    CHECK(ganedit_run(args, err, sizeof err) == 0, "sample failed: %s", err);
    char cmp[8400];
    snprintf(cmp, sizeof cmp, "cmp -s %s %s", out, out2);
    CHECK(system(cmp) == 0, ".pkl and .safetensors with one seed give different PNGs");
}

TEST(cli_sample_shipped_default_model) {
    /* no --model: the generator ganedit trained and ships in models/ */
    char err[4096], args[16384];
    const char *dir = tmpdir_new();
    snprintf(args, sizeof args, "sample --n 2 --out %s/d.png", dir);
    CHECK(ganedit_run(args, err, sizeof err) == 0, "sample without --model failed: %s", err);
    CHECK(strstr(err, "stylegan2") != NULL, "expected the shipped StyleGAN2: %s", err);
}
