/* Project-wide attributes and small helpers every module may use. */
#ifndef HR_COMPAT_H
#define HR_COMPAT_H

#include <stddef.h>

#define HR_MUST_CHECK    __attribute__((warn_unused_result))
#define HR_PRINTF(f, a)  __attribute__((format(printf, f, a)))
#define HR_UNUSED        __attribute__((unused))
#define HR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/** Abort with a message if an invariant does not hold (never compiled out). */
#define HR_ASSERT(cond)                                \
    do {                                               \
        if (!(cond))                                   \
            hr_assert_fail(#cond, __FILE__, __LINE__); \
    } while (0)

__attribute__((noreturn)) void
hr_assert_fail(const char *expr, const char *file, int line);

/**
 * Make room for @need elements of @elem bytes in the array @p of capacity
 * *@cap (doubling from @first, or from *@cap when set); returns the array,
 * moved or not, and updates *@cap. Aborts when memory runs out.
 */
void *hr_grow(void *p, size_t *cap, size_t need, size_t elem, size_t first);

#endif
