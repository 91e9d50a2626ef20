/*
 * Shared circuit breaker and retry budget per destination (SPEC sections 7
 * and 9), kept in Redis so that every replica of every worker agrees.
 *
 * One hash per destination, <prefix>circuit:{<destination>}, holds the
 * state and a ring of per-second buckets (successes, destination failures,
 * retries admitted) covering the sliding window; it expires after
 * 2 x (window + open time) without writes. Every call below is one script
 * run, hence one Redis round trip, for a whole batch of destinations.
 *
 *   closed ---- >= min_calls calls in the window and
 *     ^         failures / calls >= failure_ratio ----------> open
 *     |         auth_threshold auth failures in a row ------> auth-broken
 *     |                                                        |
 *     |                 open_ms later (both) ------------------+
 *     |                                                        v
 *     +------- a probe succeeds ---------------------- half-open
 *                                                 (half_open_probes
 *              a probe fails: open (or auth-broken)  calls per open_ms)
 *
 * Transient and throttled failures count against a destination; permanent
 * failures (other 4xx) and poison do not, and like successes they end a run
 * of auth failures. A failure that says how long to wait (Retry-After, as
 * a 429 or 503 may) holds back every call to the destination until then,
 * whatever the state (at most HR_CIRCUIT_THROTTLE_MAX_MS): check reports
 * it as HR_CIRCUIT_THROTTLED. Retries are admitted per second up to
 *   budget_floor_per_s + budget_ratio x (successes per second in the window)
 * (Finagle's and Linkerd's retry budget); the caller keeps the rest waiting.
 *
 * Time comes from the caller (@now_ms, wall-clock milliseconds), so that
 * replicas need roughly synchronized clocks and tests control time.
 *
 * Not thread-safe: one struct hr_circuit per thread, like struct hr_redis.
 */
#ifndef HR_CIRCUIT_H
#define HR_CIRCUIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

struct hr_conf;
struct hr_conf_spec;
struct hr_redis;

/** Tuning; hr_circuit_conf_init() fills the defaults given here. */
struct hr_circuit_conf {
    double failure_ratio; /* HERALD_GUARD_CIRCUIT_FAILURE_RATIO, 0.5 */
    int min_calls;        /* HERALD_GUARD_CIRCUIT_MIN_CALLS, 20 */
    int64_t open_ms;      /* HERALD_GUARD_CIRCUIT_OPEN_MS, 30000 */
    int auth_threshold;   /* auth failures in a row to break, 3 */
    int half_open_probes; /* probes admitted per open_ms when half-open, 1 */
    double budget_ratio;  /* HERALD_GUARD_RETRY_BUDGET, 0.2 */
    double budget_floor_per_s; /* HERALD_GUARD_RETRY_FLOOR_PER_S, 10 */
    int64_t window_ms; /* sliding window, whole seconds 1..60 s, 10000 */
};

/** Circuit states; the values of 0..2 are the herald_guard_circuit_state
 *  gauge's. An auth-broken destination reports HR_CIRCUIT_HALF_OPEN while
 *  it admits probes. */
enum hr_circuit_state {
    HR_CIRCUIT_CLOSED = 0,
    HR_CIRCUIT_HALF_OPEN = 1,
    HR_CIRCUIT_OPEN = 2,
    HR_CIRCUIT_AUTH_BROKEN = 3,
    HR_CIRCUIT_THROTTLED = 4, /* closed or half-open, but it asked to wait */
};

/** The longest a Retry-After holds back a whole destination. */
#define HR_CIRCUIT_THROTTLE_MAX_MS INT64_C(600000)

/** A destination stays in hr_circuit_peek()'s list this long after its
 *  last reported outcome. */
#define HR_CIRCUIT_PEEK_KEEP_MS INT64_C(86400000)

/** The result of a call that succeeded (2xx), as hr_http_classify() says. */
#define HR_CIRCUIT_SUCCESS (-1)

/** One call's outcome. */
struct hr_circuit_outcome {
    const char *destination; /* borrowed; non-empty */
    int result;              /* HR_CIRCUIT_SUCCESS or an enum hr_err_class */
    int64_t retry_after_ms;  /* > 0: a failure said to wait this long */
};

/**
 * The entries of hr_circuit_conf_specs() without the terminating
 * HR_CONF_END, for a worker whose own table (one array: struct
 * hr_worker_def.conf) must include them; needs hr_conf.h where it is used:
 *
 *   const struct hr_conf_spec my_conf[] = {
 *       HR_CONF_STR(...), HR_CIRCUIT_CONF_SPECS, HR_CONF_END,
 *   };
 */
#define HR_CIRCUIT_CONF_SPECS                                                 \
    HR_CONF_DOUBLE("HERALD_GUARD_CIRCUIT_FAILURE_RATIO", "0.5", 0, 1, 0,      \
                   "failure ratio in the window that opens a circuit"),       \
        HR_CONF_INT("HERALD_GUARD_CIRCUIT_MIN_CALLS", "20", 1, 1000000, 0,    \
                    "calls in the window before a circuit may open"),         \
        HR_CONF_MS("HERALD_GUARD_CIRCUIT_OPEN_MS", "30000", 0,                \
                   "time an open circuit waits before admitting probes"),     \
        HR_CONF_DOUBLE("HERALD_GUARD_RETRY_BUDGET", "0.2", 0, 1000, 0,        \
                       "retries per successful call of a destination"),       \
        HR_CONF_DOUBLE("HERALD_GUARD_RETRY_FLOOR_PER_S", "10", 0, 1000000, 0, \
                       "retries per second always allowed per destination")

/**
 * The herald-error (reason) of a retry record handed to the guard because
 * a destination's circuit refused the call (open, or half-open with its
 * probes taken): no call was made, so no attempt was spent. Such a record
 * carries the input's herald-attempt unchanged (as every retry record
 * does), and the guard must redeliver it with that same herald-attempt
 * rather than the next one. A record of which any call was actually made
 * and failed carries that call's reason instead, and counts as an attempt.
 */
#define HR_CIRCUIT_OPEN_REASON "circuit open"

/**
 * Like HR_CIRCUIT_OPEN_REASON for a call held back because the destination
 * asked to wait (HR_CIRCUIT_THROTTLED): no call was made, no attempt spent.
 */
#define HR_CIRCUIT_THROTTLED_REASON "destination throttled"

/**
 * Whether a retry record whose herald-error is @reason (@len bytes, not
 * NUL-terminated) spent no attempt: HR_CIRCUIT_OPEN_REASON,
 * HR_CIRCUIT_THROTTLED_REASON or hr_park.h's HR_PARK_REASON.
 */
bool hr_circuit_reason_spent_no_attempt(const char *reason, size_t len);

/**
 * The guard's settings (HERALD_GUARD_CIRCUIT_FAILURE_RATIO,
 * HERALD_GUARD_CIRCUIT_MIN_CALLS, HERALD_GUARD_CIRCUIT_OPEN_MS,
 * HERALD_GUARD_RETRY_BUDGET, HERALD_GUARD_RETRY_FLOOR_PER_S), terminated by
 * HR_CONF_END, for hr_conf_add_specs() by a worker that does not declare
 * them itself.
 */
const struct hr_conf_spec *hr_circuit_conf_specs(void);

/** Fill @conf with the defaults. */
void hr_circuit_conf_init(struct hr_circuit_conf *conf);

/** Defaults, overridden by the hr_circuit_conf_specs() settings of @cfg,
 *  which must have that table registered and be loaded. */
void hr_circuit_conf_load(struct hr_circuit_conf *conf,
                          const struct hr_conf *cfg);

/** Check @conf's ranges. Returns 0, or -1 with @errstr naming the field. */
int hr_circuit_conf_validate(const struct hr_circuit_conf *conf,
                             char *errstr,
                             size_t errstr_size) HR_MUST_CHECK;

/** "closed", "half_open", "open", "auth_broken", "throttled" ("unknown"
 *  otherwise). */
const char *hr_circuit_state_name(enum hr_circuit_state state);

/** The herald_guard_circuit_state value: 0 closed, 1 half-open, 2 open,
 *  auth-broken or throttled (no call goes). */
int hr_circuit_state_gauge(enum hr_circuit_state state);

struct hr_circuit;

/**
 * A circuit client using a copy of @conf (which must validate). Returns
 * NULL on out-of-memory. Free with hr_circuit_free().
 */
struct hr_circuit *hr_circuit_new(const struct hr_circuit_conf *conf);

/** Free @circuit. NULL is a no-op. */
void hr_circuit_free(struct hr_circuit *circuit);

/**
 * Record the outcomes of @n calls (in the order they finished; the order
 * matters for runs of auth failures and for probes) and move each
 * destination's state accordingly. A half-open destination takes any
 * outcome reported for it as its probe's. When @states is not NULL,
 * @states[i] receives the state of @outs[i]'s destination after the whole
 * batch. Each destination is listed for hr_circuit_peek(). Returns 0, or
 * -1 with @errstr (Redis unavailable, a bad outcome); then nothing or
 * everything was recorded.
 */
int hr_circuit_report(struct hr_circuit *circuit,
                      struct hr_redis *redis,
                      const struct hr_circuit_outcome *outs,
                      size_t n,
                      int64_t now_ms,
                      enum hr_circuit_state *states,
                      char *errstr,
                      size_t errstr_size) HR_MUST_CHECK;

/**
 * Ask whether each of @n intended calls to @destinations[i] may go ahead
 * now (a destination may appear several times, once per call). Closed:
 * all are allowed; open and auth-broken: none (hand the work to the guard
 * without spending an attempt); half-open: the first calls up to what is
 * left of half_open_probes in this open_ms period, counted across all
 * replicas; throttled: none until the wait it asked for is over.
 * @allowed[i] says; @states[i] (when @states is not NULL) gets the
 * destination's state, and @wait_ms[i] (when not NULL) how long a
 * throttled destination still wants us to wait (0 otherwise). Returns 0,
 * or -1 with @errstr.
 */
int hr_circuit_check(struct hr_circuit *circuit,
                     struct hr_redis *redis,
                     const char *const *destinations,
                     size_t n,
                     int64_t now_ms,
                     enum hr_circuit_state *states,
                     bool *allowed,
                     int64_t *wait_ms,
                     char *errstr,
                     size_t errstr_size) HR_MUST_CHECK;

/**
 * Ask the retry budget, shared by all replicas, for @want[i] (>= 0) retries
 * to @destinations[i] now, for each i < @n. @granted[i] receives how many
 * are admitted (0..@want[i]; entries of one destination are served in
 * order). Admitted retries are spent whether or not they are made; the
 * rest should wait (not be dropped) and ask again later. Returns 0, or -1
 * with @errstr.
 */
int hr_circuit_budget_take(struct hr_circuit *circuit,
                           struct hr_redis *redis,
                           const char *const *destinations,
                           const int *want,
                           size_t n,
                           int64_t now_ms,
                           int *granted,
                           char *errstr,
                           size_t errstr_size) HR_MUST_CHECK;

/** One destination as hr_circuit_peek() sees it. */
struct hr_circuit_view {
    char destination[200];
    enum hr_circuit_state state;
    int64_t auth_failures; /* since its state was created (it expires when
                              idle: the count may restart from 0) */
};

/**
 * Read-only look at every destination that reported outcomes in the last
 * HR_CIRCUIT_PEEK_KEEP_MS, fleet-wide (one round trip): their state and
 * auth-failure count, for the guard's gauges. Stores at most @max views in
 * @views (newly allocated array, caller frees) and their number in *@n.
 * Returns 0, or -1 with @errstr.
 */
int hr_circuit_peek(struct hr_circuit *circuit,
                    struct hr_redis *redis,
                    int64_t now_ms,
                    size_t max,
                    struct hr_circuit_view **views,
                    size_t *n,
                    char *errstr,
                    size_t errstr_size) HR_MUST_CHECK;

#endif
