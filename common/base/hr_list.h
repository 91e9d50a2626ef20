/*
 * An intrusive doubly-linked list with a count: the node lives inside the
 * element (struct hr_list_node member), HR_LIST_ENTRY() gets the element
 * back. O(1) push at the tail and unlink anywhere. Not thread-safe.
 */
#ifndef HR_LIST_H
#define HR_LIST_H

#include <stddef.h>

struct hr_list_node {
    struct hr_list_node *prev, *next;
};

struct hr_list {
    struct hr_list_node *head, *tail; /* NULL when empty */
    size_t n;
};

/** The element of type @type whose member @member is @node. */
#define HR_LIST_ENTRY(node, type, member) \
    ((type *)(void *)((char *)(node)-offsetof(type, member)))

/** Append @node (not in any list) to @list. */
void hr_list_push(struct hr_list *list, struct hr_list_node *node);

/** Take @node (in @list) out of it. */
void hr_list_unlink(struct hr_list *list, struct hr_list_node *node);

#endif
