#include "hr_sns.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_base64.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Whether @body could be an envelope at all: most bodies are not, and are
 * not parsed twice for nothing. */
static bool looks_like_envelope(const char *body, size_t len)
{
    static const char arn[] = "\"TopicArn\"";
    size_t i = 0;

    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' ||
                       body[i] == '\t'))
        i++;
    if (i == len || body[i] != '{')
        return false;
    for (const char *p = body + i; (size_t)(p - body) + sizeof(arn) - 1 <= len;
         p++) {
        p = memchr(p, '"', len - (size_t)(p - body));
        if (!p)
            return false;
        if ((size_t)(p - body) + sizeof(arn) - 1 <= len &&
            !memcmp(p, arn, sizeof(arn) - 1))
            return true;
    }
    return false;
}

/* Every attribute is checked before any is handed out. */
static int attrs_check(json_t *attrs, char *why, size_t why_size)
{
    const char *name;
    json_t *a;

    if (!attrs)
        return 0;
    if (!json_is_object(attrs)) {
        snprintf(why, why_size, "sns MessageAttributes is not an object");
        return -1;
    }
    json_object_foreach(attrs, name, a)
    {
        const char *type = json_string_value(json_object_get(a, "Type"));
        const char *value = json_string_value(json_object_get(a, "Value"));

        if (!type || !value) {
            snprintf(why, why_size,
                     "sns message attribute '%.64s' lacks a Type or Value",
                     name);
            return -1;
        }
        if (!strcmp(type, "Binary")) {
            size_t len;
            void *bin = hr_base64_decode(
                value, json_string_length(json_object_get(a, "Value")), &len);

            if (!bin) {
                snprintf(why, why_size,
                         "sns message attribute '%.64s' is not base64", name);
                return -1;
            }
            free(bin);
        }
    }
    return 0;
}

static int attrs_give(
    json_t *attrs, hr_sns_attr_fn *fn, void *opaque, char *why, size_t why_size)
{
    const char *name;
    json_t *a;

    json_object_foreach(attrs, name, a)
    {
        const char *type = json_string_value(json_object_get(a, "Type"));
        json_t *v = json_object_get(a, "Value");

        if (!strcmp(type, "Binary")) {
            size_t len;
            void *bin = hr_base64_decode(json_string_value(v),
                                         json_string_length(v), &len);

            if (!bin) {
                snprintf(why, why_size,
                         "sns message attribute '%.64s' is not base64", name);
                return -1;
            }
            fn(opaque, name, bin, len);
            free(bin);
        } else {
            fn(opaque, name, json_string_value(v), json_string_length(v));
        }
    }
    return 0;
}

enum hr_sns_result hr_sns_unwrap(const char *body,
                                 size_t len,
                                 char **message,
                                 size_t *message_len,
                                 hr_sns_attr_fn *attr,
                                 void *opaque,
                                 char *why,
                                 size_t why_size)
{
    enum hr_sns_result res = HR_SNS_REFUSED;
    json_t *root, *msg, *attrs;
    const char *type;

    *message = NULL;
    if (!looks_like_envelope(body, len))
        return HR_SNS_NOT_ENVELOPE;
    root = json_loadb(body, len, 0, NULL);
    type = json_string_value(json_object_get(root, "Type"));
    if (!type || !json_is_string(json_object_get(root, "TopicArn")) ||
        !json_is_string(json_object_get(root, "MessageId"))) {
        json_decref(root);
        return HR_SNS_NOT_ENVELOPE;
    }
    msg = json_object_get(root, "Message");
    attrs = json_object_get(root, "MessageAttributes");
    if (strcmp(type, "Notification")) {
        snprintf(why, why_size, "sns %.64s holds no event", type);
    } else if (!json_is_string(msg)) {
        snprintf(why, why_size, "sns notification without a string Message");
    } else if (!attrs_check(attrs, why, why_size) &&
               (!attrs || !attr ||
                !attrs_give(attrs, attr, opaque, why, why_size))) {
        *message_len = json_string_length(msg);
        *message = malloc(*message_len + 1);
        if (*message) {
            memcpy(*message, json_string_value(msg), *message_len);
            (*message)[*message_len] = '\0';
            res = HR_SNS_MESSAGE;
        } else {
            snprintf(why, why_size, "out of memory");
        }
    }
    json_decref(root);
    return res;
}
