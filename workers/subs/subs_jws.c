/*
 * Apple JWS verification for subs_jws.h with OpenSSL 3 (X509_STORE for the
 * path, EVP_DigestVerify for ES256) and jansson. The steps follow Apple's
 * python SignedDataVerifier (_decode_signed_object and _ChainVerifier),
 * cross-checked with the Java, Node and Swift libraries; where they differ
 * the stricter reading is kept (see the comments in place).
 */
#include "subs_jws.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "hr_base64.h"
#include "hr_file.h"
#include "hr_time.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define ROOT_FILE_MAX (1024 * 1024)
#define ES256_SIG_LEN 64 /* JOSE: R || S, 32 bytes each (RFC 7518 §3.4) */
#define CHAIN_LEN     3

/*
 * Chains already verified, by the SHA-256 of their JWS header (alg and
 * x5c, as sent): a
 * notification then costs its own signatures (and a notification's
 * transaction and renewal info share its chain). A chain's verdict does
 * not depend on the check time within the validity of all its
 * certificates (no revocation is checked offline), so an entry holds the
 * leaf's key and that window; any other time takes the full path again.
 */
#define CHAIN_CACHE 16

struct chain_entry {
    unsigned char digest[32];
    EVP_PKEY *leaf_key; /* NULL: empty */
    time_t not_before, not_after;
};

struct chain_cache {
    pthread_mutex_t lock;
    struct chain_entry e[CHAIN_CACHE];
    size_t next; /* round-robin replacement */
};

struct subs_jws_verifier {
    struct chain_cache *cache; /* mutable under its lock: verify is const */
    X509_STORE *store;         /* the configured roots; read-only after _new */
    ASN1_OBJECT *leaf_oid;
    ASN1_OBJECT *intermediate_oid;
    bool strict_x509;
    char *bundle_id;
    int64_t app_apple_id;
    char **environments;
    size_t nenvironments;
    int64_t now_ms_override;
};

/* The three segments of a compact JWS, pointers into the caller's string. */
struct jws_parts {
    const char *header;
    size_t header_len;
    const char *payload;
    size_t payload_len;
    const char *sig;
    size_t sig_len;
};

/* ---- helpers ------------------------------------------------------------ */

/* Set *@code and return -1, for the failure paths of the steps below. */
static int fail(const char **code, const char *what)
{
    *code = what;
    return -1;
}

/* ---- configuration ------------------------------------------------------ */

/*
 * Add the certificates of @buf (@len bytes, read from @path) to @store: one
 * DER certificate (it starts with a SEQUENCE, 0x30), or every PEM
 * certificate block in it (text between the blocks is skipped, as PEM
 * readers do).
 */
static int add_roots(X509_STORE *store,
                     const char *path,
                     const unsigned char *buf,
                     size_t len,
                     char *errstr,
                     size_t errstr_size)
{
    char ebuf[256];
    const unsigned char *p = buf;
    int count = 0, rc = -1;
    unsigned long e;
    X509 *x509;
    BIO *bio;

    if (len && buf[0] == 0x30) {
        x509 = d2i_X509(NULL, &p, (long)len);
        if (!x509 || p != buf + len) {
            snprintf(errstr, errstr_size,
                     "root certificate '%s' is not one DER certificate: %s",
                     path, hr_tls_error(ebuf, sizeof(ebuf)));
            X509_free(x509);
            return -1;
        }
        rc = X509_STORE_add_cert(store, x509) == 1 ? 0 : -1;
        if (rc)
            snprintf(errstr, errstr_size, "cannot add root '%s': %s", path,
                     hr_tls_error(ebuf, sizeof(ebuf)));
        X509_free(x509);
        return rc;
    }
    bio = BIO_new_mem_buf(buf, (int)len);
    HR_ASSERT(bio);
    while ((x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        int added = X509_STORE_add_cert(store, x509);

        X509_free(x509);
        if (added != 1) {
            snprintf(errstr, errstr_size, "cannot add root '%s': %s", path,
                     hr_tls_error(ebuf, sizeof(ebuf)));
            goto out_free_bio;
        }
        count++;
    }
    /* The loop ends with "no start line" at the end of the file; any other
     * error is a damaged block. */
    e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_PEM ||
        ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
        snprintf(errstr, errstr_size, "root certificate '%s' is damaged: %s",
                 path, hr_tls_error(ebuf, sizeof(ebuf)));
        goto out_free_bio;
    }
    ERR_clear_error();
    if (!count) {
        snprintf(errstr, errstr_size,
                 "root certificate '%s' holds no PEM or DER certificate", path);
        goto out_free_bio;
    }
    rc = 0;
out_free_bio:
    BIO_free(bio);
    return rc;
}

/* Add the root(s) of @path (a file, or SUBS_JWS_APPLE_ROOT_G3) to @store. */
static int
load_root(X509_STORE *store, const char *path, char *errstr, size_t errstr_size)
{
    char *buf, ebuf[1200];
    size_t len = 0;
    int rc;

    if (!strcmp(path, SUBS_JWS_APPLE_ROOT_G3))
        return add_roots(
            store, path, (const unsigned char *)subs_jws_apple_root_g3_pem,
            strlen(subs_jws_apple_root_g3_pem), errstr, errstr_size);
    buf = hr_file_read(path, ROOT_FILE_MAX, &len, ebuf, sizeof(ebuf));
    if (!buf) {
        snprintf(errstr, errstr_size, "root certificate: %s", ebuf);
        return -1;
    }
    rc = add_roots(store, path, (const unsigned char *)buf, len, errstr,
                   errstr_size);
    free(buf);
    return rc;
}

static int
check_conf(const struct subs_jws_conf *conf, char *errstr, size_t errstr_size)
{
    bool production = false;

    if (!conf->nroots || !conf->root_paths) {
        snprintf(errstr, errstr_size, "no root certificate configured");
        return -1;
    }
    if (!conf->bundle_id || !*conf->bundle_id) {
        snprintf(errstr, errstr_size, "missing bundle_id");
        return -1;
    }
    if (!conf->nenvironments || !conf->environments) {
        snprintf(errstr, errstr_size, "no environment accepted");
        return -1;
    }
    for (size_t i = 0; i < conf->nenvironments; i++) {
        const char *env = conf->environments[i];

        if (env && !strcmp(env, "Production"))
            production = true;
        else if (!env || strcmp(env, "Sandbox")) {
            snprintf(errstr, errstr_size,
                     "unknown environment '%s' (Production or Sandbox)",
                     env ? env : "(null)");
            return -1;
        }
    }
    /* Apple's libraries refuse a Production verifier without it. */
    if (production && conf->app_apple_id <= 0) {
        snprintf(errstr, errstr_size,
                 "app_apple_id is required for environment 'Production'");
        return -1;
    }
    if (conf->app_apple_id < 0) {
        snprintf(errstr, errstr_size, "invalid app_apple_id");
        return -1;
    }
    return 0;
}

struct subs_jws_verifier *subs_jws_verifier_new(
    const struct subs_jws_conf *conf, char *errstr, size_t errstr_size)
{
    struct subs_jws_verifier *v;

    if (check_conf(conf, errstr, errstr_size))
        return NULL;
    v = calloc(1, sizeof(*v));
    HR_ASSERT(v);
    v->cache = calloc(1, sizeof(*v->cache));
    HR_ASSERT(v->cache && !pthread_mutex_init(&v->cache->lock, NULL));
    v->store = X509_STORE_new();
    v->leaf_oid = OBJ_txt2obj(SUBS_JWS_LEAF_OID, 1);
    v->intermediate_oid = OBJ_txt2obj(SUBS_JWS_INTERMEDIATE_OID, 1);
    HR_ASSERT(v->store && v->leaf_oid && v->intermediate_oid);
    for (size_t i = 0; i < conf->nroots; i++) {
        if (!conf->root_paths[i]) {
            snprintf(errstr, errstr_size, "root certificate path %zu is NULL",
                     i);
            goto out_free;
        }
        if (load_root(v->store, conf->root_paths[i], errstr, errstr_size))
            goto out_free;
    }
    v->strict_x509 = conf->strict_x509;
    v->bundle_id = strdup(conf->bundle_id);
    HR_ASSERT(v->bundle_id);
    v->app_apple_id = conf->app_apple_id;
    v->environments = calloc(conf->nenvironments, sizeof(char *));
    HR_ASSERT(v->environments);
    for (size_t i = 0; i < conf->nenvironments; i++) {
        v->environments[i] = strdup(conf->environments[i]);
        HR_ASSERT(v->environments[i]);
        v->nenvironments++;
    }
    v->now_ms_override = conf->now_ms_override;
    return v;
out_free:
    subs_jws_verifier_free(v);
    return NULL;
}

void subs_jws_verifier_free(struct subs_jws_verifier *v)
{
    if (!v)
        return;
    if (v->cache) {
        for (size_t i = 0; i < CHAIN_CACHE; i++)
            EVP_PKEY_free(v->cache->e[i].leaf_key);
        pthread_mutex_destroy(&v->cache->lock);
        free(v->cache);
    }
    X509_STORE_free(v->store);
    ASN1_OBJECT_free(v->leaf_oid);
    ASN1_OBJECT_free(v->intermediate_oid);
    free(v->bundle_id);
    for (size_t i = 0; i < v->nenvironments; i++)
        free(v->environments[i]);
    free(v->environments);
    free(v);
}

/* ---- format ------------------------------------------------------------- */

/* Split @jws into three segments at its two dots; header and payload must
 * not be empty (an empty signature is left to the signature check). */
static int split(const char *jws, struct jws_parts *parts)
{
    const char *dot1 = strchr(jws, '.'), *dot2;

    if (!dot1)
        return -1;
    dot2 = strchr(dot1 + 1, '.');
    if (!dot2 || strchr(dot2 + 1, '.'))
        return -1;
    parts->header = jws;
    parts->header_len = (size_t)(dot1 - jws);
    parts->payload = dot1 + 1;
    parts->payload_len = (size_t)(dot2 - dot1 - 1);
    parts->sig = dot2 + 1;
    parts->sig_len = strlen(dot2 + 1);
    return parts->header_len && parts->payload_len ? 0 : -1;
}

/* The JSON object in the base64url segment @seg of @len characters, or
 * NULL with @errstr naming @what. Duplicate keys are refused: Apple never
 * sends them, and they would let two parsers read different values. */
static json_t *segment_json(const char *seg,
                            size_t len,
                            const char *what,
                            char *errstr,
                            size_t errstr_size)
{
    json_error_t jerr;
    size_t raw_len = 0;
    char *raw = hr_base64url_decode(seg, len, 0, &raw_len);
    json_t *json;

    if (!raw) {
        snprintf(errstr, errstr_size, "jws %s is not base64url", what);
        return NULL;
    }
    json = json_loadb(raw, raw_len, JSON_REJECT_DUPLICATES, &jerr);
    free(raw);
    if (!json) {
        snprintf(errstr, errstr_size, "jws %s is not JSON: %s", what,
                 jerr.text);
        return NULL;
    }
    if (!json_is_object(json)) {
        snprintf(errstr, errstr_size, "jws %s is not a JSON object", what);
        json_decref(json);
        return NULL;
    }
    return json;
}

/*
 * The time for the path check, in Unix seconds: the payload's signedDate
 * (ms, an integer or, from Xcode, a real) when present, else the clock.
 * This reads the payload before its signature is checked, as Apple does;
 * the signature check later authenticates the date.
 */
static int effective_time(const struct subs_jws_verifier *v,
                          const json_t *payload,
                          time_t *when,
                          char *errstr,
                          size_t errstr_size)
{
    const json_t *date = json_object_get(payload, "signedDate");
    int64_t ms;

    if (!date || json_is_null(date)) {
        ms = v->now_ms_override ? v->now_ms_override : hr_time_now_ms();
    } else if (json_is_integer(date)) {
        ms = (int64_t)json_integer_value(date);
    } else if (json_is_real(date) && json_real_value(date) > -9.0e18 &&
               json_real_value(date) < 9.0e18) {
        ms = (int64_t)json_real_value(date);
    } else {
        snprintf(errstr, errstr_size, "signedDate is not a number of ms");
        return -1;
    }
    /* Floor division, as python's int(signedDate) // 1000. */
    *when = (time_t)(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
    return 0;
}

/* ---- header ------------------------------------------------------------- */

/* Apple's order: x5c present, then alg. */
static int check_header(const json_t *header,
                        const char **code,
                        char *errstr,
                        size_t errstr_size)
{
    const json_t *x5c = json_object_get(header, "x5c");
    const char *alg = json_string_value(json_object_get(header, "alg"));

    if (!json_is_array(x5c) || !json_array_size(x5c)) {
        snprintf(errstr, errstr_size, "x5c claim was empty or not an array");
        return fail(code, "x5c");
    }
    if (!alg || strcmp(alg, "ES256")) {
        snprintf(errstr, errstr_size, "algorithm '%s' is not ES256",
                 alg ? alg : "(none)");
        return fail(code, "alg");
    }
    /* RFC 7515 §4.1.11: an extension we do not implement must be refused
     * (Apple never sends one). */
    if (json_object_get(header, "crit")) {
        snprintf(errstr, errstr_size, "unsupported crit header");
        return fail(code, "bad_format");
    }
    return 0;
}

/* The DER certificate in the standard base64 x5c entry @b64, or NULL. */
static X509 *x5c_cert(const json_t *b64)
{
    const char *s = json_string_value(b64);
    const unsigned char *p;
    unsigned char *der;
    size_t len = 0;
    X509 *x509;

    if (!s)
        return NULL;
    der = hr_base64_decode(s, json_string_length(b64), &len);
    if (!der)
        return NULL;
    p = der;
    x509 = d2i_X509(NULL, &p, (long)len);
    if (x509 && p != der + len) {
        X509_free(x509);
        x509 = NULL;
    }
    free(der);
    return x509;
}

/*
 * Decode x5c into @certs (the caller frees them). Exactly 3 entries, as
 * Apple requires. All three must be certificates (Python decodes only the
 * first two, Java all three); x5c[2] is not used further.
 */
static int decode_x5c(const json_t *x5c,
                      X509 *certs[CHAIN_LEN],
                      const char **code,
                      char *errstr,
                      size_t errstr_size)
{
    if (json_array_size(x5c) != CHAIN_LEN) {
        snprintf(errstr, errstr_size, "x5c holds %zu certificates, not %d",
                 json_array_size(x5c), CHAIN_LEN);
        return fail(code, "x5c");
    }
    for (size_t i = 0; i < CHAIN_LEN; i++) {
        certs[i] = x5c_cert(json_array_get(x5c, i));
        if (!certs[i]) {
            ERR_clear_error();
            snprintf(errstr, errstr_size,
                     "x5c[%zu] is not a base64 DER certificate", i);
            return fail(code, "x5c");
        }
    }
    return 0;
}

/* ---- chain -------------------------------------------------------------- */

/*
 * Build and verify leaf -> intermediate -> configured root at @when, then
 * check the Apple extensions. The verified path must be exactly those
 * three (Java's checker caps the depth the same way), so the OIDs are
 * checked on the certificates x5c presented. *@root gets the root the
 * path ended at (a reference for the caller) when it verifies.
 */
static int check_chain(const struct subs_jws_verifier *v,
                       X509 *leaf,
                       X509 *intermediate,
                       time_t when,
                       X509 **root,
                       const char **code,
                       char *errstr,
                       size_t errstr_size)
{
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_VERIFY_PARAM *param;
    STACK_OF(X509) * chain;
    int rc = -1;

    HR_ASSERT(untrusted && ctx);
    if (!sk_X509_push(untrusted, intermediate) ||
        X509_STORE_CTX_init(ctx, v->store, leaf, untrusted) != 1) {
        char ebuf[256];

        snprintf(errstr, errstr_size, "cannot set up chain check: %s",
                 hr_tls_error(ebuf, sizeof(ebuf)));
        fail(code, "chain");
        goto out_free;
    }
    /* The context's own parameters: the shared store stays untouched. */
    param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, when);
    if (v->strict_x509)
        X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);

        snprintf(errstr, errstr_size,
                 "certificate chain does not verify at depth %d: %s",
                 X509_STORE_CTX_get_error_depth(ctx),
                 X509_verify_cert_error_string(err));
        ERR_clear_error();
        fail(code, "chain");
        goto out_free;
    }
    chain = X509_STORE_CTX_get0_chain(ctx);
    if (sk_X509_num(chain) != CHAIN_LEN ||
        X509_cmp(sk_X509_value(chain, 1), intermediate)) {
        snprintf(errstr, errstr_size,
                 "certificate path is not leaf, x5c[1], root (%d long)",
                 sk_X509_num(chain));
        fail(code, "chain");
        goto out_free;
    }
    if (X509_get_ext_by_OBJ(leaf, v->leaf_oid, -1) < 0) {
        snprintf(errstr, errstr_size,
                 "leaf certificate lacks OID " SUBS_JWS_LEAF_OID);
        fail(code, "oid");
        goto out_free;
    }
    if (X509_get_ext_by_OBJ(intermediate, v->intermediate_oid, -1) < 0) {
        snprintf(
            errstr, errstr_size,
            "intermediate certificate lacks OID " SUBS_JWS_INTERMEDIATE_OID);
        fail(code, "oid");
        goto out_free;
    }
    *root = sk_X509_value(chain, CHAIN_LEN - 1);
    if (*root && !X509_up_ref(*root))
        *root = NULL;
    rc = 0;
out_free:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    return rc;
}

/* ---- signature ---------------------------------------------------------- */

/* Whether @pkey is an EC key on P-256, the only curve of ES256. */
static bool is_p256(EVP_PKEY *pkey)
{
    char group[32];
    size_t len = 0;

    if (!EVP_PKEY_is_a(pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                        sizeof(group), &len))
        return false;
    return !strcmp(group, "prime256v1");
}

/*
 * Verify the ES256 signature of @parts with the leaf's key @pkey (NULL:
 * none): the JOSE form
 * R || S becomes a DER ECDSA-Sig-Value for EVP_DigestVerify (SHA-256).
 */
static int check_signature(const struct jws_parts *parts,
                           EVP_PKEY *pkey,
                           const char **code,
                           char *errstr,
                           size_t errstr_size)
{
    EVP_MD_CTX *md = NULL;
    unsigned char *raw, *der = NULL;
    ECDSA_SIG *sig = NULL;
    BIGNUM *r, *s;
    size_t raw_len = 0;
    int der_len, rc = -1;

    if (!pkey || !is_p256(pkey)) {
        ERR_clear_error();
        snprintf(errstr, errstr_size, "leaf key is not a P-256 key");
        return fail(code, "signature");
    }
    raw = hr_base64url_decode(parts->sig, parts->sig_len, 0, &raw_len);
    if (!raw || raw_len != ES256_SIG_LEN) {
        snprintf(errstr, errstr_size, "signature is not %d bytes of base64url",
                 ES256_SIG_LEN);
        free(raw);
        return fail(code, "signature");
    }
    r = BN_bin2bn(raw, ES256_SIG_LEN / 2, NULL);
    s = BN_bin2bn(raw + ES256_SIG_LEN / 2, ES256_SIG_LEN / 2, NULL);
    free(raw);
    sig = ECDSA_SIG_new();
    HR_ASSERT(r && s && sig);
    ECDSA_SIG_set0(sig, r, s); /* sig owns r and s now */
    der_len = i2d_ECDSA_SIG(sig, &der);
    md = EVP_MD_CTX_new();
    HR_ASSERT(der_len > 0 && md);
    /* The signing input is the first two segments as sent, dot included. */
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestVerify(md, der, (size_t)der_len,
                         (const unsigned char *)parts->header,
                         parts->header_len + 1 + parts->payload_len) != 1) {
        ERR_clear_error();
        snprintf(errstr, errstr_size, "signature does not verify");
        fail(code, "signature");
        goto out_free;
    }
    rc = 0;
out_free:
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return rc;
}

/* ---- payload ------------------------------------------------------------ */

/* Where a payload names its app and environment. */
struct app_ids {
    const char *bundle_id;
    const json_t *app_apple_id; /* NULL when absent */
    const char *environment;
};

static void ids_from(const json_t *obj, struct app_ids *ids)
{
    ids->bundle_id = json_string_value(json_object_get(obj, "bundleId"));
    ids->app_apple_id = json_object_get(obj, "appAppleId");
    ids->environment = json_string_value(json_object_get(obj, "environment"));
}

/* A notification names them in "data", else "summary", else
 * "externalPurchaseToken" (its environment derived from the purchase id),
 * else "appData", as Apple's library looks for them. */
static void notification_ids(const json_t *payload, struct app_ids *ids)
{
    const json_t *obj;
    const char *purchase_id;

    if (json_is_object(obj = json_object_get(payload, "data")) ||
        json_is_object(obj = json_object_get(payload, "summary"))) {
        ids_from(obj, ids);
    } else if (json_is_object(
                   obj = json_object_get(payload, "externalPurchaseToken"))) {
        ids_from(obj, ids);
        purchase_id =
            json_string_value(json_object_get(obj, "externalPurchaseId"));
        ids->environment = purchase_id && !strncmp(purchase_id, "SANDBOX", 7)
                               ? "Sandbox"
                               : "Production";
    } else if (json_is_object(obj = json_object_get(payload, "appData"))) {
        ids_from(obj, ids);
    }
}

/*
 * Apple checks appAppleId when the verifier is a Production one. With a
 * list of environments: checked whenever the payload carries one (Apple
 * omits it in Sandbox), required when the payload says Production.
 */
static bool app_apple_id_ok(const struct subs_jws_verifier *v,
                            const struct app_ids *ids)
{
    bool present = ids->app_apple_id && !json_is_null(ids->app_apple_id);
    bool production =
        ids->environment && !strcmp(ids->environment, "Production");

    if (!v->app_apple_id || (!present && !production))
        return true;
    return json_is_integer(ids->app_apple_id) &&
           json_integer_value(ids->app_apple_id) == v->app_apple_id;
}

static bool environment_accepted(const struct subs_jws_verifier *v,
                                 const char *env)
{
    for (size_t i = 0; env && i < v->nenvironments; i++)
        if (!strcmp(env, v->environments[i]))
            return true;
    return false;
}

/* The app and environment checks, in Apple's order: bundleId (not for
 * renewal info), appAppleId (notifications), then environment. */
static int check_payload(const struct subs_jws_verifier *v,
                         const json_t *payload,
                         enum subs_jws_kind kind,
                         const char **code,
                         char *errstr,
                         size_t errstr_size)
{
    struct app_ids ids = {0};

    if (kind == SUBS_JWS_NOTIFICATION) {
        notification_ids(payload, &ids);
    } else {
        ids.bundle_id = json_string_value(json_object_get(payload, "bundleId"));
        ids.environment =
            json_string_value(json_object_get(payload, "environment"));
    }
    if (kind != SUBS_JWS_RENEWAL &&
        (!ids.bundle_id || strcmp(ids.bundle_id, v->bundle_id))) {
        snprintf(errstr, errstr_size, "bundleId '%s' is not '%s'",
                 ids.bundle_id ? ids.bundle_id : "(none)", v->bundle_id);
        return fail(code, "bundle_id");
    }
    if (kind == SUBS_JWS_NOTIFICATION && !app_apple_id_ok(v, &ids)) {
        snprintf(errstr, errstr_size, "appAppleId is not %lld",
                 (long long)v->app_apple_id);
        return fail(code, "app_apple_id");
    }
    if (!environment_accepted(v, ids.environment)) {
        snprintf(errstr, errstr_size, "environment '%s' is not accepted",
                 ids.environment ? ids.environment : "(none)");
        return fail(code, "environment");
    }
    return 0;
}

/* ---- the chain cache ------------------------------------------------------
 */

/* SHA-256 of the JWS header segment as sent (alg and x5c). */
static void header_digest(const struct jws_parts *parts,
                          unsigned char digest[32])
{
    unsigned int len = 0;

    HR_ASSERT(EVP_Digest(parts->header, parts->header_len, digest, &len,
                         EVP_sha256(), NULL) == 1 &&
              len == 32);
}

/* The payload (unverified) and its check time, for a cache lookup;
 * -1 when either fails (the full path then says why). */
static int peek_time(const struct subs_jws_verifier *v,
                     const struct jws_parts *parts,
                     json_t **payload,
                     time_t *when)
{
    char errstr[64];

    *payload = segment_json(parts->payload, parts->payload_len, "payload",
                            errstr, sizeof(errstr));
    return *payload &&
                   !effective_time(v, *payload, when, errstr, sizeof(errstr))
               ? 0
               : -1;
}

/* The cached leaf key of the chain @digest valid at @when (a reference
 * the caller frees), or NULL. */
static EVP_PKEY *chain_lookup(const struct subs_jws_verifier *v,
                              const unsigned char digest[32],
                              time_t when)
{
    EVP_PKEY *key = NULL;

    pthread_mutex_lock(&v->cache->lock);
    for (size_t i = 0; i < CHAIN_CACHE && !key; i++) {
        const struct chain_entry *e = &v->cache->e[i];

        if (e->leaf_key && !memcmp(e->digest, digest, 32) &&
            when >= e->not_before && when <= e->not_after &&
            EVP_PKEY_up_ref(e->leaf_key))
            key = e->leaf_key;
    }
    pthread_mutex_unlock(&v->cache->lock);
    return key;
}

/* @t as seconds since the epoch; 0 when unreadable. */
static time_t asn1_time(const ASN1_TIME *t)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, secs = 0;
    time_t out = 0;

    if (epoch && t && ASN1_TIME_diff(&days, &secs, epoch, t) == 1)
        out = (time_t)days * 86400 + secs;
    ASN1_TIME_free(epoch);
    return out;
}

/* Remember the chain @digest (@certs verified, with the root it chained
 * to @root) and its validity window. */
static void chain_store(const struct subs_jws_verifier *v,
                        const unsigned char digest[32],
                        X509 *const *certs,
                        X509 *root)
{
    X509 *all[] = {certs[0], certs[1], root};
    time_t nb = 0, na = (time_t)INT64_MAX;
    struct chain_entry *e;
    EVP_PKEY *key = X509_get0_pubkey(certs[0]);

    if (!key || !root)
        return;
    for (size_t i = 0; i < 3; i++) {
        time_t b = asn1_time(X509_get0_notBefore(all[i]));
        time_t a = asn1_time(X509_get0_notAfter(all[i]));

        if (!b || !a)
            return;
        nb = b > nb ? b : nb;
        na = a < na ? a : na;
    }
    pthread_mutex_lock(&v->cache->lock);
    e = &v->cache->e[v->cache->next];
    v->cache->next = (v->cache->next + 1) % CHAIN_CACHE;
    EVP_PKEY_free(e->leaf_key);
    e->leaf_key = EVP_PKEY_up_ref(key) ? key : NULL;
    memcpy(e->digest, digest, 32);
    e->not_before = nb;
    e->not_after = na;
    pthread_mutex_unlock(&v->cache->lock);
}

/* ---- verify ------------------------------------------------------------- */

json_t *subs_jws_verify(const struct subs_jws_verifier *v,
                        const char *jws,
                        enum subs_jws_kind kind,
                        const char **code,
                        char *errstr,
                        size_t errstr_size)
{
    X509 *certs[CHAIN_LEN] = {NULL, NULL, NULL};
    json_t *header = NULL, *payload = NULL;
    unsigned char digest[32];
    EVP_PKEY *key = NULL;
    const char *unused_code;
    struct jws_parts parts;
    time_t when;
    int rc = -1;

    if (!code)
        code = &unused_code;
    *code = NULL;
    if (!jws || strnlen(jws, SUBS_JWS_MAX_LEN + 1) > SUBS_JWS_MAX_LEN) {
        snprintf(errstr, errstr_size, "jws is missing or too long");
        fail(code, "bad_format");
        goto out;
    }
    if (split(jws, &parts)) {
        snprintf(errstr, errstr_size, "jws is not three segments");
        fail(code, "bad_format");
        goto out;
    }
    /* A header seen before (the same bytes: alg and x5c) whose chain
     * verified is not decoded again (the cache). */
    header_digest(&parts, digest);
    if (!peek_time(v, &parts, &payload, &when))
        key = chain_lookup(v, digest, when);
    if (!key) {
        X509 *root = NULL;

        json_decref(payload);
        payload = NULL;
        header = segment_json(parts.header, parts.header_len, "header", errstr,
                              errstr_size);
        if (!header) {
            fail(code, "bad_format");
            goto out;
        }
        /* Unverified: only signedDate is read before the signature. */
        payload = segment_json(parts.payload, parts.payload_len, "payload",
                               errstr, errstr_size);
        if (!payload) {
            fail(code, "bad_format");
            goto out;
        }
        if (check_header(header, code, errstr, errstr_size))
            goto out;
        if (effective_time(v, payload, &when, errstr, errstr_size)) {
            fail(code, "bad_format");
            goto out;
        }
        if (decode_x5c(json_object_get(header, "x5c"), certs, code, errstr,
                       errstr_size) ||
            check_chain(v, certs[0], certs[1], when, &root, code, errstr,
                        errstr_size))
            goto out;
        chain_store(v, digest, certs, root);
        X509_free(root);
        key = X509_get0_pubkey(certs[0]);
        if (key && !EVP_PKEY_up_ref(key))
            key = NULL;
    }
    if (check_signature(&parts, key, code, errstr, errstr_size) ||
        check_payload(v, payload, kind, code, errstr, errstr_size))
        goto out;
    rc = 0;
out:
    EVP_PKEY_free(key);
    for (size_t i = 0; i < CHAIN_LEN; i++)
        X509_free(certs[i]);
    json_decref(header);
    if (rc) {
        json_decref(payload);
        return NULL;
    }
    return payload;
}
