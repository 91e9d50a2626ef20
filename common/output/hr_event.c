/*
 * CloudEvents 1.0 over Kafka: structured mode (the whole event is one JSON
 * object) and binary mode (attributes in ce_* headers, the value is the
 * data). Every parsed event owns one JSON tree, ev->root, and all the
 * attribute pointers in struct hr_event are borrowed from it; in binary
 * mode the header values are copied into a tree of the same shape, so
 * callers never have to care which mode an event arrived in.
 */
#include "hr_event.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "hr_base64.h"
#include "hr_compat.h"
#include "hr_jsonw.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Whether a string attribute must be present (and non-empty). */
enum attr_kind { ATTR_REQUIRED, ATTR_OPTIONAL };

static void event_fill(struct hr_event *ev)
{
    json_t *root = ev->root;

    ev->specversion = json_string_value(json_object_get(root, "specversion"));
    ev->id = json_string_value(json_object_get(root, "id"));
    ev->source = json_string_value(json_object_get(root, "source"));
    ev->type = json_string_value(json_object_get(root, "type"));
    ev->subject = json_string_value(json_object_get(root, "subject"));
    ev->time = json_string_value(json_object_get(root, "time"));
    ev->datacontenttype =
        json_string_value(json_object_get(root, "datacontenttype"));
    ev->dataschema = json_string_value(json_object_get(root, "dataschema"));
    ev->data = json_object_get(root, "data");
}

bool hr_event_is_json_type(const char *content_type)
{
    size_t n;

    if (!content_type)
        return false;
    n = strcspn(content_type, ";");
    while (n > 0 && (content_type[n - 1] == ' ' || content_type[n - 1] == '\t'))
        n--;
    if (n >= 5 && strncasecmp(content_type + n - 5, "+json", 5) == 0)
        return true;
    return (n == 16 && strncasecmp(content_type, "application/json", n) == 0) ||
           (n == 9 && strncasecmp(content_type, "text/json", n) == 0);
}

/*
 * CloudEvents JSON format: an attribute whose value is null is the same as
 * an absent one. "data": null is data, not an attribute, and stays.
 */
static void drop_null_attrs(json_t *root)
{
    const char *key;
    json_t *value;
    void *tmp;

    json_object_foreach_safe(root, tmp, key, value)
    {
        if (json_is_null(value) && strcmp(key, "data") != 0)
            json_object_del(root, key);
    }
}

/*
 * data_base64 (CloudEvents JSON format 3.1.3): with a JSON content type
 * the bytes are JSON, decoded here so that every handler reads ev->data
 * whichever way the producer chose; otherwise the text is kept for the
 * caller. Returns 0 or -1 with @errstr.
 */
static int
decode_base64_data(struct hr_event *ev, char *errstr, size_t errstr_size)
{
    json_t *b64 = json_object_get(ev->root, "data_base64");
    json_error_t jerr;
    size_t n = 0;
    char *bytes;

    if (!b64)
        return 0;
    if (!json_is_string(b64)) {
        snprintf(errstr, errstr_size,
                 "attribute 'data_base64' must be a string");
        return -1;
    }
    if (json_object_get(ev->root, "data")) {
        snprintf(errstr, errstr_size, "data and data_base64 are both given");
        return -1;
    }
    if (!hr_event_is_json_type(ev->datacontenttype)) {
        ev->data_base64 = json_string_value(b64);
        return 0;
    }
    bytes =
        hr_base64_decode(json_string_value(b64), json_string_length(b64), &n);
    if (!bytes) {
        snprintf(errstr, errstr_size, "data_base64 is not valid base64");
        return -1;
    }
    if (n > 0) {
        ev->decoded = json_loadb(bytes, n, JSON_DECODE_ANY, &jerr);
        if (!ev->decoded)
            snprintf(errstr, errstr_size,
                     "data_base64 is not valid json: %s at line %d, column %d",
                     jerr.text, jerr.line, jerr.column);
    }
    free(bytes);
    if (n > 0 && !ev->decoded)
        return -1;
    ev->data = ev->decoded;
    return 0;
}

/*
 * Load @len bytes of JSON. Any top-level value is accepted (binary-mode data
 * may be a scalar; structured mode checks for an object itself, which gives
 * a clearer error than jansson's "'[' or '{' expected"). jansson validates
 * UTF-8 and rejects "\u0000" in strings, so attribute strings are safe to
 * use as C strings.
 */
static json_t *
load_json(const void *payload, size_t len, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *json;

    json = json_loadb(payload ? payload : "", len, JSON_DECODE_ANY, &jerr);
    if (!json)
        snprintf(errstr, errstr_size, "invalid json: %s at line %d, column %d",
                 jerr.text, jerr.line, jerr.column);
    return json;
}

/* Check one string attribute of a structured event. */
static int check_attr(json_t *root,
                      const char *name,
                      enum attr_kind kind,
                      char *errstr,
                      size_t errstr_size)
{
    json_t *value = json_object_get(root, name);

    if (!value) {
        if (kind == ATTR_OPTIONAL)
            return 0;
        snprintf(errstr, errstr_size, "missing attribute '%s'", name);
        return -1;
    }
    if (!json_is_string(value)) {
        snprintf(errstr, errstr_size, "attribute '%s' must be a string", name);
        return -1;
    }
    if (kind == ATTR_REQUIRED && json_string_length(value) == 0) {
        snprintf(errstr, errstr_size, "attribute '%s' must not be empty", name);
        return -1;
    }
    return 0;
}

static int
check_specversion(const char *specversion, char *errstr, size_t errstr_size)
{
    if (strcmp(specversion, "1.0") != 0) {
        snprintf(errstr, errstr_size, "unsupported specversion '%.16s'",
                 specversion);
        return -1;
    }
    return 0;
}

/* Validate the structured event @root (an object whose reference is taken
 * over) and fill @ev from it. Returns 0, or -1 with @errstr and @root
 * released. */
static int structured_fill(struct hr_event *ev,
                           json_t *root,
                           char *errstr,
                           size_t errstr_size)
{
    static const char *const required[] = {"id", "source", "type"};
    static const char *const optional[] = {"subject", "time", "datacontenttype",
                                           "dataschema"};
    size_t i;

    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "event is not a json object");
        goto out_free_root;
    }
    drop_null_attrs(root);
    if (check_attr(root, "specversion", ATTR_REQUIRED, errstr, errstr_size) <
            0 ||
        check_specversion(
            json_string_value(json_object_get(root, "specversion")), errstr,
            errstr_size) < 0)
        goto out_free_root;
    for (i = 0; i < HR_ARRAY_SIZE(required); i++) {
        if (check_attr(root, required[i], ATTR_REQUIRED, errstr, errstr_size) <
            0)
            goto out_free_root;
    }
    for (i = 0; i < HR_ARRAY_SIZE(optional); i++) {
        if (check_attr(root, optional[i], ATTR_OPTIONAL, errstr, errstr_size) <
            0)
            goto out_free_root;
    }
    ev->root = root;
    event_fill(ev);
    if (decode_base64_data(ev, errstr, errstr_size) < 0) {
        hr_event_release(ev);
        return -1;
    }
    return 0;
out_free_root:
    json_decref(root);
    return -1;
}

static int parse_structured(struct hr_event *ev,
                            const void *payload,
                            size_t len,
                            char *errstr,
                            size_t errstr_size)
{
    json_t *root = load_json(payload, len, errstr, errstr_size);

    if (!root)
        return -1;
    return structured_fill(ev, root, errstr, errstr_size);
}

int hr_event_parse_json(struct hr_event *ev,
                        json_t *obj,
                        char *errstr,
                        size_t errstr_size)
{
    memset(ev, 0, sizeof(*ev));
    if (!obj) {
        snprintf(errstr, errstr_size, "event is not a json object");
        return -1;
    }
    return structured_fill(ev, json_incref(obj), errstr, errstr_size);
}

/*
 * Copy header @hname into root[@key]. Header values are raw bytes of a
 * given length: they must be valid UTF-8 without NUL bytes so the borrowed
 * C string is the whole value.
 */
static int copy_header(json_t *root,
                       const char *key,
                       const char *hname,
                       enum attr_kind kind,
                       hr_event_header_fn *get_header,
                       void *opaque,
                       char *errstr,
                       size_t errstr_size)
{
    const char *value;
    size_t vlen = 0;
    json_t *str;

    value = get_header(opaque, hname, &vlen);
    if (!value) {
        if (kind == ATTR_OPTIONAL)
            return 0;
        snprintf(errstr, errstr_size, "missing header '%s'", hname);
        return -1;
    }
    if (kind == ATTR_REQUIRED && vlen == 0) {
        snprintf(errstr, errstr_size, "header '%s' must not be empty", hname);
        return -1;
    }
    if (memchr(value, '\0', vlen)) {
        snprintf(errstr, errstr_size, "header '%s' contains a nul byte", hname);
        return -1;
    }
    str = json_stringn(value, vlen);
    if (!str) {
        snprintf(errstr, errstr_size, "header '%s' is not valid utf-8", hname);
        return -1;
    }
    if (json_object_set_new(root, key, str) < 0) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_binary(struct hr_event *ev,
                        const void *payload,
                        size_t len,
                        hr_event_header_fn *get_header,
                        void *opaque,
                        char *errstr,
                        size_t errstr_size)
{
    static const struct {
        const char *key;
        const char *header;
        enum attr_kind kind;
    } attrs[] = {
        {"specversion", "ce_specversion", ATTR_REQUIRED},
        {"id", "ce_id", ATTR_REQUIRED},
        {"source", "ce_source", ATTR_REQUIRED},
        {"type", "ce_type", ATTR_REQUIRED},
        {"subject", "ce_subject", ATTR_OPTIONAL},
        {"time", "ce_time", ATTR_OPTIONAL},
        {"dataschema", "ce_dataschema", ATTR_OPTIONAL},
        {"datacontenttype", "content-type", ATTR_OPTIONAL},
    };
    json_t *root, *data;
    size_t i;

    root = json_object();
    if (!root) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (i = 0; i < HR_ARRAY_SIZE(attrs); i++) {
        if (copy_header(root, attrs[i].key, attrs[i].header, attrs[i].kind,
                        get_header, opaque, errstr, errstr_size) < 0)
            goto out_free_root;
    }
    if (check_specversion(
            json_string_value(json_object_get(root, "specversion")), errstr,
            errstr_size) < 0)
        goto out_free_root;
    if (len > 0) {
        data = load_json(payload, len, errstr, errstr_size);
        if (!data)
            goto out_free_root;
        if (json_object_set_new(root, "data", data) < 0) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out_free_root;
        }
    }
    ev->root = root;
    event_fill(ev);
    return 0;
out_free_root:
    json_decref(root);
    return -1;
}

/* The ce_* headers hr_event_parse() reads itself. */
static bool is_core_header(const char *name)
{
    static const char *const core[] = {
        "ce_specversion", "ce_id",   "ce_source",    "ce_type",
        "ce_subject",     "ce_time", "ce_dataschema"};

    for (size_t i = 0; i < HR_ARRAY_SIZE(core); i++) {
        if (strcmp(name, core[i]) == 0)
            return true;
    }
    return false;
}

int hr_event_add_extensions(struct hr_event *ev,
                            hr_event_header_at_fn *header_at,
                            void *opaque)
{
    const char *name;
    const void *value;
    size_t idx, len;
    json_t *str;

    if (!ev->root || !header_at)
        return 0;
    for (idx = 0; header_at(opaque, idx, &name, &value, &len) == 0; idx++) {
        if (!name || strncmp(name, "ce_", 3) != 0 || !name[3] ||
            is_core_header(name) || memchr(value, '\0', len))
            continue;
        str = json_stringn(value, len);
        if (!str)
            continue; /* not UTF-8 */
        if (json_object_set_new(ev->root, name + 3, str) < 0)
            return -1;
    }
    event_fill(ev);
    return 0;
}

int hr_event_parse(struct hr_event *ev,
                   const void *payload,
                   size_t len,
                   hr_event_header_fn *get_header,
                   void *opaque,
                   char *errstr,
                   size_t errstr_size)
{
    size_t idlen;

    memset(ev, 0, sizeof(*ev));
    /* Checked before anything is parsed or copied: a huge value must not
     * cost a huge allocation. */
    if (len > HR_EVENT_MAX_BYTES) {
        snprintf(errstr, errstr_size, "payload too large: %zu bytes", len);
        return -1;
    }
    if (!payload && len > 0) {
        snprintf(errstr, errstr_size, "invalid payload");
        return -1;
    }
    if (get_header && get_header(opaque, "ce_id", &idlen))
        return parse_binary(ev, payload, len, get_header, opaque, errstr,
                            errstr_size);
    return parse_structured(ev, payload, len, errstr, errstr_size);
}

void hr_event_release(struct hr_event *ev)
{
    if (!ev)
        return;
    json_decref(ev->root);
    json_decref(ev->decoded);
    memset(ev, 0, sizeof(*ev));
}

/* Set a fresh string member; a NULL @value (or invalid UTF-8) fails. */
static int set_str(json_t *obj, const char *key, const char *value)
{
    if (!value)
        return -1;
    return json_object_set_new(obj, key, json_string(value));
}

/* The structured event object around @data (taken over); NULL on failure. */
static json_t *event_object(const char *id,
                            const char *source,
                            const char *type,
                            const char *subject,
                            json_t *data)
{
    char now[32];
    json_t *obj;

    obj = json_object();
    if (!obj) {
        json_decref(data);
        return NULL;
    }
    /* jansson keeps insertion order, so this is also the output order. */
    hr_time_format_rfc3339(hr_time_now_ms(), now, sizeof(now));
    if (set_str(obj, "specversion", "1.0") < 0 || set_str(obj, "id", id) < 0 ||
        set_str(obj, "source", source) < 0 || set_str(obj, "type", type) < 0 ||
        (subject && set_str(obj, "subject", subject) < 0) ||
        set_str(obj, "time", now) < 0 ||
        set_str(obj, "datacontenttype", "application/json") < 0) {
        json_decref(data);
        goto out_free_obj;
    }
    /* json_object_set_new() steals @data even when it fails. */
    if (data && json_object_set_new(obj, "data", data) < 0)
        goto out_free_obj;
    return obj;
out_free_obj:
    json_decref(obj);
    return NULL;
}

void hr_event_write(struct hr_jsonw *jw,
                    const char *id,
                    const char *source,
                    const char *type,
                    const char *subject)
{
    char now[32];

    /* The members and their order of event_object(). */
    hr_time_format_rfc3339(hr_time_now_ms(), now, sizeof(now));
    hr_jsonw_reset(jw);
    hr_jsonw_str(jw, "specversion", "1.0");
    hr_jsonw_str(jw, "id", id);
    hr_jsonw_str(jw, "source", source);
    hr_jsonw_str(jw, "type", type);
    if (subject)
        hr_jsonw_str(jw, "subject", subject);
    hr_jsonw_str(jw, "time", now);
    hr_jsonw_str(jw, "datacontenttype", "application/json");
    hr_jsonw_open(jw, "data");
}

size_t hr_event_serialize_buf(const char *id,
                              const char *source,
                              const char *type,
                              const char *subject,
                              json_t *data,
                              char **buf,
                              size_t *cap)
{
    json_t *obj = event_object(id, source, type, subject, data);
    size_t len;

    if (!obj)
        return 0;
    /* json_dumpb() tells the size it needs when the buffer is too small. */
    len = json_dumpb(obj, *buf, *cap, JSON_COMPACT);
    if (len && len + 1 > *cap) {
        char *grown = realloc(*buf, len + 1);

        if (!grown) {
            len = 0;
            goto out_free_obj;
        }
        *buf = grown;
        *cap = len + 1;
        len = json_dumpb(obj, *buf, *cap, JSON_COMPACT);
    }
    if (len)
        (*buf)[len] = '\0';
out_free_obj:
    json_decref(obj);
    return len;
}

char *hr_event_serialize(const char *id,
                         const char *source,
                         const char *type,
                         const char *subject,
                         json_t *data,
                         size_t *len)
{
    char *out = NULL;
    size_t cap = 0, n;

    /* Plain malloc'd memory, whatever allocator jansson was given. */
    n = hr_event_serialize_buf(id, source, type, subject, data, &out, &cap);
    if (!n) {
        free(out);
        return NULL;
    }
    if (len)
        *len = n;
    return out;
}

static _Thread_local EVP_MD_CTX *digest_ctx;
static _Thread_local EVP_MD *digest_md;

/*
 * The id is UUIDv5-like: a name-based UUID whose version nibble says 5 and
 * whose variant bits say RFC 4122, so it passes any UUID validator. Unlike
 * real UUIDv5 it hashes with SHA-256 (first 16 bytes) and uses no namespace
 * UUID; the parts are joined with single NUL bytes so that ("ab", "c") and
 * ("a", "bc") give different ids.
 */
char *hr_event_derive_id(char out[37], const char *const *parts, size_t nparts)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx;
    size_t i, o = 0;
    int ok;

    /* One context per thread, reused: EVP_DigestInit_ex() resets it, and
     * an allocation per id was a measurable share of emitting. The digest
     * is fetched once too: EVP_sha256() makes OpenSSL 3 look it up in its
     * providers on every init. */
    if (!digest_ctx)
        digest_ctx = EVP_MD_CTX_new();
    if (!digest_md)
        digest_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    ctx = digest_ctx;
    HR_ASSERT(ctx != NULL && digest_md != NULL);
    ok = EVP_DigestInit_ex(ctx, digest_md, NULL);
    for (i = 0; ok && i < nparts; i++) {
        const char *part = parts[i] ? parts[i] : "";

        if (i > 0)
            ok = EVP_DigestUpdate(ctx, "", 1);
        if (ok)
            ok = EVP_DigestUpdate(ctx, part, strlen(part));
    }
    if (ok)
        ok = EVP_DigestFinal_ex(ctx, md, &mdlen);
    /* A digest failure is an allocation failure inside OpenSSL; an id that
     * is not derived from the parts would break idempotency silently. */
    HR_ASSERT(ok && mdlen >= 16);

    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 0x0f];
    }
    out[o] = '\0';
    return out;
}
