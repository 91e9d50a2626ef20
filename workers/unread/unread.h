/*
 * herald-unread: exact unread counts per user and conversation.
 */
#ifndef UNREAD_H
#define UNREAD_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "hr_worker.h"

/** The worker's settings, resolved once at init. Strings are borrowed from
 *  the configuration. */
struct unread_settings {
    const char *changed_topic; /* NULL: unread.changed not emitted */
    const char *push_topic;    /* NULL: push.requested not emitted */
    const char *push_title;
    const char *push_body;
    int64_t max_per_conversation;
    int64_t ttl_seconds;
};

extern const struct hr_conf_spec unread_conf[];

/** Worker-specific checks for startup and --check-config. */
void unread_validate(struct hr_conf *cfg);

/** Read the settings from @cfg (already validated). */
void unread_settings_load(struct unread_settings *s, const struct hr_conf *cfg);

enum unread_kind {
    UNREAD_MESSAGE, /* message.created */
    UNREAD_READ,    /* conversation.read */
};

/** One input event, validated. Strings and arrays are borrowed from the
 *  CloudEvent's JSON until unread_event_keep() copies them. */
struct unread_event {
    enum unread_kind kind;
    const char *id; /* the CloudEvent's id (set by keep) */
    const char *conversation_id;
    const char *message_id;  /* message */
    const char *sender_id;   /* message */
    json_t *recipient_ids;   /* message: array of strings (NULL once kept) */
    const char **recipients; /* message, once kept: nrecipients strings */
    size_t nrecipients;
    const char *user_id;     /* read */
    int64_t ts_ms;           /* sent_at or read_at */
    const char *sender_name; /* optional, NULL if absent */
    const char *preview;
    const char *conversation_title;
    unsigned nrefs; /* recipients counted (set while grouping) */
};

/**
 * Validate @ev as message.created or conversation.read (SPEC section 4).
 * Returns 0, or -1 with the reason ("missing field 'sent_at'",
 * "unknown event type 'x'") in @errstr.
 */
int unread_event_parse(const struct hr_event *ev,
                       struct unread_event *out,
                       char *errstr,
                       size_t errstr_size);

struct hr_arena;

/** Copy @ev's strings and @id into @pool, so the event outlives its JSON
 *  (which a batch then need not keep): recipient_ids becomes recipients. */
void unread_event_keep(struct unread_event *ev,
                       const char *id,
                       struct hr_arena *pool);

/** Entry points for struct hr_worker_def. */
int unread_init(struct hr_worker *w, void **state);
void unread_submit(struct hr_worker *w, void *state, struct hr_batch *batch);
enum hr_batch_result
unread_handle(struct hr_worker *w, void *state, struct hr_batch *batch);
void unread_fini(struct hr_worker *w, void *state);

#endif
