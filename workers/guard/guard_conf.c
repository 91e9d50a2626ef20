/* herald-guard's settings (SPEC section 9, Guard). */
#include <string.h>

#include "guard.h"
#include "hr_circuit.h"
#include "hr_conf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/*
 * The runtime registers one table per worker, so the circuit and budget
 * settings of hr_circuit_conf_specs() are repeated here with the same
 * names, types, defaults and bounds (a unit test checks they stay equal).
 */
const struct hr_conf_spec guard_conf[] = {
    HR_CONF_INT("HERALD_GUARD_MAX_ATTEMPTS",
                "8",
                1,
                1000,
                0,
                "attempts (the first included) before a record is "
                "dead-lettered with reason max_attempts"),
    HR_CONF_INT("HERALD_GUARD_MAX_AGE_SECONDS",
                "86400",
                1,
                31536000,
                0,
                "age since the first failure after which a record is "
                "dead-lettered with reason max_age"),
    HR_CONF_MS(
        "HERALD_GUARD_BASE_DELAY_MS",
        "1000",
        0,
        "backoff base: attempt n waits random(0, min(max, base*2^(n-1)))"),
    HR_CONF_MS("HERALD_GUARD_MAX_DELAY_MS", "600000", 0, "backoff cap"),
    HR_CONF_INT("HERALD_GUARD_MAX_SCHEDULED",
                "1000000",
                1,
                100000000,
                0,
                "items the schedule holds; when full, herald.retry is not "
                "consumed until due items leave"),
    HR_CONF_INT("HERALD_GUARD_TICK_MAX",
                "5000",
                1,
                100000,
                0,
                "due items taken from the schedule per slice of a tick"),
    HR_CONF_STR("HERALD_GUARD_REDELIVER_PREFIX",
                "herald.redeliver.",
                0,
                "redeliveries go to this prefix followed by the "
                "herald-worker header"),
    HR_CONF_DOUBLE("HERALD_GUARD_CIRCUIT_FAILURE_RATIO",
                   "0.5",
                   0,
                   1,
                   0,
                   "failure ratio in the window that opens a circuit"),
    HR_CONF_INT("HERALD_GUARD_CIRCUIT_MIN_CALLS",
                "20",
                1,
                1000000,
                0,
                "calls in the window before a circuit may open"),
    HR_CONF_MS("HERALD_GUARD_CIRCUIT_OPEN_MS",
               "30000",
               0,
               "time an open circuit waits before admitting probes"),
    HR_CONF_DOUBLE("HERALD_GUARD_RETRY_BUDGET",
                   "0.2",
                   0,
                   1000,
                   0,
                   "retries per successful call of a destination"),
    HR_CONF_DOUBLE("HERALD_GUARD_RETRY_FLOOR_PER_S",
                   "10",
                   0,
                   1000000,
                   0,
                   "retries per second always allowed per destination"),
    HR_CONF_END,
};

void guard_validate(struct hr_conf *cfg)
{
    struct hr_circuit_conf cc;
    char errstr[256];
    const char *prefix = hr_conf_str(cfg, "HERALD_GUARD_REDELIVER_PREFIX");
    const char *source = hr_conf_str(cfg, "HERALD_SOURCE");

    /* Retry records exist only on Kafka: an SQS worker's retries are
     * paced by its queue's visibility timeout instead. */
    if (source && strcmp(source, "kafka"))
        hr_conf_add_error(cfg,
                          "HERALD_SOURCE: herald-guard reads %s on "
                          "Kafka; '%s' is not supported (an SQS "
                          "worker's retries are paced by its queue)",
                          "herald.retry", source);
    if (hr_conf_int(cfg, "HERALD_GUARD_BASE_DELAY_MS") >
        hr_conf_int(cfg, "HERALD_GUARD_MAX_DELAY_MS"))
        hr_conf_add_error(cfg, "HERALD_GUARD_BASE_DELAY_MS: larger than "
                               "HERALD_GUARD_MAX_DELAY_MS");
    if (!prefix || !*prefix)
        hr_conf_add_error(cfg, "HERALD_GUARD_REDELIVER_PREFIX: empty");
    hr_circuit_conf_load(&cc, cfg);
    if (hr_circuit_conf_validate(&cc, errstr, sizeof(errstr)))
        hr_conf_add_error(cfg, "circuit settings: %s", errstr);
}

void guard_settings_load(struct guard_settings *s, const struct hr_conf *cfg)
{
    memset(s, 0, sizeof(*s));
    s->max_attempts = hr_conf_int(cfg, "HERALD_GUARD_MAX_ATTEMPTS");
    s->max_age_ms = hr_conf_int(cfg, "HERALD_GUARD_MAX_AGE_SECONDS") * 1000;
    s->base_delay_ms = hr_conf_int(cfg, "HERALD_GUARD_BASE_DELAY_MS");
    s->max_delay_ms = hr_conf_int(cfg, "HERALD_GUARD_MAX_DELAY_MS");
    s->max_scheduled = hr_conf_int(cfg, "HERALD_GUARD_MAX_SCHEDULED");
    s->tick_max = hr_conf_int(cfg, "HERALD_GUARD_TICK_MAX");
    s->redeliver_prefix = hr_conf_str(cfg, "HERALD_GUARD_REDELIVER_PREFIX");
    s->dlq_topic = hr_conf_str(cfg, "HERALD_DLQ_TOPIC");
}
