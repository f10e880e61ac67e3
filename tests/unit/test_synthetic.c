/* test_synthetic — the synthetic test/benchmark engine
 * (worker/engine_synthetic.c), through the engine table (worker/engine.c).
 *
 * What the farm relies on: a frame is a pure function of (seed, frame,
 * segment); at disagreement 0 it does not depend on the segment at all, so
 * overlapping segments agree to the byte; at disagreement > 0 neighbours
 * differ, reproducibly; cost_ms slows it down like a model would and a
 * stop request still ends it quickly; bad parameters are refused with a
 * message that names the parameter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "rf_util.h"
#include "stop_later.h"

/* Frames as delivered: pixels of every frame in order, and their indices. */
typedef struct capture {
    uint8_t *pixels;
    size_t frame_len, cap_frames, n;
    uint32_t indices[256];
    int stop_after;     /* ask the engine to stop after this many (0: never) */
    atomic_int *set_stop; /* set this flag after the first frame */
} capture;

static int on_frame(void *ctx, uint32_t abs_frame, const uint8_t *pixels, size_t len) {
    capture *c = ctx;
    assert_int_equal(len, c->frame_len);
    assert_true(c->n < c->cap_frames);
    memcpy(c->pixels + c->n * len, pixels, len);
    c->indices[c->n++] = abs_frame;
    if (c->set_stop)
        atomic_store(c->set_stop, 1);
    return c->stop_after && (int)c->n >= c->stop_after;
}

typedef struct run {
    int rc;
    char err[512];
    capture cap;
    uint64_t ms;
} run;

/* Render frames [first, first + frames) of segment `segment` at w x h. The
 * caller frees r->cap.pixels. */
static void render(run *r, uint32_t w, uint32_t h, uint64_t seed, uint32_t segment, uint32_t first,
                   uint32_t frames, const char *params, atomic_int *stop) {
    r->cap.frame_len = rf_i420_bytes(w, h);
    r->cap.cap_frames = frames;
    r->cap.pixels = malloc(r->cap.frame_len * (frames ? frames : 1));
    assert_non_null(r->cap.pixels);
    engine_segment seg = {.job_id = "job-test",
                          .segment = segment,
                          .attempt = 1,
                          .first_frame = first,
                          .frames = frames,
                          .job_frames = first + frames,
                          .width = w,
                          .height = h,
                          .fps_num = 24,
                          .fps_den = 1,
                          .seed = seed,
                          .prompt = "",
                          .params_json = params};
    engine_io io = {.frame = on_frame, .ctx = &r->cap, .stop = stop};
    uint64_t t0 = rf_mono_ms();
    r->rc = engine_render("synthetic", &seg, &io, r->err, sizeof r->err);
    r->ms = rf_mono_ms() - t0;
}

static const uint8_t *frame_of(const run *r, size_t i) {
    return r->cap.pixels + i * r->cap.frame_len;
}

static void test_same_inputs_same_bytes(void **state) {
    (void)state;
    run a = {0}, b = {0}, c = {0};
    render(&a, 64, 48, 7, 2, 100, 12, "{\"disagreement\": 0.7}", NULL);
    render(&b, 64, 48, 7, 2, 100, 12, "{\"disagreement\": 0.7}", NULL);
    render(&c, 64, 48, 8, 2, 100, 12, "{\"disagreement\": 0.7}", NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(c.rc, 0);
    assert_memory_equal(a.cap.pixels, b.cap.pixels, 12 * a.cap.frame_len);
    /* Another seed is another video. */
    assert_memory_not_equal(a.cap.pixels, c.cap.pixels, a.cap.frame_len);
    /* A retry (another attempt) or a job of another length renders the
     * same bytes: only seed, frame and segment count. */
    capture again = {.frame_len = a.cap.frame_len, .cap_frames = 12};
    again.pixels = malloc(12 * again.frame_len);
    assert_non_null(again.pixels);
    engine_segment seg = {.job_id = "other-job", .segment = 2, .attempt = 5, .first_frame = 100,
                          .frames = 12, .job_frames = 5000, .width = 64, .height = 48,
                          .fps_num = 30000, .fps_den = 1001, .seed = 7, .prompt = "a prompt",
                          .params_json = "{\"cost_ms\": 0, \"disagreement\": 0.7}"};
    engine_io io = {.frame = on_frame, .ctx = &again};
    char err[256];
    assert_int_equal(engine_render("synthetic", &seg, &io, err, sizeof err), 0);
    assert_memory_equal(a.cap.pixels, again.pixels, 12 * a.cap.frame_len);
    free(again.pixels);
    /* And the video moves: consecutive frames differ. */
    for (size_t i = 1; i < 12; i++)
        assert_memory_not_equal(frame_of(&a, i - 1), frame_of(&a, i), a.cap.frame_len);
    free(a.cap.pixels);
    free(b.cap.pixels);
    free(c.cap.pixels);
}

/* The worker lends its buffers (engine_io.buffer): every frame is drawn
 * whole into the buffer lent for it (poisoned beforehand) and delivered
 * from there, with the same bytes as when drawing into the engine's own. */
typedef struct lender {
    capture cap;
    uint8_t *buf;
    size_t asked, from_lent;
} lender;

static uint8_t *lend(void *ctx, size_t len) {
    lender *l = ctx;
    assert_int_equal(len, l->cap.frame_len);
    memset(l->buf, 0xAA, len);
    l->asked++;
    return l->buf;
}

static int on_lent_frame(void *ctx, uint32_t abs_frame, const uint8_t *pixels, size_t len) {
    lender *l = ctx;
    l->from_lent += pixels == l->buf;
    return on_frame(&l->cap, abs_frame, pixels, len);
}

static void test_draws_into_lent_buffers(void **state) {
    (void)state;
    run a = {0};
    render(&a, 96, 64, 7, 1, 30, 8, "{\"disagreement\": 0.3}", NULL);
    assert_int_equal(a.rc, 0);
    lender l = {.cap = {.frame_len = a.cap.frame_len, .cap_frames = 8}};
    l.cap.pixels = malloc(8 * l.cap.frame_len);
    l.buf = malloc(l.cap.frame_len);
    assert_non_null(l.cap.pixels);
    assert_non_null(l.buf);
    engine_segment seg = {.job_id = "job-test", .segment = 1, .attempt = 1, .first_frame = 30,
                          .frames = 8, .job_frames = 38, .width = 96, .height = 64,
                          .fps_num = 24, .fps_den = 1, .seed = 7, .prompt = "",
                          .params_json = "{\"disagreement\": 0.3}"};
    engine_io io = {.frame = on_lent_frame, .buffer = lend, .ctx = &l};
    char err[256];
    assert_int_equal(engine_render("synthetic", &seg, &io, err, sizeof err), 0);
    assert_int_equal(l.asked, 8);
    assert_int_equal(l.from_lent, 8);
    assert_memory_equal(a.cap.pixels, l.cap.pixels, 8 * a.cap.frame_len);
    free(l.buf);
    free(l.cap.pixels);
    free(a.cap.pixels);
}

/* Disagreement 0 (given or by default): frame f is the same bytes
 * whichever segment renders it, so overlaps agree exactly. */
static void test_no_disagreement_segments_agree(void **state) {
    (void)state;
    const char *params[] = {"{}", "{\"disagreement\": 0}", "{\"disagreement\": 0, \"cost_ms\": 0}"};
    for (size_t p = 0; p < 3; p++) {
        run k0 = {0}, k1 = {0}, k7 = {0};
        render(&k0, 96, 64, 99, 0, 0, 48, params[p], NULL);
        render(&k1, 96, 64, 99, 1, 40, 48, params[p], NULL);
        render(&k7, 96, 64, 99, 7, 44, 4, params[p], NULL);
        assert_int_equal(k0.rc, 0);
        assert_int_equal(k1.rc, 0);
        assert_int_equal(k7.rc, 0);
        /* Frames 40..47 are shared by segments 0 and 1; 44..47 also by 7. */
        assert_memory_equal(frame_of(&k0, 40), frame_of(&k1, 0), 8 * k0.cap.frame_len);
        assert_memory_equal(frame_of(&k0, 44), frame_of(&k7, 0), 4 * k0.cap.frame_len);
        free(k0.cap.pixels);
        free(k1.cap.pixels);
        free(k7.cap.pixels);
    }
}

/* Disagreement > 0: neighbours render shared frames differently, every
 * time the same way; disagreement 0 is a third picture. */
static void test_disagreement_differs_but_is_deterministic(void **state) {
    (void)state;
    run a = {0}, b = {0}, a2 = {0}, z = {0};
    render(&a, 96, 64, 5, 3, 120, 8, "{\"disagreement\": 0.4}", NULL);
    render(&b, 96, 64, 5, 4, 120, 8, "{\"disagreement\": 0.4}", NULL);
    render(&a2, 96, 64, 5, 3, 120, 8, "{\"disagreement\": 0.4}", NULL);
    render(&z, 96, 64, 5, 3, 120, 8, "{\"disagreement\": 0}", NULL);
    assert_int_equal(a.rc | b.rc | a2.rc | z.rc, 0);
    for (size_t i = 0; i < 8; i++) {
        assert_memory_not_equal(frame_of(&a, i), frame_of(&b, i), a.cap.frame_len);
        assert_memory_not_equal(frame_of(&a, i), frame_of(&z, i), a.cap.frame_len);
    }
    assert_memory_equal(a.cap.pixels, a2.cap.pixels, 8 * a.cap.frame_len);
    free(a.cap.pixels);
    free(b.cap.pixels);
    free(a2.cap.pixels);
    free(z.cap.pixels);
}

/* Every frame arrives, in order, with its absolute index and the I420 size
 * of the segment, for sizes that are even but not "nice". */
static void test_frame_count_and_sizes(void **state) {
    (void)state;
    const uint32_t sizes[][2] = {{18, 32}, {34, 18}, {2, 2}, {6, 250}, {250, 6}, {1920, 1080}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint32_t w = sizes[s][0], h = sizes[s][1], n = w > 1000 ? 2 : 5;
        run r = {0};
        render(&r, w, h, 3, 1, 1000, n, "{\"disagreement\": 1}", NULL);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.cap.n, n);
        assert_int_equal(r.cap.frame_len, (size_t)w * h + (size_t)w * h / 2);
        for (uint32_t i = 0; i < n; i++)
            assert_int_equal(r.cap.indices[i], 1000 + i);
        /* Samples stay inside the video range. */
        for (size_t i = 0; i < n * r.cap.frame_len; i++) {
            assert_true(r.cap.pixels[i] >= 16);
            assert_true(r.cap.pixels[i] <= 235);
        }
        free(r.cap.pixels);
    }
    run none = {0};
    render(&none, 18, 32, 3, 0, 0, 0, "{}", NULL);
    assert_int_equal(none.rc, 0);
    assert_int_equal(none.cap.n, 0);
    free(none.cap.pixels);
}

static void test_odd_size_refused(void **state) {
    (void)state;
    run r = {0};
    render(&r, 17, 32, 1, 0, 0, 2, "{}", NULL);
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "17x32"));
    assert_int_equal(r.cap.n, 0);
    free(r.cap.pixels);
}

static void test_cost_ms_is_honoured(void **state) {
    (void)state;
    run r = {0};
    render(&r, 32, 32, 1, 0, 0, 5, "{\"cost_ms\": 20}", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.cap.n, 5);
    assert_true(r.ms >= 100);
    assert_true(r.ms < 1000);
    free(r.cap.pixels);
}

/* A stop during a long per-frame cost ends the segment within the 50 ms
 * slice, not at the end of the frame's 10 s. */
static void test_stop_during_cost(void **state) {
    (void)state;
    atomic_int stop = 0;
    delayed_stop d = {&stop, 100};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &d), 0);
    run r = {0};
    render(&r, 32, 32, 1, 0, 0, 3, "{\"cost_ms\": 10000}", &stop);
    pthread_join(t, NULL);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "stopped");
    assert_true(r.ms < 500);
    assert_true(r.cap.n <= 1);
    free(r.cap.pixels);
}

static void test_stop_before_and_between_frames(void **state) {
    (void)state;
    atomic_int stop = 1;
    run r = {0};
    render(&r, 32, 32, 1, 0, 0, 3, "{}", &stop);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "stopped");
    assert_int_equal(r.cap.n, 0);
    free(r.cap.pixels);

    /* Set from the frame callback: no further frame is rendered. */
    atomic_int stop2 = 0;
    run r2 = {0};
    r2.cap.set_stop = &stop2;
    render(&r2, 32, 32, 1, 0, 0, 10, "{}", &stop2);
    assert_int_equal(r2.rc, -1);
    assert_string_equal(r2.err, "stopped");
    assert_int_equal(r2.cap.n, 1);
    free(r2.cap.pixels);
}

/* The frame callback's non-zero return ends the segment as a failure. */
static void test_frame_callback_can_stop(void **state) {
    (void)state;
    run r = {0};
    r.cap.stop_after = 2;
    render(&r, 32, 32, 1, 0, 10, 6, "{}", NULL);
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.cap.n, 2);
    assert_non_null(strstr(r.err, "frame 11"));
    free(r.cap.pixels);
}

/* engine_check_params on `params`: the problem count and the lines. */
static int check(const char *engine, const char *params, char *errs, size_t errlen) {
    errs[0] = '\0';
    return engine_check_params(engine, params, errs, errlen);
}

static void test_param_validation(void **state) {
    (void)state;
    char errs[1024];
    assert_int_equal(check("synthetic", "{}", errs, sizeof errs), 0);
    assert_string_equal(errs, "");
    assert_int_equal(check("synthetic", "{\"disagreement\": 1, \"cost_ms\": 60000}", errs, sizeof errs), 0);
    assert_int_equal(check("synthetic", "{\"disagreement\": 0.25, \"cost_ms\": 2.5}", errs, sizeof errs), 0);

    const char *bad_dis[] = {"{\"disagreement\": 1.01}", "{\"disagreement\": -0.1}",
                             "{\"disagreement\": \"high\"}", "{\"disagreement\": null}",
                             "{\"disagreement\": true}"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(check("synthetic", bad_dis[i], errs, sizeof errs), 1);
        assert_non_null(strstr(errs, "params.disagreement: must be a number between 0 and 1"));
    }
    const char *bad_cost[] = {"{\"cost_ms\": -1}", "{\"cost_ms\": 60001}", "{\"cost_ms\": [5]}"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(check("synthetic", bad_cost[i], errs, sizeof errs), 1);
        assert_non_null(strstr(errs, "params.cost_ms: must be a number between 0 and 60000"));
    }
    assert_int_equal(check("synthetic", "{\"foo\": 1}", errs, sizeof errs), 1);
    assert_non_null(strstr(errs, "params.foo: unknown parameter for engine synthetic"));

    /* Every problem is reported, one line each. */
    assert_int_equal(check("synthetic", "{\"foo\": 1, \"disagreement\": 2, \"cost_ms\": -5}", errs,
                           sizeof errs),
                     3);
    assert_non_null(strstr(errs, "params.foo: unknown parameter for engine synthetic\n"));
    assert_non_null(strstr(errs, "params.disagreement: must be a number between 0 and 1\n"));
    assert_non_null(strstr(errs, "params.cost_ms: must be a number between 0 and 60000\n"));

    /* Not an object, not JSON, a duplicated key. */
    const char *not_object[] = {"[1, 2]", "7", "not json", "", "{\"cost_ms\": 1, \"cost_ms\": 2}"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(check("synthetic", not_object[i], errs, sizeof errs), 1);
        assert_non_null(strstr(errs, "params: must be a JSON object"));
    }

    /* Lines are appended to what errs already holds. */
    strcpy(errs, "earlier: problem\n");
    assert_int_equal(engine_check_params("synthetic", "{\"bar\": 0}", errs, sizeof errs), 1);
    assert_string_equal(errs, "earlier: problem\nparams.bar: unknown parameter for engine synthetic\n");

    /* A key that is not printable does not break the one-line format. */
    assert_int_equal(check("synthetic", "{\"a\\nb\": 0}", errs, sizeof errs), 1);
    assert_non_null(strstr(errs, "params.a?b: unknown parameter"));

    /* A small buffer truncates without overflowing. */
    char small[16] = "";
    assert_int_equal(engine_check_params("synthetic", "{\"foo\": 1}", small, sizeof small), 1);
    assert_true(strlen(small) < sizeof small);
}

static void test_unknown_engine_and_table(void **state) {
    (void)state;
    char errs[256];
    assert_int_equal(check("teleport", "{}", errs, sizeof errs), 1);
    assert_non_null(strstr(errs, "engine: unknown engine 'teleport' (known: synthetic, exec, dit)"));

    const char *const *names = engine_names();
    assert_string_equal(names[0], "synthetic");
    assert_string_equal(names[1], "exec");
    assert_string_equal(names[2], "dit");
    assert_null(names[3]);

    engine_segment seg = {.job_id = "j", .frames = 1, .width = 16, .height = 16, .fps_num = 24,
                          .fps_den = 1, .prompt = "", .params_json = "{}"};
    engine_io io = {0};
    char err[256];
    assert_int_equal(engine_render("teleport", &seg, &io, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown engine 'teleport'"));
}

/* A render with bad parameters fails before drawing, naming the problem. */
static void test_render_refuses_bad_params(void **state) {
    (void)state;
    run r = {0};
    render(&r, 32, 32, 1, 0, 0, 2, "{\"disagreement\": 3}", NULL);
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "params.disagreement"));
    assert_int_equal(r.cap.n, 0);
    free(r.cap.pixels);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_inputs_same_bytes),
        cmocka_unit_test(test_draws_into_lent_buffers),
        cmocka_unit_test(test_no_disagreement_segments_agree),
        cmocka_unit_test(test_disagreement_differs_but_is_deterministic),
        cmocka_unit_test(test_frame_count_and_sizes),
        cmocka_unit_test(test_odd_size_refused),
        cmocka_unit_test(test_cost_ms_is_honoured),
        cmocka_unit_test(test_stop_during_cost),
        cmocka_unit_test(test_stop_before_and_between_frames),
        cmocka_unit_test(test_frame_callback_can_stop),
        cmocka_unit_test(test_param_validation),
        cmocka_unit_test(test_unknown_engine_and_table),
        cmocka_unit_test(test_render_refuses_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
