/* cmd_serve.c - `ganedit serve`: a local web page for drawing on the
 * generator's image manifold (project a photo, scribble on it, edit, compare,
 * interpolate), served by a small HTTP server (serve_http.c) in front of one
 * worker thread that owns the model (serve_jobs.c).
 *
 * This file does the start and the stop: options, loading the model and VGG
 * once, reading the page's files, binding the socket (127.0.0.1 unless told
 * otherwise; port 0 picks a free one and the URL line says which), and a
 * clean shutdown on SIGINT or SIGTERM: stop taking connections, stop the
 * running job, join every thread, free everything. Signals are blocked in
 * every thread and taken by sigwait() here, so no handler runs inside the
 * HTTP library or the engine. */
#include "cli.h"
#include "serve_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir_with_index(const char *dir) {
    char p[PATH_MAX + 64];
    struct stat st;
    snprintf(p, sizeof p, "%s/index.html", dir);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* --web, $GANEDIT_WEB, then web/ beside the build folder of this program,
 * an installed share/ganedit/web, and ./web. */
static const char *find_web(const char *given, char *buf, size_t cap) {
    if (given) return given;
    const char *env = getenv("GANEDIT_WEB");
    if (env && *env) return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        const char *d = dirname(exe);
        const char *rel[] = {"../web", "../share/ganedit/web"};
        for (int i = 0; i < 2; i++) {
            snprintf(buf, cap, "%s/%s", d, rel[i]);
            if (is_dir_with_index(buf)) return buf;
        }
    }
    return "web";
}

/* Binds host:port; returns the socket (listening) or -1 with a message. */
static int listen_on(const char *host, int port, int *bound_port, int *loopback) {
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int e = getaddrinfo(host, ps, &hints, &ai);
    if (e) {
        fprintf(stderr, "ganedit serve: --host %s: %s\n", host, gai_strerror(e));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            e = errno;
            close(fd);
            fd = -1;
            errno = e;
            continue;
        }
        if (a->ai_family == AF_INET)
            *loopback = (ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >> 24) == 127;
        else
            *loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        fprintf(stderr, "ganedit serve: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *vgg = NULL, *host = "127.0.0.1", *web = NULL, *examples = NULL;
    int port = 8080, quiet = 0;
    srv_limits lim;
    srv_limits_defaults(&lim);
    int max_upload = (int)lim.max_upload, store_mb = (int)(lim.store_bytes >> 20);
    const cli_opt opts[] = {
        {"model", OPT_STR, &model, "MODEL",
         "generator weights (default: $GANEDIT_MODEL, then the shipped "
         "models/stylegan2-grumpy64.safetensors, then "
         "../shared/weights/dcgan_grumpy_deluxe.safetensors)"},
        {"vgg", OPT_STR, &vgg, "VGG",
         "VGG-19 weights for projection (default: as `project` finds them)"},
        {"host", OPT_STR, &host, "ADDR",
         "address to listen on (default 127.0.0.1: this machine only)"},
        {"port", OPT_INT, &port, "N", "port (default 8080; 0 picks a free one)"},
        {"web", OPT_STR, &web, "DIR", "the page's files (default: web/ beside the program)"},
        {"examples", OPT_STR, &examples, "DIR", "offer the PNG/JPEG photos of DIR as examples"},
        {"max-steps", OPT_INT, &lim.max_steps, "N",
         "most optimisation steps per job (default 2000)"},
        {"max-queue", OPT_INT, &lim.max_queue, "N", "most jobs waiting (default 16)"},
        {"max-upload", OPT_INT, &max_upload, "BYTES", "largest upload (default 8 MiB)"},
        {"max-side", OPT_INT, &lim.max_side, "N", "largest uploaded image side (default 2048)"},
        {"max-frames", OPT_INT, &lim.max_frames, "N", "most interpolation frames (default 32)"},
        {"max-connections", OPT_INT, &lim.max_conns, "N", "simultaneous connections (default 64)"},
        {"store-mb", OPT_INT, &store_mb, "MB", "memory for uploads and results (default 256)"},
        {"quiet", OPT_FLAG, &quiet, NULL, "print only the URL"},
    };
    const cli_command cmd = {"serve",
                             "Serve the editing page on http://HOST:PORT/ (one model, one worker; "
                             "Ctrl-C stops).",
                             "",
                             opts,
                             (int)(sizeof opts / sizeof opts[0]),
                             0,
                             0};
    const char *pos[1];
    int n_pos, r = cli_parse(&cmd, argc, argv, pos, &n_pos);
    if (r) return r == 1 ? 0 : r;
    if (port < 0 || port > 65535) return cli_usage_error("serve", "--port must be 0..65535");
    if (lim.max_steps < 1 || lim.max_steps > 1000000)
        return cli_usage_error("serve", "--max-steps must be 1..1000000");
    if (lim.max_queue < 1 || lim.max_queue > 10000)
        return cli_usage_error("serve", "--max-queue must be 1..10000");
    if (max_upload < 1024) return cli_usage_error("serve", "--max-upload must be >= 1024");
    if (lim.max_side < 1 || lim.max_side > 16384)
        return cli_usage_error("serve", "--max-side must be 1..16384");
    if (lim.max_frames < 2 || lim.max_frames > 1024)
        return cli_usage_error("serve", "--max-frames must be 2..1024");
    if (lim.max_conns < 2 || lim.max_conns > 1000)
        return cli_usage_error("serve", "--max-connections must be 2..1000");
    if (store_mb < 1 || store_mb > 1 << 20)
        return cli_usage_error("serve", "--store-mb must be >= 1");
    lim.max_upload = (size_t)max_upload;
    lim.store_bytes = (size_t)store_mb << 20;

    char model_buf[PATH_MAX];
    if (!model) model = cli_default_model(model_buf, sizeof model_buf);
    if (!model || !*model) {
        const char *sh = getenv("GANEDIT_SHARED");
        snprintf(model_buf, sizeof model_buf, "%s/weights/dcgan_grumpy_deluxe.safetensors",
                 sh && *sh ? sh : "../shared");
        if (access(model_buf, R_OK) != 0)
            return cli_usage_error("serve", "--model is required (no $GANEDIT_MODEL, no %s)",
                                   model_buf);
        model = model_buf;
    }

    /* one thread per connection: without a cap, glibc gives many of them an
       arena of their own, and freed memory stays spread over all of them */
    mallopt(M_ARENA_MAX, 2);
    static srv_t srv; /* one server per process; static keeps it off the stack */
    srv_t *s = &srv;
    memset(s, 0, sizeof *s);
    s->lim = lim;
    snprintf(s->model_path, sizeof s->model_path, "%.4000s", model);
    ge_status st = ge_generator_load(&s->g, model, NULL);
    if (st != GE_OK) return cli_fail("serve", st);
    char vpath[PATH_MAX];
    if ((st = ge_vgg_find(vpath, sizeof vpath, vgg)) == GE_OK) st = ge_vgg_load(&s->vgg, vpath);
    if (st != GE_OK) {
        if (vgg) {
            ge_generator_free(s->g);
            return cli_fail("serve", st);
        }
        fprintf(stderr,
                "ganedit serve: note: no VGG-19 (%s); projection will use the pixel loss only\n",
                ge_errmsg());
    }
    char webbuf[PATH_MAX + 32];
    const char *webdir = find_web(web, webbuf, sizeof webbuf);
    int rc = 1, fd = -1;
    struct MHD_Daemon *d = NULL;
    if (srv_load_files(&s->files, &s->n_files, webdir, 0)) goto out_model;
    if (examples && srv_load_files(&s->examples, &s->n_examples, examples, 1)) goto out_model;
    const char *tmp = getenv("TMPDIR");
    snprintf(s->tmpdir, sizeof s->tmpdir, "%s/ganedit-serve-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->tmpdir)) {
        fprintf(stderr, "ganedit serve: cannot create a temporary folder: %s\n", strerror(errno));
        s->tmpdir[0] = 0;
        goto out_model;
    }
    if ((fd = listen_on(host, port, &s->port, &s->loopback)) < 0) goto out_model;

    /* every thread started from here on inherits the blocked signals */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (srv_start(s)) {
        fprintf(stderr, "ganedit serve: cannot start the worker thread\n");
        goto out_model;
    }
    if (!(d = srv_http_start(s, fd))) {
        fprintf(stderr, "ganedit serve: cannot start the HTTP server\n");
        srv_stop(s);
        goto out_model;
    }
    fd = -1; /* the daemon owns it now */
    const ge_gen_info *in = ge_generator_info(s->g);
    char url_host[300];
    snprintf(url_host, sizeof url_host, strchr(host, ':') ? "[%s]" : "%s", host);
    printf("http://%s:%d/\n", url_host, s->port);
    fflush(stdout);
    if (!quiet) {
        fprintf(stderr, "ganedit serve: %s (%s, %dx%d), %s; page from %s\n", model, in->arch, s->R,
                s->R, s->vgg ? "VGG-19 loaded" : "no VGG", webdir);
        if (!s->loopback)
            fprintf(stderr,
                    "ganedit serve: warning: listening on %s: anyone who can reach this "
                    "address can use the server\n",
                    host);
        fprintf(stderr, "ganedit serve: open http://%s:%d/ in a browser; Ctrl-C stops\n", url_host,
                s->port);
    }
    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {
    }
    if (!quiet) fprintf(stderr, "ganedit serve: stopping (signal %d)\n", sig);
    srv_request_stop(s);
    MHD_stop_daemon(d);
    long done = s->jobs_done, failed = s->jobs_failed, cancelled = s->jobs_cancelled;
    srv_stop(s);
    if (!quiet)
        fprintf(stderr, "ganedit serve: stopped; %ld jobs done, %ld failed, %ld cancelled\n", done,
                failed, cancelled);
    rc = 0;
out_model:
    if (fd >= 0) close(fd);
    if (s->tmpdir[0]) rmdir(s->tmpdir);
    srv_files_free(s->files, s->n_files);
    srv_files_free(s->examples, s->n_examples);
    ge_vgg_free(s->vgg);
    ge_generator_free(s->g);
    memset(s, 0, sizeof *s);
    return rc;
}
