/* JSON lines on stderr.
 *
 * A line is built in a stack buffer and written with one write(2), so lines
 * from different threads never interleave and logging never allocates. A
 * value too long for the buffer is cut at a character boundary and ends with
 * "..."; a field that does not fit at all is dropped with the ones after it,
 * so every line stays one valid JSON object. jansson is not used here: it
 * allocates for every value. */
#include "hr_log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hr_banned.h"
#include "hr_time.h"

#define LOG_LINE_MAX 8192
/* Room always kept free for the end of the line: "}\n". */
#define LOG_TAIL 2

static struct {
    char worker[64];
    enum hr_log_level level;
    bool json;
} log_state = {"herald", HR_LOG_INFO, true};

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const level_upper[] = {"DEBUG", "INFO", "WARN", "ERROR"};

struct log_line {
    char *buf;
    size_t len;
    size_t cap; /* usable bytes: the buffer size less LOG_TAIL */
};

void hr_log_setup(const char *worker, enum hr_log_level level, bool json)
{
    snprintf(log_state.worker, sizeof(log_state.worker), "%s",
             worker ? worker : "herald");
    if (level < HR_LOG_DEBUG)
        level = HR_LOG_DEBUG;
    if (level > HR_LOG_ERROR)
        level = HR_LOG_ERROR;
    log_state.level = level;
    log_state.json = json;
}

int hr_log_parse_level(const char *s, enum hr_log_level *level)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *level = (enum hr_log_level)i;
            return 0;
        }
    }
    return -1;
}

bool hr_log_enabled(enum hr_log_level level)
{
    return level >= log_state.level;
}

/* Length of the valid UTF-8 sequence at @s (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or 0 if the byte at @s does not
 * start one. The NUL terminator is never a continuation byte, so this never
 * reads past the end of the string. */
static size_t utf8_seq_len(const unsigned char *s)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 ||
            (s[3] & 0xc0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

/* The JSON-escaped form of the character at @s into @out (at most 6 bytes).
 * Returns its length; *adv is the number of input bytes consumed. */
static size_t escape_unit(const unsigned char *s, char *out, size_t *adv)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = s[0];
    size_t n;

    *adv = 1;
    if (c == '"' || c == '\\') {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    if (c < 0x20 || c == 0x7f) {
        memcpy(out, "\\u00", 4);
        out[4] = hex[c >> 4];
        out[5] = hex[c & 0xf];
        return 6;
    }
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    n = utf8_seq_len(s);
    if (n == 0) {
        memcpy(out, "\\ufffd", 6);
        return 6;
    }
    memcpy(out, s, n);
    *adv = n;
    return n;
}

static bool put_raw(struct log_line *l, const char *s, size_t n)
{
    if (l->len + n > l->cap)
        return false;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

/*
 * Append @s escaped, inside quotes when @quoted. When it does not fit and
 * @truncate is set, as much as fits is written followed by "..."; returns
 * false (and appends nothing) when even that is impossible, or when it does
 * not fit and @truncate is not set.
 */
static bool
put_escaped(struct log_line *l, const char *s, bool quoted, bool truncate)
{
    const unsigned char *p;
    size_t q = quoted ? 1 : 0, need = 2 * q, adv, n;
    char unit[8];

    for (p = (const unsigned char *)s; *p && l->len + need <= l->cap; p += adv)
        need += escape_unit(p, unit, &adv);
    if (l->len + need <= l->cap) {
        if (quoted)
            l->buf[l->len++] = '"';
        for (p = (const unsigned char *)s; *p; p += adv) {
            n = escape_unit(p, unit, &adv);
            memcpy(l->buf + l->len, unit, n);
            l->len += n;
        }
        if (quoted)
            l->buf[l->len++] = '"';
        return true;
    }
    if (!truncate || l->len + 2 * q + 3 > l->cap)
        return false;
    if (quoted)
        l->buf[l->len++] = '"';
    for (p = (const unsigned char *)s; *p; p += adv) {
        n = escape_unit(p, unit, &adv);
        if (l->len + n + 3 + q > l->cap)
            break;
        memcpy(l->buf + l->len, unit, n);
        l->len += n;
    }
    memcpy(l->buf + l->len, "...", 3);
    l->len += 3;
    if (quoted)
        l->buf[l->len++] = '"';
    return true;
}

/* Text format: a value is quoted only when it would be ambiguous bare. */
static bool text_needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
            return true;
    }
    return false;
}

/* Shortest of %.15g / %.17g that reads back as @d; JSON has no NaN or
 * infinity, so those are written as null. */
static void format_double(double d, char *buf, size_t size)
{
    if (!isfinite(d)) {
        snprintf(buf, size, "null");
        return;
    }
    snprintf(buf, size, "%.15g", d);
    if (strtod(buf, NULL) != d)
        snprintf(buf, size, "%.17g", d);
}

static bool
put_value(struct log_line *l, const struct hr_log_field *f, bool json)
{
    char num[40];

    switch (f->type) {
    case HR_LOG_T_STR:
        if (!f->v.s)
            return put_raw(l, "null", 4);
        if (json)
            return put_escaped(l, f->v.s, true, true);
        return put_escaped(l, f->v.s, text_needs_quotes(f->v.s), true);
    case HR_LOG_T_I64:
        snprintf(num, sizeof(num), "%" PRId64, f->v.i);
        break;
    case HR_LOG_T_DBL:
        format_double(f->v.d, num, sizeof(num));
        break;
    case HR_LOG_T_BOOL:
        snprintf(num, sizeof(num), "%s", f->v.b ? "true" : "false");
        break;
    default:
        snprintf(num, sizeof(num), "null");
        break;
    }
    return put_raw(l, num, strlen(num));
}

static bool
put_field(struct log_line *l, const struct hr_log_field *f, bool json)
{
    const char *key = f->key ? f->key : "";

    if (json)
        return put_raw(l, ",", 1) && put_escaped(l, key, true, false) &&
               put_raw(l, ":", 1) && put_value(l, f, json);
    return put_raw(l, " ", 1) && put_escaped(l, key, false, false) &&
           put_raw(l, "=", 1) && put_value(l, f, json);
}

/* Write the whole line, retrying only what a signal or a short write
 * interrupted; errors are ignored (there is nowhere to report them). */
static void write_line(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void hr_log_write(enum hr_log_level level, const char *msg, ...)
{
    char buf[LOG_LINE_MAX];
    char ts[32];
    struct log_line l = {buf, 0, sizeof(buf) - LOG_TAIL};
    struct hr_log_field f;
    bool json = log_state.json, room = true;
    int saved_errno = errno;
    va_list ap;

    if (!hr_log_enabled(level))
        return;
    if (level < HR_LOG_DEBUG || level > HR_LOG_ERROR)
        level = HR_LOG_ERROR;
    if (!msg)
        msg = "";
    hr_time_format_rfc3339(hr_time_now_ms(), ts, sizeof(ts));

    if (json) {
        put_raw(&l, "{\"ts\":\"", 7);
        put_raw(&l, ts, strlen(ts));
        put_raw(&l, "\",\"level\":\"", 11);
        put_raw(&l, level_names[level], strlen(level_names[level]));
        put_raw(&l, "\",\"worker\":", 11);
        put_escaped(&l, log_state.worker, true, true);
        put_raw(&l, ",\"msg\":", 7);
        put_escaped(&l, msg, true, true);
    } else {
        put_raw(&l, ts, strlen(ts));
        put_raw(&l, " ", 1);
        put_raw(&l, level_upper[level], strlen(level_upper[level]));
        put_raw(&l, " ", 1);
        put_escaped(&l, msg, false, true);
    }

    va_start(ap, msg);
    for (;;) {
        size_t mark = l.len;

        f = va_arg(ap, struct hr_log_field);
        if (f.type == HR_LOG_T_END)
            break;
        if (room && !put_field(&l, &f, json)) {
            l.len = mark; /* drop the partial field and all that follow */
            room = false;
        }
    }
    va_end(ap);

    /* LOG_TAIL bytes are always free for this */
    if (json)
        buf[l.len++] = '}';
    buf[l.len++] = '\n';
    write_line(buf, l.len);
    errno = saved_errno;
}
