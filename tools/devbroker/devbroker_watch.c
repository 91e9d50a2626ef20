#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devbroker.h"
#include "hr_banned.h"
#include "hr_log.h"

/* How long one scan may wait for the cluster. Scans run on their own thread,
 * so a down broker delays only the next scan, never a control reply. */
#define WATCH_REQUEST_TIMEOUT_MS 1500

/* Lowest low watermark seen so far for each partition of one topic. A new
 * partition starts at 0: in the mock cluster the low watermark only rises
 * when old message sets are dropped on append (there is no retention and no
 * DeleteRecords), so any rise is data that nobody may have read. */
struct watch_topic {
    char *name;
    int32_t partition_cnt;
    int64_t *low;
};

struct devbroker_watch {
    rd_kafka_t *rk;
    int interval_ms;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;                   /* under lock */
    struct timespec pause_until; /* CLOCK_MONOTONIC, under lock */

    /* Only touched by the watch thread. */
    struct watch_topic *topics;
    size_t topic_cnt;
    size_t topic_cap;
    bool failing; /* last scan failed: log only transitions */
};

static void timespec_add_ms(struct timespec *ts, int ms)
{
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool timespec_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static struct watch_topic *watch_topic_get(struct devbroker_watch *watch,
                                           const char *name,
                                           int32_t partition_cnt)
{
    struct watch_topic *topic;

    for (size_t i = 0; i < watch->topic_cnt; i++) {
        if (!strcmp(watch->topics[i].name, name))
            return &watch->topics[i];
    }
    if (watch->topic_cnt == watch->topic_cap) {
        size_t cap = watch->topic_cap ? watch->topic_cap * 2 : 32;
        struct watch_topic *v = realloc(watch->topics, cap * sizeof(*v));

        if (!v)
            return NULL;
        watch->topics = v;
        watch->topic_cap = cap;
    }
    topic = &watch->topics[watch->topic_cnt];
    topic->name = strdup(name);
    topic->low = calloc((size_t)partition_cnt, sizeof(*topic->low));
    if (!topic->name || !topic->low) {
        free(topic->name);
        free(topic->low);
        return NULL;
    }
    topic->partition_cnt = partition_cnt;
    watch->topic_cnt++;
    return topic;
}

static void watch_set_failing(struct devbroker_watch *watch,
                              const char *what,
                              rd_kafka_resp_err_t err)
{
    if (watch->failing)
        return;
    watch->failing = true;
    hr_log_warn("eviction watch cannot read watermarks",
                HR_LOG_STR("step", what),
                HR_LOG_STR("err", rd_kafka_err2str(err)));
}

/* Compare every partition's low watermark with the last one seen. */
static void watch_check(struct devbroker_watch *watch,
                        const rd_kafka_metadata_t *md,
                        const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *part = &parts->elems[i];
        struct watch_topic *topic = NULL;
        int32_t partition_cnt = 0;

        if (part->err || part->offset < 0)
            continue;
        for (int t = 0; t < md->topic_cnt; t++) {
            if (!strcmp(md->topics[t].topic, part->topic)) {
                partition_cnt = md->topics[t].partition_cnt;
                break;
            }
        }
        if (part->partition >= partition_cnt)
            continue;
        topic = watch_topic_get(watch, part->topic, partition_cnt);
        if (!topic || part->partition >= topic->partition_cnt)
            continue;
        if (part->offset > topic->low[part->partition]) {
            int64_t evicted = part->offset - topic->low[part->partition];

            topic->low[part->partition] = part->offset;
            hr_log_warn(
                "broker evicted messages", HR_LOG_STR("topic", part->topic),
                HR_LOG_I32("partition", part->partition),
                HR_LOG_I64("low_watermark", part->offset),
                HR_LOG_I64("evicted", evicted),
                HR_LOG_STR("hint", "the mock cluster keeps at most 5 MiB and "
                                   "100000 message sets per partition; use "
                                   "more partitions or producer compression"));
        }
    }
}

/* One scan: list every topic, then ask for the earliest offset of every
 * partition in one ListOffsets round per broker (offsets_for_times with
 * RD_KAFKA_OFFSET_BEGINNING as the timestamp), instead of one
 * query_watermark_offsets() round trip per partition. */
static void watch_scan(struct devbroker_watch *watch)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_resp_err_t err;

    err = rd_kafka_metadata(watch->rk, 1, NULL, &md, WATCH_REQUEST_TIMEOUT_MS);
    if (err) {
        watch_set_failing(watch, "metadata", err);
        return;
    }
    parts = rd_kafka_topic_partition_list_new(64);
    for (int t = 0; t < md->topic_cnt; t++) {
        const rd_kafka_metadata_topic_t *mt = &md->topics[t];

        if (mt->err || !strncmp(mt->topic, "__", 2))
            continue;
        for (int p = 0; p < mt->partition_cnt; p++)
            rd_kafka_topic_partition_list_add(parts, mt->topic,
                                              mt->partitions[p].id)
                ->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (parts->cnt > 0) {
        err = rd_kafka_offsets_for_times(watch->rk, parts,
                                         WATCH_REQUEST_TIMEOUT_MS);
        if (err) {
            watch_set_failing(watch, "list offsets", err);
            goto out_free_parts;
        }
        watch_check(watch, md, parts);
    }
    if (watch->failing) {
        watch->failing = false;
        hr_log_info("eviction watch recovered");
    }
out_free_parts:
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_metadata_destroy(md);
}

static void *watch_main(void *arg)
{
    struct devbroker_watch *watch = arg;

    pthread_mutex_lock(&watch->lock);
    while (!watch->stop) {
        struct timespec now, deadline;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        timespec_add_ms(&deadline, watch->interval_ms);
        while (!watch->stop &&
               pthread_cond_timedwait(&watch->cond, &watch->lock, &deadline) !=
                   ETIMEDOUT)
            ;
        if (watch->stop)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (timespec_before(&now, &watch->pause_until))
            continue;
        pthread_mutex_unlock(&watch->lock);
        watch_scan(watch);
        pthread_mutex_lock(&watch->lock);
    }
    pthread_mutex_unlock(&watch->lock);
    return NULL;
}

static rd_kafka_t *
watch_client_new(const char *bootstraps, char *errstr, size_t errstr_size)
{
    /* No periodic metadata refresh: every request this client sends could
     * take an error a test injected for its own clients. */
    static const struct {
        const char *name, *value;
    } props[] = {
        {"client.id", "herald-devbroker-watch"},
        {"topic.metadata.refresh.interval.ms", "-1"},
        {"log.connection.close", "false"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr,
                          errstr_size) != RD_KAFKA_CONF_OK)
        goto out_destroy_conf;
    for (size_t i = 0; i < HR_ARRAY_SIZE(props); i++) {
        if (rd_kafka_conf_set(conf, props[i].name, props[i].value, errstr,
                              errstr_size) != RD_KAFKA_CONF_OK)
            goto out_destroy_conf;
    }
    rd_kafka_conf_set_log_cb(conf, devbroker_log_cb);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk)
        goto out_destroy_conf;
    conf = NULL; /* owned by rk */
    return rk;

out_destroy_conf:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

struct devbroker_watch *devbroker_watch_start(const char *bootstraps,
                                              int interval_ms,
                                              char *errstr,
                                              size_t errstr_size)
{
    struct devbroker_watch *watch;
    pthread_condattr_t cattr;
    int rc;

    watch = calloc(1, sizeof(*watch));
    if (!watch) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    watch->interval_ms = interval_ms;
    watch->rk = watch_client_new(bootstraps, errstr, errstr_size);
    if (!watch->rk)
        goto out_free_watch;

    pthread_mutex_init(&watch->lock, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&watch->cond, &cattr);
    pthread_condattr_destroy(&cattr);

    rc = pthread_create(&watch->thread, NULL, watch_main, watch);
    if (rc) {
        snprintf(errstr, errstr_size, "cannot start eviction watch: %s",
                 strerror(rc));
        goto out_destroy_sync;
    }
    return watch;

out_destroy_sync:
    pthread_cond_destroy(&watch->cond);
    pthread_mutex_destroy(&watch->lock);
    rd_kafka_destroy(watch->rk);
out_free_watch:
    free(watch);
    return NULL;
}

void devbroker_watch_pause(struct devbroker_watch *watch, int ms)
{
    struct timespec until;

    if (!watch)
        return;
    clock_gettime(CLOCK_MONOTONIC, &until);
    timespec_add_ms(&until, ms);
    pthread_mutex_lock(&watch->lock);
    if (ms <= 0 || timespec_before(&watch->pause_until, &until))
        watch->pause_until = until;
    pthread_mutex_unlock(&watch->lock);
}

void devbroker_watch_stop(struct devbroker_watch *watch)
{
    if (!watch)
        return;
    pthread_mutex_lock(&watch->lock);
    watch->stop = true;
    pthread_cond_signal(&watch->cond);
    pthread_mutex_unlock(&watch->lock);
    pthread_join(watch->thread, NULL);

    rd_kafka_destroy(watch->rk);
    for (size_t i = 0; i < watch->topic_cnt; i++) {
        free(watch->topics[i].name);
        free(watch->topics[i].low);
    }
    free(watch->topics);
    pthread_cond_destroy(&watch->cond);
    pthread_mutex_destroy(&watch->lock);
    free(watch);
}
