/*
 * herald-guard's pure helpers: verdicts, due times, schedule ids, header
 * blobs, and the settings table against hr_circuit_conf_specs().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "hr_circuit.h"
#include "hr_conf.h"
#include "hr_msg.h"
#include "hr_source.h"

static const struct guard_settings set = {
    .max_attempts = 8,
    .max_age_ms = 86400000,
    .base_delay_ms = 1000,
    .max_delay_ms = 600000,
};

static void test_guard_decide_attempts_and_age(void **state)
{
    (void)state;
    assert_int_equal(guard_decide(&set, 1, 0, 1000), GUARD_SCHEDULE);
    assert_int_equal(guard_decide(&set, 7, 0, 1000), GUARD_SCHEDULE);
    assert_int_equal(guard_decide(&set, 8, 0, 1000), GUARD_DLQ_MAX_ATTEMPTS);
    assert_int_equal(guard_decide(&set, 2, 0, 86399999), GUARD_SCHEDULE);
    assert_int_equal(guard_decide(&set, 2, 0, 86400000), GUARD_DLQ_MAX_AGE);
    assert_string_equal(guard_verdict_reason(GUARD_DLQ_MAX_ATTEMPTS),
                        "max_attempts");
    assert_string_equal(guard_verdict_reason(GUARD_DLQ_MAX_AGE), "max_age");
    assert_null(guard_verdict_reason(GUARD_SCHEDULE));
}

static void test_guard_due_is_full_jitter_capped(void **state)
{
    (void)state;
    /* Attempt 1 waits within [0, base], attempt 4 within [0, 8 base]. */
    for (uint64_t r = 0; r < 2000; r++) {
        uint64_t rnd = r * 0x9e3779b97f4a7c15ULL;
        int64_t d1 = guard_due_ms(&set, 1, -1, 5000, rnd) - 5000;
        int64_t d4 = guard_due_ms(&set, 4, -1, 5000, rnd) - 5000;
        int64_t d99 = guard_due_ms(&set, 99, -1, 5000, rnd) - 5000;

        assert_true(d1 >= 0 && d1 <= 1000);
        assert_true(d4 >= 0 && d4 <= 8000);
        assert_true(d99 >= 0 && d99 <= 600000);
    }
}

static void test_guard_due_honours_retry_after_as_lower_bound(void **state)
{
    (void)state;
    for (uint64_t r = 0; r < 500; r++) {
        uint64_t rnd = r * 0x9e3779b97f4a7c15ULL;

        assert_true(guard_due_ms(&set, 1, 30000, 0, rnd) == 30000);
        assert_true(guard_due_ms(&set, 20, 3, 0, rnd) >= 3);
    }
}

static void test_guard_item_id_names_origin_and_attempt(void **state)
{
    char buf[64];

    (void)state;
    assert_int_equal(
        guard_item_id(buf, sizeof(buf), "herald.push", 11, 3, 42, 2),
        (int)strlen("herald.push/3/42/2"));
    assert_string_equal(buf, "herald.push/3/42/2");
    assert_int_equal(guard_item_id(buf, 8, "herald.push", 11, 3, 42, 2), -1);
}

static void test_guard_parse_i64(void **state)
{
    int64_t v = 0;

    (void)state;
    assert_int_equal(guard_parse_i64("1234", 4, &v), 0);
    assert_true(v == 1234);
    assert_int_equal(guard_parse_i64("12x", 3, &v), -1);
    assert_int_equal(guard_parse_i64("", 0, &v), -1);
    assert_int_equal(guard_parse_i64(NULL, 3, &v), -1);
}

/* An hr_msg whose headers are Kafka headers, as the Kafka source's are. */
struct hmsg {
    struct hr_msg msg;
    rd_kafka_headers_t *hdrs;
};

static const void *
hmsg_header(const struct hr_msg *msg, const char *name, size_t *len)
{
    const void *val;

    if (rd_kafka_header_get_last(((const struct hmsg *)msg)->hdrs, name, &val,
                                 len))
        return NULL;
    return val;
}

static int hmsg_header_at(const struct hr_msg *msg,
                          size_t idx,
                          const char **name,
                          const void **value,
                          size_t *len)
{
    return rd_kafka_header_get_all(((const struct hmsg *)msg)->hdrs, idx, name,
                                   value, len)
               ? -1
               : 0;
}

static const struct hr_msg_ops hmsg_ops = {hmsg_header, hmsg_header_at};

static char *encode(rd_kafka_headers_t *hdrs, size_t *len)
{
    struct hmsg m = {.msg = {.ops = &hmsg_ops}, .hdrs = hdrs};

    return guard_hdrs_encode(hdrs ? &m.msg : NULL, len);
}

static void test_guard_header_blob_round_trips(void **state)
{
    rd_kafka_headers_t *in = rd_kafka_headers_new(4), *out;
    const char bin[] = {'a', '\0', 'b'};
    const char *name;
    const void *val;
    size_t len, blen;
    char *blob;

    (void)state;
    rd_kafka_header_add(in, "herald-attempt", -1, "3", -1);
    rd_kafka_header_add(in, "bin", -1, bin, sizeof(bin));
    rd_kafka_header_add(in, "null", -1, NULL, 0);
    rd_kafka_header_add(in, "empty", -1, "", 0);
    blob = encode(in, &blen);
    assert_non_null(blob);
    out = guard_hdrs_decode(blob, blen);
    assert_non_null(out);
    assert_int_equal(rd_kafka_header_cnt(out), 4);
    assert_int_equal(rd_kafka_header_get_all(out, 1, &name, &val, &len), 0);
    assert_string_equal(name, "bin");
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(val, bin, sizeof(bin));
    assert_int_equal(rd_kafka_header_get_last(out, "null", &val, &len), 0);
    assert_null(val);
    assert_true(guard_hdrs_get_i64(out, "herald-attempt", 1) == 3);
    guard_hdrs_set_i64(out, "herald-attempt", 4);
    assert_true(guard_hdrs_get_i64(out, "herald-attempt", 1) == 4);
    assert_true(guard_hdrs_get_i64(out, "missing", 7) == 7);
    /* Truncated blobs are refused, never read past. */
    for (size_t cut = 1; cut < blen; cut++) {
        rd_kafka_headers_t *bad = guard_hdrs_decode(blob, cut);

        if (bad)
            rd_kafka_headers_destroy(bad);
    }
    assert_null(guard_hdrs_decode(blob, 3));
    rd_kafka_headers_destroy(out);
    rd_kafka_headers_destroy(in);
    free(blob);
    /* No headers at all. */
    blob = encode(NULL, &blen);
    assert_non_null(blob);
    assert_int_equal(blen, 0);
    out = guard_hdrs_decode(blob, blen);
    assert_non_null(out);
    assert_int_equal(rd_kafka_header_cnt(out), 0);
    rd_kafka_headers_destroy(out);
    free(blob);
}

/* The tick reads headers straight from the blob: the last one of a name
 * counts, a value-less header is found with a NULL value, and malformed
 * blobs are refused. */
static void test_guard_header_blob_lookup(void **state)
{
    rd_kafka_headers_t *in = rd_kafka_headers_new(4);
    const char *v;
    size_t len, blen;
    char *blob;

    (void)state;
    rd_kafka_header_add(in, "herald-attempt", -1, "3", -1);
    rd_kafka_header_add(in, "herald-error", -1, "parked behind", -1);
    rd_kafka_header_add(in, "herald-attempt", -1, "5", -1);
    rd_kafka_header_add(in, "null", -1, NULL, 0);
    blob = encode(in, &blen);
    assert_true(guard_hdrs_blob_ok(blob, blen));
    assert_int_equal(guard_hdrs_blob_i64(blob, blen, "herald-attempt", 1), 5);
    assert_int_equal(guard_hdrs_blob_i64(blob, blen, "missing", 9), 9);
    assert_int_equal(guard_hdrs_blob_get(blob, blen, "herald-error", &v, &len),
                     0);
    assert_int_equal(len, 13);
    assert_memory_equal(v, "parked behind", 13);
    assert_int_equal(guard_hdrs_blob_get(blob, blen, "null", &v, &len), 0);
    assert_null(v);
    assert_int_equal(guard_hdrs_blob_get(blob, blen, "nope", &v, &len), -1);
    for (size_t cut = 1; cut < blen; cut++) {
        /* a cut blob is malformed unless it ends on a header boundary */
        if (!guard_hdrs_blob_ok(blob, cut))
            assert_int_equal(
                guard_hdrs_blob_get(blob, cut, "herald-attempt", &v, &len), -1);
    }
    assert_false(guard_hdrs_blob_ok(blob, 3));
    rd_kafka_headers_destroy(in);
    free(blob);
}

/* A schedule item round-trips, with or without a key, and a malformed one
 * is refused. */
static void test_guard_item_round_trips(void **state)
{
    const char bin[] = {'k', '\0', 'y'};
    struct guard_item it = {
        .topic = "herald.redeliver.fanout",
        .topic_len = 23,
        .key = bin,
        .key_len = sizeof(bin),
        .value = "{}",
        .value_len = 2,
        .hdrs = "",
        .hdrs_len = 0,
        .dest = "webhook:a,webhook:b",
        .dest_len = 19,
    };
    struct guard_item out;
    char buf[256];
    size_t n;

    (void)state;
    n = guard_item_encode(buf, &it);
    assert_int_equal(n, guard_item_size(&it));
    assert_int_equal(guard_item_decode(buf, n, &out), 0);
    assert_int_equal(out.topic_len, 23);
    assert_memory_equal(out.topic, it.topic, 23);
    assert_int_equal(out.key_len, 3);
    assert_memory_equal(out.key, bin, 3);
    assert_int_equal(out.value_len, 2);
    assert_int_equal(out.hdrs_len, 0);
    assert_non_null(out.hdrs);
    assert_int_equal(out.dest_len, 19);
    it.key = NULL;
    it.key_len = 0;
    n = guard_item_encode(buf, &it);
    assert_int_equal(guard_item_decode(buf, n, &out), 0);
    assert_null(out.key);
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(guard_item_decode(buf, cut, &out), -1);
    assert_int_equal(guard_item_decode(buf, n + 1, &out), -1);
}

/* The guard repeats hr_circuit's settings (one table per worker): they must
 * not drift apart. */
static void test_guard_conf_repeats_circuit_settings(void **state)
{
    const struct hr_conf_spec *c = hr_circuit_conf_specs();

    (void)state;
    for (; c->name; c++) {
        const struct hr_conf_spec *g = guard_conf;

        while (g->name && strcmp(g->name, c->name))
            g++;
        assert_non_null(g->name);
        assert_int_equal(g->type, c->type);
        assert_string_equal(g->def, c->def);
        assert_true(g->min == c->min && g->max == c->max);
    }
}

static void test_guard_conf_loads_defaults(void **state)
{
    struct hr_conf *cfg = hr_conf_new();

    (void)state;
    hr_conf_add_specs(cfg, hr_source_conf); /* as the runtime does */
    hr_conf_add_specs(cfg, guard_conf);
    assert_int_equal(hr_conf_load(cfg, NULL), 0);
    guard_validate(cfg);
    assert_int_equal(hr_conf_error_count(cfg), 0);
    hr_conf_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_decide_attempts_and_age),
        cmocka_unit_test(test_guard_due_is_full_jitter_capped),
        cmocka_unit_test(test_guard_due_honours_retry_after_as_lower_bound),
        cmocka_unit_test(test_guard_item_id_names_origin_and_attempt),
        cmocka_unit_test(test_guard_parse_i64),
        cmocka_unit_test(test_guard_header_blob_round_trips),
        cmocka_unit_test(test_guard_header_blob_lookup),
        cmocka_unit_test(test_guard_item_round_trips),
        cmocka_unit_test(test_guard_conf_repeats_circuit_settings),
        cmocka_unit_test(test_guard_conf_loads_defaults),
    };

    return cmocka_run_group_tests_name("guard helpers", tests, NULL, NULL);
}
