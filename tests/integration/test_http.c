/*
 * Integration tests for hr_http (and hr_jwt on the wire) against the fake
 * server tests/harness/fake_http.js: JWT-authenticated webhooks, failure
 * classes of SPEC section 7, timeouts, refused connections, concurrency,
 * connection reuse, and HTTP/2 over TLS with a CA generated at test time.
 * Skipped (exit 77) when node is not on PATH.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "harness.h"
#include "hr_http.h"
#include "hr_jwt.h"
#include "hr_retry.h"
#include "hr_time.h"
#include "hx_fake_http.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define SECRET "webhook-secret-of-32-bytes-long!"
#define ISS    "herald"
#define AUD    "legacy-api"

struct fixture {
    char *dir;
    char *ca_file, *cert_file, *key_file;
    char *rsa_priv, *rsa_pub, *ec_priv, *ec_pub;
    struct hx_fake_http *plain;
    struct hx_fake_http *tls;
    struct hr_http *http; /* max 16 concurrent, no extra CA */
};

static struct fixture F;

static int group_setup(void **state)
{
    struct hx_fake_http_opts tls = {0};
    char errstr[256];

    (void)state;
    F.dir = hx_tmpdir_new("test-http");
    if (!F.dir ||
        hx_tls_make_pki(F.dir, &F.ca_file, &F.cert_file, &F.key_file) ||
        hx_keypair_pem("RSA", &F.rsa_priv, &F.rsa_pub) ||
        hx_keypair_pem("EC", &F.ec_priv, &F.ec_pub))
        return -1;
    F.plain = hx_fake_http_start(NULL);
    tls.tls_cert = F.cert_file;
    tls.tls_key = F.key_file;
    tls.ca_file = F.ca_file;
    F.tls = hx_fake_http_start(&tls);
    if (!F.plain || !F.tls)
        return -1;
    F.http = hr_http_new(NULL, 16, errstr, sizeof(errstr));
    if (!F.http) {
        fprintf(stderr, "hr_http_new: %s\n", errstr);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hr_http_free(F.http);
    hx_fake_http_free(F.plain);
    hx_fake_http_free(F.tls);
    if (F.dir)
        hx_tmpdir_remove(F.dir);
    free(F.dir);
    free(F.ca_file);
    free(F.cert_file);
    free(F.key_file);
    free(F.rsa_priv);
    free(F.rsa_pub);
    free(F.ec_priv);
    free(F.ec_pub);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    assert_int_equal(hx_fake_http_reset(F.plain), 0);
    assert_int_equal(hx_fake_http_reset(F.tls), 0);
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static char url_buf[8][256];
static int url_next;

/* @server's URL + @path, in one of 8 rotating buffers. */
static const char *url(struct hx_fake_http *server, const char *path)
{
    char *buf = url_buf[url_next++ % 8];

    snprintf(buf, sizeof(url_buf[0]), "%s%s", hx_fake_http_url(server), path);
    return buf;
}

static void route(struct hx_fake_http *server, const char *json)
{
    assert_int_equal(hx_fake_http_route(server, json), 0);
}

static void
perform(struct hr_http *http, struct hr_http_request *reqs, size_t n)
{
    assert_int_equal(hr_http_perform(http, reqs, n), 0);
}

static void release_all(struct hr_http_request *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hr_http_request_release(&reqs[i]);
}

static json_t *requests(struct hx_fake_http *server, const char *path)
{
    json_t *all = hx_fake_http_requests(server, path);

    assert_non_null(all);
    return all;
}

/* ---- JWT-authenticated webhooks --------------------------------------- */

/*
 * POST a webhook signed by @signer to a route that verifies @alg with
 * @verify_key (a JSON member: "secret" or "key"), expect 200 and a verified
 * token on the server; then a token from @wrong (when not NULL) must get
 * 401, classified auth.
 */
static void webhook_round_trip(struct hr_jwt_signer *signer,
                               const char *alg,
                               const char *key_member,
                               const char *verify_key,
                               struct hr_jwt_signer *wrong)
{
    json_t *rt =
        json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "path", "/hook", "jwt",
                  "alg", alg, key_member, verify_key, "iss", ISS, "aud", AUD);
    int64_t now_s = hr_time_now_ms() / 1000;
    char errstr[256], auth[2][4096];
    const char *hdrs0[] = {auth[0], "Content-Type: application/json", NULL};
    const char *hdrs1[] = {auth[1], "Content-Type: application/json", NULL};
    const char *body = "{\"id\":\"change-1\"}";
    struct hr_http_request reqs[2] = {
        {.method = "POST",
         .url = url(F.plain, "/hook"),
         .headers = hdrs0,
         .body = body,
         .body_len = strlen(body),
         .timeout_ms = 5000},
        {.method = "POST",
         .url = url(F.plain, "/hook"),
         .headers = hdrs1,
         .body = body,
         .body_len = strlen(body),
         .timeout_ms = 5000},
    };
    size_t n = wrong ? 2 : 1;
    json_t *seen, *jwt, *claims;
    char *token;

    assert_non_null(rt);
    assert_int_equal(hx_fake_http_route_json(F.plain, rt), 0);
    json_decref(rt);
    for (size_t i = 0; i < n; i++) {
        token = hr_jwt_sign(i ? wrong : signer, ISS, AUD, "fanout", 300, now_s,
                            errstr, sizeof(errstr));
        if (!token)
            fail_msg("sign: %s", errstr);
        snprintf(auth[i], sizeof(auth[i]), "Authorization: Bearer %s", token);
        free(token);
    }
    perform(F.http, reqs, n);

    assert_int_equal(reqs[0].curl_code, CURLE_OK);
    assert_int_equal(reqs[0].status, 200);
    assert_int_equal(hr_http_classify(&reqs[0]), -1);
    seen = requests(F.plain, "/hook");
    assert_int_equal(json_array_size(seen), n);
    jwt = json_object_get(json_array_get(seen, 0), "jwt");
    if (!json_is_true(json_object_get(jwt, "ok")))
        fail_msg("server rejected the %s token: %s", alg,
                 json_string_value(json_object_get(jwt, "error")));
    claims = json_object_get(jwt, "claims");
    assert_string_equal(json_string_value(json_object_get(claims, "iss")), ISS);
    assert_string_equal(json_string_value(json_object_get(claims, "aud")), AUD);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")),
                        "fanout");
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")),
                     json_integer_value(json_object_get(claims, "iat")) + 300);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(seen, 0), "body")),
        body);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(seen, 0), "headers"),
                            "content-type")),
                        "application/json");
    if (wrong) {
        assert_int_equal(reqs[1].status, 401);
        assert_int_equal(hr_http_classify(&reqs[1]), HR_ERR_AUTH);
        jwt = json_object_get(json_array_get(seen, 1), "jwt");
        assert_true(json_is_false(json_object_get(jwt, "ok")));
    }
    json_decref(seen);
    release_all(reqs, n);
}

static void test_http_jwt_hs256_webhook(void **state)
{
    struct hr_jwt_signer *s =
        hr_jwt_signer_new("HS256", SECRET, strlen(SECRET), NULL, 0);
    struct hr_jwt_signer *wrong = hr_jwt_signer_new(
        "HS256", "some-other-secret-of-32-bytes!!!", 32, NULL, 0);

    (void)state;
    assert_non_null(s);
    assert_non_null(wrong);
    webhook_round_trip(s, "HS256", "secret", SECRET, wrong);
    hr_jwt_signer_free(s);
    hr_jwt_signer_free(wrong);
}

static void test_http_jwt_rs256_webhook(void **state)
{
    struct hr_jwt_signer *s =
        hr_jwt_signer_new("RS256", F.rsa_priv, strlen(F.rsa_priv), NULL, 0);
    /* An ES256 token where RS256 is expected: 401 as well. */
    struct hr_jwt_signer *wrong =
        hr_jwt_signer_new("ES256", F.ec_priv, strlen(F.ec_priv), NULL, 0);

    (void)state;
    assert_non_null(s);
    webhook_round_trip(s, "RS256", "key", F.rsa_pub, wrong);
    hr_jwt_signer_free(s);
    hr_jwt_signer_free(wrong);
}

static void test_http_jwt_es256_webhook(void **state)
{
    struct hr_jwt_signer *s =
        hr_jwt_signer_new("ES256", F.ec_priv, strlen(F.ec_priv), NULL, 0);

    (void)state;
    assert_non_null(s);
    webhook_round_trip(s, "ES256", "key", F.ec_pub, NULL);
    hr_jwt_signer_free(s);
}

static void test_http_missing_token_is_auth(void **state)
{
    struct hr_http_request req = {.url = url(F.plain, "/hook")};
    json_t *seen;

    (void)state;
    route(F.plain, "{\"path\":\"/hook\",\"jwt\":{\"alg\":\"HS256\","
                   "\"secret\":\"" SECRET "\"}}");
    perform(F.http, &req, 1);
    assert_int_equal(req.status, 401);
    assert_int_equal(hr_http_classify(&req), HR_ERR_AUTH);
    seen = requests(F.plain, "/hook");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(seen, 0), "jwt"), "error")),
        "no bearer token");
    json_decref(seen);
    hr_http_request_release(&req);
}

/* ---- failure classes -------------------------------------------------- */

static void test_http_statuses_are_classified(void **state)
{
    static const struct {
        const char *path;
        long status;
        int cls;
    } cases[] = {
        {"/s200", 200, -1},
        {"/s204", 204, -1},
        {"/s401", 401, HR_ERR_AUTH},
        {"/s403", 403, HR_ERR_AUTH},
        {"/s404", 404, HR_ERR_PERMANENT},
        {"/s400", 400, HR_ERR_PERMANENT},
        {"/s408", 408, HR_ERR_TRANSIENT},
        {"/s429", 429, HR_ERR_THROTTLED},
        {"/s500", 500, HR_ERR_TRANSIENT},
        {"/s503", 503, HR_ERR_TRANSIENT},
        {"/s301", 301, HR_ERR_PERMANENT}, /* redirects are not followed */
    };
    struct hr_http_request reqs[HR_ARRAY_SIZE(cases)];
    char urls[HR_ARRAY_SIZE(cases)][128];
    char rt[256];

    (void)state;
    memset(reqs, 0, sizeof(reqs));
    for (size_t i = 0; i < HR_ARRAY_SIZE(cases); i++) {
        snprintf(rt, sizeof(rt),
                 "{\"path\":\"%s\",\"status\":%ld,\"headers\":{\"Location\":"
                 "\"/elsewhere\"}}",
                 cases[i].path, cases[i].status);
        route(F.plain, rt);
        reqs[i].method = "POST";
        snprintf(urls[i], sizeof(urls[i]), "%s%s", hx_fake_http_url(F.plain),
                 cases[i].path);
        reqs[i].url = urls[i];
        reqs[i].body = "{}";
        reqs[i].body_len = 2;
    }
    /* One batch for all of them: the worker's usage. */
    perform(F.http, reqs, HR_ARRAY_SIZE(cases));
    for (size_t i = 0; i < HR_ARRAY_SIZE(cases); i++) {
        if (reqs[i].status != cases[i].status ||
            hr_http_classify(&reqs[i]) != cases[i].cls)
            fail_msg("%s: status %ld class %d, want %ld class %d (%s)",
                     cases[i].path, reqs[i].status, hr_http_classify(&reqs[i]),
                     cases[i].status, cases[i].cls, reqs[i].error);
        assert_int_equal(reqs[i].curl_code, CURLE_OK);
        assert_int_equal(reqs[i].retry_after_ms, -1);
        assert_int_equal(reqs[i].http_version, CURL_HTTP_VERSION_1_1);
    }
    release_all(reqs, HR_ARRAY_SIZE(cases));
}

static void test_http_429_retry_after(void **state)
{
    struct hr_http_request reqs[2] = {
        {.url = url(F.plain, "/throttled")},
        {.url = url(F.plain, "/dated")},
    };

    (void)state;
    route(F.plain, "{\"path\":\"/throttled\",\"status\":429,"
                   "\"headers\":{\"Retry-After\":\"5\"}}");
    /* An HTTP-date in the past is "now": 0 ms. */
    route(F.plain, "{\"path\":\"/dated\",\"status\":503,\"headers\":"
                   "{\"Retry-After\":\"Sun, 06 Nov 1994 08:49:37 GMT\"}}");
    perform(F.http, reqs, 2);
    assert_int_equal(reqs[0].status, 429);
    assert_int_equal(hr_http_classify(&reqs[0]), HR_ERR_THROTTLED);
    assert_int_equal(reqs[0].retry_after_ms, 5000);
    assert_int_equal(reqs[1].status, 503);
    assert_int_equal(hr_http_classify(&reqs[1]), HR_ERR_TRANSIENT);
    assert_int_equal(reqs[1].retry_after_ms, 0);
    release_all(reqs, 2);
}

static void test_http_status_sequence(void **state)
{
    static const long want[] = {503, 503, 200, 200};
    struct hr_http_request req = {.url = url(F.plain, "/flaky")};

    (void)state;
    route(F.plain, "{\"path\":\"/flaky\",\"statuses\":[503,503,200]}");
    for (size_t i = 0; i < HR_ARRAY_SIZE(want); i++) {
        perform(F.http, &req, 1);
        assert_int_equal(req.status, want[i]);
        assert_int_equal(hr_http_classify(&req),
                         want[i] == 200 ? -1 : HR_ERR_TRANSIENT);
    }
    hr_http_request_release(&req);
}

static void test_http_timeout_is_transient(void **state)
{
    struct hr_http_request reqs[2] = {
        {.url = url(F.plain, "/slow"), .timeout_ms = 300},
        {.url = url(F.plain, "/fast"), .timeout_ms = 5000},
    };
    int64_t t0 = hx_now_ms(), took;

    (void)state;
    route(F.plain, "{\"path\":\"/slow\",\"delay_ms\":3000}");
    perform(F.http, reqs, 2);
    took = hx_now_ms() - t0;
    assert_int_equal(reqs[0].curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(reqs[0].status, 0);
    assert_true(reqs[0].error[0] != '\0');
    assert_int_equal(hr_http_classify(&reqs[0]), HR_ERR_TRANSIENT);
    assert_true(reqs[0].elapsed_s >= 0.25 && reqs[0].elapsed_s < 2.0);
    /* The slow one does not hold the other back, nor the batch. */
    assert_int_equal(reqs[1].status, 200);
    assert_true(took < 2000);
    release_all(reqs, 2);
}

static void test_http_connection_refused_is_transient(void **state)
{
    char u[64];
    struct hr_http_request req = {.url = u, .timeout_ms = 2000};
    int port = hx_free_port();

    (void)state;
    assert_true(port > 0);
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/hook", port);
    perform(F.http, &req, 1);
    assert_int_equal(req.curl_code, CURLE_COULDNT_CONNECT);
    assert_int_equal(req.status, 0);
    assert_int_equal(hr_http_classify(&req), HR_ERR_TRANSIENT);
    hr_http_request_release(&req);
}

static void test_http_reset_connection_is_transient(void **state)
{
    struct hr_http_request req = {.url = url(F.plain, "/drop")};
    json_t *seen;

    (void)state;
    route(F.plain, "{\"path\":\"/drop\",\"destroy\":true}");
    perform(F.http, &req, 1);
    assert_int_not_equal(req.curl_code, CURLE_OK);
    assert_int_equal(hr_http_classify(&req), HR_ERR_TRANSIENT);
    /* curl resends a request whose reused connection dies before any
     * answer, up to 5 times, over the other idle connections it holds. */
    seen = requests(F.plain, "/drop");
    printf("dropped connection: %zu attempts, %s\n", json_array_size(seen),
           req.error);
    assert_true(json_array_size(seen) >= 1 && json_array_size(seen) <= 6);
    json_decref(seen);
    hr_http_request_release(&req);
}

static void test_http_invalid_request_fails_alone(void **state)
{
    struct hr_http_request reqs[3] = {
        {.url = NULL},
        {.url = "ftp://127.0.0.1/x"},
        {.url = url(F.plain, "/ok")},
    };

    (void)state;
    perform(F.http, reqs, 3);
    assert_int_not_equal(reqs[0].curl_code, CURLE_OK);
    assert_int_equal(reqs[1].curl_code, CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(reqs[2].status, 200);
    release_all(reqs, 3);
}

/* ---- methods, headers, bodies ----------------------------------------- */

static void test_http_methods_headers_and_bodies(void **state)
{
    const char *hdrs[] = {"X-Herald-Test: yes", "Content-Type: text/plain",
                          NULL};
    char big[4096];
    struct hr_http_request reqs[4] = {
        {.method = "PUT",
         .url = url(F.plain, "/m?token=secret"),
         .headers = hdrs,
         .body = "hello",
         .body_len = 5},
        {.method = "DELETE", .url = url(F.plain, "/m")},
        {.url = url(F.plain, "/m")},
        /* Over 1 KiB: no "Expect: 100-continue" round trip. */
        {.url = url(F.plain, "/m"), .body = big, .body_len = sizeof(big)},
    };
    json_t *seen, *r;
    int64_t t0;

    (void)state;
    memset(big, 'x', sizeof(big));
    t0 = hx_now_ms();
    perform(F.http, reqs, 4);
    assert_true(hx_now_ms() - t0 < 900);
    seen = requests(F.plain, "/m");
    assert_int_equal(json_array_size(seen), 4);
    for (size_t i = 0; i < 4; i++) {
        const char *method;

        r = NULL;
        /* Concurrent: find each by method. */
        method = i == 0 ? "PUT" : i == 1 ? "DELETE" : i == 2 ? "GET" : "POST";
        for (size_t j = 0; j < json_array_size(seen); j++) {
            json_t *e = json_array_get(seen, j);

            if (!strcmp(json_string_value(json_object_get(e, "method")),
                        method))
                r = e;
        }
        if (!r)
            fail_msg("no %s request seen", method);
        assert_int_equal(reqs[i].status, 200);
        if (i == 0) {
            json_t *h = json_object_get(r, "headers");

            assert_string_equal(
                json_string_value(json_object_get(h, "x-herald-test")), "yes");
            assert_string_equal(
                json_string_value(json_object_get(h, "content-type")),
                "text/plain");
            assert_string_equal(json_string_value(json_object_get(r, "body")),
                                "hello");
            assert_string_equal(json_string_value(json_object_get(r, "url")),
                                "/m?token=secret");
        }
        if (i == 3) {
            assert_null(
                json_object_get(json_object_get(r, "headers"), "expect"));
            assert_int_equal(
                strlen(json_string_value(json_object_get(r, "body"))),
                sizeof(big));
        }
    }
    json_decref(seen);
    release_all(reqs, 4);
}

static void test_http_response_body_is_capped(void **state)
{
    json_t *rt = json_object();
    char *body = malloc(100 * 1024 + 1);
    struct hr_http_request reqs[2] = {
        {.url = url(F.plain, "/big")},
        {.url = url(F.plain, "/small")},
    };

    (void)state;
    assert_non_null(body);
    memset(body, 'b', 100 * 1024);
    body[100 * 1024] = '\0';
    json_object_set_new(rt, "path", json_string("/big"));
    json_object_set_new(rt, "body", json_string(body));
    assert_int_equal(hx_fake_http_route_json(F.plain, rt), 0);
    route(F.plain, "{\"path\":\"/small\",\"body\":{\"reason\":\"BadToken\"}}");
    perform(F.http, reqs, 2);
    assert_int_equal(reqs[0].status, 200);
    assert_int_equal(reqs[0].response_len, HR_HTTP_BODY_MAX);
    assert_true(reqs[0].response_truncated);
    assert_int_equal(strlen(reqs[0].response_body), HR_HTTP_BODY_MAX);
    assert_string_equal(reqs[1].response_body, "{\"reason\":\"BadToken\"}");
    assert_false(reqs[1].response_truncated);
    /* Performing again frees and replaces the previous results. */
    perform(F.http, reqs, 1);
    assert_int_equal(reqs[0].response_len, HR_HTTP_BODY_MAX);
    release_all(reqs, 2);
    assert_null(reqs[0].response_body);
    json_decref(rt);
    free(body);
}

/* ---- concurrency and reuse -------------------------------------------- */

/* @n GETs of @path on @server through @http; all must answer 200. Returns
 * the wall time in ms. */
static int64_t run_many(struct hr_http *http,
                        struct hx_fake_http *server,
                        const char *path,
                        size_t n)
{
    struct hr_http_request *reqs = calloc(n, sizeof(*reqs));
    char(*urls)[128] = calloc(n, sizeof(*urls));
    int64_t t0;

    assert_non_null(reqs);
    assert_non_null(urls);
    for (size_t i = 0; i < n; i++) {
        snprintf(urls[i], sizeof(urls[i]), "%s%s?i=%zu",
                 hx_fake_http_url(server), path, i);
        reqs[i].url = urls[i];
        reqs[i].timeout_ms = 10000;
    }
    t0 = hx_now_ms();
    perform(http, reqs, n);
    t0 = hx_now_ms() - t0;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].status != 200)
            fail_msg("request %zu: status %ld, %s", i, reqs[i].status,
                     reqs[i].error);
    }
    release_all(reqs, n);
    free(reqs);
    free(urls);
    return t0;
}

static void test_http_100_concurrent_requests(void **state)
{
    struct hr_http *http = hr_http_new(NULL, 100, NULL, 0);
    json_t *seen;
    int64_t took;

    (void)state;
    assert_non_null(http);
    route(F.plain, "{\"path\":\"/c\",\"delay_ms\":300}");
    took = run_many(http, F.plain, "/c", 100);
    printf("100 concurrent HTTP/1.1 requests of 300 ms: %lld ms\n",
           (long long)took);
    /* Serially it would take 30 s. */
    assert_true(took < 5000);
    seen = requests(F.plain, "/c");
    assert_int_equal(json_array_size(seen), 100);
    json_decref(seen);
    hr_http_free(http);
}

static void test_http_max_concurrent_is_respected(void **state)
{
    struct hr_http *http = hr_http_new(NULL, 4, NULL, 0);
    int64_t took;

    (void)state;
    assert_non_null(http);
    route(F.plain, "{\"path\":\"/c\",\"delay_ms\":200}");
    /* 12 requests, 4 at a time: three waves of 200 ms. */
    took = run_many(http, F.plain, "/c", 12);
    assert_true(took >= 550);
    assert_true(took < 3000);
    hr_http_free(http);
}

static void test_http_connections_are_reused(void **state)
{
    struct hr_http_request req = {.url = url(F.plain, "/reuse")};
    json_t *seen;
    json_int_t port;

    (void)state;
    for (int i = 0; i < 3; i++)
        perform(F.http, &req, 1);
    seen = requests(F.plain, "/reuse");
    assert_int_equal(json_array_size(seen), 3);
    port = json_integer_value(
        json_object_get(json_array_get(seen, 0), "remote_port"));
    for (size_t i = 1; i < 3; i++)
        assert_int_equal(json_integer_value(json_object_get(
                             json_array_get(seen, i), "remote_port")),
                         port);
    json_decref(seen);
    hr_http_request_release(&req);
}

/* ---- HTTP/2 over TLS -------------------------------------------------- */

static void test_http_h2_over_tls_with_test_ca(void **state)
{
    char errstr[256];
    struct hr_http *http = hr_http_new(F.ca_file, 100, errstr, sizeof(errstr));
    struct hr_http_request req = {.method = "POST",
                                  .url = url(F.tls, "/push"),
                                  .body = "{\"aps\":{}}",
                                  .body_len = 10};
    json_t *seen;
    json_int_t port;
    int64_t took;

    (void)state;
    if (!http)
        fail_msg("hr_http_new: %s", errstr);
    route(F.tls, "{\"path\":\"/push\",\"status\":200}");
    perform(http, &req, 1);
    if (req.status != 200)
        fail_msg("h2 request: %ld %s", req.status, req.error);
    assert_int_equal(req.http_version, CURL_HTTP_VERSION_2_0);
    seen = requests(F.tls, "/push");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(seen, 0), "http_version")),
                        "2.0");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(seen, 0), "body")),
        "{\"aps\":{}}");
    json_decref(seen);

    /* 100 concurrent streams, multiplexed over the one connection. */
    route(F.tls, "{\"path\":\"/c\",\"delay_ms\":300}");
    took = run_many(http, F.tls, "/c", 100);
    printf("100 concurrent HTTP/2 streams of 300 ms: %lld ms\n",
           (long long)took);
    assert_true(took < 5000);
    seen = requests(F.tls, NULL);
    assert_int_equal(json_array_size(seen), 101);
    port = json_integer_value(
        json_object_get(json_array_get(seen, 0), "remote_port"));
    for (size_t i = 0; i < json_array_size(seen); i++) {
        json_t *e = json_array_get(seen, i);

        assert_string_equal(
            json_string_value(json_object_get(e, "http_version")), "2.0");
        assert_int_equal(json_integer_value(json_object_get(e, "remote_port")),
                         port);
    }
    json_decref(seen);
    hr_http_request_release(&req);
    hr_http_free(http);
}

static void test_http_tls_needs_the_ca(void **state)
{
    struct hr_http_request req = {.url = url(F.tls, "/push")};

    (void)state;
    /* F.http trusts only the system store. */
    perform(F.http, &req, 1);
    assert_int_equal(req.curl_code, CURLE_PEER_FAILED_VERIFICATION);
    assert_int_equal(req.status, 0);
    assert_int_equal(hr_http_classify(&req), HR_ERR_TRANSIENT);
    hr_http_request_release(&req);
}

static void test_http_new_rejects_bad_arguments(void **state)
{
    char errstr[256];
    char *not_pem;

    (void)state;
    assert_null(hr_http_new(NULL, 0, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "out of range"));
    assert_null(
        hr_http_new(NULL, HR_HTTP_MAX_CONCURRENT + 1, errstr, sizeof(errstr)));
    assert_null(hr_http_new("/nonexistent/ca.pem", 4, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "/nonexistent/ca.pem"));
    /* A key file is not a CA bundle. */
    not_pem = F.key_file;
    assert_null(hr_http_new(not_pem, 4, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "no PEM certificate"));
}

static void test_http_url_redact(void **state)
{
    static const char *const cases[][2] = {
        {"https://h.example/a/b?token=s3cr3t#frag", "https://h.example/a/b"},
        {"https://user:pw@h.example:8443/a?x=1", "https://h.example:8443/a"},
        {"http://h/", "http://h/"},
        {"http://h?q=1", "http://h"},
        {"http://u@h#x", "http://h"},
        {"https://h/p@q", "https://h/p@q"}, /* '@' in the path stays */
    };
    char buf[128], tiny[8];

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(cases); i++)
        assert_string_equal(hr_http_url_redact(cases[i][0], buf, sizeof(buf)),
                            cases[i][1]);
    assert_string_equal(hr_http_url_redact(NULL, buf, sizeof(buf)), "");
    assert_string_equal(hr_http_url_redact("https://h/abc", tiny, sizeof(tiny)),
                        "https:/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_http_jwt_hs256_webhook, reset),
        cmocka_unit_test_setup(test_http_jwt_rs256_webhook, reset),
        cmocka_unit_test_setup(test_http_jwt_es256_webhook, reset),
        cmocka_unit_test_setup(test_http_missing_token_is_auth, reset),
        cmocka_unit_test_setup(test_http_statuses_are_classified, reset),
        cmocka_unit_test_setup(test_http_429_retry_after, reset),
        cmocka_unit_test_setup(test_http_status_sequence, reset),
        cmocka_unit_test_setup(test_http_timeout_is_transient, reset),
        cmocka_unit_test_setup(test_http_connection_refused_is_transient,
                               reset),
        cmocka_unit_test_setup(test_http_reset_connection_is_transient, reset),
        cmocka_unit_test_setup(test_http_invalid_request_fails_alone, reset),
        cmocka_unit_test_setup(test_http_methods_headers_and_bodies, reset),
        cmocka_unit_test_setup(test_http_response_body_is_capped, reset),
        cmocka_unit_test_setup(test_http_100_concurrent_requests, reset),
        cmocka_unit_test_setup(test_http_max_concurrent_is_respected, reset),
        cmocka_unit_test_setup(test_http_connections_are_reused, reset),
        cmocka_unit_test_setup(test_http_h2_over_tls_with_test_ca, reset),
        cmocka_unit_test_setup(test_http_tls_needs_the_ca, reset),
        cmocka_unit_test(test_http_new_rejects_bad_arguments),
        cmocka_unit_test(test_http_url_redact),
    };

    if (!hx_node_available()) {
        fprintf(stderr, "test_http: node is not on PATH, skipping\n");
        return HX_SKIP;
    }
    return cmocka_run_group_tests_name("http", tests, group_setup,
                                       group_teardown);
}
