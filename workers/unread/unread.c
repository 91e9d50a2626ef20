/* herald-unread's lifecycle and batch handler. */
#include "unread.h"

#include <stdlib.h>
#include <string.h>

#include "hr_log.h"
#include "hr_metrics.h"
#include "unread_state.h"

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
    hr_strmap_init(&st->users);
    hr_strmap_init(&st->pair_ids);
    hr_strmap_init(&st->event_ids);
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
    hr_strmap_release(&st->users);
    hr_strmap_release(&st->pair_ids);
    hr_strmap_release(&st->event_ids);
    unread_args_release(&st->args);
    free(st->events);
    free(st->pairs);
    free(st->refs);
    free(st->order);
    free(st->totals);
    free(st);
}

enum hr_batch_result unread_handle(struct hr_worker *w, void *state,
                                   struct hr_batch *batch)
{
    struct unread_state *st = state;
    char errstr[256];

    unread_group(st, batch);
    if (st->pair_ids.n) {
        if (unread_apply(st, hr_worker_redis(w), errstr, sizeof(errstr))) {
            hr_worker_set_pause_reason(w, "redis unavailable: %s", errstr);
            return HR_BATCH_PAUSE;
        }
    }
    unread_settle(st, batch);
    hr_metric_add(st->changes, NULL, (double)st->pair_ids.n);
    if (unread_emit(st, w, batch))
        return HR_BATCH_PAUSE;
    return HR_BATCH_DONE;
}
