/* herald-unread's lifecycle and batch handler. */
#include "unread.h"

#include <stdlib.h>
#include <string.h>

#include "hr_log.h"
#include "hr_metrics.h"
#include "unread_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

extern const char hr_lua_unread_apply[];
extern const unsigned long hr_lua_unread_apply_len;

int unread_init(struct hr_worker *w, void **state)
{
    struct unread_state *st = calloc(1, sizeof(*st));

    if (!st)
        return -1;
    unread_settings_load(&st->set, hr_worker_conf(w));
    st->script.name = "unread_apply";
    st->script.src = hr_lua_unread_apply;
    st->script.len = hr_lua_unread_apply_len;
    for (size_t i = 0; i < HR_ARRAY_SIZE(st->work); i++)
        unread_work_init(&st->work[i]);
    st->changes = hr_metrics_counter(
        hr_worker_metrics(w), "herald_unread_pairs_updated_total",
        "(user, conversation) counts written, one per pair and batch", NULL);
    st->saturated = hr_metrics_counter(
        hr_worker_metrics(w), "herald_unread_saturated_total",
        "Counts held at HERALD_UNREAD_MAX_PER_CONVERSATION", NULL);
    *state = st;
    return 0;
}

void unread_fini(struct hr_worker *w, void *state)
{
    struct unread_state *st = state;

    (void)w;
    for (size_t i = 0; i < HR_ARRAY_SIZE(st->work); i++)
        unread_work_release(&st->work[i]);
    hr_jsonw_release(&st->jw);
    free(st);
}

/* The working set holding @batch, or NULL. */
static struct unread_work *work_of(struct unread_state *st,
                                   const struct hr_batch *batch)
{
    for (size_t i = 0; i < HR_ARRAY_SIZE(st->work); i++) {
        if (st->work[i].active && st->work[i].batch == batch)
            return &st->work[i];
    }
    return NULL;
}

/* A working set no unhandled batch uses, or NULL. */
static struct unread_work *work_free(struct unread_state *st)
{
    for (size_t i = 0; i < HR_ARRAY_SIZE(st->work); i++) {
        if (!st->work[i].active)
            return &st->work[i];
    }
    return NULL;
}

/* Group @batch's next script call, from item @from on. */
static void work_start(struct unread_state *st,
                       struct unread_work *wk,
                       struct hr_worker *w,
                       struct hr_batch *batch,
                       size_t from)
{
    wk->batch = batch;
    wk->active = true;
    wk->sent = false;
    unread_group(wk, batch, from);
    if (wk->pair_ids.n)
        unread_build(wk, &st->set, hr_redis_prefix(hr_worker_redis(w)));
}

/*
 * Group the next batch and send its script while the runtime finishes the
 * previous one. Only sent when every earlier batch still waiting for its
 * reply was sent too, and needs no further call (a big group's batch takes
 * several, made synchronously), so replies keep the order handle() reads
 * them in.
 */
void unread_submit(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct unread_state *st = state;
    struct hr_redis *redis = hr_worker_redis(w);
    struct unread_work *wk = work_free(st);
    char errstr[256];

    if (!wk)
        return;
    work_start(st, wk, w, batch, 0);
    if (!wk->pair_ids.n || !hr_redis_is_connected(redis))
        return;
    for (size_t i = 0; i < HR_ARRAY_SIZE(st->work); i++) {
        const struct unread_work *other = &st->work[i];

        if (other != wk && other->active &&
            (!other->sent || other->epoch != hr_redis_epoch(redis) ||
             other->next < other->batch->n))
            return;
    }
    if (unread_send(st, wk, redis, errstr, sizeof(errstr)))
        hr_log_debug("script not sent ahead", HR_LOG_STR("err", errstr));
}

enum hr_batch_result
unread_handle(struct hr_worker *w, void *state, struct hr_batch *batch)
{
    struct unread_state *st = state;
    struct hr_redis *redis = hr_worker_redis(w);
    struct unread_work *wk = work_of(st, batch);
    enum hr_batch_result res = HR_BATCH_PAUSE;
    char errstr[256];

    if (!wk) {
        /* Not submitted, or a redo: outcomes were reset, group again. */
        wk = work_free(st);
        HR_ASSERT(wk);
        work_start(st, wk, w, batch, 0);
    }
    for (;;) {
        if (wk->pair_ids.n &&
            unread_apply(st, wk, redis, errstr, sizeof(errstr))) {
            hr_worker_set_pause_reason(w, "redis unavailable: %s", errstr);
            /* Replies sent after this one can no longer be matched. */
            hr_redis_reset(redis);
            goto out_done;
        }
        unread_settle(wk, batch);
        hr_metric_add(st->changes, NULL, (double)wk->pair_ids.n);
        if (unread_emit(st, wk, w))
            goto out_done;
        if (wk->next == batch->n)
            break;
        /* A pause redoes the whole batch: the calls are idempotent. */
        work_start(st, wk, w, batch, wk->next);
    }
    res = HR_BATCH_DONE;
out_done:
    wk->active = false;
    wk->sent = false;
    return res;
}
