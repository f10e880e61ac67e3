/* rf_spec: what a job spec may say, and what the operator is told when it
 * says something wrong. Every validation rule has its own test with a bad
 * spec and the exact wording it must produce, so the messages documented in
 * README.md cannot drift. Specs are built from one valid base, changed one
 * field at a time through jansson, so each test shows only what it breaks.
 * Engine parameter checks use a fake check_params: the real one belongs to
 * the engines and is tested with them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "rf_spec.h"
#include "rf_util.h"

typedef struct fixture {
    char dir[256];  /* a fresh writable directory for outputs */
    char path[512]; /* dir + "/out.y4m", the base spec's output */
    rf_spec_opts opts;
} fixture;

/* A stand-in for engine_check_params: {"bad": ...} is one problem with a
 * line, {"silent": ...} one problem without a line; appends like the real
 * one does. */
static int fake_check_params(const char *engine, const char *params_json, char *errs,
                             size_t errlen) {
    size_t used = strlen(errs);
    if (strstr(params_json, "\"silent\""))
        return 1;
    if (strstr(params_json, "\"bad\"")) {
        snprintf(errs + used, errlen - used, "params.bad: not allowed for %s\n", engine);
        return 1;
    }
    return 0;
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_spec.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/out.y4m", fx->dir);
    fx->opts.check_output_dir = 1;
    fx->opts.check_params = fake_check_params;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    rf_rmtree(fx->dir);
    free(fx);
    return 0;
}

/* The smallest valid spec: only the required fields. */
static json_t *base(const fixture *fx) {
    json_t *j = json_pack("{s:s, s:i, s:i, s:i, s:{s:s}}", "engine", "synthetic", "width", 64,
                          "height", 32, "frames", 10, "output", "path", fx->path);
    assert_non_null(j);
    return j;
}

/* Sets (value non-NULL, reference taken) or removes `field` ("a" or "a.b"). */
static void set(json_t *j, const char *field, json_t *value) {
    const char *dot = strchr(field, '.');
    if (dot) {
        char head[64];
        snprintf(head, sizeof head, "%.*s", (int)(dot - field), field);
        j = json_object_get(j, head);
        assert_non_null(j);
        field = dot + 1;
    }
    if (value)
        assert_int_equal(json_object_set_new(j, field, value), 0);
    else
        json_object_del(j, field);
}

static int parse_text(const char *text, const rf_spec_opts *o, rf_spec **out, char *errs,
                      size_t n) {
    return rf_spec_parse(text, strlen(text), o, out, errs, n);
}

static int parse_json(json_t *j, const rf_spec_opts *o, rf_spec **out, char *errs, size_t n) {
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    int rc = parse_text(text, o, out, errs, n);
    free(text);
    json_decref(j);
    return rc;
}

/* `text` must be refused with `want` among the lines, and *out cleared. */
static void refused_text(const fixture *fx, const char *text, const char *want) {
    char errs[4096];
    rf_spec *s = (rf_spec *)(uintptr_t)1; /* must be overwritten with NULL */
    int rc = parse_text(text, &fx->opts, &s, errs, sizeof errs);
    if (rc != -1 || !strstr(errs, want))
        fail_msg("wanted a line containing \"%s\", got rc=%d errs=\"%s\"", want, rc, errs);
    assert_null(s);
}

static void refused(const fixture *fx, json_t *j, const char *want) {
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_non_null(text);
    refused_text(fx, text, want);
    free(text);
}

/* One field of the base spec changed; the spec must be refused with `want`. */
static void refused_with(void **state, const char *field, json_t *value, const char *want) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, field, value);
    refused(fx, j, want);
}

static rf_spec *accepted(const fixture *fx, json_t *j) {
    char errs[4096];
    rf_spec *s = NULL;
    int rc = parse_json(j, &fx->opts, &s, errs, sizeof errs);
    if (rc != 0)
        fail_msg("refused: %s", errs);
    assert_non_null(s);
    assert_string_equal(errs, "");
    return s;
}

static void accepted_with(void **state, const char *field, json_t *value) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, field, value);
    rf_spec_free(accepted(fx, j));
}

static int count_lines(const char *s) {
    int n = *s ? 1 : 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- valid specs ---------------------------------------------------------- */

static void minimal_spec_gets_the_defaults(void **state) {
    fixture *fx = *state;
    rf_spec *s = accepted(fx, base(fx));
    assert_int_equal(strncmp(s->id, "job-", 4), 0);
    assert_int_equal(strlen(s->id), 16);
    assert_string_equal(s->engine, "synthetic");
    assert_string_equal(s->params_json, "{}");
    assert_string_equal(s->prompt, "");
    assert_int_equal(s->seed, 0);
    assert_int_equal(s->width, 64);
    assert_int_equal(s->height, 32);
    assert_int_equal(s->fps_num, 24);
    assert_int_equal(s->fps_den, 1);
    assert_int_equal(s->frames, 10);
    assert_int_equal(s->segment_frames, 48);
    assert_int_equal(s->overlap_frames, 8);
    assert_int_equal(s->blend, RF_BLEND_COSINE);
    assert_string_equal(s->output_path, fx->path);
    assert_int_equal(s->container, RF_CONTAINER_Y4M);
    assert_int_equal(s->codec, RF_CODEC_RAWVIDEO);
    assert_int_equal(s->quality, 20);
    assert_string_equal(s->preset, "medium");
    assert_int_equal(s->priority, 0);
    assert_int_equal(rf_spec_frame_bytes(s), 64 * 32 * 3 / 2);
    rf_spec *t = accepted(fx, base(fx));
    assert_string_not_equal(s->id, t->id); /* generated ids differ */
    rf_spec_free(t);
    rf_spec_free(s);
}

static json_t *full(const fixture *fx) {
    char path[600];
    snprintf(path, sizeof path, "%s/hug.mkv", fx->dir);
    json_t *j =
        json_pack("{s:s, s:s, s:{s:f, s:i, s:s}, s:s, s:I, s:i, s:i, s:s, s:i, s:i, s:i, "
                  "s:s, s:{s:s, s:s, s:s, s:i, s:s}, s:i, s:i}",
                  "id", "hug-0001", "engine", "exec", "params", "zeta", 0.5, "alpha", 3, "command",
                  "cat x.y4m", "prompt", "two friends hug on a beach", "seed", (json_int_t)1 << 53,
                  "width", 540, "height", 960, "fps", "30000/1001", "frames", 240, "segment_frames",
                  40, "overlap_frames", 0, "blend", "linear", "output", "path", path, "container",
                  "mkv", "codec", "h264", "quality", 0, "preset", "placebo", "priority", -1000,
                  "max_running_segments", 3);
    assert_non_null(j);
    return j;
}

static void full_spec_is_read_exactly(void **state) {
    fixture *fx = *state;
    rf_spec *s = accepted(fx, full(fx));
    assert_string_equal(s->id, "hug-0001");
    assert_string_equal(s->engine, "exec");
    /* compact, keys sorted: a stable text for the engines and for Redis */
    assert_string_equal(s->params_json, "{\"alpha\":3,\"command\":\"cat x.y4m\",\"zeta\":0.5}");
    assert_string_equal(s->prompt, "two friends hug on a beach");
    assert_true(s->seed == (uint64_t)1 << 53);
    assert_int_equal(s->width, 540);
    assert_int_equal(s->height, 960);
    assert_int_equal(s->fps_num, 30000);
    assert_int_equal(s->fps_den, 1001);
    assert_int_equal(s->frames, 240);
    assert_int_equal(s->segment_frames, 40);
    assert_int_equal(s->overlap_frames, 0);
    assert_int_equal(s->blend, RF_BLEND_LINEAR);
    assert_int_equal(s->container, RF_CONTAINER_MKV);
    assert_int_equal(s->codec, RF_CODEC_H264);
    assert_int_equal(s->quality, 0);
    assert_string_equal(s->preset, "placebo");
    assert_int_equal(s->priority, -1000);
    assert_int_equal(s->max_running_segments, 3);
    rf_spec_free(s);
}

static void limits_themselves_are_accepted(void **state) {
    accepted_with(state, "id",
                  json_string("a234567890123456789012345678901234567890123456789012345678901234"));
    accepted_with(state, "id", json_string("A-b_c.9"));
    accepted_with(state, "width", json_integer(16));
    accepted_with(state, "height", json_integer(8192));
    accepted_with(state, "frames", json_integer(1));
    accepted_with(state, "segment_frames", json_integer(10000));
    accepted_with(state, "fps", json_integer(240));
    accepted_with(state, "fps", json_string("1/1"));
    accepted_with(state, "fps", json_string("240/1"));
    accepted_with(state, "priority", json_integer(1000));
    accepted_with(state, "output.quality", json_integer(51));
    char *prompt = malloc(RF_PROMPT_MAX + 1);
    memset(prompt, 'p', RF_PROMPT_MAX);
    prompt[RF_PROMPT_MAX] = '\0';
    accepted_with(state, "prompt", json_string(prompt));
    free(prompt);
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "segment_frames", json_integer(1)); /* segments of one frame, no overlap */
    set(j, "overlap_frames", json_integer(0));
    rf_spec_free(accepted(fx, j));
    j = base(fx); /* the longest job, in the longest segments */
    set(j, "frames", json_integer(1000000));
    set(j, "segment_frames", json_integer(10000));
    rf_spec_free(accepted(fx, j));
}

/* ---- one test per rule ----------------------------------------------------- */

static void odd_sizes(void **state) {
    refused_with(state, "width", json_integer(641),
                 "width: must be even for 4:2:0 video (got 641)");
    refused_with(state, "height", json_integer(97),
                 "height: must be even for 4:2:0 video (got 97)");
}

static void size_out_of_range(void **state) {
    refused_with(state, "width", json_integer(14), "width: must be between 16 and 8192");
    refused_with(state, "height", json_integer(8194), "height: must be between 16 and 8192");
}

static void frame_larger_than_8k(void **state) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "width", json_integer(8192));
    set(j, "height", json_integer(8192));
    refused(fx, j, "width x height: frame of 8192 x 8192 pixels is larger than 8192x4320");
}

static void segment_larger_than_8_gib(void **state) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "width", json_integer(8192));
    set(j, "height", json_integer(4320));
    set(j, "frames", json_integer(1000));
    set(j, "segment_frames", json_integer(200));
    refused(fx, j,
            "segment_frames: a segment of 200 frames of 8192 x 4320 is 10616832000 bytes raw, "
            "more than 8 GiB");
    /* a job shorter than a segment is one segment of the job's length */
    j = base(fx);
    set(j, "width", json_integer(8192));
    set(j, "height", json_integer(4320));
    set(j, "frames", json_integer(100));
    set(j, "segment_frames", json_integer(200));
    rf_spec_free(accepted(fx, j));
}

static json_t *cut(const fixture *fx, int frames, int segment_frames, int overlap_frames) {
    json_t *j = base(fx);
    set(j, "frames", json_integer(frames));
    set(j, "segment_frames", json_integer(segment_frames));
    set(j, "overlap_frames", json_integer(overlap_frames));
    return j;
}

static void too_many_segments(void **state) {
    fixture *fx = *state;
    refused(fx, cut(fx, 1000000, 1, 0),
            "segment_frames: 1000000 frames in segments of 1 overlapping by 0 make 1000000 "
            "segments; at most 10000 (use longer segments)");
    /* counted as the planner cuts: starts every L-O frames, the last one
     * ending at the last frame */
    refused(fx, cut(fx, 400009, 48, 8),
            "segment_frames: 400009 frames in segments of 48 overlapping by 8 make 10001 "
            "segments; at most 10000 (use longer segments)");
    /* exactly RF_SPEC_MAX_SEGMENTS is allowed */
    rf_spec_free(accepted(fx, cut(fx, 10000, 1, 0)));
    rf_spec_free(accepted(fx, cut(fx, 400008, 48, 8)));
    /* the default segmentation (48, overlapping by 8) of a long job */
    refused_with(state, "frames", json_integer(1000000),
                 "segment_frames: 1000000 frames in segments of 48 overlapping by 8 make 25000 "
                 "segments; at most 10000");
    /* not counted when one of the three is itself wrong: no second line */
    json_t *j = cut(fx, 1000000, 1, 1);
    char errs[1024];
    rf_spec *s = NULL;
    assert_int_equal(parse_json(j, &fx->opts, &s, errs, sizeof errs), -1);
    assert_string_equal(errs, "overlap_frames: must be less than segment_frames (1)");
    j = cut(fx, 1000001, 1, 0);
    assert_int_equal(parse_json(j, &fx->opts, &s, errs, sizeof errs), -1);
    assert_string_equal(errs, "frames: must be between 1 and 1000000");
}

static void frames_out_of_range(void **state) {
    refused_with(state, "frames", json_integer(0), "frames: must be between 1 and 1000000");
    refused_with(state, "frames", json_integer(1000001), "frames: must be between 1 and 1000000");
}

static void segment_frames_out_of_range(void **state) {
    refused_with(state, "segment_frames", json_integer(0),
                 "segment_frames: must be between 1 and 10000");
    refused_with(state, "segment_frames", json_integer(10001),
                 "segment_frames: must be between 1 and 10000");
}

static void overlap_not_less_than_segment(void **state) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "segment_frames", json_integer(16));
    set(j, "overlap_frames", json_integer(16));
    refused(fx, j, "overlap_frames: must be less than segment_frames (16)");
    refused_with(state, "overlap_frames", json_integer(48),
                 "overlap_frames: must be less than segment_frames (48)");
    refused_with(state, "overlap_frames", json_integer(50000),
                 "overlap_frames: must be less than segment_frames (48)");
    refused_with(state, "overlap_frames", json_integer(-1),
                 "overlap_frames: must be between 0 and 9999");
}

static void default_overlap_against_short_segments(void **state) {
    refused_with(state, "segment_frames", json_integer(4),
                 "overlap_frames: must be less than segment_frames (4); the default overlap is 8");
}

static void unknown_engine(void **state) {
    refused_with(state, "engine", json_string("foo"),
                 "engine: unknown engine 'foo' (known: synthetic, exec)");
}

static void engines_come_from_opts(void **state) {
    fixture *fx = *state;
    static const char *const mine[] = {"teleport", NULL};
    rf_spec_opts o = fx->opts;
    o.engines = mine;
    char errs[1024];
    rf_spec *s = NULL;
    assert_int_equal(parse_json(base(fx), &o, &s, errs, sizeof errs), -1);
    assert_non_null(strstr(errs, "engine: unknown engine 'synthetic' (known: teleport)"));
    json_t *j = base(fx);
    set(j, "engine", json_string("teleport"));
    assert_int_equal(parse_json(j, &o, &s, errs, sizeof errs), 0);
    assert_string_equal(s->engine, "teleport");
    rf_spec_free(s);
}

static void missing_required_fields(void **state) {
    refused_with(state, "engine", NULL, "engine: is required");
    refused_with(state, "width", NULL, "width: is required");
    refused_with(state, "height", NULL, "height: is required");
    refused_with(state, "frames", NULL, "frames: is required");
    refused_with(state, "output.path", NULL, "output.path: is required");
    refused_with(state, "output", NULL, "output.path: is required");
}

static void missing_output_directory(void **state) {
    refused_with(state, "output.path", json_string("/nope/x.mp4"),
                 "output.path: directory /nope does not exist");
}

static void output_directory_is_a_file(void **state) {
    fixture *fx = *state;
    char file[600], path[700];
    snprintf(file, sizeof file, "%s/plain", fx->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/x.mp4", file);
    char want[800];
    snprintf(want, sizeof want, "output.path: %s is not a directory", file);
    refused_with(state, "output.path", json_string(path), want);
}

static void output_path_is_a_directory(void **state) {
    fixture *fx = *state;
    char sub[600], want[700];
    snprintf(sub, sizeof sub, "%s/clip.mp4", fx->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(want, sizeof want, "output.path: %s is a directory, not a file", sub);
    refused_with(state, "output.path", json_string(sub), want);
}

static void output_directory_not_writable(void **state) {
    fixture *fx = *state;
    if (geteuid() == 0)
        skip(); /* root may write anywhere */
    char ro[600], path[700], want[800];
    snprintf(ro, sizeof ro, "%s/ro", fx->dir);
    assert_int_equal(mkdir(ro, 0500), 0);
    snprintf(path, sizeof path, "%s/x.mp4", ro);
    snprintf(want, sizeof want, "output.path: directory %s is not writable", ro);
    refused_with(state, "output.path", json_string(path), want);
    chmod(ro, 0700);
}

static void output_dir_unchecked_when_not_asked(void **state) {
    fixture *fx = *state;
    rf_spec_opts o = fx->opts;
    o.check_output_dir = 0;
    json_t *j = base(fx);
    set(j, "output.path", json_string("/nope/x.mp4"));
    char errs[256];
    rf_spec *s = NULL;
    assert_int_equal(parse_json(j, &o, &s, errs, sizeof errs), 0);
    assert_string_equal(s->output_path, "/nope/x.mp4");
    rf_spec_free(s);
}

static void output_path_must_name_a_file(void **state) {
    refused_with(state, "output.path", json_string(""), "output.path: must not be empty");
    refused_with(state, "output.path", json_string("/tmp/"),
                 "output.path: must name a file (got '/tmp/')");
    refused_with(state, "output.path", json_string("a/.."), "output.path: must name a file");
}

static void output_path_too_long(void **state) {
    char path[RF_PATH_MAX + 16];
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    refused_with(state, "output.path", json_string(path),
                 "output.path: must be at most 1023 bytes once made absolute");
}

static void relative_path_made_absolute_against_base_dir(void **state) {
    fixture *fx = *state;
    rf_spec_opts o = fx->opts;
    o.base_dir = fx->dir;
    json_t *j = base(fx);
    set(j, "output.path", json_string("./sub/../clip.mp4"));
    o.check_output_dir = 0; /* "sub" need not exist: nothing is normalised */
    char errs[256], want[600];
    rf_spec *s = NULL;
    assert_int_equal(parse_json(j, &o, &s, errs, sizeof errs), 0);
    snprintf(want, sizeof want, "%s/./sub/../clip.mp4", fx->dir);
    assert_string_equal(s->output_path, want);
    assert_int_equal(s->container, RF_CONTAINER_MP4);
    rf_spec_free(s);

    /* checked directory, base_dir with a trailing slash */
    char base_slash[300];
    snprintf(base_slash, sizeof base_slash, "%s/", fx->dir);
    o.base_dir = base_slash;
    o.check_output_dir = 1;
    j = base(fx);
    set(j, "output.path", json_string("clip.mkv"));
    assert_int_equal(parse_json(j, &o, &s, errs, sizeof errs), 0);
    snprintf(want, sizeof want, "%s/clip.mkv", fx->dir);
    assert_string_equal(s->output_path, want);
    rf_spec_free(s);
}

static void relative_path_without_base_dir_uses_cwd(void **state) {
    fixture *fx = *state;
    rf_spec_opts o = fx->opts;
    o.check_output_dir = 0;
    json_t *j = base(fx);
    set(j, "output.path", json_string("clip.y4m"));
    char errs[256], cwd[512], want[600];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s%sclip.y4m", cwd, strcmp(cwd, "/") ? "/" : "");
    rf_spec *s = NULL;
    assert_int_equal(parse_json(j, &o, &s, errs, sizeof errs), 0);
    assert_string_equal(s->output_path, want);
    rf_spec_free(s);
}

static void unknown_top_level_field(void **state) {
    refused_with(state, "bogus", json_integer(1), "bogus: unknown field");
}

static void unknown_output_field(void **state) {
    refused_with(state, "output.bitrate", json_integer(5000), "output.bitrate: unknown field");
}

static void output_must_be_an_object(void **state) {
    refused_with(state, "output", json_string("/tmp/x.mp4"), "output: must be an object");
}

static void container_and_codec_defaults(void **state) {
    fixture *fx = *state;
    static const struct {
        const char *name;
        rf_container c;
        rf_codec k;
    } cases[] = {{"a.mp4", RF_CONTAINER_MP4, RF_CODEC_H264},
                 {"a.mkv", RF_CONTAINER_MKV, RF_CODEC_FFV1},
                 {"a.y4m", RF_CONTAINER_Y4M, RF_CODEC_RAWVIDEO},
                 {"A.MP4", RF_CONTAINER_MP4, RF_CODEC_H264}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", fx->dir, cases[i].name);
        json_t *j = base(fx);
        set(j, "output.path", json_string(path));
        rf_spec *s = accepted(fx, j);
        assert_int_equal(s->container, cases[i].c);
        assert_int_equal(s->codec, cases[i].k);
        rf_spec_free(s);
    }
    /* an explicit container wins over the extension; codec follows it */
    json_t *j = base(fx);
    set(j, "output.container", json_string("mkv"));
    rf_spec *s = accepted(fx, j);
    assert_int_equal(s->container, RF_CONTAINER_MKV);
    assert_int_equal(s->codec, RF_CODEC_FFV1);
    rf_spec_free(s);
}

static void cannot_infer_container(void **state) {
    fixture *fx = *state;
    char path[700], want[900];
    snprintf(path, sizeof path, "%s/x.avi", fx->dir);
    snprintf(want, sizeof want,
             "output.container: cannot infer from path '%s'; set output.container (mp4, mkv, y4m)",
             path);
    refused_with(state, "output.path", json_string(path), want);
    /* an explicit container makes any name fine */
    json_t *j = base(fx);
    set(j, "output.path", json_string(path));
    set(j, "output.container", json_string("mkv"));
    rf_spec_free(accepted(fx, j));
    /* the extension is looked for in the file's own name only */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/v1.mp4", fx->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/noext", sub);
    refused_with(state, "output.path", json_string(path),
                 "output.container: cannot infer from path");
}

static void codec_container_mismatch(void **state) {
    fixture *fx = *state;
    json_t *j = base(fx); /* a .y4m path */
    set(j, "output.codec", json_string("h264"));
    refused(fx, j, "output.codec: h264 cannot go in a y4m container (y4m takes: rawvideo)");
    j = base(fx);
    set(j, "output.container", json_string("mp4"));
    set(j, "output.codec", json_string("ffv1"));
    refused(fx, j, "output.codec: ffv1 cannot go in a mp4 container (mp4 takes: h264)");
    j = base(fx);
    set(j, "output.container", json_string("mkv"));
    set(j, "output.codec", json_string("rawvideo"));
    refused(fx, j, "output.codec: rawvideo cannot go in a mkv container (mkv takes: ffv1, h264)");
}

static void unknown_container_codec_preset_blend(void **state) {
    refused_with(state, "output.container", json_string("avi"),
                 "output.container: unknown container 'avi' (known: mp4, mkv, y4m)");
    refused_with(state, "output.codec", json_string("vp9"),
                 "output.codec: unknown codec 'vp9' (known: h264, ffv1, rawvideo)");
    refused_with(
        state, "output.preset", json_string("quick"),
        "output.preset: unknown preset 'quick' (known: ultrafast, superfast, veryfast, faster, "
        "fast, medium, slow, slower, veryslow, placebo)");
    refused_with(state, "blend", json_string("cubic"),
                 "blend: unknown blend curve 'cubic' (known: linear, cosine)");
}

static void quality_and_priority_ranges(void **state) {
    refused_with(state, "output.quality", json_integer(52),
                 "output.quality: must be between 0 and 51");
    refused_with(state, "output.quality", json_integer(-1),
                 "output.quality: must be between 0 and 51");
    refused_with(state, "priority", json_integer(1001), "priority: must be between -1000 and 1000");
    refused_with(state, "priority", json_integer(-1001),
                 "priority: must be between -1000 and 1000");
    refused_with(state, "max_running_segments", json_integer(-1),
                 "max_running_segments: must be between 0 and 10000");
    refused_with(state, "max_running_segments", json_integer(10001),
                 "max_running_segments: must be between 0 and 10000");
    refused_with(state, "max_running_segments", json_string("2"),
                 "max_running_segments: must be an integer");
}

static void seed_range(void **state) {
    refused_with(state, "seed", json_integer(-1), "seed: must be between 0 and 9007199254740992");
    refused_with(state, "seed", json_integer(((json_int_t)1 << 53) + 1),
                 "seed: must be between 0 and 9007199254740992");
}

static void fps_forms(void **state) {
    static const char *const bad_strings[] = {"24",    "1/0",   "0/1",           "abc",   "30/1/2",
                                              " 30/1", "-30/1", "1/2",           "241/1", "30/",
                                              "/1",    "+30/1", "99999999999/1", ""};
    const char *hint = "fps: must be an integer 1..240 or a fraction like \"30000/1001\"";
    for (size_t i = 0; i < sizeof bad_strings / sizeof bad_strings[0]; i++)
        refused_with(state, "fps", json_string(bad_strings[i]), hint);
    refused_with(state, "fps", json_integer(0), hint);
    refused_with(state, "fps", json_integer(241), hint);
    refused_with(state, "fps", json_real(29.97), hint);
    refused_with(state, "fps", json_true(), hint);
    refused_with(state, "fps", json_null(), hint);

    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "fps", json_string("60/2")); /* kept as given, not reduced */
    rf_spec *s = accepted(fx, j);
    assert_int_equal(s->fps_num, 60);
    assert_int_equal(s->fps_den, 2);
    rf_spec_free(s);
}

static void bad_ids(void **state) {
    refused_with(state, "id", json_string("a b"),
                 "id: must be 1 to 64 characters from A-Z a-z 0-9 . _ - (got 'a b')");
    refused_with(state, "id", json_string(""), "id: must be 1 to 64 characters");
    refused_with(state, "id", json_string("a/b"), "id: must be 1 to 64 characters");
    refused_with(state, "id",
                 json_string("a2345678901234567890123456789012345678901234567890123456789012345"),
                 "id: must be 1 to 64 characters");
    refused_with(state, "id", json_string(".hidden"),
                 "id: must not start with '.' (got '.hidden')");
    refused_with(state, "id", json_string(".."), "id: must not start with '.'");
    refused_with(state, "id", json_integer(7), "id: must be a string");
}

static void wrong_types(void **state) {
    refused_with(state, "seed", json_string("42"), "seed: must be an integer");
    refused_with(state, "width", json_real(640.5), "width: must be an integer");
    refused_with(state, "width", json_real(640.0), "width: must be an integer");
    refused_with(state, "frames", json_true(), "frames: must be an integer");
    refused_with(state, "priority", json_null(), "priority: must be an integer");
    refused_with(state, "output.quality", json_string("20"), "output.quality: must be an integer");
    refused_with(state, "engine", json_integer(1), "engine: must be a string");
    refused_with(state, "prompt", json_integer(1), "prompt: must be a string");
    refused_with(state, "blend", json_false(), "blend: must be a string");
    refused_with(state, "params", json_string("{}"), "params: must be an object");
    refused_with(state, "output.path", json_integer(3), "output.path: must be a string");
    refused_with(state, "output.container", json_array(), "output.container: must be a string");
    refused_with(state, "output.preset", json_integer(1), "output.preset: must be a string");
}

static void prompt_too_long(void **state) {
    char *prompt = malloc(RF_PROMPT_MAX + 2);
    memset(prompt, 'p', RF_PROMPT_MAX + 1);
    prompt[RF_PROMPT_MAX + 1] = '\0';
    refused_with(state, "prompt", json_string(prompt),
                 "prompt: must be at most 4096 bytes (got 4097)");
    free(prompt);
}

static void params_checked_by_the_engine(void **state) {
    refused_with(state, "params", json_pack("{s:i}", "bad", 1),
                 "params.bad: not allowed for synthetic");
    refused_with(state, "params", json_pack("{s:i}", "silent", 1),
                 "params: rejected by engine 'synthetic'");
    /* an invalid engine has no parameter rules: only the engine is reported */
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "engine", json_string("foo"));
    set(j, "params", json_pack("{s:i}", "bad", 1));
    char errs[1024];
    rf_spec *s = NULL;
    assert_int_equal(parse_json(j, &fx->opts, &s, errs, sizeof errs), -1);
    assert_string_equal(errs, "engine: unknown engine 'foo' (known: synthetic, exec)");
}

/* A stand-in for engine_frame_step: "dit" needs segments on a grid of 4. */
static uint32_t fake_frame_step(const char *engine) { return strcmp(engine, "dit") == 0 ? 4 : 1; }

static json_t *gridded(const fixture *fx, const char *engine, int frames, int seg, int overlap) {
    json_t *j = base(fx);
    set(j, "engine", json_string(engine));
    set(j, "frames", json_integer(frames));
    set(j, "segment_frames", json_integer(seg));
    set(j, "overlap_frames", json_integer(overlap));
    return j;
}

static const char *const GRID_ENGINES[] = {"synthetic", "dit", NULL};

/* An engine with a frame step takes frames, segment_frames and
 * overlap_frames of the form 4n+1, the last two only when the job is cut. */
static void frame_step_accepts_grid_cuts(void **state) {
    fixture *fx = *state;
    rf_spec_opts o = fx->opts;
    o.engines = GRID_ENGINES;
    o.frame_step = fake_frame_step;
    char errs[1024];
    rf_spec *s = NULL;
    assert_int_equal(parse_json(gridded(fx, "dit", 41, 17, 5), &o, &s, errs, sizeof errs), 0);
    rf_spec_free(s);
    assert_int_equal(parse_json(gridded(fx, "dit", 81, 81, 1), &o, &s, errs, sizeof errs), 0);
    rf_spec_free(s);
    /* one segment: its length is the job's, segment and overlap do not matter */
    assert_int_equal(parse_json(gridded(fx, "dit", 9, 48, 8), &o, &s, errs, sizeof errs), 0);
    rf_spec_free(s);
    /* an engine of step 1, and no frame_step at all, take any cut */
    assert_int_equal(parse_json(gridded(fx, "synthetic", 40, 16, 8), &o, &s, errs, sizeof errs), 0);
    rf_spec_free(s);
    o.frame_step = NULL;
    assert_int_equal(parse_json(gridded(fx, "dit", 40, 16, 8), &o, &s, errs, sizeof errs), 0);
    rf_spec_free(s);
}

/* Every field off the grid is named, with values that work. */
static void frame_step_refuses_off_grid_cuts(void **state) {
    fixture *fx = *state;
    rf_spec_opts o = fx->opts;
    o.engines = GRID_ENGINES;
    o.frame_step = fake_frame_step;
    char errs[2048];
    rf_spec *s = NULL;
    assert_int_equal(parse_json(gridded(fx, "dit", 40, 16, 8), &o, &s, errs, sizeof errs), -1);
    assert_string_equal(
        errs, "frames: the dit engine needs 4n+1 frames (got 40; e.g. 37 or 41)\n"
              "segment_frames: the dit engine needs segments of 4n+1 frames (got 16; e.g. 13 or "
              "17)\n"
              "overlap_frames: the dit engine needs overlaps of 4n+1 frames, so that every "
              "segment starts on a multiple of 4 (got 8; e.g. 5 or 9)");
    /* an example overlap is always shorter than the segment */
    assert_int_equal(parse_json(gridded(fx, "dit", 41, 13, 12), &o, &s, errs, sizeof errs), -1);
    assert_string_equal(errs, "overlap_frames: the dit engine needs overlaps of 4n+1 frames, so "
                              "that every segment starts on a multiple of 4 (got 12; e.g. 9)");
    assert_int_equal(parse_json(gridded(fx, "dit", 41, 17, 0), &o, &s, errs, sizeof errs), -1);
    assert_non_null(strstr(errs, "(got 0; e.g. 1 or 5)"));
    assert_int_equal(parse_json(gridded(fx, "dit", 8, 48, 8), &o, &s, errs, sizeof errs), -1);
    assert_string_equal(errs, "frames: the dit engine needs 4n+1 frames (got 8; e.g. 5 or 9)");
    /* not checked on top of a problem it depends on */
    assert_int_equal(parse_json(gridded(fx, "dit", 41, 16, 16), &o, &s, errs, sizeof errs), -1);
    assert_string_equal(errs, "overlap_frames: must be less than segment_frames (16)");
}

static void invalid_json(void **state) {
    fixture *fx = *state;
    refused_text(fx, "{ this is not json", "spec: invalid JSON at line 1 column ");
    refused_text(fx, "{\"frames\": 1,\n \"width\": }", "spec: invalid JSON at line 2 column 11: ");
    refused_text(fx, "", "spec: invalid JSON at line ");
    refused_text(fx, "{\"frames\": 1, \"frames\": 2}", "duplicate object key");
    char errs[256];
    rf_spec *s = NULL;
    assert_int_equal(parse_text("{ nope", &fx->opts, &s, errs, sizeof errs), -1);
    assert_int_equal(count_lines(errs), 1);
}

static void top_level_not_an_object(void **state) {
    fixture *fx = *state;
    static const char *const texts[] = {"[1, 2]", "42", "\"spec\"", "null", "true"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char errs[256];
        rf_spec *s = NULL;
        assert_int_equal(parse_text(texts[i], &fx->opts, &s, errs, sizeof errs), -1);
        assert_string_equal(errs, "spec: must be a JSON object");
        assert_null(s);
    }
}

static void messages_stay_on_one_line(void **state) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "new\nline", json_integer(1));
    set(j, "engine", json_string("x\ny"));
    char errs[1024];
    rf_spec *s = NULL;
    assert_int_equal(parse_json(j, &fx->opts, &s, errs, sizeof errs), -1);
    assert_int_equal(count_lines(errs), 2);
    assert_non_null(strstr(errs, "engine: unknown engine 'x?y'"));
    assert_non_null(strstr(errs, "new?line: unknown field"));
}

/* ---- reporting ------------------------------------------------------------- */

static void every_problem_is_reported(void **state) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "height", json_integer(97));
    set(j, "frames", json_integer(0));
    set(j, "colour", json_string("blue"));
    char errs[1024];
    rf_spec *s = (rf_spec *)(uintptr_t)1;
    assert_int_equal(parse_json(j, &fx->opts, &s, errs, sizeof errs), -1);
    assert_null(s);
    assert_string_equal(errs, "frames: must be between 1 and 1000000\n"
                              "height: must be even for 4:2:0 video (got 97)\n"
                              "colour: unknown field");
}

static json_t *many_problems(const fixture *fx) {
    json_t *j = base(fx);
    for (int i = 0; i < 40; i++) {
        char key[32];
        snprintf(key, sizeof key, "unknown_field_%02d", i);
        set(j, key, json_integer(i));
    }
    return j;
}

static void overflow_ends_with_more_problems(void **state) {
    fixture *fx = *state;
    char errs[200];
    memset(errs, 'X', sizeof errs);
    rf_spec *s = NULL;
    assert_int_equal(parse_json(many_problems(fx), &fx->opts, &s, errs, sizeof errs), -1);
    assert_non_null(memchr(errs, '\0', sizeof errs));
    const char *last = strrchr(errs, '\n');
    assert_non_null(last);
    assert_string_equal(last + 1, "...: more problems not shown");
    assert_int_equal(strncmp(errs, "unknown_field_00: unknown field\n", 32), 0);
    /* whole lines only above the last one */
    for (const char *l = errs; l < last;) {
        const char *nl = strchr(l, '\n');
        assert_true(nl - l > 15 && memcmp(nl - 15, ": unknown field", 15) == 0);
        l = nl + 1;
    }

    /* a buffer too small even for the last line still ends in a NUL */
    char tiny[8];
    memset(tiny, 'X', sizeof tiny);
    assert_int_equal(parse_json(many_problems(fx), &fx->opts, &s, tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "...: mo");

    /* and no buffer at all is allowed */
    assert_int_equal(parse_json(many_problems(fx), &fx->opts, &s, NULL, 0), -1);
    assert_null(s);
}

static void exact_fit_needs_no_marker(void **state) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "zz", json_integer(1));
    const char *want = "zz: unknown field";
    char errs[18]; /* exactly strlen(want) + 1 */
    rf_spec *s = NULL;
    assert_int_equal(parse_json(j, &fx->opts, &s, errs, sizeof errs), -1);
    assert_string_equal(errs, want);
}

static void null_opts_use_defaults(void **state) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "engine", json_string("exec"));
    set(j, "params", json_pack("{s:i}", "bad", 1)); /* no check_params: any object */
    char *text = json_dumps(j, 0);
    json_decref(j);
    rf_spec *s = NULL;
    char errs[256];
    assert_int_equal(rf_spec_parse(text, strlen(text), NULL, &s, errs, sizeof errs), 0);
    assert_string_equal(s->params_json, "{\"bad\":1}");
    rf_spec_free(s);
    free(text);
}

/* ---- canonical JSON --------------------------------------------------------- */

static void assert_same_spec(const rf_spec *a, const rf_spec *b) {
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->engine, b->engine);
    assert_string_equal(a->params_json, b->params_json);
    assert_string_equal(a->prompt, b->prompt);
    assert_true(a->seed == b->seed);
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    assert_int_equal(a->fps_num, b->fps_num);
    assert_int_equal(a->fps_den, b->fps_den);
    assert_int_equal(a->frames, b->frames);
    assert_int_equal(a->segment_frames, b->segment_frames);
    assert_int_equal(a->overlap_frames, b->overlap_frames);
    assert_int_equal(a->blend, b->blend);
    assert_string_equal(a->output_path, b->output_path);
    assert_int_equal(a->container, b->container);
    assert_int_equal(a->codec, b->codec);
    assert_int_equal(a->quality, b->quality);
    assert_string_equal(a->preset, b->preset);
    assert_int_equal(a->priority, b->priority);
}

static void round_trip(const fixture *fx, json_t *j) {
    rf_spec *a = accepted(fx, j);
    char *text = rf_spec_to_json(a);
    assert_non_null(text);
    rf_spec_opts o = fx->opts;
    o.check_output_dir = 0;
    char errs[1024];
    rf_spec *b = NULL;
    if (parse_text(text, &o, &b, errs, sizeof errs) != 0)
        fail_msg("canonical JSON refused: %s\n%s", errs, text);
    assert_same_spec(a, b);
    char *again = rf_spec_to_json(b);
    assert_string_equal(text, again); /* canonical: one spec, one text */
    free(again);
    free(text);
    rf_spec_free(a);
    rf_spec_free(b);
}

static void to_json_round_trips(void **state) {
    fixture *fx = *state;
    round_trip(fx, base(fx));
    round_trip(fx, full(fx));
}

static void to_json_is_explicit(void **state) {
    fixture *fx = *state;
    json_t *j = base(fx);
    set(j, "id", json_string("clip-1"));
    rf_spec *s = accepted(fx, j);
    char *text = rf_spec_to_json(s);
    char want[1024];
    snprintf(want, sizeof want,
             "{\"id\":\"clip-1\",\"engine\":\"synthetic\",\"params\":{},\"prompt\":\"\",\"seed\":0,"
             "\"width\":64,\"height\":32,\"fps\":\"24/1\",\"frames\":10,\"segment_frames\":48,"
             "\"overlap_frames\":8,\"blend\":\"cosine\",\"output\":{\"path\":\"%s\",\"container\":"
             "\"y4m\",\"codec\":\"rawvideo\",\"quality\":20,\"preset\":\"medium\"},\"priority\":0,"
             "\"max_running_segments\":0}",
             fx->path);
    assert_string_equal(text, want);
    free(text);
    rf_spec_free(s);
    assert_null(rf_spec_to_json(NULL));
}

static void names_and_free(void **state) {
    (void)state;
    assert_string_equal(rf_blend_name(RF_BLEND_LINEAR), "linear");
    assert_string_equal(rf_blend_name(RF_BLEND_COSINE), "cosine");
    assert_string_equal(rf_container_name(RF_CONTAINER_MP4), "mp4");
    assert_string_equal(rf_container_name(RF_CONTAINER_MKV), "mkv");
    assert_string_equal(rf_container_name(RF_CONTAINER_Y4M), "y4m");
    assert_string_equal(rf_codec_name(RF_CODEC_H264), "h264");
    assert_string_equal(rf_codec_name(RF_CODEC_FFV1), "ffv1");
    assert_string_equal(rf_codec_name(RF_CODEC_RAWVIDEO), "rawvideo");
    assert_int_equal(rf_spec_frame_bytes(NULL), 0);
    rf_spec_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minimal_spec_gets_the_defaults),
        cmocka_unit_test(full_spec_is_read_exactly),
        cmocka_unit_test(limits_themselves_are_accepted),
        cmocka_unit_test(odd_sizes),
        cmocka_unit_test(size_out_of_range),
        cmocka_unit_test(frame_larger_than_8k),
        cmocka_unit_test(segment_larger_than_8_gib),
        cmocka_unit_test(too_many_segments),
        cmocka_unit_test(frames_out_of_range),
        cmocka_unit_test(segment_frames_out_of_range),
        cmocka_unit_test(overlap_not_less_than_segment),
        cmocka_unit_test(default_overlap_against_short_segments),
        cmocka_unit_test(unknown_engine),
        cmocka_unit_test(engines_come_from_opts),
        cmocka_unit_test(missing_required_fields),
        cmocka_unit_test(missing_output_directory),
        cmocka_unit_test(output_directory_is_a_file),
        cmocka_unit_test(output_path_is_a_directory),
        cmocka_unit_test(output_directory_not_writable),
        cmocka_unit_test(output_dir_unchecked_when_not_asked),
        cmocka_unit_test(output_path_must_name_a_file),
        cmocka_unit_test(output_path_too_long),
        cmocka_unit_test(relative_path_made_absolute_against_base_dir),
        cmocka_unit_test(relative_path_without_base_dir_uses_cwd),
        cmocka_unit_test(unknown_top_level_field),
        cmocka_unit_test(unknown_output_field),
        cmocka_unit_test(output_must_be_an_object),
        cmocka_unit_test(container_and_codec_defaults),
        cmocka_unit_test(cannot_infer_container),
        cmocka_unit_test(codec_container_mismatch),
        cmocka_unit_test(unknown_container_codec_preset_blend),
        cmocka_unit_test(quality_and_priority_ranges),
        cmocka_unit_test(seed_range),
        cmocka_unit_test(fps_forms),
        cmocka_unit_test(bad_ids),
        cmocka_unit_test(wrong_types),
        cmocka_unit_test(prompt_too_long),
        cmocka_unit_test(params_checked_by_the_engine),
        cmocka_unit_test(frame_step_accepts_grid_cuts),
        cmocka_unit_test(frame_step_refuses_off_grid_cuts),
        cmocka_unit_test(invalid_json),
        cmocka_unit_test(top_level_not_an_object),
        cmocka_unit_test(messages_stay_on_one_line),
        cmocka_unit_test(every_problem_is_reported),
        cmocka_unit_test(overflow_ends_with_more_problems),
        cmocka_unit_test(exact_fit_needs_no_marker),
        cmocka_unit_test(null_opts_use_defaults),
        cmocka_unit_test(to_json_round_trips),
        cmocka_unit_test(to_json_is_explicit),
        cmocka_unit_test(names_and_free),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
