/* Unit tests for hr_httpd: the endpoints over loopback, with libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "hr_banned.h"
#include "hr_httpd.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_time.h"

struct fixture {
    struct hr_metrics *reg;
    struct hr_httpd *httpd;
};

struct reply {
    long status;
    char *body;
    size_t len;
    char content_type[128];
    char allow[64];
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct reply *reply = userdata;
    size_t n = size * nmemb;
    char *body = realloc(reply->body, reply->len + n + 1);

    if (!body)
        return 0;
    memcpy(body + reply->len, data, n);
    reply->len += n;
    body[reply->len] = '\0';
    reply->body = body;
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct reply *reply = userdata;
    size_t n = size * nmemb;

    if (n > 6 && strncasecmp(data, "Allow:", 6) == 0)
        snprintf(reply->allow, sizeof(reply->allow), "%.*s", (int)(n - 6),
                 data + 6);
    return n;
}

static void reply_release(struct reply *reply)
{
    free(reply->body);
    memset(reply, 0, sizeof(*reply));
}

/* Request @path from the server with @method ("GET", "HEAD", "POST"). */
static void request(const struct fixture *fx,
                    const char *method,
                    const char *path,
                    struct reply *reply)
{
    CURL *curl = curl_easy_init();
    char url[256];
    char *ct = NULL;

    assert_non_null(curl);
    memset(reply, 0, sizeof(*reply));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s",
             hr_httpd_port(fx->httpd), path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, reply);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "x=1");
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
        snprintf(reply->content_type, sizeof(reply->content_type), "%s", ct);
    curl_easy_cleanup(curl);
}

static int group_setup(void **state)
{
    hr_log_setup("test", HR_LOG_WARN, true);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    (void)state;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    char errstr[256] = "";

    if (!fx)
        return -1;
    fx->reg = hr_metrics_new("unread");
    fx->httpd = hr_httpd_start("127.0.0.1:0", fx->reg, errstr, sizeof(errstr));
    if (!fx->httpd) {
        fprintf(stderr, "hr_httpd_start: %s\n", errstr);
        hr_metrics_free(fx->reg);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    hr_httpd_stop(fx->httpd);
    hr_metrics_free(fx->reg);
    free(fx);
    return 0;
}

/* Runs first: nothing has touched the health state yet. */
static void test_process_starts_not_ready_but_alive(void **state)
{
    char reason[64] = "";

    (void)state;
    assert_false(hr_health_is_ready(reason, sizeof(reason)));
    assert_string_equal(reason, "starting");
    assert_true(hr_health_is_alive(30000));
}

static void test_port_zero_binds_a_free_port(void **state)
{
    struct fixture *fx = *state;

    assert_true(hr_httpd_port(fx->httpd) > 0);
    assert_true(hr_httpd_port(fx->httpd) <= 65535);
}

static void test_metrics_serves_registry_text(void **state)
{
    struct fixture *fx = *state;
    struct hr_metric *m = hr_metrics_counter(
        fx->reg, "herald_events_consumed_total", "Events read", "topic");
    struct reply reply;

    hr_metric_add(m, (const char *const[]){"herald.messages"}, 2);
    request(fx, "GET", "/metrics", &reply);
    assert_int_equal(reply.status, 200);
    assert_string_equal(reply.content_type,
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(reply.body);
    assert_string_equal(reply.body,
                        "# HELP herald_events_consumed_total Events read\n"
                        "# TYPE herald_events_consumed_total counter\n"
                        "herald_events_consumed_total{worker=\"unread\","
                        "topic=\"herald.messages\"} 2\n");
    reply_release(&reply);
}

static void test_metrics_query_string_is_ignored(void **state)
{
    struct reply reply;

    request(*state, "GET", "/metrics?x=1", &reply);
    assert_int_equal(reply.status, 200);
    reply_release(&reply);
}

static void test_head_metrics_has_no_body(void **state)
{
    struct reply reply;

    request(*state, "HEAD", "/metrics", &reply);
    assert_int_equal(reply.status, 200);
    assert_int_equal(reply.len, 0);
    reply_release(&reply);
}

static void test_healthz_is_ok_while_beating(void **state)
{
    struct reply reply;

    hr_health_beat();
    request(*state, "GET", "/healthz", &reply);
    assert_int_equal(reply.status, 200);
    assert_string_equal(reply.content_type, "text/plain; charset=utf-8");
    assert_string_equal(reply.body, "ok\n");
    reply_release(&reply);
}

static void test_liveness_expires_without_beat(void **state)
{
    (void)state;
    hr_health_beat();
    assert_true(hr_health_is_alive(30000));
    hr_time_sleep_ms(30);
    assert_false(hr_health_is_alive(5));
    assert_true(hr_health_is_alive(30000));
    hr_health_beat();
    assert_true(hr_health_is_alive(5));
}

static void test_readyz_is_ok_when_ready(void **state)
{
    struct reply reply;

    hr_health_set_ready(NULL);
    assert_true(hr_health_is_ready(NULL, 0));
    request(*state, "GET", "/readyz", &reply);
    assert_int_equal(reply.status, 200);
    assert_string_equal(reply.body, "ready\n");
    reply_release(&reply);
}

static void test_readyz_reports_reason_when_not_ready(void **state)
{
    struct reply reply;
    char reason[64] = "";

    hr_health_set_ready("redis unavailable: connection refused");
    assert_false(hr_health_is_ready(reason, sizeof(reason)));
    assert_string_equal(reason, "redis unavailable: connection refused");
    request(*state, "GET", "/readyz", &reply);
    assert_int_equal(reply.status, 503);
    assert_string_equal(reply.content_type, "text/plain; charset=utf-8");
    assert_string_equal(reply.body,
                        "not ready: redis unavailable: connection refused\n");
    reply_release(&reply);
    hr_health_set_ready(NULL);
}

static void test_unknown_path_is_404(void **state)
{
    struct reply reply;

    request(*state, "GET", "/nope", &reply);
    assert_int_equal(reply.status, 404);
    reply_release(&reply);
    request(*state, "GET", "/metrics/", &reply);
    assert_int_equal(reply.status, 404);
    reply_release(&reply);
}

static void test_post_is_405(void **state)
{
    struct reply reply;

    request(*state, "POST", "/metrics", &reply);
    assert_int_equal(reply.status, 405);
    assert_non_null(strstr(reply.allow, "GET, HEAD"));
    reply_release(&reply);
}

static void test_start_rejects_bad_addresses(void **state)
{
    static const char *const bad[] = {"nope",       "127.0.0.1:99999",
                                      "127.0.0.1:", "127.0.0.1:x",
                                      "[::1",       "[::1]9400"};
    char errstr[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errstr[0] = '\0';
        assert_null(hr_httpd_start(bad[i], NULL, errstr, sizeof(errstr)));
        assert_true(strlen(errstr) > 0);
    }
}

static void test_start_fails_when_port_is_taken(void **state)
{
    struct fixture *fx = *state;
    char addr[64], errstr[256] = "";

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", hr_httpd_port(fx->httpd));
    assert_null(hr_httpd_start(addr, fx->reg, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, addr));
}

static void test_start_on_ipv6_loopback(void **state)
{
    struct fixture *fx = *state;
    char errstr[256] = "";
    struct hr_httpd *httpd =
        hr_httpd_start("[::1]:0", fx->reg, errstr, sizeof(errstr));

    if (!httpd) {
        fprintf(stderr, "no IPv6 loopback: %s\n", errstr);
        skip();
    }
    assert_true(hr_httpd_port(httpd) > 0);
    hr_httpd_stop(httpd);
}

static void test_stop_null_is_noop(void **state)
{
    (void)state;
    hr_httpd_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_process_starts_not_ready_but_alive),
        cmocka_unit_test_setup_teardown(test_port_zero_binds_a_free_port, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_serves_registry_text,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_query_string_is_ignored,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_metrics_has_no_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_healthz_is_ok_while_beating, setup,
                                        teardown),
        cmocka_unit_test(test_liveness_expires_without_beat),
        cmocka_unit_test_setup_teardown(test_readyz_is_ok_when_ready, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_readyz_reports_reason_when_not_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_path_is_404, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_post_is_405, setup, teardown),
        cmocka_unit_test(test_start_rejects_bad_addresses),
        cmocka_unit_test_setup_teardown(test_start_fails_when_port_is_taken,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_on_ipv6_loopback, setup,
                                        teardown),
        cmocka_unit_test(test_stop_null_is_noop),
    };

    return cmocka_run_group_tests_name("httpd", tests, group_setup,
                                       group_teardown);
}
