/*
 * hr_park (per-key ordering under retry) against a real redis-server: the
 * workers' checks and settles, waves inside a batch, and the wake-up of
 * the guard's waiting item when a head is delivered.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "hr_park.h"
#include "hr_redis.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define D   "webhook:legacy"
#define Q_A "herald:guard:{sched}:park:14:webhook:legacy:ka"
#define Q_B "herald:guard:{sched}:park:14:webhook:legacy:kb"

static struct hx_redis *server;
static struct hr_redis *redis;
static redisContext *raw;

static int group_setup(void **state)
{
    char errstr[256];

    (void)state;
    /* a write to the stopped server must fail, not kill the test */
    signal(SIGPIPE, SIG_IGN);
    server = hx_redis_start(NULL);
    if (!server) {
        fprintf(stderr, "redis-server not found or did not start: skipped\n");
        exit(HX_SKIP);
    }
    redis =
        hr_redis_new(hx_redis_url(server), "herald:", errstr, sizeof(errstr));
    raw = hx_redis_connect(server);
    return redis && raw ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    hr_redis_free(redis);
    if (raw)
        redisFree(raw);
    hx_redis_free(server);
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    hx_redis_flushall(server);
    return 0;
}

/* The members of queue @key, space-separated, into @out. */
static void members(const char *key, char *out, size_t size)
{
    redisReply *r = redisCommand(raw, "ZRANGE %s 0 -1", key);
    size_t used = 0;

    assert_non_null(r);
    out[0] = '\0';
    for (size_t i = 0; i < r->elements; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? " " : "",
                                 r->element[i]->str);
    freeReplyObject(r);
}

static void expect_queue(const char *key, const char *want)
{
    char got[512];

    members(key, got, sizeof(got));
    assert_string_equal(got, want);
}

static size_t add(struct hr_park *park, const char *key, const char *eid)
{
    return hr_park_add(park, D, key, strlen(key), eid);
}

static void check(struct hr_park *park)
{
    char errstr[256] = "";

    if (hr_park_check(park, redis, errstr, sizeof(errstr)))
        fail_msg("check: %s", errstr);
}

static void settle(struct hr_park *park)
{
    char errstr[256] = "";

    if (hr_park_settle(park, redis, 1000, errstr, sizeof(errstr)))
        fail_msg("settle: %s", errstr);
}

static void test_park_keys_and_event_ids(void **state)
{
    char id[128];
    size_t len;
    char *q;

    (void)state;
    q = hr_park_queue_key("herald:", D, "ka", 2, &len);
    assert_string_equal(q, Q_A);
    assert_int_equal(len, strlen(Q_A));
    free(q);
    assert_true(hr_park_event_id_from(id, sizeof(id), "fanout",
                                      "herald.changes", 14, 3, 42) > 0);
    assert_string_equal(id, "fanout/herald.changes/3/42");
    assert_int_equal(
        hr_park_event_id_from(id, 8, "fanout", "herald.changes", 14, 3, 42),
        -1);
}

/* An empty queue lets the first call of a key go; when it fails, the later
 * ones of that key in the batch park behind it, in order; other keys go
 * on. */
static void test_park_failure_parks_the_rest_of_its_key(void **state)
{
    struct hr_park *park = hr_park_new();
    size_t a1, a2, b1, a3;

    (void)state;
    hr_park_reset(park);
    a1 = add(park, "ka", "w/t/0/1");
    b1 = add(park, "kb", "w/t/0/2");
    a2 = add(park, "ka", "w/t/0/3");
    a3 = add(park, "ka", "w/t/0/4");
    check(park);
    /* wave 1: the first of each key */
    assert_int_equal(hr_park_next(park, a1), HR_PARK_GO);
    assert_int_equal(hr_park_next(park, b1), HR_PARK_GO);
    assert_int_equal(hr_park_next(park, a2), HR_PARK_WAIT);
    hr_park_finish(park, a1, HR_PARK_RETRY);
    hr_park_finish(park, b1, HR_PARK_DONE);
    /* wave 2: ka's predecessor went to the guard */
    assert_int_equal(hr_park_next(park, a2), HR_PARK_PARK);
    assert_int_equal(hr_park_next(park, a3), HR_PARK_PARK);
    assert_int_equal(hr_park_next(park, a3), HR_PARK_PARK);
    settle(park);
    expect_queue(Q_A, "w/t/0/1 w/t/0/3 w/t/0/4");
    expect_queue(Q_B, "");
    /* settling again (a redone batch) changes nothing */
    settle(park);
    expect_queue(Q_A, "w/t/0/1 w/t/0/3 w/t/0/4");
    hr_park_free(park);
}

/* A later batch: new events of a parked key park; the guard's redelivery
 * of the head goes, and once it is delivered the next one (here in the
 * same batch) goes too. */
static void test_park_only_the_head_goes(void **state)
{
    struct hr_park *park = hr_park_new();
    size_t fresh, head, next, last;

    (void)state;
    hr_park_reset(park);
    add(park, "ka", "w/t/0/1");
    add(park, "ka", "w/t/0/3");
    check(park);
    assert_int_equal(hr_park_next(park, 0), HR_PARK_GO);
    hr_park_finish(park, 0, HR_PARK_RETRY);
    assert_int_equal(hr_park_next(park, 1), HR_PARK_PARK);
    settle(park);

    hr_park_reset(park);
    fresh = add(park, "ka", "w/t/0/9");
    check(park);
    assert_int_equal(hr_park_next(park, fresh), HR_PARK_PARK);
    settle(park);
    expect_queue(Q_A, "w/t/0/1 w/t/0/3 w/t/0/9");

    /* the head comes back (from the guard) with its follower behind it */
    hr_park_reset(park);
    head = add(park, "ka", "w/t/0/1");
    next = add(park, "ka", "w/t/0/3");
    last = add(park, "ka", "w/t/0/9");
    check(park);
    assert_int_equal(hr_park_next(park, head), HR_PARK_GO);
    assert_int_equal(hr_park_next(park, next), HR_PARK_WAIT);
    hr_park_finish(park, head, HR_PARK_DONE);
    assert_int_equal(hr_park_next(park, next), HR_PARK_GO);
    hr_park_finish(park, next, HR_PARK_DONE);
    assert_int_equal(hr_park_next(park, last), HR_PARK_GO);
    hr_park_finish(park, last, HR_PARK_DONE);
    settle(park);
    expect_queue(Q_A, "");
    hr_park_free(park);
}

/* A record whose event is in the queue but not at its head parks, even
 * when it is the one the guard would redeliver next. */
static void test_park_member_behind_the_head_parks(void **state)
{
    struct hr_park *park = hr_park_new();

    (void)state;
    freeReplyObject(redisCommand(raw, "ZADD %s 1 w/t/0/1 2 w/t/0/3", Q_A));
    hr_park_reset(park);
    add(park, "ka", "w/t/0/3");
    check(park);
    assert_int_equal(hr_park_next(park, 0), HR_PARK_PARK);
    settle(park);
    /* it keeps its place */
    expect_queue(Q_A, "w/t/0/1 w/t/0/3");
    hr_park_free(park);
}

/* When the head is delivered, the guard's waiting item of the next event
 * moves to the due set, at its due time or now. */
static void test_park_delivered_head_wakes_the_next_item(void **state)
{
    struct hr_park *park = hr_park_new();
    char rec[256];
    redisReply *r;

    (void)state;
    freeReplyObject(redisCommand(raw, "ZADD %s 1 w/t/0/1 2 w/t/0/3", Q_A));
    snprintf(rec, sizeof(rec), "500\n%zu:%s%zu:%s", strlen("w/t/0/3"),
             "w/t/0/3", strlen(Q_A), Q_A);
    freeReplyObject(
        redisCommand(raw, "ZADD herald:guard:{sched}:wait 500 item-3"));
    freeReplyObject(redisCommand(raw, "HSET herald:guard:{sched}:waitev %s %s",
                                 "w/t/0/3", "item-3"));
    freeReplyObject(
        redisCommand(raw, "HSET herald:guard:{sched}:qof item-3 %s", rec));
    hr_park_reset(park);
    add(park, "ka", "w/t/0/1");
    check(park);
    assert_int_equal(hr_park_next(park, 0), HR_PARK_GO);
    hr_park_finish(park, 0, HR_PARK_DONE);
    settle(park); /* at 1000 ms */
    expect_queue(Q_A, "w/t/0/3");
    r = redisCommand(raw, "ZSCORE herald:guard:{sched}:due item-3");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "1000");
    freeReplyObject(r);
    r = redisCommand(raw, "ZCARD herald:guard:{sched}:wait");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(raw, "HLEN herald:guard:{sched}:qof");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    hr_park_free(park);
}

/* A released entry (its event was dead-lettered, or its destination is no
 * longer called) leaves its queue and does not hold the key. */
static void test_park_release_frees_the_key(void **state)
{
    struct hr_park *park = hr_park_new();
    size_t e;

    (void)state;
    freeReplyObject(redisCommand(raw, "ZADD %s 1 w/t/0/1 2 w/t/0/3", Q_A));
    hr_park_reset(park);
    e = add(park, "ka", "w/t/0/1");
    hr_park_release(park, e);
    settle(park);
    expect_queue(Q_A, "w/t/0/3");
    /* a retried entry of a record dead-lettered after all leaves again */
    hr_park_reset(park);
    e = add(park, "kb", "w/t/0/7");
    check(park);
    assert_int_equal(hr_park_next(park, e), HR_PARK_GO);
    hr_park_finish(park, e, HR_PARK_RETRY);
    hr_park_release(park, e);
    settle(park);
    expect_queue(Q_B, "");
    hr_park_free(park);
}

/* Redis down: the check fails (no call may be made), and says why. */
static void test_park_check_fails_without_redis(void **state)
{
    struct hr_park *park = hr_park_new();
    char errstr[256] = "";

    (void)state;
    hr_park_reset(park);
    add(park, "ka", "w/t/0/1");
    assert_int_equal(hx_redis_stop_server(server), 0);
    assert_int_equal(hr_park_check(park, redis, errstr, sizeof(errstr)), -1);
    assert_true(errstr[0] != '\0');
    assert_int_equal(hx_redis_restart_server(server), 0);
    if (raw)
        redisFree(raw);
    raw = hx_redis_connect(server);
    check(park);
    assert_int_equal(hr_park_next(park, 0), HR_PARK_GO);
    hr_park_free(park);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_park_keys_and_event_ids, test_setup),
        cmocka_unit_test_setup(test_park_failure_parks_the_rest_of_its_key,
                               test_setup),
        cmocka_unit_test_setup(test_park_only_the_head_goes, test_setup),
        cmocka_unit_test_setup(test_park_member_behind_the_head_parks,
                               test_setup),
        cmocka_unit_test_setup(test_park_delivered_head_wakes_the_next_item,
                               test_setup),
        cmocka_unit_test_setup(test_park_release_frees_the_key, test_setup),
        cmocka_unit_test_setup(test_park_check_fails_without_redis, test_setup),
    };

    return cmocka_run_group_tests_name("hr_park against redis-server", tests,
                                       group_setup, group_teardown);
}
