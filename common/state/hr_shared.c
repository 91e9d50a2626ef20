#include "hr_shared.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_log.h"
#include "hr_redis.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define HR_SHARED_LOCK_MS 10000
#define HR_SHARED_WAIT_MS 3000

void hr_shared_token_init(struct hr_shared_token *t,
                          const char *prefix,
                          const char *name)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->key, sizeof(t->key), "%s%s", prefix, name);
    snprintf(t->lock, sizeof(t->lock), "%s:lock", t->key);
}

/* Parse "<refresh_at_ms> <expires_ms> <token>" into @t when it is valid at
 * @now. */
static bool
adopt(struct hr_shared_token *t, const char *s, size_t len, int64_t now)
{
    int64_t refresh_at, expires;
    char *end;
    const char *tok;

    refresh_at = strtoll(s, &end, 10);
    if (*end != ' ')
        return false;
    expires = strtoll(end + 1, &end, 10);
    if (*end != ' ' || expires <= now)
        return false;
    tok = end + 1;
    len -= (size_t)(tok - s);
    if (!len || len >= sizeof(t->value))
        return false;
    if (strncmp(t->value, tok, len) || t->value[len])
        t->adopted++;
    memcpy(t->value, tok, len);
    t->value[len] = '\0';
    t->refresh_at_ms = refresh_at;
    t->expires_ms = expires;
    return true;
}

/* The fleet's token: 1 adopted, 0 none (or not valid), -1 Redis failed. */
static int read_shared(struct hr_shared_token *t,
                       struct hr_redis *redis,
                       int64_t now,
                       char *errstr,
                       size_t errstr_size)
{
    const char *argv[] = {"GET", t->key};
    redisReply *reply =
        hr_redis_command(redis, 2, argv, NULL, errstr, errstr_size);
    int rc = 0;

    if (!reply)
        return -1;
    if (reply->type == REDIS_REPLY_STRING)
        rc = adopt(t, reply->str, reply->len, now) ? 1 : 0;
    else if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis: %s", reply->str);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

/* SET key value PX ttl; -1 with @errstr. */
static int store(struct hr_shared_token *t,
                 struct hr_redis *redis,
                 int64_t now,
                 char *errstr,
                 size_t errstr_size)
{
    redisReply *reply =
        hr_redis_commandf(redis, errstr, errstr_size,
                          "SET %s %" PRId64 " %" PRId64 " %s PX %" PRId64,
                          t->key, t->refresh_at_ms, t->expires_ms, t->value,
                          t->expires_ms - now > 1 ? t->expires_ms - now : 1);
    int rc = reply && reply->type == REDIS_REPLY_STATUS ? 0 : -1;

    if (reply && rc)
        snprintf(errstr, errstr_size, "redis: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
    freeReplyObject(reply);
    return rc;
}

int hr_shared_token_get(struct hr_shared_token *t,
                        struct hr_redis *redis,
                        hr_shared_mint_fn *mint,
                        void *opaque,
                        char *errstr,
                        size_t errstr_size)
{
    int64_t now = hr_time_now_ms(), deadline;
    redisReply *reply;
    bool locked;
    int rc;

    if (t->value[0] && now < t->refresh_at_ms && now < t->expires_ms)
        return 0;
    rc = read_shared(t, redis, now, errstr, errstr_size);
    if (rc < 0)
        return -1;
    if (rc > 0 && now < t->refresh_at_ms)
        return 0;
    /* due or missing: whoever takes the lock mints */
    reply = hr_redis_commandf(redis, errstr, errstr_size, "SET %s 1 NX PX %d",
                              t->lock, HR_SHARED_LOCK_MS);
    if (!reply)
        return -1;
    locked = reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    if (locked) {
        char err[256] = "";
        int64_t refresh_at = 0, expires = 0;
        char fresh[HR_SHARED_TOKEN_MAX];

        rc = mint(opaque, now, fresh, sizeof(fresh), &refresh_at, &expires, err,
                  sizeof(err));
        if (!rc) {
            snprintf(t->value, sizeof(t->value), "%s", fresh);
            t->refresh_at_ms = refresh_at;
            t->expires_ms = expires;
            t->minted++;
            rc = store(t, redis, now, errstr, errstr_size);
        }
        reply =
            hr_redis_commandf(redis, errstr, errstr_size, "DEL %s", t->lock);
        freeReplyObject(reply);
        if (!rc)
            return 0;
        if (err[0]) {
            hr_log_warn("cannot mint a shared token", HR_LOG_STR("key", t->key),
                        HR_LOG_STR("err", err));
            snprintf(errstr, errstr_size, "%s", err);
        }
        /* a token that is due but not expired still serves */
        return t->value[0] && now < t->expires_ms ? 0 : -1;
    }
    /* another replica is minting: keep a valid one, else wait for it */
    if (t->value[0] && now < t->expires_ms)
        return 0;
    for (deadline = now + HR_SHARED_WAIT_MS; hr_time_now_ms() < deadline;) {
        hr_time_sleep_ms(100);
        rc = read_shared(t, redis, hr_time_now_ms(), errstr, errstr_size);
        if (rc)
            return rc > 0 ? 0 : -1;
    }
    snprintf(errstr, errstr_size, "no token: another replica holds '%s'",
             t->lock);
    return -1;
}

int hr_shared_token_forget(struct hr_shared_token *t,
                           struct hr_redis *redis,
                           const char *token,
                           char *errstr,
                           size_t errstr_size)
{
    static const char src[] =
        "local v = redis.call('GET', KEYS[1])\n"
        "if v and string.sub(v, -#ARGV[1] - 1) == ' ' .. ARGV[1] then\n"
        "  return redis.call('DEL', KEYS[1])\n"
        "end\n"
        "return 0\n";
    static struct hr_script script = {"hr_shared_forget", src, sizeof(src) - 1,
                                      ""};
    const char *argv[] = {t->key, token};
    redisReply *reply;

    if (!strcmp(t->value, token))
        t->value[0] = '\0';
    reply =
        hr_redis_eval(redis, &script, 1, 2, argv, NULL, errstr, errstr_size);
    if (!reply)
        return -1;
    freeReplyObject(reply);
    return 0;
}
