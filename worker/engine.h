/* engine — the one interface every renderer sits behind.
 *
 * An engine turns a segment description into I420 frames, in order, one
 * call of the frame callback per frame. The worker owns threads, sockets and
 * retries; an engine only renders. Engines are looked up by name
 * ("synthetic", "exec"); the coordinator uses the same table to validate a
 * job's engine parameters with the engine's own parser, so a job that a
 * worker would refuse is refused at submission instead.
 *
 * Implementations: engine_synthetic.c (procedural test/benchmark video),
 * engine_exec.c (an operator's command that writes YUV4MPEG2 to stdout).
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct engine_segment {
    const char *job_id;
    uint32_t segment;     /* index of the segment within the job */
    uint32_t attempt;     /* 1 for the first try */
    uint32_t first_frame; /* absolute index of the segment's first frame */
    uint32_t frames;      /* frames in this segment */
    uint32_t job_frames;  /* frames in the whole job */
    uint32_t width, height;
    uint32_t fps_num, fps_den;
    uint64_t seed;
    const char *prompt;      /* never NULL */
    const char *params_json; /* the job's "params" object, never NULL */
} engine_segment;

/* Receives frame `abs_frame` (absolute index) as I420 pixels of
 * rf_i420_bytes(width, height) bytes. The buffer is only valid during the
 * call. Return 0 to go on, non-zero to make the engine stop and return -1. */
typedef int (*engine_frame_fn)(void *ctx, uint32_t abs_frame, const uint8_t *pixels, size_t len);
/* Optional: a buffer of len bytes to render the next frame into and pass
 * to the frame callback, which then takes it over (the worker sends it
 * without copying it). Asked again before that frame was passed (a failed
 * frame), it hands out the same buffer. NULL, or a NULL result: the engine
 * uses a buffer of its own. */
typedef uint8_t *(*engine_buffer_fn)(void *ctx, size_t len);

/* Receives a line the engine wants in the job's log (the exec engine's
 * stderr, line by line). May be NULL. */
typedef void (*engine_log_fn)(void *ctx, const char *line);

/* What engines keep from one segment to the next inside one worker
 * process: the dit engine's loaded models. The worker makes one, hands it
 * to every render (its render threads share it; engines lock what they
 * keep) and frees it when it exits. */
typedef struct engine_cache engine_cache;

/* On success *out is owned by the caller (engine_cache_free). */
int engine_cache_new(engine_cache **out, char *err, size_t errlen);
/* No render may be using it any more. Accepts NULL. */
void engine_cache_free(engine_cache *c);

typedef struct engine_io {
    engine_frame_fn frame;
    engine_buffer_fn buffer; /* may be NULL */
    engine_log_fn log;
    void *ctx;
    const atomic_int *stop; /* non-zero: abandon the segment soon (cancel, shutdown) */
    engine_cache *cache;    /* may be NULL: nothing is kept between segments */
} engine_io;

/* Render every frame of `seg`. Returns 0 when all seg->frames frames were
 * delivered; -1 with a readable reason in err otherwise (an engine failure,
 * a callback that asked to stop, or *stop set). */
int engine_render(const char *engine, const engine_segment *seg, const engine_io *io, char *err,
                  size_t errlen);

/* Check an engine's parameters (a JSON object as text). Returns the number
 * of problems found (0 when valid); each problem is appended to errs as a
 * line "params.<name>: reason\n". An unknown engine is one problem,
 * reported as "engine: ...". */
int engine_check_params(const char *engine, const char *params_json, char *errs, size_t errlen);

/* How an engine needs its segments cut: each must start on a frame that is
 * a multiple of the step and hold step*n + 1 frames (n >= 0). 1 for an
 * engine that takes any cut; 0 for an unknown engine. The dit engine's is
 * 4: its VAE turns T latent frames into 4T-3 frames, and a segment's noise
 * is addressed by absolute latent frame (first_frame / 4). The job spec
 * check refuses frames / segment_frames / overlap_frames that the planner
 * would cut otherwise (rf_spec_opts.frame_step). */
uint32_t engine_frame_step(const char *engine);

/* NULL-terminated list of the engines this build has. */
const char *const *engine_names(void);

#endif
