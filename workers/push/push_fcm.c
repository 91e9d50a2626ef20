/*
 * FCM HTTP v1 (research/push.md §4): one message per request, an OAuth2
 * access token from the service account shared by the fleet
 * (cloud/hr_gcp.h), errors read from the FcmError errorCode in the
 * answer's details first, then from its status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_gcp.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "push_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define FCM_PAYLOAD_MAX 4096
/* QUOTA_EXCEEDED: back off at least a minute (research/push.md §4.4). */
#define FCM_QUOTA_WAIT_MS 60000

static int prepare(struct push_state *st, char *errstr, size_t errstr_size)
{
    char token[HR_GCP_TOKEN_MAX];
    uint64_t fetches = hr_gcp_sa_fetches(st->fcm_sa);
    enum hr_gcp_result rc =
        hr_gcp_token(st->fcm_sa, st->redis, st->tls, HR_GCP_SCOPE_FCM, token,
                     sizeof(token), NULL, errstr, errstr_size);

    if (hr_gcp_sa_fetches(st->fcm_sa) != fetches)
        hr_metric_add(st->refreshes, (const char *[]){"fcm"},
                      (double)(hr_gcp_sa_fetches(st->fcm_sa) - fetches));
    switch (rc) {
    case HR_GCP_OK:
        snprintf(st->fcm_access, sizeof(st->fcm_access), "%s", token);
        return 0;
    case HR_GCP_REDIS:
        return PUSH_PREPARE_PAUSE;
    case HR_GCP_AUTH:
        return PUSH_PREPARE_AUTH;
    default:
        return PUSH_PREPARE_TRANSIENT;
    }
}

static int forget(struct push_state *st,
                  const char *credential,
                  char *errstr,
                  size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    hr_gcp_token_forget(st->fcm_sa, st->redis, HR_GCP_SCOPE_FCM, credential);
    return 0;
}

/* {"message": {token, notification, data, android, apns}} into st->jw. */
static size_t message(struct push_state *st, const struct push_delivery *d)
{
    const struct push_event *ev = d->ev;
    struct hr_jsonw *jw = &st->jw;
    const char *key;
    json_t *v;
    char num[32];

    hr_jsonw_reset(jw);
    hr_jsonw_open(jw, "message");
    hr_jsonw_str(jw, "token", d->token);
    hr_jsonw_open(jw, "notification");
    hr_jsonw_str(jw, "title", ev->title);
    hr_jsonw_str(jw, "body", ev->body);
    hr_jsonw_close(jw);
    if (ev->data) {
        hr_jsonw_open(jw, "data");
        json_object_foreach(ev->data, key, v)
            hr_jsonw_str(jw, key, json_string_value(v));
        hr_jsonw_close(jw);
    }
    hr_jsonw_open(jw, "android");
    hr_jsonw_str(jw, "priority", ev->high ? "HIGH" : "NORMAL");
    if (ev->ttl_seconds >= 0) {
        snprintf(num, sizeof(num), "%llds", (long long)ev->ttl_seconds);
        hr_jsonw_str(jw, "ttl", num);
    }
    if (ev->collapse_id)
        hr_jsonw_str(jw, "collapse_key", ev->collapse_id);
    hr_jsonw_open(jw, "notification");
    if (d->badge >= 0)
        hr_jsonw_int(jw, "notification_count", d->badge);
    if (ev->sound)
        hr_jsonw_str(jw, "sound", ev->sound);
    if (ev->thread_id)
        hr_jsonw_str(jw, "tag", ev->thread_id);
    if (ev->category)
        hr_jsonw_str(jw, "click_action", ev->category);
    hr_jsonw_close(jw);
    hr_jsonw_close(jw);
    /* for iOS devices registered through FCM */
    hr_jsonw_open(jw, "apns");
    hr_jsonw_open(jw, "headers");
    hr_jsonw_str(jw, "apns-priority", ev->high ? "10" : "5");
    if (ev->collapse_id)
        hr_jsonw_str(jw, "apns-collapse-id", ev->collapse_id);
    hr_jsonw_close(jw);
    hr_jsonw_open(jw, "payload");
    hr_jsonw_open(jw, "aps");
    if (d->badge >= 0)
        hr_jsonw_int(jw, "badge", d->badge);
    if (ev->sound)
        hr_jsonw_str(jw, "sound", ev->sound);
    if (ev->thread_id)
        hr_jsonw_str(jw, "thread-id", ev->thread_id);
    if (ev->category)
        hr_jsonw_str(jw, "category", ev->category);
    hr_jsonw_close(jw);
    hr_jsonw_close(jw);
    hr_jsonw_close(jw);
    hr_jsonw_close(jw);
    return hr_jsonw_finish(jw);
}

static void build(struct push_state *st, struct push_delivery *d)
{
    size_t len = message(st, d);

    if (len > FCM_PAYLOAD_MAX + 1024) {
        d->verdict = PUSH_PERMANENT;
        snprintf(d->reason, sizeof(d->reason),
                 "fcm message of %zu bytes is too large", len);
        return;
    }
    d->body = malloc(len);
    HR_ASSERT(d->body);
    memcpy(d->body, st->jw.buf, len);
    d->body_len = len;
    d->url = strdup(st->fcm_send_url);
    d->credential = strdup(st->fcm_access);
    HR_ASSERT(d->url && d->credential);
    {
        size_t alen = strlen(d->credential) + 8;
        char *auth = malloc(alen);

        HR_ASSERT(auth);
        snprintf(auth, alen, "Bearer %s", d->credential);
        push_delivery_header(d, "authorization", auth);
        free(auth);
    }
    push_delivery_header(d, "content-type", "application/json; charset=utf-8");
}

/* The FcmError errorCode of an error answer, else NULL. */
static const char *fcm_error_code(json_t *error)
{
    json_t *details = json_object_get(error, "details"), *dt;
    size_t i;

    json_array_foreach(details, i, dt)
    {
        const char *type = json_string_value(json_object_get(dt, "@type"));
        const char *code = json_string_value(json_object_get(dt, "errorCode"));

        if (type && strstr(type, "google.firebase.fcm.v1.FcmError") && code)
            return code;
    }
    return NULL;
}

struct code_action {
    const char *code;
    enum push_verdict verdict;
};

/* research/push.md §4.4. */
static const struct code_action actions[] = {
    {"UNREGISTERED", PUSH_INVALID},
    {"INVALID_ARGUMENT", PUSH_INVALID}, /* FcmError: the token is bad */
    {"SENDER_ID_MISMATCH", PUSH_INVALID},
    {"QUOTA_EXCEEDED", PUSH_THROTTLED},
    {"UNAVAILABLE", PUSH_TRANSIENT},
    {"INTERNAL", PUSH_TRANSIENT},
    {"UNSPECIFIED_ERROR", PUSH_TRANSIENT},
    {"THIRD_PARTY_AUTH_ERROR", PUSH_AUTH},
    {"APNS_AUTH_ERROR", PUSH_AUTH},
};

/* The google.rpc status when no FcmError says more. */
static const struct code_action statuses[] = {
    {"UNAUTHENTICATED", PUSH_REAUTH}, /* our access token */
    {"PERMISSION_DENIED", PUSH_AUTH},
    {"INVALID_ARGUMENT", PUSH_PERMANENT}, /* the message: BadRequest */
    {"NOT_FOUND", PUSH_PERMANENT},
    {"RESOURCE_EXHAUSTED", PUSH_THROTTLED},
    {"UNAVAILABLE", PUSH_TRANSIENT},
    {"INTERNAL", PUSH_TRANSIENT},
};

static void classify(struct push_state *st,
                     struct push_delivery *d,
                     const struct hr_http_request *req)
{
    json_t *body, *error;
    const char *code, *status, *message;
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
    error = json_object_get(body, "error");
    code = fcm_error_code(error);
    status = json_string_value(json_object_get(error, "status"));
    message = json_string_value(json_object_get(error, "message"));
    snprintf(d->reason, sizeof(d->reason), "%s%s%s",
             code     ? code
             : status ? status
                      : "no error code",
             message ? ": " : "", message ? message : "");
    d->verdict = PUSH_PENDING;
    for (size_t i = 0; code && i < HR_ARRAY_SIZE(actions); i++) {
        if (!strcmp(code, actions[i].code))
            d->verdict = actions[i].verdict;
    }
    for (size_t i = 0; !code && status && i < HR_ARRAY_SIZE(statuses); i++) {
        if (!strcmp(status, statuses[i].code))
            d->verdict = statuses[i].verdict;
    }
    if (d->verdict == PUSH_PENDING) {
        d->verdict = cls == HR_ERR_TRANSIENT   ? PUSH_TRANSIENT
                     : cls == HR_ERR_THROTTLED ? PUSH_THROTTLED
                     : req->status == 401      ? PUSH_REAUTH
                     : cls == HR_ERR_AUTH      ? PUSH_AUTH
                                               : PUSH_PERMANENT;
    }
    if (code && !strcmp(code, "QUOTA_EXCEEDED") &&
        d->retry_after_ms < FCM_QUOTA_WAIT_MS)
        d->retry_after_ms = FCM_QUOTA_WAIT_MS;
    if (code && d->verdict == PUSH_INVALID)
        snprintf(d->reason, sizeof(d->reason), "%s", code);
    json_decref(body); /* code and status pointed into it */
}

const struct push_provider push_fcm = {
    .name = "fcm",
    .destination = "push:fcm",
    .prepare = prepare,
    .build = build,
    .classify = classify,
    .forget = forget,
};
