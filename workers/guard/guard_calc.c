/* herald-guard's arithmetic and header encoding: no I/O, unit-tested. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "hr_msg.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define NULL_VALUE_LEN 0xffffffffu

enum guard_verdict guard_decide(const struct guard_settings *s,
                                int64_t attempt,
                                int64_t first_failure_ms,
                                int64_t now_ms)
{
    if (attempt >= s->max_attempts)
        return GUARD_DLQ_MAX_ATTEMPTS;
    if (now_ms - first_failure_ms >= s->max_age_ms)
        return GUARD_DLQ_MAX_AGE;
    return GUARD_SCHEDULE;
}

const char *guard_verdict_reason(enum guard_verdict v)
{
    switch (v) {
    case GUARD_DLQ_MAX_ATTEMPTS:
        return "max_attempts";
    case GUARD_DLQ_MAX_AGE:
        return "max_age";
    case GUARD_SCHEDULE:
        break;
    }
    return NULL;
}

int64_t guard_due_ms(const struct guard_settings *s,
                     int64_t attempt,
                     int64_t retry_after_ms,
                     int64_t now_ms,
                     uint64_t rnd)
{
    unsigned exp =
        attempt <= 1 ? 0 : (attempt > 64 ? 63u : (unsigned)attempt - 1);
    int64_t delay =
        hr_retry_backoff_ms(exp, s->base_delay_ms, s->max_delay_ms, rnd);

    /* Retry-After is a lower bound: never earlier than the server asked. */
    if (retry_after_ms > delay)
        delay = retry_after_ms;
    return now_ms + delay;
}

int guard_item_id(char *buf,
                  size_t size,
                  const char *topic,
                  size_t topic_len,
                  int64_t partition,
                  int64_t offset,
                  int64_t attempt)
{
    int n = snprintf(buf, size, "%.*s/%" PRId64 "/%" PRId64 "/%" PRId64,
                     (int)topic_len, topic, partition, offset, attempt);

    if (n < 0 || (size_t)n >= size)
        return -1;
    return n;
}

int guard_parse_i64(const char *val, size_t len, int64_t *out)
{
    char buf[32];
    char *end;
    long long v;

    if (!val || !len || len >= sizeof(buf))
        return -1;
    memcpy(buf, val, len);
    buf[len] = '\0';
    v = strtoll(buf, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static void put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static uint32_t get_u32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;

    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
           (uint32_t)u[3];
}

char *guard_hdrs_encode(const struct hr_msg *msg, size_t *len)
{
    const char *name;
    const void *val;
    size_t vlen, total = 0, off = 0;
    char *blob;

    for (size_t i = 0; !hr_msg_header_at(msg, i, &name, &val, &vlen); i++)
        total += 8 + strlen(name) + (val ? vlen : 0);
    blob = malloc(total ? total : 1);
    if (!blob)
        return NULL;
    for (size_t i = 0; !hr_msg_header_at(msg, i, &name, &val, &vlen); i++) {
        size_t nlen = strlen(name);

        put_u32(blob + off, (uint32_t)nlen);
        memcpy(blob + off + 4, name, nlen);
        off += 4 + nlen;
        put_u32(blob + off, val ? (uint32_t)vlen : NULL_VALUE_LEN);
        off += 4;
        if (val && vlen) {
            memcpy(blob + off, val, vlen);
            off += vlen;
        }
    }
    *len = off;
    return blob;
}

rd_kafka_headers_t *guard_hdrs_decode(const char *blob, size_t len)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    size_t off = 0;

    while (off < len) {
        uint32_t nlen, vlen;
        const char *name;

        if (len - off < 4)
            goto out_bad;
        nlen = get_u32(blob + off);
        off += 4;
        if (len - off < (size_t)nlen + 4)
            goto out_bad;
        name = blob + off;
        off += nlen;
        vlen = get_u32(blob + off);
        off += 4;
        if (vlen == NULL_VALUE_LEN) {
            rd_kafka_header_add(hdrs, name, (ssize_t)nlen, NULL, 0);
            continue;
        }
        if (len - off < vlen)
            goto out_bad;
        rd_kafka_header_add(hdrs, name, (ssize_t)nlen, blob + off,
                            (ssize_t)vlen);
        off += vlen;
    }
    return hdrs;
out_bad:
    rd_kafka_headers_destroy(hdrs);
    return NULL;
}

/* Walk a blob: calls @fn for each header; stops early when it returns
 * non-zero. Returns -1 when the blob is malformed, else 0. */
static int
blob_walk(const char *blob,
          size_t len,
          int (*fn)(void *, const char *, size_t, const char *, size_t),
          void *arg)
{
    size_t off = 0;

    while (off < len) {
        uint32_t nlen, vlen;
        const char *name;

        if (len - off < 4)
            return -1;
        nlen = get_u32(blob + off);
        off += 4;
        if (len - off < (size_t)nlen + 4)
            return -1;
        name = blob + off;
        off += nlen;
        vlen = get_u32(blob + off);
        off += 4;
        if (vlen == NULL_VALUE_LEN) {
            if (fn && fn(arg, name, nlen, NULL, 0))
                return 0;
            continue;
        }
        if (len - off < vlen)
            return -1;
        if (fn && fn(arg, name, nlen, blob + off, vlen))
            return 0;
        off += vlen;
    }
    return 0;
}

bool guard_hdrs_blob_ok(const char *blob, size_t len)
{
    return blob_walk(blob, len, NULL, NULL) == 0;
}

struct blob_find {
    const char *name;
    size_t name_len;
    const char *val;
    size_t val_len;
    bool found;
};

static int
find_cb(void *arg, const char *name, size_t nlen, const char *v, size_t vlen)
{
    struct blob_find *f = arg;

    if (nlen == f->name_len && !memcmp(name, f->name, nlen)) {
        f->val = v;
        f->val_len = vlen;
        f->found = true;
    }
    return 0; /* the last one counts: go on */
}

int guard_hdrs_blob_get(const char *blob,
                        size_t len,
                        const char *name,
                        const char **val,
                        size_t *val_len)
{
    struct blob_find f = {.name = name, .name_len = strlen(name)};

    if (blob_walk(blob, len, find_cb, &f) || !f.found)
        return -1;
    *val = f.val;
    *val_len = f.val_len;
    return 0;
}

int64_t
guard_hdrs_blob_i64(const char *blob, size_t len, const char *name, int64_t def)
{
    const char *v;
    size_t vlen;
    int64_t out;

    if (guard_hdrs_blob_get(blob, len, name, &v, &vlen) ||
        guard_parse_i64(v, vlen, &out))
        return def;
    return out;
}

void guard_hdrs_set_i64(rd_kafka_headers_t *hdrs,
                        const char *name,
                        int64_t value)
{
    char num[32];

    snprintf(num, sizeof(num), "%" PRId64, value);
    rd_kafka_header_remove(hdrs, name);
    rd_kafka_header_add(hdrs, name, -1, num, -1);
}

int64_t guard_hdrs_get_i64(const rd_kafka_headers_t *hdrs,
                           const char *name,
                           int64_t def)
{
    const void *val;
    size_t len;
    int64_t v;

    if (!hdrs || rd_kafka_header_get_last(hdrs, name, &val, &len) ||
        guard_parse_i64(val, len, &v))
        return def;
    return v;
}

/* One length-prefixed field of an item. */
static size_t put_field(char *out, const char *p, size_t len, bool present)
{
    put_u32(out, present ? (uint32_t)len : NULL_VALUE_LEN);
    if (present && len)
        memcpy(out + 4, p, len);
    return 4 + (present ? len : 0);
}

static int get_field(
    const char *blob, size_t len, size_t *off, const char **p, size_t *plen)
{
    uint32_t n;

    if (len - *off < 4)
        return -1;
    n = get_u32(blob + *off);
    *off += 4;
    if (n == NULL_VALUE_LEN) {
        *p = NULL;
        *plen = 0;
        return 0;
    }
    if (len - *off < n)
        return -1;
    *p = blob + *off;
    *plen = n;
    *off += n;
    return 0;
}

size_t guard_item_size(const struct guard_item *it)
{
    return 5 * 4 + it->topic_len + (it->key ? it->key_len : 0) + it->value_len +
           it->hdrs_len + it->dest_len;
}

size_t guard_item_encode(char *out, const struct guard_item *it)
{
    size_t off = 0;

    off += put_field(out + off, it->topic, it->topic_len, true);
    off += put_field(out + off, it->key, it->key_len, it->key != NULL);
    off += put_field(out + off, it->value, it->value_len, true);
    off += put_field(out + off, it->hdrs, it->hdrs_len, true);
    off += put_field(out + off, it->dest, it->dest_len, true);
    return off;
}

int guard_item_decode(const char *blob, size_t len, struct guard_item *it)
{
    size_t off = 0;

    if (get_field(blob, len, &off, &it->topic, &it->topic_len) ||
        get_field(blob, len, &off, &it->key, &it->key_len) ||
        get_field(blob, len, &off, &it->value, &it->value_len) ||
        get_field(blob, len, &off, &it->hdrs, &it->hdrs_len) ||
        get_field(blob, len, &off, &it->dest, &it->dest_len) || off != len ||
        !it->topic || !it->topic_len || !it->value || !it->hdrs || !it->dest)
        return -1;
    return 0;
}
