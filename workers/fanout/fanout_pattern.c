#include "fanout_pattern.h"

#include <arpa/inet.h>
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
 * The compiled form mirrors the pattern: an object level (fp_node) holds
 * fields and optional "$or" alternatives; a field holds either a nested
 * level or a leaf, which is a list of alternatives (fp_alt). Strings are
 * copied with their lengths (JSON strings may hold NUL bytes) and, for the
 * case-insensitive operators, lowered once here so matching only lowers
 * the document side.
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
        struct fp_str str; /* EQ_STR, PREFIX*, SUFFIX*, EQ_CI, NOT_PREFIX,
                              NOT_SUFFIX */
        struct fp_num num; /* EQ_NUM */
        struct fp_range range;
        bool exists;
        struct fp_cidr cidr;
        struct {
            struct fp_str *v;
            size_t n;
        } strs; /* NOT_STRS, NOT_CI */
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

struct fp_field {
    struct fp_str key;
    bool is_leaf;
    struct fp_leaf leaf;
    struct fp_node *obj;
};

struct fp_node {
    struct fp_field *fields;
    size_t nfields;
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
    case FP_NOT_PREFIX:
    case FP_NOT_SUFFIX:
        free(alt->u.str.s);
        break;
    case FP_NOT_STRS:
    case FP_NOT_CI:
        for (i = 0; i < alt->u.strs.n; i++)
            free(alt->u.strs.v[i].s);
        free(alt->u.strs.v);
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

static void fp_node_release(struct fp_node *node);

static void fp_field_release(struct fp_field *f)
{
    size_t i;

    free(f->key.s);
    for (i = 0; i < f->leaf.n; i++)
        fp_alt_release(&f->leaf.alts[i]);
    free(f->leaf.alts);
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

/* The path of the value being compiled ("new.kind[1]"), for messages. A
 * path too long for the buffer is cut; only the message suffers. */
struct fp_cc {
    char path[256];
    size_t len;
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
    char msg[256];
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

static void fp_num_from_json(struct fp_num *n, const json_t *v)
{
    n->is_int = json_is_integer(v);
    n->i = n->is_int ? json_integer_value(v) : 0;
    n->d = json_number_value(v);
}

static bool fp_is_operator(const char *key)
{
    static const char *const ops[] = {
        "prefix", "suffix", "equals-ignore-case", "wildcard", "numeric",
        "exists", "cidr",   "anything-but",       "exactly",
    };
    size_t i;

    for (i = 0; i < HR_ARRAY_SIZE(ops); i++)
        if (!strcmp(key, ops[i]))
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

/* {"wildcard": "p"} or, under anything-but, "p" or ["p", ...]. */
static int fp_compile_wilds(struct fp_cc *cc,
                            const json_t *v,
                            bool list_ok,
                            struct fp_alt *alt)
{
    size_t i, n = 1;

    if (list_ok && json_is_array(v)) {
        n = json_array_size(v);
        for (i = 0; i < n; i++)
            if (!json_is_string(json_array_get(v, i)))
                n = 0;
    } else if (!json_is_string(v)) {
        n = 0;
    }
    if (n == 0)
        return fp_fail(cc, list_ok ? "anything-but wildcard needs a string "
                                     "or a non-empty list of strings"
                                   : "wildcard needs a string");
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
    }
    return fp_fail(cc, "%s needs a string or {\"equals-ignore-case\": string}",
                   name);
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

    if (!json_is_array(v) || n < 2 || !json_is_string(json_array_get(v, 0)) ||
        !json_is_number(json_array_get(v, 1)))
        return fp_fail(cc, "numeric needs an operator and a number, e.g. "
                           "[\">\", 0]");
    if (fp_numeric_op(json_array_get(v, 0), &op) < 0)
        return fp_fail(cc, "unknown numeric operator '%s'",
                       json_string_value(json_array_get(v, 0)));
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
        return fp_fail(cc, "numeric '%s' needs a number", op2);
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
        return fp_fail(cc, "cidr needs a string like '10.0.0.0/24'");
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
    if (n == 0 || (nstr != n && nnum != n))
        return fp_fail(cc, "anything-but list must be non-empty and hold only "
                           "strings or only numbers");
    if (nnum == n) {
        alt->op = FP_NOT_NUMS;
        alt->u.nums.v = calloc(n, sizeof(*alt->u.nums.v));
        if (!alt->u.nums.v)
            return fp_oom(cc);
        alt->u.nums.n = n;
        for (i = 0; i < n; i++)
            fp_num_from_json(&alt->u.nums.v[i], json_array_get(v, i));
        return 0;
    }
    alt->op = FP_NOT_STRS;
    alt->u.strs.v = calloc(n, sizeof(*alt->u.strs.v));
    if (!alt->u.strs.v)
        return fp_oom(cc);
    alt->u.strs.n = n;
    for (i = 0; i < n; i++)
        if (fp_str_from_json(cc, &alt->u.strs.v[i], json_array_get(v, i),
                             false) < 0)
            return -1;
    return 0;
}

/* {"anything-but": {"equals-ignore-case": "s" or ["s", ...]}} */
static int
fp_compile_not_ci(struct fp_cc *cc, const json_t *v, struct fp_alt *alt)
{
    size_t i, n = 1;

    if (json_is_array(v)) {
        n = json_array_size(v);
        for (i = 0; i < n; i++)
            if (!json_is_string(json_array_get(v, i)))
                n = 0;
    } else if (!json_is_string(v)) {
        n = 0;
    }
    if (n == 0)
        return fp_fail(cc, "anything-but equals-ignore-case needs a string "
                           "or a non-empty list of strings");
    alt->op = FP_NOT_CI;
    alt->u.strs.v = calloc(n, sizeof(*alt->u.strs.v));
    if (!alt->u.strs.v)
        return fp_oom(cc);
    alt->u.strs.n = n;
    for (i = 0; i < n; i++) {
        const json_t *s = json_is_array(v) ? json_array_get(v, i) : v;

        if (fp_str_from_json(cc, &alt->u.strs.v[i], s, true) < 0)
            return -1;
    }
    return 0;
}

static int
fp_compile_anything_but(struct fp_cc *cc, const json_t *v, struct fp_alt *alt)
{
    json_t *inner = NULL;
    const char *key;

    if (json_is_string(v)) {
        alt->op = FP_NOT_STRS;
        alt->u.strs.v = calloc(1, sizeof(*alt->u.strs.v));
        if (!alt->u.strs.v)
            return fp_oom(cc);
        alt->u.strs.n = 1;
        return fp_str_from_json(cc, &alt->u.strs.v[0], v, false);
    }
    if (json_is_number(v)) {
        alt->op = FP_NOT_NUMS;
        alt->u.nums.v = calloc(1, sizeof(*alt->u.nums.v));
        if (!alt->u.nums.v)
            return fp_oom(cc);
        alt->u.nums.n = 1;
        fp_num_from_json(&alt->u.nums.v[0], v);
        return 0;
    }
    if (json_is_array(v))
        return fp_compile_not_list(cc, v, alt);
    if (!json_is_object(v))
        return fp_fail(cc, "anything-but needs a string, a number, a list or "
                           "an operator object");
    key = fp_only_key(v, &inner);
    if (!key)
        return fp_fail(cc, "anything-but takes exactly one operator");
    if (!strcmp(key, "prefix") || !strcmp(key, "suffix")) {
        if (!json_is_string(inner) || json_string_length(inner) == 0)
            return fp_fail(cc, "anything-but %s needs a non-empty string", key);
        alt->op = key[0] == 'p' ? FP_NOT_PREFIX : FP_NOT_SUFFIX;
        return fp_str_from_json(cc, &alt->u.str, inner, false);
    }
    if (!strcmp(key, "equals-ignore-case"))
        return fp_compile_not_ci(cc, inner, alt);
    if (!strcmp(key, "wildcard")) {
        alt->op = FP_NOT_WILDCARD;
        return fp_compile_wilds(cc, inner, true, alt);
    }
    return fp_fail(cc, "unsupported anything-but operator '%s'", key);
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
            return fp_fail(cc, "equals-ignore-case needs a string");
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
            return fp_fail(cc, "exists needs true or false");
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
        fp_num_from_json(&alt->u.num, v);
        return 0;
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

static int fp_compile_node(struct fp_cc *cc,
                           const json_t *obj,
                           bool in_or,
                           struct fp_node *node);

static int
fp_compile_or(struct fp_cc *cc, const json_t *v, struct fp_node *node)
{
    size_t i, n = json_array_size(v), mark;

    if (!json_is_array(v) || n < 2)
        return fp_fail(cc, "$or needs an array of at least 2 patterns");
    node->ors = calloc(n, sizeof(*node->ors));
    if (!node->ors)
        return fp_oom(cc);
    node->nors = n;
    for (i = 0; i < n; i++) {
        const json_t *alt = json_array_get(v, i);

        mark = fp_path_index(cc, i);
        if (!json_is_object(alt))
            return fp_fail(cc, "$or alternatives must be objects");
        if (fp_compile_node(cc, alt, true, &node->ors[i]) < 0)
            return -1;
        fp_path_pop(cc, mark);
    }
    return 0;
}

static int fp_compile_field(struct fp_cc *cc,
                            const char *key,
                            size_t klen,
                            const json_t *v,
                            bool in_or,
                            struct fp_field *f)
{
    if (in_or && fp_is_operator(key))
        return fp_fail(cc,
                       "operator name '%s' cannot be a field name inside "
                       "$or",
                       key);
    if (fp_str_set(&f->key, key, klen, false) < 0)
        return fp_oom(cc);
    if (json_is_array(v)) {
        f->is_leaf = true;
        return fp_compile_leaf(cc, v, &f->leaf);
    }
    if (json_is_object(v)) {
        f->obj = calloc(1, sizeof(*f->obj));
        if (!f->obj)
            return fp_oom(cc);
        return fp_compile_node(cc, v, in_or, f->obj);
    }
    if (fp_is_operator(key))
        return fp_fail(cc,
                       "must be an array or an object (operators go "
                       "inside the array: [{\"%s\": ...}])",
                       key);
    return fp_fail(cc, "must be an array of values or an object, not %s",
                   json_is_string(v)   ? "a string"
                   : json_is_number(v) ? "a number"
                   : json_is_null(v)   ? "null"
                                       : "a boolean");
}

static int fp_compile_node(struct fp_cc *cc,
                           const json_t *obj,
                           bool in_or,
                           struct fp_node *node)
{
    size_t n = json_object_size(obj), mark;
    const char *key;
    json_t *v;
    void *iter;
    int rc;

    if (n == 0)
        return fp_fail(cc, "empty object is not allowed");
    node->fields = calloc(n, sizeof(*node->fields));
    if (!node->fields)
        return fp_oom(cc);
    for (iter = json_object_iter(fp_mut(obj)); iter;
         iter = json_object_iter_next(fp_mut(obj), iter)) {
        size_t klen = json_object_iter_key_len(iter);

        key = json_object_iter_key(iter);
        v = json_object_iter_value(iter);
        mark = fp_path_key(cc, key);
        if (klen == 3 && !memcmp(key, "$or", 3)) {
            rc = fp_compile_or(cc, v, node);
        } else {
            rc = fp_compile_field(cc, key, klen, v, in_or,
                                  &node->fields[node->nfields++]);
        }
        if (rc < 0)
            return -1;
        fp_path_pop(cc, mark);
    }
    return 0;
}

struct fanout_pattern *
fanout_pattern_compile(const json_t *pattern, char *errstr, size_t errstr_size)
{
    struct fp_cc cc = {.errstr = errstr, .errstr_size = errstr_size};
    struct fanout_pattern *p;

    if (!json_is_object(pattern)) {
        fp_fail(&cc, "pattern must be a JSON object");
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        fp_oom(&cc);
        return NULL;
    }
    if (fp_compile_node(&cc, pattern, false, &p->root) < 0) {
        fanout_pattern_free(p);
        return NULL;
    }
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
        return !(is_str && fp_has_prefix(&alt->u.str, s, len, false));
    case FP_NOT_SUFFIX:
        return !(is_str && fp_has_suffix(&alt->u.str, s, len, false));
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

static bool fp_match_node(const struct fp_node *node, const json_t *v);

/* The fields and "$or" of @node against one value @v: an object, or
 * anything else (missing, scalar), which has no fields. */
static bool fp_match_fields(const struct fp_node *node, const json_t *v)
{
    const struct fp_field *f;
    const json_t *child;
    size_t i;

    for (i = 0; i < node->nfields; i++) {
        f = &node->fields[i];
        child = json_is_object(v) ? json_object_getn(v, f->key.s, f->key.len)
                                  : NULL;
        if (f->is_leaf ? !fp_match_leaf(&f->leaf, child)
                       : !fp_match_node(f->obj, child))
            return false;
    }
    if (node->nors == 0)
        return true;
    for (i = 0; i < node->nors; i++)
        if (fp_match_fields(&node->ors[i], v))
            return true;
    return false;
}

/* An array matches when one element matches the whole level, so fields of
 * one nested pattern never combine across elements; an empty array is
 * like a missing value. */
static bool fp_match_node(const struct fp_node *node, const json_t *v)
{
    size_t i, n;

    if (!json_is_array(v))
        return fp_match_fields(node, v);
    n = json_array_size(v);
    if (n == 0)
        return fp_match_fields(node, NULL);
    for (i = 0; i < n; i++)
        if (fp_match_node(node, json_array_get(v, i)))
            return true;
    return false;
}

bool fanout_pattern_match(const struct fanout_pattern *p, const json_t *doc)
{
    return fp_match_fields(&p->root, doc);
}
