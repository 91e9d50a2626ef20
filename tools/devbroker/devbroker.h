/*
 * herald-devbroker internals: a local Kafka endpoint on librdkafka's mock
 * cluster, for development and tests only (SPEC.md section 1).
 *
 * main.c parses flags, owns the cluster and the signal loop;
 * devbroker_topics.c knows the default topics and --topics;
 * devbroker_watch.c warns when the mock cluster evicts data;
 * devbroker_control.c serves the --control commands read from stdin.
 */
#ifndef DEVBROKER_H
#define DEVBROKER_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "hr_compat.h"

/** One topic to create: name (owned) and partition count. */
struct devbroker_topic {
    char *name;
    int partitions;
};

/** A growable list of topics, in creation order, names unique. */
struct devbroker_topics {
    struct devbroker_topic *v;
    size_t cnt;
    size_t cap;
};

/** Partition count of the default topics unless --partitions says. */
#define DEVBROKER_DEFAULT_PARTITIONS 32

/** Upper bounds for flags and control commands. */
#define DEVBROKER_MAX_PARTITIONS 10000
#define DEVBROKER_MAX_BROKERS    32

/**
 * Fill @topics (zeroed by the caller) with the fixed default topics of
 * SPEC.md section 3, each with @partitions partitions. Returns 0, or -1 on
 * allocation failure (the list may then hold some entries: release it).
 */
int devbroker_topics_add_defaults(struct devbroker_topics *topics,
                                  int partitions) HR_MUST_CHECK;

/**
 * Merge a --topics value ("name:partitions,name,...") into @topics. A name
 * without ":partitions" gets @default_partitions; a name already listed
 * gets the given partition count instead of its old one. Returns 0, or -1
 * with a reason in @errstr (nothing is changed for the bad entry).
 */
int devbroker_topics_parse(struct devbroker_topics *topics,
                           const char *spec,
                           int default_partitions,
                           char *errstr,
                           size_t errstr_size) HR_MUST_CHECK;

/**
 * Create every topic of @topics on @mcluster with @replication replicas.
 * Returns 0, or -1 with the first failure in @errstr.
 */
int devbroker_topics_create(rd_kafka_mock_cluster_t *mcluster,
                            const struct devbroker_topics *topics,
                            int replication,
                            char *errstr,
                            size_t errstr_size) HR_MUST_CHECK;

/** Free the names and the array; the struct may be reused after. */
void devbroker_topics_release(struct devbroker_topics *topics);


struct devbroker_watch;

/**
 * Start the eviction watch: a thread with its own client that reads the
 * low watermark of every partition of every topic on the cluster each
 * @interval_ms, and logs a warning "broker evicted messages" whenever one
 * rises (the mock cluster drops old data on append, see ARCHITECTURE.md).
 * @bootstraps is copied. Returns the watch (free with
 * devbroker_watch_stop()), or NULL with a reason in @errstr.
 */
struct devbroker_watch *devbroker_watch_start(const char *bootstraps,
                                              int interval_ms,
                                              char *errstr,
                                              size_t errstr_size);

/**
 * Skip scans for the next @ms milliseconds (0: resume now). The watch's own
 * Metadata, ListOffsets and ApiVersions requests would otherwise consume
 * errors injected for the clients under test: the control commands pause it
 * when they push such errors. A later scan still reports every eviction,
 * since it compares with the last low watermark seen. NULL is a no-op.
 */
void devbroker_watch_pause(struct devbroker_watch *watch, int ms);

/** How long "errors" on an API the watch uses pauses it. */
#define DEVBROKER_WATCH_PAUSE_MS 10000

/** Stop the thread, destroy the client and free @watch. NULL is a no-op. */
void devbroker_watch_stop(struct devbroker_watch *watch);


/** What a control command acts on. */
struct devbroker_control {
    rd_kafka_mock_cluster_t *mcluster;
    int brokers;                   /* broker ids are 1..brokers */
    int replication;               /* for "topic" */
    struct devbroker_watch *watch; /* paused around injected errors */
};

/**
 * Execute one control line (modified in place while tokenising):
 *   errors <ApiName|number> <count> <ErrName|number>
 *   broker-down <id> | broker-up <id>
 *   topic <name> <partitions>
 *   clear-errors [<ApiName|number>]
 *   ping
 * Returns 0, or -1 with a reason in @errstr. Call from one thread only.
 */
int devbroker_control_exec(const struct devbroker_control *ctl,
                           char *line,
                           char *errstr,
                           size_t errstr_size) HR_MUST_CHECK;

/** Route a librdkafka log line into hr_log (rd_kafka_conf_set_log_cb). */
void devbroker_log_cb(const rd_kafka_t *rk,
                      int level,
                      const char *fac,
                      const char *buf);

#endif
