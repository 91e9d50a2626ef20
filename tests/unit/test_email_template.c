/*
 * Unit tests for email_template, the Mustache subset of herald-email:
 * variables and their escaping, dotted names and the context stack,
 * sections over every JSON type, inverted sections, standalone lines,
 * comments, every compile error with its line, strict rendering, the
 * output bound, number formatting and UTF-8 passing through untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "email_template.h"
#include "hr_buf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define OUT_MAX (1 << 20)

static json_t *ctx_of(const char *json)
{
    json_error_t err;
    json_t *ctx = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

    if (!ctx)
        fail_msg("bad test JSON (%s): %s", err.text, json);
    return ctx;
}

static struct email_tpl *compile_ok(const char *src)
{
    char errstr[256] = "";
    struct email_tpl *t = email_tpl_compile(src, errstr, sizeof(errstr));

    if (!t)
        fail_msg("compile '%s': %s", src, errstr);
    return t;
}

/* Compile @src, render it with @json and compare with @want. */
static void expect_esc(const char *src,
                       const char *json,
                       enum email_tpl_escape esc,
                       const char *want)
{
    struct email_tpl *t = compile_ok(src);
    json_t *ctx = ctx_of(json);
    struct hr_buf out = {0};
    char errstr[256] = "";

    if (email_tpl_render(t, ctx, esc, false, &out, OUT_MAX, errstr,
                         sizeof(errstr)))
        fail_msg("render '%s': %s", src, errstr);
    assert_string_equal(out.p ? out.p : "", want);
    hr_buf_release(&out, 0);
    json_decref(ctx);
    email_tpl_free(t);
}

static void expect(const char *src, const char *json, const char *want)
{
    expect_esc(src, json, EMAIL_TPL_PLAIN, want);
}

static void expect_compile_error(const char *src, const char *want)
{
    char errstr[256] = "";
    struct email_tpl *t = email_tpl_compile(src, errstr, sizeof(errstr));

    if (t) {
        email_tpl_free(t);
        fail_msg("'%s' compiled", src);
    }
    assert_string_equal(errstr, want);
}

static void test_variables_are_replaced(void **state)
{
    (void)state;
    expect("Hello {{name}}, you have {{count}} new {{ what }}.",
           "{\"name\": \"Ada\", \"count\": 3, \"what\": \"replies\"}",
           "Hello Ada, you have 3 new replies.");
    expect("[{{missing}}]", "{}", "[]");
    expect("no tags at all", "{}", "no tags at all");
    expect("", "{}", "");
    expect("a { b } {c} }}", "{}", "a { b } {c} }}");
    /* Objects and arrays have no text. */
    expect("[{{o}}{{a}}]", "{\"o\": {\"k\": 1}, \"a\": [1]}", "[]");
    /* A NUL inside a JSON string is kept (the length is used). */
    {
        struct email_tpl *t = compile_ok("<{{s}}>");
        json_t *ctx = ctx_of("{\"s\": \"a\\u0000b\"}");
        struct hr_buf out = {0};
        char errstr[128];

        assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_PLAIN, false, &out,
                                          OUT_MAX, errstr, sizeof(errstr)),
                         0);
        assert_int_equal(out.len, 5);
        assert_memory_equal(out.p, "<a\0b>", 5);
        hr_buf_release(&out, 0);
        json_decref(ctx);
        email_tpl_free(t);
    }
}

static void test_html_escapes_only_double_mustache(void **state)
{
    const char *json = "{\"v\": \"<a href=\\\"x\\\">Tom & Jerry's</a>\"}";

    (void)state;
    expect_esc("{{v}}", json, EMAIL_TPL_HTML,
               "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
    expect_esc("{{v}}", json, EMAIL_TPL_PLAIN,
               "<a href=\"x\">Tom & Jerry's</a>");
    expect_esc("{{{v}}}|{{&v}}|{{& v }}|{{{ v }}}", json, EMAIL_TPL_HTML,
               "<a href=\"x\">Tom & Jerry's</a>|<a href=\"x\">Tom & "
               "Jerry's</a>|<a href=\"x\">Tom & Jerry's</a>|<a "
               "href=\"x\">Tom & Jerry's</a>");
    /* Template text itself is never escaped. */
    expect_esc("<b>{{n}}</b> & co", "{\"n\": 1}", EMAIL_TPL_HTML,
               "<b>1</b> & co");
    expect_esc("{{v}}", "{\"v\": \"&&\"}", EMAIL_TPL_HTML, "&amp;&amp;");
}

static void test_dotted_names(void **state)
{
    (void)state;
    expect("{{a.b.c}}", "{\"a\": {\"b\": {\"c\": \"deep\"}}}", "deep");
    expect("[{{a.x.c}}]", "{\"a\": {\"b\": {\"c\": \"deep\"}}}", "[]");
    expect("[{{a.b.c}}]", "{\"a\": {\"b\": 1}}", "[]");
    expect("{{#a}}{{b.c}}{{/a}}", "{\"a\": {\"b\": {\"c\": \"in\"}}}", "in");
    expect("{{#a.b}}{{c}}{{/a.b}}", "{\"a\": {\"b\": {\"c\": \"sec\"}}}",
           "sec");
    /* Once the first part is found, the rest is looked up inside it only
     * (Mustache "Dotted Names - Context Precedence"). */
    expect("[{{#a}}{{b.c}}{{/a}}]",
           "{\"a\": {\"b\": {}}, \"b\": {\"c\": \"ERROR\"}}", "[]");
}

static void test_context_stack_reaches_outer_values(void **state)
{
    (void)state;
    expect("{{#items}}{{title}} for {{user_name}}\n{{/items}}",
           "{\"user_name\": \"Ada\", \"items\": [{\"title\": \"A\"}, "
           "{\"title\": \"B\", \"user_name\": \"Inner\"}]}",
           "A for Ada\nB for Inner\n");
    /* Three levels: the innermost name wins, outer ones stay reachable. */
    expect("{{#o}}{{#p}}{{x}}{{y}}{{z}}{{/p}}{{/o}}",
           "{\"x\": 1, \"y\": 1, \"z\": 1, \"o\": {\"y\": 2, \"z\": 2, "
           "\"p\": {\"z\": 3}}}",
           "123");
    /* Values pushed by scalar sections have no names: lookups pass by. */
    expect("{{#s}}{{.}}/{{name}}{{/s}}", "{\"s\": \"x\", \"name\": \"n\"}",
           "x/n");
    expect("{{#list}}{{#.}}({{.}}){{/.}}{{/list}}", "{\"list\": [[1, 2], [3]]}",
           "(1)(2)(3)");
}

static void test_sections_by_type(void **state)
{
    (void)state;
    expect("{{#xs}}[{{.}}]{{/xs}}", "{\"xs\": [1, \"a\", true, 1.5]}",
           "[1][a][true][1.5]");
    expect("<{{#xs}}x{{/xs}}>", "{\"xs\": []}", "<>");
    expect("{{#o}}{{k}}{{/o}}", "{\"o\": {\"k\": \"v\"}}", "v");
    expect("<{{#o}}once{{/o}}>", "{\"o\": {}}", "<once>");
    expect("<{{#b}}yes{{/b}}>", "{\"b\": true}", "<yes>");
    expect("<{{#b}}yes{{/b}}>", "{\"b\": false}", "<>");
    expect("<{{#b}}yes{{/b}}>", "{\"b\": null}", "<>");
    expect("<{{#b}}yes{{/b}}>", "{}", "<>");
    expect("<{{#n}}{{.}}{{/n}}>", "{\"n\": 7}", "<7>");
    expect("<{{#n}}{{.}}{{/n}}>", "{\"n\": -1}", "<-1>");
    expect("<{{#n}}{{.}}{{/n}}>", "{\"n\": 0}", "<>");
    expect("<{{#n}}{{.}}{{/n}}>", "{\"n\": 2.5}", "<2.5>");
    expect("<{{#n}}{{.}}{{/n}}>", "{\"n\": 0.0}", "<>");
    expect("<{{#s}}{{.}}{{/s}}>", "{\"s\": \"x\"}", "<x>");
    expect("<{{#s}}{{.}}{{/s}}>", "{\"s\": \"\"}", "<>");
    /* Nested arrays of objects. */
    expect("{{#g}}{{name}}:{{#m}} {{.}}{{/m}};{{/g}}",
           "{\"g\": [{\"name\": \"a\", \"m\": [1, 2]}, "
           "{\"name\": \"b\", \"m\": []}]}",
           "a: 1 2;b:;");
}

static void test_inverted_sections(void **state)
{
    static const struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"{\"x\": []}", "none"},    {"{\"x\": [1]}", ""},
        {"{\"x\": false}", "none"}, {"{\"x\": true}", ""},
        {"{\"x\": null}", "none"},  {"{}", "none"},
        {"{\"x\": 0}", "none"},     {"{\"x\": 3}", ""},
        {"{\"x\": \"\"}", "none"},  {"{\"x\": \"a\"}", ""},
        {"{\"x\": {}}", ""},        {"{\"x\": 0.0}", "none"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect("{{^x}}none{{/x}}", cases[i].json, cases[i].want);
    expect("{{#x}}{{.}}{{/x}}{{^x}}empty{{/x}}", "{\"x\": [\"a\"]}", "a");
}

static void test_standalone_lines_are_removed(void **state)
{
    const char *items = "{\"items\": [{\"name\": \"a\"}, {\"name\": \"b\"}]}";

    (void)state;
    expect("Items:\n{{#items}}\n- {{name}}\n{{/items}}\nEnd\n", items,
           "Items:\n- a\n- b\nEnd\n");
    /* Indented tags, CRLF line ends, and the last line without one. */
    expect("Items:\r\n  {{#items}}  \r\n- {{name}}\r\n\t{{/items}}\r\nEnd",
           items, "Items:\r\n- a\r\n- b\r\nEnd");
    expect("#{{#t}}\n/\n  {{/t}}", "{\"t\": true}", "#\n/\n");
    expect("{{^items}}\nnone\n{{/items}}\nx\n", "{}", "none\nx\n");
    expect("a\n  {{! a note }}\nb\n", "{}", "a\nb\n");
    expect("a\n{{!\n  a note\n  over lines\n}}\nb\n", "{}", "a\nb\n");
    /* Not standalone: other text or tags on the line, or a variable. */
    expect("  {{#t}}x{{/t}}\n", "{\"t\": true}", "  x\n");
    expect("{{#t}}{{/t}}{{#t}}\nx\n{{/t}}", "{\"t\": true}", "\nx\n");
    expect("[\n{{x}}\n]", "{\"x\": \"\"}", "[\n\n]");
    expect("[\n{{{x}}}\n]", "{\"x\": \"\"}", "[\n\n]");
    expect("a {{! c }}\nb", "{}", "a \nb");
}

static void test_comments_render_nothing(void **state)
{
    (void)state;
    expect("a{{! comment }}b{{!\nmulti\nline }}c{{!}}d", "{}", "abcd");
    /* A comment ends at the first "}}". */
    expect("{{! {x} }} }}", "{}", " }}");
}

static void test_compile_errors_name_their_line(void **state)
{
    char deep[33 * 8 + 33 * 8 + 1] = "";
    size_t n = 0;

    (void)state;
    expect_compile_error("a\nb\n{{#items}}\nx", "line 3: unclosed section "
                                                "'items'");
    expect_compile_error("{{#items}}{{/x}}", "line 1: '{{/x}}' closes 'items'");
    expect_compile_error("{{/x}}", "line 1: '{{/x}}' closes no section");
    expect_compile_error("a\n{{name", "line 2: unterminated '{{'");
    expect_compile_error("a\n\n{{{name}}", "line 3: unterminated '{{{'");
    expect_compile_error("{{ }}", "line 1: empty tag");
    expect_compile_error("x\n{{#}}{{/}}", "line 2: empty tag");
    expect_compile_error("{{{}}}", "line 1: empty tag");
    expect_compile_error("{{&}}", "line 1: empty tag");
    expect_compile_error("{{=<% %>=}}", "line 1: unknown tag '{{=<% %>=}}'");
    expect_compile_error("\n{{> header}}",
                         "line 2: unknown tag '{{> header}}'");
    expect_compile_error("{{a b}}", "line 1: invalid name 'a b'");
    expect_compile_error("{{a..b}}", "line 1: invalid name 'a..b'");
    expect_compile_error("{{#.a}}{{/.a}}", "line 1: invalid name '.a'");
    /* Lines are counted through standalone lines and multi-line
     * comments. */
    expect_compile_error("{{#a}}\n{{! x\ny }}\n{{/b}}",
                         "line 4: '{{/b}}' closes 'a'");
    expect_compile_error("{{#a}}\n  {{#b}}  \n{{/b}}\n\n{{#c}}",
                         "line 5: unclosed section 'c'");

    /* 32 nested sections compile, 33 do not. */
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{{#s%d}}", i);
    for (int i = 31; i >= 0; i--)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{{/s%d}}", i);
    email_tpl_free(compile_ok(deep));
    n = 0;
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{{#s%d}}\n", i);
    expect_compile_error(deep, "line 33: sections nested deeper than 32");
}

static void test_deep_nesting_renders(void **state)
{
    char src[32 * 12 + 32 * 12 + 8] = "";
    char json[32 * 8 + 8] = "";
    size_t n = 0, j = 0;

    (void)state;
    /* {{#o}} 32 times over {"o":{"o":...{"o":{"v":"end"}}}}: a full
     * context stack. */
    for (int i = 0; i < 32; i++) {
        n += (size_t)snprintf(src + n, sizeof(src) - n, "{{#o}}");
        j += (size_t)snprintf(json + j, sizeof(json) - j, "{\"o\":");
    }
    n += (size_t)snprintf(src + n, sizeof(src) - n, "{{v}}");
    j += (size_t)snprintf(json + j, sizeof(json) - j, "{\"v\":\"end\"}");
    for (int i = 0; i < 32; i++) {
        n += (size_t)snprintf(src + n, sizeof(src) - n, "{{/o}}");
        j += (size_t)snprintf(json + j, sizeof(json) - j, "}");
    }
    expect(src, json, "end");
}

static void test_strict_reports_unknown_names(void **state)
{
    struct email_tpl *t = compile_ok("Hi\n\n\n{{actor}} {{#items}}{{/items}}");
    json_t *ctx = ctx_of("{\"items\": null}");
    struct hr_buf out = {0};
    char errstr[256] = "";

    (void)state;
    assert_int_equal(hr_buf_append(&out, "kept", 4, OUT_MAX), 0);
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_PLAIN, true, &out,
                                      OUT_MAX, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "line 4: unknown variable 'actor'");
    /* Failure leaves @out as it was. */
    assert_int_equal(out.len, 4);
    assert_string_equal(out.p, "kept");
    /* Without strict, Mustache semantics: empty. */
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_PLAIN, false, &out,
                                      OUT_MAX, errstr, sizeof(errstr)),
                     0);
    assert_string_equal(out.p, "keptHi\n\n\n ");
    json_decref(ctx);

    /* Present but null is known; missing sections are not. */
    ctx = ctx_of("{\"actor\": null}");
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_PLAIN, true, &out,
                                      OUT_MAX, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "line 4: unknown section 'items'");
    json_decref(ctx);
    email_tpl_free(t);

    t = compile_ok("{{#user}}\n{{^user.nick}}{{user.name}}{{/user.nick}}\n"
                   "{{/user}}");
    ctx = ctx_of("{\"user\": {\"name\": \"Ada\"}}");
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_HTML, true, &out,
                                      OUT_MAX, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "line 2: unknown section 'user.nick'");
    json_decref(ctx);
    ctx = ctx_of("{\"user\": {\"name\": \"Ada\", \"nick\": false}}");
    hr_buf_clear(&out);
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_HTML, true, &out,
                                      OUT_MAX, errstr, sizeof(errstr)),
                     0);
    assert_string_equal(out.p, "Ada\n");
    json_decref(ctx);
    email_tpl_free(t);
    hr_buf_release(&out, 0);
}

static void test_output_is_bounded(void **state)
{
    struct email_tpl *t = compile_ok("{{#xs}}{{v}}{{/xs}}");
    json_t *ctx = ctx_of("{\"v\": \"12345\", \"xs\": [1, 2]}");
    struct hr_buf out = {0};
    char errstr[256] = "";

    (void)state;
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_PLAIN, false, &out, 9,
                                      errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "rendered text exceeds 9 bytes");
    assert_int_equal(out.len, 0);
    /* Exactly the limit fits; the bound counts what @out held before. */
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_PLAIN, false, &out, 10,
                                      errstr, sizeof(errstr)),
                     0);
    assert_string_equal(out.p, "1234512345");
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_PLAIN, false, &out, 19,
                                      errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(out.p, "1234512345");
    /* Escaping grows the text: the bound applies to the escaped bytes. */
    json_decref(ctx);
    ctx = ctx_of("{\"v\": \"<<\", \"xs\": [1]}");
    hr_buf_clear(&out);
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_HTML, false, &out, 7,
                                      errstr, sizeof(errstr)),
                     -1);
    assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_HTML, false, &out, 8,
                                      errstr, sizeof(errstr)),
                     0);
    assert_string_equal(out.p, "&lt;&lt;");
    json_decref(ctx);
    email_tpl_free(t);
    hr_buf_release(&out, 0);
}

static void test_numbers_are_formatted(void **state)
{
    (void)state;
    expect("{{a}} {{b}} {{c}}",
           "{\"a\": 42, \"b\": -7, \"c\": 9223372036854775807}",
           "42 -7 9223372036854775807");
    expect("{{a}} {{b}} {{c}} {{d}}",
           "{\"a\": 1.5, \"b\": 2.0, \"c\": 0.1, \"d\": -0.25}",
           "1.5 2 0.1 -0.25");
    expect("{{a}} {{b}} {{c}}",
           "{\"a\": 1e21, \"b\": 0.30000000000000004, \"c\": 1e-7}",
           "1e+21 0.30000000000000004 1e-07");
    expect("{{t}}|{{f}}|{{n}}", "{\"t\": true, \"f\": false, \"n\": null}",
           "true||");
}

static void test_utf8_passes_through(void **state)
{
    (void)state;
    expect_esc("Grüße, {{name}} — 💬 {{{name}}}",
               "{\"name\": \"Zoë «日本» \\ud83d\\ude00\"}", EMAIL_TPL_HTML,
               "Grüße, Zoë «日本» 😀 — 💬 Zoë «日本» 😀");
    expect("{{#xs}}{{.}}·{{/xs}}", "{\"xs\": [\"é\", \"ü\"]}", "é·ü·");
}

static void test_one_compile_many_renders(void **state)
{
    struct email_tpl *t = compile_ok("Hi {{name}}!");
    struct hr_buf out = {0};
    char errstr[128];

    (void)state;
    for (int i = 0; i < 100; i++) {
        char json[64], want[64];
        json_t *ctx;

        snprintf(json, sizeof(json), "{\"name\": \"u%d\"}", i);
        snprintf(want, sizeof(want), "Hi u%d!", i);
        ctx = ctx_of(json);
        hr_buf_clear(&out);
        assert_int_equal(email_tpl_render(t, ctx, EMAIL_TPL_HTML, true, &out,
                                          OUT_MAX, errstr, sizeof(errstr)),
                         0);
        assert_string_equal(out.p, want);
        json_decref(ctx);
    }
    /* A NULL context: every name is missing. */
    hr_buf_clear(&out);
    assert_int_equal(email_tpl_render(t, NULL, EMAIL_TPL_HTML, false, &out,
                                      OUT_MAX, errstr, sizeof(errstr)),
                     0);
    assert_string_equal(out.p, "Hi !");
    hr_buf_release(&out, 0);
    email_tpl_free(t);
    email_tpl_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variables_are_replaced),
        cmocka_unit_test(test_html_escapes_only_double_mustache),
        cmocka_unit_test(test_dotted_names),
        cmocka_unit_test(test_context_stack_reaches_outer_values),
        cmocka_unit_test(test_sections_by_type),
        cmocka_unit_test(test_inverted_sections),
        cmocka_unit_test(test_standalone_lines_are_removed),
        cmocka_unit_test(test_comments_render_nothing),
        cmocka_unit_test(test_compile_errors_name_their_line),
        cmocka_unit_test(test_deep_nesting_renders),
        cmocka_unit_test(test_strict_reports_unknown_names),
        cmocka_unit_test(test_output_is_bounded),
        cmocka_unit_test(test_numbers_are_formatted),
        cmocka_unit_test(test_utf8_passes_through),
        cmocka_unit_test(test_one_compile_many_renders),
    };

    return cmocka_run_group_tests_name("email_template", tests, NULL, NULL);
}
