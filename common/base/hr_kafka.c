#include "hr_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_banned.h"
#include "hr_conf.h"
#include "hr_log.h"

/* librdkafka syslog levels to ours. */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    enum hr_log_level lvl = level <= 3   ? HR_LOG_ERROR
                            : level <= 4 ? HR_LOG_WARN
                            : level <= 6 ? HR_LOG_INFO
                                         : HR_LOG_DEBUG;

    hr_log_write(lvl, "kafka client", HR_LOG_STR("client", rd_kafka_name(rk)),
                 HR_LOG_STR("facility", fac), HR_LOG_STR("err", buf),
                 HR_LOG_END);
}

/* Apply "k=v;k=v" to @conf; @on_error is called for each bad entry. */
static int apply_properties(rd_kafka_conf_t *conf,
                            const char *props,
                            char *errstr,
                            size_t errstr_size,
                            struct hr_conf *report)
{
    char *copy, *entry, *save = NULL;
    int bad = 0;

    if (!props || !*props)
        return 0;
    copy = strdup(props);
    for (entry = strtok_r(copy, ";", &save); entry;
         entry = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(entry, '=');
        char why[256];

        while (*entry == ' ')
            entry++;
        if (!*entry)
            continue;
        /* The values may be secrets (sasl.password): messages name the
         * property only, never its value. */
        if (!eq) {
            snprintf(why, sizeof(why), "entry %d is not key=value", bad + 1);
        } else {
            char ignored[256];

            *eq = '\0';
            switch (rd_kafka_conf_set(conf, entry, eq + 1, ignored,
                                      sizeof(ignored))) {
            case RD_KAFKA_CONF_OK:
                continue;
            case RD_KAFKA_CONF_UNKNOWN:
                snprintf(why, sizeof(why), "unknown property '%.64s'", entry);
                break;
            default:
                snprintf(why, sizeof(why), "invalid value for '%.64s'", entry);
                break;
            }
        }
        bad++;
        if (report)
            hr_conf_add_error(report, "HERALD_KAFKA_PROPERTIES: %s", why);
        else if (bad == 1)
            snprintf(errstr, errstr_size, "HERALD_KAFKA_PROPERTIES: %s", why);
    }
    free(copy);
    return bad ? -1 : 0;
}

rd_kafka_conf_t *hr_kafka_conf_new(const struct hr_conf *cfg,
                                   const char *const *extra,
                                   char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *brokers = hr_conf_str(cfg, "HERALD_KAFKA_BROKERS");

    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (brokers && rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                                     errstr_size) != RD_KAFKA_CONF_OK)
        goto out_destroy;
    for (; extra && extra[0]; extra += 2) {
        if (rd_kafka_conf_set(conf, extra[0], extra[1], errstr, errstr_size) !=
            RD_KAFKA_CONF_OK)
            goto out_destroy;
    }
    if (apply_properties(conf, hr_conf_str(cfg, "HERALD_KAFKA_PROPERTIES"),
                         errstr, errstr_size, NULL))
        goto out_destroy;
    return conf;
out_destroy:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

void hr_kafka_validate(struct hr_conf *cfg)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];

    (void)apply_properties(conf, hr_conf_str(cfg, "HERALD_KAFKA_PROPERTIES"),
                           errstr, sizeof(errstr), cfg);
    rd_kafka_conf_destroy(conf);
}
