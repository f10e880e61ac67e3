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

typedef struct commit_req {
    struct commit_req *next;
    char job[RF_ID_MAX + 1];
    uint32_t seg, attempt;
    int fd;
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
};

void commit_now(const char *job, uint32_t seg, uint32_t attempt, int fd, const char *part,
                const char *final, const char *dir, commit_result *res) {
    memset(res, 0, sizeof *res);
    snprintf(res->job, sizeof res->job, "%s", job);
    res->seg = seg;
    res->attempt = attempt;
    int synced = fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!synced || rename(part, final) != 0) {
        if (synced)
            e = errno;
        snprintf(res->msg, sizeof res->msg, "spool: cannot %s %s: %s", synced ? "rename" : "sync",
                 part, strerror(e));
        unlink(part);
        return;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    res->ok = 1;
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
        commit_req *r = p->head;
        if (!r)
            break; /* stopping, and nothing left to commit */
        p->head = r->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        commit_result res;
        commit_now(r->job, r->seg, r->attempt, r->fd, r->part, r->final, r->dir, &res);
        zmq_send(push, &res, sizeof res, 0);
        free(r);
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
    if (pthread_create(&p->thread, NULL, commit_thread, p) != 0) {
        snprintf(err, errlen, "commit: cannot start its thread: %s", strerror(errno));
        commit_pool_free(p);
        return -1;
    }
    p->started = 1;
    *out = p;
    return 0;
}

int commit_submit(commit_pool *p, const char *job, uint32_t seg, uint32_t attempt, int fd,
                  const char *part, const char *final, const char *dir) {
    commit_req *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    snprintf(r->job, sizeof r->job, "%s", job);
    r->seg = seg;
    r->attempt = attempt;
    r->fd = fd;
    snprintf(r->part, sizeof r->part, "%s", part);
    snprintf(r->final, sizeof r->final, "%s", final);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = r;
    else
        p->head = r;
    p->tail = r;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
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
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
