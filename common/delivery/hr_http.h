/*
 * Outbound HTTP(S) for providers and webhooks: one libcurl multi handle per
 * worker thread, batch-oriented. A worker fills an array of requests, calls
 * hr_http_perform() once, and reads each request's result.
 *
 *     struct hr_http_request reqs[2] = {
 *         {.method = "POST", .url = url, .headers = hdrs,
 *          .body = json, .body_len = len, .timeout_ms = 5000},
 *         ...
 *     };
 *     hr_http_perform(http, reqs, 2);
 *     cls = hr_http_classify(&reqs[0]);   // -1: 2xx; else enum hr_err_class
 *     ...
 *     hr_http_request_release(&reqs[0]);  // frees the response body
 *
 * HTTPS negotiates HTTP/2 through ALPN (HTTP/1.1 otherwise; plain http://
 * is always HTTP/1.1) and multiplexes concurrent requests to one host over
 * one connection; connections, TLS sessions and DNS answers are kept in the
 * handle and reused across hr_http_perform() calls. TLS peer and host
 * verification are always on. Redirects are not followed.
 *
 * Delivery is at least once: when a reused connection closes before any
 * byte of the answer, libcurl 7.88 silently sends the request again on
 * another connection, up to 5 more times (a server that resets on a
 * payload saw it 6 times in test_http), so receivers must be idempotent,
 * as SPEC section 7 requires anyway — unless the request says "once":
 * then it fails instead, and the caller decides.
 *
 * Logging: each transport failure (no complete HTTP answer) is logged at
 * warn and each completed request at debug; HTTP error statuses are left
 * to the caller, who knows what they mean. URLs go through
 * hr_http_url_redact() (no credentials, query or fragment); headers and
 * bodies are never logged.
 */
#ifndef HR_HTTP_H
#define HR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "hr_compat.h"

/* Default per-request timeout when a request's timeout_ms is <= 0. */
#define HR_HTTP_DEFAULT_TIMEOUT_MS 10000L
/* Connection (TCP + TLS) budget, capped by the request's own timeout. */
#define HR_HTTP_CONNECT_TIMEOUT_MS 5000L
/* Response bodies are kept up to this many bytes; the rest is discarded. */
#define HR_HTTP_BODY_MAX (64 * 1024)
/* Upper bound for max_concurrent. */
#define HR_HTTP_MAX_CONCURRENT 1000

struct hr_http;

/**
 * One request and, after hr_http_perform(), its result. Zero-initialize it
 * (a designated initializer does) before its first use.
 */
struct hr_http_request {
    /* ---- input, borrowed for the duration of hr_http_perform() ---- */
    const char *method;         /* "GET", "POST", "PUT", ...; NULL: GET, or
                                   POST when body is set */
    const char *url;            /* http:// or https:// only */
    const char *const *headers; /* "Name: value" lines, NULL-terminated, or
                                   NULL */
    const void *body;           /* sent as is, may be NULL */
    size_t body_len;
    long timeout_ms; /* whole request; <= 0: the default */
    bool once;       /* never sent twice: when a reused connection dies
                        before the answer, fail (transient) instead of
                        libcurl's silent resend on another connection (for
                        calls that cannot be made idempotent, pushes) */
    void *opaque;    /* the caller's, untouched */

    /* ---- results, written by hr_http_perform() ---- */
    long status;        /* HTTP status of the answer, 0 when none came */
    CURLcode curl_code; /* CURLE_OK when the whole answer came; a transfer
                           can also fail after its status line (a timeout
                           in the body): both are set then, and
                           hr_http_classify() says transient */
    char error[CURL_ERROR_SIZE]; /* curl's message, "" on success */
    int64_t retry_after_ms;      /* parsed Retry-After, -1 when absent */
    double elapsed_s;            /* from start to the end of the transfer */
    long http_version;           /* CURL_HTTP_VERSION_1_1, _2_0, or 0 */
    char *response_body;         /* NUL-terminated, NULL when empty; owned by
                                    the request: hr_http_request_release() */
    size_t response_len;         /* bytes in response_body */
    bool response_truncated;     /* the body exceeded HR_HTTP_BODY_MAX */
};

/**
 * A client. @ca_file: NULL, or a PEM bundle of extra trusted CAs
 * (HERALD_TLS_CA_FILE): its certificates are added to the system store,
 * which stays trusted (unlike CURLOPT_CAINFO, which would replace it). The
 * file is read once, here. @max_concurrent (1..HR_HTTP_MAX_CONCURRENT)
 * bounds the transfers in flight within hr_http_perform(); further requests
 * wait for a slot. Calls curl_global_init() once per process.
 * Returns NULL with @errstr set on failure (unreadable CA file, no
 * certificate in it, curl without TLS or HTTP/2, out of memory).
 * Not thread-safe: use one client per thread.
 */
struct hr_http *hr_http_new(const char *ca_file,
                            int max_concurrent,
                            char *errstr,
                            size_t errstr_size);

/**
 * At most @n connections per host (0: no limit, the default). For HTTP/2
 * providers that are spoken to over one multiplexed connection: when that
 * connection goes away, the transfers waiting for it queue for one new
 * connection instead of each opening its own.
 */
void hr_http_limit_host_connections(struct hr_http *http, int n);

/**
 * Run all @n requests to completion, at most max_concurrent at a time, and
 * fill in their results: each ends with a status (any HTTP response,
 * curl_code CURLE_OK) or with a curl_code and error (no response: timeout,
 * refused, TLS failure, invalid request...). Any previous response_body of
 * a request is freed first. Returns 0 once all are done, or -1 with every
 * unfinished request marked failed when the multi handle itself breaks;
 * per-request failures do not make it fail. Blocks for at most about the
 * largest timeout_ms (requests queued for a slot start their clock when
 * they start).
 */
int hr_http_perform(struct hr_http *http,
                    struct hr_http_request *reqs,
                    size_t n);

/**
 * Failure class of a finished request (SPEC section 7): -1 for a 2xx
 * status; otherwise an enum hr_err_class: no response (timeout, connection
 * or TLS failure) is HR_ERR_TRANSIENT, statuses follow
 * hr_retry_classify_http(), and 1xx / 3xx (redirects are not followed, so
 * nothing was delivered) are HR_ERR_PERMANENT.
 */
int hr_http_classify(const struct hr_http_request *r);

/** Free @r's response body and reset its results. */
void hr_http_request_release(struct hr_http_request *r);

/**
 * Copy @url into @buf (@size bytes, always NUL-terminated, truncated if
 * needed) without userinfo, query string or fragment, for logs:
 * "https://u:p@h/a?t=1#x" becomes "https://h/a". Returns @buf.
 */
const char *hr_http_url_redact(const char *url, char *buf, size_t size);

/** Free @http, closing its connections. NULL is a no-op. */
void hr_http_free(struct hr_http *http);

#endif
