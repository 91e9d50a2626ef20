/*
 * Per-batch memory for jansson. Parsing a batch builds tens of thousands of
 * small JSON values that all die together when the batch is released;
 * allocating them from an arena and dropping the arena at once saves most
 * of the worker's malloc/free time.
 *
 * hr_arena_install() routes jansson's allocations through this module for
 * the whole process (json_set_alloc_funcs). A thread allocates from an
 * arena only between hr_arena_enter() and hr_arena_leave(); everywhere else
 * (other threads, code outside batches) it gets ordinary heap blocks. Every
 * block carries a header saying which it is, so json_decref() of either
 * kind is always right: heap blocks are freed, arena blocks are left for
 * hr_arena_reset().
 *
 * Consequence for jansson users once installed: strings returned by
 * json_dumps() must be released with hr_arena_json_free(), not free()
 * (jansson's documented rule for custom allocators); prefer json_dumpb()
 * into your own buffer.
 */
#ifndef HR_ARENA_H
#define HR_ARENA_H

#include <stddef.h>

struct hr_arena;

/** Install the allocator into jansson. Idempotent; call it before the
 *  process creates any JSON value. Not thread-safe (call from main). */
void hr_arena_install(void);

/** A new, empty arena; aborts on out-of-memory. */
struct hr_arena *hr_arena_new(void);

/** Free the arena and all its memory. NULL is a no-op. No value allocated
 *  from it may be used afterwards. */
void hr_arena_free(struct hr_arena *arena);

/**
 * Forget every allocation made from @arena (their memory is reused by the
 * next ones). Chunks beyond @keep bytes are returned to the system, so a
 * huge batch does not pin its memory forever.
 */
void hr_arena_reset(struct hr_arena *arena, size_t keep);

/** @size bytes from @arena (aligned for any type; aborts on out-of-memory),
 *  valid until the next hr_arena_reset(): for plain data that lives and
 *  dies with a batch, JSON or not. */
void *hr_arena_alloc(struct hr_arena *arena, size_t size);

/** A copy of @s in @arena (see hr_arena_alloc()). */
char *hr_arena_strdup(struct hr_arena *arena, const char *s);

/** Bytes currently handed out from @arena (for tests and metrics). */
size_t hr_arena_used(const struct hr_arena *arena);

/**
 * Make @arena the calling thread's allocator for jansson until
 * hr_arena_leave(). Returns the previous one (NULL: heap), to be passed to
 * hr_arena_leave(). Thread-safe: the setting is per thread.
 */
struct hr_arena *hr_arena_enter(struct hr_arena *arena);

/** Restore the allocator hr_arena_enter() returned. */
void hr_arena_leave(struct hr_arena *previous);

/** The free function matching jansson's allocations (for json_dumps()
 *  results); NULL is a no-op. */
void hr_arena_json_free(void *ptr);

/**
 * json_dumps() into plain malloc'd memory: the caller frees the result with
 * free(), whether or not the allocator is installed. @json is a json_t
 * (declared void here to keep jansson out of this header). NULL on failure.
 */
char *hr_arena_json_dumps(const void *json, size_t flags);

#endif
