/*
 * Outputs of a batch: one unread.changed per touched (user, conversation),
 * and with HERALD_UNREAD_PUSH_TOPIC one push.requested per recipient of each
 * still-unread message. Ids are derived from what caused them, so a redone
 * batch re-emits the same ids and downstream idempotency absorbs them.
 */
#include <stdlib.h>
#include <string.h>

#include "hr_arena.h"
#include "hr_log.h"
#include "unread_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define UNREAD_SOURCE     "/herald/unread"
#define UNREAD_ARENA_KEEP (1024 * 1024)

static int send_event(struct unread_state *st,
                      struct hr_worker *w,
                      const char *topic,
                      const char *id,
                      const char *type,
                      const char *key,
                      json_t *data)
{
    size_t len = hr_event_serialize_buf(id, UNREAD_SOURCE, type, key, data,
                                        &st->out, &st->out_cap);

    /* The event's JSON is dead now: its arena memory is reused by the next
     * one, so a batch's outputs never pile up. */
    hr_arena_reset(st->arena, UNREAD_ARENA_KEEP);
    if (!len)
        return -1;
    return hr_worker_produce(w, topic, key, strlen(key), st->out, len);
}

/* Expand {{sender_name}}, {{preview}} and {{conversation_title}}
 * (unread_validate() already refused unknown placeholders). */
static char *render(const char *tmpl, const struct unread_event *ev)
{
    const char *names[] = {"sender_name", "preview", "conversation_title"};
    const char *values[] = {ev->sender_name, ev->preview,
                            ev->conversation_title};
    size_t cap = 0, used = 0;
    char *out = NULL;

    while (*tmpl) {
        const char *piece = tmpl;
        size_t len = 1, skip = 1;

        for (size_t i = 0; tmpl[0] == '{' && i < HR_ARRAY_SIZE(names); i++) {
            size_t n = strlen(names[i]);

            if (!strncmp(tmpl, "{{", 2) && !strncmp(tmpl + 2, names[i], n) &&
                !strncmp(tmpl + 2 + n, "}}", 2)) {
                piece = values[i] ? values[i] : "";
                len = strlen(piece);
                skip = n + 4;
                break;
            }
        }
        if (used + len + 1 > cap) {
            char *grown;

            cap = (used + len + 1) * 2;
            grown = realloc(out, cap);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + used, piece, len);
        used += len;
        tmpl += skip;
    }
    if (!out)
        return strdup("");
    out[used] = '\0';
    return out;
}

static int emit_changed(struct unread_state *st,
                        struct unread_work *wk,
                        struct hr_worker *w,
                        struct hr_batch *batch)
{
    for (size_t p = 0; p < wk->pair_ids.n; p++) {
        const struct unread_pair *pair = &wk->pairs[p];
        const char *user = hr_strmap_key(&wk->users, pair->user);
        const char *cause = batch->items[pair->cause].ev.id;
        const char *parts[] = {"unread.changed", cause, user, pair->conv};
        char id[37];
        json_t *data;

        hr_event_derive_id(id, parts, HR_ARRAY_SIZE(parts));
        data = json_pack("{s:s, s:s, s:I, s:I, s:s}", "user_id", user,
                         "conversation_id", pair->conv, "count",
                         (json_int_t)pair->count, "total",
                         (json_int_t)wk->totals[pair->user], "cause", cause);
        if (!data || send_event(st, w, st->set.changed_topic, id,
                                "unread.changed", user, data))
            return -1;
    }
    return 0;
}

static int
emit_push(struct unread_state *st, struct unread_work *wk, struct hr_worker *w)
{
    struct hr_strmap sent;
    int rc = 0;

    hr_strmap_init(&sent);
    for (size_t r = 0; r < wk->nrefs && !rc; r++) {
        const struct unread_ref *ref = &wk->refs[r];
        const struct unread_pair *pair = &wk->pairs[ref->pair];
        const struct unread_event *ev = &wk->events[ref->item];
        const char *user = hr_strmap_key(&wk->users, pair->user);
        const char *parts[] = {"push.requested", ref->msg_id, user};
        char id[37], *title, *body;
        json_t *data;
        int fresh;

        if (ref->ts <= pair->read_at)
            continue; /* already read: nothing to notify */
        hr_event_derive_id(id, parts, HR_ARRAY_SIZE(parts));
        hr_strmap_put(&sent, id, strlen(id), &fresh);
        if (!fresh)
            continue;
        title = render(st->set.push_title, ev);
        body = render(st->set.push_body, ev);
        data = title && body
                   ? json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:{s:s, s:s}}",
                               "user_id", user, "title", title, "body", body,
                               "badge", (json_int_t)wk->totals[pair->user],
                               "thread_id", ev->conversation_id, "priority",
                               "high", "data", "conversation_id",
                               ev->conversation_id, "message_id", ref->msg_id)
                   : NULL;
        free(title);
        free(body);
        if (!data || send_event(st, w, st->set.push_topic, id, "push.requested",
                                user, data))
            rc = -1;
    }
    hr_strmap_release(&sent);
    return rc;
}

int unread_emit(struct unread_state *st,
                struct unread_work *wk,
                struct hr_worker *w,
                struct hr_batch *batch)
{
    /* Every JSON value built here dies before the function returns. */
    struct hr_arena *previous = hr_arena_enter(st->arena);
    int rc = 0;

    if (st->set.changed_topic && emit_changed(st, wk, w, batch))
        rc = -1;
    if (!rc && st->set.push_topic && emit_push(st, wk, w))
        rc = -1;
    hr_arena_leave(previous);
    hr_arena_reset(st->arena, UNREAD_ARENA_KEEP);
    return rc;
}
