/*
 * herald-unread's command line (SPEC section 1): --check-config accepts a
 * good environment (exit 0, effective values as JSON, secrets hidden) and
 * names every problem of a bad one (exit 2) without connecting anywhere;
 * --config FILE, --help, --version and unknown flags.
 *
 * The worker runs with only the variables each test gives it: every
 * HERALD_* variable of the outer environment is removed first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "hr_banned.h"

/* --check-config builds clients but must not wait on any network. */
#define CHECK_CONFIG_MAX_MS 2000
#define RUN_TIMEOUT_MS      15000

#define REDIS_PASSWORD "s3cret"
#define SASL_PASSWORD  "hunter2"

/* Every worker-specific setting, as --help and the README must list them. */
static const char *const unread_settings[] = {
    "HERALD_UNREAD_CHANGED_TOPIC",        "HERALD_UNREAD_PUSH_TOPIC",
    "HERALD_UNREAD_PUSH_TITLE",           "HERALD_UNREAD_PUSH_BODY",
    "HERALD_UNREAD_MAX_PER_CONVERSATION",
};

/* The common settings of SPEC section 2. */
static const char *const common_settings[] = {
    "HERALD_KAFKA_BROKERS",       "HERALD_KAFKA_GROUP",
    "HERALD_KAFKA_TOPICS",        "HERALD_KAFKA_PROPERTIES",
    "HERALD_REDIS_URL",           "HERALD_REDIS_PREFIX",
    "HERALD_METRICS_ADDR",        "HERALD_LOG_LEVEL",
    "HERALD_LOG_FORMAT",          "HERALD_SOURCE",
    "HERALD_SQS_QUEUE_URL",       "HERALD_IDEMPOTENCY_TTL",
    "HERALD_SHUTDOWN_TIMEOUT_MS", "HERALD_INSTANCE_ID",
    "HERALD_TLS_CA_FILE",
};

extern char **environ;

static char *tmpdir;
static int closed_port;    /* nothing listens there */
static int listen_fd = -1; /* a listener that must never see a connection */
static int listen_port;

struct run {
    int status;
    int64_t ms;
    char *out; /* owned by the test (see own()) */
    char *err;
};

/* Everything a test allocates is freed by its teardown, so a failing
 * assertion (a longjmp) leaks nothing. */
#define MAX_OWNED 256
static void *owned[MAX_OWNED];
static size_t n_owned;
static json_t *owned_json[MAX_OWNED];
static size_t n_owned_json;

static void *own(void *p)
{
    assert_non_null(p);
    assert_true(n_owned < MAX_OWNED);
    owned[n_owned++] = p;
    return p;
}

static json_t *own_json(json_t *v)
{
    assert_non_null(v);
    assert_true(n_owned_json < MAX_OWNED);
    owned_json[n_owned_json++] = v;
    return v;
}

static int free_owned(void **state)
{
    (void)state;
    while (n_owned)
        free(owned[--n_owned]);
    while (n_owned_json)
        json_decref(owned_json[--n_owned_json]);
    return 0;
}

/* --- helpers ---------------------------------------------------------- */

static void clear_herald_env(void)
{
    char name[256];
    bool again = true;

    while (again) {
        again = false;
        for (char **e = environ; *e; e++) {
            const char *eq = strchr(*e, '=');
            size_t len = eq ? (size_t)(eq - *e) : strlen(*e);

            if (strncmp(*e, "HERALD_", 7) || len >= sizeof(name) ||
                !strncmp(*e, "HERALD_TEST_", 12))
                continue;
            memcpy(name, *e, len);
            name[len] = '\0';
            unsetenv(name); /* environ changed: start over */
            again = true;
            break;
        }
    }
}

static int open_listener(int *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&sa, &len) ||
        fcntl(fd, F_SETFL, O_NONBLOCK)) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Whether anything connected to the listener since the last call. */
static bool listener_was_contacted(void)
{
    bool contacted = false;
    int fd;

    while ((fd = accept(listen_fd, NULL, NULL)) >= 0) {
        contacted = true;
        close(fd);
    }
    return contacted;
}

static char *path_in_tmp(const char *name)
{
    size_t len = strlen(tmpdir) + strlen(name) + 2;
    char *path = own(malloc(len));

    snprintf(path, len, "%s/%s", tmpdir, name);
    return path;
}

static char *write_tmp(const char *name, const char *content)
{
    char *path = path_in_tmp(name);
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(content, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    return path;
}

/* Run herald-unread with @args (NULL-terminated, may be NULL) and exactly
 * the HERALD_* variables in @env; capture everything in @r. */
static void
run_unread(struct run *r, const char *const *args, const char *const *env)
{
    const char *argv[16];
    char *out_path = path_in_tmp("stdout.txt");
    char *err_path = path_in_tmp("stderr.txt");
    struct hx_proc *p;
    int64_t started;
    int n = 0;

    memset(r, 0, sizeof(*r));
    argv[n++] = hx_bin("herald-unread");
    for (int i = 0; args && args[i]; i++) {
        assert_true(n < 15);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    started = hx_now_ms();
    p = hx_proc_spawn(argv, env, out_path, err_path);
    assert_non_null(p);
    if (hx_proc_wait(p, RUN_TIMEOUT_MS, &r->status)) {
        hx_proc_free(p);
        fail_msg("herald-unread did not exit within %d ms", RUN_TIMEOUT_MS);
    }
    r->ms = hx_now_ms() - started;
    hx_proc_free(p);
    r->out = own(hx_file_read(out_path, NULL));
    r->err = own(hx_file_read(err_path, NULL));
}

static void assert_status(const struct run *r, int want)
{
    if (r->status != want)
        fail_msg("exit status %d, want %d\n--- stdout\n%s--- stderr\n%s",
                 r->status, want, r->out, r->err);
}

static void assert_stderr_names(const struct run *r, const char *needle)
{
    if (!strstr(r->err, needle))
        fail_msg("stderr does not mention '%s':\n%s", needle, r->err);
}

static void assert_no_secret(const struct run *r, const char *secret)
{
    if (strstr(r->out, secret))
        fail_msg("stdout shows the secret '%s':\n%s", secret, r->out);
    if (strstr(r->err, secret))
        fail_msg("stderr shows the secret '%s':\n%s", secret, r->err);
}

/* Parse --check-config's stdout: an object of {"value", "source"}. */
static json_t *effective(const struct run *r)
{
    json_error_t jerr;
    json_t *root = json_loads(r->out, 0, &jerr);
    const char *name;
    json_t *entry;

    if (!root)
        fail_msg("stdout is not JSON (line %d: %s):\n%s", jerr.line, jerr.text,
                 r->out);
    own_json(root);
    assert_true(json_is_object(root));
    json_object_foreach(root, name, entry)
    {
        const char *source =
            json_string_value(json_object_get(entry, "source"));

        if (!json_is_string(json_object_get(entry, "value")) || !source)
            fail_msg("'%s' has no string value and source", name);
        if (strcmp(source, "env") && strcmp(source, "env_file") &&
            strcmp(source, "file") && strcmp(source, "default"))
            fail_msg("'%s' has an unknown source '%s'", name, source);
    }
    return root;
}

static void assert_setting(json_t *eff,
                           const char *name,
                           const char *value,
                           const char *source)
{
    json_t *entry = json_object_get(eff, name);
    const char *v = json_string_value(json_object_get(entry, "value"));
    const char *s = json_string_value(json_object_get(entry, "source"));

    if (!entry)
        fail_msg("'%s' missing from the effective configuration", name);
    if (value && strcmp(v, value))
        fail_msg("'%s' is '%s', want '%s'", name, v, value);
    if (source && strcmp(s, source))
        fail_msg("'%s' comes from '%s', want '%s'", name, s, source);
}

/* --- fixture ---------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (access(hx_bin("herald-unread"), X_OK)) {
        fprintf(stderr, "skip: %s is not built\n", hx_bin("herald-unread"));
        exit(HX_SKIP);
    }
    clear_herald_env();
    tmpdir = hx_tmpdir_new("unread-config");
    closed_port = hx_free_port();
    listen_fd = open_listener(&listen_port);
    return tmpdir && closed_port > 0 && listen_fd >= 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (listen_fd >= 0)
        close(listen_fd);
    hx_tmpdir_remove(tmpdir);
    free(tmpdir);
    return 0;
}

/* The good environment: brokers and Redis on @port, secrets inside. */
struct good_env {
    char brokers[64];
    char redis[128];
    const char *envp[16];
};

static void good_env_init(struct good_env *g, int port)
{
    int n = 0;

    snprintf(g->brokers, sizeof(g->brokers),
             "HERALD_KAFKA_BROKERS=127.0.0.1:%d", port);
    snprintf(g->redis, sizeof(g->redis),
             "HERALD_REDIS_URL=redis://:" REDIS_PASSWORD "@127.0.0.1:%d/2",
             port);
    g->envp[n++] = g->brokers;
    g->envp[n++] = g->redis;
    g->envp[n++] = "HERALD_KAFKA_PROPERTIES=sasl.password=" SASL_PASSWORD
                   ";socket.timeout.ms=1000";
    g->envp[n++] = "HERALD_SOURCE=kafka";
    g->envp[n++] = "HERALD_LOG_LEVEL=debug";
    g->envp[n++] = "HERALD_METRICS_ADDR=127.0.0.1:0";
    g->envp[n++] = "HERALD_UNREAD_PUSH_TOPIC=herald.push";
    g->envp[n] = NULL;
}

/* --- --check-config ----------------------------------------------------- */

static void test_check_config_accepts_a_good_environment(void **state)
{
    struct good_env g;
    struct run r;
    json_t *eff;
    char want[64];

    (void)state;
    good_env_init(&g, closed_port);
    run_unread(&r, (const char *const[]){"--check-config", NULL}, g.envp);
    assert_status(&r, 0);
    assert_no_secret(&r, REDIS_PASSWORD);
    assert_no_secret(&r, SASL_PASSWORD);
    eff = effective(&r);
    snprintf(want, sizeof(want), "127.0.0.1:%d", closed_port);
    assert_setting(eff, "HERALD_KAFKA_BROKERS", want, "env");
    assert_setting(eff, "HERALD_KAFKA_PROPERTIES", "***", "env");
    assert_setting(eff, "HERALD_REDIS_URL", NULL, "env");
    assert_non_null(
        strstr(json_string_value(json_object_get(
                   json_object_get(eff, "HERALD_REDIS_URL"), "value")),
               "127.0.0.1"));
    assert_setting(eff, "HERALD_SOURCE", "kafka", "env");
    assert_setting(eff, "HERALD_LOG_LEVEL", "debug", "env");
    assert_setting(eff, "HERALD_KAFKA_GROUP", "herald-unread", "default");
    assert_setting(eff, "HERALD_KAFKA_TOPICS", "herald.messages", "default");
    assert_setting(eff, "HERALD_REDIS_PREFIX", "herald:", "default");
    assert_setting(eff, "HERALD_IDEMPOTENCY_TTL", "604800", "default");
    assert_setting(eff, "HERALD_SHUTDOWN_TIMEOUT_MS", "25000", "default");
    assert_setting(eff, "HERALD_UNREAD_CHANGED_TOPIC", "herald.unread",
                   "default");
    assert_setting(eff, "HERALD_UNREAD_PUSH_TOPIC", "herald.push", "env");
    assert_setting(eff, "HERALD_UNREAD_PUSH_TITLE", "{{sender_name}}",
                   "default");
    assert_setting(eff, "HERALD_UNREAD_PUSH_BODY", "{{preview}}", "default");
    assert_setting(eff, "HERALD_UNREAD_MAX_PER_CONVERSATION", "999", "default");
}

static void test_check_config_connects_nowhere_and_returns_quickly(void **state)
{
    struct good_env g;
    struct run r;

    (void)state;
    /* a closed port: nothing to wait for */
    good_env_init(&g, closed_port);
    run_unread(&r, (const char *const[]){"--check-config", NULL}, g.envp);
    assert_status(&r, 0);
    if (r.ms > CHECK_CONFIG_MAX_MS)
        fail_msg("--check-config took %lld ms", (long long)r.ms);

    /* a listening port: it must never see a connection */
    (void)listener_was_contacted();
    good_env_init(&g, listen_port);
    run_unread(&r, (const char *const[]){"--check-config", NULL}, g.envp);
    assert_status(&r, 0);
    if (r.ms > CHECK_CONFIG_MAX_MS)
        fail_msg("--check-config took %lld ms", (long long)r.ms);
    assert_false(listener_was_contacted());
}

/* The bad environment of both tests below, plus @source and @brokers. */
static const char *const bad_common[] = {
    "HERALD_LOG_LEVEL=loud",
    "HERALD_REDIS_URL=nope",
    "HERALD_METRICS_ADDR=here",
    "HERALD_UNREAD_MAX_PER_CONVERSATION=0",
    "HERALD_SHUTDOWN_TIMEOUT_MS=-5",
    "HERALD_KAFKA_PROPERTIES=no.such.property=1",
    "HERALD_UNREAD_PUSH_TITLE={{nope}}",
};

static const char *const bad_names[] = {
    "HERALD_LOG_LEVEL",           "HERALD_REDIS_URL",
    "HERALD_METRICS_ADDR",        "HERALD_UNREAD_MAX_PER_CONVERSATION",
    "HERALD_SHUTDOWN_TIMEOUT_MS", "HERALD_KAFKA_PROPERTIES",
    "HERALD_UNREAD_PUSH_TITLE",
};

#define N_BAD (sizeof(bad_common) / sizeof(bad_common[0]))

static void run_bad(struct run *r, const char *source)
{
    const char *envp[N_BAD + 3];
    size_t n = 0;

    for (size_t i = 0; i < N_BAD; i++)
        envp[n++] = bad_common[i];
    envp[n++] = "HERALD_KAFKA_BROKERS=";
    envp[n++] = source;
    envp[n] = NULL;
    run_unread(r, (const char *const[]){"--check-config", NULL}, envp);
}

/* Every line of stderr is one problem that names its setting, or the
 * closing summary. */
static void assert_one_setting_per_line(const struct run *r)
{
    char *copy = own(strdup(r->err)), *save = NULL;

    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(line, "HERALD_") && !strstr(line, "AWS_") &&
            !strstr(line, "configuration invalid"))
            fail_msg("a problem without a setting name: %s", line);
    }
}

static void test_check_config_names_every_problem_of_a_bad_env(void **state)
{
    struct run r;

    (void)state;
    run_bad(&r, "HERALD_SOURCE=sqs");
    assert_status(&r, 2);
    for (size_t i = 0; i < N_BAD; i++)
        assert_stderr_names(&r, bad_names[i]);
    /* the sqs source without its queue, region or credentials */
    assert_stderr_names(&r, "HERALD_SQS_QUEUE_URL");
    assert_stderr_names(&r, "AWS_REGION");
    assert_stderr_names(&r, "AWS_ACCESS_KEY_ID");
    assert_stderr_names(&r, "'loud'");
    assert_stderr_names(&r, "'nope'");
    assert_stderr_names(&r, "no.such.property");
    assert_stderr_names(&r, "configuration invalid");
    assert_one_setting_per_line(&r);
    assert_int_equal(r.out[0], '\0'); /* no effective config when invalid */
}

/* With the kafka source, missing brokers is one more problem. */
static void test_check_config_requires_brokers_with_kafka(void **state)
{
    struct run r;

    (void)state;
    run_bad(&r, "HERALD_SOURCE=kafka");
    assert_status(&r, 2);
    for (size_t i = 0; i < N_BAD; i++)
        assert_stderr_names(&r, bad_names[i]);
    assert_stderr_names(&r, "HERALD_KAFKA_BROKERS");
    assert_one_setting_per_line(&r);

    /* ... and alone, it is enough to fail */
    run_unread(&r, (const char *const[]){"--check-config", NULL},
               (const char *const[]){
                   "HERALD_KAFKA_BROKERS=", "HERALD_SOURCE=kafka", NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, "HERALD_KAFKA_BROKERS");
}

/* A push template that is not UTF-8 would make every push fail to build
 * (and the batch pause forever): it is a configuration error. */
static void test_check_config_refuses_a_template_that_is_not_utf8(void **st)
{
    struct run r;

    (void)st;
    run_unread(&r, (const char *const[]){"--check-config", NULL},
               (const char *const[]){"HERALD_KAFKA_BROKERS=127.0.0.1:1",
                                     "HERALD_UNREAD_PUSH_TITLE=hi \xff\xfe",
                                     NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, "HERALD_UNREAD_PUSH_TITLE");
    assert_stderr_names(&r, "UTF-8");
}

/* A Redis URL that does not parse must not echo its password. */
static void test_check_config_hides_the_password_of_a_bad_redis_url(void **st)
{
    struct good_env g;
    struct run r;

    (void)st;
    good_env_init(&g, closed_port);
    snprintf(g.redis, sizeof(g.redis), "%s",
             "HERALD_REDIS_URL=redis://:" REDIS_PASSWORD
             "@127.0.0.1:notaport/2");
    run_unread(&r, (const char *const[]){"--check-config", NULL}, g.envp);
    assert_status(&r, 2);
    assert_stderr_names(&r, "HERALD_REDIS_URL");
    assert_no_secret(&r, REDIS_PASSWORD);
}

/* A bad entry next to a secret one names the bad entry, not the secret. */
static void test_bad_kafka_property_does_not_show_the_others(void **state)
{
    struct run r;
    char brokers[64];

    (void)state;
    snprintf(brokers, sizeof(brokers), "HERALD_KAFKA_BROKERS=127.0.0.1:%d",
             closed_port);
    run_unread(&r, (const char *const[]){"--check-config", NULL},
               (const char *const[]){
                   brokers,
                   "HERALD_KAFKA_PROPERTIES=sasl.password=" SASL_PASSWORD
                   ";no.such.property=1",
                   NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, "HERALD_KAFKA_PROPERTIES");
    assert_stderr_names(&r, "no.such.property");
    assert_no_secret(&r, SASL_PASSWORD);
}

/* --- secrets from files ------------------------------------------------- */

static void test_kafka_properties_from_a_secret_file(void **state)
{
    char *props =
        write_tmp("kafka.properties", "sasl.password=" SASL_PASSWORD ";"
                                      "sasl.username=herald\n");
    char brokers[64], file_var[512];
    struct run r;
    json_t *eff;

    (void)state;
    snprintf(brokers, sizeof(brokers), "HERALD_KAFKA_BROKERS=127.0.0.1:%d",
             closed_port);
    snprintf(file_var, sizeof(file_var), "HERALD_KAFKA_PROPERTIES_FILE=%s",
             props);
    run_unread(&r, (const char *const[]){"--check-config", NULL},
               (const char *const[]){brokers, file_var, NULL});
    assert_status(&r, 0);
    assert_no_secret(&r, SASL_PASSWORD);
    eff = effective(&r);
    assert_setting(eff, "HERALD_KAFKA_PROPERTIES", "***", "env_file");

    /* a bad property read from the file is still reported */
    props = write_tmp("bad.properties", "no.such.property=1\n");
    snprintf(file_var, sizeof(file_var), "HERALD_KAFKA_PROPERTIES_FILE=%s",
             props);
    run_unread(&r, (const char *const[]){"--check-config", NULL},
               (const char *const[]){brokers, file_var, NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, "HERALD_KAFKA_PROPERTIES");

    /* both forms at once are ambiguous */
    run_unread(&r, (const char *const[]){"--check-config", NULL},
               (const char *const[]){
                   brokers, file_var,
                   "HERALD_KAFKA_PROPERTIES=sasl.password=" SASL_PASSWORD,
                   NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, "HERALD_KAFKA_PROPERTIES_FILE");
    assert_no_secret(&r, SASL_PASSWORD);

    /* a file that does not exist */
    props = path_in_tmp("missing.properties");
    snprintf(file_var, sizeof(file_var), "HERALD_KAFKA_PROPERTIES_FILE=%s",
             props);
    run_unread(&r, (const char *const[]){"--check-config", NULL},
               (const char *const[]){brokers, file_var, NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, "HERALD_KAFKA_PROPERTIES_FILE");
    assert_stderr_names(&r, props);
}

/* --- --config FILE ------------------------------------------------------ */

static void test_config_file_values_are_used_and_env_overrides(void **state)
{
    char *file = write_tmp(
        "unread.json",
        "{\n"
        "  \"HERALD_KAFKA_BROKERS\": \"file-broker:9092\",\n"
        "  \"HERALD_REDIS_PREFIX\": \"file:\",\n"
        "  \"HERALD_UNREAD_PUSH_TOPIC\": \"file.push\",\n"
        "  \"HERALD_UNREAD_PUSH_TITLE\": \"{{conversation_title}}\",\n"
        "  \"HERALD_UNREAD_MAX_PER_CONVERSATION\": 42,\n"
        "  \"HERALD_IDEMPOTENCY_TTL\": 3600,\n"
        "  \"unrelated\": {\"structured\": [1, 2]}\n"
        "}\n");
    char config_eq[512], config_var[512];
    struct run r;
    json_t *eff;

    (void)state;
    run_unread(
        &r, (const char *const[]){"--check-config", "--config", file, NULL},
        (const char *const[]){"HERALD_REDIS_PREFIX=env:",
                              "HERALD_UNREAD_MAX_PER_CONVERSATION=7", NULL});
    assert_status(&r, 0);
    eff = effective(&r);
    assert_setting(eff, "HERALD_KAFKA_BROKERS", "file-broker:9092", "file");
    assert_setting(eff, "HERALD_UNREAD_PUSH_TOPIC", "file.push", "file");
    assert_setting(eff, "HERALD_UNREAD_PUSH_TITLE", "{{conversation_title}}",
                   "file");
    assert_setting(eff, "HERALD_IDEMPOTENCY_TTL", "3600", "file");
    assert_setting(eff, "HERALD_REDIS_PREFIX", "env:", "env");
    assert_setting(eff, "HERALD_UNREAD_MAX_PER_CONVERSATION", "7", "env");
    assert_setting(eff, "HERALD_UNREAD_PUSH_BODY", "{{preview}}", "default");

    /* --config=FILE and HERALD_CONFIG are the same thing */
    snprintf(config_eq, sizeof(config_eq), "--config=%s", file);
    run_unread(&r, (const char *const[]){"--check-config", config_eq, NULL},
               NULL);
    assert_status(&r, 0);
    eff = effective(&r);
    assert_setting(eff, "HERALD_UNREAD_MAX_PER_CONVERSATION", "42", "file");
    snprintf(config_var, sizeof(config_var), "HERALD_CONFIG=%s", file);
    run_unread(&r, (const char *const[]){"--check-config", NULL},
               (const char *const[]){config_var, NULL});
    assert_status(&r, 0);
    eff = effective(&r);
    assert_setting(eff, "HERALD_UNREAD_PUSH_TOPIC", "file.push", "file");
}

static void test_bad_values_in_the_config_file_are_named(void **state)
{
    char *file = write_tmp("bad-values.json",
                           "{\"HERALD_KAFKA_BROKERS\": \"b:1\","
                           " \"HERALD_UNREAD_MAX_PER_CONVERSATION\": 0,"
                           " \"HERALD_UNREAD_PUSH_BODY\": \"{{body}}\","
                           " \"HERALD_LOG_LEVEL\": [\"info\"]}");
    struct run r;

    (void)state;
    run_unread(&r,
               (const char *const[]){"--check-config", "--config", file, NULL},
               NULL);
    assert_status(&r, 2);
    assert_stderr_names(&r, "HERALD_UNREAD_MAX_PER_CONVERSATION");
    assert_stderr_names(&r, "HERALD_UNREAD_PUSH_BODY");
    assert_stderr_names(&r, "HERALD_LOG_LEVEL");
}

static void test_config_file_that_is_not_json_is_refused(void **state)
{
    char *file = write_tmp("not-json.conf", "HERALD_KAFKA_BROKERS = b:1\n");
    char *array = write_tmp("array.json", "[1, 2, 3]\n");
    char *missing = path_in_tmp("missing.json");
    struct run r;

    (void)state;
    run_unread(&r,
               (const char *const[]){"--check-config", "--config", file, NULL},
               (const char *const[]){"HERALD_KAFKA_BROKERS=b:1", NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, file);
    assert_int_equal(r.out[0], '\0');

    run_unread(&r,
               (const char *const[]){"--check-config", "--config", array, NULL},
               (const char *const[]){"HERALD_KAFKA_BROKERS=b:1", NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, array);

    run_unread(
        &r, (const char *const[]){"--check-config", "--config", missing, NULL},
        (const char *const[]){"HERALD_KAFKA_BROKERS=b:1", NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, missing);

    /* without --check-config the worker refuses to start the same way */
    run_unread(&r, (const char *const[]){"--config", file, NULL},
               (const char *const[]){"HERALD_KAFKA_BROKERS=b:1", NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, file);
}

/* --- flags -------------------------------------------------------------- */

static void test_help_lists_every_setting(void **state)
{
    struct run r;

    (void)state;
    /* --help needs no valid configuration */
    run_unread(&r, (const char *const[]){"--help", NULL},
               (const char *const[]){"HERALD_LOG_LEVEL=loud", NULL});
    assert_status(&r, 0);
    assert_non_null(strstr(r.out, "herald-unread"));
    assert_non_null(strstr(r.out, "--check-config"));
    assert_non_null(strstr(r.out, "--config"));
    for (size_t i = 0; i < sizeof(unread_settings) / sizeof(unread_settings[0]);
         i++) {
        if (!strstr(r.out, unread_settings[i]))
            fail_msg("--help does not list %s", unread_settings[i]);
    }
    for (size_t i = 0; i < sizeof(common_settings) / sizeof(common_settings[0]);
         i++) {
        if (!strstr(r.out, common_settings[i]))
            fail_msg("--help does not list %s", common_settings[i]);
    }
    assert_non_null(strstr(r.out, "999")); /* defaults are shown */

    run_unread(&r, (const char *const[]){"-h", NULL}, NULL);
    assert_status(&r, 0);
    assert_non_null(strstr(r.out, "HERALD_UNREAD_MAX_PER_CONVERSATION"));
}

static void test_version_exits_0(void **state)
{
    struct run r;

    (void)state;
    run_unread(&r, (const char *const[]){"--version", NULL},
               (const char *const[]){"HERALD_LOG_LEVEL=loud", NULL});
    assert_status(&r, 0);
    assert_int_equal(strncmp(r.out, "herald-unread ", 14), 0);
    assert_true(strlen(r.out) > 15);
}

static void test_unknown_flag_exits_2(void **state)
{
    struct run r;

    (void)state;
    run_unread(&r, (const char *const[]){"--bogus", NULL},
               (const char *const[]){"HERALD_KAFKA_BROKERS=b:1", NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, "--bogus");

    run_unread(&r, (const char *const[]){"--check-config", "extra", NULL},
               (const char *const[]){"HERALD_KAFKA_BROKERS=b:1", NULL});
    assert_status(&r, 2);
    assert_stderr_names(&r, "extra");

    /* --config needs its argument */
    run_unread(&r, (const char *const[]){"--check-config", "--config", NULL},
               (const char *const[]){"HERALD_KAFKA_BROKERS=b:1", NULL});
    assert_status(&r, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_check_config_accepts_a_good_environment,
                                  free_owned),
        cmocka_unit_test_teardown(
            test_check_config_connects_nowhere_and_returns_quickly, free_owned),
        cmocka_unit_test_teardown(
            test_check_config_names_every_problem_of_a_bad_env, free_owned),
        cmocka_unit_test_teardown(
            test_check_config_refuses_a_template_that_is_not_utf8, free_owned),
        cmocka_unit_test_teardown(test_check_config_requires_brokers_with_kafka,
                                  free_owned),
        cmocka_unit_test_teardown(
            test_check_config_hides_the_password_of_a_bad_redis_url,
            free_owned),
        cmocka_unit_test_teardown(
            test_bad_kafka_property_does_not_show_the_others, free_owned),
        cmocka_unit_test_teardown(test_kafka_properties_from_a_secret_file,
                                  free_owned),
        cmocka_unit_test_teardown(
            test_config_file_values_are_used_and_env_overrides, free_owned),
        cmocka_unit_test_teardown(test_bad_values_in_the_config_file_are_named,
                                  free_owned),
        cmocka_unit_test_teardown(test_config_file_that_is_not_json_is_refused,
                                  free_owned),
        cmocka_unit_test_teardown(test_help_lists_every_setting, free_owned),
        cmocka_unit_test_teardown(test_version_exits_0, free_owned),
        cmocka_unit_test_teardown(test_unknown_flag_exits_2, free_owned),
    };

    return cmocka_run_group_tests_name("unread_config", tests, group_setup,
                                       group_teardown);
}
