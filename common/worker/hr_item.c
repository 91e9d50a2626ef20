/* Outcomes and destinations of consumed events (hr_worker.h's hr_item_*). */
#include "hr_item.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_circuit.h"
#include "hr_msg.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

void hr_item_init(struct hr_item *item, const struct hr_msg *msg)
{
    memset(item, 0, sizeof(*item));
    item->msg = msg;
    item->topic = msg->topic;
    item->partition = msg->partition;
    item->offset = msg->offset;
    item->key = msg->key;
    item->key_len = msg->key_len;
    item->value = msg->value;
    item->value_len = msg->value_len;
    item->timestamp_ms = msg->timestamp_ms;
    item->retry_after_ms = -1;
}

const char *hr_item_header(void *opaque, const char *name, size_t *len)
{
    const struct hr_item *item = opaque;

    return hr_msg_header(item->msg, name, len);
}

void hr_item_ok(struct hr_item *item)
{
    item->outcome = HR_OUT_OK;
}

void hr_item_duplicate(struct hr_item *item)
{
    item->outcome = HR_OUT_DUPLICATE;
}

void hr_item_filtered(struct hr_item *item)
{
    item->outcome = HR_OUT_FILTERED;
}

static void item_set_reason(struct hr_item *item, const char *fmt, va_list ap)
    HR_PRINTF(2, 0);

static void item_set_reason(struct hr_item *item, const char *fmt, va_list ap)
{
    char buf[HR_ITEM_REASON_MAX];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t len = n < 0                     ? 0
                 : (size_t)n < sizeof(buf) ? (size_t)n
                                           : sizeof(buf) - 1;

    free(item->reason);
    item->reason = malloc(len + 1);
    HR_ASSERT(item->reason);
    memcpy(item->reason, buf, len);
    item->reason[len] = '\0';
}

void hr_item_forget(struct hr_item *item)
{
    free(item->destination);
    free(item->reason);
    item->destination = item->reason = NULL;
}

void hr_item_dead(struct hr_item *item,
                  enum hr_err_class cls,
                  const char *fmt,
                  ...)
{
    va_list ap;

    item->outcome = HR_OUT_DEAD;
    item->err_class = cls;
    va_start(ap, fmt);
    item_set_reason(item, fmt, ap);
    va_end(ap);
}

void hr_item_retry(struct hr_item *item,
                   enum hr_err_class cls,
                   const char *destination,
                   int64_t retry_after_ms,
                   const char *fmt,
                   ...)
{
    va_list ap;

    item->outcome = HR_OUT_RETRY;
    item->err_class = cls;
    item->retry_after_ms = retry_after_ms;
    hr_item_set_destination(item, destination);
    va_start(ap, fmt);
    item_set_reason(item, fmt, ap);
    va_end(ap);
}

void hr_item_held_back(struct hr_item *item,
                       int state,
                       const char *destination,
                       int64_t wait_ms)
{
    switch (state) {
    case HR_CIRCUIT_AUTH_BROKEN:
        hr_item_dead(item, HR_ERR_AUTH, "%s (auth broken)",
                     HR_CIRCUIT_OPEN_REASON);
        break;
    case HR_CIRCUIT_THROTTLED:
        hr_item_retry(item, HR_ERR_THROTTLED, destination, wait_ms, "%s",
                      HR_CIRCUIT_THROTTLED_REASON);
        break;
    default:
        hr_item_retry(item, HR_ERR_TRANSIENT, destination, -1, "%s",
                      HR_CIRCUIT_OPEN_REASON);
        break;
    }
}

void hr_item_set_destination(struct hr_item *item, const char *destination)
{
    free(item->destination);
    item->destination = NULL;
    if (destination && *destination) {
        size_t len = strnlen(destination, HR_ITEM_DEST_MAX - 1);

        item->destination = malloc(len + 1);
        HR_ASSERT(item->destination);
        memcpy(item->destination, destination, len);
        item->destination[len] = '\0';
    }
}

bool hr_destination_listed(const char *list, const char *destination)
{
    size_t len = strlen(destination);

    for (const char *p = list; (p = strstr(p, destination)); p += len) {
        if ((p == list || p[-1] == ',') && (p[len] == ',' || !p[len]))
            return true;
    }
    return false;
}

bool hr_item_add_destination(struct hr_item *item, const char *destination)
{
    size_t used = item->destination ? strlen(item->destination) : 0;
    size_t len = strlen(destination);
    char *d;

    if (used && hr_destination_listed(item->destination, destination))
        return true;
    if (!used) {
        hr_item_set_destination(item, destination);
        return true;
    }
    if (used + 1 + len >= HR_ITEM_DEST_MAX)
        return false;
    d = realloc(item->destination, used + 1 + len + 1);
    HR_ASSERT(d);
    d[used] = ',';
    memcpy(d + used + 1, destination, len + 1);
    item->destination = d;
    return true;
}

const char *hr_item_destination(const struct hr_item *item)
{
    return item->destination ? item->destination : "";
}

const char *hr_item_reason(const struct hr_item *item)
{
    return item->reason ? item->reason : "";
}
