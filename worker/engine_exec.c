/* engine_exec — runs an operator's command per segment and reads the frames
 * it writes to stdout as YUV4MPEG2.
 *
 * The command is `/bin/sh -c <command>`, so an operator can write a
 * pipeline or set variables inline. It learns which frames to render from
 * the environment (the worker's own plus RFARM_JOB_ID, RFARM_SEGMENT,
 * RFARM_ATTEMPT, RFARM_FIRST_FRAME, RFARM_FRAMES, RFARM_JOB_FRAMES,
 * RFARM_WIDTH, RFARM_HEIGHT, RFARM_FPS, RFARM_FPS_NUM, RFARM_FPS_DEN,
 * RFARM_SEED, RFARM_PROMPT) and must write exactly RFARM_FRAMES frames of
 * RFARM_WIDTH x RFARM_HEIGHT, 4:2:0, for absolute frames RFARM_FIRST_FRAME
 * onwards.
 *
 * Ideas it rests on:
 *
 * - The worker is multi-threaded, so the child is started with posix_spawn
 *   (no code of ours runs between fork and exec) and every descriptor we
 *   open is close-on-exec, so a command started by another thread at the
 *   same moment cannot inherit our pipes and hold them open. The child gets
 *   default signal dispositions (the worker ignores SIGPIPE, which exec
 *   would otherwise pass on) and an empty signal mask, stdin from
 *   /dev/null, and its own process group, so that a timeout or a stop kills
 *   the whole tree it started (SIGTERM, then SIGKILL 2 s later), not just
 *   the shell.
 *
 * - One poll() waits on stdout and stderr together, with the deadline and
 *   the stop flag: a command that fills the stderr pipe while we wait for
 *   a frame can never deadlock us, and a stop is seen within 50 ms. The
 *   Y4M reader (lib/rf_y4m) pulls stdout through that wait. stderr is cut
 *   into lines for the job's log and its last 2 KB are kept for the error
 *   message, because that is where a failing command says why.
 *
 * - A failure names its cause for a person: the exit status or signal with
 *   the stderr tail, a frame count ("command produced 10 of 48 frames"), a
 *   size mismatch naming both sizes, a timeout. When we stop reading early
 *   because the output is wrong, the command usually dies of the closed
 *   pipe; then our finding, not its exit status, is the reason given.
 *
 * - The child is always reaped, and its process group is killed before
 *   that, while the group id cannot yet have been reused: no zombies, no
 *   stray grandchildren. The shell's exit is the command's end: if
 *   something it left in the background still holds stdout open, that
 *   leftover is killed rather than waited for.
 */
/* pipe2 (close-on-exec from the start, with no window in which another
 * thread's spawn could inherit the pipe) is declared for _GNU_SOURCE in
 * glibc; POSIX.1-2024 has it too. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_impl.h"
#include "rf_util.h"
#include "rf_y4m.h"

extern char **environ;

#define TIMEOUT_DEFAULT_S 3600.0
#define TIMEOUT_MAX_S 604800.0
#define STOP_SLICE_MS 50   /* longest wait between looks at io->stop */
#define KILL_GRACE_MS 2000 /* SIGTERM to SIGKILL */
#define OWN_EXIT_MS 250    /* for a command whose output we refused, to exit by itself */
#define TAIL_MAX 2048      /* stderr bytes kept for error messages */
#define LINE_MAX_LOG 1024  /* longer stderr lines reach the log in pieces */
#define N_RFARM_VARS 13

typedef struct exec_params {
    const char *command; /* points into the parsed JSON */
    double timeout_s;
} exec_params;

/* One running command. */
typedef struct exec_run {
    const engine_io *io;
    pid_t pid;
    int out_fd, err_fd; /* read ends, -1 once closed */
    uint64_t deadline_ms;
    double timeout_s;
    int timed_out, stopped;
    int leftovers_killed; /* the leader exited and its group was killed */
    int terminated;       /* we sent SIGTERM/SIGKILL: its exit is our doing */
    int gone;             /* reaped by someone else: its ids are not ours */
    int out_eof;          /* stdout reached end of file */
    char line[LINE_MAX_LOG + 1];
    size_t line_len;
    char tail[TAIL_MAX];
    size_t tail_len;
    int tail_cut; /* earlier stderr was dropped from tail */
} exec_run;

/* ---- parameters ------------------------------------------------------- */

/* Check root (a JSON object) into *out. Returns the number of problems,
 * each appended to errs as a line. out->command borrows from root. */
static int exec_parse(json_t *root, exec_params *out, char *errs, size_t errlen) {
    *out = (exec_params){.command = NULL, .timeout_s = TIMEOUT_DEFAULT_S};
    int problems = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "command") == 0) {
            const char *c = json_is_string(val) ? json_string_value(val) : NULL;
            if (!c || c[0] == '\0' || strlen(c) != json_string_length(val)) {
                engine_add_problem(errs, errlen, "params.command: must be a non-empty string");
                problems++;
            } else {
                out->command = c;
            }
        } else if (strcmp(key, "timeout_s") == 0) {
            double v = json_is_number(val) ? json_number_value(val) : -1.0;
            if (!(v >= 1.0 && v <= TIMEOUT_MAX_S)) {
                engine_add_problem(errs, errlen, "params.timeout_s: must be a number between 1 and %.0f",
                            TIMEOUT_MAX_S);
                problems++;
            } else {
                out->timeout_s = v;
            }
        } else {
            problems += engine_unknown_param(errs, errlen, "exec", key);
        }
    }
    if (!json_object_get(root, "command")) {
        engine_add_problem(errs, errlen, "params.command: required (the shell command to run)");
        problems++;
    }
    return problems;
}

/* Parse params_json; on success *root holds the JSON (the caller frees it
 * with json_decref) and *out borrows from it. */
static int exec_load(const char *params_json, json_t **root, exec_params *out, char *errs,
                     size_t errlen) {
    json_error_t jerr;
    *root = json_loads(params_json ? params_json : "", JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        *out = (exec_params){.command = NULL, .timeout_s = TIMEOUT_DEFAULT_S};
        engine_add_problem(errs, errlen, "params: must be a JSON object");
        return 1;
    }
    return exec_parse(*root, out, errs, errlen);
}

int engine_exec_check(const char *params_json, char *errs, size_t errlen) {
    json_t *root;
    exec_params p;
    int n = exec_load(params_json, &root, &p, errs, errlen);
    json_decref(root);
    return n;
}

/* ---- environment ------------------------------------------------------ */

static const char *const rfarm_var_names[N_RFARM_VARS] = {
    "RFARM_JOB_ID",      "RFARM_SEGMENT", "RFARM_ATTEMPT", "RFARM_FIRST_FRAME", "RFARM_FRAMES",
    "RFARM_JOB_FRAMES",  "RFARM_WIDTH",   "RFARM_HEIGHT",  "RFARM_FPS",         "RFARM_FPS_NUM",
    "RFARM_FPS_DEN",     "RFARM_SEED",    "RFARM_PROMPT",
};

static int is_rfarm_var(const char *entry) {
    for (size_t i = 0; i < N_RFARM_VARS; i++) {
        size_t n = strlen(rfarm_var_names[i]);
        if (strncmp(entry, rfarm_var_names[i], n) == 0 && entry[n] == '=')
            return 1;
    }
    return 0;
}

static char *env_entry(const char *name, const char *value) {
    size_t len = strlen(name) + 1 + strlen(value) + 1;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s=%s", name, value);
    return s;
}

static void env_free(char **env, size_t first_own) {
    if (!env)
        return;
    for (size_t i = first_own; env[i]; i++)
        free(env[i]);
    free(env);
}

/* The child's environment: ours minus any RFARM_* we set, plus the
 * segment's. Entries before *first_own are borrowed from environ; the rest
 * are owned (env_free). Built before the spawn, since nothing may be
 * allocated between fork and exec. */
static char **env_build(const engine_segment *seg, size_t *first_own) {
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    char **env = calloc(n + N_RFARM_VARS + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; e && *e; e++)
        if (!is_rfarm_var(*e))
            env[k++] = *e;
    *first_own = k;
    char v[N_RFARM_VARS][48];
    snprintf(v[1], sizeof v[1], "%u", seg->segment);
    snprintf(v[2], sizeof v[2], "%u", seg->attempt);
    snprintf(v[3], sizeof v[3], "%u", seg->first_frame);
    snprintf(v[4], sizeof v[4], "%u", seg->frames);
    snprintf(v[5], sizeof v[5], "%u", seg->job_frames);
    snprintf(v[6], sizeof v[6], "%u", seg->width);
    snprintf(v[7], sizeof v[7], "%u", seg->height);
    if (seg->fps_den == 1)
        snprintf(v[8], sizeof v[8], "%u", seg->fps_num);
    else
        snprintf(v[8], sizeof v[8], "%u/%u", seg->fps_num, seg->fps_den);
    snprintf(v[9], sizeof v[9], "%u", seg->fps_num);
    snprintf(v[10], sizeof v[10], "%u", seg->fps_den);
    snprintf(v[11], sizeof v[11], "%llu", (unsigned long long)seg->seed);
    for (size_t i = 0; i < N_RFARM_VARS; i++) {
        const char *value = i == 0 ? (seg->job_id ? seg->job_id : "")
                            : i == 12 ? (seg->prompt ? seg->prompt : "")
                                      : v[i];
        env[k] = env_entry(rfarm_var_names[i], value);
        if (!env[k]) {
            env_free(env, *first_own);
            return NULL;
        }
        k++;
    }
    env[k] = NULL;
    return env;
}

/* ---- the child -------------------------------------------------------- */

static void close_fd(int *fd) {
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Start /bin/sh -c command. On success r->pid, r->out_fd and r->err_fd are
 * set. */
static int spawn_command(exec_run *r, const char *command, char **env, char *err, size_t errlen) {
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "exec: cannot create pipes: %s", strerror(errno));
        if (devnull >= 0)
            close(devnull);
        for (int i = 0; i < 2; i++) {
            close_fd(&out[i]);
            close_fd(&errp[i]);
        }
        return -1;
    }
    /* Our ends never block: poll() says when to read. */
    fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
    fcntl(errp[0], F_SETFL, fcntl(errp[0], F_GETFL) | O_NONBLOCK);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* dup2 clears close-on-exec on the copies, so only 0, 1 and 2 (and
     * whatever the worker left open without O_CLOEXEC) reach the command. */
    posix_spawn_file_actions_adddup2(&fa, devnull, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    char *argv[] = {"sh", "-c", (char *)command, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(devnull);
    close_fd(&out[1]);
    close_fd(&errp[1]);
    if (rc != 0) {
        snprintf(err, errlen, "exec: cannot start /bin/sh: %s", strerror(rc));
        close_fd(&out[0]);
        close_fd(&errp[0]);
        return -1;
    }
    r->pid = pid;
    r->out_fd = out[0];
    r->err_fd = errp[0];
    return 0;
}

/* ---- stderr ----------------------------------------------------------- */

static void emit_line(exec_run *r) {
    r->line[r->line_len] = '\0';
    if (r->line_len && r->io->log)
        r->io->log(r->io->ctx, r->line);
    r->line_len = 0;
}

static void take_stderr(exec_run *r, const char *buf, size_t n) {
    /* The tail: the last TAIL_MAX bytes, raw. */
    if (n >= TAIL_MAX) {
        memcpy(r->tail, buf + n - TAIL_MAX, TAIL_MAX);
        r->tail_cut |= r->tail_len > 0 || n > TAIL_MAX;
        r->tail_len = TAIL_MAX;
    } else {
        if (r->tail_len + n > TAIL_MAX) {
            size_t drop = r->tail_len + n - TAIL_MAX;
            memmove(r->tail, r->tail + drop, r->tail_len - drop);
            r->tail_len -= drop;
            r->tail_cut = 1;
        }
        memcpy(r->tail + r->tail_len, buf, n);
        r->tail_len += n;
    }
    /* Lines for the log. '\r' ends a line too (progress meters); other
     * control bytes become spaces so a line is always one printable line. */
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n' || c == '\r') {
            emit_line(r);
            continue;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f)
            c = ' ';
        r->line[r->line_len++] = c;
        if (r->line_len == LINE_MAX_LOG)
            emit_line(r);
    }
}

/* Read what stderr has now (one read). Closes it at end of file. */
static void drain_stderr_once(exec_run *r) {
    char buf[16384];
    ssize_t got = read(r->err_fd, buf, sizeof buf);
    if (got > 0) {
        take_stderr(r, buf, (size_t)got);
    } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_fd(&r->err_fd);
        emit_line(r);
    }
}

/* The stderr tail as one line: newlines become " | ", trailing blank lines
 * dropped, "..." in front when older output was dropped. */
static void tail_text(const exec_run *r, char *out, size_t outlen) {
    size_t end = r->tail_len, start = 0, o = 0;
    while (end > 0 && (r->tail[end - 1] == '\n' || r->tail[end - 1] == '\r' ||
                       r->tail[end - 1] == ' '))
        end--;
    while (start < end && (r->tail[start] == '\n' || r->tail[start] == '\r'))
        start++;
    if (outlen == 0)
        return;
    if (r->tail_cut && start < end && o + 4 < outlen) {
        memcpy(out, "...", 3);
        o = 3;
    }
    for (size_t i = start; i < end && o + 4 < outlen; i++) {
        char c = r->tail[i];
        if (c == '\n' || c == '\r') {
            if (o >= 3 && memcmp(out + o - 3, " | ", 3) == 0)
                continue;
            memcpy(out + o, " | ", 3);
            o += 3;
        } else {
            out[o++] = (unsigned char)c < 0x20 || c == 0x7f ? ' ' : c;
        }
    }
    out[o] = '\0';
}

/* ---- waiting ---------------------------------------------------------- */

static int stop_requested(const exec_run *r) {
    return r->io->stop && atomic_load(r->io->stop) != 0;
}

/* Has the child exited? Leaves it unreaped (a zombie) so that its pid and
 * process group id stay ours until reap(). */
static int has_exited(exec_run *r) {
    if (r->gone)
        return 1;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
        /* Reaped elsewhere (a careless SIGCHLD handler): nothing to wait
         * for, and its pid may already belong to someone else. */
        r->gone = errno == ECHILD;
        return r->gone;
    }
    return si.si_pid == r->pid;
}

/* Signal the command's process group, unless its ids may have been
 * reused. */
static void signal_group(const exec_run *r, int sig) {
    if (!r->gone)
        kill(-r->pid, sig);
}

/* Wait up to ms for the child to exit, reading stderr meanwhile. Returns 1
 * when it exited, 0 when the time ran out, -1 when a stop was requested
 * (only if watch_stop). */
static int wait_exit(exec_run *r, uint64_t ms, int watch_stop) {
    uint64_t until = rf_mono_ms() + ms;
    int nap = 1;
    for (;;) {
        if (has_exited(r))
            return 1;
        if (watch_stop && stop_requested(r))
            return -1;
        uint64_t now = rf_mono_ms();
        if (now >= until)
            return 0;
        uint64_t left = until - now;
        if (r->err_fd >= 0) {
            /* stderr usually reaches end of file as the child exits. */
            struct pollfd p = {.fd = r->err_fd, .events = POLLIN};
            int t = left < STOP_SLICE_MS ? (int)left : STOP_SLICE_MS;
            if (poll(&p, 1, t) > 0)
                drain_stderr_once(r);
        } else {
            /* stderr is closed, or held open by a grandchild: look again
             * soon, backing off to 20 ms. */
            int t = left < (uint64_t)nap ? (int)left : nap;
            poll(NULL, 0, t);
            if (nap < 20)
                nap *= 2;
        }
    }
}

/* SIGTERM the process group, SIGKILL it KILL_GRACE_MS later if the
 * command has not exited by then. */
static void terminate(exec_run *r) {
    r->terminated = 1;
    signal_group(r, SIGTERM);
    if (wait_exit(r, KILL_GRACE_MS, 0) != 1)
        signal_group(r, SIGKILL);
}

/* Kill whatever is left in the group (the leader has exited, but children
 * it left behind may hold our pipes), reap the leader, close our ends.
 * Returns the wait status, or -1 if it was unavailable. */
static int reap(exec_run *r) {
    signal_group(r, SIGKILL);
    int status = -1;
    while (!r->gone && waitpid(r->pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = -1;
            break;
        }
    }
    if (r->err_fd >= 0) {
        /* Whatever the command wrote last, without waiting for more. */
        for (int i = 0; i < 64 && r->err_fd >= 0; i++) {
            struct pollfd p = {.fd = r->err_fd, .events = POLLIN};
            if (poll(&p, 1, 0) <= 0)
                break;
            drain_stderr_once(r);
        }
        emit_line(r);
    }
    close_fd(&r->out_fd);
    close_fd(&r->err_fd);
    return status;
}

/* The Y4M reader's read callback: bytes from the child's stdout, serving
 * stderr while it waits, until the deadline or a stop request. */
static ssize_t read_stdout(void *ctx, void *buf, size_t n, char *err, size_t errlen) {
    exec_run *r = ctx;
    for (;;) {
        if (stop_requested(r)) {
            r->stopped = 1;
            snprintf(err, errlen, "stopped");
            return -1;
        }
        uint64_t now = rf_mono_ms();
        if (now >= r->deadline_ms) {
            r->timed_out = 1;
            snprintf(err, errlen, "command timed out after %g s", r->timeout_s);
            return -1;
        }
        uint64_t left = r->deadline_ms - now;
        struct pollfd p[2] = {{.fd = r->out_fd, .events = POLLIN},
                              {.fd = r->err_fd, .events = POLLIN}};
        int rc = poll(p, 2, left < STOP_SLICE_MS ? (int)left : STOP_SLICE_MS);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "exec: poll: %s", strerror(errno));
            return -1;
        }
        if (rc == 0 && !r->leftovers_killed && has_exited(r)) {
            /* The command has exited but stdout has not ended: a process
             * it left in the background holds the pipe. The command is
             * done, so kill what it left (buffered output stays readable)
             * rather than wait for the leftover until the deadline. */
            signal_group(r, SIGKILL);
            r->leftovers_killed = 1;
        }
        if (r->err_fd >= 0 && p[1].revents)
            drain_stderr_once(r);
        if (p[0].revents) {
            ssize_t got = read(r->out_fd, buf, n);
            if (got == 0)
                r->out_eof = 1;
            if (got >= 0)
                return got;
            if (errno == EAGAIN || errno == EINTR)
                continue;
            snprintf(err, errlen, "exec: reading the command's output: %s", strerror(errno));
            return -1;
        }
    }
}

/* ---- the segment ------------------------------------------------------ */

/* Read and deliver the frames. Returns 0 when exactly seg->frames came and
 * the stream ended; -1 with a reason otherwise. *abandoned is set when we
 * stopped reading before the command finished writing (its death by a
 * closed pipe is then our doing, not its failure). */
static int pump_frames(exec_run *r, const engine_segment *seg, int *abandoned, char *err,
                       size_t errlen) {
    char rerr[512] = "";
    rf_y4m_reader *rd = NULL;
    uint8_t *buf = NULL;
    uint32_t got = 0;
    int rc = -1;
    *abandoned = 1;
    if (rf_y4m_reader_new(read_stdout, r, &rd, rerr, sizeof rerr) != 0) {
        if (r->stopped || r->timed_out)
            snprintf(err, errlen, "%s", rerr);
        else
            snprintf(err, errlen, "command output: %s", rerr);
        *abandoned = !r->out_eof;
        goto out;
    }
    const rf_y4m_info *info = rf_y4m_reader_info(rd);
    if (info->width != seg->width || info->height != seg->height) {
        snprintf(err, errlen, "command wrote %ux%u frames, the segment is %ux%u", info->width,
                 info->height, seg->width, seg->height);
        goto out;
    }
    buf = malloc(info->frame_bytes);
    if (!buf) {
        snprintf(err, errlen, "exec: out of memory for a %ux%u frame", info->width, info->height);
        goto out;
    }
    for (;;) {
        /* Read straight into the worker's buffer when it lends one: the
         * frame then leaves without another copy. */
        uint8_t *into = r->io->buffer ? r->io->buffer(r->io->ctx, info->frame_bytes) : NULL;
        if (!into)
            into = buf;
        int fr = rf_y4m_read_frame(rd, into, info->frame_bytes, rerr, sizeof rerr);
        if (fr < 0) {
            if (r->stopped || r->timed_out) {
                snprintf(err, errlen, "%s", rerr);
            } else {
                /* A stream that ended inside a frame is short, not ours
                 * to cut. */
                *abandoned = !r->out_eof;
                snprintf(err, errlen, "command produced %u of %u frames (%s)", got, seg->frames,
                         rerr);
            }
            goto out;
        }
        if (fr == 0) {
            *abandoned = 0;
            if (got == seg->frames) {
                rc = 0;
            } else {
                snprintf(err, errlen, "command produced %u of %u frames", got, seg->frames);
            }
            goto out;
        }
        if (got == seg->frames) {
            snprintf(err, errlen, "command produced more than %u frames", seg->frames);
            goto out;
        }
        uint32_t f = seg->first_frame + got;
        if (r->io->frame && r->io->frame(r->io->ctx, f, into, info->frame_bytes) != 0) {
            snprintf(err, errlen, "exec: the frame receiver stopped the segment at frame %u", f);
            goto out;
        }
        got++;
    }
out:
    free(buf);
    rf_y4m_reader_free(rd);
    return rc;
}

int engine_exec_render(const engine_segment *seg, const engine_io *io, char *err, size_t errlen) {
    json_t *root;
    exec_params p;
    char problems[512] = "";
    if (exec_load(seg->params_json, &root, &p, problems, sizeof problems) != 0) {
        json_decref(root);
        problems[strcspn(problems, "\n")] = '\0';
        snprintf(err, errlen, "exec: %s", problems);
        return -1;
    }
    if (io->stop && atomic_load(io->stop)) {
        json_decref(root);
        snprintf(err, errlen, "stopped");
        return -1;
    }
    size_t first_own = 0;
    char **env = env_build(seg, &first_own);
    if (!env) {
        json_decref(root);
        snprintf(err, errlen, "exec: out of memory for the environment");
        return -1;
    }
    exec_run *r = calloc(1, sizeof *r);
    if (!r) {
        env_free(env, first_own);
        json_decref(root);
        snprintf(err, errlen, "exec: out of memory");
        return -1;
    }
    r->io = io;
    r->out_fd = r->err_fd = -1;
    r->timeout_s = p.timeout_s;
    r->deadline_ms = rf_mono_ms() + (uint64_t)(p.timeout_s * 1000.0);
    int rc = spawn_command(r, p.command, env, err, errlen);
    env_free(env, first_own);
    json_decref(root);
    if (rc != 0) {
        free(r);
        return -1;
    }

    char why[1024] = "";
    int abandoned = 0;
    int ok = pump_frames(r, seg, &abandoned, why, sizeof why) == 0;
    if (r->stopped || r->timed_out) {
        terminate(r);
    } else if (abandoned || !ok) {
        /* Our end of stdout closes so a command still writing gets EPIPE;
         * give it a moment to exit on its own (and say why on stderr),
         * then make it. */
        close_fd(&r->out_fd);
        if (wait_exit(r, OWN_EXIT_MS, 1) != 1)
            terminate(r);
    } else {
        /* All frames came and stdout ended: the command should be exiting.
         * Wait for it, within the deadline, watching for a stop. */
        uint64_t now = rf_mono_ms();
        int w = wait_exit(r, r->deadline_ms > now ? r->deadline_ms - now : 0, 1);
        if (w != 1) {
            if (w < 0)
                r->stopped = 1;
            else
                r->timed_out = 1;
            terminate(r);
        }
    }
    int status = reap(r);

    char tail[TAIL_MAX + 64];
    tail_text(r, tail, sizeof tail);
    const char *sep = tail[0] ? ": " : "";
    int exited_bad = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0;
    /* A death by SIGPIPE after we closed its stdout is our doing. */
    int signalled = status != -1 && WIFSIGNALED(status) &&
                    !(abandoned && WTERMSIG(status) == SIGPIPE);
    if (r->stopped) {
        snprintf(err, errlen, "stopped");
    } else if (r->timed_out) {
        snprintf(err, errlen, "command timed out after %g s%s%s", r->timeout_s, sep, tail);
    } else if (!ok && abandoned && (r->terminated || !(exited_bad || signalled))) {
        snprintf(err, errlen, "%s%s%s", why, sep, tail);
    } else if (exited_bad || signalled) {
        /* The command failed; if its output was also wrong, say both,
         * since the exit status may only be its reaction to our closing
         * the pipe. */
        char what[64];
        if (exited_bad)
            snprintf(what, sizeof what, "command exited with status %d", WEXITSTATUS(status));
        else
            snprintf(what, sizeof what, "command killed by signal %d", WTERMSIG(status));
        if (!ok && abandoned)
            snprintf(err, errlen, "%s; %s%s%s", why, what, sep, tail);
        else
            snprintf(err, errlen, "%s%s%s", what, sep, tail);
    } else if (!ok) {
        snprintf(err, errlen, "%s%s%s", why, sep, tail);
    }
    int failed = r->stopped || r->timed_out || !ok ||
                 (status != -1 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    free(r);
    return failed ? -1 : 0;
}
