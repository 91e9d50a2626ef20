/*
 * Per-key ordering under retry (SPEC section 7; herald-guard's README,
 * "Per-key ordering"): while an event with key K for destination D waits
 * in the guard, later events with key K for D wait behind it, in order,
 * and are delivered after it; other keys flow on.
 *
 * Each (D, K) with something handed to the guard has a park queue in
 * Redis: the ids of its events in the order they were handed over. A
 * worker asks, before calling D for a record with key K, whether the queue
 * is empty (call), has this record's event at its head (it is the
 * guard's redelivery of the head: call), or has another event at its head
 * (do not call: hand the record to the guard with HR_PARK_REASON, which
 * spends no attempt). Whatever a worker hands to the guard for D joins
 * the queue at its end; when the head is delivered (or dead-lettered) the
 * worker removes it, which wakes the guard's item of the next event. The
 * guard redelivers only heads (hr_park_lib.lua). A head stays in its
 * queue while its redelivery travels, so a later record arriving then
 * still parks behind it.
 *
 * Within one batch, calls of one (D, K) go one after the other (waves):
 *
 *   hr_park_reset(park);
 *   for each call with a key: e[c] = hr_park_add(park, D, K, klen, id);
 *   hr_park_check(park, redis, ...);          one round trip
 *   while some call is undecided:
 *       for each undecided call c, in batch order:
 *           hr_park_next(park, e[c]): GO -> call it in this wave,
 *                                     WAIT -> a later wave,
 *                                     PARK -> hand it to the guard
 *       make this wave's calls;
 *       hr_park_finish(park, e[c], DONE or RETRY) for each;
 *   hr_park_settle(park, redis, now, ...);     one round trip
 *
 * Not thread-safe: one struct hr_park per thread.
 */
#ifndef HR_PARK_H
#define HR_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

struct hr_msg;
struct hr_redis;
struct hr_script;

/**
 * The herald-error of a retry record handed to the guard because an
 * earlier event of its key waits there for the same destination: no call
 * was made, so no attempt was spent (like HR_CIRCUIT_OPEN_REASON), and the
 * guard owes it no backoff.
 */
#define HR_PARK_REASON "parked behind"

/* Redis keys under the prefix, all in the hash tag {sched} of the guard's
 * schedule, so that one script touches one slot. */
#define HR_PARK_KEY_DUE    "guard:{sched}:due"
#define HR_PARK_KEY_WAIT   "guard:{sched}:wait"
#define HR_PARK_KEY_WAITEV "guard:{sched}:waitev"
#define HR_PARK_KEY_QOF    "guard:{sched}:qof"
#define HR_PARK_KEY_SEQ    "guard:{sched}:parkseq"
#define HR_PARK_KEY_QUEUE  "guard:{sched}:park:"

/** A park queue expires this long after its last append: a queue whose
 *  head was lost (a bug, or its item expired) cannot hold its key for
 *  ever. A head that is still retried is appended again at each retry. */
#define HR_PARK_QUEUE_TTL_MS (INT64_C(2) * 86400 * 1000)

/**
 * The id parking gives the event of message @msg handled by @worker:
 * "<worker>/<origin topic>/<origin partition>/<origin offset>", from the
 * herald-origin-* headers of a redelivered record, else the record's own
 * position, as hr_worker_failures.c writes the origin of a retry record,
 * so that the worker and the guard name the event alike. Writes a C string
 * into @buf; returns its length, or -1 when it does not fit or the message
 * has no log position (an SQS message: SQS orders a FIFO group itself, and
 * no guard releases a park queue for it, so it is not parked).
 */
int hr_park_event_id(char *buf,
                     size_t size,
                     const char *worker,
                     const struct hr_msg *msg);

/** The same id from its parts (the guard's side). Returns the length or -1. */
int hr_park_event_id_from(char *buf,
                          size_t size,
                          const char *worker,
                          const char *topic,
                          size_t topic_len,
                          int64_t partition,
                          int64_t offset);

/**
 * The park queue key of destination @destination and record key @key
 * (@key_len > 0 bytes, any bytes) under @prefix:
 * "<prefix>guard:{sched}:park:<strlen(destination)>:<destination>:<key>".
 * Returns it malloc'd (caller frees; not NUL-safe: use *@len) or NULL on
 * out-of-memory.
 */
char *hr_park_queue_key(const char *prefix,
                        const char *destination,
                        const void *key,
                        size_t key_len,
                        size_t *len);

/**
 * Set up @script, named @name, as hr_park_lib.lua followed by @body
 * (@body_len bytes): a script that uses the shared park functions
 * (herald-guard's). Returns its source, malloc'd, which the caller frees
 * once the script is no longer used; NULL on out-of-memory.
 */
char *hr_park_script_init(struct hr_script *script,
                          const char *name,
                          const char *body,
                          size_t body_len);

/** What hr_park_next() says about a call. */
enum hr_park_verdict {
    HR_PARK_GO = 0, /* call it now (the queue is empty, or it is the head) */
    HR_PARK_WAIT,   /* an earlier call of its (D, K) is not finished yet */
    HR_PARK_PARK,   /* do not call: hand it to the guard (HR_PARK_REASON) */
};

/** How a call that went (or that the circuit refused) ended. */
enum hr_park_result {
    HR_PARK_DONE = 0, /* delivered, or dead-lettered: its event is finished */
    HR_PARK_RETRY,    /* handed to the guard: it joins (or stays in) the
                         queue, and later calls of its (D, K) park */
};

struct hr_park;

/** A park client; NULL on out-of-memory. Free with hr_park_free(). */
struct hr_park *hr_park_new(void);

/** NULL is a no-op. */
void hr_park_free(struct hr_park *park);

/** Forget the previous batch. */
void hr_park_reset(struct hr_park *park);

/**
 * Add a call of this batch to @destination for a record with key @key
 * (@key_len > 0) whose event is @event_id (all copied). Calls must be
 * added in the order of their records. Returns the entry's index.
 * Aborts on out-of-memory.
 */
size_t hr_park_add(struct hr_park *park,
                   const char *destination,
                   const void *key,
                   size_t key_len,
                   const char *event_id);

/**
 * Mark entry @entry finished without a call (a redelivery for @destination
 * that has nothing to call there any more): hr_park_settle() removes its
 * event from the queue, so that it cannot hold the key.
 */
void hr_park_release(struct hr_park *park, size_t entry);

/**
 * Read the queue of every (D, K) of the batch: one round trip. Returns 0,
 * or -1 with @errstr (Redis unavailable): make no call and pause.
 */
int hr_park_check(struct hr_park *park,
                  struct hr_redis *redis,
                  char *errstr,
                  size_t errstr_size) HR_MUST_CHECK;

/**
 * Whether entry @entry may be called now (after hr_park_check()). Ask for
 * the entries of one (D, K) in the order they were added; an entry that
 * got GO must be finished (hr_park_finish()) before the next one of its
 * (D, K) is asked about again (until then it gets WAIT). PARK is final.
 */
enum hr_park_verdict hr_park_next(struct hr_park *park, size_t entry);

/** How entry @entry, which got GO, ended. */
void hr_park_finish(struct hr_park *park,
                    size_t entry,
                    enum hr_park_result result);

/**
 * Write the batch's queue changes in one round trip: parked and retried
 * events join their queues, finished heads leave them (waking the guard's
 * item of the next event). Must happen before the records handed to the
 * guard are produced (the runtime produces them after the handler
 * returns). Returns 0, or -1 with @errstr; calling it again with the same
 * batch has the same effect, so a batch redone after a failure may.
 */
int hr_park_settle(struct hr_park *park,
                   struct hr_redis *redis,
                   int64_t now_ms,
                   char *errstr,
                   size_t errstr_size) HR_MUST_CHECK;

#endif
