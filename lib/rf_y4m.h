/* rf_y4m — reading YUV4MPEG2 streams (the exec engine's contract with an
 * operator's command) and writing them (tests, tools).
 *
 * The reader pulls bytes through a callback so that its caller decides how
 * to wait (a pipe with a deadline, a file, a memory buffer). Only 4:2:0
 * chroma (C420, C420jpeg, C420paldv, C420mpeg2, or no C tag) is accepted:
 * the farm's frames are I420 end to end. A malformed header or a short
 * frame is an error naming what was wrong, never a silent truncation.
 */
#ifndef RF_Y4M_H
#define RF_Y4M_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Read up to n bytes into buf. Returns bytes read (> 0), 0 at end of
 * stream, -1 on error (with a reason in err). */
typedef ssize_t (*rf_y4m_read_fn)(void *ctx, void *buf, size_t n, char *err, size_t errlen);

typedef struct rf_y4m_reader rf_y4m_reader;

typedef struct rf_y4m_info {
    uint32_t width, height;
    uint32_t fps_num, fps_den; /* 0/0 when the header has no F tag */
    size_t frame_bytes;        /* I420 bytes per frame */
} rf_y4m_info;

/* Read and parse the stream header. On success *out is a new reader owned
 * by the caller (rf_y4m_reader_free). */
int rf_y4m_reader_new(rf_y4m_read_fn read, void *ctx, rf_y4m_reader **out, char *err,
                      size_t errlen);
const rf_y4m_info *rf_y4m_reader_info(const rf_y4m_reader *r);
/* Read the next frame into buf (len >= info.frame_bytes). Returns 1 when a
 * frame was read, 0 at a clean end of stream, -1 on error. */
int rf_y4m_read_frame(rf_y4m_reader *r, uint8_t *buf, size_t len, char *err, size_t errlen);
void rf_y4m_reader_free(rf_y4m_reader *r);

/* Writing, to a stdio stream. */
int rf_y4m_write_header(FILE *f, uint32_t width, uint32_t height, uint32_t fps_num,
                        uint32_t fps_den);
int rf_y4m_write_frame(FILE *f, const uint8_t *i420, size_t len);

#endif
