/*
 * Content patterns over change documents (SPEC section 8, match.pattern):
 * the EventBridge / Lambda FilterCriteria language of AWS event-ruler,
 * compiled once into a tree and matched without allocating.
 *
 * Where fanout differs from event-ruler, on purpose (README "Patterns"):
 *
 * - Duplicate keys are refused, where event-ruler keeps the last one:
 *   {"x": ["y"], "x": ["z"]} fails --check-config (the config loader
 *   rejects duplicate keys in the whole file, naming the line, the key,
 *   where it is and the rule: "key 'x' given twice in
 *   rules[1].match.pattern ('dupe')").
 * - One field given by a dotted key and a nested object is refused, naming
 *   the path: {"a.b": [1], "a": {"b": [2]}} -> "a.b: field 'a.b' is given
 *   twice ..." (event-ruler keeps the last one).
 * - A path written as nested objects matches nested objects only:
 *   {"a": {"b": ["1"]}} does not match the document {"a.b": "1"}; event-
 *   ruler flattens both to "a.b". A key written with dots matches every
 *   spelling (see "Dotted keys" below). This saves a lookup per nested
 *   field on every document.
 * - Numbers that read as zero but may not be: {"numeric": ["=", 1E-325]}
 *   is refused (event-ruler refuses it too), and so is 0.0: once parsed a
 *   decimal zero cannot be told from an underflow, so zero must be
 *   written 0. Denormals (1E-310) are refused as not representable.
 * - The numeric range is the whole double range, where event-ruler's is
 *   about +-5e9 with 6 decimals: {"numeric": [">=", 1763769600000]} works.
 * - A "$or" inside a field, outside a "$or" alternative that also names
 *   that field's own fields, is refused as ambiguous:
 *   {"a": {"$or": [{"b": [1]}, {"c": [1]}]}, "$or": [{"a": {"b": [2]}},
 *   {"k": [1]}]}; so are two "$or" for one object (via a dotted key), and
 *   a pattern whose "$or" overrides need more than 10,000 field copies.
 *
 * "$or" beside the same field follows event-ruler: a field inside an
 * alternative replaces the same field outside it, for that alternative.
 * {"name": ["a", "b"], "$or": [{"name": [{"anything-but": "a"}]},
 * {"condition1": ["x"]}]} is {"name": [{"anything-but": "a"}]} OR
 * {"name": ["a", "b"], "condition1": ["x"]}, so it matches {"name": "c"}.
 *
 * The language, as implemented here:
 *
 * - A pattern is a non-empty JSON object. Every key must match the field of
 *   the same name in the document (AND). A value that is an object is a
 *   nested pattern; a value that is an array is a leaf: a non-empty list of
 *   alternatives (OR).
 * - Dotted keys: "a.b.c" is the path a -> b -> c, the same as
 *   {"a": {"b": {"c": ...}}}, and merges with other spellings of paths in
 *   the same object ({"a.b": [1], "a": {"c": [2]}} constrains b and c of
 *   one object a). Such a key also matches the document's dotted keys for
 *   the same path, which event-ruler cannot tell apart: "a.b.c" matches
 *   {"a": {"b": {"c": 1}}}, {"a.b.c": 1}, {"a.b": {"c": 1}} and
 *   {"a": {"b.c": 1}}, and any of them may hold the value. Every dot
 *   splits ("a..b" has an empty segment); "$or" is special only as a
 *   whole key.
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
 *     strings or only numbers, or {"prefix": p}, {"suffix": p} with p a
 *     non-empty string or a non-empty list of them ({"prefix": ["$", "%"]}
 *     excludes both), {"equals-ignore-case": "s" or ["s", ...]},
 *     {"wildcard": "p" or [..]}. Matches any present value not excluded
 *     (null and booleans included); never a missing field.
 *   {"cidr": "10.0.0.0/24"}: a string holding an IPv4 or IPv6 address in
 *     that network.
 * - "$or": [pattern, pattern, ...] (at least two objects) at any object
 *   level: that level matches if its other keys match and any alternative
 *   matches the same object (with the override above). Operator names
 *   cannot be field names inside "$or" alternatives.
 * - Arrays in the document: a leaf matches if any element matches (nested
 *   arrays are flattened); a nested pattern matches if any one element
 *   matches all of it, so fields are never combined across elements.
 * - Errors name the path and what was given: "a[0]: anything-but prefix
 *   needs a non-empty string or a non-empty list of them, got an object".
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
 * "new.size[0]: numeric needs an operator and a number, e.g. [\">\", 0],
 * got a string", "(root): pattern must be a JSON object, got a list").
 * Thread-safe: it touches no shared state.
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
