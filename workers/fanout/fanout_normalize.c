/*
 * Change input normalization. Each format has one entry point (ddb_*,
 * dbz_*, ce_*) that builds documents into a scratch array; only a fully
 * successful record is appended to the caller's array, so a batch is all or
 * nothing and the caller never sees half a record.
 *
 * Every lookup tolerates any JSON shape: jansson's getters return NULL on a
 * type mismatch, and every member we rely on is type-checked before use, so
 * hostile input ends in FANOUT_NORM_ERROR, never in a crash. Recursion
 * (DynamoDB M/L, equality) is bounded by jansson's parse depth limit.
 */
#include "fanout_normalize.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "fanout_decimal.h"
#include "fanout_ejson.h"
#include "hr_compat.h"
#include "hr_event.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Reasons for records inside a batch are formatted here first, then
 * prefixed with the record index. */
#define NORM_REASON_MAX 256

HR_PRINTF(3, 4)
static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;

    if (!errstr || errstr_size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}

/*
 * Copy @s for quoting in an error message: printable ASCII only (anything
 * else becomes '?'), cut to fit with "...". Reasons end up in log lines and
 * Kafka headers, so they must stay short and valid UTF-8 whatever the input.
 */
static const char *quote(char *buf, size_t size, const char *s)
{
    size_t i = 0;

    if (!s)
        s = "";
    for (; *s && i + 1 < size; s++) {
        unsigned char c = (unsigned char)*s;

        buf[i++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    buf[i] = '\0';
    if (*s && size > 4)
        memcpy(buf + size - 4, "...", 4);
    return buf;
}

const char *fanout_normalize_format_name(enum fanout_format fmt)
{
    switch (fmt) {
    case FANOUT_FMT_DYNAMODB:
        return "dynamodb";
    case FANOUT_FMT_DEBEZIUM:
        return "debezium";
    case FANOUT_FMT_CLOUDEVENTS:
        return "cloudevents";
    }
    return "unknown";
}

/* ---- small helpers ------------------------------------------------------ */

/* A dotted path for error messages ("new.items[2].price"), truncated when
 * long; attribute names are sanitized like quote(). */
struct path {
    char buf[160];
    size_t len;
};

static void path_putc(struct path *p, char c)
{
    unsigned char u = (unsigned char)c;

    if (p->len + 1 >= sizeof(p->buf))
        return;
    p->buf[p->len++] = (u >= 0x20 && u < 0x7f) ? c : '?';
    p->buf[p->len] = '\0';
}

static void path_init(struct path *p, const char *root)
{
    p->len = 0;
    p->buf[0] = '\0';
    for (; *root; root++)
        path_putc(p, *root);
}

/* Append ".key"; returns the length to restore with path_pop(). */
static size_t path_push_key(struct path *p, const char *key)
{
    size_t mark = p->len;

    path_putc(p, '.');
    for (; *key; key++)
        path_putc(p, *key);
    return mark;
}

static size_t path_push_index(struct path *p, size_t index)
{
    size_t mark = p->len;
    char tmp[32];

    snprintf(tmp, sizeof(tmp), "[%zu]", index);
    for (const char *c = tmp; *c; c++)
        path_putc(p, *c);
    return mark;
}

static void path_pop(struct path *p, size_t mark)
{
    p->len = mark;
    p->buf[mark] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A JSON array of @n names sorted bytewise, or NULL on allocation failure. */
static json_t *names_sorted(const char **names, size_t n)
{
    json_t *arr = json_array();

    if (!arr)
        return NULL;
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(arr, json_string(names[i])) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* The member names of object @obj, sorted; NULL if @obj is not an object
 * (the document then says null: there are no fields to name). */
static json_t *sorted_keys(json_t *obj)
{
    const char **names, *key;
    size_t n = 0;
    json_t *value, *arr;

    if (!json_is_object(obj))
        return NULL;
    names = calloc(json_object_size(obj) + 1, sizeof(*names));
    if (!names)
        return NULL;
    json_object_foreach(obj, key, value)
    {
        names[n++] = key;
    }
    arr = names_sorted(names, n);
    free(names);
    return arr;
}

typedef bool value_eq_fn(json_t *a, json_t *b);

/*
 * The top-level names whose values differ between objects @old and @new
 * (a name on one side only counts), sorted; NULL on allocation failure.
 */
static json_t *changed_names(json_t *old, json_t *new, value_eq_fn *eq)
{
    const char **names, *key;
    size_t n = 0;
    json_t *value, *other, *arr;

    names = calloc(json_object_size(old) + json_object_size(new) + 1,
                   sizeof(*names));
    if (!names)
        return NULL;
    json_object_foreach(new, key, value)
    {
        other = json_object_get(old, key);
        if (!other || !eq(other, value))
            names[n++] = key;
    }
    json_object_foreach(old, key, value)
    {
        if (!json_object_get(new, key))
            names[n++] = key;
    }
    arr = names_sorted(names, n);
    free(names);
    return arr;
}

static bool plain_equal(json_t *a, json_t *b)
{
    return json_equal(a, b) != 0;
}

/* Set @key of @obj to @value (a new reference; NULL means JSON null). Always
 * consumes @value. */
static int set_member(json_t *obj, const char *key, json_t *value)
{
    if (!obj) {
        json_decref(value);
        return -1;
    }
    return json_object_set_new(obj, key, value ? value : json_null());
}

/* A string member that must be absent, null or a string. Returns 0 (with
 * *out NULL when absent or null) or -1 on a wrong type. */
static int opt_string(json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

/* The parts of one change document; every json_t is a new reference (NULL
 * means null) that doc_append() consumes. */
struct doc_parts {
    json_t *id;
    const char *op;
    json_t *table;
    json_t *type; /* NULL: member omitted */
    json_t *keys;
    json_t *new_image;
    json_t *old_image;
    json_t *changed;
    json_t *ts_ms;
    json_t *source;
};

static void doc_parts_release(struct doc_parts *dp)
{
    json_decref(dp->id);
    json_decref(dp->table);
    json_decref(dp->type);
    json_decref(dp->keys);
    json_decref(dp->new_image);
    json_decref(dp->old_image);
    json_decref(dp->changed);
    json_decref(dp->ts_ms);
    json_decref(dp->source);
    memset(dp, 0, sizeof(*dp));
}

/* Append the document to @out, in SPEC order. Consumes every part. */
static int doc_append(json_t *out, struct doc_parts *dp)
{
    json_t *doc = json_object();
    int rc = 0;

    if (!dp->id) {
        doc_parts_release(dp);
        json_decref(doc);
        return -1;
    }
    rc |= set_member(doc, "id", dp->id);
    rc |= set_member(doc, "op", json_string(dp->op));
    rc |= set_member(doc, "table", dp->table);
    if (dp->type)
        rc |= set_member(doc, "type", dp->type);
    rc |= set_member(doc, "keys", dp->keys);
    rc |= set_member(doc, "new", dp->new_image);
    rc |= set_member(doc, "old", dp->old_image);
    rc |= set_member(doc, "changed", dp->changed);
    rc |= set_member(doc, "ts_ms", dp->ts_ms);
    rc |= set_member(doc, "source", dp->source);
    memset(dp, 0, sizeof(*dp));
    if (rc != 0) {
        json_decref(doc);
        return -1;
    }
    return json_array_append_new(out, doc);
}

/* What one Kafka record is normalized with: where documents go, where the
 * bad records of a batch go (NULL: a bad record fails the whole batch),
 * and the record's key. */
struct norm_ctx {
    json_t *out;
    json_t *rejects;
    const void *key;
    size_t key_len;
};

typedef int record_fn(const struct norm_ctx *ctx,
                      json_t *rec,
                      char *errstr,
                      size_t errstr_size);

/*
 * Each record of batch @records through @fn. A bad record fails the whole
 * batch without ctx->rejects; with it, the record is set aside with its
 * index in the reason and the others go on, unless none is good: then the
 * batch fails as a whole (it is then the Kafka record itself that is
 * dead-lettered, with its own value and headers).
 */
static enum fanout_norm_result batch_each(const struct norm_ctx *ctx,
                                          json_t *records,
                                          record_fn *fn,
                                          char *errstr,
                                          size_t errstr_size)
{
    char reason[NORM_REASON_MAX], first[NORM_REASON_MAX + 32] = "";
    json_t *bad = json_array(), *rec;
    size_t i, ngood = 0;
    int rc = 0;

    if (!bad) {
        set_err(errstr, errstr_size, "out of memory");
        return FANOUT_NORM_ERROR;
    }
    json_array_foreach(records, i, rec)
    {
        reason[0] = '\0';
        if (fn(ctx, rec, reason, sizeof(reason)) == 0) {
            ngood++;
            continue;
        }
        if (!first[0])
            snprintf(first, sizeof(first), "record %zu: %s", i, reason);
        if (!ctx->rejects)
            break;
        {
            char full[NORM_REASON_MAX + 32];

            snprintf(full, sizeof(full), "record %zu: %s", i, reason);
            rc |= json_array_append_new(
                bad, json_pack("{s:I, s:s, s:O}", "index", (json_int_t)i,
                               "reason", full, "record", rec));
        }
    }
    if (rc == 0 && ngood > 0 && ctx->rejects && json_array_size(bad) > 0)
        rc = json_array_extend(ctx->rejects, bad);
    json_decref(bad);
    if (rc != 0) {
        set_err(errstr, errstr_size, "out of memory");
        return FANOUT_NORM_ERROR;
    }
    if (first[0] && (!ctx->rejects || ngood == 0)) {
        set_err(errstr, errstr_size, "%s", first);
        return FANOUT_NORM_ERROR;
    }
    return FANOUT_NORM_OK;
}

/* ---- DynamoDB ------------------------------------------------------------ */

enum ddb_type {
    DDB_S,
    DDB_N,
    DDB_B,
    DDB_BOOL,
    DDB_NULL,
    DDB_M,
    DDB_L,
    DDB_SS,
    DDB_NS,
    DDB_BS,
    DDB_UNKNOWN,
};

static enum ddb_type ddb_type_of(const char *name)
{
    static const char *const names[] = {
        [DDB_S] = "S",       [DDB_N] = "N",       [DDB_B] = "B",
        [DDB_BOOL] = "BOOL", [DDB_NULL] = "NULL", [DDB_M] = "M",
        [DDB_L] = "L",       [DDB_SS] = "SS",     [DDB_NS] = "NS",
        [DDB_BS] = "BS",
    };

    for (size_t i = 0; i < HR_ARRAY_SIZE(names); i++) {
        if (strcmp(name, names[i]) == 0)
            return (enum ddb_type)i;
    }
    return DDB_UNKNOWN;
}

/* The only (type, value) pair of attribute value @av, or NULL; the number
 * of non-null members in *@ntypes. */
static const char *ddb_single(json_t *av, json_t **value, size_t *ntypes)
{
    const char *name, *found = NULL;
    json_t *v;

    *ntypes = 0;
    if (!json_is_object(av))
        return NULL;
    /* A member whose value is null is absent: SDKs that serialize every
     * member of their AttributeValue type write the unused ones as null
     * (aws-lambda-go's own test data, Jackson without NON_NULL). */
    json_object_foreach(av, name, v)
    {
        if (json_is_null(v))
            continue;
        found = name;
        *value = v;
        (*ntypes)++;
    }
    return *ntypes == 1 ? found : NULL;
}

/*
 * N text to JSON: an integer within int64, else a real if the text
 * round-trips through a double, else the original string (exactness over
 * type: "18446744073709551621", "1e400" and "0.30000000000000000001" are
 * not silently rounded).
 */
static json_t *
ddb_number(json_t *str, const struct path *p, char *errstr, size_t errstr_size)
{
    const char *text = json_string_value(str);
    json_t *v = fanout_decimal_to_json(text);
    char q[40];

    if (!v)
        set_err(errstr, errstr_size, "dynamodb: invalid number '%s' at %s",
                quote(q, sizeof(q), text), p->buf);
    return v;
}

static json_t *
ddb_value(json_t *av, struct path *p, char *errstr, size_t errstr_size);

/* An object of attribute values (an image, or an M) to a plain object. */
static json_t *
ddb_map(json_t *map, struct path *p, char *errstr, size_t errstr_size)
{
    json_t *out = json_object(), *av, *v;
    const char *key;

    if (!out) {
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    json_object_foreach(map, key, av)
    {
        size_t mark = path_push_key(p, key);

        v = ddb_value(av, p, errstr, errstr_size);
        if (!v)
            goto out_free;
        path_pop(p, mark);
        if (json_object_set_new(out, key, v) < 0) {
            set_err(errstr, errstr_size, "out of memory");
            goto out_free;
        }
    }
    return out;
out_free:
    json_decref(out);
    return NULL;
}

/* L, SS, NS or BS to a plain array. */
static json_t *ddb_list(json_t *arr,
                        enum ddb_type type,
                        const char *tname,
                        struct path *p,
                        char *errstr,
                        size_t errstr_size)
{
    json_t *out = json_array(), *el, *v;
    size_t i;

    if (!out) {
        set_err(errstr, errstr_size, "out of memory");
        return NULL;
    }
    json_array_foreach(arr, i, el)
    {
        size_t mark = path_push_index(p, i);

        if (type == DDB_L) {
            v = ddb_value(el, p, errstr, errstr_size);
        } else if (!json_is_string(el)) {
            set_err(errstr, errstr_size,
                    "dynamodb: %s element must be a string at %s", tname,
                    p->buf);
            v = NULL;
        } else if (type == DDB_NS) {
            v = ddb_number(el, p, errstr, errstr_size);
        } else {
            v = json_incref(el);
        }
        if (!v)
            goto out_free;
        path_pop(p, mark);
        if (json_array_append_new(out, v) < 0) {
            set_err(errstr, errstr_size, "out of memory");
            goto out_free;
        }
    }
    return out;
out_free:
    json_decref(out);
    return NULL;
}

/* One typed attribute value ({"S": "x"}, {"M": {...}}, ...) to plain JSON. */
static json_t *
ddb_value(json_t *av, struct path *p, char *errstr, size_t errstr_size)
{
    const char *tname;
    enum ddb_type type;
    json_t *val = NULL;
    size_t ntypes;
    char q[40];
    bool ok;

    if (!json_is_object(av)) {
        set_err(errstr, errstr_size,
                "dynamodb: attribute value must be an object at %s", p->buf);
        return NULL;
    }
    tname = ddb_single(av, &val, &ntypes);
    if (!tname) {
        set_err(errstr, errstr_size,
                "dynamodb: attribute value must have exactly one type, "
                "not %zu, at %s",
                ntypes, p->buf);
        return NULL;
    }
    type = ddb_type_of(tname);
    switch (type) {
    case DDB_S:
    case DDB_N:
    case DDB_B:
        ok = json_is_string(val);
        break;
    case DDB_BOOL:
    case DDB_NULL:
        ok = json_is_boolean(val);
        break;
    case DDB_M:
        ok = json_is_object(val);
        break;
    case DDB_L:
    case DDB_SS:
    case DDB_NS:
    case DDB_BS:
        ok = json_is_array(val);
        break;
    case DDB_UNKNOWN:
    default:
        set_err(errstr, errstr_size,
                "dynamodb: unknown attribute type '%s' at %s",
                quote(q, sizeof(q), tname), p->buf);
        return NULL;
    }
    if (!ok) {
        static const char *const want[] = {
            [DDB_S] = "a string",     [DDB_N] = "a string",
            [DDB_B] = "a string",     [DDB_BOOL] = "a boolean",
            [DDB_NULL] = "a boolean", [DDB_M] = "an object",
            [DDB_L] = "an array",     [DDB_SS] = "an array",
            [DDB_NS] = "an array",    [DDB_BS] = "an array",
        };

        set_err(errstr, errstr_size, "dynamodb: %s must be %s at %s", tname,
                want[type], p->buf);
        return NULL;
    }
    switch (type) {
    case DDB_N:
        return ddb_number(val, p, errstr, errstr_size);
    case DDB_NULL:
        return json_null();
    case DDB_M:
        return ddb_map(val, p, errstr, errstr_size);
    case DDB_L:
    case DDB_SS:
    case DDB_NS:
    case DDB_BS:
        return ddb_list(val, type, tname, p, errstr, errstr_size);
    default:
        /* S, B (base64 text as received), BOOL: shared, immutable. */
        return json_incref(val);
    }
}

/* Two N texts denote the same number. */
static bool ddb_number_equal(const char *a, const char *b)
{
    return fanout_decimal_equal(a, b);
}

/* Two string sets hold the same members (sorted copies compared; sets are
 * unordered, and DynamoDB writes each number in one canonical text). */
static bool ddb_set_equal(json_t *a, json_t *b)
{
    size_t n = json_array_size(a), i;
    const char **sa, **sb;
    bool eq = true;

    if (n != json_array_size(b))
        return false;
    sa = calloc(n + 1, sizeof(*sa));
    sb = calloc(n + 1, sizeof(*sb));
    if (!sa || !sb) {
        free(sa);
        free(sb);
        return json_equal(a, b) != 0;
    }
    for (i = 0; i < n; i++) {
        sa[i] = json_string_value(json_array_get(a, i));
        sb[i] = json_string_value(json_array_get(b, i));
        if (!sa[i] || !sb[i])
            eq = false;
    }
    if (eq) {
        qsort(sa, n, sizeof(*sa), cmp_str);
        qsort(sb, n, sizeof(*sb), cmp_str);
        for (i = 0; i < n && eq; i++)
            eq = strcmp(sa[i], sb[i]) == 0;
    }
    free(sa);
    free(sb);
    return eq;
}

/* Typed equality of two attribute values (already validated). */
static bool ddb_equal(json_t *a, json_t *b)
{
    json_t *va = NULL, *vb = NULL, *x;
    size_t i, na, nb;
    const char *ta = ddb_single(a, &va, &na), *tb = ddb_single(b, &vb, &nb);
    const char *key;

    if (!ta || !tb || strcmp(ta, tb) != 0)
        return false;
    switch (ddb_type_of(ta)) {
    case DDB_N:
        return json_is_string(va) && json_is_string(vb) &&
               ddb_number_equal(json_string_value(va), json_string_value(vb));
    case DDB_SS:
    case DDB_NS:
    case DDB_BS:
        return json_is_array(va) && json_is_array(vb) && ddb_set_equal(va, vb);
    case DDB_L:
        if (!json_is_array(va) || !json_is_array(vb) ||
            json_array_size(va) != json_array_size(vb))
            return false;
        json_array_foreach(va, i, x)
        {
            if (!ddb_equal(x, json_array_get(vb, i)))
                return false;
        }
        return true;
    case DDB_M:
        if (!json_is_object(va) || !json_is_object(vb) ||
            json_object_size(va) != json_object_size(vb))
            return false;
        json_object_foreach(va, key, x)
        {
            json_t *y = json_object_get(vb, key);

            if (!y || !ddb_equal(x, y))
                return false;
        }
        return true;
    default:
        return json_equal(va, vb) != 0;
    }
}

/* What eventSourceARN names: arn:PARTITION:dynamodb:REGION:ACCOUNT:
 * table/NAME[/stream/LABEL]. Pointers into the ARN, not NUL-terminated. */
struct ddb_arn {
    const char *region, *account, *table;
    size_t region_len, account_len, table_len;
};

static int ddb_arn_parse(const char *arn, struct ddb_arn *out)
{
    const char *field[5], *p = arn, *colon, *res, *rest;
    size_t flen[5];

    for (int i = 0; i < 5; i++) {
        colon = strchr(p, ':');
        if (!colon)
            return -1;
        field[i] = p;
        flen[i] = (size_t)(colon - p);
        p = colon + 1;
    }
    res = p;
    if (flen[0] != 3 || memcmp(field[0], "arn", 3) != 0 || flen[1] == 0 ||
        flen[2] != 8 || memcmp(field[2], "dynamodb", 8) != 0 || flen[3] == 0 ||
        flen[4] == 0 || strncmp(res, "table/", 6) != 0)
        return -1;
    out->region = field[3];
    out->region_len = flen[3];
    out->account = field[4];
    out->account_len = flen[4];
    out->table = res + 6;
    out->table_len = strcspn(out->table, "/");
    /* DynamoDB table names use [A-Za-z0-9_.-] (3 to 255 of them; shorter
     * names are let through, they hurt nobody); any other byte means this
     * is not a table ARN. */
    if (out->table_len == 0 || out->table_len > 255)
        return -1;
    for (size_t i = 0; i < out->table_len; i++) {
        char c = out->table[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return -1;
    }
    rest = out->table + out->table_len;
    if (*rest == '\0')
        return 0;
    if (strncmp(rest, "/stream/", 8) != 0 || rest[8] == '\0')
        return -1;
    return 0;
}

/*
 * ApproximateCreationDateTime to milliseconds. Lambda and the Streams API
 * give seconds (possibly fractional); Kinesis Data Streams for DynamoDB
 * gives milliseconds or microseconds (ApproximateCreationDateTimePrecision).
 * The magnitude tells them apart: 10^11 s is the year 5138, 10^14 ms the
 * year 5138 too.
 */
static int ddb_ts(json_t *ddb, json_t **ts, char *errstr, size_t errstr_size)
{
    json_t *v = json_object_get(ddb, "ApproximateCreationDateTime");
    double x, ms;

    *ts = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v)) {
        set_err(errstr, errstr_size,
                "dynamodb: ApproximateCreationDateTime must be a number");
        return -1;
    }
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);

        if (i >= 0 && i < 100000000000000000LL) {
            *ts = json_integer(i < 100000000000LL      ? i * 1000
                               : i < 100000000000000LL ? i
                                                       : i / 1000);
            return 0;
        }
    } else {
        x = json_real_value(v);
        if (x >= 0 && x < 1e17) {
            ms = x < 1e11 ? x * 1000 : x < 1e14 ? x : x / 1000;
            *ts = json_integer((json_int_t)floor(ms + 0.5));
            return 0;
        }
    }
    set_err(errstr, errstr_size,
            "dynamodb: ApproximateCreationDateTime out of range");
    return -1;
}

/* Convert image @name of the record's "dynamodb" into *out (NULL when
 * absent or null, as with KEYS_ONLY streams). */
static int ddb_image(json_t *ddb,
                     const char *name,
                     const char *root,
                     json_t **out,
                     char *errstr,
                     size_t errstr_size)
{
    json_t *img = json_object_get(ddb, name);
    struct path p;

    *out = NULL;
    if (!img || json_is_null(img))
        return 0;
    if (!json_is_object(img)) {
        set_err(errstr, errstr_size, "dynamodb: %s must be an object", name);
        return -1;
    }
    path_init(&p, root);
    *out = ddb_map(img, &p, errstr, errstr_size);
    return *out ? 0 : -1;
}

static const char *ddb_op(const char *event_name)
{
    if (strcmp(event_name, "INSERT") == 0)
        return "insert";
    if (strcmp(event_name, "MODIFY") == 0)
        return "modify";
    if (strcmp(event_name, "REMOVE") == 0)
        return "remove";
    return NULL;
}

/* The "source" block: where the record came from, for rules and debugging. */
static json_t *ddb_source(json_t *rec,
                          json_t *ddb,
                          const char *arn,
                          const struct ddb_arn *parsed,
                          const char *region)
{
    json_t *src = json_object(), *uid = json_object_get(rec, "userIdentity");
    bool named = parsed->table != NULL;
    int rc = 0;

    rc |= set_member(src, "format", json_string("dynamodb"));
    rc |= set_member(src, "arn", arn ? json_string(arn) : NULL);
    rc |= set_member(src, "region",
                     region  ? json_string(region)
                     : named ? json_stringn(parsed->region, parsed->region_len)
                             : NULL);
    rc |= set_member(src, "account",
                     named ? json_stringn(parsed->account, parsed->account_len)
                           : NULL);
    rc |= set_member(src, "sequence_number",
                     json_incref(json_object_get(ddb, "SequenceNumber")));
    rc |= set_member(src, "stream_view_type",
                     json_incref(json_object_get(ddb, "StreamViewType")));
    /* Present only for TTL deletes: the one way to tell them apart. */
    if (json_is_object(uid))
        rc |= set_member(src, "user_identity", json_deep_copy(uid));
    if (rc != 0) {
        json_decref(src);
        return NULL;
    }
    return src;
}

/* One DynamoDB Streams record to one document appended to @out. */
static int ddb_record(const struct norm_ctx *ctx,
                      json_t *rec,
                      char *errstr,
                      size_t errstr_size)
{
    json_t *out = ctx->out;
    struct doc_parts dp = {0};
    struct ddb_arn parsed = {0};
    const char *id, *name, *arn = NULL, *region, *evsrc, *seq, *view;
    json_t *ddb, *tname = NULL, *typed_new, *typed_old;
    bool want_changed = false;
    char q[64];

    if (!json_is_object(rec)) {
        set_err(errstr, errstr_size, "dynamodb: record is not an object");
        return -1;
    }
    if (opt_string(rec, "eventSource", &evsrc) < 0 ||
        (evsrc && strcmp(evsrc, "aws:dynamodb") != 0)) {
        set_err(errstr, errstr_size, "dynamodb: unsupported eventSource '%s'",
                quote(q, sizeof(q), evsrc ? evsrc : "?"));
        return -1;
    }
    id = json_string_value(json_object_get(rec, "eventID"));
    if (!id || !*id) {
        set_err(errstr, errstr_size, "dynamodb: %s eventID",
                json_object_get(rec, "eventID") ? "invalid" : "missing");
        return -1;
    }
    name = json_string_value(json_object_get(rec, "eventName"));
    if (!name) {
        set_err(errstr, errstr_size, "dynamodb: %s eventName",
                json_object_get(rec, "eventName") ? "invalid" : "missing");
        return -1;
    }
    dp.op = ddb_op(name);
    if (!dp.op) {
        set_err(errstr, errstr_size, "dynamodb: unknown eventName '%s'",
                quote(q, sizeof(q), name));
        return -1;
    }
    ddb = json_object_get(rec, "dynamodb");
    if (!json_is_object(ddb)) {
        set_err(errstr, errstr_size, "dynamodb: %s dynamodb",
                ddb ? "invalid" : "missing");
        return -1;
    }
    /* Lambda and the Streams API name the table in the stream ARN; Kinesis
     * Data Streams for DynamoDB records carry "tableName" instead. */
    if (opt_string(rec, "eventSourceARN", &arn) < 0) {
        set_err(errstr, errstr_size, "dynamodb: invalid eventSourceARN");
        return -1;
    }
    /* The SDKs' own fixtures say "stream-ARN": a record whose ARN names
     * no table still routes, with table null and the ARN in "source". */
    if (arn && ddb_arn_parse(arn, &parsed) < 0)
        memset(&parsed, 0, sizeof(parsed));
    if (!arn) {
        tname = json_object_get(rec, "tableName");
        if (!json_is_string(tname) || json_string_length(tname) == 0) {
            set_err(errstr, errstr_size, "dynamodb: missing eventSourceARN");
            return -1;
        }
    }
    if (opt_string(rec, "awsRegion", &region) < 0 ||
        opt_string(ddb, "SequenceNumber", &seq) < 0 ||
        opt_string(ddb, "StreamViewType", &view) < 0) {
        set_err(errstr, errstr_size,
                "dynamodb: awsRegion, SequenceNumber and StreamViewType must "
                "be strings");
        return -1;
    }
    if (ddb_image(ddb, "Keys", "keys", &dp.keys, errstr, errstr_size) < 0 ||
        ddb_image(ddb, "NewImage", "new", &dp.new_image, errstr, errstr_size) <
            0 ||
        ddb_image(ddb, "OldImage", "old", &dp.old_image, errstr, errstr_size) <
            0 ||
        ddb_ts(ddb, &dp.ts_ms, errstr, errstr_size) < 0)
        goto out_release;

    /* On the typed images: sets compare as sets, numbers as numbers. */
    typed_new = json_object_get(ddb, "NewImage");
    typed_old = json_object_get(ddb, "OldImage");
    if (strcmp(dp.op, "insert") == 0) {
        want_changed = dp.new_image != NULL;
        dp.changed = sorted_keys(dp.new_image);
    } else if (strcmp(dp.op, "remove") == 0) {
        want_changed = dp.old_image != NULL;
        dp.changed = sorted_keys(dp.old_image);
    } else if (dp.new_image && dp.old_image) {
        want_changed = true;
        dp.changed = changed_names(typed_old, typed_new, ddb_equal);
    }

    dp.id = json_string(id);
    dp.table = parsed.table ? json_stringn(parsed.table, parsed.table_len)
                            : json_incref(tname);
    dp.source = ddb_source(rec, ddb, arn, &parsed, region);
    if (!dp.id || (!dp.table && (parsed.table || tname)) || !dp.source ||
        (want_changed && !dp.changed)) {
        set_err(errstr, errstr_size, "out of memory");
        goto out_release;
    }
    if (doc_append(out, &dp) < 0) {
        set_err(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
out_release:
    doc_parts_release(&dp);
    return -1;
}

static enum fanout_norm_result ddb_normalize(const struct norm_ctx *ctx,
                                             json_t *root,
                                             char *errstr,
                                             size_t errstr_size)
{
    json_t *records = json_object_get(root, "Records");

    if (!records)
        return ddb_record(ctx, root, errstr, errstr_size) < 0
                   ? FANOUT_NORM_ERROR
                   : FANOUT_NORM_OK;
    if (!json_is_array(records)) {
        set_err(errstr, errstr_size, "dynamodb: Records must be an array");
        return FANOUT_NORM_ERROR;
    }
    if (json_array_size(records) == 0) {
        set_err(errstr, errstr_size, "dynamodb: empty batch");
        return FANOUT_NORM_SKIP;
    }
    return batch_each(ctx, records, ddb_record, errstr, errstr_size);
}

/* ---- Debezium ------------------------------------------------------------ */

/* A growable string for Debezium ids. */
struct sbuf {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void sbuf_add(struct sbuf *sb, const char *s, size_t n)
{
    if (sb->failed)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 128;
        char *grown;

        while (cap < sb->len + n + 1)
            cap *= 2;
        grown = realloc(sb->buf, cap);
        if (!grown) {
            sb->failed = true;
            return;
        }
        sb->buf = grown;
        sb->cap = cap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sbuf_str(struct sbuf *sb, const char *s)
{
    sbuf_add(sb, s, strlen(s));
}

/* A scalar as text: strings as they are, numbers in decimal; anything else
 * (absent, null, containers) adds nothing. */
static void sbuf_value(struct sbuf *sb, json_t *v)
{
    char tmp[40];

    if (json_is_string(v)) {
        sbuf_add(sb, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        sbuf_str(sb, tmp);
    } else if (json_is_real(v)) {
        snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(v));
        sbuf_str(sb, tmp);
    } else if (json_is_boolean(v)) {
        sbuf_str(sb, json_is_true(v) ? "true" : "false");
    }
}

/* 64-bit FNV-1a, fed by json_dump_callback(). */
static int fnv_feed(const char *buf, size_t size, void *data)
{
    uint64_t *h = data;

    for (size_t i = 0; i < size; i++) {
        *h ^= (unsigned char)buf[i];
        *h *= 1099511628211ULL;
    }
    return 0;
}

/* The record's Kafka key as Debezium's JSON converter writes it: the
 * key's own value (@json, the payload of a schema envelope), or, when it
 * is not JSON, its bytes (@raw). Both NULL without a key. */
struct dbz_key {
    json_t *json;
    const void *raw;
    size_t raw_len;
};

/* Digest of the key and the canonical (sorted, compact) images; separates
 * rows that share one source position. Without a key it is the digest of
 * the images alone, as before keys were read. */
static uint64_t
dbz_digest(const struct dbz_key *key, json_t *before, json_t *after)
{
    const size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
    uint64_t h = 14695981039346656037ULL;

    if (key->json || key->raw) {
        fnv_feed("key=", 4, &h);
        if (!key->json ||
            json_dump_callback(key->json, fnv_feed, &h, flags) < 0)
            fnv_feed(key->raw ? key->raw : "", key->raw_len, &h);
        fnv_feed("", 1, &h);
    }
    if (!before || json_dump_callback(before, fnv_feed, &h, flags) < 0)
        fnv_feed("null", 4, &h);
    fnv_feed("", 1, &h);
    if (!after || json_dump_callback(after, fnv_feed, &h, flags) < 0)
        fnv_feed("null", 4, &h);
    return h;
}

static bool has(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return v && !json_is_null(v);
}

/*
 * The connector's own position of the change: what Debezium itself stores
 * as its offset, so the same change re-sent after a restart maps to the
 * same value. Chosen by the fields the source block carries, not by its
 * "connector" name, so that connectors not listed here (Db2, Informix,
 * Vitess, Spanner, Cassandra, a renamed build) still get a position. The
 * fallback (commit time and transaction) is weaker, which the digest in
 * the id compensates for. A binlog position with an empty file name (Flink
 * CDC's snapshot rows: "file": "", "pos": 0) is none: such rows fall back
 * to the commit time, so that one row inserted twice with the same values
 * at different times does not get one id.
 */
static void dbz_position(struct sbuf *sb, json_t *src, json_t *payload)
{
#define F(key) json_object_get(src, key)
    json_t *tx = json_object_get(payload, "transaction");

    if (has(src, "lsn")) { /* PostgreSQL */
        sbuf_str(sb, "lsn=");
        sbuf_value(sb, F("lsn"));
    } else if (has(src, "change_lsn") || has(src, "commit_lsn")) {
        /* SQL Server, Db2, Informix */
        sbuf_str(sb, "lsn=");
        sbuf_value(sb, F("change_lsn"));
        sbuf_str(sb, ":");
        sbuf_value(sb, F("commit_lsn"));
        if (has(src, "event_serial_no")) {
            sbuf_str(sb, ":");
            sbuf_value(sb, F("event_serial_no"));
        }
    } else if (has(src, "scn")) { /* Oracle */
        sbuf_str(sb, "scn=");
        sbuf_value(sb, F("scn"));
        sbuf_str(sb, ":");
        sbuf_value(sb, F("commit_scn"));
    } else if (has(src, "file") && has(src, "pos") &&
               !(json_is_string(F("file")) &&
                 json_string_length(F("file")) == 0)) {
        /* MySQL, MariaDB; an empty file (Flink CDC's snapshot rows write
         * "file": "", "pos": 0) names no binlog position */
        sbuf_str(sb, "binlog=");
        sbuf_value(sb, F("file"));
        sbuf_str(sb, ":");
        sbuf_value(sb, F("pos"));
        sbuf_str(sb, ":");
        sbuf_value(sb, has(src, "row") ? F("row") : NULL);
    } else if (has(src, "ord")) { /* MongoDB */
        sbuf_str(sb, "oplog=");
        sbuf_value(sb, has(src, "sec") ? F("sec") : F("ts_ms"));
        sbuf_str(sb, ":");
        sbuf_value(sb, F("ord"));
        if (has(src, "txnNumber")) {
            sbuf_str(sb, ":txn=");
            sbuf_value(sb, F("txnNumber"));
        }
    } else if (has(src, "gtid") || has(src, "vgtid")) {
        sbuf_str(sb, "gtid=");
        sbuf_value(sb, has(src, "gtid") ? F("gtid") : F("vgtid"));
    } else {
        sbuf_str(sb, "ts=");
        sbuf_value(sb, F("ts_ms"));
        sbuf_str(sb, ":tx=");
        sbuf_value(sb,
                   has(src, "txId") ? F("txId") : json_object_get(tx, "id"));
        if (has(tx, "total_order")) {
            sbuf_str(sb, ":");
            sbuf_value(sb, json_object_get(tx, "total_order"));
        }
    }
#undef F
}

static json_t *dbz_id(const char *connector,
                      json_t *src,
                      json_t *payload,
                      const char *op,
                      json_t *table,
                      const struct dbz_key *key,
                      json_t *before,
                      json_t *after)
{
    struct sbuf sb = {0};
    char hex[24];
    json_t *id;

    sbuf_str(&sb, connector);
    sbuf_str(&sb, ":");
    sbuf_value(&sb, json_object_get(src, "name"));
    sbuf_str(&sb, ":");
    if (has(src, "db")) {
        sbuf_value(&sb, json_object_get(src, "db"));
        sbuf_str(&sb, ".");
    }
    if (has(src, "schema")) {
        sbuf_value(&sb, json_object_get(src, "schema"));
        sbuf_str(&sb, ".");
    }
    sbuf_value(&sb, table);
    sbuf_str(&sb, ":");
    sbuf_str(&sb, op);
    sbuf_str(&sb, ":");
    dbz_position(&sb, src, payload);
    snprintf(hex, sizeof(hex), ":%016" PRIx64, dbz_digest(key, before, after));
    sbuf_str(&sb, hex);
    id = sb.failed ? NULL : json_string(sb.buf);
    free(sb.buf);
    return id;
}

/*
 * "before" / "after": an object, or null. The MongoDB connector sends the
 * document as extended-JSON text, which is parsed and unwrapped
 * (fanout_ejson.h) so rules can see fields and numbers.
 */
static int dbz_image(json_t *payload,
                     const char *name,
                     json_t **out,
                     char *errstr,
                     size_t errstr_size)
{
    json_t *v = json_object_get(payload, name);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        *out = json_loadb(json_string_value(v), json_string_length(v), 0, NULL);
        *out = fanout_ejson_unwrap(*out);
        if (json_is_object(*out))
            return 0;
        json_decref(*out);
        *out = NULL;
        set_err(errstr, errstr_size, "debezium: %s is not a json object", name);
        return -1;
    }
    if (!json_is_object(v)) {
        set_err(errstr, errstr_size, "debezium: %s must be an object", name);
        return -1;
    }
    *out = json_incref(v);
    return 0;
}

/* A timestamp member: an integer, or a string of digits as some converters
 * write int64. Returns 1 (set), 0 (absent or null) or -1 (bad). */
static int dbz_ts(json_t *obj, const char *key, json_int_t *ms)
{
    json_t *v = json_object_get(obj, key);
    const char *s;
    size_t n;

    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *ms = json_integer_value(v);
        return *ms >= 0 ? 1 : -1;
    }
    s = json_string_value(v);
    n = s ? strlen(s) : 0;
    if (n == 0 || n > 18 || strspn(s, "0123456789") != n)
        return -1;
    *ms = (json_int_t)strtoll(s, NULL, 10);
    return 1;
}

/* A ts_ms that some source wrote in microseconds or nanoseconds, back to
 * milliseconds: 10^14 ms is the year 5138, as for DynamoDB. */
static json_int_t dbz_ms(json_int_t t)
{
    if (t >= 100000000000000000LL)
        return t / 1000000;
    if (t >= 100000000000000LL)
        return t / 1000;
    return t;
}

/* Add the top-level field of dotted path @path ("a.b" changes "a"). */
static void add_top_field(json_t *set, const char *path)
{
    json_object_setn_new(set, path, strcspn(path, "."), json_null());
}

/*
 * MongoDB update without a usable "before": the top-level names touched by
 * updateDescription (updatedFields keys, removedFields, truncatedArrays),
 * or NULL when it is absent. Its parts are optional hints, so unreadable
 * ones are ignored rather than failing the event.
 */
static json_t *dbz_mongo_changed(json_t *payload)
{
    json_t *ud = json_object_get(payload, "updateDescription");
    json_t *updated, *parsed = NULL, *set, *v, *arr;
    const char *key;
    size_t i;

    if (!json_is_object(ud))
        return NULL;
    set = json_object();
    if (!set)
        return NULL;
    updated = json_object_get(ud, "updatedFields");
    if (json_is_string(updated)) {
        parsed = json_loadb(json_string_value(updated),
                            json_string_length(updated), 0, NULL);
        updated = parsed;
    }
    json_object_foreach(updated, key, v)
    {
        add_top_field(set, key);
    }
    json_array_foreach(json_object_get(ud, "removedFields"), i, v)
    {
        if (json_is_string(v))
            add_top_field(set, json_string_value(v));
    }
    json_array_foreach(json_object_get(ud, "truncatedArrays"), i, v)
    {
        key = json_string_value(json_object_get(v, "field"));
        if (key)
            add_top_field(set, key);
    }
    json_decref(parsed);
    arr = sorted_keys(set);
    json_decref(set);
    return arr;
}

/* Whether every field of @after is in @before (a full row image). */
static bool dbz_covers(json_t *before, json_t *after)
{
    const char *key;
    json_t *v;

    json_object_foreach(after, key, v)
    {
        if (!json_object_get(before, key))
            return false;
    }
    return true;
}

static json_t *dbz_source(json_t *src)
{
    json_t *out = json_object(), *v;
    const char *key;
    int rc = set_member(out, "format", json_string("debezium"));

    json_object_foreach(src, key, v)
    {
        if (strcmp(key, "format") != 0)
            rc |= set_member(out, key, json_deep_copy(v));
    }
    if (rc != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/*
 * The record's Kafka key (Debezium writes the row's primary key there,
 * with or without the JSON converter's schema envelope): @key gets what
 * the id is made of, *keys the "keys" object (NULL when the key is not a
 * JSON object). The MongoDB connector's key is {"id": "<extended JSON
 * text of _id>"}: it becomes {"_id": <plain value>}, as in the document.
 * Returns 0, or -1 on allocation failure.
 */
static int dbz_read_key(const struct norm_ctx *ctx,
                        bool mongo,
                        struct dbz_key *key,
                        json_t **keys)
{
    json_t *root, *v, *id, *plain;

    memset(key, 0, sizeof(*key));
    *keys = NULL;
    if (!ctx->key || ctx->key_len == 0)
        return 0;
    root = json_loadb(ctx->key, ctx->key_len, JSON_DECODE_ANY, NULL);
    if (!root || json_is_null(root)) {
        json_decref(root);
        key->raw = ctx->key;
        key->raw_len = ctx->key_len;
        return 0;
    }
    v = root;
    if (json_is_object(root) && json_object_get(root, "schema") &&
        json_object_get(root, "payload"))
        v = json_object_get(root, "payload");
    key->json = json_incref(v);
    json_decref(root);
    if (!json_is_object(v))
        return 0;
    id = json_object_get(v, "id");
    if (mongo && json_is_string(id) && json_object_size(v) == 1) {
        plain = json_loadb(json_string_value(id), json_string_length(id),
                           JSON_DECODE_ANY, NULL);
        plain = plain ? fanout_ejson_unwrap(plain) : json_incref(id);
        *keys = json_pack("{s:o}", "_id", plain);
    } else {
        *keys = json_deep_copy(v);
    }
    return *keys ? 0 : -1;
}

static enum fanout_norm_result dbz_change(const struct norm_ctx *ctx,
                                          json_t *payload,
                                          char *errstr,
                                          size_t errstr_size)
{
    json_t *out = ctx->out;
    struct doc_parts dp = {0};
    struct dbz_key key = {0};
    json_t *opv = json_object_get(payload, "op"), *src, *table;
    const char *connector, *letter;
    json_int_t ms = 0;
    int rc;
    char q[24];

    letter = json_string_value(opv);
    if (!letter) {
        set_err(errstr, errstr_size, "debezium: op must be a string");
        return FANOUT_NORM_ERROR;
    }
    if (strcmp(letter, "c") == 0) {
        dp.op = "insert";
    } else if (strcmp(letter, "u") == 0) {
        dp.op = "modify";
    } else if (strcmp(letter, "d") == 0) {
        dp.op = "remove";
    } else if (strcmp(letter, "r") == 0) {
        dp.op = "snapshot";
    } else if (strcmp(letter, "t") == 0 || strcmp(letter, "m") == 0) {
        /* A truncate names a table but no row; a logical-decoding message
         * names neither. There is nothing to route per row. */
        set_err(errstr, errstr_size, "debezium: %s event carries no row",
                *letter == 't' ? "truncate" : "message");
        return FANOUT_NORM_SKIP;
    } else {
        set_err(errstr, errstr_size, "debezium: unknown op '%s'",
                quote(q, sizeof(q), letter));
        return FANOUT_NORM_ERROR;
    }
    src = json_object_get(payload, "source");
    if (!json_is_object(src)) {
        set_err(errstr, errstr_size, "debezium: %s source",
                src ? "invalid" : "missing");
        return FANOUT_NORM_ERROR;
    }
    connector = json_string_value(json_object_get(src, "connector"));
    if (!connector)
        connector = "unknown";
    table = json_object_get(src, "table");
    if (!json_is_string(table))
        table = json_object_get(src, "collection"); /* MongoDB */
    if (!json_is_string(table) || json_string_length(table) == 0) {
        set_err(errstr, errstr_size, "debezium: missing source.table");
        return FANOUT_NORM_ERROR;
    }
    if (dbz_image(payload, "before", &dp.old_image, errstr, errstr_size) < 0 ||
        dbz_image(payload, "after", &dp.new_image, errstr, errstr_size) < 0)
        goto out_release;
    if (dbz_read_key(ctx, strcmp(connector, "mongodb") == 0, &key, &dp.keys)) {
        set_err(errstr, errstr_size, "out of memory");
        goto out_release;
    }
    if (!dp.new_image && *letter != 'd') {
        set_err(errstr, errstr_size, "debezium: op '%s' without after", letter);
        goto out_release;
    }
    rc = dbz_ts(payload, "ts_ms", &ms);
    if (rc == 0)
        rc = dbz_ts(src, "ts_ms", &ms);
    if (rc < 0) {
        set_err(errstr, errstr_size, "debezium: ts_ms must be an integer");
        goto out_release;
    }
    dp.ts_ms = rc > 0 ? json_integer(dbz_ms(ms)) : NULL;

    switch (*letter) {
    case 'c':
    case 'r':
        dp.changed = sorted_keys(dp.new_image);
        break;
    case 'd':
        dp.changed = sorted_keys(dp.old_image);
        break;
    default:
        /* Relational rows have fixed columns, so a "before" that lacks
         * some is a partial image (REPLICA IDENTITY DEFAULT, MINIMAL
         * binlog rows), not a removed column: say unknown. */
        if (dp.old_image && (strcmp(connector, "mongodb") == 0 ||
                             dbz_covers(dp.old_image, dp.new_image)))
            dp.changed = changed_names(dp.old_image, dp.new_image, plain_equal);
        else if (strcmp(connector, "mongodb") == 0)
            dp.changed = dbz_mongo_changed(payload);
        break;
    }
    dp.id = dbz_id(connector, src, payload, letter, table, &key, dp.old_image,
                   dp.new_image);
    dp.table = json_incref(table);
    dp.source = dbz_source(src);
    json_decref(key.json);
    key.json = NULL;
    if (!dp.id || !dp.source) {
        set_err(errstr, errstr_size, "out of memory");
        goto out_release;
    }
    if (doc_append(out, &dp) < 0) {
        set_err(errstr, errstr_size, "out of memory");
        return FANOUT_NORM_ERROR;
    }
    return FANOUT_NORM_OK;
out_release:
    json_decref(key.json);
    doc_parts_release(&dp);
    return FANOUT_NORM_ERROR;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = s ? strlen(s) : 0, m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * Debezium, bare or in the JSON converter's {"schema", "payload"} envelope.
 * Heartbeats ({"ts_ms"} on __debezium-heartbeat.*) and transaction
 * BEGIN/END records (on <prefix>.transaction) are valid Debezium output
 * that describes no row: they are skipped, not dead-lettered, in case a
 * connector is configured to write them to the changes topic.
 */
/* A schema change event (DDL): the schema change topic's value, with
 * "ddl" and "tableChanges" next to "source" and no "op". */
static bool dbz_is_schema_change(json_t *payload, const char *schema_name)
{
    return ends_with(schema_name, ".SchemaChangeValue") ||
           (!json_object_get(payload, "op") &&
            (json_is_array(json_object_get(payload, "tableChanges")) ||
             (json_is_string(json_object_get(payload, "ddl")) &&
              json_object_get(payload, "databaseName"))));
}

static enum fanout_norm_result dbz_normalize(const struct norm_ctx *ctx,
                                             json_t *root,
                                             char *errstr,
                                             size_t errstr_size)
{
    json_t *payload = root;
    const char *schema_name = json_string_value(
        json_object_get(json_object_get(root, "schema"), "name"));
    const char *status;

    if (!json_object_get(root, "op") && json_object_get(root, "payload")) {
        payload = json_object_get(root, "payload");
        if (json_is_null(payload)) {
            set_err(errstr, errstr_size, "debezium: tombstone");
            return FANOUT_NORM_SKIP;
        }
        if (!json_is_object(payload))
            goto out_unknown;
    }
    if (json_object_get(payload, "op") && (json_object_get(payload, "before") ||
                                           json_object_get(payload, "after") ||
                                           json_object_get(payload, "source")))
        return dbz_change(ctx, payload, errstr, errstr_size);
    if (ends_with(schema_name, ".Heartbeat") ||
        (json_object_size(payload) == 1 &&
         json_is_integer(json_object_get(payload, "ts_ms")))) {
        set_err(errstr, errstr_size, "debezium: heartbeat");
        return FANOUT_NORM_SKIP;
    }
    if (dbz_is_schema_change(payload, schema_name)) {
        set_err(errstr, errstr_size, "debezium: schema change");
        return FANOUT_NORM_SKIP;
    }
    status = json_string_value(json_object_get(payload, "status"));
    if (ends_with(schema_name, ".TransactionMetadataValue") ||
        (status &&
         (strcmp(status, "BEGIN") == 0 || strcmp(status, "END") == 0) &&
         json_object_get(payload, "id") &&
         (json_object_get(payload, "event_count") ||
          json_object_get(payload, "data_collections")))) {
        set_err(errstr, errstr_size, "debezium: transaction metadata");
        return FANOUT_NORM_SKIP;
    }
out_unknown:
    set_err(errstr, errstr_size, "unknown record format");
    return FANOUT_NORM_ERROR;
}

/* ---- CloudEvents --------------------------------------------------------- */

/* CloudEvents identity is source + id (CloudEvents 3.1.1): the document id
 * is "<length of source>:<source>:<id>", unambiguous whatever bytes either
 * holds. */
static json_t *ce_id(const struct hr_event *ev)
{
    size_t n = strlen(ev->source) + strlen(ev->id) + 32;
    char *buf = malloc(n);
    json_t *id;

    if (!buf)
        return NULL;
    snprintf(buf, n, "%zu:%s:%s", strlen(ev->source), ev->source, ev->id);
    id = json_string(buf);
    free(buf);
    return id;
}

/* Every context attribute under its CloudEvents name (all but data and
 * data_base64), subject and time null when absent, and "format" (an
 * extension of that name is not copied: "format" is ours). */
static json_t *ce_source(const struct hr_event *ev)
{
    json_t *src = json_object(), *v;
    const char *key;
    int rc = set_member(src, "format", json_string("cloudevents"));

    rc |= set_member(src, "subject", NULL);
    rc |= set_member(src, "time", NULL);
    json_object_foreach(ev->root, key, v)
    {
        if (strcmp(key, "data") != 0 && strcmp(key, "data_base64") != 0 &&
            strcmp(key, "format") != 0)
            rc |= set_member(src, key, json_deep_copy(v));
    }
    if (rc != 0) {
        json_decref(src);
        return NULL;
    }
    return src;
}

/*
 * A CloudEvent is an insert of its data into no table: it is routed by type
 * (match.type), and the subject stays in "source" rather than being guessed
 * into a table name. "new" is the data (data_base64 decoded when JSON,
 * hr_event.h, else its base64 text). An unparseable "time" leaves ts_ms
 * null, as the other workers accept such events too.
 */
static int
ce_document(json_t *out, struct hr_event *ev, char *errstr, size_t errstr_size)
{
    struct doc_parts dp = {0};
    int64_t ms;

    dp.id = ce_id(ev);
    dp.op = "insert";
    dp.type = json_string(ev->type);
    if (ev->data)
        dp.new_image = json_incref(ev->data);
    else if (ev->data_base64)
        dp.new_image = json_string(ev->data_base64);
    dp.changed = sorted_keys(dp.new_image);
    if (ev->time && hr_time_parse_rfc3339(ev->time, &ms) == 0)
        dp.ts_ms = json_integer(ms);
    dp.source = ce_source(ev);
    if (!dp.id || !dp.type || !dp.source) {
        doc_parts_release(&dp);
        set_err(errstr, errstr_size, "out of memory");
        return -1;
    }
    if (doc_append(out, &dp) < 0) {
        set_err(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

/* One event of a batch (a JSON value). */
static int ce_record(const struct norm_ctx *ctx,
                     json_t *rec,
                     char *errstr,
                     size_t errstr_size)
{
    char reason[NORM_REASON_MAX];
    struct hr_event ev;
    int rc;

    if (hr_event_parse_json(&ev, rec, reason, sizeof(reason)) < 0) {
        set_err(errstr, errstr_size, "cloudevents: %s", reason);
        return -1;
    }
    rc = ce_document(ctx->out, &ev, errstr, errstr_size);
    hr_event_release(&ev);
    return rc;
}

/* The batch format (a JSON array of structured events): one document per
 * event; a bad event is set aside alone (batch_each). */
static enum fanout_norm_result ce_batch(const struct norm_ctx *ctx,
                                        json_t *root,
                                        char *errstr,
                                        size_t errstr_size)
{
    if (json_array_size(root) == 0) {
        set_err(errstr, errstr_size, "cloudevents: empty batch");
        return FANOUT_NORM_SKIP;
    }
    return batch_each(ctx, root, ce_record, errstr, errstr_size);
}

/* One event in structured or binary mode (hr_event_parse()). */
static enum fanout_norm_result ce_normalize(const struct fanout_input *in,
                                            bool binary,
                                            json_t *out,
                                            char *errstr,
                                            size_t errstr_size)
{
    char reason[NORM_REASON_MAX];
    struct hr_event ev;
    int rc;

    if (hr_event_parse(&ev, in->value, in->len, binary ? in->get_header : NULL,
                       in->opaque, reason, sizeof(reason)) < 0) {
        set_err(errstr, errstr_size, "cloudevents: %s", reason);
        return FANOUT_NORM_ERROR;
    }
    rc = binary ? hr_event_add_extensions(&ev, in->header_at, in->opaque) : 0;
    if (rc < 0)
        set_err(errstr, errstr_size, "out of memory");
    else
        rc = ce_document(out, &ev, errstr, errstr_size);
    hr_event_release(&ev);
    return rc < 0 ? FANOUT_NORM_ERROR : FANOUT_NORM_OK;
}

/* Kafka binding: structured mode iff content-type starts with
 * "application/cloudevents", case-insensitively; the batch format's type
 * is "application/cloudevents-batch+json". */
static bool ce_has_type(const char *ct, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    return ct && len >= n && strncasecmp(ct, prefix, n) == 0;
}

/* ---- entry point ----------------------------------------------------------
 */

static enum fanout_norm_result dispatch(const struct norm_ctx *ctx,
                                        const struct fanout_input *in,
                                        char *errstr,
                                        size_t errstr_size)
{
    enum fanout_norm_result res;
    json_error_t jerr;
    json_t *root;

    root = json_loadb(in->value, in->len, JSON_DECODE_ANY, &jerr);
    if (!root) {
        set_err(errstr, errstr_size, "invalid json: %s at line %d, column %d",
                jerr.text, jerr.line, jerr.column);
        return FANOUT_NORM_ERROR;
    }
    if (json_is_null(root)) {
        set_err(errstr, errstr_size, "tombstone: json null");
        res = FANOUT_NORM_SKIP;
    } else if (json_is_array(root)) {
        res = ce_batch(ctx, root, errstr, errstr_size);
    } else if (!json_is_object(root)) {
        set_err(errstr, errstr_size,
                "unknown record format: value is not a json object");
        res = FANOUT_NORM_ERROR;
    } else if (json_object_get(root, "specversion")) {
        /* First: a CloudEvent may carry an extension attribute named
         * "dynamodb", no DynamoDB record has "specversion". Validated by
         * hr_event as in every worker. */
        res = ce_record(ctx, root, errstr, errstr_size) < 0 ? FANOUT_NORM_ERROR
                                                            : FANOUT_NORM_OK;
    } else if (json_object_get(root, "Records") ||
               json_object_get(root, "eventSourceARN") ||
               json_object_get(root, "dynamodb")) {
        res = ddb_normalize(ctx, root, errstr, errstr_size);
    } else {
        res = dbz_normalize(ctx, root, errstr, errstr_size);
    }
    json_decref(root);
    return res;
}

/* Which way the record goes; the headers decide before the bytes do. */
static enum fanout_norm_result route_input(const struct norm_ctx *ctx,
                                           const struct fanout_input *in,
                                           char *errstr,
                                           size_t errstr_size)
{
    const char *ct = NULL;
    size_t hlen = 0;

    if (in->get_header)
        ct = in->get_header(in->opaque, "content-type", &hlen);
    if (ce_has_type(ct, hlen, "application/cloudevents-batch"))
        return in->len > 0
                   ? dispatch(ctx, in, errstr, errstr_size)
                   : ce_normalize(in, false, ctx->out, errstr, errstr_size);
    if (ce_has_type(ct, hlen, "application/cloudevents"))
        return ce_normalize(in, false, ctx->out, errstr, errstr_size);
    if (in->get_header && in->get_header(in->opaque, "ce_id", &hlen))
        return ce_normalize(in, true, ctx->out, errstr, errstr_size);
    if (in->len > 0)
        return dispatch(ctx, in, errstr, errstr_size);
    set_err(errstr, errstr_size, "tombstone: empty value");
    return FANOUT_NORM_SKIP;
}

enum fanout_norm_result fanout_normalize_input(const struct fanout_input *in,
                                               json_t *docs,
                                               json_t *rejects,
                                               char *errstr,
                                               size_t errstr_size)
{
    struct norm_ctx ctx = {0};
    enum fanout_norm_result res;

    if (!in || !json_is_array(docs) || (rejects && !json_is_array(rejects))) {
        set_err(errstr, errstr_size, "invalid document array");
        return FANOUT_NORM_ERROR;
    }
    /* Before anything is parsed or copied: a huge value must not cost a
     * huge allocation. */
    if (in->len > HR_EVENT_MAX_BYTES) {
        set_err(errstr, errstr_size, "payload too large: %zu bytes", in->len);
        return FANOUT_NORM_ERROR;
    }
    if (!in->value && in->len > 0) {
        set_err(errstr, errstr_size, "invalid payload");
        return FANOUT_NORM_ERROR;
    }
    ctx.out = json_array();
    ctx.rejects = rejects ? json_array() : NULL;
    ctx.key = in->key;
    ctx.key_len = in->key ? in->key_len : 0;
    if (!ctx.out || (rejects && !ctx.rejects)) {
        set_err(errstr, errstr_size, "out of memory");
        res = FANOUT_NORM_ERROR;
        goto out_free;
    }
    res = route_input(&ctx, in, errstr, errstr_size);
    if (res == FANOUT_NORM_OK &&
        (json_array_extend(docs, ctx.out) < 0 ||
         (rejects && json_array_extend(rejects, ctx.rejects) < 0))) {
        set_err(errstr, errstr_size, "out of memory");
        res = FANOUT_NORM_ERROR;
    }
out_free:
    json_decref(ctx.out);
    json_decref(ctx.rejects);
    return res;
}

enum fanout_norm_result fanout_normalize(const void *value,
                                         size_t len,
                                         hr_event_header_fn *get_header,
                                         void *opaque,
                                         json_t *docs,
                                         char *errstr,
                                         size_t errstr_size)
{
    const struct fanout_input in = {
        .value = value,
        .len = len,
        .get_header = get_header,
        .opaque = opaque,
    };

    return fanout_normalize_input(&in, docs, NULL, errstr, errstr_size);
}
