/*
 * Shared fixture of the herald-unread integration tests: one redis-server,
 * one herald-devbroker, and helpers to run the worker binary against them
 * and to read its /metrics.
 */
#ifndef UNREAD_FIXTURE_H
#define UNREAD_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_model.h"
#include "harness.h"

struct uf_env {
    struct hx_redis *redis;
    struct hx_broker *broker;
    char *dir;
};

struct uf_worker {
    struct hx_proc *proc;
    int port;
    char log[512];
};

/** The chat scenario of the unread tests: 300 users, 400 conversations of
 *  3 members, @messages messages, receipts (0.35 per message), 10%
 *  duplicates, shuffled in windows of 64. Free with chat_free(). */
struct chat_scenario *uf_scenario(size_t messages, uint64_t seed);

/** Start redis (extra args, may be NULL) and the broker with @topics. */
struct uf_env *uf_env_start(const char *const *redis_args, const char *topics);
void uf_env_free(struct uf_env *env);

/**
 * Start herald-unread consuming @topic in group @group, its outputs on
 * "<topic>.unread", "<topic>.retry", "<topic>.dlq"; @extra_env (may be NULL)
 * adds or overrides variables. Logs go to <dir>/<group>-<n>.log.
 */
struct uf_worker *uf_worker_start(struct uf_env *env,
                                  const char *topic,
                                  const char *group,
                                  const char *const *extra_env);

/** SIGKILL if still running, and free. */
void uf_worker_free(struct uf_worker *w);

/** Sum of the values of every series whose line starts with @prefix
 *  (e.g. "herald_events_processed_total{"); -1 if /metrics is unreachable. */
double uf_metric(const struct uf_worker *w, const char *prefix);

/** The whole /metrics text (caller frees), or NULL. */
char *uf_metrics_text(const struct uf_worker *w);

/** HTTP status of /readyz, with the body copied into @body. */
long uf_readyz(const struct uf_worker *w, char *body, size_t size);

/** Produce every event of @s (from @first, @n of them) to @topic. */
void uf_produce(struct uf_env *env,
                const struct chat_scenario *s,
                const char *topic,
                size_t first,
                size_t n);

/** Wait until Redis equals the model (polls); returns mismatches left. */
int uf_wait_exact(struct uf_env *env,
                  const struct chat_scenario *s,
                  int timeout_ms);

/** Wait until the worker processed at least @n events (per its metrics). */
int uf_wait_processed(const struct uf_worker *w, double n, int timeout_ms);

/** Wait until /readyz answers 200. */
int uf_wait_ready(const struct uf_worker *w, int timeout_ms);

#endif
