/*
 * Content patterns over change documents (SPEC section 8, match.pattern):
 * the EventBridge / Lambda FilterCriteria language, compiled once into a
 * tree and matched without allocating.
 *
 * The language, as implemented here:
 *
 * - A pattern is a non-empty JSON object. Every key must match the field of
 *   the same name in the document (AND). A value that is an object is a
 *   nested pattern; a value that is an array is a leaf: a non-empty list of
 *   alternatives (OR).
 * - Alternatives: a string, a number, true, false or null match that exact
 *   value. Strings never equal numbers; numbers compare numerically (5
 *   matches 5.0). null matches a field that is present and null, never a
 *   missing one; "" matches the empty string only.
 * - Operator objects, one operator each:
 *   {"prefix": "s"} / {"suffix": "s"}, also with
 *     {"equals-ignore-case": "s"} as operand; strings only.
 *   {"equals-ignore-case": "s"}: ASCII letters fold, other bytes are exact.
 *   {"wildcard": "a*b"}: '*' is any run of bytes, "\*" a literal star, "\\"
 *     a literal backslash; "**" and other escapes are compile errors.
 *   {"numeric": ["=", n]}, [">", n], [">=", n], ["<", n], ["<=", n], or a
 *     range [">" or ">=", lo, "<" or "<=", hi] with lo < hi; JSON numbers
 *     only.
 *   {"exists": true}: the field has a value (null counts; an object or an
 *     empty array does not, as EventBridge only sees leaf values).
 *     {"exists": false}: the opposite, including a missing field.
 *   {"anything-but": v}: v is a string, a number, a non-empty list of only
 *     strings or only numbers, or {"prefix": "s"}, {"suffix": "s"},
 *     {"equals-ignore-case": "s" or ["s", ...]}, {"wildcard": "p" or [..]}.
 *     Matches any present value not excluded (null and booleans included);
 *     never a missing field.
 *   {"cidr": "10.0.0.0/24"}: a string holding an IPv4 or IPv6 address in
 *     that network.
 * - "$or": [pattern, pattern, ...] (at least two objects) at any object
 *   level: that level matches if its other keys match and any alternative
 *   matches the same object. Operator names cannot be field names inside
 *   "$or" alternatives.
 * - Arrays in the document: a leaf matches if any element matches (nested
 *   arrays are flattened); a nested pattern matches if any one element
 *   matches all of it, so fields are never combined across elements.
 */
#ifndef FANOUT_PATTERN_H
#define FANOUT_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "hr_compat.h"

struct fanout_pattern;

/**
 * Compile the pattern @pattern (borrowed; the result keeps its own copies).
 *
 * Returns a new pattern for fanout_pattern_free(), or NULL with @errstr
 * naming the path and the problem ("new.kind[1]: unknown operator 'prefx'",
 * "new.size[0]: numeric needs an operator and a number", "(root): pattern
 * must be a JSON object"). Thread-safe: it touches no shared state.
 */
struct fanout_pattern *fanout_pattern_compile(const json_t *pattern,
                                              char *errstr,
                                              size_t errstr_size) HR_MUST_CHECK;

/**
 * Whether the document @doc (borrowed; normally an object) matches @p. A
 * non-object @doc has no fields, so only "exists": false can hold for it.
 * Allocates nothing. Thread-safe: many threads may match one pattern.
 */
bool fanout_pattern_match(const struct fanout_pattern *p, const json_t *doc);

/** Free @p. NULL is a no-op. */
void fanout_pattern_free(struct fanout_pattern *p);

#endif
