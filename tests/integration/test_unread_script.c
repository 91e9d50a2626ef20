/*
 * herald-unread's batch script alone, without a broker: herald-chatgen
 * scriptrate sends a scenario through the worker's own grouping and one
 * script call per batch, then compares every user's counts and total in a
 * real redis-server with the model. The counts must be exact wherever the
 * batches are cut: one event per call, odd sizes that split a message's
 * duplicate from the original and a read from the messages it covers, and
 * big batches holding many of them, with saturation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static struct hx_redis *server;

static int group_setup(void **state)
{
    (void)state;
    server = hx_redis_start(NULL);
    if (!server) {
        fprintf(stderr, "redis-server not found or did not start: skipped\n");
        exit(HX_SKIP);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hx_redis_free(server);
    return 0;
}

/* Run scriptrate with @batch, @partitions, @chunk and @max on a scenario
 * with reads, duplicates and shuffling; its exit status is the verdict
 * (0: exact, 1: a mismatch, described on its stdout). */
static void apply_exact(const char *batch,
                        const char *partitions,
                        const char *chunk,
                        const char *max)
{
    const char *argv[] = {HX_BIN_DIR "/herald-chatgen",
                          "scriptrate",
                          "--redis",
                          hx_redis_url(server),
                          "--users",
                          "60",
                          "--convs",
                          "40",
                          "--members",
                          "4",
                          "--messages",
                          "4000",
                          "--reads",
                          "0.5",
                          "--dups",
                          "0.1",
                          "--window",
                          "300",
                          "--seed",
                          "11",
                          "--max",
                          max,
                          "--batch",
                          batch,
                          "--partitions",
                          partitions,
                          "--chunk",
                          chunk,
                          NULL};
    struct hx_proc *p;
    int status = -1;

    hx_redis_flushall(server);
    p = hx_proc_spawn(argv, NULL, NULL, NULL);
    assert_non_null(p);
    assert_int_equal(hx_proc_wait(p, 120000, &status), 0);
    hx_proc_free(p);
    assert_int_equal(status, 0);
}

static void test_one_event_per_call(void **state)
{
    (void)state;
    apply_exact("1", "1", "1", "999");
}

static void test_odd_cuts_across_partitions(void **state)
{
    (void)state;
    apply_exact("7", "3", "5", "999");
    apply_exact("61", "8", "13", "999");
}

static void test_big_batches_saturating(void **state)
{
    (void)state;
    apply_exact("1000", "4", "100", "20");
    apply_exact("5000", "1", "1000", "3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_event_per_call),
        cmocka_unit_test(test_odd_cuts_across_partitions),
        cmocka_unit_test(test_big_batches_saturating),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
