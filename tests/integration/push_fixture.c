#include "push_fixture.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hx_fake_http.h"

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* The providers' public halves, as the fake wants them. */
static int configure(struct pf_env *env)
{
    char *apns_pub = hx_file_read(env->apns_key, NULL);
    json_t *sa = json_load_file(env->fcm_sa, 0, NULL);
    json_t *cfg = json_pack(
        "{s:{s:s, s:s, s:s, s:s, s:i}, s:{s:s, s:s, s:s}}", "apns",
        "public_key_pem", apns_pub ? apns_pub : "", "team_id", PF_TEAM,
        "key_id", PF_KID, "topic", PF_TOPIC, "token_update_min_s", 0, "fcm",
        "public_key_pem", json_string_value(json_object_get(sa, "private_key")),
        "client_email", json_string_value(json_object_get(sa, "client_email")),
        "project_id", PF_PROJECT);
    char *text = json_dumps(cfg, JSON_COMPACT);
    json_t *answer =
        text ? hx_fake_http_post(env->fake, "/_control/config", text) : NULL;
    int rc = answer ? 0 : -1;

    json_decref(answer);
    free(text);
    json_decref(cfg);
    json_decref(sa);
    free(apns_pub);
    return rc;
}

struct pf_env *pf_env_start(const char *topics)
{
    struct pf_env *env = calloc(1, sizeof(*env));
    char *cert = NULL, *key = NULL, *priv = NULL, *pub = NULL, *text;
    char path[512];
    struct hx_fake_http_opts opts = {0};
    json_t *sa;

    if (!hx_on_path("redis-server") || !hx_node_available()) {
        fprintf(stderr, "redis-server or node missing: skipped\n");
        exit(HX_SKIP);
    }
    env->dir = hx_tmpdir_new("push");
    if (!env->dir || hx_tls_make_pki(env->dir, &env->ca_file, &cert, &key))
        goto out_fail;
    opts.js = HX_SOURCE_DIR "/tests/node/fake_push.js";
    opts.tls_cert = cert;
    opts.tls_key = key;
    opts.ca_file = env->ca_file;
    env->fake = hx_fake_http_start(&opts);
    env->redis = hx_redis_start(NULL);
    env->broker = hx_broker_start(topics, 4);
    if (!env->fake || !env->redis || !env->broker)
        goto out_fail;
    /* APNs: a P-256 key in PKCS#8 PEM, as the .p8 file Apple gives */
    snprintf(env->apns_key, sizeof(env->apns_key), "%s/AuthKey.p8", env->dir);
    if (hx_keypair_pem("EC", &priv, NULL) || write_text(env->apns_key, priv))
        goto out_fail;
    free(priv);
    priv = NULL;
    /* FCM: a service account whose token_uri is the fake's */
    snprintf(env->fcm_sa, sizeof(env->fcm_sa), "%s/service-account.json",
             env->dir);
    if (hx_keypair_pem("RSA", &priv, &pub))
        goto out_fail;
    snprintf(path, sizeof(path), "%s/token", hx_fake_http_url(env->fake));
    sa = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
                   "project_id", PF_PROJECT, "private_key_id", "key-1",
                   "private_key", priv, "client_email",
                   "herald@herald-test.iam.gserviceaccount.com", "token_uri",
                   path);
    text = json_dumps(sa, JSON_INDENT(2));
    json_decref(sa);
    if (!text || write_text(env->fcm_sa, text)) {
        free(text);
        goto out_fail;
    }
    free(text);
    free(priv);
    free(pub);
    priv = pub = NULL;
    /* Web Push: the application server's VAPID key */
    snprintf(env->vapid_key, sizeof(env->vapid_key), "%s/vapid.pem", env->dir);
    if (hx_keypair_pem("EC", &priv, NULL) || write_text(env->vapid_key, priv))
        goto out_fail;
    free(priv);
    free(cert);
    free(key);
    if (configure(env)) {
        pf_env_free(env);
        return NULL;
    }
    return env;
out_fail:
    free(priv);
    free(pub);
    free(cert);
    free(key);
    pf_env_free(env);
    return NULL;
}

void pf_env_free(struct pf_env *env)
{
    if (!env)
        return;
    if (env->producer)
        hx_producer_flush_free(env->producer, 10000);
    hx_fake_http_free(env->fake);
    hx_broker_free(env->broker);
    hx_redis_free(env->redis);
    hx_tmpdir_done(env->dir);
    free(env->ca_file);
    free(env);
}

int pf_fake_reset(struct pf_env *env)
{
    json_t *a = hx_fake_http_post(env->fake, "/_control/reset", "{}");

    json_decref(a);
    return a ? configure(env) : -1;
}

int pf_script(struct pf_env *env,
              const char *provider,
              const char *token,
              const char *answers)
{
    json_t *body = json_pack("{s:s, s:s, s:o}", "provider", provider, "token",
                             token, "answers", json_loads(answers, 0, NULL));
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *a = hx_fake_http_post(env->fake, "/_control/script", text);

    free(text);
    json_decref(body);
    json_decref(a);
    return a ? 0 : -1;
}

char *pf_subscribe(struct pf_env *env)
{
    json_t *a =
        hx_fake_http_post(env->fake, "/_control/webpush/subscribe", "{}");
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;

    json_decref(a);
    return text;
}

struct pf_worker *
pf_worker_start(struct pf_env *env, const char *topic, const char *const *extra)
{
    static int seq;
    struct pf_worker *w = calloc(1, sizeof(*w));
    char vars[16][700];
    const char *envp[64];
    size_t n = 0, v = 0;

    /* the caller's settings first: the first of a name wins */
    for (size_t i = 0; extra && extra[i] && n < 24; i++)
        envp[n++] = extra[i];
#define VAR(...)                                         \
    do {                                                 \
        snprintf(vars[v], sizeof(vars[v]), __VA_ARGS__); \
        envp[n++] = vars[v++];                           \
    } while (0)
    /* the devices topic too, and SPEC's key prefix (tests read keys) */
    VAR("HERALD_KAFKA_TOPICS=%s,%s.devices", topic, topic);
    VAR("HERALD_PUSH_INVALIDATED_TOPIC=%s.devices", topic);
    VAR("HERALD_TLS_CA_FILE=%s", env->ca_file);
    VAR("HERALD_APNS_KEY_FILE=%s", env->apns_key);
    VAR("HERALD_APNS_ENDPOINT=%s", hx_fake_http_url(env->fake));
    VAR("HERALD_APNS_SANDBOX_ENDPOINT=%s", hx_fake_http_url(env->fake));
    VAR("HERALD_FCM_CREDENTIALS_FILE=%s", env->fcm_sa);
    VAR("HERALD_FCM_ENDPOINT=%s", hx_fake_http_url(env->fake));
    VAR("HERALD_WEBPUSH_VAPID_KEY_FILE=%s", env->vapid_key);
#undef VAR
    envp[n++] = "HERALD_REDIS_PREFIX=herald:";
    envp[n++] = "HERALD_APNS_KEY_ID=" PF_KID;
    envp[n++] = "HERALD_APNS_TEAM_ID=" PF_TEAM;
    envp[n++] = "HERALD_APNS_TOPIC=" PF_TOPIC;
    envp[n++] = "HERALD_WEBPUSH_SUBJECT=mailto:ops@example.com";
    envp[n++] = "HERALD_KAFKA_STATS_INTERVAL_MS=1000";
    envp[n] = NULL;
    snprintf(w->log, sizeof(w->log), "%s/push-%s-%d.log", env->dir, topic,
             ++seq);
    w->proc = hx_worker_spawn("push", env->broker, env->redis, topic, envp,
                              w->log, &w->port);
    if (!w->proc) {
        free(w);
        return NULL;
    }
    return w;
}

int pf_worker_stop(struct pf_worker *w)
{
    return hx_worker_stop(w->proc, 15000);
}

void pf_worker_free(struct pf_worker *w)
{
    if (!w)
        return;
    hx_proc_free(w->proc);
    free(w);
}

int pf_send(struct pf_env *env,
            const char *topic,
            const char *key,
            const char *type,
            const char *id,
            const char *data)
{
    return pf_send_at(env, topic, key, type, id, NULL, data);
}

int pf_send_at(struct pf_env *env,
               const char *topic,
               const char *key,
               const char *type,
               const char *id,
               const char *time,
               const char *data)
{
    char when[64] = "";
    size_t len = strlen(data) + strlen(id) + strlen(type) + 256;
    char *ev = malloc(len);
    int rc;

    /* One producer for every send: a producer per event (connect, then
     * flush) took long enough under sanitizers on a loaded machine for a
     * test's burst to outlast the windows it meant to fill. */
    if (!env->producer)
        env->producer = hx_producer_new(hx_broker_bootstraps(env->broker));
    if (!env->producer || !ev) {
        free(ev);
        return -1;
    }
    if (time)
        snprintf(when, sizeof(when), "\"time\":\"%s\",", time);
    snprintf(ev, len,
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/test\","
             "\"type\":\"%s\",%s\"data\":%s}",
             id, type, when, data);
    rc = hx_produce(env->producer, topic, key, strlen(key), ev, strlen(ev),
                    NULL);
    free(ev);
    if (hx_producer_flush(env->producer, 10000))
        rc = -1;
    return rc;
}

int pf_register(struct pf_env *env,
                const char *topic,
                const char *user,
                const char *token,
                const char *platform)
{
    static int seq;
    char devices[256], id[64];
    json_t *data = json_pack("{s:s, s:s, s:s}", "user_id", user, "token", token,
                             "platform", platform);
    char *text = json_dumps(data, JSON_COMPACT);
    int rc;

    snprintf(devices, sizeof(devices), "%s.devices", topic);
    snprintf(id, sizeof(id), "reg-%d", ++seq);
    rc = pf_send(env, devices, user, "device.registered", id, text);
    free(text);
    json_decref(data);
    return rc;
}

json_t *pf_requests(struct pf_env *env, const char *provider)
{
    char path[128];

    snprintf(path, sizeof(path), "/_control/requests%s%s",
             provider ? "?provider=" : "", provider ? provider : "");
    return hx_fake_http_get(env->fake, path);
}

struct metric_arg {
    const struct pf_worker *w;
    const char *prefix;
    double n;
};

static bool metric_reached(void *p)
{
    struct metric_arg *a = p;

    return hx_metric(a->w->port, a->prefix) >= a->n;
}

int pf_wait_metric(const struct pf_worker *w,
                   const char *prefix,
                   double n,
                   int timeout_ms)
{
    struct metric_arg a = {w, prefix, n};

    return hx_wait_until(metric_reached, &a, timeout_ms);
}

int pf_wait_processed(const struct pf_worker *w, double n, int timeout_ms)
{
    return pf_wait_metric(w, "herald_events_processed_total{", n, timeout_ms);
}

static int collect_cb(void *opaque, const rd_kafka_message_t *rkm)
{
    json_t *out = opaque, *hdrs = json_object();
    json_t *ev = json_loadb(rkm->payload, rkm->len, 0, NULL);
    rd_kafka_headers_t *h = NULL;
    const char *name;
    const void *val;
    size_t len;

    if (!rd_kafka_message_headers(rkm, &h)) {
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &len);
             i++)
            json_object_set_new(hdrs, name, json_stringn(val ? val : "", len));
    }
    json_array_append_new(out,
                          json_pack("{s:s%, s:o, s:o}", "key",
                                    rkm->key ? (const char *)rkm->key : "",
                                    rkm->key ? rkm->key_len : 0, "event",
                                    ev ? ev : json_null(), "headers", hdrs));
    return 0;
}

json_t *pf_collect(struct pf_env *env, const char *topic)
{
    json_t *out = json_array();

    if (hx_consume_all(hx_broker_bootstraps(env->broker), topic, 1500, 30000,
                       collect_cb, out) < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}
