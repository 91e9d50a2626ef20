/*
 * Web Push message encryption (RFC 8291, "aes128gcm" content coding of
 * RFC 8188) and VAPID authorization (RFC 8292), on OpenSSL EVP only
 * (research/push.md §5.1).
 *
 * Encryption: a fresh ephemeral P-256 key pair and a random 16-byte salt
 * per message; ECDH with the subscription's p256dh key, HKDF-SHA-256 keyed
 * with its auth secret, then one AES-128-GCM record (rs 4096, the
 * plaintext followed by the 0x02 last-record delimiter, no padding). The
 * body is salt (16) || rs (4, big endian) || idlen (1) = 65 || the
 * ephemeral public key (65) || ciphertext and tag: 86 + len + 17 bytes.
 * RFC 8291 §4 requires a single record, so at most PUSH_ECE_MAX_PLAINTEXT
 * bytes fit.
 *
 * VAPID: an ES256 JWT {aud: the endpoint's origin, exp, sub} signed with
 * the application server's key, sent as
 * "Authorization: vapid t=<jwt>, k=<public key>".
 */
#ifndef PUSH_ECE_H
#define PUSH_ECE_H

#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

/* The record size written into the header. */
#define PUSH_ECE_RS 4096
/* salt || rs || idlen || keyid */
#define PUSH_ECE_HEADER_LEN 86
/* rs - header - delimiter - tag = 4096 - 86 - 1 - 16. */
#define PUSH_ECE_MAX_PLAINTEXT 3993
#define PUSH_ECE_SALT_LEN      16
/* A raw P-256 private scalar. */
#define PUSH_ECE_PRIVATE_KEY_LEN 32

/* VAPID JWTs live 12 hours (RFC 8292 allows up to 24) and are reused for
 * an origin until an hour before they expire. */
#define PUSH_VAPID_TTL_S   (12 * 3600)
#define PUSH_VAPID_RENEW_S 3600

/**
 * Encrypt @len bytes of @plain for the subscription whose keys are
 * @p256dh_b64url (the 65-byte uncompressed P-256 point) and @auth_b64url
 * (the 16-byte auth secret), both base64url as browsers give them (padding
 * tolerated). On success returns 0 and stores the body (malloc'd, caller
 * frees) in *@out and its length in *@out_len. Returns -1 with @errstr
 * when a key is malformed or not on the curve (the subscription is
 * broken: do not retry), when @len exceeds PUSH_ECE_MAX_PLAINTEXT, or when
 * OpenSSL fails. Thread-safe.
 */
HR_MUST_CHECK int push_ece_encrypt(const char *p256dh_b64url,
                                   const char *auth_b64url,
                                   const void *plain,
                                   size_t len,
                                   unsigned char **out,
                                   size_t *out_len,
                                   char *errstr,
                                   size_t errstr_size);

/**
 * push_ece_encrypt() with the salt (PUSH_ECE_SALT_LEN bytes) and the
 * ephemeral private key (PUSH_ECE_PRIVATE_KEY_LEN bytes, a big-endian
 * scalar) given instead of drawn at random: a seam for tests (RFC 8291
 * Appendix A). Never reuse a salt and key pair in production.
 */
HR_MUST_CHECK int push_ece_encrypt_with(const char *p256dh_b64url,
                                        const char *auth_b64url,
                                        const void *plain,
                                        size_t len,
                                        const unsigned char *salt,
                                        const unsigned char *private_key,
                                        unsigned char **out,
                                        size_t *out_len,
                                        char *errstr,
                                        size_t errstr_size);

struct push_vapid;

/**
 * The VAPID identity: @private_key_pem is the application server's P-256
 * key (PEM, SEC1 or PKCS#8; copied), @subject its contact, a "mailto:" or
 * "https:" URI (copied; Apple's and Mozilla's services require one).
 * Returns NULL with @errstr when the key is not a P-256 private key or the
 * subject is missing or of another scheme. Free with push_vapid_free().
 */
struct push_vapid *push_vapid_new(const char *private_key_pem,
                                  const char *subject,
                                  char *errstr,
                                  size_t errstr_size);

/** The public key as browsers want it for applicationServerKey: base64url
 *  of the 65-byte uncompressed point, no padding (borrowed). */
const char *push_vapid_public_key(const struct push_vapid *vapid);

/**
 * The Authorization header value for a push to @endpoint_url at @now_s:
 * "vapid t=<JWT>, k=<public key>", the JWT being ES256 over
 * {"aud": <origin>, "exp": @now_s + PUSH_VAPID_TTL_S, "sub": <subject>}
 * where the origin is the endpoint's scheme://host[:port] (lower-case,
 * default port dropped). The value is cached per origin (a few dozen at
 * most, the oldest dropped first) and reused until PUSH_VAPID_RENEW_S
 * before its exp. Returns it (malloc'd, caller frees), or NULL with
 * @errstr when @endpoint_url is not an http(s) URL with a host. Not
 * thread-safe (the cache): one struct per thread.
 */
HR_MUST_CHECK char *push_vapid_header(struct push_vapid *vapid,
                                      const char *endpoint_url,
                                      int64_t now_s,
                                      char *errstr,
                                      size_t errstr_size);

/** Wipe the key and free @vapid. NULL is a no-op. */
void push_vapid_free(struct push_vapid *vapid);

#endif
