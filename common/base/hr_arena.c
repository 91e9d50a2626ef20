/*
 * Every jansson block starts with a 16-byte header holding a tag: heap
 * blocks are malloc'd and freed normally, arena blocks are carved from
 * chunks and only ever released by resetting their arena. The tag is what
 * makes it safe for values to cross modes (a heap value inside an arena
 * tree, or the reverse) and for other threads to use jansson at any time.
 */
#include "hr_arena.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_compat.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define HR_ARENA_CHUNK (256 * 1024)
#define HR_ARENA_ALIGN 16
#define HR_ARENA_HEAP  UINT64_C(0x68725f68656170a5) /* "hr_heap" */
#define HR_ARENA_BLOCK UINT64_C(0x68725f6172656e5a) /* "hr_arenZ" */

struct block_hdr {
    uint64_t tag;
    uint64_t size;
};

struct chunk {
    struct chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    alignas(HR_ARENA_ALIGN) unsigned char data[];
};

struct hr_arena {
    struct chunk *head;  /* the chunk being filled */
    struct chunk *full;  /* chunks filled earlier in this round */
    struct chunk *spare; /* chunks kept by reset, reused first */
    size_t used;
};

static _Thread_local struct hr_arena *current;
static bool installed;

static size_t round_up(size_t n)
{
    return (n + HR_ARENA_ALIGN - 1) & ~(size_t)(HR_ARENA_ALIGN - 1);
}

static struct chunk *chunk_new(size_t need)
{
    size_t size = need > HR_ARENA_CHUNK ? need : HR_ARENA_CHUNK;
    struct chunk *c = malloc(sizeof(*c) + size);

    HR_ASSERT(c);
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

static void *arena_alloc(struct hr_arena *a, size_t size)
{
    size_t need = round_up(sizeof(struct block_hdr) + size);
    struct block_hdr *hdr;

    if (!a->head || a->head->used + need > a->head->size) {
        struct chunk *c = a->spare;

        if (c && c->size >= need) {
            a->spare = c->next;
            c->used = 0;
        } else {
            c = chunk_new(need);
        }
        if (a->head) {
            a->head->next = a->full;
            a->full = a->head;
        }
        c->next = NULL;
        a->head = c;
    }
    hdr = (struct block_hdr *)(void *)(a->head->data + a->head->used);
    a->head->used += need;
    a->used += need;
    hdr->tag = HR_ARENA_BLOCK;
    hdr->size = size;
    return hdr + 1;
}

void *hr_arena_alloc(struct hr_arena *arena, size_t size)
{
    return arena_alloc(arena, size);
}

char *hr_arena_strdup(struct hr_arena *arena, const char *s)
{
    size_t len = strlen(s) + 1;

    return memcpy(arena_alloc(arena, len), s, len);
}

static void *json_alloc(size_t size)
{
    struct block_hdr *hdr;

    if (current)
        return arena_alloc(current, size);
    hdr = malloc(sizeof(*hdr) + size);
    if (!hdr)
        return NULL;
    hdr->tag = HR_ARENA_HEAP;
    hdr->size = size;
    return hdr + 1;
}

void hr_arena_json_free(void *ptr)
{
    struct block_hdr *hdr;

    if (!ptr)
        return;
    hdr = (struct block_hdr *)ptr - 1;
    if (hdr->tag == HR_ARENA_HEAP) {
        hdr->tag = 0;
        free(hdr);
        return;
    }
    /* Anything else would be memory jansson never handed out. */
    HR_ASSERT(hdr->tag == HR_ARENA_BLOCK);
}

void hr_arena_install(void)
{
    if (installed)
        return;
    json_set_alloc_funcs(json_alloc, hr_arena_json_free);
    installed = true;
}

char *hr_arena_json_dumps(const void *json, size_t flags)
{
    size_t len = json_dumpb(json, NULL, 0, flags);
    char *out;

    if (!len)
        return NULL;
    out = malloc(len + 1);
    if (!out)
        return NULL;
    if (json_dumpb(json, out, len, flags) != len) {
        free(out);
        return NULL;
    }
    out[len] = '\0';
    return out;
}

struct hr_arena *hr_arena_new(void)
{
    struct hr_arena *a = calloc(1, sizeof(*a));

    HR_ASSERT(a);
    return a;
}

static void chunks_free(struct chunk *c)
{
    while (c) {
        struct chunk *next = c->next;

        free(c);
        c = next;
    }
}

void hr_arena_free(struct hr_arena *arena)
{
    if (!arena)
        return;
    HR_ASSERT(current != arena);
    chunks_free(arena->head);
    chunks_free(arena->full);
    chunks_free(arena->spare);
    free(arena);
}

void hr_arena_reset(struct hr_arena *arena, size_t keep)
{
    struct chunk *all = arena->spare, *c;
    size_t kept = 0;

    /* Gather every chunk, then keep the first ones up to @keep bytes. */
    if (arena->head) {
        arena->head->next = arena->full;
        arena->full = arena->head;
    }
    while ((c = arena->full)) {
        arena->full = c->next;
        c->next = all;
        all = c;
    }
    arena->head = NULL;
    arena->spare = NULL;
    while ((c = all)) {
        all = c->next;
        if (kept + c->size <= keep) {
            kept += c->size;
            c->next = arena->spare;
            arena->spare = c;
        } else {
            free(c);
        }
    }
    arena->used = 0;
}

size_t hr_arena_used(const struct hr_arena *arena)
{
    return arena->used;
}

struct hr_arena *hr_arena_enter(struct hr_arena *arena)
{
    struct hr_arena *previous = current;

    if (installed)
        current = arena;
    return previous;
}

void hr_arena_leave(struct hr_arena *previous)
{
    current = previous;
}
