/*
 * Unit tests for hr_sns: telling SNS envelopes (research/aws.md §3) from
 * plain bodies, unwrapping a Notification's Message and attributes, and
 * refusing envelopes that hold no event.
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

#include "hr_sns.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* The event a publisher sent, and the same text as a JSON string. */
#define INNER_EVENT                                                   \
    "{\"specversion\":\"1.0\",\"id\":\"evt-1\",\"source\":\"/chat\"," \
    "\"type\":\"message.created\",\"subject\":\"conv-9\","            \
    "\"time\":\"2026-11-22T07:28:39Z\","                              \
    "\"datacontenttype\":\"application/json\","                       \
    "\"data\":{\"conversation_id\":\"c1\",\"text\":\"caf\xc3\xa9 "    \
    "\\\"ok\\\"\"}}"
#define INNER_EVENT_QUOTED                                               \
    "\"{\\\"specversion\\\":\\\"1.0\\\",\\\"id\\\":\\\"evt-1\\\","       \
    "\\\"source\\\":\\\"/chat\\\",\\\"type\\\":\\\"message.created\\\"," \
    "\\\"subject\\\":\\\"conv-9\\\","                                    \
    "\\\"time\\\":\\\"2026-11-22T07:28:39Z\\\","                         \
    "\\\"datacontenttype\\\":\\\"application/json\\\","                  \
    "\\\"data\\\":{\\\"conversation_id\\\":\\\"c1\\\","                  \
    "\\\"text\\\":\\\"caf\xc3\xa9 \\\\\\\"ok\\\\\\\"\\\"}}\""

/* What SQS holds for an SNS publish without raw delivery: pretty-printed
 * by SNS, Subject and MessageAttributes present. */
#define ENVELOPE_HEAD                                                      \
    "{\n"                                                                  \
    "  \"Type\" : \"Notification\",\n"                                     \
    "  \"MessageId\" : \"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\",\n"        \
    "  \"TopicArn\" : \"arn:aws:sns:us-east-1:123456789012:herald-in\",\n" \
    "  \"Subject\" : \"message.created\",\n"                               \
    "  \"Message\" : " INNER_EVENT_QUOTED ",\n"                            \
    "  \"Timestamp\" : \"2026-11-22T07:28:39.978Z\",\n"                    \
    "  \"SignatureVersion\" : \"1\",\n"                                    \
    "  \"Signature\" : \"EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNK"   \
    "WLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81"  \
    "mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=\",\n"     \
    "  \"SigningCertURL\" : \"https://sns.us-east-1.amazonaws.com/"        \
    "SimpleNotificationService-0000000000000000000000.pem\",\n"            \
    "  \"UnsubscribeURL\" : \"https://sns.us-east-1.amazonaws.com/?Action" \
    "=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:"     \
    "herald-in:c9135db0-26c4-47ec-8998-413945fb5a96\""

#define GOOD_ATTRIBUTES                                             \
    "  \"MessageAttributes\" : {\n"                                 \
    "    \"tenant\" : {\"Type\":\"String\",\"Value\":\"acme\"},\n"  \
    "    \"priority\" : {\"Type\":\"Number\",\"Value\":\"3.5\"},\n" \
    "    \"blob\" : {\"Type\":\"Binary\",\"Value\":\"AAEA/w==\"}\n" \
    "  }\n"

#define NOTIFICATION ENVELOPE_HEAD ",\n" GOOD_ATTRIBUTES "}"

#define MAX_ATTRS 8

/* What the attribute callback was given. */
struct seen {
    size_t n;
    struct {
        char name[64];
        unsigned char value[64];
        size_t len;
    } a[MAX_ATTRS];
};

static void
record_attr(void *opaque, const char *name, const void *value, size_t len)
{
    struct seen *s = opaque;

    assert_true(s->n < MAX_ATTRS);
    assert_true(len < sizeof(s->a[0].value));
    snprintf(s->a[s->n].name, sizeof(s->a[0].name), "%s", name);
    memcpy(s->a[s->n].value, value, len);
    s->a[s->n].len = len;
    s->n++;
}

/* The attribute @name the callback saw; it must have been seen once. */
static void assert_attr(const struct seen *s,
                        const char *name,
                        const void *value,
                        size_t len)
{
    size_t found = 0, at = 0;

    for (size_t i = 0; i < s->n; i++) {
        if (!strcmp(s->a[i].name, name)) {
            found++;
            at = i;
        }
    }
    if (found != 1)
        fail_msg("attribute '%s' seen %zu times", name, found);
    assert_int_equal(s->a[at].len, len);
    assert_memory_equal(s->a[at].value, value, len);
}

/* Unwrap the NUL-terminated @body. */
static enum hr_sns_result unwrap(const char *body,
                                 char **msg,
                                 size_t *msg_len,
                                 struct seen *seen,
                                 char *why,
                                 size_t why_size)
{
    return hr_sns_unwrap(body, strlen(body), msg, msg_len,
                         seen ? record_attr : NULL, seen, why, why_size);
}

/* @body is not an envelope: no message, no attribute. */
static void assert_not_envelope(const char *body)
{
    struct seen seen = {0};
    char *msg = (char *)(uintptr_t)1;
    char why[256] = "";
    size_t len;

    if (unwrap(body, &msg, &len, &seen, why, sizeof(why)) !=
        HR_SNS_NOT_ENVELOPE)
        fail_msg("taken for an envelope (%s): %s", why, body);
    assert_null(msg);
    assert_int_equal(seen.n, 0);
}

/* @body is an envelope refused for a reason holding @want. */
static void assert_refused(const char *body, const char *want)
{
    struct seen seen = {0};
    char *msg = (char *)(uintptr_t)1;
    char why[256] = "";
    size_t len;
    enum hr_sns_result res = unwrap(body, &msg, &len, &seen, why, sizeof(why));

    if (res != HR_SNS_REFUSED)
        fail_msg("got %d, want HR_SNS_REFUSED: %s", (int)res, body);
    assert_null(msg);
    if (!strstr(why, want))
        fail_msg("reason '%s' does not hold '%s'", why, want);
    /* Nothing is handed out from an envelope that is refused. */
    assert_int_equal(seen.n, 0);
    /* Without a callback it is refused all the same. */
    msg = (char *)(uintptr_t)1;
    res = unwrap(body, &msg, &len, NULL, why, sizeof(why));
    if (res != HR_SNS_REFUSED)
        fail_msg("without a callback: got %d, want HR_SNS_REFUSED: %s",
                 (int)res, body);
    assert_null(msg);
}

static void test_notification_gives_inner_event_and_attributes(void **state)
{
    static const unsigned char blob[] = {0x00, 0x01, 0x00, 0xff};
    struct seen seen = {0};
    char *msg = NULL, why[256] = "";
    size_t len = 0;
    json_t *ev;

    (void)state;
    assert_int_equal(unwrap(NOTIFICATION, &msg, &len, &seen, why, sizeof(why)),
                     HR_SNS_MESSAGE);
    assert_non_null(msg);
    assert_int_equal(len, strlen(INNER_EVENT));
    assert_string_equal(msg, INNER_EVENT);
    /* The inner message is the event itself, JSON again. */
    ev = json_loadb(msg, len, 0, NULL);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "id")), "evt-1");
    json_decref(ev);
    assert_int_equal(seen.n, 3);
    assert_attr(&seen, "tenant", "acme", 4);
    assert_attr(&seen, "priority", "3.5", 3);
    /* Binary values arrive decoded. */
    assert_attr(&seen, "blob", blob, sizeof(blob));
    free(msg);
}

static void test_notification_without_callback_gives_message(void **state)
{
    char *msg = NULL, why[256] = "";
    size_t len = 0;

    (void)state;
    assert_int_equal(unwrap(NOTIFICATION, &msg, &len, NULL, why, sizeof(why)),
                     HR_SNS_MESSAGE);
    assert_string_equal(msg, INNER_EVENT);
    assert_int_equal(len, strlen(INNER_EVENT));
    free(msg);
}

static void test_notification_without_subject_or_attributes(void **state)
{
    static const char body[] =
        "{\"Type\":\"Notification\",\"MessageId\":\"m-2\","
        "\"TopicArn\":\"arn:aws:sns:eu-west-1:123456789012:t\","
        "\"Message\":\"hello\",\"Timestamp\":\"2026-11-22T07:28:39.978Z\","
        "\"SignatureVersion\":\"2\",\"Signature\":\"c2ln\","
        "\"SigningCertURL\":\"https://sns.eu-west-1.amazonaws.com/x.pem\","
        "\"UnsubscribeURL\":\"https://sns.eu-west-1.amazonaws.com/?u\"}";
    struct seen seen = {0};
    char *msg = NULL, why[256] = "";
    size_t len = 0;

    (void)state;
    assert_int_equal(unwrap(body, &msg, &len, &seen, why, sizeof(why)),
                     HR_SNS_MESSAGE);
    assert_string_equal(msg, "hello");
    assert_int_equal(len, 5);
    assert_int_equal(seen.n, 0);
    free(msg);
}

static void test_notification_message_escapes_round_trip(void **state)
{
    /* Quotes, backslashes, control characters and non-ASCII text. */
    static const char inner[] = "line1\nline2\t\"q\" \\ back \xe2\x82\xac \x01";
    json_t *env = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:{s:s, s:s}}}", "Type", "Notification",
        "MessageId", "m-3", "TopicArn", "arn:aws:sns:us-east-1:1:t", "Message",
        inner, "MessageAttributes", "k", "Type", "String", "Value", "v \"w\"");
    char *body = json_dumps(env, JSON_COMPACT);
    struct seen seen = {0};
    char *msg = NULL, why[256] = "";
    size_t len = 0;

    (void)state;
    assert_non_null(body);
    assert_int_equal(unwrap(body, &msg, &len, &seen, why, sizeof(why)),
                     HR_SNS_MESSAGE);
    assert_int_equal(len, strlen(inner));
    assert_memory_equal(msg, inner, len);
    assert_int_equal(msg[len], '\0');
    assert_int_equal(seen.n, 1);
    assert_attr(&seen, "k", "v \"w\"", 5);
    free(msg);
    free(body);
    json_decref(env);
}

static void test_plain_cloudevent_is_not_envelope(void **state)
{
    (void)state;
    assert_not_envelope(INNER_EVENT);
    assert_not_envelope("{}");
    assert_not_envelope("");
    assert_not_envelope("plain text, not JSON");
    assert_not_envelope("[{\"Type\":\"Notification\",\"TopicArn\":\"a\","
                        "\"MessageId\":\"m\",\"Message\":\"x\"}]");
}

static void test_topicarn_only_in_nested_data_is_not_envelope(void **state)
{
    (void)state;
    /* A CloudEvent carrying an SNS notification in its data. */
    assert_not_envelope(
        "{\"specversion\":\"1.0\",\"id\":\"evt-2\",\"source\":\"/sns\","
        "\"type\":\"sns.forwarded\",\"data\":{\"Type\":\"Notification\","
        "\"MessageId\":\"m-1\",\"TopicArn\":\"arn:aws:sns:us-east-1:1:t\","
        "\"Message\":\"inner\"}}");
    /* "TopicArn" as a value, not a key. */
    assert_not_envelope("{\"Type\":\"Notification\",\"MessageId\":\"m\","
                        "\"field\":\"TopicArn\",\"Message\":\"x\"}");
}

static void test_envelope_members_must_be_strings(void **state)
{
    (void)state;
    assert_not_envelope("{\"Type\":\"Notification\",\"MessageId\":\"m\","
                        "\"TopicArn\":5,\"Message\":\"x\"}");
    assert_not_envelope("{\"Type\":\"Notification\",\"TopicArn\":\"a\","
                        "\"Message\":\"x\"}");
    assert_not_envelope("{\"Type\":null,\"MessageId\":\"m\","
                        "\"TopicArn\":\"a\",\"Message\":\"x\"}");
}

static void test_subscription_confirmation_is_refused(void **state)
{
    (void)state;
    assert_refused(
        "{\n"
        "  \"Type\" : \"SubscriptionConfirmation\",\n"
        "  \"MessageId\" : \"165545c9-2a5c-472c-8df2-7ff2be2b3b1b\",\n"
        "  \"Token\" : \"2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f"
        "6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d6"
        "09c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2"
        "785c03b0879594eeac82c01f235d0e717736\",\n"
        "  \"TopicArn\" : \"arn:aws:sns:us-east-1:123456789012:herald-in\",\n"
        "  \"Message\" : \"You have chosen to subscribe to the topic "
        "arn:aws:sns:us-east-1:123456789012:herald-in.\\nTo confirm the "
        "subscription, visit the SubscribeURL included in this message.\",\n"
        "  \"SubscribeURL\" : \"https://sns.us-east-1.amazonaws.com/?Action="
        "ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:"
        "herald-in&Token=2336412f37\",\n"
        "  \"Timestamp\" : \"2026-11-22T07:28:39.978Z\",\n"
        "  \"SignatureVersion\" : \"1\",\n"
        "  \"Signature\" : "
        "\"EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNK\",\n"
        "  \"SigningCertURL\" : \"https://sns.us-east-1.amazonaws.com/"
        "SimpleNotificationService-0000000000000000000000.pem\"\n"
        "}",
        "SubscriptionConfirmation");
    assert_refused("{\"Type\":\"UnsubscribeConfirmation\",\"MessageId\":\"m\","
                   "\"TopicArn\":\"a\",\"Message\":\"bye\"}",
                   "UnsubscribeConfirmation");
}

static void test_notification_without_string_message_is_refused(void **state)
{
    (void)state;
    /* A JSON payload that was not encoded as a string. */
    assert_refused("{\"Type\":\"Notification\",\"MessageId\":\"m\","
                   "\"TopicArn\":\"a\",\"Message\":{\"id\":\"evt-1\"}}",
                   "Message");
    assert_refused("{\"Type\":\"Notification\",\"MessageId\":\"m\","
                   "\"TopicArn\":\"a\",\"Message\":42}",
                   "Message");
    assert_refused("{\"Type\":\"Notification\",\"MessageId\":\"m\","
                   "\"TopicArn\":\"a\",\"Message\":null}",
                   "Message");
    assert_refused("{\"Type\":\"Notification\",\"MessageId\":\"m\","
                   "\"TopicArn\":\"a\"}",
                   "Message");
}

static void test_malformed_binary_attribute_is_refused(void **state)
{
    (void)state;
    /* A good attribute first: nothing is handed out all the same. */
    assert_refused(ENVELOPE_HEAD ",\n"
                                 "  \"MessageAttributes\" : {\n"
                                 "    \"tenant\" : {\"Type\":\"String\","
                                 "\"Value\":\"acme\"},\n"
                                 "    \"blob\" : {\"Type\":\"Binary\","
                                 "\"Value\":\"not base64!\"}\n"
                                 "  }\n}",
                   "blob");
    assert_refused(ENVELOPE_HEAD ",\"MessageAttributes\":{\"b\":{\"Type\":"
                                 "\"Binary\",\"Value\":\"Zg==Zm8=\"}}}",
                   "'b'");
    assert_refused(ENVELOPE_HEAD ",\"MessageAttributes\":{\"b\":{\"Type\":"
                                 "\"Binary\",\"Value\":\"Zm9\"}}}",
                   "'b'");
}

static void test_malformed_attributes_are_refused(void **state)
{
    (void)state;
    assert_refused(ENVELOPE_HEAD ",\"MessageAttributes\":[]}",
                   "MessageAttributes");
    assert_refused(ENVELOPE_HEAD ",\"MessageAttributes\":{\"n\":{\"Type\":"
                                 "\"String\"}}}",
                   "'n'");
    assert_refused(ENVELOPE_HEAD ",\"MessageAttributes\":{\"n\":{\"Type\":"
                                 "\"Number\",\"Value\":3}}}",
                   "'n'");
    assert_refused(ENVELOPE_HEAD ",\"MessageAttributes\":{\"n\":\"x\"}}",
                   "'n'");
}

static void test_invalid_json_mentioning_topicarn_is_not_envelope(void **state)
{
    (void)state;
    assert_not_envelope("{\"Type\":\"Notification\",\"TopicArn\":\"a\","
                        "\"MessageId\":\"m\",\"Message\":\"x\"");
    assert_not_envelope("{\"TopicArn\"");
    assert_not_envelope("{\"TopicArn\": oops}");
    assert_not_envelope("{\"Type\":\"Notification\",\"TopicArn\":\"a\","
                        "\"MessageId\":\"m\",\"Message\":\"x\"} trailing");
}

static void test_leading_white_space_before_brace(void **state)
{
    char body[sizeof(NOTIFICATION) + 8];
    char *msg = NULL, why[256] = "";
    size_t len = 0;

    (void)state;
    snprintf(body, sizeof(body), " \r\n\t%s\n", NOTIFICATION);
    assert_int_equal(unwrap(body, &msg, &len, NULL, why, sizeof(why)),
                     HR_SNS_MESSAGE);
    assert_string_equal(msg, INNER_EVENT);
    free(msg);
    /* Anything else before the brace: not an envelope. */
    snprintf(body, sizeof(body), "x%s", NOTIFICATION);
    assert_not_envelope(body);
    assert_not_envelope(" \n\t ");
}

static void test_only_len_bytes_are_read(void **state)
{
    static const char prefix[] = "{\"Type\":\"Notification\",\"MessageId\":"
                                 "\"m\",\"Message\":\"x\"}";
    char *buf = malloc(sizeof(NOTIFICATION) + 32);
    char *msg = NULL, why[256] = "";
    size_t len = 0;

    (void)state;
    /* An envelope followed by bytes that are not part of the body. */
    memcpy(buf, NOTIFICATION, strlen(NOTIFICATION));
    memcpy(buf + strlen(NOTIFICATION), "garbage", 7);
    assert_int_equal(hr_sns_unwrap(buf, strlen(NOTIFICATION), &msg, &len, NULL,
                                   NULL, why, sizeof(why)),
                     HR_SNS_MESSAGE);
    assert_string_equal(msg, INNER_EVENT);
    free(msg);
    /* "TopicArn" only past the end of the body. */
    memcpy(buf, prefix, strlen(prefix));
    memcpy(buf + strlen(prefix), "\"TopicArn\"", 10);
    msg = (char *)(uintptr_t)1;
    assert_int_equal(hr_sns_unwrap(buf, strlen(prefix), &msg, &len, NULL, NULL,
                                   why, sizeof(why)),
                     HR_SNS_NOT_ENVELOPE);
    assert_null(msg);
    /* "TopicArn" cut by the end of the body. */
    memcpy(buf, "{\"TopicArn\"", 11);
    assert_int_equal(
        hr_sns_unwrap(buf, 10, &msg, &len, NULL, NULL, why, sizeof(why)),
        HR_SNS_NOT_ENVELOPE);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notification_gives_inner_event_and_attributes),
        cmocka_unit_test(test_notification_without_callback_gives_message),
        cmocka_unit_test(test_notification_without_subject_or_attributes),
        cmocka_unit_test(test_notification_message_escapes_round_trip),
        cmocka_unit_test(test_plain_cloudevent_is_not_envelope),
        cmocka_unit_test(test_topicarn_only_in_nested_data_is_not_envelope),
        cmocka_unit_test(test_envelope_members_must_be_strings),
        cmocka_unit_test(test_subscription_confirmation_is_refused),
        cmocka_unit_test(test_notification_without_string_message_is_refused),
        cmocka_unit_test(test_malformed_binary_attribute_is_refused),
        cmocka_unit_test(test_malformed_attributes_are_refused),
        cmocka_unit_test(test_invalid_json_mentioning_topicarn_is_not_envelope),
        cmocka_unit_test(test_leading_white_space_before_brace),
        cmocka_unit_test(test_only_len_bytes_are_read),
    };

    return cmocka_run_group_tests_name("sns", tests, NULL, NULL);
}
