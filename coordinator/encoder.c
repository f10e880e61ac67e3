/* encoder — I420 frames in, a video file out, through libavcodec and
 * libavformat. See encoder.h for the contract.
 *
 * The pipeline is the usual one: an AVFrame is filled from the caller's
 * I420 bytes, avcodec_send_frame / avcodec_receive_packet encode it, and
 * av_interleaved_write_frame hands the packets to the muxer. Time stamps
 * are frame indices in a time base of fps_den/fps_num, and every packet
 * lasts one tick, so the muxer stores the exact rate (MP4 as sample
 * durations, YUV4MPEG2 as its F tag, Matroska as DefaultDuration, which
 * Matroska can only hold in whole nanoseconds).
 *
 * Reproducible bytes. The farm promises that a job's output depends only on
 * its spec, and its tests compare files byte for byte, so:
 *   - the muxer runs with AVFMT_FLAG_BITEXACT (no random Matroska segment
 *     or track UIDs, no dates, no "Lavf<version>" strings) and the codec
 *     with AV_CODEC_FLAG_BITEXACT;
 *   - FFV1 runs at level 3 with its slice count chosen from the frame size
 *     alone, so the thread count changes speed but not bytes;
 *   - x264 runs without its AVX-512 code, which reads memory it never
 *     wrote (see open_codec);
 *   - x264 writes a SEI message with its version and full option string
 *     into the first frame; a filter_units bitstream filter drops SEI NAL
 *     units (x264 writes no other SEI with the options used here), so an
 *     upgrade of libx264 that encodes the same pixels writes the same file.
 *     x264 itself is deterministic for a given thread count; the count
 *     libavcodec picks for threads=0 depends on the machine's cores.
 *
 * Nothing here touches libav's global state (its log level belongs to the
 * program's main()).
 */
#include "encoder.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>
#include <libavutil/cpu.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/opt.h>

struct enc {
    AVFormatContext *fmt;
    AVCodecContext *cc;
    AVStream *st;
    AVBSFContext *bsf; /* strips x264's SEI; NULL for other codecs */
    AVFrame *frame;
    AVPacket *pkt;
    char *path;
    const char *codec_name; /* for messages */
    uint32_t width, height;
    uint64_t frames;
    int file_open; /* the output file exists and fmt->pb is open */
    /* Raw video in y4m: each frame is lent to libavcodec rather than
     * copied into e->frame (wrapped_avframe, which has no threads of its
     * own, hands it to the muxer, which writes it out at once); lent_back
     * says the last one was returned before enc_write did. Not rawvideo:
     * it encodes on threads of its own, which could keep a frame. */
    int lend, lent_back;
};

/* Format a message, append ": <libav's reason>" and return -1. */
static int fail_av(char *err, size_t errlen, int averr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_av(char *err, size_t errlen, int averr, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char reason[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, reason, sizeof reason);
    snprintf(err, errlen, "%s: %s", msg, reason);
    return -1;
}

static const char *muxer_for(rf_container c) {
    switch (c) {
    case RF_CONTAINER_MP4:
        return "mp4";
    case RF_CONTAINER_MKV:
        return "matroska";
    case RF_CONTAINER_Y4M:
        return "yuv4mpegpipe";
    }
    return NULL;
}

static const char *container_label(rf_container c) {
    switch (c) {
    case RF_CONTAINER_MP4:
        return "mp4";
    case RF_CONTAINER_MKV:
        return "mkv";
    case RF_CONTAINER_Y4M:
        return "y4m";
    }
    return "?";
}

/* The encoder for a codec, or NULL with err set. */
static const AVCodec *find_encoder(rf_codec c, rf_container container, enum AVCodecID *id,
                                   char *err, size_t errlen) {
    const AVCodec *codec = NULL;
    const char *name = "?";
    switch (c) {
    case RF_CODEC_H264:
        /* By name: libavcodec's other H.264 encoders (hardware ones) take
         * none of the options used here. */
        name = "libx264";
        codec = avcodec_find_encoder_by_name(name);
        *id = AV_CODEC_ID_H264;
        break;
    case RF_CODEC_FFV1:
        name = "ffv1";
        codec = avcodec_find_encoder(AV_CODEC_ID_FFV1);
        *id = AV_CODEC_ID_FFV1;
        break;
    case RF_CODEC_RAWVIDEO:
        /* The yuv4mpegpipe muxer of libavformat 59 takes only frames
         * wrapped whole in packets (wrapped_avframe, what ffmpeg(1) uses)
         * and refuses rawvideo packets; the bytes on disk are the same raw
         * planes either way, and read back as rawvideo. */
        if (container == RF_CONTAINER_Y4M) {
            name = "wrapped_avframe";
            codec = avcodec_find_encoder(AV_CODEC_ID_WRAPPED_AVFRAME);
            *id = AV_CODEC_ID_WRAPPED_AVFRAME;
        } else {
            name = "rawvideo";
            codec = avcodec_find_encoder(AV_CODEC_ID_RAWVIDEO);
            *id = AV_CODEC_ID_RAWVIDEO;
        }
        break;
    default:
        snprintf(err, errlen, "encoder: unknown codec %d", (int)c);
        return NULL;
    }
    if (!codec)
        snprintf(err, errlen, "encoder: %s not available in this libavcodec", name);
    return codec;
}

static int check_opts(const enc_opts *o, char *err, size_t errlen) {
    if (!o->path || !o->path[0]) {
        snprintf(err, errlen, "encoder: no output path");
        return -1;
    }
    if (o->width == 0 || o->height == 0 || o->width % 2 || o->height % 2 || o->width > 16384 ||
        o->height > 16384) {
        snprintf(err, errlen, "encoder: %s: frame size %ux%u is not even and within 2..16384",
                 o->path, o->width, o->height);
        return -1;
    }
    if (o->fps_num == 0 || o->fps_den == 0 || o->fps_num > INT32_MAX || o->fps_den > INT32_MAX) {
        snprintf(err, errlen, "encoder: %s: bad frame rate %u/%u", o->path, o->fps_num, o->fps_den);
        return -1;
    }
    if (!muxer_for(o->container)) {
        snprintf(err, errlen, "encoder: %s: unknown container %d", o->path, (int)o->container);
        return -1;
    }
    if (o->codec == RF_CODEC_H264 && (o->quality < 0 || o->quality > 51)) {
        snprintf(err, errlen, "encoder: %s: quality %d is outside x264's CRF range 0..51", o->path,
                 o->quality);
        return -1;
    }
    return 0;
}

/* Free everything; with `remove`, delete the output file too. */
static void enc_free(enc *e, int remove) {
    if (!e)
        return;
    if (e->fmt && e->file_open)
        avio_closep(&e->fmt->pb);
    if (remove && e->file_open && e->path)
        unlink(e->path);
    avformat_free_context(e->fmt);
    avcodec_free_context(&e->cc);
    av_bsf_free(&e->bsf);
    av_frame_free(&e->frame);
    av_packet_free(&e->pkt);
    free(e->path);
    free(e);
}

/* The codec context, opened. */
static int open_codec(enc *e, const enc_opts *o, const AVCodec *codec, char *err, size_t errlen) {
    AVCodecContext *cc = avcodec_alloc_context3(codec);
    if (!cc) {
        snprintf(err, errlen, "encoder: out of memory");
        return -1;
    }
    e->cc = cc;
    cc->width = (int)o->width;
    cc->height = (int)o->height;
    cc->pix_fmt = AV_PIX_FMT_YUV420P;
    cc->time_base = (AVRational){(int)o->fps_den, (int)o->fps_num};
    cc->framerate = (AVRational){(int)o->fps_num, (int)o->fps_den};
    cc->sample_aspect_ratio = (AVRational){1, 1};
    cc->thread_count = o->threads > 0 ? o->threads : 0;
    cc->flags |= AV_CODEC_FLAG_BITEXACT;
    if (e->fmt->oformat->flags & AVFMT_GLOBALHEADER)
        cc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

    AVDictionary *copts = NULL;
    char crf[16];
    const char *preset = o->preset && o->preset[0] ? o->preset : "medium";
    if (o->codec == RF_CODEC_H264) {
        snprintf(crf, sizeof crf, "%d", o->quality);
        av_dict_set(&copts, "crf", crf, 0);
        av_dict_set(&copts, "preset", preset, 0);
        /* libx264 164 (r3095, Debian 12) computes with memory it never
         * wrote in its AVX-512 code paths: the same frames encoded twice in
         * one process come out different, and differ from what the C and
         * AVX2 code (which agree with each other) produce. Every AVX-512 CPU
         * has AVX2 and what x264 implies with it, so x264 gets that set. */
        if (av_get_cpu_flags() & AV_CPU_FLAG_AVX512)
            av_dict_set(&copts, "x264-params", "asm=AVX2", 0);
    } else if (o->codec == RF_CODEC_FFV1) {
        cc->level = 3;
    }
    int rc = avcodec_open2(cc, codec, &copts);
    AVDictionaryEntry *left = av_dict_get(copts, "", NULL, AV_DICT_IGNORE_SUFFIX);
    char leftover[128] = "";
    if (left)
        snprintf(leftover, sizeof leftover, "%s=%s", left->key, left->value);
    av_dict_free(&copts);
    if (rc < 0) {
        if (o->codec == RF_CODEC_H264)
            return fail_av(err, errlen, rc, "encoder: cannot open libx264 (crf %d, preset \"%s\")",
                           o->quality, preset);
        return fail_av(err, errlen, rc, "encoder: cannot open %s", codec->name);
    }
    if (left) {
        snprintf(err, errlen, "encoder: %s does not know the option %s", codec->name, leftover);
        return -1;
    }
    return 0;
}

/* x264's SEI NAL units (type 6) dropped from every packet; see the top. */
static int open_sei_filter(enc *e, char *err, size_t errlen) {
    const AVBitStreamFilter *f = av_bsf_get_by_name("filter_units");
    if (!f) {
        snprintf(err, errlen, "encoder: filter_units not available in this libavcodec");
        return -1;
    }
    int rc = av_bsf_alloc(f, &e->bsf);
    if (rc < 0)
        return fail_av(err, errlen, rc, "encoder: cannot set up filter_units");
    rc = avcodec_parameters_copy(e->bsf->par_in, e->st->codecpar);
    if (rc >= 0) {
        e->bsf->time_base_in = e->st->time_base;
        rc = av_opt_set(e->bsf->priv_data, "remove_types", "6", 0);
    }
    if (rc >= 0)
        rc = av_bsf_init(e->bsf);
    if (rc < 0)
        return fail_av(err, errlen, rc, "encoder: cannot set up filter_units");
    return 0;
}

int enc_open(const enc_opts *o, enc **out, char *err, size_t errlen) {
    *out = NULL;
    if (check_opts(o, err, errlen) != 0)
        return -1;
    enum AVCodecID id = AV_CODEC_ID_NONE;
    if (o->container == RF_CONTAINER_Y4M && o->codec != RF_CODEC_RAWVIDEO) {
        snprintf(err, errlen, "encoder: %s: the y4m container holds only rawvideo", o->path);
        return -1;
    }
    const AVCodec *codec = find_encoder(o->codec, o->container, &id, err, errlen);
    if (!codec)
        return -1;

    enc *e = calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(o->path))) {
        free(e);
        snprintf(err, errlen, "encoder: out of memory");
        return -1;
    }
    e->width = o->width;
    e->height = o->height;
    e->codec_name = codec->name;

    int rc = avformat_alloc_output_context2(&e->fmt, NULL, muxer_for(o->container), o->path);
    if (rc < 0 || !e->fmt) {
        fail_av(err, errlen, rc < 0 ? rc : AVERROR(ENOMEM), "encoder: no %s muxer in this libavformat",
                muxer_for(o->container));
        goto fail;
    }
    e->fmt->flags |= AVFMT_FLAG_BITEXACT;
    /* 0 is a definite "cannot"; a negative answer means the muxer did not
     * say (yuv4mpegpipe), and avformat_write_header decides. */
    if (avformat_query_codec(e->fmt->oformat, id, FF_COMPLIANCE_NORMAL) == 0) {
        snprintf(err, errlen, "encoder: the %s container cannot hold %s video",
                 container_label(o->container), codec->name);
        goto fail;
    }
    if (!(e->st = avformat_new_stream(e->fmt, NULL))) {
        snprintf(err, errlen, "encoder: out of memory");
        goto fail;
    }
    if (open_codec(e, o, codec, err, errlen) != 0)
        goto fail;
    rc = avcodec_parameters_from_context(e->st->codecpar, e->cc);
    if (rc < 0) {
        fail_av(err, errlen, rc, "encoder: cannot describe the %s stream", codec->name);
        goto fail;
    }
    e->st->time_base = e->cc->time_base;
    e->st->avg_frame_rate = e->cc->framerate;
    e->st->r_frame_rate = e->cc->framerate;
    e->st->sample_aspect_ratio = e->cc->sample_aspect_ratio;

    /* The file is created only once everything that can be checked without
     * it has been, so a bad option leaves nothing behind. */
    if (!(e->fmt->oformat->flags & AVFMT_NOFILE)) {
        rc = avio_open(&e->fmt->pb, o->path, AVIO_FLAG_WRITE);
        if (rc < 0) {
            fail_av(err, errlen, rc, "encoder: cannot open %s", o->path);
            goto fail;
        }
        e->file_open = 1;
    }
    AVDictionary *mopts = NULL;
    if (o->container == RF_CONTAINER_MP4)
        av_dict_set(&mopts, "movflags", "+faststart", 0);
    rc = avformat_write_header(e->fmt, &mopts);
    av_dict_free(&mopts);
    if (rc < 0) {
        fail_av(err, errlen, rc, "encoder: cannot write the %s header of %s",
                container_label(o->container), o->path);
        goto fail;
    }
    /* After the header: the muxer may have changed the stream's time base. */
    if (o->codec == RF_CODEC_H264 && open_sei_filter(e, err, errlen) != 0)
        goto fail;

    e->frame = av_frame_alloc();
    e->pkt = av_packet_alloc();
    if (!e->frame || !e->pkt) {
        snprintf(err, errlen, "encoder: out of memory");
        goto fail;
    }
    e->frame->format = AV_PIX_FMT_YUV420P;
    e->frame->width = (int)o->width;
    e->frame->height = (int)o->height;
    e->lend = id == AV_CODEC_ID_WRAPPED_AVFRAME;
    rc = e->lend ? 0 : av_frame_get_buffer(e->frame, 0);
    if (rc < 0) {
        fail_av(err, errlen, rc, "encoder: cannot allocate a %ux%u frame", o->width, o->height);
        goto fail;
    }
    *out = e;
    return 0;
fail:
    enc_free(e, 1);
    return -1;
}

/* Hand one packet (in the stream's time base) to the muxer, which takes
 * its reference. */
static int mux(enc *e, AVPacket *pkt, char *err, size_t errlen) {
    pkt->stream_index = e->st->index;
    int rc = av_interleaved_write_frame(e->fmt, pkt);
    if (rc < 0)
        return fail_av(err, errlen, rc, "encoder: writing %s", e->path);
    return 0;
}

/* Packets out of the SEI filter into the muxer, until it wants more input
 * (or, after a flush, has nothing left). */
static int drain_filter(enc *e, char *err, size_t errlen) {
    for (;;) {
        int rc = av_bsf_receive_packet(e->bsf, e->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return fail_av(err, errlen, rc, "encoder: filtering %s packets", e->codec_name);
        if (mux(e, e->pkt, err, errlen) != 0)
            return -1;
    }
}

/* Packets out of the encoder, through the filter when there is one, into
 * the muxer, until the encoder wants more input (or, after a flush, is
 * done). */
static int drain_encoder(enc *e, char *err, size_t errlen) {
    for (;;) {
        int rc = avcodec_receive_packet(e->cc, e->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return fail_av(err, errlen, rc, "encoder: %s failed", e->codec_name);
        /* One frame lasts one tick; encoders leave the duration unset, and
         * without it the muxer has to guess the last frame's. */
        if (e->pkt->duration == 0)
            e->pkt->duration = 1;
        av_packet_rescale_ts(e->pkt, e->cc->time_base, e->st->time_base);
        if (!e->bsf) {
            if (mux(e, e->pkt, err, errlen) != 0)
                return -1;
            continue;
        }
        rc = av_bsf_send_packet(e->bsf, e->pkt);
        if (rc < 0) {
            av_packet_unref(e->pkt);
            return fail_av(err, errlen, rc, "encoder: filtering %s packets", e->codec_name);
        }
        if (drain_filter(e, err, errlen) != 0)
            return -1;
    }
}

static void lent_back(void *opaque, uint8_t *data) {
    (void)data;
    ((enc *)opaque)->lent_back = 1;
}

/* A raw frame, lent (e->lend): a copy of a whole frame saved per frame.
 * Should libavcodec or the muxer ever keep it past this call, the caller's
 * buffer would change under them: that is an error, not a silent one. */
static int write_lent(enc *e, const uint8_t *i420, char *err, size_t errlen) {
    AVFrame *f = e->frame;
    size_t luma = (size_t)e->width * e->height, chroma = luma / 4;
    e->lent_back = 0;
    f->buf[0] = av_buffer_create((uint8_t *)i420, luma + 2 * chroma, lent_back, e,
                                 AV_BUFFER_FLAG_READONLY);
    if (!f->buf[0]) {
        snprintf(err, errlen, "encoder: out of memory");
        return -1;
    }
    f->format = AV_PIX_FMT_YUV420P;
    f->width = (int)e->width;
    f->height = (int)e->height;
    f->data[0] = (uint8_t *)i420;
    f->data[1] = f->data[0] + luma;
    f->data[2] = f->data[1] + chroma;
    f->linesize[0] = (int)e->width;
    f->linesize[1] = f->linesize[2] = (int)e->width / 2;
    f->pts = (int64_t)e->frames;
    int rc = avcodec_send_frame(e->cc, f);
    av_frame_unref(f);
    if (rc < 0)
        return fail_av(err, errlen, rc, "encoder: %s refused frame %llu of %s", e->codec_name,
                       (unsigned long long)e->frames, e->path);
    e->frames++;
    if (drain_encoder(e, err, errlen) != 0)
        return -1;
    if (!e->lent_back) {
        snprintf(err, errlen, "encoder: %s kept frame %llu of %s past its write", e->codec_name,
                 (unsigned long long)e->frames - 1, e->path);
        return -1;
    }
    return 0;
}

int enc_write(enc *e, const uint8_t *i420, char *err, size_t errlen) {
    if (e->lend)
        return write_lent(e, i420, err, errlen);
    /* The encoder may still hold a reference to the last frame's buffer
     * (frame threading, lookahead); writing into it would change a frame
     * already submitted. */
    int rc = av_frame_make_writable(e->frame);
    if (rc < 0)
        return fail_av(err, errlen, rc, "encoder: frame %llu of %s",
                       (unsigned long long)e->frames, e->path);
    const uint8_t *src = i420;
    for (int p = 0; p < 3; p++) {
        size_t w = p ? e->width / 2 : e->width, h = p ? e->height / 2 : e->height;
        uint8_t *dst = e->frame->data[p];
        for (size_t y = 0; y < h; y++) {
            memcpy(dst, src, w);
            dst += e->frame->linesize[p];
            src += w;
        }
    }
    e->frame->pts = (int64_t)e->frames;
    rc = avcodec_send_frame(e->cc, e->frame);
    if (rc < 0)
        return fail_av(err, errlen, rc, "encoder: %s refused frame %llu of %s", e->codec_name,
                       (unsigned long long)e->frames, e->path);
    e->frames++;
    return drain_encoder(e, err, errlen);
}

uint64_t enc_frames(const enc *e) {
    return e->frames;
}

int enc_close(enc *e, char *err, size_t errlen) {
    if (!e)
        return 0;
    int rc = avcodec_send_frame(e->cc, NULL);
    int ok = rc >= 0 || rc == AVERROR_EOF;
    if (!ok)
        fail_av(err, errlen, rc, "encoder: flushing %s", e->codec_name);
    if (ok && drain_encoder(e, err, errlen) != 0)
        ok = 0;
    if (ok && e->bsf) {
        rc = av_bsf_send_packet(e->bsf, NULL);
        if (rc < 0 && rc != AVERROR_EOF) {
            fail_av(err, errlen, rc, "encoder: flushing filter_units");
            ok = 0;
        } else if (drain_filter(e, err, errlen) != 0)
            ok = 0;
    }
    if (ok) {
        rc = av_write_trailer(e->fmt);
        if (rc < 0) {
            fail_av(err, errlen, rc, "encoder: finishing %s", e->path);
            ok = 0;
        }
    }
    if (e->file_open) {
        /* Closing flushes the last buffered bytes: a full disk shows here. */
        rc = avio_closep(&e->fmt->pb);
        e->file_open = 0;
        if (rc < 0 && ok) {
            fail_av(err, errlen, rc, "encoder: closing %s", e->path);
            ok = 0;
        }
    }
    enc_free(e, 0);
    return ok ? 0 : -1;
}

void enc_abort(enc *e) {
    enc_free(e, 1);
}
