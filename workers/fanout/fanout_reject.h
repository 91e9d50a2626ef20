/*
 * Dead letters for single records of a batch (a DynamoDB Lambda-style
 * {"Records": [...]} or a CloudEvents JSON array): a record that cannot be
 * normalized is dead-lettered alone, while the batch's other records
 * route. The dead letter's value is that record's JSON, so a redrive feeds
 * exactly it back; its headers are the Kafka record's own plus the SPEC
 * section 7 failure headers (class poison, the reason naming the record's
 * index) and herald-record-index.
 */
#ifndef FANOUT_REJECT_H
#define FANOUT_REJECT_H

#include <jansson.h>

#include "hr_compat.h"

struct hr_worker;
struct hr_item;

/**
 * Produce one dead letter per element of @rejects (fanout_normalize_input()
 * objects {"index", "reason", "record"}) for batch record @item to
 * @dlq_topic, with @item's key, and log each. Returns 0, or -1 with
 * @errstr when the producer refused one (the batch pauses and is redone).
 */
int fanout_reject_send(struct hr_worker *w,
                       const struct hr_item *item,
                       const char *dlq_topic,
                       const json_t *rejects,
                       char *errstr,
                       size_t errstr_size) HR_MUST_CHECK;

#endif
