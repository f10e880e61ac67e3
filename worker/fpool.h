/* fpool — frame buffers that engines render into and ZeroMQ sends as they
 * are, then hands back.
 *
 * Sending a frame used to copy it into a fresh ZeroMQ message: for 1080p a
 * 3 MB copy per frame, into memory just allocated (and, once freed, often
 * given back to the kernel, so that the next frame's pages fault in again).
 * Now a render thread lends the engine a buffer from this pool; the frame
 * it renders there goes to ZeroMQ without a copy (zmq_msg_init_data), and
 * ZeroMQ's I/O thread puts the buffer back once the frame is on the wire.
 *
 * Buffers are of one size at a time (the frame size of the segments being
 * rendered): a request for another size empties the pool. At most `keep`
 * buffers wait in it; more are freed. Any thread may get and put.
 */
#ifndef FPOOL_H
#define FPOOL_H

#include <stddef.h>
#include <stdint.h>

/* Frames smaller than this are copied as before: a copy costs less than a
 * lent buffer's bookkeeping (16x16 frames are 384 B). */
#define FPOOL_MIN_BYTES 4096

typedef struct fpool fpool;

/* NULL when out of memory. */
fpool *fpool_new(unsigned keep);
/* Frees the buffers waiting in the pool; none may be out (lent or in a
 * message: free it after the ZeroMQ context is terminated). */
void fpool_free(fpool *p);
/* A buffer of len bytes, or NULL when out of memory. */
uint8_t *fpool_get(fpool *p, size_t len);
/* Give back a buffer fpool_get returned. */
void fpool_put(fpool *p, uint8_t *buf);
/* zmq_free_fn for a message made with zmq_msg_init_data(msg, buf, len,
 * fpool_zmq_free, pool). */
void fpool_zmq_free(void *data, void *hint);

#endif
