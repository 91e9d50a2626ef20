/*
 * herald-subs: store subscription notifications in, entitlements out.
 *
 * Input (herald.subscriptions, SPEC section 4) is the provider's body as
 * received, bare or wrapped in a CloudEvent whose data is that body (the
 * runtime does not parse CloudEvents for this worker: subs_handle() reads
 * the raw value with jansson and unwraps a CloudEvent when it has
 * "specversion"):
 *
 * - App Store Server Notifications V2, {"signedPayload": "<JWS>"}
 *   (subs_apple.c): the JWS is verified (subs_jws.h), then the nested
 *   signedTransactionInfo and signedRenewalInfo each with their own chain;
 *   the strategy comes from the table (subs_strategy.h); the change is
 *   applied to Redis atomically (subs_entitlement.h); when the entitlement
 *   changed, an entitlement.changed event goes to
 *   HERALD_SUBS_ENTITLEMENTS_TOPIC keyed by app_user_id, its id derived
 *   from the notificationUUID.
 * - Google Play RTDN, {"message": {"data": ...}} (subs_google.c): parsed
 *   (subs_play.h) against the HERALD_GOOGLEPLAY_PACKAGE_NAMES allow-list
 *   (unset: every Google body is dead-lettered "googleplay not
 *   configured"); the strategy comes from the table; a subscription (or a
 *   voided subscription) is read with purchases.subscriptionsv2.get under
 *   an androidpublisher token of the service account
 *   HERALD_GOOGLEPLAY_CREDENTIALS_FILE (cloud/hr_gcp.h, shared through
 *   Redis), its snapshot applied like Apple's and a pending purchase
 *   acknowledged (HERALD_GOOGLEPLAY_ACKNOWLEDGE); a one-time product is
 *   read with purchases.products.get the same way (subs_google.c).
 *
 * A batch is first parsed and its App Store JWS verified on
 * HERALD_SUBS_VERIFY_THREADS threads (subs_verify.c); the loop thread
 * then decides each item in order. The changes of a batch (both stores')
 * are queued (subs_queue_change()) and applied in one Redis pipeline at
 * its end (subs_flush()); the optional
 * backend webhooks are then called together (subs_webhook.c), each item's
 * outcome waiting for its calls.
 *
 * Outcomes: a notification that fails verification is dead-lettered
 * (permanent, its code in the reason) and counted in
 * herald_subs_verification_failures_total{provider,reason}; a type/subtype the
 * table does not know is counted in herald_subs_unknown_total, logged and
 * filtered; Redis unavailable pauses the batch. Every verified
 * notification counts in herald_subs_notifications_total{provider,type,
 * strategy} (type bounded to Apple's documented types, else "other").
 *
 * A redelivered notification (a batch redone after its outputs failed to
 * reach the broker, or a crash) is a duplicate for Redis, but the seen
 * marker keeps what its first apply did, so an entitlement.changed it
 * caused is produced again with the same event id: nothing lost,
 * consumers dedupe by id.
 */
#ifndef SUBS_H
#define SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_circuit.h"
#include "hr_gcp.h"
#include "hr_http.h"
#include "hr_jsonw.h"
#include "hr_redis.h"
#include "hr_webhook.h"
#include "hr_worker.h"
#include "subs_entitlement.h"
#include "subs_jws.h"
#include "subs_strategy.h"

#define SUBS_SOURCE "/herald/subs"

/** The worker's settings (SPEC section 9, Subscriptions). */
extern const struct hr_conf_spec subs_conf[];

/** The most entries a comma-separated list setting may have. */
#define SUBS_LIST_MAX 16

/** The androidpublisher OAuth2 scope (Play Developer API). */
#define SUBS_PLAY_SCOPE "https://www.googleapis.com/auth/androidpublisher"

/** The most verify threads (HERALD_SUBS_VERIFY_THREADS). */
#define SUBS_VERIFY_THREADS_MAX 16

/* What the verify threads found for one item (subs_verify.c). */
struct subs_pre {
    json_t *root;       /* the value parsed, or NULL */
    const json_t *body; /* the store body in it; NULL: @bad says why */
    char bad[256];
    /* App Store: the verified payloads; a failure leaves the one that
     * failed NULL, its code (subs_jws.h), what it was and why */
    json_t *payload, *tx, *renewal;
    const char *code, *what;
    char errstr[200];
};

/** Settings, borrowed from the configuration (valid until fini). */
struct subs_settings {
    const char *entitlements_topic;
    const char *googleplay_packages;    /* NULL: Google Play not configured */
    const char *googleplay_credentials; /* service-account JSON file */
    const char *googleplay_endpoint;    /* Play Developer API base URL */
    const char *googleplay_token_uri;   /* NULL: the key file's */
    bool googleplay_acknowledge;
    /* googleplay_packages split; npackages -1 when it has more than
     * SUBS_LIST_MAX names */
    const char *packages[SUBS_LIST_MAX];
    int npackages;
    char packages_buf[4096];
    int64_t dedupe_ttl_s;
    int verify_threads; /* HERALD_SUBS_VERIFY_THREADS */
};

/* A change waiting for the batch's pipelined apply (subs_flush()): its
 * strings are borrowed from @refs, held until then. */
struct subs_pending {
    struct hr_item *item;
    struct subs_change c;
    struct json_t *refs[3];
};

/* One backend webhook call of the batch (subs_webhook.c). */
struct subs_hook {
    struct hr_webhook_call call; /* the body is malloc'd */
    struct hr_item *item;
    bool duplicate; /* the item's outcome when every call succeeds */
    bool held;      /* the circuit held it back (not made): */
    enum hr_circuit_state held_state; /* its destination's */
    int64_t held_wait_ms;
};

struct subs_state {
    struct hr_worker *w;
    struct hr_redis *redis; /* the runtime's, borrowed */
    const char *prefix;
    struct hr_script script;
    struct subs_settings set;
    struct subs_jws_verifier *verifier;
    struct subs_table *table;
    struct subs_pre *pre; /* per batch item */
    size_t npre, pre_cap;
    struct subs_pending *pending; /* the batch's App Store changes */
    size_t npending, pending_cap;
    char *event;       /* the serialized entitlement.changed, reused */
    char event_id[37]; /* and its id and length */
    size_t event_len;
    /* backend webhooks (NULL: none configured) and the batch's calls */
    struct hr_webhooks *webhooks;
    char **hook_dests; /* per webhook: "webhook:<name>" */
    struct subs_hook *hooks;
    struct hr_webhook_call **hook_calls;
    size_t nhooks, hooks_cap;
    size_t event_cap;
    struct hr_metric *notifications;   /* provider,type,strategy */
    struct hr_metric *verify_failures; /* provider,reason */
    struct hr_metric *transitions;     /* from,to */
    struct hr_metric *unknown;         /* provider */
    struct hr_metric *applied;         /* provider,result */
    struct hr_metric *events;          /* entitlement.changed produced */
    /* the shared circuits of the Play Developer API and the webhooks */
    struct hr_circuit *circuit;
    struct hr_metric *circuit_state; /* destination */
    /* Google Play (NULL unless HERALD_GOOGLEPLAY_PACKAGE_NAMES is set) */
    struct hr_gcp_sa *play_sa;
    struct hr_tls *tls;
    struct hr_http *http;
    struct hr_metric *api_calls;    /* status */
    struct hr_metric *ack_failures; /* acknowledgements that failed */
    struct hr_metric *token_fetches;
    /* the batch's purchase reads, made together (subs_google_read_batch()):
     * read_of[i] is item i's answer, or NULL when none was made for it */
    struct hr_http_request *reads;
    char **read_urls;
    struct hr_http_request **read_of;
    size_t nreads, reads_cap;
    int64_t read_ms; /* when they were made */
    /* read_of[i] of an item whose read the circuit held back */
    struct hr_http_request held_read;
    enum hr_circuit_state held_state;
    int64_t held_wait_ms;
};

/** The Play Developer API's destination (retries, circuit). */
#define SUBS_PLAY_DESTINATION "googleplay:api"

/** What handling one item asks of the batch. */
enum subs_step {
    SUBS_STEP_DONE = 0, /* the item has its outcome */
    SUBS_STEP_PAUSE,    /* Redis or the producer is unavailable */
};

/**
 * The App Store verifier for @cfg (HERALD_APPSTORE_*), or NULL with
 * @errstr (no root, an unreadable root file, a bad environment list,
 * Production without HERALD_APPSTORE_APP_APPLE_ID). The caller frees it.
 */
struct subs_jws_verifier *
subs_verifier_new(const struct hr_conf *cfg, char *errstr, size_t errstr_size);

/**
 * The strategy table of @cfg's "subs": {"strategies": ...} (the default
 * when absent), or NULL with @errstr. The caller frees it.
 */
struct subs_table *
subs_conf_table(const struct hr_conf *cfg, char *errstr, size_t errstr_size);

/** Fill @s from @cfg. */
void subs_settings_load(struct subs_settings *s, const struct hr_conf *cfg);

/** --check-config and startup: the verifier's and the table's settings. */
void subs_validate(struct hr_conf *cfg);

int subs_init(struct hr_worker *w, void **state);
enum hr_batch_result
subs_handle(struct hr_worker *w, void *state, struct hr_batch *batch);
void subs_fini(struct hr_worker *w, void *state);

/** The shared circuit's answer for one intended call. */
struct subs_circuit_verdict {
    bool allowed;
    enum hr_circuit_state state; /* its destination's */
    int64_t wait_ms;             /* throttled: how long it asked to wait */
};

/**
 * Ask the shared circuit whether each of @n calls to @dests[i] (@n > 0)
 * may go: a malloc'd array of @n verdicts, the caller frees it. When the
 * circuit cannot be read (Redis), every call is allowed (logged): the
 * guard's budget still bounds retries.
 */
struct subs_circuit_verdict *
subs_circuit_check(struct subs_state *st, const char *const *dests, size_t n);

/** Report the outcomes of @n calls made to the shared circuit (logged when
 *  it cannot be written). */
void subs_circuit_report(struct subs_state *st,
                         const struct hr_circuit_outcome *outs,
                         size_t n);

/**
 * Parse every pending item of @batch and verify its App Store JWS, on up to
 * HERALD_SUBS_VERIFY_THREADS threads, into st->pre[i] (subs_verify.c).
 */
void subs_pre_batch(struct subs_state *st, struct hr_batch *batch);

/** Release what subs_pre_batch() found. */
void subs_pre_clear(struct subs_state *st);

/**
 * Verify the App Store body @body (it has "signedPayload") with @v into
 * @pre: the notification, then its signedTransactionInfo and
 * signedRenewalInfo, each with its own chain. Thread-safe; touches
 * nothing but @pre.
 */
void subs_apple_verify(const struct subs_jws_verifier *v,
                       const struct json_t *body,
                       struct subs_pre *pre);

/**
 * Handle the App Store notification of @item, verified into @pre (by
 * subs_apple_verify()): look up, apply, emit (subs.h tells the story).
 * Sets the item's outcome unless it returns SUBS_STEP_PAUSE.
 */
enum subs_step subs_apple_handle(struct subs_state *st,
                                 struct hr_item *item,
                                 const struct subs_pre *pre);

/**
 * Set up the Google Play path when HERALD_GOOGLEPLAY_PACKAGE_NAMES is set
 * (the service account, TLS, the HTTP client). Returns 0, or -1 with
 * @errstr.
 */
int subs_google_init(struct subs_state *st,
                     const struct hr_conf *cfg,
                     char *errstr,
                     size_t errstr_size);

/** Free what subs_google_init() made. */
void subs_google_fini(struct subs_state *st);

/**
 * Read the purchase of every Google Play notification of @batch that needs
 * one, all at once (up to SUBS_PLAY_CONCURRENCY in flight, one token):
 * st->read_of[i] holds item i's answer for subs_google_handle(). Items it
 * cannot read ahead (no token, a bad notification) are left to
 * subs_google_handle(), which decides them one by one.
 */
void subs_google_read_batch(struct subs_state *st, struct hr_batch *batch);

/** Release the answers of subs_google_read_batch(). */
void subs_google_reads_clear(struct subs_state *st);

/**
 * Handle one Google Play RTDN push body @body (borrowed; it has
 * "message") for @item: parse, look up, read the purchase (@read: the
 * answer read ahead, or NULL), apply, emit, acknowledge (subs_google.c).
 * Sets the item's outcome unless it returns SUBS_STEP_PAUSE.
 */
enum subs_step subs_google_handle(struct subs_state *st,
                                  struct hr_item *item,
                                  const struct json_t *body,
                                  const struct hr_http_request *read);

/**
 * Queue @c (checked here: a bad change is dead-lettered) for @item, to be
 * applied with the other changes of the batch in one Redis pipeline by
 * subs_flush(); @c's strings are borrowed from @refs (up to three JSON
 * values, NULL entries allowed), which are held until then.
 */
void subs_queue_change(struct subs_state *st,
                       struct hr_item *item,
                       const struct subs_change *c,
                       struct json_t *const refs[3]);

/**
 * Apply every queued change in one pipeline, in the order queued, then
 * settle each one: count it under its provider, emit entitlement.changed
 * when the entitlement changed, set the item's outcome (or queue its
 * webhook calls). Returns SUBS_STEP_PAUSE
 * (the changes not settled keep no outcome: the batch is redone) when
 * Redis or the producer is unavailable.
 */
enum subs_step subs_flush(struct subs_state *st);

/** --check-config: the config file's "subs": {"webhooks": ...}. */
void subs_webhooks_validate(struct hr_conf *cfg);

/** Load the backend webhooks of @cfg, if any. Returns 0, or -1 (logged). */
int subs_webhooks_init(struct subs_state *st,
                       const struct hr_conf *cfg,
                       struct hr_metrics *reg);

/**
 * Queue a call of every backend webhook with @event (@len bytes, copied),
 * the entitlement.changed @event_id that @item caused; the item's outcome
 * waits for subs_webhooks_perform() (@duplicate: the one to give it when
 * every call succeeds).
 */
void subs_webhooks_queue(struct subs_state *st,
                         struct hr_item *item,
                         bool duplicate,
                         const char *event_id,
                         const char *event,
                         size_t len);

/**
 * Make the batch's queued calls together and give each item its outcome
 * (subs_webhook.c says which). SUBS_STEP_PAUSE when no call could be made.
 */
enum subs_step subs_webhooks_perform(struct subs_state *st);

/** Forget the queued calls (the batch pauses: its items keep no outcome). */
void subs_webhooks_clear(struct subs_state *st);

void subs_webhooks_fini(struct subs_state *st);

/**
 * The label of Apple's notification type @type for metrics: @type itself
 * when it is one of Apple's documented types, else "other".
 */
const char *subs_apple_type_label(const char *type);

/**
 * Produce entitlement.changed for @c as applied (@a) to the entitlements
 * topic keyed by the resolved app_user_id, id derived from the provider
 * and notification id. Returns 0, -1 when the producer refused it for now
 * (pause), or HR_PRODUCE_REFUSED (dead-letter: it can never be sent).
 */
int subs_emit_changed(struct subs_state *st,
                      const struct subs_change *c,
                      const struct subs_applied *a);

#endif
