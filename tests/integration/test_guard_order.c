/*
 * Per-key ordering under retry and crash safety of the guard, end to end
 * (issue 4, tests 4 and 5): herald-fanout and herald-guard on a real
 * redis-server (append-only file, fsync always) and herald-devbroker,
 * calling the fake HTTP server.
 *
 *   4. Failures injected on some events: the server receives each key's
 *      events in their original order, and the other keys flow on while a
 *      key waits.
 *   5. kill -9 of the guard and a Redis restart while retries are
 *      scheduled and parked: nothing is lost, order is kept.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "guard_fixture.h"
#include "harness.h"
#include "hx_fake_http.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* One input partition: "the rest of the partition flows on" means it. */
#define TOPICS                                                    \
    "order:1,order.retry:4,order.redeliver.fanout:4,order.dlq:1," \
    "crash:2,crash.retry:4,crash.redeliver.fanout:4,crash.dlq:1"

#define KEYS_MAX 64

static struct gf_env *env;

/*
 * Walk the server's requests in arrival order: every call for an event of
 * key k is for the earliest event of k not yet delivered (a later event
 * is never called before an earlier one got its 2xx). Events of @nkeys
 * keys, event i has key i % nkeys. With @dupes not NULL, a call for an
 * event already delivered is a duplicate (at least once), counted there;
 * else it fails the test. Returns the number of events delivered.
 */
static int check_order(const json_t *reqs, int nkeys, int nevents, int *dupes)
{
    int next[KEYS_MAX];
    size_t i;
    const json_t *req;
    int ok = 0;

    assert_true(nkeys <= KEYS_MAX);
    for (int k = 0; k < nkeys; k++)
        next[k] = k;
    json_array_foreach(reqs, i, req)
    {
        int n = (int)json_integer_value(json_object_get(req, "n"));
        json_int_t status = json_integer_value(json_object_get(req, "status"));
        int k = n % nkeys;

        assert_true(n >= 0 && n < nevents);
        if (dupes && n < next[k]) {
            (*dupes)++;
            continue;
        }
        if (n != next[k])
            fprintf(stderr,
                    "request %zu: event %d of k%d called while event "
                    "%d waits\n",
                    i, n, k, next[k]);
        assert_int_equal(n, next[k]);
        if (status >= 200 && status < 300) {
            next[k] += nkeys;
            ok++;
        }
    }
    for (int k = 0; k < nkeys; k++)
        assert_true(next[k] >= nevents);
    return ok;
}

/* Requests answered 2xx, for keys other than @key, between the first call
 * of event @n and its 2xx. */
static int flowed_meanwhile(const json_t *reqs, int nkeys, int n)
{
    int64_t failed_at = -1, ok_at = -1;
    size_t i;
    const json_t *req;
    int between = 0;

    json_array_foreach(reqs, i, req)
    {
        int m = (int)json_integer_value(json_object_get(req, "n"));
        json_int_t status = json_integer_value(json_object_get(req, "status"));
        int64_t seq = json_integer_value(json_object_get(req, "seq"));

        if (m == n && failed_at < 0)
            failed_at = seq;
        if (m == n && status >= 200 && status < 300)
            ok_at = seq;
    }
    json_array_foreach(reqs, i, req)
    {
        int m = (int)json_integer_value(json_object_get(req, "n"));
        json_int_t status = json_integer_value(json_object_get(req, "status"));
        int64_t seq = json_integer_value(json_object_get(req, "seq"));

        if (m % nkeys != n % nkeys && status >= 200 && status < 300 &&
            seq > failed_at && seq < ok_at)
            between++;
    }
    return between;
}

/* ---- 4. ordering --------------------------------------------------------- */

static void test_each_key_is_delivered_in_order_despite_failures(void **state)
{
    /* event 3 (key k3) fails twice, event 17 (k7) three times, event 105
     * (k5) once with 429; everything else answers 200 at once */
    static const char route[] =
        "{\"path\":\"/order\",\"status\":200,\"by_body\":["
        "{\"contains\":\"\\\"id\\\":\\\"order-3\\\"\",\"statuses\":[503,503,"
        "200]},"
        "{\"contains\":\"\\\"id\\\":\\\"order-17\\\"\",\"statuses\":[503,503,"
        "503,200]},"
        "{\"contains\":\"\\\"id\\\":\\\"order-105\\\"\",\"statuses\":[429,"
        "200]}]}";
    static const char *const guard_env[] = {"HERALD_GUARD_BASE_DELAY_MS=300",
                                            "HERALD_GUARD_MAX_DELAY_MS=1500",
                                            NULL};
    struct gf_proc *fanout, *guard;
    json_t *reqs;
    int ok;

    (void)state;
    assert_int_equal(hx_fake_http_route(env->http, route), 0);
    fanout = gf_fanout_start(env, "order", NULL);
    guard = gf_guard_start(env, "order", guard_env);
    assert_non_null(fanout);
    assert_non_null(guard);
    /* 10 keys, 20 events each, interleaved in one partition */
    assert_int_equal(gf_produce(env, "order", 0, 200, 10), 0);
    assert_int_equal(gf_wait_delivered(env, "order", 200, 120000), 0);
    reqs = gf_requests(env, "order");
    ok = check_order(reqs, 10, 200, NULL);
    assert_int_equal(ok, 200);
    /* 200 deliveries and the 6 injected failures, nothing else */
    assert_int_equal(json_array_size(reqs), 206);
    /* the other keys were not held up by k3 and k7 */
    assert_true(flowed_meanwhile(reqs, 10, 3) >= 10);
    assert_true(flowed_meanwhile(reqs, 10, 17) >= 10);
    json_decref(reqs);
    /* followers of a failed event waited in the guard, parked */
    assert_true(gf_metric(guard, "herald_guard_redelivered_total{") > 3);
    assert_int_equal(gf_topic_count(env, "order.dlq"), 0);
    assert_int_equal(gf_proc_stop(fanout), 0);
    assert_int_equal(gf_proc_stop(guard), 0);
    gf_proc_free(fanout);
    gf_proc_free(guard);
}

/* ---- 5. crash safety ----------------------------------------------------- */

static void test_kill_9_and_redis_restart_lose_nothing(void **state)
{
    static const char *const fanout_env[] = {
        "HERALD_GUARD_CIRCUIT_OPEN_MS=1000", NULL};
    static const char *const guard_env[] = {
        "HERALD_GUARD_CIRCUIT_OPEN_MS=1000", "HERALD_GUARD_BASE_DELAY_MS=300",
        "HERALD_GUARD_MAX_DELAY_MS=1500", "HERALD_GUARD_MAX_ATTEMPTS=100",
        NULL};
    struct gf_proc *fanout, *guard;
    json_t *reqs, *summary;
    int dupes = 0;

    (void)state;
    assert_int_equal(hx_fake_http_route(env->http, "{\"path\":\"/crash\","
                                                   "\"status\":503}"),
                     0);
    fanout = gf_fanout_start(env, "crash", fanout_env);
    guard = gf_guard_start(env, "crash", guard_env);
    assert_non_null(fanout);
    assert_non_null(guard);
    /* 20 keys, 10 events each: the first of each key retried, the others
     * parked behind it */
    assert_int_equal(gf_produce(env, "crash", 0, 200, 20), 0);
    assert_int_equal(gf_wait_metric(fanout,
                                    "herald_events_processed_total{worker="
                                    "\"fanout\",outcome=\"retried\"}",
                                    200, 60000),
                     0);
    assert_int_equal(gf_wait_metric(guard, "herald_guard_parked{", 100, 60000),
                     0);
    gf_proc_kill(guard);
    gf_proc_free(guard);
    assert_int_equal(hx_redis_stop_server(env->redis), 0);
    assert_int_equal(hx_redis_restart_server(env->redis), 0);
    assert_int_equal(hx_fake_http_route(env->http, "{\"path\":\"/crash\","
                                                   "\"status\":200}"),
                     0);
    guard = gf_guard_start(env, "crash", guard_env);
    assert_non_null(guard);
    assert_int_equal(gf_wait_delivered(env, "crash", 200, 180000), 0);
    reqs = gf_requests(env, "crash");
    assert_int_equal(check_order(reqs, 20, 200, &dupes), 200);
    json_decref(reqs);
    summary = gf_summary(env, "crash");
    /* at least once: a duplicate comes from an item whose redelivery was
     * in flight at the kill (its lease ends, it goes again), after its
     * event was delivered; the webhook's Idempotency-Key absorbs it */
    fprintf(stderr, "crash: %d duplicate calls, %lld repeated 2xx\n", dupes,
            (long long)gf_summary_int(summary, "ok_repeats"));
    assert_int_equal(gf_summary_int(summary, "ok_keys"), 200);
    json_decref(summary);
    assert_int_equal(gf_topic_count(env, "crash.dlq"), 0);
    assert_int_equal(gf_proc_stop(fanout), 0);
    assert_int_equal(gf_proc_stop(guard), 0);
    gf_proc_free(fanout);
    gf_proc_free(guard);
}

static int group_setup(void **state)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync",
                                      "always", NULL};

    env = gf_env_start(aof, TOPICS);
    *state = env;
    return env ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_each_key_is_delivered_in_order_despite_failures, gf_test_setup,
            gf_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_kill_9_and_redis_restart_lose_nothing, gf_test_setup,
            gf_test_teardown),
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("herald-guard: order and crashes", tests,
                                       group_setup, gf_group_teardown);
}
