/*
 * Planning a batch's pushes (push_plan.lua): one delivery per (push,
 * device), with its badge resolved and its (event, device) claim taken.
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_arena.h"
#include "hr_log.h"
#include "push_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

void push_delivery_reset_call(struct push_delivery *d)
{
    free(d->url);
    for (size_t i = 0; i < d->nheaders; i++)
        free(d->headers[i]);
    free(d->body);
    free(d->credential);
    d->url = NULL;
    d->body = NULL;
    d->credential = NULL;
    d->body_len = 0;
    d->nheaders = 0;
    d->headers[0] = NULL;
    d->call = SIZE_MAX;
}

void push_delivery_header(struct push_delivery *d,
                          const char *name,
                          const char *value)
{
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = malloc(len);

    HR_ASSERT(line && d->nheaders + 1 < HR_ARRAY_SIZE(d->headers));
    snprintf(line, len, "%s: %s", name, value);
    d->headers[d->nheaders++] = line;
    d->headers[d->nheaders] = NULL;
}

/* @prefix followed by the hex SHA-1 of @token, as push_plan.lua names a
 * claim (malloc'd). */
static char *claim_key(const char *prefix, const char *token)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    size_t len = strlen(prefix);
    char *k = malloc(len + 2 * SHA_DIGEST_LENGTH + 1);

    HR_ASSERT(k);
    SHA1((const unsigned char *)token, strlen(token), md);
    memcpy(k, prefix, len);
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(k + len + 2 * i, 3, "%02x", md[i]);
    return k;
}

void push_deliveries_release(struct push_state *st)
{
    for (size_t i = 0; i < st->ndels; i++) {
        push_delivery_reset_call(&st->dels[i]);
        free(st->dels[i].claim);
    }
    st->ndels = 0;
}

static struct push_delivery *delivery_add(struct push_state *st)
{
    struct push_delivery *d;

    st->dels =
        hr_grow(st->dels, &st->cap_dels, st->ndels + 1, sizeof(*st->dels), 64);
    d = &st->dels[st->ndels++];
    memset(d, 0, sizeof(*d));
    d->call = SIZE_MAX;
    return d;
}

/* "<prefix><what>{<tag>}<rest>" malloc'd. */
static char *
key_of(const char *prefix, const char *what, const char *tag, const char *rest)
{
    size_t len = strlen(prefix) + strlen(what) + strlen(tag) + strlen(rest) + 4;
    char *k = malloc(len);

    HR_ASSERT(k);
    snprintf(k, len, "%s%s{%s}%s", prefix, what, tag, rest);
    return k;
}

/* Fill @d from a registry device's JSON; false when it is unusable. */
static bool
from_device(struct push_state *st, struct push_delivery *d, const char *json)
{
    json_t *dev = json_loads(json, 0, NULL);
    const char *platform = json_string_value(json_object_get(dev, "platform"));
    const char *env = json_string_value(json_object_get(dev, "environment"));

    if (!dev || !platform || push_platform_parse(platform, &d->platform)) {
        json_decref(dev);
        return false;
    }
    json_array_append_new(st->plan_devs, dev); /* kept for the batch */
    d->app = json_string_value(json_object_get(dev, "app"));
    d->sandbox = env && !strcmp(env, "sandbox");
    d->registered_at = json_string_value(json_object_get(dev, "registered_at"));
    if (!d->registered_at)
        d->registered_at = "";
    d->from_registry = true;
    return true;
}

int push_plan(struct push_state *st,
              struct hr_batch *batch,
              char *errstr,
              size_t errstr_size)
{
    json_t *input = json_array(), *answer;
    const char **argv;
    char **keys, ttl[24], *json;
    size_t npush = 0, nkeys = 0, p = 0;
    redisReply *reply = NULL;
    int rc = -1;

    push_deliveries_release(st);
    json_decref(st->plan);
    json_decref(st->plan_devs);
    st->plan = NULL;
    st->plan_devs = json_array();
    for (size_t i = 0; i < batch->n; i++) {
        if (st->parsed[i] && st->events[i].kind == PUSH_REQUESTED &&
            batch->items[i].outcome == HR_OUT_PENDING)
            npush++;
    }
    if (!npush) {
        json_decref(input);
        return 0;
    }
    keys = calloc(3 * npush, sizeof(*keys));
    argv = calloc(3 * npush + 2, sizeof(*argv));
    HR_ASSERT(keys && argv);
    for (size_t i = 0; i < batch->n; i++) {
        const struct push_event *ev = &st->events[i];
        const char *tag = ev->user_id ? ev->user_id : ev->id;
        json_t *targets;
        char rest[300];

        if (!st->parsed[i] || ev->kind != PUSH_REQUESTED ||
            batch->items[i].outcome != HR_OUT_PENDING)
            continue;
        targets = json_array();
        snprintf(rest, sizeof(rest), ":%s:", ev->id);
        keys[nkeys] = key_of(st->prefix, "devices:", tag, "");
        keys[nkeys + 1] = key_of(st->prefix, "unread_total:", tag, "");
        keys[nkeys + 2] = key_of(st->prefix, "push:sent:", tag, rest);
        nkeys += 3;
        for (size_t t = 0; t < ev->ntargets; t++)
            json_array_append_new(
                targets,
                json_pack("[s,s]", ev->targets[t].token,
                          push_platform_name(ev->targets[t].platform)));
        json_array_append_new(
            input,
            json_pack("{s:i, s:i, s:o}", "u", ev->user_id ? 1 : 0, "b",
                      ev->badge == PUSH_BADGE_TOTAL ? 1 : 0, "t", targets));
    }
    json = json_dumps(input, JSON_COMPACT);
    json_decref(input);
    HR_ASSERT(json);
    for (size_t k = 0; k < nkeys; k++)
        argv[k] = keys[k];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)st->set.claim_ttl_s);
    argv[nkeys] = ttl;
    argv[nkeys + 1] = json;
    reply = hr_redis_eval(st->redis, &st->plan_script, (int)nkeys,
                          (int)nkeys + 2, argv, NULL, errstr, errstr_size);
    hr_arena_json_free(json);
    if (!reply)
        goto out_free;
    answer = reply->type == REDIS_REPLY_STRING
                 ? json_loadb(reply->str, reply->len, 0, NULL)
                 : NULL;
    if (!json_is_array(answer) || json_array_size(answer) != npush) {
        snprintf(errstr, errstr_size, "plan script: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        json_decref(answer);
        goto out_free;
    }
    st->plan = answer;
    for (size_t i = 0; i < batch->n; i++) {
        const struct push_event *ev = &st->events[i];
        json_t *res, *devs, *dv;
        json_int_t total;
        size_t k;

        if (!st->parsed[i] || ev->kind != PUSH_REQUESTED ||
            batch->items[i].outcome != HR_OUT_PENDING)
            continue;
        res = json_array_get(answer, p++);
        total = json_integer_value(json_object_get(res, "b"));
        devs = json_object_get(res, "d");
        json_array_foreach(devs, k, dv)
        {
            struct push_delivery *d = delivery_add(st);
            const char *token = json_string_value(json_array_get(dv, 0));
            const char *what = json_string_value(json_array_get(dv, 1));

            d->item = i;
            d->ev = ev;
            d->token = token ? token : "";
            d->badge =
                ev->badge == PUSH_BADGE_TOTAL ? (int64_t)total : ev->badge;
            d->registered_at = "";
            d->claim = claim_key(keys[3 * (p - 1) + 2], d->token);
            if (!what ||
                (what[0] == '{' ? !from_device(st, d, what)
                                : push_platform_parse(what, &d->platform))) {
                d->verdict = PUSH_PERMANENT;
                snprintf(d->reason, sizeof(d->reason),
                         "unreadable device entry");
                continue;
            }
            if (!json_integer_value(json_array_get(dv, 2)))
                d->verdict = PUSH_SKIPPED;
        }
    }
    rc = 0;
out_free:
    freeReplyObject(reply);
    for (size_t k = 0; k < nkeys; k++)
        free(keys[k]);
    free(keys);
    free(argv);
    return rc;
}
