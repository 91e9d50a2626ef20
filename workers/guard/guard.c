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
#include "hr_msg.h"
#include "hr_park.h"
#include "hr_producer.h"
#include "hr_redis.h"
#include "hr_time.h"

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
#define GUARD_TICK_MS    25   /* least time between two ticks */
#define GUARD_BUMP_MS    1000 /* a throttled item asks again this much later */
#define GUARD_FLUSH_MS   10000
#define GUARD_LEASE_MS   (GUARD_FLUSH_MS + 5000) /* a taken item's lease */
#define GUARD_SLICE_MS   200 /* a paused handler drains this long at most */
#define GUARD_RESCAN     20  /* waiting items looked at again per tick */
#define GUARD_PEEK_MS    1000
#define GUARD_PEEK_MAX   256 /* destinations in the circuit gauges */
#define GUARD_DESTS_MAX  16  /* destinations of one record that park it */
#define GUARD_WARN_MS    10000
#define GUARD_TAKE_BYTES (4 * 1024 * 1024) /* records of one take, about */
#define NUM_SIZE         24
#define GUARD_PENDING    2 /* batches submitted and not handled (hr_worker.h) */
#define GUARD_FLY        2 /* slices produced and not yet acknowledged */

/* The schedule's keys, in the order hr_park_lib.lua and the scripts take. */
enum { K_DUE, K_WAIT, K_WAITEV, K_QOF, K_ITEMS, K_N };

/* A destination the circuit gauges know, and its auth failures so far. */
struct known_dest {
    char name[GUARD_NAME_MAX];
    int64_t auth_failures;
};

/* A growing byte buffer; offsets into it stay valid when it grows.
 * gbuf_put() with @p NULL reserves @len bytes. */
struct gbuf {
    char *p;
    size_t len, cap;
};

/* One retry record of a batch, as the handler sees it: strings are
 * offsets into the batch's buffer. */
struct sched_item {
    enum guard_verdict verdict;
    const char *poison; /* dead-letter it at once, for this reason */
    bool scheduled;     /* goes into the script */
    int nq;             /* park queues */
    char due[NUM_SIZE];
    size_t id, blob, blob_len, eid, q, dest;
};

/* A batch's schedule request: prepared (and sent) by guard_submit(), or
 * by guard_handle() when nothing was submitted for it. */
struct sched_batch {
    const struct hr_batch *batch; /* which batch: the pointer and */
    size_t n;                     /* its first and last positions */
    int32_t partition0;
    int64_t offset0, offset1;
    struct sched_item *si;
    struct gbuf b;
    int64_t now_ms;
    bool write;     /* something for the script */
    bool sent;      /* its request waits for its reply on the connection */
    uint64_t epoch; /* of the connection it was sent on */
    /* its reply, when it was read early (sched_collect) */
    enum { ANSWER_NONE, ANSWER_ADMITTED, ANSWER_FULL } answer;
    const char **argv;
    size_t *argvlen;
    size_t argc;
    char (*nums)[NUM_SIZE]; /* [3], on the heap: argv points into it,
                               and the struct is copied around */
    char (*nq)[4];
};

/* One due item of a slice; @v is borrowed from the take reply (freed once
 * the slice is produced), the rest lives in the slice's buffer. */
struct due_item {
    size_t id, id_len;   /* its schedule id */
    struct guard_item v; /* headers still encoded: decoded to produce */
    enum guard_verdict verdict;
    size_t dest;     /* its destination, a C string in the slice's buffer */
    size_t dest_idx; /* in the budget request */
    size_t eid, q;   /* park refs, for a dead letter that leaves its queues */
    int nq;
    bool free_pass; /* parked behind: not a retry, the budget is not asked */
    bool sent;
    bool throttled;
    char worker[64];
};

/* The due items one take returned. */
struct slice {
    redisReply *reply;
    struct due_item *it;
    size_t n;
    struct gbuf b;
    bool full; /* it took tick_max items or was cut at GUARD_TAKE_BYTES:
                  more may be due */
    int64_t now_ms;
    int64_t taken_ms; /* monotonic */
    uint64_t epoch;   /* its records, once produced */
};

struct guard_state {
    struct guard_settings set;
    struct hr_circuit *circuit;
    struct hr_script sched, take, done;
    char *srcs[3]; /* the scripts after hr_park_lib.lua */
    char keys[K_N][512];
    size_t key_lens[K_N];
    const char *prefix;
    struct hr_metric *scheduled;
    struct hr_metric *parked;
    struct hr_metric *redelivered;
    struct hr_metric *dead;
    struct hr_metric *throttled;
    struct hr_metric *circuit_state;
    struct hr_metric *auth_failures;
    struct known_dest *known;
    size_t nknown;
    struct hr_redis *tick_redis; /* the tick's own connection: submitted
                                    requests wait on the worker's */
    struct sched_batch *pend;    /* [GUARD_PENDING] submitted, in order */
    size_t npend;
    int64_t last_tick_ms; /* monotonic */
    int64_t last_warn_ms; /* monotonic */
    int64_t last_peek_ms; /* monotonic */
    bool last_full;       /* the previous tick stopped with items left */
    /* The tick's pipeline: a take sent ahead, a slice taken and not yet
     * produced, slices produced and waiting for the broker, oldest first. */
    bool take_sent;
    int64_t take_now_ms;
    int64_t take_mono_ms;
    struct slice taken; /* holds a take's reply until it is produced */
    struct slice fly[GUARD_FLY];
    size_t nfly;
};


static size_t gbuf_put(struct gbuf *b, const void *p, size_t len)
{
    size_t off = b->len;

    b->p = hr_grow(b->p, &b->cap, b->len + len + 1, 1, 4096);
    if (p && len)
        memcpy(b->p + b->len, p, len);
    b->len += len;
    b->p[b->len] = '\0';
    return off;
}

/* Like gbuf_put(), then a NUL kept in the buffer (a C string at the
 * returned offset). */
static size_t gbuf_str(struct gbuf *b, const char *p, size_t len)
{
    size_t off = gbuf_put(b, p, len);

    gbuf_put(b, "", 1);
    return off;
}

static void gbuf_release(struct gbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static void
warn_limited(struct guard_state *st, const char *msg, const char *err)
{
    int64_t now = hr_time_mono_ms();

    if (now - st->last_warn_ms < GUARD_WARN_MS)
        return;
    st->last_warn_ms = now;
    hr_log_write(HR_LOG_WARN, msg, HR_LOG_STR("err", err), HR_LOG_END);
}

static int script_init(struct guard_state *st,
                       int i,
                       struct hr_script *s,
                       const char *name,
                       const char *body,
                       unsigned long body_len)
{
    st->srcs[i] = hr_park_script_init(s, name, body, body_len);
    return st->srcs[i] ? 0 : -1;
}

static void sched_batch_release(struct sched_batch *sb);

int guard_init(struct hr_worker *w, void **state)
{
    static const char *const suffixes[K_N] = {
        HR_PARK_KEY_DUE, HR_PARK_KEY_WAIT, HR_PARK_KEY_WAITEV, HR_PARK_KEY_QOF,
        "guard:{sched}:items"};
    struct guard_state *st = calloc(1, sizeof(*st));
    const struct hr_conf *cfg = hr_worker_conf(w);
    struct hr_metrics *m = hr_worker_metrics(w);
    struct hr_circuit_conf cc;
    char errstr[256];

    if (!st)
        return -1;
    guard_settings_load(&st->set, cfg);
    hr_circuit_conf_load(&cc, cfg);
    st->circuit = hr_circuit_new(&cc);
    st->pend = calloc(GUARD_PENDING, sizeof(*st->pend));
    st->tick_redis = hr_redis_new(hr_conf_str(cfg, "HERALD_REDIS_URL"),
                                  hr_conf_str(cfg, "HERALD_REDIS_PREFIX"),
                                  errstr, sizeof(errstr));
    if (!st->tick_redis)
        hr_log_error("bad redis url", HR_LOG_STR("err", errstr));
    if (!st->circuit || !st->pend || !st->tick_redis ||
        script_init(st, 0, &st->sched, "guard_schedule", hr_lua_guard_schedule,
                    hr_lua_guard_schedule_len) ||
        script_init(st, 1, &st->take, "guard_take", hr_lua_guard_take,
                    hr_lua_guard_take_len) ||
        script_init(st, 2, &st->done, "guard_done", hr_lua_guard_done,
                    hr_lua_guard_done_len)) {
        guard_fini(w, st);
        return -1;
    }
    st->prefix = hr_redis_prefix(hr_worker_redis(w));
    /* One hash tag for the whole schedule: every script touches one slot. */
    for (int k = 0; k < K_N; k++) {
        snprintf(st->keys[k], sizeof(st->keys[k]), "%s%s", st->prefix,
                 suffixes[k]);
        st->key_lens[k] = strlen(st->keys[k]);
    }
    st->scheduled =
        hr_metrics_gauge(m, "herald_guard_scheduled",
                         "Items in the retry schedule (due or parked)", NULL);
    st->parked = hr_metrics_gauge(
        m, "herald_guard_parked",
        "Items waiting behind an earlier event of their key", NULL);
    st->redelivered = hr_metrics_counter(
        m, "herald_guard_redelivered_total",
        "Records redelivered to herald.redeliver.<target_worker>",
        "target_worker,destination");
    st->dead = hr_metrics_counter(m, "herald_guard_dead_lettered_total",
                                  "Records the guard dead-lettered", "reason");
    st->throttled = hr_metrics_counter(
        m, "herald_guard_budget_throttled_total",
        "Due items kept waiting by the retry budget", "destination");
    st->circuit_state = hr_metrics_gauge(
        m, "herald_guard_circuit_state",
        "Shared circuit of a destination, fleet-wide: 0 closed, "
        "1 half-open, 2 open (or auth-broken, or throttled)",
        "destination");
    st->auth_failures = hr_metrics_counter(
        m, "herald_guard_auth_failures_total",
        "Calls refused with 401/403, fleet-wide, by destination: "
        "credentials need fixing",
        "destination");
    st->known = calloc(GUARD_PEEK_MAX, sizeof(*st->known));
    if (!st->known) {
        guard_fini(w, st);
        return -1;
    }
    *state = st;
    return 0;
}

/* --- parking ------------------------------------------------------------ */

/*
 * The event id and park queue keys of a record handled by @worker with
 * key @key (NULL: none) for the destinations @dests ("a,b"), appended to
 * @b: the event id as a C string at *@eid_off, then each queue key as a
 * 4-byte length and its bytes from *@q_off. Returns the number of queues
 * (0 without a key).
 */
static int park_refs(struct gbuf *b,
                     const char *prefix,
                     const char *worker,
                     const char *otopic,
                     size_t otopic_len,
                     int64_t opart,
                     int64_t ooff,
                     const char *dests,
                     size_t dests_len,
                     const void *key,
                     size_t key_len,
                     size_t *eid_off,
                     size_t *q_off)
{
    char eid[GUARD_ID_MAX + GUARD_NAME_MAX] = "", dest[GUARD_NAME_MAX];
    int n, nq = 0;
    size_t start = 0;

    n = key && key_len ? hr_park_event_id_from(eid, sizeof(eid), worker, otopic,
                                               otopic_len, opart, ooff)
                       : -1;
    *eid_off = gbuf_str(b, eid, n < 0 ? 0 : (size_t)n);
    *q_off = b->len;
    if (n < 0)
        return 0;
    *q_off = b->len;
    for (size_t i = 0; i <= dests_len && nq < GUARD_DESTS_MAX; i++) {
        size_t dlen = i - start, qlen;
        unsigned char len4[4];
        char *q;

        if (i < dests_len && dests[i] != ',')
            continue;
        if (dlen && dlen < sizeof(dest)) {
            memcpy(dest, dests + start, dlen);
            dest[dlen] = '\0';
            q = hr_park_queue_key(prefix, dest, key, key_len, &qlen);
            HR_ASSERT(q);
            len4[0] = (unsigned char)(qlen >> 24);
            len4[1] = (unsigned char)(qlen >> 16);
            len4[2] = (unsigned char)(qlen >> 8);
            len4[3] = (unsigned char)qlen;
            gbuf_put(b, len4, 4);
            gbuf_put(b, q, qlen);
            free(q);
            nq++;
        }
        start = i + 1;
    }
    return nq;
}

/* Queue key @j of a park_refs() list at @q_off: its bytes and length. */
static const char *park_queue(const struct gbuf *b, size_t *off, size_t *len)
{
    const unsigned char *u = (const unsigned char *)b->p + *off;
    const char *q = b->p + *off + 4;

    *len = (size_t)u[0] << 24 | (size_t)u[1] << 16 | (size_t)u[2] << 8 | u[3];
    *off += 4 + *len;
    return q;
}

/* The origin of a retry record as hr_worker_failures.c writes it. */
struct origin {
    char worker[GUARD_NAME_MAX];
    const char *topic;
    size_t topic_len;
    int64_t partition, offset;
};

static bool
header_is(const struct hr_msg *msg, const char *name, const char *value)
{
    size_t len;
    const void *v = hr_msg_header(msg, name, &len);

    return v && len == strlen(value) && !memcmp(v, value, len);
}

static bool spent_no_attempt(const rd_kafka_headers_t *hdrs)
{
    const void *v;
    size_t len;

    return hdrs && !rd_kafka_header_get_last(hdrs, "herald-error", &v, &len) &&
           hr_circuit_reason_spent_no_attempt(v, len);
}

/* --- the handler: retry records into the schedule ---------------------- */


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

/* A copy of @item's headers (NULL values kept), for a record of its own. */
static rd_kafka_headers_t *item_headers(const struct hr_item *item)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    const char *name;
    const void *val;
    size_t len;

    for (size_t i = 0; !hr_msg_header_at(item->msg, i, &name, &val, &len); i++)
        rd_kafka_header_add(hdrs, name, -1, val, val ? (ssize_t)len : 0);
    return hdrs;
}

/* Decide what happens to @item; fills @si, appending its strings to @b.
 * Sets no outcome (guard_submit() may call it). */
static void sched_prepare(struct guard_state *st,
                          struct hr_item *item,
                          struct sched_item *si,
                          struct gbuf *b,
                          int64_t now_ms)
{
    char id[GUARD_ID_MAX], topic[GUARD_NAME_MAX + 64], otopic[256];
    char dest[GUARD_NAME_MAX];
    struct origin o = {.topic = item->topic,
                       .topic_len = strlen(item->topic),
                       .partition = item->partition,
                       .offset = item->offset};
    int64_t attempt, first, retry_after, due;
    struct guard_item gi;
    char *hblob;
    size_t hlen;
    int idlen;

    if (!header_copy(item, "herald-worker", o.worker, sizeof(o.worker))) {
        si->poison = "retry record without a herald-worker header";
        return;
    }
    attempt = header_i64(item, "herald-attempt", 1);
    if (attempt < 1)
        attempt = 1;
    first = header_i64(item, "herald-first-failure-ms",
                       item->timestamp_ms > 0 ? item->timestamp_ms : now_ms);
    retry_after = header_i64(item, "herald-retry-after-ms", -1);
    if (!header_copy(item, "herald-destination", dest, sizeof(dest)))
        snprintf(dest, sizeof(dest), "%s", o.worker);
    /* The origin names the event across attempts; without it the retry
     * record's own position does (stable when it is redelivered). */
    if (header_copy(item, "herald-origin-topic", otopic, sizeof(otopic))) {
        int64_t p = header_i64(item, "herald-origin-partition", INT64_MIN);
        int64_t off = header_i64(item, "herald-origin-offset", INT64_MIN);

        if (p != INT64_MIN && off != INT64_MIN) {
            o.topic = otopic;
            o.topic_len = strlen(otopic);
            o.partition = p;
            o.offset = off;
        }
    }
    si->dest = gbuf_str(b, dest, strlen(dest));
    si->nq = park_refs(b, st->prefix, o.worker, o.topic, o.topic_len,
                       o.partition, o.offset, dest, strlen(dest), item->key,
                       item->key_len, &si->eid, &si->q);
    si->verdict = guard_decide(&st->set, attempt, first, now_ms);
    if (si->verdict != GUARD_SCHEDULE)
        return;
    idlen = guard_item_id(id, sizeof(id), o.topic, o.topic_len, o.partition,
                          o.offset, attempt);
    if (idlen < 0) {
        si->poison = "origin topic too long";
        si->nq = 0;
        return;
    }
    /* Parked behind an earlier event: it owes no backoff; it waits for its
     * turn in the schedule (hr_park_lib.lua). */
    if (header_is(item->msg, "herald-error", HR_PARK_REASON))
        due = now_ms;
    else
        due = guard_due_ms(&st->set, attempt, retry_after, now_ms,
                           hr_retry_random());
    snprintf(si->due, sizeof(si->due), "%" PRId64, due);
    snprintf(topic, sizeof(topic), "%s%s", st->set.redeliver_prefix, o.worker);
    si->id = gbuf_str(b, id, (size_t)idlen);
    hblob = guard_hdrs_encode(item->msg, &hlen);
    HR_ASSERT(hblob);
    gi = (struct guard_item){
        .topic = topic,
        .topic_len = strlen(topic),
        .key = item->key,
        .key_len = item->key ? item->key_len : 0,
        .value = item->value ? item->value : "",
        .value_len = item->value ? item->value_len : 0,
        .hdrs = hblob,
        .hdrs_len = hlen,
        .dest = dest,
        .dest_len = strlen(dest),
    };
    si->blob_len = guard_item_size(&gi);
    si->blob = gbuf_put(b, NULL, si->blob_len);
    guard_item_encode(b->p + si->blob, &gi);
    free(hblob);
    si->scheduled = true;
}

/* Append the park queues of a park_refs() list to @argv (pointing into
 * @b); returns the next index. */
static size_t put_queues(const struct gbuf *b,
                         size_t q_off,
                         int nq,
                         const char **argv,
                         size_t *argvlen,
                         size_t k)
{
    size_t off = q_off;

    for (int j = 0; j < nq; j++) {
        argv[k] = park_queue(b, &off, &argvlen[k]);
        k++;
    }
    return k;
}

/* Whether a dead letter on arrival takes its event out of park queues. */
static bool sched_releases(const struct sched_item *si)
{
    return !si->scheduled && !si->poison && si->nq &&
           si->verdict != GUARD_SCHEDULE;
}

static void sched_batch_release(struct sched_batch *sb)
{
    free(sb->si);
    gbuf_release(&sb->b);
    free(sb->argv);
    free(sb->argvlen);
    free(sb->nq);
    free(sb->nums);
    memset(sb, 0, sizeof(*sb));
}

static bool sched_batch_is(const struct sched_batch *sb,
                           const struct hr_batch *batch)
{
    return sb->batch == batch && sb->n == batch->n && batch->n &&
           sb->partition0 == batch->items[0].partition &&
           sb->offset0 == batch->items[0].offset &&
           sb->offset1 == batch->items[batch->n - 1].offset;
}

/*
 * Prepare @batch's request into @sb: every pending record's decision and
 * the arguments of guard_schedule.lua (the events dead-lettered on arrival
 * first, then the scheduled items). Returns 0 or -1 (out of memory).
 */
static int sched_batch_prepare(struct guard_state *st,
                               struct hr_batch *batch,
                               struct sched_batch *sb)
{
    size_t argc = K_N + 3, nrel = 0, k = 0;

    memset(sb, 0, sizeof(*sb));
    sb->batch = batch;
    sb->n = batch->n;
    if (batch->n) {
        sb->partition0 = batch->items[0].partition;
        sb->offset0 = batch->items[0].offset;
        sb->offset1 = batch->items[batch->n - 1].offset;
    }
    sb->now_ms = hr_time_now_ms();
    sb->si = calloc(batch->n ? batch->n : 1, sizeof(*sb->si));
    sb->nq = calloc(batch->n ? batch->n : 1, sizeof(*sb->nq));
    sb->nums = calloc(3, sizeof(*sb->nums));
    if (!sb->si || !sb->nq || !sb->nums)
        return -1;
    for (size_t i = 0; i < batch->n; i++) {
        struct sched_item *si = &sb->si[i];

        if (batch->items[i].outcome != HR_OUT_PENDING)
            continue;
        sched_prepare(st, &batch->items[i], si, &sb->b, sb->now_ms);
        if (si->scheduled)
            argc += 5 + (size_t)si->nq;
        else if (sched_releases(si))
            argc += 2 + (size_t)si->nq;
        sb->write |= si->scheduled || sched_releases(si);
    }
    if (!sb->write)
        return 0;
    sb->argv = calloc(argc, sizeof(*sb->argv));
    sb->argvlen = calloc(argc, sizeof(*sb->argvlen));
    if (!sb->argv || !sb->argvlen)
        return -1;
    for (int i = 0; i < K_N; i++) {
        sb->argv[k] = st->keys[i];
        sb->argvlen[k++] = st->key_lens[i];
    }
    snprintf(sb->nums[0], NUM_SIZE, "%" PRId64, st->set.max_scheduled);
    snprintf(sb->nums[1], NUM_SIZE, "%" PRId64, sb->now_ms);
    sb->argv[k++] = sb->nums[0];
    sb->argv[k++] = sb->nums[1];
    sb->argv[k++] = sb->nums[2];
    for (size_t i = 0; i < batch->n; i++) {
        const struct sched_item *si = &sb->si[i];

        if (!sched_releases(si))
            continue;
        snprintf(sb->nq[i], sizeof(sb->nq[i]), "%d", si->nq);
        sb->argv[k] = sb->b.p + si->eid;
        sb->argv[k + 1] = sb->nq[i];
        k = put_queues(&sb->b, si->q, si->nq, sb->argv, sb->argvlen, k + 2);
        nrel++;
    }
    snprintf(sb->nums[2], NUM_SIZE, "%zu", nrel);
    for (size_t i = 0; i < batch->n; i++) {
        const struct sched_item *si = &sb->si[i];

        if (!si->scheduled)
            continue;
        snprintf(sb->nq[i], sizeof(sb->nq[i]), "%d", si->nq);
        sb->argv[k] = sb->b.p + si->id;
        sb->argv[k + 1] = si->due;
        sb->argv[k + 2] = sb->b.p + si->blob;
        sb->argvlen[k + 2] = si->blob_len;
        sb->argv[k + 3] = sb->b.p + si->eid;
        sb->argv[k + 4] = sb->nq[i];
        k = put_queues(&sb->b, si->q, si->nq, sb->argv, sb->argvlen, k + 5);
    }
    HR_ASSERT(k == argc);
    for (size_t a = 0; a < argc; a++) {
        if (!sb->argvlen[a])
            sb->argvlen[a] = strlen(sb->argv[a]);
    }
    sb->argc = argc;
    return 0;
}

/* The reply of guard_schedule.lua: 0, 1 when the schedule is full, -1
 * with @errstr. Takes @reply (NULL: the call failed, @errstr says why). */
static int sched_reply(struct guard_state *st,
                       redisReply *reply,
                       char *errstr,
                       size_t errstr_size)
{
    int rc = -1;

    if (!reply)
        return -1;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[2]->type != REDIS_REPLY_INTEGER) {
        snprintf(errstr, errstr_size, "guard_schedule: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
    } else {
        hr_metric_set(st->scheduled, NULL, (double)reply->element[1]->integer);
        rc = reply->element[2]->integer ? 1 : 0;
    }
    freeReplyObject(reply);
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

/*
 * Read the replies of the first @upto submitted requests now, before the
 * connection carries another call, and keep each answer with its request
 * (a redo after a pause is handled before them). Forgetting them made
 * their batches run the script again when handled, scheduling anew the
 * items redelivered and removed meanwhile: duplicates.
 */
static void
sched_collect(struct guard_state *st, struct hr_worker *w, size_t upto)
{
    struct hr_redis *redis = hr_worker_redis(w);
    char errstr[256];

    for (size_t i = 0; i < upto; i++) {
        struct sched_batch *sb = &st->pend[i];

        if (sb->sent && sb->epoch == hr_redis_epoch(redis)) {
            int full = sched_reply(
                st, hr_redis_reply(redis, &st->sched, errstr, sizeof(errstr)),
                errstr, sizeof(errstr));

            sb->answer = full < 0   ? ANSWER_NONE
                         : full > 0 ? ANSWER_FULL
                                    : ANSWER_ADMITTED;
        }
        sb->sent = false;
    }
}

/* Take submitted request @i out of the queue: into @own when given,
 * else released. */
static void
sched_take(struct guard_state *st, size_t i, struct sched_batch *own)
{
    if (own)
        *own = st->pend[i];
    else
        sched_batch_release(&st->pend[i]);
    st->npend--;
    memmove(&st->pend[i], &st->pend[i + 1],
            (st->npend - i) * sizeof(st->pend[0]));
    memset(&st->pend[st->npend], 0, sizeof(st->pend[0]));
}

static void guard_drain_while_full(struct hr_worker *w, struct guard_state *st);

/*
 * Prepare the next batch and send its schedule request without waiting:
 * Redis runs it while the previous batch and the tick are handled. At
 * most two batches are submitted and not handled (hr_worker.h).
 */
void guard_submit(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct guard_state *st = state;
    struct hr_redis *redis = hr_worker_redis(w);
    struct sched_batch *sb;
    char errstr[256];

    if (st->npend == GUARD_PENDING || !batch->n)
        return;
    sb = &st->pend[st->npend];
    if (sched_batch_prepare(st, batch, sb)) {
        sched_batch_release(sb);
        return;
    }
    st->npend++;
    if (!sb->write)
        return;
    sb->sent =
        !hr_redis_eval_send(redis, &st->sched, K_N, (int)sb->argc, sb->argv,
                            sb->argvlen, errstr, sizeof(errstr));
    sb->epoch = hr_redis_epoch(redis);
}

enum hr_batch_result
guard_handle(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct guard_state *st = state;
    struct hr_redis *redis = hr_worker_redis(w);
    enum hr_batch_result res = HR_BATCH_PAUSE;
    struct sched_batch own, *sb = &own;
    char errstr[256];
    int full = 0;
    size_t m;

    memset(&own, 0, sizeof(own));
    for (m = 0; m < st->npend; m++) {
        if (sched_batch_is(&st->pend[m], batch))
            break;
    }
    if (m < st->npend) {
        /* submitted: take it out of the queue; requests before it belong
         * to batches that were dropped */
        sched_collect(st, w, m);
        while (m--)
            sched_take(st, 0, NULL);
        sched_take(st, 0, &own);
        if (sb->sent && sb->epoch != hr_redis_epoch(redis))
            sb->sent = false; /* the connection dropped with the reply */
    } else {
        /* a redo: the submitted requests are for later batches, in the
         * other slots (one for this slot is stale: drop it) */
        sched_collect(st, w, st->npend);
        for (m = 0; m < st->npend; m++) {
            if (st->pend[m].batch == batch) {
                sched_take(st, m, NULL);
                break;
            }
        }
        if (sched_batch_prepare(st, batch, sb)) {
            hr_worker_set_pause_reason(w, "out of memory");
            goto out_free;
        }
    }
    if (sb->write) {
        full = -1;
        if (sb->answer != ANSWER_NONE) /* full then: ask again */
            full = sb->answer == ANSWER_FULL ? -1 : 0;
        else if (sb->sent)
            full = sched_reply(
                st, hr_redis_reply(redis, &st->sched, errstr, sizeof(errstr)),
                errstr, sizeof(errstr));
        if (full < 0) {
            /* not submitted, its reply lost, or full when it was: the
             * script is idempotent, run it (again) — after reading the
             * later requests' replies, which a call would discard */
            sched_collect(st, w, st->npend);
            full = sched_reply(
                st,
                hr_redis_eval(redis, &st->sched, K_N, (int)sb->argc, sb->argv,
                              sb->argvlen, errstr, sizeof(errstr)),
                errstr, sizeof(errstr));
        }
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
            guard_drain_while_full(w, st);
            goto out_free;
        }
    }
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        const struct sched_item *si = &sb->si[i];
        const char *reason = guard_verdict_reason(si->verdict);
        rd_kafka_headers_t *hdrs;

        if (item->outcome != HR_OUT_PENDING)
            continue;
        if (si->poison) {
            hr_item_dead(item, HR_ERR_POISON, "%s", si->poison);
            continue;
        }
        if (si->scheduled || !reason) {
            hr_item_ok(item);
            continue;
        }
        hdrs = item_headers(item);
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
                    HR_LOG_STR("destination", sb->b.p + si->dest),
                    HR_LOG_STR("reason", reason));
        hr_metric_add(st->dead, (const char *[]){reason}, 1);
        hr_item_ok(item);
    }
    res = HR_BATCH_DONE;
out_free:
    sched_batch_release(sb);
    return res;
}

/* --- the tick: due items out of the schedule --------------------------- */


static void slice_free(struct slice *sl)
{
    free(sl->it);
    if (sl->reply)
        freeReplyObject(sl->reply);
    gbuf_release(&sl->b);
    memset(sl, 0, sizeof(*sl));
}

/* Send guard_take.lua for a slice at @now_ms (its reply is read by
 * take_read(), before any other Redis call). */
static int take_send(struct guard_state *st,
                     int64_t now_ms,
                     char *errstr,
                     size_t errstr_size)
{
    char now[NUM_SIZE], limit[NUM_SIZE], lease[NUM_SIZE], rescan[NUM_SIZE],
        bytes[NUM_SIZE];
    const char *argv[K_N + 5];
    size_t argvlen[K_N + 5];

    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(limit, sizeof(limit), "%" PRId64, st->set.tick_max);
    snprintf(lease, sizeof(lease), "%" PRId64, now_ms + GUARD_LEASE_MS);
    snprintf(rescan, sizeof(rescan), "%d", GUARD_RESCAN);
    snprintf(bytes, sizeof(bytes), "%d", GUARD_TAKE_BYTES);
    for (int k = 0; k < K_N; k++) {
        argv[k] = st->keys[k];
        argvlen[k] = st->key_lens[k];
    }
    argv[K_N] = now;
    argv[K_N + 1] = limit;
    argv[K_N + 2] = lease;
    argv[K_N + 3] = rescan;
    argv[K_N + 4] = bytes;
    for (int k = K_N; k < K_N + 5; k++)
        argvlen[k] = strlen(argv[k]);
    return hr_redis_eval_send(st->tick_redis, &st->take, K_N, K_N + 5, argv,
                              argvlen, errstr, errstr_size);
}

static bool reply_is_take(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[2]->type != REDIS_REPLY_INTEGER ||
        r->element[3]->type != REDIS_REPLY_ARRAY ||
        r->element[3]->elements % 2 ||
        r->element[4]->type != REDIS_REPLY_INTEGER)
        return false;
    for (size_t i = 0; i < r->element[3]->elements; i++) {
        if (r->element[3]->element[i]->type != REDIS_REPLY_STRING)
            return false;
    }
    return true;
}

/* Whether header @name of a due item is exactly @value. */
static bool
due_header_is(const struct due_item *d, const char *name, const char *value)
{
    const char *v;
    size_t len;

    return !guard_hdrs_blob_get(d->v.hdrs, d->v.hdrs_len, name, &v, &len) &&
           v && len == strlen(value) && !memcmp(v, value, len);
}

/* Read one taken item (its headers stay encoded until it is produced); a
 * corrupt one is dead-lettered. */
static void due_parse(struct guard_state *st,
                      struct slice *sl,
                      struct due_item *d,
                      const redisReply *id,
                      const redisReply *blob)
{
    static const char unknown[] = "unknown";
    struct origin o = {0};
    const char *v;
    size_t len;

    d->id = gbuf_put(&sl->b, id->str, id->len);
    d->id_len = id->len;
    if (guard_item_decode(blob->str, blob->len, &d->v) ||
        !guard_hdrs_blob_ok(d->v.hdrs, d->v.hdrs_len)) {
        hr_log_error("corrupt schedule entry; dead-lettering it",
                     HR_LOG_STR("id", id->str));
        memset(&d->v, 0, sizeof(d->v));
        d->v.value = "";
        d->v.hdrs = "";
        d->verdict = GUARD_DLQ_MAX_AGE;
        d->dest = gbuf_str(&sl->b, unknown, strlen(unknown));
        snprintf(d->worker, sizeof(d->worker), "%s", unknown);
        return;
    }
    d->verdict = guard_decide(
        &st->set,
        guard_hdrs_blob_i64(d->v.hdrs, d->v.hdrs_len, "herald-attempt", 1),
        guard_hdrs_blob_i64(d->v.hdrs, d->v.hdrs_len, "herald-first-failure-ms",
                            sl->now_ms),
        sl->now_ms);
    d->dest = gbuf_str(&sl->b, d->v.dest, d->v.dest_len);
    d->free_pass = due_header_is(d, "herald-error", HR_PARK_REASON);
    if (!guard_hdrs_blob_get(d->v.hdrs, d->v.hdrs_len, "herald-worker", &v,
                             &len) &&
        v && len < sizeof(d->worker)) {
        memcpy(d->worker, v, len);
        d->worker[len] = '\0';
    } else {
        snprintf(d->worker, sizeof(d->worker), "%s", unknown);
    }
    if (d->verdict == GUARD_SCHEDULE || !d->v.key)
        return;
    /* A dead letter here finishes its event: it must leave its queues. */
    snprintf(o.worker, sizeof(o.worker), "%s", d->worker);
    if (!guard_hdrs_blob_get(d->v.hdrs, d->v.hdrs_len, "herald-origin-topic",
                             &v, &len) &&
        v) {
        o.topic = v;
        o.topic_len = len;
        o.partition = guard_hdrs_blob_i64(d->v.hdrs, d->v.hdrs_len,
                                          "herald-origin-partition", INT64_MIN);
        o.offset = guard_hdrs_blob_i64(d->v.hdrs, d->v.hdrs_len,
                                       "herald-origin-offset", INT64_MIN);
        if (o.partition != INT64_MIN && o.offset != INT64_MIN)
            d->nq =
                park_refs(&sl->b, st->prefix, o.worker, o.topic, o.topic_len,
                          o.partition, o.offset, d->v.dest, d->v.dest_len,
                          d->v.key, d->v.key_len, &d->eid, &d->q);
    }
}

/* Read the reply of take_send() into @sl. Returns 0 or -1 with @errstr. */
static int take_read(struct guard_state *st,
                     struct slice *sl,
                     int64_t now_ms,
                     char *errstr,
                     size_t errstr_size)
{
    redisReply *reply;
    const redisReply *list;

    memset(sl, 0, sizeof(*sl));
    sl->now_ms = now_ms;
    reply = hr_redis_reply(st->tick_redis, &st->take, errstr, errstr_size);
    if (!reply)
        return -1;
    if (!reply_is_take(reply)) {
        snprintf(errstr, errstr_size, "%s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        freeReplyObject(reply);
        return -1;
    }
    sl->reply = reply;
    hr_metric_set(
        st->scheduled, NULL,
        (double)(reply->element[0]->integer + reply->element[1]->integer));
    hr_metric_set(st->parked, NULL, (double)reply->element[1]->integer);
    if (reply->element[2]->integer)
        hr_log_warn("vanished schedule entries removed",
                    HR_LOG_I64("count", reply->element[2]->integer));
    list = reply->element[3];
    sl->n = list->elements / 2;
    sl->full =
        sl->n >= (size_t)st->set.tick_max || reply->element[4]->integer == 1;
    if (!sl->n)
        return 0;
    sl->it = calloc(sl->n, sizeof(*sl->it));
    if (!sl->it) {
        snprintf(errstr, errstr_size, "out of memory");
        slice_free(sl);
        return -1;
    }
    for (size_t i = 0; i < sl->n; i++)
        due_parse(st, sl, &sl->it[i], list->element[2 * i],
                  list->element[2 * i + 1]);
    return 0;
}

/* Ask the budget for every destination's due retries; on success each
 * item says whether it may go now. Items parked behind an earlier event
 * are not retries (they were never tried): they need no budget. */
static int slice_budget(struct guard_state *st,
                        struct slice *sl,
                        char *errstr,
                        size_t errstr_size)
{
    size_t n = sl->n, nd = 0;
    const char **dests = calloc(n, sizeof(*dests));
    int *want = calloc(n, sizeof(*want));
    int *granted = calloc(n, sizeof(*granted));
    struct due_item *it = sl->it;
    int rc = -1;

    if (!dests || !want || !granted) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out_free;
    }
    for (size_t i = 0; i < n; i++) {
        const char *dest = sl->b.p + it[i].dest;
        size_t d;

        if (it[i].verdict != GUARD_SCHEDULE || it[i].free_pass)
            continue;
        for (d = 0; d < nd; d++) {
            if (!strcmp(dests[d], dest))
                break;
        }
        if (d == nd)
            dests[nd++] = dest;
        want[d]++;
        it[i].dest_idx = d;
    }
    if (nd &&
        hr_circuit_budget_take(st->circuit, st->tick_redis, dests, want, nd,
                               sl->now_ms, granted, errstr, errstr_size))
        goto out_free;
    for (size_t i = 0; i < n; i++) {
        if (it[i].verdict != GUARD_SCHEDULE || it[i].free_pass)
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

/* Queue every due item's record: the redelivery (attempt + 1) or the dead
 * letter. Stops at the first refusal. Returns how many were queued. */
static size_t
slice_send(struct guard_state *st, struct hr_worker *w, struct slice *sl)
{
    char errstr[256], topic[GUARD_NAME_MAX + 64];
    size_t sent = 0;

    for (size_t i = 0; i < sl->n; i++) {
        struct due_item *d = &sl->it[i];
        const char *reason = guard_verdict_reason(d->verdict);
        rd_kafka_headers_t *hdrs;
        int rc;

        if (d->throttled)
            continue;
        hdrs = guard_hdrs_decode(d->v.hdrs, d->v.hdrs_len);
        HR_ASSERT(hdrs); /* checked by due_parse() */
        if (reason) {
            rc = send_dead(w, st, hdrs, d->v.key, d->v.key_len, d->v.value,
                           d->v.value_len, reason, errstr, sizeof(errstr));
        } else {
            /* A hand-off that made no call (circuit open, throttled,
             * parked behind) spent no attempt (hr_circuit.h): it comes
             * back with the same one. */
            if (!spent_no_attempt(hdrs))
                guard_hdrs_set_i64(
                    hdrs, "herald-attempt",
                    guard_hdrs_get_i64(hdrs, "herald-attempt", 1) + 1);
            snprintf(topic, sizeof(topic), "%.*s", (int)d->v.topic_len,
                     d->v.topic);
            rc = hr_worker_produce_headers(w, topic, d->v.key, d->v.key_len,
                                           d->v.value, d->v.value_len, hdrs,
                                           errstr, sizeof(errstr));
        }
        if (rc)
            rd_kafka_headers_destroy(hdrs);
        if (rc) {
            warn_limited(st, "cannot queue redelivery", errstr);
            break;
        }
        hdrs = NULL; /* owned by the producer now */
        d->sent = true;
        sent++;
    }
    return sent;
}

/*
 * Remove the acknowledged items, push the others back (throttled ones a
 * second later, in their order; unsent ones too), and take the events
 * dead-lettered here out of their park queues.
 */
static void slice_settle(struct guard_state *st, struct slice *sl)
{
    size_t n = sl->n, argc = K_N + 3, k = 0, bumped = 0, removed = 0;
    const char **argv;
    size_t *argvlen;
    char(*nums)[NUM_SIZE];
    char now[NUM_SIZE], nrem[NUM_SIZE], nbump[NUM_SIZE], errstr[256];
    redisReply *reply;

    for (size_t i = 0; i < n; i++) {
        argc += sl->it[i].sent ? 1 : 2;
        if (sl->it[i].sent && sl->it[i].nq)
            argc += 2 + (size_t)sl->it[i].nq;
    }
    argv = calloc(argc, sizeof(*argv));
    argvlen = calloc(argc, sizeof(*argvlen));
    nums = calloc(2 * n + 1, sizeof(*nums));
    if (!argv || !argvlen || !nums)
        goto out_free;
    for (int i = 0; i < K_N; i++) {
        argv[k] = st->keys[i];
        argvlen[k++] = st->key_lens[i];
    }
    snprintf(now, sizeof(now), "%" PRId64, sl->now_ms);
    argv[k++] = now;
    argv[k++] = nrem;
    for (size_t i = 0; i < n; i++) {
        if (!sl->it[i].sent)
            continue;
        argv[k] = sl->b.p + sl->it[i].id;
        argvlen[k++] = sl->it[i].id_len;
        removed++;
    }
    snprintf(nrem, sizeof(nrem), "%zu", removed);
    argv[k++] = nbump;
    for (size_t i = 0; i < n; i++) {
        if (sl->it[i].sent)
            continue;
        /* Keep their order: later items ask later. */
        snprintf(nums[bumped], sizeof(nums[0]), "%" PRId64,
                 sl->now_ms + GUARD_BUMP_MS + (int64_t)bumped);
        argv[k] = sl->b.p + sl->it[i].id;
        argvlen[k++] = sl->it[i].id_len;
        argv[k++] = nums[bumped++];
    }
    snprintf(nbump, sizeof(nbump), "%zu", bumped);
    for (size_t i = 0; i < n; i++) {
        struct due_item *d = &sl->it[i];

        if (!d->sent || !d->nq)
            continue;
        snprintf(nums[n + i], sizeof(nums[0]), "%d", d->nq);
        argv[k++] = sl->b.p + d->eid;
        argv[k++] = nums[n + i];
        k = put_queues(&sl->b, d->q, d->nq, argv, argvlen, k);
    }
    HR_ASSERT(k == argc);
    for (size_t a = 0; a < argc; a++) {
        if (!argvlen[a])
            argvlen[a] = strlen(argv[a]);
    }
    reply = hr_redis_eval(st->tick_redis, &st->done, K_N, (int)argc, argv,
                          argvlen, errstr, sizeof(errstr));
    if (!reply) {
        /* Redelivered again after the lease: at least once. */
        warn_limited(st, "cannot settle redeliveries", errstr);
        goto out_free;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER &&
        reply->element[1]->type == REDIS_REPLY_INTEGER) {
        hr_metric_set(
            st->scheduled, NULL,
            (double)(reply->element[0]->integer + reply->element[1]->integer));
        hr_metric_set(st->parked, NULL, (double)reply->element[1]->integer);
    } else {
        warn_limited(st, "cannot settle redeliveries",
                     reply->type == REDIS_REPLY_ERROR ? reply->str
                                                      : "bad reply");
    }
    freeReplyObject(reply);
out_free:
    free(argv);
    free(argvlen);
    free(nums);
}

/* Count what the broker acknowledged. */
static void slice_account(struct guard_state *st,
                          const struct slice *sl,
                          int64_t started_ms)
{
    size_t sent = 0, throttled = 0;

    for (size_t i = 0; i < sl->n; i++) {
        const struct due_item *d = &sl->it[i];
        const char *reason = guard_verdict_reason(d->verdict);
        const char *dest = sl->b.p + d->dest;

        if (d->throttled) {
            throttled++;
            hr_metric_add(st->throttled, (const char *[]){dest}, 1);
            continue;
        }
        if (!d->sent)
            continue;
        sent++;
        if (reason)
            hr_metric_add(st->dead, (const char *[]){reason}, 1);
        else
            hr_metric_add(st->redelivered, (const char *[]){d->worker, dest},
                          1);
    }
    if (sent || throttled)
        hr_log_debug("retry slice", HR_LOG_I64("sent", (int64_t)sent),
                     HR_LOG_I64("throttled", (int64_t)throttled),
                     HR_LOG_I64("elapsed_ms", hr_time_mono_ms() - started_ms));
}

/* Read the take sent ahead, if any, into st->taken. Comes before any
 * other call on the tick's connection. */
static void take_collect(struct guard_state *st)
{
    char errstr[256];

    if (!st->take_sent)
        return;
    st->take_sent = false;
    if (take_read(st, &st->taken, st->take_now_ms, errstr, sizeof(errstr))) {
        warn_limited(st, "cannot read the retry schedule", errstr);
        return;
    }
    st->taken.taken_ms = st->take_mono_ms;
}

static void take_ahead(struct guard_state *st)
{
    char errstr[256];

    st->take_now_ms = hr_time_now_ms();
    st->take_mono_ms = hr_time_mono_ms();
    st->take_sent = !take_send(st, st->take_now_ms, errstr, sizeof(errstr));
    if (!st->take_sent)
        warn_limited(st, "cannot read the retry schedule", errstr);
}

/*
 * Settle produced slices oldest first once the broker acknowledged their
 * records (waiting until @wait_until, monotonic, at most): remove them
 * from the schedule, or push them back when a record failed or was not
 * acknowledged within GUARD_FLUSH_MS of the take (well inside its lease).
 */
static void
fly_settle(struct guard_state *st, struct hr_worker *w, int64_t wait_until)
{
    char errstr[256];

    take_collect(st); /* before the done script on the same connection */

    while (st->nfly) {
        struct slice *sl = &st->fly[0];
        int64_t deadline = sl->taken_ms + GUARD_FLUSH_MS;
        int64_t until = wait_until < deadline ? wait_until : deadline;
        int64_t now = hr_time_mono_ms();
        int bad = hr_producer_settle(hr_worker_producer(w), sl->epoch,
                                     until > now ? (int)(until - now) : 0,
                                     errstr, sizeof(errstr));

        if (bad < 0 && hr_time_mono_ms() < deadline)
            return; /* still in flight */
        if (bad < 0) {
            hr_producer_forget(hr_worker_producer(w), sl->epoch);
            snprintf(errstr, sizeof(errstr),
                     "delivery not acknowledged in time");
        }
        if (bad) {
            /* Keep them scheduled: they go again a second later. */
            warn_limited(st, "redeliveries not acknowledged", errstr);
            for (size_t i = 0; i < sl->n; i++)
                sl->it[i].sent = false;
        }
        slice_settle(st, sl);
        slice_account(st, sl, sl->taken_ms);
        slice_free(sl);
        st->nfly--;
        memmove(&st->fly[0], &st->fly[1], st->nfly * sizeof(st->fly[0]));
        memset(&st->fly[st->nfly], 0, sizeof(st->fly[0]));
    }
}

/*
 * One step of the tick's pipeline: take due items (unless a take sent
 * ahead brought them), ask the budget, queue their records and seal them;
 * they are removed from the schedule by a later fly_settle(), once the
 * broker acknowledged them (a crash in between hands them out again when
 * their lease ends: at least once, SPEC section 7). With more due, the
 * next take is sent ahead and runs in Redis while the loop handles a
 * batch.
 */
static void guard_drain(struct hr_worker *w, struct guard_state *st)
{
    struct slice *sl = &st->taken;
    char errstr[256];

    fly_settle(st, w, 0); /* reads a take sent ahead first */
    if (st->nfly == GUARD_FLY)
        return; /* what was taken waits for a free place */
    if (!st->taken.reply) {
        take_ahead(st);
        take_collect(st);
        if (!st->taken.reply)
            return;
    }
    st->last_full = sl->full;
    if (!sl->n) {
        slice_free(sl);
        return;
    }
    if (slice_budget(st, sl, errstr, sizeof(errstr))) {
        /* Their leases hand them out again. */
        warn_limited(st, "cannot ask the retry budget", errstr);
        slice_free(sl);
        return;
    }
    (void)slice_send(st, w, sl);
    sl->epoch = hr_producer_seal(hr_worker_producer(w));
    /* The producer has copies: the reply's memory can go. */
    freeReplyObject(sl->reply);
    sl->reply = NULL;
    for (size_t i = 0; i < sl->n; i++)
        memset(&sl->it[i].v, 0, sizeof(sl->it[i].v));
    st->fly[st->nfly++] = *sl;
    memset(sl, 0, sizeof(*sl));
    if (st->last_full && st->nfly < GUARD_FLY)
        take_ahead(st);
}

/*
 * The schedule is full and the batch pauses (no ticks meanwhile): drain
 * for up to GUARD_SLICE_MS, waiting for the broker whenever both places
 * for produced slices are taken, so that each pause frees room.
 */
static void guard_drain_while_full(struct hr_worker *w, struct guard_state *st)
{
    int64_t until = hr_time_mono_ms() + GUARD_SLICE_MS;

    do {
        guard_drain(w, st);
        if (!st->nfly && !st->taken.reply && !st->take_sent)
            break; /* nothing due */
        fly_settle(st, w, st->nfly == GUARD_FLY ? until : 0);
    } while (hr_time_mono_ms() < until);
}

/* --- circuit gauges ------------------------------------------------------ */

static struct known_dest *known_of(struct guard_state *st, const char *name)
{
    for (size_t i = 0; i < st->nknown; i++) {
        if (!strcmp(st->known[i].name, name))
            return &st->known[i];
    }
    if (st->nknown == GUARD_PEEK_MAX)
        return NULL;
    snprintf(st->known[st->nknown].name, sizeof(st->known[0].name), "%s", name);
    st->known[st->nknown].auth_failures = 0;
    return &st->known[st->nknown++];
}

/*
 * Every destination's circuit, as all workers reported it, into
 * herald_guard_circuit_state; the growth of its auth failures into
 * herald_guard_auth_failures_total (a count that restarted, when the
 * circuit expired while idle, counts from 0 again).
 */
static void guard_peek(struct guard_state *st)
{
    struct hr_circuit_view *views = NULL;
    char errstr[256];
    size_t n = 0;

    if (hr_circuit_peek(st->circuit, st->tick_redis, hr_time_now_ms(),
                        GUARD_PEEK_MAX, &views, &n, errstr, sizeof(errstr))) {
        warn_limited(st, "cannot read the circuits", errstr);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *dest = views[i].destination;
        struct known_dest *k = known_of(st, dest);
        int64_t ac = views[i].auth_failures;

        if (!k)
            break;
        hr_metric_set(st->circuit_state, (const char *[]){dest},
                      hr_circuit_state_gauge(views[i].state));
        hr_metric_add(
            st->auth_failures, (const char *[]){dest},
            (double)(ac >= k->auth_failures ? ac - k->auth_failures : ac));
        k->auth_failures = ac;
    }
    free(views);
}

void guard_tick(struct hr_worker *w, void *state)
{
    struct guard_state *st = state;
    int64_t mono = hr_time_mono_ms();

    take_collect(st);
    if (mono - st->last_peek_ms >= GUARD_PEEK_MS) {
        st->last_peek_ms = mono;
        guard_peek(st);
    }
    if (!st->last_full && !st->taken.reply &&
        mono - st->last_tick_ms < GUARD_TICK_MS) {
        fly_settle(st, w, 0);
        return;
    }
    st->last_tick_ms = mono;
    guard_drain(w, st);
}

/* Stopping: what was taken and not produced goes back (due a second
 * later); produced slices are settled as the broker acknowledges them
 * until @deadline_ms, the rest come back when their leases end. */
void guard_stop(struct hr_worker *w, void *state, int64_t deadline_ms)
{
    struct guard_state *st = state;

    take_collect(st);
    if (st->taken.reply) {
        for (size_t i = 0; i < st->taken.n; i++)
            st->taken.it[i].sent = false;
        slice_settle(st, &st->taken);
        slice_free(&st->taken);
    }
    fly_settle(st, w, deadline_ms);
    for (size_t i = 0; i < st->nfly; i++) {
        hr_producer_forget(hr_worker_producer(w), st->fly[i].epoch);
        slice_free(&st->fly[i]);
    }
    st->nfly = 0;
}

void guard_fini(struct hr_worker *w, void *state)
{
    struct guard_state *st = state;

    (void)w;
    hr_circuit_free(st->circuit);
    for (int i = 0; i < 3; i++)
        free(st->srcs[i]);
    for (size_t i = 0; st->pend && i < st->npend; i++)
        sched_batch_release(&st->pend[i]);
    free(st->pend);
    slice_free(&st->taken);
    for (size_t i = 0; i < st->nfly; i++)
        slice_free(&st->fly[i]);
    hr_redis_free(st->tick_redis);
    free(st->known);
    free(st);
}
