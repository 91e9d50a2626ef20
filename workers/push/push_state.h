/* herald-push's state, shared by its files. Not for other workers. */
#ifndef PUSH_STATE_H
#define PUSH_STATE_H

#include "hr_circuit.h"
#include "hr_jsonw.h"
#include "hr_redis.h"
#include "hr_shared.h"
#include "push.h"

struct hr_gcp_sa;
struct hr_jwt_signer;
struct hr_metric;
struct hr_tls;
struct push_vapid;

struct push_settings {
    int concurrency;
    long timeout_ms;
    int64_t claim_ttl_s;           /* HERALD_IDEMPOTENCY_TTL */
    const char *invalidated_topic; /* device.invalidated; NULL: off */
    /* APNs */
    const char *apns_key_file, *apns_key_id, *apns_team_id, *apns_topic;
    const char *apns_endpoint, *apns_sandbox_endpoint;
    int64_t apns_refresh_s;
    /* FCM */
    const char *fcm_credentials, *fcm_endpoint, *fcm_token_uri;
    /* Web Push */
    const char *vapid_key_file, *vapid_subject;
    int64_t webpush_ttl_s;
};

/** Read the settings from @cfg (already validated). */
void push_settings_load(struct push_settings *s, const struct hr_conf *cfg);

struct push_state {
    struct push_settings set;
    struct hr_worker *w;
    struct hr_redis *redis;
    const char *prefix;
    struct hr_tls *tls;
    struct hr_http *http;
    struct hr_circuit *circuit;

    /* providers (NULL when not configured) */
    const struct push_provider *providers[PUSH_PLATFORMS];
    struct hr_jwt_signer *apns_signer;
    struct hr_shared_token apns_token;
    struct hr_gcp_sa *fcm_sa;
    char fcm_access[4096]; /* the current OAuth2 access token */
    char fcm_send_url[512];
    struct push_vapid *vapid;

    /* the batch */
    struct push_event *events; /* one per item (kind valid when parsed) */
    bool *parsed;
    size_t cap_items;
    struct push_delivery *dels;
    size_t ndels, cap_dels;
    struct hr_http_request *calls; /* one per delivery called */
    size_t *call_del;              /* the delivery of each call */
    size_t ncalls, cap_calls;
    const char **dests; /* scratch: a destination per delivery */
    enum hr_circuit_state *states;
    bool *allowed;
    int64_t *waits;
    struct hr_circuit_outcome *outs;
    size_t cap_scratch;
    json_t *plan;      /* the plan script's answer (deliveries borrow) */
    json_t *plan_devs; /* the devices' parsed JSON (deliveries borrow) */
    struct hr_jsonw jw;

    /* scripts */
    struct hr_script registry_script;
    struct hr_script plan_script;
    struct hr_script settle_script;

    /* metrics */
    struct hr_metric *deliveries;    /* {provider,status} */
    struct hr_metric *invalidated;   /* {provider,reason} */
    struct hr_metric *latency;       /* {provider} */
    struct hr_metric *refreshes;     /* {provider} */
    struct hr_metric *registry;      /* {op} */
    struct hr_metric *circuit_state; /* {destination} */
};

/** Apply the batch's registry events (one script call). Returns 0, or -1
 *  with @errstr when Redis failed (pause). */
int push_registry_apply(struct push_state *st,
                        struct hr_batch *batch,
                        char *errstr,
                        size_t errstr_size);

/** Plan the batch's pushes into st->dels (one script call: devices,
 *  badges, claims). Returns 0, or -1 with @errstr (pause). */
int push_plan(struct push_state *st,
              struct hr_batch *batch,
              char *errstr,
              size_t errstr_size);

/** Free the deliveries of the last plan. */
void push_deliveries_release(struct push_state *st);

/** Make the planned calls, classify the answers and set every push
 *  item's outcome. Returns HR_BATCH_DONE or HR_BATCH_PAUSE. */
enum hr_batch_result push_send(struct push_state *st, struct hr_batch *batch);

/** A fresh UUID-shaped id for (event id, token): apns-id, and the id of
 *  the device.invalidated it may cause. @out holds 37 bytes. */
char *push_delivery_id(char out[37], const char *event_id, const char *token);

#endif
