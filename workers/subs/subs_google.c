/*
 * herald-subs: one Google Play Real-time developer notification, from the
 * Pub/Sub push body to the entitlement (subs.h tells the story).
 *
 * The RTDN only says that something changed (subs_play.h):
 * - a subscription notification, or a voided purchase of a subscription
 *   (productType 1), is followed by purchases.subscriptionsv2.get with an
 *   androidpublisher token (cloud/hr_gcp.h, one per fleet through Redis);
 *   the answer is the snapshot: its state, unless the strategy is revoke
 *   or refund (then the strategy's: revoked / refunded), its product,
 *   expiry, auto-renew flag, owner (obfuscatedExternalAccountId) and
 *   environment (testPurchase: Sandbox), ordered by the time of the read.
 *   An active purchase still pending acknowledgement is acknowledged when
 *   HERALD_GOOGLEPLAY_ACKNOWLEDGE is on; a failed acknowledgement is
 *   logged and counted, not fatal (the next notification tries again;
 *   Google refunds a purchase left unacknowledged for 3 days).
 * - a one-time product notification is followed by purchases.products.get:
 *   its purchaseState gives the state (unless the strategy is revoke or
 *   refund), obfuscatedExternalAccountId the owner, purchaseType 0 the
 *   Sandbox; a purchased one not yet acknowledged is acknowledged. A voided
 *   one-time purchase names no product and is applied from the
 *   notification alone, the strategy's state on the stored record. There
 *   is no expiry.
 * - a test notification is counted and acknowledged; a kind or
 *   type/subtype the table does not know is counted and filtered.
 *
 * API failures: 401/403 forget the token and try once more with a fresh
 * one, then dead-letter (auth); 404/410 dead-letter (permanent: "purchase
 * not found"); 429, 5xx and transport failures retry (destination
 * "googleplay:api", Retry-After honoured); another status dead-letters
 * (permanent).
 *
 * The purchase reads of a batch are made together before its items are
 * decided (subs_google_read_batch(): one token, READ_CONCURRENCY calls in
 * flight over kept connections); an item whose read was refused with
 * 401/403 reads again itself, with a fresh token. Acknowledgements, rare
 * (a new purchase), are made one at a time as items are decided.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_gcp.h"
#include "hr_http.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_retry.h"
#include "hr_time.h"
#include "hr_tls.h"
#include "subs.h"
#include "subs_play.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define PROVIDER       "googleplay"
#define DESTINATION    SUBS_PLAY_DESTINATION
#define API_TIMEOUT_MS 10000L
/* Play Developer API calls in flight: the reads of a batch overlap their
 * round trips (the API's quota is per minute, not per connection). */
#define READ_CONCURRENCY 8

int subs_google_init(struct subs_state *st,
                     const struct hr_conf *cfg,
                     char *errstr,
                     size_t errstr_size)
{
    const struct subs_settings *s = &st->set;
    const char *ca = hr_conf_str(cfg, "HERALD_TLS_CA_FILE");

    if (!s->googleplay_packages)
        return 0;
    if (s->npackages <= 0) {
        snprintf(errstr, errstr_size,
                 "HERALD_GOOGLEPLAY_PACKAGE_NAMES: empty, or more than 16 "
                 "entries");
        return -1;
    }
    if (!s->googleplay_credentials || !*s->googleplay_credentials) {
        snprintf(errstr, errstr_size,
                 "HERALD_GOOGLEPLAY_CREDENTIALS_FILE: required with "
                 "HERALD_GOOGLEPLAY_PACKAGE_NAMES");
        return -1;
    }
    st->play_sa = hr_gcp_sa_load(s->googleplay_credentials,
                                 s->googleplay_token_uri, errstr, errstr_size);
    if (!st->play_sa)
        return -1;
    st->tls = hr_tls_new(ca, errstr, errstr_size);
    if (!st->tls)
        return -1;
    st->http = hr_http_new(ca, READ_CONCURRENCY, errstr, errstr_size);
    if (!st->http)
        return -1;
    hr_log_info("googleplay ready",
                HR_LOG_STR("packages", s->googleplay_packages),
                HR_LOG_STR("client_email", hr_gcp_sa_email(st->play_sa)),
                HR_LOG_STR("endpoint", s->googleplay_endpoint),
                HR_LOG_BOOL("acknowledge", s->googleplay_acknowledge));
    return 0;
}

void subs_google_fini(struct subs_state *st)
{
    subs_google_reads_clear(st);
    free(st->reads);
    free(st->read_urls);
    free(st->read_of);
    st->reads = NULL;
    st->read_urls = NULL;
    st->read_of = NULL;
    st->reads_cap = 0;
    hr_http_free(st->http);
    hr_tls_free(st->tls);
    hr_gcp_sa_free(st->play_sa);
    st->http = NULL;
    st->tls = NULL;
    st->play_sa = NULL;
}

/* The metrics label of @n's type: the table's Google types, else
 * "other" (an unknown kind's name comes from the body: unbounded). */
static const char *type_label(const struct subs_play_notification *n)
{
    return n->kind == SUBS_PLAY_UNKNOWN ? "other" : n->type;
}

static void count(struct subs_state *st,
                  const struct subs_play_notification *n,
                  const char *strategy)
{
    hr_metric_add(st->notifications,
                  (const char *[]){PROVIDER, type_label(n), strategy}, 1);
}

static void count_call(struct subs_state *st, const struct hr_http_request *r)
{
    char status[24];

    if (r->status > 0)
        snprintf(status, sizeof(status), "%ld", r->status);
    else
        snprintf(status, sizeof(status), "error");
    hr_metric_add(st->api_calls, (const char *[]){status}, 1);
}

/* An androidpublisher token into @out; counts the exchanges made. */
static enum hr_gcp_result token_get(struct subs_state *st,
                                    char *out,
                                    size_t out_size,
                                    char *errstr,
                                    size_t errstr_size)
{
    uint64_t fetches = hr_gcp_sa_fetches(st->play_sa);
    enum hr_gcp_result rc =
        hr_gcp_token(st->play_sa, st->redis, st->tls, SUBS_PLAY_SCOPE, out,
                     out_size, NULL, errstr, errstr_size);

    if (hr_gcp_sa_fetches(st->play_sa) != fetches)
        hr_metric_add(st->token_fetches, NULL,
                      (double)(hr_gcp_sa_fetches(st->play_sa) - fetches));
    return rc;
}

/* One call: @method @url (body @body or NULL) with a bearer token; on
 * 401/403 the token is forgotten and the call made once more with a new
 * one (@attempts 2; 1 when the first was already refused: only the one
 * with a new token). Returns HR_GCP_OK with @req finished (any status; the
 * caller releases it), else why no token came, with @errstr. */
static enum hr_gcp_result call(struct subs_state *st,
                               const char *method,
                               const char *url,
                               const char *body,
                               int attempts,
                               struct hr_http_request *req,
                               char *errstr,
                               size_t errstr_size)
{
    char token[HR_GCP_TOKEN_MAX], auth[HR_GCP_TOKEN_MAX + 32];
    const char *headers[] = {auth, "Accept: application/json",
                             body ? "Content-Type: application/json" : NULL,
                             NULL};
    enum hr_gcp_result rc = HR_GCP_OK;

    for (int attempt = 0; attempt < attempts; attempt++) {
        rc = token_get(st, token, sizeof(token), errstr, errstr_size);
        if (rc != HR_GCP_OK)
            break;
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hr_http_request_release(req);
        *req = (struct hr_http_request){
            .method = method,
            .url = url,
            .headers = headers,
            .body = body,
            .body_len = body ? strlen(body) : 0,
            .timeout_ms = API_TIMEOUT_MS,
        };
        if (hr_http_perform(st->http, req, 1))
            req->status = 0;
        count_call(st, req);
        subs_circuit_report(st,
                            &(struct hr_circuit_outcome){DESTINATION,
                                                         hr_http_classify(req),
                                                         req->retry_after_ms},
                            1);
        if (req->status != 401 && req->status != 403)
            break;
        hr_gcp_token_forget(st->play_sa, st->redis, SUBS_PLAY_SCOPE, token);
    }
    memset(token, 0, sizeof(token));
    memset(auth, 0, sizeof(auth));
    return rc;
}

/* Set @item's outcome (or the pause reason: SUBS_STEP_PAUSE) for the
 * token failure @rc. */
static enum subs_step token_failed(struct subs_state *st,
                                   struct hr_item *item,
                                   enum hr_gcp_result rc,
                                   const char *errstr)
{
    switch (rc) {
    case HR_GCP_REDIS:
        hr_worker_set_pause_reason(st->w, "redis unavailable: %s", errstr);
        return SUBS_STEP_PAUSE;
    case HR_GCP_AUTH:
        hr_item_dead(item, HR_ERR_AUTH, "googleplay token refused: %s", errstr);
        return SUBS_STEP_DONE;
    default:
        hr_item_retry(item, HR_ERR_TRANSIENT, DESTINATION, -1,
                      "googleplay token unavailable: %s", errstr);
        return SUBS_STEP_DONE;
    }
}

/* Set @item's outcome for the failed call @req (not 2xx) of @what. */
static void call_failed(struct hr_item *item,
                        const struct hr_http_request *req,
                        const char *what)
{
    int cls = hr_http_classify(req);

    if (req->status == 401 || req->status == 403) {
        hr_item_dead(item, HR_ERR_AUTH,
                     "googleplay %s: HTTP %ld with a fresh token (does the "
                     "service account have access to the app?)",
                     what, req->status);
    } else if (req->status == 404 || req->status == 410) {
        hr_item_dead(item, HR_ERR_PERMANENT,
                     "googleplay %s: purchase not found (HTTP %ld)", what,
                     req->status);
    } else if (!req->status) {
        hr_item_retry(item, HR_ERR_TRANSIENT, DESTINATION, -1,
                      "googleplay %s: no answer: %s", what,
                      req->error[0] ? req->error : "transfer failed");
    } else if (cls == HR_ERR_TRANSIENT || cls == HR_ERR_THROTTLED) {
        hr_item_retry(item, (enum hr_err_class)cls, DESTINATION,
                      req->retry_after_ms, "googleplay %s: HTTP %ld", what,
                      req->status);
    } else {
        hr_item_dead(item, HR_ERR_PERMANENT, "googleplay %s: HTTP %ld", what,
                     req->status);
    }
}

/* POST the acknowledgement @url (NULL: @errstr says why there is none)
 * of @n's purchase; failures are logged and counted only. Frees @url. */
static void acknowledge(struct subs_state *st,
                        const struct subs_play_notification *n,
                        char *url,
                        char *errstr,
                        size_t errstr_size)
{
    struct hr_http_request req = {0};
    char redacted[256];
    enum hr_gcp_result rc;

    if (!url) {
        hr_metric_add(st->ack_failures, NULL, 1);
        hr_log_warn("googleplay acknowledge not sent",
                    HR_LOG_STR("err", errstr),
                    HR_LOG_STR("notification_id", n->message_id));
        return;
    }
    rc = call(st, "POST", url, "{}", 2, &req, errstr, errstr_size);
    if (rc != HR_GCP_OK || hr_http_classify(&req) >= 0) {
        hr_metric_add(st->ack_failures, NULL, 1);
        hr_log_warn("googleplay acknowledge failed",
                    HR_LOG_STR("url", hr_http_url_redact(url, redacted,
                                                         sizeof(redacted))),
                    HR_LOG_I64("status", rc == HR_GCP_OK ? req.status : 0),
                    HR_LOG_STR("err", rc == HR_GCP_OK ? req.error : errstr),
                    HR_LOG_STR("notification_id", n->message_id));
    }
    hr_http_request_release(&req);
    free(url);
}

/* The purchase @what in the finished read @req (its JSON answer, the
 * caller decrefs), or NULL with @item's outcome set. */
static json_t *purchase_of(struct hr_item *item,
                           const struct hr_http_request *req,
                           const char *what)
{
    json_t *purchase = NULL;
    json_error_t jerr;

    if (hr_http_classify(req) >= 0)
        call_failed(item, req, what);
    else if (!req->response_body ||
             !(purchase =
                   json_loadb(req->response_body, req->response_len, 0, &jerr)))
        hr_item_dead(item, HR_ERR_PERMANENT,
                     "googleplay %s: unusable answer: not JSON", what);
    return purchase;
}

/*
 * The purchase @what ("subscriptionsv2.get") at @url (NULL: @errstr says
 * why there is none; freed here): from @read, the answer read ahead, unless
 * it is NULL or was refused (401/403: GET it again, with a fresh token),
 * or the circuit's verdict when it held the read back (st->held_read).
 * Its JSON answer (the caller decrefs), or NULL with @item's outcome set
 * or *@step SUBS_STEP_PAUSE.
 */
static json_t *read_purchase(struct subs_state *st,
                             struct hr_item *item,
                             char *url,
                             const char *what,
                             const struct hr_http_request *read,
                             enum subs_step *step,
                             char *errstr,
                             size_t errstr_size)
{
    struct hr_http_request req = {0};
    json_t *purchase = NULL;
    enum hr_gcp_result rc;

    *step = SUBS_STEP_DONE;
    if (!url) {
        hr_item_dead(item, HR_ERR_PERMANENT, "googleplay: %s", errstr);
        return NULL;
    }
    if (read == &st->held_read) {
        hr_item_held_back(item, (int)st->held_state, DESTINATION,
                          st->held_wait_ms);
        free(url);
        return NULL;
    }
    if (read && read->status != 401 && read->status != 403) {
        free(url);
        return purchase_of(item, read, what);
    }
    rc = call(st, "GET", url, NULL, read ? 1 : 2, &req, errstr, errstr_size);
    if (rc != HR_GCP_OK)
        *step = token_failed(st, item, rc, errstr);
    else
        purchase = purchase_of(item, &req, what);
    hr_http_request_release(&req);
    free(url);
    return purchase;
}

/*
 * The URL that reads @n's purchase, and *@what names the call; NULL when
 * there is none to read (a voided one-time purchase names no product) or
 * it cannot be built (*@what set, @errstr says why).
 */
static char *read_url(const struct subs_state *st,
                      const struct subs_play_notification *n,
                      const char **what,
                      char *errstr,
                      size_t errstr_size)
{
    const char *api = st->set.googleplay_endpoint;

    *what = NULL;
    if (n->kind == SUBS_PLAY_SUBSCRIPTION ||
        (n->kind == SUBS_PLAY_VOIDED && n->product_type == 1)) {
        *what = "subscriptionsv2.get";
        return subs_play_get_url(api, n->package_name, n->purchase_token,
                                 errstr, errstr_size);
    }
    if (n->kind == SUBS_PLAY_ONE_TIME && n->product_id[0]) {
        *what = "products.get";
        return subs_play_product_url(api, n->package_name, n->product_id,
                                     n->purchase_token, false, errstr,
                                     errstr_size);
    }
    return NULL;
}

/* Queue @c for @item with the batch's other changes (subs_queue_change()),
 * its strings copied into one JSON array that lives as long as the change:
 * they come from the notification and the snapshot, both gone when the
 * item is decided, while the pipeline is applied at the batch's end. */
static void
queue(struct subs_state *st, struct hr_item *item, struct subs_change *c)
{
    const char **fields[] = {
        &c->notification_id,   &c->subscription_id, &c->app_user_id,
        &c->product_id,        &c->state,           &c->environment,
        &c->notification_type, &c->subtype};
    json_t *keep = json_array();

    HR_ASSERT(keep);
    for (size_t i = 0; i < HR_ARRAY_SIZE(fields); i++) {
        if (!*fields[i])
            continue;
        HR_ASSERT(
            !json_array_append_new(keep, json_string_nocheck(*fields[i])));
        *fields[i] =
            json_string_value(json_array_get(keep, json_array_size(keep) - 1));
    }
    subs_queue_change(st, item, c, (json_t *const[3]){keep, NULL, NULL});
    json_decref(keep);
}

/* The state of @s over the snapshot's @snap_state: revoke and refund say
 * what happened better than the snapshot (expired, or still active for a
 * moment). */
static const char *state_of(enum subs_strategy s, const char *snap_state)
{
    if (s == SUBS_REVOKE || s == SUBS_REFUND)
        return subs_strategy_state(s, NULL);
    return snap_state;
}

/* A subscription (or voided subscription) @n under @strategy: read,
 * acknowledge, apply. */
static enum subs_step subscription(struct subs_state *st,
                                   struct hr_item *item,
                                   const struct subs_play_notification *n,
                                   enum subs_strategy strategy,
                                   const struct hr_http_request *read)
{
    struct subs_play_snapshot snap;
    struct subs_change c;
    char errstr[300] = "";
    const char *what;
    enum subs_step step;
    char *url = read_url(st, n, &what, errstr, sizeof(errstr));
    json_t *purchase =
        read_purchase(st, item, url, what, read, &step, errstr, sizeof(errstr));
    /* the snapshot is as of its read */
    int64_t now = read && read->status != 401 && read->status != 403
                      ? st->read_ms
                      : hr_time_now_ms();

    if (!purchase)
        return step;
    if (subs_play_snapshot_parse(purchase, now, &snap, errstr,
                                 sizeof(errstr))) {
        hr_item_dead(item, HR_ERR_PERMANENT,
                     "googleplay subscriptionsv2.get: unusable answer: %s",
                     errstr);
        goto out;
    }
    if (!snap.known_state)
        hr_log_warn("googleplay subscription in an unknown state, kept",
                    HR_LOG_STR("notification_id", n->message_id));
    if (st->set.googleplay_acknowledge && !snap.acknowledged && snap.state &&
        !strcmp(snap.state, "active") && snap.product_id[0])
        acknowledge(st, n,
                    subs_play_ack_url(st->set.googleplay_endpoint,
                                      n->package_name, snap.product_id,
                                      n->purchase_token, errstr,
                                      sizeof(errstr)),
                    errstr, sizeof(errstr));
    c = (struct subs_change){
        .provider = PROVIDER,
        .notification_id = n->message_id,
        .subscription_id = n->purchase_token,
        .app_user_id = snap.app_user_id[0] ? snap.app_user_id : NULL,
        .product_id = snap.product_id[0] ? snap.product_id
                      : n->product_id[0] ? n->product_id
                                         : NULL,
        .state = state_of(strategy, snap.state),
        .expires_ms = snap.expires_ms > 0 ? snap.expires_ms : 0,
        .auto_renew = snap.auto_renew ? 1 : 0,
        .environment = snap.test_purchase ? "Sandbox" : "Production",
        .snapshot_ms = now,
        .notification_type = n->type,
        .subtype = n->subtype,
    };
    queue(st, item, &c);
out:
    json_decref(purchase);
    return step;
}

/*
 * A one-time product @n under @strategy. With its sku (a one-time product
 * notification), the purchase is read with purchases.products.get: its
 * state (purchased active, canceled revoked, pending none yet) unless the
 * strategy is revoke or refund, its owner, its environment; a purchase not
 * yet acknowledged is acknowledged. A voided one-time purchase names no
 * product, so it is applied from the notification alone (the strategy's
 * state on the stored record).
 */
static enum subs_step one_time(struct subs_state *st,
                               struct hr_item *item,
                               const struct subs_play_notification *n,
                               enum subs_strategy strategy,
                               const struct hr_http_request *read)
{
    struct subs_play_product p = {0};
    char errstr[300] = "";
    enum subs_step step = SUBS_STEP_DONE;
    json_t *purchase = NULL;
    struct subs_change c = {
        .provider = PROVIDER,
        .notification_id = n->message_id,
        .subscription_id = n->purchase_token,
        .product_id = n->product_id[0] ? n->product_id : NULL,
        .state = subs_strategy_state(strategy, NULL),
        .auto_renew = -1,
        .snapshot_ms = hr_time_now_ms(),
        .notification_type = n->type,
        .subtype = n->subtype,
    };

    if (n->kind == SUBS_PLAY_ONE_TIME && n->product_id[0]) {
        const char *what;
        char *url = read_url(st, n, &what, errstr, sizeof(errstr));

        purchase = read_purchase(st, item, url, what, read, &step, errstr,
                                 sizeof(errstr));
        if (!purchase)
            return step;
        if (subs_play_product_parse(purchase, &p, errstr, sizeof(errstr))) {
            hr_item_dead(item, HR_ERR_PERMANENT,
                         "googleplay products.get: unusable answer: %s",
                         errstr);
            goto out;
        }
        if (!p.known_state)
            hr_log_warn("googleplay product purchase in an unknown state, "
                        "kept",
                        HR_LOG_STR("notification_id", n->message_id));
        if (st->set.googleplay_acknowledge && !p.acknowledged && p.state &&
            !strcmp(p.state, "active"))
            acknowledge(st, n,
                        subs_play_product_url(st->set.googleplay_endpoint,
                                              n->package_name, n->product_id,
                                              n->purchase_token, true, errstr,
                                              sizeof(errstr)),
                        errstr, sizeof(errstr));
        /* a notice (a pending purchase canceled) changes no state */
        c.state = strategy == SUBS_NOTICE ? NULL : state_of(strategy, p.state);
        c.app_user_id = p.app_user_id[0] ? p.app_user_id : NULL;
        c.environment = p.test_purchase ? "Sandbox" : "Production";
    }
    queue(st, item, &c);
out:
    json_decref(purchase);
    return step;
}

enum subs_step subs_google_handle(struct subs_state *st,
                                  struct hr_item *item,
                                  const json_t *body,
                                  const struct hr_http_request *read)
{
    struct subs_play_notification *n;
    enum subs_strategy strategy;
    enum subs_step step = SUBS_STEP_DONE;
    const char *code = NULL;
    char errstr[300] = "";
    bool known = false;

    if (!st->set.googleplay_packages) {
        hr_item_dead(item, HR_ERR_PERMANENT,
                     "googleplay not configured (set "
                     "HERALD_GOOGLEPLAY_PACKAGE_NAMES)");
        return SUBS_STEP_DONE;
    }
    n = malloc(sizeof(*n));
    HR_ASSERT(n);
    if (subs_play_parse(body, st->set.packages, (size_t)st->set.npackages, n,
                        &code, errstr, sizeof(errstr))) {
        if (code && !strcmp(code, "unknown_kind")) {
            hr_metric_add(st->unknown, (const char *[]){PROVIDER}, 1);
            count(st, n, "unknown");
            hr_log_warn("unknown googleplay notification kind, ignored",
                        HR_LOG_STR("kind", n->type),
                        HR_LOG_STR("notification_id", n->message_id));
            hr_item_filtered(item);
            goto out;
        }
        if (!code)
            code = "malformed";
        hr_metric_add(st->verify_failures, (const char *[]){PROVIDER, code}, 1);
        hr_item_dead(item, HR_ERR_PERMANENT,
                     "verification_failed:%s: googleplay notification: %s",
                     code, errstr);
        goto out;
    }
    if (n->kind == SUBS_PLAY_TEST) {
        count(st, n, "notice");
        hr_log_info("googleplay test notification",
                    HR_LOG_STR("package", n->package_name),
                    HR_LOG_STR("notification_id", n->message_id));
        hr_item_ok(item);
        goto out;
    }
    strategy = subs_table_lookup(st->table, SUBS_GOOGLEPLAY, n->type,
                                 n->subtype, &known);
    if (!known) {
        hr_metric_add(st->unknown, (const char *[]){PROVIDER}, 1);
        count(st, n, "unknown");
        hr_log_warn("unknown googleplay notification, ignored",
                    HR_LOG_STR("type", n->type),
                    HR_LOG_STR("subtype", n->subtype),
                    HR_LOG_STR("notification_id", n->message_id));
        hr_item_filtered(item);
        goto out;
    }
    count(st, n, subs_strategy_name(strategy));
    if (strategy == SUBS_IGNORE) {
        hr_item_filtered(item);
        goto out;
    }
    if (n->kind == SUBS_PLAY_SUBSCRIPTION ||
        (n->kind == SUBS_PLAY_VOIDED && n->product_type == 1))
        step = subscription(st, item, n, strategy, read);
    else
        step = one_time(st, item, n, strategy, read);
out:
    free(n);
    return step;
}

/* ---- the batch's reads, made together ------------------------------------ */

/* Whether @body is a Google Play push body (as subs_handle() tells them
 * from App Store notifications). */
static bool is_play_body(const json_t *body)
{
    const json_t *msg = json_object_get(body, "message");

    return body && !json_object_get(body, "signedPayload") &&
           json_is_object(msg) && json_object_get(msg, "data");
}

/* Queue the read of @body's purchase as st->reads[st->nreads] for item
 * @i, when its notification is one subs_google_handle() would read. */
static void read_queue(struct subs_state *st,
                       const json_t *body,
                       size_t i,
                       struct subs_play_notification *n)
{
    enum subs_strategy strategy;
    const char *code = NULL, *what;
    char errstr[300];
    bool known = false;
    char *url;

    if (subs_play_parse(body, st->set.packages, (size_t)st->set.npackages, n,
                        &code, errstr, sizeof(errstr)) ||
        n->kind == SUBS_PLAY_TEST)
        return;
    strategy = subs_table_lookup(st->table, SUBS_GOOGLEPLAY, n->type,
                                 n->subtype, &known);
    if (!known || strategy == SUBS_IGNORE)
        return;
    url = read_url(st, n, &what, errstr, sizeof(errstr));
    if (!url)
        return;
    st->read_urls[st->nreads] = url;
    st->reads[st->nreads++] = (struct hr_http_request){
        .method = "GET",
        .url = url,
        .timeout_ms = API_TIMEOUT_MS,
        .opaque = &st->read_of[i],
    };
}

/*
 * Ask the circuit of the API for the st->nreads reads queued. The reads it
 * holds back are moved after the others, and their items will find
 * st->held_read as their answer (the circuit's state and wait beside it).
 * Returns how many reads may go (the first ones).
 */
static size_t reads_allowed(struct subs_state *st)
{
    size_t n = st->nreads, go = 0;
    const char **dests = calloc(n, sizeof(*dests));
    struct subs_circuit_verdict *v;

    HR_ASSERT(dests);
    for (size_t k = 0; k < n; k++)
        dests[k] = DESTINATION;
    v = subs_circuit_check(st, dests, n);
    for (size_t k = 0; k < n; k++) {
        struct hr_http_request r = st->reads[k];
        char *url = st->read_urls[k];

        if (!v[k].allowed) {
            *(struct hr_http_request **)r.opaque = &st->held_read;
            st->held_state = v[k].state;
            st->held_wait_ms = v[k].wait_ms;
            continue;
        }
        /* the reads before k are placed: swap the first held one back */
        st->reads[k] = st->reads[go];
        st->read_urls[k] = st->read_urls[go];
        st->reads[go] = r;
        st->read_urls[go++] = url;
    }
    free(dests);
    free(v);
    return go;
}

void subs_google_read_batch(struct subs_state *st, struct hr_batch *batch)
{
    char token[HR_GCP_TOKEN_MAX], auth[HR_GCP_TOKEN_MAX + 32], errstr[300];
    const char *headers[] = {auth, "Accept: application/json", NULL};
    struct subs_play_notification *n;
    struct hr_circuit_outcome *outs;
    bool refused = false;
    size_t go;

    subs_google_reads_clear(st);
    if (!st->play_sa || !batch->n)
        return;
    if (batch->n > st->reads_cap) {
        free(st->reads);
        free(st->read_urls);
        free(st->read_of);
        st->reads = calloc(batch->n, sizeof(*st->reads));
        st->read_urls = calloc(batch->n, sizeof(*st->read_urls));
        st->read_of = calloc(batch->n, sizeof(*st->read_of));
        HR_ASSERT(st->reads && st->read_urls && st->read_of);
        st->reads_cap = batch->n;
    }
    memset(st->read_of, 0, batch->n * sizeof(*st->read_of));
    n = malloc(sizeof(*n));
    HR_ASSERT(n);
    for (size_t i = 0; i < batch->n; i++) {
        if (batch->items[i].outcome == HR_OUT_PENDING &&
            is_play_body(st->pre[i].body))
            read_queue(st, st->pre[i].body, i, n);
    }
    free(n);
    go = st->nreads ? reads_allowed(st) : 0;
    /* without a token, each item asks for one itself and takes the
     * outcome its failure calls for */
    if (!go || token_get(st, token, sizeof(token), errstr, sizeof(errstr)) !=
                   HR_GCP_OK)
        return;
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    outs = calloc(go, sizeof(*outs));
    HR_ASSERT(outs);
    for (size_t k = 0; k < go; k++)
        st->reads[k].headers = headers;
    (void)hr_http_perform(st->http, st->reads, go);
    st->read_ms = hr_time_now_ms();
    for (size_t k = 0; k < go; k++) {
        struct hr_http_request *r = &st->reads[k];

        r->headers = NULL;
        *(struct hr_http_request **)r->opaque = r;
        count_call(st, r);
        outs[k] = (struct hr_circuit_outcome){DESTINATION, hr_http_classify(r),
                                              r->retry_after_ms};
        refused |= r->status == 401 || r->status == 403;
    }
    subs_circuit_report(st, outs, go);
    free(outs);
    if (refused)
        hr_gcp_token_forget(st->play_sa, st->redis, SUBS_PLAY_SCOPE, token);
    memset(token, 0, sizeof(token));
    memset(auth, 0, sizeof(auth));
}

void subs_google_reads_clear(struct subs_state *st)
{
    for (size_t k = 0; k < st->nreads; k++) {
        hr_http_request_release(&st->reads[k]);
        free(st->read_urls[k]);
    }
    st->nreads = 0;
}
