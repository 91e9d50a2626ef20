/*
 * Unit tests for hr_jsonw (the fixed-shape JSON writer) and
 * hr_event_write(): every document written must parse with jansson to the
 * values written, whatever bytes the strings hold, and a CloudEvent written
 * by hand must carry what hr_event_serialize() puts in one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "hr_event.h"
#include "hr_jsonw.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static json_t *parse(const struct hr_jsonw *jw)
{
    json_error_t err;
    json_t *v = json_loadb(jw->buf, jw->len, 0, &err);

    if (!v)
        fail_msg("not JSON (%s): %s", err.text, jw->buf);
    return v;
}

static void test_empty_document_is_an_object(void **state)
{
    struct hr_jsonw jw = {0};
    json_t *v;

    (void)state;
    hr_jsonw_reset(&jw);
    assert_int_equal(hr_jsonw_finish(&jw), 2);
    assert_string_equal(jw.buf, "{}");
    v = parse(&jw);
    assert_true(json_is_object(v));
    json_decref(v);
    hr_jsonw_release(&jw);
}

static void test_members_and_nesting_round_trip(void **state)
{
    struct hr_jsonw jw = {0};
    json_t *v;

    (void)state;
    hr_jsonw_reset(&jw);
    hr_jsonw_str(&jw, "a", "x");
    hr_jsonw_int(&jw, "min", INT64_MIN);
    hr_jsonw_int(&jw, "max", INT64_MAX);
    hr_jsonw_str(&jw, "none", NULL);
    hr_jsonw_open(&jw, "o");
    hr_jsonw_open(&jw, "p");
    hr_jsonw_close(&jw);
    hr_jsonw_int(&jw, "z", 0);
    hr_jsonw_finish(&jw); /* closes "o" and the document */
    assert_string_equal(jw.buf, "{\"a\":\"x\",\"min\":-9223372036854775808,"
                                "\"max\":9223372036854775807,\"none\":null,"
                                "\"o\":{\"p\":{},\"z\":0}}");
    v = parse(&jw);
    assert_int_equal(json_integer_value(json_object_get(v, "min")), INT64_MIN);
    assert_true(json_is_null(json_object_get(v, "none")));
    json_decref(v);

    /* The buffer is reused by the next document. */
    hr_jsonw_reset(&jw);
    hr_jsonw_int(&jw, "n", 1);
    hr_jsonw_finish(&jw);
    assert_string_equal(jw.buf, "{\"n\":1}");
    hr_jsonw_release(&jw);
}

static void test_every_byte_is_escaped_or_kept(void **state)
{
    struct hr_jsonw jw = {0};
    char s[160];
    size_t n = 0;
    json_t *v;

    (void)state;
    /* Every ASCII byte, then multi-byte UTF-8 (é, €, U+1F600). */
    for (int c = 1; c < 128; c++)
        s[n++] = (char)c;
    memcpy(s + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10);
    hr_jsonw_reset(&jw);
    hr_jsonw_str(&jw, "s", s);
    hr_jsonw_finish(&jw);
    v = parse(&jw);
    assert_string_equal(json_string_value(json_object_get(v, "s")), s);
    json_decref(v);
    /* Short escapes where JSON has them. */
    hr_jsonw_reset(&jw);
    hr_jsonw_str(&jw, "s", "\"\\\b\f\n\r\t\x01\x1f");
    hr_jsonw_finish(&jw);
    assert_string_equal(jw.buf,
                        "{\"s\":\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\"}");
    hr_jsonw_release(&jw);
}

static void test_long_strings_grow_the_buffer(void **state)
{
    static char big[100000];
    struct hr_jsonw jw = {0};
    json_t *v;

    (void)state;
    memset(big, 'q', sizeof(big) - 1);
    big[5] = '"';
    hr_jsonw_reset(&jw);
    hr_jsonw_str(&jw, "big", big);
    hr_jsonw_finish(&jw);
    v = parse(&jw);
    assert_string_equal(json_string_value(json_object_get(v, "big")), big);
    json_decref(v);
    hr_jsonw_release(&jw);
}

/* hr_event_write() + data members == hr_event_serialize() of the same
 * data, but for "time" (now, on both sides). */
static void test_event_matches_serialize(void **state)
{
    struct hr_jsonw jw = {0};
    json_t *want_data = json_pack("{s:s, s:I, s:{s:s}}", "user_id", "u\"1",
                                  "count", (json_int_t)3, "data", "k", "v");
    char *want_text = hr_event_serialize("id-1", "/herald/x", "t.changed",
                                         "u\"1", want_data, NULL);
    json_t *want = json_loads(want_text, 0, NULL);
    json_t *got;

    (void)state;
    hr_event_write(&jw, "id-1", "/herald/x", "t.changed", "u\"1");
    hr_jsonw_str(&jw, "user_id", "u\"1");
    hr_jsonw_int(&jw, "count", 3);
    hr_jsonw_open(&jw, "data");
    hr_jsonw_str(&jw, "k", "v");
    hr_jsonw_finish(&jw);
    got = parse(&jw);
    assert_non_null(json_string_value(json_object_get(got, "time")));
    json_object_del(got, "time");
    json_object_del(want, "time");
    assert_true(json_equal(got, want));
    /* Same member order too: consumers may compare bytes. */
    assert_true(strstr(jw.buf,
                       "{\"specversion\":\"1.0\",\"id\":\"id-1\","
                       "\"source\":\"/herald/x\",\"type\":"
                       "\"t.changed\",\"subject\":\"u\\\"1\",") == jw.buf);
    json_decref(got);
    json_decref(want);
    free(want_text);
    hr_jsonw_release(&jw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_document_is_an_object),
        cmocka_unit_test(test_members_and_nesting_round_trip),
        cmocka_unit_test(test_every_byte_is_escaped_or_kept),
        cmocka_unit_test(test_long_strings_grow_the_buffer),
        cmocka_unit_test(test_event_matches_serialize),
    };

    return cmocka_run_group_tests_name("jsonw", tests, NULL, NULL);
}
