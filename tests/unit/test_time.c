/* Unit tests for hr_time: RFC 3339 parsing and formatting, clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hr_banned.h"
#include "hr_time.h"

static int64_t parse_ok(const char *s)
{
    int64_t ms = -12345;

    assert_int_equal(hr_time_parse_rfc3339(s, &ms), 0);
    return ms;
}

static void test_parse_utc_z(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("2026-11-22T07:28:39Z"), INT64_C(1795332519000));
    assert_int_equal(parse_ok("2000-02-29T12:00:00Z"), INT64_C(951825600000));
}

static void test_parse_accepts_lowercase_and_space_separators(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2026-11-22t07:28:39z"), INT64_C(1795332519000));
    assert_int_equal(parse_ok("2026-11-22 07:28:39Z"), INT64_C(1795332519000));
}

static void test_parse_applies_offsets(void **state)
{
    (void)state;
    /* 08:28:39+01:00 is 07:28:39Z */
    assert_int_equal(parse_ok("2026-11-22T08:28:39+01:00"),
                     INT64_C(1795332519000));
    assert_int_equal(parse_ok("2026-11-22T02:13:39-05:15"),
                     INT64_C(1795332519000));
    assert_int_equal(parse_ok("2026-11-22T07:28:39+00:00"),
                     INT64_C(1795332519000));
    assert_int_equal(parse_ok("2026-11-22T07:28:39-00:00"),
                     INT64_C(1795332519000));
    /* an offset that crosses the date line */
    assert_int_equal(parse_ok("1970-01-01T00:00:00+14:00"),
                     INT64_C(-14) * 3600 * 1000);
}

static void test_parse_fractions_of_any_length_are_truncated_to_ms(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-01T00:00:01.5Z"), 1500);
    assert_int_equal(parse_ok("1970-01-01T00:00:01.05Z"), 1050);
    assert_int_equal(parse_ok("1970-01-01T00:00:01.123Z"), 1123);
    assert_int_equal(parse_ok("1970-01-01T00:00:01.123999999Z"), 1123);
    assert_int_equal(parse_ok("2026-11-22T07:28:39.123+01:00"),
                     INT64_C(1795328919123));
}

static void test_parse_before_epoch(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1969-12-31T23:59:59Z"), -1000);
    assert_int_equal(parse_ok("1969-12-31T23:59:59.500Z"), -500);
    assert_int_equal(parse_ok("0001-01-01T00:00:00Z"),
                     INT64_C(-62135596800000));
}

static void test_parse_leap_second_rolls_over(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"),
                     parse_ok("2017-01-01T00:00:00Z"));
}

static void test_parse_rejects_invalid_input(void **state)
{
    static const char *const bad[] = {
        "",
        "garbage",
        "2026-11-22",
        "2026-11-22T07:28:39",       /* no time zone */
        "2026-11-22T07:28Z",         /* no seconds */
        "2026-11-22T07:28:39.Z",     /* empty fraction */
        "2026-11-22T07:28:39ZZ",     /* trailing garbage */
        "2026-11-22T07:28:39Z ",     /* trailing blank */
        " 2026-11-22T07:28:39Z",     /* leading blank */
        "2026-11-22X07:28:39Z",      /* bad separator */
        "2026-13-22T07:28:39Z",      /* month */
        "2026-00-22T07:28:39Z",      /* month */
        "2026-11-31T07:28:39Z",      /* November has 30 days */
        "2026-11-00T07:28:39Z",      /* day */
        "2026-02-29T07:28:39Z",      /* not a leap year */
        "1900-02-29T07:28:39Z",      /* not a leap year either */
        "2026-11-22T24:00:00Z",      /* hour */
        "2026-11-22T07:60:39Z",      /* minute */
        "2026-11-22T07:28:61Z",      /* second */
        "2026-11-22T07:28:39+24:00", /* offset hours */
        "2026-11-22T07:28:39+01:60", /* offset minutes */
        "2026-11-22T07:28:39+0100",  /* offset without colon */
        "2026-11-22T07:28:39+01",    /* offset without minutes */
        "26-11-22T07:28:39Z",        /* two-digit year */
        "2026-1-22T07:28:39Z",       /* one-digit month */
        "2026-11-22T7:28:39Z",       /* one-digit hour */
        "+2026-11-22T07:28:39Z",
        "2026-11-22T07:28:39.12a3Z",
        "2026/11/22T07:28:39Z",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;

        if (hr_time_parse_rfc3339(bad[i], &ms) != -1)
            fail_msg("accepted invalid timestamp '%s'", bad[i]);
        assert_int_equal(ms, 42);
    }
    assert_int_equal(hr_time_parse_rfc3339(NULL, NULL), -1);
}

static void test_format_is_utc_with_milliseconds(void **state)
{
    char buf[32];

    (void)state;
    assert_string_equal(hr_time_format_rfc3339(0, buf, sizeof(buf)),
                        "1970-01-01T00:00:00.000Z");
    assert_string_equal(
        hr_time_format_rfc3339(INT64_C(1795332519123), buf, sizeof(buf)),
        "2026-11-22T07:28:39.123Z");
    assert_string_equal(hr_time_format_rfc3339(-1, buf, sizeof(buf)),
                        "1969-12-31T23:59:59.999Z");
    assert_string_equal(
        hr_time_format_rfc3339(INT64_C(951825600000), buf, sizeof(buf)),
        "2000-02-29T12:00:00.000Z");
    assert_int_equal(strlen(buf), 24);
}

static void test_format_fits_in_25_bytes(void **state)
{
    char buf[25];

    (void)state;
    hr_time_format_rfc3339(INT64_C(253402300799999), buf, sizeof(buf));
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
}

static void test_format_parse_round_trip(void **state)
{
    static const int64_t values[] = {
        0,
        1,
        999,
        -1,
        -86400000,
        INT64_C(951782400000),    /* 2000-02-29 */
        INT64_C(1795332519123),   /* 2026-11-22 */
        INT64_C(4107542400000),   /* 2100-03-01 */
        INT64_C(-62135596800000), /* 0001-01-01 */
        INT64_C(253402300799999), /* 9999-12-31T23:59:59.999 */
    };
    char buf[32];

    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        hr_time_format_rfc3339(values[i], buf, sizeof(buf));
        assert_int_equal(parse_ok(buf), values[i]);
    }
    /* every day across four years, including the leap day */
    for (int64_t d = 10950; d < 10950 + 4 * 366; d++) {
        int64_t ms = d * 86400000 + 43200123;

        hr_time_format_rfc3339(ms, buf, sizeof(buf));
        assert_int_equal(parse_ok(buf), ms);
    }
}

static void test_clocks_advance(void **state)
{
    int64_t wall = hr_time_now_ms(), mono = hr_time_mono_ms();
    double mono_s = hr_time_mono_s();

    (void)state;
    /* after 2020-01-01 */
    assert_true(wall > INT64_C(1577836800000));
    hr_time_sleep_ms(20);
    assert_true(hr_time_mono_ms() - mono >= 19);
    assert_true(hr_time_mono_s() - mono_s >= 0.019);
    assert_true(hr_time_now_ms() >= wall);
    /* non-positive sleeps return at once */
    mono = hr_time_mono_ms();
    hr_time_sleep_ms(0);
    hr_time_sleep_ms(-5);
    assert_true(hr_time_mono_ms() - mono < 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_utc_z),
        cmocka_unit_test(test_parse_accepts_lowercase_and_space_separators),
        cmocka_unit_test(test_parse_applies_offsets),
        cmocka_unit_test(
            test_parse_fractions_of_any_length_are_truncated_to_ms),
        cmocka_unit_test(test_parse_before_epoch),
        cmocka_unit_test(test_parse_leap_second_rolls_over),
        cmocka_unit_test(test_parse_rejects_invalid_input),
        cmocka_unit_test(test_format_is_utc_with_milliseconds),
        cmocka_unit_test(test_format_fits_in_25_bytes),
        cmocka_unit_test(test_format_parse_round_trip),
        cmocka_unit_test(test_clocks_advance),
    };

    return cmocka_run_group_tests_name("time", tests, NULL, NULL);
}
