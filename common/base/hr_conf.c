/* Typed configuration tables: environment, --config file, defaults.
 *
 * Every setting is resolved and validated on its own, so one run of
 * hr_conf_load() reports every problem (nginx -t style) instead of the first.
 * Error messages start with the setting's name and never contain the value
 * of a secret: a secret's value is shown as "(value hidden)".
 *
 * An environment variable set to the empty string counts as unset: it is
 * what templating tools (Helm, compose files) produce for "no value", and
 * it lets the file or the default apply. */
#include "hr_conf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hr_banned.h"

/* A secret read from NAME_FILE may not be larger than this. */
#define CONF_SECRET_FILE_MAX (64 * 1024)

enum conf_source {
    CONF_SRC_UNSET = 0,
    CONF_SRC_ENV,
    CONF_SRC_ENV_FILE,
    CONF_SRC_FILE,
    CONF_SRC_DEFAULT,
};

static const char *const source_names[] = {
    [CONF_SRC_UNSET] = "unset",       [CONF_SRC_ENV] = "env",
    [CONF_SRC_ENV_FILE] = "env_file", [CONF_SRC_FILE] = "file",
    [CONF_SRC_DEFAULT] = "default",
};

static const char *const type_names[] = {
    [HR_CONF_T_STR] = "string", [HR_CONF_T_INT] = "int",
    [HR_CONF_T_MS] = "ms",      [HR_CONF_T_DOUBLE] = "double",
    [HR_CONF_T_BOOL] = "bool",  [HR_CONF_T_URL] = "url",
    [HR_CONF_T_PATH] = "path",  [HR_CONF_T_ENUM] = "enum",
    [HR_CONF_T_ADDR] = "addr",
};

struct conf_item {
    const struct hr_conf_spec *spec;
    char *override;   /* hr_conf_set_default(), owned */
    char *file_value; /* from the config file, owned */
    char *value;      /* resolved value, owned; NULL when unset */
    enum conf_source source;
    int64_t i; /* parsed INT / MS */
    double d;  /* parsed DOUBLE (also INT / MS) */
    bool b;    /* parsed BOOL */
};

struct hr_conf {
    struct conf_item *items;
    size_t n_items, cap_items;
    char **errors;
    int n_errors, cap_errors;
    json_t *json; /* the parsed config file */
    bool loaded;
};

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    HR_ASSERT(p != NULL);
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    HR_ASSERT(p != NULL);
    return p;
}

struct hr_conf *hr_conf_new(void)
{
    struct hr_conf *cfg = calloc(1, sizeof(*cfg));

    HR_ASSERT(cfg != NULL);
    return cfg;
}

static void conf_reset_values(struct hr_conf *cfg)
{
    for (size_t k = 0; k < cfg->n_items; k++) {
        struct conf_item *it = &cfg->items[k];

        free(it->file_value);
        free(it->value);
        it->file_value = NULL;
        it->value = NULL;
        it->source = CONF_SRC_UNSET;
        it->i = 0;
        it->d = 0.0;
        it->b = false;
    }
    json_decref(cfg->json);
    cfg->json = NULL;
}

void hr_conf_free(struct hr_conf *cfg)
{
    if (!cfg)
        return;
    conf_reset_values(cfg);
    for (size_t k = 0; k < cfg->n_items; k++)
        free(cfg->items[k].override);
    free(cfg->items);
    for (int k = 0; k < cfg->n_errors; k++)
        free(cfg->errors[k]);
    free(cfg->errors);
    free(cfg);
}

static struct conf_item *conf_find(const struct hr_conf *cfg, const char *name)
{
    for (size_t k = 0; k < cfg->n_items; k++) {
        if (strcmp(cfg->items[k].spec->name, name) == 0)
            return &cfg->items[k];
    }
    return NULL;
}

/* The item for @name; an unknown name is a programming error. */
static struct conf_item *conf_get(const struct hr_conf *cfg, const char *name)
{
    struct conf_item *it;

    HR_ASSERT(cfg != NULL && name != NULL);
    it = conf_find(cfg, name);
    HR_ASSERT(it != NULL);
    return it;
}

void hr_conf_add_specs(struct hr_conf *cfg, const struct hr_conf_spec *specs)
{
    HR_ASSERT(cfg != NULL && specs != NULL);
    for (const struct hr_conf_spec *spec = specs; spec->name; spec++) {
        HR_ASSERT(conf_find(cfg, spec->name) == NULL);
        HR_ASSERT(spec->type <= HR_CONF_T_ADDR);
        HR_ASSERT(spec->type != HR_CONF_T_ENUM || spec->choices != NULL);
        if (cfg->n_items == cfg->cap_items) {
            cfg->cap_items = cfg->cap_items ? cfg->cap_items * 2 : 32;
            cfg->items =
                xrealloc(cfg->items, cfg->cap_items * sizeof(*cfg->items));
        }
        cfg->items[cfg->n_items++] = (struct conf_item){.spec = spec};
    }
}

static HR_PRINTF(2, 0) void conf_add_errorv(struct hr_conf *cfg,
                                            const char *fmt,
                                            va_list ap)
{
    va_list ap2;
    char *msg;
    int len;

    va_copy(ap2, ap);
    len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    HR_ASSERT(len >= 0);
    msg = xrealloc(NULL, (size_t)len + 1);
    vsnprintf(msg, (size_t)len + 1, fmt, ap);
    if (cfg->n_errors == cfg->cap_errors) {
        cfg->cap_errors = cfg->cap_errors ? cfg->cap_errors * 2 : 8;
        cfg->errors = xrealloc(cfg->errors,
                               (size_t)cfg->cap_errors * sizeof(*cfg->errors));
    }
    cfg->errors[cfg->n_errors++] = msg;
}

void hr_conf_add_error(struct hr_conf *cfg, const char *fmt, ...)
{
    va_list ap;

    HR_ASSERT(cfg != NULL && fmt != NULL);
    va_start(ap, fmt);
    conf_add_errorv(cfg, fmt, ap);
    va_end(ap);
}

int hr_conf_error_count(const struct hr_conf *cfg)
{
    HR_ASSERT(cfg != NULL);
    return cfg->n_errors;
}

const char *hr_conf_error(const struct hr_conf *cfg, int i)
{
    HR_ASSERT(cfg != NULL && i >= 0 && i < cfg->n_errors);
    return cfg->errors[i];
}

static bool is_secret(const struct conf_item *it)
{
    return (it->spec->flags & HR_CONF_SECRET) != 0;
}

/* Whether NAME_FILE may give the value. */
static bool from_file(const struct conf_item *it)
{
    return (it->spec->flags & (HR_CONF_SECRET | HR_CONF_FROM_FILE)) != 0;
}

/* How a value appears in an error message: quoted, or hidden for secrets. */
static const char *shown(const struct conf_item *it, char *buf, size_t size)
{
    if (is_secret(it))
        return "(value hidden)";
    snprintf(buf, size, "'%.200s%s'", it->value,
             strlen(it->value) > 200 ? "..." : "");
    return buf;
}

/* Shortest decimal form of @d that reads back as @d. */
static void format_double(double d, char *buf, size_t size)
{
    snprintf(buf, size, "%.15g", d);
    if (strtod(buf, NULL) != d)
        snprintf(buf, size, "%.17g", d);
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_NULL:
        return "null";
    default:
        return "a scalar";
    }
}

/*
 * Where a duplicate key is: jansson says only the line and the byte
 * offset. Walk the text up to @pos (valid JSON that far: the parser got
 * there) and write the path of the object holding the key that ends at
 * @pos ("rules[1].match.pattern") and the key itself.
 */
static void conf_json_path_at(const char *text,
                              size_t pos,
                              char *path,
                              size_t path_size,
                              char *key,
                              size_t key_size)
{
    struct {
        bool obj;
        size_t index, klen;
        const char *key;
    } st[64];
    size_t depth = 0, i = 0, n = 0;
    bool want_key = false;

    while (i < pos && text[i]) {
        char c = text[i];

        if (c == '"') {
            size_t start = ++i;

            while (i < pos && text[i] && text[i] != '"')
                i += text[i] == '\\' ? 2 : 1;
            if (want_key && depth && depth <= 64) {
                st[depth - 1].key = text + start;
                st[depth - 1].klen = i - start;
                want_key = false;
            }
        } else if (c == '{' || c == '[') {
            if (depth < 64) {
                st[depth].obj = c == '{';
                st[depth].index = 0;
                st[depth].key = NULL;
                st[depth].klen = 0;
            }
            depth++;
            want_key = c == '{';
        } else if ((c == '}' || c == ']') && depth) {
            depth--;
        } else if (c == ',' && depth && depth <= 64) {
            if (st[depth - 1].obj)
                want_key = true;
            else
                st[depth - 1].index++;
        }
        i++;
    }
    path[0] = key[0] = '\0';
    if (depth > 64)
        depth = 64;
    for (size_t j = 0; j + 1 < depth; j++) {
        int w = st[j].obj
                    ? snprintf(path + n, path_size - n, "%s%.*s", n ? "." : "",
                               (int)st[j].klen, st[j].key ? st[j].key : "")
                    : snprintf(path + n, path_size - n, "[%zu]", st[j].index);

        if (w < 0 || (size_t)w >= path_size - n)
            break;
        n += (size_t)w;
    }
    if (depth && st[depth - 1].obj && st[depth - 1].key)
        snprintf(key, key_size, "%.*s", (int)st[depth - 1].klen,
                 st[depth - 1].key);
}

/* A duplicate key in the config file @path: the error names the line,
 * the key, the object holding it and, when that object is inside an
 * element of a top-level list whose elements have a "name" (rules,
 * webhooks), that name. */
static void conf_duplicate_error(struct hr_conf *cfg,
                                 const char *path,
                                 const json_error_t *jerr)
{
    char where[512], key[128], named[160] = "";
    json_t *loose = json_load_file(path, 0, NULL);
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long len = -1;

    if (f && !fseek(f, 0, SEEK_END) && (len = ftell(f)) >= 0 &&
        !fseek(f, 0, SEEK_SET)) {
        text = malloc((size_t)len + 1);
        if (text && fread(text, 1, (size_t)len, f) == (size_t)len)
            text[len] = '\0';
        else {
            free(text);
            text = NULL;
        }
    }
    if (f)
        fclose(f);
    where[0] = key[0] = '\0';
    if (text && jerr->position >= 0 && jerr->position <= len)
        conf_json_path_at(text, (size_t)jerr->position, where, sizeof(where),
                          key, sizeof(key));
    free(text);
    /* "rules[1]..." -> the name of rules[1] */
    if (loose && where[0]) {
        size_t top = strcspn(where, "[.");
        char list[128];
        unsigned long idx;

        if (where[top] == '[' && top < sizeof(list) &&
            sscanf(where + top, "[%lu]", &idx) == 1) {
            const char *name;

            memcpy(list, where, top);
            list[top] = '\0';
            name = json_string_value(json_object_get(
                json_array_get(json_object_get(loose, list), idx), "name"));
            if (name)
                snprintf(named, sizeof(named), " ('%.120s')", name);
        }
    }
    json_decref(loose);
    if (key[0])
        hr_conf_add_error(cfg,
                          "config file '%s': line %d: key '%s' given twice "
                          "in %s%s (give each key once)",
                          path, jerr->line, key,
                          where[0] ? where : "the top level", named);
    else
        hr_conf_add_error(cfg, "config file '%s': line %d: %s", path,
                          jerr->line, jerr->text);
}

/* Load the --config file: a JSON object whose keys that name a setting set
 * it; the object as a whole stays available through hr_conf_json(). */
static void conf_load_file(struct hr_conf *cfg, const char *path)
{
    json_error_t jerr;
    const char *key;
    json_t *root, *val;

    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_duplicate_key)
            conf_duplicate_error(cfg, path, &jerr);
        else if (jerr.line > 0)
            hr_conf_add_error(cfg, "config file '%s': line %d: %s", path,
                              jerr.line, jerr.text);
        else
            hr_conf_add_error(cfg, "config file '%s': %s", path, jerr.text);
        return;
    }
    if (!json_is_object(root)) {
        hr_conf_add_error(cfg, "config file '%s': not a JSON object", path);
        json_decref(root);
        return;
    }
    json_object_foreach(root, key, val)
    {
        struct conf_item *it = conf_find(cfg, key);
        char buf[64];

        if (!it)
            continue; /* structured configuration for hr_conf_json() */
        switch (json_typeof(val)) {
        case JSON_STRING:
            it->file_value = xstrdup(json_string_value(val));
            break;
        case JSON_INTEGER:
            snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(val));
            it->file_value = xstrdup(buf);
            break;
        case JSON_REAL:
            format_double(json_real_value(val), buf, sizeof(buf));
            it->file_value = xstrdup(buf);
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            it->file_value = xstrdup(json_is_true(val) ? "true" : "false");
            break;
        default:
            hr_conf_add_error(cfg,
                              "%s: config file '%s' gives %s; expected a "
                              "string, number or boolean",
                              key, path, json_type_name(val));
            break;
        }
    }
    cfg->json = root;
}

/* Read a secret from @path, without one trailing "\n" or "\r\n". Returns a
 * new string, or NULL with errno set (EFBIG: too large, EINVAL: NUL byte). */
static char *read_secret_file(const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp;
    int err;

    fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    buf = xrealloc(NULL, CONF_SECRET_FILE_MAX + 1);
    len = fread(buf, 1, CONF_SECRET_FILE_MAX + 1, fp);
    if (ferror(fp)) {
        err = errno ? errno : EIO;
        goto out_fail;
    }
    if (len > CONF_SECRET_FILE_MAX) {
        err = EFBIG;
        goto out_fail;
    }
    if (memchr(buf, '\0', len)) {
        err = EINVAL;
        goto out_fail;
    }
    fclose(fp);
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    buf[len] = '\0';
    return buf;
out_fail:
    fclose(fp);
    free(buf);
    errno = err;
    return NULL;
}

/* Whole-string base-10 integer (no blanks, no trailing garbage). */
static bool parse_int64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == '+'))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    double v;

    if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.'))
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (size_t k = 0; k < HR_ARRAY_SIZE(yes); k++) {
        if (strcasecmp(s, yes[k]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[k]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* scheme "://" rest: the scheme per RFC 3986, something after it, and no
 * blanks or control characters anywhere. */
static bool url_is_valid(const char *s)
{
    const char *sep = strstr(s, "://");

    if (!sep || sep == s || !is_alpha(s[0]) || sep[3] == '\0')
        return false;
    for (const char *p = s; p < sep; p++) {
        if (!is_alpha(*p) && !is_digit(*p) && *p != '+' && *p != '-' &&
            *p != '.')
            return false;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == 0x7f)
            return false;
    }
    return true;
}

static bool enum_has(const char *choices, const char *s)
{
    size_t n = strlen(s);

    for (const char *p = choices;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);

        if (len == n && strncmp(p, s, n) == 0)
            return true;
        if (!bar)
            return false;
        p = bar + 1;
    }
}

/* "off", or host:port with port 0..65535 and host empty (all interfaces),
 * a name or IPv4 address, or a bracketed IPv6 address. */
static bool addr_is_valid(const char *s)
{
    const char *colon, *p;
    long port = 0;

    if (strcmp(s, "off") == 0)
        return true;
    colon = strrchr(s, ':');
    if (!colon || colon[1] == '\0' || strlen(colon + 1) > 5)
        return false;
    for (p = colon + 1; *p; p++) {
        if (!is_digit(*p))
            return false;
        port = port * 10 + (*p - '0');
    }
    if (port > 65535)
        return false;
    if (s[0] == '[') {
        if (colon - s < 3 || colon[-1] != ']')
            return false;
        for (p = s + 1; p < colon - 1; p++) {
            if (!is_digit(*p) && !is_alpha(*p) && *p != ':' && *p != '.' &&
                *p != '%')
                return false;
        }
        return memchr(s + 1, ':', (size_t)(colon - 1 - (s + 1))) != NULL;
    }
    for (p = s; p < colon; p++) {
        if (!is_digit(*p) && !is_alpha(*p) && *p != '-' && *p != '.' &&
            *p != '_')
            return false;
    }
    return true;
}

/* Check @it's value against its type; record an error if it does not fit. */
static void conf_validate(struct hr_conf *cfg, struct conf_item *it)
{
    const struct hr_conf_spec *spec = it->spec;
    const char *name = spec->name, *v = it->value;
    char q[256];
    struct stat st;
    int64_t i;
    double d;

    switch (spec->type) {
    case HR_CONF_T_STR:
        break;
    case HR_CONF_T_INT:
        if (!parse_int64(v, &i) || i < spec->min || i > spec->max) {
            hr_conf_add_error(cfg,
                              "%s: must be an integer between %" PRId64
                              " and %" PRId64 ", got %s",
                              name, spec->min, spec->max,
                              shown(it, q, sizeof(q)));
            break;
        }
        it->i = i;
        it->d = (double)i;
        break;
    case HR_CONF_T_MS:
        if (!parse_int64(v, &i) || i < 0 || i < spec->min || i > spec->max) {
            hr_conf_add_error(cfg,
                              "%s: must be a non-negative integer "
                              "(milliseconds), got %s",
                              name, shown(it, q, sizeof(q)));
            break;
        }
        it->i = i;
        it->d = (double)i;
        break;
    case HR_CONF_T_DOUBLE:
        if (!parse_double(v, &d) || d < (double)spec->min ||
            d > (double)spec->max) {
            hr_conf_add_error(cfg,
                              "%s: must be a number between %" PRId64
                              " and %" PRId64 ", got %s",
                              name, spec->min, spec->max,
                              shown(it, q, sizeof(q)));
            break;
        }
        it->d = d;
        break;
    case HR_CONF_T_BOOL:
        if (!parse_bool(v, &it->b))
            hr_conf_add_error(cfg,
                              "%s: must be a boolean (1/0, true/false, "
                              "yes/no, on/off), got %s",
                              name, shown(it, q, sizeof(q)));
        break;
    case HR_CONF_T_URL:
        if (!url_is_valid(v))
            hr_conf_add_error(cfg, "%s: invalid url %s", name,
                              shown(it, q, sizeof(q)));
        break;
    case HR_CONF_T_PATH:
        if (access(v, R_OK) != 0 || stat(v, &st) != 0)
            hr_conf_add_error(cfg, "%s: cannot read %s: %s", name,
                              shown(it, q, sizeof(q)), strerror(errno));
        else if (!S_ISREG(st.st_mode))
            hr_conf_add_error(cfg, "%s: %s is not a regular file", name,
                              shown(it, q, sizeof(q)));
        break;
    case HR_CONF_T_ENUM:
        if (!enum_has(spec->choices, v))
            hr_conf_add_error(cfg, "%s: must be one of %s, got %s", name,
                              spec->choices, shown(it, q, sizeof(q)));
        break;
    case HR_CONF_T_ADDR:
        if (!addr_is_valid(v))
            hr_conf_add_error(cfg,
                              "%s: must be host:port (port 0-65535) or off, "
                              "got %s",
                              name, shown(it, q, sizeof(q)));
        break;
    }
}

static const char *conf_getenv(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

/* Resolve one setting: environment (NAME, or NAME_FILE for secrets and
 * HR_CONF_FROM_FILE), then the config file, then hr_conf_set_default(),
 * then the spec default. */
static void conf_resolve(struct hr_conf *cfg, struct conf_item *it)
{
    const char *name = it->spec->name, *env = conf_getenv(name);
    char fname[256] = "";

    if (from_file(it)) {
        const char *path;

        snprintf(fname, sizeof(fname), "%s_FILE", name);
        path = conf_getenv(fname);
        if (path && env) {
            hr_conf_add_error(cfg, "%s: both %s and %s are set; use one", name,
                              name, fname);
            return;
        }
        if (path) {
            it->value = read_secret_file(path);
            if (!it->value) {
                hr_conf_add_error(cfg, "%s: cannot read %s '%s': %s", name,
                                  fname, path, strerror(errno));
                return;
            }
            it->source = CONF_SRC_ENV_FILE;
        }
    }
    if (it->value) {
        /* read from NAME_FILE above */
    } else if (env) {
        it->value = xstrdup(env);
        it->source = CONF_SRC_ENV;
    } else if (it->file_value) {
        it->value = xstrdup(it->file_value);
        it->source = CONF_SRC_FILE;
    } else if (it->override || it->spec->def) {
        it->value = xstrdup(it->override ? it->override : it->spec->def);
        it->source = CONF_SRC_DEFAULT;
    }
    if (!it->value) {
        if (!(it->spec->flags & HR_CONF_REQUIRED))
            return;
        if (from_file(it))
            hr_conf_add_error(cfg, "%s: required but not set (set %s or %s)",
                              name, name, fname);
        else
            hr_conf_add_error(cfg, "%s: required but not set", name);
        return;
    }
    conf_validate(cfg, it);
}

int hr_conf_load(struct hr_conf *cfg, const char *config_file)
{
    HR_ASSERT(cfg != NULL);
    conf_reset_values(cfg);
    if (!config_file)
        config_file = conf_getenv("HERALD_CONFIG");
    if (config_file)
        conf_load_file(cfg, config_file);
    for (size_t k = 0; k < cfg->n_items; k++)
        conf_resolve(cfg, &cfg->items[k]);
    cfg->loaded = true;
    return cfg->n_errors;
}

const char *hr_conf_str(const struct hr_conf *cfg, const char *name)
{
    return conf_get(cfg, name)->value;
}

int64_t hr_conf_int(const struct hr_conf *cfg, const char *name)
{
    const struct conf_item *it = conf_get(cfg, name);

    HR_ASSERT(it->spec->type == HR_CONF_T_INT ||
              it->spec->type == HR_CONF_T_MS);
    return it->i;
}

double hr_conf_double(const struct hr_conf *cfg, const char *name)
{
    const struct conf_item *it = conf_get(cfg, name);

    HR_ASSERT(it->spec->type == HR_CONF_T_DOUBLE ||
              it->spec->type == HR_CONF_T_INT ||
              it->spec->type == HR_CONF_T_MS);
    return it->d;
}

bool hr_conf_bool(const struct hr_conf *cfg, const char *name)
{
    const struct conf_item *it = conf_get(cfg, name);

    HR_ASSERT(it->spec->type == HR_CONF_T_BOOL);
    return it->b;
}

bool hr_conf_is_set(const struct hr_conf *cfg, const char *name)
{
    return conf_get(cfg, name)->value != NULL;
}

void hr_conf_set_default(struct hr_conf *cfg,
                         const char *name,
                         const char *value)
{
    struct conf_item *it = conf_get(cfg, name);

    /* the override only takes effect through hr_conf_load() */
    HR_ASSERT(!cfg->loaded);
    free(it->override);
    it->override = value ? xstrdup(value) : NULL;
}

const json_t *hr_conf_json(const struct hr_conf *cfg)
{
    HR_ASSERT(cfg != NULL);
    return cfg->json;
}

/* json_string() refuses invalid UTF-8 (the environment may hold anything):
 * fall back to a copy with every non-ASCII byte replaced by '?'. */
static json_t *json_string_lossy(const char *s)
{
    json_t *js = json_string(s);
    char *copy;

    if (js)
        return js;
    copy = xstrdup(s);
    for (char *p = copy; *p; p++) {
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    }
    js = json_string(copy);
    free(copy);
    return js;
}

json_t *hr_conf_effective(const struct hr_conf *cfg)
{
    json_t *root = json_object();

    HR_ASSERT(cfg != NULL && root != NULL);
    for (size_t k = 0; k < cfg->n_items; k++) {
        const struct conf_item *it = &cfg->items[k];
        json_t *entry;

        if (!it->value)
            continue;
        entry = json_pack("{s:o, s:s}", "value",
                          is_secret(it) ? json_string("***")
                                        : json_string_lossy(it->value),
                          "source", source_names[it->source]);
        HR_ASSERT(entry != NULL);
        json_object_set_new(root, it->spec->name, entry);
    }
    return root;
}

/* The "default" column of --help. */
static const char *help_default(const struct conf_item *it)
{
    const char *def = it->override ? it->override : it->spec->def;

    if (!def)
        return it->spec->flags & HR_CONF_REQUIRED ? "(required)" : "-";
    if (is_secret(it))
        return "***";
    return *def ? def : "\"\"";
}

void hr_conf_print_help(const struct hr_conf *cfg,
                        FILE *out,
                        const char *usage,
                        const char *summary)
{
    int name_w = 4, type_w = 4, def_w = 7;

    HR_ASSERT(cfg != NULL && out != NULL);
    for (size_t k = 0; k < cfg->n_items; k++) {
        const struct conf_item *it = &cfg->items[k];
        int n = (int)strlen(it->spec->name);
        int t = (int)strlen(type_names[it->spec->type]);
        int d = (int)strlen(help_default(it));

        name_w = n > name_w ? n : name_w;
        type_w = t > type_w ? t : type_w;
        if (d <= 30 && d > def_w)
            def_w = d;
    }
    fprintf(out, "%s\n\n", usage ? usage : "");
    if (summary && *summary)
        fprintf(out, "%s\n\n", summary);
    fprintf(out, "Settings (environment variables):\n");
    fprintf(out, "  %-*s  %-*s  %-*s  %s\n", name_w, "NAME", type_w, "TYPE",
            def_w, "DEFAULT", "DESCRIPTION");
    for (size_t k = 0; k < cfg->n_items; k++) {
        const struct conf_item *it = &cfg->items[k];
        const struct hr_conf_spec *spec = it->spec;

        fprintf(out, "  %-*s  %-*s  %-*s  %s", name_w, spec->name, type_w,
                type_names[spec->type], def_w, help_default(it),
                spec->help ? spec->help : "");
        if (spec->type == HR_CONF_T_ENUM)
            fprintf(out, " (one of %s)", spec->choices);
        else if (spec->type == HR_CONF_T_INT || spec->type == HR_CONF_T_DOUBLE)
            fprintf(out, " (%" PRId64 "..%" PRId64 ")", spec->min, spec->max);
        /* without a default, the default column already says so */
        if ((spec->flags & HR_CONF_REQUIRED) && help_default(it)[0] != '(')
            fprintf(out, " (required)");
        if (spec->flags & HR_CONF_SECRET)
            fprintf(out, " (secret; also %s_FILE)", spec->name);
        else if (spec->flags & HR_CONF_FROM_FILE)
            fprintf(out, " (also %s_FILE)", spec->name);
        fputc('\n', out);
    }
}
