/*
 * The event source behind one interface. Today: a Kafka consumer group
 * with at-least-once semantics (offsets are stored by the runtime only after
 * a batch's outcomes are durable, and committed by librdkafka's auto-commit
 * of stored offsets, plus a final retried commit on close).
 *
 * Not thread-safe: owned by the worker loop.
 */
#ifndef HR_SOURCE_H
#define HR_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "hr_compat.h"

struct hr_conf;
struct hr_metrics;
struct hr_source;

/**
 * Create the consumer for @topics (comma-separated; copied) in group
 * HERALD_KAFKA_GROUP with cooperative-sticky assignment, manual offset
 * store, statistics feeding herald_consumer_lag{topic,partition} in @reg.
 * Subscribes at once. Returns NULL with @errstr on failure.
 */
struct hr_source *hr_source_new(const struct hr_conf *cfg,
                                const char *topics,
                                struct hr_metrics *reg,
                                char *errstr,
                                size_t errstr_size);

/**
 * Poll up to @max messages, and no more once their values add up to
 * @max_bytes (the message that reaches it is taken, so one message bigger
 * than @max_bytes is a batch of its own): waits up to @wait_ms for the
 * first, then takes what is already queued for at most @wait_ms more.
 * Error events are logged, counted in herald_source_errors_total and not
 * returned. Returns the number of messages stored in @msgs (the caller
 * destroys each with rd_kafka_message_destroy()).
 */
size_t hr_source_poll(struct hr_source *src,
                      rd_kafka_message_t **msgs,
                      size_t max,
                      size_t max_bytes,
                      int wait_ms);

/** Serve statistics, errors and rebalances without consuming (used while
 *  a batch is paused, so lag and readiness stay current). */
void hr_source_serve(struct hr_source *src);

/** Whether @rkm's partition is still assigned to this consumer (after a
 *  rebalance during a long pause it may not be). */
bool hr_source_owns(struct hr_source *src, const rd_kafka_message_t *rkm);

/**
 * Store offsets for @n processed messages: for each partition the highest
 * offset + 1. Messages of partitions no longer assigned are skipped.
 * Returns 0, or -1 with @errstr.
 */
int hr_source_store(struct hr_source *src,
                    rd_kafka_message_t *const *msgs,
                    size_t n,
                    char *errstr,
                    size_t errstr_size);

/** Whether the consumer currently holds an assignment and no fatal error
 *  happened; @reason gets why not. */
bool hr_source_is_ready(struct hr_source *src,
                        char *reason,
                        size_t reason_size);

/** Whether a fatal client error happened (the worker must stop). */
bool hr_source_is_fatal(const struct hr_source *src);

/**
 * Commit stored offsets synchronously, retrying retriable errors
 * (REBALANCE_IN_PROGRESS, coordinator moves) until @deadline_ms (monotonic),
 * then leave the group and destroy the consumer. Returns 0 when the final
 * commit succeeded or there was nothing to commit, -1 otherwise.
 */
int hr_source_close(struct hr_source *src, int64_t deadline_ms);

#endif
