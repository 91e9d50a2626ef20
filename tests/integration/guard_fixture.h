/*
 * The fleet of the guard's end-to-end tests (test_guard_fleet.c,
 * test_guard_order.c): herald-fanout calling one webhook of the fake HTTP
 * server and herald-guard scheduling its retries, on a real redis-server
 * and herald-devbroker. Each test uses its own topic T: fanout consumes T
 * and T.redeliver.fanout and writes retry records to T.retry and dead
 * letters to T.dlq; the guard consumes T.retry and redelivers to
 * T.redeliver.<worker>. The webhook is named T (destination
 * "webhook:T") and posts the change document to <server>/T.
 *
 * Same conventions as harness.h: main thread only, every wait has a
 * timeout, failures print why.
 */
#ifndef GUARD_FIXTURE_H
#define GUARD_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct gf_env {
    struct hx_redis *redis;
    struct hx_broker *broker;
    struct hx_fake_http *http;
    char *dir;
};

/** A running worker binary. */
struct gf_proc {
    struct hx_proc *proc;
    int port;
    char log[512];
};

/**
 * Start redis-server (with @redis_args, may be NULL), herald-devbroker with
 * @topics and the fake HTTP server; exits the test process with HX_SKIP
 * when redis-server or node is missing. NULL on failure.
 */
struct gf_env *gf_env_start(const char *const *redis_args, const char *topics);

void gf_env_free(struct gf_env *env);

/** Kill every worker still running (test teardown). */
void gf_procs_kill(void);

/* cmocka fixtures for a group whose setup stores its gf_env in *state:
 * each test starts with an empty Redis and a reset fake server, and ends
 * with every worker killed; the group ends by freeing the env. */
int gf_test_setup(void **state);
int gf_test_teardown(void **state);
int gf_group_teardown(void **state);

/**
 * Start herald-fanout on topic @t with the webhook @t (rules written to the
 * test directory), @env extra "K=V" settings (may be NULL).
 */
struct gf_proc *
gf_fanout_start(struct gf_env *env, const char *t, const char *const *extra);

/** Start herald-guard for topic @t's retries. */
struct gf_proc *
gf_guard_start(struct gf_env *env, const char *t, const char *const *extra);

/** SIGTERM and wait (15 s): the exit status, or -1. */
int gf_proc_stop(struct gf_proc *p);

/** SIGKILL and reap. */
void gf_proc_kill(struct gf_proc *p);

void gf_proc_free(struct gf_proc *p);

/** Sum of the /metrics series of @p starting with @prefix (-1: none). */
double gf_metric(const struct gf_proc *p, const char *prefix);

/** Wait until gf_metric(@p, @prefix) >= @want. Returns 0 or -1. */
int gf_wait_metric(const struct gf_proc *p,
                   const char *prefix,
                   double want,
                   int timeout_ms);

/**
 * Produce @n DynamoDB INSERTs of table "Fleet" to topic @t: event i has
 * eventID "<t>-<i>", key "k<i % nkeys>" and attributes id, key and seq
 * (= i). Returns 0 or -1.
 */
int gf_produce(struct gf_env *env, const char *t, int from, int n, int nkeys);

/** The fake server's /_control/summary for path "/<t>" (new reference). */
json_t *gf_summary(struct gf_env *env, const char *t);

/** An integer field of a summary (0 when absent). */
int64_t gf_summary_int(const json_t *summary, const char *field);

/** Wait until the server answered 2xx to @n distinct events of @t. */
int gf_wait_delivered(struct gf_env *env,
                      const char *t,
                      int64_t n,
                      int timeout_ms);

/** Messages on @topic now. */
int64_t gf_topic_count(struct gf_env *env, const char *topic);

/**
 * The requests the server received for "/<t>" (new reference): an array
 * of {"seq", "event": "<t>-<i>", "n": i, "key", "status", "time_ms"}, in
 * arrival order.
 */
json_t *gf_requests(struct gf_env *env, const char *t);

#endif
