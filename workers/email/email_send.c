/*
 * Sending the batch's email.send records: each window once across
 * redeliveries (email_sent.lua), the transport's circuit consulted, the
 * messages sent together (email_transport.c), and every failure handed
 * off as SPEC section 7 says: transient and throttled to the guard, auth
 * and permanent to the dead-letter topic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email_state.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

struct job {
    size_t item;
    const struct email_event *ev;
    long long attempt; /* 0: no send (decided before the call) */
    bool maybe_dup;    /* an earlier attempt ended without an answer */
    bool called;
    struct email_out out;
};

static char *sent_key(const struct email_state *st,
                      const struct email_event *ev)
{
    size_t len =
        strlen(st->prefix) + strlen(ev->user_id) + strlen(ev->window_id) + 32;
    char *k = malloc(len);

    HR_ASSERT(k);
    snprintf(k, len, "%semail:sent:{%s}:%s", st->prefix, ev->user_id,
             ev->window_id);
    return k;
}

/* email_sent.lua "claim" for every job to claim (attempt -1). Returns the
 * reply or NULL with @errstr. */
static redisReply *claim_script(struct email_state *st,
                                struct job *jobs,
                                size_t n,
                                size_t *nkeys_out,
                                char *errstr,
                                size_t errstr_size)
{
    const char **argv = calloc(4 + n, sizeof(*argv));
    char **owned = calloc(n + 1, sizeof(*owned));
    char now[24], lease[24], ttl[24];
    size_t nkeys = 0, nargs, nowned = 0;
    redisReply *reply;

    HR_ASSERT(argv && owned);
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].attempt != -1)
            continue;
        owned[nowned] = sent_key(st, jobs[i].ev);
        argv[nkeys++] = owned[nowned++];
    }
    *nkeys_out = nkeys;
    if (!nkeys) {
        free(argv);
        free(owned);
        return NULL;
    }
    snprintf(now, sizeof(now), "%lld", (long long)hr_time_now_ms());
    snprintf(lease, sizeof(lease), "%lld", (long long)st->set.lease_ms);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)st->set.sent_ttl_ms);
    nargs = nkeys;
    argv[nargs++] = "claim";
    argv[nargs++] = now;
    argv[nargs++] = lease;
    argv[nargs++] = ttl;
    reply = hr_redis_eval(st->redis, &st->sent_script, (int)nkeys, (int)nargs,
                          argv, NULL, errstr, errstr_size);
    if (reply &&
        (reply->type != REDIS_REPLY_ARRAY || reply->elements != nkeys)) {
        snprintf(errstr, errstr_size, "sent script: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        freeReplyObject(reply);
        reply = NULL;
    }
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    return reply;
}

/* email_sent.lua "settle" for @j: sent, or failed (the next attempt is not
 * then taken for a possible duplicate). @async: written to Redis at once,
 * its reply read later (settle_collect()): a send is recorded as soon as
 * it ends, so a crash in the middle of a batch repeats only the sends in
 * flight. Returns 0, or -1 with @errstr. */
static int settle(struct email_state *st,
                  const struct job *j,
                  bool async,
                  char *errstr,
                  size_t errstr_size)
{
    char *key = sent_key(st, j->ev);
    char now[24], lease[24], ttl[24], attempt[24];
    const char *argv[] = {
        key,
        "settle",
        now,
        lease,
        ttl,
        attempt,
        j->called && j->out.result == HR_CIRCUIT_SUCCESS ? "sent" : "failed"};
    redisReply *reply = NULL;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)hr_time_now_ms());
    snprintf(lease, sizeof(lease), "%lld", (long long)st->set.lease_ms);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)st->set.sent_ttl_ms);
    snprintf(attempt, sizeof(attempt), "%lld", j->attempt);
    if (async) {
        rc = hr_redis_eval_send(st->redis, &st->sent_script, 1, 7, argv, NULL,
                                errstr, errstr_size);
    } else {
        reply = hr_redis_eval(st->redis, &st->sent_script, 1, 7, argv, NULL,
                              errstr, errstr_size);
        rc = reply && reply->type == REDIS_REPLY_ARRAY ? 0 : -1;
        if (reply && rc)
            snprintf(errstr, errstr_size, "sent script: %s",
                     reply->type == REDIS_REPLY_ERROR ? reply->str
                                                      : "bad reply");
        if (reply)
            freeReplyObject(reply);
    }
    free(key);
    return rc;
}

struct sending {
    struct email_state *st;
    struct job *jobs;
    const struct email_out *calls;
    size_t *call_job; /* the job of each call */
    size_t pending;   /* settle replies to read */
    uint64_t epoch;   /* the Redis connection they were sent on */
};

/* A send ended: record it at once. */
static void sent_one(void *opaque, size_t call)
{
    struct sending *s = opaque;
    struct job *j = &s->jobs[s->call_job[call]];
    char errstr[256];

    j->called = true;
    j->out = s->calls[call];
    if (!settle(s->st, j, true, errstr, sizeof(errstr)))
        s->pending++;
    else
        hr_log_warn("cannot record a send (a redelivery would count it as "
                    "a possible duplicate)",
                    HR_LOG_STR("err", errstr));
}

static void settle_collect(struct sending *s)
{
    char errstr[256];

    for (; s->pending; s->pending--) {
        redisReply *r;

        if (hr_redis_epoch(s->st->redis) != s->epoch)
            break; /* the connection went: its replies with it */
        r = hr_redis_reply(s->st->redis, &s->st->sent_script, errstr,
                           sizeof(errstr));
        if (!r) {
            hr_log_warn("cannot record sends", HR_LOG_STR("err", errstr));
            break;
        }
        freeReplyObject(r);
    }
    s->pending = 0;
}

/* Claim the sends; jobs that must not be sent get their outcome. Returns
 * 0, or -1 with @errstr (Redis: pause). */
static int claim(struct email_state *st,
                 struct hr_batch *batch,
                 struct job *jobs,
                 size_t n,
                 char *errstr,
                 size_t errstr_size)
{
    size_t nkeys, k = 0;
    redisReply *reply;

    for (size_t i = 0; i < n; i++)
        jobs[i].attempt = -1; /* to claim */
    reply = claim_script(st, jobs, n, &nkeys, errstr, errstr_size);
    if (!reply)
        return nkeys ? -1 : 0;
    for (size_t i = 0; i < n; i++) {
        struct hr_item *item = &batch->items[jobs[i].item];
        long long r = reply->element[k++]->integer;

        if (r == 0) {
            jobs[i].attempt = 0;
            hr_item_duplicate(item);
        } else if (r < 0) {
            jobs[i].attempt = 0;
            hr_item_retry(item, HR_ERR_TRANSIENT,
                          email_transport_destination(st->transport), -r,
                          "a send of this window is in flight elsewhere");
        } else {
            jobs[i].attempt = r / 2;
            jobs[i].maybe_dup = r & 1;
        }
    }
    freeReplyObject(reply);
    return 0;
}

/* Ask the circuit; refused jobs go to the guard without an attempt. */
static int circuit(struct email_state *st,
                   struct hr_batch *batch,
                   struct job *jobs,
                   size_t n,
                   char *errstr,
                   size_t errstr_size)
{
    const char *dest = email_transport_destination(st->transport);
    enum hr_circuit_state state;
    int64_t wait = 0;
    bool allowed;

    if (hr_circuit_check(st->circuit, st->redis, &dest, 1, hr_time_now_ms(),
                         &state, &allowed, &wait, errstr, errstr_size))
        return -1;
    hr_metric_set(st->circuit_state, (const char *[]){dest},
                  hr_circuit_state_gauge(state));
    for (size_t i = 0; i < n && !allowed; i++) {
        if (jobs[i].attempt > 0)
            hr_item_held_back(&batch->items[jobs[i].item], (int)state, dest,
                              wait);
    }
    return 0;
}

static void
account(struct email_state *st, struct hr_item *item, const struct job *j)
{
    const char *dest = email_transport_destination(st->transport);
    const char *label = email_category_label(st, j->ev->category);
    const struct email_out *o = &j->out;
    double late;

    hr_metric_observe(st->latency,
                      (const char *[]){email_transport_name(st->transport)},
                      o->elapsed_s, 1);
    switch (o->result) {
    case HR_CIRCUIT_SUCCESS:
        hr_item_ok(item);
        hr_metric_add(st->sent, (const char *[]){label, j->ev->mode}, 1);
        hr_metric_observe(st->digest_items, NULL, (double)j->ev->items, 1);
        late = (double)(hr_time_now_ms() - j->ev->due_ms) / 1000.0;
        hr_log_debug("email sent", HR_LOG_STR("message_id", j->ev->message_id),
                     HR_LOG_I64("late_ms", (int64_t)(late * 1000)));
        hr_metric_observe(st->lateness, NULL, late > 0 ? late : 0, 1);
        if (j->maybe_dup) {
            hr_metric_add(st->duplicates, NULL, 1);
            hr_log_warn("window sent again after an attempt that ended "
                        "without an answer (a possible duplicate, same "
                        "Message-ID)",
                        HR_LOG_STR("message_id", j->ev->message_id));
        }
        return;
    case HR_ERR_TRANSIENT:
    case HR_ERR_THROTTLED:
        hr_item_retry(item, (enum hr_err_class)o->result, dest,
                      o->retry_after_ms, "%s", o->reason);
        break;
    default:
        hr_item_dead(item, (enum hr_err_class)o->result, "%s", o->reason);
        break;
    }
    hr_metric_add(
        st->failed,
        (const char *[]){hr_err_class_name((enum hr_err_class)o->result)}, 1);
}

enum hr_batch_result email_send_batch(struct email_state *st,
                                      struct hr_batch *batch)
{
    const char *dest = email_transport_destination(st->transport);
    struct hr_circuit_outcome *outs;
    struct email_out *calls;
    struct job *jobs;
    struct sending sending = {.st = st};
    size_t n = 0, ncalls = 0;
    char errstr[512];

    for (size_t i = 0; i < batch->n; i++) {
        if (st->parsed[i] && st->events[i].kind == EMAIL_SEND &&
            batch->items[i].outcome == HR_OUT_PENDING)
            n++;
    }
    if (!n)
        return HR_BATCH_DONE;
    jobs = calloc(n, sizeof(*jobs));
    calls = calloc(n, sizeof(*calls));
    outs = calloc(n, sizeof(*outs));
    sending.call_job = calloc(n, sizeof(*sending.call_job));
    HR_ASSERT(jobs && calls && outs && sending.call_job);
    sending.jobs = jobs;
    sending.calls = calls;
    n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const struct email_event *ev = &st->events[i];

        if (!st->parsed[i] || ev->kind != EMAIL_SEND ||
            batch->items[i].outcome != HR_OUT_PENDING)
            continue;
        if (ev->undeliverable) {
            hr_metric_add(
                st->skipped,
                (const char *[]){email_category_label(st, ev->category),
                                 "no_address"},
                1);
            hr_item_dead(&batch->items[i], HR_ERR_PERMANENT,
                         "undeliverable: %s", ev->undeliverable);
            continue;
        }
        jobs[n].item = i;
        jobs[n].ev = ev;
        n++;
    }
    if (claim(st, batch, jobs, n, errstr, sizeof(errstr)) ||
        circuit(st, batch, jobs, n, errstr, sizeof(errstr))) {
        hr_worker_set_pause_reason(st->w, "redis unavailable: %s", errstr);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct job *j = &jobs[i];

        if (j->attempt <= 0)
            continue;
        if (batch->items[j->item].outcome != HR_OUT_PENDING) {
            /* refused by the circuit: no call, the attempt failed */
            if (settle(st, j, false, errstr, sizeof(errstr)))
                hr_log_warn("cannot record a send", HR_LOG_STR("err", errstr));
            continue;
        }
        sending.call_job[ncalls] = i;
        calls[ncalls].from = j->ev->from;
        calls[ncalls].to = j->ev->to;
        calls[ncalls].raw = j->ev->raw;
        calls[ncalls].raw_len = j->ev->raw_len;
        ncalls++;
    }
    sending.epoch = hr_redis_epoch(st->redis);
    if (ncalls)
        email_transport_send(st->transport, calls, ncalls, sent_one, &sending);
    settle_collect(&sending);
    for (size_t k = 0; k < ncalls; k++) {
        struct job *j = &jobs[sending.call_job[k]];

        j->out = calls[k];
        outs[k].destination = dest;
        outs[k].result = j->out.result;
        outs[k].retry_after_ms = j->out.retry_after_ms;
        account(st, &batch->items[j->item], j);
    }
    if (ncalls &&
        hr_circuit_report(st->circuit, st->redis, outs, ncalls,
                          hr_time_now_ms(), NULL, errstr, sizeof(errstr)))
        hr_log_warn("circuit report failed", HR_LOG_STR("err", errstr));
    free(jobs);
    free(calls);
    free(outs);
    free(sending.call_job);
    return HR_BATCH_DONE;
out:
    free(jobs);
    free(calls);
    free(outs);
    free(sending.call_job);
    return HR_BATCH_PAUSE;
}
