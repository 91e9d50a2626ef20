/*
 * Exact decimals: decimal number texts (DynamoDB N values, MongoDB
 * $numberDecimal) to JSON without silent rounding. An integer that fits
 * int64 becomes a JSON integer (-0 becomes 0, "1E+2" becomes 100); a
 * non-integer becomes a JSON real only when its text survives a round trip
 * through a double (text -> nearest double -> same digits back, e.g. "0.1",
 * "0.30000000000000004"); anything else stays the original string
 * ("18446744073709551621", "1e400", "12345678901234567890.5").
 */
#ifndef FANOUT_DECIMAL_H
#define FANOUT_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/**
 * @text ([+-]digits[.digits][(e|E)[+-]digits], no spaces) as a new JSON
 * value by the rules above, or NULL when @text is not such a number (or on
 * allocation failure). Thread-safe; assumes the C locale.
 */
json_t *fanout_decimal_to_json(const char *text);

/** Whether two number texts denote the same value ("100" and "1E2");
 *  texts that do not parse, or are too long to compare, compare as bytes. */
bool fanout_decimal_equal(const char *a, const char *b);

/**
 * How many JSON numbers in the @len bytes of JSON text @json (outside
 * strings) have more than 17 significant digits, which a double cannot
 * hold exactly: a JSON parser rounds them (or, for integers beyond int64,
 * refuses them). One pass over the bytes, no allocation; any input is
 * safe (invalid JSON gives some count).
 */
size_t fanout_decimal_count_wide(const void *json, size_t len);

#endif
