/* Frame pool: a buffer given back is handed out again (no new allocation
 * while frames keep their size), at most `keep` wait in the pool, a new
 * frame size drops the old buffers, and ZeroMQ gives a lent buffer back
 * once the message carrying it is gone, from whichever thread. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

#include "fpool.h"

static void test_reuses_buffers_of_the_same_size(void **state) {
    (void)state;
    fpool *p = fpool_new(2);
    assert_non_null(p);
    uint8_t *a = fpool_get(p, 5000), *b = fpool_get(p, 5000);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    memset(a, 1, 5000); /* the whole length is usable */
    memset(b, 2, 5000);
    fpool_put(p, a);
    fpool_put(p, b);
    uint8_t *c = fpool_get(p, 5000), *d = fpool_get(p, 5000);
    assert_true((c == a && d == b) || (c == b && d == a));
    fpool_put(p, c);
    fpool_put(p, d);
    fpool_put(p, NULL); /* nothing to give back */
    fpool_free(p);
}

static void test_keeps_at_most_keep(void **state) {
    (void)state;
    fpool *p = fpool_new(1);
    uint8_t *a = fpool_get(p, 4096), *b = fpool_get(p, 4096);
    fpool_put(p, a);
    fpool_put(p, b); /* freed: one is kept */
    uint8_t *c = fpool_get(p, 4096), *d = fpool_get(p, 4096);
    assert_ptr_equal(c, a);
    assert_non_null(d);
    fpool_put(p, c);
    fpool_put(p, d);
    fpool_free(p);
}

static void test_new_size_drops_the_old_buffers(void **state) {
    (void)state;
    fpool *p = fpool_new(4);
    uint8_t *a = fpool_get(p, 4096);
    fpool_put(p, a);
    uint8_t *big = fpool_get(p, 8192); /* a new size: a is freed, not reused */
    assert_non_null(big);
    memset(big, 3, 8192);
    uint8_t *old = fpool_get(p, 8192);
    assert_ptr_not_equal(old, big);
    fpool_put(p, big);
    fpool_put(p, old);
    uint8_t *small = fpool_get(p, 4096);
    fpool_put(p, small);
    /* A buffer of the old size given back late is freed, not kept. */
    fpool_free(p);
}

/* A lent buffer sent over an inproc pair comes back to the pool when the
 * receiver closes the message (valgrind / ASan see a double free or a
 * leak if it does not). */
static void test_zmq_gives_it_back(void **state) {
    (void)state;
    fpool *p = fpool_new(4);
    void *ctx = zmq_ctx_new();
    void *tx = zmq_socket(ctx, ZMQ_PAIR), *rx = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(rx, "inproc://fpool-test"), 0);
    assert_int_equal(zmq_connect(tx, "inproc://fpool-test"), 0);
    uint8_t *buf = fpool_get(p, 6000);
    memset(buf, 7, 6000);
    zmq_msg_t m;
    assert_int_equal(zmq_msg_init_data(&m, buf, 6000, fpool_zmq_free, p), 0);
    assert_int_equal(zmq_msg_send(&m, tx, 0), 6000);
    zmq_msg_t in;
    zmq_msg_init(&in);
    assert_int_equal(zmq_msg_recv(&in, rx, 0), 6000);
    assert_ptr_equal(zmq_msg_data(&in), buf); /* not copied */
    assert_int_equal(((uint8_t *)zmq_msg_data(&in))[5999], 7);
    zmq_msg_close(&in); /* back in the pool */
    assert_ptr_equal(fpool_get(p, 6000), buf);
    fpool_put(p, buf);
    zmq_close(tx);
    zmq_close(rx);
    zmq_ctx_term(ctx);
    fpool_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuses_buffers_of_the_same_size),
        cmocka_unit_test(test_keeps_at_most_keep),
        cmocka_unit_test(test_new_size_drops_the_old_buffers),
        cmocka_unit_test(test_zmq_gives_it_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
