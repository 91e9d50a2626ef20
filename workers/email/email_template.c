/*
 * The Mustache subset of email_template.h: a one-pass compiler into a flat
 * node list, and a renderer that walks it with the context stack in a
 * fixed array (sections nest at most EMAIL_TPL_MAX_DEPTH deep).
 */
#include "email_template.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_buf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

enum tpl_kind {
    TPL_TEXT,     /* a span of the source */
    TPL_VAR,      /* {{name}}: escaped when rendering HTML */
    TPL_RAW,      /* {{{name}}}, {{& name}} */
    TPL_SECTION,  /* {{#name}} */
    TPL_INVERTED, /* {{^name}} */
};

struct tpl_node {
    enum tpl_kind kind;
    unsigned line;
    /* TPL_TEXT: the span [off, off + len) of t->src. Others: the dotted
     * name at t->names + off, then its len parts, each NUL-terminated
     * (len is 0 for "."). */
    size_t off;
    size_t len;
    /* Sections: the index of the first node after {{/name}}. */
    size_t end;
};

struct email_tpl {
    char *src;
    char *names;
    size_t names_len;
    size_t names_cap;
    struct tpl_node *nodes;
    size_t n_nodes;
    size_t nodes_cap;
};

/* ---- compiling ---------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_space(char c)
{
    return is_blank(c) || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static unsigned count_lines(const char *s, size_t len)
{
    unsigned n = 0;

    for (const char *p = s; (p = memchr(p, '\n', len - (size_t)(p - s))); p++)
        n++;
    return n;
}

static struct tpl_node *add_node(struct email_tpl *t, enum tpl_kind kind)
{
    struct tpl_node *node;

    t->nodes =
        hr_grow(t->nodes, &t->nodes_cap, t->n_nodes + 1, sizeof(*t->nodes), 16);
    node = &t->nodes[t->n_nodes++];
    memset(node, 0, sizeof(*node));
    node->kind = kind;
    return node;
}

static void add_text(struct email_tpl *t, size_t off, size_t len)
{
    struct tpl_node *last = t->n_nodes ? &t->nodes[t->n_nodes - 1] : NULL;

    if (!len)
        return;
    /* A comment between two spans leaves them adjacent: one node. */
    if (last && last->kind == TPL_TEXT && last->off + last->len == off) {
        last->len += len;
        return;
    }
    last = add_node(t, TPL_TEXT);
    last->off = off;
    last->len = len;
}

static void names_put(struct email_tpl *t, const char *s, size_t len)
{
    t->names = hr_grow(t->names, &t->names_cap, t->names_len + len + 1, 1, 256);
    memcpy(t->names + t->names_len, s, len);
    t->names_len += len;
    t->names[t->names_len++] = '\0';
}

/*
 * Check the name @s (@len bytes, trimmed) and store it for @node: the
 * dotted form for messages and close tags, then its parts for lookups.
 */
static bool
add_name(struct email_tpl *t, struct tpl_node *node, const char *s, size_t len)
{
    size_t part = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f || c == ' ' || c == '{' || c == '}')
            return false;
    }
    node->off = t->names_len;
    names_put(t, s, len);
    if (len == 1 && s[0] == '.') {
        node->len = 0;
        return true;
    }
    node->len = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (i == part)
            return false; /* "a..b", ".a", "a." */
        names_put(t, s + part, i - part);
        node->len++;
        part = i + 1;
    }
    return true;
}

/*
 * Whether the tag [start, end) stands alone on its line: only blanks
 * before it since the line start and after it up to the line end (or the
 * end of the template). If so, *@line_start and *@next delimit the line,
 * its end included.
 */
static bool standalone(
    const char *src, size_t start, size_t end, size_t *line_start, size_t *next)
{
    size_t p = start;

    while (p > 0 && is_blank(src[p - 1]))
        p--;
    if (p > 0 && src[p - 1] != '\n')
        return false;
    *line_start = p;
    p = end;
    while (is_blank(src[p]))
        p++;
    if (src[p] == '\r' && src[p + 1] == '\n')
        p += 2;
    else if (src[p] == '\n')
        p++;
    else if (src[p] != '\0')
        return false;
    *next = p;
    return true;
}

struct email_tpl *
email_tpl_compile(const char *src, char *errstr, size_t errstr_size)
{
    struct email_tpl *t = calloc(1, sizeof(*t));
    size_t open[EMAIL_TPL_MAX_DEPTH]; /* node indices of open sections */
    size_t depth = 0, cursor = 0, src_len = strlen(src);
    unsigned line = 1; /* of src[cursor] */

    HR_ASSERT(t);
    t->src = malloc(src_len + 1);
    HR_ASSERT(t->src);
    memcpy(t->src, src, src_len + 1);
    src = t->src;

    for (;;) {
        const char *hit = strstr(src + cursor, "{{");
        size_t start, body, close, end, line_start = 0, next, len;
        const char *name;
        bool triple;
        char sigil = 0;
        unsigned tag_line;
        struct tpl_node *node;

        if (!hit) {
            add_text(t, cursor, src_len - cursor);
            break;
        }
        start = (size_t)(hit - src);
        tag_line = line + count_lines(src + cursor, start - cursor);
        triple = src[start + 2] == '{';
        body = start + (triple ? 3 : 2);
        hit = strstr(src + body, triple ? "}}}" : "}}");
        if (!hit) {
            snprintf(errstr, errstr_size, "line %u: unterminated '%s'",
                     tag_line, triple ? "{{{" : "{{");
            goto out_free;
        }
        close = (size_t)(hit - src);
        end = close + (triple ? 3 : 2);

        /* The tag's content, trimmed, then its sigil. */
        while (body < close && is_space(src[body]))
            body++;
        while (close > body && is_space(src[close - 1]))
            close--;
        if (!triple && body < close && strchr("#^/!&=><$", src[body])) {
            sigil = src[body++];
            while (body < close && is_space(src[body]))
                body++;
        }
        name = src + body;
        len = close - body;
        if (sigil == '=' || sigil == '>' || sigil == '<' || sigil == '$') {
            len = end - start - 4;
            snprintf(errstr, errstr_size, "line %u: unknown tag '{{%.*s%s}}'",
                     tag_line, len > 40 ? 40 : (int)len, src + start + 2,
                     len > 40 ? "..." : "");
            goto out_free;
        }
        if (!len && sigil != '!') {
            snprintf(errstr, errstr_size, "line %u: empty tag", tag_line);
            goto out_free;
        }

        /* Section, close and comment tags alone on a line take the line
         * with them; everything else stays inline. */
        next = end;
        if (!(triple || sigil == 0 || sigil == '&') &&
            standalone(src, start, end, &line_start, &next))
            add_text(t, cursor, line_start - cursor);
        else
            add_text(t, cursor, start - cursor);
        line = tag_line + count_lines(src + start, next - start);
        cursor = next;

        switch (sigil) {
        case '!':
            continue;
        case '/':
            if (!depth) {
                snprintf(errstr, errstr_size,
                         "line %u: '{{/%.*s}}' closes no section", tag_line,
                         (int)len, name);
                goto out_free;
            }
            node = &t->nodes[open[depth - 1]];
            if (strlen(t->names + node->off) != len ||
                memcmp(t->names + node->off, name, len)) {
                snprintf(errstr, errstr_size,
                         "line %u: '{{/%.*s}}' closes '%s'", tag_line, (int)len,
                         name, t->names + node->off);
                goto out_free;
            }
            node->end = t->n_nodes;
            depth--;
            continue;
        case '#':
        case '^':
            if (depth == EMAIL_TPL_MAX_DEPTH) {
                snprintf(errstr, errstr_size,
                         "line %u: sections nested deeper than %d", tag_line,
                         EMAIL_TPL_MAX_DEPTH);
                goto out_free;
            }
            node = add_node(t, sigil == '#' ? TPL_SECTION : TPL_INVERTED);
            open[depth++] = t->n_nodes - 1;
            break;
        default:
            node = add_node(t, triple || sigil == '&' ? TPL_RAW : TPL_VAR);
            break;
        }
        node->line = tag_line;
        if (!add_name(t, node, name, len)) {
            snprintf(errstr, errstr_size, "line %u: invalid name '%.*s'",
                     tag_line, (int)len, name);
            goto out_free;
        }
    }
    if (depth) {
        const struct tpl_node *node = &t->nodes[open[depth - 1]];

        snprintf(errstr, errstr_size, "line %u: unclosed section '%s'",
                 node->line, t->names + node->off);
        goto out_free;
    }
    return t;

out_free:
    email_tpl_free(t);
    return NULL;
}

void email_tpl_free(struct email_tpl *t)
{
    if (!t)
        return;
    free(t->src);
    free(t->names);
    free(t->nodes);
    free(t);
}

/* ---- rendering ---------------------------------------------------------- */

struct tpl_render {
    const struct email_tpl *t;
    enum email_tpl_escape esc;
    bool strict;
    struct hr_buf *out;
    size_t max;
    char *errstr;
    size_t errstr_size;
    /* The root context and one value per open section. */
    const json_t *stack[EMAIL_TPL_MAX_DEPTH + 1];
    size_t depth;
};

static int put(struct tpl_render *r, const char *s, size_t len)
{
    if (hr_buf_append(r->out, s, len, r->max) == 0)
        return 0;
    if (r->out->len + len > r->max)
        snprintf(r->errstr, r->errstr_size, "rendered text exceeds %zu bytes",
                 r->max);
    else
        snprintf(r->errstr, r->errstr_size, "out of memory");
    return -1;
}

/* @s as HTML text or attribute value: the five specials as entities. */
static int put_escaped(struct tpl_render *r, const char *s, size_t len)
{
    size_t run = 0;

    for (size_t i = 0; i < len; i++) {
        const char *entity;

        switch (s[i]) {
        case '&':
            entity = "&amp;";
            break;
        case '<':
            entity = "&lt;";
            break;
        case '>':
            entity = "&gt;";
            break;
        case '"':
            entity = "&quot;";
            break;
        case '\'':
            entity = "&#39;";
            break;
        default:
            continue;
        }
        if (put(r, s + run, i - run) || put(r, entity, strlen(entity)))
            return -1;
        run = i + 1;
    }
    return put(r, s + run, len - run);
}

/* The shortest of %.15g, %.16g and %.17g that reads back as @d. */
static void format_real(double d, char *buf, size_t size)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static int put_value(struct tpl_render *r, const json_t *v, bool escape)
{
    char num[64];

    switch (json_typeof(v)) {
    case JSON_STRING:
        if (escape)
            return put_escaped(r, json_string_value(v), json_string_length(v));
        return put(r, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return put(r, num, strlen(num));
    case JSON_REAL:
        format_real(json_real_value(v), num, sizeof(num));
        return put(r, num, strlen(num));
    case JSON_TRUE:
        return put(r, "true", 4);
    default:
        return 0; /* false, null, objects and arrays */
    }
}

/*
 * The value @node names: "." is the innermost value; otherwise the first
 * part is looked up in the stack from the innermost object outwards, the
 * other parts inside what it found (no fallback to outer values once the
 * first part is found, as Mustache specifies). NULL: nothing.
 */
static const json_t *lookup(const struct tpl_render *r,
                            const struct tpl_node *node)
{
    const char *part = r->t->names + node->off;
    const json_t *v = NULL;

    if (!node->len)
        return r->stack[r->depth - 1];
    part += strlen(part) + 1;
    for (size_t i = r->depth; i-- > 0 && !v;)
        v = json_object_get(r->stack[i], part); /* NULL unless an object */
    for (size_t i = 1; i < node->len && v; i++) {
        part += strlen(part) + 1;
        v = json_object_get(v, part);
    }
    return v;
}

/* Whether a section over @v renders its body (once, or per element). */
static bool truthy(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT:
    case JSON_TRUE:
        return true;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    default:
        return false;
    }
}

static int unknown(struct tpl_render *r, const struct tpl_node *node)
{
    snprintf(r->errstr, r->errstr_size, "line %u: unknown %s '%s'", node->line,
             node->kind == TPL_VAR || node->kind == TPL_RAW ? "variable"
                                                            : "section",
             r->t->names + node->off);
    return -1;
}

static int render_nodes(struct tpl_render *r, size_t from, size_t to)
{
    for (size_t i = from; i < to;) {
        const struct tpl_node *node = &r->t->nodes[i];
        const json_t *v;

        if (node->kind == TPL_TEXT) {
            if (put(r, r->t->src + node->off, node->len))
                return -1;
            i++;
            continue;
        }
        v = lookup(r, node);
        if (!v && r->strict)
            return unknown(r, node);
        switch (node->kind) {
        case TPL_VAR:
        case TPL_RAW:
            if (v &&
                put_value(r, v,
                          node->kind == TPL_VAR && r->esc == EMAIL_TPL_HTML))
                return -1;
            i++;
            continue;
        case TPL_INVERTED:
            if (!truthy(v) && render_nodes(r, i + 1, node->end))
                return -1;
            break;
        default:
            if (!truthy(v))
                break;
            if (json_is_array(v)) {
                for (size_t k = 0; k < json_array_size(v); k++) {
                    r->stack[r->depth++] = json_array_get(v, k);
                    if (render_nodes(r, i + 1, node->end))
                        return -1;
                    r->depth--;
                }
                break;
            }
            r->stack[r->depth++] = v;
            if (render_nodes(r, i + 1, node->end))
                return -1;
            r->depth--;
            break;
        }
        i = node->end;
    }
    return 0;
}

int email_tpl_render(const struct email_tpl *t,
                     const json_t *ctx,
                     enum email_tpl_escape esc,
                     bool strict,
                     struct hr_buf *out,
                     size_t max,
                     char *errstr,
                     size_t errstr_size)
{
    struct tpl_render r = {
        .t = t,
        .esc = esc,
        .strict = strict,
        .out = out,
        .max = max,
        .errstr = errstr,
        .errstr_size = errstr_size,
        .stack = {ctx},
        .depth = 1,
    };
    size_t before = out->len;

    if (render_nodes(&r, 0, t->n_nodes) == 0)
        return 0;
    out->len = before;
    if (out->p)
        out->p[before] = '\0';
    return -1;
}
