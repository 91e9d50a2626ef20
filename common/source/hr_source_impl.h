/* What a source implements behind hr_source.h. Only for source/. */
#ifndef HR_SOURCE_IMPL_H
#define HR_SOURCE_IMPL_H

#include "hr_source.h"

struct hr_source_ops {
    const char *kind;
    size_t (*poll)(struct hr_source *src,
                   struct hr_msg **msgs,
                   size_t max,
                   size_t max_bytes,
                   int wait_ms);
    void (*serve)(struct hr_source *src);
    int (*ack)(struct hr_source *src,
               struct hr_msg *const *msgs,
               size_t n,
               char *errstr,
               size_t errstr_size);
    void (*abandon)(struct hr_source *src,
                    struct hr_msg *const *msgs,
                    size_t n);
    bool (*is_ready)(struct hr_source *src, char *reason, size_t reason_size);
    bool (*is_fatal)(const struct hr_source *src);
    bool (*paces_retries)(const struct hr_source *src);
    bool (*has_dlq)(const struct hr_source *src);
    int (*close)(struct hr_source *src, int64_t deadline_ms);
};

/* The first member of every source's own struct. */
struct hr_source {
    const struct hr_source_ops *ops;
};

struct hr_source *hr_source_kafka_new(const struct hr_conf *cfg,
                                      const char *topics,
                                      struct hr_metrics *reg,
                                      char *errstr,
                                      size_t errstr_size);

/* The SQS source's settings (hr_source_conf) are checked here. */
void hr_source_sqs_validate(struct hr_conf *cfg);

struct hr_source *hr_source_sqs_new(const struct hr_conf *cfg,
                                    struct hr_metrics *reg,
                                    char *errstr,
                                    size_t errstr_size);

#endif
