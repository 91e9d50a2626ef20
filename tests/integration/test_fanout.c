/*
 * herald-fanout end to end: the worker binary against herald-devbroker and
 * the fake HTTP server (tests/harness/fake_http.js), with rules files
 * written at test time (fixtures in tests/fixtures/fanout/e2e/):
 *
 * 1. routing of DynamoDB records and batches, Debezium events (with and
 *    without the envelope, c/u/d/r, tombstones) and CloudEvents (structured
 *    and binary) to the exact expected CloudEvents, deterministic ids;
 * 2. webhooks: JWT (HS256, RS256, ES256), bearer and no auth, and each
 *    failure class of SPEC section 7 with its retry or dead-letter record;
 * 3. malformed input of every kind: one dead letter each, then a good record
 *    is still routed;
 * 4. kill -9 mid-stream and restart: the same downstream ids, no new ones;
 * 5. the chat scenario as DynamoDB records through the example rules and
 *    herald-unread: Redis equals the model exactly;
 * 6. the shared circuit breaker (in Redis): 503s open a destination's
 *    circuit, further records are handed to herald.retry without a call
 *    ("circuit open", no attempt spent), a probe after the open time closes
 *    it; 401 three times in a row breaks it (dead letters, class auth);
 *    herald_guard_circuit_state shows it;
 * 7. a record redelivered on herald.redeliver.fanout calls only the webhooks
 *    its herald-destination names (last: every fanout worker reads that
 *    topic, whatever its group).
 *
 * Skipped (exit 77) when node or redis-server is not on PATH (herald-fanout
 * keeps its circuit state in Redis). HERALD_TEST_FILTER selects tests,
 * HERALD_TEST_KEEP keeps the temporary directory (rules files and worker
 * logs).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "harness.h"
#include "hr_compat.h"
#include "hr_event.h"
#include "hr_time.h"
#include "hx_fake_http.h"
#include "unread_fixture.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define TOPICS                                                        \
    "rt:4,rt.messages:4,rt.push:4,rt.audit:2,rt.orders:2,rt.users:4," \
    "rt.welcome:2,rt.retry:1,rt.dlq:1,"                               \
    "wh:4,"                                                           \
    "bad:1,bad.out:1,bad.retry:1,bad.dlq:1,"                          \
    "crash:8,crash.out:8,crash.retry:1,crash.dlq:1,"                  \
    "chat:8,chat.retry:1,chat.dlq:1,"                                 \
    "rd:2,rd.out:2,rd.retry:1,rd.dlq:1,"                              \
    "cb:2,cb.retry:1,cb.dlq:1"

#define HS_SECRET    "fanout-hs256-secret-of-32-bytes!"
#define BEARER_TOKEN "static-token-123"

static struct {
    struct hx_broker *broker;
    struct hx_fake_http *http;
    struct hx_redis *redis; /* the circuit breaker's state */
    char *dir;
} F;

/* ---- small helpers ------------------------------------------------------ */

static const char *brokers(void)
{
    return hx_broker_bootstraps(F.broker);
}

static int64_t topic_count(const char *topic)
{
    return hx_topic_count(brokers(), topic);
}

/* A file @name in the test's directory with @len bytes of @data; returns its
 * path (malloc'd). */
static char *write_file(const char *name, const char *data, size_t len)
{
    size_t plen = strlen(F.dir) + strlen(name) + 2;
    char *path = malloc(plen);
    FILE *f;

    assert_non_null(path);
    snprintf(path, plen, "%s/%s", F.dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static json_t *load_fixture(const char *rel)
{
    json_error_t err;
    json_t *fx = json_load_file(hx_fixture_path(rel), 0, &err);

    if (!fx)
        fprintf(stderr, "%s: %s (line %d)\n", hx_fixture_path(rel), err.text,
                err.line);
    assert_non_null(fx);
    return fx;
}

/* @text with every @from replaced by @to (malloc'd). */
static char *replace_all(const char *text, const char *from, const char *to)
{
    size_t flen = strlen(from), tlen = strlen(to), n = 0, len;
    const char *p;
    char *out, *o;

    for (p = text; (p = strstr(p, from)); p += flen)
        n++;
    len = strlen(text) + n * tlen + 1;
    out = malloc(len);
    assert_non_null(out);
    o = out;
    for (p = text;;) {
        const char *hit = strstr(p, from);
        size_t k = hit ? (size_t)(hit - p) : strlen(p);

        memcpy(o, p, k);
        o += k;
        if (!hit)
            break;
        memcpy(o, to, tlen);
        o += tlen;
        p = hit + flen;
    }
    *o = '\0';
    return out;
}

/* A fixture with @URL@ and @DIR@ filled in, written as @name; returns the
 * path (malloc'd). */
static char *write_template(const char *fixture, const char *name)
{
    char *text = hx_file_read(hx_fixture_path(fixture), NULL);
    char *a, *b, *path;

    assert_non_null(text);
    a = replace_all(text, "@URL@", hx_fake_http_url(F.http));
    b = replace_all(a, "@DIR@", F.dir);
    path = write_file(name, b, strlen(b));
    free(text);
    free(a);
    free(b);
    return path;
}

static char *write_json(const char *name, const json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2));
    char *path;

    assert_non_null(text);
    path = write_file(name, text, strlen(text));
    free(text);
    return path;
}

/* The id SPEC section 8 derives for one emitted event (37 bytes). */
static void derived_id(char out[37],
                       const char *change_id,
                       const char *rule,
                       int target,
                       int index)
{
    char t[16], i[16];
    const char *parts[4] = {change_id, rule, t, i};

    snprintf(t, sizeof(t), "%d", target);
    if (index < 0)
        snprintf(i, sizeof(i), "-");
    else
        snprintf(i, sizeof(i), "%d", index);
    hr_event_derive_id(out, parts, 4);
}

/* A DynamoDB Streams INSERT of @table with a flat image of string
 * attributes @attrs (name, value pairs, NULL-terminated); malloc'd. */
static char *
ddb_insert(const char *event_id, const char *table, const char *const *attrs)
{
    char image[2048];
    size_t used = 0;
    char *out;
    size_t len;

    image[0] = '\0';
    for (size_t i = 0; attrs[i] && attrs[i + 1]; i += 2)
        used += (size_t)snprintf(image + used, sizeof(image) - used,
                                 "%s\"%s\":{\"S\":\"%s\"}", i ? "," : "",
                                 attrs[i], attrs[i + 1]);
    len = strlen(image) * 2 + 512;
    out = malloc(len);
    assert_non_null(out);
    snprintf(out, len,
             "{\"eventID\":\"%s\",\"eventName\":\"INSERT\",\"eventVersion\":"
             "\"1.1\",\"eventSource\":\"aws:dynamodb\",\"awsRegion\":"
             "\"eu-west-1\",\"eventSourceARN\":\"arn:aws:dynamodb:eu-west-1:"
             "123456789012:table/%s/stream/2026-11-22T00:00:00.000\","
             "\"dynamodb\":{\"Keys\":{\"%s\":{\"S\":\"%s\"}},\"NewImage\":{%s},"
             "\"SequenceNumber\":\"1\",\"StreamViewType\":"
             "\"NEW_AND_OLD_IMAGES\"}}",
             event_id, table, attrs[0], attrs[1], image);
    return out;
}

/* ---- the worker --------------------------------------------------------- */

struct ff_worker {
    struct hx_proc *proc;
    int port;
    char log[512];
};

/*
 * Start herald-fanout --config @config consuming @topic in @group. With
 * @own_failure_topics, retries and dead letters go to <topic>.retry and
 * <topic>.dlq (else the defaults herald.retry and herald.dlq). @extra_env
 * may be NULL.
 */
static struct ff_worker *worker_start(const char *config,
                                      const char *topic,
                                      const char *group,
                                      bool own_failure_topics,
                                      const char *const *extra_env)
{
    static int seq;
    struct ff_worker *w = calloc(1, sizeof(*w));
    char vars[8][600];
    const char *envp[40];
    const char *argv[] = {hx_bin("herald-fanout"), "--config", config, NULL};
    int n = 0, nv = 5;

    assert_non_null(w);
    w->port = hx_free_port();
    snprintf(vars[0], sizeof(vars[0]), "HERALD_KAFKA_BROKERS=%s", brokers());
    snprintf(vars[1], sizeof(vars[1]), "HERALD_KAFKA_TOPICS=%s", topic);
    snprintf(vars[2], sizeof(vars[2]), "HERALD_KAFKA_GROUP=%s", group);
    snprintf(vars[3], sizeof(vars[3]), "HERALD_METRICS_ADDR=127.0.0.1:%d",
             w->port);
    snprintf(vars[4], sizeof(vars[4]), "HERALD_REDIS_URL=%s",
             hx_redis_url(F.redis));
    if (own_failure_topics) {
        snprintf(vars[5], sizeof(vars[5]), "HERALD_RETRY_TOPIC=%s.retry",
                 topic);
        snprintf(vars[6], sizeof(vars[6]), "HERALD_DLQ_TOPIC=%s.dlq", topic);
        nv = 7;
    }
    for (int i = 0; i < nv; i++)
        envp[n++] = vars[i];
    envp[n++] = "HERALD_LOG_LEVEL=info";
    envp[n++] = "HERALD_KAFKA_STATS_INTERVAL_MS=1000";
    envp[n++] = "HERALD_SHUTDOWN_TIMEOUT_MS=10000";
    /* The 2.0.2 mock cluster ignores a LeaveGroup when the next member
     * joins: a restart waits for the old member's session to time out. */
    envp[n++] = "HERALD_KAFKA_PROPERTIES=session.timeout.ms=6000;"
                "heartbeat.interval.ms=500";
    for (int i = 0; extra_env && extra_env[i] && n < 38; i++)
        envp[n++] = extra_env[i];
    envp[n] = NULL;
    snprintf(w->log, sizeof(w->log), "%s/fanout-%s-%d.log", F.dir, group,
             ++seq);
    w->proc = hx_proc_spawn(argv, envp, NULL, w->log);
    assert_non_null(w->proc);
    return w;
}

static void worker_free(struct ff_worker *w)
{
    if (!w)
        return;
    hx_proc_free(w->proc);
    free(w);
}

/* SIGTERM and wait: the exit status, or -1 on a timeout. */
static int worker_stop(struct ff_worker *w)
{
    int status = -1;

    hx_proc_signal(w->proc, SIGTERM);
    if (hx_proc_wait(w->proc, 15000, &status))
        return -1;
    return status;
}

static char *metrics_text(const struct ff_worker *w)
{
    return hx_metrics_get(w->port);
}

/* Sum of every series whose line starts with @prefix; -1 when /metrics is
 * unreachable. */
static double metric(const struct ff_worker *w, const char *prefix)
{
    return hx_metric(w->port, prefix);
}

static double outcome(const struct ff_worker *w, const char *name)
{
    char prefix[160];

    snprintf(prefix, sizeof(prefix),
             "herald_events_processed_total{worker=\"fanout\",outcome="
             "\"%s\"}",
             name);
    return metric(w, prefix);
}

struct consumed_arg {
    const struct ff_worker *w;
    char prefix[200];
    double n;
};

static bool has_consumed(void *p)
{
    struct consumed_arg *a = p;

    return metric(a->w, a->prefix) >= a->n;
}

/* Wait until the worker finished (durably) @n records of @topic. */
static int wait_consumed(const struct ff_worker *w,
                         const char *topic,
                         double n,
                         int timeout_ms)
{
    struct consumed_arg a = {.w = w, .n = n};

    snprintf(a.prefix, sizeof(a.prefix),
             "herald_events_consumed_total{worker=\"fanout\",topic=\"%s\"}",
             topic);
    if (hx_wait_until(has_consumed, &a, timeout_ms)) {
        fprintf(stderr, "worker consumed %g of %g records of %s (log %s)\n",
                metric(w, a.prefix), n, topic, w->log);
        return -1;
    }
    return 0;
}

/* ---- Kafka in and out --------------------------------------------------- */

/* A record as described in the fixtures: "key", "headers" (object of
 * strings), and "value" (compact JSON), "raw" (the string's bytes),
 * "latin1" (one byte per character) or "null_value". */
static void
produce_fixture_record(rd_kafka_t *rk, const char *topic, const json_t *rec)
{
    const char *key = json_string_value(json_object_get(rec, "key"));
    const json_t *hdrs = json_object_get(rec, "headers");
    const char *hv[32];
    const char *name;
    json_t *v;
    char *value = NULL;
    size_t len = 0, n = 0;

    json_object_foreach((json_t *)(uintptr_t)hdrs, name, v)
    {
        assert_true(n + 2 < HR_ARRAY_SIZE(hv));
        hv[n++] = name;
        hv[n++] = json_string_value(v);
    }
    hv[n] = NULL;
    if (json_object_get(rec, "value")) {
        value = json_dumps(json_object_get(rec, "value"),
                           JSON_COMPACT | JSON_ENCODE_ANY);
        len = strlen(value);
    } else if (json_object_get(rec, "raw")) {
        value = strdup(json_string_value(json_object_get(rec, "raw")));
        len = strlen(value);
    } else if (json_object_get(rec, "latin1")) {
        const unsigned char *s = (const unsigned char *)json_string_value(
            json_object_get(rec, "latin1"));

        value = malloc(strlen((const char *)s) + 1);
        assert_non_null(value);
        while (*s) {
            if (*s < 0x80) {
                value[len++] = (char)*s++;
            } else {
                /* two-byte UTF-8 sequences only: code points < 256 */
                assert_int_equal(*s & 0xe0, 0xc0);
                value[len++] = (char)(((s[0] & 0x1f) << 6) | (s[1] & 0x3f));
                s += 2;
            }
        }
    } else {
        assert_true(json_is_true(json_object_get(rec, "null_value")));
    }
    assert_int_equal(hx_produce(rk, topic, key, key ? strlen(key) : 0, value,
                                len, n ? hv : NULL),
                     0);
    free(value);
}

struct ff_msg {
    int32_t partition;
    int64_t offset;
    char *key;
    size_t key_len;
    char *value;
    size_t len;
    json_t *event;   /* the value parsed as JSON, or NULL */
    json_t *headers; /* name -> string (last value) */
    bool used;
};

struct ff_msgs {
    struct ff_msg *v;
    size_t n, cap;
};

static char *dup_bytes(const void *p, size_t len)
{
    char *out = malloc(len + 1);

    assert_non_null(out);
    if (len)
        memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

static int collect_cb(void *opaque, const rd_kafka_message_t *rkm)
{
    struct ff_msgs *msgs = opaque;
    rd_kafka_headers_t *hdrs = NULL;
    struct ff_msg *m;
    const char *name;
    const void *val;
    size_t vlen;

    if (msgs->n == msgs->cap) {
        msgs->cap = msgs->cap ? msgs->cap * 2 : 64;
        msgs->v = realloc(msgs->v, msgs->cap * sizeof(*msgs->v));
        assert_non_null(msgs->v);
    }
    m = &msgs->v[msgs->n++];
    memset(m, 0, sizeof(*m));
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    m->key = dup_bytes(rkm->key, rkm->key_len);
    m->key_len = rkm->key_len;
    m->value = dup_bytes(rkm->payload, rkm->len);
    m->len = rkm->len;
    m->event = json_loadb(m->value, m->len, JSON_DECODE_ANY, NULL);
    m->headers = json_object();
    if (!rd_kafka_message_headers(rkm, &hdrs)) {
        for (size_t i = 0;
             !rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen); i++)
            json_object_set_new(m->headers, name,
                                json_stringn(val ? val : "", vlen));
    }
    return 0;
}

/* Every message of @topic (its partitions in any order). */
static struct ff_msgs collect(const char *topic)
{
    struct ff_msgs msgs = {0};

    assert_true(
        hx_consume_all(brokers(), topic, 2000, 30000, collect_cb, &msgs) >= 0);
    return msgs;
}

static void msgs_free(struct ff_msgs *msgs)
{
    for (size_t i = 0; i < msgs->n; i++) {
        free(msgs->v[i].key);
        free(msgs->v[i].value);
        json_decref(msgs->v[i].event);
        json_decref(msgs->v[i].headers);
    }
    free(msgs->v);
    memset(msgs, 0, sizeof(*msgs));
}

static const char *header(const struct ff_msg *m, const char *name)
{
    return json_string_value(json_object_get(m->headers, name));
}

static const char *ev_str(const struct ff_msg *m, const char *field)
{
    return json_string_value(json_object_get(m->event, field));
}

/* ---- 1. routing --------------------------------------------------------- */

/* Whether @m is the CloudEvent @exp describes (apart from "twin" ids). */
static bool event_matches(const struct ff_msg *m, const json_t *exp)
{
    const char *rule = json_string_value(json_object_get(exp, "rule"));
    const json_t *subject = json_object_get(exp, "subject");
    const json_t *idparts = json_object_get(exp, "id");
    char source[200];

    snprintf(source, sizeof(source), "/herald/fanout/%s", rule);
    if (!m->event ||
        strcmp(m->key, json_string_value(json_object_get(exp, "key"))) ||
        strcmp(ev_str(m, "type") ?: "",
               json_string_value(json_object_get(exp, "type"))) ||
        strcmp(ev_str(m, "source") ?: "", source) ||
        strcmp(ev_str(m, "specversion") ?: "", "1.0") ||
        strcmp(ev_str(m, "datacontenttype") ?: "", "application/json") ||
        !ev_str(m, "time") ||
        !json_equal(json_object_get(m->event, "data"),
                    json_object_get(exp, "data")))
        return false;
    if (json_is_null(subject)
            ? json_object_get(m->event, "subject") != NULL
            : !json_equal(json_object_get(m->event, "subject"), subject))
        return false;
    if (idparts) {
        const char *parts[4];
        char id[37];

        for (size_t i = 0; i < 4; i++)
            parts[i] = json_string_value(json_array_get(idparts, i));
        hr_event_derive_id(id, parts, 4);
        if (strcmp(ev_str(m, "id") ?: "", id))
            return false;
    }
    return true;
}

static void test_routing_of_every_format(void **state)
{
    json_t *fx = load_fixture("fanout/e2e/routing.json");
    json_t *records = json_object_get(fx, "records");
    json_t *expected = json_object_get(fx, "events");
    json_t *twins = json_object(), *seen_ids = json_object();
    json_t *per_topic = json_object();
    char *config =
        write_json("routing-rules.json", json_object_get(fx, "rules"));
    rd_kafka_t *rk = hx_producer_new(brokers());
    struct ff_worker *w;
    const char *key;
    json_t *v;
    size_t i;

    (void)state;
    json_array_foreach(records, i, v) produce_fixture_record(rk, "rt", v);
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);

    w = worker_start(config, "rt", "g-rt", true, NULL);
    assert_int_equal(
        wait_consumed(w, "rt", (double)json_array_size(records), 60000), 0);

    /* outcomes, tombstones, per-rule routing counts */
    json_object_foreach(json_object_get(fx, "outcomes"), key, v)
    {
        if (outcome(w, key) != (double)json_integer_value(v))
            fprintf(stderr, "outcome %s: %g, expected %lld\n", key,
                    outcome(w, key), (long long)json_integer_value(v));
        assert_true(outcome(w, key) == (double)json_integer_value(v));
    }
    assert_true(metric(w, "herald_fanout_tombstones_total{") ==
                (double)json_integer_value(json_object_get(fx, "tombstones")));
    json_object_foreach(json_object_get(fx, "routed"), key, v)
    {
        char prefix[256];
        const char *bar = strchr(key, '|');

        snprintf(prefix, sizeof(prefix),
                 "herald_fanout_routed_total{worker=\"fanout\",rule=\"%.*s\","
                 "target=\"%s\"}",
                 (int)(bar - key), key, bar + 1);
        if (metric(w, prefix) != (double)json_integer_value(v))
            fprintf(stderr, "%s %g, expected %lld\n", prefix, metric(w, prefix),
                    (long long)json_integer_value(v));
        assert_true(metric(w, prefix) == (double)json_integer_value(v));
    }
    assert_int_equal(worker_stop(w), 0);
    worker_free(w);
    assert_int_equal(topic_count("rt.dlq"), 0);
    assert_int_equal(topic_count("rt.retry"), 0);

    /* every expected event, exactly, on its topic */
    json_array_foreach(expected, i, v)
    {
        const char *topic = json_string_value(json_object_get(v, "topic"));
        json_int_t n = json_integer_value(json_object_get(per_topic, topic));

        json_object_set_new(per_topic, topic, json_integer(n + 1));
    }
    json_object_foreach(per_topic, key, v)
    {
        struct ff_msgs got = collect(key);
        size_t e;
        json_t *exp;

        if (got.n != (size_t)json_integer_value(v)) {
            fprintf(stderr, "%s: %zu events, expected %lld\n", key, got.n,
                    (long long)json_integer_value(v));
            for (size_t k = 0; k < got.n; k++)
                fprintf(stderr, "  key %s: %s\n", got.v[k].key, got.v[k].value);
        }
        assert_int_equal(got.n, (size_t)json_integer_value(v));
        json_array_foreach(expected, e, exp)
        {
            const char *twin = json_string_value(json_object_get(exp, "twin"));
            const char *id, *prev;
            size_t k;

            if (strcmp(json_string_value(json_object_get(exp, "topic")), key))
                continue;
            for (k = 0; k < got.n; k++) {
                if (!got.v[k].used && event_matches(&got.v[k], exp))
                    break;
            }
            if (k == got.n) {
                char *s = json_dumps(exp, JSON_COMPACT);

                fprintf(stderr, "not found on %s: %s\nthere:\n", key, s);
                for (k = 0; k < got.n; k++)
                    fprintf(stderr, "  key %s: %s\n", got.v[k].key,
                            got.v[k].value);
                free(s);
                fail();
            }
            got.v[k].used = true;
            id = ev_str(&got.v[k], "id");
            prev =
                twin ? json_string_value(json_object_get(twins, twin)) : NULL;
            assert_non_null(id);
            if (prev) {
                /* the same change twice: the same id */
                assert_string_equal(prev, id);
            } else {
                /* a different event: a different id */
                assert_null(json_object_get(seen_ids, id));
                json_object_set_new(seen_ids, id, json_true());
                if (twin)
                    json_object_set_new(twins, twin, json_string(id));
            }
        }
        msgs_free(&got);
    }
    json_decref(per_topic);
    json_decref(twins);
    json_decref(seen_ids);
    json_decref(fx);
    free(config);
}

/* ---- 2. webhooks -------------------------------------------------------- */

static json_t *requests_of(const char *path)
{
    json_t *reqs = hx_fake_http_requests(F.http, path);

    assert_non_null(reqs);
    return reqs;
}

static const char *req_header(const json_t *req, const char *name)
{
    return json_string_value(
        json_object_get(json_object_get(req, "headers"), name));
}

/* The one request @path received, checked for method, content type,
 * Idempotency-Key and (when @jwt_ok) a verified token; a new reference. */
static json_t *one_request(const char *path,
                           const char *method,
                           const char *change_id,
                           const char *rule,
                           bool jwt_ok)
{
    json_t *reqs = requests_of(path), *req;
    const json_t *jwt;
    char id[37];

    if (json_array_size(reqs) != 1)
        fprintf(stderr, "%s: %zu requests\n", path, json_array_size(reqs));
    assert_int_equal(json_array_size(reqs), 1);
    req = json_incref(json_array_get(reqs, 0));
    json_decref(reqs);
    assert_string_equal(json_string_value(json_object_get(req, "method")),
                        method);
    assert_string_equal(req_header(req, "content-type"), "application/json");
    derived_id(id, change_id, rule, 0, -1);
    assert_string_equal(req_header(req, "idempotency-key"), id);
    jwt = json_object_get(req, "jwt");
    if (jwt_ok) {
        if (!json_is_true(json_object_get(jwt, "ok")))
            fprintf(stderr, "%s: jwt refused: %s\n", path,
                    json_string_value(json_object_get(jwt, "error")));
        assert_true(json_is_true(json_object_get(jwt, "ok")));
        assert_int_equal(json_integer_value(json_object_get(req, "status")),
                         200);
    }
    return req;
}

static const char *claim(const json_t *req, const char *name)
{
    return json_string_value(json_object_get(
        json_object_get(json_object_get(req, "jwt"), "claims"), name));
}

static json_int_t claim_int(const json_t *req, const char *name)
{
    return json_integer_value(json_object_get(
        json_object_get(json_object_get(req, "jwt"), "claims"), name));
}

/* The failure record of change @change_id on @msgs (NULL if none), and how
 * many there are. */
static const struct ff_msg *
failure_of(const struct ff_msgs *msgs, const char *change_id, int *count)
{
    const struct ff_msg *found = NULL;

    *count = 0;
    for (size_t i = 0; i < msgs->n; i++) {
        if (msgs->v[i].event &&
            !strcmp(ev_str(&msgs->v[i], "eventID") ?: "", change_id)) {
            found = &msgs->v[i];
            (*count)++;
        }
    }
    return found;
}

/* SPEC section 7 headers of a retry or dead-letter record of input @in. */
static void check_failure(const struct ff_msg *f,
                          const struct ff_msg *in,
                          const char *webhook,
                          const char *cls,
                          const char *error_part,
                          int64_t t0)
{
    char num[32], dest[64];
    long long first;

    assert_non_null(f);
    assert_int_equal(f->key_len, in->key_len);
    assert_memory_equal(f->key, in->key, in->key_len);
    assert_int_equal(f->len, in->len);
    assert_memory_equal(f->value, in->value, in->len);
    assert_string_equal(header(f, "herald-origin-topic"), "wh");
    snprintf(num, sizeof(num), "%d", (int)in->partition);
    assert_string_equal(header(f, "herald-origin-partition"), num);
    snprintf(num, sizeof(num), "%lld", (long long)in->offset);
    assert_string_equal(header(f, "herald-origin-offset"), num);
    assert_string_equal(header(f, "herald-worker"), "fanout");
    snprintf(dest, sizeof(dest), "webhook:%s", webhook);
    assert_string_equal(header(f, "herald-destination"), dest);
    assert_string_equal(header(f, "herald-attempt"), "1");
    assert_non_null(header(f, "herald-first-failure-ms"));
    first = strtoll(header(f, "herald-first-failure-ms"), NULL, 10);
    assert_true(first >= t0 - 1000 && first <= t0 + 600000);
    assert_string_equal(header(f, "herald-error-class"), cls);
    assert_non_null(header(f, "herald-error"));
    if (!strstr(header(f, "herald-error"), error_part))
        fprintf(stderr, "herald-error '%s' lacks '%s'\n",
                header(f, "herald-error"), error_part);
    assert_non_null(strstr(header(f, "herald-error"), error_part));
}

static void test_webhooks_auth_and_failure_classes(void **state)
{
    static const char *const tables[] = {"HS",       "RS",     "ES",   "Bearer",
                                         "None",     "Unauth", "Down", "Slow",
                                         "Throttle", "Reject"};
    char *rsa_priv = NULL, *rsa_pub = NULL, *ec_priv = NULL, *ec_pub = NULL;
    char *rsa_path, *ec_path, *config;
    const char *env[] = {"FF_HS_SECRET=" HS_SECRET,
                         "FF_BEARER_TOKEN=" BEARER_TOKEN, NULL};
    rd_kafka_t *rk;
    struct ff_worker *w;
    struct ff_msgs in, retries, dead;
    json_t *routes, *req;
    int64_t t0 = hr_time_now_ms();
    int count;

    (void)state;
    assert_int_equal(hx_fake_http_reset(F.http), 0);
    assert_int_equal(hx_keypair_pem("RSA", &rsa_priv, &rsa_pub), 0);
    assert_int_equal(hx_keypair_pem("EC", &ec_priv, &ec_pub), 0);
    rsa_path = write_file("rsa.pem", rsa_priv, strlen(rsa_priv));
    ec_path = write_file("ec.pem", ec_priv, strlen(ec_priv));
    routes = json_pack(
        "[{s:s, s:{s:s, s:s, s:s, s:s}},"    /* hs */
        " {s:s, s:{s:s, s:s, s:s, s:s}},"    /* rs */
        " {s:s, s:{s:s, s:s, s:s, s:s}},"    /* es */
        " {s:s}, {s:s},"                     /* bearer, none */
        " {s:s, s:{s:s, s:s, s:s}},"         /* unauth: another secret */
        " {s:s, s:i}, {s:s, s:i},"           /* down, slow */
        " {s:s, s:i, s:{s:s}}, {s:s, s:i}]", /* throttle, reject */
        "path", "/hs", "jwt", "alg", "HS256", "secret", HS_SECRET, "iss",
        "herald", "aud", "hs-api", "path", "/rs", "jwt", "alg", "RS256", "key",
        rsa_pub, "iss", "herald-rs", "aud", "rs-api", "path", "/es", "jwt",
        "alg", "ES256", "key", ec_pub, "iss", "herald", "aud", "es-api", "path",
        "/bearer", "path", "/none", "path", "/unauth", "jwt", "alg", "HS256",
        "secret", "not-the-secret-the-worker-has!!!", "aud", "unauth-api",
        "path", "/down", "status", 503, "path", "/slow", "delay_ms", 3000,
        "path", "/throttle", "status", 429, "headers", "Retry-After", "5",
        "path", "/reject", "status", 422);
    assert_non_null(routes);
    assert_int_equal(hx_fake_http_route_json(F.http, routes), 0);
    json_decref(routes);
    config = write_template("fanout/e2e/webhooks.json", "webhooks.json");

    rk = hx_producer_new(brokers());
    for (size_t i = 0; i < HR_ARRAY_SIZE(tables); i++) {
        char id[64], user[64], *v;
        const char *attrs[] = {"id", id, "user_id", user, NULL};

        snprintf(id, sizeof(id), "wh-%s", tables[i]);
        snprintf(user, sizeof(user), "u-%s", tables[i]);
        v = ddb_insert(id, tables[i], attrs);
        assert_int_equal(hx_produce(rk, "wh", tables[i], strlen(tables[i]), v,
                                    strlen(v), NULL),
                         0);
        free(v);
    }
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);

    w = worker_start(config, "wh", "g-wh", false, env);
    assert_int_equal(wait_consumed(w, "wh", HR_ARRAY_SIZE(tables), 60000), 0);
    assert_true(outcome(w, "ok") == 5);
    assert_true(outcome(w, "retried") == 3);
    assert_true(outcome(w, "dead_lettered") == 2);
    assert_true(metric(w, "herald_fanout_webhook_auth_failures_total{worker="
                          "\"fanout\",webhook=\"unauth\"}") == 1);
    assert_true(metric(w, "herald_fanout_webhook_auth_failures_total{") == 1);
    assert_true(metric(w, "herald_fanout_routed_total{worker=\"fanout\","
                          "rule=\"to-hs\",target=\"webhook:hs\"}") == 1);
    assert_int_equal(worker_stop(w), 0);
    worker_free(w);

    /* HS256: the body asked for, and the claims of the config */
    req = one_request("/hs", "POST", "wh-HS", "to-hs", true);
    assert_string_equal(claim(req, "iss"), "herald");
    assert_string_equal(claim(req, "aud"), "hs-api");
    assert_int_equal(claim_int(req, "exp") - claim_int(req, "iat"), 120);
    assert_non_null(claim(req, "jti"));
    {
        json_t *body = json_loads(
            json_string_value(json_object_get(req, "body")), 0, NULL);
        json_t *want = json_pack("{s:s, s:s, s:s}", "id", "wh-HS", "user",
                                 "u-HS", "kind", "hs");

        assert_true(json_equal(body, want));
        json_decref(body);
        json_decref(want);
    }
    json_decref(req);

    /* RS256 with PUT and sub; the default body is the change document */
    req = one_request("/rs", "PUT", "wh-RS", "to-rs", true);
    assert_string_equal(claim(req, "iss"), "herald-rs");
    assert_string_equal(claim(req, "aud"), "rs-api");
    assert_string_equal(claim(req, "sub"), "fanout");
    assert_int_equal(claim_int(req, "exp") - claim_int(req, "iat"), 300);
    {
        json_t *doc = json_loads(
            json_string_value(json_object_get(req, "body")), 0, NULL);

        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "id")),
                            "wh-RS");
        assert_string_equal(json_string_value(json_object_get(doc, "op")),
                            "insert");
        assert_string_equal(json_string_value(json_object_get(doc, "table")),
                            "RS");
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(doc, "new"), "user_id")),
                            "u-RS");
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(doc, "source"), "format")),
                            "dynamodb");
        json_decref(doc);
    }
    json_decref(req);

    /* ES256 */
    req = one_request("/es", "POST", "wh-ES", "to-es", true);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(req, "jwt"), "header"), "alg")),
        "ES256");
    assert_string_equal(claim(req, "aud"), "es-api");
    json_decref(req);

    /* bearer and none */
    req = one_request("/bearer", "POST", "wh-Bearer", "to-bearer", false);
    assert_string_equal(req_header(req, "authorization"),
                        "Bearer " BEARER_TOKEN);
    assert_string_equal(req_header(req, "x-tenant"), "acme");
    assert_int_equal(json_integer_value(json_object_get(req, "status")), 200);
    json_decref(req);
    req = one_request("/none", "POST", "wh-None", "to-none", false);
    assert_null(req_header(req, "authorization"));
    assert_int_equal(json_integer_value(json_object_get(req, "status")), 200);
    json_decref(req);

    /* the failures reached the server once each */
    req = one_request("/unauth", "POST", "wh-Unauth", "to-unauth", false);
    assert_false(
        json_is_true(json_object_get(json_object_get(req, "jwt"), "ok")));
    assert_int_equal(json_integer_value(json_object_get(req, "status")), 401);
    json_decref(req);
    json_decref(one_request("/down", "POST", "wh-Down", "to-down", false));
    json_decref(one_request("/slow", "POST", "wh-Slow", "to-slow", false));
    json_decref(
        one_request("/throttle", "POST", "wh-Throttle", "to-throttle", false));
    json_decref(
        one_request("/reject", "POST", "wh-Reject", "to-reject", false));

    /* retry and dead-letter records */
    in = collect("wh");
    retries = collect("herald.retry");
    dead = collect("herald.dlq");
    assert_int_equal(in.n, HR_ARRAY_SIZE(tables));
    assert_int_equal(retries.n, 3);
    assert_int_equal(dead.n, 2);
    {
        const struct ff_msg *orig;

        /* 401: exactly one dead letter, never a retry */
        orig = failure_of(&in, "wh-Unauth", &count);
        check_failure(failure_of(&dead, "wh-Unauth", &count), orig, "unauth",
                      "auth", "HTTP 401", t0);
        assert_int_equal(count, 1);
        assert_null(failure_of(&retries, "wh-Unauth", &count));
        /* 422: dead letter, permanent */
        orig = failure_of(&in, "wh-Reject", &count);
        check_failure(failure_of(&dead, "wh-Reject", &count), orig, "reject",
                      "permanent", "HTTP 422", t0);
        /* 503: retry, transient */
        orig = failure_of(&in, "wh-Down", &count);
        check_failure(failure_of(&retries, "wh-Down", &count), orig, "down",
                      "transient", "HTTP 503", t0);
        assert_null(header(failure_of(&retries, "wh-Down", &count),
                           "herald-retry-after-ms"));
        /* timeout: retry, transient */
        orig = failure_of(&in, "wh-Slow", &count);
        check_failure(failure_of(&retries, "wh-Slow", &count), orig, "slow",
                      "transient", "timed out", t0);
        /* 429 with Retry-After: 5 */
        orig = failure_of(&in, "wh-Throttle", &count);
        check_failure(failure_of(&retries, "wh-Throttle", &count), orig,
                      "throttle", "throttled", "HTTP 429", t0);
        assert_string_equal(header(failure_of(&retries, "wh-Throttle", &count),
                                   "herald-retry-after-ms"),
                            "5000");
    }
    msgs_free(&in);
    msgs_free(&retries);
    msgs_free(&dead);
    free(rsa_priv);
    free(rsa_pub);
    free(ec_priv);
    free(ec_pub);
    free(rsa_path);
    free(ec_path);
    free(config);
}

/* ---- 3. malformed input ------------------------------------------------- */

/* A DynamoDB INSERT into @table whose new image holds the list "ids" of
 * @n numbers and the string "text" of @text_len bytes (caller frees). */
static char *big_record(const char *table, size_t n, size_t text_len)
{
    json_t *ids = json_array(), *rec;
    char *text = malloc(text_len + 1), *out;

    assert_non_null(text);
    memset(text, 'x', text_len);
    text[text_len] = '\0';
    for (size_t i = 0; i < n; i++)
        json_array_append_new(ids, json_pack("{s:s}", "N", "7"));
    rec = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:{s:{s:s}}, s:{s:{s:s}, s:{s:o}, s:{s:s}}}}",
        "eventID", table, "eventName", "INSERT", "eventSource", "aws:dynamodb",
        "eventSourceARN",
        table[0] == 'F' ? "arn:aws:dynamodb:eu-west-1:1:table/Fan/stream/x"
                        : "arn:aws:dynamodb:eu-west-1:1:table/Whole/stream/x",
        "dynamodb", "Keys", "id", "S", table, "NewImage", "id", "S", table,
        "ids", "L", ids, "text", "S", text);
    out = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    free(text);
    return out;
}

static void test_malformed_input_is_dead_lettered(void **state)
{
    json_t *fx = load_fixture("fanout/e2e/malformed.json");
    json_t *records = json_object_get(fx, "records"), *rec, *rules;
    /* Records that parse but cannot be routed, after the oversized one: a
     * for_each over too many elements, a for_each whose events (each the
     * whole document) add up to too much, and an event too large to
     * produce. */
    const char *unroutable[][2] = {
        {"Fan-long", "for_each over 10001 elements"},
        {"Fan-wide", "the record's events add up to more than"},
        {"Whole", "more than the producer's message.max.bytes"},
    };
    const size_t sizes[][2] = {{10001, 10}, {5000, 40000}, {1, 1020000}};
    /* invalid JSON of 400 KB with a header of 700 KB: the dead letter as
     * such would pass the producer's limit */
    size_t junk_len = 400000, tag_len = 700000;
    char *junk = malloc(junk_len + 1), *tag = malloc(tag_len + 1);
    char *config;
    const char *big_props[] = {"message.max.bytes", "4000000", NULL};
    rd_kafka_t *rk = hx_producer_new_with(brokers(), big_props);
    size_t huge_len = 1200000, i,
           nbad = json_array_size(records) + 1 + HR_ARRAY_SIZE(unroutable) + 1;
    char *huge = malloc(huge_len), *good;
    struct ff_msgs dead, out;
    struct ff_worker *w;
    char id[37];

    (void)state;
    rules = json_object_get(json_object_get(fx, "rules"), "rules");
    json_array_append_new(
        rules,
        json_loads("{\"name\": \"fan\", \"match\": {\"table\": \"Fan\"}, "
                   "\"emit\": [{\"topic\": \"bad.out\", \"type\": \"fan\", "
                   "\"for_each\": \"$.new.ids\"}]}",
                   0, NULL));
    json_array_append_new(
        rules, json_loads("{\"name\": \"whole\", \"match\": {\"table\": "
                          "\"Whole\"}, \"emit\": [{\"topic\": \"bad.out\", "
                          "\"type\": \"whole\", \"data\": \"$\"}]}",
                          0, NULL));
    config = write_json("malformed-rules.json", json_object_get(fx, "rules"));
    assert_non_null(huge);
    /* a valid DynamoDB record, only too large */
    memset(huge, ' ', huge_len);
    memcpy(huge, "{\"eventID\":\"huge\"", 17);
    huge[huge_len - 1] = '}';
    json_array_foreach(records, i, rec)
    {
        json_object_set_new(rec, "key", json_string("same-partition"));
        produce_fixture_record(rk, "bad", rec);
    }
    assert_int_equal(
        hx_produce(rk, "bad", "same-partition", 14, huge, huge_len, NULL), 0);
    for (i = 0; i < HR_ARRAY_SIZE(unroutable); i++) {
        char *v = big_record(unroutable[i][0], sizes[i][0], sizes[i][1]);

        assert_int_equal(
            hx_produce(rk, "bad", "same-partition", 14, v, strlen(v), NULL), 0);
        free(v);
    }
    assert_true(junk && tag);
    memset(junk, '#', junk_len);
    junk[junk_len] = '\0';
    memset(tag, 't', tag_len);
    tag[tag_len] = '\0';
    assert_int_equal(hx_produce(rk, "bad", "same-partition", 14, junk, junk_len,
                                (const char *const[]){"x-tag", tag, NULL}),
                     0);
    free(junk);
    free(tag);
    good = json_dumps(json_object_get(fx, "good"), JSON_COMPACT);
    assert_int_equal(
        hx_produce(rk, "bad", "same-partition", 14, good, strlen(good), NULL),
        0);
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);
    free(huge);

    w = worker_start(config, "bad", "g-bad", true, NULL);
    assert_int_equal(wait_consumed(w, "bad", (double)nbad + 1, 60000), 0);
    assert_true(outcome(w, "dead_lettered") == (double)nbad);
    assert_true(outcome(w, "ok") == 1);
    assert_true(hx_proc_is_running(w->proc));
    assert_int_equal(worker_stop(w), 0);
    worker_free(w);

    /* one dead letter each, in input order (one partition), with reasons */
    dead = collect("bad.dlq");
    for (i = 0; i < dead.n; i++)
        fprintf(stderr, "  dead letter: [%s] %s\n",
                header(&dead.v[i], "herald-error-class"),
                header(&dead.v[i], "herald-error"));
    assert_int_equal(dead.n, nbad);
    for (i = 0; i < nbad; i++) {
        const struct ff_msg *d = &dead.v[i];
        size_t nfx = json_array_size(records);
        const char *reason =
            i < nfx ? json_string_value(
                          json_object_get(json_array_get(records, i), "reason"))
            : i == nfx ? json_string_value(json_object_get(fx, "huge_reason"))
            : i + 1 < nbad ? unroutable[i - nfx - 1][1]
                           : "invalid json";

        assert_string_equal(header(d, "herald-error-class"), "poison");
        assert_string_equal(header(d, "herald-worker"), "fanout");
        assert_string_equal(header(d, "herald-origin-topic"), "bad");
        assert_string_equal(header(d, "herald-destination"), "fanout");
        assert_string_equal(d->key, "same-partition");
        if (!strstr(header(d, "herald-error"), reason))
            fprintf(stderr, "dead letter %zu: '%s' lacks '%s'\n", i,
                    header(d, "herald-error"), reason);
        assert_non_null(strstr(header(d, "herald-error"), reason));
    }
    /* the oversized value is kept in part, and says so */
    assert_string_equal(
        header(&dead.v[json_array_size(records)], "herald-value-truncated"),
        "1200000");
    /* the one with the oversized header keeps neither it nor its value */
    assert_string_equal(header(&dead.v[nbad - 1], "herald-value-truncated"),
                        "400000");
    assert_null(header(&dead.v[nbad - 1], "x-tag"));
    msgs_free(&dead);

    /* the good record after all of them was routed */
    out = collect("bad.out");
    assert_int_equal(out.n, 1);
    derived_id(id, "good-1", "good", 0, -1);
    assert_string_equal(ev_str(&out.v[0], "id"), id);
    assert_string_equal(ev_str(&out.v[0], "type"), "good.changed");
    assert_string_equal(out.v[0].key, "k-good");
    msgs_free(&out);
    assert_int_equal(topic_count("bad.retry"), 0);
    free(good);
    free(config);
    json_decref(fx);
}

/* ---- 4. kill -9 and restart: the same ids ------------------------------- */

#define CRASH_RECORDS 15000

static int collect_ids(void *opaque, const rd_kafka_message_t *rkm)
{
    json_t *ids = opaque;
    json_t *ev = json_loadb(rkm->payload, rkm->len, 0, NULL);
    const char *id = json_string_value(json_object_get(ev, "id"));
    json_t *n;

    if (!id) {
        fprintf(stderr, "not an event: %.*s\n", (int)rkm->len,
                (const char *)rkm->payload);
        id = "(none)";
    }
    n = json_object_get(ids, id);
    json_object_set_new(ids, id, json_integer(json_integer_value(n) + 1));
    json_decref(ev);
    return 0;
}

struct done_arg {
    const struct ff_worker *w;
    int64_t want;
};

/* Outputs complete, and the restarted worker has no lag left. */
static bool crash_done(void *p)
{
    struct done_arg *a = p;
    char *text;
    bool lag_known;

    if (topic_count("crash.out") < a->want)
        return false;
    text = metrics_text(a->w);
    lag_known = text && strstr(text, "herald_consumer_lag{worker=\"fanout\","
                                     "topic=\"crash\"");
    free(text);
    return lag_known &&
           metric(a->w,
                  "herald_consumer_lag{worker=\"fanout\",topic=\"crash\"") == 0;
}

static void test_kill_9_and_restart_yields_the_same_ids(void **state)
{
    static const char rules[] =
        "{\"rules\": [{\"name\": \"crash\", \"match\": {\"table\": "
        "\"Messages\", \"op\": \"insert\"}, \"emit\": ["
        "{\"topic\": \"crash.out\", \"type\": \"message.created\", "
        "\"key\": \"$.new.conversation_id\", \"data\": \"$.new\"},"
        "{\"topic\": \"crash.out\", \"type\": \"push.requested\", "
        "\"for_each\": \"$.new.recipient_ids\", \"key\": \"$.item\", "
        "\"data\": {\"user_id\": \"$.item\", \"i\": \"$.index\"}}]}]}";
    const char *const batch_env[] = {"HERALD_BATCH_MAX=100", NULL};
    char *config = write_file("crash-rules.json", rules, strlen(rules));
    rd_kafka_t *rk = hx_producer_new(brokers());
    json_t *want = json_object(), *got = json_object(), *v;
    struct done_arg done;
    struct ff_worker *w;
    const char *id;
    long long dups = 0;
    int64_t expected = 0;

    (void)state;
    for (int i = 0; i < CRASH_RECORDS; i++) {
        char eid[32], conv[16], value[1024], idbuf[37], recips[128];
        int nr = 1 + i % 3;

        /* one to three recipients: u<i % 50>, then ux1, ux2 */
        snprintf(recips, sizeof(recips), "{\"S\":\"u%d\"}%s%s", i % 50,
                 nr > 1 ? ",{\"S\":\"ux1\"}" : "",
                 nr > 2 ? ",{\"S\":\"ux2\"}" : "");

        snprintf(eid, sizeof(eid), "cr-%d", i);
        snprintf(conv, sizeof(conv), "c%d", i % 97);
        snprintf(value, sizeof(value),
                 "{\"eventID\":\"%s\",\"eventName\":\"INSERT\",\"eventSource\":"
                 "\"aws:dynamodb\",\"eventSourceARN\":\"arn:aws:dynamodb:"
                 "eu-west-1:123456789012:table/Messages/stream/"
                 "2026-11-22T00:00:00.000\",\"dynamodb\":{\"Keys\":{"
                 "\"conversation_id\":{\"S\":\"%s\"},\"message_id\":{\"S\":"
                 "\"m%d\"}},\"NewImage\":{\"conversation_id\":{\"S\":\"%s\"},"
                 "\"message_id\":{\"S\":\"m%d\"},\"recipient_ids\":{\"L\":["
                 "%s]}},\"SequenceNumber\":\"%d\"}}",
                 eid, conv, i, conv, i, recips, i);
        assert_int_equal(hx_produce(rk, "crash", conv, strlen(conv), value,
                                    strlen(value), NULL),
                         0);
        derived_id(idbuf, eid, "crash", 0, -1);
        json_object_set_new(want, idbuf, json_true());
        for (int k = 0; k < nr; k++) {
            derived_id(idbuf, eid, "crash", 1, k);
            json_object_set_new(want, idbuf, json_true());
        }
        expected += 1 + nr;
    }
    assert_int_equal(hx_producer_flush_free(rk, 60000), 0);
    assert_int_equal((int64_t)json_object_size(want), expected);

    w = worker_start(config, "crash", "g-crash", true, batch_env);
    assert_int_equal(wait_consumed(w, "crash", 1000, 60000), 0);
    hx_proc_signal(w->proc, SIGKILL);
    assert_int_equal(hx_proc_wait(w->proc, 5000, NULL), 0);
    fprintf(stderr, "killed mid-stream: %lld of %lld events out\n",
            (long long)topic_count("crash.out"), (long long)expected);
    assert_true(topic_count("crash.out") < expected); /* mid-stream */
    worker_free(w);

    w = worker_start(config, "crash", "g-crash", true, NULL);
    done.w = w;
    done.want = expected;
    if (hx_wait_until(crash_done, &done, 90000))
        fprintf(
            stderr, "restart did not finish: %lld of %lld events (log %s)\n",
            (long long)topic_count("crash.out"), (long long)expected, w->log);
    assert_int_equal(worker_stop(w), 0);
    worker_free(w);

    assert_true(hx_consume_all(brokers(), "crash.out", 2000, 60000, collect_ids,
                               got) >= expected);
    json_object_foreach(got, id, v)
    {
        if (!json_object_get(want, id))
            fprintf(stderr, "new id on crash.out: %s\n", id);
        assert_non_null(json_object_get(want, id));
        dups += json_integer_value(v) - 1;
    }
    fprintf(stderr, "%zu distinct ids of %lld expected, %lld duplicates\n",
            json_object_size(got), (long long)expected, dups);
    assert_int_equal((int64_t)json_object_size(got), expected);
    assert_int_equal(topic_count("crash.dlq"), 0);
    assert_int_equal(topic_count("crash.retry"), 0);
    json_decref(want);
    json_decref(got);
    free(config);
}

/* ---- 5. the chat scenario through the example rules and herald-unread --- */

static void test_chat_scenario_end_to_end_with_example_rules(void **state)
{
    struct chat_opts o = {
        .seed = 21,
        .users = 200,
        .convs = 300,
        .members = 3,
        .messages = 4000,
        .read_ratio = 0.35,
        .dup_ratio = 0.10,
        .shuffle_window = 32,
        .start_ms = 1795305600000LL,
        .dynamodb = 1,
    };
    const char *const fanout_env[] = {"LEGACY_JWT_SECRET=" HS_SECRET,
                                      "TRUST_SAFETY_TOKEN=test-token", NULL};
    struct hx_redis *redis = hx_redis_start(NULL);
    struct uf_env uenv;
    struct chat_scenario *s;
    struct ff_worker *w;
    struct uf_worker *unread;
    rd_kafka_t *rk;

    (void)state;
    if (!redis) {
        fprintf(stderr, "redis-server unavailable: skipped\n");
        skip();
    }
    uenv.redis = redis;
    uenv.broker = F.broker;
    uenv.dir = F.dir;
    s = chat_generate(&o);
    rk = hx_producer_new(brokers());
    for (size_t i = 0; i < chat_count(s); i++) {
        const struct chat_event *ev = chat_event_at(s, i);

        assert_int_equal(hx_produce(rk, "chat", ev->key, strlen(ev->key),
                                    ev->value, ev->len, NULL),
                         0);
    }
    assert_int_equal(hx_producer_flush_free(rk, 60000), 0);

    w = worker_start(HX_SOURCE_DIR "/workers/fanout/examples/chat-rules.json",
                     "chat", "g-chat", true, fanout_env);
    unread = uf_worker_start(&uenv, "herald.messages", "g-chat-unread", NULL);
    assert_non_null(unread);
    assert_int_equal(uf_wait_exact(&uenv, s, 120000), 0);
    assert_int_equal(wait_consumed(w, "chat", (double)chat_count(s), 30000), 0);
    assert_true(outcome(w, "ok") == (double)chat_count(s));
    assert_int_equal(topic_count("chat.dlq"), 0);
    assert_int_equal(topic_count("chat.retry"), 0);
    assert_int_equal(worker_stop(w), 0);
    worker_free(w);
    hx_proc_signal(unread->proc, SIGTERM);
    assert_int_equal(hx_proc_wait(unread->proc, 15000, NULL), 0);
    uf_worker_free(unread);
    assert_int_equal(topic_count("herald.messages.dlq"), 0);
    hx_redis_free(redis);
    chat_free(s);
}

/* ---- 6. the shared circuit breaker -------------------------------------- */

#define CB_OPEN_MS 5000

static size_t requests_count(const char *path)
{
    json_t *reqs = requests_of(path);
    size_t n = json_array_size(reqs);

    json_decref(reqs);
    return n;
}

static void
produce_changes(const char *table, const char *prefix, int from, int to)
{
    rd_kafka_t *rk = hx_producer_new(brokers());

    for (int i = from; i < to; i++) {
        char id[64], *v;
        const char *attrs[] = {"id", id, NULL};

        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        v = ddb_insert(id, table, attrs);
        assert_int_equal(
            hx_produce(rk, "cb", id, strlen(id), v, strlen(v), NULL), 0);
        free(v);
    }
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);
}

static double circuit_gauge(const struct ff_worker *w, const char *dest)
{
    char prefix[200];

    snprintf(prefix, sizeof(prefix),
             "herald_guard_circuit_state{worker=\"fanout\","
             "destination=\"%s\"}",
             dest);
    return metric(w, prefix);
}

/* How many of @msgs are the failure of a change whose id starts with
 * @prefix and carry herald-error @error (exactly) and class @cls. */
static int count_failures(const struct ff_msgs *msgs,
                          const char *prefix,
                          const char *dest,
                          const char *cls,
                          const char *error)
{
    int n = 0;

    for (size_t i = 0; i < msgs->n; i++) {
        const struct ff_msg *m = &msgs->v[i];
        const char *id = m->event ? ev_str(m, "eventID") : NULL;

        if (!id || strncmp(id, prefix, strlen(prefix)) ||
            strcmp(header(m, "herald-destination") ?: "", dest) ||
            strcmp(header(m, "herald-error-class") ?: "", cls) ||
            strcmp(header(m, "herald-error") ?: "", error))
            continue;
        /* the circuit spends no attempt: the input's (none: 1) is kept */
        assert_string_equal(header(m, "herald-attempt"), "1");
        n++;
    }
    return n;
}

static void test_circuit_opens_probes_closes_and_auth_breaks(void **state)
{
    static const char rules[] =
        "{\"rules\": ["
        "{\"name\": \"to-down\", \"match\": {\"table\": \"CbDown\"},"
        " \"emit\": [{\"webhook\": \"cbdown\"}]},"
        "{\"name\": \"to-auth\", \"match\": {\"table\": \"CbAuth\"},"
        " \"emit\": [{\"webhook\": \"cbauth\"}]},"
        "{\"name\": \"to-ok\", \"match\": {\"table\": \"CbOk\"},"
        " \"emit\": [{\"webhook\": \"cbok\"}]}],"
        " \"webhooks\": {\"cbdown\": {\"url\": \"%s/cb-down\"},"
        " \"cbauth\": {\"url\": \"%s/cb-auth\"},"
        " \"cbok\": {\"url\": \"%s/cb-ok\"}}}";
    const char *const env[] = {"HERALD_GUARD_CIRCUIT_MIN_CALLS=5",
                               "HERALD_GUARD_CIRCUIT_FAILURE_RATIO=0.5",
                               "HERALD_GUARD_CIRCUIT_OPEN_MS=5000", NULL};
    char text[1024], *config;
    struct ff_worker *w;
    struct ff_msgs retries, dead;
    int64_t opened;

    (void)state;
    assert_int_equal(hx_fake_http_reset(F.http), 0);
    assert_int_equal(hx_fake_http_route(F.http, "[{\"path\":\"/cb-down\","
                                                "\"status\":503},"
                                                "{\"path\":\"/cb-auth\","
                                                "\"status\":401}]"),
                     0);
    snprintf(text, sizeof(text), rules, hx_fake_http_url(F.http),
             hx_fake_http_url(F.http), hx_fake_http_url(F.http));
    config = write_file("circuit.json", text, strlen(text));
    w = worker_start(config, "cb", "g-cb", true, env);

    /* 5 calls, all 503: min_calls with ratio 1 opens the circuit */
    produce_changes("CbDown", "cbd", 0, 5);
    assert_int_equal(wait_consumed(w, "cb", 5, 60000), 0);
    opened = hr_time_mono_ms();
    assert_int_equal(requests_count("/cb-down"), 5);
    assert_true(circuit_gauge(w, "webhook:cbdown") == 2);

    /* open: not called, handed to the guard without spending an attempt */
    produce_changes("CbDown", "cbd", 5, 8);
    assert_int_equal(wait_consumed(w, "cb", 8, 60000), 0);
    /* (a slower machine would have let a probe through: not a bug) */
    if (hr_time_mono_ms() - opened < CB_OPEN_MS - 1000)
        assert_int_equal(requests_count("/cb-down"), 5);
    assert_true(outcome(w, "retried") == 8);

    /* after open_ms a probe goes through; its success closes the circuit */
    assert_int_equal(hx_fake_http_route(F.http, "{\"path\":\"/cb-down\"}"), 0);
    while (hr_time_mono_ms() - opened < CB_OPEN_MS + 200)
        hx_sleep_ms(100);
    produce_changes("CbDown", "cbp", 0, 1);
    assert_int_equal(wait_consumed(w, "cb", 9, 60000), 0);
    assert_true(circuit_gauge(w, "webhook:cbdown") == 0);
    produce_changes("CbDown", "cbc", 0, 3);
    assert_int_equal(wait_consumed(w, "cb", 12, 60000), 0);
    assert_true(outcome(w, "ok") == 4);
    assert_true(circuit_gauge(w, "webhook:cbdown") == 0);

    /* 401 three times in a row: auth-broken, no more calls */
    produce_changes("CbAuth", "cba", 0, 3);
    assert_int_equal(wait_consumed(w, "cb", 15, 60000), 0);
    opened = hr_time_mono_ms();
    assert_int_equal(requests_count("/cb-auth"), 3);
    assert_true(circuit_gauge(w, "webhook:cbauth") == 2);
    produce_changes("CbAuth", "cbb", 0, 2);
    assert_int_equal(wait_consumed(w, "cb", 17, 60000), 0);
    if (hr_time_mono_ms() - opened < CB_OPEN_MS - 1000)
        assert_int_equal(requests_count("/cb-auth"), 3);
    assert_true(outcome(w, "dead_lettered") == 5);
    assert_true(metric(w, "herald_fanout_webhook_auth_failures_total{worker="
                          "\"fanout\",webhook=\"cbauth\"}") == 3);

    /* Redis down: the batch pauses before any call (own-state outage),
     * then goes on once Redis is back, calling the webhook once */
    assert_int_equal(hx_redis_stop_server(F.redis), 0);
    produce_changes("CbOk", "cbo", 0, 1);
    hx_sleep_ms(3000);
    assert_int_equal(requests_count("/cb-ok"), 0);
    assert_true(metric(w, "herald_events_consumed_total{worker=\"fanout\","
                          "topic=\"cb\"}") == 17);
    assert_int_equal(hx_redis_restart_server(F.redis), 0);
    assert_int_equal(wait_consumed(w, "cb", 18, 60000), 0);
    assert_int_equal(requests_count("/cb-ok"), 1);
    assert_true(outcome(w, "ok") == 5);
    assert_true(metric(w, "herald_redis_errors_total{") >= 1);
    assert_int_equal(worker_stop(w), 0);
    worker_free(w);

    /* the failure records */
    retries = collect("cb.retry");
    assert_int_equal(retries.n, 8);
    assert_int_equal(count_failures(&retries, "cbd-", "webhook:cbdown",
                                    "transient", "webhook 'cbdown': HTTP 503"),
                     5);
    assert_int_equal(count_failures(&retries, "cbd-", "webhook:cbdown",
                                    "transient", "circuit open"),
                     3);
    for (size_t i = 0; i < retries.n; i++) {
        if (!strcmp(header(&retries.v[i], "herald-error") ?: "",
                    "circuit open"))
            assert_string_equal(
                header(&retries.v[i], "herald-retry-after-ms") ?: "", "5000");
    }
    msgs_free(&retries);
    dead = collect("cb.dlq");
    assert_int_equal(dead.n, 5);
    assert_int_equal(count_failures(&dead, "cba-", "webhook:cbauth", "auth",
                                    "webhook 'cbauth': HTTP 401"),
                     3);
    assert_int_equal(count_failures(&dead, "cbb-", "webhook:cbauth", "auth",
                                    "webhook 'cbauth': circuit open (auth "
                                    "broken)"),
                     2);
    msgs_free(&dead);
    free(config);
}

/* ---- 7. redelivery calls only the named webhooks ------------------------ */

static int cmp_key(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The sorted Idempotency-Keys @path received, joined with spaces. */
static void keys_of(const char *path, char *out, size_t size)
{
    json_t *reqs = requests_of(path), *req;
    char keys[8][40];
    size_t n = 0, i, used = 0;

    json_array_foreach(reqs, i, req)
    {
        assert_true(n < 8);
        snprintf(keys[n++], sizeof(keys[0]), "%s",
                 req_header(req, "idempotency-key") ?: "-");
    }
    json_decref(reqs);
    qsort(keys, n, sizeof(keys[0]), cmp_key);
    out[0] = '\0';
    for (i = 0; i < n; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? " " : "",
                                 keys[i]);
}

static void
expect_keys(const char *path, const char *a, int ta, const char *b, int tb)
{
    char ida[37], idb[37], want[100], got[400];

    derived_id(ida, a, "redeliver", ta, -1);
    derived_id(idb, b, "redeliver", tb, -1);
    if (strcmp(ida, idb) < 0)
        snprintf(want, sizeof(want), "%s %s", ida, idb);
    else
        snprintf(want, sizeof(want), "%s %s", idb, ida);
    keys_of(path, got, sizeof(got));
    assert_string_equal(got, want);
}

static void test_redelivery_calls_only_the_named_webhooks(void **state)
{
    const char *const guard_headers_b[] = {"herald-origin-topic",
                                           "rd",
                                           "herald-origin-partition",
                                           "0",
                                           "herald-origin-offset",
                                           "0",
                                           "herald-worker",
                                           "fanout",
                                           "herald-attempt",
                                           "2",
                                           "herald-destination",
                                           "webhook:rd_b",
                                           NULL};
    const char *const guard_headers_ac[] = {"herald-worker",
                                            "fanout",
                                            "herald-attempt",
                                            "3",
                                            "herald-destination",
                                            "webhook:rd_a,webhook:rd_c",
                                            NULL};
    const char *const attrs0[] = {"id", "k0", NULL};
    const char *const attrs1[] = {"id", "k1", NULL};
    const char *const attrs2[] = {"id", "k2", NULL};
    char *config, *v0, *v1, *v2, id[37];
    rd_kafka_t *rk;
    struct ff_worker *w;
    struct ff_msgs out;

    (void)state;
    assert_int_equal(hx_fake_http_reset(F.http), 0);
    assert_int_equal(hx_fake_http_route(F.http, "[{\"path\":\"/rd-a\"},"
                                                "{\"path\":\"/rd-b\"},"
                                                "{\"path\":\"/rd-c\"}]"),
                     0);
    config = write_template("fanout/e2e/redeliver.json", "redeliver.json");
    v0 = ddb_insert("rd-0", "Redeliver", attrs0);
    v1 = ddb_insert("rd-1", "Redeliver", attrs1);
    v2 = ddb_insert("rd-2", "Redeliver", attrs2);
    rk = hx_producer_new(brokers());
    /* the first delivery: every target */
    assert_int_equal(hx_produce(rk, "rd", "k0", 2, v0, strlen(v0), NULL), 0);
    /* redeliveries from the guard: only the webhooks that failed */
    assert_int_equal(hx_produce(rk, "herald.redeliver.fanout", "k1", 2, v1,
                                strlen(v1), guard_headers_b),
                     0);
    assert_int_equal(hx_produce(rk, "herald.redeliver.fanout", "k2", 2, v2,
                                strlen(v2), guard_headers_ac),
                     0);
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);

    w = worker_start(config, "rd", "g-rd", true, NULL);
    assert_int_equal(wait_consumed(w, "rd", 1, 60000), 0);
    assert_int_equal(wait_consumed(w, "herald.redeliver.fanout", 2, 60000), 0);
    assert_true(outcome(w, "ok") == 3);
    assert_int_equal(worker_stop(w), 0);
    worker_free(w);

    /* the topic target only for the first delivery */
    out = collect("rd.out");
    assert_int_equal(out.n, 1);
    derived_id(id, "rd-0", "redeliver", 0, -1);
    assert_string_equal(ev_str(&out.v[0], "id"), id);
    msgs_free(&out);
    /* each webhook: the first delivery and the redelivery naming it */
    expect_keys("/rd-a", "rd-0", 1, "rd-2", 1);
    expect_keys("/rd-b", "rd-0", 2, "rd-1", 2);
    expect_keys("/rd-c", "rd-0", 3, "rd-2", 3);
    assert_int_equal(topic_count("rd.retry"), 0);
    assert_int_equal(topic_count("rd.dlq"), 0);
    free(v0);
    free(v1);
    free(v2);
    free(config);
}

/* ---- main --------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (!hx_node_available()) {
        fprintf(stderr, "node is not on PATH: skipped\n");
        exit(HX_SKIP);
    }
    F.broker = hx_broker_start(TOPICS, 4);
    if (!F.broker) {
        fprintf(stderr, "herald-devbroker did not start\n");
        return -1;
    }
    F.redis = hx_redis_start(NULL);
    if (!F.redis) {
        fprintf(stderr, "redis-server unavailable (herald-fanout needs it "
                        "for the circuit breaker): skipped\n");
        exit(HX_SKIP);
    }
    F.http = hx_fake_http_start(NULL);
    F.dir = hx_tmpdir_new("fanout");
    return F.http && F.dir ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    hx_fake_http_free(F.http);
    hx_redis_free(F.redis);
    hx_broker_free(F.broker);
    hx_tmpdir_done(F.dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_of_every_format),
        cmocka_unit_test(test_webhooks_auth_and_failure_classes),
        cmocka_unit_test(test_malformed_input_is_dead_lettered),
        cmocka_unit_test(test_kill_9_and_restart_yields_the_same_ids),
        cmocka_unit_test(test_chat_scenario_end_to_end_with_example_rules),
        cmocka_unit_test(test_circuit_opens_probes_closes_and_auth_breaks),
        /* last: every fanout worker reads herald.redeliver.fanout */
        cmocka_unit_test(test_redelivery_calls_only_the_named_webhooks),
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("herald-fanout end to end", tests,
                                       group_setup, group_teardown);
}
