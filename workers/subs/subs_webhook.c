/*
 * herald-subs: the optional backend webhooks (subs.h tells the story).
 *
 * The config file's "subs": {"webhooks": {"<name>": {url, method,
 * timeout_ms, headers, auth}}} (common/delivery/hr_webhook.h: JWT or bearer
 * service auth, as herald-fanout's webhooks) each receive every
 * entitlement.changed the worker emits, as its CloudEvent JSON with
 * Idempotency-Key set to the event id. The calls of a batch are made
 * together once its changes are applied and their events produced; an
 * item's outcome waits for them:
 * - every call 2xx: the item is done (ok, or duplicate for a redelivered
 *   notification: its event and its calls are made again, with the same
 *   ids, since the first ones may have been lost);
 * - a 401/403 or another 4xx: dead letter (auth / permanent), the webhook
 *   named; the entitlement itself is applied;
 * - 429, 5xx or no answer: to the guard for "webhook:<name>" (Retry-After
 *   honoured); when it comes back it is a duplicate for Redis and calls
 *   again.
 * Each webhook's shared circuit ("webhook:<name>") is asked first: a call
 * it holds back is not made, and its item goes to the guard without
 * spending an attempt (or to the dead letters when the webhook's auth is
 * broken); the calls made report their outcomes to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_conf.h"
#include "hr_log.h"
#include "hr_retry.h"
#include "subs.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* The "webhooks" object of the config file's "subs", or NULL. */
static const json_t *hooks_of(const struct hr_conf *cfg)
{
    const json_t *subs = json_object_get(hr_conf_json(cfg), "subs");

    return json_object_get(subs, "webhooks");
}

void subs_webhooks_validate(struct hr_conf *cfg)
{
    hr_webhooks_free(hr_webhooks_load(hooks_of(cfg), "subs.webhooks",
                                      "herald_subs", cfg, NULL, NULL));
}

int subs_webhooks_init(struct subs_state *st,
                       const struct hr_conf *cfg,
                       struct hr_metrics *reg)
{
    struct hr_conf *scratch;
    size_t n;

    if (!hooks_of(cfg))
        return 0;
    /* Validated already (subs_validate()); problems here are logged. */
    scratch = hr_conf_new();
    st->webhooks =
        hr_webhooks_load(hooks_of(cfg), "subs.webhooks", "herald_subs", scratch,
                         reg, hr_conf_str(cfg, "HERALD_TLS_CA_FILE"));
    for (int i = 0; i < hr_conf_error_count(scratch); i++)
        hr_log_error("bad subs webhooks",
                     HR_LOG_STR("err", hr_conf_error(scratch, i)));
    hr_conf_free(scratch);
    if (!st->webhooks)
        return -1;
    n = hr_webhooks_count(st->webhooks);
    st->hook_dests = calloc(n + 1, sizeof(*st->hook_dests));
    HR_ASSERT(st->hook_dests);
    for (size_t i = 0; i < n; i++) {
        const char *name = hr_webhook_name(st->webhooks, (int)i);
        size_t len = strlen(name) + sizeof("webhook:");

        st->hook_dests[i] = malloc(len);
        HR_ASSERT(st->hook_dests[i]);
        snprintf(st->hook_dests[i], len, "webhook:%s", name);
        hr_log_info("subs webhook", HR_LOG_STR("webhook", name));
    }
    return 0;
}

void subs_webhooks_queue(struct subs_state *st,
                         struct hr_item *item,
                         bool duplicate,
                         const char *event_id,
                         const char *event,
                         size_t len)
{
    size_t n = hr_webhooks_count(st->webhooks);

    if (st->nhooks + n > st->hooks_cap) {
        st->hooks_cap = 2 * (st->nhooks + n) + 16;
        st->hooks = realloc(st->hooks, st->hooks_cap * sizeof(*st->hooks));
        st->hook_calls =
            realloc(st->hook_calls, st->hooks_cap * sizeof(*st->hook_calls));
        HR_ASSERT(st->hooks && st->hook_calls);
    }
    for (size_t i = 0; i < n; i++) {
        struct subs_hook *h = &st->hooks[st->nhooks++];

        memset(h, 0, sizeof(*h));
        h->item = item;
        h->duplicate = duplicate;
        h->call.webhook = (int)i;
        snprintf(h->call.id, sizeof(h->call.id), "%s", event_id);
        h->call.body = malloc(len + 1);
        HR_ASSERT(h->call.body);
        memcpy(h->call.body, event, len);
        h->call.body[len] = '\0';
        h->call.body_len = len;
    }
}

void subs_webhooks_clear(struct subs_state *st)
{
    for (size_t i = 0; i < st->nhooks; i++)
        free(st->hooks[i].call.body);
    st->nhooks = 0;
}

/* The outcome of the item whose calls are @hooks[0 .. @n): the worst
 * result decides (auth, then permanent, then one the circuit held back,
 * then retryable). */
static void
decide(struct subs_state *st, const struct subs_hook *hooks, size_t n)
{
    const struct subs_hook *worst = NULL, *held = NULL;

    for (size_t i = 0; i < n; i++) {
        int cls = hooks[i].call.err_class;

        if (hooks[i].held && !held)
            held = &hooks[i];
        if (hooks[i].held || cls < 0)
            continue;
        if (!worst || cls == HR_ERR_AUTH ||
            (cls == HR_ERR_PERMANENT && worst->call.err_class != HR_ERR_AUTH))
            worst = &hooks[i];
    }
    if (held && (!worst || (worst->call.err_class != HR_ERR_AUTH &&
                            worst->call.err_class != HR_ERR_PERMANENT))) {
        hr_item_held_back(hooks[0].item, (int)held->held_state,
                          st->hook_dests[held->call.webhook],
                          held->held_wait_ms);
        return;
    }
    if (!worst) {
        if (hooks[0].duplicate)
            hr_item_duplicate(hooks[0].item);
        else
            hr_item_ok(hooks[0].item);
        return;
    }
    if (worst->call.err_class == HR_ERR_AUTH ||
        worst->call.err_class == HR_ERR_PERMANENT)
        hr_item_dead(hooks[0].item, (enum hr_err_class)worst->call.err_class,
                     "webhook %s: %s",
                     hr_webhook_name(st->webhooks, worst->call.webhook),
                     worst->call.error);
    else
        hr_item_retry(hooks[0].item, (enum hr_err_class)worst->call.err_class,
                      st->hook_dests[worst->call.webhook],
                      worst->call.retry_after_ms, "webhook %s: %s",
                      hr_webhook_name(st->webhooks, worst->call.webhook),
                      worst->call.error);
}

/* Ask the circuits for every call of the batch: the ones allowed go into
 * st->hook_calls, the others are marked held. Returns how many go. */
static size_t hooks_allowed(struct subs_state *st)
{
    size_t n = st->nhooks, go = 0;
    const char **dests = calloc(n, sizeof(*dests));
    struct subs_circuit_verdict *v;

    HR_ASSERT(dests);
    for (size_t i = 0; i < n; i++)
        dests[i] = st->hook_dests[st->hooks[i].call.webhook];
    v = subs_circuit_check(st, dests, n);
    for (size_t i = 0; i < n; i++) {
        struct subs_hook *h = &st->hooks[i];

        h->held = !v[i].allowed;
        h->held_state = v[i].state;
        h->held_wait_ms = v[i].wait_ms;
        if (v[i].allowed)
            st->hook_calls[go++] = &h->call;
    }
    free(dests);
    free(v);
    return go;
}

/* Report the outcomes of the @n calls made to their circuits. */
static void hooks_report(struct subs_state *st, size_t n)
{
    struct hr_circuit_outcome *outs = calloc(n + 1, sizeof(*outs));

    HR_ASSERT(outs);
    for (size_t i = 0; i < n; i++) {
        const struct hr_webhook_call *c = st->hook_calls[i];

        outs[i] = (struct hr_circuit_outcome){st->hook_dests[c->webhook],
                                              c->err_class, c->retry_after_ms};
    }
    subs_circuit_report(st, outs, n);
    free(outs);
}

enum subs_step subs_webhooks_perform(struct subs_state *st)
{
    size_t i, j, go;

    if (!st->nhooks)
        return SUBS_STEP_DONE;
    go = hooks_allowed(st);
    if (go && hr_webhooks_perform(st->webhooks, st->hook_calls, go)) {
        /* Our HTTP client or a signature failed: the items keep no
         * outcome and the batch is handled again. */
        subs_webhooks_clear(st);
        hr_worker_set_pause_reason(st->w, "webhook calls could not be made");
        return SUBS_STEP_PAUSE;
    }
    hooks_report(st, go);
    /* An item's calls were queued together. */
    for (i = 0; i < st->nhooks; i = j) {
        for (j = i + 1;
             j < st->nhooks && st->hooks[j].item == st->hooks[i].item; j++)
            ;
        decide(st, &st->hooks[i], j - i);
    }
    subs_webhooks_clear(st);
    return SUBS_STEP_DONE;
}

void subs_webhooks_fini(struct subs_state *st)
{
    size_t n = st->webhooks ? hr_webhooks_count(st->webhooks) : 0;

    subs_webhooks_clear(st);
    for (size_t i = 0; i < n; i++)
        free(st->hook_dests[i]);
    free(st->hook_dests);
    free(st->hooks);
    free(st->hook_calls);
    hr_webhooks_free(st->webhooks);
}
