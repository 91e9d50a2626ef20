/*
 * herald-subs end to end, App Store path: the worker binary against a real
 * redis-server and herald-devbroker, with notifications minted here and
 * signed by Apple's test chain (shared/vectors/appstore/certs: testLeaf
 * under testIntermediate under testCA, the configured root), checked in
 * Redis (herald:entitlements:{<appAccountToken>}) and on the
 * entitlements and dead-letter topics.
 *
 * Skipped (exit 77) when node, redis-server or the vectors are missing
 * (HERALD_SHARED_DIR, default <source>/../shared).
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "harness.h"
#include "hr_base64.h"
#include "hx_fake_http.h"
#include "hx_sqs.h"
#include "push_fixture.h"

#define T(name) name ":2," name ".retry:1," name ".dlq:1," name ".ent:1,"
#define TOPICS  T("s-apple") T("s-google") T("s-gcircuit") "s-none:1"

#define USER   "7e3f9b2a-4c1d-4e8f-9a6b-1d2c3e4f5a6b"
#define BUNDLE "com.example"
/* 2026-01-01T00:00:00Z, inside the test chain's validity (2023-2033). */
#define T0  INT64_C(1767225600000)
#define DAY INT64_C(86400000)

static struct pf_env *env;
static char shared[900];
static EVP_PKEY *leaf_key;
static char *x5c[3];
static bool have_vectors;

struct worker {
    struct hx_proc *proc;
    int port;
    char log[600];
};

/* ---- vectors and minting ------------------------------------------------ */

static const char *vec(const char *rel)
{
    static char bufs[2][1200];
    static unsigned next;
    char *buf = bufs[next++ % 2];

    snprintf(buf, sizeof(bufs[0]), "%s/vectors/appstore/%s", shared, rel);
    return buf;
}

/* Standard base64 of the DER of the PEM certificate @rel, or NULL. */
static char *x5c_file(const char *rel)
{
    BIO *bio = BIO_new_file(vec(rel), "r");
    X509 *x509 = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    unsigned char *der = NULL;
    char *b64 = NULL;
    int len;

    BIO_free(bio);
    if (!x509)
        return NULL;
    len = i2d_X509(x509, &der);
    if (len > 0)
        b64 = hr_base64_encode(der, (size_t)len, NULL);
    OPENSSL_free(der);
    X509_free(x509);
    return b64;
}

static char *b64url_str(const char *s)
{
    return hr_base64url_encode(s, strlen(s), NULL);
}

/* A compact ES256 JWS of @payload (JSON text) with the test chain in
 * x5c, signed by testLeaf.key (R || S). */
static char *mint(const char *payload)
{
    json_t *hdr = json_pack("{s:s, s:[s,s,s]}", "alg", "ES256", "x5c", x5c[0],
                            x5c[1], x5c[2]);
    char *htext = json_dumps(hdr, JSON_COMPACT);
    char *h = b64url_str(htext), *p = b64url_str(payload), *sig64, *out;
    size_t in_len = strlen(h) + strlen(p) + 2, der_len = 128;
    char *input = malloc(in_len);
    unsigned char der[128], raw[64];
    const unsigned char *dp = der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    const BIGNUM *r, *s;
    ECDSA_SIG *sig;

    assert_non_null(input);
    snprintf(input, in_len, "%s.%s", h, p);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, leaf_key),
                     1);
    assert_int_equal(EVP_DigestSign(md, der, &der_len,
                                    (const unsigned char *)input,
                                    strlen(input)),
                     1);
    EVP_MD_CTX_free(md);
    sig = d2i_ECDSA_SIG(NULL, &dp, (long)der_len);
    assert_non_null(sig);
    ECDSA_SIG_get0(sig, &r, &s);
    assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
    assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
    ECDSA_SIG_free(sig);
    sig64 = hr_base64url_encode(raw, sizeof(raw), NULL);
    out = malloc(in_len + strlen(sig64) + 1);
    assert_non_null(out);
    snprintf(out, in_len + strlen(sig64) + 1, "%s.%s", input, sig64);
    free(sig64);
    free(input);
    free(h);
    free(p);
    free(htext);
    json_decref(hdr);
    return out;
}

/* The body {"signedPayload": ...} of a notification @type/@subtype with id
 * @uuid signed at @signed_ms, for a subscription expiring at @expires_ms
 * with auto-renew @auto_renew (-1: no renewal info; @expires_ms 0: no
 * transaction). malloc'd JSON text. */
static char *notification(const char *type,
                          const char *subtype,
                          const char *uuid,
                          int64_t signed_ms,
                          int64_t expires_ms,
                          int auto_renew)
{
    json_t *data =
        json_pack("{s:s, s:s}", "bundleId", BUNDLE, "environment", "Sandbox");
    json_t *n, *body;
    char *text, *jws, *out;

    if (expires_ms) {
        json_t *tx = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s}",
            "originalTransactionId", "1000", "transactionId", uuid, "productId",
            "pro.monthly", "bundleId", BUNDLE, "environment", "Sandbox",
            "purchaseDate", (json_int_t)(expires_ms - 30 * DAY), "expiresDate",
            (json_int_t)expires_ms, "signedDate", (json_int_t)signed_ms,
            "appAccountToken", USER, "type", "Auto-Renewable Subscription");

        text = json_dumps(tx, JSON_COMPACT);
        jws = mint(text);
        json_object_set_new(data, "signedTransactionInfo", json_string(jws));
        free(jws);
        free(text);
        json_decref(tx);
    }
    if (auto_renew >= 0) {
        json_t *ri = json_pack(
            "{s:s, s:s, s:s, s:i, s:I}", "originalTransactionId", "1000",
            "autoRenewProductId", "pro.monthly", "environment", "Sandbox",
            "autoRenewStatus", auto_renew, "signedDate", (json_int_t)signed_ms);

        text = json_dumps(ri, JSON_COMPACT);
        jws = mint(text);
        json_object_set_new(data, "signedRenewalInfo", json_string(jws));
        free(jws);
        free(text);
        json_decref(ri);
    }
    n = json_pack("{s:s, s:s, s:I, s:s, s:o}", "notificationType", type,
                  "notificationUUID", uuid, "signedDate", (json_int_t)signed_ms,
                  "version", "2.0", "data", data);
    if (subtype)
        json_object_set_new(n, "subtype", json_string(subtype));
    text = json_dumps(n, JSON_COMPACT);
    jws = mint(text);
    body = json_pack("{s:s}", "signedPayload", jws);
    out = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_decref(n);
    free(text);
    free(jws);
    return out;
}

/* Produce @value as is (a bare store body) keyed by @key. */
static void send_raw(const char *topic, const char *key, const char *value)
{
    rd_kafka_t *rk = hx_producer_new(hx_broker_bootstraps(env->broker));

    assert_non_null(rk);
    assert_int_equal(
        hx_produce(rk, topic, key, strlen(key), value, strlen(value), NULL), 0);
    assert_int_equal(hx_producer_flush_free(rk, 10000), 0);
}

/* ---- worker ------------------------------------------------------------- */

static int group_setup(void **state)
{
    const char *dir = getenv("HERALD_SHARED_DIR");

    (void)state;
    snprintf(shared, sizeof(shared), "%s",
             dir && *dir ? dir : HX_SOURCE_DIR "/../shared");
    {
        BIO *bio = BIO_new_file(vec("certs/testLeaf.key"), "r");

        leaf_key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
    }
    x5c[0] = x5c_file("certs/testLeaf.pem");
    x5c[1] = x5c_file("certs/testIntermediate.pem");
    x5c[2] = x5c_file("certs/testCA.pem");
    have_vectors = leaf_key && x5c[0] && x5c[1] && x5c[2];
    if (!have_vectors) {
        fprintf(stderr,
                "App Store vectors missing under %s (set "
                "HERALD_SHARED_DIR)\n",
                shared);
        exit(77);
    }
    env = pf_env_start(TOPICS);
    return env ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    pf_env_free(env);
    EVP_PKEY_free(leaf_key);
    for (size_t i = 0; i < 3; i++)
        free(x5c[i]);
    return 0;
}

static struct worker *worker_start(const char *topic, const char *const *extra)
{
    static int seq;
    struct worker *w = calloc(1, sizeof(*w));
    char vars[2][1200];
    const char *envp[40];
    size_t n = 0;

    for (size_t i = 0; extra && extra[i]; i++)
        envp[n++] = extra[i];
    snprintf(vars[0], sizeof(vars[0]), "HERALD_SUBS_ENTITLEMENTS_TOPIC=%s.ent",
             topic);
    snprintf(vars[1], sizeof(vars[1]), "HERALD_APPSTORE_ROOT_CERTS=%s",
             vec("certs/testCA.pem"));
    envp[n++] = vars[0];
    envp[n++] = vars[1];
    envp[n++] = "HERALD_APPSTORE_BUNDLE_ID=" BUNDLE;
    envp[n++] = "HERALD_APPSTORE_ENVIRONMENTS=Sandbox";
    envp[n++] = "HERALD_APPSTORE_STRICT_X509=false";
    envp[n] = NULL;
    snprintf(w->log, sizeof(w->log), "%s/subs-%s-%d.log", env->dir, topic,
             ++seq);
    w->proc = hx_worker_spawn("subs", env->broker, env->redis, topic, envp,
                              w->log, &w->port);
    assert_non_null(w->proc);
    return w;
}

static void worker_stop(struct worker *w)
{
    assert_int_equal(hx_worker_stop(w->proc, 15000), 0);
    hx_proc_free(w->proc);
    free(w);
}

struct wait_arg {
    const struct worker *w;
    const char *prefix;
    double n;
};

static bool metric_reached(void *p)
{
    struct wait_arg *a = p;

    return hx_metric(a->w->port, a->prefix) >= a->n;
}

static void wait_metric(const struct worker *w, const char *prefix, double n)
{
    struct wait_arg a = {w, prefix, n};

    if (hx_wait_until(metric_reached, &a, 20000)) {
        char url[64], *text = NULL;
        long status = 0;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", w->port);
        if (!hx_http_get(url, &status, &text) && text)
            fprintf(stderr, "%s\n", text);
        free(text);
        fail_msg("%s did not reach %g (log %s)", prefix, n, w->log);
    }
}

/* The entitlement of USER for pro.monthly, parsed (new reference), or
 * NULL when there is none. */
static json_t *entitlement(const char *topic)
{
    redisContext *c = hx_redis_connect(env->redis);
    redisReply *r =
        redisCommand(c, "HGET %s:entitlements:{%s} pro.monthly", topic, USER);
    json_t *e = NULL;

    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING)
        e = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    redisFree(c);
    return e;
}

static void assert_entitlement(const char *topic,
                               const char *state,
                               int64_t expires_ms,
                               bool auto_renew)
{
    json_t *e = entitlement(topic);
    char want[40];
    time_t secs = (time_t)(expires_ms / 1000);
    struct tm tm;

    assert_non_null(e);
    gmtime_r(&secs, &tm);
    strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    assert_string_equal(json_string_value(json_object_get(e, "state")), state);
    assert_string_equal(json_string_value(json_object_get(e, "provider")),
                        "appstore");
    assert_string_equal(
        json_string_value(json_object_get(e, "subscription_id")), "1000");
    assert_string_equal(json_string_value(json_object_get(e, "expires_at")),
                        want);
    assert_int_equal(json_is_true(json_object_get(e, "auto_renew")),
                     auto_renew);
    assert_string_equal(json_string_value(json_object_get(e, "environment")),
                        "Sandbox");
    json_decref(e);
}

#define APPLIED(result)                                                       \
    "herald_subs_applied_total{worker=\"subs\",provider=\"appstore\",result=" \
    "\"" result "\"}"

/* ---- tests -------------------------------------------------------------- */

/* Buy, renew, expire; then a duplicate, an older snapshot, a forgery,
 * Apple's TEST vector and a Google body. */
static void test_appstore_lifecycle(void **state)
{
    const char *topic = "s-apple";
    struct worker *w = worker_start(topic, NULL);
    char *body, *forged, *test_jws;
    json_t *recs, *dlq;
    size_t len;

    (void)state;
    /* SUBSCRIBED/INITIAL_BUY, bare */
    body = notification("SUBSCRIBED", "INITIAL_BUY",
                        "11111111-1111-4111-8111-111111111111", T0,
                        T0 + 30 * DAY, 1);
    send_raw(topic, "1000", body);
    free(body);
    wait_metric(w, APPLIED("applied"), 1);
    assert_entitlement(topic, "active", T0 + 30 * DAY, true);

    /* DID_RENEW, wrapped in a CloudEvent */
    body =
        notification("DID_RENEW", NULL, "22222222-2222-4222-8222-222222222222",
                     T0 + 30 * DAY, T0 + 60 * DAY, 1);
    assert_int_equal(pf_send(env, topic, "1000", "appstore.notification",
                             "ce-renew-1", body),
                     0);
    free(body);
    wait_metric(w, APPLIED("applied"), 2);
    assert_entitlement(topic, "active", T0 + 60 * DAY, true);

    /* EXPIRED/VOLUNTARY, then the same notification again */
    body = notification("EXPIRED", "VOLUNTARY",
                        "33333333-3333-4333-8333-333333333333", T0 + 61 * DAY,
                        T0 + 60 * DAY, 0);
    send_raw(topic, "1000", body);
    wait_metric(w, APPLIED("applied"), 3);
    assert_entitlement(topic, "expired", T0 + 60 * DAY, false);
    send_raw(topic, "1000", body);
    free(body);
    wait_metric(w, APPLIED("duplicate"), 1);

    /* an older snapshot (signed before the expiry) changes nothing */
    body =
        notification("DID_RENEW", NULL, "44444444-4444-4444-8444-444444444444",
                     T0 + 45 * DAY, T0 + 90 * DAY, 1);
    send_raw(topic, "1000", body);
    free(body);
    wait_metric(w, APPLIED("stale"), 1);
    assert_entitlement(topic, "expired", T0 + 60 * DAY, false);

    /* a forged one: another payload under the same signature */
    body = notification("SUBSCRIBED", "RESUBSCRIBE",
                        "55555555-5555-4555-8555-555555555555", T0 + 70 * DAY,
                        T0 + 100 * DAY, 1);
    forged = strdup(body);
    len = strlen(forged);
    /* a character inside the signature (the last ones hold padding
     * bits) */
    forged[len - 12] = forged[len - 12] == 'A' ? 'B' : 'A';
    send_raw(topic, "1000", forged);
    free(forged);
    free(body);
    wait_metric(
        w,
        "herald_subs_verification_failures_total{worker=\"subs\",provider="
        "\"appstore\","
        "reason=\"signature\"}",
        1);

    /* Apple's TEST notification vector: counted, nothing applied */
    test_jws = hx_file_read(vec("mock_signed_data/testNotification"), &len);
    assert_non_null(test_jws);
    while (len && (test_jws[len - 1] == '\n' || test_jws[len - 1] == ' '))
        test_jws[--len] = '\0';
    body = malloc(len + 32);
    assert_non_null(body);
    snprintf(body, len + 32, "{\"signedPayload\":\"%s\"}", test_jws);
    free(test_jws);
    send_raw(topic, "test", body);
    free(body);
    wait_metric(
        w,
        "herald_subs_notifications_total{worker=\"subs\",provider=\"appstore\","
        "type=\"TEST\",strategy=\"notice\"}",
        1);

    /* Google: not configured */
    send_raw(topic, "g",
             "{\"message\":{\"data\":\"e30=\",\"messageId\":\"1\"},"
             "\"subscription\":\"projects/p/subscriptions/s\"}");
    wait_metric(w, "herald_events_processed_total{", 8);

    recs = pf_collect(env, "s-apple.ent");
    assert_non_null(recs);
    /* the duplicate of EXPIRED emits its entitlement.changed again, with
     * the same event id (its first may have been lost with a redone
     * batch; consumers dedupe by id) */
    assert_int_equal(json_array_size(recs), 4);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(recs, 3), "event"), "id")),
        json_string_value(json_object_get(
            json_object_get(json_array_get(recs, 2), "event"), "id")));
    for (size_t i = 0; i < 3; i++) {
        const json_t *rec = json_array_get(recs, i);
        const json_t *ev = json_object_get(rec, "event");
        const json_t *d = json_object_get(ev, "data");
        static const char *const states[] = {"active", "active", "expired"};
        static const char *const types[] = {"SUBSCRIBED", "DID_RENEW",
                                            "EXPIRED"};

        assert_string_equal(json_string_value(json_object_get(rec, "key")),
                            USER);
        assert_string_equal(json_string_value(json_object_get(ev, "type")),
                            "entitlement.changed");
        assert_string_equal(
            json_string_value(json_object_get(d, "app_user_id")), USER);
        assert_string_equal(json_string_value(json_object_get(d, "provider")),
                            "appstore");
        assert_string_equal(json_string_value(json_object_get(d, "product_id")),
                            "pro.monthly");
        assert_string_equal(
            json_string_value(json_object_get(d, "subscription_id")), "1000");
        assert_string_equal(json_string_value(json_object_get(d, "state")),
                            states[i]);
        assert_string_equal(
            json_string_value(json_object_get(d, "notification_type")),
            types[i]);
        assert_string_equal(
            json_string_value(json_object_get(d, "environment")), "Sandbox");
        assert_true(json_is_boolean(json_object_get(d, "auto_renew")));
        assert_non_null(json_string_value(json_object_get(d, "expires_at")));
    }
    json_decref(recs);
    /* none -> active (the purchase; the renewal stays active), active ->
     * expired; the duplicate and the stale one are no transitions */
    assert_int_equal(hx_metric(w->port, "herald_subs_state_transitions_total{"
                                        "worker=\"subs\",from=\"none\","
                                        "to=\"active\"}"),
                     1);
    assert_int_equal(hx_metric(w->port, "herald_subs_state_transitions_total{"
                                        "worker=\"subs\",from=\"active\","
                                        "to=\"expired\"}"),
                     1);

    dlq = pf_collect(env, "s-apple.dlq");
    assert_non_null(dlq);
    assert_int_equal(json_array_size(dlq), 2);
    {
        const json_t *h0 = json_object_get(json_array_get(dlq, 0), "headers");
        const json_t *h1 = json_object_get(json_array_get(dlq, 1), "headers");

        assert_non_null(
            strstr(json_string_value(json_object_get(h0, "herald-error")),
                   "verification_failed:signature"));
        assert_string_equal(
            json_string_value(json_object_get(h0, "herald-error-class")),
            "permanent");
        assert_non_null(
            strstr(json_string_value(json_object_get(h1, "herald-error")),
                   "googleplay not configured"));
    }
    json_decref(dlq);
    assert_int_equal(hx_metric(w->port, APPLIED("applied")), 3);
    worker_stop(w);
}

/*
 * A burst read in one batch, verified on several threads
 * (HERALD_SUBS_VERIFY_THREADS=4): 48 renewals of one subscription in
 * order, every eighth one forged; each verdict lands on its own
 * notification and the entitlement ends as the last genuine one says.
 */
static void test_appstore_burst_on_verify_threads(void **state)
{
    enum { N = 48 };
    const char *topic = "s-burst";
    const char *extra[] = {"HERALD_SUBS_VERIFY_THREADS=4", NULL};
    rd_kafka_t *rk = hx_producer_new(hx_broker_bootstraps(env->broker));
    int64_t last_expiry = 0;
    struct worker *w;
    json_t *dlq;

    (void)state;
    assert_non_null(rk);
    for (int i = 0; i < N; i++) {
        char uuid[40], *body;
        int64_t expiry = T0 + (int64_t)(i + 1) * 30 * DAY;

        snprintf(uuid, sizeof(uuid), "77777777-7777-4777-8777-%012d", i);
        body = notification(i ? "DID_RENEW" : "SUBSCRIBED",
                            i ? NULL : "INITIAL_BUY", uuid,
                            T0 + (int64_t)i * DAY, expiry, 1);
        if (i % 8 == 7) /* a character inside the signature */
            body[strlen(body) - 12] =
                body[strlen(body) - 12] == 'A' ? 'B' : 'A';
        else
            last_expiry = expiry;
        assert_int_equal(
            hx_produce(rk, topic, "1000", 4, body, strlen(body), NULL), 0);
        free(body);
    }
    assert_int_equal(hx_producer_flush_free(rk, 10000), 0);
    w = worker_start(topic, extra);
    wait_metric(w, "herald_events_processed_total{", N);
    assert_int_equal(hx_metric(w->port, APPLIED("applied")), N - N / 8);
    assert_int_equal(
        hx_metric(w->port,
                  "herald_subs_verification_failures_total{worker=\"subs\","
                  "provider=\"appstore\",reason=\"signature\"}"),
        N / 8);
    assert_entitlement(topic, "active", last_expiry, true);
    dlq = pf_collect(env, "s-burst.dlq");
    assert_non_null(dlq);
    assert_int_equal(json_array_size(dlq), N / 8);
    for (size_t i = 0; i < json_array_size(dlq); i++) {
        const json_t *h = json_object_get(json_array_get(dlq, i), "headers");

        /* the forged ones, and only they: offsets 7, 15, ... */
        assert_int_equal(atoi(json_string_value(
                             json_object_get(h, "herald-origin-offset"))) %
                             8,
                         7);
    }
    json_decref(dlq);
    worker_stop(w);
}

struct queue_arg {
    struct hx_sqs *sqs;
    const char *url;
};

static bool queue_empty(void *p)
{
    struct queue_arg *q = p;
    long visible = -1;

    return hx_sqs_depth(q->sqs, q->url, &visible) == 0;
}

/*
 * The same worker reading an SQS FIFO queue (fauxqs), one message group
 * per subscription as a store webhook relay would send them: a
 * subscription's life (subscribe, renew, billing retry, grace period,
 * recover, refund) in order, one notification sent twice; every message
 * deleted once handled, the states in order.
 */
static void test_appstore_sqs_fifo(void **state)
{
    static const struct {
        const char *type, *subtype, *state;
        int64_t expires_days;
        int auto_renew;
    } life[] = {
        {"SUBSCRIBED", "INITIAL_BUY", "active", 30, 1},
        {"DID_RENEW", NULL, "active", 60, 1},
        {"DID_FAIL_TO_RENEW", NULL, "billing_retry", 60, 1},
        {"DID_FAIL_TO_RENEW", "GRACE_PERIOD", "grace_period", 60, 1},
        {"DID_RENEW", "BILLING_RECOVERY", "active", 90, 1},
        {"REFUND", NULL, "refunded", 90, 0},
    };
    enum { N = sizeof(life) / sizeof(life[0]) };
    const char *topic = "s-fifo";
    struct hx_sqs *sqs;
    char *url, *bodies[N + 1], uuid[40], qvar[600];
    const char *groups[N + 1], *extra[40];
    size_t n = 0;
    struct worker *w;
    json_t *recs;

    (void)state;
    if (!hx_sqs_available())
        skip();
    sqs = hx_sqs_start();
    assert_non_null(sqs);
    url = hx_sqs_create(sqs, "subs-events.fifo", NULL);
    assert_non_null(url);
    for (size_t i = 0; i < N; i++) {
        snprintf(uuid, sizeof(uuid), "00000000-0000-4000-8000-%012zu", i + 1);
        bodies[i] = notification(
            life[i].type, life[i].subtype, uuid, T0 + (int64_t)i * DAY,
            T0 + life[i].expires_days * DAY, life[i].auto_renew);
        groups[i] = "1000";
    }
    /* the grace period notification once more (another deduplication id:
     * a relay that sent it twice) */
    bodies[N] = strdup(bodies[3]);
    groups[N] = "1000";
    assert_int_equal(hx_sqs_send(sqs, url, (const char *const *)bodies, groups,
                                 N + 1, 0, NULL),
                     0);

    for (const char *const *e = hx_sqs_env(sqs); *e; e++)
        extra[n++] = *e;
    snprintf(qvar, sizeof(qvar), "HERALD_SQS_QUEUE_URL=%s", url);
    extra[n++] = qvar;
    extra[n++] = "HERALD_SQS_WAIT_SECONDS=1";
    extra[n] = NULL;
    w = worker_start(topic, extra);
    wait_metric(w, APPLIED("applied"), N);
    wait_metric(w, APPLIED("duplicate"), 1);
    assert_entitlement(topic, "refunded", T0 + 90 * DAY, false);

    /* every message deleted once handled */
    {
        struct queue_arg q = {sqs, url};

        assert_int_equal(hx_wait_until(queue_empty, &q, 20000), 0);
    }
    /* entitlement.changed in the order of the group; the duplicate emits
     * its event again, with the same id */
    recs = pf_collect(env, "s-fifo.ent");
    assert_non_null(recs);
    assert_int_equal(json_array_size(recs), N + 1);
    for (size_t i = 0; i < N; i++)
        assert_string_equal(
            json_string_value(json_object_get(
                json_object_get(
                    json_object_get(json_array_get(recs, i), "event"), "data"),
                "state")),
            life[i].state);
    json_decref(recs);
    assert_int_equal(hx_metric(w->port,
                               "herald_subs_state_transitions_total{"
                               "worker=\"subs\",from=\"billing_retry\","
                               "to=\"grace_period\"}"),
                     1);
    worker_stop(w);
    for (size_t i = 0; i <= N; i++)
        free(bodies[i]);
    free(url);
    hx_sqs_free(sqs);
}

/*
 * The backend webhook: every entitlement.changed is POSTed with a JWT and
 * its event id as Idempotency-Key; a 503 sends the notification to the
 * guard, and when it comes back (a duplicate for Redis) the event and the
 * call are made again with the same ids.
 */
static void test_backend_webhook(void **state)
{
    const char *topic = "s-hook";
    const char *secret = "subs-hook-secret-0123456789abcdef0123";
    char cfg_path[900], cfg_var[1000], *body, *renew;
    const char *extra[4];
    struct hx_fake_http *fake;
    struct worker *w;
    json_t *route, *reqs, *recs, *ev0;
    FILE *f;

    (void)state;
    if (!hx_node_available())
        skip();
    fake = hx_fake_http_start(NULL);
    assert_non_null(fake);
    route =
        json_pack("{s:s, s:[i,i,i], s:{s:s, s:s, s:s, s:s}}", "path",
                  "/entitlements", "statuses", 200, 503, 200, "jwt", "alg",
                  "HS256", "secret", secret, "iss", "herald", "aud", "backend");
    assert_int_equal(hx_fake_http_route_json(fake, route), 0);
    json_decref(route);
    snprintf(cfg_path, sizeof(cfg_path), "%s/subs-hook.json", env->dir);
    f = fopen(cfg_path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"subs\": {\"webhooks\": {\"backend\": {"
            "\"url\": \"%s/entitlements\", \"timeout_ms\": 3000,"
            "\"auth\": {\"type\": \"jwt\", \"alg\": \"HS256\","
            "\"secret_env\": \"SUBS_HOOK_SECRET\", \"aud\": \"backend\"}}}}}",
            hx_fake_http_url(fake));
    fclose(f);
    snprintf(cfg_var, sizeof(cfg_var), "HERALD_CONFIG=%s", cfg_path);
    extra[0] = cfg_var;
    extra[1] = "SUBS_HOOK_SECRET=subs-hook-secret-0123456789abcdef0123";
    extra[2] = NULL;
    w = worker_start(topic, extra);

    body = notification("SUBSCRIBED", "INITIAL_BUY",
                        "66666666-6666-4666-8666-666666666661", T0,
                        T0 + 30 * DAY, 1);
    send_raw(topic, "1000", body);
    free(body);
    wait_metric(w, "herald_events_processed_total{", 1);
    renew =
        notification("DID_RENEW", NULL, "66666666-6666-4666-8666-666666666662",
                     T0 + DAY, T0 + 60 * DAY, 1);
    send_raw(topic, "1000", renew);
    wait_metric(w, "herald_events_processed_total{", 2);
    /* the 503 went to the guard, for webhook:backend */
    recs = pf_collect(env, "s-hook.retry");
    assert_non_null(recs);
    assert_int_equal(json_array_size(recs), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(recs, 0), "headers"),
                            "herald-destination")),
                        "webhook:backend");
    json_decref(recs);
    /* the guard's redelivery: applied already, called again */
    send_raw(topic, "1000", renew);
    free(renew);
    wait_metric(w, APPLIED("duplicate"), 1);
    wait_metric(w, "herald_events_processed_total{", 3);

    reqs = hx_fake_http_requests(fake, "/entitlements");
    assert_non_null(reqs);
    assert_int_equal(json_array_size(reqs), 3);
    for (size_t i = 0; i < 3; i++) {
        const json_t *r = json_array_get(reqs, i);

        assert_true(
            json_is_true(json_object_get(json_object_get(r, "jwt"), "ok")));
        assert_string_equal(json_string_value(json_object_get(r, "method")),
                            "POST");
    }
    /* the body is the entitlement.changed event, keyed by its id; the
     * retried call repeats the key */
    ev0 = json_loads(
        json_string_value(json_object_get(json_array_get(reqs, 0), "body")), 0,
        NULL);
    assert_non_null(ev0);
    assert_string_equal(json_string_value(json_object_get(ev0, "type")),
                        "entitlement.changed");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(ev0, "data"), "state")),
                        "active");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(reqs, 0), "headers"),
                            "idempotency-key")),
                        json_string_value(json_object_get(ev0, "id")));
    json_decref(ev0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(reqs, 1), "headers"),
                            "idempotency-key")),
                        json_string_value(json_object_get(
                            json_object_get(json_array_get(reqs, 2), "headers"),
                            "idempotency-key")));
    json_decref(reqs);
    assert_int_equal(hx_metric(w->port, "herald_subs_webhook_responses_total{"
                                        "worker=\"subs\",webhook=\"backend\","
                                        "status=\"503\"}"),
                     1);
    worker_stop(w);

    /* A webhook's shared circuit: with its backend down, two failed calls
     * open it (at these settings), and the third renewal's call is not
     * made: to the guard, no attempt spent. */
    route = json_pack("{s:s, s:i}", "path", "/down", "status", 503);
    assert_int_equal(hx_fake_http_route_json(fake, route), 0);
    json_decref(route);
    f = fopen(cfg_path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"subs\": {\"webhooks\": {\"down\": {"
            "\"url\": \"%s/down\", \"timeout_ms\": 3000}}}}",
            hx_fake_http_url(fake));
    fclose(f);
    extra[2] = "HERALD_GUARD_CIRCUIT_MIN_CALLS=2";
    extra[3] = NULL;
    w = worker_start(topic, extra);
    for (int i = 0; i < 3; i++) {
        char uuid[40];

        snprintf(uuid, sizeof(uuid), "66666666-6666-4666-8666-66666666667%d",
                 i);
        body = notification("DID_RENEW", NULL, uuid, T0 + (2 + i) * DAY,
                            T0 + (90 + i) * DAY, 1);
        send_raw(topic, "1000", body);
        free(body);
        wait_metric(w, "herald_events_processed_total{", i + 1);
    }
    reqs = hx_fake_http_requests(fake, "/down");
    assert_int_equal(json_array_size(reqs), 2);
    json_decref(reqs);
    recs = pf_collect(env, "s-hook.retry");
    assert_int_equal(json_array_size(recs), 1 + 3);
    {
        const json_t *h = json_object_get(json_array_get(recs, 3), "headers");

        assert_string_equal(
            json_string_value(json_object_get(h, "herald-destination")),
            "webhook:down");
        assert_string_equal(
            json_string_value(json_object_get(h, "herald-error")),
            "circuit open");
    }
    json_decref(recs);
    assert_int_equal(hx_metric(w->port,
                               "herald_guard_circuit_state{worker=\"subs\","
                               "destination=\"webhook:down\"}"),
                     2);
    worker_stop(w);
    hx_fake_http_free(fake);
}

/* ---- Google Play -------------------------------------------------------- */

#define G_PACKAGE   "com.example.app"
#define G_USER      "user-g"
#define G_API       "/androidpublisher/v3/applications/" G_PACKAGE "/purchases"
#define G_GET(tok)  G_API "/subscriptionsv2/tokens/" tok
#define G_ACK(tok)  G_API "/subscriptions/gold/tokens/" tok ":acknowledge"
#define G_COIN(tok) G_API "/products/coins_100/tokens/" tok

/* A Pub/Sub push body with message id @id around a DeveloperNotification
 * of @package carrying @member (e.g. "subscriptionNotification") @inner
 * (stolen). malloc'd JSON text. */
static char *rtdn_with(const char *id,
                       const char *package,
                       const char *member,
                       json_t *inner)
{
    json_t *n =
        json_pack("{s:s, s:s, s:s, s:o}", "version", "1.0", "packageName",
                  package, "eventTimeMillis", "1767225600000", member, inner);
    json_t *body;
    char *text, *b64, *out;

    text = json_dumps(n, JSON_COMPACT);
    b64 = hr_base64_encode(text, strlen(text), NULL);
    body = json_pack("{s:{s:s, s:s, s:s}, s:s}", "message", "data", b64,
                     "messageId", id, "publishTime", "2026-01-01T00:00:00.000Z",
                     "subscription", "projects/p/subscriptions/s");
    out = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_decref(n);
    free(b64);
    free(text);
    return out;
}

/* subscriptionNotification @type for @token of subscription "gold", or
 * (@token NULL) a testNotification. */
static char *
rtdn(const char *id, const char *package, int type, const char *token)
{
    if (!token)
        return rtdn_with(id, package, "testNotification",
                         json_pack("{s:s}", "version", "1.0"));
    return rtdn_with(id, package, "subscriptionNotification",
                     json_pack("{s:s, s:i, s:s, s:s}", "version", "1.0",
                               "notificationType", type, "purchaseToken", token,
                               "subscriptionId", "gold"));
}

/* Write a service account whose token_uri is @token_uri into @path. */
static void write_service_account(const char *path, const char *token_uri)
{
    char *priv = NULL;
    json_t *sa;

    assert_int_equal(hx_keypair_pem("RSA", &priv, NULL), 0);
    sa = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
                   "project_id", "herald-test", "private_key_id", "key-1",
                   "private_key", priv, "client_email",
                   "subs@herald-test.iam.gserviceaccount.com", "token_uri",
                   token_uri);
    assert_int_equal(json_dump_file(sa, path, JSON_INDENT(2)), 0);
    json_decref(sa);
    free(priv);
}

static json_t *dlq_with(const json_t *dlq, const char *needle)
{
    for (size_t i = 0; i < json_array_size(dlq); i++) {
        const json_t *h = json_object_get(json_array_get(dlq, i), "headers");
        const char *err = json_string_value(json_object_get(h, "herald-error"));

        if (err && strstr(err, needle))
            return json_array_get(dlq, i);
    }
    return NULL;
}

/* The fake received one @method call of @path, with the access token. */
static void
assert_one_call(struct hx_fake_http *fake, const char *path, const char *method)
{
    json_t *reqs = hx_fake_http_requests(fake, path);
    const json_t *r;

    assert_non_null(reqs);
    assert_int_equal(json_array_size(reqs), 1);
    r = json_array_get(reqs, 0);
    assert_string_equal(json_string_value(json_object_get(r, "method")),
                        method);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(r, "headers"), "authorization")),
                        "Bearer ya29.t");
    json_decref(reqs);
}

/* A fake Play Developer API and token endpoint over HTTPS, and the
 * settings that point herald-subs at it. */
struct play {
    struct hx_fake_http *fake;
    char *ca, *cert, *key;
    char extra[12][1000];
    const char *extras[13];
};

/* Start @p's fake (a throw-away CA in <dir>/@name-pki) answering @routes
 * (borrowed) and /token; @p->extras: @more (NULL-terminated, may be NULL)
 * and the Google Play settings. */
static void
play_start(struct play *p, const char *name, json_t *routes, const char **more)
{
    char pki[900], sa_path[900], token_uri[200];
    size_t n = 0;
    json_t *all;

    snprintf(pki, sizeof(pki), "%s/%s-pki", env->dir, name);
    assert_int_equal(mkdir(pki, 0700), 0);
    assert_int_equal(hx_tls_make_pki(pki, &p->ca, &p->cert, &p->key), 0);
    p->fake = hx_fake_http_start(&(struct hx_fake_http_opts){
        .tls_cert = p->cert, .tls_key = p->key, .ca_file = p->ca});
    assert_non_null(p->fake);
    assert_non_null(strstr(hx_fake_http_url(p->fake), "https://"));
    all = json_pack("[{s:s, s:i, s:{s:s, s:i, s:s}}]", "path", "/token",
                    "status", 200, "body", "access_token", "ya29.t",
                    "expires_in", 3600, "token_type", "Bearer");
    if (json_is_array(routes))
        assert_int_equal(json_array_extend(all, routes), 0);
    else
        assert_int_equal(json_array_append(all, routes), 0);
    assert_int_equal(hx_fake_http_route_json(p->fake, all), 0);
    json_decref(all);
    snprintf(sa_path, sizeof(sa_path), "%s/%s-sa.json", env->dir, name);
    snprintf(token_uri, sizeof(token_uri), "%s/token",
             hx_fake_http_url(p->fake));
    write_service_account(sa_path, "https://oauth2.googleapis.com/token");
    for (size_t i = 0; more && more[i] && n < 7; i++)
        snprintf(p->extra[n++], sizeof(p->extra[0]), "%s", more[i]);
    snprintf(p->extra[n++], sizeof(p->extra[0]),
             "HERALD_GOOGLEPLAY_PACKAGE_NAMES=com.example.other, " G_PACKAGE);
    snprintf(p->extra[n++], sizeof(p->extra[0]),
             "HERALD_GOOGLEPLAY_CREDENTIALS_FILE=%s", sa_path);
    snprintf(p->extra[n++], sizeof(p->extra[0]),
             "HERALD_GOOGLEPLAY_API_ENDPOINT=%s", hx_fake_http_url(p->fake));
    /* the override, not the key file's token_uri */
    snprintf(p->extra[n++], sizeof(p->extra[0]),
             "HERALD_GOOGLEPLAY_TOKEN_URI=%s", token_uri);
    snprintf(p->extra[n++], sizeof(p->extra[0]), "HERALD_TLS_CA_FILE=%s",
             p->ca);
    for (size_t i = 0; i < n; i++)
        p->extras[i] = p->extra[i];
    p->extras[n] = NULL;
}

static void play_stop(struct play *p)
{
    hx_fake_http_free(p->fake);
    free(p->ca);
    free(p->cert);
    free(p->key);
}

/* An active purchase read from the API, applied and acknowledged; a
 * package not allowed, a purchase the API does not know, a test
 * notification. */
static void test_googleplay(void **state)
{
    const char *topic = "s-google";
    struct play play = {0};
    struct hx_fake_http *fake;
    struct worker *w;
    char *body;
    json_t *routes, *more, *reqs, *recs, *dlq, *e, *dead;
    char expiry[40];
    time_t secs = (time_t)(time(NULL) + 30 * 86400);
    struct tm tm;
    redisContext *rc;
    redisReply *r;

    (void)state;
    if (!hx_node_available())
        skip();
    gmtime_r(&secs, &tm);
    strftime(expiry, sizeof(expiry), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    routes = json_pack(
        "[{s:s, s:i, s:{s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:{s:b}}],"
        "               s:{s:s}}},"
        " {s:s, s:i, s:{}},"
        " {s:s, s:i, s:{s:{s:i, s:s}}}]",
        /* subscriptionsv2.get of tok-good */
        "path", G_GET("tok-good"), "status", 200, "body", "kind",
        "androidpublisher#subscriptionPurchaseV2", "subscriptionState",
        "SUBSCRIPTION_STATE_ACTIVE", "acknowledgementState",
        "ACKNOWLEDGEMENT_STATE_PENDING", "startTime",
        "2026-01-01T00:00:00.000Z", "lineItems", "productId", "gold",
        "expiryTime", expiry, "autoRenewingPlan", "autoRenewEnabled", 1,
        "externalAccountIdentifiers", "obfuscatedExternalAccountId", G_USER,
        /* its acknowledgement */
        "path", G_ACK("tok-good"), "status", 200, "body",
        /* a token the API does not know */
        "path", G_GET("tok-gone"), "status", 404, "body", "error", "code", 404,
        "message", "The purchase token was not found.");
    assert_non_null(routes);
    /* 401 once (a revoked token: a fresh one is fetched), 403 always (no
     * access), 429 with Retry-After, 503; a one-time product */
    more = json_pack(
        "[{s:s, s:[i,i], s:{s:s, s:s, s:[{s:s, s:s}], s:{s:s}}},"
        " {s:s, s:i, s:{s:{s:i}}},"
        " {s:s, s:i, s:{s:s}, s:{}},"
        " {s:s, s:i, s:{}},"
        " {s:s, s:i, s:{s:i, s:i, s:s, s:i, s:s}},"
        " {s:s, s:i, s:{}}]",
        "path", G_GET("tok-401"), "statuses", 401, 200, "body",
        "subscriptionState", "SUBSCRIPTION_STATE_ACTIVE",
        "acknowledgementState", "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        "lineItems", "productId", "silver", "expiryTime", expiry,
        "externalAccountIdentifiers", "obfuscatedExternalAccountId", "user-h",
        "path", G_GET("tok-403"), "status", 403, "body", "error", "code", 403,
        "path", G_GET("tok-429"), "status", 429, "headers", "Retry-After", "7",
        "body", "path", G_GET("tok-503"), "status", 503, "body", "path",
        G_COIN("tok-coin"), "status", 200, "body", "purchaseState", 0,
        "acknowledgementState", 0, "obfuscatedExternalAccountId", G_USER,
        "purchaseType", 0, "productId", "coins_100", "path",
        G_COIN("tok-coin") ":acknowledge", "status", 200, "body");
    assert_non_null(more);
    assert_int_equal(json_array_extend(routes, more), 0);
    json_decref(more);
    /* the Play Developer API and the token endpoint over HTTPS, with a
     * throw-away CA the worker is told about */
    play_start(&play, "play", routes, NULL);
    json_decref(routes);
    fake = play.fake;
    w = worker_start(topic, play.extras);

    /* SUBSCRIPTION_PURCHASED */
    body = rtdn("g-1", G_PACKAGE, 4, "tok-good");
    send_raw(topic, "g", body);
    free(body);
    /* another app's */
    body = rtdn("g-2", "com.example.intruder", 4, "tok-good");
    send_raw(topic, "g", body);
    free(body);
    /* a purchase the API does not know */
    body = rtdn("g-3", G_PACKAGE, 2, "tok-gone");
    send_raw(topic, "g", body);
    free(body);
    /* a test notification, wrapped in a CloudEvent */
    body = rtdn("g-4", G_PACKAGE, 0, NULL);
    assert_int_equal(
        pf_send(env, topic, "g", "googleplay.notification", "ce-g-4", body), 0);
    free(body);
    /* 401 then 200, 403, 429, 503 */
    body = rtdn("g-5", G_PACKAGE, 2, "tok-401");
    send_raw(topic, "g", body);
    free(body);
    body = rtdn("g-6", G_PACKAGE, 2, "tok-403");
    send_raw(topic, "g", body);
    free(body);
    body = rtdn("g-8", G_PACKAGE, 2, "tok-503");
    send_raw(topic, "g", body);
    free(body);
    /* ONE_TIME_PRODUCT_PURCHASED */
    body = rtdn_with("g-9", G_PACKAGE, "oneTimeProductNotification",
                     json_pack("{s:s, s:i, s:s, s:s}", "version", "1.0",
                               "notificationType", 1, "purchaseToken",
                               "tok-coin", "sku", "coins_100"));
    send_raw(topic, "g", body);
    free(body);
    /* the coins refunded: a voided one-time purchase (productType 2) names
     * no product; its event carries the record's */
    body =
        rtdn_with("g-12", G_PACKAGE, "voidedPurchaseNotification",
                  json_pack("{s:s, s:s, s:i, s:i}", "purchaseToken", "tok-coin",
                            "orderId", "GPA.1111-2222-3333-44444",
                            "productType", 2, "refundType", 1));
    send_raw(topic, "g", body);
    free(body);
    /* malformed: data that is not base64, and base64 of something that is
     * not JSON */
    send_raw(topic, "g",
             "{\"message\":{\"data\":\"!!not base64!!\",\"messageId\":"
             "\"g-10\"},\"subscription\":\"projects/p/subscriptions/s\"}");
    send_raw(topic, "g",
             "{\"message\":{\"data\":\"bm90IGpzb24=\",\"messageId\":"
             "\"g-11\"},\"subscription\":\"projects/p/subscriptions/s\"}");
    /* last: a 429 with Retry-After holds every later call of the batches
     * after it back (the shared circuit: the API asked to wait) */
    body = rtdn("g-7", G_PACKAGE, 2, "tok-429");
    send_raw(topic, "g", body);
    free(body);
    wait_metric(w, "herald_events_processed_total{", 12);

    assert_int_equal(hx_metric(w->port,
                               "herald_subs_applied_total{worker=\"subs\","
                               "provider=\"googleplay\",result=\"applied\"}"),
                     4);
    assert_int_equal(
        hx_metric(w->port, "herald_subs_notifications_total{worker=\"subs\","
                           "provider=\"googleplay\",type=\"test\","
                           "strategy=\"notice\"}"),
        1);
    assert_int_equal(
        hx_metric(w->port,
                  "herald_subs_verification_failures_total{worker=\"subs\","
                  "provider=\"googleplay\",reason=\"package\"}"),
        1);
    assert_true(hx_metric(w->port, "herald_subs_api_calls_total{worker="
                                   "\"subs\",status=\"200\"}") >= 2);
    assert_int_equal(hx_metric(w->port, "herald_subs_api_calls_total{worker="
                                        "\"subs\",status=\"404\"}"),
                     1);
    /* the 401 and the 403 each took a fresh token and one more call */
    assert_int_equal(hx_metric(w->port, "herald_subs_api_calls_total{worker="
                                        "\"subs\",status=\"401\"}"),
                     1);
    assert_int_equal(hx_metric(w->port, "herald_subs_api_calls_total{worker="
                                        "\"subs\",status=\"403\"}"),
                     2);
    assert_true(hx_metric(w->port,
                          "herald_subs_token_fetches_total{worker=\"subs\"}") >=
                3);
    reqs = hx_fake_http_requests(fake, G_GET("tok-401"));
    assert_int_equal(json_array_size(reqs), 2);
    json_decref(reqs);
    assert_int_equal(
        hx_metric(w->port, "herald_subs_ack_failures_total{worker=\"subs\"}"),
        0);

    /* the entitlement */
    rc = hx_redis_connect(env->redis);
    r = redisCommand(rc, "HGET %s:entitlements:{%s} gold", topic, G_USER);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    e = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    redisFree(rc);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "state")),
                        "active");
    assert_string_equal(json_string_value(json_object_get(e, "provider")),
                        "googleplay");
    assert_string_equal(
        json_string_value(json_object_get(e, "subscription_id")), "tok-good");
    assert_string_equal(json_string_value(json_object_get(e, "expires_at")),
                        expiry);
    assert_true(json_is_true(json_object_get(e, "auto_renew")));
    assert_string_equal(json_string_value(json_object_get(e, "environment")),
                        "Production");
    json_decref(e);

    /* the API calls: a token, the read with it, the acknowledgement */
    reqs = hx_fake_http_requests(fake, "/token");
    assert_non_null(reqs);
    assert_true(json_array_size(reqs) >= 1);
    json_decref(reqs);
    assert_one_call(fake, G_GET("tok-good"), "GET");
    assert_one_call(fake, G_ACK("tok-good"), "POST");

    /* entitlement.changed */
    recs = pf_collect(env, "s-google.ent");
    assert_non_null(recs);
    /* gold, then silver (after the 401), then the coins, then their
     * refund */
    assert_int_equal(json_array_size(recs), 4);
    {
        const json_t *silver = json_object_get(
            json_object_get(json_array_get(recs, 1), "event"), "data");
        const json_t *coins = json_object_get(
            json_object_get(json_array_get(recs, 2), "event"), "data");
        const json_t *refund = json_object_get(
            json_object_get(json_array_get(recs, 3), "event"), "data");

        assert_string_equal(
            json_string_value(json_object_get(refund, "product_id")),
            "coins_100");
        assert_string_equal(json_string_value(json_object_get(refund, "state")),
                            "refunded");
        assert_string_equal(
            json_string_value(json_object_get(refund, "previous_state")),
            "active");

        assert_string_equal(
            json_string_value(json_object_get(silver, "app_user_id")),
            "user-h");
        assert_string_equal(
            json_string_value(json_object_get(silver, "product_id")), "silver");
        assert_string_equal(
            json_string_value(json_object_get(coins, "app_user_id")), G_USER);
        assert_string_equal(
            json_string_value(json_object_get(coins, "product_id")),
            "coins_100");
        assert_string_equal(json_string_value(json_object_get(coins, "state")),
                            "active");
        assert_string_equal(
            json_string_value(json_object_get(coins, "environment")),
            "Sandbox");
        assert_string_equal(
            json_string_value(json_object_get(coins, "notification_type")),
            "one_time_product");
        assert_true(json_is_null(json_object_get(coins, "expires_at")));
    }
    assert_one_call(fake, G_COIN("tok-coin"), "GET");
    assert_one_call(fake, G_COIN("tok-coin") ":acknowledge", "POST");
    {
        const json_t *rec = json_array_get(recs, 0);
        const json_t *ev = json_object_get(rec, "event");
        const json_t *d = json_object_get(ev, "data");

        assert_string_equal(json_string_value(json_object_get(rec, "key")),
                            G_USER);
        assert_string_equal(json_string_value(json_object_get(ev, "type")),
                            "entitlement.changed");
        assert_string_equal(
            json_string_value(json_object_get(d, "app_user_id")), G_USER);
        assert_string_equal(json_string_value(json_object_get(d, "provider")),
                            "googleplay");
        assert_string_equal(json_string_value(json_object_get(d, "product_id")),
                            "gold");
        assert_string_equal(json_string_value(json_object_get(d, "state")),
                            "active");
        assert_string_equal(
            json_string_value(json_object_get(d, "notification_type")),
            "subscription");
        assert_string_equal(json_string_value(json_object_get(d, "subtype")),
                            "4");
    }
    json_decref(recs);

    /* the dead letters */
    dlq = pf_collect(env, "s-google.dlq");
    assert_non_null(dlq);
    assert_int_equal(json_array_size(dlq), 5);
    assert_non_null(dlq_with(dlq, "verification_failed:malformed"));
    assert_int_equal(
        hx_metric(w->port,
                  "herald_subs_verification_failures_total{worker=\"subs\","
                  "provider=\"googleplay\",reason=\"malformed\"}"),
        2);
    dead = dlq_with(dlq, "HTTP 403 with a fresh token");
    assert_non_null(dead);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(dead, "headers"),
                                          "herald-error-class")),
        "auth");
    dead = dlq_with(dlq, "package");
    assert_non_null(dead);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(dead, "headers"),
                                          "herald-error-class")),
        "permanent");
    dead = dlq_with(dlq, "purchase not found");
    assert_non_null(dead);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(dead, "headers"),
                                          "herald-error-class")),
        "permanent");
    json_decref(dlq);

    /* 429 and 503 went to the guard, for googleplay:api, the 429 with its
     * Retry-After */
    recs = pf_collect(env, "s-google.retry");
    assert_non_null(recs);
    assert_int_equal(json_array_size(recs), 2);
    for (size_t i = 0; i < 2; i++) {
        const json_t *h = json_object_get(json_array_get(recs, i), "headers");
        const char *cls =
            json_string_value(json_object_get(h, "herald-error-class"));

        assert_string_equal(
            json_string_value(json_object_get(h, "herald-destination")),
            "googleplay:api");
        if (!strcmp(cls, "throttled"))
            assert_string_equal(
                json_string_value(json_object_get(h, "herald-retry-after-ms")),
                "7000");
        else
            assert_string_equal(cls, "transient");
    }
    json_decref(recs);
    worker_stop(w);
    play_stop(&play);
}

/* The Play Developer API's shared circuit: after enough failed reads it
 * opens, and the next notifications go to the guard without a call (no
 * attempt spent) until it is half-open again. */
static void test_googleplay_circuit(void **state)
{
    const char *topic = "s-gcircuit";
    const char *more[] = {"HERALD_GUARD_CIRCUIT_MIN_CALLS=3",
                          "HERALD_GUARD_CIRCUIT_OPEN_MS=600000", NULL};
    json_t *routes, *recs;
    struct play play = {0};
    struct worker *w;
    char id[32], tok[32], *body;
    size_t held = 0;

    (void)state;
    if (!hx_node_available())
        skip();
    routes = json_pack("{s:s, s:i, s:{s:{s:i}}}", "path", "*", "status", 503,
                       "body", "error", "code", 503);
    play_start(&play, "gcircuit", routes, more);
    json_decref(routes);
    w = worker_start(topic, play.extras);
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof(id), "gc-%d", i);
        snprintf(tok, sizeof(tok), "tok-gc-%d", i);
        body = rtdn(id, G_PACKAGE, 2, tok);
        send_raw(topic, "g", body);
        free(body);
        /* the first three fail (503) and open the circuit */
        if (i == 2)
            wait_metric(w, "herald_events_processed_total{", 3);
    }
    wait_metric(w, "herald_events_processed_total{", 6);
    assert_int_equal(hx_metric(w->port, "herald_subs_api_calls_total{worker="
                                        "\"subs\",status=\"503\"}"),
                     3);
    assert_int_equal(hx_metric(w->port,
                               "herald_guard_circuit_state{worker=\"subs\","
                               "destination=\"googleplay:api\"}"),
                     2);
    recs = pf_collect(env, "s-gcircuit.retry");
    assert_non_null(recs);
    assert_int_equal(json_array_size(recs), 6);
    for (size_t i = 0; i < 6; i++) {
        const json_t *h = json_object_get(json_array_get(recs, i), "headers");

        assert_string_equal(
            json_string_value(json_object_get(h, "herald-destination")),
            "googleplay:api");
        held += !strcmp(json_string_value(json_object_get(h, "herald-error")),
                        "circuit open");
    }
    assert_int_equal(held, 3);
    json_decref(recs);
    worker_stop(w);
    play_stop(&play);
}

/* --check-config: the roots are required, the table is validated. */
static void test_check_config(void **state)
{
    char path[900], arg[1000], out[900], roots[1300];
    struct hx_proc *p;
    int status = -1;
    char *log;
    FILE *f;

    (void)state;
    snprintf(path, sizeof(path), "%s/subs-bad.json", env->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"subs\": {\"strategies\": {\"appstore\": {\"DID_RENEW\": "
          "{\"\": \"renw\"}}},"
          " \"webhooks\": {\"backend\": {\"url\": \"ftp://backend\","
          " \"auth\": {\"type\": \"jwt\", \"secret_env\": \"NOPE_UNSET\"}}}}}",
          f);
    fclose(f);
    snprintf(arg, sizeof(arg), "--config=%s", path);
    snprintf(out, sizeof(out), "%s/subs-check.out", env->dir);
    p = hx_proc_spawn(
        (const char *[]){hx_bin("herald-subs"), "--check-config", arg, NULL},
        (const char *[]){"HERALD_KAFKA_BROKERS=127.0.0.1:9",
                         "HERALD_APPSTORE_BUNDLE_ID=" BUNDLE, NULL},
        out, out);
    assert_non_null(p);
    assert_int_equal(hx_proc_wait(p, 10000, &status), 0);
    hx_proc_free(p);
    log = hx_file_read(out, NULL);
    assert_int_not_equal(status, 0);
    /* the roots default to the built-in Apple Root CA - G3, the
     * environments to Production, which needs the app's Apple id */
    assert_null(strstr(log, "HERALD_APPSTORE_ROOT_CERTS"));
    assert_non_null(strstr(log, "app_apple_id is required"));
    assert_non_null(strstr(log, "unknown strategy 'renw'"));
    assert_non_null(strstr(log, "subs.webhooks.backend.url"));
    assert_non_null(strstr(log, "subs.webhooks.backend.auth.aud"));
    assert_non_null(strstr(log, "NOPE_UNSET"));
    free(log);

    snprintf(roots, sizeof(roots), "HERALD_APPSTORE_ROOT_CERTS=%s",
             vec("certs/testCA.pem"));
    p = hx_proc_spawn(
        (const char *[]){hx_bin("herald-subs"), "--check-config", NULL},
        (const char *[]){"HERALD_KAFKA_BROKERS=127.0.0.1:9",
                         "HERALD_APPSTORE_BUNDLE_ID=" BUNDLE,
                         "HERALD_APPSTORE_ENVIRONMENTS=Sandbox", roots, NULL},
        out, out);
    assert_non_null(p);
    assert_int_equal(hx_proc_wait(p, 10000, &status), 0);
    hx_proc_free(p);
    assert_int_equal(status, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appstore_lifecycle),
        cmocka_unit_test(test_appstore_burst_on_verify_threads),
        cmocka_unit_test(test_appstore_sqs_fifo),
        cmocka_unit_test(test_backend_webhook),
        cmocka_unit_test(test_googleplay),
        cmocka_unit_test(test_googleplay_circuit),
        cmocka_unit_test(test_check_config),
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("herald-subs end to end", tests,
                                       group_setup, group_teardown);
}
