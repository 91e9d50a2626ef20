/*
 * Outbound webhooks (SPEC section 8), for every worker that calls its
 * users' HTTP endpoints (herald-fanout's webhook targets, herald-subs'
 * backend): configuration, service auth (a JWT signed with HS256, RS256 or
 * ES256 per call, a static bearer token, or none), and the concurrent
 * calls of one batch over hr_http.h, each classified (SPEC section 7) and
 * counted in <prefix>_webhook_seconds{webhook},
 * <prefix>_webhook_responses_total{webhook,status} and
 * <prefix>_webhook_auth_failures_total{webhook}.
 */
#ifndef HR_WEBHOOK_H
#define HR_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct hr_conf;
struct hr_metrics;
struct hr_webhooks;

/* The members of one call, also embedded (anonymously, in a union with a
 * struct hr_webhook_call) by callers that keep more per call. */
#define HR_WEBHOOK_CALL_MEMBERS                              \
    int webhook; /* index in the loaded webhooks */          \
    char id[37]; /* derived id: sent as Idempotency-Key */   \
    char *body;  /* JSON, the caller's */                    \
    size_t body_len;                                         \
    /* results */                                            \
    int err_class; /* -1: success; else enum hr_err_class */ \
    long status;   /* HTTP status, 0 when none */            \
    int64_t retry_after_ms;                                  \
    char error[256];

/** One call. The caller fills the request part; perform() the results. */
struct hr_webhook_call {
    HR_WEBHOOK_CALL_MEMBERS
};

/**
 * Load every member of @hooks (an object: name -> {url, method (POST, PUT
 * or PATCH; POST), timeout_ms (5000), headers (object of strings), auth});
 * @where names the object in messages ("webhooks", "subs.webhooks").
 * Secrets are read from the environment or files named in the config
 * (secret_env/secret_file, token_env/token_file, key_env/key_file).
 * Problems are reported with hr_conf_add_error() naming the webhook and
 * field. With @reg NULL (for --check-config) no HTTP client is made and no
 * metric declared; otherwise calls use @ca_file (HERALD_TLS_CA_FILE, may be
 * NULL) besides the system CAs and metrics are named after @prefix
 * ("herald_fanout"). Returns NULL only when something was reported.
 */
struct hr_webhooks *hr_webhooks_load(const json_t *hooks,
                                     const char *where,
                                     const char *prefix,
                                     struct hr_conf *cfg,
                                     struct hr_metrics *reg,
                                     const char *ca_file);

void hr_webhooks_free(struct hr_webhooks *wh);

/** How many webhooks there are (indexes 0 .. n-1). */
size_t hr_webhooks_count(const struct hr_webhooks *wh);

/** The name of webhook @i (borrowed). */
const char *hr_webhook_name(const struct hr_webhooks *wh, int i);

/** Make the @n calls @calls concurrently to completion and classify each
 *  result. Returns 0, or -1 when the HTTP client itself failed or a token
 *  could not be signed (the caller pauses). */
int hr_webhooks_perform(struct hr_webhooks *wh,
                        struct hr_webhook_call *const *calls,
                        size_t n);

#endif
