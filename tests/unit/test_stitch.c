/* Stitcher: frames come out once each, in order, blended with the
 * planner's weights, whatever order segments become ready in (small
 * segments read from where they were put in pack files shared with other
 * data, big ones from files of their own); spool files are left for the
 * coordinator; failures and cancellations leave no output behind. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

#include "blend.h"
#include "planner.h"
#include "rf_util.h"
#include "rf_y4m.h"
#include "stitch.h"

#define EP "inproc://test-stitch-events"

#define MAX_SEGS 64

typedef struct fixture {
    char dir[64];
    char spool[128], packs[160];
    int64_t tail[3];          /* bytes in packs 1 and 2 */
    spool_loc loc[MAX_SEGS];  /* where write_segment put each segment */
    void *zctx, *pull;
    stitch_pool *pool;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/rfarm-test-stitch-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->spool, sizeof fx->spool, "%s/spool", fx->dir);
    assert_int_equal(rf_mkdirs(fx->spool, 0755), 0);
    snprintf(fx->packs, sizeof fx->packs, "%s/" SPOOL_PACKS_DIR, fx->dir);
    assert_int_equal(rf_mkdirs(fx->packs, 0755), 0);
    fx->zctx = zmq_ctx_new();
    fx->pull = zmq_socket(fx->zctx, ZMQ_PULL);
    assert_int_equal(zmq_bind(fx->pull, EP), 0);
    char err[256];
    assert_int_equal(stitch_pool_new(fx->zctx, EP, 2, KN_C, &fx->pool, err, sizeof err), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    stitch_pool_free(fx->pool);
    zmq_close(fx->pull);
    zmq_ctx_term(fx->zctx);
    rf_rmtree(fx->dir);
    free(fx);
    return 0;
}

static rf_spec make_spec(const fixture *fx, const char *id, uint32_t frames, uint32_t len,
                         uint32_t overlap) {
    rf_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.id, sizeof s.id, "%s", id);
    snprintf(s.engine, sizeof s.engine, "synthetic");
    s.width = 32;
    s.height = 16;
    s.fps_num = 24;
    s.fps_den = 1;
    s.frames = frames;
    s.segment_frames = len;
    s.overlap_frames = overlap;
    s.blend = RF_BLEND_LINEAR;
    snprintf(s.output_path, sizeof s.output_path, "%s/%s.y4m", fx->dir, id);
    s.container = RF_CONTAINER_Y4M;
    s.codec = RF_CODEC_RAWVIDEO;
    return s;
}

/* Pixel value segment k renders for frame f: segments disagree. */
static uint8_t value(uint32_t k, uint32_t f) { return (uint8_t)((f * 2 + k * 37) % 251); }

/* Segment k's frames into the spool as the coordinator puts them: a small
 * one after whatever is in pack 1 or 2 (by k's parity, other jobs' bytes
 * in between), a big one in its own file. Its place goes in fx->loc[k]. */
static void write_segment(fixture *fx, const plan *p, uint32_t k, size_t fb) {
    assert_true(k < MAX_SEGS);
    size_t len = p->seg[k].frames * fb;
    spool_loc loc = {0};
    if (len <= SPOOL_PACK_SEGMENT_MAX) {
        loc.pack = 1 + k % 2;
        fx->tail[loc.pack] += 100; /* someone else's segment */
        loc.off = fx->tail[loc.pack];
        fx->tail[loc.pack] += (int64_t)len;
    }
    char path[512];
    assert_int_equal(spool_loc_path(fx->spool, fx->packs, k, loc, path, sizeof path), 0);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    uint8_t *buf = malloc(fb);
    for (uint32_t i = 0; i < p->seg[k].frames; i++) {
        memset(buf, value(k, p->seg[k].first + i), fb);
        assert_int_equal(pwrite(fd, buf, fb, (off_t)loc.off + (off_t)(i * fb)), (ssize_t)fb);
    }
    free(buf);
    close(fd);
    fx->loc[k] = loc;
}

static void ready(fixture *fx, stitch_job *sj, uint32_t k) {
    stitch_job_ready(sj, k, fx->loc[k]);
}

static stitch_event wait_final(fixture *fx, const char *job, int timeout_ms) {
    stitch_event ev;
    uint64_t end = rf_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        zmq_pollitem_t it = {fx->pull, 0, ZMQ_POLLIN, 0};
        int left = (int)(end - rf_mono_ms());
        assert_true(left > 0);
        if (zmq_poll(&it, 1, left) <= 0)
            continue;
        assert_int_equal(zmq_recv(fx->pull, &ev, sizeof ev, 0), (int)sizeof ev);
        assert_string_equal(ev.job, job);
        if (ev.kind != STITCH_PROGRESS)
            return ev;
    }
}

static ssize_t file_read(void *ctx, void *buf, size_t n, char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    return (ssize_t)fread(buf, 1, n, (FILE *)ctx);
}

/* The video holds each frame once, in order, blended as planned. */
static void check_output(const rf_spec *spec, const plan *p, size_t fb) {
    char err[512];
    FILE *f = fopen(spec->output_path, "rb");
    assert_non_null(f);
    rf_y4m_reader *r;
    assert_int_equal(rf_y4m_reader_new(file_read, f, &r, err, sizeof err), 0);
    uint8_t *buf = malloc(fb);
    uint32_t q[8];
    for (uint32_t fr = 0; fr < p->frames; fr++) {
        assert_int_equal(rf_y4m_read_frame(r, buf, fb, err, sizeof err), 1);
        size_t lo;
        size_t n = plan_weights(p, fr, &lo, NULL, q);
        uint32_t acc = 32768;
        for (size_t i = 0; i < n; i++)
            acc += q[i] * value((uint32_t)(lo + i), fr);
        assert_int_equal(buf[0], acc >> 16);
        assert_int_equal(buf[fb - 1], acc >> 16);
    }
    assert_int_equal(rf_y4m_read_frame(r, buf, fb, err, sizeof err), 0);
    free(buf);
    rf_y4m_reader_free(r);
    fclose(f);
}

static void test_blends_in_order_whatever_the_ready_order(void **state) {
    fixture *fx = *state;
    rf_spec spec = make_spec(fx, "order", 100, 20, 5);
    plan *p;
    char err[512];
    assert_int_equal(plan_new(100, 20, 5, RF_BLEND_LINEAR, &p, err, sizeof err), 0);
    size_t fb = rf_i420_bytes(32, 16);
    stitch_job *sj;
    assert_int_equal(stitch_job_new(fx->pool, &spec, p, fx->spool, fx->packs, &sj, err, sizeof err), 0);
    /* Last segment first: nothing can be emitted until segment 0 is in. */
    for (uint32_t k = (uint32_t)p->n; k-- > 1;) {
        write_segment(fx, p, k, fb);
        ready(fx, sj, k);
    }
    zmq_pollitem_t it = {fx->pull, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, 200), 0);
    write_segment(fx, p, 0, fb);
    ready(fx, sj, 0);
    stitch_event ev = wait_final(fx, "order", 10000);
    assert_int_equal(ev.kind, STITCH_DONE);
    assert_int_equal(ev.frames, 100);
    assert_true(ev.bytes > 100 * fb);

    check_output(&spec, p, fb);

    /* Spool files stay for a restarted coordinator (the coordinator removes
     * them with the job), and no partial output remains. */
    for (uint32_t k = 0; k < p->n; k++) {
        char path[512];
        spool_loc_path(fx->spool, fx->packs, k, fx->loc[k], path, sizeof path);
        assert_int_equal(access(path, F_OK), 0);
    }
    char partial[600];
    snprintf(partial, sizeof partial, "%s.partial", spec.output_path);
    assert_int_equal(access(partial, F_OK), -1);
    stitch_job_free(sj);
    plan_free(p);
}

static void test_missing_spool_file_fails_cleanly(void **state) {
    fixture *fx = *state;
    rf_spec spec = make_spec(fx, "missing", 30, 20, 5);
    plan *p;
    char err[512];
    assert_int_equal(plan_new(30, 20, 5, RF_BLEND_LINEAR, &p, err, sizeof err), 0);
    stitch_job *sj;
    assert_int_equal(stitch_job_new(fx->pool, &spec, p, fx->spool, fx->packs, &sj, err, sizeof err), 0);
    write_segment(fx, p, 0, rf_i420_bytes(32, 16));
    ready(fx, sj, 0);
    /* Said ready, but its bytes are not there: past the end of a pack
     * that exists. */
    fx->loc[1] = (spool_loc){.pack = 1, .off = 1 << 20};
    ready(fx, sj, 1);
    stitch_event ev = wait_final(fx, "missing", 10000);
    assert_int_equal(ev.kind, STITCH_FAILED);
    assert_non_null(strstr(ev.msg, "segment 1"));
    assert_non_null(strstr(ev.msg, "short"));
    assert_int_equal(access(spec.output_path, F_OK), -1);
    char partial[600];
    snprintf(partial, sizeof partial, "%s.partial", spec.output_path);
    assert_int_equal(access(partial, F_OK), -1);
    stitch_job_free(sj);
    plan_free(p);
}

/* A job whose segments (20 frames of 128x96, overlapping by 5) are too
 * big for a pack, so each has a file of its own, which the stitcher maps;
 * every segment's file is written, none said ready. Returns the frame
 * size. */
static size_t own_files_job(fixture *fx, const char *id, uint32_t frames, rf_spec *spec, plan **p,
                            stitch_job **sj) {
    char err[512];
    *spec = make_spec(fx, id, frames, 20, 5);
    spec->width = 128;
    spec->height = 96;
    size_t fb = rf_i420_bytes(128, 96);
    assert_true(20 * fb > SPOOL_PACK_SEGMENT_MAX);
    assert_int_equal(plan_new(frames, 20, 5, RF_BLEND_LINEAR, p, err, sizeof err), 0);
    assert_int_equal(stitch_job_new(fx->pool, spec, *p, fx->spool, fx->packs, sj, err, sizeof err),
                     0);
    for (uint32_t k = 0; k < (*p)->n; k++) {
        write_segment(fx, *p, k, fb);
        assert_int_equal(fx->loc[k].pack, 0);
    }
    return fb;
}

/* The job failed, its message saying each of `says`, and left no output
 * and no partial output. */
static void check_failed_cleanly(fixture *fx, const rf_spec *spec, const char *const *says) {
    stitch_event ev = wait_final(fx, spec->id, 10000);
    assert_int_equal(ev.kind, STITCH_FAILED);
    for (; *says; says++)
        assert_non_null(strstr(ev.msg, *says));
    assert_int_equal(access(spec->output_path, F_OK), -1);
    char partial[600];
    snprintf(partial, sizeof partial, "%s.partial", spec->output_path);
    assert_int_equal(access(partial, F_OK), -1);
}

/* Segments of more than SPOOL_PACK_SEGMENT_MAX have files of their own,
 * which the stitcher maps instead of reading: the same video, overlaps
 * blended from two mapped files. */
static void test_own_files_blend_in_order(void **state) {
    fixture *fx = *state;
    rf_spec spec;
    plan *p;
    stitch_job *sj;
    size_t fb = own_files_job(fx, "own", 50, &spec, &p, &sj);
    for (uint32_t k = (uint32_t)p->n; k-- > 0;) /* last first */
        ready(fx, sj, k);
    stitch_event ev = wait_final(fx, "own", 10000);
    assert_int_equal(ev.kind, STITCH_DONE);
    assert_int_equal(ev.frames, 50);
    check_output(&spec, p, fb);
    stitch_job_free(sj);
    plan_free(p);
}

/* A segment's own file shorter than its frames: the job fails, naming the
 * segment, its file and what it holds, and leaves no output. */
static void test_short_own_file_fails_cleanly(void **state) {
    fixture *fx = *state;
    rf_spec spec;
    plan *p;
    stitch_job *sj;
    size_t fb = own_files_job(fx, "shortfile", 35, &spec, &p, &sj);
    char path[512];
    assert_int_equal(spool_loc_path(fx->spool, fx->packs, 1, fx->loc[1], path, sizeof path), 0);
    assert_int_equal(truncate(path, (off_t)(3 * fb)), 0);
    for (uint32_t k = 0; k < p->n; k++)
        ready(fx, sj, k);
    check_failed_cleanly(fx, &spec, (const char *const[]){"segment 1", path, "holds", NULL});
    stitch_job_free(sj);
    plan_free(p);
}

/* Whether this kernel and C library can populate a file mapping (Linux
 * 5.14, glibc 2.35): without, the stitcher reads every file with pread. */
static int populate_works(fixture *fx) {
    char path[600];
    snprintf(path, sizeof path, "%s/probe", fx->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4096), 0);
    void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    int ok = rf_populate_read(m, 1) == 0;
    munmap(m, 4096);
    close(fd);
    unlink(path);
    return ok;
}

/* A mapped file that shrinks under the stitcher (someone truncated the
 * spool) fails the job with a message; touching the lost pages would have
 * killed the coordinator with SIGBUS. */
static void test_own_file_shrinking_while_mapped_fails_cleanly(void **state) {
    fixture *fx = *state;
    rf_spec spec;
    plan *p;
    stitch_job *sj;
    if (!populate_works(fx))
        skip(); /* the file is read with pread, where it is merely short */
    size_t fb = own_files_job(fx, "shrink", 35, &spec, &p, &sj);
    /* Segment 0 alone: its frames up to the overlap go out (it is mapped
     * now), then the pass runs dry and says how far it got. */
    ready(fx, sj, 0);
    stitch_event ev;
    do {
        zmq_pollitem_t it = {fx->pull, 0, ZMQ_POLLIN, 0};
        assert_int_equal(zmq_poll(&it, 1, 10000), 1);
        assert_int_equal(zmq_recv(fx->pull, &ev, sizeof ev, 0), (int)sizeof ev);
        assert_int_equal(ev.kind, STITCH_PROGRESS);
    } while (ev.frames < 15);
    assert_int_equal(ev.frames, 15);
    char path[512];
    assert_int_equal(spool_loc_path(fx->spool, fx->packs, 0, fx->loc[0], path, sizeof path), 0);
    assert_int_equal(truncate(path, (off_t)(10 * fb)), 0);
    for (uint32_t k = 1; k < p->n; k++)
        ready(fx, sj, k);
    check_failed_cleanly(fx, &spec, (const char *const[]){"segment 0", "shrank", NULL});
    stitch_job_free(sj);
    plan_free(p);
}

static void test_free_midway_leaves_nothing(void **state) {
    fixture *fx = *state;
    rf_spec spec = make_spec(fx, "midway", 60, 20, 5);
    plan *p;
    char err[512];
    assert_int_equal(plan_new(60, 20, 5, RF_BLEND_LINEAR, &p, err, sizeof err), 0);
    stitch_job *sj;
    assert_int_equal(stitch_job_new(fx->pool, &spec, p, fx->spool, fx->packs, &sj, err, sizeof err), 0);
    write_segment(fx, p, 0, rf_i420_bytes(32, 16));
    ready(fx, sj, 0);
    rf_sleep_ms(200); /* the first frames are written to the partial file */
    stitch_job_free(sj);
    char partial[600];
    snprintf(partial, sizeof partial, "%s.partial", spec.output_path);
    assert_int_equal(access(partial, F_OK), -1);
    assert_int_equal(access(spec.output_path, F_OK), -1);
    plan_free(p);
}

/* A 150-frame 640x480 job (segments of 24 overlapping by 4) whose passes
 * take long enough for segments to become ready during them: its spool
 * files written, its stitch job made, nothing ready yet. */
typedef struct big_job {
    rf_spec spec;
    plan *p;
    size_t fb;
    stitch_job *sj;
} big_job;

static void big_job_new(fixture *fx, const char *id, big_job *b) {
    b->spec = make_spec(fx, id, 150, 24, 4);
    b->spec.width = 640;
    b->spec.height = 480;
    char err[512];
    assert_int_equal(plan_new(150, 24, 4, RF_BLEND_LINEAR, &b->p, err, sizeof err), 0);
    b->fb = rf_i420_bytes(b->spec.width, b->spec.height);
    for (uint32_t k = 0; k < b->p->n; k++)
        write_segment(fx, b->p, k, b->fb);
    assert_int_equal(stitch_job_new(fx->pool, &b->spec, b->p, fx->spool, fx->packs, &b->sj, err,
                                    sizeof err), 0);
}

static void big_job_free(big_job *b) {
    stitch_job_free(b->sj);
    plan_free(b->p);
}

/* Regression: segments that become ready while a pass is running leave the
 * job queued; a second pool thread must not take it and run a pass of the
 * same job at the same time (two threads inside one x264 context crashed
 * the coordinator). Segments marked ready a millisecond apart, each pass
 * taking longer than that, keep the job queued while busy most of the
 * time; every frame must still come out once, in order. */
static void test_one_thread_per_job_when_ready_during_a_pass(void **state) {
    fixture *fx = *state;
    big_job b;
    big_job_new(fx, "busy", &b);
    for (uint32_t k = 0; k < b.p->n; k++) {
        ready(fx, b.sj, k);
        rf_sleep_ms(1);
    }
    stitch_event ev = wait_final(fx, "busy", 60000);
    assert_int_equal(ev.kind, STITCH_DONE);
    assert_int_equal(ev.frames, 150);
    check_output(&b.spec, b.p, b.fb);
    big_job_free(&b);
}

/* A job queued again while the pass that finishes it runs (a segment
 * reported ready again, as a burst of commits can) ends once: one DONE,
 * no second pass that would find its output moved already and fail. */
static void test_finished_job_queued_again_ends_once(void **state) {
    fixture *fx = *state;
    big_job b;
    big_job_new(fx, "again", &b);
    for (uint32_t k = 0; k < b.p->n; k++)
        ready(fx, b.sj, k);
    for (int i = 0; i < 30; i++) {
        rf_sleep_ms(1);
        ready(fx, b.sj, (uint32_t)b.p->n - 1);
    }
    stitch_event ev = wait_final(fx, "again", 60000);
    assert_int_equal(ev.kind, STITCH_DONE);
    check_output(&b.spec, b.p, b.fb);
    /* Nothing after the end but progress. */
    uint64_t end = rf_mono_ms() + 300;
    while (rf_mono_ms() < end) {
        zmq_pollitem_t it = {fx->pull, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        assert_int_equal(zmq_recv(fx->pull, &ev, sizeof ev, 0), (int)sizeof ev);
        assert_int_equal(ev.kind, STITCH_PROGRESS);
    }
    big_job_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blends_in_order_whatever_the_ready_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_spool_file_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_files_blend_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_own_file_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_file_shrinking_while_mapped_fails_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_free_midway_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_thread_per_job_when_ready_during_a_pass, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_finished_job_queued_again_ends_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
