/*
 * Outputs of a batch: one unread.changed per touched (user, conversation),
 * and with HERALD_UNREAD_PUSH_TOPIC one push.requested per recipient of each
 * still-unread message. Ids are derived from what caused them, so a redone
 * batch re-emits the same ids and downstream idempotency absorbs them.
 */
#include <stdlib.h>
#include <string.h>

#include "hr_event.h"
#include "hr_jsonw.h"
#include "hr_log.h"
#include "unread_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define UNREAD_SOURCE "/herald/unread"
/* A notification shows a line of title and a few of body, and APNs and FCM
 * take 4 KB in all: longer renderings are cut (at a character, with "…"),
 * which also keeps every push.requested far below the producer's limit. */
#define UNREAD_TITLE_MAX 256
#define UNREAD_BODY_MAX  1024

/* Produce the event st->jw holds (keyed by @key). */
static int send_event(struct unread_state *st,
                      struct hr_worker *w,
                      const char *topic,
                      const char *key)
{
    size_t len = hr_jsonw_finish(&st->jw);

    return hr_worker_produce(w, topic, key, strlen(key), st->jw.buf, len);
}

/* Cut @s (of @len bytes) to at most @max bytes, "…" included, at a UTF-8
 * character boundary (jansson validated the input). */
static void cut(char *s, size_t len, size_t max)
{
    static const char ellipsis[] = "\xe2\x80\xa6";
    size_t at = max - (sizeof(ellipsis) - 1);

    if (len <= max)
        return;
    while (at && ((unsigned char)s[at] & 0xc0) == 0x80)
        at--;
    memcpy(s + at, ellipsis, sizeof(ellipsis));
}

/* Expand {{sender_name}}, {{preview}} and {{conversation_title}}
 * (unread_validate() already refused unknown placeholders), cut to @max
 * bytes. */
static char *render(const char *tmpl, const struct unread_event *ev, size_t max)
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
    cut(out, used, max);
    return out;
}

static int emit_changed(struct unread_state *st,
                        struct unread_work *wk,
                        struct hr_worker *w)
{
    for (size_t p = 0; p < wk->pair_ids.n; p++) {
        const struct unread_pair *pair = &wk->pairs[p];
        const char *user = hr_strmap_key(&wk->users, pair->user);
        const char *cause = wk->events[pair->cause].id;
        const char *parts[] = {"unread.changed", cause, user, pair->conv};
        char id[37];

        hr_event_derive_id(id, parts, HR_ARRAY_SIZE(parts));
        hr_event_write(&st->jw, id, UNREAD_SOURCE, "unread.changed", user);
        hr_jsonw_str(&st->jw, "user_id", user);
        hr_jsonw_str(&st->jw, "conversation_id", pair->conv);
        hr_jsonw_int(&st->jw, "count", pair->count);
        hr_jsonw_int(&st->jw, "total", wk->totals[pair->user]);
        hr_jsonw_str(&st->jw, "cause", cause);
        if (send_event(st, w, st->set.changed_topic, user))
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
        int fresh;

        if (ref->ts <= pair->read_at)
            continue; /* already read: nothing to notify */
        hr_event_derive_id(id, parts, HR_ARRAY_SIZE(parts));
        hr_strmap_put(&sent, id, strlen(id), &fresh);
        if (!fresh)
            continue;
        title = render(st->set.push_title, ev, UNREAD_TITLE_MAX);
        body = render(st->set.push_body, ev, UNREAD_BODY_MAX);
        if (!title || !body) {
            rc = -1;
        } else {
            hr_event_write(&st->jw, id, UNREAD_SOURCE, "push.requested", user);
            hr_jsonw_str(&st->jw, "user_id", user);
            hr_jsonw_str(&st->jw, "title", title);
            hr_jsonw_str(&st->jw, "body", body);
            hr_jsonw_int(&st->jw, "badge", wk->totals[pair->user]);
            hr_jsonw_str(&st->jw, "thread_id", ev->conversation_id);
            hr_jsonw_str(&st->jw, "priority", "high");
            hr_jsonw_open(&st->jw, "data");
            hr_jsonw_str(&st->jw, "conversation_id", ev->conversation_id);
            hr_jsonw_str(&st->jw, "message_id", ref->msg_id);
            if (send_event(st, w, st->set.push_topic, user))
                rc = -1;
        }
        free(title);
        free(body);
    }
    hr_strmap_release(&sent);
    return rc;
}

int unread_emit(struct unread_state *st,
                struct unread_work *wk,
                struct hr_worker *w)
{
    if (st->set.changed_topic && emit_changed(st, wk, w))
        return -1;
    if (st->set.push_topic && emit_push(st, wk, w))
        return -1;
    return 0;
}
