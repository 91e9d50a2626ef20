/* Fixture folders of sample records (harness.h, "sample folders"). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static char *
sample_file(const char *rel, const char *name, const char *suffix, size_t *len)
{
    char path[768];

    snprintf(path, sizeof(path), "%s/%s%s", rel, name, suffix);
    return hx_file_read(hx_fixture_path(path), len);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct hx_sample *)a)->name,
                  ((const struct hx_sample *)b)->name);
}

static json_t *sample_json(const char *rel,
                           const char *name,
                           const char *suffix,
                           char **text_out)
{
    char *text = sample_file(rel, name, suffix, NULL);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;

    if (text && !j)
        fail_msg("%s%s: not JSON", name, suffix);
    if (text_out)
        *text_out = text;
    else
        free(text);
    return j;
}

size_t hx_samples_load(const char *rel, struct hx_sample *s, size_t cap)
{
    DIR *dir = opendir(hx_fixture_path(rel));
    struct dirent *de;
    size_t n = 0;

    assert_non_null(dir);
    while ((de = readdir(dir))) {
        size_t len = strlen(de->d_name);
        bool null_value = len > 5 && !strcmp(de->d_name + len - 5, ".null");

        if (!null_value &&
            (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0 ||
             strstr(de->d_name, ".expected.") ||
             strstr(de->d_name, ".headers.")))
            continue;
        assert_true(n < cap);
        memset(&s[n], 0, sizeof(s[n]));
        s[n].null_value = null_value;
        snprintf(s[n].name, sizeof(s[n].name), "%.*s", (int)(len - 5),
                 de->d_name);
        n++;
    }
    closedir(dir);
    qsort(s, n, sizeof(*s), cmp_name);
    for (size_t i = 0; i < n; i++) {
        if (!s[i].null_value)
            s[i].value = sample_file(rel, s[i].name, ".json", &s[i].len);
        s[i].key = sample_file(rel, s[i].name, ".key", &s[i].key_len);
        s[i].headers =
            sample_json(rel, s[i].name, ".headers.json", &s[i].headers_text);
        s[i].expected = sample_json(rel, s[i].name, ".expected.json", NULL);
        if ((!s[i].value && !s[i].null_value) || !s[i].expected)
            fail_msg("%s: sample or expectation missing", s[i].name);
    }
    return n;
}

void hx_samples_free(struct hx_sample *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].value);
        free(s[i].key);
        free(s[i].headers_text);
        json_decref(s[i].headers);
        json_decref(s[i].expected);
    }
}

json_t *hx_json_at(json_t *v, const char *path)
{
    char buf[256], *p = buf, *dot;

    snprintf(buf, sizeof(buf), "%s", path);
    while (v && (dot = strchr(p, '.'))) {
        *dot = '\0';
        v = json_object_get(v, p);
        p = dot + 1;
    }
    return v ? json_object_get(v, p) : NULL;
}

void hx_check_fields(const char *name,
                     size_t i,
                     json_t *doc,
                     const json_t *want)
{
    const char *path;
    json_t *v;

    json_object_foreach((json_t *)(uintptr_t)want, path, v)
    {
        json_t *got = hx_json_at(doc, path);
        bool ok = json_is_string(v) && !strcmp(json_string_value(v), "<absent>")
                      ? got == NULL
                      : got && json_equal(got, v);

        if (!ok) {
            char *g = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
            char *w = json_dumps(v, JSON_ENCODE_ANY);

            fail_msg("%s doc %zu: %s is %s, want %s", name, i, path,
                     g ? g : "absent", w ? w : "?");
        }
    }
}
