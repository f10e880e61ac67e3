/* fpool — lent frame buffers. See fpool.h.
 *
 * Each buffer carries its size in a header in front of it (64 bytes, so the
 * pixels keep malloc's alignment and a cache line of their own), which is
 * how fpool_put and ZeroMQ's free callback know whether it still fits.
 */
#include "fpool.h"

#include <pthread.h>
#include <stdlib.h>

#define HDR 64

typedef struct hdr {
    size_t len;
    struct hdr *next; /* while waiting in the pool */
} hdr;

_Static_assert(sizeof(hdr) <= HDR, "the header must fit in front of the pixels");

struct fpool {
    pthread_mutex_t mu;
    size_t len;    /* size of the buffers kept */
    hdr *free;     /* kept buffers */
    unsigned n, keep;
};

fpool *fpool_new(unsigned keep) {
    fpool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->keep = keep;
    return p;
}

static void free_list(hdr *h) {
    while (h) {
        hdr *next = h->next;
        free(h);
        h = next;
    }
}

void fpool_free(fpool *p) {
    if (!p)
        return;
    free_list(p->free);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

uint8_t *fpool_get(fpool *p, size_t len) {
    hdr *h = NULL, *dropped = NULL;
    pthread_mutex_lock(&p->mu);
    if (len != p->len) { /* another frame size from now on */
        dropped = p->free;
        p->free = NULL;
        p->n = 0;
        p->len = len;
    } else if (p->free) {
        h = p->free;
        p->free = h->next;
        p->n--;
    }
    pthread_mutex_unlock(&p->mu);
    free_list(dropped);
    if (!h && !(h = malloc(HDR + len)))
        return NULL;
    h->len = len;
    return (uint8_t *)h + HDR;
}

void fpool_put(fpool *p, uint8_t *buf) {
    if (!buf)
        return;
    hdr *h = (hdr *)(void *)(buf - HDR);
    pthread_mutex_lock(&p->mu);
    int kept = h->len == p->len && p->n < p->keep;
    if (kept) {
        h->next = p->free;
        p->free = h;
        p->n++;
    }
    pthread_mutex_unlock(&p->mu);
    if (!kept)
        free(h);
}

void fpool_zmq_free(void *data, void *hint) {
    fpool_put(hint, data);
}
