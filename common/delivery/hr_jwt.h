/*
 * JSON Web Tokens: signing webhook credentials (SPEC section 8, auth type
 * "jwt") and provider tokens (APNs, Google service accounts, VAPID), and
 * verifying tokens with a pinned algorithm.
 *
 * This is the only module that touches libjwt (1.10.2 on Debian 12). That
 * version has two traps, both reproduced in tests/unit/test_jwt.c:
 *
 *   - jwt_decode() with a NULL key accepts an ES256 (or RS256) token without
 *     checking its signature, and then reports the algorithm as "none";
 *   - jwt_decode() trusts the token's own "alg" header, so an HS256 token
 *     whose HMAC key is the PEM of an RSA public key verifies against that
 *     PEM (algorithm confusion).
 *
 * hr_jwt_verify() therefore takes the expected algorithm from the caller,
 * rejects any token whose header names another one before libjwt sees it,
 * never decodes without a key, and checks the decoded algorithm again.
 * Other facts of 1.10.2: jwt_decode() checks no claim (exp included), HS
 * keys of any length are accepted, and the HMAC comparison is strcmp() (in
 * the upstream source of that series), so HS256 signatures are first
 * compared here in constant time.
 *
 * Signing does not use libjwt: jwt_encode_str() parses the PEM key again
 * for every token (~0.8 ms with OpenSSL 3), so the signer parses it once
 * and signs with OpenSSL directly (HS256 ~5 us, ES256 ~35 us, RS256
 * ~0.4 ms per token, release build).
 *
 * Supported algorithms: "HS256", "RS256", "ES256" (P-256). "none" never.
 */
#ifndef HR_JWT_H
#define HR_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

struct json_t;

/* Minimum HS256 secret length; RFC 7518 asks for HR_JWT_HS256_GOOD_LEN. */
#define HR_JWT_HS256_MIN_LEN  16
#define HR_JWT_HS256_GOOD_LEN 32

/* Minimum RSA modulus size for RS256, in bits. */
#define HR_JWT_RSA_MIN_BITS 2048

struct hr_jwt_signer;

/**
 * A signer for @alg ("HS256", "RS256" or "ES256") with @key:
 *   - HS256: the shared secret, @key_len bytes (any bytes). Fewer than
 *     HR_JWT_HS256_MIN_LEN bytes, or a PEM block, are rejected; fewer than
 *     HR_JWT_HS256_GOOD_LEN log a warning.
 *   - RS256: a PEM private key (PKCS#1 or PKCS#8), RSA of at least
 *     HR_JWT_RSA_MIN_BITS bits.
 *   - ES256: a PEM private key (SEC1 or PKCS#8, e.g. an APNs .p8 file) on
 *     the P-256 curve.
 * The key is copied (and wiped on free); the caller keeps @key. Returns
 * NULL with @errstr set when the algorithm is unknown or the key does not
 * fit it. The signer is immutable: hr_jwt_sign() may be called on it from
 * several threads.
 */
struct hr_jwt_signer *hr_jwt_signer_new(const char *alg,
                                        const void *key,
                                        size_t key_len,
                                        char *errstr,
                                        size_t errstr_size);

/** The signer's algorithm name ("HS256", ...), borrowed. */
const char *hr_jwt_signer_alg(const struct hr_jwt_signer *signer);

/**
 * Sign a fresh compact JWT (header {"alg": ..., "typ": "JWT"}) with claims
 * iss (@iss), aud (@aud), sub (@sub, omitted when NULL), iat (@now_s), exp
 * (@now_s + @ttl_seconds) and jti (128 random bits from RAND_bytes(), as
 * 32 lower-case hex digits; a new one per call, so tokens are never
 * reused). @iss and @aud must be non-empty and @ttl_seconds positive.
 * Returns the token (malloc'd, caller frees) or NULL with @errstr set.
 * Thread-safe. Costs about one signature (see above).
 */
HR_MUST_CHECK char *hr_jwt_sign(struct hr_jwt_signer *signer,
                                const char *iss,
                                const char *aud,
                                const char *sub,
                                int ttl_seconds,
                                int64_t now_s,
                                char *errstr,
                                size_t errstr_size);

/**
 * Sign a compact JWT whose payload is exactly @claims (a JSON object,
 * borrowed; serialized compactly, keys in insertion order) and whose header
 * is {"alg": <the signer's>, "typ": "JWT", "kid": @kid}, "kid" omitted when
 * @kid is NULL (an empty @kid is refused). No claim is added or checked:
 * the caller builds what its audience wants, for example
 *   - APNs provider token: kid = Key ID, {"iss": team, "iat": now};
 *   - Google service-account assertion: kid = private_key_id,
 *     {"iss", "scope", "aud", "iat", "exp"};
 *   - VAPID (RFC 8292): no kid, {"aud", "exp", "sub"}.
 * Returns the token (malloc'd, caller frees) or NULL with @errstr set
 * (@claims not an object, invalid UTF-8 in @kid, a signing failure).
 * Thread-safe, at the cost of one signature like hr_jwt_sign().
 */
HR_MUST_CHECK char *hr_jwt_sign_claims(struct hr_jwt_signer *signer,
                                       const char *kid,
                                       const struct json_t *claims,
                                       char *errstr,
                                       size_t errstr_size);

/** Wipe the key and free @signer. NULL is a no-op. */
void hr_jwt_signer_free(struct hr_jwt_signer *signer);

/**
 * Verify the compact JWS @token with the pinned algorithm @alg ("HS256",
 * "RS256" or "ES256"; "none" is refused) and @key (HS256: the secret bytes;
 * RS256 / ES256: a PEM public key "-----BEGIN PUBLIC KEY-----"). @key must
 * not be NULL nor empty. The token's header must name exactly @alg and
 * carry no "crit" member; the key must fit @alg as in hr_jwt_signer_new().
 *
 * This checks the signature only: no claim is validated (not even exp);
 * use hr_jwt_check_claims() for that. On success returns 0 and, when
 * @claims_out is not NULL, stores the payload object there (a new reference,
 * caller json_decref()s). On failure returns -1, sets @errstr and leaves
 * *@claims_out untouched. Thread-safe.
 *
 * Apple JWS (App Store Server Notifications, StoreKit) carries its key as
 * an "x5c" certificate chain in the header instead: that will be a separate
 * function (hr_jwt_verify_x5c(), pinned to ES256, checking the chain against
 * a configured root before decoding with the leaf's public key); it is not
 * implemented yet, and hr_jwt_verify() never trusts keys from the token.
 */
HR_MUST_CHECK int hr_jwt_verify(const char *token,
                                const char *alg,
                                const void *key,
                                size_t key_len,
                                struct json_t **claims_out,
                                char *errstr,
                                size_t errstr_size);

/**
 * Validate registered claims of a verified token's payload @claims: exp
 * must be present and > @now_s - @leeway_s; iat and nbf, when present,
 * must be <= @now_s + @leeway_s; iss must equal @iss and aud equal (or, as
 * an array, contain) @aud unless those are NULL. Returns 0, or -1 with
 * @errstr naming the failing claim.
 */
HR_MUST_CHECK int hr_jwt_check_claims(const struct json_t *claims,
                                      const char *iss,
                                      const char *aud,
                                      int64_t now_s,
                                      int leeway_s,
                                      char *errstr,
                                      size_t errstr_size);

#endif
