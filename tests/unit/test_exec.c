/* test_exec — the exec engine (worker/engine_exec.c) running real
 * commands through /bin/sh.
 *
 * Each case runs a command the way an operator would write it and checks
 * what the farm relies on: the segment reaches the command as RFARM_*
 * variables; exactly the segment's frames come back, at the segment's size,
 * with absolute indices; a failing, silent, oversized, undersized, slow or
 * chatty command ends with a reason a person can act on; a stop or a
 * timeout kills the command's whole process tree; and no child is ever left
 * unreaped (every case ends by checking that this process has no children
 * at all).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "rf_util.h"
#include "stop_later.h"

/* The README's example: FFmpeg's testsrc2 trimmed to the segment's
 * absolute frames, so that any segmentation renders the same frames. */
#define FFMPEG_CMD                                                                                 \
    "ffmpeg -v error -f lavfi -i testsrc2=size=${RFARM_WIDTH}x${RFARM_HEIGHT}:rate=${RFARM_FPS} "  \
    "-vf trim=start_frame=${RFARM_FIRST_FRAME}:end_frame=$((RFARM_FIRST_FRAME+RFARM_FRAMES)),"     \
    "setpts=PTS-STARTPTS -pix_fmt yuv420p -f yuv4mpegpipe -"

/* Writes RFARM_FRAMES black-ish frames of the segment's size with nothing
 * but sh, printf and head: the smallest valid producer. */
#define Y4M_FRAMES(n)                                                                              \
    "printf 'YUV4MPEG2 W%d H%d F24:1 C420jpeg\\n' \"$RFARM_WIDTH\" \"$RFARM_HEIGHT\"; "            \
    "i=0; while [ $i -lt " n " ]; do printf 'FRAME\\n'; "                                         \
    "head -c $((RFARM_WIDTH*RFARM_HEIGHT*3/2)) /dev/zero; i=$((i+1)); done"
#define Y4M_SEGMENT Y4M_FRAMES("$RFARM_FRAMES")

typedef struct capture {
    size_t frame_len;
    uint8_t *pixels; /* up to cap frames */
    size_t cap, n;
    uint32_t first_index, last_index;
    int indices_in_order;
    size_t log_lines, log_bytes;
    int stop_after; /* the frame callback asks to stop after this many */
} capture;

static int on_frame(void *ctx, uint32_t abs_frame, const uint8_t *pixels, size_t len) {
    capture *c = ctx;
    assert_int_equal(len, c->frame_len);
    if (c->n == 0)
        c->first_index = abs_frame;
    else if (abs_frame != c->last_index + 1)
        c->indices_in_order = 0;
    c->last_index = abs_frame;
    if (c->n < c->cap)
        memcpy(c->pixels + c->n * len, pixels, len);
    c->n++;
    return c->stop_after && (int)c->n >= c->stop_after;
}

static void on_log(void *ctx, const char *line) {
    capture *c = ctx;
    assert_null(strchr(line, '\n'));
    c->log_lines++;
    c->log_bytes += strlen(line);
}

typedef struct run {
    int rc;
    char err[4096];
    capture cap;
    uint64_t ms;
} run;

typedef struct segment_opts {
    uint32_t first, frames, width, height, fps_num, fps_den;
    uint64_t seed;
    const char *prompt;
    atomic_int *stop;
    size_t keep; /* frames to keep pixels of */
    int stop_after;
} segment_opts;

/* Run `params` (a JSON object text) on a segment. The caller frees
 * r->cap.pixels. */
static void exec_run(run *r, const char *params, segment_opts o) {
    if (!o.width)
        o.width = 16;
    if (!o.height)
        o.height = 8;
    if (!o.fps_num) {
        o.fps_num = 24;
        o.fps_den = 1;
    }
    memset(r, 0, sizeof *r);
    r->cap.frame_len = rf_i420_bytes(o.width, o.height);
    r->cap.cap = o.keep;
    r->cap.pixels = malloc(r->cap.frame_len * (o.keep ? o.keep : 1));
    r->cap.indices_in_order = 1;
    r->cap.stop_after = o.stop_after;
    assert_non_null(r->cap.pixels);
    engine_segment seg = {.job_id = "job-exec-test",
                          .segment = 3,
                          .attempt = 2,
                          .first_frame = o.first,
                          .frames = o.frames,
                          .job_frames = 1000,
                          .width = o.width,
                          .height = o.height,
                          .fps_num = o.fps_num,
                          .fps_den = o.fps_den,
                          .seed = o.seed,
                          .prompt = o.prompt ? o.prompt : "",
                          .params_json = params};
    engine_io io = {.frame = on_frame, .log = on_log, .ctx = &r->cap, .stop = o.stop};
    uint64_t t0 = rf_mono_ms();
    r->rc = engine_render("exec", &seg, &io, r->err, sizeof r->err);
    r->ms = rf_mono_ms() - t0;
}

/* A command as params JSON. */
static char *params_for(const char *command, int timeout_s) {
    size_t cap = strlen(command) * 2 + 64;
    char *p = malloc(cap);
    assert_non_null(p);
    size_t o = (size_t)snprintf(p, cap, "{\"command\": \"");
    for (const char *c = command; *c; c++) {
        if (*c == '"' || *c == '\\')
            p[o++] = '\\';
        p[o++] = *c;
    }
    if (timeout_s)
        snprintf(p + o, cap - o, "\", \"timeout_s\": %d}", timeout_s);
    else
        snprintf(p + o, cap - o, "\"}");
    return p;
}

/* This process has no children left: nothing unreaped, nothing running. */
static void assert_no_children(void) {
    int status;
    errno = 0;
    assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void run_cmd(run *r, const char *command, int timeout_s, segment_opts o) {
    char *params = params_for(command, timeout_s);
    exec_run(r, params, o);
    free(params);
    assert_no_children();
}

static int have_ffmpeg(void) {
    return system("ffmpeg -version >/dev/null 2>&1") == 0;
}

/* The README's command delivers exactly the segment's frames, and they are
 * the same frames a whole-job run delivers at those indices. */
static void test_ffmpeg_testsrc2(void **state) {
    (void)state;
    if (!have_ffmpeg())
        skip();
    assert_no_children(); /* system() reaped its shell */
    run whole, part;
    run_cmd(&whole, FFMPEG_CMD, 60,
            (segment_opts){.first = 0, .frames = 48, .width = 64, .height = 48, .fps_num = 30000,
                           .fps_den = 1001, .keep = 48});
    assert_int_equal(whole.rc, 0);
    assert_int_equal(whole.cap.n, 48);
    run_cmd(&part, FFMPEG_CMD, 60,
            (segment_opts){.first = 40, .frames = 8, .width = 64, .height = 48, .fps_num = 30000,
                           .fps_den = 1001, .keep = 8});
    assert_int_equal(part.rc, 0);
    assert_int_equal(part.cap.n, 8);
    assert_int_equal(part.cap.first_index, 40);
    assert_int_equal(part.cap.last_index, 47);
    assert_true(part.cap.indices_in_order);
    assert_memory_equal(whole.cap.pixels + 40 * whole.cap.frame_len, part.cap.pixels,
                        8 * part.cap.frame_len);
    /* The segment really starts at frame 40, not at the source's start. */
    assert_memory_not_equal(whole.cap.pixels, part.cap.pixels, part.cap.frame_len);
    free(whole.cap.pixels);
    free(part.cap.pixels);
}

/* Every RFARM_* variable reaches the command; the worker's own environment
 * does too, except RFARM_* values that the segment replaces. */
static void test_environment(void **state) {
    (void)state;
    setenv("RFARM_SEED", "7", 1);
    setenv("TEST_EXEC_INHERITED", "from-parent", 1);
    const char *cmd =
        "fail() { echo \"bad $1=$2\" >&2; exit 9; }; "
        "[ \"$RFARM_JOB_ID\" = job-exec-test ] || fail JOB_ID \"$RFARM_JOB_ID\"; "
        "[ \"$RFARM_SEGMENT\" = 3 ] || fail SEGMENT \"$RFARM_SEGMENT\"; "
        "[ \"$RFARM_ATTEMPT\" = 2 ] || fail ATTEMPT \"$RFARM_ATTEMPT\"; "
        "[ \"$RFARM_FIRST_FRAME\" = 120 ] || fail FIRST_FRAME \"$RFARM_FIRST_FRAME\"; "
        "[ \"$RFARM_FRAMES\" = 3 ] || fail FRAMES \"$RFARM_FRAMES\"; "
        "[ \"$RFARM_JOB_FRAMES\" = 1000 ] || fail JOB_FRAMES \"$RFARM_JOB_FRAMES\"; "
        "[ \"$RFARM_WIDTH\" = 18 ] || fail WIDTH \"$RFARM_WIDTH\"; "
        "[ \"$RFARM_HEIGHT\" = 32 ] || fail HEIGHT \"$RFARM_HEIGHT\"; "
        "[ \"$RFARM_FPS\" = 30000/1001 ] || fail FPS \"$RFARM_FPS\"; "
        "[ \"$RFARM_FPS_NUM\" = 30000 ] || fail FPS_NUM \"$RFARM_FPS_NUM\"; "
        "[ \"$RFARM_FPS_DEN\" = 1001 ] || fail FPS_DEN \"$RFARM_FPS_DEN\"; "
        "[ \"$RFARM_SEED\" = 18446744073709551615 ] || fail SEED \"$RFARM_SEED\"; "
        "[ \"$RFARM_PROMPT\" = 'a \"cat\" in $HOME; rm -rf /' ] || fail PROMPT \"$RFARM_PROMPT\"; "
        "[ \"$TEST_EXEC_INHERITED\" = from-parent ] || fail INHERITED \"$TEST_EXEC_INHERITED\"; "
        "[ $(env | grep -c '^RFARM_SEED=') = 1 ] || fail SEED_COUNT x; " Y4M_SEGMENT;
    run r;
    run_cmd(&r, cmd, 10,
            (segment_opts){.first = 120, .frames = 3, .width = 18, .height = 32, .fps_num = 30000,
                           .fps_den = 1001, .seed = UINT64_MAX,
                           .prompt = "a \"cat\" in $HOME; rm -rf /"});
    assert_string_equal(r.err, "");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.cap.n, 3);
    assert_int_equal(r.cap.first_index, 120);
    free(r.cap.pixels);

    /* An integer rate is written as one number. */
    run r2;
    run_cmd(&r2, "[ \"$RFARM_FPS\" = 24 ] || exit 5; " Y4M_SEGMENT, 10,
            (segment_opts){.frames = 1, .fps_num = 24, .fps_den = 1});
    assert_int_equal(r2.rc, 0);
    free(r2.cap.pixels);
    unsetenv("RFARM_SEED");
    unsetenv("TEST_EXEC_INHERITED");
}

/* The command starts with default handling of the standard signals and an
 * empty mask even though this process (like the worker) ignores SIGPIPE,
 * with stdin at end of file, and in its own process group. (glibc's
 * posix_spawn leaves its two internal signals, 32 and 33, ignored; no
 * program relies on inheriting those.) */
static void test_child_setup(void **state) {
    (void)state;
    if (access("/proc/self/status", R_OK) != 0)
        skip();
    signal(SIGPIPE, SIG_IGN);
    const char *cmd =
        "ign=$(awk '/^SigIgn/ {print $2}' /proc/$$/status); "
        "blk=$(awk '/^SigBlk/ {print $2}' /proc/$$/status); "
        "[ $((0x$ign & 0x7fffffff)) = 0 ] || { echo \"ignored $ign\" >&2; exit 4; }; "
        "[ \"$blk\" = 0000000000000000 ] || { echo \"blocked $blk\" >&2; exit 4; }; "
        "[ $(ps -o pgid= -p $$) = $$ ] || { echo 'not a group leader' >&2; exit 4; }; "
        "cat >/dev/null; " Y4M_SEGMENT;
    run r;
    run_cmd(&r, cmd, 10, (segment_opts){.frames = 2});
    assert_string_equal(r.err, "");
    assert_int_equal(r.rc, 0);
    signal(SIGPIPE, SIG_DFL);
    free(r.cap.pixels);
}

static void test_failing_command(void **state) {
    (void)state;
    run r;
    run_cmd(&r, "echo boom >&2; exit 3", 10, (segment_opts){.frames = 5});
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "command exited with status 3: boom");
    assert_int_equal(r.cap.log_lines, 1); /* "boom" reached the log */
    free(r.cap.pixels);

    /* Junk on stdout and a failure: both are reported. */
    run r1;
    run_cmd(&r1, "echo starting; echo boom >&2; exit 3", 10, (segment_opts){.frames = 5});
    assert_int_equal(r1.rc, -1);
    assert_non_null(strstr(r1.err, "not a YUV4MPEG2 stream"));
    assert_non_null(strstr(r1.err, "command exited with status 3: boom"));
    free(r1.cap.pixels);

    /* Failing after some frames: still the exit status, not the count. */
    run r2;
    run_cmd(&r2, Y4M_FRAMES("2") "; echo 'CUDA out of memory' >&2; exit 1", 10,
            (segment_opts){.frames = 5});
    assert_int_equal(r2.rc, -1);
    assert_non_null(strstr(r2.err, "status 1"));
    assert_non_null(strstr(r2.err, "CUDA out of memory"));
    assert_int_equal(r2.cap.n, 2);
    free(r2.cap.pixels);

    /* A command that cannot be found is a status 127 with the shell's word. */
    run r3;
    run_cmd(&r3, "no-such-command-rfarm-test", 10, (segment_opts){.frames = 1});
    assert_int_equal(r3.rc, -1);
    assert_non_null(strstr(r3.err, "status 127"));
    assert_non_null(strstr(r3.err, "not found"));
    free(r3.cap.pixels);
}

static void test_killed_by_signal(void **state) {
    (void)state;
    run r;
    run_cmd(&r, "echo 'about to die' >&2; kill -9 $$", 10, (segment_opts){.frames = 5});
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "command killed by signal 9"));
    assert_non_null(strstr(r.err, "about to die"));
    free(r.cap.pixels);
}

static void test_frame_count_must_match(void **state) {
    (void)state;
    run few;
    run_cmd(&few, Y4M_FRAMES("3"), 10, (segment_opts){.frames = 5});
    assert_int_equal(few.rc, -1);
    assert_non_null(strstr(few.err, "command produced 3 of 5 frames"));
    free(few.cap.pixels);

    run none;
    run_cmd(&none, "true", 10, (segment_opts){.frames = 5});
    assert_int_equal(none.rc, -1);
    assert_non_null(strstr(none.err, "empty stream"));
    free(none.cap.pixels);

    run many;
    run_cmd(&many, Y4M_FRAMES("6"), 10, (segment_opts){.frames = 5});
    assert_int_equal(many.rc, -1);
    assert_non_null(strstr(many.err, "command produced more than 5 frames"));
    assert_int_equal(many.cap.n, 5);
    free(many.cap.pixels);

    /* An endless producer is cut off after one frame too many. */
    run endless;
    run_cmd(&endless, Y4M_FRAMES("1000000"), 10, (segment_opts){.frames = 4});
    assert_int_equal(endless.rc, -1);
    assert_non_null(strstr(endless.err, "more than 4 frames"));
    assert_true(endless.ms < 3000);
    free(endless.cap.pixels);

    /* A frame cut short: the count and the reader's reason. */
    run cut;
    run_cmd(&cut, Y4M_FRAMES("2") "; printf 'FRAME\\n'; head -c 10 /dev/zero", 10,
            (segment_opts){.frames = 5});
    assert_int_equal(cut.rc, -1);
    assert_non_null(strstr(cut.err, "command produced 2 of 5 frames"));
    assert_non_null(strstr(cut.err, "10 of 192 bytes"));
    free(cut.cap.pixels);
}

static void test_wrong_output(void **state) {
    (void)state;
    run size;
    run_cmd(&size, "printf 'YUV4MPEG2 W32 H16 F24:1\\n'; sleep 5", 10,
            (segment_opts){.frames = 2, .width = 16, .height = 8});
    assert_int_equal(size.rc, -1);
    assert_non_null(strstr(size.err, "32x16"));
    assert_non_null(strstr(size.err, "16x8"));
    assert_true(size.ms < 1500); /* the command was not waited for */
    free(size.cap.pixels);

    run text;
    run_cmd(&text, "echo 'hello, I am not video'", 10, (segment_opts){.frames = 2});
    assert_int_equal(text.rc, -1);
    assert_non_null(strstr(text.err, "not a YUV4MPEG2 stream"));
    free(text.cap.pixels);

    run chroma;
    run_cmd(&chroma, "printf 'YUV4MPEG2 W16 H8 C444\\n'", 10, (segment_opts){.frames = 2});
    assert_int_equal(chroma.rc, -1);
    assert_non_null(strstr(chroma.err, "C444"));
    free(chroma.cap.pixels);
}

/* sleep 30 under a 1 s timeout ends at 1 s; a command that ignores
 * SIGTERM (and passes that on to its children) is SIGKILLed 2 s later. */
static void test_timeout(void **state) {
    (void)state;
    run r;
    run_cmd(&r, "echo waiting >&2; sleep 30", 1, (segment_opts){.frames = 2});
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "command timed out after 1 s"));
    assert_non_null(strstr(r.err, "waiting"));
    assert_true(r.ms >= 1000);
    assert_true(r.ms < 2500);
    free(r.cap.pixels);

    run ignores_term;
    run_cmd(&ignores_term, "trap '' TERM; sleep 30", 1, (segment_opts){.frames = 2});
    assert_int_equal(ignores_term.rc, -1);
    assert_non_null(strstr(ignores_term.err, "command timed out after 1 s"));
    assert_true(ignores_term.ms >= 3000);
    assert_true(ignores_term.ms < 4500);
    free(ignores_term.cap.pixels);
}

static void test_stop(void **state) {
    (void)state;
    atomic_int stop = 0;
    delayed_stop d = {&stop, 200};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &d), 0);
    run r;
    /* The sleep is a grandchild: the whole group must go. */
    run_cmd(&r, "sleep 30 & sleep 31; wait", 0, (segment_opts){.frames = 2, .stop = &stop});
    pthread_join(t, NULL);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "stopped");
    assert_true(r.ms < 1000);
    free(r.cap.pixels);

    /* A stop already set: the command never starts. */
    run r2;
    run_cmd(&r2, "exit 0", 0, (segment_opts){.frames = 2, .stop = &stop});
    assert_int_equal(r2.rc, -1);
    assert_string_equal(r2.err, "stopped");
    free(r2.cap.pixels);

    /* The frame callback asks to stop: the command is killed. */
    run r3;
    run_cmd(&r3, Y4M_FRAMES("1000000"), 0, (segment_opts){.frames = 100, .stop_after = 3});
    assert_int_equal(r3.rc, -1);
    assert_int_equal(r3.cap.n, 3);
    assert_non_null(strstr(r3.err, "frame 2"));
    free(r3.cap.pixels);
}

/* A megabyte of stderr, before and while frames are written, neither
 * deadlocks nor is lost to the log; the error keeps only the tail. */
static void test_chatty_stderr(void **state) {
    (void)state;
    const char *flood = "head -c 1000000 /dev/zero | tr '\\0' x | fold -w 99 >&2";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s; (%s) & %s; wait", flood, flood, Y4M_SEGMENT);
    run r;
    run_cmd(&r, cmd, 20, (segment_opts){.frames = 30, .width = 64, .height = 48});
    assert_string_equal(r.err, "");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.cap.n, 30);
    assert_int_equal(r.cap.log_bytes, 2000000);
    assert_true(r.cap.log_lines >= 2 * 10101);
    free(r.cap.pixels);

    snprintf(cmd, sizeof cmd, "%s; echo 'the real reason' >&2; exit 2", flood);
    run f;
    run_cmd(&f, cmd, 20, (segment_opts){.frames = 3});
    assert_int_equal(f.rc, -1);
    assert_non_null(strstr(f.err, "status 2: ..."));
    assert_non_null(strstr(f.err, "the real reason"));
    assert_true(strlen(f.err) < 2200);
    free(f.cap.pixels);
}

/* A command that leaves a process behind holding stdout is finished when
 * the shell exits; what it left is killed, not waited for. */
static void test_background_leftover(void **state) {
    (void)state;
    char pidfile[] = "/tmp/test_exec_pid.XXXXXX";
    int fd = mkstemp(pidfile);
    assert_true(fd >= 0);
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sleep 30 & echo $! > %s; %s", pidfile, Y4M_SEGMENT);
    run r;
    run_cmd(&r, cmd, 20, (segment_opts){.frames = 3});
    assert_string_equal(r.err, "");
    assert_int_equal(r.rc, 0);
    assert_true(r.ms < 2000);
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    unlink(pidfile);
    /* Gone, or a zombie waiting for init to reap it. */
    int alive = 1;
    for (int i = 0; i < 100 && alive; i++) {
        char path[64], st[256] = "";
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *s = fopen(path, "r");
        if (!s) {
            alive = kill(pid, 0) == 0;
        } else {
            alive = fgets(st, sizeof st, s) && !strstr(st, ") Z ");
            fclose(s);
        }
        if (alive)
            rf_sleep_ms(10);
    }
    assert_false(alive);
    free(r.cap.pixels);
}

static int check(const char *params, char *errs, size_t errlen) {
    errs[0] = '\0';
    return engine_check_params("exec", params, errs, errlen);
}

static void test_param_validation(void **state) {
    (void)state;
    char errs[1024];
    assert_int_equal(check("{\"command\": \"true\"}", errs, sizeof errs), 0);
    assert_int_equal(check("{\"command\": \"true\", \"timeout_s\": 1}", errs, sizeof errs), 0);
    assert_int_equal(check("{\"command\": \"true\", \"timeout_s\": 604800}", errs, sizeof errs), 0);

    assert_int_equal(check("{}", errs, sizeof errs), 1);
    assert_non_null(strstr(errs, "params.command: required"));
    const char *bad_cmd[] = {"{\"command\": \"\"}", "{\"command\": 5}", "{\"command\": null}",
                             "{\"command\": [\"ls\"]}"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(check(bad_cmd[i], errs, sizeof errs), 1);
        assert_non_null(strstr(errs, "params.command: must be a non-empty string"));
    }
    const char *bad_timeout[] = {"{\"command\": \"x\", \"timeout_s\": 0}",
                                 "{\"command\": \"x\", \"timeout_s\": 0.5}",
                                 "{\"command\": \"x\", \"timeout_s\": 604801}",
                                 "{\"command\": \"x\", \"timeout_s\": \"5\"}"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(check(bad_timeout[i], errs, sizeof errs), 1);
        assert_non_null(strstr(errs, "params.timeout_s: must be a number between 1 and 604800"));
    }
    assert_int_equal(check("{\"command\": \"x\", \"cost_ms\": 5}", errs, sizeof errs), 1);
    assert_non_null(strstr(errs, "params.cost_ms: unknown parameter for engine exec"));

    assert_int_equal(check("{\"timeout_s\": -1, \"foo\": 1}", errs, sizeof errs), 3);
    assert_non_null(strstr(errs, "params.timeout_s: must be a number between 1 and 604800\n"));
    assert_non_null(strstr(errs, "params.foo: unknown parameter for engine exec\n"));
    assert_non_null(strstr(errs, "params.command: required"));

    /* A NUL inside the command could never reach the shell intact. */
    assert_int_equal(check("{\"command\": \"a\\u0000b\"}", errs, sizeof errs), 1);

    assert_int_equal(check("\"ls\"", errs, sizeof errs), 1);
    assert_non_null(strstr(errs, "params: must be a JSON object"));

    /* A render with bad parameters starts nothing. */
    run r;
    exec_run(&r, "{\"command\": \"true\", \"retries\": 3}", (segment_opts){.frames = 1});
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "params.retries: unknown parameter for engine exec"));
    assert_no_children();
    free(r.cap.pixels);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ffmpeg_testsrc2),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_child_setup),
        cmocka_unit_test(test_failing_command),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_frame_count_must_match),
        cmocka_unit_test(test_wrong_output),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_chatty_stderr),
        cmocka_unit_test(test_background_leftover),
        cmocka_unit_test(test_param_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
