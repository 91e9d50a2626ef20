/* Unit tests for hr_log: JSON lines on stderr, captured through a temporary
 * file dup2()'d over fd 2 and parsed back with jansson. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "hr_banned.h"
#include "hr_log.h"
#include "hr_time.h"

struct capture {
    int saved_fd;
    int fd;
};

static void capture_begin(struct capture *c)
{
    char path[] = "/tmp/herald-test-log-XXXXXX";

    c->fd = mkstemp(path);
    assert_true(c->fd >= 0);
    unlink(path);
    c->saved_fd = dup(STDERR_FILENO);
    assert_true(c->saved_fd >= 0);
    assert_int_equal(dup2(c->fd, STDERR_FILENO), STDERR_FILENO);
}

/* Restore stderr and return everything written meanwhile (caller frees). */
static char *capture_end(struct capture *c)
{
    off_t size;
    char *buf;
    size_t got = 0;

    assert_int_equal(dup2(c->saved_fd, STDERR_FILENO), STDERR_FILENO);
    close(c->saved_fd);
    size = lseek(c->fd, 0, SEEK_END);
    assert_true(size >= 0);
    assert_int_equal(lseek(c->fd, 0, SEEK_SET), 0);
    buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    while (got < (size_t)size) {
        ssize_t n = read(c->fd, buf + got, (size_t)size - got);

        assert_true(n > 0);
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(c->fd);
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Parse @text, which must be exactly one line holding one JSON object. */
static json_t *parse_one_line(const char *text)
{
    json_error_t err;
    json_t *root;
    size_t len = strlen(text);

    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n');
    assert_int_equal(count_lines(text), 1);
    root = json_loads(text, 0, &err);
    if (!root)
        fail_msg("invalid JSON line (%s): %s", err.text, text);
    assert_true(json_is_object(root));
    return root;
}

/* The keys of @obj, in order, must be exactly @keys (NULL-terminated). */
static void assert_keys_in_order(const json_t *obj, const char *const *keys)
{
    void *iter = json_object_iter((json_t *)(uintptr_t)obj);
    size_t i = 0;

    for (; iter;
         iter = json_object_iter_next((json_t *)(uintptr_t)obj, iter), i++) {
        assert_non_null(keys[i]);
        assert_string_equal(json_object_iter_key(iter), keys[i]);
    }
    assert_null(keys[i]);
}

static const char *get_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_defaults_are_herald_info_json(void **state)
{
    struct capture c;
    json_t *root;
    char *out;

    (void)state;
    /* must run before any hr_log_setup() in this process */
    assert_false(hr_log_enabled(HR_LOG_DEBUG));
    assert_true(hr_log_enabled(HR_LOG_INFO));
    capture_begin(&c);
    hr_log_debug("hidden");
    hr_log_info("started");
    out = capture_end(&c);
    root = parse_one_line(out);
    assert_string_equal(get_str(root, "worker"), "herald");
    assert_string_equal(get_str(root, "level"), "info");
    assert_string_equal(get_str(root, "msg"), "started");
    json_decref(root);
    free(out);
}

static void
test_json_line_has_fixed_fields_first_then_fields_in_order(void **state)
{
    static const char *const keys[] = {
        "ts",     "level",      "worker", "msg",   "topic", "partition",
        "offset", "elapsed_ms", "ok",     "ratio", NULL,
    };
    struct capture c;
    json_t *root;
    char *out;
    int64_t ms, before = hr_time_now_ms();

    (void)state;
    hr_log_setup("unread", HR_LOG_INFO, true);
    capture_begin(&c);
    hr_log_info("message processed", HR_LOG_STR("topic", "herald.messages"),
                HR_LOG_I32("partition", 7),
                HR_LOG_I64("offset", INT64_C(9007199254740993)),
                HR_LOG_I64("elapsed_ms", -3), HR_LOG_BOOL("ok", true),
                HR_LOG_DBL("ratio", 0.25));
    out = capture_end(&c);
    assert_true(strncmp(out, "{\"ts\":\"", 7) == 0);
    root = parse_one_line(out);
    assert_keys_in_order(root, keys);
    assert_string_equal(get_str(root, "level"), "info");
    assert_string_equal(get_str(root, "worker"), "unread");
    assert_string_equal(get_str(root, "msg"), "message processed");
    assert_string_equal(get_str(root, "topic"), "herald.messages");
    assert_int_equal(json_integer_value(json_object_get(root, "partition")), 7);
    assert_int_equal(json_integer_value(json_object_get(root, "offset")),
                     INT64_C(9007199254740993));
    assert_int_equal(json_integer_value(json_object_get(root, "elapsed_ms")),
                     -3);
    assert_true(json_is_true(json_object_get(root, "ok")));
    assert_true(json_real_value(json_object_get(root, "ratio")) == 0.25);
    /* ts: RFC 3339 UTC with milliseconds, close to now */
    assert_int_equal(strlen(get_str(root, "ts")), 24);
    assert_int_equal(get_str(root, "ts")[19], '.');
    assert_int_equal(get_str(root, "ts")[23], 'Z');
    assert_int_equal(hr_time_parse_rfc3339(get_str(root, "ts"), &ms), 0);
    assert_true(ms >= before - 1000 && ms <= hr_time_now_ms() + 1000);
    json_decref(root);
    free(out);
}

static void test_levels_below_minimum_are_filtered(void **state)
{
    static const char *const names[] = {"warn", "error"};
    struct capture c;
    char *out, *line;
    size_t i = 0;

    (void)state;
    hr_log_setup("guard", HR_LOG_WARN, true);
    assert_false(hr_log_enabled(HR_LOG_DEBUG));
    assert_false(hr_log_enabled(HR_LOG_INFO));
    assert_true(hr_log_enabled(HR_LOG_WARN));
    assert_true(hr_log_enabled(HR_LOG_ERROR));
    capture_begin(&c);
    hr_log_debug("d");
    hr_log_info("i");
    hr_log_warn("w");
    hr_log_error("e");
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 2);
    for (line = out; *line; i++) {
        char *nl = strchr(line, '\n');
        char save = nl[1];
        json_t *root;

        nl[1] = '\0';
        root = parse_one_line(line);
        nl[1] = save;
        assert_string_equal(get_str(root, "level"), names[i]);
        json_decref(root);
        line = nl + 1;
    }

    /* debug lets everything through */
    hr_log_setup("guard", HR_LOG_DEBUG, true);
    free(out);
    capture_begin(&c);
    hr_log_debug("d");
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "\"level\":\"debug\""));
    free(out);
}

static void test_strings_are_escaped(void **state)
{
    const char *nasty = "say \"hi\"\\ \n\t\r\x01\x1f\x7f/end";
    struct capture c;
    json_t *root;
    char *out;

    (void)state;
    hr_log_setup("wo\"rk\\er", HR_LOG_INFO, true);
    capture_begin(&c);
    hr_log_info("msg \"quoted\"\n", HR_LOG_STR("k\"ey", nasty));
    out = capture_end(&c);
    root = parse_one_line(out);
    assert_string_equal(get_str(root, "worker"), "wo\"rk\\er");
    assert_string_equal(get_str(root, "msg"), "msg \"quoted\"\n");
    assert_string_equal(get_str(root, "k\"ey"), nasty);
    /* control characters are written as \u00XX */
    assert_non_null(strstr(out, "\\u000a"));
    assert_non_null(strstr(out, "\\u0009"));
    assert_non_null(strstr(out, "\\u0001"));
    assert_non_null(strstr(out, "\\u001f"));
    assert_non_null(strstr(out, "\\\"hi\\\"\\\\"));
    json_decref(root);
    free(out);
}

static void test_valid_utf8_passes_through(void **state)
{
    const char *text = "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 "
                       "\xef\xbf\xbd";
    struct capture c;
    json_t *root;
    char *out;

    (void)state;
    hr_log_setup("push", HR_LOG_INFO, true);
    capture_begin(&c);
    hr_log_info("utf8", HR_LOG_STR("text", text));
    out = capture_end(&c);
    assert_non_null(strstr(out, text)); /* raw bytes, not \u escapes */
    root = parse_one_line(out);
    assert_string_equal(get_str(root, "text"), text);
    json_decref(root);
    free(out);
}

static void test_invalid_utf8_bytes_become_replacement_characters(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b"},
        /* lone continuation byte */
        {"\x80", "\xef\xbf\xbd"},
        /* overlong '/' : both bytes invalid */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        /* UTF-16 surrogate U+D800 */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        /* above U+10FFFF */
        {"\xf4\x90\x80\x80",
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        /* sequence cut short by the end of the string */
        {"x\xe2\x82", "x\xef\xbf\xbd\xef\xbf\xbd"},
        /* sequence cut short by an ASCII byte */
        {"\xc3(", "\xef\xbf\xbd("},
    };
    struct capture c;

    (void)state;
    hr_log_setup("push", HR_LOG_INFO, true);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *root;
        char *out;

        capture_begin(&c);
        hr_log_info("bad \xff utf8", HR_LOG_STR("v", cases[i].in));
        out = capture_end(&c);
        assert_non_null(strstr(out, "\\ufffd"));
        root = parse_one_line(out);
        assert_string_equal(get_str(root, "v"), cases[i].want);
        assert_string_equal(get_str(root, "msg"), "bad \xef\xbf\xbd utf8");
        json_decref(root);
        free(out);
    }
}

/* A value of @n copies of @unit (a whole UTF-8 character or byte). */
static char *repeat(const char *unit, size_t n)
{
    size_t len = strlen(unit);
    char *s = malloc(len * n + 1);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, unit, len);
    s[len * n] = '\0';
    return s;
}

static void test_long_values_are_truncated_with_ellipsis(void **state)
{
    static const char *const units[] = {"x", "\xe2\x9c\x93", "\n", "\""};
    struct capture c;

    (void)state;
    hr_log_setup("email", HR_LOG_INFO, true);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        char *big = repeat(units[i], 20000), *out;
        const char *v;
        json_t *root;

        capture_begin(&c);
        hr_log_info("big value", HR_LOG_STR("before", "kept"),
                    HR_LOG_STR("big", big), HR_LOG_I64("after", 1));
        out = capture_end(&c);
        assert_true(strlen(out) <= 8192);
        /* still one valid line: cut at a character boundary */
        root = parse_one_line(out);
        assert_string_equal(get_str(root, "before"), "kept");
        v = get_str(root, "big");
        assert_true(strlen(v) > 1000);
        assert_string_equal(v + strlen(v) - 3, "...");
        assert_true(strncmp(v, big, strlen(v) - 3) == 0);
        json_decref(root);
        free(out);
        free(big);
    }
}

static void test_long_message_and_many_fields_stay_one_valid_line(void **state)
{
    char *big = repeat("m", 9000), *out;
    const char *msg;
    struct capture c;
    json_t *root;

    (void)state;
    hr_log_setup("email", HR_LOG_INFO, true);
    capture_begin(&c);
    hr_log_info(big, HR_LOG_STR("a", big), HR_LOG_I64("b", 2));
    out = capture_end(&c);
    assert_true(strlen(out) <= 8192);
    root = parse_one_line(out);
    msg = get_str(root, "msg");
    assert_true(strlen(msg) > 8000);
    assert_string_equal(msg + strlen(msg) - 3, "...");
    json_decref(root);
    free(out);

    /* fields that fit only partly are dropped whole, never cut mid-number */
    capture_begin(&c);
    hr_log_info("almost full", HR_LOG_STR("a", big + 900),
                HR_LOG_I64("n1", INT64_MIN), HR_LOG_I64("n2", INT64_MAX));
    out = capture_end(&c);
    root = parse_one_line(out);
    json_decref(root);
    free(out);
    free(big);
}

static void test_null_nan_and_extreme_values(void **state)
{
    struct capture c;
    json_t *root;
    char *out;

    (void)state;
    hr_log_setup("subs", HR_LOG_INFO, true);
    capture_begin(&c);
    hr_log_info("values", HR_LOG_STR("none", NULL), HR_LOG_DBL("nan", NAN),
                HR_LOG_DBL("inf", INFINITY), HR_LOG_DBL("tenth", 0.1),
                HR_LOG_DBL("big", 1e300), HR_LOG_I64("min", INT64_MIN),
                HR_LOG_I64("max", INT64_MAX), HR_LOG_BOOL("no", false),
                HR_LOG_STR("empty", ""));
    out = capture_end(&c);
    root = parse_one_line(out);
    assert_true(json_is_null(json_object_get(root, "none")));
    assert_true(json_is_null(json_object_get(root, "nan")));
    assert_true(json_is_null(json_object_get(root, "inf")));
    assert_non_null(strstr(out, "\"tenth\":0.1,"));
    assert_true(json_number_value(json_object_get(root, "big")) == 1e300);
    assert_int_equal(json_integer_value(json_object_get(root, "min")),
                     INT64_MIN);
    assert_int_equal(json_integer_value(json_object_get(root, "max")),
                     INT64_MAX);
    assert_true(json_is_false(json_object_get(root, "no")));
    assert_string_equal(get_str(root, "empty"), "");
    json_decref(root);
    free(out);
}

static void test_text_format_is_ts_level_msg_key_values(void **state)
{
    struct capture c;
    char *out, *rest;
    int64_t ms;

    (void)state;
    hr_log_setup("unread", HR_LOG_DEBUG, false);
    capture_begin(&c);
    hr_log_warn("message processed", HR_LOG_STR("topic", "herald.messages"),
                HR_LOG_I64("offset", 42), HR_LOG_STR("err", "two words"),
                HR_LOG_BOOL("ok", false), HR_LOG_STR("nl", "a\nb"),
                HR_LOG_STR("empty", ""));
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 1);
    assert_true(strlen(out) > 25);
    out[24] = '\0';
    assert_int_equal(hr_time_parse_rfc3339(out, &ms), 0);
    rest = out + 25;
    assert_string_equal(rest,
                        "WARN message processed topic=herald.messages "
                        "offset=42 err=\"two words\" ok=false nl=\"a\\u000ab\" "
                        "empty=\"\"\n");
    free(out);
    hr_log_setup("herald", HR_LOG_INFO, true);
}

static void test_logging_preserves_errno(void **state)
{
    struct capture c;

    (void)state;
    hr_log_setup("herald", HR_LOG_INFO, true);
    capture_begin(&c);
    errno = ENOENT;
    hr_log_info("errno check");
    assert_int_equal(errno, ENOENT);
    free(capture_end(&c));
}

static void test_parse_level(void **state)
{
    enum hr_log_level level = HR_LOG_ERROR;

    (void)state;
    assert_int_equal(hr_log_parse_level("debug", &level), 0);
    assert_int_equal(level, HR_LOG_DEBUG);
    assert_int_equal(hr_log_parse_level("info", &level), 0);
    assert_int_equal(level, HR_LOG_INFO);
    assert_int_equal(hr_log_parse_level("warn", &level), 0);
    assert_int_equal(level, HR_LOG_WARN);
    assert_int_equal(hr_log_parse_level("error", &level), 0);
    assert_int_equal(level, HR_LOG_ERROR);
    assert_int_equal(hr_log_parse_level("loud", &level), -1);
    assert_int_equal(hr_log_parse_level("", &level), -1);
    assert_int_equal(hr_log_parse_level(NULL, &level), -1);
    assert_int_equal(level, HR_LOG_ERROR);
}

#define THREADS          4
#define LINES_PER_THREAD 300

static void *log_thread(void *arg)
{
    char *big = repeat("y", 3000);

    for (int i = 0; i < LINES_PER_THREAD; i++)
        hr_log_info("concurrent", HR_LOG_I64("thread", (intptr_t)arg),
                    HR_LOG_I64("i", i), HR_LOG_STR("pad", big));
    free(big);
    return NULL;
}

static void test_concurrent_lines_never_interleave(void **state)
{
    pthread_t threads[THREADS];
    struct capture c;
    char *out, *line;
    size_t n = 0;

    (void)state;
    hr_log_setup("fanout", HR_LOG_INFO, true);
    capture_begin(&c);
    for (intptr_t t = 0; t < THREADS; t++)
        assert_int_equal(
            pthread_create(&threads[t], NULL, log_thread, (void *)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    out = capture_end(&c);
    assert_int_equal(count_lines(out), THREADS * LINES_PER_THREAD);
    for (line = out; *line; n++) {
        char *nl = strchr(line, '\n');
        json_t *root;

        *nl = '\0';
        root = json_loads(line, 0, NULL);
        if (!root)
            fail_msg("interleaved line %zu", n);
        json_decref(root);
        line = nl + 1;
    }
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first: checks the state before any hr_log_setup() */
        cmocka_unit_test(test_defaults_are_herald_info_json),
        cmocka_unit_test(
            test_json_line_has_fixed_fields_first_then_fields_in_order),
        cmocka_unit_test(test_levels_below_minimum_are_filtered),
        cmocka_unit_test(test_strings_are_escaped),
        cmocka_unit_test(test_valid_utf8_passes_through),
        cmocka_unit_test(test_invalid_utf8_bytes_become_replacement_characters),
        cmocka_unit_test(test_long_values_are_truncated_with_ellipsis),
        cmocka_unit_test(test_long_message_and_many_fields_stay_one_valid_line),
        cmocka_unit_test(test_null_nan_and_extreme_values),
        cmocka_unit_test(test_text_format_is_ts_level_msg_key_values),
        cmocka_unit_test(test_logging_preserves_errno),
        cmocka_unit_test(test_parse_level),
        cmocka_unit_test(test_concurrent_lines_never_interleave),
    };

    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
