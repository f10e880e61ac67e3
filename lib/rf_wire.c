/* rf_wire — ZeroMQ multipart + protobuf-c helpers. See rf_wire.h. */
#include "rf_wire.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rf_util.h"

int rf_wire_recv(void *sock, rf_parts *p, int flags) {
    p->n = 0;
    p->truncated = 0;
    for (;;) {
        zmq_msg_t tmp;
        zmq_msg_t *m = p->n < RF_WIRE_MAX_PARTS ? &p->part[p->n] : &tmp;
        zmq_msg_init(m);
        /* Only the first part may wait or fail with EAGAIN; later parts of a
         * multipart message are delivered atomically with the first. */
        if (zmq_msg_recv(m, sock, p->n == 0 && !p->truncated ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(m);
            rf_parts_close(p);
            errno = e;
            return -1;
        }
        int more = zmq_msg_more(m);
        if (m == &tmp) {
            zmq_msg_close(&tmp);
            p->truncated = 1;
        } else {
            p->n++;
        }
        if (!more)
            return 0;
    }
}

void rf_parts_close(rf_parts *p) {
    for (int i = 0; i < p->n; i++)
        zmq_msg_close(&p->part[i]);
    p->n = 0;
}

int rf_wire_send_pb(void *sock, const ProtobufCMessage *m, int more) {
    size_t n = protobuf_c_message_get_packed_size(m);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, n) != 0)
        return -1;
    protobuf_c_message_pack(m, zmq_msg_data(&msg));
    if (zmq_msg_send(&msg, sock, more ? ZMQ_SNDMORE : 0) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        errno = e;
        return -1;
    }
    return 0;
}

int rf_wire_send_bytes(void *sock, const void *data, size_t n, int more) {
    return zmq_send(sock, data, n, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

void *rf_wire_socket(void *zctx, int type, int linger_ms, char *err, size_t errlen) {
    void *s = zmq_socket(zctx, type);
    if (!s) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    zmq_setsockopt(s, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    return s;
}
