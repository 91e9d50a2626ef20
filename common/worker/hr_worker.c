#include "hr_worker.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hr_arena.h"
#include "hr_aws.h"
#include "hr_failure.h"
#include "hr_hdrs.h"
#include "hr_httpd.h"
#include "hr_item.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_msg.h"
#include "hr_producer.h"
#include "hr_redis.h"
#include "hr_source.h"
#include "hr_time.h"
#include "hr_worker_conf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define HR_PAUSE_MAX_MS 5000

struct hr_worker {
    const struct hr_worker_def *def;
    struct hr_conf *cfg;
    struct hr_metrics *metrics;
    struct hr_httpd *httpd;
    struct hr_redis *redis;
    struct hr_source *source;
    struct hr_producer *producer;
    struct hr_failure_route route; /* where failures go */
    void *state;
    char topics[1024];
    char pause_reason[256];
    bool produce_failed;
    uint64_t events_done; /* events with a durable outcome, this run */

    /* SPEC section 6 metrics */
    struct hr_metric *consumed;
    struct hr_metric *processed;
    struct hr_metric *latency;
    struct hr_metric *redis_errors;
    struct hr_metric *paused;
    struct hr_metric *batches;
    struct hr_metric *discarded;
    struct hr_metric *build_info;
};

static volatile sig_atomic_t stop_signal;
/* When the first signal came (monotonic ms): the drain budget counts from
 * there, not from the end of the batch that was running. A lock-free
 * atomic store is async-signal-safe. */
static _Atomic int_least64_t stop_at_ms;

static void on_signal(int sig)
{
    if (stop_signal)
        _exit(1); /* a second signal: the operator insists */
    atomic_store(&stop_at_ms, hr_time_mono_ms());
    stop_signal = sig;
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* --- accessors and outcome setters ------------------------------------ */

const struct hr_conf *hr_worker_conf(struct hr_worker *w)
{
    return w->cfg;
}

struct hr_redis *hr_worker_redis(struct hr_worker *w)
{
    return w->redis;
}

struct hr_metrics *hr_worker_metrics(struct hr_worker *w)
{
    return w->metrics;
}

const char *hr_worker_name(const struct hr_worker *w)
{
    return w->def->name;
}

int hr_worker_produce(struct hr_worker *w,
                      const char *topic,
                      const void *key,
                      size_t key_len,
                      const void *value,
                      size_t value_len)
{
    char errstr[256];
    int rc = hr_worker_produce_headers(w, topic, key, key_len, value, value_len,
                                       NULL, errstr, sizeof(errstr));

    if (rc) {
        hr_log_warn("cannot produce", HR_LOG_STR("topic", topic),
                    HR_LOG_STR("err", errstr));
        /* a refused record fails its cause, not the batch */
        if (rc != HR_PRODUCE_REFUSED)
            w->produce_failed = true;
    }
    return rc;
}

int hr_worker_produce_headers(struct hr_worker *w,
                              const char *topic,
                              const void *key,
                              size_t key_len,
                              const void *value,
                              size_t value_len,
                              rd_kafka_headers_t *hdrs,
                              char *errstr,
                              size_t errstr_size)
{
    uint64_t discarded = hr_producer_discarded(w->producer);
    int rc = hr_producer_send(w->producer, topic, key, key_len, value,
                              value_len, hdrs, errstr, errstr_size);

    if (hr_producer_discarded(w->producer) != discarded)
        hr_metric_add(w->discarded, (const char *[]){topic}, 1);
    return rc;
}

struct hr_producer *hr_worker_producer(struct hr_worker *w)
{
    return w->producer;
}

void hr_worker_set_pause_reason(struct hr_worker *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(w->pause_reason, sizeof(w->pause_reason), fmt, ap);
    va_end(ap);
}

/* --- configuration ----------------------------------------------------- */

static void usage_line(const struct hr_worker_def *def, char *buf, size_t size)
{
    snprintf(buf, size,
             "usage: herald-%s [--config FILE] [--check-config] [--help] "
             "[--version]",
             def->name);
}

/* Settings that depend on each other or on the worker. */
static void validate_common(struct hr_conf *cfg)
{
    const char *url = hr_conf_str(cfg, "HERALD_REDIS_URL");
    char errstr[256];

    hr_source_validate(cfg);
    if (url) {
        struct hr_redis *redis = hr_redis_new(url, "", errstr, sizeof(errstr));

        if (!redis)
            hr_conf_add_error(cfg, "HERALD_REDIS_URL: %s", errstr);
        hr_redis_free(redis);
    }
}

/* Effective configuration for --check-config, with the password of the
 * Redis URL masked too. */
static void print_effective(const struct hr_conf *cfg)
{
    json_t *eff = hr_conf_effective(cfg);
    json_t *url =
        json_object_get(json_object_get(eff, "HERALD_REDIS_URL"), "value");
    const char *s = json_string_value(url);
    const char *at = s ? strrchr(s, '@') : NULL;

    if (at && !strncmp(s, "redis://", 8)) {
        char masked[512];

        snprintf(masked, sizeof(masked), "redis://***%s", at);
        json_string_set(url, masked);
    }
    json_dumpf(eff, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(eff);
}

static void setup_logging(const struct hr_worker_def *def,
                          const struct hr_conf *cfg)
{
    enum hr_log_level level = HR_LOG_INFO;
    const char *fmt = hr_conf_str(cfg, "HERALD_LOG_FORMAT");

    if (hr_conf_str(cfg, "HERALD_LOG_LEVEL"))
        (void)hr_log_parse_level(hr_conf_str(cfg, "HERALD_LOG_LEVEL"), &level);
    hr_log_setup(def->name, level, !fmt || strcmp(fmt, "text"));
}

/* --- the loop ----------------------------------------------------------- */

static void declare_metrics(struct hr_worker *w)
{
    static const double latency_buckets[] = {
        0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
        0.05,   0.1,    0.25,  0.5,    1,     2.5,  5};

    w->consumed = hr_metrics_counter(w->metrics, "herald_events_consumed_total",
                                     "Events read from the source", "topic");
    w->processed = hr_metrics_counter(
        w->metrics, "herald_events_processed_total",
        "Events with a durable outcome, by outcome", "outcome");
    w->latency = hr_metrics_histogram(
        w->metrics, "herald_event_processing_seconds",
        "Time from the start of an event's batch to its durable outcome", NULL,
        latency_buckets, HR_ARRAY_SIZE(latency_buckets));
    w->redis_errors =
        hr_metrics_counter(w->metrics, "herald_redis_errors_total",
                           "Failed Redis round trips", NULL);
    w->batches = hr_metrics_counter(
        w->metrics, "herald_batches_total",
        "Batches whose every event has a durable outcome (events per batch: "
        "herald_events_processed_total over this)",
        NULL);
    w->paused = hr_metrics_counter(
        w->metrics, "herald_batch_pauses_total",
        "Batches redone because own state was unavailable", NULL);
    w->discarded = hr_metrics_counter(
        w->metrics, "herald_outputs_discarded_total",
        "Outputs dropped because no Kafka brokers are configured (an SQS "
        "worker without Kafka)",
        "topic");
    w->build_info = hr_metrics_gauge(w->metrics, "herald_build_info",
                                     "Build information", "version");
    hr_metric_set(w->build_info, (const char *[]){HERALD_VERSION}, 1);
    for (const char *const *o =
             (const char *const[]){"ok", "duplicate", "filtered", "retried",
                                   "dead_lettered", NULL};
         *o; o++)
        hr_metric_add(w->processed, (const char *[]){*o}, 0);
}

static const char *outcome_label(enum hr_outcome outcome)
{
    switch (outcome) {
    case HR_OUT_OK:
        return "ok";
    case HR_OUT_DUPLICATE:
        return "duplicate";
    case HR_OUT_FILTERED:
        return "filtered";
    case HR_OUT_RETRY:
        return "retried";
    default:
        return "dead_lettered";
    }
}

/* Fill the batch's items from the consumed messages; unparseable events
 * (and messages their source refused) are dead-lettered here, before the
 * handler sees the batch. */
static void items_fill(struct hr_worker *w,
                       struct hr_batch *batch,
                       struct hr_msg **msgs,
                       size_t n)
{
    batch->n = n;
    for (size_t i = 0; i < n; i++) {
        struct hr_item *item = &batch->items[i];
        char errstr[256];

        hr_item_init(item, msgs[i]);
        if (msgs[i]->refused)
            hr_item_dead(item, HR_ERR_POISON, "%s", msgs[i]->refused);
        else if (w->def->cloudevents &&
                 hr_event_parse(&item->ev, item->value, item->value_len,
                                hr_item_header, item, errstr, sizeof(errstr)))
            hr_item_dead(item, HR_ERR_POISON, "%s", errstr);
    }
}

/* Forget the handler's decisions before a batch is redone (poison stays). */
static void items_reset(struct hr_batch *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        struct hr_msg *msg = (struct hr_msg *)(uintptr_t)item->msg;

        msg->fate = HR_MSG_DONE;
        hr_hdrs_free(msg->dead);
        msg->dead = NULL;
        if (item->outcome == HR_OUT_DEAD && item->err_class == HR_ERR_POISON &&
            !item->ev.root && item->reason && item->reason[0])
            continue;
        item->outcome = HR_OUT_PENDING;
        hr_item_forget(item);
        item->retry_after_ms = -1;
    }
}

static void items_release(struct hr_batch *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        hr_event_release(&batch->items[i].ev);
        hr_item_forget(&batch->items[i]);
    }
    batch->n = 0;
}

/* Make sure Redis answers before handing it a batch. */
static bool redis_ready(struct hr_worker *w)
{
    char errstr[256];

    if (!w->redis || hr_redis_is_connected(w->redis))
        return true;
    if (!hr_redis_connect(w->redis, errstr, sizeof(errstr)))
        return true;
    hr_worker_set_pause_reason(w, "redis unavailable: %s", errstr);
    return false;
}

/*
 * Run one batch until every output is queued: the handler decides and
 * failure records are written. With @epoch, the outputs' epoch is sealed
 * into it and the caller settles it later (hr_producer_settle()); without,
 * every output is also waited for. Anything short of that pauses and redoes
 * the batch (handlers and outputs are idempotent). Returns false only when
 * a stop was requested first: its offsets must then not be stored.
 */
static bool
batch_run(struct hr_worker *w, struct hr_batch *batch, uint64_t *epoch)
{
    unsigned pauses = 0;
    char errstr[256];

    for (;;) {
        enum hr_batch_result res = HR_BATCH_PAUSE;
        int bad;

        w->pause_reason[0] = '\0';
        w->produce_failed = false;
        if (redis_ready(w))
            res = w->def->handle(w, w->state, batch);
        if (res == HR_BATCH_DONE && !w->produce_failed) {
            for (size_t i = 0; i < batch->n; i++) {
                if (batch->items[i].outcome == HR_OUT_PENDING) {
                    hr_log_error("handler left an event without outcome",
                                 HR_LOG_I64("offset", batch->items[i].offset));
                    hr_item_dead(&batch->items[i], HR_ERR_PERMANENT,
                                 "handler left no outcome");
                }
            }
            if (hr_failure_hand_off(&w->route, batch))
                w->produce_failed = true;
        }
        if (res == HR_BATCH_DONE && !w->produce_failed && epoch) {
            *epoch = hr_producer_seal(w->producer);
            if (pauses)
                hr_log_info("batch resumed", HR_LOG_I64("pauses", pauses));
            return true;
        }
        if (res == HR_BATCH_DONE && !w->produce_failed) {
            bad =
                hr_producer_barrier(w->producer, 60000, errstr, sizeof(errstr));
            if (!bad) {
                if (pauses)
                    hr_log_info("batch resumed", HR_LOG_I64("pauses", pauses));
                return true;
            }
            hr_worker_set_pause_reason(w, "outputs not acknowledged: %s",
                                       errstr);
        } else if (w->produce_failed) {
            hr_worker_set_pause_reason(w, "producer queue refused outputs");
            (void)hr_producer_barrier(w->producer, 10000, NULL, 0);
        } else if (!w->pause_reason[0]) {
            hr_worker_set_pause_reason(w, "handler paused");
        }
        if (strstr(w->pause_reason, "redis"))
            hr_metric_add(w->redis_errors, NULL, 1);
        hr_metric_add(w->paused, NULL, 1);
        hr_health_set_ready(w->pause_reason);
        if (!pauses || !(pauses % 10))
            hr_log_warn("batch paused", HR_LOG_STR("err", w->pause_reason),
                        HR_LOG_I64("events", batch->n),
                        HR_LOG_I64("pauses", pauses + 1));
        {
            int64_t delay =
                hr_retry_backoff_ms(pauses < 16 ? pauses : 16, 100,
                                    HR_PAUSE_MAX_MS, hr_retry_random());
            int64_t until = hr_time_mono_ms() + (delay < 50 ? 50 : delay);

            while (hr_time_mono_ms() < until) {
                if (stop_signal)
                    return false;
                hr_health_beat();
                hr_producer_poll(w->producer);
                hr_source_serve(w->source);
                hr_time_sleep_ms(50);
            }
        }
        pauses++;
        items_reset(batch);
    }
}

static void
batch_account(struct hr_worker *w, struct hr_batch *batch, double started)
{
    double elapsed = hr_time_mono_s() - started;
    uint64_t counts[HR_OUT_DEAD + 1] = {0};
    const char *last_topic = NULL;
    uint64_t same = 0;

    for (size_t i = 0; i < batch->n; i++) {
        counts[batch->items[i].outcome]++;
        /* Batches are mostly one topic: count runs, not events. */
        if (last_topic && strcmp(last_topic, batch->items[i].topic)) {
            hr_metric_add(w->consumed, (const char *[]){last_topic},
                          (double)same);
            same = 0;
        }
        last_topic = batch->items[i].topic;
        same++;
    }
    if (last_topic)
        hr_metric_add(w->consumed, (const char *[]){last_topic}, (double)same);
    for (int o = HR_OUT_OK; o <= HR_OUT_DEAD; o++) {
        if (counts[o])
            hr_metric_add(w->processed, (const char *[]){outcome_label(o)},
                          (double)counts[o]);
    }
    hr_metric_observe(w->latency, NULL, elapsed, batch->n);
    hr_metric_add(w->batches, NULL, 1);
    w->events_done += batch->n;
}

/* HERALD_BATCH_MAX and HERALD_BATCH_MAX_BYTES. */
struct batch_limits {
    size_t events;
    size_t bytes;
};

/* One batch slot of the loop: the consumed messages and their items. */
struct loop_slot {
    struct hr_msg **msgs;
    struct hr_batch batch;
    struct hr_arena *arena; /* the batch's parsed events */
    double started;
    bool sealed;    /* handled; its outputs' @epoch is being acknowledged */
    uint64_t epoch; /* producer epoch of its outputs, when sealed */
    uint64_t seq;   /* order in which batches were sealed */
};

/* What a slot's arena keeps between batches: enough for a typical batch,
 * so its pages are reused, without pinning a huge one's. */
#define HR_LOOP_ARENA_KEEP (16 * 1024 * 1024)

/* Free a slot's batch: its messages are acknowledged to the source
 * (@ack) or given back to it. */
static void slot_release(struct hr_worker *w, struct loop_slot *slot, bool ack)
{
    size_t n = slot->batch.n;
    char errstr[256];

    items_release(&slot->batch);
    if (!ack)
        hr_source_abandon(w->source, slot->msgs, n);
    else if (hr_source_ack(w->source, slot->msgs, n, errstr, sizeof(errstr)))
        hr_log_warn("acknowledgement failed", HR_LOG_STR("err", errstr));
    hr_arena_reset(slot->arena, HR_LOOP_ARENA_KEEP);
}

/* Poll a batch of at most @lim->events events and about @lim->bytes bytes
 * into @slot and parse them; 0 when none came. */
static size_t slot_fill(struct hr_worker *w,
                        struct loop_slot *slot,
                        const struct batch_limits *lim,
                        int wait_ms)
{
    size_t n =
        hr_source_poll(w->source, slot->msgs, lim->events, lim->bytes, wait_ms);

    if (n) {
        struct hr_arena *previous = hr_arena_enter(slot->arena);

        slot->started = hr_time_mono_s();
        items_fill(w, &slot->batch, slot->msgs, n);
        hr_arena_leave(previous);
        if (w->def->submit)
            w->def->submit(w, w->state, &slot->batch);
    }
    return n;
}

/* Account a durable slot's batch, acknowledge it and free it. */
static void slot_store(struct hr_worker *w, struct loop_slot *slot)
{
    batch_account(w, &slot->batch, slot->started);
    slot_release(w, slot, true);
}

static void slot_abandon(struct hr_worker *w, struct loop_slot *slot)
{
    if (!slot->batch.n)
        return;
    hr_log_info("batch abandoned at shutdown; it will be redelivered",
                HR_LOG_I64("events", slot->batch.n));
    if (slot->sealed)
        hr_producer_forget(w->producer, slot->epoch);
    slot->sealed = false;
    slot_release(w, slot, false);
}

/*
 * Settle sealed slots oldest first, storing each one's offsets once all its
 * outputs are acknowledged (offsets go out in the order batches were
 * consumed). A slot whose outputs failed is redone on the spot. Without
 * @need, stops at the first slot still in flight; with it, waits until
 * @need is settled. Returns false when a stop interrupted a redo: nothing
 * sealed may then be stored (it would skip the redone batch's offsets).
 */
static bool slots_settle(struct hr_worker *w,
                         struct loop_slot *slots,
                         size_t nslots,
                         const struct loop_slot *need)
{
    char errstr[256];

    for (;;) {
        struct loop_slot *old = NULL;
        int bad;

        for (size_t i = 0; i < nslots; i++) {
            if (slots[i].sealed && (!old || slots[i].seq < old->seq))
                old = &slots[i];
        }
        if (!old)
            return true;
        bad = hr_producer_settle(w->producer, old->epoch,
                                 need && need->sealed ? 100 : 0, errstr,
                                 sizeof(errstr));
        if (bad < 0 && !(need && need->sealed))
            return true;
        if (bad < 0 && stop_signal &&
            hr_time_mono_ms() - atomic_load(&stop_at_ms) >
                hr_conf_int(w->cfg, "HERALD_SHUTDOWN_TIMEOUT_MS") / 2) {
            /* Draining, and the broker does not answer: leave the rest
             * of the budget to the commit; these batches come again. */
            for (size_t i = 0; i < nslots; i++) {
                if (slots[i].sealed)
                    slot_abandon(w, &slots[i]);
            }
            return false;
        }
        if (bad < 0)
            continue;
        old->sealed = false;
        if (bad > 0) {
            hr_log_warn("batch outputs not acknowledged; redoing it",
                        HR_LOG_STR("err", errstr),
                        HR_LOG_I64("events", old->batch.n));
            hr_metric_add(w->paused, NULL, 1);
            items_reset(&old->batch);
            if (!batch_run(w, &old->batch, NULL)) {
                slot_abandon(w, old);
                for (size_t i = 0; i < nslots; i++) {
                    if (slots[i].sealed)
                        slot_abandon(w, &slots[i]);
                }
                return false;
            }
        }
        slot_store(w, old);
    }
}

/*
 * The consumer loop. A handled batch is sealed, not waited for: its
 * outputs are acknowledged while the next batch is handled, and its offsets
 * are stored once they are (slots_settle()), in order. With a submit() hook
 * the next batch is also polled, parsed and submitted (taking only what is
 * already queued) before the current one is handled, so its Redis work
 * overlaps the current batch's outputs. Three slots: one being
 * acknowledged, one handled, one submitted.
 */
static int run_loop(struct hr_worker *w)
{
    const struct batch_limits lim = {
        (size_t)hr_conf_int(w->cfg, "HERALD_BATCH_MAX"),
        (size_t)hr_conf_int(w->cfg, "HERALD_BATCH_MAX_BYTES")};
    int wait_ms = (int)hr_conf_int(w->cfg, "HERALD_BATCH_WAIT_MS");
    size_t nslots = w->def->submit ? 3 : 2;
    struct loop_slot slots[3];
    char reason[256];
    size_t cur = 0;
    uint64_t seq = 0;
    int rc = 0;

    memset(slots, 0, sizeof(slots));
    for (size_t i = 0; i < nslots; i++) {
        slots[i].msgs = calloc(lim.events, sizeof(*slots[i].msgs));
        slots[i].batch.items = calloc(lim.events, sizeof(struct hr_item));
        slots[i].arena = hr_arena_new();
        if (!slots[i].msgs || !slots[i].batch.items) {
            hr_log_error("out of memory",
                         HR_LOG_I64("batch_max", (int64_t)lim.events));
            rc = 1;
            goto out_free;
        }
    }
    while (!stop_signal) {
        struct loop_slot *slot = &slots[cur];
        struct loop_slot *next = &slots[(cur + 1) % nslots];

        hr_health_beat();
        if (hr_source_is_fatal(w->source)) {
            rc = 1;
            break;
        }
        if (!hr_source_is_ready(w->source, reason, sizeof(reason)) ||
            !redis_ready(w))
            hr_health_set_ready(w->pause_reason[0] && w->redis &&
                                        !hr_redis_is_connected(w->redis)
                                    ? w->pause_reason
                                    : reason);
        else
            hr_health_set_ready(NULL);
        hr_producer_poll(w->producer);
        if (w->def->tick)
            w->def->tick(w, w->state);
        if (slot->sealed && !slots_settle(w, slots, nslots, slot))
            break;
        if (!slot->batch.n &&
            !slot_fill(w, slot, &lim, wait_ms > 0 ? wait_ms : 1)) {
            if (!slots_settle(w, slots, nslots, NULL))
                break;
            continue;
        }
        if (w->def->submit) {
            if (next->sealed && !slots_settle(w, slots, nslots, next))
                break;
            if (!next->batch.n)
                (void)slot_fill(w, next, &lim, 0);
        }
        if (!batch_run(w, &slot->batch, &slot->epoch)) {
            slot_abandon(w, slot);
            break;
        }
        slot->sealed = true;
        slot->seq = ++seq;
        if (!slots_settle(w, slots, nslots, NULL))
            break;
        cur = (cur + 1) % nslots;
    }
    /* Stopping: what is handled only waits for its acknowledgements. */
    for (size_t i = 0; i < nslots; i++) {
        if (slots[i].sealed && !slots_settle(w, slots, nslots, &slots[i]))
            break;
    }
out_free:
    for (size_t i = 0; i < nslots; i++) {
        if (slots[i].msgs && slots[i].arena)
            slot_abandon(w, &slots[i]);
        hr_arena_free(slots[i].arena);
        free(slots[i].msgs);
        free(slots[i].batch.items);
    }
    return rc;
}

/* --- lifecycle ----------------------------------------------------------- */

static int start_clients(struct hr_worker *w)
{
    const char *addr = hr_conf_str(w->cfg, "HERALD_METRICS_ADDR");
    char errstr[512];

    if (addr && strcmp(addr, "off")) {
        w->httpd = hr_httpd_start(addr, w->metrics, errstr, sizeof(errstr));
        if (!w->httpd) {
            hr_log_error("cannot serve metrics", HR_LOG_STR("addr", addr),
                         HR_LOG_STR("err", errstr));
            return -1;
        }
        hr_log_info("serving metrics", HR_LOG_STR("addr", addr),
                    HR_LOG_I64("port", hr_httpd_port(w->httpd)));
    }
    if (w->def->uses_redis) {
        w->redis = hr_redis_new(hr_conf_str(w->cfg, "HERALD_REDIS_URL"),
                                hr_conf_str(w->cfg, "HERALD_REDIS_PREFIX"),
                                errstr, sizeof(errstr));
        if (!w->redis) {
            hr_log_error("bad redis url", HR_LOG_STR("err", errstr));
            return -1;
        }
        if (hr_redis_connect(w->redis, errstr, sizeof(errstr)))
            hr_log_warn("redis unavailable at start; will retry",
                        HR_LOG_STR("err", errstr));
    }
    w->producer = hr_producer_new(w->cfg, errstr, sizeof(errstr));
    if (!w->producer) {
        hr_log_error("cannot create producer", HR_LOG_STR("err", errstr));
        return -1;
    }
    if (hr_producer_is_discarding(w->producer))
        hr_log_warn("no kafka brokers: outputs to topics are discarded "
                    "(counted in herald_outputs_discarded_total)");
    w->source =
        hr_source_new(w->cfg, w->topics, w->metrics, errstr, sizeof(errstr));
    if (!w->source) {
        hr_log_error("cannot create consumer", HR_LOG_STR("err", errstr));
        return -1;
    }
    w->route = (struct hr_failure_route){
        .worker = w->def->name,
        .retry_topic = hr_conf_str(w->cfg, "HERALD_RETRY_TOPIC"),
        .dlq_topic = hr_conf_str(w->cfg, "HERALD_DLQ_TOPIC"),
        .producer = w->producer,
        .source = w->source,
    };
    if (!strcmp(hr_source_kind(w->source), "sqs"))
        hr_log_info(
            "consuming",
            HR_LOG_STR("queue", hr_conf_str(w->cfg, "HERALD_SQS_QUEUE_URL")));
    else
        hr_log_info(
            "consuming", HR_LOG_STR("topics", w->topics),
            HR_LOG_STR("group", hr_conf_str(w->cfg, "HERALD_KAFKA_GROUP")));
    return 0;
}

/* The shutdown order of STYLE section 8: not ready, commit and leave the
 * group, flush outputs, close Redis, stop HTTP last. */
static int shutdown_clients(struct hr_worker *w, int64_t deadline)
{
    int rc = 0;
    int left;

    hr_health_set_ready("shutting down");
    if (w->def->stop && w->state && w->producer) {
        int64_t now = hr_time_mono_ms();

        /* Half the budget at most: the commit and the flush follow. */
        w->def->stop(w, w->state,
                     now + (deadline > now ? deadline - now : 0) / 2);
    }
    if (w->source && hr_source_close(w->source, deadline)) {
        hr_log_error("final commit failed");
        rc = 1;
    }
    w->source = NULL;
    left =
        hr_producer_free(w->producer, (int)(deadline - hr_time_mono_ms() > 0
                                                ? deadline - hr_time_mono_ms()
                                                : 0));
    w->producer = NULL;
    if (left) {
        hr_log_error("outputs not flushed at shutdown",
                     HR_LOG_I64("records", left));
        rc = 1;
    }
    if (w->def->fini && w->state)
        w->def->fini(w, w->state);
    hr_redis_free(w->redis);
    w->redis = NULL;
    if (hr_time_mono_ms() > deadline) {
        hr_log_error("shutdown exceeded its budget");
        rc = 1;
    }
    hr_httpd_stop(w->httpd);
    w->httpd = NULL;
    return rc;
}

/* Parse argv. Returns -1 to continue, else an exit status. */
static int parse_flags(const struct hr_worker_def *def,
                       int argc,
                       char **argv,
                       const char **config_file,
                       bool *check,
                       bool *help)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            *help = true;
        } else if (!strcmp(argv[i], "--version")) {
            printf("herald-%s %s (librdkafka %s)\n", def->name, HERALD_VERSION,
                   rd_kafka_version_str());
            return 0;
        } else if (!strcmp(argv[i], "--check-config")) {
            *check = true;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            *config_file = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            *config_file = argv[i] + 9;
        } else {
            fprintf(stderr, "herald-%s: unknown argument '%s' (try --help)\n",
                    def->name, argv[i]);
            return 2;
        }
    }
    return -1;
}

int hr_worker_main(const struct hr_worker_def *def, int argc, char **argv)
{
    struct hr_worker w = {.def = def};
    const char *config_file = NULL;
    bool check = false, help = false;
    char usage[256], group[128];
    int64_t deadline;
    int rc;

    /* Before any JSON value exists: batches parse into arenas. */
    hr_arena_install();
    rc = parse_flags(def, argc, argv, &config_file, &check, &help);
    if (rc >= 0)
        return rc;
    hr_log_setup(def->name, HR_LOG_INFO, true);
    w.cfg = hr_conf_new();
    hr_conf_add_specs(w.cfg, hr_worker_common_conf);
    hr_conf_add_specs(w.cfg, hr_source_conf);
    hr_conf_add_specs(w.cfg, hr_aws_conf);
    if (def->conf)
        hr_conf_add_specs(w.cfg, def->conf);
    snprintf(group, sizeof(group), "herald-%s", def->name);
    hr_conf_set_default(w.cfg, "HERALD_KAFKA_GROUP", group);
    hr_conf_set_default(w.cfg, "HERALD_KAFKA_TOPICS", def->topics);
    if (def->batch_max) {
        char n[24];

        snprintf(n, sizeof(n), "%d", def->batch_max);
        hr_conf_set_default(w.cfg, "HERALD_BATCH_MAX", n);
    }
    if (help) {
        usage_line(def, usage, sizeof(usage));
        hr_conf_print_help(w.cfg, stdout, usage, def->summary);
        hr_conf_free(w.cfg);
        return 0;
    }
    /* Cross-field and worker checks run even after type errors: every
     * problem is reported in one go. */
    (void)hr_conf_load(w.cfg, config_file);
    validate_common(w.cfg);
    if (def->validate)
        def->validate(w.cfg);
    if (hr_conf_error_count(w.cfg)) {
        for (int i = 0; i < hr_conf_error_count(w.cfg); i++)
            fprintf(stderr, "herald-%s: %s\n", def->name,
                    hr_conf_error(w.cfg, i));
        fprintf(stderr, "herald-%s: configuration invalid (%d problem%s)\n",
                def->name, hr_conf_error_count(w.cfg),
                hr_conf_error_count(w.cfg) == 1 ? "" : "s");
        hr_conf_free(w.cfg);
        return 2;
    }
    if (check) {
        print_effective(w.cfg);
        fprintf(stderr, "herald-%s: configuration ok\n", def->name);
        hr_conf_free(w.cfg);
        return 0;
    }

    setup_logging(def, w.cfg);
    install_signals();
    if (hr_conf_str(w.cfg, "HERALD_REDELIVER_TOPIC") &&
        *hr_conf_str(w.cfg, "HERALD_REDELIVER_TOPIC"))
        snprintf(w.topics, sizeof(w.topics), "%s,%s",
                 hr_conf_str(w.cfg, "HERALD_KAFKA_TOPICS"),
                 hr_conf_str(w.cfg, "HERALD_REDELIVER_TOPIC"));
    else
        snprintf(w.topics, sizeof(w.topics), "%s,herald.redeliver.%s",
                 hr_conf_str(w.cfg, "HERALD_KAFKA_TOPICS"), def->name);
    w.metrics = hr_metrics_new(def->name);
    declare_metrics(&w);
    hr_health_set_ready("starting");
    hr_log_info("starting", HR_LOG_STR("version", HERALD_VERSION));

    rc = 1;
    if (start_clients(&w))
        goto out_shutdown;
    if (def->init && def->init(&w, &w.state)) {
        hr_log_error("worker init failed");
        goto out_shutdown;
    }
    rc = run_loop(&w);
    if (stop_signal)
        hr_log_info("shutdown requested",
                    HR_LOG_STR("signal",
                               stop_signal == SIGTERM ? "SIGTERM" : "SIGINT"));
out_shutdown:
    deadline = (stop_signal ? atomic_load(&stop_at_ms) : hr_time_mono_ms()) +
               hr_conf_int(w.cfg, "HERALD_SHUTDOWN_TIMEOUT_MS");
    if (shutdown_clients(&w, deadline))
        rc = 1;
    hr_log_info("stopped", HR_LOG_I64("exit_status", rc),
                HR_LOG_I64("events", w.events_done));
    hr_metrics_free(w.metrics);
    hr_conf_free(w.cfg);
    return rc;
}
