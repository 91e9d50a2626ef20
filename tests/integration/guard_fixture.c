#include "guard_fixture.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hx_fake_http.h"

/* Workers still running, killed by gf_procs_kill(). */
static struct gf_proc *running[8];

struct gf_env *gf_env_start(const char *const *redis_args, const char *topics)
{
    struct gf_env *env = calloc(1, sizeof(*env));

    if (!hx_node_available()) {
        fprintf(stderr, "node is not on PATH: skipped\n");
        exit(HX_SKIP);
    }
    env->redis = hx_redis_start(redis_args);
    if (!env->redis) {
        fprintf(stderr, "redis-server unavailable: skipped\n");
        exit(HX_SKIP);
    }
    env->broker = hx_broker_start(topics, 4);
    env->http = hx_fake_http_start(NULL);
    env->dir = hx_tmpdir_new("guard-fleet");
    if (!env->broker || !env->http || !env->dir) {
        gf_env_free(env);
        return NULL;
    }
    return env;
}

void gf_env_free(struct gf_env *env)
{
    if (!env)
        return;
    gf_procs_kill();
    hx_fake_http_free(env->http);
    hx_broker_free(env->broker);
    hx_redis_free(env->redis);
    hx_tmpdir_done(env->dir);
    free(env);
}

void gf_procs_kill(void)
{
    for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
        gf_proc_free(running[i]);
}

static struct gf_proc *proc_start(struct gf_env *env,
                                  const char *bin,
                                  const char *name,
                                  const char *const *args,
                                  const char *const *vars,
                                  const char *const *extra)
{
    static int seq;
    struct gf_proc *p = calloc(1, sizeof(*p));
    const char *argv[8], *envp[48];
    char metrics[64];
    int n = 0, a = 0;

    argv[a++] = hx_bin(bin);
    for (int i = 0; args && args[i] && a < 7; i++)
        argv[a++] = args[i];
    argv[a] = NULL;
    p->port = hx_free_port();
    snprintf(metrics, sizeof(metrics), "HERALD_METRICS_ADDR=127.0.0.1:%d",
             p->port);
    envp[n++] = metrics;
    envp[n++] = "HERALD_SHUTDOWN_TIMEOUT_MS=10000";
    /* The 2.0.2 mock cluster ignores a LeaveGroup when the next member
     * joins: a restart waits for the old member's session to time out. */
    envp[n++] = "HERALD_KAFKA_PROPERTIES=session.timeout.ms=6000;"
                "heartbeat.interval.ms=500";
    for (int i = 0; vars[i] && n < 30; i++)
        envp[n++] = vars[i];
    for (int i = 0; extra && extra[i] && n < 46; i++)
        envp[n++] = extra[i];
    envp[n] = NULL;
    snprintf(p->log, sizeof(p->log), "%s/%s-%d.log", env->dir, name, ++seq);
    p->proc = hx_proc_spawn(argv, envp, NULL, p->log);
    if (!p->proc) {
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++) {
        if (!running[i]) {
            running[i] = p;
            break;
        }
    }
    return p;
}

struct gf_proc *
gf_fanout_start(struct gf_env *env, const char *t, const char *const *extra)
{
    char vars[8][600], path[600], rules[1024], name[128];
    const char *const v[] = {vars[0], vars[1], vars[2], vars[3],
                             vars[4], vars[5], vars[6], NULL};
    const char *args[] = {"--config", path, NULL};
    FILE *f;

    snprintf(rules, sizeof(rules),
             "{\"rules\": [{\"name\": \"to-%s\", \"match\": {\"table\": "
             "[\"Fleet\"]}, \"emit\": [{\"webhook\": \"%s\"}]}],\n"
             " \"webhooks\": {\"%s\": {\"url\": \"%s/%s\", \"timeout_ms\": "
             "5000}}}\n",
             t, t, t, hx_fake_http_url(env->http), t);
    snprintf(path, sizeof(path), "%s/%s-rules.json", env->dir, t);
    f = fopen(path, "w");
    if (!f || fputs(rules, f) < 0 || fclose(f))
        return NULL;
    snprintf(vars[0], sizeof(vars[0]), "HERALD_KAFKA_BROKERS=%s",
             hx_broker_bootstraps(env->broker));
    snprintf(vars[1], sizeof(vars[1]), "HERALD_KAFKA_TOPICS=%s", t);
    snprintf(vars[2], sizeof(vars[2]), "HERALD_KAFKA_GROUP=g-%s-fanout", t);
    snprintf(vars[3], sizeof(vars[3]), "HERALD_REDIS_URL=%s",
             hx_redis_url(env->redis));
    snprintf(vars[4], sizeof(vars[4]), "HERALD_RETRY_TOPIC=%s.retry", t);
    snprintf(vars[5], sizeof(vars[5]), "HERALD_DLQ_TOPIC=%s.dlq", t);
    /* where the guard below redelivers (its prefix is "<t>.redeliver.") */
    snprintf(vars[6], sizeof(vars[6]),
             "HERALD_REDELIVER_TOPIC=%s.redeliver.fanout", t);
    snprintf(name, sizeof(name), "%s-fanout", t);
    return proc_start(env, "herald-fanout", name, args, v, extra);
}

struct gf_proc *
gf_guard_start(struct gf_env *env, const char *t, const char *const *extra)
{
    char vars[8][600], name[128];
    const char *const v[] = {vars[0], vars[1], vars[2], vars[3],
                             vars[4], vars[5], vars[6], NULL};

    snprintf(vars[0], sizeof(vars[0]), "HERALD_KAFKA_BROKERS=%s",
             hx_broker_bootstraps(env->broker));
    snprintf(vars[1], sizeof(vars[1]), "HERALD_KAFKA_TOPICS=%s.retry", t);
    snprintf(vars[2], sizeof(vars[2]), "HERALD_KAFKA_GROUP=g-%s-guard", t);
    snprintf(vars[3], sizeof(vars[3]), "HERALD_REDIS_URL=%s",
             hx_redis_url(env->redis));
    snprintf(vars[4], sizeof(vars[4]),
             "HERALD_GUARD_REDELIVER_PREFIX=%s.redeliver.", t);
    snprintf(vars[5], sizeof(vars[5]), "HERALD_DLQ_TOPIC=%s.dlq", t);
    /* the guard never writes retry records; a wrong one must not loop */
    snprintf(vars[6], sizeof(vars[6]), "HERALD_RETRY_TOPIC=%s.dlq", t);
    snprintf(name, sizeof(name), "%s-guard", t);
    return proc_start(env, "herald-guard", name, NULL, v, extra);
}

int gf_proc_stop(struct gf_proc *p)
{
    int status = -1;

    hx_proc_signal(p->proc, SIGTERM);
    if (hx_proc_wait(p->proc, 15000, &status))
        return -1;
    return status;
}

void gf_proc_kill(struct gf_proc *p)
{
    hx_proc_signal(p->proc, SIGKILL);
    (void)hx_proc_wait(p->proc, 5000, NULL);
}

void gf_proc_free(struct gf_proc *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++) {
        if (running[i] == p)
            running[i] = NULL;
    }
    hx_proc_free(p->proc);
    free(p);
}

double gf_metric(const struct gf_proc *p, const char *prefix)
{
    return hx_metric(p->port, prefix);
}

struct metric_arg {
    const struct gf_proc *p;
    const char *prefix;
    double want;
};

static bool metric_reached(void *arg)
{
    const struct metric_arg *a = arg;

    return gf_metric(a->p, a->prefix) >= a->want;
}

int gf_wait_metric(const struct gf_proc *p,
                   const char *prefix,
                   double want,
                   int timeout_ms)
{
    struct metric_arg a = {p, prefix, want};

    if (!hx_wait_until(metric_reached, &a, timeout_ms))
        return 0;
    fprintf(stderr, "%s reached %g, not %g (log %s)\n", prefix,
            gf_metric(p, prefix), want, p->log);
    return -1;
}

int gf_produce(struct gf_env *env, const char *t, int from, int n, int nkeys)
{
    rd_kafka_t *rk = hx_producer_new(hx_broker_bootstraps(env->broker));
    int rc = 0;

    if (!rk)
        return -1;
    for (int i = from; i < from + n && !rc; i++) {
        char key[32], id[96], value[1024];
        int len;

        snprintf(key, sizeof(key), "k%d", i % nkeys);
        snprintf(id, sizeof(id), "%s-%d", t, i);
        len = snprintf(
            value, sizeof(value),
            "{\"eventID\":\"%s\",\"eventName\":\"INSERT\","
            "\"eventSource\":\"aws:dynamodb\",\"eventSourceARN\":"
            "\"arn:aws:dynamodb:eu-west-1:123456789012:table/Fleet/stream/"
            "x\",\"dynamodb\":{\"Keys\":{\"id\":{\"S\":\"%s\"}},"
            "\"NewImage\":{\"id\":{\"S\":\"%s\"},\"key\":{\"S\":\"%s\"},"
            "\"seq\":{\"N\":\"%d\"}}}}",
            id, id, id, key, i);
        rc = hx_produce(rk, t, key, strlen(key), value, (size_t)len, NULL);
    }
    if (hx_producer_flush_free(rk, 30000))
        rc = -1;
    return rc;
}

json_t *gf_summary(struct gf_env *env, const char *t)
{
    char url[512], *body = NULL;
    long status = 0;
    json_t *out;

    snprintf(url, sizeof(url), "%s/_control/summary?path=/%s",
             hx_fake_http_url(env->http), t);
    if (hx_http_get(url, &status, &body) || status != 200) {
        free(body);
        return NULL;
    }
    out = json_loads(body, 0, NULL);
    free(body);
    return out;
}

int64_t gf_summary_int(const json_t *summary, const char *field)
{
    return (int64_t)json_integer_value(json_object_get(summary, field));
}

struct delivered_arg {
    struct gf_env *env;
    const char *t;
    int64_t n;
};

static bool delivered(void *arg)
{
    const struct delivered_arg *a = arg;
    json_t *s = gf_summary(a->env, a->t);
    bool done = s && gf_summary_int(s, "ok_keys") >= a->n;

    json_decref(s);
    return done;
}

int gf_wait_delivered(struct gf_env *env,
                      const char *t,
                      int64_t n,
                      int timeout_ms)
{
    struct delivered_arg a = {env, t, n};
    json_t *s;

    if (!hx_wait_until(delivered, &a, timeout_ms))
        return 0;
    s = gf_summary(env, t);
    fprintf(stderr, "/%s: %lld of %lld events delivered\n", t,
            (long long)gf_summary_int(s, "ok_keys"), (long long)n);
    json_decref(s);
    return -1;
}

int64_t gf_topic_count(struct gf_env *env, const char *topic)
{
    return hx_topic_count(hx_broker_bootstraps(env->broker), topic);
}

json_t *gf_requests(struct gf_env *env, const char *t)
{
    char path[256];
    json_t *reqs, *out = json_array(), *req;
    size_t i;

    snprintf(path, sizeof(path), "/%s", t);
    reqs = hx_fake_http_requests(env->http, path);
    json_array_foreach(reqs, i, req)
    {
        json_t *body = json_loads(
            json_string_value(json_object_get(req, "body")), 0, NULL);
        const json_t *img = json_object_get(body, "new");
        const char *event = json_string_value(json_object_get(body, "id"));
        const char *dash = event ? strrchr(event, '-') : NULL;

        json_array_append_new(
            out,
            json_pack("{s:O?,s:s?,s:I,s:s?,s:O?,s:O?}", "seq",
                      json_object_get(req, "seq"), "event", event, "n",
                      (json_int_t)(dash ? strtol(dash + 1, NULL, 10) : -1),
                      "key", json_string_value(json_object_get(img, "key")),
                      "status", json_object_get(req, "status"), "time_ms",
                      json_object_get(req, "time_ms")));
        json_decref(body);
    }
    json_decref(reqs);
    return out;
}

int gf_test_setup(void **state)
{
    struct gf_env *env = *state;

    hx_redis_flushall(env->redis);
    return hx_fake_http_reset(env->http);
}

int gf_test_teardown(void **state)
{
    (void)state;
    gf_procs_kill();
    return 0;
}

int gf_group_teardown(void **state)
{
    gf_env_free(*state);
    return 0;
}
