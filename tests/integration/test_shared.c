/*
 * hr_shared against a real redis-server: one mint serves many calls and
 * two replicas (two struct hr_shared_token, two Redis clients), a due
 * token is minted again by exactly one of two racing replicas, forget()
 * deletes only the same token, a lock left behind is taken over once its
 * TTL (lock_ms) runs out, a held token outlives a failed mint and a Redis
 * outage, and the mint's transient and auth failures come back as such.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "hr_redis.h"
#include "hr_shared.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define PREFIX "herald:"
#define NAME   "test:token"
#define TKEY   PREFIX NAME
#define LKEY   TKEY ":lock"

static struct hx_redis *server;
static struct hr_redis *redis[2];
static redisContext *raw;

/* One struct per replica, fresh for every test. */
static struct hr_shared_token tok[2];

/* What the mint callback does; reset for every test. */
struct mint_ctx {
    atomic_int calls;          /* every call, failed or not */
    enum hr_shared_result res; /* what it answers */
    const char *token;         /* what it mints; NULL: "tok-<calls>" */
    int64_t refresh_ms;        /* due this long after the mint */
    int64_t life_ms;           /* expires this long after the mint */
    int sleep_ms;              /* how long it takes */
    redisContext *peek;        /* when set: the lock's PTTL goes below */
    long long lock_pttl;
};

static struct mint_ctx ctx;

static enum hr_shared_result test_mint(void *opaque,
                                       int64_t now_ms,
                                       char *out,
                                       size_t size,
                                       int64_t *refresh_at_ms,
                                       int64_t *expires_ms,
                                       char *errstr,
                                       size_t errstr_size)
{
    struct mint_ctx *m = opaque;
    int n = atomic_fetch_add(&m->calls, 1) + 1;

    if (m->peek) {
        redisReply *reply = redisCommand(m->peek, "PTTL %s", LKEY);

        m->lock_pttl = reply ? reply->integer : -100;
        freeReplyObject(reply);
    }
    if (m->sleep_ms)
        hr_time_sleep_ms(m->sleep_ms);
    if (m->res != HR_SHARED_OK) {
        snprintf(errstr, errstr_size, "mint %d %s", n,
                 m->res == HR_SHARED_AUTH ? "refused" : "timed out");
        return m->res;
    }
    if (m->token)
        snprintf(out, size, "%s", m->token);
    else
        snprintf(out, size, "tok-%d", n);
    *refresh_at_ms = now_ms + m->refresh_ms;
    *expires_ms = now_ms + m->life_ms;
    return HR_SHARED_OK;
}

static int group_setup(void **state)
{
    char errstr[256];

    (void)state;
    /* Writing to the stopped redis-server must fail, not kill us (the
     * workers ignore SIGPIPE too). */
    signal(SIGPIPE, SIG_IGN);
    server = hx_redis_start(NULL);
    if (!server) {
        fprintf(stderr, "redis-server not found or did not start: skipped\n");
        exit(HX_SKIP);
    }
    for (int i = 0; i < 2; i++) {
        redis[i] =
            hr_redis_new(hx_redis_url(server), PREFIX, errstr, sizeof(errstr));
        if (!redis[i]) {
            fprintf(stderr, "%s\n", errstr);
            return -1;
        }
    }
    raw = hx_redis_connect(server);
    return raw ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        hr_redis_free(redis[i]);
    if (raw)
        redisFree(raw);
    hx_redis_free(server);
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    hx_redis_flushall(server);
    atomic_store(&ctx.calls, 0);
    ctx.res = HR_SHARED_OK;
    ctx.token = NULL;
    ctx.refresh_ms = 20 * 60 * 1000;
    ctx.life_ms = 55 * 60 * 1000;
    ctx.sleep_ms = 0;
    ctx.peek = NULL;
    ctx.lock_pttl = 0;
    for (int i = 0; i < 2; i++)
        hr_shared_token_init(&tok[i], PREFIX, NAME);
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        hr_shared_token_release(&tok[i]);
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static int mints(void)
{
    return atomic_load(&ctx.calls);
}

/* Replica @r's token, which must be @want. */
static void token_is(int r, const char *want)
{
    char errstr[256] = "";
    enum hr_shared_result res;

    res = hr_shared_token_get(&tok[r], redis[r], test_mint, &ctx, errstr,
                              sizeof(errstr));
    if (res != HR_SHARED_OK)
        fail_msg("replica %d: get failed (%d): %s", r, (int)res, errstr);
    assert_string_equal(tok[r].value, want);
    assert_true(tok[r].expires_ms > hr_time_now_ms());
}

/* Replica @r fails with @want and an error that mentions @needle, and
 * holds no token. */
static void token_fails(int r, enum hr_shared_result want, const char *needle)
{
    char errstr[256] = "";
    enum hr_shared_result res;

    res = hr_shared_token_get(&tok[r], redis[r], test_mint, &ctx, errstr,
                              sizeof(errstr));
    if (res != want)
        fail_msg("replica %d: result %d, want %d (%s)", r, (int)res, (int)want,
                 errstr);
    assert_string_equal(tok[r].value, "");
    if (!strstr(errstr, needle))
        fail_msg("error '%s' does not mention '%s'", errstr, needle);
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

/* Another replica holds the lock for @ms. */
static void hold_lock(const char *ms)
{
    redisReply *reply = raw_cmd("SET %s other-replica NX PX %s", LKEY, ms);

    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
}

/* ---- sharing ---------------------------------------------------------- */

static void test_shared_one_mint_serves_many_gets(void **state)
{
    long long refresh_at, expires;
    redisReply *reply;

    (void)state;
    for (int i = 0; i < 50; i++)
        token_is(0, "tok-1");
    assert_int_equal(mints(), 1);
    assert_int_equal(tok[0].minted, 1);
    assert_int_equal(tok[0].adopted, 0);

    /* Redis holds "<refresh_at_ms> <expires_ms> <token>" with a TTL of its
     * life; the lock was released. */
    reply = raw_cmd("GET %s", TKEY, NULL);
    assert_int_equal(reply->type, REDIS_REPLY_STRING);
    assert_int_equal(sscanf(reply->str, "%lld %lld", &refresh_at, &expires), 2);
    assert_int_equal(refresh_at, tok[0].refresh_at_ms);
    assert_int_equal(expires, tok[0].expires_ms);
    assert_int_equal(expires - refresh_at, ctx.life_ms - ctx.refresh_ms);
    assert_string_equal(strrchr(reply->str, ' ') + 1, "tok-1");
    freeReplyObject(reply);
    reply = raw_cmd("PTTL %s", TKEY, NULL);
    assert_true(reply->integer > ctx.life_ms - 10000 &&
                reply->integer <= ctx.life_ms);
    freeReplyObject(reply);
    assert_false(key_exists(LKEY));
}

static void test_shared_two_replicas_share_one_mint(void **state)
{
    (void)state;
    token_is(0, "tok-1");
    for (int i = 0; i < 10; i++) {
        token_is(1, "tok-1");
        token_is(0, "tok-1");
    }
    assert_int_equal(mints(), 1);
    assert_int_equal(tok[0].minted, 1);
    assert_int_equal(tok[1].minted, 0);
    assert_int_equal(tok[1].adopted, 1);
}

static void test_shared_without_redis_each_struct_mints_once(void **state)
{
    char errstr[256];

    (void)state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(hr_shared_token_get(&tok[0], NULL, test_mint, &ctx,
                                             errstr, sizeof(errstr)),
                         HR_SHARED_OK);
    assert_string_equal(tok[0].value, "tok-1");
    assert_int_equal(mints(), 1);
    assert_false(key_exists(TKEY));
}

static void test_shared_unreadable_value_is_replaced(void **state)
{
    redisReply *reply;

    (void)state;
    /* An old format, and a token with a space: both count as missing. */
    freeReplyObject(raw_cmd("SET %s %s", TKEY, "99999999999999 tok-old"));
    token_is(0, "tok-1");
    hr_shared_token_release(&tok[0]);
    reply = raw_cmd("SET %s %s", TKEY, "1 99999999999999 tok with space");
    freeReplyObject(reply);
    token_is(0, "tok-2");
    assert_int_equal(tok[0].adopted, 0);
}

/* ---- refresh ---------------------------------------------------------- */

/* One replica in its own thread (one struct hr_redis each). */
struct racer {
    int r;
    pthread_barrier_t *start;
    enum hr_shared_result res;
    char value[HR_SHARED_TOKEN_MAX];
    char errstr[256];
};

static void *race(void *arg)
{
    struct racer *rc = arg;

    pthread_barrier_wait(rc->start);
    rc->res = hr_shared_token_get(&tok[rc->r], redis[rc->r], test_mint, &ctx,
                                  rc->errstr, sizeof(rc->errstr));
    snprintf(rc->value, sizeof(rc->value), "%s", tok[rc->r].value);
    return NULL;
}

static void test_shared_due_token_is_minted_again_by_one_replica(void **state)
{
    struct racer racers[2] = {{.r = 0}, {.r = 1}};
    uint64_t minted_before = 0, minted_after = 0;
    pthread_barrier_t start;
    pthread_t th[2];

    (void)state;
    ctx.refresh_ms = 300;
    token_is(0, "tok-1");
    token_is(1, "tok-1");
    hx_sleep_ms(400);

    /* Both find tok-1 due at once; the mint takes 200 ms: the loser of the
     * lock keeps serving tok-1 (due, still valid) meanwhile, and adopts
     * tok-2 at its next call. */
    ctx.refresh_ms = 20 * 60 * 1000;
    ctx.sleep_ms = 200;
    for (int i = 0; i < 2; i++)
        minted_before += tok[i].minted;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    for (int i = 0; i < 2; i++) {
        racers[i].start = &start;
        assert_int_equal(pthread_create(&th[i], NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 2; i++) {
        if (racers[i].res != HR_SHARED_OK)
            fail_msg("replica %d: %s", i, racers[i].errstr);
        assert_true(!strcmp(racers[i].value, "tok-2") ||
                    !strcmp(racers[i].value, "tok-1"));
        minted_after += tok[i].minted;
    }
    assert_int_equal(mints(), 2);
    assert_int_equal(minted_after - minted_before, 1);
    assert_false(key_exists(LKEY));

    /* Not due any more: nobody mints. */
    token_is(0, "tok-2");
    token_is(1, "tok-2");
    assert_int_equal(mints(), 2);
}

/* ---- forget ----------------------------------------------------------- */

static void test_shared_forget_deletes_only_the_same_token(void **state)
{
    char errstr[256];

    (void)state;
    token_is(0, "tok-1");
    token_is(1, "tok-1");

    /* Replica 0 is told tok-1 is bad: its copy and Redis's go. */
    assert_int_equal(hr_shared_token_forget(&tok[0], redis[0], "tok-1", errstr,
                                            sizeof(errstr)),
                     0);
    assert_string_equal(tok[0].value, "");
    assert_false(key_exists(TKEY));
    token_is(0, "tok-2");

    /* Replica 1 learns it later: Redis's tok-2 survives its forget(). */
    token_is(1, "tok-1");
    assert_int_equal(hr_shared_token_forget(&tok[1], redis[1], "tok-1", errstr,
                                            sizeof(errstr)),
                     0);
    assert_true(key_exists(TKEY));
    token_is(1, "tok-2");
    assert_int_equal(mints(), 2);

    /* A token the struct does not hold leaves its copy alone. */
    assert_int_equal(hr_shared_token_forget(&tok[1], redis[1], "tok-9", errstr,
                                            sizeof(errstr)),
                     0);
    assert_string_equal(tok[1].value, "tok-2");
    assert_true(key_exists(TKEY));

    /* forget(NULL) drops only the struct's copy. */
    assert_int_equal(
        hr_shared_token_forget(&tok[1], redis[1], NULL, errstr, sizeof(errstr)),
        0);
    assert_string_equal(tok[1].value, "");
    assert_true(key_exists(TKEY));
    token_is(1, "tok-2");
    assert_int_equal(mints(), 2);
}

/* ---- the lock --------------------------------------------------------- */

static void test_shared_lock_left_behind_is_taken_over(void **state)
{
    int64_t t0 = hx_now_ms();

    (void)state;
    /* A replica took the lock and died: once it expires, the waiter
     * mints itself, and holds the lock for its own lock_ms. */
    hold_lock("400");
    tok[1].lock_ms = 15000;
    ctx.peek = raw;
    token_is(1, "tok-1");
    assert_true(hx_now_ms() - t0 >= 350);
    assert_true(hx_now_ms() - t0 < HR_SHARED_WAIT_MS);
    assert_int_equal(mints(), 1);
    assert_true(ctx.lock_pttl > 14000 && ctx.lock_pttl <= 15000);
    assert_false(key_exists(LKEY));
}

static void test_shared_lock_held_too_long_is_transient(void **state)
{
    int64_t t0 = hx_now_ms();

    (void)state;
    /* Nothing held and the holder never delivers. */
    hold_lock("10000");
    token_fails(0, HR_SHARED_TRANSIENT, "another replica");
    assert_true(hx_now_ms() - t0 >= HR_SHARED_WAIT_MS - 100);
    assert_int_equal(mints(), 0);
    assert_true(key_exists(LKEY)); /* not ours to delete */
}

/* ---- failures --------------------------------------------------------- */

static void test_shared_mint_failures_come_back_as_such(void **state)
{
    (void)state;
    ctx.res = HR_SHARED_TRANSIENT;
    token_fails(0, HR_SHARED_TRANSIENT, "mint 1 timed out");
    assert_false(key_exists(LKEY)); /* released on failure */
    ctx.res = HR_SHARED_AUTH;
    token_fails(0, HR_SHARED_AUTH, "mint 2 refused");
    assert_false(key_exists(LKEY));
    assert_false(key_exists(TKEY));
    assert_int_equal(tok[0].minted, 0);

    /* A mint that says OK but gives no usable token. */
    ctx.res = HR_SHARED_OK;
    ctx.token = "two words";
    token_fails(0, HR_SHARED_TRANSIENT, "unusable");
    ctx.token = NULL;
    ctx.life_ms = -1;
    token_fails(0, HR_SHARED_TRANSIENT, "expired");
    assert_false(key_exists(TKEY));
}

static void test_shared_failed_mint_keeps_a_valid_token(void **state)
{
    (void)state;
    /* Due at once, valid for 2 s (the calls below take a few ms, or a
     * few hundred on a loaded machine under sanitizers). */
    ctx.refresh_ms = 0;
    ctx.life_ms = 2000;
    token_is(0, "tok-1");
    ctx.res = HR_SHARED_TRANSIENT;
    token_is(0, "tok-1");
    ctx.res = HR_SHARED_AUTH;
    token_is(0, "tok-1");
    assert_int_equal(mints(), 3);

    /* Replica 1 adopts it from Redis as a fallback too. */
    token_is(1, "tok-1");
    assert_int_equal(mints(), 4);

    /* Expired: the failure is the mint's. */
    hx_sleep_ms(2050);
    token_fails(0, HR_SHARED_AUTH, "mint 5 refused");
}

static void test_shared_redis_outage(void **state)
{
    char errstr[256] = "";

    (void)state;
    /* Replica 0 holds a due token; replica 1 none. */
    ctx.refresh_ms = 0;
    token_is(0, "tok-1");
    assert_int_equal(hx_redis_stop_server(server), 0);
    token_is(0, "tok-1");
    token_fails(1, HR_SHARED_REDIS, "");
    assert_int_equal(mints(), 1); /* no mint without the lock */
    assert_int_equal(hr_shared_token_forget(&tok[0], redis[0], "tok-1", errstr,
                                            sizeof(errstr)),
                     -1);
    assert_true(errstr[0]);
    assert_string_equal(tok[0].value, ""); /* gone here all the same */

    assert_int_equal(hx_redis_restart_server(server), 0);
    redisFree(raw);
    raw = hx_redis_connect(server);
    assert_non_null(raw);
    ctx.refresh_ms = 20 * 60 * 1000;
    token_is(1, "tok-2");
    token_is(0, "tok-2");
    assert_int_equal(mints(), 2);
}

static void test_shared_name_too_long_is_auth(void **state)
{
    static char name[HR_SHARED_KEY_MAX + 1];
    char errstr[256] = "";

    (void)state;
    memset(name, 'n', sizeof(name) - 1);
    hr_shared_token_init(&tok[0], PREFIX, name);
    assert_int_equal(hr_shared_token_get(&tok[0], redis[0], test_mint, &ctx,
                                         errstr, sizeof(errstr)),
                     HR_SHARED_AUTH);
    assert_non_null(strstr(errstr, "too long"));
    assert_int_equal(mints(), 0);
    /* Without Redis the name does not matter. */
    assert_int_equal(hr_shared_token_get(&tok[0], NULL, test_mint, &ctx, errstr,
                                         sizeof(errstr)),
                     HR_SHARED_OK);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_shared_one_mint_serves_many_gets),
        T(test_shared_two_replicas_share_one_mint),
        T(test_shared_without_redis_each_struct_mints_once),
        T(test_shared_unreadable_value_is_replaced),
        T(test_shared_due_token_is_minted_again_by_one_replica),
        T(test_shared_forget_deletes_only_the_same_token),
        T(test_shared_lock_left_behind_is_taken_over),
        T(test_shared_lock_held_too_long_is_transient),
        T(test_shared_mint_failures_come_back_as_such),
        T(test_shared_failed_mint_keeps_a_valid_token),
        T(test_shared_redis_outage),
        T(test_shared_name_too_long_is_auth),
    };
#undef T

    return cmocka_run_group_tests_name("shared", tests, group_setup,
                                       group_teardown);
}
