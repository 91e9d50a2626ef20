#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_conf.h"
#include "hr_kafka.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_msg.h"
#include "hr_source_impl.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* A consumed record behind its neutral view; kept on a free list. */
struct kmsg {
    struct hr_msg msg; /* first: the runtime's pointer is this one's */
    rd_kafka_message_t *rkm;
    struct kmsg *next_free;
};

struct kafka_source {
    struct hr_source base; /* first */
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *assigned; /* current assignment */
    struct hr_metric *lag;
    struct hr_metric *errors;
    struct hr_metric *rebalances;
    bool fatal;
    bool all_brokers_down;
    bool joined; /* the group handed out an assignment at least once */
    char last_error[256];
    /* Waking the fetchers (fetch_nudge()): librdkafka before 2.2 only. */
    rd_kafka_queue_t *cq; /* the consumer queue, for its length */
    size_t peak;          /* the queue's length since the last nudge */
    struct hr_metric *nudged;
    struct kmsg *free_msgs;
};

/* librdkafka 2.2 made the fetcher's back-off on a full queue a setting. */
#define FETCH_QUEUE_BACKOFF_VERSION 0x020200ff
/* A queue that never held this many messages is not being refilled in
 * bursts: no nudge. */
#define NUDGE_MIN_PEAK 128
#define NUDGE_WAIT_MS  200
#define NUDGE_GROUP    "herald-fetch-nudge.no-such-group"

/* Assignment bookkeeping: the cooperative protocol hands out increments. */
static void assignment_add(struct kafka_source *src,
                           const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];

        if (!rd_kafka_topic_partition_list_find(src->assigned, tp->topic,
                                                tp->partition))
            rd_kafka_topic_partition_list_add(src->assigned, tp->topic,
                                              tp->partition);
    }
}

static void assignment_remove(struct kafka_source *src,
                              const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        char pstr[16];

        rd_kafka_topic_partition_list_del(src->assigned, tp->topic,
                                          tp->partition);
        snprintf(pstr, sizeof(pstr), "%d", tp->partition);
        hr_metric_remove(src->lag, (const char *[]){tp->topic, pstr});
    }
}

static void rebalance_cb(rd_kafka_t *rk,
                         rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    struct kafka_source *src = opaque;
    bool cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;

    hr_metric_add(src->rebalances, NULL, 1);
    hr_log_info(assign ? "partitions assigned" : "partitions revoked",
                HR_LOG_I64("count", parts->cnt),
                HR_LOG_STR("protocol", rd_kafka_rebalance_protocol(rk)));
    if (assign) {
        src->joined = true;
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
        assignment_add(src, parts);
    } else {
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ret = rd_kafka_assign(rk, NULL);
        if (cooperative) {
            assignment_remove(src, parts);
        } else {
            rd_kafka_topic_partition_list_t *all =
                rd_kafka_topic_partition_list_copy(src->assigned);

            assignment_remove(src, all);
            rd_kafka_topic_partition_list_destroy(all);
        }
    }
    if (error) {
        hr_log_error("rebalance failed",
                     HR_LOG_STR("err", rd_kafka_error_string(error)));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        hr_log_error("rebalance failed",
                     HR_LOG_STR("err", rd_kafka_err2str(ret)));
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_source *src = opaque;

    hr_metric_add(src->errors, NULL, 1);
    snprintf(src->last_error, sizeof(src->last_error), "%s", reason);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        src->all_brokers_down = true;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[256];

        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        hr_log_error("kafka fatal error", HR_LOG_STR("err", fatal));
        src->fatal = true;
        return;
    }
    hr_log_warn("kafka error", HR_LOG_STR("err", reason),
                HR_LOG_STR("code", rd_kafka_err2name(err)));
}

/* Statistics JSON -> herald_consumer_lag{topic,partition}. Only partitions
 * this consumer holds are reported (the -1 "internal" partition and
 * partitions without a known lag are skipped). */
static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    struct kafka_source *src = opaque;
    json_t *root, *topics, *topic, *parts, *part;
    const char *tname, *pname;

    (void)rk;
    root = json_loadb(json, json_len, 0, NULL);
    if (!root)
        return 0;
    topics = json_object_get(root, "topics");
    json_object_foreach(topics, tname, topic)
    {
        parts = json_object_get(topic, "partitions");
        json_object_foreach(parts, pname, part)
        {
            json_t *lag = json_object_get(part, "consumer_lag");
            int32_t pid = (int32_t)strtol(pname, NULL, 10);

            if (pid < 0 || !json_is_integer(lag) ||
                json_integer_value(lag) < 0 ||
                !rd_kafka_topic_partition_list_find(src->assigned, tname, pid))
                continue;
            hr_metric_set(src->lag, (const char *[]){tname, pname},
                          (double)json_integer_value(lag));
        }
    }
    if (src->all_brokers_down) {
        json_t *brokers = json_object_get(root, "brokers"), *b;
        const char *bname;

        json_object_foreach(brokers, bname, b)
        {
            const char *state = json_string_value(json_object_get(b, "state"));

            if (state && !strcmp(state, "UP"))
                src->all_brokers_down = false;
        }
    }
    json_decref(root);
    return 0; /* librdkafka frees @json */
}

static rd_kafka_topic_partition_list_t *topic_list(const char *topics)
{
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(4);
    char *copy = strdup(topics), *t, *save = NULL;

    for (t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (*t &&
            !rd_kafka_topic_partition_list_find(list, t, RD_KAFKA_PARTITION_UA))
            rd_kafka_topic_partition_list_add(list, t, RD_KAFKA_PARTITION_UA);
    }
    free(copy);
    return list;
}

static const struct hr_source_ops kafka_ops;

struct hr_source *hr_source_kafka_new(const struct hr_conf *cfg,
                                      const char *topics,
                                      struct hr_metrics *reg,
                                      char *errstr,
                                      size_t errstr_size)
{
    const char *defaults[] = {
        "group.id",
        hr_conf_str(cfg, "HERALD_KAFKA_GROUP"),
        "enable.auto.offset.store",
        "false",
        "enable.auto.commit",
        "true",
        "auto.commit.interval.ms",
        "1000",
        "auto.offset.reset",
        "earliest",
        "partition.assignment.strategy",
        "cooperative-sticky",
        "statistics.interval.ms",
        hr_conf_str(cfg, "HERALD_KAFKA_STATS_INTERVAL_MS"),
        /* What librdkafka buffers ahead: a few batches. Small, because
         * the fetchers are woken when it drains (fetch_nudge()) instead of
         * waiting out librdkafka 2.0.2's one-second back-off; small fetch
         * responses keep the decompressed data in flight small. */
        "queued.min.messages",
        "10000",
        "queued.max.messages.kbytes",
        "4096",
        "fetch.max.bytes",
        "1048576",
        /* How long a fetch may wait at the broker for data. A real broker
         * answers as soon as data arrives; librdkafka's mock cluster (the
         * devbroker) answers only at this deadline, which added ~0.4 s to
         * every herald-email window (its records go round its own topic)
         * at the default 500. Costs an idle consumer 10 fetches/s. */
        "fetch.wait.max.ms",
        "100",
        "client.id",
        "herald-consumer",
        NULL, /* fetch.queue.backoff.ms, librdkafka 2.2 and later */
        NULL,
        NULL, /* group.instance.id when set */
        NULL,
        NULL,
    };
    struct kafka_source *src = calloc(1, sizeof(*src));
    rd_kafka_topic_partition_list_t *subs;
    rd_kafka_conf_t *conf;
    rd_kafka_resp_err_t err;

    if (!src) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (rd_kafka_version() >= FETCH_QUEUE_BACKOFF_VERSION) {
        size_t n = HR_ARRAY_SIZE(defaults) - 5;

        defaults[n] = "fetch.queue.backoff.ms";
        defaults[n + 1] = "10";
    }
    if (hr_conf_str(cfg, "HERALD_INSTANCE_ID")) {
        size_t n = HR_ARRAY_SIZE(defaults) - 3;

        defaults[n] = "group.instance.id";
        defaults[n + 1] = hr_conf_str(cfg, "HERALD_INSTANCE_ID");
    }
    src->lag = hr_metrics_gauge(reg, "herald_consumer_lag",
                                "Messages behind the partition's end",
                                "topic,partition");
    src->errors =
        hr_metrics_counter(reg, "herald_source_errors_total",
                           "Errors reported by the source client", NULL);
    src->rebalances = hr_metrics_counter(reg, "herald_source_rebalances_total",
                                         "Assignment changes", NULL);
    src->nudged = hr_metrics_counter(
        reg, "herald_source_fetch_nudges_total",
        "Fetchers woken after the prefetch queue drained (librdkafka < 2.2)",
        NULL);
    src->assigned = rd_kafka_topic_partition_list_new(32);
    conf = hr_kafka_conf_new(cfg, defaults, errstr, errstr_size);
    if (!conf)
        goto out_free;
    rd_kafka_conf_set_opaque(conf, src);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    src->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!src->rk) {
        rd_kafka_conf_destroy(conf);
        goto out_free;
    }
    conf = NULL; /* owned by src->rk now */
    /* The main queue (statistics, errors) stays separate from the consumer
     * queue, so it can be served while a batch is paused. */
    subs = topic_list(topics);
    err = rd_kafka_subscribe(src->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err) {
        snprintf(errstr, errstr_size, "cannot subscribe to '%s': %s", topics,
                 rd_kafka_err2str(err));
        rd_kafka_destroy(src->rk);
        goto out_free;
    }
    if (rd_kafka_version() < FETCH_QUEUE_BACKOFF_VERSION)
        src->cq = rd_kafka_queue_get_consumer(src->rk);
    src->base.ops = &kafka_ops;
    return &src->base;
out_free:
    rd_kafka_topic_partition_list_destroy(src->assigned);
    free(src);
    return NULL;
}

/*
 * Before 2.2, librdkafka's fetcher stops asking for a partition once the
 * prefetch queue holds queued.min.messages or queued.max.messages.kbytes,
 * and looks again only when something wakes its broker thread: a request
 * to send, a reply, or its one-second timer. A worker that drains the
 * queue faster than that starves, unless the queue holds a second of
 * input, which is what made workers large. So once the queue has been
 * drained to a quarter of its last peak, wake every broker thread with a
 * light request (ListGroups, filtered to a group that does not exist, so
 * nothing is described); each then looks at its partitions again and
 * fetches. One nudge per refill, only while the queue runs full (catching
 * up), never in steady streaming. The call waits for the replies (a round
 * trip; the asynchronous admin variant did not wake the fetchers in
 * 2.0.2), at most NUDGE_WAIT_MS. 2.2 and later: fetch.queue.backoff.ms.
 */
static void fetch_nudge(struct kafka_source *src)
{
    const struct rd_kafka_group_list *groups = NULL;
    size_t len;

    if (!src->cq)
        return;
    len = rd_kafka_queue_length(src->cq);
    if (len > src->peak)
        src->peak = len;
    if (src->peak < NUDGE_MIN_PEAK || len > src->peak / 4)
        return;
    src->peak = len;
    hr_metric_add(src->nudged, NULL, 1);
    if (!rd_kafka_list_groups(src->rk, NUDGE_GROUP, &groups, NUDGE_WAIT_MS) &&
        groups)
        rd_kafka_group_list_destroy(groups);
}

/* Header access through the record's own headers. */
static const void *
kmsg_header(const struct hr_msg *msg, const char *name, size_t *len)
{
    const struct kmsg *km = (const struct kmsg *)msg;
    rd_kafka_headers_t *hdrs;
    const void *val;

    if (rd_kafka_message_headers(km->rkm, &hdrs) ||
        rd_kafka_header_get_last(hdrs, name, &val, len))
        return NULL;
    return val;
}

static int kmsg_header_at(const struct hr_msg *msg,
                          size_t idx,
                          const char **name,
                          const void **value,
                          size_t *len)
{
    const struct kmsg *km = (const struct kmsg *)msg;
    rd_kafka_headers_t *hdrs;

    if (rd_kafka_message_headers(km->rkm, &hdrs) ||
        rd_kafka_header_get_all(hdrs, idx, name, value, len))
        return -1;
    return 0;
}

static const struct hr_msg_ops kmsg_ops = {kmsg_header, kmsg_header_at};

static struct kmsg *kmsg_wrap(struct kafka_source *src, rd_kafka_message_t *rkm)
{
    struct kmsg *km = src->free_msgs;

    if (km)
        src->free_msgs = km->next_free;
    else
        km = malloc(sizeof(*km));
    HR_ASSERT(km);
    memset(km, 0, sizeof(*km));
    km->rkm = rkm;
    km->msg.topic = rd_kafka_topic_name(rkm->rkt);
    km->msg.partition = rkm->partition;
    km->msg.offset = rkm->offset;
    km->msg.key = rkm->key;
    km->msg.key_len = rkm->key_len;
    km->msg.value = rkm->payload;
    km->msg.value_len = rkm->len;
    km->msg.timestamp_ms = rd_kafka_message_timestamp(rkm, NULL);
    km->msg.ops = &kmsg_ops;
    return km;
}

static void kmsg_free(struct kafka_source *src, struct hr_msg *msg)
{
    struct kmsg *km = (struct kmsg *)msg;

    rd_kafka_message_destroy(km->rkm);
    km->rkm = NULL;
    km->next_free = src->free_msgs;
    src->free_msgs = km;
}

static size_t kafka_poll(struct hr_source *base,
                         struct hr_msg **msgs,
                         size_t max,
                         size_t max_bytes,
                         int wait_ms)
{
    struct kafka_source *src = (struct kafka_source *)base;

    int64_t deadline = hr_time_mono_ms() + wait_ms;
    size_t n = 0, bytes = 0;

    rd_kafka_poll(src->rk, 0);
    while (n < max && bytes < max_bytes) {
        int64_t left = deadline - hr_time_mono_ms();
        rd_kafka_message_t *rkm =
            rd_kafka_consumer_poll(src->rk, left > 0 ? (int)left : 0);

        if (!rkm) {
            if (left <= 0)
                break;
            continue;
        }
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                hr_metric_add(src->errors, NULL, 1);
                hr_log_warn(
                    "consume error",
                    HR_LOG_STR("topic",
                               rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : NULL),
                    HR_LOG_I32("partition", rkm->partition),
                    HR_LOG_STR("err", rd_kafka_message_errstr(rkm)));
            }
            rd_kafka_message_destroy(rkm);
            continue;
        }
        src->all_brokers_down = false;
        /* The window restarts at the first message: a batch fills for at
         * most @wait_ms once data flows. */
        if (!n)
            deadline = hr_time_mono_ms() + wait_ms;
        msgs[n++] = &kmsg_wrap(src, rkm)->msg;
        bytes += rkm->len;
        if (!(n % 256))
            fetch_nudge(src);
    }
    fetch_nudge(src);
    return n;
}

static void kafka_serve(struct hr_source *base)
{
    struct kafka_source *src = (struct kafka_source *)base;

    rd_kafka_poll(src->rk, 0);
}

/* Whether @rkm's partition is still assigned to this consumer (after a
 * rebalance during a long pause it may not be). */
static bool owns(struct kafka_source *src, const rd_kafka_message_t *rkm)
{
    return rd_kafka_topic_partition_list_find(src->assigned,
                                              rd_kafka_topic_name(rkm->rkt),
                                              rkm->partition) != NULL;
}

/* Store, for each partition still assigned, the highest offset + 1 of
 * @msgs, then free them. */
static int kafka_ack(struct hr_source *base,
                     struct hr_msg *const *msgs,
                     size_t n,
                     char *errstr,
                     size_t errstr_size)
{
    struct kafka_source *src = (struct kafka_source *)base;
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t err;
    int rc = 0;

    if (!n)
        return 0;
    list = rd_kafka_topic_partition_list_new(16);
    /* A batch holds runs of one partition's messages: the lists are
     * searched (linearly) once per run, not per message. */
    for (size_t i = 0, j; i < n; i = j) {
        const rd_kafka_message_t *rkm = ((struct kmsg *)msgs[i])->rkm;
        const char *topic = rd_kafka_topic_name(rkm->rkt);
        int64_t next = rkm->offset + 1;
        rd_kafka_topic_partition_t *tp;

        for (j = i + 1; j < n; j++) {
            const rd_kafka_message_t *o = ((struct kmsg *)msgs[j])->rkm;

            if (o->rkt != rkm->rkt || o->partition != rkm->partition)
                break;
            if (o->offset + 1 > next)
                next = o->offset + 1;
        }
        if (!owns(src, rkm))
            continue;
        tp = rd_kafka_topic_partition_list_find(list, topic, rkm->partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(list, topic, rkm->partition);
        if (next > tp->offset)
            tp->offset = next;
    }
    if (list->cnt) {
        err = rd_kafka_offsets_store(src->rk, list);
        if (err && err != RD_KAFKA_RESP_ERR__STATE) {
            snprintf(errstr, errstr_size, "cannot store offsets: %s",
                     rd_kafka_err2str(err));
            rc = -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    for (size_t i = 0; i < n; i++)
        kmsg_free(src, msgs[i]);
    return rc;
}

/* Kafka gives back what is not stored by itself (after a rebalance or a
 * restart, from the committed offset). */
static void
kafka_abandon(struct hr_source *base, struct hr_msg *const *msgs, size_t n)
{
    struct kafka_source *src = (struct kafka_source *)base;

    for (size_t i = 0; i < n; i++)
        kmsg_free(src, msgs[i]);
}

static bool
kafka_is_ready(struct hr_source *base, char *reason, size_t reason_size)
{
    struct kafka_source *src = (struct kafka_source *)base;

    if (src->fatal) {
        snprintf(reason, reason_size, "kafka fatal error");
        return false;
    }
    if (src->all_brokers_down) {
        snprintf(reason, reason_size, "kafka brokers unreachable: %s",
                 src->last_error);
        return false;
    }
    if (!src->assigned->cnt) {
        snprintf(reason, reason_size, "waiting for a partition assignment");
        return false;
    }
    return true;
}

static bool kafka_is_fatal(const struct hr_source *base)
{
    return ((const struct kafka_source *)base)->fatal;
}

static bool commit_is_retriable(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
        return true;
    default:
        return false;
    }
}

/* A consumer left open at shutdown (see hr_source_close()), kept reachable:
 * the process is about to exit anyway. */
static struct kafka_source *left_open;

/* rd_kafka_consumer_close() on its own thread; @done says it returned. */
struct closer {
    rd_kafka_t *rk;
    atomic_bool done;
};

static void *close_thread(void *arg)
{
    struct closer *c = arg;

    rd_kafka_consumer_close(c->rk);
    atomic_store(&c->done, true);
    return NULL;
}

/*
 * Close the consumer (leave the group) by @deadline_ms (monotonic):
 * librdkafka 2.0.2 waits forever for the group to terminate when the
 * coordinator has gone away meanwhile. Returns 0 when closed, -1 when it
 * was left running (the process is about to exit; the closer stays
 * allocated for the thread).
 */
static int close_within(rd_kafka_t *rk, int64_t deadline_ms)
{
    struct closer *c = calloc(1, sizeof(*c));
    pthread_t thread;

    if (c)
        c->rk = rk;
    if (!c || pthread_create(&thread, NULL, close_thread, c)) {
        free(c);
        rd_kafka_consumer_close(rk);
        return 0;
    }
    while (!atomic_load(&c->done) && hr_time_mono_ms() < deadline_ms)
        hr_time_sleep_ms(20);
    if (!atomic_load(&c->done)) {
        pthread_detach(thread);
        return -1;
    }
    pthread_join(thread, NULL);
    free(c);
    return 0;
}

/*
 * Commit the stored offsets, waiting at most until @deadline_ms: the
 * synchronous rd_kafka_commit() waits forever for a coordinator when the
 * broker went away meanwhile.
 */
static rd_kafka_resp_err_t commit_within(rd_kafka_t *rk, int64_t deadline_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_resp_err_t err;

    if (!q)
        return RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
    err = rd_kafka_commit_queue(rk, NULL, q, NULL, NULL);
    while (!err) {
        int64_t left = deadline_ms - hr_time_mono_ms();
        rd_kafka_event_t *ev;

        if (left <= 0) {
            err = RD_KAFKA_RESP_ERR__TIMED_OUT;
            break;
        }
        ev = rd_kafka_queue_poll(q, left < 100 ? (int)left : 100);
        if (!ev)
            continue;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
            err = rd_kafka_event_error(ev);
            rd_kafka_event_destroy(ev);
            break;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return err;
}

static void free_msgs(struct kafka_source *src)
{
    while (src->free_msgs) {
        struct kmsg *km = src->free_msgs;

        src->free_msgs = km->next_free;
        free(km);
    }
}

/*
 * Commit stored offsets synchronously, retrying retriable errors
 * (REBALANCE_IN_PROGRESS, coordinator moves) until @deadline_ms, then leave
 * the group and destroy the consumer.
 */
static int kafka_close(struct hr_source *base, int64_t deadline_ms)
{
    struct kafka_source *src = (struct kafka_source *)base;
    /* the last 1.5 s are for the group's leaving and the producer's flush */
    int64_t commit_deadline = deadline_ms - 1500;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int attempt = 0;

    free_msgs(src);
    for (;;) {
        err = commit_within(src->rk, commit_deadline);
        if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || !err)
            break;
        attempt++;
        hr_log_warn("commit failed", HR_LOG_STR("err", rd_kafka_err2str(err)),
                    HR_LOG_I64("attempt", attempt));
        if (!commit_is_retriable(err) ||
            hr_time_mono_ms() + 200 > commit_deadline)
            break;
        hr_time_sleep_ms(100);
    }
    /* librdkafka before 2.2.1 aborts when a cooperative-sticky consumer is
     * closed before its first assignment (confluentinc/librdkafka#4312):
     * wait a little for the join (messages that arrive meanwhile
     * are dropped unprocessed, their offsets unstored), else leave without
     * closing — nothing was consumed, so there is nothing to commit. */
    for (int64_t until = hr_time_mono_ms() + 3000;
         !src->joined && hr_time_mono_ms() < until &&
         hr_time_mono_ms() + 1000 < deadline_ms;) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(src->rk, 100);

        if (rkm)
            rd_kafka_message_destroy(rkm);
    }
    if (!src->joined) {
        left_open = src;
        hr_log_warn("group never joined; leaving without closing the "
                    "consumer (librdkafka would abort)");
        return err && err != RD_KAFKA_RESP_ERR__NO_OFFSET ? -1 : 0;
    }
    if (src->cq)
        rd_kafka_queue_destroy(src->cq);
    /* a second of the budget stays for the producer's flush */
    if (close_within(src->rk, deadline_ms - 1000 > hr_time_mono_ms() + 500
                                  ? deadline_ms - 1000
                                  : hr_time_mono_ms() + 500)) {
        left_open = src;
        hr_log_warn("consumer close did not finish within the shutdown "
                    "budget (broker unreachable?); leaving without it: the "
                    "group reassigns after its session timeout");
        return err && err != RD_KAFKA_RESP_ERR__NO_OFFSET ? -1 : 0;
    }
    rd_kafka_destroy(src->rk);
    rd_kafka_topic_partition_list_destroy(src->assigned);
    free(src);
    return err && err != RD_KAFKA_RESP_ERR__NO_OFFSET ? -1 : 0;
}

static const struct hr_source_ops kafka_ops = {
    .kind = "kafka",
    .poll = kafka_poll,
    .serve = kafka_serve,
    .ack = kafka_ack,
    .abandon = kafka_abandon,
    .is_ready = kafka_is_ready,
    .is_fatal = kafka_is_fatal,
    .close = kafka_close,
};
