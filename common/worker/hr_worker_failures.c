/* Retry and dead-letter records (SPEC section 7). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_banned.h"
#include "hr_conf.h"
#include "hr_log.h"
#include "hr_producer.h"
#include "hr_time.h"
#include "hr_worker_priv.h"

/* A dead letter must always fit the broker's message size limit (about
 * 1 MB by default), or an oversized poison event would block its partition
 * for good: larger values keep their first bytes and say so in a header,
 * and an event whose key or headers are too large keeps only the failure
 * headers, the key's first bytes and no value. */
#define HR_FAILURE_VALUE_MAX  (512 * 1024)
#define HR_FAILURE_VALUE_KEEP (64 * 1024)
#define HR_FAILURE_KEY_KEEP   1024

/* A header of the incoming message as a C string in @buf, or NULL. */
static const char *
header_str(rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t size)
{
    const void *val;
    size_t len;

    if (!hdrs || rd_kafka_header_get_last(hdrs, name, &val, &len) || !val ||
        len >= size)
        return NULL;
    memcpy(buf, val, len);
    buf[len] = '\0';
    return buf;
}

static void
header_set(rd_kafka_headers_t *hdrs, const char *name, const char *value)
{
    rd_kafka_header_remove(hdrs, name);
    rd_kafka_header_add(hdrs, name, -1, value, -1);
}

/* Origin, attempt and first failure are kept from a redelivered event so
 * that the guard sees the event's whole history. The event's other
 * headers are copied too, unless @all is false. */
static rd_kafka_headers_t *
failure_headers(struct hr_worker *w, struct hr_item *item, bool all)
{
    rd_kafka_message_t *rkm = item->priv;
    rd_kafka_headers_t *in = NULL, *hdrs;
    char buf[64], num[32];
    const char *v;

    if (rkm && !rd_kafka_message_headers(rkm, &in) && in && all)
        hdrs = rd_kafka_headers_copy(in);
    else
        hdrs = rd_kafka_headers_new(12);

    if (!header_str(in, "herald-origin-topic", buf, sizeof(buf))) {
        header_set(hdrs, "herald-origin-topic", item->topic);
        snprintf(num, sizeof(num), "%" PRId32, item->partition);
        header_set(hdrs, "herald-origin-partition", num);
        snprintf(num, sizeof(num), "%" PRId64, item->offset);
        header_set(hdrs, "herald-origin-offset", num);
    }
    header_set(hdrs, "herald-worker", w->def->name);
    header_set(hdrs, "herald-destination",
               item->destination ? item->destination : w->def->name);
    v = header_str(in, "herald-attempt", buf, sizeof(buf));
    header_set(hdrs, "herald-attempt", v ? v : "1");
    if (!header_str(in, "herald-first-failure-ms", buf, sizeof(buf))) {
        snprintf(num, sizeof(num), "%" PRId64, hr_time_now_ms());
        header_set(hdrs, "herald-first-failure-ms", num);
    }
    header_set(hdrs, "herald-error-class", hr_err_class_name(item->err_class));
    header_set(hdrs, "herald-error", hr_item_reason(item));
    rd_kafka_header_remove(hdrs, "herald-retry-after-ms");
    if (item->retry_after_ms >= 0) {
        snprintf(num, sizeof(num), "%" PRId64, item->retry_after_ms);
        header_set(hdrs, "herald-retry-after-ms", num);
    }
    return hdrs;
}

const char *hr_item_header(void *opaque, const char *name, size_t *len)
{
    struct hr_item *item = opaque;
    rd_kafka_headers_t *hdrs;
    const void *val;

    if (!item->priv || rd_kafka_message_headers(item->priv, &hdrs) ||
        rd_kafka_header_get_last(hdrs, name, &val, len))
        return NULL;
    return val;
}

int hr_worker_send_failures(struct hr_worker *w, struct hr_batch *batch)
{
    const char *retry_topic = hr_conf_str(w->cfg, "HERALD_RETRY_TOPIC");
    const char *dlq_topic = hr_conf_str(w->cfg, "HERALD_DLQ_TOPIC");

    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        rd_kafka_headers_t *hdrs;
        const char *topic;
        char errstr[256], num[32];
        size_t value_len;
        int rc;

        if (item->outcome != HR_OUT_RETRY && item->outcome != HR_OUT_DEAD)
            continue;
        topic = item->outcome == HR_OUT_RETRY ? retry_topic : dlq_topic;
        hdrs = failure_headers(w, item, true);
        hr_log_write(item->err_class == HR_ERR_AUTH ? HR_LOG_ERROR
                                                    : HR_LOG_WARN,
                     item->outcome == HR_OUT_RETRY ? "event handed to retry"
                                                   : "event dead-lettered",
                     HR_LOG_STR("topic", item->topic),
                     HR_LOG_I32("partition", item->partition),
                     HR_LOG_I64("offset", item->offset),
                     HR_LOG_STR("event_id", item->ev.id),
                     HR_LOG_STR("class", hr_err_class_name(item->err_class)),
                     HR_LOG_STR("destination", hr_item_destination(item)),
                     HR_LOG_STR("err", hr_item_reason(item)), HR_LOG_END);
        value_len = item->value_len;
        snprintf(num, sizeof(num), "%zu", item->value_len);
        if (value_len > HR_FAILURE_VALUE_MAX) {
            header_set(hdrs, "herald-value-truncated", num);
            value_len = HR_FAILURE_VALUE_KEEP;
        }
        rc = hr_producer_send(w->producer, topic, item->key, item->key_len,
                              item->value, value_len, hdrs, errstr,
                              sizeof(errstr));
        if (rc == HR_PRODUCE_REFUSED) {
            /* The event's own key or headers are what is too large: keep
             * the failure headers, the key's first bytes and no value. */
            rd_kafka_headers_destroy(hdrs);
            hdrs = failure_headers(w, item, false);
            header_set(hdrs, "herald-value-truncated", num);
            rc = hr_producer_send(w->producer, topic, item->key,
                                  item->key_len < HR_FAILURE_KEY_KEEP
                                      ? item->key_len
                                      : HR_FAILURE_KEY_KEEP,
                                  item->value, 0, hdrs, errstr, sizeof(errstr));
        }
        if (rc) {
            rd_kafka_headers_destroy(hdrs);
            hr_log_error("cannot write failure record",
                         HR_LOG_STR("topic", topic), HR_LOG_STR("err", errstr));
            return -1;
        }
        hdrs = NULL; /* owned by the producer now */
    }
    return 0;
}
