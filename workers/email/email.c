/* herald-email: the handler, the timer and their state (email.h tells the
 * story). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email_state.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

extern const char hr_lua_email_ingest[];
extern const unsigned long hr_lua_email_ingest_len;
extern const char hr_lua_email_claim[];
extern const unsigned long hr_lua_email_claim_len;
extern const char hr_lua_email_done[];
extern const unsigned long hr_lua_email_done_len;
extern const char hr_lua_email_sent[];
extern const unsigned long hr_lua_email_sent_len;

static void declare_metrics(struct email_state *st, struct hr_metrics *m)
{
    static const double items[] = {1, 2, 3, 5, 10, 20, 50, 100, 500, 1000};
    static const double late[] = {0.05, 0.1, 0.25, 0.5, 1,  2,
                                  5,    10,  30,   60,  300};
    static const double secs[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                  0.5,   1,    2.5,   5,    10,  30};
    const char *dest = email_transport_destination(st->transport);

    st->ingested = hr_metrics_counter(
        m, "herald_email_events_total",
        "notification.email events by category (\"other\": not named in the "
        "config) and result: opened (a window), added, suppressed "
        "(leading), over_cap (counted, not listed), duplicate",
        "category,result");
    st->sent =
        hr_metrics_counter(m, "herald_email_sent_total",
                           "Emails accepted by the transport", "category,mode");
    st->suppressed = hr_metrics_counter(
        m, "herald_email_suppressed_total",
        "Events suppressed by a leading window (not emailed)", "category");
    st->skipped = hr_metrics_counter(
        m, "herald_email_skipped_total",
        "Windows not emailed: opt_out (email_opt_out), no_address, render",
        "category,reason");
    st->failed = hr_metrics_counter(
        m, "herald_email_failures_total",
        "Sends that failed, by class (transient and throttled go to the "
        "guard, auth and permanent to the dead-letter topic)",
        "class");
    st->digest_items = hr_metrics_histogram(m, "herald_email_digest_items",
                                            "Events covered by each sent email",
                                            NULL, items, HR_ARRAY_SIZE(items));
    st->lateness = hr_metrics_histogram(
        m, "herald_email_window_lateness_seconds",
        "From a window's due time to its email accepted by the transport", NULL,
        late, HR_ARRAY_SIZE(late));
    st->duplicates = hr_metrics_counter(
        m, "herald_email_duplicate_sends_total",
        "Windows sent again after an attempt that ended without an answer "
        "(a crash or timeout mid-send): possible duplicates, same "
        "Message-ID",
        NULL);
    st->windows = hr_metrics_counter(
        m, "herald_email_windows_total",
        "Windows claimed by this replica's timer (reclaimed: after another "
        "owner's lease ran out), completed, and lost to a newer claim",
        "result");
    st->latency = hr_metrics_histogram(m, "herald_email_send_seconds",
                                       "Time to send one message", "transport",
                                       secs, HR_ARRAY_SIZE(secs));
    st->circuit_state = hr_metrics_gauge(
        m, "herald_guard_circuit_state",
        "Shared circuit state of the transport (0 closed, 1 half-open, 2 "
        "open, auth-broken or throttled)",
        "destination");
    hr_metric_add(st->duplicates, NULL, 0);
    hr_metric_set(st->circuit_state, (const char *[]){dest}, 0);
    hr_metric_add(st->failed, (const char *[]){"transient"}, 0);
    for (size_t i = 0; i < 4; i++)
        hr_metric_add(st->windows,
                      (const char *[]){(const char *[]){
                          "claimed", "reclaimed", "completed", "lost"}[i]},
                      0);
}

int email_init(struct hr_worker *w, void **state)
{
    const struct hr_conf *cfg = hr_worker_conf(w);
    struct email_state *st = calloc(1, sizeof(*st));
    struct hr_circuit_conf cc;
    char errstr[512];

    HR_ASSERT(st);
    *state = st;
    st->w = w;
    st->redis = hr_worker_redis(w);
    st->prefix = hr_redis_prefix(st->redis);
    email_settings_load(&st->set, cfg);
    snprintf(st->keys.due, sizeof(st->keys.due), "%semail:due", st->prefix);
    snprintf(st->keys.leases, sizeof(st->keys.leases), "%semail:leases",
             st->prefix);
    snprintf(st->keys.fence, sizeof(st->keys.fence), "%semail:fence",
             st->prefix);
    snprintf(st->keys.offsets, sizeof(st->keys.offsets), "%semail:offsets",
             st->prefix);
    st->ingest_script = (struct hr_script){"email_ingest", hr_lua_email_ingest,
                                           hr_lua_email_ingest_len, ""};
    st->claim_script = (struct hr_script){"email_claim", hr_lua_email_claim,
                                          hr_lua_email_claim_len, ""};
    st->done_script = (struct hr_script){"email_done", hr_lua_email_done,
                                         hr_lua_email_done_len, ""};
    st->sent_script = (struct hr_script){"email_sent", hr_lua_email_sent,
                                         hr_lua_email_sent_len, ""};
    st->ingest_redis = hr_redis_new(hr_conf_str(cfg, "HERALD_REDIS_URL"),
                                    st->prefix, errstr, sizeof(errstr));
    if (!st->ingest_redis) {
        hr_log_error("bad redis url", HR_LOG_STR("err", errstr));
        return -1;
    }
    st->catalog = email_catalog_new(cfg, errstr, sizeof(errstr));
    if (!st->catalog) {
        hr_log_error("bad email config", HR_LOG_STR("err", errstr));
        return -1;
    }
    st->tls = hr_tls_new(hr_conf_str(cfg, "HERALD_TLS_CA_FILE"), errstr,
                         sizeof(errstr));
    st->transport =
        st->tls
            ? email_transport_new(cfg, st->tls, st->set.concurrency,
                                  st->set.timeout_ms, errstr, sizeof(errstr))
            : NULL;
    if (!st->transport) {
        hr_log_error("cannot set up the email transport",
                     HR_LOG_STR("err", errstr));
        return -1;
    }
    hr_circuit_conf_load(&cc, cfg);
    st->circuit = hr_circuit_new(&cc);
    if (!st->circuit)
        return -1;
    declare_metrics(st, hr_worker_metrics(w));
    hr_log_info("email transport",
                HR_LOG_STR("transport", email_transport_name(st->transport)),
                HR_LOG_STR("from", st->set.from),
                HR_LOG_I64("concurrency", st->set.concurrency));
    return 0;
}

/* The working set of @batch, or NULL. */
static struct email_work *work_of(struct email_state *st,
                                  const struct hr_batch *batch)
{
    for (size_t i = 0; i < HR_ARRAY_SIZE(st->work); i++) {
        if (st->work[i].active && st->work[i].batch == batch)
            return &st->work[i];
    }
    return NULL;
}

static struct email_work *work_free(struct email_state *st)
{
    for (size_t i = 0; i < HR_ARRAY_SIZE(st->work); i++) {
        if (!st->work[i].active)
            return &st->work[i];
    }
    return NULL;
}

/* Parse @batch into @wk and prepare its ingest call. Items that do not
 * parse are left pending and unparsed: handle() dead-letters them. */
static void work_start(struct email_state *st,
                       struct email_work *wk,
                       struct hr_batch *batch)
{
    char errstr[512];

    if (batch->n > wk->cap) {
        free(wk->events);
        free(wk->parsed);
        wk->events = calloc(batch->n, sizeof(*wk->events));
        wk->parsed = calloc(batch->n, sizeof(*wk->parsed));
        HR_ASSERT(wk->events && wk->parsed);
        wk->cap = batch->n;
    }
    wk->batch = batch;
    wk->active = true;
    wk->sent = false;
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];

        wk->parsed[i] = item->outcome == HR_OUT_PENDING &&
                        !email_event_parse(&item->ev, &wk->events[i], errstr,
                                           sizeof(errstr));
    }
    wk->ingest = email_ingest_prepare(st, wk);
}

static void work_end(struct email_work *wk)
{
    email_ingest_free(wk->ingest);
    wk->ingest = NULL;
    wk->active = false;
    wk->sent = false;
}

/*
 * Parse the next batch and send its ingest call while the runtime finishes
 * the previous one, on the ingest connection. Sent only when every earlier
 * batch still waiting for its reply was sent too on this connection, so
 * that replies come back in the order handle() reads them.
 */
void email_submit(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct email_state *st = state;
    struct email_work *wk = work_free(st);
    char errstr[256];

    (void)w;
    if (!wk)
        return;
    work_start(st, wk, batch);
    if (!wk->ingest ||
        hr_redis_connect(st->ingest_redis, errstr, sizeof(errstr)))
        return;
    for (size_t i = 0; i < HR_ARRAY_SIZE(st->work); i++) {
        const struct email_work *o = &st->work[i];

        if (o != wk && o->active && o->ingest &&
            (!o->sent || o->epoch != hr_redis_epoch(st->ingest_redis)))
            return;
    }
    if (!email_ingest_send(st, wk->ingest)) {
        wk->sent = true;
        wk->epoch = hr_redis_epoch(st->ingest_redis);
    }
}

enum hr_batch_result
email_handle(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct email_state *st = state;
    struct email_work *wk = work_of(st, batch);
    enum hr_batch_result res = HR_BATCH_PAUSE;
    char errstr[512];

    if (!wk) {
        /* Not submitted, or a redo: parse again. */
        wk = work_free(st);
        HR_ASSERT(wk);
        work_start(st, wk, batch);
    }
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        struct email_event ev;

        if (item->outcome != HR_OUT_PENDING || wk->parsed[i])
            continue;
        if (email_event_parse(&item->ev, &ev, errstr, sizeof(errstr)))
            hr_item_dead(item, HR_ERR_POISON, "%s", errstr);
    }
    st->events = wk->events;
    st->parsed = wk->parsed;
    if (wk->ingest &&
        email_ingest_finish(st, wk, wk->ingest,
                            wk->sent &&
                                wk->epoch == hr_redis_epoch(st->ingest_redis),
                            errstr, sizeof(errstr))) {
        hr_worker_set_pause_reason(w, "redis unavailable: %s", errstr);
        /* Replies sent after this one can no longer be matched. */
        hr_redis_reset(st->ingest_redis);
        goto out;
    }
    res = email_send_batch(st, batch);
out:
    work_end(wk);
    return res;
}

void email_tick(struct hr_worker *w, void *state)
{
    (void)w;
    email_window_flush(state);
}

void email_fini(struct hr_worker *w, void *state)
{
    struct email_state *st = state;

    (void)w;
    if (!st)
        return;
    for (size_t i = 0; i < HR_ARRAY_SIZE(st->work); i++) {
        email_ingest_free(st->work[i].ingest);
        free(st->work[i].events);
        free(st->work[i].parsed);
    }
    hr_redis_free(st->ingest_redis);
    hr_jsonw_release(&st->jw);
    hr_buf_release(&st->subject, 0);
    hr_buf_release(&st->text, 0);
    hr_buf_release(&st->html, 0);
    hr_buf_release(&st->unsub, 0);
    hr_buf_release(&st->mime, 0);
    hr_buf_release(&st->record, 0);
    email_catalog_free(st->catalog);
    email_transport_free(st->transport);
    hr_circuit_free(st->circuit);
    hr_tls_free(st->tls);
    free(st);
}
