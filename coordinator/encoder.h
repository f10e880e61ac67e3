/* encoder — writes a stream of I420 frames to a video file with FFmpeg's
 * libraries (libavcodec + libavformat), in presentation order.
 *
 * Outputs: H.264 (libx264) in MP4 with the moov atom moved to the front
 * (faststart) for playback; FFV1 in Matroska and raw video in YUV4MPEG2 for
 * lossless, exact comparisons. Every output is written bit-exact (no
 * random UIDs, no encoder version strings, no dates), so the same frames
 * always give the same bytes.
 *
 * The encoder writes exactly where it is told; the stitcher gives it a
 * temporary name and renames on success, so a failed job leaves no
 * half-written video behind.
 */
#ifndef ENCODER_H
#define ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "rf_spec.h"

typedef struct enc enc;

typedef struct enc_opts {
    const char *path;
    rf_container container;
    rf_codec codec;
    uint32_t width, height; /* even */
    uint32_t fps_num, fps_den;
    int quality;        /* x264 CRF 0..51; ignored by lossless codecs */
    const char *preset; /* x264 preset; NULL: "medium" */
    int threads;        /* encoder threads; 0: libavcodec decides */
} enc_opts;

/* Open the output file and the encoder. On success *out is a new encoder
 * owned by the caller, released by enc_close or enc_abort. */
int enc_open(const enc_opts *opts, enc **out, char *err, size_t errlen);

/* Encode one frame (I420, rf_i420_bytes(width, height) bytes; the encoder
 * copies what it keeps). */
int enc_write(enc *e, const uint8_t *i420, char *err, size_t errlen);

/* Frames written so far. */
uint64_t enc_frames(const enc *e);

/* Flush the encoder, write the trailer, close the file and free e (also on
 * failure). */
int enc_close(enc *e, char *err, size_t errlen);

/* Free e and delete the partly written file. Accepts NULL. */
void enc_abort(enc *e);

#endif
