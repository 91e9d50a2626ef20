/*
 * Google Play input of herald-subs, without network: the Real-time
 * developer notification (RTDN) as Cloud Pub/Sub pushes it, the
 * SubscriptionPurchaseV2 that purchases.subscriptionsv2.get answers (the
 * snapshot the state is computed from), and the Play Developer API URLs
 * for that read and for the acknowledgement (research/subscriptions.md
 * sections 3 and 5.3).
 *
 * The push body (section 3.1):
 *
 *   {"message": {"data": "<standard base64 DeveloperNotification JSON>",
 *                "messageId": "136969346945",
 *                "publishTime": "2026-01-02T03:04:05.678Z",
 *                "attributes": {...}},
 *    "subscription": "projects/<p>/subscriptions/<s>"}
 *
 * and the DeveloperNotification in "data" (section 3.2):
 *
 *   {"version": "1.0", "packageName": "com.example.app",
 *    "eventTimeMillis": "1603300807361",
 *    "subscriptionNotification": {"version": "1.0", "notificationType": 4,
 *        "purchaseToken": "...", "subscriptionId": "monthly001"}}
 *
 * with exactly one of subscriptionNotification, oneTimeProductNotification
 * (notificationType, purchaseToken, sku), voidedPurchaseNotification
 * (purchaseToken, orderId, productType, refundType) and testNotification.
 *
 * An RTDN only says that something changed: for a subscription the caller
 * reads the purchase (subs_play_get_url(), then subs_play_snapshot_parse())
 * and acknowledges a pending one within 3 days (subs_play_ack_url()).
 *
 * Everything here is pure and thread-safe; nothing logs.
 */
#ifndef SUBS_PLAY_H
#define SUBS_PLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

struct json_t;

/** Which DeveloperNotification member the RTDN carries. */
enum subs_play_kind {
    SUBS_PLAY_SUBSCRIPTION, /* subscriptionNotification */
    SUBS_PLAY_ONE_TIME,     /* oneTimeProductNotification */
    SUBS_PLAY_VOIDED,       /* voidedPurchaseNotification */
    SUBS_PLAY_TEST,         /* testNotification */
    SUBS_PLAY_UNKNOWN       /* another "...Notification" member: the
                               "unknown_kind" failure below */
};

/** An RTDN, as subs_play_parse() reads it. Plain value, no pointers. */
struct subs_play_notification {
    char message_id[128]; /* Pub/Sub messageId: the dedupe id */
    int64_t publish_ms;   /* publishTime, 0 if absent */
    char package_name[256];
    int64_t event_ms; /* eventTimeMillis (a string holding an int64) */
    enum subs_play_kind kind;
    int code; /* notificationType (subscription / one-time), 0 for test and
                 voided */
    char purchase_token[1024]; /* "" for test */
    char product_id[256];      /* subscriptionId or sku, "" when absent */
    char order_id[256];        /* voided, "" when absent */
    int product_type;          /* voided: 1 subscription / 2 one-time */
    int refund_type;           /* voided: 1 full / 2 quantity-based partial */
    char type[32];    /* the strategy table's Google type: "subscription",
                         "one_time_product", "voided_purchase", "test" */
    char subtype[32]; /* the strategy table's subtype key: "4", "1:2", "" */
};

/**
 * Parse the Pub/Sub push body @body (a JSON object, borrowed) into *@out.
 * The body is the one the CloudEvent wrapper (type googleplay.notification)
 * carries as data, already unwrapped.
 *
 * Envelope: message is an object; message.messageId (or message_id, which
 * Pub/Sub sends as a duplicate) a non-empty string; message.publishTime
 * (or publish_time) an RFC 3339 string when present; message.data standard
 * base64 of a JSON object (duplicate keys refused); attributes and
 * subscription are not read. Notification: packageName a non-empty string;
 * eventTimeMillis a string of 1 to 19 digits or a non-negative JSON
 * integer; version is not read. Then the one member whose name ends in
 * "Notification":
 * - subscription and one-time: notificationType a positive JSON integer
 *   (a code this module does not know is accepted: the strategy table
 *   decides), purchaseToken a non-empty string, subscriptionId / sku a
 *   string when present; subtype "%d" of the code;
 * - voided: purchaseToken, orderId a string when present, productType and
 *   refundType positive JSON integers (any value); subtype "%d:%d";
 * - test: nothing read inside; no token, code 0, subtype "".
 * A string too long for its field of *@out, or holding a NUL, is
 * malformed.
 *
 * @allowed_packages: @nallowed package names (borrowed) the body's
 * packageName must equal one of; @nallowed 0 accepts any.
 *
 * Returns 0 with *@code (when @code is not NULL) set to NULL, or -1 with a
 * reason in @errstr (may be NULL when @errstr_size is 0) and in *@code one
 * of these static strings:
 * - "malformed": not an object, no message, no messageId, data missing or
 *   not base64, decoded data not a JSON object, a field missing or of the
 *   wrong type or too long, a bad publishTime, two notification members
 *   present together, no purchaseToken for a subscription, one-time or
 *   voided notification. The vector envelope of Google's reference page
 *   (data that decodes to the schema text) lands here. Permanent: ack and
 *   dead-letter.
 * - "package": packageName is not in @allowed_packages (another app's
 *   notification). Permanent.
 * - "unknown_kind": no notification member this module knows. When the
 *   data has another member named "<camelCase>Notification" (Google's
 *   pendingRefundReviewNotification, for one), *@out is filled all the
 *   same with kind SUBS_PLAY_UNKNOWN, type its snake-case name without
 *   "Notification" ("pending_refund_review") and, when the member holds
 *   them, a positive integer notificationType as code and subtype "%d"
 *   and a purchaseToken; else type is "". The caller counts it and acks
 *   (research: "unknown-but-valid: log + ack").
 * Whatever the outcome, *@out is cleared first and holds the fields read
 * before the problem (the envelope's message_id and publish_ms for a
 * malformed data, the package_name for "package"), for the log line.
 */
HR_MUST_CHECK int subs_play_parse(const struct json_t *body,
                                  const char *const *allowed_packages,
                                  size_t nallowed,
                                  struct subs_play_notification *out,
                                  const char **code,
                                  char *errstr,
                                  size_t errstr_size);

/** The entitlement facts of a SubscriptionPurchaseV2. */
struct subs_play_snapshot {
    /* SPEC vocabulary from subscriptionState, a static string:
     * SUBSCRIPTION_STATE_ACTIVE -> "active"; _CANCELED -> "active" (with
     * auto_renew false) while now < expires_ms, else "expired";
     * _IN_GRACE_PERIOD -> "grace_period"; _ON_HOLD -> "on_hold"; _PAUSED
     * -> "paused"; _EXPIRED and _PENDING_PURCHASE_CANCELED -> "expired";
     * _PENDING -> NULL (no entitlement yet); any other value (UNSPECIFIED
     * included) -> NULL with known_state false. */
    const char *state;
    bool known_state;
    /* lineItems[].autoRenewingPlan.autoRenewEnabled of the line item with
     * the latest expiryTime (false for a prepaid plan or when absent, as
     * proto3 JSON leaves out false; always false when _CANCELED) */
    bool auto_renew;
    char product_id[256];    /* that line item's productId, "" if none */
    int64_t expires_ms;      /* its expiryTime, 0 if no line item has one */
    char app_user_id[256];   /* externalAccountIdentifiers
                                .obfuscatedExternalAccountId, "" if none */
    char linked_token[1024]; /* linkedPurchaseToken, "" if none */
    bool acknowledged;  /* acknowledgementState == _ACKNOWLEDGED; false means
                           the purchase still needs subs_play_ack_url() */
    bool test_purchase; /* testPurchase present (a license tester) */
    /* latestOrderId, or (it is deprecated) the latestSuccessfulOrderId of
     * the line item above; "" if neither */
    char latest_order_id[256];
};

/**
 * Read the SubscriptionPurchaseV2 @purchase (borrowed) into *@out, judging
 * a _CANCELED subscription's expiry against @now_ms (wall clock, ms).
 * Several line items: the one with the latest expiryTime gives product,
 * expiry and auto_renew (the first one wins a tie; items without
 * expiryTime only when none has one). Returns 0, or -1 with @errstr (may
 * be NULL when @errstr_size is 0) naming the problem when @purchase is not
 * an object, subscriptionState is missing or not a string, lineItems is
 * not an array of objects, a field has the wrong type, a string is too
 * long for *@out, or an expiryTime is not RFC 3339. An unknown
 * subscriptionState is not an error (see state above). *@out is cleared
 * first. Pure and thread-safe.
 */
HR_MUST_CHECK int subs_play_snapshot_parse(const struct json_t *purchase,
                                           int64_t now_ms,
                                           struct subs_play_snapshot *out,
                                           char *errstr,
                                           size_t errstr_size);

/** The entitlement facts of a ProductPurchase (purchases.products.get). */
struct subs_play_product {
    /* SPEC vocabulary from purchaseState, a static string: 0 (purchased)
     * -> "active"; 1 (canceled) -> "revoked"; 2 (pending) -> NULL (no
     * entitlement yet); another value -> NULL with known_state false. */
    const char *state;
    bool known_state;
    bool acknowledged;     /* acknowledgementState 1; false: the purchase
                              still needs subs_play_product_url(ack) */
    bool test_purchase;    /* purchaseType 0 (a license tester) */
    char product_id[256];  /* productId, "" when absent */
    char app_user_id[256]; /* obfuscatedExternalAccountId, "" if none */
    char order_id[256];    /* orderId, "" if none */
};

/**
 * Read the ProductPurchase @purchase (borrowed) into *@out. Returns 0, or
 * -1 with @errstr (may be NULL when @errstr_size is 0) when it is not an
 * object, purchaseState is missing or not an integer, or a member read is
 * of the wrong type or too long.
 */
HR_MUST_CHECK int subs_play_product_parse(const struct json_t *purchase,
                                          struct subs_play_product *out,
                                          char *errstr,
                                          size_t errstr_size);

/**
 * The URL of purchases.products.get (GET) or, when @acknowledge,
 * purchases.products.acknowledge (POST with a JSON body):
 *
 *   {endpoint}/androidpublisher/v3/applications/{packageName}
 *       /purchases/products/{productId}/tokens/{token}[:acknowledge]
 *
 * Same encoding, result and failures as subs_play_get_url().
 */
char *subs_play_product_url(const char *endpoint,
                            const char *package_name,
                            const char *product_id,
                            const char *token,
                            bool acknowledge,
                            char *errstr,
                            size_t errstr_size);

/**
 * The URL of purchases.subscriptionsv2.get (the caller sends GET with an
 * androidpublisher-scoped bearer token):
 *
 *   {endpoint}/androidpublisher/v3/applications/{packageName}
 *       /purchases/subscriptionsv2/tokens/{token}
 *
 * @endpoint is e.g. "https://androidpublisher.googleapis.com" (trailing
 * '/' ignored). Path segments are percent-encoded: every byte but the RFC
 * 3986 unreserved A-Z a-z 0-9 - . _ ~ (what curl_easy_escape() keeps).
 * Returns a malloc'd string the caller frees, or NULL with @errstr naming
 * the argument when an argument is NULL or empty or a segment is "." or
 * ".." (which a URL parser would resolve away). Aborts when memory runs
 * out. Thread-safe.
 */
char *subs_play_get_url(const char *endpoint,
                        const char *package_name,
                        const char *token,
                        char *errstr,
                        size_t errstr_size);

/**
 * The URL of purchases.subscriptions.acknowledge (the caller sends POST
 * with a JSON body, "{}" or {"developerPayload": ...}):
 *
 *   {endpoint}/androidpublisher/v3/applications/{packageName}
 *       /purchases/subscriptions/{subscriptionId}/tokens/{token}:acknowledge
 *
 * @subscription_id is the product id (the snapshot's product_id). Same
 * encoding, result and failures as subs_play_get_url().
 */
char *subs_play_ack_url(const char *endpoint,
                        const char *package_name,
                        const char *subscription_id,
                        const char *token,
                        char *errstr,
                        size_t errstr_size);

#endif
