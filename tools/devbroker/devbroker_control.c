#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "devbroker.h"
#include "hr_banned.h"
#include "hr_log.h"

#define CONTROL_MAX_ARGS   8
#define CONTROL_MAX_ERRORS 100000
#define CONTROL_MAX_APIKEY 99

/* Kafka protocol ApiKeys (the RD_KAFKAP_* numbers of librdkafka's
 * rdkafka_protocol.h, which is not installed). */
static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {
    {"Produce", 0},          {"Fetch", 1},
    {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},     {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},       {"LeaveGroup", 13},
    {"SyncGroup", 14},       {"DescribeGroups", 15},
    {"ListGroups", 16},      {"ApiVersions", 18},
    {"InitProducerId", 22},  {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

/* APIs the eviction watch itself calls: errors pushed for them would be
 * eaten by the watch, so it pauses. */
static bool api_key_used_by_watch(int16_t key)
{
    return key == 2 || key == 3 || key == 18;
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long val;

    errno = 0;
    val = strtol(s, &end, 10);
    if (errno || end == s || *end || val < min || val > max)
        return -1;
    *out = val;
    return 0;
}

static int
parse_api_key(const char *s, int16_t *key, char *errstr, size_t errstr_size)
{
    long val;

    for (size_t i = 0; i < HR_ARRAY_SIZE(api_keys); i++) {
        if (!strcasecmp(s, api_keys[i].name)) {
            *key = api_keys[i].key;
            return 0;
        }
    }
    if (!parse_long(s, 0, CONTROL_MAX_APIKEY, &val)) {
        *key = (int16_t)val;
        return 0;
    }
    snprintf(errstr, errstr_size,
             "unknown api '%s' (use a name such as Produce, Fetch, "
             "Metadata, JoinGroup, or a number)",
             s);
    return -1;
}

/* Error names are the rd_kafka_resp_err_t enum sans "RD_KAFKA_RESP_ERR_",
 * as rd_kafka_get_err_descs() lists them; the prefix and numbers are
 * accepted too. */
static int parse_err(const char *s,
                     rd_kafka_resp_err_t *err,
                     char *errstr,
                     size_t errstr_size)
{
    static const char prefix[] = "RD_KAFKA_RESP_ERR_";
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    long val;

    if (!strncasecmp(s, prefix, sizeof(prefix) - 1))
        s += sizeof(prefix) - 1;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (descs[i].name && !strcasecmp(s, descs[i].name)) {
            *err = descs[i].code;
            return 0;
        }
    }
    if (!parse_long(s, -1000, 1000, &val)) {
        *err = (rd_kafka_resp_err_t)val;
        return 0;
    }
    snprintf(errstr, errstr_size,
             "unknown error '%s' (use an rd_kafka_resp_err_t name without "
             "RD_KAFKA_RESP_ERR_, e.g. NOT_LEADER_FOR_PARTITION, _TRANSPORT)",
             s);
    return -1;
}

static int split_args(char *line, char **argv, int max)
{
    int argc = 0;
    char *p = line;

    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p)
            return argc;
        if (argc == max)
            return -1;
        argv[argc++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            p++;
        if (*p)
            *p++ = '\0';
    }
}

static int cmd_errors(const struct devbroker_control *ctl,
                      int argc,
                      char **argv,
                      char *errstr,
                      size_t errstr_size)
{
    rd_kafka_resp_err_t err, *errs;
    int16_t key;
    long cnt;

    if (argc != 4) {
        snprintf(errstr, errstr_size,
                 "usage: errors <ApiName> <count> <ErrName>");
        return -1;
    }
    if (parse_api_key(argv[1], &key, errstr, errstr_size))
        return -1;
    if (parse_long(argv[2], 1, CONTROL_MAX_ERRORS, &cnt)) {
        snprintf(errstr, errstr_size, "invalid count '%s' (1 to %d)", argv[2],
                 CONTROL_MAX_ERRORS);
        return -1;
    }
    if (parse_err(argv[3], &err, errstr, errstr_size))
        return -1;

    errs = malloc((size_t)cnt * sizeof(*errs));
    if (!errs) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (long i = 0; i < cnt; i++)
        errs[i] = err;
    if (api_key_used_by_watch(key))
        devbroker_watch_pause(ctl->watch, DEVBROKER_WATCH_PAUSE_MS);
    rd_kafka_mock_push_request_errors_array(ctl->mcluster, key, (size_t)cnt,
                                            errs);
    free(errs);
    hr_log_info("injected request errors", HR_LOG_I32("api_key", key),
                HR_LOG_I64("count", cnt),
                HR_LOG_STR("err", rd_kafka_err2name(err)));
    return 0;
}

static int cmd_broker_updown(const struct devbroker_control *ctl,
                             int argc,
                             char **argv,
                             bool up,
                             char *errstr,
                             size_t errstr_size)
{
    rd_kafka_resp_err_t err;
    long id;

    if (argc != 2) {
        snprintf(errstr, errstr_size, "usage: %s <broker id>", argv[0]);
        return -1;
    }
    if (parse_long(argv[1], 1, ctl->brokers, &id)) {
        snprintf(errstr, errstr_size, "unknown broker '%s' (ids are 1 to %d)",
                 argv[1], ctl->brokers);
        return -1;
    }
    err = up ? rd_kafka_mock_broker_set_up(ctl->mcluster, (int32_t)id)
             : rd_kafka_mock_broker_set_down(ctl->mcluster, (int32_t)id);
    if (err) {
        snprintf(errstr, errstr_size, "cannot set broker %ld %s: %s", id,
                 up ? "up" : "down", rd_kafka_err2str(err));
        return -1;
    }
    hr_log_info(up ? "broker up" : "broker down", HR_LOG_I32("broker", id));
    return 0;
}

static int cmd_topic(const struct devbroker_control *ctl,
                     int argc,
                     char **argv,
                     char *errstr,
                     size_t errstr_size)
{
    struct devbroker_topics topics = {0};
    char spec[300];
    int rc;

    if (argc != 3) {
        snprintf(errstr, errstr_size, "usage: topic <name> <partitions>");
        return -1;
    }
    /* Reuse --topics validation for the name and the count. */
    if ((size_t)snprintf(spec, sizeof(spec), "%s:%s", argv[1], argv[2]) >=
            sizeof(spec) ||
        strchr(argv[1], ',') || strchr(argv[1], ':')) {
        snprintf(errstr, errstr_size, "invalid topic name '%s'", argv[1]);
        return -1;
    }
    rc = devbroker_topics_parse(&topics, spec, 1, errstr, errstr_size);
    if (!rc)
        rc = devbroker_topics_create(ctl->mcluster, &topics, ctl->replication,
                                     errstr, errstr_size);
    if (!rc)
        hr_log_info("topic created", HR_LOG_STR("topic", topics.v[0].name),
                    HR_LOG_I32("partitions", topics.v[0].partitions));
    devbroker_topics_release(&topics);
    return rc;
}

static int cmd_clear_errors(const struct devbroker_control *ctl,
                            int argc,
                            char **argv,
                            char *errstr,
                            size_t errstr_size)
{
    int16_t key;

    if (argc > 2) {
        snprintf(errstr, errstr_size, "usage: clear-errors [<ApiName>]");
        return -1;
    }
    if (argc == 2) {
        if (parse_api_key(argv[1], &key, errstr, errstr_size))
            return -1;
        rd_kafka_mock_clear_request_errors(ctl->mcluster, key);
    } else {
        for (key = 0; key <= CONTROL_MAX_APIKEY; key++)
            rd_kafka_mock_clear_request_errors(ctl->mcluster, key);
    }
    devbroker_watch_pause(ctl->watch, 0);
    return 0;
}

int devbroker_control_exec(const struct devbroker_control *ctl,
                           char *line,
                           char *errstr,
                           size_t errstr_size)
{
    char *argv[CONTROL_MAX_ARGS];
    int argc;

    argc = split_args(line, argv, CONTROL_MAX_ARGS);
    if (argc < 0) {
        snprintf(errstr, errstr_size, "too many arguments");
        return -1;
    }
    if (argc == 0) {
        snprintf(errstr, errstr_size, "empty command");
        return -1;
    }
    if (!strcmp(argv[0], "errors"))
        return cmd_errors(ctl, argc, argv, errstr, errstr_size);
    if (!strcmp(argv[0], "broker-down"))
        return cmd_broker_updown(ctl, argc, argv, false, errstr, errstr_size);
    if (!strcmp(argv[0], "broker-up"))
        return cmd_broker_updown(ctl, argc, argv, true, errstr, errstr_size);
    if (!strcmp(argv[0], "topic"))
        return cmd_topic(ctl, argc, argv, errstr, errstr_size);
    if (!strcmp(argv[0], "clear-errors"))
        return cmd_clear_errors(ctl, argc, argv, errstr, errstr_size);
    if (!strcmp(argv[0], "ping") && argc == 1)
        return 0;
    snprintf(errstr, errstr_size,
             "unknown command '%s' (errors, broker-down, broker-up, topic, "
             "clear-errors, ping)",
             argv[0]);
    return -1;
}
