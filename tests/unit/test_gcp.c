/*
 * Unit tests for hr_gcp's key file loader: a good service-account file
 * (with an RSA key generated at test time), each required field missing or
 * empty, the token_uri override, files that are not service accounts, bad
 * keys and bad files. The token exchange is covered by
 * tests/integration/test_gcp.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "hr_gcp.h"
#include "hx_fake_http.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define EMAIL   "herald@demo-project.iam.gserviceaccount.com"
#define PROJECT "demo-project"
#define KEY_ID  "0123456789abcdef0123456789abcdef01234567"
#define URI     "https://oauth2.googleapis.com/token"

static char *dir, *rsa_priv, *ec_priv;

static int group_setup(void **state)
{
    (void)state;
    dir = hx_tmpdir_new("gcp");
    if (!dir || hx_keypair_pem("RSA", &rsa_priv, NULL) ||
        hx_keypair_pem("EC", &ec_priv, NULL))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hx_tmpdir_remove(dir);
    free(dir);
    free(rsa_priv);
    free(ec_priv);
    return 0;
}

/* A complete service-account document, as the Cloud console writes it. */
static json_t *good_doc(void)
{
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
        "project_id", PROJECT, "private_key_id", KEY_ID, "private_key",
        rsa_priv, "client_email", EMAIL, "client_id", "1234567890", "auth_uri",
        "https://accounts.google.com/o/oauth2/auth", "token_uri", URI);

    assert_non_null(doc);
    return doc;
}

/* Write @doc (stolen) to a fresh file under dir; returns its path in a
 * static buffer. */
static const char *write_doc(json_t *doc)
{
    static char path[512];
    static int n;

    snprintf(path, sizeof(path), "%s/sa-%d.json", dir, n++);
    assert_int_equal(json_dump_file(doc, path, JSON_INDENT(2)), 0);
    json_decref(doc);
    return path;
}

static const char *write_text(const char *text)
{
    static char path[512];
    static int n;
    FILE *f;

    snprintf(path, sizeof(path), "%s/raw-%d.json", dir, n++);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loading @path fails with an error that contains @needle. */
static void
load_fails(const char *path, const char *override, const char *needle)
{
    char errstr[512] = "";
    struct hr_gcp_sa *sa =
        hr_gcp_sa_load(path, override, errstr, sizeof(errstr));

    if (sa)
        fail_msg("loaded a file that should fail with '%s'", needle);
    if (!strstr(errstr, needle))
        fail_msg("error '%s' does not mention '%s'", errstr, needle);
}

static struct hr_gcp_sa *load_ok(const char *path, const char *override)
{
    char errstr[512] = "";
    struct hr_gcp_sa *sa =
        hr_gcp_sa_load(path, override, errstr, sizeof(errstr));

    if (!sa)
        fail_msg("load: %s", errstr);
    return sa;
}

static void test_gcp_good_file_loads(void **state)
{
    struct hr_gcp_sa *sa = load_ok(write_doc(good_doc()), NULL);

    (void)state;
    assert_string_equal(hr_gcp_sa_email(sa), EMAIL);
    assert_string_equal(hr_gcp_sa_project(sa), PROJECT);
    assert_string_equal(hr_gcp_sa_token_uri(sa), URI);
    assert_int_equal(hr_gcp_sa_fetches(sa), 0);
    hr_gcp_sa_free(sa);
    hr_gcp_sa_free(NULL);
}

static void test_gcp_token_uri_override_wins(void **state)
{
    json_t *doc = good_doc();
    struct hr_gcp_sa *sa;

    (void)state;
    sa = load_ok(write_doc(json_deep_copy(doc)), "http://127.0.0.1:9/token");
    assert_string_equal(hr_gcp_sa_token_uri(sa), "http://127.0.0.1:9/token");
    hr_gcp_sa_free(sa);
    /* With an override, the file may lack token_uri. */
    json_object_del(doc, "token_uri");
    sa = load_ok(write_doc(doc), "https://fake.example/token");
    assert_string_equal(hr_gcp_sa_token_uri(sa), "https://fake.example/token");
    hr_gcp_sa_free(sa);
}

static void test_gcp_each_missing_field_is_named(void **state)
{
    static const char *const fields[] = {
        "client_email", "private_key", "private_key_id",
        "project_id",   "token_uri",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *missing = good_doc(), *empty = good_doc(), *number = good_doc();

        json_object_del(missing, fields[i]);
        load_fails(write_doc(missing), NULL, fields[i]);
        json_object_set_new(empty, fields[i], json_string(""));
        load_fails(write_doc(empty), NULL, fields[i]);
        json_object_set_new(number, fields[i], json_integer(42));
        load_fails(write_doc(number), NULL, fields[i]);
    }
}

static void test_gcp_other_types_are_refused(void **state)
{
    json_t *user = good_doc(), *none = good_doc();

    (void)state;
    /* An OAuth client's "authorized_user" file is not a service account. */
    json_object_set_new(user, "type", json_string("authorized_user"));
    load_fails(write_doc(user), NULL, "service_account");
    json_object_del(none, "type");
    load_fails(write_doc(none), NULL, "service_account");
    load_fails(write_text("[\"service_account\"]"), NULL, "not a json object");
    load_fails(write_text("{\"type\": \"service_account\","), NULL, "not json");
    load_fails(write_text(""), NULL, "not json");
}

static void test_gcp_bad_keys_are_refused(void **state)
{
    json_t *junk = good_doc(), *ec = good_doc(), *cut = good_doc();
    char *half = strdup(rsa_priv);

    (void)state;
    json_object_set_new(junk, "private_key", json_string("not a pem key"));
    load_fails(write_doc(junk), NULL, "private_key");
    /* An EC key cannot sign RS256. */
    json_object_set_new(ec, "private_key", json_string(ec_priv));
    load_fails(write_doc(ec), NULL, "private_key");
    half[strlen(half) / 2] = '\0';
    json_object_set_new(cut, "private_key", json_string(half));
    load_fails(write_doc(cut), NULL, "private_key");
    free(half);
}

static void test_gcp_bad_files_and_uris_are_refused(void **state)
{
    json_t *ftp = good_doc();
    char path[512];

    (void)state;
    snprintf(path, sizeof(path), "%s/does-not-exist.json", dir);
    load_fails(path, NULL, "does-not-exist.json");
    json_object_set_new(ftp, "token_uri", json_string("ftp://x/token"));
    load_fails(write_doc(ftp), NULL, "token_uri");
    load_fails(write_doc(good_doc()), "oauth2.googleapis.com/token",
               "token_uri");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcp_good_file_loads),
        cmocka_unit_test(test_gcp_token_uri_override_wins),
        cmocka_unit_test(test_gcp_each_missing_field_is_named),
        cmocka_unit_test(test_gcp_other_types_are_refused),
        cmocka_unit_test(test_gcp_bad_keys_are_refused),
        cmocka_unit_test(test_gcp_bad_files_and_uris_are_refused),
    };

    return cmocka_run_group_tests_name("gcp", tests, group_setup,
                                       group_teardown);
}
