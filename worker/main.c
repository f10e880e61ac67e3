/* rfarm-worker — command line and signals; everything else is worker.c. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rf_util.h"
#include "worker.h"

static volatile sig_atomic_t signals_seen;

static void on_signal(int sig) {
    (void)sig;
    signals_seen++;
}

static void usage(FILE *f) {
    fprintf(f, "usage: rfarm-worker [options]\n"
               "  --connect EP      coordinator's worker endpoint (default tcp://127.0.0.1:5555)\n"
               "  --id NAME         worker id (default <hostname>-<pid>)\n"
               "  --capacity N      segments rendered at once (default 1)\n"
               "  --engines LIST    comma separated engines to offer (default: all)\n"
               "  --kernels K       auto | c | cuda (default auto)\n"
               "  --drain-ms MS     on SIGTERM, time to finish segments in hand (default 30000)\n"
               "  --share-spool W   auto | off: write frames straight into the coordinator's\n"
               "                    spool when this machine can see it (default auto)\n");
}

int main(int argc, char **argv) {
    rf_log_buffered();
    char default_id[80];
    char host[64] = "worker";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (*p == '.')
            *p = '-';
    snprintf(default_id, sizeof default_id, "%.40s-%d", host, (int)getpid());
    worker_config cfg = {.connect = "tcp://127.0.0.1:5555",
                         .id = default_id,
                         .capacity = 1,
                         .engines = NULL,
                         .kernels = KN_AUTO,
                         .drain_ms = 30000,
                         .share_spool = 1};
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'}, {"id", required_argument, 0, 'i'},
        {"capacity", required_argument, 0, 'n'}, {"engines", required_argument, 0, 'e'},
        {"kernels", required_argument, 0, 'k'}, {"drain-ms", required_argument, 0, 'd'},
        {"share-spool", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    int ch;
    char *end;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': cfg.connect = optarg; break;
        case 'i': cfg.id = optarg; break;
        case 'n':
            cfg.capacity = (unsigned)strtoul(optarg, &end, 10);
            if (*end || !*optarg) {
                fprintf(stderr, "rfarm-worker: --capacity: must be an integer (got '%s')\n", optarg);
                return 2;
            }
            break;
        case 'e': cfg.engines = optarg; break;
        case 'k':
            if (kn_pref_parse(optarg, &cfg.kernels) != 0) {
                fprintf(stderr, "rfarm-worker: --kernels: must be auto, c or cuda\n");
                return 2;
            }
            break;
        case 'd':
            cfg.drain_ms = (unsigned)strtoul(optarg, &end, 10);
            if (*end || !*optarg) {
                fprintf(stderr, "rfarm-worker: --drain-ms: must be an integer (got '%s')\n", optarg);
                return 2;
            }
            break;
        case 's':
            if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "off") != 0) {
                fprintf(stderr, "rfarm-worker: --share-spool: must be auto or off (got '%s')\n",
                        optarg);
                return 2;
            }
            cfg.share_spool = strcmp(optarg, "auto") == 0;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "rfarm-worker: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    worker *w;
    if (worker_new(&cfg, &w, err, sizeof err) != 0) {
        rf_error("worker", "cannot start: %s", err);
        return 1;
    }
    int rc = worker_run(w, &signals_seen);
    worker_free(w);
    return rc == 0 ? 0 : 1;
}
