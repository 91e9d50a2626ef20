/*
 * The catalog: per category its mode, window, digest size and templates
 * per locale, from the config file's "email" object (workers/email/
 * README.md shows one), with built-in templates for whatever it leaves out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "email.h"
#include "email_template.h"
#include "hr_buf.h"
#include "hr_conf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define RENDER_MAX (1024 * 1024)

/* The built-in templates: any category, English. */
static const char default_subject[] =
    "{{#digest}}{{count}} new {{category}} notifications{{/digest}}"
    "{{^digest}}{{#first}}{{#actor_name}}{{actor_name}}: {{/actor_name}}"
    "{{#item_title}}{{item_title}}{{/item_title}}"
    "{{^item_title}}new {{category}}{{/item_title}}{{/first}}{{/digest}}";

static const char default_text[] =
    "Hello {{#user_name}}{{user_name}}{{/user_name}}"
    "{{^user_name}}there{{/user_name}},\n"
    "\n"
    "{{#items}}\n"
    "- {{#actor_name}}{{actor_name}}: {{/actor_name}}{{item_title}}\n"
    "{{#text}}\n"
    "  \"{{text}}\"\n"
    "{{/text}}\n"
    "{{#item_url}}\n"
    "  {{item_url}}\n"
    "{{/item_url}}\n"
    "{{/items}}\n"
    "{{#more}}\n"
    "...and {{more}} more.\n"
    "{{/more}}\n"
    "{{#unsubscribe_url}}\n"
    "\n"
    "Unsubscribe: {{unsubscribe_url}}\n"
    "{{/unsubscribe_url}}\n";

static const char default_html[] =
    "<!DOCTYPE html>\n"
    "<html><body>\n"
    "<p>Hello {{#user_name}}{{user_name}}{{/user_name}}"
    "{{^user_name}}there{{/user_name}},</p>\n"
    "<ul>\n"
    "{{#items}}\n"
    "<li>{{#actor_name}}<b>{{actor_name}}</b>: {{/actor_name}}"
    "{{#item_url}}<a href=\"{{item_url}}\">{{item_title}}</a>{{/item_url}}"
    "{{^item_url}}{{item_title}}{{/item_url}}"
    "{{#text}}<br>&ldquo;{{text}}&rdquo;{{/text}}</li>\n"
    "{{/items}}\n"
    "</ul>\n"
    "{{#more}}\n"
    "<p>&hellip;and {{more}} more.</p>\n"
    "{{/more}}\n"
    "{{#unsubscribe_url}}\n"
    "<p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>\n"
    "{{/unsubscribe_url}}\n"
    "</body></html>\n";

struct email_tpls {
    char *locale;
    struct email_tpl *subject, *text, *html; /* html may be NULL */
};

struct email_category {
    char *name; /* "*": any other */
    bool leading;
    int64_t window_ms;
    int max_items;
    struct email_tpls *t;
    size_t nt;
    bool borrowed; /* t belongs to the "*" entry */
};

struct email_catalog {
    struct email_category *cats;
    size_t n;
    struct email_category *any; /* "*" */
    char *from_name;
    char *default_locale;
    struct email_tpl *unsubscribe; /* NULL: no List-Unsubscribe */
};

static void category_release(struct email_category *c)
{
    if (!c->borrowed) {
        for (size_t i = 0; i < c->nt; i++) {
            free(c->t[i].locale);
            email_tpl_free(c->t[i].subject);
            email_tpl_free(c->t[i].text);
            email_tpl_free(c->t[i].html);
        }
        free(c->t);
    }
    free(c->name);
}

void email_catalog_free(struct email_catalog *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->n; i++)
        category_release(&cat->cats[i]);
    free(cat->cats);
    free(cat->from_name);
    free(cat->default_locale);
    email_tpl_free(cat->unsubscribe);
    free(cat);
}

static struct email_tpl *
compile(const char *src, const char *where, char *errstr, size_t errstr_size)
{
    char why[256];
    struct email_tpl *t = email_tpl_compile(src, why, sizeof(why));

    if (!t)
        snprintf(errstr, errstr_size, "%s: %s", where, why);
    return t;
}

/* One locale's templates: {"subject", "text", "html"?}. */
static int tpls_load(struct email_tpls *t,
                     const char *cat,
                     const char *locale,
                     json_t *obj,
                     char *errstr,
                     size_t errstr_size)
{
    static const char *const parts[] = {"subject", "text", "html"};
    struct email_tpl **dst[] = {&t->subject, &t->text, &t->html};
    char where[200];
    const char *key;
    json_t *v;

    t->locale = strdup(locale);
    if (!json_is_object(obj)) {
        snprintf(errstr, errstr_size,
                 "categories.%s.templates.%s: an object with subject, text "
                 "and html",
                 cat, locale);
        return -1;
    }
    json_object_foreach(obj, key, v)
    {
        bool known = false;

        for (size_t i = 0; i < 3; i++)
            known |= !strcmp(key, parts[i]);
        if (!known) {
            snprintf(errstr, errstr_size,
                     "categories.%s.templates.%s: unknown key '%s' (subject, "
                     "text, html)",
                     cat, locale, key);
            return -1;
        }
    }
    for (size_t i = 0; i < 3; i++) {
        v = json_object_get(obj, parts[i]);
        snprintf(where, sizeof(where), "categories.%s.templates.%s.%s", cat,
                 locale, parts[i]);
        if (!v && i == 2)
            continue; /* text only */
        if (!json_is_string(v)) {
            snprintf(errstr, errstr_size, "%s: a string is required", where);
            return -1;
        }
        *dst[i] = compile(json_string_value(v), where, errstr, errstr_size);
        if (!*dst[i])
            return -1;
    }
    return 0;
}

static int builtin_tpls(struct email_category *c, char *errstr, size_t size)
{
    c->t = calloc(1, sizeof(*c->t));
    if (!c->t)
        return -1;
    c->nt = 1;
    c->t->locale = strdup("en");
    c->t->subject = compile(default_subject, "built-in subject", errstr, size);
    c->t->text = compile(default_text, "built-in text", errstr, size);
    c->t->html = compile(default_html, "built-in html", errstr, size);
    return c->t->subject && c->t->text && c->t->html ? 0 : -1;
}

static int category_load(struct email_category *c,
                         const char *name,
                         json_t *obj,
                         const struct hr_conf *cfg,
                         char *errstr,
                         size_t errstr_size)
{
    const char *key;
    json_t *v, *tp;

    c->name = strdup(name);
    c->leading = !strcmp(hr_conf_str(cfg, "HERALD_EMAIL_MODE"), "leading");
    c->window_ms = hr_conf_int(cfg, "HERALD_EMAIL_WINDOW_SECONDS") * 1000;
    c->max_items = (int)hr_conf_int(cfg, "HERALD_EMAIL_DIGEST_MAX");
    if (!obj)
        return 0;
    if (!json_is_object(obj)) {
        snprintf(errstr, errstr_size, "categories.%s: an object is required",
                 name);
        return -1;
    }
    json_object_foreach(obj, key, v)
    {
        if (!strcmp(key, "mode")) {
            const char *m = json_string_value(v);

            if (!m || (strcmp(m, "digest") && strcmp(m, "leading"))) {
                snprintf(errstr, errstr_size,
                         "categories.%s.mode: \"digest\" or \"leading\"", name);
                return -1;
            }
            c->leading = !strcmp(m, "leading");
        } else if (!strcmp(key, "window_seconds")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 2678400) {
                snprintf(errstr, errstr_size,
                         "categories.%s.window_seconds: an integer from 1 to "
                         "2678400",
                         name);
                return -1;
            }
            c->window_ms = json_integer_value(v) * 1000;
        } else if (!strcmp(key, "max_items")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 1000) {
                snprintf(errstr, errstr_size,
                         "categories.%s.max_items: an integer from 1 to 1000",
                         name);
                return -1;
            }
            c->max_items = (int)json_integer_value(v);
        } else if (strcmp(key, "templates")) {
            snprintf(errstr, errstr_size,
                     "categories.%s: unknown key '%s' (mode, window_seconds, "
                     "max_items, templates)",
                     name, key);
            return -1;
        }
    }
    tp = json_object_get(obj, "templates");
    if (!tp)
        return 0;
    if (!json_is_object(tp) || !json_object_size(tp)) {
        snprintf(errstr, errstr_size,
                 "categories.%s.templates: an object of locales is required",
                 name);
        return -1;
    }
    c->t = calloc(json_object_size(tp), sizeof(*c->t));
    if (!c->t)
        return -1;
    json_object_foreach(tp, key, v)
    {
        if (tpls_load(&c->t[c->nt++], name, key, v, errstr, errstr_size))
            return -1;
    }
    return 0;
}

struct email_catalog *
email_catalog_new(const struct hr_conf *cfg, char *errstr, size_t errstr_size)
{
    const json_t *root = hr_conf_json(cfg);
    json_t *email = root ? json_object_get(root, "email") : NULL;
    json_t *cats = email ? json_object_get(email, "categories") : NULL;
    struct email_catalog *cat = calloc(1, sizeof(*cat));
    const char *key;
    json_t *v;

    if (!cat)
        return NULL;
    if (email && !json_is_object(email)) {
        snprintf(errstr, errstr_size, "\"email\" must be an object");
        goto fail;
    }
    if (email) {
        json_object_foreach(email, key, v)
        {
            if (strcmp(key, "categories") && strcmp(key, "from_name") &&
                strcmp(key, "default_locale") &&
                strcmp(key, "unsubscribe_url")) {
                snprintf(errstr, errstr_size,
                         "email: unknown key '%s' (categories, from_name, "
                         "default_locale, unsubscribe_url)",
                         key);
                goto fail;
            }
            if (!json_is_string(v) && strcmp(key, "categories")) {
                snprintf(errstr, errstr_size, "email.%s: a string is required",
                         key);
                goto fail;
            }
        }
    }
    if (cats && !json_is_object(cats)) {
        snprintf(errstr, errstr_size,
                 "email.categories: an object of "
                 "categories is required");
        goto fail;
    }
    v = email ? json_object_get(email, "from_name") : NULL;
    cat->from_name = v ? strdup(json_string_value(v)) : NULL;
    v = email ? json_object_get(email, "default_locale") : NULL;
    cat->default_locale = strdup(v ? json_string_value(v) : "en");
    v = email ? json_object_get(email, "unsubscribe_url") : NULL;
    if (v) {
        cat->unsubscribe = compile(
            json_string_value(v), "email.unsubscribe_url", errstr, errstr_size);
        if (!cat->unsubscribe)
            goto fail;
    }
    /* "*" first, then every named category */
    cat->cats =
        calloc((cats ? json_object_size(cats) : 0) + 1, sizeof(*cat->cats));
    if (!cat->cats)
        goto fail;
    cat->n = 1;
    cat->any = &cat->cats[0];
    if (category_load(cat->any, "*", cats ? json_object_get(cats, "*") : NULL,
                      cfg, errstr, errstr_size))
        goto fail;
    if (!cat->any->nt && builtin_tpls(cat->any, errstr, errstr_size))
        goto fail;
    if (cats) {
        json_object_foreach(cats, key, v)
        {
            struct email_category *c = &cat->cats[cat->n];

            if (!strcmp(key, "*"))
                continue;
            if (!email_category_name_ok(key)) {
                snprintf(errstr, errstr_size,
                         "email.categories: '%s' is not a category name (1 to "
                         "64 of A-Z a-z 0-9 _ . -)",
                         key);
                goto fail;
            }
            cat->n++;
            if (category_load(c, key, v, cfg, errstr, errstr_size))
                goto fail;
            if (!c->nt) {
                c->t = cat->any->t;
                c->nt = cat->any->nt;
                c->borrowed = true;
            }
        }
    }
    return cat;
fail:
    email_catalog_free(cat);
    return NULL;
}

const struct email_category *email_catalog_find(const struct email_catalog *cat,
                                                const char *category)
{
    for (size_t i = 1; i < cat->n; i++) {
        if (!strcmp(cat->cats[i].name, category))
            return &cat->cats[i];
    }
    return cat->any;
}

bool email_category_leading(const struct email_category *c)
{
    return c->leading;
}

int64_t email_category_window_ms(const struct email_category *c)
{
    return c->window_ms;
}

int email_category_max_items(const struct email_category *c)
{
    return c->max_items;
}

const char *email_catalog_from_name(const struct email_catalog *cat)
{
    return cat->from_name;
}

/* @a names the same language as @b ("fr-CA" and "fr"). */
static bool same_language(const char *a, const char *b)
{
    size_t la = strcspn(a, "-_"), lb = strcspn(b, "-_");

    return la == lb && !strncmp(a, b, la);
}

static const struct email_tpls *pick(const struct email_catalog *cat,
                                     const struct email_category *c,
                                     const char *locale)
{
    const char *want[] = {locale, cat->default_locale};

    for (size_t w = 0; w < 2; w++) {
        if (!want[w] || !*want[w])
            continue;
        for (size_t i = 0; i < c->nt; i++) {
            if (!strcmp(c->t[i].locale, want[w]))
                return &c->t[i];
        }
        for (size_t i = 0; i < c->nt; i++) {
            if (same_language(c->t[i].locale, want[w]))
                return &c->t[i];
        }
    }
    return &c->t[0];
}

/* The unsubscribe URL's context: user_id and category percent-encoded. */
static int unsubscribe_render(const struct email_catalog *cat,
                              const json_t *ctx,
                              struct hr_buf *out,
                              char *errstr,
                              size_t errstr_size)
{
    static const char *const names[] = {"user_id", "category"};
    json_t *uctx = json_object();
    int rc;

    for (size_t k = 0; k < 2; k++) {
        const char *s = json_string_value(json_object_get(ctx, names[k]));
        char *enc = curl_easy_escape(NULL, s ? s : "", 0);

        HR_ASSERT(enc);
        json_object_set_new(uctx, names[k], json_string(enc));
        curl_free(enc);
    }
    hr_buf_clear(out);
    rc = email_tpl_render(cat->unsubscribe, uctx, EMAIL_TPL_PLAIN, false, out,
                          4096, errstr, errstr_size);
    json_decref(uctx);
    return rc;
}

static int render_one(const struct email_tpl *t,
                      const json_t *ctx,
                      enum email_tpl_escape esc,
                      bool strict,
                      struct hr_buf *out,
                      const char *what,
                      char *errstr,
                      size_t errstr_size)
{
    char why[256];

    hr_buf_clear(out);
    if (!email_tpl_render(t, ctx, esc, strict, out, RENDER_MAX, why,
                          sizeof(why)))
        return 0;
    snprintf(errstr, errstr_size, "%s: %s", what, why);
    return -1;
}

/* Render @t's three parts; @ctx gains "unsubscribe_url" when configured. */
static int render_tpls(const struct email_catalog *cat,
                       const struct email_tpls *t,
                       json_t *ctx,
                       bool strict,
                       struct email_rendered *out,
                       char *errstr,
                       size_t errstr_size)
{
    hr_buf_clear(out->unsubscribe);
    json_object_del(ctx, "unsubscribe_url");
    if (cat->unsubscribe) {
        if (unsubscribe_render(cat, ctx, out->unsubscribe, errstr, errstr_size))
            return -1;
        json_object_set_new(
            ctx, "unsubscribe_url",
            json_string(out->unsubscribe->p ? out->unsubscribe->p : ""));
    } else {
        json_object_set_new(ctx, "unsubscribe_url", json_string(""));
    }
    if (render_one(t->subject, ctx, EMAIL_TPL_PLAIN, strict, out->subject,
                   "subject", errstr, errstr_size) ||
        render_one(t->text, ctx, EMAIL_TPL_PLAIN, strict, out->text, "text",
                   errstr, errstr_size))
        return -1;
    hr_buf_clear(out->html);
    if (t->html && render_one(t->html, ctx, EMAIL_TPL_HTML, strict, out->html,
                              "html", errstr, errstr_size))
        return -1;
    return 0;
}

int email_catalog_render(const struct email_catalog *cat,
                         const struct email_category *c,
                         const char *locale,
                         json_t *ctx,
                         struct email_rendered *out,
                         char *errstr,
                         size_t errstr_size)
{
    return render_tpls(cat, pick(cat, c, locale), ctx, false, out, errstr,
                       errstr_size);
}

/* Sample data with every field a template may name. */
static json_t *sample_context(const char *category, bool digest)
{
    json_t *items = json_array();
    int n = digest ? 3 : 1;

    for (int i = 0; i < n; i++) {
        json_array_append_new(
            items,
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", "evt-1",
                      "time", "2026-12-06T17:00:00.000Z", "actor_name",
                      "Ada <Lovelace>", "item_title", "Notes & sketches",
                      "item_url", "https://example.com/items/1?a=1&b=2", "text",
                      "Looks \"great\"!", "to", "ada@example.com", "locale",
                      "en"));
    }
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:b, s:o, s:O}", "user_id",
                     "user-1", "user_name", "Grace", "category", category,
                     "count", digest ? 25 : 1, "shown", n, "more",
                     digest ? 25 - n : 0, "digest", digest, "items", items,
                     "first", json_array_get(items, 0));
}

int email_catalog_check(const struct email_catalog *cat, struct hr_conf *cfg)
{
    struct hr_buf subject = {0}, text = {0}, html = {0}, unsub = {0};
    struct email_rendered out = {&subject, &text, &html, &unsub};
    char errstr[512];
    int rendered = 0;

    for (size_t i = 0; i < cat->n; i++) {
        const struct email_category *c = &cat->cats[i];

        if (c->borrowed)
            continue;
        for (size_t k = 0; k < c->nt; k++) {
            for (int digest = 0; digest < 2; digest++) {
                json_t *ctx = sample_context(
                    strcmp(c->name, "*") ? c->name : "comment", digest);

                if (render_tpls(cat, &c->t[k], ctx, true, &out, errstr,
                                sizeof(errstr)))
                    hr_conf_add_error(
                        cfg, "email template %s/%s (%s sample): %s", c->name,
                        c->t[k].locale, digest ? "digest" : "single", errstr);
                else
                    rendered++;
                json_decref(ctx);
            }
        }
    }
    hr_buf_release(&subject, 0);
    hr_buf_release(&text, 0);
    hr_buf_release(&html, 0);
    hr_buf_release(&unsub, 0);
    return rendered;
}
