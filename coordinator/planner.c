/* planner — segments and blend weights. See planner.h for the rules. */
#include "planner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int plan_new(uint32_t frames, uint32_t seg_len, uint32_t overlap, rf_blend_curve curve, plan **out,
             char *err, size_t errlen) {
    *out = NULL;
    if (frames == 0 || seg_len == 0) {
        snprintf(err, errlen, "plan: frames (%u) and segment length (%u) must be positive", frames,
                 seg_len);
        return -1;
    }
    if (overlap >= seg_len) {
        snprintf(err, errlen, "plan: overlap (%u) must be less than the segment length (%u)",
                 overlap, seg_len);
        return -1;
    }
    uint32_t stride = seg_len - overlap;
    size_t n = 1;
    if (frames > seg_len)
        n = (size_t)((frames - seg_len + stride - 1) / stride) + 1;
    plan *p = calloc(1, sizeof *p);
    plan_segment *seg = calloc(n, sizeof *seg);
    if (!p || !seg) {
        free(p);
        free(seg);
        snprintf(err, errlen, "plan: out of memory for %zu segments", n);
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t first = (uint64_t)k * stride;
        uint64_t end = first + seg_len < frames ? first + seg_len : frames;
        seg[k].index = (uint32_t)k;
        seg[k].first = (uint32_t)first;
        seg[k].frames = (uint32_t)(end - first);
    }
    for (size_t k = 0; k + 1 < n; k++) {
        uint32_t shared = seg[k].first + seg[k].frames - seg[k + 1].first;
        seg[k].tail = shared;
        seg[k + 1].head = shared;
    }
    p->frames = frames;
    p->seg_len = seg_len;
    p->overlap = overlap;
    p->curve = curve;
    p->n = n;
    p->seg = seg;
    /* Frame f is covered by at most ceil(L / stride) segments. */
    uint32_t cover = (seg_len + stride - 1) / stride;
    p->max_cover = cover < n ? cover : (uint32_t)n;
    *out = p;
    return 0;
}

void plan_free(plan *p) {
    if (!p)
        return;
    free(p->seg);
    free(p);
}

void plan_cover(const plan *p, uint32_t f, size_t *lo, size_t *hi) {
    uint32_t stride = p->seg_len - p->overlap;
    size_t h = f / stride;
    if (h >= p->n)
        h = p->n - 1;
    size_t l = f < p->seg_len ? 0 : (size_t)((f - p->seg_len) / stride) + 1;
    *lo = l;
    *hi = h;
}

static double curve_at(rf_blend_curve c, double x) {
    if (c == RF_BLEND_COSINE)
        return 0.5 - 0.5 * cos(M_PI * x);
    return x;
}

/* Segment s's window at frame f: 1 in its core, ramping over head and tail.
 * The ramp samples x = a/(O+1) for the a-th shared frame, so that the two
 * ramps over one overlap are mirror images and sum to exactly 1. */
static double window(const plan *p, const plan_segment *s, uint32_t f) {
    double w = 1.0;
    uint32_t from_head = f - s->first + 1;       /* 1 .. frames */
    uint32_t from_tail = s->first + s->frames - f; /* frames .. 1 */
    if (s->head && from_head <= s->head)
        w *= curve_at(p->curve, (double)from_head / (s->head + 1));
    if (s->tail && from_tail <= s->tail)
        w *= curve_at(p->curve, (double)from_tail / (s->tail + 1));
    return w;
}

size_t plan_weights(const plan *p, uint32_t f, size_t *lo_out, double *w, uint32_t *q16) {
    size_t lo, hi;
    plan_cover(p, f, &lo, &hi);
    *lo_out = lo;
    size_t n = hi - lo + 1;
    double sum = 0.0;
    double tmp[64];
    double *ww = w ? w : (n <= 64 ? tmp : NULL);
    /* Without a caller buffer and with very many contributors, recompute
     * each window instead of storing it. */
    for (size_t i = 0; i < n; i++) {
        double v = window(p, &p->seg[lo + i], f);
        if (ww)
            ww[i] = v;
        sum += v;
    }
    if (!q16 && !w)
        return n;
    uint64_t qsum = 0;
    size_t biggest = 0;
    double bigw = -1.0;
    for (size_t i = 0; i < n; i++) {
        double v = (ww ? ww[i] : window(p, &p->seg[lo + i], f)) / sum;
        if (w)
            w[i] = v;
        if (q16) {
            q16[i] = (uint32_t)lround(v * 65536.0);
            qsum += q16[i];
        }
        if (v > bigw) {
            bigw = v;
            biggest = i;
        }
    }
    if (q16) {
        /* Rounding may leave the sum a few units off 65536; the largest
         * weight absorbs the difference, which keeps every weight within
         * one unit of its exact value for the two-segment case. */
        int64_t diff = 65536 - (int64_t)qsum;
        q16[biggest] = (uint32_t)((int64_t)q16[biggest] + diff);
    }
    return n;
}

uint32_t plan_ready_until(const plan *p, size_t k) {
    if (k + 1 >= p->n)
        return p->frames;
    return p->seg[k + 1].first;
}
