/*
 * Unit tests for push_ece: RFC 8291 aes128gcm encryption against the RFC's
 * published example (Appendix A), round trips through an independent
 * decryption written here with OpenSSL (random keys, sizes up to the
 * single-record limit), malformed subscription keys, and VAPID (RFC 8292)
 * headers: the JWT verifies with the public key and carries the endpoint's
 * origin, exp and sub; k is the public key; caching per origin.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "hr_jwt.h"
#include "hx_fake_http.h"
#include "push_ece.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/*
 * RFC 8291 section 5 and Appendix A ("Intermediate Values for
 * Encryption"): the published test vector, base64url as printed there.
 */
#define RFC_PLAINTEXT "When I grow up, I want to be a watermelon"
#define RFC_UA_PUBLIC                                                          \
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZ" \
    "GH6SRpkNtoIAiw4"
#define RFC_UA_PRIVATE "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
#define RFC_AUTH       "BTBZMqHH6r4Tts7J_aSIgg"
#define RFC_AS_PUBLIC                                                          \
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8w" \
    "EqKK6PBru3jl7A8"
#define RFC_AS_PRIVATE "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
#define RFC_SALT       "DGv6ra1nlYgDCS1FRnbzlw"
#define RFC_BODY                                                               \
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIg" \
    "Dll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVB" \
    "St2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"

#define NOW     INT64_C(1763769600)
#define SUBJECT "mailto:push-ops@example.com"

/* ---- base64url, written here independently of push_ece.c -------------- */

static char *b64url(const void *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    int n;

    assert_non_null(out);
    n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

/* Decode @s (base64url, no padding) into a malloc'd buffer; *@len. */
static unsigned char *unb64url(const char *s, size_t *len)
{
    size_t n = strlen(s), m = n;
    char *std = malloc(n + 4);
    unsigned char *raw = malloc(n + 4);
    int out;

    assert_non_null(std);
    assert_non_null(raw);
    for (size_t i = 0; i < n; i++)
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (m % 4)
        std[m++] = '=';
    out = EVP_DecodeBlock(raw, (unsigned char *)std, (int)m);
    assert_true(out >= 0);
    *len = (size_t)out - (m - n);
    free(std);
    return raw;
}

/* ---- keys ------------------------------------------------------------- */

/* A P-256 key pair from its raw private scalar and public point. */
static EVP_PKEY *pair_from(const unsigned char *priv, unsigned char *pub)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *d = BN_bin2bn(priv, 32, NULL);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params;

    assert_non_null(bld);
    assert_non_null(d);
    assert_true(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                                "prime256v1", 0));
    assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d));
    assert_true(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                                 pub, 65));
    params = OSSL_PARAM_BLD_to_param(bld);
    assert_non_null(params);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params),
                     1);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(d);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* @pkey's uncompressed public point into @pub (65 bytes). */
static void point_of(EVP_PKEY *pkey, unsigned char *pub)
{
    size_t n = 0;

    assert_true(EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY,
                                                pub, 65, &n));
    assert_int_equal(n, 65);
    assert_int_equal(pub[0], 0x04);
}

/* ---- an independent decryption (the user agent's side) ---------------- */

/* HKDF-SHA-256 through the EVP_PKEY interface (push_ece.c uses EVP_KDF). */
static void hkdf(const unsigned char *salt,
                 size_t salt_len,
                 const unsigned char *ikm,
                 size_t ikm_len,
                 const unsigned char *info,
                 size_t info_len,
                 unsigned char *out,
                 size_t out_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t n = out_len;

    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()), 1);
    assert_int_equal(EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)salt_len), 1);
    assert_int_equal(EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int)ikm_len), 1);
    assert_int_equal(EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)info_len), 1);
    assert_int_equal(EVP_PKEY_derive(ctx, out, &n), 1);
    assert_int_equal(n, out_len);
    EVP_PKEY_CTX_free(ctx);
}

/*
 * Decrypt an aes128gcm body as RFC 8291 §3.4 and RFC 8188 say, with the
 * user agent's key pair @ua (public point @ua_pub) and @auth. Returns the
 * plaintext (malloc'd) and its length in *@len; fails the test when the
 * body does not decrypt.
 */
static unsigned char *decrypt(const unsigned char *body,
                              size_t body_len,
                              EVP_PKEY *ua,
                              const unsigned char *ua_pub,
                              const unsigned char *auth,
                              size_t *len)
{
    unsigned char secret[32], ikm[32], cek[16], nonce[12];
    unsigned char info[14 + 65 + 65], *plain;
    const unsigned char *salt = body, *as_pub = body + 21;
    size_t n = sizeof(secret), ct_len;
    EVP_PKEY_CTX *ctx;
    EVP_CIPHER_CTX *c;
    unsigned char tag[16];
    EVP_PKEY *as;
    int outl = 0, fin = 0;
    uint32_t rs;

    assert_true(body_len >= 86 + 17);
    rs = (uint32_t)body[16] << 24 | (uint32_t)body[17] << 16 |
         (uint32_t)body[18] << 8 | body[19];
    assert_int_equal(rs, 4096);
    assert_int_equal(body[20], 65);
    assert_true(body_len <= rs);

    /* The sender's public key, through a PEM-free route: fromdata. */
    {
        char group[] = "prime256v1";
        unsigned char point[65];
        OSSL_PARAM params[3];
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

        memcpy(point, as_pub, 65);
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                     group, 0);
        params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                                      point, 65);
        params[2] = OSSL_PARAM_construct_end();
        as = NULL;
        assert_int_equal(EVP_PKEY_fromdata_init(pctx), 1);
        assert_int_equal(
            EVP_PKEY_fromdata(pctx, &as, EVP_PKEY_PUBLIC_KEY, params), 1);
        EVP_PKEY_CTX_free(pctx);
    }

    ctx = EVP_PKEY_CTX_new(ua, NULL);
    assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
    assert_int_equal(EVP_PKEY_derive_set_peer(ctx, as), 1);
    assert_int_equal(EVP_PKEY_derive(ctx, secret, &n), 1);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(as);

    memcpy(info, "WebPush: info", 14); /* with its NUL */
    memcpy(info + 14, ua_pub, 65);
    memcpy(info + 14 + 65, as_pub, 65);
    hkdf(auth, 16, secret, 32, info, sizeof(info), ikm, 32);
    hkdf(salt, 16, ikm, 32,
         (const unsigned char *)"Content-Encoding: aes128gcm", 28, cek, 16);
    hkdf(salt, 16, ikm, 32, (const unsigned char *)"Content-Encoding: nonce",
         24, nonce, 12);

    ct_len = body_len - 86 - 16;
    plain = malloc(ct_len + 1);
    assert_non_null(plain);
    c = EVP_CIPHER_CTX_new();
    assert_int_equal(EVP_DecryptInit_ex(c, EVP_aes_128_gcm(), NULL, cek, nonce),
                     1);
    assert_int_equal(EVP_DecryptUpdate(c, plain, &outl, body + 86, (int)ct_len),
                     1);
    memcpy(tag, body + 86 + ct_len, sizeof(tag));
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag), 1);
    if (EVP_DecryptFinal_ex(c, plain + outl, &fin) != 1)
        fail_msg("aes128gcm body does not authenticate");
    EVP_CIPHER_CTX_free(c);
    /* Last record: the delimiter 0x02 after the data, no padding. */
    assert_int_equal((size_t)(outl + fin), ct_len);
    assert_int_equal(plain[ct_len - 1], 0x02);
    *len = ct_len - 1;
    return plain;
}

/* ---- RFC 8291 ---------------------------------------------------------- */

static void test_ece_rfc8291_example_is_reproduced(void **state)
{
    unsigned char *salt, *as_priv, *ua_priv, *ua_pub, *auth, *body, *plain;
    size_t salt_len, as_len, ua_priv_len, ua_pub_len, auth_len, body_len;
    size_t plain_len;
    char errstr[256] = "", *got, *hdr;
    EVP_PKEY *ua;

    (void)state;
    salt = unb64url(RFC_SALT, &salt_len);
    as_priv = unb64url(RFC_AS_PRIVATE, &as_len);
    assert_int_equal(salt_len, PUSH_ECE_SALT_LEN);
    assert_int_equal(as_len, PUSH_ECE_PRIVATE_KEY_LEN);
    if (push_ece_encrypt_with(RFC_UA_PUBLIC, RFC_AUTH, RFC_PLAINTEXT,
                              strlen(RFC_PLAINTEXT), salt, as_priv, &body,
                              &body_len, errstr, sizeof(errstr)))
        fail_msg("encrypt: %s", errstr);

    /* The exact bytes of RFC 8291 section 5. */
    got = b64url(body, body_len);
    assert_string_equal(got, RFC_BODY);
    assert_int_equal(body_len, 86 + strlen(RFC_PLAINTEXT) + 1 + 16);
    /* The header's key id is the sender's public key of Appendix A. */
    hdr = b64url(body + 21, 65);
    assert_string_equal(hdr, RFC_AS_PUBLIC);

    /* And the user agent of Appendix A reads it back. */
    ua_priv = unb64url(RFC_UA_PRIVATE, &ua_priv_len);
    ua_pub = unb64url(RFC_UA_PUBLIC, &ua_pub_len);
    auth = unb64url(RFC_AUTH, &auth_len);
    assert_int_equal(ua_priv_len, 32);
    assert_int_equal(ua_pub_len, 65);
    assert_int_equal(auth_len, 16);
    ua = pair_from(ua_priv, ua_pub);
    plain = decrypt(body, body_len, ua, ua_pub, auth, &plain_len);
    assert_int_equal(plain_len, strlen(RFC_PLAINTEXT));
    assert_memory_equal(plain, RFC_PLAINTEXT, plain_len);
    free(plain);
    EVP_PKEY_free(ua);
    free(ua_priv);
    free(ua_pub);
    free(auth);
    free(got);
    free(hdr);
    free(body);
    free(salt);
    free(as_priv);
}

/* A browser's subscription: a fresh P-256 pair and auth secret. */
struct ua {
    EVP_PKEY *key;
    unsigned char pub[65], auth[16];
    char *pub_b64, *auth_b64;
};

static void ua_new(struct ua *ua)
{
    ua->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ua->key);
    point_of(ua->key, ua->pub);
    assert_int_equal(RAND_bytes(ua->auth, sizeof(ua->auth)), 1);
    ua->pub_b64 = b64url(ua->pub, sizeof(ua->pub));
    ua->auth_b64 = b64url(ua->auth, sizeof(ua->auth));
}

static void ua_free(struct ua *ua)
{
    EVP_PKEY_free(ua->key);
    free(ua->pub_b64);
    free(ua->auth_b64);
}

static void test_ece_random_keys_round_trip(void **state)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1000, 3992, 3993};
    unsigned char *plain = malloc(PUSH_ECE_MAX_PLAINTEXT);
    struct ua ua;

    (void)state;
    assert_non_null(plain);
    assert_int_equal(RAND_bytes(plain, PUSH_ECE_MAX_PLAINTEXT), 1);
    ua_new(&ua);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *body, *back;
        size_t body_len, back_len;
        char errstr[256] = "";

        if (push_ece_encrypt(ua.pub_b64, ua.auth_b64, plain, sizes[i], &body,
                             &body_len, errstr, sizeof(errstr)))
            fail_msg("encrypt %zu bytes: %s", sizes[i], errstr);
        assert_int_equal(body_len, 86 + sizes[i] + 17);
        assert_true(body_len <= PUSH_ECE_RS);
        back = decrypt(body, body_len, ua.key, ua.pub, ua.auth, &back_len);
        assert_int_equal(back_len, sizes[i]);
        if (sizes[i])
            assert_memory_equal(back, plain, sizes[i]);
        free(back);
        free(body);
    }
    ua_free(&ua);
    free(plain);
}

static void test_ece_each_message_has_its_own_salt_and_key(void **state)
{
    unsigned char *b1, *b2;
    size_t l1, l2;
    char errstr[256];
    struct ua ua;

    (void)state;
    ua_new(&ua);
    assert_int_equal(push_ece_encrypt(ua.pub_b64, ua.auth_b64, "same", 4, &b1,
                                      &l1, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(push_ece_encrypt(ua.pub_b64, ua.auth_b64, "same", 4, &b2,
                                      &l2, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(l1, l2);
    assert_memory_not_equal(b1, b2, 16);           /* salt */
    assert_memory_not_equal(b1 + 21, b2 + 21, 65); /* ephemeral key */
    assert_memory_not_equal(b1 + 86, b2 + 86, l1 - 86);
    free(b1);
    free(b2);
    ua_free(&ua);
}

static void test_ece_refuses_more_than_one_record(void **state)
{
    unsigned char *plain = calloc(1, PUSH_ECE_MAX_PLAINTEXT + 1);
    unsigned char *body = NULL, salt[16] = {0}, key[32] = {1};
    size_t body_len = 0;
    char errstr[256] = "";
    struct ua ua;

    (void)state;
    assert_non_null(plain);
    ua_new(&ua);
    assert_int_equal(push_ece_encrypt(ua.pub_b64, ua.auth_b64, plain, 3994,
                                      &body, &body_len, errstr, sizeof(errstr)),
                     -1);
    assert_null(body);
    assert_non_null(strstr(errstr, "3993"));
    errstr[0] = '\0';
    assert_int_equal(push_ece_encrypt_with(ua.pub_b64, ua.auth_b64, plain, 3994,
                                           salt, key, &body, &body_len, errstr,
                                           sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "3993"));
    ua_free(&ua);
    free(plain);
}

static void encrypt_fails(const char *p256dh, const char *auth, const char *why)
{
    unsigned char *body = NULL;
    size_t body_len = 0;
    char errstr[256] = "";

    if (!push_ece_encrypt(p256dh, auth, "x", 1, &body, &body_len, errstr,
                          sizeof(errstr)))
        fail_msg("encrypted for keys that %s", why);
    assert_null(body);
    assert_true(errstr[0] != '\0');
}

static void test_ece_malformed_keys_are_refused(void **state)
{
    unsigned char pub[65];
    char *off_curve, *compressed, *padded;
    struct ua ua;

    (void)state;
    ua_new(&ua);
    memcpy(pub, ua.pub, 65);
    pub[64] ^= 1; /* Y no longer matches X */
    off_curve = b64url(pub, 65);
    pub[0] = 0x02;
    compressed = b64url(pub, 33);

    encrypt_fails(off_curve, ua.auth_b64, "are not on the curve");
    encrypt_fails(compressed, ua.auth_b64, "are compressed");
    encrypt_fails("BCVxsr7N", ua.auth_b64, "are too short");
    encrypt_fails("not base64url!", ua.auth_b64, "are not base64url");
    encrypt_fails("", ua.auth_b64, "are empty");
    encrypt_fails(ua.pub_b64, "BTBZMqHH6r4Tts7J_aSI", "have a short auth");
    encrypt_fails(ua.pub_b64, "BTBZMqHH6r4Tts7J_aSIggAA", "have a long auth");
    encrypt_fails(ua.pub_b64, "BTBZMqHH*r4Tts7J_aSIgg", "have a bad auth");
    /* Padding is tolerated: some stores keep it. */
    padded = malloc(strlen(ua.auth_b64) + 3);
    assert_non_null(padded);
    snprintf(padded, strlen(ua.auth_b64) + 3, "%s==", ua.auth_b64);
    {
        unsigned char *body;
        size_t body_len;
        char errstr[256];

        assert_int_equal(push_ece_encrypt(ua.pub_b64, padded, "x", 1, &body,
                                          &body_len, errstr, sizeof(errstr)),
                         0);
        free(body);
    }
    free(padded);
    free(off_curve);
    free(compressed);
    ua_free(&ua);
}

/* ---- VAPID ------------------------------------------------------------ */

static char *ec_priv, *ec_pub, *rsa_priv;

static int group_setup(void **state)
{
    (void)state;
    return hx_keypair_pem("EC", &ec_priv, &ec_pub) ||
                   hx_keypair_pem("RSA", &rsa_priv, NULL)
               ? -1
               : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(ec_priv);
    free(ec_pub);
    free(rsa_priv);
    return 0;
}

static struct push_vapid *vapid_ok(void)
{
    char errstr[256] = "";
    struct push_vapid *v =
        push_vapid_new(ec_priv, SUBJECT, errstr, sizeof(errstr));

    if (!v)
        fail_msg("vapid: %s", errstr);
    return v;
}

static char *header_ok(struct push_vapid *v, const char *url, int64_t now)
{
    char errstr[256] = "";
    char *h = push_vapid_header(v, url, now, errstr, sizeof(errstr));

    if (!h)
        fail_msg("vapid header for %s: %s", url, errstr);
    return h;
}

/* Split "vapid t=<jwt>, k=<key>" and verify the JWT; returns its claims
 * and the key (malloc'd) in *@k. */
static json_t *header_claims(const char *header, char **k)
{
    const char *t = header + strlen("vapid t="), *sep = strstr(header, ", k=");
    char *jwt, errstr[256] = "";
    json_t *claims = NULL;

    assert_int_equal(strncmp(header, "vapid t=", 8), 0);
    assert_non_null(sep);
    jwt = strndup(t, (size_t)(sep - t));
    assert_non_null(jwt);
    if (hr_jwt_verify(jwt, "ES256", ec_pub, strlen(ec_pub), &claims, errstr,
                      sizeof(errstr)))
        fail_msg("vapid jwt does not verify: %s", errstr);
    *k = strdup(sep + 4);
    free(jwt);
    return claims;
}

static void test_vapid_header_verifies_with_the_right_claims(void **state)
{
    struct push_vapid *v = vapid_ok();
    char *h = header_ok(v,
                        "https://fcm.googleapis.com/fcm/send/"
                        "dJ2x:APA91b?topic=x#frag",
                        NOW);
    unsigned char pub[65], *k_raw;
    size_t k_len;
    json_t *claims;
    char *k;
    EVP_PKEY *pkey;
    BIO *bio;

    (void)state;
    claims = header_claims(h, &k);
    assert_int_equal(json_object_size(claims), 3);
    assert_string_equal(json_string_value(json_object_get(claims, "aud")),
                        "https://fcm.googleapis.com");
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")),
                     NOW + 12 * 3600);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")),
                        SUBJECT);

    /* k: base64url (no padding) of the public key's uncompressed point. */
    assert_null(strchr(k, '='));
    assert_string_equal(k, push_vapid_public_key(v));
    k_raw = unb64url(k, &k_len);
    assert_int_equal(k_len, 65);
    bio = BIO_new_mem_buf(ec_pub, -1);
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    assert_non_null(pkey);
    point_of(pkey, pub);
    assert_memory_equal(k_raw, pub, 65);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    free(k_raw);
    free(k);
    json_decref(claims);
    free(h);
    push_vapid_free(v);
}

/* The aud of a fresh header for @url. */
static void aud_is(struct push_vapid *v, const char *url, const char *want)
{
    char *h = header_ok(v, url, NOW), *k;
    json_t *claims = header_claims(h, &k);

    assert_string_equal(json_string_value(json_object_get(claims, "aud")),
                        want);
    json_decref(claims);
    free(k);
    free(h);
}

static void test_vapid_aud_is_the_origin(void **state)
{
    struct push_vapid *v = vapid_ok();

    (void)state;
    aud_is(v, "https://updates.push.services.mozilla.com/wpush/v2/gAAA",
           "https://updates.push.services.mozilla.com");
    aud_is(v, "HTTPS://Web.Push.Apple.COM:443/QGuQyavX",
           "https://web.push.apple.com");
    aud_is(v, "https://push.example:8443/x", "https://push.example:8443");
    aud_is(v, "http://127.0.0.1:8080", "http://127.0.0.1:8080");
    aud_is(v, "http://localhost:80/p", "http://localhost");
    aud_is(v, "https://[::1]:9443/p", "https://[::1]:9443");
    push_vapid_free(v);
}

static void test_vapid_header_is_cached_per_origin(void **state)
{
    struct push_vapid *v = vapid_ok();
    const char *a = "https://fcm.googleapis.com/fcm/send/a";
    const char *b = "https://fcm.googleapis.com/fcm/send/b";
    const char *other = "https://web.push.apple.com/x";
    char *h1 = header_ok(v, a, NOW);
    char *h2 = header_ok(v, b, NOW + 100);
    char *h3 = header_ok(v, a, NOW + 11 * 3600 - 1);
    char *h4 = header_ok(v, a, NOW + 11 * 3600);
    char *h5 = header_ok(v, other, NOW + 11 * 3600);
    char *k;
    json_t *claims;

    (void)state;
    /* Same origin: the same header until an hour before exp. */
    assert_string_equal(h1, h2);
    assert_string_equal(h1, h3);
    assert_string_not_equal(h1, h4);
    claims = header_claims(h4, &k);
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")),
                     NOW + 23 * 3600);
    json_decref(claims);
    free(k);
    assert_string_not_equal(h4, h5);
    free(h1);
    free(h2);
    free(h3);
    free(h4);
    free(h5);

    /* A clock set back does not reuse a header that would outlive 24 h. */
    h1 = header_ok(v, other, NOW - 24 * 3600);
    claims = header_claims(h1, &k);
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")),
                     NOW - 12 * 3600);
    json_decref(claims);
    free(k);
    free(h1);

    /* Many origins: the cache stays bounded, every header is right. */
    for (int i = 0; i < 100; i++) {
        char url[64], want[64];

        snprintf(url, sizeof(url), "https://push%d.example/x", i);
        snprintf(want, sizeof(want), "https://push%d.example", i);
        aud_is(v, url, want);
    }
    push_vapid_free(v);
}

static void test_vapid_rejects_bad_input(void **state)
{
    static const char *const bad_urls[] = {
        "ftp://push.example/x",
        "https://",
        "https:///path",
        "https://user@push.example/x",
        "push.example/x",
        "https://h:99999/",
        "https://h:8x/",
        "https://[::1/",
        "",
    };
    struct push_vapid *v = vapid_ok();
    char errstr[256];

    (void)state;
    assert_null(
        push_vapid_new(ec_priv, "ops@example.com", errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "subject"));
    assert_null(push_vapid_new(ec_priv, NULL, errstr, sizeof(errstr)));
    assert_null(push_vapid_new(ec_priv, "mailto:", errstr, sizeof(errstr)));
    assert_null(push_vapid_new(rsa_priv, SUBJECT, errstr, sizeof(errstr)));
    assert_null(push_vapid_new(ec_pub, SUBJECT, errstr, sizeof(errstr)));
    assert_null(push_vapid_new("junk", SUBJECT, errstr, sizeof(errstr)));
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        errstr[0] = '\0';
        if (push_vapid_header(v, bad_urls[i], NOW, errstr, sizeof(errstr)))
            fail_msg("vapid header for bad url '%s'", bad_urls[i]);
        assert_true(errstr[0] != '\0');
    }
    assert_null(push_vapid_header(v, NULL, NOW, errstr, sizeof(errstr)));
    push_vapid_free(v);
    push_vapid_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ece_rfc8291_example_is_reproduced),
        cmocka_unit_test(test_ece_random_keys_round_trip),
        cmocka_unit_test(test_ece_each_message_has_its_own_salt_and_key),
        cmocka_unit_test(test_ece_refuses_more_than_one_record),
        cmocka_unit_test(test_ece_malformed_keys_are_refused),
        cmocka_unit_test(test_vapid_header_verifies_with_the_right_claims),
        cmocka_unit_test(test_vapid_aud_is_the_origin),
        cmocka_unit_test(test_vapid_header_is_cached_per_origin),
        cmocka_unit_test(test_vapid_rejects_bad_input),
    };

    return cmocka_run_group_tests_name("push_ece", tests, group_setup,
                                       group_teardown);
}
