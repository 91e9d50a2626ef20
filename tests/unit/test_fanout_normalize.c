/*
 * Unit tests for fanout_normalize: DynamoDB Streams records and batches,
 * Debezium change events, CloudEvents, and malformed input.
 *
 * Most cases are fixture pairs in tests/fixtures/fanout/normalize/:
 *   <name>.json           the Kafka record value, as bytes
 *   <name>.headers.json   optional: the record's headers, {"name": "value"}
 *   <name>.expected.json  an array of change documents (FANOUT_NORM_OK),
 *                         {"skip": "<reason substring>"} or
 *                         {"error": "<reason substring>"}
 * Inputs that cannot live in a JSON file (invalid UTF-8, 1 MiB values,
 * deep nesting, mutations) are built here.
 */
#include <dirent.h>
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

#include "fanout_normalize.h"
#include "harness.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define FIXTURE_DIR "fanout/normalize"

/* A header getter over a JSON object of strings. */
static const char *json_header(void *opaque, const char *name, size_t *len)
{
    json_t *v = json_object_get(opaque, name);

    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/* Read fixture <name><suffix>; NULL if it does not exist. */
static char *fixture_read(const char *name, const char *suffix, size_t *len)
{
    char rel[512];

    snprintf(rel, sizeof(rel), FIXTURE_DIR "/%s%s", name, suffix);
    return hx_file_read(hx_fixture_path(rel), len);
}

/* Fixture <name><suffix> as JSON (any value); NULL if it does not exist.
 * A file that is not JSON fails the test when @must_parse. */
static json_t *
fixture_json_opt(const char *name, const char *suffix, bool must_parse)
{
    json_error_t jerr;
    size_t len;
    char *text = fixture_read(name, suffix, &len);
    json_t *json;

    if (!text)
        return NULL;
    json = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    free(text);
    if (!json && must_parse)
        fail_msg("%s%s: %s", name, suffix, jerr.text);
    return json;
}

static json_t *fixture_json(const char *name, const char *suffix)
{
    return fixture_json_opt(name, suffix, true);
}

/* Normalize @value with a sentinel already in the output array, so every
 * test also checks that documents are appended and that SKIP and ERROR
 * leave the array alone. Returns the documents produced (new reference). */
static json_t *normalize(const void *value,
                         size_t len,
                         json_t *headers,
                         enum fanout_norm_result *res,
                         char *errstr,
                         size_t errstr_size)
{
    json_t *docs = json_array(), *out;
    size_t i;

    assert_non_null(docs);
    assert_int_equal(json_array_append_new(docs, json_string("sentinel")), 0);
    errstr[0] = '\0';
    *res = fanout_normalize(value, len, headers ? json_header : NULL, headers,
                            docs, errstr, errstr_size);
    assert_true(json_array_size(docs) >= 1);
    assert_string_equal(json_string_value(json_array_get(docs, 0)), "sentinel");
    if (*res != FANOUT_NORM_OK)
        assert_int_equal(json_array_size(docs), 1);
    out = json_array();
    for (i = 1; i < json_array_size(docs); i++)
        json_array_append(out, json_array_get(docs, i));
    json_decref(docs);
    return out;
}

static const char *result_name(enum fanout_norm_result res)
{
    switch (res) {
    case FANOUT_NORM_OK:
        return "ok";
    case FANOUT_NORM_SKIP:
        return "skip";
    case FANOUT_NORM_ERROR:
        return "error";
    }
    return "?";
}

/* Run fixture @name and compare with its expectation. */
static void check_fixture(const char *name)
{
    enum fanout_norm_result res;
    json_t *headers, *expected, *got;
    char errstr[256];
    size_t len = 0;
    char *value;

    value = fixture_read(name, ".json", &len);
    if (!value)
        fail_msg("fixture %s.json missing", name);
    headers = fixture_json(name, ".headers.json");
    expected = fixture_json(name, ".expected.json");
    if (!expected)
        fail_msg("fixture %s.expected.json missing", name);

    got = normalize(value, len, headers, &res, errstr, sizeof(errstr));
    if (json_is_array(expected)) {
        if (res != FANOUT_NORM_OK)
            fail_msg("%s: %s (%s), want ok", name, result_name(res), errstr);
        if (!json_equal(got, expected)) {
            char *g = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
            char *w = json_dumps(expected, JSON_INDENT(2) | JSON_SORT_KEYS);

            print_error("%s: got\n%s\nwant\n%s\n", name, g, w);
            free(g);
            free(w);
            fail_msg("%s: documents differ", name);
        }
    } else {
        const char *want_skip =
            json_string_value(json_object_get(expected, "skip"));
        const char *want_err =
            json_string_value(json_object_get(expected, "error"));
        enum fanout_norm_result want =
            want_skip ? FANOUT_NORM_SKIP : FANOUT_NORM_ERROR;
        const char *reason = want_skip ? want_skip : want_err;

        if (!reason)
            fail_msg("%s.expected.json: want an array, skip or error", name);
        if (res != want)
            fail_msg("%s: %s (%s), want %s", name, result_name(res), errstr,
                     result_name(want));
        if (!strstr(errstr, reason))
            fail_msg("%s: reason '%s', want '%s'", name, errstr, reason);
    }
    json_decref(got);
    json_decref(expected);
    json_decref(headers);
    free(value);
}

static void check_fixtures(const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_fixture(names[i]);
}

#define CHECK_FIXTURES(...)                                         \
    do {                                                            \
        static const char *const names_[] = {__VA_ARGS__};          \
        check_fixtures(names_, sizeof(names_) / sizeof(names_[0])); \
    } while (0)

/* Names of every input fixture (no .expected / .headers), sorted. */
static json_t *fixture_names(void)
{
    json_t *names = json_array();
    struct dirent *de;
    DIR *dir;

    dir = opendir(hx_fixture_path(FIXTURE_DIR));
    assert_non_null(dir);
    while ((de = readdir(dir))) {
        size_t n = strlen(de->d_name);

        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0 ||
            strstr(de->d_name, ".expected.") || strstr(de->d_name, ".headers."))
            continue;
        json_array_append_new(names, json_stringn(de->d_name, n - 5));
    }
    closedir(dir);
    assert_true(json_array_size(names) > 50);
    return names;
}

/* ---- DynamoDB -------------------------------------------------------- */

static void test_dynamodb_record_becomes_document(void **state)
{
    (void)state;
    CHECK_FIXTURES("dynamodb_insert", "dynamodb_remove_ttl",
                   "dynamodb_kinesis");
}

static void test_dynamodb_every_type_is_converted(void **state)
{
    (void)state;
    CHECK_FIXTURES("dynamodb_all_types");
}

static void test_dynamodb_numbers_are_exact(void **state)
{
    (void)state;
    CHECK_FIXTURES("dynamodb_numbers");
}

static void test_dynamodb_changed_compares_typed_values(void **state)
{
    (void)state;
    /* Reordered sets and "100" vs "1E2" are not changes; added and
     * removed attributes are. */
    CHECK_FIXTURES("dynamodb_modify");
}

static void test_dynamodb_batch_yields_one_document_per_record(void **state)
{
    (void)state;
    CHECK_FIXTURES("dynamodb_batch", "dynamodb_empty_batch");
}

static void test_dynamodb_missing_images_give_null(void **state)
{
    (void)state;
    CHECK_FIXTURES("dynamodb_keys_only", "dynamodb_new_image_modify");
}

static void test_dynamodb_bad_records_are_rejected(void **state)
{
    (void)state;
    CHECK_FIXTURES("dynamodb_unknown_type", "dynamodb_unknown_type_in_list",
                   "dynamodb_missing_event_id", "dynamodb_event_id_number",
                   "dynamodb_bad_event_name", "dynamodb_missing_dynamodb",
                   "dynamodb_missing_arn", "dynamodb_wrong_event_source",
                   "dynamodb_n_not_string", "dynamodb_invalid_number",
                   "dynamodb_two_types", "dynamodb_set_element_not_string",
                   "dynamodb_image_not_object", "dynamodb_ts_not_number",
                   "dynamodb_records_not_array");
}

/* Issue 19, point 12: a Kinesis ARN where a stream ARN was expected. */
static void test_dynamodb_unparseable_arn_routes_without_table(void **state)
{
    (void)state;
    CHECK_FIXTURES("dynamodb_bad_arn");
}

static void test_dynamodb_batch_with_one_bad_record_fails_whole(void **state)
{
    (void)state;
    CHECK_FIXTURES("dynamodb_batch_one_bad");
}

/* The value of attribute "v" after normalizing {"N": @text}. */
static json_t *number_of(const char *text)
{
    enum fanout_norm_result res;
    char errstr[256], *value;
    json_t *rec, *docs, *v;

    rec = json_pack("{s:s, s:s, s:s, s:{s:{s:{s:s}}}}", "eventID", "n",
                    "eventName", "INSERT", "eventSourceARN",
                    "arn:aws:dynamodb:us-east-1:1:table/Num/stream/x",
                    "dynamodb", "NewImage", "v", "N", text);
    assert_non_null(rec);
    value = json_dumps(rec, JSON_COMPACT);
    docs = normalize(value, strlen(value), NULL, &res, errstr, sizeof(errstr));
    if (res != FANOUT_NORM_OK)
        fail_msg("N '%s': %s (%s)", text, result_name(res), errstr);
    v = json_incref(
        json_object_get(json_object_get(json_array_get(docs, 0), "new"), "v"));
    json_decref(docs);
    json_decref(rec);
    free(value);
    return v;
}

static void test_dynamodb_number_rules(void **state)
{
    static const struct {
        const char *n;
        const char *want; /* JSON text */
    } cases[] = {
        {"0", "0"},
        {"-0", "0"},
        {"0.000e5", "0"},
        {"9007199254740993", "9007199254740993"},
        {"-9007199254740993", "-9007199254740993"},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"-9223372036854775809", "\"-9223372036854775809\""},
        {"18446744073709551621", "\"18446744073709551621\""},
        {"922337203685477580.7e1", "9223372036854775807"},
        {"92233720368547758.08e2", "\"92233720368547758.08e2\""},
        {"1e18", "1000000000000000000"},
        {"1e19", "\"1e19\""},
        {"1e400", "\"1e400\""},
        {"-1e400", "\"-1e400\""},
        {"1e999999999999999999999", "\"1e999999999999999999999\""},
        {"1e-999999999999999999999", "\"1e-999999999999999999999\""},
        {"0.1", "0.1"},
        {"-0.1", "-0.1"},
        {".5", "0.5"},
        {"5.", "5"},
        {"2.5E-3", "0.0025"},
        {"123456789012345.6", "123456789012345.6"},
        {"1234567890123456.7", "\"1234567890123456.7\""},
        {"12345678901234567.8", "\"12345678901234567.8\""},
        {"0.12345678901234567", "\"0.12345678901234567\""},
        {"12345678901234567890.5", "\"12345678901234567890.5\""},
        {"3.141592653589793", "3.141592653589793"},
        /* DBL_MAX is an integer beyond int64: a string like 2^64+5. */
        {"1.7976931348623157e308", "\"1.7976931348623157e308\""},
        {"1.5e-300", "1.5e-300"},
        {"2.2250738585072014e-308", "2.2250738585072014e-308"},
        {"-2.5e-5", "-0.000025"},
        {"000123", "123"},
        {"100.000", "100"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *want = json_loads(cases[i].want, JSON_DECODE_ANY, NULL);
        json_t *got = number_of(cases[i].n);

        assert_non_null(want);
        if (!json_equal(got, want) || json_typeof(got) != json_typeof(want)) {
            char *g = json_dumps(got, JSON_ENCODE_ANY);

            fail_msg("N '%s': got %s, want %s", cases[i].n, g, cases[i].want);
        }
        json_decref(got);
        json_decref(want);
    }
}

static void test_dynamodb_invalid_number_texts_are_rejected(void **state)
{
    static const char *const bad[] = {
        "",   "-",    "+",   ".",        "e5",   "1e",  "1e+", "1.2.3", " 1",
        "1 ", "0x10", "NaN", "Infinity", "-inf", "1,5", "--1", "1e5.5", "١٢٣",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum fanout_norm_result res;
        char errstr[256], *value;
        json_t *rec, *docs;

        rec = json_pack("{s:s, s:s, s:s, s:{s:{s:{s:s}}}}", "eventID", "n",
                        "eventName", "INSERT", "eventSourceARN",
                        "arn:aws:dynamodb:us-east-1:1:table/Num/stream/x",
                        "dynamodb", "NewImage", "v", "N", bad[i]);
        assert_non_null(rec);
        value = json_dumps(rec, JSON_COMPACT);
        docs =
            normalize(value, strlen(value), NULL, &res, errstr, sizeof(errstr));
        if (res != FANOUT_NORM_ERROR || !strstr(errstr, "invalid number"))
            fail_msg("N '%s': %s (%s)", bad[i], result_name(res), errstr);
        json_decref(docs);
        json_decref(rec);
        free(value);
    }
}

static void test_dynamodb_arns(void **state)
{
    static const struct {
        const char *arn;
        const char *table; /* NULL: routes with table null (issue 19) */
    } cases[] = {
        {"arn:aws:dynamodb:us-east-1:1:table/Abc", "Abc"},
        {"arn:aws-us-gov:dynamodb:us-gov-west-1:1:table/a_b.c-d/stream/"
         "2015-05-11T21:21:33.291",
         "a_b.c-d"},
        {"arn:aws:dynamodb:us-east-1:1:table/A", "A"},
        {"arn:aws:dynamodb:us-east-1:1:table/", NULL},
        {"arn:aws:dynamodb:us-east-1:1:table/Abc/stream/", NULL},
        {"arn:aws:dynamodb:us-east-1:1:table/Abc/index/x", NULL},
        {"arn:aws:dynamodb:us-east-1:1:table/A bc", NULL},
        {"arn:aws:dynamodb::1:table/Abc", NULL},
        {"arn:aws:dynamodb:us-east-1::table/Abc", NULL},
        {"arn:aws:s3:us-east-1:1:table/Abc", NULL},
        {"arn::dynamodb:us-east-1:1:table/Abc", NULL},
        {"urn:aws:dynamodb:us-east-1:1:table/Abc", NULL},
        {"arn:aws:dynamodb:us-east-1:1:Abc", NULL},
        {"arn:aws:dynamodb", NULL},
        {"", NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum fanout_norm_result res;
        char errstr[256], *value;
        json_t *rec, *docs;

        rec = json_pack("{s:s, s:s, s:s, s:{}}", "eventID", "1", "eventName",
                        "REMOVE", "eventSourceARN", cases[i].arn, "dynamodb");
        value = json_dumps(rec, JSON_COMPACT);
        docs =
            normalize(value, strlen(value), NULL, &res, errstr, sizeof(errstr));
        if (cases[i].table) {
            if (res != FANOUT_NORM_OK)
                fail_msg("'%s': %s", cases[i].arn, errstr);
            assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(docs, 0), "table")),
                                cases[i].table);
        } else {
            json_t *doc = json_array_get(docs, 0);

            if (res != FANOUT_NORM_OK)
                fail_msg("'%s': %s (%s)", cases[i].arn, result_name(res),
                         errstr);
            assert_true(json_is_null(json_object_get(doc, "table")));
            assert_string_equal(json_string_value(json_object_get(
                                    json_object_get(doc, "source"), "arn")),
                                cases[i].arn);
        }
        json_decref(docs);
        json_decref(rec);
        free(value);
    }
}

static void test_dynamodb_timestamps(void **state)
{
    static const struct {
        const char *ts; /* JSON */
        int64_t want;   /* -1: rejected */
    } cases[] = {
        {"1678831218", 1678831218000},
        {"1678831218.123", 1678831218123},
        {"1678831218.9996", 1678831218999 + 1},
        {"1678831218123", 1678831218123},    /* Kinesis milliseconds */
        {"1678831218123456", 1678831218123}, /* Kinesis microseconds */
        {"1678831218123.0", 1678831218123},
        {"0", 0},
        {"-1", -1},
        {"-0.5", -1},
        {"1e300", -1},
        {"true", -1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum fanout_norm_result res;
        char errstr[256], value[512];
        json_t *docs;

        snprintf(value, sizeof(value),
                 "{\"eventID\":\"1\",\"eventName\":\"INSERT\","
                 "\"tableName\":\"T\",\"dynamodb\":"
                 "{\"ApproximateCreationDateTime\":%s}}",
                 cases[i].ts);
        docs =
            normalize(value, strlen(value), NULL, &res, errstr, sizeof(errstr));
        if (cases[i].want < 0) {
            if (res != FANOUT_NORM_ERROR ||
                !strstr(errstr, "ApproximateCreationDateTime"))
                fail_msg("ts %s: %s (%s)", cases[i].ts, result_name(res),
                         errstr);
        } else {
            json_t *ts;

            if (res != FANOUT_NORM_OK)
                fail_msg("ts %s: %s", cases[i].ts, errstr);
            ts = json_object_get(json_array_get(docs, 0), "ts_ms");
            if (!json_is_integer(ts) || json_integer_value(ts) != cases[i].want)
                fail_msg("ts %s: got %" JSON_INTEGER_FORMAT ", want %lld",
                         cases[i].ts, json_integer_value(ts),
                         (long long)cases[i].want);
        }
        json_decref(docs);
    }
}

/* ---- Debezium -------------------------------------------------------- */

static void test_debezium_postgres_events(void **state)
{
    (void)state;
    CHECK_FIXTURES("debezium_pg_create_envelope", "debezium_pg_update_full",
                   "debezium_pg_delete", "debezium_pg_snapshot");
}

static void test_debezium_partial_before_gives_unknown_changed(void **state)
{
    (void)state;
    CHECK_FIXTURES("debezium_pg_update_default_identity");
}

static void test_debezium_mysql_events(void **state)
{
    (void)state;
    CHECK_FIXTURES("debezium_mysql_update_envelope", "debezium_mysql_create",
                   "debezium_mysql_delete");
}

static void test_debezium_mongodb_update(void **state)
{
    (void)state;
    CHECK_FIXTURES("debezium_mongodb_update");
}

static void test_debezium_non_row_records_are_skipped(void **state)
{
    (void)state;
    CHECK_FIXTURES("debezium_tombstone_null", "debezium_tombstone_envelope",
                   "debezium_heartbeat", "debezium_transaction_end",
                   "debezium_truncate");
}

static void test_debezium_bad_events_are_rejected(void **state)
{
    (void)state;
    CHECK_FIXTURES("debezium_unknown_op", "debezium_missing_source",
                   "debezium_missing_table", "debezium_after_not_object",
                   "debezium_create_without_after", "debezium_bad_ts",
                   "debezium_op_not_string");
}

/* The id of the single document made from @json. */
static char *id_of(const char *json)
{
    enum fanout_norm_result res;
    char errstr[256], *id;
    json_t *docs;

    docs = normalize(json, strlen(json), NULL, &res, errstr, sizeof(errstr));
    if (res != FANOUT_NORM_OK)
        fail_msg("%s: %s", json, errstr);
    id = strdup(
        json_string_value(json_object_get(json_array_get(docs, 0), "id")));
    json_decref(docs);
    return id;
}

static void test_debezium_id_is_stable_and_distinct(void **state)
{
#define PG(after, op, lsn, ts)                                             \
    "{\"before\":null,\"after\":" after ",\"op\":\"" op "\",\"ts_ms\":" ts \
    ",\"source\":{\"connector\":\"postgresql\",\"name\":\"srv\","          \
    "\"db\":\"app\",\"schema\":\"public\",\"table\":\"t\",\"lsn\":" lsn    \
    ",\"ts_ms\":5}}"
    char *a = id_of(PG("{\"id\":1}", "c", "100", "1000"));
    /* Re-sent after a connector restart: only the processing time moves. */
    char *resent = id_of(PG("{\"id\":1}", "c", "100", "2000"));
    char *other_lsn = id_of(PG("{\"id\":1}", "c", "101", "1000"));
    /* Snapshot rows share one position; the row tells them apart. */
    char *snap1 = id_of(PG("{\"id\":1}", "r", "100", "1000"));
    char *snap2 = id_of(PG("{\"id\":2}", "r", "100", "1000"));
    /* Key order in the image does not matter. */
    char *k1 = id_of(PG("{\"a\":1,\"b\":2}", "r", "100", "1000"));
    char *k2 = id_of(PG("{\"b\":2,\"a\":1}", "r", "100", "1000"));
    char *bare = id_of(PG("{\"id\":1}", "c", "100", "1000"));
    char *wrapped = id_of(
        "{\"schema\":{},\"payload\":" PG("{\"id\":1}", "c", "100", "1000") "}");
#undef PG

    (void)state;
    assert_string_equal(a, resent);
    assert_string_not_equal(a, other_lsn);
    assert_string_not_equal(a, snap1);
    assert_string_not_equal(snap1, snap2);
    assert_string_equal(k1, k2);
    assert_string_equal(bare, wrapped);
    assert_true(strncmp(a, "postgresql:srv:app.public.t:c:lsn=100:", 38) == 0);
    free(a);
    free(resent);
    free(other_lsn);
    free(snap1);
    free(snap2);
    free(k1);
    free(k2);
    free(bare);
    free(wrapped);
}

/* ---- CloudEvents ----------------------------------------------------- */

static void test_cloudevents_structured_and_binary(void **state)
{
    (void)state;
    CHECK_FIXTURES("cloudevents_structured", "cloudevents_binary",
                   "cloudevents_dynamodb_extension",
                   "cloudevents_binary_no_data",
                   "cloudevents_structured_ce_headers");
}

static void test_cloudevents_bad_events_are_rejected(void **state)
{
    (void)state;
    CHECK_FIXTURES("cloudevents_missing_id", "cloudevents_bad_specversion",
                   "cloudevents_binary_missing_type",
                   "cloudevents_binary_bad_json");
}

/* ---- malformed input ------------------------------------------------- */

static void test_malformed_values_are_rejected(void **state)
{
    (void)state;
    CHECK_FIXTURES("malformed_truncated", "malformed_unknown_format",
                   "malformed_array", "malformed_string",
                   "malformed_trailing_garbage");
}

static void expect(const void *value,
                   size_t len,
                   json_t *headers,
                   enum fanout_norm_result want,
                   const char *reason)
{
    enum fanout_norm_result res;
    char errstr[256];
    json_t *docs = normalize(value, len, headers, &res, errstr, sizeof(errstr));

    if (res != want || (reason && !strstr(errstr, reason)))
        fail_msg("got %s (%s), want %s (%s)", result_name(res), errstr,
                 result_name(want), reason ? reason : "");
    json_decref(docs);
}

static void test_tombstones_are_skipped(void **state)
{
    json_t *headers = json_pack("{s:s}", "content-type", "application/json");

    (void)state;
    expect(NULL, 0, NULL, FANOUT_NORM_SKIP, "tombstone");
    expect("", 0, NULL, FANOUT_NORM_SKIP, "tombstone");
    expect("", 0, headers, FANOUT_NORM_SKIP, "tombstone");
    expect("null", 4, NULL, FANOUT_NORM_SKIP, "tombstone");
    expect(" null\n", 6, NULL, FANOUT_NORM_SKIP, "tombstone");
    json_decref(headers);
}

static void test_invalid_bytes_are_rejected(void **state)
{
    static const char latin1[] =
        "{\"eventID\":\"1\",\"eventName\":\"INSERT\",\"tableName\":\"T\","
        "\"dynamodb\":{\"NewImage\":{\"n\":{\"S\":\"caf\xe9\"}}}}";
    static const char nul[] = "{\"a\":\"x\0y\"}";
    static const char escaped_nul[] =
        "{\"eventID\":\"1\",\"eventName\":\"INSERT\",\"tableName\":\"T\","
        "\"dynamodb\":{\"NewImage\":{\"n\":{\"S\":\"a\\u0000b\"}}}}";

    (void)state;
    expect(latin1, sizeof(latin1) - 1, NULL, FANOUT_NORM_ERROR, "invalid json");
    expect(nul, sizeof(nul) - 1, NULL, FANOUT_NORM_ERROR, "invalid json");
    expect(escaped_nul, sizeof(escaped_nul) - 1, NULL, FANOUT_NORM_ERROR,
           "invalid json");
    expect("\xef\xbb\xbf{}", 5, NULL, FANOUT_NORM_ERROR, "invalid json");
    expect("   ", 3, NULL, FANOUT_NORM_ERROR, "invalid json");
    expect("x", 1, NULL, FANOUT_NORM_ERROR, "invalid json");
    expect("{}", 2, NULL, FANOUT_NORM_ERROR, "unknown record format");
    expect("42", 2, NULL, FANOUT_NORM_ERROR, "unknown record format");
    expect("{\"a\":1}", 3, NULL, FANOUT_NORM_ERROR, "invalid json");
    expect("{}", 2, NULL, FANOUT_NORM_ERROR, "unknown record format");
}

static void test_size_limit(void **state)
{
    static const char rec[] =
        "{\"eventID\":\"1\",\"eventName\":\"INSERT\",\"tableName\":\"T\","
        "\"dynamodb\":{}}";
    size_t n = HR_EVENT_MAX_BYTES + 1;
    char *big = malloc(n);

    (void)state;
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, rec, sizeof(rec) - 1);
    /* Exactly at the limit (trailing whitespace is valid JSON): accepted. */
    expect(big, n - 1, NULL, FANOUT_NORM_OK, NULL);
    expect(big, n, NULL, FANOUT_NORM_ERROR, "payload too large: 1048577");
    expect(NULL, 5, NULL, FANOUT_NORM_ERROR, "invalid payload");
    free(big);
}

/* A DynamoDB record whose attribute "x" is @open x @depth, @leaf, then
 * @close x @depth. Caller frees. */
static char *nested_record(size_t depth,
                           const char *open,
                           const char *leaf,
                           const char *close,
                           size_t *len)
{
    size_t cap = depth * (strlen(open) + strlen(close)) + 256, n = 0;
    char *buf = malloc(cap);

    assert_non_null(buf);
    n += (size_t)snprintf(buf + n, cap - n,
                          "{\"eventID\":\"1\",\"eventName\":\"INSERT\","
                          "\"tableName\":\"T\",\"dynamodb\":{\"NewImage\":"
                          "{\"x\":");
    for (size_t i = 0; i < depth; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s", open);
    n += (size_t)snprintf(buf + n, cap - n, "%s", leaf);
    for (size_t i = 0; i < depth; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s", close);
    n += (size_t)snprintf(buf + n, cap - n, "}}}");
    *len = n;
    return buf;
}

static void test_deep_nesting_is_handled(void **state)
{
    size_t len;
    char *buf;

    (void)state;
    /* About 2000 JSON levels: within jansson's limit, converted. */
    buf = nested_record(1000, "{\"M\":{\"x\":", "{\"S\":\"leaf\"}", "}}", &len);
    expect(buf, len, NULL, FANOUT_NORM_OK, NULL);
    free(buf);
    /* Past jansson's depth limit (2048): refused while parsing. */
    buf = nested_record(1100, "{\"M\":{\"x\":", "{\"S\":\"leaf\"}", "}}", &len);
    expect(buf, len, NULL, FANOUT_NORM_ERROR, "invalid json");
    free(buf);
    /* Errors deep down name the path. */
    buf = nested_record(3, "{\"L\":[", "{\"Z\":1}", "]}", &len);
    expect(buf, len, NULL, FANOUT_NORM_ERROR,
           "unknown attribute type 'Z' at new.x[0][0][0]");
    free(buf);
}

static void test_bad_arguments(void **state)
{
    enum fanout_norm_result res;
    char errstr[64];

    (void)state;
    res = fanout_normalize("{}", 2, NULL, NULL, NULL, errstr, sizeof(errstr));
    assert_int_equal(res, FANOUT_NORM_ERROR);
    /* A tiny errstr is cut, not overrun; none at all is allowed. */
    {
        json_t *docs = json_array();
        char tiny[8];

        res = fanout_normalize("{}", 2, NULL, NULL, docs, tiny, sizeof(tiny));
        assert_int_equal(res, FANOUT_NORM_ERROR);
        assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
        res = fanout_normalize("{}", 2, NULL, NULL, docs, NULL, 0);
        assert_int_equal(res, FANOUT_NORM_ERROR);
        json_decref(docs);
    }
    assert_string_equal(fanout_normalize_format_name(FANOUT_FMT_DYNAMODB),
                        "dynamodb");
    assert_string_equal(fanout_normalize_format_name(FANOUT_FMT_DEBEZIUM),
                        "debezium");
    assert_string_equal(fanout_normalize_format_name(FANOUT_FMT_CLOUDEVENTS),
                        "cloudevents");
}

/* ---- every fixture, and robustness ------------------------------------ */

static void test_every_fixture_matches_its_expectation(void **state)
{
    json_t *names = fixture_names(), *name;
    size_t i;

    (void)state;
    json_array_foreach(names, i, name)
    {
        check_fixture(json_string_value(name));
    }
    json_decref(names);
}

/* Check the invariants that hold for any input. */
static void check_any(const void *value, size_t len, json_t *headers)
{
    enum fanout_norm_result res;
    char errstr[256];
    json_t *docs = normalize(value, len, headers, &res, errstr, sizeof(errstr));
    json_t *doc;
    size_t i;

    switch (res) {
    case FANOUT_NORM_OK:
        assert_true(json_array_size(docs) > 0);
        json_array_foreach(docs, i, doc)
        {
            const char *op = json_string_value(json_object_get(doc, "op"));
            json_t *changed = json_object_get(doc, "changed");

            assert_non_null(json_string_value(json_object_get(doc, "id")));
            assert_non_null(op);
            assert_true(!strcmp(op, "insert") || !strcmp(op, "modify") ||
                        !strcmp(op, "remove") || !strcmp(op, "snapshot"));
            assert_true(json_is_null(changed) || json_is_array(changed));
            assert_non_null(json_string_value(
                json_object_get(json_object_get(doc, "source"), "format")));
        }
        break;
    case FANOUT_NORM_SKIP:
    case FANOUT_NORM_ERROR:
        assert_true(errstr[0] != '\0');
        break;
    default:
        fail_msg("result %d", (int)res);
    }
    json_decref(docs);
}

static void test_truncated_inputs_never_crash(void **state)
{
    json_t *names = fixture_names(), *name;
    size_t i;

    (void)state;
    json_array_foreach(names, i, name)
    {
        size_t len = 0;
        char *value = fixture_read(json_string_value(name), ".json", &len);
        json_t *headers =
            fixture_json(json_string_value(name), ".headers.json");

        assert_non_null(value);
        for (size_t cut = 0; cut < len; cut++) {
            char *copy = malloc(cut + 1);

            /* An exact-size copy, so ASan sees any read past the end. */
            memcpy(copy, value, cut);
            check_any(cut ? copy : NULL, cut, headers);
            free(copy);
        }
        json_decref(headers);
        free(value);
    }
    json_decref(names);
}

/* A small deterministic PRNG (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* Every node of @json, in document order, into @nodes. */
static void collect_nodes(json_t *json, json_t *nodes)
{
    const char *key;
    json_t *v;
    size_t i;

    json_array_append(nodes, json);
    if (json_is_object(json)) {
        json_object_foreach(json, key, v)
        {
            collect_nodes(v, nodes);
        }
    } else if (json_is_array(json)) {
        json_array_foreach(json, i, v)
        {
            collect_nodes(v, nodes);
        }
    }
}

/* Replace one random member or element somewhere in @root with an odd
 * value (wrong types, unknown DynamoDB types, bad numbers, nulls). */
static void mutate(json_t *root)
{
    static const char *const odd[] = {
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1.5",
        "\"\"",
        "\"x\"",
        "[]",
        "{}",
        "[null]",
        "{\"S\":1}",
        "{\"N\":\"abc\"}",
        "{\"N\":\"1e400\"}",
        "{\"Q\":\"z\"}",
        "{\"M\":[]}",
        "{\"L\":{}}",
        "{\"SS\":[1]}",
        "{\"NS\":[\"1\",\"x\"]}",
        "{\"S\":\"a\",\"N\":\"1\"}",
        "\"c\"",
        "\"u\"",
        "\"d\"",
        "\"r\"",
        "\"t\"",
        "\"{\\\"a\\\":1}\"",
        "\"arn:aws:dynamodb:r:a:table/Tab\"",
        "{\"NULL\":\"yes\"}",
        "9223372036854775807",
        "-9223372036854775808",
        "1e308",
    };
    json_t *nodes = json_array(), *target, *repl;
    size_t n;

    collect_nodes(root, nodes);
    n = json_array_size(nodes);
    target = json_array_get(nodes, rng() % n);
    repl = json_loads(odd[rng() % (sizeof(odd) / sizeof(odd[0]))],
                      JSON_DECODE_ANY, NULL);
    assert_non_null(repl);
    if (json_is_object(target) && json_object_size(target) > 0) {
        size_t k = rng() % json_object_size(target), j = 0;
        const char *key;
        json_t *v;

        json_object_foreach(target, key, v)
        {
            if (j++ == k) {
                if (rng() % 4 == 0)
                    json_object_del(target, key);
                else
                    json_object_set(target, key, repl);
                break;
            }
        }
    } else if (json_is_array(target) && json_array_size(target) > 0) {
        size_t k = rng() % json_array_size(target);

        if (rng() % 4 == 0)
            json_array_remove(target, k);
        else
            json_array_set(target, k, repl);
    }
    json_decref(repl);
    json_decref(nodes);
}

static void test_mutated_inputs_never_crash(void **state)
{
    json_t *names = fixture_names(), *name;
    size_t i;

    (void)state;
    json_array_foreach(names, i, name)
    {
        json_t *orig =
            fixture_json_opt(json_string_value(name), ".json", false);
        json_t *headers;

        if (!orig)
            continue; /* not JSON (empty values, broken inputs) */
        headers = fixture_json(json_string_value(name), ".headers.json");
        for (int round = 0; round < 300; round++) {
            json_t *copy = json_deep_copy(orig);
            char *text;

            for (uint64_t m = rng() % 3; m < 3; m++)
                mutate(copy);
            text = json_dumps(copy, JSON_ENCODE_ANY | JSON_COMPACT);
            assert_non_null(text);
            check_any(text, strlen(text), headers);
            free(text);
            json_decref(copy);
        }
        json_decref(headers);
        json_decref(orig);
    }
    json_decref(names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dynamodb_record_becomes_document),
        cmocka_unit_test(test_dynamodb_every_type_is_converted),
        cmocka_unit_test(test_dynamodb_numbers_are_exact),
        cmocka_unit_test(test_dynamodb_changed_compares_typed_values),
        cmocka_unit_test(test_dynamodb_batch_yields_one_document_per_record),
        cmocka_unit_test(test_dynamodb_missing_images_give_null),
        cmocka_unit_test(test_dynamodb_bad_records_are_rejected),
        cmocka_unit_test(test_dynamodb_unparseable_arn_routes_without_table),
        cmocka_unit_test(test_dynamodb_batch_with_one_bad_record_fails_whole),
        cmocka_unit_test(test_dynamodb_number_rules),
        cmocka_unit_test(test_dynamodb_invalid_number_texts_are_rejected),
        cmocka_unit_test(test_dynamodb_arns),
        cmocka_unit_test(test_dynamodb_timestamps),
        cmocka_unit_test(test_debezium_postgres_events),
        cmocka_unit_test(test_debezium_partial_before_gives_unknown_changed),
        cmocka_unit_test(test_debezium_mysql_events),
        cmocka_unit_test(test_debezium_mongodb_update),
        cmocka_unit_test(test_debezium_non_row_records_are_skipped),
        cmocka_unit_test(test_debezium_bad_events_are_rejected),
        cmocka_unit_test(test_debezium_id_is_stable_and_distinct),
        cmocka_unit_test(test_cloudevents_structured_and_binary),
        cmocka_unit_test(test_cloudevents_bad_events_are_rejected),
        cmocka_unit_test(test_malformed_values_are_rejected),
        cmocka_unit_test(test_tombstones_are_skipped),
        cmocka_unit_test(test_invalid_bytes_are_rejected),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_deep_nesting_is_handled),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_every_fixture_matches_its_expectation),
        cmocka_unit_test(test_truncated_inputs_never_crash),
        cmocka_unit_test(test_mutated_inputs_never_crash),
    };

    return cmocka_run_group_tests_name("fanout_normalize", tests, NULL, NULL);
}
