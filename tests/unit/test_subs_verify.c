/*
 * subs_verify.c: a batch parsed and verified on several threads gives each
 * item its own verdict, whatever the thread count (also run under
 * ThreadSanitizer: `make tsan`). Apple's TEST notification vector
 * (../shared/vectors/appstore, skipped without it) and tampered copies of
 * it, interleaved with bodies that are not JSON, CloudEvents of the wrong
 * type and Google bodies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "subs.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define N 200

enum kind { GOOD, FORGED, NOT_JSON, WRONG_TYPE, GOOGLE, KINDS };

static char *vector_body(const char *dir, bool forge)
{
    char path[1200], *jws, *body;
    size_t len = 0;

    snprintf(path, sizeof(path), "%s/mock_signed_data/testNotification", dir);
    jws = hx_file_read(path, &len);
    if (!jws)
        return NULL;
    while (len && (jws[len - 1] == '\n' || jws[len - 1] == ' '))
        jws[--len] = '\0';
    if (forge) /* a character inside the signature */
        jws[len - 12] = jws[len - 12] == 'A' ? 'B' : 'A';
    body = malloc(len + 32);
    assert_non_null(body);
    snprintf(body, len + 32, "{\"signedPayload\":\"%s\"}", jws);
    free(jws);
    return body;
}

static void check(const struct subs_pre *pre, enum kind k)
{
    switch (k) {
    case GOOD:
        assert_non_null(pre->payload);
        assert_null(pre->code);
        assert_string_equal(json_string_value(json_object_get(
                                pre->payload, "notificationType")),
                            "TEST");
        break;
    case FORGED:
        assert_null(pre->payload);
        assert_string_equal(pre->code, "signature");
        assert_string_equal(pre->what, "notification");
        break;
    case NOT_JSON:
        assert_null(pre->body);
        assert_non_null(strstr(pre->bad, "invalid json"));
        break;
    case WRONG_TYPE:
        assert_null(pre->body);
        assert_non_null(strstr(pre->bad, "unexpected event type 'x.y'"));
        break;
    default:
        assert_non_null(pre->body);
        assert_null(pre->payload);
        assert_null(pre->code);
        assert_non_null(json_object_get(pre->body, "message"));
    }
}

static void test_each_item_gets_its_own_verdict(void **state)
{
    const char *shared = getenv("HERALD_SHARED_DIR");
    const char *envs[] = {"Sandbox"};
    char dir[1024], root[1200], errstr[256];
    const char *roots[] = {root};
    char *bodies[KINDS];
    struct hr_item items[N];
    struct hr_batch batch = {items, N};
    struct subs_state st;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/vectors/appstore",
             shared && *shared ? shared : HX_SOURCE_DIR "/../shared");
    snprintf(root, sizeof(root), "%s/certs/testCA.der", dir);
    if (access(root, R_OK)) {
        print_message("skipped: App Store vectors not found in '%s'\n", dir);
        skip();
    }
    memset(&st, 0, sizeof(st));
    st.verifier = subs_jws_verifier_new(
        &(struct subs_jws_conf){.root_paths = roots,
                                .nroots = 1,
                                .bundle_id = "com.example",
                                .app_apple_id = 1234,
                                .environments = envs,
                                .nenvironments = 1},
        errstr, sizeof(errstr));
    assert_non_null(st.verifier);
    bodies[GOOD] = vector_body(dir, false);
    bodies[FORGED] = vector_body(dir, true);
    bodies[NOT_JSON] = strdup("{\"signedPayload\": ");
    bodies[WRONG_TYPE] = strdup("{\"specversion\":\"1.0\",\"type\":\"x.y\","
                                "\"data\":{}}");
    bodies[GOOGLE] = strdup("{\"message\":{\"data\":\"e30=\","
                            "\"messageId\":\"1\"}}");
    for (size_t i = 0; i < N; i++) {
        memset(&items[i], 0, sizeof(items[i]));
        items[i].value = bodies[(i * 7) % KINDS];
        items[i].value_len = strlen(bodies[(i * 7) % KINDS]);
        items[i].outcome = i == 3 ? HR_OUT_DEAD : HR_OUT_PENDING;
    }
    for (int threads = 1; threads <= 8; threads *= 2) {
        st.set.verify_threads = threads;
        subs_pre_batch(&st, &batch);
        for (size_t i = 0; i < N; i++) {
            if (items[i].outcome != HR_OUT_PENDING) {
                /* an item with its outcome is not looked at */
                assert_null(st.pre[i].root);
                continue;
            }
            check(&st.pre[i], (enum kind)((i * 7) % KINDS));
        }
        subs_pre_clear(&st);
    }
    free(st.pre);
    for (size_t k = 0; k < KINDS; k++)
        free(bodies[k]);
    subs_jws_verifier_free(st.verifier);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_item_gets_its_own_verdict),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
