/*
 * Unit tests for hr_event: CloudEvents 1.0 parsing in structured and binary
 * mode, serialization and derived ids.
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

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define VALID_EVENT                                                   \
    "{\"specversion\":\"1.0\",\"id\":\"evt-1\",\"source\":\"/chat\"," \
    "\"type\":\"message.created\",\"subject\":\"conv-9\","            \
    "\"time\":\"2026-11-22T07:28:39Z\","                              \
    "\"datacontenttype\":\"application/json\","                       \
    "\"data\":{\"conversation_id\":\"c1\",\"n\":3}}"

/* Parse a NUL-terminated structured event; errstr gets the reason. */
static int
parse_str(struct hr_event *ev, const char *s, char *errstr, size_t errstr_size)
{
    return hr_event_parse(ev, s, strlen(s), NULL, NULL, errstr, errstr_size);
}

/* Parse @json and expect failure with @want somewhere in the reason. */
static void assert_rejected(const char *json, const char *want)
{
    struct hr_event ev;
    char errstr[256] = "";

    if (parse_str(&ev, json, errstr, sizeof(errstr)) == 0) {
        hr_event_release(&ev);
        fail_msg("accepted: %s", json);
    }
    if (!strstr(errstr, want))
        fail_msg("for %s: got '%s', want '%s'", json, errstr, want);
    assert_null(ev.root);
    assert_null(ev.id);
    assert_null(ev.data);
}

/* VALID_EVENT with @key removed (@value NULL) or replaced by @value. */
static char *event_with(const char *key, json_t *value)
{
    json_t *root = json_loads(VALID_EVENT, 0, NULL);
    char *out;

    assert_non_null(root);
    if (value)
        assert_int_equal(json_object_set_new(root, key, value), 0);
    else
        assert_int_equal(json_object_del(root, key), 0);
    out = json_dumps(root, JSON_COMPACT);
    assert_non_null(out);
    json_decref(root);
    return out;
}

static void test_structured_event_parses_all_attributes(void **state)
{
    struct hr_event ev;
    char errstr[128] = "";

    (void)state;
    assert_int_equal(parse_str(&ev, VALID_EVENT, errstr, sizeof(errstr)), 0);
    assert_string_equal(errstr, "");
    assert_string_equal(ev.specversion, "1.0");
    assert_string_equal(ev.id, "evt-1");
    assert_string_equal(ev.source, "/chat");
    assert_string_equal(ev.type, "message.created");
    assert_string_equal(ev.subject, "conv-9");
    assert_string_equal(ev.time, "2026-11-22T07:28:39Z");
    assert_string_equal(ev.datacontenttype, "application/json");
    assert_true(json_is_object(ev.data));
    assert_string_equal(
        json_string_value(json_object_get(ev.data, "conversation_id")), "c1");
    assert_int_equal(json_integer_value(json_object_get(ev.data, "n")), 3);
    assert_non_null(ev.root);
    hr_event_release(&ev);
    assert_null(ev.root);
    assert_null(ev.id);
}

static void
test_structured_event_optional_attributes_may_be_absent(void **state)
{
    static const char json[] = "{\"specversion\":\"1.0\",\"id\":\"x\","
                               "\"source\":\"s\",\"type\":\"t\"}";
    struct hr_event ev;
    char errstr[128];

    (void)state;
    assert_int_equal(parse_str(&ev, json, errstr, sizeof(errstr)), 0);
    assert_string_equal(ev.id, "x");
    assert_null(ev.subject);
    assert_null(ev.time);
    assert_null(ev.datacontenttype);
    assert_null(ev.data);
    hr_event_release(&ev);
}

static void test_structured_event_data_may_be_any_json(void **state)
{
    static const char *const datas[] = {"\"text\"", "42", "null", "[1,2]",
                                        "true"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(datas) / sizeof(datas[0]); i++) {
        json_t *want = json_loads(datas[i], JSON_DECODE_ANY, NULL);
        char *json = event_with("data", json_incref(want));
        struct hr_event ev;
        char errstr[128];

        assert_int_equal(parse_str(&ev, json, errstr, sizeof(errstr)), 0);
        assert_non_null(ev.data);
        assert_true(json_equal(ev.data, want));
        hr_event_release(&ev);
        json_decref(want);
        free(json);
    }
}

static void test_structured_event_missing_attribute_is_rejected(void **state)
{
    static const char *const keys[] = {"specversion", "id", "source", "type"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char *json = event_with(keys[i], NULL);
        char want[64];

        snprintf(want, sizeof(want), "missing attribute '%s'", keys[i]);
        assert_rejected(json, want);
        free(json);
    }
}

static void test_structured_event_empty_attribute_is_rejected(void **state)
{
    static const char *const keys[] = {"specversion", "id", "source", "type"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char *json = event_with(keys[i], json_string(""));
        char want[64];

        snprintf(want, sizeof(want), "attribute '%s' must not be empty",
                 keys[i]);
        assert_rejected(json, want);
        free(json);
    }
}

static void test_structured_event_mistyped_attribute_is_rejected(void **state)
{
    static const char *const keys[] = {
        "specversion", "id",   "source",          "type",
        "subject",     "time", "datacontenttype", "dataschema"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *values[] = {json_integer(42), json_array(), json_object(),
                            json_true()};
        size_t j;

        for (j = 0; j < sizeof(values) / sizeof(values[0]); j++) {
            char *json = event_with(keys[i], values[j]);
            char want[64];

            snprintf(want, sizeof(want), "attribute '%s' must be a string",
                     keys[i]);
            assert_rejected(json, want);
            free(json);
        }
    }
}

static void test_structured_event_wrong_specversion_is_rejected(void **state)
{
    static const char *const versions[] = {"0.3", "1", "1.0.0", "2.0", " 1.0"};
    size_t i;
    char *json;

    (void)state;
    for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        json = event_with("specversion", json_string(versions[i]));
        assert_rejected(json, "unsupported specversion");
        free(json);
    }
    json = event_with("specversion", json_real(1.0));
    assert_rejected(json, "attribute 'specversion' must be a string");
    free(json);
}

/* The CloudEvents specification's own example (JSON format, section 5):
 * "subject": null is the same as no subject. */
static void test_null_attribute_is_absent(void **state)
{
    static const char example[] =
        "{\"specversion\":\"1.0\",\"type\":\"com.example.someevent\","
        "\"source\":\"/mycontext\",\"subject\":null,"
        "\"id\":\"C234-1234-1234\",\"time\":\"2018-04-05T17:31:00Z\","
        "\"comexampleextension1\":\"value\","
        "\"comexampleothervalue\":5,"
        "\"datacontenttype\":\"application/json\","
        "\"data\":{\"appinfoA\":\"abc\",\"appinfoB\":123,"
        "\"appinfoC\":true}}";
    struct hr_event ev;
    char errstr[256] = "";

    (void)state;
    assert_int_equal(parse_str(&ev, example, errstr, sizeof(errstr)), 0);
    assert_string_equal(ev.id, "C234-1234-1234");
    assert_null(ev.subject);
    assert_null(json_object_get(ev.root, "subject"));
    assert_int_equal(json_integer_value(json_object_get(ev.data, "appinfoB")),
                     123);
    hr_event_release(&ev);
}

static void test_null_optional_attributes_are_absent(void **state)
{
    static const char *const keys[] = {"subject",         "time",
                                       "datacontenttype", "dataschema",
                                       "data_base64",     "someextension"};

    (void)state;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char *json = event_with(keys[i], json_null());
        struct hr_event ev;
        char errstr[256] = "";

        if (parse_str(&ev, json, errstr, sizeof(errstr)) < 0)
            fail_msg("%s: null refused: %s", keys[i], errstr);
        assert_null(json_object_get(ev.root, keys[i]));
        assert_non_null(ev.data);
        hr_event_release(&ev);
        free(json);
    }
}

static void test_null_required_attribute_is_missing(void **state)
{
    static const char *const keys[] = {"specversion", "id", "source", "type"};

    (void)state;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char *json = event_with(keys[i], json_null());
        char want[64];

        snprintf(want, sizeof(want), "missing attribute '%s'", keys[i]);
        assert_rejected(json, want);
        free(json);
    }
}

/* An event with data_base64 @b64 and datacontenttype @ct (NULL: none). */
static char *base64_event(const char *b64, const char *ct)
{
    json_t *root = json_loads(VALID_EVENT, 0, NULL);
    char *out;

    assert_non_null(root);
    json_object_del(root, "data");
    json_object_del(root, "datacontenttype");
    if (ct)
        json_object_set_new(root, "datacontenttype", json_string(ct));
    json_object_set_new(root, "data_base64", json_string(b64));
    out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

static void test_data_base64_with_json_type_is_decoded(void **state)
{
    static const char *const types[] = {
        "application/json", "application/json; charset=utf-8", "text/json",
        "application/vnd.example+json", "APPLICATION/JSON"};

    (void)state;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char *json = base64_event("e30=", types[i]);
        struct hr_event ev;
        char errstr[256] = "";

        assert_int_equal(parse_str(&ev, json, errstr, sizeof(errstr)), 0);
        assert_true(json_is_object(ev.data));
        assert_int_equal(json_object_size(ev.data), 0);
        assert_null(ev.data_base64);
        hr_event_release(&ev);
        free(json);
    }
    {
        /* {"n": 3} */
        char *json = base64_event("eyJuIjogM30=", "application/json");
        struct hr_event ev;
        char errstr[256] = "";

        assert_int_equal(parse_str(&ev, json, errstr, sizeof(errstr)), 0);
        assert_int_equal(json_integer_value(json_object_get(ev.data, "n")), 3);
        hr_event_release(&ev);
        free(json);
    }
}

static void test_data_base64_with_other_type_is_kept(void **state)
{
    static const char *const types[] = {"text/plain", "application/xml",
                                        "application/octet-stream", NULL};

    (void)state;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char *json = base64_event("aGVsbG8=", types[i]);
        struct hr_event ev;
        char errstr[256] = "";

        assert_int_equal(parse_str(&ev, json, errstr, sizeof(errstr)), 0);
        assert_null(ev.data);
        assert_string_equal(ev.data_base64, "aGVsbG8=");
        hr_event_release(&ev);
        free(json);
    }
}

static void test_bad_data_base64_is_rejected(void **state)
{
    char *json;

    (void)state;
    json = base64_event("not base64!", "application/json");
    assert_rejected(json, "data_base64 is not valid base64");
    free(json);
    json = base64_event("aGVsbG8=", "application/json"); /* "hello" */
    assert_rejected(json, "data_base64 is not valid json");
    free(json);
    json = event_with("data_base64", json_string("e30="));
    assert_rejected(json, "data and data_base64 are both given");
    free(json);
    json = base64_event("e30=", "application/json");
    {
        json_t *root = json_loads(json, 0, NULL);

        free(json);
        json_object_set_new(root, "data_base64", json_integer(1));
        json = json_dumps(root, JSON_COMPACT);
        json_decref(root);
    }
    assert_rejected(json, "attribute 'data_base64' must be a string");
    free(json);
}

static void test_parse_json_takes_its_own_reference(void **state)
{
    json_t *obj = json_loads(VALID_EVENT, 0, NULL);
    struct hr_event ev;
    char errstr[256] = "";

    (void)state;
    json_object_set_new(obj, "dataschema", json_string("https://x/s.json"));
    assert_int_equal(hr_event_parse_json(&ev, obj, errstr, sizeof(errstr)), 0);
    json_decref(obj);
    assert_string_equal(ev.id, "evt-1");
    assert_string_equal(ev.dataschema, "https://x/s.json");
    hr_event_release(&ev);
    obj = json_array();
    assert_int_equal(hr_event_parse_json(&ev, obj, errstr, sizeof(errstr)), -1);
    json_decref(obj);
    assert_string_equal(errstr, "event is not a json object");
}

static void test_json_content_types(void **state)
{
    (void)state;
    assert_true(hr_event_is_json_type("application/json"));
    assert_true(hr_event_is_json_type("application/cloudevents+json"));
    assert_true(hr_event_is_json_type("text/json ; charset=utf-8"));
    assert_false(hr_event_is_json_type(NULL));
    assert_false(hr_event_is_json_type("text/plain"));
    assert_false(hr_event_is_json_type("application/jsonx"));
    assert_false(hr_event_is_json_type("json"));
}

static void test_invalid_json_is_rejected(void **state)
{
    (void)state;
    assert_rejected("{\"specversion\":\"1.0\",", "invalid json: ");
    assert_rejected("{\"id\": }", "invalid json: ");
    assert_rejected("", "invalid json: ");
    assert_rejected("{} trailing", "invalid json: ");
    assert_rejected("{\n\"a\": nope}", "at line 2");
}

static void test_invalid_utf8_is_rejected(void **state)
{
    static const char *const bad[] = {
        "{\"specversion\":\"1.0\",\"id\":\"\xff\",\"source\":\"s\","
        "\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"\xc3\",\"source\":\"s\","
        "\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"\xed\xa0\x80\",\"source\":\"s\","
        "\"type\":\"t\"}",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_rejected(bad[i], "invalid json: ");
    /* An escaped NUL would cut the borrowed C string short. */
    assert_rejected("{\"specversion\":\"1.0\",\"id\":\"a\\u0000b\","
                    "\"source\":\"s\",\"type\":\"t\"}",
                    "invalid json: ");
}

static void test_non_object_json_is_rejected(void **state)
{
    static const char *const values[] = {"[]", "[1,2]", "\"evt\"",
                                         "42", "null",  "true"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        assert_rejected(values[i], "event is not a json object");
}

static void test_too_large_payload_is_rejected(void **state)
{
    size_t size = HR_EVENT_MAX_BYTES + 1;
    size_t vlen = strlen(VALID_EVENT);
    struct hr_event ev;
    char errstr[128] = "";
    char *buf, want[64];

    (void)state;
    buf = malloc(size);
    assert_non_null(buf);
    /* A valid event padded with whitespace: exactly the limit is fine. */
    memcpy(buf, VALID_EVENT, vlen);
    memset(buf + vlen, ' ', size - vlen);
    assert_int_equal(hr_event_parse(&ev, buf, HR_EVENT_MAX_BYTES, NULL, NULL,
                                    errstr, sizeof(errstr)),
                     0);
    assert_string_equal(ev.id, "evt-1");
    hr_event_release(&ev);

    assert_int_equal(
        hr_event_parse(&ev, buf, size, NULL, NULL, errstr, sizeof(errstr)), -1);
    snprintf(want, sizeof(want), "payload too large: %zu bytes", size);
    assert_string_equal(errstr, want);
    assert_null(ev.root);
    free(buf);
}

static void test_release_is_safe_on_zeroed_event(void **state)
{
    struct hr_event ev;

    (void)state;
    memset(&ev, 0, sizeof(ev));
    hr_event_release(&ev);
    hr_event_release(&ev);
    assert_null(ev.root);
}

/* A fake Kafka message: headers as name/value pairs, values not
 * NUL-terminated where it matters. */
struct fake_header {
    const char *name;
    const char *value;
    size_t len;
};

struct fake_msg {
    struct fake_header headers[8];
    size_t n;
};

static void
fake_add(struct fake_msg *msg, const char *name, const char *value, size_t len)
{
    assert_true(msg->n < sizeof(msg->headers) / sizeof(msg->headers[0]));
    msg->headers[msg->n].name = name;
    msg->headers[msg->n].value = value;
    msg->headers[msg->n].len = len;
    msg->n++;
}

static const char *fake_get_header(void *opaque, const char *name, size_t *len)
{
    const struct fake_msg *msg = opaque;
    size_t i;

    for (i = 0; i < msg->n; i++) {
        if (strcmp(msg->headers[i].name, name) == 0) {
            *len = msg->headers[i].len;
            return msg->headers[i].value;
        }
    }
    return NULL;
}

/*
 * Header values are sliced out of one buffer so none of them is
 * NUL-terminated: "1.0evt-7/pushpush.requesteduser-12026-...".
 */
static const char header_bytes[] = "1.0evt-7/pushpush.requesteduser-1"
                                   "2026-11-22T07:28:39.123Z";

static void fake_binary_msg(struct fake_msg *msg, int with_subject)
{
    const char *p = header_bytes;

    memset(msg, 0, sizeof(*msg));
    fake_add(msg, "ce_specversion", p, 3);
    fake_add(msg, "ce_id", p + 3, 5);
    fake_add(msg, "ce_source", p + 8, 5);
    fake_add(msg, "ce_type", p + 13, 14);
    if (with_subject)
        fake_add(msg, "ce_subject", p + 27, 6);
    fake_add(msg, "ce_time", p + 33, 24);
}

static void test_binary_event_parses_headers(void **state)
{
    static const char payload[] = "{\"user_id\":\"u1\",\"title\":\"hi\"}";
    struct fake_msg msg;
    struct hr_event ev;
    char errstr[128] = "";

    (void)state;
    fake_binary_msg(&msg, 1);
    assert_int_equal(hr_event_parse(&ev, payload, strlen(payload),
                                    fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     0);
    assert_string_equal(ev.specversion, "1.0");
    assert_string_equal(ev.id, "evt-7");
    assert_string_equal(ev.source, "/push");
    assert_string_equal(ev.type, "push.requested");
    assert_string_equal(ev.subject, "user-1");
    assert_string_equal(ev.time, "2026-11-22T07:28:39.123Z");
    assert_null(ev.datacontenttype);
    assert_true(json_is_object(ev.data));
    assert_string_equal(json_string_value(json_object_get(ev.data, "title")),
                        "hi");
    hr_event_release(&ev);
}

static void test_binary_event_without_subject(void **state)
{
    static const char payload[] = "[1,2,3]";
    struct fake_msg msg;
    struct hr_event ev;
    char errstr[128] = "";

    (void)state;
    fake_binary_msg(&msg, 0);
    assert_int_equal(hr_event_parse(&ev, payload, strlen(payload),
                                    fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     0);
    assert_string_equal(ev.id, "evt-7");
    assert_null(ev.subject);
    assert_true(json_is_array(ev.data));
    assert_int_equal(json_array_size(ev.data), 3);
    hr_event_release(&ev);
}

static void test_binary_event_scalar_payload_is_data(void **state)
{
    static const char payload[] = "\"plain\"";
    struct fake_msg msg;
    struct hr_event ev;
    char errstr[128] = "";

    (void)state;
    fake_binary_msg(&msg, 0);
    assert_int_equal(hr_event_parse(&ev, payload, strlen(payload),
                                    fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     0);
    assert_string_equal(json_string_value(ev.data), "plain");
    hr_event_release(&ev);
}

static void test_binary_event_empty_payload_has_no_data(void **state)
{
    struct fake_msg msg;
    struct hr_event ev;
    char errstr[128] = "";

    (void)state;
    fake_binary_msg(&msg, 1);
    assert_int_equal(hr_event_parse(&ev, NULL, 0, fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     0);
    assert_string_equal(ev.id, "evt-7");
    assert_null(ev.data);
    hr_event_release(&ev);
}

static void test_binary_event_non_json_payload_is_rejected(void **state)
{
    static const char payload[] = "hello, not json";
    struct fake_msg msg;
    struct hr_event ev;
    char errstr[128] = "";

    (void)state;
    fake_binary_msg(&msg, 1);
    assert_int_equal(hr_event_parse(&ev, payload, strlen(payload),
                                    fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "invalid json: "));
    assert_null(ev.root);
}

static void test_binary_event_missing_header_is_rejected(void **state)
{
    static const char *const names[] = {"ce_specversion", "ce_source",
                                        "ce_type"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct fake_msg msg;
        struct hr_event ev;
        char errstr[128] = "", want[64];
        size_t j;

        fake_binary_msg(&msg, 1);
        for (j = 0; j < msg.n; j++) {
            if (strcmp(msg.headers[j].name, names[i]) == 0)
                msg.headers[j].name = "x-other";
        }
        assert_int_equal(hr_event_parse(&ev, "{}", 2, fake_get_header, &msg,
                                        errstr, sizeof(errstr)),
                         -1);
        snprintf(want, sizeof(want), "missing header '%s'", names[i]);
        assert_string_equal(errstr, want);
        assert_null(ev.root);
    }
}

static void test_binary_event_bad_header_is_rejected(void **state)
{
    struct fake_msg msg;
    struct hr_event ev;
    char errstr[128] = "";

    (void)state;
    fake_binary_msg(&msg, 1);
    msg.headers[0].value = "0.3";
    assert_int_equal(hr_event_parse(&ev, "{}", 2, fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "unsupported specversion"));

    fake_binary_msg(&msg, 1);
    msg.headers[1].len = 0; /* ce_id */
    assert_int_equal(hr_event_parse(&ev, "{}", 2, fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "header 'ce_id' must not be empty");

    fake_binary_msg(&msg, 1);
    msg.headers[1].value = "ev\0t7";
    assert_int_equal(hr_event_parse(&ev, "{}", 2, fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "header 'ce_id' contains a nul byte");

    fake_binary_msg(&msg, 1);
    msg.headers[4].value = "\xff\xfe"; /* ce_subject */
    msg.headers[4].len = 2;
    assert_int_equal(hr_event_parse(&ev, "{}", 2, fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "header 'ce_subject' is not valid utf-8");
    assert_null(ev.root);
}

static void test_getter_without_ce_id_uses_structured_mode(void **state)
{
    struct fake_msg msg;
    struct hr_event ev;
    char errstr[128] = "";

    (void)state;
    memset(&msg, 0, sizeof(msg));
    fake_add(&msg, "ce_type", "ignored", 7);
    assert_int_equal(hr_event_parse(&ev, VALID_EVENT, strlen(VALID_EVENT),
                                    fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     0);
    assert_string_equal(ev.type, "message.created");
    hr_event_release(&ev);
}

static void test_binary_too_large_is_rejected_first(void **state)
{
    struct fake_msg msg;
    struct hr_event ev;
    char errstr[128] = "";

    (void)state;
    fake_binary_msg(&msg, 1);
    /* The size check must come before the payload is touched. */
    assert_int_equal(hr_event_parse(&ev, "{}", (size_t)HR_EVENT_MAX_BYTES * 4,
                                    fake_get_header, &msg, errstr,
                                    sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "payload too large: 4194304 bytes");
}

static void test_serialize_round_trips_through_parse(void **state)
{
    json_t *data = json_pack("{s:s, s:i, s:[s]}", "user_id", "u1", "count", 4,
                             "tags", "a\nb");
    struct hr_event ev;
    char errstr[128] = "";
    size_t len = 0;
    char *out;
    const char *keys[] = {
        "\"specversion\"", "\"id\"",   "\"source\"",          "\"type\"",
        "\"subject\"",     "\"time\"", "\"datacontenttype\"", "\"data\""};
    const char *prev = NULL;
    size_t i;

    (void)state;
    assert_non_null(data);
    out = hr_event_serialize("evt-2", "/unread", "unread.changed", "u1", data,
                             &len);
    data = NULL; /* owned by hr_event_serialize() */
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    assert_null(strchr(out, '\n'));
    assert_null(strstr(out, ", "));
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *at = strstr(out, keys[i]);

        assert_non_null(at);
        assert_true(at > prev);
        prev = at;
    }

    assert_int_equal(
        hr_event_parse(&ev, out, len, NULL, NULL, errstr, sizeof(errstr)), 0);
    assert_string_equal(ev.specversion, "1.0");
    assert_string_equal(ev.id, "evt-2");
    assert_string_equal(ev.source, "/unread");
    assert_string_equal(ev.type, "unread.changed");
    assert_string_equal(ev.subject, "u1");
    assert_string_equal(ev.datacontenttype, "application/json");
    assert_non_null(ev.time);
    assert_int_equal(strlen(ev.time), 24); /* YYYY-MM-DDTHH:MM:SS.mmmZ */
    assert_int_equal(ev.time[10], 'T');
    assert_int_equal(ev.time[23], 'Z');
    assert_int_equal(json_integer_value(json_object_get(ev.data, "count")), 4);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(ev.data, "tags"), 0)),
        "a\nb");
    hr_event_release(&ev);
    free(out);
}

static void test_serialize_without_subject(void **state)
{
    struct hr_event ev;
    char errstr[128] = "";
    size_t len = 0;
    char *out;

    (void)state;
    out = hr_event_serialize("evt-3", "/s", "t", NULL, json_integer(7), &len);
    assert_non_null(out);
    assert_null(strstr(out, "subject"));
    assert_int_equal(
        hr_event_parse(&ev, out, len, NULL, NULL, errstr, sizeof(errstr)), 0);
    assert_null(ev.subject);
    assert_int_equal(json_integer_value(ev.data), 7);
    hr_event_release(&ev);
    free(out);
}

static void test_serialize_failure_frees_data(void **state)
{
    size_t len = 0;

    (void)state;
    /* Invalid UTF-8 in id: NULL, and the data must not leak (ASan). */
    assert_null(hr_event_serialize("\xff", "/s", "t", NULL,
                                   json_pack("{s:s}", "k", "v"), &len));
    assert_null(hr_event_serialize("id", "/s", NULL, "x", json_array(), &len));
}

static void assert_is_uuid(const char *id)
{
    size_t i;

    assert_int_equal(strlen(id), 36);
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(id[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", id[i]));
    }
    assert_int_equal(id[14], '5');           /* version */
    assert_non_null(strchr("89ab", id[19])); /* RFC 4122 variant */
}

static void test_derive_id_is_a_uuid(void **state)
{
    static const char *const parts[] = {"evt-1", "rule", "0"};
    char out[37];

    (void)state;
    assert_ptr_equal(hr_event_derive_id(out, parts, 3), out);
    assert_is_uuid(out);
    /* Pinned: SHA-256("evt-1\0rule\0" "0"), version and variant set. */
    assert_string_equal(out, "293f911e-b329-50be-907c-ca84c8dd84e9");
    hr_event_derive_id(out, NULL, 0);
    assert_is_uuid(out);
    assert_string_equal(out, "e3b0c442-98fc-5c14-9afb-f4c8996fb924");
}

static void test_derive_id_is_stable(void **state)
{
    static const char *const parts[] = {"evt-1", "rule", "0"};
    char a[37], b[37];

    (void)state;
    hr_event_derive_id(a, parts, 3);
    hr_event_derive_id(b, parts, 3);
    assert_string_equal(a, b);
}

static void test_derive_id_differs_by_each_part(void **state)
{
    const char *parts[] = {"evt-1", "rule", "0"};
    const char *changed[] = {"evt-2", "rule2", "1"};
    char base[37], other[37];
    size_t i;

    (void)state;
    hr_event_derive_id(base, parts, 3);
    for (i = 0; i < 3; i++) {
        const char *saved = parts[i];

        parts[i] = changed[i];
        hr_event_derive_id(other, parts, 3);
        assert_string_not_equal(base, other);
        parts[i] = saved;
    }
    hr_event_derive_id(other, parts, 2);
    assert_string_not_equal(base, other);
}

static void test_derive_id_depends_on_part_boundaries(void **state)
{
    static const char *const ab_c[] = {"ab", "c"};
    static const char *const a_bc[] = {"a", "bc"};
    static const char *const abc[] = {"abc"};
    static const char *const abc_empty[] = {"abc", ""};
    char x[37], y[37], z[37], w[37];

    (void)state;
    hr_event_derive_id(x, ab_c, 2);
    hr_event_derive_id(y, a_bc, 2);
    hr_event_derive_id(z, abc, 1);
    hr_event_derive_id(w, abc_empty, 2);
    assert_string_not_equal(x, y);
    assert_string_not_equal(x, z);
    assert_string_not_equal(y, z);
    assert_string_not_equal(z, w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structured_event_parses_all_attributes),
        cmocka_unit_test(
            test_structured_event_optional_attributes_may_be_absent),
        cmocka_unit_test(test_structured_event_data_may_be_any_json),
        cmocka_unit_test(test_structured_event_missing_attribute_is_rejected),
        cmocka_unit_test(test_structured_event_empty_attribute_is_rejected),
        cmocka_unit_test(test_structured_event_mistyped_attribute_is_rejected),
        cmocka_unit_test(test_structured_event_wrong_specversion_is_rejected),
        cmocka_unit_test(test_null_attribute_is_absent),
        cmocka_unit_test(test_null_optional_attributes_are_absent),
        cmocka_unit_test(test_null_required_attribute_is_missing),
        cmocka_unit_test(test_data_base64_with_json_type_is_decoded),
        cmocka_unit_test(test_data_base64_with_other_type_is_kept),
        cmocka_unit_test(test_bad_data_base64_is_rejected),
        cmocka_unit_test(test_parse_json_takes_its_own_reference),
        cmocka_unit_test(test_json_content_types),
        cmocka_unit_test(test_invalid_json_is_rejected),
        cmocka_unit_test(test_invalid_utf8_is_rejected),
        cmocka_unit_test(test_non_object_json_is_rejected),
        cmocka_unit_test(test_too_large_payload_is_rejected),
        cmocka_unit_test(test_release_is_safe_on_zeroed_event),
        cmocka_unit_test(test_binary_event_parses_headers),
        cmocka_unit_test(test_binary_event_without_subject),
        cmocka_unit_test(test_binary_event_scalar_payload_is_data),
        cmocka_unit_test(test_binary_event_empty_payload_has_no_data),
        cmocka_unit_test(test_binary_event_non_json_payload_is_rejected),
        cmocka_unit_test(test_binary_event_missing_header_is_rejected),
        cmocka_unit_test(test_binary_event_bad_header_is_rejected),
        cmocka_unit_test(test_getter_without_ce_id_uses_structured_mode),
        cmocka_unit_test(test_binary_too_large_is_rejected_first),
        cmocka_unit_test(test_serialize_round_trips_through_parse),
        cmocka_unit_test(test_serialize_without_subject),
        cmocka_unit_test(test_serialize_failure_frees_data),
        cmocka_unit_test(test_derive_id_is_a_uuid),
        cmocka_unit_test(test_derive_id_is_stable),
        cmocka_unit_test(test_derive_id_differs_by_each_part),
        cmocka_unit_test(test_derive_id_depends_on_part_boundaries),
    };

    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
