/* herald-subs: the handler and its state (subs.h tells the story). */
#include "subs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_producer.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static void pending_clear(struct subs_state *st);

static void declare_metrics(struct subs_state *st, struct hr_metrics *m)
{
    st->notifications = hr_metrics_counter(
        m, "herald_subs_notifications_total",
        "Verified store notifications by provider, type (Apple's documented "
        "types, else \"other\") and strategy (\"unknown\": not in the table)",
        "provider,type,strategy");
    st->verify_failures = hr_metrics_counter(
        m, "herald_subs_verification_failures_total",
        "Notifications (or their nested transaction / renewal info) that "
        "failed verification, dead-lettered, by reason (subs_jws.h, "
        "subs_play.h)",
        "provider,reason");
    st->transitions = hr_metrics_counter(
        m, "herald_subs_state_transitions_total",
        "Entitlement state changes applied, from (\"none\": a first entry) "
        "to",
        "from,to");
    st->unknown = hr_metrics_counter(
        m, "herald_subs_unknown_total",
        "Notifications whose type and subtype the strategy table does not "
        "have: logged and acknowledged",
        "provider");
    st->applied = hr_metrics_counter(
        m, "herald_subs_applied_total",
        "Changes given to Redis, by result: applied, duplicate (notification "
        "id seen), stale (older snapshot), unknown (no entitlement to start)",
        "provider,result");
    st->events =
        hr_metrics_counter(m, "herald_subs_entitlement_events_total",
                           "entitlement.changed events produced", "provider");
    st->api_calls = hr_metrics_counter(
        m, "herald_subs_api_calls_total",
        "Play Developer API calls (purchase reads and acknowledgements) by "
        "HTTP status (\"error\": no answer)",
        "status");
    st->ack_failures = hr_metrics_counter(
        m, "herald_subs_ack_failures_total",
        "Google Play purchases whose acknowledgement failed (logged; the "
        "next notification of the purchase tries again)",
        NULL);
    st->circuit_state = hr_metrics_gauge(
        m, "herald_guard_circuit_state",
        "Shared circuit state of the Play Developer API and the webhooks (0 "
        "closed, 1 half-open, 2 open, auth-broken or throttled)",
        "destination");
    st->token_fetches = hr_metrics_counter(
        m, "herald_subs_token_fetches_total",
        "OAuth2 token exchanges this replica made for the Play Developer API",
        NULL);
    hr_metric_add(st->unknown, (const char *[]){"appstore"}, 0);
    hr_metric_add(st->transitions, (const char *[]){"none", "active"}, 0);
    hr_metric_add(st->events, (const char *[]){"appstore"}, 0);
    if (st->set.googleplay_packages) {
        hr_metric_add(st->unknown, (const char *[]){"googleplay"}, 0);
        hr_metric_add(st->events, (const char *[]){"googleplay"}, 0);
        hr_metric_add(st->ack_failures, NULL, 0);
        hr_metric_add(st->token_fetches, NULL, 0);
        hr_metric_set(st->circuit_state,
                      (const char *[]){SUBS_PLAY_DESTINATION}, 0);
    }
}

struct subs_circuit_verdict *
subs_circuit_check(struct subs_state *st, const char *const *dests, size_t n)
{
    struct subs_circuit_verdict *v = calloc(n, sizeof(*v));
    bool *allowed = calloc(n, sizeof(*allowed));
    enum hr_circuit_state *states = calloc(n, sizeof(*states));
    int64_t *waits = calloc(n, sizeof(*waits));
    char errstr[256];
    bool all = false;

    HR_ASSERT(v && allowed && states && waits);
    if (hr_circuit_check(st->circuit, st->redis, dests, n, hr_time_now_ms(),
                         states, allowed, waits, errstr, sizeof(errstr))) {
        hr_log_warn("circuit unavailable, calls allowed",
                    HR_LOG_STR("err", errstr));
        all = true;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = all ? (struct subs_circuit_verdict){true, HR_CIRCUIT_CLOSED, 0}
                   : (struct subs_circuit_verdict){allowed[i], states[i],
                                                   waits[i]};
        hr_metric_set(st->circuit_state, (const char *[]){dests[i]},
                      hr_circuit_state_gauge(v[i].state));
    }
    free(allowed);
    free(states);
    free(waits);
    return v;
}

void subs_circuit_report(struct subs_state *st,
                         const struct hr_circuit_outcome *outs,
                         size_t n)
{
    char errstr[256];

    if (n && hr_circuit_report(st->circuit, st->redis, outs, n,
                               hr_time_now_ms(), NULL, errstr, sizeof(errstr)))
        hr_log_warn("circuit report failed", HR_LOG_STR("err", errstr));
}

int subs_init(struct hr_worker *w, void **state)
{
    const struct hr_conf *cfg = hr_worker_conf(w);
    struct subs_state *st = calloc(1, sizeof(*st));
    char errstr[512];

    HR_ASSERT(st);
    *state = st;
    st->w = w;
    st->redis = hr_worker_redis(w);
    st->prefix = hr_redis_prefix(st->redis);
    subs_entitlement_script_init(&st->script);
    subs_settings_load(&st->set, cfg);
    st->verifier = subs_verifier_new(cfg, errstr, sizeof(errstr));
    if (!st->verifier) {
        hr_log_error("bad App Store settings", HR_LOG_STR("err", errstr));
        return -1;
    }
    st->table = subs_conf_table(cfg, errstr, sizeof(errstr));
    if (!st->table) {
        hr_log_error("bad subs strategies", HR_LOG_STR("err", errstr));
        return -1;
    }
    {
        struct hr_circuit_conf cc;

        hr_circuit_conf_load(&cc, cfg); /* validated by subs_validate() */
        st->circuit = hr_circuit_new(&cc);
        HR_ASSERT(st->circuit);
    }
    declare_metrics(st, hr_worker_metrics(w));
    if (subs_webhooks_init(st, cfg, hr_worker_metrics(w)))
        return -1;
    if (subs_google_init(st, cfg, errstr, sizeof(errstr))) {
        hr_log_error("bad Google Play settings", HR_LOG_STR("err", errstr));
        return -1;
    }
    hr_log_info(
        "subs ready",
        HR_LOG_STR("bundle_id", hr_conf_str(cfg, "HERALD_APPSTORE_BUNDLE_ID")),
        HR_LOG_STR("environments",
                   hr_conf_str(cfg, "HERALD_APPSTORE_ENVIRONMENTS")),
        HR_LOG_STR("entitlements_topic", st->set.entitlements_topic),
        HR_LOG_STR("googleplay_packages", st->set.googleplay_packages
                                              ? st->set.googleplay_packages
                                              : ""));
    return 0;
}

enum hr_batch_result
subs_handle(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct subs_state *st = state;
    enum subs_step step = SUBS_STEP_DONE;

    (void)w;
    /* Parse and verify on every verify thread; then decide in order. */
    subs_pre_batch(st, batch);
    subs_google_read_batch(st, batch);
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        const struct subs_pre *pre = &st->pre[i];
        const json_t *msg;

        if (item->outcome != HR_OUT_PENDING)
            continue;
        if (!pre->body) {
            hr_item_dead(item, HR_ERR_POISON, "%s", pre->bad);
        } else if (json_is_string(
                       json_object_get(pre->body, "signedPayload"))) {
            step = subs_apple_handle(st, item, pre);
        } else if (json_is_object(msg =
                                      json_object_get(pre->body, "message")) &&
                   json_object_get(msg, "data")) {
            step = subs_google_handle(st, item, pre->body,
                                      st->read_of ? st->read_of[i] : NULL);
        } else {
            hr_item_dead(item, HR_ERR_POISON,
                         "neither an App Store notification (signedPayload) "
                         "nor a Google Play RTDN push body (message.data)");
        }
        if (step == SUBS_STEP_PAUSE)
            break;
    }
    if (step != SUBS_STEP_PAUSE)
        step = subs_flush(st);
    if (step != SUBS_STEP_PAUSE)
        step = subs_webhooks_perform(st);
    pending_clear(st);
    subs_webhooks_clear(st);
    subs_google_reads_clear(st);
    subs_pre_clear(st);
    return step == SUBS_STEP_PAUSE ? HR_BATCH_PAUSE : HR_BATCH_DONE;
}

/* What the apply @a of @c for @item asks: metrics, entitlement.changed,
 * the item's outcome (subs_flush() says). */
static enum subs_step settle(struct subs_state *st,
                             struct hr_item *item,
                             const struct subs_change *c,
                             const struct subs_applied *a)
{
    static const char *const results[] = {"applied", "duplicate", "stale",
                                          "unknown"};
    int rc;

    hr_metric_add(st->applied,
                  (const char *[]){c->provider, results[a->result]}, 1);
    if (a->result == SUBS_APPLIED && strcmp(a->previous_state, a->state))
        hr_metric_add(
            st->transitions,
            (const char *[]){a->previous_state[0] ? a->previous_state : "none",
                             a->state},
            1);
    /* A duplicate that changed the entitlement when it was applied emits
     * its entitlement.changed again (the same event id): the first time's
     * may have been lost with a batch redone after a crash. */
    if (a->result == SUBS_DUPLICATE && !a->changed) {
        hr_item_duplicate(item);
        return SUBS_STEP_DONE;
    }
    if ((a->result != SUBS_APPLIED && a->result != SUBS_DUPLICATE) ||
        !a->changed) {
        hr_item_ok(item);
        return SUBS_STEP_DONE;
    }
    rc = subs_emit_changed(st, c, a);
    if (rc == HR_PRODUCE_REFUSED) {
        hr_item_dead(item, HR_ERR_PERMANENT,
                     "entitlement.changed too large to produce");
        return SUBS_STEP_DONE;
    }
    if (rc) {
        hr_worker_set_pause_reason(st->w, "cannot produce to %s",
                                   st->set.entitlements_topic);
        return SUBS_STEP_PAUSE;
    }
    if (st->webhooks) {
        /* the outcome waits for the backend's answers */
        subs_webhooks_queue(st, item, a->result == SUBS_DUPLICATE, st->event_id,
                            st->event, st->event_len);
        return SUBS_STEP_DONE;
    }
    if (a->result == SUBS_DUPLICATE)
        hr_item_duplicate(item);
    else
        hr_item_ok(item);
    return SUBS_STEP_DONE;
}

/* A failed apply of @item: pause when Redis is down (or lost the script),
 * else the script refused the change (a key of the wrong type...): nothing
 * was written; the operator fixes the key and redrives. */
static enum subs_step
apply_failed(struct subs_state *st, struct hr_item *item, const char *errstr)
{
    if (!hr_redis_is_connected(st->redis) || strstr(errstr, "NOSCRIPT")) {
        hr_worker_set_pause_reason(st->w, "redis unavailable: %s", errstr);
        return SUBS_STEP_PAUSE;
    }
    hr_item_dead(item, HR_ERR_PERMANENT, "entitlement not applied: %s", errstr);
    return SUBS_STEP_DONE;
}

void subs_queue_change(struct subs_state *st,
                       struct hr_item *item,
                       const struct subs_change *c,
                       json_t *const refs[3])
{
    struct subs_pending *p;
    char errstr[512];

    if (subs_entitlement_check(c, errstr, sizeof(errstr))) {
        hr_item_dead(item, HR_ERR_PERMANENT, "%s", errstr);
        return;
    }
    if (st->npending == st->pending_cap) {
        st->pending_cap = st->pending_cap ? 2 * st->pending_cap : 64;
        st->pending =
            realloc(st->pending, st->pending_cap * sizeof(*st->pending));
        HR_ASSERT(st->pending);
    }
    p = &st->pending[st->npending++];
    p->item = item;
    p->c = *c;
    for (size_t i = 0; i < 3; i++)
        p->refs[i] = json_incref(refs[i]);
}

/* Forget the queued changes, releasing what they borrow from. */
static void pending_clear(struct subs_state *st)
{
    for (size_t i = 0; i < st->npending; i++) {
        for (size_t j = 0; j < 3; j++)
            json_decref(st->pending[i].refs[j]);
    }
    st->npending = 0;
}

enum subs_step subs_flush(struct subs_state *st)
{
    enum subs_step step = SUBS_STEP_DONE;
    size_t sent = 0, i;
    char errstr[512] = "";

    /* Send them all, then read the answers in order: Redis runs the
     * scripts one after another while the next ones travel. */
    for (; sent < st->npending; sent++) {
        if (subs_entitlement_send(st->redis, &st->script, st->prefix,
                                  &st->pending[sent].c, st->set.dedupe_ttl_s,
                                  errstr, sizeof(errstr)))
            break;
    }
    for (i = 0; i < sent && step == SUBS_STEP_DONE; i++) {
        struct subs_pending *p = &st->pending[i];
        struct subs_applied a;

        if (subs_entitlement_read(st->redis, &st->script, &a, errstr,
                                  sizeof(errstr)))
            step = apply_failed(st, p->item, errstr);
        else
            step = settle(st, p->item, &p->c, &a);
    }
    /* The answers not read are dropped with the connection. */
    if (i < sent)
        hr_redis_reset(st->redis);
    if (step == SUBS_STEP_DONE && sent < st->npending)
        step = apply_failed(st, st->pending[sent].item, errstr);
    pending_clear(st);
    return step;
}

int subs_emit_changed(struct subs_state *st,
                      const struct subs_change *c,
                      const struct subs_applied *a)
{
    const char *parts[] = {"entitlement.changed", c->provider,
                           c->notification_id};
    char id[37], when[40], expires[40];
    json_t *data;
    size_t len;
    int rc;

    hr_event_derive_id(id, parts, HR_ARRAY_SIZE(parts));
    data = json_object();
    HR_ASSERT(data);
    json_object_set_new(data, "app_user_id", json_string(a->app_user_id));
    json_object_set_new(data, "provider", json_string(c->provider));
    /* a change that names no product has its record's */
    json_object_set_new(data, "product_id",
                        c->product_id      ? json_string(c->product_id)
                        : a->product_id[0] ? json_string(a->product_id)
                                           : json_null());
    json_object_set_new(data, "subscription_id",
                        json_string(c->subscription_id));
    json_object_set_new(data, "state", json_string(a->state));
    if (a->previous_state[0])
        json_object_set_new(data, "previous_state",
                            json_string(a->previous_state));
    json_object_set_new(data, "expires_at",
                        c->expires_ms > 0
                            ? json_string(hr_time_format_rfc3339(
                                  c->expires_ms, expires, sizeof(expires)))
                            : json_null());
    json_object_set_new(data, "auto_renew",
                        c->auto_renew < 0 ? json_null()
                                          : json_boolean(c->auto_renew));
    json_object_set_new(data, "environment",
                        c->environment ? json_string(c->environment)
                                       : json_null());
    json_object_set_new(data, "notification_type",
                        json_string(c->notification_type));
    json_object_set_new(data, "subtype",
                        c->subtype ? json_string(c->subtype) : json_null());
    json_object_set_new(data, "event_time",
                        json_string(hr_time_format_rfc3339(c->snapshot_ms, when,
                                                           sizeof(when))));
    /* takes ownership of data */
    len = hr_event_serialize_buf(id, SUBS_SOURCE, "entitlement.changed",
                                 a->app_user_id, data, &st->event,
                                 &st->event_cap);
    if (!len)
        return -1;
    memcpy(st->event_id, id, sizeof(st->event_id));
    st->event_len = len;
    rc = hr_worker_produce(st->w, st->set.entitlements_topic, a->app_user_id,
                           strlen(a->app_user_id), st->event, len);
    if (!rc)
        hr_metric_add(st->events, (const char *[]){c->provider}, 1);
    return rc;
}

void subs_fini(struct hr_worker *w, void *state)
{
    struct subs_state *st = state;

    (void)w;
    if (!st)
        return;
    subs_google_fini(st);
    subs_webhooks_fini(st);
    subs_jws_verifier_free(st->verifier);
    hr_circuit_free(st->circuit);
    subs_table_free(st->table);
    pending_clear(st);
    free(st->pending);
    subs_pre_clear(st);
    free(st->pre);
    free(st->event);
    free(st);
}
