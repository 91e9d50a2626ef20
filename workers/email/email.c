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
    st->ingest_script = (struct hr_script){"email_ingest", hr_lua_email_ingest,
                                           hr_lua_email_ingest_len, ""};
    st->claim_script = (struct hr_script){"email_claim", hr_lua_email_claim,
                                          hr_lua_email_claim_len, ""};
    st->done_script = (struct hr_script){"email_done", hr_lua_email_done,
                                         hr_lua_email_done_len, ""};
    st->sent_script = (struct hr_script){"email_sent", hr_lua_email_sent,
                                         hr_lua_email_sent_len, ""};
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

static void events_reserve(struct email_state *st, size_t n)
{
    if (n <= st->cap_items)
        return;
    free(st->events);
    free(st->parsed);
    st->events = calloc(n, sizeof(*st->events));
    st->parsed = calloc(n, sizeof(*st->parsed));
    HR_ASSERT(st->events && st->parsed);
    st->cap_items = n;
}

enum hr_batch_result
email_handle(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct email_state *st = state;
    char errstr[512];

    events_reserve(st, batch->n);
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];

        st->parsed[i] = false;
        if (item->outcome != HR_OUT_PENDING)
            continue;
        if (email_event_parse(&item->ev, &st->events[i], errstr,
                              sizeof(errstr))) {
            hr_item_dead(item, HR_ERR_POISON, "%s", errstr);
            continue;
        }
        st->parsed[i] = true;
    }
    if (email_window_ingest(st, batch, errstr, sizeof(errstr))) {
        hr_worker_set_pause_reason(w, "redis unavailable: %s", errstr);
        return HR_BATCH_PAUSE;
    }
    return email_send_batch(st, batch);
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
    free(st->events);
    free(st->parsed);
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
