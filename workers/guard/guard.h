/*
 * herald-guard: the retry scheduler (SPEC sections 7 and 9, Guard).
 *
 * The handler takes batches of herald.retry records and writes each into a
 * Redis schedule (one script call per batch); the tick takes due items,
 * asks the per-destination retry budget, produces them to
 * herald.redeliver.<worker> (or herald.dlq), waits for the broker's
 * acknowledgement and only then removes them from the schedule.
 */
#ifndef GUARD_H
#define GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "hr_worker.h"

/** The guard's settings table (includes hr_circuit_conf_specs()' names). */
extern const struct hr_conf_spec guard_conf[];

/** Settings, from the loaded configuration. */
struct guard_settings {
    int64_t max_attempts;
    int64_t max_age_ms;
    int64_t base_delay_ms;
    int64_t max_delay_ms;
    int64_t max_scheduled; /* bound of the schedule; full: stop consuming */
    int64_t tick_max;      /* due items taken per slice of a tick */
    const char *redeliver_prefix; /* "herald.redeliver." */
    const char *dlq_topic;
};

/** What happens to a retry record. */
enum guard_verdict {
    GUARD_SCHEDULE = 0,
    GUARD_DLQ_MAX_ATTEMPTS,
    GUARD_DLQ_MAX_AGE,
};

void guard_validate(struct hr_conf *cfg);
void guard_settings_load(struct guard_settings *s, const struct hr_conf *cfg);

int guard_init(struct hr_worker *w, void **state);
void guard_submit(struct hr_worker *w, void *state, struct hr_batch *batch);
enum hr_batch_result
guard_handle(struct hr_worker *w, void *state, struct hr_batch *batch);
void guard_tick(struct hr_worker *w, void *state);
void guard_stop(struct hr_worker *w, void *state, int64_t deadline_ms);
void guard_fini(struct hr_worker *w, void *state);

/**
 * "herald-guard redrive ...": @argv[0] is "redrive". Moves dead letters
 * back (see README.md). Returns the process exit status (0, 1 runtime
 * failure, 2 usage or configuration error).
 */
int guard_redrive_main(int argc, char **argv);

/* --- pure helpers (guard_calc.c), unit-tested ---------------------------- */

/**
 * Whether a record on its @attempt-th failed attempt, first failing at
 * @first_failure_ms, is scheduled again or dead-lettered at @now_ms.
 * Attempts are 1-based: the record of the first failure says 1.
 */
enum guard_verdict guard_decide(const struct guard_settings *s,
                                int64_t attempt,
                                int64_t first_failure_ms,
                                int64_t now_ms);

/** "max_attempts" or "max_age" (herald-guard-reason); NULL for SCHEDULE. */
const char *guard_verdict_reason(enum guard_verdict v);

/**
 * When the record of the @attempt-th failure is due: @now_ms plus a full
 * jitter backoff drawn from [0, min(max, base * 2^(attempt - 1))] with
 * @rnd, and at least @retry_after_ms (< 0: unknown) after @now_ms.
 */
int64_t guard_due_ms(const struct guard_settings *s,
                     int64_t attempt,
                     int64_t retry_after_ms,
                     int64_t now_ms,
                     uint64_t rnd);

/**
 * The schedule id of a record: "<origin topic>/<partition>/<offset>/
 * <attempt>", so a redelivered retry record maps to the same id. Returns
 * the length, or -1 if it does not fit in @size.
 */
int guard_item_id(char *buf,
                  size_t size,
                  const char *topic,
                  size_t topic_len,
                  int64_t partition,
                  int64_t offset,
                  int64_t attempt);

/** Parse a decimal header value (not NUL-terminated). Returns 0 or -1. */
int guard_parse_i64(const char *val, size_t len, int64_t *out);

/**
 * Serialize the headers of @msg (may be NULL: none) into a malloc'd
 * binary-safe blob (*@len bytes; caller frees). Each header: 4-byte
 * big-endian name length, name, 4-byte value length (0xffffffff for a NULL
 * value), value. NULL on OOM.
 */
char *guard_hdrs_encode(const struct hr_msg *msg, size_t *len);

/** The headers of a blob from guard_hdrs_encode() (new; caller destroys),
 *  or NULL when the blob is malformed. */
rd_kafka_headers_t *guard_hdrs_decode(const char *blob, size_t len);

/** Whether @blob is a well-formed guard_hdrs_encode() blob. */
bool guard_hdrs_blob_ok(const char *blob, size_t len);

/**
 * The value of the last header @name in a well-formed blob (borrowed, not
 * NUL-terminated; NULL for a header without value) and its length.
 * Returns 0, or -1 when absent. No allocation: the tick reads its items'
 * headers this way and decodes them only to produce.
 */
int guard_hdrs_blob_get(const char *blob,
                        size_t len,
                        const char *name,
                        const char **val,
                        size_t *val_len);

/** A decimal header of a blob; @def when absent or not a number. */
int64_t guard_hdrs_blob_i64(const char *blob,
                            size_t len,
                            const char *name,
                            int64_t def);

/** Replace header @name by the decimal @value. */
void guard_hdrs_set_i64(rd_kafka_headers_t *hdrs,
                        const char *name,
                        int64_t value);

/** Header @name as an integer; @def when absent or not a number. */
int64_t guard_hdrs_get_i64(const rd_kafka_headers_t *hdrs,
                           const char *name,
                           int64_t def);

/** What a schedule item holds: the redelivery's topic, key (NULL: none),
 *  value, headers (a guard_hdrs_encode() blob) and destination. Pointers
 *  are borrowed from the encoded item; nothing is NUL-terminated. */
struct guard_item {
    const char *topic;
    size_t topic_len;
    const char *key; /* NULL: the record had no key */
    size_t key_len;
    const char *value;
    size_t value_len;
    const char *hdrs;
    size_t hdrs_len;
    const char *dest;
    size_t dest_len;
};

/** Bytes guard_item_encode() writes for @it. */
size_t guard_item_size(const struct guard_item *it);

/**
 * Encode @it into @out (guard_item_size() bytes): each field as a 4-byte
 * big-endian length and its bytes (the key's length 0xffffffff when there
 * is none). Returns the bytes written.
 */
size_t guard_item_encode(char *out, const struct guard_item *it);

/** Parse an encoded item into @it (pointing into @blob). Returns 0, or -1
 *  when the blob is malformed. */
int guard_item_decode(const char *blob, size_t len, struct guard_item *it);

#endif
