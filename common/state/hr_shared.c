/*
 * A token one replica mints and every replica shares through Redis. See
 * hr_shared.h for the protocol between replicas.
 */
#include "hr_shared.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "hr_log.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

extern const char hr_lua_hr_shared[];
extern const unsigned long hr_lua_hr_shared_len;

/* "<refresh_at_ms> <expires_ms> <token>" plus NUL */
#define SHARED_VALUE_MAX (HR_SHARED_TOKEN_MAX + 48)

void hr_shared_token_init(struct hr_shared_token *t,
                          const char *prefix,
                          const char *name)
{
    int n;

    memset(t, 0, sizeof(*t));
    n = snprintf(t->key, sizeof(t->key), "%s%s", prefix, name);
    if (n < 0 || (size_t)n >= sizeof(t->key))
        t->key[0] = '\0'; /* hr_shared_token_get() says why */
    else
        snprintf(t->lock, sizeof(t->lock), "%s:lock", t->key);
    t->lock_ms = HR_SHARED_LOCK_MS;
    t->script.name = "hr_shared";
    t->script.src = hr_lua_hr_shared;
    t->script.len = hr_lua_hr_shared_len;
}

/* ---- the token held here ------------------------------------------------ */

static void drop(struct hr_shared_token *t)
{
    OPENSSL_cleanse(t->value, strlen(t->value));
    t->value[0] = '\0';
    t->refresh_at_ms = 0;
    t->expires_ms = 0;
}

void hr_shared_token_release(struct hr_shared_token *t)
{
    drop(t);
}

/* A token goes into an HTTP header and a space-separated Redis value:
 * printable ASCII without spaces only. */
static bool token_is_sane(const char *token, size_t len)
{
    if (len == 0 || len >= HR_SHARED_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)token[i] <= 0x20 || (unsigned char)token[i] >= 0x7f)
            return false;
    return true;
}

static void hold(struct hr_shared_token *t,
                 const char *token,
                 int64_t refresh_at_ms,
                 int64_t expires_ms)
{
    size_t len = strlen(token);

    if (strcmp(t->value, token)) {
        drop(t);
        memcpy(t->value, token, len + 1);
    }
    /* A token due after it expires is due when it expires. */
    t->refresh_at_ms = refresh_at_ms < expires_ms ? refresh_at_ms : expires_ms;
    t->expires_ms = expires_ms;
}

/* ---- Redis -------------------------------------------------------------- */

/* What Redis holds at the token key. */
struct shared {
    bool found;
    int64_t refresh_at_ms, expires_ms;
    char value[SHARED_VALUE_MAX]; /* as read */
    const char *token;            /* into value */
};

/* Redis's token in @sh, one another replica minted, becomes ours. */
static void adopt(struct hr_shared_token *t, const struct shared *sh)
{
    if (strcmp(t->value, sh->token))
        t->adopted++;
    hold(t, sh->token, sh->refresh_at_ms, sh->expires_ms);
}

/* Parse "<refresh_at_ms> <expires_ms> <token>" (@sh->value) into @sh. */
static bool parse(struct shared *sh)
{
    char *end, *end2;

    errno = 0;
    sh->refresh_at_ms = strtoll(sh->value, &end, 10);
    if (errno || end == sh->value || *end != ' ')
        return false;
    sh->expires_ms = strtoll(end + 1, &end2, 10);
    if (errno || end2 == end + 1 || *end2 != ' ' ||
        !token_is_sane(end2 + 1, strlen(end2 + 1)))
        return false;
    sh->token = end2 + 1;
    return true;
}

/*
 * GET the token key into @sh. A value that does not parse counts as
 * missing (the next mint overwrites it). Returns 0, or -1 with @errstr
 * when Redis failed.
 */
static int shared_read(struct hr_shared_token *t,
                       struct hr_redis *redis,
                       struct shared *sh,
                       char *errstr,
                       size_t errstr_size)
{
    const char *argv[] = {"GET", t->key};
    redisReply *reply;

    sh->found = false;
    reply = hr_redis_command(redis, 2, argv, NULL, errstr, errstr_size);
    if (!reply)
        return -1;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis GET failed: %s", reply->str);
        freeReplyObject(reply);
        return -1;
    }
    if (reply->type == REDIS_REPLY_STRING && reply->len < sizeof(sh->value)) {
        memcpy(sh->value, reply->str, reply->len);
        sh->value[reply->len] = '\0';
        sh->found = parse(sh);
    }
    if (reply->str)
        OPENSSL_cleanse(reply->str, reply->len);
    freeReplyObject(reply);
    return 0;
}

/*
 * SET @key @value PX @ttl_ms, with NX when @nx. Returns 1 when set, 0 when
 * NX found the key taken, -1 with @errstr when Redis failed.
 */
static int shared_set(struct hr_redis *redis,
                      const char *key,
                      const char *value,
                      int64_t ttl_ms,
                      bool nx,
                      char *errstr,
                      size_t errstr_size)
{
    char px[24];
    const char *argv[] = {"SET", key, value, "PX", px, "NX"};
    redisReply *reply;
    int rc;

    snprintf(px, sizeof(px), "%" PRId64, ttl_ms > 0 ? ttl_ms : 1);
    reply =
        hr_redis_command(redis, nx ? 6 : 5, argv, NULL, errstr, errstr_size);
    if (!reply)
        return -1;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis SET failed: %s", reply->str);
        rc = -1;
    } else {
        rc = reply->type == REDIS_REPLY_STATUS ? 1 : 0; /* nil: NX lost */
    }
    freeReplyObject(reply);
    return rc;
}

/* Store the token @t holds for the fleet, with a TTL of its life. */
static int shared_store(struct hr_shared_token *t,
                        struct hr_redis *redis,
                        char *errstr,
                        size_t errstr_size)
{
    char value[SHARED_VALUE_MAX];
    int rc;

    snprintf(value, sizeof(value), "%" PRId64 " %" PRId64 " %s",
             t->refresh_at_ms, t->expires_ms, t->value);
    rc = shared_set(redis, t->key, value, t->expires_ms - hr_time_now_ms(),
                    false, errstr, errstr_size);
    OPENSSL_cleanse(value, sizeof(value));
    return rc < 0 ? -1 : 0;
}

/* Delete @key if it still holds @expected (@mode "token" or "lock", see
 * hr_shared.lua). Returns 0, or -1 with @errstr. */
static int shared_del_if(struct hr_shared_token *t,
                         struct hr_redis *redis,
                         const char *key,
                         const char *mode,
                         const char *expected,
                         char *errstr,
                         size_t errstr_size)
{
    const char *argv[] = {key, mode, expected};
    redisReply *reply;
    int rc = 0;

    reply =
        hr_redis_eval(redis, &t->script, 1, 3, argv, NULL, errstr, errstr_size);
    if (!reply)
        return -1;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis compare-and-delete failed: %s",
                 reply->str);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

/* A name for this attempt's lock, so that only its holder releases it. */
static void lock_owner(char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[16];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(buf, size, "%ld-%" PRId64, (long)getpid(), hr_time_mono_ms());
        return;
    }
    HR_ASSERT(size > 2 * sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++) {
        buf[2 * i] = hex[rnd[i] >> 4];
        buf[2 * i + 1] = hex[rnd[i] & 0xf];
    }
    buf[2 * sizeof(rnd)] = '\0';
}

/* ---- hr_shared_token_get() ---------------------------------------------- */

/* Call @mint and hold its token, checked. */
static enum hr_shared_result mint_here(struct hr_shared_token *t,
                                       hr_shared_mint_fn *mint,
                                       void *opaque,
                                       char *errstr,
                                       size_t errstr_size)
{
    char fresh[HR_SHARED_TOKEN_MAX] = "";
    int64_t refresh_at = 0, expires = 0;
    enum hr_shared_result res;

    res = mint(opaque, hr_time_now_ms(), fresh, sizeof(fresh), &refresh_at,
               &expires, errstr, errstr_size);
    if (res == HR_SHARED_REDIS)
        res = HR_SHARED_TRANSIENT; /* not a mint's word: Redis is fine */
    if (res == HR_SHARED_OK &&
        !token_is_sane(fresh, strnlen(fresh, sizeof(fresh)))) {
        snprintf(errstr, errstr_size,
                 "shared token '%.200s': the mint gave an unusable token",
                 t->key);
        res = HR_SHARED_TRANSIENT;
    } else if (res == HR_SHARED_OK && expires <= hr_time_now_ms()) {
        snprintf(
            errstr, errstr_size,
            "shared token '%.200s': the mint gave a token that has expired",
            t->key);
        res = HR_SHARED_TRANSIENT;
    }
    if (res == HR_SHARED_OK) {
        hold(t, fresh, refresh_at, expires);
        t->minted++;
    }
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return res;
}

/*
 * This replica holds the lock as @owner: adopt a token stored since @seen
 * was read (another replica finished between our read and our SET NX),
 * else mint one and store it for the fleet. Releases the lock either way.
 */
static enum hr_shared_result mint_and_share(struct hr_shared_token *t,
                                            struct hr_redis *redis,
                                            hr_shared_mint_fn *mint,
                                            void *opaque,
                                            const char *owner,
                                            const char *seen,
                                            char *errstr,
                                            size_t errstr_size)
{
    enum hr_shared_result res;
    struct shared sh;
    char err[256];

    if (!shared_read(t, redis, &sh, err, sizeof(err)) && sh.found &&
        strcmp(sh.value, seen) && sh.expires_ms > hr_time_now_ms()) {
        adopt(t, &sh);
        res = HR_SHARED_OK;
    } else {
        res = mint_here(t, mint, opaque, errstr, errstr_size);
        if (res == HR_SHARED_OK && shared_store(t, redis, err, sizeof(err)))
            hr_log_warn("shared token not stored, the others mint their own",
                        HR_LOG_STR("key", t->key), HR_LOG_STR("err", err));
    }
    if (shared_del_if(t, redis, t->lock, "lock", owner, err, sizeof(err)))
        hr_log_warn("shared token lock not released, it expires on its own",
                    HR_LOG_STR("key", t->key), HR_LOG_STR("err", err));
    OPENSSL_cleanse(&sh, sizeof(sh));
    return res;
}

/* Whether Redis's token in @sh is worth adopting at @now while waiting: it
 * is not due, or it is new since @seen and has not expired. */
static bool
shared_usable(const struct shared *sh, const char *seen, int64_t now)
{
    if (!sh->found || sh->expires_ms <= now)
        return false;
    return now < sh->refresh_at_ms || strcmp(sh->value, seen);
}

/* Redis, the lock, the mint or the wait: the work behind
 * hr_shared_token_get() once the token held is due. */
static enum hr_shared_result renew(struct hr_shared_token *t,
                                   struct hr_redis *redis,
                                   hr_shared_mint_fn *mint,
                                   void *opaque,
                                   char *errstr,
                                   size_t errstr_size)
{
    char seen[SHARED_VALUE_MAX] = "", owner[64];
    int64_t now = hr_time_now_ms(), deadline;
    enum hr_shared_result res;
    struct shared sh;
    int got;

    if (!t->key[0]) {
        snprintf(errstr, errstr_size,
                 "shared token name is too long for a redis key");
        return HR_SHARED_AUTH;
    }

    /* The fleet's token. */
    if (shared_read(t, redis, &sh, errstr, errstr_size)) {
        res = HR_SHARED_REDIS;
        goto out;
    }
    if (sh.found) {
        memcpy(seen, sh.value, strlen(sh.value) + 1);
        if (now < sh.refresh_at_ms && now < sh.expires_ms) {
            adopt(t, &sh);
            res = HR_SHARED_OK;
            goto out;
        }
        /* Due, but better than ours as a fallback. */
        if (sh.expires_ms > now && sh.expires_ms > t->expires_ms)
            adopt(t, &sh);
    }

    /* Mint under the lock, or wait for whoever holds it. */
    lock_owner(owner, sizeof(owner));
    deadline = hr_time_mono_ms() + HR_SHARED_WAIT_MS;
    for (;;) {
        got = shared_set(redis, t->lock, owner, t->lock_ms, true, errstr,
                         errstr_size);
        if (got < 0) {
            res = HR_SHARED_REDIS;
            goto out;
        }
        if (got) {
            res = mint_and_share(t, redis, mint, opaque, owner, seen, errstr,
                                 errstr_size);
            goto out;
        }
        /* Another replica is minting: a token that is due but still valid
         * serves meanwhile; only without one is its token waited for. */
        if (t->value[0] && now < t->expires_ms) {
            res = HR_SHARED_OK;
            goto out;
        }
        if (hr_time_mono_ms() >= deadline)
            break;
        hr_time_sleep_ms(HR_SHARED_POLL_MS);
        if (shared_read(t, redis, &sh, errstr, errstr_size)) {
            res = HR_SHARED_REDIS;
            goto out;
        }
        if (shared_usable(&sh, seen, hr_time_now_ms())) {
            adopt(t, &sh);
            res = HR_SHARED_OK;
            goto out;
        }
    }
    snprintf(
        errstr, errstr_size,
        "shared token '%.200s': another replica holds the lock and no token "
        "arrived within %d ms",
        t->key, HR_SHARED_WAIT_MS);
    res = HR_SHARED_TRANSIENT;
out:
    OPENSSL_cleanse(&sh, sizeof(sh));
    OPENSSL_cleanse(seen, sizeof(seen));
    return res;
}

enum hr_shared_result hr_shared_token_get(struct hr_shared_token *t,
                                          struct hr_redis *redis,
                                          hr_shared_mint_fn *mint,
                                          void *opaque,
                                          char *errstr,
                                          size_t errstr_size)
{
    int64_t now = hr_time_now_ms();
    enum hr_shared_result res;
    char err[512] = "";

    if (t->value[0] && now < t->refresh_at_ms && now < t->expires_ms)
        return HR_SHARED_OK;
    /* Into err: a failure that the token held covers is only logged. */
    if (redis)
        res = renew(t, redis, mint, opaque, err, sizeof(err));
    else
        res = mint_here(t, mint, opaque, err, sizeof(err));
    if (res == HR_SHARED_OK)
        return HR_SHARED_OK;
    now = hr_time_now_ms();
    if (t->value[0] && now < t->expires_ms) {
        hr_log_warn("shared token not renewed, using the one held",
                    HR_LOG_STR("key", t->key), HR_LOG_STR("err", err),
                    HR_LOG_I64("expires_in_ms", t->expires_ms - now));
        return HR_SHARED_OK;
    }
    drop(t);
    snprintf(errstr, errstr_size, "%s", err);
    return res;
}

int hr_shared_token_forget(struct hr_shared_token *t,
                           struct hr_redis *redis,
                           const char *token,
                           char *errstr,
                           size_t errstr_size)
{
    if (!token || !strcmp(t->value, token))
        drop(t);
    if (!token || !redis || !t->key[0])
        return 0;
    return shared_del_if(t, redis, t->key, "token", token, errstr, errstr_size);
}
