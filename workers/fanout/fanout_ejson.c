/*
 * MongoDB Extended JSON unwrapping, see fanout_ejson.h. A wrapper is an
 * object whose first member name starts with '$'; anything that does not
 * look exactly like a known wrapper is left alone rather than guessed at.
 */
#include "fanout_ejson.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fanout_decimal.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* The only member of @obj when it is named @name, else NULL. */
static json_t *single(json_t *obj, const char *name)
{
    if (json_object_size(obj) != 1)
        return NULL;
    return json_object_get(obj, name);
}

/* "42" -> 42 within int64; NULL when it is not such an integer. */
static json_t *integer_of(json_t *str)
{
    const char *s = json_string_value(str);
    long long v;
    char *end;

    if (!s || !*s)
        return NULL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != '\0')
        return NULL;
    return json_integer((json_int_t)v);
}

static json_t *double_of(json_t *str)
{
    const char *s = json_string_value(str);
    double v;
    char *end;

    if (!s || !*s)
        return NULL;
    errno = 0;
    v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v))
        return NULL;
    return json_real(v);
}

static json_t *date_of(json_t *v)
{
    int64_t ms;

    if (json_is_integer(v))
        return json_incref(v);
    if (json_is_object(v))
        return integer_of(single(v, "$numberLong"));
    if (json_is_string(v) &&
        hr_time_parse_rfc3339(json_string_value(v), &ms) == 0)
        return json_integer(ms);
    return NULL;
}

static json_t *binary_of(json_t *obj)
{
    json_t *bin = json_object_get(obj, "$binary");

    if (json_is_object(bin) && json_object_size(obj) == 1)
        bin = json_object_get(bin, "base64");
    else if (!json_is_string(bin) || json_object_size(obj) != 2 ||
             !json_object_get(obj, "$type"))
        return NULL;
    return json_is_string(bin) ? json_incref(bin) : NULL;
}

/* The plain value of wrapper @obj (new reference), or NULL when @obj is
 * not a wrapper this module unwraps. */
static json_t *plain_of(json_t *obj)
{
    const char *first = json_object_iter_key(json_object_iter(obj));
    json_t *v;

    if (!first || first[0] != '$')
        return NULL;
    if ((v = single(obj, "$oid")) && json_is_string(v))
        return json_incref(v);
    if ((v = single(obj, "$numberLong")) || (v = single(obj, "$numberInt")))
        return integer_of(v);
    if ((v = single(obj, "$numberDouble")))
        return double_of(v);
    if ((v = single(obj, "$numberDecimal")))
        return fanout_decimal_to_json(json_string_value(v));
    if ((v = single(obj, "$date")))
        return date_of(v);
    if (json_object_get(obj, "$binary"))
        return binary_of(obj);
    return NULL;
}

json_t *fanout_ejson_unwrap(json_t *v)
{
    json_t *child, *plain;
    size_t i;
    void *iter;

    if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            plain = fanout_ejson_unwrap(json_incref(child));
            json_array_set_new(v, i, plain ? plain : json_null());
        }
        return v;
    }
    if (!json_is_object(v))
        return v;
    plain = plain_of(v);
    if (plain) {
        json_decref(v);
        return plain;
    }
    for (iter = json_object_iter(v); iter;
         iter = json_object_iter_next(v, iter)) {
        child = json_object_iter_value(iter);
        plain = fanout_ejson_unwrap(json_incref(child));
        json_object_iter_set_new(v, iter, plain ? plain : json_null());
    }
    return v;
}
