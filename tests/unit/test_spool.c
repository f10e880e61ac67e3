/* Spool layout and pack bookkeeping: small segments are placed one after
 * the other in the current pack, which is left for a new one when full; a
 * pack is to be deleted exactly when its last referenced segment's job is
 * over and it takes no more (whichever comes last); a new handle numbers
 * its packs above those on disk, and its sweep deletes the packs nothing
 * references; locations read back from Redis are parsed strictly. */
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
#include "spool.h"

static void test_paths(void **state) {
    (void)state;
    char buf[128];
    assert_int_equal(spool_seg_path("/s/j", 7, buf, sizeof buf), 0);
    assert_string_equal(buf, "/s/j/seg-000007.yuv");
    assert_int_equal(spool_pack_path("/s/.packs", 12, buf, sizeof buf), 0);
    assert_string_equal(buf, "/s/.packs/00000012");
    assert_int_equal(spool_loc_path("/s/j", "/s/.packs", 3, (spool_loc){.pack = 2, .off = 9}, buf,
                                    sizeof buf), 0);
    assert_string_equal(buf, "/s/.packs/00000002");
    assert_int_equal(spool_loc_path("/s/j", "/s/.packs", 3, (spool_loc){0}, buf, sizeof buf), 0);
    assert_string_equal(buf, "/s/j/seg-000003.yuv");
    assert_int_equal(spool_seg_path("/s/j", 7, buf, 8), -1);
}

static void test_loc_parse(void **state) {
    (void)state;
    spool_loc l = {0};
    assert_int_equal(spool_loc_parse("3:4096", &l), 0);
    assert_int_equal(l.pack, 3);
    assert_int_equal(l.off, 4096);
    assert_int_equal(spool_loc_parse("4294967295:0", &l), 0);
    assert_int_equal(l.pack, 4294967295u);
    const char *bad[] = {"",     "3",     "3:",     ":5",    "0:5",   "3:-1",         "3:5x",
                         "x:5",  " 3:5",  "+3:5",   "3: 5",  "3:+5",  "4294967296:0", "3:5:6"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        l = (spool_loc){.pack = 77, .off = 77};
        assert_int_equal(spool_loc_parse(bad[i], &l), -1);
        assert_int_equal(l.pack, 77); /* untouched */
    }
}

static void test_place_fills_then_rotates(void **state) {
    (void)state;
    char dir[] = "/tmp/rfarm-test-spool-XXXXXX", err[256];
    assert_non_null(mkdtemp(dir));
    spool_packs *sp;
    assert_int_equal(spool_packs_new(dir, &sp, err, sizeof err), 0);
    spool_loc l;
    assert_int_equal(spool_packs_place(sp, 384, &l), 0);
    assert_int_equal(l.pack, 1);
    assert_int_equal(l.off, 0);
    assert_int_equal(spool_packs_place(sp, 1000, &l), 0);
    assert_int_equal(l.pack, 1);
    assert_int_equal(l.off, 384);
    /* What does not fit goes to the next pack, from its start. */
    const size_t big = SPOOL_PACK_SEGMENT_MAX;
    uint64_t used = 1384;
    uint32_t in_one = 2;
    while (used + big <= SPOOL_PACK_BYTES) {
        assert_int_equal(spool_packs_place(sp, big, &l), 0);
        assert_int_equal(l.pack, 1);
        assert_int_equal(l.off, (int64_t)used);
        used += big;
        in_one++;
    }
    assert_int_equal(spool_packs_place(sp, big, &l), 0); /* pack 1 still referenced */
    assert_int_equal(l.pack, 2);
    assert_int_equal(l.off, 0);
    /* Pack 1's segments' jobs end: the last unref says delete it. */
    for (uint32_t i = 0; i + 1 < in_one; i++)
        assert_int_equal(spool_packs_unref(sp, 1), 0);
    assert_int_equal(spool_packs_unref(sp, 1), 1);
    assert_int_equal(spool_packs_unref(sp, 1), 0); /* gone: no second delete */
    /* Pack 2, current, loses its only reference: kept, it takes more. */
    assert_int_equal(spool_packs_unref(sp, 2), 0);
    /* When it is left full with nothing in it wanted, place says delete. */
    int64_t retired = 0;
    for (int i = 0; i < 64 && !retired; i++) {
        retired = spool_packs_place(sp, big, &l);
        if (!retired)
            assert_int_equal(spool_packs_unref(sp, l.pack), 0);
    }
    assert_int_equal(retired, 2);
    assert_int_equal(l.pack, 3);
    spool_packs_free(sp);
    rf_rmtree(dir);
}

static void touch(const char *dir, uint32_t pack) {
    char path[256];
    assert_int_equal(spool_pack_path(dir, pack, path, sizeof path), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static int exists(const char *dir, uint32_t pack) {
    char path[256];
    assert_int_equal(spool_pack_path(dir, pack, path, sizeof path), 0);
    return access(path, F_OK) == 0;
}

/* A restart: the packs on disk are recovery's; new segments go above them,
 * and the sweep deletes what recovery did not reference. */
static void test_restart_numbers_and_sweep(void **state) {
    (void)state;
    char dir[] = "/tmp/rfarm-test-spool-XXXXXX", err[256], packs[128];
    assert_non_null(mkdtemp(dir));
    snprintf(packs, sizeof packs, "%s/" SPOOL_PACKS_DIR, dir);
    assert_int_equal(rf_mkdirs(packs, 0755), 0);
    touch(packs, 3);
    touch(packs, 41);
    touch(packs, 7);
    char other[256];
    snprintf(other, sizeof other, "%s/notes.txt", packs); /* not a pack: left alone */
    FILE *f = fopen(other, "w");
    assert_non_null(f);
    fclose(f);
    char odd[256]; /* 7 written another way: not a name of ours, left alone */
    snprintf(odd, sizeof odd, "%s/000000007", packs);
    assert_non_null(f = fopen(odd, "w"));
    fclose(f);
    spool_packs *sp;
    assert_int_equal(spool_packs_new(dir, &sp, err, sizeof err), 0);
    assert_string_equal(spool_packs_dir(sp), packs);
    assert_int_equal(spool_packs_ref(sp, 7), 0);
    assert_int_equal(spool_packs_ref(sp, 7), 0);
    spool_loc l;
    assert_int_equal(spool_packs_place(sp, 10, &l), 0);
    assert_int_equal(l.pack, 42);
    assert_int_equal(spool_packs_sweep(sp), 2);
    assert_false(exists(packs, 3));
    assert_false(exists(packs, 41));
    assert_true(exists(packs, 7));
    assert_int_equal(access(other, F_OK), 0);
    assert_int_equal(access(odd, F_OK), 0);
    assert_int_equal(spool_packs_unref(sp, 7), 0);
    assert_int_equal(spool_packs_unref(sp, 7), 1); /* not current: delete */
    spool_packs_free(sp);
    rf_rmtree(dir);
}

static void test_unlistable_packs_dir_says_why(void **state) {
    (void)state;
    char dir[] = "/tmp/rfarm-test-spool-XXXXXX", err[256] = "", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/" SPOOL_PACKS_DIR, dir);
    FILE *f = fopen(path, "w"); /* a file where the directory should be */
    assert_non_null(f);
    fclose(f);
    spool_packs *sp = (spool_packs *)1;
    assert_int_equal(spool_packs_new(dir, &sp, err, sizeof err), -1);
    assert_null(sp);
    assert_non_null(strstr(err, path));
    rf_rmtree(dir);
}

/* A root whose packs' paths would not fit is refused up front, and a pack
 * numbered UINT32_MAX on disk leaves no number for new ones: placing fails
 * instead of reusing a number. */
static void test_limits(void **state) {
    (void)state;
    char err[256] = "", root[1100];
    memset(root, 'a', sizeof root - 1);
    root[0] = '/';
    root[sizeof root - 1] = '\0';
    spool_packs *sp;
    assert_int_equal(spool_packs_new(root, &sp, err, sizeof err), -1);
    assert_non_null(strstr(err, "too long"));

    char dir[] = "/tmp/rfarm-test-spool-XXXXXX", packs[128];
    assert_non_null(mkdtemp(dir));
    snprintf(packs, sizeof packs, "%s/" SPOOL_PACKS_DIR, dir);
    assert_int_equal(rf_mkdirs(packs, 0755), 0);
    touch(packs, UINT32_MAX);
    assert_int_equal(spool_packs_new(dir, &sp, err, sizeof err), 0);
    spool_loc l;
    assert_int_equal(spool_packs_place(sp, 10, &l), -1);
    spool_packs_free(sp);
    rf_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_loc_parse),
        cmocka_unit_test(test_place_fills_then_rotates),
        cmocka_unit_test(test_restart_numbers_and_sweep),
        cmocka_unit_test(test_unlistable_packs_dir_says_why),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
