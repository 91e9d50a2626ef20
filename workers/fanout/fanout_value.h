/*
 * Values in rules (SPEC section 8): a string starting with '$' is a path
 * into the change document ("$" is the whole document; "$.item" and
 * "$.index" exist inside for_each); a string containing "{{path}}" is a
 * template; objects and arrays are walked recursively; anything else is a
 * literal.
 */
#ifndef FANOUT_VALUE_H
#define FANOUT_VALUE_H

#include <stddef.h>

#include <jansson.h>

struct fanout_value;

/** Where a value is evaluated: the change document, and inside for_each
 *  the current element and its index (item NULL outside for_each). */
struct fanout_scope {
    const json_t *doc;
    const json_t *item;
    size_t index;
};

/**
 * Compile the rule value @spec (borrowed). Returns NULL with the problem in
 * @errstr ("invalid path '$..x'", "unterminated '{{'"). Paths may use
 * "$.item" / "$.index" only when @in_for_each.
 */
struct fanout_value *fanout_value_compile(const json_t *spec,
                                          int in_for_each,
                                          char *errstr,
                                          size_t errstr_size);

void fanout_value_free(struct fanout_value *v);

/**
 * Evaluate to a new JSON reference: paths give the value found (JSON null
 * when absent), templates a string (strings inserted as they are, other
 * values as compact JSON, absent as ""), objects and arrays are rebuilt.
 * Never NULL.
 */
json_t *fanout_value_eval(const struct fanout_value *v,
                          const struct fanout_scope *scope);

/**
 * Evaluate to a string in @buf (for Kafka keys): strings as they are,
 * other values as compact JSON, null or absent as "". Returns the length
 * (truncated to @size - 1).
 */
size_t fanout_value_string(const struct fanout_value *v,
                           const struct fanout_scope *scope,
                           char *buf,
                           size_t size);

/** The path value of a "$..." string (borrowed from the document). NULL if
 *  absent. For for_each sources. */
const json_t *fanout_value_lookup(const struct fanout_value *v,
                                  const struct fanout_scope *scope);

#endif
