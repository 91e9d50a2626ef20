/*
 * Unit tests for subs_strategy: the default table covers every App Store
 * notification type and subtype and every Google Play code of the
 * research (shared/research/subscriptions.md 2.1, 3.2), unknown
 * combinations are ignored and reported as unknown, "*" falls back,
 * overrides replace and add entries, bad overrides name their path, and
 * strategies map onto SPEC's entitlement states.
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

#include "hr_compat.h"
#include "subs_strategy.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

struct expect {
    const char *type;
    const char *subtype; /* NULL: none */
    enum subs_strategy s;
};

/* Apple's 23 NotificationTypeV2 values with every subtype of section 2.1
 * (NULL where a type has none or may come without one). */
static const struct expect apple[] = {
    {"SUBSCRIBED", "INITIAL_BUY", SUBS_ACTIVATE},
    {"SUBSCRIBED", "RESUBSCRIBE", SUBS_ACTIVATE},
    {"DID_RENEW", NULL, SUBS_RENEW},
    {"DID_RENEW", "BILLING_RECOVERY", SUBS_RENEW},
    {"DID_FAIL_TO_RENEW", NULL, SUBS_BILLING_RETRY},
    {"DID_FAIL_TO_RENEW", "GRACE_PERIOD", SUBS_GRACE_PERIOD},
    {"GRACE_PERIOD_EXPIRED", NULL, SUBS_BILLING_RETRY},
    {"EXPIRED", "VOLUNTARY", SUBS_EXPIRE},
    {"EXPIRED", "BILLING_RETRY", SUBS_EXPIRE},
    {"EXPIRED", "PRICE_INCREASE", SUBS_EXPIRE},
    {"EXPIRED", "PRODUCT_NOT_FOR_SALE", SUBS_EXPIRE},
    {"DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED", SUBS_AUTO_RENEW_ON},
    {"DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", SUBS_AUTO_RENEW_OFF},
    {"DID_CHANGE_RENEWAL_PREF", "UPGRADE", SUBS_ACTIVATE},
    {"DID_CHANGE_RENEWAL_PREF", "DOWNGRADE", SUBS_NOTICE},
    {"DID_CHANGE_RENEWAL_PREF", NULL, SUBS_NOTICE},
    {"OFFER_REDEEMED", "INITIAL_BUY", SUBS_ACTIVATE},
    {"OFFER_REDEEMED", "RESUBSCRIBE", SUBS_ACTIVATE},
    {"OFFER_REDEEMED", "UPGRADE", SUBS_ACTIVATE},
    {"OFFER_REDEEMED", "DOWNGRADE", SUBS_NOTICE},
    {"OFFER_REDEEMED", NULL, SUBS_NOTICE},
    {"PRICE_INCREASE", "PENDING", SUBS_NOTICE},
    {"PRICE_INCREASE", "ACCEPTED", SUBS_NOTICE},
    {"REFUND", NULL, SUBS_REFUND},
    {"REFUND_DECLINED", NULL, SUBS_NOTICE},
    {"REFUND_REVERSED", NULL, SUBS_ACTIVATE},
    {"REVOKE", NULL, SUBS_REVOKE},
    {"CONSUMPTION_REQUEST", NULL, SUBS_NOTICE},
    {"RENEWAL_EXTENDED", NULL, SUBS_RENEW},
    {"RENEWAL_EXTENSION", "SUMMARY", SUBS_NOTICE},
    {"RENEWAL_EXTENSION", "FAILURE", SUBS_NOTICE},
    {"ONE_TIME_CHARGE", NULL, SUBS_ACTIVATE},
    {"TEST", NULL, SUBS_NOTICE},
    {"EXTERNAL_PURCHASE_TOKEN", "UNREPORTED", SUBS_IGNORE},
    {"EXTERNAL_PURCHASE_TOKEN", "CREATED", SUBS_IGNORE},
    {"EXTERNAL_PURCHASE_TOKEN", "ACTIVE_TOKEN_REMINDER", SUBS_IGNORE},
    {"RESCIND_CONSENT", NULL, SUBS_NOTICE},
    {"METADATA_UPDATE", NULL, SUBS_NOTICE},
    {"MIGRATION", NULL, SUBS_NOTICE},
    {"PRICE_CHANGE", NULL, SUBS_NOTICE},
};

/* Every Google code of section 3.2. */
static const struct expect google[] = {
    {"subscription", "1", SUBS_RENEW},
    {"subscription", "2", SUBS_RENEW},
    {"subscription", "3", SUBS_AUTO_RENEW_OFF},
    {"subscription", "4", SUBS_ACTIVATE},
    {"subscription", "5", SUBS_ON_HOLD},
    {"subscription", "6", SUBS_GRACE_PERIOD},
    {"subscription", "7", SUBS_AUTO_RENEW_ON},
    {"subscription", "8", SUBS_NOTICE},
    {"subscription", "9", SUBS_RENEW},
    {"subscription", "10", SUBS_PAUSE},
    {"subscription", "11", SUBS_NOTICE},
    {"subscription", "12", SUBS_REVOKE},
    {"subscription", "13", SUBS_EXPIRE},
    {"subscription", "17", SUBS_NOTICE},
    {"subscription", "18", SUBS_AUTO_RENEW_OFF},
    {"subscription", "19", SUBS_NOTICE},
    {"subscription", "20", SUBS_EXPIRE},
    {"subscription", "22", SUBS_NOTICE},
    {"one_time_product", "1", SUBS_ACTIVATE},
    {"one_time_product", "2", SUBS_NOTICE},
    {"voided_purchase", "1:1", SUBS_REFUND},
    {"voided_purchase", "1:2", SUBS_NOTICE},
    {"voided_purchase", "2:1", SUBS_REFUND},
    {"voided_purchase", "2:2", SUBS_NOTICE},
    {"test", NULL, SUBS_NOTICE},
};

/* A table from the JSON text @json (NULL: no override); fails the test
 * when it is refused. */
static struct subs_table *table_from(const char *json)
{
    char errstr[512] = "";
    json_error_t jerr;
    json_t *o = NULL;
    struct subs_table *t;

    if (json) {
        o = json_loads(json, 0, &jerr);
        if (!o)
            fail_msg("bad test JSON: %s", jerr.text);
    }
    t = subs_table_new(o, errstr, sizeof(errstr));
    json_decref(o);
    if (!t)
        fail_msg("subs_table_new: %s", errstr);
    return t;
}

static void check_expect(const struct subs_table *t,
                         enum subs_provider p,
                         const struct expect *e)
{
    bool known = false;
    enum subs_strategy s = subs_table_lookup(t, p, e->type, e->subtype, &known);

    if (!known || s != e->s)
        fail_msg("%s %s/%s: %s known=%d, expected %s", subs_provider_name(p),
                 e->type, e->subtype ? e->subtype : "(none)",
                 subs_strategy_name(s), (int)known, subs_strategy_name(e->s));
}

static void every_apple_type_and_subtype_is_known(void **state)
{
    struct subs_table *t = table_from(NULL);
    json_t *def = subs_table_default_json();
    json_t *appstore = json_object_get(def, "appstore");

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(apple); i++) {
        check_expect(t, SUBS_APPSTORE, &apple[i]);
        assert_non_null(json_object_get(appstore, apple[i].type));
    }
    /* "" and NULL are both "no subtype" */
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE, "DID_RENEW", "", NULL),
                     SUBS_RENEW);
    /* exactly the 23 types of Apple's model, nothing else */
    assert_int_equal(json_object_size(appstore), 23);
    json_decref(def);
    subs_table_free(t);
}

static void every_google_code_is_known(void **state)
{
    struct subs_table *t = table_from(NULL);
    json_t *def = subs_table_default_json();

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(google); i++)
        check_expect(t, SUBS_GOOGLEPLAY, &google[i]);
    assert_int_equal(json_object_size(json_object_get(
                         json_object_get(def, "googleplay"), "subscription")),
                     18);
    json_decref(def);
    subs_table_free(t);
}

static void unknown_combinations_are_ignored(void **state)
{
    static const struct {
        enum subs_provider p;
        const char *type, *subtype;
    } cases[] = {
        {SUBS_APPSTORE, "SOMETHING_NEW", NULL},
        {SUBS_APPSTORE, "DID_RENEW", "SOMETHING_NEW"},
        {SUBS_APPSTORE, "DID_FAIL_TO_RENEW", "BILLING_RECOVERY"},
        {SUBS_APPSTORE, "REFUND", "X"},
        {SUBS_APPSTORE, "did_renew", NULL},
        {SUBS_APPSTORE, "", NULL},
        {SUBS_APPSTORE, "subscription", "4"},
        {SUBS_APPSTORE, NULL, NULL},
        {SUBS_GOOGLEPLAY, "subscription", "14"},
        {SUBS_GOOGLEPLAY, "subscription", "15"},
        {SUBS_GOOGLEPLAY, "subscription", "16"},
        {SUBS_GOOGLEPLAY, "subscription", "21"},
        {SUBS_GOOGLEPLAY, "subscription", "23"},
        {SUBS_GOOGLEPLAY, "subscription", "0"},
        {SUBS_GOOGLEPLAY, "subscription", "04"},
        {SUBS_GOOGLEPLAY, "subscription", ""},
        {SUBS_GOOGLEPLAY, "subscription", NULL},
        {SUBS_GOOGLEPLAY, "one_time_product", "3"},
        {SUBS_GOOGLEPLAY, "voided_purchase", "3:1"},
        {SUBS_GOOGLEPLAY, "voided_purchase", "1"},
        {SUBS_GOOGLEPLAY, "test", "1"},
        {SUBS_GOOGLEPLAY, "pending_refund_review", NULL},
        {SUBS_GOOGLEPLAY, "DID_RENEW", NULL},
        {(enum subs_provider)7, "DID_RENEW", NULL},
    };
    struct subs_table *t = table_from(NULL);

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(cases); i++) {
        bool known = true;
        enum subs_strategy s = subs_table_lookup(t, cases[i].p, cases[i].type,
                                                 cases[i].subtype, &known);

        if (known || s != SUBS_IGNORE)
            fail_msg("case %zu (%s/%s): %s known=%d", i,
                     cases[i].type ? cases[i].type : "NULL",
                     cases[i].subtype ? cases[i].subtype : "NULL",
                     subs_strategy_name(s), (int)known);
    }
    /* known may be NULL; a NULL table knows nothing */
    assert_int_equal(
        subs_table_lookup(t, SUBS_APPSTORE, "SOMETHING_NEW", NULL, NULL),
        SUBS_IGNORE);
    assert_int_equal(subs_table_lookup(NULL, SUBS_APPSTORE, "TEST", NULL, NULL),
                     SUBS_IGNORE);
    subs_table_free(t);
}

static void star_matches_any_other_subtype(void **state)
{
    struct subs_table *t =
        table_from("{\"appstore\": {\"DID_RENEW\": {\"*\": \"notice\"},"
                   "  \"FUTURE\": {\"*\": \"expire\", \"X\": \"renew\"}},"
                   " \"googleplay\": {\"subscription\": {\"*\": \"notice\"}}}");
    bool known = false;

    (void)state;
    /* default stars */
    assert_int_equal(
        subs_table_lookup(t, SUBS_APPSTORE, "SUBSCRIBED", "NEW_KIND", &known),
        SUBS_ACTIVATE);
    assert_true(known);
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE, "EXPIRED", "", &known),
                     SUBS_EXPIRE);
    assert_true(known);
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE,
                                       "EXTERNAL_PURCHASE_TOKEN", "NEW",
                                       &known),
                     SUBS_IGNORE);
    assert_true(known);
    /* listed subtypes win over "*" */
    assert_int_equal(
        subs_table_lookup(t, SUBS_APPSTORE, "DID_RENEW", NULL, &known),
        SUBS_RENEW);
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE, "DID_RENEW",
                                       "BILLING_RECOVERY", &known),
                     SUBS_RENEW);
    known = false;
    assert_int_equal(
        subs_table_lookup(t, SUBS_APPSTORE, "DID_RENEW", "OTHER", &known),
        SUBS_NOTICE);
    assert_true(known);
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE, "FUTURE", "X", &known),
                     SUBS_RENEW);
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE, "FUTURE", "", &known),
                     SUBS_EXPIRE);
    assert_true(known);
    /* a Google star takes unassigned codes; assigned ones keep theirs */
    assert_int_equal(
        subs_table_lookup(t, SUBS_GOOGLEPLAY, "subscription", "21", &known),
        SUBS_NOTICE);
    assert_true(known);
    assert_int_equal(
        subs_table_lookup(t, SUBS_GOOGLEPLAY, "subscription", "4", &known),
        SUBS_ACTIVATE);
    /* "*" is a key of its own type only */
    assert_int_equal(
        subs_table_lookup(t, SUBS_GOOGLEPLAY, "one_time_product", "9", &known),
        SUBS_IGNORE);
    assert_false(known);
    subs_table_free(t);
}

static void overrides_replace_and_add_entries(void **state)
{
    struct subs_table *t = table_from(
        "{\"appstore\": {\"DID_RENEW\": {\"BILLING_RECOVERY\": \"notice\"},"
        "  \"REFUND\": {\"\": \"revoke\"},"
        "  \"EXTERNAL_PURCHASE_TOKEN\": {\"CREATED\": \"notice\"},"
        "  \"NEW_TYPE_2030\": {\"\": \"notice\", \"SOME_SUB\": \"expire\"}},"
        " \"googleplay\": {\"subscription\": {\"3\": \"notice\", \"23\": "
        "\"renew\"},"
        "  \"voided_purchase\": {\"2:2\": \"refund\"},"
        "  \"pending_refund_review\": {\"\": \"notice\"},"
        "  \"test\": {\"\": \"ignore\"}}}");
    bool known = false;

    (void)state;
    /* replaced */
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE, "DID_RENEW",
                                       "BILLING_RECOVERY", &known),
                     SUBS_NOTICE);
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE, "REFUND", "", &known),
                     SUBS_REVOKE);
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE,
                                       "EXTERNAL_PURCHASE_TOKEN", "CREATED",
                                       &known),
                     SUBS_NOTICE);
    assert_int_equal(
        subs_table_lookup(t, SUBS_GOOGLEPLAY, "subscription", "3", &known),
        SUBS_NOTICE);
    assert_int_equal(
        subs_table_lookup(t, SUBS_GOOGLEPLAY, "voided_purchase", "2:2", &known),
        SUBS_REFUND);
    /* an explicit ignore is known */
    known = false;
    assert_int_equal(subs_table_lookup(t, SUBS_GOOGLEPLAY, "test", "", &known),
                     SUBS_IGNORE);
    assert_true(known);
    /* the rest of an overridden type stays */
    assert_int_equal(
        subs_table_lookup(t, SUBS_APPSTORE, "DID_RENEW", NULL, &known),
        SUBS_RENEW);
    assert_int_equal(
        subs_table_lookup(t, SUBS_GOOGLEPLAY, "subscription", "4", &known),
        SUBS_ACTIVATE);
    assert_int_equal(
        subs_table_lookup(t, SUBS_GOOGLEPLAY, "voided_purchase", "2:1", &known),
        SUBS_REFUND);
    /* added */
    known = false;
    assert_int_equal(
        subs_table_lookup(t, SUBS_APPSTORE, "NEW_TYPE_2030", NULL, &known),
        SUBS_NOTICE);
    assert_true(known);
    assert_int_equal(subs_table_lookup(t, SUBS_APPSTORE, "NEW_TYPE_2030",
                                       "SOME_SUB", &known),
                     SUBS_EXPIRE);
    assert_int_equal(
        subs_table_lookup(t, SUBS_GOOGLEPLAY, "subscription", "23", &known),
        SUBS_RENEW);
    known = false;
    assert_int_equal(subs_table_lookup(t, SUBS_GOOGLEPLAY,
                                       "pending_refund_review", NULL, &known),
                     SUBS_NOTICE);
    assert_true(known);
    /* everything else still has its default */
    for (size_t i = 0; i < HR_ARRAY_SIZE(apple); i++) {
        if (strcmp(apple[i].type, "DID_RENEW") &&
            strcmp(apple[i].type, "REFUND") &&
            strcmp(apple[i].type, "EXTERNAL_PURCHASE_TOKEN"))
            check_expect(t, SUBS_APPSTORE, &apple[i]);
    }
    subs_table_free(t);
}

static void effective_table_is_json(void **state)
{
    struct subs_table *t = table_from(NULL);
    json_t *def = subs_table_default_json();
    json_t *eff = subs_table_json(t);
    struct subs_table *t2;
    char errstr[256];
    json_t *eff2;

    (void)state;
    assert_non_null(def);
    assert_non_null(eff);
    assert_true(json_equal(def, eff));
    /* the default is a valid override, and changes nothing */
    t2 = subs_table_new(def, errstr, sizeof(errstr));
    assert_non_null(t2);
    eff2 = subs_table_json(t2);
    assert_true(json_equal(def, eff2));
    json_decref(eff2);
    subs_table_free(t2);
    /* an empty override too */
    subs_table_free(table_from("{}"));
    subs_table_free(table_from("{\"appstore\": {}, \"googleplay\": {}}"));
    subs_table_free(table_from("{\"appstore\": {\"TEST\": {}}}"));
    /* an override shows in the effective table */
    subs_table_free(t);
    t = table_from("{\"appstore\": {\"TEST\": {\"\": \"ignore\"}}}");
    eff2 = subs_table_json(t);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(eff2, "appstore"), "TEST"), "")),
        "ignore");
    json_decref(eff2);
    json_decref(eff);
    json_decref(def);
    subs_table_free(t);
    subs_table_free(NULL);
}

static void bad_overrides_name_their_path(void **state)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"[]", "strategies: an object"},
        {"\"x\"", "strategies: an object"},
        {"{\"apple\": {}}", "strategies.apple: unknown provider (appstore, "
                            "googleplay)"},
        {"{\"appstore\": []}", "strategies.appstore: an object mapping types"},
        {"{\"appstore\": {\"DID_RENEW\": \"renew\"}}",
         "strategies.appstore.DID_RENEW: an object mapping subtypes"},
        {"{\"appstore\": {\"DID_RENEW\": {\"BILLING_RECOVERY\": \"renw\"}}}",
         "strategies.appstore.DID_RENEW.BILLING_RECOVERY: unknown strategy "
         "'renw' (activate, renew, auto_renew_on, auto_renew_off, "
         "grace_period, billing_retry, on_hold, pause, expire, revoke, "
         "refund, notice, ignore)"},
        {"{\"appstore\": {\"DID_RENEW\": {\"\": 1}}}",
         "strategies.appstore.DID_RENEW.\"\": a strategy name (a string)"},
        {"{\"appstore\": {\"DID_RENEW\": {\"\": null}}}",
         "strategies.appstore.DID_RENEW.\"\": a strategy name"},
        {"{\"appstore\": {\"DID_RENEW\": {\"\": \"Renew\"}}}",
         "strategies.appstore.DID_RENEW.\"\": unknown strategy 'Renew'"},
        {"{\"appstore\": {\"did_renew\": {\"\": \"renew\"}}}",
         "strategies.appstore.did_renew: a type is upper case"},
        {"{\"appstore\": {\"\": {\"\": \"renew\"}}}",
         "strategies.appstore.\"\": a type is upper case"},
        {"{\"appstore\": {\"*\": {\"\": \"renew\"}}}",
         "strategies.appstore.*: a type is upper case"},
        {"{\"appstore\": {\"DID_RENEW\": {\"billing_recovery\": \"renew\"}}}",
         "strategies.appstore.DID_RENEW.billing_recovery: a subtype is upper "
         "case"},
        {"{\"googleplay\": {\"subscription\": {\"04\": \"renew\"}}}",
         "strategies.googleplay.subscription.04: a code (a positive integer "
         "without leading zeros)"},
        {"{\"googleplay\": {\"subscription\": {\"0\": \"renew\"}}}",
         "strategies.googleplay.subscription.0: a code"},
        {"{\"googleplay\": {\"subscription\": {\"-3\": \"renew\"}}}",
         "strategies.googleplay.subscription.-3: a code"},
        {"{\"googleplay\": {\"subscription\": {\"3x\": \"renew\"}}}",
         "strategies.googleplay.subscription.3x: a code"},
        {"{\"googleplay\": {\"subscription\": {\"\": \"renew\"}}}",
         "strategies.googleplay.subscription.\"\": a code"},
        {"{\"googleplay\": {\"subscription\": {\"99999999999\": \"renew\"}}}",
         "strategies.googleplay.subscription.99999999999: a code"},
        {"{\"googleplay\": {\"one_time_product\": {\"one\": \"renew\"}}}",
         "strategies.googleplay.one_time_product.one: a code"},
        {"{\"googleplay\": {\"voided_purchase\": {\"1\": \"refund\"}}}",
         "strategies.googleplay.voided_purchase.1: "
         "\"<productType>:<refundType>\""},
        {"{\"googleplay\": {\"voided_purchase\": {\"1:0\": \"refund\"}}}",
         "strategies.googleplay.voided_purchase.1:0: "
         "\"<productType>:<refundType>\""},
        {"{\"googleplay\": {\"voided_purchase\": {\"1:2:3\": \"refund\"}}}",
         "strategies.googleplay.voided_purchase.1:2:3: "},
        {"{\"googleplay\": {\"test\": {\"1\": \"notice\"}}}",
         "strategies.googleplay.test.1: test notifications have no code"},
        {"{\"googleplay\": {\"future_kind\": {\"x\": \"notice\"}}}",
         "strategies.googleplay.future_kind.x: \"\", \"*\" or a code"},
        {"{\"googleplay\": {\"Subscription\": {\"1\": \"renew\"}}}",
         "strategies.googleplay.Subscription: a type is lower case"},
        {"{\"googleplay\": {\"subscription\": {\"1\": \"renew\", "
         "\"2\": \"bogus\"}}}",
         "strategies.googleplay.subscription.2: unknown strategy 'bogus'"},
        {"{\"appstore\": {\"A234567890123456789012345678901234567890123456789"
         "0123456789012345\": {\"\": \"renew\"}}}",
         "longer than 64 characters"},
    };

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(cases); i++) {
        char errstr[512] = "";
        json_error_t jerr;
        json_t *o = json_loads(cases[i].json, JSON_DECODE_ANY, &jerr);
        struct subs_table *t;

        if (!o)
            fail_msg("case %zu: bad test JSON: %s", i, jerr.text);
        t = subs_table_new(o, errstr, sizeof(errstr));
        json_decref(o);
        if (t) {
            subs_table_free(t);
            fail_msg("case %zu: accepted %s", i, cases[i].json);
        }
        if (!strstr(errstr, cases[i].want))
            fail_msg("case %zu: '%s' does not contain '%s'", i, errstr,
                     cases[i].want);
    }
}

static void strategy_names_round_trip(void **state)
{
    enum subs_strategy s;

    (void)state;
    for (int i = 0; i < SUBS_STRATEGIES; i++) {
        const char *name = subs_strategy_name((enum subs_strategy)i);

        assert_non_null(name);
        assert_string_not_equal(name, "unknown");
        s = SUBS_STRATEGIES;
        assert_int_equal(subs_strategy_parse(name, &s), 0);
        assert_int_equal(s, i);
    }
    assert_string_equal(subs_strategy_name(SUBS_AUTO_RENEW_OFF),
                        "auto_renew_off");
    assert_string_equal(subs_strategy_name(SUBS_STRATEGIES), "unknown");
    assert_string_equal(subs_strategy_name((enum subs_strategy) - 1),
                        "unknown");
    s = SUBS_RENEW;
    assert_int_equal(subs_strategy_parse("Renew", &s), -1);
    assert_int_equal(subs_strategy_parse("", &s), -1);
    assert_int_equal(subs_strategy_parse("renew ", &s), -1);
    assert_int_equal(subs_strategy_parse("unknown", &s), -1);
    assert_int_equal(subs_strategy_parse(NULL, &s), -1);
    assert_int_equal(s, SUBS_RENEW);
    assert_string_equal(subs_provider_name(SUBS_APPSTORE), "appstore");
    assert_string_equal(subs_provider_name(SUBS_GOOGLEPLAY), "googleplay");
    assert_string_equal(subs_provider_name((enum subs_provider)2), "unknown");
}

static void strategies_lead_to_spec_states(void **state)
{
    static const char *const from[] = {
        NULL,     "active",  "grace_period", "billing_retry", "on_hold",
        "paused", "expired", "revoked",      "refunded",
    };
    static const char *const fixed[SUBS_STRATEGIES] = {
        [SUBS_ACTIVATE] = "active",
        [SUBS_RENEW] = "active",
        [SUBS_GRACE_PERIOD] = "grace_period",
        [SUBS_BILLING_RETRY] = "billing_retry",
        [SUBS_ON_HOLD] = "on_hold",
        [SUBS_PAUSE] = "paused",
        [SUBS_EXPIRE] = "expired",
        [SUBS_REVOKE] = "revoked",
        [SUBS_REFUND] = "refunded",
    };

    (void)state;
    for (int i = 0; i < SUBS_STRATEGIES; i++) {
        enum subs_strategy s = (enum subs_strategy)i;

        for (size_t j = 0; j < HR_ARRAY_SIZE(from); j++) {
            const char *got = subs_strategy_state(s, from[j]);

            if (fixed[i]) {
                assert_string_equal(got, fixed[i]);
            } else if (s == SUBS_AUTO_RENEW_ON || s == SUBS_AUTO_RENEW_OFF) {
                assert_string_equal(got, from[j] ? from[j] : "active");
            } else if (from[j]) {
                /* notice, ignore: the very same string */
                assert_ptr_equal(got, from[j]);
            } else {
                assert_null(got);
            }
        }
    }
    assert_null(subs_strategy_state(SUBS_STRATEGIES, NULL));
    assert_string_equal(subs_strategy_state(SUBS_STRATEGIES, "paused"),
                        "paused");

    for (int i = 0; i < SUBS_STRATEGIES; i++) {
        int want = i == SUBS_AUTO_RENEW_ON    ? 1
                   : i == SUBS_AUTO_RENEW_OFF ? 0
                                              : -1;

        assert_int_equal(subs_strategy_auto_renew((enum subs_strategy)i), want);
    }
}

/* Lookups never allocate: many of them under ASan leave nothing behind and
 * touch nothing out of bounds. */
static void lookups_allocate_nothing(void **state)
{
    struct subs_table *t =
        table_from("{\"appstore\": {\"FUTURE\": {\"*\": \"notice\"}}}");
    char code[16];
    unsigned long hits = 0;

    (void)state;
    for (int round = 0; round < 2000; round++) {
        bool known;

        for (size_t i = 0; i < HR_ARRAY_SIZE(apple); i++)
            hits += subs_table_lookup(t, SUBS_APPSTORE, apple[i].type,
                                      apple[i].subtype, &known) == apple[i].s;
        for (size_t i = 0; i < HR_ARRAY_SIZE(google); i++)
            hits += subs_table_lookup(t, SUBS_GOOGLEPLAY, google[i].type,
                                      google[i].subtype, &known) == google[i].s;
        snprintf(code, sizeof(code), "%d", round % 30);
        (void)subs_table_lookup(t, SUBS_GOOGLEPLAY, "subscription", code,
                                &known);
        (void)subs_table_lookup(t, SUBS_APPSTORE, "FUTURE", code, &known);
        (void)subs_table_lookup(t, SUBS_APPSTORE, "NOPE", code, NULL);
    }
    assert_int_equal(hits,
                     2000UL * (HR_ARRAY_SIZE(apple) + HR_ARRAY_SIZE(google)));
    subs_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_apple_type_and_subtype_is_known),
        cmocka_unit_test(every_google_code_is_known),
        cmocka_unit_test(unknown_combinations_are_ignored),
        cmocka_unit_test(star_matches_any_other_subtype),
        cmocka_unit_test(overrides_replace_and_add_entries),
        cmocka_unit_test(effective_table_is_json),
        cmocka_unit_test(bad_overrides_name_their_path),
        cmocka_unit_test(strategy_names_round_trip),
        cmocka_unit_test(strategies_lead_to_spec_states),
        cmocka_unit_test(lookups_allocate_nothing),
    };

    return cmocka_run_group_tests_name("subs_strategy", tests, NULL, NULL);
}
