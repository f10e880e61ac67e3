/* rf_wire — ZeroMQ multipart messages carrying protobuf-c messages.
 *
 * A message on the wire is one or more parts. Control messages are one
 * packed protobuf part; a frame is a protobuf part followed by a part of
 * raw pixels, received in place (zmq_msg_t) so that the pixels are written
 * from ZeroMQ's buffer to their destination without another copy. Through
 * a ROUTER socket the peer's routing id comes first.
 */
#ifndef RF_WIRE_H
#define RF_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <zmq.h>

#define RF_WIRE_MAX_PARTS 4

typedef struct rf_parts {
    zmq_msg_t part[RF_WIRE_MAX_PARTS];
    int n;         /* parts held */
    int truncated; /* the message had more parts than RF_WIRE_MAX_PARTS; the rest were dropped */
} rf_parts;

/* Receive a whole multipart message. flags: 0 or ZMQ_DONTWAIT.
 * Returns 0, or -1 with errno (EAGAIN, EINTR, ETERM...). On success the
 * caller releases the parts with rf_parts_close. */
int rf_wire_recv(void *sock, rf_parts *p, int flags);
void rf_parts_close(rf_parts *p);

static inline const void *rf_part_data(rf_parts *p, int i) { return zmq_msg_data(&p->part[i]); }
static inline size_t rf_part_size(rf_parts *p, int i) { return zmq_msg_size(&p->part[i]); }

/* Send a packed protobuf message as one part; more = 1 sets ZMQ_SNDMORE.
 * Returns 0 or -1 with errno. */
int rf_wire_send_pb(void *sock, const ProtobufCMessage *m, int more);
/* Send bytes as one part (copied by ZeroMQ). */
int rf_wire_send_bytes(void *sock, const void *data, size_t n, int more);

/* Create a socket with the options every rfarm socket wants (no linger on
 * close past linger_ms, IPv4 loopback friendly). Returns NULL with err set. */
void *rf_wire_socket(void *zctx, int type, int linger_ms, char *err, size_t errlen);

#endif
