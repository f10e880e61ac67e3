/* rf_util. rf_rmtree: removes a directory with files and directories in
 * it, removes a symbolic link in it but not what the link points to, and
 * a path that is not there is not an error.
 *
 * Log lines: the documented format (ISO time to the millisecond, level
 * padded to five, component, message); with rf_log_buffered, info lines
 * wait in stderr's buffer for rf_log_flush while a warning writes at once
 * (with every line before it, in order); a message too long for a line is
 * cut, still ending in a newline. */
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rf_util.h"

/* What has reached the file so far. */
static char *contents(int fd) {
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = calloc(1, (size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    return buf;
}

static void test_buffered_lines(void **state) {
    (void)state;
    char path[] = "/tmp/rfarm-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(2);
    assert_int_equal(dup2(fd, 2), 2);
    rf_log_buffered();

    rf_info("test", "one n=%d", 1);
    char *got = contents(fd);
    assert_string_equal(got, ""); /* still in the buffer */
    free(got);

    rf_warn("test", "two");
    got = contents(fd);
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "info  test: one n=1\n"
                             "[0-9-]{10}T[0-9:.]{12}Z warn  test: two\n$",
                             REG_EXTENDED),
                     0);
    assert_int_equal(regexec(&re, got, 0, NULL, 0), 0);
    regfree(&re);
    size_t before = strlen(got);
    free(got);

    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rf_info("test", "%s", big);
    got = contents(fd);
    assert_int_equal(strlen(got), before);
    free(got);
    rf_log_flush();
    got = contents(fd);
    size_t len = strlen(got);
    assert_true(len > before + 2000 && len < before + 2400);
    assert_int_equal(got[len - 1], '\n');
    assert_int_equal(got[len - 2], 'x');
    free(got);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
}

static void touch(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static void test_rmtree(void **state) {
    (void)state;
    char top[] = "/tmp/rfarm-test-rmtree-XXXXXX", keep[] = "/tmp/rfarm-test-keep-XXXXXX";
    assert_non_null(mkdtemp(top));
    assert_non_null(mkdtemp(keep));
    touch(keep, "precious");
    char tree[600], sub[700], link[600], kept[600];
    snprintf(tree, sizeof tree, "%s/job-1", top);
    snprintf(sub, sizeof sub, "%s/deeper", tree);
    assert_int_equal(mkdir(tree, 0755), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof name, "seg-%06d.yuv", i);
        touch(tree, name);
        touch(sub, name);
    }
    snprintf(link, sizeof link, "%s/to-keep", tree);
    assert_int_equal(symlink(keep, link), 0);

    assert_int_equal(rf_rmtree(tree), 0);
    assert_int_equal(access(tree, F_OK), -1);
    snprintf(kept, sizeof kept, "%s/precious", keep);
    assert_int_equal(access(kept, F_OK), 0); /* the link went, not its target */
    assert_int_equal(rf_rmtree(tree), 0);    /* gone already: fine */

    assert_int_equal(rf_rmtree(keep), 0);
    assert_int_equal(rf_rmtree(top), 0);
    assert_int_equal(access(top, F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmtree),
        cmocka_unit_test(test_buffered_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
