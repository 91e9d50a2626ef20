/*
 * Webhook targets (SPEC section 8): configuration, service auth (JWT
 * signed with HS256/RS256/ES256, a static bearer token, or none), and the
 * concurrent calls of one batch over common/hr_http.
 */
#ifndef FANOUT_WEBHOOK_H
#define FANOUT_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct hr_conf;
struct hr_metrics;
struct fanout_webhooks;

/** One call of a batch. The caller fills the request part; perform() fills
 *  the result part. */
struct fanout_call {
    int webhook; /* index in the config's "webhooks" */
    size_t item; /* the batch item it belongs to */
    char id[37]; /* derived id: sent as Idempotency-Key */
    char *body;  /* JSON, malloc'd, freed by the caller */
    size_t body_len;
    /* 0: may be made; else the enum hr_circuit_state of its destination
     * that refused it */
    int blocked;
    /* per-key ordering (hr_park.h): its entry, SIZE_MAX when its record
     * has no key; parked: not made, an earlier event of its key for this
     * webhook waits in the guard */
    size_t park;
    bool parked;
    bool decided; /* made, refused or parked (the waves are over for it) */
    bool go;      /* make it in this perform() */
    /* results */
    int err_class; /* -1: success; else enum hr_err_class */
    long status;   /* HTTP status, 0 when none */
    int64_t retry_after_ms;
    char error[256];
};

/**
 * Load every entry of "webhooks" in @config: url, method (POST), timeout_ms
 * (5000), headers (object of strings), auth. Secrets are read from the
 * environment or files named in the config (secret_env/secret_file,
 * token_env/token_file, key_file). Problems are reported with
 * hr_conf_add_error() naming the webhook and field. With @reg NULL (for
 * --check-config) no HTTP client is made; otherwise calls use @ca_file
 * (HERALD_TLS_CA_FILE, may be NULL) besides the system CAs. Returns NULL
 * only when something was reported.
 */
struct fanout_webhooks *fanout_webhooks_load(const json_t *config,
                                             struct hr_conf *cfg,
                                             struct hr_metrics *reg,
                                             const char *ca_file);

void fanout_webhooks_free(struct fanout_webhooks *wh);

/** How many webhooks there are (indexes 0 .. n-1). */
size_t fanout_webhooks_count(const struct fanout_webhooks *wh);

/** The name of webhook @i (borrowed). */
const char *fanout_webhook_name(const struct fanout_webhooks *wh, int i);

/** Run every call whose go flag is set concurrently to completion and
 *  classify each result (SPEC section 7); the other calls are left alone.
 *  Returns 0, or -1 when the HTTP client itself failed (the batch
 *  pauses). */
int fanout_webhooks_perform(struct fanout_webhooks *wh,
                            struct fanout_call *calls,
                            size_t n);

#endif
