/*
 * Unit tests for email_mime: the header set and its order, CRLF line ends
 * throughout, text/plain before text/html, base64 bodies that decode to
 * the inputs (line ends made CRLF), line lengths, RFC 2047 subjects and
 * display names decoded back here, header injection refused everywhere,
 * List-Unsubscribe only with a URL, byte-identical rebuilds, address
 * checks and RFC 5322 dates.
 */
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "email_mime.h"
#include "hr_base64.h"
#include "hr_buf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define MSG_MAX (1 << 20)
#define MAX_HDR 32

#define FRENCH_SUBJECT "Réponse à votre commentaire — 💬"

#define TEXT_PART                                 \
    "Content-Type: text/plain; charset=UTF-8\r\n" \
    "Content-Transfer-Encoding: base64\r\n\r\n"
#define HTML_PART                                \
    "Content-Type: text/html; charset=UTF-8\r\n" \
    "Content-Transfer-Encoding: base64\r\n\r\n"

/* ---- parsing what was built -------------------------------------------- */

struct parsed {
    size_t n;
    char *name[MAX_HDR];
    char *value[MAX_HDR]; /* unfolded: CRLF removed, the blank kept */
    const char *body;     /* after the blank line, in the message */
};

/* Split the top-level header block of @msg (CRLF, folded). */
static void parse(const char *msg, struct parsed *p)
{
    const char *line = msg;

    memset(p, 0, sizeof(*p));
    for (;;) {
        const char *eol = strstr(line, "\r\n");
        size_t len;

        assert_non_null(eol);
        len = (size_t)(eol - line);
        if (!len) {
            p->body = eol + 2;
            return;
        }
        if (line[0] == ' ' || line[0] == '\t') {
            char *v;
            size_t vlen;

            assert_true(p->n > 0);
            v = p->value[p->n - 1];
            vlen = strlen(v);
            v = realloc(v, vlen + len + 1);
            assert_non_null(v);
            memcpy(v + vlen, line, len);
            v[vlen + len] = '\0';
            p->value[p->n - 1] = v;
        } else {
            const char *colon = memchr(line, ':', len);
            size_t nlen;

            assert_non_null(colon);
            assert_true(p->n < MAX_HDR);
            nlen = (size_t)(colon - line);
            p->name[p->n] = strndup(line, nlen);
            /* The value after ": " (or ":" when folded right away). */
            colon++;
            if (colon < eol && *colon == ' ')
                colon++;
            p->value[p->n] = strndup(colon, (size_t)(eol - colon));
            p->n++;
        }
        line = eol + 2;
    }
}

static void parsed_free(struct parsed *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->name[i]);
        free(p->value[i]);
    }
}

static const char *header(const struct parsed *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->name[i], name))
            return p->value[i];
    return NULL;
}

/* Well-formed UTF-8, checked independently of email_mime.c. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = s[i] < 0x80             ? 0
                   : (s[i] & 0xe0) == 0xc0 ? 1
                   : (s[i] & 0xf0) == 0xe0 ? 2
                   : (s[i] & 0xf8) == 0xf0 ? 3
                                           : 9;

        if (n == 9 || i + n >= len)
            return false;
        for (size_t k = 1; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}

/*
 * Decode a header value made of RFC 2047 B encoded-words separated by
 * blanks; each word must be at most 75 characters and hold whole UTF-8
 * characters. Returns the text (malloc'd) and the number of words.
 */
static char *decode_words(const char *value, size_t *words)
{
    struct hr_buf text = {0};
    const char *p = value;

    *words = 0;
    while (*p) {
        const char *end;
        size_t len, raw_len;
        char *raw;

        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        assert_memory_equal(p, "=?UTF-8?B?", 10);
        end = strstr(p + 10, "?=");
        assert_non_null(end);
        len = (size_t)(end + 2 - p);
        assert_true(len <= 75);
        raw = hr_base64_decode(p + 10, (size_t)(end - p - 10), &raw_len);
        assert_non_null(raw);
        assert_true(utf8_valid((const unsigned char *)raw, raw_len));
        assert_int_equal(hr_buf_append(&text, raw, raw_len, MSG_MAX), 0);
        free(raw);
        (*words)++;
        p = end + 2;
        assert_true(*p == '\0' || *p == ' ');
    }
    assert_int_equal(hr_buf_append(&text, "", 0, MSG_MAX), 0);
    return text.p;
}

/* Every line of @msg ends in CRLF, and there is no other CR or LF. */
static void assert_crlf_only(const char *msg, size_t len)
{
    assert_true(len >= 2);
    assert_memory_equal(msg + len - 2, "\r\n", 2);
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\r')
            assert_int_equal(msg[i + 1], '\n');
        if (msg[i] == '\n')
            assert_true(i > 0 && msg[i - 1] == '\r');
    }
}

/* The longest line of [s, end). */
static size_t longest_line(const char *s, const char *end)
{
    size_t longest = 0;

    while (s < end) {
        const char *eol = strstr(s, "\r\n");
        size_t len;

        assert_non_null(eol);
        len = (size_t)(eol - s);
        if (len > longest)
            longest = len;
        s = eol + 2;
    }
    return longest;
}

/* A part's body: base64 lines from @start up to the CRLF before the next
 * "--"; decoded (malloc'd). Also checks its lines are at most 76. */
static char *decode_body(const char *start, size_t *len)
{
    const char *end = strstr(start, "\r\n--");
    struct hr_buf b64 = {0};
    char *raw;

    end = end ? end + 2 : start + strlen(start);
    assert_true(longest_line(start, end) <= 76);
    for (const char *p = start; p < end; p++)
        if (*p != '\r' && *p != '\n')
            assert_int_equal(hr_buf_append(&b64, p, 1, MSG_MAX), 0);
    raw = hr_base64_decode(b64.p ? b64.p : "", b64.len, len);
    assert_non_null(raw);
    hr_buf_release(&b64, 0);
    return raw;
}

/* ---- building ----------------------------------------------------------- */

static const char *const extra[] = {
    "X-Herald-Window: 2026-12-06T13:00:00Z/PT1H",
    "X-Entity-Ref-ID: evt-42",
    NULL,
};

static struct email_message sample(void)
{
    struct email_message m = {
        .from = "noreply@example.com",
        .from_name = "Herald",
        .to = "ada@example.org",
        .to_name = "Lovelace, Ada",
        .subject = "You have 3 new replies",
        .message_id = "evt-42.u-7@mail.example.com",
        .date_ms = INT64_C(1796562000000),
        .text = "Hello Ada,\nyou have 3 new replies.\n",
        .html = "<p>Hello Ada,</p>\n<p>you have 3 new replies.</p>\n",
        .unsubscribe_url = "https://example.com/u?t=abc",
        .extra_headers = extra,
    };

    return m;
}

static void build_ok(const struct email_message *m, struct hr_buf *out)
{
    char errstr[256] = "";

    if (email_mime_build(m, out, MSG_MAX, errstr, sizeof(errstr)))
        fail_msg("build: %s", errstr);
    assert_crlf_only(out->p, out->len);
}

static void expect_refused(const struct email_message *m, const char *want)
{
    struct hr_buf out = {0};
    char errstr[256] = "";

    assert_int_equal(email_mime_build(m, &out, MSG_MAX, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, want);
    hr_buf_release(&out, 0);
}

/* ---- tests -------------------------------------------------------------- */

static void test_headers_in_order(void **state)
{
    static const char *const order[] = {
        "Date",
        "From",
        "To",
        "Subject",
        "Message-ID",
        "MIME-Version",
        "Auto-Submitted",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "X-Herald-Window",
        "X-Entity-Ref-ID",
        "Content-Type",
    };
    struct email_message m = sample();
    struct hr_buf out = {0};
    struct parsed p;

    (void)state;
    build_ok(&m, &out);
    parse(out.p, &p);
    assert_int_equal(p.n, sizeof(order) / sizeof(order[0]));
    for (size_t i = 0; i < p.n; i++)
        assert_string_equal(p.name[i], order[i]);
    assert_string_equal(header(&p, "Date"), "Sun, 06 Dec 2026 13:00:00 +0000");
    assert_string_equal(header(&p, "From"), "Herald <noreply@example.com>");
    assert_string_equal(header(&p, "To"),
                        "\"Lovelace, Ada\" <ada@example.org>");
    assert_string_equal(header(&p, "Subject"), "You have 3 new replies");
    assert_string_equal(header(&p, "Message-ID"),
                        "<evt-42.u-7@mail.example.com>");
    assert_string_equal(header(&p, "MIME-Version"), "1.0");
    assert_string_equal(header(&p, "Auto-Submitted"), "auto-generated");
    assert_string_equal(header(&p, "List-Unsubscribe"),
                        "<https://example.com/u?t=abc>");
    assert_string_equal(header(&p, "List-Unsubscribe-Post"),
                        "List-Unsubscribe=One-Click");
    assert_string_equal(header(&p, "X-Herald-Window"),
                        "2026-12-06T13:00:00Z/PT1H");
    assert_non_null(strstr(header(&p, "Content-Type"),
                           "multipart/alternative; boundary=\"=_herald_"));
    parsed_free(&p);
    hr_buf_release(&out, 0);
}

static void test_text_part_comes_first(void **state)
{
    struct email_message m = sample();
    struct hr_buf out = {0};
    struct parsed p;
    char delim[80], close[80];
    const char *b, *text, *html, *last;
    size_t blen;
    char *body;

    (void)state;
    build_ok(&m, &out);
    parse(out.p, &p);
    b = strstr(header(&p, "Content-Type"), "boundary=\"") + 10;
    blen = strcspn(b, "\"");
    assert_int_equal(blen, 9 + 32);
    snprintf(delim, sizeof(delim), "\r\n--%.*s\r\n", (int)blen, b);
    snprintf(close, sizeof(close), "\r\n--%.*s--\r\n", (int)blen, b);

    /* Delimiter, text part, delimiter, html part, close delimiter: the
     * end of the message. */
    text = strstr(out.p, delim);
    assert_non_null(text);
    text += strlen(delim);
    assert_memory_equal(text, TEXT_PART, strlen(TEXT_PART));
    html = strstr(text, delim);
    assert_non_null(html);
    html += strlen(delim);
    assert_memory_equal(html, HTML_PART, strlen(HTML_PART));
    assert_null(strstr(html, delim));
    last = strstr(html, close);
    assert_non_null(last);
    assert_int_equal(last + strlen(close), out.p + out.len);

    body = decode_body(text + strlen(TEXT_PART), &blen);
    assert_string_equal(body, "Hello Ada,\r\nyou have 3 new replies.\r\n");
    free(body);
    body = decode_body(html + strlen(HTML_PART), &blen);
    assert_string_equal(
        body, "<p>Hello Ada,</p>\r\n<p>you have 3 new replies.</p>\r\n");
    free(body);
    parsed_free(&p);
    hr_buf_release(&out, 0);
}

static void test_single_part_without_html(void **state)
{
    struct email_message m = sample();
    struct hr_buf out = {0};
    struct parsed p;
    char *body;
    size_t len;

    (void)state;
    m.html = NULL;
    m.text = "line one\nline two\r\nthree\rfour";
    build_ok(&m, &out);
    parse(out.p, &p);
    assert_string_equal(p.name[p.n - 2], "Content-Type");
    assert_string_equal(header(&p, "Content-Type"),
                        "text/plain; charset=UTF-8");
    assert_string_equal(p.name[p.n - 1], "Content-Transfer-Encoding");
    assert_string_equal(header(&p, "Content-Transfer-Encoding"), "base64");
    assert_null(strstr(out.p, "multipart"));
    assert_null(strstr(out.p, "=_herald_"));
    body = decode_body(p.body, &len);
    assert_string_equal(body, "line one\r\nline two\r\nthree\r\nfour");
    free(body);
    parsed_free(&p);
    hr_buf_release(&out, 0);
}

static void test_long_bodies_in_76_character_lines(void **state)
{
    struct email_message m = sample();
    struct hr_buf text = {0}, out = {0};
    struct parsed p;
    char *body;
    size_t len;

    (void)state;
    for (int i = 0; i < 500; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "line %d: déjà vu ✓\n", i);

        assert_int_equal(hr_buf_append(&text, line, (size_t)n, MSG_MAX), 0);
    }
    m.text = text.p;
    m.html = NULL;
    build_ok(&m, &out);
    parse(out.p, &p);
    body = decode_body(p.body, &len);
    assert_int_equal(len, text.len + 500);
    assert_non_null(strstr(body, "line 499: déjà vu ✓\r\n"));
    /* Full lines of exactly 76. */
    assert_int_equal(longest_line(p.body, out.p + out.len), 76);
    free(body);
    parsed_free(&p);
    hr_buf_release(&out, 0);
    hr_buf_release(&text, 0);
}

static void test_header_lines_fit_78(void **state)
{
    struct email_message m = sample();
    struct hr_buf out = {0};
    struct parsed p;
    const char *long_subject =
        "This is a rather long subject line that goes on and on, well past "
        "the seventy-eight characters a header line should stay within, "
        "so it must be folded at white space";

    (void)state;
    m.subject = long_subject;
    m.to_name = "Ada Augusta King, Countess of Lovelace, née Byron, the "
                "Enchantress of Numbers";
    build_ok(&m, &out);
    parse(out.p, &p);
    assert_true(longest_line(out.p, p.body) <= 78);
    /* Folding only adds CRLFs: unfolded, the subject is unchanged. */
    assert_string_equal(header(&p, "Subject"), long_subject);
    assert_non_null(strstr(out.p, "\r\n "));
    parsed_free(&p);
    hr_buf_release(&out, 0);
}

static void test_subject_encoded_words(void **state)
{
    struct email_message m = sample();
    struct hr_buf out = {0}, long_subject = {0};
    struct parsed p;
    size_t words;
    char *text;

    (void)state;
    m.subject = FRENCH_SUBJECT;
    build_ok(&m, &out);
    parse(out.p, &p);
    assert_true(longest_line(out.p, p.body) <= 78);
    text = decode_words(header(&p, "Subject"), &words);
    assert_string_equal(text, FRENCH_SUBJECT);
    assert_true(words >= 1);
    free(text);
    parsed_free(&p);

    /* Long enough for many words: each ≤ 75, whole characters only (the
     * 4-byte emoji and 2-byte letters land on word edges somewhere). */
    for (int i = 0; i < 12; i++)
        assert_int_equal(hr_buf_append(&long_subject, FRENCH_SUBJECT " ",
                                       strlen(FRENCH_SUBJECT " "), MSG_MAX),
                         0);
    m.subject = long_subject.p;
    build_ok(&m, &out);
    parse(out.p, &p);
    assert_true(longest_line(out.p, p.body) <= 78);
    text = decode_words(header(&p, "Subject"), &words);
    assert_string_equal(text, long_subject.p);
    assert_true(words > 5);
    free(text);
    parsed_free(&p);

    /* ASCII that cannot be folded, or that looks like an encoded-word,
     * is encoded too. */
    m.subject = "https://example.com/a/very/long/path/that/has/no/white/space/"
                "at/all/anywhere/in/it";
    build_ok(&m, &out);
    parse(out.p, &p);
    assert_true(longest_line(out.p, p.body) <= 78);
    text = decode_words(header(&p, "Subject"), &words);
    assert_string_equal(text, m.subject);
    free(text);
    parsed_free(&p);
    m.subject = "=?UTF-8?B?SGk=?=";
    build_ok(&m, &out);
    parse(out.p, &p);
    text = decode_words(header(&p, "Subject"), &words);
    assert_string_equal(text, m.subject);
    free(text);
    parsed_free(&p);

    hr_buf_release(&long_subject, 0);
    hr_buf_release(&out, 0);
}

static void test_display_names(void **state)
{
    struct email_message m = sample();
    struct hr_buf out = {0};
    struct parsed p;
    const char *to, *lt;
    size_t words;
    char *name;

    (void)state;
    m.from_name = NULL;
    m.to_name = "Zoë \"Z\" Ødegård 💬";
    build_ok(&m, &out);
    parse(out.p, &p);
    assert_string_equal(header(&p, "From"), "noreply@example.com");
    to = header(&p, "To");
    lt = strstr(to, " <ada@example.org>");
    assert_non_null(lt);
    assert_string_equal(lt, " <ada@example.org>");
    name = strndup(to, (size_t)(lt - to));
    {
        char *decoded = decode_words(name, &words);

        assert_string_equal(decoded, m.to_name);
        free(decoded);
    }
    free(name);
    parsed_free(&p);

    /* Specials need a quoted-string, with \ before " and \. */
    m.from_name = "Herald \"Bot\" \\ Team";
    m.to_name = "";
    build_ok(&m, &out);
    parse(out.p, &p);
    assert_string_equal(
        header(&p, "From"),
        "\"Herald \\\"Bot\\\" \\\\ Team\" <noreply@example.com>");
    assert_string_equal(header(&p, "To"), "ada@example.org");
    parsed_free(&p);

    /* A long non-ASCII name: several words, every line within 78. */
    m.to_name = "Ada Augusta King, Countess of Lovelace, née Byron, the "
                "Enchantress of Numbers";
    build_ok(&m, &out);
    parse(out.p, &p);
    assert_true(longest_line(out.p, p.body) <= 78);
    to = header(&p, "To");
    lt = strstr(to, " <ada@example.org>");
    name = strndup(to, (size_t)(lt - to));
    {
        char *decoded = decode_words(name, &words);

        assert_string_equal(decoded, m.to_name);
        assert_true(words > 1);
        free(decoded);
    }
    free(name);
    parsed_free(&p);
    hr_buf_release(&out, 0);
}

static void test_header_injection_is_refused(void **state)
{
    static const char *const bad_extra[] = {"X-A: b\r\nBcc: evil@example.net",
                                            NULL};
    static const char *const lf_extra[] = {"X-Ok: 1", "X-B: b\nBcc: e@x.y",
                                           NULL};
    struct email_message m;

    (void)state;
    m = sample();
    m.subject = "Hi\r\nBcc: evil@example.net";
    expect_refused(&m, "header injection in subject");
    m = sample();
    m.subject = "Hi\nthere";
    expect_refused(&m, "header injection in subject");
    m = sample();
    m.subject = "Hi\rthere";
    expect_refused(&m, "header injection in subject");
    m = sample();
    m.to = "ada@example.org\r\nBcc: evil@example.net";
    expect_refused(&m, "header injection in to");
    m = sample();
    m.from = "noreply@example.com\nBcc: evil@example.net";
    expect_refused(&m, "header injection in from");
    m = sample();
    m.from_name = "Herald\r\nBcc: evil@example.net";
    expect_refused(&m, "header injection in from_name");
    m = sample();
    m.to_name = "Ada\n";
    expect_refused(&m, "header injection in to_name");
    m = sample();
    m.message_id = "x@example.com>\r\nBcc: evil@example.net";
    expect_refused(&m, "header injection in message_id");
    m = sample();
    m.unsubscribe_url = "https://example.com/u\r\nBcc: evil@example.net";
    expect_refused(&m, "header injection in unsubscribe_url");
    m = sample();
    m.extra_headers = bad_extra;
    expect_refused(&m, "header injection in extra header 'X-A'");
    m.extra_headers = lf_extra;
    expect_refused(&m, "header injection in extra header 'X-B'");
}

static void test_invalid_fields_are_refused(void **state)
{
    static const char *const bcc[] = {"bcc: evil@example.net", NULL};
    static const char *const content[] = {"Content-Type: text/html", NULL};
    static const char *const no_colon[] = {"X-No-Colon", NULL};
    static const char *const utf8[] = {"X-Name: Zoë", NULL};
    struct email_message m;

    (void)state;
    m = sample();
    m.to = "not-an-address";
    expect_refused(&m, "invalid to address");
    m = sample();
    m.from = "Herald <noreply@example.com>";
    expect_refused(&m, "invalid from address");
    m = sample();
    m.message_id = "no-at-sign";
    expect_refused(&m, "invalid message_id");
    m = sample();
    m.message_id = NULL;
    expect_refused(&m, "invalid message_id");
    m = sample();
    m.subject = "caf\xc3";
    expect_refused(&m, "subject is not valid UTF-8");
    m = sample();
    m.to_name = "\xed\xa0\x80"; /* a surrogate */
    expect_refused(&m, "to_name is not valid UTF-8");
    m = sample();
    m.subject = NULL;
    expect_refused(&m, "missing subject");
    m = sample();
    m.text = NULL;
    expect_refused(&m, "missing text body");
    m = sample();
    m.unsubscribe_url = "http://example.com/u";
    expect_refused(&m, "invalid unsubscribe url");
    m.unsubscribe_url = "https://example.com/u>x";
    expect_refused(&m, "invalid unsubscribe url");
    m = sample();
    m.extra_headers = bcc;
    expect_refused(&m, "extra header 'bcc' is not allowed");
    m.extra_headers = content;
    expect_refused(&m, "extra header 'Content-Type' is not allowed");
    m.extra_headers = no_colon;
    expect_refused(&m, "invalid extra header 'X-No-Colon'");
    m.extra_headers = utf8;
    expect_refused(&m, "invalid extra header 'X-Name'");
}

static void test_list_unsubscribe_only_with_url(void **state)
{
    struct email_message m = sample();
    struct hr_buf out = {0};

    (void)state;
    m.unsubscribe_url = NULL;
    build_ok(&m, &out);
    assert_null(strstr(out.p, "List-Unsubscribe"));
    m.unsubscribe_url = "https://example.com/u?t=abc";
    build_ok(&m, &out);
    assert_non_null(
        strstr(out.p, "\r\nList-Unsubscribe: <https://example.com/u?t=abc>\r\n"
                      "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    hr_buf_release(&out, 0);
}

static void test_same_input_same_bytes(void **state)
{
    struct email_message m = sample();
    struct hr_buf a = {0}, b = {0};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char want[64];
    size_t n;

    (void)state;
    build_ok(&m, &a);
    build_ok(&m, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);

    /* The boundary: "=_herald_" and the first 16 bytes of SHA-256 of the
     * Message-ID, in hex. */
    assert_int_equal(EVP_Digest(m.message_id, strlen(m.message_id), md, &md_len,
                                EVP_sha256(), NULL),
                     1);
    n = (size_t)snprintf(want, sizeof(want), "boundary=\"=_herald_");
    for (int i = 0; i < 16; i++)
        n += (size_t)snprintf(want + n, sizeof(want) - n, "%02x", md[i]);
    snprintf(want + n, sizeof(want) - n, "\"");
    assert_non_null(strstr(a.p, want));

    /* Another message: another boundary. */
    m.message_id = "evt-43.u-7@mail.example.com";
    build_ok(&m, &b);
    assert_null(strstr(b.p, want));
    hr_buf_release(&a, 0);
    hr_buf_release(&b, 0);
}

static void test_size_is_bounded(void **state)
{
    struct email_message m = sample();
    struct hr_buf out = {0};
    char errstr[256] = "";
    size_t full;

    (void)state;
    build_ok(&m, &out);
    full = out.len;
    assert_int_equal(email_mime_build(&m, &out, full, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(out.len, full);
    assert_int_equal(
        email_mime_build(&m, &out, full - 1, errstr, sizeof(errstr)), -1);
    {
        char want[64];

        snprintf(want, sizeof(want), "message exceeds %zu bytes", full - 1);
        assert_string_equal(errstr, want);
    }
    assert_int_equal(email_mime_build(&m, &out, 100, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "message exceeds 100 bytes");
    hr_buf_release(&out, 0);
}

static void test_address_checks(void **state)
{
    static const char *const good[] = {
        "a@b",
        "noreply@example.com",
        "o'brien@example.ie",
        "first.last+tag@sub.example.co.uk",
        "x_y-z=1@example.com",
    };
    static const char *const bad[] = {
        "",
        "@example.com",
        "user@",
        "a@b@c",
        "a b@example.com",
        "a@example .com",
        "<a@example.com>",
        "a,b@example.com",
        "a;b@example.com",
        "\"a\"@example.com",
        "a@example.com\r\n",
        "a\t@example.com",
        "a@.example.com",
        "a@example.com.",
        "a@example..com",
        "a(b)@example.com",
        "zoë@example.com",
        "a\\b@example.com",
        "a:b@example.com",
    };
    char addr[300];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!email_address_ok(good[i]))
            fail_msg("refused '%s'", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (email_address_ok(bad[i]))
            fail_msg("accepted '%s'", bad[i]);
    assert_false(email_address_ok(NULL));

    /* 64 bytes of local part, 254 in all; not one more. */
    memset(addr, 'a', 64);
    snprintf(addr + 64, sizeof(addr) - 64, "@example.com");
    assert_true(email_address_ok(addr));
    memset(addr, 'a', 65);
    snprintf(addr + 65, sizeof(addr) - 65, "@example.com");
    assert_false(email_address_ok(addr));
    memset(addr, 'd', sizeof(addr));
    memcpy(addr, "user@", 5);
    addr[254] = '\0';
    assert_true(email_address_ok(addr));
    addr[254] = 'd';
    addr[255] = '\0';
    assert_false(email_address_ok(addr));

    {
        const char *a = "ada@example.org";

        assert_ptr_equal(email_address_domain(a), a + 4);
        assert_string_equal(email_address_domain(a), "example.org");
        assert_null(email_address_domain("nodomain"));
        assert_null(email_address_domain("a@b@c"));
        assert_null(email_address_domain(NULL));
    }
}

static void test_rfc5322_dates(void **state)
{
    char buf[EMAIL_DATE_SIZE];

    (void)state;
    assert_string_equal(email_rfc5322_date(0, buf, sizeof(buf)),
                        "Thu, 01 Jan 1970 00:00:00 +0000");
    assert_string_equal(
        email_rfc5322_date(INT64_C(1796562000000), buf, sizeof(buf)),
        "Sun, 06 Dec 2026 13:00:00 +0000");
    assert_string_equal(
        email_rfc5322_date(INT64_C(951782400999), buf, sizeof(buf)),
        "Tue, 29 Feb 2000 00:00:00 +0000");
    assert_string_equal(email_rfc5322_date(-1, buf, sizeof(buf)),
                        "Wed, 31 Dec 1969 23:59:59 +0000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_in_order),
        cmocka_unit_test(test_text_part_comes_first),
        cmocka_unit_test(test_single_part_without_html),
        cmocka_unit_test(test_long_bodies_in_76_character_lines),
        cmocka_unit_test(test_header_lines_fit_78),
        cmocka_unit_test(test_subject_encoded_words),
        cmocka_unit_test(test_display_names),
        cmocka_unit_test(test_header_injection_is_refused),
        cmocka_unit_test(test_invalid_fields_are_refused),
        cmocka_unit_test(test_list_unsubscribe_only_with_url),
        cmocka_unit_test(test_same_input_same_bytes),
        cmocka_unit_test(test_size_is_bounded),
        cmocka_unit_test(test_address_checks),
        cmocka_unit_test(test_rfc5322_dates),
    };

    return cmocka_run_group_tests_name("email_mime", tests, NULL, NULL);
}
