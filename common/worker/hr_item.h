/* The runtime's side of hr_item (hr_worker.h has the handlers' side). */
#ifndef HR_ITEM_H
#define HR_ITEM_H

#include "hr_worker.h"

struct hr_msg;

/** Set up @item (its memory is cleared) as the view of @msg, which it
 *  borrows, with no outcome yet. */
void hr_item_init(struct hr_item *item, const struct hr_msg *msg);

/** Free the destination and reason @item's outcome carried. */
void hr_item_forget(struct hr_item *item);

#endif
