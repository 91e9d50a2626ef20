/*
 * Google service-account OAuth2 tokens (RFC 7523 JWT bearer grant), shared
 * through Redis. See hr_gcp.h for the protocol between replicas.
 */
#include "hr_gcp.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "hr_buf.h"
#include "hr_jwt.h"
#include "hr_log.h"
#include "hr_redis.h"
#include "hr_time.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

extern const char hr_lua_hr_gcp[];
extern const unsigned long hr_lua_hr_gcp_len;

#define GCP_FILE_MAX (64 * 1024) /* key files are ~2.4 KB */
#define GCP_BODY_MAX (64 * 1024) /* token answers are < 4 KB */
#define GCP_POLL_MS  100
#define GCP_KEY_MAX  1024
#define GCP_VALUE_MAX \
    (HR_GCP_TOKEN_MAX + 24) /* "<expires_ms> <token>" plus NUL */
#define GCP_GRANT "urn:ietf:params:oauth:grant-type:jwt-bearer"

/* The token this struct holds for one scope. */
struct gcp_token {
    struct gcp_token *next;
    char *scope;
    char *token; /* NULL: none */
    int64_t expires_ms;
};

struct hr_gcp_sa {
    char *client_email;
    char *private_key_id;
    char *project_id;
    char *token_uri;
    struct hr_jwt_signer *signer;
    struct hr_script script; /* hr_gcp.lua: compare-and-delete */
    struct gcp_token *tokens;
    atomic_uint_fast64_t fetches;
};

/* ---- the key file ------------------------------------------------------ */

/* The whole file, NUL-terminated, malloc'd (the caller wipes and frees). */
static char *
read_file(const char *path, size_t *len, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    int failed;

    if (!f) {
        snprintf(errstr, errstr_size,
                 "cannot read service account file '%s': %s", path,
                 strerror(errno));
        return NULL;
    }
    buf = malloc(GCP_FILE_MAX + 2);
    HR_ASSERT(buf);
    n = fread(buf, 1, GCP_FILE_MAX + 1, f);
    failed = ferror(f);
    fclose(f);
    if (failed || n > GCP_FILE_MAX) {
        snprintf(errstr, errstr_size,
                 failed ? "cannot read service account file '%s'"
                        : "service account file '%s' is larger than 64 KiB",
                 path);
        OPENSSL_cleanse(buf, n);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* @name of @root as a non-empty string, or NULL with @errstr naming it. */
static const char *field(const json_t *root,
                         const char *path,
                         const char *name,
                         char *errstr,
                         size_t errstr_size)
{
    const char *v = json_string_value(json_object_get(root, name));

    if (!v || !*v) {
        snprintf(errstr, errstr_size,
                 "service account file '%s' has no %s (a non-empty string)",
                 path, name);
        return NULL;
    }
    return v;
}

static bool is_http_url(const char *url)
{
    return (!strncmp(url, "https://", 8) && url[8]) ||
           (!strncmp(url, "http://", 7) && url[7]);
}

static char *dup_str(const char *s)
{
    char *d = strdup(s);

    HR_ASSERT(d);
    return d;
}

struct hr_gcp_sa *hr_gcp_sa_load(const char *path,
                                 const char *token_uri_override,
                                 char *errstr,
                                 size_t errstr_size)
{
    const char *type, *email, *key, *key_id, *project, *uri;
    struct hr_gcp_sa *sa = NULL;
    json_error_t jerr;
    json_t *root;
    char err[256];
    size_t len;
    char *text = read_file(path, &len, errstr, errstr_size);

    if (!text)
        return NULL;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    OPENSSL_cleanse(text, len);
    free(text);
    if (!root) {
        /* Not jerr.text: its "near '...'" may quote the private key. */
        snprintf(errstr, errstr_size,
                 "service account file '%s' is not json (line %d, column %d)",
                 path, jerr.line, jerr.column);
        goto out_free_root;
    }
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size,
                 "service account file '%s' is not a json object", path);
        goto out_free_root;
    }
    type = json_string_value(json_object_get(root, "type"));
    if (!type || strcmp(type, "service_account")) {
        snprintf(errstr, errstr_size,
                 "service account file '%s' has type '%.64s', not "
                 "'service_account'",
                 path, type ? type : "(none)");
        goto out_free_root;
    }
    if (!(email = field(root, path, "client_email", errstr, errstr_size)) ||
        !(key = field(root, path, "private_key", errstr, errstr_size)) ||
        !(key_id = field(root, path, "private_key_id", errstr, errstr_size)) ||
        !(project = field(root, path, "project_id", errstr, errstr_size)))
        goto out_free_root;
    uri = token_uri_override && *token_uri_override
              ? token_uri_override
              : field(root, path, "token_uri", errstr, errstr_size);
    if (!uri)
        goto out_free_root;
    if (!is_http_url(uri)) {
        snprintf(errstr, errstr_size,
                 "service account file '%s': token_uri '%.200s' is not an "
                 "http(s) url",
                 path, uri);
        goto out_free_root;
    }

    sa = calloc(1, sizeof(*sa));
    HR_ASSERT(sa);
    sa->signer = hr_jwt_signer_new("RS256", key, strlen(key), err, sizeof(err));
    if (!sa->signer) {
        snprintf(errstr, errstr_size,
                 "service account file '%s' has a bad private_key: %s", path,
                 err);
        free(sa);
        sa = NULL;
        goto out_free_root;
    }
    sa->client_email = dup_str(email);
    sa->private_key_id = dup_str(key_id);
    sa->project_id = dup_str(project);
    sa->token_uri = dup_str(uri);
    sa->script.name = "hr_gcp";
    sa->script.src = hr_lua_hr_gcp;
    sa->script.len = hr_lua_hr_gcp_len;
    atomic_init(&sa->fetches, 0);
out_free_root:
    /* jansson frees the key's copy without wiping it: the signer holds
     * the parsed key from here on. */
    json_decref(root);
    return sa;
}

const char *hr_gcp_sa_project(const struct hr_gcp_sa *sa)
{
    return sa->project_id;
}

const char *hr_gcp_sa_email(const struct hr_gcp_sa *sa)
{
    return sa->client_email;
}

const char *hr_gcp_sa_token_uri(const struct hr_gcp_sa *sa)
{
    return sa->token_uri;
}

uint64_t hr_gcp_sa_fetches(const struct hr_gcp_sa *sa)
{
    return atomic_load(&sa->fetches);
}

static void token_clear(struct gcp_token *t)
{
    if (t->token) {
        OPENSSL_cleanse(t->token, strlen(t->token));
        free(t->token);
    }
    t->token = NULL;
    t->expires_ms = 0;
}

void hr_gcp_sa_free(struct hr_gcp_sa *sa)
{
    struct gcp_token *t, *next;

    if (!sa)
        return;
    for (t = sa->tokens; t; t = next) {
        next = t->next;
        token_clear(t);
        free(t->scope);
        free(t);
    }
    hr_jwt_signer_free(sa->signer);
    free(sa->client_email);
    free(sa->private_key_id);
    free(sa->project_id);
    free(sa->token_uri);
    free(sa);
}

/* ---- the token held here ------------------------------------------------ */

/* The entry for @scope, created empty on first use. */
static struct gcp_token *token_slot(struct hr_gcp_sa *sa, const char *scope)
{
    struct gcp_token *t;

    for (t = sa->tokens; t; t = t->next)
        if (!strcmp(t->scope, scope))
            return t;
    t = calloc(1, sizeof(*t));
    HR_ASSERT(t);
    t->scope = dup_str(scope);
    t->next = sa->tokens;
    sa->tokens = t;
    return t;
}

static void token_set(struct gcp_token *t, const char *token, int64_t exp)
{
    if (t->token && !strcmp(t->token, token)) {
        t->expires_ms = exp;
        return;
    }
    token_clear(t);
    t->token = dup_str(token);
    t->expires_ms = exp;
}

/* An access token goes into an HTTP header and a Redis value: printable
 * ASCII without spaces only. */
static bool token_is_sane(const char *token, size_t len)
{
    if (len == 0 || len >= HR_GCP_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)token[i] <= 0x20 || (unsigned char)token[i] >= 0x7f)
            return false;
    return true;
}

/* Hand @t's token to the caller; HR_GCP_TRANSIENT when it does not fit. */
static enum hr_gcp_result give(const struct gcp_token *t,
                               char *out,
                               size_t out_size,
                               int64_t *expires_ms,
                               char *errstr,
                               size_t errstr_size)
{
    size_t len = strlen(t->token);

    if (len >= out_size) {
        snprintf(errstr, errstr_size,
                 "gcp access token of %zu bytes does not fit in %zu", len,
                 out_size);
        return HR_GCP_TRANSIENT;
    }
    memcpy(out, t->token, len + 1);
    if (expires_ms)
        *expires_ms = t->expires_ms;
    return HR_GCP_OK;
}

/*
 * @res failed (@errstr says why): still hand out the token held while it
 * has not expired, as hr_gcp.h promises, and log why it was not renewed.
 */
static enum hr_gcp_result fallback(struct hr_gcp_sa *sa,
                                   const struct gcp_token *t,
                                   enum hr_gcp_result res,
                                   char *out,
                                   size_t out_size,
                                   int64_t *expires_ms,
                                   char *errstr,
                                   size_t errstr_size)
{
    int64_t now = hr_time_now_ms();

    if (!t->token || t->expires_ms <= now)
        return res;
    hr_log_warn("gcp token not renewed, using the one held",
                HR_LOG_STR("client_email", sa->client_email),
                HR_LOG_STR("scope", t->scope), HR_LOG_STR("err", errstr),
                HR_LOG_I64("expires_in_ms", t->expires_ms - now));
    return give(t, out, out_size, expires_ms, errstr, errstr_size);
}

/* ---- Redis -------------------------------------------------------------- */

/* Key names for @scope: <prefix>gcp:<kind>:<client_email>:<scope>. */
static int key_name(const struct hr_gcp_sa *sa,
                    struct hr_redis *redis,
                    const char *kind,
                    const char *scope,
                    char *buf,
                    size_t size)
{
    int n = snprintf(buf, size, "%sgcp:%s:%s:%s", hr_redis_prefix(redis), kind,
                     sa->client_email, scope);

    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* What Redis holds for a token key. */
struct shared {
    bool found;
    int64_t expires_ms;
    char value[GCP_VALUE_MAX]; /* as read: "<expires_ms> <token>" */
    const char *token;         /* into value */
};

/*
 * GET @key into @sh. A value that does not parse counts as missing (it is
 * overwritten by the next fetch). Returns 0, or -1 with @errstr when Redis
 * failed.
 */
static int shared_read(struct hr_redis *redis,
                       const char *key,
                       struct shared *sh,
                       char *errstr,
                       size_t errstr_size)
{
    const char *argv[] = {"GET", key};
    redisReply *reply;
    char *end;
    long long exp;

    sh->found = false;
    reply = hr_redis_command(redis, 2, argv, NULL, errstr, errstr_size);
    if (!reply)
        return -1;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis GET failed: %s", reply->str);
        freeReplyObject(reply);
        return -1;
    }
    if (reply->type == REDIS_REPLY_STRING && reply->len < sizeof(sh->value)) {
        memcpy(sh->value, reply->str, reply->len);
        sh->value[reply->len] = '\0';
        errno = 0;
        exp = strtoll(sh->value, &end, 10);
        if (!errno && end != sh->value && *end == ' ' &&
            token_is_sane(end + 1, strlen(end + 1))) {
            sh->found = true;
            sh->expires_ms = exp;
            sh->token = end + 1;
        }
    }
    if (reply->str)
        OPENSSL_cleanse(reply->str, reply->len);
    freeReplyObject(reply);
    return 0;
}

/*
 * SET @key @value NX PX @ttl_ms (@nx) or SET @key @value PX @ttl_ms.
 * Returns 1 when set, 0 when NX found the key taken, -1 with @errstr when
 * Redis failed.
 */
static int shared_set(struct hr_redis *redis,
                      const char *key,
                      const char *value,
                      int64_t ttl_ms,
                      bool nx,
                      char *errstr,
                      size_t errstr_size)
{
    char px[24];
    const char *argv[] = {"SET", key, value, "PX", px, "NX"};
    redisReply *reply;
    int rc;

    snprintf(px, sizeof(px), "%" PRId64, ttl_ms > 0 ? ttl_ms : 1);
    reply =
        hr_redis_command(redis, nx ? 6 : 5, argv, NULL, errstr, errstr_size);
    if (!reply)
        return -1;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis SET failed: %s", reply->str);
        rc = -1;
    } else {
        rc = reply->type == REDIS_REPLY_STATUS ? 1 : 0; /* nil: NX lost */
    }
    freeReplyObject(reply);
    return rc;
}

/* Delete @key if it still holds @expected (@mode "token" or "lock", see
 * hr_gcp.lua). Returns 0, or -1 with @errstr. */
static int shared_del_if(struct hr_gcp_sa *sa,
                         struct hr_redis *redis,
                         const char *key,
                         const char *mode,
                         const char *expected,
                         char *errstr,
                         size_t errstr_size)
{
    const char *argv[] = {key, mode, expected};
    redisReply *reply;
    int rc = 0;

    reply = hr_redis_eval(redis, &sa->script, 1, 3, argv, NULL, errstr,
                          errstr_size);
    if (!reply)
        return -1;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis compare-and-delete failed: %s",
                 reply->str);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

/* ---- the exchange at token_uri ----------------------------------------- */

/* CURLOPT_WRITEFUNCTION: a bigger answer fails the transfer. */
static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return hr_buf_append(userdata, ptr, size * nmemb, GCP_BODY_MAX)
               ? 0
               : size * nmemb;
}

/* The signed assertion for @scope at @now_s (malloc'd), or NULL. */
static char *assertion(struct hr_gcp_sa *sa,
                       const char *scope,
                       int64_t now_s,
                       char *errstr,
                       size_t errstr_size)
{
    json_t *claims;
    char *jwt;

    claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", sa->client_email, "scope",
                  scope, "aud", sa->token_uri, "iat", (json_int_t)now_s, "exp",
                  (json_int_t)(now_s + HR_GCP_ASSERTION_TTL_S));
    if (!claims) {
        snprintf(errstr, errstr_size, "gcp scope '%.200s' is not utf-8", scope);
        return NULL;
    }
    jwt = hr_jwt_sign_claims(sa->signer, sa->private_key_id, claims, errstr,
                             errstr_size);
    json_decref(claims);
    return jwt;
}

/* The form body: grant_type and assertion, URL-encoded. -1 when out of
 * memory. */
static int form_build(CURL *easy, struct hr_buf *form, const char *jwt)
{
    char *grant = curl_easy_escape(easy, GCP_GRANT, 0);
    char *esc = curl_easy_escape(easy, jwt, 0);
    int rc = -1;

    if (grant && esc)
        rc = hr_buf_append(form, "grant_type=", 11, GCP_BODY_MAX) ||
                     hr_buf_append(form, grant, strlen(grant), GCP_BODY_MAX) ||
                     hr_buf_append(form, "&assertion=", 11, GCP_BODY_MAX) ||
                     hr_buf_append(form, esc, strlen(esc), GCP_BODY_MAX)
                 ? -1
                 : 0;
    curl_free(grant);
    curl_free(esc);
    return rc;
}

/*
 * Read token_uri's answer: {"access_token", "expires_in", ...} on 200;
 * {"error", "error_description"} otherwise. Fills @token (HR_GCP_TOKEN_MAX
 * bytes) and *@expires_in_s.
 */
static enum hr_gcp_result answer_take(long status,
                                      const char *body,
                                      size_t len,
                                      char *token,
                                      int64_t *expires_in_s,
                                      char *errstr,
                                      size_t errstr_size)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *tok = json_string_value(json_object_get(root, "access_token"));
    json_t *jexp = json_object_get(root, "expires_in");
    enum hr_gcp_result res = HR_GCP_TRANSIENT;
    const char *e, *d;

    if (status != 200) {
        e = json_string_value(json_object_get(root, "error"));
        d = json_string_value(json_object_get(root, "error_description"));
        /* Google's words, bounded: they never hold the assertion. */
        snprintf(errstr, errstr_size,
                 "gcp token endpoint answered %ld: %.64s%s%.200s", status,
                 e ? e : "no error code", d ? ": " : "", d ? d : "");
        if (status == 400 || status == 401 || status == 403)
            res = HR_GCP_AUTH;
        goto out_free_root;
    }
    if (!tok || !token_is_sane(tok, strlen(tok))) {
        snprintf(errstr, errstr_size,
                 "gcp token endpoint answered 200 without a usable "
                 "access_token");
        goto out_free_root;
    }
    if (json_is_integer(jexp))
        *expires_in_s = (int64_t)json_integer_value(jexp);
    else if (json_is_real(jexp))
        *expires_in_s = (int64_t)json_real_value(jexp);
    else
        *expires_in_s = 0;
    if (*expires_in_s <= 0 || *expires_in_s > 7 * 24 * 3600) {
        snprintf(errstr, errstr_size,
                 "gcp token endpoint answered 200 without a valid "
                 "expires_in");
        goto out_free_root;
    }
    memcpy(token, tok, strlen(tok) + 1);
    res = HR_GCP_OK;
out_free_root:
    json_decref(root);
    return res;
}

/*
 * One exchange at token_uri: mint the assertion, POST it, read the token
 * into @token (HR_GCP_TOKEN_MAX bytes) and its expiry (counted from before
 * the request, so it errs early) into *@expires_ms.
 */
static enum hr_gcp_result fetch(struct hr_gcp_sa *sa,
                                const struct hr_tls *tls,
                                const char *scope,
                                char *token,
                                int64_t *expires_ms,
                                char *errstr,
                                size_t errstr_size)
{
    enum hr_gcp_result res = HR_GCP_TRANSIENT;
    struct hr_buf form = {0}, answer = {0};
    struct curl_slist *hdrs = NULL;
    char curl_err[CURL_ERROR_SIZE] = "";
    int64_t start = hr_time_now_ms(), expires_in_s = 0;
    long status = 0;
    CURL *easy;
    CURLcode cres;
    char *jwt;

    jwt = assertion(sa, scope, start / 1000, errstr, errstr_size);
    if (!jwt)
        return HR_GCP_AUTH; /* our key cannot sign: no retry helps */
    easy = curl_easy_init();
    if (!easy) {
        snprintf(errstr, errstr_size, "cannot create a curl handle");
        goto out;
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: "
                                   "application/x-www-form-urlencoded");
    if (form_build(easy, &form, jwt) || !hdrs ||
        curl_easy_setopt(easy, CURLOPT_URL, sa->token_uri) ||
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") ||
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs) ||
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, form.p) ||
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)form.len) ||
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                         (long)HR_GCP_HTTP_TIMEOUT_MS) ||
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) ||
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, curl_err) ||
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, body_write) ||
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, &answer) ||
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "herald/" HERALD_VERSION) ||
        hr_tls_apply(tls, easy)) {
        snprintf(errstr, errstr_size, "cannot set up the gcp token request");
        goto out;
    }
    atomic_fetch_add(&sa->fetches, 1);
    cres = curl_easy_perform(easy);
    if (cres != CURLE_OK) {
        snprintf(errstr, errstr_size, "gcp token endpoint unreachable: %s",
                 curl_err[0] ? curl_err : curl_easy_strerror(cres));
        goto out;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    res = answer_take(status, answer.p ? answer.p : "", answer.len, token,
                      &expires_in_s, errstr, errstr_size);
    if (res == HR_GCP_OK)
        *expires_ms = start + expires_in_s * 1000;
out:
    hr_buf_release(&form, 1);   /* the assertion */
    hr_buf_release(&answer, 1); /* the token */
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(easy);
    OPENSSL_cleanse(jwt, strlen(jwt));
    free(jwt);
    return res;
}

/* ---- hr_gcp_token() ----------------------------------------------------- */

/* A name for this attempt's lock, so that only its holder releases it. */
static void lock_owner(char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[16];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(buf, size, "%ld-%" PRId64, (long)getpid(), hr_time_mono_ms());
        return;
    }
    HR_ASSERT(size > 2 * sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++) {
        buf[2 * i] = hex[rnd[i] >> 4];
        buf[2 * i + 1] = hex[rnd[i] & 0xf];
    }
    buf[2 * sizeof(rnd)] = '\0';
}

/*
 * This replica holds the lock: adopt a token stored since @seen was read
 * (another replica finished between our read and our SET NX), else fetch
 * one and store it for the fleet. Releases the lock either way.
 */
static enum hr_gcp_result mint_and_share(struct hr_gcp_sa *sa,
                                         struct hr_redis *redis,
                                         const struct hr_tls *tls,
                                         struct gcp_token *t,
                                         const char *key,
                                         const char *lock,
                                         const char *owner,
                                         const char *seen,
                                         char *errstr,
                                         size_t errstr_size)
{
    char fresh[HR_GCP_TOKEN_MAX], value[GCP_VALUE_MAX], err[256];
    enum hr_gcp_result res;
    struct shared sh;
    int64_t exp = 0;

    if (!shared_read(redis, key, &sh, err, sizeof(err)) && sh.found &&
        strcmp(sh.value, seen) && sh.expires_ms > hr_time_now_ms()) {
        token_set(t, sh.token, sh.expires_ms);
        res = HR_GCP_OK;
    } else {
        res = fetch(sa, tls, t->scope, fresh, &exp, errstr, errstr_size);
    }
    if (res == HR_GCP_OK && exp) {
        token_set(t, fresh, exp);
        snprintf(value, sizeof(value), "%" PRId64 " %s", exp, fresh);
        if (shared_set(redis, key, value, exp - hr_time_now_ms(), false, err,
                       sizeof(err)) < 0)
            hr_log_warn("gcp token not shared", HR_LOG_STR("err", err),
                        HR_LOG_STR("client_email", sa->client_email),
                        HR_LOG_STR("scope", t->scope));
        hr_log_info("gcp token fetched",
                    HR_LOG_STR("client_email", sa->client_email),
                    HR_LOG_STR("scope", t->scope),
                    HR_LOG_I64("expires_in_ms", exp - hr_time_now_ms()));
    }
    if (shared_del_if(sa, redis, lock, "lock", owner, err, sizeof(err)))
        hr_log_warn("gcp token lock not released, it expires on its own",
                    HR_LOG_STR("err", err),
                    HR_LOG_STR("client_email", sa->client_email));
    OPENSSL_cleanse(fresh, sizeof(fresh));
    OPENSSL_cleanse(value, sizeof(value));
    OPENSSL_cleanse(&sh, sizeof(sh));
    return res;
}

/* Whether Redis's token in @sh is worth adopting at @now: it has more than
 * the margin left, or it is new since @seen and has not expired. */
static bool
shared_usable(const struct shared *sh, const char *seen, int64_t now)
{
    if (!sh->found || sh->expires_ms <= now)
        return false;
    return sh->expires_ms - now > HR_GCP_REFRESH_MARGIN_MS ||
           strcmp(sh->value, seen);
}

enum hr_gcp_result hr_gcp_token(struct hr_gcp_sa *sa,
                                struct hr_redis *redis,
                                const struct hr_tls *tls,
                                const char *scope,
                                char *out,
                                size_t out_size,
                                int64_t *expires_ms,
                                char *errstr,
                                size_t errstr_size)
{
    char key[GCP_KEY_MAX], lock[GCP_KEY_MAX], owner[64];
    char seen[GCP_VALUE_MAX] = "", fresh[HR_GCP_TOKEN_MAX];
    int64_t now = hr_time_now_ms(), deadline, exp = 0;
    enum hr_gcp_result res;
    struct gcp_token *t;
    struct shared sh;
    int got;

    HR_ASSERT(scope && *scope);
    t = token_slot(sa, scope);
    if (t->token && t->expires_ms - now > HR_GCP_REFRESH_MARGIN_MS)
        return give(t, out, out_size, expires_ms, errstr, errstr_size);

    if (!redis) {
        res = fetch(sa, tls, scope, fresh, &exp, errstr, errstr_size);
        if (res == HR_GCP_OK)
            token_set(t, fresh, exp);
        OPENSSL_cleanse(fresh, sizeof(fresh));
        goto out;
    }
    if (key_name(sa, redis, "token", scope, key, sizeof(key)) ||
        key_name(sa, redis, "lock", scope, lock, sizeof(lock))) {
        snprintf(errstr, errstr_size,
                 "gcp client_email and scope are too long for a redis key");
        res = HR_GCP_AUTH;
        goto out;
    }

    /* The fleet's token. */
    if (shared_read(redis, key, &sh, errstr, errstr_size)) {
        res = HR_GCP_REDIS;
        goto out;
    }
    if (sh.found) {
        memcpy(seen, sh.value, strlen(sh.value) + 1);
        /* Fresh enough, or at least better than ours as a fallback. */
        if (sh.expires_ms > t->expires_ms)
            token_set(t, sh.token, sh.expires_ms);
        if (sh.expires_ms - now > HR_GCP_REFRESH_MARGIN_MS) {
            res = HR_GCP_OK;
            goto out;
        }
    }

    /* Mint under the lock, or wait for whoever holds it. */
    lock_owner(owner, sizeof(owner));
    deadline = hr_time_mono_ms() + HR_GCP_WAIT_MS;
    for (;;) {
        got = shared_set(redis, lock, owner, HR_GCP_LOCK_MS, true, errstr,
                         errstr_size);
        if (got < 0) {
            res = HR_GCP_REDIS;
            goto out;
        }
        if (got) {
            res = mint_and_share(sa, redis, tls, t, key, lock, owner, seen,
                                 errstr, errstr_size);
            goto out;
        }
        if (hr_time_mono_ms() >= deadline)
            break;
        hr_time_sleep_ms(GCP_POLL_MS);
        if (shared_read(redis, key, &sh, errstr, errstr_size)) {
            res = HR_GCP_REDIS;
            goto out;
        }
        if (shared_usable(&sh, seen, hr_time_now_ms())) {
            token_set(t, sh.token, sh.expires_ms);
            res = HR_GCP_OK;
            goto out;
        }
    }
    snprintf(errstr, errstr_size,
             "gcp token: another replica holds the lock and no token arrived "
             "within %d ms",
             HR_GCP_WAIT_MS);
    res = HR_GCP_TRANSIENT;
out:
    OPENSSL_cleanse(&sh, sizeof(sh));
    OPENSSL_cleanse(seen, sizeof(seen));
    if (res != HR_GCP_OK)
        return fallback(sa, t, res, out, out_size, expires_ms, errstr,
                        errstr_size);
    return give(t, out, out_size, expires_ms, errstr, errstr_size);
}

void hr_gcp_token_forget(struct hr_gcp_sa *sa,
                         struct hr_redis *redis,
                         const char *scope,
                         const char *token)
{
    char key[GCP_KEY_MAX], err[256];
    struct gcp_token *t;

    for (t = sa->tokens; t; t = t->next)
        if (!strcmp(t->scope, scope))
            break;
    if (t && t->token && (!token || !strcmp(t->token, token)))
        token_clear(t);
    if (!redis || !token ||
        key_name(sa, redis, "token", scope, key, sizeof(key)))
        return;
    if (shared_del_if(sa, redis, key, "token", token, err, sizeof(err)))
        hr_log_warn("gcp token not forgotten in redis, it expires on its own",
                    HR_LOG_STR("err", err),
                    HR_LOG_STR("client_email", sa->client_email),
                    HR_LOG_STR("scope", scope));
}
