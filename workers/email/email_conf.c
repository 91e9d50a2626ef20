/* herald-email's settings (SPEC section 9, Email). */
#include <stdio.h>
#include <string.h>

#include "email_mime.h"
#include "email_state.h"
#include "hr_aws.h"
#include "hr_log.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

const struct hr_conf_spec email_conf[] = {
    HR_CONF_ENUM("HERALD_EMAIL_TRANSPORT",
                 "smtp",
                 "smtp|ses",
                 0,
                 "how emails leave: SMTP, or Amazon SES v2 SendEmail"),
    HR_CONF_STR(
        "HERALD_SMTP_URL",
        NULL,
        0,
        "smtp://host:port (STARTTLS when offered) or smtps://host:port"),
    HR_CONF_BOOL("HERALD_SMTP_REQUIRE_TLS",
                 "false",
                 0,
                 "smtp://: refuse to send unless the server offers STARTTLS"),
    HR_CONF_STR("HERALD_SMTP_USER", NULL, 0, "SMTP AUTH user"),
    HR_CONF_STR(
        "HERALD_SMTP_PASSWORD", NULL, HR_CONF_SECRET, "SMTP AUTH password"),
    HR_CONF_STR("HERALD_EMAIL_FROM",
                NULL,
                0,
                "sender address (the envelope and From:); its domain names "
                "the Message-IDs"),
    HR_CONF_INT("HERALD_EMAIL_WINDOW_SECONDS",
                "900",
                1,
                2678400,
                0,
                "window length per user and category (the config file may "
                "set one per category)"),
    HR_CONF_ENUM("HERALD_EMAIL_MODE",
                 "digest",
                 "digest|leading",
                 0,
                 "digest: one email listing the window's events at its end; "
                 "leading: the first event at once, the rest suppressed"),
    HR_CONF_INT("HERALD_EMAIL_DIGEST_MAX",
                "20",
                1,
                1000,
                0,
                "events listed in a digest; the rest are counted "
                "(\"and N more\")"),
    HR_CONF_INT("HERALD_EMAIL_CONCURRENCY",
                "8",
                1,
                256,
                0,
                "messages in flight at once (SMTP connections, SES calls)"),
    HR_CONF_MS("HERALD_EMAIL_TIMEOUT_MS",
               "30000",
               0,
               "timeout of one message's transfer"),
    HR_CONF_MS("HERALD_EMAIL_LEASE_MS",
               "60000",
               0,
               "how long a claimed window, or a send, is held by its replica "
               "before another may take it over"),
    HR_CONF_INT("HERALD_EMAIL_CLAIM_MAX",
                "500",
                1,
                10000,
                0,
                "windows claimed per timer call"),
    HR_CONF_INT("HERALD_EMAIL_SEEN_SECONDS",
                "86400",
                1,
                315360000,
                0,
                "how long an event id is remembered against redelivery (far "
                "longer than an event can stay consumed but uncommitted)"),
    HR_CONF_STR("HERALD_EMAIL_SEND_TOPIC",
                "herald.email",
                0,
                "topic of the email.send records (rendered windows); must be "
                "one this worker consumes"),
    HR_CONF_STR(
        "HERALD_SES_REGION", NULL, 0, "SES region (default: AWS_REGION)"),
    HR_CONF_URL("HERALD_SES_ENDPOINT",
                NULL,
                0,
                "SES v2 base URL (default https://email.<region>."
                "amazonaws.com)"),
    HR_CIRCUIT_CONF_SPECS,
    HR_CONF_END,
};

void email_validate(struct hr_conf *cfg)
{
    const char *from = hr_conf_str(cfg, "HERALD_EMAIL_FROM");
    const char *transport = hr_conf_str(cfg, "HERALD_EMAIL_TRANSPORT");
    const char *url = hr_conf_str(cfg, "HERALD_SMTP_URL");
    char errstr[512];
    struct email_catalog *cat;

    if (hr_conf_str(cfg, "HERALD_SOURCE") &&
        strcmp(hr_conf_str(cfg, "HERALD_SOURCE"), "kafka"))
        hr_conf_add_error(cfg, "HERALD_SOURCE: herald-email needs the kafka "
                               "source (its rendered windows come back "
                               "through HERALD_EMAIL_SEND_TOPIC, which it "
                               "must consume)");
    if (!from || !email_address_ok(from))
        hr_conf_add_error(cfg, "HERALD_EMAIL_FROM: a sender address is "
                               "required (name@domain)");
    if (!strcmp(transport, "smtp")) {
        if (!url || (strncmp(url, "smtp://", 7) && strncmp(url, "smtps://", 8)))
            hr_conf_add_error(cfg, "HERALD_SMTP_URL: smtp://host:port or "
                                   "smtps://host:port is required with the "
                                   "smtp transport");
        if (!hr_conf_str(cfg, "HERALD_SMTP_USER") !=
            !hr_conf_str(cfg, "HERALD_SMTP_PASSWORD"))
            hr_conf_add_error(cfg, "HERALD_SMTP_USER, HERALD_SMTP_PASSWORD: "
                                   "give both or neither");
    } else {
        const char *region = hr_conf_str(cfg, "HERALD_SES_REGION");

        hr_aws_validate(cfg, region, "the ses transport");
    }
    cat = email_catalog_new(cfg, errstr, sizeof(errstr));
    if (!cat) {
        hr_conf_add_error(cfg, "email config: %s", errstr);
        return;
    }
    email_catalog_check(cat, cfg);
    email_catalog_free(cat);
}

void email_settings_load(struct email_settings *s, const struct hr_conf *cfg)
{
    memset(s, 0, sizeof(*s));
    s->from = hr_conf_str(cfg, "HERALD_EMAIL_FROM");
    s->domain = email_address_domain(s->from);
    s->send_topic = hr_conf_str(cfg, "HERALD_EMAIL_SEND_TOPIC");
    s->lease_ms = hr_conf_int(cfg, "HERALD_EMAIL_LEASE_MS");
    s->seen_ms = hr_conf_int(cfg, "HERALD_EMAIL_SEEN_SECONDS") * 1000;
    s->sent_ttl_ms = hr_conf_int(cfg, "HERALD_IDEMPOTENCY_TTL") * 1000;
    s->claim_max = (int)hr_conf_int(cfg, "HERALD_EMAIL_CLAIM_MAX");
    s->concurrency = (int)hr_conf_int(cfg, "HERALD_EMAIL_CONCURRENCY");
    s->timeout_ms = (long)hr_conf_int(cfg, "HERALD_EMAIL_TIMEOUT_MS");
}
