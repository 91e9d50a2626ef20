/* The source interface: dispatch to the source HERALD_SOURCE names. */
#include "hr_source.h"

#include <stdio.h>
#include <string.h>

#include "hr_conf.h"
#include "hr_kafka.h"
#include "hr_source_impl.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

const struct hr_conf_spec hr_source_conf[] = {
    HR_CONF_ENUM("HERALD_SOURCE", "kafka", "kafka|sqs", 0, "event source"),
    HR_CONF_URL(
        "HERALD_SQS_QUEUE_URL", NULL, 0, "input queue URL with the sqs source"),
    HR_CONF_URL("HERALD_SQS_DLQ_URL",
                NULL,
                0,
                "where the sqs source dead-letters (the original body, the "
                "failure headers as message attributes); unset: herald.dlq "
                "on Kafka when brokers are set, else the queue's own "
                "redrive policy"),
    HR_CONF_INT("HERALD_SQS_RECEIVERS",
                "4",
                1,
                64,
                0,
                "ReceiveMessage long polls kept in flight"),
    HR_CONF_INT("HERALD_SQS_WAIT_SECONDS",
                "20",
                0,
                20,
                0,
                "long-poll wait of each ReceiveMessage"),
    HR_CONF_INT("HERALD_SQS_VISIBILITY_TIMEOUT",
                "60",
                5,
                43200,
                0,
                "seconds a received message stays invisible; extended while "
                "the worker holds it (a paused batch keeps its messages)"),
    HR_CONF_MS("HERALD_SQS_RETRY_BASE_MS",
               "1000",
               0,
               "first delay of a retried message (visibility), doubling per "
               "receive"),
    HR_CONF_MS("HERALD_SQS_RETRY_MAX_MS",
               "300000",
               0,
               "longest delay of a retried message"),
    HR_CONF_ENUM("HERALD_SQS_ENVELOPE",
                 "auto",
                 "auto|sns|raw",
                 0,
                 "SNS envelopes: auto unwraps them when present, sns "
                 "requires them, raw never unwraps"),
    HR_CONF_MS("HERALD_SQS_LAG_INTERVAL_MS",
               "10000",
               0,
               "how often the queue's depth is read (GetQueueAttributes)"),
    HR_CONF_END,
};

static bool is_sqs(const struct hr_conf *cfg)
{
    const char *kind = hr_conf_str(cfg, "HERALD_SOURCE");

    return kind && !strcmp(kind, "sqs");
}

void hr_source_validate(struct hr_conf *cfg)
{
    if (is_sqs(cfg))
        hr_source_sqs_validate(cfg);
    else if (!hr_conf_str(cfg, "HERALD_KAFKA_BROKERS"))
        hr_conf_add_error(cfg, "HERALD_KAFKA_BROKERS: required with the "
                               "kafka source");
    hr_kafka_validate(cfg);
}

struct hr_source *hr_source_new(const struct hr_conf *cfg,
                                const char *topics,
                                struct hr_metrics *reg,
                                char *errstr,
                                size_t errstr_size)
{
    if (is_sqs(cfg))
        return hr_source_sqs_new(cfg, reg, errstr, errstr_size);
    return hr_source_kafka_new(cfg, topics, reg, errstr, errstr_size);
}

const char *hr_source_kind(const struct hr_source *src)
{
    return src->ops->kind;
}

size_t hr_source_poll(struct hr_source *src,
                      struct hr_msg **msgs,
                      size_t max,
                      size_t max_bytes,
                      int wait_ms)
{
    return src->ops->poll(src, msgs, max, max_bytes, wait_ms);
}

void hr_source_serve(struct hr_source *src)
{
    src->ops->serve(src);
}

int hr_source_ack(struct hr_source *src,
                  struct hr_msg *const *msgs,
                  size_t n,
                  char *errstr,
                  size_t errstr_size)
{
    return src->ops->ack(src, msgs, n, errstr, errstr_size);
}

void hr_source_abandon(struct hr_source *src,
                       struct hr_msg *const *msgs,
                       size_t n)
{
    src->ops->abandon(src, msgs, n);
}

bool hr_source_is_ready(struct hr_source *src, char *reason, size_t reason_size)
{
    return src->ops->is_ready(src, reason, reason_size);
}

bool hr_source_is_fatal(const struct hr_source *src)
{
    return src->ops->is_fatal(src);
}

bool hr_source_paces_retries(const struct hr_source *src)
{
    return src->ops->paces_retries && src->ops->paces_retries(src);
}

bool hr_source_has_dlq(const struct hr_source *src)
{
    return src->ops->has_dlq && src->ops->has_dlq(src);
}

int hr_source_close(struct hr_source *src, int64_t deadline_ms)
{
    if (!src)
        return 0;
    return src->ops->close(src, deadline_ms);
}
