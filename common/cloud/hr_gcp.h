/*
 * Google service accounts: the key file, and OAuth2 access tokens for a
 * scope (FCM HTTP v1, the Play Developer API) minted with the RS256 JWT
 * bearer grant and shared by every replica through Redis
 * (research/push.md §4.3).
 *
 * One token per service account and scope serves the whole fleet,
 * shared by hr_shared (state/hr_shared.h): it lives at
 * <prefix>gcp:token:<client_email>:<scope> as "<refresh_at_ms> <expires_ms>
 * <token>" (wall-clock ms, refresh_at HR_GCP_REFRESH_MARGIN_MS before
 * expiry) with a TTL of its remaining life, and in the struct. A call uses
 * the struct's copy while it has more than HR_GCP_REFRESH_MARGIN_MS left,
 * else Redis's under the same rule. When neither will do, the replica that
 * takes <prefix>gcp:token:<client_email>:<scope>:lock (SET NX PX
 * HR_GCP_LOCK_MS) mints an assertion, exchanges it at token_uri (one
 * blocking libcurl POST of at most HR_GCP_HTTP_TIMEOUT_MS), stores the
 * answer and releases the lock; the others poll Redis every 100 ms for up
 * to HR_GCP_WAIT_MS (taking the lock themselves if it goes away without a
 * token), then fall back to their last token while it has not expired.
 *
 * Not thread-safe: one struct hr_gcp_sa per loop thread, like the
 * struct hr_redis it is called with; hr_gcp_sa_fetches() alone may be read
 * from any thread. Tokens and keys are never logged.
 */
#ifndef HR_GCP_H
#define HR_GCP_H

#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

struct hr_gcp_sa;
struct hr_redis;
struct hr_tls;

/* Scope for FCM HTTP v1 sends. */
#define HR_GCP_SCOPE_FCM "https://www.googleapis.com/auth/firebase.messaging"

/* The largest access token accepted, NUL included (Google's are ~200 to
 * 2048 bytes): a good size for the caller's buffer. */
#define HR_GCP_TOKEN_MAX 4096

/* A token with less life than this left is refreshed (5 minutes). */
#define HR_GCP_REFRESH_MARGIN_MS (5 * 60 * 1000)
/* How long the minting replica holds the lock at most: longer than the
 * exchange's timeout, so that no other replica starts one meanwhile. */
#define HR_GCP_LOCK_MS 15000
/* How long the other replicas wait for its token (HR_SHARED_WAIT_MS). */
#define HR_GCP_WAIT_MS 3000
/* Timeout of the exchange at token_uri. */
#define HR_GCP_HTTP_TIMEOUT_MS 10000
/* Lifetime asked for in the assertion (Google's maximum). */
#define HR_GCP_ASSERTION_TTL_S 3600

/** What hr_gcp_token() came to; the caller branches on it. */
enum hr_gcp_result {
    HR_GCP_OK = 0,
    /* Redis failed and no valid token was held: an own-state outage
     * (SPEC section 7), pause and retry. */
    HR_GCP_REDIS,
    /* token_uri unreachable, timed out, 429 or 5xx, an unusable answer,
     * or another replica's fetch did not arrive in time: retry later. */
    HR_GCP_TRANSIENT,
    /* token_uri refused the assertion (400 invalid_grant, 401, 403):
     * the key is revoked, deleted or the clock is off; or the key cannot
     * sign, or client_email and scope do not fit a Redis key. Retrying
     * will not help until someone acts. */
    HR_GCP_AUTH,
};

/**
 * Read the service-account key file @path (the JSON downloaded from the
 * Cloud console): "type" must be "service_account", and "client_email",
 * "private_key" (PEM, RSA of at least 2048 bits, PKCS#8 or PKCS#1),
 * "private_key_id", "project_id" and "token_uri" must be non-empty strings.
 * @token_uri_override (HERALD_FCM_TOKEN_URI, for tests; NULL: none)
 * replaces the file's token_uri, which may then be absent. A token_uri
 * must be http:// or https://. The key is parsed once, here. Returns the
 * account (free with hr_gcp_sa_free()) or NULL with @errstr naming the file
 * and the missing or bad field.
 */
struct hr_gcp_sa *hr_gcp_sa_load(const char *path,
                                 const char *token_uri_override,
                                 char *errstr,
                                 size_t errstr_size);

/** The account's project_id (borrowed; lives as long as @sa). */
const char *hr_gcp_sa_project(const struct hr_gcp_sa *sa);

/** The account's client_email (borrowed). */
const char *hr_gcp_sa_email(const struct hr_gcp_sa *sa);

/** The token endpoint in use: the override, else the file's (borrowed). */
const char *hr_gcp_sa_token_uri(const struct hr_gcp_sa *sa);

/** How many exchanges this struct made at token_uri, answered or not
 *  (a counter for metrics and tests). Safe from any thread. */
uint64_t hr_gcp_sa_fetches(const struct hr_gcp_sa *sa);

/** Wipe the tokens held and free @sa. NULL is a no-op. */
void hr_gcp_sa_free(struct hr_gcp_sa *sa);

/**
 * An access token for @scope (space-separated scopes allowed) into @out
 * (@out_size bytes; HR_GCP_TOKEN_MAX always fits) and, when @expires_ms is
 * not NULL, its expiry (wall-clock ms). See the top of this file for the
 * sharing; @redis (borrowed, may be NULL: no sharing, this struct alone)
 * keeps the fleet's copy and the lock, @tls (borrowed, may be NULL: the
 * system store) verifies token_uri. Usually returns at once; blocks for
 * the exchange (up to HR_GCP_HTTP_TIMEOUT_MS) when this replica mints, or
 * for up to HR_GCP_WAIT_MS when another one does.
 *
 * Returns HR_GCP_OK, or another value with @errstr set and @out untouched.
 * While a token that has not expired is held, it is returned (HR_GCP_OK,
 * a warning logged) rather than a failure.
 */
HR_MUST_CHECK enum hr_gcp_result hr_gcp_token(struct hr_gcp_sa *sa,
                                              struct hr_redis *redis,
                                              const struct hr_tls *tls,
                                              const char *scope,
                                              char *out,
                                              size_t out_size,
                                              int64_t *expires_ms,
                                              char *errstr,
                                              size_t errstr_size);

/**
 * The API answered UNAUTHENTICATED (401) to @token for @scope: drop the
 * struct's copy if it is @token, and delete the fleet's copy in @redis
 * (may be NULL) only if it still holds @token, so that a newer token
 * another replica fetched meanwhile survives. The next hr_gcp_token()
 * adopts that one or fetches a new one. @token NULL drops the struct's
 * copy whatever it is and leaves Redis alone. A Redis failure is logged,
 * not returned: the key expires on its own.
 */
void hr_gcp_token_forget(struct hr_gcp_sa *sa,
                         struct hr_redis *redis,
                         const char *scope,
                         const char *token);

#endif
