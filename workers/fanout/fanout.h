/*
 * herald-fanout: change records in, routed events and webhook calls out.
 */
#ifndef FANOUT_H
#define FANOUT_H

#include "hr_worker.h"

extern const struct hr_conf_spec fanout_conf[];

void fanout_validate(struct hr_conf *cfg);
int fanout_init(struct hr_worker *w, void **state);
enum hr_batch_result
fanout_handle(struct hr_worker *w, void *state, struct hr_batch *batch);
void fanout_fini(struct hr_worker *w, void *state);

#endif
