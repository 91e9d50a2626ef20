/*
 * Unit tests for fanout_rules: loading the "rules" of the --config file
 * (SPEC section 8) with every problem reported, naming the rule and the
 * field, and matching change documents by table, op, type, changed fields
 * and content pattern.
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
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "fanout_pattern.h"
#include "fanout_rules.h"
#include "fanout_value.h"
#include "hr_compat.h"
#include "hr_conf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* SPEC section 8's example, whose webhook "legacy" is defined. */
static const char *const spec_example =
    "{'rules': [{'name': 'new-message',"
    "  'match': {'table': ['Messages'], 'op': ['insert'],"
    "            'pattern': {'new': {'kind': ['text', {'prefix': 'image/'}]}},"
    "            'changed': []},"
    "  'emit': ["
    "    {'topic': 'herald.messages', 'type': 'message.created',"
    "     'key': '$.new.conversation_id',"
    "     'data': {'conversation_id': '$.new.conversation_id',"
    "              'message_id': '$.new.message_id',"
    "              'sender_id': '$.new.sender_id',"
    "              'recipient_ids': '$.new.recipient_ids',"
    "              'sent_at': '$.new.created_at', 'preview': '$.new.text'}},"
    "    {'topic': 'herald.push', 'type': 'push.requested',"
    "     'for_each': '$.new.recipient_ids', 'key': '$.item',"
    "     'data': {'user_id': '$.item', 'title': '{{new.sender_name}}',"
    "              'body': '{{new.text}}', 'badge': 'unread_total',"
    "              'thread_id': '$.new.conversation_id'}},"
    "    {'webhook': 'legacy', 'body': '$'}]}],"
    " 'webhooks': {'legacy': {"
    "   'url': 'https://legacy.internal/api/v1/triggers/message',"
    "   'method': 'POST', 'timeout_ms': 5000,"
    "   'auth': {'type': 'jwt', 'alg': 'HS256',"
    "            'secret_env': 'LEGACY_JWT_SECRET', 'iss': 'herald',"
    "            'aud': 'legacy-api', 'ttl_seconds': 300}}}}";

/* A change document the example rule matches. */
static const char *const spec_doc =
    "{'id': 'ddb-1', 'op': 'insert', 'table': 'Messages',"
    " 'keys': {'message_id': 'm1'},"
    " 'new': {'conversation_id': 'c1', 'message_id': 'm1', 'sender_id': 'u0',"
    "         'sender_name': 'Ada', 'recipient_ids': ['u1', 'u2'],"
    "         'created_at': '2025-11-22T00:00:00Z', 'text': 'hello',"
    "         'kind': 'text'},"
    " 'changed': [], 'ts_ms': 1763769600000,"
    " 'source': {'format': 'dynamodb'}}";

static size_t n_error_cases;

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

static void print_errors(const struct hr_conf *cfg)
{
    for (int i = 0; i < hr_conf_error_count(cfg); i++)
        print_error("  error %d: %s\n", i, hr_conf_error(cfg, i));
}

/* Whether some recorded error holds every one of the '|'-separated parts
 * of @want ("rules[0] 'r'.match.op|unknown op 'upsert'"). */
static bool has_error(const struct hr_conf *cfg, const char *want)
{
    for (int i = 0; i < hr_conf_error_count(cfg); i++) {
        const char *msg = hr_conf_error(cfg, i);
        const char *part = want;
        bool all = true;

        while (all && *part) {
            const char *bar = strchr(part, '|');
            size_t n = bar ? (size_t)(bar - part) : strlen(part);
            char needle[256];

            assert_true(n < sizeof(needle));
            memcpy(needle, part, n);
            needle[n] = '\0';
            all = strstr(msg, needle) != NULL;
            part += n + (bar ? 1 : 0);
        }
        if (all)
            return true;
    }
    return false;
}

/*
 * Load @config_text into a fresh configuration and check that exactly the
 * errors in @want (NULL-terminated) are reported, and that the return
 * value counts them.
 */
static void assert_load_errors(const char *config_text, const char *const *want)
{
    json_t *config = load(config_text);
    struct hr_conf *cfg = hr_conf_new();
    struct fanout_rules rules;
    int n_want = 0, ret;
    bool ok = true;

    ret = fanout_rules_load(&rules, config, cfg);
    for (; want[n_want]; n_want++) {
        if (!has_error(cfg, want[n_want])) {
            print_error("missing error \"%s\"\n", want[n_want]);
            ok = false;
        }
    }
    if (!ok || hr_conf_error_count(cfg) != n_want || ret != n_want) {
        print_error("config %s: want %d errors, got %d (returned %d):\n",
                    config_text, n_want, hr_conf_error_count(cfg), ret);
        print_errors(cfg);
        ok = false;
    }
    fanout_rules_release(&rules);
    hr_conf_free(cfg);
    json_decref(config);
    n_error_cases++;
    assert_true(ok);
}

#define ERRORS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A config with one rule named "r" whose emit is @emit_text. */
static void assert_emit_errors(const char *emit_text, const char *const *want)
{
    char config[2048];
    int n = snprintf(config, sizeof(config),
                     "{'rules': [{'name': 'r', 'emit': [%s]}],"
                     " 'webhooks': {'legacy': {'url': 'http://x'}}}",
                     emit_text);

    assert_true(n > 0 && (size_t)n < sizeof(config));
    assert_load_errors(config, want);
}

/* A config with one rule named "r" whose match is @match_text. */
static void assert_match_errors(const char *match_text, const char *const *want)
{
    char config[2048];
    int n = snprintf(config, sizeof(config),
                     "{'rules': [{'name': 'r', 'match': %s,"
                     " 'emit': [{'topic': 't'}]}]}",
                     match_text);

    assert_true(n > 0 && (size_t)n < sizeof(config));
    assert_load_errors(config, want);
}

/* Loading */

static void test_spec_example_loads_without_errors(void **state)
{
    json_t *config = load(spec_example);
    struct hr_conf *cfg = hr_conf_new();
    struct fanout_rules rules;
    const struct fanout_rule *r;
    int ret;

    (void)state;
    ret = fanout_rules_load(&rules, config, cfg);
    if (ret)
        print_errors(cfg);
    assert_int_equal(ret, 0);
    assert_int_equal(hr_conf_error_count(cfg), 0);

    assert_int_equal(rules.nwebhooks, 1);
    assert_string_equal(rules.webhooks[0], "legacy");
    assert_int_equal(rules.n, 1);
    r = &rules.rules[0];
    assert_string_equal(r->name, "new-message");
    assert_int_equal(r->ntables, 1);
    assert_string_equal(r->tables[0], "Messages");
    assert_int_equal(r->nops, 1);
    assert_string_equal(r->ops[0], "insert");
    assert_int_equal(r->ntypes, 0);
    assert_int_equal(r->nchanged, 0);
    assert_non_null(r->pattern);

    assert_int_equal(r->ntargets, 3);
    assert_int_equal(r->targets[0].webhook, -1);
    assert_string_equal(r->targets[0].topic, "herald.messages");
    assert_string_equal(r->targets[0].type, "message.created");
    assert_non_null(r->targets[0].key);
    assert_non_null(r->targets[0].data);
    assert_null(r->targets[0].for_each);

    assert_int_equal(r->targets[1].webhook, -1);
    assert_string_equal(r->targets[1].topic, "herald.push");
    assert_string_equal(r->targets[1].type, "push.requested");
    assert_non_null(r->targets[1].for_each);
    assert_non_null(r->targets[1].key);

    assert_int_equal(r->targets[2].webhook, 0);
    assert_null(r->targets[2].topic);
    assert_null(r->targets[2].type);
    assert_null(r->targets[2].key);
    assert_non_null(r->targets[2].data);

    fanout_rules_release(&rules);
    hr_conf_free(cfg);
    json_decref(config);
}

static void test_spec_example_emits_what_the_spec_shows(void **state)
{
    json_t *config = load(spec_example);
    json_t *doc = load(spec_doc);
    struct hr_conf *cfg = hr_conf_new();
    struct fanout_rules rules;
    const struct fanout_rule *r;
    struct fanout_scope scope = {.doc = doc};
    const json_t *list, *item;
    json_t *got, *want;
    char key[64];
    size_t i;

    (void)state;
    assert_int_equal(fanout_rules_load(&rules, config, cfg), 0);
    r = &rules.rules[0];
    assert_true(fanout_rule_matches(r, doc));

    fanout_value_string(r->targets[0].key, &scope, key, sizeof(key));
    assert_string_equal(key, "c1");
    got = fanout_value_eval(r->targets[0].data, &scope);
    want = load("{'conversation_id': 'c1', 'message_id': 'm1',"
                " 'sender_id': 'u0', 'recipient_ids': ['u1', 'u2'],"
                " 'sent_at': '2025-11-22T00:00:00Z', 'preview': 'hello'}");
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);

    list = fanout_value_lookup(r->targets[1].for_each, &scope);
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 2);
    json_array_foreach(list, i, item)
    {
        char expected[128];

        scope.item = item;
        scope.index = i;
        fanout_value_string(r->targets[1].key, &scope, key, sizeof(key));
        assert_string_equal(key, json_string_value(item));
        got = fanout_value_eval(r->targets[1].data, &scope);
        snprintf(expected, sizeof(expected),
                 "{'user_id': '%s', 'title': 'Ada', 'body': 'hello',"
                 " 'badge': 'unread_total', 'thread_id': 'c1'}",
                 json_string_value(item));
        want = load(expected);
        assert_true(json_equal(got, want));
        json_decref(got);
        json_decref(want);
    }

    scope.item = NULL;
    scope.index = 0;
    got = fanout_value_eval(r->targets[2].data, &scope);
    assert_true(json_equal(got, doc));
    json_decref(got);

    fanout_rules_release(&rules);
    hr_conf_free(cfg);
    json_decref(config);
    json_decref(doc);
}

static void test_data_and_body_default_to_the_whole_document(void **state)
{
    json_t *config = load("{'rules': [{'name': 'r', 'emit': ["
                          "  {'topic': 't'}, {'webhook': 'w'}]}],"
                          " 'webhooks': {'v': {}, 'w': {}}}");
    json_t *doc = load(spec_doc);
    struct hr_conf *cfg = hr_conf_new();
    struct fanout_rules rules;
    struct fanout_scope scope = {.doc = doc};
    const struct fanout_rule *r;

    (void)state;
    assert_int_equal(fanout_rules_load(&rules, config, cfg), 0);
    r = &rules.rules[0];
    assert_int_equal(r->targets[1].webhook, 1); /* "w" is the second */
    for (size_t t = 0; t < 2; t++) {
        json_t *got = fanout_value_eval(r->targets[t].data, &scope);

        assert_true(json_equal(got, doc));
        json_decref(got);
        assert_null(r->targets[t].key);
        assert_null(r->targets[t].for_each);
    }
    fanout_rules_release(&rules);
    hr_conf_free(cfg);
    json_decref(config);
    json_decref(doc);
}

static void test_missing_or_empty_rules_are_reported(void **state)
{
    (void)state;
    assert_load_errors("{}", ERRORS("rules: |non-empty \"rules\" array"));
    assert_load_errors("{'rules': []}", ERRORS("rules: |non-empty"));
    assert_load_errors("{'rules': {'name': 'r'}}", ERRORS("rules: |non-empty"));
    assert_load_errors("[]", ERRORS("rules: |non-empty"));
}

static void test_webhooks_must_be_an_object(void **state)
{
    (void)state;
    assert_load_errors("{'rules': [{'name': 'r', 'emit': [{'topic': 't'}]}],"
                       " 'webhooks': ['legacy']}",
                       ERRORS("webhooks: must be an object"));
}

static void test_non_object_rules_are_reported(void **state)
{
    (void)state;
    assert_load_errors("{'rules': [5]}", ERRORS("rules[0]: must be an object"));
    assert_load_errors(
        "{'rules': [{'name': 'a', 'emit': [{'topic': 't'}]}, 'b']}",
        ERRORS("rules[1]: must be an object"));
}

static void test_named_rules_after_a_non_object_rule_load(void **state)
{
    (void)state;
    /* The duplicate-name check must skip rules that have no name. */
    assert_load_errors("{'rules': [5, {'name': 'a', 'emit': [{'topic': 't'}]},"
                       " {'name': 'b', 'emit': [{'topic': 't'}]}]}",
                       ERRORS("rules[0]: must be an object"));
    assert_load_errors("{'rules': [[], {'name': 'a', 'emit': [{'topic': 't'}]},"
                       " {'name': 'a', 'emit': [{'topic': 't'}]}]}",
                       ERRORS("rules[0]: must be an object",
                              "rules[2] 'a'.name: duplicate rule name"));
}

static void test_missing_or_empty_names_are_reported(void **state)
{
    (void)state;
    assert_load_errors("{'rules': [{'emit': [{'topic': 't'}]}]}",
                       ERRORS("rules[0].name: must be a non-empty string"));
    assert_load_errors("{'rules': [{'name': '', 'emit': [{'topic': 't'}]}]}",
                       ERRORS("rules[0].name: must be a non-empty string"));
    assert_load_errors("{'rules': [{'name': 7, 'emit': [{'topic': 't'}]}]}",
                       ERRORS("rules[0].name: must be a non-empty string"));
}

static void test_duplicate_names_are_reported_once_per_rule(void **state)
{
    (void)state;
    assert_load_errors("{'rules': [{'name': 'a', 'emit': [{'topic': 't'}]},"
                       "           {'name': 'b', 'emit': [{'topic': 't'}]},"
                       "           {'name': 'a', 'emit': [{'topic': 't'}]}]}",
                       ERRORS("rules[2] 'a'.name: duplicate rule name"));
    assert_load_errors("{'rules': [{'name': 'a', 'emit': [{'topic': 't'}]},"
                       "           {'name': 'a', 'emit': [{'topic': 't'}]},"
                       "           {'name': 'a', 'emit': [{'topic': 't'}]}]}",
                       ERRORS("rules[1] 'a'.name: duplicate rule name",
                              "rules[2] 'a'.name: duplicate rule name"));
}

static void test_match_must_be_an_object(void **state)
{
    (void)state;
    assert_match_errors("['Messages']",
                        ERRORS("rules[0] 'r'.match: must be an object"));
}

static void test_unknown_match_fields_are_reported(void **state)
{
    (void)state;
    assert_match_errors("{'tabel': ['Messages']}",
                        ERRORS("rules[0] 'r'.match.tabel: unknown field"));
    assert_match_errors("{'table': 'Messages', 'ops': ['insert'], 'where': {}}",
                        ERRORS("rules[0] 'r'.match.ops: unknown field",
                               "rules[0] 'r'.match.where: unknown field"));
}

static void test_unknown_ops_are_reported(void **state)
{
    (void)state;
    assert_match_errors(
        "{'op': ['insert', 'upsert']}",
        ERRORS("rules[0] 'r'.match.op: unknown op 'upsert'|insert, modify, "
               "remove, snapshot"));
    assert_match_errors("{'op': 'INSERT'}",
                        ERRORS("rules[0] 'r'.match.op: unknown op 'INSERT'"));
    assert_match_errors("{'op': ['c', 'd']}",
                        ERRORS("rules[0] 'r'.match.op: unknown op 'c'",
                               "rules[0] 'r'.match.op: unknown op 'd'"));
}

static void test_match_lists_must_hold_strings(void **state)
{
    (void)state;
    assert_match_errors(
        "{'table': [1]}",
        ERRORS("rules[0] 'r'.match.table: [0] must be a non-empty string"));
    assert_match_errors(
        "{'table': ['Messages', '']}",
        ERRORS("rules[0] 'r'.match.table: [1] must be a non-empty string"));
    assert_match_errors("{'table': 5}",
                        ERRORS("rules[0] 'r'.match.table: must be a string or "
                               "an array of strings"));
    assert_match_errors("{'table': ''}",
                        ERRORS("rules[0] 'r'.match.table: must be a non-empty "
                               "string"));
    assert_match_errors(
        "{'type': {'x': 1}}",
        ERRORS("rules[0] 'r'.match.type: must be a string or an array"));
    assert_match_errors(
        "{'changed': [null]}",
        ERRORS("rules[0] 'r'.match.changed: [0] must be a non-empty string"));
    assert_match_errors(
        "{'op': [['insert']]}",
        ERRORS("rules[0] 'r'.match.op: [0] must be a non-empty string"));
}

static void test_bad_patterns_report_the_compiler_error(void **state)
{
    static const char *const patterns[] = {
        "{'new': {'kind': [{'prefx': 'image/'}]}}",
        "{'new': {'size': [{'numeric': ['>']}]}}",
        "['text']",
        "{'new': {'kind': 'text'}}",
        "{'a.b': [1], 'a': {'b': [2]}}",
        "{'n': [{'numeric': ['=', 1E-325]}]}",
        "{'a': [{'anything-but': {'prefix': {'x': 1}}}]}",
    };

    (void)state;
    for (size_t i = 0; i < HR_ARRAY_SIZE(patterns); i++) {
        json_t *pattern = load(patterns[i]);
        char errstr[256] = "", want[400], match[512];
        struct fanout_pattern *p =
            fanout_pattern_compile(pattern, errstr, sizeof(errstr));

        assert_null(p);
        assert_true(errstr[0] != '\0');
        json_decref(pattern);
        snprintf(want, sizeof(want), "rules[0] 'r'.match.pattern: %s", errstr);
        snprintf(match, sizeof(match), "{'pattern': %s}", patterns[i]);
        assert_match_errors(match, ERRORS(want));
    }
    assert_match_errors(
        "{'pattern': {'new': {'kind': [{'prefx': 'image/'}]}}}",
        ERRORS("rules[0] 'r'.match.pattern: new.kind[0]: unknown operator "
               "'prefx'"));
    assert_match_errors(
        "{'pattern': {'new.a': [1], 'new': {'a': [2]}}}",
        ERRORS("rules[0] 'r'.match.pattern: new.a: field 'new.a' is given "
               "twice"));
    assert_match_errors(
        "{'pattern': {'new': {'n': [{'numeric': ['>', 1E-325]}]}}}",
        ERRORS("rules[0] 'r'.match.pattern: new.n[0]: number reads as 0.0: "
               "write zero as 0"));
}

/*
 * A pattern with a key given twice ({"x": ["y"], "x": ["z"]}) is refused,
 * where event-ruler keeps the last one. The refusal happens when the
 * --config file is parsed (hr_conf rejects duplicate keys anywhere in it),
 * before any rule is loaded, so the message names the file, the line and
 * the key; --check-config prints it.
 */
static void
test_duplicate_pattern_keys_are_refused_with_line_and_key(void **state)
{
    static const char text[] =
        "{\"rules\": [\n"
        "  {\"name\": \"first\", \"emit\": [{\"topic\": \"t\"}]},\n"
        "  {\"name\": \"dupe\", \"match\": {\"pattern\":\n"
        "    {\"kind\": [\"y\"], \"kind\": [\"z\"]}},\n"
        "   \"emit\": [{\"topic\": \"t\"}]}]}\n";
    char path[] = "/tmp/test_fanout_rules_XXXXXX";
    struct hr_conf *cfg = hr_conf_new();
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, sizeof(text) - 1),
                     (ssize_t)(sizeof(text) - 1));
    assert_int_equal(close(fd), 0);
    assert_int_equal(hr_conf_load(cfg, path), 1);
    /* the line, the key, where it is and the rule's name */
    if (!has_error(cfg, "config file '/tmp/test_fanout_rules_|line 4|"
                        "key 'kind' given twice in rules[1].match.pattern "
                        "('dupe')"))
        print_errors(cfg);
    assert_true(has_error(cfg, "config file '/tmp/test_fanout_rules_|line 4|"
                               "key 'kind' given twice in "
                               "rules[1].match.pattern ('dupe')"));
    assert_null(hr_conf_json(cfg));
    assert_int_equal(unlink(path), 0);
    hr_conf_free(cfg);
}

static void test_emit_must_be_a_non_empty_array(void **state)
{
    (void)state;
    assert_load_errors("{'rules': [{'name': 'r'}]}",
                       ERRORS("rules[0] 'r'.emit: must be a non-empty array"));
    assert_load_errors("{'rules': [{'name': 'r', 'emit': []}]}",
                       ERRORS("rules[0] 'r'.emit: must be a non-empty array"));
    assert_load_errors("{'rules': [{'name': 'r', 'emit': {'topic': 't'}}]}",
                       ERRORS("rules[0] 'r'.emit: must be a non-empty array"));
}

static void test_targets_need_exactly_one_of_topic_or_webhook(void **state)
{
    (void)state;
    assert_emit_errors("{'topic': 't', 'webhook': 'legacy'}",
                       ERRORS("rules[0] 'r'.emit[0]: needs exactly one of "
                              "'topic' or 'webhook'"));
    assert_emit_errors("{'topic': 't'}, {'type': 'x.y', 'data': '$'}",
                       ERRORS("rules[0] 'r'.emit[1]: needs exactly one of "
                              "'topic' or 'webhook'"));
    assert_emit_errors("'herald.push'",
                       ERRORS("rules[0] 'r'.emit[0]: must be an object"));
    assert_emit_errors(
        "{'topic': ''}",
        ERRORS("rules[0] 'r'.emit[0].topic: must be a non-empty string"));
}

static void test_unknown_webhooks_are_reported(void **state)
{
    (void)state;
    assert_emit_errors(
        "{'webhook': 'legasy'}",
        ERRORS("rules[0] 'r'.emit[0].webhook: no webhook named 'legasy'"));
    assert_emit_errors(
        "{'webhook': 3}",
        ERRORS("rules[0] 'r'.emit[0].webhook: no webhook named"));
    assert_load_errors(
        "{'rules': [{'name': 'r', 'emit': [{'webhook': 'legacy'}]}]}",
        ERRORS("rules[0] 'r'.emit[0].webhook: no webhook named 'legacy'"));
}

static void test_body_on_a_topic_target_is_reported(void **state)
{
    (void)state;
    assert_emit_errors("{'topic': 't', 'body': '$'}",
                       ERRORS("rules[0] 'r'.emit[0].body: only webhooks have "
                              "a body"));
}

static void test_for_each_must_be_a_path(void **state)
{
    (void)state;
    assert_emit_errors("{'topic': 't', 'for_each': 'new.recipient_ids'}",
                       ERRORS("rules[0] 'r'.emit[0].for_each: must be a path"));
    assert_emit_errors("{'topic': 't', 'for_each': ['$.new.a']}",
                       ERRORS("rules[0] 'r'.emit[0].for_each: must be a path"));
    assert_emit_errors(
        "{'topic': 't', 'for_each': '$..list'}",
        ERRORS("rules[0] 'r'.emit[0].for_each: invalid path '$..list'"));
    assert_emit_errors(
        "{'topic': 't', 'for_each': '$.item.list'}",
        ERRORS("rules[0] 'r'.emit[0].for_each: |only available inside "
               "for_each"));
}

static void test_item_outside_for_each_is_reported(void **state)
{
    (void)state;
    assert_emit_errors(
        "{'topic': 't', 'key': '$.item'}",
        ERRORS("rules[0] 'r'.emit[0].key: '$.item' is only available inside "
               "for_each"));
    assert_emit_errors(
        "{'topic': 't', 'data': {'user_id': '$.item.id'}}",
        ERRORS("rules[0] 'r'.emit[0].data: user_id: '$.item.id' is only "
               "available"));
    assert_emit_errors(
        "{'webhook': 'legacy', 'body': {'n': '$.index'}}",
        ERRORS("rules[0] 'r'.emit[0].body: n: '$.index' is only available"));
}

static void test_bad_values_are_reported(void **state)
{
    (void)state;
    assert_emit_errors(
        "{'topic': 't', 'data': {'title': 'Hi {{new.name'}}",
        ERRORS("rules[0] 'r'.emit[0].data: title: unterminated '{{'"));
    assert_emit_errors(
        "{'topic': 't', 'key': '$..id'}",
        ERRORS("rules[0] 'r'.emit[0].key: invalid path '$..id'"));
    assert_emit_errors("{'webhook': 'legacy', 'body': '$x'}",
                       ERRORS("rules[0] 'r'.emit[0].body: invalid path '$x'"));
    assert_emit_errors(
        "{'topic': 't', 'type': ''}",
        ERRORS("rules[0] 'r'.emit[0].type: must be a non-empty string"));
}

static void test_every_error_in_one_config_is_reported(void **state)
{
    (void)state;
    assert_load_errors(
        "{'rules': ["
        "  {'name': 'a', 'match': {'tabel': 'X', 'op': ['upsert'],"
        "                          'pattern': {'new': {'k': [{'prefx': "
        "'i'}]}}},"
        "   'emit': [{'topic': 't', 'key': '$.item', 'body': '$'},"
        "            {'webhook': 'nope'},"
        "            {'topic': 't', 'for_each': 'new.ids',"
        "             'data': {'t': '{{x'}}]},"
        "  7,"
        "  {'emit': [{'topic': 't', 'webhook': 'legacy'}]},"
        "  {'name': 'a', 'match': {'table': [1]}, 'emit': []}],"
        " 'webhooks': {'legacy': {}}}",
        ERRORS("rules[0] 'a'.match.tabel: unknown field",
               "rules[0] 'a'.match.op: unknown op 'upsert'",
               "rules[0] 'a'.match.pattern: new.k[0]: unknown operator",
               "rules[0] 'a'.emit[0].body: only webhooks",
               "rules[0] 'a'.emit[0].key: '$.item' is only available",
               "rules[0] 'a'.emit[1].webhook: no webhook named 'nope'",
               "rules[0] 'a'.emit[2].for_each: must be a path",
               "rules[0] 'a'.emit[2].data: t: unterminated '{{'",
               "rules[1]: must be an object", "rules[2].name: must be",
               "rules[2].emit[0]: needs exactly one",
               "rules[3] 'a'.name: duplicate rule name",
               "rules[3] 'a'.match.table: [0] must be a non-empty string",
               "rules[3] 'a'.emit: must be a non-empty array"));
}

static void test_release_leaves_rules_empty_and_repeatable(void **state)
{
    json_t *config = load(spec_example);
    struct hr_conf *cfg = hr_conf_new();
    struct fanout_rules rules;

    (void)state;
    assert_int_equal(fanout_rules_load(&rules, config, cfg), 0);
    fanout_rules_release(&rules);
    assert_int_equal(rules.n, 0);
    assert_null(rules.rules);
    assert_int_equal(rules.nwebhooks, 0);
    fanout_rules_release(&rules);
    hr_conf_free(cfg);
    json_decref(config);
}

/* Matching */

struct matcher {
    json_t *config;
    struct hr_conf *cfg;
    struct fanout_rules rules;
};

/* Load one rule "r" with @match_text as its match block (NULL: none). */
static void matcher_load(struct matcher *m, const char *match_text)
{
    char config[2048];
    int n;

    if (match_text)
        n = snprintf(config, sizeof(config),
                     "{'rules': [{'name': 'r', 'match': %s,"
                     " 'emit': [{'topic': 't'}]}]}",
                     match_text);
    else
        n = snprintf(config, sizeof(config),
                     "{'rules': [{'name': 'r', 'emit': [{'topic': 't'}]}]}");
    assert_true(n > 0 && (size_t)n < sizeof(config));
    m->config = load(config);
    m->cfg = hr_conf_new();
    if (fanout_rules_load(&m->rules, m->config, m->cfg))
        print_errors(m->cfg);
    assert_int_equal(hr_conf_error_count(m->cfg), 0);
}

static void matcher_release(struct matcher *m)
{
    fanout_rules_release(&m->rules);
    hr_conf_free(m->cfg);
    json_decref(m->config);
}

static bool matches(const struct matcher *m, const char *doc_text)
{
    json_t *doc = load(doc_text);
    bool ok = fanout_rule_matches(&m->rules.rules[0], doc);

    json_decref(doc);
    return ok;
}

static void test_rule_without_match_matches_everything(void **state)
{
    struct matcher m, empty;

    (void)state;
    matcher_load(&m, NULL);
    matcher_load(&empty, "{}");
    assert_true(matches(&m, "{}"));
    assert_true(matches(&m, spec_doc));
    assert_true(matches(&m, "{'op': 'remove', 'table': 'Users'}"));
    assert_true(matches(&empty, "{}"));
    assert_true(matches(&empty, spec_doc));
    matcher_release(&m);
    matcher_release(&empty);
}

static void test_table_list_matches_any_listed_table(void **state)
{
    struct matcher m, one;

    (void)state;
    matcher_load(&m, "{'table': ['Messages', 'Threads']}");
    matcher_load(&one, "{'table': 'Messages'}");
    assert_true(matches(&m, "{'table': 'Messages'}"));
    assert_true(matches(&m, "{'table': 'Threads'}"));
    assert_false(matches(&m, "{'table': 'Users'}"));
    assert_false(matches(&m, "{'table': 'messages'}"));
    assert_false(matches(&m, "{}"));
    assert_false(matches(&m, "{'table': ['Messages']}"));
    assert_true(matches(&one, "{'table': 'Messages'}"));
    assert_false(matches(&one, "{'table': 'Threads'}"));
    matcher_release(&m);
    matcher_release(&one);
}

static void test_op_list_matches_any_listed_op(void **state)
{
    struct matcher m;

    (void)state;
    matcher_load(&m, "{'op': ['insert', 'snapshot']}");
    assert_true(matches(&m, "{'op': 'insert'}"));
    assert_true(matches(&m, "{'op': 'snapshot'}"));
    assert_false(matches(&m, "{'op': 'modify'}"));
    assert_false(matches(&m, "{'op': 'remove'}"));
    assert_false(matches(&m, "{}"));
    matcher_release(&m);
}

static void test_type_matches_cloudevents_by_type(void **state)
{
    struct matcher m;

    (void)state;
    matcher_load(&m, "{'type': ['message.created', 'conversation.read']}");
    assert_true(matches(&m, "{'type': 'message.created',"
                            " 'source': {'format': 'cloudevents'}}"));
    assert_true(matches(&m, "{'type': 'conversation.read'}"));
    assert_false(matches(&m, "{'type': 'message.deleted'}"));
    assert_false(matches(&m, "{'table': 'Messages', 'op': 'insert'}"));
    matcher_release(&m);
}

static void test_changed_needs_every_listed_field_changed(void **state)
{
    struct matcher m, none;

    (void)state;
    matcher_load(&m, "{'changed': ['text', 'title']}");
    matcher_load(&none, "{'changed': []}");
    assert_true(matches(&m, "{'changed': ['title', 'x', 'text']}"));
    assert_true(matches(&m, "{'changed': ['text', 'title']}"));
    assert_false(matches(&m, "{'changed': ['text']}"));
    assert_false(matches(&m, "{'changed': ['title']}"));
    assert_false(matches(&m, "{'changed': []}"));
    assert_false(matches(&m, "{}"));
    assert_false(matches(&m, "{'changed': 'text title'}"));
    assert_true(matches(&none, "{}"));
    assert_true(matches(&none, "{'changed': ['x']}"));
    matcher_release(&m);
    matcher_release(&none);
}

static void test_pattern_combines_with_the_other_conditions(void **state)
{
    struct matcher m;

    (void)state;
    matcher_load(&m, "{'table': ['Messages'], 'op': ['insert', 'modify'],"
                     " 'pattern': {'new': {'kind': ['text',"
                     "                             {'prefix': 'image/'}]}}}");
    assert_true(matches(&m, "{'table': 'Messages', 'op': 'insert',"
                            " 'new': {'kind': 'text'}}"));
    assert_true(matches(&m, "{'table': 'Messages', 'op': 'modify',"
                            " 'new': {'kind': 'image/png'}}"));
    assert_false(matches(&m, "{'table': 'Messages', 'op': 'insert',"
                             " 'new': {'kind': 'video'}}"));
    assert_false(matches(&m, "{'table': 'Messages', 'op': 'insert'}"));
    assert_false(matches(&m, "{'table': 'Threads', 'op': 'insert',"
                             " 'new': {'kind': 'text'}}"));
    assert_false(matches(&m, "{'table': 'Messages', 'op': 'remove',"
                             " 'new': {'kind': 'text'}}"));
    matcher_release(&m);
}

static void test_all_conditions_must_hold(void **state)
{
    struct matcher m;
    const char *base = "{'table': 'Messages', 'op': 'modify', 'type': 'x.y',"
                       " 'changed': ['text'], 'new': {'n': 5}}";

    (void)state;
    matcher_load(&m, "{'table': 'Messages', 'op': 'modify', 'type': 'x.y',"
                     " 'changed': ['text'],"
                     " 'pattern': {'new': {'n': [{'numeric': ['>', 1]}]}}}");
    assert_true(matches(&m, base));
    assert_false(matches(&m, "{'table': 'Other', 'op': 'modify', 'type': "
                             "'x.y', 'changed': ['text'], 'new': {'n': 5}}"));
    assert_false(matches(&m, "{'table': 'Messages', 'op': 'insert', 'type': "
                             "'x.y', 'changed': ['text'], 'new': {'n': 5}}"));
    assert_false(matches(&m, "{'table': 'Messages', 'op': 'modify', 'type': "
                             "'x.z', 'changed': ['text'], 'new': {'n': 5}}"));
    assert_false(matches(&m, "{'table': 'Messages', 'op': 'modify', 'type': "
                             "'x.y', 'changed': ['n'], 'new': {'n': 5}}"));
    assert_false(matches(&m, "{'table': 'Messages', 'op': 'modify', 'type': "
                             "'x.y', 'changed': ['text'], 'new': {'n': 0}}"));
    matcher_release(&m);
}

static void test_spec_example_rule_matches_its_documents(void **state)
{
    json_t *config = load(spec_example);
    struct hr_conf *cfg = hr_conf_new();
    struct fanout_rules rules;
    const struct fanout_rule *r;
    json_t *doc = load(spec_doc);

    (void)state;
    assert_int_equal(fanout_rules_load(&rules, config, cfg), 0);
    r = &rules.rules[0];
    assert_true(fanout_rule_matches(r, doc));
    json_object_set_new(json_object_get(doc, "new"), "kind",
                        json_string("image/jpeg"));
    assert_true(fanout_rule_matches(r, doc));
    json_object_set_new(json_object_get(doc, "new"), "kind",
                        json_string("audio"));
    assert_false(fanout_rule_matches(r, doc));
    json_object_set_new(json_object_get(doc, "new"), "kind",
                        json_string("text"));
    json_object_set_new(doc, "op", json_string("modify"));
    assert_false(fanout_rule_matches(r, doc));

    json_decref(doc);
    fanout_rules_release(&rules);
    hr_conf_free(cfg);
    json_decref(config);
}

static int report_counts(void **state)
{
    (void)state;
    print_message("fanout_rules: %zu configs checked for errors\n",
                  n_error_cases);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_example_loads_without_errors),
        cmocka_unit_test(test_spec_example_emits_what_the_spec_shows),
        cmocka_unit_test(test_data_and_body_default_to_the_whole_document),
        cmocka_unit_test(test_missing_or_empty_rules_are_reported),
        cmocka_unit_test(test_webhooks_must_be_an_object),
        cmocka_unit_test(test_non_object_rules_are_reported),
        cmocka_unit_test(test_named_rules_after_a_non_object_rule_load),
        cmocka_unit_test(test_missing_or_empty_names_are_reported),
        cmocka_unit_test(test_duplicate_names_are_reported_once_per_rule),
        cmocka_unit_test(test_match_must_be_an_object),
        cmocka_unit_test(test_unknown_match_fields_are_reported),
        cmocka_unit_test(test_unknown_ops_are_reported),
        cmocka_unit_test(test_match_lists_must_hold_strings),
        cmocka_unit_test(test_bad_patterns_report_the_compiler_error),
        cmocka_unit_test(
            test_duplicate_pattern_keys_are_refused_with_line_and_key),
        cmocka_unit_test(test_emit_must_be_a_non_empty_array),
        cmocka_unit_test(test_targets_need_exactly_one_of_topic_or_webhook),
        cmocka_unit_test(test_unknown_webhooks_are_reported),
        cmocka_unit_test(test_body_on_a_topic_target_is_reported),
        cmocka_unit_test(test_for_each_must_be_a_path),
        cmocka_unit_test(test_item_outside_for_each_is_reported),
        cmocka_unit_test(test_bad_values_are_reported),
        cmocka_unit_test(test_every_error_in_one_config_is_reported),
        cmocka_unit_test(test_release_leaves_rules_empty_and_repeatable),
        cmocka_unit_test(test_rule_without_match_matches_everything),
        cmocka_unit_test(test_table_list_matches_any_listed_table),
        cmocka_unit_test(test_op_list_matches_any_listed_op),
        cmocka_unit_test(test_type_matches_cloudevents_by_type),
        cmocka_unit_test(test_changed_needs_every_listed_field_changed),
        cmocka_unit_test(test_pattern_combines_with_the_other_conditions),
        cmocka_unit_test(test_all_conditions_must_hold),
        cmocka_unit_test(test_spec_example_rule_matches_its_documents),
    };

    return cmocka_run_group_tests_name("fanout_rules", tests, NULL,
                                       report_counts);
}
