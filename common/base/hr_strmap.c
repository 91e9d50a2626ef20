#include "hr_strmap.h"

#include <stdlib.h>
#include <string.h>

#include "hr_banned.h"
#include "hr_compat.h"

#define HR_STRMAP_CHUNK (64 * 1024)

static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size);

    HR_ASSERT(q);
    return q;
}

static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void hr_strmap_init(struct hr_strmap *map)
{
    memset(map, 0, sizeof(*map));
}

void hr_strmap_release(struct hr_strmap *map)
{
    for (size_t i = 0; i < map->nchunks; i++)
        free(map->chunks[i]);
    free(map->chunks);
    free(map->slots);
    free(map->keys);
    free(map->key_lens);
    hr_strmap_init(map);
}

void hr_strmap_clear(struct hr_strmap *map)
{
    if (map->slots)
        memset(map->slots, 0, map->nslots * sizeof(*map->slots));
    /* Keep the first chunk; the others go. */
    for (size_t i = 1; i < map->nchunks; i++)
        free(map->chunks[i]);
    if (map->nchunks) {
        map->nchunks = 1;
        map->arena = map->chunks[0];
        map->arena_cap = HR_STRMAP_CHUNK;
    }
    map->arena_used = 0;
    map->n = 0;
}

static char *arena_copy(struct hr_strmap *map, const void *key, size_t len)
{
    char *dst;

    if (!map->arena || map->arena_used + len + 1 > map->arena_cap) {
        size_t size = len + 1 > HR_STRMAP_CHUNK ? len + 1 : HR_STRMAP_CHUNK;

        map->chunks =
            xrealloc(map->chunks, (map->nchunks + 1) * sizeof(*map->chunks));
        map->arena = xrealloc(NULL, size);
        map->chunks[map->nchunks++] = map->arena;
        map->arena_cap = size;
        map->arena_used = 0;
    }
    dst = map->arena + map->arena_used;
    memcpy(dst, key, len);
    dst[len] = '\0';
    map->arena_used += len + 1;
    return dst;
}

static void grow(struct hr_strmap *map)
{
    size_t nslots = map->nslots ? map->nslots * 2 : 1024;
    uint32_t *slots = calloc(nslots, sizeof(*slots));

    HR_ASSERT(slots);
    for (size_t i = 0; i < map->n; i++) {
        size_t s = hash_bytes(map->keys[i], map->key_lens[i]) & (nslots - 1);

        while (slots[s])
            s = (s + 1) & (nslots - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(map->slots);
    map->slots = slots;
    map->nslots = nslots;
}

static size_t
find_slot(const struct hr_strmap *map, const void *key, size_t len)
{
    size_t s = hash_bytes(key, len) & (map->nslots - 1);

    for (;;) {
        uint32_t e = map->slots[s];

        if (!e)
            return s;
        if (map->key_lens[e - 1] == len && !memcmp(map->keys[e - 1], key, len))
            return s;
        s = (s + 1) & (map->nslots - 1);
    }
}

size_t hr_strmap_get(const struct hr_strmap *map, const void *key, size_t len)
{
    size_t s;

    if (!map->nslots)
        return SIZE_MAX;
    s = find_slot(map, key, len);
    return map->slots[s] ? map->slots[s] - 1 : SIZE_MAX;
}

size_t
hr_strmap_put(struct hr_strmap *map, const void *key, size_t len, int *added)
{
    size_t s;

    if ((map->n + 1) * 2 > map->nslots)
        grow(map);
    s = find_slot(map, key, len);
    if (map->slots[s]) {
        if (added)
            *added = 0;
        return map->slots[s] - 1;
    }
    if (map->n == map->cap) {
        map->cap = map->cap ? map->cap * 2 : 256;
        map->keys = xrealloc(map->keys, map->cap * sizeof(*map->keys));
        map->key_lens =
            xrealloc(map->key_lens, map->cap * sizeof(*map->key_lens));
    }
    map->keys[map->n] = arena_copy(map, key, len);
    map->key_lens[map->n] = len;
    map->slots[s] = (uint32_t)(map->n + 1);
    if (added)
        *added = 1;
    return map->n++;
}
