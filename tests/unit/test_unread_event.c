/*
 * Unit tests for herald-unread's input validation: unread_event_parse() on
 * CloudEvents parsed by hr_event_parse() (SPEC section 4), and
 * unread_validate() / unread_settings_load() on the worker's settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "hr_conf.h"
#include "hr_event.h"
#include "hr_worker_conf.h"
#include "unread.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* 2026-11-22T07:28:39.123Z */
#define SENT_MS 1795332519123LL
/* 2026-11-22T08:00:00Z */
#define READ_MS 1795334400000LL

#define MESSAGE_DATA                                                      \
    "{\"conversation_id\":\"conv-1\",\"message_id\":\"msg-1\","           \
    "\"sender_id\":\"alice\",\"recipient_ids\":[\"bob\",\"carol\"],"      \
    "\"sent_at\":\"2026-11-22T07:28:39.123Z\",\"sender_name\":\"Alice\"," \
    "\"preview\":\"hello\",\"conversation_title\":\"Team\"}"

#define READ_DATA                                          \
    "{\"conversation_id\":\"conv-1\",\"user_id\":\"bob\"," \
    "\"read_at\":\"2026-11-22T08:00:00Z\"}"

/* One parse: the CloudEvent owns the strings @out borrows. */
struct parsed {
    struct hr_event ev;
    struct unread_event out;
    char errstr[256];
    int rc;
};

static json_t *load(const char *json)
{
    json_t *v = json_loads(json, 0, NULL);

    assert_non_null(v);
    return v;
}

/* Wrap @data (stolen; NULL: no data attribute) in a structured CloudEvent
 * of @type, run it through hr_event_parse() and unread_event_parse(). */
static void parse_event(struct parsed *p, const char *type, json_t *data)
{
    json_t *root = json_pack("{s:s, s:s, s:s, s:s}", "specversion", "1.0", "id",
                             "evt-1", "source", "/chat", "type", type);
    char *text;

    assert_non_null(root);
    if (data)
        assert_int_equal(json_object_set_new(root, "data", data), 0);
    text = json_dumps(root, JSON_COMPACT);
    assert_non_null(text);
    json_decref(root);
    memset(p, 0, sizeof(*p));
    if (hr_event_parse(&p->ev, text, strlen(text), NULL, NULL, p->errstr,
                       sizeof(p->errstr)))
        fail_msg("hr_event_parse refused %s: %s", text, p->errstr);
    free(text);
    p->rc = unread_event_parse(&p->ev, &p->out, p->errstr, sizeof(p->errstr));
}

static void parsed_release(struct parsed *p)
{
    hr_event_release(&p->ev);
}

/* @base with @field removed (@value NULL) or set to @value (stolen). */
static json_t *data_with(const char *base, const char *field, json_t *value)
{
    json_t *data = load(base);

    if (value)
        assert_int_equal(json_object_set_new(data, field, value), 0);
    else
        assert_int_equal(json_object_del(data, field), 0);
    return data;
}

/* Expect @type with @data (stolen) to be refused with @want in the reason. */
static void assert_refused(const char *type, json_t *data, const char *want)
{
    struct parsed p;
    char *shown =
        data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    parse_event(&p, type, data);
    if (p.rc != -1)
        fail_msg("accepted %s %s", type, shown ? shown : "?");
    if (!strstr(p.errstr, want))
        fail_msg("%s %s: got '%s', want '%s'", type, shown ? shown : "?",
                 p.errstr, want);
    free(shown);
    parsed_release(&p);
}

static void
assert_message_refused(const char *field, json_t *value, const char *want)
{
    assert_refused("message.created", data_with(MESSAGE_DATA, field, value),
                   want);
}

static void
assert_read_refused(const char *field, json_t *value, const char *want)
{
    assert_refused("conversation.read", data_with(READ_DATA, field, value),
                   want);
}

/* --- valid events --------------------------------------------------------- */

static void test_message_created_yields_every_field(void **state)
{
    struct parsed p;

    (void)state;
    parse_event(&p, "message.created", load(MESSAGE_DATA));
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.out.kind, UNREAD_MESSAGE);
    assert_string_equal(p.out.conversation_id, "conv-1");
    assert_string_equal(p.out.message_id, "msg-1");
    assert_string_equal(p.out.sender_id, "alice");
    assert_true(json_is_array(p.out.recipient_ids));
    assert_int_equal(json_array_size(p.out.recipient_ids), 2);
    assert_string_equal(
        json_string_value(json_array_get(p.out.recipient_ids, 0)), "bob");
    assert_string_equal(
        json_string_value(json_array_get(p.out.recipient_ids, 1)), "carol");
    assert_int_equal(p.out.ts_ms, SENT_MS);
    assert_string_equal(p.out.sender_name, "Alice");
    assert_string_equal(p.out.preview, "hello");
    assert_string_equal(p.out.conversation_title, "Team");
    assert_null(p.out.user_id);
    assert_int_equal(p.out.nrefs, 0);
    parsed_release(&p);
}

static void test_conversation_read_yields_every_field(void **state)
{
    struct parsed p;

    (void)state;
    parse_event(&p, "conversation.read", load(READ_DATA));
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.out.kind, UNREAD_READ);
    assert_string_equal(p.out.conversation_id, "conv-1");
    assert_string_equal(p.out.user_id, "bob");
    assert_int_equal(p.out.ts_ms, READ_MS);
    assert_null(p.out.message_id);
    assert_null(p.out.sender_id);
    assert_null(p.out.recipient_ids);
    assert_null(p.out.sender_name);
    parsed_release(&p);
}

static void test_times_with_offsets_parse_to_the_same_instant(void **state)
{
    struct parsed p;

    (void)state;
    parse_event(&p, "message.created",
                data_with(MESSAGE_DATA, "sent_at",
                          json_string("2026-11-22T09:28:39.123456+02:00")));
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.out.ts_ms, SENT_MS);
    parsed_release(&p);
    parse_event(&p, "conversation.read",
                data_with(READ_DATA, "read_at",
                          json_string("2026-11-22T03:00:00-05:00")));
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.out.ts_ms, READ_MS);
    parsed_release(&p);
}

static void test_unknown_data_fields_are_ignored(void **state)
{
    struct parsed p;
    json_t *data = load(MESSAGE_DATA);

    (void)state;
    json_object_set_new(data, "attachments", json_pack("[i]", 1));
    json_object_set_new(data, "x-extra", json_null());
    parse_event(&p, "message.created", data);
    assert_int_equal(p.rc, 0);
    parsed_release(&p);
}

/* The sender and repeated recipients are dropped later, when grouping. */
static void test_sender_and_repeats_in_recipients_are_accepted(void **state)
{
    struct parsed p;

    (void)state;
    parse_event(&p, "message.created",
                data_with(MESSAGE_DATA, "recipient_ids",
                          json_pack("[s,s,s]", "alice", "bob", "bob")));
    assert_int_equal(p.rc, 0);
    assert_int_equal(json_array_size(p.out.recipient_ids), 3);
    parsed_release(&p);
}

static void test_empty_recipient_list_is_accepted(void **state)
{
    struct parsed p;

    (void)state;
    parse_event(&p, "message.created",
                data_with(MESSAGE_DATA, "recipient_ids", json_array()));
    assert_int_equal(p.rc, 0);
    assert_int_equal(json_array_size(p.out.recipient_ids), 0);
    parsed_release(&p);
}

static void test_ids_may_hold_utf8_colons_and_256_bytes(void **state)
{
    char longest[257];
    struct parsed p;

    (void)state;
    memset(longest, 'u', 256);
    longest[256] = '\0';
    parse_event(&p, "conversation.read",
                data_with(READ_DATA, "user_id", json_string(longest)));
    assert_int_equal(p.rc, 0);
    assert_int_equal(strlen(p.out.user_id), 256);
    parsed_release(&p);
    parse_event(&p, "message.created",
                data_with(MESSAGE_DATA, "conversation_id",
                          json_string("team:Zürich/☕ 1")));
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.out.conversation_id, "team:Zürich/☕ 1");
    parsed_release(&p);
}

/* --- optional display fields ---------------------------------------------- */

static void test_absent_display_fields_are_null(void **state)
{
    struct parsed p;
    json_t *data = load(MESSAGE_DATA);

    (void)state;
    json_object_del(data, "sender_name");
    json_object_del(data, "preview");
    json_object_del(data, "conversation_title");
    parse_event(&p, "message.created", data);
    assert_int_equal(p.rc, 0);
    assert_null(p.out.sender_name);
    assert_null(p.out.preview);
    assert_null(p.out.conversation_title);
    parsed_release(&p);
}

static void test_null_display_fields_are_null(void **state)
{
    struct parsed p;
    json_t *data = load(MESSAGE_DATA);

    (void)state;
    json_object_set_new(data, "sender_name", json_null());
    json_object_set_new(data, "preview", json_null());
    json_object_set_new(data, "conversation_title", json_null());
    parse_event(&p, "message.created", data);
    assert_int_equal(p.rc, 0);
    assert_null(p.out.sender_name);
    assert_null(p.out.preview);
    assert_null(p.out.conversation_title);
    parsed_release(&p);
}

static void test_empty_display_fields_are_kept(void **state)
{
    struct parsed p;

    (void)state;
    parse_event(&p, "message.created",
                data_with(MESSAGE_DATA, "preview", json_string("")));
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.out.preview, "");
    parsed_release(&p);
}

static void test_mistyped_display_fields_are_refused(void **state)
{
    static const char *const fields[] = {"sender_name", "preview",
                                         "conversation_title"};

    (void)state;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char want[96];

        snprintf(want, sizeof(want), "field '%s' must be a string", fields[i]);
        assert_message_refused(fields[i], json_integer(7), want);
        assert_message_refused(fields[i], json_true(), want);
        assert_message_refused(fields[i], json_pack("{s:s}", "a", "b"), want);
        assert_message_refused(fields[i], json_pack("[s]", "a"), want);
    }
}

/* --- missing and mistyped required fields --------------------------------- */

static void test_message_missing_any_required_field_is_refused(void **state)
{
    static const char *const fields[] = {"conversation_id", "message_id",
                                         "sender_id", "recipient_ids",
                                         "sent_at"};

    (void)state;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char want[64];

        snprintf(want, sizeof(want), "missing field '%s'", fields[i]);
        assert_message_refused(fields[i], NULL, want);
    }
}

static void test_read_missing_any_required_field_is_refused(void **state)
{
    static const char *const fields[] = {"conversation_id", "user_id",
                                         "read_at"};

    (void)state;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char want[64];

        snprintf(want, sizeof(want), "missing field '%s'", fields[i]);
        assert_read_refused(fields[i], NULL, want);
    }
}

/* A message.created's user_id is not one of its fields; a read needs it. */
static void test_read_with_message_fields_only_is_refused(void **state)
{
    (void)state;
    assert_refused("conversation.read", load(MESSAGE_DATA),
                   "missing field 'user_id'");
}

static void test_mistyped_ids_are_refused(void **state)
{
    static const char *const message_ids[] = {"conversation_id", "message_id",
                                              "sender_id"};

    (void)state;
    for (size_t i = 0; i < sizeof(message_ids) / sizeof(message_ids[0]); i++) {
        char want[64];

        snprintf(want, sizeof(want), "field '%s' must be a string",
                 message_ids[i]);
        assert_message_refused(message_ids[i], json_integer(42), want);
        assert_message_refused(message_ids[i], json_null(), want);
        assert_message_refused(message_ids[i], json_false(), want);
        assert_message_refused(message_ids[i], json_pack("[s]", "x"), want);
    }
    assert_read_refused("user_id", json_integer(42),
                        "field 'user_id' must be a string");
    assert_read_refused("user_id", json_null(),
                        "field 'user_id' must be a string");
    assert_read_refused("conversation_id", json_real(1.5),
                        "field 'conversation_id' must be a string");
}

static void test_recipients_that_are_not_an_array_are_refused(void **state)
{
    const char *want = "field 'recipient_ids' must be an array";

    (void)state;
    assert_message_refused("recipient_ids", json_string("bob"), want);
    assert_message_refused("recipient_ids", json_null(), want);
    assert_message_refused("recipient_ids", json_integer(2), want);
    assert_message_refused("recipient_ids", json_pack("{s:s}", "0", "bob"),
                           want);
}

static void test_recipients_with_non_strings_are_refused(void **state)
{
    const char *want = "field 'recipient_ids' must contain only strings";

    (void)state;
    assert_message_refused("recipient_ids", json_pack("[i]", 1), want);
    assert_message_refused("recipient_ids", json_pack("[s,n]", "bob"), want);
    assert_message_refused("recipient_ids", json_pack("[s,{}]", "bob"), want);
    assert_message_refused("recipient_ids", json_pack("[[s]]", "bob"), want);
    assert_message_refused("recipient_ids", json_pack("[b]", 1), want);
    assert_message_refused("recipient_ids", json_pack("[s,f]", "bob", 2.5),
                           want);
}

static void test_recipients_with_bad_ids_are_refused(void **state)
{
    (void)state;
    assert_message_refused("recipient_ids", json_pack("[s,s]", "bob", "u{1}"),
                           "field 'recipient_ids' contains a control "
                           "character or brace");
    assert_message_refused("recipient_ids", json_pack("[s]", "tab\there"),
                           "field 'recipient_ids' contains a control");
    assert_message_refused("recipient_ids", json_pack("[s]", ""),
                           "field 'recipient_ids' must have 1..256 bytes");
}

static void test_more_than_ten_thousand_recipients_are_refused(void **state)
{
    json_t *many = json_array();
    struct parsed p;
    char id[32];

    (void)state;
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof(id), "u%d", i);
        json_array_append_new(many, json_string(id));
    }
    parse_event(&p, "message.created",
                data_with(MESSAGE_DATA, "recipient_ids", json_incref(many)));
    assert_int_equal(p.rc, 0);
    parsed_release(&p);
    json_array_append_new(many, json_string("one-too-many"));
    assert_message_refused("recipient_ids", many,
                           "must be an array of at most 10000 strings");
}

/* The event id names the outputs' cause: 256 bytes pass, 257 do not. */
static void test_event_ids_over_256_bytes_are_refused(void **state)
{
    (void)state;
    for (size_t len = 256; len <= 257; len++) {
        char id[258], *text;
        json_t *root;
        struct parsed p;

        memset(id, 'e', len);
        id[len] = '\0';
        root = json_pack("{s:s, s:s, s:s, s:s, s:o}", "specversion", "1.0",
                         "id", id, "source", "/chat", "type", "message.created",
                         "data", load(MESSAGE_DATA));
        text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        memset(&p, 0, sizeof(p));
        assert_int_equal(hr_event_parse(&p.ev, text, strlen(text), NULL, NULL,
                                        p.errstr, sizeof(p.errstr)),
                         0);
        free(text);
        p.rc = unread_event_parse(&p.ev, &p.out, p.errstr, sizeof(p.errstr));
        assert_int_equal(p.rc, len == 256 ? 0 : -1);
        if (p.rc)
            assert_non_null(strstr(p.errstr, "event id over 256 bytes"));
        parsed_release(&p);
    }
}

/* --- times ---------------------------------------------------------------- */

static void test_bad_times_are_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "yesterday",
        "2026-11-22",
        "2026-11-22T07:28:39",       /* no offset */
        "2026-11-22T07:28Z",         /* no seconds */
        "2026-13-01T00:00:00Z",      /* month 13 */
        "2026-02-30T00:00:00Z",      /* no such day */
        "2026-11-22T24:00:00Z",      /* hour 24 */
        "2026-11-22T07:28:39+25:00", /* offset out of range */
        "2026-11-22T07:28:39Z trailing",
        "1795332519123",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_message_refused("sent_at", json_string(bad[i]),
                               "field 'sent_at' must be an RFC 3339 time");
        assert_read_refused("read_at", json_string(bad[i]),
                            "field 'read_at' must be an RFC 3339 time");
    }
}

static void test_times_that_are_not_strings_are_refused(void **state)
{
    (void)state;
    assert_message_refused("sent_at", json_integer(SENT_MS),
                           "field 'sent_at' must be an RFC 3339 time");
    assert_message_refused("sent_at", json_null(),
                           "field 'sent_at' must be an RFC 3339 time");
    assert_read_refused("read_at", json_real(1.5),
                        "field 'read_at' must be an RFC 3339 time");
    assert_read_refused("read_at", json_pack("{s:s}", "t", "x"),
                        "field 'read_at' must be an RFC 3339 time");
}

/* --- ids that cannot become parts of Redis keys --------------------------- */

static void test_ids_with_braces_or_control_chars_are_refused(void **state)
{
    static const char *const bad[] = {
        "a{b",     "a}b",   "{user}",  "line\nbreak",
        "nul\x01", "tab\t", "del\x7f", "esc\x1b[0m",
    };
    static const char *const message_ids[] = {"conversation_id", "message_id",
                                              "sender_id"};
    static const char *const read_ids[] = {"conversation_id", "user_id"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[96];

        for (size_t f = 0; f < sizeof(message_ids) / sizeof(message_ids[0]);
             f++) {
            snprintf(want, sizeof(want),
                     "field '%s' contains a control character or brace",
                     message_ids[f]);
            assert_message_refused(message_ids[f], json_string(bad[i]), want);
        }
        for (size_t f = 0; f < sizeof(read_ids) / sizeof(read_ids[0]); f++) {
            snprintf(want, sizeof(want),
                     "field '%s' contains a control character or brace",
                     read_ids[f]);
            assert_read_refused(read_ids[f], json_string(bad[i]), want);
        }
    }
}

static void test_empty_and_overlong_ids_are_refused(void **state)
{
    char overlong[258];

    (void)state;
    memset(overlong, 'x', 257);
    overlong[257] = '\0';
    assert_message_refused("message_id", json_string(""),
                           "field 'message_id' must have 1..256 bytes");
    assert_message_refused("conversation_id", json_string(overlong),
                           "field 'conversation_id' must have 1..256 bytes");
    assert_read_refused("user_id", json_string(""),
                        "field 'user_id' must have 1..256 bytes");
    assert_read_refused("user_id", json_string(overlong),
                        "field 'user_id' must have 1..256 bytes");
}

/* An embedded NUL (valid JSON "\u0000") must not shorten an id silently. */
static void test_id_with_embedded_nul_is_refused_or_whole(void **state)
{
    struct hr_event ev;
    struct unread_event out;
    char errstr[256] = "";
    static const char text[] =
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"/s\","
        "\"type\":\"conversation.read\",\"data\":{\"conversation_id\":\"c\","
        "\"user_id\":\"bob\\u0000evil\",\"read_at\":\"2026-11-22T08:00:00Z\"}}";

    (void)state;
    if (hr_event_parse(&ev, text, strlen(text), NULL, NULL, errstr,
                       sizeof(errstr)))
        return; /* refused as poison before the worker sees it: fine */
    if (unread_event_parse(&ev, &out, errstr, sizeof(errstr)) == 0)
        fail_msg("user_id with an embedded NUL accepted as '%s'", out.user_id);
    hr_event_release(&ev);
}

/* --- type and data -------------------------------------------------------- */

static void test_unknown_type_is_refused(void **state)
{
    char long_type[200];

    (void)state;
    assert_refused("message.deleted", load(MESSAGE_DATA),
                   "unknown event type 'message.deleted'");
    assert_refused("Message.Created", load(MESSAGE_DATA),
                   "unknown event type 'Message.Created'");
    memset(long_type, 't', sizeof(long_type) - 1);
    long_type[sizeof(long_type) - 1] = '\0';
    assert_refused(long_type, load(MESSAGE_DATA), "unknown event type 'ttt");
}

static void test_data_that_is_not_an_object_is_refused(void **state)
{
    const char *want = "event data must be an object";

    (void)state;
    assert_refused("message.created", NULL, want);
    assert_refused("message.created", json_pack("[s]", "conv-1"), want);
    assert_refused("conversation.read", json_string(READ_DATA), want);
    assert_refused("conversation.read", json_null(), want);
}

/* --- settings ------------------------------------------------------------- */

extern char **environ;

/* Unset every HERALD_* variable but the harness's own, so settings come
 * only from what each test sets. */
static int clear_env(void **state)
{
    char name[256];
    bool again = true;

    (void)state;
    while (again) {
        again = false;
        for (char **e = environ; *e; e++) {
            const char *eq = strchr(*e, '=');
            size_t len = eq ? (size_t)(eq - *e) : strlen(*e);

            if (strncmp(*e, "HERALD_", 7) || len >= sizeof(name) ||
                !strncmp(*e, "HERALD_TEST_", 12))
                continue;
            memcpy(name, *e, len);
            name[len] = '\0';
            unsetenv(name); /* environ changed: start over */
            again = true;
            break;
        }
    }
    return 0;
}

/* Load the unread table from the environment and run unread_validate(). */
static struct hr_conf *validated(const char *title, const char *body)
{
    struct hr_conf *cfg = hr_conf_new();

    unsetenv("HERALD_UNREAD_PUSH_TITLE");
    unsetenv("HERALD_UNREAD_PUSH_BODY");
    if (title)
        setenv("HERALD_UNREAD_PUSH_TITLE", title, 1);
    if (body)
        setenv("HERALD_UNREAD_PUSH_BODY", body, 1);
    hr_conf_add_specs(cfg, unread_conf);
    assert_int_equal(hr_conf_load(cfg, NULL), 0);
    unread_validate(cfg);
    return cfg;
}

/* Whether some recorded error contains both @a and @b. */
static bool has_error(const struct hr_conf *cfg, const char *a, const char *b)
{
    for (int i = 0; i < hr_conf_error_count(cfg); i++) {
        const char *e = hr_conf_error(cfg, i);

        if (strstr(e, a) && (!b || strstr(e, b)))
            return true;
    }
    return false;
}

static void print_errors(const struct hr_conf *cfg)
{
    for (int i = 0; i < hr_conf_error_count(cfg); i++)
        print_message("  error: %s\n", hr_conf_error(cfg, i));
}

static void test_default_templates_are_valid(void **state)
{
    struct hr_conf *cfg = validated(NULL, NULL);

    (void)state;
    print_errors(cfg);
    assert_int_equal(hr_conf_error_count(cfg), 0);
    assert_string_equal(hr_conf_str(cfg, "HERALD_UNREAD_PUSH_TITLE"),
                        "{{sender_name}}");
    assert_string_equal(hr_conf_str(cfg, "HERALD_UNREAD_PUSH_BODY"),
                        "{{preview}}");
    hr_conf_free(cfg);
}

static void test_templates_with_every_placeholder_are_valid(void **state)
{
    struct hr_conf *cfg =
        validated("{{sender_name}} in {{conversation_title}}",
                  "{{preview}} ({{sender_name}}, {{conversation_title}})");

    (void)state;
    print_errors(cfg);
    assert_int_equal(hr_conf_error_count(cfg), 0);
    hr_conf_free(cfg);
}

static void test_templates_without_placeholders_are_valid(void **state)
{
    struct hr_conf *cfg = validated("New message", "{single} braces } {");

    (void)state;
    print_errors(cfg);
    assert_int_equal(hr_conf_error_count(cfg), 0);
    hr_conf_free(cfg);
}

static void test_unknown_placeholder_names_the_setting(void **state)
{
    struct hr_conf *cfg = validated("{{nope}}", NULL);

    (void)state;
    assert_int_equal(hr_conf_error_count(cfg), 1);
    assert_true(has_error(cfg, "HERALD_UNREAD_PUSH_TITLE", "'nope'"));
    hr_conf_free(cfg);

    cfg = validated(NULL, "Hi {{user_name}}!");
    assert_int_equal(hr_conf_error_count(cfg), 1);
    assert_true(has_error(cfg, "HERALD_UNREAD_PUSH_BODY", "'user_name'"));
    hr_conf_free(cfg);
}

static void test_every_bad_placeholder_is_reported(void **state)
{
    struct hr_conf *cfg =
        validated("{{a}} {{sender_name}} {{b}}", "{{Preview}} {{ preview }}");

    (void)state;
    print_errors(cfg);
    assert_int_equal(hr_conf_error_count(cfg), 4);
    assert_true(has_error(cfg, "HERALD_UNREAD_PUSH_TITLE", "'a'"));
    assert_true(has_error(cfg, "HERALD_UNREAD_PUSH_TITLE", "'b'"));
    assert_true(has_error(cfg, "HERALD_UNREAD_PUSH_BODY", "'Preview'"));
    assert_true(has_error(cfg, "HERALD_UNREAD_PUSH_BODY", "' preview '"));
    hr_conf_free(cfg);
}

static void test_empty_placeholder_is_refused(void **state)
{
    struct hr_conf *cfg = validated("{{}}", NULL);

    (void)state;
    assert_int_equal(hr_conf_error_count(cfg), 1);
    assert_true(has_error(cfg, "HERALD_UNREAD_PUSH_TITLE", "placeholder"));
    hr_conf_free(cfg);
}

static void test_unterminated_placeholder_is_refused(void **state)
{
    struct hr_conf *cfg = validated("{{sender_name}} says {{preview", "{{");

    (void)state;
    print_errors(cfg);
    assert_int_equal(hr_conf_error_count(cfg), 2);
    assert_true(has_error(cfg, "HERALD_UNREAD_PUSH_TITLE", "unterminated"));
    assert_true(has_error(cfg, "HERALD_UNREAD_PUSH_BODY", "unterminated"));
    hr_conf_free(cfg);
}

static void test_max_per_conversation_must_be_within_range(void **state)
{
    static const char *const bad[] = {"0", "-1", "100001", "ten", "9.5"};
    static const char *const good[] = {"1", "999", "100000"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct hr_conf *cfg = hr_conf_new();

        setenv("HERALD_UNREAD_MAX_PER_CONVERSATION", bad[i], 1);
        hr_conf_add_specs(cfg, unread_conf);
        assert_int_equal(hr_conf_load(cfg, NULL), 1);
        assert_true(has_error(cfg, "HERALD_UNREAD_MAX_PER_CONVERSATION", NULL));
        hr_conf_free(cfg);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct hr_conf *cfg = hr_conf_new();

        setenv("HERALD_UNREAD_MAX_PER_CONVERSATION", good[i], 1);
        hr_conf_add_specs(cfg, unread_conf);
        assert_int_equal(hr_conf_load(cfg, NULL), 0);
        assert_int_equal(hr_conf_int(cfg, "HERALD_UNREAD_MAX_PER_CONVERSATION"),
                         strtoll(good[i], NULL, 10));
        hr_conf_free(cfg);
    }
}

static struct hr_conf *worker_conf(void)
{
    struct hr_conf *cfg = hr_conf_new();

    hr_conf_add_specs(cfg, hr_worker_common_conf);
    hr_conf_add_specs(cfg, unread_conf);
    return cfg;
}

static void test_settings_defaults(void **state)
{
    struct hr_conf *cfg = worker_conf();
    struct unread_settings s;

    (void)state;
    assert_int_equal(hr_conf_load(cfg, NULL), 0);
    unread_settings_load(&s, cfg);
    assert_string_equal(s.changed_topic, "herald.unread");
    assert_null(s.push_topic);
    assert_string_equal(s.push_title, "{{sender_name}}");
    assert_string_equal(s.push_body, "{{preview}}");
    assert_int_equal(s.max_per_conversation, 999);
    assert_int_equal(s.ttl_seconds, 604800);
    hr_conf_free(cfg);
}

static void test_settings_from_the_environment(void **state)
{
    struct hr_conf *cfg = worker_conf();
    struct unread_settings s;

    (void)state;
    setenv("HERALD_UNREAD_CHANGED_TOPIC", "chat.unread", 1);
    setenv("HERALD_UNREAD_PUSH_TOPIC", "chat.push", 1);
    setenv("HERALD_UNREAD_MAX_PER_CONVERSATION", "50", 1);
    setenv("HERALD_IDEMPOTENCY_TTL", "3600", 1);
    assert_int_equal(hr_conf_load(cfg, NULL), 0);
    unread_settings_load(&s, cfg);
    assert_string_equal(s.changed_topic, "chat.unread");
    assert_string_equal(s.push_topic, "chat.push");
    assert_int_equal(s.max_per_conversation, 50);
    assert_int_equal(s.ttl_seconds, 3600);
    hr_conf_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_created_yields_every_field),
        cmocka_unit_test(test_conversation_read_yields_every_field),
        cmocka_unit_test(test_times_with_offsets_parse_to_the_same_instant),
        cmocka_unit_test(test_unknown_data_fields_are_ignored),
        cmocka_unit_test(test_sender_and_repeats_in_recipients_are_accepted),
        cmocka_unit_test(test_empty_recipient_list_is_accepted),
        cmocka_unit_test(test_ids_may_hold_utf8_colons_and_256_bytes),
        cmocka_unit_test(test_absent_display_fields_are_null),
        cmocka_unit_test(test_null_display_fields_are_null),
        cmocka_unit_test(test_empty_display_fields_are_kept),
        cmocka_unit_test(test_mistyped_display_fields_are_refused),
        cmocka_unit_test(test_message_missing_any_required_field_is_refused),
        cmocka_unit_test(test_read_missing_any_required_field_is_refused),
        cmocka_unit_test(test_read_with_message_fields_only_is_refused),
        cmocka_unit_test(test_mistyped_ids_are_refused),
        cmocka_unit_test(test_recipients_that_are_not_an_array_are_refused),
        cmocka_unit_test(test_recipients_with_non_strings_are_refused),
        cmocka_unit_test(test_recipients_with_bad_ids_are_refused),
        cmocka_unit_test(test_more_than_ten_thousand_recipients_are_refused),
        cmocka_unit_test(test_event_ids_over_256_bytes_are_refused),
        cmocka_unit_test(test_bad_times_are_refused),
        cmocka_unit_test(test_times_that_are_not_strings_are_refused),
        cmocka_unit_test(test_ids_with_braces_or_control_chars_are_refused),
        cmocka_unit_test(test_empty_and_overlong_ids_are_refused),
        cmocka_unit_test(test_id_with_embedded_nul_is_refused_or_whole),
        cmocka_unit_test(test_unknown_type_is_refused),
        cmocka_unit_test(test_data_that_is_not_an_object_is_refused),
        cmocka_unit_test_setup(test_default_templates_are_valid, clear_env),
        cmocka_unit_test_setup(test_templates_with_every_placeholder_are_valid,
                               clear_env),
        cmocka_unit_test_setup(test_templates_without_placeholders_are_valid,
                               clear_env),
        cmocka_unit_test_setup(test_unknown_placeholder_names_the_setting,
                               clear_env),
        cmocka_unit_test_setup(test_every_bad_placeholder_is_reported,
                               clear_env),
        cmocka_unit_test_setup(test_empty_placeholder_is_refused, clear_env),
        cmocka_unit_test_setup(test_unterminated_placeholder_is_refused,
                               clear_env),
        cmocka_unit_test_setup(test_max_per_conversation_must_be_within_range,
                               clear_env),
        cmocka_unit_test_setup(test_settings_defaults, clear_env),
        cmocka_unit_test_setup(test_settings_from_the_environment, clear_env),
    };

    return cmocka_run_group_tests_name("unread_event", tests, clear_env, NULL);
}
