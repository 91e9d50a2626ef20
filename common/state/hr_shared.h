/*
 * A credential that one replica mints and every replica shares through
 * Redis: APNs provider tokens (Apple wants one token per key refreshed
 * every 20 to 60 minutes, not one per process: several processes minting
 * their own get 429 TooManyProviderTokenUpdates) and Google OAuth2 access
 * tokens (hr_gcp: minted by an HTTP exchange; one per fleet, not per pod).
 *
 * The token lives at <prefix><name> as "<refresh_at_ms> <expires_ms>
 * <token>" (wall-clock ms) with a TTL of its remaining life, and in the
 * struct. A call uses the struct's copy until its refresh_at, else Redis's
 * under the same rule. When neither will do, the replica that takes
 * <prefix><name>:lock (SET NX PX lock_ms, with a random owner id) mints
 * with its callback, stores the token and releases the lock if it still
 * owns it; the others poll Redis every HR_SHARED_POLL_MS for up to
 * HR_SHARED_WAIT_MS, taking the lock themselves if it goes away without a
 * token (a replica that died while minting), then fall back to the last
 * token they saw while it has not expired.
 *
 * Whenever Redis fails, the mint fails or the wait runs out, a token that
 * has not expired is still handed out (a warning is logged) rather than
 * the failure.
 *
 * Not thread-safe: one struct per loop thread, like the struct hr_redis it
 * is called with. Tokens are never logged.
 */
#ifndef HR_SHARED_H
#define HR_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"
#include "hr_redis.h"

/* The largest token, NUL included. */
#define HR_SHARED_TOKEN_MAX 8192
/* The largest key, prefix and name, NUL included. */
#define HR_SHARED_KEY_MAX 1024
/* How long a minting replica holds the lock unless lock_ms says
 * otherwise: for a mint that is a local signature. */
#define HR_SHARED_LOCK_MS 10000
/* How long the other replicas wait for its token. */
#define HR_SHARED_WAIT_MS 3000
/* How often they look for it meanwhile. */
#define HR_SHARED_POLL_MS 100

/** What hr_shared_token_get() (and a mint callback) came to. */
enum hr_shared_result {
    HR_SHARED_OK = 0,
    /* Redis failed and no valid token was held: an own-state outage
     * (SPEC section 7), pause and retry. Never returned by a mint. */
    HR_SHARED_REDIS,
    /* The mint failed in a way that may pass (a timeout, a 5xx), or
     * another replica's token did not arrive in time: retry later. */
    HR_SHARED_TRANSIENT,
    /* The mint was refused or cannot be made (a revoked or unusable key),
     * or the name does not fit a Redis key: retrying will not help until
     * someone acts. */
    HR_SHARED_AUTH,
};

/** One shared token as this replica sees it. Caller-owned storage. */
struct hr_shared_token {
    char key[HR_SHARED_KEY_MAX];      /* "" when the name did not fit */
    char lock[HR_SHARED_KEY_MAX + 8]; /* key ":lock" */
    char value[HR_SHARED_TOKEN_MAX];  /* the token; "" when none */
    int64_t refresh_at_ms;            /* wall clock */
    int64_t expires_ms;               /* wall clock */
    /* How long the minting replica holds the lock: more than the mint
     * callback's worst case, so that no other replica mints meanwhile.
     * HR_SHARED_LOCK_MS after hr_shared_token_init(); set it after. */
    int64_t lock_ms;
    uint64_t minted;         /* tokens minted by this struct */
    uint64_t adopted;        /* tokens taken from Redis, minted elsewhere */
    struct hr_script script; /* hr_shared.lua: compare-and-delete */
};

/**
 * Mint a new token at @now_ms (wall clock) into @out (@size bytes,
 * HR_SHARED_TOKEN_MAX) and say when it is due for refresh and when it
 * expires (wall-clock ms). The token must be printable ASCII without
 * spaces. Called with the lock held, at most once per
 * hr_shared_token_get(). Returns HR_SHARED_OK, or HR_SHARED_TRANSIENT or
 * HR_SHARED_AUTH with @errstr (handed on to the caller of
 * hr_shared_token_get()).
 */
typedef enum hr_shared_result hr_shared_mint_fn(void *opaque,
                                                int64_t now_ms,
                                                char *out,
                                                size_t size,
                                                int64_t *refresh_at_ms,
                                                int64_t *expires_ms,
                                                char *errstr,
                                                size_t errstr_size);

/**
 * Set up @t for the Redis key <@prefix><@name> (both copied) with no token
 * and lock_ms HR_SHARED_LOCK_MS. A name too long for HR_SHARED_KEY_MAX
 * leaves key empty: hr_shared_token_get() then returns HR_SHARED_AUTH
 * unless it is called without Redis. Release with
 * hr_shared_token_release().
 */
void hr_shared_token_init(struct hr_shared_token *t,
                          const char *prefix,
                          const char *name);

/** Wipe the token held in @t. @t may be set up again with _init(). */
void hr_shared_token_release(struct hr_shared_token *t);

/**
 * Make @t->value a token that is valid now (see the top of this file): the
 * one held until its refresh_at, else the fleet's from @redis, else a new
 * one minted with @mint(@opaque, ...) under the lock. @redis (borrowed)
 * may be NULL: no sharing, @t alone mints. Usually returns at once; blocks
 * for @mint when this replica mints, or for up to HR_SHARED_WAIT_MS when
 * another one does.
 *
 * Returns HR_SHARED_OK with @t->value (borrowed, valid until the next call
 * on @t) and @t->expires_ms set; @t->minted counts this struct's mints.
 * While a token that has not expired is held, it is returned (a warning
 * logged) rather than a failure. Otherwise HR_SHARED_REDIS,
 * HR_SHARED_TRANSIENT or HR_SHARED_AUTH (@mint's own verdict and errstr,
 * or see enum hr_shared_result) with @errstr, and @t->value empty.
 */
HR_MUST_CHECK enum hr_shared_result
hr_shared_token_get(struct hr_shared_token *t,
                    struct hr_redis *redis,
                    hr_shared_mint_fn *mint,
                    void *opaque,
                    char *errstr,
                    size_t errstr_size);

/**
 * The provider refused @token (expired or invalid): forget it here if @t
 * holds it, and in @redis (may be NULL) only if Redis still holds that
 * very token, so that a newer one minted meanwhile survives; the next
 * hr_shared_token_get() adopts that one or mints another. @token NULL
 * drops the struct's copy whatever it is and leaves Redis alone. Returns
 * 0, or -1 with @errstr when Redis fails (the key expires on its own).
 */
HR_MUST_CHECK int hr_shared_token_forget(struct hr_shared_token *t,
                                         struct hr_redis *redis,
                                         const char *token,
                                         char *errstr,
                                         size_t errstr_size);

#endif
