/* stitch — ordered, bounded-memory stitching on a thread pool.
 * See stitch.h for the design.
 *
 * Concurrency: a job is worked on by at most one thread at a time. A job is
 * "queued" when new segments became ready while no thread held it; a
 * thread that finishes a pass re-checks, so a segment marked ready during a
 * pass is never missed. All job fields written by both sides (ready flags,
 * queued, busy, cancelled) are guarded by the pool mutex; everything else
 * belongs to the thread holding the job.
 */
#include "stitch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "blend.h"
#include "encoder.h"
#include "rf_util.h"

/* Pack files a job keeps open at once (until it is over): its segments
 * next to one another were mostly packed together, and a frame needs two
 * segments unless overlaps exceed half a segment, so a few descriptors
 * save an open per segment (an open on ext4 costs a path walk) without
 * holding one per pack of a long job. */
#define STITCH_PACK_FDS 4

struct stitch_job {
    stitch_pool *pool;
    rf_spec spec; /* copy; prompt/params pointers not used */
    plan *plan;
    char spool_dir[RF_PATH_MAX];
    char packs_dir[RF_PATH_MAX + 16];
    char partial[RF_PATH_MAX + 16];
    size_t frame_bytes;

    /* guarded by pool->mu */
    unsigned char *ready; /* per segment */
    spool_loc *loc;       /* per segment: where it is, once ready */
    int queued, busy, cancelled, finished;
    stitch_job *next_q;

    /* owned by the thread holding the job */
    uint32_t next_frame;
    enc *enc;
    /* Per segment in a file of its own, while its frames are needed: the
     * file mapped (map, maplen), or, where it could not be mapped, its
     * descriptor for pread. fd -1 and map NULL: not open. */
    struct stitch_seg_file {
        int fd;
        const uint8_t *map;
        size_t maplen;
    } *files;
    struct {
        uint32_t pack; /* 0: unused */
        int fd;
        uint64_t used; /* when last read (a counter), for eviction */
    } packs[STITCH_PACK_FDS]; /* the packs it reads */
    uint64_t reads;
    uint8_t **bufs;       /* max_cover buffers for frames read, not mapped */
    const uint8_t **src;  /* max_cover: the frames an overlap blends */
    uint8_t *out;
    uint32_t *q16;
    size_t closed_upto; /* segments below this are finished with */
};

struct stitch_pool {
    void *zctx;
    char endpoint[256];
    kn_ctx *kn;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work queued or stopping */
    pthread_cond_t idle_cv; /* a job stopped being busy */
    /* Held to create or rename an output file. Jobs' outputs mostly share
     * a directory, whose lock the kernel holds for either; on ext4 a
     * create can take ~100 us (the inode allocator's scan), and a second
     * thread waiting on that lock spins on its CPU. Waiting here sleeps
     * instead: 4 workers' tiny jobs on ext4 went from ~17,000 to ~20,000
     * segments/s (bench/README.md). Encoding itself stays parallel. */
    pthread_mutex_t out_mu;
    stitch_job *q_head, *q_tail;
    int stopping;
    unsigned nthreads;
    pthread_t *threads;
};

static void send_event(void *push, const stitch_job *sj, stitch_kind kind, uint64_t bytes,
                       const char *msg) {
    stitch_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    snprintf(ev.job, sizeof ev.job, "%s", sj->spec.id);
    ev.frames = sj->next_frame;
    ev.bytes = bytes;
    if (msg)
        snprintf(ev.msg, sizeof ev.msg, "%s", msg);
    /* Progress never blocks: with the coordinator's event queue full, a
     * blocking send would hold this thread busy while the coordinator waits
     * for it in stitch_job_free, and neither would move. A dropped progress
     * event costs nothing (the next one, or the final one, carries the frame
     * count); the final STITCH_DONE / STITCH_FAILED must arrive, so it
     * blocks. */
    zmq_send(push, &ev, sizeof ev, kind == STITCH_PROGRESS ? ZMQ_DONTWAIT : 0);
}

/* A descriptor of pack `pack`, opened if need be (replacing the least
 * recently used); -1 with errno set when it cannot be opened. */
static int pack_fd(stitch_job *sj, uint32_t pack, char *path, size_t pathlen) {
    size_t lru = 0;
    for (size_t i = 0; i < STITCH_PACK_FDS; i++) {
        if (sj->packs[i].pack == pack) {
            sj->packs[i].used = ++sj->reads;
            return sj->packs[i].fd;
        }
        if (sj->packs[i].used < sj->packs[lru].used)
            lru = i;
    }
    spool_pack_path(sj->packs_dir, pack, path, pathlen);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (sj->packs[lru].pack)
        close(sj->packs[lru].fd);
    sj->packs[lru].pack = pack;
    sj->packs[lru].fd = fd;
    sj->packs[lru].used = ++sj->reads;
    return fd;
}

static void seg_file_close(struct stitch_seg_file *sf) {
    if (sf->map)
        munmap((void *)sf->map, sf->maplen);
    if (sf->fd >= 0)
        close(sf->fd);
    sf->map = NULL;
    sf->maplen = 0;
    sf->fd = -1;
}

static void release_buffers(stitch_job *sj) {
    for (size_t i = 0; i < STITCH_PACK_FDS; i++)
        if (sj->packs[i].pack) {
            close(sj->packs[i].fd);
            sj->packs[i].pack = 0;
            sj->packs[i].used = 0;
        }
    if (sj->files) {
        for (size_t k = 0; k < sj->plan->n; k++)
            seg_file_close(&sj->files[k]);
        free(sj->files);
        sj->files = NULL;
    }
    if (sj->bufs) {
        for (uint32_t i = 0; i < sj->plan->max_cover; i++)
            free(sj->bufs[i]);
        free(sj->bufs);
        sj->bufs = NULL;
    }
    free(sj->src);
    sj->src = NULL;
    free(sj->out);
    sj->out = NULL;
    free(sj->q16);
    sj->q16 = NULL;
}

static int alloc_buffers(stitch_job *sj, char *err, size_t errlen) {
    uint32_t mc = sj->plan->max_cover;
    sj->files = malloc(sj->plan->n * sizeof *sj->files);
    for (size_t k = 0; sj->files && k < sj->plan->n; k++)
        sj->files[k] = (struct stitch_seg_file){.fd = -1};
    sj->bufs = calloc(mc, sizeof *sj->bufs);
    sj->src = calloc(mc, sizeof *sj->src);
    sj->out = malloc(sj->frame_bytes);
    sj->q16 = malloc(mc * sizeof *sj->q16);
    if (!sj->files || !sj->bufs || !sj->src || !sj->out || !sj->q16) {
        snprintf(err, errlen,
                 "stitch: out of memory for a job's stitching state (%zu segments, a %zu-byte "
                 "frame)",
                 sj->plan->n, sj->frame_bytes);
        return -1;
    }
    return 0;
}

/* Segment k's file (its own, or a pack), for messages and to open it. */
static void seg_file(const stitch_job *sj, size_t k, char *buf, size_t len) {
    spool_loc_path(sj->spool_dir, sj->packs_dir, (uint32_t)k, sj->loc[k], buf, len);
}

/* Open segment k's own file and map it whole. Mapped, a frame reaches
 * the blend or the encoder without a copy: the page cache's pages are the
 * frame (the pread it replaces was one of the coordinator's four copies of
 * every frame over the socket, bench/README.md). The size is checked
 * first, so a short file is an error here. Only its first page is read
 * now: frame_at populates one frame's pages just before the frame is
 * used, so a long segment on disk costs no wait of its whole size, and a
 * file that shrank meanwhile is an error rather than a SIGBUS. That
 * leaves the instants between populating and reading: nothing in rfarm
 * truncates a done segment's file (a commit renames a part file over it),
 * so only someone else writing into the spool could hit them. Where the
 * file cannot be mapped, or pages cannot be populated (an older kernel or
 * C library), the descriptor stays for pread. */
static int seg_file_open(stitch_job *sj, size_t k, char *err, size_t errlen) {
    char path[RF_PATH_MAX + 32];
    struct stitch_seg_file *sf = &sj->files[k];
    size_t len = (size_t)sj->plan->seg[k].frames * sj->frame_bytes;
    seg_file(sj, k, path, sizeof path);
    sf->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (sf->fd < 0) {
        snprintf(err, errlen, "stitch: cannot open segment %zu spool file %s: %s", k, path,
                 strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(sf->fd, &st) != 0) {
        snprintf(err, errlen, "stitch: cannot stat segment %zu spool file %s: %s", k, path,
                 strerror(errno));
        seg_file_close(sf);
        return -1;
    }
    if ((uint64_t)st.st_size < (uint64_t)len) {
        snprintf(err, errlen, "stitch: segment %zu spool file %s holds %lld of its %zu bytes", k,
                 path, (long long)st.st_size, len);
        seg_file_close(sf);
        return -1;
    }
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, sf->fd, 0);
    if (m == MAP_FAILED)
        return 0;
    /* Its first page tells whether populating works here at all. */
    if (rf_populate_read(m, 1) != 0) {
        munmap(m, len);
        return 0;
    }
    madvise(m, len, MADV_SEQUENTIAL); /* a hint: read ahead, drop behind */
    sf->map = m;
    sf->maplen = len;
    close(sf->fd);
    sf->fd = -1;
    return 0;
}

/* Frame f of segment k into *frame: a pointer into its mapped file, or
 * the frame read into *bufp (a packed segment, or a file that could not
 * be mapped). *bufp is allocated here the first time it is needed and
 * belongs to the job (release_buffers frees it); *frame stays valid until
 * the segment is retired or the next read into *bufp. */
static int frame_at(stitch_job *sj, size_t k, uint32_t f, uint8_t **bufp, const uint8_t **frame,
                    char *err, size_t errlen) {
    char path[RF_PATH_MAX + 32];
    uint32_t pack = sj->loc[k].pack;
    struct stitch_seg_file *sf = &sj->files[k];
    if (!pack && !sf->map && sf->fd < 0 && seg_file_open(sj, k, err, errlen) != 0)
        return -1;
    off_t off = (off_t)(f - sj->plan->seg[k].first) * (off_t)sj->frame_bytes;
    if (sf->map) {
        int pe = rf_populate_read(sf->map + off, sj->frame_bytes);
        if (pe == EFAULT || pe == EHWPOISON) { /* touching the pages would be SIGBUS */
            seg_file(sj, k, path, sizeof path);
            snprintf(err, errlen, "stitch: segment %zu spool file %s %s under frame %u", k, path,
                     pe == EFAULT ? "shrank" : "lost a page to a memory error", f);
            return -1;
        }
        *frame = sf->map + off;
        return 0;
    }
    int fd = pack ? pack_fd(sj, pack, path, sizeof path) : sf->fd;
    if (fd < 0) { /* path: the pack that could not be opened */
        snprintf(err, errlen, "stitch: cannot open segment %zu spool file %s: %s", k, path,
                 strerror(errno));
        return -1;
    }
    off += (off_t)sj->loc[k].off;
    if (!*bufp && !(*bufp = malloc(sj->frame_bytes))) {
        snprintf(err, errlen, "stitch: out of memory for a frame buffer of %zu bytes",
                 sj->frame_bytes);
        return -1;
    }
    uint8_t *buf = *bufp;
    size_t got = 0;
    while (got < sj->frame_bytes) {
        ssize_t r = pread(fd, buf + got, sj->frame_bytes - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            seg_file(sj, k, path, sizeof path);
            snprintf(err, errlen, "stitch: segment %zu spool file %s is short at frame %u (%s)", k,
                     path, f, r < 0 ? strerror(errno) : "end of file");
            return -1;
        }
        got += (size_t)r;
    }
    *frame = buf;
    return 0;
}

/* Close the spool files of segments that no unemitted frame needs (packs
 * stay open, a few at most, until the job is). The files stay until the
 * job is over (the coordinator removes its spool directory and the packs
 * it no longer needs then): a coordinator that restarts stitches again
 * from the first frame, without rendering again what was done. */
static void retire_segments(stitch_job *sj) {
    while (sj->closed_upto < sj->plan->n) {
        const plan_segment *s = &sj->plan->seg[sj->closed_upto];
        if (s->first + s->frames > sj->next_frame)
            break;
        seg_file_close(&sj->files[sj->closed_upto]);
        sj->closed_upto++;
    }
}

static int frame_ready(stitch_pool *pool, stitch_job *sj, uint32_t f, size_t *lo, size_t *hi) {
    plan_cover(sj->plan, f, lo, hi);
    pthread_mutex_lock(&pool->mu);
    int ok = !sj->cancelled;
    for (size_t k = *lo; ok && k <= *hi; k++)
        ok = sj->ready[k];
    pthread_mutex_unlock(&pool->mu);
    return ok;
}

/* Emit every frame that can be emitted now. Returns 1 when the job is
 * complete, 0 when it waits for more segments, -1 on failure (err set). */
static int stitch_pass(stitch_pool *pool, stitch_job *sj, void *push, char *err, size_t errlen) {
    if (!sj->files && alloc_buffers(sj, err, errlen) != 0)
        return -1;
    uint32_t last_report = sj->next_frame;
    while (sj->next_frame < sj->plan->frames) {
        uint32_t f = sj->next_frame;
        size_t lo, hi;
        if (!frame_ready(pool, sj, f, &lo, &hi))
            break;
        if (!sj->enc) {
            /* The file is made under out_mu; the encoder opens it again
             * outside it (briefly taking the directory's lock, but making
             * no inode). 0666 less the umask, as the encoder would. */
            pthread_mutex_lock(&pool->out_mu);
            int fd = open(sj->partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
            int open_err = errno;
            pthread_mutex_unlock(&pool->out_mu);
            if (fd < 0) {
                snprintf(err, errlen, "stitch: cannot create %s: %s", sj->partial,
                         strerror(open_err));
                return -1;
            }
            close(fd);
            enc_opts eo = {
                .path = sj->partial,
                .container = sj->spec.container,
                .codec = sj->spec.codec,
                .width = sj->spec.width,
                .height = sj->spec.height,
                .fps_num = sj->spec.fps_num,
                .fps_den = sj->spec.fps_den,
                .quality = sj->spec.quality,
                .preset = sj->spec.preset,
                .threads = 0,
            };
            if (enc_open(&eo, &sj->enc, err, errlen) != 0) {
                unlink(sj->partial); /* made above; a failed open made nothing else */
                return -1;
            }
        }
        const uint8_t *frame;
        if (lo == hi) {
            if (frame_at(sj, lo, f, &sj->bufs[0], &frame, err, errlen) != 0)
                return -1;
        } else {
            size_t n0;
            size_t n = plan_weights(sj->plan, f, &n0, NULL, sj->q16);
            for (size_t i = 0; i < n; i++)
                if (frame_at(sj, lo + i, f, &sj->bufs[i], &sj->src[i], err, errlen) != 0)
                    return -1;
            if (kn_blend_u8(pool->kn, sj->src, sj->q16, (unsigned)n, sj->out, sj->frame_bytes,
                            err, errlen) != 0)
                return -1;
            frame = sj->out;
        }
        if (enc_write(sj->enc, frame, err, errlen) != 0)
            return -1;
        sj->next_frame++;
        retire_segments(sj);
        /* Report every 64 frames and whenever a pass runs dry, so progress
         * moves smoothly without an event per frame. */
        if (sj->next_frame - last_report >= 64) {
            send_event(push, sj, STITCH_PROGRESS, 0, NULL);
            last_report = sj->next_frame;
        }
    }
    if (sj->next_frame < sj->plan->frames) {
        if (sj->next_frame != last_report)
            send_event(push, sj, STITCH_PROGRESS, 0, NULL);
        return 0;
    }
    int rc = enc_close(sj->enc, err, errlen);
    sj->enc = NULL;
    if (rc != 0) {
        unlink(sj->partial);
        return -1;
    }
    pthread_mutex_lock(&pool->out_mu);
    int moved = rename(sj->partial, sj->spec.output_path) == 0;
    int move_err = errno;
    pthread_mutex_unlock(&pool->out_mu);
    if (!moved) {
        snprintf(err, errlen, "stitch: cannot move %s to %s: %s", sj->partial,
                 sj->spec.output_path, strerror(move_err));
        unlink(sj->partial);
        return -1;
    }
    return 1;
}

/* Unlink and return the first queued job no other thread is working on
 * (pool->mu held). A job queued while busy waits for its thread to finish:
 * an encoder must never be driven by two threads at once. */
/* Take sj off the queue if it is on it (pool->mu held). */
static void dequeue(stitch_pool *pool, stitch_job *sj) {
    if (!sj->queued)
        return;
    stitch_job **pp = &pool->q_head;
    stitch_job *prev = NULL;
    while (*pp && *pp != sj) {
        prev = *pp;
        pp = &(*pp)->next_q;
    }
    if (*pp) {
        *pp = sj->next_q;
        if (pool->q_tail == sj)
            pool->q_tail = prev;
    }
    sj->next_q = NULL;
    sj->queued = 0;
}

static stitch_job *take_idle_job(stitch_pool *pool) {
    stitch_job *prev = NULL;
    for (stitch_job *sj = pool->q_head; sj; prev = sj, sj = sj->next_q) {
        if (sj->busy)
            continue;
        if (prev)
            prev->next_q = sj->next_q;
        else
            pool->q_head = sj->next_q;
        if (pool->q_tail == sj)
            pool->q_tail = prev;
        sj->next_q = NULL;
        sj->queued = 0;
        return sj;
    }
    return NULL;
}

static void *stitch_thread(void *arg) {
    stitch_pool *pool = arg;
    void *push = zmq_socket(pool->zctx, ZMQ_PUSH);
    int linger = 1000;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(push, pool->endpoint);
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        stitch_job *sj = NULL;
        while (!pool->stopping && !(sj = take_idle_job(pool)))
            pthread_cond_wait(&pool->cv, &pool->mu);
        if (pool->stopping)
            break;
        sj->busy = 1;
        pthread_mutex_unlock(&pool->mu);

        char err[512] = "";
        int rc = stitch_pass(pool, sj, push, err, sizeof err);
        if (rc != 0) {
            if (rc < 0 && sj->enc) {
                enc_abort(sj->enc);
                sj->enc = NULL;
            }
            release_buffers(sj);
            struct stat st;
            uint64_t bytes = rc > 0 && stat(sj->spec.output_path, &st) == 0 ? (uint64_t)st.st_size : 0;
            send_event(push, sj, rc > 0 ? STITCH_DONE : STITCH_FAILED, bytes, rc > 0 ? NULL : err);
        }

        pthread_mutex_lock(&pool->mu);
        sj->busy = 0;
        if (rc != 0) {
            /* Segments that became ready during the last pass queued the
             * job again; it has nothing left to do (a second pass would
             * try to move the finished output again, and fail). */
            sj->finished = 1;
            dequeue(pool, sj);
        }
        pthread_cond_broadcast(&pool->idle_cv);
        /* Segments that became ready during the pass left the job queued;
         * now that it is free, any thread may take it. */
        if (sj->queued)
            pthread_cond_broadcast(&pool->cv);
    }
    pthread_mutex_unlock(&pool->mu);
    zmq_close(push);
    return NULL;
}

int stitch_pool_new(void *zctx, const char *event_endpoint, unsigned threads, kn_pref pref,
                    stitch_pool **out, char *err, size_t errlen) {
    *out = NULL;
    stitch_pool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        snprintf(err, errlen, "stitch: out of memory");
        return -1;
    }
    pool->zctx = zctx;
    snprintf(pool->endpoint, sizeof pool->endpoint, "%s", event_endpoint);
    if (kn_new(pref, &pool->kn, err, errlen) != 0) {
        free(pool);
        return -1;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_mutex_init(&pool->out_mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pthread_cond_init(&pool->idle_cv, NULL);
    if (threads == 0)
        threads = 1;
    pool->threads = calloc(threads, sizeof *pool->threads);
    if (!pool->threads) {
        snprintf(err, errlen, "stitch: out of memory");
        stitch_pool_free(pool);
        return -1;
    }
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&pool->threads[i], NULL, stitch_thread, pool) != 0) {
            snprintf(err, errlen, "stitch: cannot start thread %u: %s", i, strerror(errno));
            stitch_pool_free(pool);
            return -1;
        }
        pool->nthreads++;
    }
    *out = pool;
    return 0;
}

void stitch_pool_free(stitch_pool *pool) {
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (unsigned i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_mutex_destroy(&pool->mu);
    pthread_mutex_destroy(&pool->out_mu);
    pthread_cond_destroy(&pool->cv);
    pthread_cond_destroy(&pool->idle_cv);
    kn_free(pool->kn);
    free(pool);
}

const char *stitch_pool_backend(const stitch_pool *pool) { return kn_backend(pool->kn); }
const char *stitch_pool_backend_reason(const stitch_pool *pool) { return kn_reason(pool->kn); }

int stitch_job_new(stitch_pool *pool, const rf_spec *spec, const plan *p, const char *spool_dir,
                   const char *packs_dir, stitch_job **out, char *err, size_t errlen) {
    *out = NULL;
    stitch_job *sj = calloc(1, sizeof *sj);
    if (!sj) {
        snprintf(err, errlen, "stitch: out of memory");
        return -1;
    }
    sj->pool = pool;
    sj->spec = *spec;
    sj->spec.prompt = NULL;
    sj->spec.params_json = NULL;
    sj->frame_bytes = rf_i420_bytes(spec->width, spec->height);
    if (rf_fmt(sj->spool_dir, sizeof sj->spool_dir, "%s", spool_dir) != 0 ||
        rf_fmt(sj->packs_dir, sizeof sj->packs_dir, "%s", packs_dir) != 0 ||
        rf_fmt(sj->partial, sizeof sj->partial, "%s.partial", spec->output_path) != 0) {
        snprintf(err, errlen, "stitch: spool or output path too long");
        free(sj);
        return -1;
    }
    if (plan_new(p->frames, p->seg_len, p->overlap, p->curve, &sj->plan, err, errlen) != 0) {
        free(sj);
        return -1;
    }
    sj->ready = calloc(sj->plan->n, 1);
    sj->loc = calloc(sj->plan->n, sizeof *sj->loc);
    if (!sj->ready || !sj->loc) {
        snprintf(err, errlen, "stitch: out of memory");
        free(sj->ready);
        free(sj->loc);
        plan_free(sj->plan);
        free(sj);
        return -1;
    }
    *out = sj;
    return 0;
}

void stitch_job_ready(stitch_job *sj, uint32_t k, spool_loc loc) {
    stitch_pool *pool = sj->pool;
    int wake = 0;
    pthread_mutex_lock(&pool->mu);
    if (k < sj->plan->n) {
        sj->ready[k] = 1;
        sj->loc[k] = loc;
    }
    if (!sj->queued && !sj->finished && !sj->cancelled) {
        /* Queue even when busy: once the running pass ends, a thread takes
         * it again and sees the new segment. */
        sj->queued = 1;
        sj->next_q = NULL;
        if (pool->q_tail)
            pool->q_tail->next_q = sj;
        else
            pool->q_head = sj;
        pool->q_tail = sj;
        wake = 1;
    }
    pthread_mutex_unlock(&pool->mu);
    /* After the unlock: a thread woken under the mutex blocks on it again
     * (the pool outlives its jobs, so the condition variable is there). */
    if (wake)
        pthread_cond_signal(&pool->cv);
}

void stitch_job_free(stitch_job *sj) {
    if (!sj)
        return;
    stitch_pool *pool = sj->pool;
    pthread_mutex_lock(&pool->mu);
    sj->cancelled = 1;
    dequeue(pool, sj);
    while (sj->busy)
        pthread_cond_wait(&pool->idle_cv, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
    if (sj->enc) {
        enc_abort(sj->enc);
        sj->enc = NULL;
    }
    release_buffers(sj);
    free(sj->ready);
    free(sj->loc);
    plan_free(sj->plan);
    free(sj);
}
