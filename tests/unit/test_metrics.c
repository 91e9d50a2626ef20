/* Unit tests for hr_metrics: exact Prometheus text for every metric type. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hr_banned.h"
#include "hr_metrics.h"

#define VALUES(...) ((const char *const[]){__VA_ARGS__})

static int setup(void **state)
{
    *state = hr_metrics_new("unread");
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    hr_metrics_free(*state);
    return 0;
}

/* Render @reg and compare the whole text with @expected. */
static void assert_renders(struct hr_metrics *reg, const char *expected)
{
    size_t len = 0;
    char *text = hr_metrics_render(reg, &len);

    assert_non_null(text);
    assert_string_equal(text, expected);
    assert_int_equal(len, strlen(expected));
    free(text);
}

static void test_empty_registry_renders_empty_text(void **state)
{
    assert_renders(*state, "");
}

static void test_counter_renders_with_worker_label(void **state)
{
    struct hr_metrics *reg = *state;
    struct hr_metric *m = hr_metrics_counter(
        reg, "herald_events_consumed_total", "Events read", "topic");

    hr_metric_add(m, VALUES("herald.messages"), 1);
    hr_metric_add(m, VALUES("herald.messages"), 2);
    hr_metric_add(m, VALUES("herald.retry"), 1);
    assert_renders(reg, "# HELP herald_events_consumed_total Events read\n"
                        "# TYPE herald_events_consumed_total counter\n"
                        "herald_events_consumed_total{worker=\"unread\","
                        "topic=\"herald.messages\"} 3\n"
                        "herald_events_consumed_total{worker=\"unread\","
                        "topic=\"herald.retry\"} 1\n");
}

static void test_counter_ignores_negative_increment(void **state)
{
    struct hr_metric *m =
        hr_metrics_counter(*state, "errors_total", "Errors", NULL);

    hr_metric_add(m, NULL, 2);
    hr_metric_add(m, NULL, -1);
    hr_metric_add(m, NULL, NAN);
    assert_true(hr_metric_value(m, NULL) == 2);
}

static void test_labelless_metrics_render_zero_before_update(void **state)
{
    struct hr_metrics *reg = *state;

    hr_metrics_counter(reg, "herald_redis_errors_total", "Redis errors", NULL);
    hr_metrics_gauge(reg, "herald_guard_scheduled", "Scheduled", NULL);
    hr_metrics_histogram(reg, "wait_seconds", "Wait", NULL,
                         (const double[]){0.5, 1}, 2);
    assert_renders(reg, "# HELP herald_redis_errors_total Redis errors\n"
                        "# TYPE herald_redis_errors_total counter\n"
                        "herald_redis_errors_total{worker=\"unread\"} 0\n"
                        "# HELP herald_guard_scheduled Scheduled\n"
                        "# TYPE herald_guard_scheduled gauge\n"
                        "herald_guard_scheduled{worker=\"unread\"} 0\n"
                        "# HELP wait_seconds Wait\n"
                        "# TYPE wait_seconds histogram\n"
                        "wait_seconds_bucket{worker=\"unread\",le=\"0.5\"} 0\n"
                        "wait_seconds_bucket{worker=\"unread\",le=\"1\"} 0\n"
                        "wait_seconds_bucket{worker=\"unread\",le=\"+Inf\"} 0\n"
                        "wait_seconds_sum{worker=\"unread\"} 0\n"
                        "wait_seconds_count{worker=\"unread\"} 0\n");
}

static void test_labelled_metric_without_series_prints_only_header(void **state)
{
    struct hr_metrics *reg = *state;

    hr_metrics_gauge(reg, "herald_consumer_lag", "Lag", "topic,partition");
    assert_renders(reg, "# HELP herald_consumer_lag Lag\n"
                        "# TYPE herald_consumer_lag gauge\n");
}

static void test_gauge_set_add_and_special_values(void **state)
{
    struct hr_metrics *reg = *state;
    struct hr_metric *m = hr_metrics_gauge(reg, "g", "G", "k");

    hr_metric_set(m, VALUES("a"), 5);
    hr_metric_add(m, VALUES("a"), -7);
    hr_metric_set(m, VALUES("b"), 0.1);
    hr_metric_set(m, VALUES("c"), INFINITY);
    hr_metric_set(m, VALUES("d"), -INFINITY);
    hr_metric_set(m, VALUES("e"), NAN);
    hr_metric_set(m, VALUES("f"), 1e20);
    hr_metric_set(m, VALUES("g"), 1.0 / 3);
    assert_renders(reg, "# HELP g G\n"
                        "# TYPE g gauge\n"
                        "g{worker=\"unread\",k=\"a\"} -2\n"
                        "g{worker=\"unread\",k=\"b\"} 0.1\n"
                        "g{worker=\"unread\",k=\"c\"} +Inf\n"
                        "g{worker=\"unread\",k=\"d\"} -Inf\n"
                        "g{worker=\"unread\",k=\"e\"} NaN\n"
                        "g{worker=\"unread\",k=\"f\"} 1e+20\n"
                        "g{worker=\"unread\",k=\"g\"} 0.3333333333333333\n");
}

static void test_label_values_and_help_are_escaped(void **state)
{
    struct hr_metrics *reg = hr_metrics_new("w\"x");
    struct hr_metric *m = hr_metrics_counter(
        reg, "esc_total", "Back\\slash and\nnewline \"quoted\"", "a,b");

    (void)state;
    hr_metric_add(m, VALUES("x\\y", "line\n\"q\""), 1);
    assert_renders(reg, "# HELP esc_total Back\\\\slash and\\nnewline "
                        "\"quoted\"\n"
                        "# TYPE esc_total counter\n"
                        "esc_total{worker=\"w\\\"x\",a=\"x\\\\y\","
                        "b=\"line\\n\\\"q\\\"\"} 1\n");
    hr_metrics_free(reg);
}

static void test_histogram_buckets_are_cumulative(void **state)
{
    struct hr_metrics *reg = *state;
    struct hr_metric *m =
        hr_metrics_histogram(reg, "lat_seconds", "Latency", "topic",
                             (const double[]){0.125, 1, 2.5}, 3);

    hr_metric_observe(m, VALUES("t"), 0.0625, 1);
    hr_metric_observe(m, VALUES("t"), 0.125, 1); /* le is inclusive */
    hr_metric_observe(m, VALUES("t"), 0.5, 2);
    hr_metric_observe(m, VALUES("t"), 100, 1);
    assert_renders(reg,
                   "# HELP lat_seconds Latency\n"
                   "# TYPE lat_seconds histogram\n"
                   "lat_seconds_bucket{worker=\"unread\",topic=\"t\","
                   "le=\"0.125\"} 2\n"
                   "lat_seconds_bucket{worker=\"unread\",topic=\"t\","
                   "le=\"1\"} 4\n"
                   "lat_seconds_bucket{worker=\"unread\",topic=\"t\","
                   "le=\"2.5\"} 4\n"
                   "lat_seconds_bucket{worker=\"unread\",topic=\"t\","
                   "le=\"+Inf\"} 5\n"
                   "lat_seconds_sum{worker=\"unread\",topic=\"t\"} 101.1875\n"
                   "lat_seconds_count{worker=\"unread\",topic=\"t\"} 5\n");
    assert_true(hr_metric_value(m, VALUES("t")) == 5);
}

static void test_histogram_default_buckets(void **state)
{
    struct hr_metrics *reg = *state;
    struct hr_metric *m =
        hr_metrics_histogram(reg, "herald_event_processing_seconds",
                             "Processing time", NULL, NULL, 0);

    hr_metric_observe(m, NULL, 0.003, 1);
    assert_renders(
        reg, "# HELP herald_event_processing_seconds Processing time\n"
             "# TYPE herald_event_processing_seconds histogram\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.0005\"} 0\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.001\"} 0\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.0025\"} 0\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.005\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.01\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.025\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.05\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.1\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.25\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"0.5\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"1\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"2.5\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"5\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"10\"} 1\n"
             "herald_event_processing_seconds_bucket{worker=\"unread\","
             "le=\"+Inf\"} 1\n"
             "herald_event_processing_seconds_sum{worker=\"unread\"} 0.003\n"
             "herald_event_processing_seconds_count{worker=\"unread\"} 1\n");
}

static void test_metrics_render_in_declaration_order(void **state)
{
    struct hr_metrics *reg = *state;
    struct hr_metric *b = hr_metrics_counter(reg, "b_total", "B", NULL);
    struct hr_metric *a = hr_metrics_counter(reg, "a_total", "A", "x");

    hr_metric_add(a, VALUES("2"), 1);
    hr_metric_add(a, VALUES("1"), 1);
    hr_metric_add(b, NULL, 4);
    assert_renders(reg, "# HELP b_total B\n"
                        "# TYPE b_total counter\n"
                        "b_total{worker=\"unread\"} 4\n"
                        "# HELP a_total A\n"
                        "# TYPE a_total counter\n"
                        "a_total{worker=\"unread\",x=\"2\"} 1\n"
                        "a_total{worker=\"unread\",x=\"1\"} 1\n");
}

static void test_redeclaring_returns_same_metric(void **state)
{
    struct hr_metrics *reg = *state;
    struct hr_metric *m = hr_metrics_counter(reg, "c_total", "C", "a, b");

    assert_ptr_equal(hr_metrics_counter(reg, "c_total", "C", "a,b"), m);
    assert_ptr_equal(hr_metrics_find(reg, "c_total"), m);
    assert_null(hr_metrics_find(reg, "missing_total"));
}

static void test_remove_drops_one_series(void **state)
{
    struct hr_metrics *reg = *state;
    struct hr_metric *m =
        hr_metrics_gauge(reg, "herald_consumer_lag", "Lag", "topic,partition");

    hr_metric_set(m, VALUES("t", "0"), 10);
    hr_metric_set(m, VALUES("t", "1"), 11);
    hr_metric_set(m, VALUES("t", "2"), 12);
    hr_metric_remove(m, VALUES("t", "1"));
    hr_metric_remove(m, VALUES("t", "9")); /* absent: no-op */
    assert_true(hr_metric_value(m, VALUES("t", "1")) == 0);
    assert_true(hr_metric_value(m, VALUES("t", "2")) == 12);
    assert_renders(reg, "# HELP herald_consumer_lag Lag\n"
                        "# TYPE herald_consumer_lag gauge\n"
                        "herald_consumer_lag{worker=\"unread\",topic=\"t\","
                        "partition=\"0\"} 10\n"
                        "herald_consumer_lag{worker=\"unread\",topic=\"t\","
                        "partition=\"2\"} 12\n");
    /* Re-adding puts the series at the end. */
    hr_metric_set(m, VALUES("t", "1"), 1);
    hr_metric_remove(m, VALUES("t", "0"));
    hr_metric_remove(m, VALUES("t", "2"));
    assert_renders(reg, "# HELP herald_consumer_lag Lag\n"
                        "# TYPE herald_consumer_lag gauge\n"
                        "herald_consumer_lag{worker=\"unread\",topic=\"t\","
                        "partition=\"1\"} 1\n");
}

static void test_remove_resets_labelless_series(void **state)
{
    struct hr_metrics *reg = *state;
    struct hr_metric *m = hr_metrics_gauge(reg, "g", "G", NULL);

    hr_metric_set(m, NULL, 3);
    hr_metric_remove(m, NULL);
    assert_renders(reg, "# HELP g G\n"
                        "# TYPE g gauge\n"
                        "g{worker=\"unread\"} 0\n");
}

static void test_many_series_stay_distinct(void **state)
{
    struct hr_metric *m = hr_metrics_gauge(*state, "lag", "Lag", "p");
    char buf[16];
    int i;

    for (i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        hr_metric_set(m, VALUES(buf), i);
    }
    for (i = 0; i < 1000; i += 2) {
        snprintf(buf, sizeof(buf), "%d", i);
        hr_metric_remove(m, VALUES(buf));
    }
    for (i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        assert_true(hr_metric_value(m, VALUES(buf)) == (i % 2 ? i : 0));
    }
}

static void test_value_distinguishes_label_boundaries(void **state)
{
    struct hr_metric *m = hr_metrics_counter(*state, "c_total", "C", "a,b");

    hr_metric_add(m, VALUES("ab", "c"), 1);
    hr_metric_add(m, VALUES("a", "bc"), 2);
    assert_true(hr_metric_value(m, VALUES("ab", "c")) == 1);
    assert_true(hr_metric_value(m, VALUES("a", "bc")) == 2);
    assert_true(hr_metric_value(m, VALUES("abc", "")) == 0);
}

#define THREADS    4
#define ITERATIONS 20000

static void *update_thread(void *arg)
{
    struct hr_metrics *reg = arg;
    struct hr_metric *c = hr_metrics_find(reg, "hits_total");
    struct hr_metric *h = hr_metrics_find(reg, "lat_seconds");
    char *text;
    int i;

    for (i = 0; i < ITERATIONS; i++) {
        hr_metric_add(c, VALUES(i % 2 ? "odd" : "even"), 1);
        hr_metric_observe(h, NULL, 0.01, 1);
        if (i % 1000 == 0) {
            text = hr_metrics_render(reg, NULL);
            free(text);
        }
    }
    return NULL;
}

static void test_concurrent_updates_sum_correctly(void **state)
{
    struct hr_metrics *reg = *state;
    struct hr_metric *c = hr_metrics_counter(reg, "hits_total", "Hits", "p");
    struct hr_metric *h =
        hr_metrics_histogram(reg, "lat_seconds", "Latency", NULL, NULL, 0);
    pthread_t threads[THREADS];
    int i;

    for (i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, update_thread, reg),
                         0);
    for (i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_true(hr_metric_value(c, VALUES("odd")) == THREADS * ITERATIONS / 2);
    assert_true(hr_metric_value(c, VALUES("even")) == THREADS * ITERATIONS / 2);
    assert_true(hr_metric_value(h, NULL) == THREADS * ITERATIONS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_registry_renders_empty_text,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_renders_with_worker_label,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_ignores_negative_increment,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_labelless_metrics_render_zero_before_update, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_labelled_metric_without_series_prints_only_header, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_gauge_set_add_and_special_values,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_values_and_help_are_escaped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_buckets_are_cumulative,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_default_buckets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_metrics_render_in_declaration_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redeclaring_returns_same_metric,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_drops_one_series, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_remove_resets_labelless_series,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_series_stay_distinct, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_value_distinguishes_label_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_updates_sum_correctly,
                                        setup, teardown),
    };

    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
