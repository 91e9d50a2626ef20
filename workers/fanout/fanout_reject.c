/*
 * Dead letters for single records of a batch, see fanout_reject.h. The
 * runtime dead-letters whole items (worker/hr_failure.c); these are
 * produced here because the item itself is routed.
 */
#include "fanout_reject.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "hr_arena.h"
#include "hr_hdrs.h"
#include "hr_log.h"
#include "hr_msg.h"
#include "hr_producer.h"
#include "hr_retry.h"
#include "hr_time.h"
#include "hr_worker.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Set @name unless the record already carries it (a redelivered record
 * keeps its origin and first failure). */
static void set_once(struct hr_hdrs *hdrs, const char *name, const char *value)
{
    char buf[8];

    if (!hr_hdrs_str(hdrs, name, buf, sizeof(buf)))
        hr_hdrs_set(hdrs, name, value);
}

/* The item's headers plus the failure headers for one record. */
static struct hr_hdrs *reject_headers(struct hr_worker *w,
                                      const struct hr_item *item,
                                      json_int_t index,
                                      const char *reason)
{
    struct hr_hdrs *hdrs = hr_hdrs_from_msg(item->msg);
    char num[32], ct[64];

    snprintf(num, sizeof(num), "%" PRId32, item->partition);
    set_once(hdrs, "herald-origin-partition", num);
    snprintf(num, sizeof(num), "%" PRId64, item->offset);
    set_once(hdrs, "herald-origin-offset", num);
    set_once(hdrs, "herald-origin-topic", item->topic);
    snprintf(num, sizeof(num), "%" PRId64, hr_time_now_ms());
    set_once(hdrs, "herald-first-failure-ms", num);
    set_once(hdrs, "herald-attempt", "1");
    hr_hdrs_set(hdrs, "herald-worker", hr_worker_name(w));
    hr_hdrs_set(hdrs, "herald-destination", hr_worker_name(w));
    hr_hdrs_set(hdrs, "herald-error-class", hr_err_class_name(HR_ERR_POISON));
    hr_hdrs_set(hdrs, "herald-error", reason);
    snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, index);
    hr_hdrs_set(hdrs, "herald-record-index", num);
    /* one event of a CloudEvents batch is a structured event on its own */
    if (hr_hdrs_str(hdrs, "content-type", ct, sizeof(ct)) &&
        strncasecmp(ct, "application/cloudevents-batch", 29) == 0)
        hr_hdrs_set(hdrs, "content-type", "application/cloudevents+json");
    return hdrs;
}

static int reject_one(struct hr_worker *w,
                      const struct hr_item *item,
                      const char *dlq_topic,
                      const json_t *reject,
                      char *errstr,
                      size_t errstr_size)
{
    const char *reason = json_string_value(json_object_get(reject, "reason"));
    json_int_t index = json_integer_value(json_object_get(reject, "index"));
    /* plain malloc'd text whether or not a JSON arena is entered */
    char *value = hr_arena_json_dumps(json_object_get(reject, "record"),
                                      JSON_COMPACT | JSON_ENCODE_ANY);
    struct hr_hdrs *hdrs;
    rd_kafka_headers_t *khdrs;
    int rc;

    if (!value) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    hdrs = reject_headers(w, item, index, reason ? reason : "");
    khdrs = hr_producer_headers(hdrs);
    hr_hdrs_free(hdrs);
    rc =
        hr_worker_produce_headers(w, dlq_topic, item->key, item->key_len, value,
                                  strlen(value), khdrs, errstr, errstr_size);
    if (rc)
        rd_kafka_headers_destroy(khdrs); /* ours unless it was taken */
    else
        hr_log_warn("event dead-lettered", HR_LOG_STR("topic", item->topic),
                    HR_LOG_I32("partition", item->partition),
                    HR_LOG_I64("offset", item->offset),
                    HR_LOG_I64("record_index", index),
                    HR_LOG_STR("class", hr_err_class_name(HR_ERR_POISON)),
                    HR_LOG_STR("err", reason));
    free(value);
    return rc ? -1 : 0;
}

int fanout_reject_send(struct hr_worker *w,
                       const struct hr_item *item,
                       const char *dlq_topic,
                       const json_t *rejects,
                       char *errstr,
                       size_t errstr_size)
{
    const json_t *reject;
    size_t i;

    json_array_foreach(rejects, i, reject)
    {
        if (reject_one(w, item, dlq_topic, reject, errstr, errstr_size))
            return -1;
    }
    return 0;
}
