/*
 * RFC 5322 / MIME message building for email_mime.h: header values are
 * checked first (nothing is written for a message that would carry an
 * injected header), then each header is composed on one line and folded
 * at white space, then the base64 bodies follow.
 */
#include "email_mime.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hr_base64.h"
#include "hr_buf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define LINE_SOFT     78  /* RFC 5322 §2.1.1 SHOULD, without CRLF */
#define LINE_HARD     998 /* ... and MUST */
#define WORD_MAX      75  /* RFC 2047 §2: an encoded-word's length */
#define WORD_OVERHEAD 12  /* "=?UTF-8?B?" "?=" */
#define BODY_LINE     76  /* RFC 2045 §6.8: base64 line length */
#define BOUNDARY_HEX  32

struct mime_build {
    struct hr_buf *out;
    size_t max;
    struct hr_buf line; /* the header being composed, unfolded */
    bool full;          /* @max reached */
    bool nomem;
};

/* ---- checks ------------------------------------------------------------ */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Addresses and Message-IDs: printable ASCII without white space or the
 * characters that would end or restructure an addr-spec in a header.
 */
static bool addr_check(const char *addr, size_t local_max)
{
    const char *at = NULL, *domain;
    size_t len;

    if (!addr)
        return false;
    len = strnlen(addr, EMAIL_ADDRESS_MAX + 1);
    if (len > EMAIL_ADDRESS_MAX)
        return false;
    for (const char *p = addr; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c <= ' ' || c >= 0x7f || strchr("<>,;:\"\\()[]", c))
            return false;
        if (c == '@') {
            if (at)
                return false;
            at = p;
        }
    }
    if (!at || at == addr || (size_t)(at - addr) > local_max)
        return false;
    domain = at + 1;
    len = strlen(domain);
    return len && domain[0] != '.' && domain[len - 1] != '.' &&
           !strstr(domain, "..");
}

bool email_address_ok(const char *addr)
{
    return addr_check(addr, 64); /* RFC 5321 §4.5.3.1.1 */
}

const char *email_address_domain(const char *addr)
{
    return email_address_ok(addr) ? strchr(addr, '@') + 1 : NULL;
}

/* Well-formed UTF-8: no stray continuation bytes, overlong forms,
 * surrogates or code points beyond U+10FFFF. */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        unsigned long cp, min;
        size_t n;

        if (*p < 0x80) {
            p++;
            continue;
        }
        if ((*p & 0xe0) == 0xc0) {
            n = 1, cp = *p & 0x1f, min = 0x80;
        } else if ((*p & 0xf0) == 0xe0) {
            n = 2, cp = *p & 0x0f, min = 0x800;
        } else if ((*p & 0xf8) == 0xf0) {
            n = 3, cp = *p & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[k] & 0xc0) != 0x80) /* also stops at the NUL */
                return false;
            cp = cp << 6 | (p[k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* An https URL that fits between angle brackets: printable ASCII, no
 * white space, no '<', '>' or '"'. */
static bool url_ok(const char *url)
{
    if (strncasecmp(url, "https://", 8) || !url[8] || url[8] == '/')
        return false;
    for (const char *p = url; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"')
            return false;
    }
    return true;
}

/* Header names this module writes, and recipient or sender fields that
 * must not come in through the extra headers. */
static bool reserved_name(const char *name, size_t len)
{
    static const char *const names[] = {
        "Date",
        "From",
        "To",
        "Cc",
        "Bcc",
        "Sender",
        "Subject",
        "Message-ID",
        "MIME-Version",
        "Auto-Submitted",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    };

    if (len >= 8 && !strncasecmp(name, "Content-", 8))
        return true;
    for (size_t i = 0; i < HR_ARRAY_SIZE(names); i++)
        if (strlen(names[i]) == len && !strncasecmp(name, names[i], len))
            return true;
    return false;
}

/* The length of @hdr's name ("Name: value"), or 0 when malformed. */
static size_t header_name_len(const char *hdr)
{
    size_t n = 0;

    while (hdr[n] > ' ' && hdr[n] < 0x7f && hdr[n] != ':')
        n++;
    return hdr[n] == ':' ? n : 0;
}

static int check_extra(const char *hdr, char *errstr, size_t errstr_size)
{
    size_t n = header_name_len(hdr);

    if (!n) {
        snprintf(errstr, errstr_size, "invalid extra header '%.40s'", hdr);
        return -1;
    }
    for (const char *p = hdr + n + 1; *p; p++) {
        if ((*p < ' ' && *p != '\t') || *p >= 0x7f) {
            snprintf(errstr, errstr_size, "invalid extra header '%.*s'", (int)n,
                     hdr);
            return -1;
        }
    }
    if (reserved_name(hdr, n)) {
        snprintf(errstr, errstr_size, "extra header '%.*s' is not allowed",
                 (int)n, hdr);
        return -1;
    }
    return 0;
}

static bool has_crlf(const char *s)
{
    return s && strpbrk(s, "\r\n");
}

/* Everything that can be refused, before anything is written. */
static int
check_message(const struct email_message *m, char *errstr, size_t errstr_size)
{
    const struct {
        const char *name;
        const char *value;
    } fields[] = {
        {"from", m->from},
        {"from_name", m->from_name},
        {"to", m->to},
        {"to_name", m->to_name},
        {"subject", m->subject},
        {"message_id", m->message_id},
        {"unsubscribe_url", m->unsubscribe_url},
    };

    for (size_t i = 0; i < HR_ARRAY_SIZE(fields); i++) {
        if (has_crlf(fields[i].value)) {
            snprintf(errstr, errstr_size, "header injection in %s",
                     fields[i].name);
            return -1;
        }
    }
    for (const char *const *h = m->extra_headers; h && *h; h++) {
        if (has_crlf(*h)) {
            snprintf(errstr, errstr_size,
                     "header injection in extra header '%.*s'",
                     (int)strcspn(*h, ":\r\n"), *h);
            return -1;
        }
    }
    if (!email_address_ok(m->from)) {
        snprintf(errstr, errstr_size, "invalid from address");
        return -1;
    }
    if (!email_address_ok(m->to)) {
        snprintf(errstr, errstr_size, "invalid to address");
        return -1;
    }
    /* id-left is not a mailbox: no local-part limit beyond the total. */
    if (!addr_check(m->message_id, EMAIL_ADDRESS_MAX)) {
        snprintf(errstr, errstr_size, "invalid message_id");
        return -1;
    }
    if (!m->subject) {
        snprintf(errstr, errstr_size, "missing subject");
        return -1;
    }
    for (size_t i = 0; i < HR_ARRAY_SIZE(fields); i++) {
        if (fields[i].value && !utf8_ok(fields[i].value)) {
            snprintf(errstr, errstr_size, "%s is not valid UTF-8",
                     fields[i].name);
            return -1;
        }
    }
    if (!m->text) {
        snprintf(errstr, errstr_size, "missing text body");
        return -1;
    }
    if (m->unsubscribe_url && !url_ok(m->unsubscribe_url)) {
        snprintf(errstr, errstr_size, "invalid unsubscribe url");
        return -1;
    }
    for (const char *const *h = m->extra_headers; h && *h; h++)
        if (check_extra(*h, errstr, errstr_size))
            return -1;
    return 0;
}

/* ---- output ------------------------------------------------------------- */

static void
note_failure(struct mime_build *b, const struct hr_buf *buf, size_t n)
{
    if (buf->len + n > b->max)
        b->full = true;
    else
        b->nomem = true;
}

static void put(struct mime_build *b, const void *s, size_t n)
{
    if (b->full || b->nomem)
        return;
    if (hr_buf_append(b->out, s, n, b->max))
        note_failure(b, b->out, n);
}

static void put_str(struct mime_build *b, const char *s)
{
    put(b, s, strlen(s));
}

static void line_put(struct mime_build *b, const void *s, size_t n)
{
    if (b->full || b->nomem)
        return;
    if (hr_buf_append(&b->line, s, n, b->max))
        note_failure(b, &b->line, n);
}

static void line_str(struct mime_build *b, const char *s)
{
    line_put(b, s, strlen(s));
}

/* A place to fold @s at: a blank after a non-blank, past @min_break and
 * before the last non-blank at @last - 1. */
static bool can_break(const char *s, size_t p, size_t min_break, size_t last)
{
    return p >= min_break && p < last && is_blank(s[p]) && !is_blank(s[p - 1]);
}

/*
 * Write the header in b->line folded (RFC 5322 §3.2.2: CRLF inserted
 * before a blank) so that lines stay within LINE_SOFT where blanks allow,
 * breaking no earlier than @min_break (after "Name: "). With @dry, only
 * measure. Returns the longest line.
 */
static size_t fold(struct mime_build *b, size_t min_break, bool dry)
{
    const char *s = b->line.p ? b->line.p : "";
    size_t len = b->line.len, start = 0, longest = 0, last = len;

    while (last > 0 && is_blank(s[last - 1]))
        last--;
    while (len - start > LINE_SOFT) {
        size_t brk = 0;

        for (size_t p = start + LINE_SOFT; p > start && !brk; p--)
            if (can_break(s, p, min_break, last))
                brk = p;
        /* A word too long for a line: break after it. */
        for (size_t p = start + LINE_SOFT + 1; p < last && !brk; p++)
            if (can_break(s, p, min_break, last))
                brk = p;
        if (!brk)
            break;
        if (!dry) {
            put(b, s + start, brk - start);
            put(b, "\r\n", 2);
        }
        if (brk - start > longest)
            longest = brk - start;
        start = brk;
    }
    if (!dry) {
        put(b, s + start, len - start);
        put(b, "\r\n", 2);
    }
    return len - start > longest ? len - start : longest;
}

static int emit_header(struct mime_build *b,
                       size_t min_break,
                       char *errstr,
                       size_t errstr_size)
{
    if (fold(b, min_break, false) > LINE_HARD) {
        snprintf(errstr, errstr_size, "header '%.*s' has a line over %d bytes",
                 (int)header_name_len(b->line.p), b->line.p, LINE_HARD);
        return -1;
    }
    hr_buf_clear(&b->line);
    return 0;
}

/*
 * @len bytes of UTF-8 @s as RFC 2047 B encoded-words separated by spaces
 * (where fold() breaks): each at most WORD_MAX characters and fitting a
 * folded line, the first one after the @col characters already on the
 * line; a word ends only where a character starts.
 */
static void
line_encoded_words(struct mime_build *b, const char *s, size_t len, size_t col)
{
    size_t i = 0;

    do {
        size_t room = i ? LINE_SOFT - 1 : LINE_SOFT - col, n;
        char *b64;

        if (room > WORD_MAX)
            room = WORD_MAX;
        n = (room - WORD_OVERHEAD) / 4 * 3;
        if (n > len - i)
            n = len - i;
        while (i + n < len && n > 4 && ((unsigned char)s[i + n] & 0xc0) == 0x80)
            n--;
        b64 = hr_base64_encode(s + i, n, NULL);
        line_str(b, i ? " =?UTF-8?B?" : "=?UTF-8?B?");
        line_str(b, b64);
        line_str(b, "?=");
        free(b64);
        i += n;
    } while (i < len);
}

/* RFC 5322 atext, and space: a phrase that needs no quotes. */
static bool is_atom_phrase(const char *s)
{
    size_t len = strlen(s);

    if (is_blank(s[0]) || is_blank(s[len - 1]) || strstr(s, "  "))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == ' ' ||
              strchr("!#$%&'*+-/=?^_`{|}~", c)))
            return false;
    }
    return true;
}

/* Printable ASCII and no "=?" that a reader could take for an
 * encoded-word: such text may go into a header as it is. */
static bool is_plain_text(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((*p < ' ' && *p != '\t') || *p >= 0x7f)
            return false;
    return !strstr(s, "=?");
}

/* "Name: display <addr>" or "Name: addr", @col characters in. */
static void line_mailbox(struct mime_build *b,
                         const char *display,
                         const char *addr,
                         size_t col)
{
    if (!display || !*display) {
        line_str(b, addr);
        return;
    }
    if (!is_plain_text(display)) {
        line_encoded_words(b, display, strlen(display), col);
    } else if (is_atom_phrase(display)) {
        line_str(b, display);
    } else {
        /* A quoted-string: specials, dots and blanks kept literally. */
        line_str(b, "\"");
        for (const char *p = display; *p; p++) {
            if (*p == '"' || *p == '\\')
                line_str(b, "\\");
            line_put(b, p, 1);
        }
        line_str(b, "\"");
    }
    line_str(b, " <");
    line_str(b, addr);
    line_str(b, ">");
}

/* Subject: as is and folded when every line then fits, else (non-ASCII,
 * "=?", an unbreakable run) as encoded-words. */
static void line_subject(struct mime_build *b, const char *subject)
{
    static const char name[] = "Subject: ";
    const size_t col = sizeof(name) - 1;

    line_str(b, name);
    if (is_plain_text(subject)) {
        line_str(b, subject);
        if (fold(b, col, true) <= LINE_SOFT)
            return;
        b->line.len = col;
        b->line.p[col] = '\0';
    }
    line_encoded_words(b, subject, strlen(subject), col);
}

/*
 * A body: line ends made CRLF (LF and lone CR alike), base64 in lines of
 * BODY_LINE. @scratch holds the normalized text.
 */
static void
put_body(struct mime_build *b, struct hr_buf *scratch, const char *s)
{
    size_t run = 0, i, n;
    char *b64;

    hr_buf_clear(scratch);
    for (i = 0; s[i] && !b->full && !b->nomem; i++) {
        if (s[i] != '\n' && s[i] != '\r')
            continue;
        if (hr_buf_append(scratch, s + run, i - run, b->max) ||
            hr_buf_append(scratch, "\r\n", 2, b->max))
            note_failure(b, scratch, i - run + 2);
        if (s[i] == '\r' && s[i + 1] == '\n')
            i++;
        run = i + 1;
    }
    if (hr_buf_append(scratch, s + run, i - run, b->max))
        note_failure(b, scratch, i - run);
    if (b->full || b->nomem)
        return;
    b64 = hr_base64_encode(scratch->p ? scratch->p : "", scratch->len, &n);
    for (i = 0; i < n; i += BODY_LINE) {
        put(b, b64 + i, n - i < BODY_LINE ? n - i : BODY_LINE);
        put(b, "\r\n", 2);
    }
    free(b64);
}

static void put_part_headers(struct mime_build *b, const char *type)
{
    put_str(b, "Content-Type: ");
    put_str(b, type);
    put_str(b, "; charset=UTF-8\r\n"
               "Content-Transfer-Encoding: base64\r\n"
               "\r\n");
}

/* "=_herald_" and 32 hex digits of SHA-256(@message_id): "=_" never
 * occurs in base64, and the same message gets the same boundary. */
static int make_boundary(const char *message_id, char *buf, size_t size)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    size_t n;

    if (!EVP_Digest(message_id, strlen(message_id), md, &md_len, EVP_sha256(),
                    NULL) ||
        md_len < BOUNDARY_HEX / 2)
        return -1;
    n = (size_t)snprintf(buf, size, "=_herald_");
    for (size_t i = 0; i < BOUNDARY_HEX / 2 && n + 2 < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%02x", md[i]);
    return 0;
}

char *email_rfc5322_date(int64_t ms, char *buf, size_t size)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    /* Floor division: -1 ms is 23:59:59 on the last day of 1969. */
    time_t s = (time_t)(ms / 1000 - (ms % 1000 < 0));
    struct tm tm;

    if (!gmtime_r(&s, &tm)) {
        s = 0; /* beyond struct tm's years: the epoch, not garbage */
        gmtime_r(&s, &tm);
    }
    snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

int email_mime_build(const struct email_message *m,
                     struct hr_buf *out,
                     size_t max,
                     char *errstr,
                     size_t errstr_size)
{
    struct mime_build b = {.out = out, .max = max};
    struct hr_buf scratch = {0};
    char date[EMAIL_DATE_SIZE], boundary[64];
    int rc = -1;

    hr_buf_clear(out);
    if (check_message(m, errstr, errstr_size))
        return -1;
    if (m->html && make_boundary(m->message_id, boundary, sizeof(boundary))) {
        snprintf(errstr, errstr_size, "cannot hash message_id");
        return -1;
    }

    line_str(&b, "Date: ");
    line_str(&b, email_rfc5322_date(m->date_ms, date, sizeof(date)));
    if (emit_header(&b, 6, errstr, errstr_size))
        goto out_release;
    line_str(&b, "From: ");
    line_mailbox(&b, m->from_name, m->from, 6);
    if (emit_header(&b, 6, errstr, errstr_size))
        goto out_release;
    line_str(&b, "To: ");
    line_mailbox(&b, m->to_name, m->to, 4);
    if (emit_header(&b, 4, errstr, errstr_size))
        goto out_release;
    line_subject(&b, m->subject);
    if (emit_header(&b, 9, errstr, errstr_size))
        goto out_release;
    line_str(&b, "Message-ID: <");
    line_str(&b, m->message_id);
    line_str(&b, ">");
    if (emit_header(&b, 12, errstr, errstr_size))
        goto out_release;
    put_str(&b, "MIME-Version: 1.0\r\n"
                "Auto-Submitted: auto-generated\r\n");
    if (m->unsubscribe_url) {
        /* RFC 8058 §3.1: both, the URL https and in angle brackets. */
        line_str(&b, "List-Unsubscribe: <");
        line_str(&b, m->unsubscribe_url);
        line_str(&b, ">");
        if (emit_header(&b, 18, errstr, errstr_size))
            goto out_release;
        put_str(&b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    }
    for (const char *const *h = m->extra_headers; h && *h; h++) {
        line_str(&b, *h);
        if (emit_header(&b, header_name_len(*h) + 2, errstr, errstr_size))
            goto out_release;
    }

    if (!m->html) {
        put_part_headers(&b, "text/plain");
        put_body(&b, &scratch, m->text);
    } else {
        line_str(&b, "Content-Type: multipart/alternative; boundary=\"");
        line_str(&b, boundary);
        line_str(&b, "\"");
        if (emit_header(&b, 14, errstr, errstr_size))
            goto out_release;
        /* RFC 2046 §5.1.4: in increasing faithfulness, the preferred
         * (HTML) last. */
        put_str(&b, "\r\n--");
        put_str(&b, boundary);
        put_str(&b, "\r\n");
        put_part_headers(&b, "text/plain");
        put_body(&b, &scratch, m->text);
        put_str(&b, "--");
        put_str(&b, boundary);
        put_str(&b, "\r\n");
        put_part_headers(&b, "text/html");
        put_body(&b, &scratch, m->html);
        put_str(&b, "--");
        put_str(&b, boundary);
        put_str(&b, "--\r\n");
    }

    if (b.full)
        snprintf(errstr, errstr_size, "message exceeds %zu bytes", max);
    else if (b.nomem)
        snprintf(errstr, errstr_size, "out of memory");
    else
        rc = 0;
out_release:
    hr_buf_release(&b.line, 0);
    hr_buf_release(&scratch, 0);
    return rc;
}
