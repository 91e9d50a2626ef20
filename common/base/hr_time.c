/* Clocks and RFC 3339 timestamps.
 *
 * The calendar arithmetic is done here (Howard Hinnant's days_from_civil /
 * civil_from_days) instead of timegm()/gmtime_r(): it is exact for every
 * year RFC 3339 can express, needs no _DEFAULT_SOURCE, and never touches the
 * TZ environment. */
#include "hr_time.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "hr_banned.h"

#define MS_PER_DAY INT64_C(86400000)

static int64_t ts_to_ms(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}

int64_t hr_time_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return ts_to_ms(&ts);
}

int64_t hr_time_mono_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return ts_to_ms(&ts);
}

double hr_time_mono_s(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Inverse of days_from_civil(). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};

    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Exactly @n ASCII digits at *p (advanced past them). */
static bool parse_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];

        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

int hr_time_parse_rfc3339(const char *s, int64_t *ms)
{
    const char *p = s;
    int year, mon, day, hour, min, sec, frac = 0, off = 0;
    int64_t total;

    if (!s)
        return -1;
    /* full-date */
    if (!parse_digits(&p, 4, &year) || !expect(&p, '-') ||
        !parse_digits(&p, 2, &mon) || !expect(&p, '-') ||
        !parse_digits(&p, 2, &day))
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon))
        return -1;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -1;
    p++;
    /* partial-time; second 60 is a leap second (RFC 3339 section 5.7) */
    if (!parse_digits(&p, 2, &hour) || !expect(&p, ':') ||
        !parse_digits(&p, 2, &min) || !expect(&p, ':') ||
        !parse_digits(&p, 2, &sec))
        return -1;
    if (hour > 23 || min > 59 || sec > 60)
        return -1;
    if (*p == '.') {
        int n = 0;

        p++;
        for (; *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 3)
                frac = frac * 10 + (*p - '0');
        }
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            frac *= 10;
    }
    /* time-offset */
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;

        p++;
        if (!parse_digits(&p, 2, &oh) || !expect(&p, ':') ||
            !parse_digits(&p, 2, &om))
            return -1;
        if (oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;

    total = days_from_civil(year, mon, day) * 86400 + (int64_t)hour * 3600 +
            (int64_t)min * 60 + sec - (int64_t)off * 60;
    *ms = total * 1000 + frac;
    return 0;
}

char *hr_time_format_rfc3339(int64_t ms, char *buf, size_t size)
{
    int64_t days, rem, y;
    int m, d;

    if (!buf || size == 0)
        return buf;
    /* floor division, so that times before 1970 format correctly */
    days = ms / MS_PER_DAY;
    rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y,
             m, d, (int)(rem / 3600000), (int)(rem / 60000 % 60),
             (int)(rem / 1000 % 60), (int)(rem % 1000));
    return buf;
}

void hr_time_sleep_ms(int64_t ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    /* deliberately no EINTR loop: a signal ends the sleep early */
    (void)nanosleep(&ts, NULL);
}
