/*
 * herald-push end to end: the worker binary against a real redis-server,
 * herald-devbroker and tests/node/fake_push.js (APNs, FCM and Web Push over
 * HTTP/2 with TLS), the keys and the CA made at test time
 * (push_fixture.h).
 *
 * Skipped (exit 77) when node or redis-server is missing.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "harness.h"
#include "hr_circuit.h"
#include "hr_event.h"
#include "hx_fake_http.h"
#include "push_fixture.h"

#define TOPICS                                                           \
    "p-basic:2,p-basic.devices:2,p-basic.retry:1,p-basic.dlq:1,"         \
    "p-answers:2,p-answers.devices:2,p-answers.retry:1,p-answers.dlq:1," \
    "p-dup:2,p-dup.devices:2,p-dup.retry:1,p-dup.dlq:1,"                 \
    "p-crash:4,p-crash.devices:2,p-crash.retry:1,p-crash.dlq:1,"         \
    "p-tokens:4,p-tokens.devices:2,p-tokens.retry:1,p-tokens.dlq:1,"     \
    "p-reg:2,p-reg.devices:2,p-reg.retry:1,p-reg.dlq:1,"                 \
    "herald.changes:4,herald.messages:4,herald.push:4,herald.devices:4," \
    "herald.unread:4,herald.email:1,herald.retry:1,herald.dlq:1"

static struct pf_env *env;

static int64_t topic_count(const char *topic)
{
    return hx_topic_count(hx_broker_bootstraps(env->broker), topic);
}

static redisReply *redis_cmd(const char *fmt, ...)
{
    redisContext *c = hx_redis_connect(env->redis);
    redisReply *r;
    va_list ap;

    assert_non_null(c);
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(r);
    return r;
}

/* Records of the fake for @token (any provider). */
static json_t *requests_for(const char *provider, const char *token)
{
    json_t *all = pf_requests(env, provider), *out = json_array(), *r;
    size_t i;

    assert_non_null(all);
    json_array_foreach(all, i, r)
    {
        const char *t = json_string_value(json_object_get(r, "token"));

        if (t && !strcmp(t, token))
            json_array_append(out, r);
    }
    json_decref(all);
    return out;
}

/* 1. A registered iPhone gets the push: headers, payload, badge, HTTP/2. */
static void test_a_registered_device_gets_its_push(void **state)
{
    static const char tok[] = "aa11bb22cc33dd44";
    struct pf_worker *w;
    json_t *reqs, *r, *aps, *hdrs;
    char id[37];

    (void)state;
    hx_redis_flushall(env->redis);
    assert_int_equal(pf_fake_reset(env), 0);
    w = pf_worker_start(env, "p-basic", NULL);
    assert_non_null(w);
    assert_int_equal(pf_register(env, "p-basic", "alice", tok, "ios"), 0);
    freeReplyObject(redis_cmd("SET herald:unread_total:{alice} 7"));
    assert_int_equal(
        pf_send(env, "p-basic", "alice", "push.requested", "push-1",
                "{\"user_id\":\"alice\",\"title\":\"Bob\",\"body\":\"hi\","
                "\"badge\":\"unread_total\",\"thread_id\":\"c1\","
                "\"collapse_id\":\"c1-m1\",\"ttl_seconds\":3600,"
                "\"data\":{\"conversation_id\":\"c1\"}}"),
        0);
    assert_int_equal(pf_wait_processed(w, 2, 60000), 0);
    reqs = requests_for("apns", tok);
    assert_int_equal(json_array_size(reqs), 1);
    r = json_array_get(reqs, 0);
    assert_string_equal(json_string_value(json_object_get(r, "http_version")),
                        "2.0");
    assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
    assert_true(
        json_is_true(json_object_get(json_object_get(r, "auth"), "ok")));
    aps = json_object_get(json_object_get(r, "body"), "aps");
    assert_int_equal(json_integer_value(json_object_get(aps, "badge")), 7);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(aps, "alert"), "title")),
                        "Bob");
    assert_string_equal(json_string_value(json_object_get(aps, "thread-id")),
                        "c1");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(r, "body"), "conversation_id")),
                        "c1");
    hdrs = json_object_get(r, "headers");
    assert_string_equal(json_string_value(json_object_get(hdrs, "apns-topic")),
                        PF_TOPIC);
    assert_string_equal(
        json_string_value(json_object_get(hdrs, "apns-collapse-id")), "c1-m1");
    hr_event_derive_id(id, (const char *[]){"push-1", tok}, 2);
    assert_string_equal(json_string_value(json_object_get(hdrs, "apns-id")),
                        id);
    assert_non_null(json_object_get(hdrs, "apns-expiration"));
    json_decref(reqs);
    assert_int_equal(topic_count("p-basic.dlq"), 0);
    assert_true(hx_metric(w->port, "herald_push_deliveries_total{worker="
                                   "\"push\",provider=\"apns\",status="
                                   "\"sent\"}") == 1);
    assert_int_equal(pf_worker_stop(w), 0);
    pf_worker_free(w);
}

/* --- 2. every documented answer has its action ---------------------- */

enum expect {
    X_SENT,    /* delivered */
    X_INVALID, /* token removed, device.invalidated emitted */
    X_KEPT,    /* an invalidation that does not apply: token kept */
    X_RETRY,   /* a retry record for the guard */
    X_DEAD,    /* a dead letter */
    X_REFRESH, /* credential refreshed once, then delivered */
};

struct answer_case {
    const char *name;
    const char *platform; /* ios, android, web */
    const char *answers;  /* the fake's script (JSON array) */
    enum expect expect;
    const char *cls;       /* retry/dead: herald-error-class */
    long long retry_after; /* retry: herald-retry-after-ms at least */
    const char *reason;    /* invalid: device.invalidated reason */
    bool big;              /* a payload over every provider's limit */
};

static const struct answer_case cases[] = {
    {"apns-410-unregistered", "ios",
     "[{\"status\":410,\"reason\":\"Unregistered\",\"timestamp\":@NOW@}]",
     X_INVALID, NULL, 0, "Unregistered", false},
    {"apns-410-reregistered-since", "ios",
     "[{\"status\":410,\"reason\":\"Unregistered\",\"timestamp\":@PAST@}]",
     X_KEPT, NULL, 0, NULL, false},
    {"apns-410-expiredtoken", "ios",
     "[{\"status\":410,\"reason\":\"ExpiredToken\"}]", X_INVALID, NULL, 0,
     "ExpiredToken", false},
    {"apns-400-baddevicetoken", "ios",
     "[{\"status\":400,\"reason\":\"BadDeviceToken\"}]", X_INVALID, NULL, 0,
     "BadDeviceToken", false},
    {"apns-400-notfortopic", "ios",
     "[{\"status\":400,\"reason\":\"DeviceTokenNotForTopic\"}]", X_INVALID,
     NULL, 0, "DeviceTokenNotForTopic", false},
    {"apns-429-toomanyrequests", "ios",
     "[{\"status\":429,\"reason\":\"TooManyRequests\",\"headers\":"
     "{\"retry-after\":\"30\"}}]",
     X_RETRY, "throttled", 30000, NULL, false},
    {"apns-429-toomanytokenupdates", "ios",
     "[{\"status\":429,\"reason\":\"TooManyProviderTokenUpdates\"}]", X_RETRY,
     "throttled", 0, NULL, false},
    {"apns-500", "ios", "[{\"status\":500,\"reason\":\"InternalServerError\"}]",
     X_RETRY, "transient", 0, NULL, false},
    {"apns-503-shutdown", "ios", "[{\"status\":503,\"reason\":\"Shutdown\"}]",
     X_RETRY, "transient", 0, NULL, false},
    {"apns-403-expiredprovidertoken", "ios",
     "[{\"status\":403,\"reason\":\"ExpiredProviderToken\"},{}]", X_REFRESH,
     NULL, 0, NULL, false},
    {"apns-403-invalidprovidertoken", "ios",
     "[{\"status\":403,\"reason\":\"InvalidProviderToken\"}]", X_DEAD, "auth",
     0, NULL, false},
    {"apns-413-payloadtoolarge", "ios",
     "[{\"status\":413,\"reason\":\"PayloadTooLarge\"}]", X_DEAD, "permanent",
     0, NULL, false},
    {"apns-over-4096", "ios", "[]", X_DEAD, "permanent", 0, NULL, true},
    {"fcm-unregistered", "android", "[{\"error_code\":\"UNREGISTERED\"}]",
     X_INVALID, NULL, 0, "UNREGISTERED", false},
    {"fcm-invalid-token", "android", "[{\"error_code\":\"INVALID_ARGUMENT\"}]",
     X_INVALID, NULL, 0, "INVALID_ARGUMENT", false},
    {"fcm-sender-id-mismatch", "android",
     "[{\"error_code\":\"SENDER_ID_MISMATCH\"}]", X_INVALID, NULL, 0,
     "SENDER_ID_MISMATCH", false},
    {"fcm-invalid-payload", "android",
     "[{\"rpc_status\":\"INVALID_ARGUMENT\"}]", X_DEAD, "permanent", 0, NULL,
     false},
    {"fcm-quota-exceeded", "android",
     "[{\"error_code\":\"QUOTA_EXCEEDED\",\"headers\":{\"retry-after\":\"5\"}}"
     "]",
     X_RETRY, "throttled", 60000, NULL, false},
    {"fcm-unavailable", "android", "[{\"error_code\":\"UNAVAILABLE\"}]",
     X_RETRY, "transient", 0, NULL, false},
    {"fcm-internal", "android", "[{\"error_code\":\"INTERNAL\"}]", X_RETRY,
     "transient", 0, NULL, false},
    {"fcm-third-party-auth", "android",
     "[{\"error_code\":\"THIRD_PARTY_AUTH_ERROR\"}]", X_DEAD, "auth", 0, NULL,
     false},
    {"fcm-unauthenticated", "android",
     "[{\"rpc_status\":\"UNAUTHENTICATED\"},{}]", X_REFRESH, NULL, 0, NULL,
     false},
    {"web-404", "web", "[{\"status\":404}]", X_INVALID, NULL, 0, "HTTP 404",
     false},
    {"web-410", "web", "[{\"status\":410}]", X_INVALID, NULL, 0, "HTTP 410",
     false},
    {"web-429", "web",
     "[{\"status\":429,\"headers\":{\"retry-after\":\"20\"}}]", X_RETRY,
     "throttled", 20000, NULL, false},
    {"web-413", "web", "[{\"status\":413}]", X_DEAD, "permanent", 0, NULL,
     false},
    {"web-401", "web", "[{\"status\":401}]", X_DEAD, "auth", 0, NULL, false},
    {"web-403", "web", "[{\"status\":403}]", X_DEAD, "auth", 0, NULL, false},
    {"web-500", "web", "[{\"status\":500}]", X_RETRY, "transient", 0, NULL,
     false},
    {"apns-200", "ios", "[]", X_SENT, NULL, 0, NULL, false},
    {"fcm-200", "android", "[]", X_SENT, NULL, 0, NULL, false},
    {"web-201", "web", "[]", X_SENT, NULL, 0, NULL, false},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Whether @c's answer makes its provider wait (429, QUOTA_EXCEEDED). */
static bool throttles(const struct answer_case *c)
{
    return strstr(c->answers, "429") || strstr(c->answers, "QUOTA_EXCEEDED");
}


/* @text with @from replaced by @to (malloc'd). */
static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    size_t len = strlen(text) + strlen(to) + 1;
    char *out = malloc(len);

    assert_non_null(out);
    if (!at) {
        memcpy(out, text, strlen(text) + 1);
        return out;
    }
    snprintf(out, len, "%.*s%s%s", (int)(at - text), text, to,
             at + strlen(from));
    return out;
}

/* The record of @topic whose event (or value's id) is @event_id. */
static json_t *record_of(json_t *records, const char *event_id)
{
    size_t i;
    json_t *r;

    json_array_foreach(records, i, r)
    {
        const char *id = json_string_value(
            json_object_get(json_object_get(r, "event"), "id"));

        if (id && !strcmp(id, event_id))
            return r;
    }
    return NULL;
}

/* The device.invalidated of @token among @records, or NULL. */
static json_t *invalidation_of(json_t *records, const char *token)
{
    size_t i;
    json_t *r;

    json_array_foreach(records, i, r)
    {
        json_t *ev = json_object_get(r, "event");
        json_t *data = json_object_get(ev, "data");
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *t = json_string_value(json_object_get(data, "token"));

        if (type && !strcmp(type, "device.invalidated") && t &&
            !strcmp(t, token))
            return data;
    }
    return NULL;
}

static void test_every_provider_answer_has_its_action(void **state)
{
    char tokens[NCASES][1024], script_tok[NCASES][1024], user[64], ev[64];
    char now[32], past[32], body[6000];
    json_t *retries, *dead, *devices, *summary;
    int64_t t0;
    struct pf_worker *w;

    (void)state;
    hx_redis_flushall(env->redis);
    assert_int_equal(pf_fake_reset(env), 0);
    w = pf_worker_start(env, "p-answers", NULL);
    assert_non_null(w);
    for (size_t i = 0; i < NCASES; i++) {
        snprintf(user, sizeof(user), "u-%s", cases[i].name);
        if (!strcmp(cases[i].platform, "web")) {
            char *sub = pf_subscribe(env);
            json_t *j = json_loads(sub, 0, NULL);
            const char *ep = json_string_value(json_object_get(j, "endpoint"));

            assert_non_null(ep);
            snprintf(tokens[i], sizeof(tokens[i]), "%s", sub);
            snprintf(script_tok[i], sizeof(script_tok[i]), "%s",
                     strrchr(ep, '/') + 1);
            json_decref(j);
            free(sub);
        } else if (!strcmp(cases[i].platform, "ios")) {
            snprintf(tokens[i], sizeof(tokens[i]), "%08zx%s", i,
                     "abcdef0123456789abcdef0123456789");
            snprintf(script_tok[i], sizeof(script_tok[i]), "%s", tokens[i]);
        } else {
            snprintf(tokens[i], sizeof(tokens[i]), "fcm-token-%s",
                     cases[i].name);
            snprintf(script_tok[i], sizeof(script_tok[i]), "%s", tokens[i]);
        }
        assert_int_equal(
            pf_register(env, "p-answers", user, tokens[i], cases[i].platform),
            0);
    }
    assert_int_equal(pf_wait_processed(w, (double)NCASES, 60000), 0);
    t0 = hx_now_ms();
    (void)t0;
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL) * 1000 + 1000);
    snprintf(past, sizeof(past), "%lld",
             (long long)time(NULL) * 1000 - 3600 * 1000);
    for (size_t i = 0; i < NCASES; i++) {
        char *a = replace(cases[i].answers, "@NOW@", now);
        char *b = replace(a, "@PAST@", past);
        const char *provider = !strcmp(cases[i].platform, "ios") ? "apns"
                               : !strcmp(cases[i].platform, "android")
                                   ? "fcm"
                                   : "webpush";

        if (strcmp(b, "[]"))
            assert_int_equal(pf_script(env, provider, script_tok[i], b), 0);
        free(a);
        free(b);
    }
    /* Answers that make a provider wait (429, QUOTA_EXCEEDED) hold its
     * later calls back (the circuit's throttle, no call made): they go
     * last, once every other push was handled, so that how the pushes
     * fall into batches cannot change the other cases' outcomes. */
    for (int phase = 0; phase < 2; phase++) {
        size_t first = 0;

        for (size_t i = 0; i < NCASES; i++)
            first += !throttles(&cases[i]);
        if (phase == 1)
            assert_int_equal(pf_wait_metric(w,
                                            "herald_events_consumed_total{"
                                            "worker=\"push\",topic="
                                            "\"p-answers\"}",
                                            (double)first, 90000),
                             0);
        for (size_t i = 0; i < NCASES; i++) {
            if (throttles(&cases[i]) != (phase == 1))
                continue;
            snprintf(user, sizeof(user), "u-%s", cases[i].name);
            snprintf(ev, sizeof(ev), "ev-%s", cases[i].name);
            if (cases[i].big) { /* with the data below: over 4096 in all */
                memset(body, 'x', 4000);
                body[4000] = '\0';
            } else {
                snprintf(body, sizeof(body), "hello %s", cases[i].name);
            }
            {
                json_t *data =
                    json_pack("{s:s, s:s, s:s, s:i, s:{s:s}}", "user_id", user,
                              "title", "T", "body", body, "badge", 3, "data",
                              "extra", cases[i].big ? body + 3500 : "");
                char *text = json_dumps(data, JSON_COMPACT);

                assert_int_equal(
                    pf_send(env, "p-answers", user, "push.requested", ev, text),
                    0);
                free(text);
                json_decref(data);
            }
        }
    }
    /* every push handled and durable (not "processed": the worker also
     * reads back the device.invalidated it emits on p-answers.devices) */
    assert_int_equal(pf_wait_metric(w,
                                    "herald_events_consumed_total{worker="
                                    "\"push\",topic=\"p-answers\"}",
                                    (double)NCASES, 90000),
                     0);
    retries = pf_collect(env, "p-answers.retry");
    dead = pf_collect(env, "p-answers.dlq");
    devices = pf_collect(env, "p-answers.devices");
    assert_non_null(retries);
    assert_non_null(dead);
    assert_non_null(devices);
    for (size_t i = 0; i < NCASES; i++) {
        const struct answer_case *c = &cases[i];
        json_t *rec, *inv, *reqs;
        redisReply *r;
        bool kept;

        snprintf(user, sizeof(user), "u-%s", c->name);
        snprintf(ev, sizeof(ev), "ev-%s", c->name);
        r = redis_cmd("HEXISTS herald:devices:{%s} %s", user, tokens[i]);
        kept = r->integer == 1;
        freeReplyObject(r);
        inv = invalidation_of(devices, tokens[i]);
        print_message("case %s\n", c->name);
        switch (c->expect) {
        case X_INVALID:
            assert_false(kept);
            assert_non_null(inv);
            assert_string_equal(
                json_string_value(json_object_get(inv, "reason")), c->reason);
            assert_null(record_of(retries, ev));
            assert_null(record_of(dead, ev));
            break;
        case X_KEPT:
            assert_true(kept);
            assert_null(inv);
            break;
        case X_RETRY: {
            const char *cls, *err;

            rec = record_of(retries, ev);
            assert_non_null(rec);
            assert_true(kept);
            cls = json_string_value(json_object_get(
                json_object_get(rec, "headers"), "herald-error-class"));
            err = json_string_value(json_object_get(
                json_object_get(rec, "headers"), "herald-error"));
            /* When the answers come in two batches, an earlier 429's
             * Retry-After holds the provider's later calls back (no call
             * made): right, and not what this case is about. */
            if (strcmp(cls, c->cls) && !strcmp(cls, "throttled") && err &&
                strstr(err, HR_CIRCUIT_THROTTLED_REASON)) {
                print_message("  held back by an earlier Retry-After\n");
                break;
            }
            assert_string_equal(cls, c->cls);
            if (c->retry_after)
                assert_true(atoll(json_string_value(json_object_get(
                                json_object_get(rec, "headers"),
                                "herald-retry-after-ms"))) >= c->retry_after);
            assert_non_null(strstr(
                json_string_value(json_object_get(
                    json_object_get(rec, "headers"), "herald-destination")),
                "push:"));
            break;
        }
        case X_DEAD:
            rec = record_of(dead, ev);
            assert_non_null(rec);
            assert_true(kept);
            assert_string_equal(
                json_string_value(json_object_get(
                    json_object_get(rec, "headers"), "herald-error-class")),
                c->cls);
            break;
        case X_SENT:
        case X_REFRESH:
            assert_true(kept);
            assert_null(record_of(retries, ev));
            assert_null(record_of(dead, ev));
            reqs = requests_for(!strcmp(c->platform, "ios")       ? "apns"
                                : !strcmp(c->platform, "android") ? "fcm"
                                                                  : "webpush",
                                script_tok[i]);
            assert_int_equal(json_array_size(reqs),
                             c->expect == X_REFRESH ? 2 : 1);
            assert_true(json_integer_value(json_object_get(
                            json_array_get(reqs, json_array_size(reqs) - 1),
                            "status")) < 300);
            json_decref(reqs);
            break;
        }
        if (c->big) {
            reqs = requests_for("apns", script_tok[i]);
            assert_int_equal(json_array_size(reqs), 0); /* no call */
            json_decref(reqs);
        }
    }
    /* the refresh cases minted a second APNs token and fetched a second
     * FCM access token */
    summary = hx_fake_http_get(env->fake, "/_control/summary");
    assert_non_null(summary);
    assert_true(json_array_size(json_object_get(summary, "apns_tokens")) >= 2);
    assert_true(json_integer_value(json_object_get(summary, "fcm_exchanges")) >=
                2);
    assert_true(hx_metric(w->port, "herald_push_invalidated_total{") >= 9);
    {
        /* what the dashboards read (SPEC section 6 and the push metrics) */
        static const char *const names[] = {
            "herald_push_deliveries_total{",
            "herald_push_invalidated_total{",
            "herald_push_latency_seconds_bucket{",
            "herald_push_token_refreshes_total{",
            "herald_push_registry_total{",
            "herald_guard_circuit_state{",
            "herald_events_consumed_total{",
            "herald_events_processed_total{",
            "herald_event_processing_seconds_bucket{",
            "herald_consumer_lag{",
            "herald_redis_errors_total{",
            "herald_source_errors_total{",
            "herald_build_info{",
        };
        char *text = NULL;

        for (int tries = 0; tries < 100; tries++) { /* lag: stats, 1 s */
            free(text);
            text = hx_metrics_get(w->port);
            if (text && strstr(text, "herald_consumer_lag{"))
                break;
            hx_sleep_ms(100);
        }
        assert_non_null(text);
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            if (!strstr(text, names[k]))
                fail_msg("missing on /metrics: %s", names[k]);
        }
        free(text);
    }
    json_decref(summary);
    json_decref(retries);
    json_decref(dead);
    json_decref(devices);
    assert_int_equal(pf_worker_stop(w), 0);
    pf_worker_free(w);
}

/* --- 3. the registry keeps the newest word on each device -------------- */

static bool device_exists(const char *user, const char *token)
{
    redisReply *r = redis_cmd("HEXISTS herald:devices:{%s} %s", user, token);
    bool yes = r->integer == 1;

    freeReplyObject(r);
    return yes;
}

static void test_registry_takes_the_newest_word_whatever_the_order(void **state)
{
    static const char reg[] =
        "{\"user_id\":\"carol\",\"token\":\"%s\",\"platform\":\"android\","
        "\"app\":\"com.example.chat\",\"environment\":\"production\"}";
    static const char unreg[] = "{\"user_id\":\"carol\",\"token\":\"%s\"}";
    struct pf_worker *w;
    char data[256];
    redisReply *r;
    json_t *dev;

    (void)state;
    hx_redis_flushall(env->redis);
    w = pf_worker_start(env, "p-reg", NULL);
    assert_non_null(w);
    /* t1: registered at 10:00; an unregistration of 09:00 comes late */
    snprintf(data, sizeof(data), reg, "t1");
    assert_int_equal(pf_send_at(env, "p-reg.devices", "carol",
                                "device.registered", "r1",
                                "2026-12-01T10:00:00Z", data),
                     0);
    snprintf(data, sizeof(data), unreg, "t1");
    assert_int_equal(pf_send_at(env, "p-reg.devices", "carol",
                                "device.unregistered", "u1",
                                "2026-12-01T09:00:00Z", data),
                     0);
    /* t2: unregistered at 11:00, then its registration of 10:30 arrives */
    snprintf(data, sizeof(data), unreg, "t2");
    assert_int_equal(pf_send_at(env, "p-reg.devices", "carol",
                                "device.unregistered", "u2",
                                "2026-12-01T11:00:00Z", data),
                     0);
    snprintf(data, sizeof(data), reg, "t2");
    assert_int_equal(pf_send_at(env, "p-reg.devices", "carol",
                                "device.registered", "r2",
                                "2026-12-01T10:30:00Z", data),
                     0);
    /* t3: registered, unregistered, registered again later: kept */
    snprintf(data, sizeof(data), reg, "t3");
    assert_int_equal(pf_send_at(env, "p-reg.devices", "carol",
                                "device.registered", "r3",
                                "2026-12-01T08:00:00Z", data),
                     0);
    snprintf(data, sizeof(data), unreg, "t3");
    assert_int_equal(pf_send_at(env, "p-reg.devices", "carol",
                                "device.unregistered", "u3",
                                "2026-12-01T08:30:00Z", data),
                     0);
    snprintf(data, sizeof(data), reg, "t3");
    assert_int_equal(pf_send_at(env, "p-reg.devices", "carol",
                                "device.registered", "r3b",
                                "2026-12-01T09:00:00Z", data),
                     0);
    /* bad input is dead-lettered, the rest goes on */
    assert_int_equal(pf_send(env, "p-reg.devices", "carol", "device.registered",
                             "bad1",
                             "{\"user_id\":\"carol\",\"token\":\"t9\","
                             "\"platform\":\"blackberry\"}"),
                     0);
    assert_int_equal(pf_wait_processed(w, 8, 60000), 0);
    assert_true(device_exists("carol", "t1"));
    assert_false(device_exists("carol", "t2"));
    assert_true(device_exists("carol", "t3"));
    assert_false(device_exists("carol", "t9"));
    r = redis_cmd("HGET herald:devices:{carol} t3");
    dev = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    assert_non_null(dev);
    assert_string_equal(json_string_value(json_object_get(dev, "platform")),
                        "android");
    assert_string_equal(json_string_value(json_object_get(dev, "app")),
                        "com.example.chat");
    assert_string_equal(
        json_string_value(json_object_get(dev, "registered_at")),
        "2026-12-01T09:00:00.000Z");
    json_decref(dev);
    assert_int_equal(topic_count("p-reg.dlq"), 1);
    assert_true(hx_metric(w->port, "herald_push_registry_total{worker=\"push\","
                                   "op=\"stale_unregister\"}") == 1);
    assert_true(hx_metric(w->port, "herald_push_registry_total{worker=\"push\","
                                   "op=\"stale_register\"}") == 1);
    assert_int_equal(pf_worker_stop(w), 0);
    pf_worker_free(w);
}

/* --- 4. one push per event and device, whatever comes twice ---------- */

/* How many requests the fake answered for each (apns-id or FCM token +
 * message), and whether any pair came twice. */
static size_t duplicate_pairs(json_t *reqs, size_t *distinct)
{
    json_t *seen = json_object(), *r;
    size_t i, dups = 0;

    json_array_foreach(reqs, i, r)
    {
        const char *provider =
            json_string_value(json_object_get(r, "provider"));
        const char *token = json_string_value(json_object_get(r, "token"));
        json_t *body = json_object_get(r, "body");
        const char *eid = NULL;
        char key[1200];

        if (json_integer_value(json_object_get(r, "status")) >= 300 ||
            !provider || !strcmp(provider, "token"))
            continue;
        if (!strcmp(provider, "apns"))
            eid = json_string_value(json_object_get(body, "event_id"));
        else if (!strcmp(provider, "fcm"))
            eid = json_string_value(json_object_get(
                json_object_get(json_object_get(body, "message"), "data"),
                "event_id"));
        snprintf(key, sizeof(key), "%s|%s|%s", provider, token ? token : "",
                 eid ? eid : "");
        if (json_object_get(seen, key)) {
            if (dups < 3)
                print_message("twice: %s\n", key);
            dups++;
        }
        json_object_set(seen, key, r);
    }
    *distinct = json_object_size(seen);
    json_decref(seen);
    return dups;
}

static int send_pushes(const char *topic, int first, int n, int users)
{
    for (int i = first; i < first + n; i++) {
        char user[32], id[32], data[256];

        snprintf(user, sizeof(user), "user-%d", i % users);
        snprintf(id, sizeof(id), "push-%d", i);
        snprintf(data, sizeof(data),
                 "{\"user_id\":\"%s\",\"title\":\"t\",\"body\":\"b %d\","
                 "\"data\":{\"event_id\":\"%s\"}}",
                 user, i, id);
        if (pf_send(env, topic, user, "push.requested", id, data))
            return -1;
    }
    return 0;
}

static void register_fleet(const char *topic, int users)
{
    for (int u = 0; u < users; u++) {
        char user[32], tok[80];

        snprintf(user, sizeof(user), "user-%d", u);
        snprintf(tok, sizeof(tok), "%064x", u + 1);
        assert_int_equal(pf_register(env, topic, user, tok, "ios"), 0);
        snprintf(tok, sizeof(tok), "fcm-%s", user);
        assert_int_equal(pf_register(env, topic, user, tok, "android"), 0);
    }
}

static void test_an_event_delivered_twice_pushes_once(void **state)
{
    struct pf_worker *w;
    json_t *reqs;
    size_t distinct;

    (void)state;
    hx_redis_flushall(env->redis);
    assert_int_equal(pf_fake_reset(env), 0);
    w = pf_worker_start(env, "p-dup", NULL);
    register_fleet("p-dup", 5);
    assert_int_equal(send_pushes("p-dup", 0, 20, 5), 0);
    /* the same 20 again: a producer's retry, a replay */
    assert_int_equal(send_pushes("p-dup", 0, 20, 5), 0);
    assert_int_equal(pf_wait_processed(w, 10 + 40, 60000), 0);
    /* Every copy skipped at least once: under load a batch may come again
     * (a redone batch, a rebalance's redelivery), and its devices are
     * skipped again; what matters is that none got an event twice. */
    assert_int_equal(pf_wait_metric(w,
                                    "herald_push_deliveries_total{worker="
                                    "\"push\",provider=\"apns\",status="
                                    "\"duplicate\"}",
                                    20, 60000),
                     0);
    reqs = pf_requests(env, NULL);
    assert_int_equal(duplicate_pairs(reqs, &distinct), 0);
    assert_int_equal(distinct, 40); /* 20 events x 2 devices */
    json_decref(reqs);
    assert_int_equal(pf_worker_stop(w), 0);
    pf_worker_free(w);
}

enum { CRASH_USERS = 200, CRASH_PUSHES = 3000 };

/* Whether the crash test's pushes are all delivered or waiting to be
 * retried, but for the calls one kill may lose. */
static bool crash_accounted(void *arg)
{
    json_t *reqs = pf_requests(env, NULL);
    size_t distinct = 0;

    (void)arg;
    duplicate_pairs(reqs, &distinct);
    json_decref(reqs);
    return (int64_t)distinct + 2 * topic_count("p-crash.retry") >=
           2 * CRASH_PUSHES - 100;
}

/* 5. kill -9 mid-run, restart: no device gets an event twice. */
static void test_kill_9_mid_run_pushes_nothing_twice(void **state)
{
    int64_t retried;
    struct pf_worker *w;
    json_t *reqs;
    size_t distinct;

    (void)state;
    hx_redis_flushall(env->redis);
    assert_int_equal(pf_fake_reset(env), 0);
    w = pf_worker_start(env, "p-crash", NULL);
    register_fleet("p-crash", CRASH_USERS);
    assert_int_equal(pf_wait_processed(w, 2 * CRASH_USERS, 60000), 0);
    assert_int_equal(send_pushes("p-crash", 0, CRASH_PUSHES, CRASH_USERS), 0);
    assert_int_equal(
        pf_wait_processed(w, 2 * CRASH_USERS + CRASH_PUSHES / 4, 120000), 0);
    hx_proc_signal(w->proc, SIGKILL);
    assert_int_equal(hx_proc_wait(w->proc, 5000, NULL), 0);
    pf_worker_free(w);
    w = pf_worker_start(env, "p-crash", NULL);
    assert_int_equal(pf_wait_processed(w, 1, 60000), 0);
    /* At most the calls in flight at the kill are lost (one group of
     * HERALD_PUSH_CONCURRENCY, 100, their claims said "s"); everything else
     * arrives, or waits in the retry topic (the fake dropped a connection:
     * such calls fail rather than go twice). Wait for that much (the lag
     * metric can read 0 before the new consumer's first statistics). */
    hx_wait_until(crash_accounted, NULL, 120000); /* asserted below */
    hx_sleep_ms(1000); /* a late duplicate would come by now */
    reqs = pf_requests(env, NULL);
    assert_int_equal(duplicate_pairs(reqs, &distinct), 0);
    retried = topic_count("p-crash.retry");
    print_message("delivered %zu of %d, %lld events to retry\n", distinct,
                  2 * CRASH_PUSHES, (long long)retried);
    assert_true((int64_t)distinct + 2 * retried >= 2 * CRASH_PUSHES - 100);
    json_decref(reqs);
    assert_int_equal(pf_worker_stop(w), 0);
    pf_worker_free(w);
}

/* --- 6. credentials are the fleet's; connections are HTTP/2 and kept -- */

static void test_three_replicas_share_one_token_per_window(void **state)
{
    const char *const fast[] = {"HERALD_APNS_TOKEN_REFRESH_S=2", NULL};
    struct pf_worker *w[3];
    json_t *summary, *tokens, *versions;
    double minted = 0, fetched = 0;
    int64_t until;
    int sent = 0;

    (void)state;
    hx_redis_flushall(env->redis);
    assert_int_equal(pf_fake_reset(env), 0);
    for (int i = 0; i < 3; i++) {
        w[i] = pf_worker_start(env, "p-tokens", fast);
        assert_non_null(w[i]);
    }
    register_fleet("p-tokens", 30);
    assert_int_equal(pf_wait_processed(w[0], 0, 1000), 0);
    /* the group settles, then pushes flow for about nine seconds */
    hx_sleep_ms(8000);
    until = hx_now_ms() + 9000;
    while (hx_now_ms() < until) {
        assert_int_equal(send_pushes("p-tokens", sent, 30, 30), 0);
        sent += 30;
        hx_sleep_ms(300);
    }
    hx_sleep_ms(2000);
    summary = hx_fake_http_get(env->fake, "/_control/summary");
    assert_non_null(summary);
    tokens = json_object_get(summary, "apns_tokens");
    /* one new token per 2 s window, whoever minted it */
    print_message("%zu apns tokens over ~15 s\n", json_array_size(tokens));
    assert_true(json_array_size(tokens) >= 3);
    assert_true(json_array_size(tokens) <= 9);
    for (size_t i = 1; i < json_array_size(tokens); i++) {
        json_int_t a = json_integer_value(
            json_object_get(json_array_get(tokens, i - 1), "iat"));
        json_int_t b = json_integer_value(
            json_object_get(json_array_get(tokens, i), "iat"));

        assert_true(b - a >= 2);
    }
    for (int i = 0; i < 3; i++) {
        minted += hx_metric(w[i]->port, "herald_push_token_refreshes_total{"
                                        "worker=\"push\",provider=\"apns\"}");
        fetched += hx_metric(w[i]->port, "herald_push_token_refreshes_total{"
                                         "worker=\"push\",provider=\"fcm\"}");
    }
    /* each token was minted once, by one replica */
    assert_true(minted == (double)json_array_size(tokens));
    /* one FCM access token serves the three (it lives an hour) */
    assert_int_equal(
        json_integer_value(json_object_get(summary, "fcm_exchanges")), 1);
    assert_true(fetched == 1);
    /* HTTP/2 only, and connections kept: a few per replica, not per push */
    versions = json_object_get(summary, "http_versions");
    assert_null(json_object_get(versions, "1.1"));
    assert_true(json_integer_value(json_object_get(versions, "2.0")) >=
                2 * sent);
    print_message(
        "%lld connections for %lld requests\n",
        (long long)json_integer_value(json_object_get(summary, "sessions")),
        (long long)json_integer_value(json_object_get(versions, "2.0")));
    assert_true(json_integer_value(json_object_get(summary, "sessions")) <= 12);
    json_decref(summary);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pf_worker_stop(w[i]), 0);
        pf_worker_free(w[i]);
    }
}

/* --- 7. from change records to pushes: exact badges, one per device ---- */

/* Spawn herald-@name with @envp (NULL-terminated) and --config @config
 * (NULL: none); its log in the test directory. */
static struct hx_proc *
spawn(const char *name, const char *const *envp, const char *config)
{
    char log[512];

    snprintf(log, sizeof(log), "%s/%s-e2e.log", env->dir, name);
    return hx_proc_spawn((const char *[]){hx_bin(name),
                                          config ? "--config" : NULL, config,
                                          NULL},
                         envp, NULL, log);
}

static void test_change_records_end_as_pushes_with_exact_badges(void **state)
{
    static const char *const gen[] = {
        "--users",    "8",   "--convs", "6",   "--members", "3",
        "--messages", "150", "--reads", "0.3", "--dups",    "0.1",
        "--window",   "20",  "--seed",  "11",  NULL};
    const char *argv[40];
    char brokers[300], redis_url[300], fport[64], uport[64], rules[512];
    const char *const push_env[] = {"HERALD_KAFKA_TOPICS=herald.push,"
                                    "herald.devices",
                                    "HERALD_KAFKA_GROUP=herald-push",
                                    "HERALD_RETRY_TOPIC=herald.retry",
                                    "HERALD_DLQ_TOPIC=herald.dlq",
                                    "HERALD_PUSH_INVALIDATED_TOPIC=herald."
                                    "devices",
                                    NULL};
    struct hx_proc *fanout, *unread, *chatgen;
    struct pf_worker *push;
    json_t *pushes, *reqs, *badge_of = json_object(), *r;
    size_t i, n;
    int status = -1, fport_n = hx_free_port(), uport_n = hx_free_port();
    rd_kafka_t *rk;
    char *text;

    (void)state;
    hx_redis_flushall(env->redis);
    assert_int_equal(pf_fake_reset(env), 0);
    snprintf(brokers, sizeof(brokers), "HERALD_KAFKA_BROKERS=%s",
             hx_broker_bootstraps(env->broker));
    snprintf(redis_url, sizeof(redis_url), "HERALD_REDIS_URL=%s",
             hx_redis_url(env->redis));
    snprintf(fport, sizeof(fport), "HERALD_METRICS_ADDR=127.0.0.1:%d", fport_n);
    snprintf(uport, sizeof(uport), "HERALD_METRICS_ADDR=127.0.0.1:%d", uport_n);
    /* the example rules; their webhooks are not called here */
    snprintf(rules, sizeof(rules), "%s/rules.json", env->dir);
    text = hx_file_read(
        HX_SOURCE_DIR "/workers/fanout/examples/chat-rules.json", NULL);
    assert_non_null(text);
    {
        FILE *f = fopen(rules, "w");

        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        free(text);
    }
    fanout = spawn(
        "herald-fanout",
        (const char *[]){brokers, redis_url, fport,
                         "LEGACY_JWT_SECRET=0123456789abcdef0123456789abcdef",
                         "TRUST_SAFETY_TOKEN=x", NULL},
        rules);
    unread =
        spawn("herald-unread",
              (const char *[]){brokers, redis_url, uport,
                               "HERALD_UNREAD_PUSH_TOPIC=herald.push", NULL},
              NULL);
    push = pf_worker_start(env, "herald.push", push_env);
    assert_non_null(fanout);
    assert_non_null(unread);
    assert_non_null(push);
    /* each user's iPhone, from the app's Devices table */
    rk = hx_producer_new(hx_broker_bootstraps(env->broker));
    for (int u = 0; u < 8; u++) {
        char rec[1024];

        snprintf(rec, sizeof(rec),
                 "{\"eventID\":\"dev-%d\",\"eventName\":\"INSERT\","
                 "\"eventSourceARN\":\"arn:aws:dynamodb:eu-west-1:1:table/"
                 "Devices/stream/x\",\"dynamodb\":{\"Keys\":{\"token\":{\"S\":"
                 "\"%064x\"}},\"NewImage\":{\"user_id\":{\"S\":\"u%d\"},"
                 "\"token\":{\"S\":\"%064x\"},\"platform\":{\"S\":\"ios\"}}}}",
                 u, u + 1, u, u + 1);
        assert_int_equal(
            hx_produce(rk, "herald.changes", "d", 1, rec, strlen(rec), NULL),
            0);
    }
    assert_int_equal(hx_producer_flush_free(rk, 10000), 0);
    assert_int_equal(pf_wait_processed(push, 8, 60000), 0);
    /* the chat, as the app's Messages and ReadReceipts streams */
    n = 0;
    argv[n++] = hx_bin("herald-chatgen");
    argv[n++] = "produce";
    argv[n++] = "--brokers";
    argv[n++] = hx_broker_bootstraps(env->broker);
    argv[n++] = "--topic";
    argv[n++] = "herald.changes";
    argv[n++] = "--dynamodb";
    for (i = 0; gen[i]; i++)
        argv[n++] = gen[i];
    argv[n] = NULL;
    chatgen = hx_proc_spawn(argv, NULL, "/dev/null", NULL);
    assert_non_null(chatgen);
    assert_int_equal(hx_proc_wait(chatgen, 60000, &status), 0);
    assert_int_equal(status, 0);
    hx_proc_free(chatgen);
    /* everything through: the pushes the unread worker asked for */
    for (int k = 0; k < 600; k++) {
        int64_t asked = topic_count("herald.push");

        if (asked > 0 &&
            hx_metric(push->port, "herald_events_processed_total{") >=
                (double)(asked + 8))
            break;
        hx_sleep_ms(200);
    }
    pushes = pf_collect(env, "herald.push");
    reqs = pf_requests(env, "apns");
    assert_non_null(pushes);
    assert_non_null(reqs);
    assert_true(json_array_size(pushes) > 100);
    json_array_foreach(reqs, i, r)
    {
        const char *apns_id = json_string_value(
            json_object_get(json_object_get(r, "headers"), "apns-id"));
        json_t *aps = json_object_get(json_object_get(r, "body"), "aps");

        assert_non_null(apns_id);
        assert_null(json_object_get(badge_of, apns_id)); /* once each */
        json_object_set_new(badge_of, apns_id,
                            json_copy(json_object_get(aps, "badge")));
    }
    /* each push.requested reached its recipient's device once, carrying
     * the badge herald-unread computed for it */
    json_array_foreach(pushes, i, r)
    {
        json_t *ev = json_object_get(r, "event");
        json_t *data = json_object_get(ev, "data");
        const char *id = json_string_value(json_object_get(ev, "id"));
        const char *user = json_string_value(json_object_get(data, "user_id"));
        char tok[80], apns_id[37];
        json_t *got;

        snprintf(tok, sizeof(tok), "%064x", atoi(user + 1) + 1);
        hr_event_derive_id(apns_id, (const char *[]){id, tok}, 2);
        got = json_object_get(badge_of, apns_id);
        if (!got)
            fail_msg("push %s for %s never reached its device", id, user);
        assert_int_equal(json_integer_value(got),
                         json_integer_value(json_object_get(data, "badge")));
    }
    assert_int_equal(json_object_size(badge_of), json_array_size(pushes));
    json_decref(badge_of);
    json_decref(pushes);
    json_decref(reqs);
    assert_int_equal(pf_worker_stop(push), 0);
    pf_worker_free(push);
    hx_proc_signal(unread, SIGTERM);
    hx_proc_signal(fanout, SIGTERM);
    assert_int_equal(hx_proc_wait(unread, 15000, &status), 0);
    assert_int_equal(status, 0);
    assert_int_equal(hx_proc_wait(fanout, 15000, &status), 0);
    assert_int_equal(status, 0);
    hx_proc_free(unread);
    hx_proc_free(fanout);
}

static int group_setup(void **state)
{
    (void)state;
    env = pf_env_start(TOPICS);
    return env ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    pf_env_free(env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_registered_device_gets_its_push),
        cmocka_unit_test(test_every_provider_answer_has_its_action),
        cmocka_unit_test(
            test_registry_takes_the_newest_word_whatever_the_order),
        cmocka_unit_test(test_an_event_delivered_twice_pushes_once),
        cmocka_unit_test(test_kill_9_mid_run_pushes_nothing_twice),
        cmocka_unit_test(test_three_replicas_share_one_token_per_window),
        cmocka_unit_test(test_change_records_end_as_pushes_with_exact_badges),
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("herald-push end to end", tests,
                                       group_setup, group_teardown);
}
