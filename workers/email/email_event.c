/* herald-email's input events: notification.email (SPEC section 4) and the
 * worker's own email.send (workers/email/README.md). */
#include <stdio.h>
#include <string.h>

#include "email.h"
#include "email_mime.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define ID_MAX   256
#define TEXT_MAX (64 * 1024)

bool email_category_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (!n || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* A string member: required (@need) or optional (absent or null: NULL). */
static int str(json_t *data,
               const char *name,
               bool need,
               size_t max,
               const char **out,
               char *errstr,
               size_t errstr_size)
{
    json_t *v = json_object_get(data, name);

    *out = NULL;
    if (!v || json_is_null(v)) {
        if (!need)
            return 0;
        snprintf(errstr, errstr_size, "data.%s is required", name);
        return -1;
    }
    if (!json_is_string(v) || (need && !json_string_length(v))) {
        snprintf(errstr, errstr_size, "data.%s must be a%s string", name,
                 need ? " non-empty" : "");
        return -1;
    }
    if (json_string_length(v) > max) {
        snprintf(errstr, errstr_size, "data.%s is longer than %zu bytes", name,
                 max);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int notification(json_t *data,
                        struct email_event *out,
                        char *errstr,
                        size_t errstr_size)
{
    static const char *const texts[] = {"actor_name", "item_title", "item_url",
                                        "text"};
    const char *s;

    if (str(data, "to", false, 254, &out->to, errstr, errstr_size) ||
        str(data, "locale", false, 35, &out->locale, errstr, errstr_size))
        return -1;
    if (out->to && !email_address_ok(out->to)) {
        snprintf(errstr, errstr_size, "data.to is not an email address");
        return -1;
    }
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (str(data, texts[i], false, TEXT_MAX, &s, errstr, errstr_size))
            return -1;
    }
    return 0;
}

static int send_record(json_t *data,
                       struct email_event *out,
                       char *errstr,
                       size_t errstr_size)
{
    json_t *v;

    if (str(data, "window_id", true, ID_MAX, &out->window_id, errstr,
            errstr_size) ||
        str(data, "message_id", true, 512, &out->message_id, errstr,
            errstr_size) ||
        str(data, "from", true, 254, &out->from, errstr, errstr_size) ||
        str(data, "raw", true, 16 * 1024 * 1024, &out->raw, errstr,
            errstr_size) ||
        str(data, "to", false, 254, &out->to, errstr, errstr_size) ||
        str(data, "undeliverable", false, 512, &out->undeliverable, errstr,
            errstr_size) ||
        str(data, "mode", true, 16, &out->mode, errstr, errstr_size))
        return -1;
    out->raw_len = json_string_length(json_object_get(data, "raw"));
    if (!out->to && !out->undeliverable) {
        snprintf(errstr, errstr_size, "data.to is required");
        return -1;
    }
    v = json_object_get(data, "items");
    out->items = json_is_integer(v) ? json_integer_value(v) : 0;
    v = json_object_get(data, "due_ms");
    out->due_ms = json_is_integer(v) ? json_integer_value(v) : 0;
    return 0;
}

int email_event_parse(const struct hr_event *ev,
                      struct email_event *out,
                      char *errstr,
                      size_t errstr_size)
{
    json_t *data = ev->data;

    memset(out, 0, sizeof(*out));
    out->id = ev->id;
    if (!strcmp(ev->type, "notification.email")) {
        out->kind = EMAIL_NOTIFICATION;
    } else if (!strcmp(ev->type, "email.send")) {
        out->kind = EMAIL_SEND;
    } else {
        snprintf(errstr, errstr_size,
                 "unexpected event type '%.100s' (herald-email takes "
                 "notification.email)",
                 ev->type);
        return -1;
    }
    if (strlen(ev->id) > ID_MAX) {
        snprintf(errstr, errstr_size, "event id longer than %d bytes", ID_MAX);
        return -1;
    }
    if (!json_is_object(data)) {
        snprintf(errstr, errstr_size, "data must be a JSON object");
        return -1;
    }
    if (str(data, "user_id", true, ID_MAX, &out->user_id, errstr,
            errstr_size) ||
        str(data, "category", true, 64, &out->category, errstr, errstr_size))
        return -1;
    if (!email_category_name_ok(out->category)) {
        snprintf(errstr, errstr_size,
                 "data.category must be 1 to 64 of A-Z a-z 0-9 _ . -");
        return -1;
    }
    return out->kind == EMAIL_NOTIFICATION
               ? notification(data, out, errstr, errstr_size)
               : send_record(data, out, errstr, errstr_size);
}
