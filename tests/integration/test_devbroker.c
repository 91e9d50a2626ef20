/*
 * herald-devbroker end to end: bootstrap line, topics and partition counts,
 * a produce/consume round trip, fault injection through --control, the
 * eviction warning, signals and flags.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "hr_banned.h"

#define ROUND_TRIP_CNT 200
#define EVICT_MSG_SIZE (64 * 1024)
#define EVICT_MSG_CNT  120 /* 7.5 MiB into one partition, over the 5 MiB */

/* The group broker: default topics with 8 partitions plus these. */
#define GROUP_TOPICS "x:3,herald.dlq:2,evict:1,errs:4"

static int group_setup(void **state)
{
    struct hx_broker *broker = hx_broker_start(GROUP_TOPICS, 8);

    if (!broker)
        return -1;
    *state = broker;
    return 0;
}

static int group_teardown(void **state)
{
    hx_broker_free(*state);
    return 0;
}

static void test_bootstrap_line_names_the_brokers(void **state)
{
    struct hx_broker *broker = *state;
    const char *bootstraps = hx_broker_bootstraps(broker);
    const char *colon = strrchr(bootstraps, ':');

    assert_non_null(colon);
    assert_true(atol(colon + 1) > 0);
    assert_int_equal(hx_broker_control(broker, "ping"), 0);
}

static void test_topics_get_their_partition_counts(void **state)
{
    const char *bootstraps = hx_broker_bootstraps(*state);

    /* --partitions 8 for the defaults, --topics overrides and adds. */
    assert_int_equal(hx_topic_partitions(bootstraps, "herald.messages"), 8);
    assert_int_equal(hx_topic_partitions(bootstraps, "herald.redeliver.guard"),
                     8);
    assert_int_equal(hx_topic_partitions(bootstraps, "herald.dlq"), 2);
    assert_int_equal(hx_topic_partitions(bootstraps, "x"), 3);
    assert_int_equal(hx_topic_partitions(bootstraps, "evict"), 1);
}

static void test_control_topic_creates_a_topic(void **state)
{
    struct hx_broker *broker = *state;

    assert_int_equal(hx_broker_control(broker, "topic y 5"), 0);
    assert_int_equal(hx_topic_partitions(hx_broker_bootstraps(broker), "y"), 5);
    /* The mock cluster cannot change a topic's partition count. */
    assert_int_equal(hx_broker_control(broker, "topic y 6"), -1);
}

struct round_trip {
    int seen[ROUND_TRIP_CNT];
    int bad;
};

static int check_round_trip(void *opaque, const rd_kafka_message_t *rkm)
{
    struct round_trip *rt = opaque;
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t val_len = 0;
    char key[32], value[32], id[32];
    int n;

    snprintf(value, sizeof(value), "%.*s", (int)rkm->len,
             (const char *)rkm->payload);
    if (sscanf(value, "{\"n\":%d}", &n) != 1 || n < 0 || n >= ROUND_TRIP_CNT) {
        rt->bad++;
        return 0;
    }
    snprintf(key, sizeof(key), "conversation-%d", n % 10);
    snprintf(id, sizeof(id), "event-%d", n);
    if (rkm->key_len != strlen(key) || memcmp(rkm->key, key, rkm->key_len) ||
        rd_kafka_message_headers(rkm, &hdrs) ||
        rd_kafka_header_get_last(hdrs, "ce_id", &val, &val_len) ||
        val_len != strlen(id) || memcmp(val, id, val_len) ||
        rd_kafka_header_get_last(hdrs, "ce_type", &val, &val_len) ||
        val_len != strlen("message.created")) {
        rt->bad++;
        return 0;
    }
    rt->seen[n]++;
    return 0;
}

static void test_round_trip_keeps_keys_and_headers(void **state)
{
    const char *bootstraps = hx_broker_bootstraps(*state);
    struct round_trip rt = {0};
    rd_kafka_t *rk = hx_producer_new(bootstraps);

    assert_non_null(rk);
    for (int n = 0; n < ROUND_TRIP_CNT; n++) {
        char key[32], value[32], id[32];
        const char *headers[] = {"ce_id", id, "ce_type", "message.created",
                                 NULL};

        snprintf(key, sizeof(key), "conversation-%d", n % 10);
        snprintf(value, sizeof(value), "{\"n\":%d}", n);
        snprintf(id, sizeof(id), "event-%d", n);
        assert_int_equal(hx_produce(rk, "herald.messages", key, strlen(key),
                                    value, strlen(value), headers),
                         0);
    }
    assert_int_equal(hx_producer_flush_free(rk, 10000), 0);

    assert_int_equal(hx_consume_all(bootstraps, "herald.messages", 5000, 15000,
                                    check_round_trip, &rt),
                     ROUND_TRIP_CNT);
    assert_int_equal(rt.bad, 0);
    for (int n = 0; n < ROUND_TRIP_CNT; n++)
        assert_int_equal(rt.seen[n], 1);
    assert_int_equal(hx_topic_count(bootstraps, "herald.messages"),
                     ROUND_TRIP_CNT);
}

static void test_injected_produce_errors_are_absorbed(void **state)
{
    struct hx_broker *broker = *state;
    const char *bootstraps = hx_broker_bootstraps(broker);
    rd_kafka_t *rk;

    assert_int_equal(
        hx_broker_control(broker, "errors Produce 3 NOT_LEADER_FOR_PARTITION"),
        0);
    rk = hx_producer_new(bootstraps);
    assert_non_null(rk);
    for (int n = 0; n < 100; n++) {
        char value[16];

        snprintf(value, sizeof(value), "%d", n);
        assert_int_equal(
            hx_produce(rk, "errs", NULL, 0, value, strlen(value), NULL), 0);
    }
    /* The idempotent producer retries: everything once, nothing twice. */
    assert_int_equal(hx_producer_flush_free(rk, 15000), 0);
    assert_int_equal(hx_topic_count(bootstraps, "errs"), 100);
}

static void test_control_rejects_bad_commands(void **state)
{
    struct hx_broker *broker = *state;

    assert_int_equal(hx_broker_control(broker, "errors Bogus 1 _TRANSPORT"),
                     -1);
    assert_int_equal(hx_broker_control(broker, "errors Produce 1 NO_SUCH"), -1);
    assert_int_equal(
        hx_broker_control(broker, "errors Produce 0 REQUEST_TIMED_OUT"), -1);
    assert_int_equal(hx_broker_control(broker, "errors Produce 1"), -1);
    assert_int_equal(hx_broker_control(broker, "nonsense"), -1);
    assert_int_equal(hx_broker_control(broker, "broker-down 9"), -1);
    assert_int_equal(hx_broker_control(broker, "topic bad/name 1"), -1);
    /* The broker still answers after errors. */
    assert_int_equal(hx_broker_control(broker, "ping"), 0);
}

static void test_control_faults_can_be_cleared(void **state)
{
    struct hx_broker *broker = *state;

    assert_int_equal(hx_broker_control(broker, "errors Metadata 5 _TRANSPORT"),
                     0);
    assert_int_equal(hx_broker_control(broker, "errors 12 2 UNKNOWN_MEMBER_ID"),
                     0);
    assert_int_equal(hx_broker_control(broker, "clear-errors Metadata"), 0);
    assert_int_equal(hx_broker_control(broker, "clear-errors"), 0);
    assert_int_equal(hx_broker_control(broker, "broker-down 1"), 0);
    assert_int_equal(hx_broker_control(broker, "broker-up 1"), 0);
    assert_int_equal(hx_topic_partitions(hx_broker_bootstraps(broker), "x"), 3);
}

static bool eviction_logged(void *arg)
{
    return hx_broker_log_contains(arg, "broker evicted messages");
}

static void test_eviction_is_reported(void **state)
{
    struct hx_broker *broker = *state;
    const char *bootstraps = hx_broker_bootstraps(broker);
    char *value = malloc(EVICT_MSG_SIZE);
    rd_kafka_t *rk = hx_producer_new(bootstraps);
    char *log;

    assert_non_null(value);
    assert_non_null(rk);
    memset(value, 'v', EVICT_MSG_SIZE);
    for (int n = 0; n < EVICT_MSG_CNT; n++)
        assert_int_equal(
            hx_produce(rk, "evict", NULL, 0, value, EVICT_MSG_SIZE, NULL), 0);
    assert_int_equal(hx_producer_flush_free(rk, 15000), 0);
    free(value);

    /* The data is gone, and the broker said so on stderr. */
    assert_true(hx_topic_count(bootstraps, "evict") < EVICT_MSG_CNT);
    assert_int_equal(hx_wait_until(eviction_logged, broker, 10000), 0);
    log = hx_file_read(hx_broker_log_path(broker), NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "\"evict\""));
    free(log);
}

/* A broker of our own, without --control: stops on SIGTERM with status 0,
 * and writes then removes --bootstrap-file. */
struct bootstrap_file {
    const char *path;     /* --bootstrap-file */
    const char *out_path; /* stdout */
};

/* Both written: the file first, then the line on stdout. */
static bool bootstrap_written(void *arg)
{
    const struct bootstrap_file *bf = arg;
    char *out = hx_file_read(bf->out_path, NULL);
    bool done = out && strchr(out, '\n') && access(bf->path, F_OK) == 0;

    free(out);
    return done;
}

static void test_sigterm_exits_zero(void **state)
{
    char *dir = hx_tmpdir_new("devbroker-sigterm");
    char out_path[512], file_path[512];
    struct bootstrap_file bf = {file_path, out_path};
    char *out, *file;
    struct hx_proc *p;
    int status = -1;

    (void)state;
    assert_non_null(dir);
    snprintf(out_path, sizeof(out_path), "%s/stdout", dir);
    snprintf(file_path, sizeof(file_path), "%s/bootstrap", dir);
    {
        const char *argv[] = {
            hx_bin("herald-devbroker"), "--partitions", "1", "--brokers", "2",
            "--bootstrap-file",         file_path,      NULL};

        p = hx_proc_spawn(argv, NULL, out_path, NULL);
    }
    assert_non_null(p);
    assert_int_equal(hx_wait_until(bootstrap_written, &bf, 10000), 0);
    out = hx_file_read(out_path, NULL);
    file = hx_file_read(file_path, NULL);
    assert_non_null(out);
    assert_non_null(file);
    assert_non_null(strchr(out, '\n'));
    assert_string_equal(out, file);     /* one line, the same in both */
    assert_non_null(strchr(file, ',')); /* two brokers */
    free(out);
    free(file);

    assert_int_equal(hx_proc_signal(p, SIGTERM), 0);
    assert_int_equal(hx_proc_wait(p, 10000, &status), 0);
    assert_int_equal(status, 0);
    assert_int_not_equal(access(file_path, F_OK), 0);
    hx_proc_free(p);
    hx_tmpdir_remove(dir);
    free(dir);
}

/* Run herald-devbroker with @arg and return its exit status; its stdout
 * lands in *@out (caller frees). */
static int run_flag(const char *arg, const char *arg2, char **out)
{
    char *dir = hx_tmpdir_new("devbroker-flags");
    char out_path[512];
    const char *argv[] = {hx_bin("herald-devbroker"), arg, arg2, NULL};
    struct hx_proc *p;
    int status = -1;

    assert_non_null(dir);
    snprintf(out_path, sizeof(out_path), "%s/stdout", dir);
    p = hx_proc_spawn(argv, NULL, out_path, "/dev/null");
    assert_non_null(p);
    assert_int_equal(hx_proc_wait(p, 10000, &status), 0);
    hx_proc_free(p);
    *out = hx_file_read(out_path, NULL);
    hx_tmpdir_remove(dir);
    free(dir);
    return status;
}

static void test_flags(void **state)
{
    char *out;

    (void)state;
    assert_int_equal(run_flag("--help", NULL, &out), 0);
    assert_non_null(out);
    assert_non_null(strstr(out, "--topics"));
    free(out);

    assert_int_equal(run_flag("--version", NULL, &out), 0);
    assert_non_null(out);
    assert_non_null(strstr(out, "herald-devbroker"));
    free(out);

    assert_int_equal(run_flag("--bogus", NULL, &out), 2);
    free(out);
    assert_int_equal(run_flag("--topics", "t:0", &out), 2);
    free(out);
    assert_int_equal(run_flag("--brokers", "zero", &out), 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest broker_tests[] = {
        cmocka_unit_test(test_bootstrap_line_names_the_brokers),
        cmocka_unit_test(test_topics_get_their_partition_counts),
        cmocka_unit_test(test_control_topic_creates_a_topic),
        cmocka_unit_test(test_round_trip_keeps_keys_and_headers),
        cmocka_unit_test(test_injected_produce_errors_are_absorbed),
        cmocka_unit_test(test_control_rejects_bad_commands),
        cmocka_unit_test(test_control_faults_can_be_cleared),
        cmocka_unit_test(test_eviction_is_reported),
    };
    const struct CMUnitTest process_tests[] = {
        cmocka_unit_test(test_sigterm_exits_zero),
        cmocka_unit_test(test_flags),
    };
    int failed;

    failed = cmocka_run_group_tests_name("devbroker", broker_tests, group_setup,
                                         group_teardown);
    failed += cmocka_run_group_tests_name("devbroker process", process_tests,
                                          NULL, NULL);
    return failed ? 1 : 0;
}
