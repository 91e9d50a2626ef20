/*
 * Standard base64 (RFC 4648 §4, padded) through OpenSSL's EVP_EncodeBlock
 * and EVP_DecodeBlock: SQS binary attributes, SNS envelopes, CloudEvents'
 * data_base64.
 */
#ifndef HR_BASE64_H
#define HR_BASE64_H

#include <stddef.h>

/** @len bytes of @src encoded, NUL-terminated, malloc'd (caller frees);
 *  its length in *@out_len when not NULL. Aborts on out-of-memory. */
char *hr_base64_encode(const void *src, size_t len, size_t *out_len);

/**
 * Decode @len characters of @src (padded; surrounding white space allowed)
 * into a malloc'd buffer (caller frees; one NUL byte is added after the
 * data) and its length into *@out_len. NULL when @src is not base64.
 */
void *hr_base64_decode(const char *src, size_t len, size_t *out_len);

#endif
