/* Commit pool: a finished segment's file ends up under its final name with
 * the result reported back in submission order, in messages of whole
 * results (a group per message); a commit that cannot be made says why and
 * leaves no part file, without failing the rest of its group; freeing the
 * pool finishes what was queued; a job's directory removal runs after its
 * commits queued before it, so none of them brings the directory back;
 * packed segments of several jobs land in shared pack files at their
 * offsets, the packs (and their directory) made as needed, and leave no
 * part file; a pack's removal, too, waits for the commits into it. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

#include "commit.h"
#include "rf_util.h"

#define EP "inproc://test-commits"

static int make_part(const char *dir, unsigned k, char *part, size_t plen, char *final,
                     size_t flen) {
    snprintf(part, plen, "%s/seg-%06u.a1.part", dir, k);
    snprintf(final, flen, "%s/seg-%06u.yuv", dir, k);
    int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    char buf[100];
    memset(buf, (int)k, sizeof buf);
    assert_int_equal(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    return fd;
}

typedef struct fixture {
    char dir[64];
    void *ctx, *pull;
    commit_pool *pool;
} fixture;

/* A temporary spool directory, the socket results come to, a pool. */
static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/rfarm-test-commit-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->ctx = zmq_ctx_new();
    fx->pull = zmq_socket(fx->ctx, ZMQ_PULL);
    assert_int_equal(zmq_bind(fx->pull, EP), 0);
    char err[256];
    assert_int_equal(commit_pool_new(fx->ctx, EP, &fx->pool, err, sizeof err), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    commit_pool_free(fx->pool);
    zmq_close(fx->pull);
    zmq_ctx_term(fx->ctx);
    rf_rmtree(fx->dir);
    free(fx);
    return 0;
}

/* Read results until `want` have come; returns how many messages held them. */
static unsigned recv_results(void *pull, commit_result *out, unsigned want) {
    unsigned got = 0, msgs = 0;
    while (got < want) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&m, pull, 0) >= 0);
        size_t sz = zmq_msg_size(&m);
        assert_int_equal(sz % sizeof(commit_result), 0);
        assert_true(sz > 0);
        size_t n = sz / sizeof(commit_result);
        assert_true(got + n <= want);
        memcpy(out + got, zmq_msg_data(&m), sz);
        got += (unsigned)n;
        msgs++;
        zmq_msg_close(&m);
    }
    return msgs;
}

static void test_commits_in_order(void **state) {
    fixture *fx = *state;
    const char *dir = fx->dir;
    void *pull = fx->pull;
    commit_pool *p = fx->pool;
    char part[256], final[256];
    for (unsigned k = 0; k < 20; k++) {
        int fd = make_part(dir, k, part, sizeof part, final, sizeof final);
        assert_int_equal(commit_submit(p, "job-1", k, 1, &(commit_data){.fd = fd}, part, final, dir), 0);
    }
    commit_result all[20];
    recv_results(pull, all, 20);
    for (unsigned k = 0; k < 20; k++) {
        const commit_result res = all[k];
        assert_string_equal(res.job, "job-1");
        assert_int_equal(res.seg, k); /* in submission order */
        assert_int_equal(res.attempt, 1);
        assert_true(res.ok);
        snprintf(part, sizeof part, "%s/seg-%06u.a1.part", dir, k);
        snprintf(final, sizeof final, "%s/seg-%06u.yuv", dir, k);
        struct stat st;
        assert_int_equal(stat(final, &st), 0);
        assert_int_equal(st.st_size, 100);
        assert_int_equal(access(part, F_OK), -1);
    }
    /* Queued commits are finished by commit_pool_free. */
    int fd = make_part(dir, 99, part, sizeof part, final, sizeof final);
    assert_int_equal(commit_submit(p, "job-1", 99, 1, &(commit_data){.fd = fd}, part, final, dir), 0);
    commit_pool_free(p);
    fx->pool = NULL;
    assert_int_equal(access(final, F_OK), 0);
    commit_result res;
    assert_int_equal(zmq_recv(pull, &res, sizeof res, ZMQ_DONTWAIT), (int)sizeof res);
    assert_int_equal(res.seg, 99); /* alone in its group */
}

/* A failing commit among others submitted together (most of them land in
 * one group: the thread takes what is queued when it wakes): the others
 * still land, and the failure names its file. */
static void test_group_with_failure(void **state) {
    fixture *fx = *state;
    const char *dir = fx->dir;
    void *pull = fx->pull;
    commit_pool *p = fx->pool;
    char part[256], final[256], bad[300];
    for (unsigned k = 0; k < 8; k++) {
        int fd = make_part(dir, k, part, sizeof part, final, sizeof final);
        if (k == 4) {
            snprintf(bad, sizeof bad, "%s/gone/seg-000004.yuv", dir);
            assert_int_equal(commit_submit(p, "job-3", k, 1, &(commit_data){.fd = fd}, part, bad, dir), 0);
        } else {
            assert_int_equal(commit_submit(p, "job-3", k, 1, &(commit_data){.fd = fd}, part, final, dir), 0);
        }
    }
    commit_result all[8];
    unsigned msgs = recv_results(pull, all, 8);
    assert_true(msgs >= 1 && msgs <= 8);
    for (unsigned k = 0; k < 8; k++) {
        assert_int_equal(all[k].seg, k);
        snprintf(part, sizeof part, "%s/seg-%06u.a1.part", dir, k);
        snprintf(final, sizeof final, "%s/seg-%06u.yuv", dir, k);
        assert_int_equal(access(part, F_OK), -1);
        if (k == 4) {
            assert_false(all[k].ok);
            assert_non_null(strstr(all[k].msg, "cannot rename"));
            assert_int_equal(access(final, F_OK), -1);
        } else {
            assert_true(all[k].ok);
            assert_int_equal(access(final, F_OK), 0);
        }
    }
}

/* A segment gathered in memory: the pool creates the part file (and the
 * job's directory, which does not exist yet), writes, syncs and renames
 * it; where the directory cannot be made, the failure says "write" and
 * leaves nothing. */
static void test_from_memory(void **state) {
    fixture *fx = *state;
    const char *dir = fx->dir;
    void *pull = fx->pull;
    commit_pool *p = fx->pool;
    char job[300], part[400], final[400], blocker[300];
    snprintf(job, sizeof job, "%s/job-4", dir);
    for (unsigned k = 0; k < 6; k++) {
        uint8_t *mem = malloc(384);
        assert_non_null(mem);
        memset(mem, (int)k + 1, 384);
        snprintf(part, sizeof part, "%s/seg-%06u.a1.part", job, k);
        snprintf(final, sizeof final, "%s/seg-%06u.yuv", job, k);
        commit_data d = {.fd = -1, .mem = mem, .len = 384};
        assert_int_equal(commit_submit(p, "job-4", k, 1, &d, part, final, job), 0);
    }
    /* A directory that cannot be made: its parent is a file. */
    snprintf(blocker, sizeof blocker, "%s/blocker", dir);
    FILE *bf = fopen(blocker, "w");
    assert_non_null(bf);
    fclose(bf);
    char badjob[400];
    snprintf(badjob, sizeof badjob, "%s/job-5", blocker);
    snprintf(part, sizeof part, "%s/seg-000000.a1.part", badjob);
    snprintf(final, sizeof final, "%s/seg-000000.yuv", badjob);
    commit_data bad = {.fd = -1, .mem = calloc(1, 384), .len = 384};
    assert_int_equal(commit_submit(p, "job-5", 0, 1, &bad, part, final, badjob), 0);
    commit_result all[7];
    recv_results(pull, all, 7);
    for (unsigned k = 0; k < 6; k++) {
        assert_true(all[k].ok);
        snprintf(final, sizeof final, "%s/seg-%06u.yuv", job, k);
        FILE *f = fopen(final, "rb");
        assert_non_null(f);
        uint8_t buf[400];
        assert_int_equal(fread(buf, 1, sizeof buf, f), 384);
        fclose(f);
        assert_int_equal(buf[0], k + 1);
        assert_int_equal(buf[383], k + 1);
        snprintf(part, sizeof part, "%s/seg-%06u.a1.part", job, k);
        assert_int_equal(access(part, F_OK), -1);
    }
    assert_false(all[6].ok);
    assert_string_equal(all[6].job, "job-5");
    assert_non_null(strstr(all[6].msg, "cannot write"));
    assert_int_equal(access(badjob, F_OK), -1);
}

static void submit_packed(commit_pool *p, const char *job, const char *dir, const char *pack,
                          uint32_t seg, uint32_t attempt, int fill, int64_t off) {
    char part[400];
    snprintf(part, sizeof part, "%s/%s/seg-%06u.a%u.part", dir, job, seg, attempt);
    commit_data d = {.fd = -1, .mem = malloc(300), .len = 300, .packed = 1, .pack_off = off};
    assert_non_null(d.mem);
    memset(d.mem, fill, 300);
    assert_int_equal(commit_submit(p, job, seg, attempt, &d, part, pack, dir), 0);
}

static void test_packed(void **state) {
    fixture *fx = *state;
    char dir[300], pack1[400], pack2[400];
    snprintf(dir, sizeof dir, "%s/.packs", fx->dir); /* not there yet */
    snprintf(pack1, sizeof pack1, "%s/00000001", dir);
    snprintf(pack2, sizeof pack2, "%s/00000002", dir);
    submit_packed(fx->pool, "job-a", dir, pack1, 0, 1, 'a', 0);
    submit_packed(fx->pool, "job-b", dir, pack1, 0, 1, 'b', 300);
    submit_packed(fx->pool, "job-a", dir, pack2, 1, 1, 'c', 0);
    submit_packed(fx->pool, "job-b", dir, pack1, 1, 1, 'd', 600);
    submit_packed(fx->pool, "job-a", dir, pack1, 1, 2, 'z', 900); /* job-a 1 again */
    assert_int_equal(commit_remove(fx->pool, pack2), 0);
    commit_result all[5];
    recv_results(fx->pull, all, 5);
    for (int i = 0; i < 5; i++)
        assert_true(all[i].ok);
    assert_string_equal(all[1].job, "job-b");
    assert_int_equal(all[4].attempt, 2);
    commit_pool_free(fx->pool); /* finishes the removal */
    fx->pool = NULL;
    assert_int_equal(access(pack2, F_OK), -1);
    int fd = open(pack1, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 1200);
    const char want[4] = {'a', 'b', 'd', 'z'};
    uint8_t buf[1200];
    assert_int_equal(pread(fd, buf, sizeof buf, 0), 1200);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(buf[i * 300], want[i]);
        assert_int_equal(buf[i * 300 + 299], want[i]);
    }
    close(fd);
    char part[400];
    snprintf(part, sizeof part, "%s/job-a/seg-000001.a2.part", dir);
    assert_int_equal(access(part, F_OK), -1);
}

/* Segments of a job gathered in memory, then the job's removal, then a
 * second job's segments, all queued at once: the removal waits for the
 * first job's commits (which would otherwise create its directory again
 * after it went), and the second job's still land. */
static void test_remove_after_commits(void **state) {
    fixture *fx = *state;
    char jobs[2][300], part[400], final[400];
    for (int j = 0; j < 2; j++) {
        snprintf(jobs[j], sizeof jobs[j], "%s/job-%d", fx->dir, j);
        for (unsigned k = 0; k < 40; k++) {
            snprintf(part, sizeof part, "%s/seg-%06u.a1.part", jobs[j], k);
            snprintf(final, sizeof final, "%s/seg-%06u.yuv", jobs[j], k);
            commit_data d = {.fd = -1, .mem = calloc(1, 64), .len = 64};
            assert_int_equal(commit_submit(fx->pool, j ? "job-1" : "job-0", k, 1, &d, part, final,
                                           jobs[j]), 0);
        }
        if (j == 0)
            assert_int_equal(commit_remove(fx->pool, jobs[0]), 0);
    }
    commit_result all[80];
    recv_results(fx->pull, all, 80);
    for (unsigned i = 0; i < 80; i++)
        assert_true(all[i].ok);
    commit_pool_free(fx->pool); /* finishes what is queued */
    fx->pool = NULL;
    assert_int_equal(access(jobs[0], F_OK), -1);
    snprintf(final, sizeof final, "%s/seg-%06u.yuv", jobs[1], 39u);
    assert_int_equal(access(final, F_OK), 0);
}

/* Thousands of small segments queued at once (a disk far behind) with few
 * file descriptors to spare: a group opens at most so many files and
 * directories (a pack once, however many of its segments it holds), so
 * every commit still lands. */
static void test_big_backlog_few_fds(void **state) {
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    fixture *fx = *state;
    const char *dir = fx->dir;
    void *pull = fx->pull;
    commit_pool *p = fx->pool;
    enum { N = 3000 };
    char part[400], final[400], sub[300];
    for (unsigned k = 0; k < N; k++) {
        /* The second third one job each: a group holds a directory open
         * per job beside a file per segment. The last third in two packs,
         * in turns. */
        unsigned third = k / (N / 3);
        if (third == 0)
            snprintf(sub, sizeof sub, "%s", dir);
        else if (third == 1)
            snprintf(sub, sizeof sub, "%s/job-%u", dir, k);
        else
            snprintf(sub, sizeof sub, "%s/.packs", dir);
        snprintf(part, sizeof part, "%s/s%u.part", sub, k);
        snprintf(final, sizeof final, "%s/s%u.yuv", sub, k);
        commit_data d = {.fd = -1, .mem = calloc(1, 16), .len = 16};
        assert_non_null(d.mem);
        if (third == 2) {
            snprintf(final, sizeof final, "%s/0000000%u", sub, 1 + k % 2);
            d.packed = 1;
            d.pack_off = (int64_t)(k - 2 * (N / 3)) / 2 * 16;
        }
        assert_int_equal(commit_submit(p, "job-6", k, 1, &d, part, final, sub), 0);
    }
    commit_result *all = calloc(N, sizeof *all);
    recv_results(pull, all, N);
    for (unsigned k = 0; k < N; k++)
        if (!all[k].ok)
            fail_msg("commit %u failed: %s", k, all[k].msg);
    free(all);
    for (unsigned i = 1; i <= 2; i++) {
        struct stat st;
        snprintf(final, sizeof final, "%s/.packs/0000000%u", dir, i);
        assert_int_equal(stat(final, &st), 0);
        assert_int_equal(st.st_size, N / 3 / 2 * 16);
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
}

static void test_failure_says_why(void **state) {
    (void)state;
    char dir[] = "/tmp/rfarm-test-commit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char part[256], final[256], bad[300];
    int fd = make_part(dir, 3, part, sizeof part, final, sizeof final);
    snprintf(bad, sizeof bad, "%s/no-such-dir/seg-000003.yuv", dir);
    commit_result res;
    commit_now("job-2", 3, 2, &(commit_data){.fd = fd}, part, bad, dir, &res);
    assert_false(res.ok);
    assert_int_equal(res.seg, 3);
    assert_int_equal(res.attempt, 2);
    assert_non_null(strstr(res.msg, "cannot rename"));
    assert_non_null(strstr(res.msg, part));
    assert_int_equal(access(part, F_OK), -1); /* nothing half-done left */
    rf_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commits_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_with_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_backlog_few_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_after_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packed, setup, teardown),
        cmocka_unit_test(test_failure_says_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
