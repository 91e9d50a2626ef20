/*
 * MongoDB Extended JSON (v2, canonical and relaxed) as Debezium's MongoDB
 * connector writes it inside "before"/"after" strings and record keys,
 * unwrapped into plain JSON so that rules see values, not wrappers:
 *
 *   {"$oid": "5d5..."}                    -> "5d5..."
 *   {"$numberLong": "42"}, {"$numberInt"} -> 42 (kept as the string when
 *                                            it does not fit int64)
 *   {"$numberDouble": "1.5"}              -> 1.5 ("NaN", "Infinity" and
 *                                            "-Infinity" stay strings)
 *   {"$numberDecimal": "1.10"}            -> a number when exact, else the
 *                                            string (fanout_decimal.h)
 *   {"$date": ...}                        -> epoch milliseconds (from an
 *                                            integer, {"$numberLong"} or an
 *                                            RFC 3339 string)
 *   {"$binary": {"base64": "..", ...}}    -> the base64 text (also the
 *                                            legacy {"$binary": "..",
 *                                            "$type": ".."})
 *
 * Other wrappers ($timestamp, $regularExpression, $symbol, $code, $minKey,
 * $maxKey, $undefined, $dbPointer) are left as they are.
 */
#ifndef FANOUT_EJSON_H
#define FANOUT_EJSON_H

#include <jansson.h>

/**
 * Unwrap every wrapper inside @v (an object or array, changed in place;
 * the caller must own it alone). Returns @v, or, when @v itself is a
 * wrapper, a new reference to its plain value after releasing @v. NULL in
 * gives NULL. Recursion is bounded by jansson's parse depth.
 */
json_t *fanout_ejson_unwrap(json_t *v);

#endif
