/* herald-chatgen's options, shared by its subcommands. */
#ifndef CHATGEN_H
#define CHATGEN_H

#include <stddef.h>
#include <stdint.h>

#include "chat_model.h"

struct gen_args {
    struct chat_opts opts;
    const char *brokers;
    const char *topic;
    const char *redis;
    const char *prefix;
    int64_t max;
    int table;
    size_t batch;      /* scriptrate: events per batch */
    size_t partitions; /* scriptrate: partitions of the topic */
    size_t chunk;      /* scriptrate: events taken from one partition */
};

/**
 * Apply the scenario to Redis with herald-unread's own grouping and batch
 * script, with no broker and no outputs, and print the Redis time the
 * script takes per event. Returns 0, or 1 on an error.
 */
int scriptrate(const struct gen_args *a, const struct chat_scenario *s);

#endif
