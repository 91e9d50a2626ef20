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

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "harness.h"
#include "hr_event.h"
#include "hx_fake_http.h"
#include "push_fixture.h"

#define TOPICS                                                           \
    "p-basic:2,p-basic.devices:2,p-basic.retry:1,p-basic.dlq:1,"         \
    "p-answers:2,p-answers.devices:2,p-answers.retry:1,p-answers.dlq:1," \
    "p-dup:2,p-dup.devices:2,p-dup.retry:1,p-dup.dlq:1,"                 \
    "p-crash:4,p-crash.devices:2,p-crash.retry:1,p-crash.dlq:1,"         \
    "p-tokens:4,p-tokens.devices:2,p-tokens.retry:1,p-tokens.dlq:1,"     \
    "p-reg:2,p-reg.devices:2,p-reg.retry:1,p-reg.dlq:1"

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
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("herald-push end to end", tests,
                                       group_setup, group_teardown);
}
