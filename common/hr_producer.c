#include "hr_producer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_banned.h"
#include "hr_kafka.h"
#include "hr_time.h"

struct hr_producer {
    rd_kafka_t *rk;
    /* Records of the current epoch: queued, and failed for good. */
    int64_t inflight;
    int64_t failed;
    char first_error[256];
};

static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct hr_producer *p = opaque;

    (void)rk;
    p->inflight--;
    if (rkm->err) {
        if (!p->failed)
            snprintf(p->first_error, sizeof(p->first_error),
                     "delivery to '%s' failed: %s",
                     rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
        p->failed++;
    }
}

struct hr_producer *
hr_producer_new(const struct hr_conf *cfg, char *errstr, size_t errstr_size)
{
    static const char *const defaults[] = {
        "enable.idempotence",
        "true",
        "linger.ms",
        "5",
        "compression.codec",
        "lz4",
        "batch.num.messages",
        "10000",
        "queue.buffering.max.kbytes",
        "16384",
        "message.timeout.ms",
        "60000",
        "client.id",
        "herald-producer",
        NULL,
    };
    struct hr_producer *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *conf;

    if (!p) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    conf = hr_kafka_conf_new(cfg, defaults, errstr, errstr_size);
    if (!conf)
        goto out_free;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        goto out_free;
    }
    conf = NULL; /* owned by p->rk now */
    return p;
out_free:
    free(p);
    return NULL;
}

int hr_producer_free(struct hr_producer *p, int timeout_ms)
{
    int left;

    if (!p)
        return 0;
    rd_kafka_flush(p->rk, timeout_ms);
    left = rd_kafka_outq_len(p->rk);
    rd_kafka_destroy(p->rk);
    free(p);
    return left;
}

int hr_producer_send(struct hr_producer *p,
                     const char *topic,
                     const void *key,
                     size_t key_len,
                     const void *value,
                     size_t value_len,
                     rd_kafka_headers_t *hdrs,
                     char *errstr,
                     size_t errstr_size)
{
    int64_t deadline = hr_time_mono_ms() + 30000;
    rd_kafka_resp_err_t err;

    for (;;) {
        err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)value, value_len),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
            hr_time_mono_ms() > deadline)
            break;
        rd_kafka_poll(p->rk, 50);
    }
    if (err) {
        snprintf(errstr, errstr_size, "cannot produce to '%s': %s", topic,
                 rd_kafka_err2str(err));
        return -1;
    }
    p->inflight++;
    return 0;
}

int hr_producer_barrier(struct hr_producer *p,
                        int timeout_ms,
                        char *errstr,
                        size_t errstr_size)
{
    int64_t deadline = hr_time_mono_ms() + timeout_ms;
    int64_t bad;

    while (p->inflight > 0 && hr_time_mono_ms() < deadline)
        rd_kafka_flush(p->rk, 100);
    rd_kafka_poll(p->rk, 0);
    bad = p->failed + (p->inflight > 0 ? p->inflight : 0);
    if (bad && errstr)
        snprintf(errstr, errstr_size, "%s",
                 p->failed ? p->first_error
                           : "delivery not acknowledged in time");
    /* Unacknowledged records stay in flight: their reports still arrive and
     * are counted against the next epoch's inflight, so never below 0. */
    p->failed = 0;
    p->first_error[0] = '\0';
    if (p->inflight < 0)
        p->inflight = 0;
    return bad > INT32_MAX ? INT32_MAX : (int)bad;
}

void hr_producer_poll(struct hr_producer *p)
{
    rd_kafka_poll(p->rk, 0);
}

rd_kafka_t *hr_producer_handle(struct hr_producer *p)
{
    return p->rk;
}
