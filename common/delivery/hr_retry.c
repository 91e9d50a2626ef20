/*
 * Failure classes and backoff arithmetic. Everything here is pure except
 * hr_retry_random(), whose state is thread-local, so the module is
 * thread-safe without locks.
 */
#include "hr_retry.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hr_compat.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static const char *const class_names[] = {
    [HR_ERR_TRANSIENT] = "transient", [HR_ERR_THROTTLED] = "throttled",
    [HR_ERR_AUTH] = "auth",           [HR_ERR_PERMANENT] = "permanent",
    [HR_ERR_POISON] = "poison",
};

const char *hr_err_class_name(enum hr_err_class cls)
{
    if ((unsigned)cls >= HR_ARRAY_SIZE(class_names))
        return "unknown";
    return class_names[cls];
}

int hr_err_class_parse(const char *name, enum hr_err_class *cls)
{
    size_t i;

    if (!name)
        return -1;
    for (i = 0; i < HR_ARRAY_SIZE(class_names); i++) {
        if (strcmp(name, class_names[i]) == 0) {
            *cls = (enum hr_err_class)i;
            return 0;
        }
    }
    return -1;
}

int hr_err_class_is_retryable(enum hr_err_class cls)
{
    return cls == HR_ERR_TRANSIENT || cls == HR_ERR_THROTTLED;
}

/*
 * Statuses outside 100-599 (0 when curl got no response at all, or a
 * broken server) are treated like connection errors: transient.
 */
int hr_retry_classify_http(long status)
{
    if (status >= 100 && status < 400)
        return -1;
    if (status == 408)
        return HR_ERR_TRANSIENT;
    if (status == 429)
        return HR_ERR_THROTTLED;
    if (status == 401 || status == 403)
        return HR_ERR_AUTH;
    if (status >= 400 && status < 500)
        return HR_ERR_PERMANENT;
    return HR_ERR_TRANSIENT;
}

/*
 * base_ms << attempt fits under max_ms exactly when base_ms <= max_ms >>
 * attempt, so the shift is only done when it cannot overflow.
 */
int64_t hr_retry_cap_ms(unsigned attempt, int64_t base_ms, int64_t max_ms)
{
    if (max_ms <= 0 || base_ms <= 0)
        return 0;
    if (base_ms >= max_ms || attempt >= 63)
        return max_ms;
    if (base_ms > (max_ms >> attempt))
        return max_ms;
    return (int64_t)((uint64_t)base_ms << attempt);
}

/* The modulo bias is at most cap / 2^64: irrelevant for delays. */
int64_t hr_retry_backoff_ms(unsigned attempt,
                            int64_t base_ms,
                            int64_t max_ms,
                            uint64_t rnd)
{
    int64_t cap = hr_retry_cap_ms(attempt, base_ms, max_ms);

    return (int64_t)(rnd % ((uint64_t)cap + 1));
}

static _Thread_local uint64_t rnd_state;
static _Thread_local int rnd_seeded;

/*
 * splitmix64. The seed mixes the wall clock, the pid and the address of the
 * thread-local state, so threads started in the same nanosecond (and
 * forked workers) still draw different sequences.
 */
uint64_t hr_retry_random(void)
{
    uint64_t z;

    if (!rnd_seeded) {
        struct timespec ts = {0, 0};

        clock_gettime(CLOCK_REALTIME, &ts);
        rnd_state = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        rnd_state ^= (uint64_t)getpid() << 32;
        rnd_state ^= (uint64_t)(uintptr_t)&rnd_state;
        rnd_seeded = 1;
    }
    z = (rnd_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The year of a day count from days_from_civil(). */
static int64_t year_from_days(int64_t z)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    return (int64_t)yoe + era * 400 + (mp >= 10);
}

static int days_in_month(int64_t y, int m)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        return 29;
    return mdays[m - 1];
}

/* Exactly @n digits. */
static int take_digits(const char **p, int n, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int take_char(const char **p, char c)
{
    if (**p != c)
        return -1;
    (*p)++;
    return 0;
}

static int take_word(const char **p, const char *word)
{
    size_t n = strlen(word);

    if (strncmp(*p, word, n) != 0)
        return -1;
    *p += n;
    return 0;
}

/* "Jan".."Dec" -> 1..12. */
static int take_month(const char **p, int *mon)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                         "May", "Jun", "Jul", "Aug",
                                         "Sep", "Oct", "Nov", "Dec"};
    int i;

    for (i = 0; i < 12; i++) {
        if (take_word(p, months[i]) == 0) {
            *mon = i + 1;
            return 0;
        }
    }
    return -1;
}

/* "08:49:37" */
static int take_time(const char **p, int *h, int *mi, int *s)
{
    if (take_digits(p, 2, h) < 0 || take_char(p, ':') < 0 ||
        take_digits(p, 2, mi) < 0 || take_char(p, ':') < 0 ||
        take_digits(p, 2, s) < 0)
        return -1;
    return 0;
}

/* Day names: index 0..6 in both spellings. */
static const char *const wkday[] = {"Mon", "Tue", "Wed", "Thu",
                                    "Fri", "Sat", "Sun"};
static const char *const weekday[] = {"Monday",   "Tuesday", "Wednesday",
                                      "Thursday", "Friday",  "Saturday",
                                      "Sunday"};

static int take_day_name(const char **p, const char *const *names)
{
    int i;

    for (i = 0; i < 7; i++) {
        if (take_word(p, names[i]) == 0)
            return 0;
    }
    return -1;
}

/*
 * RFC 9110 section 5.6.7 HTTP-date into milliseconds since the epoch:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT"
 *   asctime      "Sun Nov  6 08:49:37 1994"
 * The day name is checked for spelling, not against the date. A two-digit
 * RFC 850 year more than 50 years after @now_ms's year is taken as the
 * previous century's, as RFC 9110 says.
 */
static int parse_http_date(const char *p, int64_t now_ms, int64_t *ms)
{
    const char *q = p;
    int year = 0, mon = 0, day = 0, h = 0, mi = 0, s = 0;
    int64_t y;

    if (take_day_name(&q, wkday) == 0 && take_char(&q, ',') == 0) {
        /* IMF-fixdate */
        if (take_char(&q, ' ') < 0 || take_digits(&q, 2, &day) < 0 ||
            take_char(&q, ' ') < 0 || take_month(&q, &mon) < 0 ||
            take_char(&q, ' ') < 0 || take_digits(&q, 4, &year) < 0 ||
            take_char(&q, ' ') < 0 || take_time(&q, &h, &mi, &s) < 0 ||
            take_word(&q, " GMT") < 0)
            return -1;
        y = year;
    } else if (q = p, take_day_name(&q, weekday) == 0) {
        /* RFC 850 */
        int64_t now_year = year_from_days(
            (now_ms >= 0 ? now_ms : now_ms - 86399999) / 86400000);

        if (take_char(&q, ',') < 0 || take_char(&q, ' ') < 0 ||
            take_digits(&q, 2, &day) < 0 || take_char(&q, '-') < 0 ||
            take_month(&q, &mon) < 0 || take_char(&q, '-') < 0 ||
            take_digits(&q, 2, &year) < 0 || take_char(&q, ' ') < 0 ||
            take_time(&q, &h, &mi, &s) < 0 || take_word(&q, " GMT") < 0)
            return -1;
        y = now_year - now_year % 100 + year;
        if (y > now_year + 50)
            y -= 100;
    } else if (q = p, take_day_name(&q, wkday) == 0) {
        /* asctime: the day is space-padded */
        if (take_char(&q, ' ') < 0 || take_month(&q, &mon) < 0 ||
            take_char(&q, ' ') < 0)
            return -1;
        if (*q == ' ') {
            q++;
            if (take_digits(&q, 1, &day) < 0)
                return -1;
        } else if (take_digits(&q, 2, &day) < 0) {
            return -1;
        }
        if (take_char(&q, ' ') < 0 || take_time(&q, &h, &mi, &s) < 0 ||
            take_char(&q, ' ') < 0 || take_digits(&q, 4, &year) < 0)
            return -1;
        y = year;
    } else {
        return -1;
    }
    if (*q != '\0')
        return -1;
    /* second 60 is a leap second, which Unix time folds into the next */
    if (day < 1 || day > days_in_month(y, mon) || h > 23 || mi > 59 || s > 60)
        return -1;
    *ms = ((days_from_civil(y, (unsigned)mon, (unsigned)day) * 24 + h) * 60 +
           mi) *
              60000 +
          (int64_t)s * 1000;
    return 0;
}

/*
 * Delta-seconds beyond 2^31 are clamped to 2^31, as RFC 9111 section 1.2.2
 * asks of caches; it also keeps now + delay far from overflow.
 */
int64_t hr_retry_parse_retry_after(const char *value, int64_t now_ms)
{
    const int64_t max_s = INT64_C(2147483648);
    char buf[64];
    const char *start, *end;
    int64_t secs = 0, date_ms;
    size_t n;

    if (!value)
        return -1;
    /* Header values may carry optional whitespace around them. */
    start = value;
    while (*start == ' ' || *start == '\t')
        start++;
    end = start + strlen(start);
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    n = (size_t)(end - start);
    if (n == 0)
        return -1;

    if (isdigit((unsigned char)*start)) {
        const char *p;

        for (p = start; p < end; p++) {
            if (!isdigit((unsigned char)*p))
                return -1;
            if (secs < max_s)
                secs = secs * 10 + (*p - '0');
        }
        if (secs > max_s)
            secs = max_s;
        return secs * 1000;
    }

    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, start, n);
    buf[n] = '\0';
    if (parse_http_date(buf, now_ms, &date_ms) < 0)
        return -1;
    return date_ms > now_ms ? date_ms - now_ms : 0;
}
