/*
 * Redis connection (hiredis, synchronous) with reconnect, pipelines and
 * embedded Lua scripts.
 *
 * A context with an I/O error is dead: the next call reconnects. Failed
 * calls return NULL/-1 with the reason in errstr; the caller decides whether
 * to pause (own-state outage, SPEC section 7). Not thread-safe: one
 * struct hr_redis per thread.
 */
#ifndef HR_REDIS_H
#define HR_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "hr_compat.h"

struct hr_redis;

/** An embedded Lua script; see herald_embed() in CMake. */
struct hr_script {
    const char *name;
    const char *src;
    size_t len;
    char sha[41]; /* filled on first load */
};

/**
 * Parse @url ("redis://[:password@]host:port[/db]", "unix:///path.sock")
 * and prepare a client using key prefix @prefix (copied). Does not connect.
 * Returns NULL with @errstr filled on a malformed URL.
 */
struct hr_redis *hr_redis_new(const char *url,
                              const char *prefix,
                              char *errstr,
                              size_t errstr_size);

/** Close and free. NULL is a no-op. */
void hr_redis_free(struct hr_redis *redis);

/** The key prefix ("herald:" by default). Borrowed. */
const char *hr_redis_prefix(const struct hr_redis *redis);

/**
 * Connect (or reconnect a dead context), AUTH and SELECT as the URL says,
 * within a 2 s timeout. A live context returns 0 at once.
 */
int hr_redis_connect(struct hr_redis *redis,
                     char *errstr,
                     size_t errstr_size) HR_MUST_CHECK;

/** Whether a live connection exists. */
bool hr_redis_is_connected(const struct hr_redis *redis);

/**
 * Run one command (argv form; lengths may be NULL for C strings).
 * Connects first if needed. Returns the reply (caller frees with
 * freeReplyObject) — which may be a REDIS_REPLY_ERROR — or NULL on an I/O
 * failure, with @errstr filled and the context marked dead.
 */
redisReply *hr_redis_command(struct hr_redis *redis,
                             int argc,
                             const char **argv,
                             const size_t *argvlen,
                             char *errstr,
                             size_t errstr_size);

/** printf-style variant of hr_redis_command() (hiredis format rules). */
redisReply *hr_redis_commandf(struct hr_redis *redis,
                              char *errstr,
                              size_t errstr_size,
                              const char *fmt,
                              ...);

/**
 * Run @script with @nkeys keys followed by the other arguments in @argv
 * (EVALSHA; on NOSCRIPT the script is loaded and called again). Returns the
 * reply as hr_redis_command() does; a script error comes back as a
 * REDIS_REPLY_ERROR reply.
 */
redisReply *hr_redis_eval(struct hr_redis *redis,
                          struct hr_script *script,
                          int nkeys,
                          int argc,
                          const char **argv,
                          const size_t *argvlen,
                          char *errstr,
                          size_t errstr_size);

/**
 * The connection's epoch: it changes whenever a connection is made or
 * dropped. A request sent with hr_redis_eval_send() under an epoch still
 * has its reply pending only while hr_redis_epoch() returns that epoch.
 */
uint64_t hr_redis_epoch(const struct hr_redis *redis);

/** Drop the connection, and with it every pending reply; the next call
 *  reconnects. */
void hr_redis_reset(struct hr_redis *redis);

/**
 * Pipelined variant of hr_redis_eval(): load @script if this client has not
 * yet, then write EVALSHA with its arguments (copied) to the connection and
 * return without waiting for the reply; hr_redis_reply() reads it later,
 * replies coming back in the order the requests were sent. Returns 0, or
 * -1 with @errstr (on an I/O error the connection is dropped).
 */
int hr_redis_eval_send(struct hr_redis *redis,
                       struct hr_script *script,
                       int nkeys,
                       int argc,
                       const char **argv,
                       const size_t *argvlen,
                       char *errstr,
                       size_t errstr_size) HR_MUST_CHECK;

/**
 * Read the next pending reply (caller frees with freeReplyObject). A
 * NOSCRIPT error reply (the server lost its script cache) also forgets
 * @script's sha, so that the next call loads it again. Returns NULL on an
 * I/O failure, with @errstr filled and the connection dropped.
 */
redisReply *hr_redis_reply(struct hr_redis *redis,
                           struct hr_script *script,
                           char *errstr,
                           size_t errstr_size);

#endif
