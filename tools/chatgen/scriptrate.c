/*
 * scriptrate: herald-unread's batch script alone. The scenario's events go
 * through the worker's own grouping (unread_group, unread_build) and one
 * synchronous script call per batch, with no broker, no outputs and no
 * other client, so the Redis time it prints depends only on the data and
 * the script: the rate Redis could sustain if the worker cost nothing.
 *
 * Batches are cut the way a consumer sees a topic: runs of --chunk events
 * from one partition after another (partition = FNV-1a of the key), so a
 * batch spans a few partitions' conversations, as the worker's do.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatgen.h"
#include "hr_arena.h"
#include "hr_metrics.h"
#include "hr_redis.h"
#include "hr_time.h"
#include "unread_state.h"

extern const char hr_lua_unread_apply[];
extern const unsigned long hr_lua_unread_apply_len;

static size_t partition_of(const char *key, size_t partitions)
{
    uint32_t h = 2166136261u;

    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h % partitions;
}

/* Event indexes in consumption order: chunks of each partition in turn. */
static size_t *consumption_order(const struct gen_args *a,
                                 const struct chat_scenario *s)
{
    size_t n = chat_count(s), np = a->partitions, taken = 0;
    size_t *order = calloc(n + 1, sizeof(*order));
    size_t *next = calloc(np, sizeof(*next)); /* per partition: scan pos */

    if (!order || !next)
        abort();
    while (taken < n) {
        for (size_t p = 0; p < np; p++) {
            size_t got = 0;

            for (size_t i = next[p]; i < n && got < a->chunk; i++) {
                next[p] = i + 1;
                if (partition_of(chat_event_at(s, i)->key, np) == p) {
                    order[taken++] = i;
                    got++;
                }
            }
        }
    }
    free(next);
    return order;
}

/* Redis's own time in EVALSHA so far (microseconds), from INFO. */
static long long evalsha_usec(struct hr_redis *redis)
{
    char err[256];
    redisReply *r =
        hr_redis_commandf(redis, err, sizeof(err), "INFO commandstats");
    long long usec = 0;
    const char *at;

    if (r && r->str && (at = strstr(r->str, "cmdstat_evalsha:")) &&
        (at = strstr(at, "usec=")))
        usec = strtoll(at + 5, NULL, 10);
    freeReplyObject(r);
    return usec;
}

int scriptrate(const struct gen_args *a, const struct chat_scenario *s)
{
    struct unread_state st;
    struct unread_work *wk = &st.work[0];
    struct hr_metrics *reg = hr_metrics_new("chatgen");
    struct hr_redis *redis;
    struct hr_item *items;
    size_t n = chat_count(s), *order, batches = 0, calls = 0;
    long long usec0;
    double t0, secs;
    char err[256];
    int rc = 0;

    if (!a->redis || !a->batch || !a->partitions || !a->chunk) {
        fprintf(stderr, "scriptrate needs --redis and positive sizes\n");
        return 1;
    }
    redis = hr_redis_new(a->redis, a->prefix, err, sizeof(err));
    if (!redis || hr_redis_connect(redis, err, sizeof(err))) {
        fprintf(stderr, "redis: %s\n", err);
        hr_redis_free(redis);
        return 1;
    }
    hr_arena_install();
    memset(&st, 0, sizeof(st));
    st.set.max_per_conversation = a->max;
    st.set.ttl_seconds = 86400;
    st.script.name = "unread_apply";
    st.script.src = hr_lua_unread_apply;
    st.script.len = hr_lua_unread_apply_len;
    st.saturated = hr_metrics_counter(reg, "saturated", "saturated", NULL);
    unread_work_init(wk);
    order = consumption_order(a, s);
    items = calloc(a->batch, sizeof(*items));
    if (!items)
        abort();

    usec0 = evalsha_usec(redis);
    t0 = hr_time_mono_s();
    for (size_t first = 0; first < n && !rc; first += a->batch) {
        struct hr_batch batch = {items,
                                 n - first < a->batch ? n - first : a->batch};

        memset(items, 0, batch.n * sizeof(*items));
        for (size_t i = 0; i < batch.n; i++) {
            const struct chat_event *ev = chat_event_at(s, order[first + i]);

            items[i].key = ev->key;
            items[i].key_len = strlen(ev->key);
            items[i].value = ev->value;
            items[i].value_len = ev->len;
        }
        /* as unread_handle(): as many calls as the batch's groups take */
        for (size_t from = 0; from < batch.n && !rc; from = wk->next) {
            unread_group(wk, &batch, from);
            if (!wk->pair_ids.n)
                continue;
            unread_build(wk, &st.set, a->prefix);
            if (unread_apply(&st, wk, redis, err, sizeof(err))) {
                fprintf(stderr, "batch %zu: %s\n", batches, err);
                rc = 1;
            }
            calls++;
        }
        batches++;
    }
    secs = hr_time_mono_s() - t0;
    if (!rc) {
        double us = (double)(evalsha_usec(redis) - usec0);

        printf("%zu events in %zu batches of %zu (%zu calls): script %.2f "
               "us/event of Redis time (Redis alone: %.0f events/s), %.0f "
               "events/s with the grouping and round trips\n",
               n, batches, a->batch, calls, us / (double)n,
               us > 0 ? (double)n * 1e6 / us : 0.0,
               secs > 0 ? (double)n / secs : 0.0);
    }
    free(items);
    free(order);
    unread_work_release(wk);
    hr_redis_free(redis);
    hr_metrics_free(reg);
    return rc;
}
