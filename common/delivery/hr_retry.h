/*
 * Failure classes (SPEC section 7) and backoff arithmetic.
 */
#ifndef HR_RETRY_H
#define HR_RETRY_H

#include <stdint.h>

enum hr_err_class {
    HR_ERR_TRANSIENT = 0, /* 5xx, timeouts, connection errors -> retry */
    HR_ERR_THROTTLED,     /* 429 -> retry, Retry-After honoured */
    HR_ERR_AUTH,          /* 401, 403 -> dead letter at once, alert */
    HR_ERR_PERMANENT,     /* other 4xx, validation -> dead letter */
    HR_ERR_POISON,        /* unparseable input -> dead letter */
};

/** "transient", "throttled", "auth", "permanent", "poison". */
const char *hr_err_class_name(enum hr_err_class cls);

/** Parse a class name; returns 0 or -1. */
int hr_err_class_parse(const char *name, enum hr_err_class *cls);

/** Whether events of this class go to the retry topic (else dead letter). */
int hr_err_class_is_retryable(enum hr_err_class cls);

/** Class of an HTTP status: 2xx/3xx are not failures and return -1. */
int hr_retry_classify_http(long status);

/**
 * The exponential cap for @attempt (0-based): min(max_ms, base_ms * 2^attempt),
 * without overflow for any attempt.
 */
int64_t hr_retry_cap_ms(unsigned attempt, int64_t base_ms, int64_t max_ms);

/**
 * Full-jitter backoff: a delay uniformly drawn from [0, cap] where cap is
 * hr_retry_cap_ms(); @rnd is a random 64-bit value supplied by the caller
 * (a seam for tests).
 */
int64_t hr_retry_backoff_ms(unsigned attempt,
                            int64_t base_ms,
                            int64_t max_ms,
                            uint64_t rnd);

/** A fast non-cryptographic random 64-bit value (thread-local state seeded
 *  from the clock and pid). */
uint64_t hr_retry_random(void);

/**
 * Parse an HTTP Retry-After value (delta-seconds, or an HTTP-date relative to
 * @now_ms) into milliseconds from now (>= 0). Returns -1 if unparseable.
 */
int64_t hr_retry_parse_retry_after(const char *value, int64_t now_ms);

#endif
