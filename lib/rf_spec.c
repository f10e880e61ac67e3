/* rf_spec — parsing and validating a job spec, and writing it back as
 * canonical JSON. The rules themselves are documented in rf_spec.h and
 * README.md; this file and its two parts are their only implementation:
 * rf_spec_output.c reads the "output" section, rf_spec_problems.c gathers
 * the problems and quotes values in them (rf_spec_internal.h).
 *
 * Ideas it rests on:
 *  - Validation collects every problem instead of stopping at the first, so
 *    an operator fixes a spec in one round trip. Problems are gathered in a
 *    growable list and copied into the caller's buffer only at the end; that
 *    way truncation can cut at a line boundary and still say that more
 *    problems were left out, instead of leaving half a line.
 *  - A field that is wrong is reported once, where it is read; checks that
 *    involve several fields (odd sizes, overlap against segment length,
 *    number of segments, frame area, raw segment size) run only when the
 *    fields they depend on are themselves valid, so one mistake never
 *    cascades into noise.
 *  - Plain integer fields are described by a table (range, default, where
 *    they go in rf_spec), so adding one is a line, not a function.
 *  - Values quoted back in messages are cleaned of control characters and
 *    shortened: a message stays one line whatever the operator sent.
 *  - Nothing half-valid escapes: the rf_spec is handed out only when no
 *    problem at all was found.
 */
#include "rf_spec.h"
#include "rf_spec_internal.h"

#include "rf_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest frame area (8K DCI-ish UHD), and the largest raw segment a worker
 * may be asked to hold: above that a single segment no longer fits in the
 * memory of an ordinary render node. */
#define MAX_PIXELS ((uint64_t)8192 * 4320)
#define MAX_SEGMENT_BYTES ((uint64_t)8 << 30)
#define MAX_SEED ((long long)1 << 53)
#define FPS_MAX 240
#define FPS_HINT "must be an integer 1..240 or a fraction like \"30000/1001\""

static const char *const DEFAULT_ENGINES[] = {"synthetic", "exec", NULL};
static const char *const BLEND_NAMES[] = {"linear", "cosine", NULL};
static const char *const TOP_KEYS[] = {
    "id",     "engine",         "params",         "prompt", "seed",   "width",    "height", "fps",
    "frames", "segment_frames", "overlap_frames", "blend",  "output", "priority",
    "max_running_segments", NULL};

/* ---- integer fields, table-driven ---------------------------------------- */

typedef enum { SLOT_U32, SLOT_U64, SLOT_INT } slot_kind;

typedef struct int_rule {
    const char *field; /* name in messages; "output.x" lives in the output object */
    int required;
    long long min, max, def;
    size_t offset;
    slot_kind slot;
} int_rule;

enum {
    R_SEED,
    R_WIDTH,
    R_HEIGHT,
    R_FRAMES,
    R_SEGMENT,
    R_OVERLAP,
    R_PRIORITY,
    R_QUALITY,
    R_MAX_RUNNING,
    R_COUNT
};

/* overlap_frames' real upper bound is segment_frames-1, checked with the
 * cross-field rules; 9999 is what it is when segment_frames is unusable. */
static const int_rule INT_RULES[R_COUNT] = {
    [R_SEED] = {"seed", 0, 0, MAX_SEED, 0, offsetof(rf_spec, seed), SLOT_U64},
    [R_WIDTH] = {"width", 1, 16, 8192, 0, offsetof(rf_spec, width), SLOT_U32},
    [R_HEIGHT] = {"height", 1, 16, 8192, 0, offsetof(rf_spec, height), SLOT_U32},
    [R_FRAMES] = {"frames", 1, 1, 1000000, 0, offsetof(rf_spec, frames), SLOT_U32},
    [R_SEGMENT] = {"segment_frames", 0, 1, 10000, 48, offsetof(rf_spec, segment_frames), SLOT_U32},
    [R_OVERLAP] = {"overlap_frames", 0, 0, 9999, 8, offsetof(rf_spec, overlap_frames), SLOT_U32},
    [R_PRIORITY] = {"priority", 0, -1000, 1000, 0, offsetof(rf_spec, priority), SLOT_INT},
    [R_QUALITY] = {"output.quality", 0, 0, 51, 20, offsetof(rf_spec, quality), SLOT_INT},
    [R_MAX_RUNNING] = {"max_running_segments", 0, 0, RF_SPEC_MAX_SEGMENTS, 0,
                       offsetof(rf_spec, max_running_segments), SLOT_U32},
};

static void store_int(rf_spec *s, const int_rule *r, long long v) {
    char *slot = (char *)s + r->offset;
    switch (r->slot) {
    case SLOT_U32: {
        uint32_t x = (uint32_t)v;
        memcpy(slot, &x, sizeof x);
        break;
    }
    case SLOT_U64: {
        uint64_t x = (uint64_t)v;
        memcpy(slot, &x, sizeof x);
        break;
    }
    case SLOT_INT: {
        int x = (int)v;
        memcpy(slot, &x, sizeof x);
        break;
    }
    }
}

/* Reads every integer field into `s`; ok[i] says whether rule i ended with
 * a usable value (given and valid, or defaulted). `given[i]` says whether
 * the spec set it. `output` may be NULL when the output object is unusable. */
static void read_ints(rf_spec_problems *p, const json_t *root, const json_t *output, rf_spec *s,
                      int ok[R_COUNT], int given[R_COUNT]) {
    for (int i = 0; i < R_COUNT; i++) {
        const int_rule *r = &INT_RULES[i];
        ok[i] = given[i] = 0;
        const char *dot = strchr(r->field, '.');
        const json_t *obj = dot ? output : root;
        if (!obj)
            continue;
        const json_t *v = json_object_get(obj, dot ? dot + 1 : r->field);
        if (!v) {
            if (r->required) {
                rf_spec_add(p, "%s: is required", r->field);
            } else {
                store_int(s, r, r->def);
                ok[i] = 1;
            }
            continue;
        }
        given[i] = 1;
        if (!json_is_integer(v)) {
            rf_spec_add(p, "%s: must be an integer", r->field);
            continue;
        }
        long long x = json_integer_value(v);
        if (i == R_OVERLAP && x > r->max && ok[R_SEGMENT]) {
            /* Longer than any segment can be: let the cross-field check say
             * so against the actual segment_frames, which is more useful. */
            store_int(s, r, r->max + 1);
            ok[i] = 1;
            continue;
        }
        if (x < r->min || x > r->max) {
            rf_spec_add(p, "%s: must be between %lld and %lld", r->field, r->min, r->max);
            continue;
        }
        store_int(s, r, x);
        ok[i] = 1;
    }
}

/* ---- the other fields ---------------------------------------------------- */

static void read_id(rf_spec_problems *p, const json_t *v, rf_spec *s) {
    if (!v) {
        rf_new_id("job", s->id, sizeof s->id);
        return;
    }
    if (!json_is_string(v)) {
        rf_spec_add(p, "id: must be a string");
        return;
    }
    const char *id = json_string_value(v);
    size_t len = strlen(id);
    char shown[80];
    if (len < 1 || len > RF_ID_MAX ||
        strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len) {
        rf_spec_add(p, "id: must be 1 to %d characters from A-Z a-z 0-9 . _ - (got '%s')",
                    RF_ID_MAX, rf_spec_clean(id, 64, shown, sizeof shown));
        return;
    }
    if (id[0] == '.') {
        rf_spec_add(p, "id: must not start with '.' (got '%s')",
                    rf_spec_clean(id, 64, shown, sizeof shown));
        return;
    }
    memcpy(s->id, id, len + 1);
}

/* Returns 1 when the engine is valid (so its params may be checked). */
static int read_engine(rf_spec_problems *p, const json_t *v, const char *const *engines,
                       rf_spec *s) {
    if (!v) {
        rf_spec_add(p, "engine: is required");
        return 0;
    }
    int k = rf_spec_read_choice(p, v, "engine", "engine", engines);
    if (k < 0)
        return 0;
    if (strlen(engines[k]) >= sizeof s->engine) {
        rf_spec_add(p, "engine: name '%s' is longer than %zu bytes", engines[k],
                    sizeof s->engine - 1);
        return 0;
    }
    strcpy(s->engine, engines[k]);
    return 1;
}

static void read_params(rf_spec_problems *p, const json_t *v, int engine_ok, const rf_spec_opts *o,
                        rf_spec *s) {
    if (v && !json_is_object(v)) {
        rf_spec_add(p, "params: must be an object");
        return;
    }
    s->params_json = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
    if (!s->params_json) {
        p->oom = 1;
        return;
    }
    /* An engine that is not valid has no parameter rules to apply. */
    if (!engine_ok || !o->check_params)
        return;
    char lines[4096] = "";
    int n = o->check_params(s->engine, s->params_json, lines, sizeof lines);
    if (n == 0)
        return;
    int shown = 0;
    for (char *save = NULL, *line = strtok_r(lines, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        rf_spec_add(p, "%s", line);
        shown++;
    }
    /* The engine's count is authoritative even if it wrote no text. */
    if (shown == 0)
        rf_spec_add(p, "params: rejected by engine '%s'", s->engine);
}

static void read_prompt(rf_spec_problems *p, const json_t *v, rf_spec *s) {
    if (v && !json_is_string(v)) {
        rf_spec_add(p, "prompt: must be a string");
        return;
    }
    const char *text = v ? json_string_value(v) : "";
    size_t len = strlen(text);
    if (len > RF_PROMPT_MAX) {
        rf_spec_add(p, "prompt: must be at most %d bytes (got %zu)", RF_PROMPT_MAX, len);
        return;
    }
    s->prompt = strdup(text);
    if (!s->prompt)
        p->oom = 1;
}

/* "num/den": decimal digits only, each part 1..UINT32_MAX. */
static int parse_fraction(const char *t, uint32_t *num, uint32_t *den) {
    uint64_t part[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        size_t d = strspn(t, "0123456789");
        if (d == 0 || d > 10)
            return -1;
        for (size_t i = 0; i < d; i++)
            part[k] = part[k] * 10 + (uint64_t)(t[i] - '0');
        if (part[k] == 0 || part[k] > UINT32_MAX)
            return -1;
        t += d;
        if (k == 0 && *t++ != '/')
            return -1;
    }
    if (*t)
        return -1;
    *num = (uint32_t)part[0];
    *den = (uint32_t)part[1];
    return 0;
}

static void read_fps(rf_spec_problems *p, const json_t *v, rf_spec *s) {
    char shown[80];
    if (!v) {
        s->fps_num = 24;
        s->fps_den = 1;
    } else if (json_is_integer(v)) {
        long long x = json_integer_value(v);
        if (x < 1 || x > FPS_MAX)
            rf_spec_add(p, "fps: " FPS_HINT " (got %lld)", x);
        else {
            s->fps_num = (uint32_t)x;
            s->fps_den = 1;
        }
    } else if (json_is_string(v)) {
        uint32_t num, den;
        const char *t = json_string_value(v);
        /* The rate is kept as given (30000/1001 stays so): encoders and
         * engines want the exact fraction the operator wrote. */
        if (parse_fraction(t, &num, &den) != 0 || num < den ||
            (uint64_t)num > (uint64_t)FPS_MAX * den)
            rf_spec_add(p, "fps: " FPS_HINT " (got \"%s\")",
                        rf_spec_clean(t, 64, shown, sizeof shown));
        else {
            s->fps_num = num;
            s->fps_den = den;
        }
    } else {
        rf_spec_add(p, "fps: " FPS_HINT);
    }
}

static void read_blend(rf_spec_problems *p, const json_t *v, rf_spec *s) {
    s->blend = RF_BLEND_COSINE;
    if (!v)
        return;
    int k = rf_spec_read_choice(p, v, "blend", "blend curve", BLEND_NAMES);
    if (k >= 0)
        s->blend = k == 0 ? RF_BLEND_LINEAR : RF_BLEND_COSINE;
}

/* "e.g. A or B": the values of the form q*n + 1 nearest to x on either
 * side, those below `limit` (0: no limit). */
static const char *step_examples(uint32_t x, uint32_t q, uint32_t limit, char *buf, size_t n) {
    uint32_t lo = x >= 1 ? x - (x - 1) % q : 1, hi = lo + q;
    if (limit && hi >= limit)
        snprintf(buf, n, "e.g. %u", lo);
    else
        snprintf(buf, n, "e.g. %u or %u", lo, hi);
    return buf;
}

/* An engine that needs segments on a frame grid (see rf_spec_opts). With
 * L and O both q*n + 1 the stride L - O is a multiple of q, so every
 * segment starts on the grid; with frames q*n + 1 the last one, which ends
 * at the job's end, holds q*n + 1 frames like the others. */
static void check_step(rf_spec_problems *p, const rf_spec *s, uint32_t q, const int ok[R_COUNT]) {
    if (q <= 1 || !ok[R_FRAMES] || !ok[R_SEGMENT] || !ok[R_OVERLAP] ||
        s->overlap_frames >= s->segment_frames)
        return;
    char eg[64];
    if (s->frames % q != 1)
        rf_spec_add(p, "frames: the %s engine needs %un+1 frames (got %u; %s)", s->engine, q,
                    s->frames, step_examples(s->frames, q, 0, eg, sizeof eg));
    if (s->frames <= s->segment_frames)
        return; /* one segment of `frames` frames: L and O do not matter */
    if (s->segment_frames % q != 1)
        rf_spec_add(p, "segment_frames: the %s engine needs segments of %un+1 frames (got %u; %s)",
                    s->engine, q, s->segment_frames,
                    step_examples(s->segment_frames, q, 0, eg, sizeof eg));
    if (s->overlap_frames % q != 1)
        rf_spec_add(
            p,
            "overlap_frames: the %s engine needs overlaps of %un+1 frames, so that every segment "
            "starts on a multiple of %u (got %u; %s)",
            s->engine, q, q, s->overlap_frames,
            step_examples(s->overlap_frames, q, s->segment_frames, eg, sizeof eg));
}

/* Rules that relate several fields; each runs only when its inputs are valid. */
static void check_cross(rf_spec_problems *p, const rf_spec *s, const int ok[R_COUNT],
                        const int given[R_COUNT]) {
    if (ok[R_WIDTH] && s->width % 2)
        rf_spec_add(p, "width: must be even for 4:2:0 video (got %u)", s->width);
    if (ok[R_HEIGHT] && s->height % 2)
        rf_spec_add(p, "height: must be even for 4:2:0 video (got %u)", s->height);
    if (ok[R_SEGMENT] && ok[R_OVERLAP] && s->overlap_frames >= s->segment_frames)
        rf_spec_add(p, "overlap_frames: must be less than segment_frames (%u)%s", s->segment_frames,
                    given[R_OVERLAP] ? "" : "; the default overlap is 8, set overlap_frames");
    if (ok[R_FRAMES] && ok[R_SEGMENT] && ok[R_OVERLAP] && s->overlap_frames < s->segment_frames) {
        /* Counted as the planner cuts: segments start every L-O frames and
         * the last one ends at the last frame. */
        uint32_t stride = s->segment_frames - s->overlap_frames;
        uint64_t n = 1;
        if (s->frames > s->segment_frames)
            n = (s->frames - s->segment_frames + stride - 1) / stride + 1;
        if (n > RF_SPEC_MAX_SEGMENTS)
            rf_spec_add(p,
                        "segment_frames: %u frames in segments of %u overlapping by %u make %llu "
                        "segments; at most %d (use longer segments)",
                        s->frames, s->segment_frames, s->overlap_frames, (unsigned long long)n,
                        RF_SPEC_MAX_SEGMENTS);
    }
    if (!ok[R_WIDTH] || !ok[R_HEIGHT] || s->width % 2 || s->height % 2)
        return;
    if ((uint64_t)s->width * s->height > MAX_PIXELS) {
        rf_spec_add(p, "width x height: frame of %u x %u pixels is larger than 8192x4320", s->width,
                    s->height);
        return;
    }
    if (!ok[R_SEGMENT])
        return;
    /* A job shorter than one segment is rendered as one segment of its
     * length, so that is the most a worker holds. */
    uint64_t len = s->segment_frames;
    if (ok[R_FRAMES] && s->frames < len)
        len = s->frames;
    uint64_t bytes = (uint64_t)rf_i420_bytes(s->width, s->height) * len;
    if (bytes > MAX_SEGMENT_BYTES)
        rf_spec_add(
            p,
            "segment_frames: a segment of %llu frames of %u x %u is %llu bytes raw, more than 8 "
            "GiB; use shorter segments",
            (unsigned long long)len, s->width, s->height, (unsigned long long)bytes);
}

static void check_spec(rf_spec_problems *p, const json_t *root, const rf_spec_opts *o, rf_spec *s) {
    const char *const *engines = o->engines ? o->engines : DEFAULT_ENGINES;
    read_id(p, json_object_get(root, "id"), s);
    int engine_ok = read_engine(p, json_object_get(root, "engine"), engines, s);
    read_params(p, json_object_get(root, "params"), engine_ok, o, s);
    read_prompt(p, json_object_get(root, "prompt"), s);

    const json_t *out = json_object_get(root, "output");
    if (!out) {
        rf_spec_add(p, "output.path: is required");
    } else if (!json_is_object(out)) {
        rf_spec_add(p, "output: must be an object");
        out = NULL;
    }
    int ok[R_COUNT], given[R_COUNT];
    read_ints(p, root, out, s, ok, given);
    read_fps(p, json_object_get(root, "fps"), s);
    read_blend(p, json_object_get(root, "blend"), s);
    if (out)
        rf_spec_read_output(p, out, o, s);
    check_cross(p, s, ok, given);
    if (engine_ok && o->frame_step)
        check_step(p, s, o->frame_step(s->engine), ok);
    rf_spec_check_unknown_keys(p, root, "", TOP_KEYS);
}

/* ---- public API ---------------------------------------------------------- */

int rf_spec_parse(const char *json, size_t len, const rf_spec_opts *opts, rf_spec **out, char *errs,
                  size_t errlen) {
    static const rf_spec_opts no_opts = {0};
    const rf_spec_opts *o = opts ? opts : &no_opts;
    rf_spec_problems p = {0};
    rf_spec *s = NULL;
    json_t *root = NULL;
    if (out)
        *out = NULL;
    if (!json) {
        rf_spec_add(&p, "spec: no JSON given");
        goto done;
    }
    json_error_t jerr;
    /* Duplicate keys are refused: which of two "frames" wins would be a
     * guess, and a guess is not what an operator meant. */
    root = json_loadb(json, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        rf_spec_add(&p, "spec: invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                    jerr.text);
        goto done;
    }
    if (!json_is_object(root)) {
        rf_spec_add(&p, "spec: must be a JSON object");
        goto done;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        p.oom = 1;
        goto done;
    }
    check_spec(&p, root, o, s);
done:
    json_decref(root);
    if (p.count == 0 && !p.oom) {
        if (errs && errlen)
            errs[0] = '\0';
        if (out)
            *out = s;
        else
            rf_spec_free(s);
        free(p.buf);
        return 0;
    }
    rf_spec_emit(&p, errs, errlen);
    free(p.buf);
    rf_spec_free(s);
    return -1;
}

char *rf_spec_to_json(const rf_spec *s) {
    if (!s)
        return NULL;
    json_error_t jerr;
    json_t *params = json_loads(s->params_json ? s->params_json : "{}", 0, &jerr);
    if (!params || !json_is_object(params)) {
        json_decref(params);
        return NULL;
    }
    char fps[32];
    snprintf(fps, sizeof fps, "%u/%u", s->fps_num, s->fps_den);
    /* Keys in the README's order so that a stored spec reads like the docs. */
    json_t *root = json_pack(
        "{s:s, s:s, s:O, s:s, s:I, s:i, s:i, s:s, s:i, s:i, s:i, s:s, "
        "s:{s:s, s:s, s:s, s:i, s:s}, s:i, s:i}",
        "id", s->id, "engine", s->engine, "params", params, "prompt", s->prompt ? s->prompt : "",
        "seed", (json_int_t)s->seed, "width", (int)s->width, "height", (int)s->height, "fps", fps,
        "frames", (int)s->frames, "segment_frames", (int)s->segment_frames, "overlap_frames",
        (int)s->overlap_frames, "blend", rf_blend_name(s->blend), "output", "path", s->output_path,
        "container", rf_container_name(s->container), "codec", rf_codec_name(s->codec), "quality",
        s->quality, "preset", s->preset, "priority", s->priority, "max_running_segments",
        (int)s->max_running_segments);
    json_decref(params);
    if (!root)
        return NULL;
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

void rf_spec_free(rf_spec *spec) {
    if (!spec)
        return;
    free(spec->params_json);
    free(spec->prompt);
    free(spec);
}

size_t rf_spec_frame_bytes(const rf_spec *spec) {
    return spec ? rf_i420_bytes(spec->width, spec->height) : 0;
}

const char *rf_blend_name(rf_blend_curve c) { return (unsigned)c < 2 ? BLEND_NAMES[c] : "unknown"; }
