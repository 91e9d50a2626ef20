/* Retry and dead-letter records (SPEC section 7). */
#include "hr_failure.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_hdrs.h"
#include "hr_log.h"
#include "hr_msg.h"
#include "hr_producer.h"
#include "hr_source.h"
#include "hr_time.h"
#include "hr_worker.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* A dead letter must always fit the broker's message size limit (about
 * 1 MB by default), or an oversized poison event would block its partition
 * for good: larger values keep their first bytes and say so in a header,
 * and an event whose key or headers are too large keeps only the failure
 * headers, the key's first bytes and no value. */
#define HR_FAILURE_VALUE_MAX  (512 * 1024)
#define HR_FAILURE_VALUE_KEEP (64 * 1024)
#define HR_FAILURE_KEY_KEEP   1024

/* Origin, attempt and first failure are kept from a redelivered event so
 * that the guard sees the event's whole history. The event's other
 * headers are copied too, unless @all is false. An SQS message names its
 * queue as the origin topic, partition 0, offset -1 and its message id;
 * its attempt is SQS's receive count. */
static struct hr_hdrs *failure_headers(const struct hr_failure_route *route,
                                       const struct hr_item *item,
                                       bool all)
{
    struct hr_hdrs *hdrs = all ? hr_hdrs_from_msg(item->msg) : hr_hdrs_new();
    char buf[64], num[32];
    size_t len;
    const char *v = hr_msg_header(item->msg, "herald-origin-topic", &len);

    if (!v || !len) {
        hr_hdrs_set(hdrs, "herald-origin-topic", item->topic);
        snprintf(num, sizeof(num), "%" PRId32, item->partition);
        hr_hdrs_set(hdrs, "herald-origin-partition", num);
        snprintf(num, sizeof(num), "%" PRId64, item->offset);
        hr_hdrs_set(hdrs, "herald-origin-offset", num);
        if (item->msg && item->msg->id)
            hr_hdrs_set(hdrs, "herald-origin-message-id", item->msg->id);
    } else if (!all) {
        /* the origin of a redelivered event, kept without the rest */
        struct hr_hdrs *in = hr_hdrs_from_msg(item->msg);
        static const char *const origin[] = {
            "herald-origin-topic", "herald-origin-partition",
            "herald-origin-offset", "herald-origin-message-id"};

        for (size_t i = 0; i < HR_ARRAY_SIZE(origin); i++) {
            if (hr_hdrs_str(in, origin[i], buf, sizeof(buf)))
                hr_hdrs_set(hdrs, origin[i], buf);
        }
        hr_hdrs_free(in);
    }
    hr_hdrs_set(hdrs, "herald-worker", route->worker);
    hr_hdrs_set(hdrs, "herald-destination",
                item->destination ? item->destination : route->worker);
    v = hr_msg_header(item->msg, "herald-attempt", &len);
    if (v && len && len < sizeof(buf)) {
        memcpy(buf, v, len);
        buf[len] = '\0';
        hr_hdrs_set(hdrs, "herald-attempt", buf);
    } else {
        snprintf(num, sizeof(num), "%" PRId32,
                 item->msg && item->msg->attempt > 0 ? item->msg->attempt : 1);
        hr_hdrs_set(hdrs, "herald-attempt", num);
    }
    v = hr_msg_header(item->msg, "herald-first-failure-ms", &len);
    if (!v || !len) {
        snprintf(num, sizeof(num), "%" PRId64, hr_time_now_ms());
        hr_hdrs_set(hdrs, "herald-first-failure-ms", num);
    } else if (!all) {
        snprintf(buf, sizeof(buf), "%.*s", (int)(len < 32 ? len : 32), v);
        hr_hdrs_set(hdrs, "herald-first-failure-ms", buf);
    }
    hr_hdrs_set(hdrs, "herald-error-class", hr_err_class_name(item->err_class));
    hr_hdrs_set(hdrs, "herald-error", hr_item_reason(item));
    hr_hdrs_remove(hdrs, "herald-retry-after-ms");
    if (item->retry_after_ms >= 0) {
        snprintf(num, sizeof(num), "%" PRId64, item->retry_after_ms);
        hr_hdrs_set(hdrs, "herald-retry-after-ms", num);
    }
    return hdrs;
}

/* Where an item goes; see the table in hr_failure.h. */
enum way {
    WAY_KAFKA_RETRY,
    WAY_KAFKA_DLQ,
    WAY_SOURCE_AGAIN,
    WAY_SOURCE_DLQ,
    WAY_REDRIVE, /* a dead letter with nowhere to go: the queue's policy */
};

static enum way way_of(const struct hr_failure_route *route,
                       const struct hr_item *item)
{
    if (item->outcome == HR_OUT_RETRY)
        return hr_source_paces_retries(route->source) ? WAY_SOURCE_AGAIN
                                                      : WAY_KAFKA_RETRY;
    if (hr_source_has_dlq(route->source))
        return WAY_SOURCE_DLQ;
    if (hr_producer_is_discarding(route->producer) &&
        hr_source_paces_retries(route->source))
        return WAY_REDRIVE;
    return WAY_KAFKA_DLQ;
}

static const char *way_msg(enum way way)
{
    switch (way) {
    case WAY_KAFKA_RETRY:
        return "event handed to retry";
    case WAY_SOURCE_AGAIN:
        return "event returned to its queue for a retry";
    case WAY_REDRIVE:
        return "event dead; left to its queue's redrive policy";
    default:
        return "event dead-lettered";
    }
}

/* Produce @item's record to @topic with @hdrs (taken over). */
static int send_record(const struct hr_failure_route *route,
                       struct hr_item *item,
                       const char *topic,
                       struct hr_hdrs *hdrs)
{
    rd_kafka_headers_t *khdrs;
    char errstr[256], num[32];
    size_t value_len = item->value_len;
    int rc;

    snprintf(num, sizeof(num), "%zu", item->value_len);
    if (value_len > HR_FAILURE_VALUE_MAX) {
        hr_hdrs_set(hdrs, "herald-value-truncated", num);
        value_len = HR_FAILURE_VALUE_KEEP;
    }
    khdrs = hr_producer_headers(hdrs);
    hr_hdrs_free(hdrs);
    rc =
        hr_producer_send(route->producer, topic, item->key, item->key_len,
                         item->value, value_len, khdrs, errstr, sizeof(errstr));
    if (rc == HR_PRODUCE_REFUSED) {
        /* The event's own key or headers are what is too large: keep the
         * failure headers, the key's first bytes and no value. */
        rd_kafka_headers_destroy(khdrs);
        hdrs = failure_headers(route, item, false);
        hr_hdrs_set(hdrs, "herald-value-truncated", num);
        khdrs = hr_producer_headers(hdrs);
        hr_hdrs_free(hdrs);
        rc = hr_producer_send(route->producer, topic, item->key,
                              item->key_len < HR_FAILURE_KEY_KEEP
                                  ? item->key_len
                                  : HR_FAILURE_KEY_KEEP,
                              item->value, 0, khdrs, errstr, sizeof(errstr));
    }
    if (rc) {
        rd_kafka_headers_destroy(khdrs);
        hr_log_error("cannot write failure record", HR_LOG_STR("topic", topic),
                     HR_LOG_STR("err", errstr));
        return -1;
    }
    return 0; /* khdrs is the producer's now */
}

int hr_failure_hand_off(const struct hr_failure_route *route,
                        struct hr_batch *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        struct hr_msg *msg = (struct hr_msg *)(uintptr_t)item->msg;
        enum way way;

        if (item->outcome != HR_OUT_RETRY && item->outcome != HR_OUT_DEAD)
            continue;
        way = way_of(route, item);
        hr_log_write(item->err_class == HR_ERR_AUTH ? HR_LOG_ERROR
                                                    : HR_LOG_WARN,
                     way_msg(way), HR_LOG_STR("topic", item->topic),
                     HR_LOG_I32("partition", item->partition),
                     HR_LOG_I64("offset", item->offset),
                     HR_LOG_STR("message_id", msg ? msg->id : NULL),
                     HR_LOG_STR("event_id", item->ev.id),
                     HR_LOG_STR("class", hr_err_class_name(item->err_class)),
                     HR_LOG_STR("destination", hr_item_destination(item)),
                     HR_LOG_STR("err", hr_item_reason(item)), HR_LOG_END);
        switch (way) {
        case WAY_SOURCE_AGAIN:
        case WAY_REDRIVE:
            msg->fate = HR_MSG_AGAIN;
            msg->again_ms = item->retry_after_ms;
            break;
        case WAY_SOURCE_DLQ:
            hr_hdrs_free(msg->dead); /* a redone batch's */
            msg->fate = HR_MSG_DEAD;
            msg->dead = failure_headers(route, item, true);
            break;
        case WAY_KAFKA_RETRY:
        case WAY_KAFKA_DLQ:
            if (send_record(route, item,
                            way == WAY_KAFKA_RETRY ? route->retry_topic
                                                   : route->dlq_topic,
                            failure_headers(route, item, true)))
                return -1;
            break;
        }
    }
    return 0;
}
