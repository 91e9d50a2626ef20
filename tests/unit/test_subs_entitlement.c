/*
 * Unit tests for subs_entitlement: the C API against a real redis-server
 * (the harness's hx_redis_start()). In order, shuffled with redeliveries
 * (the same end state, by snapshot_ms), duplicates, stale snapshots, the
 * owner from subs_owner and the fallback, owner moves, product changes,
 * another subscription holding the entry, expires_at against
 * hr_time_format_rfc3339(), notices, and failures that write nothing.
 *
 * Every test is skipped when redis-server is not on PATH.
 */
#include <setjmp.h>
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
#include "hr_redis.h"
#include "hr_time.h"
#include "subs_entitlement.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define PREFIX "herald:"
#define TTL_S  3600
#define T0     INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define DAY    INT64_C(86400000)

static struct {
    struct hx_redis *server;
    redisContext *rc; /* for looking */
    struct hr_redis *redis;
    struct hr_script script;
} g;

#define NEED_REDIS()   \
    do {               \
        if (!g.server) \
            skip();    \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

/* A full snapshot of appstore subscription "1000000001" of user u1. */
static struct subs_change change(const char *id, int64_t snapshot_ms)
{
    return (struct subs_change){
        .provider = "appstore",
        .notification_id = id,
        .subscription_id = "1000000001",
        .app_user_id = "u1",
        .product_id = "monthly",
        .state = "active",
        .expires_ms = T0 + 30 * DAY,
        .auto_renew = 1,
        .environment = "Production",
        .snapshot_ms = snapshot_ms,
        .notification_type = "SUBSCRIBED",
        .subtype = "INITIAL_BUY",
    };
}

static struct subs_applied apply(const struct subs_change *c)
{
    struct subs_applied out;
    char errstr[512];

    if (subs_entitlement_apply(g.redis, &g.script, PREFIX, c, TTL_S, &out,
                               errstr, sizeof(errstr)))
        fail_msg("apply %s: %s", c->notification_id, errstr);
    return out;
}

static redisReply *cmd(const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(g.rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s", r->str);
    return r;
}

/* The raw entry of @product in @owner's hash (malloc'd), NULL if none. */
static char *entry_raw(const char *owner, const char *product)
{
    redisReply *r = cmd("HGET " PREFIX "entitlements:{%s} %s", owner, product);
    char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;

    freeReplyObject(r);
    return s;
}

/* The entry decoded (caller json_decref()s), NULL if none. */
static json_t *entry(const char *owner, const char *product)
{
    char *s = entry_raw(owner, product);
    json_error_t jerr;
    json_t *e;

    if (!s)
        return NULL;
    e = json_loads(s, 0, &jerr);
    if (!e)
        fail_msg("entry '%s': %s", s, jerr.text);
    free(s);
    return e;
}

static long long integer(const char *fmt, const char *arg)
{
    redisReply *r = cmd(fmt, arg);
    long long v;

    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

static long long hlen(const char *owner)
{
    return integer("HLEN " PREFIX "entitlements:{%s}", owner);
}

static long long exists(const char *key)
{
    return integer("EXISTS %s", key);
}

static void assert_field(json_t *e, const char *name, const char *want)
{
    const char *got = json_string_value(json_object_get(e, name));

    if (!got || strcmp(got, want))
        fail_msg("%s: '%s', want '%s'", name, got ? got : "(not a string)",
                 want);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key with its value, sorted: the whole state, to compare runs. */
static char *dump(void)
{
    redisReply *keys = cmd("KEYS *");
    size_t size = 1 << 16, len = 0;
    char *out = malloc(size);
    char **names;

    assert_non_null(out);
    names = calloc(keys->elements + 1, sizeof(*names));
    assert_non_null(names);
    for (size_t i = 0; i < keys->elements; i++)
        names[i] = keys->element[i]->str;
    qsort(names, keys->elements, sizeof(*names), by_name);
    out[0] = '\0';
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *t = cmd("TYPE %s", names[i]);
        redisReply *v;

        if (!strcmp(t->str, "hash")) {
            v = cmd("HGETALL %s", names[i]);
            /* HGETALL's order is the hash's: sort the pairs by field */
            for (size_t a = 0; a + 2 < v->elements; a += 2) {
                for (size_t b = a + 2; b < v->elements; b += 2) {
                    if (strcmp(v->element[a]->str, v->element[b]->str) > 0) {
                        redisReply *f = v->element[a], *x = v->element[a + 1];

                        v->element[a] = v->element[b];
                        v->element[a + 1] = v->element[b + 1];
                        v->element[b] = f;
                        v->element[b + 1] = x;
                    }
                }
            }
            len += (size_t)snprintf(out + len, size - len, "%s:", names[i]);
            for (size_t j = 0; j < v->elements; j++)
                len += (size_t)snprintf(out + len, size - len, " %s",
                                        v->element[j]->str);
            len += (size_t)snprintf(out + len, size - len, "\n");
        } else {
            v = cmd("GET %s", names[i]);
            /* a seen marker keeps what the first apply of its
             * notification did, which depends on the delivery order */
            len += (size_t)snprintf(
                out + len, size - len, "%s = %s\n", names[i],
                strstr(names[i], "subs:seen:") ? "(seen)" : v->str);
        }
        assert_true(len < size);
        freeReplyObject(v);
        freeReplyObject(t);
    }
    free(names);
    freeReplyObject(keys);
    return out;
}

/* ---- fixtures ----------------------------------------------------------- */

static int group_setup(void **state)
{
    char errstr[512];

    (void)state;
    if (!hx_on_path("redis-server")) {
        fprintf(stderr, "redis-server is not on PATH: skipping\n");
        return 0;
    }
    g.server = hx_redis_start(NULL);
    if (!g.server)
        return -1;
    g.rc = hx_redis_connect(g.server);
    g.redis =
        hr_redis_new(hx_redis_url(g.server), PREFIX, errstr, sizeof(errstr));
    if (!g.rc || !g.redis) {
        fprintf(stderr, "%s\n", g.redis ? "no connection" : errstr);
        return -1;
    }
    subs_entitlement_script_init(&g.script);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hr_redis_free(g.redis);
    if (g.rc)
        redisFree(g.rc);
    hx_redis_free(g.server);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    if (g.server)
        hx_redis_flushall(g.server);
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

/* A life in order: purchase, cancellation, renewal, billing trouble,
 * expiry; each step says what it changed. */
static void test_apply_in_order(void **state)
{
    struct subs_change c = change("n1", T0);
    struct subs_applied a;
    char *raw;
    json_t *e;

    (void)state;
    NEED_REDIS();
    a = apply(&c);
    assert_int_equal(a.result, SUBS_APPLIED);
    assert_string_equal(a.app_user_id, "u1");
    assert_string_equal(a.previous_state, "");
    assert_string_equal(a.state, "active");
    assert_true(a.changed);
    raw = entry_raw("u1", "monthly");
    assert_non_null(raw);
    assert_string_equal(raw, "{\"state\":\"active\",\"provider\":\"appstore\","
                             "\"subscription_id\":\"1000000001\","
                             "\"expires_at\":\"2026-01-31T00:00:00.000Z\","
                             "\"auto_renew\":true,"
                             "\"environment\":\"Production\","
                             "\"updated_at\":\"2026-01-01T00:00:00.000Z\"}");
    free(raw);

    /* cancellation: the snapshot says auto_renew off */
    c = change("n2", T0 + 1000);
    c.auto_renew = 0;
    a = apply(&c);
    assert_int_equal(a.result, SUBS_APPLIED);
    assert_string_equal(a.previous_state, "active");
    assert_string_equal(a.state, "active");
    assert_true(a.changed);

    /* renewal into the next period */
    c = change("n3", T0 + 30 * DAY);
    c.expires_ms = T0 + 60 * DAY;
    a = apply(&c);
    assert_true(a.changed);
    e = entry("u1", "monthly");
    assert_field(e, "expires_at", "2026-03-02T00:00:00.000Z");
    assert_field(e, "updated_at", "2026-01-31T00:00:00.000Z");
    assert_true(json_is_true(json_object_get(e, "auto_renew")));
    json_decref(e);

    /* grace period, then expiry */
    c = change("n4", T0 + 60 * DAY);
    c.state = "grace_period";
    c.expires_ms = T0 + 60 * DAY;
    a = apply(&c);
    assert_string_equal(a.previous_state, "active");
    assert_string_equal(a.state, "grace_period");
    c = change("n5", T0 + 76 * DAY);
    c.state = "expired";
    c.expires_ms = T0 + 60 * DAY;
    c.auto_renew = 0;
    a = apply(&c);
    assert_string_equal(a.previous_state, "grace_period");
    assert_string_equal(a.state, "expired");
    assert_true(a.changed);
    e = entry("u1", "monthly");
    assert_field(e, "state", "expired");
    assert_true(json_is_false(json_object_get(e, "auto_renew")));
    json_decref(e);
    assert_int_equal(hlen("u1"), 1);

    /* the same snapshot again under a new id: applied, nothing changed */
    c.notification_id = "n6";
    a = apply(&c);
    assert_int_equal(a.result, SUBS_APPLIED);
    assert_false(a.changed);

    /* the record */
    {
        static const char *const want[][2] = {
            {"owner", "u1"},
            {"product_id", "monthly"},
            {"state", "expired"},
            {"expires_ms", "1772409600000"},
            {"auto_renew", "0"},
            {"environment", "Production"},
            {"snapshot_ms", "1773792000000"},
        };
        redisReply *r;

        for (size_t i = 0; i < HR_ARRAY_SIZE(want); i++) {
            r = cmd("HGET " PREFIX "subs:sub:appstore:1000000001 %s",
                    want[i][0]);
            assert_int_equal(r->type, REDIS_REPLY_STRING);
            assert_string_equal(r->str, want[i][1]);
            freeReplyObject(r);
        }
        assert_int_equal(
            integer("HLEN %s", PREFIX "subs:sub:appstore:1000000001"),
            (long long)HR_ARRAY_SIZE(want));
    }
}

/* xorshift64*: a fixed sequence, so that a failure repeats. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Three subscriptions of user u7, full snapshots (as the worker computes
 * them), one upgrade, and a Google one that the store names only from
 * its third notification on (filed under the fallback before). */
static const struct subs_change *life(size_t *n)
{
#define AS(id, s, prod, st, exp, ar)                                          \
    {                                                                         \
        .provider = "appstore", .notification_id = id,                        \
        .subscription_id = "2000000002", .app_user_id = "u7",                 \
        .product_id = prod, .state = st, .expires_ms = exp, .auto_renew = ar, \
        .environment = "Production", .snapshot_ms = s                         \
    }
#define GP(id, s, owner, st, exp, ar)                                          \
    {                                                                          \
        .provider = "googleplay", .notification_id = id,                       \
        .subscription_id = "tok.AO-J1Oz", .app_user_id = owner,                \
        .product_id = "pro", .state = st, .expires_ms = exp, .auto_renew = ar, \
        .environment = "production", .snapshot_ms = s                          \
    }
    static const struct subs_change changes[] = {
        AS("a1", T0 + 1, "monthly", "active", T0 + 30 * DAY, 1),
        AS("a2", T0 + 2, "monthly", "active", T0 + 30 * DAY, 0),
        AS("a3", T0 + 3, "monthly", "active", T0 + 30 * DAY, 1),
        AS("a4", T0 + 30 * DAY, "monthly", "active", T0 + 60 * DAY, 1),
        AS("a5", T0 + 31 * DAY, "yearly", "active", T0 + 396 * DAY, 1),
        AS("a6", T0 + 396 * DAY, "yearly", "grace_period", T0 + 396 * DAY, 1),
        AS("a7", T0 + 397 * DAY, "yearly", "active", T0 + 762 * DAY, 1),
        AS("a8", T0 + 400 * DAY, "yearly", "active", T0 + 762 * DAY, 0),
        AS("a9", T0 + 762 * DAY, "yearly", "expired", T0 + 762 * DAY, 0),
        GP("g1", T0 + 5, NULL, "active", T0 + 7 * DAY, 1),
        GP("g2", T0 + 7 * DAY, "", "active", T0 + 14 * DAY, 1),
        GP("g3", T0 + 14 * DAY, "u7", "active", T0 + 21 * DAY, 1),
        GP("g4", T0 + 21 * DAY, "u7", "on_hold", T0 + 21 * DAY, 1),
        GP("g5", T0 + 22 * DAY, "u7", "active", T0 + 52 * DAY, 1),
        GP("g6", T0 + 23 * DAY, "u7", "paused", T0 + 52 * DAY, 1),
        GP("g7", T0 + 40 * DAY, "u7", "revoked", T0 + 40 * DAY, 0),
    };
#undef AS
#undef GP

    *n = HR_ARRAY_SIZE(changes);
    return changes;
}

/* The same notifications in any order, each delivered twice, end in the
 * state that delivering them in order gives. */
static void test_shuffled_ends_in_the_same_state(void **state)
{
    size_t n, order[64];
    const struct subs_change *cs = life(&n);
    uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);
    char *want;
    json_t *e;

    (void)state;
    NEED_REDIS();
    for (size_t i = 0; i < n; i++)
        assert_int_equal(apply(&cs[i]).result, SUBS_APPLIED);
    want = dump();
    /* the end: yearly expired, pro revoked, both under u7, nothing left
     * of monthly or of the fallback owner */
    assert_int_equal(hlen("u7"), 2);
    assert_int_equal(hlen("googleplay:tok.AO-J1Oz"), 0);
    e = entry("u7", "yearly");
    assert_field(e, "state", "expired");
    json_decref(e);
    e = entry("u7", "pro");
    assert_field(e, "state", "revoked");
    json_decref(e);

    for (int run = 0; run < 60; run++) {
        char *got;
        bool seen[64] = {false};

        assert_true(2 * n <= HR_ARRAY_SIZE(order));
        for (size_t i = 0; i < 2 * n; i++)
            order[i] = i % n;
        for (size_t i = 2 * n - 1; i > 0; i--) {
            size_t j = (size_t)(rnd(&seed) % (i + 1)), t = order[i];

            order[i] = order[j];
            order[j] = t;
        }
        hx_redis_flushall(g.server);
        for (size_t i = 0; i < 2 * n; i++) {
            struct subs_applied a = apply(&cs[order[i]]);

            if (seen[order[i]])
                assert_int_equal(a.result, SUBS_DUPLICATE);
            else
                assert_true(a.result == SUBS_APPLIED || a.result == SUBS_STALE);
            seen[order[i]] = true;
        }
        got = dump();
        if (strcmp(got, want))
            fail_msg("run %d differs:\n%s\nwant:\n%s", run, got, want);
        free(got);
    }
    free(want);
}

static void test_duplicate_writes_nothing(void **state)
{
    struct subs_change c = change("dup", T0);
    struct subs_applied a;
    char *before, *after;

    (void)state;
    NEED_REDIS();
    a = apply(&c);
    assert_int_equal(a.result, SUBS_APPLIED);
    before = dump();
    /* the same id, even with other content (a redelivery is the same) */
    c.state = "revoked";
    c.snapshot_ms = T0 + DAY;
    a = apply(&c);
    /* what the first apply did, so that its entitlement.changed can be
     * emitted again */
    assert_int_equal(a.result, SUBS_DUPLICATE);
    assert_true(a.changed);
    assert_string_equal(a.app_user_id, "u1");
    assert_string_equal(a.previous_state, "");
    assert_string_equal(a.state, "active");
    after = dump();
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* the marker expires with the dedupe TTL */
    {
        redisReply *r = cmd("TTL " PREFIX "subs:seen:appstore:dup");

        assert_true(r->integer > TTL_S - 5 && r->integer <= TTL_S);
        freeReplyObject(r);
    }
    /* ids are per provider */
    c = change("dup", T0 + DAY);
    c.provider = "googleplay";
    c.subscription_id = "tok";
    assert_int_equal(apply(&c).result, SUBS_APPLIED);
}

static void test_stale_snapshot_writes_only_the_id(void **state)
{
    struct subs_change c = change("new", T0 + DAY);
    struct subs_applied a;
    char *before, *after;

    (void)state;
    NEED_REDIS();
    c.state = "expired";
    apply(&c);
    before = dump();
    c = change("old", T0);
    a = apply(&c);
    assert_int_equal(a.result, SUBS_STALE);
    assert_false(a.changed);
    assert_string_equal(a.previous_state, "expired");
    assert_string_equal(a.state, "expired");
    assert_string_equal(a.app_user_id, "u1");
    after = dump();
    /* only the seen marker of "old" is new */
    assert_string_not_equal(before, after);
    assert_int_equal(exists(PREFIX "subs:seen:appstore:old"), 1);
    {
        redisReply *r = cmd("DEL " PREFIX "subs:seen:appstore:old");
        char *again;

        freeReplyObject(r);
        again = dump();
        assert_string_equal(before, again);
        free(again);
    }
    free(before);
    free(after);
    /* its redelivery is a duplicate */
    assert_int_equal(apply(&c).result, SUBS_STALE); /* marker was deleted */
    assert_int_equal(apply(&c).result, SUBS_DUPLICATE);
    /* an equal snapshot applies */
    c = change("same", T0 + DAY);
    c.state = "revoked";
    a = apply(&c);
    assert_int_equal(a.result, SUBS_APPLIED);
    assert_string_equal(a.state, "revoked");
}

/* Without the store's word: the fallback owner, then the app's subs_owner
 * moves the entitlement once; a record owner that is not the fallback
 * then holds, until the store names someone. */
static void test_owner_from_subs_owner_and_fallback(void **state)
{
    struct subs_change c = change("o1", T0);
    struct subs_applied a;
    redisReply *r;
    json_t *e;

    (void)state;
    NEED_REDIS();
    c.app_user_id = NULL;
    a = apply(&c);
    assert_int_equal(a.result, SUBS_APPLIED);
    assert_string_equal(a.app_user_id, "appstore:1000000001");
    assert_int_equal(hlen("appstore:1000000001"), 1);

    /* the app writes the owner later: the next notification moves it */
    r = cmd("SET " PREFIX "subs_owner:1000000001 app-user-9");
    freeReplyObject(r);
    c = change("o2", T0 + 1);
    c.app_user_id = "";
    a = apply(&c);
    assert_string_equal(a.app_user_id, "app-user-9");
    assert_string_equal(a.previous_state, "active");
    assert_string_equal(a.state, "active");
    assert_true(a.changed); /* the owner changed */
    assert_int_equal(exists(PREFIX "entitlements:{appstore:1000000001}"), 0);
    e = entry("app-user-9", "monthly");
    assert_non_null(e);
    assert_field(e, "subscription_id", "1000000001");
    json_decref(e);

    /* the record's owner now holds over a changed subs_owner */
    r = cmd("SET " PREFIX "subs_owner:1000000001 someone-else");
    freeReplyObject(r);
    c = change("o3", T0 + 2);
    c.app_user_id = NULL;
    a = apply(&c);
    assert_string_equal(a.app_user_id, "app-user-9");
    assert_false(a.changed);

    /* the store's word beats both */
    c = change("o4", T0 + 3);
    c.app_user_id = "store-user";
    a = apply(&c);
    assert_string_equal(a.app_user_id, "store-user");
    assert_true(a.changed);
    assert_int_equal(exists(PREFIX "entitlements:{app-user-9}"), 0);
    assert_int_equal(hlen("store-user"), 1);

    /* an empty subs_owner counts as none */
    c = change("o5", T0);
    c.subscription_id = "other";
    c.app_user_id = NULL;
    r = cmd("SET " PREFIX "subs_owner:other %s", "");
    freeReplyObject(r);
    assert_string_equal(apply(&c).app_user_id, "appstore:other");
}

/* The store names another user: the entitlement moves, and the old
 * owner's other products stay. */
static void test_owner_move(void **state)
{
    struct subs_change c = change("m1", T0);
    struct subs_applied a;
    redisReply *r;

    (void)state;
    NEED_REDIS();
    apply(&c);
    r = cmd("HSET " PREFIX "entitlements:{u1} lifetime {}");
    freeReplyObject(r);
    c = change("m2", T0 + 1);
    c.app_user_id = "u2";
    a = apply(&c);
    assert_int_equal(a.result, SUBS_APPLIED);
    assert_string_equal(a.app_user_id, "u2");
    assert_true(a.changed);
    assert_null(entry_raw("u1", "monthly"));
    assert_int_equal(hlen("u1"), 1); /* lifetime stays */
    assert_int_equal(hlen("u2"), 1);
    /* and back, with an older snapshot: stale, no move */
    c = change("m3", T0);
    a = apply(&c);
    assert_int_equal(a.result, SUBS_STALE);
    assert_string_equal(a.app_user_id, "u2");
    assert_int_equal(hlen("u2"), 1);
}

/* An upgrade: the old product's entry goes, the new one comes. */
static void test_product_change(void **state)
{
    struct subs_change c = change("p1", T0);
    struct subs_applied a;
    json_t *e;

    (void)state;
    NEED_REDIS();
    apply(&c);
    c = change("p2", T0 + DAY);
    c.product_id = "yearly";
    c.expires_ms = T0 + 366 * DAY;
    a = apply(&c);
    assert_true(a.changed);
    assert_null(entry_raw("u1", "monthly"));
    e = entry("u1", "yearly");
    assert_non_null(e);
    assert_field(e, "expires_at", "2027-01-02T00:00:00.000Z");
    json_decref(e);
    assert_int_equal(hlen("u1"), 1);

    /* a move and a product change at once */
    c = change("p3", T0 + 2 * DAY);
    c.product_id = "family";
    c.app_user_id = "u3";
    apply(&c);
    assert_int_equal(exists(PREFIX "entitlements:{u1}"), 0);
    assert_int_equal(hlen("u3"), 1);
    e = entry("u3", "family");
    assert_non_null(e);
    assert_field(e, "subscription_id", "1000000001");
    json_decref(e);

    /* NULL keeps the product */
    c = change("p4", T0 + 3 * DAY);
    c.product_id = NULL;
    c.app_user_id = NULL;
    c.state = "expired";
    a = apply(&c);
    assert_string_equal(a.state, "expired");
    /* and the answer names it (entitlement.changed carries it) */
    assert_string_equal(a.product_id, "family");
    e = entry("u3", "family");
    assert_field(e, "state", "expired");
    json_decref(e);
}

/* Another subscription of the same user and product (a new purchase
 * token): it may replace the entry, but a lapsed one does not take away
 * access another grants; deletes touch only this subscription's entry. */
static void test_another_subscription_holds_the_entry(void **state)
{
    struct subs_change a_ = change("h1", T0), b = change("h2", T0 + 1);
    json_t *e;

    (void)state;
    NEED_REDIS();
    apply(&a_);
    b.subscription_id = "2000000009";
    apply(&b); /* B active replaces A active */
    e = entry("u1", "monthly");
    assert_field(e, "subscription_id", "2000000009");
    json_decref(e);
    /* A expires: B's active entry stays */
    a_ = change("h3", T0 + 2);
    a_.state = "expired";
    assert_int_equal(apply(&a_).result, SUBS_APPLIED);
    e = entry("u1", "monthly");
    assert_field(e, "subscription_id", "2000000009");
    assert_field(e, "state", "active");
    json_decref(e);
    /* A moves to another product: B's entry is not A's to delete */
    a_ = change("h4", T0 + 3);
    a_.product_id = "yearly";
    apply(&a_);
    e = entry("u1", "monthly");
    assert_field(e, "subscription_id", "2000000009");
    json_decref(e);
    assert_int_equal(hlen("u1"), 2);
    /* B expires: its own entry follows it */
    b = change("h5", T0 + 4);
    b.subscription_id = "2000000009";
    b.state = "expired";
    apply(&b);
    e = entry("u1", "monthly");
    assert_field(e, "state", "expired");
    json_decref(e);
}

/* expires_at and updated_at are the text hr_time_format_rfc3339() gives,
 * over day, month, leap year and century edges and random times. */
static void test_expires_at_formatting(void **state)
{
    static const int64_t fixed[] = {
        1,
        999,
        1000,
        59999,
        86399999,
        86400000,
        INT64_C(951782400000),  /* 2000-02-29 */
        INT64_C(951868799999),  /* 2000-02-29T23:59:59.999 */
        INT64_C(978220800000),  /* 2000-12-31 */
        INT64_C(2147483647999), /* 2038-01-19 */
        INT64_C(4107456000000), /* 2100-02-28 */
        INT64_C(4107542400000), /* 2100-03-01 */
        INT64_C(4102444800000), /* 2100-01-01 */
        INT64_C(1709164800000), /* 2024-02-29 */
        SUBS_ENTITLEMENT_TIME_MAX,
    };
    uint64_t seed = 42;
    char id[32];

    (void)state;
    NEED_REDIS();
    for (size_t i = 0; i < HR_ARRAY_SIZE(fixed) + 400; i++) {
        struct subs_change c;
        char want[32], want_upd[32];
        int64_t t = i < HR_ARRAY_SIZE(fixed)
                        ? fixed[i]
                        : 1 + (int64_t)(rnd(&seed) %
                                        (uint64_t)SUBS_ENTITLEMENT_TIME_MAX);
        json_t *e;

        snprintf(id, sizeof(id), "f%zu", i);
        c = change(id, t);
        c.subscription_id = id; /* a fresh record: any snapshot applies */
        c.expires_ms = t;
        apply(&c);
        e = entry("u1", "monthly");
        hr_time_format_rfc3339(t, want, sizeof(want));
        hr_time_format_rfc3339(t, want_upd, sizeof(want_upd));
        assert_field(e, "expires_at", want);
        assert_field(e, "updated_at", want_upd);
        json_decref(e);
    }
    /* no expiry known yet: null */
    {
        struct subs_change c = change("none", T0);
        json_t *e;

        c.subscription_id = "noexp";
        c.expires_ms = 0;
        c.auto_renew = -1;
        c.environment = NULL;
        apply(&c);
        e = entry("u1", "monthly");
        assert_true(json_is_null(json_object_get(e, "expires_at")));
        assert_true(json_is_null(json_object_get(e, "auto_renew")));
        assert_true(json_is_null(json_object_get(e, "environment")));
        json_decref(e);
    }
}

/* A notice: the state stays, auto_renew follows, NULL/0 keep the rest. */
static void test_notice_keeps_state_updates_auto_renew(void **state)
{
    struct subs_change c = change("k1", T0);
    struct subs_applied a;
    json_t *e;

    (void)state;
    NEED_REDIS();
    c.state = "grace_period";
    apply(&c);
    c = (struct subs_change){.provider = "appstore",
                             .notification_id = "k2",
                             .subscription_id = "1000000001",
                             .auto_renew = 0,
                             .snapshot_ms = T0 + 1000,
                             .notification_type = "DID_CHANGE_RENEWAL_STATUS",
                             .subtype = "AUTO_RENEW_DISABLED"};
    a = apply(&c);
    assert_int_equal(a.result, SUBS_APPLIED);
    assert_string_equal(a.app_user_id, "u1");
    assert_string_equal(a.previous_state, "grace_period");
    assert_string_equal(a.state, "grace_period");
    assert_true(a.changed);
    e = entry("u1", "monthly");
    assert_field(e, "state", "grace_period");
    assert_field(e, "expires_at", "2026-01-31T00:00:00.000Z");
    assert_field(e, "environment", "Production");
    assert_field(e, "updated_at", "2026-01-01T00:00:01.000Z");
    assert_true(json_is_false(json_object_get(e, "auto_renew")));
    json_decref(e);
    /* a notice that changes nothing */
    c.notification_id = "k3";
    c.auto_renew = -1;
    c.snapshot_ms = T0 + 2000;
    c.state = "";
    a = apply(&c);
    assert_int_equal(a.result, SUBS_APPLIED);
    assert_false(a.changed);
}

/* A notice for a subscription never seen: nothing to keep, nothing made. */
static void test_unknown_subscription_notice(void **state)
{
    struct subs_change c = change("u1n", T0);
    struct subs_applied a;
    redisReply *r;

    (void)state;
    NEED_REDIS();
    c.state = NULL;
    a = apply(&c);
    assert_int_equal(a.result, SUBS_UNKNOWN);
    assert_false(a.changed);
    assert_string_equal(a.app_user_id, "u1");
    assert_string_equal(a.state, "");
    r = cmd("DBSIZE");
    assert_int_equal(r->integer, 1); /* the seen marker */
    freeReplyObject(r);
    assert_int_equal(exists(PREFIX "subs:seen:appstore:u1n"), 1);
    c = change("u2n", T0);
    c.product_id = "";
    assert_int_equal(apply(&c).result, SUBS_UNKNOWN);
}

/* Strings are JSON-escaped, and keys use the prefix given. */
static void test_escaping_and_prefix(void **state)
{
    struct subs_change c = change("e1", T0);
    struct subs_applied out;
    char errstr[256];
    json_t *e;
    redisReply *r;

    (void)state;
    NEED_REDIS();
    c.environment = "Sand\"box\\\n\x01";
    c.subscription_id = "a/b";
    assert_int_equal(subs_entitlement_apply(g.redis, &g.script, "x:", &c, TTL_S,
                                            &out, errstr, sizeof(errstr)),
                     0);
    r = cmd("HGET x:entitlements:{u1} monthly");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    e = json_loads(r->str, 0, NULL);
    assert_non_null(e);
    assert_field(e, "environment", "Sand\"box\\\n\x01");
    assert_field(e, "subscription_id", "a/b");
    assert_null(strstr(r->str, "\\/"));
    json_decref(e);
    freeReplyObject(r);
    assert_int_equal(exists("x:subs:sub:appstore:a/b"), 1);
    assert_int_equal(exists("x:subs:seen:appstore:e1"), 1);
    r = cmd("KEYS herald:*");
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
}

static void test_invalid_change_is_refused(void **state)
{
    struct subs_change c;
    struct subs_applied out;
    char errstr[256];
    char long_owner[SUBS_ENTITLEMENT_OWNER_MAX + 1];
    redisReply *r;

    (void)state;
    NEED_REDIS();
    memset(long_owner, 'x', sizeof(long_owner) - 1);
    long_owner[sizeof(long_owner) - 1] = '\0';
#define REFUSED(field, value, needle)                                        \
    do {                                                                     \
        c = change("bad", T0);                                               \
        c.field = value;                                                     \
        errstr[0] = '\0';                                                    \
        assert_int_equal(subs_entitlement_check(&c, errstr, sizeof(errstr)), \
                         -1);                                                \
        assert_non_null(strstr(errstr, needle));                             \
        assert_int_equal(subs_entitlement_apply(g.redis, &g.script, PREFIX,  \
                                                &c, TTL_S, &out, errstr,     \
                                                sizeof(errstr)),             \
                         -1);                                                \
        assert_non_null(strstr(errstr, "invalid change"));                   \
    } while (0)
    REFUSED(provider, "stripe", "provider");
    REFUSED(provider, NULL, "provider");
    REFUSED(notification_id, "", "notification_id");
    REFUSED(subscription_id, NULL, "subscription_id");
    REFUSED(app_user_id, long_owner, "app_user_id");
    REFUSED(state, "Active", "state");
    REFUSED(expires_ms, -1, "expires_ms");
    REFUSED(expires_ms, SUBS_ENTITLEMENT_TIME_MAX + 1, "expires_ms");
    REFUSED(auto_renew, 2, "auto_renew");
    REFUSED(snapshot_ms, 0, "snapshot_ms");
#undef REFUSED
    c = change("ttl", T0);
    assert_int_equal(subs_entitlement_check(&c, errstr, sizeof(errstr)), 0);
    assert_int_equal(subs_entitlement_apply(g.redis, &g.script, PREFIX, &c, 0,
                                            &out, errstr, sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "ttl"));
    r = cmd("DBSIZE");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

/* The pipelined halves: changes sent together are answered in order, as
 * one after the other would be; a refused one does not disturb the rest. */
static void test_pipelined_changes_answer_in_order(void **state)
{
    struct subs_change c[4] = {change("p1", T0), change("p2", T0 + 1),
                               change("p2", T0 + 1), change("p3", T0 + 2)};
    static const enum subs_apply_result want[4] = {
        SUBS_APPLIED, SUBS_APPLIED, SUBS_DUPLICATE, SUBS_APPLIED};
    struct subs_applied out;
    char errstr[256];
    redisReply *r;

    (void)state;
    NEED_REDIS();
    c[1].state = "billing_retry";
    c[3].state = "grace_period";
    c[3].app_user_id = "u9"; /* its hash is a string: refused */
    r = cmd("SET " PREFIX "entitlements:{u9} oops");
    freeReplyObject(r);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(subs_entitlement_send(g.redis, &g.script, PREFIX,
                                               &c[i], TTL_S, errstr,
                                               sizeof(errstr)),
                         0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(subs_entitlement_read(g.redis, &g.script, &out, errstr,
                                               sizeof(errstr)),
                         0);
        assert_int_equal(out.result, want[i]);
    }
    assert_string_equal(out.previous_state, "active");
    assert_string_equal(out.state, "billing_retry");
    assert_int_equal(
        subs_entitlement_read(g.redis, &g.script, &out, errstr, sizeof(errstr)),
        -1);
    assert_non_null(strstr(errstr, "WRONGTYPE"));
    /* the connection is fine afterwards */
    c[3].app_user_id = "u1";
    assert_int_equal(apply(&c[3]).result, SUBS_APPLIED);
}

/* A failing script writes nothing, not even the seen marker, so that the
 * retry is not taken for a duplicate. */
static void test_script_failure_writes_nothing(void **state)
{
    struct subs_change c = change("w1", T0);
    struct subs_applied out;
    char errstr[256], *before, *after;
    char long_owner[SUBS_ENTITLEMENT_OWNER_MAX + 1];
    redisReply *r;

    (void)state;
    NEED_REDIS();
    apply(&c);
    /* the new owner's hash is a string */
    r = cmd("SET " PREFIX "entitlements:{u2} oops");
    freeReplyObject(r);
    before = dump();
    c = change("w2", T0 + 1);
    c.app_user_id = "u2";
    assert_int_equal(subs_entitlement_apply(g.redis, &g.script, PREFIX, &c,
                                            TTL_S, &out, errstr,
                                            sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "WRONGTYPE"));
    assert_int_equal(out.result, 0);
    assert_string_equal(out.app_user_id, "");
    after = dump();
    assert_string_equal(before, after);
    free(after);
    free(before);

    /* an app-written owner too long for struct subs_applied */
    memset(long_owner, 'y', sizeof(long_owner) - 1);
    long_owner[sizeof(long_owner) - 1] = '\0';
    r = cmd("SET " PREFIX "subs_owner:long %s", long_owner);
    freeReplyObject(r);
    c = change("w3", T0);
    c.subscription_id = "long";
    c.app_user_id = NULL;
    assert_int_equal(subs_entitlement_apply(g.redis, &g.script, PREFIX, &c,
                                            TTL_S, &out, errstr,
                                            sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "longer than"));
    assert_int_equal(exists(PREFIX "subs:seen:appstore:w3"), 0);
    assert_int_equal(exists(PREFIX "subs:sub:appstore:long"), 0);
    /* one byte shorter fits */
    long_owner[SUBS_ENTITLEMENT_OWNER_MAX - 1] = '\0';
    r = cmd("SET " PREFIX "subs_owner:long %s", long_owner);
    freeReplyObject(r);
    assert_string_equal(apply(&c).app_user_id, long_owner);
}

static void test_redis_down_fails(void **state)
{
    struct subs_change c = change("d1", T0);
    struct subs_applied out;
    struct hr_redis *dead;
    struct hr_script script;
    char errstr[512];

    (void)state;
    NEED_REDIS();
    dead = hr_redis_new("unix:///nonexistent/herald-test.sock", PREFIX, errstr,
                        sizeof(errstr));
    assert_non_null(dead);
    subs_entitlement_script_init(&script);
    errstr[0] = '\0';
    assert_int_equal(subs_entitlement_apply(dead, &script, PREFIX, &c, TTL_S,
                                            &out, errstr, sizeof(errstr)),
                     -1);
    assert_true(errstr[0] != '\0');
    hr_redis_free(dead);
    /* and a server that lost its script cache is handled */
    {
        redisReply *r = cmd("SCRIPT FLUSH");

        freeReplyObject(r);
        assert_int_equal(apply(&c).result, SUBS_APPLIED);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_apply_in_order, setup),
        cmocka_unit_test_setup(test_shuffled_ends_in_the_same_state, setup),
        cmocka_unit_test_setup(test_duplicate_writes_nothing, setup),
        cmocka_unit_test_setup(test_stale_snapshot_writes_only_the_id, setup),
        cmocka_unit_test_setup(test_owner_from_subs_owner_and_fallback, setup),
        cmocka_unit_test_setup(test_owner_move, setup),
        cmocka_unit_test_setup(test_product_change, setup),
        cmocka_unit_test_setup(test_another_subscription_holds_the_entry,
                               setup),
        cmocka_unit_test_setup(test_expires_at_formatting, setup),
        cmocka_unit_test_setup(test_notice_keeps_state_updates_auto_renew,
                               setup),
        cmocka_unit_test_setup(test_unknown_subscription_notice, setup),
        cmocka_unit_test_setup(test_escaping_and_prefix, setup),
        cmocka_unit_test_setup(test_invalid_change_is_refused, setup),
        cmocka_unit_test_setup(test_script_failure_writes_nothing, setup),
        cmocka_unit_test_setup(test_redis_down_fails, setup),
        cmocka_unit_test_setup(test_pipelined_changes_answer_in_order, setup),
    };

    return cmocka_run_group_tests_name("subs_entitlement", tests, group_setup,
                                       group_teardown);
}
