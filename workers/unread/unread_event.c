/* Validation of message.created and conversation.read (SPEC section 4). */
#include <stdio.h>
#include <string.h>

#include "hr_arena.h"
#include "hr_time.h"
#include "unread.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define UNREAD_ID_MAX         256
#define UNREAD_RECIPIENTS_MAX 10000

/* Ids become parts of Redis keys: user ids sit inside a {hash tag}, so
 * braces and control characters are refused. */
static int
check_id(const char *field, const char *s, char *errstr, size_t errstr_size)
{
    size_t len = strlen(s);

    if (!len || len > UNREAD_ID_MAX) {
        snprintf(errstr, errstr_size, "field '%s' must have 1..%d bytes", field,
                 UNREAD_ID_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f || c == '{' || c == '}') {
            snprintf(errstr, errstr_size,
                     "field '%s' contains a control character or brace", field);
            return -1;
        }
    }
    return 0;
}

static int get_id(json_t *data,
                  const char *field,
                  const char **out,
                  char *errstr,
                  size_t errstr_size)
{
    json_t *v = json_object_get(data, field);

    if (!v) {
        snprintf(errstr, errstr_size, "missing field '%s'", field);
        return -1;
    }
    if (!json_is_string(v)) {
        snprintf(errstr, errstr_size, "field '%s' must be a string", field);
        return -1;
    }
    *out = json_string_value(v);
    return check_id(field, *out, errstr, errstr_size);
}

static int get_time(json_t *data,
                    const char *field,
                    int64_t *ms,
                    char *errstr,
                    size_t errstr_size)
{
    const char *s;
    json_t *v = json_object_get(data, field);

    if (!v) {
        snprintf(errstr, errstr_size, "missing field '%s'", field);
        return -1;
    }
    s = json_string_value(v);
    if (!s || hr_time_parse_rfc3339(s, ms)) {
        snprintf(errstr, errstr_size, "field '%s' must be an RFC 3339 time",
                 field);
        return -1;
    }
    return 0;
}

/* Optional display strings: absent or null is fine, other types are not. */
static int get_optional(json_t *data,
                        const char *field,
                        const char **out,
                        char *errstr,
                        size_t errstr_size)
{
    json_t *v = json_object_get(data, field);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        snprintf(errstr, errstr_size, "field '%s' must be a string", field);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int parse_message(json_t *data,
                         struct unread_event *out,
                         char *errstr,
                         size_t errstr_size)
{
    size_t i;
    json_t *r;

    out->kind = UNREAD_MESSAGE;
    if (get_id(data, "conversation_id", &out->conversation_id, errstr,
               errstr_size) ||
        get_id(data, "message_id", &out->message_id, errstr, errstr_size) ||
        get_id(data, "sender_id", &out->sender_id, errstr, errstr_size) ||
        get_time(data, "sent_at", &out->ts_ms, errstr, errstr_size) ||
        get_optional(data, "sender_name", &out->sender_name, errstr,
                     errstr_size) ||
        get_optional(data, "preview", &out->preview, errstr, errstr_size) ||
        get_optional(data, "conversation_title", &out->conversation_title,
                     errstr, errstr_size))
        return -1;
    out->recipient_ids = json_object_get(data, "recipient_ids");
    if (!out->recipient_ids) {
        snprintf(errstr, errstr_size, "missing field 'recipient_ids'");
        return -1;
    }
    if (!json_is_array(out->recipient_ids) ||
        json_array_size(out->recipient_ids) > UNREAD_RECIPIENTS_MAX) {
        snprintf(errstr, errstr_size,
                 "field 'recipient_ids' must be an array of at most %d "
                 "strings",
                 UNREAD_RECIPIENTS_MAX);
        return -1;
    }
    json_array_foreach(out->recipient_ids, i, r)
    {
        if (!json_is_string(r)) {
            snprintf(errstr, errstr_size,
                     "field 'recipient_ids' must contain only strings");
            return -1;
        }
        if (check_id("recipient_ids", json_string_value(r), errstr,
                     errstr_size))
            return -1;
    }
    return 0;
}

static int parse_read(json_t *data,
                      struct unread_event *out,
                      char *errstr,
                      size_t errstr_size)
{
    out->kind = UNREAD_READ;
    return get_id(data, "conversation_id", &out->conversation_id, errstr,
                  errstr_size) ||
                   get_id(data, "user_id", &out->user_id, errstr,
                          errstr_size) ||
                   get_time(data, "read_at", &out->ts_ms, errstr, errstr_size)
               ? -1
               : 0;
}

int unread_event_parse(const struct hr_event *ev,
                       struct unread_event *out,
                       char *errstr,
                       size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    /* The id names the outputs' cause: a huge one would make outputs no
     * producer sends. */
    if (strlen(ev->id) > UNREAD_ID_MAX) {
        snprintf(errstr, errstr_size, "event id over %d bytes", UNREAD_ID_MAX);
        return -1;
    }
    if (strcmp(ev->type, "message.created") &&
        strcmp(ev->type, "conversation.read")) {
        snprintf(errstr, errstr_size, "unknown event type '%.64s'", ev->type);
        return -1;
    }
    if (!json_is_object(ev->data)) {
        snprintf(errstr, errstr_size, "event data must be an object");
        return -1;
    }
    if (!strcmp(ev->type, "message.created"))
        return parse_message(ev->data, out, errstr, errstr_size);
    return parse_read(ev->data, out, errstr, errstr_size);
}

static const char *keep(struct hr_arena *pool, const char *s)
{
    return s ? hr_arena_strdup(pool, s) : NULL;
}

void unread_event_keep(struct unread_event *ev,
                       const char *id,
                       struct hr_arena *pool)
{
    ev->id = keep(pool, id);
    ev->conversation_id = keep(pool, ev->conversation_id);
    ev->message_id = keep(pool, ev->message_id);
    ev->sender_id = keep(pool, ev->sender_id);
    ev->user_id = keep(pool, ev->user_id);
    ev->sender_name = keep(pool, ev->sender_name);
    ev->preview = keep(pool, ev->preview);
    ev->conversation_title = keep(pool, ev->conversation_title);
    ev->nrecipients = json_array_size(ev->recipient_ids);
    ev->recipients = NULL;
    if (ev->nrecipients) {
        ev->recipients =
            hr_arena_alloc(pool, ev->nrecipients * sizeof(*ev->recipients));
        for (size_t i = 0; i < ev->nrecipients; i++)
            ev->recipients[i] = keep(
                pool, json_string_value(json_array_get(ev->recipient_ids, i)));
    }
    ev->recipient_ids = NULL;
}
