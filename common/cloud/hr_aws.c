#include "hr_aws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_buf.h"
#include "hr_file.h"
#include "hr_log.h"
#include "hr_retry.h"
#include "hr_time.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* STS answers and web identity tokens are small; bound what is read. */
#define AWS_BODY_MAX      (256 * 1024)
#define AWS_TOKEN_MAX     (64 * 1024)
#define AWS_STS_TIMEOUT   5000L
#define AWS_REFRESH_AHEAD (10 * 60 * 1000)
#define AWS_RETRY_MAX_MS  60000

const struct hr_conf_spec hr_aws_conf[] = {
    HR_CONF_STR("AWS_REGION", NULL, 0, "AWS region (SQS, SES)"),
    HR_CONF_STR("AWS_DEFAULT_REGION",
                NULL,
                0,
                "AWS region, when AWS_REGION "
                "is unset"),
    HR_CONF_STR("AWS_ACCESS_KEY_ID",
                NULL,
                HR_CONF_SECRET,
                "static AWS credentials: the key id"),
    HR_CONF_STR("AWS_SECRET_ACCESS_KEY",
                NULL,
                HR_CONF_SECRET,
                "static AWS credentials: the secret"),
    HR_CONF_STR("AWS_SESSION_TOKEN",
                NULL,
                HR_CONF_SECRET,
                "static AWS credentials: the session token, if temporary"),
    HR_CONF_STR(
        "AWS_ROLE_ARN", NULL, 0, "web identity (EKS IRSA): the role to assume"),
    HR_CONF_PATH("AWS_WEB_IDENTITY_TOKEN_FILE",
                 NULL,
                 0,
                 "web identity (EKS IRSA): the projected token file"),
    HR_CONF_STR("AWS_ROLE_SESSION_NAME",
                NULL,
                0,
                "web identity: session name (default herald-<epoch>)"),
    HR_CONF_URL("AWS_ENDPOINT_URL",
                NULL,
                0,
                "endpoint for every AWS service "
                "(emulators)"),
    HR_CONF_URL("AWS_ENDPOINT_URL_SQS", NULL, 0, "SQS endpoint (emulators)"),
    HR_CONF_URL(
        "AWS_ENDPOINT_URL_SESV2", NULL, 0, "SES v2 endpoint (emulators)"),
    HR_CONF_URL("AWS_ENDPOINT_URL_STS",
                NULL,
                0,
                "STS endpoint for web identity (default "
                "https://sts.<region>.amazonaws.com)"),
    HR_CONF_END,
};

struct hr_aws {
    char region[64];
    const struct hr_tls *tls;
    /* current credentials; key_id[0] == '\0': none */
    char key_id[256];
    char secret[256];
    char *token;           /* session token, or NULL */
    int64_t expires_ms;    /* wall clock; 0: never (static) */
    int64_t refresh_at_ms; /* wall clock; when to fetch again */
    /* web identity */
    char *role_arn;
    char *token_file;
    char *session_name;
    char sts_url[512];
    unsigned failures; /* exchanges failed in a row */
    uint64_t fetches;
};

const char *hr_aws_region_of(const struct hr_conf *cfg, const char *hint)
{
    const char *r = hr_conf_str(cfg, "AWS_REGION");

    if (!r || !*r)
        r = hr_conf_str(cfg, "AWS_DEFAULT_REGION");
    if (!r || !*r)
        r = hint && *hint ? hint : NULL;
    return r;
}

static bool has_static(const struct hr_conf *cfg)
{
    return hr_conf_str(cfg, "AWS_ACCESS_KEY_ID") ||
           hr_conf_str(cfg, "AWS_SECRET_ACCESS_KEY");
}

static bool has_web_identity(const struct hr_conf *cfg)
{
    return hr_conf_str(cfg, "AWS_ROLE_ARN") ||
           hr_conf_str(cfg, "AWS_WEB_IDENTITY_TOKEN_FILE");
}

void hr_aws_validate(struct hr_conf *cfg, const char *hint, const char *what)
{
    const char *region = hr_aws_region_of(cfg, hint);

    if (!region)
        hr_conf_add_error(cfg,
                          "AWS_REGION: required with %s (the URL does "
                          "not name a region)",
                          what);
    else if (strlen(region) >= 64 ||
             strspn(region, "abcdefghijklmnopqrstuvwx"
                            "yz0123456789-") != strlen(region))
        hr_conf_add_error(cfg, "AWS_REGION: '%s' is not a region name", region);
    if (has_static(cfg)) {
        if (!hr_conf_str(cfg, "AWS_ACCESS_KEY_ID"))
            hr_conf_add_error(cfg, "AWS_ACCESS_KEY_ID: required with "
                                   "AWS_SECRET_ACCESS_KEY");
        if (!hr_conf_str(cfg, "AWS_SECRET_ACCESS_KEY"))
            hr_conf_add_error(cfg, "AWS_SECRET_ACCESS_KEY: required with "
                                   "AWS_ACCESS_KEY_ID");
    } else if (has_web_identity(cfg)) {
        if (!hr_conf_str(cfg, "AWS_ROLE_ARN"))
            hr_conf_add_error(cfg, "AWS_ROLE_ARN: required with "
                                   "AWS_WEB_IDENTITY_TOKEN_FILE");
        if (!hr_conf_str(cfg, "AWS_WEB_IDENTITY_TOKEN_FILE"))
            hr_conf_add_error(cfg, "AWS_WEB_IDENTITY_TOKEN_FILE: required "
                                   "with AWS_ROLE_ARN");
    } else {
        hr_conf_add_error(cfg,
                          "AWS credentials: %s needs AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and "
                          "AWS_WEB_IDENTITY_TOKEN_FILE (EKS IRSA)",
                          what);
    }
}

const char *hr_aws_endpoint(const struct hr_conf *cfg,
                            const char *service,
                            const char *fallback,
                            char *buf,
                            size_t size)
{
    char name[64];
    const char *url;
    size_t len;

    snprintf(name, sizeof(name), "AWS_ENDPOINT_URL_%s", service);
    url = hr_conf_str(cfg, name);
    if (!url)
        url = hr_conf_str(cfg, "AWS_ENDPOINT_URL");
    if (!url)
        url = fallback;
    snprintf(buf, size, "%s", url ? url : "");
    len = strlen(buf);
    while (len && buf[len - 1] == '/')
        buf[--len] = '\0';
    return buf;
}

static char *dup_or_null(const char *s)
{
    char *d = s ? strdup(s) : NULL;

    HR_ASSERT(!s || d);
    return d;
}

struct hr_aws *hr_aws_new(const struct hr_conf *cfg,
                          const char *region,
                          const struct hr_tls *tls,
                          char *errstr,
                          size_t errstr_size)
{
    struct hr_aws *aws;
    char fallback[128];

    if (!has_static(cfg) && !has_web_identity(cfg)) {
        snprintf(errstr, errstr_size, "no AWS credentials configured");
        return NULL;
    }
    aws = calloc(1, sizeof(*aws));
    HR_ASSERT(aws);
    snprintf(aws->region, sizeof(aws->region), "%s", region ? region : "");
    aws->tls = tls;
    if (has_static(cfg)) {
        snprintf(aws->key_id, sizeof(aws->key_id), "%s",
                 hr_conf_str(cfg, "AWS_ACCESS_KEY_ID"));
        snprintf(aws->secret, sizeof(aws->secret), "%s",
                 hr_conf_str(cfg, "AWS_SECRET_ACCESS_KEY"));
        if (hr_conf_str(cfg, "AWS_SESSION_TOKEN") &&
            *hr_conf_str(cfg, "AWS_SESSION_TOKEN"))
            aws->token = dup_or_null(hr_conf_str(cfg, "AWS_SESSION_TOKEN"));
        return aws;
    }
    aws->role_arn = dup_or_null(hr_conf_str(cfg, "AWS_ROLE_ARN"));
    aws->token_file =
        dup_or_null(hr_conf_str(cfg, "AWS_WEB_IDENTITY_TOKEN_FILE"));
    aws->session_name = dup_or_null(hr_conf_str(cfg, "AWS_ROLE_SESSION_NAME"));
    snprintf(fallback, sizeof(fallback), "https://sts.%s.amazonaws.com",
             aws->region);
    hr_aws_endpoint(cfg, "STS", fallback, aws->sts_url, sizeof(aws->sts_url));
    return aws;
}

struct hr_aws *hr_aws_new_static(const char *region,
                                 const char *key_id,
                                 const char *secret,
                                 const char *token)
{
    struct hr_aws *aws = calloc(1, sizeof(*aws));

    HR_ASSERT(aws);
    snprintf(aws->region, sizeof(aws->region), "%s", region);
    snprintf(aws->key_id, sizeof(aws->key_id), "%s", key_id);
    snprintf(aws->secret, sizeof(aws->secret), "%s", secret);
    aws->token = token && *token ? dup_or_null(token) : NULL;
    return aws;
}

void hr_aws_free(struct hr_aws *aws)
{
    if (!aws)
        return;
    free(aws->token);
    free(aws->role_arn);
    free(aws->token_file);
    free(aws->session_name);
    /* the secret does not outlive its owner in freed memory */
    memset(aws->secret, 0, sizeof(aws->secret));
    free(aws);
}

const char *hr_aws_region(const struct hr_aws *aws)
{
    return aws->region;
}

uint64_t hr_aws_fetches(const struct hr_aws *aws)
{
    return aws->fetches;
}

void hr_aws_expire(struct hr_aws *aws)
{
    if (aws->role_arn)
        aws->refresh_at_ms = 0;
}

/* --- XML --------------------------------------------------------------- */

const char *
hr_aws_xml_text(const char *xml, const char *tag, char *buf, size_t size)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'},
                {"&lt;", '<'},
                {"&gt;", '>'},
                {"&quot;", '"'},
                {"&apos;", '\''}};
    char open[80], close[80];
    const char *p, *end;
    size_t n = 0;

    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    p = xml ? strstr(xml, open) : NULL;
    if (!p || !size)
        return NULL;
    p += strlen(open);
    end = strstr(p, close);
    if (!end)
        return NULL;
    while (p < end) {
        char c = *p++;

        if (c == '&') {
            size_t i;

            for (i = 0; i < HR_ARRAY_SIZE(ents); i++) {
                size_t len = strlen(ents[i].ent);

                if (!strncmp(p - 1, ents[i].ent, len)) {
                    c = ents[i].c;
                    p += len - 1;
                    break;
                }
            }
        }
        if (n + 1 >= size)
            return NULL;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return buf;
}

/* --- STS AssumeRoleWithWebIdentity --------------------------------------- */

/* CURLOPT_WRITEFUNCTION: a bigger answer fails the transfer. */
static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return hr_buf_append(userdata, ptr, size * nmemb, AWS_BODY_MAX)
               ? 0
               : size * nmemb;
}

/* The token file's contents without trailing white space, malloc'd. */
static char *read_token(const char *path, char *errstr, size_t errstr_size)
{
    char err[1200];
    size_t len;
    char *buf = hr_file_read(path, AWS_TOKEN_MAX, &len, err, sizeof(err));

    if (!buf) {
        snprintf(errstr, errstr_size, "web identity token: %s", err);
        return NULL;
    }
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
                   buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    if (len < 4) {
        snprintf(errstr, errstr_size, "web identity token '%s' is empty", path);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Append "&name=<value, URL-encoded>" to @form. */
static int
form_add(CURL *easy, struct hr_buf *form, const char *name, const char *value)
{
    char *esc = curl_easy_escape(easy, value, 0);
    char head[64];
    int rc;

    if (!esc)
        return -1;
    snprintf(head, sizeof(head), "&%s=", name);
    rc = hr_buf_append(form, head, strlen(head), AWS_BODY_MAX) ||
         hr_buf_append(form, esc, strlen(esc), AWS_BODY_MAX);
    curl_free(esc);
    return rc ? -1 : 0;
}

/* Fill @form with the request; -1 with @errstr. */
static int sts_form(struct hr_aws *aws,
                    CURL *easy,
                    struct hr_buf *form,
                    char *errstr,
                    size_t errstr_size)
{
    static const char head[] =
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15";
    char session[80];
    char *token = read_token(aws->token_file, errstr, errstr_size);
    int rc;

    if (!token)
        return -1;
    if (aws->session_name)
        snprintf(session, sizeof(session), "%s", aws->session_name);
    else
        snprintf(session, sizeof(session), "herald-%lld",
                 (long long)(hr_time_now_ms() / 1000));
    rc = hr_buf_append(form, head, sizeof(head) - 1, AWS_BODY_MAX) ||
         form_add(easy, form, "RoleArn", aws->role_arn) ||
         form_add(easy, form, "RoleSessionName", session) ||
         form_add(easy, form, "WebIdentityToken", token);
    memset(token, 0, strlen(token));
    free(token);
    if (rc)
        snprintf(errstr, errstr_size, "cannot build the sts request");
    return rc ? -1 : 0;
}

/* Take the credentials of an STS answer; -1 with @errstr. */
static int sts_take(struct hr_aws *aws,
                    long status,
                    const char *xml,
                    char *errstr,
                    size_t errstr_size)
{
    char key_id[256], secret[256], expiration[64], code[128], msg[256];
    char *token = malloc(AWS_BODY_MAX);
    int64_t expires;

    HR_ASSERT(token);
    if (status != 200) {
        snprintf(errstr, errstr_size, "sts answered %ld: %s: %s", status,
                 hr_aws_xml_text(xml, "Code", code, sizeof(code))
                     ? code
                     : "no error code",
                 hr_aws_xml_text(xml, "Message", msg, sizeof(msg)) ? msg : "");
        free(token);
        return -1;
    }
    if (!hr_aws_xml_text(xml, "AccessKeyId", key_id, sizeof(key_id)) ||
        !hr_aws_xml_text(xml, "SecretAccessKey", secret, sizeof(secret)) ||
        !hr_aws_xml_text(xml, "SessionToken", token, AWS_BODY_MAX) ||
        !hr_aws_xml_text(xml, "Expiration", expiration, sizeof(expiration)) ||
        hr_time_parse_rfc3339(expiration, &expires)) {
        snprintf(errstr, errstr_size,
                 "sts answer lacks AccessKeyId, SecretAccessKey, SessionToken "
                 "or a valid Expiration");
        free(token);
        return -1;
    }
    memcpy(aws->key_id, key_id, sizeof(key_id));
    memcpy(aws->secret, secret, sizeof(secret));
    memset(secret, 0, sizeof(secret));
    free(aws->token);
    aws->token = token;
    aws->expires_ms = expires;
    return 0;
}

/* One exchange at STS; -1 with @errstr. */
static int sts_fetch(struct hr_aws *aws, char *errstr, size_t errstr_size)
{
    CURL *easy = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct hr_buf form = {0}, answer = {0};
    char url[600], curl_err[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode res;
    int rc = -1;

    if (!easy) {
        snprintf(errstr, errstr_size, "cannot create a curl handle");
        return -1;
    }
    if (sts_form(aws, easy, &form, errstr, errstr_size))
        goto out;
    snprintf(url, sizeof(url), "%s/", aws->sts_url);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/"
                                   "x-www-form-urlencoded; charset=utf-8");
    /* AssumeRoleWithWebIdentity is unsigned: no CURLOPT_AWS_SIGV4. */
    if (!hdrs || curl_easy_setopt(easy, CURLOPT_URL, url) ||
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") ||
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs) ||
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, form.p) ||
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)form.len) ||
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, AWS_STS_TIMEOUT) ||
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) ||
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, curl_err) ||
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, body_write) ||
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, &answer) ||
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "herald/" HERALD_VERSION) ||
        hr_tls_apply(aws->tls, easy)) {
        snprintf(errstr, errstr_size, "cannot set up the sts request");
        goto out;
    }
    res = curl_easy_perform(easy);
    if (res != CURLE_OK) {
        snprintf(errstr, errstr_size, "sts unreachable: %s",
                 curl_err[0] ? curl_err : curl_easy_strerror(res));
        goto out;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    rc = sts_take(aws, status, answer.p ? answer.p : "", errstr, errstr_size);
out:
    hr_buf_release(&form, 1); /* it holds the identity token */
    hr_buf_release(&answer, 1);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(easy);
    return rc;
}

int hr_aws_refresh(struct hr_aws *aws, char *errstr, size_t errstr_size)
{
    int64_t now = hr_time_now_ms(), lifetime, ahead;
    char err[512];
    bool usable;

    if (!aws->role_arn)
        return 0; /* static */
    usable = aws->key_id[0] && now < aws->expires_ms;
    if (usable && now < aws->refresh_at_ms)
        return 0;
    if (aws->failures && now < aws->refresh_at_ms) {
        snprintf(errstr, errstr_size, "no aws credentials yet");
        return usable ? 0 : -1;
    }
    if (sts_fetch(aws, err, sizeof(err))) {
        aws->failures++;
        aws->refresh_at_ms =
            now + hr_retry_cap_ms(aws->failures - 1, 1000, AWS_RETRY_MAX_MS);
        hr_log_warn("aws credentials not refreshed", HR_LOG_STR("err", err),
                    HR_LOG_I64("attempt", aws->failures),
                    HR_LOG_BOOL("still_valid", usable));
        snprintf(errstr, errstr_size, "%s", err);
        return usable ? 0 : -1;
    }
    aws->failures = 0;
    aws->fetches++;
    lifetime = aws->expires_ms - now;
    ahead = lifetime < 2 * AWS_REFRESH_AHEAD ? lifetime / 2 : AWS_REFRESH_AHEAD;
    aws->refresh_at_ms = aws->expires_ms - ahead;
    hr_log_info("aws credentials from web identity",
                HR_LOG_STR("role", aws->role_arn),
                HR_LOG_I64("valid_s", lifetime / 1000),
                HR_LOG_I64("refresh_in_s", (aws->refresh_at_ms - now) / 1000));
    return 0;
}

int hr_aws_sign(const struct hr_aws *aws,
                CURL *easy,
                const char *service,
                struct curl_slist **headers)
{
    char sigv4[160];

    if (!aws->key_id[0])
        return -1;
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:%s", aws->region, service);
    if (curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, sigv4) ||
        curl_easy_setopt(easy, CURLOPT_USERNAME, aws->key_id) ||
        curl_easy_setopt(easy, CURLOPT_PASSWORD, aws->secret))
        return -1;
    if (aws->token) {
        size_t len = strlen(aws->token) + 32;
        char *line = malloc(len);
        struct curl_slist *l;

        HR_ASSERT(line);
        snprintf(line, len, "X-Amz-Security-Token: %s", aws->token);
        l = curl_slist_append(*headers, line);
        free(line);
        if (!l)
            return -1;
        *headers = l;
    }
    return 0;
}
