/* zmq_bw — how fast raw frames cross ZeroMQ over loopback TCP on this
 * machine with nothing else to do: the ceiling of the coordinator's
 * intake of frames sent over the socket, beside which bench_farm.py's
 * transport benchmark sets the farm's own.
 *
 * SENDERS processes (as the farm's workers are) each connect a PUSH
 * socket to the receiver's PULL socket on tcp://127.0.0.1 and send their
 * share of TOTAL bytes as CHUNK-byte messages (one raw frame each) from
 * one buffer touched in advance, without a copy and with the workers'
 * send high-water mark, as the workers' pooled frames go out. The
 * receiver (this process: one thread, and ZeroMQ's one I/O thread) takes
 * every message and either drops it or, given DIR, pwrites it into files
 * of FILE_FRAMES frames there, as the coordinator's loop writes frames
 * into its spool; a second thread fsyncs each full file and the
 * directory, as the coordinator's commit thread does. The clock runs
 * from the go signal, after every sender has connected, to the last
 * message received (and, given DIR, the last file synced).
 *
 * Runs it RUNS times with new senders and prints the best run in one line
 * of key=value pairs that the benchmark script parses:
 *
 *   zmq bytes=746496000 chunk=3110400 senders=4 runs=3 best_s=0.41 MBps=1820.7 spool=0
 *
 *   rf-bench-zmq TOTAL [CHUNK [SENDERS [RUNS [DIR [FILE_FRAMES]]]]]
 *
 * defaults: CHUNK 3110400 (1920x1080 I420), SENDERS 4, RUNS 3, no DIR,
 * FILE_FRAMES 48. A sender that fails, or one that goes quiet for 30 s,
 * fails the run; senders die with the receiver.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_args.h"

#define QUIET_MS 30000   /* a sender or the receiver waiting longer has failed */
#define SENDER_HWM 16    /* the workers' ZMQ_SNDHWM (worker.c) */

static void no_free(void *data, void *hint) {
    (void)data;
    (void)hint;
}

/* A sender process: connect, say ready, wait for the go byte on fd `go`,
 * then send `n` messages of `chunk` bytes from one buffer. Its exit
 * status says whether it did. */
static void sender(pid_t receiver, const char *endpoint, int go, size_t chunk,
                   unsigned long long n) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != receiver)
        _exit(1); /* the receiver is gone already */
    uint8_t *buf = malloc(chunk);
    if (!buf)
        _exit(1);
    for (size_t i = 0; i < chunk; i++)
        buf[i] = (uint8_t)(i * 131u + 7u);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_PUSH);
    int hwm = SENDER_HWM, quiet = QUIET_MS;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &quiet, sizeof quiet);
    zmq_setsockopt(s, ZMQ_LINGER, &quiet, sizeof quiet);
    char c;
    if (zmq_connect(s, endpoint) != 0 || zmq_send(s, "", 0, 0) != 0 || read(go, &c, 1) != 1)
        _exit(1);
    for (unsigned long long i = 0; i < n; i++) {
        zmq_msg_t m;
        zmq_msg_init_data(&m, buf, chunk, no_free, NULL);
        if (zmq_msg_send(&m, s, 0) < 0)
            _exit(1);
    }
    zmq_close(s); /* lingers until everything has gone out, QUIET_MS at most */
    zmq_ctx_term(ctx);
    _exit(0);
}

/* ---- the syncer: fsyncs finished files off the receiving thread ---- */

typedef struct syncer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fds[64]; /* files written, waiting for fsync */
    size_t n;
    int done;   /* no more files */
    int dirfd;  /* synced after each file */
    int err;    /* the first errno */
} syncer;

static void *syncer_main(void *arg) {
    syncer *y = arg;
    pthread_mutex_lock(&y->mu);
    for (;;) {
        while (!y->n && !y->done)
            pthread_cond_wait(&y->cv, &y->mu);
        if (!y->n)
            break;
        int fd = y->fds[0];
        memmove(y->fds, y->fds + 1, --y->n * sizeof *y->fds);
        pthread_cond_broadcast(&y->cv);
        pthread_mutex_unlock(&y->mu);
        int e = fsync(fd) != 0 ? errno : 0;
        if (close(fd) != 0 && !e)
            e = errno;
        if (!e && fsync(y->dirfd) != 0)
            e = errno;
        pthread_mutex_lock(&y->mu);
        if (e && !y->err)
            y->err = e;
    }
    pthread_mutex_unlock(&y->mu);
    return NULL;
}

/* Hand fd over to be synced and closed (waits while 64 are queued). */
static void syncer_push(syncer *y, int fd) {
    pthread_mutex_lock(&y->mu);
    while (y->n == sizeof y->fds / sizeof y->fds[0])
        pthread_cond_wait(&y->cv, &y->mu);
    y->fds[y->n++] = fd;
    pthread_cond_broadcast(&y->cv);
    pthread_mutex_unlock(&y->mu);
}

static int write_all(int fd, const uint8_t *p, size_t n, off_t off) {
    while (n) {
        ssize_t r = pwrite(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            return EIO;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

static void file_path(char *buf, size_t len, const char *dir, unsigned long long k) {
    snprintf(buf, len, "%s/zmq-bw-%llu.raw", dir, k);
}

/* Receive `frames` messages, into files in dir when dir is set. 0, or an
 * errno (EAGAIN: the senders went quiet). */
static int receive(void *pull, unsigned long long frames, size_t chunk, const char *dir,
                   unsigned file_frames, syncer *y) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    int fd = -1, err = 0;
    char path[4096];
    for (unsigned long long k = 0; k < frames && !err; k++) {
        if (zmq_msg_recv(&m, pull, 0) < 0) {
            err = zmq_errno();
            break;
        }
        if (!dir)
            continue;
        if (k % file_frames == 0) {
            if (fd >= 0)
                syncer_push(y, fd);
            file_path(path, sizeof path, dir, k / file_frames);
            if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
                err = errno;
                break;
            }
        }
        err = write_all(fd, zmq_msg_data(&m), zmq_msg_size(&m),
                        (off_t)(k % file_frames) * (off_t)chunk);
    }
    if (fd >= 0)
        syncer_push(y, fd);
    zmq_msg_close(&m);
    return err;
}

/* One run: its seconds, or -1 after saying why. Every sender is reaped
 * before it returns, killed first when the run failed. */
static double run(void *pull, const char *endpoint, size_t chunk, unsigned long long total,
                  int senders, const char *dir, unsigned file_frames) {
    unsigned long long frames = (total + chunk - 1) / chunk;
    int pipefd[2];
    pid_t *pids = calloc((size_t)senders, sizeof *pids);
    if (!pids || pipe(pipefd) != 0) {
        fprintf(stderr, "zmq_bw: %s\n", strerror(errno));
        free(pids);
        return -1;
    }
    int started = 0, err = 0;
    const char *failed = NULL;
    pid_t self = getpid();
    for (; started < senders; started++) {
        unsigned long long n =
            frames / (unsigned)senders + ((unsigned)started < frames % (unsigned)senders);
        pids[started] = fork();
        if (pids[started] < 0) {
            failed = "cannot start a sender process";
            break;
        }
        if (pids[started] == 0) {
            close(pipefd[1]);
            sender(self, endpoint, pipefd[0], chunk, n);
        }
    }
    close(pipefd[0]);
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (int i = 0; !failed && i < senders; i++) /* every sender connected */
        if (zmq_msg_recv(&m, pull, 0) < 0)
            failed = "a sender did not connect";
    zmq_msg_close(&m);

    syncer y = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .dirfd = -1};
    pthread_t th;
    int have_syncer = 0;
    if (!failed && dir) {
        y.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (y.dirfd < 0) {
            err = errno;
            failed = "cannot open the directory";
        } else if ((err = pthread_create(&th, NULL, syncer_main, &y)) != 0) {
            failed = "cannot start the sync thread";
        } else {
            have_syncer = 1;
        }
    }
    double t0 = bench_now(), dt = -1;
    if (!failed) {
        for (int i = 0; i < senders; i++)
            if (write(pipefd[1], "g", 1) != 1)
                failed = "cannot start the senders";
    }
    close(pipefd[1]);
    if (!failed)
        err = receive(pull, frames, chunk, dir, file_frames, &y);
    if (have_syncer) {
        pthread_mutex_lock(&y.mu);
        y.done = 1;
        pthread_cond_broadcast(&y.cv);
        pthread_mutex_unlock(&y.mu);
        pthread_join(th, NULL);
        if (!err)
            err = y.err;
    }
    dt = bench_now() - t0;
    if (y.dirfd >= 0)
        close(y.dirfd);
    if (!failed && err)
        failed = err == EAGAIN ? "the senders went quiet" : "cannot receive or write the frames";
    for (int i = 0; i < started; i++) {
        if (failed)
            kill(pids[i], SIGKILL);
        int st;
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (!failed)
                failed = "a sender failed";
        }
    }
    free(pids);
    for (unsigned long long k = 0; dir && k < (frames + file_frames - 1) / file_frames; k++) {
        char path[4096];
        file_path(path, sizeof path, dir, k);
        unlink(path);
    }
    if (failed) {
        fprintf(stderr, "zmq_bw: %s%s%s%s%s%s\n", failed, err ? ": " : "",
                err ? zmq_strerror(err) : "", dir ? " (frames into " : "", dir ? dir : "",
                dir ? ")" : "");
        return -1;
    }
    return dt;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: rf-bench-zmq TOTAL_BYTES "
                        "[CHUNK_BYTES [SENDERS [RUNS [DIR [FILE_FRAMES]]]]]\n");
        return 2;
    }
    unsigned long long total = bench_arg("zmq_bw", argc, argv, 1, 0);
    unsigned long long chunk = bench_arg("zmq_bw", argc, argv, 2, 3110400ULL);
    unsigned long long senders = bench_arg("zmq_bw", argc, argv, 3, 4);
    unsigned long long runs = bench_arg("zmq_bw", argc, argv, 4, 3);
    const char *dir = argc > 5 ? argv[5] : NULL;
    unsigned long long file_frames = bench_arg("zmq_bw", argc, argv, 6, 48);
    if (chunk > (1ULL << 31) || senders > 256 || runs > 100 || file_frames > 100000) {
        fprintf(stderr, "zmq_bw: at most 2 GiB a chunk, 256 senders, 100 runs and 100000 "
                        "frames a file\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* senders that died: a failed write says so */
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    int quiet = QUIET_MS, linger = 0;
    zmq_setsockopt(pull, ZMQ_RCVTIMEO, &quiet, sizeof quiet);
    zmq_setsockopt(pull, ZMQ_LINGER, &linger, sizeof linger);
    char endpoint[256];
    size_t len = sizeof endpoint;
    if (zmq_bind(pull, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, endpoint, &len) != 0) {
        fprintf(stderr, "zmq_bw: cannot bind on loopback: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    double best = -1;
    int rc = 0;
    for (unsigned long long r = 0; r < runs; r++) {
        double dt = run(pull, endpoint, (size_t)chunk, total, (int)senders, dir,
                        (unsigned)file_frames);
        if (dt < 0) {
            rc = 1;
            break;
        }
        if (best < 0 || dt < best)
            best = dt;
    }
    zmq_close(pull);
    zmq_ctx_term(ctx);
    if (rc)
        return rc;
    unsigned long long bytes = (total + chunk - 1) / chunk * chunk;
    printf("zmq bytes=%llu chunk=%llu senders=%llu runs=%llu best_s=%.6f MBps=%.1f spool=%d\n",
           bytes, chunk, senders, runs, best, (double)bytes / best / 1e6, dir != NULL);
    return 0;
}
