/* herald-fanout's lifecycle and batch handler. */
#include "fanout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_normalize.h"
#include "fanout_rules.h"
#include "fanout_value.h"
#include "fanout_webhook.h"
#include "hr_arena.h"
#include "hr_banned.h"
#include "hr_log.h"
#include "hr_metrics.h"

#define FANOUT_KEY_MAX    1024
#define FANOUT_ARENA_KEEP (4 * 1024 * 1024)

const struct hr_conf_spec fanout_conf[] = {
    HR_CONF_STR("HERALD_FANOUT_SOURCE_PREFIX",
                "/herald/fanout",
                0,
                "CloudEvent source of emitted events (+ /<rule>)"),
    HR_CONF_END,
};

struct fanout_state {
    struct fanout_rules rules;
    struct fanout_webhooks *webhooks;
    const char *source_prefix;
    struct hr_metric *routed;
    struct hr_metric *tombstones;
    struct hr_metric *records;
    /* per batch */
    struct fanout_call *calls;
    size_t ncalls, calls_cap;
    json_t *docs;
    struct hr_arena *arena; /* the JSON of one record's routing */
};

/* --- configuration ------------------------------------------------------ */

void fanout_validate(struct hr_conf *cfg)
{
    const json_t *config = hr_conf_json(cfg);
    struct fanout_rules rules;

    if (!config) {
        hr_conf_add_error(cfg, "HERALD_CONFIG: herald-fanout needs a rules "
                               "file (--config rules.json)");
        return;
    }
    (void)fanout_rules_load(&rules, config, cfg);
    fanout_rules_release(&rules);
    fanout_webhooks_free(fanout_webhooks_load(config, cfg, NULL, NULL));
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
    st->webhooks = fanout_webhooks_load(hr_conf_json(cfg), scratch, reg,
                                        hr_conf_str(cfg, "HERALD_TLS_CA_FILE"));
    for (int i = 0; i < hr_conf_error_count(scratch); i++)
        hr_log_error("bad rules", HR_LOG_STR("err", hr_conf_error(scratch, i)));
    hr_conf_free(scratch);
    if (bad || !st->webhooks) {
        fanout_rules_release(&st->rules);
        fanout_webhooks_free(st->webhooks);
        free(st);
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
    *state = st;
    return 0;
}

void fanout_fini(struct hr_worker *w, void *state)
{
    struct fanout_state *st = state;

    (void)w;
    fanout_rules_release(&st->rules);
    fanout_webhooks_free(st->webhooks);
    hr_arena_free(st->arena);
    free(st->calls);
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
    char want[160];
    size_t len;
    const char *p;

    if (!only)
        return true;
    if (t->webhook < 0)
        return false;
    len = (size_t)snprintf(want, sizeof(want), "webhook:%s",
                           fanout_webhook_name(st->webhooks, t->webhook));
    for (p = only; (p = strstr(p, want)); p += len) {
        if ((p == only || p[-1] == ',') && (p[len] == ',' || !p[len]))
            return true;
    }
    return false;
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
    if (st->ncalls == st->calls_cap) {
        st->calls_cap = st->calls_cap ? st->calls_cap * 2 : 64;
        st->calls = realloc(st->calls, st->calls_cap * sizeof(*st->calls));
        HR_ASSERT(st->calls);
    }
    memset(&st->calls[st->ncalls], 0, sizeof(*st->calls));
    return &st->calls[st->ncalls++];
}

/* Emit what one target asks for one document (once, or per element). */
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
    char tbuf[256], tname[200], source[300];

    if (t->for_each) {
        list = fanout_value_lookup(t->for_each, &scope);
        count = json_is_array(list) ? json_array_size(list) : 0;
    }
    if (t->webhook < 0)
        snprintf(tname, sizeof(tname), "%s", t->topic);
    else
        snprintf(tname, sizeof(tname), "webhook:%s",
                 fanout_webhook_name(st->webhooks, t->webhook));
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
            rc = hr_worker_produce(w, t->topic, key, klen, value, len);
            free(value);
            if (rc)
                return -1;
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
                if (run_target(st, w, item, rule, t, doc))
                    return -1;
            }
        }
    }
    return 0;
}

/* The worst result among an item's calls decides its outcome: auth, then
 * permanent, then retryable (with every failed destination named). */
static void settle_calls(struct fanout_state *st, struct hr_batch *batch)
{
    for (size_t c = 0; c < st->ncalls; c++) {
        const struct fanout_call *call = &st->calls[c];
        struct hr_item *item = &batch->items[call->item];
        const char *name = fanout_webhook_name(st->webhooks, call->webhook);
        char dest[sizeof(item->destination)];

        if (call->err_class < 0)
            continue;
        if (call->err_class == HR_ERR_AUTH ||
            call->err_class == HR_ERR_PERMANENT) {
            if (item->outcome == HR_OUT_DEAD && item->err_class == HR_ERR_AUTH)
                continue;
            hr_item_dead(item, (enum hr_err_class)call->err_class,
                         "webhook '%s': %s", name, call->error);
            snprintf(item->destination, sizeof(item->destination), "webhook:%s",
                     name);
            continue;
        }
        if (item->outcome == HR_OUT_DEAD)
            continue;
        if (item->outcome == HR_OUT_RETRY) {
            size_t used = strlen(item->destination);

            /* a list too long for the header keeps the first names; the
             * others are retried with them when the record comes back */
            if (used + strlen(name) + 10 < sizeof(item->destination))
                snprintf(item->destination + used,
                         sizeof(item->destination) - used, ",webhook:%s", name);
            if (call->retry_after_ms > item->retry_after_ms)
                item->retry_after_ms = call->retry_after_ms;
            continue;
        }
        snprintf(dest, sizeof(dest), "webhook:%s", name);
        hr_item_retry(item, (enum hr_err_class)call->err_class, dest,
                      call->retry_after_ms, "webhook '%s': %s", name,
                      call->error);
    }
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
        json_t *docs = json_array();
        char errstr[256], only[sizeof(item->destination)];
        const char *dest;
        size_t dlen = 0;
        bool matched = false;

        dest = hr_item_header(item, "herald-destination", &dlen);
        if (dest && dlen < sizeof(only) &&
            !strncmp(item->topic, "herald.redeliver.", 17)) {
            memcpy(only, dest, dlen);
            only[dlen] = '\0';
        } else {
            only[0] = '\0';
        }
        switch (fanout_normalize(item->value, item->value_len, hr_item_header,
                                 item, docs, errstr, sizeof(errstr))) {
        case FANOUT_NORM_SKIP:
            /* heartbeats, transaction markers, truncates and empty
             * batches are skipped too, but are not tombstones */
            if (strstr(errstr, "tombstone"))
                hr_metric_add(st->tombstones, NULL, 1);
            hr_item_filtered(item);
            break;
        case FANOUT_NORM_ERROR:
            hr_item_dead(item, HR_ERR_POISON, "%s", errstr);
            break;
        case FANOUT_NORM_OK:
            if (route_item(st, w, i, docs, only[0] ? only : NULL, &matched))
                res = HR_BATCH_PAUSE;
            else if (matched)
                hr_item_ok(item);
            else
                hr_item_filtered(item);
            break;
        }
        json_decref(docs);
        hr_arena_leave(previous);
        hr_arena_reset(st->arena, FANOUT_ARENA_KEEP);
        if (res == HR_BATCH_PAUSE)
            goto out;
    }
    if (st->ncalls &&
        fanout_webhooks_perform(st->webhooks, st->calls, st->ncalls)) {
        hr_worker_set_pause_reason(w, "http client failed");
        res = HR_BATCH_PAUSE;
        goto out;
    }
    settle_calls(st, batch);
out:
    for (size_t c = 0; c < st->ncalls; c++)
        free(st->calls[c].body);
    st->ncalls = 0;
    return res;
}
