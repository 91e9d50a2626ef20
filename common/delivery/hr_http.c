/*
 * libcurl multi-handle client. Easy handles live in slots (one per allowed
 * concurrent transfer) and are reset and reused, so a worker's steady state
 * allocates little; connections stay in the multi handle's cache.
 */
#include "hr_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "hr_log.h"
#include "hr_retry.h"
#include "hr_time.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* The longest a curl_multi_poll() may sleep; curl wakes earlier for its
 * own timers (request timeouts included). */
#define HR_HTTP_POLL_MS 1000

struct hr_http_slot {
    struct hr_http *http;
    CURL *easy;                  /* created on first use, then reset */
    struct curl_slist *hdrs;     /* this transfer's header list */
    struct hr_http_request *req; /* NULL when the slot is free */
    size_t body_cap;
    size_t sent; /* bytes of a "once" request's body given to curl */
};

struct hr_http {
    CURLM *multi;
    int max_concurrent;
    struct hr_tls *tls; /* verification and HERALD_TLS_CA_FILE */
    struct hr_http_slot *slots;
    struct hr_http_slot **free_slots; /* stack of free slots */
    int n_free;
};

const char *hr_http_url_redact(const char *url, char *buf, size_t size)
{
    const char *scheme_end, *auth, *auth_end, *at, *end;
    size_t len = 0;

    if (size == 0)
        return buf;
    buf[0] = '\0';
    if (!url)
        return buf;
    scheme_end = strstr(url, "://");
    auth = scheme_end ? scheme_end + 3 : url;
    /* The authority ends at the first '/', '?' or '#'. */
    auth_end = auth + strcspn(auth, "/?#");
    at = memchr(auth, '@', (size_t)(auth_end - auth));
    end = auth_end + strcspn(auth_end, "?#");
    if (at) {
        /* Drop "user:password@" but keep scheme and host. */
        len = (size_t)(auth - url);
        snprintf(buf, size, "%.*s%.*s", (int)len, url, (int)(end - (at + 1)),
                 at + 1);
    } else {
        snprintf(buf, size, "%.*s", (int)(end - url), url);
    }
    return buf;
}

struct hr_http *hr_http_new(const char *ca_file,
                            int max_concurrent,
                            char *errstr,
                            size_t errstr_size)
{
    const curl_version_info_data *info;
    struct hr_tls *tls;
    struct hr_http *http;

    if (max_concurrent < 1 || max_concurrent > HR_HTTP_MAX_CONCURRENT) {
        snprintf(errstr, errstr_size,
                 "http max concurrent requests %d is out of range 1..%d",
                 max_concurrent, HR_HTTP_MAX_CONCURRENT);
        return NULL;
    }
    tls = hr_tls_new(ca_file, errstr, errstr_size);
    if (!tls)
        return NULL;
    info = curl_version_info(CURLVERSION_NOW);
    if (!(info->features & CURL_VERSION_HTTP2)) {
        snprintf(errstr, errstr_size, "libcurl %s lacks HTTP/2 support",
                 info->version);
        hr_tls_free(tls);
        return NULL;
    }

    http = calloc(1, sizeof(*http));
    if (!http) {
        hr_tls_free(tls);
        goto out_oom;
    }
    http->tls = tls;
    http->max_concurrent = max_concurrent;
    http->slots = calloc((size_t)max_concurrent, sizeof(*http->slots));
    http->free_slots =
        calloc((size_t)max_concurrent, sizeof(*http->free_slots));
    http->multi = curl_multi_init();
    if (!http->slots || !http->free_slots || !http->multi)
        goto out_oom;
    for (int i = max_concurrent - 1; i >= 0; i--) {
        http->slots[i].http = http;
        http->free_slots[http->n_free++] = &http->slots[i];
    }
    /* Many streams over one connection per host rather than many
     * connections: the way APNs and FCM want to be spoken to. */
    curl_multi_setopt(http->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(http->multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
                      (long)max_concurrent);
    /* Keep a connection per concurrent transfer for HTTP/1.1 hosts. */
    curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, (long)max_concurrent);
    return http;

out_oom:
    snprintf(errstr, errstr_size, "cannot create http client: out of memory");
    hr_http_free(http);
    return NULL;
}

/* CURLOPT_READFUNCTION of a "once" request: its body, then EOF. */
static size_t body_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct hr_http_slot *slot = userdata;
    const struct hr_http_request *req = slot->req;
    size_t left = req->body_len - slot->sent, n = size * nitems;

    if (n > left)
        n = left;
    if (n)
        memcpy(buf, (const char *)req->body + slot->sent, n);
    slot->sent += n;
    return n;
}

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct hr_http_slot *slot = userdata;
    struct hr_http_request *req = slot->req;
    size_t n = size * nmemb, room, take;

    room = HR_HTTP_BODY_MAX - req->response_len;
    take = n < room ? n : room;
    if (take < n)
        req->response_truncated = true;
    if (take == 0)
        return n; /* keep reading, so the connection can be reused */
    if (req->response_len + take + 1 > slot->body_cap) {
        size_t cap = slot->body_cap ? slot->body_cap : 1024;
        char *grown;

        while (cap < req->response_len + take + 1)
            cap *= 2;
        if (cap > HR_HTTP_BODY_MAX + 1)
            cap = HR_HTTP_BODY_MAX + 1;
        grown = realloc(req->response_body, cap);
        if (!grown)
            return 0; /* fails the transfer with CURLE_WRITE_ERROR */
        req->response_body = grown;
        slot->body_cap = cap;
    }
    memcpy(req->response_body + req->response_len, ptr, take);
    req->response_len += take;
    req->response_body[req->response_len] = '\0';
    return n;
}

static bool has_header(const char *const *headers, const char *name)
{
    size_t len = strlen(name);

    for (; headers && *headers; headers++) {
        if (!strncasecmp(*headers, name, len) && (*headers)[len] == ':')
            return true;
    }
    return false;
}

/* Record a failure to set a request up (no transfer was made). */
static void
request_fail(struct hr_http_request *req, CURLcode code, const char *what)
{
    char url[256];

    req->curl_code = code;
    snprintf(req->error, sizeof(req->error), "%s: %s", what,
             curl_easy_strerror(code));
    hr_log_warn(
        "http request failed",
        HR_LOG_STR("url", hr_http_url_redact(req->url, url, sizeof(url))),
        HR_LOG_STR("err", req->error));
}

/* Set the easy handle of @slot up for @req; a CURLcode on failure. */
static CURLcode slot_setup(struct hr_http *http,
                           struct hr_http_slot *slot,
                           struct hr_http_request *req)
{
    CURL *easy = slot->easy;
    const char *method = req->method;
    long timeout =
        req->timeout_ms > 0 ? req->timeout_ms : HR_HTTP_DEFAULT_TIMEOUT_MS;
    bool send_body;
    CURLcode res = CURLE_OK;

#define SETOPT(opt, val)                                          \
    do {                                                          \
        if ((res = curl_easy_setopt(easy, opt, val)) != CURLE_OK) \
            return res;                                           \
    } while (0)

    if (!method)
        method = req->body ? "POST" : "GET";
    send_body = req->body || !strcmp(method, "POST") ||
                !strcmp(method, "PUT") || !strcmp(method, "PATCH");

    SETOPT(CURLOPT_PRIVATE, slot);
    SETOPT(CURLOPT_ERRORBUFFER, req->error);
    SETOPT(CURLOPT_URL, req->url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* Wait for a connection that can multiplex instead of opening a new
     * one for every concurrent request to the same host. */
    SETOPT(CURLOPT_PIPEWAIT, 1L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, timeout);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, timeout < HR_HTTP_CONNECT_TIMEOUT_MS
                                          ? timeout
                                          : HR_HTTP_CONNECT_TIMEOUT_MS);
    if ((res = hr_tls_apply(http->tls, easy)) != CURLE_OK)
        return res;
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_USERAGENT, "herald/" HERALD_VERSION);
    SETOPT(CURLOPT_WRITEFUNCTION, body_write);
    SETOPT(CURLOPT_WRITEDATA, slot);

    if (!strcmp(method, "HEAD")) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (send_body && req->once) {
        /* Read from a callback that cannot rewind: a request whose
         * connection dies before the answer fails (CURLE_SEND_FAIL_REWIND)
         * instead of being sent again on another connection. */
        slot->sent = 0;
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SETOPT(CURLOPT_READFUNCTION, body_read);
        SETOPT(CURLOPT_READDATA, slot);
        if (strcmp(method, "POST"))
            SETOPT(CURLOPT_CUSTOMREQUEST, method);
    } else if (send_body) {
        /* POSTFIELDS does not copy: the body is borrowed until the end of
         * hr_http_perform(), as documented. */
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SETOPT(CURLOPT_POSTFIELDS, req->body ? req->body : "");
        if (strcmp(method, "POST"))
            SETOPT(CURLOPT_CUSTOMREQUEST, method);
    } else {
        SETOPT(CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET"))
            SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }

    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *l = curl_slist_append(slot->hdrs, *h);

        if (!l)
            return CURLE_OUT_OF_MEMORY;
        slot->hdrs = l;
    }
    /* curl 7.88 sends "Expect: 100-continue" for HTTP/1.1 bodies over 1 KiB
     * and then waits up to a second for the server; webhooks gain
     * nothing from it. */
    if (send_body && !has_header(req->headers, "Expect")) {
        struct curl_slist *l = curl_slist_append(slot->hdrs, "Expect:");

        if (!l)
            return CURLE_OUT_OF_MEMORY;
        slot->hdrs = l;
    }
    if (slot->hdrs)
        SETOPT(CURLOPT_HTTPHEADER, slot->hdrs);
#undef SETOPT
    return res;
}

static void slot_release(struct hr_http *http, struct hr_http_slot *slot)
{
    /* The handle outlives the request: drop its pointers into it. */
    if (slot->easy)
        curl_easy_setopt(slot->easy, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(slot->hdrs);
    slot->hdrs = NULL;
    slot->req = NULL;
    slot->body_cap = 0;
    http->free_slots[http->n_free++] = slot;
}

/* Start @req in a free slot. Returns 0, or -1 with the failure recorded in
 * @req (nothing is in flight then). */
static int request_start(struct hr_http *http, struct hr_http_request *req)
{
    struct hr_http_slot *slot;
    CURLMcode mc;
    CURLcode res;

    HR_ASSERT(http->n_free > 0);
    if (!req->url) {
        request_fail(req, CURLE_URL_MALFORMAT, "no url");
        return -1;
    }
    slot = http->free_slots[--http->n_free];
    if (slot->easy) {
        curl_easy_reset(slot->easy);
    } else if (!(slot->easy = curl_easy_init())) {
        http->free_slots[http->n_free++] = slot;
        request_fail(req, CURLE_OUT_OF_MEMORY, "cannot create easy handle");
        return -1;
    }
    slot->req = req;
    res = slot_setup(http, slot, req);
    if (res != CURLE_OK) {
        slot_release(http, slot);
        request_fail(req, res, "invalid request");
        return -1;
    }
    mc = curl_multi_add_handle(http->multi, slot->easy);
    if (mc != CURLM_OK) {
        slot_release(http, slot);
        request_fail(req, CURLE_FAILED_INIT, curl_multi_strerror(mc));
        return -1;
    }
    return 0;
}

/* Collect the results of a finished transfer and free its slot. */
static void
request_finish(struct hr_http *http, struct hr_http_slot *slot, CURLcode result)
{
    struct hr_http_request *req = slot->req;
    struct curl_header *hdr = NULL;
    char url[256];
    long status = 0, version = 0;
    double total = 0;

    curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(slot->easy, CURLINFO_TOTAL_TIME, &total);
    curl_easy_getinfo(slot->easy, CURLINFO_HTTP_VERSION, &version);
    req->curl_code = result;
    req->status = status;
    req->elapsed_s = total;
    req->http_version = status ? version : 0;
    if (status && curl_easy_header(slot->easy, "Retry-After", 0, CURLH_HEADER,
                                   -1, &hdr) == CURLHE_OK)
        req->retry_after_ms =
            hr_retry_parse_retry_after(hdr->value, hr_time_now_ms());
    if (result != CURLE_OK) {
        if (!req->error[0])
            snprintf(req->error, sizeof(req->error), "%s",
                     curl_easy_strerror(result));
        hr_log_warn(
            "http request failed",
            HR_LOG_STR("url", hr_http_url_redact(req->url, url, sizeof(url))),
            HR_LOG_I64("http_status", status), HR_LOG_STR("err", req->error),
            HR_LOG_I64("elapsed_ms", (int64_t)(total * 1000)));
    } else if (hr_log_enabled(HR_LOG_DEBUG)) {
        req->error[0] = '\0';
        hr_log_debug(
            "http request done",
            HR_LOG_STR("url", hr_http_url_redact(req->url, url, sizeof(url))),
            HR_LOG_I64("http_status", status),
            HR_LOG_I64("elapsed_ms", (int64_t)(total * 1000)));
    } else {
        req->error[0] = '\0';
    }
    curl_multi_remove_handle(http->multi, slot->easy);
    slot_release(http, slot);
}

/* Clear @r's results, keeping its input. */
static void request_reset(struct hr_http_request *r)
{
    free(r->response_body);
    r->response_body = NULL;
    r->response_len = 0;
    r->response_truncated = false;
    r->status = 0;
    r->curl_code = CURLE_OK;
    r->error[0] = '\0';
    r->retry_after_ms = -1;
    r->elapsed_s = 0;
    r->http_version = 0;
}

void hr_http_request_release(struct hr_http_request *r)
{
    if (r)
        request_reset(r);
}

/* The multi handle broke: end every transfer in flight as failed. */
static void abort_in_flight(struct hr_http *http, CURLMcode mc)
{
    for (int i = 0; i < http->max_concurrent; i++) {
        struct hr_http_slot *slot = &http->slots[i];
        struct hr_http_request *req = slot->req;

        if (!req)
            continue;
        curl_multi_remove_handle(http->multi, slot->easy);
        slot_release(http, slot);
        request_fail(req, CURLE_FAILED_INIT, curl_multi_strerror(mc));
    }
}

void hr_http_limit_host_connections(struct hr_http *http, int n)
{
    curl_multi_setopt(http->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)n);
}

int hr_http_perform(struct hr_http *http,
                    struct hr_http_request *reqs,
                    size_t n)
{
    size_t next = 0;
    int active = 0;

    for (size_t i = 0; i < n; i++)
        request_reset(&reqs[i]);

    while (next < n || active > 0) {
        CURLMsg *msg;
        CURLMcode mc;
        int running, left, finished = 0;

        while (active < http->max_concurrent && next < n) {
            if (request_start(http, &reqs[next++]) == 0)
                active++;
        }
        if (active == 0)
            continue; /* all remaining ones failed to start */

        mc = curl_multi_perform(http->multi, &running);
        if (mc == CURLM_OK) {
            while ((msg = curl_multi_info_read(http->multi, &left))) {
                struct hr_http_slot *slot = NULL;

                if (msg->msg != CURLMSG_DONE)
                    continue;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &slot);
                request_finish(http, slot, msg->data.result);
                active--;
                finished++;
            }
            /* Fill freed slots at once; otherwise wait for activity. */
            if (active > 0 && (finished == 0 || next >= n))
                mc = curl_multi_poll(http->multi, NULL, 0, HR_HTTP_POLL_MS,
                                     NULL);
        }
        if (mc != CURLM_OK) {
            hr_log_error("http multi handle failed",
                         HR_LOG_STR("err", curl_multi_strerror(mc)));
            abort_in_flight(http, mc);
            for (; next < n; next++)
                request_fail(&reqs[next], CURLE_FAILED_INIT,
                             curl_multi_strerror(mc));
            return -1;
        }
    }
    return 0;
}

int hr_http_classify(const struct hr_http_request *r)
{
    if (r->curl_code != CURLE_OK || r->status == 0)
        return HR_ERR_TRANSIENT;
    if (r->status >= 200 && r->status < 300)
        return -1;
    if (r->status < 400)
        return HR_ERR_PERMANENT;
    return hr_retry_classify_http(r->status);
}

void hr_http_free(struct hr_http *http)
{
    if (!http)
        return;
    if (http->slots) {
        for (int i = 0; i < http->max_concurrent; i++) {
            struct hr_http_slot *slot = &http->slots[i];

            if (slot->easy) {
                if (slot->req && http->multi)
                    curl_multi_remove_handle(http->multi, slot->easy);
                curl_easy_cleanup(slot->easy);
            }
            curl_slist_free_all(slot->hdrs);
        }
    }
    if (http->multi)
        curl_multi_cleanup(http->multi);
    hr_tls_free(http->tls);
    free(http->slots);
    free(http->free_slots);
    free(http);
}
