/* The common settings table of every worker (SPEC section 2). */
#ifndef HR_WORKER_CONF_H
#define HR_WORKER_CONF_H

#include "hr_conf.h"

extern const struct hr_conf_spec hr_worker_common_conf[];

#endif
