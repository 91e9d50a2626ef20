/*
 * The worker runtime: a worker is a definition plus a batch handler.
 *
 *   int main(int argc, char **argv)
 *   {
 *       static const struct hr_worker_def def = {
 *           .name = "unread", .topics = "herald.messages", ...
 *           .init = unread_init, .handle = unread_handle,
 *           .fini = unread_fini,
 *       };
 *       return hr_worker_main(&def, argc, argv);
 *   }
 *
 * hr_worker_main() owns flags, configuration, logging, signals, /metrics
 * and health, the source (Kafka or SQS, source/hr_source.h), the producer,
 * Redis, and shutdown. The handler receives batches of events and sets one
 * outcome per event; the runtime hands failures off (worker/hr_failure.h),
 * waits until every output of the batch is acknowledged by the broker, and
 * only then acknowledges the batch to its source.
 */
#ifndef HR_WORKER_H
#define HR_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"
#include "hr_conf.h"
#include "hr_event.h"
#include "hr_retry.h"

struct hr_worker;
struct hr_redis;
struct hr_metrics;
struct hr_producer;

enum hr_outcome {
    HR_OUT_PENDING = 0, /* the handler has not decided (treated as a bug) */
    HR_OUT_OK,
    HR_OUT_DUPLICATE,
    HR_OUT_FILTERED,
    HR_OUT_RETRY, /* -> herald.retry with SPEC section 7 headers */
    HR_OUT_DEAD,  /* -> herald.dlq with SPEC section 7 headers */
};

/** One consumed event: its source message (base/hr_msg.h) and copies of
 *  the fields handlers use most, borrowed for the batch's life. */
#define HR_ITEM_DEST_MAX   96
#define HR_ITEM_REASON_MAX 256

struct hr_msg;

struct hr_item {
    const struct hr_msg *msg; /* the source's message */
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t timestamp_ms;

    /* Parsed CloudEvent when the definition asks for it (.cloudevents);
     * items that fail to parse are dead-lettered by the runtime and never
     * reach the handler's view (their outcome is already set). */
    struct hr_event ev;

    /* Outcome, set by the handler through hr_item_*(). */
    enum hr_outcome outcome;
    enum hr_err_class err_class;
    int64_t retry_after_ms; /* -1 when unknown */
    /* Set by hr_item_dead()/hr_item_retry()/hr_item_add_destination(), owned
     * by the runtime (most items never carry them: they are not inline, so
     * that a batch slot stays small); NULL when unset. */
    char *destination; /* at most HR_ITEM_DEST_MAX - 1 bytes */
    char *reason;      /* at most HR_ITEM_REASON_MAX - 1 bytes */
};

struct hr_batch {
    struct hr_item *items;
    size_t n;
};

enum hr_batch_result {
    HR_BATCH_DONE = 0, /* every item has an outcome */
    HR_BATCH_PAUSE,    /* own state unavailable: redo the whole batch later */
};

/** Called once after configuration and clients are ready. Store the
 *  worker's state in *state. Returns 0, or -1 to exit with status 1. */
typedef int hr_init_fn(struct hr_worker *w, void **state);

/** Handle a batch: set every pending item's outcome, or return PAUSE. May be
 *  called again with the same batch after PAUSE (handlers are idempotent).
 *  Items whose outcome is already set on entry (poison) must be left alone. */
typedef enum hr_batch_result
hr_handle_fn(struct hr_worker *w, void *state, struct hr_batch *batch);

/**
 * Optional: start the asynchronous part of a batch's work (for example send
 * its Redis request without waiting) so that it overlaps what the runtime
 * does with the previous batch. The runtime fills the next batch and calls
 * submit() on it before it calls handle() on the current one, so at most
 * two batches are submitted and not yet handled (a third, handled, may be
 * waiting for its outputs' acknowledgements). handle() is still called on
 * every batch, in the order they were submitted, and must work whether or
 * not submit() had any effect (it is a hint, with no outcome). A handled
 * batch whose outputs fail to be acknowledged is handled again, possibly
 * after newer batches (handlers are idempotent; offsets still go out in
 * order); after a PAUSE, handle() is called
 * again on the same batch without a new submit(). A submitted batch may be
 * dropped without handle() when the worker stops (it is redelivered).
 */
typedef void
hr_submit_fn(struct hr_worker *w, void *state, struct hr_batch *batch);

/**
 * Optional: timers. Called from the loop thread between batches, about every
 * HERALD_BATCH_WAIT_MS and also when no input arrives (for example the
 * guard's schedule of due retries). Records it produces belong to no batch:
 * the tick seals them (hr_producer_seal()) and relies on them only once
 * hr_producer_settle() says they are durable, on a later tick if it likes.
 */
typedef void hr_tick_fn(struct hr_worker *w, void *state);

/**
 * Optional: called once when the loop has stopped (SIGTERM), before the
 * consumer closes and outputs are flushed, so that timers finish what they
 * have in flight by @deadline_ms (monotonic).
 */
typedef void hr_stop_fn(struct hr_worker *w, void *state, int64_t deadline_ms);

/** Release the state at shutdown. */
typedef void hr_fini_fn(struct hr_worker *w, void *state);

/** Worker-specific validation for startup and --check-config: report
 *  problems with hr_conf_add_error(); must not connect anywhere. */
typedef void hr_validate_fn(struct hr_conf *cfg);

struct hr_worker_def {
    const char *name;    /* "unread": herald-unread, herald.redeliver.unread */
    const char *summary; /* one line for --help */
    const char *topics;  /* default input topics, comma-separated */
    const struct hr_conf_spec *conf; /* worker settings, may be NULL */
    bool cloudevents;                /* parse each input as a CloudEvent */
    bool uses_redis; /* connect Redis; readiness depends on it */
    int batch_max;   /* default HERALD_BATCH_MAX, 0: the runtime's */
    hr_validate_fn *validate;
    hr_init_fn *init;
    hr_submit_fn *submit; /* optional: pipeline batches (see above) */
    hr_tick_fn *tick;     /* optional: timers (see above) */
    hr_stop_fn *stop;     /* optional: timers' last words (see above) */
    hr_handle_fn *handle;
    hr_fini_fn *fini;
};

/** Run the worker; returns the process exit status (SPEC section 1). */
int hr_worker_main(const struct hr_worker_def *def, int argc, char **argv);

/** Accessors for handlers; all borrowed, valid until fini. */
const struct hr_conf *hr_worker_conf(struct hr_worker *w);
struct hr_redis *hr_worker_redis(struct hr_worker *w);
struct hr_metrics *hr_worker_metrics(struct hr_worker *w);
const char *hr_worker_name(const struct hr_worker *w);

/**
 * Produce one output record (copied). It is part of the current batch: the
 * batch's offsets are stored only after the broker acknowledged it; if it
 * fails for good, the batch is redone. Returns 0, -1 if the producer queue
 * refused it (the runtime then pauses and redoes the batch), or
 * HR_PRODUCE_REFUSED (hr_producer.h) if no producer ever could send it (too
 * large): the handler dead-letters what caused it and the batch goes on.
 */
int hr_worker_produce(struct hr_worker *w,
                      const char *topic,
                      const void *key,
                      size_t key_len,
                      const void *value,
                      size_t value_len) HR_MUST_CHECK;

struct rd_kafka_headers_s;

/**
 * Like hr_worker_produce() with Kafka headers: @hdrs (may be NULL) is taken
 * over on success only; on failure the caller still owns it. Returns 0, or
 * -1 with @errstr.
 */
int hr_worker_produce_headers(struct hr_worker *w,
                              const char *topic,
                              const void *key,
                              size_t key_len,
                              const void *value,
                              size_t value_len,
                              struct rd_kafka_headers_s *hdrs,
                              char *errstr,
                              size_t errstr_size) HR_MUST_CHECK;

/**
 * The worker's producer (borrowed), for ticks: a tick seals what it
 * produced into an epoch (hr_producer_seal()) and settles or forgets it
 * later (hr_producer.h); batches are settled by the runtime. Keep at most
 * two of a tick's epochs alive.
 */
struct hr_producer *hr_worker_producer(struct hr_worker *w);

/** Say why the handler returned PAUSE (shown on /readyz and in logs). */
void hr_worker_set_pause_reason(struct hr_worker *w, const char *fmt, ...)
    HR_PRINTF(2, 3);

/**
 * The value of the last header @name of @item's message (an hr_item,
 * passed as void * so that this matches hr_event_header_fn): a Kafka
 * header or an SQS message attribute, not NUL-terminated, and its length;
 * NULL when absent. Borrowed for the batch's life.
 */
const char *hr_item_header(void *item, const char *name, size_t *len);

/** Outcome setters. */
void hr_item_ok(struct hr_item *item);
void hr_item_duplicate(struct hr_item *item);
void hr_item_filtered(struct hr_item *item);
void hr_item_dead(struct hr_item *item,
                  enum hr_err_class cls,
                  const char *fmt,
                  ...) HR_PRINTF(3, 4);
void hr_item_retry(struct hr_item *item,
                   enum hr_err_class cls,
                   const char *destination,
                   int64_t retry_after_ms,
                   const char *fmt,
                   ...) HR_PRINTF(5, 6);

/**
 * Set @item's outcome for a call to @destination that its shared circuit
 * held back (hr_circuit_check() did not allow it; @state, an enum
 * hr_circuit_state): auth-broken is dead (auth); throttled goes to the
 * guard to wait @wait_ms; open, or half-open with its probes taken, goes to
 * the guard as a retry that spent no attempt (HR_CIRCUIT_OPEN_REASON).
 */
void hr_item_held_back(struct hr_item *item,
                       int state,
                       const char *destination,
                       int64_t wait_ms);

/** Set @item's destination (NULL: none). */
void hr_item_set_destination(struct hr_item *item, const char *destination);

/** Whether the comma-separated destination list @list (a
 *  herald-destination header) names @destination. */
bool hr_destination_listed(const char *list, const char *destination);

/** Append ",@destination" to @item's destination list (or set it when
 *  empty) unless the list already names it; a list that would exceed
 *  HR_ITEM_DEST_MAX keeps its first names. Returns whether the list names
 *  @destination now. */
bool hr_item_add_destination(struct hr_item *item, const char *destination);

/** @item's destination, or "" when unset. */
const char *hr_item_destination(const struct hr_item *item);

/** @item's reason, or "" when unset. */
const char *hr_item_reason(const struct hr_item *item);

#endif
