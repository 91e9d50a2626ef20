/*
 * The idempotent Kafka producer every worker uses for its outputs and for
 * retry and dead-letter records, with delivery epochs: the runtime seals a
 * batch's records into an epoch and stores the batch's offsets only after
 * hr_producer_settle() saw every one of them acknowledged.
 *
 * Not thread-safe: used from the worker's loop thread only (delivery reports
 * are served there by hr_producer_poll(), hr_producer_settle() and
 * hr_producer_barrier()).
 */
#ifndef HR_PRODUCER_H
#define HR_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "hr_compat.h"

struct hr_conf;
struct hr_hdrs;
struct hr_producer;

/**
 * Create the producer (enable.idempotence=true, lz4, linger 5 ms, then
 * HERALD_KAFKA_PROPERTIES). Without HERALD_KAFKA_BROKERS (a worker that
 * reads SQS and has no Kafka) it discards every record: sends succeed,
 * count in hr_producer_discarded() and every epoch settles at once.
 * Returns NULL with @errstr on failure.
 */
struct hr_producer *
hr_producer_new(const struct hr_conf *cfg, char *errstr, size_t errstr_size);

/** Flush within @timeout_ms and destroy. Returns the number of records that
 *  were not delivered (0 on a clean flush). NULL is a no-op returning 0. */
int hr_producer_free(struct hr_producer *p, int timeout_ms);

/** hr_producer_send()'s answer for a record that no retry can send: it is
 *  larger than the producer's message.max.bytes. Whatever caused it must
 *  be dead-lettered; redoing the batch would fail the same way forever. */
#define HR_PRODUCE_REFUSED (-2)

/**
 * Queue one record; key, value and headers are copied. @hdrs (may be NULL)
 * is taken over on success only (the caller nulls its pointer); on failure
 * the caller still owns it. Waits while the local queue is full.
 * Returns 0, HR_PRODUCE_REFUSED, or -1 with @errstr when the record cannot
 * be queued now.
 */
int hr_producer_send(struct hr_producer *p,
                     const char *topic,
                     const void *key,
                     size_t key_len,
                     const void *value,
                     size_t value_len,
                     rd_kafka_headers_t *hdrs,
                     char *errstr,
                     size_t errstr_size) HR_MUST_CHECK;

/*
 * Epochs: every record joins the current epoch. hr_producer_seal() closes
 * it (returning its id) and opens the next, so a batch's outputs can be
 * acknowledged while the next batch is handled; hr_producer_settle() then
 * says whether they all made it. At most a few sealed epochs may be alive
 * at once (the runtime keeps one per batch slot, a timer may keep two;
 * there is room for 15).
 */

/** Close the current epoch and return its id; later records join a new
 *  one. Settle the returned id exactly once. */
uint64_t hr_producer_seal(struct hr_producer *p);

/**
 * Serve delivery reports for up to @timeout_ms (0: only what is ready) and
 * report on sealed @epoch: -1 while records are still in flight (call
 * again), else the number of records that failed or were not acknowledged
 * (0: all durable) — the epoch is then released, the first failure's reason
 * in @errstr. An epoch with a failure settles at once.
 */
int hr_producer_settle(struct hr_producer *p,
                       uint64_t epoch,
                       int timeout_ms,
                       char *errstr,
                       size_t errstr_size);

/** Give up on sealed @epoch without waiting (its batch is abandoned). */
void hr_producer_forget(struct hr_producer *p, uint64_t epoch);

/**
 * Seal the current epoch and wait until it and every earlier sealed one are
 * acknowledged or failed for good, at most @timeout_ms. Returns the number
 * of the current epoch's failed or still-unacknowledged records (0: all
 * durable); earlier epochs keep their results for hr_producer_settle().
 * The first failure's reason goes to @errstr.
 */
int hr_producer_barrier(struct hr_producer *p,
                        int timeout_ms,
                        char *errstr,
                        size_t errstr_size);

/** Serve delivery reports without blocking. */
void hr_producer_poll(struct hr_producer *p);

/** Whether @p discards its records (no brokers). */
bool hr_producer_is_discarding(const struct hr_producer *p);

/** Records discarded so far. */
uint64_t hr_producer_discarded(const struct hr_producer *p);

/** Kafka headers holding a copy of @hdrs (new; the caller destroys them or
 *  hands them to hr_producer_send()). */
rd_kafka_headers_t *hr_producer_headers(const struct hr_hdrs *hdrs);

/** The underlying handle (borrowed), e.g. for metadata; NULL when
 *  discarding. */
rd_kafka_t *hr_producer_handle(struct hr_producer *p);

#endif
