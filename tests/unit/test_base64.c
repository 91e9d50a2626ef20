/*
 * Unit tests for hr_base64: RFC 4648 §10 vectors both ways, binary round
 * trips, and what decoding refuses (bad length, bad characters, padding
 * anywhere but at the end) or tolerates (surrounding white space).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hr_base64.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

static const struct {
    const char *plain;
    const char *encoded;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

/* Decode @s (NUL-terminated) and expect a refusal. */
static void assert_refused(const char *s)
{
    size_t len = 12345;
    void *out = hr_base64_decode(s, strlen(s), &len);

    if (out) {
        free(out);
        fail_msg("'%s' was decoded (%zu bytes), want NULL", s, len);
    }
}

static void test_base64_encodes_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        size_t len = 999;
        char *enc =
            hr_base64_encode(rfc4648[i].plain, strlen(rfc4648[i].plain), &len);

        assert_non_null(enc);
        assert_string_equal(enc, rfc4648[i].encoded);
        assert_int_equal(len, strlen(rfc4648[i].encoded));
        free(enc);
    }
}

static void test_base64_decodes_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        size_t len = 999;
        char *dec = hr_base64_decode(rfc4648[i].encoded,
                                     strlen(rfc4648[i].encoded), &len);

        if (!dec)
            fail_msg("'%s' not decoded", rfc4648[i].encoded);
        assert_int_equal(len, strlen(rfc4648[i].plain));
        assert_memory_equal(dec, rfc4648[i].plain, len);
        /* One NUL byte follows the data. */
        assert_int_equal(dec[len], '\0');
        free(dec);
    }
}

static void test_base64_encode_out_len_is_optional(void **state)
{
    char *enc = hr_base64_encode("foob", 4, NULL);

    (void)state;
    assert_string_equal(enc, "Zm9vYg==");
    free(enc);
}

static void test_base64_binary_with_nul_bytes_round_trips(void **state)
{
    static const unsigned char nuls[] = {0x00, 0x01, 0x00, 0xff, 0xfe,
                                         0x00, 0x00, 0x80, 0x7f, 0x00};
    unsigned char all[256];
    size_t len;
    char *enc;
    unsigned char *dec;

    (void)state;
    /* Every length up to the full array: each padding case ends in NUL. */
    for (size_t n = 0; n <= sizeof(nuls); n++) {
        enc = hr_base64_encode(nuls, n, NULL);
        assert_int_equal(strlen(enc), 4 * ((n + 2) / 3));
        dec = hr_base64_decode(enc, strlen(enc), &len);
        assert_non_null(dec);
        assert_int_equal(len, n);
        if (n)
            assert_memory_equal(dec, nuls, n);
        free(dec);
        free(enc);
    }
    for (size_t i = 0; i < sizeof(all); i++)
        all[i] = (unsigned char)i;
    enc = hr_base64_encode(all, sizeof(all), &len);
    assert_int_equal(len, 344);
    dec = hr_base64_decode(enc, len, &len);
    assert_non_null(dec);
    assert_int_equal(len, sizeof(all));
    assert_memory_equal(dec, all, sizeof(all));
    free(dec);
    free(enc);
}

static void test_base64_decode_reads_only_len_chars(void **state)
{
    size_t len;
    char *dec;

    (void)state;
    /* "Zm9vYmFy" cut to its first 4 characters: "foo" only. */
    dec = hr_base64_decode("Zm9vYmFy", 4, &len);
    assert_non_null(dec);
    assert_int_equal(len, 3);
    assert_memory_equal(dec, "foo", 3);
    free(dec);
}

static void test_base64_decode_refuses_bad_length(void **state)
{
    (void)state;
    assert_refused("Z");
    assert_refused("Zg");
    assert_refused("Zg=");
    assert_refused("Zm9");
    assert_refused("Zm9vY");
    assert_refused("Zm9vYg=");
    assert_refused("Zm9vYg===");
}

static void test_base64_decode_refuses_bad_characters(void **state)
{
    (void)state;
    assert_refused("Zm9*");
    assert_refused("Zm9v!A==");
    /* base64url's alphabet is not standard base64. */
    assert_refused("-_-_");
    assert_refused("Zm9v\x80\x81\x82\x83");
    /* White space inside the data. */
    assert_refused("Zm9v Zm8");
    assert_refused("Zm\n9v");
    assert_refused("Zm\t9vYmFy");
}

static void test_base64_decode_refuses_embedded_nul(void **state)
{
    size_t len;

    (void)state;
    assert_null(hr_base64_decode("Zm9v\0mFy", 8, &len));
    assert_null(hr_base64_decode("\0\0\0\0", 4, &len));
}

static void test_base64_decode_refuses_padding_in_the_middle(void **state)
{
    (void)state;
    assert_refused("Zg==Zm8=");
    assert_refused("Zg==Zm9v");
    assert_refused("Zm=v");
    assert_refused("=Zm9");
    assert_refused("Z===");
    assert_refused("====");
    assert_refused("Zm9v====");
    assert_refused("Zm9vY===");
}

static void test_base64_decode_accepts_surrounding_white_space(void **state)
{
    static const char *const spaced[] = {
        " Zm9vYg==",    "Zm9vYg== ",         "\tZm9vYg==\n",
        "Zm9vYg==\r\n", "\r\n  Zm9vYg==\t ", "\n\n\nZm9vYg==",
    };
    size_t len;
    char *dec;

    (void)state;
    for (size_t i = 0; i < sizeof(spaced) / sizeof(spaced[0]); i++) {
        dec = hr_base64_decode(spaced[i], strlen(spaced[i]), &len);
        if (!dec)
            fail_msg("'%s' not decoded", spaced[i]);
        assert_int_equal(len, 4);
        assert_memory_equal(dec, "foob", 4);
        free(dec);
    }
    /* Only white space: empty data. */
    dec = hr_base64_decode(" \r\n\t", 4, &len);
    assert_non_null(dec);
    assert_int_equal(len, 0);
    free(dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_encodes_rfc4648_vectors),
        cmocka_unit_test(test_base64_decodes_rfc4648_vectors),
        cmocka_unit_test(test_base64_encode_out_len_is_optional),
        cmocka_unit_test(test_base64_binary_with_nul_bytes_round_trips),
        cmocka_unit_test(test_base64_decode_reads_only_len_chars),
        cmocka_unit_test(test_base64_decode_refuses_bad_length),
        cmocka_unit_test(test_base64_decode_refuses_bad_characters),
        cmocka_unit_test(test_base64_decode_refuses_embedded_nul),
        cmocka_unit_test(test_base64_decode_refuses_padding_in_the_middle),
        cmocka_unit_test(test_base64_decode_accepts_surrounding_white_space),
    };

    return cmocka_run_group_tests_name("base64", tests, NULL, NULL);
}
