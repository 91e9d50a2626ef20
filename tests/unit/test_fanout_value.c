/*
 * Unit tests for fanout_value: the values of fan-out rules (SPEC section 8).
 * A string starting with '$' is a path into the change document, a string
 * holding "{{path}}" is a template, objects and arrays are walked, anything
 * else is a literal; "$.item" and "$.index" exist only inside for_each.
 *
 * JSON in the tests is written with single quotes for readability; they
 * become double quotes before parsing (no case needs a literal apostrophe).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fanout_value.h"
#include "hr_compat.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* The change document every test evaluates against. */
static const char *const doc_text =
    "{'id': 'ev-1', 'op': 'insert', 'table': 'Messages',"
    " 'new': {'name': 'Ada', 'a': {'b': 7}, 'n': 42, 'f': 1.5, 't': true,"
    "         'nul': null, 'obj': {'k': 'v', 'n': 1}, 'ids': ['u1', 'u2'],"
    "         'list': [{'x': 1}, {'x': 'two'}]},"
    " 'changed': ['name']}";

static size_t n_invalid_cases;

static json_t *load(const char *text)
{
    char *buf = strdup(text);
    json_error_t err;
    json_t *v;
    char *c;

    assert_non_null(buf);
    for (c = buf; *c; c++)
        if (*c == '\'')
            *c = '"';
    v = json_loads(buf, JSON_DECODE_ANY, &err);
    if (!v)
        print_error("bad test JSON %s: %s\n", buf, err.text);
    free(buf);
    assert_non_null(v);
    return v;
}

static int doc_setup(void **state)
{
    *state = load(doc_text);
    return 0;
}

static int doc_teardown(void **state)
{
    json_decref(*state);
    return 0;
}

/* Compile @spec_text (JSON); the test fails with the error if it does not. */
static struct fanout_value *compile_ok(const char *spec_text, int in_for_each)
{
    json_t *spec = load(spec_text);
    char errstr[256] = "";
    struct fanout_value *v;

    v = fanout_value_compile(spec, in_for_each, errstr, sizeof(errstr));
    if (!v)
        print_error("%s: unexpected error: %s\n", spec_text, errstr);
    json_decref(spec);
    assert_non_null(v);
    return v;
}

/* Compile the string @s, which must fail with @error in the message. */
static void assert_rejected(const char *s, int in_for_each, const char *error)
{
    json_t *spec = json_string(s);
    char errstr[256] = "";
    struct fanout_value *v;

    assert_non_null(spec);
    v = fanout_value_compile(spec, in_for_each, errstr, sizeof(errstr));
    json_decref(spec);
    if (v || !strstr(errstr, error))
        print_error("'%s': expected an error with \"%s\", got %s \"%s\"\n", s,
                    error, v ? "success" : "error", errstr);
    fanout_value_free(v);
    assert_null(v);
    assert_non_null(strstr(errstr, error));
}

/* Evaluate @v in @scope and compare with the JSON @expected_text. */
static void assert_eval(const struct fanout_value *v,
                        const struct fanout_scope *scope,
                        const char *expected_text)
{
    json_t *expected = load(expected_text);
    json_t *got = fanout_value_eval(v, scope);

    assert_non_null(got);
    if (!json_equal(got, expected)) {
        char *dump = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);

        print_error("expected %s, got %s\n", expected_text, dump);
        free(dump);
    }
    assert_true(json_equal(got, expected));
    json_decref(got);
    json_decref(expected);
}

/* Compile @spec_text and evaluate it against the document. */
static void assert_doc_eval(const json_t *doc,
                            const char *spec_text,
                            const char *expected_text)
{
    struct fanout_scope scope = {.doc = doc};
    struct fanout_value *v = compile_ok(spec_text, 0);

    assert_eval(v, &scope, expected_text);
    fanout_value_free(v);
}

/* Compile @spec_text and check its fanout_value_string() form. */
static void assert_string_form(const struct fanout_scope *scope,
                               const char *spec_text,
                               int in_for_each,
                               const char *expected)
{
    struct fanout_value *v = compile_ok(spec_text, in_for_each);
    char buf[256];
    size_t len;

    memset(buf, 'X', sizeof(buf));
    len = fanout_value_string(v, scope, buf, sizeof(buf));
    assert_string_equal(buf, expected);
    assert_int_equal(len, strlen(expected));
    fanout_value_free(v);
}

/* Paths */

static void test_dollar_alone_is_the_whole_document(void **state)
{
    const json_t *doc = *state;
    struct fanout_scope scope = {.doc = doc};
    struct fanout_value *v = compile_ok("'$'", 0);
    json_t *got = fanout_value_eval(v, &scope);

    assert_true(json_equal(got, doc));
    assert_ptr_not_equal(got, doc); /* a copy the caller may change */
    assert_ptr_equal(fanout_value_lookup(v, &scope), doc);
    json_decref(got);
    fanout_value_free(v);
}

static void test_paths_follow_object_keys(void **state)
{
    assert_doc_eval(*state, "'$.new.a.b'", "7");
    assert_doc_eval(*state, "'$.new.name'", "'Ada'");
    assert_doc_eval(*state, "'$.new.a'", "{'b': 7}");
    assert_doc_eval(*state, "'$.op'", "'insert'");
    assert_doc_eval(*state, "'$.new.t'", "true");
}

static void test_paths_follow_array_indices(void **state)
{
    assert_doc_eval(*state, "'$.new.list[1].x'", "'two'");
    assert_doc_eval(*state, "'$.new.list[0]'", "{'x': 1}");
    assert_doc_eval(*state, "'$.new.ids[1]'", "'u2'");
    assert_doc_eval(*state, "'$.changed[0]'", "'name'");
    assert_doc_eval(*state, "'$.new.ids'", "['u1', 'u2']");
}

static void test_missing_paths_evaluate_to_null(void **state)
{
    static const char *const missing[] = {
        "'$.new.nope'",     "'$.nope.deeper'", "'$.new.list[9].x'",
        "'$.new.ids[2]'",   "'$.new.name.x'",  "'$.new.a[0]'",
        "'$.new.ids.x'",    "'$.new.nul'",     "'$.new.list[0][0]'",
        "'$.new.a.b.c.d.e'"};
    struct fanout_scope scope = {.doc = *state};

    for (size_t i = 0; i < HR_ARRAY_SIZE(missing); i++) {
        struct fanout_value *v = compile_ok(missing[i], 0);

        assert_eval(v, &scope, "null");
        if (i != 7) /* '$.new.nul' is present, and null */
            assert_null(fanout_value_lookup(v, &scope));
        fanout_value_free(v);
    }
}

static void test_item_and_index_are_available_inside_for_each(void **state)
{
    json_t *item = load("{'id': 'u7', 'tags': ['a', 'b']}");
    struct fanout_scope scope = {.doc = *state, .item = item, .index = 2};
    struct fanout_value *whole = compile_ok("'$.item'", 1);
    struct fanout_value *field = compile_ok("'$.item.id'", 1);
    struct fanout_value *deep = compile_ok("'$.item.tags[1]'", 1);
    struct fanout_value *index = compile_ok("'$.index'", 1);
    struct fanout_value *doc_path = compile_ok("'$.new.name'", 1);

    assert_eval(whole, &scope, "{'id': 'u7', 'tags': ['a', 'b']}");
    assert_ptr_equal(fanout_value_lookup(whole, &scope), item);
    assert_eval(field, &scope, "'u7'");
    assert_eval(deep, &scope, "'b'");
    assert_eval(index, &scope, "2");
    assert_eval(doc_path, &scope, "'Ada'");

    json_decref(item);
    item = json_string("u2");
    scope.item = item;
    scope.index = 0;
    assert_eval(whole, &scope, "'u2'");
    assert_eval(index, &scope, "0");
    assert_eval(field, &scope, "null");

    fanout_value_free(whole);
    fanout_value_free(field);
    fanout_value_free(deep);
    fanout_value_free(index);
    fanout_value_free(doc_path);
    json_decref(item);
}

static void test_item_and_index_are_rejected_outside_for_each(void **state)
{
    (void)state;
    assert_rejected("$.item", 0, "'$.item' is only available inside for_each");
    assert_rejected("$.item.x", 0, "only available inside for_each");
    assert_rejected("$.item[0]", 0, "only available inside for_each");
    assert_rejected("$.index", 0,
                    "'$.index' is only available inside for_each");
    assert_rejected("{{item}}", 0, "only available inside for_each");
    assert_rejected("x {{ item.name }} y", 0, "only available inside for_each");
    assert_rejected("{{index}}", 0, "only available inside for_each");
    assert_rejected("{{$.index}}", 0, "only available inside for_each");
}

static void test_index_has_no_fields(void **state)
{
    (void)state;
    assert_rejected("$.index.x", 1, "'$.index' has no fields");
    assert_rejected("$.index[0]", 1, "'$.index' has no fields");
    assert_rejected("{{index.x}}", 1, "'$.index' has no fields");
}

static void test_invalid_paths_are_rejected_naming_the_path(void **state)
{
    static const struct {
        const char *path;
        const char *error;
    } cases[] = {
        {"$..a", "invalid path '$..a'"},
        {"$.", "invalid path '$.'"},
        {"$.a[", "invalid path '$.a['"},
        {"$.a[x]", "invalid path '$.a[x]'"},
        {"$x", "invalid path '$x'"},
        {"$.a.", "invalid path '$.a.'"},
        {"$.a..b", "invalid path '$.a..b'"},
        {"$.a[]", "invalid path '$.a[]'"},
        {"$.a[1", "invalid path '$.a[1'"},
        {"$.a[1]x", "invalid path '$.a[1]x'"},
        {"$.a[0].", "invalid path '$.a[0].'"},
        {"$.a[-1]", "invalid path '$.a[-1]'"},
        {"$.a[+1]", "invalid path '$.a[+1]'"},
        {"$.a[ 1]", "invalid path '$.a[ 1]'"},
        {"$[0]", "invalid path '$[0]'"},
        {"$ .a", "invalid path '$ .a'"},
        {"{{a..b}}", "invalid path 'a..b'"},
        {"{{a[x]}}", "invalid path 'a[x]'"},
    };

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(cases); i++) {
        assert_rejected(cases[i].path, 0, cases[i].error);
        assert_rejected(cases[i].path, 1, cases[i].error);
        n_invalid_cases++;
    }
}

/* Templates */

static void test_templates_insert_strings_as_they_are(void **state)
{
    assert_doc_eval(*state, "'Hi {{new.name}}!'", "'Hi Ada!'");
    assert_doc_eval(*state, "'{{new.list[1].x}}'", "'two'");
    assert_doc_eval(*state, "'{{new.name}}'", "'Ada'");
}

static void test_templates_insert_other_values_as_compact_json(void **state)
{
    assert_doc_eval(*state, "'n={{new.n}} f={{new.f}} t={{new.t}}'",
                    "'n=42 f=1.5 t=true'");
    assert_doc_eval(*state, "'o={{new.obj}}'",
                    "'o={\\'k\\':\\'v\\',\\'n\\':1}'");
    assert_doc_eval(*state, "'l={{new.ids}}'", "'l=[\\'u1\\',\\'u2\\']'");
}

static void test_templates_insert_missing_values_as_empty(void **state)
{
    assert_doc_eval(*state, "'[{{new.nope}}]'", "'[]'");
    assert_doc_eval(*state, "'{{nope.deeper}}'", "''");
    assert_doc_eval(*state, "'a{{new.list[5]}}b'", "'ab'");
}

static void test_templates_fill_every_placeholder(void **state)
{
    assert_doc_eval(*state,
                    "'{{new.name}}{{new.name}}-{{new.list[1].x}}/{{op}} on "
                    "{{table}}.'",
                    "'AdaAda-two/insert on Messages.'");
}

static void test_templates_tolerate_spaces_and_dollar_prefix(void **state)
{
    assert_doc_eval(*state, "'{{ new.name }}'", "'Ada'");
    assert_doc_eval(*state, "'{{$.new.name}}'", "'Ada'");
    assert_doc_eval(*state, "'<{{ $.new.a }}>'", "'<{\\'b\\':7}>'");
}

static void test_templates_read_item_and_index_inside_for_each(void **state)
{
    json_t *item = load("{'name': 'Bo', 'n': 3}");
    struct fanout_scope scope = {.doc = *state, .item = item, .index = 4};
    struct fanout_value *v =
        compile_ok("'{{item.name}} #{{index}} of {{new.name}}: {{item}}'", 1);

    assert_eval(v, &scope, "'Bo #4 of Ada: {\\'name\\':\\'Bo\\',\\'n\\':3}'");
    fanout_value_free(v);
    json_decref(item);

    item = json_string("u2");
    scope.item = item;
    scope.index = 1;
    v = compile_ok("'{{item}}/{{ index }}'", 1);
    assert_eval(v, &scope, "'u2/1'");
    fanout_value_free(v);
    json_decref(item);
}

static void test_malformed_templates_are_rejected(void **state)
{
    (void)state;
    assert_rejected("Hi {{new.name", 0, "unterminated '{{'");
    assert_rejected("{{", 0, "unterminated '{{'");
    assert_rejected("{{a}} and {{b", 0, "unterminated '{{'");
    assert_rejected("{{}}", 0, "empty '{{}}'");
    assert_rejected("x{{  }}y", 0, "empty '{{}}'");
}

/* Literals, objects and arrays */

static void test_literals_evaluate_to_themselves(void **state)
{
    static const char *const literals[] = {
        "42",
        "-7",
        "1.5",
        "true",
        "false",
        "null",
        "'plain'",
        "''",
        "'costs 5 $'",
        "'a } b {'",
        "'{ {x} }'",
        "'}}{'",
        "'unread_total'",
        "'a.b[0]'",
    };

    for (size_t i = 0; i < HR_ARRAY_SIZE(literals); i++)
        assert_doc_eval(*state, literals[i], literals[i]);
}

static void test_objects_and_arrays_are_rebuilt_with_mixed_values(void **state)
{
    assert_doc_eval(
        *state,
        "{'user': '$.new.name', 'n': 3, 'title': 'Hi {{new.name}}',"
        " 'list': ['$.new.ids[0]', '{{new.n}}!', false, {'deep': '$.new.a.b'},"
        "          null, [1, '$.op']],"
        " 'missing': '$.new.nope', 'empty': {}, 'none': [], 'lit': 'x'}",
        "{'user': 'Ada', 'n': 3, 'title': 'Hi Ada',"
        " 'list': ['u1', '42!', false, {'deep': 7}, null, [1, 'insert']],"
        " 'missing': null, 'empty': {}, 'none': [], 'lit': 'x'}");
    assert_doc_eval(*state, "['$.id', '$.new.ids']", "['ev-1', ['u1', 'u2']]");
}

static void test_nested_errors_name_the_key_or_index(void **state)
{
    static const struct {
        const char *spec;
        const char *error;
    } cases[] = {
        {"{'a': {'b': '$..x'}}", "a: b: invalid path"},
        {"['ok', '$x']", "[1]: invalid path '$x'"},
        {"{'list': [1, {'t': 'Hi {{x'}]}", "list: [1]: t: unterminated"},
        {"{'user': '$.item'}", "user: '$.item' is only available"},
    };

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(cases); i++) {
        json_t *spec = load(cases[i].spec);
        char errstr[256] = "";
        struct fanout_value *v =
            fanout_value_compile(spec, 0, errstr, sizeof(errstr));

        if (v || !strstr(errstr, cases[i].error))
            print_error("%s: expected \"%s\", got \"%s\"\n", cases[i].spec,
                        cases[i].error, errstr);
        assert_null(v);
        assert_non_null(strstr(errstr, cases[i].error));
        json_decref(spec);
    }
}

static void test_compiled_value_outlives_its_spec_and_results(void **state)
{
    struct fanout_scope scope = {.doc = *state};
    json_t *spec = load("{'lit': {'k': [1, 2]}, 'p': '$.new.obj'}");
    char errstr[256] = "";
    struct fanout_value *v =
        fanout_value_compile(spec, 0, errstr, sizeof(errstr));
    json_t *first;

    assert_non_null(v);
    json_decref(spec);
    first = fanout_value_eval(v, &scope);
    assert_non_null(first);
    /* Changing one result touches neither the document nor the value. */
    json_object_set_new(json_object_get(first, "p"), "k", json_string("w"));
    json_object_set_new(first, "lit", json_null());
    json_decref(first);
    assert_eval(v, &scope, "{'lit': {'k': [1, 2]}, 'p': {'k': 'v', 'n': 1}}");
    fanout_value_free(v);
}

/* fanout_value_string, for Kafka keys */

static void test_string_form_gives_strings_as_they_are(void **state)
{
    struct fanout_scope scope = {.doc = *state};

    assert_string_form(&scope, "'$.new.name'", 0, "Ada");
    assert_string_form(&scope, "'$.new.list[1].x'", 0, "two");
    assert_string_form(&scope, "'conv-{{new.name}}'", 0, "conv-Ada");
    assert_string_form(&scope, "'fixed'", 0, "fixed");
}

static void test_string_form_gives_other_values_as_compact_json(void **state)
{
    struct fanout_scope scope = {.doc = *state, .index = 3};

    assert_string_form(&scope, "'$.new.n'", 0, "42");
    assert_string_form(&scope, "'$.new.f'", 0, "1.5");
    assert_string_form(&scope, "'$.new.t'", 0, "true");
    assert_string_form(&scope, "'$.new.obj'", 0, "{\"k\":\"v\",\"n\":1}");
    assert_string_form(&scope, "'$.new.ids'", 0, "[\"u1\",\"u2\"]");
    assert_string_form(&scope, "7", 0, "7");
    assert_string_form(&scope, "false", 0, "false");
    assert_string_form(&scope, "'$.index'", 1, "3");
    assert_string_form(&scope, "{'a': '$.new.a.b'}", 0, "{\"a\":7}");
    assert_string_form(&scope, "['$.op', 1]", 0, "[\"insert\",1]");
}

static void test_string_form_of_null_or_missing_is_empty(void **state)
{
    struct fanout_scope scope = {.doc = *state};

    assert_string_form(&scope, "'$.new.nope'", 0, "");
    assert_string_form(&scope, "'$.new.nul'", 0, "");
    assert_string_form(&scope, "null", 0, "");
    assert_string_form(&scope, "'$.item'", 1, ""); /* no item in scope */
}

static void test_string_form_reads_item_and_index(void **state)
{
    json_t *item = json_string("u2");
    struct fanout_scope scope = {.doc = *state, .item = item, .index = 12};

    assert_string_form(&scope, "'$.item'", 1, "u2");
    assert_string_form(&scope, "'$.index'", 1, "12");
    assert_string_form(&scope, "'{{item}}:{{index}}'", 1, "u2:12");
    json_decref(item);
}

static void test_string_form_of_the_whole_document_is_compact_json(void **state)
{
    const json_t *doc = *state;
    struct fanout_scope scope = {.doc = doc};
    struct fanout_value *v = compile_ok("'$'", 0);
    char *expected = json_dumps(doc, JSON_COMPACT);
    char buf[1024];
    size_t len = fanout_value_string(v, &scope, buf, sizeof(buf));

    assert_non_null(expected);
    assert_string_equal(buf, expected);
    assert_int_equal(len, strlen(expected));
    free(expected);
    fanout_value_free(v);
}

static void test_string_form_is_truncated_to_the_buffer(void **state)
{
    struct fanout_scope scope = {.doc = *state};
    struct fanout_value *path = compile_ok("'$.new.name'", 0);
    struct fanout_value *tmpl = compile_ok("'{{new.name}}-{{new.n}}'", 0);
    struct fanout_value *num = compile_ok("'$.new.n'", 0);
    char buf[8];

    memset(buf, 'X', sizeof(buf));
    assert_int_equal(fanout_value_string(path, &scope, buf, 3), 2);
    assert_string_equal(buf, "Ad");
    assert_int_equal(buf[3], 'X'); /* nothing written past size */

    assert_int_equal(fanout_value_string(path, &scope, buf, 4), 3);
    assert_string_equal(buf, "Ada");

    assert_int_equal(fanout_value_string(tmpl, &scope, buf, 5), 4);
    assert_string_equal(buf, "Ada-");

    assert_int_equal(fanout_value_string(num, &scope, buf, 2), 1);
    assert_string_equal(buf, "4");

    assert_int_equal(fanout_value_string(path, &scope, buf, 1), 0);
    assert_string_equal(buf, "");

    memset(buf, 'X', sizeof(buf));
    assert_int_equal(fanout_value_string(path, &scope, buf, 0), 0);
    assert_int_equal(buf[0], 'X');

    fanout_value_free(path);
    fanout_value_free(tmpl);
    fanout_value_free(num);
}

/* fanout_value_lookup, for for_each sources */

static void test_lookup_borrows_path_values_from_the_document(void **state)
{
    const json_t *doc = *state;
    json_t *item = json_string("u1");
    struct fanout_scope scope = {.doc = doc, .item = item, .index = 1};
    struct fanout_value *ids = compile_ok("'$.new.ids'", 0);
    struct fanout_value *tmpl = compile_ok("'{{new.ids}}'", 0);
    struct fanout_value *lit = compile_ok("['a']", 0);
    struct fanout_value *index = compile_ok("'$.index'", 1);
    struct fanout_value *it = compile_ok("'$.item'", 1);

    assert_ptr_equal(fanout_value_lookup(ids, &scope),
                     json_object_get(json_object_get(doc, "new"), "ids"));
    assert_null(fanout_value_lookup(tmpl, &scope));
    assert_null(fanout_value_lookup(lit, &scope));
    /* $.index has no JSON value in the document to borrow. */
    assert_null(fanout_value_lookup(index, &scope));
    assert_ptr_equal(fanout_value_lookup(it, &scope), item);

    fanout_value_free(ids);
    fanout_value_free(tmpl);
    fanout_value_free(lit);
    fanout_value_free(index);
    fanout_value_free(it);
    json_decref(item);
}

static void test_free_null_is_a_no_op(void **state)
{
    (void)state;
    fanout_value_free(NULL);
}

static int report_counts(void **state)
{
    (void)state;
    print_message("fanout_value: %zu invalid path cases\n", n_invalid_cases);
    return 0;
}

#define DOC_TEST(f) cmocka_unit_test_setup_teardown(f, doc_setup, doc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        DOC_TEST(test_dollar_alone_is_the_whole_document),
        DOC_TEST(test_paths_follow_object_keys),
        DOC_TEST(test_paths_follow_array_indices),
        DOC_TEST(test_missing_paths_evaluate_to_null),
        DOC_TEST(test_item_and_index_are_available_inside_for_each),
        DOC_TEST(test_item_and_index_are_rejected_outside_for_each),
        DOC_TEST(test_index_has_no_fields),
        DOC_TEST(test_invalid_paths_are_rejected_naming_the_path),
        DOC_TEST(test_templates_insert_strings_as_they_are),
        DOC_TEST(test_templates_insert_other_values_as_compact_json),
        DOC_TEST(test_templates_insert_missing_values_as_empty),
        DOC_TEST(test_templates_fill_every_placeholder),
        DOC_TEST(test_templates_tolerate_spaces_and_dollar_prefix),
        DOC_TEST(test_templates_read_item_and_index_inside_for_each),
        DOC_TEST(test_malformed_templates_are_rejected),
        DOC_TEST(test_literals_evaluate_to_themselves),
        DOC_TEST(test_objects_and_arrays_are_rebuilt_with_mixed_values),
        DOC_TEST(test_nested_errors_name_the_key_or_index),
        DOC_TEST(test_compiled_value_outlives_its_spec_and_results),
        DOC_TEST(test_string_form_gives_strings_as_they_are),
        DOC_TEST(test_string_form_gives_other_values_as_compact_json),
        DOC_TEST(test_string_form_of_null_or_missing_is_empty),
        DOC_TEST(test_string_form_reads_item_and_index),
        DOC_TEST(test_string_form_of_the_whole_document_is_compact_json),
        DOC_TEST(test_string_form_is_truncated_to_the_buffer),
        DOC_TEST(test_lookup_borrows_path_values_from_the_document),
        cmocka_unit_test(test_free_null_is_a_no_op),
    };

    return cmocka_run_group_tests_name("fanout_value", tests, NULL,
                                       report_counts);
}
