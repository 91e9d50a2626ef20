#include "hr_redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "hr_banned.h"

#define HR_REDIS_TIMEOUT_MS 2000

struct hr_redis {
    redisContext *ctx;
    char *host; /* NULL for a unix socket */
    int port;
    char *path;     /* unix socket path */
    char *password; /* NULL without AUTH */
    int db;
    char *prefix;
    uint64_t epoch;  /* bumped on every connect and drop */
    size_t pending;  /* replies of hr_redis_eval_send() not yet read */
    const char **av; /* EVALSHA argument vectors, reused */
    size_t *avlen;
    size_t avcap;
};

/* The URL as it may be shown: a password becomes "***". */
static void url_for_display(const char *url, char *out, size_t size)
{
    const char *at = strrchr(url, '@');

    if (!strncmp(url, "redis://", 8) && at)
        snprintf(out, size, "redis://***%s", at);
    else
        snprintf(out, size, "%s", url);
}

/* Split "redis://[:password@]host:port[/db]" or "unix:///path" into parts.
 * The URL is validated here so that --check-config can report it; errors
 * never show the password. */
static int parse_url(struct hr_redis *redis,
                     const char *raw,
                     char *errstr,
                     size_t errstr_size)
{
    char url[512];

    const char *p, *at, *slash, *colon;
    char *end;
    long v;

    url_for_display(raw, url, sizeof(url));
    if (!strncmp(raw, "unix://", 7)) {
        if (raw[7] != '/') {
            snprintf(errstr, errstr_size, "invalid redis url '%s': %s", url,
                     "unix socket path must be absolute");
            return -1;
        }
        redis->path = strdup(raw + 7);
        return 0;
    }
    if (strncmp(raw, "redis://", 8)) {
        snprintf(errstr, errstr_size,
                 "invalid redis url '%s': expected redis:// or unix://", url);
        return -1;
    }
    p = raw + 8;
    at = strrchr(p, '@');
    if (at) {
        const char *pw = memchr(p, ':', (size_t)(at - p));

        pw = pw ? pw + 1 : p; /* "user:pass@" or "pass@" */
        redis->password = strndup(pw, (size_t)(at - pw));
        p = at + 1;
    }
    slash = strchr(p, '/');
    colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
    redis->port = 6379;
    if (colon) {
        v = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || (*end && *end != '/') || v < 1 || v > 65535) {
            snprintf(errstr, errstr_size, "invalid redis url '%s': bad port",
                     url);
            return -1;
        }
        redis->port = (int)v;
    }
    {
        size_t hlen = colon ? (size_t)(colon - p)
                            : (slash ? (size_t)(slash - p) : strlen(p));
        if (!hlen) {
            snprintf(errstr, errstr_size, "invalid redis url '%s': no host",
                     url);
            return -1;
        }
        redis->host = strndup(p, hlen);
    }
    if (slash && slash[1]) {
        v = strtol(slash + 1, &end, 10);
        if (*end || v < 0 || v > 10000) {
            snprintf(errstr, errstr_size,
                     "invalid redis url '%s': bad database number", url);
            return -1;
        }
        redis->db = (int)v;
    }
    return 0;
}

struct hr_redis *hr_redis_new(const char *url,
                              const char *prefix,
                              char *errstr,
                              size_t errstr_size)
{
    struct hr_redis *redis = calloc(1, sizeof(*redis));

    if (!redis) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (parse_url(redis, url, errstr, errstr_size)) {
        hr_redis_free(redis);
        return NULL;
    }
    redis->prefix = strdup(prefix ? prefix : "herald:");
    return redis;
}

static void drop_context(struct hr_redis *redis)
{
    if (redis->ctx) {
        redisFree(redis->ctx);
        redis->ctx = NULL;
        redis->epoch++;
        redis->pending = 0;
    }
}

void hr_redis_free(struct hr_redis *redis)
{
    if (!redis)
        return;
    drop_context(redis);
    free(redis->host);
    free(redis->path);
    free(redis->password);
    free(redis->prefix);
    free(redis->av);
    free(redis->avlen);
    free(redis);
}

const char *hr_redis_prefix(const struct hr_redis *redis)
{
    return redis->prefix;
}

bool hr_redis_is_connected(const struct hr_redis *redis)
{
    return redis->ctx && !redis->ctx->err;
}

/* Run one setup command on a fresh context; 0 when it answered OK. */
static int setup_command(struct hr_redis *redis,
                         const char *what,
                         redisReply *reply,
                         char *errstr,
                         size_t errstr_size)
{
    int rc = 0;

    if (!reply) {
        snprintf(errstr, errstr_size, "redis %s failed: %s", what,
                 redis->ctx->errstr);
        return -1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis %s failed: %s", what, reply->str);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

int hr_redis_connect(struct hr_redis *redis, char *errstr, size_t errstr_size)
{
    struct timeval tv = {HR_REDIS_TIMEOUT_MS / 1000,
                         (HR_REDIS_TIMEOUT_MS % 1000) * 1000};

    if (hr_redis_is_connected(redis))
        return 0;
    drop_context(redis);
    if (redis->path)
        redis->ctx = redisConnectUnixWithTimeout(redis->path, tv);
    else
        redis->ctx = redisConnectWithTimeout(redis->host, redis->port, tv);
    if (!redis->ctx) {
        snprintf(errstr, errstr_size, "cannot connect to redis: out of memory");
        return -1;
    }
    redis->epoch++;
    if (redis->ctx->err) {
        snprintf(errstr, errstr_size, "cannot connect to redis: %s",
                 redis->ctx->errstr);
        drop_context(redis);
        return -1;
    }
    /* Commands may take long on big batches; the timeout only guards
     * against a peer that stopped answering altogether. */
    tv.tv_sec = 30;
    tv.tv_usec = 0;
    redisSetTimeout(redis->ctx, tv);
    if (redis->password &&
        setup_command(redis, "auth",
                      redisCommand(redis->ctx, "AUTH %s", redis->password),
                      errstr, errstr_size))
        goto out_drop;
    if (redis->db &&
        setup_command(redis, "select",
                      redisCommand(redis->ctx, "SELECT %d", redis->db), errstr,
                      errstr_size))
        goto out_drop;
    return 0;
out_drop:
    drop_context(redis);
    return -1;
}

/* A NULL reply means an I/O error: the context is dead from now on. */
static redisReply *
checked_reply(struct hr_redis *redis, void *r, char *errstr, size_t errstr_size)
{
    if (!r) {
        snprintf(errstr, errstr_size, "redis i/o error: %s",
                 redis->ctx->errstr[0] ? redis->ctx->errstr
                                       : "connection lost");
        drop_context(redis);
    }
    return r;
}

/* A synchronous command must not read a pipelined request's reply as its
 * own: pending replies are dropped with the connection (their epoch ends). */
static void discard_pending(struct hr_redis *redis)
{
    if (redis->pending)
        drop_context(redis);
}

redisReply *hr_redis_command(struct hr_redis *redis,
                             int argc,
                             const char **argv,
                             const size_t *argvlen,
                             char *errstr,
                             size_t errstr_size)
{
    discard_pending(redis);
    if (hr_redis_connect(redis, errstr, errstr_size))
        return NULL;
    return checked_reply(redis,
                         redisCommandArgv(redis->ctx, argc, argv, argvlen),
                         errstr, errstr_size);
}

redisReply *hr_redis_commandf(struct hr_redis *redis,
                              char *errstr,
                              size_t errstr_size,
                              const char *fmt,
                              ...)
{
    va_list ap;
    void *r;

    discard_pending(redis);
    if (hr_redis_connect(redis, errstr, errstr_size))
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(redis->ctx, fmt, ap);
    va_end(ap);
    return checked_reply(redis, r, errstr, errstr_size);
}

static int script_load(struct hr_redis *redis,
                       struct hr_script *script,
                       char *errstr,
                       size_t errstr_size)
{
    redisReply *reply;
    int rc = -1;

    reply = hr_redis_commandf(redis, errstr, errstr_size, "SCRIPT LOAD %b",
                              script->src, script->len);
    if (!reply)
        return -1;
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        snprintf(errstr, errstr_size, "cannot load script '%s': %s",
                 script->name,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        goto out_free_reply;
    }
    memcpy(script->sha, reply->str, 40);
    script->sha[40] = '\0';
    rc = 0;
out_free_reply:
    freeReplyObject(reply);
    return rc;
}

/* EVALSHA sha nkeys args...: the vectors are kept between calls, since a
 * batch's call has tens of thousands of arguments. */
static int eval_vectors(struct hr_redis *redis,
                        struct hr_script *script,
                        int nkeys,
                        int argc,
                        const char **argv,
                        const size_t *argvlen,
                        char *nkeys_str)
{
    size_t need = (size_t)argc + 3;

    if (need > redis->avcap) {
        const char **av = realloc(redis->av, need * sizeof(*av));
        size_t *avlen;

        if (!av)
            return -1;
        redis->av = av;
        avlen = realloc(redis->avlen, need * sizeof(*avlen));
        if (!avlen)
            return -1;
        redis->avlen = avlen;
        redis->avcap = need;
    }
    snprintf(nkeys_str, 16, "%d", nkeys);
    redis->av[0] = "EVALSHA";
    redis->avlen[0] = 7;
    redis->av[1] = script->sha;
    redis->avlen[1] = 40;
    redis->av[2] = nkeys_str;
    redis->avlen[2] = strlen(nkeys_str);
    memcpy(redis->av + 3, argv, (size_t)argc * sizeof(*argv));
    for (int i = 0; i < argc; i++)
        redis->avlen[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
    return 0;
}

redisReply *hr_redis_eval(struct hr_redis *redis,
                          struct hr_script *script,
                          int nkeys,
                          int argc,
                          const char **argv,
                          const size_t *argvlen,
                          char *errstr,
                          size_t errstr_size)
{
    char nkeys_str[16];
    redisReply *reply = NULL;
    int attempt;

    /* Load lazily, and again when the server lost its script cache (a
     * restart or SCRIPT FLUSH answers NOSCRIPT). */
    for (attempt = 0; attempt < 2; attempt++) {
        if (!script->sha[0] && script_load(redis, script, errstr, errstr_size))
            return NULL;
        if (eval_vectors(redis, script, nkeys, argc, argv, argvlen,
                         nkeys_str)) {
            snprintf(errstr, errstr_size, "out of memory");
            return NULL;
        }
        reply = hr_redis_command(redis, argc + 3, redis->av, redis->avlen,
                                 errstr, errstr_size);
        if (!reply || reply->type != REDIS_REPLY_ERROR ||
            strncmp(reply->str, "NOSCRIPT", 8))
            return reply;
        freeReplyObject(reply);
        reply = NULL;
        script->sha[0] = '\0';
    }
    snprintf(errstr, errstr_size, "script '%s' keeps disappearing",
             script->name);
    return NULL;
}

uint64_t hr_redis_epoch(const struct hr_redis *redis)
{
    return redis->epoch;
}

void hr_redis_reset(struct hr_redis *redis)
{
    drop_context(redis);
}

int hr_redis_eval_send(struct hr_redis *redis,
                       struct hr_script *script,
                       int nkeys,
                       int argc,
                       const char **argv,
                       const size_t *argvlen,
                       char *errstr,
                       size_t errstr_size)
{
    char nkeys_str[16];
    int done = 0;

    if (!script->sha[0] && redis->pending) {
        snprintf(errstr, errstr_size,
                 "script '%s' not loaded while replies are pending",
                 script->name);
        return -1;
    }
    if (hr_redis_connect(redis, errstr, errstr_size))
        return -1;
    if (!script->sha[0] && script_load(redis, script, errstr, errstr_size))
        return -1;
    if (eval_vectors(redis, script, nkeys, argc, argv, argvlen, nkeys_str)) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    if (redisAppendCommandArgv(redis->ctx, argc + 3, redis->av, redis->avlen) !=
        REDIS_OK) {
        snprintf(errstr, errstr_size, "cannot queue redis command: %s",
                 redis->ctx->errstr);
        drop_context(redis);
        return -1;
    }
    /* Write it all now, so that Redis works while the caller does. */
    while (!done) {
        if (redisBufferWrite(redis->ctx, &done) != REDIS_OK) {
            snprintf(errstr, errstr_size, "redis i/o error: %s",
                     redis->ctx->errstr);
            drop_context(redis);
            return -1;
        }
    }
    redis->pending++;
    return 0;
}

redisReply *hr_redis_reply(struct hr_redis *redis,
                           struct hr_script *script,
                           char *errstr,
                           size_t errstr_size)
{
    void *r = NULL;
    redisReply *reply;

    if (!hr_redis_is_connected(redis) || !redis->pending) {
        snprintf(errstr, errstr_size, "redis connection lost");
        return NULL;
    }
    redis->pending--;
    if (redisGetReply(redis->ctx, &r) != REDIS_OK)
        r = NULL;
    reply = checked_reply(redis, r, errstr, errstr_size);
    if (reply && script && reply->type == REDIS_REPLY_ERROR &&
        !strncmp(reply->str, "NOSCRIPT", 8))
        script->sha[0] = '\0';
    return reply;
}
