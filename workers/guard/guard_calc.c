/* herald-guard's arithmetic and header encoding: no I/O, unit-tested. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"

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

char *guard_hdrs_encode(const rd_kafka_headers_t *hdrs, size_t *len)
{
    const char *name;
    const void *val;
    size_t vlen, total = 0, off = 0;
    char *blob;

    for (size_t i = 0;
         hdrs && !rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen); i++)
        total += 8 + strlen(name) + (val ? vlen : 0);
    blob = malloc(total ? total : 1);
    if (!blob)
        return NULL;
    for (size_t i = 0;
         hdrs && !rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen); i++) {
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
