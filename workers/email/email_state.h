/* herald-email's state, shared by its files. Not for other workers. */
#ifndef EMAIL_STATE_H
#define EMAIL_STATE_H

#include "email.h"
#include "hr_buf.h"
#include "hr_circuit.h"
#include "hr_jsonw.h"
#include "hr_redis.h"

struct hr_aws;
struct hr_metric;
struct hr_tls;
struct email_transport;

struct email_settings {
    const char *from;   /* HERALD_EMAIL_FROM (address) */
    const char *domain; /* its domain: Message-IDs */
    const char *send_topic;
    int64_t lease_ms;
    int64_t seen_ms;     /* how long event ids are remembered */
    int64_t sent_ttl_ms; /* how long a sent window is remembered */
    int claim_max;       /* windows per claim call */
    int concurrency;
    long timeout_ms;
};

/** Read the settings from @cfg (already validated). */
void email_settings_load(struct email_settings *s, const struct hr_conf *cfg);

/* --- transports ------------------------------------------------------------
 */

/** One message to send and, after email_transport_send(), its result. */
struct email_out {
    const char *from, *to; /* envelope */
    const char *raw;       /* the MIME message */
    size_t raw_len;
    /* results */
    int result; /* HR_CIRCUIT_SUCCESS or an enum hr_err_class */
    long code;  /* SMTP reply code or HTTP status; 0: none */
    char reason[256];
    int64_t retry_after_ms; /* -1: none */
    double elapsed_s;
};

/** A transport from the settings (HERALD_EMAIL_TRANSPORT: smtp or ses).
 *  Returns NULL with @errstr. */
struct email_transport *email_transport_new(const struct hr_conf *cfg,
                                            const struct hr_tls *tls,
                                            int concurrency,
                                            long timeout_ms,
                                            char *errstr,
                                            size_t errstr_size);
void email_transport_free(struct email_transport *t);

/** "smtp" or "ses": metric label. */
const char *email_transport_name(const struct email_transport *t);

/** "email:smtp" or "email:ses": the circuit and retry destination. */
const char *email_transport_destination(const struct email_transport *t);

/** Called as soon as @outs[@i] has its result (before the others are
 *  done). */
typedef void email_sent_fn(void *opaque, size_t i);

/** Send @n messages, up to the transport's concurrency at a time, and set
 *  each one's result, calling @done (may be NULL) for each as it ends. */
void email_transport_send(struct email_transport *t,
                          struct email_out *outs,
                          size_t n,
                          email_sent_fn *done,
                          void *opaque);

/* --- the worker -------------------------------------------------------------
 */

struct email_state {
    struct email_settings set;
    struct hr_worker *w;
    struct hr_redis *redis;
    const char *prefix;
    struct {
        char due[256], leases[256], fence[256], offsets[256];
    } keys; /* the scripts' fixed keys */
    struct email_catalog *catalog;
    struct hr_tls *tls;
    struct email_transport *transport;
    struct hr_circuit *circuit;

    /* the batch being handled: its work's events */
    struct email_event *events; /* one per item */
    bool *parsed;
    /* a working set per batch submitted or handled (email.c) */
    struct email_work {
        struct hr_batch *batch;
        bool active, sent;
        uint64_t epoch; /* of ingest_redis when sent */
        struct email_event *events;
        bool *parsed;
        size_t cap;
        struct email_ingest *ingest; /* the prepared script call, or NULL */
    } work[3];
    /* ingest calls sent ahead (submit) go on a connection of their own,
     * so that their replies come back in order whatever the timer and the
     * sends ask the runtime's connection meanwhile */
    struct hr_redis *ingest_redis;

    /* scripts */
    struct hr_script ingest_script;
    struct hr_script claim_script;
    struct hr_script done_script;
    struct hr_script sent_script;

    /* scratch */
    struct hr_jsonw jw;
    struct hr_buf subject, text, html, unsub, mime, record;

    /* metrics */
    struct hr_metric *ingested;   /* {category,result} */
    struct hr_metric *sent;       /* {category,mode} */
    struct hr_metric *suppressed; /* {category} */
    struct hr_metric *skipped;    /* {category,reason} */
    struct hr_metric *failed;     /* {class} */
    struct hr_metric *digest_items;
    struct hr_metric *lateness;
    struct hr_metric *duplicates;
    struct hr_metric *lost;
    struct hr_metric *windows; /* {result}: claimed, completed, lost */
    struct hr_metric *latency;
    struct hr_metric *circuit_state;
};

/** The metric label of @category: its name when the catalog names it (a
 *  bounded set of labels), else "other". */
const char *email_category_label(const struct email_state *st,
                                 const char *category);

struct email_ingest;

/** Prepare the script call that adds @wk's notification.email events to
 *  their windows; NULL when the batch has none. */
struct email_ingest *email_ingest_prepare(struct email_state *st,
                                          struct email_work *wk);

/** Send @in on st->ingest_redis without waiting. Returns 0 or -1. */
int email_ingest_send(struct email_state *st, struct email_ingest *in);

/** Read @in's reply (or make the call now when @sent is false) and set the
 *  outcomes of @wk's events. Returns 0, or -1 with @errstr (pause). */
int email_ingest_finish(struct email_state *st,
                        struct email_work *wk,
                        struct email_ingest *in,
                        bool sent,
                        char *errstr,
                        size_t errstr_size);

void email_ingest_free(struct email_ingest *in);

/** The timer: claim due windows, render them into email.send records,
 *  complete them once the records are durable. */
void email_window_flush(struct email_state *st);

/** Send the batch's email.send events and set their outcomes. Returns
 *  HR_BATCH_DONE or HR_BATCH_PAUSE (Redis unavailable). */
enum hr_batch_result email_send_batch(struct email_state *st,
                                      struct hr_batch *batch);

#endif
