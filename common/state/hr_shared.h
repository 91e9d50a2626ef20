/*
 * A credential that one replica mints and every replica shares through
 * Redis: APNs provider tokens (Apple wants one token per key refreshed
 * every 20 to 60 minutes, not one per process: several processes minting
 * their own get 429 TooManyProviderTokenUpdates) and Google OAuth2 access
 * tokens (minted by an HTTP exchange; one per fleet, not per pod).
 *
 * The value lives at <prefix><name> as "<refresh_at_ms> <expires_ms>
 * <token>" with a TTL until it expires. Whoever finds it missing or due
 * for refresh takes <prefix><name>:lock (SET NX, 10 s) and mints; the
 * others keep using theirs while it is still valid, or wait up to 3 s for
 * the new one. The token is also kept in the struct, so a replica reads
 * Redis only once it is due.
 *
 * Not thread-safe: one per loop thread.
 */
#ifndef HR_SHARED_H
#define HR_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

struct hr_redis;

#define HR_SHARED_TOKEN_MAX 8192

struct hr_shared_token {
    char key[512];
    char lock[528];
    char value[HR_SHARED_TOKEN_MAX]; /* "" when none */
    int64_t refresh_at_ms;           /* wall clock */
    int64_t expires_ms;
    uint64_t minted;  /* by this process */
    uint64_t adopted; /* tokens taken from Redis, minted elsewhere */
};

/**
 * Mint a new token at @now_ms into @out (@size bytes) and say when it is
 * due for refresh and when it expires (wall-clock ms). Returns 0, or -1
 * with @errstr.
 */
typedef int hr_shared_mint_fn(void *opaque,
                              int64_t now_ms,
                              char *out,
                              size_t size,
                              int64_t *refresh_at_ms,
                              int64_t *expires_ms,
                              char *errstr,
                              size_t errstr_size);

/** Set up @t for the Redis key <@prefix><@name> (no token yet). */
void hr_shared_token_init(struct hr_shared_token *t,
                          const char *prefix,
                          const char *name);

/**
 * Make @t->value a token that is valid now: the one held while it is not
 * due, else the fleet's (from Redis), else a new one minted with @mint
 * under the lock. Returns 0, or -1 with @errstr when Redis fails (an
 * own-state outage: pause) or no valid token could be had.
 */
int hr_shared_token_get(struct hr_shared_token *t,
                        struct hr_redis *redis,
                        hr_shared_mint_fn *mint,
                        void *opaque,
                        char *errstr,
                        size_t errstr_size) HR_MUST_CHECK;

/**
 * The provider refused @token (expired or invalid): forget it here and in
 * Redis (only if Redis still holds that very token, so a newer one minted
 * meanwhile survives); the next hr_shared_token_get() mints or adopts
 * another. Returns 0, or -1 with @errstr when Redis fails.
 */
int hr_shared_token_forget(struct hr_shared_token *t,
                           struct hr_redis *redis,
                           const char *token,
                           char *errstr,
                           size_t errstr_size);

#endif
