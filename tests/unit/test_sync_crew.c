/* sync_crew: every fd of a run is synced once and gets its own outcome (a
 * bad fd its errno, without failing the others), with a crew of threads
 * or the caller alone, run after run on one crew; freeing stops the crew. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rf_util.h"
#include "sync_crew.h"

#define NFILES 48

static void run_case(unsigned threads, unsigned cheap_us) {
    char dir[] = "/tmp/rfarm-test-sync-XXXXXX";
    assert_non_null(mkdtemp(dir));
    sync_crew *c;
    char err[256];
    assert_int_equal(sync_crew_new(threads, cheap_us, &c, err, sizeof err), 0);
    for (int round = 0; round < 5; round++) {
        int fds[NFILES], errs[NFILES];
        for (int i = 0; i < NFILES; i++) {
            char path[128];
            snprintf(path, sizeof path, "%s/f%d-%d", dir, round, i);
            fds[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            assert_true(fds[i] >= 0);
            assert_int_equal(write(fds[i], path, strlen(path)), (ssize_t)strlen(path));
            errs[i] = 12345;
        }
        int keep3 = fds[3], keep30 = fds[30];
        fds[3] = fds[30] = -1; /* not files: EBADF, the others unaffected */
        sync_crew_run(c, fds, errs, NFILES);
        for (int i = 0; i < NFILES; i++)
            assert_int_equal(errs[i], (i == 3 || i == 30) ? EBADF : 0);
        fds[3] = keep3;
        fds[30] = keep30;
        for (int i = 0; i < NFILES; i++)
            close(fds[i]);
    }
    sync_crew_run(c, NULL, NULL, 0); /* nothing to do */
    sync_crew_free(c);
    rf_rmtree(dir);
}

static void test_crew_always_helps(void **state) {
    (void)state;
    run_case(4, 0);
}

static void test_caller_alone(void **state) {
    (void)state;
    run_case(0, 0);
    run_case(4, 1000000); /* every fsync counts as cheap */
}

static void test_free_null(void **state) {
    (void)state;
    sync_crew_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crew_always_helps),
        cmocka_unit_test(test_caller_alone),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
