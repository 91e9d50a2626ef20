#include "hr_producer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_conf.h"
#include "hr_hdrs.h"
#include "hr_kafka.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Records of one epoch: queued, and failed for good. */
struct hr_epoch {
    uint64_t id;
    bool open; /* current or sealed, not yet released */
    int64_t inflight;
    int64_t failed;
    char first_error[256];
};

/* Epochs alive at once: the current one, the runtime's sealed batch slots
 * and a timer's (the guard's redeliveries in flight), with room to spare.
 * A slot is found by id, so one epoch may outlive many later ones. */
#define HR_EPOCHS 16

/* Topic handles kept (a worker writes to a handful of topics). */
#define HR_TOPICS 64

struct hr_producer {
    rd_kafka_t *rk;       /* NULL: no brokers, records are discarded */
    uint64_t current;     /* the epoch new records join */
    struct hr_epoch *cur; /* its slot */
    struct hr_epoch epochs[HR_EPOCHS];
    rd_kafka_topic_t *topics[HR_TOPICS];
    size_t ntopics;
    uint64_t discarded;
};

/*
 * The handle of @topic, made on its first record: rd_kafka_topic_new()
 * asks for the topic's metadata at once, where librdkafka 2.0.2's
 * producev() by name waits for its one-second scan of unknown topics (the
 * first record to each topic took a second). NULL when the table is full
 * (the caller then makes a handle for the one record).
 */
static rd_kafka_topic_t *topic_of(struct hr_producer *p, const char *topic)
{
    for (size_t i = 0; i < p->ntopics; i++) {
        if (!strcmp(rd_kafka_topic_name(p->topics[i]), topic))
            return p->topics[i];
    }
    if (p->ntopics == HR_TOPICS)
        return NULL;
    p->topics[p->ntopics] = rd_kafka_topic_new(p->rk, topic, NULL);
    return p->topics[p->ntopics] ? p->topics[p->ntopics++] : NULL;
}

static struct hr_epoch *epoch_of(struct hr_producer *p, uint64_t id)
{
    for (size_t i = 0; i < HR_EPOCHS; i++) {
        if (p->epochs[i].open && p->epochs[i].id == id)
            return &p->epochs[i];
    }
    return NULL;
}

static void epoch_open(struct hr_producer *p, uint64_t id)
{
    struct hr_epoch *e = NULL;

    for (size_t i = 0; i < HR_EPOCHS && !e; i++) {
        if (!p->epochs[i].open)
            e = &p->epochs[i];
    }
    /* Sealed epochs are settled or forgotten by their owners, who keep
     * far fewer alive than there are slots. */
    HR_ASSERT(e);
    memset(e, 0, sizeof(*e));
    e->id = id;
    e->open = true;
    p->current = id;
    p->cur = e;
}

static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct hr_producer *p = opaque;
    struct hr_epoch *e = epoch_of(p, (uint64_t)(uintptr_t)rkm->_private);

    (void)rk;
    if (!e)
        return; /* its epoch was given up on (a barrier timed out) */
    e->inflight--;
    if (rkm->err) {
        if (!e->failed)
            snprintf(e->first_error, sizeof(e->first_error),
                     "delivery to '%s' failed: %s",
                     rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
        e->failed++;
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
    epoch_open(p, 1);
    if (!hr_conf_str(cfg, "HERALD_KAFKA_BROKERS"))
        return p; /* discarding: an SQS worker without Kafka */
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
    if (!p->rk) {
        free(p);
        return 0;
    }
    rd_kafka_flush(p->rk, timeout_ms);
    left = rd_kafka_outq_len(p->rk);
    for (size_t i = 0; i < p->ntopics; i++)
        rd_kafka_topic_destroy(p->topics[i]);
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
    rd_kafka_topic_t *rkt, *tmp = NULL;
    rd_kafka_resp_err_t err;

    if (!p->rk) {
        if (hdrs) /* taken over: this is a success */
            rd_kafka_headers_destroy(hdrs);
        p->discarded++;
        return 0;
    }
    rkt = topic_of(p, topic);
    if (!rkt)
        rkt = tmp = rd_kafka_topic_new(p->rk, topic, NULL);
    if (!rkt) {
        snprintf(errstr, errstr_size, "cannot produce to '%s': %s", topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    for (;;) {
        err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_RKT(rkt),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)value, value_len),
            RD_KAFKA_V_HEADERS(hdrs),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)p->current), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
            hr_time_mono_ms() > deadline)
            break;
        rd_kafka_poll(p->rk, 50);
    }
    if (tmp)
        rd_kafka_topic_destroy(tmp);
    if (err) {
        snprintf(errstr, errstr_size, "cannot produce to '%s': %s", topic,
                 rd_kafka_err2str(err));
        return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? HR_PRODUCE_REFUSED
                                                           : -1;
    }
    p->cur->inflight++;
    return 0;
}

uint64_t hr_producer_seal(struct hr_producer *p)
{
    uint64_t sealed = p->current;

    epoch_open(p, sealed + 1);
    return sealed;
}

/* Serve delivery reports until @e settles or @deadline (monotonic ms).
 * Polls rather than rd_kafka_flush(), which returns only once every
 * queued record is delivered: waiting for an old batch's outputs then
 * also waited for the newer batches' (up to its whole timeout). */
static void
epoch_wait(struct hr_producer *p, const struct hr_epoch *e, int64_t deadline)
{
    int64_t left;

    if (!p->rk)
        return;
    rd_kafka_poll(p->rk, 0);
    while (e->inflight > 0 && (left = deadline - hr_time_mono_ms()) > 0)
        rd_kafka_poll(p->rk, left < 10 ? (int)left : 10);
}

/* Release @e; returns its failed plus unacknowledged records. */
static int epoch_release(struct hr_epoch *e, char *errstr, size_t errstr_size)
{
    int64_t bad = e->failed + (e->inflight > 0 ? e->inflight : 0);

    if (bad && errstr)
        snprintf(errstr, errstr_size, "%s",
                 e->failed ? e->first_error
                           : "delivery not acknowledged in time");
    e->open = false; /* its late reports are ignored */
    return bad > INT32_MAX ? INT32_MAX : (int)bad;
}

int hr_producer_settle(struct hr_producer *p,
                       uint64_t epoch,
                       int timeout_ms,
                       char *errstr,
                       size_t errstr_size)
{
    struct hr_epoch *e = epoch_of(p, epoch);

    HR_ASSERT(e && epoch != p->current);
    if (!p->rk)
        return epoch_release(e, errstr, errstr_size);
    if (timeout_ms > 0)
        epoch_wait(p, e, hr_time_mono_ms() + timeout_ms);
    else
        rd_kafka_poll(p->rk, 0);
    if (e->inflight > 0 && !e->failed)
        return -1;
    return epoch_release(e, errstr, errstr_size);
}

void hr_producer_forget(struct hr_producer *p, uint64_t epoch)
{
    struct hr_epoch *e = epoch_of(p, epoch);

    if (e && epoch != p->current)
        e->open = false;
}

int hr_producer_barrier(struct hr_producer *p,
                        int timeout_ms,
                        char *errstr,
                        size_t errstr_size)
{
    int64_t deadline = hr_time_mono_ms() + timeout_ms;
    uint64_t sealed = hr_producer_seal(p);

    /* Earlier sealed epochs are waited for too (what was queued first is
     * acknowledged first anyway) but keep their results for their owners. */
    for (size_t i = 0; i < HR_EPOCHS; i++) {
        struct hr_epoch *e = &p->epochs[i];

        if (e->open && e->id <= sealed)
            epoch_wait(p, e, deadline);
    }
    return epoch_release(epoch_of(p, sealed), errstr, errstr_size);
}

void hr_producer_poll(struct hr_producer *p)
{
    if (p->rk)
        rd_kafka_poll(p->rk, 0);
}

bool hr_producer_is_discarding(const struct hr_producer *p)
{
    return !p->rk;
}

uint64_t hr_producer_discarded(const struct hr_producer *p)
{
    return p->discarded;
}

rd_kafka_headers_t *hr_producer_headers(const struct hr_hdrs *hdrs)
{
    rd_kafka_headers_t *out = rd_kafka_headers_new(hr_hdrs_count(hdrs) + 1);
    const char *name;
    const void *value;
    size_t len;

    for (size_t i = 0; !hr_hdrs_at(hdrs, i, &name, &value, &len); i++)
        rd_kafka_header_add(out, name, -1, value, (ssize_t)len);
    return out;
}

rd_kafka_t *hr_producer_handle(struct hr_producer *p)
{
    return p->rk;
}
