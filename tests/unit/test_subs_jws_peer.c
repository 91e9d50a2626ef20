/*
 * subs_jws.c side by side with Apple's own @apple/app-store-server-library
 * (npm, SignedDataVerifier with online checks off): every signed file of
 * ../shared/vectors/appstore, a notification minted for every Apple type
 * and subtype of the default strategy table, every model payload of the
 * vectors signed with the test leaf, and the forgeries (alg none, HS256
 * keyed with the leaf's PEM, wrong root, missing OIDs, certificates
 * expired or not yet valid at signedDate, a tampered payload, another
 * key, truncated and padded chains, Xcode data in Production).
 *
 * tests/node/appstore_peer.js builds the cases and Apple's verdicts; here
 * each case is decided again with a verifier of the same settings, and:
 * - our code is the one the case expects ("ok": it verifies);
 * - Apple's status is the one our code corresponds to (subs_jws.h lists
 *   them; Apple's Node library reports some chain failures as
 *   INVALID_CERTIFICATE), unless the case says why they differ, and then
 *   Apple's verdict must still differ (the note stays true);
 * - a verified notification decodes to the same notificationType, and a
 *   minted one takes the strategy the table gives its type and subtype.
 *
 * The vectors live outside the repository ($HERALD_SHARED_DIR, else
 * ../shared beside it): skipped without them. Node and the npm packages of
 * tests/node are required (scripts/deps.sh installs them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "hx_fake_http.h"
#include "subs_jws.h"
#include "subs_strategy.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Apple's statuses our codes correspond to (subs_jws.h). */
static const struct {
    const char *code;
    const char *apple[3];
} statuses[] = {
    {"ok", {"OK"}},
    {"bad_format", {"VERIFICATION_FAILURE"}},
    {"alg", {"VERIFICATION_FAILURE"}},
    {"x5c",
     {"VERIFICATION_FAILURE", "INVALID_CHAIN_LENGTH", "INVALID_CERTIFICATE"}},
    {"chain", {"VERIFICATION_FAILURE", "INVALID_CERTIFICATE"}},
    {"oid", {"VERIFICATION_FAILURE"}},
    {"signature", {"VERIFICATION_FAILURE"}},
    {"bundle_id", {"INVALID_APP_IDENTIFIER"}},
    {"app_apple_id", {"INVALID_APP_IDENTIFIER"}},
    {"environment", {"INVALID_ENVIRONMENT"}},
};

static bool corresponds(const char *code, const char *apple)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (strcmp(statuses[i].code, code))
            continue;
        for (size_t j = 0; j < 3 && statuses[i].apple[j]; j++) {
            if (!strcmp(statuses[i].apple[j], apple))
                return true;
        }
        return false;
    }
    fail_msg("no Apple status listed for code '%s'", code);
    return false;
}

static const char *str(const json_t *obj, const char *name)
{
    const char *s = json_string_value(json_object_get(obj, name));

    if (!s)
        fail_msg("case without \"%s\"", name);
    return s;
}

/* Run appstore_peer.js over @vectors with @table_path; the cases. */
static json_t *peer_cases(const char *dir, const char *vectors)
{
    char table_path[1200], out[1200], err[1200], script[1200];
    json_t *table = subs_table_default_json(), *cases;
    json_error_t jerr;
    struct hx_proc *p;
    int status = -1;

    snprintf(table_path, sizeof(table_path), "%s/table.json", dir);
    snprintf(out, sizeof(out), "%s/cases.json", dir);
    snprintf(err, sizeof(err), "%s/peer.err", dir);
    snprintf(script, sizeof(script), "%s/tests/node/appstore_peer.js",
             HX_SOURCE_DIR);
    assert_int_equal(json_dump_file(table, table_path, JSON_COMPACT), 0);
    json_decref(table);
    p = hx_proc_spawn((const char *[]){"node", script, "--vectors", vectors,
                                       "--table", table_path, NULL},
                      NULL, out, err);
    assert_non_null(p);
    assert_int_equal(hx_proc_wait(p, 60000, &status), 0);
    hx_proc_free(p);
    if (status) {
        char *text = hx_file_read(err, NULL);

        fail_msg("appstore_peer.js exited %d: %s", status, text ? text : "");
    }
    cases = json_load_file(out, 0, &jerr);
    if (!cases)
        fail_msg("appstore_peer.js output: %s", jerr.text);
    return cases;
}

static enum subs_jws_kind kind_of(const char *kind)
{
    if (!strcmp(kind, "transaction"))
        return SUBS_JWS_TRANSACTION;
    if (!strcmp(kind, "renewal"))
        return SUBS_JWS_RENEWAL;
    assert_string_equal(kind, "notification");
    return SUBS_JWS_NOTIFICATION;
}

/* A verifier with the case's settings, the clock the real one (as Apple's
 * library: a payload without signedDate is checked at now). */
static struct subs_jws_verifier *verifier_for(const json_t *c,
                                              const char *vectors)
{
    char root[1200], errstr[256];
    const char *roots[1] = {root};
    const char *envs[1] = {str(c, "env")};
    struct subs_jws_verifier *v;

    snprintf(root, sizeof(root), "%s/%s", vectors, str(c, "root"));
    v = subs_jws_verifier_new(
        &(struct subs_jws_conf){
            .root_paths = roots,
            .nroots = 1,
            .strict_x509 = json_is_true(json_object_get(c, "strict")),
            .bundle_id = str(c, "bundle"),
            .app_apple_id =
                json_integer_value(json_object_get(c, "app_apple_id")),
            .environments = envs,
            .nenvironments = 1,
        },
        errstr, sizeof(errstr));
    if (!v)
        fail_msg("%s: verifier: %s", str(c, "name"), errstr);
    return v;
}

/* A minted notification takes the strategy the table names for its type
 * and subtype ("*" when the table does not list the subtype). */
static void check_strategy(const struct subs_table *t,
                           const json_t *table_json,
                           const json_t *payload,
                           const char *name)
{
    const char *type =
        json_string_value(json_object_get(payload, "notificationType"));
    const char *subtype =
        json_string_value(json_object_get(payload, "subtype"));
    const json_t *subtypes =
        json_object_get(json_object_get(table_json, "appstore"), type);
    const json_t *want = json_object_get(subtypes, subtype ? subtype : "");
    bool known = false;
    enum subs_strategy s;

    if (!want)
        want = json_object_get(subtypes, "*");
    assert_non_null(want);
    s = subs_table_lookup(t, SUBS_APPSTORE, type, subtype, &known);
    if (!known || strcmp(subs_strategy_name(s), json_string_value(want)))
        fail_msg("%s: strategy %s, the table says %s", name,
                 known ? subs_strategy_name(s) : "(unknown)",
                 json_string_value(want));
}

/* The (type, subtype) pairs of the table's App Store part. */
static size_t table_pairs(const json_t *table_json)
{
    const json_t *subtypes;
    const char *type;
    size_t n = 0;

    json_object_foreach(json_object_get(table_json, "appstore"), type, subtypes)
    {
        n += json_object_size(subtypes);
    }
    return n;
}

static void test_verdicts_match_apples_library(void **state)
{
    const char *shared = getenv("HERALD_SHARED_DIR");
    char vectors[1024], errstr[256];
    char *dir = hx_tmpdir_new("subs-peer");
    json_t *cases, *table_json = subs_table_default_json();
    struct subs_table *table = subs_table_new(NULL, errstr, sizeof(errstr));
    size_t i, verified = 0, refused = 0, minted = 0, differ = 0;
    const json_t *c;

    (void)state;
    snprintf(vectors, sizeof(vectors), "%s/vectors/appstore",
             shared && *shared ? shared : HX_SOURCE_DIR "/../shared");
    if (access(vectors, R_OK)) {
        print_message("skipped: App Store vectors not found in '%s' (set "
                      "HERALD_SHARED_DIR)\n",
                      vectors);
        hx_tmpdir_remove(dir);
        free(dir);
        skip();
    }
    assert_true(hx_node_available());
    assert_non_null(table);
    cases = peer_cases(dir, vectors);
    json_array_foreach(cases, i, c)
    {
        const char *name = str(c, "name"), *expect = str(c, "expect");
        const char *apple = str(c, "apple"), *code = NULL;
        const char *differs = json_string_value(json_object_get(c, "differs"));
        struct subs_jws_verifier *v = verifier_for(c, vectors);
        json_t *payload =
            subs_jws_verify(v, str(c, "jws"), kind_of(str(c, "kind")), &code,
                            errstr, sizeof(errstr));
        const char *ours = payload ? "ok" : code;

        if (strcmp(ours, expect))
            fail_msg("%s: herald says %s (%s), expected %s", name, ours,
                     payload ? "" : errstr, expect);
        if (differs) {
            if (corresponds(ours, apple))
                fail_msg("%s: Apple's library now agrees (%s); the note "
                         "'%s' is stale",
                         name, apple, differs);
            differ++;
        } else if (!corresponds(ours, apple)) {
            fail_msg("%s: herald says %s, Apple's library %s", name, ours,
                     apple);
        }
        if (payload) {
            const json_t *type = json_object_get(payload, "notificationType");

            assert_true(
                json_equal(type, json_object_get(c, "apple_type")) ||
                (!type && json_is_null(json_object_get(c, "apple_type"))));
            if (!strncmp(name, "minted ", 7) && type) {
                check_strategy(table, table_json, payload, name);
                minted++;
            }
            verified++;
        } else {
            refused++;
        }
        json_decref(payload);
        subs_jws_verifier_free(v);
    }
    print_message("%zu cases: %zu verified (%zu minted notifications), %zu "
                  "refused, %zu known differences\n",
                  json_array_size(cases), verified, minted, refused, differ);
    /* every Apple type and subtype of the table was minted and verified */
    assert_int_equal(minted, table_pairs(table_json));
    assert_true(refused > 0 && verified > minted);
    json_decref(cases);
    json_decref(table_json);
    subs_table_free(table);
    hx_tmpdir_remove(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdicts_match_apples_library),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
