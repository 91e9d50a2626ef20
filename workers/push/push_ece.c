/*
 * Web Push encryption (RFC 8291 over RFC 8188 aes128gcm) and VAPID
 * (RFC 8292) with OpenSSL 3 EVP. See push_ece.h.
 */
#include "push_ece.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "hr_base64.h"
#include "hr_jwt.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define ECE_POINT_LEN  65 /* uncompressed P-256 point: 0x04 || X || Y */
#define ECE_AUTH_LEN   16
#define ECE_SECRET_LEN 32 /* ECDH output, IKM */
#define ECE_KEY_LEN    16 /* AES-128 */
#define ECE_NONCE_LEN  12
#define ECE_TAG_LEN    16
#define ECE_DELIMITER  0x02 /* last (and only) record, RFC 8188 §2 */

#define VAPID_CACHE      32
#define VAPID_ORIGIN_MAX 300

/* ---- base64url ---------------------------------------------------------- */

/*
 * Decode base64url @src (leniently: padding optional, the standard
 * alphabet's '+' and '/' tolerated) into exactly @want bytes at @dst.
 * Returns 0, or -1 when it is not base64 or has another length.
 */
static int b64url_decode_exact(const char *src, unsigned char *dst, size_t want)
{
    size_t len = strlen(src), got = 0;
    unsigned char *raw;
    int rc = -1;

    if (len > 4 * want + 4)
        return -1;
    raw = hr_base64url_decode(src, len, HR_BASE64_LENIENT, &got);
    if (!raw)
        return -1;
    if (got == want) {
        memcpy(dst, raw, want);
        rc = 0;
    }
    OPENSSL_cleanse(raw, got);
    free(raw);
    return rc;
}

/* ---- keys --------------------------------------------------------------- */

/* A P-256 public key from the uncompressed point @point, checked to be on
 * the curve; NULL when it is not one. */
static EVP_PKEY *public_from_point(unsigned char *point)
{
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point,
                                          ECE_POINT_LEN),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY_CTX *check = NULL;
    EVP_PKEY *pkey = NULL;

    if (point[0] != POINT_CONVERSION_UNCOMPRESSED || !ctx ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!check || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return pkey;
}

/* The P-256 key pair of the private scalar @priv (big endian, 32 bytes),
 * its public point computed here; NULL when @priv is not in [1, n-1]. */
static EVP_PKEY *pair_from_private(const unsigned char *priv)
{
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    /* Secure heap: OSSL_PARAM_free() then wipes the copy in @params. */
    BIGNUM *d = BN_secure_new();
    EC_POINT *pt = group ? EC_POINT_new(group) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    unsigned char pub[ECE_POINT_LEN];
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (!group || !d || !pt || !bld ||
        !BN_bin2bn(priv, PUSH_ECE_PRIVATE_KEY_LEN, d) || BN_is_zero(d) ||
        BN_cmp(d, EC_GROUP_get0_order(group)) >= 0 ||
        !EC_POINT_mul(group, pt, d, NULL, NULL, NULL) ||
        EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED, pub,
                           sizeof(pub), NULL) != sizeof(pub) ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                         "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                          sizeof(pub)) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EC_POINT_free(pt);
    BN_clear_free(d);
    EC_GROUP_free(group);
    return pkey;
}

/* @pkey's public key as an uncompressed point into @point. */
static int point_of(EVP_PKEY *pkey, unsigned char *point)
{
    size_t n = 0;

    /* Keys parsed from PEM keep the form they were written in. */
    if (!EVP_PKEY_set_utf8_string_param(
            pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed") ||
        !EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, point,
                                         ECE_POINT_LEN, &n) ||
        n != ECE_POINT_LEN || point[0] != POINT_CONVERSION_UNCOMPRESSED)
        return -1;
    return 0;
}

/* ---- encryption --------------------------------------------------------- */

/* HKDF-SHA-256 (RFC 5869, extract then expand) of @ikm with @salt and
 * @info into @out_len bytes at @out. */
static int hkdf(unsigned char *salt,
                size_t salt_len,
                unsigned char *ikm,
                size_t ikm_len,
                unsigned char *info,
                size_t info_len,
                unsigned char *out,
                size_t out_len)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, info_len),
        OSSL_PARAM_construct_end(),
    };
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    int ok = kctx && EVP_KDF_derive(kctx, out, out_len, params) == 1;

    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return ok ? 0 : -1;
}

/* ECDH of @as_key with @ua_key into @secret (32 bytes). */
static int ecdh(EVP_PKEY *as_key, EVP_PKEY *ua_key, unsigned char *secret)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, as_key, NULL);
    size_t n = ECE_SECRET_LEN;
    int ok = ctx && EVP_PKEY_derive_init(ctx) == 1 &&
             EVP_PKEY_derive_set_peer(ctx, ua_key) == 1 &&
             EVP_PKEY_derive(ctx, secret, &n) == 1 && n == ECE_SECRET_LEN;

    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* One AES-128-GCM record of @plain || 0x02 into @out, the tag after. */
static int seal(unsigned char *cek,
                unsigned char *nonce,
                const void *plain,
                size_t len,
                unsigned char *out)
{
    static const unsigned char delimiter = ECE_DELIMITER;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, m = 0, f = 0;
    int ok =
        c && EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, cek, nonce) == 1 &&
        (len == 0 || EVP_EncryptUpdate(c, out, &n, plain, (int)len) == 1) &&
        EVP_EncryptUpdate(c, out + n, &m, &delimiter, 1) == 1 &&
        EVP_EncryptFinal_ex(c, out + n + m, &f) == 1 &&
        (size_t)(n + m + f) == len + 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, ECE_TAG_LEN,
                            out + len + 1) == 1;

    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/*
 * The RFC 8291 §3.4 key schedule and the body, with the ephemeral key
 * @as_key and @salt chosen by the caller.
 */
static int encrypt_with_key(const char *p256dh_b64url,
                            const char *auth_b64url,
                            const void *plain,
                            size_t len,
                            EVP_PKEY *as_key,
                            const unsigned char *salt_in,
                            unsigned char **out,
                            size_t *out_len,
                            char *errstr,
                            size_t errstr_size)
{
    static const char key_label[] = "WebPush: info"; /* and its NUL */
    static const char cek_label[] = "Content-Encoding: aes128gcm";
    static const char nonce_label[] = "Content-Encoding: nonce";
    unsigned char ua_pub[ECE_POINT_LEN], as_pub[ECE_POINT_LEN];
    unsigned char auth[ECE_AUTH_LEN], salt[PUSH_ECE_SALT_LEN];
    unsigned char secret[ECE_SECRET_LEN], ikm[ECE_SECRET_LEN];
    unsigned char cek[ECE_KEY_LEN], nonce[ECE_NONCE_LEN];
    unsigned char key_info[sizeof(key_label) + 2 * ECE_POINT_LEN];
    unsigned char cek_info[sizeof(cek_label)], nonce_info[sizeof(nonce_label)];
    unsigned char *body = NULL, *p;
    EVP_PKEY *ua_key = NULL;
    size_t body_len;
    char ebuf[256];
    int rc = -1;

    if (b64url_decode_exact(p256dh_b64url, ua_pub, sizeof(ua_pub)) ||
        !(ua_key = public_from_point(ua_pub))) {
        snprintf(errstr, errstr_size,
                 "web push p256dh is not a base64url uncompressed P-256 "
                 "public key");
        goto out;
    }
    if (b64url_decode_exact(auth_b64url, auth, sizeof(auth))) {
        snprintf(errstr, errstr_size,
                 "web push auth is not a base64url 16-byte secret");
        goto out;
    }
    if (point_of(as_key, as_pub)) {
        snprintf(errstr, errstr_size, "cannot encode the ephemeral key: %s",
                 hr_tls_error(ebuf, sizeof(ebuf)));
        goto out;
    }
    memcpy(salt, salt_in, sizeof(salt));

    /* key_info = "WebPush: info" || 0x00 || ua_public || as_public */
    memcpy(key_info, key_label, sizeof(key_label));
    memcpy(key_info + sizeof(key_label), ua_pub, ECE_POINT_LEN);
    memcpy(key_info + sizeof(key_label) + ECE_POINT_LEN, as_pub, ECE_POINT_LEN);
    memcpy(cek_info, cek_label, sizeof(cek_label));
    memcpy(nonce_info, nonce_label, sizeof(nonce_label));
    if (ecdh(as_key, ua_key, secret) ||
        hkdf(auth, sizeof(auth), secret, sizeof(secret), key_info,
             sizeof(key_info), ikm, sizeof(ikm)) ||
        hkdf(salt, sizeof(salt), ikm, sizeof(ikm), cek_info, sizeof(cek_info),
             cek, sizeof(cek)) ||
        hkdf(salt, sizeof(salt), ikm, sizeof(ikm), nonce_info,
             sizeof(nonce_info), nonce, sizeof(nonce))) {
        snprintf(errstr, errstr_size, "cannot derive the web push keys: %s",
                 hr_tls_error(ebuf, sizeof(ebuf)));
        goto out;
    }

    /* salt || rs || idlen || keyid || ciphertext || tag */
    body_len = PUSH_ECE_HEADER_LEN + len + 1 + ECE_TAG_LEN;
    body = malloc(body_len);
    if (!body) {
        snprintf(errstr, errstr_size, "cannot encrypt: out of memory");
        goto out;
    }
    p = body;
    memcpy(p, salt, sizeof(salt));
    p += sizeof(salt);
    *p++ = (unsigned char)(PUSH_ECE_RS >> 24);
    *p++ = (unsigned char)(PUSH_ECE_RS >> 16);
    *p++ = (unsigned char)(PUSH_ECE_RS >> 8);
    *p++ = (unsigned char)PUSH_ECE_RS;
    *p++ = ECE_POINT_LEN;
    memcpy(p, as_pub, ECE_POINT_LEN);
    p += ECE_POINT_LEN;
    if (seal(cek, nonce, plain, len, p)) {
        snprintf(errstr, errstr_size, "cannot encrypt the web push body: %s",
                 hr_tls_error(ebuf, sizeof(ebuf)));
        free(body);
        goto out;
    }
    *out = body;
    *out_len = body_len;
    rc = 0;
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(ikm, sizeof(ikm));
    OPENSSL_cleanse(cek, sizeof(cek));
    OPENSSL_cleanse(nonce, sizeof(nonce));
    OPENSSL_cleanse(auth, sizeof(auth));
    EVP_PKEY_free(ua_key);
    return rc;
}

static int size_check(size_t len, char *errstr, size_t errstr_size)
{
    if (len <= PUSH_ECE_MAX_PLAINTEXT)
        return 0;
    snprintf(errstr, errstr_size,
             "web push payload of %zu bytes is over the %d bytes one "
             "aes128gcm record holds",
             len, PUSH_ECE_MAX_PLAINTEXT);
    return -1;
}

int push_ece_encrypt(const char *p256dh_b64url,
                     const char *auth_b64url,
                     const void *plain,
                     size_t len,
                     unsigned char **out,
                     size_t *out_len,
                     char *errstr,
                     size_t errstr_size)
{
    unsigned char salt[PUSH_ECE_SALT_LEN];
    EVP_PKEY *as_key;
    char ebuf[256];
    int rc;

    if (size_check(len, errstr, errstr_size))
        return -1;
    as_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!as_key || RAND_bytes(salt, sizeof(salt)) != 1) {
        snprintf(errstr, errstr_size,
                 "cannot make an ephemeral key and salt: %s",
                 hr_tls_error(ebuf, sizeof(ebuf)));
        EVP_PKEY_free(as_key);
        return -1;
    }
    rc = encrypt_with_key(p256dh_b64url, auth_b64url, plain, len, as_key, salt,
                          out, out_len, errstr, errstr_size);
    EVP_PKEY_free(as_key);
    return rc;
}

int push_ece_encrypt_with(const char *p256dh_b64url,
                          const char *auth_b64url,
                          const void *plain,
                          size_t len,
                          const unsigned char *salt,
                          const unsigned char *private_key,
                          unsigned char **out,
                          size_t *out_len,
                          char *errstr,
                          size_t errstr_size)
{
    EVP_PKEY *as_key;
    int rc;

    if (size_check(len, errstr, errstr_size))
        return -1;
    as_key = pair_from_private(private_key);
    if (!as_key) {
        snprintf(errstr, errstr_size,
                 "ephemeral private key is not a P-256 scalar");
        ERR_clear_error();
        return -1;
    }
    rc = encrypt_with_key(p256dh_b64url, auth_b64url, plain, len, as_key, salt,
                          out, out_len, errstr, errstr_size);
    EVP_PKEY_free(as_key);
    return rc;
}

/* ---- VAPID -------------------------------------------------------------- */

struct vapid_entry {
    char *origin; /* NULL: free slot */
    char *header;
    int64_t exp;
};

struct push_vapid {
    struct hr_jwt_signer *signer;
    char *subject;
    char *public_key; /* base64url */
    struct vapid_entry cache[VAPID_CACHE];
};

/* pem_password_cb for a key without passphrase: an encrypted one fails
 * instead of prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* base64url of @pem's uncompressed public point (malloc'd), or NULL. */
static char *public_key_b64url(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pkey =
        bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    unsigned char point[ECE_POINT_LEN];
    char *b64 = NULL;

    if (pkey && !point_of(pkey, point))
        b64 = hr_base64url_encode(point, sizeof(point), NULL);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ERR_clear_error();
    return b64;
}

struct push_vapid *push_vapid_new(const char *private_key_pem,
                                  const char *subject,
                                  char *errstr,
                                  size_t errstr_size)
{
    struct push_vapid *vapid;
    char err[256];

    if (!subject || !((!strncasecmp(subject, "mailto:", 7) && subject[7]) ||
                      (!strncasecmp(subject, "https://", 8) && subject[8]))) {
        snprintf(errstr, errstr_size,
                 "vapid subject '%.200s' is not a mailto: or https: uri",
                 subject ? subject : "");
        return NULL;
    }
    if (!private_key_pem) {
        snprintf(errstr, errstr_size, "vapid needs a private key");
        return NULL;
    }
    vapid = calloc(1, sizeof(*vapid));
    if (!vapid) {
        snprintf(errstr, errstr_size, "cannot create vapid: out of memory");
        return NULL;
    }
    /* The signer checks the key is a P-256 private key. */
    vapid->signer = hr_jwt_signer_new(
        "ES256", private_key_pem, strlen(private_key_pem), err, sizeof(err));
    if (!vapid->signer) {
        snprintf(errstr, errstr_size, "vapid key: %s", err);
        push_vapid_free(vapid);
        return NULL;
    }
    vapid->public_key = public_key_b64url(private_key_pem);
    vapid->subject = strdup(subject);
    if (!vapid->public_key || !vapid->subject) {
        snprintf(errstr, errstr_size,
                 "cannot read the vapid public key or out of memory");
        push_vapid_free(vapid);
        return NULL;
    }
    return vapid;
}

const char *push_vapid_public_key(const struct push_vapid *vapid)
{
    return vapid->public_key;
}

void push_vapid_free(struct push_vapid *vapid)
{
    if (!vapid)
        return;
    for (size_t i = 0; i < VAPID_CACHE; i++) {
        free(vapid->cache[i].origin);
        free(vapid->cache[i].header);
    }
    hr_jwt_signer_free(vapid->signer);
    free(vapid->subject);
    free(vapid->public_key);
    free(vapid);
}

/*
 * The origin of @url (RFC 6454): lower-case scheme "://" lower-case host
 * [":" port], the scheme's default port dropped. Only http and https, no
 * user info. Returns 0, or -1 when @url is not such a URL.
 */
static int origin_of(const char *url, char *buf, size_t size)
{
    const char *auth, *end, *host_end;
    char port[8] = "";
    size_t host_len;
    bool https;
    int n;

    if (!strncasecmp(url, "https://", 8)) {
        https = true;
        auth = url + 8;
    } else if (!strncasecmp(url, "http://", 7)) {
        https = false;
        auth = url + 7;
    } else {
        return -1;
    }
    end = auth + strcspn(auth, "/?#");
    for (const char *c = auth; c < end; c++)
        if (*c == '@' || (unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return -1;
    if (*auth == '[') { /* IPv6 literal */
        host_end = memchr(auth, ']', (size_t)(end - auth));
        if (!host_end)
            return -1;
        host_end++;
    } else {
        host_end = memchr(auth, ':', (size_t)(end - auth));
        if (!host_end)
            host_end = end;
    }
    host_len = (size_t)(host_end - auth);
    if (host_len == 0 || (host_end < end && *host_end != ':'))
        return -1;
    if (host_end < end && host_end + 1 < end) { /* ":" alone: default */
        const char *digits = host_end + 1;
        size_t nd = (size_t)(end - digits);
        long v = 0;

        if (nd > 5 || strspn(digits, "0123456789") < nd)
            return -1;
        for (size_t i = 0; i < nd; i++)
            v = v * 10 + (digits[i] - '0');
        if (v < 1 || v > 65535)
            return -1;
        if (v != (https ? 443 : 80))
            snprintf(port, sizeof(port), ":%ld", v);
    }
    n = snprintf(buf, size, "%s://%.*s%s", https ? "https" : "http",
                 (int)host_len, auth, port);
    if (n < 0 || (size_t)n >= size)
        return -1;
    for (char *c = strstr(buf, "://") + 3; *c && c < buf + n - strlen(port);
         c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return 0;
}

/* The cache slot for @origin: its own, a free one, or the one that
 * expires first. */
static struct vapid_entry *slot_for(struct push_vapid *vapid,
                                    const char *origin)
{
    struct vapid_entry *oldest = &vapid->cache[0];

    for (size_t i = 0; i < VAPID_CACHE; i++) {
        struct vapid_entry *e = &vapid->cache[i];

        if (!e->origin || !strcmp(e->origin, origin))
            return e;
        if (e->exp < oldest->exp)
            oldest = e;
    }
    return oldest;
}

char *push_vapid_header(struct push_vapid *vapid,
                        const char *endpoint_url,
                        int64_t now_s,
                        char *errstr,
                        size_t errstr_size)
{
    char origin[VAPID_ORIGIN_MAX], *jwt, *header;
    struct vapid_entry *e;
    json_t *claims;
    size_t len;

    if (!endpoint_url || origin_of(endpoint_url, origin, sizeof(origin))) {
        snprintf(errstr, errstr_size,
                 "web push endpoint is not an http(s) url with a host");
        return NULL;
    }
    e = slot_for(vapid, origin);
    /* Reuse while an hour is left, and never one that would outlive the
     * 24 hours RFC 8292 allows from now (a clock set back). */
    if (e->origin && !strcmp(e->origin, origin) &&
        now_s < e->exp - PUSH_VAPID_RENEW_S &&
        e->exp - now_s <= PUSH_VAPID_TTL_S)
        goto out_dup;

    claims = json_pack("{s:s, s:I, s:s}", "aud", origin, "exp",
                       (json_int_t)(now_s + PUSH_VAPID_TTL_S), "sub",
                       vapid->subject);
    if (!claims) {
        snprintf(errstr, errstr_size, "cannot build vapid claims");
        return NULL;
    }
    jwt = hr_jwt_sign_claims(vapid->signer, NULL, claims, errstr, errstr_size);
    json_decref(claims);
    if (!jwt)
        return NULL;
    len = strlen(jwt) + strlen(vapid->public_key) + 16;
    header = malloc(len);
    if (!header) {
        free(jwt);
        snprintf(errstr, errstr_size, "cannot sign vapid: out of memory");
        return NULL;
    }
    snprintf(header, len, "vapid t=%s, k=%s", jwt, vapid->public_key);
    free(jwt);
    if (!e->origin || strcmp(e->origin, origin)) {
        free(e->origin);
        e->origin = strdup(origin);
    }
    free(e->header);
    e->header = header;
    e->exp = now_s + PUSH_VAPID_TTL_S;
    if (!e->origin) {
        /* Out of memory: hand this one out uncached. */
        e->header = NULL;
        return header;
    }
out_dup:
    header = strdup(e->header);
    if (!header)
        snprintf(errstr, errstr_size, "cannot sign vapid: out of memory");
    return header;
}
