/* Unit tests for herald-email's catalog (categories, modes, templates per
 * locale, from the config file) and its input events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "email.h"
#include "hr_buf.h"
#include "hr_conf.h"
#include "hr_event.h"
#include "hr_worker_conf.h"

/* Settings plus a config file holding @json (NULL: none). */
static struct hr_conf *conf_with(const char *json)
{
    static char path[64];
    struct hr_conf *cfg = hr_conf_new();
    int n;

    if (json) {
        FILE *f;

        snprintf(path, sizeof(path), "/tmp/herald-email-cat-%d.json",
                 (int)getpid());
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(json, f);
        fclose(f);
    }
    hr_conf_add_specs(cfg, hr_worker_common_conf);
    hr_conf_add_specs(cfg, email_conf);
    n = hr_conf_load(cfg, json ? path : NULL);
    if (json)
        unlink(path);
    for (int i = 0; i < n; i++)
        print_error("load: %s\n", hr_conf_error(cfg, i));
    assert_int_equal(n, 0);
    return cfg;
}

static const char full[] =
    "{\"email\": {\"default_locale\": \"en\","
    " \"unsubscribe_url\": \"https://x.example/u?u={{user_id}}\","
    " \"categories\": {"
    "  \"comment\": {\"mode\": \"digest\", \"window_seconds\": 60,"
    "   \"max_items\": 3, \"templates\": {"
    "    \"en\": {\"subject\": \"{{count}} comments\", \"text\": \"en\"},"
    "    \"fr\": {\"subject\": \"{{count}} commentaires\", \"text\": \"fr\"}}},"
    "  \"mention\": {\"mode\": \"leading\"}}}}";

static void categories_take_their_settings(void **state)
{
    struct hr_conf *cfg;
    struct email_catalog *cat;
    const struct email_category *c;
    char errstr[256];

    (void)state;
    setenv("HERALD_EMAIL_WINDOW_SECONDS", "900", 1);
    cfg = conf_with(full);
    cat = email_catalog_new(cfg, errstr, sizeof(errstr));
    assert_non_null(cat);
    c = email_catalog_find(cat, "comment");
    assert_false(email_category_leading(c));
    assert_int_equal(email_category_window_ms(c), 60000);
    assert_int_equal(email_category_max_items(c), 3);
    c = email_catalog_find(cat, "mention");
    assert_true(email_category_leading(c));
    assert_int_equal(email_category_window_ms(c), 900000);
    assert_int_equal(email_category_max_items(c), 20);
    /* not named: the "*" entry, built-in templates */
    c = email_catalog_find(cat, "other");
    assert_ptr_equal(c, email_catalog_find(cat, "*"));
    assert_int_equal(email_catalog_check(cat, cfg), 6);
    assert_int_equal(hr_conf_error_count(cfg), 0);
    email_catalog_free(cat);
    hr_conf_free(cfg);
    unsetenv("HERALD_EMAIL_WINDOW_SECONDS");
}

static void locales_fall_back_by_language_then_default(void **state)
{
    struct hr_conf *cfg = conf_with(full);
    struct hr_buf subject = {0}, text = {0}, html = {0}, unsub = {0};
    struct email_rendered out = {&subject, &text, &html, &unsub};
    struct email_catalog *cat;
    const struct email_category *c;
    static const char *const want[][2] = {{"fr-CA", "fr"}, {"fr", "fr"},
                                          {"de", "en"},    {"", "en"},
                                          {"en_GB", "en"}, {NULL, "en"}};
    char errstr[256];

    (void)state;
    cat = email_catalog_new(cfg, errstr, sizeof(errstr));
    assert_non_null(cat);
    c = email_catalog_find(cat, "comment");
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        json_t *ctx = json_pack("{s:s, s:s, s:i}", "user_id", "u 1&x",
                                "category", "comment", "count", 2);

        assert_int_equal(email_catalog_render(cat, c, want[i][0], ctx, &out,
                                              errstr, sizeof(errstr)),
                         0);
        assert_string_equal(text.p, want[i][1]);
        json_decref(ctx);
    }
    assert_string_equal(subject.p, "2 comments");
    /* the unsubscribe URL's values are percent-encoded */
    assert_string_equal(unsub.p, "https://x.example/u?u=u%201%26x");
    assert_int_equal(html.len, 0); /* text only */
    hr_buf_release(&subject, 0);
    hr_buf_release(&text, 0);
    hr_buf_release(&html, 0);
    hr_buf_release(&unsub, 0);
    email_catalog_free(cat);
    hr_conf_free(cfg);
}

static void bad_configs_name_their_problem(void **state)
{
    static const char *const cases[][2] = {
        {"{\"email\": {\"categories\": {\"c\": {\"mode\": \"burst\"}}}}",
         "categories.c.mode: \"digest\" or \"leading\""},
        {"{\"email\": {\"categories\": {\"c\": {\"window_seconds\": 0}}}}",
         "categories.c.window_seconds"},
        {"{\"email\": {\"categories\": {\"c d\": {}}}}",
         "'c d' is not a category name"},
        {"{\"email\": {\"categories\": {\"c\": {\"tpl\": {}}}}}",
         "categories.c: unknown key 'tpl'"},
        {"{\"email\": {\"categories\": {\"c\": {\"templates\": {\"en\": "
         "{\"subject\": \"{{#x}}\", \"text\": \"t\"}}}}}}",
         "categories.c.templates.en.subject: line 1: unclosed section 'x'"},
        {"{\"email\": {\"categories\": {\"c\": {\"templates\": {\"en\": "
         "{\"text\": \"t\"}}}}}}",
         "categories.c.templates.en.subject: a string is required"},
        {"{\"email\": {\"from\": \"x\"}}", "email: unknown key 'from'"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hr_conf *cfg = conf_with(cases[i][0]);
        char errstr[256] = "";
        struct email_catalog *cat =
            email_catalog_new(cfg, errstr, sizeof(errstr));

        assert_null(cat);
        if (!strstr(errstr, cases[i][1]))
            fail_msg("case %zu: '%s' lacks '%s'", i, errstr, cases[i][1]);
        hr_conf_free(cfg);
    }
}

static void check_renders_with_sample_data(void **state)
{
    struct hr_conf *cfg = conf_with(
        "{\"email\": {\"categories\": {\"c\": {\"templates\": {\"en\": "
        "{\"subject\": \"{{count}}\", \"text\": "
        "\"{{#items}}{{actor}}{{/items}}\"}}}}}}");
    struct email_catalog *cat;
    char errstr[256];

    (void)state;
    cat = email_catalog_new(cfg, errstr, sizeof(errstr));
    assert_non_null(cat);
    email_catalog_check(cat, cfg);
    assert_int_equal(hr_conf_error_count(cfg), 2); /* single and digest */
    assert_non_null(strstr(hr_conf_error(cfg, 0), "email template c/en"));
    assert_non_null(strstr(hr_conf_error(cfg, 0), "unknown variable 'actor'"));
    email_catalog_free(cat);
    hr_conf_free(cfg);
}

static struct hr_event parsed;

/* Parse @json into *@out, its strings borrowed from the CloudEvent, which
 * lives until the next call (or parse_release()). */
static int parse(const char *json, struct email_event *out, char *errstr)
{
    char why[256];

    hr_event_release(&parsed);
    assert_int_equal(hr_event_parse(&parsed, json, strlen(json), NULL, NULL,
                                    why, sizeof(why)),
                     0);
    return email_event_parse(&parsed, out, errstr, 256);
}

static void parse_release(void)
{
    hr_event_release(&parsed);
}

#define CE(type, data)                                      \
    "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/" \
    "t\",\"type\":\"" type "\",\"data\":" data "}"

static void events_are_checked(void **state)
{
    static const char *const bad[][2] = {
        {CE("notification.email", "{\"category\":\"c\"}"),
         "data.user_id is required"},
        {CE("notification.email", "{\"user_id\":\"u\",\"category\":\"a b\"}"),
         "data.category must be 1 to 64"},
        {CE("notification.email",
            "{\"user_id\":\"u\",\"category\":\"c\",\"to\":\"nobody\"}"),
         "data.to is not an email address"},
        {CE("notification.email",
            "{\"user_id\":\"u\",\"category\":\"c\",\"text\":7}"),
         "data.text must be a string"},
        {CE("push.requested", "{\"user_id\":\"u\"}"),
         "unexpected event type 'push.requested'"},
        {CE("email.send",
            "{\"user_id\":\"u\",\"category\":\"c\",\"window_id\":\"w\","
            "\"message_id\":\"m@x\",\"from\":\"a@x\",\"raw\":\"r\","
            "\"mode\":\"digest\"}"),
         "data.to is required"},
        {CE("notification.email", "[1]"), "data must be a JSON object"},
    };
    struct email_event ev;
    char errstr[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i][0], &ev, errstr), -1);
        if (!strstr(errstr, bad[i][1]))
            fail_msg("case %zu: '%s' lacks '%s'", i, errstr, bad[i][1]);
    }
    assert_int_equal(
        parse(CE("notification.email",
                 "{\"user_id\":\"u\",\"category\":\"comment\",\"to\":null,"
                 "\"locale\":\"fr\",\"extra\":{\"k\":1}}"),
              &ev, errstr),
        0);
    assert_int_equal(ev.kind, EMAIL_NOTIFICATION);
    assert_null(ev.to);
    assert_string_equal(ev.locale, "fr");
    assert_int_equal(
        parse(CE("email.send",
                 "{\"user_id\":\"u\",\"category\":\"c\",\"window_id\":\"w\","
                 "\"message_id\":\"m@x\",\"from\":\"a@x\",\"raw\":\"r\","
                 "\"mode\":\"digest\",\"to\":null,\"undeliverable\":\"no "
                 "address\",\"items\":3,\"due_ms\":5}"),
              &ev, errstr),
        0);
    assert_int_equal(ev.kind, EMAIL_SEND);
    assert_string_equal(ev.undeliverable, "no address");
    assert_int_equal(ev.items, 3);
    assert_int_equal(ev.due_ms, 5);
    parse_release();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(categories_take_their_settings),
        cmocka_unit_test(locales_fall_back_by_language_then_default),
        cmocka_unit_test(bad_configs_name_their_problem),
        cmocka_unit_test(check_renders_with_sample_data),
        cmocka_unit_test(events_are_checked),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
