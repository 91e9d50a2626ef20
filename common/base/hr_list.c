#include "hr_list.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

void hr_list_push(struct hr_list *list, struct hr_list_node *node)
{
    node->next = NULL;
    node->prev = list->tail;
    if (list->tail)
        list->tail->next = node;
    else
        list->head = node;
    list->tail = node;
    list->n++;
}

void hr_list_unlink(struct hr_list *list, struct hr_list_node *node)
{
    if (node->prev)
        node->prev->next = node->next;
    else
        list->head = node->next;
    if (node->next)
        node->next->prev = node->prev;
    else
        list->tail = node->prev;
    node->prev = node->next = NULL;
    list->n--;
}
