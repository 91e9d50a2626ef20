/* herald-push's input events, validated (SPEC section 4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_event.h"
#include "hr_time.h"
#include "push.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Bounds that keep every key and payload sane. */
#define PUSH_ID_MAX    256
#define PUSH_TOKEN_MAX 4096 /* a Web Push subscription is JSON */
#define PUSH_TARGETS   1000

static const char *const platform_names[PUSH_PLATFORMS] = {"ios", "android",
                                                           "web"};

const char *push_platform_name(enum push_platform p)
{
    return p < PUSH_PLATFORMS ? platform_names[p] : "unknown";
}

int push_platform_parse(const char *name, enum push_platform *p)
{
    for (int i = 0; i < PUSH_PLATFORMS; i++) {
        if (!strcmp(name, platform_names[i])) {
            *p = (enum push_platform)i;
            return 0;
        }
    }
    return -1;
}

/* A required non-empty string of at most @max bytes; -1 with @errstr. */
static int need_str(json_t *data,
                    const char *name,
                    size_t max,
                    const char **out,
                    char *errstr,
                    size_t errstr_size)
{
    json_t *v = json_object_get(data, name);

    if (!v) {
        snprintf(errstr, errstr_size, "missing field '%s'", name);
        return -1;
    }
    if (!json_is_string(v) || !json_string_length(v)) {
        snprintf(errstr, errstr_size, "field '%s' must be a non-empty string",
                 name);
        return -1;
    }
    if (json_string_length(v) > max) {
        snprintf(errstr, errstr_size, "field '%s' is longer than %zu bytes",
                 name, max);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* An optional string: NULL when absent or null; -1 when mistyped. */
static int opt_str(json_t *data,
                   const char *name,
                   size_t max,
                   const char **out,
                   char *errstr,
                   size_t errstr_size)
{
    json_t *v = json_object_get(data, name);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    return need_str(data, name, max, out, errstr, errstr_size);
}

static int parse_registry(const struct hr_event *ev,
                          int64_t record_ms,
                          struct push_event *out,
                          char *errstr,
                          size_t errstr_size)
{
    json_t *data = ev->data;
    const char *platform = NULL;

    out->at_ms = record_ms > 0 ? record_ms : hr_time_now_ms();
    if (ev->time && hr_time_parse_rfc3339(ev->time, &out->at_ms)) {
        snprintf(errstr, errstr_size, "attribute 'time' is not RFC 3339");
        return -1;
    }
    if (need_str(data, "user_id", PUSH_ID_MAX, &out->user_id, errstr,
                 errstr_size) ||
        need_str(data, "token", PUSH_TOKEN_MAX, &out->token, errstr,
                 errstr_size))
        return -1;
    if (out->kind == PUSH_UNREGISTERED)
        return 0;
    if (need_str(data, "platform", 16, &platform, errstr, errstr_size))
        return -1;
    if (push_platform_parse(platform, &out->platform)) {
        snprintf(errstr, errstr_size,
                 "field 'platform' must be ios, android or web, got '%s'",
                 platform);
        return -1;
    }
    if (opt_str(data, "app", PUSH_ID_MAX, &out->app, errstr, errstr_size) ||
        opt_str(data, "environment", 16, &out->environment, errstr,
                errstr_size))
        return -1;
    if (out->environment && strcmp(out->environment, "production") &&
        strcmp(out->environment, "sandbox")) {
        snprintf(errstr, errstr_size,
                 "field 'environment' must be production or sandbox");
        return -1;
    }
    if (out->platform == PUSH_IOS &&
        strspn(out->token, "0123456789abcdefABCDEF") != strlen(out->token)) {
        snprintf(errstr, errstr_size, "an ios token must be hexadecimal");
        return -1;
    }
    return 0;
}

static int parse_targets(json_t *tokens,
                         struct push_event *out,
                         char *errstr,
                         size_t errstr_size)
{
    size_t i;
    json_t *t;

    if (!json_is_array(tokens) || !json_array_size(tokens) ||
        json_array_size(tokens) > PUSH_TARGETS) {
        snprintf(errstr, errstr_size,
                 "field 'tokens' must be an array of 1 to %d {token, "
                 "platform} objects",
                 PUSH_TARGETS);
        return -1;
    }
    out->targets = calloc(json_array_size(tokens), sizeof(*out->targets));
    HR_ASSERT(out->targets);
    json_array_foreach(tokens, i, t)
    {
        const char *platform = NULL;

        if (need_str(t, "token", PUSH_TOKEN_MAX, &out->targets[i].token, errstr,
                     errstr_size) ||
            need_str(t, "platform", 16, &platform, errstr, errstr_size) ||
            push_platform_parse(platform, &out->targets[i].platform)) {
            if (platform)
                snprintf(errstr, errstr_size,
                         "tokens[%zu]: platform must be ios, android or web",
                         i);
            return -1;
        }
        out->ntargets++;
    }
    return 0;
}

static int parse_push(const struct hr_event *ev,
                      struct push_event *out,
                      char *errstr,
                      size_t errstr_size)
{
    json_t *data = ev->data, *v;
    const char *priority = NULL, *key;

    if (opt_str(data, "user_id", PUSH_ID_MAX, &out->user_id, errstr,
                errstr_size))
        return -1;
    v = json_object_get(data, "tokens");
    if (v && !json_is_null(v) && parse_targets(v, out, errstr, errstr_size))
        return -1;
    if (!out->user_id && !out->ntargets) {
        snprintf(errstr, errstr_size, "missing field 'user_id' (or 'tokens')");
        return -1;
    }
    if (need_str(data, "title", 4096, &out->title, errstr, errstr_size) ||
        need_str(data, "body", 4096, &out->body, errstr, errstr_size) ||
        opt_str(data, "collapse_id", 64, &out->collapse_id, errstr,
                errstr_size) ||
        opt_str(data, "thread_id", 256, &out->thread_id, errstr, errstr_size) ||
        opt_str(data, "priority", 16, &priority, errstr, errstr_size) ||
        opt_str(data, "sound", 256, &out->sound, errstr, errstr_size) ||
        opt_str(data, "category", 256, &out->category, errstr, errstr_size))
        return -1;
    out->high = !priority || !strcmp(priority, "high");
    if (priority && !out->high && strcmp(priority, "normal")) {
        snprintf(errstr, errstr_size,
                 "field 'priority' must be high or normal");
        return -1;
    }
    v = json_object_get(data, "data");
    if (v && !json_is_null(v)) {
        json_t *s;

        if (!json_is_object(v)) {
            snprintf(errstr, errstr_size, "field 'data' must be an object");
            return -1;
        }
        json_object_foreach(v, key, s)
        {
            if (!json_is_string(s)) {
                snprintf(errstr, errstr_size,
                         "data.%.64s must be a string (FCM takes strings "
                         "only)",
                         key);
                return -1;
            }
            if (!strcmp(key, "aps")) {
                snprintf(errstr, errstr_size, "data.aps is reserved");
                return -1;
            }
        }
        out->data = v;
    }
    out->badge = PUSH_BADGE_NONE;
    v = json_object_get(data, "badge");
    if (json_is_string(v) && !strcmp(json_string_value(v), "unread_total"))
        out->badge = PUSH_BADGE_TOTAL;
    else if (json_is_integer(v) && json_integer_value(v) >= 0)
        out->badge = json_integer_value(v);
    else if (v && !json_is_null(v)) {
        snprintf(errstr, errstr_size,
                 "field 'badge' must be an integer >= 0 or \"unread_total\"");
        return -1;
    }
    if (out->badge == PUSH_BADGE_TOTAL && !out->user_id) {
        snprintf(errstr, errstr_size,
                 "badge \"unread_total\" needs a 'user_id'");
        return -1;
    }
    out->ttl_seconds = -1;
    v = json_object_get(data, "ttl_seconds");
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) <= 2419200)
        out->ttl_seconds = json_integer_value(v);
    else if (v && !json_is_null(v)) {
        snprintf(errstr, errstr_size,
                 "field 'ttl_seconds' must be an integer of 0 to 2419200");
        return -1;
    }
    v = json_object_get(data, "mutable_content");
    out->mutable_content = json_is_true(v);
    return 0;
}

int push_event_parse(const struct hr_event *ev,
                     int64_t record_ms,
                     struct push_event *out,
                     char *errstr,
                     size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    out->id = ev->id;
    if (strlen(ev->id) > PUSH_ID_MAX) {
        snprintf(errstr, errstr_size, "event id longer than %d bytes",
                 PUSH_ID_MAX);
        return -1;
    }
    if (!strcmp(ev->type, "push.requested"))
        out->kind = PUSH_REQUESTED;
    else if (!strcmp(ev->type, "device.registered"))
        out->kind = PUSH_REGISTERED;
    else if (!strcmp(ev->type, "device.unregistered"))
        out->kind = PUSH_UNREGISTERED;
    else {
        snprintf(errstr, errstr_size, "unknown event type '%.64s'", ev->type);
        return -1;
    }
    if (!json_is_object(ev->data)) {
        snprintf(errstr, errstr_size, "data must be an object");
        return -1;
    }
    if (out->kind == PUSH_REQUESTED)
        return parse_push(ev, out, errstr, errstr_size);
    return parse_registry(ev, record_ms, out, errstr, errstr_size);
}

void push_event_release(struct push_event *ev)
{
    free(ev->targets);
    ev->targets = NULL;
    ev->ntargets = 0;
}
