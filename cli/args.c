/* args.c - the option parser all subcommands share. Options are --name VALUE
 * or --name=VALUE; numbers are checked in full (no trailing junk, finite,
 * in range); unknown options and missing values are usage errors. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_help(const cli_command *cmd) {
    printf("usage: ganedit %s [options] %s\n\n%s\n\noptions:\n", cmd->name,
           cmd->usage ? cmd->usage : "", cmd->summary);
    for (int i = 0; i < cmd->n_opts; i++) {
        const cli_opt *o = &cmd->opts[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->type == OPT_FLAG ? "" : " ",
                 o->type == OPT_FLAG ? "" : (o->metavar ? o->metavar : "VALUE"));
        printf("  %-26s %s\n", left, o->help);
    }
    printf("  %-26s %s\n", "--threads N", "threads to use (default: all cores)");
    printf("  %-26s %s\n", "--precision P",
           "fp32 (default) or bf16: bf16 convolutions on CPUs with AMX, else fp32");
    printf("  %-26s %s\n", "--help", "show this help");
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ganedit %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'ganedit %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

int cli_fail(const char *cmd, ge_status s) {
    const char *m = ge_errmsg();
    fprintf(stderr, "ganedit %s: %s\n", cmd, m && *m ? m : ge_status_name(s));
    return s == GE_ERR_ARG ? 2 : 1;
}

static int parse_value(const cli_command *cmd, const cli_opt *o, const char *v) {
    char *end;
    errno = 0;
    if (o->type == OPT_STR) {
        *(const char **)o->dst = v;
    } else if (o->type == OPT_INT) {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < -2147483647L || x > 2147483647L)
            return cli_usage_error(cmd->name, "--%s needs an integer, got '%s'", o->name, v);
        *(int *)o->dst = (int)x;
    } else if (o->type == OPT_FLOAT) {
        float x = strtof(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            return cli_usage_error(cmd->name, "--%s needs a finite number, got '%s'", o->name, v);
        *(float *)o->dst = x;
    }
    return 0;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, const char **pos, int *n_pos) {
    *n_pos = 0;
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (*n_pos >= cmd->max_pos)
                return cli_usage_error(cmd->name, "unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_help(cmd);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0)
            return cli_usage_error(cmd->name, "unknown option '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 7 && !strncmp(name, "threads", 7)) {
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            int t;
            cli_opt to = {"threads", OPT_INT, &t, "N", ""};
            if (!v) return cli_usage_error(cmd->name, "--threads needs a value");
            if (parse_value(cmd, &to, v)) return 2;
            if (t < 1 || t > 1024) return cli_usage_error(cmd->name, "--threads must be 1..1024");
            ge_set_num_threads(t);
            continue;
        }
        if (len == 9 && !strncmp(name, "precision", 9)) {
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) return cli_usage_error(cmd->name, "--precision needs a value");
            if (strcmp(v, "fp32") && strcmp(v, "bf16"))
                return cli_usage_error(cmd->name, "--precision must be fp32 or bf16, not '%s'", v);
            ge_set_precision(strcmp(v, "bf16") ? GE_PRECISION_FP32 : GE_PRECISION_BF16);
            if (!strcmp(v, "bf16") && ge_get_precision() != GE_PRECISION_BF16)
                fprintf(stderr, "ganedit %s: bf16 needs a CPU with AMX-BF16; running in fp32\n",
                        cmd->name);
            continue;
        }
        const cli_opt *o = NULL;
        for (int k = 0; k < cmd->n_opts; k++)
            if (strlen(cmd->opts[k].name) == len && !strncmp(cmd->opts[k].name, name, len))
                o = &cmd->opts[k];
        if (!o) return cli_usage_error(cmd->name, "unknown option '--%.*s'", (int)len, name);
        if (o->type == OPT_FLAG) {
            if (eq) return cli_usage_error(cmd->name, "--%s takes no value", o->name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return cli_usage_error(cmd->name, "--%s needs a value", o->name);
        if (parse_value(cmd, o, v)) return 2;
    }
    if (*n_pos < cmd->min_pos)
        return cli_usage_error(cmd->name, "expected %s", cmd->usage ? cmd->usage : "arguments");
    return 0;
}

int cli_latent_space(const char *s) {
    if (!strcmp(s, "z")) return GE_LATENT_Z;
    if (!strcmp(s, "w")) return GE_LATENT_W;
    if (!strcmp(s, "w+")) return GE_LATENT_WPLUS;
    return -1;
}

int cli_noise_mode(const char *s) {
    if (!strcmp(s, "const")) return GE_NOISE_CONST;
    if (!strcmp(s, "random")) return GE_NOISE_RANDOM;
    if (!strcmp(s, "none")) return GE_NOISE_NONE;
    return -1;
}
