/* Kafka helpers for tests: an idempotent producer that counts failed
 * deliveries, whole-topic reads and message counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hr_banned.h"

#define HX_KAFKA_REQUEST_MS 5000
#define HX_PRODUCE_RETRY_MS 30000
#define HX_CONSUME_POLL_MS  100

/* rd_kafka_opaque() of producers from hx_producer_new*(). */
struct hx_producer_state {
    long delivered;
    long failed;
    bool reported; /* first failure printed */
};

static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct hx_producer_state *state = opaque;

    (void)rk;
    if (!rkm->err) {
        state->delivered++;
        return;
    }
    state->failed++;
    if (!state->reported) {
        state->reported = true;
        fprintf(stderr, "hx: delivery to '%s' failed: %s\n",
                rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
    }
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *val)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, name, val, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "hx: librdkafka property '%s': %s\n", name, errstr);
        return -1;
    }
    return 0;
}

rd_kafka_t *hx_producer_new_with(const char *brokers, const char *const *props)
{
    struct hx_producer_state *state;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    char errstr[512];

    state = calloc(1, sizeof(*state));
    if (!state)
        return NULL;
    conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", brokers) ||
        conf_set(conf, "enable.idempotence", "true") ||
        conf_set(conf, "linger.ms", "5"))
        goto out_destroy_conf;
    for (size_t i = 0; props && props[i] && props[i + 1]; i += 2) {
        if (conf_set(conf, props[i], props[i + 1]))
            goto out_destroy_conf;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, state);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "hx: cannot create producer: %s\n", errstr);
        goto out_destroy_conf;
    }
    conf = NULL; /* owned by rk */
    return rk;

out_destroy_conf:
    rd_kafka_conf_destroy(conf);
    free(state);
    return NULL;
}

rd_kafka_t *hx_producer_new(const char *brokers)
{
    return hx_producer_new_with(brokers, NULL);
}

int hx_produce(rd_kafka_t *rk,
               const char *topic,
               const void *key,
               size_t key_len,
               const void *value,
               size_t value_len,
               const char *const *headers)
{
    int64_t deadline = hx_now_ms() + HX_PRODUCE_RETRY_MS;

    for (;;) {
        rd_kafka_headers_t *hdrs = NULL;
        rd_kafka_resp_err_t err;

        if (headers) {
            hdrs = rd_kafka_headers_new(8);
            for (size_t i = 0; headers[i] && headers[i + 1]; i += 2)
                rd_kafka_header_add(hdrs, headers[i], -1, headers[i + 1], -1);
        }
        /* The casts drop const for the varargs API; RD_KAFKA_MSG_F_COPY
         * means librdkafka only reads them. */
        err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_KEY((void *)(uintptr_t)key, key_len),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)value, value_len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
            RD_KAFKA_V_END);
        if (!err)
            return 0; /* hdrs now owned by the message */
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || hx_now_ms() >= deadline) {
            fprintf(stderr, "hx: cannot produce to '%s': %s\n", topic,
                    rd_kafka_err2str(err));
            return -1;
        }
        rd_kafka_poll(rk, 100);
    }
}

int hx_producer_flush(rd_kafka_t *rk, int timeout_ms)
{
    struct hx_producer_state *state = rd_kafka_opaque(rk);
    rd_kafka_resp_err_t err;
    int queued, rc;

    err = rd_kafka_flush(rk, timeout_ms);
    queued = rd_kafka_outq_len(rk);
    if (err || queued > 0)
        fprintf(stderr, "hx: flush timed out with %d message(s) queued\n",
                queued);
    rc = (err || queued > 0) ? -1 : (int)state->failed;
    state->failed = 0;
    return rc;
}

int hx_producer_flush_free(rd_kafka_t *rk, int timeout_ms)
{
    struct hx_producer_state *state = rd_kafka_opaque(rk);
    int rc = hx_producer_flush(rk, timeout_ms);

    rd_kafka_destroy(rk);
    free(state);
    return rc;
}

/* A client for metadata, watermarks and the simple (group-less) consumer:
 * without group.id it sends no FindCoordinator or JoinGroup request, so it
 * neither waits for a group join nor eats errors a test injects for the
 * code under test. */
static rd_kafka_t *reader_new(const char *brokers)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char errstr[512];

    if (conf_set(conf, "bootstrap.servers", brokers) ||
        conf_set(conf, "client.id", "hx-reader") ||
        conf_set(conf, "enable.partition.eof", "true") ||
        conf_set(conf, "auto.offset.reset", "earliest") ||
        conf_set(conf, "fetch.wait.max.ms", "100")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "hx: cannot create consumer: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return rk;
}

/* Partition count of @rkt's topic, or -1 (printed). */
static int topic_partition_cnt(rd_kafka_t *rk, rd_kafka_topic_t *rkt)
{
    const rd_kafka_metadata_t *md;
    rd_kafka_resp_err_t err;
    int cnt = -1;

    err = rd_kafka_metadata(rk, 0, rkt, &md, HX_KAFKA_REQUEST_MS);
    if (err) {
        fprintf(stderr, "hx: metadata for '%s': %s\n", rd_kafka_topic_name(rkt),
                rd_kafka_err2str(err));
        return -1;
    }
    if (md->topic_cnt != 1 || md->topics[0].err)
        fprintf(stderr, "hx: topic '%s': %s\n", rd_kafka_topic_name(rkt),
                md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err)
                                   : "not in metadata");
    else
        cnt = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return cnt;
}

int hx_topic_partitions(const char *brokers, const char *topic)
{
    rd_kafka_t *rk = reader_new(brokers);
    rd_kafka_topic_t *rkt;
    int cnt;

    if (!rk)
        return -1;
    rkt = rd_kafka_topic_new(rk, topic, NULL);
    cnt = topic_partition_cnt(rk, rkt);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return cnt;
}

/* Low and high watermark of every partition of @topic (caller frees both
 * arrays). Returns the partition count or -1. */
static int
watermarks(rd_kafka_t *rk, const char *topic, int64_t **low, int64_t **high)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int cnt = topic_partition_cnt(rk, rkt);

    rd_kafka_topic_destroy(rkt);
    if (cnt < 0)
        return -1;
    *low = calloc((size_t)cnt + 1, sizeof(**low));
    *high = calloc((size_t)cnt + 1, sizeof(**high));
    if (!*low || !*high)
        goto out_fail;
    for (int32_t p = 0; p < cnt; p++) {
        rd_kafka_resp_err_t err;

        err = rd_kafka_query_watermark_offsets(
            rk, topic, p, &(*low)[p], &(*high)[p], HX_KAFKA_REQUEST_MS);
        if (err) {
            fprintf(stderr, "hx: watermarks of '%s' [%d]: %s\n", topic, p,
                    rd_kafka_err2str(err));
            goto out_fail;
        }
    }
    return cnt;

out_fail:
    free(*low);
    free(*high);
    *low = *high = NULL;
    return -1;
}

int64_t hx_topic_count(const char *brokers, const char *topic)
{
    rd_kafka_t *rk = reader_new(brokers);
    int64_t *low, *high, sum = 0;
    int cnt;

    if (!rk)
        return -1;
    cnt = watermarks(rk, topic, &low, &high);
    rd_kafka_destroy(rk);
    if (cnt < 0)
        return -1;
    for (int p = 0; p < cnt; p++)
        sum += high[p] - low[p];
    free(low);
    free(high);
    return sum;
}

int hx_consume_all(const char *brokers,
                   const char *topic,
                   int idle_ms,
                   int timeout_ms,
                   hx_msg_fn *fn,
                   void *opaque)
{
    rd_kafka_t *rk = reader_new(brokers);
    rd_kafka_topic_t *rkt = NULL;
    rd_kafka_queue_t *rkqu = NULL;
    int64_t *low = NULL, *high = NULL;
    int64_t start = hx_now_ms(), last = start;
    int cnt, pending = 0, seen = -1;
    enum { P_IDLE, P_READING, P_DONE } *state = NULL;
    bool stop = false;

    if (!rk)
        return -1;
    cnt = watermarks(rk, topic, &low, &high);
    if (cnt < 0)
        goto out_destroy;
    state = calloc((size_t)cnt + 1, sizeof(*state));
    rkt = rd_kafka_topic_new(rk, topic, NULL);
    rkqu = rd_kafka_queue_new(rk);
    if (!state)
        goto out_destroy;
    for (int32_t p = 0; p < cnt; p++) {
        if (high[p] <= low[p])
            continue; /* nothing to read there */
        if (rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING,
                                         rkqu)) {
            fprintf(stderr, "hx: cannot consume '%s' [%d]: %s\n", topic, p,
                    rd_kafka_err2str(rd_kafka_last_error()));
            goto out_stop;
        }
        state[p] = P_READING;
        pending++;
    }

    seen = 0;
    while (pending > 0 && !stop) {
        rd_kafka_message_t *rkm;
        int64_t now = hx_now_ms();

        if (timeout_ms >= 0 && now - start >= timeout_ms) {
            fprintf(stderr,
                    "hx: reading '%s' timed out, %d partition(s) "
                    "unfinished\n",
                    topic, pending);
            break;
        }
        if (idle_ms > 0 && now - last >= idle_ms)
            break;
        rkm = rd_kafka_consume_queue(rkqu, HX_CONSUME_POLL_MS);
        if (!rkm)
            continue;
        last = hx_now_ms();
        if (rkm->partition < 0 || rkm->partition >= cnt ||
            state[rkm->partition] != P_READING) {
            rd_kafka_message_destroy(rkm);
            continue;
        }
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (rkm->offset >= high[rkm->partition]) {
                state[rkm->partition] = P_DONE;
                pending--;
            }
        } else if (rkm->err) {
            fprintf(stderr, "hx: reading '%s' [%d]: %s\n", topic,
                    rkm->partition, rd_kafka_message_errstr(rkm));
        } else if (rkm->offset < high[rkm->partition]) {
            seen++;
            if (fn && fn(opaque, rkm))
                stop = true;
            if (rkm->offset + 1 >= high[rkm->partition]) {
                state[rkm->partition] = P_DONE;
                pending--;
            }
        }
        rd_kafka_message_destroy(rkm);
    }

out_stop:
    for (int32_t p = 0; p < cnt; p++) {
        if (state[p] != P_IDLE)
            rd_kafka_consume_stop(rkt, p);
    }
out_destroy:
    free(state);
    free(low);
    free(high);
    if (rkqu)
        rd_kafka_queue_destroy(rkqu);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return seen;
}
