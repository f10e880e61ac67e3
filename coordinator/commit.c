/* commit — durable spool files, off the event loop. See commit.h. */
#include "commit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "rf_util.h"
#include "sync_crew.h"

/* Threads that fsync a group's files together (sync_crew.h says why 16),
 * and the fsync time below which the commit thread does them alone. */
#define COMMIT_SYNC_THREADS 16
#define COMMIT_CHEAP_SYNC_US 50
/* Descriptors a group holds at most: a file per request (one per pack,
 * however many of the group's segments go into it) and its directories (a
 * job's segments share one), and a process may have only so many (1,024
 * by default). */
#define COMMIT_GROUP_MAX 128

typedef struct commit_req {
    struct commit_req *next;
    char job[RF_ID_MAX + 1];
    uint32_t seg, attempt;
    int fd;
    uint8_t *mem; /* to write to part first (commit_data) */
    size_t len;
    int write_err; /* errno of creating or writing part from mem */
    int remove;    /* not a commit: remove the file or directory `dir` */
    int dfd;       /* dir's fd while its group is committed, else AT_FDCWD */
    int packed;    /* mem goes into final (a pack file) at pack_off */
    int64_t pack_off;
    int created;   /* this commit created final (a pack): its directory must be synced */
    int borrowed;  /* fd is an earlier request's of the group (the same pack) */
    size_t owner;  /* that request's index in the group */
    char part[RF_PATH_MAX + 64], final[RF_PATH_MAX + 64], dir[RF_PATH_MAX];
} commit_req;

struct commit_pool {
    void *zctx;
    char endpoint[128];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    commit_req *head, *tail;
    int stopping;
    int started;
    pthread_t thread;
    sync_crew *crew;
};

/* Where a request's file ops look names up: its directory's fd (names
 * relative to it: a full path costs the kernel a lookup per component,
 * and three such lookups per tiny segment were most of this thread's
 * time), or AT_FDCWD with the full paths. */
static const char *name_in(const commit_req *r, const char *path) {
    if (r->dfd == AT_FDCWD)
        return path;
    size_t n = strlen(r->dir);
    const char *base = path + n + 1;
    if (strncmp(path, r->dir, n) != 0 || path[n] != '/' || strchr(base, '/'))
        return path; /* not directly in dir: openat and renameat take it whole */
    return base;
}

/* Rename one file that has been synced (sync_err: 0, or fsync's errno);
 * closes its fd. The directory is synced by the caller. */
static void finish_file(const commit_req *r, int sync_err, commit_result *res) {
    memset(res, 0, sizeof *res);
    snprintf(res->job, sizeof res->job, "%s", r->job);
    res->seg = r->seg;
    res->attempt = r->attempt;
    if (r->fd >= 0 && !r->borrowed)
        close(r->fd);
    int e = r->write_err ? r->write_err : sync_err;
    if (e == 0 && !r->packed &&
        renameat(r->dfd, name_in(r, r->part), r->dfd, name_in(r, r->final)) != 0)
        e = errno;
    if (e) {
        snprintf(res->msg, sizeof res->msg, "spool: cannot %s %s: %s",
                 r->write_err ? "write" : sync_err ? "sync" : "rename",
                 r->packed ? r->final : r->part, strerror(e));
        if (!r->packed) /* a pack holds other segments */
            unlinkat(r->dfd, name_in(r, r->part), 0);
        return;
    }
    res->ok = 1;
}

/* Open a pack, creating it (and its directory) when it is not there yet:
 * r->created says so, because then its directory must be synced, whatever
 * becomes of this request (the next one into the pack finds it there). */
static int open_pack(commit_req *r) {
    const char *path = name_in(r, r->final);
    const int create = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    int fd = openat(r->dfd, path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    fd = openat(r->dfd, path, create, 0644);
    if (fd < 0 && errno == ENOENT && rf_mkdirs(r->dir, 0755) == 0)
        fd = openat(r->dfd, path, create, 0644);
    if (fd < 0 && errno == EEXIST) /* made meanwhile (commit_now on the loop's thread) */
        return openat(r->dfd, path, O_WRONLY | O_CLOEXEC);
    r->created = fd >= 0;
    return fd;
}

/* A segment gathered in memory: create its part file, or open its pack
 * (unless it borrowed an earlier request's descriptor of it: r->fd is set
 * then), and write it there. The directory is made if need be (then
 * r->dfd is AT_FDCWD: it could not be opened before). */
static void write_mem(commit_req *r) {
    if (!r->mem)
        return;
    if (r->packed && r->fd < 0) {
        r->fd = open_pack(r);
    } else if (!r->packed) {
        const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
        r->fd = openat(r->dfd, name_in(r, r->part), flags, 0644);
        if (r->fd < 0 && errno == ENOENT && rf_mkdirs(r->dir, 0755) == 0)
            r->fd = openat(r->dfd, name_in(r, r->part), flags, 0644);
    }
    off_t at = r->packed ? (off_t)r->pack_off : 0;
    size_t done = 0;
    while (r->fd >= 0 && done < r->len) {
        ssize_t n = pwrite(r->fd, r->mem + done, r->len - done, at + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            break;
        }
        done += (size_t)n;
    }
    if (r->fd < 0 || done < r->len)
        r->write_err = errno;
    free(r->mem);
    r->mem = NULL;
}

static void commit_file(commit_req *r, commit_result *res) {
    write_mem(r);
    finish_file(r, r->write_err ? 0 : fsync(r->fd) == 0 ? 0 : errno, res);
}

/* Whether a commit changed its directory (res: its outcome): a rename, or
 * a pack it created, even when the write into it failed. Appending to a
 * pack that was there changes nothing in it, and most packed commits do
 * just that. */
static int dir_changed(const commit_req *r, const commit_result *res) {
    return r->created || (res->ok && !r->packed);
}

static void sync_dir(const char *dir) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

static void fill_req(commit_req *r, const char *job, uint32_t seg, uint32_t attempt,
                     const commit_data *d, const char *part, const char *final, const char *dir) {
    memset(r, 0, sizeof *r);
    snprintf(r->job, sizeof r->job, "%s", job);
    r->seg = seg;
    r->attempt = attempt;
    r->fd = d->fd;
    r->dfd = AT_FDCWD;
    r->mem = d->mem;
    r->packed = d->packed && d->mem;
    r->pack_off = d->pack_off;
    r->len = d->len;
    snprintf(r->part, sizeof r->part, "%s", part);
    snprintf(r->final, sizeof r->final, "%s", final);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
}

void commit_now(const char *job, uint32_t seg, uint32_t attempt, const commit_data *d,
                const char *part, const char *final, const char *dir, commit_result *res) {
    commit_req r;
    fill_req(&r, job, seg, attempt, d, part, final, dir);
    commit_file(&r, res);
    /* A pack the commit thread has just made may not have had its
     * directory synced yet: this runs beside it (out of memory to queue). */
    if (dir_changed(&r, res) || (res->ok && r.packed))
        sync_dir(dir);
}

static void free_group(commit_req *g) {
    while (g) {
        commit_req *next = g->next;
        free(g->mem);
        free(g);
        g = next;
    }
}

/* One at a time, as commit_now does (when there is no memory to gather a
 * group's outcomes). */
static void commit_singly(void *push, commit_req *g) {
    for (commit_req *r = g; r; r = r->next) {
        commit_result one;
        commit_file(r, &one);
        if (dir_changed(r, &one))
            sync_dir(r->dir);
        zmq_send(push, &one, sizeof one, 0);
    }
}

/* Open the directory of each request of g, once per distinct one (a job's
 * segments share one, so a group holds few), making it when a segment
 * from memory is its first file: dfds gets the fds, *ndirs their count;
 * each request's dfd is set (AT_FDCWD where its directory cannot be
 * opened: then its own file ops fail and say why). */
static void open_dirs(commit_req *g, int *dfds, size_t *ndirs) {
    *ndirs = 0;
    for (commit_req *r = g; r; r = r->next) {
        r->dfd = AT_FDCWD;
        for (const commit_req *q = g; q != r; q = q->next)
            if (q->dfd != AT_FDCWD && strcmp(q->dir, r->dir) == 0) {
                r->dfd = q->dfd;
                break;
            }
        if (r->dfd != AT_FDCWD)
            continue;
        int fd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && r->mem && rf_mkdirs(r->dir, 0755) == 0)
            fd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0)
            r->dfd = dfds[(*ndirs)++] = fd;
    }
}

/* The requests after r (the group's i-th, which has just opened its pack)
 * that append to the same pack borrow its descriptor: one fd and one
 * fsync per pack per group, however many segments went into it. */
static void share_pack(commit_req *r, size_t i) {
    for (commit_req *q = r->next; q; q = q->next)
        if (q->packed && q->fd < 0 && strcmp(q->final, r->final) == 0) {
            q->fd = r->fd;
            q->borrowed = 1;
            q->owner = i;
        }
}

/* Commit the group `g` (a list taken whole from the queue) and send its
 * outcomes; frees the list. Files are synced together by the crew, then
 * renamed in order; then each directory that changed is synced once. */
static void commit_group(commit_pool *p, void *push, commit_req *g) {
    size_t n = 0;
    for (const commit_req *r = g; r; r = r->next)
        n++;
    commit_result *res = calloc(n, sizeof *res);
    int *fds = calloc(n, sizeof *fds), *errs = calloc(n, sizeof *errs);
    int *dfds = calloc(n, sizeof *dfds);
    size_t *slot = calloc(n, sizeof *slot);
    if (!res || !fds || !errs || !dfds || !slot) {
        commit_singly(push, g);
        goto out;
    }
    size_t ndirs;
    open_dirs(g, dfds, &ndirs);
    /* Write, a pack being opened by the first of its requests before the
     * later ones look for it; each descriptor is synced once (slot[i]: the
     * index in fds of request i's, n when it has none). */
    size_t i = 0, nfds = 0;
    for (commit_req *r = g; r; r = r->next, i++) {
        write_mem(r);
        if (r->packed && !r->borrowed && r->fd >= 0)
            share_pack(r, i);
        slot[i] = r->borrowed ? slot[r->owner] : r->fd >= 0 ? nfds : n;
        if (r->fd >= 0 && !r->borrowed)
            fds[nfds++] = r->fd;
    }
    sync_crew_run(p->crew, fds, errs, nfds);
    i = 0;
    for (const commit_req *r = g; r; r = r->next, i++)
        finish_file(r, slot[i] < n ? errs[slot[i]] : EBADF, &res[i]);
    /* Sync the directories that changed; one that could not be held open
     * (no descriptor to spare then) is opened again for it. */
    i = 0;
    for (const commit_req *r = g; r; r = r->next, i++)
        if (r->dfd == AT_FDCWD && dir_changed(r, &res[i]))
            sync_dir(r->dir);
    size_t nsync = 0;
    for (size_t d = 0; d < ndirs; d++) {
        i = 0;
        for (const commit_req *r = g; r; r = r->next, i++)
            if (r->dfd == dfds[d] && dir_changed(r, &res[i])) {
                fds[nsync++] = dfds[d];
                break;
            }
    }
    sync_crew_run(p->crew, fds, errs, nsync);
    for (size_t d = 0; d < ndirs; d++)
        close(dfds[d]);
    zmq_send(push, res, n * sizeof *res, 0);
out:
    free(res);
    free(fds);
    free(errs);
    free(dfds);
    free(slot);
    free_group(g);
}

/* Carry out g, a list of removal requests taken from the queue (a file, or
 * a directory with its files); frees the list. */
static void remove_paths(commit_req *g) {
    while (g) {
        int rc = unlink(g->dir);
        if (rc != 0 && errno == EISDIR) /* what Linux says of a directory */
            rc = rf_rmtree(g->dir);
        if (rc != 0 && errno != ENOENT)
            rf_warn("commit", "cannot remove from the spool path=%s error=\"%s\"", g->dir,
                    strerror(errno));
        commit_req *next = g->next;
        free(g);
        g = next;
    }
}

static void *commit_thread(void *arg) {
    commit_pool *p = arg;
    void *push = zmq_socket(p->zctx, ZMQ_PUSH);
    /* No send limit: results are small, and the loop reads them all, also
     * at shutdown after this thread has ended. */
    int linger = 1000, hwm = 0;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_connect(push, p->endpoint);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        commit_req *g = p->head;
        if (!g)
            break; /* stopping, and nothing left to commit */
        /* The run of requests of g's kind at the head of the queue: a
         * group holds a file open per commit and its directories, at most
         * COMMIT_GROUP_MAX descriptors, however far behind the disk is. Removals run in queue
         * order: a job's commits queued before its removal are done (and
         * fail harmlessly) before its directory goes, so none recreates it. */
        commit_req *last = g;
        unsigned fds = 2; /* g's file and directory */
        while (last->next && last->next->remove == g->remove) {
            /* A directory other than the last one's may be a new one to
             * hold open (counting it again when it is not errs safe); the
             * same pack as the last one's is the same descriptor. */
            const commit_req *nx = last->next;
            unsigned more = 1 + (strcmp(nx->dir, last->dir) != 0);
            if (nx->packed && last->packed && strcmp(nx->final, last->final) == 0)
                more = 0;
            if (!g->remove && fds + more > COMMIT_GROUP_MAX)
                break;
            fds += more;
            last = last->next;
        }
        p->head = last->next;
        if (!p->head)
            p->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&p->mu);
        if (g->remove)
            remove_paths(g);
        else
            commit_group(p, push, g);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    zmq_close(push);
    return NULL;
}

int commit_pool_new(void *zctx, const char *endpoint, commit_pool **out, char *err,
                    size_t errlen) {
    *out = NULL;
    commit_pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "commit: out of memory");
        return -1;
    }
    p->zctx = zctx;
    snprintf(p->endpoint, sizeof p->endpoint, "%s", endpoint);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (sync_crew_new(COMMIT_SYNC_THREADS, COMMIT_CHEAP_SYNC_US, &p->crew, err, errlen) != 0) {
        commit_pool_free(p);
        return -1;
    }
    if (pthread_create(&p->thread, NULL, commit_thread, p) != 0) {
        snprintf(err, errlen, "commit: cannot start its thread: %s", strerror(errno));
        commit_pool_free(p);
        return -1;
    }
    p->started = 1;
    *out = p;
    return 0;
}

static void enqueue(commit_pool *p, commit_req *r) {
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = r;
    else
        p->head = r;
    p->tail = r;
    pthread_mutex_unlock(&p->mu);
    /* After the unlock: woken under the mutex, the thread would block on it
     * again at once. */
    pthread_cond_signal(&p->cv);
}

int commit_remove(commit_pool *p, const char *path) {
    commit_req *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->remove = 1;
    r->fd = -1;
    if (rf_fmt(r->dir, sizeof r->dir, "%s", path) != 0) {
        free(r); /* the caller removes it itself, as when out of memory */
        return -1;
    }
    enqueue(p, r);
    return 0;
}

int commit_submit(commit_pool *p, const char *job, uint32_t seg, uint32_t attempt,
                  const commit_data *d, const char *part, const char *final, const char *dir) {
    commit_req *r = malloc(sizeof *r);
    if (!r)
        return -1;
    fill_req(r, job, seg, attempt, d, part, final, dir);
    enqueue(p, r);
    return 0;
}

void commit_pool_free(commit_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->started)
        pthread_join(p->thread, NULL);
    sync_crew_free(p->crew);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
