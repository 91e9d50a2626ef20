/* herald-guard's lifecycle, batch handler (schedule) and tick (redeliver). */
#include "guard.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "hr_circuit.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_redis.h"
#include "hr_time.h"
/* The runtime has no public "produce with headers" yet: the guard uses the
 * worker's producer directly, as hr_worker_failures.c does. */

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

extern const char hr_lua_guard_schedule[];
extern const unsigned long hr_lua_guard_schedule_len;
extern const char hr_lua_guard_take[];
extern const unsigned long hr_lua_guard_take_len;
extern const char hr_lua_guard_done[];
extern const unsigned long hr_lua_guard_done_len;

#define GUARD_ID_MAX     320
#define GUARD_NAME_MAX   200
#define GUARD_ARGS_PER   9    /* per item in guard_schedule.lua */
#define GUARD_TICK_MS    25   /* least time between two ticks */
#define GUARD_BUMP_MS    1000 /* a throttled item asks again this much later */
#define GUARD_FLUSH_MS   30000
#define GUARD_WARN_EVERY 10000

struct guard_state {
    struct guard_settings set;
    struct hr_circuit *circuit;
    struct hr_script sched, take, done;
    char due_key[512];
    char item_prefix[512];
    struct hr_metric *scheduled;
    struct hr_metric *redelivered;
    struct hr_metric *dead;
    struct hr_metric *throttled;
    int64_t last_tick_ms; /* monotonic */
    int64_t last_warn_ms; /* monotonic */
    bool last_full;       /* the previous tick took tick_max items */
};

static void script_init(struct hr_script *s,
                        const char *name,
                        const char *src,
                        unsigned long len)
{
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->src = src;
    s->len = len;
}

int guard_init(struct hr_worker *w, void **state)
{
    struct guard_state *st = calloc(1, sizeof(*st));
    struct hr_metrics *m = hr_worker_metrics(w);
    const char *prefix = hr_redis_prefix(hr_worker_redis(w));
    struct hr_circuit_conf cc;

    if (!st)
        return -1;
    guard_settings_load(&st->set, hr_worker_conf(w));
    hr_circuit_conf_load(&cc, hr_worker_conf(w));
    st->circuit = hr_circuit_new(&cc);
    if (!st->circuit) {
        free(st);
        return -1;
    }
    script_init(&st->sched, "guard_schedule", hr_lua_guard_schedule,
                hr_lua_guard_schedule_len);
    script_init(&st->take, "guard_take", hr_lua_guard_take,
                hr_lua_guard_take_len);
    script_init(&st->done, "guard_done", hr_lua_guard_done,
                hr_lua_guard_done_len);
    /* One hash tag for the whole schedule: every script touches one slot. */
    snprintf(st->due_key, sizeof(st->due_key), "%sguard:{sched}:due", prefix);
    snprintf(st->item_prefix, sizeof(st->item_prefix),
             "%sguard:{sched}:item:", prefix);
    st->scheduled = hr_metrics_gauge(m, "herald_guard_scheduled",
                                     "Items in the retry schedule", NULL);
    st->redelivered = hr_metrics_counter(
        m, "herald_guard_redelivered_total",
        "Records redelivered to herald.redeliver.<target_worker>",
        "target_worker,destination");
    st->dead = hr_metrics_counter(m, "herald_guard_dead_lettered_total",
                                  "Records the guard dead-lettered", "reason");
    st->throttled = hr_metrics_counter(
        m, "herald_guard_budget_throttled_total",
        "Due items kept waiting by the retry budget", "destination");
    *state = st;
    return 0;
}

void guard_fini(struct hr_worker *w, void *state)
{
    struct guard_state *st = state;

    (void)w;
    hr_circuit_free(st->circuit);
    free(st);
}

/* --- the handler: retry records into the schedule ---------------------- */

/* One retry record of a batch, as the handler sees it. */
struct sched_item {
    enum guard_verdict verdict;
    bool scheduled; /* goes into the script */
    char id[GUARD_ID_MAX];
    char key[1024];
    char due[24];
    char ttl[24];
    char topic[512];
    char dest[GUARD_NAME_MAX];
    char *blob;
    size_t blob_len;
};

static int64_t header_i64(struct hr_item *item, const char *name, int64_t def)
{
    size_t len = 0;
    const char *v = hr_item_header(item, name, &len);
    int64_t out;

    if (!v || guard_parse_i64(v, len, &out))
        return def;
    return out;
}

/* Copy header @name of @item into @buf as a C string; false when absent,
 * empty or too long. */
static bool
header_copy(struct hr_item *item, const char *name, char *buf, size_t size)
{
    size_t len = 0;
    const char *v = hr_item_header(item, name, &len);

    if (!v || !len || len >= size)
        return false;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return true;
}

static rd_kafka_headers_t *item_headers(struct hr_item *item)
{
    rd_kafka_headers_t *hdrs = NULL;

    if (!item->priv || rd_kafka_message_headers(item->priv, &hdrs))
        return NULL;
    return hdrs;
}

/* Decide what happens to @item; fills @si. Returns -1 on out-of-memory. */
static int sched_prepare(struct guard_state *st,
                         struct hr_item *item,
                         struct sched_item *si,
                         int64_t now_ms)
{
    char worker[GUARD_NAME_MAX], otopic[256];
    int64_t attempt, first, retry_after, due, ttl;
    int64_t opart = item->partition, ooff = item->offset;
    const char *topic = item->topic;

    if (!header_copy(item, "herald-worker", worker, sizeof(worker))) {
        hr_item_dead(item, HR_ERR_POISON,
                     "retry record without a herald-worker header");
        return 0;
    }
    attempt = header_i64(item, "herald-attempt", 1);
    if (attempt < 1)
        attempt = 1;
    first = header_i64(item, "herald-first-failure-ms",
                       item->timestamp_ms > 0 ? item->timestamp_ms : now_ms);
    retry_after = header_i64(item, "herald-retry-after-ms", -1);
    if (!header_copy(item, "herald-destination", si->dest, sizeof(si->dest)))
        snprintf(si->dest, sizeof(si->dest), "%s", worker);
    /* The origin names the event across attempts; without it the retry
     * record's own position does (stable when it is redelivered). */
    if (header_copy(item, "herald-origin-topic", otopic, sizeof(otopic))) {
        int64_t p = header_i64(item, "herald-origin-partition", INT64_MIN);
        int64_t o = header_i64(item, "herald-origin-offset", INT64_MIN);

        if (p != INT64_MIN && o != INT64_MIN) {
            topic = otopic;
            opart = p;
            ooff = o;
        }
    }
    si->verdict = guard_decide(&st->set, attempt, first, now_ms);
    if (si->verdict != GUARD_SCHEDULE)
        return 0;
    if (guard_item_id(si->id, sizeof(si->id), topic, strlen(topic), opart, ooff,
                      attempt) < 0) {
        hr_item_dead(item, HR_ERR_POISON, "origin topic too long");
        return 0;
    }
    due =
        guard_due_ms(&st->set, attempt, retry_after, now_ms, hr_retry_random());
    /* Long enough to outlive any wait in the schedule, bounded anyway. */
    ttl = (due - now_ms) / 1000 + st->set.max_age_ms / 1000 + 86400;
    snprintf(si->due, sizeof(si->due), "%" PRId64, due);
    snprintf(si->ttl, sizeof(si->ttl), "%" PRId64, ttl);
    snprintf(si->topic, sizeof(si->topic), "%s%s", st->set.redeliver_prefix,
             worker);
    snprintf(si->key, sizeof(si->key), "%s%s", st->item_prefix, si->id);
    si->blob = guard_hdrs_encode(item_headers(item), &si->blob_len);
    if (!si->blob)
        return -1;
    si->scheduled = true;
    return 0;
}

/* Run guard_schedule.lua over the scheduled items. Returns 0, 1 when the
 * schedule is full, -1 with @errstr on a Redis failure. */
static int sched_write(struct guard_state *st,
                       struct hr_worker *w,
                       struct hr_batch *batch,
                       struct sched_item *si,
                       size_t nsched,
                       char *errstr,
                       size_t errstr_size)
{
    size_t argc = 1 + nsched + 1 + nsched * GUARD_ARGS_PER;
    const char **argv = calloc(argc, sizeof(*argv));
    size_t *argvlen = calloc(argc, sizeof(*argvlen));
    char max[24];
    redisReply *reply = NULL;
    size_t k = 0, a;
    int rc = -1;

    if (!argv || !argvlen) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out_free;
    }
    snprintf(max, sizeof(max), "%" PRId64, st->set.max_scheduled);
    argv[k] = st->due_key;
    argvlen[k++] = strlen(st->due_key);
    for (size_t i = 0; i < batch->n; i++) {
        if (!si[i].scheduled)
            continue;
        argv[k] = si[i].key;
        argvlen[k++] = strlen(si[i].key);
    }
    argv[k] = max;
    argvlen[k++] = strlen(max);
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];

        if (!si[i].scheduled)
            continue;
        a = k;
        argv[a + 0] = si[i].id;
        argv[a + 1] = si[i].due;
        argv[a + 2] = si[i].ttl;
        argv[a + 3] = si[i].topic;
        argv[a + 4] = item->key ? "1" : "0";
        argv[a + 5] = item->key ? item->key : "";
        argvlen[a + 5] = item->key ? item->key_len : 0;
        argv[a + 6] = item->value ? item->value : "";
        argvlen[a + 6] = item->value ? item->value_len : 0;
        argv[a + 7] = si[i].blob;
        argvlen[a + 7] = si[i].blob_len;
        argv[a + 8] = si[i].dest;
        for (int j = 0; j < GUARD_ARGS_PER; j++) {
            if (j < 5 || j == 8)
                argvlen[a + (size_t)j] = strlen(argv[a + (size_t)j]);
        }
        k += GUARD_ARGS_PER;
    }
    HR_ASSERT(k == argc);
    reply = hr_redis_eval(hr_worker_redis(w), &st->sched, (int)(1 + nsched),
                          (int)argc, argv, argvlen, errstr, errstr_size);
    if (!reply)
        goto out_free;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        snprintf(errstr, errstr_size, "guard_schedule: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        goto out_free;
    }
    hr_metric_set(st->scheduled, NULL, (double)reply->element[1]->integer);
    rc = reply->element[2]->integer ? 1 : 0;
out_free:
    if (reply)
        freeReplyObject(reply);
    free(argv);
    free(argvlen);
    return rc;
}

/* Queue the dead letter of a record: original key, value and headers plus
 * herald-guard-reason. @hdrs is taken over on success. */
static int send_dead(struct hr_worker *w,
                     struct guard_state *st,
                     rd_kafka_headers_t *hdrs,
                     const void *key,
                     size_t key_len,
                     const void *value,
                     size_t value_len,
                     const char *reason,
                     char *errstr,
                     size_t errstr_size)
{
    rd_kafka_header_remove(hdrs, "herald-guard-reason");
    rd_kafka_header_add(hdrs, "herald-guard-reason", -1, reason, -1);
    return hr_worker_produce_headers(w, st->set.dlq_topic, key, key_len, value,
                                     value_len, hdrs, errstr, errstr_size);
}

static void guard_drain(struct hr_worker *w, struct guard_state *st);

enum hr_batch_result
guard_handle(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct guard_state *st = state;
    struct sched_item *si = calloc(batch->n ? batch->n : 1, sizeof(*si));
    enum hr_batch_result res = HR_BATCH_PAUSE;
    int64_t now_ms = hr_time_now_ms();
    size_t nsched = 0;
    char errstr[256];
    int full = 0;

    if (!si) {
        hr_worker_set_pause_reason(w, "out of memory");
        return HR_BATCH_PAUSE;
    }
    for (size_t i = 0; i < batch->n; i++) {
        if (batch->items[i].outcome != HR_OUT_PENDING)
            continue;
        if (sched_prepare(st, &batch->items[i], &si[i], now_ms)) {
            hr_worker_set_pause_reason(w, "out of memory");
            goto out_free;
        }
        nsched += si[i].scheduled;
    }
    if (nsched) {
        full = sched_write(st, w, batch, si, nsched, errstr, sizeof(errstr));
        if (full < 0) {
            hr_worker_set_pause_reason(w, "redis unavailable: %s", errstr);
            goto out_free;
        }
        if (full) {
            /* Nothing of this batch is queued yet, so the tick's flush
             * covers only its own records. The runtime does not tick while
             * a batch pauses: drain here, or a full schedule never empties. */
            hr_worker_set_pause_reason(
                w, "retry schedule full (%" PRId64 " items)",
                st->set.max_scheduled);
            guard_drain(w, st);
            goto out_free;
        }
    }
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        const char *reason = guard_verdict_reason(si[i].verdict);
        rd_kafka_headers_t *in, *hdrs;

        if (item->outcome != HR_OUT_PENDING)
            continue;
        if (si[i].scheduled || !reason) {
            hr_item_ok(item);
            continue;
        }
        in = item_headers(item);
        hdrs = in ? rd_kafka_headers_copy(in) : rd_kafka_headers_new(4);
        if (send_dead(w, st, hdrs, item->key, item->key_len, item->value,
                      item->value_len, reason, errstr, sizeof(errstr))) {
            rd_kafka_headers_destroy(hdrs);
            hr_worker_set_pause_reason(w, "cannot queue dead letter: %s",
                                       errstr);
            goto out_free;
        }
        hdrs = NULL; /* owned by the producer now */
        hr_log_warn("retry record dead-lettered",
                    HR_LOG_STR("topic", item->topic),
                    HR_LOG_I32("partition", item->partition),
                    HR_LOG_I64("offset", item->offset),
                    HR_LOG_STR("destination", si[i].dest),
                    HR_LOG_STR("reason", reason));
        hr_metric_add(st->dead, (const char *[]){reason}, 1);
        hr_item_ok(item);
    }
    res = HR_BATCH_DONE;
out_free:
    for (size_t i = 0; i < batch->n; i++)
        free(si[i].blob);
    free(si);
    return res;
}

/* --- the tick: due items out of the schedule --------------------------- */

/* One due item of a tick; strings are borrowed from the take reply. */
struct due_item {
    const redisReply *id, *topic, *haskey, *key, *value, *blob, *dest;
    rd_kafka_headers_t *hdrs; /* decoded; NULL once the producer owns it */
    enum guard_verdict verdict;
    size_t dest_idx;
    bool sent;
    bool throttled;
    char worker[GUARD_NAME_MAX];
};

static void
warn_limited(struct guard_state *st, const char *msg, const char *err)
{
    int64_t now = hr_time_mono_ms();

    if (now - st->last_warn_ms < GUARD_WARN_EVERY)
        return;
    st->last_warn_ms = now;
    hr_log_write(HR_LOG_WARN, msg, HR_LOG_STR("err", err), HR_LOG_END);
}

/* Ask the budget for every destination's scheduled items; on success each
 * item says whether it may go now. */
static int due_budget(struct guard_state *st,
                      struct hr_worker *w,
                      struct due_item *it,
                      size_t n,
                      int64_t now_ms,
                      char *errstr,
                      size_t errstr_size)
{
    const char **dests = calloc(n ? n : 1, sizeof(*dests));
    int *want = calloc(n ? n : 1, sizeof(*want));
    int *granted = calloc(n ? n : 1, sizeof(*granted));
    size_t nd = 0;
    int rc = -1;

    if (!dests || !want || !granted) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out_free;
    }
    for (size_t i = 0; i < n; i++) {
        size_t d;

        if (it[i].verdict != GUARD_SCHEDULE)
            continue;
        for (d = 0; d < nd; d++) {
            if (!strcmp(dests[d], it[i].dest->str))
                break;
        }
        if (d == nd)
            dests[nd++] = it[i].dest->str;
        want[d]++;
        it[i].dest_idx = d;
    }
    if (nd &&
        hr_circuit_budget_take(st->circuit, hr_worker_redis(w), dests, want, nd,
                               now_ms, granted, errstr, errstr_size))
        goto out_free;
    for (size_t i = 0; i < n; i++) {
        if (it[i].verdict != GUARD_SCHEDULE)
            continue;
        if (granted[it[i].dest_idx] > 0)
            granted[it[i].dest_idx]--;
        else
            it[i].throttled = true;
    }
    rc = 0;
out_free:
    free(dests);
    free(want);
    free(granted);
    return rc;
}

static bool spent_no_attempt(rd_kafka_headers_t *hdrs)
{
    const void *val;
    size_t len;

    return !rd_kafka_header_get_last(hdrs, "herald-error", &val, &len) &&
           len == strlen(HR_CIRCUIT_OPEN_REASON) &&
           !memcmp(val, HR_CIRCUIT_OPEN_REASON, len);
}

/* Queue every due item's record: the redelivery (attempt + 1) or the dead
 * letter. Stops at the first refusal. */
static void due_send(struct guard_state *st,
                     struct hr_worker *w,
                     struct due_item *it,
                     size_t n)
{
    char errstr[256];

    for (size_t i = 0; i < n; i++) {
        const char *reason = guard_verdict_reason(it[i].verdict);
        const void *key = it[i].haskey->str[0] == '1' ? it[i].key->str : NULL;
        size_t key_len = key ? it[i].key->len : 0;
        int rc;

        if (it[i].throttled)
            continue;
        if (reason) {
            rc = send_dead(w, st, it[i].hdrs, key, key_len, it[i].value->str,
                           it[i].value->len, reason, errstr, sizeof(errstr));
        } else {
            /* A hand-off because the destination's circuit was open spent
             * no attempt (hr_circuit.h): it comes back with the same one. */
            if (!spent_no_attempt(it[i].hdrs))
                guard_hdrs_set_i64(
                    it[i].hdrs, "herald-attempt",
                    guard_hdrs_get_i64(it[i].hdrs, "herald-attempt", 1) + 1);
            rc = hr_worker_produce_headers(w, it[i].topic->str, key, key_len,
                                           it[i].value->str, it[i].value->len,
                                           it[i].hdrs, errstr, sizeof(errstr));
        }
        if (rc) {
            warn_limited(st, "cannot queue redelivery", errstr);
            return;
        }
        it[i].hdrs = NULL; /* owned by the producer now */
        it[i].sent = true;
    }
}

/* Remove the acknowledged items and push the throttled ones back. */
static void due_settle(struct guard_state *st,
                       struct hr_worker *w,
                       struct due_item *it,
                       size_t n,
                       int64_t now_ms)
{
    const char **argv = calloc(3 + 3 * n, sizeof(*argv));
    size_t *argvlen = calloc(3 + 3 * n, sizeof(*argvlen));
    char(*scores)[24] = calloc(n ? n : 1, sizeof(*scores));
    char nrem[24], errstr[256];
    size_t k = 3, removed = 0, bumped = 0;
    redisReply *reply;

    if (!argv || !argvlen || !scores)
        goto out_free;
    argv[0] = st->due_key;
    argv[1] = st->item_prefix;
    for (size_t i = 0; i < n; i++) {
        if (!it[i].sent)
            continue;
        argv[k] = it[i].id->str;
        argvlen[k++] = it[i].id->len;
        removed++;
    }
    for (size_t i = 0; i < n; i++) {
        if (!it[i].throttled)
            continue;
        /* Keep their order: later items ask later. */
        snprintf(scores[bumped], sizeof(scores[bumped]), "%" PRId64,
                 now_ms + GUARD_BUMP_MS + (int64_t)bumped);
        argv[k] = it[i].id->str;
        argvlen[k++] = it[i].id->len;
        argv[k] = scores[bumped];
        argvlen[k++] = strlen(scores[bumped]);
        bumped++;
    }
    if (!removed && !bumped)
        goto out_free;
    snprintf(nrem, sizeof(nrem), "%zu", removed);
    argv[2] = nrem;
    argvlen[0] = strlen(argv[0]);
    argvlen[1] = strlen(argv[1]);
    argvlen[2] = strlen(argv[2]);
    reply = hr_redis_eval(hr_worker_redis(w), &st->done, 1, (int)k, argv,
                          argvlen, errstr, sizeof(errstr));
    if (!reply) {
        /* Redelivered again next time: at least once. */
        warn_limited(st, "cannot settle redeliveries", errstr);
        goto out_free;
    }
    if (reply->type == REDIS_REPLY_INTEGER)
        hr_metric_set(st->scheduled, NULL, (double)reply->integer);
    else
        warn_limited(st, "cannot settle redeliveries",
                     reply->type == REDIS_REPLY_ERROR ? reply->str
                                                      : "bad reply");
    freeReplyObject(reply);
out_free:
    free(argv);
    free(argvlen);
    free(scores);
}

/* Count what the broker acknowledged. */
static void due_account(struct guard_state *st,
                        struct due_item *it,
                        size_t n,
                        int64_t started_ms)
{
    size_t sent = 0, throttled = 0;

    for (size_t i = 0; i < n; i++) {
        const char *reason = guard_verdict_reason(it[i].verdict);

        if (it[i].throttled) {
            throttled++;
            hr_metric_add(st->throttled, (const char *[]){it[i].dest->str}, 1);
            continue;
        }
        if (!it[i].sent)
            continue;
        sent++;
        if (reason)
            hr_metric_add(st->dead, (const char *[]){reason}, 1);
        else
            hr_metric_add(st->redelivered,
                          (const char *[]){it[i].worker, it[i].dest->str}, 1);
    }
    if (sent || throttled)
        hr_log_debug("retry tick", HR_LOG_I64("sent", (int64_t)sent),
                     HR_LOG_I64("throttled", (int64_t)throttled),
                     HR_LOG_I64("elapsed_ms", hr_time_mono_ms() - started_ms));
}

/* Parse the take reply into @it; returns the number of items. */
static size_t due_parse(struct guard_state *st,
                        const redisReply *list,
                        struct due_item *it,
                        int64_t now_ms)
{
    size_t n = list->elements / 7;

    for (size_t i = 0; i < n; i++) {
        const redisReply *const *e =
            (const redisReply *const *)&list->element[i * 7];
        struct due_item *d = &it[i];
        int64_t attempt, first;

        d->id = e[0];
        d->topic = e[1];
        d->haskey = e[2];
        d->key = e[3];
        d->value = e[4];
        d->blob = e[5];
        d->dest = e[6];
        d->hdrs = guard_hdrs_decode(d->blob->str, d->blob->len);
        if (!d->hdrs) {
            hr_log_error("corrupt schedule entry; dead-lettering it",
                         HR_LOG_STR("id", d->id->str));
            d->hdrs = rd_kafka_headers_new(2);
            d->verdict = GUARD_DLQ_MAX_AGE;
        } else {
            attempt = guard_hdrs_get_i64(d->hdrs, "herald-attempt", 1);
            first =
                guard_hdrs_get_i64(d->hdrs, "herald-first-failure-ms", now_ms);
            d->verdict = guard_decide(&st->set, attempt, first, now_ms);
        }
        {
            const void *v;
            size_t len;

            if (!rd_kafka_header_get_last(d->hdrs, "herald-worker", &v, &len) &&
                v && len < sizeof(d->worker)) {
                memcpy(d->worker, v, len);
                d->worker[len] = '\0';
            } else {
                snprintf(d->worker, sizeof(d->worker), "unknown");
            }
        }
    }
    return n;
}

static bool reply_is_take(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[2]->type != REDIS_REPLY_ARRAY || r->element[2]->elements % 7)
        return false;
    for (size_t i = 0; i < r->element[2]->elements; i++) {
        if (r->element[2]->element[i]->type != REDIS_REPLY_STRING)
            return false;
    }
    return true;
}

/*
 * Take due items, ask the budget, queue their records, wait for the broker,
 * and only then remove them: a crash in between redelivers them again
 * (at least once, SPEC section 7).
 */
static void guard_drain(struct hr_worker *w, struct guard_state *st)
{
    int64_t now_ms = hr_time_now_ms(), started_ms = hr_time_mono_ms();
    char now[24], limit[24], errstr[256];
    const char *argv[4];
    redisReply *reply;
    struct due_item *it = NULL;
    size_t n = 0, sent = 0;
    int bad;

    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(limit, sizeof(limit), "%" PRId64, st->set.tick_max);
    argv[0] = st->due_key;
    argv[1] = now;
    argv[2] = limit;
    argv[3] = st->item_prefix;
    reply = hr_redis_eval(hr_worker_redis(w), &st->take, 1, 4, argv, NULL,
                          errstr, sizeof(errstr));
    if (!reply) {
        warn_limited(st, "cannot read the retry schedule", errstr);
        return;
    }
    if (!reply_is_take(reply)) {
        warn_limited(st, "cannot read the retry schedule",
                     reply->type == REDIS_REPLY_ERROR ? reply->str
                                                      : "bad reply");
        goto out_free;
    }
    hr_metric_set(st->scheduled, NULL, (double)reply->element[0]->integer);
    if (reply->element[1]->type == REDIS_REPLY_INTEGER &&
        reply->element[1]->integer)
        hr_log_warn("expired schedule entries removed",
                    HR_LOG_I64("count", reply->element[1]->integer));
    n = reply->element[2]->elements / 7;
    st->last_full = n >= (size_t)st->set.tick_max;
    if (!n)
        goto out_free;
    it = calloc(n, sizeof(*it));
    if (!it)
        goto out_free;
    n = due_parse(st, reply->element[2], it, now_ms);
    if (due_budget(st, w, it, n, now_ms, errstr, sizeof(errstr))) {
        warn_limited(st, "cannot ask the retry budget", errstr);
        goto out_free;
    }
    due_send(st, w, it, n);
    for (size_t i = 0; i < n; i++)
        sent += it[i].sent;
    if (sent) {
        bad = hr_worker_flush(w, GUARD_FLUSH_MS, errstr, sizeof(errstr));
        if (bad) {
            /* Keep them scheduled: they go again on a later tick. */
            warn_limited(st, "redeliveries not acknowledged", errstr);
            for (size_t i = 0; i < n; i++)
                it[i].sent = false;
        }
    }
    due_settle(st, w, it, n, now_ms);
    due_account(st, it, n, started_ms);
out_free:
    for (size_t i = 0; it && i < n; i++) {
        if (it[i].hdrs)
            rd_kafka_headers_destroy(it[i].hdrs);
    }
    free(it);
    freeReplyObject(reply);
}

void guard_tick(struct hr_worker *w, void *state)
{
    struct guard_state *st = state;
    int64_t mono = hr_time_mono_ms();

    if (!st->last_full && mono - st->last_tick_ms < GUARD_TICK_MS)
        return;
    st->last_tick_ms = mono;
    guard_drain(w, st);
}
