/* rf_y4m — YUV4MPEG2 reading (through a caller's read callback) and writing
 * (to stdio). See rf_y4m.h for the contract.
 *
 * The stream is untrusted: it comes from an operator's command, which may
 * print garbage, die half-way through a frame or never end a line. So the
 * reader
 *   - bounds every text line (the stream header and each FRAME line) at
 *     Y4M_MAX_LINE bytes, so input without a newline cannot make it read or
 *     allocate without end;
 *   - checks the magic as soon as its bytes arrive, so a wrong stream fails
 *     after a few bytes rather than after a line that may never end;
 *   - bounds the frame size (Y4M_MAX_DIM per side) before anyone allocates a
 *     frame buffer from it;
 *   - tells a clean end (end of stream exactly where a FRAME line would
 *     start) from a truncated frame, and names the frame and the byte count
 *     in the latter.
 *
 * Bytes arrive through a fixed buffer inside the reader: header and FRAME
 * lines are scanned out of it byte by byte without a call per byte, and the
 * bulk of a frame is read straight into the caller's buffer. A callback may
 * return fewer bytes than asked for at any time (a pipe does); only a 0
 * (end of stream) or -1 (its own error) ends reading.
 *
 * Tags other than W, H, F and C are accepted and ignored (I, A, X and any
 * future tag): interlacing and aspect do not change the byte layout, and the
 * farm's frames are progressive I420 by contract.
 */
#include "rf_y4m.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define Y4M_MAGIC "YUV4MPEG2"
#define Y4M_MAGIC_LEN 9
/* Longest header or FRAME line accepted, newline excluded. Real headers are
 * under 100 bytes; X tags may add some. */
#define Y4M_MAX_LINE 4096
/* Largest width or height accepted: twice the farm's own limit, so that a
 * header never asks anyone to allocate more than ~400 MB per frame. */
#define Y4M_MAX_DIM 16384
#define Y4M_BUF 65536

struct rf_y4m_reader {
    rf_y4m_read_fn read;
    void *ctx;
    rf_y4m_info info;
    uint64_t frames; /* frames read so far: the index of the next one */
    int at_end;      /* the callback reported end of stream */
    int failed;      /* an earlier call failed: the stream position is lost */
    size_t pos, len; /* unread bytes are buf[pos..len) */
    uint8_t buf[Y4M_BUF];
};

/* Call the callback and check that it kept its promise. */
static ssize_t call_read(rf_y4m_reader *r, void *dst, size_t n, char *err, size_t errlen) {
    if (r->at_end)
        return 0;
    ssize_t got = r->read(r->ctx, dst, n, err, errlen);
    if (got < 0) {
        if (errlen && err[0] == '\0')
            snprintf(err, errlen, "y4m: read failed");
        return -1;
    }
    if ((size_t)got > n) {
        snprintf(err, errlen, "y4m: read callback returned %zd bytes for a %zu-byte request", got, n);
        return -1;
    }
    if (got == 0)
        r->at_end = 1;
    return got;
}

/* Next byte of the stream into *c. Returns 1, 0 at end of stream, -1 on
 * error. */
static int next_byte(rf_y4m_reader *r, uint8_t *c, char *err, size_t errlen) {
    if (r->pos == r->len) {
        ssize_t got = call_read(r, r->buf, sizeof r->buf, err, errlen);
        if (got <= 0)
            return (int)got;
        r->pos = 0;
        r->len = (size_t)got;
    }
    *c = r->buf[r->pos++];
    return 1;
}

/* Write `n` bytes of `s` into out (cap bytes) as printable text, escaping
 * anything else, for error messages about what the stream held. */
static void printable(const uint8_t *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    if (!cap)
        return;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
            out[o++] = (char)s[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", s[i]);
    }
    out[o] = '\0';
}

/* Read the rest of a line (up to '\n', which is consumed and not stored)
 * into line[0..*n). `what` names the line in errors. Returns 0, or -1 on
 * error, end of stream inside the line, or a line over Y4M_MAX_LINE. */
static int read_line_rest(rf_y4m_reader *r, char *line, size_t *n, const char *what, char *err,
                          size_t errlen) {
    for (;;) {
        uint8_t c;
        int rc = next_byte(r, &c, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            snprintf(err, errlen, "y4m: stream ended inside the %s", what);
            return -1;
        }
        if (c == '\n')
            break;
        if (*n >= Y4M_MAX_LINE) {
            snprintf(err, errlen, "y4m: %s longer than %d bytes (no newline)", what, Y4M_MAX_LINE);
            return -1;
        }
        line[(*n)++] = (char)c;
    }
    line[*n] = '\0';
    return 0;
}

/* Parse a decimal number of at most `max` from s[0..n). -1 if it is not
 * one (empty, a sign, other characters, too large). */
static int parse_uint(const char *s, size_t n, uint32_t max, uint32_t *out) {
    if (n == 0)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_dim(const char *tok, size_t n, const char *name, uint32_t *out, char *err,
                     size_t errlen) {
    uint32_t v;
    if (parse_uint(tok + 1, n - 1, UINT32_MAX, &v) != 0) {
        if (n > 1 && strspn(tok + 1, "0123456789") >= n - 1)
            snprintf(err, errlen, "y4m: %s %.*s is out of range 1..%d", name, (int)(n - 1), tok + 1,
                     Y4M_MAX_DIM);
        else
            snprintf(err, errlen, "y4m: bad %s tag \"%.*s\"", name, (int)n, tok);
        return -1;
    }
    if (v < 1 || v > Y4M_MAX_DIM) {
        snprintf(err, errlen, "y4m: %s %u is out of range 1..%d", name, v, Y4M_MAX_DIM);
        return -1;
    }
    *out = v;
    return 0;
}

/* F<num>:<den>. F0:0 means "unknown" to some writers and is kept as 0/0. */
static int parse_rate(const char *tok, size_t n, rf_y4m_info *info, char *err, size_t errlen) {
    const char *colon = memchr(tok, ':', n);
    uint32_t num, den;
    if (!colon || parse_uint(tok + 1, (size_t)(colon - tok - 1), UINT32_MAX, &num) != 0 ||
        parse_uint(colon + 1, n - (size_t)(colon - tok) - 1, UINT32_MAX, &den) != 0 ||
        (den == 0 && num != 0)) {
        snprintf(err, errlen, "y4m: bad frame rate tag \"%.*s\" (want F<num>:<den>)", (int)n, tok);
        return -1;
    }
    if (num == 0)
        den = 0;
    info->fps_num = num;
    info->fps_den = den;
    return 0;
}

static int parse_chroma(const char *tok, size_t n, char *err, size_t errlen) {
    static const char *const ok[] = {"C420", "C420jpeg", "C420paldv", "C420mpeg2"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strlen(ok[i]) == n && memcmp(ok[i], tok, n) == 0)
            return 0;
    snprintf(err, errlen,
             "y4m: chroma %.*s is not supported (only 8-bit 4:2:0: C420, C420jpeg, C420paldv, "
             "C420mpeg2)",
             (int)n, tok);
    return -1;
}

/* Parse the tags after the magic: " W64 H48 F24:1 Ip A1:1 C420jpeg". */
static int parse_header(const char *line, rf_y4m_info *info, char *err, size_t errlen) {
    int have_w = 0, have_h = 0;
    const char *p = line;
    while (*p) {
        if (*p == ' ') {
            p++;
            continue;
        }
        size_t n = strcspn(p, " ");
        int rc = 0;
        switch (p[0]) {
        case 'W':
            rc = parse_dim(p, n, "width", &info->width, err, errlen);
            have_w = 1;
            break;
        case 'H':
            rc = parse_dim(p, n, "height", &info->height, err, errlen);
            have_h = 1;
            break;
        case 'F':
            rc = parse_rate(p, n, info, err, errlen);
            break;
        case 'C':
            rc = parse_chroma(p, n, err, errlen);
            break;
        default: /* I, A, X and tags from later revisions: no effect on the bytes */
            break;
        }
        if (rc != 0)
            return -1;
        p += n;
    }
    if (!have_w || !have_h) {
        snprintf(err, errlen, "y4m: stream header has no %s tag", !have_w ? "W (width)" : "H (height)");
        return -1;
    }
    /* 4:2:0 chroma planes round odd sizes up. */
    size_t cw = ((size_t)info->width + 1) / 2, ch = ((size_t)info->height + 1) / 2;
    info->frame_bytes = (size_t)info->width * info->height + 2 * cw * ch;
    return 0;
}

int rf_y4m_reader_new(rf_y4m_read_fn read, void *ctx, rf_y4m_reader **out, char *err,
                      size_t errlen) {
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    rf_y4m_reader *r = calloc(1, sizeof *r);
    char *line = malloc(Y4M_MAX_LINE + 1);
    if (!r || !line) {
        snprintf(err, errlen, "y4m: out of memory");
        goto fail;
    }
    r->read = read;
    r->ctx = ctx;

    /* The magic and the byte after it, checked as they arrive. */
    uint8_t head[Y4M_MAGIC_LEN + 1];
    size_t got = 0;
    for (; got < sizeof head; got++) {
        int rc = next_byte(r, &head[got], err, errlen);
        if (rc < 0)
            goto fail;
        int bad = rc == 0 || (got < Y4M_MAGIC_LEN ? head[got] != (uint8_t)Y4M_MAGIC[got]
                                                  : head[got] != ' ' && head[got] != '\n');
        if (bad) {
            /* Show what the stream began with: the bytes checked and those
             * already buffered, without waiting for more. */
            uint8_t start[16];
            size_t k = got + (rc > 0), more = r->len - r->pos;
            memcpy(start, head, k);
            if (more > sizeof start - k)
                more = sizeof start - k;
            memcpy(start + k, r->buf + r->pos, more);
            char seen[80];
            printable(start, k + more, seen, sizeof seen);
            /* At an end of stream every byte so far matched the magic. */
            if (rc == 0 && got == 0)
                snprintf(err, errlen, "y4m: empty stream (no YUV4MPEG2 header)");
            else if (rc == 0)
                snprintf(err, errlen, "y4m: stream ended inside the stream header");
            else
                snprintf(err, errlen, "y4m: not a YUV4MPEG2 stream (it starts with \"%s\")", seen);
            goto fail;
        }
    }
    size_t n = 0;
    line[0] = '\0';
    if (head[Y4M_MAGIC_LEN] == ' ' &&
        read_line_rest(r, line, &n, "stream header", err, errlen) != 0)
        goto fail;
    if (parse_header(line, &r->info, err, errlen) != 0)
        goto fail;
    free(line);
    *out = r;
    return 0;
fail:
    free(line);
    free(r);
    return -1;
}

const rf_y4m_info *rf_y4m_reader_info(const rf_y4m_reader *r) {
    return &r->info;
}

/* The FRAME line. Returns 1 when one was read, 0 at a clean end of stream,
 * -1 on error. */
static int read_frame_line(rf_y4m_reader *r, char *err, size_t errlen) {
    char line[Y4M_MAX_LINE + 1];
    uint8_t c;
    int rc = next_byte(r, &c, err, errlen);
    if (rc <= 0)
        return rc;
    size_t n = 0;
    line[n++] = (char)c;
    if (c != '\n') {
        char what[64];
        snprintf(what, sizeof what, "FRAME line of frame %llu", (unsigned long long)r->frames);
        if (read_line_rest(r, line, &n, what, err, errlen) != 0)
            return -1;
    } else {
        line[0] = '\0';
        n = 0;
    }
    if (n < 5 || memcmp(line, "FRAME", 5) != 0 || (n > 5 && line[5] != ' ')) {
        char seen[80];
        printable((const uint8_t *)line, n < 16 ? n : 16, seen, sizeof seen);
        snprintf(err, errlen, "y4m: frame %llu: expected \"FRAME\", got \"%s\"%s",
                 (unsigned long long)r->frames, seen, n > 16 ? "..." : "");
        return -1;
    }
    return 1;
}

int rf_y4m_read_frame(rf_y4m_reader *r, uint8_t *buf, size_t len, char *err, size_t errlen) {
    if (errlen)
        err[0] = '\0';
    if (r->failed) {
        snprintf(err, errlen, "y4m: frame %llu: the stream failed earlier",
                 (unsigned long long)r->frames);
        return -1;
    }
    size_t need = r->info.frame_bytes;
    if (len < need) {
        snprintf(err, errlen, "y4m: frame buffer of %zu bytes is smaller than a frame (%zu bytes)",
                 len, need);
        return -1;
    }
    int rc = read_frame_line(r, err, errlen);
    if (rc <= 0) {
        r->failed = rc < 0;
        return rc;
    }
    size_t have = r->len - r->pos;
    if (have > need)
        have = need;
    memcpy(buf, r->buf + r->pos, have);
    r->pos += have;
    while (have < need) {
        ssize_t got = call_read(r, buf + have, need - have, err, errlen);
        if (got < 0) {
            r->failed = 1;
            return -1;
        }
        if (got == 0) {
            snprintf(err, errlen, "y4m: frame %llu: stream ended after %zu of %zu bytes",
                     (unsigned long long)r->frames, have, need);
            r->failed = 1;
            return -1;
        }
        have += (size_t)got;
    }
    r->frames++;
    return 1;
}

void rf_y4m_reader_free(rf_y4m_reader *r) {
    free(r);
}

int rf_y4m_write_header(FILE *f, uint32_t width, uint32_t height, uint32_t fps_num,
                        uint32_t fps_den) {
    if (width == 0 || height == 0 || (fps_num != 0 && fps_den == 0)) {
        errno = EINVAL;
        return -1;
    }
    /* C420jpeg is what FFmpeg writes for yuv420p, so our files and its files
     * of the same pixels carry the same header. */
    int rc = fps_num ? fprintf(f, "YUV4MPEG2 W%u H%u F%u:%u Ip A1:1 C420jpeg\n", width, height,
                               fps_num, fps_den)
                     : fprintf(f, "YUV4MPEG2 W%u H%u Ip A1:1 C420jpeg\n", width, height);
    return rc < 0 ? -1 : 0;
}

int rf_y4m_write_frame(FILE *f, const uint8_t *i420, size_t len) {
    if (fputs("FRAME\n", f) == EOF)
        return -1;
    if (len && fwrite(i420, 1, len, f) != len)
        return -1;
    return 0;
}
