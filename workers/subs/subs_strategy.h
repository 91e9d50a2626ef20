/*
 * The strategy table of herald-subs: which strategy a store notification
 * takes, keyed by (provider, notification type, subtype or code), and the
 * entitlement state each strategy leads to.
 *
 * Where a notification carries a snapshot (Apple's signed transaction and
 * renewal info, Google's subscriptionsv2.get read), SPEC computes the
 * state from the snapshot; the strategy chooses the side effects, and
 * subs_strategy_state() gives the state when there is no snapshot to
 * compute it from (and the one the snapshot is expected to agree with).
 *
 * The table is JSON, the value of the config file's
 * "subs": {"strategies": ...}:
 *
 *   {"appstore": {
 *        "SUBSCRIBED": {"INITIAL_BUY": "activate", "*": "activate"},
 *        "DID_RENEW": {"": "renew", "BILLING_RECOVERY": "renew"},
 *        "TEST": {"": "notice"}, ...},
 *    "googleplay": {
 *        "subscription": {"1": "renew", "2": "renew", ...},
 *        "one_time_product": {"1": "activate", "2": "notice"},
 *        "voided_purchase": {"1:1": "refund", "1:2": "notice", ...},
 *        "test": {"": "notice"}}}
 *
 * provider -> type -> subtype -> strategy name. The keys:
 * - appstore: the notificationType and subtype exactly as Apple sends them
 *   (upper case, digits and '_'); "" is "no subtype".
 * - googleplay: the type is the DeveloperNotification member that is
 *   present, without "Notification", in snake case: "subscription",
 *   "one_time_product", "voided_purchase", "test" (a future
 *   pendingRefundReviewNotification is "pending_refund_review"); lower
 *   case, digits and '_'. The subtype is
 *   - subscription, one_time_product: notificationType in decimal, "4";
 *   - voided_purchase: "<productType>:<refundType>" in decimal, "1:2"
 *     (1 subscription / 2 one-time; 1 full / 2 quantity-based partial);
 *   - test: "" (it has no code);
 *   - any other type: "" or a decimal code.
 *   Codes are positive integers without leading zeros.
 * - "*" as a subtype matches any subtype the type does not list, "no
 *   subtype" included. There is no wildcard type.
 *
 * The default table (subs_table_default_json(), built from the research's
 * mappings, the .c says why where they differ) covers all 23 Apple
 * notification types with every subtype Apple documents, and Google's
 * subscription codes 1-13, 17-20, 22, one-time codes 1-2, voided purchases
 * 1:1, 1:2, 2:1, 2:2 and test:
 *
 *   SUBSCRIBED            INITIAL_BUY, RESUBSCRIBE, *        activate
 *   DID_RENEW             "", BILLING_RECOVERY               renew
 *   DID_FAIL_TO_RENEW     GRACE_PERIOD grace_period, "" billing_retry
 *   GRACE_PERIOD_EXPIRED  ""                                 billing_retry
 *   EXPIRED               VOLUNTARY, BILLING_RETRY, PRICE_INCREASE,
 *                         PRODUCT_NOT_FOR_SALE, *            expire
 *   DID_CHANGE_RENEWAL_STATUS  AUTO_RENEW_ENABLED auto_renew_on,
 *                         AUTO_RENEW_DISABLED auto_renew_off
 *   DID_CHANGE_RENEWAL_PREF    UPGRADE activate, DOWNGRADE and "" notice
 *   OFFER_REDEEMED        INITIAL_BUY, RESUBSCRIBE, UPGRADE activate,
 *                         DOWNGRADE and "" notice
 *   PRICE_INCREASE        PENDING, ACCEPTED                  notice
 *   REFUND ""  refund;  REFUND_DECLINED ""  notice;
 *   REFUND_REVERSED ""  activate;  REVOKE ""  revoke;
 *   CONSUMPTION_REQUEST ""  notice;  RENEWAL_EXTENDED ""  renew;
 *   RENEWAL_EXTENSION SUMMARY, FAILURE  notice;  ONE_TIME_CHARGE "" activate
 *   TEST ""  notice;  RESCIND_CONSENT ""  notice;
 *   METADATA_UPDATE, MIGRATION, PRICE_CHANGE ""  notice
 *   EXTERNAL_PURCHASE_TOKEN  UNREPORTED, CREATED, ACTIVE_TOKEN_REMINDER, *
 *                         ignore (not an in-app purchase)
 *
 *   subscription  1 renew, 2 renew, 3 auto_renew_off, 4 activate,
 *                 5 on_hold, 6 grace_period, 7 auto_renew_on, 8 notice,
 *                 9 renew, 10 pause, 11 notice, 12 revoke, 13 expire,
 *                 17 notice, 18 auto_renew_off, 19 notice, 20 expire,
 *                 22 notice
 *   one_time_product  1 activate, 2 notice
 *   voided_purchase   1:1 refund, 1:2 notice, 2:1 refund, 2:2 notice
 *   test              "" notice
 *
 * A combination the table does not have is looked up as SUBS_IGNORE with
 * known = false: the caller counts and logs it, and acks the message. An
 * entry may say "ignore" on purpose (known = true: not counted as
 * unknown).
 */
#ifndef SUBS_STRATEGY_H
#define SUBS_STRATEGY_H

#include <stdbool.h>
#include <stddef.h>

#include "hr_compat.h"

struct json_t;

/** What a notification does to an entitlement. */
enum subs_strategy {
    SUBS_ACTIVATE,       /* purchase, resubscription: active */
    SUBS_RENEW,          /* new period, recovery: active */
    SUBS_AUTO_RENEW_ON,  /* state unchanged, auto_renew = true */
    SUBS_AUTO_RENEW_OFF, /* state unchanged, auto_renew = false */
    SUBS_GRACE_PERIOD,   /* renewal failed, access kept: grace_period */
    SUBS_BILLING_RETRY,  /* renewal failed, no access: billing_retry */
    SUBS_ON_HOLD,        /* Google account hold: on_hold */
    SUBS_PAUSE,          /* paused */
    SUBS_EXPIRE,         /* expired */
    SUBS_REVOKE,         /* revoked (Google revoke, Family Sharing) */
    SUBS_REFUND,         /* refunded */
    SUBS_NOTICE,         /* no state change; the event is still emitted */
    SUBS_IGNORE,         /* nothing: ack and drop */
    SUBS_STRATEGIES      /* how many there are */
};

/** The store, named "appstore" and "googleplay" as in SPEC. */
enum subs_provider { SUBS_APPSTORE, SUBS_GOOGLEPLAY };

/** Longest type or subtype key an override may use. */
#define SUBS_TABLE_KEY_MAX 64

/**
 * The table name of @s ("activate", "renew", "auto_renew_on", ...,
 * "notice", "ignore"): a static string; "unknown" for a value out of
 * range.
 */
const char *subs_strategy_name(enum subs_strategy s);

/**
 * The strategy named @name (exact, lower case) into *@out. Returns 0, or
 * -1 leaving *@out alone when @name is NULL or not a strategy name.
 */
HR_MUST_CHECK int subs_strategy_parse(const char *name,
                                      enum subs_strategy *out);

/** "appstore" or "googleplay"; "unknown" for a value out of range. */
const char *subs_provider_name(enum subs_provider p);

/**
 * The entitlement state (SPEC's vocabulary) that @s leads to from
 * @current (a state, or NULL when there is no entitlement yet):
 * activate and renew -> "active", grace_period -> "grace_period",
 * billing_retry -> "billing_retry", on_hold -> "on_hold", pause ->
 * "paused", expire -> "expired", revoke -> "revoked", refund ->
 * "refunded"; auto_renew_on/off -> @current (only the flag changes), or
 * "active" when NULL; notice and ignore (and values out of range) ->
 * @current, NULL staying NULL. Returns @current itself or a static
 * string. Pure and thread-safe.
 */
const char *subs_strategy_state(enum subs_strategy s, const char *current);

/**
 * The auto_renew flag that @s sets: 1 for auto_renew_on, 0 for
 * auto_renew_off, -1 for every other strategy (the flag comes from the
 * snapshot, or stays).
 */
int subs_strategy_auto_renew(enum subs_strategy s);

struct subs_table;

/**
 * The default table with the entries of @override (borrowed; the value of
 * "subs": {"strategies": ...}; NULL: the default alone) replacing the
 * default's entry for the same (provider, type, subtype) or adding one.
 * A type in @override keeps the default's other subtypes. Returns a table
 * the caller frees with subs_table_free(), or NULL with @errstr naming the
 * path of the first problem, e.g.
 *   strategies.appstore.DID_RENEW.BILLING_RECOVERY: unknown strategy
 *   'renw' (activate, renew, ...)
 * for: @override, a provider or a type that is not an object; a provider
 * other than appstore and googleplay; a type or subtype key that breaks
 * the rules at the top of this file (an empty subtype shows as ""); a
 * strategy that is not a string or not a name; out of memory. Use it for
 * --check-config too. The table is immutable: lookups may run from
 * several threads.
 */
struct subs_table *
subs_table_new(const struct json_t *override, char *errstr, size_t errstr_size);

/** Free @t. NULL is a no-op. */
void subs_table_free(struct subs_table *t);

/**
 * The strategy for (@p, @type, @subtype): the entry for @subtype (NULL and
 * "" both mean "no subtype"), else the type's "*" entry, else SUBS_IGNORE.
 * *@known (when @known is not NULL) says whether an entry matched; false
 * also for a NULL @type or a @p out of range. Keys are compared exactly
 * (Google codes as the caller formats them: "%d", "%d:%d"). Never
 * allocates, never fails; thread-safe.
 */
enum subs_strategy subs_table_lookup(const struct subs_table *t,
                                     enum subs_provider p,
                                     const char *type,
                                     const char *subtype,
                                     bool *known);

/**
 * The effective table @t as JSON in the shape above (a new reference the
 * caller json_decref()s; NULL when memory runs out), for --check-config.
 */
struct json_t *subs_table_json(const struct subs_table *t);

/**
 * The default table as JSON (a new reference; NULL when memory runs out),
 * for the docs and --help. subs_table_new() accepts it as an override.
 */
struct json_t *subs_table_default_json(void);

#endif
