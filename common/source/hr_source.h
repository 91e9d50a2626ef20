/*
 * Where events come from, behind one interface: a Kafka consumer group
 * (hr_source_kafka.c) or an Amazon SQS queue (hr_source_sqs.c), chosen by
 * HERALD_SOURCE. Both hand out source-neutral messages (base/hr_msg.h) and
 * both are at least once: a message is forgotten (Kafka: its offset
 * stored, then committed; SQS: deleted) only when the runtime acknowledges
 * it, after its outcome is durable. A worker never knows which one it reads.
 *
 * What differs is said by capabilities the runtime asks for:
 *  - hr_source_paces_retries(): the source redelivers a message itself
 *    after a delay (SQS: its visibility timeout), so a RETRY outcome
 *    becomes HR_MSG_AGAIN instead of a record on herald.retry;
 *  - hr_source_has_dlq(): the source has its own dead-letter queue
 *    (HERALD_SQS_DLQ_URL), so a DEAD outcome becomes HR_MSG_DEAD.
 *
 * Not thread-safe: owned by the worker loop.
 */
#ifndef HR_SOURCE_H
#define HR_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"
#include "hr_conf.h"

struct hr_metrics;
struct hr_msg;
struct hr_source;

/** The sources' settings (HERALD_SOURCE, HERALD_SQS_*, AWS_*), for the
 *  worker's configuration table; the Kafka ones are the runtime's. */
extern const struct hr_conf_spec hr_source_conf[];

/** Check the chosen source's settings without connecting anywhere
 *  (problems go to hr_conf_add_error()). */
void hr_source_validate(struct hr_conf *cfg);

/**
 * Open the source HERALD_SOURCE names. Kafka: a consumer of @topics
 * (comma-separated; copied) in group HERALD_KAFKA_GROUP, subscribed at
 * once. SQS: receivers of HERALD_SQS_QUEUE_URL (@topics is not used). Both
 * export herald_consumer_lag{topic,partition} and
 * herald_source_errors_total in @reg. Returns NULL with @errstr on failure;
 * neither connects before its first poll.
 */
struct hr_source *hr_source_new(const struct hr_conf *cfg,
                                const char *topics,
                                struct hr_metrics *reg,
                                char *errstr,
                                size_t errstr_size);

/** "kafka" or "sqs". */
const char *hr_source_kind(const struct hr_source *src);

/**
 * Take up to @max messages, and no more once their values add up to
 * @max_bytes (the message that reaches it is taken, so one message bigger
 * than @max_bytes is a batch of its own): waits up to @wait_ms for the
 * first, then takes what arrives for at most @wait_ms more. Errors are
 * logged, counted in herald_source_errors_total and not returned. Returns
 * the number of messages stored in @msgs; each is the source's until
 * hr_source_ack() or hr_source_abandon().
 */
size_t hr_source_poll(struct hr_source *src,
                      struct hr_msg **msgs,
                      size_t max,
                      size_t max_bytes,
                      int wait_ms);

/**
 * Keep the source alive without taking messages: statistics, errors,
 * rebalances, and (SQS) the visibility of every message handed out, which
 * is extended before it runs out. Called while a batch is paused, so that
 * nothing held is redelivered to someone else and lag and readiness stay
 * current.
 */
void hr_source_serve(struct hr_source *src);

/**
 * The runtime is done with @n messages of one batch: each goes its
 * msg->fate (HR_MSG_DONE unless set otherwise), and all are freed. Kafka
 * stores, for each partition still assigned, the highest offset + 1; SQS
 * deletes, changes visibility or dead-letters, in the background, retrying
 * what fails (a message whose delete is lost comes back and meets the
 * handler's idempotency). Returns 0, or -1 with @errstr (the messages are
 * freed either way).
 */
int hr_source_ack(struct hr_source *src,
                  struct hr_msg *const *msgs,
                  size_t n,
                  char *errstr,
                  size_t errstr_size);

/** Free @n messages without acknowledging them: they are delivered again
 *  (SQS makes them visible at once; Kafka after a restart or rebalance). */
void hr_source_abandon(struct hr_source *src,
                       struct hr_msg *const *msgs,
                       size_t n);

/** Whether the source can deliver (an assignment, the queue reachable and
 *  no fatal error); @reason gets why not. */
bool hr_source_is_ready(struct hr_source *src,
                        char *reason,
                        size_t reason_size);

/** Whether a fatal error happened (the worker must stop). */
bool hr_source_is_fatal(const struct hr_source *src);

/** Whether the source redelivers a message itself after a delay. */
bool hr_source_paces_retries(const struct hr_source *src);

/** Whether the source has its own dead-letter queue. */
bool hr_source_has_dlq(const struct hr_source *src);

/**
 * Finish what is acknowledged (Kafka: commit the stored offsets, retrying
 * retriable errors; SQS: the pending deletes and visibility changes) until
 * @deadline_ms (monotonic), give back what is not (Kafka: leave the group;
 * SQS: make held messages visible), and free @src. Returns 0 when every
 * acknowledgement went through, -1 otherwise. NULL is a no-op.
 */
int hr_source_close(struct hr_source *src, int64_t deadline_ms);

#endif
