/*
 * APNs (research/push.md §3): HTTP/2, token-based. One provider token for
 * the whole fleet, shared through Redis (state/hr_shared.h) and replaced
 * by one replica at a time every HERALD_APNS_TOKEN_REFRESH_S (Apple: no
 * sooner than 20 and no later than 60 minutes; several processes minting
 * their own get 429 TooManyProviderTokenUpdates).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_jwt.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_time.h"
#include "push_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define APNS_PAYLOAD_MAX 4096
/* A token is refused an hour after its iat: stop using it a little before
 * even when it could not be replaced. */
#define APNS_TOKEN_LIFE_MS (55 * 60 * 1000)

/* hr_shared_mint_fn: a provider token is a local ES256 signature; any
 * failure is the key's (PUSH_PREPARE_AUTH). */
static enum hr_shared_result mint(void *opaque,
                                  int64_t now_ms,
                                  char *out,
                                  size_t size,
                                  int64_t *refresh_at_ms,
                                  int64_t *expires_ms,
                                  char *errstr,
                                  size_t errstr_size)
{
    struct push_state *st = opaque;
    json_t *claims = json_pack("{s:s, s:I}", "iss", st->set.apns_team_id, "iat",
                               (json_int_t)(now_ms / 1000));
    char *jwt = hr_jwt_sign_claims(st->apns_signer, st->set.apns_key_id, claims,
                                   errstr, errstr_size);

    json_decref(claims);
    if (!jwt)
        return HR_SHARED_AUTH;
    if (strlen(jwt) >= size) {
        snprintf(errstr, errstr_size, "apns token too long");
        free(jwt);
        return HR_SHARED_AUTH;
    }
    memcpy(out, jwt, strlen(jwt) + 1);
    free(jwt);
    *refresh_at_ms = now_ms + st->set.apns_refresh_s * 1000;
    *expires_ms = now_ms + APNS_TOKEN_LIFE_MS;
    return HR_SHARED_OK;
}

static int prepare(struct push_state *st, char *errstr, size_t errstr_size)
{
    uint64_t minted = st->apns_token.minted;
    enum hr_shared_result res = hr_shared_token_get(
        &st->apns_token, st->redis, mint, st, errstr, errstr_size);

    if (st->apns_token.minted != minted) {
        hr_metric_add(st->refreshes, (const char *[]){"apns"}, 1);
        hr_log_info("apns provider token minted",
                    HR_LOG_STR("kid", st->set.apns_key_id));
    }
    switch (res) {
    case HR_SHARED_OK:
        return 0;
    case HR_SHARED_REDIS:
        return PUSH_PREPARE_PAUSE;
    case HR_SHARED_TRANSIENT: /* another replica's token is late */
        return PUSH_PREPARE_TRANSIENT;
    default:
        return PUSH_PREPARE_AUTH;
    }
}

static int forget(struct push_state *st,
                  const char *credential,
                  char *errstr,
                  size_t errstr_size)
{
    return hr_shared_token_forget(&st->apns_token, st->redis, credential,
                                  errstr, errstr_size);
}

/* The notification: aps (alert, badge, sound, thread-id, category,
 * mutable-content) and the custom data beside it. */
static size_t payload(struct push_state *st, const struct push_delivery *d)
{
    const struct push_event *ev = d->ev;
    struct hr_jsonw *jw = &st->jw;
    const char *key;
    json_t *v;

    hr_jsonw_reset(jw);
    hr_jsonw_open(jw, "aps");
    hr_jsonw_open(jw, "alert");
    hr_jsonw_str(jw, "title", ev->title);
    hr_jsonw_str(jw, "body", ev->body);
    hr_jsonw_close(jw);
    if (d->badge >= 0)
        hr_jsonw_int(jw, "badge", d->badge);
    if (ev->sound)
        hr_jsonw_str(jw, "sound", ev->sound);
    if (ev->thread_id)
        hr_jsonw_str(jw, "thread-id", ev->thread_id);
    if (ev->category)
        hr_jsonw_str(jw, "category", ev->category);
    if (ev->mutable_content)
        hr_jsonw_int(jw, "mutable-content", 1);
    hr_jsonw_close(jw);
    json_object_foreach(ev->data, key, v)
        hr_jsonw_str(jw, key, json_string_value(v));
    return hr_jsonw_finish(jw);
}

static void build(struct push_state *st, struct push_delivery *d)
{
    const struct push_event *ev = d->ev;
    size_t len = payload(st, d), ulen;
    char id[37], num[32];

    if (len > APNS_PAYLOAD_MAX) {
        d->verdict = PUSH_PERMANENT;
        snprintf(d->reason, sizeof(d->reason),
                 "apns payload of %zu bytes is over %d", len, APNS_PAYLOAD_MAX);
        return;
    }
    if (!d->token[0] ||
        strspn(d->token, "0123456789abcdefABCDEF") != strlen(d->token)) {
        /* 400 BadDeviceToken without a call: APNs slows down a connection
         * that sends such errors */
        d->verdict = PUSH_INVALID;
        snprintf(d->reason, sizeof(d->reason), "BadDeviceToken");
        return;
    }
    d->body = malloc(len);
    HR_ASSERT(d->body);
    memcpy(d->body, st->jw.buf, len);
    d->body_len = len;
    ulen = strlen(d->token) + 128;
    d->url = malloc(ulen);
    HR_ASSERT(d->url);
    snprintf(d->url, ulen, "%s/3/device/%s",
             d->sandbox ? st->set.apns_sandbox_endpoint : st->set.apns_endpoint,
             d->token);
    d->credential = strdup(st->apns_token.value);
    HR_ASSERT(d->credential);
    {
        size_t alen = strlen(d->credential) + 8;
        char *auth = malloc(alen);

        HR_ASSERT(auth);
        snprintf(auth, alen, "bearer %s", d->credential);
        push_delivery_header(d, "authorization", auth);
        free(auth);
    }
    push_delivery_header(d, "apns-topic", d->app ? d->app : st->set.apns_topic);
    push_delivery_header(d, "apns-push-type", "alert");
    push_delivery_header(d, "apns-priority", ev->high ? "10" : "5");
    push_delivery_header(d, "apns-id", push_delivery_id(id, ev->id, d->token));
    if (ev->ttl_seconds >= 0) {
        snprintf(num, sizeof(num), "%lld",
                 ev->ttl_seconds
                     ? (long long)(hr_time_now_ms() / 1000 + ev->ttl_seconds)
                     : 0LL);
        push_delivery_header(d, "apns-expiration", num);
    }
    if (ev->collapse_id)
        push_delivery_header(d, "apns-collapse-id", ev->collapse_id);
    push_delivery_header(d, "content-type", "application/json");
}

struct reason_action {
    const char *reason;
    enum push_verdict verdict;
};

/* Apple's documented reasons (research/push.md §3.5) and what they mean
 * for a delivery; a status not listed goes by its class. */
static const struct reason_action actions[] = {
    {"Unregistered", PUSH_INVALID},
    {"ExpiredToken", PUSH_INVALID},
    {"BadDeviceToken", PUSH_INVALID},
    {"DeviceTokenNotForTopic", PUSH_INVALID},
    {"ExpiredProviderToken", PUSH_REAUTH},
    {"InvalidProviderToken", PUSH_REAUTH},
    {"TooManyProviderTokenUpdates", PUSH_THROTTLED},
    {"TooManyRequests", PUSH_THROTTLED},
    {"IdleTimeout", PUSH_TRANSIENT},
    {"InternalServerError", PUSH_TRANSIENT},
    {"ServiceUnavailable", PUSH_TRANSIENT},
    {"Shutdown", PUSH_TRANSIENT},
    {"MissingProviderToken", PUSH_AUTH},
    {"BadCertificate", PUSH_AUTH},
    {"BadCertificateEnvironment", PUSH_AUTH},
    {"Forbidden", PUSH_AUTH},
    {"UnrelatedKeyIdInToken", PUSH_AUTH},
    {"BadEnvironmentKeyIdInToken", PUSH_AUTH},
    {"TopicDisallowed", PUSH_AUTH},
    {"BadTopic", PUSH_AUTH},
};

static void classify(struct push_state *st,
                     struct push_delivery *d,
                     const struct hr_http_request *req)
{
    json_t *body;
    const char *reason = NULL;
    int cls;

    (void)st;
    d->retry_after_ms = req->retry_after_ms;
    cls = hr_http_classify(req);
    if (cls < 0) {
        d->verdict = PUSH_SENT;
        return;
    }
    if (!req->status) {
        d->verdict = PUSH_TRANSIENT;
        snprintf(d->reason, sizeof(d->reason), "%s", req->error);
        return;
    }
    body = req->response_body
               ? json_loadb(req->response_body, req->response_len, 0, NULL)
               : NULL;
    reason = json_string_value(json_object_get(body, "reason"));
    snprintf(d->reason, sizeof(d->reason), "%s",
             reason ? reason : "no reason given");
    d->invalid_since_ms =
        json_is_integer(json_object_get(body, "timestamp"))
            ? json_integer_value(json_object_get(body, "timestamp"))
            : 0;
    d->verdict = PUSH_PENDING;
    for (size_t i = 0; reason && i < HR_ARRAY_SIZE(actions); i++) {
        if (!strcmp(reason, actions[i].reason))
            d->verdict = actions[i].verdict;
    }
    json_decref(body); /* reason pointed into it */
    if (d->verdict == PUSH_PENDING) {
        switch (cls) {
        case HR_ERR_TRANSIENT:
            d->verdict = PUSH_TRANSIENT;
            break;
        case HR_ERR_THROTTLED:
            d->verdict = PUSH_THROTTLED;
            break;
        case HR_ERR_AUTH:
            d->verdict = PUSH_AUTH;
            break;
        default:
            d->verdict = PUSH_PERMANENT; /* payload and request errors */
            break;
        }
    }
}

const struct push_provider push_apns = {
    .name = "apns",
    .destination = "push:apns",
    .prepare = prepare,
    .build = build,
    .classify = classify,
    .forget = forget,
};
