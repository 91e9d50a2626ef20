/*
 * An ordered list of message headers (name, bytes), source-neutral: the
 * runtime builds retry and dead-letter headers in it, and each output turns
 * it into its own form (Kafka record headers, SQS message attributes).
 * Names may repeat; lookups take the last. Not thread-safe.
 */
#ifndef HR_HDRS_H
#define HR_HDRS_H

#include <stddef.h>

#include "hr_compat.h"

struct hr_hdrs;
struct hr_msg;

/** A new, empty list; aborts on out-of-memory. */
struct hr_hdrs *hr_hdrs_new(void);

/** A list holding a copy of every header of @msg (NULL: empty). */
struct hr_hdrs *hr_hdrs_from_msg(const struct hr_msg *msg);

/** Free @hdrs. NULL is a no-op. */
void hr_hdrs_free(struct hr_hdrs *hdrs);

/** Append a copy of (@name, @value of @len bytes). */
void hr_hdrs_add(struct hr_hdrs *hdrs,
                 const char *name,
                 const void *value,
                 size_t len);

/** Remove every header @name, then append @name = @value (a C string). */
void hr_hdrs_set(struct hr_hdrs *hdrs, const char *name, const char *value);

/** Remove every header @name. */
void hr_hdrs_remove(struct hr_hdrs *hdrs, const char *name);

/** The last header @name as a C string copied into @buf (@size bytes), or
 *  NULL when absent or too long. */
const char *hr_hdrs_str(const struct hr_hdrs *hdrs,
                        const char *name,
                        char *buf,
                        size_t size);

/** How many headers @hdrs holds. */
size_t hr_hdrs_count(const struct hr_hdrs *hdrs);

/** The @idx-th header (borrowed until @hdrs changes); 0, or -1 past the
 *  last. */
int hr_hdrs_at(const struct hr_hdrs *hdrs,
               size_t idx,
               const char **name,
               const void **value,
               size_t *len);

#endif
