/*
 * AWS for every client that calls it (the SQS source; SES later): the
 * region, service endpoints, credentials, and SigV4 signing of a libcurl
 * request with CURLOPT_AWS_SIGV4 (no hand-written signing).
 *
 * Credentials, first found wins (the SDKs' order, research/aws.md §4.2):
 *  1. static: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
 *  2. web identity (EKS IRSA): AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE,
 *     exchanged at STS AssumeRoleWithWebIdentity (unsigned; the token file
 *     is read again at every exchange, as the kubelet rotates it) and
 *     refreshed ahead of expiry: 10 minutes before, or half-way through for
 *     credentials that live less than 20 minutes. Old credentials stay in
 *     use until new ones arrive; a failed exchange is retried with backoff.
 *
 * Endpoints: AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL, else the
 * caller's default (for example the queue URL's origin for SQS, or
 * https://sts.<region>.amazonaws.com). Region: AWS_REGION, else
 * AWS_DEFAULT_REGION, else the caller's hint (read from a queue URL).
 *
 * Not thread-safe: one per loop thread. Secrets are never logged.
 */
#ifndef HR_AWS_H
#define HR_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "hr_compat.h"
#include "hr_conf.h"

struct hr_aws;
struct hr_tls;

/** AWS_* settings, for a worker's configuration table. */
extern const struct hr_conf_spec hr_aws_conf[];

/** The region from the environment, else @hint (may be NULL); NULL when
 *  neither has one. Borrowed from @cfg or @hint. */
const char *hr_aws_region_of(const struct hr_conf *cfg, const char *hint);

/**
 * Check, without connecting, that a region is known (@hint as above) and
 * that credentials are configured (static keys, or web identity); report
 * each problem with hr_conf_add_error(), naming @what (e.g. "the sqs
 * source").
 */
void hr_aws_validate(struct hr_conf *cfg, const char *hint, const char *what);

/**
 * The endpoint for @service (its AWS_ENDPOINT_URL_<SERVICE> suffix, e.g.
 * "SQS", "STS", "SESV2") into @buf, without a trailing '/': the
 * service variable, else AWS_ENDPOINT_URL, else @fallback. Returns @buf.
 */
const char *hr_aws_endpoint(const struct hr_conf *cfg,
                            const char *service,
                            const char *fallback,
                            char *buf,
                            size_t size);

/**
 * Credentials and region from @cfg (copied) for calls signed in @region
 * (from hr_aws_region_of()). @tls (borrowed, may be NULL) verifies the STS
 * endpoint. Nothing is fetched yet. Returns NULL with @errstr when no
 * credentials are configured.
 */
struct hr_aws *hr_aws_new(const struct hr_conf *cfg,
                          const char *region,
                          const struct hr_tls *tls,
                          char *errstr,
                          size_t errstr_size);

/** Static credentials (@token may be NULL) for @region, without a
 *  configuration: for tools and tests. Never NULL. */
struct hr_aws *hr_aws_new_static(const char *region,
                                 const char *key_id,
                                 const char *secret,
                                 const char *token);

/** Free @aws. NULL is a no-op. */
void hr_aws_free(struct hr_aws *aws);

/** The region requests are signed for (borrowed). */
const char *hr_aws_region(const struct hr_aws *aws);

/**
 * Make sure usable credentials are at hand: static ones always are; web
 * identity ones are fetched or refreshed when due (a blocking STS call of
 * at most 5 s, only then). Returns 0 while credentials are usable (even if
 * a refresh just failed and the current ones are still valid), -1 with
 * @errstr when there are none.
 */
int hr_aws_refresh(struct hr_aws *aws, char *errstr, size_t errstr_size);

/** Force the next hr_aws_refresh() to fetch new credentials (after AWS
 *  answered ExpiredToken). Static credentials are not affected. */
void hr_aws_expire(struct hr_aws *aws);

/** How many times credentials were fetched from STS. */
uint64_t hr_aws_fetches(const struct hr_aws *aws);

/**
 * Sign @easy for @service ("sqs", "ses", ...) with the current
 * credentials: CURLOPT_AWS_SIGV4 "aws:amz:<region>:<service>", the key id
 * and secret, and an X-Amz-Security-Token header appended to *@headers
 * when a session token is in use (libcurl signs every header in the list,
 * so the list must be final and must not hold removals or empty values).
 * Returns 0, or -1 when there are no credentials.
 */
int hr_aws_sign(const struct hr_aws *aws,
                CURL *easy,
                const char *service,
                struct curl_slist **headers) HR_MUST_CHECK;

/**
 * The text of XML element @tag (its first occurrence in @xml, entities
 * &amp; &lt; &gt; &quot; &apos; decoded) into @buf; NULL when absent or
 * longer than @size - 1. For the few fields read from STS's XML answers.
 */
const char *
hr_aws_xml_text(const char *xml, const char *tag, char *buf, size_t size);

#endif
