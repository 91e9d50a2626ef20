/*
 * A small Mustache subset over jansson values, for email subjects and
 * bodies: {{name}} (HTML-escaped when rendering HTML), {{{name}}} and
 * {{& name}} (never escaped), {{! comment }}, {{#name}}...{{/name}}
 * sections, {{^name}}...{{/name}} inverted sections, {{.}} (the current
 * value) and dotted names {{a.b.c}}. No partials, lambdas or delimiter
 * changes.
 *
 * Lookup follows Mustache: the first part of a name is looked up in the
 * context stack from the innermost value outwards, the other parts inside
 * what it found. A line holding only white space and one section, inverted
 * section, close or comment tag is removed with its line end (Mustache's
 * "standalone" lines), so loops in text emails leave no blank lines.
 *
 * A template is compiled once into a flat node list; rendering only reads
 * it and allocates nothing but the output's growth.
 */
#ifndef EMAIL_TEMPLATE_H
#define EMAIL_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "hr_compat.h"

struct hr_buf;

/* Sections nest at most this deep (a compile error beyond). */
#define EMAIL_TPL_MAX_DEPTH 32

struct email_tpl;

/** How {{name}} tags are written; {{{name}}} and {{& name}} never escape. */
enum email_tpl_escape {
    EMAIL_TPL_PLAIN, /* as is: text/plain bodies and subjects */
    EMAIL_TPL_HTML,  /* & < > " ' as &amp; &lt; &gt; &quot; &#39; */
};

/**
 * Compile @src (UTF-8, NUL-terminated; copied, the caller keeps it).
 * Returns the template (free with email_tpl_free()), or NULL with a
 * message in @errstr naming the problem and its line: "line 3: unclosed
 * section 'items'", "line 1: '{{/x}}' closes 'items'", "line 1: '{{/x}}'
 * closes no section", "line 2: unterminated '{{'" (or '{{{'),
 * "line 1: empty tag", "line 1: unknown tag '{{=<% %>=}}'" (also partials
 * '>' and the inheritance tags '<' and '$'), "line 1: invalid name 'a b'"
 * (white space, braces or an empty part in a dotted name), "line 40:
 * sections nested deeper than 32". Aborts when memory runs out.
 * Thread-safe.
 */
struct email_tpl *
email_tpl_compile(const char *src, char *errstr, size_t errstr_size);

/** Free @t. NULL is a no-op. */
void email_tpl_free(struct email_tpl *t);

/**
 * Render @t with the context @ctx (a JSON object; borrowed, only read),
 * appending to @out. @out then holds at most @max bytes in all, its
 * earlier content included.
 *
 * Values: strings as they are, integers in decimal, reals in the shortest
 * form that reads back (1.5 "1.5", 2.0 "2"), true "true", false and null
 * "", objects and arrays "". Sections render their body once per element
 * of an array (the element pushed on the context stack), once for an
 * object, true, a non-zero number or a non-empty string (the value
 * pushed), and not at all for false, null, 0, "", [] or a missing name.
 * Inverted sections render exactly when the section would not.
 *
 * With @strict, a variable or section name (inverted ones too) that
 * resolves to nothing is an error ("line 4: unknown variable 'actor'",
 * "line 2: unknown section 'items'"); a name bound to null is not. This
 * is for --check-config with sample data; without @strict a missing name
 * renders as empty, as Mustache does. Only the branches the data reaches
 * are checked.
 *
 * Returns 0, or -1 with @errstr (also "rendered text exceeds N bytes")
 * and @out as it was before the call. Thread-safe: @t is only read, so
 * one template may be rendered by many threads at once.
 */
HR_MUST_CHECK int email_tpl_render(const struct email_tpl *t,
                                   const json_t *ctx,
                                   enum email_tpl_escape esc,
                                   bool strict,
                                   struct hr_buf *out,
                                   size_t max,
                                   char *errstr,
                                   size_t errstr_size);

#endif
