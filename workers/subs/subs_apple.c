/*
 * herald-subs: one App Store Server Notification V2, from the signed
 * payload to the entitlement (subs.h tells the story).
 *
 * The state: the strategy's (subs_strategy_state() from no current
 * state) for the strategies that set one; none (keep the stored one) for
 * notice, auto_renew_on and auto_renew_off. The one refinement taken from
 * the snapshot: a transaction with a revocationDate is "refunded" under
 * the refund strategy and "revoked" under any other state-setting one. An
 * expiresDate in the past does not turn renew into expired: the strategy
 * applies as it says, and readers compare expires_at with now (SPEC
 * section 4).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_producer.h"
#include "subs.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define PROVIDER "appstore"

static const char *const apple_types[] = {
    "SUBSCRIBED",
    "DID_RENEW",
    "DID_FAIL_TO_RENEW",
    "GRACE_PERIOD_EXPIRED",
    "EXPIRED",
    "DID_CHANGE_RENEWAL_STATUS",
    "DID_CHANGE_RENEWAL_PREF",
    "OFFER_REDEEMED",
    "PRICE_INCREASE",
    "REFUND",
    "REFUND_DECLINED",
    "REFUND_REVERSED",
    "REVOKE",
    "CONSUMPTION_REQUEST",
    "RENEWAL_EXTENDED",
    "RENEWAL_EXTENSION",
    "ONE_TIME_CHARGE",
    "TEST",
    "RESCIND_CONSENT",
    "METADATA_UPDATE",
    "MIGRATION",
    "PRICE_CHANGE",
    "EXTERNAL_PURCHASE_TOKEN",
};

const char *subs_apple_type_label(const char *type)
{
    for (size_t i = 0; type && i < HR_ARRAY_SIZE(apple_types); i++) {
        if (!strcmp(type, apple_types[i]))
            return apple_types[i];
    }
    return "other";
}

static const char *str_of(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);

    return json_is_string(v) && json_string_length(v) ? json_string_value(v)
                                                      : NULL;
}

static int64_t int_of(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);

    return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* Verify @jws of @kind into a payload, or NULL with the failure in @pre
 * (@what names the JWS in the reason). */
static json_t *verify_one(const struct subs_jws_verifier *v,
                          const char *jws,
                          enum subs_jws_kind kind,
                          const char *what,
                          struct subs_pre *pre)
{
    const char *code = NULL;
    json_t *payload =
        subs_jws_verify(v, jws, kind, &code, pre->errstr, sizeof(pre->errstr));

    if (!payload) {
        pre->code = code ? code : "bad_format";
        pre->what = what;
    }
    return payload;
}

void subs_apple_verify(const struct subs_jws_verifier *v,
                       const json_t *body,
                       struct subs_pre *pre)
{
    const char *jws = json_string_value(json_object_get(body, "signedPayload"));
    const json_t *data;
    const char *nested;

    pre->payload =
        verify_one(v, jws, SUBS_JWS_NOTIFICATION, "notification", pre);
    if (!pre->payload)
        return;
    data = json_object_get(pre->payload, "data");
    nested = str_of(data, "signedTransactionInfo");
    if (nested && !(pre->tx = verify_one(v, nested, SUBS_JWS_TRANSACTION,
                                         "transaction", pre)))
        return;
    nested = str_of(data, "signedRenewalInfo");
    if (nested)
        pre->renewal =
            verify_one(v, nested, SUBS_JWS_RENEWAL, "renewal info", pre);
}

/* Dead-letter @item for @pre's verification failure, counted. */
static void verify_failed(struct subs_state *st,
                          struct hr_item *item,
                          const struct subs_pre *pre)
{
    hr_metric_add(st->verify_failures, (const char *[]){PROVIDER, pre->code},
                  1);
    hr_item_dead(item, HR_ERR_PERMANENT,
                 "verification_failed:%s: appstore %s: %s", pre->code,
                 pre->what, pre->errstr);
}

/* The entitlement state of @s given the transaction @tx (see the top). */
static const char *state_of(enum subs_strategy s, const json_t *tx)
{
    switch (s) {
    case SUBS_NOTICE:
    case SUBS_IGNORE:
    case SUBS_AUTO_RENEW_ON:
    case SUBS_AUTO_RENEW_OFF:
    case SUBS_STRATEGIES:
        return NULL;
    default:
        break;
    }
    if (int_of(tx, "revocationDate") > 0)
        return s == SUBS_REFUND ? "refunded" : "revoked";
    return subs_strategy_state(s, NULL);
}

static void count(struct subs_state *st, const char *type, const char *strategy)
{
    hr_metric_add(
        st->notifications,
        (const char *[]){PROVIDER, subs_apple_type_label(type), strategy}, 1);
}

enum subs_step subs_apple_handle(struct subs_state *st,
                                 struct hr_item *item,
                                 const struct subs_pre *pre)
{
    json_t *payload = pre->payload, *tx = pre->tx, *renewal = pre->renewal;
    const json_t *data;
    const char *type, *subtype, *uuid;
    enum subs_strategy strategy;
    bool known = false;
    int64_t signed_ms;

    if (!payload) {
        verify_failed(st, item, pre);
        return SUBS_STEP_DONE;
    }
    type = str_of(payload, "notificationType");
    subtype = str_of(payload, "subtype");
    uuid = str_of(payload, "notificationUUID");
    signed_ms = int_of(payload, "signedDate");
    data = json_object_get(payload, "data");
    if (!type || !uuid || signed_ms <= 0) {
        hr_item_dead(item, HR_ERR_PERMANENT,
                     "appstore notification without notificationType, "
                     "notificationUUID or signedDate");
        return SUBS_STEP_DONE;
    }
    strategy =
        subs_table_lookup(st->table, SUBS_APPSTORE, type, subtype, &known);
    if (!known) {
        hr_metric_add(st->unknown, (const char *[]){PROVIDER}, 1);
        count(st, type, "unknown");
        hr_log_warn("unknown appstore notification, ignored",
                    HR_LOG_STR("type", type),
                    HR_LOG_STR("subtype", subtype ? subtype : ""),
                    HR_LOG_STR("notification_id", uuid));
        hr_item_filtered(item);
        return SUBS_STEP_DONE;
    }
    if (strategy == SUBS_IGNORE) {
        count(st, type, subs_strategy_name(strategy));
        hr_item_filtered(item);
        return SUBS_STEP_DONE;
    }
    if (pre->code) {
        /* a nested JWS failed */
        verify_failed(st, item, pre);
        return SUBS_STEP_DONE;
    }
    count(st, type, subs_strategy_name(strategy));
    if (!tx) {
        /* TEST, summaries, consent: nothing to apply. */
        hr_log_info("appstore notification without a transaction",
                    HR_LOG_STR("type", type),
                    HR_LOG_STR("notification_id", uuid));
        hr_item_ok(item);
        return SUBS_STEP_DONE;
    }
    {
        int auto_renew = subs_strategy_auto_renew(strategy);
        const json_t *ar = json_object_get(renewal, "autoRenewStatus");
        const char *env = str_of(tx, "environment");
        struct subs_change c;

        if (json_is_integer(ar) &&
            (json_integer_value(ar) == 0 || json_integer_value(ar) == 1))
            auto_renew = (int)json_integer_value(ar);
        c = (struct subs_change){
            .provider = PROVIDER,
            .notification_id = uuid,
            .subscription_id = str_of(tx, "originalTransactionId"),
            .app_user_id = str_of(tx, "appAccountToken"),
            .product_id = str_of(tx, "productId"),
            .state = state_of(strategy, tx),
            .expires_ms = int_of(tx, "expiresDate"),
            .auto_renew = auto_renew,
            .environment = env ? env : str_of(data, "environment"),
            .snapshot_ms = signed_ms,
            .notification_type = type,
            .subtype = subtype,
        };
        if (c.expires_ms < 0)
            c.expires_ms = 0;
        subs_queue_change(st, item, &c,
                          (json_t *const[3]){payload, tx, renewal});
    }
    return SUBS_STEP_DONE;
}
