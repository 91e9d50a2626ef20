#include "hr_base64.h"

#include <openssl/evp.h>
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
