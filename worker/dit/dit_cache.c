/* dit_cache — loaded models shared by a worker's segments (see dit_cache.h).
 *
 * The list is short (one entry per segment in flight at most, plus idle
 * ones until the next load), so it is a linked list under one mutex.
 * Loading and freeing run outside the mutex: they take seconds for a real
 * model and must not hold up another segment that only wants to lease or
 * hand back an entry. A loading entry is not in the list yet, so nobody
 * can lease it half made.
 *
 * Fingerprints hash file metadata, not contents: reading gigabytes to
 * decide whether to skip reading them would defeat the cache.
 */
#include "dit_cache.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct dit_cache_entry {
    dit_cache_entry *next;
    char *dir;
    int ranks;
    uint64_t fp;
    dit_model *model;
    char *embeds_path;
    uint64_t embeds_fp;
    dit_embeds *embeds;
    int busy;
};

struct dit_cache {
    pthread_mutex_t mu;
    dit_cache_entry *head;
};

/* ---- fingerprints ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t stat_hash(const char *name, const struct stat *st) {
    uint64_t h = fnv(0xcbf29ce484222325ull, name, strlen(name));
    int64_t v[5] = {(int64_t)st->st_ino, (int64_t)st->st_size, (int64_t)st->st_mtim.tv_sec,
                    (int64_t)st->st_mtim.tv_nsec, (int64_t)st->st_dev};
    return fnv(h, v, sizeof v);
}

/* Sum of the files' hashes, so that the order readdir lists them in does
 * not matter. A folder that cannot be read adds nothing: the load that
 * follows reports it properly. */
static uint64_t model_fingerprint(const char *dir) {
    static const char *const subs[] = {"transformer", "vae", "scheduler"};
    uint64_t sum = 0;
    char path[4096];
    for (size_t s = 0; s < sizeof subs / sizeof subs[0]; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, subs[s]);
        DIR *d = opendir(path);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char file[4096 + 256];
            struct stat st;
            snprintf(file, sizeof file, "%s/%s", path, de->d_name);
            if (stat(file, &st) == 0)
                sum += stat_hash(file, &st);
        }
        closedir(d);
    }
    return sum;
}

static uint64_t file_fingerprint(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? stat_hash(path, &st) : 0;
}

/* ---- entries ---- */

static void entry_free(dit_cache_entry *e) {
    if (!e)
        return;
    dit_model_free(e->model);
    dit_embeds_free(e->embeds);
    free(e->dir);
    free(e->embeds_path);
    free(e);
}

static void entries_free(dit_cache_entry *e) {
    while (e) {
        dit_cache_entry *next = e->next;
        entry_free(e);
        e = next;
    }
}

int dit_cache_new(dit_cache **out, char *err, size_t errlen) {
    *out = calloc(1, sizeof **out);
    if (!*out) {
        snprintf(err, errlen, "dit cache: out of memory");
        return -1;
    }
    pthread_mutex_init(&(*out)->mu, NULL);
    return 0;
}

void dit_cache_free(dit_cache *c) {
    if (!c)
        return;
    entries_free(c->head);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* An idle entry for (dir, ranks, fp), marked busy; or NULL, after moving
 * every idle entry to *evict (they are freed outside the lock). */
static dit_cache_entry *lease_or_evict(dit_cache *c, const char *dir, int ranks, uint64_t fp,
                                       dit_cache_entry **evict) {
    pthread_mutex_lock(&c->mu);
    for (dit_cache_entry *e = c->head; e; e = e->next)
        if (!e->busy && e->ranks == ranks && e->fp == fp && strcmp(e->dir, dir) == 0) {
            e->busy = 1;
            pthread_mutex_unlock(&c->mu);
            return e;
        }
    dit_cache_entry **pp = &c->head;
    while (*pp) {
        dit_cache_entry *e = *pp;
        if (e->busy) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        e->next = *evict;
        *evict = e;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int dit_cache_acquire(dit_cache *c, const char *model_dir, int ranks, const char *embeds_path,
                      dit_lease *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    uint64_t fp = model_fingerprint(model_dir);
    dit_cache_entry *e = NULL, *evict = NULL;
    if (c)
        e = lease_or_evict(c, model_dir, ranks, fp, &evict);
    entries_free(evict);
    int fresh = e == NULL;
    if (fresh) {
        e = calloc(1, sizeof *e);
        if (!e || !(e->dir = strdup(model_dir))) {
            free(e);
            snprintf(err, errlen, "dit cache: out of memory");
            return -1;
        }
        e->ranks = ranks;
        e->fp = fp;
        e->busy = 1;
        if (dit_model_load(model_dir, ranks, &e->model, err, errlen) != 0) {
            entry_free(e);
            return -1;
        }
    }
    if (fresh && c) {
        /* Listed while still busy: nobody else can lease it. */
        pthread_mutex_lock(&c->mu);
        e->next = c->head;
        c->head = e;
        pthread_mutex_unlock(&c->mu);
    }
    uint64_t efp = file_fingerprint(embeds_path);
    int embeds_reused = e->embeds && efp == e->embeds_fp && strcmp(e->embeds_path, embeds_path) == 0;
    if (!embeds_reused) {
        dit_embeds_free(e->embeds);
        free(e->embeds_path);
        e->embeds = NULL;
        e->embeds_fp = efp;
        int rc = -1;
        if (!(e->embeds_path = strdup(embeds_path)))
            snprintf(err, errlen, "dit cache: out of memory");
        else
            rc = dit_embeds_load(embeds_path, dit_model_tf_config(e->model)->text_dim, &e->embeds,
                                 err, errlen);
        if (rc != 0) {
            /* The model itself is fine: keep it for the next segment. */
            dit_lease l = {.entry = e};
            dit_cache_release(c, &l, 1);
            return -1;
        }
    }
    *out = (dit_lease){.model = e->model, .embeds = e->embeds, .model_reused = !fresh,
                       .embeds_reused = embeds_reused, .entry = e};
    return 0;
}

void dit_cache_release(dit_cache *c, dit_lease *lease, int keep) {
    dit_cache_entry *e = lease->entry;
    memset(lease, 0, sizeof *lease);
    if (!e)
        return;
    if (!c) {
        entry_free(e);
        return;
    }
    pthread_mutex_lock(&c->mu);
    e->busy = 0;
    if (!keep) {
        for (dit_cache_entry **pp = &c->head; *pp; pp = &(*pp)->next)
            if (*pp == e) {
                *pp = e->next;
                break;
            }
    }
    pthread_mutex_unlock(&c->mu);
    if (!keep)
        entry_free(e);
}
