/*
 * Unit tests for hr_aws (STS XML fields, endpoints, regions, validation of
 * the sqs source's AWS settings, static credentials and signing) and
 * hr_sqs's queue URL helpers. Nothing is sent: credentials come from the
 * environment and a temporary token file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "hr_aws.h"
#include "hr_conf.h"
#include "hr_source.h"
#include "hr_sqs.h"
#include "hr_worker_conf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define QUEUE_URL "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
#define FIFO_URL  "https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo"
#define KEY_ID    "AKIAIOSFODNN7EXAMPLE"
#define SECRET    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define TOKEN                                                            \
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDzEXAMPLE+/=" \
    "AQoDYXdzEJr//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW"

/* An STS AssumeRoleWithWebIdentity answer (research/aws.md §4.3). */
static const char sts_ok[] =
    "<AssumeRoleWithWebIdentityResponse "
    "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <AssumeRoleWithWebIdentityResult>\n"
    "    <SubjectFromWebIdentityToken>system:serviceaccount:herald:herald-"
    "sqs</SubjectFromWebIdentityToken>\n"
    "    <Audience>sts.amazonaws.com</Audience>\n"
    "    <AssumedRoleUser>\n"
    "      <Arn>arn:aws:sts::123456789012:assumed-role/herald-sqs/herald-"
    "1795000000</Arn>\n"
    "      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:herald-1795000000"
    "</AssumedRoleId>\n"
    "    </AssumedRoleUser>\n"
    "    <Credentials>\n"
    "      <SessionToken>" TOKEN "</SessionToken>\n"
    "      <SecretAccessKey>" SECRET "</SecretAccessKey>\n"
    "      <Expiration>2026-11-22T08:28:39Z</Expiration>\n"
    "      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
    "    </Credentials>\n"
    "    <SourceIdentity>herald</SourceIdentity>\n"
    "    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-"
    "1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE</Provider>\n"
    "  </AssumeRoleWithWebIdentityResult>\n"
    "  <ResponseMetadata>\n"
    "    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>\n"
    "  </ResponseMetadata>\n"
    "</AssumeRoleWithWebIdentityResponse>\n";

static const char sts_error[] =
    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <Error>\n"
    "    <Type>Sender</Type>\n"
    "    <Code>InvalidIdentityToken</Code>\n"
    "    <Message>No OpenIDConnect provider found in your account for "
    "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE</Message>\n"
    "  </Error>\n"
    "  <RequestId>8c9d1b0a-1c3e-4d5f-9a7b-EXAMPLE</RequestId>\n"
    "</ErrorResponse>\n";

static char token_path[64];

/* Unset every setting of @specs (and the _FILE form of each). */
static void unset_specs(const struct hr_conf_spec *specs)
{
    char name[128];

    for (; specs->name; specs++) {
        unsetenv(specs->name);
        snprintf(name, sizeof(name), "%s_FILE", specs->name);
        unsetenv(name);
    }
}

static void clean_env(void)
{
    unset_specs(hr_worker_common_conf);
    unset_specs(hr_aws_conf);
    unset_specs(hr_source_conf);
    unsetenv("HERALD_CONFIG");
}

static int setup(void **state)
{
    (void)state;
    clean_env();
    token_path[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clean_env();
    if (token_path[0])
        unlink(token_path);
    token_path[0] = '\0';
    return 0;
}

/* A projected service account token in a temporary file; its path. */
static const char *make_token_file(void)
{
    static const char jwt[] =
        "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJhdWQiOlsic3RzLmFtYXpvbmF3cy5"
        "jb20iXSwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OmhlcmFsZDpoZXJhbGQifQ."
        "c2lnbmF0dXJl\n";
    int fd;

    snprintf(token_path, sizeof(token_path), "/tmp/herald-token-XXXXXX");
    fd = mkstemp(token_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, jwt, sizeof(jwt) - 1), (ssize_t)sizeof(jwt) - 1);
    close(fd);
    return token_path;
}

/* The sqs source reading QUEUE_URL with static keys. */
static void set_good_static(void)
{
    setenv("HERALD_SOURCE", "sqs", 1);
    setenv("HERALD_SQS_QUEUE_URL", QUEUE_URL, 1);
    setenv("AWS_ACCESS_KEY_ID", KEY_ID, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
}

/* The settings from the environment, loaded without error. */
static struct hr_conf *load(void)
{
    struct hr_conf *cfg = hr_conf_new();
    int n;

    hr_conf_add_specs(cfg, hr_worker_common_conf);
    hr_conf_add_specs(cfg, hr_aws_conf);
    hr_conf_add_specs(cfg, hr_source_conf);
    n = hr_conf_load(cfg, NULL);
    for (int i = 0; i < n; i++)
        print_error("load: %s\n", hr_conf_error(cfg, i));
    assert_int_equal(n, 0);
    return cfg;
}

/* load(), then hr_source_validate(). */
static struct hr_conf *validated(void)
{
    struct hr_conf *cfg = load();

    hr_source_validate(cfg);
    return cfg;
}

/* How many errors of @cfg hold @want. */
static int errors_with(const struct hr_conf *cfg, const char *want)
{
    int found = 0;

    for (int i = 0; i < hr_conf_error_count(cfg); i++)
        found += strstr(hr_conf_error(cfg, i), want) != NULL;
    return found;
}

/* Validation gives exactly @count errors, one of which holds @want (NULL:
 * no errors). */
static void assert_errors(int count, const char *want)
{
    struct hr_conf *cfg = validated();
    int n = hr_conf_error_count(cfg);

    if (n != count || (want && errors_with(cfg, want) != 1)) {
        for (int i = 0; i < n; i++)
            print_error("error: %s\n", hr_conf_error(cfg, i));
        fail_msg("%d errors, want %d naming '%s'", n, count, want ? want : "");
    }
    hr_conf_free(cfg);
}

/* --- hr_aws_xml_text ------------------------------------------------------ */

static void test_xml_reads_sts_credentials(void **state)
{
    char buf[512];

    (void)state;
    assert_string_equal(hr_aws_xml_text(sts_ok, "AccessKeyId", buf, 64),
                        "ASIAIOSFODNN7EXAMPLE");
    assert_string_equal(hr_aws_xml_text(sts_ok, "SecretAccessKey", buf, 64),
                        SECRET);
    assert_string_equal(
        hr_aws_xml_text(sts_ok, "SessionToken", buf, sizeof(buf)), TOKEN);
    assert_string_equal(hr_aws_xml_text(sts_ok, "Expiration", buf, 64),
                        "2026-11-22T08:28:39Z");
    /* The first occurrence, whatever its depth. */
    assert_string_equal(hr_aws_xml_text(sts_ok, "Arn", buf, sizeof(buf)),
                        "arn:aws:sts::123456789012:assumed-role/herald-sqs/"
                        "herald-1795000000");
    assert_string_equal(hr_aws_xml_text(sts_ok, "RequestId", buf, sizeof(buf)),
                        "ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE");
}

static void test_xml_decodes_entities(void **state)
{
    char buf[128];

    (void)state;
    assert_string_equal(
        hr_aws_xml_text("<Message>a &amp; b &lt;c&gt; &quot;d&quot; "
                        "&apos;e&apos;</Message>",
                        "Message", buf, sizeof(buf)),
        "a & b <c> \"d\" 'e'");
    /* Decoded once only. */
    assert_string_equal(
        hr_aws_xml_text("<M>&amp;amp;&amp;lt;</M>", "M", buf, sizeof(buf)),
        "&amp;&lt;");
    /* Unknown entities and lone ampersands are kept as they are. */
    assert_string_equal(
        hr_aws_xml_text("<M>&nbsp;&#38; & &am</M>", "M", buf, sizeof(buf)),
        "&nbsp;&#38; & &am");
    assert_string_equal(hr_aws_xml_text("<M>&</M>", "M", buf, sizeof(buf)),
                        "&");
}

static void test_xml_absent_tag_is_null(void **state)
{
    char buf[64];

    (void)state;
    assert_null(hr_aws_xml_text(sts_ok, "Code", buf, sizeof(buf)));
    assert_null(hr_aws_xml_text(sts_error, "AccessKeyId", buf, sizeof(buf)));
    /* A tag name that only starts like another. */
    assert_null(hr_aws_xml_text(sts_ok, "Access", buf, sizeof(buf)));
    /* Opened but never closed. */
    assert_null(hr_aws_xml_text("<Code>Throttling", "Code", buf, sizeof(buf)));
    assert_null(hr_aws_xml_text("<Code/>", "Code", buf, sizeof(buf)));
    assert_null(hr_aws_xml_text("", "Code", buf, sizeof(buf)));
    assert_null(hr_aws_xml_text(NULL, "Code", buf, sizeof(buf)));
    /* Present but empty. */
    assert_string_equal(
        hr_aws_xml_text("<Code></Code>", "Code", buf, sizeof(buf)), "");
}

static void test_xml_too_long_for_buffer_is_null(void **state)
{
    char buf[32];

    (void)state;
    /* 20 characters need 21 bytes. */
    assert_string_equal(hr_aws_xml_text(sts_ok, "AccessKeyId", buf, 21),
                        "ASIAIOSFODNN7EXAMPLE");
    assert_null(hr_aws_xml_text(sts_ok, "AccessKeyId", buf, 20));
    assert_null(hr_aws_xml_text(sts_ok, "SessionToken", buf, sizeof(buf)));
    assert_null(hr_aws_xml_text(sts_ok, "AccessKeyId", buf, 0));
    /* The decoded length counts: 2 characters from 10. */
    assert_string_equal(hr_aws_xml_text("<M>&amp;&amp;</M>", "M", buf, 3),
                        "&&");
    assert_null(hr_aws_xml_text("<M>&amp;&amp;</M>", "M", buf, 2));
}

static void test_xml_reads_sts_error_response(void **state)
{
    char buf[256];

    (void)state;
    assert_string_equal(hr_aws_xml_text(sts_error, "Code", buf, sizeof(buf)),
                        "InvalidIdentityToken");
    assert_string_equal(hr_aws_xml_text(sts_error, "Message", buf, sizeof(buf)),
                        "No OpenIDConnect provider found in your account for "
                        "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE");
    assert_string_equal(hr_aws_xml_text(sts_error, "Type", buf, sizeof(buf)),
                        "Sender");
}

/* --- queue URLs ------------------------------------------------------------
 */

static void
assert_queue(const char *url, const char *name, const char *region, bool fifo)
{
    char buf[128];
    const char *got;

    got = hr_sqs_queue_name(url, buf, sizeof(buf));
    if (name ? !got || strcmp(got, name) : got != NULL)
        fail_msg("name of %s: got '%s', want '%s'", url, got ? got : "(null)",
                 name ? name : "(null)");
    got = hr_sqs_queue_region(url, buf, sizeof(buf));
    if (region ? !got || strcmp(got, region) : got != NULL)
        fail_msg("region of %s: got '%s', want '%s'", url, got ? got : "(null)",
                 region ? region : "(null)");
    if (hr_sqs_queue_is_fifo(url) != fifo)
        fail_msg("%s: fifo %d, want %d", url, !fifo, fifo);
}

static void test_queue_url_amazon(void **state)
{
    (void)state;
    assert_queue(QUEUE_URL, "orders", "us-east-1", false);
    assert_queue(FIFO_URL, "orders.fifo", "us-east-1", true);
    assert_queue("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "q",
                 "cn-north-1", false);
}

static void test_queue_url_emulator(void **state)
{
    (void)state;
    assert_queue("http://sqs.eu-west-1.localhost:4566/000000000000/q1", "q1",
                 "eu-west-1", false);
    /* No region in the host. */
    assert_queue("http://127.0.0.1:4566/000000000000/q", "q", NULL, false);
    assert_queue("http://sqs.localhost:4566/000000000000/q", "q", NULL, false);
    assert_queue("http://localhost:9324/queue/q.fifo", "q.fifo", NULL, true);
}

static void test_queue_url_legacy_host(void **state)
{
    (void)state;
    assert_queue("https://eu-west-2.queue.amazonaws.com/123/q", "q",
                 "eu-west-2", false);
    /* The legacy us-east-1 host names no region. */
    assert_queue("https://queue.amazonaws.com/123/q", "q", NULL, false);
}

static void test_queue_url_trailing_slash_and_query(void **state)
{
    (void)state;
    assert_queue(QUEUE_URL "/", "orders", "us-east-1", false);
    assert_queue(FIFO_URL "//", "orders.fifo", "us-east-1", true);
    assert_queue(QUEUE_URL "?Action=ReceiveMessage", "orders", "us-east-1",
                 false);
    assert_queue(FIFO_URL "#x", "orders.fifo", "us-east-1", true);
}

static void test_queue_url_without_path_has_no_name(void **state)
{
    (void)state;
    assert_queue("https://sqs.us-east-1.amazonaws.com", NULL, "us-east-1",
                 false);
    assert_queue("https://sqs.us-east-1.amazonaws.com/", NULL, "us-east-1",
                 false);
    assert_queue("http://127.0.0.1:4566", NULL, NULL, false);
    assert_queue("", NULL, NULL, false);
    /* Not a URL: no scheme, so no host and no path. */
    assert_queue("123456789012/orders", NULL, NULL, false);
    assert_queue("ab/orders.fifo", NULL, NULL, false);
}

static void test_queue_url_fifo_needs_more_than_the_suffix(void **state)
{
    (void)state;
    assert_true(hr_sqs_queue_is_fifo("http://h/1/a.fifo"));
    assert_false(hr_sqs_queue_is_fifo("http://h/1/.fifo"));
    assert_false(hr_sqs_queue_is_fifo("http://h/1/fifo"));
    assert_false(hr_sqs_queue_is_fifo("http://h/1/a.fifo.x"));
    assert_false(hr_sqs_queue_is_fifo("http://h/q.fifo/a"));
}

static void test_queue_url_small_buffer_is_null(void **state)
{
    char buf[16];

    (void)state;
    assert_string_equal(hr_sqs_queue_name(QUEUE_URL, buf, 7), "orders");
    assert_null(hr_sqs_queue_name(QUEUE_URL, buf, 6));
    assert_string_equal(hr_sqs_queue_region(QUEUE_URL, buf, 10), "us-east-1");
    assert_null(hr_sqs_queue_region(QUEUE_URL, buf, 9));
}

/* --- validation ------------------------------------------------------------
 */

static void test_validate_static_keys(void **state)
{
    (void)state;
    set_good_static();
    assert_errors(0, NULL);
    setenv("AWS_SESSION_TOKEN", TOKEN, 1);
    assert_errors(0, NULL);
}

static void test_validate_web_identity(void **state)
{
    (void)state;
    setenv("HERALD_SOURCE", "sqs", 1);
    setenv("HERALD_SQS_QUEUE_URL", QUEUE_URL, 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/herald-sqs", 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", make_token_file(), 1);
    assert_errors(0, NULL);
}

static void test_validate_web_identity_needs_both(void **state)
{
    (void)state;
    setenv("HERALD_SOURCE", "sqs", 1);
    setenv("HERALD_SQS_QUEUE_URL", QUEUE_URL, 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/herald-sqs", 1);
    assert_errors(1, "AWS_WEB_IDENTITY_TOKEN_FILE");
    unsetenv("AWS_ROLE_ARN");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", make_token_file(), 1);
    assert_errors(1, "AWS_ROLE_ARN");
}

static void test_validate_no_credentials(void **state)
{
    (void)state;
    set_good_static();
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_errors(1, "AWS_ACCESS_KEY_ID");
}

static void test_validate_key_id_needs_secret(void **state)
{
    (void)state;
    set_good_static();
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_errors(1, "AWS_SECRET_ACCESS_KEY");
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    unsetenv("AWS_ACCESS_KEY_ID");
    assert_errors(1, "AWS_ACCESS_KEY_ID");
}

static void test_validate_region_from_env_when_url_has_none(void **state)
{
    (void)state;
    set_good_static();
    setenv("HERALD_SQS_QUEUE_URL", "http://127.0.0.1:4566/000000000000/q", 1);
    assert_errors(1, "AWS_REGION");
    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    assert_errors(0, NULL);
    unsetenv("AWS_DEFAULT_REGION");
    setenv("AWS_REGION", "eu-west-1", 1);
    assert_errors(0, NULL);
}

static void test_validate_bad_region_name(void **state)
{
    (void)state;
    set_good_static();
    setenv("AWS_REGION", "US East", 1);
    assert_errors(1, "AWS_REGION");
}

static void test_validate_bad_queue_url(void **state)
{
    (void)state;
    set_good_static();
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("HERALD_SQS_QUEUE_URL", "ftp://x", 1);
    assert_errors(1, "HERALD_SQS_QUEUE_URL");
    setenv("HERALD_SQS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com", 1);
    assert_errors(1, "HERALD_SQS_QUEUE_URL");
    setenv("HERALD_SQS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/", 1);
    assert_errors(1, "HERALD_SQS_QUEUE_URL");
    setenv("HERALD_SQS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/a%b",
           1);
    assert_errors(1, "HERALD_SQS_QUEUE_URL");
    unsetenv("HERALD_SQS_QUEUE_URL");
    assert_errors(1, "HERALD_SQS_QUEUE_URL");
}

static void test_validate_dlq_is_not_the_queue(void **state)
{
    (void)state;
    set_good_static();
    setenv("HERALD_SQS_DLQ_URL", QUEUE_URL, 1);
    assert_errors(1, "HERALD_SQS_DLQ_URL");
    setenv("HERALD_SQS_DLQ_URL", QUEUE_URL "-dlq", 1);
    assert_errors(0, NULL);
}

static void test_validate_fifo_queue_needs_fifo_dlq(void **state)
{
    (void)state;
    set_good_static();
    setenv("HERALD_SQS_QUEUE_URL", FIFO_URL, 1);
    setenv("HERALD_SQS_DLQ_URL", QUEUE_URL "-dlq", 1);
    assert_errors(1, "HERALD_SQS_DLQ_URL");
    setenv("HERALD_SQS_DLQ_URL",
           "https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq.fifo",
           1);
    assert_errors(0, NULL);
    /* And a standard queue's dead letters go to a standard queue. */
    setenv("HERALD_SQS_QUEUE_URL", QUEUE_URL, 1);
    assert_errors(1, "HERALD_SQS_DLQ_URL");
}

static void test_validate_retry_base_above_max(void **state)
{
    (void)state;
    set_good_static();
    setenv("HERALD_SQS_RETRY_BASE_MS", "5000", 1);
    setenv("HERALD_SQS_RETRY_MAX_MS", "4999", 1);
    assert_errors(1, "HERALD_SQS_RETRY_BASE_MS");
    setenv("HERALD_SQS_RETRY_MAX_MS", "5000", 1);
    assert_errors(0, NULL);
}

/* --- regions and endpoints -------------------------------------------------
 */

static void test_region_env_then_default_then_hint(void **state)
{
    struct hr_conf *cfg;

    (void)state;
    cfg = load();
    assert_null(hr_aws_region_of(cfg, NULL));
    assert_null(hr_aws_region_of(cfg, ""));
    assert_string_equal(hr_aws_region_of(cfg, "eu-west-2"), "eu-west-2");
    hr_conf_free(cfg);
    setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
    cfg = load();
    assert_string_equal(hr_aws_region_of(cfg, "eu-west-2"), "eu-central-1");
    hr_conf_free(cfg);
    setenv("AWS_REGION", "ap-south-1", 1);
    cfg = load();
    assert_string_equal(hr_aws_region_of(cfg, "eu-west-2"), "ap-south-1");
    hr_conf_free(cfg);
}

static void test_endpoint_service_then_global_then_fallback(void **state)
{
    struct hr_conf *cfg;
    char buf[128];

    (void)state;
    cfg = load();
    assert_string_equal(hr_aws_endpoint(cfg, "SQS",
                                        "https://sqs.us-east-1.amazonaws.com/",
                                        buf, sizeof(buf)),
                        "https://sqs.us-east-1.amazonaws.com");
    assert_ptr_equal(hr_aws_endpoint(cfg, "SQS", "http://x", buf, sizeof(buf)),
                     buf);
    assert_string_equal(hr_aws_endpoint(cfg, "SQS", NULL, buf, sizeof(buf)),
                        "");
    hr_conf_free(cfg);

    setenv("AWS_ENDPOINT_URL", "http://localhost:4566/", 1);
    cfg = load();
    assert_string_equal(hr_aws_endpoint(cfg, "SQS",
                                        "https://sqs.us-east-1.amazonaws.com",
                                        buf, sizeof(buf)),
                        "http://localhost:4566");
    hr_conf_free(cfg);

    setenv("AWS_ENDPOINT_URL_SQS", "http://sqs.local:9324//", 1);
    cfg = load();
    assert_string_equal(hr_aws_endpoint(cfg, "SQS",
                                        "https://sqs.us-east-1.amazonaws.com",
                                        buf, sizeof(buf)),
                        "http://sqs.local:9324");
    /* Another service does not take SQS's endpoint. */
    assert_string_equal(hr_aws_endpoint(cfg, "STS",
                                        "https://sts.us-east-1.amazonaws.com",
                                        buf, sizeof(buf)),
                        "http://localhost:4566");
    hr_conf_free(cfg);
}

/* --- credentials and signing -----------------------------------------------
 */

/* How many lines of @l start with @prefix; the last in *@line. */
static int
lines_with(const struct curl_slist *l, const char *prefix, const char **line)
{
    int n = 0;

    for (; l; l = l->next) {
        if (!strncmp(l->data, prefix, strlen(prefix))) {
            n++;
            *line = l->data;
        }
    }
    return n;
}

static size_t list_len(const struct curl_slist *l)
{
    size_t n = 0;

    for (; l; l = l->next)
        n++;
    return n;
}

static struct hr_aws *static_aws(void)
{
    struct hr_conf *cfg;
    struct hr_aws *aws;
    char err[256] = "";

    set_good_static();
    cfg = load();
    aws = hr_aws_new(cfg, "us-east-1", NULL, err, sizeof(err));
    hr_conf_free(cfg);
    if (!aws)
        fail_msg("hr_aws_new: %s", err);
    return aws;
}

static void test_sign_with_session_token_adds_one_header(void **state)
{
    CURL *easy = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct hr_aws *aws;
    const char *line = NULL;
    char err[256] = "";

    (void)state;
    setenv("AWS_SESSION_TOKEN", TOKEN, 1);
    aws = static_aws();
    assert_non_null(easy);
    assert_string_equal(hr_aws_region(aws), "us-east-1");
    assert_int_equal(hr_aws_refresh(aws, err, sizeof(err)), 0);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/x-amz-json-1.0");
    hdrs = curl_slist_append(hdrs, "X-Amz-Target: AmazonSQS.ReceiveMessage");
    assert_non_null(hdrs);
    assert_int_equal(hr_aws_sign(aws, easy, "sqs", &hdrs), 0);
    assert_int_equal(list_len(hdrs), 3);
    assert_int_equal(lines_with(hdrs, "X-Amz-Security-Token:", &line), 1);
    assert_string_equal(line, "X-Amz-Security-Token: " TOKEN);
    /* The headers that were there are kept, in order. */
    assert_string_equal(hdrs->data, "Content-Type: application/x-amz-json-1.0");
    curl_slist_free_all(hdrs);

    /* An empty list gets the token line alone. */
    hdrs = NULL;
    assert_int_equal(hr_aws_sign(aws, easy, "sqs", &hdrs), 0);
    assert_int_equal(list_len(hdrs), 1);
    assert_string_equal(hdrs->data, "X-Amz-Security-Token: " TOKEN);
    curl_slist_free_all(hdrs);
    hr_aws_free(aws);
    curl_easy_cleanup(easy);
}

static void test_sign_without_session_token_adds_none(void **state)
{
    CURL *easy = curl_easy_init();
    struct curl_slist *hdrs = NULL, *before;
    struct hr_aws *aws;
    const char *line = NULL;
    char err[256] = "";

    (void)state;
    aws = static_aws();
    assert_non_null(easy);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/x-amz-json-1.0");
    before = hdrs;
    assert_int_equal(hr_aws_sign(aws, easy, "sqs", &hdrs), 0);
    assert_ptr_equal(hdrs, before);
    assert_int_equal(list_len(hdrs), 1);
    assert_int_equal(lines_with(hdrs, "X-Amz-Security-Token", &line), 0);
    curl_slist_free_all(hdrs);
    hdrs = NULL;
    assert_int_equal(hr_aws_sign(aws, easy, "sqs", &hdrs), 0);
    assert_null(hdrs);
    /* Static credentials need no refresh, even after an expiry. */
    hr_aws_expire(aws);
    assert_int_equal(hr_aws_refresh(aws, err, sizeof(err)), 0);
    assert_int_equal(hr_aws_fetches(aws), 0);
    hr_aws_free(aws);
    curl_easy_cleanup(easy);
}

static void test_empty_session_token_is_no_token(void **state)
{
    CURL *easy = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct hr_aws *aws;

    (void)state;
    /* An empty variable reads as unset. */
    setenv("AWS_SESSION_TOKEN", "", 1);
    aws = static_aws();
    assert_int_equal(hr_aws_sign(aws, easy, "sqs", &hdrs), 0);
    assert_null(hdrs);
    hr_aws_free(aws);
    curl_easy_cleanup(easy);
}

static void test_new_without_credentials_fails(void **state)
{
    struct hr_conf *cfg;
    char err[256] = "";

    (void)state;
    cfg = load();
    assert_null(hr_aws_new(cfg, "us-east-1", NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "credentials"));
    hr_conf_free(cfg);
    hr_aws_free(NULL);
}

static void test_web_identity_cannot_sign_before_refresh(void **state)
{
    CURL *easy = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct hr_conf *cfg;
    struct hr_aws *aws;
    char err[256] = "";

    (void)state;
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/herald-sqs", 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", make_token_file(), 1);
    cfg = load();
    aws = hr_aws_new(cfg, "eu-west-1", NULL, err, sizeof(err));
    hr_conf_free(cfg);
    assert_non_null(aws);
    assert_string_equal(hr_aws_region(aws), "eu-west-1");
    /* Nothing fetched yet: no credentials to sign with. */
    assert_int_equal(hr_aws_sign(aws, easy, "sqs", &hdrs), -1);
    assert_null(hdrs);
    assert_int_equal(hr_aws_fetches(aws), 0);
    hr_aws_free(aws);
    curl_easy_cleanup(easy);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_xml_reads_sts_credentials),
        T(test_xml_decodes_entities),
        T(test_xml_absent_tag_is_null),
        T(test_xml_too_long_for_buffer_is_null),
        T(test_xml_reads_sts_error_response),
        T(test_queue_url_amazon),
        T(test_queue_url_emulator),
        T(test_queue_url_legacy_host),
        T(test_queue_url_trailing_slash_and_query),
        T(test_queue_url_without_path_has_no_name),
        T(test_queue_url_fifo_needs_more_than_the_suffix),
        T(test_queue_url_small_buffer_is_null),
        T(test_validate_static_keys),
        T(test_validate_web_identity),
        T(test_validate_web_identity_needs_both),
        T(test_validate_no_credentials),
        T(test_validate_key_id_needs_secret),
        T(test_validate_region_from_env_when_url_has_none),
        T(test_validate_bad_region_name),
        T(test_validate_bad_queue_url),
        T(test_validate_dlq_is_not_the_queue),
        T(test_validate_fifo_queue_needs_fifo_dlq),
        T(test_validate_retry_base_above_max),
        T(test_region_env_then_default_then_hint),
        T(test_endpoint_service_then_global_then_fallback),
        T(test_sign_with_session_token_adds_one_header),
        T(test_sign_without_session_token_adds_none),
        T(test_empty_session_token_is_no_token),
        T(test_new_without_credentials_fails),
        T(test_web_identity_cannot_sign_before_refresh),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests_name("aws", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
