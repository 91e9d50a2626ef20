/* herald-subs's settings (SPEC section 9, Subscriptions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_circuit.h"
#include "hr_conf.h"
#include "hr_log.h"
#include "subs.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

const struct hr_conf_spec subs_conf[] = {
    /* The default is Apple Root CA - G3, built in (subs_apple_root.c). */
    HR_CONF_STR("HERALD_APPSTORE_ROOT_CERTS",
                SUBS_JWS_APPLE_ROOT_G3,
                0,
                "comma-separated PEM/DER files of the trusted roots; "
                "\"" SUBS_JWS_APPLE_ROOT_G3 "\" is Apple Root CA - G3, "
                "built in"),
    HR_CONF_STR("HERALD_APPSTORE_BUNDLE_ID",
                NULL,
                0,
                "the app's bundle id; notifications for another are refused "
                "(required)"),
    HR_CONF_INT("HERALD_APPSTORE_APP_APPLE_ID",
                NULL,
                1,
                INT64_MAX,
                0,
                "the app's Apple ID (required when ENVIRONMENTS has "
                "Production)"),
    HR_CONF_STR("HERALD_APPSTORE_ENVIRONMENTS",
                "Production",
                0,
                "accepted environments, comma-separated: Production, "
                "Sandbox"),
    HR_CONF_BOOL("HERALD_APPSTORE_STRICT_X509",
                 "true",
                 0,
                 "X509 strict chain checks (Apple's test certificates need "
                 "false)"),
    HR_CONF_STR("HERALD_SUBS_ENTITLEMENTS_TOPIC",
                "herald.entitlements",
                0,
                "topic of entitlement.changed events"),
    HR_CONF_INT("HERALD_SUBS_VERIFY_THREADS",
                "2",
                1,
                SUBS_VERIFY_THREADS_MAX,
                0,
                "threads that parse and verify a batch's notifications (the "
                "loop thread is one)"),
    HR_CONF_STR("HERALD_GOOGLEPLAY_PACKAGE_NAMES",
                NULL,
                0,
                "comma-separated Android package names whose RTDNs are "
                "handled (unset: Google Play bodies are dead-lettered)"),
    HR_CONF_STR("HERALD_GOOGLEPLAY_CREDENTIALS_FILE",
                NULL,
                0,
                "service-account JSON key with access to the Play Developer "
                "API (required with HERALD_GOOGLEPLAY_PACKAGE_NAMES)"),
    HR_CONF_URL("HERALD_GOOGLEPLAY_API_ENDPOINT",
                "https://androidpublisher.googleapis.com",
                0,
                "Play Developer API base URL"),
    HR_CONF_URL("HERALD_GOOGLEPLAY_TOKEN_URI",
                NULL,
                0,
                "OAuth2 token endpoint (default: the service account's "
                "token_uri)"),
    HR_CONF_BOOL("HERALD_GOOGLEPLAY_ACKNOWLEDGE",
                 "true",
                 0,
                 "acknowledge active subscription purchases still pending "
                 "acknowledgement"),
    HR_CIRCUIT_CONF_SPECS,
    HR_CONF_END,
};

/* Split the comma-separated @list into @buf (a copy) and @out; spaces
 * around names are dropped, empty names skipped. Returns the count, or -1
 * when there are more than @max. */
static int
split(const char *list, char *buf, size_t buf_size, const char **out, int max)
{
    int n = 0;
    char *p = buf;

    snprintf(buf, buf_size, "%s", list ? list : "");
    while (p && *p) {
        char *comma = strchr(p, ',');
        char *end;

        if (comma)
            *comma = '\0';
        while (*p == ' ')
            p++;
        end = p + strlen(p);
        while (end > p && end[-1] == ' ')
            *--end = '\0';
        if (*p) {
            if (n == max)
                return -1;
            out[n++] = p;
        }
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

struct subs_jws_verifier *
subs_verifier_new(const struct hr_conf *cfg, char *errstr, size_t errstr_size)
{
    const char *roots[SUBS_LIST_MAX], *envs[SUBS_LIST_MAX];
    char roots_buf[4096], envs_buf[256];
    const char *roots_list = hr_conf_str(cfg, "HERALD_APPSTORE_ROOT_CERTS");
    int nroots, nenvs;
    struct subs_jws_conf conf;

    if (!roots_list || !*roots_list) {
        snprintf(errstr, errstr_size,
                 "HERALD_APPSTORE_ROOT_CERTS: empty (unset, it is Apple Root "
                 "CA - G3, built in)");
        return NULL;
    }
    nroots =
        split(roots_list, roots_buf, sizeof(roots_buf), roots, SUBS_LIST_MAX);
    nenvs = split(hr_conf_str(cfg, "HERALD_APPSTORE_ENVIRONMENTS"), envs_buf,
                  sizeof(envs_buf), envs, SUBS_LIST_MAX);
    if (nroots <= 0 || nenvs <= 0) {
        snprintf(errstr, errstr_size, "%s: %s",
                 nroots <= 0 ? "HERALD_APPSTORE_ROOT_CERTS"
                             : "HERALD_APPSTORE_ENVIRONMENTS",
                 "empty, or more than 16 entries");
        return NULL;
    }
    conf = (struct subs_jws_conf){
        .root_paths = roots,
        .nroots = (size_t)nroots,
        .strict_x509 = hr_conf_bool(cfg, "HERALD_APPSTORE_STRICT_X509"),
        .bundle_id = hr_conf_str(cfg, "HERALD_APPSTORE_BUNDLE_ID"),
        .app_apple_id = hr_conf_int(cfg, "HERALD_APPSTORE_APP_APPLE_ID"),
        .environments = envs,
        .nenvironments = (size_t)nenvs,
    };
    return subs_jws_verifier_new(&conf, errstr, errstr_size);
}

struct subs_table *
subs_conf_table(const struct hr_conf *cfg, char *errstr, size_t errstr_size)
{
    const json_t *root = hr_conf_json(cfg);
    const json_t *subs = root ? json_object_get(root, "subs") : NULL;
    const json_t *strategies = NULL;

    if (subs && !json_is_object(subs)) {
        snprintf(errstr, errstr_size, "subs: must be an object");
        return NULL;
    }
    if (subs)
        strategies = json_object_get(subs, "strategies");
    return subs_table_new(strategies, errstr, errstr_size);
}

void subs_settings_load(struct subs_settings *s, const struct hr_conf *cfg)
{
    memset(s, 0, sizeof(*s));
    s->entitlements_topic = hr_conf_str(cfg, "HERALD_SUBS_ENTITLEMENTS_TOPIC");
    s->googleplay_packages =
        hr_conf_str(cfg, "HERALD_GOOGLEPLAY_PACKAGE_NAMES");
    if (s->googleplay_packages && !*s->googleplay_packages)
        s->googleplay_packages = NULL;
    s->googleplay_credentials =
        hr_conf_str(cfg, "HERALD_GOOGLEPLAY_CREDENTIALS_FILE");
    s->googleplay_endpoint = hr_conf_str(cfg, "HERALD_GOOGLEPLAY_API_ENDPOINT");
    s->googleplay_token_uri = hr_conf_str(cfg, "HERALD_GOOGLEPLAY_TOKEN_URI");
    if (s->googleplay_token_uri && !*s->googleplay_token_uri)
        s->googleplay_token_uri = NULL;
    s->googleplay_acknowledge =
        hr_conf_bool(cfg, "HERALD_GOOGLEPLAY_ACKNOWLEDGE");
    if (s->googleplay_packages)
        s->npackages =
            split(s->googleplay_packages, s->packages_buf,
                  sizeof(s->packages_buf), s->packages, SUBS_LIST_MAX);
    s->verify_threads = (int)hr_conf_int(cfg, "HERALD_SUBS_VERIFY_THREADS");
    if (s->verify_threads < 1)
        s->verify_threads = 1;
    s->dedupe_ttl_s = hr_conf_int(cfg, "HERALD_IDEMPOTENCY_TTL");
    if (s->dedupe_ttl_s <= 0)
        s->dedupe_ttl_s = 7 * 86400;
}

/* The Google Play settings, when HERALD_GOOGLEPLAY_PACKAGE_NAMES is set:
 * at most SUBS_LIST_MAX names, and a service account that loads. */
static void subs_google_validate(struct hr_conf *cfg)
{
    struct subs_settings *s = calloc(1, sizeof(*s));
    struct hr_gcp_sa *sa;
    char errstr[512];

    HR_ASSERT(s);
    subs_settings_load(s, cfg);
    if (!s->googleplay_packages) {
        free(s);
        return;
    }
    if (s->npackages <= 0)
        hr_conf_add_error(cfg, "HERALD_GOOGLEPLAY_PACKAGE_NAMES: empty, or "
                               "more than 16 entries");
    if (!s->googleplay_credentials || !*s->googleplay_credentials) {
        hr_conf_add_error(cfg, "HERALD_GOOGLEPLAY_CREDENTIALS_FILE: required "
                               "with HERALD_GOOGLEPLAY_PACKAGE_NAMES (a "
                               "service account with access to the Play "
                               "Developer API)");
    } else {
        sa = hr_gcp_sa_load(s->googleplay_credentials, s->googleplay_token_uri,
                            errstr, sizeof(errstr));
        if (!sa)
            hr_conf_add_error(cfg, "HERALD_GOOGLEPLAY_CREDENTIALS_FILE: %s",
                              errstr);
        hr_gcp_sa_free(sa);
    }
    free(s);
}

void subs_validate(struct hr_conf *cfg)
{
    char errstr[512];
    struct subs_jws_verifier *v;
    struct subs_table *t;
    const char *bundle = hr_conf_str(cfg, "HERALD_APPSTORE_BUNDLE_ID");
    const char *topic = hr_conf_str(cfg, "HERALD_SUBS_ENTITLEMENTS_TOPIC");
    const char *roots = hr_conf_str(cfg, "HERALD_APPSTORE_ROOT_CERTS");

    if (!roots || !*roots)
        hr_conf_add_error(cfg, "HERALD_APPSTORE_ROOT_CERTS: empty (unset, it "
                               "is Apple Root CA - G3, built in)");
    if (!bundle || !*bundle)
        hr_conf_add_error(cfg, "HERALD_APPSTORE_BUNDLE_ID: required (the "
                               "app's bundle id, e.g. com.example.app)");
    if (roots && *roots && bundle && *bundle) {
        v = subs_verifier_new(cfg, errstr, sizeof(errstr));
        if (!v)
            hr_conf_add_error(cfg, "App Store verifier: %s", errstr);
        subs_jws_verifier_free(v);
    }
    if (!topic || !*topic)
        hr_conf_add_error(cfg, "HERALD_SUBS_ENTITLEMENTS_TOPIC: must not be "
                               "empty");
    subs_google_validate(cfg);
    subs_webhooks_validate(cfg);
    {
        struct hr_circuit_conf cc;

        hr_circuit_conf_load(&cc, cfg);
        if (hr_circuit_conf_validate(&cc, errstr, sizeof(errstr)))
            hr_conf_add_error(cfg, "%s", errstr);
    }
    t = subs_conf_table(cfg, errstr, sizeof(errstr));
    if (!t)
        hr_conf_add_error(cfg, "config file \"subs\": %s", errstr);
    subs_table_free(t);
}
