#include "fanout_value.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_arena.h"
#include "hr_banned.h"
#include "hr_compat.h"

enum fv_kind {
    FV_LITERAL,
    FV_PATH,
    FV_TEMPLATE,
    FV_OBJECT,
    FV_ARRAY,
};

enum fv_root {
    FV_ROOT_DOC,
    FV_ROOT_ITEM,
    FV_ROOT_INDEX,
};

/* One step of a path: an object key, or an array index when key is NULL. */
struct fv_step {
    char *key;
    size_t index;
};

struct fv_path {
    enum fv_root root;
    struct fv_step *steps;
    size_t n;
};

/* A template is literal text and paths, alternating. */
struct fv_piece {
    char *text; /* literal text, or NULL for a path */
    struct fv_path path;
};

struct fanout_value {
    enum fv_kind kind;
    json_t *literal;
    struct fv_path path;
    struct fv_piece *pieces;
    size_t npieces;
    char **keys; /* FV_OBJECT */
    struct fanout_value **children;
    size_t nchildren;
};

static void path_release(struct fv_path *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->steps[i].key);
    free(p->steps);
    memset(p, 0, sizeof(*p));
}

static void
add_step(struct fv_path *p, const char *key, size_t len, size_t index)
{
    p->steps = realloc(p->steps, (p->n + 1) * sizeof(*p->steps));
    HR_ASSERT(p->steps);
    p->steps[p->n].key = key ? strndup(key, len) : NULL;
    p->steps[p->n].index = index;
    p->n++;
}

/*
 * Parse "a.b[2].c" (after "$." or inside "{{ }}"): keys separated by dots,
 * array indices (decimal digits) in brackets. A first key "item" or "index"
 * is the for_each scope when @in_for_each. Messages show the path as
 * written: @shown ("$." or "") followed by @s.
 */
static int path_parse(struct fv_path *p,
                      const char *shown,
                      const char *s,
                      size_t len,
                      int in_for_each,
                      char *errstr,
                      size_t errstr_size)
{
    size_t i = 0;

    memset(p, 0, sizeof(*p));
    if (!len)
        goto bad;
    while (i < len) {
        size_t start = i;

        if (s[i] == '[') {
            char *end;
            unsigned long long idx;

            /* strtoull() would also take blanks and a sign. */
            if (i + 1 >= len || !isdigit((unsigned char)s[i + 1]))
                goto bad;
            idx = strtoull(s + i + 1, &end, 10);
            if (end == s + i + 1 || (size_t)(end - s) >= len || *end != ']')
                goto bad;
            add_step(p, NULL, 0, (size_t)idx);
            i = (size_t)(end - s) + 1;
            if (i < len && s[i] == '.') {
                i++;
                if (i == len)
                    goto bad;
            } else if (i < len && s[i] != '[') {
                goto bad;
            }
            continue;
        }
        while (i < len && s[i] != '.' && s[i] != '[')
            i++;
        if (i == start)
            goto bad;
        add_step(p, s + start, i - start, 0);
        if (i < len && s[i] == '.') {
            i++;
            if (i == len)
                goto bad;
        }
    }
    if (p->n && p->steps[0].key &&
        (!strcmp(p->steps[0].key, "item") ||
         !strcmp(p->steps[0].key, "index"))) {
        if (!in_for_each) {
            snprintf(errstr, errstr_size,
                     "'%s%.*s' is only available inside for_each", shown,
                     (int)len, s);
            path_release(p);
            return -1;
        }
        p->root =
            !strcmp(p->steps[0].key, "item") ? FV_ROOT_ITEM : FV_ROOT_INDEX;
        free(p->steps[0].key);
        memmove(p->steps, p->steps + 1, (p->n - 1) * sizeof(*p->steps));
        p->n--;
        if (p->root == FV_ROOT_INDEX && p->n) {
            snprintf(errstr, errstr_size, "'$.index' has no fields");
            path_release(p);
            return -1;
        }
    }
    return 0;
bad:
    snprintf(errstr, errstr_size, "invalid path '%s%.*s'", shown, (int)len, s);
    path_release(p);
    return -1;
}

static int compile_string(struct fanout_value *v,
                          const char *s,
                          int in_for_each,
                          char *errstr,
                          size_t errstr_size)
{
    const char *open = strstr(s, "{{");

    if (s[0] == '$') {
        v->kind = FV_PATH;
        if (!s[1])
            return 0; /* the whole document */
        if (s[1] != '.') {
            snprintf(errstr, errstr_size, "invalid path '%s'", s);
            return -1;
        }
        return path_parse(&v->path, "$.", s + 2, strlen(s + 2), in_for_each,
                          errstr, errstr_size);
    }
    if (!open) {
        v->kind = FV_LITERAL;
        v->literal = json_string(s);
        return v->literal ? 0 : -1;
    }
    v->kind = FV_TEMPLATE;
    while (*s) {
        struct fv_piece *piece;
        const char *close;

        v->pieces = realloc(v->pieces, (v->npieces + 1) * sizeof(*v->pieces));
        HR_ASSERT(v->pieces);
        piece = &v->pieces[v->npieces];
        memset(piece, 0, sizeof(*piece));
        open = strstr(s, "{{");
        if (open != s) {
            size_t n = open ? (size_t)(open - s) : strlen(s);

            piece->text = strndup(s, n);
            v->npieces++;
            s += n;
            continue;
        }
        close = strstr(s + 2, "}}");
        if (!close) {
            snprintf(errstr, errstr_size, "unterminated '{{' in template");
            return -1;
        }
        {
            const char *p = s + 2, *e = close;

            while (p < e && *p == ' ')
                p++;
            while (e > p && e[-1] == ' ')
                e--;
            if (p < e && *p == '$') {
                p++;
                if (p < e && *p == '.')
                    p++;
            }
            if (p == e) {
                snprintf(errstr, errstr_size, "empty '{{}}' in template");
                return -1;
            }
            if (path_parse(&piece->path, "", p, (size_t)(e - p), in_for_each,
                           errstr, errstr_size))
                return -1;
        }
        v->npieces++;
        s = close + 2;
    }
    return 0;
}

struct fanout_value *fanout_value_compile(const json_t *spec,
                                          int in_for_each,
                                          char *errstr,
                                          size_t errstr_size)
{
    struct fanout_value *v = calloc(1, sizeof(*v));
    const char *key;
    json_t *child;
    size_t i;

    HR_ASSERT(v);
    if (json_is_string(spec)) {
        if (compile_string(v, json_string_value(spec), in_for_each, errstr,
                           errstr_size))
            goto out_free;
        return v;
    }
    if (json_is_object(spec) || json_is_array(spec)) {
        size_t n = json_is_object(spec) ? json_object_size(spec)
                                        : json_array_size(spec);

        v->kind = json_is_object(spec) ? FV_OBJECT : FV_ARRAY;
        v->children = calloc(n ? n : 1, sizeof(*v->children));
        v->keys = calloc(n ? n : 1, sizeof(*v->keys));
        HR_ASSERT(v->children && v->keys);
        if (json_is_object(spec)) {
            json_object_foreach((json_t *)(uintptr_t)spec, key, child)
            {
                char sub[256];

                v->keys[v->nchildren] = strdup(key);
                v->children[v->nchildren] =
                    fanout_value_compile(child, in_for_each, sub, sizeof(sub));
                if (!v->children[v->nchildren]) {
                    snprintf(errstr, errstr_size, "%s: %s", key, sub);
                    v->nchildren++;
                    goto out_free;
                }
                v->nchildren++;
            }
        } else {
            json_array_foreach(spec, i, child)
            {
                char sub[256];

                v->children[v->nchildren] =
                    fanout_value_compile(child, in_for_each, sub, sizeof(sub));
                if (!v->children[v->nchildren]) {
                    snprintf(errstr, errstr_size, "[%zu]: %s", i, sub);
                    goto out_free;
                }
                v->nchildren++;
            }
        }
        return v;
    }
    v->kind = FV_LITERAL;
    v->literal = json_deep_copy(spec);
    return v;
out_free:
    fanout_value_free(v);
    return NULL;
}

void fanout_value_free(struct fanout_value *v)
{
    if (!v)
        return;
    json_decref(v->literal);
    path_release(&v->path);
    for (size_t i = 0; i < v->npieces; i++) {
        free(v->pieces[i].text);
        path_release(&v->pieces[i].path);
    }
    free(v->pieces);
    for (size_t i = 0; i < v->nchildren; i++) {
        fanout_value_free(v->children[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->children);
    free(v->keys);
    free(v);
}

/* Follow @path from its root; NULL when absent. $.index has no JSON value
 * to borrow (NULL here) and is handled by the callers. */
static const json_t *path_get(const struct fv_path *path,
                              const struct fanout_scope *scope)
{
    const json_t *cur = path->root == FV_ROOT_ITEM ? scope->item : scope->doc;

    if (path->root == FV_ROOT_INDEX)
        return NULL;
    for (size_t i = 0; cur && i < path->n; i++) {
        const struct fv_step *step = &path->steps[i];

        cur = step->key ? json_object_get(cur, step->key)
                        : json_array_get(cur, step->index);
    }
    return cur;
}

static json_t *path_eval(const struct fv_path *path,
                         const struct fanout_scope *scope)
{
    const json_t *found;

    if (path->root == FV_ROOT_INDEX)
        return json_integer((json_int_t)scope->index);
    found = path_get(path, scope);
    return found ? json_deep_copy(found) : json_null();
}

/* Append the text form of @value to a growing buffer. */
static void
append_text(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
        HR_ASSERT(*buf);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void
append_value(char **buf, size_t *len, size_t *cap, const json_t *value)
{
    char *dumped;

    if (!value || json_is_null(value))
        return;
    if (json_is_string(value)) {
        append_text(buf, len, cap, json_string_value(value),
                    json_string_length(value));
        return;
    }
    dumped = hr_arena_json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (dumped) {
        append_text(buf, len, cap, dumped, strlen(dumped));
        free(dumped);
    }
}

static char *template_eval(const struct fanout_value *v,
                           const struct fanout_scope *scope,
                           size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;

    append_text(&buf, &len, &cap, "", 0);
    for (size_t i = 0; i < v->npieces; i++) {
        const struct fv_piece *piece = &v->pieces[i];

        if (piece->text) {
            append_text(&buf, &len, &cap, piece->text, strlen(piece->text));
        } else if (piece->path.root == FV_ROOT_INDEX) {
            char num[24];
            int n = snprintf(num, sizeof(num), "%zu", scope->index);

            append_text(&buf, &len, &cap, num, (size_t)n);
        } else {
            append_value(&buf, &len, &cap, path_get(&piece->path, scope));
        }
    }
    *out_len = len;
    return buf;
}

json_t *fanout_value_eval(const struct fanout_value *v,
                          const struct fanout_scope *scope)
{
    json_t *out;

    switch (v->kind) {
    case FV_LITERAL:
        return json_incref(v->literal);
    case FV_PATH:
        if (!v->path.n && v->path.root == FV_ROOT_DOC)
            return json_deep_copy(scope->doc);
        return path_eval(&v->path, scope);
    case FV_TEMPLATE: {
        size_t len;
        char *s = template_eval(v, scope, &len);

        out = json_stringn_nocheck(s, len);
        free(s);
        return out ? out : json_null();
    }
    case FV_OBJECT:
        out = json_object();
        for (size_t i = 0; i < v->nchildren; i++)
            json_object_set_new(out, v->keys[i],
                                fanout_value_eval(v->children[i], scope));
        return out;
    case FV_ARRAY:
        out = json_array();
        for (size_t i = 0; i < v->nchildren; i++)
            json_array_append_new(out,
                                  fanout_value_eval(v->children[i], scope));
        return out;
    }
    return json_null();
}

const json_t *fanout_value_lookup(const struct fanout_value *v,
                                  const struct fanout_scope *scope)
{
    if (v->kind != FV_PATH)
        return NULL;
    if (!v->path.n && v->path.root == FV_ROOT_DOC)
        return scope->doc;
    return path_get(&v->path, scope);
}

size_t fanout_value_string(const struct fanout_value *v,
                           const struct fanout_scope *scope,
                           char *buf,
                           size_t size)
{
    char *text = NULL;
    size_t len = 0, cap = 0;

    if (v->kind == FV_TEMPLATE) {
        text = template_eval(v, scope, &len);
    } else if (v->kind == FV_PATH || v->kind == FV_LITERAL) {
        const json_t *value =
            v->kind == FV_LITERAL ? v->literal : fanout_value_lookup(v, scope);

        append_text(&text, &len, &cap, "", 0);
        if (v->kind == FV_PATH && v->path.root == FV_ROOT_INDEX) {
            char num[24];
            int n = snprintf(num, sizeof(num), "%zu", scope->index);

            append_text(&text, &len, &cap, num, (size_t)n);
        } else {
            append_value(&text, &len, &cap, value);
        }
    } else {
        json_t *value = fanout_value_eval(v, scope);

        append_text(&text, &len, &cap, "", 0);
        append_value(&text, &len, &cap, value);
        json_decref(value);
    }
    if (len >= size)
        len = size ? size - 1 : 0;
    if (size) {
        memcpy(buf, text, len);
        buf[len] = '\0';
    }
    free(text);
    return len;
}
