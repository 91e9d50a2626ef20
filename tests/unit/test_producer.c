/*
 * Unit tests for hr_producer's epochs, with no broker to deliver to: what
 * is produced stays in flight, so an epoch's life is in the test's hands.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hr_conf.h"
#include "hr_producer.h"
#include "hr_worker_conf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static int setup(void **state)
{
    struct hr_conf *cfg = hr_conf_new();
    char errstr[256];

    hr_conf_add_specs(cfg, hr_worker_common_conf);
    /* a port nothing listens on: records stay queued */
    hr_conf_set_default(cfg, "HERALD_KAFKA_BROKERS", "127.0.0.1:9");
    hr_conf_set_default(cfg, "HERALD_KAFKA_PROPERTIES", "log_level=0");
    assert_int_equal(hr_conf_load(cfg, NULL), 0);
    state[0] = hr_producer_new(cfg, errstr, sizeof(errstr));
    hr_conf_free(cfg);
    return state[0] ? 0 : -1;
}

static int teardown(void **state)
{
    (void)hr_producer_free(state[0], 0);
    return 0;
}

static int produce(struct hr_producer *p)
{
    char errstr[256];

    return hr_producer_send(p, "herald.test", "k", 1, "v", 1, NULL, errstr,
                            sizeof(errstr));
}

/* A timer's epoch stays in flight while many batch epochs come and go
 * (the guard's slice waits for the broker while batches are settled). */
static void test_epoch_outlives_many_later_ones(void **state)
{
    struct hr_producer *p = state[0];
    char errstr[256];
    uint64_t slow;

    assert_int_equal(produce(p), 0);
    slow = hr_producer_seal(p);
    for (int i = 0; i < 100; i++) {
        uint64_t e = hr_producer_seal(p);

        assert_true(e > slow);
        /* nothing in it: settled at once */
        assert_int_equal(hr_producer_settle(p, e, 0, errstr, sizeof(errstr)),
                         0);
    }
    assert_int_equal(hr_producer_settle(p, slow, 0, errstr, sizeof(errstr)),
                     -1);
    hr_producer_forget(p, slow);
}

/* Each in-flight epoch keeps its own count; a settle that times out says
 * how many were not acknowledged. */
static void test_epochs_count_their_own_records(void **state)
{
    struct hr_producer *p = state[0];
    char errstr[256] = "";
    uint64_t a, b, c;

    assert_int_equal(produce(p), 0);
    a = hr_producer_seal(p);
    assert_int_equal(produce(p), 0);
    assert_int_equal(produce(p), 0);
    b = hr_producer_seal(p);
    c = hr_producer_seal(p);
    assert_int_equal(hr_producer_settle(p, c, 0, errstr, sizeof(errstr)), 0);
    assert_int_equal(hr_producer_settle(p, b, 0, errstr, sizeof(errstr)), -1);
    assert_int_equal(hr_producer_settle(p, b, 50, errstr, sizeof(errstr)), -1);
    hr_producer_forget(p, b);
    /* the barrier waits for @a too, and reports only its own epoch */
    assert_int_equal(hr_producer_barrier(p, 50, errstr, sizeof(errstr)), 0);
    assert_int_equal(hr_producer_settle(p, a, 0, errstr, sizeof(errstr)), -1);
    hr_producer_forget(p, a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_epoch_outlives_many_later_ones,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_epochs_count_their_own_records,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
