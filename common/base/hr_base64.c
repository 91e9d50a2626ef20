#include "hr_base64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hr_compat.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

char *hr_base64_encode(const void *src, size_t len, size_t *out_len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    int n;

    HR_ASSERT(out && len <= (size_t)1 << 30);
    n = EVP_EncodeBlock((unsigned char *)out, src, (int)len);
    out[n] = '\0';
    if (out_len)
        *out_len = (size_t)n;
    return out;
}

void *hr_base64_decode(const char *src, size_t len, size_t *out_len)
{
    unsigned char *out;
    size_t pad = 0;
    int n;

    while (len &&
           (*src == ' ' || *src == '\n' || *src == '\r' || *src == '\t')) {
        src++;
        len--;
    }
    while (len && (src[len - 1] == ' ' || src[len - 1] == '\n' ||
                   src[len - 1] == '\r' || src[len - 1] == '\t'))
        len--;
    if (len % 4 || len > (size_t)1 << 30)
        return NULL;
    for (size_t i = len; i > 0 && pad < 2 && src[i - 1] == '='; i--)
        pad++;
    /* EVP_DecodeBlock reads '=' anywhere as a zero digit: padding is only
     * allowed as the last one or two characters. */
    if (len > pad && memchr(src, '=', len - pad))
        return NULL;
    out = malloc(len / 4 * 3 + 1);
    HR_ASSERT(out);
    /* EVP_DecodeBlock counts padding as zero bytes: they are taken off. */
    n = len ? EVP_DecodeBlock(out, (const unsigned char *)src, (int)len) : 0;
    if (n < 0 || (size_t)n < pad) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)n - pad;
    out[*out_len] = '\0';
    return out;
}

char *hr_base64url_encode(const void *src, size_t len, size_t *out_len)
{
    size_t n;
    char *out = hr_base64_encode(src, len, &n);

    /* OpenSSL's standard alphabet with its two characters swapped, and
     * the padding taken off (RFC 4648 §5). */
    while (n && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
    }
    if (out_len)
        *out_len = n;
    return out;
}

/* The value of standard-alphabet character @c (after the swap). */
static int digit_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : 63;
}

void *hr_base64url_decode(const char *src,
                          size_t len,
                          unsigned flags,
                          size_t *out_len)
{
    bool lenient = flags & HR_BASE64_LENIENT;
    void *out = NULL;
    size_t n;
    char *std;

    if (lenient)
        while (len && src[len - 1] == '=')
            len--;
    if (len % 4 == 1 || len > (size_t)1 << 30)
        return NULL;
    std = malloc(len + 4);
    HR_ASSERT(std);
    for (n = 0; n < len; n++) {
        char c = src[n];

        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                   (c >= '0' && c <= '9') ||
                   (lenient && (c == '+' || c == '/'))))
            goto out_free_std;
        std[n] = c;
    }
    /* Canonical: the bits of the last character beyond the data (4 after
     * 2 characters of a group, 2 after 3) are zero. */
    if (!lenient && n % 4 && (digit_value(std[n - 1]) & (n % 4 == 2 ? 15 : 3)))
        goto out_free_std;
    while (n % 4)
        std[n++] = '=';
    out = hr_base64_decode(std, n, out_len);
out_free_std:
    OPENSSL_cleanse(std, n);
    free(std);
    return out;
}
