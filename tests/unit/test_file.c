/* hr_file_read(): a small file whole, a missing one, one too large. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "hr_file.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static void test_read(void **state)
{
    char *dir = hx_tmpdir_new("file");
    char path[600], errstr[900], *text;
    size_t len = 0;
    FILE *f;

    (void)state;
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("-----BEGIN KEY-----\nabc\n", f);
    fputc('\0', f); /* bytes, not only text */
    fclose(f);

    text = hr_file_read(path, 64, &len, errstr, sizeof(errstr));
    assert_non_null(text);
    assert_int_equal(len, 25);
    assert_string_equal(text, "-----BEGIN KEY-----\nabc\n");
    assert_int_equal(text[len], '\0');
    free(text);

    /* exactly the limit is fine, one byte less is not */
    text = hr_file_read(path, 25, NULL, errstr, sizeof(errstr));
    assert_non_null(text);
    free(text);
    assert_null(hr_file_read(path, 24, &len, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "is larger than 24 bytes"));

    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_null(hr_file_read(path, 64, &len, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "cannot open"));
    assert_non_null(strstr(errstr, "No such file"));
    hx_tmpdir_remove(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
