/* rf_spec — parsing and validating a job spec, and writing it back as
 * canonical JSON. The rules themselves are documented in rf_spec.h and
 * README.md; this file is their only implementation.
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

#include "rf_util.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest frame area (8K DCI-ish UHD), and the largest raw segment a worker
 * may be asked to hold: above that a single segment no longer fits in the
 * memory of an ordinary render node. */
#define MAX_PIXELS ((uint64_t)8192 * 4320)
#define MAX_SEGMENT_BYTES ((uint64_t)8 << 30)
#define MAX_SEED ((long long)1 << 53)
#define FPS_MAX 240
#define FPS_HINT "must be an integer 1..240 or a fraction like \"30000/1001\""
#define MORE_LINE "...: more problems not shown"

static const char *const DEFAULT_ENGINES[] = {"synthetic", "exec", NULL};
static const char *const BLEND_NAMES[] = {"linear", "cosine", NULL};
static const char *const CONTAINER_NAMES[] = {"mp4", "mkv", "y4m", NULL};
static const char *const CODEC_NAMES[] = {"h264", "ffv1", "rawvideo", NULL};
static const char *const PRESETS[] = {"ultrafast", "superfast", "veryfast", "faster",
                                      "fast",      "medium",    "slow",     "slower",
                                      "veryslow",  "placebo",   NULL};
static const char *const TOP_KEYS[] = {
    "id",     "engine",         "params",         "prompt", "seed",   "width",    "height", "fps",
    "frames", "segment_frames", "overlap_frames", "blend",  "output", "priority",
    "max_running_segments", NULL};
static const char *const OUTPUT_KEYS[] = {"path", "container", "codec", "quality", "preset", NULL};

/* ---- the problem list ---------------------------------------------------- */

typedef struct problems {
    char *buf;  /* lines, each ending in '\n' */
    size_t len; /* bytes used in buf */
    size_t cap;
    int count;
    int oom; /* a line could not be stored: report that instead */
} problems;

static void add(problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(problems *p, const char *fmt, ...) {
    p->count++;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        p->oom = 1;
        return;
    }
    size_t need = p->len + (size_t)n + 2; /* '\n' and vsnprintf's NUL */
    if (need > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < need)
            cap *= 2;
        char *nb = realloc(p->buf, cap);
        if (!nb) {
            p->oom = 1;
            return;
        }
        p->buf = nb;
        p->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    p->len += (size_t)n;
    p->buf[p->len++] = '\n';
}

/* Copy the lines into errs, whole lines only; when they do not all fit, as
 * many as fit together with a last line saying that more were left out. */
static void emit(const problems *p, char *errs, size_t errlen) {
    if (!errs || errlen == 0)
        return;
    errs[0] = '\0';
    if (p->oom) {
        snprintf(errs, errlen, "spec: out of memory while checking the spec");
        return;
    }
    size_t total = p->len ? p->len - 1 : 0; /* without the last '\n' */
    if (total < errlen) {
        if (total)
            memcpy(errs, p->buf, total);
        errs[total] = '\0';
        return;
    }
    size_t keep = 0;
    for (size_t i = 0; i < p->len; i++) {
        if (p->buf[i] != '\n')
            continue;
        if (i + 1 + strlen(MORE_LINE) >= errlen)
            break;
        keep = i + 1;
    }
    memcpy(errs, p->buf, keep);
    snprintf(errs + keep, errlen - keep, "%s", MORE_LINE);
}

/* ---- small helpers ------------------------------------------------------- */

/* `s` made safe to quote in a one-line message: control bytes become '?',
 * and it is cut (at a UTF-8 boundary) to at most `max` bytes plus "...". */
static const char *clean(const char *s, size_t max, char *buf, size_t n) {
    size_t len = strlen(s), cut = len;
    if (cut > max) {
        cut = max;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
    }
    if (cut + 4 > n)
        cut = n > 4 ? n - 4 : 0;
    size_t o = 0;
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut < len && o + 3 < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static int find_name(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* "a, b, c" for messages that list the accepted values. */
static void join(const char *const *names, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && o < n; i++) {
        int w = snprintf(buf + o, n - o, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* Checks that `v` is a string naming one of `names`; returns its index or -1
 * (after reporting why). `what` is the noun used in the message. */
static int read_choice(problems *p, const json_t *v, const char *field, const char *what,
                       const char *const *names) {
    if (!json_is_string(v)) {
        add(p, "%s: must be a string", field);
        return -1;
    }
    int k = find_name(names, json_string_value(v));
    if (k < 0) {
        char known[256], shown[80];
        join(names, known, sizeof known);
        add(p, "%s: unknown %s '%s' (known: %s)", field, what,
            clean(json_string_value(v), 64, shown, sizeof shown), known);
    }
    return k;
}

static void check_unknown_keys(problems *p, const json_t *obj, const char *prefix,
                               const char *const *known) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        (void)v;
        if (find_name(known, key) < 0) {
            char shown[80];
            add(p, "%s%s: unknown field", prefix, clean(key, 64, shown, sizeof shown));
        }
    }
}

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
static void read_ints(problems *p, const json_t *root, const json_t *output, rf_spec *s,
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
                add(p, "%s: is required", r->field);
            } else {
                store_int(s, r, r->def);
                ok[i] = 1;
            }
            continue;
        }
        given[i] = 1;
        if (!json_is_integer(v)) {
            add(p, "%s: must be an integer", r->field);
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
            add(p, "%s: must be between %lld and %lld", r->field, r->min, r->max);
            continue;
        }
        store_int(s, r, x);
        ok[i] = 1;
    }
}

/* ---- the other fields ---------------------------------------------------- */

static void read_id(problems *p, const json_t *v, rf_spec *s) {
    if (!v) {
        rf_new_id("job", s->id, sizeof s->id);
        return;
    }
    if (!json_is_string(v)) {
        add(p, "id: must be a string");
        return;
    }
    const char *id = json_string_value(v);
    size_t len = strlen(id);
    char shown[80];
    if (len < 1 || len > RF_ID_MAX ||
        strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len) {
        add(p, "id: must be 1 to %d characters from A-Z a-z 0-9 . _ - (got '%s')", RF_ID_MAX,
            clean(id, 64, shown, sizeof shown));
        return;
    }
    if (id[0] == '.') {
        add(p, "id: must not start with '.' (got '%s')", clean(id, 64, shown, sizeof shown));
        return;
    }
    memcpy(s->id, id, len + 1);
}

/* Returns 1 when the engine is valid (so its params may be checked). */
static int read_engine(problems *p, const json_t *v, const char *const *engines, rf_spec *s) {
    if (!v) {
        add(p, "engine: is required");
        return 0;
    }
    int k = read_choice(p, v, "engine", "engine", engines);
    if (k < 0)
        return 0;
    if (strlen(engines[k]) >= sizeof s->engine) {
        add(p, "engine: name '%s' is longer than %zu bytes", engines[k], sizeof s->engine - 1);
        return 0;
    }
    strcpy(s->engine, engines[k]);
    return 1;
}

static void read_params(problems *p, const json_t *v, int engine_ok, const rf_spec_opts *o,
                        rf_spec *s) {
    if (v && !json_is_object(v)) {
        add(p, "params: must be an object");
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
        add(p, "%s", line);
        shown++;
    }
    /* The engine's count is authoritative even if it wrote no text. */
    if (shown == 0)
        add(p, "params: rejected by engine '%s'", s->engine);
}

static void read_prompt(problems *p, const json_t *v, rf_spec *s) {
    if (v && !json_is_string(v)) {
        add(p, "prompt: must be a string");
        return;
    }
    const char *text = v ? json_string_value(v) : "";
    size_t len = strlen(text);
    if (len > RF_PROMPT_MAX) {
        add(p, "prompt: must be at most %d bytes (got %zu)", RF_PROMPT_MAX, len);
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

static void read_fps(problems *p, const json_t *v, rf_spec *s) {
    char shown[80];
    if (!v) {
        s->fps_num = 24;
        s->fps_den = 1;
    } else if (json_is_integer(v)) {
        long long x = json_integer_value(v);
        if (x < 1 || x > FPS_MAX)
            add(p, "fps: " FPS_HINT " (got %lld)", x);
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
            add(p, "fps: " FPS_HINT " (got \"%s\")", clean(t, 64, shown, sizeof shown));
        else {
            s->fps_num = num;
            s->fps_den = den;
        }
    } else {
        add(p, "fps: " FPS_HINT);
    }
}

static void read_blend(problems *p, const json_t *v, rf_spec *s) {
    s->blend = RF_BLEND_COSINE;
    if (!v)
        return;
    int k = read_choice(p, v, "blend", "blend curve", BLEND_NAMES);
    if (k >= 0)
        s->blend = k == 0 ? RF_BLEND_LINEAR : RF_BLEND_COSINE;
}

/* The output's directory must be there and writable, so that a job is not
 * rendered for hours only to fail at the last step. With may_create, a
 * missing directory is fine when its nearest existing ancestor is a
 * writable directory (the caller creates it once the job is accepted). */
static void check_output_dir(problems *p, const char *path, int may_create) {
    char dir[RF_PATH_MAX], shown[RF_PATH_MAX + 8];
    const char *slash = strrchr(path, '/');
    size_t dlen = (size_t)(slash - path);
    if (dlen == 0)
        dlen = 1; /* the file is in "/" */
    memcpy(dir, path, dlen);
    dir[dlen] = '\0';
    clean(dir, RF_PATH_MAX, shown, sizeof shown);
    struct stat st;
    if (stat(dir, &st) != 0 && errno == ENOENT && may_create) {
        /* Walk up to the nearest ancestor that exists; it must take the
         * new directories. */
        for (;;) {
            char *cut = strrchr(dir, '/');
            if (!cut || cut == dir) {
                snprintf(dir, sizeof dir, "/");
                break;
            }
            *cut = '\0';
            if (stat(dir, &st) == 0 || errno != ENOENT)
                break;
        }
        clean(dir, RF_PATH_MAX, shown, sizeof shown);
    }
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            add(p, "output.path: directory %s does not exist", shown);
        else
            add(p, "output.path: cannot use directory %s: %s", shown, strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        add(p, "output.path: %s is not a directory", shown);
        return;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        add(p, "output.path: directory %s is not writable", shown);
        return;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        add(p, "output.path: %s is a directory, not a file",
            clean(path, RF_PATH_MAX, shown, sizeof shown));
}

/* Sets s->output_path (absolute) and returns 1, or reports and returns 0. */
static int read_path(problems *p, const json_t *v, const rf_spec_opts *o, rf_spec *s) {
    char shown[RF_PATH_MAX + 8];
    if (!v) {
        add(p, "output.path: is required");
        return 0;
    }
    if (!json_is_string(v)) {
        add(p, "output.path: must be a string");
        return 0;
    }
    const char *path = json_string_value(v);
    if (!path[0]) {
        add(p, "output.path: must not be empty");
        return 0;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        add(p, "output.path: must name a file (got '%s')", clean(path, 256, shown, sizeof shown));
        return 0;
    }
    int fit;
    if (path[0] == '/') {
        fit = rf_fmt(s->output_path, sizeof s->output_path, "%s", path);
    } else {
        char cwd[RF_PATH_MAX];
        const char *dir = o->base_dir;
        if (!dir || dir[0] != '/') {
            /* A relative base_dir is itself relative to the cwd. */
            if (!getcwd(cwd, sizeof cwd)) {
                add(p, "output.path: cannot make '%s' absolute: current directory unknown (%s)",
                    clean(path, 256, shown, sizeof shown), strerror(errno));
                return 0;
            }
            if (dir && dir[0]) {
                size_t n = strlen(cwd);
                if (rf_fmt(cwd + n, sizeof cwd - n, "%s%s", cwd[n - 1] == '/' ? "" : "/", dir) !=
                    0) {
                    add(p, "output.path: base directory is longer than %d bytes", RF_PATH_MAX - 1);
                    return 0;
                }
            }
            dir = cwd;
        }
        size_t dl = strlen(dir);
        fit = rf_fmt(s->output_path, sizeof s->output_path, "%s%s%s", dir,
                     dl && dir[dl - 1] == '/' ? "" : "/", path);
    }
    if (fit != 0) {
        add(p, "output.path: must be at most %d bytes once made absolute", RF_PATH_MAX - 1);
        return 0;
    }
    if (o->check_output_dir) {
        int before = p->count;
        check_output_dir(p, s->output_path, o->check_output_dir == 2);
        if (p->count != before)
            return 0;
    }
    return 1;
}

static int container_from_path(const char *path) {
    const char *base = strrchr(path, '/');
    const char *ext = strrchr(base ? base : path, '.');
    if (!ext)
        return -1;
    for (int i = 0; CONTAINER_NAMES[i]; i++)
        if (strcasecmp(ext + 1, CONTAINER_NAMES[i]) == 0)
            return i;
    return -1;
}

/* Which codec each container may carry, and the default (listed first). */
static const char *const CODECS_FOR[][3] = {
    [RF_CONTAINER_MP4] = {"h264", NULL, NULL},
    [RF_CONTAINER_MKV] = {"ffv1", "h264", NULL},
    [RF_CONTAINER_Y4M] = {"rawvideo", NULL, NULL},
};

static void read_output(problems *p, const json_t *out, const rf_spec_opts *o, rf_spec *s) {
    check_unknown_keys(p, out, "output.", OUTPUT_KEYS);
    const json_t *jpath = json_object_get(out, "path");
    int path_ok = read_path(p, jpath, o, s);

    const json_t *v = json_object_get(out, "container");
    int container = -1;
    if (v) {
        container = read_choice(p, v, "output.container", "container", CONTAINER_NAMES);
    } else if (path_ok) {
        container = container_from_path(s->output_path);
        if (container < 0) {
            char shown[RF_PATH_MAX + 8];
            add(p,
                "output.container: cannot infer from path '%s'; set output.container (mp4, mkv, "
                "y4m)",
                clean(json_string_value(jpath), 256, shown, sizeof shown));
        }
    }

    v = json_object_get(out, "codec");
    int codec = -1;
    if (v) {
        codec = read_choice(p, v, "output.codec", "codec", CODEC_NAMES);
        if (codec >= 0 && container >= 0 &&
            find_name(CODECS_FOR[container], CODEC_NAMES[codec]) < 0) {
            char takes[64];
            join(CODECS_FOR[container], takes, sizeof takes);
            add(p, "output.codec: %s cannot go in a %s container (%s takes: %s)",
                CODEC_NAMES[codec], CONTAINER_NAMES[container], CONTAINER_NAMES[container], takes);
        }
    } else if (container >= 0) {
        codec = find_name(CODEC_NAMES, CODECS_FOR[container][0]);
    }
    if (container >= 0)
        s->container = (rf_container)container;
    if (codec >= 0)
        s->codec = (rf_codec)codec;

    v = json_object_get(out, "preset");
    strcpy(s->preset, "medium");
    if (v) {
        int k = read_choice(p, v, "output.preset", "preset", PRESETS);
        if (k >= 0)
            strcpy(s->preset, PRESETS[k]);
    }
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
static void check_step(problems *p, const rf_spec *s, uint32_t q, const int ok[R_COUNT]) {
    if (q <= 1 || !ok[R_FRAMES] || !ok[R_SEGMENT] || !ok[R_OVERLAP] ||
        s->overlap_frames >= s->segment_frames)
        return;
    char eg[64];
    if (s->frames % q != 1)
        add(p, "frames: the %s engine needs %un+1 frames (got %u; %s)", s->engine, q, s->frames,
            step_examples(s->frames, q, 0, eg, sizeof eg));
    if (s->frames <= s->segment_frames)
        return; /* one segment of `frames` frames: L and O do not matter */
    if (s->segment_frames % q != 1)
        add(p, "segment_frames: the %s engine needs segments of %un+1 frames (got %u; %s)",
            s->engine, q, s->segment_frames, step_examples(s->segment_frames, q, 0, eg, sizeof eg));
    if (s->overlap_frames % q != 1)
        add(p,
            "overlap_frames: the %s engine needs overlaps of %un+1 frames, so that every segment "
            "starts on a multiple of %u (got %u; %s)",
            s->engine, q, q, s->overlap_frames,
            step_examples(s->overlap_frames, q, s->segment_frames, eg, sizeof eg));
}

/* Rules that relate several fields; each runs only when its inputs are valid. */
static void check_cross(problems *p, const rf_spec *s, const int ok[R_COUNT],
                        const int given[R_COUNT]) {
    if (ok[R_WIDTH] && s->width % 2)
        add(p, "width: must be even for 4:2:0 video (got %u)", s->width);
    if (ok[R_HEIGHT] && s->height % 2)
        add(p, "height: must be even for 4:2:0 video (got %u)", s->height);
    if (ok[R_SEGMENT] && ok[R_OVERLAP] && s->overlap_frames >= s->segment_frames)
        add(p, "overlap_frames: must be less than segment_frames (%u)%s", s->segment_frames,
            given[R_OVERLAP] ? "" : "; the default overlap is 8, set overlap_frames");
    if (ok[R_FRAMES] && ok[R_SEGMENT] && ok[R_OVERLAP] &&
        s->overlap_frames < s->segment_frames) {
        /* Counted as the planner cuts: segments start every L-O frames and
         * the last one ends at the last frame. */
        uint32_t stride = s->segment_frames - s->overlap_frames;
        uint64_t n = 1;
        if (s->frames > s->segment_frames)
            n = (s->frames - s->segment_frames + stride - 1) / stride + 1;
        if (n > RF_SPEC_MAX_SEGMENTS)
            add(p,
                "segment_frames: %u frames in segments of %u overlapping by %u make %llu "
                "segments; at most %d (use longer segments)",
                s->frames, s->segment_frames, s->overlap_frames, (unsigned long long)n,
                RF_SPEC_MAX_SEGMENTS);
    }
    if (!ok[R_WIDTH] || !ok[R_HEIGHT] || s->width % 2 || s->height % 2)
        return;
    if ((uint64_t)s->width * s->height > MAX_PIXELS) {
        add(p, "width x height: frame of %u x %u pixels is larger than 8192x4320", s->width,
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
        add(p,
            "segment_frames: a segment of %llu frames of %u x %u is %llu bytes raw, more than 8 "
            "GiB; use shorter segments",
            (unsigned long long)len, s->width, s->height, (unsigned long long)bytes);
}

static void check_spec(problems *p, const json_t *root, const rf_spec_opts *o, rf_spec *s) {
    const char *const *engines = o->engines ? o->engines : DEFAULT_ENGINES;
    read_id(p, json_object_get(root, "id"), s);
    int engine_ok = read_engine(p, json_object_get(root, "engine"), engines, s);
    read_params(p, json_object_get(root, "params"), engine_ok, o, s);
    read_prompt(p, json_object_get(root, "prompt"), s);

    const json_t *out = json_object_get(root, "output");
    if (!out) {
        add(p, "output.path: is required");
    } else if (!json_is_object(out)) {
        add(p, "output: must be an object");
        out = NULL;
    }
    int ok[R_COUNT], given[R_COUNT];
    read_ints(p, root, out, s, ok, given);
    read_fps(p, json_object_get(root, "fps"), s);
    read_blend(p, json_object_get(root, "blend"), s);
    if (out)
        read_output(p, out, o, s);
    check_cross(p, s, ok, given);
    if (engine_ok && o->frame_step)
        check_step(p, s, o->frame_step(s->engine), ok);
    check_unknown_keys(p, root, "", TOP_KEYS);
}

/* ---- public API ---------------------------------------------------------- */

int rf_spec_parse(const char *json, size_t len, const rf_spec_opts *opts, rf_spec **out, char *errs,
                  size_t errlen) {
    static const rf_spec_opts no_opts = {0};
    const rf_spec_opts *o = opts ? opts : &no_opts;
    problems p = {0};
    rf_spec *s = NULL;
    json_t *root = NULL;
    if (out)
        *out = NULL;
    if (!json) {
        add(&p, "spec: no JSON given");
        goto done;
    }
    json_error_t jerr;
    /* Duplicate keys are refused: which of two "frames" wins would be a
     * guess, and a guess is not what an operator meant. */
    root = json_loadb(json, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        add(&p, "spec: invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        goto done;
    }
    if (!json_is_object(root)) {
        add(&p, "spec: must be a JSON object");
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
    emit(&p, errs, errlen);
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

const char *rf_container_name(rf_container c) {
    return (unsigned)c < 3 ? CONTAINER_NAMES[c] : "unknown";
}

const char *rf_codec_name(rf_codec c) { return (unsigned)c < 3 ? CODEC_NAMES[c] : "unknown"; }
