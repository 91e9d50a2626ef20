/*
 * Operational HTTP endpoints on libmicrohttpd (its own thread):
 *   GET /metrics  Prometheus text of the registry
 *   GET /healthz  200 "ok" while the worker loop is alive (it calls
 *                 hr_health_beat() at least every few seconds), else 503
 *   GET /readyz   200 "ready", or 503 with the reason set by
 *                 hr_health_set_ready()
 * Anything else is 404; methods other than GET/HEAD are 405.
 */
#ifndef HR_HTTPD_H
#define HR_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

struct hr_metrics;
struct hr_httpd;

/**
 * Mark the process ready (@reason NULL) or not ready (@reason says why,
 * copied, e.g. "redis unavailable: connection refused"). Thread-safe.
 * The process starts not ready with reason "starting".
 */
void hr_health_set_ready(const char *reason);

/** Whether the process is ready; if not and @reason is given, copy the
 *  reason into it. Thread-safe. */
bool hr_health_is_ready(char *reason, size_t reason_size);

/** Record that the worker loop is alive. Thread-safe, cheap. */
void hr_health_beat(void);

/** Liveness: the loop beat within the last @max_age_ms milliseconds. */
bool hr_health_is_alive(long max_age_ms);

/**
 * Start serving on @addr ("host:port"; port 0 picks a free port). The
 * registry is borrowed and must outlive the server.
 * Returns NULL and fills @errstr on failure.
 */
struct hr_httpd *hr_httpd_start(const char *addr,
                                struct hr_metrics *reg,
                                char *errstr,
                                size_t errstr_size);

/** The port actually bound (useful with port 0). */
int hr_httpd_port(const struct hr_httpd *httpd);

/** Stop the server and free it. NULL is a no-op. */
void hr_httpd_stop(struct hr_httpd *httpd);

#endif
