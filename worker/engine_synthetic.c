/* engine_synthetic — the TEST AND BENCHMARK engine. It renders procedural
 * video so that the farm itself (planning, scheduling, stitching, encoding)
 * can be tested and measured without a model. Nothing it draws is meant to
 * be watched.
 *
 * The picture: a smooth two-axis gradient that drifts, with translucent
 * discs on circular orbits and translucent rectangles bouncing off the
 * frame edges, with anti-aliased edges. No text.
 *
 * Ideas it rests on:
 *
 * - Frame f is a pure function of (seed, f, segment index), computed with
 *   integer arithmetic only (an integer sine, Q8 fixed-point coordinates,
 *   the correctly rounded sqrt). Workers on different machines and libm
 *   versions therefore render the same bytes, which the farm's "same job
 *   spec, same output bytes" rule needs.
 *
 * - "disagreement" (0..1) emulates independently generated segments that
 *   do not quite agree on their shared frames: each segment displaces every
 *   shape and casts the colours, by amounts that are a function of (seed,
 *   segment) scaled by disagreement. At 0 the perturbation is exactly zero,
 *   so frame f is byte-identical whichever segment renders it. The
 *   perturbation's direction turns by a third of a circle (give or take 5%)
 *   from one segment to the next, so two neighbours always differ by about
 *   the same amount, whatever the seed.
 *
 * - Disagreement in luma is carried by displaced shapes only, never by a
 *   global brightness shift. A uniform difference of a level or two between
 *   two renderings does not blend gradually in 8 bits: every pixel rounds
 *   over at the same blend weight, so the whole change lands on one frame
 *   in the middle of the overlap, which is exactly the seam blending is
 *   meant to hide. A displaced shape differs by its full contrast (~40
 *   levels) over a smaller area and fades in many small steps.
 *
 * - The seam test (tests/e2e/test_e2e_seams.py) compares the luma mean
 *   absolute difference between consecutive frames (motion MAD) across
 *   blended overlaps with its median inside segments, so motion must be
 *   steady: discs move on circles and rectangles bounce, both at constant
 *   speed; the gradient drifts by a constant phase per frame over exactly
 *   one period per axis (the mean slope in view never changes); shapes add
 *   to what lies beneath instead of covering it, so an edge's contrast does
 *   not depend on what it crosses; edges are anti-aliased, so sub-pixel
 *   motion is not quantised into bursts. The motion MAD is about 0.95 and
 *   varies by a few per cent from frame to frame. At disagreement 1 the
 *   disagreement MAD is about 2.4 times the motion MAD: a hard cut between
 *   segments stands out (~2.7x the median), an 8-frame blend does not
 *   (~1.3x at worst). Sizes and speeds scale with min(width, height), so
 *   these numbers hold from 18x32 to 1920x1080.
 *
 * - Speed: the background is one look-up table per axis and plane, summed
 *   row by row; shapes are spans added per row; there is no per-pixel
 *   trigonometry or division (about 800 frames/s at 1920x1080 on one core).
 *   cost_ms emulates a slow model by sleeping to a fixed per-frame schedule,
 *   in slices short enough to see a stop request within 50 ms.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_impl.h"
#include "rf_util.h"

#define N_DISCS 4
#define N_RECTS 3
#define N_SHAPES (N_DISCS + N_RECTS)
#define MAX_DIM 16384u
#define STOP_SLICE_US 50000 /* longest sleep between looks at io->stop */
#define TURN_THIRD 0x55555555u

/* Picture constants, in thousandths of S = min(width, height) unless said
 * otherwise. They set the motion MAD and the disagreement MAD; the seam
 * test depends on their ratio (see the header comment). */
#define DISC_R_MIN 70
#define DISC_R_SPAN 40
#define ORBIT_MIN 120
#define ORBIT_SPAN 120
#define DISC_SPEED 11 /* per frame */
#define RECT_HW_MIN 60
#define RECT_HW_SPAN 60
#define RECT_HH_MIN 50
#define RECT_HH_SPAN 50
#define SHAPE_LUMA_MIN 36 /* luma levels a shape adds, not thousandths */
#define SHAPE_LUMA_SPAN 8
#define RECT_VX 8 /* per frame */
#define RECT_VY 6
#define OFFSET_AMP 25    /* shape displacement at disagreement 1 */
#define COLOUR_AMP 2560  /* chroma shift at disagreement 1, Q8 levels */
#define BG_DRIFT 0x00C00000u /* gradient phase step per frame (2^32 a turn) */

typedef struct synth_params {
    uint32_t dis_q16; /* disagreement, 65536 = 1 */
    int64_t cost_us;
} synth_params;

typedef struct shape {
    int disc;
    int32_t y, u, v;       /* what the shape adds to each plane, levels */
    int32_t r;             /* disc radius, Q8 luma pixels */
    int32_t ox, oy, orbit; /* disc orbit centre and radius, Q8 */
    uint32_t ph0, dph;     /* disc orbit angle at frame 0 and per frame */
    int32_t hw, hh;        /* rectangle half sizes, Q8 */
    int64_t px, py, vx, vy; /* rectangle unfolded position at frame 0, velocity */
    int64_t lox, rngx, loy, rngy; /* rectangle bounce ranges for its centre */
    uint32_t psi;          /* direction of this shape's disagreement offset */
} shape;

typedef struct scene {
    uint32_t w, h;
    shape s[N_SHAPES];
    uint32_t bg_ph[6];    /* gradient phases at frame 0: Yx Yy Ux Uy Vx Vy */
    int32_t dx[N_SHAPES], dy[N_SHAPES]; /* this segment's shape offsets, Q8 */
    int32_t du, dv;       /* this segment's colour cast, Q8 levels */
    uint16_t *lut;        /* w + h + 2 * (w/2 + h/2) entries */
} scene;

/* ---- integer helpers ---------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* A reproducible random stream seeded by the job seed. */
typedef struct rng {
    uint64_t state;
} rng;

static uint32_t rng_next(rng *g) {
    g->state = mix64(g->state);
    return (uint32_t)(g->state >> 32);
}

/* Uniform in [lo, lo + span). */
static int32_t rng_range(rng *g, int32_t lo, int32_t span) {
    return span > 0 ? lo + (int32_t)(rng_next(g) % (uint32_t)span) : lo;
}

/* Multiply by a Q-shift fraction, rounding half away from zero, without
 * relying on how >> treats negative numbers. */
static int64_t mul_shift(int64_t a, int64_t b, int shift) {
    int64_t p = a * b;
    int64_t half = (int64_t)1 << (shift - 1);
    return p >= 0 ? (p + half) >> shift : -((-p + half) >> shift);
}

/* sin of a phase (2^32 = one turn) in Q15, by an odd polynomial on the
 * folded quarter wave (error under 0.1%): integer only, so every machine
 * agrees on every bit. */
static int32_t isin(uint32_t phase) {
    int64_t x = (int32_t)phase; /* [-2^31, 2^31): [-pi, pi) */
    if (x > 0x40000000)
        x = 0x80000000ll - x;
    else if (x < -0x40000000)
        x = -0x80000000ll - x;
    int neg = x < 0;
    int64_t u = (neg ? -x : x) >> 15; /* [0, 32768]: [0, pi/2] */
    int64_t u2 = (u * u) >> 15;
    /* sin(pi/2 u) ~ u (A - u^2 (B - C u^2)), A - B + C = 1 */
    const int64_t A = 51472, B = 21167, C = 32768 + 21167 - 51472;
    int64_t r = (u * (A - ((u2 * (B - ((u2 * C) >> 15))) >> 15))) >> 15;
    return (int32_t)(neg ? -r : r);
}

static int32_t icos(uint32_t phase) { return isin(phase + 0x40000000u); }

/* Position on a path that bounces between lo and lo + rng (all Q8). */
static int64_t bounce(int64_t lo, int64_t range, int64_t unfolded) {
    if (range <= 0)
        return lo;
    int64_t period = 2 * range;
    int64_t t = unfolded % period;
    if (t < 0)
        t += period;
    return lo + (t < range ? t : period - t);
}

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- parameters ------------------------------------------------------- */

/* Parse and check params_json into *out. Returns the number of problems,
 * each appended to errs as a line. */
static int synth_parse(const char *params_json, synth_params *out, char *errs, size_t errlen) {
    *out = (synth_params){0};
    json_error_t jerr;
    json_t *root = json_loads(params_json ? params_json : "", JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        engine_add_problem(errs, errlen, "params: must be a JSON object");
        return 1;
    }
    int problems = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        double v = json_is_number(val) ? json_number_value(val) : NAN;
        if (strcmp(key, "disagreement") == 0) {
            if (!(v >= 0.0 && v <= 1.0)) {
                engine_add_problem(errs, errlen, "params.disagreement: must be a number between 0 and 1");
                problems++;
            } else {
                out->dis_q16 = (uint32_t)(v * 65536.0 + 0.5);
            }
        } else if (strcmp(key, "cost_ms") == 0) {
            if (!(v >= 0.0 && v <= 60000.0)) {
                engine_add_problem(errs, errlen, "params.cost_ms: must be a number between 0 and 60000");
                problems++;
            } else {
                out->cost_us = (int64_t)(v * 1000.0 + 0.5);
            }
        } else {
            problems += engine_unknown_param(errs, errlen, "synthetic", key);
        }
    }
    json_decref(root);
    return problems;
}

int engine_synthetic_check(const char *params_json, char *errs, size_t errlen) {
    synth_params p;
    return synth_parse(params_json, &p, errs, errlen);
}

/* ---- the scene ---------------------------------------------------------- */

/* Lay out the shapes for a seed (independent of the segment). */
static void scene_layout(scene *sc, uint64_t seed) {
    rng g = {mix64(seed ^ 0x5EEDF00Dull)};
    int64_t S = sc->w < sc->h ? sc->w : sc->h;
    int64_t W8 = (int64_t)sc->w << 8, H8 = (int64_t)sc->h << 8;
    /* S * thousandths, in Q8: S * t * 256 / 1000. */
#define Q8S(t) ((int32_t)((S * (int64_t)(t) * 256) / 1000))
    for (int i = 0; i < 6; i++)
        sc->bg_ph[i] = rng_next(&g);
    for (int i = 0; i < N_SHAPES; i++) {
        shape *s = &sc->s[i];
        /* Shapes are translucent: they add to what lies beneath rather
         * than cover it, so an edge's contrast is the shape's own whatever
         * it crosses (gradient or another shape), and the motion MAD does
         * not wander as shapes pass over light and dark. Lighter and
         * darker shapes alternate. */
        s->y = rng_range(&g, SHAPE_LUMA_MIN, SHAPE_LUMA_SPAN) * ((i & 1) ? -1 : 1);
        s->u = rng_range(&g, 16, 32) * ((rng_next(&g) & 1) ? -1 : 1);
        s->v = rng_range(&g, 16, 32) * ((rng_next(&g) & 1) ? -1 : 1);
        s->psi = rng_next(&g);
        if (i < N_DISCS) {
            s->disc = 1;
            s->r = Q8S(rng_range(&g, DISC_R_MIN, DISC_R_SPAN));
            s->orbit = Q8S(rng_range(&g, ORBIT_MIN, ORBIT_SPAN));
            int64_t margin = (int64_t)s->r + s->orbit;
            int64_t fx = W8 - 2 * margin, fy = H8 - 2 * margin;
            s->ox = (int32_t)(margin + (fx > 0 ? (int64_t)(rng_next(&g) % (uint64_t)fx) : fx / 2));
            s->oy = (int32_t)(margin + (fy > 0 ? (int64_t)(rng_next(&g) % (uint64_t)fy) : fy / 2));
            s->ph0 = rng_next(&g);
            /* Constant speed v on a circle of radius R: an angle of v/R
             * radians, 2^32/(2 pi) = 683565276 phase units a radian. */
            int64_t v = Q8S(DISC_SPEED);
            uint32_t dph = s->orbit > 0 ? (uint32_t)(v * 683565276ll / s->orbit) : 0;
            s->dph = (rng_next(&g) & 1) ? dph : (uint32_t)0 - dph;
        } else {
            s->disc = 0;
            s->hw = Q8S(rng_range(&g, RECT_HW_MIN, RECT_HW_SPAN));
            s->hh = Q8S(rng_range(&g, RECT_HH_MIN, RECT_HH_SPAN));
            s->lox = s->hw;
            s->rngx = W8 - 2 * (int64_t)s->hw;
            s->loy = s->hh;
            s->rngy = H8 - 2 * (int64_t)s->hh;
            s->px = s->rngx > 0 ? (int64_t)(rng_next(&g) % (uint64_t)(2 * s->rngx)) : 0;
            s->py = s->rngy > 0 ? (int64_t)(rng_next(&g) % (uint64_t)(2 * s->rngy)) : 0;
            s->vx = Q8S(RECT_VX) * ((rng_next(&g) & 1) ? 1 : -1);
            s->vy = Q8S(RECT_VY) * ((rng_next(&g) & 1) ? 1 : -1);
        }
    }
#undef Q8S
}

/* This segment's departure from the agreed picture, scaled by
 * disagreement: zero at disagreement 0. The angle theta advances by a third
 * of a turn (give or take 5%) per segment, so two neighbours' offsets (and
 * colour casts) always differ by about sqrt(3) times the amplitude. */
static void scene_perturb(scene *sc, uint64_t seed, uint32_t segment, uint32_t dis_q16) {
    int64_t S = sc->w < sc->h ? sc->w : sc->h;
    uint64_t h = mix64(mix64(seed ^ 0xD15A6EEull) + segment);
    uint32_t jitter = (uint32_t)((h >> 8) % 0x08000000u) - 0x04000000u;
    uint32_t theta = (uint32_t)mix64(seed ^ 0x7E7Aull) + segment * TURN_THIRD + jitter;
    int64_t amp = mul_shift(S * OFFSET_AMP * 256 / 1000, dis_q16, 16); /* Q8 px */
    for (int i = 0; i < N_SHAPES; i++) {
        uint32_t a = theta + sc->s[i].psi;
        sc->dx[i] = (int32_t)mul_shift(amp, icos(a), 15);
        sc->dy[i] = (int32_t)mul_shift(amp, isin(a), 15);
    }
    sc->du = (int32_t)mul_shift(mul_shift(COLOUR_AMP, icos(theta), 15), dis_q16, 16);
    sc->dv = (int32_t)mul_shift(mul_shift(COLOUR_AMP, isin(theta), 15), dis_q16, 16);
}

/* lut[0..n) = base + amp/2 * (1 + sin(phase + 2 pi i / n)), Q8 levels. The
 * phase step is 2^32/n rounded: the period is n entries to within a few
 * parts in 2^32, so the drift never changes the mean slope in view. */
static void fill_lut(uint16_t *lut, uint32_t n, uint32_t phase, int32_t base, int32_t amp) {
    uint32_t step = (uint32_t)(((uint64_t)1 << 32) / n);
    for (uint32_t i = 0; i < n; i++, phase += step) {
        int32_t v = base + (int32_t)(((int64_t)amp * (32768 + isin(phase))) >> 16);
        lut[i] = (uint16_t)(v < 0 ? 0 : v);
    }
}

static void fill_background(uint8_t *plane, uint32_t w, uint32_t h, const uint16_t *lx,
                            const uint16_t *ly) {
    for (uint32_t y = 0; y < h; y++) {
        uint8_t *row = plane + (size_t)y * w;
        uint32_t c = (uint32_t)ly[y] + 128u;
        for (uint32_t x = 0; x < w; x++)
            row[x] = (uint8_t)((lx[x] + c) >> 8);
    }
}

/* Add delta * cov / 256 to a pixel, rounding half away from zero and
 * clamping to the video range. */
static inline uint8_t add_level(uint8_t px, int32_t delta, uint32_t cov) {
    int32_t p = delta * (int32_t)cov;
    int32_t d = p >= 0 ? (p + 128) >> 8 : -((-p + 128) >> 8);
    int32_t v = px + d;
    return (uint8_t)(v < 16 ? 16 : v > 235 ? 235 : v);
}

/* Add delta to [xl, xr) (Q8) of one row, the row itself covered by
 * cov_row/256. Partly covered end pixels get their share. */
static void span(uint8_t *row, uint32_t w, int64_t xl, int64_t xr, int32_t delta, uint32_t cov_row) {
    int64_t lim = (int64_t)w << 8;
    if (xl < 0)
        xl = 0;
    if (xr > lim)
        xr = lim;
    if (xr <= xl || cov_row == 0)
        return;
    int64_t a = xl >> 8, b = (xr - 1) >> 8;
    if (a == b) {
        row[a] = add_level(row[a], delta, (uint32_t)(xr - xl) * cov_row >> 8);
        return;
    }
    row[a] = add_level(row[a], delta, (uint32_t)(((a + 1) << 8) - xl) * cov_row >> 8);
    row[b] = add_level(row[b], delta, (uint32_t)(xr - (b << 8)) * cov_row >> 8);
    if (cov_row < 256)
        delta = (int32_t)mul_shift(delta, cov_row, 8);
    /* A plain loop of adds and clamps, which the compiler vectorises. */
    for (int64_t x = a + 1; x < b; x++) {
        int32_t v = row[x] + delta;
        row[x] = (uint8_t)(v < 16 ? 16 : v > 235 ? 235 : v);
    }
}

/* A disc of radius r centred at (cx, cy), all Q8, on one plane. Each row
 * takes the chord through its centre line, so edges move smoothly with
 * sub-pixel motion. */
static void draw_disc(uint8_t *plane, uint32_t w, uint32_t h, int64_t cx, int64_t cy, int64_t r,
                      int32_t delta) {
    if (cy + r <= 0)
        return;
    int64_t y0 = cy - r <= 0 ? 0 : (cy - r) >> 8, y1 = (cy + r) >> 8;
    if (y1 >= (int64_t)h)
        y1 = (int64_t)h - 1;
    int64_t r2 = r * r;
    for (int64_t y = y0; y <= y1; y++) {
        int64_t dy = (y << 8) + 128 - cy;
        int64_t q = r2 - dy * dy;
        if (q <= 0)
            continue;
        int64_t half = (int64_t)sqrt((double)q);
        span(plane + (size_t)y * w, w, cx - half, cx + half, delta, 256);
    }
}

/* A rectangle [x0, x1) x [y0, y1), Q8, with coverage on all four edges. */
static void draw_rect(uint8_t *plane, uint32_t w, uint32_t h, int64_t x0, int64_t y0, int64_t x1,
                      int64_t y1, int32_t delta) {
    if (y0 < 0)
        y0 = 0;
    if (y1 > ((int64_t)h << 8))
        y1 = (int64_t)h << 8;
    if (y1 <= y0)
        return;
    for (int64_t y = y0 >> 8; y <= (y1 - 1) >> 8; y++) {
        int64_t top = y << 8, bot = top + 256;
        int64_t cov = (bot < y1 ? bot : y1) - (top > y0 ? top : y0);
        span(plane + (size_t)y * w, w, x0, x1, delta, (uint32_t)cov);
    }
}

/* Render absolute frame f into buf (I420, w x h). */
static void scene_draw(const scene *sc, uint32_t f, uint8_t *buf) {
    uint32_t w = sc->w, h = sc->h, cw = w / 2, ch = h / 2;
    uint16_t *lyx = sc->lut, *lyy = lyx + w, *lux = lyy + h, *luy = lux + cw, *lvx = luy + ch,
             *lvy = lvx + cw;
    uint32_t drift = f * BG_DRIFT;
    /* Luma 64..160 and chroma 80..176 before shapes, leaving room for the
     * shapes (which add up to 44 levels each) inside 16..235. */
    fill_lut(lyx, w, sc->bg_ph[0] + drift, 0, 48 << 8);
    fill_lut(lyy, h, sc->bg_ph[1] - drift, 64 << 8, 48 << 8);
    fill_lut(lux, cw, sc->bg_ph[2] + drift, 0, 48 << 8);
    fill_lut(luy, ch, sc->bg_ph[3] + drift, (80 << 8) + sc->du, 48 << 8);
    fill_lut(lvx, cw, sc->bg_ph[4] - drift, 0, 48 << 8);
    fill_lut(lvy, ch, sc->bg_ph[5] - drift, (80 << 8) + sc->dv, 48 << 8);
    uint8_t *Y = buf, *U = Y + (size_t)w * h, *V = U + (size_t)cw * ch;
    fill_background(Y, w, h, lyx, lyy);
    fill_background(U, cw, ch, lux, luy);
    fill_background(V, cw, ch, lvx, lvy);

    for (int i = 0; i < N_SHAPES; i++) {
        const shape *s = &sc->s[i];
        if (s->disc) {
            uint32_t a = s->ph0 + f * s->dph;
            int64_t cx = s->ox + mul_shift(s->orbit, icos(a), 15) + sc->dx[i];
            int64_t cy = s->oy + mul_shift(s->orbit, isin(a), 15) + sc->dy[i];
            draw_disc(Y, w, h, cx, cy, s->r, s->y);
            draw_disc(U, cw, ch, cx / 2, cy / 2, s->r / 2, s->u);
            draw_disc(V, cw, ch, cx / 2, cy / 2, s->r / 2, s->v);
        } else {
            int64_t cx = bounce(s->lox, s->rngx, s->px + (int64_t)f * s->vx) + sc->dx[i];
            int64_t cy = bounce(s->loy, s->rngy, s->py + (int64_t)f * s->vy) + sc->dy[i];
            int64_t x0 = cx - s->hw, x1 = cx + s->hw, y0 = cy - s->hh, y1 = cy + s->hh;
            draw_rect(Y, w, h, x0, y0, x1, y1, s->y);
            draw_rect(U, cw, ch, x0 / 2, y0 / 2, x1 / 2, y1 / 2, s->u);
            draw_rect(V, cw, ch, x0 / 2, y0 / 2, x1 / 2, y1 / 2, s->v);
        }
    }
}

/* ---- rendering ---------------------------------------------------------- */

static int stopped(const engine_io *io) { return io->stop && atomic_load(io->stop) != 0; }

/* Sleep until the monotonic time `until_us`, in slices, so that a stop
 * request is seen within STOP_SLICE_US. Returns -1 if stopped. */
static int wait_until(const engine_io *io, int64_t until_us) {
    for (;;) {
        if (stopped(io))
            return -1;
        int64_t left = until_us - now_us();
        if (left <= 0)
            return 0;
        if (left > STOP_SLICE_US)
            left = STOP_SLICE_US;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000};
        nanosleep(&ts, NULL);
    }
}

int engine_synthetic_render(const engine_segment *seg, const engine_io *io, char *err,
                            size_t errlen) {
    synth_params p;
    char problems[512] = "";
    if (synth_parse(seg->params_json, &p, problems, sizeof problems) != 0) {
        problems[strcspn(problems, "\n")] = '\0';
        snprintf(err, errlen, "synthetic: %s", problems);
        return -1;
    }
    if (seg->width == 0 || seg->height == 0 || seg->width % 2 || seg->height % 2 ||
        seg->width > MAX_DIM || seg->height > MAX_DIM) {
        snprintf(err, errlen, "synthetic: frame size %ux%u must be even, 2 .. %u per side",
                 seg->width, seg->height, MAX_DIM);
        return -1;
    }
    if ((uint64_t)seg->first_frame + seg->frames > UINT32_MAX) {
        snprintf(err, errlen, "synthetic: frames %u .. %u are past the last frame index",
                 seg->first_frame, seg->first_frame + (seg->frames - 1));
        return -1;
    }
    scene sc = {.w = seg->width, .h = seg->height};
    size_t lut_n = (size_t)sc.w + sc.h + 2 * ((size_t)sc.w / 2 + sc.h / 2);
    size_t len = rf_i420_bytes(sc.w, sc.h);
    sc.lut = malloc(lut_n * sizeof *sc.lut);
    uint8_t *buf = malloc(len);
    if (!sc.lut || !buf) {
        free(sc.lut);
        free(buf);
        snprintf(err, errlen, "synthetic: out of memory for a %ux%u frame", sc.w, sc.h);
        return -1;
    }
    scene_layout(&sc, seg->seed);
    scene_perturb(&sc, seg->seed, seg->segment, p.dis_q16);

    int rc = 0;
    int64_t start = now_us();
    for (uint32_t i = 0; i < seg->frames; i++) {
        if (stopped(io)) {
            snprintf(err, errlen, "stopped");
            rc = -1;
            break;
        }
        uint32_t f = seg->first_frame + i;
        uint8_t *out = io->buffer ? io->buffer(io->ctx, len) : NULL;
        if (!out)
            out = buf;
        scene_draw(&sc, f, out);
        if (io->frame && io->frame(io->ctx, f, out, len) != 0) {
            snprintf(err, errlen, "synthetic: the frame receiver stopped the segment at frame %u", f);
            rc = -1;
            break;
        }
        /* A fixed schedule (frame i done at start + (i+1) * cost) rather
         * than a sleep per frame: the rate stays cost_ms per frame however
         * long drawing and the callback took. */
        if (p.cost_us > 0 && wait_until(io, start + (int64_t)(i + 1) * p.cost_us) != 0) {
            snprintf(err, errlen, "stopped");
            rc = -1;
            break;
        }
    }
    free(buf);
    free(sc.lut);
    return rc;
}
