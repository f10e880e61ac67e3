/* rf_map — a string-keyed hash map of pointers (open addressing).
 *
 * The coordinator looks up jobs and workers by id for every message it
 * receives, so a lookup must not cost a scan of thousands of jobs. The map
 * copies keys and does not own values.
 */
#ifndef RF_MAP_H
#define RF_MAP_H

#include <stddef.h>

typedef struct rf_map rf_map;

rf_map *rf_map_new(void); /* NULL when out of memory; free with rf_map_free */
void rf_map_free(rf_map *m);
void *rf_map_get(const rf_map *m, const char *key);
/* Insert or replace. Returns 0, or -1 when out of memory. */
int rf_map_put(rf_map *m, const char *key, void *value);
/* Remove; returns the value that was there or NULL. */
void *rf_map_del(rf_map *m, const char *key);
size_t rf_map_len(const rf_map *m);
/* Visit every entry; stops early when fn returns non-zero. The map must not
 * change during the walk. */
void rf_map_each(const rf_map *m, int (*fn)(void *ctx, const char *key, void *value), void *ctx);

#endif
