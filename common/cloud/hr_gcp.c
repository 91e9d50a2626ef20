/*
 * Google service-account OAuth2 tokens (RFC 7523 JWT bearer grant), shared
 * through Redis by hr_shared: this file reads the key file and makes the
 * exchange, hr_shared decides who makes it. See hr_gcp.h.
 */
#include "hr_gcp.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "hr_buf.h"
#include "hr_file.h"
#include "hr_jwt.h"
#include "hr_log.h"
#include "hr_redis.h"
#include "hr_shared.h"
#include "hr_time.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define GCP_FILE_MAX (64 * 1024) /* key files are ~2.4 KB */
#define GCP_BODY_MAX (64 * 1024) /* token answers are < 4 KB */
#define GCP_GRANT    "urn:ietf:params:oauth:grant-type:jwt-bearer"

_Static_assert(HR_GCP_WAIT_MS == HR_SHARED_WAIT_MS,
               "hr_gcp.h documents hr_shared's wait");
_Static_assert(HR_GCP_TOKEN_MAX <= HR_SHARED_TOKEN_MAX,
               "a gcp token fits an hr_shared token");

/* The token this struct holds for one scope, shared as
 * <prefix>gcp:token:<client_email>:<scope>. */
struct gcp_token {
    struct gcp_token *next;
    char *scope;
    bool prefixed; /* shared's key has a struct hr_redis's prefix */
    struct hr_shared_token shared;
};

struct hr_gcp_sa {
    char *client_email;
    char *private_key_id;
    char *project_id;
    char *token_uri;
    struct hr_jwt_signer *signer;
    struct gcp_token *tokens;
    atomic_uint_fast64_t fetches;
};

/* ---- the key file ------------------------------------------------------ */

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
    char err[1200];
    size_t len;
    char *text = hr_file_read(path, GCP_FILE_MAX, &len, err, sizeof(err));

    if (!text) {
        snprintf(errstr, errstr_size, "service account file: %s", err);
        return NULL;
    }
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

void hr_gcp_sa_free(struct hr_gcp_sa *sa)
{
    struct gcp_token *t, *next;

    if (!sa)
        return;
    for (t = sa->tokens; t; t = next) {
        next = t->next;
        hr_shared_token_release(&t->shared);
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

/*
 * The entry for @scope, created empty on first use and named for @redis's
 * key prefix. One first used without Redis is set up again, its token
 * dropped, when a call brings Redis.
 */
static struct gcp_token *
token_slot(struct hr_gcp_sa *sa, struct hr_redis *redis, const char *scope)
{
    struct gcp_token *t;
    size_t size;
    char *name;

    for (t = sa->tokens; t; t = t->next)
        if (!strcmp(t->scope, scope))
            break;
    if (t && (t->prefixed || !redis))
        return t;
    if (t) {
        hr_shared_token_release(&t->shared);
    } else {
        t = calloc(1, sizeof(*t));
        HR_ASSERT(t);
        t->scope = dup_str(scope);
        t->next = sa->tokens;
        sa->tokens = t;
    }
    size = strlen(sa->client_email) + strlen(scope) + 16;
    name = malloc(size);
    HR_ASSERT(name);
    snprintf(name, size, "gcp:token:%s:%s", sa->client_email, scope);
    hr_shared_token_init(&t->shared, redis ? hr_redis_prefix(redis) : "", name);
    free(name);
    t->shared.lock_ms = HR_GCP_LOCK_MS;
    t->prefixed = redis != NULL;
    return t;
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
 * One exchange at token_uri at @start (wall-clock ms, before the
 * request): mint the assertion, POST it, read the token into @token
 * (HR_GCP_TOKEN_MAX bytes) and its expiry (counted from @start, so it
 * errs early) into *@expires_ms.
 */
static enum hr_gcp_result fetch(struct hr_gcp_sa *sa,
                                const struct hr_tls *tls,
                                const char *scope,
                                int64_t start,
                                char *token,
                                int64_t *expires_ms,
                                char *errstr,
                                size_t errstr_size)
{
    enum hr_gcp_result res = HR_GCP_TRANSIENT;
    struct hr_buf form = {0}, answer = {0};
    struct curl_slist *hdrs = NULL;
    char curl_err[CURL_ERROR_SIZE] = "";
    int64_t expires_in_s = 0;
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

/* What gcp_mint() needs for one call. */
struct gcp_mint {
    struct hr_gcp_sa *sa;
    const struct hr_tls *tls;
    const char *scope;
};

/* hr_shared_mint_fn: one exchange at token_uri, due for refresh
 * HR_GCP_REFRESH_MARGIN_MS before it expires. */
static enum hr_shared_result gcp_mint(void *opaque,
                                      int64_t now_ms,
                                      char *out,
                                      size_t size,
                                      int64_t *refresh_at_ms,
                                      int64_t *expires_ms,
                                      char *errstr,
                                      size_t errstr_size)
{
    const struct gcp_mint *m = opaque;
    enum hr_gcp_result res;

    HR_ASSERT(size >= HR_GCP_TOKEN_MAX);
    res = fetch(m->sa, m->tls, m->scope, now_ms, out, expires_ms, errstr,
                errstr_size);
    if (res != HR_GCP_OK)
        return res == HR_GCP_AUTH ? HR_SHARED_AUTH : HR_SHARED_TRANSIENT;
    *refresh_at_ms = *expires_ms - HR_GCP_REFRESH_MARGIN_MS;
    hr_log_info("gcp token fetched",
                HR_LOG_STR("client_email", m->sa->client_email),
                HR_LOG_STR("scope", m->scope),
                HR_LOG_I64("expires_in_ms", *expires_ms - hr_time_now_ms()));
    return HR_SHARED_OK;
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
    struct gcp_mint m = {sa, tls, scope};
    struct gcp_token *t;
    size_t len;

    HR_ASSERT(scope && *scope);
    t = token_slot(sa, redis, scope);
    if (redis && !t->shared.key[0]) {
        snprintf(errstr, errstr_size,
                 "gcp client_email and scope are too long for a redis key");
        return HR_GCP_AUTH;
    }
    switch (hr_shared_token_get(&t->shared, redis, gcp_mint, &m, errstr,
                                errstr_size)) {
    case HR_SHARED_OK:
        break;
    case HR_SHARED_REDIS:
        return HR_GCP_REDIS;
    case HR_SHARED_AUTH:
        return HR_GCP_AUTH;
    default:
        return HR_GCP_TRANSIENT;
    }
    len = strlen(t->shared.value);
    if (len >= out_size) {
        snprintf(errstr, errstr_size,
                 "gcp access token of %zu bytes does not fit in %zu", len,
                 out_size);
        return HR_GCP_TRANSIENT;
    }
    memcpy(out, t->shared.value, len + 1);
    if (expires_ms)
        *expires_ms = t->shared.expires_ms;
    return HR_GCP_OK;
}

void hr_gcp_token_forget(struct hr_gcp_sa *sa,
                         struct hr_redis *redis,
                         const char *scope,
                         const char *token)
{
    struct gcp_token *t = token_slot(sa, redis, scope);
    char err[256];

    if (hr_shared_token_forget(&t->shared, redis, token, err, sizeof(err)))
        hr_log_warn("gcp token not forgotten in redis, it expires on its own",
                    HR_LOG_STR("err", err),
                    HR_LOG_STR("client_email", sa->client_email),
                    HR_LOG_STR("scope", scope));
}
