/*
 * The device registry (SPEC section 5: herald:devices:{u}, token -> JSON
 * {"platform", "app", "environment", "registered_at"}): a batch's
 * device.registered and device.unregistered events in one script call
 * (push_registry.lua), applied by their times, whatever order they arrive
 * in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_time.h"
#include "push_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* The device's JSON into st->jw (fixed shape, fields in SPEC order). */
static const char *device_json(struct push_state *st,
                               const struct push_event *ev,
                               const char *at,
                               size_t *len)
{
    hr_jsonw_reset(&st->jw);
    hr_jsonw_str(&st->jw, "platform", push_platform_name(ev->platform));
    if (ev->app)
        hr_jsonw_str(&st->jw, "app", ev->app);
    hr_jsonw_str(&st->jw, "environment",
                 ev->environment ? ev->environment : "production");
    hr_jsonw_str(&st->jw, "registered_at", at);
    *len = hr_jsonw_finish(&st->jw);
    return st->jw.buf;
}

int push_registry_apply(struct push_state *st,
                        struct hr_batch *batch,
                        char *errstr,
                        size_t errstr_size)
{
    size_t n = 0, nargs = 1, nkeys = 0, k = 0, nowned = 0;
    const char **argv;
    char **owned, ttl[24];
    redisReply *reply;
    int rc = -1;

    for (size_t i = 0; i < batch->n; i++) {
        enum push_kind kind = st->events[i].kind;

        if (st->parsed[i] && kind != PUSH_REQUESTED &&
            batch->items[i].outcome == HR_OUT_PENDING)
            n++;
    }
    if (!n)
        return 0;
    argv = calloc(2 * n + 1 + 4 * n, sizeof(*argv));
    owned = calloc(4 * n, sizeof(*owned));
    HR_ASSERT(argv && owned);
    /* keys first, then ARGV */
    for (size_t i = 0; i < batch->n; i++) {
        const struct push_event *ev = &st->events[i];

        if (!st->parsed[i] || ev->kind == PUSH_REQUESTED ||
            batch->items[i].outcome != HR_OUT_PENDING)
            continue;
        size_t len = strlen(st->prefix) + strlen(ev->user_id) + 32;

        owned[nowned] = malloc(len);
        owned[nowned + 1] = malloc(len);
        HR_ASSERT(owned[nowned] && owned[nowned + 1]);
        snprintf(owned[nowned], len, "%sdevices:{%s}", st->prefix, ev->user_id);
        snprintf(owned[nowned + 1], len, "%spush:gone:{%s}", st->prefix,
                 ev->user_id);
        argv[nkeys++] = owned[nowned++];
        argv[nkeys++] = owned[nowned++];
    }
    snprintf(ttl, sizeof(ttl), "%lld", (long long)st->set.claim_ttl_s);
    argv[nkeys] = ttl;
    nargs = nkeys + 1;
    for (size_t i = 0; i < batch->n; i++) {
        const struct push_event *ev = &st->events[i];
        char at[32];
        size_t jlen = 0;
        const char *json;

        if (!st->parsed[i] || ev->kind == PUSH_REQUESTED ||
            batch->items[i].outcome != HR_OUT_PENDING)
            continue;
        hr_time_format_rfc3339(ev->at_ms, at, sizeof(at));
        argv[nargs++] = ev->kind == PUSH_REGISTERED ? "r" : "u";
        argv[nargs++] = ev->token;
        owned[nowned] = strdup(at);
        HR_ASSERT(owned[nowned]);
        argv[nargs++] = owned[nowned++];
        if (ev->kind == PUSH_REGISTERED) {
            json = device_json(st, ev, at, &jlen);
            owned[nowned] = malloc(jlen + 1);
            HR_ASSERT(owned[nowned]);
            memcpy(owned[nowned], json, jlen + 1);
            argv[nargs++] = owned[nowned++];
        } else {
            argv[nargs++] = "";
        }
    }
    reply = hr_redis_eval(st->redis, &st->registry_script, (int)nkeys,
                          (int)nargs, argv, NULL, errstr, errstr_size);
    if (!reply)
        goto out_free;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n) {
        snprintf(errstr, errstr_size, "registry script: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        goto out_free_reply;
    }
    k = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const struct push_event *ev = &st->events[i];
        bool applied;

        if (!st->parsed[i] || ev->kind == PUSH_REQUESTED ||
            batch->items[i].outcome != HR_OUT_PENDING)
            continue;
        applied = reply->element[k++]->integer == 1;
        hr_metric_add(
            st->registry,
            (const char *[]){
                ev->kind == PUSH_REGISTERED
                    ? (applied ? "registered" : "stale_register")
                    : (applied ? "unregistered" : "stale_unregister")},
            1);
        if (applied)
            hr_item_ok(&batch->items[i]);
        else
            hr_item_duplicate(&batch->items[i]); /* older than what is known */
    }
    rc = 0;
out_free_reply:
    freeReplyObject(reply);
out_free:
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    return rc;
}
