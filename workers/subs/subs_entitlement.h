/*
 * The entitlement step of herald-subs: apply one verified store
 * notification to Redis, atomically, in one Lua call
 * (subs_entitlement.lua), following SPEC sections 4 and 5 and
 * research/subscriptions.md sections 5 and 6.
 *
 * Keys, all under @prefix (HERALD_REDIS_PREFIX, "herald:" by default):
 *
 *   <prefix>entitlements:{<app_user_id>}   hash (SPEC section 5)
 *       product_id -> {"state","provider","subscription_id","expires_at",
 *                      "auto_renew","environment","updated_at"}
 *       expires_at: RFC 3339 UTC with milliseconds
 *       ("2026-11-22T07:28:39.123Z"), formatted by the script (the same
 *       text hr_time_format_rfc3339() gives; the unit test checks it), or
 *       null when no expiry is known; auto_renew true, false or null;
 *       environment a string or null; updated_at the snapshot time
 *       (snapshot_ms), not the time of the write, so that replays write
 *       the same bytes. The keys come in this order, with no spaces.
 *   <prefix>subs_owner:<subscription_id>   string, written by the app
 *       (SPEC section 5): read only.
 *   <prefix>subs:sub:<provider>:<subscription_id>   hash, ours: one
 *       record per store subscription, no TTL (it orders every later
 *       notification of the subscription):
 *         owner        the app_user_id its entitlement is filed under
 *         product_id   the product of that entry
 *         state        SPEC's vocabulary
 *         expires_ms   "0" when unknown
 *         auto_renew   "1", "0", or "-1" when unknown
 *         environment  "" when unknown
 *         snapshot_ms  the newest snapshot applied
 *   <prefix>subs:seen:<provider>:<notification_id>   string, ours: the
 *       notification was handled, "1" expiring after @dedupe_ttl_s
 *       (checked first and set last, inside the one script).
 *
 * The script derives the entitlement keys from the owner it resolves and
 * the record's: fine on a single Redis primary; the keys of one call span
 * slots, so this is not Redis Cluster safe.
 *
 * Rules, in order:
 * 1. A notification id already seen: SUBS_DUPLICATE, nothing written.
 * 2. A snapshot older than the record's (snapshot_ms <): SUBS_STALE;
 *    only the id is remembered as seen. An equal snapshot applies again
 *    (idempotent).
 * 3. The owner: the change's app_user_id when not empty; else the
 *    record's owner unless that is the fallback below; else the value of
 *    <prefix>subs_owner:<subscription_id> when set and not empty; else
 *    "<provider>:<subscription_id>". So a subscription filed under the
 *    fallback moves once the app writes subs_owner, and one the store
 *    names moves when the store names someone else.
 * 4. Merge: a NULL or "" string, expires_ms 0 and auto_renew -1 keep the
 *    record's value. Without a record, a change with no state or no
 *    product cannot make an entry: SUBS_UNKNOWN, only the id is
 *    remembered.
 * 5. Write the record, and the entry for the product in the owner's hash.
 *    When the owner or the product changed (a move, an upgrade), the old
 *    entry is deleted from the old owner's hash, but only if it still
 *    names this subscription (provider and subscription_id).
 * 6. An entry that names another subscription (a new purchase token for
 *    the same product, say) is replaced, except that an entry granting
 *    access (active, grace_period) is not replaced by one that does not:
 *    a superseded or lapsed subscription does not take access away from
 *    the one that holds it (research section 6, rule 7). The record is
 *    written either way, and the result is SUBS_APPLIED.
 *
 * Not thread-safe (struct hr_redis is per thread); nothing logs.
 */
#ifndef SUBS_ENTITLEMENT_H
#define SUBS_ENTITLEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

struct hr_redis;
struct hr_script;

/** Room for an app_user_id, NUL included: "googleplay:" and a purchase
 *  token of up to 1023 bytes fit. */
#define SUBS_ENTITLEMENT_OWNER_MAX 1280

/** Room for a state of SPEC's vocabulary, NUL included. */
#define SUBS_ENTITLEMENT_STATE_MAX 32

/** The latest time the script formats: 9999-12-31T23:59:59.999Z. */
#define SUBS_ENTITLEMENT_TIME_MAX INT64_C(253402300799999)

/**
 * One verified notification, as the worker computed it. Borrowed strings;
 * subs_entitlement_check() says what is valid.
 */
struct subs_change {
    const char *provider;        /* "appstore" | "googleplay" */
    const char *notification_id; /* Apple notificationUUID / Pub/Sub
                                    messageId: the dedupe id */
    const char *subscription_id; /* Apple originalTransactionId / Google
                                    purchaseToken */
    const char *app_user_id;     /* appAccountToken /
                                    obfuscatedExternalAccountId; NULL or ""
                                    when absent */
    const char *product_id;      /* NULL or "": keep the stored one */
    const char *state;           /* SPEC vocabulary; NULL or "": keep the
                                    stored state (notice) */
    int64_t expires_ms;          /* 0: unknown, keep */
    int auto_renew;              /* 1, 0, or -1: keep */
    const char *environment;     /* NULL or "": keep */
    int64_t snapshot_ms;         /* Apple signedDate / Google API read
                                    time: the monotonic order */
    const char *notification_type, *subtype; /* for the event only: not
                                                written to Redis */
};

/** What subs_entitlement_apply() did. */
enum subs_apply_result {
    SUBS_APPLIED = 0, /* written (maybe with nothing changed) */
    SUBS_DUPLICATE,   /* the notification id was seen: nothing written */
    SUBS_STALE,       /* older snapshot than stored: only the id written */
    SUBS_UNKNOWN,     /* no record and no state or product to start one:
                         only the id written */
};

struct subs_applied {
    enum subs_apply_result result;
    /* The resolved owner (rule 3). For SUBS_DUPLICATE, what the first
     * apply of the notification returned (owner, states, changed: the
     * seen marker keeps them); for SUBS_STALE the record's owner, "" when
     * there is no record. */
    char app_user_id[SUBS_ENTITLEMENT_OWNER_MAX];
    char previous_state[SUBS_ENTITLEMENT_STATE_MAX]; /* "" when none */
    char state[SUBS_ENTITLEMENT_STATE_MAX]; /* after; the stored one (or
                                               "") when not applied */
    /* The product applied, else the record's; "" when there is none (or
     * it is longer than the buffer). A change that names no product (a
     * voided Google one-time purchase) takes its record's. */
    char product_id[SUBS_ENTITLEMENT_OWNER_MAX];
    /* State, expiry, auto_renew, product or owner differ from before (a
     * first entry always does); for SUBS_DUPLICATE, whether the first
     * apply changed them; false otherwise. The owner counts: a move gives
     * the new owner an entitlement. */
    bool changed;
};

/**
 * Point @script at the embedded subs_entitlement.lua (its sha empty: it
 * is loaded on first use). Call once per struct hr_redis user.
 */
void subs_entitlement_script_init(struct hr_script *script);

/**
 * Whether @c is a change subs_entitlement_apply() accepts: provider
 * "appstore" or "googleplay"; notification_id and subscription_id not
 * empty; app_user_id shorter than SUBS_ENTITLEMENT_OWNER_MAX; state NULL,
 * "" or one of SPEC's eight states; expires_ms in 0 ..
 * SUBS_ENTITLEMENT_TIME_MAX; auto_renew -1, 0 or 1; snapshot_ms in 1 ..
 * SUBS_ENTITLEMENT_TIME_MAX. Returns 0, or -1 with @errstr saying what is
 * wrong ("invalid change of subscription '<id>': ..."). Pure and thread-safe:
 * call it where the change is built, so that a -1 from subs_entitlement_apply()
 * means Redis failed.
 */
HR_MUST_CHECK int subs_entitlement_check(const struct subs_change *c,
                                         char *errstr,
                                         size_t errstr_size);

/**
 * Apply @c (borrowed) with @script (from subs_entitlement_script_init())
 * under key prefix @prefix (normally hr_redis_prefix(@redis)), remembering
 * the notification id for @dedupe_ttl_s (> 0) seconds, and fill *@out.
 * The rules are at the top of this file; the Lua call is atomic.
 *
 * Returns 0 with *@out filled, or -1 with @errstr (and *@out zeroed) when
 * @c fails subs_entitlement_check() (nothing sent), @dedupe_ttl_s is not
 * positive, Redis failed (I/O: the connection is marked dead; retry in
 * place, SPEC section 7), or the script failed (a key of the wrong type,
 * an owner from subs_owner too long for @out): the script checks before
 * it writes, so a failure writes nothing and the notification is not
 * remembered as seen.
 */
HR_MUST_CHECK int subs_entitlement_apply(struct hr_redis *redis,
                                         struct hr_script *script,
                                         const char *prefix,
                                         const struct subs_change *c,
                                         int64_t dedupe_ttl_s,
                                         struct subs_applied *out,
                                         char *errstr,
                                         size_t errstr_size);

/**
 * The pipelined halves of subs_entitlement_apply(): send the call for @c
 * without waiting (0, or -1 with @errstr as subs_entitlement_apply() says;
 * an I/O failure drops the connection and every call in flight)...
 */
HR_MUST_CHECK int subs_entitlement_send(struct hr_redis *redis,
                                        struct hr_script *script,
                                        const char *prefix,
                                        const struct subs_change *c,
                                        int64_t dedupe_ttl_s,
                                        char *errstr,
                                        size_t errstr_size);

/**
 * ...then read the answers in the order the calls were sent: 0 with *@out
 * filled, or -1 with @errstr (Redis failed, or the script refused the
 * change: a REDIS_REPLY_ERROR, the connection still usable).
 */
HR_MUST_CHECK int subs_entitlement_read(struct hr_redis *redis,
                                        struct hr_script *script,
                                        struct subs_applied *out,
                                        char *errstr,
                                        size_t errstr_size);

#endif
