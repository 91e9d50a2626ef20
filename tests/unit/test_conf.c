/* Unit tests for hr_conf: typed settings from the environment, the --config
 * file and defaults; validation, secrets, --help and --check-config output. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "hr_banned.h"
#include "hr_conf.h"

static const struct hr_conf_spec test_specs[] = {
    HR_CONF_STR("HT_STR", "dflt", 0, "a string"),
    HR_CONF_INT("HT_INT", "5", 1, 10, 0, "an integer"),
    HR_CONF_MS("HT_MS", "1000", 0, "a timeout"),
    HR_CONF_DOUBLE("HT_DBL", "0.5", 0, 1, 0, "a ratio"),
    HR_CONF_BOOL("HT_BOOL", "off", 0, "a switch"),
    HR_CONF_URL("HT_URL", "redis://127.0.0.1:6379/0", 0, "a url"),
    HR_CONF_PATH("HT_PATH", NULL, 0, "a file"),
    HR_CONF_ENUM("HT_ENUM", "info", "debug|info|warn|error", 0, "a level"),
    HR_CONF_ADDR("HT_ADDR", "0.0.0.0:9400", 0, "a listen address"),
    HR_CONF_STR("HT_SECRET", NULL, HR_CONF_SECRET, "a password"),
    HR_CONF_URL("HT_FURL", NULL, HR_CONF_FROM_FILE, "a url, or from a file"),
    HR_CONF_END,
};

/* Secrets of every type whose validation can fail. */
static const struct hr_conf_spec secret_specs[] = {
    HR_CONF_URL("HT_S_URL", NULL, HR_CONF_SECRET, "url with a password"),
    HR_CONF_INT("HT_S_INT", NULL, 0, 9, HR_CONF_SECRET, "secret int"),
    HR_CONF_ENUM("HT_S_ENUM", NULL, "a|b", HR_CONF_SECRET, "secret enum"),
    HR_CONF_BOOL("HT_S_BOOL", NULL, HR_CONF_SECRET, "secret bool"),
    HR_CONF_PATH("HT_S_PATH", NULL, HR_CONF_SECRET, "secret path"),
    HR_CONF_END,
};

static const struct hr_conf_spec required_specs[] = {
    HR_CONF_STR("HT_REQ", NULL, HR_CONF_REQUIRED, "must be given"),
    HR_CONF_STR("HT_REQ_SECRET",
                NULL,
                HR_CONF_REQUIRED | HR_CONF_SECRET,
                "must be given too"),
    HR_CONF_URL("HT_REQ_DEF", "http://x", HR_CONF_REQUIRED, "has a default"),
    HR_CONF_END,
};

static const char *const env_names[] = {
    "HERALD_CONFIG", "HT_STR",      "HT_INT",        "HT_MS",
    "HT_DBL",        "HT_BOOL",     "HT_URL",        "HT_PATH",
    "HT_ENUM",       "HT_ADDR",     "HT_SECRET",     "HT_SECRET_FILE",
    "HT_S_URL",      "HT_S_INT",    "HT_S_ENUM",     "HT_S_BOOL",
    "HT_S_PATH",     "HT_REQ",      "HT_REQ_SECRET", "HT_REQ_SECRET_FILE",
    "HT_REQ_DEF",    "HT_STR_FILE", "HT_FURL",       "HT_FURL_FILE",
};

#define MAX_TEMP 16
static char temp_paths[MAX_TEMP][64];
static int n_temp;

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        unsetenv(env_names[i]);
}

static int setup(void **state)
{
    (void)state;
    clear_env();
    n_temp = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clear_env();
    for (int i = 0; i < n_temp; i++)
        unlink(temp_paths[i]);
    n_temp = 0;
    return 0;
}

/* A temporary file holding @content; removed by teardown(). */
static const char *write_temp(const char *content)
{
    char *path;
    size_t len = strlen(content);
    int fd;

    assert_true(n_temp < MAX_TEMP);
    path = temp_paths[n_temp++];
    snprintf(path, 64, "/tmp/herald-test-conf-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static struct hr_conf *conf_with(const struct hr_conf_spec *specs)
{
    struct hr_conf *cfg = hr_conf_new();

    hr_conf_add_specs(cfg, specs);
    return cfg;
}

static void dump_errors(const struct hr_conf *cfg)
{
    for (int i = 0; i < hr_conf_error_count(cfg); i++)
        print_message("  error: %s\n", hr_conf_error(cfg, i));
}

/* Load @specs with the current environment and @file; expect @n errors. */
static struct hr_conf *
load_expect(const struct hr_conf_spec *specs, const char *file, int n)
{
    struct hr_conf *cfg = conf_with(specs);
    int got = hr_conf_load(cfg, file);

    if (got != n) {
        dump_errors(cfg);
        fail_msg("expected %d errors, got %d", n, got);
    }
    assert_int_equal(hr_conf_error_count(cfg), n);
    return cfg;
}

static bool has_error(const struct hr_conf *cfg, const char *text)
{
    for (int i = 0; i < hr_conf_error_count(cfg); i++) {
        if (strcmp(hr_conf_error(cfg, i), text) == 0)
            return true;
    }
    return false;
}

/* {"value": ..., "source": ...} of @name in hr_conf_effective(). */
static void assert_effective(const struct hr_conf *cfg,
                             const char *name,
                             const char *value,
                             const char *source)
{
    json_t *eff = hr_conf_effective(cfg);
    const json_t *entry = json_object_get(eff, name);

    if (!value) {
        assert_null(entry);
    } else {
        assert_non_null(entry);
        assert_string_equal(json_string_value(json_object_get(entry, "value")),
                            value);
        assert_string_equal(json_string_value(json_object_get(entry, "source")),
                            source);
    }
    json_decref(eff);
}

static void test_defaults_apply_when_nothing_is_set(void **state)
{
    struct hr_conf *cfg = load_expect(test_specs, NULL, 0);

    (void)state;
    assert_string_equal(hr_conf_str(cfg, "HT_STR"), "dflt");
    assert_int_equal(hr_conf_int(cfg, "HT_INT"), 5);
    assert_int_equal(hr_conf_int(cfg, "HT_MS"), 1000);
    assert_true(hr_conf_double(cfg, "HT_DBL") == 0.5);
    assert_false(hr_conf_bool(cfg, "HT_BOOL"));
    assert_string_equal(hr_conf_str(cfg, "HT_URL"), "redis://127.0.0.1:6379/0");
    assert_string_equal(hr_conf_str(cfg, "HT_ENUM"), "info");
    assert_string_equal(hr_conf_str(cfg, "HT_ADDR"), "0.0.0.0:9400");
    assert_false(hr_conf_is_set(cfg, "HT_PATH"));
    assert_null(hr_conf_str(cfg, "HT_PATH"));
    assert_false(hr_conf_is_set(cfg, "HT_SECRET"));
    assert_true(hr_conf_is_set(cfg, "HT_STR"));
    assert_null(hr_conf_json(cfg));
    assert_effective(cfg, "HT_STR", "dflt", "default");
    assert_effective(cfg, "HT_PATH", NULL, NULL);
    hr_conf_free(cfg);
}

static void test_valid_values_of_every_type_are_accepted(void **state)
{
    const char *file = write_temp("x");
    const struct {
        const char *name, *value;
    } cases[] = {
        {"HT_STR", "anything at all"},
        {"HT_INT", "1"},
        {"HT_INT", "10"},
        {"HT_INT", "+7"},
        {"HT_MS", "0"},
        {"HT_MS", "25000"},
        {"HT_MS", "9223372036854775807"},
        {"HT_DBL", "0"},
        {"HT_DBL", "1"},
        {"HT_DBL", "0.25"},
        {"HT_DBL", "1e-3"},
        {"HT_DBL", ".5"},
        {"HT_URL", "unix:///tmp/redis.sock"},
        {"HT_URL", "https://api.push.apple.com"},
        {"HT_URL", "redis://:pw@host:6379/2"},
        {"HT_URL", "smtp+tls://mail.example.com:465"},
        {"HT_PATH", file},
        {"HT_ENUM", "debug"},
        {"HT_ENUM", "info"},
        {"HT_ENUM", "warn"},
        {"HT_ENUM", "error"},
        {"HT_ADDR", "off"},
        {"HT_ADDR", ":9400"},
        {"HT_ADDR", "127.0.0.1:0"},
        {"HT_ADDR", "0.0.0.0:65535"},
        {"HT_ADDR", "localhost:8080"},
        {"HT_ADDR", "metrics.svc-1.local:80"},
        {"HT_ADDR", "[::1]:9400"},
        {"HT_ADDR", "[::]:9400"},
        {"HT_ADDR", "[fe80::1%eth0]:80"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hr_conf *cfg;

        setenv(cases[i].name, cases[i].value, 1);
        cfg = conf_with(test_specs);
        if (hr_conf_load(cfg, NULL) != 0) {
            dump_errors(cfg);
            fail_msg("%s=%s rejected", cases[i].name, cases[i].value);
        }
        assert_string_equal(hr_conf_str(cfg, cases[i].name), cases[i].value);
        assert_effective(cfg, cases[i].name, cases[i].value, "env");
        hr_conf_free(cfg);
        unsetenv(cases[i].name);
    }
}

static void test_numbers_are_parsed(void **state)
{
    struct hr_conf *cfg;

    (void)state;
    setenv("HT_INT", "+7", 1);
    setenv("HT_MS", "25000", 1);
    setenv("HT_DBL", "0.25", 1);
    cfg = load_expect(test_specs, NULL, 0);
    assert_int_equal(hr_conf_int(cfg, "HT_INT"), 7);
    assert_true(hr_conf_double(cfg, "HT_INT") == 7.0);
    assert_int_equal(hr_conf_int(cfg, "HT_MS"), 25000);
    assert_true(hr_conf_double(cfg, "HT_DBL") == 0.25);
    hr_conf_free(cfg);
}

static void test_booleans_accept_every_spelling(void **state)
{
    static const struct {
        const char *value;
        bool want;
    } cases[] = {
        {"1", true},    {"0", false},     {"true", true}, {"false", false},
        {"TRUE", true}, {"False", false}, {"yes", true},  {"no", false},
        {"Yes", true},  {"NO", false},    {"on", true},   {"off", false},
        {"ON", true},   {"Off", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hr_conf *cfg;

        setenv("HT_BOOL", cases[i].value, 1);
        cfg = load_expect(test_specs, NULL, 0);
        if (hr_conf_bool(cfg, "HT_BOOL") != cases[i].want)
            fail_msg("HT_BOOL=%s parsed wrong", cases[i].value);
        hr_conf_free(cfg);
    }
}

static void test_invalid_values_of_every_type_are_rejected(void **state)
{
    static const struct {
        const char *name, *value;
    } cases[] = {
        {"HT_INT", "0"},
        {"HT_INT", "11"},
        {"HT_INT", "-3"},
        {"HT_INT", "abc"},
        {"HT_INT", "5x"},
        {"HT_INT", " 5"},
        {"HT_INT", "5.0"},
        {"HT_INT", "99999999999999999999"},
        {"HT_MS", "-1"},
        {"HT_MS", "1.5"},
        {"HT_MS", "10s"},
        {"HT_MS", "ms"},
        {"HT_DBL", "-0.1"},
        {"HT_DBL", "1.5"},
        {"HT_DBL", "nan"},
        {"HT_DBL", "inf"},
        {"HT_DBL", "x"},
        {"HT_DBL", "0.5x"},
        {"HT_DBL", " 0.5"},
        {"HT_BOOL", "2"},
        {"HT_BOOL", "maybe"},
        {"HT_BOOL", "y"},
        {"HT_BOOL", "truee"},
        {"HT_URL", "xyz"},
        {"HT_URL", "://host"},
        {"HT_URL", "redis://"},
        {"HT_URL", "1redis://host"},
        {"HT_URL", "re dis://host"},
        {"HT_URL", "redis://a b"},
        {"HT_URL", "host:6379"},
        {"HT_PATH", "/nonexistent/herald/file"},
        {"HT_PATH", "/tmp"},
        {"HT_ENUM", "loud"},
        {"HT_ENUM", "INFO"},
        {"HT_ENUM", "inf"},
        {"HT_ENUM", "debug|info"},
        {"HT_ADDR", "9400"},
        {"HT_ADDR", "host:"},
        {"HT_ADDR", "host:65536"},
        {"HT_ADDR", "host:-1"},
        {"HT_ADDR", "host:port"},
        {"HT_ADDR", "::1:80"},
        {"HT_ADDR", "[::1]"},
        {"HT_ADDR", "[]:80"},
        {"HT_ADDR", "[::1:80"},
        {"HT_ADDR", "a b:80"},
        {"HT_ADDR", "OFF"},
        {"HT_ADDR", "host:123456"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hr_conf *cfg;
        char prefix[64];

        setenv(cases[i].name, cases[i].value, 1);
        cfg = conf_with(test_specs);
        if (hr_conf_load(cfg, NULL) != 1)
            fail_msg("%s=%s: expected one error, got %d", cases[i].name,
                     cases[i].value, hr_conf_error_count(cfg));
        snprintf(prefix, sizeof(prefix), "%s: ", cases[i].name);
        if (strncmp(hr_conf_error(cfg, 0), prefix, strlen(prefix)) != 0)
            fail_msg("error does not start with the name: %s",
                     hr_conf_error(cfg, 0));
        /* the (non-secret) value is quoted so the operator sees it */
        if (!strstr(hr_conf_error(cfg, 0), cases[i].value))
            fail_msg("error does not show the value: %s",
                     hr_conf_error(cfg, 0));
        hr_conf_free(cfg);
        unsetenv(cases[i].name);
    }
}

static void test_error_messages_are_exact(void **state)
{
    struct hr_conf *cfg;

    (void)state;
    setenv("HT_URL", "xyz", 1);
    setenv("HT_ENUM", "loud", 1);
    setenv("HT_INT", "11", 1);
    setenv("HT_BOOL", "maybe", 1);
    setenv("HT_ADDR", "9400", 1);
    setenv("HT_MS", "-1", 1);
    setenv("HT_DBL", "2", 1);
    setenv("HT_PATH", "/tmp", 1);
    cfg = load_expect(test_specs, NULL, 8);
    assert_true(has_error(cfg, "HT_URL: invalid url 'xyz'"));
    assert_true(has_error(
        cfg, "HT_ENUM: must be one of debug|info|warn|error, got 'loud'"));
    assert_true(has_error(
        cfg, "HT_INT: must be an integer between 1 and 10, got '11'"));
    assert_true(has_error(cfg, "HT_BOOL: must be a boolean (1/0, true/false, "
                               "yes/no, on/off), got 'maybe'"));
    assert_true(has_error(
        cfg, "HT_ADDR: must be host:port (port 0-65535) or off, got '9400'"));
    assert_true(has_error(
        cfg, "HT_MS: must be a non-negative integer (milliseconds), got '-1'"));
    assert_true(
        has_error(cfg, "HT_DBL: must be a number between 0 and 1, got '2'"));
    assert_true(has_error(cfg, "HT_PATH: '/tmp' is not a regular file"));
    hr_conf_free(cfg);
}

static void test_every_error_is_reported_not_just_the_first(void **state)
{
    static const char *const names[] = {"HT_INT",  "HT_MS",  "HT_DBL",
                                        "HT_BOOL", "HT_URL", "HT_PATH",
                                        "HT_ENUM", "HT_ADDR"};
    const char *file = write_temp("{\"HT_STR\": [1, 2]");
    struct hr_conf *cfg;

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        setenv(names[i], "bogus value", 1);
    cfg = conf_with(test_specs);
    hr_conf_add_specs(cfg, required_specs);
    /* eight bad values, a broken config file, two missing settings */
    assert_int_equal(hr_conf_load(cfg, file), 8 + 1 + 2);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        bool found = false;

        for (int e = 0; e < hr_conf_error_count(cfg); e++)
            found |=
                strncmp(hr_conf_error(cfg, e), names[i], strlen(names[i])) == 0;
        if (!found)
            fail_msg("no error for %s", names[i]);
    }
    assert_true(has_error(cfg, "HT_REQ: required but not set"));
    /* a worker's own checks add to the same list */
    hr_conf_add_error(cfg, "HT_STR: conflicts with %s", "HT_INT");
    assert_int_equal(hr_conf_error_count(cfg), 12);
    assert_string_equal(hr_conf_error(cfg, 11),
                        "HT_STR: conflicts with HT_INT");
    hr_conf_free(cfg);
}

static void test_required_settings_must_be_set(void **state)
{
    struct hr_conf *cfg;

    (void)state;
    cfg = load_expect(required_specs, NULL, 2);
    assert_true(has_error(cfg, "HT_REQ: required but not set"));
    assert_true(has_error(cfg, "HT_REQ_SECRET: required but not set (set "
                               "HT_REQ_SECRET or HT_REQ_SECRET_FILE)"));
    assert_string_equal(hr_conf_str(cfg, "HT_REQ_DEF"), "http://x");
    hr_conf_free(cfg);

    setenv("HT_REQ", "here", 1);
    setenv("HT_REQ_SECRET_FILE", write_temp("pw\n"), 1);
    cfg = load_expect(required_specs, NULL, 0);
    assert_string_equal(hr_conf_str(cfg, "HT_REQ_SECRET"), "pw");
    hr_conf_free(cfg);
}

static void test_env_overrides_file_and_file_overrides_default(void **state)
{
    const char *file = write_temp("{\"HT_STR\": \"from-file\", \"HT_INT\": 7, "
                                  "\"HT_URL\": \"http://file\"}");
    struct hr_conf *cfg;

    (void)state;
    setenv("HT_STR", "from-env", 1);
    cfg = conf_with(test_specs);
    hr_conf_set_default(cfg, "HT_URL", "http://override");
    hr_conf_set_default(cfg, "HT_ENUM", "warn");
    assert_int_equal(hr_conf_load(cfg, file), 0);
    assert_string_equal(hr_conf_str(cfg, "HT_STR"), "from-env");
    assert_int_equal(hr_conf_int(cfg, "HT_INT"), 7);
    assert_string_equal(hr_conf_str(cfg, "HT_URL"), "http://file");
    assert_string_equal(hr_conf_str(cfg, "HT_ENUM"), "warn");
    assert_string_equal(hr_conf_str(cfg, "HT_ADDR"), "0.0.0.0:9400");
    assert_effective(cfg, "HT_STR", "from-env", "env");
    assert_effective(cfg, "HT_INT", "7", "file");
    assert_effective(cfg, "HT_URL", "http://file", "file");
    assert_effective(cfg, "HT_ENUM", "warn", "default");
    assert_effective(cfg, "HT_ADDR", "0.0.0.0:9400", "default");
    hr_conf_free(cfg);
}

static void test_set_default_overrides_spec_default(void **state)
{
    struct hr_conf *cfg = conf_with(test_specs);

    (void)state;
    hr_conf_set_default(cfg, "HT_STR", "herald-unread");
    hr_conf_set_default(cfg, "HT_PATH", NULL);
    assert_int_equal(hr_conf_load(cfg, NULL), 0);
    assert_string_equal(hr_conf_str(cfg, "HT_STR"), "herald-unread");
    assert_effective(cfg, "HT_STR", "herald-unread", "default");
    hr_conf_free(cfg);

    /* an override is validated like any other value */
    cfg = conf_with(test_specs);
    hr_conf_set_default(cfg, "HT_INT", "42");
    assert_int_equal(hr_conf_load(cfg, NULL), 1);
    hr_conf_free(cfg);
}

static void test_empty_env_counts_as_unset(void **state)
{
    struct hr_conf *cfg;

    (void)state;
    setenv("HT_STR", "", 1);
    setenv("HT_INT", "", 1);
    cfg = load_expect(test_specs, NULL, 0);
    assert_string_equal(hr_conf_str(cfg, "HT_STR"), "dflt");
    assert_int_equal(hr_conf_int(cfg, "HT_INT"), 5);
    hr_conf_free(cfg);
}

static void test_file_accepts_strings_numbers_and_booleans(void **state)
{
    const char *file = write_temp(
        "{\"HT_INT\": 3, \"HT_DBL\": 0.75, \"HT_BOOL\": true, "
        "\"HT_MS\": 250, \"HT_STR\": false, \"HT_ENUM\": \"debug\"}");
    struct hr_conf *cfg;

    (void)state;
    cfg = load_expect(test_specs, file, 0);
    assert_int_equal(hr_conf_int(cfg, "HT_INT"), 3);
    assert_true(hr_conf_double(cfg, "HT_DBL") == 0.75);
    assert_true(hr_conf_bool(cfg, "HT_BOOL"));
    assert_int_equal(hr_conf_int(cfg, "HT_MS"), 250);
    assert_string_equal(hr_conf_str(cfg, "HT_STR"), "false");
    assert_string_equal(hr_conf_str(cfg, "HT_DBL"), "0.75");
    assert_string_equal(hr_conf_str(cfg, "HT_ENUM"), "debug");
    assert_effective(cfg, "HT_BOOL", "true", "file");
    hr_conf_free(cfg);
}

static void test_file_values_are_validated_too(void **state)
{
    const char *file =
        write_temp("{\"HT_INT\": 30, \"HT_ENUM\": \"loud\", \"HT_DBL\": 1.5}");
    struct hr_conf *cfg;

    (void)state;
    cfg = load_expect(test_specs, file, 3);
    assert_true(has_error(
        cfg, "HT_ENUM: must be one of debug|info|warn|error, got 'loud'"));
    hr_conf_free(cfg);
}

static void test_file_rejects_other_json_types_naming_the_key(void **state)
{
    const char *file = write_temp(
        "{\"HT_STR\": [1], \"HT_INT\": {\"a\": 1}, \"HT_URL\": null, "
        "\"other\": [1, 2]}");
    struct hr_conf *cfg;

    (void)state;
    cfg = load_expect(test_specs, file, 3);
    for (int i = 0; i < 3; i++) {
        const char *e = hr_conf_error(cfg, i);

        if (strncmp(e, "HT_STR: ", 8) != 0 && strncmp(e, "HT_INT: ", 8) != 0 &&
            strncmp(e, "HT_URL: ", 8) != 0)
            fail_msg("error does not name the key: %s", e);
        assert_non_null(strstr(e, file));
    }
    hr_conf_free(cfg);
}

static void test_config_file_extra_keys_are_kept_for_hr_conf_json(void **state)
{
    const char *file = write_temp("{\"rules\": [{\"name\": \"r1\"}], "
                                  "\"webhooks\": {}, \"HT_STR\": \"x\"}");
    struct hr_conf *cfg;
    const json_t *root, *rules;

    (void)state;
    cfg = load_expect(test_specs, file, 0);
    root = hr_conf_json(cfg);
    assert_non_null(root);
    rules = json_object_get(root, "rules");
    assert_true(json_is_array(rules));
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(rules, 0), "name")),
        "r1");
    assert_true(json_is_object(json_object_get(root, "webhooks")));
    assert_string_equal(hr_conf_str(cfg, "HT_STR"), "x");
    hr_conf_free(cfg);
}

static void test_config_file_that_is_not_an_object_is_an_error(void **state)
{
    static const char *const bodies[] = {"[1, 2]", "\"text\"", "{\"a\": ", ""};
    char want[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        const char *file = write_temp(bodies[i]);
        struct hr_conf *cfg = load_expect(test_specs, file, 1);

        snprintf(want, sizeof(want), "config file '%s': ", file);
        assert_true(strncmp(hr_conf_error(cfg, 0), want, strlen(want)) == 0);
        assert_null(hr_conf_json(cfg));
        /* the settings still resolve from their defaults */
        assert_string_equal(hr_conf_str(cfg, "HT_STR"), "dflt");
        hr_conf_free(cfg);
    }
    {
        struct hr_conf *cfg =
            load_expect(test_specs, "/nonexistent/herald.json", 1);

        assert_non_null(strstr(hr_conf_error(cfg, 0),
                               "config file '/nonexistent/herald.json'"));
        hr_conf_free(cfg);
    }
}

static void test_config_file_comes_from_herald_config_env(void **state)
{
    const char *file = write_temp("{\"HT_STR\": \"via-env\"}");
    const char *other = write_temp("{\"HT_STR\": \"via-arg\"}");
    struct hr_conf *cfg;

    (void)state;
    setenv("HERALD_CONFIG", file, 1);
    cfg = load_expect(test_specs, NULL, 0);
    assert_string_equal(hr_conf_str(cfg, "HT_STR"), "via-env");
    assert_non_null(hr_conf_json(cfg));
    hr_conf_free(cfg);
    /* an explicit --config wins */
    cfg = load_expect(test_specs, other, 0);
    assert_string_equal(hr_conf_str(cfg, "HT_STR"), "via-arg");
    hr_conf_free(cfg);
}

static void test_secret_file_strips_one_trailing_newline(void **state)
{
    static const struct {
        const char *content, *want;
    } cases[] = {
        {"s3cret\n", "s3cret"}, {"s3cret\r\n", "s3cret"}, {"s3cret", "s3cret"},
        {"two\n\n", "two\n"},   {"a b\nc\n", "a b\nc"},   {"\n", ""},
        {"x\r", "x\r"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hr_conf *cfg;

        setenv("HT_SECRET_FILE", write_temp(cases[i].content), 1);
        cfg = load_expect(test_specs, NULL, 0);
        assert_string_equal(hr_conf_str(cfg, "HT_SECRET"), cases[i].want);
        assert_effective(cfg, "HT_SECRET", "***", "env_file");
        hr_conf_free(cfg);
        unlink(temp_paths[--n_temp]);
    }
}

static void test_secret_file_unreadable_is_an_error(void **state)
{
    struct hr_conf *cfg;

    (void)state;
    setenv("HT_SECRET_FILE", "/nonexistent/secret", 1);
    cfg = load_expect(test_specs, NULL, 1);
    assert_true(strncmp(hr_conf_error(cfg, 0), "HT_SECRET: ", 11) == 0);
    assert_non_null(strstr(hr_conf_error(cfg, 0), "/nonexistent/secret"));
    assert_false(hr_conf_is_set(cfg, "HT_SECRET"));
    hr_conf_free(cfg);

    setenv("HT_SECRET_FILE", "/tmp", 1); /* a directory */
    cfg = load_expect(test_specs, NULL, 1);
    hr_conf_free(cfg);
}

static void test_secret_and_secret_file_both_set_is_an_error(void **state)
{
    struct hr_conf *cfg;

    (void)state;
    setenv("HT_SECRET", "hunter2", 1);
    setenv("HT_SECRET_FILE", write_temp("hunter3\n"), 1);
    cfg = load_expect(test_specs, NULL, 1);
    assert_string_equal(hr_conf_error(cfg, 0),
                        "HT_SECRET: both HT_SECRET and HT_SECRET_FILE are "
                        "set; use one");
    assert_null(strstr(hr_conf_error(cfg, 0), "hunter"));
    hr_conf_free(cfg);
}

static void test_file_form_is_not_for_plain_settings(void **state)
{
    struct hr_conf *cfg;

    (void)state;
    setenv("HT_STR_FILE", write_temp("ignored\n"), 1);
    cfg = load_expect(test_specs, NULL, 0);
    assert_string_equal(hr_conf_str(cfg, "HT_STR"), "dflt");
    hr_conf_free(cfg);
}

/* HR_CONF_FROM_FILE: NAME_FILE gives the value as for a secret, and the
 * value is shown (the caller masks what it must). */
static void test_from_file_reads_name_file_and_shows_it(void **state)
{
    struct hr_conf *cfg;
    json_t *eff;

    (void)state;
    setenv("HT_FURL_FILE", write_temp("redis://:pw@cache:6379/0\n"), 1);
    cfg = load_expect(test_specs, NULL, 0);
    assert_string_equal(hr_conf_str(cfg, "HT_FURL"),
                        "redis://:pw@cache:6379/0");
    eff = hr_conf_effective(cfg);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(eff, "HT_FURL"), "source")),
                        "env_file");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(eff, "HT_FURL"), "value")),
                        "redis://:pw@cache:6379/0");
    json_decref(eff);
    hr_conf_free(cfg);

    setenv("HT_FURL", "redis://other:6379/0", 1);
    cfg = load_expect(test_specs, NULL, 1);
    assert_string_equal(hr_conf_error(cfg, 0),
                        "HT_FURL: both HT_FURL and HT_FURL_FILE are set; use "
                        "one");
    hr_conf_free(cfg);
}

static void test_secrets_are_redacted_in_effective(void **state)
{
    struct hr_conf *cfg;
    json_t *eff;
    char *text;

    (void)state;
    setenv("HT_SECRET", "hunter2", 1);
    setenv("HT_S_URL", "redis://:hunter2@host", 1);
    cfg = conf_with(test_specs);
    hr_conf_add_specs(cfg, secret_specs);
    assert_int_equal(hr_conf_load(cfg, NULL), 0);
    assert_string_equal(hr_conf_str(cfg, "HT_SECRET"), "hunter2");
    assert_effective(cfg, "HT_SECRET", "***", "env");
    assert_effective(cfg, "HT_S_URL", "***", "env");
    eff = hr_conf_effective(cfg);
    text = json_dumps(eff, 0);
    assert_non_null(text);
    assert_null(strstr(text, "hunter2"));
    free(text);
    json_decref(eff);
    hr_conf_free(cfg);
}

static void test_secret_values_never_appear_in_errors(void **state)
{
    struct hr_conf *cfg;

    (void)state;
    setenv("HT_S_URL", "hunter2-not-a-url", 1);
    setenv("HT_S_INT", "hunter2", 1);
    setenv("HT_S_ENUM", "hunter2", 1);
    setenv("HT_S_BOOL", "hunter2", 1);
    setenv("HT_S_PATH", "/nonexistent/hunter2", 1);
    cfg = load_expect(secret_specs, NULL, 5);
    for (int i = 0; i < hr_conf_error_count(cfg); i++) {
        const char *e = hr_conf_error(cfg, i);

        assert_true(strncmp(e, "HT_S_", 5) == 0);
        if (strstr(e, "hunter2"))
            fail_msg("secret leaked: %s", e);
    }
    assert_true(has_error(cfg, "HT_S_URL: invalid url (value hidden)"));
    hr_conf_free(cfg);
}

static void test_help_mentions_every_setting(void **state)
{
    struct hr_conf *cfg = conf_with(test_specs);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    (void)state;
    hr_conf_add_specs(cfg, required_specs);
    hr_conf_set_default(cfg, "HT_STR", "herald-unread");
    assert_non_null(out);
    hr_conf_print_help(cfg, out, "usage: herald-test [--config FILE]",
                       "Does test things.");
    fclose(out);
    assert_true(strncmp(text,
                        "usage: herald-test [--config FILE]\n\n"
                        "Does test things.\n\n"
                        "Settings (environment variables):\n",
                        strlen("usage: herald-test [--config FILE]\n\n"
                               "Does test things.\n\n"
                               "Settings (environment variables):\n")) == 0);
    for (const struct hr_conf_spec *s = test_specs; s->name; s++) {
        assert_non_null(strstr(text, s->name));
        assert_non_null(strstr(text, s->help));
    }
    for (const struct hr_conf_spec *s = required_specs; s->name; s++)
        assert_non_null(strstr(text, s->name));
    assert_non_null(strstr(text, "(secret; also HT_SECRET_FILE)"));
    assert_non_null(strstr(text, "debug|info|warn|error"));
    assert_non_null(strstr(text, "herald-unread"));
    assert_non_null(strstr(text, "redis://127.0.0.1:6379/0"));
    assert_non_null(strstr(text, "(required)"));
    free(text);
    hr_conf_free(cfg);
}

/* Run @fn in a child; it must die of SIGABRT (an HR_ASSERT). */
static void assert_aborts(void (*fn)(void))
{
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *null = freopen("/dev/null", "w", stderr);

        (void)null;
        fn();
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void get_unknown_name(void)
{
    struct hr_conf *cfg = conf_with(test_specs);

    (void)hr_conf_str(cfg, "HT_NOPE");
}

static void get_int_of_a_string(void)
{
    struct hr_conf *cfg = conf_with(test_specs);

    (void)hr_conf_int(cfg, "HT_STR");
}

static void register_twice(void)
{
    struct hr_conf *cfg = conf_with(test_specs);

    hr_conf_add_specs(cfg, test_specs);
}

static void test_programming_errors_assert(void **state)
{
    (void)state;
    assert_aborts(get_unknown_name);
    assert_aborts(get_int_of_a_string);
    assert_aborts(register_twice);
}

static void test_free_null_is_a_no_op(void **state)
{
    (void)state;
    hr_conf_free(NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults_apply_when_nothing_is_set),
        T(test_valid_values_of_every_type_are_accepted),
        T(test_numbers_are_parsed),
        T(test_booleans_accept_every_spelling),
        T(test_invalid_values_of_every_type_are_rejected),
        T(test_error_messages_are_exact),
        T(test_every_error_is_reported_not_just_the_first),
        T(test_required_settings_must_be_set),
        T(test_env_overrides_file_and_file_overrides_default),
        T(test_set_default_overrides_spec_default),
        T(test_empty_env_counts_as_unset),
        T(test_file_accepts_strings_numbers_and_booleans),
        T(test_file_values_are_validated_too),
        T(test_file_rejects_other_json_types_naming_the_key),
        T(test_config_file_extra_keys_are_kept_for_hr_conf_json),
        T(test_config_file_that_is_not_an_object_is_an_error),
        T(test_config_file_comes_from_herald_config_env),
        T(test_secret_file_strips_one_trailing_newline),
        T(test_secret_file_unreadable_is_an_error),
        T(test_secret_and_secret_file_both_set_is_an_error),
        T(test_file_form_is_not_for_plain_settings),
        T(test_from_file_reads_name_file_and_shows_it),
        T(test_secrets_are_redacted_in_effective),
        T(test_secret_values_never_appear_in_errors),
        T(test_help_mentions_every_setting),
        T(test_programming_errors_assert),
        T(test_free_null_is_a_no_op),
    };

    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
