/* The settings every worker shares (SPEC section 2). */
#include "hr_worker_conf.h"

#include "hr_banned.h"

const struct hr_conf_spec hr_worker_common_conf[] = {
    HR_CONF_STR("HERALD_KAFKA_BROKERS",
                NULL,
                0,
                "Kafka bootstrap servers (required with the kafka source)"),
    HR_CONF_STR("HERALD_KAFKA_GROUP",
                NULL,
                0,
                "consumer group (default herald-<worker>)"),
    HR_CONF_STR("HERALD_KAFKA_TOPICS",
                NULL,
                0,
                "input topics, comma-separated (the redelivery topic "
                "herald.redeliver.<worker> is always added)"),
    HR_CONF_STR("HERALD_KAFKA_PROPERTIES",
                NULL,
                HR_CONF_SECRET,
                "extra librdkafka properties, key=value;key=value"),
    HR_CONF_MS("HERALD_KAFKA_STATS_INTERVAL_MS",
               "5000",
               0,
               "how often consumer lag is refreshed"),
    HR_CONF_STR("HERALD_REDIS_URL",
                "redis://127.0.0.1:6379/0",
                HR_CONF_FROM_FILE,
                "redis://[:password@]host:port[/db] or unix:///path.sock "
                "(it may hold a password: HERALD_REDIS_URL_FILE reads it from "
                "a mounted secret)"),
    HR_CONF_STR("HERALD_REDIS_PREFIX", "herald:", 0, "Redis key prefix"),
    HR_CONF_STR("HERALD_REDELIVER_TOPIC",
                NULL,
                0,
                "where herald-guard returns this worker's retried events, "
                "consumed besides HERALD_KAFKA_TOPICS (default "
                "herald.redeliver.<worker>; herald-guard writes to "
                "HERALD_GUARD_REDELIVER_PREFIX + <worker>)"),
    HR_CONF_ADDR("HERALD_METRICS_ADDR",
                 "0.0.0.0:9400",
                 0,
                 "host:port for /metrics, /healthz, /readyz; off disables"),
    HR_CONF_ENUM("HERALD_LOG_LEVEL",
                 "info",
                 "debug|info|warn|error",
                 0,
                 "minimum log level"),
    HR_CONF_ENUM("HERALD_LOG_FORMAT", "json", "json|text", 0, "log format"),
    HR_CONF_INT("HERALD_IDEMPOTENCY_TTL",
                "604800",
                1,
                315360000,
                0,
                "seconds an event id or read marker is remembered"),
    HR_CONF_MS(
        "HERALD_SHUTDOWN_TIMEOUT_MS", "25000", 0, "drain budget after SIGTERM"),
    HR_CONF_STR("HERALD_INSTANCE_ID",
                NULL,
                0,
                "static group membership id (StatefulSet pods)"),
    HR_CONF_PATH(
        "HERALD_TLS_CA_FILE", NULL, 0, "extra CA bundle for outbound HTTPS"),
    HR_CONF_STR(
        "HERALD_RETRY_TOPIC", "herald.retry", 0, "where retryable failures go"),
    HR_CONF_STR("HERALD_DLQ_TOPIC", "herald.dlq", 0, "where dead letters go"),
    HR_CONF_INT("HERALD_BATCH_MAX",
                "4000",
                1,
                200000,
                0,
                "most events handled in one batch"),
    HR_CONF_INT("HERALD_BATCH_MAX_BYTES",
                "2097152",
                1,
                1073741824,
                0,
                "a batch takes no more events once their values add up to "
                "this many bytes"),
    HR_CONF_INT("HERALD_BATCH_WAIT_MS",
                "50",
                0,
                5000,
                0,
                "how long a batch may wait to fill"),
    HR_CONF_END,
};
