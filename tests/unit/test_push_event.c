/* herald-push's input events: what is taken, what is refused and why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hr_event.h"
#include "push.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Parse a CloudEvent text into @ev and @out; returns push_event_parse(). */
static int parse(const char *text,
                 struct hr_event *ev,
                 struct push_event *out,
                 char *err,
                 size_t size)
{
    char perr[256];

    assert_int_equal(
        hr_event_parse(ev, text, strlen(text), NULL, NULL, perr, sizeof(perr)),
        0);
    return push_event_parse(ev, 1796500000000LL, out, err, size);
}

static void test_push_requested_full(void **state)
{
    static const char text[] =
        "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/s\","
        "\"type\":\"push.requested\",\"data\":{\"user_id\":\"u1\","
        "\"title\":\"T\",\"body\":\"B\",\"badge\":\"unread_total\","
        "\"collapse_id\":\"c\",\"thread_id\":\"th\",\"priority\":\"normal\","
        "\"ttl_seconds\":60,\"sound\":\"ping\",\"category\":\"MSG\","
        "\"data\":{\"k\":\"v\"},\"tokens\":[{\"token\":\"ab\",\"platform\":"
        "\"ios\"},{\"token\":\"f1\",\"platform\":\"android\"}]}}";
    struct hr_event ev;
    struct push_event p;
    char err[256];

    (void)state;
    assert_int_equal(parse(text, &ev, &p, err, sizeof(err)), 0);
    assert_int_equal(p.kind, PUSH_REQUESTED);
    assert_string_equal(p.user_id, "u1");
    assert_int_equal(p.badge, PUSH_BADGE_TOTAL);
    assert_false(p.high);
    assert_int_equal(p.ttl_seconds, 60);
    assert_int_equal(p.ntargets, 2);
    assert_int_equal(p.targets[1].platform, PUSH_ANDROID);
    assert_string_equal(p.collapse_id, "c");
    push_event_release(&p);
    hr_event_release(&ev);
}

static void test_refusals_name_the_field(void **state)
{
    static const struct {
        const char *data;
        const char *type;
        const char *err;
    } cases[] = {
        {"{\"title\":\"T\",\"body\":\"B\"}", "push.requested", "user_id"},
        {"{\"user_id\":\"u\",\"body\":\"B\"}", "push.requested", "title"},
        {"{\"user_id\":\"u\",\"title\":\"T\",\"body\":\"B\",\"badge\":-1}",
         "push.requested", "badge"},
        {"{\"tokens\":[{\"token\":\"a\",\"platform\":\"ios\"}],\"title\":\"T\","
         "\"body\":\"B\",\"badge\":\"unread_total\"}",
         "push.requested", "user_id"},
        {"{\"user_id\":\"u\",\"title\":\"T\",\"body\":\"B\",\"data\":{\"n\":1}"
         "}",
         "push.requested", "data.n"},
        {"{\"user_id\":\"u\",\"title\":\"T\",\"body\":\"B\",\"priority\":"
         "\"urgent\"}",
         "push.requested", "priority"},
        {"{\"user_id\":\"u\",\"title\":\"T\",\"body\":\"B\",\"collapse_id\":"
         "\"0123456789012345678901234567890123456789012345678901234567890123"
         "4\"}",
         "push.requested", "collapse_id"},
        {"{\"user_id\":\"u\",\"title\":\"T\",\"body\":\"B\",\"ttl_seconds\":"
         "2419201}",
         "push.requested", "ttl_seconds"},
        {"{\"user_id\":\"u\",\"token\":\"t\",\"platform\":\"blackberry\"}",
         "device.registered", "platform"},
        {"{\"user_id\":\"u\",\"token\":\"zz\",\"platform\":\"ios\"}",
         "device.registered", "hexadecimal"},
        {"{\"user_id\":\"u\",\"token\":\"t\",\"platform\":\"web\","
         "\"environment\":\"staging\"}",
         "device.registered", "environment"},
        {"{\"user_id\":\"u\"}", "device.unregistered", "token"},
        {"{}", "device.renamed", "unknown event type"},
    };
    char text[1024], err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hr_event ev;
        struct push_event p;

        snprintf(text, sizeof(text),
                 "{\"specversion\":\"1.0\",\"id\":\"e%zu\",\"source\":\"/s\","
                 "\"type\":\"%s\",\"data\":%s}",
                 i, cases[i].type, cases[i].data);
        err[0] = '\0';
        if (parse(text, &ev, &p, err, sizeof(err)) == 0)
            fail_msg("case %zu accepted", i);
        if (!strstr(err, cases[i].err))
            fail_msg("case %zu: '%s' does not name '%s'", i, err, cases[i].err);
        push_event_release(&p);
        hr_event_release(&ev);
    }
}

static void test_registry_events_take_their_time(void **state)
{
    static const char with_time[] =
        "{\"specversion\":\"1.0\",\"id\":\"r1\",\"source\":\"/s\","
        "\"type\":\"device.registered\",\"time\":\"2026-12-01T10:00:00Z\","
        "\"data\":{\"user_id\":\"u\",\"token\":\"AbCd\",\"platform\":\"ios\","
        "\"environment\":\"sandbox\"}}";
    static const char without[] =
        "{\"specversion\":\"1.0\",\"id\":\"r2\",\"source\":\"/s\","
        "\"type\":\"device.unregistered\",\"data\":{\"user_id\":\"u\","
        "\"token\":\"t\"}}";
    struct hr_event ev;
    struct push_event p;
    char err[256];

    (void)state;
    assert_int_equal(parse(with_time, &ev, &p, err, sizeof(err)), 0);
    assert_int_equal(p.at_ms, 1796119200000LL);
    assert_string_equal(p.environment, "sandbox");
    hr_event_release(&ev);
    assert_int_equal(parse(without, &ev, &p, err, sizeof(err)), 0);
    assert_int_equal(p.at_ms, 1796500000000LL); /* the record's time */
    assert_int_equal(p.kind, PUSH_UNREGISTERED);
    hr_event_release(&ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_requested_full),
        cmocka_unit_test(test_refusals_name_the_field),
        cmocka_unit_test(test_registry_events_take_their_time),
    };

    return cmocka_run_group_tests_name("herald-push events", tests, NULL, NULL);
}
