#include "hr_hdrs.h"

#include <stdlib.h>
#include <string.h>

#include "hr_msg.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

struct hdr {
    char *name;
    char *value; /* NUL-terminated copy, @len bytes before the NUL */
    size_t len;
};

struct hr_hdrs {
    struct hdr *v;
    size_t n, cap;
};

struct hr_hdrs *hr_hdrs_new(void)
{
    struct hr_hdrs *hdrs = calloc(1, sizeof(*hdrs));

    HR_ASSERT(hdrs);
    return hdrs;
}

struct hr_hdrs *hr_hdrs_from_msg(const struct hr_msg *msg)
{
    struct hr_hdrs *hdrs = hr_hdrs_new();
    const char *name;
    const void *value;
    size_t len;

    for (size_t i = 0; !hr_msg_header_at(msg, i, &name, &value, &len); i++)
        hr_hdrs_add(hdrs, name, value, len);
    return hdrs;
}

void hr_hdrs_free(struct hr_hdrs *hdrs)
{
    if (!hdrs)
        return;
    for (size_t i = 0; i < hdrs->n; i++) {
        free(hdrs->v[i].name);
        free(hdrs->v[i].value);
    }
    free(hdrs->v);
    free(hdrs);
}

void hr_hdrs_add(struct hr_hdrs *hdrs,
                 const char *name,
                 const void *value,
                 size_t len)
{
    struct hdr *h;

    hdrs->v = hr_grow(hdrs->v, &hdrs->cap, hdrs->n + 1, sizeof(*hdrs->v), 16);
    h = &hdrs->v[hdrs->n++];
    h->name = strdup(name);
    h->value = malloc(len + 1);
    HR_ASSERT(h->name && h->value);
    if (len)
        memcpy(h->value, value, len);
    h->value[len] = '\0';
    h->len = len;
}

void hr_hdrs_remove(struct hr_hdrs *hdrs, const char *name)
{
    size_t j = 0;

    for (size_t i = 0; i < hdrs->n; i++) {
        if (!strcmp(hdrs->v[i].name, name)) {
            free(hdrs->v[i].name);
            free(hdrs->v[i].value);
            continue;
        }
        hdrs->v[j++] = hdrs->v[i];
    }
    hdrs->n = j;
}

void hr_hdrs_set(struct hr_hdrs *hdrs, const char *name, const char *value)
{
    hr_hdrs_remove(hdrs, name);
    hr_hdrs_add(hdrs, name, value, strlen(value));
}

const char *hr_hdrs_str(const struct hr_hdrs *hdrs,
                        const char *name,
                        char *buf,
                        size_t size)
{
    for (size_t i = hdrs ? hdrs->n : 0; i-- > 0;) {
        const struct hdr *h = &hdrs->v[i];

        if (strcmp(h->name, name))
            continue;
        if (h->len >= size)
            return NULL;
        memcpy(buf, h->value, h->len + 1);
        return buf;
    }
    return NULL;
}

size_t hr_hdrs_count(const struct hr_hdrs *hdrs)
{
    return hdrs ? hdrs->n : 0;
}

int hr_hdrs_at(const struct hr_hdrs *hdrs,
               size_t idx,
               const char **name,
               const void **value,
               size_t *len)
{
    if (!hdrs || idx >= hdrs->n)
        return -1;
    *name = hdrs->v[idx].name;
    *value = hdrs->v[idx].value;
    *len = hdrs->v[idx].len;
    return 0;
}
