/* rf-vidprobe — reads a video back the way a player would and describes it
 * as one JSON object, for the end-to-end tests.
 *
 *   rf-vidprobe FILE [--mad] [--frame-md5]
 *
 * prints {"format", "codec", "width", "height", "fps_num", "fps_den",
 * "pix_fmt", "frames", "md5"} and, on request, "mad" (the mean absolute
 * luma difference of each frame from the one before it, frames-1 values)
 * and "frame_md5" (one MD5 per frame).
 *
 * The tests judge the farm by what a decoder sees, not by what the encoder
 * meant to write, so every frame of the first video stream is demuxed and
 * decoded with libavformat/libavcodec, not counted from headers. Pixels are
 * hashed as packed I420 (Y, then U, then V, rows without padding): that
 * makes an MD5 independent of the container, the codec and libav's line
 * alignment, so a lossless Matroska and a YUV4MPEG2 file of the same frames
 * hash the same. Frames in another pixel format are converted with
 * libswscale first; "pix_fmt" reports what the decoder produced.
 *
 * The frame rate is the stream's average rate (its real rate for the files
 * the farm writes), or the container's base rate when there is none,
 * reduced. On any error the tool prints one line on stderr and exits 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/md5.h>
#include <libavutil/pixdesc.h>
#include <libavutil/rational.h>
#include <libswscale/swscale.h>

typedef struct probe {
    const char *path;
    int want_mad, want_frame_md5;

    AVFormatContext *fmt;
    AVCodecContext *cc;
    struct SwsContext *sws;
    AVFrame *frame;
    AVPacket *pkt;
    int stream;

    int width, height;     /* of the I420 frames hashed: the first frame's */
    char pix_fmt[32];      /* what the decoder produced */
    uint8_t *i420, *prev;  /* packed frame, and the luma before it (--mad) */
    size_t frame_bytes;
    struct AVMD5 *md5;     /* over all frames */
    uint64_t frames;

    double *mad;           /* frames-1 values */
    char (*frame_md5)[33]; /* one per frame */
    size_t cap;            /* entries allocated in mad / frame_md5 */
} probe;

static void hex(const uint8_t d[16], char out[33]) {
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int fail(const probe *p, const char *what, int averr) {
    if (averr) {
        char reason[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(averr, reason, sizeof reason);
        fprintf(stderr, "rf-vidprobe: %s: %s: %s\n", p->path, what, reason);
    } else {
        fprintf(stderr, "rf-vidprobe: %s: %s\n", p->path, what);
    }
    return -1;
}

static int grow(probe *p) {
    if (p->frames < p->cap)
        return 0;
    size_t cap = p->cap ? 2 * p->cap : 256;
    if (p->want_mad) {
        double *m = realloc(p->mad, cap * sizeof *m);
        if (!m)
            return -1;
        p->mad = m;
    }
    if (p->want_frame_md5) {
        char(*f)[33] = realloc(p->frame_md5, cap * sizeof *f);
        if (!f)
            return -1;
        p->frame_md5 = f;
    }
    p->cap = cap;
    return 0;
}

/* Packed I420 of the decoded frame into p->i420. */
static int to_i420(probe *p, const AVFrame *f) {
    if (!p->i420) {
        p->width = f->width;
        p->height = f->height;
        const char *name = av_get_pix_fmt_name((enum AVPixelFormat)f->format);
        snprintf(p->pix_fmt, sizeof p->pix_fmt, "%s", name ? name : "unknown");
        int n = av_image_get_buffer_size(AV_PIX_FMT_YUV420P, p->width, p->height, 1);
        if (n <= 0)
            return fail(p, "frame size out of range", 0);
        p->frame_bytes = (size_t)n;
        p->i420 = malloc(p->frame_bytes);
        p->prev = malloc((size_t)p->width * p->height);
        if (!p->i420 || !p->prev)
            return fail(p, "out of memory", 0);
    }
    uint8_t *dst[4];
    int dst_ls[4];
    av_image_fill_arrays(dst, dst_ls, p->i420, AV_PIX_FMT_YUV420P, p->width, p->height, 1);
    /* yuvj420p differs from yuv420p only in the range it declares. */
    if ((f->format == AV_PIX_FMT_YUV420P || f->format == AV_PIX_FMT_YUVJ420P) &&
        f->width == p->width && f->height == p->height) {
        av_image_copy(dst, dst_ls, (const uint8_t **)f->data, f->linesize, AV_PIX_FMT_YUV420P,
                      p->width, p->height);
        return 0;
    }
    p->sws = sws_getCachedContext(p->sws, f->width, f->height, (enum AVPixelFormat)f->format,
                                  p->width, p->height, AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL,
                                  NULL);
    if (!p->sws)
        return fail(p, "cannot convert the decoded pixel format to yuv420p", 0);
    sws_scale(p->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_ls);
    return 0;
}

static int take_frame(probe *p, const AVFrame *f) {
    if (to_i420(p, f) != 0)
        return -1;
    if (grow(p) != 0)
        return fail(p, "out of memory", 0);
    av_md5_update(p->md5, p->i420, p->frame_bytes);
    if (p->want_frame_md5) {
        uint8_t d[16];
        av_md5_sum(d, p->i420, p->frame_bytes);
        hex(d, p->frame_md5[p->frames]);
    }
    size_t luma = (size_t)p->width * p->height;
    if (p->want_mad) {
        if (p->frames > 0) {
            uint64_t sum = 0;
            for (size_t i = 0; i < luma; i++)
                sum += (uint64_t)abs((int)p->i420[i] - (int)p->prev[i]);
            p->mad[p->frames - 1] = (double)sum / (double)luma;
        }
        memcpy(p->prev, p->i420, luma);
    }
    p->frames++;
    return 0;
}

/* Every frame the decoder has ready. */
static int receive(probe *p) {
    for (;;) {
        int rc = avcodec_receive_frame(p->cc, p->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return fail(p, "decoding failed", rc);
        rc = take_frame(p, p->frame);
        av_frame_unref(p->frame);
        if (rc != 0)
            return -1;
    }
}

static int open_input(probe *p) {
    int rc = avformat_open_input(&p->fmt, p->path, NULL, NULL);
    if (rc < 0)
        return fail(p, "cannot open", rc);
    rc = avformat_find_stream_info(p->fmt, NULL);
    if (rc < 0)
        return fail(p, "cannot read stream info", rc);
    p->stream = -1;
    for (unsigned i = 0; i < p->fmt->nb_streams; i++) {
        if (p->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
            p->stream = (int)i;
            break;
        }
    }
    if (p->stream < 0)
        return fail(p, "no video stream", 0);
    const AVCodecParameters *par = p->fmt->streams[p->stream]->codecpar;
    const AVCodec *dec = avcodec_find_decoder(par->codec_id);
    if (!dec) {
        char what[128];
        snprintf(what, sizeof what, "no %s decoder in this libavcodec",
                 avcodec_get_name(par->codec_id));
        return fail(p, what, 0);
    }
    if (!(p->cc = avcodec_alloc_context3(dec)))
        return fail(p, "out of memory", 0);
    rc = avcodec_parameters_to_context(p->cc, par);
    if (rc < 0)
        return fail(p, "cannot set up the decoder", rc);
    p->cc->thread_count = 0; /* decoding is exact whatever the thread count */
    rc = avcodec_open2(p->cc, dec, NULL);
    if (rc < 0)
        return fail(p, "cannot open the decoder", rc);
    return 0;
}

static int decode_all(probe *p) {
    p->frame = av_frame_alloc();
    p->pkt = av_packet_alloc();
    p->md5 = av_md5_alloc();
    if (!p->frame || !p->pkt || !p->md5)
        return fail(p, "out of memory", 0);
    av_md5_init(p->md5);
    for (;;) {
        int rc = av_read_frame(p->fmt, p->pkt);
        if (rc == AVERROR_EOF)
            break;
        if (rc < 0)
            return fail(p, "reading failed", rc);
        if (p->pkt->stream_index == p->stream) {
            rc = avcodec_send_packet(p->cc, p->pkt);
            av_packet_unref(p->pkt);
            if (rc < 0)
                return fail(p, "decoding failed", rc);
            if (receive(p) != 0)
                return -1;
        } else {
            av_packet_unref(p->pkt);
        }
    }
    int rc = avcodec_send_packet(p->cc, NULL);
    if (rc < 0)
        return fail(p, "flushing the decoder failed", rc);
    return receive(p);
}

static void json_str(const char *key, const char *s) {
    printf("\"%s\":\"", key);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(const probe *p) {
    const AVStream *st = p->fmt->streams[p->stream];
    AVRational r = st->avg_frame_rate;
    if (r.num <= 0 || r.den <= 0)
        r = st->r_frame_rate;
    int num = 0, den = 0;
    if (r.num > 0 && r.den > 0)
        av_reduce(&num, &den, r.num, r.den, INT32_MAX);
    uint8_t d[16];
    char sum[33];
    av_md5_final(p->md5, d);
    hex(d, sum);
    const AVCodecParameters *par = st->codecpar;
    const char *pix = p->pix_fmt[0] ? p->pix_fmt : av_get_pix_fmt_name((enum AVPixelFormat)par->format);

    putchar('{');
    json_str("format", p->fmt->iformat->name);
    putchar(',');
    json_str("codec", avcodec_get_name(par->codec_id));
    printf(",\"width\":%d,\"height\":%d,\"fps_num\":%d,\"fps_den\":%d,",
           p->frames ? p->width : par->width, p->frames ? p->height : par->height, num, den);
    json_str("pix_fmt", pix ? pix : "unknown");
    printf(",\"frames\":%" PRIu64 ",", p->frames);
    json_str("md5", sum);
    if (p->want_mad) {
        printf(",\"mad\":[");
        for (uint64_t i = 0; i + 1 < p->frames; i++)
            printf("%s%.4f", i ? "," : "", p->mad[i]);
        putchar(']');
    }
    if (p->want_frame_md5) {
        printf(",\"frame_md5\":[");
        for (uint64_t i = 0; i < p->frames; i++)
            printf("%s\"%s\"", i ? "," : "", p->frame_md5[i]);
        putchar(']');
    }
    printf("}\n");
}

static void probe_free(probe *p) {
    avcodec_free_context(&p->cc);
    avformat_close_input(&p->fmt);
    sws_freeContext(p->sws);
    av_frame_free(&p->frame);
    av_packet_free(&p->pkt);
    av_free(p->md5);
    free(p->i420);
    free(p->prev);
    free(p->mad);
    free(p->frame_md5);
}

int main(int argc, char **argv) {
    probe p = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mad") == 0) {
            p.want_mad = 1;
        } else if (strcmp(argv[i], "--frame-md5") == 0) {
            p.want_frame_md5 = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "rf-vidprobe: unknown option %s\n", argv[i]);
            goto usage;
        } else if (p.path) {
            fprintf(stderr, "rf-vidprobe: more than one file (%s, %s)\n", p.path, argv[i]);
            goto usage;
        } else {
            p.path = argv[i];
        }
    }
    if (!p.path)
        goto usage;
    /* The tests read our stderr only when we fail; libav's warnings about
     * files it can read anyway would only bury the one line that matters. */
    av_log_set_level(AV_LOG_ERROR);
    int rc = open_input(&p) == 0 && decode_all(&p) == 0 ? 0 : 1;
    if (rc == 0) {
        print_json(&p);
        if (fflush(stdout) != 0) {
            perror("rf-vidprobe: stdout");
            rc = 1;
        }
    }
    probe_free(&p);
    return rc;
usage:
    fprintf(stderr, "usage: rf-vidprobe FILE [--mad] [--frame-md5]\n");
    return 1;
}
