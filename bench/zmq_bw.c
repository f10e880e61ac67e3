/* zmq_bw — how fast raw frames cross ZeroMQ over loopback TCP on this
 * machine with nothing else to do: the ceiling of the coordinator's
 * intake of frames sent over the socket, beside which bench_farm.py's
 * transport benchmark sets the farm's own.
 *
 * SENDERS processes (as the farm's workers are) each connect a PUSH
 * socket to the receiver's PULL socket on tcp://127.0.0.1 and send their
 * share of TOTAL bytes as CHUNK-byte messages (one raw frame each) from
 * one buffer touched in advance, without a copy, as the workers' pooled
 * frames go out. The receiver (this process, one thread, ZeroMQ's one
 * I/O thread) takes every message and either drops it or, given DIR,
 * pwrites it into files of 48 frames there and fsyncs each file, as the
 * coordinator writes frames into its spool. The clock runs from the go
 * signal, after every sender has connected, to the last message.
 *
 * Runs it RUNS times with new senders and prints the best run in one line
 * of key=value pairs that the benchmark script parses:
 *
 *   zmq bytes=746496000 chunk=3110400 senders=4 runs=3 best_s=0.41 MBps=1820.7 spool=0
 *
 *   rf-bench-zmq TOTAL [CHUNK [SENDERS [RUNS [DIR]]]]
 *
 * defaults: CHUNK 3110400 (1920x1080 I420), SENDERS 4, RUNS 3, no DIR.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_args.h"

#define FRAMES_PER_FILE 48

static void die(const char *what) {
    fprintf(stderr, "zmq_bw: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static void no_free(void *data, void *hint) {
    (void)data;
    (void)hint;
}

/* A sender: connect, say ready, wait for the go byte on fd `go`, then send
 * `n` messages of `chunk` bytes from one buffer. */
static int sender(const char *endpoint, int go, size_t chunk, unsigned long long n) {
    uint8_t *buf = malloc(chunk);
    if (!buf)
        return 1;
    for (size_t i = 0; i < chunk; i++)
        buf[i] = (uint8_t)(i * 131u + 7u);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_PUSH);
    int linger = -1;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, endpoint) != 0 || zmq_send(s, "", 0, 0) != 0)
        die("sender: connect");
    char c;
    if (read(go, &c, 1) != 1)
        return 1;
    for (unsigned long long i = 0; i < n; i++) {
        zmq_msg_t m;
        zmq_msg_init_data(&m, buf, chunk, no_free, NULL);
        if (zmq_msg_send(&m, s, 0) < 0)
            die("sender: send");
    }
    zmq_close(s); /* linger -1: returns once everything has gone out */
    zmq_ctx_term(ctx);
    free(buf);
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n, off_t off) {
    while (n) {
        ssize_t r = pwrite(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* One run; its seconds, or -1. */
static double run(void *pull, const char *endpoint, size_t chunk, unsigned long long total,
                  int senders, const char *dir) {
    unsigned long long frames = (total + chunk - 1) / chunk;
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    pid_t *pids = calloc((size_t)senders, sizeof *pids);
    for (int i = 0; i < senders; i++) {
        unsigned long long n = frames / (unsigned)senders + ((unsigned)i < frames % (unsigned)senders);
        pids[i] = fork();
        if (pids[i] < 0) {
            fprintf(stderr, "zmq_bw: fork: %s\n", strerror(errno));
            exit(1);
        }
        if (pids[i] == 0) {
            close(pipefd[1]);
            _exit(sender(endpoint, pipefd[0], chunk, n));
        }
    }
    close(pipefd[0]);
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (int i = 0; i < senders; i++) /* every sender connected */
        if (zmq_msg_recv(&m, pull, 0) < 0)
            die("receive");
    double t0 = bench_now();
    for (int i = 0; i < senders; i++)
        if (write(pipefd[1], "g", 1) != 1)
            return -1;
    close(pipefd[1]);
    int fd = -1;
    char path[4096];
    int werr = 0, serr = 0; /* the first write error; a sender that failed */
    for (unsigned long long k = 0; k < frames; k++) {
        if (zmq_msg_recv(&m, pull, 0) < 0)
            die("receive");
        if (!dir)
            continue;
        if (k % FRAMES_PER_FILE == 0) {
            if (fd >= 0 && (fsync(fd) != 0 || close(fd) != 0) && !werr)
                werr = errno;
            snprintf(path, sizeof path, "%s/zmq-bw-%llu.raw", dir, k / FRAMES_PER_FILE);
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0 && !werr)
                werr = errno;
        }
        if (fd >= 0 && write_all(fd, zmq_msg_data(&m), zmq_msg_size(&m),
                                 (off_t)(k % FRAMES_PER_FILE) * (off_t)chunk) != 0 &&
            !werr)
            werr = errno;
    }
    if (fd >= 0 && (fsync(fd) != 0 || close(fd) != 0) && !werr)
        werr = errno;
    double dt = bench_now() - t0;
    zmq_msg_close(&m);
    for (int i = 0; i < senders; i++) {
        int st;
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            serr = 1;
    }
    free(pids);
    for (unsigned long long k = 0; dir && k < (frames + FRAMES_PER_FILE - 1) / FRAMES_PER_FILE; k++) {
        snprintf(path, sizeof path, "%s/zmq-bw-%llu.raw", dir, k);
        unlink(path);
    }
    if (werr) {
        fprintf(stderr, "zmq_bw: cannot write frames into %s: %s\n", dir, strerror(werr));
        return -1;
    }
    if (serr) {
        fprintf(stderr, "zmq_bw: a sender process failed\n");
        return -1;
    }
    return dt;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: rf-bench-zmq TOTAL_BYTES [CHUNK_BYTES [SENDERS [RUNS [DIR]]]]\n");
        return 2;
    }
    unsigned long long total = bench_arg("zmq_bw", argc, argv, 1, 0);
    size_t chunk = (size_t)bench_arg("zmq_bw", argc, argv, 2, 3110400ULL);
    int senders = (int)bench_arg("zmq_bw", argc, argv, 3, 4);
    int runs = (int)bench_arg("zmq_bw", argc, argv, 4, 3);
    const char *dir = argc > 5 ? argv[5] : NULL;
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    if (zmq_bind(pull, "tcp://127.0.0.1:*") != 0)
        die("bind");
    char endpoint[256];
    size_t len = sizeof endpoint;
    zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, endpoint, &len);
    double best = -1;
    for (int r = 0; r < runs; r++) {
        double dt = run(pull, endpoint, chunk, total, senders, dir);
        if (dt < 0)
            return 1;
        if (best < 0 || dt < best)
            best = dt;
    }
    zmq_close(pull);
    zmq_ctx_term(ctx);
    unsigned long long bytes = (total + chunk - 1) / chunk * chunk;
    printf("zmq bytes=%llu chunk=%zu senders=%d runs=%d best_s=%.6f MBps=%.1f spool=%d\n", bytes,
           chunk, senders, runs, best, (double)bytes / best / 1e6, dir != NULL);
    return 0;
}
