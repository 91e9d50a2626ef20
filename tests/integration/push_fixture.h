/*
 * The world of herald-push's integration tests: a real redis-server,
 * herald-devbroker, and tests/node/fake_push.js (APNs, FCM with its token
 * endpoint, Web Push) over HTTP/2 and TLS with a CA made at test time;
 * an APNs key (.p8), an FCM service account and a VAPID key generated at
 * test time too, their public halves configured into the fake.
 *
 * Same conventions as harness.h: main thread only, every wait has a
 * timeout, failures print why.
 */
#ifndef PUSH_FIXTURE_H
#define PUSH_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#define PF_TEAM    "TEAM123456"
#define PF_KID     "KEY1234567"
#define PF_TOPIC   "com.example.chat"
#define PF_PROJECT "herald-test"

struct pf_env {
    struct hx_redis *redis;
    struct hx_broker *broker;
    struct hx_fake_http *fake; /* fake_push.js */
    char *dir;
    char *ca_file;
    char apns_key[512], fcm_sa[512], vapid_key[512];
    rd_kafka_t *producer; /* pf_send*(), made by the first call */
};

struct pf_worker {
    struct hx_proc *proc;
    int port;
    char log[512];
};

/**
 * Start everything; @topics for the broker. Exits the process with
 * HX_SKIP when redis-server or node is missing. NULL on failure.
 */
struct pf_env *pf_env_start(const char *topics);

void pf_env_free(struct pf_env *env);

/** POST /_control/reset and the providers' config again (the fake forgets
 *  scripts and records). Returns 0 or -1. */
int pf_fake_reset(struct pf_env *env);

/** Script the fake: @provider "apns"|"fcm"|"webpush"|"token", @token, and
 *  @answers a JSON array text. Returns 0 or -1. */
int pf_script(struct pf_env *env,
              const char *provider,
              const char *token,
              const char *answers);

/** A Web Push subscription from the fake (its JSON text, malloc'd). */
char *pf_subscribe(struct pf_env *env);

/**
 * Start herald-push reading @topic (and @topic.devices), its retries to
 * @topic.retry, dead letters to @topic.dlq, device.invalidated to
 * @topic.devices, with the three providers pointed at the fake; @extra
 * "K=V" settings override (may be NULL).
 */
struct pf_worker *pf_worker_start(struct pf_env *env,
                                  const char *topic,
                                  const char *const *extra);

/** SIGTERM and wait (15 s): the exit status, or -1. */
int pf_worker_stop(struct pf_worker *w);

void pf_worker_free(struct pf_worker *w);

/** Produce a CloudEvent (@type, @id, @data JSON text) keyed by @key. */
int pf_send(struct pf_env *env,
            const char *topic,
            const char *key,
            const char *type,
            const char *id,
            const char *data);

/** pf_send() with a CloudEvent "time" attribute (@time RFC 3339). */
int pf_send_at(struct pf_env *env,
               const char *topic,
               const char *key,
               const char *type,
               const char *id,
               const char *time,
               const char *data);

/** Register @token (@platform) for @user on @topic.devices. */
int pf_register(struct pf_env *env,
                const char *topic,
                const char *user,
                const char *token,
                const char *platform);

/** The fake's recorded requests for @provider (NULL: all), new ref. */
json_t *pf_requests(struct pf_env *env, const char *provider);

/** Every record of @topic as {"key", "event" (parsed value), "headers"
 *  {name: value}} (new reference). */
json_t *pf_collect(struct pf_env *env, const char *topic);

/** Wait until the worker's herald_events_processed_total reaches @n. */
int pf_wait_processed(const struct pf_worker *w, double n, int timeout_ms);

/** Wait until the sum of @w's metric series starting with @prefix reaches
 *  @n; 0, or -1 on timeout. */
int pf_wait_metric(const struct pf_worker *w,
                   const char *prefix,
                   double n,
                   int timeout_ms);

#endif
