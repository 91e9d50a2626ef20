/* Project-wide helpers: the failure path of HR_ASSERT(). */
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
