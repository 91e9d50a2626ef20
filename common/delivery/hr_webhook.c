#include "hr_webhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_compat.h"
#include "hr_conf.h"
#include "hr_file.h"
#include "hr_http.h"
#include "hr_jwt.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_retry.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define HR_WEBHOOK_CONCURRENCY 64
#define HR_WEBHOOK_SECRET_MAX  (64 * 1024)

enum auth_type {
    AUTH_NONE,
    AUTH_JWT,
    AUTH_BEARER,
};

struct webhook {
    char *name;
    char *url;
    char *method;
    long timeout_ms;
    char **headers; /* "Name: value", NULL-terminated, room for 3 more */
    size_t nheaders;
    enum auth_type auth;
    struct hr_jwt_signer *signer;
    char *iss, *aud, *sub;
    int ttl_seconds;
    char *bearer; /* "Authorization: Bearer <token>" */
};

struct hr_webhooks {
    struct webhook *hooks;
    size_t n;
    struct hr_http *http;
    struct hr_http_request *reqs;
    char **auth_headers; /* per request, freed after perform */
    const char ***req_headers;
    size_t reqs_cap;
    struct hr_metric *latency;
    struct hr_metric *responses;
    struct hr_metric *auth_failures;
};

/* Read a secret from @env_key's variable or @file_key's file, as named in
 * @auth. Returns a malloc'd string or NULL (reported). */
static char *read_secret(const json_t *auth,
                         const char *env_key,
                         const char *file_key,
                         const char *where,
                         struct hr_conf *cfg,
                         size_t *len)
{
    const char *env = json_string_value(json_object_get(auth, env_key));
    const char *file = json_string_value(json_object_get(auth, file_key));
    char errstr[1200];
    char *out;

    if (!!env == !!file) {
        hr_conf_add_error(cfg, "%s.auth: needs exactly one of '%s' or '%s'",
                          where, env_key, file_key);
        return NULL;
    }
    if (env) {
        const char *v = getenv(env);

        if (!v || !*v) {
            hr_conf_add_error(cfg,
                              "%s.auth.%s: environment variable '%s' "
                              "is not set",
                              where, env_key, env);
            return NULL;
        }
        *len = strlen(v);
        return strdup(v);
    }
    out =
        hr_file_read(file, HR_WEBHOOK_SECRET_MAX, len, errstr, sizeof(errstr));
    if (!out) {
        hr_conf_add_error(cfg, "%s.auth.%s: %s", where, file_key, errstr);
        return NULL;
    }
    /* one trailing newline, as editors and `echo` leave it */
    if (*len && out[*len - 1] == '\n')
        out[--*len] = '\0';
    if (*len && out[*len - 1] == '\r')
        out[--*len] = '\0';
    return out;
}

static const char *str_field(const json_t *o, const char *key, const char *def)
{
    const char *v = json_string_value(json_object_get(o, key));

    return v ? v : def;
}

static int load_auth(struct webhook *h,
                     const json_t *auth,
                     const char *where,
                     struct hr_conf *cfg)
{
    const char *type = str_field(auth, "type", "none");
    char errstr[256];
    size_t len = 0;
    char *secret;

    if (!strcmp(type, "none"))
        return 0;
    if (!strcmp(type, "bearer")) {
        secret = read_secret(auth, "token_env", "token_file", where, cfg, &len);
        if (!secret)
            return 1;
        h->auth = AUTH_BEARER;
        h->bearer = malloc(len + 32);
        HR_ASSERT(h->bearer);
        snprintf(h->bearer, len + 32, "Authorization: Bearer %s", secret);
        free(secret);
        return 0;
    }
    if (strcmp(type, "jwt")) {
        hr_conf_add_error(cfg, "%s.auth.type: must be jwt, bearer or none",
                          where);
        return 1;
    }
    {
        const char *alg = str_field(auth, "alg", "HS256");
        json_t *ttl = json_object_get(auth, "ttl_seconds");
        int bad = 0;

        h->auth = AUTH_JWT;
        h->iss = strdup(str_field(auth, "iss", "herald"));
        h->aud = json_is_string(json_object_get(auth, "aud"))
                     ? strdup(str_field(auth, "aud", ""))
                     : NULL;
        h->sub = json_is_string(json_object_get(auth, "sub"))
                     ? strdup(str_field(auth, "sub", ""))
                     : NULL;
        h->ttl_seconds = ttl ? (int)json_integer_value(ttl) : 300;
        if (!h->aud || !*h->aud) {
            hr_conf_add_error(cfg, "%s.auth.aud: required for jwt", where);
            bad++;
        }
        if (ttl && (!json_is_integer(ttl) || h->ttl_seconds <= 0 ||
                    h->ttl_seconds > 86400)) {
            hr_conf_add_error(cfg, "%s.auth.ttl_seconds: must be 1..86400",
                              where);
            bad++;
        }
        if (!strcmp(alg, "HS256"))
            secret = read_secret(auth, "secret_env", "secret_file", where, cfg,
                                 &len);
        else if (!strcmp(alg, "RS256") || !strcmp(alg, "ES256"))
            secret = read_secret(auth, "key_env", "key_file", where, cfg, &len);
        else {
            hr_conf_add_error(cfg,
                              "%s.auth.alg: must be HS256, RS256 or "
                              "ES256",
                              where);
            return bad + 1;
        }
        if (!secret)
            return bad + 1;
        h->signer = hr_jwt_signer_new(alg, secret, len, errstr, sizeof(errstr));
        memset(secret, 0, len);
        free(secret);
        if (!h->signer) {
            hr_conf_add_error(cfg, "%s.auth: %s", where, errstr);
            bad++;
        }
        return bad;
    }
}

static int load_one(struct webhook *h,
                    const char *prefix_where,
                    const char *name,
                    const json_t *spec,
                    struct hr_conf *cfg)
{
    const char *url = json_string_value(json_object_get(spec, "url"));
    const char *method = str_field(spec, "method", "POST");
    const json_t *timeout = json_object_get(spec, "timeout_ms");
    const json_t *headers = json_object_get(spec, "headers");
    char where[160];
    const char *key;
    json_t *v;
    int bad = 0;

    snprintf(where, sizeof(where), "%s.%s", prefix_where, name);
    h->name = strdup(name);
    h->timeout_ms = timeout ? (long)json_integer_value(timeout) : 5000;
    if (!json_is_object(spec)) {
        hr_conf_add_error(cfg, "%s: must be an object", where);
        return 1;
    }
    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        hr_conf_add_error(cfg, "%s.url: must be an http:// or https:// URL",
                          where);
        bad++;
    }
    h->url = strdup(url ? url : "");
    if (strcmp(method, "POST") && strcmp(method, "PUT") &&
        strcmp(method, "PATCH")) {
        hr_conf_add_error(cfg, "%s.method: must be POST, PUT or PATCH", where);
        bad++;
    }
    h->method = strdup(method);
    if (timeout && (!json_is_integer(timeout) || h->timeout_ms < 1 ||
                    h->timeout_ms > 120000)) {
        hr_conf_add_error(cfg, "%s.timeout_ms: must be 1..120000", where);
        bad++;
    }
    if (headers && !json_is_object(headers)) {
        hr_conf_add_error(cfg, "%s.headers: must be an object of strings",
                          where);
        bad++;
        headers = NULL;
    }
    h->headers = calloc(json_object_size(headers) + 5, sizeof(char *));
    HR_ASSERT(h->headers);
    h->headers[h->nheaders++] = strdup("Content-Type: application/json");
    json_object_foreach((json_t *)(uintptr_t)headers, key, v)
    {
        size_t n = strlen(key) + json_string_length(v) + 3;

        if (!json_is_string(v) || strpbrk(key, ":\r\n") ||
            strpbrk(json_string_value(v), "\r\n")) {
            hr_conf_add_error(cfg,
                              "%s.headers.%s: must be a single-line "
                              "string",
                              where, key);
            bad++;
            continue;
        }
        h->headers[h->nheaders] = malloc(n);
        HR_ASSERT(h->headers[h->nheaders]);
        snprintf(h->headers[h->nheaders++], n, "%s: %s", key,
                 json_string_value(v));
    }
    return bad + load_auth(h, json_object_get(spec, "auth"), where, cfg);
}

/* "<prefix><suffix>" into @buf. */
static const char *
metric_name(char *buf, size_t size, const char *prefix, const char *suffix)
{
    snprintf(buf, size, "%s%s", prefix, suffix);
    return buf;
}

struct hr_webhooks *hr_webhooks_load(const json_t *hooks,
                                     const char *where,
                                     const char *prefix,
                                     struct hr_conf *cfg,
                                     struct hr_metrics *reg,
                                     const char *ca_file)
{
    struct hr_webhooks *wh = calloc(1, sizeof(*wh));
    const char *name;
    json_t *spec;
    char errstr[256], metric[128];
    int bad = 0;

    HR_ASSERT(wh);
    if (hooks && !json_is_object(hooks)) {
        hr_conf_add_error(cfg, "%s: must be an object of webhooks by name",
                          where);
        hr_webhooks_free(wh);
        return NULL;
    }
    wh->hooks = calloc(json_object_size(hooks) + 1, sizeof(*wh->hooks));
    HR_ASSERT(wh->hooks);
    json_object_foreach((json_t *)(uintptr_t)hooks, name, spec) bad +=
        load_one(&wh->hooks[wh->n++], where, name, spec, cfg);
    if (bad)
        goto out_free;
    if (!reg)
        return wh; /* --check-config: nothing to connect */
    wh->http =
        hr_http_new(ca_file, HR_WEBHOOK_CONCURRENCY, errstr, sizeof(errstr));
    if (!wh->http) {
        hr_conf_add_error(cfg, "%s: %s", where, errstr);
        goto out_free;
    }
    wh->latency = hr_metrics_histogram(
        reg, metric_name(metric, sizeof(metric), prefix, "_webhook_seconds"),
        "Webhook call latency", "webhook", NULL, 0);
    wh->responses = hr_metrics_counter(
        reg,
        metric_name(metric, sizeof(metric), prefix, "_webhook_responses_total"),
        "Webhook calls by outcome (HTTP status, or timeout/error)",
        "webhook,status");
    wh->auth_failures = hr_metrics_counter(
        reg,
        metric_name(metric, sizeof(metric), prefix,
                    "_webhook_auth_failures_total"),
        "Webhook calls refused with 401/403: credentials need fixing",
        "webhook");
    return wh;
out_free:
    hr_webhooks_free(wh);
    return NULL;
}

void hr_webhooks_free(struct hr_webhooks *wh)
{
    if (!wh)
        return;
    for (size_t i = 0; i < wh->n; i++) {
        struct webhook *h = &wh->hooks[i];

        for (size_t k = 0; k < h->nheaders; k++)
            free(h->headers[k]);
        free(h->headers);
        free(h->name);
        free(h->url);
        free(h->method);
        free(h->iss);
        free(h->aud);
        free(h->sub);
        free(h->bearer);
        hr_jwt_signer_free(h->signer);
    }
    free(wh->hooks);
    hr_http_free(wh->http);
    free(wh->reqs);
    free(wh->auth_headers);
    free(wh->req_headers);
    free(wh);
}

size_t hr_webhooks_count(const struct hr_webhooks *wh)
{
    return wh->n;
}

const char *hr_webhook_name(const struct hr_webhooks *wh, int i)
{
    return wh->hooks[i].name;
}

/* The request's header lines: the webhook's own, Authorization and an
 * Idempotency-Key derived from the change, NULL-terminated. */
static int build_headers(struct hr_webhooks *wh,
                         size_t r,
                         const struct hr_webhook_call *call,
                         char *errstr,
                         size_t errstr_size)
{
    const struct webhook *h = &wh->hooks[call->webhook];
    const char **lines = calloc(h->nheaders + 4, sizeof(*lines));
    size_t n = 0;
    char *auth = NULL, *idem;

    HR_ASSERT(lines);
    for (size_t k = 0; k < h->nheaders; k++)
        lines[n++] = h->headers[k];
    if (h->auth == AUTH_BEARER) {
        lines[n++] = h->bearer;
    } else if (h->auth == AUTH_JWT) {
        char *token =
            hr_jwt_sign(h->signer, h->iss, h->aud, h->sub, h->ttl_seconds,
                        hr_time_now_ms() / 1000, errstr, errstr_size);
        size_t len;

        if (!token) {
            free(lines);
            return -1;
        }
        len = strlen(token) + 32;
        auth = malloc(len);
        HR_ASSERT(auth);
        snprintf(auth, len, "Authorization: Bearer %s", token);
        free(token);
        lines[n++] = auth;
    }
    wh->auth_headers[r] = auth;
    /* The last line is allocated too; the release loop knows it. */
    idem = malloc(64);
    HR_ASSERT(idem);
    snprintf(idem, 64, "Idempotency-Key: %s", call->id);
    lines[n] = idem;
    lines[n + 1] = NULL;
    wh->req_headers[r] = lines;
    return 0;
}

static void record(struct hr_webhooks *wh,
                   struct hr_webhook_call *call,
                   const struct hr_http_request *req)
{
    const char *name = wh->hooks[call->webhook].name;
    char status[24];

    call->status = req->status;
    call->err_class = hr_http_classify(req);
    call->retry_after_ms = req->retry_after_ms;
    if (req->status)
        snprintf(status, sizeof(status), "%ld", req->status);
    else
        snprintf(status, sizeof(status), "%s",
                 req->curl_code == CURLE_OPERATION_TIMEDOUT ? "timeout"
                                                            : "error");
    if (call->err_class >= 0) {
        if (req->status)
            snprintf(call->error, sizeof(call->error), "HTTP %ld", req->status);
        else
            snprintf(call->error, sizeof(call->error), "%s", req->error);
    }
    hr_metric_add(wh->responses, (const char *[]){name, status}, 1);
    hr_metric_observe(wh->latency, (const char *[]){name}, req->elapsed_s, 1);
    if (call->err_class == HR_ERR_AUTH)
        hr_metric_add(wh->auth_failures, (const char *[]){name}, 1);
}

int hr_webhooks_perform(struct hr_webhooks *wh,
                        struct hr_webhook_call *const *calls,
                        size_t n)
{
    char errstr[256];
    int rc;

    if (n > wh->reqs_cap) {
        wh->reqs_cap = n * 2;
        wh->reqs = realloc(wh->reqs, wh->reqs_cap * sizeof(*wh->reqs));
        wh->auth_headers =
            realloc(wh->auth_headers, wh->reqs_cap * sizeof(char *));
        wh->req_headers =
            realloc(wh->req_headers, wh->reqs_cap * sizeof(char **));
        HR_ASSERT(wh->reqs && wh->auth_headers && wh->req_headers);
    }
    memset(wh->reqs, 0, n * sizeof(*wh->reqs));
    for (size_t r = 0; r < n; r++) {
        struct hr_webhook_call *call = calls[r];
        const struct webhook *h = &wh->hooks[call->webhook];
        struct hr_http_request *req = &wh->reqs[r];

        wh->auth_headers[r] = NULL;
        wh->req_headers[r] = NULL;
        if (build_headers(wh, r, call, errstr, sizeof(errstr))) {
            /* cannot sign: our own problem, not the destination's */
            hr_log_error("cannot sign webhook token",
                         HR_LOG_STR("webhook", h->name),
                         HR_LOG_STR("err", errstr));
            rc = -1;
            n = r;
            goto out_release;
        }
        req->method = h->method;
        req->url = h->url;
        req->headers = wh->req_headers[r];
        req->body = call->body;
        req->body_len = call->body_len;
        req->timeout_ms = h->timeout_ms;
    }
    rc = n ? hr_http_perform(wh->http, wh->reqs, n) : 0;
    for (size_t r = 0; r < n; r++)
        record(wh, calls[r], &wh->reqs[r]);
out_release:
    for (size_t r = 0; r < n; r++) {
        const char **lines = wh->req_headers[r];

        if (lines) {
            /* the Idempotency-Key line is the last one and was allocated */
            size_t k = 0;

            while (lines[k])
                k++;
            free((void *)(uintptr_t)lines[k - 1]);
            free(lines);
        }
        free(wh->auth_headers[r]);
        hr_http_request_release(&wh->reqs[r]);
    }
    return rc;
}
