/*
 * Kafka clients shared by the source and the producer: configuration from
 * the environment (SPEC section 2) and routing of librdkafka's logs.
 */
#ifndef HR_KAFKA_H
#define HR_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

struct hr_conf;

/**
 * A new rd_kafka_conf_t with bootstrap.servers from HERALD_KAFKA_BROKERS,
 * the log callback routed to hr_log, and then every HERALD_KAFKA_PROPERTIES
 * entry ("k=v;k=v") applied on top (so operators can override anything).
 * @extra is a NULL-terminated list of key, value pairs applied before the
 * user's properties (the client's own defaults). Returns NULL with @errstr
 * naming the offending property on failure. The caller owns the result.
 */
rd_kafka_conf_t *hr_kafka_conf_new(const struct hr_conf *cfg,
                                   const char *const *extra,
                                   char *errstr,
                                   size_t errstr_size);

/**
 * Validate HERALD_KAFKA_PROPERTIES without connecting: every entry must be
 * "key=value" and accepted by rd_kafka_conf_set(). Reports each problem
 * with hr_conf_add_error().
 */
void hr_kafka_validate(struct hr_conf *cfg);

#endif
