/* stop_later — for engine tests: a thread that raises an engine's stop
 * flag after a delay, as a worker does when a segment is cancelled. */
#ifndef STOP_LATER_H
#define STOP_LATER_H

#include <stdatomic.h>

#include "rf_util.h"

typedef struct delayed_stop {
    atomic_int *flag;
    unsigned ms;
} delayed_stop;

/* pthread start routine; arg is a delayed_stop that outlives the thread. */
static inline void *stop_later(void *arg) {
    delayed_stop *d = arg;
    rf_sleep_ms(d->ms);
    atomic_store(d->flag, 1);
    return NULL;
}

#endif
