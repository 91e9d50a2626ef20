/*
 * A writer for JSON documents of a fixed shape on hot paths: objects of
 * strings, integers and nested objects, appended to a reusable buffer with
 * no tree in between. Building the same document with jansson (json_pack(),
 * then json_dumpb()) costs several times more per output event, which
 * dominates a worker that emits one or two small events per input. Anything
 * of a shape not known in advance (rule templates, arbitrary data) goes
 * through jansson.
 *
 *   struct hr_jsonw jw = {0};
 *   hr_jsonw_reset(&jw);
 *   hr_jsonw_str(&jw, "user_id", user);
 *   hr_jsonw_open(&jw, "data"); hr_jsonw_int(&jw, "count", 3);
 *   hr_jsonw_close(&jw);
 *   hr_jsonw_finish(&jw);  -> jw.buf, jw.len: {"user_id":"..","data":{..}}
 *
 * Strings must be valid UTF-8 (every string here comes out of jansson or a
 * validated configuration); '"', '\\' and control characters are escaped
 * as RFC 8259 requires, everything else is copied as is. Keys are written
 * verbatim (they are literals). Aborts on out-of-memory, like hr_arena.
 */
#ifndef HR_JSONW_H
#define HR_JSONW_H

#include <stddef.h>
#include <stdint.h>

#define HR_JSONW_DEPTH 8

struct hr_jsonw {
    char *buf; /* NUL-terminated after hr_jsonw_finish(); owned */
    size_t len, cap;
    unsigned depth;                 /* open objects, the outer one too */
    unsigned count[HR_JSONW_DEPTH]; /* members written at each depth */
};

/** Start a new document (an object), keeping the buffer. */
void hr_jsonw_reset(struct hr_jsonw *jw);

/** Member @key: a string; NULL writes null. */
void hr_jsonw_str(struct hr_jsonw *jw, const char *key, const char *s);

/** Member @key: an integer. */
void hr_jsonw_int(struct hr_jsonw *jw, const char *key, int64_t v);

/** Member @key: a nested object, written until hr_jsonw_close(). */
void hr_jsonw_open(struct hr_jsonw *jw, const char *key);
void hr_jsonw_close(struct hr_jsonw *jw);

/** Close every open object and NUL-terminate; returns jw->len. */
size_t hr_jsonw_finish(struct hr_jsonw *jw);

/** Free the buffer. */
void hr_jsonw_release(struct hr_jsonw *jw);

#endif
