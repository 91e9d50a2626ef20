/* Runtime internals shared by the hr_worker*.c files. Not for workers. */
#ifndef HR_WORKER_PRIV_H
#define HR_WORKER_PRIV_H

#include <stdbool.h>

#include <librdkafka/rdkafka.h>

#include "hr_worker.h"

struct hr_httpd;
struct hr_metric;
struct hr_producer;
struct hr_source;

struct hr_worker {
    const struct hr_worker_def *def;
    struct hr_conf *cfg;
    struct hr_metrics *metrics;
    struct hr_httpd *httpd;
    struct hr_redis *redis;
    struct hr_source *source;
    struct hr_producer *producer;
    void *state;
    char topics[1024];
    char pause_reason[256];
    bool produce_failed;
    uint64_t events_done; /* events with a durable outcome, this run */

    /* SPEC section 6 metrics */
    struct hr_metric *consumed;
    struct hr_metric *processed;
    struct hr_metric *latency;
    struct hr_metric *redis_errors;
    struct hr_metric *paused;
    struct hr_metric *batches;
    struct hr_metric *build_info;
};

/**
 * Write the retry or dead-letter record of every RETRY/DEAD item of the
 * batch (original key, value and headers plus the SPEC section 7 headers).
 * Returns 0, or -1 if a record could not be queued.
 */
int hr_worker_send_failures(struct hr_worker *w, struct hr_batch *batch);

#endif
