/*
 * How emails leave: SMTP with libcurl (smtp:// with STARTTLS when offered
 * or required, smtps://, AUTH), or Amazon SES v2 SendEmail with the raw
 * message, signed by libcurl's CURLOPT_AWS_SIGV4 (common/cloud/hr_aws.h).
 * One multi handle; up to HERALD_EMAIL_CONCURRENCY transfers at a time,
 * each easy handle reused so that its connection is (SMTP sends QUIT only
 * when the handle is freed).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "email_state.h"
#include "hr_arena.h"
#include "hr_aws.h"
#include "hr_base64.h"
#include "hr_http.h"
#include "hr_log.h"
#include "hr_retry.h"
#include "hr_time.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

struct conn {
    CURL *easy;
    struct curl_slist *list; /* SMTP recipients, or SES headers */
    struct email_out *out;
    size_t pos; /* SMTP: bytes of the message read so far */
    char *body; /* SES: the request */
    struct hr_buf resp;
    char errbuf[CURL_ERROR_SIZE];
};

struct email_transport {
    bool ses;
    CURLM *multi;
    struct conn *conns;
    int nconns;
    long timeout_ms;
    const struct hr_tls *tls;
    /* SMTP */
    char *url;
    const char *user, *password;
    bool require_tls;
    /* SES */
    struct hr_aws *aws;
    char ses_url[600];
};

static size_t smtp_read(char *buf, size_t size, size_t nitems, void *opaque)
{
    struct conn *c = opaque;
    size_t left = c->out->raw_len - c->pos;
    size_t n = size * nitems < left ? size * nitems : left;

    memcpy(buf, c->out->raw + c->pos, n);
    c->pos += n;
    return n;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct conn *c = opaque;

    /* Keep what fits; an error answer is short. */
    if (hr_buf_append(&c->resp, data, size * nmemb, 64 * 1024))
        return size * nmemb;
    return size * nmemb;
}

struct email_transport *email_transport_new(const struct hr_conf *cfg,
                                            const struct hr_tls *tls,
                                            int concurrency,
                                            long timeout_ms,
                                            char *errstr,
                                            size_t errstr_size)
{
    struct email_transport *t = calloc(1, sizeof(*t));

    if (!t) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    t->ses = !strcmp(hr_conf_str(cfg, "HERALD_EMAIL_TRANSPORT"), "ses");
    t->timeout_ms = timeout_ms;
    t->tls = tls;
    if (t->ses) {
        const char *region =
            hr_aws_region_of(cfg, hr_conf_str(cfg, "HERALD_SES_REGION"));
        const char *ep = hr_conf_str(cfg, "HERALD_SES_ENDPOINT");
        char def[200];
        size_t len;

        t->aws =
            region ? hr_aws_new(cfg, region, tls, errstr, errstr_size) : NULL;
        if (!t->aws) {
            if (!region)
                snprintf(errstr, errstr_size, "no SES region");
            email_transport_free(t);
            return NULL;
        }
        snprintf(def, sizeof(def), "https://email.%s.amazonaws.com", region);
        if (!ep)
            ep = hr_aws_endpoint(cfg, "SESV2", def, def, sizeof(def));
        len = strlen(ep);
        while (len && ep[len - 1] == '/')
            len--;
        snprintf(t->ses_url, sizeof(t->ses_url),
                 "%.*s/v2/email/outbound-emails", (int)len, ep);
    } else {
        t->url = strdup(hr_conf_str(cfg, "HERALD_SMTP_URL"));
        t->user = hr_conf_str(cfg, "HERALD_SMTP_USER");
        t->password = hr_conf_str(cfg, "HERALD_SMTP_PASSWORD");
        t->require_tls = hr_conf_bool(cfg, "HERALD_SMTP_REQUIRE_TLS");
    }
    t->multi = curl_multi_init();
    t->nconns = concurrency;
    t->conns = calloc((size_t)concurrency, sizeof(*t->conns));
    if (!t->multi || !t->conns || (!t->ses && !t->url)) {
        snprintf(errstr, errstr_size, "out of memory");
        email_transport_free(t);
        return NULL;
    }
    curl_multi_setopt(t->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long)concurrency);
    for (int i = 0; i < concurrency; i++) {
        t->conns[i].easy = curl_easy_init();
        if (!t->conns[i].easy) {
            snprintf(errstr, errstr_size, "out of memory");
            email_transport_free(t);
            return NULL;
        }
    }
    return t;
}

void email_transport_free(struct email_transport *t)
{
    if (!t)
        return;
    for (int i = 0; t->conns && i < t->nconns; i++) {
        if (t->conns[i].easy)
            curl_easy_cleanup(t->conns[i].easy);
        curl_slist_free_all(t->conns[i].list);
        free(t->conns[i].body);
        hr_buf_release(&t->conns[i].resp, 0);
    }
    free(t->conns);
    if (t->multi)
        curl_multi_cleanup(t->multi);
    hr_aws_free(t->aws);
    free(t->url);
    free(t);
}

const char *email_transport_name(const struct email_transport *t)
{
    return t->ses ? "ses" : "smtp";
}

const char *email_transport_destination(const struct email_transport *t)
{
    return t->ses ? "email:ses" : "email:smtp";
}

static int setup_common(struct email_transport *t, struct conn *c)
{
    CURL *e = c->easy;

    curl_easy_reset(e);
    c->errbuf[0] = '\0';
    hr_buf_clear(&c->resp);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     t->timeout_ms < HR_HTTP_CONNECT_TIMEOUT_MS
                         ? t->timeout_ms
                         : HR_HTTP_CONNECT_TIMEOUT_MS);
    return hr_tls_apply(t->tls, e) == CURLE_OK ? 0 : -1;
}

static int setup_smtp(struct email_transport *t, struct conn *c)
{
    CURL *e = c->easy;
    char addr[300];

    if (setup_common(t, c))
        return -1;
    curl_slist_free_all(c->list);
    snprintf(addr, sizeof(addr), "<%s>", c->out->to);
    c->list = curl_slist_append(NULL, addr);
    snprintf(addr, sizeof(addr), "<%s>", c->out->from);
    c->pos = 0;
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, addr);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, c->list);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, smtp_read);
    curl_easy_setopt(e, CURLOPT_READDATA, c);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->out->raw_len);
    if (!strncmp(t->url, "smtp://", 7))
        curl_easy_setopt(e, CURLOPT_USE_SSL,
                         t->require_tls ? (long)CURLUSESSL_ALL
                                        : (long)CURLUSESSL_TRY);
    if (t->user) {
        curl_easy_setopt(e, CURLOPT_USERNAME, t->user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, t->password);
    }
    return c->list ? 0 : -1;
}

static int setup_ses(struct email_transport *t, struct conn *c)
{
    CURL *e = c->easy;
    size_t b64len;
    char *b64;
    json_t *req;

    if (setup_common(t, c))
        return -1;
    b64 = hr_base64_encode(c->out->raw, c->out->raw_len, &b64len);
    if (!b64)
        return -1;
    req = json_pack("{s:s, s:{s:[s]}, s:{s:{s:s}}}", "FromEmailAddress",
                    c->out->from, "Destination", "ToAddresses", c->out->to,
                    "Content", "Raw", "Data", b64);
    free(b64);
    free(c->body);
    c->body = req ? hr_arena_json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!c->body)
        return -1;
    curl_slist_free_all(c->list);
    c->list = curl_slist_append(NULL, "Content-Type: application/json");
    if (!c->list || hr_aws_sign(t->aws, e, "ses", &c->list))
        return -1;
    curl_easy_setopt(e, CURLOPT_URL, t->ses_url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->list);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(c->body));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    return 0;
}

static void result(struct email_out *o, int cls, const char *fmt, ...)
    HR_PRINTF(3, 4);

static void result(struct email_out *o, int cls, const char *fmt, ...)
{
    va_list ap;

    o->result = cls;
    va_start(ap, fmt);
    vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
    va_end(ap);
}

/* SMTP: the reply code says (SPEC section 7: 4xx transient, 5xx on a
 * recipient permanent, 535 and its kin auth). */
static void classify_smtp(struct conn *c, CURLcode rc)
{
    struct email_out *o = c->out;
    long code = 0;

    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
    o->code = code;
    if (rc == CURLE_OK) {
        result(o, HR_CIRCUIT_SUCCESS, "sent");
    } else if (rc == CURLE_LOGIN_DENIED || code == 530 || code == 534 ||
               code == 535 || code == 538) {
        result(o, HR_ERR_AUTH, "smtp %ld: authentication refused", code);
    } else if (rc == CURLE_USE_SSL_FAILED) {
        result(o, HR_ERR_AUTH,
               "smtp: the server offers no STARTTLS and "
               "HERALD_SMTP_REQUIRE_TLS is on");
    } else if (code >= 400 && code < 500) {
        result(o, HR_ERR_TRANSIENT, "smtp %ld: %s", code, c->errbuf);
    } else if (code >= 500 && code < 600) {
        result(o, HR_ERR_PERMANENT, "smtp %ld: %s", code, c->errbuf);
    } else {
        result(o, HR_ERR_TRANSIENT, "smtp: %s",
               c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    }
}

/* SES: the status and x-amzn-ErrorType say (research/aws.md). */
static void classify_ses(struct email_transport *t, struct conn *c, CURLcode rc)
{
    static const char *const auth[] = {"UnrecognizedClientException",
                                       "SignatureDoesNotMatch",
                                       "AccessDeniedException",
                                       "InvalidClientTokenId",
                                       "AccountSuspendedException",
                                       "SendingPausedException",
                                       "MissingAuthenticationTokenException"};
    static const char *const throttled[] = {
        "TooManyRequestsException", "LimitExceededException",
        "ThrottlingException", "Throttling"};
    struct email_out *o = c->out;
    struct curl_header *h = NULL;
    char type[128] = "";
    long status = 0;

    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    o->code = status;
    if (rc != CURLE_OK || !status) {
        result(o, HR_ERR_TRANSIENT, "ses: %s",
               c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
        return;
    }
    if (status / 100 == 2) {
        result(o, HR_CIRCUIT_SUCCESS, "sent");
        return;
    }
    if (curl_easy_header(c->easy, "x-amzn-ErrorType", 0, CURLH_HEADER, -1,
                         &h) == CURLHE_OK &&
        h->value)
        snprintf(type, sizeof(type), "%.*s", (int)strcspn(h->value, ":"),
                 h->value);
    if (curl_easy_header(c->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) ==
            CURLHE_OK &&
        h->value)
        o->retry_after_ms =
            hr_retry_parse_retry_after(h->value, hr_time_now_ms());
    for (size_t i = 0; i < sizeof(throttled) / sizeof(throttled[0]); i++) {
        if (!strcmp(type, throttled[i]))
            status = 429;
    }
    for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++) {
        if (!strcmp(type, auth[i]))
            status = 403;
    }
    if (!strcmp(type, "ExpiredTokenException") ||
        !strcmp(type, "ExpiredToken")) {
        hr_aws_expire(t->aws);
        result(o, HR_ERR_TRANSIENT, "ses %ld %s: credentials expired", o->code,
               type);
        return;
    }
    result(o, hr_retry_classify_http(status), "ses %ld %s: %.120s", o->code,
           type[0] ? type : "error", c->resp.p ? c->resp.p : "");
}

void email_transport_send(struct email_transport *t,
                          struct email_out *outs,
                          size_t n,
                          email_sent_fn *cb,
                          void *opaque)
{
    size_t next = 0, done = 0;
    int active = 0, running;
    char errstr[256];

    if (t->ses && hr_aws_refresh(t->aws, errstr, sizeof(errstr))) {
        for (size_t i = 0; i < n; i++) {
            result(&outs[i], HR_ERR_TRANSIENT, "ses: no credentials: %s",
                   errstr);
            if (cb)
                cb(opaque, i);
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        outs[i].retry_after_ms = -1;
    while (done < n) {
        CURLMsg *m;
        int left;

        for (int k = 0; k < t->nconns && next < n; k++) {
            struct conn *c = &t->conns[k];

            if (c->out)
                continue;
            c->out = &outs[next++];
            c->out->elapsed_s = hr_time_mono_s();
            if ((t->ses ? setup_ses(t, c) : setup_smtp(t, c)) ||
                curl_multi_add_handle(t->multi, c->easy) != CURLM_OK) {
                result(c->out, HR_ERR_TRANSIENT, "cannot start the transfer");
                if (cb)
                    cb(opaque, (size_t)(c->out - outs));
                c->out = NULL;
                done++;
                continue;
            }
            active++;
        }
        curl_multi_perform(t->multi, &running);
        while ((m = curl_multi_info_read(t->multi, &left))) {
            struct conn *c = NULL;

            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            if (t->ses)
                classify_ses(t, c, m->data.result);
            else
                classify_smtp(c, m->data.result);
            c->out->elapsed_s = hr_time_mono_s() - c->out->elapsed_s;
            if (cb)
                cb(opaque, (size_t)(c->out - outs));
            curl_multi_remove_handle(t->multi, c->easy);
            c->out = NULL;
            active--;
            done++;
        }
        if (active > 0 && done < n)
            curl_multi_poll(t->multi, NULL, 0, 100, NULL);
    }
}
