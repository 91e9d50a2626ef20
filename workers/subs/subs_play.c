/*
 * Google Play RTDN and SubscriptionPurchaseV2 parsing for subs_play.h,
 * with jansson. The shapes are research/subscriptions.md sections 3.1,
 * 3.2 and 3.4; the state mapping is section 5.3 in SPEC's vocabulary.
 *
 * Parsing is strict about types (a notificationType that is a string, a
 * token that is a number are malformed) because the data is not signed:
 * anything odd is a reason to stop, and the API read that follows is the
 * authority on the purchase.
 */
#include "subs_play.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "hr_base64.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define MALFORMED "malformed"

/* Longest member name shown in a message, so a hostile one stays short. */
#define NAME_SHOWN 64

/* The known DeveloperNotification members, in the order checked. */
static const struct member {
    const char *name;
    enum subs_play_kind kind;
} members[] = {
    {"subscriptionNotification", SUBS_PLAY_SUBSCRIPTION},
    {"oneTimeProductNotification", SUBS_PLAY_ONE_TIME},
    {"voidedPurchaseNotification", SUBS_PLAY_VOIDED},
    {"testNotification", SUBS_PLAY_TEST},
};

#define SUFFIX     "Notification"
#define SUFFIX_LEN (sizeof(SUFFIX) - 1)

/* ---- helpers ------------------------------------------------------------ */

/* Write the message, set *@code to @what and return -1. */
HR_PRINTF(5, 6)
static int fail(const char **code,
                const char *what,
                char *errstr,
                size_t errstr_size,
                const char *fmt,
                ...)
{
    va_list ap;

    if (code)
        *code = what;
    if (errstr && errstr_size) {
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/*
 * Copy the JSON string @v into @dst of @size bytes. Returns 0, or -1 when
 * @v is not a string, holds a NUL (jansson allows one with
 * JSON_ALLOW_NUL; a C string would cut it short) or does not fit.
 */
static int copy_string(char *dst, size_t size, const json_t *v)
{
    size_t len;

    if (!json_is_string(v))
        return -1;
    len = json_string_length(v);
    if (len >= size || memchr(json_string_value(v), '\0', len))
        return -1;
    memcpy(dst, json_string_value(v), len);
    dst[len] = '\0';
    return 0;
}

/*
 * The optional string member @key of @obj into @dst ("" when absent).
 * -1 when present but not a fitting string.
 */
static int
opt_string(char *dst, size_t size, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    dst[0] = '\0';
    return v ? copy_string(dst, size, v) : 0;
}

/* A positive JSON integer that fits an int, into *@out; else -1. */
static int positive_int(const json_t *v, int *out)
{
    json_int_t i;

    if (!json_is_integer(v))
        return -1;
    i = json_integer_value(v);
    if (i <= 0 || i > INT_MAX)
        return -1;
    *out = (int)i;
    return 0;
}

/*
 * eventTimeMillis: Google sends a string of digits (an int64 in proto3
 * JSON); some documentation shows a number, so a non-negative JSON
 * integer is taken too. No sign, no space, at most 19 digits, at most
 * INT64_MAX.
 */
static int parse_millis(const json_t *v, int64_t *out)
{
    const char *s;
    size_t len;
    int64_t ms = 0;

    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return -1;
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    s = json_string_value(v);
    len = json_string_length(v);
    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int d = s[i] - '0';

        if (d < 0 || d > 9 || ms > (INT64_MAX - d) / 10)
            return -1;
        ms = ms * 10 + d;
    }
    *out = ms;
    return 0;
}

/* The string member @camel of @obj, else @snake (Pub/Sub sends both
 * spellings of messageId and publishTime); NULL when neither is there. */
static const json_t *
get_either(const json_t *obj, const char *camel, const char *snake)
{
    const json_t *v = json_object_get(obj, camel);

    return v ? v : json_object_get(obj, snake);
}

/*
 * The strategy-table type of the member @name: "<camelCase>Notification"
 * in snake case without the suffix ("oneTimeProductNotification" ->
 * "one_time_product") into @type of @size bytes. Returns -1 when @name is
 * not of that form (a lower-case letter, then letters and digits, then
 * the suffix) or the type does not fit.
 */
static int member_type(const char *name, char *type, size_t size)
{
    size_t len = strlen(name);
    size_t n = 0;

    if (len <= SUFFIX_LEN || strcmp(name + len - SUFFIX_LEN, SUFFIX) ||
        name[0] < 'a' || name[0] > 'z')
        return -1;
    for (size_t i = 0; i < len - SUFFIX_LEN; i++) {
        char c = name[i];

        if (c >= 'A' && c <= 'Z') {
            if (n + 2 >= size)
                return -1;
            type[n++] = '_';
            type[n++] = (char)(c - 'A' + 'a');
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (n + 1 >= size)
                return -1;
            type[n++] = c;
        } else {
            return -1;
        }
    }
    type[n] = '\0';
    return 0;
}

/* ---- the push body ------------------------------------------------------ */

/* message.messageId and message.publishTime into @out. */
static int parse_envelope(const json_t *message,
                          struct subs_play_notification *out,
                          const char **code,
                          char *errstr,
                          size_t errstr_size)
{
    const json_t *v;

    v = get_either(message, "messageId", "message_id");
    if (!v)
        return fail(code, MALFORMED, errstr, errstr_size,
                    "pub/sub push body has no message.messageId");
    if (copy_string(out->message_id, sizeof(out->message_id), v) ||
        !out->message_id[0])
        return fail(code, MALFORMED, errstr, errstr_size,
                    "pub/sub message.messageId is not a non-empty string "
                    "of at most %zu bytes",
                    sizeof(out->message_id) - 1);
    v = get_either(message, "publishTime", "publish_time");
    if (v && (!json_is_string(v) ||
              hr_time_parse_rfc3339(json_string_value(v), &out->publish_ms)))
        return fail(code, MALFORMED, errstr, errstr_size,
                    "pub/sub message.publishTime is not an RFC 3339 string");
    return 0;
}

/* message.data: standard base64 of a JSON object; a new reference. */
static json_t *decode_data(const json_t *message,
                           const char **code,
                           char *errstr,
                           size_t errstr_size)
{
    const json_t *v = json_object_get(message, "data");
    json_error_t jerr;
    size_t raw_len = 0;
    char *raw;
    json_t *data;

    if (!json_is_string(v)) {
        fail(code, MALFORMED, errstr, errstr_size, "pub/sub message.data is %s",
             v ? "not a string" : "missing");
        return NULL;
    }
    raw =
        hr_base64_decode(json_string_value(v), json_string_length(v), &raw_len);
    if (!raw) {
        fail(code, MALFORMED, errstr, errstr_size,
             "pub/sub message.data is not base64");
        return NULL;
    }
    /* Duplicate keys refused: two readers could see different values. */
    data = json_loadb(raw, raw_len, JSON_REJECT_DUPLICATES, &jerr);
    free(raw);
    if (!data) {
        fail(code, MALFORMED, errstr, errstr_size,
             "rtdn data is not JSON: %s (line %d, column %d)", jerr.text,
             jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(data)) {
        fail(code, MALFORMED, errstr, errstr_size,
             "rtdn data is not a JSON object");
        json_decref(data);
        return NULL;
    }
    return data;
}

/* packageName and eventTimeMillis, then the allow-list. */
static int parse_common(const json_t *data,
                        const char *const *allowed_packages,
                        size_t nallowed,
                        struct subs_play_notification *out,
                        const char **code,
                        char *errstr,
                        size_t errstr_size)
{
    const json_t *v = json_object_get(data, "packageName");
    size_t i;

    if (!v || copy_string(out->package_name, sizeof(out->package_name), v) ||
        !out->package_name[0])
        return fail(code, MALFORMED, errstr, errstr_size,
                    "rtdn packageName is %s",
                    v ? "not a non-empty string that fits" : "missing");
    v = json_object_get(data, "eventTimeMillis");
    if (!v || parse_millis(v, &out->event_ms))
        return fail(code, MALFORMED, errstr, errstr_size,
                    "rtdn eventTimeMillis is %s",
                    v ? "not a string of digits" : "missing");
    for (i = 0; i < nallowed; i++)
        if (allowed_packages[i] &&
            !strcmp(allowed_packages[i], out->package_name))
            break;
    if (nallowed && i == nallowed)
        return fail(code, "package", errstr, errstr_size,
                    "rtdn packageName '%.*s' is not a configured package",
                    NAME_SHOWN, out->package_name);
    return 0;
}

/* purchaseToken of the member @name: required, a non-empty string. */
static int parse_token(const json_t *n,
                       const char *name,
                       struct subs_play_notification *out,
                       const char **code,
                       char *errstr,
                       size_t errstr_size)
{
    const json_t *v = json_object_get(n, "purchaseToken");

    if (!v ||
        copy_string(out->purchase_token, sizeof(out->purchase_token), v) ||
        !out->purchase_token[0])
        return fail(code, MALFORMED, errstr, errstr_size,
                    "rtdn %s.purchaseToken is %s", name,
                    v ? "not a non-empty string that fits" : "missing");
    return 0;
}

/* subscriptionNotification and oneTimeProductNotification. */
static int parse_coded(const json_t *n,
                       const char *name,
                       const char *product_key,
                       struct subs_play_notification *out,
                       const char **code,
                       char *errstr,
                       size_t errstr_size)
{
    if (positive_int(json_object_get(n, "notificationType"), &out->code))
        return fail(code, MALFORMED, errstr, errstr_size,
                    "rtdn %s.notificationType is not a positive integer", name);
    if (parse_token(n, name, out, code, errstr, errstr_size))
        return -1;
    if (opt_string(out->product_id, sizeof(out->product_id), n, product_key))
        return fail(code, MALFORMED, errstr, errstr_size,
                    "rtdn %s.%s is not a string that fits", name, product_key);
    snprintf(out->subtype, sizeof(out->subtype), "%d", out->code);
    return 0;
}

/* voidedPurchaseNotification. */
static int parse_voided(const json_t *n,
                        const char *name,
                        struct subs_play_notification *out,
                        const char **code,
                        char *errstr,
                        size_t errstr_size)
{
    if (parse_token(n, name, out, code, errstr, errstr_size))
        return -1;
    if (opt_string(out->order_id, sizeof(out->order_id), n, "orderId"))
        return fail(code, MALFORMED, errstr, errstr_size,
                    "rtdn %s.orderId is not a string that fits", name);
    /* Both are needed for the table's "<productType>:<refundType>" key;
     * Google documents them on every voided purchase notification. */
    if (positive_int(json_object_get(n, "productType"), &out->product_type))
        return fail(code, MALFORMED, errstr, errstr_size,
                    "rtdn %s.productType is not a positive integer", name);
    if (positive_int(json_object_get(n, "refundType"), &out->refund_type))
        return fail(code, MALFORMED, errstr, errstr_size,
                    "rtdn %s.refundType is not a positive integer", name);
    snprintf(out->subtype, sizeof(out->subtype), "%d:%d", out->product_type,
             out->refund_type);
    return 0;
}

/*
 * A member this module does not know: what can be read without failing,
 * for the caller's count and log line. Always "unknown_kind".
 */
static int parse_unknown(const json_t *n,
                         const char *name,
                         struct subs_play_notification *out,
                         const char **code,
                         char *errstr,
                         size_t errstr_size)
{
    int c;

    out->kind = SUBS_PLAY_UNKNOWN;
    if (json_is_object(n)) {
        if (!positive_int(json_object_get(n, "notificationType"), &c)) {
            out->code = c;
            snprintf(out->subtype, sizeof(out->subtype), "%d", c);
        }
        if (copy_string(out->purchase_token, sizeof(out->purchase_token),
                        json_object_get(n, "purchaseToken")))
            out->purchase_token[0] = '\0';
    }
    return fail(code, "unknown_kind", errstr, errstr_size,
                "rtdn notification '%.*s' is not a known kind", NAME_SHOWN,
                name);
}

/*
 * Find the one "...Notification" member of @data: *@name and *@n, with
 * out->type set; *@name NULL when there is none. -1 when there are two.
 */
static int find_member(const json_t *data,
                       const char **name,
                       const json_t **n,
                       struct subs_play_notification *out,
                       const char **code,
                       char *errstr,
                       size_t errstr_size)
{
    const char *key;
    json_t *v;
    char type[sizeof(out->type)];

    *name = NULL;
    *n = NULL;
    /* Cast: jansson's iteration macro is not const-correct. */
    json_object_foreach((json_t *)(uintptr_t)data, key, v)
    {
        if (member_type(key, type, sizeof(type)))
            continue;
        if (*name)
            return fail(code, MALFORMED, errstr, errstr_size,
                        "rtdn has both '%.*s' and '%.*s'", NAME_SHOWN, *name,
                        NAME_SHOWN, key);
        *name = key;
        *n = v;
        memcpy(out->type, type, sizeof(type));
    }
    return 0;
}

int subs_play_parse(const json_t *body,
                    const char *const *allowed_packages,
                    size_t nallowed,
                    struct subs_play_notification *out,
                    const char **code,
                    char *errstr,
                    size_t errstr_size)
{
    const json_t *message;
    const json_t *n;
    const char *name;
    json_t *data;
    size_t i;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (code)
        *code = NULL;
    if (!json_is_object(body))
        return fail(code, MALFORMED, errstr, errstr_size,
                    "pub/sub push body is not a JSON object");
    message = json_object_get(body, "message");
    if (!json_is_object(message))
        return fail(code, MALFORMED, errstr, errstr_size,
                    "pub/sub push body has %s",
                    message ? "a message that is not an object" : "no message");
    if (parse_envelope(message, out, code, errstr, errstr_size))
        return -1;
    data = decode_data(message, code, errstr, errstr_size);
    if (!data)
        return -1;
    if (parse_common(data, allowed_packages, nallowed, out, code, errstr,
                     errstr_size) ||
        find_member(data, &name, &n, out, code, errstr, errstr_size))
        goto out_free_data;
    if (!name) {
        fail(code, "unknown_kind", errstr, errstr_size,
             "rtdn has no notification member");
        goto out_free_data;
    }
    for (i = 0; i < HR_ARRAY_SIZE(members); i++)
        if (!strcmp(name, members[i].name))
            break;
    if (i == HR_ARRAY_SIZE(members)) {
        parse_unknown(n, name, out, code, errstr, errstr_size);
        goto out_free_data;
    }
    out->kind = members[i].kind;
    if (!json_is_object(n)) {
        fail(code, MALFORMED, errstr, errstr_size, "rtdn %s is not an object",
             name);
        goto out_free_data;
    }
    switch (out->kind) {
    case SUBS_PLAY_SUBSCRIPTION:
        rc = parse_coded(n, name, "subscriptionId", out, code, errstr,
                         errstr_size);
        break;
    case SUBS_PLAY_ONE_TIME:
        rc = parse_coded(n, name, "sku", out, code, errstr, errstr_size);
        break;
    case SUBS_PLAY_VOIDED:
        rc = parse_voided(n, name, out, code, errstr, errstr_size);
        break;
    case SUBS_PLAY_TEST:
    case SUBS_PLAY_UNKNOWN:
        rc = 0;
        break;
    }
out_free_data:
    json_decref(data);
    return rc;
}

/* ---- the purchase ------------------------------------------------------- */

/* subscriptionState to SPEC's vocabulary; "canceled" is decided later. */
static const struct {
    const char *google;
    const char *state;
} states[] = {
    {"SUBSCRIPTION_STATE_ACTIVE", "active"},
    {"SUBSCRIPTION_STATE_CANCELED", "active"},
    {"SUBSCRIPTION_STATE_IN_GRACE_PERIOD", "grace_period"},
    {"SUBSCRIPTION_STATE_ON_HOLD", "on_hold"},
    {"SUBSCRIPTION_STATE_PAUSED", "paused"},
    {"SUBSCRIPTION_STATE_EXPIRED", "expired"},
    /* Bought but not paid yet: no entitlement to record. */
    {"SUBSCRIPTION_STATE_PENDING", NULL},
    /* The pending purchase never completed (code 20; research 5.3). */
    {"SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED", "expired"},
};

#define CANCELED "SUBSCRIPTION_STATE_CANCELED"

/*
 * lineItems: the item with the latest expiryTime into @out (product,
 * expiry, auto_renew) and its latestSuccessfulOrderId into @order_id.
 */
static int parse_line_items(const json_t *items,
                            struct subs_play_snapshot *out,
                            char *order_id,
                            size_t order_id_size,
                            char *errstr,
                            size_t errstr_size)
{
    const json_t *best = NULL;
    int64_t best_ms = 0;
    bool best_has_expiry = false;
    const json_t *item;
    const json_t *v;
    size_t i;

    if (!items)
        return 0;
    if (!json_is_array(items))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase lineItems is not an array");
    json_array_foreach(items, i, item)
    {
        int64_t ms = 0;
        bool has_expiry;

        if (!json_is_object(item))
            return fail(NULL, NULL, errstr, errstr_size,
                        "subscription purchase lineItems[%zu] is not an "
                        "object",
                        i);
        v = json_object_get(item, "expiryTime");
        has_expiry = v != NULL;
        if (v && (!json_is_string(v) ||
                  hr_time_parse_rfc3339(json_string_value(v), &ms)))
            return fail(NULL, NULL, errstr, errstr_size,
                        "subscription purchase lineItems[%zu].expiryTime is "
                        "not an RFC 3339 string",
                        i);
        if (!best || (has_expiry && (!best_has_expiry || ms > best_ms))) {
            best = item;
            best_ms = ms;
            best_has_expiry = has_expiry;
        }
    }
    if (!best)
        return 0;
    out->expires_ms = best_ms;
    if (opt_string(out->product_id, sizeof(out->product_id), best, "productId"))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase lineItems[].productId is not a "
                    "string that fits");
    if (opt_string(order_id, order_id_size, best, "latestSuccessfulOrderId"))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase "
                    "lineItems[].latestSuccessfulOrderId is not a string "
                    "that fits");
    v = json_object_get(best, "autoRenewingPlan");
    if (v) {
        if (!json_is_object(v))
            return fail(NULL, NULL, errstr, errstr_size,
                        "subscription purchase "
                        "lineItems[].autoRenewingPlan is not an object");
        v = json_object_get(v, "autoRenewEnabled");
        if (v && !json_is_boolean(v))
            return fail(NULL, NULL, errstr, errstr_size,
                        "subscription purchase lineItems[].autoRenewingPlan"
                        ".autoRenewEnabled is not a boolean");
        out->auto_renew = json_is_true(v);
    }
    return 0;
}

int subs_play_snapshot_parse(const json_t *purchase,
                             int64_t now_ms,
                             struct subs_play_snapshot *out,
                             char *errstr,
                             size_t errstr_size)
{
    char item_order_id[sizeof(out->latest_order_id)];
    const json_t *v;
    const char *google;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(purchase))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase is not a JSON object");
    v = json_object_get(purchase, "subscriptionState");
    if (!json_is_string(v))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase subscriptionState is %s",
                    v ? "not a string" : "missing");
    google = json_string_value(v);
    for (size_t i = 0; i < HR_ARRAY_SIZE(states); i++) {
        if (!strcmp(google, states[i].google)) {
            out->state = states[i].state;
            out->known_state = true;
            break;
        }
    }
    item_order_id[0] = '\0';
    if (parse_line_items(json_object_get(purchase, "lineItems"), out,
                         item_order_id, sizeof(item_order_id), errstr,
                         errstr_size))
        return -1;
    if (!strcmp(google, CANCELED)) {
        /* Auto-renew is off; access lasts until the paid period ends. No
         * expiry at all is no evidence of access. */
        out->auto_renew = false;
        if (now_ms >= out->expires_ms)
            out->state = "expired";
    }
    v = json_object_get(purchase, "externalAccountIdentifiers");
    if (v && !json_is_object(v))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase externalAccountIdentifiers is "
                    "not an object");
    if (v && opt_string(out->app_user_id, sizeof(out->app_user_id), v,
                        "obfuscatedExternalAccountId"))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase externalAccountIdentifiers"
                    ".obfuscatedExternalAccountId is not a string that "
                    "fits");
    if (opt_string(out->linked_token, sizeof(out->linked_token), purchase,
                   "linkedPurchaseToken"))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase linkedPurchaseToken is not a "
                    "string that fits");
    v = json_object_get(purchase, "acknowledgementState");
    if (v && !json_is_string(v))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase acknowledgementState is not a "
                    "string");
    out->acknowledged = v && !strcmp(json_string_value(v),
                                     "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED");
    v = json_object_get(purchase, "testPurchase");
    out->test_purchase = v && !json_is_null(v);
    if (opt_string(out->latest_order_id, sizeof(out->latest_order_id), purchase,
                   "latestOrderId"))
        return fail(NULL, NULL, errstr, errstr_size,
                    "subscription purchase latestOrderId is not a string "
                    "that fits");
    /* latestOrderId is deprecated in favour of the line items' field. */
    if (!out->latest_order_id[0])
        memcpy(out->latest_order_id, item_order_id, sizeof(item_order_id));
    return 0;
}

int subs_play_product_parse(const json_t *purchase,
                            struct subs_play_product *out,
                            char *errstr,
                            size_t errstr_size)
{
    static const char *const product_states[] = {"active", "revoked", NULL};
    const json_t *v;
    json_int_t n;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(purchase))
        return fail(NULL, NULL, errstr, errstr_size,
                    "product purchase is not a JSON object");
    v = json_object_get(purchase, "purchaseState");
    if (!json_is_integer(v))
        return fail(NULL, NULL, errstr, errstr_size,
                    "product purchase purchaseState is %s",
                    v ? "not an integer" : "missing");
    n = json_integer_value(v);
    if (n >= 0 && n < (json_int_t)HR_ARRAY_SIZE(product_states)) {
        out->state = product_states[n];
        out->known_state = true;
    }
    v = json_object_get(purchase, "acknowledgementState");
    if (v && !json_is_integer(v))
        return fail(NULL, NULL, errstr, errstr_size,
                    "product purchase acknowledgementState is not an "
                    "integer");
    out->acknowledged = v && json_integer_value(v) == 1;
    v = json_object_get(purchase, "purchaseType");
    if (v && !json_is_integer(v))
        return fail(NULL, NULL, errstr, errstr_size,
                    "product purchase purchaseType is not an integer");
    out->test_purchase = v && json_integer_value(v) == 0;
    if (opt_string(out->product_id, sizeof(out->product_id), purchase,
                   "productId") ||
        opt_string(out->app_user_id, sizeof(out->app_user_id), purchase,
                   "obfuscatedExternalAccountId") ||
        opt_string(out->order_id, sizeof(out->order_id), purchase, "orderId"))
        return fail(NULL, NULL, errstr, errstr_size,
                    "product purchase productId, "
                    "obfuscatedExternalAccountId or orderId is not a string "
                    "that fits");
    return 0;
}

/* ---- API URLs ----------------------------------------------------------- */

/* Append @s percent-encoded (all but RFC 3986 unreserved, as
 * curl_easy_escape() does) to @dst, which has room for three bytes per
 * byte of @s. */
static size_t escape_segment(char *dst, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    size_t n;

    HR_ASSERT(e);
    n = strlen(e);
    memcpy(dst, e, n);
    curl_free(e);
    return n;
}

/* A usable segment: not NULL, not empty, not a dot segment. */
static int
check_segment(const char *s, const char *what, char *errstr, size_t errstr_size)
{
    if (!s || !*s)
        return fail(NULL, NULL, errstr, errstr_size,
                    "play api url: %s is empty", what);
    if (!strcmp(s, ".") || !strcmp(s, ".."))
        return fail(NULL, NULL, errstr, errstr_size,
                    "play api url: %s is a dot segment", what);
    return 0;
}

/*
 * @endpoint (trailing '/' dropped), then for each of @nparts parts a
 * literal (even index) or a segment to escape (odd index). The segments
 * were checked by the caller.
 */
static char *build_url(const char *endpoint,
                       const char *const *parts,
                       size_t nparts,
                       char *errstr,
                       size_t errstr_size)
{
    size_t elen;
    size_t cap;
    size_t n;
    char *url;

    if (!endpoint || !*endpoint) {
        fail(NULL, NULL, errstr, errstr_size,
             "play api url: endpoint is empty");
        return NULL;
    }
    elen = strlen(endpoint);
    while (elen && endpoint[elen - 1] == '/')
        elen--;
    if (!elen) {
        fail(NULL, NULL, errstr, errstr_size,
             "play api url: endpoint '%s' has no host", endpoint);
        return NULL;
    }
    cap = elen + 1;
    for (size_t i = 0; i < nparts; i++)
        cap += strlen(parts[i]) * (i % 2 ? 3 : 1);
    url = malloc(cap);
    HR_ASSERT(url);
    memcpy(url, endpoint, elen);
    n = elen;
    for (size_t i = 0; i < nparts; i++) {
        if (i % 2) {
            n += escape_segment(url + n, parts[i]);
        } else {
            size_t len = strlen(parts[i]);

            memcpy(url + n, parts[i], len);
            n += len;
        }
    }
    url[n] = '\0';
    return url;
}

/*
 * {endpoint}/androidpublisher/v3/applications/{package}/purchases/
 * {collection}/[{product}/]tokens/{token}{suffix}: the product segment
 * only when @product_what (its name in errors) is not NULL.
 */
static char *purchase_url(const char *endpoint,
                          const char *package_name,
                          const char *collection,
                          const char *product,
                          const char *product_what,
                          const char *token,
                          const char *suffix,
                          char *errstr,
                          size_t errstr_size)
{
    char middle[64];
    const char *parts[] = {
        "/androidpublisher/v3/applications/",
        package_name,
        middle,
        product_what ? product : "",
        product_what ? "/tokens/" : "",
        token,
        suffix,
    };

    snprintf(middle, sizeof(middle), "/purchases/%s/%s", collection,
             product_what ? "" : "tokens/");
    if (check_segment(package_name, "package name", errstr, errstr_size) ||
        (product_what &&
         check_segment(product, product_what, errstr, errstr_size)) ||
        check_segment(token, "purchase token", errstr, errstr_size))
        return NULL;
    return build_url(endpoint, parts, HR_ARRAY_SIZE(parts), errstr,
                     errstr_size);
}

char *subs_play_get_url(const char *endpoint,
                        const char *package_name,
                        const char *token,
                        char *errstr,
                        size_t errstr_size)
{
    return purchase_url(endpoint, package_name, "subscriptionsv2", NULL, NULL,
                        token, "", errstr, errstr_size);
}

char *subs_play_ack_url(const char *endpoint,
                        const char *package_name,
                        const char *subscription_id,
                        const char *token,
                        char *errstr,
                        size_t errstr_size)
{
    return purchase_url(endpoint, package_name, "subscriptions",
                        subscription_id, "subscription id", token,
                        ":acknowledge", errstr, errstr_size);
}

char *subs_play_product_url(const char *endpoint,
                            const char *package_name,
                            const char *product_id,
                            const char *token,
                            bool acknowledge,
                            char *errstr,
                            size_t errstr_size)
{
    return purchase_url(endpoint, package_name, "products", product_id,
                        "product id", token, acknowledge ? ":acknowledge" : "",
                        errstr, errstr_size);
}
