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
    size_t batch;          /* scriptrate: events per batch */
    size_t partitions;     /* scriptrate: partitions of the topic */
    size_t chunk;          /* scriptrate: events taken from one partition */
    const char *queue_url; /* sqs: the queue */
    size_t concurrency;    /* sqs: SendMessageBatch calls in flight */
};

/** Send the scenario to the SQS queue a->queue_url (sqs_send.c). Returns 0,
 *  or 1 when any event could not be sent. */
int sqs_send(const struct gen_args *a, const struct chat_scenario *s);

/**
 * Apply the scenario to Redis with herald-unread's own grouping and batch
 * script, with no broker and no outputs, and print the Redis time the
 * script takes per event. Returns 0, or 1 on an error.
 */
int scriptrate(const struct gen_args *a, const struct chat_scenario *s);

#endif
