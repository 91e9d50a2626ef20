/*
 * The SQS source end to end: worker binaries reading a real SQS emulator
 * (fauxqs, from npm) with HERALD_SOURCE=sqs, against a real redis-server
 * and herald-devbroker for their outputs.
 *
 *  1. herald-unread fed through SQS, duplicates in the input and a kill -9
 *     mid-run: the messages come back when their visibility runs out and
 *     the counts are exactly the model's (what the Kafka path gives).
 *  2. FIFO: a failing group keeps its order and does not block the others.
 *  3. Partial failures: of a batch of ten, the failed ones come back after
 *     their backoff, the rest are deleted once.
 *  4. A Redis outage longer than the visibility timeout: visibility is
 *     extended, nothing is dead-lettered, nothing lost.
 *  5. herald-fanout bridges 100,000 SQS messages into Kafka, twice over the
 *     same input: the same ids.
 *  6. Web identity credentials from a fake STS, refreshed.
 *  7. SNS envelopes unwrapped; what is neither an event nor an envelope
 *     with one is dead-lettered to HERALD_SQS_DLQ_URL with its reason.
 *  8. --check-config validates the SQS settings without connecting.
 *
 * Skipped (exit 77) when node, fauxqs (scripts/deps.sh installs it) or
 * redis-server is missing.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "hr_compat.h"
#include "hx_fake_http.h"
#include "hx_sqs.h"
#include "unread_fixture.h"

#define TOPICS                                            \
    "sqs-crash:1,sqs-crash.unread:8,sqs-crash.dlq:1,"     \
    "sqs-outage:1,sqs-outage.unread:8,sqs-outage.dlq:1,"  \
    "sqs-sns:1,sqs-sns.unread:1,sqs-sns.dlq:1,"           \
    "sqs-sts:1,sqs-sts.unread:1,sqs-sts.dlq:1,"           \
    "sqs-fifo.dlq:1,sqs-partial.dlq:1,sqs-bridge.out:64," \
    "sqs-bridge.dlq:1"

static struct {
    struct uf_env *env;
    struct hx_sqs *sqs;
    struct hx_fake_http *http;
} F;

static struct chat_scenario *scenario(size_t messages, uint64_t seed)
{
    return uf_scenario(messages, seed);
}

static const char *brokers(void)
{
    return hx_broker_bootstraps(F.env->broker);
}

static int64_t topic_count(const char *topic)
{
    return hx_topic_count(brokers(), topic);
}

static int stop(struct hx_proc *proc, int timeout_ms)
{
    int status = -1;

    hx_proc_signal(proc, SIGTERM);
    if (hx_proc_wait(proc, timeout_ms, &status))
        return -1;
    return status;
}

/* "K=V" into a rotating buffer (valid for the next 15 calls). */
static const char *kv(const char *k, const char *v)
{
    static char bufs[16][600];
    static int i;
    char *b = bufs[i++ % 16];

    snprintf(b, sizeof(bufs[0]), "%s=%s", k, v);
    return b;
}

/* The SQS environment of hx_sqs_env(@q) plus @more (NULL-terminated). */
static const char **
sqs_env_of(struct hx_sqs *q, const char *queue_url, const char *const *more)
{
    static const char *envp[40];
    const char *const *base = hx_sqs_env(q);
    size_t n = 0;

    for (size_t i = 0; base[i]; i++)
        envp[n++] = base[i];
    envp[n++] = kv("HERALD_SQS_QUEUE_URL", queue_url);
    envp[n++] = "HERALD_SQS_WAIT_SECONDS=1";
    envp[n++] = "HERALD_SQS_LAG_INTERVAL_MS=500";
    for (size_t i = 0; more && more[i] && n < 38; i++)
        envp[n++] = more[i];
    envp[n] = NULL;
    return envp;
}

static const char **sqs_env(const char *queue_url, const char *const *more)
{
    return sqs_env_of(F.sqs, queue_url, more);
}

/* Send every event of @s to @url. */
static void send_scenario(const char *url, const struct chat_scenario *s)
{
    size_t n = chat_count(s);
    const char **bodies = calloc(n, sizeof(*bodies));

    for (size_t i = 0; i < n; i++)
        bodies[i] = chat_event_at(s, i)->value;
    assert_int_equal(hx_sqs_send(F.sqs, url, bodies, NULL, n, 0, NULL), 0);
    free(bodies);
}

struct depth_arg {
    struct hx_sqs *q;
    const char *url;
};

static bool queue_empty(void *p)
{
    struct depth_arg *a = p;

    return hx_sqs_depth(a->q, a->url, NULL) == 0;
}

static int wait_empty_of(struct hx_sqs *q, const char *url, int timeout_ms)
{
    struct depth_arg a = {q, url};

    return hx_wait_until(queue_empty, &a, timeout_ms);
}

static int wait_empty(const char *url, int timeout_ms)
{
    return wait_empty_of(F.sqs, url, timeout_ms);
}

/* --- 1. unread, duplicates, kill -9 -------------------------------------- */

static void test_unread_through_sqs_is_exact_across_a_kill_9(void **state)
{
    struct chat_scenario *s = scenario(20000, 21);
    char *url = hx_sqs_create(F.sqs, "unread-crash", NULL);
    const char *const more[] = {"HERALD_SQS_VISIBILITY_TIMEOUT=5", NULL};
    struct uf_worker *w;

    (void)state;
    assert_non_null(url);
    hx_redis_flushall(F.env->redis);
    send_scenario(url, s);
    w = uf_worker_start(F.env, "sqs-crash", "g-sqs-crash", sqs_env(url, more));
    assert_non_null(w);
    assert_int_equal(uf_wait_processed(w, (double)chat_count(s) / 4, 60000), 0);
    hx_proc_signal(w->proc, SIGKILL);
    assert_int_equal(hx_proc_wait(w->proc, 5000, NULL), 0);
    uf_worker_free(w);
    w = uf_worker_start(F.env, "sqs-crash", "g-sqs-crash", sqs_env(url, more));
    assert_int_equal(uf_wait_exact(F.env, s, 180000), 0);
    assert_int_equal(wait_empty(url, 60000), 0);
    /* the duplicates of the input and the redelivered messages of the
     * killed worker met the worker's idempotency */
    assert_true(uf_metric(w, "herald_events_processed_total{worker=\"unread\","
                             "outcome=\"duplicate\"}") > 0);
    assert_true(uf_metric(w, "herald_sqs_messages_total{worker=\"unread\","
                             "fate=\"deleted\"}") > 0);
    assert_true(uf_metric(w, "herald_consumer_lag{worker=\"unread\","
                             "topic=\"unread-crash\",partition=\"0\"}") >= 0);
    assert_int_equal(topic_count("sqs-crash.dlq"), 0);
    assert_true(topic_count("sqs-crash.unread") > 0);
    assert_int_equal(stop(w->proc, 15000), 0);
    uf_worker_free(w);
    free(url);
    chat_free(s);
}

/* --- fanout helpers ------------------------------------------------------ */

struct fworker {
    struct hx_proc *proc;
    int port;
    char log[512];
};

/* herald-fanout with @rules (a JSON text; @URL@ becomes the fake HTTP
 * server's address) reading @queue_url. */
static struct fworker *fanout_start_on(struct hx_sqs *q,
                                       const char *name,
                                       const char *rules,
                                       const char *queue_url,
                                       const char *const *more)
{
    static int seq;
    struct fworker *w = calloc(1, sizeof(*w));
    char path[512], port[64], *text;
    const char **envp;
    size_t n = 0;
    FILE *f;

    assert_non_null(w);
    /* @URL@ -> the fake server */
    text = malloc(strlen(rules) * 2 + 256);
    assert_non_null(text);
    for (const char *p = rules; *p;) {
        if (!strncmp(p, "@URL@", 5)) {
            n += (size_t)sprintf(text + n, "%s", hx_fake_http_url(F.http));
            p += 5;
        } else {
            text[n++] = *p++;
        }
    }
    text[n] = '\0';
    snprintf(path, sizeof(path), "%s/%s-rules.json", F.env->dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(text);
    w->port = hx_free_port();
    snprintf(port, sizeof(port), "127.0.0.1:%d", w->port);
    envp = sqs_env_of(q, queue_url, more);
    for (n = 0; envp[n]; n++)
        ;
    envp[n++] = kv("HERALD_METRICS_ADDR", port);
    envp[n++] = kv("HERALD_KAFKA_BROKERS", brokers());
    envp[n++] = kv("HERALD_REDIS_URL", hx_redis_url(F.env->redis));
    envp[n++] = "HERALD_SHUTDOWN_TIMEOUT_MS=10000";
    envp[n] = NULL;
    snprintf(w->log, sizeof(w->log), "%s/fanout-%s-%d.log", F.env->dir, name,
             ++seq);
    w->proc = hx_proc_spawn(
        (const char *[]){hx_bin("herald-fanout"), "--config", path, NULL}, envp,
        NULL, w->log);
    assert_non_null(w->proc);
    return w;
}

static struct fworker *fanout_start(const char *name,
                                    const char *rules,
                                    const char *queue_url,
                                    const char *const *more)
{
    return fanout_start_on(F.sqs, name, rules, queue_url, more);
}

static void fanout_free(struct fworker *w)
{
    if (!w)
        return;
    hx_proc_free(w->proc);
    free(w);
}

/* A CloudEvent of type order.step whose data carries @tag. */
static char *step_event(const char *id, const char *tag)
{
    char *out = malloc(512);

    assert_non_null(out);
    snprintf(out, 512,
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/orders\","
             "\"type\":\"order.step\",\"data\":{\"tag\":\"%s\"}}",
             id, tag);
    return out;
}

/* The fake server's answers to /hook as (tag, status, time) triples, in
 * arrival order: the tag is the body's "<group>:<seq>;" marker. */
struct answer {
    char tag[32];
    long status;
    double time_ms;
};

static size_t hook_answers(struct answer *out, size_t max)
{
    json_t *reqs = hx_fake_http_requests(F.http, "/hook"), *r;
    size_t i, n = 0;

    assert_non_null(reqs);
    json_array_foreach(reqs, i, r)
    {
        const char *body = json_string_value(json_object_get(r, "body"));
        const char *t = body ? strstr(body, "\"tag\":\"") : NULL;

        if (!t || n == max)
            continue;
        t += 7;
        snprintf(out[n].tag, sizeof(out[n].tag), "%.*s", (int)strcspn(t, "\""),
                 t);
        out[n].status = (long)json_integer_value(json_object_get(r, "status"));
        out[n].time_ms = json_number_value(json_object_get(r, "time_ms"));
        n++;
    }
    json_decref(reqs);
    return n;
}

static size_t ok_count(const struct answer *a, size_t n)
{
    size_t ok = 0;

    for (size_t i = 0; i < n; i++)
        ok += a[i].status == 200;
    return ok;
}

struct ok_arg {
    size_t want;
};

static bool hook_has_oks(void *p)
{
    struct ok_arg *a = p;
    struct answer ans[512];

    return ok_count(ans, hook_answers(ans, 512)) >= a->want;
}

static const char hook_rules[] =
    "{\"rules\": [{\"name\": \"step\", \"match\": {\"type\": [\"order.step\"]},"
    "  \"emit\": [{\"webhook\": \"hook\", \"body\": {\"tag\": "
    "\"$.new.tag\"}}]}],"
    " \"webhooks\": {\"hook\": {\"url\": \"@URL@/hook\", \"timeout_ms\": 2000,"
    "  \"auth\": {\"type\": \"none\"}}}}";

/* --- 2. FIFO ------------------------------------------------------------- */

/* Ten steps of groups A and B on FIFO queue @name of @q; A's third
 * fails twice: every step is delivered once, in order within its group,
 * and B is done before A's third gets through. */
static void fifo_scenario(struct hx_sqs *q, const char *name)
{
    char *url = hx_sqs_create(q, name, NULL);
    const char *const more[] = {"HERALD_SQS_RETRY_BASE_MS=1000",
                                "HERALD_DLQ_TOPIC=sqs-fifo.dlq", NULL};
    char *bodies[20];
    const char *groups[20];
    struct answer ans[256];
    struct ok_arg want = {20};
    struct fworker *w;
    double a3_ok = 0, b_last_ok = 0;
    int a_next = 1, b_next = 1;
    size_t n;

    assert_non_null(url);
    assert_int_equal(hx_fake_http_reset(F.http), 0);
    /* A:03 fails twice before it is taken */
    assert_int_equal(
        hx_fake_http_route(F.http,
                           "{\"path\": \"/hook\", \"status\": 200,"
                           " \"by_body\": [{\"contains\": \"A:03;\","
                           "               \"statuses\": [503, 503, 200]}]}"),
        0);
    /* A and B interleaved, ten steps each */
    for (int i = 0; i < 20; i++) {
        char id[32], tag[32];

        snprintf(id, sizeof(id), "fifo-%d", i);
        snprintf(tag, sizeof(tag), "%c:%02d;", i % 2 ? 'B' : 'A', i / 2 + 1);
        bodies[i] = step_event(id, tag);
        groups[i] = i % 2 ? "B" : "A";
    }
    assert_int_equal(
        hx_sqs_send(q, url, (const char *const *)bodies, groups, 20, 0, NULL),
        0);
    w = fanout_start_on(q, name, hook_rules, url, more);
    assert_int_equal(hx_wait_until(hook_has_oks, &want, 60000), 0);
    n = hook_answers(ans, 256);
    /* every step answered 200 once, in order within its group */
    for (size_t i = 0; i < n; i++) {
        int seq = atoi(ans[i].tag + 2);

        if (ans[i].status != 200)
            continue;
        if (ans[i].tag[0] == 'A') {
            assert_int_equal(seq, a_next);
            a_next++;
            if (seq == 3)
                a3_ok = ans[i].time_ms;
        } else {
            assert_int_equal(seq, b_next);
            b_next++;
            b_last_ok = ans[i].time_ms;
        }
    }
    assert_int_equal(a_next, 11);
    assert_int_equal(b_next, 11);
    assert_int_equal(n, 22); /* the two 503s of A:03 */
    /* B flowed while A waited for its retries */
    assert_true(b_last_ok < a3_ok);
    assert_int_equal(wait_empty_of(q, url, 30000), 0);
    assert_int_equal(stop(w->proc, 15000), 0);
    fanout_free(w);
    for (int i = 0; i < 20; i++)
        free(bodies[i]);
    free(url);
}

/* How many messages of one group the biggest receive of @queue returned,
 * from tests/node/fake_sqs.js's log. */
static size_t most_per_receive(struct hx_sqs *q, const char *queue)
{
    char path[128];
    json_t *log, *entry;
    size_t i, most = 0;

    snprintf(path, sizeof(path), "/_control/log?queue=%s", queue);
    log = hx_sqs_control(q, path);
    assert_non_null(log);
    json_array_foreach(log, i, entry)
    {
        const char *action =
            json_string_value(json_object_get(entry, "action"));
        size_t n = json_array_size(json_object_get(entry, "message_ids"));

        if (action && !strcmp(action, "ReceiveMessage") && n > most)
            most = n;
    }
    json_decref(log);
    return most;
}

static void
test_fifo_groups_keep_order_and_a_failing_one_blocks_no_other(void **state)
{
    (void)state;
    /* fauxqs hands out one message per group and receive */
    fifo_scenario(F.sqs, "orders.fifo");
}

/* AWS returns several messages of a group in one receive (research/aws.md
 * §2): tests/node/fake_sqs.js does too. The worker holds a group's later
 * messages until the earlier one is done, and gives them back when it is
 * retried. */
static void test_fifo_groups_received_together_keep_their_order(void **state)
{
    struct hx_sqs *q = hx_sqs_start_js(HX_SOURCE_DIR "/tests/node/fake_sqs.js");

    (void)state;
    assert_non_null(q);
    fifo_scenario(q, "batched.fifo");
    /* a receive brought more than one message of a group (two groups) */
    assert_true(most_per_receive(q, "batched.fifo") >= 3);
    hx_sqs_free(q);
}

/* --- 3. partial failures ---------------------------------------------------
 */

static void
test_partial_failures_come_back_the_rest_is_deleted_once(void **state)
{
    char *url = hx_sqs_create(F.sqs, "partial", NULL);
    const char *const more[] = {"HERALD_SQS_RETRY_BASE_MS=2000",
                                "HERALD_DLQ_TOPIC=sqs-partial.dlq", NULL};
    char *bodies[10];
    struct answer ans[64];
    struct ok_arg want = {10};
    struct fworker *w;
    size_t n;

    (void)state;
    assert_non_null(url);
    assert_int_equal(hx_fake_http_reset(F.http), 0);
    assert_int_equal(
        hx_fake_http_route(
            F.http, "{\"path\": \"/hook\", \"status\": 200, \"by_body\": ["
                    " {\"contains\": \"P:02;\", \"statuses\": [503, 200]},"
                    " {\"contains\": \"P:05;\", \"statuses\": [504, 200]},"
                    " {\"contains\": \"R:01;\", \"statuses\": [429, 200],"
                    "  \"headers\": {\"Retry-After\": \"3\"}},"
                    " {\"contains\": \"P:09;\", \"statuses\": [502, 200]}]}"),
        0);
    for (int i = 0; i < 10; i++) {
        char id[32], tag[32];

        snprintf(id, sizeof(id), "partial-%d", i);
        snprintf(tag, sizeof(tag), "P:%02d;", i + 1);
        bodies[i] = step_event(id, tag);
    }
    /* one SendMessageBatch: the ten arrive together */
    assert_int_equal(
        hx_sqs_send(F.sqs, url, (const char *const *)bodies, NULL, 10, 0, NULL),
        0);
    w = fanout_start("partial", hook_rules, url, more);
    assert_int_equal(hx_wait_until(hook_has_oks, &want, 60000), 0);
    assert_int_equal(wait_empty(url, 30000), 0);
    n = hook_answers(ans, 64);
    assert_int_equal(n, 13);
    for (int i = 1; i <= 10; i++) {
        char tag[32];
        double failed_at = -1, ok_at = -1;
        int oks = 0;

        snprintf(tag, sizeof(tag), "P:%02d;", i);
        for (size_t k = 0; k < n; k++) {
            if (strcmp(ans[k].tag, tag))
                continue;
            if (ans[k].status == 200) {
                oks++;
                ok_at = ans[k].time_ms;
            } else {
                failed_at = ans[k].time_ms;
            }
        }
        assert_int_equal(oks, 1);       /* delivered once */
        if (i == 2 || i == 5 || i == 9) /* back after its backoff (1-2 s) */
            assert_true(ok_at - failed_at >= 900);
    }
    assert_true(hx_metric(w->port,
                          "herald_sqs_messages_total{worker=\"fanout\","
                          "fate=\"returned\"}") == 3);
    assert_true(hx_metric(w->port,
                          "herald_sqs_messages_total{worker=\"fanout\","
                          "fate=\"deleted\"}") == 10);
    assert_true(hx_metric(w->port, "herald_events_processed_total{worker="
                                   "\"fanout\",outcome=\"retried\"}") == 3);
    /* a Retry-After longer than the backoff is what the message waits */
    free(bodies[0]);
    bodies[0] = step_event("partial-r", "R:01;");
    assert_int_equal(
        hx_sqs_send(F.sqs, url, (const char *const *)bodies, NULL, 1, 0, NULL),
        0);
    want.want = 11;
    assert_int_equal(hx_wait_until(hook_has_oks, &want, 60000), 0);
    n = hook_answers(ans, 64);
    assert_int_equal(n, 15);
    assert_string_equal(ans[13].tag, "R:01;");
    assert_int_equal(ans[13].status, 429);
    assert_string_equal(ans[14].tag, "R:01;");
    assert_int_equal(ans[14].status, 200);
    assert_true(ans[14].time_ms - ans[13].time_ms >= 2900);
    assert_int_equal(topic_count("sqs-partial.dlq"), 0);
    assert_int_equal(stop(w->proc, 15000), 0);
    fanout_free(w);
    for (int i = 0; i < 10; i++)
        free(bodies[i]);
    free(url);
}

/* --- 4. Redis outage ---------------------------------------------------------
 */

struct ready_arg {
    const struct uf_worker *w;
    const char *needle;
};

static bool not_ready_with(void *p)
{
    struct ready_arg *a = p;
    char body[512];

    return uf_readyz(a->w, body, sizeof(body)) == 503 &&
           strstr(body, a->needle);
}

static void test_redis_outage_keeps_messages_invisible(void **state)
{
    struct chat_scenario *s = scenario(6000, 22);
    char *url = hx_sqs_create(F.sqs, "unread-outage", NULL);
    const char *const more[] = {"HERALD_SQS_VISIBILITY_TIMEOUT=5", NULL};
    struct ready_arg ra;
    struct uf_worker *w;
    double dup_before;

    (void)state;
    assert_non_null(url);
    hx_redis_flushall(F.env->redis);
    w = uf_worker_start(F.env, "sqs-outage", "g-sqs-outage",
                        sqs_env(url, more));
    assert_int_equal(uf_wait_ready(w, 30000), 0);
    assert_int_equal(hx_redis_stop_server(F.env->redis), 0);
    send_scenario(url, s);
    ra.w = w;
    ra.needle = "redis";
    assert_int_equal(hx_wait_until(not_ready_with, &ra, 20000), 0);
    /* three visibility timeouts: the held messages must not come back */
    hx_sleep_ms(15000);
    assert_true(hx_proc_is_running(w->proc));
    assert_true(uf_metric(w, "herald_sqs_messages_total{worker=\"unread\","
                             "fate=\"extended\"}") > 0);
    dup_before = uf_metric(w, "herald_events_processed_total{worker="
                              "\"unread\",outcome=\"duplicate\"}");
    assert_int_equal(hx_redis_restart_server(F.env->redis), 0);
    assert_int_equal(uf_wait_exact(F.env, s, 120000), 0);
    assert_int_equal(wait_empty(url, 60000), 0);
    assert_int_equal(uf_wait_ready(w, 20000), 0);
    assert_int_equal(topic_count("sqs-outage.dlq"), 0);
    assert_true(uf_metric(w, "herald_batch_pauses_total{") > 0);
    /* nothing was received twice: only the input's own duplicates */
    assert_true(dup_before == 0);
    assert_true(uf_metric(w, "herald_sqs_messages_total{worker=\"unread\","
                             "fate=\"given_back\"}") <= 0);
    assert_int_equal(stop(w->proc, 15000), 0);
    uf_worker_free(w);
    free(url);
    chat_free(s);
}

/* --- 5. the bridge ---------------------------------------------------------
 */

struct ids {
    json_t *seen; /* id -> count */
    size_t n;
};

static int collect_id(void *opaque, const rd_kafka_message_t *rkm)
{
    struct ids *ids = opaque;
    json_t *ev = json_loadb(rkm->payload, rkm->len, 0, NULL);
    const char *id = json_string_value(json_object_get(ev, "id"));

    if (id) {
        json_t *c = json_object_get(ids->seen, id);

        json_object_set_new(ids->seen, id,
                            json_integer(c ? json_integer_value(c) + 1 : 1));
        ids->n++;
    }
    json_decref(ev);
    return 0;
}

static bool topic_has(void *p)
{
    const size_t *want = p;

    return topic_count("sqs-bridge.out") >= (int64_t)*want;
}

static void test_fanout_bridges_sqs_into_kafka_with_stable_ids(void **state)
{
    enum { N = 100000 };
    static const char rules[] =
        "{\"rules\": [{\"name\": \"bridge\", \"match\": {\"type\":"
        " [\"order.step\"]}, \"emit\": [{\"topic\": \"sqs-bridge.out\","
        " \"type\": \"order.bridged\", \"key\": \"$.new.tag\","
        " \"data\": {\"tag\": \"$.new.tag\"}}]}]}";
    const char *const more[] = {"HERALD_DLQ_TOPIC=sqs-bridge.dlq",
                                "HERALD_SQS_RECEIVERS=8", NULL};
    char *url = hx_sqs_create(F.sqs, "bridge", NULL);
    char **bodies = calloc(N, sizeof(*bodies));
    struct ids ids = {json_object(), 0};
    size_t want = N;
    struct fworker *w;
    const char *key;
    json_t *count;

    (void)state;
    assert_non_null(url);
    for (int i = 0; i < N; i++) {
        char id[32], tag[32];

        snprintf(id, sizeof(id), "bridge-%d", i);
        snprintf(tag, sizeof(tag), "T:%d;", i);
        bodies[i] = step_event(id, tag);
    }
    w = fanout_start("bridge", rules, url, more);
    for (int run = 0; run < 2; run++) {
        assert_int_equal(hx_sqs_send(F.sqs, url, (const char *const *)bodies,
                                     NULL, N, 0, NULL),
                         0);
        want = (size_t)N * (size_t)(run + 1);
        assert_int_equal(hx_wait_until(topic_has, &want, 300000), 0);
    }
    assert_int_equal(wait_empty(url, 60000), 0);
    assert_int_equal(hx_consume_all(brokers(), "sqs-bridge.out", 5000, 120000,
                                    collect_id, &ids),
                     2 * N);
    /* every change id came out twice, under one derived id */
    assert_int_equal(json_object_size(ids.seen), N);
    json_object_foreach(ids.seen, key, count)
        assert_int_equal(json_integer_value(count), 2);
    assert_int_equal(topic_count("sqs-bridge.dlq"), 0);
    assert_int_equal(stop(w->proc, 15000), 0);
    fanout_free(w);
    json_decref(ids.seen);
    for (int i = 0; i < N; i++)
        free(bodies[i]);
    free(bodies);
    free(url);
}

/* --- 6. web identity ---------------------------------------------------------
 */

static size_t count_key(json_t *calls, const char *field, const char *prefix)
{
    size_t i, n = 0;
    json_t *c;

    json_array_foreach(calls, i, c)
    {
        const char *v = json_string_value(json_object_get(c, field));

        n += v && !strncmp(v, prefix, strlen(prefix));
    }
    return n;
}

struct exchanges_arg {
    struct hx_fake_http *sts;
    size_t want;
};

static bool has_exchanges(void *p)
{
    struct exchanges_arg *a = p;
    json_t *ex = hx_fake_http_get(a->sts, "/_control/exchanges");
    size_t n = json_array_size(ex);

    json_decref(ex);
    return n >= a->want;
}

static void
test_web_identity_credentials_are_fetched_and_refreshed(void **state)
{
    struct chat_scenario *s = scenario(300, 23);
    char *url = hx_sqs_create(F.sqs, "unread-sts", NULL);
    char token_file[512], lifetime[32];
    const char *const args[] = {"--upstream", hx_sqs_endpoint(F.sqs),
                                "--lifetime-s", "4", NULL};
    struct hx_fake_http_opts opts = {
        .js = HX_SOURCE_DIR "/tests/node/fake_sts.js", .args = args};
    struct hx_fake_http *sts = hx_fake_http_start(&opts);
    struct exchanges_arg ea;
    struct uf_worker *w;
    json_t *ex, *proxied;
    const char *envp[12];
    FILE *f;

    (void)state;
    (void)lifetime;
    assert_non_null(url);
    assert_non_null(sts);
    hx_redis_flushall(F.env->redis);
    snprintf(token_file, sizeof(token_file), "%s/web-identity-token",
             F.env->dir);
    f = fopen(token_file, "w");
    assert_non_null(f);
    fputs("token-A\n", f);
    fclose(f);
    /* no static keys: a role and a token file, STS and SQS through the
     * fake (which forwards SQS calls to the emulator and records them) */
    envp[0] = "HERALD_SOURCE=sqs";
    envp[1] = kv("HERALD_SQS_QUEUE_URL", url);
    envp[2] = "HERALD_SQS_WAIT_SECONDS=1";
    envp[3] = "AWS_REGION=us-east-1";
    envp[4] = "AWS_ROLE_ARN=arn:aws:iam::000000000000:role/herald";
    envp[5] = kv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file);
    envp[6] = kv("AWS_ENDPOINT_URL_STS", hx_fake_http_url(sts));
    envp[7] = kv("AWS_ENDPOINT_URL_SQS", hx_fake_http_url(sts));
    envp[8] = "AWS_ROLE_SESSION_NAME=herald-test";
    envp[9] = NULL;
    w = uf_worker_start(F.env, "sqs-sts", "g-sqs-sts", envp);
    ea.sts = sts;
    ea.want = 1;
    assert_int_equal(hx_wait_until(has_exchanges, &ea, 20000), 0);
    /* the kubelet rotates the token: the next exchange sends the new one */
    f = fopen(token_file, "w");
    assert_non_null(f);
    fputs("token-B\n", f);
    fclose(f);
    send_scenario(url, s);
    assert_int_equal(uf_wait_exact(F.env, s, 60000), 0);
    ea.want = 3; /* credentials living 4 s are refreshed every 2 s */
    assert_int_equal(hx_wait_until(has_exchanges, &ea, 20000), 0);
    ex = hx_fake_http_get(sts, "/_control/exchanges");
    assert_non_null(ex);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(ex, 0), "token")),
        "token-A");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(ex, 2), "token")),
        "token-B");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ex, 0),
                                                          "session_name")),
                        "herald-test");
    /* SQS calls were signed with the issued keys, first and renewed ones,
     * each with its session token */
    proxied = hx_fake_http_get(sts, "/_control/proxied");
    assert_non_null(proxied);
    assert_true(count_key(proxied, "key_id", "ASIAFAKE1") > 0);
    assert_true(count_key(proxied, "key_id", "ASIAFAKE3") > 0 ||
                count_key(proxied, "key_id", "ASIAFAKE2") > 0);
    assert_int_equal(count_key(proxied, "security_token", "token-"),
                     json_array_size(proxied));
    json_decref(ex);
    json_decref(proxied);
    assert_int_equal(stop(w->proc, 15000), 0);
    uf_worker_free(w);
    hx_fake_http_free(sts);
    free(url);
    chat_free(s);
}

/* --- 7. SNS envelopes and the SQS dead-letter queue -------------------------
 */

static void test_sns_envelopes_unwrapped_and_strays_dead_lettered(void **state)
{
    char *url = hx_sqs_create(F.sqs, "unread-sns", NULL);
    char *dlq = hx_sqs_create(F.sqs, "unread-sns-dlq", NULL);
    char dlq_env[600];
    const char *more[] = {dlq_env, NULL};
    static const char event[] =
        "{\"specversion\":\"1.0\",\"id\":\"sns-1\",\"source\":\"/chat\","
        "\"type\":\"message.created\",\"data\":{\"conversation_id\":\"c-sns\","
        "\"message_id\":\"m-sns\",\"sender_id\":\"alice\",\"recipient_ids\":"
        "[\"bob\"],\"sent_at\":\"2026-12-01T10:00:00Z\"}}";
    json_t *envelope =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:{s:s, s:s}}}",
                  "Type", "Notification", "MessageId", "5a1c-sns", "TopicArn",
                  "arn:aws:sns:us-east-1:000000000000:chat", "Message", event,
                  "Timestamp", "2026-12-01T10:00:01.000Z", "SignatureVersion",
                  "1", "Signature", "EXAMPLE", "MessageAttributes", "origin",
                  "Type", "String", "Value", "app");
    char *wrapped = json_dumps(envelope, JSON_COMPACT);
    static const char confirm[] =
        "{\"Type\":\"SubscriptionConfirmation\",\"MessageId\":\"c-1\","
        "\"TopicArn\":\"arn:aws:sns:us-east-1:000000000000:chat\","
        "\"Message\":\"You have chosen to subscribe\",\"Token\":\"abc\"}";
    const char *bodies[] = {wrapped, confirm, "neither json nor an event"};
    json_t *dead = json_array(), *d;
    struct uf_worker *w;
    redisContext *c;
    redisReply *r;
    size_t i;
    int seen_confirm = 0, seen_text = 0;

    (void)state;
    assert_non_null(url);
    assert_non_null(dlq);
    snprintf(dlq_env, sizeof(dlq_env), "HERALD_SQS_DLQ_URL=%s", dlq);
    hx_redis_flushall(F.env->redis);
    assert_int_equal(hx_sqs_send(F.sqs, url, bodies, NULL, 3, 0, NULL), 0);
    w = uf_worker_start(F.env, "sqs-sns", "g-sqs-sns", sqs_env(url, more));
    assert_int_equal(uf_wait_processed(w, 3, 30000), 0);
    assert_int_equal(wait_empty(url, 30000), 0);
    c = hx_redis_connect(F.env->redis);
    r = redisCommand(c, "HGET herald:unread:{bob} c-sns");
    assert_non_null(r);
    assert_string_equal(r->str ? r->str : "", "1");
    freeReplyObject(r);
    redisFree(c);
    assert_int_equal(hx_sqs_drain(F.sqs, dlq, 2, 20000, dead), 2);
    json_array_foreach(dead, i, d)
    {
        const char *body = json_string_value(json_object_get(d, "body"));
        json_t *attrs = json_object_get(d, "attrs");
#define ATTR(n)                                                               \
    json_string_value(json_object_get(json_object_get(attrs, n), "StringValu" \
                                                                 "e"))

        assert_string_equal(ATTR("herald-error-class"), "poison");
        assert_string_equal(ATTR("herald-worker"), "unread");
        assert_string_equal(ATTR("herald-origin-topic"), "unread-sns");
        assert_non_null(ATTR("herald-origin-message-id"));
        assert_non_null(ATTR("herald-first-failure-ms"));
        if (!strcmp(body, confirm)) {
            seen_confirm++;
            assert_non_null(
                strstr(ATTR("herald-error"), "SubscriptionConfirmation"));
        } else {
            assert_string_equal(body, "neither json nor an event");
            seen_text++;
            assert_non_null(strstr(ATTR("herald-error"), "json"));
        }
#undef ATTR
    }
    assert_int_equal(seen_confirm, 1);
    assert_int_equal(seen_text, 1);
    assert_true(uf_metric(w, "herald_sqs_messages_total{worker=\"unread\","
                             "fate=\"dead_lettered\"}") == 2);
    assert_int_equal(topic_count("sqs-sns.dlq"), 0);
    assert_int_equal(stop(w->proc, 15000), 0);
    uf_worker_free(w);
    json_decref(dead);
    json_decref(envelope);
    free(wrapped);
    free(url);
    free(dlq);
}

/* --- 8. --check-config ---------------------------------------------------- */

static int check_config_of(const char *bin, const char *const *envp, char **err)
{
    char path[512];
    int status = -1;
    struct hx_proc *p;

    snprintf(path, sizeof(path), "%s/check.err", F.env->dir);
    p = hx_proc_spawn((const char *[]){hx_bin(bin), "--check-config", NULL},
                      envp, "/dev/null", path);
    assert_non_null(p);
    assert_int_equal(hx_proc_wait(p, 10000, &status), 0);
    hx_proc_free(p);
    *err = hx_file_read(path, NULL);
    return status;
}

static int check_config(const char *const *envp, char **err)
{
    return check_config_of("herald-unread", envp, err);
}

static void test_check_config_validates_sqs_settings(void **state)
{
    const char *const good[] = {
        "HERALD_SOURCE=sqs",
        "HERALD_SQS_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/1234/q",
        "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", NULL};
    const char *const bad[] = {
        "HERALD_SOURCE=sqs", "HERALD_SQS_QUEUE_URL=http://127.0.0.1:1/",
        "HERALD_SQS_DLQ_URL=ftp://x/y", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", NULL};
    char *err = NULL;

    (void)state;
    assert_int_equal(check_config(good, &err), 0);
    assert_null(strstr(err, "secret\"")); /* the secret is not shown */
    free(err);
    assert_int_equal(check_config(bad, &err), 2);
    assert_non_null(strstr(err, "HERALD_SQS_QUEUE_URL"));
    assert_non_null(strstr(err, "HERALD_SQS_DLQ_URL"));
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    assert_non_null(strstr(err, "AWS_REGION"));
    free(err);
    /* the guard reads herald.retry, which only Kafka has */
    assert_int_equal(
        check_config_of(
            "herald-guard",
            (const char *const[]){good[0], good[1], good[2], good[3],
                                  "HERALD_KAFKA_BROKERS=127.0.0.1:1", NULL},
            &err),
        2);
    assert_non_null(strstr(err, "herald-guard reads herald.retry on Kafka"));
    free(err);
}

static int group_setup(void **state)
{
    (void)state;
    if (!hx_sqs_available()) {
        fprintf(stderr, "node or fauxqs missing (scripts/deps.sh installs "
                        "it): skipped\n");
        exit(77);
    }
    F.env = uf_env_start(NULL, TOPICS);
    if (!F.env) {
        fprintf(stderr, "redis-server or herald-devbroker unavailable\n");
        exit(77);
    }
    F.sqs = hx_sqs_start();
    F.http = hx_fake_http_start(NULL);
    if (!F.sqs || !F.http) {
        fprintf(stderr, "fauxqs or the fake HTTP server did not start\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hx_fake_http_free(F.http);
    hx_sqs_free(F.sqs);
    uf_env_free(F.env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_config_validates_sqs_settings),
        cmocka_unit_test(test_sns_envelopes_unwrapped_and_strays_dead_lettered),
        cmocka_unit_test(test_unread_through_sqs_is_exact_across_a_kill_9),
        cmocka_unit_test(
            test_fifo_groups_keep_order_and_a_failing_one_blocks_no_other),
        cmocka_unit_test(test_fifo_groups_received_together_keep_their_order),
        cmocka_unit_test(
            test_partial_failures_come_back_the_rest_is_deleted_once),
        cmocka_unit_test(test_redis_outage_keeps_messages_invisible),
        cmocka_unit_test(
            test_web_identity_credentials_are_fetched_and_refreshed),
        cmocka_unit_test(test_fanout_bridges_sqs_into_kafka_with_stable_ids),
    };

    if (getenv("HERALD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HERALD_TEST_FILTER"));
    return cmocka_run_group_tests_name("the SQS source end to end", tests,
                                       group_setup, group_teardown);
}
