/*
 * Unit tests for fanout_normalize_input() and the modules behind it
 * (fanout_ejson, fanout_decimal): the real-world inputs of issue 19, one
 * group per numbered point, with the issue's own examples.
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

#include "fanout_decimal.h"
#include "fanout_ejson.h"
#include "fanout_normalize.h"
#include "harness.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* The CloudEvents specification's JSON format example (section 5). */
#define CE_SPEC_EXAMPLE                                              \
    "{\"specversion\":\"1.0\",\"type\":\"com.example.someevent\","   \
    "\"source\":\"/mycontext\",\"subject\":null,"                    \
    "\"id\":\"C234-1234-1234\",\"time\":\"2018-04-05T17:31:00Z\","   \
    "\"comexampleextension1\":\"value\",\"comexampleothervalue\":5," \
    "\"datacontenttype\":\"application/json\","                      \
    "\"data\":{\"appinfoA\":\"abc\",\"appinfoB\":123,\"appinfoC\":true}}"

struct result {
    enum fanout_norm_result res;
    json_t *docs;
    json_t *rejects;
    char errstr[256];
};

static const char *json_header(void *opaque, const char *name, size_t *len)
{
    json_t *v = json_object_get(opaque, name);

    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/* Normalize @value with headers @headers (JSON text or NULL) and Kafka key
 * @key (NULL: none). */
static void
norm(struct result *r, const char *value, const char *headers, const char *key)
{
    json_t *h = headers ? json_loads(headers, 0, NULL) : NULL;
    struct fanout_input in = {
        .value = value,
        .len = value ? strlen(value) : 0,
        .key = key,
        .key_len = key ? strlen(key) : 0,
        .get_header = h ? json_header : NULL,
        .opaque = h,
    };

    memset(r, 0, sizeof(*r));
    r->docs = json_array();
    r->rejects = json_array();
    r->res = fanout_normalize_input(&in, r->docs, r->rejects, r->errstr,
                                    sizeof(r->errstr));
    json_decref(h);
}

static void result_release(struct result *r)
{
    json_decref(r->docs);
    json_decref(r->rejects);
}

static json_t *doc(const struct result *r, size_t i)
{
    return json_array_get(r->docs, i);
}

static const char *str_at(json_t *v, const char *path)
{
    return json_string_value(hx_json_at(v, path));
}

static void assert_ok(const struct result *r, size_t ndocs)
{
    if (r->res != FANOUT_NORM_OK)
        fail_msg("result %d: %s", r->res, r->errstr);
    assert_int_equal(json_array_size(r->docs), ndocs);
}

/* ---- 1. null attribute == absent ---------------------------------------- */

static void test_ce_null_subject_is_absent(void **state)
{
    struct result r;

    (void)state;
    norm(&r, CE_SPEC_EXAMPLE, NULL, NULL);
    assert_ok(&r, 1);
    assert_true(json_is_null(hx_json_at(doc(&r, 0), "source.subject")));
    assert_int_equal(json_integer_value(hx_json_at(doc(&r, 0), "new.appinfoB")),
                     123);
    result_release(&r);
}

/* ---- 2. data_base64 ------------------------------------------------------ */

static void test_ce_data_base64(void **state)
{
    struct result r;

    (void)state;
    norm(&r,
         "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\","
         "\"type\":\"t\",\"datacontenttype\":\"application/json\","
         "\"data_base64\":\"e30=\"}",
         NULL, NULL);
    assert_ok(&r, 1);
    assert_true(json_is_object(hx_json_at(doc(&r, 0), "new")));
    assert_int_equal(json_object_size(hx_json_at(doc(&r, 0), "new")), 0);
    assert_null(hx_json_at(doc(&r, 0), "source.data_base64"));
    result_release(&r);

    norm(&r,
         "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\","
         "\"type\":\"t\",\"datacontenttype\":\"text/plain\","
         "\"data_base64\":\"aGVsbG8=\"}",
         NULL, NULL);
    assert_ok(&r, 1);
    assert_string_equal(str_at(doc(&r, 0), "new"), "aGVsbG8=");
    assert_true(json_is_null(hx_json_at(doc(&r, 0), "changed")));
    result_release(&r);
}

/* ---- 3. the batch format ------------------------------------------------- */

static void test_ce_batch_is_one_change_per_event(void **state)
{
    struct result r;

    (void)state;
    norm(&r,
         "[{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"/s\","
         "\"type\":\"t1\",\"data\":{\"n\":1}},"
         "{\"specversion\":\"1.0\",\"id\":\"b\",\"source\":\"/s\","
         "\"type\":\"t2\"}]",
         "{\"content-type\": \"application/cloudevents-batch+json\"}", NULL);
    assert_ok(&r, 2);
    assert_string_equal(str_at(doc(&r, 0), "type"), "t1");
    assert_string_equal(str_at(doc(&r, 1), "type"), "t2");
    assert_int_equal(json_array_size(r.rejects), 0);
    result_release(&r);
}

static void test_ce_batch_bad_event_is_set_aside_alone(void **state)
{
    struct result r;

    (void)state;
    norm(&r,
         "[{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"/s\","
         "\"type\":\"t\"},{\"specversion\":\"1.0\",\"source\":\"/s\","
         "\"type\":\"t\"},{\"specversion\":\"1.0\",\"id\":\"c\","
         "\"source\":\"/s\",\"type\":\"t\"}]",
         NULL, NULL);
    assert_ok(&r, 2);
    assert_int_equal(json_array_size(r.rejects), 1);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(r.rejects, 0), "index")),
                     1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(r.rejects, 0), "reason")),
                        "record 1: cloudevents: missing attribute 'id'");
    assert_string_equal(str_at(json_array_get(r.rejects, 0), "record.source"),
                        "/s");
    result_release(&r);

    /* nothing good: the Kafka record is bad as a whole */
    norm(&r, "[{\"id\": 1}, 2]", NULL, NULL);
    assert_int_equal(r.res, FANOUT_NORM_ERROR);
    assert_string_equal(r.errstr, "record 0: cloudevents: missing attribute "
                                  "'specversion'");
    assert_int_equal(json_array_size(r.rejects), 0);
    result_release(&r);

    norm(&r, "[]", NULL, NULL);
    assert_int_equal(r.res, FANOUT_NORM_SKIP);
    result_release(&r);
}

/* ---- 4. every context attribute in source -------------------------------- */

static void test_ce_context_attributes_reach_source(void **state)
{
    struct result r;
    json_t *src;

    (void)state;
    norm(&r,
         "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\","
         "\"type\":\"t\",\"subject\":\"sub\",\"time\":\"2018-04-05T17:31:00Z\","
         "\"datacontenttype\":\"application/json\","
         "\"dataschema\":\"https://example.com/s.json\","
         "\"comexampleextension1\":\"value\",\"data\":{}}",
         NULL, NULL);
    assert_ok(&r, 1);
    src = hx_json_at(doc(&r, 0), "source");
    assert_string_equal(str_at(src, "format"), "cloudevents");
    assert_string_equal(str_at(src, "source"), "/s");
    assert_string_equal(str_at(src, "subject"), "sub");
    assert_string_equal(str_at(src, "time"), "2018-04-05T17:31:00Z");
    assert_string_equal(str_at(src, "datacontenttype"), "application/json");
    assert_string_equal(str_at(src, "dataschema"),
                        "https://example.com/s.json");
    assert_string_equal(str_at(src, "comexampleextension1"), "value");
    assert_string_equal(str_at(src, "specversion"), "1.0");
    assert_null(json_object_get(src, "data"));
    assert_int_equal(json_integer_value(hx_json_at(doc(&r, 0), "ts_ms")),
                     1522949460000);
    result_release(&r);
}

/* ---- 5. identity is source + id ------------------------------------------ */

static void test_ce_identity_is_source_and_id(void **state)
{
    struct result a, b, c;

    (void)state;
    norm(&a,
         "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/a\","
         "\"type\":\"t\"}",
         NULL, NULL);
    norm(&b,
         "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/b\","
         "\"type\":\"t\"}",
         NULL, NULL);
    /* the same bytes joined differently must not collide */
    norm(&c,
         "{\"specversion\":\"1.0\",\"id\":\"a:1\",\"source\":\"/\","
         "\"type\":\"t\"}",
         NULL, NULL);
    assert_ok(&a, 1);
    assert_ok(&b, 1);
    assert_ok(&c, 1);
    assert_string_equal(str_at(doc(&a, 0), "id"), "2:/a:1");
    assert_string_not_equal(str_at(doc(&a, 0), "id"), str_at(doc(&b, 0), "id"));
    assert_string_not_equal(str_at(doc(&a, 0), "id"), str_at(doc(&c, 0), "id"));
    result_release(&a);
    result_release(&b);
    result_release(&c);
}

/* ---- 6. Debezium keys from the Kafka key ----------------------------------
 */

#define PG_DELETE                                                     \
    "{\"before\":null,\"after\":null,\"source\":{\"connector\":"      \
    "\"postgresql\",\"name\":\"dbserver1\",\"db\":\"inventory\","     \
    "\"schema\":\"public\",\"table\":\"customers\",\"lsn\":33227720," \
    "\"ts_ms\":1559033904863},\"op\":\"d\",\"ts_ms\":1559033904961}"

static void test_dbz_delete_without_images_takes_keys_from_key(void **state)
{
    struct result a, b, env;

    (void)state;
    norm(&a, PG_DELETE, NULL, "{\"id\":1004}");
    norm(&b, PG_DELETE, NULL, "{\"id\":1005}");
    norm(&env, PG_DELETE, NULL,
         "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int32\","
         "\"optional\":false,\"field\":\"id\"}],\"optional\":false,"
         "\"name\":\"dbserver1.public.customers.Key\"},"
         "\"payload\":{\"id\":1004}}");
    assert_ok(&a, 1);
    assert_ok(&b, 1);
    assert_ok(&env, 1);
    assert_int_equal(json_integer_value(hx_json_at(doc(&a, 0), "keys.id")),
                     1004);
    assert_int_equal(json_integer_value(hx_json_at(doc(&b, 0), "keys.id")),
                     1005);
    assert_string_not_equal(str_at(doc(&a, 0), "id"), str_at(doc(&b, 0), "id"));
    /* with or without the envelope: one key, one id */
    assert_true(json_equal(hx_json_at(doc(&env, 0), "keys"),
                           hx_json_at(doc(&a, 0), "keys")));
    assert_string_equal(str_at(doc(&env, 0), "id"), str_at(doc(&a, 0), "id"));
    result_release(&a);
    result_release(&b);
    result_release(&env);
}

static void test_dbz_key_is_part_of_the_id_for_every_op(void **state)
{
    static const char *const ops[] = {"c", "u", "r", "d"};

    (void)state;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        char value[512];
        struct result a, b, none;

        snprintf(value, sizeof(value),
                 "{\"before\":null,\"after\":{\"v\":1},\"source\":{"
                 "\"connector\":\"mysql\",\"name\":\"s\",\"db\":\"d\","
                 "\"table\":\"t\",\"file\":\"f.000003\",\"pos\":154,"
                 "\"row\":0},\"op\":\"%s\"}",
                 ops[i]);
        norm(&a, value, NULL, "{\"id\":1}");
        norm(&b, value, NULL, "{\"id\":2}");
        norm(&none, value, NULL, NULL);
        assert_ok(&a, 1);
        assert_ok(&b, 1);
        assert_ok(&none, 1);
        assert_string_not_equal(str_at(doc(&a, 0), "id"),
                                str_at(doc(&b, 0), "id"));
        assert_string_not_equal(str_at(doc(&a, 0), "id"),
                                str_at(doc(&none, 0), "id"));
        assert_true(json_is_null(hx_json_at(doc(&none, 0), "keys")));
        result_release(&a);
        result_release(&b);
        result_release(&none);
    }
}

static void test_dbz_mongodb_key_is_unwrapped(void **state)
{
    struct result r;

    (void)state;
    norm(&r,
         "{\"after\":null,\"source\":{\"connector\":\"mongodb\",\"name\":"
         "\"fulfillment\",\"db\":\"inventory\",\"collection\":\"customers\","
         "\"ord\":1,\"ts_ms\":1558965508000},\"op\":\"d\"}",
         NULL, "{\"id\":\"{\\\"$oid\\\": \\\"596e275826f08b2730779e1f\\\"}\"}");
    assert_ok(&r, 1);
    assert_string_equal(str_at(doc(&r, 0), "keys._id"),
                        "596e275826f08b2730779e1f");
    result_release(&r);

    /* a non-JSON key still separates ids, and gives no keys */
    norm(&r, PG_DELETE, NULL, "Struct{id=1004}");
    assert_ok(&r, 1);
    assert_true(json_is_null(hx_json_at(doc(&r, 0), "keys")));
    result_release(&r);
}

/* ---- 7. position from whatever fields exist --------------------------------
 */

static void test_dbz_position_from_fields_not_connector(void **state)
{
    static const struct {
        const char *source;
        const char *want; /* in the id */
    } cases[] = {
        {"\"connector\":\"informix\",\"commit_lsn\":\"9\",\"change_lsn\":\"7\"",
         ":lsn=7:9:"},
        {"\"connector\":\"custom\",\"lsn\":42", ":lsn=42:"},
        {"\"scn\":\"100\",\"commit_scn\":\"101\"", ":scn=100:101:"},
        {"\"file\":\"b.1\",\"pos\":5,\"row\":1", ":binlog=b.1:5:1:"},
        /* Flink CDC's snapshot rows (apache/paimon's nestedtype sample):
         * an empty binlog file is no position, the commit time is used */
        {"\"file\":\"\",\"pos\":0,\"row\":0,\"ts_ms\":1596684883000",
         ":ts=1596684883000:tx="},
        {"\"connector\":\"vitess\",\"vgtid\":\"[x]\"", ":gtid=[x]:"},
        {"\"gtid\":\"abc:1-5\"", ":gtid=abc:1-5:"},
        {"\"ord\":3,\"ts_ms\":1000", ":oplog=1000:3:"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char value[512];
        struct result r;

        snprintf(value, sizeof(value),
                 "{\"after\":{\"a\":1},\"source\":{\"name\":\"n\","
                 "\"table\":\"t\",%s},\"op\":\"c\"}",
                 cases[i].source);
        norm(&r, value, NULL, NULL);
        assert_ok(&r, 1);
        if (!strstr(str_at(doc(&r, 0), "id"), cases[i].want))
            fail_msg("%s: id %s, want %s", cases[i].source,
                     str_at(doc(&r, 0), "id"), cases[i].want);
        result_release(&r);
    }
}

/* ---- 8. MongoDB extended JSON ---------------------------------------------
 */

static void test_ejson_is_unwrapped(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"{\"$oid\": \"596e275826f08b2730779e1f\"}",
         "\"596e275826f08b2730779e1f\""},
        {"{\"$numberLong\": \"1004\"}", "1004"},
        {"{\"$numberLong\": \"99999999999999999999\"}", "null"},
        {"{\"$numberInt\": \"-7\"}", "-7"},
        {"{\"$numberDouble\": \"1.5\"}", "1.5"},
        {"{\"$numberDouble\": \"NaN\"}", "null"},
        {"{\"$numberDecimal\": \"1.10\"}", "1.1"},
        {"{\"$numberDecimal\": \"12345678901234567890.5\"}",
         "\"12345678901234567890.5\""},
        {"{\"$date\": {\"$numberLong\": \"1565546054692\"}}", "1565546054692"},
        {"{\"$date\": 1565546054692}", "1565546054692"},
        {"{\"$date\": \"2019-08-11T17:54:14.692Z\"}", "1565546054692"},
        {"{\"$binary\": {\"base64\": \"AQID\", \"subType\": \"00\"}}",
         "\"AQID\""},
        {"{\"$binary\": \"AQID\", \"$type\": \"00\"}", "\"AQID\""},
        {"{\"$timestamp\": {\"t\": 1, \"i\": 2}}",
         "{\"$timestamp\": {\"t\": 1, \"i\": 2}}"},
        {"[{\"$numberInt\": \"1\"}, {\"a\": {\"$oid\": \"x\"}}]",
         "[1, {\"a\": \"x\"}]"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *in = json_loads(cases[i].in, 0, NULL);
        json_t *want = json_loads(cases[i].want, JSON_DECODE_ANY, NULL);
        json_t *got;

        assert_non_null(in);
        got = fanout_ejson_unwrap(in);
        /* "null" in the table: kept as the wrapper */
        if (json_is_null(want)) {
            json_t *again = json_loads(cases[i].in, 0, NULL);

            json_decref(want);
            want = again;
        }
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_ENCODE_ANY);

            fail_msg("%s: got %s, want %s", cases[i].in, g, cases[i].want);
        }
        json_decref(got);
        json_decref(want);
    }
}

static void test_dbz_mongodb_images_are_unwrapped(void **state)
{
    struct result r;

    (void)state;
    norm(&r,
         "{\"after\":\"{\\\"_id\\\": {\\\"$oid\\\": \\\"5d5\\\"},"
         "\\\"qty\\\": {\\\"$numberLong\\\": \\\"12\\\"},"
         "\\\"at\\\": {\\\"$date\\\": 1565546054692}}\","
         "\"source\":{\"connector\":\"mongodb\",\"name\":\"n\","
         "\"db\":\"d\",\"collection\":\"c\",\"ord\":1,\"ts_ms\":1},"
         "\"op\":\"c\"}",
         NULL, NULL);
    assert_ok(&r, 1);
    assert_string_equal(str_at(doc(&r, 0), "new._id"), "5d5");
    assert_int_equal(json_integer_value(hx_json_at(doc(&r, 0), "new.qty")), 12);
    assert_int_equal(json_integer_value(hx_json_at(doc(&r, 0), "new.at")),
                     1565546054692);
    result_release(&r);
}

/* ---- 9. ts_ms rescaled ----------------------------------------------------
 */

static void test_dbz_ts_is_rescaled_to_ms(void **state)
{
    static const char *const ts[] = {"1559033904961", "1559033904961123",
                                     "1559033904961123456"};

    (void)state;
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        char value[512];
        struct result r;

        snprintf(value, sizeof(value),
                 "{\"after\":{\"a\":1},\"source\":{\"name\":\"n\","
                 "\"table\":\"t\",\"lsn\":1},\"op\":\"c\",\"ts_ms\":%s}",
                 ts[i]);
        norm(&r, value, NULL, NULL);
        assert_ok(&r, 1);
        assert_int_equal(json_integer_value(hx_json_at(doc(&r, 0), "ts_ms")),
                         1559033904961);
        result_release(&r);
    }
}

/* ---- 10. schema changes skipped --------------------------------------------
 */

static void test_dbz_schema_change_is_skipped(void **state)
{
    struct result r;

    (void)state;
    norm(&r,
         "{\"source\":{\"server\":\"mysql2\"},\"position\":{\"file\":"
         "\"mysql-bin.000003\",\"pos\":154},\"databaseName\":\"inventory\","
         "\"ddl\":\"CREATE TABLE products ( id INTEGER NOT NULL);\","
         "\"tableChanges\":[{\"type\":\"CREATE\",\"id\":"
         "\"\\\"inventory\\\".\\\"products\\\"\"}]}",
         NULL, NULL);
    assert_int_equal(r.res, FANOUT_NORM_SKIP);
    assert_string_equal(r.errstr, "debezium: schema change");
    result_release(&r);
}

/* ---- 11. wide numbers counted ----------------------------------------------
 */

static void test_wide_numbers_are_counted(void **state)
{
    static const struct {
        const char *json;
        size_t want;
    } cases[] = {
        {"{\"a\": 1, \"b\": 1.5, \"c\": -0.000123}", 0},
        {"{\"price\": 123456789012345678901234567890.123}", 1},
        {"{\"a\": 12345678901234567, \"b\": 123456789012345678}", 1},
        {"{\"s\": \"123456789012345678901234567890\"}", 0},
        {"{\"s\": \"x\\\"123456789012345678901\", \"n\": "
         "0.10000000000000000000}",
         0},
        {"[1e400, -99999999999999999999]", 1},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t got =
            fanout_decimal_count_wide(cases[i].json, strlen(cases[i].json));

        if (got != cases[i].want)
            fail_msg("%s: %zu, want %zu", cases[i].json, got, cases[i].want);
    }
    assert_int_equal(fanout_decimal_count_wide(NULL, 0), 0);
}

/* ---- 12. DynamoDB ARNs and batches -----------------------------------------
 */

#define DDB_RECORD(id, arn)                                                 \
    "{\"eventID\":\"" id "\",\"eventName\":\"INSERT\",\"eventVersion\":"    \
    "\"1.0\",\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\"," \
    "\"dynamodb\":{\"Keys\":{\"Id\":{\"N\":\"101\"}},\"NewImage\":{"        \
    "\"Message\":{\"S\":\"New item!\"},\"Id\":{\"N\":\"101\"}},"            \
    "\"SequenceNumber\":\"111\",\"SizeBytes\":26,\"StreamViewType\":"       \
    "\"NEW_AND_OLD_IMAGES\"},\"eventSourceARN\":\"" arn "\"}"

static void test_ddb_placeholder_arn_routes_without_table(void **state)
{
    struct result r;

    (void)state;
    norm(&r, "{\"Records\":[" DDB_RECORD("1", "stream-ARN") "]}", NULL, NULL);
    assert_ok(&r, 1);
    assert_true(json_is_null(hx_json_at(doc(&r, 0), "table")));
    assert_string_equal(str_at(doc(&r, 0), "source.arn"), "stream-ARN");
    assert_string_equal(str_at(doc(&r, 0), "source.region"), "us-east-1");
    assert_int_equal(json_integer_value(hx_json_at(doc(&r, 0), "new.Id")), 101);
    result_release(&r);
}

static void test_ddb_batch_bad_record_is_set_aside_alone(void **state)
{
    struct result r;

    (void)state;
    norm(&r,
         "{\"Records\":[" DDB_RECORD(
             "1",
             "stream-ARN") ","
                           "{\"eventID\":\"2\",\"eventName\":\"UPSERT\","
                           "\"dynamodb\":{}}," DDB_RECORD(
                               "3",
                               "arn:aws:dynamodb:us-east-1:123456789012:table/"
                               "ExampleTableWithStream/stream/"
                               "2015-06-27T00:48:05.899") "]}",
         NULL, NULL);
    assert_ok(&r, 2);
    assert_string_equal(str_at(doc(&r, 0), "id"), "1");
    assert_string_equal(str_at(doc(&r, 1), "id"), "3");
    assert_string_equal(str_at(doc(&r, 1), "table"), "ExampleTableWithStream");
    assert_int_equal(json_array_size(r.rejects), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(r.rejects, 0), "reason")),
                        "record 1: dynamodb: unknown eventName 'UPSERT'");
    assert_string_equal(str_at(json_array_get(r.rejects, 0), "record.eventID"),
                        "2");
    result_release(&r);
}

/* aws-lambda-go's events/testdata/dynamodb-event.json writes every member of
 * an attribute value, the unused ones null: they are absent. */
static void test_ddb_null_type_members_are_absent(void **state)
{
    static const char rec[] =
        "{\"eventID\":\"1\",\"eventName\":\"INSERT\",\"eventSource\":"
        "\"aws:dynamodb\",\"eventSourceARN\":\"stream-ARN\",\"dynamodb\":{"
        "\"Keys\":{\"k\":{\"B\":null,\"N\":null,\"S\":\"x\",\"SS\":null}},"
        "\"NewImage\":{\"k\":{\"B\":null,\"S\":\"x\"},"
        "\"l\":{\"L\":[{\"N\":\"3.5\",\"S\":null},{\"NULL\":true,"
        "\"BOOL\":null}],\"M\":null},"
        "\"f\":{\"BOOL\":false,\"NULL\":null}}}}";
    struct result r;
    json_t *want;

    (void)state;
    norm(&r, rec, NULL, NULL);
    assert_ok(&r, 1);
    assert_string_equal(str_at(doc(&r, 0), "keys.k"), "x");
    want = json_pack("[f, n]", 3.5);
    assert_true(json_equal(hx_json_at(doc(&r, 0), "new.l"), want));
    json_decref(want);
    assert_true(json_is_false(hx_json_at(doc(&r, 0), "new.f")));
    result_release(&r);

    /* two non-null members, or none: still refused */
    norm(&r,
         "{\"eventID\":\"2\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"a\","
         "\"dynamodb\":{"
         "\"Keys\":{\"k\":{\"S\":\"x\",\"N\":\"1\"}}}}",
         NULL, NULL);
    assert_int_equal(r.res, FANOUT_NORM_ERROR);
    assert_non_null(strstr(r.errstr, "exactly one type, not 2, at keys.k"));
    result_release(&r);
    norm(&r,
         "{\"eventID\":\"3\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"a\","
         "\"dynamodb\":{"
         "\"Keys\":{\"k\":{\"S\":null,\"N\":null}}}}",
         NULL, NULL);
    assert_int_equal(r.res, FANOUT_NORM_ERROR);
    assert_non_null(strstr(r.errstr, "exactly one type, not 0, at keys.k"));
    result_release(&r);
}

/* ---- the real-world samples (tests/fixtures/fanout/realworld) ------------ */

#define REALWORLD "fanout/realworld"

/* One sample (harness.h: the record value, or null for a tombstone, its
 * key and headers as given) normalized as its expectation says. */
static void check_realworld(const struct hx_sample *s)
{
    const char *name = s->name;
    json_t *exp = s->expected, *w;
    const char *outcome = str_at(exp, "outcome");
    struct result r;
    size_t i;

    if (!outcome)
        fail_msg("%s: the expectation has no outcome", name);
    norm(&r, s->value, s->headers_text, s->key);
    /* HERALD_FANOUT_RW_DUMP=1 prints every sample's outcome instead of
     * checking it, to help writing an expectation */
    if (getenv("HERALD_FANOUT_RW_DUMP")) {
        char *d = json_dumps(r.docs, JSON_INDENT(1));

        fprintf(stderr, "== %s: %d %s\n%s\n", name, r.res, r.errstr,
                d ? d : "");
        free(d);
    } else if (!strcmp(outcome, "routed")) {
        if (r.res != FANOUT_NORM_OK)
            fail_msg("%s: %d (%s), want routed", name, r.res, r.errstr);
        assert_int_equal(json_array_size(r.docs),
                         json_array_size(hx_json_at(exp, "docs")));
        json_array_foreach(hx_json_at(exp, "docs"), i, w)
        {
            hx_check_fields(name, i, doc(&r, i), w);
        }
    } else {
        enum fanout_norm_result want = strcmp(outcome, "skipped") == 0
                                           ? FANOUT_NORM_SKIP
                                           : FANOUT_NORM_ERROR;

        if (r.res != want || !strstr(r.errstr, str_at(exp, "reason")))
            fail_msg("%s: %d (%s), want %s (%s)", name, r.res, r.errstr,
                     outcome, str_at(exp, "reason"));
    }
    result_release(&r);
}

static void test_realworld_samples(void **state)
{
    static struct hx_sample s[128];
    size_t n = hx_samples_load(REALWORLD, s, HR_ARRAY_SIZE(s));

    (void)state;
    for (size_t i = 0; i < n; i++)
        check_realworld(&s[i]);
    hx_samples_free(s, n);
    assert_true(n >= 41);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ce_null_subject_is_absent),
        cmocka_unit_test(test_ce_data_base64),
        cmocka_unit_test(test_ce_batch_is_one_change_per_event),
        cmocka_unit_test(test_ce_batch_bad_event_is_set_aside_alone),
        cmocka_unit_test(test_ce_context_attributes_reach_source),
        cmocka_unit_test(test_ce_identity_is_source_and_id),
        cmocka_unit_test(test_dbz_delete_without_images_takes_keys_from_key),
        cmocka_unit_test(test_dbz_key_is_part_of_the_id_for_every_op),
        cmocka_unit_test(test_dbz_mongodb_key_is_unwrapped),
        cmocka_unit_test(test_dbz_position_from_fields_not_connector),
        cmocka_unit_test(test_ejson_is_unwrapped),
        cmocka_unit_test(test_dbz_mongodb_images_are_unwrapped),
        cmocka_unit_test(test_dbz_ts_is_rescaled_to_ms),
        cmocka_unit_test(test_dbz_schema_change_is_skipped),
        cmocka_unit_test(test_wide_numbers_are_counted),
        cmocka_unit_test(test_ddb_placeholder_arn_routes_without_table),
        cmocka_unit_test(test_ddb_batch_bad_record_is_set_aside_alone),
        cmocka_unit_test(test_ddb_null_type_members_are_absent),
        cmocka_unit_test(test_realworld_samples),
    };

    return cmocka_run_group_tests_name("fanout_input", tests, NULL, NULL);
}
