/*
 * The SQS client: one libcurl multi handle, one easy handle per call
 * (kept on a free list and reset for the next, so connections and DNS
 * answers stay in the multi handle's cache).
 */
#include "hr_sqs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "hr_arena.h"
#include "hr_aws.h"
#include "hr_buf.h"
#include "hr_list.h"
#include "hr_log.h"
#include "hr_retry.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* A receive of ten 1 MiB messages, with room for the JSON around them. */
#define SQS_BODY_MAX (12 * 1024 * 1024)

struct call {
    struct hr_sqs *sqs;
    CURL *easy;
    struct curl_slist *hdrs;
    char *req; /* the request body */
    size_t req_len;
    struct hr_buf resp; /* the answer's body */
    bool resp_too_large;
    char query_error[128]; /* x-amzn-query-error */
    char action[48];
    char curl_err[CURL_ERROR_SIZE];
    hr_sqs_done_fn *done;
    void *opaque;
    struct hr_list_node node; /* in flight */
    struct call *next_spare;  /* on the free list */
};

struct hr_sqs {
    struct hr_aws *aws;
    const struct hr_tls *tls;
    CURLM *multi;
    char url[512];
    struct hr_list live; /* in flight */
    struct call *spare;
};

struct hr_sqs *hr_sqs_new(struct hr_aws *aws,
                          const struct hr_tls *tls,
                          const char *endpoint,
                          char *errstr,
                          size_t errstr_size)
{
    struct hr_sqs *sqs = calloc(1, sizeof(*sqs));

    if (!sqs || !(sqs->multi = curl_multi_init())) {
        snprintf(errstr, errstr_size, "cannot create sqs client");
        free(sqs);
        return NULL;
    }
    sqs->aws = aws;
    sqs->tls = tls;
    snprintf(sqs->url, sizeof(sqs->url), "%s/", endpoint);
    return sqs;
}

static size_t resp_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct call *c = userdata;

    if (hr_buf_append(&c->resp, ptr, size * nmemb, SQS_BODY_MAX)) {
        c->resp_too_large = true;
        return 0;
    }
    return size * nmemb;
}

static size_t header_seen(char *line, size_t size, size_t nitems, void *ud)
{
    static const char name[] = "x-amzn-query-error:";
    struct call *c = ud;
    size_t n = size * nitems, len;

    if (n > sizeof(name) - 1 && !strncasecmp(line, name, sizeof(name) - 1)) {
        const char *v = line + sizeof(name) - 1;

        while (*v == ' ')
            v++;
        len = strcspn(v, "\r\n");
        snprintf(c->query_error, sizeof(c->query_error), "%.*s", (int)len, v);
    }
    return n;
}

static struct call *call_take(struct hr_sqs *sqs)
{
    struct call *c = sqs->spare;

    if (c) {
        sqs->spare = c->next_spare;
        curl_easy_reset(c->easy);
    } else {
        c = calloc(1, sizeof(*c));
        HR_ASSERT(c);
        c->easy = curl_easy_init();
        HR_ASSERT(c->easy);
    }
    c->sqs = sqs;
    hr_buf_clear(&c->resp);
    c->resp_too_large = false;
    c->query_error[0] = c->curl_err[0] = '\0';
    return c;
}

/* Back to the free list; its request and header list are freed. */
static void call_put(struct hr_sqs *sqs, struct call *c)
{
    curl_slist_free_all(c->hdrs);
    c->hdrs = NULL;
    free(c->req);
    c->req = NULL;
    c->next_spare = sqs->spare;
    sqs->spare = c;
}

static int setup(struct hr_sqs *sqs, struct call *c, long timeout_ms)
{
    char target[96];
    struct curl_slist *l;

    snprintf(target, sizeof(target), "X-Amz-Target: AmazonSQS.%s", c->action);
    l = curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.0");
    if (l)
        c->hdrs = l;
    l = l ? curl_slist_append(c->hdrs, target) : NULL;
    if (l)
        c->hdrs = l;
    /* Error shapes keep their legacy names (research/aws.md §1.1). */
    l = l ? curl_slist_append(c->hdrs, "x-amzn-query-mode: true") : NULL;
    if (!l)
        return -1;
    c->hdrs = l;
    if (hr_aws_sign(sqs->aws, c->easy, "sqs", &c->hdrs))
        return -1;
    if (curl_easy_setopt(c->easy, CURLOPT_URL, sqs->url) ||
        curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https") ||
        curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION,
                         (long)CURL_HTTP_VERSION_1_1) ||
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->hdrs) ||
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->req) ||
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)c->req_len) ||
        curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, timeout_ms) ||
        curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS,
                         timeout_ms < 5000 ? timeout_ms : 5000L) ||
        curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L) ||
        curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPALIVE, 1L) ||
        curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->curl_err) ||
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, resp_write) ||
        curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c) ||
        curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, header_seen) ||
        curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c) ||
        curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c) ||
        curl_easy_setopt(c->easy, CURLOPT_USERAGENT,
                         "herald/" HERALD_VERSION) ||
        hr_tls_apply(sqs->tls, c->easy))
        return -1;
    return 0;
}

int hr_sqs_call(struct hr_sqs *sqs,
                const char *action,
                json_t *request,
                long timeout_ms,
                hr_sqs_done_fn *done,
                void *opaque,
                char *errstr,
                size_t errstr_size)
{
    struct call *c = call_take(sqs);

    snprintf(c->action, sizeof(c->action), "%s", action);
    c->done = done;
    c->opaque = opaque;
    c->req = hr_arena_json_dumps(request, JSON_COMPACT);
    json_decref(request);
    if (!c->req) {
        snprintf(errstr, errstr_size, "cannot encode %s request", action);
        call_put(sqs, c);
        return -1;
    }
    c->req_len = strlen(c->req);
    if (setup(sqs, c, timeout_ms)) {
        snprintf(errstr, errstr_size, "cannot set up %s: %s", action,
                 "no aws credentials");
        call_put(sqs, c);
        return -1;
    }
    if (curl_multi_add_handle(sqs->multi, c->easy) != CURLM_OK) {
        snprintf(errstr, errstr_size, "cannot start %s", action);
        call_put(sqs, c);
        return -1;
    }
    hr_list_push(&sqs->live, &c->node);
    return 0;
}

static bool code_in(const char *code, const char *const *list)
{
    for (; *list; list++) {
        if (!strcmp(code, *list))
            return true;
    }
    return false;
}

/* research/aws.md §1.4: throttling and credentials by code. */
static int classify(long status, const char *code)
{
    static const char *const throttled[] = {"RequestThrottled",
                                            "ThrottlingException",
                                            "Throttling",
                                            "OverLimit",
                                            "KmsThrottled",
                                            "KMS.ThrottlingException",
                                            "TooManyRequestsException",
                                            "SlowDown",
                                            NULL};
    static const char *const auth[] = {"InvalidClientTokenId",
                                       "SignatureDoesNotMatch",
                                       "AccessDenied",
                                       "AccessDeniedException",
                                       "ExpiredToken",
                                       "ExpiredTokenException",
                                       "MissingAuthenticationToken",
                                       "IncompleteSignature",
                                       "InvalidSecurity",
                                       "UnrecognizedClientException",
                                       "RequestExpired",
                                       "AuthFailure",
                                       NULL};

    if (code_in(code, throttled))
        return HR_ERR_THROTTLED;
    if (status >= 500 || !strcmp(code, "InternalFailure") ||
        !strcmp(code, "ServiceUnavailable"))
        return HR_ERR_TRANSIENT;
    if (code_in(code, auth) || status == 401 || status == 403)
        return HR_ERR_AUTH;
    return HR_ERR_PERMANENT;
}

static void finish(struct hr_sqs *sqs, struct call *c, CURLcode res)
{
    struct hr_sqs_reply reply = {.code = "", .message = "", .cls = -1};
    char code[128] = "", msg[256] = "";
    json_t *body = NULL;

    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &reply.status);
    if (res != CURLE_OK) {
        snprintf(msg, sizeof(msg), "%s",
                 c->resp_too_large ? "answer too large"
                 : c->curl_err[0]  ? c->curl_err
                                   : curl_easy_strerror(res));
        reply.cls = HR_ERR_TRANSIENT;
    } else {
        body = c->resp.len ? json_loadb(c->resp.p, c->resp.len, 0, NULL)
                           : json_object();
        if (reply.status == 200 && !json_is_object(body)) {
            snprintf(msg, sizeof(msg), "%s answer is not JSON", c->action);
            reply.cls = HR_ERR_TRANSIENT;
        } else if (reply.status != 200) {
            const char *type =
                json_string_value(json_object_get(body, "__type"));
            const char *m = json_string_value(json_object_get(body, "message"));

            if (!m)
                m = json_string_value(json_object_get(body, "Message"));
            if (type) {
                const char *hash = strrchr(type, '#');

                snprintf(code, sizeof(code), "%.*s",
                         (int)strcspn(hash ? hash + 1 : type, ":"),
                         hash ? hash + 1 : type);
            }
            /* the legacy name, when SQS gives one ("Code;Sender") */
            if (c->query_error[0] && strchr(c->query_error, ';') &&
                c->query_error[0] != ';') {
                const char *legacy = c->query_error;
                size_t len = strcspn(legacy, ";");

                if (!strncmp(legacy, "AWS.SimpleQueueService.", 23) &&
                    code[0]) {
                    /* keep the shape name; the legacy one adds nothing */
                } else {
                    snprintf(code, sizeof(code), "%.*s", (int)len, legacy);
                }
            }
            snprintf(msg, sizeof(msg), "%s", m ? m : "");
            reply.cls = classify(reply.status, code);
        }
    }
    reply.code = code;
    reply.message = msg;
    reply.body = reply.cls < 0 ? body : NULL;
    c->done(c->opaque, &reply);
    json_decref(body);
    call_put(sqs, c);
}

/* Finish every transfer that is done; returns how many. */
static int reap(struct hr_sqs *sqs)
{
    int finished = 0, running = 0, left;
    CURLMsg *m;

    curl_multi_perform(sqs->multi, &running);
    while ((m = curl_multi_info_read(sqs->multi, &left))) {
        struct call *c = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        curl_multi_remove_handle(sqs->multi, m->easy_handle);
        hr_list_unlink(&sqs->live, &c->node);
        finish(sqs, c, m->data.result);
        finished++;
    }
    return finished;
}

int hr_sqs_run(struct hr_sqs *sqs, int wait_ms)
{
    int finished = reap(sqs);

    if (finished || wait_ms <= 0 || !sqs->live.n)
        return finished;
    /* one wait (curl wakes earlier for its own timers), then report what
     * it brought */
    curl_multi_poll(sqs->multi, NULL, 0, wait_ms, NULL);
    return reap(sqs);
}

size_t hr_sqs_in_flight(const struct hr_sqs *sqs)
{
    return sqs->live.n;
}

size_t hr_sqs_abort(struct hr_sqs *sqs, const char *action)
{
    size_t n = 0;

    for (struct hr_list_node *node = sqs->live.head, *next; node; node = next) {
        struct call *c = HR_LIST_ENTRY(node, struct call, node);

        next = node->next;
        if (action && strcmp(c->action, action))
            continue;
        curl_multi_remove_handle(sqs->multi, c->easy);
        hr_list_unlink(&sqs->live, &c->node);
        call_put(sqs, c);
        n++;
    }
    return n;
}

void hr_sqs_free(struct hr_sqs *sqs)
{
    if (!sqs)
        return;
    hr_sqs_abort(sqs, NULL);
    while (sqs->spare) {
        struct call *c = sqs->spare;

        sqs->spare = c->next_spare;
        curl_easy_cleanup(c->easy);
        hr_buf_release(&c->resp, 0);
        free(c);
    }
    curl_multi_cleanup(sqs->multi);
    free(sqs);
}

/* --- queue URLs ---------------------------------------------------------- */

const char *hr_sqs_queue_name(const char *queue_url, char *buf, size_t size)
{
    const char *end = queue_url + strcspn(queue_url, "?#");
    const char *scheme = strstr(queue_url, "://");
    const char *slash;

    while (end > queue_url && end[-1] == '/')
        end--;
    slash = end;
    while (slash > queue_url && slash[-1] != '/')
        slash--;
    /* The last segment of a path: after the host, not in it. */
    if (slash == end || (size_t)(end - slash) >= size || !scheme ||
        scheme + 3 >= slash)
        return NULL;
    snprintf(buf, size, "%.*s", (int)(end - slash), slash);
    return buf;
}

const char *hr_sqs_queue_region(const char *queue_url, char *buf, size_t size)
{
    const char *host = strstr(queue_url, "://");
    size_t hlen, len;
    const char *r;

    if (!host)
        return NULL;
    host += 3;
    hlen = strcspn(host, ":/");
    if (hlen > 4 && !strncmp(host, "sqs.", 4)) {
        r = host + 4;
        len = strcspn(r, ".:/");
        if (r + len >= host + hlen) /* "sqs.<host>" with no region label */
            return NULL;
    } else {
        /* legacy "<region>.queue.amazonaws.com" */
        len = strcspn(host, ".:/");
        if (strncmp(host + len, ".queue.", 7))
            return NULL;
        r = host;
    }
    /* a region name ("us-east-1") has a dash and ends in a digit */
    if (!len || len >= size || !memchr(r, '-', len) || r[len - 1] < '0' ||
        r[len - 1] > '9')
        return NULL;
    snprintf(buf, size, "%.*s", (int)len, r);
    return buf;
}

bool hr_sqs_queue_is_fifo(const char *queue_url)
{
    char name[128];

    return hr_sqs_queue_name(queue_url, name, sizeof(name)) &&
           strlen(name) > 5 && !strcmp(name + strlen(name) - 5, ".fifo");
}
