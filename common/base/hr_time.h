/* Clocks and RFC 3339 timestamps. */
#ifndef HR_TIME_H
#define HR_TIME_H

#include <stddef.h>
#include <stdint.h>

/** Wall clock, milliseconds since the Unix epoch. */
int64_t hr_time_now_ms(void);

/** Monotonic clock in milliseconds (for timeouts and durations). */
int64_t hr_time_mono_ms(void);

/** Monotonic clock in seconds with sub-microsecond resolution. */
double hr_time_mono_s(void);

/**
 * Parse an RFC 3339 timestamp ("2026-11-22T07:28:39Z",
 * "2026-11-22T07:28:39.123+01:00", fractions of any length, 'T' or 't' or
 * ' ' between date and time, 'Z'/'z' or a numeric offset) into milliseconds
 * since the epoch (fractions beyond milliseconds are truncated).
 * Returns 0 on success, -1 if @s is not a valid timestamp.
 */
int hr_time_parse_rfc3339(const char *s, int64_t *ms);

/**
 * Format @ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into @buf (at least 25 bytes).
 * Returns @buf.
 */
char *hr_time_format_rfc3339(int64_t ms, char *buf, size_t size);

/** Sleep for @ms milliseconds (restarting on EINTR is NOT done: a signal
 *  shortens the sleep so that shutdown stays prompt). */
void hr_time_sleep_ms(int64_t ms);

#endif
