/*
 * CloudEvents 1.0: parse structured mode (a JSON object) and binary mode
 * (ce_* headers with a JSON value), and build structured events.
 */
#ifndef HR_EVENT_H
#define HR_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/** Largest accepted event payload; bigger ones are rejected as poison. */
#define HR_EVENT_MAX_BYTES (1024 * 1024)

/**
 * Returns the value of header @name (e.g. "ce_id") and its length, or NULL
 * when the message has no such header. The value need not be
 * NUL-terminated.
 */
typedef const char *
hr_event_header_fn(void *opaque, const char *name, size_t *len);

/**
 * The @idx-th header of the message (0-based, in order): its name
 * (NUL-terminated) and value (not NUL-terminated) and the value's length.
 * Returns 0, or -1 past the last header.
 */
typedef int hr_event_header_at_fn(void *opaque,
                                  size_t idx,
                                  const char **name,
                                  const void **value,
                                  size_t *len);

/**
 * A parsed CloudEvent. The string fields are borrowed from @root (or from
 * header copies it owns) and live until hr_event_release(). An attribute
 * whose JSON value is null counts as absent (CloudEvents JSON format): it
 * is removed from @root and its field is NULL.
 *
 * @data is what handlers read: the "data" member, or, for an event that
 * carries "data_base64" with a JSON datacontenttype (application/json,
 * text/json, anything ending in +json, parameters ignored), the decoded
 * bytes parsed as JSON. For other content types @data is NULL and the
 * base64 text is in @data_base64.
 */
struct hr_event {
    const char *id;
    const char *source;
    const char *type;
    const char *specversion;
    const char *subject;         /* NULL if absent */
    const char *time;            /* NULL if absent */
    const char *datacontenttype; /* NULL if absent */
    json_t *data;                /* borrowed; NULL if absent */
    json_t *root;                /* owned */
    const char *dataschema;      /* NULL if absent */
    const char *data_base64;     /* NULL if absent or decoded into @data */
    json_t *decoded;             /* owned: decoded data_base64, or NULL */
};

/**
 * Parse one event. If @get_header is given and the message has a "ce_id"
 * header, binary mode is used: attributes come from ce_* headers and @payload
 * is the JSON data. Otherwise @payload must be a structured-mode CloudEvent
 * (JSON object with specversion "1.0", non-empty string id, source, type).
 * Payloads larger than HR_EVENT_MAX_BYTES, invalid JSON (including invalid
 * UTF-8), missing or mistyped attributes are rejected.
 * Returns 0, or -1 with a short reason in @errstr ("invalid json: ...",
 * "missing attribute 'id'", "payload too large: N bytes") and @ev zeroed.
 */
int hr_event_parse(struct hr_event *ev,
                   const void *payload,
                   size_t len,
                   hr_event_header_fn *get_header,
                   void *opaque,
                   char *errstr,
                   size_t errstr_size);

/**
 * Parse one structured-mode event that is already a JSON value (an element
 * of a batch, see hr_event_batch_parse()) with the checks of
 * hr_event_parse(). Takes a reference of its own to @obj, whose null
 * attributes are removed (the caller's tree is changed). Returns 0, or -1
 * with @errstr and @ev zeroed.
 */
int hr_event_parse_json(struct hr_event *ev,
                        json_t *obj,
                        char *errstr,
                        size_t errstr_size);

/**
 * Add a binary-mode event's extension attributes: every "ce_<name>" header
 * that is not one of the attributes hr_event_parse() reads becomes
 * root[<name>] (a string; the last header of a name wins). Headers that
 * are not valid UTF-8 or hold a NUL byte are skipped. For events parsed
 * in binary mode only (a structured event's extensions are in its JSON
 * already). Returns 0, or -1 on allocation failure.
 */
int hr_event_add_extensions(struct hr_event *ev,
                            hr_event_header_at_fn *header_at,
                            void *opaque);

/**
 * Whether @content_type names JSON: application/json, text/json or any
 * "+json" suffix (application/cloudevents+json), case-insensitively,
 * parameters ignored. NULL is not JSON.
 */
bool hr_event_is_json_type(const char *content_type);

/** Release what hr_event_parse() allocated. Safe on a zeroed event. */
void hr_event_release(struct hr_event *ev);

/**
 * Serialize a structured-mode CloudEvent with specversion "1.0",
 * datacontenttype "application/json", "time" now (RFC 3339, UTC, ms),
 * and @subject when not NULL. Takes ownership of @data (a JSON value).
 * Returns a malloc'd compact JSON string (caller frees) and its length in
 * *len, or NULL on allocation failure.
 */
char *hr_event_serialize(const char *id,
                         const char *source,
                         const char *type,
                         const char *subject,
                         json_t *data,
                         size_t *len);

/**
 * hr_event_serialize() into a reusable buffer: *@buf (malloc'd, may be NULL
 * with *@cap 0) is grown with realloc() as needed and gets the event
 * NUL-terminated. Takes ownership of @data. Returns the length, or 0 on
 * failure (the buffer stays the caller's either way).
 */
size_t hr_event_serialize_buf(const char *id,
                              const char *source,
                              const char *type,
                              const char *subject,
                              json_t *data,
                              char **buf,
                              size_t *cap);

struct hr_jsonw;

/**
 * Start a structured-mode CloudEvent in @jw with the same attributes as
 * hr_event_serialize() and open its "data" object: the caller writes the
 * data's members, then hr_jsonw_finish(). For fixed-shape outputs on hot
 * paths (see hr_jsonw.h).
 */
void hr_event_write(struct hr_jsonw *jw,
                    const char *id,
                    const char *source,
                    const char *type,
                    const char *subject);

/**
 * A deterministic event id derived from the parts (for example the id of
 * the causing event, a rule name and an index): the lower-case hex of the
 * first 16 bytes of SHA-256 over the parts joined with NUL bytes, formatted
 * as a UUID (8-4-4-4-12) with the version nibble set to 5 and the RFC 4122
 * variant bits, so it is a valid UUID. @out must hold 37 bytes. Returns @out.
 */
char *hr_event_derive_id(char out[37], const char *const *parts, size_t nparts);

#endif
