/*
 * hr_gcp against a real redis-server and a fake token endpoint
 * (tests/harness/fake_http.js, plain HTTP): one fetch serves many calls and
 * two replicas (two struct hr_gcp_sa, two Redis clients), forget() and
 * refresh ahead of expiry, a replica waiting for the lock holder's token or
 * falling back to an older one, a lock left behind, endpoint errors, a
 * Redis outage, and the assertion itself (verified with the public key).
 */
#include <openssl/evp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "harness.h"
#include "hr_gcp.h"
#include "hr_jwt.h"
#include "hr_redis.h"
#include "hr_time.h"
#include "hr_tls.h"
#include "hx_fake_http.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define EMAIL  "herald@demo-project.iam.gserviceaccount.com"
#define KEY_ID "5f3c0123456789abcdef0123456789abcdef0123"
#define SCOPE  HR_GCP_SCOPE_FCM
#define TKEY   "herald:gcp:token:" EMAIL ":" SCOPE
#define LKEY   TKEY ":lock"
/* grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer, form-encoded */
#define GRANT_URN "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
#define GRANT     "grant_type=" GRANT_URN

static struct hx_redis *server;
static struct hx_fake_http *fake;
static struct hr_redis *redis[2];
static struct hr_tls *tls;
static redisContext *raw;
static char *dir, *sa_path, *rsa_pub, token_uri[128];

/* One struct per replica, fresh for every test (they hold tokens). */
static struct hr_gcp_sa *replica[2];

static int group_setup(void **state)
{
    char errstr[256], *rsa_priv = NULL;
    json_t *doc;

    (void)state;
    /* Writing to the stopped redis-server must fail, not kill us (the
     * workers ignore SIGPIPE too). */
    signal(SIGPIPE, SIG_IGN);
    server = hx_redis_start(NULL);
    if (!server) {
        fprintf(stderr, "redis-server not found or did not start: skipped\n");
        exit(HX_SKIP);
    }
    if (!hx_node_available()) {
        fprintf(stderr, "node not found: skipped\n");
        hx_redis_free(server);
        exit(HX_SKIP);
    }
    fake = hx_fake_http_start(NULL);
    dir = hx_tmpdir_new("gcp");
    if (!fake || !dir || hx_keypair_pem("RSA", &rsa_priv, &rsa_pub))
        return -1;
    snprintf(token_uri, sizeof(token_uri), "%s/token", hx_fake_http_url(fake));
    doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
                    "project_id", "demo-project", "private_key_id", KEY_ID,
                    "private_key", rsa_priv, "client_email", EMAIL, "token_uri",
                    token_uri);
    free(rsa_priv);
    sa_path = malloc(strlen(dir) + 16);
    if (!sa_path)
        return -1;
    snprintf(sa_path, strlen(dir) + 16, "%s/sa.json", dir);
    if (!doc || json_dump_file(doc, sa_path, 0))
        return -1;
    json_decref(doc);
    for (int i = 0; i < 2; i++) {
        redis[i] = hr_redis_new(hx_redis_url(server), "herald:", errstr,
                                sizeof(errstr));
        if (!redis[i]) {
            fprintf(stderr, "%s\n", errstr);
            return -1;
        }
    }
    tls = hr_tls_new(NULL, errstr, sizeof(errstr));
    raw = hx_redis_connect(server);
    return tls && raw ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        hr_redis_free(redis[i]);
    if (raw)
        redisFree(raw);
    hr_tls_free(tls);
    hx_fake_http_free(fake);
    hx_redis_free(server);
    hx_tmpdir_remove(dir);
    free(dir);
    free(sa_path);
    free(rsa_pub);
    return 0;
}

/* The endpoint answers @token valid for @expires_in seconds, or @status
 * with Google's error shape when it is not 200. */
static void endpoint_answers(int status, const char *token, int expires_in)
{
    json_t *route;

    if (status == 200)
        route = json_pack("{s:s, s:i, s:{s:s, s:i, s:s}}", "path", "/token",
                          "status", status, "body", "access_token", token,
                          "expires_in", expires_in, "token_type", "Bearer");
    else
        route = json_pack("{s:s, s:i, s:{s:s, s:s}}", "path", "/token",
                          "status", status, "body", "error", "invalid_grant",
                          "error_description", "Invalid JWT Signature.");
    assert_non_null(route);
    assert_int_equal(hx_fake_http_route_json(fake, route), 0);
    json_decref(route);
}

static int test_setup(void **state)
{
    char errstr[256];

    (void)state;
    hx_redis_flushall(server);
    if (hx_fake_http_reset(fake))
        return -1;
    endpoint_answers(200, "tok-1", 3600);
    for (int i = 0; i < 2; i++) {
        replica[i] = hr_gcp_sa_load(sa_path, NULL, errstr, sizeof(errstr));
        if (!replica[i]) {
            fprintf(stderr, "%s\n", errstr);
            return -1;
        }
    }
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        hr_gcp_sa_free(replica[i]);
        replica[i] = NULL;
    }
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

/* Replica @r's token, which must be @want; returns its expiry. */
static int64_t token_is(int r, const char *want)
{
    char out[HR_GCP_TOKEN_MAX], errstr[256] = "";
    int64_t exp = 0;
    enum hr_gcp_result res;

    res = hr_gcp_token(replica[r], redis[r], tls, SCOPE, out, sizeof(out), &exp,
                       errstr, sizeof(errstr));
    if (res != HR_GCP_OK)
        fail_msg("replica %d: token failed (%d): %s", r, (int)res, errstr);
    assert_string_equal(out, want);
    return exp;
}

/* Replica @r fails with @want, an error that mentions @needle, and
 * leaves the output buffer alone. */
static void token_fails(int r, enum hr_gcp_result want, const char *needle)
{
    char out[HR_GCP_TOKEN_MAX] = "untouched", errstr[256] = "";
    enum hr_gcp_result res;

    res = hr_gcp_token(replica[r], redis[r], tls, SCOPE, out, sizeof(out), NULL,
                       errstr, sizeof(errstr));
    if (res != want)
        fail_msg("replica %d: result %d, want %d (%s)", r, (int)res, (int)want,
                 errstr);
    assert_string_equal(out, "untouched");
    if (!strstr(errstr, needle))
        fail_msg("error '%s' does not mention '%s'", errstr, needle);
}

/* Requests the endpoint received (a new reference). */
static json_t *requests(void)
{
    json_t *reqs = hx_fake_http_requests(fake, "/token");

    assert_non_null(reqs);
    return reqs;
}

static size_t request_count(void)
{
    json_t *reqs = requests();
    size_t n = json_array_size(reqs);

    json_decref(reqs);
    return n;
}

static redisReply *raw_cmd(const char *fmt, const char *a, const char *b)
{
    redisReply *reply = redisCommand(raw, fmt, a, b);

    assert_non_null(reply);
    return reply;
}

static bool key_exists(const char *key)
{
    redisReply *reply = raw_cmd("EXISTS %s", key, NULL);
    bool yes = reply->integer == 1;

    freeReplyObject(reply);
    return yes;
}

/* Store a token in Redis the way a replica would, by hand. */
static void store_token(const char *token, int64_t life_ms)
{
    char value[256], px[32];
    redisReply *reply;

    snprintf(value, sizeof(value), "%lld %lld %s",
             (long long)(hr_time_now_ms() + life_ms - HR_GCP_REFRESH_MARGIN_MS),
             (long long)(hr_time_now_ms() + life_ms), token);
    snprintf(px, sizeof(px), "%lld", (long long)life_ms);
    reply = redisCommand(raw, "SET %s %s PX %s", TKEY, value, px);
    assert_non_null(reply);
    freeReplyObject(reply);
}

/* Another replica holds the lock for @ms. */
static void hold_lock(int64_t ms)
{
    char px[32];
    redisReply *reply;

    snprintf(px, sizeof(px), "%lld", (long long)ms);
    reply = redisCommand(raw, "SET %s other-replica NX PX %s", LKEY, px);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
}

/* ---- sharing ---------------------------------------------------------- */

static void test_gcp_one_fetch_serves_many_calls(void **state)
{
    int64_t before = hr_time_now_ms(), exp = 0;
    redisReply *reply;
    long long stored, refresh_at;

    (void)state;
    for (int i = 0; i < 50; i++)
        exp = token_is(0, "tok-1");
    assert_int_equal(hr_gcp_sa_fetches(replica[0]), 1);
    assert_int_equal(request_count(), 1);
    assert_true(exp >= before + 3600 * 1000);
    assert_true(exp <= hr_time_now_ms() + 3600 * 1000);

    /* Redis holds "<refresh_at_ms> <expires_ms> <token>" with a TTL of its
     * life; the lock was released. */
    reply = raw_cmd("GET %s", TKEY, NULL);
    assert_int_equal(reply->type, REDIS_REPLY_STRING);
    assert_int_equal(sscanf(reply->str, "%lld %lld", &refresh_at, &stored), 2);
    assert_int_equal(stored, exp);
    assert_int_equal(refresh_at, exp - HR_GCP_REFRESH_MARGIN_MS);
    assert_string_equal(strrchr(reply->str, ' ') + 1, "tok-1");
    freeReplyObject(reply);
    reply = raw_cmd("PTTL %s", TKEY, NULL);
    assert_true(reply->integer > 3590 * 1000 && reply->integer <= 3600 * 1000);
    freeReplyObject(reply);
    assert_false(key_exists(LKEY));
}

static void test_gcp_replicas_share_one_fetch(void **state)
{
    (void)state;
    token_is(0, "tok-1");
    for (int i = 0; i < 10; i++) {
        token_is(1, "tok-1");
        token_is(0, "tok-1");
    }
    assert_int_equal(hr_gcp_sa_fetches(replica[0]), 1);
    assert_int_equal(hr_gcp_sa_fetches(replica[1]), 0);
    assert_int_equal(request_count(), 1);
}

static void test_gcp_without_redis_each_struct_fetches_once(void **state)
{
    char out[HR_GCP_TOKEN_MAX], errstr[256];

    (void)state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(hr_gcp_token(replica[0], NULL, tls, SCOPE, out,
                                      sizeof(out), NULL, errstr,
                                      sizeof(errstr)),
                         HR_GCP_OK);
    assert_string_equal(out, "tok-1");
    assert_int_equal(hr_gcp_sa_fetches(replica[0]), 1);
    assert_false(key_exists(TKEY));
}

/* ---- the assertion ---------------------------------------------------- */

static void test_gcp_assertion_verifies_with_the_right_claims(void **state)
{
    json_t *reqs, *req, *claims = NULL, *hdr;
    const char *body, *ctype;
    char errstr[256] = "", *jwt, *amp;
    int64_t before = hr_time_now_ms() / 1000;
    size_t head_len;

    (void)state;
    token_is(0, "tok-1");
    reqs = requests();
    assert_int_equal(json_array_size(reqs), 1);
    req = json_array_get(reqs, 0);
    assert_string_equal(json_string_value(json_object_get(req, "method")),
                        "POST");
    ctype = json_string_value(
        json_object_get(json_object_get(req, "headers"), "content-type"));
    assert_non_null(ctype);
    assert_non_null(strstr(ctype, "application/x-www-form-urlencoded"));

    /* grant_type=<urn, URL-encoded>&assertion=<jwt> */
    body = json_string_value(json_object_get(req, "body"));
    assert_non_null(body);
    assert_int_equal(strncmp(body, GRANT "&assertion=", strlen(GRANT) + 11), 0);
    jwt = strdup(body + strlen(GRANT) + 11);
    assert_non_null(jwt);
    if ((amp = strchr(jwt, '&')))
        *amp = '\0';

    if (hr_jwt_verify(jwt, "RS256", rsa_pub, strlen(rsa_pub), &claims, errstr,
                      sizeof(errstr)))
        fail_msg("assertion does not verify: %s", errstr);
    assert_int_equal(json_object_size(claims), 5);
    assert_string_equal(json_string_value(json_object_get(claims, "iss")),
                        EMAIL);
    assert_string_equal(json_string_value(json_object_get(claims, "scope")),
                        SCOPE);
    assert_string_equal(json_string_value(json_object_get(claims, "aud")),
                        token_uri);
    assert_true(json_integer_value(json_object_get(claims, "iat")) >= before);
    assert_true(json_integer_value(json_object_get(claims, "iat")) <=
                hr_time_now_ms() / 1000);
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")),
                     json_integer_value(json_object_get(claims, "iat")) + 3600);

    /* The header names the key: {"alg":"RS256","typ":"JWT","kid":...}. */
    head_len = (size_t)(strchr(jwt, '.') - jwt);
    {
        char *std = calloc(1, head_len + 4);
        unsigned char *dec = calloc(1, head_len + 4);
        size_t n = head_len;

        assert_non_null(std);
        assert_non_null(dec);
        for (size_t i = 0; i < head_len; i++)
            std[i] = jwt[i] == '-' ? '+' : jwt[i] == '_' ? '/' : jwt[i];
        while (n % 4)
            std[n++] = '=';
        assert_true(EVP_DecodeBlock(dec, (unsigned char *)std, (int)n) > 0);
        hdr = json_loads((char *)dec, JSON_DISABLE_EOF_CHECK, NULL);
        assert_non_null(hdr);
        assert_string_equal(json_string_value(json_object_get(hdr, "alg")),
                            "RS256");
        assert_string_equal(json_string_value(json_object_get(hdr, "kid")),
                            KEY_ID);
        json_decref(hdr);
        free(std);
        free(dec);
    }
    json_decref(claims);
    json_decref(reqs);
    free(jwt);
}

/* ---- forget and refresh ----------------------------------------------- */

static void test_gcp_forget_fetches_again(void **state)
{
    (void)state;
    token_is(0, "tok-1");
    token_is(1, "tok-1");
    endpoint_answers(200, "tok-2", 3600);

    /* Replica 0 is told tok-1 is bad: its copy and Redis's go. */
    hr_gcp_token_forget(replica[0], redis[0], SCOPE, "tok-1");
    assert_false(key_exists(TKEY));
    token_is(0, "tok-2");
    assert_int_equal(hr_gcp_sa_fetches(replica[0]), 2);

    /* Replica 1 learns it later: Redis's tok-2 survives its forget(). */
    token_is(1, "tok-1");
    hr_gcp_token_forget(replica[1], redis[1], SCOPE, "tok-1");
    assert_true(key_exists(TKEY));
    token_is(1, "tok-2");
    assert_int_equal(hr_gcp_sa_fetches(replica[1]), 0);
    assert_int_equal(request_count(), 2);

    /* forget(NULL) drops only the struct's copy. */
    hr_gcp_token_forget(replica[1], redis[1], SCOPE, NULL);
    assert_true(key_exists(TKEY));
    token_is(1, "tok-2");
    assert_int_equal(request_count(), 2);
}

static void test_gcp_token_near_expiry_is_refreshed(void **state)
{
    int64_t exp;

    (void)state;
    /* 200 s left is inside the 5-minute margin: still handed out once,
     * refreshed by the next call. */
    endpoint_answers(200, "tok-short", 200);
    exp = token_is(0, "tok-short");
    assert_true(exp - hr_time_now_ms() <= 200 * 1000);
    endpoint_answers(200, "tok-2", 3600);
    token_is(0, "tok-2");
    token_is(0, "tok-2");
    token_is(1, "tok-2");
    assert_int_equal(hr_gcp_sa_fetches(replica[0]), 2);
    assert_int_equal(hr_gcp_sa_fetches(replica[1]), 0);
}

static void test_gcp_expired_token_is_fetched_again(void **state)
{
    (void)state;
    endpoint_answers(200, "tok-1s", 1);
    token_is(0, "tok-1s");
    hx_sleep_ms(1100);
    assert_false(key_exists(TKEY)); /* its TTL was its life */
    endpoint_answers(200, "tok-2", 3600);
    token_is(1, "tok-2");
    token_is(0, "tok-2");
    assert_int_equal(hr_gcp_sa_fetches(replica[0]), 1);
    assert_int_equal(hr_gcp_sa_fetches(replica[1]), 1);
}

/* ---- the lock --------------------------------------------------------- */

/* The lock holder, in another thread: stores its token after 300 ms. */
static void *holder_thread(void *arg)
{
    redisContext *c = arg;
    char value[128];
    redisReply *reply;

    hr_time_sleep_ms(300);
    snprintf(value, sizeof(value), "%lld %lld tok-holder",
             (long long)(hr_time_now_ms() + 3300 * 1000),
             (long long)(hr_time_now_ms() + 3600 * 1000));
    reply = redisCommand(c, "SET %s %s PX 3600000", TKEY, value);
    freeReplyObject(reply);
    return NULL;
}

static void test_gcp_waiter_gets_the_holders_token(void **state)
{
    redisContext *c = hx_redis_connect(server);
    int64_t t0 = hx_now_ms(), took;
    pthread_t th;

    (void)state;
    assert_non_null(c);
    hold_lock(10000);
    assert_int_equal(pthread_create(&th, NULL, holder_thread, c), 0);
    token_is(1, "tok-holder");
    took = hx_now_ms() - t0;
    pthread_join(th, NULL);
    redisFree(c);
    assert_true(took >= 250 && took < HR_GCP_WAIT_MS);
    assert_int_equal(hr_gcp_sa_fetches(replica[1]), 0);
    assert_int_equal(request_count(), 0);
}

static void test_gcp_waiter_falls_back_to_an_older_token(void **state)
{
    int64_t t0;

    (void)state;
    /* Valid for 2 more minutes (inside the margin) while another replica
     * holds the lock: the old token serves at once, nobody waits. */
    store_token("tok-old", 120 * 1000);
    hold_lock(10000);
    t0 = hx_now_ms();
    token_is(1, "tok-old");
    assert_true(hx_now_ms() - t0 < HR_GCP_WAIT_MS / 2);
    assert_int_equal(request_count(), 0);

    /* Nothing valid at all: a transient failure. */
    hx_redis_flushall(server);
    hold_lock(10000);
    token_fails(0, HR_GCP_TRANSIENT, "another replica");
    assert_int_equal(request_count(), 0);
}

static void test_gcp_lock_left_behind_is_taken_over(void **state)
{
    int64_t t0 = hx_now_ms();

    (void)state;
    /* A replica took the lock and died: once it expires, the waiter
     * fetches itself. */
    hold_lock(400);
    token_is(1, "tok-1");
    assert_true(hx_now_ms() - t0 >= 350);
    assert_int_equal(hr_gcp_sa_fetches(replica[1]), 1);
    assert_false(key_exists(LKEY));
}

/* ---- failures --------------------------------------------------------- */

static void test_gcp_endpoint_errors_are_classified(void **state)
{
    (void)state;
    endpoint_answers(400, NULL, 0);
    token_fails(0, HR_GCP_AUTH, "invalid_grant");
    assert_false(key_exists(LKEY)); /* released on failure */
    endpoint_answers(503, NULL, 0);
    token_fails(0, HR_GCP_TRANSIENT, "503");
    assert_int_equal(hr_gcp_sa_fetches(replica[0]), 2);

    /* With a token that has not expired, a failed refresh hands it out. */
    endpoint_answers(200, "tok-short", 200);
    token_is(0, "tok-short");
    endpoint_answers(503, NULL, 0);
    token_is(0, "tok-short");
    assert_int_equal(hr_gcp_sa_fetches(replica[0]), 4);
}

static void test_gcp_unreachable_endpoint_is_transient(void **state)
{
    char errstr[256], path[512];
    struct hr_gcp_sa *sa;
    int port = hx_free_port();

    (void)state;
    snprintf(path, sizeof(path), "http://127.0.0.1:%d/token", port);
    sa = hr_gcp_sa_load(sa_path, path, errstr, sizeof(errstr));
    assert_non_null(sa);
    hr_gcp_sa_free(replica[0]);
    replica[0] = sa;
    token_fails(0, HR_GCP_TRANSIENT, "unreachable");
}

static void test_gcp_redis_outage(void **state)
{
    (void)state;
    /* Replica 0 holds a token inside the margin; replica 1 none. */
    endpoint_answers(200, "tok-short", 200);
    token_is(0, "tok-short");
    assert_int_equal(hx_redis_stop_server(server), 0);
    token_is(0, "tok-short");
    token_fails(1, HR_GCP_REDIS, "");
    assert_int_equal(hr_gcp_sa_fetches(replica[1]), 0);
    assert_int_equal(hx_redis_restart_server(server), 0);
    redisFree(raw);
    raw = hx_redis_connect(server);
    assert_non_null(raw);
    endpoint_answers(200, "tok-2", 3600);
    token_is(1, "tok-2");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_gcp_one_fetch_serves_many_calls),
        T(test_gcp_replicas_share_one_fetch),
        T(test_gcp_without_redis_each_struct_fetches_once),
        T(test_gcp_assertion_verifies_with_the_right_claims),
        T(test_gcp_forget_fetches_again),
        T(test_gcp_token_near_expiry_is_refreshed),
        T(test_gcp_expired_token_is_fetched_again),
        T(test_gcp_waiter_gets_the_holders_token),
        T(test_gcp_waiter_falls_back_to_an_older_token),
        T(test_gcp_lock_left_behind_is_taken_over),
        T(test_gcp_endpoint_errors_are_classified),
        T(test_gcp_unreachable_endpoint_is_transient),
        T(test_gcp_redis_outage),
    };
#undef T

    return cmocka_run_group_tests_name("gcp", tests, group_setup,
                                       group_teardown);
}
