/*
 * One batch, one Redis round trip: events are grouped by (user,
 * conversation), and unread_apply.lua applies the whole group at once.
 * The call can be sent ahead (unread_send) and its reply read later
 * (unread_apply), so Redis works on one batch while the worker emits the
 * previous one's outputs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_arena.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "unread_state.h"

/* Recipients plus pairs of one script call (see unread_group). */
#define UNREAD_CALL_MAX 32768

/* What the arenas keep between batches and events. */
#define UNREAD_POOL_KEEP    (4 * 1024 * 1024)
#define UNREAD_SCRATCH_KEEP (256 * 1024)

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

void unread_work_init(struct unread_work *wk)
{
    memset(wk, 0, sizeof(*wk));
    wk->pool = hr_arena_new();
    wk->scratch = hr_arena_new();
    hr_strmap_init(&wk->users);
    hr_strmap_init(&wk->pair_ids);
    hr_strmap_init(&wk->event_ids);
}

/* --- script arguments --------------------------------------------------- */

static void args_reset(struct unread_args *a)
{
    a->used = 0;
    a->n = 0;
}

static void args_release(struct unread_args *a)
{
    free(a->buf);
    free(a->argv);
    free(a->argvlen);
    free(a->off);
    free(a->ext);
    memset(a, 0, sizeof(*a));
}

void unread_work_release(struct unread_work *wk)
{
    hr_arena_free(wk->pool);
    hr_arena_free(wk->scratch);
    hr_strmap_release(&wk->users);
    hr_strmap_release(&wk->pair_ids);
    hr_strmap_release(&wk->event_ids);
    args_release(&wk->args);
    free(wk->events);
    free(wk->pairs);
    free(wk->user_first);
    free(wk->user_last);
    free(wk->pair_order);
    free(wk->refs);
    free(wk->order);
    free(wk->totals);
    memset(wk, 0, sizeof(*wk));
}

static size_t args_slot(struct unread_args *a)
{
    size_t cap = a->ncap;

    if (a->n + 1 <= a->ncap)
        return a->n++;
    a->off = hr_grow(a->off, &cap, a->n + 1, sizeof(*a->off), 64);
    cap = a->ncap;
    a->ext = hr_grow(a->ext, &cap, a->n + 1, sizeof(*a->ext), 64);
    cap = a->ncap;
    a->argvlen = hr_grow(a->argvlen, &cap, a->n + 1, sizeof(*a->argvlen), 64);
    cap = a->ncap;
    a->argv = hr_grow(a->argv, &cap, a->n + 1, sizeof(*a->argv), 64);
    a->ncap = cap;
    return a->n++;
}

/* A borrowed string that outlives the call (event fields). */
static void args_borrow(struct unread_args *a, const char *s)
{
    size_t i = args_slot(a);

    a->off[i] = SIZE_MAX;
    a->ext[i] = s;
    a->argvlen[i] = strlen(s);
}

/* Start a copied argument; args_put() appends bytes to it. */
static void args_begin(struct unread_args *a)
{
    size_t i = args_slot(a);

    a->off[i] = a->used;
    a->argvlen[i] = 0;
}

static void args_put(struct unread_args *a, const char *p, size_t len)
{
    a->buf = hr_grow(a->buf, &a->cap, a->used + len, 1, 64);
    memcpy(a->buf + a->used, p, len);
    a->used += len;
    a->argvlen[a->n - 1] += len;
}

static void args_puts(struct unread_args *a, const char *s)
{
    args_put(a, s, strlen(s));
}

static void args_int(struct unread_args *a, int64_t v)
{
    char num[24], *p = num + sizeof(num);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    args_begin(a);
    args_put(a, p, (size_t)(num + sizeof(num) - p));
}

/* prefix kind:{user}: the key heads are copied whatever their length. */
static void args_key(struct unread_args *a,
                     const char *prefix,
                     const char *kind,
                     const char *user)
{
    args_begin(a);
    args_puts(a, prefix);
    args_puts(a, kind);
    args_put(a, ":{", 2);
    args_puts(a, user);
    args_put(a, "}", 1);
}

static void args_finish(struct unread_args *a)
{
    for (size_t i = 0; i < a->n; i++)
        a->argv[i] = a->off[i] == SIZE_MAX ? a->ext[i] : a->buf + a->off[i];
}

/* --- grouping ----------------------------------------------------------- */

static size_t
pair_of(struct unread_work *wk, const char *user, const char *conv, size_t item)
{
    size_t ulen = strlen(user), clen = strlen(conv), p;
    char stack[600], *key = stack;
    int added;

    if (ulen + clen + 1 > sizeof(stack))
        key = malloc(ulen + clen + 1);
    HR_ASSERT(key);
    memcpy(key, user, ulen);
    key[ulen] = '\0';
    memcpy(key + ulen + 1, conv, clen);
    p = hr_strmap_put(&wk->pair_ids, key, ulen + clen + 1, &added);
    if (key != stack)
        free(key);
    if (added) {
        struct unread_pair *pair;
        size_t u;

        wk->pairs =
            hr_grow(wk->pairs, &wk->pairs_cap, p + 1, sizeof(*wk->pairs), 64);
        pair = &wk->pairs[p];
        memset(pair, 0, sizeof(*pair));
        u = hr_strmap_put(&wk->users, user, ulen, &added);
        if (added) {
            size_t cap = wk->users_cap;

            wk->user_first = hr_grow(wk->user_first, &cap, u + 1,
                                     sizeof(*wk->user_first), 64);
            cap = wk->users_cap;
            wk->user_last =
                hr_grow(wk->user_last, &cap, u + 1, sizeof(*wk->user_last), 64);
            wk->users_cap = cap;
            wk->user_first[u] = p;
        } else {
            wk->pairs[wk->user_last[u]].next = p;
        }
        wk->user_last[u] = p;
        pair->user = u;
        pair->conv = conv;
        pair->batch_read = -1;
        pair->next = SIZE_MAX;
        pair->ref_item = SIZE_MAX;
    }
    wk->pairs[p].cause = item;
    return p;
}

static void add_ref(struct unread_work *wk,
                    size_t pair,
                    size_t item,
                    struct unread_event *ev)
{
    struct unread_ref *ref;

    wk->refs =
        hr_grow(wk->refs, &wk->refs_cap, wk->nrefs + 1, sizeof(*wk->refs), 64);
    ref = &wk->refs[wk->nrefs++];
    ref->pair = pair;
    ref->item = item;
    ref->ts = ev->ts_ms;
    ref->msg_id = ev->message_id;
    wk->pairs[pair].nmsg++;
    wk->pairs[pair].ref_item = item;
    ev->nrefs++;
}

/*
 * Parse item @i into wk->events[i], keeping only what the batch needs in
 * wk->pool: the event's JSON lives in the scratch arena just long enough to
 * be validated, so a batch costs its fields, not its parse trees. Returns 0,
 * or -1 with the item dead-lettered.
 */
static int event_load(struct unread_work *wk, struct hr_item *item, size_t i)
{
    struct hr_arena *previous = hr_arena_enter(wk->scratch);
    struct unread_event *ev = &wk->events[i];
    struct hr_event ce;
    char errstr[256];
    int rc = -1;

    if (hr_event_parse(&ce, item->value, item->value_len, hr_item_header, item,
                       errstr, sizeof(errstr))) {
        memset(ev, 0, sizeof(*ev));
        hr_item_dead(item, HR_ERR_POISON, "%s", errstr);
        goto out_leave;
    }
    if (unread_event_parse(&ce, ev, errstr, sizeof(errstr))) {
        /* Nothing may point into the scratch arena past this event. */
        memset(ev, 0, sizeof(*ev));
        ev->id = hr_arena_strdup(wk->pool, ce.id);
        hr_item_dead(item, HR_ERR_PERMANENT, "%s", errstr);
    } else {
        unread_event_keep(ev, ce.id, wk->pool);
        rc = 0;
    }
    /* The runtime's dead-letter log names the event. */
    item->ev.id = ev->id;
    hr_event_release(&ce);
out_leave:
    hr_arena_leave(previous);
    hr_arena_reset(wk->scratch, UNREAD_SCRATCH_KEEP);
    return rc;
}

void unread_group(struct unread_work *wk, struct hr_batch *batch, size_t from)
{
    size_t i;

    hr_strmap_clear(&wk->users);
    hr_strmap_clear(&wk->pair_ids);
    hr_strmap_clear(&wk->event_ids);
    wk->nrefs = 0;
    wk->events =
        hr_grow(wk->events, &wk->events_cap, batch->n, sizeof(*wk->events), 64);

    hr_arena_reset(wk->pool, UNREAD_POOL_KEEP);
    /* One call's share: up to UNREAD_CALL_MAX recipients and pairs, so a
     * big group's burst is several calls, not one of millions of
     * arguments (the last event may pass the bound by its recipients). */
    for (i = from; i < batch->n && wk->nrefs + wk->pair_ids.n < UNREAD_CALL_MAX;
         i++) {
        struct hr_item *item = &batch->items[i];
        struct unread_event *ev = &wk->events[i];
        int fresh;

        if (item->outcome != HR_OUT_PENDING || event_load(wk, item, i))
            continue;
        hr_strmap_put(&wk->event_ids, ev->id, strlen(ev->id), &fresh);
        if (!fresh) {
            hr_item_duplicate(item);
            continue;
        }
        if (ev->kind == UNREAD_READ) {
            size_t p = pair_of(wk, ev->user_id, ev->conversation_id, i);

            if (ev->ts_ms > wk->pairs[p].batch_read)
                wk->pairs[p].batch_read = ev->ts_ms;
            continue;
        }
        /* A recipient listed twice counts once (its pair already has this
         * item's message); the sender never. */
        for (size_t r = 0; r < ev->nrecipients; r++) {
            size_t p;

            if (!strcmp(ev->recipients[r], ev->sender_id))
                continue;
            p = pair_of(wk, ev->recipients[r], ev->conversation_id, i);
            if (wk->pairs[p].ref_item != i)
                add_ref(wk, p, i, ev);
        }
    }

    /* Counting sort of the refs by pair, keeping batch order inside. */
    wk->order = hr_grow(wk->order, &wk->order_cap, wk->nrefs + 1,
                        sizeof(*wk->order), 64);
    {
        size_t pos = 0;

        for (size_t p = 0; p < wk->pair_ids.n; p++) {
            wk->pairs[p].first = pos;
            pos += wk->pairs[p].nmsg;
            wk->pairs[p].nmsg = 0;
        }
        for (size_t r = 0; r < wk->nrefs; r++) {
            struct unread_pair *pair = &wk->pairs[wk->refs[r].pair];

            wk->order[pair->first + pair->nmsg++] = r;
        }
    }
    /* The script takes pairs grouped by user. */
    wk->pair_order = hr_grow(wk->pair_order, &wk->pair_order_cap,
                             wk->pair_ids.n + 1, sizeof(*wk->pair_order), 64);
    {
        size_t n = 0;

        for (size_t u = 0; u < wk->users.n; u++) {
            for (size_t p = wk->user_first[u]; p != SIZE_MAX;
                 p = wk->pairs[p].next)
                wk->pair_order[n++] = p;
        }
        HR_ASSERT(n == wk->pair_ids.n);
    }
    wk->from = from;
    wk->next = i;
}

/* --- the script call ---------------------------------------------------- */

void unread_build(struct unread_work *wk,
                  const struct unread_settings *set,
                  const char *prefix)
{
    struct unread_args *a = &wk->args;
    size_t nusers = wk->users.n, npairs = wk->pair_ids.n;

    args_reset(a);
    for (size_t u = 0; u < nusers; u++) {
        const char *user = hr_strmap_key(&wk->users, u);

        args_key(a, prefix, "unread", user);
        args_key(a, prefix, "unread_total", user);
        args_key(a, prefix, "unread_read", user);
    }
    for (size_t k = 0; k < npairs; k++) {
        const struct unread_pair *pair = &wk->pairs[wk->pair_order[k]];

        /* herald:unread_msgs:{user}:conversation */
        args_key(a, prefix, "unread_msgs",
                 hr_strmap_key(&wk->users, pair->user));
        args_put(a, ":", 1);
        args_puts(a, pair->conv);
    }
    args_int(a, set->max_per_conversation);
    args_int(a, set->ttl_seconds);
    args_int(a, (int64_t)nusers);
    args_int(a, (int64_t)npairs);
    for (size_t u = 0; u < nusers; u++) {
        size_t k = 0;

        for (size_t p = wk->user_first[u]; p != SIZE_MAX; p = wk->pairs[p].next)
            k++;
        args_int(a, (int64_t)k);
        for (size_t p = wk->user_first[u]; p != SIZE_MAX; p = wk->pairs[p].next)
            args_borrow(a, wk->pairs[p].conv);
        for (size_t p = wk->user_first[u]; p != SIZE_MAX;
             p = wk->pairs[p].next) {
            const struct unread_pair *pair = &wk->pairs[p];

            args_int(a, pair->batch_read);
            args_int(a, (int64_t)pair->nmsg);
            for (size_t m = 0; m < pair->nmsg; m++) {
                const struct unread_ref *ref =
                    &wk->refs[wk->order[pair->first + m]];

                args_int(a, ref->ts);
                args_borrow(a, ref->msg_id);
            }
        }
    }
    args_finish(a);
}

static int read_results(struct unread_state *st,
                        struct unread_work *wk,
                        const redisReply *reply,
                        char *errstr,
                        size_t errstr_size)
{
    size_t npairs = wk->pair_ids.n, nusers = wk->users.n;
    redisReply **el;

    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "script failed: %s", reply->str);
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 3 * npairs + nusers) {
        snprintf(errstr, errstr_size, "script returned an unexpected reply");
        return -1;
    }
    el = reply->element;
    for (size_t i = 0; i < reply->elements; i++) {
        if (el[i]->type != REDIS_REPLY_INTEGER) {
            snprintf(errstr, errstr_size, "script returned a malformed reply");
            return -1;
        }
    }
    for (size_t k = 0; k < npairs; k++) {
        struct unread_pair *pair = &wk->pairs[wk->pair_order[k]];

        pair->count = el[3 * k]->integer;
        pair->added = el[3 * k + 1]->integer;
        pair->read_at = el[3 * k + 2]->integer;
    }
    wk->totals = hr_grow(wk->totals, &wk->totals_cap, nusers + 1,
                         sizeof(*wk->totals), 64);
    for (size_t u = 0; u < nusers; u++)
        wk->totals[u] = el[3 * npairs + u]->integer;
    for (size_t k = 0; k < npairs; k++) {
        if (wk->pairs[k].count >= st->set.max_per_conversation)
            hr_metric_add(st->saturated, NULL, 1);
    }
    return 0;
}

static int nkeys_of(const struct unread_work *wk)
{
    return (int)(3 * wk->users.n + wk->pair_ids.n);
}

int unread_send(struct unread_state *st,
                struct unread_work *wk,
                struct hr_redis *redis,
                char *errstr,
                size_t errstr_size)
{
    wk->sent = false;
    if (hr_redis_eval_send(redis, &st->script, nkeys_of(wk), (int)wk->args.n,
                           wk->args.argv, wk->args.argvlen, errstr,
                           errstr_size))
        return -1;
    wk->sent = true;
    wk->epoch = hr_redis_epoch(redis);
    return 0;
}

int unread_apply(struct unread_state *st,
                 struct unread_work *wk,
                 struct hr_redis *redis,
                 char *errstr,
                 size_t errstr_size)
{
    redisReply *reply;
    int rc;

    if (wk->sent && wk->epoch == hr_redis_epoch(redis)) {
        wk->sent = false;
        reply = hr_redis_reply(redis, &st->script, errstr, errstr_size);
    } else {
        wk->sent = false;
        reply =
            hr_redis_eval(redis, &st->script, nkeys_of(wk), (int)wk->args.n,
                          wk->args.argv, wk->args.argvlen, errstr, errstr_size);
    }
    if (!reply)
        return -1;
    rc = read_results(st, wk, reply, errstr, errstr_size);
    freeReplyObject(reply);
    return rc;
}

/*
 * A message event is a duplicate when none of its recipients' sets gained
 * anything although the message is still unread there: it was counted
 * before. (Ambiguous only when one batch adds several messages to one
 * pair; the effect is exact either way, only the metric is approximate.)
 * Reads, and messages to nobody but their sender, are plain OK.
 */
void unread_settle(struct unread_work *wk, struct hr_batch *batch)
{
    for (size_t i = wk->from; i < wk->next; i++) {
        struct hr_item *item = &batch->items[i];

        if (item->outcome != HR_OUT_PENDING)
            continue;
        if (wk->events[i].kind == UNREAD_MESSAGE && wk->events[i].nrefs)
            hr_item_duplicate(item); /* until a recipient proves otherwise */
        else
            hr_item_ok(item);
    }
    for (size_t r = 0; r < wk->nrefs; r++) {
        const struct unread_ref *ref = &wk->refs[r];
        const struct unread_pair *pair = &wk->pairs[ref->pair];

        if (pair->added > 0 || ref->ts <= pair->read_at)
            hr_item_ok(&batch->items[ref->item]);
    }
}
