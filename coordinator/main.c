/* rfarm-coordinator — command line and signals; everything else is coord.c. */
#include <errno.h>
#include <getopt.h>
#include <libavutil/log.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "coord.h"
#include "rf_util.h"

#define DEFAULT_CHART_JS "/usr/share/javascript/chart.js/chart.min.js"
#define TOKEN_MAX 512

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: rfarm-coordinator [options]\n"
            "  --worker-bind EP     endpoint workers connect to (default tcp://127.0.0.1:5555)\n"
            "  --client-bind EP     endpoint the rfarm CLI talks to (default tcp://127.0.0.1:5556)\n"
            "  --redis ADDR         host:port or unix:/path (default 127.0.0.1:6379)\n"
            "  --prefix P           Redis key prefix (default rfarm:)\n"
            "  --spool DIR          where finished segments wait to be stitched (default ./rfarm-spool)\n"
            "  --stitch-threads N   stitching/encoding threads (default 2)\n"
            "  --kernels K          auto | c | cuda (default auto)\n"
            "  --lease-ms MS        a worker silent this long is declared lost (default 5000)\n"
            "  --max-attempts N     tries per segment before its job fails (default 3)\n"
            "  --retry-backoff-ms MS  wait before a failed segment is retried; doubles with\n"
            "                       each failure, at most 30 s (default 1000)\n"
            "  --quarantine-ms MS   how long a worker that keeps failing gets no work\n"
            "                       (default 60000)\n"
            "  --no-metrics         write no counters, gauges or time series to Redis\n"
            "  --metrics-interval-ms MS  one time-series sample this often (default 5000)\n"
            "  --metrics-retention-s S   time series kept this long (default 86400)\n"
            "  --http [HOST:]PORT   serve the dashboard, JSON API and /metrics; HOST\n"
            "                       defaults to 127.0.0.1 (default: no HTTP server)\n"
            "  --http-token-file F  submit and cancel over HTTP need 'Authorization:\n"
            "                       Bearer <the file's first line>' (or RFARM_HTTP_TOKEN)\n"
            "  --chart-js PATH      Chart.js for the dashboard's charts\n"
            "                       (default " DEFAULT_CHART_JS ")\n"
            "Environment RFARM_DEBUG=1 adds debug lines to the log.\n");
}

static int parse_uint(const char *opt, const char *s, unsigned lo, unsigned hi, unsigned *out) {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "rfarm-coordinator: %s: must be an integer between %u and %u (got '%s')\n",
                opt, lo, hi, s);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* The bearer token: from a file (its first line) or the environment, never
 * from the command line, where any local user could read it. */
static int load_token(const char *file, char *buf, size_t len) {
    buf[0] = '\0';
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            fprintf(stderr, "rfarm-coordinator: --http-token-file: cannot read %s: %s\n", file,
                    strerror(errno));
            return -1;
        }
        if (!fgets(buf, (int)len, f))
            buf[0] = '\0';
        fclose(f);
        buf[strcspn(buf, "\r\n")] = '\0';
        if (!buf[0]) {
            fprintf(stderr, "rfarm-coordinator: --http-token-file: %s: first line is empty\n",
                    file);
            return -1;
        }
    } else if (getenv("RFARM_HTTP_TOKEN") && getenv("RFARM_HTTP_TOKEN")[0]) {
        snprintf(buf, len, "%s", getenv("RFARM_HTTP_TOKEN"));
    }
    return 0;
}

/* Open files the coordinator asks for: a segment being written, a commit
 * group's files, a stitching job's spool files and packs, a connection per
 * worker and per HTTP client; a farm of hundreds of workers needs
 * thousands, where a shell's default soft limit is often 1,024. */
#define OPEN_FILES_WANTED 65536
#define OPEN_FILES_ENOUGH 4096

/* Raise the soft limit on open files towards the hard one, and say so: the
 * error a farm would otherwise hit mid-run (EMFILE) is far from its cause. */
static void raise_open_files(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > OPEN_FILES_WANTED
                      ? OPEN_FILES_WANTED
                      : rl.rlim_max;
    rlim_t was = rl.rlim_cur;
    if (was != RLIM_INFINITY && was < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            rf_info("coordinator", "open files limit raised from=%llu to=%llu",
                    (unsigned long long)was, (unsigned long long)want);
        else
            rl.rlim_cur = was;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < OPEN_FILES_ENOUGH)
        rf_warn("coordinator", "open files limit is %llu (hard limit %llu): a big farm needs "
                               "more; raise the hard limit (ulimit -Hn, LimitNOFILE=)",
                (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
}

int main(int argc, char **argv) {
    rf_log_buffered();
    coord_config cfg = {
        .worker_bind = "tcp://127.0.0.1:5555",
        .client_bind = "tcp://127.0.0.1:5556",
        .redis = "127.0.0.1:6379",
        .prefix = "rfarm:",
        .spool = "./rfarm-spool",
        .stitch_threads = 2,
        .kernels = KN_AUTO,
        .heartbeat_ms = 1000,
        .lease_ms = 5000,
        .max_attempts = 3,
        .retry_backoff_ms = 1000,
        .quarantine_ms = 60000,
        .metrics = 1,
        .metrics_interval_ms = 5000,
        .metrics_retention_s = 86400,
        .chart_js = DEFAULT_CHART_JS,
    };
    const char *token_file = NULL;
    char http_bind[300];
    static const struct option opts[] = {
        {"worker-bind", required_argument, 0, 'w'}, {"client-bind", required_argument, 0, 'c'},
        {"redis", required_argument, 0, 'r'},       {"prefix", required_argument, 0, 'p'},
        {"spool", required_argument, 0, 's'},       {"stitch-threads", required_argument, 0, 't'},
        {"kernels", required_argument, 0, 'k'},     {"lease-ms", required_argument, 0, 'l'},
        {"max-attempts", required_argument, 0, 'a'}, {"help", no_argument, 0, 'h'},
        {"retry-backoff-ms", required_argument, 0, 'b'},
        {"quarantine-ms", required_argument, 0, 'q'},
        {"no-metrics", no_argument, 0, 'M'},
        {"metrics-interval-ms", required_argument, 0, 'i'},
        {"metrics-retention-s", required_argument, 0, 'R'},
        {"http", required_argument, 0, 'H'},
        {"http-token-file", required_argument, 0, 'T'},
        {"chart-js", required_argument, 0, 'J'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'w': cfg.worker_bind = optarg; break;
        case 'c': cfg.client_bind = optarg; break;
        case 'r': cfg.redis = optarg; break;
        case 'p': cfg.prefix = optarg; break;
        case 's': cfg.spool = optarg; break;
        case 't':
            if (parse_uint("--stitch-threads", optarg, 1, 64, &cfg.stitch_threads) != 0)
                return 2;
            break;
        case 'k':
            if (kn_pref_parse(optarg, &cfg.kernels) != 0) {
                fprintf(stderr, "rfarm-coordinator: --kernels: must be auto, c or cuda\n");
                return 2;
            }
            break;
        case 'l':
            if (parse_uint("--lease-ms", optarg, 100, 3600000, &cfg.lease_ms) != 0)
                return 2;
            break;
        case 'a':
            if (parse_uint("--max-attempts", optarg, 1, 100, &cfg.max_attempts) != 0)
                return 2;
            break;
        case 'b':
            if (parse_uint("--retry-backoff-ms", optarg, 0, 30000, &cfg.retry_backoff_ms) != 0)
                return 2;
            break;
        case 'q':
            if (parse_uint("--quarantine-ms", optarg, 0, 86400000, &cfg.quarantine_ms) != 0)
                return 2;
            break;
        case 'M': cfg.metrics = 0; break;
        case 'i':
            if (parse_uint("--metrics-interval-ms", optarg, 100, 3600000,
                           &cfg.metrics_interval_ms) != 0)
                return 2;
            break;
        case 'R':
            if (parse_uint("--metrics-retention-s", optarg, 1, 31536000,
                           &cfg.metrics_retention_s) != 0)
                return 2;
            break;
        case 'H':
            /* A bare port listens on loopback only: exposing the API is a choice. */
            snprintf(http_bind, sizeof http_bind, "%s%s", strchr(optarg, ':') ? "" : "127.0.0.1:",
                     optarg);
            cfg.http_bind = http_bind;
            break;
        case 'T': token_file = optarg; break;
        case 'J': cfg.chart_js = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "rfarm-coordinator: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    static char token[TOKEN_MAX];
    if (load_token(token_file, token, sizeof token) != 0)
        return 2;
    cfg.http_token = token[0] ? token : NULL;
    if (cfg.heartbeat_ms * 2 > cfg.lease_ms)
        cfg.heartbeat_ms = cfg.lease_ms / 3 ? cfg.lease_ms / 3 : 1;
    av_log_set_level(AV_LOG_ERROR);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    raise_open_files();
    char err[1024];
    coord *c;
    if (coord_new(&cfg, &c, err, sizeof err) != 0) {
        rf_error("coordinator", "cannot start: %s", err);
        return 1;
    }
    int rc = coord_run(c, &stop_requested);
    coord_free(c);
    rf_info("coordinator", "coordinator stopped");
    return rc == 0 ? 0 : 1;
}
