/*
 * Web Push (research/push.md §5): the device's token is the browser's
 * subscription JSON ({"endpoint", "keys": {"p256dh", "auth"}}); the
 * payload is encrypted for it (RFC 8291 aes128gcm, push_ece.c) and the
 * request authenticated with VAPID (RFC 8292).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_time.h"
#include "push_ece.h"
#include "push_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* RFC 8291: one record of 4096 bytes at most. */
#define WEBPUSH_PLAIN_MAX 3993

static int prepare(struct push_state *st, char *errstr, size_t errstr_size)
{
    (void)st;
    (void)errstr;
    (void)errstr_size;
    return 0; /* VAPID headers are made per origin, when needed */
}

static int forget(struct push_state *st,
                  const char *credential,
                  char *errstr,
                  size_t errstr_size)
{
    (void)st;
    (void)credential;
    (void)errstr;
    (void)errstr_size;
    return 0;
}

/* The notification the service worker receives, into st->jw. */
static size_t notification(struct push_state *st, const struct push_delivery *d)
{
    const struct push_event *ev = d->ev;
    struct hr_jsonw *jw = &st->jw;
    const char *key;
    json_t *v;

    hr_jsonw_reset(jw);
    hr_jsonw_str(jw, "id", ev->id);
    hr_jsonw_str(jw, "title", ev->title);
    hr_jsonw_str(jw, "body", ev->body);
    if (d->badge >= 0)
        hr_jsonw_int(jw, "badge", d->badge);
    if (ev->thread_id)
        hr_jsonw_str(jw, "tag", ev->thread_id);
    if (ev->data) {
        hr_jsonw_open(jw, "data");
        json_object_foreach(ev->data, key, v)
            hr_jsonw_str(jw, key, json_string_value(v));
        hr_jsonw_close(jw);
    }
    return hr_jsonw_finish(jw);
}

/* A Topic header value: at most 32 characters of the URL-safe base64
 * alphabet (RFC 8030 §5.4). */
static bool topic_ok(const char *s)
{
    size_t len = strlen(s);

    return len && len <= 32 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789-_") == len;
}

static void build(struct push_state *st, struct push_delivery *d)
{
    const struct push_event *ev = d->ev;
    json_t *sub = json_loads(d->token, 0, NULL);
    const char *endpoint = json_string_value(json_object_get(sub, "endpoint"));
    json_t *keys = json_object_get(sub, "keys");
    const char *p256dh = json_string_value(json_object_get(keys, "p256dh"));
    const char *auth = json_string_value(json_object_get(keys, "auth"));
    char errstr[160], num[32];
    size_t len;

    if (!endpoint || !p256dh || !auth ||
        (strncmp(endpoint, "https://", 8) && strncmp(endpoint, "http://", 7))) {
        d->verdict = PUSH_INVALID;
        snprintf(d->reason, sizeof(d->reason),
                 "not a subscription (endpoint, keys.p256dh, keys.auth)");
        goto out;
    }
    len = notification(st, d);
    if (len > WEBPUSH_PLAIN_MAX) {
        d->verdict = PUSH_PERMANENT;
        snprintf(d->reason, sizeof(d->reason),
                 "web push payload of %zu bytes is over %d", len,
                 WEBPUSH_PLAIN_MAX);
        goto out;
    }
    if (push_ece_encrypt(p256dh, auth, st->jw.buf, len, &d->body, &d->body_len,
                         errstr, sizeof(errstr))) {
        d->verdict = PUSH_INVALID;
        snprintf(d->reason, sizeof(d->reason), "%s", errstr);
        goto out;
    }
    d->credential = push_vapid_header(
        st->vapid, endpoint, hr_time_now_ms() / 1000, errstr, sizeof(errstr));
    if (!d->credential) {
        d->verdict = PUSH_AUTH;
        snprintf(d->reason, sizeof(d->reason), "vapid: %s", errstr);
        goto out;
    }
    d->url = strdup(endpoint);
    HR_ASSERT(d->url);
    snprintf(num, sizeof(num), "%lld",
             (long long)(ev->ttl_seconds >= 0 ? ev->ttl_seconds
                                              : st->set.webpush_ttl_s));
    push_delivery_header(d, "TTL", num);
    push_delivery_header(d, "Content-Encoding", "aes128gcm");
    push_delivery_header(d, "Content-Type", "application/octet-stream");
    push_delivery_header(d, "Authorization", d->credential);
    push_delivery_header(d, "Urgency", ev->high ? "high" : "normal");
    if (ev->collapse_id && topic_ok(ev->collapse_id))
        push_delivery_header(d, "Topic", ev->collapse_id);
out:
    json_decref(sub);
}

static void classify(struct push_state *st,
                     struct push_delivery *d,
                     const struct hr_http_request *req)
{
    int cls = hr_http_classify(req);

    (void)st;
    d->retry_after_ms = req->retry_after_ms;
    if (cls < 0) {
        d->verdict = PUSH_SENT;
        return;
    }
    if (!req->status) {
        d->verdict = PUSH_TRANSIENT;
        snprintf(d->reason, sizeof(d->reason), "%s", req->error);
        return;
    }
    snprintf(d->reason, sizeof(d->reason), "HTTP %ld", req->status);
    switch (req->status) {
    case 404: /* RFC 8030 §7.3: the subscription expired */
    case 410: /* gone */
        d->verdict = PUSH_INVALID;
        break;
    case 429:
        d->verdict = PUSH_THROTTLED;
        break;
    case 401:
    case 403:
        d->verdict = PUSH_AUTH; /* VAPID refused */
        break;
    default:
        d->verdict = cls == HR_ERR_TRANSIENT ? PUSH_TRANSIENT : PUSH_PERMANENT;
        break;
    }
}

const struct push_provider push_webpush = {
    .name = "webpush",
    .destination = "push:webpush",
    .prepare = prepare,
    .build = build,
    .classify = classify,
    .forget = forget,
};
