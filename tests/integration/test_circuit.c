/*
 * hr_circuit against a real redis-server: the shared circuit breaker's
 * states and the retry budget, with two clients standing for two replicas.
 * Time is passed in, so every test runs in simulated seconds.
 */
#include <setjmp.h>
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
#include "hr_circuit.h"
#include "hr_conf.h"
#include "hr_redis.h"
#include "hr_retry.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* A whole second, so that bucket arithmetic is easy to follow. */
#define T0 INT64_C(1795305600000)

static struct hx_redis *server;
static struct hr_redis *replica[2];
static redisContext *raw;

static int group_setup(void **state)
{
    char errstr[256];

    (void)state;
    server = hx_redis_start(NULL);
    if (!server) {
        fprintf(stderr, "redis-server not found or did not start: skipped\n");
        exit(HX_SKIP);
    }
    for (int i = 0; i < 2; i++) {
        replica[i] = hr_redis_new(hx_redis_url(server), "herald:", errstr,
                                  sizeof(errstr));
        if (!replica[i]) {
            fprintf(stderr, "%s\n", errstr);
            return -1;
        }
    }
    raw = hx_redis_connect(server);
    return raw ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        hr_redis_free(replica[i]);
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

static struct hr_circuit *circuit_new(int probes, int64_t open_ms)
{
    struct hr_circuit_conf conf;
    struct hr_circuit *circuit;
    char errstr[256];

    hr_circuit_conf_init(&conf);
    conf.half_open_probes = probes;
    conf.open_ms = open_ms;
    assert_int_equal(hr_circuit_conf_validate(&conf, errstr, sizeof(errstr)),
                     0);
    circuit = hr_circuit_new(&conf);
    assert_non_null(circuit);
    return circuit;
}

/* Report @count outcomes of @result for @dest from replica @r; returns
 * the destination's state afterwards. */
static enum hr_circuit_state report_n(struct hr_circuit *circuit,
                                      int r,
                                      const char *dest,
                                      int result,
                                      int count,
                                      int64_t now_ms)
{
    struct hr_circuit_outcome *outs = calloc((size_t)count, sizeof(*outs));
    enum hr_circuit_state *states = calloc((size_t)count, sizeof(*states));
    enum hr_circuit_state st;
    char errstr[256] = "";

    assert_non_null(outs);
    assert_non_null(states);
    for (int i = 0; i < count; i++) {
        outs[i].destination = dest;
        outs[i].result = result;
    }
    if (hr_circuit_report(circuit, replica[r], outs, (size_t)count, now_ms,
                          states, errstr, sizeof(errstr)))
        fail_msg("report: %s", errstr);
    st = states[count - 1];
    free(outs);
    free(states);
    return st;
}

/* Check @count intended calls to @dest from replica @r; returns how many
 * are allowed and the state in *@st. */
static int check_n(struct hr_circuit *circuit,
                   int r,
                   const char *dest,
                   int count,
                   int64_t now_ms,
                   enum hr_circuit_state *st)
{
    const char *dests[16];
    enum hr_circuit_state states[16];
    bool allowed[16];
    char errstr[256] = "";
    int n = 0;

    assert_true(count > 0 && count <= 16);
    for (int i = 0; i < count; i++)
        dests[i] = dest;
    if (hr_circuit_check(circuit, replica[r], dests, (size_t)count, now_ms,
                         states, allowed, NULL, errstr, sizeof(errstr)))
        fail_msg("check: %s", errstr);
    for (int i = 0; i < count; i++) {
        /* The allowed calls come first. */
        if (i > 0 && allowed[i])
            assert_true(allowed[i - 1]);
        n += allowed[i];
        assert_int_equal(states[i], states[0]);
    }
    *st = states[0];
    return n;
}

static int budget(struct hr_circuit *circuit,
                  int r,
                  const char *dest,
                  int want,
                  int64_t now_ms)
{
    char errstr[256] = "";
    int granted = -1;

    if (hr_circuit_budget_take(circuit, replica[r], &dest, &want, 1, now_ms,
                               &granted, errstr, sizeof(errstr)))
        fail_msg("budget: %s", errstr);
    return granted;
}

/* Open @dest at @now_ms with 20 transient failures. */
static void trip(struct hr_circuit *circuit, const char *dest, int64_t now_ms)
{
    assert_int_equal(report_n(circuit, 0, dest, HR_ERR_TRANSIENT, 20, now_ms),
                     HR_CIRCUIT_OPEN);
}

static void test_circuit_is_closed_by_default(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 30000);
    enum hr_circuit_state st;
    redisReply *reply;

    (void)state;
    assert_int_equal(check_n(circuit, 0, "apns", 5, T0, &st), 5);
    assert_int_equal(st, HR_CIRCUIT_CLOSED);
    /* A read-only check of a closed destination writes nothing. */
    reply = redisCommand(raw, "EXISTS herald:circuit:{apns}");
    assert_int_equal(reply->integer, 0);
    freeReplyObject(reply);
    hr_circuit_free(circuit);
}

static void test_circuit_opens_at_ratio_after_min_calls(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 30000);
    enum hr_circuit_state st;

    (void)state;
    /* 10 successes and 9 failures over two seconds: 19 calls < 20. */
    report_n(circuit, 0, "fcm", HR_CIRCUIT_SUCCESS, 10, T0);
    assert_int_equal(
        report_n(circuit, 1, "fcm", HR_ERR_THROTTLED, 9, T0 + 1000),
        HR_CIRCUIT_CLOSED);
    assert_int_equal(check_n(circuit, 0, "fcm", 1, T0 + 1000, &st), 1);
    /* The 20th call makes 10 failures of 20: the ratio is reached. */
    assert_int_equal(
        report_n(circuit, 0, "fcm", HR_ERR_TRANSIENT, 1, T0 + 1500),
        HR_CIRCUIT_OPEN);
    assert_int_equal(check_n(circuit, 1, "fcm", 3, T0 + 1600, &st), 0);
    assert_int_equal(st, HR_CIRCUIT_OPEN);
    hr_circuit_free(circuit);
}

static void test_circuit_stays_closed_below_ratio_or_min_calls(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 30000);

    (void)state;
    assert_int_equal(report_n(circuit, 0, "a", HR_ERR_TRANSIENT, 19, T0),
                     HR_CIRCUIT_CLOSED);
    /* 9 failures of 20 calls: below 50%. */
    assert_int_equal(report_n(circuit, 0, "b", HR_CIRCUIT_SUCCESS, 11, T0),
                     HR_CIRCUIT_CLOSED);
    assert_int_equal(report_n(circuit, 0, "b", HR_ERR_TRANSIENT, 9, T0),
                     HR_CIRCUIT_CLOSED);
    /* Failures older than the 10 s window are forgotten. */
    assert_int_equal(
        report_n(circuit, 0, "a", HR_ERR_TRANSIENT, 10, T0 + 10000),
        HR_CIRCUIT_CLOSED);
    hr_circuit_free(circuit);
}

static void test_circuit_ignores_permanent_failures(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 30000);

    (void)state;
    assert_int_equal(report_n(circuit, 0, "hook", HR_ERR_PERMANENT, 40, T0),
                     HR_CIRCUIT_CLOSED);
    assert_int_equal(report_n(circuit, 0, "hook", HR_ERR_POISON, 40, T0),
                     HR_CIRCUIT_CLOSED);
    assert_int_equal(report_n(circuit, 0, "hook", HR_CIRCUIT_SUCCESS, 15, T0),
                     HR_CIRCUIT_CLOSED);
    /* 10 of 25 counted calls failed; with 4xx counted it would be 50/65. */
    assert_int_equal(report_n(circuit, 0, "hook", HR_ERR_TRANSIENT, 10, T0),
                     HR_CIRCUIT_CLOSED);
    hr_circuit_free(circuit);
}

static void test_circuit_half_open_admits_probes_across_replicas(void **state)
{
    struct hr_circuit *circuit = circuit_new(2, 1000);
    enum hr_circuit_state st;

    (void)state;
    trip(circuit, "d", T0);
    assert_int_equal(check_n(circuit, 1, "d", 4, T0 + 999, &st), 0);
    assert_int_equal(st, HR_CIRCUIT_OPEN);
    /* Exactly two probes in this period, whichever replica asks. */
    assert_int_equal(check_n(circuit, 0, "d", 1, T0 + 1000, &st), 1);
    assert_int_equal(st, HR_CIRCUIT_HALF_OPEN);
    assert_int_equal(check_n(circuit, 1, "d", 3, T0 + 1100, &st), 1);
    assert_int_equal(check_n(circuit, 0, "d", 3, T0 + 1200, &st), 0);
    assert_int_equal(check_n(circuit, 1, "d", 1, T0 + 1999, &st), 0);
    assert_int_equal(st, HR_CIRCUIT_HALF_OPEN);
    /* Probes that never reported: the next period admits two more. */
    assert_int_equal(check_n(circuit, 1, "d", 3, T0 + 2000, &st), 2);
    /* A probe succeeds: closed for everyone. */
    assert_int_equal(
        report_n(circuit, 1, "d", HR_CIRCUIT_SUCCESS, 1, T0 + 2100),
        HR_CIRCUIT_CLOSED);
    assert_int_equal(check_n(circuit, 0, "d", 5, T0 + 2100, &st), 5);
    assert_int_equal(st, HR_CIRCUIT_CLOSED);
    /* The failures from before do not reopen it. */
    assert_int_equal(report_n(circuit, 0, "d", HR_ERR_TRANSIENT, 1, T0 + 2200),
                     HR_CIRCUIT_CLOSED);
    hr_circuit_free(circuit);
}

static void test_circuit_probe_failure_reopens(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 1000);
    enum hr_circuit_state st;

    (void)state;
    trip(circuit, "d", T0);
    assert_int_equal(check_n(circuit, 0, "d", 1, T0 + 1000, &st), 1);
    assert_int_equal(report_n(circuit, 0, "d", HR_ERR_TRANSIENT, 1, T0 + 1300),
                     HR_CIRCUIT_OPEN);
    /* Open again for a full open_ms from the probe's failure. */
    assert_int_equal(check_n(circuit, 1, "d", 1, T0 + 2299, &st), 0);
    assert_int_equal(st, HR_CIRCUIT_OPEN);
    assert_int_equal(check_n(circuit, 1, "d", 1, T0 + 2300, &st), 1);
    assert_int_equal(st, HR_CIRCUIT_HALF_OPEN);
    assert_int_equal(
        report_n(circuit, 1, "d", HR_CIRCUIT_SUCCESS, 1, T0 + 2400),
        HR_CIRCUIT_CLOSED);
    hr_circuit_free(circuit);
}

static void test_circuit_auth_failures_break_until_probe_succeeds(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 1000);
    struct hr_circuit_outcome outs[4] = {
        {"smtp", HR_ERR_AUTH, 0},
        {"smtp", HR_ERR_AUTH, 0},
        {"smtp", HR_CIRCUIT_SUCCESS, 0},
        {"smtp", HR_ERR_AUTH, 0},
    };
    enum hr_circuit_state states[4];
    enum hr_circuit_state st;
    char errstr[256] = "";

    (void)state;
    /* Two in a row, then a success: the run starts again. */
    assert_int_equal(hr_circuit_report(circuit, replica[0], outs, 4, T0, states,
                                       errstr, sizeof(errstr)),
                     0);
    assert_int_equal(states[3], HR_CIRCUIT_CLOSED);
    /* Two more make three in a row. */
    assert_int_equal(report_n(circuit, 1, "smtp", HR_ERR_AUTH, 1, T0 + 10),
                     HR_CIRCUIT_CLOSED);
    assert_int_equal(report_n(circuit, 0, "smtp", HR_ERR_AUTH, 1, T0 + 20),
                     HR_CIRCUIT_AUTH_BROKEN);
    assert_int_equal(check_n(circuit, 1, "smtp", 2, T0 + 500, &st), 0);
    assert_int_equal(st, HR_CIRCUIT_AUTH_BROKEN);
    assert_int_equal(hr_circuit_state_gauge(st), 2);
    /* Probes that keep failing, on credentials or otherwise, keep it so. */
    assert_int_equal(check_n(circuit, 1, "smtp", 2, T0 + 1020, &st), 1);
    assert_int_equal(st, HR_CIRCUIT_HALF_OPEN);
    assert_int_equal(report_n(circuit, 1, "smtp", HR_ERR_AUTH, 1, T0 + 1100),
                     HR_CIRCUIT_AUTH_BROKEN);
    assert_int_equal(check_n(circuit, 0, "smtp", 1, T0 + 2099, &st), 0);
    assert_int_equal(check_n(circuit, 0, "smtp", 1, T0 + 2100, &st), 1);
    assert_int_equal(
        report_n(circuit, 0, "smtp", HR_ERR_TRANSIENT, 1, T0 + 2100),
        HR_CIRCUIT_AUTH_BROKEN);
    assert_int_equal(check_n(circuit, 0, "smtp", 1, T0 + 3100, &st), 1);
    assert_int_equal(
        report_n(circuit, 0, "smtp", HR_CIRCUIT_SUCCESS, 1, T0 + 3200),
        HR_CIRCUIT_CLOSED);
    assert_int_equal(check_n(circuit, 1, "smtp", 3, T0 + 3200, &st), 3);
    /* The run starts from zero again. */
    assert_int_equal(report_n(circuit, 0, "smtp", HR_ERR_AUTH, 2, T0 + 3300),
                     HR_CIRCUIT_CLOSED);
    hr_circuit_free(circuit);
}

static void test_circuit_batches_many_destinations(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 30000);
    struct hr_circuit_outcome outs[41];
    enum hr_circuit_state states[41];
    const char *dests[3] = {"x", "y", "x"};
    enum hr_circuit_state cstates[3];
    bool allowed[3];
    char errstr[256] = "";

    (void)state;
    /* x: 20 failures interleaved with y's 20 successes, one poison. */
    for (int i = 0; i < 40; i++) {
        outs[i].destination = i % 2 ? "y" : "x";
        outs[i].result = i % 2 ? HR_CIRCUIT_SUCCESS : HR_ERR_TRANSIENT;
    }
    outs[40].destination = "z";
    outs[40].result = HR_ERR_POISON;
    assert_int_equal(hr_circuit_report(circuit, replica[0], outs, 41, T0,
                                       states, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(states[0], HR_CIRCUIT_OPEN);
    assert_int_equal(states[1], HR_CIRCUIT_CLOSED);
    assert_int_equal(states[40], HR_CIRCUIT_CLOSED);
    assert_int_equal(hr_circuit_check(circuit, replica[1], dests, 3, T0 + 1,
                                      cstates, allowed, NULL, errstr,
                                      sizeof(errstr)),
                     0);
    assert_false(allowed[0]);
    assert_true(allowed[1]);
    assert_false(allowed[2]);
    assert_int_equal(cstates[2], HR_CIRCUIT_OPEN);
    /* Bad input is refused before Redis. */
    outs[0].result = 42;
    assert_int_equal(hr_circuit_report(circuit, replica[0], outs, 1, T0, NULL,
                                       errstr, sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "bad result"));
    hr_circuit_free(circuit);
}

static void test_circuit_budget_follows_success_rate(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 30000);

    (void)state;
    /* No traffic: the floor of 10 per second. */
    assert_int_equal(budget(circuit, 0, "b", 100, T0), 10);
    assert_int_equal(budget(circuit, 0, "b", 100, T0 + 999), 0);
    assert_int_equal(budget(circuit, 0, "b", 4, T0 + 1000), 4);
    /* 100 successes per second over the whole window. */
    for (int s = 0; s < 10; s++)
        report_n(circuit, 0, "b", HR_CIRCUIT_SUCCESS, 100, T0 + s * 1000);
    /* 0.2 x 100 + 10 = 30 in second 9, in pieces; then it is spent. */
    assert_int_equal(budget(circuit, 0, "b", 25, T0 + 9000), 25);
    assert_int_equal(budget(circuit, 0, "b", 25, T0 + 9100), 5);
    assert_int_equal(budget(circuit, 0, "b", 25, T0 + 9999), 0);
    /* The next second brings a new allowance. */
    report_n(circuit, 0, "b", HR_CIRCUIT_SUCCESS, 100, T0 + 10000);
    assert_int_equal(budget(circuit, 0, "b", 100, T0 + 10000), 30);
    /* Only successes raise it. */
    report_n(circuit, 0, "b", HR_ERR_TRANSIENT, 5, T0 + 11000);
    report_n(circuit, 0, "b", HR_ERR_PERMANENT, 500, T0 + 11000);
    assert_int_equal(budget(circuit, 0, "b", 100, T0 + 11000), 28);
    hr_circuit_free(circuit);
}

static void test_circuit_budget_is_shared_by_replicas(void **state)
{
    struct hr_circuit *a = circuit_new(1, 30000);
    struct hr_circuit *b = circuit_new(1, 30000);
    const char *dests[3] = {"s", "s", "t"};
    int want[3] = {8, 8, 3};
    int granted[3];
    char errstr[256] = "";

    (void)state;
    for (int s = 0; s < 10; s++)
        report_n(a, s % 2, "s", HR_CIRCUIT_SUCCESS, 50, T0 + s * 1000);
    /* 0.2 x 50 + 10 = 20 per second between both replicas. */
    assert_int_equal(budget(a, 0, "s", 15, T0 + 9000), 15);
    assert_int_equal(budget(b, 1, "s", 15, T0 + 9000), 5);
    assert_int_equal(budget(a, 0, "s", 15, T0 + 9500), 0);
    /* A batch: entries of one destination are served in order. */
    assert_int_equal(hr_circuit_budget_take(b, replica[1], dests, want, 3,
                                            T0 + 10000, granted, errstr,
                                            sizeof(errstr)),
                     0);
    /* Second 10: 9 seconds of 50 in the window -> 0.2 x 45 + 10 = 19. */
    assert_int_equal(granted[0], 8);
    assert_int_equal(granted[1], 8);
    assert_int_equal(granted[2], 3);
    assert_int_equal(budget(a, 0, "s", 15, T0 + 10500), 3);
    hr_circuit_free(a);
    hr_circuit_free(b);
}

static void test_circuit_keys_expire(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 30000);
    redisReply *reply;

    (void)state;
    trip(circuit, "ttl", T0);
    assert_int_equal(budget(circuit, 0, "ttl2", 1, T0), 1);
    reply = redisCommand(raw, "KEYS *");
    assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
    /* the two destinations and the index of those that reported */
    assert_int_equal(reply->elements, 3);
    freeReplyObject(reply);
    reply = redisCommand(raw, "PTTL herald:circuit:index");
    assert_true(reply->integer > 86000000 && reply->integer <= 86400000);
    freeReplyObject(reply);
    /* 2 x (10 s window + 30 s open). */
    reply = redisCommand(raw, "PTTL herald:circuit:{ttl}");
    assert_true(reply->integer > 70000 && reply->integer <= 80000);
    freeReplyObject(reply);
    reply = redisCommand(raw, "PTTL herald:circuit:{ttl2}");
    assert_true(reply->integer > 70000 && reply->integer <= 80000);
    freeReplyObject(reply);
    hr_circuit_free(circuit);
}

/* A failure that says how long to wait holds back every call to the
 * destination until then, on every replica, at most
 * HR_CIRCUIT_THROTTLE_MAX_MS; then it is closed again. */
static void test_circuit_retry_after_holds_the_destination(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 30000);
    struct hr_circuit_outcome out = {"rl", HR_ERR_THROTTLED, 5000};
    const char *dest = "rl";
    enum hr_circuit_state st = HR_CIRCUIT_CLOSED;
    bool allowed = true;
    int64_t wait = -1;
    char errstr[256] = "";

    (void)state;
    assert_int_equal(hr_circuit_report(circuit, replica[0], &out, 1, T0, &st,
                                       errstr, sizeof(errstr)),
                     0);
    assert_int_equal(st, HR_CIRCUIT_CLOSED);
    assert_int_equal(hr_circuit_check(circuit, replica[1], &dest, 1, T0 + 1000,
                                      &st, &allowed, &wait, errstr,
                                      sizeof(errstr)),
                     0);
    assert_false(allowed);
    assert_int_equal(st, HR_CIRCUIT_THROTTLED);
    assert_int_equal(wait, 4000);
    assert_int_equal(hr_circuit_state_gauge(st), 2);
    assert_int_equal(check_n(circuit, 0, "rl", 1, T0 + 4999, &st), 0);
    assert_int_equal(check_n(circuit, 0, "rl", 2, T0 + 5000, &st), 2);
    assert_int_equal(st, HR_CIRCUIT_CLOSED);
    /* an absurd Retry-After is capped */
    out.retry_after_ms = INT64_C(1000000000);
    assert_int_equal(hr_circuit_report(circuit, replica[0], &out, 1, T0 + 6000,
                                       NULL, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(check_n(circuit, 0, "rl", 1,
                             T0 + 6000 + HR_CIRCUIT_THROTTLE_MAX_MS - 1, &st),
                     0);
    assert_int_equal(check_n(circuit, 0, "rl", 1,
                             T0 + 6000 + HR_CIRCUIT_THROTTLE_MAX_MS, &st),
                     1);
    hr_circuit_free(circuit);
}

/* Peek lists every destination that reported, with its state and auth
 * failures, and writes nothing a check would see. */
static void test_circuit_peek_lists_states_and_auth_failures(void **state)
{
    struct hr_circuit *circuit = circuit_new(1, 30000);
    struct hr_circuit_view *views = NULL;
    enum hr_circuit_state st;
    char errstr[256] = "";
    size_t n = 0;

    (void)state;
    report_n(circuit, 0, "hook:a", HR_ERR_AUTH, 2, T0);
    report_n(circuit, 1, "hook:b", HR_CIRCUIT_SUCCESS, 4, T0);
    assert_int_equal(hr_circuit_peek(circuit, replica[1], T0 + 1, 16, &views,
                                     &n, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        bool a = !strcmp(views[i].destination, "hook:a");

        assert_true(a || !strcmp(views[i].destination, "hook:b"));
        assert_int_equal(views[i].state, HR_CIRCUIT_CLOSED);
        assert_int_equal(views[i].auth_failures, a ? 2 : 0);
    }
    free(views);
    /* the third in a row breaks it; the count goes on */
    assert_int_equal(report_n(circuit, 0, "hook:a", HR_ERR_AUTH, 1, T0 + 1000),
                     HR_CIRCUIT_AUTH_BROKEN);
    assert_int_equal(hr_circuit_peek(circuit, replica[0], T0 + 1000, 1, &views,
                                     &n, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(n, 1); /* at most what was asked for */
    free(views);
    assert_int_equal(hr_circuit_peek(circuit, replica[0], T0 + 1000, 16, &views,
                                     &n, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(views[i].destination, "hook:a"))
            continue;
        assert_int_equal(views[i].state, HR_CIRCUIT_AUTH_BROKEN);
        assert_int_equal(views[i].auth_failures, 3);
    }
    free(views);
    /* half-open after open_ms: peeking takes no probe */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hr_circuit_peek(circuit, replica[0], T0 + 31000, 16,
                                         &views, &n, errstr, sizeof(errstr)),
                         0);
        free(views);
    }
    assert_int_equal(check_n(circuit, 0, "hook:a", 2, T0 + 31000, &st), 1);
    /* a day without reports: no longer listed */
    assert_int_equal(hr_circuit_peek(circuit, replica[0],
                                     T0 + 1000 + HR_CIRCUIT_PEEK_KEEP_MS + 1,
                                     16, &views, &n, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(n, 0);
    free(views);
    hr_circuit_free(circuit);
}

static void test_circuit_reasons_that_spend_no_attempt(void **state)
{
    (void)state;
    assert_true(hr_circuit_reason_spent_no_attempt("circuit open", 12));
    assert_true(
        hr_circuit_reason_spent_no_attempt("destination throttled", 21));
    assert_true(hr_circuit_reason_spent_no_attempt("parked behind", 13));
    assert_false(hr_circuit_reason_spent_no_attempt("circuit open!", 13));
    assert_false(hr_circuit_reason_spent_no_attempt("HTTP 503", 8));
    assert_false(hr_circuit_reason_spent_no_attempt(NULL, 0));
}

static void test_circuit_conf_validates_and_loads(void **state)
{
    struct hr_circuit_conf conf;
    struct hr_conf *cfg = hr_conf_new();
    char errstr[256] = "";

    (void)state;
    hr_circuit_conf_init(&conf);
    conf.failure_ratio = 0;
    assert_int_equal(hr_circuit_conf_validate(&conf, errstr, sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "failure_ratio"));
    hr_conf_add_specs(cfg, hr_circuit_conf_specs());
    hr_conf_set_default(cfg, "HERALD_GUARD_CIRCUIT_MIN_CALLS", "7");
    hr_conf_set_default(cfg, "HERALD_GUARD_RETRY_BUDGET", "0.5");
    assert_int_equal(hr_conf_load(cfg, NULL), 0);
    hr_circuit_conf_load(&conf, cfg);
    assert_int_equal(conf.min_calls, 7);
    assert_true(conf.budget_ratio == 0.5);
    assert_int_equal(conf.open_ms, 30000);
    assert_true(conf.failure_ratio == 0.5);
    assert_int_equal(hr_circuit_conf_validate(&conf, errstr, sizeof(errstr)),
                     0);
    assert_string_equal(hr_circuit_state_name(HR_CIRCUIT_HALF_OPEN),
                        "half_open");
    hr_conf_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_circuit_is_closed_by_default, test_setup),
        cmocka_unit_test_setup(test_circuit_opens_at_ratio_after_min_calls,
                               test_setup),
        cmocka_unit_test_setup(
            test_circuit_stays_closed_below_ratio_or_min_calls, test_setup),
        cmocka_unit_test_setup(test_circuit_ignores_permanent_failures,
                               test_setup),
        cmocka_unit_test_setup(
            test_circuit_half_open_admits_probes_across_replicas, test_setup),
        cmocka_unit_test_setup(test_circuit_probe_failure_reopens, test_setup),
        cmocka_unit_test_setup(
            test_circuit_auth_failures_break_until_probe_succeeds, test_setup),
        cmocka_unit_test_setup(test_circuit_batches_many_destinations,
                               test_setup),
        cmocka_unit_test_setup(test_circuit_budget_follows_success_rate,
                               test_setup),
        cmocka_unit_test_setup(test_circuit_budget_is_shared_by_replicas,
                               test_setup),
        cmocka_unit_test_setup(test_circuit_keys_expire, test_setup),
        cmocka_unit_test_setup(test_circuit_retry_after_holds_the_destination,
                               test_setup),
        cmocka_unit_test_setup(test_circuit_peek_lists_states_and_auth_failures,
                               test_setup),
        cmocka_unit_test(test_circuit_reasons_that_spend_no_attempt),
        cmocka_unit_test(test_circuit_conf_validates_and_loads),
    };

    return cmocka_run_group_tests_name("circuit", tests, group_setup,
                                       group_teardown);
}
