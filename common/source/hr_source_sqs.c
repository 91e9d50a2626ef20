/* Amazon SQS source: see hr_source.h. */
#include <stdio.h>

#include "hr_source_impl.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

struct hr_source *hr_source_sqs_new(const struct hr_conf *cfg,
                                    struct hr_metrics *reg,
                                    char *errstr,
                                    size_t errstr_size)
{
    (void)cfg;
    (void)reg;
    snprintf(errstr, errstr_size, "the sqs source is not built yet");
    return NULL;
}
