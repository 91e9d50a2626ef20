/*
 * JWT signing and pinned-algorithm verification over libjwt 1.10.2 and
 * OpenSSL 3. See hr_jwt.h for the libjwt traps this file works around.
 */
#include "hr_jwt.h"

#include <inttypes.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>

#include "hr_arena.h"
#include "hr_base64.h"
#include "hr_log.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define HR_JWT_JTI_BYTES 16
#define HR_JWT_SIG_MAX   512 /* decoded signature bytes (RSA 4096) */
#define HR_JWT_HDR_MAX   4096

struct hr_jwt_signer {
    jwt_alg_t alg;
    unsigned char *secret; /* HS256 secret bytes */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256 / ES256 private key, parsed once */
    char *header;   /* base64url of {"alg":...,"typ":"JWT"} */
};

/* The three algorithms Herald speaks; everything else (none included) is
 * JWT_ALG_INVAL. */
static jwt_alg_t alg_parse(const char *alg)
{
    if (!alg)
        return JWT_ALG_INVAL;
    if (!strcmp(alg, "HS256"))
        return JWT_ALG_HS256;
    if (!strcmp(alg, "RS256"))
        return JWT_ALG_RS256;
    if (!strcmp(alg, "ES256"))
        return JWT_ALG_ES256;
    return JWT_ALG_INVAL;
}

static bool looks_like_pem(const void *key, size_t key_len)
{
    static const char tag[] = "-----BEGIN";
    const unsigned char *p = key;

    /* Skip leading whitespace, which PEM readers ignore as well. */
    while (key_len > 0 &&
           (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
        key_len--;
    }
    return key_len >= sizeof(tag) - 1 && !memcmp(p, tag, sizeof(tag) - 1);
}

/*
 * Check that @pkey fits @alg: RSA of at least HR_JWT_RSA_MIN_BITS for
 * RS256, EC on P-256 for ES256. @what is "private" or "public" for errors.
 */
static int pkey_check(EVP_PKEY *pkey,
                      jwt_alg_t alg,
                      const char *what,
                      char *errstr,
                      size_t errstr_size)
{
    if (alg == JWT_ALG_RS256) {
        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
            snprintf(errstr, errstr_size, "RS256 needs an RSA %s key, got '%s'",
                     what, EVP_PKEY_get0_type_name(pkey));
            return -1;
        }
        if (EVP_PKEY_get_bits(pkey) < HR_JWT_RSA_MIN_BITS) {
            snprintf(errstr, errstr_size,
                     "RS256 %s key has %d bits, at least %d are required", what,
                     EVP_PKEY_get_bits(pkey), HR_JWT_RSA_MIN_BITS);
            return -1;
        }
        return 0;
    }
    if (alg == JWT_ALG_ES256) {
        char group[64] = "";

        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) {
            snprintf(errstr, errstr_size, "ES256 needs an EC %s key, got '%s'",
                     what, EVP_PKEY_get0_type_name(pkey));
            return -1;
        }
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                            group, sizeof(group), NULL) ||
            strcmp(group, "prime256v1")) {
            snprintf(errstr, errstr_size,
                     "ES256 needs a P-256 %s key, got curve '%s'", what,
                     group[0] ? group : "unknown");
            ERR_clear_error();
            return -1;
        }
        return 0;
    }
    snprintf(errstr, errstr_size, "no key check for this algorithm");
    return -1;
}

/* pem_password_cb that has no passphrase to give, so an encrypted key
 * fails to load instead of OpenSSL prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/*
 * Parse the PEM key @key (private when @private_key) and check it fits
 * @alg. Returns the key (caller frees) or NULL with @errstr set.
 */
static EVP_PKEY *pem_load(const void *key,
                          size_t key_len,
                          jwt_alg_t alg,
                          bool private_key,
                          char *errstr,
                          size_t errstr_size)
{
    const char *what = private_key ? "private" : "public";
    char ebuf[256];
    EVP_PKEY *pkey;
    BIO *bio;

    if (key_len > INT32_MAX) {
        snprintf(errstr, errstr_size, "%s key is too large", what);
        return NULL;
    }
    bio = BIO_new_mem_buf(key, (int)key_len);
    if (!bio) {
        snprintf(errstr, errstr_size, "cannot read %s key: out of memory",
                 what);
        return NULL;
    }
    pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
                       : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (!pkey) {
        snprintf(errstr, errstr_size, "cannot parse PEM %s key: %s", what,
                 hr_tls_error(ebuf, sizeof(ebuf)));
        return NULL;
    }
    if (pkey_check(pkey, alg, what, errstr, errstr_size)) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

/* Check an HS256 secret: long enough, and not a PEM key by mistake (that
 * is the shape of an algorithm-confusion attack). */
static int
hs_key_check(const void *key, size_t key_len, char *errstr, size_t errstr_size)
{
    if (key_len < HR_JWT_HS256_MIN_LEN) {
        snprintf(errstr, errstr_size,
                 "HS256 secret has %zu bytes, at least %d are required",
                 key_len, HR_JWT_HS256_MIN_LEN);
        return -1;
    }
    if (looks_like_pem(key, key_len)) {
        snprintf(errstr, errstr_size,
                 "HS256 secret is a PEM key; use RS256 or ES256 with it");
        return -1;
    }
    return 0;
}

/*
 * Signing does not go through libjwt: jwt_encode_str() in 1.10 parses the
 * PEM key again for every token, which costs ~0.8 ms with OpenSSL 3 (an
 * ECDSA P-256 signature alone is ~40 us). The signer parses its key once;
 * tokens are plain JWS that libjwt and other verifiers accept (the tests
 * check both).
 */
struct hr_jwt_signer *hr_jwt_signer_new(const char *alg,
                                        const void *key,
                                        size_t key_len,
                                        char *errstr,
                                        size_t errstr_size)
{
    struct hr_jwt_signer *signer;
    jwt_alg_t a = alg_parse(alg);
    char header[64];

    if (a == JWT_ALG_INVAL) {
        snprintf(errstr, errstr_size,
                 "unsupported jwt algorithm '%s' (HS256, RS256 or ES256)",
                 alg ? alg : "(null)");
        return NULL;
    }
    if (!key || key_len == 0) {
        snprintf(errstr, errstr_size, "%s signer needs a key", alg);
        return NULL;
    }
    if (key_len > INT32_MAX) {
        snprintf(errstr, errstr_size, "%s key is too large", alg);
        return NULL;
    }
    if (a == JWT_ALG_HS256 && hs_key_check(key, key_len, errstr, errstr_size))
        return NULL;

    signer = calloc(1, sizeof(*signer));
    if (!signer)
        goto out_oom;
    signer->alg = a;
    if (a == JWT_ALG_HS256) {
        if (key_len < HR_JWT_HS256_GOOD_LEN)
            hr_log_warn("jwt secret is shorter than recommended",
                        HR_LOG_STR("alg", alg), HR_LOG_I64("bytes", key_len),
                        HR_LOG_I64("recommended_bytes", HR_JWT_HS256_GOOD_LEN));
        if (!(signer->secret = malloc(key_len)))
            goto out_oom;
        memcpy(signer->secret, key, key_len);
        signer->secret_len = key_len;
    } else {
        signer->pkey = pem_load(key, key_len, a, true, errstr, errstr_size);
        if (!signer->pkey) {
            hr_jwt_signer_free(signer);
            return NULL;
        }
    }
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    signer->header = hr_base64url_encode(header, strlen(header), NULL);
    return signer;

out_oom:
    snprintf(errstr, errstr_size, "cannot create %s signer: out of memory",
             alg);
    hr_jwt_signer_free(signer);
    return NULL;
}

const char *hr_jwt_signer_alg(const struct hr_jwt_signer *signer)
{
    return jwt_alg_str(signer->alg);
}

void hr_jwt_signer_free(struct hr_jwt_signer *signer)
{
    if (!signer)
        return;
    if (signer->secret) {
        OPENSSL_cleanse(signer->secret, signer->secret_len);
        free(signer->secret);
    }
    EVP_PKEY_free(signer->pkey);
    free(signer->header);
    free(signer);
}

/*
 * Sign @input with the signer's key into @sig (at least HR_JWT_SIG_MAX
 * bytes); ES256 signatures are converted from DER to the fixed-size R || S
 * that JWS uses (RFC 7518 section 3.4). Returns the length or -1.
 */
static long sign_input(const struct hr_jwt_signer *signer,
                       const char *input,
                       size_t input_len,
                       unsigned char *sig)
{
    unsigned char der[HR_JWT_SIG_MAX];
    const unsigned char *p = der;
    size_t der_len = sizeof(der);
    unsigned int mac_len = 0;
    const BIGNUM *r, *s;
    ECDSA_SIG *ecsig;
    EVP_MD_CTX *md;
    int ok;

    if (signer->alg == JWT_ALG_HS256) {
        if (!HMAC(EVP_sha256(), signer->secret, (int)signer->secret_len,
                  (const unsigned char *)input, input_len, sig, &mac_len))
            return -1;
        return (long)mac_len;
    }
    md = EVP_MD_CTX_new();
    if (!md)
        return -1;
    /* RSA keys default to PKCS#1 v1.5 padding: RS256. */
    ok = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, signer->pkey) == 1 &&
         EVP_DigestSign(md, der, &der_len, (const unsigned char *)input,
                        input_len) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return -1;
    if (signer->alg == JWT_ALG_RS256) {
        memcpy(sig, der, der_len);
        return (long)der_len;
    }
    ecsig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (!ecsig)
        return -1;
    ECDSA_SIG_get0(ecsig, &r, &s);
    ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32;
    ECDSA_SIG_free(ecsig);
    return ok ? 64 : -1;
}

/*
 * The compact JWS of @claims under the base64url header @head_b64:
 * head "." payload "." signature. Returns the token (malloc'd) or NULL with
 * @errstr set.
 */
static char *sign_compact(const struct hr_jwt_signer *signer,
                          const char *head_b64,
                          const json_t *claims,
                          char *errstr,
                          size_t errstr_size)
{
    unsigned char sig[HR_JWT_SIG_MAX];
    char *payload, *payload_b64 = NULL, *sig_b64 = NULL, *token = NULL;
    size_t head_len, input_len, token_len;
    char ebuf[256];
    long sig_len;

    payload = hr_arena_json_dumps(claims, JSON_COMPACT);
    if (!payload)
        goto out_oom;
    payload_b64 = hr_base64url_encode(payload, strlen(payload), NULL);

    head_len = strlen(head_b64);
    input_len = head_len + 1 + strlen(payload_b64);
    token_len = input_len + 1 + (4 * HR_JWT_SIG_MAX) / 3 + 4;
    if (!(token = malloc(token_len)))
        goto out_oom;
    snprintf(token, token_len, "%s.%s", head_b64, payload_b64);
    sig_len = sign_input(signer, token, input_len, sig);
    if (sig_len < 0) {
        snprintf(errstr, errstr_size, "cannot sign %s jwt: %s",
                 jwt_alg_str(signer->alg), hr_tls_error(ebuf, sizeof(ebuf)));
        free(token);
        token = NULL;
        goto out_free;
    }
    sig_b64 = hr_base64url_encode(sig, (size_t)sig_len, NULL);
    snprintf(token + input_len, token_len - input_len, ".%s", sig_b64);
    goto out_free;

out_oom:
    snprintf(errstr, errstr_size, "cannot sign jwt: out of memory");
out_free:
    OPENSSL_cleanse(sig, sizeof(sig));
    free(sig_b64);
    free(payload_b64);
    free(payload);
    return token;
}

/*
 * A header with a kid is built per call (APNs and Google name their key
 * there); the common one without is the signer's, encoded once.
 */
char *hr_jwt_sign_claims(struct hr_jwt_signer *signer,
                         const char *kid,
                         const json_t *claims,
                         char *errstr,
                         size_t errstr_size)
{
    char *header, *head_b64, *token;
    json_t *jhead;

    if (!json_is_object(claims)) {
        snprintf(errstr, errstr_size,
                 "cannot sign jwt: claims are not a json object");
        return NULL;
    }
    if (!kid)
        return sign_compact(signer, signer->header, claims, errstr,
                            errstr_size);
    if (!*kid) {
        snprintf(errstr, errstr_size, "cannot sign jwt: kid is empty");
        return NULL;
    }
    jhead = json_pack("{s:s, s:s, s:s}", "alg", jwt_alg_str(signer->alg), "typ",
                      "JWT", "kid", kid);
    header = jhead ? hr_arena_json_dumps(jhead, JSON_COMPACT) : NULL;
    json_decref(jhead);
    head_b64 =
        header ? hr_base64url_encode(header, strlen(header), NULL) : NULL;
    free(header);
    if (!head_b64) {
        snprintf(errstr, errstr_size,
                 "cannot sign jwt: kid is not utf-8 or out of memory");
        return NULL;
    }
    token = sign_compact(signer, head_b64, claims, errstr, errstr_size);
    free(head_b64);
    return token;
}

char *hr_jwt_sign(struct hr_jwt_signer *signer,
                  const char *iss,
                  const char *aud,
                  const char *sub,
                  int ttl_seconds,
                  int64_t now_s,
                  char *errstr,
                  size_t errstr_size)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[HR_JWT_JTI_BYTES];
    char jti[2 * HR_JWT_JTI_BYTES + 1], ebuf[256];
    char *token;
    json_t *claims;

    if (!iss || !*iss || !aud || !*aud) {
        snprintf(errstr, errstr_size,
                 "cannot sign jwt: iss and aud are required");
        return NULL;
    }
    if (ttl_seconds <= 0) {
        snprintf(errstr, errstr_size, "cannot sign jwt: ttl %d is not positive",
                 ttl_seconds);
        return NULL;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(errstr, errstr_size, "cannot sign jwt: no randomness: %s",
                 hr_tls_error(ebuf, sizeof(ebuf)));
        return NULL;
    }
    for (size_t i = 0; i < sizeof(rnd); i++) {
        jti[2 * i] = hex[rnd[i] >> 4];
        jti[2 * i + 1] = hex[rnd[i] & 0xf];
    }
    jti[sizeof(jti) - 1] = '\0';

    claims = json_pack("{s:s, s:s, s:I, s:I, s:s}", "iss", iss, "aud", aud,
                       "iat", (json_int_t)now_s, "exp",
                       (json_int_t)(now_s + ttl_seconds), "jti", jti);
    if (!claims ||
        (sub && json_object_set_new(claims, "sub", json_string(sub)))) {
        /* json_pack() fails on invalid UTF-8 as well as on memory. */
        snprintf(errstr, errstr_size,
                 "cannot sign jwt: claims are not utf-8 or out of memory");
        json_decref(claims);
        return NULL;
    }
    token = hr_jwt_sign_claims(signer, NULL, claims, errstr, errstr_size);
    json_decref(claims);
    return token;
}

/* ---- verification ----------------------------------------------------- */

/* A token split at its two dots; lengths exclude the dots. */
struct jws_parts {
    const char *head, *payload, *sig;
    size_t head_len, payload_len, sig_len;
};

static int jws_split(const char *token,
                     struct jws_parts *parts,
                     char *errstr,
                     size_t errstr_size)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;

    if (!dot1 || !dot2 || strchr(dot2 + 1, '.')) {
        snprintf(errstr, errstr_size,
                 "jwt is not a compact jws (three dot-separated parts)");
        return -1;
    }
    parts->head = token;
    parts->head_len = (size_t)(dot1 - token);
    parts->payload = dot1 + 1;
    parts->payload_len = (size_t)(dot2 - dot1 - 1);
    parts->sig = dot2 + 1;
    parts->sig_len = strlen(dot2 + 1);
    if (!parts->head_len || !parts->payload_len || !parts->sig_len) {
        snprintf(errstr, errstr_size, "jwt has an empty %s",
                 !parts->head_len      ? "header"
                 : !parts->payload_len ? "payload"
                                       : "signature");
        return -1;
    }
    return 0;
}

/*
 * Decode and check the protected header before libjwt reads it: "alg" must
 * be exactly @alg, and there must be no "crit" extension we would silently
 * ignore. (An x5c verifier would read "x5c" from this header too.)
 */
static int jws_header_check(const struct jws_parts *parts,
                            const char *alg,
                            char *errstr,
                            size_t errstr_size)
{
    json_t *hdr, *jalg;
    json_error_t jerr;
    char *buf = NULL;
    size_t n = 0;
    int rc = -1;

    /* Bounded before decoding: the header comes from the peer. */
    if (parts->head_len <= 4 * (HR_JWT_HDR_MAX / 3 + 1))
        buf = hr_base64url_decode(parts->head, parts->head_len, 0, &n);
    if (!buf || n > HR_JWT_HDR_MAX) {
        snprintf(errstr, errstr_size, "jwt header is not base64url");
        free(buf);
        return -1;
    }
    hdr = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (!json_is_object(hdr)) {
        snprintf(errstr, errstr_size, "jwt header is not a json object");
        goto out_free_hdr;
    }
    jalg = json_object_get(hdr, "alg");
    if (!json_is_string(jalg)) {
        snprintf(errstr, errstr_size, "jwt header has no alg");
        goto out_free_hdr;
    }
    if (strcmp(json_string_value(jalg), alg)) {
        /* The value comes from the peer: bound it in the message. */
        snprintf(errstr, errstr_size,
                 "jwt algorithm '%.16s' does not match the expected '%s'",
                 json_string_value(jalg), alg);
        goto out_free_hdr;
    }
    if (json_object_get(hdr, "crit")) {
        snprintf(errstr, errstr_size, "jwt header has unsupported crit");
        goto out_free_hdr;
    }
    rc = 0;
out_free_hdr:
    json_decref(hdr);
    return rc;
}

/*
 * HS256 in constant time: libjwt 1.10 compares the base64 MACs with
 * strcmp(), so a forged token is rejected here before it gets there.
 */
static int hs256_check(const struct jws_parts *parts,
                       const void *key,
                       size_t key_len,
                       char *errstr,
                       size_t errstr_size)
{
    unsigned char mac[EVP_MAX_MD_SIZE], *sig = NULL;
    unsigned int mac_len = 0;
    size_t sig_len = 0;
    /* header "." payload: the signing input ends where the signature's
     * dot is. */
    size_t input_len = parts->head_len + 1 + parts->payload_len;
    int rc = -1;

    /* Bounded before decoding: the signature comes from the peer. */
    if (parts->sig_len <= 4 * (HR_JWT_SIG_MAX / 3 + 1))
        sig = hr_base64url_decode(parts->sig, parts->sig_len, 0, &sig_len);
    if (!HMAC(EVP_sha256(), key, (int)key_len,
              (const unsigned char *)parts->head, input_len, mac, &mac_len)) {
        char ebuf[256];

        snprintf(errstr, errstr_size, "cannot compute hmac: %s",
                 hr_tls_error(ebuf, sizeof(ebuf)));
        goto out_free_sig;
    }
    if (!sig || sig_len != mac_len || CRYPTO_memcmp(sig, mac, mac_len) != 0) {
        snprintf(errstr, errstr_size, "jwt signature is invalid");
        goto out_free_sig;
    }
    rc = 0;
out_free_sig:
    free(sig);
    return rc;
}

int hr_jwt_verify(const char *token,
                  const char *alg,
                  const void *key,
                  size_t key_len,
                  json_t **claims_out,
                  char *errstr,
                  size_t errstr_size)
{
    struct jws_parts parts;
    jwt_t *jwt = NULL;
    json_t *claims;
    json_error_t jerr;
    char *grants;
    jwt_alg_t a = alg_parse(alg);
    int err;

    if (a == JWT_ALG_INVAL) {
        snprintf(errstr, errstr_size,
                 "unsupported jwt algorithm '%s' (HS256, RS256 or ES256)",
                 alg ? alg : "(null)");
        return -1;
    }
    /* libjwt 1.10 skips the signature check without a key. */
    if (!key || key_len == 0) {
        snprintf(errstr, errstr_size, "%s verification needs a key", alg);
        return -1;
    }
    if (key_len > INT32_MAX) {
        snprintf(errstr, errstr_size, "%s key is too large", alg);
        return -1;
    }
    if (!token) {
        snprintf(errstr, errstr_size, "no jwt");
        return -1;
    }
    if (jws_split(token, &parts, errstr, errstr_size) ||
        jws_header_check(&parts, alg, errstr, errstr_size))
        return -1;
    if (a == JWT_ALG_HS256) {
        if (hs_key_check(key, key_len, errstr, errstr_size) ||
            hs256_check(&parts, key, key_len, errstr, errstr_size))
            return -1;
    } else {
        EVP_PKEY *pkey = pem_load(key, key_len, a, false, errstr, errstr_size);

        if (!pkey)
            return -1;
        EVP_PKEY_free(pkey);
    }

    err = jwt_decode(&jwt, token, key, (int)key_len);
    if (err || !jwt) {
        snprintf(errstr, errstr_size, "jwt signature is invalid");
        jwt_free(jwt);
        return -1;
    }
    /* Belt and braces: what libjwt verified must be what we pinned. */
    if (jwt_get_alg(jwt) != a) {
        snprintf(errstr, errstr_size, "jwt decoded as '%s', expected '%s'",
                 jwt_alg_str(jwt_get_alg(jwt)), alg);
        jwt_free(jwt);
        return -1;
    }
    grants = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    if (!grants) {
        snprintf(errstr, errstr_size, "jwt payload is not a json object");
        return -1;
    }
    claims = json_loads(grants, 0, &jerr);
    free(grants);
    if (!json_is_object(claims)) {
        json_decref(claims);
        snprintf(errstr, errstr_size, "jwt payload is not a json object");
        return -1;
    }
    if (claims_out)
        *claims_out = claims;
    else
        json_decref(claims);
    return 0;
}

/* A numeric claim as whole seconds; false when absent or not a number. */
static bool claim_seconds(const json_t *claims, const char *name, int64_t *v)
{
    json_t *j = json_object_get(claims, name);

    if (json_is_integer(j)) {
        *v = (int64_t)json_integer_value(j);
        return true;
    }
    if (json_is_real(j)) {
        *v = (int64_t)json_real_value(j);
        return true;
    }
    return false;
}

static bool aud_matches(const json_t *jaud, const char *aud)
{
    size_t i;
    json_t *v;

    if (json_is_string(jaud))
        return !strcmp(json_string_value(jaud), aud);
    if (!json_is_array(jaud))
        return false;
    json_array_foreach(jaud, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), aud))
            return true;
    }
    return false;
}

int hr_jwt_check_claims(const json_t *claims,
                        const char *iss,
                        const char *aud,
                        int64_t now_s,
                        int leeway_s,
                        char *errstr,
                        size_t errstr_size)
{
    int64_t exp, t;
    json_t *jiss;

    if (!json_is_object(claims)) {
        snprintf(errstr, errstr_size, "jwt claims are not an object");
        return -1;
    }
    if (leeway_s < 0)
        leeway_s = 0;
    if (!claim_seconds(claims, "exp", &exp)) {
        snprintf(errstr, errstr_size, "jwt has no numeric exp");
        return -1;
    }
    if (exp <= now_s - leeway_s) {
        snprintf(errstr, errstr_size, "jwt expired at %" PRId64, exp);
        return -1;
    }
    if (json_object_get(claims, "iat") &&
        (!claim_seconds(claims, "iat", &t) || t > now_s + leeway_s)) {
        snprintf(errstr, errstr_size, "jwt iat is in the future or invalid");
        return -1;
    }
    if (json_object_get(claims, "nbf") &&
        (!claim_seconds(claims, "nbf", &t) || t > now_s + leeway_s)) {
        snprintf(errstr, errstr_size, "jwt is not valid yet (nbf)");
        return -1;
    }
    jiss = json_object_get(claims, "iss");
    if (iss &&
        (!json_is_string(jiss) || strcmp(json_string_value(jiss), iss))) {
        snprintf(errstr, errstr_size, "jwt iss does not match '%s'", iss);
        return -1;
    }
    if (aud && !aud_matches(json_object_get(claims, "aud"), aud)) {
        snprintf(errstr, errstr_size, "jwt aud does not match '%s'", aud);
        return -1;
    }
    return 0;
}
