/*
 * Unit tests for hr_retry: failure classes, exponential caps, full-jitter
 * backoff and Retry-After parsing.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hr_retry.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Sun, 06 Nov 1994 08:49:37 GMT */
#define RFC_DATE_MS INT64_C(784111777000)

static void test_retry_cap_doubles_until_max(void **state)
{
    (void)state;
    assert_int_equal(hr_retry_cap_ms(0, 100, 30000), 100);
    assert_int_equal(hr_retry_cap_ms(1, 100, 30000), 200);
    assert_int_equal(hr_retry_cap_ms(2, 100, 30000), 400);
    assert_int_equal(hr_retry_cap_ms(8, 100, 30000), 25600);
    assert_int_equal(hr_retry_cap_ms(9, 100, 30000), 30000);
    assert_int_equal(hr_retry_cap_ms(10, 100, 30000), 30000);
    /* Exactly reaching max is not capped early. */
    assert_int_equal(hr_retry_cap_ms(3, 125, 1000), 1000);
    assert_int_equal(hr_retry_cap_ms(2, 125, 1000), 500);
}

static void test_retry_cap_edge_cases(void **state)
{
    (void)state;
    assert_int_equal(hr_retry_cap_ms(0, 5000, 1000), 1000);
    assert_int_equal(hr_retry_cap_ms(0, 0, 1000), 0);
    assert_int_equal(hr_retry_cap_ms(5, -1, 1000), 0);
    assert_int_equal(hr_retry_cap_ms(5, 100, 0), 0);
    assert_int_equal(hr_retry_cap_ms(5, 100, -10), 0);
}

static void test_retry_cap_does_not_overflow(void **state)
{
    static const unsigned attempts[] = {31, 32,  62,  63,   64,
                                        65, 127, 200, 1000, UINT_MAX};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        assert_int_equal(hr_retry_cap_ms(attempts[i], 100, 30000), 30000);
        assert_int_equal(hr_retry_cap_ms(attempts[i], 1, INT64_MAX),
                         attempts[i] < 63 ? INT64_C(1) << attempts[i]
                                          : INT64_MAX);
        assert_int_equal(hr_retry_cap_ms(attempts[i], INT64_MAX / 2, INT64_MAX),
                         INT64_MAX);
    }
    assert_int_equal(hr_retry_cap_ms(62, 1, INT64_MAX), INT64_C(1) << 62);
    assert_int_equal(hr_retry_cap_ms(1, INT64_MAX / 2, INT64_MAX),
                     INT64_MAX - 1);
}

static void test_retry_backoff_stays_within_cap(void **state)
{
    int64_t cap = hr_retry_cap_ms(4, 100, 30000); /* 1600 */
    int64_t lo = INT64_MAX, hi = -1;
    int i;

    (void)state;
    assert_int_equal(cap, 1600);
    for (i = 0; i < 200000; i++) {
        int64_t d = hr_retry_backoff_ms(4, 100, 30000, hr_retry_random());

        assert_true(d >= 0 && d <= cap);
        if (d < lo)
            lo = d;
        if (d > hi)
            hi = d;
    }
    /* Full jitter spans the whole range. */
    assert_true(lo <= 5);
    assert_true(hi >= cap - 5);
}

static void test_retry_backoff_edge_values(void **state)
{
    (void)state;
    assert_int_equal(hr_retry_backoff_ms(4, 100, 30000, 0), 0);
    assert_int_equal(hr_retry_backoff_ms(4, 100, 30000, 1600), 1600);
    assert_int_equal(hr_retry_backoff_ms(4, 100, 30000, 1601), 0);
    assert_true(hr_retry_backoff_ms(4, 100, 30000, UINT64_MAX) <= 1600);
    assert_true(hr_retry_backoff_ms(200, 100, INT64_MAX, UINT64_MAX) >= 0);
    assert_int_equal(
        hr_retry_backoff_ms(200, 100, INT64_MAX, (uint64_t)INT64_MAX),
        INT64_MAX);
    assert_int_equal(hr_retry_backoff_ms(0, 0, 0, 12345), 0);
}

static void test_retry_random_varies(void **state)
{
    uint64_t first = hr_retry_random(), ones = 0;
    int distinct = 0, i;

    (void)state;
    for (i = 0; i < 1000; i++) {
        uint64_t r = hr_retry_random();

        if (r != first)
            distinct++;
        ones += (uint64_t)__builtin_popcountll(r);
    }
    assert_true(distinct >= 999);
    /* About half the bits set: 32000 expected over 1000 draws. */
    assert_true(ones > 31000 && ones < 33000);
}

static void test_retry_classify_http_table(void **state)
{
    static const struct {
        long status;
        int cls;
    } table[] = {
        {100, -1},
        {200, -1},
        {204, -1},
        {301, -1},
        {304, -1},
        {399, -1},
        {400, HR_ERR_PERMANENT},
        {401, HR_ERR_AUTH},
        {402, HR_ERR_PERMANENT},
        {403, HR_ERR_AUTH},
        {404, HR_ERR_PERMANENT},
        {405, HR_ERR_PERMANENT},
        {408, HR_ERR_TRANSIENT},
        {409, HR_ERR_PERMANENT},
        {410, HR_ERR_PERMANENT},
        {413, HR_ERR_PERMANENT},
        {422, HR_ERR_PERMANENT},
        {429, HR_ERR_THROTTLED},
        {499, HR_ERR_PERMANENT},
        {500, HR_ERR_TRANSIENT},
        {502, HR_ERR_TRANSIENT},
        {503, HR_ERR_TRANSIENT},
        {504, HR_ERR_TRANSIENT},
        {599, HR_ERR_TRANSIENT},
        {0, HR_ERR_TRANSIENT},
        {-1, HR_ERR_TRANSIENT},
        {99, HR_ERR_TRANSIENT},
        {600, HR_ERR_TRANSIENT},
        {999, HR_ERR_TRANSIENT},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        int got = hr_retry_classify_http(table[i].status);

        if (got != table[i].cls)
            fail_msg("status %ld: got %d, want %d", table[i].status, got,
                     table[i].cls);
    }
}

static void test_err_class_names_round_trip(void **state)
{
    static const enum hr_err_class all[] = {HR_ERR_TRANSIENT, HR_ERR_THROTTLED,
                                            HR_ERR_AUTH, HR_ERR_PERMANENT,
                                            HR_ERR_POISON};
    static const char *const names[] = {"transient", "throttled", "auth",
                                        "permanent", "poison"};
    enum hr_err_class cls;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        assert_string_equal(hr_err_class_name(all[i]), names[i]);
        cls = HR_ERR_POISON;
        assert_int_equal(hr_err_class_parse(names[i], &cls), 0);
        assert_int_equal(cls, all[i]);
    }
    assert_int_equal(hr_err_class_parse("Transient", &cls), -1);
    assert_int_equal(hr_err_class_parse("", &cls), -1);
    assert_int_equal(hr_err_class_parse("bogus", &cls), -1);
    assert_int_equal(hr_err_class_parse(NULL, &cls), -1);
}

static void test_err_class_retryable(void **state)
{
    (void)state;
    assert_true(hr_err_class_is_retryable(HR_ERR_TRANSIENT));
    assert_true(hr_err_class_is_retryable(HR_ERR_THROTTLED));
    assert_false(hr_err_class_is_retryable(HR_ERR_AUTH));
    assert_false(hr_err_class_is_retryable(HR_ERR_PERMANENT));
    assert_false(hr_err_class_is_retryable(HR_ERR_POISON));
}

static void test_retry_after_seconds(void **state)
{
    (void)state;
    assert_int_equal(hr_retry_parse_retry_after("0", 0), 0);
    assert_int_equal(hr_retry_parse_retry_after("1", 0), 1000);
    assert_int_equal(hr_retry_parse_retry_after("120", RFC_DATE_MS), 120000);
    assert_int_equal(hr_retry_parse_retry_after("007", 0), 7000);
    assert_int_equal(hr_retry_parse_retry_after(" 5 ", 0), 5000);
    assert_int_equal(hr_retry_parse_retry_after("\t30", 0), 30000);
    /* Huge values are clamped to 2^31 seconds, as RFC 9111 does. */
    assert_int_equal(hr_retry_parse_retry_after("99999999999999999999999", 0),
                     INT64_C(2147483648) * 1000);
}

static void test_retry_after_http_dates(void **state)
{
    (void)state;
    /* Future: the delta; past or now: 0. */
    assert_int_equal(hr_retry_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
                                                RFC_DATE_MS - 10000),
                     10000);
    assert_int_equal(hr_retry_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
                                                RFC_DATE_MS),
                     0);
    assert_int_equal(hr_retry_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
                                                RFC_DATE_MS + 5000),
                     0);
    assert_int_equal(
        hr_retry_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 0),
        RFC_DATE_MS);
    /* RFC 850 and asctime name the same instant. */
    assert_int_equal(hr_retry_parse_retry_after(
                         "Sunday, 06-Nov-94 08:49:37 GMT", RFC_DATE_MS - 2500),
                     2500);
    assert_int_equal(hr_retry_parse_retry_after("Sun Nov  6 08:49:37 1994",
                                                RFC_DATE_MS - 1000),
                     1000);
    /* A leap day, and the turn of a year. */
    assert_int_equal(
        hr_retry_parse_retry_after("Tue, 29 Feb 2000 23:59:59 GMT", 0),
        INT64_C(951868799000));
    assert_int_equal(
        hr_retry_parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", -60000),
        60000);
    assert_int_equal(hr_retry_parse_retry_after("Fri, 01 Jan 2100 00:00:01 GMT",
                                                INT64_C(4102444800000)),
                     1000);
    /* RFC 850 two-digit years: more than 50 years ahead means last
     * century. */
    assert_int_equal(
        hr_retry_parse_retry_after("Monday, 01-Jan-30 00:00:00 GMT",
                                   INT64_C(1893456000000) - 1000), /* 2030 */
        1000);
}

static void test_retry_after_garbage_is_rejected(void **state)
{
    static const char *const bad[] = {
        "",
        "   ",
        "abc",
        "-1",
        "+5",
        "1.5",
        "5s",
        "5 5",
        "0x10",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 GMT extra",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "2026-11-22T07:28:39Z",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t got = hr_retry_parse_retry_after(bad[i], RFC_DATE_MS);

        if (got != -1)
            fail_msg("'%s': got %lld, want -1", bad[i], (long long)got);
    }
    assert_int_equal(hr_retry_parse_retry_after(NULL, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_cap_doubles_until_max),
        cmocka_unit_test(test_retry_cap_edge_cases),
        cmocka_unit_test(test_retry_cap_does_not_overflow),
        cmocka_unit_test(test_retry_backoff_stays_within_cap),
        cmocka_unit_test(test_retry_backoff_edge_values),
        cmocka_unit_test(test_retry_random_varies),
        cmocka_unit_test(test_retry_classify_http_table),
        cmocka_unit_test(test_err_class_names_round_trip),
        cmocka_unit_test(test_err_class_retryable),
        cmocka_unit_test(test_retry_after_seconds),
        cmocka_unit_test(test_retry_after_http_dates),
        cmocka_unit_test(test_retry_after_garbage_is_rejected),
    };

    return cmocka_run_group_tests_name("retry", tests, NULL, NULL);
}
