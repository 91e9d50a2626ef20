/*
 * Exact decimals, see fanout_decimal.h. A decimal is kept as sign,
 * significant digits and exponent, so texts compare by value without
 * floating point, and a double is only produced when it prints back to
 * the same digits.
 */
#include "fanout_decimal.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* DynamoDB numbers have at most 38 significant digits; longer ones are still
 * parsed (and kept as strings) without storing every digit. */
#define DEC_MAX_DIGITS 40

/* A decimal as sign, significant digits (no leading or trailing zeros) and
 * exponent: value = digits x 10^exp. Zero has no digits. */
struct decimal {
    bool neg;
    bool is_long; /* more than DEC_MAX_DIGITS digits; dig[] is cut */
    size_t ndig;
    int64_t exp;
    char dig[DEC_MAX_DIGITS];
};

static void decimal_push(struct decimal *d, char c)
{
    if (d->ndig < DEC_MAX_DIGITS)
        d->dig[d->ndig] = c;
    else
        d->is_long = true;
    d->ndig++;
}

/*
 * Parse [+-]digits[.digits][(e|E)[+-]digits] (either digit run may be empty,
 * not both) with no surrounding space. Exponents saturate at 10^9, far
 * beyond any double, so huge ones stay detectable without overflow.
 */
static int decimal_parse(const char *s, struct decimal *d)
{
    size_t frac = 0, zeros = 0;
    bool any = false, in_frac = false;
    int64_t e = 0;

    memset(d, 0, sizeof(*d));
    if (*s == '+' || *s == '-')
        d->neg = *s++ == '-';
    for (;; s++) {
        if (*s >= '0' && *s <= '9') {
            any = true;
            if (in_frac)
                frac++;
            if (*s == '0') {
                if (d->ndig > 0)
                    zeros++; /* trailing unless a digit follows */
                continue;
            }
            for (; zeros > 0; zeros--)
                decimal_push(d, '0');
            decimal_push(d, *s);
        } else if (*s == '.' && !in_frac) {
            in_frac = true;
        } else {
            break;
        }
    }
    if (!any)
        return -1;
    if (*s == 'e' || *s == 'E') {
        bool eneg = false, edig = false;

        s++;
        if (*s == '+' || *s == '-')
            eneg = *s++ == '-';
        for (; *s >= '0' && *s <= '9'; s++) {
            edig = true;
            if (e < 1000000000)
                e = e * 10 + (*s - '0');
        }
        if (!edig)
            return -1;
        if (eneg)
            e = -e;
    }
    if (*s != '\0')
        return -1;
    if (d->ndig == 0) {
        d->neg = false; /* -0 is 0 */
        return 0;
    }
    d->exp = e - (int64_t)frac + (int64_t)zeros;
    return 0;
}

static bool decimal_same(const struct decimal *a, const struct decimal *b)
{
    return a->neg == b->neg && a->ndig == b->ndig && a->exp == b->exp &&
           !a->is_long && !b->is_long && memcmp(a->dig, b->dig, a->ndig) == 0;
}

/* The value if it is an integer within int64. */
static bool decimal_to_int64(const struct decimal *d, int64_t *out)
{
    uint64_t limit = d->neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t acc = 0;

    if (d->ndig == 0) {
        *out = 0;
        return true;
    }
    if (d->is_long || d->exp < 0 || (int64_t)d->ndig + d->exp > 19)
        return false;
    for (size_t i = 0; i < d->ndig; i++) {
        uint64_t digit = (uint64_t)(d->dig[i] - '0');

        if (acc > (limit - digit) / 10)
            return false;
        acc = acc * 10 + digit;
    }
    for (int64_t i = 0; i < d->exp; i++) {
        if (acc > limit / 10)
            return false;
        acc *= 10;
    }
    if (!d->neg)
        *out = (int64_t)acc;
    else if (acc == (uint64_t)INT64_MAX + 1)
        *out = INT64_MIN;
    else
        *out = -(int64_t)acc;
    return true;
}

/*
 * Whether @text (parsed as @d) survives a round trip through a double: the
 * nearest double, printed with as many significant digits as @text has,
 * gives back the same digits and exponent. That is what a reader of the
 * JSON real gets back, so no digit of the source is lost or invented.
 * strtod() and "%e" assume the C locale; Herald never calls setlocale().
 */
static bool
decimal_round_trips(const char *text, const struct decimal *d, double *out)
{
    struct decimal back;
    char buf[64];
    char *end;
    double v;

    if (d->is_long || d->ndig == 0 || d->ndig > 17)
        return false;
    errno = 0;
    v = strtod(text, &end);
    if (errno == ERANGE || *end != '\0' || !isfinite(v) || v == 0)
        return false;
    snprintf(buf, sizeof(buf), "%.*e", (int)d->ndig - 1, v);
    if (decimal_parse(buf, &back) < 0 || !decimal_same(&back, d))
        return false;
    *out = v;
    return true;
}

json_t *fanout_decimal_to_json(const char *text)
{
    struct decimal d;
    int64_t i;
    double r;

    if (!text || decimal_parse(text, &d) < 0)
        return NULL;
    if (decimal_to_int64(&d, &i))
        return json_integer(i);
    if (d.exp < 0 && decimal_round_trips(text, &d, &r))
        return json_real(r);
    return json_string(text);
}

bool fanout_decimal_equal(const char *a, const char *b)
{
    struct decimal da, db;

    if (decimal_parse(a, &da) < 0 || decimal_parse(b, &db) < 0 || da.is_long ||
        db.is_long)
        return strcmp(a, b) == 0;
    return decimal_same(&da, &db);
}

/* Significant digits of the number starting at @s (at most @n bytes):
 * mantissa digits without leading zeros, nor trailing zeros of the
 * fraction. *@used gets the token's length (at least 1). */
static size_t sig_digits(const char *s, size_t n, size_t *used)
{
    size_t i = 0, sig = 0, pending = 0;
    bool started = false, frac = false;

    if (i < n && s[i] == '-')
        i++;
    for (; i < n; i++) {
        char c = s[i];

        if (c == '.' && !frac) {
            frac = true;
        } else if (c >= '0' && c <= '9') {
            if (c == '0' && !started)
                continue; /* a leading zero */
            started = true;
            if (c == '0' && frac) {
                pending++; /* significant only if a digit follows */
            } else if (c == '0') {
                sig++;
            } else {
                sig += pending + 1;
                pending = 0;
            }
        } else {
            break;
        }
    }
    while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == 'e' ||
                     s[i] == 'E' || s[i] == '+' || s[i] == '-'))
        i++;
    *used = i ? i : 1;
    return sig;
}

size_t fanout_decimal_count_wide(const void *json, size_t len)
{
    const char *s = json;
    bool in_str = false;
    size_t count = 0, i = 0, used;

    while (s && i < len) {
        char c = s[i];

        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            i++;
        } else if (c == '"') {
            in_str = true;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (sig_digits(s + i, len - i, &used) > 17)
                count++;
            i += used;
        } else {
            i++;
        }
    }
    return count;
}
