/* rf_map — open-addressing string map with tombstones. See rf_map.h. */
#include "rf_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    char *key; /* NULL: empty; TOMB: deleted */
    void *value;
} slot;

struct rf_map {
    slot *slots;
    size_t cap;  /* power of two */
    size_t len;  /* live entries */
    size_t used; /* live + tombstones */
};

static char tomb_marker;
#define TOMB (&tomb_marker)

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

rf_map *rf_map_new(void) {
    rf_map *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void rf_map_free(rf_map *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static slot *find(const rf_map *m, const char *key) {
    size_t mask = m->cap - 1;
    for (size_t i = hash_str(key) & mask;; i = (i + 1) & mask) {
        slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && strcmp(s->key, key) == 0)
            return s;
    }
}

void *rf_map_get(const rf_map *m, const char *key) {
    slot *s = find(m, key);
    return s ? s->value : NULL;
}

static int grow(rf_map *m) {
    size_t ncap = m->len * 4 >= m->cap ? m->cap * 2 : m->cap; /* else just drop tombstones */
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        slot *s = &m->slots[i];
        if (!s->key || s->key == TOMB)
            continue;
        size_t j = hash_str(s->key) & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->used = m->len;
    return 0;
}

int rf_map_put(rf_map *m, const char *key, void *value) {
    slot *s = find(m, key);
    if (s) {
        s->value = value;
        return 0;
    }
    if ((m->used + 1) * 4 > m->cap * 3 && grow(m) != 0)
        return -1;
    char *k = strdup(key);
    if (!k)
        return -1;
    size_t mask = m->cap - 1;
    size_t i = hash_str(key) & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (!m->slots[i].key)
        m->used++;
    m->slots[i].key = k;
    m->slots[i].value = value;
    m->len++;
    return 0;
}

void *rf_map_del(rf_map *m, const char *key) {
    slot *s = find(m, key);
    if (!s)
        return NULL;
    void *v = s->value;
    free(s->key);
    s->key = TOMB;
    s->value = NULL;
    m->len--;
    return v;
}

size_t rf_map_len(const rf_map *m) { return m->len; }

void rf_map_each(const rf_map *m, int (*fn)(void *ctx, const char *key, void *value), void *ctx) {
    for (size_t i = 0; i < m->cap; i++) {
        slot *s = &m->slots[i];
        if (s->key && s->key != TOMB && fn(ctx, s->key, s->value))
            return;
    }
}
