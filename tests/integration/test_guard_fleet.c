/*
 * The retry-storm guard as issue 4 asks it to be shown: herald-fanout
 * calling a webhook of the scriptable fake HTTP server, herald-guard
 * scheduling its retries, on a real redis-server and herald-devbroker, at
 * the issue's scale. Counts are taken at the server. Timing is asserted
 * only as lower bounds and per-second counts.
 *
 *   1. 401 storm: 10,000 events, zero retries, a handful of calls, 10,000
 *      dead letters; redrive after the fix delivers each exactly once.
 *   2. Outage: 503 for 20 s, then 200: every event delivered exactly once,
 *      retries at the server within the budget, the circuit open then
 *      closed; every metric the issue and the guard's dashboard and alert
 *      rules name is on /metrics.
 *   3. 429 with Retry-After: 5: no call to the destination before 5 s.
 */
#include <inttypes.h>
#include <setjmp.h>
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

#define TOPICS                                                        \
    "storm:4,storm.retry:4,storm.redeliver.fanout:4,storm.dlq:4,"     \
    "outage:4,outage.retry:4,outage.redeliver.fanout:4,outage.dlq:1," \
    "slow:1,slow.retry:1,slow.redeliver.fanout:1,slow.dlq:1"

static struct gf_env *env;

static int64_t summary_field(const char *t, const char *field)
{
    json_t *s = gf_summary(env, t);
    int64_t v = gf_summary_int(s, field);

    json_decref(s);
    return v;
}

/* ---- 1. 401 storm -------------------------------------------------------- */

struct dead_count {
    int auth;
    int other;
};

/* Whether @len bytes at @p contain @needle. */
static bool has(const void *p, size_t len, const char *needle)
{
    size_t nl = strlen(needle);

    for (size_t i = 0; p && i + nl <= len; i++) {
        if (!memcmp((const char *)p + i, needle, nl))
            return true;
    }
    return false;
}

static int count_dead(void *opaque, const rd_kafka_message_t *rkm)
{
    struct dead_count *c = opaque;
    rd_kafka_headers_t *hdrs;
    const void *cls = NULL, *err = NULL;
    size_t cls_len = 0, err_len = 0;

    if (!rd_kafka_message_headers(rkm, &hdrs)) {
        (void)rd_kafka_header_get_last(hdrs, "herald-error-class", &cls,
                                       &cls_len);
        (void)rd_kafka_header_get_last(hdrs, "herald-error", &err, &err_len);
    }
    /* the reason says why: the 401 itself, or the broken circuit */
    if (cls && cls_len == 4 && !memcmp(cls, "auth", 4) && err &&
        (has(err, err_len, "HTTP 401") || has(err, err_len, "auth broken")))
        c->auth++;
    else
        c->other++;
    return 0;
}

struct gauge_arg {
    const struct gf_proc *p;
    const char *series;
    double want;
};

static bool gauge_is(void *arg)
{
    const struct gauge_arg *a = arg;

    return gf_metric(a->p, a->series) == a->want;
}

static void test_401_storm_dead_letters_without_retries(void **state)
{
    static const char *const circuit[] = {"HERALD_GUARD_CIRCUIT_OPEN_MS=3000",
                                          NULL};
    static const char *const redrive[] = {"redrive", "--from", "storm.dlq",
                                          "--rate",  "20000",  NULL};
    const char *storm_401 = "herald_guard_auth_failures_total{worker=\"guard\","
                            "destination=\"webhook:storm\"}";
    const char *state_of = "herald_guard_circuit_state{worker=\"guard\","
                           "destination=\"webhook:storm\"}";
    struct gf_proc *fanout, *guard;
    struct dead_count dead = {0, 0};
    int64_t calls, refused;

    (void)state;
    assert_int_equal(hx_fake_http_route(env->http, "{\"path\":\"/storm\","
                                                   "\"status\":401}"),
                     0);
    fanout = gf_fanout_start(env, "storm", circuit);
    guard = gf_guard_start(env, "storm", circuit);
    assert_non_null(fanout);
    assert_non_null(guard);
    assert_int_equal(gf_produce(env, "storm", 0, 10000, 1000), 0);
    assert_int_equal(gf_wait_metric(fanout,
                                    "herald_events_processed_total{worker="
                                    "\"fanout\",outcome=\"dead_lettered\"}",
                                    10000, 240000),
                     0);

    /* zero retries, and the calls stopped at the auth-broken threshold:
     * the few of the first wave, and a failed probe now and then */
    assert_int_equal(gf_topic_count(env, "storm.retry"), 0);
    calls = summary_field("storm", "requests");
    fprintf(stderr, "401 storm: %" PRId64 " calls for 10000 events\n", calls);
    assert_true(calls >= 3);
    assert_true(calls <= 12);
    assert_int_equal(summary_field("storm", "ok_keys"), 0);
    assert_int_equal(hx_consume_all(hx_broker_bootstraps(env->broker),
                                    "storm.dlq", 3000, 60000, count_dead,
                                    &dead),
                     10000);
    assert_int_equal(dead.auth, 10000);
    assert_int_equal(dead.other, 0);
    assert_true(gf_metric(guard, "herald_guard_redelivered_total{") <= 0);
    /* the guard counts every 401 the fleet got, and shows the circuit */
    refused = calls; /* every call was answered 401 */
    assert_int_equal(gf_wait_metric(guard, storm_401, (double)refused, 10000),
                     0);
    assert_true(gf_metric(guard, storm_401) == (double)refused);
    {
        struct gauge_arg g = {guard, state_of, 2};

        assert_int_equal(hx_wait_until(gauge_is, &g, 10000), 0);
    }

    /* the credentials are fixed; once a probe may go, one fresh event
     * closes the circuit, and redrive moves the dead letters back */
    assert_int_equal(hx_fake_http_route(env->http, "{\"path\":\"/storm\","
                                                   "\"status\":200}"),
                     0);
    {
        struct gauge_arg g = {guard, state_of, 1};

        assert_int_equal(hx_wait_until(gauge_is, &g, 15000), 0);
    }
    assert_int_equal(gf_produce(env, "storm", 10000, 1, 1000), 0);
    assert_int_equal(gf_wait_delivered(env, "storm", 1, 30000), 0);
    {
        char brokers[600],
            prefix[] = "HERALD_GUARD_REDELIVER_PREFIX=storm.redeliver.";
        char out[600], err[600];
        const char *argv[8], *envp[] = {brokers, prefix, NULL};
        struct hx_proc *p;
        int status = -1, a = 0;

        argv[a++] = hx_bin("herald-guard");
        for (int i = 0; redrive[i]; i++)
            argv[a++] = redrive[i];
        argv[a] = NULL;
        snprintf(brokers, sizeof(brokers), "HERALD_KAFKA_BROKERS=%s",
                 hx_broker_bootstraps(env->broker));
        snprintf(out, sizeof(out), "%s/redrive.out", env->dir);
        snprintf(err, sizeof(err), "%s/redrive.err", env->dir);
        p = hx_proc_spawn(argv, envp, out, err);
        assert_non_null(p);
        assert_int_equal(hx_proc_wait(p, 120000, &status), 0);
        hx_proc_free(p);
        assert_int_equal(status, 0);
    }
    assert_int_equal(gf_wait_delivered(env, "storm", 10001, 240000), 0);
    /* exactly once: no event was answered 2xx twice */
    assert_int_equal(summary_field("storm", "ok_repeats"), 0);
    assert_int_equal(summary_field("storm", "ok_keys"), 10001);
    assert_int_equal(gf_topic_count(env, "storm.retry"), 0);
    assert_int_equal(gf_proc_stop(fanout), 0);
    assert_int_equal(gf_proc_stop(guard), 0);
    gf_proc_free(fanout);
    gf_proc_free(guard);
}

/* ---- 2. outage ----------------------------------------------------------- */

/* Every herald_* name that @file (under dashboards/) uses, histogram
 * suffixes stripped, into @names (NUL-separated, deduplicated). */
static size_t dashboard_names(const char *file, char names[][96], size_t max)
{
    char path[512], *text, *p;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/dashboards/%s", HX_SOURCE_DIR, file);
    text = hx_file_read(path, NULL);
    assert_non_null(text);
    for (p = text; (p = strstr(p, "herald_"));) {
        size_t len = 0, i;

        while (len + 1 < sizeof(names[0]) &&
               ((p[len] >= 'a' && p[len] <= 'z') ||
                (p[len] >= '0' && p[len] <= '9') || p[len] == '_'))
            len++;
        for (i = 0; i < n; i++) {
            if (strlen(names[i]) == len && !memcmp(names[i], p, len))
                break;
        }
        if (i == n && n < max) {
            memcpy(names[n], p, len);
            names[n][len] = '\0';
            for (size_t k = 0; k < 3; k++) {
                static const char *const sfx[] = {"_bucket", "_sum", "_count"};
                size_t sl = strlen(sfx[k]);

                if (len > sl && !strcmp(names[n] + len - sl, sfx[k]) &&
                    !strstr(names[n], "_total"))
                    names[n][len - sl] = '\0';
            }
            n++;
        }
        p += len;
    }
    free(text);
    return n;
}

/* Each metric issue 4 names, and each one the guard's dashboard and alert
 * rules use, has a TYPE line on the guard's /metrics, and the ones this
 * scenario must have produced have series. */
static void check_guard_metrics(const struct gf_proc *guard)
{
    static const char *const issue[] = {
        "herald_guard_scheduled",
        "herald_guard_redelivered_total",
        "herald_guard_dead_lettered_total",
        "herald_guard_circuit_state",
        "herald_guard_budget_throttled_total",
        "herald_guard_auth_failures_total",
    };
    static const char *const series[] = {
        "herald_guard_scheduled{worker=\"guard\"}",
        "herald_guard_parked{worker=\"guard\"}",
        "herald_guard_redelivered_total{worker=\"guard\",target_worker="
        "\"fanout\",destination=\"webhook:outage\"}",
        "herald_guard_circuit_state{worker=\"guard\",destination="
        "\"webhook:outage\"}",
        "herald_guard_budget_throttled_total{worker=\"guard\",destination="
        "\"webhook:outage\"}",
    };
    /* the alert rules span the fleet: deploy/dead_panels checks them */
    static const char *const files[] = {"herald-guard.json"};
    char *text = hx_metrics_get(guard->port);
    char names[64][96], type[160];
    int missing = 0;

    assert_non_null(text);
    for (size_t i = 0; i < sizeof(issue) / sizeof(issue[0]); i++) {
        snprintf(type, sizeof(type), "# TYPE %s ", issue[i]);
        if (!strstr(text, type)) {
            fprintf(stderr, "issue metric %s missing\n", issue[i]);
            missing++;
        }
    }
    for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        if (!strstr(text, series[i])) {
            fprintf(stderr, "no series %s\n", series[i]);
            missing++;
        }
    }
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        size_t n = dashboard_names(files[f], names, 64);

        assert_true(n >= 5);
        for (size_t i = 0; i < n; i++) {
            snprintf(type, sizeof(type), "# TYPE %s ", names[i]);
            if (!strstr(text, type)) {
                fprintf(stderr, "%s uses %s, which /metrics lacks\n", files[f],
                        names[i]);
                missing++;
            }
        }
    }
    free(text);
    assert_int_equal(missing, 0);
}

/*
 * Per second at the server, repeated calls (an event called again) stay
 * within the budget: floor + ratio x successes per second over the
 * 10-second window. A redelivery admitted in one second may reach the
 * server in the next: each second is allowed its budget and the previous
 * second's.
 */
static void check_retry_rate(const json_t *summary, double floor, double ratio)
{
    const json_t *rep = json_object_get(summary, "repeats_by_second");
    const json_t *ok = json_object_get(summary, "ok_by_second");
    int64_t first = gf_summary_int(summary, "first_ms") / 1000;
    int64_t last = gf_summary_int(summary, "last_ms") / 1000;
    double prev_allowed = floor;

    for (int64_t s = first; s <= last; s++) {
        char key[32];
        double succ = 0, allowed;
        json_int_t repeats;

        for (int64_t w = s - 10; w < s; w++) {
            snprintf(key, sizeof(key), "%" PRId64, w);
            succ += (double)json_integer_value(json_object_get(ok, key));
        }
        allowed = floor + ratio * succ / 10;
        snprintf(key, sizeof(key), "%" PRId64, s);
        repeats = json_integer_value(json_object_get(rep, key));
        if (repeats > allowed + prev_allowed)
            fprintf(stderr,
                    "second %" PRId64 ": %lld repeated calls, "
                    "budget %.1f\n",
                    s - first, (long long)repeats, allowed);
        assert_true((double)repeats <= allowed + prev_allowed);
        prev_allowed = allowed;
    }
}

static void test_outage_delivers_everything_once_within_budget(void **state)
{
    static const char *const fanout_env[] = {
        "HERALD_GUARD_CIRCUIT_OPEN_MS=2000", NULL};
    static const char *const guard_env[] = {
        "HERALD_GUARD_CIRCUIT_OPEN_MS=2000", "HERALD_GUARD_BASE_DELAY_MS=200",
        "HERALD_GUARD_MAX_DELAY_MS=2000",
        /* a 20 s outage must not exhaust anybody's attempts */
        "HERALD_GUARD_MAX_ATTEMPTS=100", NULL};
    const char *state_of = "herald_guard_circuit_state{worker=\"guard\","
                           "destination=\"webhook:outage\"}";
    struct gf_proc *fanout, *guard;
    int64_t t0, opened_at = -1, closed_at = -1;
    json_t *summary;

    (void)state;
    assert_int_equal(hx_fake_http_route(env->http, "{\"path\":\"/outage\","
                                                   "\"status\":503}"),
                     0);
    fanout = gf_fanout_start(env, "outage", fanout_env);
    guard = gf_guard_start(env, "outage", guard_env);
    assert_non_null(fanout);
    assert_non_null(guard);
    assert_int_equal(gf_produce(env, "outage", 0, 1000, 100), 0);
    t0 = hx_now_ms();
    /* 503 for 20 s, watching the circuit the guard reports */
    while (hx_now_ms() - t0 < 20000) {
        if (opened_at < 0 && gf_metric(guard, state_of) == 2)
            opened_at = hx_now_ms() - t0;
        hx_sleep_ms(200);
    }
    assert_true(opened_at >= 0);
    assert_int_equal(summary_field("outage", "ok_keys"), 0);
    assert_int_equal(hx_fake_http_route(env->http, "{\"path\":\"/outage\","
                                                   "\"status\":200}"),
                     0);
    while (hx_now_ms() - t0 < 200000) {
        if (closed_at < 0 && gf_metric(guard, state_of) == 0)
            closed_at = hx_now_ms() - t0;
        if (closed_at >= 0 && summary_field("outage", "ok_keys") >= 1000)
            break;
        hx_sleep_ms(200);
    }
    fprintf(stderr,
            "outage: open at %" PRId64 " ms, closed at %" PRId64
            " ms, all delivered at %" PRId64 " ms\n",
            opened_at, closed_at, hx_now_ms() - t0);
    assert_true(closed_at > opened_at);
    summary = gf_summary(env, "outage");
    assert_non_null(summary);
    assert_int_equal(gf_summary_int(summary, "ok_keys"), 1000);
    assert_int_equal(gf_summary_int(summary, "ok_repeats"), 0);
    check_retry_rate(summary, 10, 0.2);
    json_decref(summary);
    assert_int_equal(gf_topic_count(env, "outage.dlq"), 0);
    check_guard_metrics(guard);
    assert_int_equal(gf_proc_stop(fanout), 0);
    assert_int_equal(gf_proc_stop(guard), 0);
    gf_proc_free(fanout);
    gf_proc_free(guard);
}

/* ---- 3. 429 with Retry-After --------------------------------------------- */

static void test_429_retry_after_holds_the_destination(void **state)
{
    struct gf_proc *fanout, *guard;
    json_t *reqs, *req;
    int64_t first_ms = -1;
    size_t i;

    (void)state;
    assert_int_equal(hx_fake_http_route(env->http,
                                        "{\"path\":\"/slow\","
                                        "\"statuses\":[429,200],"
                                        "\"headers\":{\"Retry-After\":\"5\"}}"),
                     0);
    fanout = gf_fanout_start(env, "slow", NULL);
    guard = gf_guard_start(env, "slow", NULL);
    assert_non_null(fanout);
    assert_non_null(guard);
    assert_int_equal(gf_produce(env, "slow", 0, 1, 4), 0);
    for (int tries = 0; summary_field("slow", "requests") < 1; tries++) {
        assert_true(tries < 600); /* 30 s */
        hx_sleep_ms(50);
    }
    /* more events for the same destination while it asked us to wait */
    assert_int_equal(gf_produce(env, "slow", 1, 3, 4), 0);
    assert_int_equal(gf_wait_delivered(env, "slow", 4, 60000), 0);
    reqs = gf_requests(env, "slow");
    json_array_foreach(reqs, i, req)
    {
        int64_t at = json_integer_value(json_object_get(req, "time_ms"));

        if (first_ms < 0) {
            assert_int_equal(json_integer_value(json_object_get(req, "status")),
                             429);
            first_ms = at;
            continue;
        }
        fprintf(stderr, "call %zu at +%" PRId64 " ms\n", i, at - first_ms);
        assert_true(at >= first_ms + 5000);
    }
    assert_int_equal(json_array_size(reqs), 5);
    json_decref(reqs);
    assert_int_equal(summary_field("slow", "ok_repeats"), 0);
    assert_int_equal(gf_proc_stop(fanout), 0);
    assert_int_equal(gf_proc_stop(guard), 0);
    gf_proc_free(fanout);
    gf_proc_free(guard);
}

static int group_setup(void **state)
{
    env = gf_env_start(NULL, TOPICS);
    *state = env;
    return env ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_401_storm_dead_letters_without_retries, gf_test_setup,
            gf_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_outage_delivers_everything_once_within_budget, gf_test_setup,
            gf_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_429_retry_after_holds_the_destination, gf_test_setup,
            gf_test_teardown),
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("herald-guard at the issue's scale",
                                       tests, group_setup, gf_group_teardown);
}
