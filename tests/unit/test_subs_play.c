/*
 * Unit tests for subs_play: Pub/Sub push bodies built here for every
 * Google Play notification of research/subscriptions.md section 3.2
 * (their type and subtype keys checked against the default strategy
 * table), every error class, Google's reference envelope from
 * shared/vectors/googleplay (read at run time: $HERALD_SHARED_DIR, else
 * HX_SOURCE_DIR "/../shared"; skipped when missing), SubscriptionPurchaseV2
 * snapshots for every subscriptionState (section 3.4, 5.3) and the Play
 * Developer API URLs.
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

#include "harness.h"
#include "hr_base64.h"
#include "hr_compat.h"
#include "subs_play.h"
#include "subs_strategy.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define ENVELOPE "vectors/googleplay/rtdn-reference-envelope-example.json"

#define PKG        "com.example.app"
#define TOKEN      "tok-abc.DEF_123~xyz"
#define MSG_ID     "9876543210"
#define PUBLISH    "2026-01-02T03:04:05.678Z"
#define PUBLISH_MS INT64_C(1767323045678)
#define EVENT_MS   INT64_C(1767323045000)

/* 2026-03-01T00:00:00Z and one day before / after. */
#define EXPIRY     "2026-03-01T00:00:00Z"
#define EXPIRY_MS  INT64_C(1772323200000)
#define DAY_MS     INT64_C(86400000)
#define BEFORE_EXP (EXPIRY_MS - DAY_MS)
#define AFTER_EXP  (EXPIRY_MS + DAY_MS)

static const char *const allowed[] = {"com.example.other", PKG};

static struct {
    char path[1200];
    struct subs_table *table; /* the default strategy table */
} fx;

static int group_setup(void **state)
{
    const char *shared = getenv("HERALD_SHARED_DIR");
    char errstr[256];

    (void)state;
    snprintf(fx.path, sizeof(fx.path), "%s/" ENVELOPE,
             shared && *shared ? shared : HX_SOURCE_DIR "/../shared");
    fx.table = subs_table_new(NULL, errstr, sizeof(errstr));
    if (!fx.table) {
        fprintf(stderr, "test_subs_play: default table: %s\n", errstr);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    subs_table_free(fx.table);
    return 0;
}

/* ---- builders ----------------------------------------------------------- */

/* A push body whose message.data is the base64 of @data (a new
 * reference), with messageId, publishTime and attributes. */
static json_t *push_body(const char *data)
{
    char *b64 = hr_base64_encode(data, strlen(data), NULL);
    json_t *body =
        json_pack("{s:{s:s, s:s, s:s, s:{s:s}}, s:s}", "message", "data", b64,
                  "messageId", MSG_ID, "publishTime", PUBLISH, "attributes",
                  "key", "value", "subscription", "projects/p/subscriptions/s");

    free(b64);
    assert_non_null(body);
    return body;
}

/* A DeveloperNotification of PKG with the members @members ("" for
 * none), in a static buffer. */
static const char *notification(const char *members)
{
    static char buf[4096];

    snprintf(buf, sizeof(buf),
             "{\"version\":\"1.0\",\"packageName\":\"" PKG "\","
             "\"eventTimeMillis\":\"1767323045000\"%s%s}",
             *members ? "," : "", members);
    return buf;
}

/* subs_play_parse() of the push body carrying @data, allow-list above. */
static int parse_data(const char *data,
                      struct subs_play_notification *n,
                      const char **code,
                      char *errstr,
                      size_t errstr_size)
{
    json_t *body = push_body(data);
    int rc = subs_play_parse(body, allowed, HR_ARRAY_SIZE(allowed), n, code,
                             errstr, errstr_size);

    json_decref(body);
    return rc;
}

/* Expect @data to fail with @want_code and @want in the message. */
static void
expect_fail(const char *data, const char *want_code, const char *want)
{
    struct subs_play_notification n;
    const char *code = NULL;
    char errstr[512] = "";

    assert_int_equal(parse_data(data, &n, &code, errstr, sizeof(errstr)), -1);
    assert_non_null(code);
    assert_string_equal(code, want_code);
    if (!strstr(errstr, want))
        fail_msg("errstr '%s' does not mention '%s'", errstr, want);
}

/* Expect the body @body (a new reference, taken) to be malformed. */
static void expect_body_malformed(json_t *body, const char *want)
{
    struct subs_play_notification n;
    const char *code = NULL;
    char errstr[512] = "";

    assert_int_equal(subs_play_parse(body, allowed, HR_ARRAY_SIZE(allowed), &n,
                                     &code, errstr, sizeof(errstr)),
                     -1);
    json_decref(body);
    assert_non_null(code);
    assert_string_equal(code, "malformed");
    if (!strstr(errstr, want))
        fail_msg("errstr '%s' does not mention '%s'", errstr, want);
}

/* The common fields of a notification parsed from notification(). */
static void expect_common(const struct subs_play_notification *n)
{
    assert_string_equal(n->message_id, MSG_ID);
    assert_int_equal(n->publish_ms, PUBLISH_MS);
    assert_string_equal(n->package_name, PKG);
    assert_int_equal(n->event_ms, EVENT_MS);
}

/* Whether the default table has an entry for @n's (type, subtype). */
static bool in_table(const struct subs_play_notification *n)
{
    bool known = false;

    (void)subs_table_lookup(fx.table, SUBS_GOOGLEPLAY, n->type, n->subtype,
                            &known);
    return known;
}

/* ---- the reference envelope --------------------------------------------- */

static void test_reference_envelope(void **state)
{
    struct subs_play_notification n;
    const char *code = NULL;
    char errstr[512] = "";
    json_error_t jerr;
    json_t *body;
    json_t *message;
    const char *data = notification("\"testNotification\":{\"version\":"
                                    "\"1.0\"}");
    char *b64;

    (void)state;
    body = json_load_file(fx.path, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        print_message("skipped: Google Play vector '%s' not found "
                      "(set HERALD_SHARED_DIR): %s\n",
                      fx.path, jerr.text);
        skip();
    }
    assert_string_equal(
        json_string_value(json_object_get(body, "subscription")),
        "projects/myproject/subscriptions/mysubscription");
    /* SOURCE.md: data decodes to the schema text, which is not JSON: a
     * permanent error, with the envelope's fields still read for the log
     * line (no publishTime: 0). */
    assert_int_equal(
        subs_play_parse(body, NULL, 0, &n, &code, errstr, sizeof(errstr)), -1);
    assert_string_equal(code, "malformed");
    assert_non_null(strstr(errstr, "rtdn data is not JSON"));
    assert_string_equal(n.message_id, "136969346945");
    assert_int_equal(n.publish_ms, 0);
    assert_string_equal(n.package_name, "");

    /* The same envelope (attributes, no publishTime) around real data. */
    message = json_object_get(body, "message");
    b64 = hr_base64_encode(data, strlen(data), NULL);
    assert_int_equal(json_object_set_new(message, "data", json_string(b64)), 0);
    free(b64);
    assert_int_equal(subs_play_parse(body, allowed, HR_ARRAY_SIZE(allowed), &n,
                                     &code, errstr, sizeof(errstr)),
                     0);
    assert_null(code);
    assert_string_equal(n.message_id, "136969346945");
    assert_int_equal(n.publish_ms, 0);
    assert_string_equal(n.package_name, PKG);
    assert_int_equal(n.kind, SUBS_PLAY_TEST);
    json_decref(body);
}

/* ---- notifications ------------------------------------------------------ */

static void test_subscription_codes(void **state)
{
    static const int codes[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,
                                10, 11, 12, 13, 17, 18, 19, 20, 22};
    struct subs_play_notification n;
    const char *code = "unset";
    char members[512];
    char want[16];

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(codes); i++) {
        snprintf(members, sizeof(members),
                 "\"subscriptionNotification\":{\"version\":\"1.0\","
                 "\"notificationType\":%d,\"purchaseToken\":\"" TOKEN "\","
                 "\"subscriptionId\":\"monthly001\"}",
                 codes[i]);
        assert_int_equal(parse_data(notification(members), &n, &code, NULL, 0),
                         0);
        assert_null(code);
        expect_common(&n);
        assert_int_equal(n.kind, SUBS_PLAY_SUBSCRIPTION);
        assert_int_equal(n.code, codes[i]);
        assert_string_equal(n.purchase_token, TOKEN);
        assert_string_equal(n.product_id, "monthly001");
        assert_string_equal(n.order_id, "");
        assert_string_equal(n.type, "subscription");
        snprintf(want, sizeof(want), "%d", codes[i]);
        assert_string_equal(n.subtype, want);
        if (!in_table(&n))
            fail_msg("subscription code %d not in the default table", codes[i]);
    }
}

/* A code nobody assigned parses; the table reports it as unknown. */
static void test_subscription_unassigned_code(void **state)
{
    struct subs_play_notification n;

    (void)state;
    assert_int_equal(parse_data(notification("\"subscriptionNotification\":"
                                             "{\"notificationType\":21,"
                                             "\"purchaseToken\":\"t\"}"),
                                &n, NULL, NULL, 0),
                     0);
    assert_int_equal(n.code, 21);
    assert_string_equal(n.subtype, "21");
    assert_string_equal(n.product_id, "");
    assert_false(in_table(&n));
}

static void test_one_time(void **state)
{
    struct subs_play_notification n;
    char members[512];

    (void)state;
    for (int c = 1; c <= 2; c++) {
        snprintf(members, sizeof(members),
                 "\"oneTimeProductNotification\":{\"version\":\"1.0\","
                 "\"notificationType\":%d,\"purchaseToken\":\"" TOKEN "\","
                 "\"sku\":\"coins_100\"}",
                 c);
        assert_int_equal(parse_data(notification(members), &n, NULL, NULL, 0),
                         0);
        expect_common(&n);
        assert_int_equal(n.kind, SUBS_PLAY_ONE_TIME);
        assert_int_equal(n.code, c);
        assert_string_equal(n.purchase_token, TOKEN);
        assert_string_equal(n.product_id, "coins_100");
        assert_string_equal(n.type, "one_time_product");
        assert_string_equal(n.subtype, c == 1 ? "1" : "2");
        assert_true(in_table(&n));
    }
}

static void test_voided(void **state)
{
    struct subs_play_notification n;
    char members[512];
    char want[16];

    (void)state;
    for (int p = 1; p <= 2; p++) {
        for (int r = 1; r <= 2; r++) {
            snprintf(members, sizeof(members),
                     "\"voidedPurchaseNotification\":{\"purchaseToken\":"
                     "\"" TOKEN "\",\"orderId\":\"GPA.1234-5678-9012-34567\","
                     "\"productType\":%d,\"refundType\":%d}",
                     p, r);
            assert_int_equal(
                parse_data(notification(members), &n, NULL, NULL, 0), 0);
            expect_common(&n);
            assert_int_equal(n.kind, SUBS_PLAY_VOIDED);
            assert_int_equal(n.code, 0);
            assert_string_equal(n.purchase_token, TOKEN);
            assert_string_equal(n.order_id, "GPA.1234-5678-9012-34567");
            assert_string_equal(n.product_id, "");
            assert_int_equal(n.product_type, p);
            assert_int_equal(n.refund_type, r);
            assert_string_equal(n.type, "voided_purchase");
            snprintf(want, sizeof(want), "%d:%d", p, r);
            assert_string_equal(n.subtype, want);
            assert_true(in_table(&n));
        }
    }
}

static void test_test_notification(void **state)
{
    struct subs_play_notification n;

    (void)state;
    assert_int_equal(
        parse_data(notification("\"testNotification\":{\"version\":\"1.0\"}"),
                   &n, NULL, NULL, 0),
        0);
    expect_common(&n);
    assert_int_equal(n.kind, SUBS_PLAY_TEST);
    assert_int_equal(n.code, 0);
    assert_string_equal(n.purchase_token, "");
    assert_string_equal(n.type, "test");
    assert_string_equal(n.subtype, "");
    assert_true(in_table(&n));
}

/* eventTimeMillis: a string of digits, or a JSON integer. */
static void test_event_time_forms(void **state)
{
    static const struct {
        const char *value;
        int64_t ms; /* -1: malformed */
    } cases[] = {
        {"\"1767323045000\"", EVENT_MS},
        {"1767323045000", EVENT_MS},
        {"\"0\"", 0},
        {"\"9223372036854775807\"", INT64_MAX},
        {"\"9223372036854775808\"", -1},
        {"\"00000000000000000001\"", -1}, /* 20 digits */
        {"\"\"", -1},
        {"\"-1\"", -1},
        {"\"+1\"", -1},
        {"\" 1\"", -1},
        {"\"12a\"", -1},
        {"\"1.5\"", -1},
        {"-1", -1},
        {"1.767e12", -1},
        {"true", -1},
        {"null", -1},
    };
    struct subs_play_notification n;
    char data[512];

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(cases); i++) {
        snprintf(data, sizeof(data),
                 "{\"packageName\":\"" PKG "\",\"eventTimeMillis\":%s,"
                 "\"testNotification\":{}}",
                 cases[i].value);
        if (cases[i].ms < 0) {
            expect_fail(data, "malformed", "eventTimeMillis");
            continue;
        }
        assert_int_equal(parse_data(data, &n, NULL, NULL, 0), 0);
        assert_int_equal(n.event_ms, cases[i].ms);
    }
}

/* Pub/Sub's snake-case duplicates are read when the camel case is not. */
static void test_envelope_snake_case(void **state)
{
    const char *data = notification("\"testNotification\":{}");
    char *b64 = hr_base64_encode(data, strlen(data), NULL);
    json_t *body = json_pack("{s:{s:s, s:s, s:s}}", "message", "data", b64,
                             "message_id", MSG_ID, "publish_time", PUBLISH);
    struct subs_play_notification n;

    (void)state;
    free(b64);
    assert_int_equal(subs_play_parse(body, NULL, 0, &n, NULL, NULL, 0), 0);
    json_decref(body);
    expect_common(&n);
}

/* ---- errors ------------------------------------------------------------- */

static void test_malformed_envelope(void **state)
{
    char long_id[200];

    (void)state;
    memset(long_id, 'a', 128);
    long_id[128] = '\0';
    expect_body_malformed(json_array(), "not a JSON object");
    expect_body_malformed(json_pack("{s:s}", "subscription", "s"),
                          "no message");
    expect_body_malformed(json_pack("{s:s}", "message", "x"), "not an object");
    expect_body_malformed(json_pack("{s:{s:s}}", "message", "data", "e30="),
                          "messageId");
    expect_body_malformed(
        json_pack("{s:{s:s, s:s}}", "message", "data", "e30=", "messageId", ""),
        "messageId");
    expect_body_malformed(
        json_pack("{s:{s:s, s:i}}", "message", "data", "e30=", "messageId", 5),
        "messageId");
    expect_body_malformed(json_pack("{s:{s:s, s:s}}", "message", "data",
                                    "e30=", "messageId", long_id),
                          "messageId");
    expect_body_malformed(json_pack("{s:{s:s, s:s, s:s}}", "message", "data",
                                    "e30=", "messageId", "1", "publishTime",
                                    "yesterday"),
                          "publishTime");
    expect_body_malformed(json_pack("{s:{s:s, s:s, s:i}}", "message", "data",
                                    "e30=", "messageId", "1", "publishTime",
                                    17),
                          "publishTime");
    expect_body_malformed(json_pack("{s:{s:s}}", "message", "messageId", "1"),
                          "data is missing");
    expect_body_malformed(
        json_pack("{s:{s:s, s:i}}", "message", "messageId", "1", "data", 3),
        "data is not a string");
    expect_body_malformed(json_pack("{s:{s:s, s:s}}", "message", "messageId",
                                    "1", "data", "!!!!"),
                          "not base64");
    expect_body_malformed(
        json_pack("{s:{s:s, s:s}}", "message", "messageId", "1", "data", "e30"),
        "not base64");
}

static void test_malformed_data(void **state)
{
    char data[2048];
    char token[1100];

    (void)state;
    expect_fail("", "malformed", "not JSON");
    expect_fail("[1,2]", "malformed", "not a JSON object");
    expect_fail("{\"packageName\":", "malformed", "not JSON");
    expect_fail("{\"packageName\":\"" PKG "\",\"packageName\":\"x\"}",
                "malformed", "not JSON");
    expect_fail("{\"eventTimeMillis\":\"1\",\"testNotification\":{}}",
                "malformed", "packageName is missing");
    expect_fail("{\"packageName\":7,\"eventTimeMillis\":\"1\","
                "\"testNotification\":{}}",
                "malformed", "packageName");
    expect_fail("{\"packageName\":\"\",\"eventTimeMillis\":\"1\","
                "\"testNotification\":{}}",
                "malformed", "packageName");
    expect_fail("{\"packageName\":\"" PKG "\",\"testNotification\":{}}",
                "malformed", "eventTimeMillis is missing");
    /* Mutually exclusive members, known or not. */
    expect_fail(notification("\"testNotification\":{},"
                             "\"subscriptionNotification\":{}"),
                "malformed", "both");
    expect_fail(notification("\"subscriptionNotification\":"
                             "{\"notificationType\":4,\"purchaseToken\":\"t\"},"
                             "\"pendingRefundReviewNotification\":{}"),
                "malformed", "both");
    expect_fail(notification("\"subscriptionNotification\":[]"), "malformed",
                "not an object");
    expect_fail(notification("\"testNotification\":\"yes\""), "malformed",
                "not an object");
    /* Codes. */
    expect_fail(notification("\"subscriptionNotification\":"
                             "{\"notificationType\":\"4\","
                             "\"purchaseToken\":\"t\"}"),
                "malformed", "notificationType");
    expect_fail(
        notification("\"subscriptionNotification\":"
                     "{\"notificationType\":0,\"purchaseToken\":\"t\"}"),
        "malformed", "notificationType");
    expect_fail(notification("\"oneTimeProductNotification\":"
                             "{\"purchaseToken\":\"t\"}"),
                "malformed", "notificationType");
    expect_fail(notification("\"subscriptionNotification\":"
                             "{\"notificationType\":4.0,"
                             "\"purchaseToken\":\"t\"}"),
                "malformed", "notificationType");
    /* Tokens. */
    expect_fail(notification("\"subscriptionNotification\":"
                             "{\"notificationType\":4}"),
                "malformed", "subscriptionNotification.purchaseToken");
    expect_fail(notification("\"oneTimeProductNotification\":"
                             "{\"notificationType\":1,\"sku\":\"s\"}"),
                "malformed", "oneTimeProductNotification.purchaseToken");
    expect_fail(notification("\"voidedPurchaseNotification\":"
                             "{\"orderId\":\"o\",\"productType\":1,"
                             "\"refundType\":1}"),
                "malformed", "voidedPurchaseNotification.purchaseToken");
    expect_fail(notification("\"subscriptionNotification\":"
                             "{\"notificationType\":4,\"purchaseToken\":\"\"}"),
                "malformed", "purchaseToken");
    expect_fail(notification("\"subscriptionNotification\":"
                             "{\"notificationType\":4,\"purchaseToken\":5}"),
                "malformed", "purchaseToken");
    expect_fail(notification("\"subscriptionNotification\":"
                             "{\"notificationType\":4,\"purchaseToken\":"
                             "\"a\\u0000b\"}"),
                "malformed", "not JSON"); /* jansson refuses \u0000 */
    memset(token, 'x', 1024);
    token[1024] = '\0';
    snprintf(data, sizeof(data),
             "\"subscriptionNotification\":{\"notificationType\":4,"
             "\"purchaseToken\":\"%s\"}",
             token);
    expect_fail(notification(data), "malformed", "purchaseToken");
    token[1023] = '\0'; /* the longest that fits */
    snprintf(data, sizeof(data),
             "\"subscriptionNotification\":{\"notificationType\":4,"
             "\"purchaseToken\":\"%s\"}",
             token);
    {
        struct subs_play_notification n;

        assert_int_equal(parse_data(notification(data), &n, NULL, NULL, 0), 0);
        assert_int_equal(strlen(n.purchase_token), 1023);
    }
    /* Optional strings must still be strings. */
    expect_fail(notification("\"subscriptionNotification\":"
                             "{\"notificationType\":4,\"purchaseToken\":\"t\","
                             "\"subscriptionId\":1}"),
                "malformed", "subscriptionId");
    expect_fail(notification("\"oneTimeProductNotification\":"
                             "{\"notificationType\":1,\"purchaseToken\":\"t\","
                             "\"sku\":null}"),
                "malformed", "sku");
    expect_fail(notification("\"voidedPurchaseNotification\":"
                             "{\"purchaseToken\":\"t\",\"orderId\":1,"
                             "\"productType\":1,\"refundType\":1}"),
                "malformed", "orderId");
    expect_fail(notification("\"voidedPurchaseNotification\":"
                             "{\"purchaseToken\":\"t\",\"refundType\":1}"),
                "malformed", "productType");
    expect_fail(notification("\"voidedPurchaseNotification\":"
                             "{\"purchaseToken\":\"t\",\"productType\":1,"
                             "\"refundType\":\"2\"}"),
                "malformed", "refundType");
}

static void test_package_not_allowed(void **state)
{
    struct subs_play_notification n;
    const char *code = NULL;
    char errstr[256] = "";
    const char *data =
        "{\"packageName\":\"com.evil.app\",\"eventTimeMillis\":\"1\","
        "\"somethingNewNotification\":{}}";
    json_t *body = push_body(data);

    (void)state;
    /* The package is checked before the kind: not ours, whatever it is. */
    assert_int_equal(subs_play_parse(body, allowed, HR_ARRAY_SIZE(allowed), &n,
                                     &code, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(code, "package");
    assert_non_null(strstr(errstr, "'com.evil.app'"));
    assert_string_equal(n.package_name, "com.evil.app");
    assert_string_equal(n.message_id, MSG_ID);
    json_decref(body);

    /* No allow-list: any package. */
    body = push_body("{\"packageName\":\"com.evil.app\","
                     "\"eventTimeMillis\":\"1\",\"testNotification\":{}}");
    assert_int_equal(subs_play_parse(body, NULL, 0, &n, &code, NULL, 0), 0);
    assert_null(code);
    assert_string_equal(n.package_name, "com.evil.app");
    json_decref(body);
}

static void test_unknown_kind(void **state)
{
    struct subs_play_notification n;
    const char *code = NULL;
    char errstr[256] = "";

    (void)state;
    /* No member at all. */
    assert_int_equal(
        parse_data(notification(""), &n, &code, errstr, sizeof(errstr)), -1);
    assert_string_equal(code, "unknown_kind");
    assert_string_equal(n.type, "");
    assert_non_null(strstr(errstr, "no notification member"));
    expect_common(&n);

    /* A member that is not of the "...Notification" form is not a kind. */
    assert_int_equal(parse_data(notification("\"Notification\":{},"
                                             "\"PascalNotification\":{},"
                                             "\"snake_caseNotification\":{}"),
                                &n, &code, NULL, 0),
                     -1);
    assert_string_equal(code, "unknown_kind");
    assert_string_equal(n.type, "");

    /* The newer member of Google's reference: counted and acked. */
    assert_int_equal(parse_data(notification("\"pendingRefundReview"
                                             "Notification\":{\"version\":"
                                             "\"1.0\",\"purchaseToken\":\"t\","
                                             "\"notificationType\":2}"),
                                &n, &code, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(code, "unknown_kind");
    assert_non_null(strstr(errstr, "'pendingRefundReviewNotification'"));
    expect_common(&n);
    assert_int_equal(n.kind, SUBS_PLAY_UNKNOWN);
    assert_string_equal(n.type, "pending_refund_review");
    assert_int_equal(n.code, 2);
    assert_string_equal(n.subtype, "2");
    assert_string_equal(n.purchase_token, "t");
    assert_false(in_table(&n));

    /* Whatever its shape. */
    assert_int_equal(parse_data(notification("\"futureThing2Notification\":"
                                             "[1]"),
                                &n, &code, NULL, 0),
                     -1);
    assert_string_equal(code, "unknown_kind");
    assert_string_equal(n.type, "future_thing2");
    assert_int_equal(n.code, 0);
    assert_string_equal(n.subtype, "");

    /* Too long for a table key: unknown, no type. */
    assert_int_equal(parse_data(notification("\"aVeryLongAndUnexpectedMember"
                                             "NameNotification\":{}"),
                                &n, &code, NULL, 0),
                     -1);
    assert_string_equal(code, "unknown_kind");
    assert_string_equal(n.type, "");
}

/* ---- snapshots ---------------------------------------------------------- */

/* subs_play_snapshot_parse() of the JSON text @text. */
static int
snapshot(const char *text, int64_t now_ms, struct subs_play_snapshot *s)
{
    json_error_t jerr;
    json_t *purchase = json_loads(text, 0, &jerr);
    char errstr[256] = "";
    int rc;

    if (!purchase)
        fail_msg("bad test JSON: %s: %s", jerr.text, text);
    rc = subs_play_snapshot_parse(purchase, now_ms, s, errstr, sizeof(errstr));
    json_decref(purchase);
    return rc;
}

/* A purchase in @state with one auto-renewing line item expiring EXPIRY. */
static const char *purchase_in(const char *state)
{
    static char buf[1024];

    snprintf(buf, sizeof(buf),
             "{\"kind\":\"androidpublisher#subscriptionPurchaseV2\","
             "\"subscriptionState\":\"%s\",\"lineItems\":[{\"productId\":"
             "\"monthly001\",\"expiryTime\":\"" EXPIRY "\","
             "\"autoRenewingPlan\":{\"autoRenewEnabled\":true}}]}",
             state);
    return buf;
}

static void test_snapshot_states(void **state)
{
    static const struct {
        const char *google;
        const char *state; /* NULL: no entitlement */
        bool known;
        bool auto_renew;
    } cases[] = {
        {"SUBSCRIPTION_STATE_ACTIVE", "active", true, true},
        {"SUBSCRIPTION_STATE_IN_GRACE_PERIOD", "grace_period", true, true},
        {"SUBSCRIPTION_STATE_ON_HOLD", "on_hold", true, true},
        {"SUBSCRIPTION_STATE_PAUSED", "paused", true, true},
        {"SUBSCRIPTION_STATE_EXPIRED", "expired", true, true},
        {"SUBSCRIPTION_STATE_PENDING", NULL, true, true},
        {"SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED", "expired", true, true},
        {"SUBSCRIPTION_STATE_UNSPECIFIED", NULL, false, true},
        {"SUBSCRIPTION_STATE_SOMETHING_NEW", NULL, false, true},
        /* Canceled: auto-renew off, active until the expiry. */
        {"SUBSCRIPTION_STATE_CANCELED", "active", true, false},
    };
    struct subs_play_snapshot s;

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(cases); i++) {
        assert_int_equal(snapshot(purchase_in(cases[i].google), BEFORE_EXP, &s),
                         0);
        if (cases[i].state)
            assert_string_equal(s.state, cases[i].state);
        else
            assert_null(s.state);
        assert_int_equal(s.known_state, cases[i].known);
        assert_int_equal(s.auto_renew, cases[i].auto_renew);
        assert_string_equal(s.product_id, "monthly001");
        assert_int_equal(s.expires_ms, EXPIRY_MS);
        assert_string_equal(s.app_user_id, "");
        assert_string_equal(s.linked_token, "");
        assert_false(s.acknowledged);
        assert_false(s.test_purchase);
        assert_string_equal(s.latest_order_id, "");
    }
}

static void test_snapshot_canceled_expiry(void **state)
{
    struct subs_play_snapshot s;
    const char *canceled = purchase_in("SUBSCRIPTION_STATE_CANCELED");

    (void)state;
    assert_int_equal(snapshot(canceled, BEFORE_EXP, &s), 0);
    assert_string_equal(s.state, "active");
    assert_false(s.auto_renew);
    assert_int_equal(snapshot(canceled, EXPIRY_MS - 1, &s), 0);
    assert_string_equal(s.state, "active");
    assert_int_equal(snapshot(canceled, EXPIRY_MS, &s), 0);
    assert_string_equal(s.state, "expired");
    assert_int_equal(snapshot(canceled, AFTER_EXP, &s), 0);
    assert_string_equal(s.state, "expired");
    assert_true(s.known_state);
    /* Without any expiry there is no evidence of access. */
    assert_int_equal(
        snapshot("{\"subscriptionState\":\"SUBSCRIPTION_STATE_CANCELED\"}",
                 BEFORE_EXP, &s),
        0);
    assert_string_equal(s.state, "expired");
    assert_int_equal(s.expires_ms, 0);
    assert_string_equal(s.product_id, "");
}

/* Several line items: the latest expiry gives product, expiry, renewal. */
static void test_snapshot_line_items(void **state)
{
    struct subs_play_snapshot s;

    (void)state;
    assert_int_equal(
        snapshot("{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
                 "\"lineItems\":["
                 "{\"productId\":\"early\",\"expiryTime\":"
                 "\"2026-02-01T00:00:00Z\",\"autoRenewingPlan\":"
                 "{\"autoRenewEnabled\":true},\"latestSuccessfulOrderId\":"
                 "\"GPA.early\"},"
                 "{\"productId\":\"undated\"},"
                 "{\"productId\":\"latest\",\"expiryTime\":"
                 "\"2026-03-01T01:00:00.123456789+01:00\","
                 "\"autoRenewingPlan\":{},\"latestSuccessfulOrderId\":"
                 "\"GPA.latest\"},"
                 "{\"productId\":\"middle\",\"expiryTime\":"
                 "\"2026-02-15T00:00:00Z\",\"autoRenewingPlan\":"
                 "{\"autoRenewEnabled\":true}}]}",
                 BEFORE_EXP, &s),
        0);
    assert_string_equal(s.product_id, "latest");
    assert_int_equal(s.expires_ms, EXPIRY_MS + 123);
    /* autoRenewEnabled absent: proto3 JSON leaves out false. */
    assert_false(s.auto_renew);
    /* latestOrderId absent (deprecated): the item's order id. */
    assert_string_equal(s.latest_order_id, "GPA.latest");

    /* A tie: the first one; items without expiry lose to any with one. */
    assert_int_equal(
        snapshot("{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
                 "\"latestOrderId\":\"GPA.top\",\"lineItems\":["
                 "{\"productId\":\"undated\",\"autoRenewingPlan\":"
                 "{\"autoRenewEnabled\":false}},"
                 "{\"productId\":\"first\",\"expiryTime\":\"" EXPIRY "\","
                 "\"autoRenewingPlan\":{\"autoRenewEnabled\":true},"
                 "\"latestSuccessfulOrderId\":\"GPA.first\"},"
                 "{\"productId\":\"second\",\"expiryTime\":\"" EXPIRY "\"}]}",
                 BEFORE_EXP, &s),
        0);
    assert_string_equal(s.product_id, "first");
    assert_true(s.auto_renew);
    assert_string_equal(s.latest_order_id, "GPA.top");

    /* No item has an expiry: the first item. */
    assert_int_equal(
        snapshot("{\"subscriptionState\":\"SUBSCRIPTION_STATE_PENDING\","
                 "\"lineItems\":[{\"productId\":\"a\"},{\"productId\":\"b\"}]}",
                 BEFORE_EXP, &s),
        0);
    assert_string_equal(s.product_id, "a");
    assert_int_equal(s.expires_ms, 0);
    assert_null(s.state);
    assert_true(s.known_state);

    /* A prepaid plan never renews. */
    assert_int_equal(
        snapshot("{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
                 "\"lineItems\":[{\"productId\":\"pass\",\"expiryTime\":"
                 "\"" EXPIRY "\",\"prepaidPlan\":{\"allowExtendAfterTime\":"
                 "\"2026-02-20T00:00:00Z\"}}]}",
                 BEFORE_EXP, &s),
        0);
    assert_string_equal(s.product_id, "pass");
    assert_false(s.auto_renew);

    /* Empty lineItems. */
    assert_int_equal(
        snapshot("{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
                 "\"lineItems\":[]}",
                 BEFORE_EXP, &s),
        0);
    assert_string_equal(s.product_id, "");
    assert_int_equal(s.expires_ms, 0);
}

static void test_snapshot_fields(void **state)
{
    struct subs_play_snapshot s;

    (void)state;
    assert_int_equal(
        snapshot("{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
                 "\"lineItems\":[{\"productId\":\"monthly001\","
                 "\"expiryTime\":\"" EXPIRY "\",\"autoRenewingPlan\":"
                 "{\"autoRenewEnabled\":true}}],"
                 "\"externalAccountIdentifiers\":{\"externalAccountId\":"
                 "\"plain\",\"obfuscatedExternalAccountId\":\"user-42\","
                 "\"obfuscatedExternalProfileId\":\"profile-7\"},"
                 "\"linkedPurchaseToken\":\"old-token\","
                 "\"acknowledgementState\":"
                 "\"ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED\","
                 "\"testPurchase\":{},\"latestOrderId\":\"GPA.1-2-3..5\","
                 "\"canceledStateContext\":{\"userInitiatedCancellation\":{}},"
                 "\"startTime\":\"2025-12-01T00:00:00Z\"}",
                 BEFORE_EXP, &s),
        0);
    assert_string_equal(s.state, "active");
    assert_true(s.auto_renew);
    assert_string_equal(s.app_user_id, "user-42");
    assert_string_equal(s.linked_token, "old-token");
    assert_true(s.acknowledged);
    assert_true(s.test_purchase);
    assert_string_equal(s.latest_order_id, "GPA.1-2-3..5");

    /* Pending acknowledgement, no obfuscated id, no test purchase. */
    assert_int_equal(
        snapshot("{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
                 "\"externalAccountIdentifiers\":{\"externalAccountId\":"
                 "\"plain\"},\"acknowledgementState\":"
                 "\"ACKNOWLEDGEMENT_STATE_PENDING\"}",
                 BEFORE_EXP, &s),
        0);
    assert_string_equal(s.app_user_id, "");
    assert_false(s.acknowledged);
    assert_false(s.test_purchase);
    assert_int_equal(
        snapshot("{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
                 "\"acknowledgementState\":"
                 "\"ACKNOWLEDGEMENT_STATE_UNSPECIFIED\"}",
                 BEFORE_EXP, &s),
        0);
    assert_false(s.acknowledged);
}

static void test_snapshot_errors(void **state)
{
    static const char *const bad[] = {
        "[]",
        "{}",
        "{\"subscriptionState\":1}",
        "{\"subscriptionState\":null}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"lineItems\":{}}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"lineItems\":[1]}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"lineItems\":[{\"expiryTime\":\"tomorrow\"}]}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"lineItems\":[{\"expiryTime\":1772323200000}]}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"lineItems\":[{\"productId\":5}]}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"lineItems\":[{\"autoRenewingPlan\":true}]}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"lineItems\":[{\"autoRenewingPlan\":{\"autoRenewEnabled\":1}}]}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"externalAccountIdentifiers\":\"user\"}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"externalAccountIdentifiers\":{\"obfuscatedExternalAccountId\":1}}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"linkedPurchaseToken\":[]}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"acknowledgementState\":1}",
        "{\"subscriptionState\":\"SUBSCRIPTION_STATE_ACTIVE\","
        "\"latestOrderId\":false}",
    };
    struct subs_play_snapshot s;
    char errstr[256];
    char *text;
    json_t *purchase;
    char big[1100];

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(bad); i++)
        if (snapshot(bad[i], BEFORE_EXP, &s) != -1)
            fail_msg("accepted: %s", bad[i]);

    /* Messages name the field. */
    purchase = json_pack("{s:s, s:[{s:s}]}", "subscriptionState",
                         "SUBSCRIPTION_STATE_ACTIVE", "lineItems", "expiryTime",
                         "never");
    assert_int_equal(
        subs_play_snapshot_parse(purchase, 0, &s, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "lineItems[0].expiryTime"));
    json_decref(purchase);

    /* Too long for the struct. */
    memset(big, 't', 1024);
    big[1024] = '\0';
    purchase =
        json_pack("{s:s, s:s}", "subscriptionState",
                  "SUBSCRIPTION_STATE_ACTIVE", "linkedPurchaseToken", big);
    text = json_dumps(purchase, 0);
    json_decref(purchase);
    assert_int_equal(snapshot(text, 0, &s), -1);
    free(text);
    big[1023] = '\0';
    purchase =
        json_pack("{s:s, s:s}", "subscriptionState",
                  "SUBSCRIPTION_STATE_ACTIVE", "linkedPurchaseToken", big);
    assert_int_equal(subs_play_snapshot_parse(purchase, 0, &s, NULL, 0), 0);
    assert_int_equal(strlen(s.linked_token), 1023);
    json_decref(purchase);
}

/* ---- URLs --------------------------------------------------------------- */

static void test_urls(void **state)
{
    /* '/', '+', '=', ':', '%', ' ', '?', '#' and UTF-8 are escaped; the
     * unreserved - . _ ~ are not. */
    const char *token = "ab/c+d=e:f%g h?i#j\xc3\xa9-._~";
    const char *esc = "ab%2Fc%2Bd%3De%3Af%25g%20h%3Fi%23j%C3%A9-._~";
    char errstr[256];
    char want[512];
    char *url;

    (void)state;
    url = subs_play_get_url("https://androidpublisher.googleapis.com/", PKG,
                            token, errstr, sizeof(errstr));
    assert_non_null(url);
    snprintf(want, sizeof(want),
             "https://androidpublisher.googleapis.com/androidpublisher/v3/"
             "applications/" PKG "/purchases/subscriptionsv2/tokens/%s",
             esc);
    assert_string_equal(url, want);
    free(url);

    url = subs_play_ack_url("http://127.0.0.1:8080", PKG, "monthly 001/x",
                            token, errstr, sizeof(errstr));
    assert_non_null(url);
    snprintf(want, sizeof(want),
             "http://127.0.0.1:8080/androidpublisher/v3/applications/" PKG
             "/purchases/subscriptions/monthly%%20001%%2Fx/tokens/%s"
             ":acknowledge",
             esc);
    assert_string_equal(url, want);
    free(url);

    url = subs_play_get_url("https://h", "com.example.app", TOKEN, NULL, 0);
    assert_string_equal(url, "https://h/androidpublisher/v3/applications/"
                             "com.example.app/purchases/subscriptionsv2/"
                             "tokens/" TOKEN);
    free(url);
}

/* purchases.products.get: Google's ProductPurchase fields. */
static void test_product_purchase(void **state)
{
    static const struct {
        const char *json;
        const char *state;
        bool known, acked, test;
    } cases[] = {
        {"{\"kind\":\"androidpublisher#productPurchase\","
         "\"purchaseTimeMillis\":\"1767225600000\",\"purchaseState\":0,"
         "\"consumptionState\":0,\"orderId\":\"GPA.1-2-3\","
         "\"purchaseType\":0,\"acknowledgementState\":0,"
         "\"productId\":\"coins_100\","
         "\"obfuscatedExternalAccountId\":\"user-7\",\"quantity\":1}",
         "active", true, false, true},
        {"{\"purchaseState\":1,\"acknowledgementState\":1}", "revoked", true,
         true, false},
        {"{\"purchaseState\":2}", NULL, true, false, false},
        {"{\"purchaseState\":7,\"purchaseType\":1}", NULL, false, false, false},
    };
    static const char *const bad[] = {
        "[]",
        "{}",
        "{\"purchaseState\":\"0\"}",
        "{\"purchaseState\":0,\"acknowledgementState\":\"1\"}",
        "{\"purchaseState\":0,\"purchaseType\":null}",
        "{\"purchaseState\":0,\"orderId\":5}",
    };
    struct subs_play_product p;
    char errstr[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = json_loads(cases[i].json, 0, NULL);

        assert_non_null(j);
        assert_int_equal(subs_play_product_parse(j, &p, errstr, sizeof(errstr)),
                         0);
        if (cases[i].state)
            assert_string_equal(p.state, cases[i].state);
        else
            assert_null(p.state);
        assert_int_equal(p.known_state, cases[i].known);
        assert_int_equal(p.acknowledged, cases[i].acked);
        assert_int_equal(p.test_purchase, cases[i].test);
        json_decref(j);
    }
    {
        json_t *j = json_loads(cases[0].json, 0, NULL);

        assert_int_equal(subs_play_product_parse(j, &p, NULL, 0), 0);
        assert_string_equal(p.product_id, "coins_100");
        assert_string_equal(p.app_user_id, "user-7");
        assert_string_equal(p.order_id, "GPA.1-2-3");
        json_decref(j);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], 0, NULL);

        assert_non_null(j);
        errstr[0] = '\0';
        assert_int_equal(subs_play_product_parse(j, &p, errstr, sizeof(errstr)),
                         -1);
        assert_non_null(strstr(errstr, "product purchase"));
        json_decref(j);
    }
}

static void test_product_urls(void **state)
{
    char errstr[256];
    char *url;

    (void)state;
    url = subs_play_product_url("https://h/", PKG, "coins 100", TOKEN, false,
                                errstr, sizeof(errstr));
    assert_string_equal(url, "https://h/androidpublisher/v3/applications/" PKG
                             "/purchases/products/coins%20100/tokens/" TOKEN);
    free(url);
    url = subs_play_product_url("https://h", PKG, "coins", TOKEN, true, errstr,
                                sizeof(errstr));
    assert_string_equal(url, "https://h/androidpublisher/v3/applications/" PKG
                             "/purchases/products/coins/tokens/" TOKEN
                             ":acknowledge");
    free(url);
    assert_null(subs_play_product_url("https://h", PKG, "", TOKEN, false,
                                      errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "product id"));
}

static void test_url_errors(void **state)
{
    char errstr[256];

    (void)state;
    assert_null(subs_play_get_url(NULL, PKG, TOKEN, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "endpoint"));
    assert_null(subs_play_get_url("", PKG, TOKEN, errstr, sizeof(errstr)));
    assert_null(subs_play_get_url("//", PKG, TOKEN, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "endpoint"));
    assert_null(
        subs_play_get_url("https://h", "", TOKEN, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "package name"));
    assert_null(
        subs_play_get_url("https://h", PKG, NULL, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "purchase token"));
    assert_null(
        subs_play_get_url("https://h", PKG, "..", errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "dot segment"));
    assert_null(
        subs_play_ack_url("https://h", PKG, "", TOKEN, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "subscription id"));
    assert_null(subs_play_ack_url("https://h", ".", "s", TOKEN, NULL, 0));
    assert_null(subs_play_ack_url("https://h", PKG, "s", "", NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_envelope),
        cmocka_unit_test(test_subscription_codes),
        cmocka_unit_test(test_subscription_unassigned_code),
        cmocka_unit_test(test_one_time),
        cmocka_unit_test(test_voided),
        cmocka_unit_test(test_test_notification),
        cmocka_unit_test(test_event_time_forms),
        cmocka_unit_test(test_envelope_snake_case),
        cmocka_unit_test(test_malformed_envelope),
        cmocka_unit_test(test_malformed_data),
        cmocka_unit_test(test_package_not_allowed),
        cmocka_unit_test(test_unknown_kind),
        cmocka_unit_test(test_snapshot_states),
        cmocka_unit_test(test_snapshot_canceled_expiry),
        cmocka_unit_test(test_snapshot_line_items),
        cmocka_unit_test(test_snapshot_fields),
        cmocka_unit_test(test_snapshot_errors),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_product_purchase),
        cmocka_unit_test(test_product_urls),
    };

    return cmocka_run_group_tests_name("subs_play", tests, group_setup,
                                       group_teardown);
}
