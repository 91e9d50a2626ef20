#include "hr_msg.h"

#include <stddef.h>

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

const void *
hr_msg_header(const struct hr_msg *msg, const char *name, size_t *len)
{
    if (!msg || !msg->ops)
        return NULL;
    return msg->ops->header(msg, name, len);
}

int hr_msg_header_at(const struct hr_msg *msg,
                     size_t idx,
                     const char **name,
                     const void **value,
                     size_t *len)
{
    if (!msg || !msg->ops)
        return -1;
    return msg->ops->header_at(msg, idx, name, value, len);
}
