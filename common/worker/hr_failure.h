/*
 * What happens to an event whose outcome is RETRY or DEAD (SPEC section
 * 7): a retry or dead-letter record with the event's key, value and
 * headers plus the herald-* failure headers, on Kafka (herald.retry,
 * herald.dlq); or, when the source can, the source's own redelivery and
 * dead-letter queue (source/hr_source.h):
 *
 *   outcome  source paces retries   source has a DLQ   else
 *   RETRY    HR_MSG_AGAIN           -                  herald.retry
 *   DEAD     -                      HR_MSG_DEAD        herald.dlq, or, with
 *                                                      no brokers either,
 *                                                      HR_MSG_AGAIN (the
 *                                                      queue's redrive
 *                                                      policy decides)
 *
 * Runtime-internal; knows nothing of struct hr_worker.
 */
#ifndef HR_FAILURE_H
#define HR_FAILURE_H

#include "hr_compat.h"

struct hr_batch;
struct hr_producer;
struct hr_source;

struct hr_failure_route {
    const char *worker;           /* herald-worker */
    const char *retry_topic;      /* HERALD_RETRY_TOPIC */
    const char *dlq_topic;        /* HERALD_DLQ_TOPIC */
    struct hr_producer *producer; /* may be discarding (no brokers) */
    struct hr_source *source;
};

/**
 * Hand off every RETRY and DEAD item of @batch as above (logged; auth
 * failures at error level). Records go into the producer's current epoch.
 * Returns 0, or -1 if a record could not be queued (the batch is redone).
 */
int hr_failure_hand_off(const struct hr_failure_route *route,
                        struct hr_batch *batch) HR_MUST_CHECK;

#endif
