/* herald-unread's per-process state and the steps of one batch. */
#ifndef UNREAD_STATE_H
#define UNREAD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_arena.h"
#include "hr_jsonw.h"
#include "hr_redis.h"
#include "hr_strmap.h"
#include "unread.h"

/* One (user, conversation) touched by the batch. */
struct unread_pair {
    size_t user;        /* index into the users map */
    const char *conv;   /* borrowed from an event of the batch */
    int64_t batch_read; /* latest read_at in the batch, -1 if none */
    size_t nmsg;        /* messages to this user in this conversation */
    size_t first;       /* their first position in the grouped order */
    size_t cause;       /* last item that touched the pair */
    size_t ref_item;    /* last item that added a message, SIZE_MAX: none */
    size_t next;        /* next pair of the same user, SIZE_MAX: last */
    /* results of the script */
    int64_t count;
    int64_t added;
    int64_t read_at;
};

/* One message addressed to one recipient. */
struct unread_ref {
    size_t pair;
    size_t item;
    int64_t ts;
    const char *msg_id;
};

/* Arguments of one script call, pointing into a byte buffer or borrowed. */
struct unread_args {
    char *buf;
    size_t used, cap;
    const char **argv; /* built at the end, when buf no longer moves */
    size_t *argvlen;
    size_t *off; /* SIZE_MAX: borrowed pointer in ext */
    const char **ext;
    size_t n, ncap;
};

/* The working set of one batch. Two of them let the next batch's script
 * run in Redis while this one's outputs are produced. */
struct unread_work {
    const struct hr_batch *batch; /* the batch grouped here, if active */
    size_t from, next;            /* its items the grouped call covers */
    bool active;                  /* grouped, not yet handled */
    bool sent;                    /* script sent on Redis epoch @epoch */
    uint64_t epoch;

    struct unread_event *events; /* per item of the batch */
    struct hr_arena *pool;       /* the events' strings */
    struct hr_arena *scratch;    /* one event's JSON while it is parsed */
    size_t events_cap;
    struct hr_strmap users;     /* user id -> index */
    struct hr_strmap pair_ids;  /* user \0 conversation -> index */
    struct hr_strmap event_ids; /* event ids seen in the batch */
    struct unread_pair *pairs;
    size_t pairs_cap;
    size_t *user_first; /* per user: first pair, SIZE_MAX: none */
    size_t *user_last;
    size_t users_cap;
    size_t *pair_order; /* pairs in script (KEYS) order */
    size_t pair_order_cap;
    struct unread_ref *refs;
    size_t nrefs, refs_cap;
    size_t *order; /* refs grouped by pair */
    size_t order_cap;
    int64_t *totals; /* per user, from the script */
    size_t totals_cap;
    struct unread_args args;
};

struct unread_state {
    struct unread_settings set;
    struct hr_script script;
    struct hr_metric *changes;
    struct hr_metric *saturated;
    struct unread_work work[2];
    struct hr_jsonw jw; /* the output being written */
};

/** Group the batch's valid events from item @from on into pairs and refs
 *  (dead-letters invalid events and marks duplicates), as many as one
 *  script call takes: the call covers items [wk->from, wk->next). */
void unread_group(struct unread_work *wk, struct hr_batch *batch, size_t from);

/** Build the script's arguments for a grouped batch. */
void unread_build(struct unread_work *wk,
                  const struct unread_settings *set,
                  const char *prefix);

/** Send the script call without waiting (pipelined). Returns 0, or -1
 *  with @errstr. */
int unread_send(struct unread_state *st,
                struct unread_work *wk,
                struct hr_redis *redis,
                char *errstr,
                size_t errstr_size);

/** Read the reply of a call sent by unread_send(), or (when it was not
 *  sent on the current connection) run the call now. Returns 0, or -1 with
 *  @errstr when Redis is unavailable (the batch pauses). */
int unread_apply(struct unread_state *st,
                 struct unread_work *wk,
                 struct hr_redis *redis,
                 char *errstr,
                 size_t errstr_size);

/** Set the outcome of every event of the call from the script's results. */
void unread_settle(struct unread_work *wk, struct hr_batch *batch);

/** Emit unread.changed and push.requested. Returns 0 or -1 (producer). */
int unread_emit(struct unread_state *st,
                struct unread_work *wk,
                struct hr_worker *w);

void unread_work_init(struct unread_work *wk);
void unread_work_release(struct unread_work *wk);

#endif
