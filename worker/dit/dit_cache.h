/* dit_cache — models kept loaded between segments in one worker process.
 *
 * Loading a real model (gigabytes of weights converted to float32 and cut
 * into rank shards) takes far longer than denoising a short segment, and a
 * job's segments all use the same model, so a worker keeps what it loaded.
 * A segment leases an entry (model + prompt embeddings) for its whole
 * run: a model's activation buffers and its rank group serve one segment
 * at a time. A worker rendering several segments at once (capacity > 1)
 * may therefore hold one copy per segment in flight.
 *
 * An entry is reused when the next segment names the same directory, the
 * same number of ranks, and the directory's files are unchanged (name,
 * size, modification time and inode of everything in transformer/, vae/
 * and scheduler/): an operator who replaces a checkpoint in place gets the
 * new weights on the next segment, not the stale copy. Before another
 * model is loaded, idle entries are dropped, so memory holds the models
 * in use plus the one being loaded. Embeddings are reloaded when their
 * file changes (they are small).
 *
 * One instance per worker process, made by the worker and passed to the
 * engine; never a global. Thread-safe.
 */
#ifndef DIT_CACHE_H
#define DIT_CACHE_H

#include <stddef.h>

#include "dit_model.h"

typedef struct dit_cache dit_cache;
typedef struct dit_cache_entry dit_cache_entry;

int dit_cache_new(dit_cache **out, char *err, size_t errlen);
/* Frees every entry; no lease may be outstanding. Accepts NULL. */
void dit_cache_free(dit_cache *c);

typedef struct {
    dit_model *model;
    const dit_embeds *embeds;
    int model_reused;  /* loaded by an earlier segment */
    int embeds_reused;
    dit_cache_entry *entry; /* the cache's own */
} dit_lease;

/* Lease the model in model_dir for `ranks` ranks with the embeddings of
 * embeds_path, loading what is not loaded yet. c may be NULL: everything
 * is loaded for this lease alone and freed at release. Returns 0, or -1
 * with err from dit_model_load / dit_embeds_load. */
int dit_cache_acquire(dit_cache *c, const char *model_dir, int ranks, const char *embeds_path,
                      dit_lease *out, char *err, size_t errlen);

/* Hand a lease back. keep = 0 drops the model instead of keeping it: after
 * a failed segment whose rank group may not be usable again. */
void dit_cache_release(dit_cache *c, dit_lease *lease, int keep);

#endif
