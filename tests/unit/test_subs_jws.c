/*
 * Unit tests for subs_jws: Apple's signed-data verification against the
 * vectors of Apple's app-store-server-library (shared/vectors/appstore,
 * read at run time; SOURCE.md there gives each file's expected verdict),
 * JWS minted here with the test PKI's private keys (invalid OIDs, dates
 * outside the certificates' validity, nested JWS, the real Apple chain),
 * tampering, and the two libjwt 1.10 forgeries (an ES256 token whose
 * signature is never checked; HS256 keyed with the leaf's public PEM).
 *
 * The vectors live outside the repository: $HERALD_SHARED_DIR, else
 * HX_SOURCE_DIR "/../shared". Without them every test is skipped.
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <jwt.h>

#include "harness.h"
#include "hr_base64.h"
#include "subs_jws.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define APPSTORE "vectors/appstore"

/* testNotification's signedDate: a clock inside the test certificates'
 * validity, for vectors without signedDate. */
#define TEST_NOW_MS INT64_C(1681314324000)
/* SOURCE.md's EFFECTIVE_DATE (2025-11-01T02:09:35Z): the real Apple leaf
 * is valid then. */
#define REAL_NOW_MS INT64_C(1761962975000)
/* 2042-04-12: every certificate here has expired. */
#define EXPIRED_MS INT64_C(2280946846000)
/* 2020-01-01: before the test certificates (2023-01-05). */
#define BEFORE_MS INT64_C(1577836800000)

#define APP_APPLE_ID 1234

static struct {
    bool have;                /* the vectors were found */
    char dir[1024];           /* .../vectors/appstore */
    EVP_PKEY *leaf_key;       /* certs/testLeaf.key */
    char *x5c_leaf;           /* standard base64 DER of certs/testLeaf.pem */
    char *x5c_intermediate;   /* ... certs/testIntermediate.pem */
    char *x5c_ca;             /* ... certs/testCA.der */
    char *x5c_bad_oid_leaf;   /* certs/testInvalidOIDLeaf.pem */
    char *x5c_bad_oid_inter;  /* certs/testInvalidOIDIntermediate.pem */
    char *x5c_bad_inter_leaf; /* certs/testInvalidIntermediateLeaf.pem */
    char *x5c_real_leaf;      /* real_apple_chain/..._SIGNING_... */
    char *x5c_real_inter;     /* real_apple_chain/..._INTERMEDIATE_... */
    char *x5c_apple_root;     /* certs/AppleRootCA-G3.cer */
    char *notification;       /* mock_signed_data/testNotification */
    char *transaction;        /* mock_signed_data/transactionInfo */
    char *renewal;            /* mock_signed_data/renewalInfo */
    char *wrong_bundle;       /* mock_signed_data/wrongBundleId */
    char *missing_x5c;        /* mock_signed_data/missingX5CHeaderClaim */
    char *xcode_transaction;  /* xcode/xcode-signed-transaction */
} fx;

#define NEED_VECTORS()                                                    \
    do {                                                                  \
        if (!fx.have) {                                                   \
            print_message("skipped: App Store vectors not found in '%s' " \
                          "(set HERALD_SHARED_DIR)\n",                    \
                          fx.dir);                                        \
            skip();                                                       \
        }                                                                 \
    } while (0)

/* ---- files -------------------------------------------------------------- */

/* @rel under the vectors directory; one of four rotating buffers. */
static const char *vec(const char *rel)
{
    static char bufs[4][1200];
    static unsigned next;
    char *buf = bufs[next++ % 4];

    snprintf(buf, sizeof(bufs[0]), "%s/%s", fx.dir, rel);
    return buf;
}

/* The JWS in the vector file @rel, trailing white space removed. */
static char *read_jws(const char *rel)
{
    size_t len = 0;
    char *s = hx_file_read(vec(rel), &len);

    if (!s)
        return NULL;
    while (len &&
           (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
        s[--len] = '\0';
    return s;
}

/* The certificate in the PEM or DER file @rel, or NULL. */
static X509 *read_cert(const char *rel)
{
    size_t len = 0;
    char *data = hx_file_read(vec(rel), &len);
    const unsigned char *p = (const unsigned char *)data;
    X509 *x509 = NULL;
    BIO *bio;

    if (!data)
        return NULL;
    if (len && data[0] == 0x30) {
        x509 = d2i_X509(NULL, &p, (long)len);
    } else {
        bio = BIO_new_mem_buf(data, (int)len);
        x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    free(data);
    return x509;
}

/* The x5c entry (standard base64 of the DER) of @x509. */
static char *x5c_of(X509 *x509)
{
    unsigned char *der = NULL;
    int len = i2d_X509(x509, &der);
    char *b64;

    assert_true(len > 0);
    b64 = hr_base64_encode(der, (size_t)len, NULL);
    OPENSSL_free(der);
    return b64;
}

/* x5c_of() the certificate file @rel, or NULL when it is missing. */
static char *x5c_file(const char *rel)
{
    X509 *x509 = read_cert(rel);
    char *b64;

    if (!x509)
        return NULL;
    b64 = x5c_of(x509);
    X509_free(x509);
    return b64;
}

static EVP_PKEY *read_key(const char *rel)
{
    BIO *bio = BIO_new_file(vec(rel), "r");
    EVP_PKEY *pkey;

    if (!bio)
        return NULL;
    pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return pkey;
}

static int group_setup(void **state)
{
    const char *shared = getenv("HERALD_SHARED_DIR");

    (void)state;
    snprintf(fx.dir, sizeof(fx.dir), "%s/" APPSTORE,
             shared && *shared ? shared : HX_SOURCE_DIR "/../shared");
    fx.leaf_key = read_key("certs/testLeaf.key");
    fx.x5c_leaf = x5c_file("certs/testLeaf.pem");
    fx.x5c_intermediate = x5c_file("certs/testIntermediate.pem");
    fx.x5c_ca = x5c_file("certs/testCA.der");
    fx.x5c_bad_oid_leaf = x5c_file("certs/testInvalidOIDLeaf.pem");
    fx.x5c_bad_oid_inter = x5c_file("certs/testInvalidOIDIntermediate.pem");
    fx.x5c_bad_inter_leaf = x5c_file("certs/testInvalidIntermediateLeaf.pem");
    fx.x5c_real_leaf = x5c_file(
        "real_apple_chain/REAL_APPLE_SIGNING_CERTIFICATE_BASE64_ENCODED.der");
    fx.x5c_real_inter =
        x5c_file("real_apple_chain/REAL_APPLE_INTERMEDIATE_BASE64_ENCODED.der");
    fx.x5c_apple_root = x5c_file("certs/AppleRootCA-G3.cer");
    fx.notification = read_jws("mock_signed_data/testNotification");
    fx.transaction = read_jws("mock_signed_data/transactionInfo");
    fx.renewal = read_jws("mock_signed_data/renewalInfo");
    fx.wrong_bundle = read_jws("mock_signed_data/wrongBundleId");
    fx.missing_x5c = read_jws("mock_signed_data/missingX5CHeaderClaim");
    fx.xcode_transaction = read_jws("xcode/xcode-signed-transaction");
    fx.have = fx.leaf_key && fx.x5c_leaf && fx.x5c_intermediate && fx.x5c_ca &&
              fx.x5c_bad_oid_leaf && fx.x5c_bad_oid_inter &&
              fx.x5c_bad_inter_leaf && fx.x5c_real_leaf && fx.x5c_real_inter &&
              fx.x5c_apple_root && fx.notification && fx.transaction &&
              fx.renewal && fx.wrong_bundle && fx.missing_x5c &&
              fx.xcode_transaction;
    if (!fx.have)
        fprintf(stderr,
                "test_subs_jws: App Store vectors missing under '%s': "
                "skipping (set HERALD_SHARED_DIR)\n",
                fx.dir);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(fx.leaf_key);
    free(fx.x5c_leaf);
    free(fx.x5c_intermediate);
    free(fx.x5c_ca);
    free(fx.x5c_bad_oid_leaf);
    free(fx.x5c_bad_oid_inter);
    free(fx.x5c_bad_inter_leaf);
    free(fx.x5c_real_leaf);
    free(fx.x5c_real_inter);
    free(fx.x5c_apple_root);
    free(fx.notification);
    free(fx.transaction);
    free(fx.renewal);
    free(fx.wrong_bundle);
    free(fx.missing_x5c);
    free(fx.xcode_transaction);
    return 0;
}

/* ---- verifiers ---------------------------------------------------------- */

/* Upstream's test setup by default: root testCA.der, strict off. */
struct vconf {
    const char *root; /* under the vectors dir; NULL: certs/testCA.der */
    bool strict;
    const char *env;  /* NULL: "Sandbox" */
    const char *env2; /* a second accepted environment or NULL */
    int64_t app_apple_id;
    const char *bundle_id; /* NULL: "com.example" */
    int64_t now_ms;        /* 0: TEST_NOW_MS */
};

static struct subs_jws_verifier *verifier(struct vconf c)
{
    const char *root = vec(c.root ? c.root : "certs/testCA.der");
    const char *envs[2] = {c.env ? c.env : "Sandbox", c.env2};
    struct subs_jws_conf conf = {
        .root_paths = &root,
        .nroots = 1,
        .strict_x509 = c.strict,
        .bundle_id = c.bundle_id ? c.bundle_id : "com.example",
        .app_apple_id = c.app_apple_id,
        .environments = envs,
        .nenvironments = c.env2 ? 2 : 1,
        .now_ms_override = c.now_ms ? c.now_ms : TEST_NOW_MS,
    };
    char errstr[256] = "";
    struct subs_jws_verifier *v =
        subs_jws_verifier_new(&conf, errstr, sizeof(errstr));

    if (!v)
        fail_msg("subs_jws_verifier_new: %s", errstr);
    return v;
}

/* The default verifier: Sandbox, com.example, appAppleId 1234. */
static struct subs_jws_verifier *sandbox(void)
{
    return verifier((struct vconf){.app_apple_id = APP_APPLE_ID});
}

/* Verify @jws, which must pass; returns the payload (caller decrefs). */
static json_t *verify_ok_at(const struct subs_jws_verifier *v,
                            const char *jws,
                            enum subs_jws_kind kind,
                            int line)
{
    const char *code = "unset";
    char errstr[256] = "";
    json_t *payload =
        subs_jws_verify(v, jws, kind, &code, errstr, sizeof(errstr));

    if (!payload)
        fail_msg("line %d: verification failed: %s (%s)", line,
                 code ? code : "NULL", errstr);
    assert_null(code);
    return payload;
}
#define verify_ok(v, jws, kind) verify_ok_at(v, jws, kind, __LINE__)

/* Verify @jws, which must fail with @want; returns nothing. */
static void verify_fails_at(const struct subs_jws_verifier *v,
                            const char *jws,
                            enum subs_jws_kind kind,
                            const char *want,
                            int line)
{
    const char *code = NULL;
    char errstr[256] = "";
    json_t *payload =
        subs_jws_verify(v, jws, kind, &code, errstr, sizeof(errstr));

    if (payload) {
        json_decref(payload);
        fail_msg("line %d: verified, expected '%s'", line, want);
    }
    if (!code || strcmp(code, want))
        fail_msg("line %d: code '%s' (%s), expected '%s'", line,
                 code ? code : "NULL", errstr, want);
    assert_true(errstr[0] != '\0');
}
#define verify_fails(v, jws, kind, want) \
    verify_fails_at(v, jws, kind, want, __LINE__)

/* ---- minting ------------------------------------------------------------ */

static char *b64url_str(const char *s)
{
    return hr_base64url_encode(s, strlen(s), NULL);
}

/* "<b64url(header)>.<b64url(payload)>", malloc'd. */
static char *signing_input(const char *header, const char *payload)
{
    char *h = b64url_str(header), *p = b64url_str(payload);
    size_t len = strlen(h) + strlen(p) + 2;
    char *out = malloc(len);

    assert_non_null(out);
    snprintf(out, len, "%s.%s", h, p);
    free(h);
    free(p);
    return out;
}

/* "@input.<b64url(sig)>", malloc'd. */
static char *append_sig(const char *input, const void *sig, size_t sig_len)
{
    char *s = hr_base64url_encode(sig, sig_len, NULL);
    size_t len = strlen(input) + strlen(s) + 2;
    char *out = malloc(len);

    assert_non_null(out);
    snprintf(out, len, "%s.%s", input, s);
    free(s);
    return out;
}

/* ECDSA P-256 with SHA-256 of @len bytes at @input by @pkey, DER-encoded
 * into @der (128 bytes); returns the length. */
static size_t
der_sign(const char *input, size_t len, EVP_PKEY *pkey, unsigned char *der)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t der_len = 128;

    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(
        EVP_DigestSign(md, der, &der_len, (const unsigned char *)input, len),
        1);
    EVP_MD_CTX_free(md);
    return der_len;
}

/* A compact ES256 JWS of @header and @payload (JSON texts) signed by
 * @pkey, with OpenSSL directly (R || S, 32 bytes each). */
static char *mint_es256(const char *header, const char *payload, EVP_PKEY *pkey)
{
    char *input = signing_input(header, payload);
    unsigned char der[128], raw[64];
    const unsigned char *p = der;
    size_t der_len = der_sign(input, strlen(input), pkey, der);
    const BIGNUM *r, *s;
    ECDSA_SIG *sig;
    char *jws;

    sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    assert_non_null(sig);
    ECDSA_SIG_get0(sig, &r, &s);
    assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
    assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
    jws = append_sig(input, raw, sizeof(raw));
    ECDSA_SIG_free(sig);
    free(input);
    return jws;
}

/* {"alg":@alg,"x5c":[@a,@b,@c]} (NULL entries end the array early). */
static char *
header_x5c(const char *alg, const char *a, const char *b, const char *c)
{
    json_t *x5c = json_array();
    json_t *h = json_object();
    const char *certs[3] = {a, b, c};
    char *text;

    for (size_t i = 0; i < 3 && certs[i]; i++)
        json_array_append_new(x5c, json_string(certs[i]));
    if (alg)
        json_object_set_new(h, "alg", json_string(alg));
    json_object_set_new(h, "x5c", x5c);
    text = json_dumps(h, JSON_COMPACT);
    assert_non_null(text);
    json_decref(h);
    return text;
}

/* ES256 with the test chain of certs/ (leaf, intermediate, testCA). */
static char *mint_test_chain(const char *payload)
{
    char *h = header_x5c("ES256", fx.x5c_leaf, fx.x5c_intermediate, fx.x5c_ca);
    char *jws = mint_es256(h, payload, fx.leaf_key);

    free(h);
    return jws;
}

/* A TEST notification for com.example in @env signed at @signed_ms. */
static char *notification_payload(const char *env, int64_t signed_ms)
{
    json_t *p = json_pack(
        "{s:s, s:s, s:I, s:{s:s, s:s, s:i}}", "notificationType", "TEST",
        "notificationUUID", "00000000-0000-4000-8000-000000000001",
        "signedDate", (json_int_t)signed_ms, "data", "bundleId", "com.example",
        "environment", env, "appAppleId", APP_APPLE_ID);
    char *text;

    assert_non_null(p);
    text = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    return text;
}

/* The decoded header segment of @jws (caller decrefs). */
static json_t *header_of(const char *jws)
{
    size_t len = 0;
    char *raw =
        hr_base64url_decode(jws, (size_t)(strchr(jws, '.') - jws), 0, &len);
    json_t *h;

    assert_non_null(raw);
    h = json_loadb(raw, len, 0, NULL);
    assert_non_null(h);
    free(raw);
    return h;
}

/* @jws with its payload segment replaced by b64url(@payload), the header
 * and signature kept. */
static char *with_payload(const char *jws, const char *payload)
{
    const char *dot1 = strchr(jws, '.'), *dot2 = strrchr(jws, '.');
    char *p = b64url_str(payload);
    size_t len = strlen(jws) + strlen(p) + 2;
    char *out = malloc(len);

    assert_non_null(out);
    snprintf(out, len, "%.*s.%s%s", (int)(dot1 - jws), jws, p, dot2);
    free(p);
    return out;
}

/* @jws with its signature segment replaced by @sig. */
static char *with_sig(const char *jws, const char *sig)
{
    size_t keep = (size_t)(strrchr(jws, '.') - jws) + 1;
    size_t len = keep + strlen(sig) + 1;
    char *out = malloc(len);

    assert_non_null(out);
    snprintf(out, len, "%.*s%s", (int)keep, jws, sig);
    return out;
}

/* ---- upstream vectors --------------------------------------------------- */

/* testNotification: Sandbox, com.example, root testCA, strict off. */
static void test_notification_vector_verifies(void **state)
{
    struct subs_jws_verifier *v;
    json_t *payload;

    (void)state;
    NEED_VECTORS();
    v = sandbox();
    payload = verify_ok(v, fx.notification, SUBS_JWS_NOTIFICATION);
    assert_string_equal(
        json_string_value(json_object_get(payload, "notificationType")),
        "TEST");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(payload, "data"), "bundleId")),
                        "com.example");
    json_decref(payload);
    subs_jws_verifier_free(v);

    /* The same root as PEM, and @code may be NULL. */
    v = verifier((struct vconf){.root = "certs/testCA.pem"});
    payload = subs_jws_verify(v, fx.notification, SUBS_JWS_NOTIFICATION, NULL,
                              NULL, 0);
    assert_non_null(payload);
    json_decref(payload);
    subs_jws_verifier_free(v);
}

/* testNotification against a Production verifier: with the right
 * appAppleId the environment is wrong; with another appAppleId the app
 * check comes first (INVALID_APP_IDENTIFIER upstream). */
static void test_notification_vector_production_verdicts(void **state)
{
    struct subs_jws_verifier *v;

    (void)state;
    NEED_VECTORS();
    v = verifier((struct vconf){.env = "Production", .app_apple_id = 1234});
    verify_fails(v, fx.notification, SUBS_JWS_NOTIFICATION, "environment");
    subs_jws_verifier_free(v);
    v = verifier((struct vconf){.env = "Production", .app_apple_id = 1235});
    verify_fails(v, fx.notification, SUBS_JWS_NOTIFICATION, "app_apple_id");
    subs_jws_verifier_free(v);
}

/* transactionInfo: Sandbox + com.example verifies; Java's com.example.x is
 * another app; Production is another environment. */
static void test_transaction_vector_verdicts(void **state)
{
    struct subs_jws_verifier *v;
    json_t *payload;

    (void)state;
    NEED_VECTORS();
    v = sandbox();
    payload = verify_ok(v, fx.transaction, SUBS_JWS_TRANSACTION);
    assert_string_equal(
        json_string_value(json_object_get(payload, "environment")), "Sandbox");
    json_decref(payload);
    /* As a notification it names no app (no "data"). */
    verify_fails(v, fx.transaction, SUBS_JWS_NOTIFICATION, "bundle_id");
    subs_jws_verifier_free(v);

    v = verifier((struct vconf){.bundle_id = "com.example.x"});
    verify_fails(v, fx.transaction, SUBS_JWS_TRANSACTION, "bundle_id");
    subs_jws_verifier_free(v);
    v = verifier((struct vconf){.env = "Production", .app_apple_id = 1234});
    verify_fails(v, fx.transaction, SUBS_JWS_TRANSACTION, "environment");
    subs_jws_verifier_free(v);
}

/* renewalInfo has no bundleId: only its environment is checked. */
static void test_renewal_vector_checks_environment_only(void **state)
{
    struct subs_jws_verifier *v;
    json_t *payload;

    (void)state;
    NEED_VECTORS();
    v = sandbox();
    payload = verify_ok(v, fx.renewal, SUBS_JWS_RENEWAL);
    assert_string_equal(
        json_string_value(json_object_get(payload, "environment")), "Sandbox");
    json_decref(payload);
    /* As a transaction it lacks the bundleId. */
    verify_fails(v, fx.renewal, SUBS_JWS_TRANSACTION, "bundle_id");
    subs_jws_verifier_free(v);

    v = verifier((struct vconf){.bundle_id = "com.other"});
    payload = verify_ok(v, fx.renewal, SUBS_JWS_RENEWAL);
    json_decref(payload);
    subs_jws_verifier_free(v);
    v = verifier((struct vconf){.env = "Production", .app_apple_id = 1234});
    verify_fails(v, fx.renewal, SUBS_JWS_RENEWAL, "environment");
    subs_jws_verifier_free(v);
}

/* wrongBundleId (no signedDate, no environment): the bundle check fails
 * first, for python's com.examplex and Java's com.example alike. Without
 * signedDate the path is checked at the verifier's clock. */
static void test_wrong_bundle_id_vector_and_clock_fallback(void **state)
{
    struct subs_jws_verifier *v;

    (void)state;
    NEED_VECTORS();
    v = sandbox();
    verify_fails(v, fx.wrong_bundle, SUBS_JWS_NOTIFICATION, "bundle_id");
    subs_jws_verifier_free(v);
    v = verifier((struct vconf){.bundle_id = "com.examplex"});
    verify_fails(v, fx.wrong_bundle, SUBS_JWS_NOTIFICATION, "bundle_id");
    subs_jws_verifier_free(v);
    /* The clock after the certificates expired: the path fails first. */
    v = verifier((struct vconf){.now_ms = EXPIRED_MS});
    verify_fails(v, fx.wrong_bundle, SUBS_JWS_NOTIFICATION, "chain");
    subs_jws_verifier_free(v);
    /* ... and before they were issued. */
    v = verifier((struct vconf){.now_ms = BEFORE_MS});
    verify_fails(v, fx.wrong_bundle, SUBS_JWS_NOTIFICATION, "chain");
    subs_jws_verifier_free(v);
}

/* missingX5CHeaderClaim: "x5cwrong" instead of "x5c" ("x5c claim was
 * empty"), although its signature is valid for the leaf key. */
static void test_missing_x5c_vector(void **state)
{
    struct subs_jws_verifier *v;

    (void)state;
    NEED_VECTORS();
    v = sandbox();
    verify_fails(v, fx.missing_x5c, SUBS_JWS_NOTIFICATION, "x5c");
    subs_jws_verifier_free(v);
}

/* Apple's test certificates have no key identifiers: with strict X.509
 * checks every test vector fails on the path. */
static void test_test_chain_fails_with_strict_x509(void **state)
{
    struct subs_jws_verifier *v;

    (void)state;
    NEED_VECTORS();
    v = verifier((struct vconf){.strict = true});
    verify_fails(v, fx.notification, SUBS_JWS_NOTIFICATION, "chain");
    verify_fails(v, fx.transaction, SUBS_JWS_TRANSACTION, "chain");
    verify_fails(v, fx.renewal, SUBS_JWS_RENEWAL, "chain");
    subs_jws_verifier_free(v);
}

/* The test chain does not lead to the real Apple root. */
static void test_test_chain_fails_against_apple_root(void **state)
{
    struct subs_jws_verifier *v;

    (void)state;
    NEED_VECTORS();
    v = verifier((struct vconf){.root = "certs/AppleRootCA-G3.cer"});
    verify_fails(v, fx.notification, SUBS_JWS_NOTIFICATION, "chain");
    verify_fails(v, fx.transaction, SUBS_JWS_TRANSACTION, "chain");
    subs_jws_verifier_free(v);
    v = verifier(
        (struct vconf){.root = "certs/AppleRootCA-G3.cer", .strict = true});
    verify_fails(v, fx.renewal, SUBS_JWS_RENEWAL, "chain");
    subs_jws_verifier_free(v);
}

/*
 * The real Apple chain (signing leaf, WWDR G6, Apple Root CA - G3) with
 * strict X.509 checks. No JWS signed by Apple is available, so this one
 * carries the real x5c but is signed with the test leaf's key: the checks
 * run in order (path, OIDs, signature), so "signature" means the path and
 * both OIDs passed. At 2042 the path has expired; against testCA it leads
 * nowhere.
 */
static void test_real_apple_chain_passes_strict_path_checks(void **state)
{
    char *payload, *h, *jws, *expired_payload, *expired;
    struct subs_jws_verifier *v;

    (void)state;
    NEED_VECTORS();
    payload = notification_payload("Production", REAL_NOW_MS);
    h = header_x5c("ES256", fx.x5c_real_leaf, fx.x5c_real_inter,
                   fx.x5c_apple_root);
    jws = mint_es256(h, payload, fx.leaf_key);
    expired_payload = notification_payload("Production", EXPIRED_MS);
    expired = mint_es256(h, expired_payload, fx.leaf_key);

    v = verifier((struct vconf){.root = "certs/AppleRootCA-G3.cer",
                                .strict = true,
                                .env = "Production",
                                .app_apple_id = APP_APPLE_ID});
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "signature");
    verify_fails(v, expired, SUBS_JWS_NOTIFICATION, "chain");
    subs_jws_verifier_free(v);

    v = verifier((struct vconf){.root = "certs/AppleRootCA-G3.cer",
                                .env = "Production",
                                .app_apple_id = APP_APPLE_ID});
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "signature");
    subs_jws_verifier_free(v);

    v = verifier(
        (struct vconf){.env = "Production", .app_apple_id = APP_APPLE_ID});
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "chain");
    subs_jws_verifier_free(v);
    free(expired);
    free(expired_payload);
    free(jws);
    free(h);
    free(payload);
}

/* The built-in root (HERALD_APPSTORE_ROOT_CERTS's default) is the file
 * in the vectors, and the real chain leads to it under strict checks. */
static void test_builtin_root_is_apple_root_g3(void **state)
{
    const char *pem = subs_jws_apple_root_g3_pem;
    const char *const roots[] = {SUBS_JWS_APPLE_ROOT_G3};
    const char *const envs[] = {"Production"};
    BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
    X509 *x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    char *payload, *h, *jws, *b64;
    struct subs_jws_verifier *v;
    char errstr[256];

    (void)state;
    NEED_VECTORS();
    assert_non_null(x509);
    b64 = x5c_of(x509);
    assert_string_equal(b64, fx.x5c_apple_root);
    free(b64);
    X509_free(x509);
    BIO_free(bio);

    v = subs_jws_verifier_new(
        &(struct subs_jws_conf){.root_paths = roots,
                                .nroots = 1,
                                .strict_x509 = true,
                                .bundle_id = "com.example",
                                .app_apple_id = APP_APPLE_ID,
                                .environments = envs,
                                .nenvironments = 1},
        errstr, sizeof(errstr));
    assert_non_null(v);
    payload = notification_payload("Production", REAL_NOW_MS);
    h = header_x5c("ES256", fx.x5c_real_leaf, fx.x5c_real_inter,
                   fx.x5c_apple_root);
    jws = mint_es256(h, payload, fx.leaf_key);
    /* "signature": the path and both OIDs passed (see above) */
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "signature");
    /* the test chain does not lead to it */
    verify_fails(v, fx.notification, SUBS_JWS_NOTIFICATION, "chain");
    subs_jws_verifier_free(v);
    free(jws);
    free(h);
    free(payload);
}

/* Xcode StoreKit Testing data: one self-signed certificate in x5c. */
static void test_xcode_vector_is_refused(void **state)
{
    struct subs_jws_verifier *v;

    (void)state;
    NEED_VECTORS();
    v = sandbox();
    verify_fails(v, fx.xcode_transaction, SUBS_JWS_TRANSACTION, "x5c");
    subs_jws_verifier_free(v);
}

/* ---- minted ------------------------------------------------------------- */

/* The minting itself: a notification signed with testLeaf.key over the
 * certs/ chain verifies (control for the tests below), also with an
 * Xcode-style fractional signedDate. */
static void test_minted_notification_verifies(void **state)
{
    const char *fractional =
        "{\"signedDate\":1681314324000.7297,\"data\":{\"bundleId\":"
        "\"com.example\",\"environment\":\"Sandbox\"}}";
    struct subs_jws_verifier *v;
    char *payload, *jws, *jws2;
    json_t *out;

    (void)state;
    NEED_VECTORS();
    payload = notification_payload("Sandbox", TEST_NOW_MS);
    jws = mint_test_chain(payload);
    jws2 = mint_test_chain(fractional);
    v = sandbox();
    out = verify_ok(v, jws, SUBS_JWS_NOTIFICATION);
    json_decref(out);
    out = verify_ok(v, jws2, SUBS_JWS_NOTIFICATION);
    json_decref(out);
    subs_jws_verifier_free(v);
    free(jws2);
    free(jws);
    free(payload);
}

/* testInvalidOIDLeaf (…6.11.2) under the good intermediate, and the good
 * leaf OID under testInvalidOIDIntermediate (…6.2.2): the paths verify,
 * the Apple extensions do not. */
static void test_invalid_oids_are_refused(void **state)
{
    char *payload, *h1, *h2, *h3, *j1, *j2, *j3;
    struct subs_jws_verifier *v;

    (void)state;
    NEED_VECTORS();
    payload = notification_payload("Sandbox", TEST_NOW_MS);
    h1 = header_x5c("ES256", fx.x5c_bad_oid_leaf, fx.x5c_intermediate,
                    fx.x5c_ca);
    h2 = header_x5c("ES256", fx.x5c_bad_inter_leaf, fx.x5c_bad_oid_inter,
                    fx.x5c_ca);
    h3 = header_x5c("ES256", fx.x5c_leaf, fx.x5c_bad_oid_inter, fx.x5c_ca);
    j1 = mint_es256(h1, payload, fx.leaf_key);
    j2 = mint_es256(h2, payload, fx.leaf_key);
    j3 = mint_es256(h3, payload, fx.leaf_key);
    v = sandbox();
    verify_fails(v, j1, SUBS_JWS_NOTIFICATION, "oid");
    verify_fails(v, j2, SUBS_JWS_NOTIFICATION, "oid");
    verify_fails(v, j3, SUBS_JWS_NOTIFICATION, "oid");
    subs_jws_verifier_free(v);
    free(j1);
    free(j2);
    free(j3);
    free(h1);
    free(h2);
    free(h3);
    free(payload);
}

/* signedDate sets the time of the path check: after the certificates
 * expired, or before they were issued, the path fails; just inside, it
 * passes whatever the verifier's clock says. */
static void test_signed_date_outside_validity_fails_chain(void **state)
{
    char *expired, *early, *last, *after, *j1, *j2, *j3, *j4;
    struct subs_jws_verifier *v;
    json_t *out;

    (void)state;
    NEED_VECTORS();
    expired = notification_payload("Sandbox", EXPIRED_MS);
    early = notification_payload("Sandbox", BEFORE_MS);
    /* A minute before testIntermediate.pem's notAfter (2033-01-01
     * 21:31:05Z), and a minute after testLeaf.pem's (21:31:34Z). */
    last = notification_payload("Sandbox", INT64_C(1988227805000));
    after = notification_payload("Sandbox", INT64_C(1988227954000));
    j1 = mint_test_chain(expired);
    j2 = mint_test_chain(early);
    j3 = mint_test_chain(last);
    j4 = mint_test_chain(after);
    v = verifier((struct vconf){.now_ms = EXPIRED_MS});
    verify_fails(v, j1, SUBS_JWS_NOTIFICATION, "chain");
    verify_fails(v, j2, SUBS_JWS_NOTIFICATION, "chain");
    out = verify_ok(v, j3, SUBS_JWS_NOTIFICATION);
    json_decref(out);
    verify_fails(v, j4, SUBS_JWS_NOTIFICATION, "chain");
    subs_jws_verifier_free(v);
    free(j1);
    free(j2);
    free(j3);
    free(j4);
    free(expired);
    free(early);
    free(last);
    free(after);
}

/* A chain verified once is not built again (the cache), but every
 * notification still has its own signature and payload checked, and a
 * time outside the chain's validity still fails it. */
static void test_cached_chain_still_checks_each_notification(void **state)
{
    char *p1 = notification_payload("Sandbox", TEST_NOW_MS);
    char *p2 = notification_payload("Production", TEST_NOW_MS);
    char *late = notification_payload("Sandbox", EXPIRED_MS);
    char *j1, *j2, *j3, *forged;
    struct subs_jws_verifier *v;
    json_t *out;

    (void)state;
    NEED_VECTORS();
    j1 = mint_test_chain(p1);
    j2 = mint_test_chain(p2);
    j3 = mint_test_chain(late);
    forged = with_sig(j1, "AAAA");
    v = sandbox();
    for (int i = 0; i < 3; i++) {
        out = verify_ok(v, j1, SUBS_JWS_NOTIFICATION);
        json_decref(out);
    }
    verify_fails(v, forged, SUBS_JWS_NOTIFICATION, "signature");
    verify_fails(v, j2, SUBS_JWS_NOTIFICATION, "environment");
    verify_fails(v, j3, SUBS_JWS_NOTIFICATION, "chain");
    out = verify_ok(v, j1, SUBS_JWS_NOTIFICATION);
    json_decref(out);
    subs_jws_verifier_free(v);
    free(j1);
    free(j2);
    free(j3);
    free(forged);
    free(p1);
    free(p2);
    free(late);
}

/* A changed payload or signature under the original header fails the
 * signature, before any payload check could pass or fail. */
static void test_tampered_jws_fails_signature(void **state)
{
    const char *evil = "{\"data\":{\"appAppleId\":1234,\"environment\":"
                       "\"Sandbox\",\"bundleId\":\"com.example\"},"
                       "\"notificationUUID\":\"9ad56bd2-0bc6-42e0-af24-"
                       "fd996d87a1e6\",\"signedDate\":1681314324000,"
                       "\"notificationType\":\"REFUND\"}";
    const char *other_app = "{\"data\":{\"environment\":\"Production\","
                            "\"bundleId\":\"com.evil\"},"
                            "\"signedDate\":1681314324000}";
    char *t1, *t2, *t3;
    struct subs_jws_verifier *v;
    size_t n;

    (void)state;
    NEED_VECTORS();
    t1 = with_payload(fx.notification, evil);
    t2 = with_payload(fx.notification, other_app);
    t3 = strdup(fx.notification);
    assert_non_null(t3);
    /* One character of the signature (not the last, whose low bits are
     * padding). */
    n = strlen(t3) - 10;
    t3[n] = t3[n] == 'A' ? 'B' : 'A';
    v = sandbox();
    verify_fails(v, t1, SUBS_JWS_NOTIFICATION, "signature");
    verify_fails(v, t2, SUBS_JWS_NOTIFICATION, "signature");
    verify_fails(v, t3, SUBS_JWS_NOTIFICATION, "signature");
    subs_jws_verifier_free(v);
    free(t1);
    free(t2);
    free(t3);
}

/* ---- libjwt's traps ----------------------------------------------------- */

/*
 * Forgery (a): the legit ES256 header and x5c of testNotification with a
 * payload of the attacker's choosing and a signature that is garbage,
 * empty or short. libjwt 1.10's jwt_decode() without a key accepts such a
 * token (checked here, so the forgery is known to be a real one); the
 * verifier does not.
 */
static void test_es256_forgery_without_valid_signature_is_rejected(void **s)
{
    const char *evil = "{\"data\":{\"appAppleId\":1234,\"environment\":"
                       "\"Sandbox\",\"bundleId\":\"com.example\"},"
                       "\"signedDate\":1681314324000,"
                       "\"notificationType\":\"REFUND_REVERSED\"}";
    unsigned char garbage[64], der[128];
    char *forged, *garbage_sig, *empty, *shortsig, *der_sig, *b64;
    size_t der_len;
    struct subs_jws_verifier *v;
    jwt_t *jwt = NULL;

    (void)s;
    NEED_VECTORS();
    assert_int_equal(RAND_bytes(garbage, sizeof(garbage)), 1);
    forged = with_payload(fx.notification, evil);
    b64 = hr_base64url_encode(garbage, sizeof(garbage), NULL);
    garbage_sig = with_sig(forged, b64);
    free(b64);
    empty = with_sig(forged, "");
    shortsig = with_sig(forged, "AAAA");
    /* A valid signature by the leaf key, but DER-encoded (70-odd bytes),
     * not JOSE's R || S. */
    der_len = der_sign(forged, (size_t)(strrchr(forged, '.') - forged),
                       fx.leaf_key, der);
    b64 = hr_base64url_encode(der, der_len, NULL);
    der_sig = with_sig(forged, b64);
    free(b64);

    /* The trap is real in this libjwt: no key, no signature check. */
    assert_int_equal(jwt_decode(&jwt, garbage_sig, NULL, 0), 0);
    assert_string_equal(jwt_get_grant(jwt, "notificationType"),
                        "REFUND_REVERSED");
    jwt_free(jwt);

    v = sandbox();
    verify_fails(v, forged, SUBS_JWS_NOTIFICATION, "signature");
    verify_fails(v, garbage_sig, SUBS_JWS_NOTIFICATION, "signature");
    verify_fails(v, empty, SUBS_JWS_NOTIFICATION, "signature");
    verify_fails(v, shortsig, SUBS_JWS_NOTIFICATION, "signature");
    verify_fails(v, der_sig, SUBS_JWS_NOTIFICATION, "signature");
    subs_jws_verifier_free(v);
    free(forged);
    free(garbage_sig);
    free(empty);
    free(shortsig);
    free(der_sig);
}

/*
 * Forgery (b), algorithm confusion: header {"alg":"HS256","x5c":[the legit
 * chain]} with an HMAC keyed by the leaf's public key PEM (public: it is in
 * x5c). libjwt 1.10 given that PEM as the key accepts it; the verifier
 * refuses any alg but ES256 before it looks at a key.
 */
static void test_hs256_forgery_keyed_with_leaf_pem_is_rejected(void **s)
{
    const char *evil = "{\"data\":{\"appAppleId\":1234,\"environment\":"
                       "\"Sandbox\",\"bundleId\":\"com.example\"},"
                       "\"signedDate\":1681314324000,"
                       "\"notificationType\":\"REFUND_REVERSED\"}";
    json_t *legit = NULL, *x5c, *h;
    unsigned char mac[32];
    unsigned int mac_len = sizeof(mac);
    const unsigned char *p;
    char *header, *input, *forged, *pem, *leaf_der;
    size_t der_len = 0;
    long pem_len;
    X509 *leaf;
    BIO *bio;
    struct subs_jws_verifier *v;
    jwt_t *jwt = NULL;

    (void)s;
    NEED_VECTORS();
    /* The leaf of testNotification's own x5c and its SPKI PEM. */
    legit = header_of(fx.notification);
    x5c = json_object_get(legit, "x5c");
    leaf_der =
        hr_base64_decode(json_string_value(json_array_get(x5c, 0)),
                         json_string_length(json_array_get(x5c, 0)), &der_len);
    assert_non_null(leaf_der);
    p = (const unsigned char *)leaf_der;
    leaf = d2i_X509(NULL, &p, (long)der_len);
    assert_non_null(leaf);
    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, X509_get0_pubkey(leaf)), 1);
    pem_len = BIO_get_mem_data(bio, &pem);
    assert_true(pem_len > 0);

    h = json_pack("{s:s, s:s, s:O}", "alg", "HS256", "typ", "JWT", "x5c", x5c);
    header = json_dumps(h, JSON_COMPACT);
    input = signing_input(header, evil);
    assert_non_null(HMAC(EVP_sha256(), pem, (int)pem_len,
                         (const unsigned char *)input, strlen(input), mac,
                         &mac_len));
    forged = append_sig(input, mac, mac_len);

    /* The trap is real in this libjwt: the token picks the algorithm. */
    assert_int_equal(
        jwt_decode(&jwt, forged, (const unsigned char *)pem, (int)pem_len), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
    jwt_free(jwt);

    v = sandbox();
    verify_fails(v, forged, SUBS_JWS_NOTIFICATION, "alg");
    subs_jws_verifier_free(v);
    free(forged);
    free(input);
    free(header);
    json_decref(h);
    BIO_free(bio);
    X509_free(leaf);
    free(leaf_der);
    json_decref(legit);
}

/* Any alg but exactly "ES256" is refused, signed properly or not. */
static void test_only_es256_is_accepted(void **state)
{
    static const char *const algs[] = {"none",  "es256",  "ES384",
                                       "RS256", "ES256 ", ""};
    struct subs_jws_verifier *v;
    char *payload, *h, *jws;

    (void)state;
    NEED_VECTORS();
    payload = notification_payload("Sandbox", TEST_NOW_MS);
    v = sandbox();
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        h = header_x5c(algs[i], fx.x5c_leaf, fx.x5c_intermediate, fx.x5c_ca);
        jws = mint_es256(h, payload, fx.leaf_key);
        verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "alg");
        free(jws);
        free(h);
    }
    /* No alg at all, and a number. */
    h = header_x5c(NULL, fx.x5c_leaf, fx.x5c_intermediate, fx.x5c_ca);
    jws = mint_es256(h, payload, fx.leaf_key);
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "alg");
    free(jws);
    free(h);
    jws = mint_es256("{\"alg\":256,\"x5c\":[\"AA==\"]}", payload, fx.leaf_key);
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "alg");
    free(jws);
    subs_jws_verifier_free(v);
    free(payload);
}

/* ---- format ------------------------------------------------------------- */

static void test_malformed_jws_is_bad_format(void **state)
{
    static const char *const bad[] = {
        "a.b.c.d", "a.b.c", "", ".", "..", "abc", "a..c", ".b.c",
        /* {"alg":"ES256"} with padding; then base64 instead of url */
        "eyJhbGciOiJFUzI1NiJ9=.e30.AA", "eyJhbGciOiJFUzI1NiJ9.e30+.AA",
        /* [] and "x" as header */
        "W10.e30.AA", "Ingi.e30.AA"};
    struct subs_jws_verifier *v;
    char *jws, *big;
    size_t big_len = SUBS_JWS_MAX_LEN + 1;

    (void)state;
    NEED_VECTORS();
    v = sandbox();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        verify_fails(v, bad[i], SUBS_JWS_NOTIFICATION, "bad_format");
    verify_fails(v, NULL, SUBS_JWS_NOTIFICATION, "bad_format");
    /* A payload that is not JSON, an array, duplicate keys. */
    jws = mint_test_chain("not json");
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "bad_format");
    free(jws);
    jws = mint_test_chain("[1]");
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "bad_format");
    free(jws);
    jws = mint_test_chain("{\"data\":{\"bundleId\":\"com.example\","
                          "\"environment\":\"Sandbox\"},\"data\":{}}");
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "bad_format");
    free(jws);
    /* signedDate that is not a number. */
    jws = mint_test_chain("{\"signedDate\":\"1681314324000\"}");
    verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "bad_format");
    free(jws);
    /* A header extension marked critical. */
    {
        char *h =
            header_x5c("ES256", fx.x5c_leaf, fx.x5c_intermediate, fx.x5c_ca);
        json_t *hj = json_loads(h, 0, NULL);
        char *hc;

        json_object_set_new(hj, "crit", json_pack("[s]", "b64"));
        json_object_set_new(hj, "b64", json_false());
        hc = json_dumps(hj, JSON_COMPACT);
        jws = mint_es256(hc, "{}", fx.leaf_key);
        verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "bad_format");
        free(jws);
        free(hc);
        json_decref(hj);
        free(h);
    }
    /* Too long. */
    big = malloc(big_len + 1);
    assert_non_null(big);
    memset(big, 'A', big_len);
    big[big_len] = '\0';
    verify_fails(v, big, SUBS_JWS_NOTIFICATION, "bad_format");
    free(big);
    subs_jws_verifier_free(v);
}

/* x5c must be exactly three base64 DER certificates, and the path must be
 * leaf -> x5c[1] -> root. */
static void test_x5c_must_be_three_chaining_certificates(void **state)
{
    char *payload, *abc, *trailing, *der;
    size_t der_len = 0;
    struct {
        const char *a, *b, *c, *want;
    } cases[] = {
        {fx.x5c_leaf, fx.x5c_intermediate, NULL, "x5c"},
        {fx.x5c_leaf, NULL, NULL, "x5c"},
        {"abc", fx.x5c_intermediate, fx.x5c_ca, "x5c"},
        {NULL, fx.x5c_intermediate, fx.x5c_ca, "x5c"}, /* base64 "abc" */
        {fx.x5c_leaf, fx.x5c_intermediate, "", "x5c"},
        {fx.x5c_leaf, "MIIB", fx.x5c_ca, "x5c"},
        {NULL, NULL, NULL, NULL}, /* trailing bytes after the leaf, below */
        /* leaf and intermediate swapped */
        {fx.x5c_intermediate, fx.x5c_leaf, fx.x5c_ca, "chain"},
        /* the root where the intermediate belongs */
        {fx.x5c_leaf, fx.x5c_ca, fx.x5c_intermediate, "chain"},
        /* the intermediate as leaf: it chains, but in two steps */
        {fx.x5c_intermediate, fx.x5c_intermediate, fx.x5c_ca, "chain"},
        /* x5c[2] is never used: any certificate will do */
        {fx.x5c_leaf, fx.x5c_intermediate, fx.x5c_apple_root, NULL},
    };
    struct subs_jws_verifier *v;
    char *h, *jws;
    json_t *out;

    (void)state;
    NEED_VECTORS();
    payload = notification_payload("Sandbox", TEST_NOW_MS);
    abc = hr_base64_encode("abc", 3, NULL);
    cases[3].a = abc;
    der = hr_base64_decode(fx.x5c_leaf, strlen(fx.x5c_leaf), &der_len);
    assert_non_null(der);
    {
        char *longer = malloc(der_len + 2);

        assert_non_null(longer);
        memcpy(longer, der, der_len);
        longer[der_len] = 0;
        longer[der_len + 1] = 0;
        trailing = hr_base64_encode(longer, der_len + 2, NULL);
        free(longer);
    }
    cases[6].a = trailing;
    cases[6].b = fx.x5c_intermediate;
    cases[6].c = fx.x5c_ca;
    cases[6].want = "x5c";
    v = sandbox();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h = header_x5c("ES256", cases[i].a, cases[i].b, cases[i].c);
        jws = mint_es256(h, payload, fx.leaf_key);
        if (cases[i].want) {
            verify_fails(v, jws, SUBS_JWS_NOTIFICATION, cases[i].want);
        } else {
            out = verify_ok(v, jws, SUBS_JWS_NOTIFICATION);
            json_decref(out);
        }
        free(jws);
        free(h);
    }
    /* Four entries, an empty array, not an array, not strings. */
    {
        static const char *const headers[] = {
            "{\"alg\":\"ES256\",\"x5c\":[]}",
            "{\"alg\":\"ES256\",\"x5c\":\"MIIB\"}",
            "{\"alg\":\"ES256\",\"x5c\":[1,2,3]}",
            "{\"alg\":\"ES256\"}",
        };
        json_t *four =
            json_pack("{s:s, s:[s,s,s,s]}", "alg", "ES256", "x5c", fx.x5c_leaf,
                      fx.x5c_intermediate, fx.x5c_ca, fx.x5c_ca);
        char *four_text = json_dumps(four, JSON_COMPACT);

        jws = mint_es256(four_text, payload, fx.leaf_key);
        verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "x5c");
        free(jws);
        free(four_text);
        json_decref(four);
        for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
            jws = mint_es256(headers[i], payload, fx.leaf_key);
            verify_fails(v, jws, SUBS_JWS_NOTIFICATION, "x5c");
            free(jws);
        }
    }
    subs_jws_verifier_free(v);
    free(trailing);
    free(der);
    free(abc);
    free(payload);
}

/* ---- payload checks ----------------------------------------------------- */

/*
 * A notification carrying the upstream transactionInfo and renewalInfo as
 * data.signedTransactionInfo / data.signedRenewalInfo: the outer one
 * verifies, then each inner one on its own. A damaged inner JWS under a
 * valid outer signature still fails: the outer signature vouches for
 * nothing inside.
 */
static void test_nested_jws_verify_on_their_own(void **state)
{
    struct subs_jws_verifier *v;
    char *bad_inner, *text, *jws;
    const char *inner_t, *inner_r;
    json_t *p, *outer, *data, *t, *r;
    size_t n;

    (void)state;
    NEED_VECTORS();
    bad_inner = strdup(fx.transaction);
    assert_non_null(bad_inner);
    n = strlen(bad_inner) - 10;
    bad_inner[n] = bad_inner[n] == 'A' ? 'B' : 'A';
    v = sandbox();
    for (int round = 0; round < 2; round++) {
        p = json_pack("{s:s, s:s, s:I, s:{s:s, s:s, s:i, s:s, s:s}}",
                      "notificationType", "DID_RENEW", "version", "2.0",
                      "signedDate", (json_int_t)TEST_NOW_MS, "data", "bundleId",
                      "com.example", "environment", "Sandbox", "appAppleId",
                      APP_APPLE_ID, "signedTransactionInfo",
                      round ? bad_inner : fx.transaction, "signedRenewalInfo",
                      fx.renewal);
        assert_non_null(p);
        text = json_dumps(p, JSON_COMPACT);
        jws = mint_test_chain(text);
        outer = verify_ok(v, jws, SUBS_JWS_NOTIFICATION);
        data = json_object_get(outer, "data");
        inner_t =
            json_string_value(json_object_get(data, "signedTransactionInfo"));
        inner_r = json_string_value(json_object_get(data, "signedRenewalInfo"));
        assert_non_null(inner_t);
        assert_non_null(inner_r);
        if (round) {
            verify_fails(v, inner_t, SUBS_JWS_TRANSACTION, "signature");
        } else {
            t = verify_ok(v, inner_t, SUBS_JWS_TRANSACTION);
            assert_string_equal(
                json_string_value(json_object_get(t, "bundleId")),
                "com.example");
            json_decref(t);
        }
        r = verify_ok(v, inner_r, SUBS_JWS_RENEWAL);
        assert_string_equal(
            json_string_value(json_object_get(r, "environment")), "Sandbox");
        json_decref(r);
        json_decref(outer);
        free(jws);
        free(text);
        json_decref(p);
    }
    subs_jws_verifier_free(v);
    free(bad_inner);
}

/* Notifications without "data" name their app in summary,
 * externalPurchaseToken (environment from the purchase id) or appData. */
static void test_notification_app_ids_without_data(void **state)
{
    static const struct {
        const char *payload, *want; /* want NULL: verifies */
    } cases[] = {
        {"{\"signedDate\":1681314324000,\"summary\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Sandbox\",\"appAppleId\":1234}}",
         NULL},
        {"{\"signedDate\":1681314324000,\"externalPurchaseToken\":{"
         "\"externalPurchaseId\":\"SANDBOX_b2158121\",\"bundleId\":"
         "\"com.example\",\"appAppleId\":1234}}",
         NULL},
        {"{\"signedDate\":1681314324000,\"externalPurchaseToken\":{"
         "\"externalPurchaseId\":\"b2158121\",\"bundleId\":\"com.example\","
         "\"appAppleId\":1234}}",
         "environment"},
        {"{\"signedDate\":1681314324000,\"appData\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Sandbox\"}}",
         NULL},
        {"{\"signedDate\":1681314324000,\"summary\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Sandbox\",\"appAppleId\":99}}",
         "app_apple_id"},
        {"{\"signedDate\":1681314324000,\"data\":{\"bundleId\":"
         "\"com.example\"}}",
         "environment"},
        {"{\"signedDate\":1681314324000,\"data\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Xcode\"}}",
         "environment"},
        {"{\"signedDate\":1681314324000}", "bundle_id"},
    };
    struct subs_jws_verifier *v;
    char *jws;
    json_t *out;

    (void)state;
    NEED_VECTORS();
    v = sandbox();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        jws = mint_test_chain(cases[i].payload);
        if (cases[i].want) {
            verify_fails(v, jws, SUBS_JWS_NOTIFICATION, cases[i].want);
        } else {
            out = verify_ok(v, jws, SUBS_JWS_NOTIFICATION);
            json_decref(out);
        }
        free(jws);
    }
    subs_jws_verifier_free(v);
}

/* One verifier for both environments: a Sandbox notification may omit
 * appAppleId; a Production one must carry the configured one. */
static void test_environment_list_and_app_apple_id(void **state)
{
    static const struct {
        const char *payload, *want;
    } cases[] = {
        {"{\"signedDate\":1681314324000,\"data\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Sandbox\"}}",
         NULL},
        {"{\"signedDate\":1681314324000,\"data\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Production\",\"appAppleId\":1234}}",
         NULL},
        {"{\"signedDate\":1681314324000,\"data\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Production\"}}",
         "app_apple_id"},
        {"{\"signedDate\":1681314324000,\"data\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Production\",\"appAppleId\":1235}}",
         "app_apple_id"},
        {"{\"signedDate\":1681314324000,\"data\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Production\",\"appAppleId\":"
         "\"1234\"}}",
         "app_apple_id"},
        {"{\"signedDate\":1681314324000,\"data\":{\"bundleId\":"
         "\"com.example\",\"environment\":\"Sandbox\",\"appAppleId\":1235}}",
         "app_apple_id"},
    };
    struct subs_jws_verifier *v;
    char *jws;
    json_t *out;

    (void)state;
    NEED_VECTORS();
    v = verifier((struct vconf){
        .env = "Production", .env2 = "Sandbox", .app_apple_id = APP_APPLE_ID});
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        jws = mint_test_chain(cases[i].payload);
        if (cases[i].want) {
            verify_fails(v, jws, SUBS_JWS_NOTIFICATION, cases[i].want);
        } else {
            out = verify_ok(v, jws, SUBS_JWS_NOTIFICATION);
            json_decref(out);
        }
        free(jws);
    }
    subs_jws_verifier_free(v);
}

/* ---- configuration ------------------------------------------------------ */

static void conf_fails(const struct subs_jws_conf *conf, const char *needle)
{
    char errstr[256] = "";
    struct subs_jws_verifier *v =
        subs_jws_verifier_new(conf, errstr, sizeof(errstr));

    if (v) {
        subs_jws_verifier_free(v);
        fail_msg("verifier created, expected '%s'", needle);
    }
    if (!strstr(errstr, needle))
        fail_msg("errstr '%s' lacks '%s'", errstr, needle);
}

static void test_verifier_new_rejects_bad_conf(void **state)
{
    const char *roots[2] = {NULL, NULL};
    const char *sandbox_env[] = {"Sandbox"};
    const char *prod_env[] = {"Production"};
    const char *xcode_env[] = {"Xcode"};
    struct subs_jws_conf conf = {
        .root_paths = roots,
        .nroots = 1,
        .bundle_id = "com.example",
        .environments = sandbox_env,
        .nenvironments = 1,
    };
    struct subs_jws_conf c;
    char errstr[256];
    struct subs_jws_verifier *v;

    (void)state;
    NEED_VECTORS();
    roots[0] = vec("certs/testCA.der");
    c = conf;
    c.nroots = 0;
    conf_fails(&c, "no root");
    c = conf;
    c.root_paths = NULL;
    conf_fails(&c, "no root");
    c = conf;
    roots[0] = vec("certs/nonexistent.der");
    conf_fails(&c, "cannot open");
    roots[0] = vec("certs/testLeaf.key"); /* PEM, but no certificate */
    conf_fails(&c, "certificate");
    roots[0] = vec("SOURCE.md");
    conf_fails(&c, "certificate");
    roots[0] = vec("certs/testCA.der");
    c.bundle_id = "";
    conf_fails(&c, "bundle_id");
    c = conf;
    c.nenvironments = 0;
    conf_fails(&c, "environment");
    c = conf;
    c.environments = xcode_env;
    conf_fails(&c, "unknown environment 'Xcode'");
    c = conf;
    c.environments = prod_env;
    conf_fails(&c, "app_apple_id is required");
    c.app_apple_id = -5;
    conf_fails(&c, "app_apple_id");

    /* Two roots, the second a PEM with text before the block. */
    roots[1] = vec("certs/testIntermediate.pem");
    c = conf;
    c.nroots = 2;
    v = subs_jws_verifier_new(&c, errstr, sizeof(errstr));
    assert_non_null(v);
    subs_jws_verifier_free(v);
    subs_jws_verifier_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notification_vector_verifies),
        cmocka_unit_test(test_notification_vector_production_verdicts),
        cmocka_unit_test(test_transaction_vector_verdicts),
        cmocka_unit_test(test_renewal_vector_checks_environment_only),
        cmocka_unit_test(test_wrong_bundle_id_vector_and_clock_fallback),
        cmocka_unit_test(test_missing_x5c_vector),
        cmocka_unit_test(test_test_chain_fails_with_strict_x509),
        cmocka_unit_test(test_test_chain_fails_against_apple_root),
        cmocka_unit_test(test_real_apple_chain_passes_strict_path_checks),
        cmocka_unit_test(test_builtin_root_is_apple_root_g3),
        cmocka_unit_test(test_xcode_vector_is_refused),
        cmocka_unit_test(test_minted_notification_verifies),
        cmocka_unit_test(test_invalid_oids_are_refused),
        cmocka_unit_test(test_signed_date_outside_validity_fails_chain),
        cmocka_unit_test(test_cached_chain_still_checks_each_notification),
        cmocka_unit_test(test_tampered_jws_fails_signature),
        cmocka_unit_test(
            test_es256_forgery_without_valid_signature_is_rejected),
        cmocka_unit_test(test_hs256_forgery_keyed_with_leaf_pem_is_rejected),
        cmocka_unit_test(test_only_es256_is_accepted),
        cmocka_unit_test(test_malformed_jws_is_bad_format),
        cmocka_unit_test(test_x5c_must_be_three_chaining_certificates),
        cmocka_unit_test(test_nested_jws_verify_on_their_own),
        cmocka_unit_test(test_notification_app_ids_without_data),
        cmocka_unit_test(test_environment_list_and_app_apple_id),
        cmocka_unit_test(test_verifier_new_rejects_bad_conf),
    };

    return cmocka_run_group_tests_name("subs_jws", tests, group_setup,
                                       group_teardown);
}
