/*
 * One batch, one Redis round trip: events are grouped by (user,
 * conversation), and unread_apply.lua applies the whole group at once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_log.h"
#include "hr_metrics.h"
#include "unread_state.h"

#include "hr_banned.h"

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;

    if (need <= *cap)
        return p;
    ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    p = realloc(p, ncap * elem);
    HR_ASSERT(p);
    *cap = ncap;
    return p;
}

/* --- script arguments --------------------------------------------------- */

static void args_reset(struct unread_args *a)
{
    a->used = 0;
    a->n = 0;
}

void unread_args_release(struct unread_args *a)
{
    free(a->buf);
    free(a->argv);
    free(a->argvlen);
    free(a->off);
    free(a->ext);
    memset(a, 0, sizeof(*a));
}

static size_t args_slot(struct unread_args *a)
{
    size_t cap = a->ncap;

    a->off = grow(a->off, &cap, a->n + 1, sizeof(*a->off));
    cap = a->ncap;
    a->ext = grow(a->ext, &cap, a->n + 1, sizeof(*a->ext));
    cap = a->ncap;
    a->argvlen = grow(a->argvlen, &cap, a->n + 1, sizeof(*a->argvlen));
    cap = a->ncap;
    a->argv = grow(a->argv, &cap, a->n + 1, sizeof(*a->argv));
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

/* Bytes copied into the buffer: keys and numbers. */
static void args_copy(struct unread_args *a, const char *p1, size_t l1,
                      const char *p2, size_t l2, const char *p3, size_t l3)
{
    size_t i = args_slot(a), len = l1 + l2 + l3;

    a->buf = grow(a->buf, &a->cap, a->used + len, 1);
    memcpy(a->buf + a->used, p1, l1);
    memcpy(a->buf + a->used + l1, p2, l2);
    memcpy(a->buf + a->used + l1 + l2, p3, l3);
    a->off[i] = a->used;
    a->argvlen[i] = len;
    a->used += len;
}

static void args_int(struct unread_args *a, int64_t v)
{
    char num[24];
    int len = snprintf(num, sizeof(num), "%" PRId64, v);

    args_copy(a, num, (size_t)len, "", 0, "", 0);
}

static void args_key(struct unread_args *a, const char *prefix,
                     const char *kind, const char *user)
{
    char head[96];
    int len = snprintf(head, sizeof(head), "%s%s:{", prefix, kind);

    args_copy(a, head, (size_t)len, user, strlen(user), "}", 1);
}

static void args_finish(struct unread_args *a)
{
    for (size_t i = 0; i < a->n; i++)
        a->argv[i] = a->off[i] == SIZE_MAX ? a->ext[i] : a->buf + a->off[i];
}

/* --- grouping ----------------------------------------------------------- */

static size_t pair_of(struct unread_state *st, const char *user,
                      const char *conv, size_t item)
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
    p = hr_strmap_put(&st->pair_ids, key, ulen + clen + 1, &added);
    if (key != stack)
        free(key);
    if (added) {
        struct unread_pair *pair;

        st->pairs = grow(st->pairs, &st->pairs_cap, p + 1, sizeof(*st->pairs));
        pair = &st->pairs[p];
        memset(pair, 0, sizeof(*pair));
        pair->user = hr_strmap_put(&st->users, user, ulen, NULL);
        pair->conv = conv;
        pair->batch_read = -1;
    }
    st->pairs[p].cause = item;
    return p;
}

static void add_ref(struct unread_state *st, size_t pair, size_t item,
                    struct unread_event *ev)
{
    struct unread_ref *ref;

    st->refs = grow(st->refs, &st->refs_cap, st->nrefs + 1, sizeof(*st->refs));
    ref = &st->refs[st->nrefs++];
    ref->pair = pair;
    ref->item = item;
    ref->ts = ev->ts_ms;
    ref->msg_id = ev->message_id;
    st->pairs[pair].nmsg++;
    ev->nrefs++;
}

/* A recipient listed twice in one event counts once; the sender never. */
static bool recipient_is_new(const struct unread_event *ev, size_t idx)
{
    const char *r = json_string_value(json_array_get(ev->recipient_ids, idx));

    if (!strcmp(r, ev->sender_id))
        return false;
    for (size_t j = 0; j < idx; j++) {
        if (!strcmp(r, json_string_value(json_array_get(ev->recipient_ids, j))))
            return false;
    }
    return true;
}

void unread_group(struct unread_state *st, struct hr_batch *batch)
{
    char errstr[256];

    hr_strmap_clear(&st->users);
    hr_strmap_clear(&st->pair_ids);
    hr_strmap_clear(&st->event_ids);
    st->nrefs = 0;
    st->events = grow(st->events, &st->events_cap, batch->n,
                      sizeof(*st->events));

    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];
        struct unread_event *ev = &st->events[i];
        int fresh;

        if (item->outcome != HR_OUT_PENDING)
            continue;
        if (unread_event_parse(&item->ev, ev, errstr, sizeof(errstr))) {
            hr_item_dead(item, HR_ERR_PERMANENT, "%s", errstr);
            continue;
        }
        hr_strmap_put(&st->event_ids, item->ev.id, strlen(item->ev.id),
                      &fresh);
        if (!fresh) {
            hr_item_duplicate(item);
            continue;
        }
        if (ev->kind == UNREAD_READ) {
            size_t p = pair_of(st, ev->user_id, ev->conversation_id, i);

            if (ev->ts_ms > st->pairs[p].batch_read)
                st->pairs[p].batch_read = ev->ts_ms;
            continue;
        }
        for (size_t r = 0; r < json_array_size(ev->recipient_ids); r++) {
            if (recipient_is_new(ev, r))
                add_ref(st, pair_of(st,
                                    json_string_value(
                                        json_array_get(ev->recipient_ids, r)),
                                    ev->conversation_id, i),
                        i, ev);
        }
    }

    /* Counting sort of the refs by pair, keeping batch order inside. */
    st->order = grow(st->order, &st->order_cap, st->nrefs + 1,
                     sizeof(*st->order));
    {
        size_t pos = 0;

        for (size_t p = 0; p < st->pair_ids.n; p++) {
            st->pairs[p].first = pos;
            pos += st->pairs[p].nmsg;
            st->pairs[p].nmsg = 0;
        }
        for (size_t r = 0; r < st->nrefs; r++) {
            struct unread_pair *pair = &st->pairs[st->refs[r].pair];

            st->order[pair->first + pair->nmsg++] = r;
        }
    }
}

/* --- the script call ---------------------------------------------------- */

static void build_args(struct unread_state *st, const char *prefix)
{
    struct unread_args *a = &st->args;
    size_t nusers = st->users.n, npairs = st->pair_ids.n;

    args_reset(a);
    for (size_t u = 0; u < nusers; u++) {
        const char *user = hr_strmap_key(&st->users, u);

        args_key(a, prefix, "unread", user);
        args_key(a, prefix, "unread_total", user);
        args_key(a, prefix, "unread_read", user);
    }
    for (size_t p = 0; p < npairs; p++) {
        const char *user = hr_strmap_key(&st->users, st->pairs[p].user);
        const char *conv = st->pairs[p].conv;
        char head[96];
        int len = snprintf(head, sizeof(head), "%sunread_msgs:{", prefix);

        /* herald:unread_msgs:{user}:conversation */
        args_copy(a, head, (size_t)len, user, strlen(user), "}:", 2);
        a->buf = grow(a->buf, &a->cap, a->used + strlen(conv), 1);
        memcpy(a->buf + a->used, conv, strlen(conv));
        a->used += strlen(conv);
        a->argvlen[a->n - 1] += strlen(conv);
    }
    args_int(a, st->set.max_per_conversation);
    args_int(a, st->set.ttl_seconds);
    args_int(a, (int64_t)nusers);
    args_int(a, (int64_t)npairs);
    for (size_t p = 0; p < npairs; p++) {
        struct unread_pair *pair = &st->pairs[p];

        args_int(a, (int64_t)pair->user + 1);
        args_borrow(a, pair->conv);
        args_int(a, pair->batch_read);
        args_int(a, (int64_t)pair->nmsg);
        for (size_t k = 0; k < pair->nmsg; k++) {
            const struct unread_ref *ref = &st->refs[st->order[pair->first + k]];

            args_int(a, ref->ts);
            args_borrow(a, ref->msg_id);
        }
    }
    args_finish(a);
}

static int read_results(struct unread_state *st, const redisReply *reply,
                        char *errstr, size_t errstr_size)
{
    size_t npairs = st->pair_ids.n, nusers = st->users.n;

    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "script failed: %s", reply->str);
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 3 * npairs + nusers) {
        snprintf(errstr, errstr_size, "script returned an unexpected reply");
        return -1;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
            snprintf(errstr, errstr_size, "script returned a non-integer");
            return -1;
        }
    }
    for (size_t p = 0; p < npairs; p++) {
        st->pairs[p].count = reply->element[3 * p]->integer;
        st->pairs[p].added = reply->element[3 * p + 1]->integer;
        st->pairs[p].read_at = reply->element[3 * p + 2]->integer;
        if (st->pairs[p].count >= st->set.max_per_conversation)
            hr_metric_add(st->saturated, NULL, 1);
    }
    st->totals = grow(st->totals, &st->totals_cap, nusers + 1,
                      sizeof(*st->totals));
    for (size_t u = 0; u < nusers; u++)
        st->totals[u] = reply->element[3 * npairs + u]->integer;
    return 0;
}

int unread_apply(struct unread_state *st, struct hr_redis *redis,
                 char *errstr, size_t errstr_size)
{
    redisReply *reply;
    int nkeys = (int)(3 * st->users.n + st->pair_ids.n);
    int rc;

    build_args(st, hr_redis_prefix(redis));
    reply = hr_redis_eval(redis, &st->script, nkeys, (int)st->args.n,
                          st->args.argv, st->args.argvlen, errstr,
                          errstr_size);
    if (!reply)
        return -1;
    rc = read_results(st, reply, errstr, errstr_size);
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
void unread_settle(struct unread_state *st, struct hr_batch *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        struct hr_item *item = &batch->items[i];

        if (item->outcome != HR_OUT_PENDING)
            continue;
        if (st->events[i].kind == UNREAD_MESSAGE && st->events[i].nrefs)
            hr_item_duplicate(item); /* until a recipient proves otherwise */
        else
            hr_item_ok(item);
    }
    for (size_t r = 0; r < st->nrefs; r++) {
        const struct unread_ref *ref = &st->refs[r];
        const struct unread_pair *pair = &st->pairs[ref->pair];

        if (pair->added > 0 || ref->ts <= pair->read_at)
            hr_item_ok(&batch->items[ref->item]);
    }
}
