/* rf_spec — the job specification: what an operator asks the farm to render.
 *
 * A job spec arrives as JSON (from `rfarm submit`, later the HTTP API) and is
 * parsed and validated here, in one place, so the CLI, the coordinator and
 * the tests agree on what is acceptable. Validation never stops at the first
 * problem: it reports every problem it finds, one line each, in the form
 * "field: reason", so an operator fixes a spec in one round trip. A spec that
 * has any problem yields no rf_spec at all: nothing half-valid escapes.
 *
 * The JSON fields (all documented in README.md):
 *   id              string, optional, [A-Za-z0-9._-]{1,64}; generated if absent
 *   engine          "synthetic" | "exec"
 *   params          object, engine parameters (checked per engine)
 *   prompt          string, at most 4096 bytes
 *   seed            integer 0 .. 2^53
 *   width, height   even integers 16 .. 8192 (I420 needs even sizes)
 *   fps             integer 1..240, or a string "num/den"
 *   frames          integer 1 .. 1000000
 *   segment_frames  integer 1 .. 10000 (default 48)
 *   overlap_frames  integer 0 .. segment_frames-1 (default 8)
 *                   (frames, segment_frames and overlap_frames together may
 *                   make at most RF_SPEC_MAX_SEGMENTS segments; an engine
 *                   with a frame step q > 1 needs frames, and when the job
 *                   is cut, segment_frames and overlap_frames, all of the
 *                   form q*n+1: see rf_spec_opts.frame_step)
 *   blend           "linear" | "cosine" (default "cosine")
 *   output          object: path (required), container (mp4|mkv|y4m, default
 *                   from the path's extension), codec (h264|ffv1|rawvideo,
 *                   default from the container), quality (0..51, x264 CRF,
 *                   default 20), preset (x264 preset, default "medium")
 *   priority        integer -1000 .. 1000 (default 0)
 *   max_running_segments  integer 0 .. RF_SPEC_MAX_SEGMENTS: at most this many
 *                   of the job's segments render at once (default 0: no cap)
 */
#ifndef RF_SPEC_H
#define RF_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define RF_ID_MAX 64
#define RF_PROMPT_MAX 4096
#define RF_PATH_MAX 1024
/* Most segments one job may be cut into: each is a Redis record written
 * when the job is created and a slot the coordinator tracks in memory. */
#define RF_SPEC_MAX_SEGMENTS 10000

typedef enum { RF_BLEND_LINEAR = 0, RF_BLEND_COSINE = 1 } rf_blend_curve;

typedef enum { RF_CONTAINER_MP4 = 0, RF_CONTAINER_MKV, RF_CONTAINER_Y4M } rf_container;

typedef enum { RF_CODEC_H264 = 0, RF_CODEC_FFV1, RF_CODEC_RAWVIDEO } rf_codec;

typedef struct rf_spec {
    char id[RF_ID_MAX + 1];
    char engine[32];
    char *params_json; /* owned; compact JSON object, "{}" when absent */
    char *prompt;      /* owned; "" when absent */
    uint64_t seed;
    uint32_t width, height;
    uint32_t fps_num, fps_den;
    uint32_t frames;
    uint32_t segment_frames;
    uint32_t overlap_frames;
    rf_blend_curve blend;
    char output_path[RF_PATH_MAX];
    rf_container container;
    rf_codec codec;
    int quality;
    char preset[32];
    int priority;
    uint32_t max_running_segments; /* 0: no cap */
} rf_spec;

/* How a spec is checked. The coordinator validates against its own view of
 * the world (engines it knows, directories it can write); a NULL engines list
 * accepts the engines this build knows about. */
typedef struct rf_spec_opts {
    const char *const *engines; /* NULL-terminated, or NULL for the defaults */
    int check_output_dir;       /* 1: the output's directory must exist and be writable;
                                 * 2: or be creatable under an existing writable one */
    const char *base_dir;       /* relative output paths are made absolute against it; NULL: cwd */
    /* The engine's own parameter check (engine_check_params): returns the
     * number of problems and appends "params.x: reason" lines to errs.
     * NULL: params must merely be an object. */
    int (*check_params)(const char *engine, const char *params_json, char *errs, size_t errlen);
    /* How the engine needs its segments cut (engine_frame_step): every
     * segment must start on a multiple of the step and hold step*n + 1
     * frames. Segments start every segment_frames - overlap_frames frames
     * and the last ends at the job's end, so that holds exactly when frames
     * is step*n + 1 and, for a job longer than one segment, segment_frames
     * and overlap_frames are too; anything else is refused naming the
     * field and values that work. NULL, or a step of 0 or 1: any cut. */
    uint32_t (*frame_step)(const char *engine);
} rf_spec_opts;

/* Parse and validate a JSON job spec of `len` bytes.
 * On success returns 0 and *out is a new spec owned by the caller
 * (rf_spec_free). On failure returns -1, *out is NULL and `errs` holds one
 * "field: reason" line per problem, separated by '\n' (truncated to errlen). */
int rf_spec_parse(const char *json, size_t len, const rf_spec_opts *opts, rf_spec **out, char *errs,
                  size_t errlen);

/* The spec as canonical JSON (every field explicit, defaults filled in).
 * Re-parsing it gives the same spec. Returns a malloc'd string or NULL. */
char *rf_spec_to_json(const rf_spec *spec);

void rf_spec_free(rf_spec *spec);

/* Bytes of one I420 frame of the spec's size. */
size_t rf_spec_frame_bytes(const rf_spec *spec);

const char *rf_blend_name(rf_blend_curve c);
const char *rf_container_name(rf_container c);
const char *rf_codec_name(rf_codec c);

#endif
