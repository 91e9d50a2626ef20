#include "unread_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

struct chat_scenario *uf_scenario(size_t messages, uint64_t seed)
{
    struct chat_opts o = {
        .seed = seed,
        .users = 300,
        .convs = 400,
        .members = 3,
        .messages = messages,
        .read_ratio = 0.35,
        .dup_ratio = 0.10,
        .shuffle_window = 64,
        .start_ms = 1795305600000LL,
    };

    return chat_generate(&o);
}

struct uf_env *uf_env_start(const char *const *redis_args, const char *topics)
{
    struct uf_env *env = calloc(1, sizeof(*env));

    env->redis = hx_redis_start(redis_args);
    if (!env->redis) {
        free(env);
        return NULL;
    }
    env->broker = hx_broker_start(topics, 8);
    if (!env->broker) {
        hx_redis_free(env->redis);
        free(env);
        return NULL;
    }
    env->dir = hx_tmpdir_new("unread");
    return env;
}

void uf_env_free(struct uf_env *env)
{
    if (!env)
        return;
    hx_broker_free(env->broker);
    hx_redis_free(env->redis);
    hx_tmpdir_done(env->dir);
    free(env);
}

struct uf_worker *uf_worker_start(struct uf_env *env,
                                  const char *topic,
                                  const char *group,
                                  const char *const *extra_env)
{
    static int seq;
    struct uf_worker *w = calloc(1, sizeof(*w));
    char vars[10][600];
    const char *envp[40];
    const char *argv[] = {hx_bin("herald-unread"), NULL};
    int n = 0;

    w->port = hx_free_port();
    snprintf(vars[0], sizeof(vars[0]), "HERALD_KAFKA_BROKERS=%s",
             hx_broker_bootstraps(env->broker));
    snprintf(vars[1], sizeof(vars[1]), "HERALD_KAFKA_TOPICS=%s", topic);
    snprintf(vars[2], sizeof(vars[2]), "HERALD_KAFKA_GROUP=%s", group);
    snprintf(vars[3], sizeof(vars[3]), "HERALD_REDIS_URL=%s",
             hx_redis_url(env->redis));
    snprintf(vars[4], sizeof(vars[4]), "HERALD_METRICS_ADDR=127.0.0.1:%d",
             w->port);
    snprintf(vars[5], sizeof(vars[5]), "HERALD_UNREAD_CHANGED_TOPIC=%s.unread",
             topic);
    snprintf(vars[6], sizeof(vars[6]), "HERALD_RETRY_TOPIC=%s.retry", topic);
    snprintf(vars[7], sizeof(vars[7]), "HERALD_DLQ_TOPIC=%s.dlq", topic);
    for (int i = 0; i < 8; i++)
        envp[n++] = vars[i];
    envp[n++] = "HERALD_KAFKA_STATS_INTERVAL_MS=1000";
    envp[n++] = "HERALD_SHUTDOWN_TIMEOUT_MS=10000";
    /* The 2.0.2 mock cluster ignores a LeaveGroup when the next member
     * joins: a restart waits for the old member's session to time out. */
    envp[n++] = "HERALD_KAFKA_PROPERTIES=session.timeout.ms=6000;"
                "heartbeat.interval.ms=500";
    for (int i = 0; extra_env && extra_env[i] && n < 38; i++)
        envp[n++] = extra_env[i];
    envp[n] = NULL;
    snprintf(w->log, sizeof(w->log), "%s/%s-%d.log", env->dir, group, ++seq);
    w->proc = hx_proc_spawn(argv, envp, NULL, w->log);
    if (!w->proc) {
        free(w);
        return NULL;
    }
    return w;
}

void uf_worker_free(struct uf_worker *w)
{
    if (!w)
        return;
    hx_proc_free(w->proc);
    free(w);
}

char *uf_metrics_text(const struct uf_worker *w)
{
    return hx_metrics_get(w->port);
}

double uf_metric(const struct uf_worker *w, const char *prefix)
{
    return hx_metric(w->port, prefix);
}

long uf_readyz(const struct uf_worker *w, char *body, size_t size)
{
    char url[64], *text = NULL;
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", w->port);
    if (hx_http_get(url, &status, &text))
        status = 0;
    if (body && size)
        snprintf(body, size, "%s", text ? text : "");
    free(text);
    return status;
}

void uf_produce(struct uf_env *env,
                const struct chat_scenario *s,
                const char *topic,
                size_t first,
                size_t n)
{
    rd_kafka_t *rk = hx_producer_new(hx_broker_bootstraps(env->broker));

    for (size_t i = first; i < first + n && i < chat_count(s); i++) {
        const struct chat_event *ev = chat_event_at(s, i);

        hx_produce(rk, topic, ev->key, strlen(ev->key), ev->value, ev->len,
                   NULL);
    }
    if (hx_producer_flush_free(rk, 60000))
        fprintf(stderr, "uf_produce: some events were not delivered\n");
}

struct exact_arg {
    struct uf_env *env;
    const struct chat_scenario *s;
    int bad;
    char err[512];
};

static bool is_exact(void *p)
{
    struct exact_arg *a = p;
    redisContext *c = hx_redis_connect(a->env->redis);

    if (!c)
        return false;
    a->bad = chat_verify_redis(a->s, c, "herald:", 999, a->err, sizeof(a->err));
    redisFree(c);
    return a->bad == 0;
}

int uf_wait_exact(struct uf_env *env,
                  const struct chat_scenario *s,
                  int timeout_ms)
{
    struct exact_arg a = {env, s, -1, ""};

    if (hx_wait_until(is_exact, &a, timeout_ms))
        fprintf(stderr, "not exact: %d mismatches: %s\n", a.bad, a.err);
    return a.bad;
}

struct processed_arg {
    const struct uf_worker *w;
    double n;
};

static bool has_processed(void *p)
{
    struct processed_arg *a = p;

    return uf_metric(a->w, "herald_events_processed_total{") >= a->n;
}

int uf_wait_processed(const struct uf_worker *w, double n, int timeout_ms)
{
    struct processed_arg a = {w, n};

    return hx_wait_until(has_processed, &a, timeout_ms);
}

static bool is_ready(void *p)
{
    return uf_readyz(p, NULL, 0) == 200;
}

int uf_wait_ready(const struct uf_worker *w, int timeout_ms)
{
    return hx_wait_until(is_ready, (void *)(uintptr_t)w, timeout_ms);
}
