/* herald-push's settings (SPEC section 9, Push). */
#include <stdio.h>
#include <string.h>

#include "hr_log.h"
#include "push_state.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

const struct hr_conf_spec push_conf[] = {
    HR_CONF_INT("HERALD_PUSH_CONCURRENCY",
                "100",
                1,
                1000,
                0,
                "calls in flight at once (HTTP/2 streams)"),
    HR_CONF_MS("HERALD_PUSH_HTTP_TIMEOUT_MS",
               "10000",
               0,
               "timeout of one provider call"),
    HR_CONF_STR("HERALD_PUSH_INVALIDATED_TOPIC",
                "herald.devices",
                0,
                "topic for device.invalidated events; off disables them"),
    HR_CONF_PATH("HERALD_APNS_KEY_FILE",
                 NULL,
                 0,
                 "APNs token key (.p8, ES256); unset: no APNs"),
    HR_CONF_STR("HERALD_APNS_KEY_ID", NULL, 0, "the .p8 key's id (kid)"),
    HR_CONF_STR("HERALD_APNS_TEAM_ID", NULL, 0, "Apple team id (iss)"),
    HR_CONF_STR("HERALD_APNS_TOPIC",
                NULL,
                0,
                "apns-topic: the app's bundle id (a device's app wins)"),
    HR_CONF_URL("HERALD_APNS_ENDPOINT",
                "https://api.push.apple.com",
                0,
                "APNs for production devices"),
    HR_CONF_URL("HERALD_APNS_SANDBOX_ENDPOINT",
                "https://api.sandbox.push.apple.com",
                0,
                "APNs for devices registered with environment sandbox"),
    HR_CONF_INT("HERALD_APNS_TOKEN_REFRESH_S",
                "2400",
                1,
                3540,
                0,
                "age at which the shared provider token is replaced (Apple: "
                "between 1200 and 3600)"),
    HR_CONF_PATH("HERALD_FCM_CREDENTIALS_FILE",
                 NULL,
                 0,
                 "FCM service-account JSON; unset: no FCM"),
    HR_CONF_URL("HERALD_FCM_ENDPOINT",
                "https://fcm.googleapis.com",
                0,
                "FCM HTTP v1 base URL"),
    HR_CONF_URL("HERALD_FCM_TOKEN_URI",
                NULL,
                0,
                "OAuth2 token endpoint (default: the service account's "
                "token_uri)"),
    HR_CONF_PATH("HERALD_WEBPUSH_VAPID_KEY_FILE",
                 NULL,
                 0,
                 "VAPID private key (PEM, P-256); unset: no Web Push"),
    HR_CONF_STR("HERALD_WEBPUSH_SUBJECT",
                NULL,
                0,
                "VAPID contact (mailto: or https:), required with a key"),
    HR_CONF_INT("HERALD_WEBPUSH_TTL_S",
                "86400",
                0,
                2419200,
                0,
                "Web Push TTL when a push has no ttl_seconds"),
    HR_CIRCUIT_CONF_SPECS,
    HR_CONF_END,
};

void push_validate(struct hr_conf *cfg)
{
    const char *subject = hr_conf_str(cfg, "HERALD_WEBPUSH_SUBJECT");
    int64_t refresh = hr_conf_int(cfg, "HERALD_APNS_TOKEN_REFRESH_S");

    if (hr_conf_str(cfg, "HERALD_APNS_KEY_FILE")) {
        static const char *const need[] = {
            "HERALD_APNS_KEY_ID", "HERALD_APNS_TEAM_ID", "HERALD_APNS_TOPIC"};

        for (size_t i = 0; i < HR_ARRAY_SIZE(need); i++) {
            if (!hr_conf_str(cfg, need[i]))
                hr_conf_add_error(cfg, "%s: required with HERALD_APNS_KEY_FILE",
                                  need[i]);
        }
    }
    if (hr_conf_str(cfg, "HERALD_WEBPUSH_VAPID_KEY_FILE") &&
        (!subject ||
         (strncmp(subject, "mailto:", 7) && strncmp(subject, "https://", 8))))
        hr_conf_add_error(cfg, "HERALD_WEBPUSH_SUBJECT: a mailto: or https: "
                               "contact is required with a VAPID key");
    if (!hr_conf_str(cfg, "HERALD_APNS_KEY_FILE") &&
        !hr_conf_str(cfg, "HERALD_FCM_CREDENTIALS_FILE") &&
        !hr_conf_str(cfg, "HERALD_WEBPUSH_VAPID_KEY_FILE"))
        hr_conf_add_error(cfg, "HERALD_APNS_KEY_FILE, HERALD_FCM_CREDENTIALS_"
                               "FILE, HERALD_WEBPUSH_VAPID_KEY_FILE: at least "
                               "one provider is needed");
    if (refresh < 1200)
        hr_log_warn("HERALD_APNS_TOKEN_REFRESH_S under 1200: APNs answers "
                    "TooManyProviderTokenUpdates to a token replaced sooner "
                    "than every 20 minutes (tests only)",
                    HR_LOG_I64("seconds", refresh));
}

void push_settings_load(struct push_settings *s, const struct hr_conf *cfg)
{
    const char *topic = hr_conf_str(cfg, "HERALD_PUSH_INVALIDATED_TOPIC");

    memset(s, 0, sizeof(*s));
    s->concurrency = (int)hr_conf_int(cfg, "HERALD_PUSH_CONCURRENCY");
    s->timeout_ms = (long)hr_conf_int(cfg, "HERALD_PUSH_HTTP_TIMEOUT_MS");
    s->claim_ttl_s = hr_conf_int(cfg, "HERALD_IDEMPOTENCY_TTL");
    s->invalidated_topic = topic && strcmp(topic, "off") ? topic : NULL;
    s->apns_key_file = hr_conf_str(cfg, "HERALD_APNS_KEY_FILE");
    s->apns_key_id = hr_conf_str(cfg, "HERALD_APNS_KEY_ID");
    s->apns_team_id = hr_conf_str(cfg, "HERALD_APNS_TEAM_ID");
    s->apns_topic = hr_conf_str(cfg, "HERALD_APNS_TOPIC");
    s->apns_endpoint = hr_conf_str(cfg, "HERALD_APNS_ENDPOINT");
    s->apns_sandbox_endpoint = hr_conf_str(cfg, "HERALD_APNS_SANDBOX_ENDPOINT");
    s->apns_refresh_s = hr_conf_int(cfg, "HERALD_APNS_TOKEN_REFRESH_S");
    s->fcm_credentials = hr_conf_str(cfg, "HERALD_FCM_CREDENTIALS_FILE");
    s->fcm_endpoint = hr_conf_str(cfg, "HERALD_FCM_ENDPOINT");
    s->fcm_token_uri = hr_conf_str(cfg, "HERALD_FCM_TOKEN_URI");
    s->vapid_key_file = hr_conf_str(cfg, "HERALD_WEBPUSH_VAPID_KEY_FILE");
    s->vapid_subject = hr_conf_str(cfg, "HERALD_WEBPUSH_SUBJECT");
    s->webpush_ttl_s = hr_conf_int(cfg, "HERALD_WEBPUSH_TTL_S");
}
