/*
 * A string -> index map for per-batch grouping (open addressing, FNV-1a).
 * Keys are byte strings; they are copied into the map's own arena, so
 * callers may pass transient buffers. Not thread-safe.
 */
#ifndef HR_STRMAP_H
#define HR_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct hr_strmap {
    uint32_t *slots; /* 0 = empty, else entry index + 1 */
    size_t nslots;   /* power of two */
    char **keys;     /* entry -> key (NUL-terminated copy) */
    size_t *key_lens;
    size_t n;    /* entries */
    size_t cap;  /* capacity of keys/key_lens */
    char *arena; /* key storage, in chunks */
    size_t arena_used, arena_cap;
    char **chunks; /* all arena chunks, for release */
    size_t nchunks;
};

/** Prepare an empty map in caller storage. */
void hr_strmap_init(struct hr_strmap *map);

/** Free everything the map holds (the struct itself stays). */
void hr_strmap_release(struct hr_strmap *map);

/** Empty the map but keep its memory for reuse. */
void hr_strmap_clear(struct hr_strmap *map);

/**
 * Index of @key, adding it (with the next index, 0-based) if absent;
 * *added (may be NULL) tells which. Aborts on out-of-memory.
 */
size_t
hr_strmap_put(struct hr_strmap *map, const void *key, size_t len, int *added);

/** Index of @key, or SIZE_MAX if absent. */
size_t hr_strmap_get(const struct hr_strmap *map, const void *key, size_t len);

/** The stored copy of entry @i's key (NUL-terminated; borrowed). */
static inline const char *hr_strmap_key(const struct hr_strmap *map, size_t i)
{
    return map->keys[i];
}

#endif
