/* rf-ghostworker — a worker that loses every segment it is given, for the
 * end-to-end tests of what the coordinator does about lost messages.
 *
 *   rf-ghostworker --connect EP --id NAME [--capacity N]
 *
 * It speaks the real protocol (Hello, Credit, Heartbeat) and stays alive,
 * but every Assign it receives vanishes, as if the Assign, or the worker's
 * SegmentDone, had been dropped with a broken connection: it never renders,
 * never answers, and its heartbeats list no segment in hand. A coordinator
 * that trusted it would wait for ever; the real one must notice from the
 * heartbeats and give the segments to someone else.
 *
 * Each swallowed assignment is logged as
 *   `ghost swallowed job=J seg=K attempt=A`
 * and SIGTERM/SIGINT end it with exit status 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "rf_util.h"
#include "rf_wire.h"
#include "rfarm.pb-c.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void send_msg(void *sock, Rfarm__WorkerMsg *m) {
    if (rf_wire_send_pb(sock, &m->base, 0) != 0)
        fprintf(stderr, "ghost: send failed: %s\n", zmq_strerror(errno));
}

static void hello(void *sock, const char *id, unsigned capacity) {
    char *engines[] = {"synthetic", "exec"};
    Rfarm__Hello h = RFARM__HELLO__INIT;
    h.worker_id = (char *)id;
    h.n_engines = 2;
    h.engines = engines;
    h.capacity = capacity;
    h.compute = "c";
    h.hostname = "ghost";
    h.pid = (uint32_t)getpid();
    Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
    m.body_case = RFARM__WORKER_MSG__BODY_HELLO;
    m.hello = &h;
    send_msg(sock, &m);
    Rfarm__Credit c = RFARM__CREDIT__INIT;
    c.n = capacity;
    Rfarm__WorkerMsg cm = RFARM__WORKER_MSG__INIT;
    cm.body_case = RFARM__WORKER_MSG__BODY_CREDIT;
    cm.credit = &c;
    send_msg(sock, &cm);
}

int main(int argc, char **argv) {
    const char *connect = NULL, *id = "ghost";
    unsigned capacity = 1;
    static const struct option opts[] = {{"connect", required_argument, 0, 'c'},
                                         {"id", required_argument, 0, 'i'},
                                         {"capacity", required_argument, 0, 'n'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'c')
            connect = optarg;
        else if (ch == 'i')
            id = optarg;
        else if (ch == 'n')
            capacity = (unsigned)strtoul(optarg, NULL, 10);
        else
            return 2;
    }
    if (!connect || capacity < 1 || capacity > 64) {
        fprintf(stderr, "usage: rf-ghostworker --connect EP --id NAME [--capacity 1..64]\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *ctx = zmq_ctx_new();
    char err[256];
    void *sock = rf_wire_socket(ctx, ZMQ_DEALER, 0, err, sizeof err);
    if (!sock) {
        fprintf(stderr, "ghost: %s\n", err);
        return 1;
    }
    zmq_setsockopt(sock, ZMQ_ROUTING_ID, id, strlen(id));
    if (zmq_connect(sock, connect) != 0) {
        fprintf(stderr, "ghost: cannot connect to %s: %s\n", connect, zmq_strerror(errno));
        return 1;
    }
    hello(sock, id, capacity);
    fprintf(stderr, "ghost ready id=%s capacity=%u\n", id, capacity);
    unsigned beat_ms = 1000;
    uint64_t next_beat = rf_mono_ms() + beat_ms;
    while (!stop) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) > 0) {
            rf_parts p;
            if (rf_wire_recv(sock, &p, ZMQ_DONTWAIT) == 0) {
                Rfarm__CoordMsg *m =
                    rfarm__coord_msg__unpack(NULL, rf_part_size(&p, 0), rf_part_data(&p, 0));
                if (m && m->body_case == RFARM__COORD_MSG__BODY_ASSIGN)
                    fprintf(stderr, "ghost swallowed job=%s seg=%u attempt=%u\n", m->assign->job_id,
                            m->assign->segment, m->assign->attempt);
                else if (m && m->body_case == RFARM__COORD_MSG__BODY_WELCOME) {
                    if (m->welcome->heartbeat_ms)
                        beat_ms = m->welcome->heartbeat_ms;
                    if (m->welcome->hello_again)
                        hello(sock, id, capacity);
                }
                if (m)
                    rfarm__coord_msg__free_unpacked(m, NULL);
                rf_parts_close(&p);
            }
        }
        if (rf_mono_ms() >= next_beat) {
            Rfarm__Heartbeat hb = RFARM__HEARTBEAT__INIT; /* holds nothing, ever */
            Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
            m.body_case = RFARM__WORKER_MSG__BODY_HEARTBEAT;
            m.heartbeat = &hb;
            send_msg(sock, &m);
            next_beat = rf_mono_ms() + beat_ms;
        }
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    fprintf(stderr, "ghost stopped\n");
    return 0;
}
