/*
 * A growable byte buffer, always NUL-terminated after its data, with a
 * bound: what libcurl write callbacks fill with an answer, and request
 * bodies are built in.
 */
#ifndef HR_BUF_H
#define HR_BUF_H

#include <stddef.h>

#include "hr_compat.h"

struct hr_buf {
    char *p; /* NULL while empty */
    size_t len;
    size_t cap;
};

/**
 * Append @n bytes of @data, unless @buf would then hold more than @max
 * bytes. Returns 0, or -1 (nothing appended) when over @max or out of
 * memory.
 */
int hr_buf_append(struct hr_buf *buf, const void *data, size_t n, size_t max)
    HR_MUST_CHECK;

/** Forget the data but keep the memory. */
void hr_buf_clear(struct hr_buf *buf);

/** Free the memory (zeroed first when @wipe: it held a secret). */
void hr_buf_release(struct hr_buf *buf, int wipe);

#endif
