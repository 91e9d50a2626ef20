#include "fanout_pattern.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hr_banned.h"
#include "hr_compat.h"

/*
 * The compiled form is a trie of field names: an object level (fp_node)
 * holds fields and optional "$or" alternatives; a field holds a leaf (a
 * list of alternatives, fp_alt), a nested level, or both. A dotted key
 * "a.b" is compiled as {"a": {"b": ...}}, so every spelling of a path ends
 * in the same field and constraints on one object always meet in one level
 * (event-ruler flattens patterns the same way). Each field keeps its
 * flattened path from the root ("new.a.b") with the offset of every
 * segment, so that matching can look a field up under any dotted name a
 * document may spell it with, without building strings.
 *
 * Strings are copied with their lengths (JSON strings may hold NUL bytes)
 * and, for the case-insensitive operators, lowered once here so matching
 * only lowers the document side.
 */

enum fp_op {
    FP_EQ_STR,
    FP_EQ_NUM,
    FP_EQ_TRUE,
    FP_EQ_FALSE,
    FP_EQ_NULL,
    FP_PREFIX,
    FP_PREFIX_CI,
    FP_SUFFIX,
    FP_SUFFIX_CI,
    FP_EQ_CI,
    FP_WILDCARD,
    FP_NUMERIC,
    FP_EXISTS,
    FP_CIDR,
    FP_NOT_STRS,
    FP_NOT_NUMS,
    FP_NOT_PREFIX,
    FP_NOT_SUFFIX,
    FP_NOT_CI,
    FP_NOT_WILDCARD,
};

struct fp_str {
    char *s;
    size_t len;
};

/* A number from the pattern. Integers keep their exact value so that large
 * ids compare exactly with integer documents; d is always set. */
struct fp_num {
    bool is_int;
    json_int_t i;
    double d;
};

/* "a*b*c" as the literal segments between stars: nsegs = stars + 1. The
 * first segment is anchored at the start, the last at the end. Segments
 * point into buf. */
struct fp_wild {
    char *buf;
    struct fp_str *segs;
    size_t nsegs;
};

struct fp_range {
    double lo, hi;
    bool has_lo, has_hi;
    bool lo_open, hi_open;
};

struct fp_cidr {
    int family;
    unsigned char net[16];
    unsigned bits;
};

struct fp_alt {
    enum fp_op op;
    union {
        struct fp_str str; /* EQ_STR, PREFIX*, SUFFIX*, EQ_CI */
        struct fp_num num; /* EQ_NUM */
        struct fp_range range;
        bool exists;
        struct fp_cidr cidr;
        struct {
            struct fp_str *v;
            size_t n;
        } strs; /* NOT_STRS, NOT_CI, NOT_PREFIX, NOT_SUFFIX */
        struct {
            struct fp_num *v;
            size_t n;
        } nums; /* NOT_NUMS */
        struct {
            struct fp_wild *v;
            size_t n;
        } wilds; /* WILDCARD (n == 1), NOT_WILDCARD */
    } u;
};

struct fp_leaf {
    struct fp_alt *alts;
    size_t n;
    bool has_exists;
};

struct fp_node;

/*
 * A field at depth d (0: a key of the pattern's top level). Its own name
 * is path + off[d]; path + off[j] is the dotted name it has seen from the
 * object at depth j < d ("a.b" from the top for the field b of "a").
 * via[j] is set when a key written with dots reaches this field from depth
 * j: only then is that dotted name looked up in the document.
 */
struct fp_field {
    char *path;
    size_t path_len;
    size_t *off;        /* depth + 1 entries */
    unsigned char *via; /* depth entries, or NULL: none set */
    size_t depth;
    bool has_leaf;
    bool sub_via; /* some field of obj, at any depth, has a via[] */
    struct fp_leaf leaf;
    struct fp_node *obj; /* nested level, or NULL */
};

struct fp_node {
    struct fp_field *fields;
    size_t nfields, cap;
    struct fp_node *ors; /* "$or" alternatives; nors is 0 or >= 2 */
    size_t nors;
};

struct fanout_pattern {
    struct fp_node root;
};

/* ---- release --------------------------------------------------------- */

/* Everything below is safe on zeroed or partly built structures, so a
 * failed compile can release what it has built so far. */

static void fp_wild_release(struct fp_wild *w)
{
    free(w->buf);
    free(w->segs);
}

static void fp_strs_release(struct fp_str *v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(v[i].s);
    free(v);
}

static void fp_alt_release(struct fp_alt *alt)
{
    size_t i;

    switch (alt->op) {
    case FP_EQ_STR:
    case FP_PREFIX:
    case FP_PREFIX_CI:
    case FP_SUFFIX:
    case FP_SUFFIX_CI:
    case FP_EQ_CI:
        free(alt->u.str.s);
        break;
    case FP_NOT_STRS:
    case FP_NOT_CI:
    case FP_NOT_PREFIX:
    case FP_NOT_SUFFIX:
        fp_strs_release(alt->u.strs.v, alt->u.strs.n);
        break;
    case FP_NOT_NUMS:
        free(alt->u.nums.v);
        break;
    case FP_WILDCARD:
    case FP_NOT_WILDCARD:
        for (i = 0; i < alt->u.wilds.n; i++)
            fp_wild_release(&alt->u.wilds.v[i]);
        free(alt->u.wilds.v);
        break;
    case FP_EQ_NUM:
    case FP_EQ_TRUE:
    case FP_EQ_FALSE:
    case FP_EQ_NULL:
    case FP_NUMERIC:
    case FP_EXISTS:
    case FP_CIDR:
        break;
    }
}

static void fp_leaf_release(struct fp_leaf *leaf)
{
    size_t i;

    for (i = 0; i < leaf->n; i++)
        fp_alt_release(&leaf->alts[i]);
    free(leaf->alts);
    memset(leaf, 0, sizeof(*leaf));
}

static void fp_node_release(struct fp_node *node);

static void fp_field_release(struct fp_field *f)
{
    free(f->path);
    free(f->off);
    free(f->via);
    fp_leaf_release(&f->leaf);
    if (f->obj) {
        fp_node_release(f->obj);
        free(f->obj);
    }
}

static void fp_node_release(struct fp_node *node)
{
    size_t i;

    for (i = 0; i < node->nfields; i++)
        fp_field_release(&node->fields[i]);
    free(node->fields);
    for (i = 0; i < node->nors; i++)
        fp_node_release(&node->ors[i]);
    free(node->ors);
}

void fanout_pattern_free(struct fanout_pattern *p)
{
    if (!p)
        return;
    fp_node_release(&p->root);
    free(p);
}

/* ---- compile: context and errors ---------------------------------------- */

/* Copies of fields made to give each "$or" alternative the fields it
 * overrides (fp_expand_ors()) are capped: nested "$or"s multiply them. */
#define FP_MAX_COPIES 10000

/* The path of the value being compiled ("new.kind[1]"), for messages. A
 * path too long for the buffer is cut; only the message suffers. */
struct fp_cc {
    char path[256];
    size_t len;
    size_t copies;
    char *errstr;
    size_t errstr_size;
};

/* Append to the error path; returns the mark fp_path_pop() goes back to. */
HR_PRINTF(2, 3)
static size_t fp_path_push(struct fp_cc *cc, const char *fmt, ...)
{
    size_t mark = cc->len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cc->path + cc->len, sizeof(cc->path) - cc->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        cc->len += (size_t)n;
    if (cc->len >= sizeof(cc->path))
        cc->len = sizeof(cc->path) - 1;
    return mark;
}

static size_t fp_path_key(struct fp_cc *cc, const char *key)
{
    return fp_path_push(cc, "%s%s", cc->len ? "." : "", key);
}

static size_t fp_path_index(struct fp_cc *cc, size_t index)
{
    return fp_path_push(cc, "[%zu]", index);
}

static void fp_path_pop(struct fp_cc *cc, size_t mark)
{
    cc->len = mark;
    cc->path[mark] = '\0';
}

HR_PRINTF(2, 3)
static int fp_fail(struct fp_cc *cc, const char *fmt, ...)
{
    char msg[320];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(cc->errstr, cc->errstr_size, "%s: %s",
             cc->len ? cc->path : "(root)", msg);
    return -1;
}

static int fp_oom(struct fp_cc *cc)
{
    return fp_fail(cc, "out of memory");
}

/* What a value is, for "..., got <kind>" in messages. */
static const char *fp_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_length(v) ? "a string" : "an empty string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    case JSON_OBJECT:
        return json_object_size(v) ? "an object" : "an empty object";
    case JSON_ARRAY:
        break;
    }
    return json_array_size(v) ? "a list" : "an empty list";
}

/* Describe @v for a message that wants a non-empty string or a non-empty
 * list of them: "a number", "an empty list", "a list holding a number at
 * [1]". @allow_empty accepts "" (as anything-but wildcard does). */
static void
fp_describe_strs(const json_t *v, bool allow_empty, char *buf, size_t size)
{
    size_t i;
    json_t *e;

    snprintf(buf, size, "%s", fp_kind(v));
    if (!json_is_array(v))
        return;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) ||
            (!allow_empty && json_string_length(e) == 0)) {
            snprintf(buf, size, "a list holding %s at [%zu]", fp_kind(e), i);
            return;
        }
    }
}

/* jansson's iterators take a non-const object; compiling never writes. */
static json_t *fp_mut(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

/* The single key of a one-key object, or NULL. */
static const char *fp_only_key(const json_t *obj, json_t **value)
{
    void *iter;

    if (json_object_size(obj) != 1)
        return NULL;
    iter = json_object_iter(fp_mut(obj));
    *value = json_object_iter_value(iter);
    return json_object_iter_key(iter);
}

static unsigned char fp_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Copy @s (with its length); @lower folds ASCII letters (the only folding
 * equals-ignore-case does: other bytes, UTF-8 included, stay exact). */
static int fp_str_set(struct fp_str *dst, const char *s, size_t len, bool lower)
{
    size_t i;

    dst->s = malloc(len + 1);
    if (!dst->s)
        return -1;
    for (i = 0; i < len; i++)
        dst->s[i] = lower ? (char)fp_lower((unsigned char)s[i]) : s[i];
    dst->s[len] = '\0';
    dst->len = len;
    return 0;
}

static int fp_str_from_json(struct fp_cc *cc,
                            struct fp_str *dst,
                            const json_t *v,
                            bool lower)
{
    if (fp_str_set(dst, json_string_value(v), json_string_length(v), lower) < 0)
        return fp_oom(cc);
    return 0;
}

/*
 * A number of the pattern. jansson has already refused what overflows a
 * double (1E400: "real number overflow") and integers beyond int64. What it
 * lets through silently is underflow: 1E-325 reads as 0.0 and 1E-310 as a
 * denormal. Neither is what the user wrote (event-ruler refuses 1E-325),
 * so both are refused here. A decimal zero (0.0, 0e0) cannot be told from
 * an underflow once parsed, so it is refused too with a hint to write 0.
 */
static int fp_check_num(struct fp_cc *cc, const json_t *v)
{
    double d = json_number_value(v);

    if (json_is_integer(v))
        return 0;
    if (!isfinite(d))
        return fp_fail(cc, "number %g is not finite", d);
    if (d == 0.0)
        return fp_fail(cc, "number reads as 0.0: write zero as 0 (a "
                           "decimal zero cannot be told from a number too "
                           "small to represent, such as 1E-325)");
    if (fpclassify(d) == FP_SUBNORMAL)
        return fp_fail(cc,
                       "number %g is too small to represent exactly "
                       "(below 2.2e-308)",
                       d);
    return 0;
}

static int fp_num_from_json(struct fp_cc *cc, struct fp_num *n, const json_t *v)
{
    if (fp_check_num(cc, v) < 0)
        return -1;
    n->is_int = json_is_integer(v);
    n->i = n->is_int ? json_integer_value(v) : 0;
    n->d = json_number_value(v);
    return 0;
}

static bool fp_is_operator(const char *key, size_t len)
{
    static const char *const ops[] = {
        "prefix", "suffix", "equals-ignore-case", "wildcard", "numeric",
        "exists", "cidr",   "anything-but",       "exactly",
    };
    size_t i;

    for (i = 0; i < HR_ARRAY_SIZE(ops); i++)
        if (strlen(ops[i]) == len && !memcmp(key, ops[i], len))
            return true;
    return false;
}

/* ---- compile: operators ---------------------------------------------------
 */

static int fp_compile_wild(struct fp_cc *cc, const json_t *v, struct fp_wild *w)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    size_t i, nsegs = 1, seg = 0;
    char *out;

    for (i = 0; i < len; i++) {
        if (s[i] == '*') {
            if (i + 1 < len && s[i + 1] == '*')
                return fp_fail(cc, "consecutive '*' in wildcard '%s'", s);
            nsegs++;
        } else if (s[i] == '\\') {
            if (i + 1 >= len || (s[i + 1] != '*' && s[i + 1] != '\\'))
                return fp_fail(cc,
                               "invalid escape in wildcard '%s' (only \\* "
                               "and \\\\ are allowed)",
                               s);
            i++;
        }
    }
    w->buf = malloc(len + 1);
    w->segs = calloc(nsegs, sizeof(*w->segs));
    if (!w->buf || !w->segs)
        return fp_oom(cc);
    w->nsegs = nsegs;
    out = w->buf;
    w->segs[0].s = out;
    for (i = 0; i < len; i++) {
        if (s[i] == '*') {
            w->segs[++seg].s = out;
            continue;
        }
        if (s[i] == '\\')
            i++;
        *out++ = s[i];
        w->segs[seg].len++;
    }
    *out = '\0';
    return 0;
}

/* Whether @v is a string, or (with @list_ok) a non-empty list of strings;
 * @nonempty also refuses "". Sets *n to the number of strings. */
static bool fp_is_strs(const json_t *v, bool list_ok, bool nonempty, size_t *n)
{
    size_t i;

    if (json_is_string(v)) {
        *n = 1;
        return !nonempty || json_string_length(v) > 0;
    }
    if (!list_ok || !json_is_array(v) || json_array_size(v) == 0)
        return false;
    for (i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);

        if (!json_is_string(e) || (nonempty && json_string_length(e) == 0))
            return false;
    }
    *n = json_array_size(v);
    return true;
}

/* {"wildcard": "p"} or, under anything-but, "p" or ["p", ...]. */
static int fp_compile_wilds(struct fp_cc *cc,
                            const json_t *v,
                            bool list_ok,
                            struct fp_alt *alt)
{
    char got[64];
    size_t i, n = 0;

    if (!fp_is_strs(v, list_ok, false, &n)) {
        fp_describe_strs(v, true, got, sizeof(got));
        return fp_fail(cc, "%s, got %s",
                       list_ok ? "anything-but wildcard needs a string or a "
                                 "non-empty list of strings"
                               : "wildcard needs a string",
                       got);
    }
    alt->u.wilds.v = calloc(n, sizeof(*alt->u.wilds.v));
    if (!alt->u.wilds.v)
        return fp_oom(cc);
    alt->u.wilds.n = n;
    for (i = 0; i < n; i++) {
        const json_t *p = json_is_array(v) ? json_array_get(v, i) : v;

        if (fp_compile_wild(cc, p, &alt->u.wilds.v[i]) < 0)
            return -1;
    }
    return 0;
}

/* A string or a list of strings into alt->u.strs; @lower folds ASCII. */
static int fp_compile_strs(struct fp_cc *cc,
                           const json_t *v,
                           bool lower,
                           struct fp_alt *alt)
{
    size_t i, n = json_is_array(v) ? json_array_size(v) : 1;

    alt->u.strs.v = calloc(n, sizeof(*alt->u.strs.v));
    if (!alt->u.strs.v)
        return fp_oom(cc);
    alt->u.strs.n = n;
    for (i = 0; i < n; i++) {
        const json_t *s = json_is_array(v) ? json_array_get(v, i) : v;

        if (fp_str_from_json(cc, &alt->u.strs.v[i], s, lower) < 0)
            return -1;
    }
    return 0;
}

/* {"prefix": "s"} / {"suffix": "s"}, or with {"equals-ignore-case": "s"}
 * as the operand. */
static int fp_compile_affix(struct fp_cc *cc,
                            const char *name,
                            const json_t *v,
                            bool prefix,
                            struct fp_alt *alt)
{
    json_t *inner = NULL;
    const char *key;

    if (json_is_string(v)) {
        alt->op = prefix ? FP_PREFIX : FP_SUFFIX;
        return fp_str_from_json(cc, &alt->u.str, v, false);
    }
    if (json_is_object(v)) {
        key = fp_only_key(v, &inner);
        if (key && !strcmp(key, "equals-ignore-case") &&
            json_is_string(inner)) {
            alt->op = prefix ? FP_PREFIX_CI : FP_SUFFIX_CI;
            return fp_str_from_json(cc, &alt->u.str, inner, true);
        }
        if (key && !strcmp(key, "equals-ignore-case"))
            return fp_fail(cc,
                           "%s needs a string or {\"equals-ignore-case\": "
                           "string}, got {\"equals-ignore-case\": %s}",
                           name, fp_kind(inner));
        if (key)
            return fp_fail(cc,
                           "%s needs a string or {\"equals-ignore-case\": "
                           "string}, got {\"%s\": ...}",
                           name, key);
    }
    return fp_fail(cc,
                   "%s needs a string or {\"equals-ignore-case\": string}, "
                   "got %s",
                   name, fp_kind(v));
}

static int fp_numeric_op(const json_t *v, const char **op)
{
    static const char *const ops[] = {"=", "<", "<=", ">", ">="};
    size_t i;

    if (!json_is_string(v))
        return -1;
    for (i = 0; i < HR_ARRAY_SIZE(ops); i++) {
        if (!strcmp(json_string_value(v), ops[i])) {
            *op = ops[i];
            return 0;
        }
    }
    return -1;
}

/* ["=", n], ["<", n], ... or [">" | ">=", lo, "<" | "<=", hi], as the
 * EventBridge compiler accepts them: a lower bound comes first, and a range
 * must not be empty. */
static int
fp_compile_numeric(struct fp_cc *cc, const json_t *v, struct fp_range *r)
{
    const char *op = NULL, *op2 = NULL;
    size_t n = json_array_size(v);
    double x;

    if (!json_is_array(v))
        return fp_fail(cc,
                       "numeric needs an operator and a number, e.g. "
                       "[\">\", 0], got %s",
                       fp_kind(v));
    if (n < 2 || !json_is_string(json_array_get(v, 0)) ||
        !json_is_number(json_array_get(v, 1)))
        return fp_fail(cc,
                       "numeric needs an operator and a number, e.g. "
                       "[\">\", 0], got a list of %zu starting with %s",
                       n, n ? fp_kind(json_array_get(v, 0)) : "nothing");
    if (fp_numeric_op(json_array_get(v, 0), &op) < 0)
        return fp_fail(cc, "unknown numeric operator '%s'",
                       json_string_value(json_array_get(v, 0)));
    if (fp_check_num(cc, json_array_get(v, 1)) < 0)
        return -1;
    x = json_number_value(json_array_get(v, 1));
    if (op[0] == '=') {
        if (n != 2)
            return fp_fail(cc, "numeric '=' takes exactly one number");
        r->has_lo = r->has_hi = true;
        r->lo = r->hi = x;
        return 0;
    }
    if (op[0] == '<') {
        if (n != 2)
            return fp_fail(cc, "numeric range must give the lower bound "
                               "first: [\">\", lo, \"<\", hi]");
        r->has_hi = true;
        r->hi = x;
        r->hi_open = op[1] == '\0';
        return 0;
    }
    r->has_lo = true;
    r->lo = x;
    r->lo_open = op[1] == '\0';
    if (n == 2)
        return 0;
    if (n != 4)
        return fp_fail(cc, "numeric has %zu elements; a range has 4", n);
    if (fp_numeric_op(json_array_get(v, 2), &op2) < 0 || op2[0] != '<')
        return fp_fail(cc, "numeric range needs '<' or '<=' after the lower "
                           "bound");
    if (!json_is_number(json_array_get(v, 3)))
        return fp_fail(cc, "numeric '%s' needs a number, got %s", op2,
                       fp_kind(json_array_get(v, 3)));
    if (fp_check_num(cc, json_array_get(v, 3)) < 0)
        return -1;
    r->has_hi = true;
    r->hi = json_number_value(json_array_get(v, 3));
    r->hi_open = op2[1] == '\0';
    if (!(r->lo < r->hi))
        return fp_fail(cc, "numeric range is empty: %g is not below %g", r->lo,
                       r->hi);
    return 0;
}

static int fp_compile_cidr(struct fp_cc *cc, const json_t *v, struct fp_cidr *c)
{
    const char *s = json_string_value(v);
    const char *slash;
    char addr[64];
    unsigned bits = 0, max;
    size_t alen, i;

    if (!json_is_string(v))
        return fp_fail(cc, "cidr needs a string like '10.0.0.0/24', got %s",
                       fp_kind(v));
    slash = strchr(s, '/');
    alen = slash ? (size_t)(slash - s) : 0;
    if (!slash || alen == 0 || alen >= sizeof(addr) || slash[1] == '\0' ||
        strlen(slash + 1) > 3)
        return fp_fail(cc, "invalid cidr '%s'", s);
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, c->net) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, c->net) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        return fp_fail(cc, "invalid cidr '%s'", s);
    }
    for (i = 1; slash[i]; i++) {
        if (slash[i] < '0' || slash[i] > '9')
            return fp_fail(cc, "invalid cidr '%s'", s);
        bits = bits * 10 + (unsigned)(slash[i] - '0');
    }
    if (bits > max)
        return fp_fail(cc, "invalid cidr '%s'", s);
    c->bits = bits;
    return 0;
}

/* A list under anything-but: only strings or only numbers, not empty. */
static int
fp_compile_not_list(struct fp_cc *cc, const json_t *v, struct fp_alt *alt)
{
    size_t i, n = json_array_size(v), nstr = 0, nnum = 0;

    for (i = 0; i < n; i++) {
        nstr += json_is_string(json_array_get(v, i));
        nnum += json_is_number(json_array_get(v, i));
    }
    if (n == 0)
        return fp_fail(cc, "anything-but list must be non-empty and hold only "
                           "strings or only numbers, got an empty list");
    if (nstr != n && nnum != n) {
        for (i = 0; i < n; i++)
            if (!json_is_string(json_array_get(v, i)) &&
                !json_is_number(json_array_get(v, i)))
                break;
        if (i < n)
            return fp_fail(cc,
                           "anything-but list must hold only strings or "
                           "only numbers, got %s at [%zu]",
                           fp_kind(json_array_get(v, i)), i);
        return fp_fail(cc, "anything-but list must hold only strings or only "
                           "numbers, got strings and numbers");
    }
    if (nnum == n) {
        alt->op = FP_NOT_NUMS;
        alt->u.nums.v = calloc(n, sizeof(*alt->u.nums.v));
        if (!alt->u.nums.v)
            return fp_oom(cc);
        alt->u.nums.n = n;
        for (i = 0; i < n; i++) {
            size_t mark = fp_path_index(cc, i);

            if (fp_num_from_json(cc, &alt->u.nums.v[i], json_array_get(v, i)) <
                0)
                return -1;
            fp_path_pop(cc, mark);
        }
        return 0;
    }
    alt->op = FP_NOT_STRS;
    return fp_compile_strs(cc, v, false, alt);
}

/*
 * {"anything-but": {"prefix": ...}} and its kin: prefix and suffix take a
 * non-empty string or a non-empty list of them (event-ruler refuses an
 * empty prefix: it would exclude everything); equals-ignore-case and
 * wildcard take a string or a non-empty list.
 */
static int fp_compile_not_operator(struct fp_cc *cc,
                                   const char *key,
                                   const json_t *inner,
                                   struct fp_alt *alt)
{
    char got[64];
    size_t n;

    if (!strcmp(key, "prefix") || !strcmp(key, "suffix")) {
        alt->op = key[0] == 'p' ? FP_NOT_PREFIX : FP_NOT_SUFFIX;
        if (!fp_is_strs(inner, true, true, &n)) {
            fp_describe_strs(inner, false, got, sizeof(got));
            return fp_fail(cc,
                           "anything-but %s needs a non-empty string or a "
                           "non-empty list of them, got %s",
                           key, got);
        }
        return fp_compile_strs(cc, inner, false, alt);
    }
    if (!strcmp(key, "equals-ignore-case")) {
        alt->op = FP_NOT_CI;
        if (!fp_is_strs(inner, true, false, &n)) {
            fp_describe_strs(inner, true, got, sizeof(got));
            return fp_fail(cc,
                           "anything-but equals-ignore-case needs a string "
                           "or a non-empty list of strings, got %s",
                           got);
        }
        return fp_compile_strs(cc, inner, true, alt);
    }
    if (!strcmp(key, "wildcard")) {
        alt->op = FP_NOT_WILDCARD;
        return fp_compile_wilds(cc, inner, true, alt);
    }
    return fp_fail(cc,
                   "unsupported anything-but operator '%s' (prefix, suffix, "
                   "equals-ignore-case, wildcard)",
                   key);
}

static int
fp_compile_anything_but(struct fp_cc *cc, const json_t *v, struct fp_alt *alt)
{
    json_t *inner = NULL;
    const char *key;

    if (json_is_string(v)) {
        alt->op = FP_NOT_STRS;
        return fp_compile_strs(cc, v, false, alt);
    }
    if (json_is_number(v)) {
        alt->op = FP_NOT_NUMS;
        alt->u.nums.v = calloc(1, sizeof(*alt->u.nums.v));
        if (!alt->u.nums.v)
            return fp_oom(cc);
        alt->u.nums.n = 1;
        return fp_num_from_json(cc, &alt->u.nums.v[0], v);
    }
    if (json_is_array(v))
        return fp_compile_not_list(cc, v, alt);
    if (!json_is_object(v))
        return fp_fail(cc,
                       "anything-but needs a string, a number, a list or "
                       "an operator object, got %s",
                       fp_kind(v));
    key = fp_only_key(v, &inner);
    if (!key)
        return fp_fail(cc, "anything-but takes exactly one operator, got %zu",
                       json_object_size(v));
    return fp_compile_not_operator(cc, key, inner, alt);
}

static int
fp_compile_operator(struct fp_cc *cc, const json_t *obj, struct fp_alt *alt)
{
    json_t *v = NULL;
    const char *key;

    if (json_object_size(obj) == 0)
        return fp_fail(cc, "empty operator object");
    key = fp_only_key(obj, &v);
    if (!key)
        return fp_fail(cc, "only one operator allowed per object, got %zu",
                       json_object_size(obj));
    if (!strcmp(key, "prefix"))
        return fp_compile_affix(cc, key, v, true, alt);
    if (!strcmp(key, "suffix"))
        return fp_compile_affix(cc, key, v, false, alt);
    if (!strcmp(key, "equals-ignore-case")) {
        if (!json_is_string(v))
            return fp_fail(cc, "equals-ignore-case needs a string, got %s",
                           fp_kind(v));
        alt->op = FP_EQ_CI;
        return fp_str_from_json(cc, &alt->u.str, v, true);
    }
    if (!strcmp(key, "wildcard")) {
        alt->op = FP_WILDCARD;
        return fp_compile_wilds(cc, v, false, alt);
    }
    if (!strcmp(key, "numeric")) {
        alt->op = FP_NUMERIC;
        return fp_compile_numeric(cc, v, &alt->u.range);
    }
    if (!strcmp(key, "exists")) {
        if (!json_is_boolean(v))
            return fp_fail(cc, "exists needs true or false, got %s",
                           fp_kind(v));
        alt->op = FP_EXISTS;
        alt->u.exists = json_is_true(v);
        return 0;
    }
    if (!strcmp(key, "anything-but"))
        return fp_compile_anything_but(cc, v, alt);
    if (!strcmp(key, "cidr")) {
        alt->op = FP_CIDR;
        return fp_compile_cidr(cc, v, &alt->u.cidr);
    }
    return fp_fail(cc, "unknown operator '%s'", key);
}

/* ---- compile: structure ---------------------------------------------------
 */

static int fp_compile_alt(struct fp_cc *cc, const json_t *v, struct fp_alt *alt)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        alt->op = FP_EQ_STR;
        return fp_str_from_json(cc, &alt->u.str, v, false);
    case JSON_INTEGER:
    case JSON_REAL:
        alt->op = FP_EQ_NUM;
        return fp_num_from_json(cc, &alt->u.num, v);
    case JSON_TRUE:
        alt->op = FP_EQ_TRUE;
        return 0;
    case JSON_FALSE:
        alt->op = FP_EQ_FALSE;
        return 0;
    case JSON_NULL:
        alt->op = FP_EQ_NULL;
        return 0;
    case JSON_OBJECT:
        return fp_compile_operator(cc, v, alt);
    case JSON_ARRAY:
        break;
    }
    return fp_fail(cc, "nested arrays are not allowed as values");
}

static int
fp_compile_leaf(struct fp_cc *cc, const json_t *arr, struct fp_leaf *leaf)
{
    size_t i, n = json_array_size(arr), mark;

    if (n == 0)
        return fp_fail(cc, "empty array is not allowed (list at least one "
                           "value)");
    leaf->alts = calloc(n, sizeof(*leaf->alts));
    if (!leaf->alts)
        return fp_oom(cc);
    leaf->n = n;
    for (i = 0; i < n; i++) {
        mark = fp_path_index(cc, i);
        if (fp_compile_alt(cc, json_array_get(arr, i), &leaf->alts[i]) < 0)
            return -1;
        fp_path_pop(cc, mark);
        leaf->has_exists |= leaf->alts[i].op == FP_EXISTS;
    }
    return 0;
}

static const char *fp_field_name(const struct fp_field *f, size_t *len)
{
    *len = f->path_len - f->off[f->depth];
    return f->path + f->off[f->depth];
}

static struct fp_field *
fp_node_find(const struct fp_node *node, const char *seg, size_t len)
{
    const char *name;
    size_t i, nlen;

    for (i = 0; i < node->nfields; i++) {
        name = fp_field_name(&node->fields[i], &nlen);
        if (nlen == len && !memcmp(name, seg, len))
            return &node->fields[i];
    }
    return NULL;
}

/* A new, empty slot at the end of @node's fields, or NULL. */
static struct fp_field *fp_node_add(struct fp_node *node)
{
    struct fp_field *grown;
    size_t cap;

    if (node->nfields == node->cap) {
        cap = node->cap ? node->cap * 2 : 4;
        grown = realloc(node->fields, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        node->fields = grown;
        node->cap = cap;
    }
    memset(&node->fields[node->nfields], 0, sizeof(node->fields[0]));
    return &node->fields[node->nfields++];
}

/* The field @seg of @node, whose own field is @parent (NULL at the top),
 * added when missing; NULL when memory runs out. */
static struct fp_field *fp_node_field(struct fp_node *node,
                                      const struct fp_field *parent,
                                      const char *seg,
                                      size_t len)
{
    size_t depth = parent ? parent->depth + 1 : 0;
    size_t plen = parent ? parent->path_len + 1 : 0;
    struct fp_field *f = fp_node_find(node, seg, len);

    if (f)
        return f;
    f = fp_node_add(node);
    if (!f)
        return NULL;
    f->depth = depth;
    f->path = malloc(plen + len + 1);
    f->off = calloc(depth + 1, sizeof(*f->off));
    if (!f->path || !f->off)
        return NULL; /* released with the node */
    if (parent) {
        memcpy(f->path, parent->path, parent->path_len);
        f->path[parent->path_len] = '.';
        memcpy(f->off, parent->off, depth * sizeof(*f->off));
    }
    memcpy(f->path + plen, seg, len);
    f->path[plen + len] = '\0';
    f->path_len = plen + len;
    f->off[depth] = plen;
    return f;
}

/* Let @f be looked up under its dotted names from the depths @from to its
 * parent's: a key written with dots reached it from depth @from. */
static int fp_field_via(struct fp_field *f, size_t from)
{
    size_t j;

    if (from >= f->depth)
        return 0;
    if (!f->via)
        f->via = calloc(f->depth, sizeof(*f->via));
    if (!f->via)
        return -1;
    for (j = from; j < f->depth; j++)
        f->via[j] = 1;
    return 0;
}

static int fp_compile_node(struct fp_cc *cc,
                           const json_t *obj,
                           const struct fp_field *parent,
                           bool in_or,
                           struct fp_node *node);

static int fp_compile_or(struct fp_cc *cc,
                         const json_t *v,
                         const struct fp_field *parent,
                         struct fp_node *node)
{
    size_t i, n = json_array_size(v), mark;

    if (!json_is_array(v) || n < 2)
        return fp_fail(cc, "$or needs an array of at least 2 patterns, got %s",
                       json_is_array(v) && n == 1 ? "a list of 1" : fp_kind(v));
    if (node->nors)
        return fp_fail(cc, "$or is given twice for the same object (through "
                           "a dotted key and a nested object); merge them "
                           "into one $or");
    node->ors = calloc(n, sizeof(*node->ors));
    if (!node->ors)
        return fp_oom(cc);
    node->nors = n;
    for (i = 0; i < n; i++) {
        const json_t *alt = json_array_get(v, i);

        mark = fp_path_index(cc, i);
        if (!json_is_object(alt))
            return fp_fail(cc, "$or alternatives must be objects, got %s",
                           fp_kind(alt));
        if (fp_compile_node(cc, alt, parent, true, &node->ors[i]) < 0)
            return -1;
        fp_path_pop(cc, mark);
    }
    return 0;
}

/* The value of the field @f, named by the last segment @seg of a key. */
static int fp_compile_value(struct fp_cc *cc,
                            const char *seg,
                            size_t slen,
                            const json_t *v,
                            bool in_or,
                            struct fp_field *f)
{
    if (json_is_array(v)) {
        if (f->has_leaf)
            return fp_fail(cc,
                           "field '%s' is given twice (a dotted key and a "
                           "nested object name the same field); list its "
                           "values once",
                           f->path);
        f->has_leaf = true;
        return fp_compile_leaf(cc, v, &f->leaf);
    }
    if (json_is_object(v)) {
        if (json_object_size(v) == 0)
            return fp_fail(cc, "empty object is not allowed");
        if (!f->obj)
            f->obj = calloc(1, sizeof(*f->obj));
        if (!f->obj)
            return fp_oom(cc);
        return fp_compile_node(cc, v, f, in_or, f->obj);
    }
    if (fp_is_operator(seg, slen))
        return fp_fail(cc,
                       "must be an array or an object (operators go "
                       "inside the array: [{\"%.*s\": ...}])",
                       (int)slen, seg);
    return fp_fail(cc, "must be an array of values or an object, not %s",
                   fp_kind(v));
}

/*
 * One key of a pattern object: "a" or a dotted "a.b.c", which is the same
 * as {"a": {"b": {"c": v}}} and lands in the same fields as any other
 * spelling of that path in this object.
 */
static int fp_compile_key(struct fp_cc *cc,
                          const char *key,
                          size_t klen,
                          const json_t *v,
                          const struct fp_field *parent,
                          bool in_or,
                          struct fp_node *node)
{
    const char *seg = key, *end = key + klen, *dot;
    size_t slen, from = parent ? parent->depth + 1 : 0;
    struct fp_field *f;

    if (in_or && fp_is_operator(key, klen))
        return fp_fail(cc,
                       "operator name '%s' cannot be a field name inside "
                       "$or",
                       key);
    for (;;) {
        dot = memchr(seg, '.', (size_t)(end - seg));
        slen = (size_t)((dot ? dot : end) - seg);
        f = fp_node_field(node, parent, seg, slen);
        if (!f || fp_field_via(f, from) < 0)
            return fp_oom(cc);
        if (!dot)
            return fp_compile_value(cc, seg, slen, v, in_or, f);
        if (!f->obj)
            f->obj = calloc(1, sizeof(*f->obj));
        if (!f->obj)
            return fp_oom(cc);
        parent = f;
        node = f->obj;
        seg = dot + 1;
    }
}

static int fp_compile_node(struct fp_cc *cc,
                           const json_t *obj,
                           const struct fp_field *parent,
                           bool in_or,
                           struct fp_node *node)
{
    size_t mark;
    const char *key;
    json_t *v;
    void *iter;
    int rc;

    if (json_object_size(obj) == 0)
        return fp_fail(cc, "empty object is not allowed");
    for (iter = json_object_iter(fp_mut(obj)); iter;
         iter = json_object_iter_next(fp_mut(obj), iter)) {
        size_t klen = json_object_iter_key_len(iter);

        key = json_object_iter_key(iter);
        v = json_object_iter_value(iter);
        mark = fp_path_key(cc, key);
        if (klen == 3 && !memcmp(key, "$or", 3))
            rc = fp_compile_or(cc, v, parent, node);
        else
            rc = fp_compile_key(cc, key, klen, v, parent, in_or, node);
        if (rc < 0)
            return -1;
        fp_path_pop(cc, mark);
    }
    return 0;
}

/* ---- compile: "$or" overrides ---------------------------------------------
 */

/*
 * event-ruler reads {"f": A, "$or": [{"f": B}, {"g": C}]} as the two
 * patterns {"f": B} and {"f": A, "g": C}: a field inside an alternative
 * replaces the same field outside it. fp_expand_ors() gives each
 * alternative a copy of every outer field some alternative names (the
 * alternative's own leaves win), and keeps the fields no alternative names
 * outside, where they are matched once.
 */

static int fp_alt_copy(struct fp_alt *dst, const struct fp_alt *src)
{
    size_t i, n;

    *dst = *src;
    switch (src->op) {
    case FP_EQ_STR:
    case FP_PREFIX:
    case FP_PREFIX_CI:
    case FP_SUFFIX:
    case FP_SUFFIX_CI:
    case FP_EQ_CI:
        dst->u.str.s = NULL;
        return fp_str_set(&dst->u.str, src->u.str.s, src->u.str.len, false);
    case FP_NOT_STRS:
    case FP_NOT_CI:
    case FP_NOT_PREFIX:
    case FP_NOT_SUFFIX:
        n = src->u.strs.n;
        dst->u.strs.v = calloc(n, sizeof(*dst->u.strs.v));
        if (!dst->u.strs.v) {
            dst->u.strs.n = 0;
            return -1;
        }
        for (i = 0; i < n; i++)
            if (fp_str_set(&dst->u.strs.v[i], src->u.strs.v[i].s,
                           src->u.strs.v[i].len, false) < 0)
                return -1;
        return 0;
    case FP_NOT_NUMS:
        n = src->u.nums.n;
        dst->u.nums.v = malloc(n * sizeof(*dst->u.nums.v));
        if (!dst->u.nums.v) {
            dst->u.nums.n = 0;
            return -1;
        }
        memcpy(dst->u.nums.v, src->u.nums.v, n * sizeof(*dst->u.nums.v));
        return 0;
    case FP_WILDCARD:
    case FP_NOT_WILDCARD:
        n = src->u.wilds.n;
        dst->u.wilds.v = calloc(n, sizeof(*dst->u.wilds.v));
        if (!dst->u.wilds.v) {
            dst->u.wilds.n = 0;
            return -1;
        }
        for (i = 0; i < n; i++) {
            const struct fp_wild *w = &src->u.wilds.v[i];
            struct fp_wild *c = &dst->u.wilds.v[i];
            const struct fp_str *last = &w->segs[w->nsegs - 1];
            size_t blen = (size_t)(last->s - w->buf) + last->len, k;

            c->buf = malloc(blen + 1);
            c->segs = calloc(w->nsegs, sizeof(*c->segs));
            if (!c->buf || !c->segs)
                return -1;
            memcpy(c->buf, w->buf, blen + 1);
            c->nsegs = w->nsegs;
            for (k = 0; k < w->nsegs; k++) {
                c->segs[k].s = c->buf + (w->segs[k].s - w->buf);
                c->segs[k].len = w->segs[k].len;
            }
        }
        return 0;
    case FP_EQ_NUM:
    case FP_EQ_TRUE:
    case FP_EQ_FALSE:
    case FP_EQ_NULL:
    case FP_NUMERIC:
    case FP_EXISTS:
    case FP_CIDR:
        break;
    }
    return 0;
}

static int fp_leaf_copy(struct fp_leaf *dst, const struct fp_leaf *src)
{
    size_t i;

    dst->alts = calloc(src->n, sizeof(*dst->alts));
    if (!dst->alts)
        return -1;
    dst->has_exists = src->has_exists;
    for (i = 0; i < src->n; i++) {
        dst->n++;
        if (fp_alt_copy(&dst->alts[i], &src->alts[i]) < 0)
            return -1;
    }
    return 0;
}

static int
fp_node_copy(struct fp_cc *cc, struct fp_node *dst, const struct fp_node *src);

/* Deep copy of @src into the zeroed @dst. */
static int fp_field_copy(struct fp_cc *cc,
                         struct fp_field *dst,
                         const struct fp_field *src)
{
    if (++cc->copies > FP_MAX_COPIES)
        return fp_fail(cc,
                       "$or alternatives override fields too many times "
                       "(over %d copies); simplify the pattern",
                       FP_MAX_COPIES);
    dst->path = malloc(src->path_len + 1);
    dst->off = malloc((src->depth + 1) * sizeof(*dst->off));
    if (!dst->path || !dst->off)
        return fp_oom(cc);
    memcpy(dst->path, src->path, src->path_len + 1);
    memcpy(dst->off, src->off, (src->depth + 1) * sizeof(*dst->off));
    if (src->via) {
        dst->via = malloc(src->depth);
        if (!dst->via)
            return fp_oom(cc);
        memcpy(dst->via, src->via, src->depth);
    }
    dst->path_len = src->path_len;
    dst->depth = src->depth;
    dst->has_leaf = src->has_leaf;
    if (src->has_leaf && fp_leaf_copy(&dst->leaf, &src->leaf) < 0)
        return fp_oom(cc);
    if (src->obj) {
        dst->obj = calloc(1, sizeof(*dst->obj));
        if (!dst->obj)
            return fp_oom(cc);
        return fp_node_copy(cc, dst->obj, src->obj);
    }
    return 0;
}

static int
fp_node_copy(struct fp_cc *cc, struct fp_node *dst, const struct fp_node *src)
{
    struct fp_field *f;
    size_t i;

    for (i = 0; i < src->nfields; i++) {
        f = fp_node_add(dst);
        if (!f)
            return fp_oom(cc);
        if (fp_field_copy(cc, f, &src->fields[i]) < 0)
            return -1;
    }
    if (src->nors == 0)
        return 0;
    dst->ors = calloc(src->nors, sizeof(*dst->ors));
    if (!dst->ors)
        return fp_oom(cc);
    dst->nors = src->nors;
    for (i = 0; i < src->nors; i++)
        if (fp_node_copy(cc, &dst->ors[i], &src->ors[i]) < 0)
            return -1;
    return 0;
}

/* Name the flattened path of @f in the next message. */
static void fp_path_field(struct fp_cc *cc, const struct fp_field *f)
{
    fp_path_pop(cc, 0);
    fp_path_push(cc, "%s", f->path);
}

/* Whether an alternative of @ors (or of their own "$or"s) names @name. */
static bool fp_ors_name(const struct fp_node *ors,
                        size_t nors,
                        const char *name,
                        size_t len)
{
    size_t i;

    for (i = 0; i < nors; i++)
        if (fp_node_find(&ors[i], name, len) ||
            fp_ors_name(ors[i].ors, ors[i].nors, name, len))
            return true;
    return false;
}

static int fp_node_underlay(struct fp_cc *cc,
                            struct fp_node *dst,
                            const struct fp_node *src);

/* Add the outer field @src to the alternative @dst, whose own leaves win. */
static int fp_field_underlay(struct fp_cc *cc,
                             struct fp_node *dst,
                             const struct fp_field *src)
{
    const char *name;
    struct fp_field *f;
    size_t len, k;
    bool clash;

    name = fp_field_name(src, &len);
    f = fp_node_find(dst, name, len);
    if (!f) {
        f = fp_node_add(dst);
        if (!f)
            return fp_oom(cc);
        return fp_field_copy(cc, f, src);
    }
    for (k = 0; src->via && k < src->depth; k++)
        if (src->via[k] && fp_field_via(f, k) < 0)
            return fp_oom(cc);
    if (src->has_leaf && !f->has_leaf) {
        f->has_leaf = true;
        if (fp_leaf_copy(&f->leaf, &src->leaf) < 0)
            return fp_oom(cc);
    }
    if (!src->obj)
        return 0;
    if (!f->obj) {
        f->obj = calloc(1, sizeof(*f->obj));
        if (!f->obj)
            return fp_oom(cc);
        return fp_node_copy(cc, f->obj, src->obj);
    }
    /* The outer field's own "$or" would override the alternative's
     * fields, or meet the alternative's "$or": which one wins is not
     * clear, so such a pattern must spell the combinations out. */
    clash = src->obj->nors && f->obj->nors;
    for (k = 0; src->obj->nors && !clash && k < f->obj->nfields; k++) {
        name = fp_field_name(&f->obj->fields[k], &len);
        clash = fp_ors_name(src->obj->ors, src->obj->nors, name, len);
    }
    if (clash) {
        fp_path_field(cc, src);
        return fp_fail(cc, "a $or inside this object outside a $or "
                           "alternative meets the alternative's own $or or "
                           "fields here; which one overrides is ambiguous, "
                           "so write the combinations out");
    }
    return fp_node_underlay(cc, f->obj, src->obj);
}

static int fp_node_underlay(struct fp_cc *cc,
                            struct fp_node *dst,
                            const struct fp_node *src)
{
    size_t i;

    for (i = 0; i < src->nfields; i++)
        if (fp_field_underlay(cc, dst, &src->fields[i]) < 0)
            return -1;
    if (src->nors == 0)
        return 0;
    dst->ors = calloc(src->nors, sizeof(*dst->ors));
    if (!dst->ors)
        return fp_oom(cc);
    dst->nors = src->nors;
    for (i = 0; i < src->nors; i++)
        if (fp_node_copy(cc, &dst->ors[i], &src->ors[i]) < 0)
            return -1;
    return 0;
}

static int fp_expand_ors(struct fp_cc *cc, struct fp_node *node)
{
    struct fp_field *f;
    const char *name;
    size_t i, k, len, kept = 0;

    for (i = 0; i < node->nfields; i++) {
        f = &node->fields[i];
        name = fp_field_name(f, &len);
        if (!node->nors || !fp_ors_name(node->ors, node->nors, name, len)) {
            node->fields[kept++] = *f;
            continue;
        }
        for (k = 0; k < node->nors; k++) {
            if (fp_field_underlay(cc, &node->ors[k], f) < 0) {
                /* keep what is left releasable */
                node->fields[kept++] = *f;
                memmove(&node->fields[kept], &node->fields[i + 1],
                        (node->nfields - i - 1) * sizeof(*f));
                node->nfields = kept + (node->nfields - i - 1);
                return -1;
            }
        }
        fp_field_release(f);
    }
    node->nfields = kept;
    for (i = 0; i < node->nors; i++)
        if (fp_expand_ors(cc, &node->ors[i]) < 0)
            return -1;
    for (i = 0; i < node->nfields; i++)
        if (node->fields[i].obj && fp_expand_ors(cc, node->fields[i].obj) < 0)
            return -1;
    return 0;
}

/* Set sub_via on every field of @node; returns whether a field of @node,
 * at any depth, has a via[] set. */
static bool fp_mark_sub_via(struct fp_node *node)
{
    struct fp_field *f;
    bool any = false;
    size_t i;

    for (i = 0; i < node->nfields; i++) {
        f = &node->fields[i];
        f->sub_via = f->obj && fp_mark_sub_via(f->obj);
        any |= f->sub_via || f->via;
    }
    for (i = 0; i < node->nors; i++)
        any |= fp_mark_sub_via(&node->ors[i]);
    return any;
}

struct fanout_pattern *
fanout_pattern_compile(const json_t *pattern, char *errstr, size_t errstr_size)
{
    struct fp_cc cc = {.errstr = errstr, .errstr_size = errstr_size};
    struct fanout_pattern *p;

    if (!json_is_object(pattern)) {
        fp_fail(&cc, "pattern must be a JSON object, got %s", fp_kind(pattern));
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        fp_oom(&cc);
        return NULL;
    }
    if (fp_compile_node(&cc, pattern, NULL, false, &p->root) < 0 ||
        fp_expand_ors(&cc, &p->root) < 0) {
        fanout_pattern_free(p);
        return NULL;
    }
    (void)fp_mark_sub_via(&p->root);
    return p;
}

/* ---- match -----------------------------------------------------------------
 */

static bool fp_str_eq(const struct fp_str *p, const char *s, size_t len)
{
    return len == p->len && !memcmp(s, p->s, len);
}

/* @p is already lowered; only @s is folded. */
static bool fp_ci_eq(const char *p, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (fp_lower((unsigned char)s[i]) != (unsigned char)p[i])
            return false;
    return true;
}

static bool
fp_has_prefix(const struct fp_str *p, const char *s, size_t len, bool ci)
{
    if (len < p->len)
        return false;
    return ci ? fp_ci_eq(p->s, s, p->len) : !memcmp(s, p->s, p->len);
}

static bool
fp_has_suffix(const struct fp_str *p, const char *s, size_t len, bool ci)
{
    if (len < p->len)
        return false;
    s += len - p->len;
    return ci ? fp_ci_eq(p->s, s, p->len) : !memcmp(s, p->s, p->len);
}

/* Leftmost occurrence of @needle (non-empty) in @hay, or NULL. */
static const char *
fp_find(const char *hay, size_t hlen, const struct fp_str *needle)
{
    const char *end, *at;

    if (hlen < needle->len)
        return NULL;
    end = hay + (hlen - needle->len) + 1;
    while (hay < end) {
        at = memchr(hay, needle->s[0], (size_t)(end - hay));
        if (!at)
            return NULL;
        if (!memcmp(at, needle->s, needle->len))
            return at;
        hay = at + 1;
    }
    return NULL;
}

/*
 * With '*' the only metacharacter, anchoring the first and last segments
 * and then placing each middle segment at its leftmost occurrence is
 * exact: an earlier placement never leaves less room for the rest. No
 * backtracking, linear in the document per segment.
 */
static bool fp_wild_match(const struct fp_wild *w, const char *s, size_t len)
{
    const struct fp_str *first = &w->segs[0], *last = &w->segs[w->nsegs - 1];
    size_t i, pos, end;
    const char *at;

    if (w->nsegs == 1)
        return fp_str_eq(first, s, len);
    if (len < first->len + last->len || memcmp(s, first->s, first->len) ||
        memcmp(s + len - last->len, last->s, last->len))
        return false;
    pos = first->len;
    end = len - last->len;
    for (i = 1; i + 1 < w->nsegs; i++) {
        at = fp_find(s + pos, end - pos, &w->segs[i]);
        if (!at)
            return false;
        pos = (size_t)(at - s) + w->segs[i].len;
    }
    return true;
}

static bool fp_num_eq(const struct fp_num *n, const json_t *v)
{
    if (n->is_int && json_is_integer(v))
        return n->i == json_integer_value(v);
    return n->d == json_number_value(v);
}

static bool fp_in_range(const struct fp_range *r, double x)
{
    if (r->has_lo && (r->lo_open ? !(x > r->lo) : !(x >= r->lo)))
        return false;
    if (r->has_hi && (r->hi_open ? !(x < r->hi) : !(x <= r->hi)))
        return false;
    return true;
}

static bool fp_cidr_match(const struct fp_cidr *c, const char *s, size_t len)
{
    unsigned char addr[16];
    unsigned full = c->bits / 8, rest = c->bits % 8;
    unsigned char mask;

    /* inet_pton needs the NUL that jansson keeps after every string; an
     * embedded NUL would cut the text short, so refuse it. */
    if (len >= 64 || memchr(s, '\0', len))
        return false;
    if (inet_pton(c->family, s, addr) != 1)
        return false;
    if (memcmp(addr, c->net, full))
        return false;
    if (rest == 0)
        return true;
    mask = (unsigned char)(0xffu << (8 - rest));
    return (addr[full] & mask) == (c->net[full] & mask);
}

/* One scalar document value (string, number, boolean or null) against one
 * non-exists alternative. */
static bool fp_match_scalar(const struct fp_alt *alt, const json_t *v)
{
    bool is_str = json_is_string(v);
    const char *s = is_str ? json_string_value(v) : NULL;
    size_t len = is_str ? json_string_length(v) : 0;
    size_t i;

    switch (alt->op) {
    case FP_EQ_STR:
        return is_str && fp_str_eq(&alt->u.str, s, len);
    case FP_EQ_NUM:
        return json_is_number(v) && fp_num_eq(&alt->u.num, v);
    case FP_EQ_TRUE:
        return json_is_true(v);
    case FP_EQ_FALSE:
        return json_is_false(v);
    case FP_EQ_NULL:
        return json_is_null(v);
    case FP_PREFIX:
    case FP_PREFIX_CI:
        return is_str &&
               fp_has_prefix(&alt->u.str, s, len, alt->op == FP_PREFIX_CI);
    case FP_SUFFIX:
    case FP_SUFFIX_CI:
        return is_str &&
               fp_has_suffix(&alt->u.str, s, len, alt->op == FP_SUFFIX_CI);
    case FP_EQ_CI:
        return is_str && len == alt->u.str.len &&
               fp_ci_eq(alt->u.str.s, s, len);
    case FP_WILDCARD:
        return is_str && fp_wild_match(&alt->u.wilds.v[0], s, len);
    case FP_NUMERIC:
        return json_is_number(v) &&
               fp_in_range(&alt->u.range, json_number_value(v));
    case FP_CIDR:
        return is_str && fp_cidr_match(&alt->u.cidr, s, len);
    case FP_NOT_STRS:
        for (i = 0; is_str && i < alt->u.strs.n; i++)
            if (fp_str_eq(&alt->u.strs.v[i], s, len))
                return false;
        return true;
    case FP_NOT_NUMS:
        for (i = 0; json_is_number(v) && i < alt->u.nums.n; i++)
            if (fp_num_eq(&alt->u.nums.v[i], v))
                return false;
        return true;
    case FP_NOT_PREFIX:
        for (i = 0; is_str && i < alt->u.strs.n; i++)
            if (fp_has_prefix(&alt->u.strs.v[i], s, len, false))
                return false;
        return true;
    case FP_NOT_SUFFIX:
        for (i = 0; is_str && i < alt->u.strs.n; i++)
            if (fp_has_suffix(&alt->u.strs.v[i], s, len, false))
                return false;
        return true;
    case FP_NOT_CI:
        for (i = 0; is_str && i < alt->u.strs.n; i++)
            if (len == alt->u.strs.v[i].len &&
                fp_ci_eq(alt->u.strs.v[i].s, s, len))
                return false;
        return true;
    case FP_NOT_WILDCARD:
        for (i = 0; is_str && i < alt->u.wilds.n; i++)
            if (fp_wild_match(&alt->u.wilds.v[i], s, len))
                return false;
        return true;
    case FP_EXISTS:
        break;
    }
    return false;
}

/* Whether @v holds a leaf value: a scalar (null included), or an array with
 * one somewhere inside. Objects are not leaves, as EventBridge sees it. */
static bool fp_has_value(const json_t *v)
{
    size_t i;

    if (!v || json_is_object(v))
        return false;
    if (!json_is_array(v))
        return true;
    for (i = 0; i < json_array_size(v); i++)
        if (fp_has_value(json_array_get(v, i)))
            return true;
    return false;
}

/* Any scalar in @v (arrays flattened, objects skipped) against the leaf's
 * value alternatives. */
static bool fp_match_values(const struct fp_leaf *leaf, const json_t *v)
{
    size_t i;

    if (!v || json_is_object(v))
        return false;
    if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); i++)
            if (fp_match_values(leaf, json_array_get(v, i)))
                return true;
        return false;
    }
    for (i = 0; i < leaf->n; i++)
        if (leaf->alts[i].op != FP_EXISTS && fp_match_scalar(&leaf->alts[i], v))
            return true;
    return false;
}

static bool fp_match_leaf(const struct fp_leaf *leaf, const json_t *v)
{
    size_t i;

    if (leaf->has_exists) {
        bool has = fp_has_value(v);

        for (i = 0; i < leaf->n; i++)
            if (leaf->alts[i].op == FP_EXISTS && leaf->alts[i].u.exists == has)
                return true;
    }
    return fp_match_values(leaf, v);
}

/*
 * What a level of the pattern is matched against: the object at its path
 * (obj below, or NULL), and, when the pattern spells a path with dots,
 * more objects a document may hold its fields in. A document may spell a
 * path with dotted keys too, and event-ruler's flattening reads them the
 * same: the field "new.a.b" is also the key "a.b" of "new", or "new.a.b"
 * of the top level. So a level may also see objects above it on the way
 * down (with their depth), and looks a field up in each under the name the
 * field has from there (fp_lookup()). The list lives on the stack of the
 * matching calls; nothing is allocated, and the common case (no dots in
 * the pattern) passes no list at all.
 */
struct fp_src {
    const json_t *obj;
    size_t depth;
    const struct fp_src *next;
};

static const json_t *fp_own(const struct fp_field *f, const json_t *obj)
{
    size_t off = f->off[f->depth];

    return obj ? json_object_getn(obj, f->path + off, f->path_len - off) : NULL;
}

/* @f in @src, under the name it has from there; NULL when missing, or when
 * the pattern did not spell @f with dots from there. */
static const json_t *fp_lookup(const struct fp_field *f,
                               const struct fp_src *src)
{
    size_t off = f->off[src->depth];

    if (src->depth != f->depth && !(f->via && f->via[src->depth]))
        return NULL;
    return json_object_getn(src->obj, f->path + off, f->path_len - off);
}

/* The leaf of @f over every object of the view: a value alternative
 * matches any value found; exists asks whether any object holds one. */
static bool fp_match_leaf_view(const struct fp_field *f,
                               const json_t *obj,
                               const struct fp_src *more)
{
    const struct fp_leaf *leaf = &f->leaf;
    const json_t *v = fp_own(f, obj);
    bool has = false;
    size_t i;

    for (;;) {
        if (v) {
            if (fp_match_values(leaf, v))
                return true;
            if (leaf->has_exists && !has)
                has = fp_has_value(v);
        }
        if (!more)
            break;
        v = fp_lookup(f, more);
        more = more->next;
    }
    for (i = 0; leaf->has_exists && i < leaf->n; i++)
        if (leaf->alts[i].op == FP_EXISTS && leaf->alts[i].u.exists == has)
            return true;
    return false;
}

static bool fp_match_fields(const struct fp_node *node,
                            const json_t *obj,
                            const struct fp_src *more);

static bool fp_match_nested(const struct fp_field *f,
                            const struct fp_src *rest,
                            const struct fp_src *child);

/*
 * The value @v found for @f in one object of the view: an object joins the
 * nested level's view; an array tries each element in turn (one element
 * must match the whole nested level, so fields never combine across
 * elements; an empty array is like a missing value); anything else adds
 * nothing.
 */
static bool fp_match_nested_value(const struct fp_field *f,
                                  const struct fp_src *rest,
                                  const struct fp_src *child,
                                  const json_t *v)
{
    struct fp_src real;
    size_t i, n;

    if (json_is_object(v)) {
        real.obj = v;
        real.depth = f->depth + 1;
        real.next = child;
        return fp_match_nested(f, rest, &real);
    }
    if (json_is_array(v) && (n = json_array_size(v)) > 0) {
        for (i = 0; i < n; i++)
            if (fp_match_nested_value(f, rest, child, json_array_get(v, i)))
                return true;
        return false;
    }
    return fp_match_nested(f, rest, child);
}

/* The nested level of @f: build its view from the objects of the parent
 * view still in @rest onto @child, then match it. The objects of the
 * parent view stay in it only when a field below spells its path with
 * dots from there. */
static bool fp_match_nested(const struct fp_field *f,
                            const struct fp_src *rest,
                            const struct fp_src *child)
{
    struct fp_src keep;

    if (!rest)
        return fp_match_fields(f->obj, NULL, child);
    if (f->sub_via) {
        keep.obj = rest->obj;
        keep.depth = rest->depth;
        keep.next = child;
        child = &keep;
    }
    return fp_match_nested_value(f, rest->next, child, fp_lookup(f, rest));
}

/* The nested level of @f against the one value @v, when nothing below is
 * spelled with dots and the view is one object (the common case): no
 * list is built. */
static bool fp_match_nested_one(const struct fp_field *f, const json_t *v)
{
    size_t i, n;

    if (json_is_object(v))
        return fp_match_fields(f->obj, v, NULL);
    if (json_is_array(v) && (n = json_array_size(v)) > 0) {
        for (i = 0; i < n; i++)
            if (fp_match_nested_one(f, json_array_get(v, i)))
                return true;
        return false;
    }
    return fp_match_fields(f->obj, NULL, NULL);
}

/* fp_match_nested() from a view given as @obj and @more. Kept apart so
 * that fp_match_fields() has no list of its own on its stack. */
static bool fp_match_nested_view(const struct fp_field *f,
                                 const json_t *obj,
                                 const struct fp_src *more)
{
    struct fp_src top;

    if (!obj)
        return fp_match_nested(f, more, NULL);
    top.obj = obj;
    top.depth = f->depth;
    top.next = more;
    return fp_match_nested(f, &top, NULL);
}

/* The fields and "$or" of @node against the object @obj (NULL: none, so
 * no fields) and the further objects @more (NULL: none). */
static bool fp_match_fields(const struct fp_node *node,
                            const json_t *obj,
                            const struct fp_src *more)
{
    const struct fp_field *f;
    size_t i;

    for (i = 0; i < node->nfields; i++) {
        f = &node->fields[i];
        if (f->has_leaf && !(more ? fp_match_leaf_view(f, obj, more)
                                  : fp_match_leaf(&f->leaf, fp_own(f, obj))))
            return false;
        if (!f->obj)
            continue;
        if (!f->sub_via && !more) {
            if (!fp_match_nested_one(f, fp_own(f, obj)))
                return false;
            continue;
        }
        if (!fp_match_nested_view(f, obj, more))
            return false;
    }
    if (node->nors == 0)
        return true;
    for (i = 0; i < node->nors; i++)
        if (fp_match_fields(&node->ors[i], obj, more))
            return true;
    return false;
}

bool fanout_pattern_match(const struct fanout_pattern *p, const json_t *doc)
{
    return fp_match_fields(&p->root, json_is_object(doc) ? doc : NULL, NULL);
}
