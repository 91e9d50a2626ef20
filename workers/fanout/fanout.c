/* herald-fanout's lifecycle and batch handler. */
#include "fanout.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_decimal.h"
#include "fanout_normalize.h"
#include "fanout_reject.h"
#include "fanout_rules.h"
#include "fanout_value.h"
#include "hr_arena.h"
#include "hr_circuit.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_msg.h"
#include "hr_park.h"
#include "hr_producer.h"
#include "hr_time.h"
#include "hr_webhook.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define FANOUT_KEY_MAX    1024
#define FANOUT_ARENA_KEEP (4 * 1024 * 1024)
#define FANOUT_EVENT_ID   512
#define FANOUT_FIRST_WAVE 4 /* calls a webhook gets in its first wave */
/* What one record may emit: a for_each over a huge list, or one whose every
 * element carries the whole document ("$", the default data), would
 * otherwise cost memory and calls by the square of the record's size. */
#define FANOUT_FOR_EACH_MAX 10000
#define FANOUT_EMIT_MAX     (16 * 1024 * 1024)

const struct hr_conf_spec fanout_conf[] = {
    HR_CONF_STR("HERALD_FANOUT_SOURCE_PREFIX",
                "/herald/fanout",
                0,
                "CloudEvent source of emitted events (+ /<rule>)"),
    /* webhooks consult the shared circuit breaker (SPEC sections 7, 9) */
    HR_CIRCUIT_CONF_SPECS,
    HR_CONF_END,
};

/* One webhook call of a batch: the shared part (hr_webhook.h), by name or
 * as its members, and what the waves of the batch need. */
struct fanout_call {
    union {
        struct hr_webhook_call hook;
        struct {
            HR_WEBHOOK_CALL_MEMBERS
        };
    };
    size_t item; /* the batch item it belongs to */
    /* 0: may be made; else the enum hr_circuit_state of its destination
     * that refused it */
    int blocked;
    /* per-key ordering (hr_park.h): its entry, SIZE_MAX when its record
     * has no key; parked: not made, an earlier event of its key for this
     * webhook waits in the guard */
    size_t park;
    bool parked;
    bool decided; /* made, refused or parked (the waves are over for it) */
    bool go;      /* make it in this wave */
};

/*
 * The calls of a batch whose circuit report failed: the batch pauses and is
 * handled again, and then takes these results instead of calling again, so
 * that no webhook is called twice for one record within one batch attempt.
 */
struct fanout_carry {
    bool valid;
    size_t nitems;
    int32_t *partitions;       /* per item */
    int64_t *offsets;          /* per item */
    struct fanout_call *calls; /* results and blocked; bodies not kept */
    size_t ncalls;
};

/* What one webhook's own calls of this batch say (slow start, below). */
struct dest_wave {
    size_t quota;      /* calls it may still get in this wave */
    size_t next_quota; /* and in the next one */
    bool used;         /* it got calls in this wave */
    bool skipped;      /* a call of it waits for a later wave */
    int calls, fails, auth_run;
    int blocked; /* 0, or the enum hr_circuit_state its results put it in */
    int64_t wait_until_ms; /* HR_CIRCUIT_THROTTLED: until when */
};

struct fanout_state {
    struct fanout_rules rules;
    struct hr_webhooks *webhooks;
    struct hr_webhook_call **wave; /* the calls made in a wave */
    const char *source_prefix;
    struct hr_metric *routed;
    struct hr_metric *tombstones;
    struct hr_metric *records;
    struct hr_metric *skipped;      /* by kind */
    struct hr_metric *wide_numbers; /* JSON numbers a double rounds */
    struct hr_metric *rejected;     /* batch records dead-lettered alone */
    const char *dlq_topic;
    /* the shared circuit breaker of the webhooks */
    struct hr_circuit *circuit;
    int64_t open_ms;
    int auth_threshold, min_calls; /* the circuit's, for slow start */
    double failure_ratio;
    struct dest_wave *waves; /* per webhook, during a batch's waves */
    char **dests;            /* per webhook: "webhook:<name>" */
    struct hr_metric *circuit_state;
    /* per batch */
    struct fanout_call *calls;
    size_t ncalls, calls_cap;
    const char **call_dests;            /* per call: its destination */
    enum hr_circuit_state *call_states; /* per call */
    bool *call_allowed;                 /* per call */
    int64_t *call_wait;                 /* per call: throttled this long */
    struct hr_circuit_outcome *outs;    /* per call made */
    size_t scratch_cap;
    /* per-key ordering of the webhook calls (hr_park.h) */
    struct hr_park *park;
    /* a batch whose calls were made but not reported (see carry_save);
     * the park client keeps that batch's changes meanwhile */
    struct fanout_carry carry;
    json_t *docs;
    struct hr_arena *arena; /* the JSON of one record's routing */
    size_t emitted;         /* bytes the current record emitted so far */
    char refusal[256];      /* why the current record is dead-lettered */
};

static void carry_clear(struct fanout_carry *carry)
{
    free(carry->partitions);
    free(carry->offsets);
    free(carry->calls);
    memset(carry, 0, sizeof(*carry));
}

/* --- configuration ------------------------------------------------------ */

void fanout_validate(struct hr_conf *cfg)
{
    const json_t *config = hr_conf_json(cfg);
    struct fanout_rules rules;

    if (!config) {
        /* a file that did not load has said why already */
        if (!hr_conf_error_count(cfg))
            hr_conf_add_error(cfg, "HERALD_CONFIG: herald-fanout needs a "
                                   "rules file (--config rules.json)");
        return;
    }
    (void)fanout_rules_load(&rules, config, cfg);
    fanout_rules_release(&rules);
    hr_webhooks_free(hr_webhooks_load(json_object_get(config, "webhooks"),
                                      "webhooks", "herald_fanout", cfg, NULL,
                                      NULL));
    {
        struct hr_circuit_conf cc;
        char errstr[256];

        hr_circuit_conf_load(&cc, cfg);
        if (hr_circuit_conf_validate(&cc, errstr, sizeof(errstr)))
            hr_conf_add_error(cfg, "%s", errstr);
    }
}

/* The circuit client, one "webhook:<name>" destination per webhook and the
 * herald_guard_circuit_state gauge. Returns 0 or -1. */
static int circuit_init(struct fanout_state *st,
                        const struct hr_conf *cfg,
                        struct hr_metrics *reg,
                        size_t nhooks)
{
    struct hr_circuit_conf cc;
    char errstr[256];

    hr_circuit_conf_load(&cc, cfg);
    if (hr_circuit_conf_validate(&cc, errstr, sizeof(errstr))) {
        hr_log_error("bad circuit settings", HR_LOG_STR("err", errstr));
        return -1;
    }
    st->circuit = hr_circuit_new(&cc);
    st->park = hr_park_new();
    st->open_ms = cc.open_ms;
    st->auth_threshold = cc.auth_threshold;
    st->min_calls = cc.min_calls;
    st->failure_ratio = cc.failure_ratio;
    st->dests = calloc(nhooks + 1, sizeof(*st->dests));
    st->waves = calloc(nhooks + 1, sizeof(*st->waves));
    if (!st->circuit || !st->park || !st->dests || !st->waves)
        return -1;
    for (size_t i = 0; i < nhooks; i++) {
        const char *name = hr_webhook_name(st->webhooks, (int)i);
        size_t len = strlen(name) + sizeof("webhook:");

        st->dests[i] = malloc(len);
        if (!st->dests[i])
            return -1;
        snprintf(st->dests[i], len, "webhook:%s", name);
    }
    st->circuit_state = hr_metrics_gauge(
        reg, "herald_guard_circuit_state",
        "Shared circuit of a destination as last seen: 0 closed, "
        "1 half-open, 2 open (or auth-broken)",
        "destination");
    return 0;
}

int fanout_init(struct hr_worker *w, void **state)
{
    struct fanout_state *st = calloc(1, sizeof(*st));
    const struct hr_conf *cfg = hr_worker_conf(w);
    struct hr_conf *scratch = hr_conf_new();
    struct hr_metrics *reg = hr_worker_metrics(w);
    int bad;

    if (!st)
        return -1;
    /* Validated already; errors here would be a bug, reported anyway. */
    bad = fanout_rules_load(&st->rules, hr_conf_json(cfg), scratch);
    st->webhooks = hr_webhooks_load(
        json_object_get(hr_conf_json(cfg), "webhooks"), "webhooks",
        "herald_fanout", scratch, reg, hr_conf_str(cfg, "HERALD_TLS_CA_FILE"));
    for (int i = 0; i < hr_conf_error_count(scratch); i++)
        hr_log_error("bad rules", HR_LOG_STR("err", hr_conf_error(scratch, i)));
    hr_conf_free(scratch);
    if (bad || !st->webhooks) {
        fanout_rules_release(&st->rules);
        hr_webhooks_free(st->webhooks);
        free(st);
        return -1;
    }
    if (circuit_init(st, cfg, reg, hr_webhooks_count(st->webhooks))) {
        fanout_fini(w, st);
        return -1;
    }
    st->source_prefix = hr_conf_str(cfg, "HERALD_FANOUT_SOURCE_PREFIX");
    st->arena = hr_arena_new();
    st->routed = hr_metrics_counter(reg, "herald_fanout_routed_total",
                                    "Events emitted and webhook calls made, "
                                    "by rule and target",
                                    "rule,target");
    st->tombstones = hr_metrics_counter(reg, "herald_fanout_tombstones_total",
                                        "Debezium tombstones skipped", NULL);
    st->records =
        hr_metrics_counter(reg, "herald_fanout_changes_total",
                           "Change documents, by source format", "format");
    st->skipped = hr_metrics_counter(
        reg, "herald_fanout_skipped_total",
        "Valid records that describe no row change, by kind", "kind");
    st->wide_numbers = hr_metrics_counter(
        reg, "herald_fanout_wide_numbers_total",
        "JSON numbers in input records with more than 17 significant "
        "digits, which a double cannot hold exactly",
        NULL);
    st->rejected = hr_metrics_counter(
        reg, "herald_fanout_batch_records_dead_total",
        "Records of a batch dead-lettered alone while the others routed", NULL);
    st->dlq_topic = hr_conf_str(cfg, "HERALD_DLQ_TOPIC");
    *state = st;
    return 0;
}

void fanout_fini(struct hr_worker *w, void *state)
{
    struct fanout_state *st = state;

    (void)w;
    for (size_t i = 0; st->dests && st->dests[i]; i++)
        free(st->dests[i]);
    free(st->dests);
    hr_circuit_free(st->circuit);
    hr_park_free(st->park);
    free(st->waves);
    carry_clear(&st->carry);
    fanout_rules_release(&st->rules);
    hr_webhooks_free(st->webhooks);
    hr_arena_free(st->arena);
    free(st->calls);
    free(st->wave);
    free(st->call_dests);
    free(st->call_states);
    free(st->call_allowed);
    free(st->call_wait);
    free(st->outs);
    free(st);
}

/* --- one batch ------------------------------------------------------------ */

/*
 * A redelivered record (from the guard) names the webhook(s) that failed
 * in herald-destination ("webhook:a,webhook:b"): only those are called
 * again; topic events were already emitted the first time.
 */
static bool target_wanted(const struct fanout_state *st,
                          const struct fanout_target *t,
                          const char *only)
{
    if (!only)
        return true;
    return t->webhook >= 0 &&
           hr_destination_listed(only, st->dests[t->webhook]);
}

static const char *or_default(const json_t *s, const char *def)
{
    return json_is_string(s) ? json_string_value(s) : def;
}

static const char *event_type(const struct fanout_target *t,
                              const json_t *doc,
                              char *buf,
                              size_t size)
{
    const char *type = json_string_value(json_object_get(doc, "type"));

    if (t->type)
        return t->type;
    if (type)
        return type;
    snprintf(buf, size, "%s.%s",
             or_default(json_object_get(doc, "table"), "change"),
             or_default(json_object_get(doc, "op"), "unknown"));
    return buf;
}

static struct fanout_call *new_call(struct fanout_state *st)
{
    st->calls = hr_grow(st->calls, &st->calls_cap, st->ncalls + 1,
                        sizeof(*st->calls), 64);
    memset(&st->calls[st->ncalls], 0, sizeof(*st->calls));
    return &st->calls[st->ncalls++];
}

/* The current record cannot be routed: returns 1 (see run_target). */
static int refuse(struct fanout_state *st, const char *fmt, ...)
    HR_PRINTF(2, 3);

static int refuse(struct fanout_state *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->refusal, sizeof(st->refusal), fmt, ap);
    va_end(ap);
    return 1;
}

/* Count @len more bytes emitted by the current record, refusing it when
 * @times such events would pass FANOUT_EMIT_MAX: the first element of a
 * for_each answers for the whole list, before anything is emitted. */
static int emit_budget(struct fanout_state *st,
                       const struct fanout_rule *rule,
                       size_t len,
                       size_t times)
{
    if (len > (FANOUT_EMIT_MAX - st->emitted) / times)
        return refuse(st,
                      "rule '%s': the record's events add up to more than "
                      "%d bytes",
                      rule->name, FANOUT_EMIT_MAX);
    st->emitted += len;
    return 0;
}

/* Emit what one target asks for one document (once, or per element).
 * Returns 0, -1 when the batch must pause (producer, memory), or 1 when
 * the record must be dead-lettered (st->refusal says why). */
static int run_target(struct fanout_state *st,
                      struct hr_worker *w,
                      size_t item,
                      const struct fanout_rule *rule,
                      size_t tindex,
                      const json_t *doc)
{
    const struct fanout_target *t = &rule->targets[tindex];
    struct fanout_scope scope = {.doc = doc};
    const json_t *list = NULL;
    size_t count = 1;
    char tbuf[256], source[300];
    const char *tname;

    if (t->for_each) {
        list = fanout_value_lookup(t->for_each, &scope);
        count = json_is_array(list) ? json_array_size(list) : 0;
        if (count > FANOUT_FOR_EACH_MAX)
            return refuse(st,
                          "rule '%s' target %zu: for_each over %zu elements, "
                          "more than %d",
                          rule->name, tindex, count, FANOUT_FOR_EACH_MAX);
    }
    /* the routed metric's target: the topic, or "webhook:<name>" */
    tname = t->webhook < 0 ? t->topic : st->dests[t->webhook];
    snprintf(source, sizeof(source), "%s/%s", st->source_prefix, rule->name);
    for (size_t i = 0; i < count; i++) {
        char index[24], id[37], key[FANOUT_KEY_MAX];
        const char *parts[5];
        json_t *data;

        snprintf(index, sizeof(index), "%zu", i);
        parts[0] = json_string_value(json_object_get(doc, "id"));
        parts[1] = rule->name;
        snprintf(tbuf, sizeof(tbuf), "%zu", tindex);
        parts[2] = tbuf;
        parts[3] = list ? index : "-";
        hr_event_derive_id(id, parts, 4);
        scope.item = list ? json_array_get(list, i) : NULL;
        scope.index = i;
        data = fanout_value_eval(t->data, &scope);
        if (t->webhook >= 0) {
            struct fanout_call *call = new_call(st);

            call->webhook = t->webhook;
            call->item = item;
            memcpy(call->id, id, sizeof(id));
            call->body =
                hr_arena_json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
            call->body_len = call->body ? strlen(call->body) : 0;
            json_decref(data);
            if (!call->body)
                return -1;
            if (emit_budget(st, rule, call->body_len, i ? 1 : count))
                return 1;
        } else {
            char type[256];
            size_t len, klen;
            char *value;
            int rc;

            klen = t->key
                       ? fanout_value_string(t->key, &scope, key, sizeof(key))
                       : (size_t)snprintf(key, sizeof(key), "%s", parts[0]);
            value = hr_event_serialize(
                id, source, event_type(t, doc, type, sizeof(type)),
                json_string_value(json_object_get(doc, "table")), data, &len);
            if (!value)
                return -1;
            rc = emit_budget(st, rule, len, i ? 1 : count);
            if (!rc)
                rc = hr_worker_produce(w, t->topic, key, klen, value, len);
            free(value);
            if (rc == HR_PRODUCE_REFUSED)
                return refuse(st,
                              "rule '%s' target %zu: an event of %zu bytes, "
                              "more than the producer's message.max.bytes",
                              rule->name, tindex, len);
            if (rc)
                return rc;
        }
        hr_metric_add(st->routed, (const char *[]){rule->name, tname}, 1);
    }
    return 0;
}

/* Route every document of one record; returns whether any rule matched. */
static int route_item(struct fanout_state *st,
                      struct hr_worker *w,
                      size_t item,
                      const json_t *docs,
                      const char *only,
                      bool *matched)
{
    size_t d;
    json_t *doc;

    json_array_foreach(docs, d, doc)
    {
        const char *format = json_string_value(
            json_object_get(json_object_get(doc, "source"), "format"));

        hr_metric_add(st->records,
                      (const char *[]){format ? format : "unknown"}, 1);
        for (size_t r = 0; r < st->rules.n; r++) {
            const struct fanout_rule *rule = &st->rules.rules[r];

            if (!fanout_rule_matches(rule, doc))
                continue;
            *matched = true;
            for (size_t t = 0; t < rule->ntargets; t++) {
                if (!target_wanted(st, &rule->targets[t], only))
                    continue;
                int rc = run_target(st, w, item, rule, t, doc);

                if (rc)
                    return rc;
            }
        }
    }
    return 0;
}

/* --- the circuit --------------------------------------------------------- */

static void scratch_reserve(struct fanout_state *st, size_t n)
{
    if (n <= st->scratch_cap)
        return;
    st->scratch_cap = n * 2;
    st->call_dests =
        realloc(st->call_dests, st->scratch_cap * sizeof(*st->call_dests));
    st->call_states =
        realloc(st->call_states, st->scratch_cap * sizeof(*st->call_states));
    st->call_allowed =
        realloc(st->call_allowed, st->scratch_cap * sizeof(*st->call_allowed));
    st->call_wait =
        realloc(st->call_wait, st->scratch_cap * sizeof(*st->call_wait));
    st->outs = realloc(st->outs, st->scratch_cap * sizeof(*st->outs));
    HR_ASSERT(st->call_dests && st->call_states && st->call_allowed &&
              st->call_wait && st->outs);
}

static void set_gauge(struct fanout_state *st,
                      const char *dest,
                      enum hr_circuit_state state)
{
    hr_metric_set(st->circuit_state, (const char *[]){dest},
                  hr_circuit_state_gauge(state));
}

/*
 * One check for every call of the batch: a call to a destination that is
 * open, auth-broken or throttled, or half-open with its probes taken, is
 * blocked (not made). Returns 0, or -1 with @errstr (Redis): nothing was
 * called yet.
 */
static int circuit_check(struct fanout_state *st,
                         struct hr_worker *w,
                         char *errstr,
                         size_t errstr_size)
{
    scratch_reserve(st, st->ncalls);
    for (size_t c = 0; c < st->ncalls; c++)
        st->call_dests[c] = st->dests[st->calls[c].webhook];
    if (hr_circuit_check(st->circuit, hr_worker_redis(w), st->call_dests,
                         st->ncalls, hr_time_now_ms(), st->call_states,
                         st->call_allowed, st->call_wait, errstr, errstr_size))
        return -1;
    for (size_t c = 0; c < st->ncalls; c++) {
        struct fanout_call *call = &st->calls[c];

        set_gauge(st, st->call_dests[c], st->call_states[c]);
        call->blocked = st->call_allowed[c] ? 0 : (int)st->call_states[c];
        /* a closed circuit allows every call; be safe anyway */
        if (!st->call_allowed[c] && call->blocked == HR_CIRCUIT_CLOSED)
            call->blocked = HR_CIRCUIT_OPEN;
        if (call->blocked == HR_CIRCUIT_THROTTLED)
            call->retry_after_ms = st->call_wait[c];
    }
    return 0;
}

/* One report of the outcome of every call made. Returns 0, or -1 with
 * @errstr (Redis): nothing was recorded. */
static int circuit_report(struct fanout_state *st,
                          struct hr_worker *w,
                          char *errstr,
                          size_t errstr_size)
{
    size_t n = 0;

    scratch_reserve(st, st->ncalls);
    for (size_t c = 0; c < st->ncalls; c++) {
        const struct fanout_call *call = &st->calls[c];

        if (call->blocked || call->parked)
            continue;
        st->outs[n].destination = st->dests[call->webhook];
        st->outs[n].result =
            call->err_class < 0 ? HR_CIRCUIT_SUCCESS : call->err_class;
        st->outs[n].retry_after_ms = call->retry_after_ms;
        n++;
    }
    if (hr_circuit_report(st->circuit, hr_worker_redis(w), st->outs, n,
                          hr_time_now_ms(), st->call_states, errstr,
                          errstr_size))
        return -1;
    for (size_t i = 0; i < n; i++)
        set_gauge(st, st->outs[i].destination, st->call_states[i]);
    return 0;
}

/* Whether @batch holds the records the carry was saved for. */
static bool carry_matches(const struct fanout_carry *carry,
                          const struct hr_batch *batch)
{
    if (!carry->valid || carry->nitems != batch->n)
        return false;
    for (size_t i = 0; i < batch->n; i++) {
        if (carry->partitions[i] != batch->items[i].partition ||
            carry->offsets[i] != batch->items[i].offset)
            return false;
    }
    return true;
}

/* Keep the results of this batch's calls for when it is handled again. */
static void carry_save(struct fanout_state *st, const struct hr_batch *batch)
{
    struct fanout_carry *carry = &st->carry;

    carry_clear(carry);
    carry->partitions = malloc((batch->n + 1) * sizeof(*carry->partitions));
    carry->offsets = malloc((batch->n + 1) * sizeof(*carry->offsets));
    carry->calls = malloc((st->ncalls + 1) * sizeof(*carry->calls));
    HR_ASSERT(carry->partitions && carry->offsets && carry->calls);
    for (size_t i = 0; i < batch->n; i++) {
        carry->partitions[i] = batch->items[i].partition;
        carry->offsets[i] = batch->items[i].offset;
    }
    memcpy(carry->calls, st->calls, st->ncalls * sizeof(*carry->calls));
    for (size_t c = 0; c < st->ncalls; c++)
        carry->calls[c].body = NULL;
    carry->nitems = batch->n;
    carry->ncalls = st->ncalls;
    carry->valid = true;
}

/* Take the saved results when @batch is the one they belong to and routed
 * to the same calls again; returns whether it did. */
static bool carry_restore(struct fanout_state *st, const struct hr_batch *batch)
{
    struct fanout_carry *carry = &st->carry;
    bool same = carry_matches(carry, batch) && carry->ncalls == st->ncalls;

    for (size_t c = 0; same && c < st->ncalls; c++)
        same = carry->calls[c].webhook == st->calls[c].webhook &&
               carry->calls[c].item == st->calls[c].item &&
               !strcmp(carry->calls[c].id, st->calls[c].id);
    if (same) {
        for (size_t c = 0; c < st->ncalls; c++) {
            char *body = st->calls[c].body;

            st->calls[c] = carry->calls[c];
            st->calls[c].body = body;
        }
    }
    carry_clear(carry);
    return same;
}

/* --- per-key ordering and waves --------------------------------------------
 */

/* The herald-destination list of a redelivered record into @only, or "". */
static void redelivered_only(struct hr_item *item, char *only, size_t size)
{
    size_t dlen = 0;
    const char *dest = hr_item_header(item, "herald-destination", &dlen);

    only[0] = '\0';
    if (dest && dlen < size && !strncmp(item->topic, "herald.redeliver.", 17)) {
        memcpy(only, dest, dlen);
        only[dlen] = '\0';
    }
}

/*
 * One park entry per call of a record with a key, in batch order (calls are
 * made item by item). A redelivery for a webhook that this record no longer
 * calls (its rules changed) releases its event there, so that it cannot
 * hold the key.
 */
static void
park_add(struct fanout_state *st, struct hr_worker *w, struct hr_batch *batch)
{
    char eid[FANOUT_EVENT_ID], only[HR_ITEM_DEST_MAX];
    size_t c = 0;

    hr_park_reset(st->park);
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        bool have_id = item->key && item->key_len &&
                       hr_park_event_id(eid, sizeof(eid), hr_worker_name(w),
                                        item->msg) >= 0;

        size_t first = c; /* the item's calls are [first, c) */

        for (; c < st->ncalls && st->calls[c].item == i; c++) {
            st->calls[c].park = SIZE_MAX;
            if (have_id)
                st->calls[c].park =
                    hr_park_add(st->park, st->dests[st->calls[c].webhook],
                                item->key, item->key_len, eid);
        }
        if (!have_id || item->outcome != HR_OUT_OK)
            continue;
        redelivered_only(item, only, sizeof(only));
        for (size_t k = 0; only[0] && k < hr_webhooks_count(st->webhooks);
             k++) {
            bool called = false;

            for (size_t d = first; d < c && !called; d++)
                called = st->calls[d].webhook == (int)k;
            if (!called && hr_destination_listed(only, st->dests[k]))
                hr_park_release(st->park,
                                hr_park_add(st->park, st->dests[k], item->key,
                                            item->key_len, eid));
        }
    }
}

static bool call_failed_retryable(const struct fanout_call *call)
{
    return call->err_class == HR_ERR_TRANSIENT ||
           call->err_class == HR_ERR_THROTTLED;
}


/* After a wave: what the shared circuit will say once it hears these
 * results (hr_circuit.h), decided here so that the rest of the batch
 * does not call a destination that is failing. */
static void dest_wave_judge(const struct fanout_state *st,
                            struct dest_wave *d,
                            const struct fanout_call *call)
{
    d->calls++;
    switch (call->err_class) {
    case HR_ERR_AUTH:
        d->auth_run++;
        break;
    case HR_ERR_TRANSIENT:
    case HR_ERR_THROTTLED:
        d->fails++;
        if (call->retry_after_ms > 0) {
            int64_t until = hr_time_now_ms() + call->retry_after_ms;

            d->blocked = HR_CIRCUIT_THROTTLED;
            if (until > d->wait_until_ms)
                d->wait_until_ms = until;
        }
        break;
    default: /* a success or a permanent failure: it answers */
        d->auth_run = 0;
        break;
    }
    if (d->auth_run >= st->auth_threshold)
        d->blocked = HR_CIRCUIT_AUTH_BROKEN;
    else if (!d->blocked && d->calls >= st->min_calls &&
             d->fails >= st->failure_ratio * d->calls)
        d->blocked = HR_CIRCUIT_OPEN;
}

/*
 * Make the batch's calls in waves. Calls of one (webhook, key) go one
 * after the other, in their records' order; a call whose key has an
 * earlier event waiting in the guard, or whose predecessor in this batch
 * failed, is parked (not made). And each webhook starts slowly: at most
 * FANOUT_FIRST_WAVE calls in its first wave, four times more in each next
 * one, so that a destination that refuses our credentials or fails gets a
 * few calls, not a whole batch, before this batch's own results stop the
 * rest (as the shared circuit will). Returns 0, or -1 when the HTTP client
 * failed.
 */
static int run_waves(struct fanout_state *st)
{
    size_t nhooks = hr_webhooks_count(st->webhooks);
    struct dest_wave *dw = st->waves;

    memset(dw, 0, nhooks * sizeof(*dw));
    for (size_t d = 0; d < nhooks; d++)
        dw[d].next_quota = FANOUT_FIRST_WAVE;
    for (size_t c = 0; c < st->ncalls; c++) {
        st->calls[c].decided = false;
        st->calls[c].go = false;
        st->calls[c].parked = false;
    }
    for (;;) {
        size_t ngo = 0;

        for (size_t d = 0; d < nhooks; d++) {
            dw[d].quota = dw[d].next_quota;
            dw[d].used = false;
            dw[d].skipped = false;
        }
        for (size_t c = 0; c < st->ncalls; c++) {
            struct fanout_call *call = &st->calls[c];
            struct dest_wave *d = &dw[call->webhook];

            if (call->decided)
                continue;
            if (!call->blocked && d->blocked) {
                call->blocked = d->blocked;
                if (d->blocked == HR_CIRCUIT_THROTTLED) {
                    int64_t left = d->wait_until_ms - hr_time_now_ms();

                    call->retry_after_ms = left > 0 ? left : 0;
                }
            }
            if (!call->blocked && !d->quota) {
                d->skipped = true; /* its webhook's share is taken */
                continue;
            }
            /* a refused call after a skipped one of its webhook waits too:
             * settling it now could put it before an earlier record of its
             * key */
            if (call->blocked && d->skipped)
                continue;
            if (call->park != SIZE_MAX) {
                enum hr_park_verdict v = hr_park_next(st->park, call->park);

                if (v == HR_PARK_WAIT)
                    continue;
                if (v == HR_PARK_PARK) {
                    call->parked = true;
                    call->decided = true;
                    continue;
                }
            }
            call->decided = true;
            if (call->blocked) {
                /* refused by the circuit: handed to the guard, or (auth
                 * broken) dead-lettered */
                if (call->park != SIZE_MAX)
                    hr_park_finish(st->park, call->park,
                                   call->blocked == HR_CIRCUIT_AUTH_BROKEN
                                       ? HR_PARK_DONE
                                       : HR_PARK_RETRY);
                continue;
            }
            call->go = true;
            d->quota--;
            d->used = true;
            ngo++;
        }
        if (!ngo)
            return 0;
        st->wave = realloc(st->wave, ngo * sizeof(*st->wave));
        HR_ASSERT(st->wave);
        ngo = 0;
        for (size_t c = 0; c < st->ncalls; c++) {
            if (st->calls[c].go)
                st->wave[ngo++] = &st->calls[c].hook;
        }
        if (hr_webhooks_perform(st->webhooks, st->wave, ngo))
            return -1;
        for (size_t c = 0; c < st->ncalls; c++) {
            struct fanout_call *call = &st->calls[c];

            if (!call->go)
                continue;
            call->go = false;
            dest_wave_judge(st, &dw[call->webhook], call);
            if (call->park != SIZE_MAX)
                hr_park_finish(st->park, call->park,
                               call_failed_retryable(call) ? HR_PARK_RETRY
                                                           : HR_PARK_DONE);
        }
        for (size_t d = 0; d < nhooks; d++) {
            if (dw[d].used && dw[d].next_quota < SIZE_MAX / 4)
                dw[d].next_quota *= 4;
        }
    }
}

/* An item that ends dead-lettered produces no retry record: whatever of it
 * joined a queue leaves it again, or it would hold its key. */
static void park_release_dead(struct fanout_state *st,
                              const struct hr_batch *batch)
{
    for (size_t c = 0; c < st->ncalls; c++) {
        const struct fanout_call *call = &st->calls[c];

        if (call->park != SIZE_MAX &&
            batch->items[call->item].outcome == HR_OUT_DEAD)
            hr_park_release(st->park, call->park);
    }
}

/* --- outcomes ------------------------------------------------------------- */

/* The result of a call that was not made: refused by the circuit (open,
 * half-open without probes left, throttled, auth-broken) or parked.
 * Returns whether it is a hand-off to the guard that spends no attempt. */
static bool not_made(const struct fanout_state *st, struct fanout_call *call)
{
    if (call->parked) {
        call->err_class = HR_ERR_TRANSIENT;
        call->retry_after_ms = -1;
        snprintf(call->error, sizeof(call->error), "%s", HR_PARK_REASON);
        return true;
    }
    switch (call->blocked) {
    case 0:
        return false;
    case HR_CIRCUIT_AUTH_BROKEN:
        call->err_class = HR_ERR_AUTH;
        snprintf(call->error, sizeof(call->error), "%s (auth broken)",
                 HR_CIRCUIT_OPEN_REASON);
        return false;
    case HR_CIRCUIT_THROTTLED:
        call->err_class = HR_ERR_THROTTLED;
        snprintf(call->error, sizeof(call->error), "%s",
                 HR_CIRCUIT_THROTTLED_REASON);
        return true;
    default:
        call->err_class = HR_ERR_TRANSIENT;
        call->retry_after_ms = st->open_ms;
        snprintf(call->error, sizeof(call->error), "%s",
                 HR_CIRCUIT_OPEN_REASON);
        return true;
    }
}

/*
 * The worst result among an item's calls decides its outcome: auth, then
 * permanent, then retryable (with every failed destination named). A call
 * to an auth-broken destination counts as an auth failure; a call that was
 * not made otherwise (circuit, throttle, parked) is retried with its
 * reason only when no call of the item was made and failed (pass 2), so
 * that a record whose herald-error says so spent no attempt.
 */
static void settle_calls(struct fanout_state *st, struct hr_batch *batch)
{
    for (int pass = 1; pass <= 2; pass++) {
        for (size_t c = 0; c < st->ncalls; c++) {
            struct fanout_call *call = &st->calls[c];
            struct hr_item *item = &batch->items[call->item];
            const char *name = hr_webhook_name(st->webhooks, call->webhook);
            const char *dest = st->dests[call->webhook];
            bool handoff = not_made(st, call);

            if (call->err_class < 0 || handoff != (pass == 2))
                continue;
            if (call->err_class == HR_ERR_AUTH ||
                call->err_class == HR_ERR_PERMANENT) {
                if (item->outcome == HR_OUT_DEAD &&
                    item->err_class == HR_ERR_AUTH)
                    continue;
                hr_item_dead(item, (enum hr_err_class)call->err_class,
                             "webhook '%s': %s", name, call->error);
                hr_item_set_destination(item, dest);
                continue;
            }
            if (item->outcome == HR_OUT_DEAD)
                continue;
            if (item->outcome == HR_OUT_RETRY) {
                /* a list too long for the header keeps the first names;
                 * the others are retried with them when the record comes
                 * back */
                hr_item_add_destination(item, dest);
                if (!handoff && call->retry_after_ms > item->retry_after_ms)
                    item->retry_after_ms = call->retry_after_ms;
                continue;
            }
            if (handoff)
                hr_item_retry(item, (enum hr_err_class)call->err_class, dest,
                              call->retry_after_ms, "%s", call->error);
            else
                hr_item_retry(item, (enum hr_err_class)call->err_class, dest,
                              call->retry_after_ms, "webhook '%s': %s", name,
                              call->error);
        }
    }
}

/* What a skipped record was, for herald_fanout_skipped_total{kind}: the
 * reasons of fanout_normalize() name it. */
static const char *skip_kind(const char *reason)
{
    static const char *const kinds[][2] = {
        {"tombstone", "tombstone"},     {"heartbeat", "heartbeat"},
        {"transaction", "transaction"}, {"schema change", "schema_change"},
        {"truncate", "truncate"},       {"message event", "message"},
        {"empty batch", "empty_batch"},
    };

    for (size_t i = 0; i < HR_ARRAY_SIZE(kinds); i++) {
        if (strstr(reason, kinds[i][0]))
            return kinds[i][1];
    }
    return "other";
}

/* hr_event_header_at_fn over an item's message. */
static int item_header_at(void *opaque,
                          size_t idx,
                          const char **name,
                          const void **value,
                          size_t *len)
{
    const struct hr_item *item = opaque;

    return item->msg ? hr_msg_header_at(item->msg, idx, name, value, len) : -1;
}

/* Normalize one item into @docs, and @rejects for the bad records of a
 * batch; counts wide numbers. */
static enum fanout_norm_result normalize_item(struct fanout_state *st,
                                              struct hr_item *item,
                                              json_t *docs,
                                              json_t *rejects,
                                              char *errstr,
                                              size_t errstr_size)
{
    const struct fanout_input in = {
        .value = item->value,
        .len = item->value_len,
        .key = item->key,
        .key_len = item->key_len,
        .get_header = hr_item_header,
        .header_at = item_header_at,
        .opaque = item,
    };
    size_t wide = fanout_decimal_count_wide(item->value, item->value_len);

    if (wide)
        hr_metric_add(st->wide_numbers, NULL, wide);
    return fanout_normalize_input(&in, docs, rejects, errstr, errstr_size);
}

enum hr_batch_result
fanout_handle(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct fanout_state *st = state;
    enum hr_batch_result res = HR_BATCH_DONE;

    st->ncalls = 0;
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        /* All JSON of one record dies with it: take it from the arena. */
        struct hr_arena *previous = hr_arena_enter(st->arena);
        json_t *docs = json_array(), *rejects = json_array();
        char errstr[256], only[HR_ITEM_DEST_MAX];
        bool matched = false;

        redelivered_only(item, only, sizeof(only));
        switch (
            normalize_item(st, item, docs, rejects, errstr, sizeof(errstr))) {
        case FANOUT_NORM_SKIP:
            /* heartbeats, transaction markers, schema changes, truncates
             * and empty batches are skipped too, but are not tombstones */
            if (strstr(errstr, "tombstone"))
                hr_metric_add(st->tombstones, NULL, 1);
            hr_metric_add(st->skipped, (const char *[]){skip_kind(errstr)}, 1);
            hr_item_filtered(item);
            break;
        case FANOUT_NORM_ERROR:
            hr_item_dead(item, HR_ERR_POISON, "%s", errstr);
            break;
        case FANOUT_NORM_OK: {
            size_t calls0 = st->ncalls;
            int rc;

            st->emitted = 0;
            /* a redelivery's bad records were dead-lettered the first
             * time */
            if (!only[0] && json_array_size(rejects) > 0) {
                if (fanout_reject_send(w, item, st->dlq_topic, rejects, errstr,
                                       sizeof(errstr))) {
                    hr_worker_set_pause_reason(w, "dead letter: %s", errstr);
                    res = HR_BATCH_PAUSE;
                    break;
                }
                hr_metric_add(st->rejected, NULL, json_array_size(rejects));
            }
            rc = route_item(st, w, i, docs, only[0] ? only : NULL, &matched);
            if (rc > 0) {
                /* none of its calls is made (topic events already queued
                 * stay: a redrive re-emits them with the same ids) */
                while (st->ncalls > calls0)
                    free(st->calls[--st->ncalls].body);
                hr_item_dead(item, HR_ERR_POISON, "%s", st->refusal);
            } else if (rc < 0) {
                res = HR_BATCH_PAUSE;
            } else if (matched) {
                hr_item_ok(item);
            } else {
                hr_item_filtered(item);
            }
            break;
        }
        }
        json_decref(docs);
        json_decref(rejects);
        hr_arena_leave(previous);
        hr_arena_reset(st->arena, FANOUT_ARENA_KEEP);
        if (res == HR_BATCH_PAUSE)
            goto out;
    }
    if (st->ncalls && !carry_restore(st, batch)) {
        char errstr[256];

        park_add(st, w, batch);
        if (circuit_check(st, w, errstr, sizeof(errstr)) ||
            hr_park_check(st->park, hr_worker_redis(w), errstr,
                          sizeof(errstr))) {
            hr_worker_set_pause_reason(w, "redis unavailable: circuit: %s",
                                       errstr);
            res = HR_BATCH_PAUSE;
            goto out;
        }
        if (run_waves(st)) {
            hr_worker_set_pause_reason(w, "http client failed");
            res = HR_BATCH_PAUSE;
            goto out;
        }
    }
    if (st->ncalls) {
        char errstr[256];

        settle_calls(st, batch);
        park_release_dead(st, batch);
        /* the queues before the retry records: a later record of the same
         * key must find its predecessor parked */
        if (hr_park_settle(st->park, hr_worker_redis(w), hr_time_now_ms(),
                           errstr, sizeof(errstr)) ||
            circuit_report(st, w, errstr, sizeof(errstr))) {
            /* the calls were made: keep their results for the redo */
            carry_save(st, batch);
            hr_worker_set_pause_reason(w, "redis unavailable: circuit: %s",
                                       errstr);
            res = HR_BATCH_PAUSE;
            goto out;
        }
    } else {
        carry_clear(&st->carry);
    }
out:
    for (size_t c = 0; c < st->ncalls; c++)
        free(st->calls[c].body);
    st->ncalls = 0;
    return res;
}
