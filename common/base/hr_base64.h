/*
 * Base64 through OpenSSL's EVP_EncodeBlock and EVP_DecodeBlock: the
 * standard alphabet (RFC 4648 §4, padded) for SQS binary attributes, SNS
 * envelopes and CloudEvents' data_base64, and the URL-safe one (RFC 4648
 * §5, unpadded) for JWS (hr_jwt) and Web Push keys.
 */
#ifndef HR_BASE64_H
#define HR_BASE64_H

#include <stddef.h>

/** Flags of hr_base64url_decode(). */
enum hr_base64_flags {
    /* Also accept trailing '=' padding, the standard alphabet's '+' and
     * '/' (the mapping is unambiguous) and unused low bits that are not
     * zero, as Web Push subscriptions sometimes carry. Without it the
     * input must be exactly what hr_base64url_encode() writes. */
    HR_BASE64_LENIENT = 1 << 0,
};

/** @len bytes of @src encoded, NUL-terminated, malloc'd (caller frees);
 *  its length in *@out_len when not NULL. Aborts on out-of-memory. */
char *hr_base64_encode(const void *src, size_t len, size_t *out_len);

/**
 * Decode @len characters of @src (padded; surrounding white space allowed)
 * into a malloc'd buffer (caller frees; one NUL byte is added after the
 * data) and its length into *@out_len. NULL when @src is not base64.
 */
void *hr_base64_decode(const char *src, size_t len, size_t *out_len);

/** @len bytes of @src in base64url without padding, NUL-terminated,
 *  malloc'd (caller frees); its length in *@out_len when not NULL. Aborts
 *  on out-of-memory. */
char *hr_base64url_encode(const void *src, size_t len, size_t *out_len);

/**
 * Decode @len characters of base64url @src into a malloc'd buffer (caller
 * frees; one NUL byte is added after the data) and its length into
 * *@out_len. Strict unless @flags has HR_BASE64_LENIENT: only the URL
 * alphabet, no padding, no white space, and the unused bits of the last
 * character zero (the canonical encoding). NULL when @src is not such
 * base64url. The intermediate copy is wiped, so @src may be a secret.
 */
void *hr_base64url_decode(const char *src,
                          size_t len,
                          unsigned flags,
                          size_t *out_len);

#endif
