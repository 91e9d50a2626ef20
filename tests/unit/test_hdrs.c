/*
 * Unit tests for hr_hdrs: an ordered header list where names repeat,
 * set replaces every same-named header, and lookups take the last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hr_hdrs.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Header @idx of @h is @name = @value (@len bytes). */
static void assert_hdr(const struct hr_hdrs *h,
                       size_t idx,
                       const char *name,
                       const void *value,
                       size_t len)
{
    const char *n = NULL;
    const void *v = NULL;
    size_t l = 12345;

    assert_int_equal(hr_hdrs_at(h, idx, &n, &v, &l), 0);
    assert_string_equal(n, name);
    assert_int_equal(l, len);
    if (len)
        assert_memory_equal(v, value, len);
    /* Values are NUL-terminated after their bytes. */
    assert_int_equal(((const char *)v)[len], '\0');
}

static void test_hdrs_new_list_is_empty(void **state)
{
    struct hr_hdrs *h = hr_hdrs_new();
    const char *n;
    const void *v;
    size_t l;
    char buf[16];

    (void)state;
    assert_int_equal(hr_hdrs_count(h), 0);
    assert_int_equal(hr_hdrs_at(h, 0, &n, &v, &l), -1);
    assert_null(hr_hdrs_str(h, "x", buf, sizeof(buf)));
    hr_hdrs_free(h);
}

static void test_hdrs_null_list_reads_as_empty(void **state)
{
    const char *n;
    const void *v;
    size_t l;
    char buf[16];

    (void)state;
    assert_int_equal(hr_hdrs_count(NULL), 0);
    assert_int_equal(hr_hdrs_at(NULL, 0, &n, &v, &l), -1);
    assert_null(hr_hdrs_str(NULL, "x", buf, sizeof(buf)));
    hr_hdrs_free(NULL);
}

static void test_hdrs_from_null_msg_is_empty(void **state)
{
    struct hr_hdrs *h = hr_hdrs_from_msg(NULL);

    (void)state;
    assert_non_null(h);
    assert_int_equal(hr_hdrs_count(h), 0);
    hr_hdrs_free(h);
}

static void test_hdrs_add_appends_in_order_and_keeps_repeats(void **state)
{
    struct hr_hdrs *h = hr_hdrs_new();
    const char *n;
    const void *v;
    size_t l;

    (void)state;
    hr_hdrs_add(h, "a", "1", 1);
    hr_hdrs_add(h, "b", "22", 2);
    hr_hdrs_add(h, "a", "333", 3);
    assert_int_equal(hr_hdrs_count(h), 3);
    assert_hdr(h, 0, "a", "1", 1);
    assert_hdr(h, 1, "b", "22", 2);
    assert_hdr(h, 2, "a", "333", 3);
    assert_int_equal(hr_hdrs_at(h, 3, &n, &v, &l), -1);
    assert_int_equal(hr_hdrs_at(h, SIZE_MAX, &n, &v, &l), -1);
    hr_hdrs_free(h);
}

static void test_hdrs_add_copies_name_and_value(void **state)
{
    struct hr_hdrs *h = hr_hdrs_new();
    char name[8] = "key", value[8] = "val";

    (void)state;
    hr_hdrs_add(h, name, value, 3);
    memset(name, 'X', sizeof(name) - 1);
    memset(value, 'Y', sizeof(value) - 1);
    assert_hdr(h, 0, "key", "val", 3);
    hr_hdrs_free(h);
}

static void test_hdrs_add_empty_value(void **state)
{
    struct hr_hdrs *h = hr_hdrs_new();
    char buf[4] = "zzz";

    (void)state;
    hr_hdrs_add(h, "empty", NULL, 0);
    hr_hdrs_add(h, "also", "", 0);
    assert_hdr(h, 0, "empty", "", 0);
    assert_hdr(h, 1, "also", "", 0);
    assert_string_equal(hr_hdrs_str(h, "empty", buf, sizeof(buf)), "");
    hr_hdrs_free(h);
}

static void test_hdrs_str_returns_the_last_of_a_name(void **state)
{
    struct hr_hdrs *h = hr_hdrs_new();
    char buf[16];

    (void)state;
    hr_hdrs_add(h, "attempt", "1", 1);
    hr_hdrs_add(h, "other", "x", 1);
    hr_hdrs_add(h, "attempt", "2", 1);
    hr_hdrs_add(h, "other2", "y", 1);
    assert_ptr_equal(hr_hdrs_str(h, "attempt", buf, sizeof(buf)), buf);
    assert_string_equal(buf, "2");
    assert_string_equal(hr_hdrs_str(h, "other", buf, sizeof(buf)), "x");
    /* Names match exactly: no prefixes, no case folding. */
    assert_null(hr_hdrs_str(h, "attemp", buf, sizeof(buf)));
    assert_null(hr_hdrs_str(h, "Attempt", buf, sizeof(buf)));
    assert_null(hr_hdrs_str(h, "absent", buf, sizeof(buf)));
    hr_hdrs_free(h);
}

static void test_hdrs_str_too_long_for_buffer_is_null(void **state)
{
    struct hr_hdrs *h = hr_hdrs_new();
    char buf[8];

    (void)state;
    hr_hdrs_add(h, "k", "1234567", 7);
    hr_hdrs_add(h, "l", "12345678", 8);
    /* 7 bytes and the NUL fit in 8. */
    assert_string_equal(hr_hdrs_str(h, "k", buf, sizeof(buf)), "1234567");
    assert_null(hr_hdrs_str(h, "k", buf, 7));
    assert_null(hr_hdrs_str(h, "l", buf, sizeof(buf)));
    assert_null(hr_hdrs_str(h, "k", buf, 0));
    hr_hdrs_free(h);
}

static void test_hdrs_set_replaces_every_same_named_and_appends(void **state)
{
    struct hr_hdrs *h = hr_hdrs_new();
    char buf[16];

    (void)state;
    hr_hdrs_add(h, "x", "1", 1);
    hr_hdrs_add(h, "y", "keep", 4);
    hr_hdrs_add(h, "x", "2", 1);
    hr_hdrs_add(h, "z", "last", 4);
    hr_hdrs_set(h, "x", "new");
    assert_int_equal(hr_hdrs_count(h), 3);
    assert_hdr(h, 0, "y", "keep", 4);
    assert_hdr(h, 1, "z", "last", 4);
    /* Appended at the end, not put back in place. */
    assert_hdr(h, 2, "x", "new", 3);
    assert_string_equal(hr_hdrs_str(h, "x", buf, sizeof(buf)), "new");
    /* Setting a name that is absent only appends. */
    hr_hdrs_set(h, "w", "");
    assert_int_equal(hr_hdrs_count(h), 4);
    assert_hdr(h, 3, "w", "", 0);
    hr_hdrs_free(h);
}

static void test_hdrs_remove_drops_every_same_named(void **state)
{
    struct hr_hdrs *h = hr_hdrs_new();
    char buf[16];

    (void)state;
    hr_hdrs_add(h, "r", "1", 1);
    hr_hdrs_add(h, "a", "A", 1);
    hr_hdrs_add(h, "r", "2", 1);
    hr_hdrs_add(h, "r", "3", 1);
    hr_hdrs_add(h, "b", "B", 1);
    hr_hdrs_add(h, "r", "4", 1);
    hr_hdrs_remove(h, "r");
    assert_int_equal(hr_hdrs_count(h), 2);
    assert_hdr(h, 0, "a", "A", 1);
    assert_hdr(h, 1, "b", "B", 1);
    assert_null(hr_hdrs_str(h, "r", buf, sizeof(buf)));
    /* Removing an absent name changes nothing. */
    hr_hdrs_remove(h, "r");
    hr_hdrs_remove(h, "zzz");
    assert_int_equal(hr_hdrs_count(h), 2);
    hr_hdrs_remove(h, "a");
    hr_hdrs_remove(h, "b");
    assert_int_equal(hr_hdrs_count(h), 0);
    /* The list stays usable once emptied. */
    hr_hdrs_add(h, "c", "C", 1);
    assert_hdr(h, 0, "c", "C", 1);
    hr_hdrs_free(h);
}

static void test_hdrs_binary_values_keep_nul_bytes_and_length(void **state)
{
    static const unsigned char bin[] = {0x00, 'a', 0x00, 0xff, 0x00};
    struct hr_hdrs *h = hr_hdrs_new();
    char buf[16];

    (void)state;
    hr_hdrs_add(h, "bin", bin, sizeof(bin));
    hr_hdrs_add(h, "after", "x", 1);
    assert_hdr(h, 0, "bin", bin, sizeof(bin));
    /* As a C string the value ends at its first NUL. */
    assert_string_equal(hr_hdrs_str(h, "bin", buf, sizeof(buf)), "");
    /* Still there after other headers are removed around it. */
    hr_hdrs_remove(h, "after");
    assert_hdr(h, 0, "bin", bin, sizeof(bin));
    hr_hdrs_free(h);
}

static void test_hdrs_grow_past_initial_capacity(void **state)
{
    struct hr_hdrs *h = hr_hdrs_new();
    char name[16], buf[16];

    (void)state;
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        hr_hdrs_add(h, name, name, strlen(name));
    }
    assert_int_equal(hr_hdrs_count(h), 100);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        assert_hdr(h, (size_t)i, name, name, strlen(name));
    }
    assert_string_equal(hr_hdrs_str(h, "h99", buf, sizeof(buf)), "h99");
    hr_hdrs_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdrs_new_list_is_empty),
        cmocka_unit_test(test_hdrs_null_list_reads_as_empty),
        cmocka_unit_test(test_hdrs_from_null_msg_is_empty),
        cmocka_unit_test(test_hdrs_add_appends_in_order_and_keeps_repeats),
        cmocka_unit_test(test_hdrs_add_copies_name_and_value),
        cmocka_unit_test(test_hdrs_add_empty_value),
        cmocka_unit_test(test_hdrs_str_returns_the_last_of_a_name),
        cmocka_unit_test(test_hdrs_str_too_long_for_buffer_is_null),
        cmocka_unit_test(test_hdrs_set_replaces_every_same_named_and_appends),
        cmocka_unit_test(test_hdrs_remove_drops_every_same_named),
        cmocka_unit_test(test_hdrs_binary_values_keep_nul_bytes_and_length),
        cmocka_unit_test(test_hdrs_grow_past_initial_capacity),
    };

    return cmocka_run_group_tests_name("hdrs", tests, NULL, NULL);
}
