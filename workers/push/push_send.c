/*
 * Making a batch's planned deliveries: credentials, the providers'
 * circuits, the calls (all at once over HTTP/2, HERALD_PUSH_CONCURRENCY in
 * flight), one refresh of a refused credential, the answers' actions
 * (claims released for what will be retried, dead tokens removed and
 * announced), and each push's outcome.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_event.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_time.h"
#include "push_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define PUSH_SOURCE "/herald/push"

static const char *verdict_name(enum push_verdict v)
{
    switch (v) {
    case PUSH_SENT:
        return "sent";
    case PUSH_INVALID:
        return "invalid";
    case PUSH_TRANSIENT:
        return "transient";
    case PUSH_THROTTLED:
        return "throttled";
    case PUSH_REAUTH:
    case PUSH_AUTH:
        return "auth";
    case PUSH_PERMANENT:
        return "permanent";
    case PUSH_SKIPPED:
        return "duplicate";
    default:
        return "pending";
    }
}

static bool is_retry(enum push_verdict v)
{
    return v == PUSH_TRANSIENT || v == PUSH_THROTTLED;
}

static void scratch_reserve(struct push_state *st, size_t n)
{
    size_t cap = st->cap_scratch;

    if (n <= cap)
        return;
    cap = cap ? cap : 64;
    while (cap < n)
        cap *= 2;
    st->dests = realloc(st->dests, cap * sizeof(*st->dests));
    st->states = realloc(st->states, cap * sizeof(*st->states));
    st->allowed = realloc(st->allowed, cap * sizeof(*st->allowed));
    st->waits = realloc(st->waits, cap * sizeof(*st->waits));
    st->outs = realloc(st->outs, cap * sizeof(*st->outs));
    st->calls = realloc(st->calls, cap * sizeof(*st->calls));
    st->call_del = realloc(st->call_del, cap * sizeof(*st->call_del));
    HR_ASSERT(st->dests && st->states && st->allowed && st->waits && st->outs &&
              st->calls && st->call_del);
    st->cap_scratch = cap;
}

static const struct push_provider *provider(const struct push_state *st,
                                            const struct push_delivery *d)
{
    return st->providers[d->platform];
}

/* Credentials of every provider with deliveries to make; a provider that
 * cannot be used now fails its deliveries. -1: pause (Redis). */
static int prepare(struct push_state *st, bool only_reauth)
{
    bool tried[PUSH_PLATFORMS] = {false};

    for (size_t i = 0; i < st->ndels; i++) {
        struct push_delivery *d = &st->dels[i];
        const struct push_provider *pv = provider(st, d);
        char errstr[256] = "";
        int rc;

        if (d->verdict != (only_reauth ? PUSH_REAUTH : PUSH_PENDING))
            continue;
        if (!pv) {
            d->verdict = PUSH_PERMANENT;
            snprintf(d->reason, sizeof(d->reason),
                     "no provider for platform %s is configured",
                     push_platform_name(d->platform));
            continue;
        }
        if (tried[d->platform])
            continue;
        tried[d->platform] = true;
        rc = pv->prepare(st, errstr, sizeof(errstr));
        if (rc == PUSH_PREPARE_PAUSE) {
            hr_worker_set_pause_reason(st->w, "redis unavailable: %s", errstr);
            return -1;
        }
        if (!rc)
            continue;
        for (size_t k = i; k < st->ndels; k++) {
            struct push_delivery *o = &st->dels[k];

            if (o->platform != d->platform ||
                o->verdict != (only_reauth ? PUSH_REAUTH : PUSH_PENDING))
                continue;
            o->verdict = rc == PUSH_PREPARE_AUTH ? PUSH_AUTH : PUSH_TRANSIENT;
            snprintf(o->reason, sizeof(o->reason), "%s: %s", pv->name, errstr);
        }
    }
    return 0;
}

/* Ask the providers' circuits about every delivery still to make. */
static int circuit_check(struct push_state *st, char *errstr, size_t size)
{
    size_t n = 0;

    scratch_reserve(st, st->ndels);
    for (size_t i = 0; i < st->ndels; i++) {
        if (st->dels[i].verdict == PUSH_PENDING)
            st->dests[n++] = provider(st, &st->dels[i])->destination;
    }
    if (!n)
        return 0;
    if (hr_circuit_check(st->circuit, st->redis, st->dests, n, hr_time_now_ms(),
                         st->states, st->allowed, st->waits, errstr, size))
        return -1;
    n = 0;
    for (size_t i = 0; i < st->ndels; i++) {
        struct push_delivery *d = &st->dels[i];
        size_t k;

        if (d->verdict != PUSH_PENDING)
            continue;
        k = n++;
        hr_metric_set(st->circuit_state, (const char *[]){st->dests[k]},
                      hr_circuit_state_gauge(st->states[k]));
        if (st->allowed[k])
            continue;
        switch (st->states[k]) {
        case HR_CIRCUIT_AUTH_BROKEN:
            d->verdict = PUSH_AUTH;
            snprintf(d->reason, sizeof(d->reason), "%s (auth broken)",
                     HR_CIRCUIT_OPEN_REASON);
            break;
        case HR_CIRCUIT_THROTTLED:
            d->verdict = PUSH_THROTTLED;
            d->retry_after_ms = st->waits[k];
            snprintf(d->reason, sizeof(d->reason), "%s",
                     HR_CIRCUIT_THROTTLED_REASON);
            break;
        default:
            d->verdict = PUSH_TRANSIENT;
            snprintf(d->reason, sizeof(d->reason), "%s",
                     HR_CIRCUIT_OPEN_REASON);
            break;
        }
    }
    return 0;
}

/* The claims of calls [@first, @first + @n) say "s": these calls go out
 * now. A crash from here on leaves them claimed (at most once); the calls
 * not yet marked are planned, and a redelivery makes them. -1: pause. */
static int mark_sending(struct push_state *st, size_t first, size_t n)
{
    const char **argv = calloc(2 * n + 2, sizeof(*argv));
    size_t nkeys = 0;
    redisReply *reply;
    char errstr[256];
    int rc = 0;

    HR_ASSERT(argv);
    for (size_t c = first; c < first + n; c++) {
        const struct push_delivery *d = &st->dels[st->call_del[c]];

        if (d->claim)
            argv[nkeys++] = d->claim;
    }
    if (nkeys) {
        argv[nkeys] = "0"; /* no tombstones here */
        argv[nkeys + 1] = "";
        for (size_t k = 0; k < nkeys; k++)
            argv[nkeys + 2 + k] = "s";
        reply = hr_redis_eval(st->redis, &st->settle_script, (int)nkeys,
                              (int)(2 * nkeys + 2), argv, NULL, errstr,
                              sizeof(errstr));
        if (!reply || reply->type != REDIS_REPLY_ARRAY) {
            hr_worker_set_pause_reason(st->w, "redis unavailable: %s",
                                       reply ? "settle script failed" : errstr);
            rc = -1;
        }
        freeReplyObject(reply);
    }
    free(argv);
    return rc;
}

/* Build and make the calls of every delivery in @want, HERALD_PUSH_
 * CONCURRENCY at a time, each group's claims marked first; classify them.
 * -1 when the HTTP client itself failed, -2 when Redis did (pause). */
static int call(struct push_state *st, enum push_verdict want)
{
    size_t chunk = (size_t)st->set.concurrency;

    st->ncalls = 0;
    scratch_reserve(st, st->ndels);
    for (size_t i = 0; i < st->ndels; i++) {
        struct push_delivery *d = &st->dels[i];
        struct hr_http_request *req;

        if (d->verdict != want)
            continue;
        push_delivery_reset_call(d);
        d->verdict = PUSH_PENDING;
        provider(st, d)->build(st, d);
        if (d->verdict != PUSH_PENDING)
            continue; /* refused before any call */
        d->call = st->ncalls++;
        st->call_del[d->call] = i;
        req = &st->calls[d->call];
        memset(req, 0, sizeof(*req));
        req->method = "POST";
        req->url = d->url;
        req->headers = (const char *const *)d->headers;
        req->body = d->body;
        req->body_len = d->body_len;
        req->timeout_ms = st->set.timeout_ms;
        req->once = true; /* a provider dedups nothing: never twice */
    }
    for (size_t first = 0; first < st->ncalls; first += chunk) {
        size_t n = st->ncalls - first < chunk ? st->ncalls - first : chunk;

        if (mark_sending(st, first, n))
            return -2;
        if (hr_http_perform(st->http, st->calls + first, n))
            return -1;
    }
    for (size_t i = 0; i < st->ndels; i++) {
        struct push_delivery *d = &st->dels[i];
        const struct hr_http_request *req;

        if (d->call == SIZE_MAX || d->verdict != PUSH_PENDING)
            continue;
        req = &st->calls[d->call];
        provider(st, d)->classify(st, d, req);
        hr_metric_observe(st->latency, (const char *[]){provider(st, d)->name},
                          req->elapsed_s, 1);
    }
    return 0;
}

/* Release the calls' answers. */
static void calls_release(struct push_state *st)
{
    for (size_t i = 0; i < st->ncalls; i++)
        hr_http_request_release(&st->calls[i]);
    st->ncalls = 0;
}

/* A refused credential: forget it once, get another, call again. */
static int reauth(struct push_state *st)
{
    bool any = false;

    for (size_t i = 0; i < st->ndels; i++) {
        struct push_delivery *d = &st->dels[i];
        char errstr[256];

        if (d->verdict != PUSH_REAUTH)
            continue;
        any = true;
        if (d->credential && provider(st, d)->forget(st, d->credential, errstr,
                                                     sizeof(errstr))) {
            hr_worker_set_pause_reason(st->w, "redis unavailable: %s", errstr);
            return -1;
        }
    }
    if (!any)
        return 0;
    if (prepare(st, true))
        return -1;
    calls_release(st);
    switch (call(st, PUSH_REAUTH)) {
    case 0:
        break;
    case -1:
        hr_worker_set_pause_reason(st->w, "http client failed");
        return -1;
    default:
        return -1;
    }
    for (size_t i = 0; i < st->ndels; i++) {
        if (st->dels[i].verdict == PUSH_REAUTH)
            st->dels[i].verdict = PUSH_AUTH; /* refused twice */
    }
    return 0;
}

/* Tell the circuits how the calls went. */
static int circuit_report(struct push_state *st, char *errstr, size_t size)
{
    size_t n = 0;

    for (size_t i = 0; i < st->ndels; i++) {
        const struct push_delivery *d = &st->dels[i];
        int result;

        if (d->call == SIZE_MAX)
            continue;
        switch (d->verdict) {
        case PUSH_SENT:
        case PUSH_INVALID: /* the provider answered well */
            result = HR_CIRCUIT_SUCCESS;
            break;
        case PUSH_THROTTLED:
            result = HR_ERR_THROTTLED;
            break;
        case PUSH_AUTH:
            result = HR_ERR_AUTH;
            break;
        case PUSH_PERMANENT:
            result = HR_ERR_PERMANENT;
            break;
        default:
            result = HR_ERR_TRANSIENT;
            break;
        }
        st->outs[n].destination = provider(st, d)->destination;
        st->outs[n].result = result;
        st->outs[n].retry_after_ms = d->retry_after_ms;
        n++;
    }
    if (!n)
        return 0;
    return hr_circuit_report(st->circuit, st->redis, st->outs, n,
                             hr_time_now_ms(), NULL, errstr, size);
}

/* Emit device.invalidated for @d (its token was removed). */
static int announce(struct push_state *st, const struct push_delivery *d)
{
    char id[37];
    const char *parts[] = {d->ev->id, d->token, "device.invalidated"};
    size_t len;

    if (!st->set.invalidated_topic)
        return 0;
    hr_event_derive_id(id, parts, 3);
    hr_event_write(&st->jw, id, PUSH_SOURCE, "device.invalidated",
                   d->ev->user_id);
    hr_jsonw_str(&st->jw, "user_id", d->ev->user_id);
    hr_jsonw_str(&st->jw, "token", d->token);
    hr_jsonw_str(&st->jw, "platform", push_platform_name(d->platform));
    hr_jsonw_str(&st->jw, "reason", d->reason);
    hr_jsonw_str(&st->jw, "cause", d->ev->id);
    len = hr_jsonw_finish(&st->jw);
    return hr_worker_produce(st->w, st->set.invalidated_topic, d->ev->user_id,
                             strlen(d->ev->user_id), st->jw.buf, len);
}

/* Whether @d's claim is released: it may be sent again (a retry, or a
 * redrive of a dead letter). */
static bool releases(const struct push_delivery *d)
{
    return d->claim && d->verdict != PUSH_SENT && d->verdict != PUSH_INVALID &&
           d->verdict != PUSH_SKIPPED;
}

/* Claims released and dead tokens removed, in one script call (keys and
 * arguments in one vector: KEYS first); the removed tokens announced, and
 * dead tokens the event named (not in the registry) announced too.
 * -1: pause. */
static int settle(struct push_state *st)
{
    const char **keys, **args, **argv;
    char **owned, ttl[24], now[32], errstr[256];
    size_t nkeys = 0, nargs = 2, nowned = 0, nops = 0, r = 0;
    redisReply *reply = NULL;
    int rc = -1;

    keys = calloc(2 * st->ndels + 1, sizeof(*keys));
    args = calloc(3 * st->ndels + 2, sizeof(*args));
    owned = calloc(3 * st->ndels + 1, sizeof(*owned));
    HR_ASSERT(keys && args && owned);
    for (size_t i = 0; i < st->ndels; i++) {
        const struct push_delivery *d = &st->dels[i];

        if (d->verdict == PUSH_INVALID && d->from_registry) {
            size_t len = strlen(st->prefix) + strlen(d->ev->user_id) + 32;
            char since[32] = "";

            owned[nowned] = malloc(len);
            owned[nowned + 1] = malloc(len);
            HR_ASSERT(owned[nowned] && owned[nowned + 1]);
            snprintf(owned[nowned], len, "%sdevices:{%s}", st->prefix,
                     d->ev->user_id);
            snprintf(owned[nowned + 1], len, "%spush:gone:{%s}", st->prefix,
                     d->ev->user_id);
            keys[nkeys++] = owned[nowned++];
            keys[nkeys++] = owned[nowned++];
            if (d->invalid_since_ms > 0)
                hr_time_format_rfc3339(d->invalid_since_ms, since,
                                       sizeof(since));
            owned[nowned] = strdup(since);
            HR_ASSERT(owned[nowned]);
            args[nargs++] = "i";
            args[nargs++] = d->token;
            args[nargs++] = owned[nowned++];
            nops++;
        } else if (releases(d)) {
            keys[nkeys++] = d->claim;
            args[nargs++] = "c";
            nops++;
        }
    }
    if (nops) {
        snprintf(ttl, sizeof(ttl), "%lld", (long long)st->set.claim_ttl_s);
        hr_time_format_rfc3339(hr_time_now_ms(), now, sizeof(now));
        args[0] = ttl;
        args[1] = now;
        argv = calloc(nkeys + nargs, sizeof(*argv));
        HR_ASSERT(argv);
        memcpy(argv, keys, nkeys * sizeof(*argv));
        memcpy(argv + nkeys, args, nargs * sizeof(*argv));
        reply = hr_redis_eval(st->redis, &st->settle_script, (int)nkeys,
                              (int)(nkeys + nargs), argv, NULL, errstr,
                              sizeof(errstr));
        free(argv);
        if (!reply || reply->type != REDIS_REPLY_ARRAY ||
            reply->elements != nops) {
            if (reply)
                snprintf(errstr, sizeof(errstr), "settle script: %s",
                         reply->type == REDIS_REPLY_ERROR ? reply->str
                                                          : "bad reply");
            hr_worker_set_pause_reason(st->w, "redis unavailable: %s", errstr);
            goto out_free;
        }
    }
    for (size_t i = 0; i < st->ndels; i++) {
        const struct push_delivery *d = &st->dels[i];
        bool removed;

        if (d->verdict != PUSH_INVALID) {
            r += releases(d);
            continue;
        }
        /* a token the event named is not in the registry: only told */
        removed = !d->from_registry || reply->element[r++]->integer == 1;
        if (!removed)
            continue; /* re-registered since, or gone already */
        hr_metric_add(st->invalidated,
                      (const char *[]){provider(st, d)->name, d->reason}, 1);
        hr_log_info("dead token", HR_LOG_STR("provider", provider(st, d)->name),
                    HR_LOG_STR("event_id", d->ev->id),
                    HR_LOG_STR("reason", d->reason),
                    HR_LOG_BOOL("removed", d->from_registry));
        if (d->ev->user_id && announce(st, d) == -1)
            goto out_free;
    }
    rc = 0;
out_free:
    freeReplyObject(reply);
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    free(keys);
    free(args);
    return rc;
}

/* Each push's outcome from its deliveries: a retry when any will be
 * retried (every failing provider named), else auth, else permanent, else
 * ok; a push that reached no device is filtered. */
static void outcomes(struct push_state *st, struct hr_batch *batch)
{
    for (size_t i = 0; i < st->ndels; i++) {
        struct push_delivery *d = &st->dels[i];
        const struct push_provider *pv = provider(st, d);
        const char *name = pv ? pv->name : push_platform_name(d->platform);
        struct hr_item *item = &batch->items[d->item];

        hr_metric_add(st->deliveries,
                      (const char *[]){name, verdict_name(d->verdict)}, 1);
        if (d->verdict == PUSH_PERMANENT || d->verdict == PUSH_AUTH)
            hr_log_write(d->verdict == PUSH_AUTH ? HR_LOG_ERROR : HR_LOG_WARN,
                         "push refused", HR_LOG_STR("provider", name),
                         HR_LOG_STR("event_id", d->ev->id),
                         HR_LOG_STR("err", d->reason), HR_LOG_END);
        if (is_retry(d->verdict)) {
            int64_t after = d->retry_after_ms;

            if (item->outcome == HR_OUT_RETRY && item->retry_after_ms > after)
                after = item->retry_after_ms;
            if (item->outcome != HR_OUT_RETRY)
                hr_item_retry(item,
                              d->verdict == PUSH_THROTTLED ? HR_ERR_THROTTLED
                                                           : HR_ERR_TRANSIENT,
                              pv->destination, after, "%s: %s", name,
                              d->reason);
            else
                hr_item_add_destination(item, pv->destination);
            item->retry_after_ms = after;
            if (d->verdict == PUSH_THROTTLED)
                item->err_class = HR_ERR_THROTTLED;
        } else if (d->verdict == PUSH_AUTH && item->outcome != HR_OUT_RETRY) {
            hr_item_dead(item, HR_ERR_AUTH, "%s: %s", name, d->reason);
            hr_item_set_destination(item, pv ? pv->destination : NULL);
        } else if (d->verdict == PUSH_PERMANENT &&
                   item->outcome != HR_OUT_RETRY &&
                   !(item->outcome == HR_OUT_DEAD &&
                     item->err_class == HR_ERR_AUTH)) {
            hr_item_dead(item, HR_ERR_PERMANENT, "%s: %s", name, d->reason);
            hr_item_set_destination(item, pv ? pv->destination : NULL);
        } else if (item->outcome == HR_OUT_PENDING) {
            hr_item_ok(item);
        }
    }
    for (size_t i = 0; i < batch->n; i++) {
        if (st->parsed[i] && st->events[i].kind == PUSH_REQUESTED &&
            batch->items[i].outcome == HR_OUT_PENDING)
            hr_item_filtered(&batch->items[i]); /* no device */
    }
}

enum hr_batch_result push_send(struct push_state *st, struct hr_batch *batch)
{
    char errstr[256];

    if (!st->ndels) {
        outcomes(st, batch);
        return HR_BATCH_DONE;
    }
    if (prepare(st, false))
        return HR_BATCH_PAUSE;
    if (circuit_check(st, errstr, sizeof(errstr))) {
        hr_worker_set_pause_reason(st->w, "redis unavailable: circuit: %s",
                                   errstr);
        return HR_BATCH_PAUSE;
    }
    switch (call(st, PUSH_PENDING)) {
    case 0:
        break;
    case -1:
        hr_worker_set_pause_reason(st->w, "http client failed");
        return HR_BATCH_PAUSE;
    default: /* Redis: the calls already made keep their claims */
        return HR_BATCH_PAUSE;
    }
    if (reauth(st))
        return HR_BATCH_PAUSE;
    /* The calls were made. A pause from here on redoes the batch, which
     * makes no call twice (their claims say "s"), but a failed settle
     * leaves the claims of the deliveries to retry in place: those are
     * not retried. The circuit report is best effort. */
    if (circuit_report(st, errstr, sizeof(errstr)))
        hr_log_warn("circuit report failed", HR_LOG_STR("err", errstr));
    if (settle(st))
        return HR_BATCH_PAUSE;
    calls_release(st);
    outcomes(st, batch);
    return HR_BATCH_DONE;
}
