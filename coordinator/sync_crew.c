/* sync_crew — fsync many files at once. See sync_crew.h. */
#include "sync_crew.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct sync_crew {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    const int *fds; /* the run under way (under mu) */
    int *errs;
    size_t n, next, finished;
    int stopping;
    unsigned cheap_us;
    unsigned nthreads;
    pthread_t *threads;
};

/* Take the next file of the run and sync it; 0 when none was left. Called
 * with mu held, returns with it held. */
static int sync_next(sync_crew *c) {
    if (c->next >= c->n)
        return 0;
    size_t i = c->next++;
    const int *fds = c->fds;
    int *errs = c->errs;
    pthread_mutex_unlock(&c->mu);
    int e = fsync(fds[i]) == 0 ? 0 : errno;
    pthread_mutex_lock(&c->mu);
    errs[i] = e;
    if (++c->finished == c->n)
        pthread_cond_signal(&c->done);
    return 1;
}

static void *crew_thread(void *arg) {
    sync_crew *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        if (!sync_next(c))
            pthread_cond_wait(&c->work, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int sync_crew_new(unsigned threads, unsigned cheap_us, sync_crew **out, char *err, size_t errlen) {
    *out = NULL;
    sync_crew *c = calloc(1, sizeof *c);
    if (!c || (threads && !(c->threads = calloc(threads, sizeof *c->threads)))) {
        free(c);
        snprintf(err, errlen, "sync crew: out of memory");
        return -1;
    }
    c->cheap_us = cheap_us;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->done, NULL);
    for (; c->nthreads < threads; c->nthreads++)
        if (pthread_create(&c->threads[c->nthreads], NULL, crew_thread, c) != 0) {
            snprintf(err, errlen, "sync crew: cannot start a thread: %s", strerror(errno));
            sync_crew_free(c);
            return -1;
        }
    *out = c;
    return 0;
}

void sync_crew_run(sync_crew *c, const int *fds, int *errs, size_t n) {
    if (n == 0)
        return;
    uint64_t t0 = mono_us();
    errs[0] = fsync(fds[0]) == 0 ? 0 : errno;
    size_t from = 1;
    uint64_t took = mono_us() - t0;
    if ((took <= c->cheap_us && c->cheap_us) || c->nthreads == 0) {
        for (; from < n; from++)
            errs[from] = fsync(fds[from]) == 0 ? 0 : errno;
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->fds = fds + from;
    c->errs = errs + from;
    c->n = n - from;
    c->next = c->finished = 0;
    pthread_cond_broadcast(&c->work);
    while (sync_next(c)) {
    }
    while (c->finished < c->n)
        pthread_cond_wait(&c->done, &c->mu);
    c->n = c->next = 0; /* the crew goes back to waiting */
    pthread_mutex_unlock(&c->mu);
}

void sync_crew_free(sync_crew *c) {
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_broadcast(&c->work);
    pthread_mutex_unlock(&c->mu);
    for (unsigned i = 0; i < c->nthreads; i++)
        pthread_join(c->threads[i], NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->done);
    free(c->threads);
    free(c);
}
