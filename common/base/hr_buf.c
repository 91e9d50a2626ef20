#include "hr_buf.h"

#include <stdlib.h>
#include <string.h>

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

int hr_buf_append(struct hr_buf *buf, const void *data, size_t n, size_t max)
{
    if (buf->len + n > max)
        return -1;
    if (buf->len + n + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 1024;
        char *grown;

        while (cap < buf->len + n + 1)
            cap *= 2;
        grown = realloc(buf->p, cap);
        if (!grown)
            return -1;
        buf->p = grown;
        buf->cap = cap;
    }
    if (n)
        memcpy(buf->p + buf->len, data, n);
    buf->len += n;
    buf->p[buf->len] = '\0';
    return 0;
}

void hr_buf_clear(struct hr_buf *buf)
{
    buf->len = 0;
    if (buf->p)
        buf->p[0] = '\0';
}

void hr_buf_release(struct hr_buf *buf, int wipe)
{
    if (wipe && buf->p)
        memset(buf->p, 0, buf->cap);
    free(buf->p);
    buf->p = NULL;
    buf->len = buf->cap = 0;
}
