/*
 * Verification of Apple's signed data: the signedPayload of an App Store
 * Server Notification V2 and the signedTransactionInfo / signedRenewalInfo
 * it carries, checked the way Apple's app-store-server-library
 * SignedDataVerifier checks them with online checks off (no OCSP):
 *
 *   1. the compact JWS splits into three base64url segments; the header
 *      and the payload are JSON objects;
 *   2. the header's "x5c" is a non-empty array, then its "alg" is exactly
 *      "ES256" (anything else, HS256 and "none" included, is refused before
 *      any key is looked at);
 *   3. "x5c" holds exactly 3 standard-base64 DER certificates; only the
 *      first two (leaf, intermediate) are used: the path leaf ->
 *      intermediate -> one of the configured roots is built by OpenSSL, at
 *      the time of the payload's signedDate (ms; the clock when absent),
 *      with X509_V_FLAG_X509_STRICT when configured; x5c[2] is never
 *      trusted;
 *   4. the leaf carries the extension 1.2.840.113635.100.6.11.1 and the
 *      intermediate 1.2.840.113635.100.6.2.1;
 *   5. the ES256 signature (64 bytes R || S) over "<header>.<payload>"
 *      verifies with the leaf's P-256 public key;
 *   6. the payload names the configured app and an accepted environment.
 *
 * Only signedDate is read from the payload before step 5. Each nested JWS
 * (data.signedTransactionInfo, data.signedRenewalInfo) carries its own
 * chain: verify it with its own call; the outer signature does not vouch
 * for it.
 *
 * libjwt is not used: in 1.10 it skips the signature when decoding without
 * a key and takes the algorithm from the token (see hr_jwt.h).
 */
#ifndef SUBS_JWS_H
#define SUBS_JWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

struct json_t;

/* Longest JWS accepted: generous, a notification with both nested JWS
 * and their chains is a few KB. */
#define SUBS_JWS_MAX_LEN (1024 * 1024)

/* The leaf's and the intermediate's Apple extensions (presence only). */
#define SUBS_JWS_LEAF_OID         "1.2.840.113635.100.6.11.1"
#define SUBS_JWS_INTERMEDIATE_OID "1.2.840.113635.100.6.2.1"

/* The name of the built-in Apple Root CA - G3 (subs_apple_root.c) in
 * subs_jws_conf.root_paths: the default of HERALD_APPSTORE_ROOT_CERTS. */
#define SUBS_JWS_APPLE_ROOT_G3 "builtin:AppleRootCA-G3"

/** Apple Root CA - G3 in PEM form (subs_apple_root.c). */
extern const char subs_jws_apple_root_g3_pem[];

/** What a JWS holds, which says where the app and environment are. */
enum subs_jws_kind {
    /* signedPayload: bundleId, appAppleId and environment from "data",
     * else "summary", else "externalPurchaseToken" (environment "Sandbox"
     * when externalPurchaseId starts with "SANDBOX", else "Production"),
     * else "appData", as Apple's library takes them. */
    SUBS_JWS_NOTIFICATION,
    /* signedTransactionInfo: top-level bundleId and environment. */
    SUBS_JWS_TRANSACTION,
    /* signedRenewalInfo: top-level environment only (it has no bundleId;
     * Apple checks only the environment). */
    SUBS_JWS_RENEWAL,
};

/** Settings of a verifier; everything is copied by subs_jws_verifier_new(). */
struct subs_jws_conf {
    /* PEM (one or more certificates) or DER files of the trusted roots,
     * e.g. AppleRootCA-G3.cer, or SUBS_JWS_APPLE_ROOT_G3 for the built-in
     * one (HERALD_APPSTORE_ROOT_CERTS); at least one. */
    const char *const *root_paths;
    size_t nroots;
    /* X509_V_FLAG_X509_STRICT. Set it in production (Apple's chain
     * passes; a zeroed conf leaves it off); Apple's test certificates lack
     * key identifiers and need it off. */
    bool strict_x509;
    /* Required bundleId, e.g. "com.example". */
    const char *bundle_id;
    /* Notifications: when not 0, an appAppleId in the payload must equal
     * it, and a Production one must have it. Required (> 0) when
     * @environments holds "Production", as in Apple's library. */
    int64_t app_apple_id;
    /* Accepted environments: "Production" and/or "Sandbox" (Xcode and
     * LocalTesting data is not signed by Apple and never verifies). */
    const char *const *environments;
    size_t nenvironments;
    /* Tests: the clock (Unix ms) for payloads without signedDate; 0: the
     * real clock. */
    int64_t now_ms_override;
};

struct subs_jws_verifier;

/**
 * A verifier for @conf (borrowed for the call: the roots are loaded and the
 * strings copied). Returns NULL with @errstr set when a root file cannot be
 * read or holds no certificate, or a setting is missing or invalid (no
 * root, no bundle_id, no environment or an unknown one, Production without
 * app_apple_id). The verifier is immutable: subs_jws_verify() may be
 * called on it from several threads.
 */
struct subs_jws_verifier *subs_jws_verifier_new(
    const struct subs_jws_conf *conf, char *errstr, size_t errstr_size);

/** Free @v. NULL is a no-op. */
void subs_jws_verifier_free(struct subs_jws_verifier *v);

/**
 * Verify the compact JWS @jws (NUL-terminated, at most SUBS_JWS_MAX_LEN
 * bytes) holding a @kind, as described at the top of this file. Returns
 * its payload (a new reference: the caller json_decref()s it) with *@code
 * set to NULL, or NULL with a reason in @errstr and in *@code (when @code
 * is not NULL) one of these static strings, with Apple's status:
 * - "bad_format": not three segments, a header or payload that is not a
 *   base64url JSON object (duplicate keys refused), a "crit" header, a
 *   signedDate that is not a number (VERIFICATION_FAILURE);
 * - "x5c": x5c missing or empty (VERIFICATION_FAILURE), not 3 entries
 *   (INVALID_CHAIN_LENGTH), an entry that is not base64 DER
 *   (INVALID_CERTIFICATE);
 * - "alg": alg is not exactly "ES256" (VERIFICATION_FAILURE);
 * - "chain": no valid path from the leaf through x5c[1] to a configured
 *   root at the effective time, expired and not-yet-valid included
 *   (VERIFICATION_FAILURE; INVALID_CHAIN in Java);
 * - "oid": an Apple extension is missing (VERIFICATION_FAILURE);
 * - "signature": the signature is not 64 bytes or does not verify, or the
 *   leaf key is not P-256 (VERIFICATION_FAILURE);
 * - "bundle_id", "app_apple_id": another app (INVALID_APP_IDENTIFIER);
 * - "environment": missing or not accepted (INVALID_ENVIRONMENT).
 * @errstr may be NULL when @errstr_size is 0. Every failure is permanent:
 * retrying the same JWS gives the same answer (unless signedDate is absent
 * and the clock moves). Thread-safe.
 */
HR_MUST_CHECK struct json_t *subs_jws_verify(const struct subs_jws_verifier *v,
                                             const char *jws,
                                             enum subs_jws_kind kind,
                                             const char **code,
                                             char *errstr,
                                             size_t errstr_size);

#endif
