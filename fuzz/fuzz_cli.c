/* fuzz_cli.c - libFuzzer target: the option parser every subcommand shares
 * (cli/args.c, cli_parse). The input is split at NUL bytes into argv; the
 * command table below has one option of every type, as the real commands
 * do. After a successful parse, positional arguments and string options must
 * point at argv strings, numbers must be finite and in range.
 *
 * cli_parse prints help to stdout and usage errors to stderr; both go to
 * /dev/null here (the stderr FILE is swapped, not fd 2, so sanitizer and
 * libFuzzer reports still reach the terminal). ge_set_num_threads and
 * ge_set_precision live in the kernels, which this target does not link:
 * stubs record the values. */
#include "cli.h"
#include "fuzz_common.h"

#include <math.h>

#define MAX_ARGS 64

static int threads_set, precision_set = -1;
void ge_set_num_threads(int n) { threads_set = n; }
int ge_get_num_threads(void) { return threads_set; }
ge_status ge_set_precision(ge_precision p) {
    precision_set = (int)p;
    return GE_OK;
}
ge_precision ge_get_precision(void) { return GE_PRECISION_FP32; }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (!freopen("/dev/null", "w", stdout)) abort();
    FILE *null_err = fopen("/dev/null", "w");
    if (!null_err) abort();
    stderr = null_err;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS];
    int argc = 0;
    for (size_t i = 0; i <= size && argc < MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    static const char default_out[] = "default";
    const char *model = NULL, *out = default_out;
    int steps = 7, quiet = 0;
    float lr = 0.5f;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "FILE", "weights"},
        {"out", OPT_STR, &out, "DIR", "output folder"},
        {"steps", OPT_INT, &steps, "N", "steps"},
        {"lr", OPT_FLOAT, &lr, "X", "learning rate"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no progress"},
    };
    cli_command cmd = {"fuzz", "the fuzz target's command", "A.png [B.png]", opts, 5, 1, 2};
    const char *pos[2] = {NULL, NULL};
    int n_pos = -1;
    threads_set = 0;
    precision_set = -1;
    int r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r != 0 && r != 1 && r != 2) fz_die("cli_parse returned an unknown value", NULL);
    if (r == 0) {
        if (n_pos < cmd.min_pos || n_pos > cmd.max_pos) fz_die("positional count out of range", NULL);
        const char *lo = buf, *hi = buf + size + 1;
        for (int i = 0; i < n_pos; i++)
            if (pos[i] < lo || pos[i] >= hi) fz_die("a positional argument outside argv", NULL);
        if (model && (model < lo || model >= hi)) fz_die("--model outside argv", NULL);
        if (out != default_out && (out < lo || out >= hi)) fz_die("--out outside argv", NULL);
        if (!isfinite(lr)) fz_die("a non-finite --lr accepted", NULL);
        if (quiet != 0 && quiet != 1) fz_die("a flag that is not 0 or 1", NULL);
        if (threads_set && (threads_set < 1 || threads_set > 1024))
            fz_die("--threads out of range accepted", NULL);
        if (precision_set != -1 && precision_set != GE_PRECISION_FP32 &&
            precision_set != GE_PRECISION_BF16)
            fz_die("an unknown --precision accepted", NULL);
    }
    for (int i = 0; i < argc; i++) {
        int sp = cli_latent_space(argv[i]), nm = cli_noise_mode(argv[i]);
        if (sp < -1 || sp > GE_LATENT_WPLUS || nm < -1 || nm > GE_NOISE_NONE)
            fz_die("a parser helper returned an unknown value", argv[i]);
    }
    free(buf);
    return 0;
}
