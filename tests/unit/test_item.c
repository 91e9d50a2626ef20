/* hr_item's destination list: one name once, and a bounded length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hr_worker.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static void test_a_destination_is_listed_once(void **state)
{
    struct hr_item item;

    (void)state;
    memset(&item, 0, sizeof(item));
    assert_string_equal(hr_item_destination(&item), "");
    assert_true(hr_item_add_destination(&item, "webhook:a"));
    assert_true(hr_item_add_destination(&item, "webhook:b"));
    assert_true(hr_item_add_destination(&item, "webhook:a"));
    assert_true(hr_item_add_destination(&item, "webhook:b"));
    /* a name that only starts or ends like a listed one is another */
    assert_true(hr_item_add_destination(&item, "webhook:"));
    assert_true(hr_item_add_destination(&item, "webhook:aa"));
    assert_string_equal(hr_item_destination(&item),
                        "webhook:a,webhook:b,webhook:,webhook:aa");
    free(item.destination);
}

static void test_a_full_list_keeps_its_first_names(void **state)
{
    struct hr_item item;
    char name[40];
    int added = 0;

    (void)state;
    memset(&item, 0, sizeof(item));
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "webhook:number-%d", i);
        added += hr_item_add_destination(&item, name);
    }
    assert_true(added > 1 && added < 20);
    assert_true(strlen(hr_item_destination(&item)) < HR_ITEM_DEST_MAX);
    assert_non_null(strstr(hr_item_destination(&item), "webhook:number-0,"));
    free(item.destination);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_destination_is_listed_once),
        cmocka_unit_test(test_a_full_list_keeps_its_first_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
