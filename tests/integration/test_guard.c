/*
 * herald-guard end to end: the binary against a real redis-server and
 * herald-devbroker. Retry records are produced to a retry topic with the
 * SPEC section 7 headers (as hr_worker_failures.c writes them) and must come
 * back on the redelivery topic, or on the dead-letter topic with a reason.
 * Timing is asserted only as lower bounds and per-second counts.
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
#include <hiredis/hiredis.h>

#include "harness.h"
#include "hr_circuit.h"
#include "hr_compat.h"
#include "hr_time.h"

#define TOPICS                                                            \
    "gd-basic.retry:4,gd-basic.redeliver.push:4,gd-basic.dlq:1,"          \
    "gd-after.retry:4,gd-after.redeliver.push:4,gd-after.dlq:1,"          \
    "gd-attempts.retry:4,gd-attempts.redeliver.push:4,gd-attempts.dlq:1," \
    "gd-age.retry:4,gd-age.redeliver.push:4,gd-age.dlq:1,"                \
    "gd-crash.retry:4,gd-crash.redeliver.push:4,gd-crash.dlq:1,"          \
    "gd-term.retry:4,gd-term.redeliver.push:4,gd-term.dlq:1,"             \
    "gd-full.retry:4,gd-full.redeliver.push:4,gd-full.dlq:1,"             \
    "gd-big.retry:4,gd-big.redeliver.push:4,gd-big.dlq:1,"                \
    "gd-budget.retry:4,gd-budget.redeliver.email:4,gd-budget.dlq:1,"      \
    "gd-redrive.dlq:2,gd-redrive.redeliver.push:2,"                       \
    "gd-redrive.redeliver.email:2,gd-redrive.other:1"

#define MAX_MSGS 256

static struct hx_redis *redis;
static struct hx_broker *broker;
static char *logdir;

struct guard_proc {
    struct hx_proc *proc;
    int port;
    char log[512];
};

/* Guards still running, killed by the teardown of a failed test so that
 * they cannot touch the next test's schedule. */
static struct guard_proc *running[4];

/* Start herald-guard on "<name>.retry", redelivering to
 * "<name>.redeliver.<worker>" and dead-lettering to "<name>.dlq". */
static struct guard_proc *guard_start(const char *name,
                                      const char *const *extra)
{
    static int seq;
    struct guard_proc *g = calloc(1, sizeof(*g));
    const char *argv[] = {hx_bin("herald-guard"), NULL};
    char vars[9][600];
    const char *envp[32];
    int n = 0;

    g->port = hx_free_port();
    snprintf(vars[0], sizeof(vars[0]), "HERALD_KAFKA_BROKERS=%s",
             hx_broker_bootstraps(broker));
    snprintf(vars[1], sizeof(vars[1]), "HERALD_KAFKA_TOPICS=%s.retry", name);
    snprintf(vars[2], sizeof(vars[2]), "HERALD_KAFKA_GROUP=g-%s", name);
    snprintf(vars[3], sizeof(vars[3]), "HERALD_REDIS_URL=%s",
             hx_redis_url(redis));
    snprintf(vars[4], sizeof(vars[4]), "HERALD_METRICS_ADDR=127.0.0.1:%d",
             g->port);
    snprintf(vars[5], sizeof(vars[5]),
             "HERALD_GUARD_REDELIVER_PREFIX=%s.redeliver.", name);
    snprintf(vars[6], sizeof(vars[6]), "HERALD_DLQ_TOPIC=%s.dlq", name);
    /* The guard never writes retry records; a wrong one must not loop. */
    snprintf(vars[7], sizeof(vars[7]), "HERALD_RETRY_TOPIC=%s.dlq", name);
    for (int i = 0; i < 8; i++)
        envp[n++] = vars[i];
    envp[n++] = "HERALD_GUARD_BASE_DELAY_MS=50";
    envp[n++] = "HERALD_GUARD_MAX_DELAY_MS=400";
    envp[n++] = "HERALD_SHUTDOWN_TIMEOUT_MS=10000";
    envp[n++] = "HERALD_KAFKA_PROPERTIES=session.timeout.ms=6000;"
                "heartbeat.interval.ms=500";
    for (int i = 0; extra && extra[i] && n < 30; i++)
        envp[n++] = extra[i];
    envp[n] = NULL;
    snprintf(g->log, sizeof(g->log), "%s/%s-%d.log", logdir, name, ++seq);
    g->proc = hx_proc_spawn(argv, envp, NULL, g->log);
    if (!g->proc) {
        free(g);
        return NULL;
    }
    for (size_t i = 0; i < HR_ARRAY_SIZE(running); i++) {
        if (!running[i]) {
            running[i] = g;
            break;
        }
    }
    return g;
}

static void guard_free(struct guard_proc *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < HR_ARRAY_SIZE(running); i++) {
        if (running[i] == g)
            running[i] = NULL;
    }
    hx_proc_free(g->proc);
    free(g);
}

static int test_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(running); i++)
        guard_free(running[i]);
    return 0;
}

static bool is_ready(void *p)
{
    const struct guard_proc *g = p;
    char url[64], *body = NULL;
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", g->port);
    if (hx_http_get(url, &status, &body))
        status = 0;
    free(body);
    return status == 200;
}

static int guard_stop(struct guard_proc *g)
{
    int status = -1;

    hx_proc_signal(g->proc, SIGTERM);
    if (hx_proc_wait(g->proc, 15000, &status))
        return -1;
    return status;
}

/* Sum of the /metrics series starting with @prefix; -1 if unreachable. */
static double metric(const struct guard_proc *g, const char *prefix)
{
    return hx_metric(g->port, prefix);
}

struct metric_arg {
    const struct guard_proc *g;
    const char *prefix;
    double want;
};

static bool metric_is(void *p)
{
    struct metric_arg *a = p;

    return metric(a->g, a->prefix) == a->want;
}

/* Wait until the series starting with @prefix sum to @want. */
static int wait_metric(const struct guard_proc *g,
                       const char *prefix,
                       double want,
                       int timeout_ms)
{
    struct metric_arg a = {g, prefix, want};

    return hx_wait_until(metric_is, &a, timeout_ms);
}

/* One retry record as hr_worker_failures.c writes it. */
struct retry_rec {
    const char *key;
    const char *value;
    const char *worker;
    const char *destination;
    int64_t offset; /* herald-origin-offset */
    int attempt;
    int64_t first_failure_ms;
    int64_t retry_after_ms; /* < 0: no header */
    const char *trace;      /* an unrelated header that must survive;
                               "open-..." also marks a hand-off because a
                               circuit was open (herald-error) */
};

static void
produce_retry(const char *topic, const struct retry_rec *recs, size_t n)
{
    rd_kafka_t *rk = hx_producer_new(hx_broker_bootstraps(broker));

    assert_non_null(rk);
    for (size_t i = 0; i < n; i++) {
        const struct retry_rec *r = &recs[i];
        char off[24], att[24], first[24], after[24];
        const char *h[32];
        int k = 0;

        snprintf(off, sizeof(off), "%" PRId64, r->offset);
        snprintf(att, sizeof(att), "%d", r->attempt);
        snprintf(first, sizeof(first), "%" PRId64, r->first_failure_ms);
        snprintf(after, sizeof(after), "%" PRId64, r->retry_after_ms);
        h[k++] = "x-trace";
        h[k++] = r->trace;
        h[k++] = "herald-origin-topic";
        h[k++] = "herald.push";
        h[k++] = "herald-origin-partition";
        h[k++] = "3";
        h[k++] = "herald-origin-offset";
        h[k++] = off;
        h[k++] = "herald-worker";
        h[k++] = r->worker;
        h[k++] = "herald-destination";
        h[k++] = r->destination;
        h[k++] = "herald-attempt";
        h[k++] = att;
        h[k++] = "herald-first-failure-ms";
        h[k++] = first;
        h[k++] = "herald-error-class";
        h[k++] = "transient";
        h[k++] = "herald-error";
        h[k++] = !strncmp(r->trace, "open-", 5) ? HR_CIRCUIT_OPEN_REASON
                                                : "http 503";
        if (r->retry_after_ms >= 0) {
            h[k++] = "herald-retry-after-ms";
            h[k++] = after;
        }
        h[k] = NULL;
        assert_int_equal(hx_produce(rk, topic, r->key, strlen(r->key), r->value,
                                    strlen(r->value), h),
                         0);
    }
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);
}

/* A consumed record, reduced to what the tests check. */
struct out_msg {
    char key[64];
    char value[128];
    char trace[64];
    char reason[32];
    char error_class[32];
    int attempt;
    int64_t ts_ms;
};

struct out_list {
    struct out_msg m[MAX_MSGS];
    size_t n;
};

static void header_copy(const rd_kafka_message_t *rkm,
                        const char *name,
                        char *buf,
                        size_t size)
{
    rd_kafka_headers_t *hdrs;
    const void *val;
    size_t len;

    buf[0] = '\0';
    if (rd_kafka_message_headers(rkm, &hdrs) ||
        rd_kafka_header_get_last(hdrs, name, &val, &len) || !val || len >= size)
        return;
    memcpy(buf, val, len);
    buf[len] = '\0';
}

static int collect(void *opaque, const rd_kafka_message_t *rkm)
{
    struct out_list *l = opaque;
    struct out_msg *m;
    char att[24];

    if (l->n >= MAX_MSGS)
        return 1;
    m = &l->m[l->n++];
    snprintf(m->key, sizeof(m->key), "%.*s", (int)rkm->key_len,
             (const char *)rkm->key);
    snprintf(m->value, sizeof(m->value), "%.*s", (int)rkm->len,
             (const char *)rkm->payload);
    header_copy(rkm, "x-trace", m->trace, sizeof(m->trace));
    header_copy(rkm, "herald-guard-reason", m->reason, sizeof(m->reason));
    header_copy(rkm, "herald-error-class", m->error_class,
                sizeof(m->error_class));
    header_copy(rkm, "herald-attempt", att, sizeof(att));
    m->attempt = (int)strtol(att, NULL, 10);
    m->ts_ms = rd_kafka_message_timestamp(rkm, NULL);
    return 0;
}

static void consume(const char *topic, struct out_list *l)
{
    l->n = 0;
    assert_true(hx_consume_all(hx_broker_bootstraps(broker), topic, 2000, 20000,
                               collect, l) >= 0);
}

static const struct out_msg *find_key(const struct out_list *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++) {
        if (!strcmp(l->m[i].key, key))
            return &l->m[i];
    }
    return NULL;
}

struct count_arg {
    const char *topic;
    int64_t n;
};

static bool has_count(void *p)
{
    struct count_arg *a = p;

    return hx_topic_count(hx_broker_bootstraps(broker), a->topic) >= a->n;
}

static int wait_count(const char *topic, int64_t n, int timeout_ms)
{
    struct count_arg a = {topic, n};

    return hx_wait_until(has_count, &a, timeout_ms);
}

static int64_t topic_count(const char *topic)
{
    return hx_topic_count(hx_broker_bootstraps(broker), topic);
}

static long long zcard(void)
{
    redisContext *c = hx_redis_connect(redis);
    redisReply *r;
    long long n = -1;

    if (!c)
        return -1;
    r = redisCommand(c, "ZCARD herald:guard:{sched}:due");
    if (r && r->type == REDIS_REPLY_INTEGER)
        n = r->integer;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return n;
}

struct zcard_arg {
    long long n;
};

static bool has_zcard(void *p)
{
    return zcard() == ((struct zcard_arg *)p)->n;
}

/* 1. Records come back with attempt + 1 and the original key, value and
 *    headers; the schedule empties. */
static void test_retries_are_redelivered_with_attempt_incremented(void **state)
{
    struct retry_rec recs[20];
    char keys[20][16], values[20][32], traces[20][16];
    struct out_list *out = calloc(1, sizeof(*out));
    int64_t now = hr_time_now_ms();
    struct guard_proc *g;

    (void)state;
    hx_redis_flushall(redis);
    for (int i = 0; i < 20; i++) {
        snprintf(keys[i], sizeof(keys[i]), "user-%d", i);
        snprintf(values[i], sizeof(values[i]), "{\"n\":%d}", i);
        /* every fifth: a hand-off because the circuit was open, which
         * spent no attempt */
        snprintf(traces[i], sizeof(traces[i]), "%s-%d", i % 5 ? "t" : "open",
                 i);
        recs[i] =
            (struct retry_rec){keys[i],   values[i], "push", "apns",   1000 + i,
                               1 + i % 3, now,       -1,     traces[i]};
    }
    produce_retry("gd-basic.retry", recs, 20);
    g = guard_start("gd-basic", NULL);
    assert_non_null(g);
    assert_int_equal(wait_count("gd-basic.redeliver.push", 20, 30000), 0);
    consume("gd-basic.redeliver.push", out);
    assert_int_equal(out->n, 20);
    for (int i = 0; i < 20; i++) {
        const struct out_msg *m = find_key(out, keys[i]);

        assert_non_null(m);
        assert_string_equal(m->value, values[i]);
        assert_string_equal(m->trace, traces[i]);
        assert_string_equal(m->error_class, "transient");
        assert_int_equal(m->attempt, recs[i].attempt + (i % 5 ? 1 : 0));
        assert_true(m->ts_ms >= now);
    }
    assert_int_equal(topic_count("gd-basic.dlq"), 0);
    {
        struct zcard_arg z = {0};

        assert_int_equal(hx_wait_until(has_zcard, &z, 5000), 0);
    }
    assert_int_equal(
        wait_metric(g, "herald_guard_redelivered_total{", 20, 5000), 0);
    assert_int_equal(wait_metric(g, "herald_guard_scheduled{", 0, 5000), 0);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
    free(out);
}

/* 2. Retry-After is a lower bound, and a retry record delivered twice is
 *    scheduled once. */
static void test_retry_after_is_a_lower_bound(void **state)
{
    struct out_list *out = calloc(1, sizeof(*out));
    int64_t now = hr_time_now_ms();
    struct retry_rec r = {"user-a", "{\"x\":1}", "push", "apns", 7,
                          2,        now,         4000,   "t-a"};
    struct retry_rec twice[2] = {r, r};
    struct guard_proc *g;
    int64_t first_seen;

    (void)state;
    hx_redis_flushall(redis);
    g = guard_start("gd-after", NULL);
    assert_non_null(g);
    produce_retry("gd-after.retry", twice, 2);
    /* Both copies are in; none may leave before Retry-After. */
    while (hr_time_now_ms() < now + 3500) {
        assert_int_equal(topic_count("gd-after.redeliver.push"), 0);
        hx_sleep_ms(200);
    }
    assert_int_equal(wait_count("gd-after.redeliver.push", 1, 20000), 0);
    first_seen = hr_time_now_ms();
    assert_true(first_seen >= now + 4000);
    hx_sleep_ms(1500);
    consume("gd-after.redeliver.push", out);
    assert_int_equal(out->n, 1);
    assert_true(out->m[0].ts_ms >= now + 4000);
    assert_int_equal(out->m[0].attempt, 3);
    assert_string_equal(out->m[0].key, "user-a");
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
    free(out);
}

/* 3. The 8th attempt's failure is dead-lettered with reason max_attempts;
 *    the 7th's is redelivered as the 8th attempt. */
static void test_max_attempts_dead_letters_with_reason(void **state)
{
    struct out_list *out = calloc(1, sizeof(*out));
    int64_t now = hr_time_now_ms();
    struct retry_rec recs[2] = {
        {"user-8", "eight", "push", "apns", 80, 8, now, -1, "t-8"},
        {"user-7", "seven", "push", "apns", 70, 7, now, -1, "t-7"},
    };
    struct guard_proc *g;

    (void)state;
    hx_redis_flushall(redis);
    produce_retry("gd-attempts.retry", recs, 2);
    g = guard_start("gd-attempts", NULL);
    assert_non_null(g);
    assert_int_equal(wait_count("gd-attempts.dlq", 1, 30000), 0);
    assert_int_equal(wait_count("gd-attempts.redeliver.push", 1, 30000), 0);
    consume("gd-attempts.dlq", out);
    assert_int_equal(out->n, 1);
    assert_string_equal(out->m[0].key, "user-8");
    assert_string_equal(out->m[0].value, "eight");
    assert_string_equal(out->m[0].reason, "max_attempts");
    assert_string_equal(out->m[0].error_class, "transient");
    assert_string_equal(out->m[0].trace, "t-8");
    consume("gd-attempts.redeliver.push", out);
    assert_int_equal(out->n, 1);
    assert_string_equal(out->m[0].key, "user-7");
    assert_int_equal(out->m[0].attempt, 8);
    assert_int_equal(
        wait_metric(g,
                    "herald_guard_dead_lettered_total{worker=\"guard\","
                    "reason=\"max_attempts\"}",
                    1, 5000),
        0);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
    free(out);
}

/* 4. Too old at arrival, or grown too old while waiting: max_age. */
static void test_max_age_dead_letters(void **state)
{
    static const char *const env[] = {"HERALD_GUARD_MAX_AGE_SECONDS=3", NULL};
    struct out_list *out = calloc(1, sizeof(*out));
    struct guard_proc *g;
    const struct out_msg *m;
    int64_t now;

    (void)state;
    hx_redis_flushall(redis);
    g = guard_start("gd-age", env);
    assert_non_null(g);
    /* Consuming already: "aging" is young when the guard reads it. */
    assert_int_equal(hx_wait_until(is_ready, g, 30000), 0);
    now = hr_time_now_ms();
    {
        struct retry_rec recs[2] = {
            {"old", "v-old", "push", "apns", 1, 1, now - 10000, -1, "t-old"},
            {"aging", "v-aging", "push", "apns", 2, 1, now, 5000, "t-aging"},
        };

        produce_retry("gd-age.retry", recs, 2);
    }
    assert_int_equal(wait_count("gd-age.dlq", 2, 30000), 0);
    consume("gd-age.dlq", out);
    assert_int_equal(out->n, 2);
    m = find_key(out, "old");
    assert_non_null(m);
    assert_string_equal(m->reason, "max_age");
    assert_string_equal(m->value, "v-old");
    m = find_key(out, "aging");
    assert_non_null(m);
    assert_string_equal(m->reason, "max_age");
    assert_string_equal(m->trace, "t-aging");
    assert_true(m->ts_ms >= now + 5000);
    assert_int_equal(topic_count("gd-age.redeliver.push"), 0);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
    free(out);
}

/* 5. kill -9 with items scheduled; a restart still redelivers every one. */
static void test_kill_9_with_items_scheduled_then_restart(void **state)
{
    struct retry_rec recs[30];
    char keys[30][16];
    struct out_list *out = calloc(1, sizeof(*out));
    int64_t now = hr_time_now_ms();
    struct zcard_arg z = {30};
    struct guard_proc *g;

    (void)state;
    hx_redis_flushall(redis);
    for (int i = 0; i < 30; i++) {
        snprintf(keys[i], sizeof(keys[i]), "crash-%d", i);
        recs[i] = (struct retry_rec){keys[i], "v", "push", "apns", 500 + i,
                                     1,       now, 6000,   "t"};
    }
    produce_retry("gd-crash.retry", recs, 30);
    g = guard_start("gd-crash", NULL);
    assert_non_null(g);
    assert_int_equal(hx_wait_until(has_zcard, &z, 30000), 0);
    hx_proc_signal(g->proc, SIGKILL);
    assert_int_equal(hx_proc_wait(g->proc, 5000, NULL), 0);
    guard_free(g);
    assert_int_equal(topic_count("gd-crash.redeliver.push"), 0);
    g = guard_start("gd-crash", NULL);
    assert_non_null(g);
    assert_int_equal(wait_count("gd-crash.redeliver.push", 30, 40000), 0);
    consume("gd-crash.redeliver.push", out);
    assert_true(out->n >= 30);
    for (int i = 0; i < 30; i++)
        assert_non_null(find_key(out, keys[i]));
    assert_int_equal(topic_count("gd-crash.dlq"), 0);
    /* librdkafka 2.0.2 asserts in the cooperative-sticky assignor when a
     * consumer closes before its first assignment (the killed member's
     * session still holds the group): stop only once assigned. */
    assert_int_equal(hx_wait_until(is_ready, g, 30000), 0);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
    free(out);
}

/* Distinct "term-<i>" keys seen on a topic. */
struct seen_keys {
    bool *seen;
    int n, distinct;
};

static int mark_key(void *opaque, const rd_kafka_message_t *rkm)
{
    struct seen_keys *s = opaque;
    char key[32];
    int i;

    snprintf(key, sizeof(key), "%.*s", (int)rkm->key_len,
             (const char *)rkm->key);
    if (sscanf(key, "term-%d", &i) == 1 && i >= 0 && i < s->n && !s->seen[i]) {
        s->seen[i] = true;
        s->distinct++;
    }
    return 0;
}

/* Produce @n retry records "term-<i>" (origin offset i), due at once, to
 * "<name>.retry" on an empty Redis. */
/* @n retry records of @value, due @after_ms (< 0: at once) after their
 * scheduling, into "<name>.retry", on an empty Redis. */
static void
produce_numbered_value(const char *name, int n, const char *value, int after_ms)
{
    struct retry_rec *recs = calloc((size_t)n, sizeof(*recs));
    char(*keys)[16] = calloc((size_t)n, sizeof(*keys));
    int64_t now = hr_time_now_ms();
    char topic[64];

    assert_non_null(recs);
    assert_non_null(keys);
    hx_redis_flushall(redis);
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), "term-%d", i);
        recs[i] = (struct retry_rec){keys[i], value, "push",   "apns", i,
                                     1,       now,   after_ms, "t"};
    }
    snprintf(topic, sizeof(topic), "%s.retry", name);
    produce_retry(topic, recs, (size_t)n);
    free(keys);
    free(recs);
}

static void produce_numbered(const char *name, int n)
{
    produce_numbered_value(name, n, "v", -1);
}

/* Once the schedule is empty: how many records "<name>.redeliver.push"
 * holds, with every one of the @n keys among them. */
static int redelivered_numbered(const char *name, int n)
{
    struct seen_keys seen = {calloc((size_t)n, sizeof(bool)), n, 0};
    struct zcard_arg z = {0};
    char topic[64];
    int total;

    assert_non_null(seen.seen);
    snprintf(topic, sizeof(topic), "%s.redeliver.push", name);
    assert_int_equal(wait_count(topic, n, 60000), 0);
    assert_int_equal(hx_wait_until(has_zcard, &z, 30000), 0);
    total = hx_consume_all(hx_broker_bootstraps(broker), topic, 2000, 30000,
                           mark_key, &seen);
    assert_int_equal(seen.distinct, n);
    free(seen.seen);
    snprintf(topic, sizeof(topic), "%s.dlq", name);
    assert_int_equal(topic_count(topic), 0);
    return total;
}

/* 5b. SIGTERM while slices wait for the broker: the guard exits 0 within
 *     its budget, settles what is in flight and puts back what it took;
 *     after a restart every record is redelivered and the schedule
 *     empties. */
static void test_sigterm_mid_drain_loses_nothing(void **state)
{
    enum { N = 20000 };
    static const char *const env[] = {"HERALD_GUARD_TICK_MAX=500",
                                      "HERALD_GUARD_RETRY_FLOOR_PER_S=100000",
                                      NULL};
    struct guard_proc *g;

    (void)state;
    produce_numbered("gd-term", N);
    g = guard_start("gd-term", env);
    assert_non_null(g);
    assert_int_equal(wait_count("gd-term.redeliver.push", N / 10, 30000), 0);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
    g = guard_start("gd-term", env);
    assert_non_null(g);
    assert_true(redelivered_numbered("gd-term", N) >= N);
    assert_int_equal(hx_wait_until(is_ready, g, 30000), 0);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
}

/* 5c. A full schedule stops consumption until due items leave: the
 *     paused batch drains the schedule itself (ticks wait while it
 *     pauses), and every record comes back exactly once: a paused
 *     batch's redo neither schedules anew what was redelivered meanwhile
 *     nor loses the answers of the batches submitted after it. */
static void test_full_schedule_pauses_and_drains(void **state)
{
    enum { N = 2000 };
    static const char *const env[] = {
        "HERALD_GUARD_MAX_SCHEDULED=100", "HERALD_BATCH_MAX=50",
        "HERALD_GUARD_TICK_MAX=50", "HERALD_GUARD_RETRY_FLOOR_PER_S=100000",
        NULL};
    struct guard_proc *g;

    (void)state;
    produce_numbered("gd-full", N);
    g = guard_start("gd-full", env);
    assert_non_null(g);
    assert_int_equal(redelivered_numbered("gd-full", N), N);
    /* it did pause: the batch said why */
    assert_true(metric(g, "herald_batch_pauses_total") > 0);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
}

/* 5d. Big records piled up in an outage: 48 records of 200 KB due at once
 *     (a guard stopped while they waited, started again once they are
 *     due). A take stops at about 4 MiB of records and the next is sent
 *     ahead at once; every record is redelivered exactly once. */
static void test_big_records_are_taken_in_slices_of_bytes(void **state)
{
    enum { N = 48, SIZE = 200 * 1024 };
    static const char *const env[] = {"HERALD_GUARD_RETRY_FLOOR_PER_S=100000",
                                      NULL};
    char *value = malloc(SIZE + 1);
    struct zcard_arg all = {N};
    struct guard_proc *g;

    (void)state;
    assert_non_null(value);
    memset(value, 'b', SIZE);
    value[SIZE] = '\0';
    produce_numbered_value("gd-big", N, value, 4000);
    free(value);
    g = guard_start("gd-big", env);
    assert_non_null(g);
    assert_int_equal(hx_wait_until(has_zcard, &all, 30000), 0);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
    assert_int_equal(topic_count("gd-big.redeliver.push"), 0);
    hx_sleep_ms(5000); /* every one is due now */
    g = guard_start("gd-big", env);
    assert_non_null(g);
    assert_int_equal(redelivered_numbered("gd-big", N), N);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
}

/* 6. The retry budget: with a floor of 5 per second and no successes,
 *    redeliveries per second stay within it, and nothing is dropped. */
static void test_budget_limits_redeliveries_per_second(void **state)
{
    static const char *const env[] = {"HERALD_GUARD_RETRY_FLOOR_PER_S=5",
                                      "HERALD_GUARD_RETRY_BUDGET=0", NULL};
    struct retry_rec recs[40];
    char keys[40][16];
    struct out_list *out = calloc(1, sizeof(*out));
    int64_t now = hr_time_now_ms(), lo = INT64_MAX, hi = 0;
    struct guard_proc *g;
    int per_s[64] = {0};

    (void)state;
    hx_redis_flushall(redis);
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof(keys[i]), "b-%d", i);
        recs[i] = (struct retry_rec){keys[i], "v", "email", "smtp", 900 + i,
                                     1,       now, -1,      "t"};
    }
    produce_retry("gd-budget.retry", recs, 40);
    g = guard_start("gd-budget", env);
    assert_non_null(g);
    assert_int_equal(wait_count("gd-budget.redeliver.email", 40, 40000), 0);
    consume("gd-budget.redeliver.email", out);
    assert_int_equal(out->n, 40);
    for (size_t i = 0; i < out->n; i++) {
        lo = out->m[i].ts_ms < lo ? out->m[i].ts_ms : lo;
        hi = out->m[i].ts_ms > hi ? out->m[i].ts_ms : hi;
    }
    for (size_t i = 0; i < out->n; i++) {
        int64_t s = out->m[i].ts_ms / 1000 - lo / 1000;

        assert_true(s >= 0 && s < 64);
        per_s[s]++;
    }
    for (int s = 0; s < 64; s++) {
        if (per_s[s] > 5)
            fprintf(stderr, "second %d: %d redeliveries\n", s, per_s[s]);
        /* One tick may straddle a second boundary: allow that, no more. */
        assert_true(per_s[s] <= 10);
    }
    /* 40 at 5 per second cannot take less than 7 whole seconds. */
    assert_true(hi - lo >= 6000);
    for (int i = 0; i < 40; i++)
        assert_non_null(find_key(out, keys[i]));
    assert_true(metric(g, "herald_guard_budget_throttled_total{") > 0);
    assert_int_equal(topic_count("gd-budget.dlq"), 0);
    assert_int_equal(guard_stop(g), 0);
    guard_free(g);
    free(out);
}

/* Run "herald-guard redrive @args..." to its end; returns the exit status
 * and leaves its stdout in @out_path. */
static int run_redrive(const char *const *args, const char *out_path)
{
    const char *argv[16];
    char brokers[600], errpath[600];
    const char *envp[] = {
        brokers, "HERALD_GUARD_REDELIVER_PREFIX=gd-redrive.redeliver.", NULL};
    struct hx_proc *p;
    int n = 0, status = -1;

    argv[n++] = hx_bin("herald-guard");
    argv[n++] = "redrive";
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    snprintf(brokers, sizeof(brokers), "HERALD_KAFKA_BROKERS=%s",
             hx_broker_bootstraps(broker));
    snprintf(errpath, sizeof(errpath), "%s.err", out_path);
    p = hx_proc_spawn(argv, envp, out_path, errpath);
    if (!p)
        return -1;
    if (hx_proc_wait(p, 60000, &status))
        status = -1;
    hx_proc_free(p);
    return status;
}

static bool file_contains(const char *path, const char *needle)
{
    char *text = hx_file_read(path, NULL);
    bool found = text && strstr(text, needle);

    free(text);
    return found;
}

/* 7. Redrive: dead letters go back to their worker's redelivery topic (or
 *    --to) with a fresh retry history; --dry-run and filters move nothing
 *    else. */
static void test_redrive_moves_dead_letters_back(void **state)
{
    static const char *const dry[] = {"--from",    "gd-redrive.dlq",
                                      "--filter",  "herald-worker=push",
                                      "--dry-run", NULL};
    static const char *const real[] = {"--from",   "gd-redrive.dlq",
                                       "--filter", "herald-worker=push",
                                       "--rate",   "50",
                                       NULL};
    static const char *const to[] = {"--from",   "gd-redrive.dlq",
                                     "--to",     "gd-redrive.other",
                                     "--filter", "herald-guard-reason=max_age",
                                     NULL};
    static const char *const future[] = {"--from", "gd-redrive.dlq", "--since",
                                         "2099-01-01T00:00:00Z", NULL};
    static const char *const bad[] = {"--from", "gd-redrive.dlq", "--since",
                                      "yesterday", NULL};
    struct out_list *out = calloc(1, sizeof(*out));
    rd_kafka_t *rk = hx_producer_new(hx_broker_bootstraps(broker));
    char path[600];
    const struct out_msg *m;

    (void)state;
    assert_non_null(rk);
    {
        const char *h1[] = {
            "herald-worker", "push",           "herald-guard-reason",
            "max_attempts",  "herald-attempt", "8",
            "x-trace",       "t-r1",           NULL};
        const char *h2[] = {
            "herald-worker", "push",           "herald-guard-reason",
            "max_age",       "herald-attempt", "3",
            "x-trace",       "t-r2",           NULL};
        const char *h3[] = {"herald-worker", "email", "herald-guard-reason",
                            "max_age", NULL};

        assert_int_equal(
            hx_produce(rk, "gd-redrive.dlq", "r-1", 3, "v1", 2, h1), 0);
        assert_int_equal(
            hx_produce(rk, "gd-redrive.dlq", "r-2", 3, "v2", 2, h2), 0);
        assert_int_equal(
            hx_produce(rk, "gd-redrive.dlq", "r-3", 3, "v3", 2, h3), 0);
    }
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);

    snprintf(path, sizeof(path), "%s/redrive-dry.out", logdir);
    assert_int_equal(run_redrive(dry, path), 0);
    assert_true(file_contains(path, "\"moved\":2"));
    assert_int_equal(topic_count("gd-redrive.redeliver.push"), 0);

    snprintf(path, sizeof(path), "%s/redrive.out", logdir);
    assert_int_equal(run_redrive(real, path), 0);
    assert_true(file_contains(path, "\"moved\":2"));
    consume("gd-redrive.redeliver.push", out);
    assert_int_equal(out->n, 2);
    m = find_key(out, "r-1");
    assert_non_null(m);
    assert_string_equal(m->value, "v1");
    assert_string_equal(m->trace, "t-r1");
    assert_string_equal(m->reason, "");
    assert_int_equal(m->attempt, 0); /* no header: the next failure is 1 */
    assert_non_null(find_key(out, "r-2"));
    assert_int_equal(topic_count("gd-redrive.redeliver.email"), 0);
    assert_int_equal(topic_count("gd-redrive.dlq"), 3);

    snprintf(path, sizeof(path), "%s/redrive-to.out", logdir);
    assert_int_equal(run_redrive(to, path), 0);
    consume("gd-redrive.other", out);
    assert_int_equal(out->n, 2);
    assert_non_null(find_key(out, "r-2"));
    assert_non_null(find_key(out, "r-3"));

    snprintf(path, sizeof(path), "%s/redrive-since.out", logdir);
    assert_int_equal(run_redrive(future, path), 0);
    assert_true(file_contains(path, "\"moved\":0,\"skipped\":0,\"seen\":0"));

    snprintf(path, sizeof(path), "%s/redrive-bad.out", logdir);
    assert_int_equal(run_redrive(bad, path), 2);
    free(out);
}

static int group_setup(void **state)
{
    (void)state;
    redis = hx_redis_start(NULL);
    if (!redis) {
        fprintf(stderr, "redis-server unavailable\n");
        exit(HX_SKIP);
    }
    broker = hx_broker_start(TOPICS, 4);
    if (!broker) {
        fprintf(stderr, "herald-devbroker unavailable\n");
        hx_redis_free(redis);
        exit(HX_SKIP);
    }
    logdir = hx_tmpdir_new("guard");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hx_broker_free(broker);
    hx_redis_free(redis);
    hx_tmpdir_done(logdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            test_retries_are_redelivered_with_attempt_incremented,
            test_teardown),
        cmocka_unit_test_teardown(test_retry_after_is_a_lower_bound,
                                  test_teardown),
        cmocka_unit_test_teardown(test_max_attempts_dead_letters_with_reason,
                                  test_teardown),
        cmocka_unit_test_teardown(test_max_age_dead_letters, test_teardown),
        cmocka_unit_test_teardown(test_kill_9_with_items_scheduled_then_restart,
                                  test_teardown),
        cmocka_unit_test_teardown(test_sigterm_mid_drain_loses_nothing,
                                  test_teardown),
        cmocka_unit_test_teardown(test_full_schedule_pauses_and_drains,
                                  test_teardown),
        cmocka_unit_test_teardown(test_big_records_are_taken_in_slices_of_bytes,
                                  test_teardown),
        cmocka_unit_test_teardown(test_budget_limits_redeliveries_per_second,
                                  test_teardown),
        cmocka_unit_test_teardown(test_redrive_moves_dead_letters_back,
                                  test_teardown),
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("herald-guard end to end", tests,
                                       group_setup, group_teardown);
}
