/*
 * The strategy table: a sorted array of (provider, type, subtype,
 * strategy) entries, searched with bsearch() so that lookups allocate
 * nothing. The default is a static array; an override's entries replace
 * or join it, and only the keys they add are copied.
 *
 * The default follows research/subscriptions.md sections 5.2 and 5.3,
 * mapped onto the strategy names; the comments below say why where an
 * entry is not the obvious reading of those tables.
 */
#include "subs_strategy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static const char *const strategy_names[SUBS_STRATEGIES] = {
    [SUBS_ACTIVATE] = "activate",
    [SUBS_RENEW] = "renew",
    [SUBS_AUTO_RENEW_ON] = "auto_renew_on",
    [SUBS_AUTO_RENEW_OFF] = "auto_renew_off",
    [SUBS_GRACE_PERIOD] = "grace_period",
    [SUBS_BILLING_RETRY] = "billing_retry",
    [SUBS_ON_HOLD] = "on_hold",
    [SUBS_PAUSE] = "pause",
    [SUBS_EXPIRE] = "expire",
    [SUBS_REVOKE] = "revoke",
    [SUBS_REFUND] = "refund",
    [SUBS_NOTICE] = "notice",
    [SUBS_IGNORE] = "ignore",
};

static const char *const provider_names[] = {
    [SUBS_APPSTORE] = "appstore",
    [SUBS_GOOGLEPLAY] = "googleplay",
};

#define NPROVIDERS HR_ARRAY_SIZE(provider_names)

struct entry {
    enum subs_provider provider;
    const char *type;
    const char *subtype; /* "" for none, "*" for any other */
    enum subs_strategy strategy;
};

#define A(type, subtype, s)                    \
    {                                          \
        SUBS_APPSTORE, type, subtype, SUBS_##s \
    }
#define G(type, subtype, s)                      \
    {                                            \
        SUBS_GOOGLEPLAY, type, subtype, SUBS_##s \
    }

static const struct entry default_entries[] = {
    /* App Store Server Notifications V2: the 23 NotificationTypeV2 values
     * of Apple's library, every subtype of research section 2.1. */
    A("SUBSCRIBED", "INITIAL_BUY", ACTIVATE),
    A("SUBSCRIBED", "RESUBSCRIBE", ACTIVATE),
    A("SUBSCRIBED", "*", ACTIVATE),
    A("DID_RENEW", "", RENEW),
    A("DID_RENEW", "BILLING_RECOVERY", RENEW),
    A("DID_FAIL_TO_RENEW", "", BILLING_RETRY),
    A("DID_FAIL_TO_RENEW", "GRACE_PERIOD", GRACE_PERIOD),
    /* Grace ended without recovery: Apple keeps retrying, no access. */
    A("GRACE_PERIOD_EXPIRED", "", BILLING_RETRY),
    A("EXPIRED", "VOLUNTARY", EXPIRE),
    A("EXPIRED", "BILLING_RETRY", EXPIRE),
    A("EXPIRED", "PRICE_INCREASE", EXPIRE),
    A("EXPIRED", "PRODUCT_NOT_FOR_SALE", EXPIRE),
    A("EXPIRED", "*", EXPIRE),
    A("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED", AUTO_RENEW_ON),
    A("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", AUTO_RENEW_OFF),
    /* An upgrade takes effect at once: a new billing period on the new
     * product, whose transaction the notification carries (section 5.2:
     * "product = new tx product, expires_at = new tx"). The entitlements
     * hash is keyed by product, so the new product must become active
     * now, not at the next renewal: activate, not notice. A downgrade
     * waits for the next renewal, and "" cancels a pending downgrade. */
    A("DID_CHANGE_RENEWAL_PREF", "UPGRADE", ACTIVATE),
    A("DID_CHANGE_RENEWAL_PREF", "DOWNGRADE", NOTICE),
    A("DID_CHANGE_RENEWAL_PREF", "", NOTICE),
    /* As SUBSCRIBED for a purchase, as DID_CHANGE_RENEWAL_PREF for a
     * change of product (section 5.2); "" is an offer on the active
     * subscription. */
    A("OFFER_REDEEMED", "INITIAL_BUY", ACTIVATE),
    A("OFFER_REDEEMED", "RESUBSCRIBE", ACTIVATE),
    A("OFFER_REDEEMED", "UPGRADE", ACTIVATE),
    A("OFFER_REDEEMED", "DOWNGRADE", NOTICE),
    A("OFFER_REDEEMED", "", NOTICE),
    A("PRICE_INCREASE", "PENDING", NOTICE),
    A("PRICE_INCREASE", "ACCEPTED", NOTICE),
    /* Section 5.2 says REVOKED; SPEC has a "refunded" state for it. */
    A("REFUND", "", REFUND),
    A("REFUND_DECLINED", "", NOTICE),
    /* Reinstated; the transaction's expiresDate says whether it is
     * still current (the snapshot turns it into expired if not). */
    A("REFUND_REVERSED", "", ACTIVATE),
    /* Family Sharing access removed. */
    A("REVOKE", "", REVOKE),
    A("CONSUMPTION_REQUEST", "", NOTICE),
    A("RENEWAL_EXTENDED", "", RENEW),
    A("RENEWAL_EXTENSION", "SUMMARY", NOTICE),
    A("RENEWAL_EXTENSION", "FAILURE", NOTICE),
    A("ONE_TIME_CHARGE", "", ACTIVATE),
    A("TEST", "", NOTICE),
    /* External Purchase tokens are not in-app entitlements: known, so
     * they are not counted as unknown, and dropped. UNREPORTED is in
     * Apple's library; CREATED and ACTIVE_TOKEN_REMINDER in its docs. */
    A("EXTERNAL_PURCHASE_TOKEN", "UNREPORTED", IGNORE),
    A("EXTERNAL_PURCHASE_TOKEN", "CREATED", IGNORE),
    A("EXTERNAL_PURCHASE_TOKEN", "ACTIVE_TOKEN_REMINDER", IGNORE),
    A("EXTERNAL_PURCHASE_TOKEN", "*", IGNORE),
    /* App-level consent withdrawn: an account-policy matter, no change
     * to any entitlement by default. */
    A("RESCIND_CONSENT", "", NOTICE),
    /* Advanced Commerce API: the snapshot carries any change. */
    A("METADATA_UPDATE", "", NOTICE),
    A("MIGRATION", "", NOTICE),
    A("PRICE_CHANGE", "", NOTICE),

    /* Google Play RTDN subscriptionNotification.notificationType (14-16
     * and 21 are unassigned). */
    G("subscription", "1", RENEW),          /* RECOVERED (hold, pause) */
    G("subscription", "2", RENEW),          /* RENEWED */
    G("subscription", "3", AUTO_RENEW_OFF), /* CANCELED, not yet expired */
    G("subscription", "4", ACTIVATE),       /* PURCHASED */
    G("subscription", "5", ON_HOLD),        /* ON_HOLD */
    G("subscription", "6", GRACE_PERIOD),   /* IN_GRACE_PERIOD */
    G("subscription", "7", AUTO_RENEW_ON),  /* RESTARTED */
    G("subscription", "8", NOTICE),         /* PRICE_CHANGE_CONFIRMED */
    /* DEFERRED: a longer period, as a renewal would give it. */
    G("subscription", "9", RENEW),
    G("subscription", "10", PAUSE),  /* PAUSED */
    G("subscription", "11", NOTICE), /* PAUSE_SCHEDULE_CHANGED */
    G("subscription", "12", REVOKE), /* REVOKED */
    G("subscription", "13", EXPIRE), /* EXPIRED */
    G("subscription", "17", NOTICE), /* ITEMS_CHANGED */
    /* CANCELLATION_SCHEDULED (installment plans): it will not renew
     * after the commitment. */
    G("subscription", "18", AUTO_RENEW_OFF),
    G("subscription", "19", NOTICE), /* PRICE_CHANGE_UPDATED */
    /* PENDING_PURCHASE_CANCELED: the purchase never completed. */
    G("subscription", "20", EXPIRE),
    G("subscription", "22", NOTICE), /* PRICE_STEP_UP_CONSENT_UPDATED */
    /* oneTimeProductNotification: 1 PURCHASED; 2 CANCELED is a pending
     * purchase that never completed, so nothing was granted. */
    G("one_time_product", "1", ACTIVATE),
    G("one_time_product", "2", NOTICE),
    /* voidedPurchaseNotification "productType:refundType": a full refund
     * voids the purchase; a quantity-based partial refund only lowers
     * the quantity, the entitlement stays. */
    G("voided_purchase", "1:1", REFUND),
    G("voided_purchase", "1:2", NOTICE),
    G("voided_purchase", "2:1", REFUND),
    G("voided_purchase", "2:2", NOTICE),
    G("test", "", NOTICE),
};

#undef A
#undef G

struct table_entry {
    struct entry e;
    /* the copies e.type and e.subtype point to when an override added
     * the entry; NULL for a default one */
    char *own_type, *own_subtype;
};

struct subs_table {
    struct table_entry *v; /* sorted by provider, type, subtype */
    size_t n;
};

/* --- strategies ---------------------------------------------------------- */

const char *subs_strategy_name(enum subs_strategy s)
{
    if ((unsigned)s >= SUBS_STRATEGIES)
        return "unknown";
    return strategy_names[s];
}

int subs_strategy_parse(const char *name, enum subs_strategy *out)
{
    if (!name)
        return -1;
    for (int i = 0; i < SUBS_STRATEGIES; i++) {
        if (!strcmp(name, strategy_names[i])) {
            *out = (enum subs_strategy)i;
            return 0;
        }
    }
    return -1;
}

const char *subs_provider_name(enum subs_provider p)
{
    if ((unsigned)p >= NPROVIDERS)
        return "unknown";
    return provider_names[p];
}

const char *subs_strategy_state(enum subs_strategy s, const char *current)
{
    switch (s) {
    case SUBS_ACTIVATE:
    case SUBS_RENEW:
        return "active";
    case SUBS_AUTO_RENEW_ON:
    case SUBS_AUTO_RENEW_OFF:
        return current ? current : "active";
    case SUBS_GRACE_PERIOD:
        return "grace_period";
    case SUBS_BILLING_RETRY:
        return "billing_retry";
    case SUBS_ON_HOLD:
        return "on_hold";
    case SUBS_PAUSE:
        return "paused";
    case SUBS_EXPIRE:
        return "expired";
    case SUBS_REVOKE:
        return "revoked";
    case SUBS_REFUND:
        return "refunded";
    case SUBS_NOTICE:
    case SUBS_IGNORE:
    case SUBS_STRATEGIES:
        break;
    }
    return current;
}

int subs_strategy_auto_renew(enum subs_strategy s)
{
    if (s == SUBS_AUTO_RENEW_ON)
        return 1;
    if (s == SUBS_AUTO_RENEW_OFF)
        return 0;
    return -1;
}

/* --- the table ----------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c;

    if (x->provider != y->provider)
        return x->provider < y->provider ? -1 : 1;
    c = strcmp(x->type, y->type);
    return c ? c : strcmp(x->subtype, y->subtype);
}

/* struct table_entry starts with its struct entry, so entry_cmp() sorts
 * and searches both. */
static int table_entry_cmp(const void *a, const void *b)
{
    return entry_cmp(&((const struct table_entry *)a)->e,
                     &((const struct table_entry *)b)->e);
}

static const struct table_entry *find(const struct subs_table *t,
                                      enum subs_provider p,
                                      const char *type,
                                      const char *subtype)
{
    struct table_entry key = {.e = {p, type, subtype, SUBS_IGNORE}};

    return bsearch(&key, t->v, t->n, sizeof(*t->v), table_entry_cmp);
}

enum subs_strategy subs_table_lookup(const struct subs_table *t,
                                     enum subs_provider p,
                                     const char *type,
                                     const char *subtype,
                                     bool *known)
{
    const struct table_entry *te = NULL;

    if (t && type && (unsigned)p < NPROVIDERS) {
        te = find(t, p, type, subtype ? subtype : "");
        if (!te)
            te = find(t, p, type, "*");
    }
    if (known)
        *known = te != NULL;
    return te ? te->e.strategy : SUBS_IGNORE;
}

void subs_table_free(struct subs_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].own_type);
        free(t->v[i].own_subtype);
    }
    free(t->v);
    free(t);
}

/* jansson's iteration takes a json_t * but only reads through it. */
static json_t *unconst(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

/* "strategies.<provider>.<type>.<subtype>", with "" for an empty key. */
static void path_of(char *buf,
                    size_t size,
                    const char *provider,
                    const char *type,
                    const char *subtype)
{
    int n = snprintf(buf, size, "strategies");

    if (provider && n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - n, ".%s", provider);
    if (type && n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - n, ".%s", *type ? type : "\"\"");
    if (subtype && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - n, ".%s", *subtype ? subtype : "\"\"");
}

/* Whether @s is a non-empty name of upper (or lower) case letters, digits
 * and '_'. */
static bool is_name(const char *s, bool upper)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        bool letter =
            upper ? (*s >= 'A' && *s <= 'Z') : (*s >= 'a' && *s <= 'z');

        if (!letter && !(*s >= '0' && *s <= '9') && *s != '_')
            return false;
    }
    return true;
}

/* A positive decimal integer without leading zeros that fits an int;
 * *@end is set past it. */
static bool is_code(const char *s, const char **end)
{
    size_t n = 0;

    if (*s < '1' || *s > '9')
        return false;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    *end = s + n;
    return n <= 9;
}

/* Whether @subtype is a valid key under googleplay's @type; when not, the
 * rule goes into @why. */
static bool
google_subtype_ok(const char *type, const char *subtype, const char **why)
{
    const char *end;

    if (!strcmp(subtype, "*"))
        return true;
    if (!strcmp(type, "test")) {
        *why = "test notifications have no code: use \"\" or \"*\"";
        return !*subtype;
    }
    if (!strcmp(type, "voided_purchase")) {
        *why = "\"<productType>:<refundType>\" (positive integers, e.g. "
               "\"1:2\") or \"*\" is required";
        return is_code(subtype, &end) && *end == ':' &&
               is_code(end + 1, &end) && !*end;
    }
    if (!strcmp(type, "subscription") || !strcmp(type, "one_time_product")) {
        *why = "a code (a positive integer without leading zeros) or \"*\" "
               "is required";
        return is_code(subtype, &end) && !*end;
    }
    *why = "\"\", \"*\" or a code (a positive integer without leading "
           "zeros) is required";
    return !*subtype || (is_code(subtype, &end) && !*end);
}

/* Whether the subtype key @subtype is valid for (@p, @type); when not,
 * @errstr says why after @where. */
static bool subtype_ok(enum subs_provider p,
                       const char *type,
                       const char *subtype,
                       const char *where,
                       char *errstr,
                       size_t errstr_size)
{
    const char *why = NULL;

    if (strlen(subtype) > SUBS_TABLE_KEY_MAX) {
        snprintf(errstr, errstr_size, "%s: longer than %d characters", where,
                 SUBS_TABLE_KEY_MAX);
        return false;
    }
    if (p == SUBS_APPSTORE) {
        if (!*subtype || !strcmp(subtype, "*") || is_name(subtype, true))
            return true;
        why = "a subtype is upper case letters, digits and '_' as Apple "
              "sends it, \"\" for none or \"*\"";
    } else if (google_subtype_ok(type, subtype, &why)) {
        return true;
    }
    snprintf(errstr, errstr_size, "%s: %s", where, why);
    return false;
}

static void strategy_list(char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (int i = 0; i < SUBS_STRATEGIES && n < size; i++) {
        int w = snprintf(buf + n, size - n, "%s%s", i ? ", " : "",
                         strategy_names[i]);

        if (w < 0)
            break;
        n += (size_t)w;
    }
}

/* Set (@p, @type, @subtype) to @s in @t: the existing entry's strategy,
 * or a new entry with copied keys (room was reserved by the caller). */
static int table_set(struct subs_table *t,
                     enum subs_provider p,
                     const char *type,
                     const char *subtype,
                     enum subs_strategy s)
{
    struct entry key = {p, type, subtype, s};
    struct table_entry *te;

    for (size_t i = 0; i < t->n; i++) {
        if (!entry_cmp(&t->v[i].e, &key)) {
            t->v[i].e.strategy = s;
            return 0;
        }
    }
    te = &t->v[t->n++];
    te->own_type = strdup(type);
    te->own_subtype = strdup(subtype);
    te->e = key;
    te->e.type = te->own_type;
    te->e.subtype = te->own_subtype;
    return te->own_type && te->own_subtype ? 0 : -1;
}

/* One type's object {subtype: strategy} of the override. */
static int type_load(struct subs_table *t,
                     enum subs_provider p,
                     const char *type,
                     const json_t *obj,
                     char *errstr,
                     size_t errstr_size)
{
    const char *pname = provider_names[p];
    char where[3 * SUBS_TABLE_KEY_MAX + 64];
    const char *subtype;
    json_t *v;

    path_of(where, sizeof(where), pname, type, NULL);
    if (strlen(type) > SUBS_TABLE_KEY_MAX) {
        snprintf(errstr, errstr_size, "%s: longer than %d characters", where,
                 SUBS_TABLE_KEY_MAX);
        return -1;
    }
    if (!is_name(type, p == SUBS_APPSTORE)) {
        snprintf(errstr, errstr_size, "%s: a type is %s", where,
                 p == SUBS_APPSTORE
                     ? "upper case letters, digits and '_' as Apple sends it"
                     : "lower case letters, digits and '_' (subscription, "
                       "one_time_product, voided_purchase, test)");
        return -1;
    }
    if (!json_is_object(obj)) {
        snprintf(errstr, errstr_size,
                 "%s: an object mapping subtypes to strategies is required",
                 where);
        return -1;
    }
    json_object_foreach(unconst(obj), subtype, v)
    {
        enum subs_strategy s;

        path_of(where, sizeof(where), pname, type, subtype);
        if (!subtype_ok(p, type, subtype, where, errstr, errstr_size))
            return -1;
        if (!json_is_string(v)) {
            snprintf(errstr, errstr_size,
                     "%s: a strategy name (a string) is required", where);
            return -1;
        }
        if (subs_strategy_parse(json_string_value(v), &s)) {
            char names[256];

            strategy_list(names, sizeof(names));
            snprintf(errstr, errstr_size, "%s: unknown strategy '%s' (%s)",
                     where, json_string_value(v), names);
            return -1;
        }
        if (table_set(t, p, type, subtype, s)) {
            snprintf(errstr, errstr_size, "%s: out of memory", where);
            return -1;
        }
    }
    return 0;
}

/* How many entries @override (an object) holds at most, to reserve room;
 * its shape is checked while loading. */
static size_t override_size(const json_t *override)
{
    const char *key;
    json_t *prov, *type;
    size_t n = 0;

    json_object_foreach(unconst(override), key, prov)
    {
        const char *tkey;

        if (!json_is_object(prov))
            continue;
        json_object_foreach(prov, tkey, type)
        {
            if (json_is_object(type))
                n += json_object_size(type);
        }
    }
    return n;
}

static int override_load(struct subs_table *t,
                         const json_t *override,
                         char *errstr,
                         size_t errstr_size)
{
    const char *pname;
    json_t *prov;

    if (!json_is_object(override)) {
        snprintf(errstr, errstr_size,
                 "strategies: an object with \"appstore\" and/or "
                 "\"googleplay\" is required");
        return -1;
    }
    json_object_foreach(unconst(override), pname, prov)
    {
        char where[SUBS_TABLE_KEY_MAX + 32];
        const char *type;
        json_t *obj;
        size_t p;

        for (p = 0; p < NPROVIDERS; p++) {
            if (!strcmp(pname, provider_names[p]))
                break;
        }
        if (p == NPROVIDERS) {
            snprintf(errstr, errstr_size,
                     "strategies.%.*s: unknown provider (appstore, "
                     "googleplay)",
                     SUBS_TABLE_KEY_MAX, pname);
            return -1;
        }
        path_of(where, sizeof(where), pname, NULL, NULL);
        if (!json_is_object(prov)) {
            snprintf(errstr, errstr_size,
                     "%s: an object mapping types to subtypes is required",
                     where);
            return -1;
        }
        json_object_foreach(prov, type, obj)
        {
            if (type_load(t, (enum subs_provider)p, type, obj, errstr,
                          errstr_size))
                return -1;
        }
    }
    return 0;
}

struct subs_table *
subs_table_new(const struct json_t *override, char *errstr, size_t errstr_size)
{
    size_t ndef = HR_ARRAY_SIZE(default_entries);
    size_t room = ndef;
    struct subs_table *t;

    if (override && json_is_object(override))
        room += override_size(override);
    t = calloc(1, sizeof(*t));
    if (!t || !(t->v = calloc(room, sizeof(*t->v)))) {
        free(t);
        snprintf(errstr, errstr_size, "strategies: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < ndef; i++)
        t->v[t->n++].e = default_entries[i];
    if (override && override_load(t, override, errstr, errstr_size)) {
        subs_table_free(t);
        return NULL;
    }
    qsort(t->v, t->n, sizeof(*t->v), table_entry_cmp);
    /* bsearch() needs unique keys: the default must not repeat one */
    for (size_t i = 1; i < t->n; i++)
        HR_ASSERT(table_entry_cmp(&t->v[i - 1], &t->v[i]) < 0);
    return t;
}

/* @n entries as {"appstore": {type: {subtype: name}}, "googleplay": ...};
 * @stride bytes apart, each starting with a struct entry. */
static json_t *entries_json(const void *v, size_t n, size_t stride)
{
    json_t *root = json_object();

    if (!root)
        return NULL;
    for (size_t p = 0; p < NPROVIDERS; p++) {
        if (json_object_set_new(root, provider_names[p], json_object()))
            goto out_free_root;
    }
    for (size_t i = 0; i < n; i++) {
        const struct entry *e =
            (const struct entry *)((const char *)v + i * stride);
        json_t *prov = json_object_get(root, provider_names[e->provider]);
        json_t *type = json_object_get(prov, e->type);

        if (!type) {
            type = json_object();
            if (json_object_set_new(prov, e->type, type))
                goto out_free_root;
        }
        if (json_object_set_new(type, e->subtype,
                                json_string(strategy_names[e->strategy])))
            goto out_free_root;
    }
    return root;
out_free_root:
    json_decref(root);
    return NULL;
}

struct json_t *subs_table_json(const struct subs_table *t)
{
    return entries_json(t->v, t->n, sizeof(*t->v));
}

struct json_t *subs_table_default_json(void)
{
    return entries_json(default_entries, HR_ARRAY_SIZE(default_entries),
                        sizeof(default_entries[0]));
}
