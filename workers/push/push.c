/* herald-push: the handler and its state (push.h tells the story). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_event.h"
#include "hr_file.h"
#include "hr_gcp.h"
#include "hr_jwt.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_tls.h"
#include "push_ece.h"
#include "push_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Key files are a few hundred bytes. */
#define PUSH_KEY_FILE_MAX (64 * 1024)

extern const char hr_lua_push_registry[];
extern const unsigned long hr_lua_push_registry_len;
extern const char hr_lua_push_plan[];
extern const unsigned long hr_lua_push_plan_len;
extern const char hr_lua_push_settle[];
extern const unsigned long hr_lua_push_settle_len;

char *push_delivery_id(char out[37], const char *event_id, const char *token)
{
    const char *parts[] = {event_id, token};

    return hr_event_derive_id(out, parts, 2);
}

const struct push_provider *push_provider_of(const struct push_state *st,
                                             enum push_platform platform)
{
    return platform < PUSH_PLATFORMS ? st->providers[platform] : NULL;
}

static void declare_metrics(struct push_state *st, struct hr_metrics *m)
{
    static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,    2.5,   5,    10};

    st->deliveries = hr_metrics_counter(
        m, "herald_push_deliveries_total",
        "Deliveries by provider and status: sent, invalid (dead token), "
        "transient, throttled, auth, permanent, duplicate (already sent)",
        "provider,status");
    st->invalidated = hr_metrics_counter(
        m, "herald_push_invalidated_total",
        "Dead tokens removed from the registry, by provider and reason",
        "provider,reason");
    st->latency = hr_metrics_histogram(m, "herald_push_latency_seconds",
                                       "Provider call latency", "provider",
                                       buckets, HR_ARRAY_SIZE(buckets));
    st->refreshes = hr_metrics_counter(
        m, "herald_push_token_refreshes_total",
        "Provider credentials this replica minted (APNs provider tokens, "
        "FCM access tokens), shared with the others through Redis",
        "provider");
    st->registry = hr_metrics_counter(
        m, "herald_push_registry_total",
        "Device registry changes (stale_*: older than what is known)", "op");
    st->circuit_state = hr_metrics_gauge(
        m, "herald_guard_circuit_state",
        "Shared circuit state of each provider (0 closed, 1 half-open, 2 "
        "open, auth-broken or throttled)",
        "destination");
    for (int p = 0; p < PUSH_PLATFORMS; p++) {
        const struct push_provider *pv = st->providers[p];

        if (!pv)
            continue;
        hr_metric_add(st->deliveries, (const char *[]){pv->name, "sent"}, 0);
        hr_metric_add(st->refreshes, (const char *[]){pv->name}, 0);
        hr_metric_set(st->circuit_state, (const char *[]){pv->destination}, 0);
    }
}

/* The providers the configuration enables; -1 when a key is unusable. */
static int providers_new(struct push_state *st)
{
    char errstr[512], url[600];
    char *pem;
    size_t len;

    if (st->set.apns_key_file) {
        pem = hr_file_read(st->set.apns_key_file, PUSH_KEY_FILE_MAX, &len,
                           errstr, sizeof(errstr));
        if (!pem) {
            hr_log_error("cannot read the apns key", HR_LOG_STR("err", errstr));
            return -1;
        }
        st->apns_signer =
            hr_jwt_signer_new("ES256", pem, len, errstr, sizeof(errstr));
        memset(pem, 0, len);
        free(pem);
        if (!st->apns_signer) {
            hr_log_error("bad apns key", HR_LOG_STR("err", errstr));
            return -1;
        }
        snprintf(url, sizeof(url), "push:apns:token:%s:%s",
                 st->set.apns_team_id, st->set.apns_key_id);
        hr_shared_token_init(&st->apns_token, st->prefix, url);
        st->providers[PUSH_IOS] = &push_apns;
    }
    if (st->set.fcm_credentials) {
        st->fcm_sa =
            hr_gcp_sa_load(st->set.fcm_credentials, st->set.fcm_token_uri,
                           errstr, sizeof(errstr));
        if (!st->fcm_sa) {
            hr_log_error("bad fcm credentials", HR_LOG_STR("err", errstr));
            return -1;
        }
        snprintf(st->fcm_send_url, sizeof(st->fcm_send_url),
                 "%s/v1/projects/%s/messages:send", st->set.fcm_endpoint,
                 hr_gcp_sa_project(st->fcm_sa));
        st->providers[PUSH_ANDROID] = &push_fcm;
    }
    if (st->set.vapid_key_file) {
        pem = hr_file_read(st->set.vapid_key_file, PUSH_KEY_FILE_MAX, &len,
                           errstr, sizeof(errstr));
        if (!pem) {
            hr_log_error("cannot read the vapid key",
                         HR_LOG_STR("err", errstr));
            return -1;
        }
        st->vapid =
            push_vapid_new(pem, st->set.vapid_subject, errstr, sizeof(errstr));
        memset(pem, 0, len);
        free(pem);
        if (!st->vapid) {
            hr_log_error("bad vapid key", HR_LOG_STR("err", errstr));
            return -1;
        }
        st->providers[PUSH_WEB] = &push_webpush;
    }
    return 0;
}

int push_init(struct hr_worker *w, void **state)
{
    const struct hr_conf *cfg = hr_worker_conf(w);
    struct push_state *st = calloc(1, sizeof(*st));
    struct hr_circuit_conf cc;
    char errstr[512];

    HR_ASSERT(st);
    st->w = w;
    st->redis = hr_worker_redis(w);
    st->prefix = hr_redis_prefix(st->redis);
    push_settings_load(&st->set, cfg);
    st->registry_script = (struct hr_script){
        "push_registry", hr_lua_push_registry, hr_lua_push_registry_len, ""};
    st->plan_script = (struct hr_script){"push_plan", hr_lua_push_plan,
                                         hr_lua_push_plan_len, ""};
    st->settle_script = (struct hr_script){"push_settle", hr_lua_push_settle,
                                           hr_lua_push_settle_len, ""};
    *state = st;
    st->tls = hr_tls_new(hr_conf_str(cfg, "HERALD_TLS_CA_FILE"), errstr,
                         sizeof(errstr));
    st->http = st->tls
                   ? hr_http_new(hr_conf_str(cfg, "HERALD_TLS_CA_FILE"),
                                 st->set.concurrency, errstr, sizeof(errstr))
                   : NULL;
    if (!st->http) {
        hr_log_error("cannot create the http client",
                     HR_LOG_STR("err", errstr));
        return -1;
    }
    /* Two per provider host: one in use and one replacing it when the
     * provider sends GOAWAY, not one per waiting call. */
    hr_http_limit_host_connections(st->http, 2);
    hr_circuit_conf_load(&cc, cfg);
    st->circuit = hr_circuit_new(&cc);
    if (!st->circuit || providers_new(st))
        return -1;
    declare_metrics(st, hr_worker_metrics(w));
    hr_log_info("push providers",
                HR_LOG_BOOL("apns", st->providers[PUSH_IOS] != NULL),
                HR_LOG_BOOL("fcm", st->providers[PUSH_ANDROID] != NULL),
                HR_LOG_BOOL("webpush", st->providers[PUSH_WEB] != NULL),
                HR_LOG_I64("concurrency", st->set.concurrency));
    return 0;
}

static void events_reserve(struct push_state *st, size_t n)
{
    if (n <= st->cap_items)
        return;
    free(st->events);
    free(st->parsed);
    st->events = calloc(n, sizeof(*st->events));
    st->parsed = calloc(n, sizeof(*st->parsed));
    HR_ASSERT(st->events && st->parsed);
    st->cap_items = n;
}

static void events_release(struct push_state *st, size_t n)
{
    for (size_t i = 0; i < n && i < st->cap_items; i++) {
        if (st->parsed[i])
            push_event_release(&st->events[i]);
        st->parsed[i] = false;
    }
}

enum hr_batch_result
push_handle(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct push_state *st = state;
    enum hr_batch_result res = HR_BATCH_PAUSE;
    char errstr[512];

    (void)w;
    events_reserve(st, batch->n);
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];

        st->parsed[i] = false;
        if (item->outcome != HR_OUT_PENDING)
            continue;
        /* our own device.invalidated, read back from herald.devices */
        if (!strcmp(item->ev.type, "device.invalidated")) {
            hr_item_filtered(item);
            continue;
        }
        if (push_event_parse(&item->ev, item->timestamp_ms, &st->events[i],
                             errstr, sizeof(errstr))) {
            push_event_release(&st->events[i]);
            hr_item_dead(item, HR_ERR_POISON, "%s", errstr);
            continue;
        }
        st->parsed[i] = true;
    }
    if (push_registry_apply(st, batch, errstr, sizeof(errstr)) ||
        push_plan(st, batch, errstr, sizeof(errstr))) {
        hr_worker_set_pause_reason(w, "redis unavailable: %s", errstr);
        goto out;
    }
    res = push_send(st, batch);
out:
    push_deliveries_release(st);
    events_release(st, batch->n);
    return res;
}

void push_fini(struct hr_worker *w, void *state)
{
    struct push_state *st = state;

    (void)w;
    if (!st)
        return;
    push_deliveries_release(st);
    json_decref(st->plan);
    json_decref(st->plan_devs);
    free(st->dels);
    free(st->calls);
    free(st->call_del);
    free(st->dests);
    free(st->states);
    free(st->allowed);
    free(st->waits);
    free(st->outs);
    free(st->events);
    free(st->parsed);
    hr_jsonw_release(&st->jw);
    hr_jwt_signer_free(st->apns_signer);
    hr_gcp_sa_free(st->fcm_sa);
    push_vapid_free(st->vapid);
    hr_circuit_free(st->circuit);
    hr_http_free(st->http);
    hr_tls_free(st->tls);
    free(st);
}
