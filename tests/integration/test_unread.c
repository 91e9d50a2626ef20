/*
 * herald-unread end to end: the worker binary against a real redis-server
 * and herald-devbroker, with Redis compared to the exact model of
 * tests/model/chat_model.c after every scenario.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "hr_compat.h"
#include "unread_fixture.h"

#define TOPICS                                                  \
    "exact:8,exact.unread:8,exact.dlq:1,exact.retry:1,"         \
    "crash:8,crash.unread:8,crash.dlq:1,crash.retry:1,"         \
    "outage:8,outage.unread:8,outage.dlq:1,outage.retry:1,"     \
    "faults:8,faults.unread:8,faults.dlq:1,faults.retry:1,"     \
    "bad:2,bad.unread:2,bad.dlq:1,bad.retry:1,"                 \
    "term:8,term.unread:8,term.dlq:1,term.retry:1,"             \
    "push:4,push.unread:4,push.dlq:1,push.retry:1,push.push:4," \
    "metrics:4,metrics.unread:4,metrics.dlq:1,metrics.retry:1," \
    "midway:4,midway.unread:4,midway.dlq:1,midway.retry:1,"     \
    "prefix:4,prefix.unread:4,prefix.dlq:1,prefix.retry:1,"     \
    "big:4,big.unread:4,big.dlq:1,big.retry:1,"                 \
    "bytes:2,bytes.unread:2,bytes.dlq:1,bytes.retry:1,"         \
    "pcut:1,pcut.unread:1,pcut.dlq:1,pcut.retry:1,pcut.push:1"

static struct uf_env *env;

static struct chat_scenario *scenario(size_t messages, uint64_t seed)
{
    return uf_scenario(messages, seed);
}

static void flush_redis(void)
{
    hx_redis_flushall(env->redis);
}

static int64_t topic_count(const char *topic)
{
    return hx_topic_count(hx_broker_bootstraps(env->broker), topic);
}

static int stop_worker(struct uf_worker *w, int timeout_ms)
{
    int status = -1;

    hx_proc_signal(w->proc, SIGTERM);
    if (hx_proc_wait(w->proc, timeout_ms, &status))
        return -1;
    return status;
}

/* The "events" field of the worker's "stopped" log line. */
static long long stopped_events(const struct uf_worker *w)
{
    char *log = hx_file_read(w->log, NULL);
    char *line = log ? strstr(log, "\"msg\":\"stopped\"") : NULL;
    char *ev = line ? strstr(line, "\"events\":") : NULL;
    long long n = ev ? strtoll(ev + 9, NULL, 10) : -1;

    free(log);
    return n;
}

/* 1. 100,000 events, 10% duplicate ids, receipts out of order: exact. */
static void test_exact_counts_under_duplicates_and_reordering(void **state)
{
    struct chat_scenario *s = scenario(70000, 1);
    struct uf_worker *w;

    (void)state;
    flush_redis();
    assert_true(chat_count(s) >= 100000);
    uf_produce(env, s, "exact", 0, chat_count(s));
    w = uf_worker_start(env, "exact", "g-exact", NULL);
    assert_non_null(w);
    assert_int_equal(uf_wait_exact(env, s, 180000), 0);
    assert_int_equal(uf_wait_processed(w, (double)chat_count(s), 30000), 0);
    assert_true(uf_metric(w, "herald_events_processed_total{worker=\"unread\","
                             "outcome=\"duplicate\"}") > 0);
    /* A backlog ten times the prefetch queue: librdkafka before 2.2 only
     * refills it quickly because the runtime wakes its fetchers. */
    if (rd_kafka_version() < 0x020200ff)
        assert_true(uf_metric(w, "herald_source_fetch_nudges_total") > 0);
    assert_int_equal(topic_count("exact.dlq"), 0);
    assert_true(topic_count("exact.unread") > 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    chat_free(s);
}

/* 2. kill -9 mid-stream, restart: nothing lost, nothing doubled. */
static void test_kill_9_mid_stream_then_restart_is_exact(void **state)
{
    struct chat_scenario *s = scenario(40000, 2);
    struct uf_worker *w;

    (void)state;
    flush_redis();
    uf_produce(env, s, "crash", 0, chat_count(s));
    w = uf_worker_start(env, "crash", "g-crash", NULL);
    assert_int_equal(uf_wait_processed(w, 8000, 60000), 0);
    hx_proc_signal(w->proc, SIGKILL);
    assert_int_equal(hx_proc_wait(w->proc, 5000, NULL), 0);
    uf_worker_free(w);
    w = uf_worker_start(env, "crash", "g-crash", NULL);
    assert_int_equal(uf_wait_exact(env, s, 180000), 0);
    assert_int_equal(topic_count("crash.dlq"), 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    chat_free(s);
}

/*
 * Outputs that fail for good (a permanent Produce error, not one the
 * idempotent producer retries) make their batch come again, even when a
 * newer batch was handled meanwhile: counts stay exact, nothing is
 * dead-lettered, and the redo is logged.
 */
static void test_lost_outputs_redo_their_batch(void **state)
{
    struct chat_scenario *s = scenario(30000, 7);
    struct uf_worker *w;
    char *log;

    (void)state;
    flush_redis();
    uf_produce(env, s, "lost", 0, chat_count(s));
    /* small batches: the worker must still be producing when the errors
     * are armed (with batches of 1,000 it could finish the other 27,000
     * events first, and then no output of its failed) */
    w = uf_worker_start(env, "lost", "g-lost",
                        (const char *const[]){"HERALD_BATCH_MAX=200", NULL});
    /* armed early: on a loaded machine the test's own wait can lag the
     * worker by thousands of events */
    assert_int_equal(uf_wait_processed(w, 600, 60000), 0);
    assert_int_equal(hx_broker_control(env->broker,
                                       "errors Produce 2 "
                                       "TOPIC_AUTHORIZATION_FAILED"),
                     0);
    assert_int_equal(uf_wait_exact(env, s, 180000), 0);
    assert_int_equal(topic_count("lost.dlq"), 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    log = hx_file_read(w->log, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "redoing it"));
    free(log);
    uf_worker_free(w);
    chat_free(s);
}

struct ready_arg {
    struct uf_worker *w;
    const char *needle;
};

static bool not_ready_with(void *p)
{
    struct ready_arg *a = p;
    char body[512];

    return uf_readyz(a->w, body, sizeof(body)) == 503 &&
           strstr(body, a->needle);
}

/* 3. Redis down for seconds mid-stream: pause (readyz 503 with a reason),
 *    resume, exact, no dead letters. */
static void test_redis_outage_pauses_then_resumes_exactly(void **state)
{
    struct chat_scenario *s = scenario(30000, 3);
    size_t half = chat_count(s) / 2;
    struct ready_arg ra;
    struct uf_worker *w;

    (void)state;
    flush_redis();
    w = uf_worker_start(env, "outage", "g-outage", NULL);
    assert_int_equal(uf_wait_ready(w, 30000), 0);
    uf_produce(env, s, "outage", 0, half);
    assert_int_equal(uf_wait_processed(w, (double)half, 60000), 0);
    assert_int_equal(hx_redis_stop_server(env->redis), 0);
    uf_produce(env, s, "outage", half, chat_count(s) - half);
    ra.w = w;
    ra.needle = "redis";
    assert_int_equal(hx_wait_until(not_ready_with, &ra, 20000), 0);
    hx_sleep_ms(3000);
    assert_true(hx_proc_is_running(w->proc));
    assert_int_equal(hx_redis_restart_server(env->redis), 0);
    assert_int_equal(uf_wait_exact(env, s, 120000), 0);
    assert_int_equal(uf_wait_ready(w, 20000), 0);
    assert_int_equal(topic_count("outage.dlq"), 0);
    assert_true(uf_metric(w, "herald_redis_errors_total{") > 0);
    assert_true(uf_metric(w, "herald_batch_pauses_total{") > 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    chat_free(s);
}

struct prefix_exact_arg {
    const struct chat_scenario *s;
    const char *prefix;
    int bad;
    char err[512];
};

static bool is_exact_with_prefix(void *p)
{
    struct prefix_exact_arg *a = p;
    redisContext *c = hx_redis_connect(env->redis);

    if (!c)
        return false;
    a->bad = chat_verify_redis(a->s, c, a->prefix, 999, a->err, sizeof(a->err));
    redisFree(c);
    return a->bad == 0;
}

static void redis_do(const char *fmt, const char *arg)
{
    redisContext *c = hx_redis_connect(env->redis);
    redisReply *reply;

    assert_non_null(c);
    reply = redisCommand(c, fmt, arg);
    assert_non_null(reply);
    freeReplyObject(reply);
    redisFree(c);
}

/* 3b. The script fails midway (a total key of the wrong type, after other
 *     users' and this user's zsets were written): the batch pauses, and
 *     once the key is fixed the redo repairs counts and totals. */
static void test_script_failure_midway_is_repaired_by_the_redo(void **state)
{
    struct chat_scenario *s = scenario(3000, 11);
    struct ready_arg ra;
    struct uf_worker *w;

    (void)state;
    flush_redis();
    redis_do("HSET %s wrong type", "herald:unread_total:{u7}");
    w = uf_worker_start(env, "midway", "g-midway", NULL);
    assert_int_equal(uf_wait_ready(w, 30000), 0);
    uf_produce(env, s, "midway", 0, chat_count(s));
    ra.w = w;
    ra.needle = "WRONGTYPE";
    assert_int_equal(hx_wait_until(not_ready_with, &ra, 30000), 0);
    redis_do("DEL %s", "herald:unread_total:{u7}");
    assert_int_equal(uf_wait_exact(env, s, 60000), 0);
    assert_int_equal(topic_count("midway.dlq"), 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    chat_free(s);
}

/* Redis's count of EVALSHA calls so far. */
static long long evalsha_calls(void)
{
    redisContext *c = hx_redis_connect(env->redis);
    redisReply *reply;
    const char *at;
    long long calls = -1;

    assert_non_null(c);
    reply = redisCommand(c, "INFO commandstats");
    assert_non_null(reply);
    if (reply->str && (at = strstr(reply->str, "cmdstat_evalsha:calls=")))
        calls = strtoll(at + strlen("cmdstat_evalsha:calls="), NULL, 10);
    freeReplyObject(reply);
    redisFree(c);
    return calls;
}

/*
 * 3b'. A community's big groups: bursts into conversations of 1,000
 * members, about 600,000 (recipient, message) pairs. A batch of them is
 * split into script calls of bounded size (one call per batch would pass
 * millions of arguments and block Redis for seconds, and the worker held
 * gigabytes), and the counts are exact.
 */
static void test_big_groups_are_split_into_bounded_calls(void **state)
{
    struct chat_opts o = {
        .seed = 21,
        .users = 1200,
        .convs = 4,
        .members = 1000,
        .messages = 600,
        .read_ratio = 0.35,
        .dup_ratio = 0.10,
        .shuffle_window = 64,
        .start_ms = 1795305600000LL,
    };
    struct chat_scenario *s = chat_generate(&o);
    long long calls0 = evalsha_calls();
    struct uf_worker *w;

    (void)state;
    flush_redis();
    uf_produce(env, s, "big", 0, chat_count(s));
    w = uf_worker_start(env, "big", "g-big", NULL);
    assert_non_null(w);
    assert_int_equal(uf_wait_exact(env, s, 180000), 0);
    assert_int_equal(uf_wait_processed(w, (double)chat_count(s), 30000), 0);
    /* ~600,000 pairs at most ~34,000 recipients and pairs per call */
    assert_true(evalsha_calls() - calls0 >= 15);
    assert_int_equal(topic_count("big.dlq"), 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    chat_free(s);
}

/* HERALD_BATCH_MAX_BYTES bounds a batch by its values: at 1 byte every
 * batch is one event (the one that reaches the bound is taken), where the
 * default takes many; counts are exact either way. */
static void test_batch_bytes_bound_batches(void **state)
{
    struct chat_scenario *s = scenario(600, 31);
    const char *const one[] = {"HERALD_BATCH_MAX_BYTES=1", NULL};
    const char *const *envs[] = {NULL, one};
    const char *groups[] = {"g-bytes-default", "g-bytes-one"};

    (void)state;
    uf_produce(env, s, "bytes", 0, chat_count(s));
    for (size_t i = 0; i < 2; i++) {
        struct uf_worker *w;
        double batches, events;

        flush_redis();
        w = uf_worker_start(env, "bytes", groups[i], envs[i]);
        assert_non_null(w);
        assert_int_equal(uf_wait_exact(env, s, 120000), 0);
        assert_int_equal(uf_wait_processed(w, (double)chat_count(s), 30000), 0);
        batches = uf_metric(w, "herald_batches_total{");
        events = uf_metric(w, "herald_events_processed_total{");
        if (envs[i])
            assert_true(batches == events);
        else
            assert_true(batches > 0 && batches * 4 < events);
        assert_int_equal(stop_worker(w, 15000), 0);
        uf_worker_free(w);
    }
    assert_int_equal(topic_count("bytes.dlq"), 0);
    chat_free(s);
}

/* 3c. A key prefix longer than any fixed buffer: keys are built whole. */
static void test_long_key_prefix_is_used_whole(void **state)
{
    static char prefix[301], var[340];
    struct chat_scenario *s = scenario(2000, 12);
    struct prefix_exact_arg a = {s, prefix, -1, ""};
    struct uf_worker *w;

    (void)state;
    flush_redis();
    memset(prefix, 'p', 299);
    prefix[299] = ':';
    prefix[300] = '\0';
    snprintf(var, sizeof(var), "HERALD_REDIS_PREFIX=%s", prefix);
    w = uf_worker_start(env, "prefix", "g-prefix",
                        (const char *const[]){var, NULL});
    assert_int_equal(uf_wait_ready(w, 30000), 0);
    uf_produce(env, s, "prefix", 0, chat_count(s));
    if (hx_wait_until(is_exact_with_prefix, &a, 60000))
        fprintf(stderr, "not exact: %d mismatches: %s\n", a.bad, a.err);
    assert_int_equal(a.bad, 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    chat_free(s);
}

/* 4. Broker faults on fetch, commit and produce: exact. */
static void test_broker_faults_keep_counts_exact(void **state)
{
    struct chat_scenario *s = scenario(30000, 4);
    size_t third = chat_count(s) / 3;
    struct uf_worker *w;

    (void)state;
    flush_redis();
    w = uf_worker_start(env, "faults", "g-faults", NULL);
    assert_int_equal(uf_wait_ready(w, 30000), 0);
    assert_int_equal(
        hx_broker_control(env->broker,
                          "errors Fetch 6 NOT_LEADER_FOR_PARTITION"),
        0);
    assert_int_equal(
        hx_broker_control(env->broker,
                          "errors OffsetCommit 4 REBALANCE_IN_PROGRESS"),
        0);
    uf_produce(env, s, "faults", 0, third);
    assert_int_equal(
        hx_broker_control(env->broker,
                          "errors Produce 6 NOT_LEADER_FOR_PARTITION"),
        0);
    assert_int_equal(
        hx_broker_control(env->broker, "errors Fetch 3 _TRANSPORT"), 0);
    uf_produce(env, s, "faults", third, third);
    assert_int_equal(
        hx_broker_control(env->broker, "errors OffsetCommit 3 NOT_COORDINATOR"),
        0);
    assert_int_equal(
        hx_broker_control(env->broker, "errors Produce 3 REQUEST_TIMED_OUT"),
        0);
    uf_produce(env, s, "faults", 2 * third, chat_count(s) - 2 * third);
    assert_int_equal(uf_wait_exact(env, s, 180000), 0);
    assert_int_equal(topic_count("faults.dlq"), 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    chat_free(s);
}

/* 5. Every class of malformed input: one dead letter each, with reason
 *    headers, and the worker goes on. */
struct dlq_seen {
    int count;
    int with_headers;
    char reasons[4096];
};

static int collect_dlq(void *opaque, const rd_kafka_message_t *rkm)
{
    struct dlq_seen *seen = opaque;
    rd_kafka_headers_t *hdrs = NULL;
    const void *cls = NULL, *err = NULL, *origin = NULL;
    size_t cls_len = 0, err_len = 0, origin_len = 0;

    seen->count++;
    if (!rd_kafka_message_headers(rkm, &hdrs) &&
        !rd_kafka_header_get_last(hdrs, "herald-error-class", &cls, &cls_len) &&
        !rd_kafka_header_get_last(hdrs, "herald-error", &err, &err_len) &&
        !rd_kafka_header_get_last(hdrs, "herald-origin-topic", &origin,
                                  &origin_len) &&
        !rd_kafka_header_get_last(hdrs, "herald-worker", &origin,
                                  &origin_len) &&
        err_len > 0) {
        size_t used = strlen(seen->reasons);

        seen->with_headers++;
        snprintf(seen->reasons + used, sizeof(seen->reasons) - used,
                 "[%.*s] %.*s\n", (int)cls_len, (const char *)cls, (int)err_len,
                 (const char *)err);
    }
    return 0;
}

static void test_malformed_input_is_dead_lettered_with_reason(void **state)
{
    static const char *const bad[] = {
        "not json at all",
        "[1,2,3]",
        "{\"specversion\":\"1.0\",\"id\":\"b1\",\"source\":\"t\"}",
        "{\"specversion\":\"0.3\",\"id\":\"b2\",\"source\":\"t\",\"type\":"
        "\"message.created\",\"data\":{}}",
        "{\"specversion\":\"1.0\",\"id\":\"b3\",\"source\":\"t\",\"type\":"
        "\"message.deleted\",\"data\":{}}",
        "{\"specversion\":\"1.0\",\"id\":\"b4\",\"source\":\"t\",\"type\":"
        "\"message.created\",\"data\":{\"conversation_id\":\"c1\","
        "\"sender_id\":\"u1\",\"recipient_ids\":[\"u2\"],\"sent_at\":"
        "\"2026-11-22T10:00:00Z\"}}",
        "{\"specversion\":\"1.0\",\"id\":\"b5\",\"source\":\"t\",\"type\":"
        "\"message.created\",\"data\":{\"conversation_id\":\"c1\","
        "\"message_id\":\"m\",\"sender_id\":\"u1\",\"recipient_ids\":\"u2\","
        "\"sent_at\":\"2026-11-22T10:00:00Z\"}}",
        "{\"specversion\":\"1.0\",\"id\":\"b6\",\"source\":\"t\",\"type\":"
        "\"conversation.read\",\"data\":{\"conversation_id\":\"c1\","
        "\"user_id\":\"u1\",\"read_at\":\"yesterday\"}}",
        "{\"specversion\":\"1.0\",\"id\":\"b7\",\"source\":\"t\",\"type\":"
        "\"conversation.read\",\"data\":{\"conversation_id\":7,"
        "\"user_id\":\"u1\",\"read_at\":\"2026-11-22T10:00:00Z\"}}",
        "{\"specversion\":\"1.0\",\"id\":\"b8\",\"source\":\"t\",\"type\":"
        "\"conversation.read\",\"data\":\"hello\"}",
        "{\"specversion\":\"1.0\",\"id\":\"b9\",\"source\":\"t\",\"type\":"
        "\"conversation.read\",\"data\":{\"conversation_id\":\"c1\","
        "\"user_id\":\"u{1}\",\"read_at\":\"2026-11-22T10:00:00Z\"}}",
        "{\"specversion\":\"1.0\",\"id\":\"b10\",\"source\":\"t\",\"type\":"
        "\"message.created\",\"data\":{\"conversation_id\":\"c1\","
        "\"message_id\":\"m\",\"sender_id\":\"u1\",\"recipient_ids\":[\"u2\","
        "3],\"sent_at\":\"2026-11-22T10:00:00Z\"}}",
    };
    const char good[] =
        "{\"specversion\":\"1.0\",\"id\":\"ok1\",\"source\":\"t\",\"type\":"
        "\"message.created\",\"data\":{\"conversation_id\":\"c1\","
        "\"message_id\":\"m-ok\",\"sender_id\":\"u1\",\"recipient_ids\":["
        "\"u1\",\"u2\"],\"sent_at\":\"2026-11-22T10:00:00Z\"}}";
    const char *brokers = hx_broker_bootstraps(env->broker);
    const char *big_props[] = {"message.max.bytes", "4000000", NULL};
    rd_kafka_t *rk = hx_producer_new_with(brokers, big_props);
    size_t huge_len = 1200000, nbad = HR_ARRAY_SIZE(bad) + 3;
    char *huge = malloc(huge_len);
    const char latin1[] =
        "{\"specversion\":\"1.0\",\"id\":\"b\xe9\",\"source\":"
        "\"t\",\"type\":\"conversation.read\"}";
    struct dlq_seen seen = {0};
    struct uf_worker *w;
    redisContext *c;
    redisReply *reply;

    (void)state;
    flush_redis();
    memset(huge, ' ', huge_len);
    huge[0] = '{';
    huge[huge_len - 1] = '}';
    for (size_t i = 0; i < (size_t)HR_ARRAY_SIZE(bad); i++)
        assert_int_equal(
            hx_produce(rk, "bad", "c1", 2, bad[i], strlen(bad[i]), NULL), 0);
    assert_int_equal(hx_produce(rk, "bad", "c1", 2, huge, huge_len, NULL), 0);
    assert_int_equal(
        hx_produce(rk, "bad", "c1", 2, latin1, strlen(latin1), NULL), 0);
    assert_int_equal(hx_produce(rk, "bad", "c1", 2, "", 0, NULL), 0);
    assert_int_equal(hx_produce(rk, "bad", "c1", 2, good, strlen(good), NULL),
                     0);
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);
    free(huge);

    w = uf_worker_start(env, "bad", "g-bad", NULL);
    assert_int_equal(uf_wait_processed(w, (double)nbad + 1, 60000), 0);
    assert_int_equal(uf_metric(w, "herald_events_processed_total{worker="
                                  "\"unread\",outcome=\"dead_lettered\"}"),
                     (double)nbad);
    assert_int_equal(
        hx_consume_all(brokers, "bad.dlq", 3000, 20000, collect_dlq, &seen),
        (int)nbad);
    fprintf(stderr, "dead letters:\n%s", seen.reasons);
    assert_int_equal(seen.with_headers, (int)nbad);
    assert_non_null(strstr(seen.reasons, "invalid json"));
    assert_non_null(strstr(seen.reasons, "payload too large"));
    assert_non_null(
        strstr(seen.reasons, "unknown event type 'message.deleted'"));
    assert_non_null(strstr(seen.reasons, "missing field 'message_id'"));
    assert_non_null(strstr(seen.reasons, "[permanent]"));
    assert_non_null(strstr(seen.reasons, "[poison]"));
    /* the good event after all of them was applied */
    c = hx_redis_connect(env->redis);
    reply = redisCommand(c, "HGET herald:unread:{u2} c1");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STRING);
    assert_string_equal(reply->str, "1");
    freeReplyObject(reply);
    redisFree(c);
    assert_true(hx_proc_is_running(w->proc));
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
}

/* 6. SIGTERM mid-stream: exit 0 within the budget, offsets committed; the
 *    restart does only what was left. */
static void test_sigterm_drains_and_restart_redoes_nothing(void **state)
{
    struct chat_scenario *s = scenario(60000, 6);
    struct uf_worker *w;
    long long first, second;
    int64_t t0;

    (void)state;
    flush_redis();
    uf_produce(env, s, "term", 0, chat_count(s));
    w = uf_worker_start(env, "term", "g-term",
                        (const char *const[]){"HERALD_BATCH_MAX=500", NULL});
    assert_int_equal(uf_wait_processed(w, 5000, 60000), 0);
    t0 = hx_now_ms();
    assert_int_equal(stop_worker(w, 15000), 0);
    assert_true(hx_now_ms() - t0 < 10000);
    first = stopped_events(w);
    uf_worker_free(w);
    assert_true(first > 0 && first < (long long)chat_count(s));

    w = uf_worker_start(env, "term", "g-term", NULL);
    assert_int_equal(uf_wait_exact(env, s, 180000), 0);
    assert_int_equal(
        uf_wait_processed(w, (double)chat_count(s) - (double)first, 30000), 0);
    hx_sleep_ms(1500);
    assert_int_equal(stop_worker(w, 15000), 0);
    second = stopped_events(w);
    uf_worker_free(w);
    fprintf(stderr, "first run %lld, second run %lld, total %zu\n", first,
            second, chat_count(s));
    assert_int_equal(first + second, (long long)chat_count(s));

    /* a third run finds nothing to do */
    w = uf_worker_start(env, "term", "g-term", NULL);
    assert_int_equal(uf_wait_ready(w, 30000), 0);
    hx_sleep_ms(2000);
    assert_int_equal(uf_metric(w, "herald_events_consumed_total{"), 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    chat_free(s);
}

/*
 * SIGTERM while the consumer is still joining its group: librdkafka before
 * 2.2.1 aborts when a cooperative-sticky consumer that never got an
 * assignment is closed (confluentinc/librdkafka#4312). The worker must
 * still exit 0 within its budget (it waits for the join, or leaves the
 * consumer open: nothing was consumed, nothing is to commit).
 */
static void test_sigterm_before_the_group_is_joined_exits_cleanly(void **state)
{
    struct uf_worker *w;
    int64_t t0;

    (void)state;
    /* JoinGroup succeeds (the protocol is chosen), SyncGroup keeps
     * failing: the consumer is in the group without an assignment. */
    assert_int_equal(hx_broker_control(env->broker,
                                       "errors SyncGroup 40 "
                                       "COORDINATOR_LOAD_IN_PROGRESS"),
                     0);
    w = uf_worker_start(
        env, "joining", "g-joining",
        (const char *const[]){"HERALD_SHUTDOWN_TIMEOUT_MS=6000", NULL});
    hx_sleep_ms(800);
    t0 = hx_now_ms();
    assert_int_equal(stop_worker(w, 15000), 0);
    assert_true(hx_now_ms() - t0 < 8000);
    uf_worker_free(w);
    assert_int_equal(hx_broker_control(env->broker, "clear-errors SyncGroup"),
                     0);
}

/* push.requested: one per recipient of each message, with the exact badge:
 * with messages only, each user's highest badge is their final total. */
struct push_seen {
    int count;
    int64_t badge[300];
};

static int collect_push(void *opaque, const rd_kafka_message_t *rkm)
{
    struct push_seen *seen = opaque;
    json_t *ev = json_loadb(rkm->payload, rkm->len, 0, NULL);
    json_t *data = json_object_get(ev, "data");
    const char *user = json_string_value(json_object_get(data, "user_id"));
    json_int_t badge = json_integer_value(json_object_get(data, "badge"));

    if (user && user[0] == 'u') {
        int u = (int)strtol(user + 1, NULL, 10);

        if (u >= 0 && u < 300 && badge > seen->badge[u])
            seen->badge[u] = badge;
        seen->count++;
    }
    json_decref(ev);
    return 0;
}

struct push_texts {
    int n;
    bool cut; /* every title <= 256 and body <= 1024 bytes, ending in "…" */
};

static int collect_texts(void *opaque, const rd_kafka_message_t *rkm)
{
    struct push_texts *t = opaque;
    json_t *ev = json_loadb(rkm->payload, rkm->len, 0, NULL); /* UTF-8 */
    json_t *data = json_object_get(ev, "data");
    const char *title = json_string_value(json_object_get(data, "title"));
    const char *body = json_string_value(json_object_get(data, "body"));
    size_t tl = title ? strlen(title) : 0, bl = body ? strlen(body) : 0;

    t->cut = (t->n == 0 || t->cut) && title && body && tl <= 256 && tl > 200 &&
             bl <= 1024 && bl > 1000 &&
             !strcmp(body + bl - 3, "\xe2\x80\xa6") &&
             !strcmp(title + tl - 3, "\xe2\x80\xa6");
    t->n++;
    json_decref(ev);
    return 0;
}

/* A preview of 900 KB (two-byte characters) and a long sender name: the
 * push.requested texts are cut at a character, with "…", so the event stays
 * small (a push carries 4 KB in all) and the producer never refuses it. */
static void test_push_texts_are_cut(void **state)
{
    const char *const props[] = {"message.max.bytes", "2000000", NULL};
    rd_kafka_t *rk =
        hx_producer_new_with(hx_broker_bootstraps(env->broker), props);
    size_t n = 450000;
    char *preview = malloc(2 * n + 1), *name = malloc(1001), *value;
    struct push_texts texts = {0};
    struct uf_worker *w;
    json_t *ev;

    (void)state;
    assert_non_null(rk);
    assert_true(preview && name);
    for (size_t i = 0; i < n; i++)
        memcpy(preview + 2 * i, "\xc3\xa9", 2); /* é */
    preview[2 * n] = '\0';
    memset(name, 'n', 1000);
    name[1000] = '\0';
    ev = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:[s,s], s:s, "
                   "s:s, s:s}}",
                   "specversion", "1.0", "id", "long-1", "source", "/chat",
                   "type", "message.created", "data", "conversation_id", "c1",
                   "message_id", "m1", "sender_id", "u0", "recipient_ids", "u1",
                   "u2", "sent_at", "2026-11-22T10:00:00Z", "sender_name", name,
                   "preview", preview);
    value = json_dumps(ev, JSON_COMPACT);
    assert_int_equal(
        hx_produce(rk, "pcut", "c1", 2, value, strlen(value), NULL), 0);
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);
    flush_redis();
    w = uf_worker_start(
        env, "pcut", "g-pcut",
        (const char *const[]){"HERALD_UNREAD_PUSH_TOPIC=pcut.push",
                              "HERALD_UNREAD_PUSH_TITLE={{sender_name}}",
                              "HERALD_UNREAD_PUSH_BODY={{preview}}", NULL});
    assert_int_equal(uf_wait_processed(w, 1, 60000), 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    assert_int_equal(hx_consume_all(hx_broker_bootstraps(env->broker),
                                    "pcut.push", 2000, 30000, collect_texts,
                                    &texts),
                     2);
    assert_int_equal(texts.n, 2);
    assert_true(texts.cut);
    assert_int_equal(topic_count("pcut.dlq"), 0);
    json_decref(ev);
    free(value);
    free(preview);
    free(name);
}

static void test_push_requests_carry_exact_badges(void **state)
{
    struct chat_opts o = {.seed = 7,
                          .users = 300,
                          .convs = 400,
                          .members = 3,
                          .messages = 3000,
                          .shuffle_window = 1,
                          .start_ms = 1795305600000LL};
    struct chat_scenario *s = chat_generate(&o);
    struct push_seen seen = {0};
    struct uf_worker *w;

    (void)state;
    flush_redis();
    uf_produce(env, s, "push", 0, chat_count(s));
    w = uf_worker_start(env, "push", "g-push",
                        (const char *const[]){"HERALD_UNREAD_PUSH_TOPIC="
                                              "push.push",
                                              NULL});
    assert_int_equal(uf_wait_exact(env, s, 120000), 0);
    assert_int_equal(uf_wait_processed(w, (double)chat_count(s), 30000), 0);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    assert_int_equal(hx_consume_all(hx_broker_bootstraps(env->broker),
                                    "push.push", 3000, 30000, collect_push,
                                    &seen),
                     3000 * 2);
    for (int u = 0; u < 300; u++)
        assert_int_equal(seen.badge[u], chat_expected_total(s, u, 999));
    chat_free(s);
}

/* Every herald_* metric a dashboard or alert rule uses must exist: each
 * name found in dashboards/ (histogram suffixes stripped) has a TYPE line
 * on /metrics. Returns the number of missing names. */
static int dashboard_metrics_missing(const char *metrics)
{
    /* the fleet dashboard and the alert rules span every worker: the
     * deploy/dead_panels test checks them against the whole fleet */
    static const char *const files[] = {"herald-unread.json"};
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    int missing = 0, seen = 0;

    for (size_t f = 0; f < HR_ARRAY_SIZE(files); f++) {
        char path[512], *text, *p;

        snprintf(path, sizeof(path), "%s/dashboards/%s", HX_SOURCE_DIR,
                 files[f]);
        text = hx_file_read(path, NULL);
        assert_non_null(text);
        for (p = text; (p = strstr(p, "herald_"));) {
            char name[128], type_line[160];
            size_t n = 0;

            while (n + 1 < sizeof(name) &&
                   ((p[n] >= 'a' && p[n] <= 'z') ||
                    (p[n] >= '0' && p[n] <= '9') || p[n] == '_')) {
                name[n] = p[n];
                n++;
            }
            name[n] = '\0';
            p += n;
            for (size_t k = 0; k < HR_ARRAY_SIZE(suffixes); k++) {
                size_t sl = strlen(suffixes[k]);

                if (n > sl && !strcmp(name + n - sl, suffixes[k]) &&
                    !strstr(name, "_total")) {
                    name[n - sl] = '\0';
                    break;
                }
            }
            snprintf(type_line, sizeof(type_line), "# TYPE %s ", name);
            seen++;
            if (!strstr(metrics, type_line)) {
                fprintf(stderr, "%s uses %s, which /metrics lacks\n", files[f],
                        name);
                missing++;
            }
        }
        free(text);
    }
    assert_true(seen > 10);
    return missing;
}

static bool has_lag(void *arg)
{
    char *text = uf_metrics_text(arg);
    bool found = text && strstr(text, "herald_consumer_lag{");

    free(text);
    return found;
}

/* 8. Every metric SPEC section 6 names, and every metric the dashboards
 *    and alert rules use, is on /metrics after a run. */
static void test_spec_metrics_are_exported(void **state)
{
    static const char *const names[] = {
        "herald_events_consumed_total{worker=\"unread\",topic=",
        "herald_events_processed_total{worker=\"unread\",outcome=\"ok\"}",
        "herald_events_processed_total{worker=\"unread\",outcome="
        "\"duplicate\"}",
        "herald_events_processed_total{worker=\"unread\",outcome=\"filtered\"}",
        "herald_events_processed_total{worker=\"unread\",outcome=\"retried\"}",
        "herald_events_processed_total{worker=\"unread\",outcome=\"dead_"
        "lettered\"}",
        "herald_event_processing_seconds_bucket{worker=\"unread\",le=",
        "herald_event_processing_seconds_count{worker=\"unread\"}",
        "herald_consumer_lag{worker=\"unread\",topic=",
        "herald_redis_errors_total{worker=\"unread\"}",
        "herald_source_errors_total{worker=\"unread\"}",
        "herald_build_info{worker=\"unread\",version=",
        "herald_unread_pairs_updated_total{worker=\"unread\"}",
    };
    struct chat_scenario *s = scenario(2000, 8);
    struct uf_worker *w;
    char *text;

    (void)state;
    flush_redis();
    uf_produce(env, s, "metrics", 0, chat_count(s));
    w = uf_worker_start(env, "metrics", "g-metrics",
                        (const char *const[]){"HERALD_KAFKA_STATS_INTERVAL_MS="
                                              "500",
                                              NULL});
    assert_int_equal(uf_wait_processed(w, (double)chat_count(s), 60000), 0);
    /* the lag gauge appears with the first statistics after a commit */
    assert_int_equal(hx_wait_until(has_lag, w, 30000), 0);
    text = uf_metrics_text(w);
    assert_non_null(text);
    for (size_t i = 0; i < (size_t)HR_ARRAY_SIZE(names); i++) {
        if (!strstr(text, names[i]))
            fprintf(stderr, "missing on /metrics: %s\n", names[i]);
        assert_non_null(strstr(text, names[i]));
    }
    assert_int_equal(dashboard_metrics_missing(text), 0);
    free(text);
    assert_int_equal(stop_worker(w, 15000), 0);
    uf_worker_free(w);
    chat_free(s);
}

static int group_setup(void **state)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync",
                                      "always", NULL};

    (void)state;
    env = uf_env_start(aof, TOPICS);
    if (!env) {
        fprintf(stderr, "redis-server or herald-devbroker unavailable\n");
        exit(77);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    uf_env_free(env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_counts_under_duplicates_and_reordering),
        cmocka_unit_test(test_kill_9_mid_stream_then_restart_is_exact),
        cmocka_unit_test(test_redis_outage_pauses_then_resumes_exactly),
        cmocka_unit_test(test_script_failure_midway_is_repaired_by_the_redo),
        cmocka_unit_test(test_long_key_prefix_is_used_whole),
        cmocka_unit_test(test_big_groups_are_split_into_bounded_calls),
        cmocka_unit_test(test_batch_bytes_bound_batches),
        cmocka_unit_test(test_broker_faults_keep_counts_exact),
        cmocka_unit_test(test_lost_outputs_redo_their_batch),
        cmocka_unit_test(test_malformed_input_is_dead_lettered_with_reason),
        cmocka_unit_test(test_sigterm_drains_and_restart_redoes_nothing),
        cmocka_unit_test(test_sigterm_before_the_group_is_joined_exits_cleanly),
        cmocka_unit_test(test_push_requests_carry_exact_badges),
        cmocka_unit_test(test_push_texts_are_cut),
        cmocka_unit_test(test_spec_metrics_are_exported),
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("herald-unread end to end", tests,
                                       group_setup, group_teardown);
}
