/*
 * Unit tests for hr_strmap: byte-string keys to dense, stable indices, with
 * growth, binary keys, clear-and-reuse and keys larger than an arena chunk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hr_strmap.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define MANY_KEYS 50000

static size_t put_str(struct hr_strmap *map, const char *s, int *added)
{
    return hr_strmap_put(map, s, strlen(s), added);
}

static size_t get_str(const struct hr_strmap *map, const char *s)
{
    return hr_strmap_get(map, s, strlen(s));
}

static int key_name(char *buf, size_t size, size_t i)
{
    return snprintf(buf, size, "user-%zu", i);
}

static void test_empty_map_finds_nothing(void **state)
{
    struct hr_strmap map;

    (void)state;
    hr_strmap_init(&map);
    assert_int_equal(map.n, 0);
    assert_true(get_str(&map, "a") == SIZE_MAX);
    assert_true(hr_strmap_get(&map, "", 0) == SIZE_MAX);
    hr_strmap_release(&map);
    /* release leaves an empty, reusable map */
    assert_true(get_str(&map, "a") == SIZE_MAX);
    hr_strmap_release(&map);
}

static void test_put_then_get_returns_the_same_index(void **state)
{
    struct hr_strmap map;
    int added = -1;

    (void)state;
    hr_strmap_init(&map);
    assert_int_equal(put_str(&map, "alice", &added), 0);
    assert_int_equal(added, 1);
    assert_int_equal(put_str(&map, "bob", &added), 1);
    assert_int_equal(added, 1);
    assert_int_equal(get_str(&map, "alice"), 0);
    assert_int_equal(get_str(&map, "bob"), 1);
    assert_true(get_str(&map, "carol") == SIZE_MAX);
    assert_int_equal(map.n, 2);
    hr_strmap_release(&map);
}

static void test_putting_an_existing_key_does_not_add(void **state)
{
    struct hr_strmap map;
    int added = -1;

    (void)state;
    hr_strmap_init(&map);
    assert_int_equal(put_str(&map, "k", &added), 0);
    assert_int_equal(put_str(&map, "k", &added), 0);
    assert_int_equal(added, 0);
    assert_int_equal(map.n, 1);
    /* added may be NULL */
    assert_int_equal(put_str(&map, "k", NULL), 0);
    assert_int_equal(put_str(&map, "l", NULL), 1);
    assert_int_equal(map.n, 2);
    hr_strmap_release(&map);
}

static void test_indices_are_dense_in_insertion_order(void **state)
{
    struct hr_strmap map;
    char buf[32];

    (void)state;
    hr_strmap_init(&map);
    for (size_t i = 0; i < 100; i++) {
        key_name(buf, sizeof(buf), i);
        assert_int_equal(put_str(&map, buf, NULL), i);
        /* a repeat of an earlier key in between changes nothing */
        key_name(buf, sizeof(buf), i / 2);
        assert_int_equal(put_str(&map, buf, NULL), i / 2);
    }
    assert_int_equal(map.n, 100);
    for (size_t i = 0; i < 100; i++) {
        key_name(buf, sizeof(buf), i);
        assert_string_equal(hr_strmap_key(&map, i), buf);
    }
    hr_strmap_release(&map);
}

static void test_key_is_a_copy_of_the_callers_buffer(void **state)
{
    struct hr_strmap map;
    char buf[16] = "transient";

    (void)state;
    hr_strmap_init(&map);
    assert_int_equal(put_str(&map, buf, NULL), 0);
    memset(buf, 'x', sizeof(buf) - 1);
    assert_string_equal(hr_strmap_key(&map, 0), "transient");
    assert_int_equal(get_str(&map, "transient"), 0);
    assert_true(get_str(&map, buf) == SIZE_MAX);
    hr_strmap_release(&map);
}

static void test_indices_stay_stable_while_growing_past_thousands(void **state)
{
    struct hr_strmap map;
    char buf[32];
    const char *first_key = NULL;

    (void)state;
    hr_strmap_init(&map);
    for (size_t i = 0; i < MANY_KEYS; i++) {
        int added = 0;

        key_name(buf, sizeof(buf), i);
        assert_int_equal(put_str(&map, buf, &added), i);
        assert_int_equal(added, 1);
        if (!i)
            first_key = hr_strmap_key(&map, 0);
    }
    assert_int_equal(map.n, MANY_KEYS);
    assert_true(map.nslots >= 2 * (size_t)MANY_KEYS);
    for (size_t i = 0; i < MANY_KEYS; i++) {
        key_name(buf, sizeof(buf), i);
        assert_int_equal(get_str(&map, buf), i);
        assert_string_equal(hr_strmap_key(&map, i), buf);
    }
    key_name(buf, sizeof(buf), MANY_KEYS);
    assert_true(get_str(&map, buf) == SIZE_MAX);
    /* stored keys never move: the arena grows in new chunks */
    assert_ptr_equal(hr_strmap_key(&map, 0), first_key);
    hr_strmap_release(&map);
}

static void test_keys_with_nul_bytes_are_distinct_by_length(void **state)
{
    static const char a0b[] = {'a', '\0', 'b'};
    static const char a0c[] = {'a', '\0', 'c'};
    static const char a00[] = {'a', '\0', '\0'};
    struct hr_strmap map;

    (void)state;
    hr_strmap_init(&map);
    assert_int_equal(hr_strmap_put(&map, a0b, sizeof(a0b), NULL), 0);
    assert_int_equal(hr_strmap_put(&map, a0c, sizeof(a0c), NULL), 1);
    assert_int_equal(hr_strmap_put(&map, "a", 1, NULL), 2);
    assert_int_equal(hr_strmap_put(&map, a00, sizeof(a00), NULL), 3);
    assert_int_equal(hr_strmap_put(&map, "a", 2, NULL), 4); /* "a\0" */
    assert_int_equal(map.n, 5);
    assert_int_equal(hr_strmap_get(&map, a0b, sizeof(a0b)), 0);
    assert_int_equal(hr_strmap_get(&map, a0c, sizeof(a0c)), 1);
    assert_int_equal(hr_strmap_get(&map, "a", 1), 2);
    assert_int_equal(hr_strmap_get(&map, a00, sizeof(a00)), 3);
    assert_int_equal(hr_strmap_get(&map, "a", 2), 4);
    /* the stored copy keeps every byte and ends with one more NUL */
    assert_memory_equal(hr_strmap_key(&map, 1), a0c, sizeof(a0c));
    assert_int_equal(hr_strmap_key(&map, 1)[sizeof(a0c)], '\0');
    assert_int_equal(map.key_lens[1], sizeof(a0c));
    hr_strmap_release(&map);
}

static void test_empty_key_is_a_key(void **state)
{
    struct hr_strmap map;
    int added = 0;

    (void)state;
    hr_strmap_init(&map);
    assert_int_equal(hr_strmap_put(&map, "", 0, &added), 0);
    assert_int_equal(added, 1);
    assert_int_equal(hr_strmap_put(&map, "", 0, &added), 0);
    assert_int_equal(added, 0);
    assert_int_equal(hr_strmap_get(&map, "", 0), 0);
    assert_string_equal(hr_strmap_key(&map, 0), "");
    assert_true(hr_strmap_get(&map, "x", 1) == SIZE_MAX);
    hr_strmap_release(&map);
}

/* Keys that differ only in the last byte, with a shared long prefix. */
static void test_similar_keys_do_not_collide(void **state)
{
    struct hr_strmap map;
    char buf[300];

    (void)state;
    hr_strmap_init(&map);
    memset(buf, 'p', sizeof(buf));
    for (size_t i = 0; i < 256; i++) {
        buf[sizeof(buf) - 1] = (char)i;
        assert_int_equal(hr_strmap_put(&map, buf, sizeof(buf), NULL), i);
    }
    for (size_t i = 0; i < 256; i++) {
        buf[sizeof(buf) - 1] = (char)i;
        assert_int_equal(hr_strmap_get(&map, buf, sizeof(buf)), i);
    }
    hr_strmap_release(&map);
}

static void test_clear_empties_the_map_and_restarts_indices(void **state)
{
    struct hr_strmap map;
    char buf[32];
    int added = 0;

    (void)state;
    hr_strmap_init(&map);
    for (size_t i = 0; i < 5000; i++) {
        key_name(buf, sizeof(buf), i);
        put_str(&map, buf, NULL);
    }
    hr_strmap_clear(&map);
    assert_int_equal(map.n, 0);
    for (size_t i = 0; i < 5000; i++) {
        key_name(buf, sizeof(buf), i);
        assert_true(get_str(&map, buf) == SIZE_MAX);
    }
    /* reuse: new keys start at 0, old keys come back as new */
    assert_int_equal(put_str(&map, "fresh", &added), 0);
    assert_int_equal(added, 1);
    assert_int_equal(put_str(&map, "user-7", &added), 1);
    assert_int_equal(added, 1);
    assert_string_equal(hr_strmap_key(&map, 1), "user-7");
    assert_int_equal(get_str(&map, "fresh"), 0);
    assert_true(get_str(&map, "user-8") == SIZE_MAX);
    hr_strmap_release(&map);
}

/* Many rounds, as the worker does once per batch; ASan checks the arena. */
static void test_clear_and_reuse_over_many_rounds(void **state)
{
    struct hr_strmap map;
    char buf[64];

    (void)state;
    hr_strmap_init(&map);
    for (size_t round = 0; round < 20; round++) {
        size_t n = 1000 + round * 500;

        for (size_t i = 0; i < n; i++) {
            snprintf(buf, sizeof(buf), "r%zu-key-%zu", round, i);
            assert_int_equal(put_str(&map, buf, NULL), i);
        }
        assert_int_equal(map.n, n);
        for (size_t i = 0; i < n; i += 97) {
            snprintf(buf, sizeof(buf), "r%zu-key-%zu", round, i);
            assert_int_equal(get_str(&map, buf), i);
            assert_string_equal(hr_strmap_key(&map, i), buf);
        }
        if (round) {
            snprintf(buf, sizeof(buf), "r%zu-key-0", round - 1);
            assert_true(get_str(&map, buf) == SIZE_MAX);
        }
        hr_strmap_clear(&map);
    }
    hr_strmap_release(&map);
}

static char *long_key(size_t len, char fill)
{
    char *key = malloc(len);

    assert_non_null(key);
    for (size_t i = 0; i < len; i++)
        key[i] = (char)(fill + (char)(i % 7));
    return key;
}

static void test_keys_longer_than_64_kib_are_stored_whole(void **state)
{
    const size_t len = 200 * 1024;
    char *big = long_key(len, 'a');
    char *other = long_key(len, 'a');
    struct hr_strmap map;

    (void)state;
    other[len - 1] ^= 1;
    hr_strmap_init(&map);
    assert_int_equal(put_str(&map, "small", NULL), 0);
    assert_int_equal(hr_strmap_put(&map, big, len, NULL), 1);
    assert_int_equal(put_str(&map, "after", NULL), 2);
    assert_int_equal(hr_strmap_put(&map, other, len, NULL), 3);
    assert_int_equal(hr_strmap_put(&map, big, len, NULL), 1);
    assert_int_equal(hr_strmap_get(&map, big, len), 1);
    assert_int_equal(hr_strmap_get(&map, other, len), 3);
    assert_true(hr_strmap_get(&map, big, len - 1) == SIZE_MAX);
    assert_memory_equal(hr_strmap_key(&map, 1), big, len);
    assert_int_equal(hr_strmap_key(&map, 1)[len], '\0');
    assert_string_equal(hr_strmap_key(&map, 0), "small");
    assert_string_equal(hr_strmap_key(&map, 2), "after");
    hr_strmap_release(&map);
    free(big);
    free(other);
}

/* A long key as the very first entry makes the kept first chunk large;
 * after clear, small and long keys must still fit. */
static void test_long_first_key_then_clear_and_reuse(void **state)
{
    const size_t len = 70 * 1024;
    char *big = long_key(len, 'k');
    struct hr_strmap map;
    char buf[32];

    (void)state;
    hr_strmap_init(&map);
    assert_int_equal(hr_strmap_put(&map, big, len, NULL), 0);
    hr_strmap_clear(&map);
    for (size_t i = 0; i < 20000; i++) {
        key_name(buf, sizeof(buf), i);
        assert_int_equal(put_str(&map, buf, NULL), i);
    }
    assert_int_equal(hr_strmap_put(&map, big, len, NULL), 20000);
    assert_int_equal(hr_strmap_put(&map, big, len - 1, NULL), 20001);
    hr_strmap_clear(&map);
    assert_int_equal(hr_strmap_put(&map, big, len - 1, NULL), 0);
    assert_int_equal(hr_strmap_put(&map, big, len, NULL), 1);
    assert_memory_equal(hr_strmap_key(&map, 1), big, len);
    assert_int_equal(get_str(&map, "user-1"), SIZE_MAX);
    hr_strmap_release(&map);
    free(big);
}

/* Keys that together fill several 64 KiB arena chunks exactly at edges. */
static void test_keys_straddling_chunk_boundaries_stay_intact(void **state)
{
    struct hr_strmap map;
    char key[1000];

    (void)state;
    hr_strmap_init(&map);
    for (size_t i = 0; i < 400; i++) {
        size_t len = 500 + i % 400;

        memset(key, (int)('A' + i % 26), len);
        snprintf(key, sizeof(key), "%zu:", i);
        key[strlen(key)] = '#'; /* keep the full length, no NUL inside */
        assert_int_equal(hr_strmap_put(&map, key, len, NULL), i);
    }
    for (size_t i = 0; i < 400; i++) {
        size_t len = 500 + i % 400;

        memset(key, (int)('A' + i % 26), len);
        snprintf(key, sizeof(key), "%zu:", i);
        key[strlen(key)] = '#';
        assert_int_equal(hr_strmap_get(&map, key, len), i);
        assert_memory_equal(hr_strmap_key(&map, i), key, len);
        assert_int_equal(hr_strmap_key(&map, i)[len], '\0');
    }
    hr_strmap_release(&map);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_map_finds_nothing),
        cmocka_unit_test(test_put_then_get_returns_the_same_index),
        cmocka_unit_test(test_putting_an_existing_key_does_not_add),
        cmocka_unit_test(test_indices_are_dense_in_insertion_order),
        cmocka_unit_test(test_key_is_a_copy_of_the_callers_buffer),
        cmocka_unit_test(test_indices_stay_stable_while_growing_past_thousands),
        cmocka_unit_test(test_keys_with_nul_bytes_are_distinct_by_length),
        cmocka_unit_test(test_empty_key_is_a_key),
        cmocka_unit_test(test_similar_keys_do_not_collide),
        cmocka_unit_test(test_clear_empties_the_map_and_restarts_indices),
        cmocka_unit_test(test_clear_and_reuse_over_many_rounds),
        cmocka_unit_test(test_keys_longer_than_64_kib_are_stored_whole),
        cmocka_unit_test(test_long_first_key_then_clear_and_reuse),
        cmocka_unit_test(test_keys_straddling_chunk_boundaries_stay_intact),
    };

    return cmocka_run_group_tests_name("strmap", tests, NULL, NULL);
}
