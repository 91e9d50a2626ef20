/*
 * herald-subs' entitlement script (workers/subs/subs_entitlement.lua),
 * EVALed from the source tree with hiredis against a real redis-server,
 * with the keys and arguments subs_entitlement_apply() sends
 * (subs_entitlement.h): the reply, the keys it writes, duplicates, stale
 * snapshots, owners, moves, upgrades, notices, expires_at against
 * hr_time_format_rfc3339(), shuffled redeliveries from two connections,
 * and a failure that writes nothing. The C API is tested in
 * tests/unit/test_subs_entitlement.c (integration tests do not link
 * herald_subs).
 *
 * Skipped (exit 77) when redis-server is missing.
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
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define T0  1767225600000LL /* 2026-01-01T00:00:00Z */
#define DAY 86400000LL

/* The script's results (enum subs_apply_result). */
enum { APPLIED = 0, DUPLICATE, STALE, UNKNOWN };

static struct hx_redis *server;
static redisContext *rc;
static char *src; /* the script */

/* One call's inputs, as subs_entitlement_apply() passes them: "" and 0
 * and -1 keep. */
struct ch {
    const char *provider, *id, *sub, *owner, *product, *state;
    long long expires;
    int auto_renew;
    const char *env;
    long long snapshot;
};

static struct ch full(const char *id, long long snapshot)
{
    return (struct ch){"appstore", id,       "7000000001",  "u1",
                       "gold",     "active", T0 + 30 * DAY, 1,
                       "Sandbox",  snapshot};
}

/* The EVAL command of @x under @prefix into @argv (21 entries) with its
 * numbers in @nums; returns the count. */
static int command_of(const char *prefix,
                      const struct ch *x,
                      const char **argv,
                      char nums[7][600])
{
    snprintf(nums[0], 600, "%ssubs:sub:%s:%s", prefix, x->provider, x->sub);
    snprintf(nums[1], 600, "%ssubs:seen:%s:%s", prefix, x->provider, x->id);
    snprintf(nums[2], 600, "%ssubs_owner:%s", prefix, x->sub);
    snprintf(nums[3], 600, "%lld", x->expires);
    snprintf(nums[4], 600, "%d", x->auto_renew);
    snprintf(nums[5], 600, "%lld", x->snapshot);
    snprintf(nums[6], 600, "%d", 1279);
    argv[0] = "EVAL";
    argv[1] = src;
    argv[2] = "3";
    argv[3] = nums[0];
    argv[4] = nums[1];
    argv[5] = nums[2];
    argv[6] = prefix;
    argv[7] = x->provider;
    argv[8] = x->sub;
    argv[9] = x->owner ? x->owner : "";
    argv[10] = x->product ? x->product : "";
    argv[11] = x->state ? x->state : "";
    argv[12] = nums[3];
    argv[13] = nums[4];
    argv[14] = x->env ? x->env : "";
    argv[15] = nums[5];
    argv[16] = "3600";
    argv[17] = nums[6];
    return 18;
}

/* Run @x on @c; returns the reply (caller frees), which may be an error. */
static redisReply *
run_on(redisContext *c, const char *prefix, const struct ch *x)
{
    const char *argv[21];
    char nums[7][600];
    int argc = command_of(prefix, x, argv, nums);
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);

    assert_non_null(r);
    return r;
}

/* Run @x and check the reply's shape; returns the result code. */
static long long run(const struct ch *x)
{
    redisReply *r = run_on(rc, "herald:", x);
    long long code;

    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", x->id, r->str);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 6);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->element[1]->type, REDIS_REPLY_STRING);
    assert_int_equal(r->element[2]->type, REDIS_REPLY_STRING);
    assert_int_equal(r->element[3]->type, REDIS_REPLY_STRING);
    assert_int_equal(r->element[4]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->element[5]->type, REDIS_REPLY_STRING);
    code = r->element[0]->integer;
    freeReplyObject(r);
    return code;
}

/* Run @x and return the whole reply (caller frees). */
static redisReply *run_reply(const struct ch *x)
{
    redisReply *r = run_on(rc, "herald:", x);

    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", x->id, r->str);
    return r;
}

static redisReply *cmd(const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s", r->str);
    return r;
}

/* The entry of @product in @owner's hash, decoded; NULL when none. */
static json_t *entry(const char *owner, const char *product)
{
    redisReply *r = cmd("HGET herald:entitlements:{%s} %s", owner, product);
    json_t *e = NULL;

    if (r->type == REDIS_REPLY_STRING) {
        e = json_loads(r->str, 0, NULL);
        if (!e)
            fail_msg("not JSON: %s", r->str);
    }
    freeReplyObject(r);
    return e;
}

static const char *field(json_t *e, const char *name)
{
    const char *s = json_string_value(json_object_get(e, name));

    return s ? s : "(none)";
}

static long long count(const char *what, const char *key)
{
    redisReply *r = cmd("%s %s", what, key);
    long long n = r->integer;

    freeReplyObject(r);
    return n;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key and value, sorted, as one string (malloc'd). */
static char *dump(void)
{
    redisReply *keys = cmd("KEYS *");
    char **names = calloc(keys->elements + 1, sizeof(*names));
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    assert_non_null(names);
    assert_non_null(f);
    for (size_t i = 0; i < keys->elements; i++)
        names[i] = keys->element[i]->str;
    qsort(names, keys->elements, sizeof(*names), by_name);
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *t = cmd("TYPE %s", names[i]);

        if (!strcmp(t->str, "hash")) {
            redisReply *fs = cmd("HKEYS %s", names[i]);
            char **fn = calloc(fs->elements + 1, sizeof(*fn));

            assert_non_null(fn);
            for (size_t j = 0; j < fs->elements; j++)
                fn[j] = fs->element[j]->str;
            qsort(fn, fs->elements, sizeof(*fn), by_name);
            fprintf(f, "%s:", names[i]);
            for (size_t j = 0; j < fs->elements; j++) {
                redisReply *v = cmd("HGET %s %s", names[i], fn[j]);

                fprintf(f, " %s=%s", fn[j], v->str);
                freeReplyObject(v);
            }
            fprintf(f, "\n");
            free(fn);
            freeReplyObject(fs);
        } else {
            redisReply *v = cmd("GET %s", names[i]);

            /* a seen marker keeps what the first apply of its
             * notification did, which depends on the delivery order */
            fprintf(f, "%s = %s\n", names[i],
                    strstr(names[i], "subs:seen:") ? "(seen)" : v->str);
            freeReplyObject(v);
        }
        freeReplyObject(t);
    }
    fclose(f);
    free(names);
    freeReplyObject(keys);
    return out;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static int setup(void **state)
{
    (void)state;
    hx_redis_flushall(server);
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

/* The first notification: the reply, and exactly the three keys. */
static void test_first_notification_writes_three_keys(void **state)
{
    struct ch x = full("n1", T0);
    redisReply *r;

    (void)state;
    r = run_reply(&x);
    assert_int_equal(r->element[0]->integer, APPLIED);
    assert_string_equal(r->element[1]->str, "u1");
    assert_string_equal(r->element[2]->str, "");
    assert_string_equal(r->element[3]->str, "active");
    assert_int_equal(r->element[4]->integer, 1);
    freeReplyObject(r);
    r = cmd("DBSIZE");
    assert_int_equal(r->integer, 3);
    freeReplyObject(r);
    r = cmd("HGET herald:entitlements:{u1} gold");
    assert_string_equal(r->str,
                        "{\"state\":\"active\",\"provider\":\"appstore\","
                        "\"subscription_id\":\"7000000001\","
                        "\"expires_at\":\"2026-01-31T00:00:00.000Z\","
                        "\"auto_renew\":true,\"environment\":\"Sandbox\","
                        "\"updated_at\":\"2026-01-01T00:00:00.000Z\"}");
    freeReplyObject(r);
    assert_int_equal(count("HLEN", "herald:subs:sub:appstore:7000000001"), 7);
    r = cmd("HGET herald:subs:sub:appstore:7000000001 snapshot_ms");
    assert_string_equal(r->str, "1767225600000");
    freeReplyObject(r);
    r = cmd("TTL herald:subs:seen:appstore:n1");
    assert_true(r->integer > 3590 && r->integer <= 3600);
    freeReplyObject(r);
}

static void test_duplicate_and_stale(void **state)
{
    struct ch x = full("n1", T0 + DAY);
    char *before, *after;
    redisReply *r;

    (void)state;
    assert_int_equal(run(&x), APPLIED);
    before = dump();
    x.state = "revoked";
    assert_int_equal(run(&x), DUPLICATE);
    after = dump();
    assert_string_equal(before, after);
    free(after);
    /* older: only its id is remembered */
    x = full("n0", T0);
    x.state = "expired";
    r = run_reply(&x);
    assert_int_equal(r->element[0]->integer, STALE);
    assert_string_equal(r->element[3]->str, "active");
    assert_int_equal(r->element[4]->integer, 0);
    freeReplyObject(r);
    assert_int_equal(count("EXISTS", "herald:subs:seen:appstore:n0"), 1);
    assert_int_equal(count("DEL", "herald:subs:seen:appstore:n0"), 1);
    after = dump();
    assert_string_equal(before, after);
    free(after);
    free(before);
    /* equal: applies */
    x = full("n2", T0 + DAY);
    x.state = "expired";
    assert_int_equal(run(&x), APPLIED);
    {
        json_t *e = entry("u1", "gold");

        assert_string_equal(field(e, "state"), "expired");
        json_decref(e);
    }
}

/* fallback -> subs_owner (a move) -> the store names someone (a move). */
static void test_owners(void **state)
{
    struct ch x = full("o1", T0);
    redisReply *r;
    json_t *e;

    (void)state;
    x.owner = NULL;
    r = run_reply(&x);
    assert_string_equal(r->element[1]->str, "appstore:7000000001");
    freeReplyObject(r);
    assert_int_equal(count("HLEN", "herald:entitlements:{appstore:7000000001}"),
                     1);
    freeReplyObject(cmd("SET herald:subs_owner:7000000001 app-1"));
    x = full("o2", T0 + 1);
    x.owner = NULL;
    r = run_reply(&x);
    assert_string_equal(r->element[1]->str, "app-1");
    assert_int_equal(r->element[4]->integer, 1);
    freeReplyObject(r);
    assert_int_equal(
        count("EXISTS", "herald:entitlements:{appstore:7000000001}"), 0);
    e = entry("app-1", "gold");
    assert_non_null(e);
    json_decref(e);
    x = full("o3", T0 + 2);
    x.owner = "store-1";
    assert_int_equal(run(&x), APPLIED);
    assert_int_equal(count("EXISTS", "herald:entitlements:{app-1}"), 0);
    e = entry("store-1", "gold");
    assert_non_null(e);
    json_decref(e);
}

/* An upgrade deletes the old product's entry; a notice keeps the state. */
static void test_upgrade_then_notice(void **state)
{
    struct ch x = full("p1", T0);
    redisReply *r;
    json_t *e;

    (void)state;
    run(&x);
    x = full("p2", T0 + 1);
    x.product = "platinum";
    assert_int_equal(run(&x), APPLIED);
    assert_null(entry("u1", "gold"));
    x = (struct ch){"appstore", "p3", "7000000001", NULL,  NULL, NULL,
                    0,          0,    NULL,         T0 + 2};
    r = run_reply(&x);
    assert_int_equal(r->element[0]->integer, APPLIED);
    assert_string_equal(r->element[2]->str, "active");
    assert_string_equal(r->element[3]->str, "active");
    assert_int_equal(r->element[4]->integer, 1);
    freeReplyObject(r);
    e = entry("u1", "platinum");
    assert_string_equal(field(e, "state"), "active");
    assert_string_equal(field(e, "expires_at"), "2026-01-31T00:00:00.000Z");
    assert_true(json_is_false(json_object_get(e, "auto_renew")));
    json_decref(e);
    /* a notice for a subscription never seen */
    x.sub = "nobody";
    x.id = "p4";
    assert_int_equal(run(&x), UNKNOWN);
    assert_int_equal(count("EXISTS", "herald:subs:sub:appstore:nobody"), 0);
}

/* expires_at and updated_at are hr_time_format_rfc3339()'s text. */
static void test_formatting_matches_hr_time(void **state)
{
    uint64_t seed = 7;
    char id[32], want[32];

    (void)state;
    for (int i = 0; i < 2000; i++) {
        long long t = 1 + (long long)(rnd(&seed) % 253402300799999ULL);
        struct ch x;
        json_t *e;

        snprintf(id, sizeof(id), "f%d", i);
        x = full(id, t);
        x.sub = id; /* a fresh record: any snapshot applies */
        x.expires = t;
        run(&x);
        e = entry("u1", "gold");
        hr_time_format_rfc3339(t, want, sizeof(want));
        assert_string_equal(field(e, "expires_at"), want);
        assert_string_equal(field(e, "updated_at"), want);
        json_decref(e);
    }
}

/* Full snapshots of two subscriptions, each delivered twice, shuffled and
 * split over two connections (two replicas) that pipeline them: the end
 * state is the in-order one. */
static void test_shuffled_redeliveries_from_two_replicas(void **state)
{
#define A(id, s, prod, st, exp, ar)                                         \
    {                                                                       \
        "appstore", id, "7000000001", "u1", prod, st, exp, ar, "Sandbox", s \
    }
#define G(id, s, owner, st, exp, ar)                                          \
    {                                                                         \
        "googleplay", id, "tok-9", owner, "pro", st, exp, ar, "production", s \
    }
    static const struct ch life[] = {
        A("a1", T0, "gold", "active", T0 + 30 * DAY, 1),
        A("a2", T0 + DAY, "gold", "active", T0 + 30 * DAY, 0),
        A("a3", T0 + 30 * DAY, "gold", "expired", T0 + 30 * DAY, 0),
        A("a4", T0 + 40 * DAY, "platinum", "active", T0 + 70 * DAY, 1),
        A("a5", T0 + 70 * DAY, "platinum", "billing_retry", T0 + 70 * DAY, 1),
        A("a6", T0 + 71 * DAY, "platinum", "active", T0 + 101 * DAY, 1),
        A("a7", T0 + 80 * DAY, "platinum", "refunded", T0 + 101 * DAY, 0),
        G("g1", T0 + 3, "", "active", T0 + 7 * DAY, 1),
        G("g2", T0 + 7 * DAY, "u1", "active", T0 + 14 * DAY, 1),
        G("g3", T0 + 8 * DAY, "u1", "paused", T0 + 14 * DAY, 1),
        G("g4", T0 + 20 * DAY, "u1", "active", T0 + 50 * DAY, 1),
        G("g5", T0 + 21 * DAY, "u1", "active", T0 + 50 * DAY, 0),
    };
#undef A
#undef G
    const size_t n = sizeof(life) / sizeof(life[0]);
    redisContext *other = hx_redis_connect(server);
    uint64_t seed = 2026;
    size_t order[64];
    char *want;

    (void)state;
    assert_non_null(other);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(run(&life[i]), APPLIED);
    want = dump();
    assert_int_equal(count("HLEN", "herald:entitlements:{u1}"), 2);
    assert_int_equal(count("EXISTS", "herald:entitlements:{googleplay:tok-9}"),
                     0);
    for (int round = 0; round < 50; round++) {
        redisContext *conns[2] = {rc, other};
        size_t sent[2] = {0, 0};
        int dups = 0;
        char *got;

        for (size_t i = 0; i < 2 * n; i++)
            order[i] = i % n;
        for (size_t i = 2 * n - 1; i > 0; i--) {
            size_t j = (size_t)(rnd(&seed) % (i + 1)), t = order[i];

            order[i] = order[j];
            order[j] = t;
        }
        hx_redis_flushall(server);
        for (size_t i = 0; i < 2 * n; i++) {
            const char *argv[21];
            char nums[7][600];
            int argc = command_of("herald:", &life[order[i]], argv, nums);
            size_t k = i % 2;

            assert_int_equal(redisAppendCommandArgv(conns[k], argc, argv, NULL),
                             REDIS_OK);
            sent[k]++;
        }
        for (size_t k = 0; k < 2; k++) {
            for (size_t i = 0; i < sent[k]; i++) {
                redisReply *r;

                assert_int_equal(redisGetReply(conns[k], (void **)&r),
                                 REDIS_OK);
                assert_int_equal(r->type, REDIS_REPLY_ARRAY);
                dups += r->element[0]->integer == DUPLICATE;
                freeReplyObject(r);
            }
        }
        assert_int_equal(dups, (int)n);
        got = dump();
        if (strcmp(got, want))
            fail_msg("round %d:\n%s\nwant:\n%s", round, got, want);
        free(got);
    }
    free(want);
    redisFree(other);
}

/* Reads come before writes: a key of the wrong type fails the call
 * before anything is written, the seen marker included. */
static void test_failure_writes_nothing(void **state)
{
    struct ch x = full("w1", T0);
    char *before, *after;
    redisReply *r;

    (void)state;
    run(&x);
    freeReplyObject(cmd("SET herald:entitlements:{u2} not-a-hash"));
    before = dump();
    x = full("w2", T0 + 1);
    x.owner = "u2";
    r = run_on(rc, "herald:", &x);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    after = dump();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_first_notification_writes_three_keys,
                               setup),
        cmocka_unit_test_setup(test_duplicate_and_stale, setup),
        cmocka_unit_test_setup(test_owners, setup),
        cmocka_unit_test_setup(test_upgrade_then_notice, setup),
        cmocka_unit_test_setup(test_formatting_matches_hr_time, setup),
        cmocka_unit_test_setup(test_shuffled_redeliveries_from_two_replicas,
                               setup),
        cmocka_unit_test_setup(test_failure_writes_nothing, setup),
    };
    char path[600];
    int failed;

    if (!hx_on_path("redis-server")) {
        fprintf(stderr, "redis-server is not on PATH: skipping\n");
        return HX_SKIP;
    }
    snprintf(path, sizeof(path), "%s/workers/subs/subs_entitlement.lua",
             HX_SOURCE_DIR);
    src = hx_file_read(path, NULL);
    server = hx_redis_start(NULL);
    rc = server ? hx_redis_connect(server) : NULL;
    if (!src || !rc) {
        fprintf(stderr, "cannot read %s or start redis\n", path);
        return 1;
    }
    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    failed = cmocka_run_group_tests_name("subs entitlement script", tests, NULL,
                                         NULL);
    redisFree(rc);
    hx_redis_free(server);
    free(src);
    return failed;
}
