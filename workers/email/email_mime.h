/*
 * One RFC 5322 / MIME message, built once and sent as is both over SMTP
 * (libcurl's upload) and through Amazon SES v2 (Content.Raw.Data).
 *
 * Layout: Date, From, To, Subject, Message-ID, MIME-Version,
 * Auto-Submitted: auto-generated, List-Unsubscribe and
 * List-Unsubscribe-Post (RFC 8058 one-click, when there is a URL), the
 * extra headers, then the content. With HTML the content is
 * multipart/alternative with the text/plain part first and text/html last
 * (RFC 2046 §5.1.4, the last is preferred); without it, a single
 * text/plain part. Bodies are UTF-8, base64 in lines of 76, their line
 * ends made CRLF first. Non-ASCII display names and subjects are RFC 2047
 * encoded-words ("=?UTF-8?B?...?=", at most 75 characters each, never
 * splitting a character). Header lines are folded at white space to stay
 * within 78 characters where the value allows (never beyond 998).
 *
 * The output depends only on the input: the MIME boundary derives from the
 * Message-ID, so a re-send of a message is byte-identical.
 */
#ifndef EMAIL_MIME_H
#define EMAIL_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hr_compat.h"

struct hr_buf;

/* RFC 5321 §4.5.3.1.3 (a path is at most 256 octets with its brackets). */
#define EMAIL_ADDRESS_MAX 254
/* A buffer for email_rfc5322_date(). */
#define EMAIL_DATE_SIZE 40

/** A message to build; every string is borrowed for the call only. */
struct email_message {
    const char *from;       /* address "noreply@example.com" */
    const char *from_name;  /* display name (UTF-8) or NULL */
    const char *to;         /* address */
    const char *to_name;    /* display name (UTF-8) or NULL */
    const char *subject;    /* UTF-8 */
    const char *message_id; /* "id@domain", without angle brackets */
    int64_t date_ms;        /* Unix ms, for the Date header (UTC, "+0000") */
    const char *text;       /* UTF-8 plain text, required */
    const char *html;       /* UTF-8 HTML; NULL: a single text/plain part */
    const char *unsubscribe_url; /* https URL or NULL */
    /* "Name: value" lines (printable ASCII), NULL-terminated, or NULL
     * (e.g. "X-Herald-Window: ..."). Names this module writes (Date, From,
     * To, Subject, Message-ID, MIME-Version, Auto-Submitted,
     * List-Unsubscribe, List-Unsubscribe-Post, Content-*) and Cc, Bcc and
     * Sender are refused: SES takes recipients from the headers. */
    const char *const *extra_headers;
};

/**
 * Build the whole message @m into @out (cleared first) with CRLF line
 * ends, @out holding at most @max bytes. Nothing is written unless every
 * field passes. Returns 0, or -1 with @errstr:
 * - "header injection in subject": a CR or LF in a header value (from,
 *   from_name, to, to_name, subject, message_id, unsubscribe_url), or
 *   "header injection in extra header 'X-A'";
 * - "invalid to address", "invalid from address" (email_address_ok()),
 *   "invalid message_id" (the same rules, without the 64-byte limit on the
 *   left part);
 * - "missing subject", "subject is not valid UTF-8" (also from_name and
 *   to_name), "missing text body", "invalid unsubscribe url" (not https,
 *   or white space, control characters, '<', '>' or '"' in it);
 * - "invalid extra header 'X'" (no "Name:", or a value that is not
 *   printable ASCII), "extra header 'Bcc' is not allowed";
 * - "header 'X' has a line over 998 bytes" (a value too long to fold),
 *   "message exceeds N bytes", "out of memory": @out is then incomplete.
 * Thread-safe.
 */
HR_MUST_CHECK int email_mime_build(const struct email_message *m,
                                   struct hr_buf *out,
                                   size_t max,
                                   char *errstr,
                                   size_t errstr_size);

/**
 * Whether @addr (NULL: false) is a plausible single mailbox address
 * (addr-spec): one '@', a local part of 1 to 64 bytes and a non-empty
 * domain with no empty label, at most EMAIL_ADDRESS_MAX bytes, printable
 * ASCII only (no white space or control characters) and none of
 * < > , ; : " \ ( ) [ ]. An apostrophe is allowed (o'brien@example.com).
 */
bool email_address_ok(const char *addr);

/** The domain part of @addr (borrowed: a pointer into it), or NULL when
 *  email_address_ok() refuses @addr. */
const char *email_address_domain(const char *addr);

/**
 * The RFC 5322 date of @ms (Unix ms, shown in UTC) into @buf of @size
 * bytes (EMAIL_DATE_SIZE is enough; shorter truncates):
 * "Sun, 06 Dec 2026 13:00:00 +0000". Returns @buf.
 */
char *email_rfc5322_date(int64_t ms, char *buf, size_t size);

#endif
