/* Planner: coverage, exact overlaps and weights that sum to one, for many
 * (frames, segment, overlap) combinations including the edge cases. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blend.h"
#include "planner.h"

static plan *make(uint32_t frames, uint32_t len, uint32_t overlap, rf_blend_curve c) {
    plan *p = NULL;
    char err[256];
    assert_int_equal(plan_new(frames, len, overlap, c, &p, err, sizeof err), 0);
    assert_non_null(p);
    return p;
}

/* Every property the planner promises, checked by brute force. */
static void check_plan(uint32_t frames, uint32_t len, uint32_t overlap, rf_blend_curve curve) {
    plan *p = make(frames, len, overlap, curve);
    uint32_t stride = len - overlap;
    assert_true(p->n >= 1);
    assert_int_equal(p->seg[0].first, 0);
    const plan_segment *last = &p->seg[p->n - 1];
    assert_int_equal(last->first + last->frames, frames); /* ends exactly at the last frame */
    for (size_t k = 0; k < p->n; k++) {
        const plan_segment *s = &p->seg[k];
        assert_int_equal(s->first, k * stride);
        assert_true(s->frames >= 1 && s->frames <= len);
        if (k + 1 < p->n) {
            assert_int_equal(s->frames, len);
            /* overlap with the next is exactly as asked */
            assert_int_equal(s->first + s->frames - p->seg[k + 1].first, overlap);
            assert_int_equal(s->tail, overlap);
            assert_int_equal(p->seg[k + 1].head, overlap);
        }
    }
    if (p->n > 1) {
        /* no wasted segment: the one before last does not reach the end */
        const plan_segment *prev = &p->seg[p->n - 2];
        assert_true(prev->first + prev->frames < frames);
        assert_true(last->frames > overlap);
    }
    uint32_t *q = calloc(p->max_cover, sizeof *q);
    double *w = calloc(p->max_cover, sizeof *w);
    for (uint32_t f = 0; f < frames; f++) {
        size_t lo, hi, lo2;
        plan_cover(p, f, &lo, &hi);
        /* cover agrees with the segments' ranges */
        for (size_t k = 0; k < p->n; k++) {
            int in = f >= p->seg[k].first && f < p->seg[k].first + p->seg[k].frames;
            assert_int_equal(in, k >= lo && k <= hi);
        }
        assert_true(hi - lo + 1 <= p->max_cover);
        size_t n = plan_weights(p, f, &lo2, w, q);
        assert_int_equal(lo2, lo);
        assert_int_equal(n, hi - lo + 1);
        uint64_t qs = 0;
        double ws = 0;
        for (size_t i = 0; i < n; i++) {
            qs += q[i];
            ws += w[i];
            assert_true(w[i] > 0.0);
        }
        assert_int_equal(qs, KN_BLEND_ONE);
        assert_true(fabs(ws - 1.0) < 1e-12);
    }
    free(q);
    free(w);
    plan_free(p);
}

static void test_many_combinations(void **state) {
    (void)state;
    const uint32_t frames[] = {1, 2, 3, 7, 8, 9, 47, 48, 49, 95, 96, 97, 100, 239, 240, 241, 300, 1000};
    const uint32_t lens[] = {1, 2, 3, 8, 16, 48, 97};
    for (size_t a = 0; a < sizeof frames / sizeof *frames; a++)
        for (size_t b = 0; b < sizeof lens / sizeof *lens; b++) {
            uint32_t L = lens[b];
            uint32_t overlaps[] = {0, 1, L / 4, L / 2, L - 1};
            for (size_t c = 0; c < 5; c++) {
                if (overlaps[c] >= L)
                    continue;
                check_plan(frames[a], L, overlaps[c], RF_BLEND_LINEAR);
                check_plan(frames[a], L, overlaps[c], RF_BLEND_COSINE);
            }
        }
}

static void test_edge_cases(void **state) {
    (void)state;
    plan *p = make(1, 48, 8, RF_BLEND_COSINE); /* 1 frame: one segment of 1 */
    assert_int_equal(p->n, 1);
    assert_int_equal(p->seg[0].frames, 1);
    plan_free(p);
    p = make(48, 48, 8, RF_BLEND_COSINE); /* frames = segment: one segment */
    assert_int_equal(p->n, 1);
    plan_free(p);
    p = make(49, 48, 8, RF_BLEND_COSINE); /* frames = segment + 1: two */
    assert_int_equal(p->n, 2);
    assert_int_equal(p->seg[1].first, 40);
    assert_int_equal(p->seg[1].frames, 9);
    plan_free(p);
    p = make(300, 48, 8, RF_BLEND_COSINE);
    assert_int_equal(p->n, 8);
    assert_int_equal(p->seg[7].first, 280);
    assert_int_equal(p->seg[7].frames, 20);
    plan_free(p);
    p = make(100, 10, 9, RF_BLEND_LINEAR); /* overlap = segment - 1: stride 1 */
    assert_int_equal(p->n, 91);
    assert_int_equal(p->max_cover, 10);
    plan_free(p);
    p = make(100, 10, 0, RF_BLEND_LINEAR); /* overlap 0: cuts, one segment per frame */
    assert_int_equal(p->n, 10);
    assert_int_equal(p->max_cover, 1);
    plan_free(p);
}

static void test_linear_weights_values(void **state) {
    (void)state;
    plan *p = make(100, 48, 8, RF_BLEND_LINEAR);
    double w[2];
    size_t lo;
    /* Overlap of segments 0 and 1 is frames 40..47: segment 0 weighs
     * 8/9, 7/9, ... 1/9 across it. */
    for (uint32_t i = 0; i < 8; i++) {
        assert_int_equal(plan_weights(p, 40 + i, &lo, w, NULL), 2);
        assert_int_equal(lo, 0);
        assert_true(fabs(w[0] - (8.0 - i) / 9.0) < 1e-12);
    }
    assert_int_equal(plan_weights(p, 39, &lo, w, NULL), 1);
    assert_int_equal(plan_weights(p, 48, &lo, w, NULL), 1);
    assert_int_equal(lo, 1);
    plan_free(p);
}

static void test_cosine_is_symmetric(void **state) {
    (void)state;
    plan *p = make(100, 48, 8, RF_BLEND_COSINE);
    uint32_t qa[2], qb[2];
    size_t lo;
    for (uint32_t i = 0; i < 8; i++) {
        plan_weights(p, 40 + i, &lo, NULL, qa);
        plan_weights(p, 47 - i, &lo, NULL, qb);
        /* mirror frames swap the weights (to within the rounding unit) */
        assert_true(abs((int)qa[0] - (int)qb[1]) <= 1);
    }
    plan_free(p);
}

static void test_rejects_bad_input(void **state) {
    (void)state;
    plan *p = NULL;
    char err[256];
    assert_int_equal(plan_new(10, 8, 8, RF_BLEND_LINEAR, &p, err, sizeof err), -1);
    assert_null(p);
    assert_non_null(strstr(err, "overlap (8) must be less than the segment length (8)"));
    assert_int_equal(plan_new(0, 8, 1, RF_BLEND_LINEAR, &p, err, sizeof err), -1);
    assert_int_equal(plan_new(10, 0, 0, RF_BLEND_LINEAR, &p, err, sizeof err), -1);
    assert_null(p);
}

/* An engine with frame step q (engine_frame_step) needs every segment to
 * start on a multiple of q and hold q*n + 1 frames. The job spec check
 * accepts exactly the jobs whose frames, segment length and overlap are
 * q*n + 1 (the last two only when the job is cut); the planner's cuts of
 * those, and only those, are on the grid. */
static int on_grid(const plan *p, uint32_t q) {
    for (size_t k = 0; k < p->n; k++)
        if (p->seg[k].first % q != 0 || p->seg[k].frames % q != 1 % q)
            return 0;
    return 1;
}

static void test_frame_step_grid(void **state) {
    (void)state;
    for (uint32_t q = 2; q <= 4; q++)
        for (uint32_t frames = 1; frames <= 120; frames++)
            for (uint32_t len = 1; len <= 40; len++)
                for (uint32_t overlap = 0; overlap < len; overlap++) {
                    plan *p = make(frames, len, overlap, RF_BLEND_LINEAR);
                    int accepted = frames % q == 1 &&
                                   (frames <= len || (len % q == 1 && overlap % q == 1));
                    if (on_grid(p, q) != accepted)
                        fail_msg("q=%u frames=%u len=%u overlap=%u: on grid %d, accepted %d", q,
                                 frames, len, overlap, on_grid(p, q), accepted);
                    plan_free(p);
                }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_combinations), cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_linear_weights_values), cmocka_unit_test(test_cosine_is_symmetric),
        cmocka_unit_test(test_rejects_bad_input), cmocka_unit_test(test_frame_step_grid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
