/*
 * The entitlement step: validate the change, build the three keys the
 * script can know before it reads anything, and read its answer. The
 * rules themselves live in subs_entitlement.lua, so that the check of the
 * dedupe marker, the ordering by snapshot and the writes are one atomic
 * step (two replicas handling redeliveries of one subscription cannot
 * interleave).
 */
#include "subs_entitlement.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "hr_redis.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

extern const char hr_lua_subs_entitlement[];
extern const unsigned long hr_lua_subs_entitlement_len;

/* SPEC section 4's fixed vocabulary. */
static const char *const states[] = {
    "active", "grace_period", "billing_retry", "on_hold",
    "paused", "expired",      "revoked",       "refunded",
};

/* The script's result codes, in enum subs_apply_result's order. */
#define NRESULTS (SUBS_UNKNOWN + 1)

void subs_entitlement_script_init(struct hr_script *script)
{
    *script = (struct hr_script){"subs_entitlement", hr_lua_subs_entitlement,
                                 hr_lua_subs_entitlement_len, ""};
}

static bool is_empty(const char *s)
{
    return !s || !*s;
}

static bool is_state(const char *s)
{
    for (size_t i = 0; i < HR_ARRAY_SIZE(states); i++) {
        if (!strcmp(s, states[i]))
            return true;
    }
    return false;
}

int subs_entitlement_check(const struct subs_change *c,
                           char *errstr,
                           size_t errstr_size)
{
    const char *why = NULL;

    if (!c->provider ||
        (strcmp(c->provider, "appstore") && strcmp(c->provider, "googleplay")))
        why = "provider is not 'appstore' or 'googleplay'";
    else if (is_empty(c->notification_id))
        why = "no notification_id";
    else if (is_empty(c->subscription_id))
        why = "no subscription_id";
    else if (c->app_user_id &&
             strlen(c->app_user_id) >= SUBS_ENTITLEMENT_OWNER_MAX)
        why = "app_user_id too long";
    else if (!is_empty(c->state) && !is_state(c->state))
        why = "state is not one of SPEC's states";
    else if (c->expires_ms < 0 || c->expires_ms > SUBS_ENTITLEMENT_TIME_MAX)
        why = "expires_ms out of range";
    else if (c->auto_renew < -1 || c->auto_renew > 1)
        why = "auto_renew is not -1, 0 or 1";
    else if (c->snapshot_ms <= 0 || c->snapshot_ms > SUBS_ENTITLEMENT_TIME_MAX)
        why = "snapshot_ms out of range";
    if (!why)
        return 0;
    snprintf(errstr, errstr_size, "invalid change of subscription '%s': %s",
             c->subscription_id ? c->subscription_id : "", why);
    return -1;
}

/* A key built like printf; aborts when memory runs out. */
HR_PRINTF(1, 2) static char *key_new(const char *fmt, ...)
{
    va_list ap;
    char *key;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    HR_ASSERT(len >= 0);
    key = malloc((size_t)len + 1);
    HR_ASSERT(key);
    va_start(ap, fmt);
    vsnprintf(key, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return key;
}

/* Copy a string element of the script's answer into @dst; -1 when it is
 * not a string or does not fit. */
static int copy_element(char *dst, size_t size, const redisReply *e)
{
    if (e->type != REDIS_REPLY_STRING || e->len >= size)
        return -1;
    memcpy(dst, e->str, e->len);
    dst[e->len] = '\0';
    return 0;
}

/* Fill *@out from the script's {result, owner, previous, state, changed,
 * product}. */
static int read_answer(const redisReply *reply,
                       struct subs_applied *out,
                       char *errstr,
                       size_t errstr_size)
{
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "subs_entitlement script: %s",
                 reply->str);
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 6 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[0]->integer < 0 ||
        reply->element[0]->integer >= NRESULTS ||
        reply->element[4]->type != REDIS_REPLY_INTEGER ||
        copy_element(out->app_user_id, sizeof(out->app_user_id),
                     reply->element[1]) ||
        copy_element(out->previous_state, sizeof(out->previous_state),
                     reply->element[2]) ||
        copy_element(out->state, sizeof(out->state), reply->element[3])) {
        snprintf(errstr, errstr_size, "subs_entitlement script: bad reply");
        return -1;
    }
    out->result = (enum subs_apply_result)reply->element[0]->integer;
    out->changed = reply->element[4]->integer != 0;
    if (copy_element(out->product_id, sizeof(out->product_id),
                     reply->element[5]))
        out->product_id[0] = '\0';
    return 0;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* The script's keys and arguments for one change. */
struct call {
    char expires[24], auto_renew[8], snapshot[24], ttl[24], owner_max[16];
    char *keys[3];
    const char *argv[15];
};

/* Fill @k for @c after checking it and @dedupe_ttl_s; -1 with @errstr.
 * call_free() it after a 0. */
static int call_init(struct call *k,
                     const char *prefix,
                     const struct subs_change *c,
                     int64_t dedupe_ttl_s,
                     char *errstr,
                     size_t errstr_size)
{
    if (subs_entitlement_check(c, errstr, errstr_size))
        return -1;
    if (dedupe_ttl_s <= 0) {
        snprintf(errstr, errstr_size,
                 "cannot apply notification '%s': dedupe ttl %lld is not "
                 "positive",
                 c->notification_id, (long long)dedupe_ttl_s);
        return -1;
    }
    k->keys[0] =
        key_new("%ssubs:sub:%s:%s", prefix, c->provider, c->subscription_id);
    k->keys[1] =
        key_new("%ssubs:seen:%s:%s", prefix, c->provider, c->notification_id);
    k->keys[2] = key_new("%ssubs_owner:%s", prefix, c->subscription_id);
    snprintf(k->expires, sizeof(k->expires), "%lld", (long long)c->expires_ms);
    snprintf(k->auto_renew, sizeof(k->auto_renew), "%d", c->auto_renew);
    snprintf(k->snapshot, sizeof(k->snapshot), "%lld",
             (long long)c->snapshot_ms);
    snprintf(k->ttl, sizeof(k->ttl), "%lld", (long long)dedupe_ttl_s);
    snprintf(k->owner_max, sizeof(k->owner_max), "%d",
             SUBS_ENTITLEMENT_OWNER_MAX - 1);
    k->argv[0] = k->keys[0];
    k->argv[1] = k->keys[1];
    k->argv[2] = k->keys[2];
    k->argv[3] = prefix;
    k->argv[4] = c->provider;
    k->argv[5] = c->subscription_id;
    k->argv[6] = or_empty(c->app_user_id);
    k->argv[7] = or_empty(c->product_id);
    k->argv[8] = or_empty(c->state);
    k->argv[9] = k->expires;
    k->argv[10] = k->auto_renew;
    k->argv[11] = or_empty(c->environment);
    k->argv[12] = k->snapshot;
    k->argv[13] = k->ttl;
    k->argv[14] = k->owner_max;
    return 0;
}

static void call_free(struct call *k)
{
    for (size_t i = 0; i < HR_ARRAY_SIZE(k->keys); i++)
        free(k->keys[i]);
}

int subs_entitlement_send(struct hr_redis *redis,
                          struct hr_script *script,
                          const char *prefix,
                          const struct subs_change *c,
                          int64_t dedupe_ttl_s,
                          char *errstr,
                          size_t errstr_size)
{
    struct call k;
    int rc;

    HR_ASSERT(redis && script && prefix && c);
    if (call_init(&k, prefix, c, dedupe_ttl_s, errstr, errstr_size))
        return -1;
    rc = hr_redis_eval_send(redis, script, 3, (int)HR_ARRAY_SIZE(k.argv),
                            k.argv, NULL, errstr, errstr_size);
    call_free(&k);
    return rc;
}

/* Fill *@out from @reply (NULL: Redis failed, @errstr says why), which is
 * freed. */
static int take_answer(redisReply *reply,
                       struct subs_applied *out,
                       char *errstr,
                       size_t errstr_size)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (!reply)
        return -1;
    rc = read_answer(reply, out, errstr, errstr_size);
    if (rc)
        memset(out, 0, sizeof(*out));
    freeReplyObject(reply);
    return rc;
}

int subs_entitlement_read(struct hr_redis *redis,
                          struct hr_script *script,
                          struct subs_applied *out,
                          char *errstr,
                          size_t errstr_size)
{
    return take_answer(hr_redis_reply(redis, script, errstr, errstr_size), out,
                       errstr, errstr_size);
}

int subs_entitlement_apply(struct hr_redis *redis,
                           struct hr_script *script,
                           const char *prefix,
                           const struct subs_change *c,
                           int64_t dedupe_ttl_s,
                           struct subs_applied *out,
                           char *errstr,
                           size_t errstr_size)
{
    struct call k;
    redisReply *reply;

    HR_ASSERT(redis && script && prefix && c && out);
    memset(out, 0, sizeof(*out));
    if (call_init(&k, prefix, c, dedupe_ttl_s, errstr, errstr_size))
        return -1;
    reply = hr_redis_eval(redis, script, 3, (int)HR_ARRAY_SIZE(k.argv), k.argv,
                          NULL, errstr, errstr_size);
    call_free(&k);
    return take_answer(reply, out, errstr, errstr_size);
}
