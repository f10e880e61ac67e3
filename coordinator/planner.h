/* planner — cuts a job's frames into overlapping segments and says, for
 * every output frame, how much each segment's rendering of it weighs.
 *
 * Segment k starts at k*(L-O) and is L frames long, except the last, which
 * ends exactly at the job's last frame (and so may be shorter, but always
 * longer than O). Consecutive segments therefore overlap by exactly O
 * frames everywhere. A job of at most L frames is one segment.
 *
 * Engines that need a frame grid (engine_frame_step q > 1: the dit
 * engine's VAE makes 4n+1 frames from n+1 latent frames) get segments that
 * start on multiples of q and hold q*n + 1 frames from these same rules,
 * exactly when frames, L and O are all q*n + 1 (L and O only matter when
 * the job is cut): the stride L - O is then a multiple of q and the last
 * segment, ending at the job's end, is q*n + 1 long too. The job spec check
 * (rf_spec_opts.frame_step) refuses every other combination, naming the
 * field, so the planner never has to move a cut.
 *
 * Blend weights: each segment has a window that ramps up over its overlap
 * with the previous segment and down over its overlap with the next, by a
 * linear or raised-cosine curve c with c(x) + c(1-x) = 1. A frame's
 * weights are the windows of the segments covering it, normalised to sum
 * to 1. Where two segments meet (O <= L/2) the two ramps are already
 * complementary, so normalising changes nothing; with heavier overlaps
 * (more than two segments on one frame) it keeps the sum at 1. Weights are
 * also given in 16-bit fixed point summing to exactly 65536, the form the
 * blend kernel uses, so that equal inputs blend to exactly themselves.
 */
#ifndef PLANNER_H
#define PLANNER_H

#include <stddef.h>
#include <stdint.h>

#include "rf_spec.h"

typedef struct plan_segment {
    uint32_t index;
    uint32_t first;  /* absolute index of the first frame */
    uint32_t frames; /* length */
    uint32_t head;   /* frames shared with the previous segment (0 for the first) */
    uint32_t tail;   /* frames shared with the next segment (0 for the last) */
} plan_segment;

typedef struct plan {
    uint32_t frames, seg_len, overlap;
    rf_blend_curve curve;
    size_t n;         /* number of segments */
    plan_segment *seg; /* n entries */
    uint32_t max_cover; /* most segments covering any one frame */
} plan;

/* Plan a job. *out is owned by the caller (plan_free). Fails with a reason
 * for frames == 0, seg_len == 0 or overlap >= seg_len. */
int plan_new(uint32_t frames, uint32_t seg_len, uint32_t overlap, rf_blend_curve curve, plan **out,
             char *err, size_t errlen);
void plan_free(plan *p);

/* The segments covering frame f are lo..hi (inclusive). */
void plan_cover(const plan *p, uint32_t f, size_t *lo, size_t *hi);

/* Weights of the segments covering frame f, in order lo..hi: w (may be
 * NULL) as doubles summing to 1, q16 (may be NULL) in fixed point summing
 * to exactly 65536. Both arrays need room for p->max_cover entries.
 * Returns the number of weights (hi - lo + 1) and sets *lo. */
size_t plan_weights(const plan *p, uint32_t f, size_t *lo, double *w, uint32_t *q16);

/* Last frame (exclusive) that can be emitted once segments 0..k are done:
 * the first frame segment k+1 covers, or the job's end for the last. */
uint32_t plan_ready_until(const plan *p, size_t k);

#endif
