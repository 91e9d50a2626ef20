/*
 * herald-email end to end: the worker binary against a real redis-server,
 * herald-devbroker and tests/node/fake_email.js (a real SMTP server, the
 * npm smtp-server package, and an SES v2 endpoint that verifies SigV4);
 * every received message parsed by the npm mailparser.
 *
 * Each test has its own topics and Redis prefix. Skipped (exit 77) when
 * node or redis-server is missing.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "harness.h"
#include "hx_fake_http.h"
#include "push_fixture.h"

#define T(name) name ":4," name ".retry:1," name ".dlq:1,"
#define TOPICS     \
    T("e-digest")  \
    T("e-leading") \
    T("e-fleet") T("e-crash") T("e-fail") T("e-auth") T("e-ses") "e-none:1"

#define FROM      "noreply@herald.test"
#define AWS_KEY   "AKIDHERALDTEST"
#define AWS_SECRT "secret/herald+test"

/* pf_env gives pf_send() and pf_collect(): its broker and redis. */
static struct pf_env *env;
static char *dir, *config;
static int smtp_port, smtp_auth_port, smtps_port;
static struct hx_fake_http *fake, *fake_auth, *fake_smtps;

struct worker {
    struct hx_proc *proc;
    int port;
    char log[600];
};

static const char config_json[] =
    "{\"email\": {\"from_name\": \"Herald Test\","
    " \"unsubscribe_url\": "
    "\"https://example.com/unsubscribe?u={{user_id}}&c={{category}}\","
    " \"categories\": {"
    "  \"comment\": {\"mode\": \"digest\", \"max_items\": 5, \"templates\": {"
    "   \"en\": {\"subject\": \"{{count}} new comments\","
    "    \"text\": \"{{#items}}- {{actor_name}}: {{text}}\\n{{/items}}"
    "{{#more}}and {{more}} more\\n{{/more}}\","
    "    \"html\": \"<ul>{{#items}}<li>{{actor_name}}: {{text}}</li>{{/items}}"
    "</ul>{{#more}}<p>and {{more}} more</p>{{/more}}\"},"
    "   \"fr\": {\"subject\": \"{{count}} nouveaux commentaires\","
    "    \"text\": \"{{#items}}- {{actor_name}} : {{text}}\\n{{/items}}\"}}},"
    "  \"reaction\": {\"mode\": \"digest\"},"
    "  \"mention\": {\"mode\": \"leading\"}}}}";

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static struct hx_fake_http *start_fake(int *port, const char *const *more)
{
    const char *args[12];
    char p[16];
    size_t n = 0;
    struct hx_fake_http_opts opts = {0};

    *port = hx_free_port();
    snprintf(p, sizeof(p), "%d", *port);
    args[n++] = "--smtp-port";
    args[n++] = p;
    for (size_t i = 0; more && more[i]; i++)
        args[n++] = more[i];
    args[n] = NULL;
    opts.js = HX_SOURCE_DIR "/tests/node/fake_email.js";
    opts.args = args;
    return hx_fake_http_start(&opts);
}

static int group_setup(void **state)
{
    char path[600], cert[600], key[600];

    (void)state;
    env = pf_env_start(TOPICS);
    if (!env)
        return -1;
    dir = hx_tmpdir_new("email");
    snprintf(path, sizeof(path), "%s/email.json", dir);
    config = strdup(path);
    if (write_text(config, config_json))
        return -1;
    fake = start_fake(&smtp_port,
                      (const char *const[]){"--aws-key", AWS_KEY,
                                            "--aws-secret", AWS_SECRT,
                                            "--aws-region", "eu-west-1", NULL});
    /* STARTTLS offered, AUTH required; and implicit TLS (smtps://), with
     * the certificate pf_env_start() made */
    snprintf(cert, sizeof(cert), "%s/server.pem", env->dir);
    snprintf(key, sizeof(key), "%s/server.key", env->dir);
    fake_auth = start_fake(
        &smtp_auth_port,
        (const char *const[]){"--user", "herald", "--password", "right",
                              "--cert", cert, "--key", key, NULL});
    fake_smtps =
        start_fake(&smtps_port, (const char *const[]){"--cert", cert, "--key",
                                                      key, "--smtps", NULL});
    return fake && fake_auth && fake_smtps ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    hx_fake_http_free(fake);
    hx_fake_http_free(fake_auth);
    hx_fake_http_free(fake_smtps);
    pf_env_free(env);
    hx_tmpdir_done(dir);
    free(config);
    return 0;
}

/* herald-email on @topic (its own Redis prefix), SMTP to the fake; @extra
 * "K=V" settings first (the first of a name wins). */
static struct worker *worker_start(const char *topic, const char *const *extra)
{
    static int seq;
    struct worker *w = calloc(1, sizeof(*w));
    char vars[4][700];
    const char *envp[48];
    size_t n = 0;

    for (size_t i = 0; extra && extra[i]; i++)
        envp[n++] = extra[i];
    snprintf(vars[0], sizeof(vars[0]), "HERALD_EMAIL_SEND_TOPIC=%s", topic);
    snprintf(vars[1], sizeof(vars[1]), "HERALD_SMTP_URL=smtp://127.0.0.1:%d",
             smtp_port);
    snprintf(vars[2], sizeof(vars[2]), "HERALD_CONFIG=%s", config);
    snprintf(vars[3], sizeof(vars[3]), "HERALD_TLS_CA_FILE=%s", env->ca_file);
    for (size_t i = 0; i < 4; i++)
        envp[n++] = vars[i];
    envp[n++] = "HERALD_EMAIL_FROM=" FROM;
    envp[n++] = "HERALD_EMAIL_WINDOW_SECONDS=2";
    envp[n++] = "HERALD_KAFKA_STATS_INTERVAL_MS=1000";
    envp[n] = NULL;
    snprintf(w->log, sizeof(w->log), "%s/email-%s-%d.log", dir, topic, ++seq);
    w->proc = hx_worker_spawn("email", env->broker, env->redis, topic, envp,
                              w->log, &w->port);
    assert_non_null(w->proc);
    return w;
}

static void worker_stop(struct worker *w)
{
    assert_int_equal(hx_worker_stop(w->proc, 15000), 0);
    hx_proc_free(w->proc);
    free(w);
}

static void worker_kill(struct worker *w)
{
    hx_proc_signal(w->proc, SIGKILL);
    hx_proc_wait(w->proc, 5000, NULL);
    hx_proc_free(w->proc);
    free(w);
}

static double metric(const struct worker *w, const char *prefix)
{
    return hx_metric(w->port, prefix);
}

struct wait_arg {
    const struct worker *w;
    const char *prefix;
    double n;
};

static bool metric_reached(void *p)
{
    struct wait_arg *a = p;

    return metric(a->w, a->prefix) >= a->n;
}

static int wait_metric(const struct worker *w,
                       const char *prefix,
                       double n,
                       int timeout_ms)
{
    struct wait_arg a = {w, prefix, n};

    return hx_wait_until(metric_reached, &a, timeout_ms);
}

/* A notification.email for @user. */
static void notify(const char *topic,
                   const char *user,
                   const char *category,
                   const char *id,
                   const char *extra_json)
{
    char data[1024];

    snprintf(data, sizeof(data),
             "{\"user_id\":\"%s\",\"category\":\"%s\",\"actor_name\":\"%s\","
             "\"text\":\"said <hi> & more\",\"item_title\":\"Post\"%s%s}",
             user, category, id, extra_json ? "," : "",
             extra_json ? extra_json : "");
    assert_int_equal(pf_send(env, topic, user, "notification.email", id, data),
                     0);
}

/* HSET <topic>:profiles:{user} field value [field value] */
static void profile(const char *topic,
                    const char *user,
                    const char *f1,
                    const char *v1,
                    const char *f2,
                    const char *v2)
{
    redisContext *c = hx_redis_connect(env->redis);
    char key[300];
    redisReply *r;

    snprintf(key, sizeof(key), "%s:profiles:{%s}", topic, user);
    r = f2 ? redisCommand(c, "HSET %s %s %s %s %s", key, f1, v1, f2, v2)
           : redisCommand(c, "HSET %s %s %s", key, f1, v1);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    redisFree(c);
}

/* Messages the fake @f received for @to (NULL: all), new reference. */
static json_t *messages(struct hx_fake_http *f, const char *to)
{
    char path[300];
    json_t *a, *m;

    snprintf(path, sizeof(path), "/_control/messages%s%s", to ? "?to=" : "",
             to ? to : "");
    a = hx_fake_http_get(f, path);
    assert_non_null(a);
    m = json_incref(json_object_get(a, "messages"));
    json_decref(a);
    return m;
}

static void fake_reset(struct hx_fake_http *f)
{
    json_decref(hx_fake_http_post(f, "/_control/reset", "{}"));
}

static void script(struct hx_fake_http *f, const char *json)
{
    json_t *a = hx_fake_http_post(f, "/_control/script", json);

    assert_non_null(a);
    json_decref(a);
}

static const char *hdr(const json_t *m, const char *name)
{
    return json_string_value(
        json_object_get(json_object_get(m, "headers"), name));
}

/* Every received message is valid MIME with the headers a notification
 * email needs, text/plain first. */
static void assert_well_formed(const json_t *m)
{
    const json_t *parts = json_object_get(m, "parts");
    const char *mid = hdr(m, "message-id");
    const char *win = hdr(m, "x-herald-window");
    char want[200];

    if (!json_is_true(json_object_get(m, "valid")))
        fail_msg("invalid message: %s",
                 json_dumps(json_object_get(m, "problems"), 0));
    assert_non_null(hdr(m, "date"));
    assert_string_equal(hdr(m, "auto-submitted"), "auto-generated");
    assert_string_equal(hdr(m, "mime-version"), "1.0");
    assert_non_null(strstr(hdr(m, "content-type"), "multipart/alternative"));
    assert_non_null(win);
    snprintf(want, sizeof(want), "<%s@herald.test>", win);
    assert_string_equal(mid, want);
    assert_int_equal(json_array_size(parts), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(parts, 0), "content_type")),
                        "text/plain");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(parts, 1), "content_type")),
                        "text/html");
    assert_non_null(strstr(hdr(m, "list-unsubscribe"),
                           "<https://example.com/unsubscribe?u="));
    assert_string_equal(hdr(m, "list-unsubscribe-post"),
                        "List-Unsubscribe=One-Click");
}

static int count_in(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* 1. Bursts across users and categories: one email per (user, category,
 *    window) holding exactly that window's events; a later burst is a new
 *    window. */
static void test_digest_bursts_become_one_email_per_window(void **state)
{
    static const char *const users[] = {"ann", "bob", "cy"};
    static const char *const cats[] = {"comment", "reaction"};
    struct worker *w;
    json_t *all;
    char id[64], to[100];
    int sent = 0;

    (void)state;
    fake_reset(fake);
    for (size_t u = 0; u < 3; u++) {
        char name[64];

        snprintf(to, sizeof(to), "%s@example.com", users[u]);
        snprintf(name, sizeof(name), "%s Doe", users[u]);
        profile("e-digest", users[u], "email", to, "name", name);
    }
    /* windows long enough that no burst outlasts one on a loaded machine */
    w = worker_start("e-digest", (const char *const[]){
                                     "HERALD_EMAIL_WINDOW_SECONDS=4", NULL});
    /* 3 users x 2 categories x (u + 2) events; comment lists 5 at most */
    for (size_t u = 0; u < 3; u++) {
        for (size_t c = 0; c < 2; c++) {
            for (size_t k = 0; k < u * 3 + 2; k++) {
                snprintf(id, sizeof(id), "%s-%s-%zu", users[u], cats[c], k);
                notify("e-digest", users[u], cats[c], id, NULL);
            }
        }
    }
    assert_int_equal(wait_metric(w, "herald_email_sent_total{", 6, 30000), 0);
    hx_sleep_ms(1500); /* nothing more comes */
    all = messages(fake, NULL);
    assert_int_equal(json_array_size(all), 6);
    for (size_t u = 0; u < 3; u++) {
        for (size_t c = 0; c < 2; c++) {
            json_t *m = NULL, *x;
            size_t i, found = 0, n = u * 3 + 2;
            const char *text;

            snprintf(to, sizeof(to), "%s@example.com", users[u]);
            json_array_foreach(all, i, x)
            {
                if (!strcmp(json_string_value(json_array_get(
                                json_object_get(json_object_get(x, "envelope"),
                                                "rcpt_to"),
                                0)),
                            to) &&
                    !strcmp(hdr(x, "x-herald-category"), cats[c])) {
                    m = x;
                    found++;
                }
            }
            assert_int_equal(found, 1);
            assert_well_formed(m);
            text = json_string_value(json_object_get(m, "text"));
            for (size_t k = 0; k < n; k++) {
                snprintf(id, sizeof(id), "%s-%s-%zu", users[u], cats[c], k);
                /* comment lists 5, counts the rest */
                if (c == 0 && k >= 5)
                    assert_null(strstr(text, id));
                else
                    assert_non_null(strstr(text, id));
            }
            if (c == 0) {
                snprintf(id, sizeof(id), "%zu new comments", n);
                assert_string_equal(
                    json_string_value(json_object_get(m, "subject")), id);
                if (n > 5) {
                    snprintf(id, sizeof(id), "and %zu more", n - 5);
                    assert_non_null(strstr(text, id));
                }
                /* HTML-escaped in the HTML part, as is in the text */
                assert_non_null(
                    strstr(json_string_value(json_object_get(m, "html")),
                           "said &lt;hi&gt; &amp; more"));
                assert_non_null(strstr(text, "said <hi> & more"));
            }
            sent++;
        }
    }
    assert_int_equal(sent, 6);
    json_decref(all);
    /* every metric the dashboards read exists */
    assert_int_equal(metric(w, "herald_email_digest_items_count"), 6);
    assert_int_equal(metric(w, "herald_email_digest_items_sum"),
                     2 + 2 + 5 + 5 + 8 + 8);
    assert_int_equal(metric(w, "herald_email_window_lateness_seconds_count"),
                     6);
    assert_int_equal(metric(w, "herald_email_suppressed_total"), 0);
    assert_int_equal(metric(w, "herald_email_duplicate_sends_total"), 0);

    /* a second burst for ann is a second window, with only its events */
    fake_reset(fake);
    notify("e-digest", "ann", "comment", "ann-late-1", "\"locale\":\"fr-CA\"");
    notify("e-digest", "ann", "comment", "ann-late-2", NULL);
    assert_int_equal(wait_metric(w, "herald_email_sent_total{", 7, 30000), 0);
    all = messages(fake, NULL);
    assert_int_equal(json_array_size(all), 1);
    {
        json_t *m = json_array_get(all, 0);
        const char *text = json_string_value(json_object_get(m, "text"));

        assert_string_equal(json_string_value(json_object_get(m, "subject")),
                            "2 nouveaux commentaires");
        assert_non_null(strstr(text, "ann-late-1 :"));
        assert_null(strstr(text, "ann-comment-0"));
    }
    json_decref(all);
    assert_int_equal(metric(w, "herald_email_duplicate_sends_total"), 0);
    worker_stop(w);
}

/* Whether no window of @topic (its Redis prefix) is due any more. */
static bool no_window_due(void *topic)
{
    redisContext *c = hx_redis_connect(env->redis);
    redisReply *r = redisCommand(c, "ZCARD %s:email:due", (char *)topic);
    bool none = r && r->type == REDIS_REPLY_INTEGER && r->integer == 0;

    freeReplyObject(r);
    redisFree(c);
    return none;
}

/* Leading mode: the first event at once, the rest of the window
 * suppressed and counted; after the window, the next is sent again. */
static void test_leading_sends_the_first_and_counts_the_rest(void **state)
{
    char topic[] = "e-leading";
    struct worker *w;
    json_t *all;
    char id[64];

    (void)state;
    fake_reset(fake);
    w = worker_start("e-leading", NULL);
    for (int k = 0; k < 6; k++) {
        snprintf(id, sizeof(id), "lead-%d", k);
        notify("e-leading", "dee", "mention", id, "\"to\":\"dee@example.com\"");
    }
    assert_int_equal(wait_metric(w, "herald_email_sent_total{", 1, 30000), 0);
    assert_int_equal(wait_metric(w, "herald_email_suppressed_total{", 5, 10000),
                     0);
    all = messages(fake, "dee@example.com");
    assert_int_equal(json_array_size(all), 1);
    assert_non_null(strstr(
        json_string_value(json_object_get(json_array_get(all, 0), "text")),
        "lead-0"));
    assert_null(strstr(
        json_string_value(json_object_get(json_array_get(all, 0), "text")),
        "lead-1"));
    json_decref(all);
    /* the window (2 s) ends: the next event is sent at once again */
    assert_int_equal(hx_wait_until(no_window_due, topic, 30000), 0);
    notify("e-leading", "dee", "mention", "lead-after",
           "\"to\":\"dee@example.com\"");
    assert_int_equal(wait_metric(w, "herald_email_sent_total{", 2, 30000), 0);
    all = messages(fake, "dee@example.com");
    assert_int_equal(json_array_size(all), 2);
    json_decref(all);
    assert_int_equal(metric(w, "herald_email_suppressed_total{"), 5);
    assert_int_equal(metric(w,
                            "herald_email_sent_total{worker=\"email\",category="
                            "\"mention\",mode=\"leading\"}"),
                     2);
    worker_stop(w);
}

/* Group the received messages by Message-ID: returns how many windows
 * were received more than once (and their extra copies in *@extra). */
static size_t duplicates(const json_t *all, size_t *extra)
{
    json_t *seen = json_object();
    size_t i, dups = 0;
    json_t *m;

    *extra = 0;
    json_array_foreach(all, i, m)
    {
        const char *mid = hdr(m, "message-id");
        json_t *n = json_object_get(seen, mid);

        if (n) {
            (*extra)++;
            if (json_integer_value(n) == 1)
                dups++;
            json_object_set_new(seen, mid,
                                json_integer(json_integer_value(n) + 1));
        } else {
            json_object_set_new(seen, mid, json_integer(1));
        }
    }
    json_decref(seen);
    return dups;
}

/* Every event "<prefix><k>:" is listed in a received message, and in one
 * window only (copies of a window share its Message-ID): nothing lost,
 * nothing ingested twice. */
static void assert_all_listed(const json_t *all, const char *prefix, int n)
{
    for (int k = 0; k < n; k++) {
        json_t *windows = json_object();
        char id[64];
        size_t i;
        json_t *m;

        snprintf(id, sizeof(id), "%s%d:", prefix, k);
        json_array_foreach(all, i, m)
        {
            if (count_in(json_string_value(json_object_get(m, "text")), id))
                json_object_set_new(windows, hdr(m, "message-id"), json_true());
        }
        if (json_object_size(windows) != 1)
            fail_msg("event %.*s is in %zu windows", (int)strlen(id) - 1, id,
                     json_object_size(windows));
        json_decref(windows);
    }
}

/* Whether every event "<prefix><k>:" for k < n is listed in a message. */
struct listed_arg {
    const char *prefix;
    int n;
};

static bool all_listed(void *p)
{
    struct listed_arg *a = p;
    json_t *all = messages(fake, NULL);
    char *text = json_dumps(all, 0);
    bool ok = true;

    for (int k = 0; k < a->n && ok; k++) {
        char id[64];

        snprintf(id, sizeof(id), "%s%d:", a->prefix, k);
        ok = strstr(text, id) != NULL;
    }
    free(text);
    json_decref(all);
    return ok;
}

/* 2. Three worker processes on one topic and one Redis: still one email
 *    per window. Windows open when an event arrives, so a loaded machine
 *    that delivers a user's second event after the first one's window
 *    closed makes two windows (two emails, each listing its own event):
 *    what must hold is that no window is sent twice and every event is
 *    in exactly one email. */
static void test_three_workers_send_each_window_once(void **state)
{
    static const char *const settings[] = {"HERALD_EMAIL_WINDOW_SECONDS=4",
                                           NULL};
    struct listed_arg la = {"- fl-", 120};
    struct worker *w[3];
    json_t *all;
    char id[64], user[32];
    size_t extra, emails;
    double sent = 0;

    (void)state;
    fake_reset(fake);
    for (int i = 0; i < 3; i++)
        w[i] = worker_start("e-fleet", settings);
    hx_sleep_ms(4000); /* all three in the group */
    for (int k = 0; k < 120; k++) {
        snprintf(user, sizeof(user), "fleet-%d", k % 30);
        snprintf(id, sizeof(id), "fl-%d", k);
        notify("e-fleet", user, (k / 30) % 2 ? "comment" : "reaction", id,
               "\"to\":\"fleet@example.com\"");
    }
    /* 30 users x 2 categories, two events each */
    hx_wait_until(all_listed, &la, 90000); /* what is missing is named below */
    hx_sleep_ms(3000); /* a late duplicate would come by now */
    all = messages(fake, NULL);
    emails = json_array_size(all);
    assert_all_listed(all, "- fl-", 120);
    assert_int_equal(duplicates(all, &extra), 0);
    for (int i = 0; i < 3; i++) {
        sent += metric(w[i], "herald_email_sent_total{");
        worker_stop(w[i]);
    }
    if (emails != 60)
        fprintf(stderr,
                "fleet: %zu emails for 60 windows (%zu split by a "
                "late event)\n",
                emails, emails - 60);
    assert_true(emails >= 60 && emails <= 120);
    assert_int_equal((size_t)sent, emails);
    json_decref(all);
}

/* 3. kill -9 at random points (before a claim, after it, during a send
 *    the SMTP server holds for 400 ms): no window is lost, and each kill
 *    costs at most one duplicate, with the same Message-ID, counted: a
 *    kill can repeat only the sends in flight, one per connection
 *    (HERALD_EMAIL_CONCURRENCY, 1 here), each at most once. The two
 *    replicas have static group membership (HERALD_INSTANCE_ID), so a
 *    restarted one takes its partitions back at once. */
static void test_kill_9_loses_no_window(void **state)
{
    static const char *const settings[2][6] = {
        {"HERALD_EMAIL_LEASE_MS=1500", "HERALD_EMAIL_WINDOW_SECONDS=1",
         "HERALD_INSTANCE_ID=crash-0", "HERALD_EMAIL_CONCURRENCY=1", NULL},
        {"HERALD_EMAIL_LEASE_MS=1500", "HERALD_EMAIL_WINDOW_SECONDS=1",
         "HERALD_INSTANCE_ID=crash-1", "HERALD_EMAIL_CONCURRENCY=1", NULL}};
    struct worker *w[2];
    double counted = 0;
    json_t *all;
    size_t extra, dups;
    int kills = 0, n = 0;
    char id[64], user[32];
    struct listed_arg la = {"- cr-", 0};

    (void)state;
    fake_reset(fake);
    script(fake, "{\"mail_from\": \"" FROM "\", \"answers\": "
                 "[{\"stage\": \"data\", \"delay_ms\": 400}]}");
    srand(42);
    w[0] = worker_start("e-crash", settings[0]);
    w[1] = worker_start("e-crash", settings[1]);
    hx_sleep_ms(3000);
    for (int round = 0; round < 4; round++) {
        int victim = rand() % 2;

        for (int k = 0; k < 40; k++, n++) {
            snprintf(user, sizeof(user), "crash-%d", n % 20);
            snprintf(id, sizeof(id), "cr-%d", n);
            notify("e-crash", user, "reaction", id,
                   "\"to\":\"crash@example.com\"");
        }
        hx_sleep_ms(800 + rand() % 1200);
        counted += metric(w[victim], "herald_email_duplicate_sends_total");
        worker_kill(w[victim]);
        kills++;
        w[victim] = worker_start("e-crash", settings[victim]);
    }
    la.n = n;
    if (hx_wait_until(all_listed, &la, 90000)) {
        all = messages(fake, NULL);
        assert_all_listed(all, "- cr-", n);
    }
    hx_sleep_ms(3000); /* a late duplicate would come by now */
    all = messages(fake, NULL);
    assert_all_listed(all, "- cr-", n);
    dups = duplicates(all, &extra);
    for (int i = 0; i < 2; i++) {
        counted += metric(w[i], "herald_email_duplicate_sends_total");
        worker_stop(w[i]);
    }
    fprintf(stderr,
            "kill -9: %d kills, %zu emails, %zu resent (%zu copies), "
            "%.0f counted\n",
            kills, json_array_size(all), dups, extra, counted);
    assert_true(extra <= (size_t)kills);
    assert_true((double)extra <= counted);
    json_decref(all);
    script(fake, "{\"mail_from\": \"" FROM "\", \"answers\": []}");
}

/* 4. With no further input, windows close within a second of their due
 *    time (the lateness histogram says). */
static void test_windows_close_on_time(void **state)
{
    struct worker *w;
    double count, within;
    char id[64], user[32];

    (void)state;
    fake_reset(fake);
    w = worker_start("e-digest",
                     (const char *const[]){"HERALD_LOG_LEVEL=debug", NULL});
    hx_sleep_ms(3000);
    for (int k = 0; k < 20; k++) {
        snprintf(user, sizeof(user), "late-%d", k);
        snprintf(id, sizeof(id), "late-%d", k);
        notify("e-digest", user, "reaction", id, "\"to\":\"l@example.com\"");
        hx_sleep_ms(100);
    }
    assert_int_equal(
        wait_metric(w, "herald_email_window_lateness_seconds_count", 20, 30000),
        0);
    count = metric(w, "herald_email_window_lateness_seconds_count");
    within = metric(w, "herald_email_window_lateness_seconds_bucket{worker="
                       "\"email\",le=\"1\"}");
    fprintf(stderr, "lateness: %.0f of %.0f windows within 1 s, mean %.3f s\n",
            within, count,
            metric(w, "herald_email_window_lateness_seconds_sum") / count);
    assert_true(within == count);
    worker_stop(w);
}

/* 6. Opt-out, no address, SMTP 4xx / 5xx: each to its place. */
static void test_failures_go_where_they_belong(void **state)
{
    struct worker *w;
    json_t *dlq, *retry, *all;
    size_t i;
    json_t *r;
    bool no_address = false, perm = false, transient = false;

    (void)state;
    fake_reset(fake);
    profile("e-fail", "opt", "email", "opt@example.com", "email_opt_out", "1");
    profile("e-fail", "nobody", "name", "Nobody", NULL, NULL);
    script(fake, "{\"rcpt\": \"soft@example.com\", \"answers\": "
                 "[{\"stage\": \"rcpt\", \"code\": 451}]}");
    script(fake, "{\"rcpt\": \"hard@example.com\", \"answers\": "
                 "[{\"stage\": \"rcpt\", \"code\": 550}]}");
    w = worker_start("e-fail", NULL);
    notify("e-fail", "opt", "comment", "f-opt", NULL);
    notify("e-fail", "nobody", "comment", "f-nobody", NULL);
    notify("e-fail", "soft", "comment", "f-soft",
           "\"to\":\"soft@example.com\"");
    notify("e-fail", "hard", "comment", "f-hard",
           "\"to\":\"hard@example.com\"");
    notify("e-fail", "bad", "comment", "f-bad", "\"to\":\"not an address\"");
    assert_int_equal(wait_metric(w,
                                 "herald_email_skipped_total{worker=\"email\","
                                 "category=\"comment\",reason=\"opt_out\"}",
                                 1, 30000),
                     0);
    assert_int_equal(wait_metric(w, "herald_email_failures_total{", 2, 30000),
                     0);
    assert_int_equal(wait_metric(w,
                                 "herald_email_skipped_total{worker="
                                 "\"email\",category=\"comment\",reason="
                                 "\"no_address\"}",
                                 1, 30000),
                     0);
    all = messages(fake, NULL);
    assert_int_equal(json_array_size(all), 0);
    json_decref(all);
    worker_stop(w);
    dlq = pf_collect(env, "e-fail.dlq");
    retry = pf_collect(env, "e-fail.retry");
    json_array_foreach(dlq, i, r)
    {
        json_t *h = json_object_get(r, "headers");
        const char *cls =
            json_string_value(json_object_get(h, "herald-error-class"));
        const char *err = json_string_value(json_object_get(h, "herald-error"));

        no_address |= !strcmp(cls, "permanent") &&
                      strstr(err, "undeliverable: no address") != NULL;
        perm |= !strcmp(cls, "permanent") && strstr(err, "smtp 550") != NULL;
        if (!strcmp(cls, "poison"))
            assert_non_null(strstr(err, "data.to is not an email address"));
    }
    json_array_foreach(retry, i, r)
    {
        json_t *h = json_object_get(r, "headers");

        transient |=
            !strcmp(json_string_value(json_object_get(h, "herald-error-class")),
                    "transient") &&
            !strcmp(json_string_value(json_object_get(h, "herald-destination")),
                    "email:smtp");
    }
    assert_true(no_address);
    assert_true(perm);
    assert_true(transient);
    assert_int_equal(json_array_size(dlq), 3);
    assert_int_equal(json_array_size(retry), 1);
    json_decref(dlq);
    json_decref(retry);
}

/* SMTP 535 (a wrong password) is auth: dead letter at once. */
static void test_smtp_535_is_auth(void **state)
{
    char url[100];
    const char *extra[] = {url, "HERALD_SMTP_USER=herald",
                           "HERALD_SMTP_PASSWORD=wrong", NULL};
    struct worker *w;
    json_t *dlq;

    (void)state;
    snprintf(url, sizeof(url), "HERALD_SMTP_URL=smtp://127.0.0.1:%d",
             smtp_auth_port);
    w = worker_start("e-auth", extra);
    notify("e-auth", "eve", "comment", "a-1", "\"to\":\"eve@example.com\"");
    assert_int_equal(wait_metric(w,
                                 "herald_email_failures_total{worker="
                                 "\"email\",class=\"auth\"}",
                                 1, 30000),
                     0);
    worker_stop(w);
    dlq = pf_collect(env, "e-auth.dlq");
    assert_int_equal(json_array_size(dlq), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(dlq, 0), "headers"),
                            "herald-error-class")),
                        "auth");
    json_decref(dlq);
}

/* STARTTLS when offered (required here) with AUTH, implicit TLS
 * (smtps://), and a server without STARTTLS refused when TLS is
 * required. */
static void test_smtp_starttls_smtps_and_auth(void **state)
{
    char url[100], url2[100], url3[100];
    const char *starttls[] = {url, "HERALD_SMTP_USER=herald",
                              "HERALD_SMTP_PASSWORD=right",
                              "HERALD_SMTP_REQUIRE_TLS=true", NULL};
    const char *smtps[] = {url2, NULL};
    const char *notls[] = {url3, "HERALD_SMTP_REQUIRE_TLS=true", NULL};
    struct worker *a, *b, *c;
    json_t *all, *dlq;

    (void)state;
    snprintf(url, sizeof(url), "HERALD_SMTP_URL=smtp://127.0.0.1:%d",
             smtp_auth_port);
    snprintf(url2, sizeof(url2), "HERALD_SMTP_URL=smtps://127.0.0.1:%d",
             smtps_port);
    snprintf(url3, sizeof(url3), "HERALD_SMTP_URL=smtp://127.0.0.1:%d",
             smtp_port);
    fake_reset(fake_auth);
    fake_reset(fake_smtps);
    a = worker_start("e-tls", starttls);
    b = worker_start("e-smtps", smtps);
    c = worker_start("e-notls", notls);
    notify("e-tls", "tia", "comment", "t-1", "\"to\":\"tia@example.com\"");
    notify("e-smtps", "tom", "comment", "t-2", "\"to\":\"tom@example.com\"");
    notify("e-notls", "tod", "comment", "t-3", "\"to\":\"tod@example.com\"");
    assert_int_equal(wait_metric(a, "herald_email_sent_total{", 1, 30000), 0);
    assert_int_equal(wait_metric(b, "herald_email_sent_total{", 1, 30000), 0);
    assert_int_equal(wait_metric(c,
                                 "herald_email_failures_total{worker="
                                 "\"email\",class=\"auth\"}",
                                 1, 30000),
                     0);
    all = messages(fake_auth, NULL);
    assert_int_equal(json_array_size(all), 1);
    assert_true(
        json_is_true(json_object_get(json_array_get(all, 0), "secure")));
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(all, 0), "auth_user")),
        "herald");
    assert_well_formed(json_array_get(all, 0));
    json_decref(all);
    all = messages(fake_smtps, NULL);
    assert_int_equal(json_array_size(all), 1);
    assert_true(
        json_is_true(json_object_get(json_array_get(all, 0), "secure")));
    json_decref(all);
    worker_stop(a);
    worker_stop(b);
    worker_stop(c);
    dlq = pf_collect(env, "e-notls.dlq");
    assert_int_equal(json_array_size(dlq), 1);
    assert_non_null(
        strstr(json_string_value(json_object_get(
                   json_object_get(json_array_get(dlq, 0), "headers"),
                   "herald-error")),
               "offers no STARTTLS"));
    json_decref(dlq);
}

/* SES v2 SendEmail, signed with SigV4 and verified by the fake; its errors
 * mapped as SMTP's are. */
static void test_ses_sends_signed_raw_messages(void **state)
{
    char ep[100];
    const char *extra[] = {
        "HERALD_EMAIL_TRANSPORT=ses",       ep,
        "HERALD_SES_REGION=eu-west-1",      "AWS_ACCESS_KEY_ID=" AWS_KEY,
        "AWS_SECRET_ACCESS_KEY=" AWS_SECRT, NULL};
    struct worker *w;
    json_t *all, *dlq, *retry;

    (void)state;
    fake_reset(fake);
    snprintf(ep, sizeof(ep), "HERALD_SES_ENDPOINT=%s", hx_fake_http_url(fake));
    script(fake, "{\"ses_to\": \"rejected@example.com\", \"answers\": "
                 "[{\"type\": \"MessageRejected\"}]}");
    script(fake, "{\"ses_to\": \"busy@example.com\", \"answers\": "
                 "[{\"status\": 429}]}");
    w = worker_start("e-ses", extra);
    notify("e-ses", "sam", "comment", "s-1", "\"to\":\"sam@example.com\"");
    notify("e-ses", "sam", "comment", "s-2", "\"to\":\"sam@example.com\"");
    notify("e-ses", "rej", "comment", "s-3", "\"to\":\"rejected@example.com\"");
    notify("e-ses", "busy", "comment", "s-4", "\"to\":\"busy@example.com\"");
    assert_int_equal(wait_metric(w, "herald_email_sent_total{", 1, 30000), 0);
    assert_int_equal(wait_metric(w, "herald_email_failures_total{", 2, 30000),
                     0);
    all = messages(fake, NULL);
    assert_int_equal(json_array_size(all), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(all, 0), "transport")),
        "ses");
    assert_true(json_is_true(json_object_get(
        json_object_get(json_array_get(all, 0), "ses"), "signature_verified")));
    assert_well_formed(json_array_get(all, 0));
    json_decref(all);
    worker_stop(w);
    dlq = pf_collect(env, "e-ses.dlq");
    retry = pf_collect(env, "e-ses.retry");
    assert_int_equal(json_array_size(dlq), 1);
    assert_non_null(
        strstr(json_string_value(json_object_get(
                   json_object_get(json_array_get(dlq, 0), "headers"),
                   "herald-error")),
               "MessageRejected"));
    assert_int_equal(json_array_size(retry), 1);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(retry, 0), "headers"),
            "herald-error-class")),
        "throttled");
    json_decref(dlq);
    json_decref(retry);
}

/* EVAL @script (a file of workers/email) with @nkeys keys and @argv. */
static redisReply *eval_file(redisContext *c,
                             const char *script,
                             int nkeys,
                             const char *const *argv,
                             int argc)
{
    char path[600], n[12];
    char *src;
    const char *args[32];
    redisReply *r;

    snprintf(path, sizeof(path), "%s/workers/email/%s", HX_SOURCE_DIR, script);
    src = hx_file_read(path, NULL);
    assert_non_null(src);
    args[0] = "EVAL";
    args[1] = src;
    snprintf(n, sizeof(n), "%d", nkeys);
    args[2] = n;
    for (int i = 0; i < argc; i++)
        args[3 + i] = argv[i];
    r = redisCommandArgv(c, argc + 3, args, NULL);
    free(src);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", script, r->str);
    return r;
}

/* email_ingest.lua for one event @id of user u in category c (leading, 60 s
 * windows) at offset @off of partition t:0, at @now: its result code. */
static long long
ingest_one(redisContext *c, const char *now, const char *id, int off)
{
    char pos[32];
    redisReply *r;
    long long code;

    snprintf(pos, sizeof(pos), "t:0:%d", off);
    r = eval_file(
        c, "email_ingest.lua", 5,
        (const char *const[]){"fx:email:due", "fx:email:offsets",
                              "fx:email:win:{u}:c", "fx:email:items:{u}:c",
                              "fx:email:seen:{u}", now, "60000", id, "u", "c",
                              "l", "60000", "5", "", "", "{\"data\":{}}", pos},
        17);
    code = r->element[0]->integer;
    freeReplyObject(r);
    return code;
}

/* The fencing of claims, on the scripts themselves: an owner whose lease
 * ran out cannot complete the window another claim took over, and events
 * arriving during a claim open the next window. */
static void test_a_stale_owner_cannot_complete_a_window(void **state)
{
    redisContext *c = hx_redis_connect(env->redis);
    char now[24], later[24];
    long long f1, f2;
    redisReply *r;

    (void)state;
    assert_non_null(c);
    snprintf(now, sizeof(now), "%lld", (long long)hx_now_ms());
    /* one event opens a leading window of user u (due at once) */
    assert_int_equal(ingest_one(c, now, "e1", 1), 1);
    /* replica A claims it with a lease of 100 ms */
    r = eval_file(c, "email_claim.lua", 3,
                  (const char *const[]){"fx:email:due", "fx:email:leases",
                                        "fx:email:fence", now, "100", "10",
                                        "fx:"},
                  7);
    assert_true(r->elements >= 17);
    assert_string_equal(r->element[1]->str, "u");
    f1 = r->element[2]->integer;
    assert_int_equal(r->element[3]->integer, 1); /* first attempt */
    freeReplyObject(r);
    /* A stalls; its lease ends; B claims the window again */
    snprintf(later, sizeof(later), "%lld", (long long)hx_now_ms() + 200);
    r = eval_file(c, "email_claim.lua", 3,
                  (const char *const[]){"fx:email:due", "fx:email:leases",
                                        "fx:email:fence", later, "100", "10",
                                        "fx:"},
                  7);
    assert_true(r->elements >= 17);
    f2 = r->element[2]->integer;
    assert_true(f2 > f1);
    assert_int_equal(r->element[3]->integer, 2); /* a re-claim */
    freeReplyObject(r);
    /* A wakes up and tries to complete: refused; B completes */
    {
        char t1[24], t2[24];

        snprintf(t1, sizeof(t1), "%lld", f1);
        snprintf(t2, sizeof(t2), "%lld", f2);
        r = eval_file(
            c, "email_done.lua", 3,
            (const char *const[]){"fx:email:leases", "fx:email:out:{u}:c",
                                  "fx:email:outitems:{u}:c", "c:u", t1},
            5);
        assert_int_equal(r->element[0]->integer, 0);
        freeReplyObject(r);
        r = eval_file(
            c, "email_done.lua", 3,
            (const char *const[]){"fx:email:leases", "fx:email:out:{u}:c",
                                  "fx:email:outitems:{u}:c", "c:u", t2},
            5);
        assert_int_equal(r->element[0]->integer, 1);
        freeReplyObject(r);
    }
    r = redisCommand(c, "EXISTS fx:email:out:{u}:c");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* the leading window stays quiet until its end: a new event is
     * suppressed, and a redelivered one is a duplicate */
    assert_int_equal(ingest_one(c, now, "e2", 2), 3);
    assert_int_equal(ingest_one(c, now, "e2", 2), 0);
    /* the same event produced again upstream, at a later offset: the
     * window holds its id, so it is a duplicate too */
    assert_int_equal(ingest_one(c, now, "e2", 3), 0);
    redisFree(c);
}

/* --check-config renders every template with sample data. */
static void test_check_config_renders_every_template(void **state)
{
    char path[600], arg[700], out[600];
    struct hx_proc *p;
    int status = -1;
    char *log;

    (void)state;
    snprintf(path, sizeof(path), "%s/bad.json", dir);
    assert_int_equal(
        write_text(path,
                   "{\"email\": {\"categories\": {\"comment\": {\"templates\": "
                   "{\"en\": {\"subject\": \"{{count}}\", \"text\": "
                   "\"{{#items}}{{actor}}{{/items}}\"}}}}}}"),
        0);
    snprintf(arg, sizeof(arg), "--config=%s", path);
    snprintf(out, sizeof(out), "%s/check.out", dir);
    p = hx_proc_spawn(
        (const char *[]){hx_bin("herald-email"), "--check-config", arg, NULL},
        (const char *[]){"HERALD_EMAIL_FROM=" FROM,
                         "HERALD_SMTP_URL=smtp://127.0.0.1:25", NULL},
        out, out);
    assert_non_null(p);
    assert_int_equal(hx_proc_wait(p, 10000, &status), 0);
    hx_proc_free(p);
    log = hx_file_read(out, NULL);
    assert_int_not_equal(status, 0);
    assert_non_null(strstr(log, "email template comment/en"));
    assert_non_null(strstr(log, "unknown variable 'actor'"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_bursts_become_one_email_per_window),
        cmocka_unit_test(test_leading_sends_the_first_and_counts_the_rest),
        cmocka_unit_test(test_three_workers_send_each_window_once),
        cmocka_unit_test(test_kill_9_loses_no_window),
        cmocka_unit_test(test_windows_close_on_time),
        cmocka_unit_test(test_failures_go_where_they_belong),
        cmocka_unit_test(test_smtp_535_is_auth),
        cmocka_unit_test(test_smtp_starttls_smtps_and_auth),
        cmocka_unit_test(test_ses_sends_signed_raw_messages),
        cmocka_unit_test(test_a_stale_owner_cannot_complete_a_window),
        cmocka_unit_test(test_check_config_renders_every_template),
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("herald-email end to end", tests,
                                       group_setup, group_teardown);
}
