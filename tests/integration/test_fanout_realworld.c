/*
 * The real-world samples of tests/fixtures/fanout/realworld (issue 19: the
 * ecosystems' own sample events, listed with their origin in SOURCE.md)
 * fed one by one through a real herald-fanout on herald-devbroker, with one
 * catch-all rule per format, and each one's outcome checked against its
 * <name>.expected.json:
 *
 * - "routed": the events on the output topic, in order (one partition in,
 *   one out), carry the change documents whose listed fields ("new.id",
 *   "source.arn", "<absent>" for a missing member) have the given values,
 *   with the id derived from the change id; no two changes share an id
 *   (DynamoDB records and CloudEvents excepted: their id is the producer's
 *   eventID or source + id, and the SDKs' fixtures reuse those);
 * - "skipped": counted in herald_fanout_skipped_total{kind};
 * - "dead": one dead letter, class poison, whose herald-error holds the
 *   reason and which kept the record's value, key and headers.
 *
 * <name>.key is the record's Kafka key, <name>.headers.json its headers;
 * an empty <name>.null instead of <name>.json makes the record value null
 * (a tombstone), which also counts in herald_fanout_tombstones_total.
 * Skipped (exit 77) when redis-server is not on PATH.
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
#include <jansson.h>

#include "harness.h"
#include "hr_compat.h"
#include "hr_event.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define REALWORLD "fanout/realworld"
#define TOPIC     "rw"
#define MAX_FILES 128

static struct {
    struct hx_broker *broker;
    struct hx_redis *redis;
    char *dir;
} F;

struct msg {
    char *key;
    size_t key_len;
    char *value;
    size_t len;
    json_t *event;
    json_t *headers;
};

struct msgs {
    struct msg *v;
    size_t n, cap;
};

/* ---- helpers -------------------------------------------------------------
 */

static const char *outcome_of(const struct hx_sample *s)
{
    return json_string_value(json_object_get(s->expected, "outcome"));
}

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
    struct msgs *msgs = opaque;
    rd_kafka_headers_t *hdrs = NULL;
    const char *name;
    const void *val;
    size_t vlen;
    struct msg *m;

    if (msgs->n == msgs->cap) {
        msgs->cap = msgs->cap ? msgs->cap * 2 : 64;
        msgs->v = realloc(msgs->v, msgs->cap * sizeof(*msgs->v));
        assert_non_null(msgs->v);
    }
    m = &msgs->v[msgs->n++];
    m->key = dup_bytes(rkm->key, rkm->key_len);
    m->key_len = rkm->key_len;
    m->value = dup_bytes(rkm->payload, rkm->len);
    m->len = rkm->len;
    m->event = json_loadb(m->value, m->len, 0, NULL);
    m->headers = json_object();
    if (!rd_kafka_message_headers(rkm, &hdrs)) {
        for (size_t i = 0;
             !rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen); i++)
            json_object_set_new(m->headers, name,
                                json_stringn(val ? val : "", vlen));
    }
    return 0;
}

static struct msgs collect(const char *topic)
{
    struct msgs msgs = {0};

    assert_true(hx_consume_all(hx_broker_bootstraps(F.broker), topic, 2000,
                               30000, collect_cb, &msgs) >= 0);
    return msgs;
}

static void msgs_free(struct msgs *msgs)
{
    for (size_t i = 0; i < msgs->n; i++) {
        free(msgs->v[i].key);
        free(msgs->v[i].value);
        json_decref(msgs->v[i].event);
        json_decref(msgs->v[i].headers);
    }
    free(msgs->v);
}

static const char *header(const struct msg *m, const char *name)
{
    return json_string_value(json_object_get(m->headers, name));
}

/* The series @name{worker="fanout",@label="@value"} on @port. */
static double
metric(int port, const char *name, const char *label, const char *value)
{
    char prefix[256];

    snprintf(prefix, sizeof(prefix), "%s{worker=\"fanout\",%s=\"%s\"}", name,
             label, value);
    return hx_metric(port, prefix);
}

struct consumed_arg {
    int port;
    double n;
};

static bool all_consumed(void *p)
{
    const struct consumed_arg *a = p;

    return hx_metric(a->port, "herald_events_consumed_total{worker=\"fanout\","
                              "topic=\"" TOPIC "\"}") >= a->n;
}

static const char RULES[] =
    "{\"rules\": ["
    "{\"name\": \"all-dynamodb\", \"match\": {\"pattern\": {\"source\": "
    "{\"format\": [\"dynamodb\"]}}}, \"emit\": [{\"topic\": \"" TOPIC
    ".out\", \"data\": \"$\"}]},"
    "{\"name\": \"all-debezium\", \"match\": {\"pattern\": {\"source\": "
    "{\"format\": [\"debezium\"]}}}, \"emit\": [{\"topic\": \"" TOPIC
    ".out\", \"data\": \"$\"}]},"
    "{\"name\": \"all-cloudevents\", \"match\": {\"pattern\": {\"source\": "
    "{\"format\": [\"cloudevents\"]}}}, \"emit\": [{\"topic\": \"" TOPIC
    ".out\", \"data\": \"$\"}]}]}";

/* ---- the test ------------------------------------------------------------
 */

static void test_every_sample_has_its_outcome(void **state)
{
    static struct hx_sample s[MAX_FILES];
    size_t n = hx_samples_load(REALWORLD, s, MAX_FILES), next = 0, nrouted = 0,
           ndead = 0, nskipped = 0, ndocs = 0, shared = 0;
    char config[600], log[600], env_config[700];
    const char *extra[] = {env_config, "HERALD_LOG_LEVEL=info", NULL};
    json_t *kinds = json_object(), *ids = json_object(), *v;
    rd_kafka_t *rk = hx_producer_new(hx_broker_bootstraps(F.broker));
    struct consumed_arg ca = {.n = (double)n};
    struct msgs out, dead;
    struct hx_proc *w;
    const char *kind;
    int port, status = -1;
    FILE *f;

    (void)state;
    assert_true(n >= 41);
    snprintf(config, sizeof(config), "%s/rules.json", F.dir);
    f = fopen(config, "w");
    assert_non_null(f);
    assert_int_equal(fputs(RULES, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    snprintf(env_config, sizeof(env_config), "HERALD_CONFIG=%s", config);
    snprintf(log, sizeof(log), "%s/fanout.log", F.dir);

    /* every sample as one record, in name order, with its key and headers
     * and an x-fixture header that names it */
    for (size_t i = 0; i < n; i++) {
        const char *hv[34];
        const char *hname;
        size_t nh = 0;

        json_object_foreach(s[i].headers, hname, v)
        {
            assert_true(nh + 4 < HR_ARRAY_SIZE(hv));
            hv[nh++] = hname;
            hv[nh++] = json_string_value(v);
        }
        hv[nh++] = "x-fixture";
        hv[nh++] = s[i].name;
        hv[nh] = NULL;
        assert_int_equal(hx_produce(rk, TOPIC, s[i].key, s[i].key_len,
                                    s[i].value, s[i].len, hv),
                         0);
    }
    assert_int_equal(hx_producer_flush_free(rk, 30000), 0);

    w = hx_worker_spawn("fanout", F.broker, F.redis, TOPIC, extra, log, &port);
    assert_non_null(w);
    ca.port = port;
    if (hx_wait_until(all_consumed, &ca, 60000))
        fail_msg("the worker did not finish %zu records (log %s)", n, log);

    /* metrics: outcomes and skipped kinds */
    for (size_t i = 0; i < n; i++) {
        const char *o = outcome_of(&s[i]);

        if (!strcmp(o, "routed")) {
            nrouted++;
        } else if (!strcmp(o, "dead")) {
            ndead++;
        } else {
            const char *k =
                json_string_value(json_object_get(s[i].expected, "kind"));

            assert_string_equal(o, "skipped");
            if (!k)
                fail_msg("%s: a skipped sample names its kind", s[i].name);
            nskipped++;
            json_object_set_new(
                kinds, k,
                json_integer(json_integer_value(json_object_get(kinds, k)) +
                             1));
        }
    }
    json_object_foreach(kinds, kind, v)
    {
        double got = metric(port, "herald_fanout_skipped_total", "kind", kind);

        if (got != (double)json_integer_value(v))
            fail_msg("skipped kind %s: %g, want %lld", kind, got,
                     (long long)json_integer_value(v));
    }
    assert_true(hx_metric(port, "herald_fanout_tombstones_total{") ==
                json_number_value(json_object_get(kinds, "tombstone")));
    assert_true(metric(port, "herald_events_processed_total", "outcome",
                       "ok") == (double)nrouted);
    assert_true(metric(port, "herald_events_processed_total", "outcome",
                       "dead_lettered") == (double)ndead);
    assert_true(metric(port, "herald_events_processed_total", "outcome",
                       "filtered") == (double)nskipped);
    hx_proc_signal(w, SIGTERM);
    assert_int_equal(hx_proc_wait(w, 15000, &status), 0);
    assert_int_equal(status, 0);
    hx_proc_free(w);
    assert_int_equal(
        hx_topic_count(hx_broker_bootstraps(F.broker), TOPIC ".retry"), 0);

    /* routed: the events in order, the documents' fields */
    out = collect(TOPIC ".out");
    dead = collect(TOPIC ".dlq");
    for (size_t i = 0; i < n; i++) {
        const json_t *docs = json_object_get(s[i].expected, "docs");
        const json_t *want;
        size_t d;

        if (strcmp(outcome_of(&s[i]), "routed"))
            continue;
        json_array_foreach(docs, d, want)
        {
            const struct msg *m;
            json_t *doc, *prev;
            const char *id, *format, *rule;
            char rule_name[64], derived[37];

            if (next >= out.n)
                fail_msg("%s doc %zu: no event (%zu in all)", s[i].name, d,
                         out.n);
            m = &out.v[next++];
            doc = json_object_get(m->event, "data");
            id = json_string_value(json_object_get(doc, "id"));
            format = json_string_value(hx_json_at(doc, "source.format"));
            if (!id || !format)
                fail_msg("%s doc %zu: not a change document: %s", s[i].name, d,
                         m->value);
            hx_check_fields(s[i].name, d, doc, want);
            /* the event: the catch-all rule of its format, the key and the
             * id SPEC section 8 derives from the change id */
            snprintf(rule_name, sizeof(rule_name), "all-%s", format);
            rule = rule_name;
            hr_event_derive_id(derived, (const char *[]){id, rule, "0", "-"},
                               4);
            assert_string_equal(
                json_string_value(json_object_get(m->event, "id")), derived);
            assert_string_equal(m->key, id);
            /* two changes never share an id (DynamoDB: the eventID;
             * CloudEvents: source + id, which the SDKs' fixtures reuse and
             * which by CloudEvents section 3.1.1 makes them one event) */
            prev = json_object_get(ids, id);
            if (prev) {
                if (!strcmp(format, "debezium") ||
                    strcmp(json_string_value(prev), format))
                    fail_msg("%s doc %zu: id %s is taken", s[i].name, d, id);
                shared++;
            } else {
                json_object_set_new(ids, id, json_string(format));
            }
            ndocs++;
        }
    }
    if (next != out.n)
        fail_msg("%zu events, %zu expected", out.n, next);

    /* dead-lettered: one each, with the reason, the value, the key and the
     * headers */
    assert_int_equal(dead.n, ndead);
    for (size_t i = 0; i < n; i++) {
        const char *reason =
            json_string_value(json_object_get(s[i].expected, "reason"));
        const struct msg *m = NULL;
        const char *hname;

        if (strcmp(outcome_of(&s[i]), "dead"))
            continue;
        for (size_t k = 0; k < dead.n && !m; k++) {
            if (!strcmp(header(&dead.v[k], "x-fixture") ?: "", s[i].name))
                m = &dead.v[k];
        }
        if (!m)
            fail_msg("%s: no dead letter", s[i].name);
        assert_string_equal(header(m, "herald-error-class"), "poison");
        if (!strstr(header(m, "herald-error") ?: "", reason))
            fail_msg("%s: herald-error '%s' lacks '%s'", s[i].name,
                     header(m, "herald-error"), reason);
        assert_int_equal(m->len, s[i].len);
        assert_memory_equal(m->value, s[i].value, s[i].len);
        assert_int_equal(m->key_len, s[i].key ? s[i].key_len : 0);
        if (s[i].key)
            assert_memory_equal(m->key, s[i].key, s[i].key_len);
        json_object_foreach(s[i].headers, hname, v)
        {
            assert_string_equal(header(m, hname), json_string_value(v));
        }
    }
    fprintf(stderr,
            "%zu samples: %zu routed (%zu changes, %zu DynamoDB eventIDs or "
            "CloudEvents source+id seen twice), %zu skipped, %zu "
            "dead-lettered\n",
            n, nrouted, ndocs, shared, nskipped, ndead);
    msgs_free(&out);
    msgs_free(&dead);
    json_decref(kinds);
    json_decref(ids);
    hx_samples_free(s, n);
}

static int group_setup(void **state)
{
    (void)state;
    F.redis = hx_redis_start(NULL);
    if (!F.redis) {
        fprintf(stderr, "redis-server unavailable (herald-fanout needs it "
                        "for the circuit breaker): skipped\n");
        exit(HX_SKIP);
    }
    F.broker = hx_broker_start(
        TOPIC ":1," TOPIC ".out:1," TOPIC ".retry:1," TOPIC ".dlq:1", 1);
    F.dir = hx_tmpdir_new("fanout-realworld");
    return F.broker && F.dir ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    hx_redis_free(F.redis);
    hx_broker_free(F.broker);
    hx_tmpdir_done(F.dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_sample_has_its_outcome),
    };

    return cmocka_run_group_tests_name("herald-fanout real-world samples",
                                       tests, group_setup, group_teardown);
}
