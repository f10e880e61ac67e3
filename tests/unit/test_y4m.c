/* test_y4m — the YUV4MPEG2 reader and writer (lib/rf_y4m.c).
 *
 * The reader faces operators' commands, so most cases here are hostile or
 * broken streams: each must fail with a message that names the problem,
 * and none may read or allocate without bound. Streams come from memory
 * through a read callback that can deliver them in chunks of any size,
 * down to one byte per call, as a slow pipe would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_util.h"
#include "rf_y4m.h"

#define W 64
#define H 48

/* A stream in memory, handed out at most `chunk` bytes per call. */
typedef struct mem {
    const uint8_t *data;
    size_t len, pos, chunk;
    size_t calls;
} mem;

static ssize_t mem_read(void *ctx, void *buf, size_t n, char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    mem *m = ctx;
    m->calls++;
    size_t k = m->len - m->pos;
    if (k > n)
        k = n;
    if (m->chunk && k > m->chunk)
        k = m->chunk;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

static mem mem_of(const char *s) {
    return (mem){.data = (const uint8_t *)s, .len = strlen(s)};
}

/* A stream that never ends: "YUV4MPEG2 " and then `fill` forever. */
typedef struct endless {
    size_t served;
    char fill;
} endless;

static ssize_t endless_read(void *ctx, void *buf, size_t n, char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    endless *e = ctx;
    static const char head[] = "YUV4MPEG2 ";
    uint8_t *out = buf;
    for (size_t i = 0; i < n; i++, e->served++)
        out[i] = e->served < sizeof head - 1 ? (uint8_t)head[e->served] : (uint8_t)e->fill;
    return (ssize_t)n;
}

static ssize_t failing_read(void *ctx, void *buf, size_t n, char *err, size_t errlen) {
    (void)ctx;
    (void)buf;
    (void)n;
    snprintf(err, errlen, "pipe: timed out after 5000 ms");
    return -1;
}

static void fill_frame(uint8_t *f, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        f[i] = (uint8_t)(i * 31 + seed * 17 + (i >> 7));
}

/* A stream written by the writer: header and `frames` frames. Caller frees. */
static uint8_t *write_stream(unsigned frames, uint32_t fps_num, uint32_t fps_den, size_t *len) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    assert_int_equal(rf_y4m_write_header(f, W, H, fps_num, fps_den), 0);
    size_t fb = rf_i420_bytes(W, H);
    uint8_t *frame = malloc(fb);
    assert_non_null(frame);
    for (unsigned i = 0; i < frames; i++) {
        fill_frame(frame, fb, i);
        assert_int_equal(rf_y4m_write_frame(f, frame, fb), 0);
    }
    free(frame);
    assert_int_equal(fclose(f), 0);
    *len = n;
    return (uint8_t *)buf;
}

/* Read every frame of m, checking each against fill_frame; returns the
 * number read. */
static unsigned read_all(mem *m, uint32_t fps_num, uint32_t fps_den) {
    char err[256];
    rf_y4m_reader *r = NULL;
    assert_int_equal(rf_y4m_reader_new(mem_read, m, &r, err, sizeof err), 0);
    const rf_y4m_info *info = rf_y4m_reader_info(r);
    assert_int_equal(info->width, W);
    assert_int_equal(info->height, H);
    assert_int_equal(info->fps_num, fps_num);
    assert_int_equal(info->fps_den, fps_den);
    assert_int_equal(info->frame_bytes, rf_i420_bytes(W, H));
    uint8_t *got = malloc(info->frame_bytes), *want = malloc(info->frame_bytes);
    assert_true(got && want);
    unsigned n = 0;
    int rc;
    while ((rc = rf_y4m_read_frame(r, got, info->frame_bytes, err, sizeof err)) == 1) {
        fill_frame(want, info->frame_bytes, n);
        assert_memory_equal(got, want, info->frame_bytes);
        n++;
    }
    assert_int_equal(rc, 0);
    /* The end stays the end. */
    assert_int_equal(rf_y4m_read_frame(r, got, info->frame_bytes, err, sizeof err), 0);
    free(got);
    free(want);
    rf_y4m_reader_free(r);
    return n;
}

static void test_round_trip(void **state) {
    (void)state;
    size_t len;
    uint8_t *s = write_stream(5, 30000, 1001, &len);
    mem m = {.data = s, .len = len};
    assert_int_equal(read_all(&m, 30000, 1001), 5);
    assert_int_equal(m.pos, len);
    free(s);
}

static void test_one_byte_at_a_time(void **state) {
    (void)state;
    size_t len;
    uint8_t *s = write_stream(3, 24, 1, &len);
    mem m = {.data = s, .len = len, .chunk = 1};
    assert_int_equal(read_all(&m, 24, 1), 3);
    assert_true(m.calls > len); /* really one byte per call, then the end */
    free(s);
}

static void test_odd_chunks(void **state) {
    (void)state;
    size_t len;
    uint8_t *s = write_stream(4, 25, 1, &len);
    mem m = {.data = s, .len = len, .chunk = 4097};
    assert_int_equal(read_all(&m, 25, 1), 4);
    free(s);
}

static void test_writer_header_bytes(void **state) {
    (void)state;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    assert_int_equal(rf_y4m_write_header(f, 64, 48, 24, 1), 0);
    assert_int_equal(rf_y4m_write_header(f, 64, 48, 0, 0), 0);
    assert_int_equal(rf_y4m_write_header(f, 0, 48, 24, 1), -1);
    assert_int_equal(fclose(f), 0);
    assert_string_equal(buf, "YUV4MPEG2 W64 H48 F24:1 Ip A1:1 C420jpeg\n"
                             "YUV4MPEG2 W64 H48 Ip A1:1 C420jpeg\n");
    free(buf);
}

/* Headers other writers produce: any 4:2:0 chroma tag or none, X tags,
 * interlace and aspect tags, no frame rate, frame parameters. */
static void test_accepted_headers(void **state) {
    (void)state;
    static const char *const ok[] = {
        "YUV4MPEG2 W4 H2 F25:1\n",
        "YUV4MPEG2 W4 H2 F25:1 C420\n",
        "YUV4MPEG2 W4 H2 F25:1 C420mpeg2 XYSCSS=420MPEG2\n",
        "YUV4MPEG2 W4 H2 C420paldv It A10:11 XCOLORRANGE=LIMITED\n",
        "YUV4MPEG2 W4 H2 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG\n",
    };
    char err[256];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char s[256];
        snprintf(s, sizeof s, "%sFRAME\n0123abcdWXYZFRAME Ixyz\nABCDEFGHIJKL", ok[i]);
        mem m = mem_of(s);
        rf_y4m_reader *r = NULL;
        assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), 0);
        const rf_y4m_info *info = rf_y4m_reader_info(r);
        assert_int_equal(info->frame_bytes, 12);
        uint8_t buf[12];
        /* 4x2 luma, then 2x1 of U and of V */
        assert_int_equal(rf_y4m_read_frame(r, buf, sizeof buf, err, sizeof err), 1);
        assert_memory_equal(buf, "0123abcdWXYZ", 12);
        assert_int_equal(rf_y4m_read_frame(r, buf, sizeof buf, err, sizeof err), 1);
        assert_memory_equal(buf, "ABCDEFGHIJKL", 12);
        assert_int_equal(rf_y4m_read_frame(r, buf, sizeof buf, err, sizeof err), 0);
        rf_y4m_reader_free(r);
    }
    /* No F tag reads as 0/0. */
    mem m = mem_of("YUV4MPEG2 W4 H2\n");
    rf_y4m_reader *r = NULL;
    assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), 0);
    assert_int_equal(rf_y4m_reader_info(r)->fps_num, 0);
    assert_int_equal(rf_y4m_reader_info(r)->fps_den, 0);
    rf_y4m_reader_free(r);
}

static void test_frame_with_params(void **state) {
    (void)state;
    char err[256];
    mem m = mem_of("YUV4MPEG2 W2 H2 F1:1\nFRAME Ip XFOO=1\nabcdefFRAME\nghijkl");
    rf_y4m_reader *r = NULL;
    assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), 0);
    uint8_t buf[6];
    assert_int_equal(rf_y4m_read_frame(r, buf, sizeof buf, err, sizeof err), 1);
    assert_memory_equal(buf, "abcdef", 6);
    assert_int_equal(rf_y4m_read_frame(r, buf, sizeof buf, err, sizeof err), 1);
    assert_memory_equal(buf, "ghijkl", 6);
    assert_int_equal(rf_y4m_read_frame(r, buf, sizeof buf, err, sizeof err), 0);
    rf_y4m_reader_free(r);
}

static void test_odd_size(void **state) {
    (void)state;
    char err[256];
    mem m = mem_of("YUV4MPEG2 W63 H47 F24:1\n");
    rf_y4m_reader *r = NULL;
    assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), 0);
    assert_int_equal(rf_y4m_reader_info(r)->frame_bytes, 63 * 47 + 2 * 32 * 24);
    rf_y4m_reader_free(r);
}

/* The header must fail, with `want` somewhere in the message. */
static void expect_bad(const char *stream, size_t len, const char *want) {
    char err[256] = "";
    mem m = {.data = (const uint8_t *)stream, .len = len};
    rf_y4m_reader *r = (rf_y4m_reader *)&m; /* must be reset to NULL */
    assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), -1);
    assert_null(r);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not mention \"%s\" (stream %.40s)", err, want, stream);
}

#define BAD(s, want) expect_bad((s), sizeof(s) - 1, (want))

static void test_bad_magic(void **state) {
    (void)state;
    BAD("", "empty stream");
    BAD("GIF89a\x01\x02 binary", "not a YUV4MPEG2 stream");
    BAD("GIF89a\x01\x02 binary", "GIF89a\\x01\\x02");
    BAD("YUV4MPEG W64 H48\n", "not a YUV4MPEG2 stream");
    BAD("YUV4MPEG2X W64 H48\n", "not a YUV4MPEG2 stream");
    BAD("YUV4M", "stream ended inside the stream header");
    BAD("YUV4MPEG2 W64 H48", "stream ended inside the stream header");
}

static void test_bad_chroma(void **state) {
    (void)state;
    BAD("YUV4MPEG2 W64 H48 F24:1 C422\n", "chroma C422 is not supported");
    BAD("YUV4MPEG2 W64 H48 C444 F24:1\n", "C444");
    BAD("YUV4MPEG2 W64 H48 C420p10\n", "C420p10");
    BAD("YUV4MPEG2 W64 H48 Cmono\n", "Cmono");
}

static void test_missing_or_bad_tags(void **state) {
    (void)state;
    BAD("YUV4MPEG2 H48 F24:1\n", "no W (width) tag");
    BAD("YUV4MPEG2 W64 F24:1\n", "no H (height) tag");
    BAD("YUV4MPEG2\n", "no W (width) tag");
    BAD("YUV4MPEG2 W H48\n", "bad width tag \"W\"");
    BAD("YUV4MPEG2 W-64 H48\n", "bad width tag");
    BAD("YUV4MPEG2 W64 H4x8\n", "bad height tag \"H4x8\"");
    BAD("YUV4MPEG2 W64 H48 F24\n", "bad frame rate tag \"F24\"");
    BAD("YUV4MPEG2 W64 H48 F24:0\n", "bad frame rate");
    BAD("YUV4MPEG2 W64 H48 F:1\n", "bad frame rate");
}

static void test_absurd_sizes(void **state) {
    (void)state;
    BAD("YUV4MPEG2 W0 H48\n", "width 0 is out of range");
    BAD("YUV4MPEG2 W64 H100000\n", "height 100000 is out of range");
    BAD("YUV4MPEG2 W99999999999999999999999 H48\n", "width 99999999999999999999999 is out of range");
    BAD("YUV4MPEG2 W4294967297 H48\n", "out of range");
}

/* A header line that never ends: the reader gives up after a bounded
 * number of bytes instead of reading (or allocating) forever. */
static void test_overlong_header(void **state) {
    (void)state;
    char err[256];
    endless e = {.fill = 'X'};
    rf_y4m_reader *r = NULL;
    assert_int_equal(rf_y4m_reader_new(endless_read, &e, &r, err, sizeof err), -1);
    assert_null(r);
    assert_non_null(strstr(err, "stream header longer than 4096 bytes"));
    assert_true(e.served <= 1u << 20);

    /* The same for a FRAME line. */
    size_t len = 0;
    uint8_t *s = write_stream(0, 24, 1, &len);
    size_t total = len + 5 + 10000;
    char *big = malloc(total + 1);
    assert_non_null(big);
    memcpy(big, s, len);
    memcpy(big + len, "FRAME", 5);
    memset(big + len + 5, 'Y', 10000);
    big[total] = '\0';
    mem m = {.data = (const uint8_t *)big, .len = total};
    assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), 0);
    uint8_t *frame = malloc(rf_i420_bytes(W, H));
    assert_int_equal(rf_y4m_read_frame(r, frame, rf_i420_bytes(W, H), err, sizeof err), -1);
    assert_non_null(strstr(err, "FRAME line of frame 0 longer than 4096 bytes"));
    free(frame);
    rf_y4m_reader_free(r);
    free(big);
    free(s);
}

static void test_truncated_frame(void **state) {
    (void)state;
    size_t len;
    uint8_t *s = write_stream(3, 24, 1, &len);
    size_t fb = rf_i420_bytes(W, H);
    /* Cut 1000 bytes into frame 2's pixels. */
    size_t cut = len - (fb - 1000);
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        mem m = {.data = s, .len = cut, .chunk = chunk ? 7 : 0};
        char err[256];
        rf_y4m_reader *r = NULL;
        assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), 0);
        uint8_t *buf = malloc(fb);
        assert_int_equal(rf_y4m_read_frame(r, buf, fb, err, sizeof err), 1);
        assert_int_equal(rf_y4m_read_frame(r, buf, fb, err, sizeof err), 1);
        assert_int_equal(rf_y4m_read_frame(r, buf, fb, err, sizeof err), -1);
        char want[128];
        snprintf(want, sizeof want, "frame 2: stream ended after 1000 of %zu bytes", fb);
        if (!strstr(err, want))
            fail_msg("error \"%s\" does not say \"%s\"", err, want);
        /* A failed stream stays failed. */
        assert_int_equal(rf_y4m_read_frame(r, buf, fb, err, sizeof err), -1);
        free(buf);
        rf_y4m_reader_free(r);
    }
    free(s);
}

static void test_bad_frame_lines(void **state) {
    (void)state;
    static const struct {
        const char *tail, *want;
    } cases[] = {
        {"FRAMX\nabcdef", "frame 0: expected \"FRAME\", got \"FRAMX\""},
        {"FRAMEX\nabcdef", "expected \"FRAME\""},
        {"\nabcdef", "expected \"FRAME\", got \"\""},
        {"FRA", "stream ended inside the FRAME line of frame 0"},
        {"FRAME Ip", "stream ended inside the FRAME line"},
        {"FRAME\n", "frame 0: stream ended after 0 of 6 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char s[128], err[256];
        snprintf(s, sizeof s, "YUV4MPEG2 W2 H2 F1:1\n%s", cases[i].tail);
        mem m = mem_of(s);
        rf_y4m_reader *r = NULL;
        assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), 0);
        uint8_t buf[6];
        assert_int_equal(rf_y4m_read_frame(r, buf, sizeof buf, err, sizeof err), -1);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: error \"%s\" does not mention \"%s\"", i, err, cases[i].want);
        rf_y4m_reader_free(r);
    }
}

static void test_clean_eof(void **state) {
    (void)state;
    char err[256];
    mem m = mem_of("YUV4MPEG2 W2 H2 F1:1\n");
    rf_y4m_reader *r = NULL;
    assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), 0);
    uint8_t buf[6];
    assert_int_equal(rf_y4m_read_frame(r, buf, sizeof buf, err, sizeof err), 0);
    assert_int_equal(rf_y4m_read_frame(r, buf, sizeof buf, err, sizeof err), 0);
    rf_y4m_reader_free(r);
}

static void test_callback_error_and_small_buffer(void **state) {
    (void)state;
    char err[256];
    rf_y4m_reader *r = NULL;
    assert_int_equal(rf_y4m_reader_new(failing_read, NULL, &r, err, sizeof err), -1);
    assert_string_equal(err, "pipe: timed out after 5000 ms");

    mem m = mem_of("YUV4MPEG2 W2 H2 F1:1\nFRAME\nabcdef");
    assert_int_equal(rf_y4m_reader_new(mem_read, &m, &r, err, sizeof err), 0);
    uint8_t buf[6];
    assert_int_equal(rf_y4m_read_frame(r, buf, 5, err, sizeof err), -1);
    assert_non_null(strstr(err, "smaller than a frame (6 bytes)"));
    assert_int_equal(rf_y4m_read_frame(r, buf, 6, err, sizeof err), 1);
    rf_y4m_reader_free(r);
    rf_y4m_reader_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_odd_chunks),
        cmocka_unit_test(test_writer_header_bytes),
        cmocka_unit_test(test_accepted_headers),
        cmocka_unit_test(test_frame_with_params),
        cmocka_unit_test(test_odd_size),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_bad_chroma),
        cmocka_unit_test(test_missing_or_bad_tags),
        cmocka_unit_test(test_absurd_sizes),
        cmocka_unit_test(test_overlong_header),
        cmocka_unit_test(test_truncated_frame),
        cmocka_unit_test(test_bad_frame_lines),
        cmocka_unit_test(test_clean_eof),
        cmocka_unit_test(test_callback_error_and_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
