/*
 * Unit tests for hr_jwt: sign/verify round trips for HS256, RS256 and ES256
 * with keys generated at test time, claims, hr_jwt_sign_claims() (headers
 * with and without kid, claims exactly as given), tampering, the two
 * libjwt 1.10 traps (NULL key, algorithm confusion), "none", wrong keys and key
 * checks.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <jwt.h>

#include "hr_arena.h"
#include "hr_jwt.h"
#include "hr_time.h"
#include "hx_fake_http.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define NOW    INT64_C(1763769600)
#define ISS    "herald"
#define AUD    "legacy-api"
#define SUB    "user-42"
#define TTL    300
#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes */

struct keys {
    char *rsa_priv, *rsa_pub;
    char *rsa2_pub; /* another RSA key: "wrong key" */
    char *ec_priv, *ec_pub;
    char *ec2_pub;
};

static struct keys K;

static int group_setup(void **state)
{
    (void)state;
    if (hx_keypair_pem("RSA", &K.rsa_priv, &K.rsa_pub) ||
        hx_keypair_pem("RSA", NULL, &K.rsa2_pub) ||
        hx_keypair_pem("EC", &K.ec_priv, &K.ec_pub) ||
        hx_keypair_pem("EC", NULL, &K.ec2_pub))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(K.rsa_priv);
    free(K.rsa_pub);
    free(K.rsa2_pub);
    free(K.ec_priv);
    free(K.ec_pub);
    free(K.ec2_pub);
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

/* base64url without padding, malloc'd. */
static char *b64url(const void *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    int n;

    assert_non_null(out);
    n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
    }
    return out;
}

/* Decode a base64url part of @len characters: the bytes, NUL-terminated,
 * malloc'd. */
static char *b64url_raw(const char *part, size_t len)
{
    char *std = malloc(len + 4), *raw = malloc(len + 4);
    size_t n = len;
    int out;

    assert_non_null(std);
    assert_non_null(raw);
    for (size_t i = 0; i < len; i++)
        std[i] = part[i] == '-' ? '+' : part[i] == '_' ? '/' : part[i];
    while (n % 4)
        std[n++] = '=';
    out = EVP_DecodeBlock((unsigned char *)raw, (unsigned char *)std, (int)n);
    assert_true(out >= 0);
    /* EVP_DecodeBlock counts padding bytes as zeros: trim them. */
    out -= (int)(n - len);
    raw[out] = '\0';
    free(std);
    return raw;
}

/* Decode a base64url part of @len characters; returns parsed JSON. */
static json_t *b64url_json(const char *part, size_t len)
{
    char *raw = b64url_raw(part, len);
    json_t *j = json_loads(raw, 0, NULL);

    free(raw);
    return j;
}

static json_t *token_header(const char *token)
{
    return b64url_json(token, (size_t)(strchr(token, '.') - token));
}

/* header.payload.HMAC-SHA256(key), crafted without hr_jwt. */
static char *craft_hs256(const char *header,
                         const char *payload,
                         const void *key,
                         size_t key_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *h = b64url(header, strlen(header));
    char *p = b64url(payload, strlen(payload));
    char *input, *s, *token;
    size_t len = strlen(h) + strlen(p) + 2;

    input = malloc(len);
    assert_non_null(input);
    snprintf(input, len, "%s.%s", h, p);
    assert_non_null(HMAC(EVP_sha256(), key, (int)key_len,
                         (unsigned char *)input, strlen(input), mac, &mac_len));
    s = b64url(mac, mac_len);
    len = strlen(input) + strlen(s) + 2;
    token = malloc(len);
    assert_non_null(token);
    snprintf(token, len, "%s.%s", input, s);
    free(h);
    free(p);
    free(s);
    free(input);
    return token;
}

static struct hr_jwt_signer *
signer_ok(const char *alg, const char *key, size_t key_len)
{
    char errstr[256] = "";
    struct hr_jwt_signer *s =
        hr_jwt_signer_new(alg, key, key_len, errstr, sizeof(errstr));

    if (!s)
        fail_msg("signer %s: %s", alg, errstr);
    return s;
}

static char *sign_ok(struct hr_jwt_signer *s, const char *sub)
{
    char errstr[256] = "";
    char *token =
        hr_jwt_sign(s, ISS, AUD, sub, TTL, NOW, errstr, sizeof(errstr));

    if (!token)
        fail_msg("sign: %s", errstr);
    return token;
}

static void verify_fails(const char *token,
                         const char *alg,
                         const void *key,
                         size_t key_len,
                         const char *why)
{
    char errstr[256] = "";
    json_t *claims = NULL;

    if (hr_jwt_verify(token, alg, key, key_len, &claims, errstr,
                      sizeof(errstr)) == 0)
        fail_msg("verify as %s accepted a token that %s", alg, why);
    assert_null(claims);
    assert_true(errstr[0] != '\0');
}

static json_t *
verify_ok(const char *token, const char *alg, const void *key, size_t key_len)
{
    char errstr[256] = "";
    json_t *claims = NULL;

    if (hr_jwt_verify(token, alg, key, key_len, &claims, errstr,
                      sizeof(errstr)))
        fail_msg("verify %s: %s", alg, errstr);
    assert_non_null(claims);
    return claims;
}

/* Sign with @alg/@priv, verify with @pub, and check every claim. */
static void round_trip(const char *alg,
                       const char *priv,
                       size_t priv_len,
                       const char *pub,
                       size_t pub_len)
{
    struct hr_jwt_signer *s = signer_ok(alg, priv, priv_len);
    char *token = sign_ok(s, SUB);
    json_t *claims = verify_ok(token, alg, pub, pub_len);
    json_t *hdr = token_header(token);
    const char *jti;

    assert_string_equal(hr_jwt_signer_alg(s), alg);
    assert_non_null(hdr);
    assert_string_equal(json_string_value(json_object_get(hdr, "alg")), alg);
    assert_string_equal(json_string_value(json_object_get(hdr, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(claims, "iss")), ISS);
    assert_string_equal(json_string_value(json_object_get(claims, "aud")), AUD);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), SUB);
    assert_int_equal(json_integer_value(json_object_get(claims, "iat")), NOW);
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")),
                     NOW + TTL);
    jti = json_string_value(json_object_get(claims, "jti"));
    assert_non_null(jti);
    assert_int_equal(strlen(jti), 32);
    assert_int_equal(strspn(jti, "0123456789abcdef"), 32);
    json_decref(hdr);
    json_decref(claims);
    free(token);
    hr_jwt_signer_free(s);
}

/* ---- round trips ------------------------------------------------------ */

static void test_jwt_hs256_round_trip(void **state)
{
    (void)state;
    round_trip("HS256", SECRET, strlen(SECRET), SECRET, strlen(SECRET));
}

static void test_jwt_rs256_round_trip(void **state)
{
    (void)state;
    round_trip("RS256", K.rsa_priv, strlen(K.rsa_priv), K.rsa_pub,
               strlen(K.rsa_pub));
}

static void test_jwt_es256_round_trip(void **state)
{
    (void)state;
    round_trip("ES256", K.ec_priv, strlen(K.ec_priv), K.ec_pub,
               strlen(K.ec_pub));
}

static void test_jwt_binary_secret_round_trip(void **state)
{
    unsigned char secret[32];
    struct hr_jwt_signer *s;
    char *token;

    (void)state;
    for (size_t i = 0; i < sizeof(secret); i++)
        secret[i] = (unsigned char)(i * 37); /* includes a NUL byte */
    s = hr_jwt_signer_new("HS256", secret, sizeof(secret), NULL, 0);
    assert_non_null(s);
    token = sign_ok(s, NULL);
    json_decref(verify_ok(token, "HS256", secret, sizeof(secret)));
    secret[5] ^= 1;
    verify_fails(token, "HS256", secret, sizeof(secret), "has another key");
    free(token);
    hr_jwt_signer_free(s);
}

static void test_jwt_sub_is_optional_and_jti_unique(void **state)
{
    struct hr_jwt_signer *s = signer_ok("HS256", SECRET, strlen(SECRET));
    char *t1 = sign_ok(s, NULL), *t2 = sign_ok(s, NULL);
    json_t *c1 = verify_ok(t1, "HS256", SECRET, strlen(SECRET));
    json_t *c2 = verify_ok(t2, "HS256", SECRET, strlen(SECRET));

    (void)state;
    assert_null(json_object_get(c1, "sub"));
    assert_string_not_equal(json_string_value(json_object_get(c1, "jti")),
                            json_string_value(json_object_get(c2, "jti")));
    assert_string_not_equal(t1, t2);
    json_decref(c1);
    json_decref(c2);
    free(t1);
    free(t2);
    hr_jwt_signer_free(s);
}

static void test_jwt_sign_rejects_bad_arguments(void **state)
{
    struct hr_jwt_signer *s = signer_ok("HS256", SECRET, strlen(SECRET));
    char errstr[256];

    (void)state;
    assert_null(
        hr_jwt_sign(s, NULL, AUD, NULL, TTL, NOW, errstr, sizeof(errstr)));
    assert_null(
        hr_jwt_sign(s, ISS, "", NULL, TTL, NOW, errstr, sizeof(errstr)));
    assert_null(hr_jwt_sign(s, ISS, AUD, NULL, 0, NOW, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "ttl"));
    hr_jwt_signer_free(s);
}

/* ---- hr_jwt_sign_claims() --------------------------------------------- */

/* The header and payload of @token exactly as serialized, malloc'd. */
static void token_parts(const char *token, char **head, char **payload)
{
    const char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');

    *head = b64url_raw(token, (size_t)(dot1 - token));
    *payload = b64url_raw(dot1 + 1, (size_t)(dot2 - dot1 - 1));
}

static char *
sign_claims_ok(struct hr_jwt_signer *s, const char *kid, const json_t *claims)
{
    char errstr[256] = "";
    char *token = hr_jwt_sign_claims(s, kid, claims, errstr, sizeof(errstr));

    if (!token)
        fail_msg("sign claims: %s", errstr);
    return token;
}

/*
 * Sign an APNs-shaped claim set ({iss, iat} only) with @alg, with and
 * without a kid: both verify, the header is exactly {alg, typ[, kid]} and
 * the payload exactly the claims given, in their order.
 */
static void claims_round_trip(const char *alg,
                              const char *priv,
                              size_t priv_len,
                              const char *pub,
                              size_t pub_len)
{
    struct hr_jwt_signer *s = signer_ok(alg, priv, priv_len);
    json_t *claims =
        json_pack("{s:s, s:I}", "iss", "TEAM123456", "iat", (json_int_t)NOW);
    char want_head[128], want_payload[128];
    char *token, *head, *payload;
    json_t *got;

    snprintf(want_payload, sizeof(want_payload),
             "{\"iss\":\"TEAM123456\",\"iat\":%lld}", (long long)NOW);

    token = sign_claims_ok(s, "KEY1234567", claims);
    got = verify_ok(token, alg, pub, pub_len);
    assert_true(json_equal(got, claims));
    assert_int_equal(json_object_size(got), 2);
    token_parts(token, &head, &payload);
    snprintf(want_head, sizeof(want_head),
             "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"KEY1234567\"}", alg);
    assert_string_equal(head, want_head);
    assert_string_equal(payload, want_payload);
    free(head);
    free(payload);
    json_decref(got);
    free(token);

    token = sign_claims_ok(s, NULL, claims);
    got = verify_ok(token, alg, pub, pub_len);
    assert_true(json_equal(got, claims));
    token_parts(token, &head, &payload);
    snprintf(want_head, sizeof(want_head), "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
             alg);
    assert_string_equal(head, want_head);
    assert_string_equal(payload, want_payload);
    free(head);
    free(payload);
    json_decref(got);
    free(token);

    json_decref(claims);
    hr_jwt_signer_free(s);
}

static void test_jwt_sign_claims_hs256(void **state)
{
    (void)state;
    claims_round_trip("HS256", SECRET, strlen(SECRET), SECRET, strlen(SECRET));
}

static void test_jwt_sign_claims_rs256(void **state)
{
    (void)state;
    claims_round_trip("RS256", K.rsa_priv, strlen(K.rsa_priv), K.rsa_pub,
                      strlen(K.rsa_pub));
}

static void test_jwt_sign_claims_es256(void **state)
{
    (void)state;
    claims_round_trip("ES256", K.ec_priv, strlen(K.ec_priv), K.ec_pub,
                      strlen(K.ec_pub));
}

/* A Google service-account assertion: five claims in Google's order, a
 * kid that needs no escaping but is long, nothing added (no jti). */
static void test_jwt_sign_claims_keeps_order_and_adds_nothing(void **state)
{
    struct hr_jwt_signer *s =
        signer_ok("RS256", K.rsa_priv, strlen(K.rsa_priv));
    const char *kid = "0123456789abcdef0123456789abcdef01234567";
    json_t *claims = json_pack(
        "{s:s, s:s, s:s, s:I, s:I}", "iss", "sa@p.iam.gserviceaccount.com",
        "scope", "https://www.googleapis.com/auth/firebase.messaging", "aud",
        "https://oauth2.googleapis.com/token", "iat", (json_int_t)NOW, "exp",
        (json_int_t)(NOW + 3600));
    char *token = sign_claims_ok(s, kid, claims);
    char *head, *payload, *want = hr_arena_json_dumps(claims, JSON_COMPACT);
    json_t *hdr = token_header(token);

    (void)state;
    token_parts(token, &head, &payload);
    assert_string_equal(payload, want);
    assert_non_null(strstr(payload, "{\"iss\":"));
    assert_null(strstr(payload, "jti"));
    assert_string_equal(json_string_value(json_object_get(hdr, "kid")), kid);
    assert_int_equal(json_object_size(hdr), 3);
    json_decref(verify_ok(token, "RS256", K.rsa_pub, strlen(K.rsa_pub)));
    json_decref(hdr);
    free(want);
    free(head);
    free(payload);
    free(token);
    json_decref(claims);
    hr_jwt_signer_free(s);
}

/* A kid that needs JSON escaping stays one string in the header. */
static void test_jwt_sign_claims_escapes_kid(void **state)
{
    struct hr_jwt_signer *s = signer_ok("ES256", K.ec_priv, strlen(K.ec_priv));
    json_t *claims = json_pack("{s:s}", "iss", "x");
    char *token = sign_claims_ok(s, "a\"b\\c", claims);
    json_t *hdr = token_header(token);

    (void)state;
    assert_non_null(hdr);
    assert_string_equal(json_string_value(json_object_get(hdr, "kid")),
                        "a\"b\\c");
    json_decref(verify_ok(token, "ES256", K.ec_pub, strlen(K.ec_pub)));
    json_decref(hdr);
    free(token);
    json_decref(claims);
    hr_jwt_signer_free(s);
}

static void test_jwt_sign_claims_rejects_bad_arguments(void **state)
{
    struct hr_jwt_signer *s = signer_ok("HS256", SECRET, strlen(SECRET));
    json_t *array = json_array(), *claims = json_object();
    char errstr[256];

    (void)state;
    errstr[0] = '\0';
    assert_null(hr_jwt_sign_claims(s, NULL, NULL, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "not a json object"));
    errstr[0] = '\0';
    assert_null(hr_jwt_sign_claims(s, "k", array, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "not a json object"));
    errstr[0] = '\0';
    assert_null(hr_jwt_sign_claims(s, "", claims, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "kid"));
    errstr[0] = '\0';
    assert_null(
        hr_jwt_sign_claims(s, "\xff\xfe", claims, errstr, sizeof(errstr)));
    assert_true(errstr[0] != '\0');
    json_decref(array);
    json_decref(claims);
    hr_jwt_signer_free(s);
}

/* ---- rejections ------------------------------------------------------- */

/* Replace the payload of @token with @payload_json, keeping the header and
 * the signature. */
static char *with_payload(const char *token, const char *payload_json)
{
    const char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
    char *p = b64url(payload_json, strlen(payload_json));
    size_t len = strlen(token) + strlen(p) + 1;
    char *out = malloc(len);

    assert_non_null(out);
    snprintf(out, len, "%.*s.%s%s", (int)(dot1 - token), token, p, dot2);
    free(p);
    return out;
}

static void tamper_checks(const char *alg,
                          const char *priv,
                          const char *pub,
                          size_t pub_len)
{
    struct hr_jwt_signer *s = signer_ok(alg, priv, strlen(priv));
    char *token = sign_ok(s, SUB);
    char *forged = with_payload(token, "{\"iss\":\"herald\",\"aud\":\"admin\","
                                       "\"exp\":9999999999}");
    char *bad_sig = strdup(token);
    char *last = bad_sig + strlen(bad_sig) - 3;

    verify_fails(forged, alg, pub, pub_len, "has a forged payload");
    /* Flip one signature character (not the last, whose low bits may be
     * padding). */
    *last = *last == 'A' ? 'B' : 'A';
    verify_fails(bad_sig, alg, pub, pub_len, "has a modified signature");
    /* Truncations and junk. */
    bad_sig[strrchr(bad_sig, '.') - bad_sig + 1] = '\0';
    verify_fails(bad_sig, alg, pub, pub_len, "has no signature");
    verify_fails("a.b", alg, pub, pub_len, "is not a jws");
    verify_fails("a.b.c.d", alg, pub, pub_len, "is not a jws");
    verify_fails("", alg, pub, pub_len, "is empty");
    free(bad_sig);
    free(forged);
    free(token);
    hr_jwt_signer_free(s);
}

static void test_jwt_tampered_tokens_are_rejected(void **state)
{
    (void)state;
    tamper_checks("HS256", SECRET, SECRET, strlen(SECRET));
    tamper_checks("RS256", K.rsa_priv, K.rsa_pub, strlen(K.rsa_pub));
    tamper_checks("ES256", K.ec_priv, K.ec_pub, strlen(K.ec_pub));
}

static void test_jwt_wrong_key_is_rejected(void **state)
{
    struct hr_jwt_signer *hs = signer_ok("HS256", SECRET, strlen(SECRET));
    struct hr_jwt_signer *rs =
        signer_ok("RS256", K.rsa_priv, strlen(K.rsa_priv));
    struct hr_jwt_signer *es = signer_ok("ES256", K.ec_priv, strlen(K.ec_priv));
    char *ht = sign_ok(hs, NULL), *rt = sign_ok(rs, NULL),
         *et = sign_ok(es, NULL);
    const char *other = "another secret of thirty-two b!!";

    (void)state;
    verify_fails(ht, "HS256", other, strlen(other), "has another key");
    verify_fails(rt, "RS256", K.rsa2_pub, strlen(K.rsa2_pub),
                 "has another key");
    verify_fails(et, "ES256", K.ec2_pub, strlen(K.ec2_pub), "has another key");
    /* Keys of the wrong type for the pinned algorithm. */
    verify_fails(rt, "RS256", K.ec_pub, strlen(K.ec_pub), "has an EC key");
    verify_fails(et, "ES256", K.rsa_pub, strlen(K.rsa_pub), "has an RSA key");
    /* A private key where a public one belongs is not parsed as one. */
    verify_fails(et, "ES256", K.ec_priv, strlen(K.ec_priv),
                 "has a private key");
    /* Tokens of one algorithm verified as another. */
    verify_fails(ht, "RS256", K.rsa_pub, strlen(K.rsa_pub), "is HS256");
    verify_fails(rt, "ES256", K.ec_pub, strlen(K.ec_pub), "is RS256");
    verify_fails(et, "RS256", K.rsa_pub, strlen(K.rsa_pub), "is ES256");
    free(ht);
    free(rt);
    free(et);
    hr_jwt_signer_free(hs);
    hr_jwt_signer_free(rs);
    hr_jwt_signer_free(es);
}

/*
 * Algorithm confusion: an attacker who knows the RSA public key (it is
 * public) signs an HS256 token with the PEM text as the HMAC secret. Bare
 * libjwt 1.10 accepts it when given that PEM; hr_jwt pinned to RS256 does
 * not, and neither does an HS256 verifier handed a PEM.
 */
static void test_jwt_alg_confusion_is_rejected(void **state)
{
    char *token = craft_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                              "{\"iss\":\"herald\",\"aud\":\"legacy-api\","
                              "\"exp\":9999999999,\"admin\":true}",
                              K.rsa_pub, strlen(K.rsa_pub));
    char errstr[256] = "";
    jwt_t *jwt = NULL;

    (void)state;
    /* The trap is real in this libjwt. If this fails, libjwt changed:
     * review the notes in hr_jwt.h. */
    assert_int_equal(jwt_decode(&jwt, token, (const unsigned char *)K.rsa_pub,
                                (int)strlen(K.rsa_pub)),
                     0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
    jwt_free(jwt);

    assert_int_equal(hr_jwt_verify(token, "RS256", K.rsa_pub, strlen(K.rsa_pub),
                                   NULL, errstr, sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "does not match"));
    verify_fails(token, "HS256", K.rsa_pub, strlen(K.rsa_pub),
                 "uses a PEM key as HMAC secret");
    free(token);
}

/*
 * NULL key: bare libjwt 1.10 accepts an ES256 token, unverified, and calls
 * it "none". hr_jwt_verify() refuses to run without a key.
 */
static void test_jwt_null_key_is_impossible(void **state)
{
    struct hr_jwt_signer *es = signer_ok("ES256", K.ec_priv, strlen(K.ec_priv));
    char *token = sign_ok(es, NULL);
    char *forged = with_payload(token, "{\"iss\":\"evil\"}");
    char errstr[256] = "";
    jwt_t *jwt = NULL;

    (void)state;
    /* The trap is real in this libjwt (see above). */
    assert_int_equal(jwt_decode(&jwt, forged, NULL, 0), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_NONE);
    jwt_free(jwt);

    assert_int_equal(
        hr_jwt_verify(token, "ES256", NULL, 0, NULL, errstr, sizeof(errstr)),
        -1);
    assert_non_null(strstr(errstr, "needs a key"));
    verify_fails(token, "ES256", K.ec_pub, 0, "has an empty key");
    verify_fails(token, "ES256", "", 0, "has an empty key");
    verify_fails(forged, "ES256", K.ec_pub, strlen(K.ec_pub),
                 "has a forged payload");
    free(forged);
    free(token);
    hr_jwt_signer_free(es);
}

static void test_jwt_none_is_rejected(void **state)
{
    const char *payload = "{\"iss\":\"herald\",\"aud\":\"legacy-api\","
                          "\"exp\":9999999999}";
    char *h = b64url("{\"alg\":\"none\"}", strlen("{\"alg\":\"none\"}"));
    char *p = b64url(payload, strlen(payload));
    char none[512], none_sig[512];
    char errstr[256];
    struct hr_jwt_signer *s;

    (void)state;
    snprintf(none, sizeof(none), "%s.%s.", h, p);
    snprintf(none_sig, sizeof(none_sig), "%s.%s.c2ln", h, p);
    verify_fails(none, "HS256", SECRET, strlen(SECRET), "is unsigned");
    verify_fails(none_sig, "HS256", SECRET, strlen(SECRET), "is alg none");
    verify_fails(none_sig, "ES256", K.ec_pub, strlen(K.ec_pub), "is alg none");
    verify_fails(none, "none", SECRET, strlen(SECRET), "is unsigned");
    /* Neither side offers "none", nor any other algorithm. */
    s = hr_jwt_signer_new("none", SECRET, strlen(SECRET), errstr,
                          sizeof(errstr));
    assert_null(s);
    assert_non_null(strstr(errstr, "unsupported"));
    assert_null(hr_jwt_signer_new("HS512", SECRET, strlen(SECRET), NULL, 0));
    assert_null(hr_jwt_signer_new(NULL, SECRET, strlen(SECRET), NULL, 0));
    free(h);
    free(p);
}

static void test_jwt_crit_header_is_rejected(void **state)
{
    char *token = craft_hs256(
        "{\"alg\":\"HS256\",\"crit\":[\"exp2\"],\"exp2\":1}",
        "{\"iss\":\"herald\",\"exp\":9999999999}", SECRET, strlen(SECRET));
    char *plain = craft_hs256("{\"alg\":\"HS256\"}",
                              "{\"iss\":\"herald\",\"exp\":9999999999}", SECRET,
                              strlen(SECRET));

    (void)state;
    verify_fails(token, "HS256", SECRET, strlen(SECRET), "has crit");
    /* The same without crit, as control. */
    json_decref(verify_ok(plain, "HS256", SECRET, strlen(SECRET)));
    free(token);
    free(plain);
}

/* ---- key checks at signer creation ------------------------------------ */

static void
signer_fails(const char *alg, const void *key, size_t len, const char *needle)
{
    char errstr[256] = "";
    struct hr_jwt_signer *s =
        hr_jwt_signer_new(alg, key, len, errstr, sizeof(errstr));

    if (s)
        fail_msg("signer %s accepted a key that should fail with '%s'", alg,
                 needle);
    if (!strstr(errstr, needle))
        fail_msg("signer %s: '%s' does not mention '%s'", alg, errstr, needle);
}

static void test_jwt_signer_checks_keys(void **state)
{
    char *p384 = NULL;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    BIO *bio = BIO_new(BIO_s_mem());
    struct hr_jwt_signer *s;
    char *data;
    long len;

    (void)state;
    signer_fails("HS256", "0123456789abcde", 15, "at least 16");
    signer_fails("HS256", NULL, 0, "needs a key");
    signer_fails("HS256", K.rsa_pub, strlen(K.rsa_pub), "PEM");
    /* 16 bytes pass (with a warning in the log). */
    s = hr_jwt_signer_new("HS256", "0123456789abcdef", 16, NULL, 0);
    assert_non_null(s);
    hr_jwt_signer_free(s);

    signer_fails("RS256", K.ec_priv, strlen(K.ec_priv), "RSA");
    signer_fails("RS256", K.rsa_pub, strlen(K.rsa_pub), "cannot parse");
    signer_fails("RS256", "not a pem", 9, "cannot parse");
    signer_fails("ES256", K.rsa_priv, strlen(K.rsa_priv), "EC");
    signer_fails("ES256", K.ec_pub, strlen(K.ec_pub), "cannot parse");

    assert_non_null(key);
    assert_non_null(bio);
    assert_true(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL));
    len = BIO_get_mem_data(bio, &data);
    p384 = strndup(data, (size_t)len);
    signer_fails("ES256", p384, strlen(p384), "P-256");
    free(p384);
    BIO_free(bio);
    EVP_PKEY_free(key);
}

static void test_jwt_short_rsa_key_is_rejected(void **state)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *pem;
    long len;

    (void)state;
    assert_non_null(key);
    assert_true(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL));
    len = BIO_get_mem_data(bio, &data);
    pem = strndup(data, (size_t)len);
    signer_fails("RS256", pem, strlen(pem), "2048");
    free(pem);
    BIO_free(bio);
    EVP_PKEY_free(key);
}

/* ---- claims ----------------------------------------------------------- */

static void test_jwt_check_claims(void **state)
{
    struct hr_jwt_signer *s = signer_ok("HS256", SECRET, strlen(SECRET));
    char *token = sign_ok(s, NULL);
    json_t *claims = verify_ok(token, "HS256", SECRET, strlen(SECRET));
    json_t *multi = json_pack("{s:i, s:[ss]}", "exp", (json_int_t)NOW + 10,
                              "aud", "a", "b");
    char errstr[256];

    (void)state;
    assert_int_equal(
        hr_jwt_check_claims(claims, ISS, AUD, NOW, 0, errstr, sizeof(errstr)),
        0);
    assert_int_equal(hr_jwt_check_claims(claims, NULL, NULL, NOW + TTL - 1, 0,
                                         errstr, sizeof(errstr)),
                     0);
    assert_int_equal(hr_jwt_check_claims(claims, ISS, AUD, NOW + TTL, 0, errstr,
                                         sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "expired"));
    /* Leeway covers a little clock skew. */
    assert_int_equal(hr_jwt_check_claims(claims, ISS, AUD, NOW + TTL, 5, errstr,
                                         sizeof(errstr)),
                     0);
    assert_int_equal(hr_jwt_check_claims(claims, ISS, AUD, NOW - 60, 5, errstr,
                                         sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "iat"));
    assert_int_equal(hr_jwt_check_claims(claims, "other", AUD, NOW, 0, errstr,
                                         sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "iss"));
    assert_int_equal(hr_jwt_check_claims(claims, ISS, "other", NOW, 0, errstr,
                                         sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "aud"));
    assert_int_equal(
        hr_jwt_check_claims(multi, NULL, "b", NOW, 0, errstr, sizeof(errstr)),
        0);
    assert_int_equal(
        hr_jwt_check_claims(multi, NULL, "c", NOW, 0, errstr, sizeof(errstr)),
        -1);
    json_object_del(multi, "exp");
    assert_int_equal(
        hr_jwt_check_claims(multi, NULL, NULL, NOW, 0, errstr, sizeof(errstr)),
        -1);
    assert_non_null(strstr(errstr, "exp"));
    json_decref(multi);
    json_decref(claims);
    free(token);
    hr_jwt_signer_free(s);
}

/* ---- cost ------------------------------------------------------------- */

static double sign_us(struct hr_jwt_signer *s, int n)
{
    double t0 = hr_time_mono_s();

    for (int i = 0; i < n; i++) {
        char *token = hr_jwt_sign(s, ISS, AUD, SUB, TTL, NOW, NULL, 0);

        assert_non_null(token);
        free(token);
    }
    return (hr_time_mono_s() - t0) * 1e6 / n;
}

/* Not a benchmark: prints the cost per token and catches a gross
 * regression (the bound holds under the sanitizers). */
static void test_jwt_sign_cost(void **state)
{
    struct hr_jwt_signer *hs = signer_ok("HS256", SECRET, strlen(SECRET));
    struct hr_jwt_signer *rs =
        signer_ok("RS256", K.rsa_priv, strlen(K.rsa_priv));
    struct hr_jwt_signer *es = signer_ok("ES256", K.ec_priv, strlen(K.ec_priv));
    double hs_us = sign_us(hs, 20000);
    double rs_us = sign_us(rs, 200);
    double es_us = sign_us(es, 2000);

    (void)state;
    printf("jwt sign cost: HS256 %.1f us, RS256 %.1f us, ES256 %.1f us\n",
           hs_us, rs_us, es_us);
    assert_true(hs_us < 1000);
    hr_jwt_signer_free(hs);
    hr_jwt_signer_free(rs);
    hr_jwt_signer_free(es);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_hs256_round_trip),
        cmocka_unit_test(test_jwt_rs256_round_trip),
        cmocka_unit_test(test_jwt_es256_round_trip),
        cmocka_unit_test(test_jwt_binary_secret_round_trip),
        cmocka_unit_test(test_jwt_sub_is_optional_and_jti_unique),
        cmocka_unit_test(test_jwt_sign_rejects_bad_arguments),
        cmocka_unit_test(test_jwt_sign_claims_hs256),
        cmocka_unit_test(test_jwt_sign_claims_rs256),
        cmocka_unit_test(test_jwt_sign_claims_es256),
        cmocka_unit_test(test_jwt_sign_claims_keeps_order_and_adds_nothing),
        cmocka_unit_test(test_jwt_sign_claims_escapes_kid),
        cmocka_unit_test(test_jwt_sign_claims_rejects_bad_arguments),
        cmocka_unit_test(test_jwt_tampered_tokens_are_rejected),
        cmocka_unit_test(test_jwt_wrong_key_is_rejected),
        cmocka_unit_test(test_jwt_alg_confusion_is_rejected),
        cmocka_unit_test(test_jwt_null_key_is_impossible),
        cmocka_unit_test(test_jwt_none_is_rejected),
        cmocka_unit_test(test_jwt_crit_header_is_rejected),
        cmocka_unit_test(test_jwt_signer_checks_keys),
        cmocka_unit_test(test_jwt_short_rsa_key_is_rejected),
        cmocka_unit_test(test_jwt_check_claims),
        cmocka_unit_test(test_jwt_sign_cost),
    };

    return cmocka_run_group_tests_name("jwt", tests, group_setup,
                                       group_teardown);
}
