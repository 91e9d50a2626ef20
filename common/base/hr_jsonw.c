/* The fixed-shape JSON writer (see hr_jsonw.h). */
#include "hr_jsonw.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_compat.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static void reserve(struct hr_jsonw *jw, size_t more)
{
    jw->buf = hr_grow(jw->buf, &jw->cap, jw->len + more + 1, 1, 256);
}

static void put(struct hr_jsonw *jw, const char *p, size_t n)
{
    reserve(jw, n);
    memcpy(jw->buf + jw->len, p, n);
    jw->len += n;
}

static void put_string(struct hr_jsonw *jw, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    put(jw, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6];
        size_t n = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(jw, run, (size_t)(s - run));
        run = s + 1;
        esc[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        put(jw, esc, n);
    }
    put(jw, run, (size_t)(s - run));
    put(jw, "\"", 1);
}

static void put_key(struct hr_jsonw *jw, const char *key)
{
    HR_ASSERT(jw->depth > 0);
    if (jw->count[jw->depth - 1]++)
        put(jw, ",", 1);
    put(jw, "\"", 1);
    put(jw, key, strlen(key));
    put(jw, "\":", 2);
}

void hr_jsonw_reset(struct hr_jsonw *jw)
{
    jw->len = 0;
    jw->depth = 1;
    jw->count[0] = 0;
    put(jw, "{", 1);
}

void hr_jsonw_str(struct hr_jsonw *jw, const char *key, const char *s)
{
    put_key(jw, key);
    if (s)
        put_string(jw, s);
    else
        put(jw, "null", 4);
}

void hr_jsonw_int(struct hr_jsonw *jw, const char *key, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);

    put_key(jw, key);
    put(jw, num, (size_t)n);
}

void hr_jsonw_open(struct hr_jsonw *jw, const char *key)
{
    HR_ASSERT(jw->depth < HR_JSONW_DEPTH);
    put_key(jw, key);
    put(jw, "{", 1);
    jw->count[jw->depth++] = 0;
}

void hr_jsonw_close(struct hr_jsonw *jw)
{
    HR_ASSERT(jw->depth > 1);
    jw->depth--;
    put(jw, "}", 1);
}

size_t hr_jsonw_finish(struct hr_jsonw *jw)
{
    while (jw->depth > 0) {
        jw->depth--;
        put(jw, "}", 1);
    }
    jw->buf[jw->len] = '\0';
    return jw->len;
}

void hr_jsonw_release(struct hr_jsonw *jw)
{
    free(jw->buf);
    memset(jw, 0, sizeof(*jw));
}
