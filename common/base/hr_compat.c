/* Project-wide helpers: the failure path of HR_ASSERT(), growing arrays. */
#include "hr_compat.h"

#include <stdio.h>
#include <stdlib.h>

#include "hr_banned.h"

/* Never compiled out: an invariant that does not hold is a bug, and going on
 * would corrupt state or offsets. stderr is unbuffered, so the line is out
 * before abort() raises SIGABRT. */
void hr_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

void *hr_grow(void *p, size_t *cap, size_t need, size_t elem, size_t first)
{
    size_t ncap = *cap ? *cap : first ? first : 1;

    if (need <= *cap)
        return p;
    while (ncap < need)
        ncap *= 2;
    p = realloc(p, ncap * elem);
    HR_ASSERT(p);
    *cap = ncap;
    return p;
}
